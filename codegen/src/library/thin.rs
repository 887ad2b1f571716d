//! Unpacked f32 matrix products for the thin shapes convolutions produce.
//!
//! A convolution per image is a product with as many rows as output channels (6
//! and 16 in LeNet) and a long other side. A general packed GEMM (matrixmultiply)
//! spends about as long packing such operands as multiplying them, so two unpacked
//! kernels serve these shapes:
//!
//! - [`small_m`]: `C = A·B` with few rows. B is read in place, one row-major panel
//!   of `NR` columns at a time, against a register tile of up to `MR` rows.
//! - [`dot_nt`]: `C = A·Bᵀ` where both operands are contiguous along a long
//!   reduction axis (the convolution weight gradient, and dense layers `x · Wᵀ`
//!   with long rows, see `gemm`), as blocked dot products.
//!
//! Each kernel is written once, generic over the tile sizes, and compiled per
//! instruction set: AVX-512, AVX2 with FMA, and the target's baseline. The loops
//! over fixed-size arrays vectorize to full-width registers under the enabled
//! features; `is_x86_feature_detected!` picks the variant at run time. Where LLVM
//! left a tile's accumulators on the stack (`dot_nt`'s 4 × 4 tiles of 16 lanes,
//! its AVX2 tiles), the tile is also written with intrinsics, summing in the same
//! order as the generic one (tests compare their bits). Results are deterministic
//! on a machine (a fixed summation order per variant).

/// `acc + a·b`, fused where the variant has FMA (a separate multiply and add
/// otherwise: `mul_add` without hardware FMA is a slow library call).
#[inline(always)]
pub(super) fn madd<const FMA: bool>(a: f32, b: f32, acc: f32) -> f32 {
    if FMA { a.mul_add(b, acc) } else { a * b + acc }
}

/// A row-major matrix operand: element `(i, j)` at `ptr + i·ld + j`.
#[derive(Clone, Copy)]
struct Mat {
    ptr: *const f32,
    ld: usize,
}

impl Mat {
    /// A row-major operand with row stride `ld`.
    fn rows(ptr: *const f32, ld: usize) -> Mat {
        Mat { ptr, ld }
    }

    /// The element at `(i, j)`.
    #[inline(always)]
    unsafe fn at(self, i: usize, j: usize) -> *const f32 {
        // SAFETY: the caller keeps (i, j) inside the operand.
        unsafe { self.ptr.add(i * self.ld + j) }
    }
}

/// A matrix operand given by where each row starts: row `i` is contiguous from
/// `ptr + offsets[i]`. Rows may overlap, which is how a stride-1 convolution reads
/// its shifted input rows without copying them (see `conv`).
#[derive(Clone, Copy)]
struct Rows {
    ptr: *const f32,
    offsets: *const usize,
}

impl Rows {
    /// The element at `(i, j)`.
    #[inline(always)]
    unsafe fn at(self, i: usize, j: usize) -> *const f32 {
        // SAFETY: the caller keeps (i, j) inside the operand.
        unsafe { self.ptr.add(*self.offsets.add(i) + j) }
    }

    /// Rows `i..` of this operand.
    #[inline(always)]
    unsafe fn skip(self, i: usize) -> Rows {
        // SAFETY: the caller keeps i inside the operand.
        Rows {
            ptr: self.ptr,
            offsets: unsafe { self.offsets.add(i) },
        }
    }

    /// Checks that every row holds `cols` elements of `data`.
    fn new(what: &str, data: &[f32], offsets: &[usize], cols: usize) -> Rows {
        for &o in offsets {
            assert!(
                o.checked_add(cols).is_some_and(|end| end <= data.len()),
                "{what}: a row at {o} of {cols} elements overruns {} elements",
                data.len()
            );
        }
        Rows {
            ptr: data.as_ptr(),
            offsets: offsets.as_ptr(),
        }
    }
}

/// Panics unless a row-major `rows × cols` matrix with row stride `ld` fits in
/// `len` elements: the kernels below then stay in bounds.
fn check(what: &str, len: usize, rows: usize, cols: usize, ld: usize) {
    assert!(
        cols <= ld || rows <= 1,
        "{what}: row stride {ld} < {cols} columns"
    );
    let need = if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * ld + cols
    };
    assert!(
        len >= need,
        "{what}: {len} elements, {rows}×{cols} (stride {ld}) needs {need}"
    );
}

/// The instruction sets the kernels are compiled for, best first.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) enum Isa {
    Avx512,
    Avx2,
    Baseline,
}

