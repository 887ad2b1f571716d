//! The native kernel library: the routines generated code calls for kernels that
//! are not loops (contractions, convolution, pooling, gather/scatter, `argmax`,
//! `pad`, `concat`), and the C-ABI symbols the JIT links against.
//!
//! [`kiln_call`] dispatches one [`CallDesc`] to its routine: GEMMs to [`gemm`]
//! (matrixmultiply: packed, register-blocked, any strides, bias/ReLU epilogue per
//! block; f32 products of at most 16 rows unpacked, [`few_rows`], and taller ones
//! with a narrow B 16 rows at a time), f32 convolution to [`conv`] (with the unpacked thin products of
//! [`thin`]) and pooling to [`pool`], index and movement ops to [`index`] and
//! [`movement`] for every dtype; anything else (f64 convolutions, which only
//! gradient checks use) runs the reference interpreter's op on host copies.
//! [`kiln_parallel`] runs a loop kernel split across the workers, [`kiln_wide`] an
//! elementwise kernel with transcendentals on the host's widest vectors
//! ([`wide`]); the scalar
//! routines (`kiln_exp`, `kiln_pow`, ...) serve f64 transcendentals and `pow`.
//! Large calls split across [`crate::parallel::Workers`] so that results do not
//! depend on the thread count.

use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use kiln_ir::kernel::{BufferId, CallInput};
use kiln_ir::{DType, HostTensor, Op, TensorType, interp};

use crate::collective::Collective;
use crate::parallel::{self, Workers};
use conv::ConvShape;

pub mod conv;
pub mod few_rows;
pub mod gemm;
pub mod index;
pub mod movement;
pub mod pool;
pub mod thin;
pub mod wide;

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
    /// The state of each `scan` loop, in the order the generated code refers to
    /// them (see [`crate::scan`]).
    pub(crate) scans: Vec<crate::scan::ScanHandle>,
    /// The group `all_reduce` sums over (`None`: one process, the sum is the
    /// operand).
    pub collective: Option<Arc<dyn Collective>>,
    /// The loop kernels run by [`kiln_wide`], in the order the generated code
    /// refers to them.
    pub wide: Arc<[wide::WideLoop]>,
}

impl CallContext {
    /// A context for `calls` (a program without loops), running single-threaded.
    pub fn new(calls: Vec<CallDesc>) -> Self {
        CallContext {
            calls,
            error: None,
            scratch: Vec::new(),
            workers: None,
            scans: Vec::new(),
            collective: None,
            wide: Arc::new([]),
        }
    }
}

/// The contiguous operand `input` as a slice of `T`.
///
/// # Safety
/// The buffer `input` addresses must hold its elements as `T`, unwritten while the
/// slice lives.
unsafe fn operand<'a, T>(ptr: &dyn Fn(BufferId) -> *mut u8, input: &CallInput) -> &'a [T] {
    // SAFETY: guaranteed by the caller; a contiguous operand fills its buffer.
    unsafe {
        std::slice::from_raw_parts(ptr(input.access.buffer) as *const T, input.ty.shape.numel())
    }
}

/// The output of `desc` as a slice of `T`.
///
/// # Safety
/// The output buffer must hold the op's output as `T`, aliasing no operand and
/// used by nothing else while the slice lives.
unsafe fn output<'a, T>(desc: &CallDesc, ptr: &dyn Fn(BufferId) -> *mut u8) -> &'a mut [T] {
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts_mut(ptr(desc.out.0) as *mut T, desc.out.1.shape.numel()) }
}

