//! Unary, binary, comparison, select and cast.

use std::f64::consts::{E, FRAC_1_SQRT_2, LN_2, SQRT_2};

use kiln_ir::interp::EvalError;
use kiln_ir::{BinaryOp, CmpOp, DType, HostTensor, Op, ReduceOp, UnaryOp};

use crate::{assert_close, assert_same, ev, ev_err, t32, t64, tb, ti};

const NAN: f64 = f64::NAN;
const INF: f64 = f64::INFINITY;

/// Applies `k` to `inputs` as f32 (shape [n]) and as f64 (shape [1, n]) and checks
/// both against `want`, with relative tolerances for each precision.
#[track_caller]
fn unary_both(k: UnaryOp, inputs: &[f64], want: &[f64], tol32: f64, tol64: f64) {
    let n = inputs.len();
    let x32 = HostTensor::from_f32([n], inputs.iter().map(|&v| v as f32).collect()).unwrap();
    let y32 = ev(Op::Unary(k), &[&x32]);
    assert_eq!(y32.dtype(), DType::F32);
    assert_close(&y32, &[n], want, tol32);
    let x64 = t64(&[1, n], inputs);
    let y64 = ev(Op::Unary(k), &[&x64]);
    assert_eq!(y64.dtype(), DType::F64);
    assert_close(&y64, &[1, n], want, tol64);
}

#[test]
fn neg_floats_and_wrapping_i32() {
    let x = t32(&[2, 3], &[1.5, -2.0, 0.25, 3.0, -0.5, 7.0]);
    let want = t32(&[2, 3], &[-1.5, 2.0, -0.25, -3.0, 0.5, -7.0]);
    assert_same(&ev(Op::Unary(UnaryOp::Neg), &[&x]), &want);
    // Negating zero flips its sign; NaN stays NaN, infinities swap.
    unary_both(UnaryOp::Neg, &[INF, NAN, -INF], &[-INF, NAN, INF], 0.0, 0.0);
    assert_same(
        &ev(Op::Unary(UnaryOp::Neg), &[&t32(&[1], &[0.0])]),
        &t32(&[1], &[-0.0]),
    );
    let i = ti(&[4], &[5, -7, i32::MAX, i32::MIN]);
    assert_same(
        &ev(Op::Unary(UnaryOp::Neg), &[&i]),
        &ti(&[4], &[-5, 7, -i32::MAX, i32::MIN]),
    );
}

#[test]
fn exp_known_values() {
    unary_both(
        UnaryOp::Exp,
        &[0.0, 1.0, -1.0, 2.0, LN_2, -INF, INF, NAN],
        &[1.0, E, 1.0 / E, E * E, 2.0, 0.0, INF, NAN],
        1e-6,
        1e-15,
    );
    // Overflow to +inf, underflow to 0 (in f32 well before f64).
    let y = ev(Op::Unary(UnaryOp::Exp), &[&t32(&[2], &[100.0, -200.0])]);
    assert_same(&y, &t32(&[2], &[f32::INFINITY, 0.0]));
}

#[test]
fn log_known_values() {
    unary_both(
        UnaryOp::Log,
        &[1.0, E, E * E, 0.5, 0.0, -1.0, INF, NAN],
        &[0.0, 1.0, 2.0, -LN_2, -INF, NAN, INF, NAN],
        1e-6,
        1e-15,
    );
}

#[test]
fn sqrt_known_values() {
    unary_both(
        UnaryOp::Sqrt,
        &[4.0, 2.25, 0.0, 2.0, 1e6, -1.0, INF, NAN],
        &[2.0, 1.5, 0.0, SQRT_2, 1e3, NAN, INF, NAN],
        1e-7,
        1e-16,
    );
}

#[test]
fn rsqrt_known_values() {
    unary_both(
        UnaryOp::Rsqrt,
        &[4.0, 0.25, 2.0, 1e-4, 0.0, INF, -4.0],
        &[0.5, 2.0, FRAC_1_SQRT_2, 100.0, INF, 0.0, NAN],
        1e-6,
        1e-15,
    );
}

