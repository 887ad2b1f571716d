//! Data movement (broadcast, reshape, transpose, slice, concat, pad) and
//! reductions over axes.

use super::{Inferred, TypeError, attr_err, one, shape_err, want_numeric};
use crate::{DType, Shape, TensorType};

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

/// The operand of a one-operand op whose attributes `(name, values)` give one
/// value per axis, once each has been checked to have that many.
fn per_axis<'a>(
    ops: &[&'a TensorType],
    attrs: &[(&str, &[usize])],
) -> Result<&'a TensorType, TypeError> {
    let x = one(ops)?;
    let rank = x.shape.rank();
    for (name, v) in attrs {
        if v.len() != rank {
            return attr_err(format!(
                "`{name}` has {} entries but the operand has rank {rank}",
                v.len()
            ));
        }
    }
    Ok(x)
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

pub fn broadcast(ops: &[&TensorType], target: &Shape) -> Inferred {
    let x = one(ops)?;
    let ok = x.shape.rank() <= target.rank()
        && x.shape
            .dims()
            .iter()
            .rev()
            .zip(target.dims().iter().rev())
            .all(|(&a, &b)| a == 1 || a == b);
    if !ok {
        return shape_err(format!("cannot broadcast {x} to {target}"));
    }
    Ok(TensorType::new(x.dtype, target.clone()))
}

pub fn reshape(ops: &[&TensorType], target: &Shape) -> Inferred {
    let x = one(ops)?;
    if x.shape.numel() != target.numel() {
        return shape_err(format!(
            "cannot reshape {x} ({} elements) to {target} ({} elements)",
            x.shape.numel(),
            target.numel()
        ));
    }
    Ok(TensorType::new(x.dtype, target.clone()))
}

pub fn transpose(ops: &[&TensorType], perm: &[usize]) -> Inferred {
    let x = per_axis(ops, &[("perm", perm)])?;
    let mut seen = vec![false; perm.len()];
    for &p in perm {
        if p >= perm.len() || std::mem::replace(&mut seen[p], true) {
            return attr_err(format!(
                "perm {perm:?} is not a permutation of 0..{}",
                perm.len()
            ));
        }
    }
    let dims: Vec<usize> = perm.iter().map(|&p| x.shape.dim(p)).collect();
    Ok(TensorType::new(x.dtype, dims))
}

pub fn slice(ops: &[&TensorType], start: &[usize], end: &[usize], step: &[usize]) -> Inferred {
    let x = per_axis(ops, &[("start", start), ("end", end), ("step", step)])?;
    let mut dims = Vec::with_capacity(x.shape.rank());
    for i in 0..x.shape.rank() {
        if start[i] > end[i] || end[i] > x.shape.dim(i) || step[i] == 0 {
            return attr_err(format!(
                "slice {}..{} step {} is invalid for axis {i} of {x}",
                start[i], end[i], step[i]
            ));
        }
        dims.push((end[i] - start[i]).div_ceil(step[i]));
    }
    Ok(TensorType::new(x.dtype, dims))
}

pub fn concat(ops: &[&TensorType], axis: usize) -> Inferred {
    let Some(&first) = ops.first() else {
        return Err(TypeError::Arity {
            expected: "at least 1".into(),
            got: 0,
        });
    };
    let rank = first.shape.rank();
    if axis >= rank {
        return attr_err(format!("axis {axis} out of range for {first}"));
    }
    let mut total: usize = 0;
    for (i, t) in ops.iter().enumerate() {
        let same_other_dims = t.shape.rank() == rank
            && (0..rank).all(|d| d == axis || t.shape.dim(d) == first.shape.dim(d));
        if t.dtype != first.dtype || !same_other_dims {
            return shape_err(format!(
                "operand {i} is {t}, which cannot be joined with {first} along axis {axis}"
            ));
        }
        total = match total.checked_add(t.shape.dim(axis)) {
            Some(t) => t,
            None => return shape_err(format!("concatenating along axis {axis} overflows")),
        };
    }
    let mut dims = first.shape.dims().to_vec();
    dims[axis] = total;
    Ok(TensorType::new(first.dtype, dims))
}

pub fn pad(ops: &[&TensorType], low: &[usize], high: &[usize]) -> Inferred {
    let x = per_axis(ops, &[("low", low), ("high", high)])?;
    let dims: Vec<usize> = (0..x.shape.rank())
        .map(|i| {
            x.shape
                .dim(i)
                .saturating_add(low[i])
                .saturating_add(high[i])
        })
        .collect();
    Ok(TensorType::new(x.dtype, dims))
}

pub fn reduce(ops: &[&TensorType], axes: &[usize], keepdims: bool) -> Inferred {
    let x = one(ops)?;
    want_numeric(x, 0)?;
    check_axes(axes, x.shape.rank())?;
    Ok(TensorType::new(
        x.dtype,
        reduced_dims(&x.shape, axes, keepdims),
    ))
}

pub fn argmax(ops: &[&TensorType], axis: usize, keepdims: bool) -> Inferred {
    let x = one(ops)?;
    want_numeric(x, 0)?;
    check_axes(&[axis], x.shape.rank())?;
    if x.shape.dim(axis) == 0 {
        return shape_err(format!("argmax over empty axis {axis} of {x}"));
    }
    let dims = reduced_dims(&x.shape, &[axis], keepdims);
    Ok(TensorType::new(DType::I32, dims))
}