/// The f32 convolution and pooling routines of [`conv`] and [`pool`], when they
/// apply. Returns false to fall back to the reference path.
fn native_f32(
    desc: &CallDesc,
    ptr: &dyn Fn(BufferId) -> *mut u8,
    scratch: &mut Vec<conv::Scratch>,
    workers: Option<&Workers>,
) -> bool {
    if desc.out.1.dtype != DType::F32 || !desc.inputs.iter().all(CallInput::is_contiguous) {
        return false;
    }
    // SAFETY: contiguous f32 operands fill their buffers; the output buffer holds
    // the op's output type and aliases no operand.
    let slice = |i: usize| unsafe { operand::<f32>(ptr, &desc.inputs[i]) };
    let out = unsafe { output::<f32>(desc, ptr) };
    let dims = |i: usize| desc.inputs[i].ty.shape.dims();
    let od = desc.out.1.shape.dims();
    match &desc.op {
        Op::Conv2d(a) => {
            let (x, w) = (dims(0), dims(1));
            let s = ConvShape::new(x, [w[2], w[3]], od);
            conv::conv2d(slice(0), slice(1), out, &s, w[0], a, workers, scratch);
        }
        Op::ConvTranspose2d { conv: a, .. } => {
            // The adjoint of conv2d over an input of the output's shape.
            let (y, w) = (dims(0), dims(1));
            let s = ConvShape::new(od, [w[2], w[3]], y);
            conv::conv2d_input_grad(slice(0), slice(1), out, &s, y[1], a, workers, scratch);
        }
        Op::Conv2dWeightGrad { conv: a, kernel } => {
            let (x, dy) = (dims(0), dims(1));
            let s = ConvShape::new(x, *kernel, dy);
            conv::conv2d_weight_grad(slice(0), slice(1), out, &s, dy[1], a, workers, scratch);
        }
        Op::Pool2d(p) => {
            let s = ConvShape::new(dims(0), p.kernel, od);
            pool::pool2d(slice(0), out, &s, p, workers);
        }
        Op::Pool2dGrad(p) => {
            let s = ConvShape::new(dims(0), p.kernel, dims(1));
            pool::pool2d_grad(slice(0), slice(1), out, &s, p, workers);
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

/// The index and data-movement routines of [`index`] and [`movement`] for every
/// dtype. Returns `None` to fall back to the reference path.
fn native_any(desc: &CallDesc, ptr: &dyn Fn(BufferId) -> *mut u8) -> Option<Result<(), String>> {
    if !desc.inputs.iter().all(CallInput::is_contiguous) {
        return None;
    }
    let out_ty = &desc.out.1;
    let input = |i: usize| &desc.inputs[i];
    // SAFETY (for the slices below): each contiguous operand fills its buffer with
    // elements of its type; the output buffer holds the op's output type and
    // aliases no operand.
    let idx = |i: usize| unsafe { operand::<i32>(ptr, input(i)) };
    Some(match &desc.op {
        Op::Gather => typed!(out_ty.dtype, T => unsafe {
            let row = input(0).ty.shape.dims()[1..].iter().product();
            index::gather(operand::<T>(ptr, input(0)), idx(1), output(desc, ptr), row)
        }),
        Op::ScatterAdd { .. } => typed!(out_ty.dtype, T => unsafe {
            let row = out_ty.shape.dims()[1..].iter().product();
            index::scatter_add(idx(0), operand::<T>(ptr, input(1)), output(desc, ptr), row)
        }),
        Op::OneHot { depth, .. } => typed!(out_ty.dtype, T => unsafe {
            index::one_hot(idx(0), output::<T>(desc, ptr), *depth)
        }),
        Op::ArgMax { axis, .. } => typed!(input(0).ty.dtype, T => unsafe {
            let dims = input(0).ty.shape.dims();
            let (outer, inner) = (dims[..*axis].iter().product(), dims[axis + 1..].iter().product());
            let x = operand::<T>(ptr, input(0));
            index::argmax(x, output(desc, ptr), outer, dims[*axis], inner);
            Ok(())
        }),
        Op::Pad { low, value, .. } => typed!(out_ty.dtype, T => unsafe {
            let x = operand::<T>(ptr, input(0));
            let fill = movement::pad_value::<T>(*value);
            let (dims, out_dims) = (input(0).ty.shape.dims(), out_ty.shape.dims());
            movement::pad(x, dims, low, out_dims, fill, output(desc, ptr));
            Ok(())
        }),
        Op::Concat { axis } => typed!(out_ty.dtype, T => unsafe {
            let dims = out_ty.shape.dims();
            let (outer, inner) = (dims[..*axis].iter().product(), dims[axis + 1..].iter().product());
            let parts: Vec<(&[T], usize)> = desc
                .inputs
                .iter()
                .map(|i| (operand::<T>(ptr, i), i.ty.shape.dim(*axis)))
                .collect();
            movement::concat(&parts, outer, inner, output(desc, ptr));
            Ok(())
        }),
        _ => return None,
    })
}

thread_local! {
    static FALLBACK_CALLS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many library calls made on this thread so far ran the reference
/// interpreter's op because no native routine took them (non-contiguous operands,
/// f64 convolution or pooling, i32 GEMM, ...). Tests read it before and after a run
/// to tell a comparison with the interpreter from one of the interpreter with
/// itself. Calls run on the thread that runs the program, so concurrent tests on
/// other threads do not count.
pub fn fallback_calls() -> usize {
    FALLBACK_CALLS.with(|n| n.get())
}

/// `all_reduce`: the sum over the group of the operand, sent from its buffer
/// (a strided operand is gathered first); without a group, the operand copied.
///
/// # Safety
/// As for [`run_call`].
unsafe fn all_reduce(
    desc: &CallDesc,
    ptr: &dyn Fn(BufferId) -> *mut u8,
    collective: Option<&dyn Collective>,
) -> Result<(), String> {
    let input = &desc.inputs[0];
    let gathered;
    let send: *const u8 = if input.is_contiguous() {
        ptr(input.access.buffer)
    } else {
        // SAFETY: guaranteed by the caller.
        gathered = unsafe { movement::read(ptr(input.access.buffer), input) };
        gathered.as_bytes().as_ptr()
    };
    let n = desc.out.1.shape.numel();
    // SAFETY: `send` holds `n` elements of the operand's type, the output buffer
    // holds the output (the same type) and aliases no operand.
    unsafe {
        let Some(group) = collective else {
            std::ptr::copy_nonoverlapping(send, ptr(desc.out.0), desc.out.1.size_bytes());
            return Ok(());
        };
        let result = match desc.out.1.dtype {
            DType::F32 => group.all_reduce_f32_into(
                std::slice::from_raw_parts(send as *const f32, n),
                output(desc, ptr),
            ),
            DType::F64 => group.all_reduce_f64_into(
                std::slice::from_raw_parts(send as *const f64, n),
                output(desc, ptr),
            ),
            other => return Err(format!("all_reduce of {other} is not supported")),
        };
        result.map_err(|e| e.to_string())
    }
}

fn run_call(
    desc: &CallDesc,
    bufs: *const *mut u8,
    scratch: &mut Vec<conv::Scratch>,
    workers: Option<&Workers>,
    collective: Option<&dyn Collective>,
) -> Result<(), String> {
    // SAFETY: the runtime fills the buffer table with live buffers of the types the
    // descriptors record before calling the entry point.
    let ptr = |i: BufferId| unsafe { *bufs.add(i.index()) };
    if matches!(desc.op, Op::AllReduce) {
        // SAFETY: as above.
        return unsafe { all_reduce(desc, &ptr, collective) };
    }
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
        unsafe { gemm::matmul(desc, &ptr, epilogue, workers) };
        return Ok(());
    }
    FALLBACK_CALLS.with(|n| n.set(n.get() + 1));
    // SAFETY: as above.
    let inputs: Vec<HostTensor> = desc
        .inputs
        .iter()
        .map(|i| unsafe { movement::read(ptr(i.access.buffer), i) })
        .collect();
    let refs: Vec<&HostTensor> = inputs.iter().collect();
    let result = interp::eval_op(&desc.op, &refs).map_err(|e| e.to_string())?;
    // SAFETY: the output buffer has the op's output type.
    unsafe { movement::write(ptr(desc.out.0), &result) };
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
        collective,
        ..
    } = ctx;
    let desc = &calls[index as usize];
    let result = catch_unwind(AssertUnwindSafe(|| {
        run_call(desc, bufs, scratch, workers.as_ref(), collective.as_deref())
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

/// Runs wide loop `index` of `ctx` over the buffer table `bufs`; returns 0 (1 with
/// the message in `ctx.error` if it panicked). Never unwinds into generated code.
///
/// # Safety
/// As for [`kiln_call`].
pub unsafe extern "C" fn kiln_wide(ctx: *mut CallContext, index: u64, bufs: *const *mut u8) -> u32 {
    // SAFETY: guaranteed by the caller (the runtime passes its own context).
    let ctx = unsafe { &mut *ctx };
    let (w, workers) = (&ctx.wide[index as usize], ctx.workers.as_ref());
    // SAFETY: `bufs` is the table of the program the loop came from.
    match catch_unwind(AssertUnwindSafe(|| unsafe { w.run(bufs, workers) })) {
        Ok(()) => 0,
        Err(_) => {
            ctx.error = Some("a wide loop kernel panicked".into());
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
    kiln_erf: f64 => interp::erf;
}

/// `a^b` for f32, called by generated code.
pub extern "C" fn kiln_powf(a: f32, b: f32) -> f32 {
    a.powf(b)
}

/// `a^b` for f64, called by generated code.
pub extern "C" fn kiln_pow(a: f64, b: f64) -> f64 {
    a.powf(b)
}