#[test]
fn tanh_matches_exponential_definition() {
    let xs = [0.0, 0.3, -0.7, 1.0, 2.5, -4.0];
    let want: Vec<f64> = xs
        .iter()
        .map(|&x: &f64| ((2.0 * x).exp() - 1.0) / ((2.0 * x).exp() + 1.0))
        .collect();
    unary_both(UnaryOp::Tanh, &xs, &want, 1e-6, 1e-14);
    // Saturates without NaN.
    unary_both(
        UnaryOp::Tanh,
        &[50.0, -50.0, INF, -INF, NAN],
        &[1.0, -1.0, 1.0, -1.0, NAN],
        0.0,
        0.0,
    );
}

#[test]
fn erf_matches_tabulated_values() {
    // 20-digit values (from an arbitrary-precision evaluation), across the
    // series / continued-fraction switch at 2 and the saturation at 6.
    let xs = [0.1, 0.5, 1.0, -1.5, 2.0, 2.5, 3.0, 4.0, 5.5, 1e-10];
    let want = [
        0.112_462_916_018_284_9,
        0.520_499_877_813_046_5,
        0.842_700_792_949_714_9,
        -0.966_105_146_475_310_7,
        0.995_322_265_018_952_7,
        0.999_593_047_982_555,
        0.999_977_909_503_001_4,
        0.999_999_984_582_742_1,
        0.999_999_999_999_992_6,
        1.128_379_167_095_512_6e-10,
    ];
    unary_both(UnaryOp::Erf, &xs, &want, 1e-7, 2e-15);
    // Odd, saturating, NaN-propagating.
    unary_both(
        UnaryOp::Erf,
        &[7.0, -30.0, INF, -INF, NAN],
        &[1.0, -1.0, 1.0, -1.0, NAN],
        0.0,
        0.0,
    );
    let y = ev(Op::Unary(UnaryOp::Erf), &[&t64(&[1], &[-0.0])]);
    assert!(y.get_f64(0) == 0.0 && y.get_f64(0).is_sign_negative());
}

#[test]
fn sigmoid_known_values_and_no_overflow() {
    // sigmoid(ln 3) = 1 / (1 + 1/3) = 3/4, and sigmoid(-x) = 1 - sigmoid(x).
    unary_both(
        UnaryOp::Sigmoid,
        &[0.0, 3f64.ln(), -(3f64.ln()), 2.0],
        &[0.5, 0.75, 0.25, 1.0 / (1.0 + (-2f64).exp())],
        1e-6,
        1e-15,
    );
    // Large |x|: exactly 0 or 1, never NaN; infinities too.
    unary_both(
        UnaryOp::Sigmoid,
        &[1000.0, -1000.0, INF, -INF, NAN],
        &[1.0, 0.0, 1.0, 0.0, NAN],
        0.0,
        0.0,
    );
    // Deep in the left tail the value is exp(x) to full relative precision.
    let y = ev(Op::Unary(UnaryOp::Sigmoid), &[&t64(&[1], &[-100.0])]);
    let v = y.get_f64(0);
    assert!(v > 0.0 && ((v - (-100f64).exp()) / v).abs() < 1e-14, "{v}");
}

#[test]
fn relu_floats_ints_and_nan() {
    unary_both(
        UnaryOp::Relu,
        &[-2.0, 0.0, 0.5, 3.0, -INF, INF, NAN],
        &[0.0, 0.0, 0.5, 3.0, 0.0, INF, NAN],
        0.0,
        0.0,
    );
    let i = ti(&[5], &[-3, 0, 4, i32::MIN, i32::MAX]);
    assert_same(
        &ev(Op::Unary(UnaryOp::Relu), &[&i]),
        &ti(&[5], &[0, 0, 4, 0, i32::MAX]),
    );
}

#[test]
fn abs_floats_and_wrapping_i32() {
    unary_both(
        UnaryOp::Abs,
        &[-2.5, 3.0, -INF, NAN, -1e-30],
        &[2.5, 3.0, INF, NAN, 1e-30],
        1e-7,
        0.0,
    );
    assert_same(
        &ev(Op::Unary(UnaryOp::Abs), &[&t32(&[1], &[-0.0])]),
        &t32(&[1], &[0.0]),
    );
    // |i32::MIN| does not fit: it wraps to itself.
    let i = ti(&[3], &[-7, 7, i32::MIN]);
    assert_same(
        &ev(Op::Unary(UnaryOp::Abs), &[&i]),
        &ti(&[3], &[7, 7, i32::MIN]),
    );
}

