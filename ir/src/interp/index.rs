//! Indexing ops: gather, scatter-add, one-hot. Indices are checked, never clamped.

use super::Fault;
use super::num::{Elem, Num, dispatch};
use crate::{DType, HostTensor, TensorData};

/// `index` as a position in `[0, bound)`, or the fault naming it.
fn checked(index: i32, bound: usize) -> Result<usize, Fault> {
    usize::try_from(index)
        .ok()
        .filter(|&i| i < bound)
        .ok_or(Fault::Index { index, bound })
}

pub(super) fn gather(table: &HostTensor, idx: &HostTensor) -> Result<TensorData, Fault> {
    dispatch!(any table.dtype(), gather_t(table, idx))
}

fn gather_t<T: Elem>(table: &HostTensor, idx: &HostTensor) -> Result<TensorData, Fault> {
    let tv = T::slice(table.data());
    let rows = table.shape().dim(0);
    let row: usize = table.shape().dims()[1..].iter().product();
    let idx = i32::slice(idx.data());
    let mut out = Vec::with_capacity(idx.len() * row);
    for &i in idx {
        let r = checked(i, rows)?;
        out.extend_from_slice(&tv[r * row..(r + 1) * row]);
    }
    Ok(T::wrap(out))
}

pub(super) fn scatter_add(
    idx: &HostTensor,
    upd: &HostTensor,
    rows: usize,
) -> Result<TensorData, Fault> {
    dispatch!(num upd.dtype(), scatter_add_t(idx, upd, rows))
}

/// Zeros, then `out[idx[j]] += upd[j]` for each index position `j` in row-major
/// order (so repeated indices accumulate in that order).
fn scatter_add_t<T: Num>(
    idx: &HostTensor,
    upd: &HostTensor,
    rows: usize,
) -> Result<TensorData, Fault> {
    let uv = T::slice(upd.data());
    let row: usize = upd.shape().dims()[idx.shape().rank()..].iter().product();
    let mut out = vec![T::ZERO; rows * row];
    for (j, &i) in i32::slice(idx.data()).iter().enumerate() {
        let r = checked(i, rows)?;
        let dst = &mut out[r * row..(r + 1) * row];
        for (d, &u) in dst.iter_mut().zip(&uv[j * row..(j + 1) * row]) {
            *d = d.plus(u);
        }
    }
    Ok(T::wrap(out))
}

pub(super) fn one_hot(idx: &HostTensor, depth: usize, dtype: DType) -> Result<TensorData, Fault> {
    dispatch!(any dtype, one_hot_t(idx, depth))
}

fn one_hot_t<T: Elem>(idx: &HostTensor, depth: usize) -> Result<TensorData, Fault> {
    let idx = i32::slice(idx.data());
    let mut out = vec![T::from_f64(0.0); idx.len() * depth];
    for (j, &i) in idx.iter().enumerate() {
        out[j * depth + checked(i, depth)?] = T::from_f64(1.0);
    }
    Ok(T::wrap(out))
}
