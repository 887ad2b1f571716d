//! Vectorizable f32 `exp`, `log`, `tanh`, `sigmoid` and `erf` emitted as Cranelift IR (there
//! are no such instructions): range reduction plus polynomials, written once for
//! scalars (`f32`) and vectors (`f32x4`) alike. Every emitter is branch-free, so the
//! scalar and vector forms compute bit-identical results.
//!
//! Maximum errors are stated on each function. They are measured by
//! `codegen/tests/approx.rs` against the f64 result rounded to f32, over every 509th
//! f32 bit pattern (8.4 million inputs: both signs, subnormals, huge values) plus the
//! special and boundary values, on the f32x4 path and the scalar path, with and
//! without fused multiply-add. Errors are counted in units in the last place of the
//! f32 result, subnormal results included (an ulp there is 2^-149).
//!
//! The polynomial coefficients are weighted minimax fits (Remez exchange, relative
//! error) computed for this module and rounded to f32.

use std::sync::OnceLock;

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilder;

/// How multiply-adds inside the approximations are emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MulAdd {
    /// One `fma` instruction (one rounding). Only worth it where the target has FMA:
    /// elsewhere Cranelift lowers `fma` to a library call per lane.
    Fused,
    /// `fmul` then `fadd` (two roundings); fast everywhere.
    Separate,
}

impl MulAdd {
    /// The best choice for `isa`: fused where it has a native FMA instruction.
    pub fn for_isa(isa: &dyn TargetIsa) -> Self {
        if isa_has_fma(isa) {
            MulAdd::Fused
        } else {
            MulAdd::Separate
        }
    }

    /// The best choice for the host, which is what kiln's JIT compiles for (the ISA
    /// comes from `cranelift_native`). Detected once per process.
    pub fn host() -> Self {
        static HOST: OnceLock<MulAdd> = OnceLock::new();
        *HOST.get_or_init(|| {
            let mut flags = settings::builder();
            // The defaults are fine for a query; opt_level only affects compilation.
            let _ = flags.set("opt_level", "speed");
            match cranelift_native::builder().and_then(|b| {
                b.finish(settings::Flags::new(flags))
                    .map_err(|_| "unsupported ISA")
            }) {
                Ok(isa) => MulAdd::for_isa(&*isa),
                Err(_) => MulAdd::Separate,
            }
        })
    }
}

/// Whether `isa` lowers `fma` to a native instruction (rather than a libcall).
pub fn isa_has_fma(isa: &dyn TargetIsa) -> bool {
    let flag = |name: &str| {
        isa.isa_flags()
            .iter()
            .any(|v| v.name == name && v.as_bool() == Some(true))
    };
    match isa.name() {
        // Cranelift's x64 backend uses VFMADD only with both AVX and FMA enabled.
        "x64" => flag("has_avx") && flag("has_fma"),
        // FMADD/FMLA are part of the base aarch64 ISA.
        "aarch64" => true,
        _ => false,
    }
}

fn float_ty(b: &FunctionBuilder, x: Value) -> Type {
    b.func.dfg.value_type(x)
}

fn int_ty(t: Type) -> Type {
    if t.is_vector() {
        types::I32X4
    } else {
        types::I32
    }
}

fn fconst(b: &mut FunctionBuilder, t: Type, v: f32) -> Value {
    let s = b.ins().f32const(v);
    if t.is_vector() {
        b.ins().splat(t, s)
    } else {
        s
    }
}

fn iconst(b: &mut FunctionBuilder, t: Type, v: i32) -> Value {
    let s = b.ins().iconst(types::I32, v as i64);
    if t.is_vector() {
        b.ins().splat(types::I32X4, s)
    } else {
        s
    }
}

/// `cond ? x : y` for a float comparison result `cond` (scalar flag or lane mask).
fn choose(b: &mut FunctionBuilder, cond: Value, x: Value, y: Value) -> Value {
    let t = float_ty(b, x);
    if t.is_vector() {
        let m = b.ins().bitcast(t, MemFlagsData::new(), cond);
        b.ins().bitselect(m, x, y)
    } else {
        b.ins().select(cond, x, y)
    }
}