/// The best of [`Isa`] this machine runs (`is_x86_feature_detected!` caches).
pub(super) fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("fma") {
            return Isa::Avx512;
        }
        if has!("avx2") && has!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Baseline
}

/// The operands of one product, checked: `C[m, n] (+)= A · B` with A row-major
/// (`[m, k]`, or `[m, k]`-shaped as the kernel reads it), B by rows, C row-major.
#[derive(Clone, Copy)]
struct Product<B> {
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: B,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
}

/// B as [`small_m`] reads it: by row offsets ([`Rows`]) or with a row stride
/// ([`Mat`]: no offset load per row).
trait RowsOfB: Copy {
    /// The element at `(p, j)`.
    ///
    /// # Safety
    /// `(p, j)` must lie inside B.
    unsafe fn at(self, p: usize, j: usize) -> *const f32;
}

impl RowsOfB for Rows {
    #[inline(always)]
    unsafe fn at(self, p: usize, j: usize) -> *const f32 {
        // SAFETY: guaranteed by the caller.
        unsafe { Rows::at(self, p, j) }
    }
}

impl RowsOfB for Mat {
    #[inline(always)]
    unsafe fn at(self, p: usize, j: usize) -> *const f32 {
        // SAFETY: guaranteed by the caller.
        unsafe { Mat::at(self, p, j) }
    }
}

/// `C[m, n] = A[m, k] · B[k, n]` (`+=` when `accumulate`): A and C row-major with
/// row strides `lda` and `ldc`, row `p` of B contiguous from `b[b_rows[p]]`. Meant
/// for small `m` (up to a few register tiles): B is streamed once per column panel,
/// never packed. `tail` is reused working memory for the last, partial panel.
///
/// # Panics
/// If a slice is too short for its dimensions and stride.
#[allow(clippy::too_many_arguments)]
pub fn small_m(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    lda: usize,
    b: &[f32],
    b_rows: &[usize],
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    tail: &mut Vec<f32>,
) {
    assert_eq!(b_rows.len(), k, "small_m B: one row offset per row");
    let b = Rows::new("small_m B", b, b_rows, n);
    small_m_of((m, n, k), a, lda, b, c, ldc, accumulate, tail);
}

/// [`small_m`] with B row-major, row stride `ldb`.
///
/// # Panics
/// If a slice is too short for its dimensions and stride.
#[allow(clippy::too_many_arguments)]
pub fn small_m_strided(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    tail: &mut Vec<f32>,
) {
    check("small_m B", b.len(), k, n, ldb);
    let b = Mat::rows(b.as_ptr(), ldb);
    small_m_of((m, n, k), a, lda, b, c, ldc, accumulate, tail);
}

/// [`small_m`] over a checked B.
#[allow(clippy::too_many_arguments)]
fn small_m_of<B: RowsOfB>(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    lda: usize,
    b: B,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    tail: &mut Vec<f32>,
) {
    check("small_m A", a.len(), m, k, lda);
    check("small_m C", c.len(), m, n, ldc);
    if m == 0 || n == 0 {
        return;
    }
    let p = Product {
        m,
        n,
        k,
        a: Mat::rows(a.as_ptr(), lda),
        b,
        c: c.as_mut_ptr(),
        ldc,
        accumulate,
    };
    // SAFETY: the operands were checked; each variant runs only where its
    // features are present.
    unsafe {
        match isa() {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => small_m_avx512(p, tail),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => small_m_avx2(p, tail),
            _ => small_m_driver::<8, 6, false, B>(p, tail),
        }
    }
}

/// 8 rows × 32 columns: 16 zmm accumulators, 2 for the B panel row.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn small_m_avx512<B: RowsOfB>(p: Product<B>, tail: &mut Vec<f32>) {
    // SAFETY: forwarded from the caller.
    unsafe { small_m_driver::<32, 8, true, B>(p, tail) }
}

/// 6 rows × 16 columns: 12 ymm accumulators.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn small_m_avx2<B: RowsOfB>(p: Product<B>, tail: &mut Vec<f32>) {
    // SAFETY: forwarded from the caller.
    unsafe { small_m_driver::<16, 6, true, B>(p, tail) }
}

