//! General matrix products through matrixmultiply (packed, register-blocked,
//! AVX2 / AVX-512 where the host has them): the `matmul` and `matmul_bias` calls
//! over strided views, batched and split across threads, and the contiguous f32
//! product the convolutions use for wide layers. Both go through one wrapper,
//! `packed`; the unpacked kernels for thin products are in [`super::thin`].

use std::ops::Range;

use kiln_ir::DType;
use kiln_ir::kernel::BufferId;

use super::{CallDesc, thin};
use crate::parallel::{self, Workers};

/// Shape and strides of one block of a GEMM: `[m, k] x [k, n]`, `a` and `b` read
/// with row/column strides `ra, ca` and `rb, cb`, the output row-major with row
/// stride `ldc`.
#[derive(Clone, Copy)]
struct GemmBlock {
    m: usize,
    k: usize,
    n: usize,
    ldc: usize,
    ra: usize,
    ca: usize,
    rb: usize,
    cb: usize,
}

/// The widest B (columns) that products of more than 16 rows take through the
/// unpacked kernel, 16 rows at a time.
const ROW_BLOCKS_MAX_N: usize = 64;

/// The shortest rows of A (the depth `k`) they take.
const ROW_BLOCKS_MIN_K: usize = 256;

/// The largest B (elements, 256 KB of f32) they take: each block of rows reads
/// all of it, so it must stay in L2.
const ROW_BLOCKS_MAX_B: usize = 64 << 10;

/// Products `A · Wᵀ` of more rows run as dot products where their rows are at
/// least `DOT_LONG_K` long, or `DOT_MIN_K` with at most `DOT_MAX_M` rows, and W
/// holds at most `DOT_MAX_B` elements (512 KB of f32; every four rows of A read
/// all of it). Measured against the packed kernel on one core (AVX-512): each dot
/// product ends in a horizontal sum, which shorter rows do not amortize (k = 300:
/// 1.1-1.4x slower), while packing W costs most at few rows (64 x 784 x 128: 0.75x
/// the time; 512 x 400 x 120: 1.04x; from k = 768 on, 0.7-1.0x at 256 to 4096
/// rows).
const DOT_LONG_K: usize = 768;
const DOT_MIN_K: usize = 384;
const DOT_MAX_M: usize = 128;
const DOT_MAX_B: usize = 128 << 10;

/// The element types matrixmultiply multiplies.
trait Packed: Copy + PartialOrd + std::ops::Add<Output = Self> + Default {
    /// matrixmultiply's `c = beta·c + a·b` for this type (`alpha` 1, output
    /// column stride 1).
    ///
    /// # Safety
    /// As for [`packed`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        a_strides: (isize, isize),
        b: *const Self,
        b_strides: (isize, isize),
        beta: Self,
        c: *mut Self,
        rsc: isize,
    );

    /// `c = a · b` by an unpacked kernel where one applies (f32 with few rows,
    /// [`super::few_rows`]; taller with a narrow B, 16 rows at a time; or
    /// `A · Wᵀ` with long rows, as dot products); false where none does.
    ///
    /// # Safety
    /// As for [`packed`].
    unsafe fn unpacked(_g: &GemmBlock, _a: *const Self, _b: *const Self, _c: *mut Self) -> bool {
        false
    }
}

/// The `gemm` method of [`Packed`] for a matrixmultiply routine.
macro_rules! gemm_with {
    ($f:path) => {
        unsafe fn gemm(
            m: usize,
            k: usize,
            n: usize,
            a: *const Self,
            (rsa, csa): (isize, isize),
            b: *const Self,
            (rsb, csb): (isize, isize),
            beta: Self,
            c: *mut Self,
            rsc: isize,
        ) {
            // SAFETY: guaranteed by the caller.
            unsafe { $f(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, beta, c, rsc, 1) }
        }
    };
}

impl Packed for f32 {
    gemm_with!(matrixmultiply::sgemm);

