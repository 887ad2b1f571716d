//! Pointwise ops: unary, binary, compare, select, fma, casts.

use super::{
    FLOAT, Inferred, NUMBER, arity, attr_err, one, same_type, shape_err, two, want, want_float,
};
use crate::{BinaryOp, DType, TensorType, UnaryOp};

pub fn unary(ops: &[&TensorType], k: &UnaryOp) -> Inferred {
    let x = one(ops)?;
    let ok = x.dtype.is_float() || (k.accepts_integers() && x.dtype.is_numeric());
    want(ok, 0, x, if k.accepts_integers() { NUMBER } else { FLOAT })?;
    if let UnaryOp::LeakyRelu(s) = k
        && !s.is_finite()
    {
        return attr_err(format!("leaky_relu slope must be finite, got {s}"));
    }
    Ok(x.clone())
}

pub fn binary(ops: &[&TensorType], k: &BinaryOp) -> Inferred {
    let (a, _) = two(ops)?;
    same_type(ops)?;
    let float_only = matches!(k, BinaryOp::Pow);
    let ok = a.dtype.is_float() || (!float_only && a.dtype.is_numeric());
    want(ok, 0, a, if float_only { FLOAT } else { NUMBER })?;
    Ok(a.clone())
}

pub fn compare(ops: &[&TensorType]) -> Inferred {
    let (a, _) = two(ops)?;
    same_type(ops)?;
    Ok(TensorType::new(DType::Bool, a.shape.clone()))
}

pub fn select(ops: &[&TensorType]) -> Inferred {
    arity(ops, 3)?;
    let (cond, value) = (ops[0], ops[1]);
    want(
        cond.dtype == DType::Bool,
        0,
        cond,
        "the condition must be bool",
    )?;
    same_type(&ops[1..])?;
    if cond.shape != value.shape {
        return shape_err(format!(
            "condition {cond} and values {value} differ in shape"
        ));
    }
    Ok(value.clone())
}

pub fn fma(ops: &[&TensorType]) -> Inferred {
    arity(ops, 3)?;
    same_type(ops)?;
    want_float(ops[0], 0)?;
    Ok(ops[0].clone())
}

pub fn stop_gradient(ops: &[&TensorType]) -> Inferred {
    Ok(one(ops)?.clone())
}

/// `all_reduce`: a float tensor, summed across processes into the same type.
pub fn all_reduce(ops: &[&TensorType]) -> Inferred {
    let x = one(ops)?;
    want(x.dtype.is_float(), 0, x, FLOAT)?;
    Ok(x.clone())
}

pub fn cast(ops: &[&TensorType], to: DType) -> Inferred {
    Ok(TensorType::new(to, one(ops)?.shape.clone()))
}
