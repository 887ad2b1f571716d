//! Gather, scatter-add and one-hot, including out-of-range indices.

use kiln_ir::interp::EvalError;
use kiln_ir::{DType, Op};

use crate::{Rng, assert_close, assert_same, dot, ev, ev_err, t32, t64, tb, ti};

#[track_caller]
fn assert_index_error(e: EvalError, want_index: i32, want_bound: usize) {
    match &e {
        EvalError::IndexOutOfRange { index, bound, .. } => {
            assert_eq!((*index, *bound), (want_index, want_bound), "{e}");
        }
        other => panic!("expected an index error, got {other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains(&want_index.to_string()) && msg.contains(&format!("[0, {want_bound})")),
        "{msg}"
    );
}

#[test]
fn gather_rows() {
    // table [5,3]; idx [2,2] -> [2,2,3].
    let tv: Vec<f32> = (0..15).map(|i| i as f32 * 0.5 - 2.0).collect();
    let table = t32(&[5, 3], &tv);
    let idx = ti(&[2, 2], &[4, 0, 4, 2]);
    let mut want = Vec::new();
    for i in [4, 0, 4, 2] {
        want.extend_from_slice(&tv[i * 3..i * 3 + 3]);
    }
    assert_same(&ev(Op::Gather, &[&table, &idx]), &t32(&[2, 2, 3], &want));
    // Rank-1 table: scalar rows.
    let table = t64(&[4], &[1.5, -2.5, 3.5, -4.5]);
    assert_same(
        &ev(Op::Gather, &[&table, &ti(&[3], &[3, 3, 1])]),
        &t64(&[3], &[-4.5, -4.5, -2.5]),
    );
    // Scalar index: one row without the index axis.
    let table = ti(&[3, 2], &[1, 2, 3, 4, 5, 6]);
    assert_same(
        &ev(Op::Gather, &[&table, &ti(&[], &[1])]),
        &ti(&[2], &[3, 4]),
    );
    // bool table; empty index list.
    let table = tb(&[2, 2], &[true, false, false, true]);
    assert_same(
        &ev(Op::Gather, &[&table, &ti(&[2], &[1, 0])]),
        &tb(&[2, 2], &[false, true, true, false]),
    );
    assert_eq!(
        ev(Op::Gather, &[&table, &ti(&[0], &[])]).shape().dims(),
        &[0, 2]
    );
}

#[test]
fn gather_rejects_out_of_range_indices() {
    let table = t32(&[5, 3], &[1.0; 15]);
    assert_index_error(ev_err(Op::Gather, &[&table, &ti(&[3], &[0, 5, 1])]), 5, 5);
    assert_index_error(ev_err(Op::Gather, &[&table, &ti(&[1], &[-1])]), -1, 5);
    assert_index_error(
        ev_err(Op::Gather, &[&table, &ti(&[1], &[i32::MIN])]),
        i32::MIN,
        5,
    );
    assert_index_error(
        ev_err(Op::Gather, &[&table, &ti(&[1], &[i32::MAX])]),
        i32::MAX,
        5,
    );
    // An empty table has no valid index.
    let empty = t32(&[0, 3], &[]);
    assert_index_error(ev_err(Op::Gather, &[&empty, &ti(&[1], &[0])]), 0, 0);
}

#[test]
fn scatter_add_accumulates() {
    // idx [4] = [2,0,2,3], upd [4,2]: row 2 gets upd[0] + upd[2]; rows 1, 4 stay 0.
    let idx = ti(&[4], &[2, 0, 2, 3]);
    let upd = t32(&[4, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    let y = ev(Op::ScatterAdd { rows: 5 }, &[&idx, &upd]);
    assert_same(
        &y,
        &t32(&[5, 2], &[3.0, 4.0, 0.0, 0.0, 6.0, 8.0, 7.0, 8.0, 0.0, 0.0]),
    );
    // Multi-dimensional indices, i32 updates that wrap.
    let idx = ti(&[2, 2], &[1, 1, 0, 1]);
    let upd = ti(&[2, 2], &[i32::MAX, 1, 5, -3]);
    assert_same(
        &ev(Op::ScatterAdd { rows: 2 }, &[&idx, &upd]),
        &ti(&[2], &[5, i32::MIN.wrapping_add(-3)]),
    );
    // Scatter-add is the adjoint of gather: <gather(t, idx), u> = <t, scatter(idx, u)>.
    let mut rng = Rng::new(51);
    let table = rng.tensor(DType::F64, &[7, 3], -1.0, 1.0);
    let idx = rng.tensor(DType::I32, &[2, 5], 0.0, 7.0);
    let u = rng.tensor(DType::F64, &[2, 5, 3], -1.0, 1.0);
    let g = ev(Op::Gather, &[&table, &idx]);
    let s = ev(Op::ScatterAdd { rows: 7 }, &[&idx, &u]);
    let (lhs, rhs) = (dot(&g, &u), dot(&table, &s));
    assert!((lhs - rhs).abs() < 1e-12, "{lhs} vs {rhs}");
    // Errors.
    let upd = t32(&[2, 1], &[1.0, 2.0]);
    assert_index_error(
        ev_err(Op::ScatterAdd { rows: 3 }, &[&ti(&[2], &[0, 3]), &upd]),
        3,
        3,
    );
    assert_index_error(
        ev_err(Op::ScatterAdd { rows: 3 }, &[&ti(&[2], &[-2, 0]), &upd]),
        -2,
        3,
    );
}

#[test]
fn one_hot_every_dtype() {
    let idx = ti(&[2, 2], &[0, 3, 1, 3]);
    let op = |dtype| Op::OneHot { depth: 4, dtype };
    #[rustfmt::skip]
    let want = [
        1.0, 0.0, 0.0, 0.0,  0.0, 0.0, 0.0, 1.0,
        0.0, 1.0, 0.0, 0.0,  0.0, 0.0, 0.0, 1.0,
    ];
    assert_close(&ev(op(DType::F32), &[&idx]), &[2, 2, 4], &want, 0.0);
    assert_eq!(ev(op(DType::F32), &[&idx]).dtype(), DType::F32);
    assert_close(&ev(op(DType::F64), &[&idx]), &[2, 2, 4], &want, 0.0);
    let y = ev(op(DType::I32), &[&idx]);
    assert_same(&y, &ti(&[2, 2, 4], &want.map(|v| v as i32)));
    let y = ev(op(DType::Bool), &[&idx]);
    assert_same(&y, &tb(&[2, 2, 4], &want.map(|v| v == 1.0)));
    // Errors: index equal to depth, negative.
    assert_index_error(ev_err(op(DType::F32), &[&ti(&[2], &[1, 4])]), 4, 4);
    assert_index_error(ev_err(op(DType::F32), &[&ti(&[1], &[-1])]), -1, 4);
}
