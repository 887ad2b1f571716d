//! Accuracy of the emitted exp, log, tanh, sigmoid and erf against f64 references rounded
//! to f32, over a sweep of f32 bit patterns (both signs, subnormals, huge values)
//! and the special and boundary values: on the f32x4 path and the scalar path, with
//! fused and separate multiply-adds, and for lengths that are not multiples of 4.
//!
//! `cargo test -p kiln-codegen --test approx -- --nocapture` prints the measured
//! errors.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    AbiParam, Function, InstBuilder, MemFlagsData, UserFuncName, Value, types,
};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::JITModule;
use cranelift_module::{Linkage, Module};
use kiln_codegen::lower::approx::{self, MulAdd};
use kiln_codegen::lower::host_module;

type Kernel = unsafe extern "C" fn(*const f32, *mut f32, i64);
type Emit = fn(&mut FunctionBuilder, MulAdd, Value) -> Value;

/// A JIT-compiled `out[i] = f(in[i])` for i < n.
struct Map {
    module: Option<JITModule>,
    kernel: Kernel,
}

impl Map {
    /// Compiles `f` with an f32x4 main loop and a scalar tail, or (`vector` false)
    /// with the scalar loop only.
    fn new(f: Emit, m: MulAdd, vector: bool) -> Map {
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
            let loops: &[(i64, _)] = if vector {
                &[(4, types::F32X4), (1, types::F32)]
            } else {
                &[(1, types::F32)]
            };
            for &(lanes, ty) in loops {
                let head = b.create_block();
                let body = b.create_block();
                let exit = b.create_block();
                b.append_block_param(head, types::I64);
                let start = if lanes == 1 && vector {
                    // The tail starts where the vector loop stopped.
                    b.ins().band_imm_u(n, !3i64 as u64 as i64)
                } else {
                    b.ins().iconst(types::I64, 0)
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
                let y = f(&mut b, m, x);
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
        let kernel = unsafe { std::mem::transmute::<*const u8, Kernel>(code) };
        Map {
            module: Some(module),
            kernel,
        }
    }

    fn run(&self, xs: &[f32], ys: &mut [f32]) {
        assert!(ys.len() >= xs.len());
        // SAFETY: the kernel reads xs.len() floats from xs and writes as many to ys.
        unsafe { (self.kernel)(xs.as_ptr(), ys.as_mut_ptr(), xs.len() as i64) };
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: the kernel cannot be called after the Map is gone.
        unsafe { self.module.take().unwrap().free_memory() };
    }
}

/// Distance in units in the last place between two finite f32 (across zero and the
/// subnormals too: the key is monotonic in the value).
fn ulps(a: f32, b: f32) -> u64 {
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        (if i < 0 { i32::MIN.wrapping_sub(i) } else { i }) as i64
    };
    (key(a) - key(b)).unsigned_abs()
}

/// The inputs: every 509th bit pattern (both signs, subnormals, huge values, a few
/// NaNs), plus special and boundary values, in an odd count so the tail runs too.
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
        -f32::NAN,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::from_bits(0x8000_0001),
        f32::EPSILON,
        1.0 - f32::EPSILON / 2.0,
        1.0 + f32::EPSILON,
        // exp: overflow and underflow thresholds and the clamps.
        88.722_83,
        88.722_84,
        88.73,
        89.0,
        89.1,
        -87.336_55,
        -87.34,
        -103.27,
        -103.97,
        -103.98,
        -104.0,
        -104.1,
        // tanh: the branch point, saturation.
        0.625,
        -0.625,
        0.624_999_94,
        9.0,
        9.02,
        -9.02,
        // sigmoid: where it reaches 1 and where it turns subnormal.
        16.63,
        16.65,
        17.33,
        17.34,
        -88.0,
        -88.73,
        -100.0,
        -103.5,
        // erf: the branch point, the clamp, saturation.
        0.921_875,
        -0.921_875,
        3.92,
        4.0,
        -4.0,
    ]);
    // erf's working range, densely (the bit-pattern sweep has ~70k points there).
    v.extend((0..100_001).map(|k| -4.5 + 9.0 * k as f32 / 100_000.0));
    // Every value around the branch points and thresholds, bit by bit.
    for c in [
        0.625f32,
        -0.625,
        88.722_83,
        -87.336_55,
        -103.97,
        1.0,
        0.707_106_77,
        0.921_875,
        -0.921_875,
    ] {
        for d in -64i32..=64 {
            v.push(f32::from_bits(c.to_bits().wrapping_add_signed(d)));
        }
    }
    if v.len().is_multiple_of(4) {
        v.push(0.5);
    }
    v
}