    unsafe fn unpacked(g: &GemmBlock, a: *const Self, b: *const Self, c: *mut Self) -> bool {
        use super::few_rows::{MAX_ROWS, Strided, product};
        let a = Strided {
            ptr: a,
            rs: g.ra,
            cs: g.ca,
        };
        let b = Strided {
            ptr: b,
            rs: g.rb,
            cs: g.cb,
        };
        if g.m <= MAX_ROWS {
            // SAFETY: guaranteed by the caller.
            return unsafe { product(g.m, g.k, g.n, a, b, c, g.ldc) };
        }
        // Taller, with A's rows long and contiguous and B narrow and small enough
        // to stay in cache: blocks of 16 rows, B read in place by each, nothing
        // packed (W4's input gradient, 512 x 512 x 64, whose A is 1 MB). Where A
        // would have to be gathered (transposed), its rows are short (little to
        // save by not packing it) or B is wide, matrixmultiply's packed kernel is
        // faster.
        if g.ca == 1
            && g.k >= ROW_BLOCKS_MIN_K
            && g.n <= ROW_BLOCKS_MAX_N
            && g.k * g.n <= ROW_BLOCKS_MAX_B
        {
            for i0 in (0..g.m).step_by(MAX_ROWS) {
                let rows = (g.m - i0).min(MAX_ROWS);
                let ai = Strided {
                    ptr: a.ptr.wrapping_add(i0 * g.ra),
                    ..a
                };
                // SAFETY: rows i0.. of A and of C lie inside them; the rest as above.
                if !unsafe { product(rows, g.k, g.n, ai, b, c.wrapping_add(i0 * g.ldc), g.ldc) } {
                    // B is contiguous along neither axis: nothing was written.
                    debug_assert_eq!(i0, 0);
                    return false;
                }
            }
            return true;
        }
        // `A · Wᵀ` with the rows of A and of W long and contiguous, W wider but
        // still in L2 (W2's first layer, 64 x 784 x 128, W 400 KB): every entry a
        // dot product of two rows read in place. Packing W (a transposition) costs
        // about as much as multiplying at few rows. On AVX-512 hosts only, where
        // the rule was measured against the packed kernel (AVX2 hosts run
        // smaller tiles against a packed kernel of their own width, unmeasured).
        if g.ca == 1
            && g.rb == 1
            && thin::isa() == thin::Isa::Avx512
            && g.ra >= g.k
            && g.n > 0
            && (g.k >= DOT_LONG_K || (g.k >= DOT_MIN_K && g.m <= DOT_MAX_M))
            && g.k * g.n <= DOT_MAX_B
        {
            // SAFETY: guaranteed by the caller: A holds m rows of k elements `ra`
            // apart, W n rows of k elements `cb` apart, C m rows of n elements.
            unsafe {
                let (m, k, n) = (g.m, g.k, g.n);
                let a = std::slice::from_raw_parts(a.ptr, (m - 1) * g.ra + k);
                let w = std::slice::from_raw_parts(b.ptr, (n - 1) * g.cb + k);
                let c = std::slice::from_raw_parts_mut(c, (m - 1) * g.ldc + n);
                W_ROWS.with_borrow_mut(|rows| {
                    rows.clear();
                    rows.extend((0..n).map(|j| j * g.cb));
                    thin::dot_nt((m, n, k), a, g.ra, w, rows, c, g.ldc, false);
                });
            }
            return true;
        }
        false
    }
}

