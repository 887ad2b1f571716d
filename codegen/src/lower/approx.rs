//! Vectorizable f32 `exp`, `log`, `tanh`, `sigmoid` and `erf` emitted as Cranelift IR (there
//! are no such instructions): range reduction plus polynomials, written once over
//! the [`Arith`] operations for scalars (`f32`) and vectors (`f32x4`) alike, and
//! for native `f32` code ([`Native`], what `library::wide` runs). Every algorithm
//! is branch-free, so all these forms compute bit-identical results.
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

/// The operations the approximations are written in. Two implementations: [`Emit`]
/// appends Cranelift instructions (scalar `f32` or `f32x4`, by the type of the
/// values), [`Native`] computes on `f32` directly, which is what the wide
/// elementwise routines of `library::wide` run (LLVM vectorizes those loops to
/// the host's full width). One source for both keeps them bit for bit the same.
pub trait Arith {
    /// A float (or vector of floats).
    type F: Copy;
    /// Integer lanes of the same width.
    type I: Copy;
    /// A comparison result.
    type M: Copy;
    fn fconst(&mut self, v: f32) -> Self::F;
    fn iconst(&mut self, v: i32) -> Self::I;
    fn fadd(&mut self, a: Self::F, b: Self::F) -> Self::F;
    fn fsub(&mut self, a: Self::F, b: Self::F) -> Self::F;
    fn fmul(&mut self, a: Self::F, b: Self::F) -> Self::F;
    fn fdiv(&mut self, a: Self::F, b: Self::F) -> Self::F;
    /// `a * b + c` with one rounding.
    fn fma(&mut self, a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    fn fabs(&mut self, a: Self::F) -> Self::F;
    fn fneg(&mut self, a: Self::F) -> Self::F;
    fn fcmp(&mut self, cc: FloatCC, a: Self::F, b: Self::F) -> Self::M;
    /// `m ? x : y`.
    fn choose(&mut self, m: Self::M, x: Self::F, y: Self::F) -> Self::F;
    fn float_to_bits(&mut self, a: Self::F) -> Self::I;
    fn bits_to_float(&mut self, i: Self::I) -> Self::F;
    fn int_to_float(&mut self, i: Self::I) -> Self::F;
    fn iadd(&mut self, a: Self::I, b: Self::I) -> Self::I;
    fn isub(&mut self, a: Self::I, b: Self::I) -> Self::I;
    fn band(&mut self, a: Self::I, b: Self::I) -> Self::I;
    fn bor(&mut self, a: Self::I, b: Self::I) -> Self::I;
    fn shl(&mut self, a: Self::I, n: u32) -> Self::I;
    /// Arithmetic shift right.
    fn sshr(&mut self, a: Self::I, n: u32) -> Self::I;
}

/// [`Arith`] as Cranelift instructions on values of type `t` (`f32` or `f32x4`).
pub struct Emit<'a, 'b> {
    pub b: &'a mut FunctionBuilder<'b>,
    pub t: Type,
}

impl<'a, 'b> Emit<'a, 'b> {
    /// Emitting into `b`, for values of `x`'s type.
    pub fn like(b: &'a mut FunctionBuilder<'b>, x: Value) -> Self {
        let t = b.func.dfg.value_type(x);
        Emit { b, t }
    }