/// Worst error found by [`check`].
#[derive(Debug, Default)]
struct Worst {
    ulps: u64,
    ulps_at: f32,
    rel: f64,
    rel_at: f32,
}

/// Runs `f` over the inputs on the vector and the scalar path and returns the worst
/// ulp error, checking that both paths agree bit for bit, that special values are
/// exact, and that there is no NaN or infinity where the reference is finite.
fn check(f: Emit, m: MulAdd, reference: fn(f64) -> f64) -> Worst {
    let xs = inputs();
    let mut ys = vec![0.0f32; xs.len()];
    let mut zs = vec![0.0f32; xs.len()];
    Map::new(f, m, true).run(&xs, &mut ys);
    Map::new(f, m, false).run(&xs, &mut zs);
    let mut worst = Worst::default();
    for ((&x, &y), &z) in xs.iter().zip(&ys).zip(&zs) {
        // The emitters are branch-free, so scalar and vector lanes do the same
        // arithmetic.
        assert!(
            y.to_bits() == z.to_bits() || (y.is_nan() && z.is_nan()),
            "f({x:e}): vector {y:e}, scalar {z:e}"
        );
        let exact = reference(x as f64);
        let r = exact as f32;
        if r.is_nan() {
            assert!(y.is_nan(), "f({x:e}) = {y:e}, want NaN");
            continue;
        }
        assert!(!y.is_nan(), "f({x:e}) = NaN, want {r:e}");
        if r.is_infinite() || r == 0.0 {
            assert_eq!(y, r, "f({x:e})");
            assert_eq!(
                y.is_sign_negative(),
                r.is_sign_negative(),
                "sign of f({x:e})"
            );
            continue;
        }
        assert!(y.is_finite(), "f({x:e}) = {y:e}, want {r:e}");
        let u = ulps(y, r);
        if u > worst.ulps {
            (worst.ulps, worst.ulps_at) = (u, x);
        }
        if r.is_normal() {
            let rel = ((y as f64 - exact) / exact).abs();
            if rel > worst.rel {
                (worst.rel, worst.rel_at) = (rel, x);
            }
        }
    }
    worst
}

/// Checks `f` with both multiply-add forms against a bound in ulps.
fn assert_within(name: &str, f: Emit, reference: fn(f64) -> f64, bound: u64) {
    for m in [MulAdd::Fused, MulAdd::Separate] {
        let w = check(f, m, reference);
        println!(
            "{name} ({m:?}): max {} ulp at {:e}; max relative error {:.3e} at {:e}",
            w.ulps, w.ulps_at, w.rel, w.rel_at
        );
        assert!(
            w.ulps <= bound,
            "{name} ({m:?}): {} ulp at {:e}",
            w.ulps,
            w.ulps_at
        );
    }
}

fn sigmoid_ref(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        x.exp() / (1.0 + x.exp())
    }
}

#[test]
fn exp_is_within_1_ulp() {
    assert_within("exp", approx::exp_with, f64::exp, 1);
}

#[test]
fn log_is_within_1_ulp() {
    assert_within("log", approx::log_with, f64::ln, 1);
}

#[test]
fn tanh_is_within_1_ulp() {
    assert_within("tanh", approx::tanh_with, f64::tanh, 1);
}

#[test]
fn sigmoid_is_within_2_ulp() {
    assert_within("sigmoid", approx::sigmoid_with, sigmoid_ref, 2);
}