/// `min(x, c)`, but `x` when `x` is NaN. Written as `c < x ? c : x`, the form that
/// Cranelift's x64 backend turns into one `minps`/`minss` (a plain `fmin` costs a
/// multi-instruction NaN-canonicalizing sequence).
fn min_keep_nan(b: &mut FunctionBuilder, x: Value, c: Value) -> Value {
    let lt = b.ins().fcmp(FloatCC::LessThan, c, x);
    choose(b, lt, c, x)
}

/// `max(x, c)`, but `x` when `x` is NaN (one `maxps`/`maxss`, as above).
fn max_keep_nan(b: &mut FunctionBuilder, x: Value, c: Value) -> Value {
    let lt = b.ins().fcmp(FloatCC::LessThan, x, c);
    choose(b, lt, c, x)
}

fn to_bits(b: &mut FunctionBuilder, x: Value) -> Value {
    let t = int_ty(float_ty(b, x));
    b.ins().bitcast(t, MemFlagsData::new(), x)
}

fn from_bits(b: &mut FunctionBuilder, i: Value, t: Type) -> Value {
    b.ins().bitcast(t, MemFlagsData::new(), i)
}

/// `a * b + c`.
fn madd(b: &mut FunctionBuilder, m: MulAdd, x: Value, y: Value, z: Value) -> Value {
    match m {
        MulAdd::Fused => b.ins().fma(x, y, z),
        MulAdd::Separate => {
            let p = b.ins().fmul(x, y);
            b.ins().fadd(p, z)
        }
    }
}

/// Horner evaluation of `c[0] + c[1] x + c[2] x² + ...`.
fn poly(b: &mut FunctionBuilder, m: MulAdd, x: Value, c: &[f32]) -> Value {
    let t = float_ty(b, x);
    let mut acc = fconst(b, t, c[c.len() - 1]);
    for &k in c[..c.len() - 1].iter().rev() {
        let k = fconst(b, t, k);
        acc = madd(b, m, acc, x, k);
    }
    acc
}

/// `2^n` for integer lanes `n` in [-126, 127], as floats: `n + 127` placed in the
/// exponent field.
fn exp2i(b: &mut FunctionBuilder, n: Value, t: Type) -> Value {
    let bias = iconst(b, t, 127);
    let e = b.ins().iadd(n, bias);
    let bits = b.ins().ishl_imm_u(e, 23);
    from_bits(b, bits, t)
}

/// `x · 2^n` for integer lanes `n` in [-252, 254] (the exponent is built with
/// integer adds and a shift into the exponent field). As `x · 2^(n/2) · 2^(n - n/2)`
/// each factor stays a normal float, and the product overflows to ±inf or
/// underflows gradually (through subnormals) like the exact value, where one factor
/// `2^n` could not even be represented. For |x| in [0.5, 2] (what [`exp`] passes)
/// the first product is exact, so the result is `x · 2^n` rounded once.
pub fn ldexp(b: &mut FunctionBuilder, x: Value, n: Value) -> Value {
    let t = float_ty(b, x);
    let half = b.ins().sshr_imm_u(n, 1);
    let rest = b.ins().isub(n, half);
    let s1 = exp2i(b, half, t);
    let s2 = exp2i(b, rest, t);
    // x·s1 is exact for the |x| in [0.5, 2] the callers pass, so only the last
    // product rounds.
    let y = b.ins().fmul(x, s1);
    b.ins().fmul(y, s2)
}

/// ln 2 split so that `n · LN2_HI` is exact for |n| < 2^8 (LN2_HI has 16
/// significant bits) and `LN2_HI + LN2_LO` is ln 2 to about 2^-45.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;

/// `e^x`, with [`MulAdd::host`].
///
/// Max error 1 ulp (measured; normal and subnormal results alike). +inf from
/// x > 88.7228 (where e^x exceeds `f32::MAX`), subnormal results below x = -87.34
/// (gradual underflow, not flushed), 0 below -103.98; exp(+inf) = inf,
/// exp(-inf) = 0, exp(NaN) = NaN.
pub fn exp(b: &mut FunctionBuilder, x: Value) -> Value {
    exp_with(b, MulAdd::host(), x)
}

