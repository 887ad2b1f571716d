//! Broadcast, reshape, transpose, slice, concat and pad.

use kiln_ir::{DType, Op, Shape};

use crate::{Rng, assert_close, assert_same, ev, t32, t64, tb, ti};

/// Values `100*i + 10*j + k`-style so every element is distinct and its origin
/// readable; `data3(2,3,5)[i][j][k] = 100i + 10j + k + 1`.
fn data3(a: usize, b: usize, c: usize) -> Vec<f64> {
    let mut v = Vec::new();
    for i in 0..a {
        for j in 0..b {
            for k in 0..c {
                v.push((100 * i + 10 * j + k + 1) as f64);
            }
        }
    }
    v
}

#[test]
fn broadcast_matches_loops() {
    // [3] -> [2,3]: rows repeat.
    let x = t32(&[3], &[1.0, -2.0, 3.5]);
    let y = ev(Op::Broadcast(Shape::from([2, 3])), &[&x]);
    assert_same(&y, &t32(&[2, 3], &[1.0, -2.0, 3.5, 1.0, -2.0, 3.5]));
    // [3,1] -> [2,3,4]: out[a][b][c] = x[b][0].
    let xv = [1.5, -2.0, 7.0];
    let x = t64(&[3, 1], &xv);
    let y = ev(Op::Broadcast(Shape::from([2, 3, 4])), &[&x]);
    let mut want = Vec::new();
    for _a in 0..2 {
        for xb in xv {
            for _c in 0..4 {
                want.push(xb);
            }
        }
    }
    assert_close(&y, &[2, 3, 4], &want, 0.0);
    // [2,1,5] -> [3,2,7,5]: out[a][b][c][d] = x[b][0][d].
    let xv = data3(2, 1, 5);
    let x = t64(&[2, 1, 5], &xv);
    let y = ev(Op::Broadcast(Shape::from([3, 2, 7, 5])), &[&x]);
    let mut want = Vec::new();
    for _a in 0..3 {
        for b in 0..2 {
            for _c in 0..7 {
                for d in 0..5 {
                    want.push(xv[b * 5 + d]);
                }
            }
        }
    }
    assert_close(&y, &[3, 2, 7, 5], &want, 0.0);
    // Scalar -> [2,2], and every dtype.
    let y = ev(Op::Broadcast(Shape::from([2, 2])), &[&ti(&[], &[-9])]);
    assert_same(&y, &ti(&[2, 2], &[-9; 4]));
    let y = ev(
        Op::Broadcast(Shape::from([2, 2])),
        &[&tb(&[2, 1], &[true, false])],
    );
    assert_same(&y, &tb(&[2, 2], &[true, true, false, false]));
    // Same shape: identity.
    let y = ev(
        Op::Broadcast(Shape::from([3])),
        &[&t32(&[3], &[1.0, 2.0, 3.0])],
    );
    assert_same(&y, &t32(&[3], &[1.0, 2.0, 3.0]));
}

#[test]
fn reshape_keeps_row_major_order() {
    let v: Vec<f32> = (1..=6).map(|i| i as f32 * 1.5).collect();
    let x = t32(&[2, 3], &v);
    assert_same(
        &ev(Op::Reshape(Shape::from([3, 2])), &[&x]),
        &t32(&[3, 2], &v),
    );
    assert_same(&ev(Op::Reshape(Shape::from([6])), &[&x]), &t32(&[6], &v));
    assert_same(
        &ev(Op::Reshape(Shape::from([1, 6, 1])), &[&x]),
        &t32(&[1, 6, 1], &v),
    );
    assert_same(
        &ev(Op::Reshape(Shape::scalar()), &[&ti(&[1, 1], &[4])]),
        &ti(&[], &[4]),
    );
    let b = tb(&[4], &[true, false, false, true]);
    assert_same(
        &ev(Op::Reshape(Shape::from([2, 2])), &[&b]),
        &tb(&[2, 2], &[true, false, false, true]),
    );
}

