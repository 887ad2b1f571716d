//! Reductions over axes, and argmax.

use super::Fault;
use super::movement::{for_each_offset, offsets};
use super::num::{Num, dispatch};
use crate::{HostTensor, ReduceOp, TensorData};

pub(super) fn reduce(kind: ReduceOp, x: &HostTensor, axes: &[usize]) -> Result<TensorData, Fault> {
    dispatch!(num x.dtype(), reduce_t(kind, x, axes))
}

fn reduce_t<T: Num>(kind: ReduceOp, x: &HostTensor, axes: &[usize]) -> Result<TensorData, Fault> {
    let src = T::slice(x.data());
    let dims = x.shape().dims();
    let strides = x.shape().strides();
    let split = |reduced: bool| -> (Vec<usize>, Vec<usize>) {
        (0..dims.len())
            .filter(|i| axes.contains(i) == reduced)
            .map(|i| (dims[i], strides[i]))
            .unzip()
    };
    let (kept_dims, kept_strides) = split(false);
    let (red_dims, red_strides) = split(true);
    // Offsets of one reduction window relative to its first element, in row-major
    // order over the reduced axes: the order the accumulation follows.
    let window = offsets(&red_dims, &red_strides, 0);
    let fold = |init, f| fold_windows(src, (&kept_dims, &kept_strides), &window, init, f);
    let out = match kind {
        ReduceOp::Sum => fold(T::ZERO, T::plus),
        ReduceOp::Max => fold(T::LOWEST, T::max_nan),
        ReduceOp::Min => fold(T::HIGHEST, T::min_nan),
        ReduceOp::Mean => fold(T::ZERO, T::plus)
            .into_iter()
            .map(|sum| T::mean_of(sum, window.len()).ok_or(Fault::DivisionByZero))
            .collect::<Result<_, _>>()?,
    };
    Ok(T::wrap(out))
}

/// Folds `f` over each window: one output per multi-index of the kept axes, each
/// starting from `init` and visiting `base + window[j]` in order.
fn fold_windows<T: Num>(
    src: &[T],
    (kept_dims, kept_strides): (&[usize], &[usize]),
    window: &[usize],
    init: T,
    f: fn(T, T) -> T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(kept_dims.iter().product());
    for_each_offset(kept_dims, kept_strides, 0, |base| {
        let mut acc = init;
        for &o in window {
            acc = f(acc, src[base + o]);
        }
        out.push(acc);
    });
    out
}

pub(super) fn argmax(x: &HostTensor, axis: usize) -> TensorData {
    dispatch!(num x.dtype(), argmax_t(x, axis))
}

fn argmax_t<T: Num>(x: &HostTensor, axis: usize) -> TensorData {
    let src = T::slice(x.data());
    let dims = x.shape().dims();
    let outer: usize = dims[..axis].iter().product();
    let n = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| src[(o * n + k) * inner + i];
            out.push(first_max(n, at) as i32);
        }
    }
    TensorData::I32(out)
}

/// The position of the first maximum among `at(0..n)` (`n >= 1`); NaN counts as
/// larger than everything, so the first NaN wins.
pub(super) fn first_max<T: Num>(n: usize, at: impl Fn(usize) -> T) -> usize {
    let (mut best, mut best_k) = (at(0), 0);
    for k in 1..n {
        if best.is_nan() {
            break;
        }
        let v = at(k);
        if v.is_nan() || v > best {
            (best, best_k) = (v, k);
        }
    }
    best_k
}