/// [`exp`] with an explicit choice of multiply-add.
pub fn exp_with(b: &mut FunctionBuilder, m: MulAdd, x: Value) -> Value {
    let t = float_ty(b, x);
    // Clamp so that n stays in [-150, 129]; past 89 / below -104 the result is inf / 0
    // anyway, and the scaling below still produces them. NaN passes through.
    let hi = fconst(b, t, 89.0);
    let lo = fconst(b, t, -104.0);
    let x = min_keep_nan(b, x, hi);
    let x = max_keep_nan(b, x, lo);
    // n = round(x / ln2): adding 1.5·2^23 leaves the rounded integer in the low
    // mantissa bits (|x / ln2| < 2^22), which is cheaper than `nearest` followed by a
    // saturating conversion.
    const SHIFTER: f32 = 12_582_912.0;
    let log2e = fconst(b, t, std::f32::consts::LOG2_E);
    let shifter = fconst(b, t, SHIFTER);
    let sh = madd(b, m, x, log2e, shifter);
    let nf = b.ins().fsub(sh, shifter);
    let sh_bits = to_bits(b, sh);
    let shifter_bits = iconst(b, t, SHIFTER.to_bits() as i32);
    let n = b.ins().isub(sh_bits, shifter_bits);
    // r = x - n ln2 in two steps (Cody-Waite): the first is exact.
    let neg_hi = fconst(b, t, -LN2_HI);
    let neg_lo = fconst(b, t, -LN2_LO);
    let r = madd(b, m, nf, neg_hi, x);
    let r = madd(b, m, nf, neg_lo, r);
    // e^r on |r| <= ln2/2 as 1 + r + r² P(r), P of degree 4: minimax relative error
    // 3.1e-9 (about 0.05 ulp) before rounding of the coefficients and the arithmetic.
    let p = poly(
        b,
        m,
        r,
        &[
            1.0,
            1.0,
            0.499_999_94,
            0.166_665_21,
            0.041_668_39,
            0.008_368_71,
            0.001_381_461_3,
        ],
    );
    // NaN: p is NaN, and a NaN times any scale is NaN.
    ldexp(b, p, n)
}

/// Natural logarithm, with [`MulAdd::host`].
///
/// Max error 1 ulp (measured), subnormal inputs included (they are rescaled by 2^23
/// first). log(±0) = -inf, log(x < 0) = NaN, log(+inf) = +inf, log(NaN) = NaN.
pub fn log(b: &mut FunctionBuilder, x: Value) -> Value {
    log_with(b, MulAdd::host(), x)
}

/// [`log`] with an explicit choice of multiply-add.
pub fn log_with(b: &mut FunctionBuilder, m: MulAdd, x: Value) -> Value {
    let t = float_ty(b, x);
    // Subnormals: scale by 2^23 first so the exponent field is meaningful.
    let tiny = fconst(b, t, f32::MIN_POSITIVE);
    let is_tiny = b.ins().fcmp(FloatCC::LessThan, x, tiny);
    let big = fconst(b, t, 8_388_608.0);
    let scaled = b.ins().fmul(x, big);
    let xs = choose(b, is_tiny, scaled, x);
    // x = 2^k · y with y in [sqrt(1/2), sqrt(2)): offsetting the bits by those of
    // sqrt(1/2) makes the exponent field k directly, with no compare.
    const LOW: i32 = 0x3f35_04f3; // sqrt(1/2) rounded down
    let bits = to_bits(b, xs);
    let low = iconst(b, t, LOW);
    let off = b.ins().isub(bits, low);
    let k = b.ins().sshr_imm_u(off, 23);
    let mask = iconst(b, t, 0x007f_ffff);
    let mant = b.ins().band(off, mask);
    let mant = b.ins().iadd(mant, low);
    let y = from_bits(b, mant, t);
    let kf = b.ins().fcvt_from_sint(t, k);
    let zero = fconst(b, t, 0.0);
    let k23 = fconst(b, t, 23.0);
    let adj = choose(b, is_tiny, k23, zero);
    let kf = b.ins().fsub(kf, adj);
    // log(1 + f), f = y - 1 (exact): with s = f / (2 + f),
    // log(1 + f) = 2 atanh(s) = 2s + 2s³/3 + ... = f - s (f - R), R = 2s²/3 + 2s⁴/5 + ...
    // The small correction s (f - R) carries all the rounding, so the result is
    // within about an ulp of f's exact logarithm. |s| <= 0.1716, and the series
    // truncated after s⁸ is off by 2s^10/11 < 4e-9 relative.
    let one = fconst(b, t, 1.0);
    let two = fconst(b, t, 2.0);
    let f = b.ins().fsub(y, one);
    let d = b.ins().fadd(f, two);
    let s = b.ins().fdiv(f, d);
    let z = b.ins().fmul(s, s);
    let q = poly(b, m, z, &[2.0 / 3.0, 2.0 / 5.0, 2.0 / 7.0, 2.0 / 9.0]);
    let r = b.ins().fmul(q, z);
    let fr = b.ins().fsub(f, r);
    let neg_s = b.ins().fneg(s);
    let log_y = madd(b, m, neg_s, fr, f);
    // k ln2 + log(y): the k·LN2_HI product is exact, so there is one final rounding.
    let lo = fconst(b, t, LN2_LO);
    let hi = fconst(b, t, LN2_HI);
    let res = madd(b, m, kf, lo, log_y);
    let res = madd(b, m, kf, hi, res);
    // Special values.
    let inf = fconst(b, t, f32::INFINITY);
    let ninf = fconst(b, t, f32::NEG_INFINITY);
    let nan = fconst(b, t, f32::NAN);
    let is_inf = b.ins().fcmp(FloatCC::Equal, x, inf);
    let res = choose(b, is_inf, inf, res);
    let is_zero = b.ins().fcmp(FloatCC::Equal, x, zero);
    let res = choose(b, is_zero, ninf, res);
    // Negative or NaN: `x >= 0` is false.
    let valid = b.ins().fcmp(FloatCC::GreaterThanOrEqual, x, zero);
    choose(b, valid, res, nan)
}