/// Column panels outside, row tiles inside, so a panel of B (k × NR) stays in L1
/// while every row tile uses it. The partial last panel is copied, zero-padded, into
/// `tail` so the tile kernel only ever sees full panels.
#[inline(always)]
unsafe fn small_m_driver<const NR: usize, const MR: usize, const FMA: bool, B: RowsOfB>(
    p: Product<B>,
    tail: &mut Vec<f32>,
) {
    let (n, k, b) = (p.n, p.k, p.b);
    let full = n / NR * NR;
    let panels = (0..full)
        .step_by(NR)
        .map(|j| (j, NR))
        .chain((full < n).then_some((full, n - full)));
    for (j0, width) in panels {
        // Full panels are read in place; the partial one from a zero-padded copy.
        // SAFETY: rows i..i+rows and columns j0..j0+width lie inside A and C; the
        // panel holds k × NR readable elements.
        if width == NR {
            unsafe { row_tiles::<NR, MR, FMA, _>(&p, (b, j0), j0, width) };
        } else {
            tail.clear();
            tail.resize(k * NR, 0.0);
            for p in 0..k {
                // SAFETY: row p, columns j0..n lie inside B.
                let src = unsafe { std::slice::from_raw_parts(b.at(p, j0), width) };
                tail[p * NR..][..width].copy_from_slice(src);
            }
            let packed = Mat::rows(tail.as_ptr(), NR);
            unsafe { row_tiles::<NR, MR, FMA, _>(&p, (packed, 0), j0, width) };
        }
    }
}

/// Every row tile of one column panel (columns `j0..j0 + width` of C), the panel
/// being `NR` columns of `panel.0` from column `panel.1`.
///
/// # Safety
/// As for [`small_m_tile`], for each tile of `p`'s rows.
#[inline(always)]
unsafe fn row_tiles<const NR: usize, const MR: usize, const FMA: bool, P: RowsOfB>(
    p: &Product<impl RowsOfB>,
    panel: (P, usize),
    j0: usize,
    width: usize,
) {
    let mut i = 0;
    while i < p.m {
        let rows = (p.m - i).min(MR);
        // SAFETY: forwarded from the caller.
        unsafe {
            let ai = Mat::rows(p.a.at(i, 0), p.a.ld);
            let ci = (p.c.add(i * p.ldc + j0), p.ldc);
            macro_rules! tile {
                ($($r:literal)*) => {
                    match rows {
                        $($r => small_m_tile::<$r, NR, FMA, P>(p.k, ai, panel, ci, width, p.accumulate),)*
                        _ => unreachable!("at most MR rows"),
                    }
                };
            }
            tile!(1 2 3 4 5 6 7 8);
        }
        i += rows;
    }
}

/// One `R × NR` tile: `C[.., ..width] (+)= A[R, k] · B[k, col..col + NR]` for the
/// B of `(panel, col)`, accumulated in registers over the whole of `k`.
#[inline(always)]
unsafe fn small_m_tile<const R: usize, const NR: usize, const FMA: bool, P: RowsOfB>(
    k: usize,
    a: Mat,
    (panel, col): (P, usize),
    (c, ldc): (*mut f32, usize),
    width: usize,
    accumulate: bool,
) {
    let mut acc = [[0f32; NR]; R];
    for p in 0..k {
        // SAFETY: the panel has k rows of NR readable elements.
        let bv: [f32; NR] = unsafe { (panel.at(p, col) as *const [f32; NR]).read_unaligned() };
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: A has R rows of k elements.
            let av = unsafe { *a.at(i, p) };
            for (x, &bj) in row.iter_mut().zip(&bv) {
                *x = madd::<FMA>(av, bj, *x);
            }
        }
    }
    // `acc` is only ever indexed by constants (no reference to it escapes), so it
    // stays in registers through the loop above; a partial tile is copied out.
    let mut spill = [[0f32; NR]; R];
    for i in 0..R {
        for j in 0..NR {
            spill[i][j] = acc[i][j];
        }
    }
    for (i, row) in spill.iter().enumerate() {
        // SAFETY: C has R rows with `width` writable elements from `c`.
        let out = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), width) };
        if accumulate {
            out.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
        } else {
            out.copy_from_slice(&row[..width]);
        }
    }
}

