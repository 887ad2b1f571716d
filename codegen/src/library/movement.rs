//! Data movement: `pad` and `concat` over contiguous buffers (every dtype), and
//! the host copies of the reference fallback (a strided operand read into a
//! [`HostTensor`], a result written back).

use kiln_ir::kernel::CallInput;
use kiln_ir::{DType, HostTensor, TensorData};

/// Copies `x` (shape `dims`) into `out` (shape `dims + low + high`) after filling it
/// with `value`.
pub fn pad<T: Copy>(
    x: &[T],
    dims: &[usize],
    low: &[usize],
    out_dims: &[usize],
    value: T,
    out: &mut [T],
) {
    out.fill(value);
    let rank = dims.len();
    if rank == 0 {
        out.copy_from_slice(x);
        return;
    }
    let row = dims[rank - 1];
    let out_strides = strides(out_dims);
    let rows = x.len().checked_div(row).unwrap_or(0);
    let mut idx = vec![0usize; rank - 1];
    for r in 0..rows {
        let mut at = low[rank - 1];
        for d in 0..rank - 1 {
            at += (idx[d] + low[d]) * out_strides[d];
        }
        out[at..at + row].copy_from_slice(&x[r * row..][..row]);
        for d in (0..rank - 1).rev() {
            idx[d] += 1;
            if idx[d] < dims[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// Joins `parts` (each `[outer, len_k, inner]` around `axis`) into `out`.
pub fn concat<T: Copy>(parts: &[(&[T], usize)], outer: usize, inner: usize, out: &mut [T]) {
    let total: usize = parts.iter().map(|&(_, len)| len).sum();
    for o in 0..outer {
        let mut at = o * total * inner;
        for &(x, len) in parts {
            let block = len * inner;
            out[at..at + block].copy_from_slice(&x[o * block..][..block]);
            at += block;
        }
    }
}

fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// The pad value converted like `HostTensor::full` converts (`as`; non-zero is true).
pub(super) fn pad_value<T: PadValue>(v: f64) -> T {
    T::from_f64(v)
}

pub(super) trait PadValue {
    fn from_f64(v: f64) -> Self;
}

impl PadValue for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl PadValue for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
}

impl PadValue for i32 {
    fn from_f64(v: f64) -> Self {
        v as i32
    }
}

impl PadValue for u8 {
    fn from_f64(v: f64) -> Self {
        (v != 0.0) as u8
    }
}

/// Copies the operand `input` (a strided view of the buffer at `base`) into a
/// host tensor.
///
/// # Safety
/// `base` must be the live buffer `input.access` addresses.
pub(super) unsafe fn read(base: *const u8, input: &CallInput) -> HostTensor {
    let ty = &input.ty;
    let shape = &ty.shape;
    let n = shape.numel();
    // Element offsets of the view, in row-major order of its shape.
    let mut offsets = Vec::with_capacity(n);
    let mut idx = vec![0usize; shape.rank()];
    for _ in 0..n {
        offsets.push(
            input.access.offset
                + idx
                    .iter()
                    .zip(&input.access.strides)
                    .map(|(i, s)| i * s)
                    .sum::<usize>(),
        );
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape.dim(d) {
                break;
            }
            idx[d] = 0;
        }
    }
    // SAFETY: every offset lies in the buffer the access was built for.
    let data = unsafe {
        match ty.dtype {
            DType::F32 => TensorData::F32(
                offsets
                    .iter()
                    .map(|&o| *(base as *const f32).add(o))
                    .collect(),
            ),
            DType::F64 => TensorData::F64(
                offsets
                    .iter()
                    .map(|&o| *(base as *const f64).add(o))
                    .collect(),
            ),
            DType::I32 => TensorData::I32(
                offsets
                    .iter()
                    .map(|&o| *(base as *const i32).add(o))
                    .collect(),
            ),
            DType::Bool => TensorData::Bool(offsets.iter().map(|&o| *base.add(o) != 0).collect()),
        }
    };
    HostTensor::new(shape.clone(), data).expect("sized from the type")
}

/// Writes `t` to `ptr`.
///
/// # Safety
/// `ptr` must point to a writable buffer of `t`'s type.
pub(super) unsafe fn write(ptr: *mut u8, t: &HostTensor) {
    // SAFETY: as above; the destination holds exactly `t.numel()` elements.
    unsafe {
        match t.data() {
            TensorData::F32(v) => {
                std::ptr::copy_nonoverlapping(v.as_ptr(), ptr as *mut f32, v.len())
            }
            TensorData::F64(v) => {
                std::ptr::copy_nonoverlapping(v.as_ptr(), ptr as *mut f64, v.len())
            }
            TensorData::I32(v) => {
                std::ptr::copy_nonoverlapping(v.as_ptr(), ptr as *mut i32, v.len())
            }
            TensorData::Bool(v) => {
                for (i, &b) in v.iter().enumerate() {
                    *ptr.add(i) = b as u8;
                }
            }
        }
    }
}
