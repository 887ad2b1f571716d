//! Scheduling: kernel programs for small graphs, as reviewed snapshots, plus the
//! fusion facts they must show.

use kiln_ir::{BinaryOp, DType, Graph, NodeId, Op, ReduceOp, Shape, TensorType, UnaryOp};
use kiln_passes::schedule::{Expr, Kernel, schedule};

fn softmax() -> Graph {
    let mut g = Graph::new("softmax");
    let x = g.input("x", TensorType::new(DType::F32, [4, 10])).unwrap();
    let add = |g: &mut Graph, op: Op, xs: &[NodeId]| g.add(op, xs).unwrap();
    let m = add(
        &mut g,
        Op::Reduce {
            kind: ReduceOp::Max,
            axes: vec![1],
            keepdims: true,
        },
        &[x],
    );
    let m = add(&mut g, Op::StopGradient, &[m]);
    let mb = add(&mut g, Op::Broadcast(Shape::from([4, 10])), &[m]);
    let d = add(&mut g, Op::Binary(BinaryOp::Sub), &[x, mb]);
    let e = add(&mut g, Op::Unary(UnaryOp::Exp), &[d]);
    let s = add(
        &mut g,
        Op::Reduce {
            kind: ReduceOp::Sum,
            axes: vec![1],
            keepdims: true,
        },
        &[e],
    );
    let sb = add(&mut g, Op::Broadcast(Shape::from([4, 10])), &[s]);
    let y = add(&mut g, Op::Binary(BinaryOp::Div), &[e, sb]);
    g.output(y, Some("y"));
    g
}

#[test]
fn softmax_is_one_kernel() {
    let p = schedule(&softmax()).unwrap();
    // Row max and row sum of exp are computed per row inside the kernel that
    // divides; the exp is recomputed, never stored.
    assert_eq!(p.kernels.len(), 1, "{p}");
    let Kernel::Loop(k) = &p.kernels[0] else {
        panic!("{p}")
    };
    assert_eq!(k.rows.len(), 2, "{p}");
    let output_bytes = (4 * 10 * 4usize).div_ceil(64) * 64;
    assert_eq!(
        p.plan_memory().arena_bytes,
        output_bytes,
        "only the output is stored: {p}"
    );
    insta::assert_snapshot!(p.to_string());
}

#[test]
fn views_feeding_a_matmul_are_strides_not_copies() {
    let mut g = Graph::new("linear");
    let x = g.input("x", TensorType::new(DType::F32, [8, 5])).unwrap();
    let w = g.param("w", TensorType::new(DType::F32, [3, 5])).unwrap();
    let wt = g.add(Op::Transpose(vec![1, 0]), &[w]).unwrap();
    let y = g.add(Op::MatMul, &[x, wt]).unwrap();
    let r = g.add(Op::Unary(UnaryOp::Relu), &[y]).unwrap();
    g.output(r, None);
    let p = schedule(&g).unwrap();
    // One GEMM reading w with swapped strides, one relu loop; no transpose kernel.
    assert_eq!(p.kernels.len(), 2, "{p}");
    insta::assert_snapshot!(p.to_string());
}

/// An optimizer-style update: three results over the same loops in one kernel.
pub fn update_graph() -> Graph {
    let mut g = Graph::new("update");
    let t = TensorType::new(DType::F32, [6, 5]);
    let p = g.param("p", t.clone()).unwrap();
    let m = g.param("m", t.clone()).unwrap();
    let grad = g.input("g", t.clone()).unwrap();
    let c = |g: &mut Graph, v: f64| {
        let s = g.constant(kiln_ir::HostTensor::scalar(DType::F32, v));
        g.add(Op::Broadcast(Shape::from([6, 5])), &[s]).unwrap()
    };
    let mul =
        |g: &mut Graph, a: NodeId, b: NodeId| g.add(Op::Binary(BinaryOp::Mul), &[a, b]).unwrap();
    let (k9, k1) = (c(&mut g, 0.9), c(&mut g, 0.1));
    let a = mul(&mut g, m, k9);
    let b = mul(&mut g, grad, k1);
    let m2 = g.add(Op::Binary(BinaryOp::Add), &[a, b]).unwrap();
    let lr = c(&mut g, 0.01);
    let step = mul(&mut g, m2, lr);
    let p2 = g.add(Op::Binary(BinaryOp::Sub), &[p, step]).unwrap();
    let sq = mul(&mut g, grad, grad);
    g.output(p2, Some("p"));
    g.output(m2, Some("m"));
    g.output(sq, Some("g2"));
    g
}

