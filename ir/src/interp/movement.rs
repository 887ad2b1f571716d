//! Movement ops: broadcast, transpose, slice, concat, pad (reshape is a copy).

use super::num::{Elem, dispatch};
use crate::{HostTensor, Shape, TensorData};

/// Calls `f(offset)` for every multi-index `idx` of `dims` in row-major order, with
/// `offset = base + sum(idx[i] * strides[i])`. Nothing is visited if a dim is 0; a
/// rank-0 `dims` visits `base` once.
pub(super) fn for_each_offset(
    dims: &[usize],
    strides: &[usize],
    base: usize,
    mut f: impl FnMut(usize),
) {
    if dims.contains(&0) {
        return;
    }
    let mut idx = vec![0usize; dims.len()];
    let mut offset = base;
    loop {
        f(offset);
        // Odometer step: bump the last axis, carrying into the ones before it.
        let mut axis = dims.len();
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            idx[axis] += 1;
            offset += strides[axis];
            if idx[axis] < dims[axis] {
                break;
            }
            offset -= strides[axis] * dims[axis];
            idx[axis] = 0;
        }
    }
}

/// The offsets [`for_each_offset`] visits, collected.
pub(super) fn offsets(dims: &[usize], strides: &[usize], base: usize) -> Vec<usize> {
    let mut v = Vec::with_capacity(dims.iter().product());
    for_each_offset(dims, strides, base, |o| v.push(o));
    v
}

/// Reads `src` at the offsets of a strided view: the element at multi-index `idx` of
/// the result is `src[base + sum(idx[i] * strides[i])]`.
fn view<T: Elem>(src: &HostTensor, dims: &[usize], strides: &[usize], base: usize) -> TensorData {
    let src = T::slice(src.data());
    let mut out = Vec::with_capacity(dims.iter().product());
    for_each_offset(dims, strides, base, |o| out.push(src[o]));
    T::wrap(out)
}

pub(super) fn broadcast(x: &HostTensor, target: &Shape) -> TensorData {
    // Align on the right; new leading axes and size-1 axes repeat (stride 0).
    let lead = target.rank() - x.shape().rank();
    let xs = x.shape().strides();
    let strides: Vec<usize> = (0..target.rank())
        .map(|i| {
            if i < lead || x.shape().dim(i - lead) == 1 {
                0
            } else {
                xs[i - lead]
            }
        })
        .collect();
    dispatch!(any x.dtype(), view(x, target.dims(), &strides, 0))
}

pub(super) fn transpose(x: &HostTensor, perm: &[usize]) -> TensorData {
    // Output axis i walks input axis perm[i].
    let xs = x.shape().strides();
    let dims: Vec<usize> = perm.iter().map(|&p| x.shape().dim(p)).collect();
    let strides: Vec<usize> = perm.iter().map(|&p| xs[p]).collect();
    dispatch!(any x.dtype(), view(x, &dims, &strides, 0))
}

pub(super) fn slice(x: &HostTensor, start: &[usize], step: &[usize], out: &Shape) -> TensorData {
    let xs = x.shape().strides();
    let base = start.iter().zip(&xs).map(|(s, st)| s * st).sum();
    let strides: Vec<usize> = step.iter().zip(&xs).map(|(s, st)| s * st).collect();
    dispatch!(any x.dtype(), view(x, out.dims(), &strides, base))
}

pub(super) fn concat(xs: &[&HostTensor], axis: usize) -> TensorData {
    dispatch!(any xs[0].dtype(), concat_t(xs, axis))
}

fn concat_t<T: Elem>(xs: &[&HostTensor], axis: usize) -> TensorData {
    // Row-major: for each index of the axes before `axis`, each operand contributes
    // one contiguous block of `dim(axis) * inner` elements, in operand order.
    let dims = xs[0].shape().dims();
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product();
    let total: usize = xs.iter().map(|x| x.numel()).sum();
    let mut out = Vec::with_capacity(total);
    for o in 0..outer {
        for x in xs {
            let block = x.shape().dim(axis) * inner;
            out.extend_from_slice(&T::slice(x.data())[o * block..(o + 1) * block]);
        }
    }
    T::wrap(out)
}

pub(super) fn pad(x: &HostTensor, low: &[usize], value: f64, out: &Shape) -> TensorData {
    dispatch!(any x.dtype(), pad_t(x, low, value, out))
}

fn pad_t<T: Elem>(x: &HostTensor, low: &[usize], value: f64, out: &Shape) -> TensorData {
    let src = T::slice(x.data());
    let mut v = vec![T::from_f64(value); out.numel()];
    // Input element idx lands at idx + low in the output.
    let os = out.strides();
    let base = low.iter().zip(&os).map(|(l, s)| l * s).sum();
    let mut i = 0;
    for_each_offset(x.shape().dims(), &os, base, |o| {
        v[o] = src[i];
        i += 1;
    });
    T::wrap(v)
}
