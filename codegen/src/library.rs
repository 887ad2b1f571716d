//! Library routines the generated code calls for kernels that are not loops:
//! contractions, convolution, pooling, gather/scatter, `argmax`, `pad`, `concat`.
//!
//! [`kiln_call`] dispatches one call: GEMMs go to matrixmultiply (packed,
//! register-blocked, any strides, bias/ReLU epilogue per block), f32 convolution
//! and pooling to [`crate::conv`], index and movement ops to [`crate::index`] and
//! [`crate::movement`] for every dtype; anything else (f64 convolutions, which only
//! gradient checks use) runs the reference interpreter's op on host copies.
//! [`kiln_parallel`] runs a loop kernel split across the workers. Large calls split
//! across [`crate::parallel::Workers`] so that results do not depend on the thread
//! count.

use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};

use kiln_ir::kernel::{BufferId, CallInput};
use kiln_ir::{DType, HostTensor, Op, TensorData, TensorType, interp};

use crate::conv::{self, ConvShape};
use crate::parallel::{self, Workers};
use crate::{index, movement};

/// One library call: the op, its operands (strided views of buffers in the buffer
/// table) and its output buffer with its type.
#[derive(Clone, Debug)]
pub struct CallDesc {
    pub op: Op,
    pub inputs: Vec<CallInput>,
    pub out: (BufferId, TensorType),
}

/// What generated code passes to [`kiln_call`]: the calls of one program and the
/// message of the first failure.
#[derive(Debug, Default)]
pub struct CallContext {
    pub calls: Vec<CallDesc>,
    pub error: Option<String>,
    /// Reused working memory of the convolutions, one per thread, so calls do not
    /// allocate once warm.
    pub scratch: Vec<conv::Scratch>,
    /// Worker threads for large calls (`None`: run on the calling thread).
    pub workers: Option<Workers>,
}

impl CallContext {
    /// A context for `calls`, running single-threaded.
    pub fn new(calls: Vec<CallDesc>) -> Self {
        CallContext {
            calls,
            error: None,
            scratch: Vec::new(),
            workers: None,
        }
    }
}