thread_local! {
    /// Where each row of W starts, for [`thin::dot_nt`] (kept between calls).
    static W_ROWS: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Packed for f64 {
    gemm_with!(matrixmultiply::dgemm);
}

/// `c = beta·c + a · b` for one block: the one call into matrixmultiply.
///
/// # Safety
/// `a`, `b` and `c` must address buffers that the geometry stays inside, and no
/// other thread may write the output block.
unsafe fn packed<T: Packed>(g: &GemmBlock, a: *const T, b: *const T, beta: T, c: *mut T) {
    let s = |v: usize| v as isize;
    // SAFETY: guaranteed by the caller.
    unsafe {
        T::gemm(
            g.m,
            g.k,
            g.n,
            a,
            (s(g.ra), s(g.ca)),
            b,
            (s(g.rb), s(g.cb)),
            beta,
            c,
            s(g.ldc),
        )
    }
}

/// `out = a · b (+ bias, relu)` for `[..., m, k] x [..., k, n]` operands given as
/// strided views: the GEMM kernel reads any row and column strides, so transposed
/// and broadcast operands cost no copy.
///
/// # Safety
/// The table must hold the buffers the descriptor addresses; `out` must not alias
/// the operands.
pub(super) unsafe fn matmul(
    desc: &CallDesc,
    ptr: &dyn Fn(BufferId) -> *mut u8,
    epilogue: Option<bool>,
    workers: Option<&Workers>,
) {
    let (a, b) = (&desc.inputs[0], &desc.inputs[1]);
    let out_ty = &desc.out.1;
    let r = a.ty.shape.rank();
    let (m, k, n) = (
        a.ty.shape.dim(r - 2),
        a.ty.shape.dim(r - 1),
        out_ty.shape.dim(r - 1),
    );
    let batch_dims = &out_ty.shape.dims()[..r - 2];
    let batches: usize = batch_dims.iter().product();
    let (sa, sb) = (&a.access.strides, &b.access.strides);
    let (pa, pb, pc) = (
        ptr(a.access.buffer) as usize,
        ptr(b.access.buffer) as usize,
        ptr(desc.out.0) as usize,
    );
    let bias = epilogue.map(|relu| {
        let bias = &desc.inputs[2];
        (ptr(bias.access.buffer) as usize, bias.access.offset, relu)
    });
    let (ra, ca, rb, cb) = (sa[r - 2], sa[r - 1], sb[r - 2], sb[r - 1]);
    let dtype = out_ty.dtype;
    // Block `rows × cols` of one batch entry's product, then its epilogue.
    let block =
        move |(oa, ob, oc): (usize, usize, usize), rows: Range<usize>, cols: Range<usize>| {
            let geometry = GemmBlock {
                m: rows.len(),
                k,
                n: cols.len(),
                ldc: n,
                ra,
                ca,
                rb,
                cb,
            };
            let (oa, ob, oc) = (
                oa + rows.start * ra,
                ob + cols.start * cb,
                oc + rows.start * n + cols.start,
            );
            let at = Block {
                a: (pa, oa),
                b: (pb, ob),
                c: (pc, oc),
                bias: bias.map(|(pbias, obias, relu)| (pbias, obias + cols.start, relu)),
            };
            // SAFETY: offsets and strides stay inside the operand buffers (they come
            // from the scheduler's affine maps over the operand shapes); each call
            // writes its own block of the contiguous output, and the bias holds `n`
            // elements.
            unsafe {
                match dtype {
                    DType::F32 => block_with_bias::<f32>(&geometry, at),
                    DType::F64 => block_with_bias::<f64>(&geometry, at),
                    _ => unreachable!("gemm is only used for floats"),
                }
            }
        };
    // A large product is cut into one block per thread, along the rows or the
    // columns: each block packs its share of one operand and all of the other, so
    // cut the side whose full operand is the smaller one to repeat. Every output
    // element is still summed by one thread in the same order, so results do not
    // depend on the thread count.
    let threads = parallel::threads(workers);
    let split = threads > 1 && m * n * k >= parallel::SPLIT_MIN_MACS;
    let by_rows = n <= m;
    let parts = if split {
        threads.min(if by_rows { m } else { n } / 8).max(1)
    } else {
        1
    };
    let mut idx = vec![0usize; r - 2];
    for p in 0..batches {
        let oa = a.access.offset + idx.iter().zip(sa).map(|(i, s)| i * s).sum::<usize>();
        let ob = b.access.offset + idx.iter().zip(sb).map(|(i, s)| i * s).sum::<usize>();
        let base = (oa, ob, p * m * n);
        if parts > 1 {
            let cuts = parallel::ranges(if by_rows { m } else { n }, parts);
            parallel::run(workers, cuts, |cut| {
                if by_rows {
                    block(base, cut, 0..n)
                } else {
                    block(base, 0..m, cut)
                }
            });
        } else {
            block(base, 0..m, 0..n);
        }
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < batch_dims[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// Where one block's operands are: `(base address, element offset)` of `a`, `b`,
/// the output `c` and the bias (with the relu flag) if any. Addresses are
/// integers so the closure that holds them can move between threads.
#[derive(Clone, Copy)]
struct Block {
    a: (usize, usize),
    b: (usize, usize),
    c: (usize, usize),
    bias: Option<(usize, usize, bool)>,
}

/// `c = a · b` for one block, then the bias (one element per block column) added
/// to every row and relu applied if asked.
///
/// # Safety
/// The addresses must hold buffers of `T` that the geometry stays inside (the
/// bias the block's columns), and no other thread may write the output block.
unsafe fn block_with_bias<T: Packed>(g: &GemmBlock, at: Block) {
    let ptr = |(base, offset): (usize, usize)| (base as *mut T).wrapping_add(offset);
    let c = ptr(at.c);
    // SAFETY: guaranteed by the caller.
    unsafe {
        if !T::unpacked(g, ptr(at.a), ptr(at.b), c) {
            packed(g, ptr(at.a), ptr(at.b), T::default(), c);
        }
        if let Some((base, offset, relu)) = at.bias {
            let bias = std::slice::from_raw_parts(ptr((base, offset)), g.n);
            for i in 0..g.m {
                let row = std::slice::from_raw_parts_mut(c.add(i * g.ldc), g.n);
                add_bias_row(row, bias, relu);
            }
        }
    }
}

/// Adds `bias` to `row`, then applies relu (NaN stays NaN) if asked.
fn add_bias_row<T: Copy + PartialOrd + std::ops::Add<Output = T> + Default>(
    row: &mut [T],
    bias: &[T],
    relu: bool,
) {
    let zero = T::default();
    for (v, &b) in row.iter_mut().zip(bias) {
        let s = *v + b;
        // `s <= 0` is false for NaN, so NaN passes through like the interpreter's.
        *v = if relu && s <= zero { zero } else { s };
    }
}

/// `C[m, n] = beta·C + A·B` in f32, for products too large for the unpacked
/// kernels. `a` is `[m, k]`, or `[k, m]` read transposed when `ta`; likewise `b`
/// is `[k, n]` or `[n, k]` when `tb`. All row-major and contiguous.
///
/// # Panics
/// If a slice is shorter than its dimensions.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    beta: f32,
    c: &mut [f32],
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "sgemm operands too short"
    );
    let (ra, ca) = if ta { (1, m) } else { (k, 1) };
    let (rb, cb) = if tb { (1, k) } else { (n, 1) };
    let g = GemmBlock {
        m,
        k,
        n,
        ldc: n,
        ra,
        ca,
        rb,
        cb,
    };
    // SAFETY: the slices hold m·k, k·n and m·n elements, as the strides address.
    unsafe { packed(&g, a.as_ptr(), b.as_ptr(), beta, c.as_mut_ptr()) }
}
