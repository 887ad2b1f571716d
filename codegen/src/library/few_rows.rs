//! f32 products with at most 16 rows, `C[m, n] = A[m, k] · B[k, n]`, without
//! packing B: the per-step products of a recurrent layer (`h · W_hhᵀ` and
//! `dgates · W_hh`, the batch as rows) and small-batch dense layers.
//!
//! A general GEMM (matrixmultiply) packs B into panels on every call. For a loop
//! body that multiplies the same 256 KB weight on every step, packing costs about
//! as much as multiplying. Two unpacked kernels, by B's layout:
//!
//! - B row-major (`B[k, n0..]` contiguous): [`super::thin::small_m`], B read in
//!   place panel by panel against register tiles of A's rows;
//! - B column-major, i.e. `A · Wᵀ` with `W[n, k]` row-major (`cols_of_b`): the
//!   rows of A are the vector lanes (A transposed once into a small scratch, zero
//!   padded to 8 or 16 lanes), one accumulator per column of C, W broadcast
//!   element by element while walking its rows along `k`.
//!
//! Both are compiled per instruction set (AVX-512, AVX2 with FMA, baseline) from
//! one generic body, as in [`super::thin`]. Tails read zero-padded copies, so
//! nothing outside the operands is read or written. Each output element is summed
//! over `k` in order: the result does not depend on how the columns are split
//! across threads.

use super::thin::{self, Isa, isa, madd};

/// The most rows of A one call takes.
pub const MAX_ROWS: usize = 16;

/// A strided f32 matrix operand: element `(i, j)` at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy, Debug)]
pub struct Strided {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

impl Strided {
    /// The element at `(i, j)`.
    ///
    /// # Safety
    /// `(i, j)` must be inside the operand.
    #[inline(always)]
    unsafe fn at(self, i: usize, j: usize) -> f32 {
        // SAFETY: guaranteed by the caller.
        unsafe { *self.ptr.add(i * self.rs + j * self.cs) }
    }
}

thread_local! {
    /// Working memory: A copied, B's row offsets or a partial W panel.
    static SCRATCH: std::cell::RefCell<Scratch> = const {
        std::cell::RefCell::new(Scratch { a: Vec::new(), rows: Vec::new(), tail: Vec::new() })
    };
}

struct Scratch {
    a: Vec<f32>,
    rows: Vec<usize>,
    tail: Vec<f32>,
}

/// `C = A · B` for `[m, k] × [k, n]` with `1 ≤ m ≤ MAX_ROWS`, C row-major with row
/// stride `ldc ≥ n` (overwritten). Returns false, doing nothing, where it does
/// not apply: `m` out of range, or B contiguous along neither axis.
///
/// # Safety
/// `a` and `b` must address `m × k` and `k × n` elements of live memory at their
/// strides, `c` an `m × n` block with row stride `ldc`, not overlapping them.
pub unsafe fn product(
    m: usize,
    k: usize,
    n: usize,
    a: Strided,
    b: Strided,
    c: *mut f32,
    ldc: usize,
) -> bool {
    if !(1..=MAX_ROWS).contains(&m) || !(b.cs == 1 || b.rs == 1) {
        return false;
    }
    if n == 0 {
        return true;
    }
    SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        // SAFETY: C is m rows of ldc ≥ n elements (the last row n).
        let c = unsafe { std::slice::from_raw_parts_mut(c, (m - 1) * ldc + n) };
        if b.cs == 1 {
            // A row-major (copied unless its rows are contiguous), B by its row
            // offsets.
            let (av, lda): (&[f32], usize) = if a.cs == 1 && (a.rs >= k || m == 1) {
                let len = if k == 0 { 0 } else { (m - 1) * a.rs + k };
                // SAFETY: A's m rows are k contiguous elements `a.rs` apart.
                (unsafe { std::slice::from_raw_parts(a.ptr, len) }, a.rs)
            } else {
                s.a.clear();
                for i in 0..m {
                    // SAFETY: (i, j) is inside A.
                    s.a.extend((0..k).map(|j| unsafe { a.at(i, j) }));
                }
                (&s.a, k)
            };
            let len = if k == 0 { 0 } else { (k - 1) * b.rs + n };
            // SAFETY: B's rows are n contiguous elements `b.rs` apart.
            let bs = unsafe { std::slice::from_raw_parts(b.ptr, len) };
            if b.rs >= n || k <= 1 {
                let ldb = b.rs.max(n);
                thin::small_m_strided((m, n, k), av, lda, bs, ldb, c, ldc, false, &mut s.tail);
            } else {
                // Overlapping rows (a broadcast B): by row offsets.
                s.rows.clear();
                s.rows.extend((0..k).map(|p| p * b.rs));
                thin::small_m((m, n, k), av, lda, bs, &s.rows, c, ldc, false, &mut s.tail);
            }
        } else {
            // SAFETY: as for `product`, B's columns contiguous.
            unsafe { cols_of_b(m, k, n, a, b, c, ldc, s) };
        }
    });
    true
}