/// Copies the operand `input` (a strided view of the buffer at `base`) into a
/// host tensor.
///
/// # Safety
/// `base` must be the live buffer `input.access` addresses.
unsafe fn read(base: *const u8, input: &CallInput) -> HostTensor {
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
unsafe fn write(ptr: *mut u8, t: &HostTensor) {
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

/// `out = a · b (+ bias, relu)` for `[..., m, k] x [..., k, n]` operands given as
/// strided views: the GEMM kernel (matrixmultiply: packed, register-blocked, AVX2 /
/// AVX-512 where the host has them) reads any row and column strides, so
/// transposed and broadcast operands cost no copy.
///
/// # Safety
/// The table must hold the buffers the descriptor addresses; `out` must not alias
/// the operands.
unsafe fn gemm(
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
            // SAFETY: offsets and strides stay inside the operand buffers (they come
            // from the scheduler's affine maps over the operand shapes); each call
            // writes its own block of the contiguous output, and the bias holds `n`
            // elements.
            unsafe {
                gemm_block(dtype, &geometry, pa, oa, pb, ob, pc, oc);
                if let Some((pbias, obias, relu)) = bias {
                    add_bias(dtype, &geometry, pc, oc, pbias, obias + cols.start, relu);
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

/// `c = a · b` for one block, in f32 or f64. Addresses are passed as integers so
/// the closure that calls this can move between threads.
///
/// # Safety
/// `a + oa`, `b + ob` and `c + oc` must address buffers of `dtype` that the
/// geometry stays inside, and no other thread may write the output block.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_block(
    dtype: DType,
    g: &GemmBlock,
    a: usize,
    oa: usize,
    b: usize,
    ob: usize,
    c: usize,
    oc: usize,
) {
    let s = |v: usize| v as isize;
    let GemmBlock {
        m,
        k,
        n,
        ldc,
        ra,
        ca,
        rb,
        cb,
    } = *g;
    // SAFETY: guaranteed by the caller.
    unsafe {
        match dtype {
            DType::F32 => matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                (a as *const f32).add(oa),
                s(ra),
                s(ca),
                (b as *const f32).add(ob),
                s(rb),
                s(cb),
                0.0,
                (c as *mut f32).add(oc),
                s(ldc),
                1,
            ),
            DType::F64 => matrixmultiply::dgemm(
                m,
                k,
                n,
                1.0,
                (a as *const f64).add(oa),
                s(ra),
                s(ca),
                (b as *const f64).add(ob),
                s(rb),
                s(cb),
                0.0,
                (c as *mut f64).add(oc),
                s(ldc),
                1,
            ),
            _ => unreachable!("gemm is only used for floats"),
        }
    }
}

/// Adds the bias (`bias + obias`, one element per block column) to every row of the
/// output block at `c + oc`, then applies relu if asked.
///
/// # Safety
/// As for [`gemm_block`]; the bias holds the block's columns.
unsafe fn add_bias(
    dtype: DType,
    g: &GemmBlock,
    c: usize,
    oc: usize,
    bias: usize,
    obias: usize,
    relu: bool,
) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        match dtype {
            DType::F32 => {
                let bias = std::slice::from_raw_parts((bias as *const f32).add(obias), g.n);
                for i in 0..g.m {
                    let row =
                        std::slice::from_raw_parts_mut((c as *mut f32).add(oc + i * g.ldc), g.n);
                    add_bias_row(row, bias, relu);
                }
            }
            DType::F64 => {
                let bias = std::slice::from_raw_parts((bias as *const f64).add(obias), g.n);
                for i in 0..g.m {
                    let row =
                        std::slice::from_raw_parts_mut((c as *mut f64).add(oc + i * g.ldc), g.n);
                    add_bias_row(row, bias, relu);
                }
            }
            _ => unreachable!("gemm is only used for floats"),
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

/// The f32 convolution and pooling routines of [`crate::conv`], when they apply.
/// Returns false to fall back to the reference path.
fn native_f32(
    desc: &CallDesc,
    ptr: &dyn Fn(BufferId) -> *mut u8,
    scratch: &mut Vec<conv::Scratch>,
    workers: Option<&Workers>,
) -> bool {
    if desc.out.1.dtype != DType::F32 || !desc.inputs.iter().all(CallInput::is_contiguous) {
        return false;
    }
    let slice = |i: usize| {
        let inp = &desc.inputs[i];
        // SAFETY: a contiguous operand of this type fills its buffer.
        unsafe {
            std::slice::from_raw_parts(ptr(inp.access.buffer) as *const f32, inp.ty.shape.numel())
        }
    };
    let out_ty = &desc.out.1;
    // SAFETY: the output buffer holds the op's output type and aliases no operand.
    let out = unsafe {
        std::slice::from_raw_parts_mut(ptr(desc.out.0) as *mut f32, out_ty.shape.numel())
    };
    let dims = |i: usize| desc.inputs[i].ty.shape.dims().to_vec();
    let od = out_ty.shape.dims().to_vec();
    match &desc.op {
        Op::Conv2d(a) => {
            let (x, w) = (dims(0), dims(1));
            let s = ConvShape {
                n: x[0],
                c: x[1],
                h: x[2],
                w: x[3],
                kh: w[2],
                kw: w[3],
                oh: od[2],
                ow: od[3],
            };
            conv::conv2d(slice(0), slice(1), out, &s, w[0], a, workers, scratch);
        }
        Op::ConvTranspose2d { conv: a, .. } => {
            // The adjoint of conv2d over an input of the output's shape.
            let (y, w) = (dims(0), dims(1));
            let s = ConvShape {
                n: od[0],
                c: od[1],
                h: od[2],
                w: od[3],
                kh: w[2],
                kw: w[3],
                oh: y[2],
                ow: y[3],
            };
            conv::conv2d_input_grad(slice(0), slice(1), out, &s, y[1], a, workers, scratch);
        }
        Op::Conv2dWeightGrad { conv: a, kernel } => {
            let (x, dy) = (dims(0), dims(1));
            let s = ConvShape {
                n: x[0],
                c: x[1],
                h: x[2],
                w: x[3],
                kh: kernel[0],
                kw: kernel[1],
                oh: dy[2],
                ow: dy[3],
            };
            conv::conv2d_weight_grad(slice(0), slice(1), out, &s, dy[1], a, workers, scratch);
        }
        Op::Pool2d(p) => {
            let x = dims(0);
            let s = ConvShape {
                n: x[0],
                c: x[1],
                h: x[2],
                w: x[3],
                kh: p.kernel[0],
                kw: p.kernel[1],
                oh: od[2],
                ow: od[3],
            };
            conv::pool2d(slice(0), out, &s, p, workers);
        }
        Op::Pool2dGrad(p) => {
            let (x, dy) = (dims(0), dims(1));
            let s = ConvShape {
                n: x[0],
                c: x[1],
                h: x[2],
                w: x[3],
                kh: p.kernel[0],
                kw: p.kernel[1],
                oh: dy[2],
                ow: dy[3],
            };
            conv::pool2d_grad(slice(0), slice(1), out, &s, p, workers);
        }
        _ => return false,
    }
    true
}

/// Runs `$body` with `$T` bound to the Rust type of `$dtype` (bools as bytes).
macro_rules! typed {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $T = f32;
                $body
            }
            DType::F64 => {
                type $T = f64;
                $body
            }
            DType::I32 => {
                type $T = i32;
                $body
            }
            DType::Bool => {
                type $T = u8;
                $body
            }
        }
    };
}

/// The index and data-movement routines of [`crate::index`] and [`crate::movement`]
/// for every dtype. Returns `None` to fall back to the reference path.
fn native_any(desc: &CallDesc, ptr: &dyn Fn(BufferId) -> *mut u8) -> Option<Result<(), String>> {
    if !desc.inputs.iter().all(CallInput::is_contiguous) {
        return None;
    }
    let out_ty = &desc.out.1;
    let n_out = out_ty.shape.numel();
    let input = |i: usize| &desc.inputs[i];
    // SAFETY (for the slices below): each contiguous operand fills its buffer with
    // elements of its type; the output buffer holds the op's output type and
    // aliases no operand.
    let idx = |i: usize| unsafe {
        std::slice::from_raw_parts(
            ptr(input(i).access.buffer) as *const i32,
            input(i).ty.shape.numel(),
        )
    };
    Some(match &desc.op {
        Op::Gather => typed!(out_ty.dtype, T => unsafe {
            let table = std::slice::from_raw_parts(ptr(input(0).access.buffer) as *const T, input(0).ty.shape.numel());
            let out = std::slice::from_raw_parts_mut(ptr(desc.out.0) as *mut T, n_out);
            let row = input(0).ty.shape.dims()[1..].iter().product();
            index::gather(table, idx(1), out, row)
        }),
        Op::ScatterAdd { .. } => typed!(out_ty.dtype, T => unsafe {
            let upd = std::slice::from_raw_parts(ptr(input(1).access.buffer) as *const T, input(1).ty.shape.numel());
            let out = std::slice::from_raw_parts_mut(ptr(desc.out.0) as *mut T, n_out);
            let row = out_ty.shape.dims()[1..].iter().product();
            index::scatter_add(idx(0), upd, out, row)
        }),
        Op::OneHot { depth, .. } => typed!(out_ty.dtype, T => unsafe {
            let out = std::slice::from_raw_parts_mut(ptr(desc.out.0) as *mut T, n_out);
            index::one_hot(idx(0), out, *depth)
        }),
        Op::ArgMax { axis, .. } => typed!(input(0).ty.dtype, T => unsafe {
            let dims = input(0).ty.shape.dims();
            let x = std::slice::from_raw_parts(ptr(input(0).access.buffer) as *const T, input(0).ty.shape.numel());
            let out = std::slice::from_raw_parts_mut(ptr(desc.out.0) as *mut i32, n_out);
            let (outer, inner) = (dims[..*axis].iter().product(), dims[axis + 1..].iter().product());
            index::argmax(x, out, outer, dims[*axis], inner);
            Ok(())
        }),
        Op::Pad { low, value, .. } => typed!(out_ty.dtype, T => unsafe {
            let x = std::slice::from_raw_parts(ptr(input(0).access.buffer) as *const T, input(0).ty.shape.numel());
            let out = std::slice::from_raw_parts_mut(ptr(desc.out.0) as *mut T, n_out);
            let fill = pad_value::<T>(*value);
            movement::pad(x, input(0).ty.shape.dims(), low, out_ty.shape.dims(), fill, out);
            Ok(())
        }),
        Op::Concat { axis } => typed!(out_ty.dtype, T => unsafe {
            let dims = out_ty.shape.dims();
            let (outer, inner) = (dims[..*axis].iter().product(), dims[axis + 1..].iter().product());
            let parts: Vec<(&[T], usize)> = desc
                .inputs
                .iter()
                .map(|i| {
                    let x = std::slice::from_raw_parts(ptr(i.access.buffer) as *const T, i.ty.shape.numel());
                    (x, i.ty.shape.dim(*axis))
                })
                .collect();
            let out = std::slice::from_raw_parts_mut(ptr(desc.out.0) as *mut T, n_out);
            movement::concat(&parts, outer, inner, out);
            Ok(())
        }),
        _ => return None,
    })
}

/// The pad value converted like `HostTensor::full` converts (`as`; non-zero is true).
fn pad_value<T: PadValue>(v: f64) -> T {
    T::from_f64(v)
}

trait PadValue {
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

fn run_call(
    desc: &CallDesc,
    bufs: *const *mut u8,
    scratch: &mut Vec<conv::Scratch>,
    workers: Option<&Workers>,
) -> Result<(), String> {
    // SAFETY: the runtime fills the buffer table with live buffers of the types the
    // descriptors record before calling the entry point.
    let ptr = |i: BufferId| unsafe { *bufs.add(i.index()) };
    if native_f32(desc, &ptr, scratch, workers) {
        return Ok(());
    }
    if let Some(result) = native_any(desc, &ptr) {
        return result;
    }
    let epilogue = match desc.op {
        Op::MatMul => Some(None),
        Op::MatMulBias { relu } => Some(Some(relu)),
        _ => None,
    };
    if let Some(epilogue) = epilogue
        && desc.out.1.dtype.is_float()
    {
        // SAFETY: as above; outputs never alias inputs.
        unsafe { gemm(desc, &ptr, epilogue, workers) };
        return Ok(());
    }
    // SAFETY: as above.
    let inputs: Vec<HostTensor> = desc
        .inputs
        .iter()
        .map(|i| unsafe { read(ptr(i.access.buffer), i) })
        .collect();
    let refs: Vec<&HostTensor> = inputs.iter().collect();
    let result = interp::eval_op(&desc.op, &refs).map_err(|e| e.to_string())?;
    // SAFETY: the output buffer has the op's output type.
    unsafe { write(ptr(desc.out.0), &result) };
    Ok(())
}

/// Runs call `index` of `ctx` over the buffer table `bufs`; returns 0 on success,
/// else 1 with the message stored in `ctx.error`. Never unwinds into generated code.
///
/// # Safety
/// `ctx` must be a live, exclusively borrowed `CallContext` and `bufs` the buffer
/// table of the program the calls were built for.
pub unsafe extern "C" fn kiln_call(ctx: *mut CallContext, index: u64, bufs: *const *mut u8) -> u32 {
    // SAFETY: guaranteed by the caller (the runtime passes its own context).
    let ctx = unsafe { &mut *ctx };
    let CallContext {
        calls,
        error,
        scratch,
        workers,
    } = ctx;
    let desc = &calls[index as usize];
    let result = catch_unwind(AssertUnwindSafe(|| {
        run_call(desc, bufs, scratch, workers.as_ref())
    }))
    .unwrap_or_else(|_| Err(format!("library routine `{}` panicked", desc.op.mnemonic())));
    match result {
        Ok(()) => 0,
        Err(e) => {
            *error = Some(format!("`{}`: {e}", desc.op.mnemonic()));
            1
        }
    }
}

/// A loop kernel compiled with its outermost-loop range as parameters.
pub type RangeKernel = unsafe extern "C" fn(*const *mut u8, i64, i64);

/// Runs `kernel` over `0..n` of its outermost loop, cut into one range per thread
/// (bounds multiples of `align`) when the executable has workers.
///
/// # Safety
/// `ctx` must be the live context of the program `kernel` and `bufs` belong to,
/// and `kernel` must write disjoint outputs for disjoint ranges (true of the loop
/// kernels: each outermost index owns its output elements).
pub unsafe extern "C" fn kiln_parallel(
    ctx: *const CallContext,
    kernel: RangeKernel,
    bufs: *const *mut u8,
    n: i64,
    align: i64,
) {
    // SAFETY: guaranteed by the caller.
    let workers = unsafe { (*ctx).workers.as_ref() };
    let (n, align) = (n as usize, (align as usize).max(1));
    let ranges: Vec<Range<usize>> = parallel::ranges(n.div_ceil(align), parallel::threads(workers))
        .into_iter()
        .map(|r| r.start * align..(r.end * align).min(n))
        .collect();
    let table = bufs as usize;
    // SAFETY: the ranges are disjoint and cover 0..n; see the function's contract.
    let part =
        |r: Range<usize>| unsafe { kernel(table as *const *mut u8, r.start as i64, r.end as i64) };
    // Generated code does not panic; if the pool ever did, rerun the whole range
    // here rather than unwind into generated code.
    if catch_unwind(AssertUnwindSafe(|| parallel::run(workers, ranges, part))).is_err() {
        part(0..n);
    }
}

macro_rules! scalar_fns {
    ($($name:ident: $t:ty => $f:expr;)*) => {
        $(
            #[doc = concat!("Scalar `", stringify!($name), "` called by generated code.")]
            pub extern "C" fn $name(x: $t) -> $t {
                let f: fn($t) -> $t = $f;
                f(x)
            }
        )*
        /// Name and address of every scalar routine, for the JIT's symbol table.
        pub fn scalar_symbols() -> Vec<(&'static str, *const u8)> {
            vec![$((stringify!($name), $name as *const u8)),*]
        }
    };
}

scalar_fns! {
    kiln_exp: f64 => f64::exp;
    kiln_log: f64 => f64::ln;
    kiln_tanh: f64 => f64::tanh;
}

/// `a^b` for f32, called by generated code.
pub extern "C" fn kiln_powf(a: f32, b: f32) -> f32 {
    a.powf(b)
}

/// `a^b` for f64, called by generated code.
pub extern "C" fn kiln_pow(a: f64, b: f64) -> f64 {
    a.powf(b)
}