#[test]
fn recip_known_values() {
    unary_both(
        UnaryOp::Recip,
        &[2.0, -4.0, 0.1, 3.0, INF, NAN],
        &[0.5, -0.25, 10.0, 1.0 / 3.0, 0.0, NAN],
        1e-6,
        1e-15,
    );
    // 1/0 keeps the sign of zero.
    let y = ev(Op::Unary(UnaryOp::Recip), &[&t32(&[2], &[0.0, -0.0])]);
    assert_same(&y, &t32(&[2], &[f32::INFINITY, f32::NEG_INFINITY]));
}

#[test]
fn sign_floats_ints_and_nan() {
    unary_both(
        UnaryOp::Sign,
        &[-3.0, 0.0, 2.5, 1e-30, -1e-30, NAN, INF, -INF],
        &[-1.0, 0.0, 1.0, 1.0, -1.0, NAN, 1.0, -1.0],
        0.0,
        0.0,
    );
    let i = ti(&[5], &[-9, 0, 4, i32::MIN, i32::MAX]);
    assert_same(
        &ev(Op::Unary(UnaryOp::Sign), &[&i]),
        &ti(&[5], &[-1, 0, 1, -1, 1]),
    );
}

#[test]
fn leaky_relu_uses_slope_for_non_positive() {
    // f64: exactly x or slope * x.
    let xs = [-2.0, 3.0, 0.0, -0.5, 7.25, NAN, -INF];
    let want: Vec<f64> = xs
        .iter()
        .map(|&x| if x > 0.0 { x } else { 0.1 * x })
        .collect();
    let y = ev(Op::Unary(UnaryOp::LeakyRelu(0.1)), &[&t64(&[7], &xs)]);
    assert_close(&y, &[7], &want, 0.0);
    // f32: the slope is rounded to f32 first, then multiplied in f32.
    let x = t32(&[3], &[-2.0, 3.0, -0.5]);
    let y = ev(Op::Unary(UnaryOp::LeakyRelu(0.1)), &[&x]);
    assert_same(&y, &t32(&[3], &[0.1f32 * -2.0, 3.0, 0.1f32 * -0.5]));
    // A negative slope flips the left half.
    let y = ev(Op::Unary(UnaryOp::LeakyRelu(-2.0)), &[&x]);
    assert_same(&y, &t32(&[3], &[4.0, 3.0, 1.0]));
}

fn binary(k: BinaryOp, a: &HostTensor, b: &HostTensor) -> HostTensor {
    ev(Op::Binary(k), &[a, b])
}

#[test]
fn add_floats_and_wrapping_i32() {
    let a = t32(&[2, 3], &[1.0, 2.5, -3.0, 1e30, 0.5, -1.0]);
    let b = t32(&[2, 3], &[2.0, -0.5, -4.0, 1e30, 0.25, 1.0]);
    let want = t32(&[2, 3], &[3.0, 2.0, -7.0, 2e30, 0.75, 0.0]);
    assert_same(&binary(BinaryOp::Add, &a, &b), &want);
    let a = t64(&[3], &[INF, INF, 0.1]);
    let b = t64(&[3], &[-INF, 1.0, 0.2]);
    assert_close(
        &binary(BinaryOp::Add, &a, &b),
        &[3],
        &[NAN, INF, 0.30000000000000004],
        0.0,
    );
    let a = ti(&[3], &[i32::MAX, i32::MIN, -5]);
    let b = ti(&[3], &[1, -1, 12]);
    assert_same(
        &binary(BinaryOp::Add, &a, &b),
        &ti(&[3], &[i32::MIN, i32::MAX, 7]),
    );
}

