//! Shape and dtype inference: the one place that states each op's typing rule.

use crate::{Conv2dAttrs, DType, Op, Pool2dAttrs, Shape, TensorType, UnaryOp};

/// Why an op cannot be applied to its operands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    #[error("expects {expected} operand(s), got {got}")]
    Arity { expected: String, got: usize },
    #[error("operand {index} is {got}, but {expected}")]
    DType {
        index: usize,
        got: TensorType,
        expected: String,
    },
    /// Operand shapes that do not fit together; the message shows them.
    #[error("{0}")]
    Shape(String),
    /// An attribute that does not fit the operands (axis out of range, ...).
    #[error("{0}")]
    Attr(String),
    #[error("`{0}` is a leaf: its type is declared, not inferred")]
    Leaf(&'static str),
}

fn arity(ops: &[&TensorType], n: usize) -> Result<(), TypeError> {
    if ops.len() != n {
        return Err(TypeError::Arity {
            expected: n.to_string(),
            got: ops.len(),
        });
    }
    Ok(())
}

fn want(ok: bool, index: usize, got: &TensorType, expected: &str) -> Result<(), TypeError> {
    if ok {
        Ok(())
    } else {
        Err(TypeError::DType {
            index,
            got: got.clone(),
            expected: expected.to_string(),
        })
    }
}

fn shape_err<T>(msg: String) -> Result<T, TypeError> {
    Err(TypeError::Shape(msg))
}

fn attr_err<T>(msg: String) -> Result<T, TypeError> {
    Err(TypeError::Attr(msg))
}

fn same_type(ops: &[&TensorType]) -> Result<(), TypeError> {
    if let Some(other) = ops.iter().skip(1).find(|t| **t != ops[0]) {
        return shape_err(format!(
            "operands must have identical types, got {} and {} (broadcast explicitly)",
            ops[0], other
        ));
    }
    Ok(())
}

fn rank_is(t: &TensorType, index: usize, rank: usize, what: &str) -> Result<(), TypeError> {
    if t.shape.rank() != rank {
        return shape_err(format!(
            "operand {index} ({what}) must have rank {rank}, got {t}"
        ));
    }
    Ok(())
}

/// Output size of a sliding window along one axis, or `None` if the window does not fit.
pub fn window_out(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
) -> Option<usize> {
    if kernel == 0 || stride == 0 || dilation == 0 {
        return None;
    }
    // Checked: attributes come from users and files, and may be absurd.
    let span = dilation.checked_mul(kernel - 1)?.checked_add(1)?;
    let padded = pad.checked_mul(2)?.checked_add(input)?;
    if padded < span {
        return None;
    }
    Some((padded - span) / stride + 1)
}

fn conv_out(x: &Shape, kernel: [usize; 2], c: &Conv2dAttrs) -> Result<[usize; 2], TypeError> {
    let mut out = [0; 2];
    for i in 0..2 {
        out[i] = window_out(x.dim(2 + i), kernel[i], c.stride[i], c.padding[i], c.dilation[i])
            .ok_or_else(|| {
                TypeError::Shape(format!(
                    "window of size {:?} (stride {:?}, padding {:?}, dilation {:?}) does not fit input {}",
                    kernel, c.stride, c.padding, c.dilation, x
                ))
            })?;
    }
    Ok(out)
}

fn pool_out(x: &Shape, p: &Pool2dAttrs) -> Result<[usize; 2], TypeError> {
    for i in 0..2 {
        if p.padding[i] * 2 > p.kernel[i] {
            return attr_err(format!(
                "padding {:?} must be at most half the kernel {:?}",
                p.padding, p.kernel
            ));
        }
    }
    let c = Conv2dAttrs {
        stride: p.stride,
        padding: p.padding,
        dilation: [1, 1],
    };
    conv_out(x, p.kernel, &c)
}

fn check_axes(axes: &[usize], rank: usize) -> Result<(), TypeError> {
    for (i, &a) in axes.iter().enumerate() {
        if a >= rank {
            return attr_err(format!("axis {a} out of range for rank {rank}"));
        }
        if i > 0 && axes[i - 1] >= a {
            return attr_err(format!("axes {axes:?} must be sorted and distinct"));
        }
    }
    Ok(())
}

fn per_axis(name: &str, v: &[usize], rank: usize) -> Result<(), TypeError> {
    if v.len() != rank {
        return attr_err(format!(
            "`{name}` has {} entries but the operand has rank {rank}",
            v.len()
        ));
    }
    Ok(())
}