    fn int_ty(&self) -> Type {
        if self.t.is_vector() {
            types::I32X4
        } else {
            types::I32
        }
    }
}

impl Arith for Emit<'_, '_> {
    type F = Value;
    type I = Value;
    type M = Value;
    fn fconst(&mut self, v: f32) -> Value {
        let s = self.b.ins().f32const(v);
        if self.t.is_vector() {
            self.b.ins().splat(self.t, s)
        } else {
            s
        }
    }
    fn iconst(&mut self, v: i32) -> Value {
        let s = self.b.ins().iconst(types::I32, v as i64);
        if self.t.is_vector() {
            self.b.ins().splat(types::I32X4, s)
        } else {
            s
        }
    }
    fn fadd(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fadd(a, b)
    }
    fn fsub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fsub(a, b)
    }
    fn fmul(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmul(a, b)
    }
    fn fdiv(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fdiv(a, b)
    }
    fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        self.b.ins().fma(a, b, c)
    }
    fn fabs(&mut self, a: Value) -> Value {
        self.b.ins().fabs(a)
    }
    fn fneg(&mut self, a: Value) -> Value {
        self.b.ins().fneg(a)
    }
    fn fcmp(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        self.b.ins().fcmp(cc, a, b)
    }
    fn choose(&mut self, m: Value, x: Value, y: Value) -> Value {
        if self.t.is_vector() {
            let m = self.b.ins().bitcast(self.t, MemFlagsData::new(), m);
            self.b.ins().bitselect(m, x, y)
        } else {
            self.b.ins().select(m, x, y)
        }
    }
    fn float_to_bits(&mut self, a: Value) -> Value {
        let t = self.int_ty();
        self.b.ins().bitcast(t, MemFlagsData::new(), a)
    }
    fn bits_to_float(&mut self, i: Value) -> Value {
        self.b.ins().bitcast(self.t, MemFlagsData::new(), i)
    }
    fn int_to_float(&mut self, i: Value) -> Value {
        self.b.ins().fcvt_from_sint(self.t, i)
    }
    fn iadd(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().iadd(a, b)
    }
    fn isub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().isub(a, b)
    }
    fn band(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().band(a, b)
    }
    fn bor(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().bor(a, b)
    }
    fn shl(&mut self, a: Value, n: u32) -> Value {
        self.b.ins().ishl_imm_u(a, n as i64)
    }
    fn sshr(&mut self, a: Value, n: u32) -> Value {
        self.b.ins().sshr_imm_u(a, n as i64)
    }
}

/// [`Arith`] computed on one `f32`: IEEE operations, one rounding each, as the
/// emitted instructions do.
#[derive(Clone, Copy, Debug, Default)]
pub struct Native;