/// `C[m, n] = A[m, k] · B[n, k]ᵀ` (`+=` when `accumulate`): every entry is the dot
/// product of a row of A (row stride `lda`) and a row of B (row `j` contiguous from
/// `b[b_rows[j]]`). Meant for a long `k`
/// (the convolution weight gradient sums over all output positions).
///
/// # Panics
/// If a slice is too short for its dimensions and stride.
#[allow(clippy::too_many_arguments)]
pub fn dot_nt(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    lda: usize,
    b: &[f32],
    b_rows: &[usize],
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    check("dot_nt A", a.len(), m, k, lda);
    assert_eq!(b_rows.len(), n, "dot_nt B: one row offset per row");
    let b = Rows::new("dot_nt B", b, b_rows, k);
    check("dot_nt C", c.len(), m, n, ldc);
    let p = Product {
        m,
        n,
        k,
        a: Mat::rows(a.as_ptr(), lda),
        b,
        c: c.as_mut_ptr(),
        ldc,
        accumulate,
    };
    // SAFETY: the operands were checked above; each variant runs only where its
    // features are present.
    unsafe {
        match isa() {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => dot_nt_avx512(p),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => dot_nt_avx2(p),
            _ => dot_nt_driver::<4, false, false, false>(p),
        }
    }
}

/// 16 lanes: one zmm register per dot product.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn dot_nt_avx512(p: Product<Rows>) {
    // SAFETY: forwarded from the caller.
    unsafe { dot_nt_driver::<16, true, true, false>(p) }
}

/// 8 lanes: one ymm register per dot product, tiles of 3 × 4 ([`dot_nt_tile_ymm`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_nt_avx2(p: Product<Rows>) {
    // SAFETY: forwarded from the caller.
    unsafe { dot_nt_driver::<8, true, false, true>(p) }
}

/// Tiles of up to 4 × 4 dot products, `L` lanes each (one vector register);
/// `ZMM`: the tiles written with AVX-512 intrinsics ([`dot_nt_tile_zmm`]);
/// `YMM`: tiles of up to 3 × 4 written with AVX2 intrinsics
/// ([`dot_nt_tile_ymm`]), whose 12 accumulators and 4 operands fill AVX2's 16
/// registers.
#[inline(always)]
unsafe fn dot_nt_driver<const L: usize, const FMA: bool, const ZMM: bool, const YMM: bool>(
    p: Product<Rows>,
) {
    let Product {
        m,
        n,
        k,
        a,
        b,
        c,
        ldc,
        accumulate,
    } = p;
    const T: usize = 4;
    let tile_rows = if YMM { 3 } else { T };
    for i in (0..m).step_by(tile_rows) {
        let rows = (m - i).min(tile_rows);
        for j in (0..n).step_by(T) {
            let cols = (n - j).min(T);
            // SAFETY: rows i..i+rows of A, j..j+cols of B and that block of C lie
            // inside the operands.
            unsafe {
                let (ai, bj) = (Mat::rows(a.at(i, 0), a.ld), b.skip(j));
                let cij = (c.add(i * ldc + j), ldc);
                macro_rules! tile {
                    ($(($r:literal, $s:literal))*) => {
                        match (rows, cols) {
                            $(($r, $s) if ZMM => dot_nt_tile_zmm::<$r, $s>(k, ai, bj, cij, accumulate),)*
                            $(($r, $s) if YMM => dot_nt_tile_ymm::<$r, $s>(k, ai, bj, cij, accumulate),)*
                            $(($r, $s) => dot_nt_tile::<$r, $s, L, FMA>(k, ai, bj, cij, accumulate),)*
                            _ => unreachable!("at most 4 × 4"),
                        }
                    };
                }
                tile!(
                    (1, 1)(1, 2)(1, 3)(1, 4)(2, 1)(2, 2)(2, 3)(2, 4)(3, 1)(3, 2)(3, 3)(3, 4)(4, 1)(
                        4, 2
                    )(4, 3)(4, 4)
                );
            }
        }
    }
}