#[test]
fn sub_floats_and_wrapping_i32() {
    let a = t32(&[3, 1], &[5.0, -1.5, 2.0]);
    let b = t32(&[3, 1], &[7.0, -1.5, -0.25]);
    assert_same(
        &binary(BinaryOp::Sub, &a, &b),
        &t32(&[3, 1], &[-2.0, 0.0, 2.25]),
    );
    let a = t64(&[2], &[INF, 1.0]);
    assert_close(&binary(BinaryOp::Sub, &a, &a), &[2], &[NAN, 0.0], 0.0);
    let a = ti(&[3], &[i32::MIN, i32::MAX, 3]);
    let b = ti(&[3], &[1, -1, 10]);
    assert_same(
        &binary(BinaryOp::Sub, &a, &b),
        &ti(&[3], &[i32::MAX, i32::MIN, -7]),
    );
}

#[test]
fn mul_floats_and_wrapping_i32() {
    let a = t32(&[2, 2], &[1.5, -2.0, 0.0, 1e20]);
    let b = t32(&[2, 2], &[4.0, 3.0, f32::INFINITY, 1e20]);
    let y = binary(BinaryOp::Mul, &a, &b);
    // 0 * inf is NaN; 1e40 overflows f32.
    assert_close(&y, &[2, 2], &[6.0, -6.0, NAN, INF], 0.0);
    let y = binary(BinaryOp::Mul, &t64(&[1], &[1e20]), &t64(&[1], &[1e20]));
    assert_close(&y, &[1], &[1e40], 1e-15);
    // Wrapping product: the low 32 bits of the exact product.
    let (xa, xb) = ([65536, 46341, -7, i32::MIN], [65536, 46341, 6, -1]);
    let want: Vec<i32> = xa
        .iter()
        .zip(&xb)
        .map(|(&p, &q)| (i64::from(p) * i64::from(q)) as i32)
        .collect();
    assert_eq!(want, [0, -2147479015, -42, i32::MIN]);
    assert_same(
        &binary(BinaryOp::Mul, &ti(&[4], &xa), &ti(&[4], &xb)),
        &ti(&[4], &want),
    );
}