/// The lanes of one column of C: A's rows, padded to 8 or 16.
fn lanes(m: usize) -> usize {
    if m <= 8 { 8 } else { 16 }
}

/// `C = A · B` with `B(p, j)` at `b.ptr + j·b.cs + p` (rows of `W = Bᵀ`
/// contiguous): A copied transposed and zero-padded into `[k, lanes]`, then
/// panels of `NR` columns of C.
///
/// # Safety
/// As for [`product`], with `b.rs == 1`.
#[allow(clippy::too_many_arguments)]
unsafe fn cols_of_b(
    m: usize,
    k: usize,
    n: usize,
    a: Strided,
    b: Strided,
    c: &mut [f32],
    ldc: usize,
    s: &mut Scratch,
) {
    let l = lanes(m);
    // Every lane of every row is written below, so the scratch is resized (not
    // cleared) and only the padding lanes are zeroed.
    s.a.resize(k * l, 0.0);
    for (p, row) in s.a.chunks_exact_mut(l).enumerate() {
        for (i, x) in row[..m].iter_mut().enumerate() {
            // SAFETY: (i, p) is inside A.
            *x = unsafe { a.at(i, p) };
        }
        row[m..].fill(0.0);
    }
    let w = Strided {
        ptr: b.ptr,
        rs: b.cs,
        cs: 1,
    };
    let job = ColsJob {
        m,
        k,
        n,
        at: &s.a,
        w,
        c,
        ldc,
        tail: &mut s.tail,
    };
    // SAFETY: each variant runs only where its features are present; the operands
    // are as `product` requires.
    unsafe {
        match (isa(), l) {
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, 8) => cols_avx512::<8>(job),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512, _) => cols_avx512::<16>(job),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, 8) => cols_avx2::<8>(job),
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, _) => cols_avx2::<16>(job),
            (_, 8) => cols_driver::<8, 4, false>(job),
            _ => cols_driver::<16, 2, false>(job),
        }
    }
}

/// One [`cols_of_b`] product: `at` is A transposed (`[k, L]`), `w` the rows of
/// `Bᵀ` (`W[j, p]`).
struct ColsJob<'a> {
    m: usize,
    k: usize,
    n: usize,
    at: &'a [f32],
    w: Strided,
    c: &'a mut [f32],
    ldc: usize,
    tail: &'a mut Vec<f32>,
}

/// 8 columns of 16 lanes (one zmm each) or 12 of 8 (one ymm each) per panel.
///
/// More columns would fit in the 32 registers, but LLVM then leaves the
/// accumulators on the stack: the column loop is too long to unroll before
/// scalar replacement runs, and each FMA becomes a load, an FMA and a store
/// (16 columns measured 3x slower than 8). Check the disassembly (`vfmadd231ps`
/// with a `{1to16}` broadcast into registers, no `(%rsp)` operand) when changing
/// these.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn cols_avx512<const L: usize>(job: ColsJob) {
    // SAFETY: forwarded from the caller.
    unsafe {
        if L == 8 {
            cols_driver::<L, 12, true>(job)
        } else {
            cols_driver::<L, 8, true>(job)
        }
    }
}