/// Hyperbolic tangent, with [`MulAdd::host`].
///
/// Max error 1 ulp (measured), also near 0 where the relative error matters (the
/// small-argument form has no cancellation). ±1 beyond |x| = 9.01;
/// tanh(±inf) = ±1, tanh(-0) = -0, tanh(NaN) = NaN.
pub fn tanh(b: &mut FunctionBuilder, x: Value) -> Value {
    tanh_with(b, MulAdd::host(), x)
}

/// [`tanh`] with an explicit choice of multiply-add.
pub fn tanh_with(b: &mut FunctionBuilder, m: MulAdd, x: Value) -> Value {
    let t = float_ty(b, x);
    let ax = b.ins().fabs(x);
    // |x| < 0.625: x + x³ P(x²), P of degree 4 fitted for relative error
    // (4.4e-9). The correction x³ P is small against x, so no cancellation.
    let z = b.ins().fmul(x, x);
    let p = poly(
        b,
        m,
        z,
        &[
            -0.333_332_8,
            0.133_314_42,
            -0.053_739_715,
            0.020_639_088,
            -0.005_704_987,
        ],
    );
    let p = b.ins().fmul(p, z);
    let small = madd(b, m, p, x, x);
    // Otherwise 1 - 2/(e^{2|x|} + 1) >= 0.55 (so the subtraction loses at most a
    // bit), with the sign of x. e^{2|x|} = inf gives exactly 1.
    let two = fconst(b, t, 2.0);
    let one = fconst(b, t, 1.0);
    let a2 = b.ins().fadd(ax, ax);
    let e = exp_with(b, m, a2);
    let d = b.ins().fadd(e, one);
    let q = b.ins().fdiv(two, d);
    let large = b.ins().fsub(one, q);
    let limit = fconst(b, t, 0.625);
    let is_small = b.ins().fcmp(FloatCC::LessThan, ax, limit);
    // NaN: the comparison is false and the large branch is NaN (exp(NaN) = NaN).
    let y = choose(b, is_small, small, large);
    // Copy x's sign onto the result with bit operations (Cranelift has no vector
    // fcopysign on x86). Only the large branch needs it, but doing it after the
    // select also makes tanh(-0) = -0, which the small branch rounds to +0.
    let sign_mask = iconst(b, t, i32::MIN);
    let xb = to_bits(b, x);
    let sign = b.ins().band(xb, sign_mask);
    let yb = to_bits(b, y);
    let yb = b.ins().bor(yb, sign);
    from_bits(b, yb, t)
}

/// The logistic function `1 / (1 + e^-x)`, with [`MulAdd::host`].
///
/// Max error 2 ulp (measured), subnormal results (x < -87.34) included: it is
/// computed as `e^x / (1 + e^x)` for negative x, so it underflows gradually like
/// the exact value instead of flushing once e^-x overflows. Exactly 1 from
/// x = 16.64 on (1 + e^-x rounds to 1); sigmoid(+inf) = 1,
/// sigmoid(-inf) = 0, sigmoid(NaN) = NaN; never NaN for a non-NaN input.
pub fn sigmoid(b: &mut FunctionBuilder, x: Value) -> Value {
    sigmoid_with(b, MulAdd::host(), x)
}