/// The output type of `op` applied to operands of types `ops`; also rejects
/// results too large to address (see [`TensorType::check_size`]).
pub fn infer(op: &Op, ops: &[&TensorType]) -> Result<TensorType, TypeError> {
    let ty = infer_unchecked(op, ops)?;
    ty.check_size().map_err(TypeError::Shape)?;
    Ok(ty)
}

fn infer_unchecked(op: &Op, ops: &[&TensorType]) -> Result<TensorType, TypeError> {
    match op {
        Op::Input => Err(TypeError::Leaf("input")),
        Op::Param => Err(TypeError::Leaf("param")),
        Op::Const(t) => {
            arity(ops, 0)?;
            Ok(t.ty())
        }
        Op::Unary(k) => {
            arity(ops, 1)?;
            let x = ops[0];
            let ok = x.dtype.is_float() || (k.accepts_integers() && x.dtype.is_numeric());
            let expected = if k.accepts_integers() {
                "a number type is required"
            } else {
                "a float type is required"
            };
            want(ok, 0, x, expected)?;
            if let UnaryOp::LeakyRelu(s) = k
                && !s.is_finite()
            {
                return attr_err(format!("leaky_relu slope must be finite, got {s}"));
            }
            Ok(x.clone())
        }
        Op::Binary(k) => {
            arity(ops, 2)?;
            same_type(ops)?;
            let float_only = matches!(k, crate::BinaryOp::Pow);
            let ok = ops[0].dtype.is_float() || (!float_only && ops[0].dtype.is_numeric());
            want(
                ok,
                0,
                ops[0],
                if float_only {
                    "a float type is required"
                } else {
                    "a number type is required"
                },
            )?;
            Ok(ops[0].clone())
        }
        Op::Compare(_) => {
            arity(ops, 2)?;
            same_type(ops)?;
            Ok(TensorType::new(DType::Bool, ops[0].shape.clone()))
        }
        Op::Select => {
            arity(ops, 3)?;
            want(
                ops[0].dtype == DType::Bool,
                0,
                ops[0],
                "the condition must be bool",
            )?;
            same_type(&ops[1..])?;
            if ops[0].shape != ops[1].shape {
                return shape_err(format!(
                    "condition {} and values {} differ in shape",
                    ops[0], ops[1]
                ));
            }
            Ok(ops[1].clone())
        }
        Op::StopGradient => {
            arity(ops, 1)?;
            Ok(ops[0].clone())
        }
        Op::Cast(to) => {
            arity(ops, 1)?;
            Ok(TensorType::new(*to, ops[0].shape.clone()))
        }
        Op::Broadcast(target) => {
            arity(ops, 1)?;
            let x = &ops[0].shape;
            let ok = x.rank() <= target.rank()
                && x.dims()
                    .iter()
                    .rev()
                    .zip(target.dims().iter().rev())
                    .all(|(&a, &b)| a == 1 || a == b);
            if !ok {
                return shape_err(format!("cannot broadcast {} to {}", ops[0], target));
            }
            Ok(TensorType::new(ops[0].dtype, target.clone()))
        }
        Op::Reshape(target) => {
            arity(ops, 1)?;
            if ops[0].shape.numel() != target.numel() {
                return shape_err(format!(
                    "cannot reshape {} ({} elements) to {} ({} elements)",
                    ops[0],
                    ops[0].shape.numel(),
                    target,
                    target.numel()
                ));
            }
            Ok(TensorType::new(ops[0].dtype, target.clone()))
        }
        Op::Transpose(perm) => {
            arity(ops, 1)?;
            let x = &ops[0].shape;
            per_axis("perm", perm, x.rank())?;
            let mut seen = vec![false; perm.len()];
            for &p in perm {
                if p >= perm.len() || std::mem::replace(&mut seen[p], true) {
                    return attr_err(format!(
                        "perm {perm:?} is not a permutation of 0..{}",
                        perm.len()
                    ));
                }
            }
            let dims: Vec<usize> = perm.iter().map(|&p| x.dim(p)).collect();
            Ok(TensorType::new(ops[0].dtype, dims))
        }
        Op::Slice { start, end, step } => {
            arity(ops, 1)?;
            let x = &ops[0].shape;
            per_axis("start", start, x.rank())?;
            per_axis("end", end, x.rank())?;
            per_axis("step", step, x.rank())?;
            let mut dims = Vec::with_capacity(x.rank());
            for i in 0..x.rank() {
                if start[i] > end[i] || end[i] > x.dim(i) || step[i] == 0 {
                    return attr_err(format!(
                        "slice {}..{} step {} is invalid for axis {i} of {}",
                        start[i], end[i], step[i], ops[0]
                    ));
                }
                dims.push((end[i] - start[i]).div_ceil(step[i]));
            }
            Ok(TensorType::new(ops[0].dtype, dims))
        }
        Op::Concat { axis } => {
            if ops.is_empty() {
                return Err(TypeError::Arity {
                    expected: "at least 1".into(),
                    got: 0,
                });
            }
            let first = ops[0];
            if *axis >= first.shape.rank() {
                return attr_err(format!("axis {axis} out of range for {first}"));
            }
            let mut total: usize = 0;
            for (i, t) in ops.iter().enumerate() {
                let same_other_dims = t.shape.rank() == first.shape.rank()
                    && (0..first.shape.rank())
                        .all(|d| d == *axis || t.shape.dim(d) == first.shape.dim(d));
                if t.dtype != first.dtype || !same_other_dims {
                    return shape_err(format!(
                        "operand {i} is {t}, which cannot be joined with {first} along axis {axis}"
                    ));
                }
                total = match total.checked_add(t.shape.dim(*axis)) {
                    Some(t) => t,
                    None => return shape_err(format!("concatenating along axis {axis} overflows")),
                };
            }
            let mut dims = first.shape.dims().to_vec();
            dims[*axis] = total;
            Ok(TensorType::new(first.dtype, dims))
        }
        Op::Pad { low, high, .. } => {
            arity(ops, 1)?;
            let x = &ops[0].shape;
            per_axis("low", low, x.rank())?;
            per_axis("high", high, x.rank())?;
            let dims: Vec<usize> = (0..x.rank())
                .map(|i| x.dim(i).saturating_add(low[i]).saturating_add(high[i]))
                .collect();
            Ok(TensorType::new(ops[0].dtype, dims))
        }
        Op::Reduce { axes, keepdims, .. } => {
            arity(ops, 1)?;
            want(
                ops[0].dtype.is_numeric(),
                0,
                ops[0],
                "a number type is required",
            )?;
            let x = &ops[0].shape;
            check_axes(axes, x.rank())?;
            let dims = reduced_dims(x, axes, *keepdims);
            Ok(TensorType::new(ops[0].dtype, dims))
        }
        Op::ArgMax { axis, keepdims } => {
            arity(ops, 1)?;
            want(
                ops[0].dtype.is_numeric(),
                0,
                ops[0],
                "a number type is required",
            )?;
            let x = &ops[0].shape;
            check_axes(&[*axis], x.rank())?;
            if x.dim(*axis) == 0 {
                return shape_err(format!("argmax over empty axis {axis} of {}", ops[0]));
            }
            Ok(TensorType::new(
                DType::I32,
                reduced_dims(x, &[*axis], *keepdims),
            ))
        }
        Op::MatMul => {
            arity(ops, 2)?;
            let (a, b) = (ops[0], ops[1]);
            want(a.dtype.is_numeric(), 0, a, "a number type is required")?;
            want(
                a.dtype == b.dtype,
                1,
                b,
                &format!("must match operand 0 ({})", a.dtype),
            )?;
            let (ra, rb) = (a.shape.rank(), b.shape.rank());
            if ra < 2 || ra != rb || a.shape.dims()[..ra - 2] != b.shape.dims()[..rb - 2] {
                return shape_err(format!(
                    "matmul needs [...,m,k] x [...,k,n] with equal batch dims, got {a} x {b}"
                ));
            }
            if a.shape.dim(ra - 1) != b.shape.dim(rb - 2) {
                return shape_err(format!(
                    "matmul inner dimensions differ: {a} x {b} ({} != {})",
                    a.shape.dim(ra - 1),
                    b.shape.dim(rb - 2)
                ));
            }
            let mut dims = a.shape.dims()[..ra - 1].to_vec();
            dims.push(b.shape.dim(rb - 1));
            Ok(TensorType::new(a.dtype, dims))
        }
        Op::Conv2d(c) => {
            arity(ops, 2)?;
            let (x, w) = (ops[0], ops[1]);
            conv_operands(x, w)?;
            if x.shape.dim(1) != w.shape.dim(1) {
                return shape_err(format!(
                    "input channels differ: input {x} has {}, weight {w} expects {}",
                    x.shape.dim(1),
                    w.shape.dim(1)
                ));
            }
            let [oh, ow] = conv_out(&x.shape, [w.shape.dim(2), w.shape.dim(3)], c)?;
            Ok(TensorType::new(
                x.dtype,
                [x.shape.dim(0), w.shape.dim(0), oh, ow],
            ))
        }
        Op::ConvTranspose2d {
            conv: c,
            output_padding,
        } => {
            arity(ops, 2)?;
            let (y, w) = (ops[0], ops[1]);
            conv_operands(y, w)?;
            if y.shape.dim(1) != w.shape.dim(0) {
                return shape_err(format!(
                    "input channels differ: input {y} has {}, weight {w} expects {}",
                    y.shape.dim(1),
                    w.shape.dim(0)
                ));
            }
            let mut out = [0; 2];
            for i in 0..2 {
                if c.stride[i] == 0 || c.dilation[i] == 0 {
                    return attr_err("stride and dilation must be positive".into());
                }
                if output_padding[i] >= c.stride[i].max(c.dilation[i]) {
                    return attr_err(format!(
                        "output_padding {output_padding:?} must be smaller than stride or dilation"
                    ));
                }
                let full = (y.shape.dim(2 + i).max(1) - 1)
                    .checked_mul(c.stride[i])
                    .and_then(|a| {
                        c.dilation[i]
                            .checked_mul(w.shape.dim(2 + i).max(1) - 1)
                            .and_then(|b| a.checked_add(b))
                    })
                    .and_then(|a| a.checked_add(output_padding[i] + 1));
                let two_pad = c.padding[i].checked_mul(2);
                let (Some(full), Some(two_pad)) = (full, two_pad) else {
                    return attr_err(format!(
                        "conv_transpose2d of {y} with {w}: attributes overflow"
                    ));
                };
                if y.shape.dim(2 + i) == 0 || w.shape.dim(2 + i) == 0 || full <= two_pad {
                    return shape_err(format!(
                        "conv_transpose2d of {y} with {w} has an empty output"
                    ));
                }
                out[i] = full - two_pad;
            }
            Ok(TensorType::new(
                y.dtype,
                [y.shape.dim(0), w.shape.dim(1), out[0], out[1]],
            ))
        }
        Op::Conv2dWeightGrad { conv: c, kernel } => {
            arity(ops, 2)?;
            let (x, dy) = (ops[0], ops[1]);
            conv_operands(x, dy)?;
            let [oh, ow] = conv_out(&x.shape, *kernel, c)?;
            if dy.shape.dim(0) != x.shape.dim(0) || dy.shape.dim(2) != oh || dy.shape.dim(3) != ow {
                return shape_err(format!(
                    "output gradient {dy} does not match the convolution of {x} (expected [{},_,{oh},{ow}])",
                    x.shape.dim(0)
                ));
            }
            Ok(TensorType::new(
                x.dtype,
                [dy.shape.dim(1), x.shape.dim(1), kernel[0], kernel[1]],
            ))
        }
        Op::Pool2d(p) => {
            arity(ops, 1)?;
            let x = ops[0];
            want(x.dtype.is_float(), 0, x, "a float type is required")?;
            rank_is(x, 0, 4, "NCHW input")?;
            let [oh, ow] = pool_out(&x.shape, p)?;
            Ok(TensorType::new(
                x.dtype,
                [x.shape.dim(0), x.shape.dim(1), oh, ow],
            ))
        }
        Op::Pool2dGrad(p) => {
            arity(ops, 2)?;
            let (x, dy) = (ops[0], ops[1]);
            want(x.dtype.is_float(), 0, x, "a float type is required")?;
            want(dy.dtype == x.dtype, 1, dy, "must match the input dtype")?;
            rank_is(x, 0, 4, "NCHW input")?;
            let [oh, ow] = pool_out(&x.shape, p)?;
            let expect = Shape::from([x.shape.dim(0), x.shape.dim(1), oh, ow]);
            if dy.shape != expect {
                return shape_err(format!(
                    "output gradient {dy} does not match the pooling output {expect} of {x}"
                ));
            }
            Ok(x.clone())
        }
        Op::Gather => {
            arity(ops, 2)?;
            let (table, idx) = (ops[0], ops[1]);
            want(idx.dtype == DType::I32, 1, idx, "indices must be i32")?;
            if table.shape.rank() == 0 {
                return shape_err(format!("gather needs a table of rank >= 1, got {table}"));
            }
            let mut dims = idx.shape.dims().to_vec();
            dims.extend_from_slice(&table.shape.dims()[1..]);
            Ok(TensorType::new(table.dtype, dims))
        }
        Op::ScatterAdd { rows } => {
            arity(ops, 2)?;
            let (idx, upd) = (ops[0], ops[1]);
            want(idx.dtype == DType::I32, 0, idx, "indices must be i32")?;
            want(upd.dtype.is_numeric(), 1, upd, "a number type is required")?;
            let r = idx.shape.rank();
            if upd.shape.rank() < r || upd.shape.dims()[..r] != *idx.shape.dims() {
                return shape_err(format!(
                    "updates {upd} must start with the index shape {}",
                    idx.shape
                ));
            }
            let mut dims = vec![*rows];
            dims.extend_from_slice(&upd.shape.dims()[r..]);
            Ok(TensorType::new(upd.dtype, dims))
        }
        Op::OneHot { depth, dtype } => {
            arity(ops, 1)?;
            want(ops[0].dtype == DType::I32, 0, ops[0], "indices must be i32")?;
            let mut dims = ops[0].shape.dims().to_vec();
            dims.push(*depth);
            Ok(TensorType::new(*dtype, dims))
        }
        Op::RandomUniform { shape, dtype, .. } => {
            arity(ops, 1)?;
            let seed = ops[0];
            want(
                seed.dtype == DType::I32 && seed.shape.rank() == 0,
                0,
                seed,
                "the seed must be an i32 scalar",
            )?;
            if !dtype.is_float() {
                return attr_err(format!("random_uniform produces floats, not {dtype}"));
            }
            Ok(TensorType::new(*dtype, shape.clone()))
        }
        Op::Fma => {
            arity(ops, 3)?;
            same_type(ops)?;
            want(
                ops[0].dtype.is_float(),
                0,
                ops[0],
                "a float type is required",
            )?;
            Ok(ops[0].clone())
        }
        Op::MatMulBias { .. } => {
            arity(ops, 3)?;
            let out = infer(&Op::MatMul, &ops[..2])?;
            want(out.dtype.is_float(), 0, ops[0], "a float type is required")?;
            let bias = ops[2];
            want(
                bias.dtype == out.dtype,
                2,
                bias,
                &format!("must match the product ({})", out.dtype),
            )?;
            let n = out.shape.dim(out.shape.rank() - 1);
            if bias.shape.dims() != [n] {
                return shape_err(format!(
                    "the bias must be [{n}] (one value per output column of {out}), got {bias}"
                ));
            }
            Ok(out)
        }
    }
}

