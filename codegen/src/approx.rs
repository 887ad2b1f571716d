//! Vectorizable f32 `exp`, `log`, `tanh` and `sigmoid` emitted as Cranelift IR (there
//! are no such instructions): range reduction plus polynomials, written once for
//! scalars (`f32`) and vectors (`f32x4`) alike.
//!
//! Maximum errors against the correctly rounded result (f64 reference), measured by
//! `codegen/tests/approx.rs` over every 509th f32 bit pattern plus the special
//! values, are stated on each function. Results that libm gives as subnormals may
//! differ by more in relative terms but never become NaN or infinite.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_frontend::FunctionBuilder;

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

/// `cond ? a : b` for a float comparison result `cond` (scalar flag or lane mask).
fn choose(b: &mut FunctionBuilder, cond: Value, x: Value, y: Value) -> Value {
    let t = float_ty(b, x);
    if t.is_vector() {
        let m = b.ins().bitcast(t, MemFlagsData::new(), cond);
        b.ins().bitselect(m, x, y)
    } else {
        b.ins().select(cond, x, y)
    }
}

fn to_bits(b: &mut FunctionBuilder, x: Value) -> Value {
    let t = int_ty(float_ty(b, x));
    b.ins().bitcast(t, MemFlagsData::new(), x)
}

fn from_bits(b: &mut FunctionBuilder, i: Value, t: Type) -> Value {
    b.ins().bitcast(t, MemFlagsData::new(), i)
}

/// Horner evaluation of `c[0] + c[1] x + c[2] x² + ...`.
fn poly(b: &mut FunctionBuilder, x: Value, c: &[f32]) -> Value {
    let t = float_ty(b, x);
    let mut acc = fconst(b, t, c[c.len() - 1]);
    for &k in c[..c.len() - 1].iter().rev() {
        let k = fconst(b, t, k);
        let m = b.ins().fmul(acc, x);
        acc = b.ins().fadd(m, k);
    }
    acc
}

/// `2^n` for integer lanes `n` in [-126, 127], as floats.
fn exp2i(b: &mut FunctionBuilder, n: Value, t: Type) -> Value {
    let bias = iconst(b, t, 127);
    let e = b.ins().iadd(n, bias);
    let bits = b.ins().ishl_imm_u(e, 23);
    from_bits(b, bits, t)
}

/// `e^x`. Max error 1 ulp (measured) on normal results; +inf above 88.72, 0 below -103.97,
/// NaN for NaN.
pub fn exp(b: &mut FunctionBuilder, x: Value) -> Value {
    let t = float_ty(b, x);
    // Clamp so the integer part stays small; the scaling below still overflows to
    // inf / underflows to 0 past the limits. fmin/fmax keep NaN.
    let hi = fconst(b, t, 89.0);
    let lo = fconst(b, t, -104.0);
    let x = b.ins().fmin(x, hi);
    let x = b.ins().fmax(x, lo);
    // x = n ln2 + r, |r| <= ln2/2; ln2 split in two so n·ln2 is exact.
    let log2e = fconst(b, t, std::f32::consts::LOG2_E);
    let xn = b.ins().fmul(x, log2e);
    let nf = b.ins().nearest(xn);
    let ln2_hi = fconst(b, t, 0.693_145_75);
    let ln2_lo = fconst(b, t, 1.428_606_8e-6);
    let a = b.ins().fmul(nf, ln2_hi);
    let r = b.ins().fsub(x, a);
    let a = b.ins().fmul(nf, ln2_lo);
    let r = b.ins().fsub(r, a);
    // e^r by its Taylor series to degree 7 (truncation < 1e-8 relative on the range).
    let p = poly(
        b,
        r,
        &[
            1.0,
            1.0,
            0.5,
            1.0 / 6.0,
            1.0 / 24.0,
            1.0 / 120.0,
            1.0 / 720.0,
            1.0 / 5040.0,
        ],
    );
    // Scale by 2^n as 2^(n/2) · 2^(n - n/2): each factor stays a normal float, and
    // the product overflows or underflows (through subnormals) like the true value.
    let n = b.ins().fcvt_to_sint_sat(int_ty(t), nf);
    let half = b.ins().sshr_imm_u(n, 1);
    let rest = b.ins().isub(n, half);
    let s1 = exp2i(b, half, t);
    let s2 = exp2i(b, rest, t);
    let y = b.ins().fmul(p, s1);
    b.ins().fmul(y, s2)
}