/// The new momentum is read by the parameter's loop (a consumer); the squared
/// gradient reads the same gradient (a sibling): one loop stores all three,
/// loading the gradient once.
#[test]
fn an_update_is_one_pass_storing_every_result() {
    let p = schedule(&update_graph()).unwrap();
    assert_eq!(p.kernels.len(), 1, "{p}");
    let Kernel::Loop(k) = &p.kernels[0] else {
        panic!("{p}")
    };
    assert_eq!(k.also.len(), 2, "{p}");
    let grad_loads = k
        .exprs
        .iter()
        .filter(|e| matches!(&e.expr, Expr::Load(a) if a.buffer == p.args[2]))
        .count();
    assert_eq!(grad_loads, 1, "the gradient is loaded once: {p}");
    insta::assert_snapshot!(p.to_string());
}

/// Siblings on both sides of a kernel that reads the first: the second loop
/// (reading nothing written in between) joins the first, before that kernel.
#[test]
fn a_later_sibling_joins_the_earlier_loop() {
    let mut g = Graph::new("siblings");
    let x = g.input("x", TensorType::new(DType::F32, [4, 6])).unwrap();
    let w = g.param("w", TensorType::new(DType::F32, [6, 3])).unwrap();
    let a = g.add(Op::Unary(UnaryOp::Exp), &[x]).unwrap();
    let m = g.add(Op::MatMul, &[a, w]).unwrap();
    let c = g.add(Op::Unary(UnaryOp::Neg), &[x]).unwrap();
    g.output(m, Some("m"));
    g.output(c, Some("c"));
    let p = schedule(&g).unwrap();
    assert_eq!(p.kernels.len(), 2, "{p}");
    let Kernel::Loop(k) = &p.kernels[0] else {
        panic!("the merged loop runs first: {p}")
    };
    assert_eq!(k.also.len(), 1, "{p}");
    assert!(matches!(p.kernels[1], Kernel::Call(_)), "{p}");
    let x_loads = k
        .exprs
        .iter()
        .filter(|e| matches!(&e.expr, Expr::Load(l) if l.buffer == p.args[0]))
        .count();
    assert_eq!(x_loads, 1, "{p}");
}

/// A library call reads a reshaped buffer in place: no copy kernel for the
/// reshape.
#[test]
fn calls_read_reshaped_buffers_in_place() {
    let mut g = Graph::new("reshaped");
    let x = g.input("x", TensorType::new(DType::F32, [6, 4])).unwrap();
    let z = g.input("z", TensorType::new(DType::F32, [5])).unwrap();
    let e = g.add(Op::Unary(UnaryOp::Exp), &[x]).unwrap();
    let r = g.add(Op::Reshape(Shape::from([24])), &[e]).unwrap();
    let c = g.add(Op::Concat { axis: 0 }, &[r, z]).unwrap();
    g.output(c, None);
    let p = schedule(&g).unwrap();
    assert_eq!(p.kernels.len(), 2, "the exp loop and the concat: {p}");
    let Kernel::Call(call) = &p.kernels[1] else {
        panic!("{p}")
    };
    assert!(call.inputs[0].is_contiguous(), "{p}");
    assert_eq!(call.inputs[0].ty.shape, Shape::from([24]), "{p}");
}

/// Loops that share only a scalar (one learning rate read by every parameter's
/// update) stay apart: merging them saves nothing and grows one loop per layer.
#[test]
fn a_shared_scalar_does_not_make_siblings() {
    let mut g = Graph::new("updates");
    let t = TensorType::new(DType::F32, [6, 5]);
    let lr = g.input("lr", TensorType::new(DType::F32, [])).unwrap();
    let lr = g.add(Op::Broadcast(Shape::from([6, 5])), &[lr]).unwrap();
    for name in ["a", "b"] {
        let w = g.param(name, t.clone()).unwrap();
        let grad = g.input(&format!("g{name}"), t.clone()).unwrap();
        let step = g.add(Op::Binary(BinaryOp::Mul), &[grad, lr]).unwrap();
        let w2 = g.add(Op::Binary(BinaryOp::Sub), &[w, step]).unwrap();
        g.output(w2, Some(name));
    }
    let p = schedule(&g).unwrap();
    assert_eq!(p.kernels.len(), 2, "{p}");
}
