//! Library routines the generated code calls for kernels that are not loops:
//! contractions, pooling, gather/scatter, `argmax`, `pad`, `concat`.
//!
//! Increment 1 runs them through the reference interpreter's op semantics on host
//! copies of the buffers (correct for every dtype and attribute, not fast); f32
//! matmul has a direct loop. Issue 6 replaces these with packed, blocked kernels.

use std::panic::{AssertUnwindSafe, catch_unwind};

use kiln_ir::{DType, HostTensor, Op, TensorData, TensorType, interp};

/// One library call: the op, its operand buffers and output buffer (indices into the
/// buffer table) with their types.
#[derive(Clone, Debug)]
pub struct CallDesc {
    pub op: Op,
    pub inputs: Vec<(usize, TensorType)>,
    pub out: (usize, TensorType),
}

/// What generated code passes to [`kiln_call`]: the calls of one program and the
/// message of the first failure.
#[derive(Debug, Default)]
pub struct CallContext {
    pub calls: Vec<CallDesc>,
    pub error: Option<String>,
}

/// Copies `ty`'s worth of elements at `ptr` into a host tensor.
///
/// # Safety
/// `ptr` must point to a live buffer of type `ty`.
unsafe fn read(ptr: *const u8, ty: &TensorType) -> HostTensor {
    let n = ty.shape.numel();
    // SAFETY: the caller guarantees `ptr` holds `n` elements of `ty.dtype`; the
    // copies below read exactly that many.
    let data = unsafe {
        match ty.dtype {
            DType::F32 => {
                TensorData::F32(std::slice::from_raw_parts(ptr as *const f32, n).to_vec())
            }
            DType::F64 => {
                TensorData::F64(std::slice::from_raw_parts(ptr as *const f64, n).to_vec())
            }
            DType::I32 => {
                TensorData::I32(std::slice::from_raw_parts(ptr as *const i32, n).to_vec())
            }
            DType::Bool => TensorData::Bool(
                std::slice::from_raw_parts(ptr, n)
                    .iter()
                    .map(|&b| b != 0)
                    .collect(),
            ),
        }
    };
    HostTensor::new(ty.shape.clone(), data).expect("sized from the type")
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

/// `c = a · b` for row-major f32 `[batch, m, k] x [batch, k, n]`.
///
/// # Safety
/// The pointers must hold buffers of those sizes; `c` must not alias `a` or `b`.
unsafe fn matmul_f32(
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
) {
    // SAFETY: sizes as documented; the slices cover exactly the buffers.
    let (a, b, c) = unsafe {
        (
            std::slice::from_raw_parts(a, batch * m * k),
            std::slice::from_raw_parts(b, batch * k * n),
            std::slice::from_raw_parts_mut(c, batch * m * n),
        )
    };
    for p in 0..batch {
        let (a, b, c) = (
            &a[p * m * k..][..m * k],
            &b[p * k * n..][..k * n],
            &mut c[p * m * n..][..m * n],
        );
        for i in 0..m {
            let row = &mut c[i * n..][..n];
            row.fill(0.0);
            for (kk, &x) in a[i * k..][..k].iter().enumerate() {
                for (r, &y) in row.iter_mut().zip(&b[kk * n..][..n]) {
                    *r += x * y;
                }
            }
        }
    }
}

fn run_call(desc: &CallDesc, bufs: *const *mut u8) -> Result<(), String> {
    // SAFETY: the runtime fills the buffer table with live buffers of the types the
    // descriptors record before calling the entry point.
    let ptr = |i: usize| unsafe { *bufs.add(i) };
    let (out, out_ty) = (&desc.out.0, &desc.out.1);
    let epilogue = match desc.op {
        Op::MatMul => Some(None),
        Op::MatMulBias { relu } => Some(Some(relu)),
        _ => None,
    };
    if let (Some(epilogue), DType::F32) = (epilogue, out_ty.dtype) {
        let a = &desc.inputs[0].1.shape;
        let r = a.rank();
        let (m, k) = (a.dim(r - 2), a.dim(r - 1));
        let n = out_ty.shape.dim(r - 1);
        let batch = a.dims()[..r - 2].iter().product();
        // SAFETY: shapes checked by the graph's typing; outputs never alias inputs.
        unsafe {
            matmul_f32(
                ptr(desc.inputs[0].0) as *const f32,
                ptr(desc.inputs[1].0) as *const f32,
                ptr(*out) as *mut f32,
                batch,
                m,
                k,
                n,
            )
        };
        if let Some(relu) = epilogue {
            // SAFETY: the bias holds `n` elements, the output `batch·m·n`.
            let (bias, c) = unsafe {
                (
                    std::slice::from_raw_parts(ptr(desc.inputs[2].0) as *const f32, n),
                    std::slice::from_raw_parts_mut(ptr(*out) as *mut f32, batch * m * n),
                )
            };
            for row in c.chunks_exact_mut(n.max(1)) {
                for (v, &b) in row.iter_mut().zip(bias) {
                    let s = *v + b;
                    *v = if relu && !(s > 0.0) && !s.is_nan() {
                        0.0
                    } else {
                        s
                    };
                }
            }
        }
        return Ok(());
    }
    // SAFETY: as above.
    let inputs: Vec<HostTensor> = desc
        .inputs
        .iter()
        .map(|(b, ty)| unsafe { read(ptr(*b), ty) })
        .collect();
    let refs: Vec<&HostTensor> = inputs.iter().collect();
    let result = interp::eval_op(&desc.op, &refs).map_err(|e| e.to_string())?;
    // SAFETY: the output buffer has the op's output type.
    unsafe { write(ptr(*out), &result) };
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
    let desc = &ctx.calls[index as usize];
    let result = catch_unwind(AssertUnwindSafe(|| run_call(desc, bufs)))
        .unwrap_or_else(|_| Err(format!("library routine `{}` panicked", desc.op.mnemonic())));
    match result {
        Ok(()) => 0,
        Err(e) => {
            ctx.error = Some(format!("`{}`: {e}", desc.op.mnemonic()));
            1
        }
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
    kiln_expf: f32 => f32::exp;
    kiln_logf: f32 => f32::ln;
    kiln_tanhf: f32 => f32::tanh;
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