#[test]
fn erf_is_within_2_ulp() {
    assert_within("erf", approx::erf_with, kiln_ir::interp::erf, 2);
    // Special values exactly: odd, saturating, NaN-propagating.
    let xs = [
        f32::NEG_INFINITY,
        f32::INFINITY,
        f32::NAN,
        0.0,
        -0.0,
        5.0,
        -5.0,
    ];
    let mut ys = [0.0f32; 7];
    Map::new(approx::erf_with, MulAdd::host(), true).run(&xs, &mut ys);
    let want = [-1.0f32, 1.0, f32::NAN, 0.0, -0.0, 1.0, -1.0];
    for ((g, w), x) in ys.iter().zip(&want).zip(&xs) {
        assert!(
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
            "erf({x}) = {g}, want {w}"
        );
    }
}

/// The special values the issue names, exactly.
#[test]
fn special_values() {
    let xs = [f32::NEG_INFINITY, f32::INFINITY, f32::NAN, 0.0, -0.0, -1.0];
    let run = |f: Emit| {
        let mut ys = [0.0f32; 6];
        Map::new(f, MulAdd::host(), true).run(&xs, &mut ys);
        ys
    };
    let same = |got: [f32; 6], want: [f32; 6]| {
        for ((g, w), x) in got.iter().zip(&want).zip(&xs) {
            assert!(
                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                "f({x}) = {g}, want {w}"
            );
        }
    };
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    same(
        run(approx::exp_with),
        [0.0, inf, nan, 1.0, 1.0, (-1.0f32).exp()],
    );
    same(run(approx::log_with), [nan, inf, nan, -inf, -inf, nan]);
    same(
        run(approx::tanh_with),
        [-1.0, 1.0, nan, 0.0, -0.0, (-1.0f32).tanh()],
    );
    same(
        run(approx::sigmoid_with),
        [0.0, 1.0, nan, 0.5, 0.5, 0.268_941_43],
    );
}

/// Lengths 0..=13 on the vector kernel: every element is computed (tail included)
/// and nothing past the end is written.
#[test]
fn every_length_is_covered() {
    let map = Map::new(approx::exp_with, MulAdd::host(), true);
    let xs: Vec<f32> = (0..13).map(|i| i as f32 * 0.37 - 2.0).collect();
    for n in 0..=xs.len() {
        let mut ys = vec![f32::NAN; xs.len() + 4];
        map.run(&xs[..n], &mut ys);
        for (i, &y) in ys.iter().enumerate() {
            if i < n {
                let want = (xs[i] as f64).exp() as f32;
                assert!(ulps(y, want) <= 1, "n = {n}: exp({}) = {y}", xs[i]);
            } else {
                assert!(y.is_nan(), "n = {n}: wrote past the end at {i}");
            }
        }
    }
}

/// The host choice follows the CPU: fused exactly where Cranelift emits VFMADD.
#[cfg(target_arch = "x86_64")]
#[test]
fn host_fma_matches_the_cpu() {
    let fma = is_x86_feature_detected!("avx") && is_x86_feature_detected!("fma");
    let want = if fma { MulAdd::Fused } else { MulAdd::Separate };
    assert_eq!(MulAdd::host(), want);
}

/// The approximations computed natively on `f32` (what the wide loops of
/// `library::wide` run) give the emitted code's results bit for bit, over the
/// whole sweep, with fused and separate multiply-adds (any NaN matches any NaN).
#[test]
fn native_arithmetic_matches_the_emitted_code() {
    use approx::Native;
    type NativeFn = fn(&mut Native, MulAdd, f32) -> f32;
    let xs = inputs();
    let mut ys = vec![0.0f32; xs.len()];
    let cases: [(&str, Emit, NativeFn); 5] = [
        ("exp", approx::exp_with, approx::exp_of),
        ("log", approx::log_with, approx::log_of),
        ("tanh", approx::tanh_with, approx::tanh_of),
        ("sigmoid", approx::sigmoid_with, approx::sigmoid_of),
        ("erf", approx::erf_with, approx::erf_of),
    ];
    for m in [MulAdd::Fused, MulAdd::Separate] {
        for (name, emitted, native) in cases {
            Map::new(emitted, m, true).run(&xs, &mut ys);
            for (&x, &y) in xs.iter().zip(&ys) {
                let n = native(&mut Native, m, x);
                assert!(
                    n.to_bits() == y.to_bits() || (n.is_nan() && y.is_nan()),
                    "{name}({x:e}) with {m:?}: native {n:e}, emitted {y:e}"
                );
            }
        }
    }
}