#[test]
fn transpose_matches_loops() {
    // 2-D by hand.
    let x = t32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let y = ev(Op::Transpose(vec![1, 0]), &[&x]);
    assert_same(&y, &t32(&[3, 2], &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]));
    // [2,3,5] with perm [2,0,1]: output axis i is input axis perm[i], so the result
    // is [5,2,3] and out[a][b][c] = x[b][c][a].
    let xv = data3(2, 3, 5);
    let x = t64(&[2, 3, 5], &xv);
    let y = ev(Op::Transpose(vec![2, 0, 1]), &[&x]);
    let mut want = Vec::new();
    for a in 0..5 {
        for b in 0..2 {
            for c in 0..3 {
                want.push(xv[(b * 3 + c) * 5 + a]);
            }
        }
    }
    assert_close(&y, &[5, 2, 3], &want, 0.0);
    // perm [1,2,0] -> [3,5,2], out[a][b][c] = x[c][a][b].
    let y = ev(Op::Transpose(vec![1, 2, 0]), &[&x]);
    let mut want = Vec::new();
    for a in 0..3 {
        for b in 0..5 {
            for c in 0..2 {
                want.push(xv[(c * 3 + a) * 5 + b]);
            }
        }
    }
    assert_close(&y, &[3, 5, 2], &want, 0.0);
    // Identity permutation, and i32.
    assert_same(&ev(Op::Transpose(vec![0, 1, 2]), &[&x]), &x);
    let i = ti(&[3, 1], &[7, 8, 9]);
    assert_same(
        &ev(Op::Transpose(vec![1, 0]), &[&i]),
        &ti(&[1, 3], &[7, 8, 9]),
    );
}

#[test]
fn slice_with_steps() {
    // [3,7]: rows 1..3, columns 2, 4, 6.
    let xv: Vec<f32> = (0..21).map(|i| i as f32 + 0.5).collect();
    let x = t32(&[3, 7], &xv);
    let op = Op::Slice {
        start: vec![1, 2],
        end: vec![3, 7],
        step: vec![1, 2],
    };
    assert_same(
        &ev(op, &[&x]),
        &t32(&[2, 3], &[9.5, 11.5, 13.5, 16.5, 18.5, 20.5]),
    );
    // [2,3,5] with steps [1,2,3] from [0,0,1] to [2,3,5]: out[i][j][k] = x[i][2j][1+3k].
    let xv = data3(2, 3, 5);
    let x = t64(&[2, 3, 5], &xv);
    let op = Op::Slice {
        start: vec![0, 0, 1],
        end: vec![2, 3, 5],
        step: vec![1, 2, 3],
    };
    let mut want = Vec::new();
    for i in 0..2 {
        for j in 0..2 {
            for k in 0..2 {
                want.push(xv[(i * 3 + 2 * j) * 5 + 1 + 3 * k]);
            }
        }
    }
    assert_close(&ev(op, &[&x]), &[2, 2, 2], &want, 0.0);
    // An empty slice, and a step larger than the range.
    let op = Op::Slice {
        start: vec![1, 3],
        end: vec![1, 7],
        step: vec![1, 1],
    };
    assert_eq!(ev(op, &[&t32(&[3, 7], &[1.0; 21])]).shape().dims(), &[0, 4]);
    let op = Op::Slice {
        start: vec![2],
        end: vec![4],
        step: vec![10],
    };
    assert_same(&ev(op, &[&ti(&[5], &[1, 2, 3, 4, 5])]), &ti(&[1], &[3]));
}

