//! Contractions and sliding windows: matmul, convolutions and pooling.

use super::{
    Inferred, TypeError, arity, attr_err, infer, one, rank_is, shape_err, two, want, want_float,
    want_numeric,
};
use crate::{Conv2dAttrs, Op, Pool2dAttrs, Shape, TensorType};

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

/// Operand 1 must have the dtype of operand 0.
fn same_dtype(a: &TensorType, b: &TensorType) -> Result<(), TypeError> {
    want(
        b.dtype == a.dtype,
        1,
        b,
        &format!("must match operand 0 ({})", a.dtype),
    )
}

fn conv_operands(x: &TensorType, w: &TensorType) -> Result<(), TypeError> {
    want_float(x, 0)?;
    same_dtype(x, w)?;
    rank_is(x, 0, 4, "NCHW")?;
    rank_is(w, 1, 4, "4-D")?;
    Ok(())
}

/// The input's channel count `x.dim(1)` must equal the weight's `w.dim(axis)`.
fn channels_match(x: &TensorType, w: &TensorType, axis: usize) -> Result<(), TypeError> {
    if x.shape.dim(1) != w.shape.dim(axis) {
        return shape_err(format!(
            "input channels differ: input {x} has {}, weight {w} expects {}",
            x.shape.dim(1),
            w.shape.dim(axis)
        ));
    }
    Ok(())
}

pub fn matmul(ops: &[&TensorType]) -> Inferred {
    let (a, b) = two(ops)?;
    want_numeric(a, 0)?;
    same_dtype(a, b)?;
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

pub fn matmul_bias(ops: &[&TensorType]) -> Inferred {
    arity(ops, 3)?;
    let out = infer(&Op::MatMul, &ops[..2])?;
    want_float(ops[0], 0)?;
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

pub fn conv2d(ops: &[&TensorType], c: &Conv2dAttrs) -> Inferred {
    let (x, w) = two(ops)?;
    conv_operands(x, w)?;
    channels_match(x, w, 1)?;
    let [oh, ow] = conv_out(&x.shape, [w.shape.dim(2), w.shape.dim(3)], c)?;
    Ok(TensorType::new(
        x.dtype,
        [x.shape.dim(0), w.shape.dim(0), oh, ow],
    ))
}

pub fn conv_transpose2d(ops: &[&TensorType], c: &Conv2dAttrs, out_pad: [usize; 2]) -> Inferred {
    let (y, w) = two(ops)?;
    conv_operands(y, w)?;
    channels_match(y, w, 0)?;
    let mut out = [0; 2];
    for i in 0..2 {
        if c.stride[i] == 0 || c.dilation[i] == 0 {
            return attr_err("stride and dilation must be positive".into());
        }
        if out_pad[i] >= c.stride[i].max(c.dilation[i]) {
            return attr_err(format!(
                "output_padding {out_pad:?} must be smaller than stride or dilation"
            ));
        }
        let full = (y.shape.dim(2 + i).max(1) - 1)
            .checked_mul(c.stride[i])
            .and_then(|a| {
                c.dilation[i]
                    .checked_mul(w.shape.dim(2 + i).max(1) - 1)
                    .and_then(|b| a.checked_add(b))
            })
            .and_then(|a| a.checked_add(out_pad[i] + 1));
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

pub fn conv2d_weight_grad(ops: &[&TensorType], c: &Conv2dAttrs, kernel: [usize; 2]) -> Inferred {
    let (x, dy) = two(ops)?;
    conv_operands(x, dy)?;
    let [oh, ow] = conv_out(&x.shape, kernel, c)?;
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

pub fn pool2d(ops: &[&TensorType], p: &Pool2dAttrs) -> Inferred {
    let x = one(ops)?;
    want_float(x, 0)?;
    rank_is(x, 0, 4, "NCHW input")?;
    let [oh, ow] = pool_out(&x.shape, p)?;
    Ok(TensorType::new(
        x.dtype,
        [x.shape.dim(0), x.shape.dim(1), oh, ow],
    ))
}

pub fn pool2d_grad(ops: &[&TensorType], p: &Pool2dAttrs) -> Inferred {
    let (x, dy) = two(ops)?;
    want_float(x, 0)?;
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