/// `R × S` dot products of length `k`, each kept as `L` partial sums in a register
/// and reduced in a fixed order at the end.
#[inline(always)]
unsafe fn dot_nt_tile<const R: usize, const S: usize, const L: usize, const FMA: bool>(
    k: usize,
    a: Mat,
    b: Rows,
    (c, ldc): (*mut f32, usize),
    accumulate: bool,
) {
    let mut acc = [[[0f32; L]; S]; R];
    let full = k / L * L;
    for p in (0..full).step_by(L) {
        // SAFETY: rows of A and B hold k elements; p + L <= k.
        let av: [[f32; L]; R] =
            std::array::from_fn(|i| unsafe { (a.at(i, p) as *const [f32; L]).read_unaligned() });
        let bv: [[f32; L]; S] =
            std::array::from_fn(|j| unsafe { (b.at(j, p) as *const [f32; L]).read_unaligned() });
        for (accs, ar) in acc.iter_mut().zip(&av) {
            for (x, br) in accs.iter_mut().zip(&bv) {
                for l in 0..L {
                    x[l] = madd::<FMA>(ar[l], br[l], x[l]);
                }
            }
        }
    }
    if full < k {
        // The last `k - full` elements as one more step, zero-padded: a chain of
        // scalar multiply-adds per dot product would cost more than the vector
        // steps (k = 300 ran at half the rate).
        let tail = |row: *const f32| {
            let mut v = [0f32; L];
            for (l, x) in v[..k - full].iter_mut().enumerate() {
                // SAFETY: full + l < k.
                *x = unsafe { *row.add(full + l) };
            }
            v
        };
        // SAFETY: rows i < R of A and j < S of B hold k elements.
        let av: [[f32; L]; R] = std::array::from_fn(|i| tail(unsafe { a.at(i, 0) }));
        let bv: [[f32; L]; S] = std::array::from_fn(|j| tail(unsafe { b.at(j, 0) }));
        for (accs, ar) in acc.iter_mut().zip(&av) {
            for (x, br) in accs.iter_mut().zip(&bv) {
                for l in 0..L {
                    x[l] = madd::<FMA>(ar[l], br[l], x[l]);
                }
            }
        }
    }
    for (i, accs) in acc.iter().enumerate() {
        for (j, x) in accs.iter().enumerate() {
            let s = hsum(*x);
            // SAFETY: (i, j) lies inside the C block.
            let out = unsafe { &mut *c.add(i * ldc + j) };
            *out = if accumulate { *out + s } else { s };
        }
    }
}

/// [`dot_nt_tile`] at 16 lanes with the accumulators as `__m512` values: written
/// generically over `[f32; 16]`, the 4 × 4 tile's accumulators stay on the stack
/// (LLVM does not unroll the tile before scalar replacement), every FMA loading and
/// storing its accumulator. The same sums in the same order, so the same bits.
///
/// # Safety
/// As for [`dot_nt_tile`], on a host with AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dot_nt_tile_zmm<const R: usize, const S: usize>(
    k: usize,
    a: Mat,
    b: Rows,
    (c, ldc): (*mut f32, usize),
    accumulate: bool,
) {
    use std::arch::x86_64::{
        __m512, __mmask16, _mm_add_ps, _mm_loadu_ps, _mm_storeu_ps, _mm512_fmadd_ps,
        _mm512_loadu_ps, _mm512_maskz_loadu_ps, _mm512_setzero_ps,
    };
    // SAFETY: rows i < R of A and j < S of B hold k elements; the caller runs
    // this only where AVX-512F is present.
    unsafe {
        let mut ar = [std::ptr::null::<f32>(); R];
        for (i, r) in ar.iter_mut().enumerate() {
            *r = a.at(i, 0);
        }
        let mut br = [std::ptr::null::<f32>(); S];
        for (j, r) in br.iter_mut().enumerate() {
            *r = b.at(j, 0);
        }
        let mut acc: [[__m512; S]; R] = [[_mm512_setzero_ps(); S]; R];
        let full = k / 16 * 16;
        let mut p = 0;
        while p < full {
            let mut bv: [__m512; S] = [_mm512_setzero_ps(); S];
            for j in 0..S {
                bv[j] = _mm512_loadu_ps(br[j].add(p));
            }
            for i in 0..R {
                let av = _mm512_loadu_ps(ar[i].add(p));
                for j in 0..S {
                    acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
                }
            }
            p += 16;
        }
        if full < k {
            // The tail as one more step, the lanes past `k` masked to zero (masked
            // lanes are not read).
            let mask: __mmask16 = (1 << (k - full)) - 1;
            let mut bv: [__m512; S] = [_mm512_setzero_ps(); S];
            for j in 0..S {
                bv[j] = _mm512_maskz_loadu_ps(mask, br[j].add(full));
            }
            for i in 0..R {
                let av = _mm512_maskz_loadu_ps(mask, ar[i].add(full));
                for j in 0..S {
                    acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
                }
            }
        }
        if R == 4 && S == 4 {
            // A full tile: its 16 sums reduced together, one 4-wide row of C each
            // quarter of the result.
            let tile: [[__m512; 4]; 4] =
                std::array::from_fn(|i| std::array::from_fn(|j| acc[i][j]));
            let sums = hsum_4x4(tile);
            for (i, row) in sums.iter().enumerate() {
                let out = c.add(i * ldc);
                let v = if accumulate {
                    _mm_add_ps(_mm_loadu_ps(out), *row)
                } else {
                    *row
                };
                _mm_storeu_ps(out, v);
            }
            return;
        }
        for (i, row) in acc.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let lanes: [f32; 16] = std::mem::transmute(v);
                let s = hsum(lanes);
                let out = &mut *c.add(i * ldc + j);
                *out = if accumulate { *out + s } else { s };
            }
        }
    }
}