#[test]
fn concat_along_each_axis() {
    let a = t32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = t32(&[2, 2], &[-1.0, -2.0, -3.0, -4.0]);
    assert_same(
        &ev(Op::Concat { axis: 1 }, &[&a, &b]),
        &t32(
            &[2, 5],
            &[1.0, 2.0, 3.0, -1.0, -2.0, 4.0, 5.0, 6.0, -3.0, -4.0],
        ),
    );
    let c = t32(&[1, 3], &[7.0, 8.0, 9.0]);
    assert_same(
        &ev(Op::Concat { axis: 0 }, &[&a, &c, &a]),
        &t32(
            &[5, 3],
            &[
                1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0,
            ],
        ),
    );
    // Three operands along the middle axis of rank-3 tensors, against loops:
    // out[i][j][k] takes x0 for j < 1, x1 for 1 <= j < 4, x2 for 4 <= j < 6.
    let mut rng = Rng::new(3);
    let sizes = [1, 3, 2];
    let parts: Vec<_> = sizes
        .iter()
        .map(|&s| rng.tensor(DType::F64, &[2, s, 5], -3.0, 3.0))
        .collect();
    let refs: Vec<_> = parts.iter().collect();
    let y = ev(Op::Concat { axis: 1 }, &refs);
    let mut want = Vec::new();
    for i in 0..2 {
        for (p, &s) in parts.iter().zip(&sizes) {
            for j in 0..s {
                for k in 0..5 {
                    want.push(p.get_f64((i * s + j) * 5 + k));
                }
            }
        }
    }
    assert_close(&y, &[2, 6, 5], &want, 0.0);
    // Along the last axis, with bool; and a single operand.
    let p = tb(&[2, 1], &[true, false]);
    let q = tb(&[2, 2], &[false, false, true, true]);
    assert_same(
        &ev(Op::Concat { axis: 1 }, &[&p, &q]),
        &tb(&[2, 3], &[true, false, false, false, true, true]),
    );
    assert_same(&ev(Op::Concat { axis: 0 }, &[&a]), &a);
}

#[test]
fn pad_places_input_and_fills_value() {
    // [2,3] padded one row before and two columns after with -0.5.
    let x = t32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let op = Op::Pad {
        low: vec![1, 0],
        high: vec![0, 2],
        value: -0.5,
    };
    let p = -0.5;
    assert_same(
        &ev(op, &[&x]),
        &t32(
            &[3, 5],
            &[p, p, p, p, p, 1.0, 2.0, 3.0, p, p, 4.0, 5.0, 6.0, p, p],
        ),
    );
    // Rank 3 against loops: out[i][j][k] = x[i-1][j][k-2] inside, else 9.25.
    let xv = data3(2, 3, 5);
    let x = t64(&[2, 3, 5], &xv);
    let op = Op::Pad {
        low: vec![1, 0, 2],
        high: vec![2, 1, 0],
        value: 9.25,
    };
    let mut want = Vec::new();
    for i in 0..5 {
        for j in 0..4 {
            for k in 0..7 {
                let inside = (1..3).contains(&i) && j < 3 && k >= 2;
                want.push(if inside {
                    xv[((i - 1) * 3 + j) * 5 + k - 2]
                } else {
                    9.25
                });
            }
        }
    }
    assert_close(&ev(op, &[&x]), &[5, 4, 7], &want, 0.0);
    // The value converts to the dtype with `as`: 7.9 -> 7 for i32, non-zero -> true.
    let op = |value| Op::Pad {
        low: vec![1],
        high: vec![1],
        value,
    };
    assert_same(
        &ev(op(7.9), &[&ti(&[2], &[1, 2])]),
        &ti(&[4], &[7, 1, 2, 7]),
    );
    assert_same(
        &ev(op(1.0), &[&tb(&[2], &[false, false])]),
        &tb(&[4], &[true, false, false, true]),
    );
    // NaN and infinity are valid fill values for floats.
    let y = ev(op(f64::NEG_INFINITY), &[&t32(&[1], &[3.0])]);
    assert_same(&y, &t32(&[3], &[f32::NEG_INFINITY, 3.0, f32::NEG_INFINITY]));
}
