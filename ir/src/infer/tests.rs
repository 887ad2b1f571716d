use super::*;
use crate::{BinaryOp, Conv2dAttrs, Pool2dAttrs, PoolKind, ReduceOp, UnaryOp};

fn t(d: DType, s: &[usize]) -> TensorType {
    TensorType::new(d, s)
}
const F: DType = DType::F32;

#[test]
fn elementwise_requires_identical_types() {
    let a = t(F, &[2, 3]);
    let b = t(F, &[3]);
    let e = infer(&Op::Binary(BinaryOp::Add), &[&a, &b]).unwrap_err();
    assert!(e.to_string().contains("f32[2,3] and f32[3]"), "{e}");
    assert_eq!(infer(&Op::Binary(BinaryOp::Add), &[&a, &a]).unwrap(), a);
    let i = t(DType::I32, &[2]);
    assert!(infer(&Op::Unary(UnaryOp::Exp), &[&i]).is_err());
    assert!(infer(&Op::Unary(UnaryOp::Neg), &[&i]).is_ok());
    assert!(infer(&Op::Binary(BinaryOp::Pow), &[&i, &i]).is_err());
}

#[test]
fn zero_sized_windows_are_errors_not_panics() {
    let x = t(F, &[1, 1, 4, 4]);
    let w = t(F, &[1, 1, 0, 2]);
    assert!(infer(&Op::Conv2d(Conv2dAttrs::default()), &[&x, &w]).is_err());
    let c = Conv2dAttrs {
        stride: [0, 1],
        ..Conv2dAttrs::default()
    };
    assert!(infer(&Op::Conv2d(c), &[&x, &t(F, &[1, 1, 2, 2])]).is_err());
    let p = Pool2dAttrs {
        kind: PoolKind::Avg,
        kernel: [0, 2],
        stride: [1, 1],
        padding: [0, 0],
    };
    assert!(infer(&Op::Pool2d(p), &[&x]).is_err());
}

#[test]
fn broadcast_follows_numpy() {
    let x = t(F, &[3, 1]);
    assert_eq!(
        infer(&Op::Broadcast([2, 3, 4].into()), &[&x]).unwrap(),
        t(F, &[2, 3, 4])
    );
    assert!(infer(&Op::Broadcast([2, 4, 4].into()), &[&x]).is_err());
    assert!(infer(&Op::Broadcast([4].into()), &[&x]).is_err());
}

#[test]
fn matmul_shapes() {
    let a = t(F, &[5, 2, 3]);
    let b = t(F, &[5, 3, 7]);
    assert_eq!(infer(&Op::MatMul, &[&a, &b]).unwrap(), t(F, &[5, 2, 7]));
    let e = infer(&Op::MatMul, &[&a, &a]).unwrap_err();
    assert!(e.to_string().contains("inner dimensions differ"), "{e}");
    assert!(infer(&Op::MatMul, &[&t(F, &[3]), &t(F, &[3])]).is_err());
}

#[test]
fn conv_and_pool_shapes() {
    // LeNet's first layer: 32 - 5 + 1 = 28, then pool 2 -> 14.
    let x = t(F, &[8, 3, 32, 32]);
    let w = t(F, &[6, 3, 5, 5]);
    let y = infer(&Op::Conv2d(Conv2dAttrs::default()), &[&x, &w]).unwrap();
    assert_eq!(y, t(F, &[8, 6, 28, 28]));
    let p = Pool2dAttrs {
        kind: PoolKind::Max,
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
    };
    assert_eq!(infer(&Op::Pool2d(p), &[&y]).unwrap(), t(F, &[8, 6, 14, 14]));
    // Strided, padded, dilated: (7 + 2*1 - 2*(3-1) - 1)/2 + 1 = 3.
    let c = Conv2dAttrs {
        stride: [2, 2],
        padding: [1, 1],
        dilation: [2, 2],
    };
    let (x7, w3) = (t(F, &[1, 2, 7, 7]), t(F, &[4, 2, 3, 3]));
    let y = infer(&Op::Conv2d(c), &[&x7, &w3]).unwrap();
    assert_eq!(y, t(F, &[1, 4, 3, 3]));
    // The transpose maps back to 7 with output_padding 0: (3-1)*2 + 2*2 + 0 + 1 - 2 = 7.
    let transpose = Op::ConvTranspose2d {
        conv: c,
        output_padding: [0, 0],
    };
    assert_eq!(infer(&transpose, &[&y, &w3]).unwrap(), x7);
    let weight_grad = Op::Conv2dWeightGrad {
        conv: c,
        kernel: [3, 3],
    };
    assert_eq!(infer(&weight_grad, &[&x7, &y]).unwrap(), w3);
    assert!(
        infer(
            &Op::Conv2d(Conv2dAttrs::default()),
            &[&t(F, &[1, 3, 4, 4]), &w]
        )
        .is_err()
    );
}

#[test]
fn reductions_and_movement() {
    let x = t(F, &[2, 3, 5]);
    let r = |axes: Vec<usize>, keepdims| Op::Reduce {
        kind: ReduceOp::Sum,
        axes,
        keepdims,
    };
    assert_eq!(infer(&r(vec![1], false), &[&x]).unwrap(), t(F, &[2, 5]));
    assert_eq!(
        infer(&r(vec![0, 2], true), &[&x]).unwrap(),
        t(F, &[1, 3, 1])
    );
    assert!(infer(&r(vec![2, 0], true), &[&x]).is_err());
    assert!(infer(&r(vec![3], true), &[&x]).is_err());
    assert_eq!(
        infer(&Op::Transpose(vec![2, 0, 1]), &[&x]).unwrap(),
        t(F, &[5, 2, 3])
    );
    assert!(infer(&Op::Transpose(vec![0, 0, 1]), &[&x]).is_err());
    let s = Op::Slice {
        start: vec![0, 1, 0],
        end: vec![2, 3, 5],
        step: vec![1, 1, 2],
    };
    assert_eq!(infer(&s, &[&x]).unwrap(), t(F, &[2, 2, 3]));
    let c = infer(&Op::Concat { axis: 1 }, &[&x, &t(F, &[2, 4, 5])]).unwrap();
    assert_eq!(c, t(F, &[2, 7, 5]));
    assert!(infer(&Op::Concat { axis: 1 }, &[&x, &t(F, &[3, 4, 5])]).is_err());
    let g = infer(&Op::Gather, &[&t(F, &[10, 4]), &t(DType::I32, &[2, 3])]).unwrap();
    assert_eq!(g, t(F, &[2, 3, 4]));
    let s = infer(&Op::ScatterAdd { rows: 10 }, &[&t(DType::I32, &[2, 3]), &g]).unwrap();
    assert_eq!(s, t(F, &[10, 4]));
}