fn conv_operands(x: &TensorType, w: &TensorType) -> Result<(), TypeError> {
    want(x.dtype.is_float(), 0, x, "a float type is required")?;
    want(
        w.dtype == x.dtype,
        1,
        w,
        &format!("must match operand 0 ({})", x.dtype),
    )?;
    rank_is(x, 0, 4, "NCHW")?;
    rank_is(w, 1, 4, "4-D")?;
    Ok(())
}

/// The dimensions left after reducing `axes` of `x`.
pub fn reduced_dims(x: &Shape, axes: &[usize], keepdims: bool) -> Vec<usize> {
    let mut dims = Vec::with_capacity(x.rank());
    for (i, &d) in x.dims().iter().enumerate() {
        if !axes.contains(&i) {
            dims.push(d);
        } else if keepdims {
            dims.push(1);
        }
    }
    dims
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BinaryOp, PoolKind, ReduceOp};

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
        let y = infer(
            &Op::Conv2d(c),
            &[&t(F, &[1, 2, 7, 7]), &t(F, &[4, 2, 3, 3])],
        )
        .unwrap();
        assert_eq!(y, t(F, &[1, 4, 3, 3]));
        // The transpose maps back to 7 with output_padding 0: (3-1)*2 + 2*2 + 0 + 1 - 2 = 7.
        let back = infer(
            &Op::ConvTranspose2d {
                conv: c,
                output_padding: [0, 0],
            },
            &[&y, &t(F, &[4, 2, 3, 3])],
        )
        .unwrap();
        assert_eq!(back, t(F, &[1, 2, 7, 7]));
        let dw = infer(
            &Op::Conv2dWeightGrad {
                conv: c,
                kernel: [3, 3],
            },
            &[&t(F, &[1, 2, 7, 7]), &y],
        )
        .unwrap();
        assert_eq!(dw, t(F, &[4, 2, 3, 3]));
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
}