/// [`sigmoid`] with an explicit choice of multiply-add.
pub fn sigmoid_with(b: &mut FunctionBuilder, m: MulAdd, x: Value) -> Value {
    let t = float_ty(b, x);
    // e = e^-|x| is in [0, 1], so nothing overflows; sigmoid(x) = 1 / (1 + e) for
    // x >= 0 and e / (1 + e) for x < 0.
    let ax = b.ins().fabs(x);
    let nax = b.ins().fneg(ax);
    let e = exp_with(b, m, nax);
    let one = fconst(b, t, 1.0);
    let zero = fconst(b, t, 0.0);
    let neg = b.ins().fcmp(FloatCC::LessThan, x, zero);
    let num = choose(b, neg, e, one);
    let d = b.ins().fadd(one, e);
    b.ins().fdiv(num, d)
}

/// The error function, with [`MulAdd::host`].
///
/// Max error 2 ulp (measured), subnormal inputs included (`erf(x) ≈ 2x/sqrt(pi)`
/// there, computed as `x · P(x²)`). ±1 from |x| = 3.92 on; erf(±inf) = ±1,
/// erf(-0) = -0, erf(NaN) = NaN.
pub fn erf(b: &mut FunctionBuilder, x: Value) -> Value {
    erf_with(b, MulAdd::host(), x)
}

/// [`erf`] with an explicit choice of multiply-add.
pub fn erf_with(b: &mut FunctionBuilder, m: MulAdd, x: Value) -> Value {
    let t = float_ty(b, x);
    // a = min(|x|, 4): erf(4) rounds to 1 in f32, and so does the large branch
    // there. NaN passes through.
    let ax = b.ins().fabs(x);
    let four = fconst(b, t, 4.0);
    let a = min_keep_nan(b, ax, four);
    let z = b.ins().fmul(a, a);
    // a < 0.921875: a · P(a²), P of degree 7 (Chebyshev fit of erf(a)/a, relative
    // error 9e-12 before rounding).
    let p = poly(
        b,
        m,
        z,
        &[
            std::f32::consts::FRAC_2_SQRT_PI,
            -0.376_126_38,
            0.112_837_88,
            -0.026_865_823,
            0.005_222_356,
            -0.000_850_684_94,
            0.000_114_592_66,
            -1.030_958e-5,
        ],
    );
    let small = b.ins().fmul(a, p);
    // Otherwise 1 - e^(-a²) Q(a - 2.5), Q of degree 11 (Chebyshev fit of
    // erfc(a) e^(a²) on [0.921875, 4], absolute error 1.5e-8, which e^(-a²) <= 0.43
    // scales down further). erfc(a) <= 0.19 there, so the subtraction loses little.
    let nz = b.ins().fneg(z);
    let e = exp_with(b, m, nz);
    let mid = fconst(b, t, 2.5);
    let s = b.ins().fsub(a, mid);
    let q = poly(
        b,
        m,
        s,
        &[
            0.210_806_35,
            -0.074_347_325,
            0.024_938_278,
            -0.008_001_864,
            0.002_465_684_7,
            -0.000_732_652_44,
            0.000_213_376_86,
            -6.010_082e-5,
            1.413_284_4e-5,
            -3.463_107_3e-6,
            1.713_408_7e-6,
            -4.763_428_2e-7,
        ],
    );
    let one = fconst(b, t, 1.0);
    let eq = b.ins().fmul(e, q);
    let large = b.ins().fsub(one, eq);
    let limit = fconst(b, t, 0.921_875);
    // NaN: the comparison is false and the large branch is NaN.
    let is_small = b.ins().fcmp(FloatCC::LessThan, a, limit);
    let y = choose(b, is_small, small, large);
    // y >= 0 (or NaN): x's sign with bit operations, as in `tanh`.
    let sign_mask = iconst(b, t, i32::MIN);
    let xb = to_bits(b, x);
    let sign = b.ins().band(xb, sign_mask);
    let yb = to_bits(b, y);
    let yb = b.ins().bor(yb, sign);
    from_bits(b, yb, t)
}
