//! Native index routines over contiguous buffers: `gather`, `scatter_add`,
//! `one_hot`, `argmax`. Indices are checked: a bad one is an error naming it, never
//! an out-of-bounds access.

/// Elements the routines move or add.
pub trait Element: Copy + PartialOrd {
    const ZERO: Self;
    const ONE: Self;
    fn add(self, other: Self) -> Self;
    fn is_nan(self) -> bool;
}

macro_rules! element {
    ($t:ty, $zero:expr, $one:expr, $add:expr, $nan:expr) => {
        impl Element for $t {
            const ZERO: Self = $zero;
            const ONE: Self = $one;
            fn add(self, other: Self) -> Self {
                let f: fn($t, $t) -> $t = $add;
                f(self, other)
            }
            fn is_nan(self) -> bool {
                let f: fn($t) -> bool = $nan;
                f(self)
            }
        }
    };
}

element!(f32, 0.0, 1.0, |a, b| a + b, f32::is_nan);
element!(f64, 0.0, 1.0, |a, b| a + b, f64::is_nan);
element!(i32, 0, 1, i32::wrapping_add, |_| false);
element!(u8, 0, 1, |a, b| a | b, |_| false);

fn check(index: i32, bound: usize) -> Result<usize, String> {
    usize::try_from(index)
        .ok()
        .filter(|&i| i < bound)
        .ok_or_else(|| format!("index {index} is out of range [0, {bound})"))
}

/// `out[i, :] = table[idx[i], :]` with rows of `row` elements.
pub fn gather<T: Element>(
    table: &[T],
    idx: &[i32],
    out: &mut [T],
    row: usize,
) -> Result<(), String> {
    let rows = table.len().checked_div(row).unwrap_or(0);
    for (i, &k) in idx.iter().enumerate() {
        let k = check(k, rows)?;
        out[i * row..][..row].copy_from_slice(&table[k * row..][..row]);
    }
    Ok(())
}

/// `out = 0; out[idx[i], :] += upd[i, :]`.
pub fn scatter_add<T: Element>(
    idx: &[i32],
    upd: &[T],
    out: &mut [T],
    row: usize,
) -> Result<(), String> {
    let rows = out.len().checked_div(row).unwrap_or(0);
    out.fill(T::ZERO);
    for (i, &k) in idx.iter().enumerate() {
        let k = check(k, rows)?;
        for (o, &u) in out[k * row..][..row].iter_mut().zip(&upd[i * row..][..row]) {
            *o = o.add(u);
        }
    }
    Ok(())
}

/// `out[i, :]` is 1 at `idx[i]` and 0 elsewhere.
pub fn one_hot<T: Element>(idx: &[i32], out: &mut [T], depth: usize) -> Result<(), String> {
    out.fill(T::ZERO);
    for (i, &k) in idx.iter().enumerate() {
        out[i * depth + check(k, depth)?] = T::ONE;
    }
    Ok(())
}

/// Index of the first maximum along the middle axis of `x` viewed as
/// `[outer, axis, inner]`; NaN counts as the maximum (the first NaN wins).
pub fn argmax<T: Element>(x: &[T], out: &mut [i32], outer: usize, axis: usize, inner: usize) {
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| x[(o * axis + k) * inner + i];
            let mut best = 0;
            for k in 1..axis {
                let (v, b) = (at(k), at(best));
                if !b.is_nan() && (v > b || v.is_nan()) {
                    best = k;
                }
            }
            out[o * inner + i] = best as i32;
        }
    }
}
