//! Native data movement over contiguous buffers: `pad` and `concat`.

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
