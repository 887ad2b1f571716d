//! Reductions and argmax.

use kiln_ir::interp::EvalError;
use kiln_ir::{DType, Op, ReduceOp};

use crate::{Rng, assert_close, assert_same, ev, ev_err, t32, t64, ti};

fn reduce(kind: ReduceOp, axes: &[usize], keepdims: bool) -> Op {
    Op::Reduce {
        kind,
        axes: axes.to_vec(),
        keepdims,
    }
}

const NAN: f64 = f64::NAN;
const INF: f64 = f64::INFINITY;

#[test]
fn reduce_sum_matches_loops() {
    // By hand.
    let x = t32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
    assert_same(
        &ev(reduce(ReduceOp::Sum, &[1], false), &[&x]),
        &t32(&[2], &[6.0, 15.5]),
    );
    assert_same(
        &ev(reduce(ReduceOp::Sum, &[0], true), &[&x]),
        &t32(&[1, 3], &[5.0, 7.0, 9.5]),
    );
    assert_same(
        &ev(reduce(ReduceOp::Sum, &[0, 1], false), &[&x]),
        &t32(&[], &[21.5]),
    );
    // [2,3,5] over axes {0,2} against loops (f64; integers-valued sums are exact).
    let mut rng = Rng::new(11);
    let x = rng.tensor(DType::F64, &[2, 3, 5], -4.0, 4.0);
    let xv = x.to_f64_vec();
    let mut want = vec![0.0; 3];
    for (j, w) in want.iter_mut().enumerate() {
        for i in 0..2 {
            for k in 0..5 {
                *w += xv[(i * 3 + j) * 5 + k];
            }
        }
    }
    assert_close(
        &ev(reduce(ReduceOp::Sum, &[0, 2], true), &[&x]),
        &[1, 3, 1],
        &want,
        1e-15,
    );
    assert_close(
        &ev(reduce(ReduceOp::Sum, &[0, 2], false), &[&x]),
        &[3],
        &want,
        1e-15,
    );
    // No axes: identity.
    assert_same(&ev(reduce(ReduceOp::Sum, &[], false), &[&x]), &x);
    // Sequential f32 accumulation: ((1e8 + 1) - 1e8) + 1 = 0 + 1 in f32 (the exact
    // sum is 2; pairwise summation would give 2 as well).
    let x = t32(&[4], &[1e8, 1.0, -1e8, 1.0]);
    assert_same(
        &ev(reduce(ReduceOp::Sum, &[0], false), &[&x]),
        &t32(&[], &[1.0]),
    );
    // i32 wraps; an empty axis sums to 0.
    let x = ti(&[2, 2], &[i32::MAX, 1, -4, 9]);
    assert_same(
        &ev(reduce(ReduceOp::Sum, &[1], false), &[&x]),
        &ti(&[2], &[i32::MIN, 5]),
    );
    let e = t32(&[2, 0], &[]);
    assert_same(
        &ev(reduce(ReduceOp::Sum, &[1], false), &[&e]),
        &t32(&[2], &[0.0, 0.0]),
    );
    // NaN and inf propagate.
    let x = t64(&[2, 2], &[1.0, NAN, INF, 2.0]);
    assert_close(
        &ev(reduce(ReduceOp::Sum, &[1], false), &[&x]),
        &[2],
        &[NAN, INF],
        0.0,
    );
}

#[test]
fn reduce_mean_divides_by_count() {
    // [3,7] rows: mean of 1..=7 is 4, of 8..=14 is 11; of k*0.5 similar.
    let xv: Vec<f64> = (1..=21).map(f64::from).collect();
    let x = t64(&[3, 7], &xv);
    assert_close(
        &ev(reduce(ReduceOp::Mean, &[1], false), &[&x]),
        &[3],
        &[4.0, 11.0, 18.0],
        1e-15,
    );
    assert_close(
        &ev(reduce(ReduceOp::Mean, &[0], true), &[&x]),
        &[1, 7],
        &[8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0],
        1e-15,
    );
    let x32 = t32(&[2, 2], &[1.0, 2.0, 4.0, 8.0]);
    assert_same(
        &ev(reduce(ReduceOp::Mean, &[0, 1], false), &[&x32]),
        &t32(&[], &[3.75]),
    );
    // i32: the wrapped sum divided with truncation toward zero.
    let x = ti(&[3, 2], &[-7, 0, 7, 2, 5, 6]);
    assert_same(
        &ev(reduce(ReduceOp::Mean, &[1], false), &[&x]),
        &ti(&[3], &[-3, 4, 5]),
    );
    // Empty axis: 0/0 = NaN for floats, an error for i32.
    let y = ev(reduce(ReduceOp::Mean, &[0], false), &[&t32(&[0, 2], &[])]);
    assert_close(&y, &[2], &[NAN, NAN], 0.0);
    let e = ev_err(reduce(ReduceOp::Mean, &[0], false), &[&ti(&[0, 2], &[])]);
    assert!(matches!(e, EvalError::DivisionByZero { .. }), "{e}");
    // ... but an empty output needs no division.
    let y = ev(reduce(ReduceOp::Mean, &[0], false), &[&ti(&[0, 0], &[])]);
    assert_eq!(y.shape().dims(), &[0]);
}