impl Arith for Native {
    type F = f32;
    type I = i32;
    type M = bool;
    #[inline(always)]
    fn fconst(&mut self, v: f32) -> f32 {
        v
    }
    #[inline(always)]
    fn iconst(&mut self, v: i32) -> i32 {
        v
    }
    #[inline(always)]
    fn fadd(&mut self, a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    fn fsub(&mut self, a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    fn fmul(&mut self, a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    fn fdiv(&mut self, a: f32, b: f32) -> f32 {
        a / b
    }
    #[inline(always)]
    fn fma(&mut self, a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn fabs(&mut self, a: f32) -> f32 {
        a.abs()
    }
    #[inline(always)]
    fn fneg(&mut self, a: f32) -> f32 {
        -a
    }
    #[inline(always)]
    fn fcmp(&mut self, cc: FloatCC, a: f32, b: f32) -> bool {
        match cc {
            FloatCC::LessThan => a < b,
            FloatCC::Equal => a == b,
            FloatCC::GreaterThanOrEqual => a >= b,
            _ => unreachable!("the approximations compare with <, == and >= only"),
        }
    }
    #[inline(always)]
    fn choose(&mut self, m: bool, x: f32, y: f32) -> f32 {
        if m { x } else { y }
    }
    #[inline(always)]
    fn float_to_bits(&mut self, a: f32) -> i32 {
        a.to_bits() as i32
    }
    #[inline(always)]
    fn bits_to_float(&mut self, i: i32) -> f32 {
        f32::from_bits(i as u32)
    }
    #[inline(always)]
    fn int_to_float(&mut self, i: i32) -> f32 {
        i as f32
    }
    #[inline(always)]
    fn iadd(&mut self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
    #[inline(always)]
    fn isub(&mut self, a: i32, b: i32) -> i32 {
        a.wrapping_sub(b)
    }
    #[inline(always)]
    fn band(&mut self, a: i32, b: i32) -> i32 {
        a & b
    }
    #[inline(always)]
    fn bor(&mut self, a: i32, b: i32) -> i32 {
        a | b
    }
    #[inline(always)]
    fn shl(&mut self, a: i32, n: u32) -> i32 {
        a.wrapping_shl(n)
    }
    #[inline(always)]
    fn sshr(&mut self, a: i32, n: u32) -> i32 {
        a >> n
    }
}

/// `min(x, c)`, but `x` when `x` is NaN. Written as `c < x ? c : x`, the form that
/// Cranelift's x64 backend turns into one `minps`/`minss` (a plain `fmin` costs a
/// multi-instruction NaN-canonicalizing sequence).
#[inline(always)]
fn min_keep_nan<A: Arith>(a: &mut A, x: A::F, c: A::F) -> A::F {
    let lt = a.fcmp(FloatCC::LessThan, c, x);
    a.choose(lt, c, x)
}

/// `max(x, c)`, but `x` when `x` is NaN (one `maxps`/`maxss`, as above).
#[inline(always)]
fn max_keep_nan<A: Arith>(a: &mut A, x: A::F, c: A::F) -> A::F {
    let lt = a.fcmp(FloatCC::LessThan, x, c);
    a.choose(lt, c, x)
}

/// `x * y + z`.
#[inline(always)]
fn madd<A: Arith>(a: &mut A, m: MulAdd, x: A::F, y: A::F, z: A::F) -> A::F {
    match m {
        MulAdd::Fused => a.fma(x, y, z),
        MulAdd::Separate => {
            let p = a.fmul(x, y);
            a.fadd(p, z)
        }
    }
}

/// Horner evaluation of `c[0] + c[1] x + c[2] x² + ...`.
#[inline(always)]
fn poly<A: Arith>(a: &mut A, m: MulAdd, x: A::F, c: &[f32]) -> A::F {
    let mut acc = a.fconst(c[c.len() - 1]);
    for &k in c[..c.len() - 1].iter().rev() {
        let k = a.fconst(k);
        acc = madd(a, m, acc, x, k);
    }
    acc
}

/// `2^n` for integer lanes `n` in [-126, 127], as floats: `n + 127` placed in the
/// exponent field.
#[inline(always)]
fn exp2i<A: Arith>(a: &mut A, n: A::I) -> A::F {
    let bias = a.iconst(127);
    let e = a.iadd(n, bias);
    let bits = a.shl(e, 23);
    a.bits_to_float(bits)
}

/// `x · 2^n` for integer lanes `n` in [-252, 254] (the exponent is built with
/// integer adds and a shift into the exponent field). As `x · 2^(n/2) · 2^(n - n/2)`
/// each factor stays a normal float, and the product overflows to ±inf or
/// underflows gradually (through subnormals) like the exact value, where one factor
/// `2^n` could not even be represented. For |x| in [0.5, 2] (what [`exp`] passes)
/// the first product is exact, so the result is `x · 2^n` rounded once.
#[inline(always)]
fn ldexp<A: Arith>(a: &mut A, x: A::F, n: A::I) -> A::F {
    let half = a.sshr(n, 1);
    let rest = a.isub(n, half);
    let s1 = exp2i(a, half);
    let s2 = exp2i(a, rest);
    // x·s1 is exact for the |x| in [0.5, 2] the callers pass, so only the last
    // product rounds.
    let y = a.fmul(x, s1);
    a.fmul(y, s2)
}

/// `x` with the sign of `s` added (`x` is non-negative or NaN): bit operations,
/// as Cranelift has no vector `fcopysign` on x86.
#[inline(always)]
fn with_sign_of<A: Arith>(a: &mut A, x: A::F, s: A::F) -> A::F {
    let sign_mask = a.iconst(i32::MIN);
    let sb = a.float_to_bits(s);
    let sign = a.band(sb, sign_mask);
    let xb = a.float_to_bits(x);
    let xb = a.bor(xb, sign);
    a.bits_to_float(xb)
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
    exp_of(&mut Emit::like(b, x), m, x)
}

/// [`exp`] in any [`Arith`].
#[inline(always)]
pub fn exp_of<A: Arith>(a: &mut A, m: MulAdd, x: A::F) -> A::F {
    // Clamp so that n stays in [-150, 129]; past 89 / below -104 the result is inf / 0
    // anyway, and the scaling below still produces them. NaN passes through.
    let hi = a.fconst(89.0);
    let lo = a.fconst(-104.0);
    let x = min_keep_nan(a, x, hi);
    let x = max_keep_nan(a, x, lo);
    // n = round(x / ln2): adding 1.5·2^23 leaves the rounded integer in the low
    // mantissa bits (|x / ln2| < 2^22), which is cheaper than `nearest` followed by a
    // saturating conversion.
    const SHIFTER: f32 = 12_582_912.0;
    let log2e = a.fconst(std::f32::consts::LOG2_E);
    let shifter = a.fconst(SHIFTER);
    let sh = madd(a, m, x, log2e, shifter);
    let nf = a.fsub(sh, shifter);
    let sh_bits = a.float_to_bits(sh);
    let shifter_bits = a.iconst(SHIFTER.to_bits() as i32);
    let n = a.isub(sh_bits, shifter_bits);
    // r = x - n ln2 in two steps (Cody-Waite): the first is exact.
    let neg_hi = a.fconst(-LN2_HI);
    let neg_lo = a.fconst(-LN2_LO);
    let r = madd(a, m, nf, neg_hi, x);
    let r = madd(a, m, nf, neg_lo, r);
    // e^r on |r| <= ln2/2 as 1 + r + r² P(r), P of degree 4: minimax relative error
    // 3.1e-9 (about 0.05 ulp) before rounding of the coefficients and the arithmetic.
    let p = poly(
        a,
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
    ldexp(a, p, n)
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
    log_of(&mut Emit::like(b, x), m, x)
}

/// [`log`] in any [`Arith`].
#[inline(always)]
pub fn log_of<A: Arith>(a: &mut A, m: MulAdd, x: A::F) -> A::F {
    // Subnormals: scale by 2^23 first so the exponent field is meaningful.
    let tiny = a.fconst(f32::MIN_POSITIVE);
    let is_tiny = a.fcmp(FloatCC::LessThan, x, tiny);
    let big = a.fconst(8_388_608.0);
    let scaled = a.fmul(x, big);
    let xs = a.choose(is_tiny, scaled, x);
    // x = 2^k · y with y in [sqrt(1/2), sqrt(2)): offsetting the bits by those of
    // sqrt(1/2) makes the exponent field k directly, with no compare.
    const LOW: i32 = 0x3f35_04f3; // sqrt(1/2) rounded down
    let bits = a.float_to_bits(xs);
    let low = a.iconst(LOW);
    let off = a.isub(bits, low);
    let k = a.sshr(off, 23);
    let mask = a.iconst(0x007f_ffff);
    let mant = a.band(off, mask);
    let mant = a.iadd(mant, low);
    let y = a.bits_to_float(mant);
    let kf = a.int_to_float(k);
    let zero = a.fconst(0.0);
    let k23 = a.fconst(23.0);
    let adj = a.choose(is_tiny, k23, zero);
    let kf = a.fsub(kf, adj);
    // log(1 + f), f = y - 1 (exact): with s = f / (2 + f),
    // log(1 + f) = 2 atanh(s) = 2s + 2s³/3 + ... = f - s (f - R), R = 2s²/3 + 2s⁴/5 + ...
    // The small correction s (f - R) carries all the rounding, so the result is
    // within about an ulp of f's exact logarithm. |s| <= 0.1716, and the series
    // truncated after s⁸ is off by 2s^10/11 < 4e-9 relative.
    let one = a.fconst(1.0);
    let two = a.fconst(2.0);
    let f = a.fsub(y, one);
    let d = a.fadd(f, two);
    let s = a.fdiv(f, d);
    let z = a.fmul(s, s);
    let q = poly(a, m, z, &[2.0 / 3.0, 2.0 / 5.0, 2.0 / 7.0, 2.0 / 9.0]);
    let r = a.fmul(q, z);
    let fr = a.fsub(f, r);
    let neg_s = a.fneg(s);
    let log_y = madd(a, m, neg_s, fr, f);
    // k ln2 + log(y): the k·LN2_HI product is exact, so there is one final rounding.
    let lo = a.fconst(LN2_LO);
    let hi = a.fconst(LN2_HI);
    let res = madd(a, m, kf, lo, log_y);
    let res = madd(a, m, kf, hi, res);
    // Special values.
    let inf = a.fconst(f32::INFINITY);
    let ninf = a.fconst(f32::NEG_INFINITY);
    let nan = a.fconst(f32::NAN);
    let is_inf = a.fcmp(FloatCC::Equal, x, inf);
    let res = a.choose(is_inf, inf, res);
    let is_zero = a.fcmp(FloatCC::Equal, x, zero);
    let res = a.choose(is_zero, ninf, res);
    // Negative or NaN: `x >= 0` is false.
    let valid = a.fcmp(FloatCC::GreaterThanOrEqual, x, zero);
    a.choose(valid, res, nan)
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
    tanh_of(&mut Emit::like(b, x), m, x)
}

/// [`tanh`] in any [`Arith`].
#[inline(always)]
pub fn tanh_of<A: Arith>(a: &mut A, m: MulAdd, x: A::F) -> A::F {
    let ax = a.fabs(x);
    // |x| < 0.625: x + x³ P(x²), P of degree 4 fitted for relative error
    // (4.4e-9). The correction x³ P is small against x, so no cancellation.
    let z = a.fmul(x, x);
    let p = poly(
        a,
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
    let p = a.fmul(p, z);
    let small = madd(a, m, p, x, x);
    // Otherwise 1 - 2/(e^{2|x|} + 1) >= 0.55 (so the subtraction loses at most a
    // bit), with the sign of x. e^{2|x|} = inf gives exactly 1.
    let two = a.fconst(2.0);
    let one = a.fconst(1.0);
    let a2 = a.fadd(ax, ax);
    let e = exp_of(a, m, a2);
    let d = a.fadd(e, one);
    let q = a.fdiv(two, d);
    let large = a.fsub(one, q);
    let limit = a.fconst(0.625);
    let is_small = a.fcmp(FloatCC::LessThan, ax, limit);
    // NaN: the comparison is false and the large branch is NaN (exp(NaN) = NaN).
    let y = a.choose(is_small, small, large);
    // x's sign onto the result. Only the large branch needs it, but doing it after
    // the select also makes tanh(-0) = -0, which the small branch rounds to +0.
    with_sign_of(a, y, x)
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
    sigmoid_of(&mut Emit::like(b, x), m, x)
}

/// [`sigmoid`] in any [`Arith`].
#[inline(always)]
pub fn sigmoid_of<A: Arith>(a: &mut A, m: MulAdd, x: A::F) -> A::F {
    // e = e^-|x| is in [0, 1], so nothing overflows; sigmoid(x) = 1 / (1 + e) for
    // x >= 0 and e / (1 + e) for x < 0.
    let ax = a.fabs(x);
    let nax = a.fneg(ax);
    let e = exp_of(a, m, nax);
    let one = a.fconst(1.0);
    let zero = a.fconst(0.0);
    let neg = a.fcmp(FloatCC::LessThan, x, zero);
    let num = a.choose(neg, e, one);
    let d = a.fadd(one, e);
    a.fdiv(num, d)
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
    erf_of(&mut Emit::like(b, x), m, x)
}

/// [`erf`] in any [`Arith`].
#[inline(always)]
pub fn erf_of<A: Arith>(a: &mut A, m: MulAdd, x: A::F) -> A::F {
    // v = min(|x|, 4): erf(4) rounds to 1 in f32, and so does the large branch
    // there. NaN passes through.
    let ax = a.fabs(x);
    let four = a.fconst(4.0);
    let v = min_keep_nan(a, ax, four);
    let z = a.fmul(v, v);
    // v < 0.921875: v · P(v²), P of degree 7 (Chebyshev fit of erf(v)/v, relative
    // error 9e-12 before rounding).
    let p = poly(
        a,
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
    let small = a.fmul(v, p);
    // Otherwise 1 - e^(-v²) Q(v - 2.5), Q of degree 11 (Chebyshev fit of
    // erfc(v) e^(v²) on [0.921875, 4], absolute error 1.5e-8, which e^(-v²) <= 0.43
    // scales down further). erfc(v) <= 0.19 there, so the subtraction loses little.
    let nz = a.fneg(z);
    let e = exp_of(a, m, nz);
    let mid = a.fconst(2.5);
    let s = a.fsub(v, mid);
    let q = poly(
        a,
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
    let one = a.fconst(1.0);
    let eq = a.fmul(e, q);
    let large = a.fsub(one, eq);
    let limit = a.fconst(0.921_875);
    // NaN: the comparison is false and the large branch is NaN.
    let is_small = a.fcmp(FloatCC::LessThan, v, limit);
    let y = a.choose(is_small, small, large);
    // y >= 0 (or NaN): x's sign, as in `tanh`.
    with_sign_of(a, y, x)
}