/// Natural logarithm. Max error 2 ulp (measured); -inf at ±0, NaN below 0 and for NaN, +inf at
/// +inf; subnormal inputs are handled exactly.
pub fn log(b: &mut FunctionBuilder, x: Value) -> Value {
    let t = float_ty(b, x);
    // Subnormals: scale by 2^23 first so the exponent field is meaningful.
    let tiny = fconst(b, t, f32::MIN_POSITIVE);
    let is_tiny = b.ins().fcmp(FloatCC::LessThan, x, tiny);
    let big = fconst(b, t, 8_388_608.0);
    let scaled = b.ins().fmul(x, big);
    let xs = choose(b, is_tiny, scaled, x);
    let bits = to_bits(b, xs);
    let exp_field = b.ins().ushr_imm_u(bits, 23);
    let bias = iconst(b, t, 127);
    let e = b.ins().isub(exp_field, bias);
    let mask = iconst(b, t, 0x007f_ffff);
    let one_bits = iconst(b, t, 0x3f80_0000);
    let mant = b.ins().band(bits, mask);
    let mant = b.ins().bor(mant, one_bits);
    let m = from_bits(b, mant, t); // in [1, 2)
    // Keep m in [sqrt(1/2), sqrt(2)) so log(m) is small.
    let sqrt2 = fconst(b, t, std::f32::consts::SQRT_2);
    let over = b.ins().fcmp(FloatCC::GreaterThan, m, sqrt2);
    let half = fconst(b, t, 0.5);
    let m_half = b.ins().fmul(m, half);
    let m = choose(b, over, m_half, m);
    let ef = b.ins().fcvt_from_sint(t, e);
    let one = fconst(b, t, 1.0);
    let ef1 = b.ins().fadd(ef, one);
    let ef = choose(b, over, ef1, ef);
    let k23 = fconst(b, t, 23.0);
    let ef_tiny = b.ins().fsub(ef, k23);
    let ef = choose(b, is_tiny, ef_tiny, ef);
    // log(m) = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.172: odd series to s^11.
    let f = b.ins().fsub(m, one);
    let d = b.ins().fadd(m, one);
    let s = b.ins().fdiv(f, d);
    let s2 = b.ins().fmul(s, s);
    let q = poly(
        b,
        s2,
        &[2.0 / 3.0, 2.0 / 5.0, 2.0 / 7.0, 2.0 / 9.0, 2.0 / 11.0],
    );
    let q = b.ins().fmul(q, s2);
    let q = b.ins().fmul(q, s);
    let two_s = b.ins().fadd(s, s);
    let log_m = b.ins().fadd(two_s, q);
    let ln2_hi = fconst(b, t, 0.693_145_75);
    let ln2_lo = fconst(b, t, 1.428_606_8e-6);
    let lo = b.ins().fmul(ef, ln2_lo);
    let y = b.ins().fadd(log_m, lo);
    let hi = b.ins().fmul(ef, ln2_hi);
    let y = b.ins().fadd(y, hi);
    // Special values.
    let zero = fconst(b, t, 0.0);
    let inf = fconst(b, t, f32::INFINITY);
    let ninf = fconst(b, t, f32::NEG_INFINITY);
    let nan = fconst(b, t, f32::NAN);
    let is_inf = b.ins().fcmp(FloatCC::Equal, x, inf);
    let y = choose(b, is_inf, inf, y);
    let is_zero = b.ins().fcmp(FloatCC::Equal, x, zero);
    let y = choose(b, is_zero, ninf, y);
    // Negative or NaN: `x >= 0` is false.
    let valid = b.ins().fcmp(FloatCC::GreaterThanOrEqual, x, zero);
    choose(b, valid, y, nan)
}

/// Hyperbolic tangent. Max error 1 ulp (measured); ±1 beyond |x| = 9.01, NaN for NaN.
pub fn tanh(b: &mut FunctionBuilder, x: Value) -> Value {
    let t = float_ty(b, x);
    let ax = b.ins().fabs(x);
    // Small |x|: an odd minimax polynomial (no cancellation near 0).
    let z = b.ins().fmul(x, x);
    let p = poly(
        b,
        z,
        &[
            -3.333_328e-1,
            1.333_144_2e-1,
            -5.373_971_6e-2,
            2.063_908_8e-2,
            -5.704_988_7e-3,
        ],
    );
    let p = b.ins().fmul(p, z);
    let p = b.ins().fmul(p, x);
    let small = b.ins().fadd(x, p);
    // Otherwise 1 - 2/(e^{2|x|} + 1), with the sign of x.
    let two = fconst(b, t, 2.0);
    let one = fconst(b, t, 1.0);
    let a2 = b.ins().fmul(ax, two);
    let e = exp(b, a2);
    let d = b.ins().fadd(e, one);
    let q = b.ins().fdiv(two, d);
    let large = b.ins().fsub(one, q);
    // Copy x's sign onto the (non-negative) result with bit operations: Cranelift
    // has no vector fcopysign on x86.
    let sign_mask = iconst(b, t, i32::MIN);
    let xb = to_bits(b, x);
    let sign = b.ins().band(xb, sign_mask);
    let lb = to_bits(b, large);
    let lb = b.ins().bor(lb, sign);
    let large = from_bits(b, lb, t);
    let limit = fconst(b, t, 0.625);
    let is_small = b.ins().fcmp(FloatCC::LessThan, ax, limit);
    // NaN: both branches already give NaN (exp(NaN) = NaN).
    choose(b, is_small, small, large)
}

/// `1 / (1 + e^-x)`. Max error 2 ulp (measured) for x >= -87 (below that the result is
/// subnormal or 0); exactly 1 from x = 17.33 on, NaN for NaN.
pub fn sigmoid(b: &mut FunctionBuilder, x: Value) -> Value {
    let t = float_ty(b, x);
    let n = b.ins().fneg(x);
    let e = exp(b, n);
    let one = fconst(b, t, 1.0);
    let d = b.ins().fadd(one, e);
    b.ins().fdiv(one, d)
}