/// [`hsum`] of each of a 4 × 4 tile's 16-lane accumulators, row `i` of the
/// result holding the sums of `acc[i][0..4]`. The lanes are added in [`hsum`]'s
/// tree (lane l plus lane l + 8, then l + 4, l + 2, l + 1), so the sums have its
/// bits, but the 16 trees share their shuffles and additions: about 45 vector
/// operations where 16 separate reductions take over a hundred (the W3 step
/// 6-7% faster, the W2 forward pass 4%, timed interleaved in one process).
///
/// # Safety
/// AVX-512F must be present.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn hsum_4x4(acc: [[std::arch::x86_64::__m512; 4]; 4]) -> [std::arch::x86_64::__m128; 4] {
    use std::arch::x86_64::*;
    // SAFETY: AVX-512F is present (the caller's guarantee).
    unsafe {
        // Each step adds the two halves of every partial sum, two vectors' worth
        // at a time: 128-bit quarters (`shuffle_f32x4`) for widths 8 and 4, lanes
        // within quarters (`shuffle_ps`) for widths 2 and 1.
        let flat: [__m512; 16] = std::array::from_fn(|k| acc[k / 4][k % 4]);
        // Width 8: lanes 0..8 of each accumulator plus lanes 8..16.
        let w8: [__m512; 8] = std::array::from_fn(|k| {
            let (x, y) = (flat[2 * k], flat[2 * k + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b01_00_01_00>(x, y),
                _mm512_shuffle_f32x4::<0b11_10_11_10>(x, y),
            )
        });
        // Width 4: one quarter per accumulator left.
        let w4: [__m512; 4] = std::array::from_fn(|k| {
            let (x, y) = (w8[2 * k], w8[2 * k + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(x, y),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y),
            )
        });
        // Widths 2 and 1, within quarters.
        let w2: [__m512; 2] = std::array::from_fn(|k| {
            let (x, y) = (w4[2 * k], w4[2 * k + 1]);
            _mm512_add_ps(
                _mm512_shuffle_ps::<0b01_00_01_00>(x, y),
                _mm512_shuffle_ps::<0b11_10_11_10>(x, y),
            )
        });
        let w1 = _mm512_add_ps(
            _mm512_shuffle_ps::<0b10_00_10_00>(w2[0], w2[1]),
            _mm512_shuffle_ps::<0b11_01_11_01>(w2[0], w2[1]),
        );
        // Lane 4j + i now holds acc[i][j]'s sum: transpose to rows.
        let rows = _mm512_permutexvar_ps(
            _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15),
            w1,
        );
        [
            _mm512_extractf32x4_ps::<0>(rows),
            _mm512_extractf32x4_ps::<1>(rows),
            _mm512_extractf32x4_ps::<2>(rows),
            _mm512_extractf32x4_ps::<3>(rows),
        ]
    }
}

/// Never called: `ZMM` tiles are chosen on x86-64 only.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn dot_nt_tile_zmm<const R: usize, const S: usize>(
    _k: usize,
    _a: Mat,
    _b: Rows,
    _c: (*mut f32, usize),
    _accumulate: bool,
) {
    unreachable!("AVX-512 tiles on another architecture")
}

