//! Indexing and generation: gather, scatter-add, one-hot, random.

use super::{Inferred, attr_err, one, shape_err, two, want, want_indices, want_numeric};
use crate::{DType, Shape, TensorType};

pub fn gather(ops: &[&TensorType]) -> Inferred {
    let (table, idx) = two(ops)?;
    want_indices(idx, 1)?;
    if table.shape.rank() == 0 {
        return shape_err(format!("gather needs a table of rank >= 1, got {table}"));
    }
    let mut dims = idx.shape.dims().to_vec();
    dims.extend_from_slice(&table.shape.dims()[1..]);
    Ok(TensorType::new(table.dtype, dims))
}

pub fn scatter_add(ops: &[&TensorType], rows: usize) -> Inferred {
    let (idx, upd) = two(ops)?;
    want_indices(idx, 0)?;
    want_numeric(upd, 1)?;
    let r = idx.shape.rank();
    if upd.shape.rank() < r || upd.shape.dims()[..r] != *idx.shape.dims() {
        return shape_err(format!(
            "updates {upd} must start with the index shape {}",
            idx.shape
        ));
    }
    let mut dims = vec![rows];
    dims.extend_from_slice(&upd.shape.dims()[r..]);
    Ok(TensorType::new(upd.dtype, dims))
}

pub fn one_hot(ops: &[&TensorType], depth: usize, dtype: DType) -> Inferred {
    let idx = one(ops)?;
    want_indices(idx, 0)?;
    let mut dims = idx.shape.dims().to_vec();
    dims.push(depth);
    Ok(TensorType::new(dtype, dims))
}

pub fn random_uniform(ops: &[&TensorType], shape: &Shape, dtype: DType) -> Inferred {
    let seed = one(ops)?;
    let scalar_i32 = seed.dtype == DType::I32 && seed.shape.rank() == 0;
    want(scalar_i32, 0, seed, "the seed must be an i32 scalar")?;
    if !dtype.is_float() {
        return attr_err(format!("random_uniform produces floats, not {dtype}"));
    }
    Ok(TensorType::new(dtype, shape.clone()))
}
