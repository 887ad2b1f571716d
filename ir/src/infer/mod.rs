//! Shape and dtype inference: the one place that states each op's typing rule.
//!
//! [`infer`] dispatches on the op; the rules live by family: [`elementwise`]
//! (pointwise, compare, select, casts), [`movement`] (broadcast, reshape,
//! transpose, slice, concat, pad, reductions), [`contract`] (matmul and the
//! sliding-window ops), [`index`] (gather, scatter, one-hot, random) and [`scan`]
//! (loops).

mod contract;
mod elementwise;
mod index;
mod movement;
mod scan;

use crate::{DType, Op, TensorType};

pub use contract::window_out;
pub use movement::reduced_dims;

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

/// The output type of `op` applied to operands of types `ops`; also rejects
/// results too large to address (see [`TensorType::check_size`]).
pub fn infer(op: &Op, ops: &[&TensorType]) -> Result<TensorType, TypeError> {
    let ty = infer_unchecked(op, ops)?;
    ty.check_size().map_err(TypeError::Shape)?;
    Ok(ty)
}

fn infer_unchecked(op: &Op, ops: &[&TensorType]) -> Inferred {
    use {contract as c, elementwise as e, index as i, movement as m};
    match op {
        Op::Input => Err(TypeError::Leaf("input")),
        Op::Param => Err(TypeError::Leaf("param")),
        Op::Const(t) => {
            arity(ops, 0)?;
            Ok(t.ty())
        }
        Op::Unary(k) => e::unary(ops, k),
        Op::Binary(k) => e::binary(ops, k),
        Op::Compare(_) => e::compare(ops),
        Op::Select => e::select(ops),
        Op::StopGradient => e::stop_gradient(ops),
        Op::Cast(to) => e::cast(ops, *to),
        Op::Fma => e::fma(ops),
        Op::Broadcast(target) => m::broadcast(ops, target),
        Op::Reshape(target) => m::reshape(ops, target),
        Op::Transpose(perm) => m::transpose(ops, perm),
        Op::Slice { start, end, step } => m::slice(ops, start, end, step),
        Op::Concat { axis } => m::concat(ops, *axis),
        Op::Pad { low, high, .. } => m::pad(ops, low, high),
        Op::Reduce { axes, keepdims, .. } => m::reduce(ops, axes, *keepdims),
        Op::ArgMax { axis, keepdims } => m::argmax(ops, *axis, *keepdims),
        Op::MatMul => c::matmul(ops),
        Op::MatMulBias { .. } => c::matmul_bias(ops),
        Op::Conv2d(conv) => c::conv2d(ops, conv),
        Op::ConvTranspose2d {
            conv,
            output_padding,
        } => c::conv_transpose2d(ops, conv, *output_padding),
        Op::Conv2dWeightGrad { conv, kernel } => c::conv2d_weight_grad(ops, conv, *kernel),
        Op::Pool2d(p) => c::pool2d(ops, p),
        Op::Pool2dGrad(p) => c::pool2d_grad(ops, p),
        Op::Gather => i::gather(ops),
        Op::ScatterAdd { rows } => i::scatter_add(ops, *rows),
        Op::OneHot { depth, dtype } => i::one_hot(ops, *depth, *dtype),
        Op::RandomUniform { shape, dtype, .. } => i::random_uniform(ops, shape, *dtype),
        Op::Scan(s) => scan::scan(ops, s),
        Op::AllReduce => e::all_reduce(ops),
    }
}

// Checks shared by the families.

/// What a typing rule returns.
type Inferred = Result<TensorType, TypeError>;

/// The operand of a one-operand op.
fn one<'a>(ops: &[&'a TensorType]) -> Result<&'a TensorType, TypeError> {
    arity(ops, 1)?;
    Ok(ops[0])
}

/// The operands of a two-operand op.
fn two<'a>(ops: &[&'a TensorType]) -> Result<(&'a TensorType, &'a TensorType), TypeError> {
    arity(ops, 2)?;
    Ok((ops[0], ops[1]))
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

const FLOAT: &str = "a float type is required";
const NUMBER: &str = "a number type is required";

/// Operand `index` must have a float dtype.
fn want_float(t: &TensorType, index: usize) -> Result<(), TypeError> {
    want(t.dtype.is_float(), index, t, FLOAT)
}

/// Operand `index` must have a numeric dtype.
fn want_numeric(t: &TensorType, index: usize) -> Result<(), TypeError> {
    want(t.dtype.is_numeric(), index, t, NUMBER)
}

/// Operand `index` must be i32 indices.
fn want_indices(t: &TensorType, index: usize) -> Result<(), TypeError> {
    want(t.dtype == DType::I32, index, t, "indices must be i32")
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

#[cfg(test)]
mod tests;