/// 6 columns of 16 lanes (2 ymm each) or 12 of 8: 12 ymm accumulators.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn cols_avx2<const L: usize>(job: ColsJob) {
    // SAFETY: forwarded from the caller.
    unsafe {
        if L == 8 {
            cols_driver::<L, 12, true>(job)
        } else {
            cols_driver::<L, 6, true>(job)
        }
    }
}

/// Panels of `NR` columns of C; the partial last panel reads a zero-padded copy
/// of its rows of W.
#[inline(always)]
unsafe fn cols_driver<const L: usize, const NR: usize, const FMA: bool>(job: ColsJob) {
    let ColsJob {
        m,
        k,
        n,
        at,
        w,
        c,
        ldc,
        tail,
    } = job;
    debug_assert_eq!(at.len(), k * L);
    for j0 in (0..n).step_by(NR) {
        let width = (n - j0).min(NR);
        let (wp, ws) = if width == NR {
            // SAFETY: row j0 of W is inside it.
            (unsafe { w.ptr.add(j0 * w.rs) }, w.rs)
        } else {
            tail.clear();
            tail.resize(NR * k, 0.0);
            for j in 0..width {
                for p in 0..k {
                    // SAFETY: (j0 + j, p) is inside W.
                    tail[j * k + p] = unsafe { w.at(j0 + j, p) };
                }
            }
            (tail.as_ptr(), k)
        };
        let mut acc = [[0f32; L]; NR];
        for p in 0..k {
            // SAFETY: `at` holds k rows of L elements.
            let av: [f32; L] =
                unsafe { (at.as_ptr().add(p * L) as *const [f32; L]).read_unaligned() };
            for (j, col) in acc.iter_mut().enumerate() {
                // SAFETY: `wp` addresses NR rows of k elements, `ws` apart.
                let wv = unsafe { *wp.add(j * ws + p) };
                for (x, &ai) in col.iter_mut().zip(&av) {
                    *x = madd::<FMA>(ai, wv, *x);
                }
            }
        }
        // Copied out by constant indices so `acc` stays in registers above.
        let mut spill = [[0f32; L]; NR];
        for j in 0..NR {
            for i in 0..L {
                spill[j][i] = acc[j][i];
            }
        }
        for i in 0..m {
            let row = &mut c[i * ldc + j0..][..width];
            for (j, out) in row.iter_mut().enumerate() {
                *out = spill[j][i];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random value in [-1, 1), never zero.
    fn value(seed: usize) -> f32 {
        let x = (seed as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(17);
        ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0 + 1e-3
    }

    /// Every shape class: rows 1..=16, columns and depths around the vector
    /// width, both layouts of B, strided A, C with a wider row stride; compared
    /// with a plain triple loop in f64, and the guard columns of C untouched.
    #[test]
    fn products_match_a_triple_loop() {
        let mut checked = 0;
        for m in [1, 2, 5, 8, 15, 16] {
            for n in [1, 7, 16, 17, 33, 64] {
                for k in [1, 3, 16, 31, 128] {
                    for b_transposed in [false, true] {
                        for a_transposed in [false, true] {
                            let a: Vec<f32> = (0..m * k).map(|i| value(i + 7)).collect();
                            let b: Vec<f32> = (0..k * n).map(|i| value(i + 1000)).collect();
                            let sa = if a_transposed {
                                Strided {
                                    ptr: a.as_ptr(),
                                    rs: 1,
                                    cs: m,
                                }
                            } else {
                                Strided {
                                    ptr: a.as_ptr(),
                                    rs: k,
                                    cs: 1,
                                }
                            };
                            let sb = if b_transposed {
                                Strided {
                                    ptr: b.as_ptr(),
                                    rs: 1,
                                    cs: k,
                                }
                            } else {
                                Strided {
                                    ptr: b.as_ptr(),
                                    rs: n,
                                    cs: 1,
                                }
                            };
                            let ldc = n + 3;
                            let mut c = vec![f32::NAN; m * ldc];
                            // SAFETY: the strides address a and b exactly; c holds
                            // m rows of ldc.
                            let done = unsafe { product(m, k, n, sa, sb, c.as_mut_ptr(), ldc) };
                            assert!(done);
                            for i in 0..m {
                                for j in 0..n {
                                    let want: f64 = (0..k)
                                        .map(|p| {
                                            // SAFETY: inside a and b.
                                            let (x, y) = unsafe {
                                                (
                                                    *sa.ptr.add(i * sa.rs + p * sa.cs),
                                                    *sb.ptr.add(p * sb.rs + j * sb.cs),
                                                )
                                            };
                                            f64::from(x) * f64::from(y)
                                        })
                                        .sum();
                                    let got = f64::from(c[i * ldc + j]);
                                    assert!(
                                        (got - want).abs() <= 1e-5 * (1.0 + want.abs()) * k as f64,
                                        "m {m} n {n} k {k} bt {b_transposed}: C[{i},{j}] = {got}, want {want}"
                                    );
                                }
                                for j in n..ldc {
                                    assert!(
                                        c[i * ldc + j].is_nan(),
                                        "wrote outside C at ({i}, {j})"
                                    );
                                }
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 6 * 6 * 5 * 4);
    }

    /// B row-major with a row stride wider than its rows (read in place with that
    /// stride), and B one row broadcast to every `k` (row stride 0, overlapping
    /// rows): both against a triple loop, C's guard columns untouched.
    #[test]
    fn strided_and_broadcast_rows_of_b() {
        for (m, n, k) in [(16, 128, 512), (5, 17, 3), (16, 33, 31), (1, 7, 2)] {
            let a: Vec<f32> = (0..m * k).map(|i| value(i + 11)).collect();
            let sa = Strided {
                ptr: a.as_ptr(),
                rs: k,
                cs: 1,
            };
            for ldb in [n + 5, 0] {
                let b: Vec<f32> = (0..(k - 1) * ldb + n).map(|i| value(i + 300)).collect();
                let sb = Strided {
                    ptr: b.as_ptr(),
                    rs: ldb,
                    cs: 1,
                };
                let ldc = n + 2;
                let mut c = vec![f32::NAN; m * ldc];
                // SAFETY: the strides address a and b exactly; c holds m rows of ldc.
                assert!(unsafe { product(m, k, n, sa, sb, c.as_mut_ptr(), ldc) });
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k)
                            .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * ldb + j]))
                            .sum();
                        let got = f64::from(c[i * ldc + j]);
                        assert!(
                            (got - want).abs() <= 1e-5 * (1.0 + want.abs()) * k as f64,
                            "m {m} n {n} k {k} ldb {ldb}: C[{i},{j}] = {got}, want {want}"
                        );
                    }
                    assert!(c[i * ldc + n..(i + 1) * ldc].iter().all(|v| v.is_nan()));
                }
            }
        }
    }

    #[test]
    fn refuses_what_it_does_not_take() {
        let a = [1.0f32; 34];
        let s = Strided {
            ptr: a.as_ptr(),
            rs: 2,
            cs: 1,
        };
        // 17 rows, and B contiguous along neither axis.
        // SAFETY: nothing is read when refused.
        unsafe {
            assert!(!product(17, 2, 1, s, s, std::ptr::null_mut(), 1));
            let b = Strided {
                ptr: a.as_ptr(),
                rs: 4,
                cs: 2,
            };
            let mut c = [0.0f32; 2];
            assert!(!product(1, 2, 2, s, b, c.as_mut_ptr(), 2));
        }
    }
}