#[test]
fn reduce_max_propagates_nan() {
    let x = t32(&[2, 3], &[1.0, 7.5, -3.0, -8.0, -2.0, -9.0]);
    assert_same(
        &ev(reduce(ReduceOp::Max, &[1], false), &[&x]),
        &t32(&[2], &[7.5, -2.0]),
    );
    assert_same(
        &ev(reduce(ReduceOp::Max, &[0], true), &[&x]),
        &t32(&[1, 3], &[1.0, 7.5, -3.0]),
    );
    // NaN anywhere in the window wins, before or after the maximum.
    let x = t64(&[3, 3], &[NAN, 5.0, 1.0, 1.0, 5.0, NAN, -INF, -INF, -INF]);
    assert_close(
        &ev(reduce(ReduceOp::Max, &[1], false), &[&x]),
        &[3],
        &[NAN, NAN, -INF],
        0.0,
    );
    // [2,3,5] over axis 2 against loops.
    let mut rng = Rng::new(5);
    let x = rng.tensor(DType::F32, &[2, 3, 5], -10.0, 10.0);
    let xv = x.to_f64_vec();
    let want: Vec<f64> = xv
        .chunks(5)
        .map(|c| c.iter().cloned().fold(-INF, f64::max))
        .collect();
    assert_close(
        &ev(reduce(ReduceOp::Max, &[2], false), &[&x]),
        &[2, 3],
        &want,
        0.0,
    );
    // Empty axis: -inf, i32::MIN.
    let y = ev(reduce(ReduceOp::Max, &[1], false), &[&t64(&[2, 0], &[])]);
    assert_close(&y, &[2], &[-INF, -INF], 0.0);
    let y = ev(reduce(ReduceOp::Max, &[1], false), &[&ti(&[1, 0], &[])]);
    assert_same(&y, &ti(&[1], &[i32::MIN]));
    let x = ti(&[2, 2], &[i32::MIN, -5, 3, i32::MAX]);
    assert_same(
        &ev(reduce(ReduceOp::Max, &[1], false), &[&x]),
        &ti(&[2], &[-5, i32::MAX]),
    );
}

#[test]
fn reduce_min_propagates_nan() {
    let x = t32(&[2, 3], &[1.0, 7.5, -3.0, -8.0, -2.0, -9.0]);
    assert_same(
        &ev(reduce(ReduceOp::Min, &[1], false), &[&x]),
        &t32(&[2], &[-3.0, -9.0]),
    );
    assert_same(
        &ev(reduce(ReduceOp::Min, &[0], false), &[&x]),
        &t32(&[3], &[-8.0, -2.0, -9.0]),
    );
    let x = t64(&[2, 3], &[NAN, -5.0, 1.0, 1.0, INF, 2.0]);
    assert_close(
        &ev(reduce(ReduceOp::Min, &[1], false), &[&x]),
        &[2],
        &[NAN, 1.0],
        0.0,
    );
    let y = ev(reduce(ReduceOp::Min, &[0], false), &[&t32(&[0, 3], &[])]);
    assert_close(&y, &[3], &[INF, INF, INF], 0.0);
    let y = ev(reduce(ReduceOp::Min, &[0], true), &[&ti(&[0, 1], &[])]);
    assert_same(&y, &ti(&[1, 1], &[i32::MAX]));
    let x = ti(&[2, 2], &[i32::MIN, -5, 3, i32::MAX]);
    assert_same(
        &ev(reduce(ReduceOp::Min, &[1], false), &[&x]),
        &ti(&[2], &[i32::MIN, 3]),
    );
}

#[test]
fn argmax_first_maximum() {
    let argmax = |axis, keepdims| Op::ArgMax { axis, keepdims };
    // [3,7] along axis 1: ties pick the first; NaN counts as the maximum.
    #[rustfmt::skip]
    let x = t32(&[3, 7], &[
        1.0, 9.0, 3.0, 9.0, 2.0, 0.0, -1.0,
        -5.0, -4.0, -3.0, -2.0, -1.0, -0.5, -0.25,
        2.0, f32::NAN, 8.0, f32::NAN, 1.0, 1.0, 1.0,
    ]);
    assert_same(&ev(argmax(1, false), &[&x]), &ti(&[3], &[1, 6, 1]));
    assert_same(&ev(argmax(1, true), &[&x]), &ti(&[3, 1], &[1, 6, 1]));
    // Along axis 0: per column.
    assert_same(
        &ev(argmax(0, false), &[&x]),
        &ti(&[7], &[2, 2, 2, 2, 0, 2, 2]),
    );
    // [2,3,5] along the middle axis against loops.
    let mut rng = Rng::new(8);
    let x = rng.tensor(DType::F64, &[2, 3, 5], -1.0, 1.0);
    let xv = x.to_f64_vec();
    let mut want = Vec::new();
    for i in 0..2 {
        for k in 0..5 {
            let col: Vec<f64> = (0..3).map(|j| xv[(i * 3 + j) * 5 + k]).collect();
            let best = col.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            want.push(col.iter().position(|&v| v == best).unwrap() as i32);
        }
    }
    assert_same(&ev(argmax(1, false), &[&x]), &ti(&[2, 5], &want));
    // i32, with extremes; all -inf picks 0.
    let x = ti(&[2, 3], &[i32::MIN, i32::MIN, -1, 5, i32::MAX, i32::MAX]);
    assert_same(&ev(argmax(1, false), &[&x]), &ti(&[2], &[2, 1]));
    let x = t64(&[1, 3], &[f64::NEG_INFINITY; 3]);
    assert_same(&ev(argmax(1, false), &[&x]), &ti(&[1], &[0]));
}
