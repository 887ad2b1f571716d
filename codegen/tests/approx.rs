//! Accuracy of the emitted exp, log, tanh and sigmoid against f64 references rounded
//! to f32, over a sweep of f32 bit patterns (both signs, subnormals, huge values)
//! and the special values, on the f32x4 path and the scalar tail alike.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    AbiParam, Function, InstBuilder, MemFlagsData, UserFuncName, Value, types,
};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::JITModule;
use cranelift_module::{Linkage, Module};
use kiln_codegen::approx;
use kiln_codegen::lower::host_module;

type Kernel = unsafe extern "C" fn(*const f32, *mut f32, i64);

/// JIT-compiles `out[i] = f(in[i])` for i < n: f32x4 main loop, scalar tail.
fn compile(f: fn(&mut FunctionBuilder, Value) -> Value) -> (JITModule, Kernel) {
    let mut module = host_module().unwrap();
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    sig.params.extend([
        AbiParam::new(ptr),
        AbiParam::new(ptr),
        AbiParam::new(types::I64),
    ]);
    let id = module
        .declare_function("map", Linkage::Export, &sig)
        .unwrap();
    let mut ctx = module.make_context();
    ctx.func = Function::with_name_signature(UserFuncName::user(0, 0), sig);
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let (src, dst, n) = (
            b.block_params(entry)[0],
            b.block_params(entry)[1],
            b.block_params(entry)[2],
        );
        let flags = MemFlagsData::new().with_notrap();
        for (lanes, ty) in [(4i64, types::F32X4), (1, types::F32)] {
            let head = b.create_block();
            let body = b.create_block();
            let exit = b.create_block();
            b.append_block_param(head, types::I64);
            let start = if lanes == 4 {
                b.ins().iconst(types::I64, 0)
            } else {
                // The tail starts where the vector loop stopped.
                b.ins().band_imm_u(n, !3i64 as u64 as i64)
            };
            b.ins().jump(head, &[start.into()]);
            b.switch_to_block(head);
            let i = b.block_params(head)[0];
            let end = b.ins().iadd_imm_s(i, lanes);
            let go = b.ins().icmp(IntCC::SignedLessThanOrEqual, end, n);
            b.ins().brif(go, body, &[], exit, &[]);
            b.switch_to_block(body);
            let off = b.ins().imul_imm_s(i, 4);
            let a = b.ins().iadd(src, off);
            let x = b.ins().load(ty, flags, a, 0);
            let y = f(&mut b, x);
            let a = b.ins().iadd(dst, off);
            b.ins().store(flags, y, a, 0);
            b.ins().jump(head, &[end.into()]);
            b.switch_to_block(exit);
        }
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(module.target_config());
    }
    module.define_function(id, &mut ctx).unwrap();
    module.finalize_definitions().unwrap();
    let code = module.get_finalized_function(id);
    // SAFETY: declared with exactly this signature.
    (module, unsafe {
        std::mem::transmute::<*const u8, Kernel>(code)
    })
}

/// Distance in units in the last place between two f32 of the same sign class.
fn ulps(a: f32, b: f32) -> u64 {
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        (if i < 0 { i32::MIN.wrapping_sub(i) } else { i }) as i64
    };
    (key(a) - key(b)).unsigned_abs()
}

/// The inputs: every 509th bit pattern, plus special and boundary values, in an odd
/// count so the scalar tail runs too.
fn inputs() -> Vec<f32> {
    let mut v: Vec<f32> = (0..u32::MAX / 509)
        .map(|k| f32::from_bits(k * 509))
        .collect();
    v.extend([
        0.0,
        -0.0,
        1.0,
        -1.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        1e-45,
        88.72,
        88.73,
        -87.33,
        -103.9,
        -104.1,
        0.625,
        -0.625,
        9.0,
        17.4,
    ]);
    if v.len().is_multiple_of(4) {
        v.push(0.5);
    }
    v
}

/// Runs `f` over the inputs and returns the worst ulp error where the reference is a
/// normal float, checking special values exactly.
fn worst(f: fn(&mut FunctionBuilder, Value) -> Value, reference: fn(f64) -> f64) -> (u64, f32) {
    let (module, k) = compile(f);
    let xs = inputs();
    let mut ys = vec![0.0f32; xs.len()];
    // SAFETY: both buffers hold xs.len() floats.
    unsafe { k(xs.as_ptr(), ys.as_mut_ptr(), xs.len() as i64) };
    let mut worst = (0, 0.0);
    for (&x, &y) in xs.iter().zip(&ys) {
        let r = reference(x as f64) as f32;
        if r.is_nan() {
            assert!(y.is_nan(), "f({x:e}) = {y:e}, want NaN");
            continue;
        }
        assert!(!y.is_nan(), "f({x:e}) = NaN, want {r:e}");
        if r.is_infinite() || r == 0.0 {
            assert_eq!(y, r, "f({x:e})");
            continue;
        }
        if !r.is_normal() {
            // Subnormal results: absolute error below the smallest normal.
            assert!(
                (y - r).abs() <= f32::MIN_POSITIVE,
                "f({x:e}) = {y:e}, want {r:e}"
            );
            continue;
        }
        assert!(y.is_finite(), "f({x:e}) = {y:e}, want {r:e}");
        let u = ulps(y, r);
        if u > worst.0 {
            worst = (u, x);
        }
    }
    // SAFETY: the kernel is no longer used.
    unsafe { module.free_memory() };
    worst
}

#[test]
fn exp_is_within_1_ulp() {
    let (u, at) = worst(approx::exp, f64::exp);
    assert!(u <= 1, "exp: {u} ulp at {at:e}");
}

#[test]
fn log_is_within_2_ulp() {
    let (u, at) = worst(approx::log, f64::ln);
    assert!(u <= 2, "log: {u} ulp at {at:e}");
}

#[test]
fn tanh_is_within_1_ulp() {
    let (u, at) = worst(approx::tanh, f64::tanh);
    assert!(u <= 1, "tanh: {u} ulp at {at:e}");
}

#[test]
fn sigmoid_is_within_2_ulp() {
    let (u, at) = worst(approx::sigmoid, |x| 1.0 / (1.0 + (-x).exp()));
    assert!(u <= 2, "sigmoid: {u} ulp at {at:e}");
}