/// [`dot_nt_tile`] at 8 lanes with the accumulators as `__m256` values, each B
/// row loaded once per step and used by every row of the tile, so that a 3 × 4
/// tile needs 16 registers, AVX2's number (written generically, the 4 × 4 tile
/// moved its accumulators to and from the stack). The same sums in the same
/// order, so the same bits.
///
/// # Safety
/// As for [`dot_nt_tile`], on a host with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dot_nt_tile_ymm<const R: usize, const S: usize>(
    k: usize,
    a: Mat,
    b: Rows,
    (c, ldc): (*mut f32, usize),
    accumulate: bool,
) {
    use std::arch::x86_64::{
        __m256, _mm256_cmpgt_epi32, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_maskload_ps,
        _mm256_set1_epi32, _mm256_setr_epi32, _mm256_setzero_ps,
    };
    // SAFETY: rows i < R of A and j < S of B hold k elements; the caller runs
    // this only where AVX2 and FMA are present.
    unsafe {
        let ar: [*const f32; R] = std::array::from_fn(|i| a.at(i, 0));
        let br: [*const f32; S] = std::array::from_fn(|j| b.at(j, 0));
        let mut acc: [[__m256; S]; R] = [[_mm256_setzero_ps(); S]; R];
        let full = k / 8 * 8;
        let mut p = 0;
        while p < full {
            let av: [__m256; R] = std::array::from_fn(|i| _mm256_loadu_ps(ar[i].add(p)));
            for j in 0..S {
                let bv = _mm256_loadu_ps(br[j].add(p));
                for i in 0..R {
                    acc[i][j] = _mm256_fmadd_ps(av[i], bv, acc[i][j]);
                }
            }
            p += 8;
        }
        if full < k {
            // The tail as one more step, the lanes past `k` masked to zero
            // (masked lanes are not read).
            let mask = _mm256_cmpgt_epi32(
                _mm256_set1_epi32((k - full) as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            );
            let av: [__m256; R] =
                std::array::from_fn(|i| _mm256_maskload_ps(ar[i].add(full), mask));
            for j in 0..S {
                let bv = _mm256_maskload_ps(br[j].add(full), mask);
                for i in 0..R {
                    acc[i][j] = _mm256_fmadd_ps(av[i], bv, acc[i][j]);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let lanes: [f32; 8] = std::mem::transmute(v);
                let s = hsum(lanes);
                let out = &mut *c.add(i * ldc + j);
                *out = if accumulate { *out + s } else { s };
            }
        }
    }
}

/// Never called: `YMM` tiles are chosen on x86-64 only.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn dot_nt_tile_ymm<const R: usize, const S: usize>(
    _k: usize,
    _a: Mat,
    _b: Rows,
    _c: (*mut f32, usize),
    _accumulate: bool,
) {
    unreachable!("AVX2 tiles on another architecture")
}

/// The sum of `L` lanes as a tree (lane l plus lane l + L/2, and so on): shuffles
/// and adds that overlap, where a left-to-right sum is a chain of `L - 1` dependent
/// additions.
#[inline(always)]
fn hsum<const L: usize>(mut v: [f32; L]) -> f32 {
    let mut width = L;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            v[l] += v[l + width];
        }
    }
    v[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1), never all zero.
    fn data(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104729) % 2003) as f32 / 1001.5 - 1.0)
            .collect()
    }

    /// `C = A·B` in f64 by the definition, with A and B read through `at`.
    fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: impl Fn(usize, usize) -> f32,
        b: impl Fn(usize, usize) -> f32,
    ) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a(i, p) as f64 * b(p, j) as f64).sum();
            }
        }
        c
    }

    fn assert_close(got: &[f32], ldc: usize, want: &[f64], n: usize, k: usize) {
        for (idx, &w) in want.iter().enumerate() {
            let g = got[idx / n * ldc + idx % n] as f64;
            assert!(
                (g - w).abs() <= 1e-5 * (k as f64 + 1.0),
                "entry {idx}: got {g}, want {w}"
            );
        }
    }

    /// Runs `product` over a copy of `init` (row stride `ldc`), plain and
    /// accumulating, and checks both against `want` (`[_, n]`, sums of `k` terms);
    /// returns the plain result.
    fn check_both(
        init: &[f32],
        want: &[f64],
        (n, k, ldc): (usize, usize, usize),
        mut product: impl FnMut(&mut [f32], bool),
    ) -> Vec<f32> {
        let mut c = init.to_vec();
        product(&mut c, false);
        assert_close(&c, ldc, want, n, k);
        // Accumulating adds the product to what was there.
        let mut acc = init.to_vec();
        product(&mut acc, true);
        let shifted: Vec<f64> = (0..want.len())
            .map(|idx| want[idx] + init[idx / n * ldc + idx % n] as f64)
            .collect();
        assert_close(&acc, ldc, &shifted, n, k);
        c
    }

    #[test]
    fn small_m_matches_the_definition_on_ragged_shapes() {
        let mut tail = Vec::new();
        for &(m, n, k) in &[
            (1, 1, 1),
            (3, 5, 7),
            (6, 784, 75),
            (8, 33, 17),
            (16, 100, 150),
            (13, 47, 3),
            (9, 16, 1),
        ] {
            // Strides wider than the rows, so padding columns must stay untouched.
            let (lda, ldb, ldc) = (k + 3, n + 5, n + 2);
            let a = data(m * lda, 1);
            let b = data(k * ldb, 2);
            let want = reference(m, n, k, |i, p| a[i * lda + p], |p, j| b[p * ldb + j]);
            let init = data(m * ldc, 3);
            let rows: Vec<usize> = (0..k).map(|p| p * ldb).collect();
            let c = check_both(&init, &want, (n, k, ldc), |c, acc| {
                small_m((m, n, k), &a, lda, &b, &rows, c, ldc, acc, &mut tail)
            });
            for i in 0..m {
                assert_eq!(
                    c[i * ldc + n..(i + 1) * ldc],
                    init[i * ldc + n..(i + 1) * ldc]
                );
            }
        }
    }

    #[test]
    fn dot_nt_matches_the_definition_on_ragged_shapes() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (6, 75, 784),
            (16, 150, 100),
            (5, 7, 33),
            (4, 4, 16),
            (3, 9, 15),
        ] {
            let (lda, ldb, ldc) = (k + 1, k + 4, n + 3);
            let a = data(m * lda, 4);
            let b = data(n * ldb, 5);
            let want = reference(m, n, k, |i, p| a[i * lda + p], |p, j| b[j * ldb + p]);
            let init = data(m * ldc, 6);
            let rows: Vec<usize> = (0..n).map(|j| j * ldb).collect();
            check_both(&init, &want, (n, k, ldc), |c, acc| {
                dot_nt((m, n, k), &a, lda, &b, &rows, c, ldc, acc)
            });
        }
    }

    /// Runs `both` (an intrinsic variant into the first C, the generic tiles of
    /// the same width into the second) over every tile shape, tails along `k`
    /// included, and asserts that they give the same bits.
    #[cfg(target_arch = "x86_64")]
    fn same_bits_as_generic(both: unsafe fn(Product<Rows>, Product<Rows>)) {
        for &(m, n, k) in &[
            (4, 4, 16),
            (3, 4, 8),
            (7, 6, 100),
            (5, 9, 33),
            (1, 3, 15),
            (8, 8, 257),
        ] {
            let (lda, ldb, ldc) = (k + 1, k + 4, n + 3);
            let a = data(m * lda, 7);
            let b = data(n * ldb, 8);
            let rows: Vec<usize> = (0..n).map(|j| j * ldb).collect();
            let init = data(m * ldc, 9);
            for accumulate in [false, true] {
                let (mut intrinsic, mut generic) = (init.clone(), init.clone());
                let product = |c: &mut Vec<f32>| Product {
                    m,
                    n,
                    k,
                    a: Mat::rows(a.as_ptr(), lda),
                    b: Rows::new("B", &b, &rows, k),
                    c: c.as_mut_ptr(),
                    ldc,
                    accumulate,
                };
                let (p, q) = (product(&mut intrinsic), product(&mut generic));
                // SAFETY: the operands hold the shapes above; the caller checked
                // the features.
                unsafe { both(p, q) };
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&intrinsic),
                    bits(&generic),
                    "{m}x{n}x{k}, accumulate {accumulate}"
                );
            }
        }
    }

    /// The AVX-512 intrinsic tiles give the generic 16-lane tiles' bits.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn zmm_tiles_match_the_generic_tiles_bit_for_bit() {
        if isa() != Isa::Avx512 {
            return;
        }
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn both(p: Product<Rows>, q: Product<Rows>) {
            // SAFETY: forwarded from the caller.
            unsafe {
                dot_nt_driver::<16, true, true, false>(p);
                dot_nt_driver::<16, true, false, false>(q);
            }
        }
        same_bits_as_generic(both);
    }

    /// The AVX2 intrinsic 3 × 4 tiles give the generic 8-lane tiles' bits.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn ymm_tiles_match_the_generic_tiles_bit_for_bit() {
        if isa() == Isa::Baseline {
            return;
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn both(p: Product<Rows>, q: Product<Rows>) {
            // SAFETY: forwarded from the caller.
            unsafe {
                dot_nt_driver::<8, true, false, true>(p);
                dot_nt_driver::<8, true, false, false>(q);
            }
        }
        same_bits_as_generic(both);
    }

    #[test]
    #[should_panic(expected = "small_m B")]
    fn short_operands_are_refused() {
        let mut c = vec![0.0; 4];
        small_m(
            (2, 2, 2),
            &[1.0; 4],
            2,
            &[1.0; 3],
            &[0, 2],
            &mut c,
            2,
            false,
            &mut Vec::new(),
        );
    }
}