#[test]
fn div_floats_and_truncating_i32() {
    let a = t32(&[5], &[7.0, -7.0, 1.0, 0.0, -1.0]);
    let b = t32(&[5], &[2.0, 2.0, 0.0, 0.0, 0.0]);
    assert_close(
        &binary(BinaryOp::Div, &a, &b),
        &[5],
        &[3.5, -3.5, INF, NAN, -INF],
        0.0,
    );
    let y = binary(BinaryOp::Div, &t64(&[1], &[1.0]), &t64(&[1], &[3.0]));
    assert_close(&y, &[1], &[1.0 / 3.0], 0.0);
    // Truncation toward zero; i32::MIN / -1 wraps.
    let a = ti(&[6], &[7, -7, 7, -7, i32::MIN, 1]);
    let b = ti(&[6], &[2, 2, -2, -2, -1, 3]);
    assert_same(
        &binary(BinaryOp::Div, &a, &b),
        &ti(&[6], &[3, -3, -3, 3, i32::MIN, 0]),
    );
    let e = ev_err(
        Op::Binary(BinaryOp::Div),
        &[&ti(&[2], &[1, 2]), &ti(&[2], &[3, 0])],
    );
    assert!(
        matches!(e, EvalError::DivisionByZero { node: None, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("division by zero"), "{e}");
}

#[test]
fn max_propagates_nan() {
    let a = t32(&[5], &[1.0, f32::NAN, 3.0, 2.0, -f32::INFINITY]);
    let b = t32(&[5], &[2.0, 5.0, f32::NAN, -2.0, -7.0]);
    assert_close(
        &binary(BinaryOp::Max, &a, &b),
        &[5],
        &[2.0, NAN, NAN, 2.0, -7.0],
        0.0,
    );
    let a = ti(&[3], &[i32::MIN, 4, -2]);
    let b = ti(&[3], &[i32::MAX, -4, -3]);
    assert_same(
        &binary(BinaryOp::Max, &a, &b),
        &ti(&[3], &[i32::MAX, 4, -2]),
    );
    // f64 too.
    let y = binary(
        BinaryOp::Max,
        &t64(&[2], &[NAN, 1.0]),
        &t64(&[2], &[0.5, 1.5]),
    );
    assert_close(&y, &[2], &[NAN, 1.5], 0.0);
}

/// `max`/`min` order `-0.0` below `+0.0` in either operand order (IEEE 754-2019
/// `maximum`/`minimum`), so both are commutative; reductions follow.
#[test]
fn max_and_min_order_signed_zeros() {
    let a = t32(&[4], &[-0.0, 0.0, -0.0, 0.0]);
    let b = t32(&[4], &[0.0, -0.0, -0.0, 0.0]);
    assert_same(
        &binary(BinaryOp::Max, &a, &b),
        &t32(&[4], &[0.0, 0.0, -0.0, 0.0]),
    );
    assert_same(
        &binary(BinaryOp::Min, &a, &b),
        &t32(&[4], &[-0.0, -0.0, -0.0, 0.0]),
    );
    let a = t64(&[2], &[-0.0, 0.0]);
    let b = t64(&[2], &[0.0, -0.0]);
    assert_same(&binary(BinaryOp::Max, &a, &b), &t64(&[2], &[0.0, 0.0]));
    assert_same(&binary(BinaryOp::Min, &a, &b), &t64(&[2], &[-0.0, -0.0]));
    let x = t32(&[2, 2], &[-0.0, 0.0, 0.0, -0.0]);
    let r = |kind| Op::Reduce {
        kind,
        axes: vec![1],
        keepdims: false,
    };
    assert_same(&ev(r(ReduceOp::Max), &[&x]), &t32(&[2], &[0.0, 0.0]));
    assert_same(&ev(r(ReduceOp::Min), &[&x]), &t32(&[2], &[-0.0, -0.0]));
}

#[test]
fn min_propagates_nan() {
    let a = t32(&[5], &[1.0, f32::NAN, 3.0, 2.0, f32::INFINITY]);
    let b = t32(&[5], &[2.0, 5.0, f32::NAN, -2.0, 7.0]);
    assert_close(
        &binary(BinaryOp::Min, &a, &b),
        &[5],
        &[1.0, NAN, NAN, -2.0, 7.0],
        0.0,
    );
    let a = ti(&[3], &[i32::MIN, 4, -2]);
    let b = ti(&[3], &[i32::MAX, -4, -3]);
    assert_same(
        &binary(BinaryOp::Min, &a, &b),
        &ti(&[3], &[i32::MIN, -4, -3]),
    );
    let y = binary(
        BinaryOp::Min,
        &t64(&[2], &[0.5, 1.0]),
        &t64(&[2], &[NAN, 1.5]),
    );
    assert_close(&y, &[2], &[NAN, 1.0], 0.0);
}

#[test]
fn pow_known_values() {
    let a = [2.0, 9.0, 4.0, 2.0, 10.0, -8.0, 0.0, NAN];
    let b = [3.0, 0.5, -1.0, 0.5, -2.0, 1.0 / 3.0, 0.0, 0.0];
    let want = [8.0, 3.0, 0.25, SQRT_2, 0.01, NAN, 1.0, 1.0];
    let y = binary(BinaryOp::Pow, &t64(&[8], &a), &t64(&[8], &b));
    assert_close(&y, &[8], &want, 1e-15);
    let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
    let b32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
    let y = binary(BinaryOp::Pow, &t32(&[2, 4], &a32), &t32(&[2, 4], &b32));
    assert_close(&y, &[2, 4], &want, 1e-6);
}

/// Checks comparison `k` on f32 (with NaN, signed zero and infinity), i32 and bool
/// operands against hand-made truth tables.
fn cmp_table(k: CmpOp, f: [bool; 5], i: [bool; 3], b: [bool; 4]) {
    let op = || Op::Compare(k);
    let x = t32(&[5], &[1.0, 2.0, f32::NAN, -0.0, f32::INFINITY]);
    let y = t32(&[5], &[2.0, 2.0, f32::NAN, 0.0, 3.0]);
    assert_same(&ev(op(), &[&x, &y]), &tb(&[5], &f));
    let x = t64(&[5], &[1.0, 2.0, NAN, -0.0, INF]);
    let y = t64(&[5], &[2.0, 2.0, NAN, 0.0, 3.0]);
    assert_same(&ev(op(), &[&x, &y]), &tb(&[5], &f));
    let x = ti(&[3], &[-5, 3, i32::MAX]);
    let y = ti(&[3], &[3, 3, i32::MIN]);
    assert_same(&ev(op(), &[&x, &y]), &tb(&[3], &i));
    // false < true.
    let x = tb(&[2, 2], &[false, false, true, true]);
    let y = tb(&[2, 2], &[false, true, false, true]);
    assert_same(&ev(op(), &[&x, &y]), &tb(&[2, 2], &b));
}

const T: bool = true;
const F: bool = false;

#[test]
fn eq_table() {
    cmp_table(CmpOp::Eq, [F, T, F, T, F], [F, T, F], [T, F, F, T]);
}

#[test]
fn ne_table() {
    cmp_table(CmpOp::Ne, [T, F, T, F, T], [T, F, T], [F, T, T, F]);
}

#[test]
fn lt_table() {
    cmp_table(CmpOp::Lt, [T, F, F, F, F], [T, F, F], [F, T, F, F]);
}

#[test]
fn le_table() {
    cmp_table(CmpOp::Le, [T, T, F, T, F], [T, T, F], [T, T, F, T]);
}

#[test]
fn gt_table() {
    cmp_table(CmpOp::Gt, [F, F, F, F, T], [F, F, T], [F, F, T, F]);
}

#[test]
fn ge_table() {
    cmp_table(CmpOp::Ge, [F, T, F, T, T], [F, T, T], [T, F, T, T]);
}

#[test]
fn select_every_dtype() {
    let c = tb(&[2, 3], &[T, F, T, F, F, T]);
    let a = t32(&[2, 3], &[1.0, 2.0, f32::NAN, 4.0, 5.0, 6.0]);
    let b = t32(&[2, 3], &[-1.0, -2.0, -3.0, f32::NAN, -5.0, -6.0]);
    assert_close(
        &ev(Op::Select, &[&c, &a, &b]),
        &[2, 3],
        &[1.0, -2.0, NAN, NAN, -5.0, 6.0],
        0.0,
    );
    let a = t64(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = t64(&[2, 3], &[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]);
    assert_close(
        &ev(Op::Select, &[&c, &a, &b]),
        &[2, 3],
        &[1.0, -2.0, 3.0, -4.0, -5.0, 6.0],
        0.0,
    );
    let a = ti(&[2, 3], &[10, 20, 30, 40, 50, 60]);
    let b = ti(&[2, 3], &[-1, -2, -3, -4, -5, -6]);
    assert_same(
        &ev(Op::Select, &[&c, &a, &b]),
        &ti(&[2, 3], &[10, -2, 30, -4, -5, 60]),
    );
    let a = tb(&[2, 3], &[T, T, T, T, T, T]);
    let b = tb(&[2, 3], &[F, F, F, F, F, F]);
    assert_same(&ev(Op::Select, &[&c, &a, &b]), &c);
}

#[test]
fn cast_has_as_semantics() {
    let cast = |x: &HostTensor, to| ev(Op::Cast(to), &[x]);
    // Float -> i32 truncates toward zero and saturates; NaN is 0.
    let x = t32(
        &[8],
        &[
            2.7,
            -2.7,
            f32::NAN,
            3e9,
            -3e9,
            f32::INFINITY,
            -0.5,
            16777216.0,
        ],
    );
    assert_same(
        &cast(&x, DType::I32),
        &ti(&[8], &[2, -2, 0, i32::MAX, i32::MIN, i32::MAX, 0, 16777216]),
    );
    let x = t64(&[3], &[2147483647.9, -2147483648.9, -1e300]);
    assert_same(
        &cast(&x, DType::I32),
        &ti(&[3], &[i32::MAX, i32::MIN, i32::MIN]),
    );
    // i32 -> f32 rounds to nearest even: 2^24 + 1 -> 2^24, 2^24 + 3 -> 2^24 + 4.
    let x = ti(&[4], &[16777217, 16777219, -3, i32::MIN]);
    assert_same(
        &cast(&x, DType::F32),
        &t32(&[4], &[16777216.0, 16777220.0, -3.0, -2147483648.0]),
    );
    assert_same(
        &cast(&x, DType::F64),
        &t64(&[4], &[16777217.0, 16777219.0, -3.0, -2147483648.0]),
    );
    // f64 -> f32 rounds, overflowing to inf; f32 -> f64 is exact.
    let x = t64(&[3], &[0.1, 1e300, -1e-300]);
    assert_same(
        &cast(&x, DType::F32),
        &t32(&[3], &[0.1, f32::INFINITY, -0.0]),
    );
    let x = t32(&[2], &[0.1, f32::NAN]);
    assert_close(&cast(&x, DType::F64), &[2], &[f64::from(0.1f32), NAN], 0.0);
    // To bool: non-zero (NaN included) is true; bool -> number is 0/1.
    let x = t32(&[5], &[0.0, -0.0, 0.5, f32::NAN, -3.0]);
    assert_same(&cast(&x, DType::Bool), &tb(&[5], &[F, F, T, T, T]));
    let x = ti(&[3], &[0, -1, 7]);
    assert_same(&cast(&x, DType::Bool), &tb(&[3], &[F, T, T]));
    let x = tb(&[3], &[T, F, T]);
    assert_same(&cast(&x, DType::F32), &t32(&[3], &[1.0, 0.0, 1.0]));
    assert_same(&cast(&x, DType::F64), &t64(&[3], &[1.0, 0.0, 1.0]));
    assert_same(&cast(&x, DType::I32), &ti(&[3], &[1, 0, 1]));
    // To the same dtype: unchanged.
    let x = t32(&[2, 2], &[1.5, -0.0, f32::NAN, 4.0]);
    assert_same(&cast(&x, DType::F32), &x);
}

#[test]
fn stop_gradient_is_identity() {
    let x = t32(&[2, 3], &[1.5, -2.0, f32::NAN, 3.0, -0.5, f32::INFINITY]);
    assert_same(&ev(Op::StopGradient, &[&x]), &x);
    let i = ti(&[3], &[7, -1, i32::MIN]);
    assert_same(&ev(Op::StopGradient, &[&i]), &i);
}

#[test]
fn fma_rounds_once() {
    let a = t64(&[3], &[2.0, -1.5, 0.5]);
    let b = t64(&[3], &[3.0, 4.0, -8.0]);
    let c = t64(&[3], &[1.0, 0.25, 4.0]);
    assert_close(&ev(Op::Fma, &[&a, &b, &c]), &[3], &[7.0, -5.75, 0.0], 0.0);
    // (1 + 2^-30)^2 - 1 rounds to 2^-29 in f64 when multiplied first; fused, the
    // 2^-60 term survives.
    let e = 2f64.powi(-30);
    let x = t64(&[1], &[1.0 + e]);
    let m1 = t64(&[1], &[-1.0]);
    let fused = ev(Op::Fma, &[&x, &x, &m1]).get_f64(0);
    assert_eq!(fused, 2.0 * e + e * e);
    let y = t32(&[2], &[1.5, f32::NAN]);
    let out = ev(Op::Fma, &[&y, &y, &t32(&[2], &[0.75, 1.0])]);
    assert_close(&out, &[2], &[3.0, f64::NAN], 0.0);
    let i = ti(&[1], &[1]);
    assert!(kiln_ir::interp::eval_op(&Op::Fma, &[&i, &i, &i]).is_err());
}

#[test]
fn all_reduce_of_one_process_is_its_operand() {
    // The interpreter is one process: the sum over the group is the operand,
    // bit for bit (NaN, infinities and signed zeros included).
    let x = t32(&[2, 3], &[1.5, -0.0, f32::NAN, f32::INFINITY, -7.25, 3e-38]);
    assert_same(&ev(Op::AllReduce, &[&x]), &x);
    let y = t64(&[1], &[-2.5]);
    assert_same(&ev(Op::AllReduce, &[&y]), &y);
    // Floats only, one operand.
    assert!(kiln_ir::interp::eval_op(&Op::AllReduce, &[&ti(&[1], &[4])]).is_err());
    assert!(kiln_ir::interp::eval_op(&Op::AllReduce, &[&y, &y]).is_err());
}
