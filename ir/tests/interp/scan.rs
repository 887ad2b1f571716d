//! `scan`: steps in order (and reversed), carries, stacked `ys`, constants, empty
//! and one-step loops, several results of one loop, nested loops, and typing
//! errors that name the body.

use std::sync::Arc;

use kiln_ir::interp::run;
use kiln_ir::{BinaryOp, Body, DType, Graph, HostTensor, Op, Scan, TensorType, UnaryOp};

use crate::{assert_same, ev, ev_err, t32, ti};

fn f32t(dims: &[usize]) -> TensorType {
    TensorType::new(DType::F32, dims.to_vec())
}

/// Body `(h: f32[2], x: f32[2], w: f32[2]) -> (h: h + x * w, y: h * x)`.
fn step() -> Body {
    let mut g = Graph::new("step");
    let h = g.input("h", f32t(&[2])).unwrap();
    let x = g.input("x", f32t(&[2])).unwrap();
    let w = g.input("w", f32t(&[2])).unwrap();
    let xw = g.add(Op::Binary(BinaryOp::Mul), &[x, w]).unwrap();
    let h2 = g.add(Op::Binary(BinaryOp::Add), &[h, xw]).unwrap();
    let y = g.add(Op::Binary(BinaryOp::Mul), &[h, x]).unwrap();
    g.output(h2, Some("h"));
    g.output(y, Some("y"));
    Body(Arc::new(g))
}

fn scan(body: &Body, length: usize, reverse: bool, result: usize) -> Op {
    Op::Scan(Scan {
        body: body.clone(),
        carries: 1,
        xs: 1,
        length,
        reverse,
        result,
    })
}

/// The loop written out: returns (final h, ys) for the steps in `order`.
fn by_hand(h0: [f32; 2], xs: &[[f32; 2]], w: [f32; 2], order: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let mut h = h0;
    let mut ys = vec![0.0f32; 2 * xs.len()];
    for &t in order {
        for k in 0..2 {
            ys[2 * t + k] = h[k] * xs[t][k];
        }
        for k in 0..2 {
            h[k] += xs[t][k] * w[k];
        }
    }
    (h.to_vec(), ys)
}

#[test]
fn scan_carries_and_stacks() {
    let body = step();
    let xs_v = [[1.5, -2.0], [0.25, 3.0], [-1.0, 0.5]];
    let h0 = t32(&[2], &[0.5, -1.0]);
    let xs = t32(&[3, 2], &xs_v.concat());
    let w = t32(&[2], &[2.0, -0.5]);
    for (reverse, order) in [(false, vec![0, 1, 2]), (true, vec![2, 1, 0])] {
        let (h, ys) = by_hand([0.5, -1.0], &xs_v, [2.0, -0.5], &order);
        let args = [&h0, &xs, &w];
        assert_same(&ev(scan(&body, 3, reverse, 0), &args), &t32(&[2], &h));
        assert_same(&ev(scan(&body, 3, reverse, 1), &args), &t32(&[3, 2], &ys));
    }
}

#[test]
fn empty_and_one_step_scans() {
    let body = step();
    let h0 = t32(&[2], &[0.5, -1.0]);
    let w = t32(&[2], &[2.0, -0.5]);
    // Zero steps: the carry is the initial one, the ys are empty.
    let none = t32(&[0, 2], &[]);
    assert_same(&ev(scan(&body, 0, false, 0), &[&h0, &none, &w]), &h0);
    assert_eq!(
        ev(scan(&body, 0, false, 1), &[&h0, &none, &w])
            .shape()
            .dims(),
        &[0, 2]
    );
    // One step.
    let one = t32(&[1, 2], &[3.0, 4.0]);
    let (h, ys) = by_hand([0.5, -1.0], &[[3.0, 4.0]], [2.0, -0.5], &[0]);
    assert_same(
        &ev(scan(&body, 1, true, 0), &[&h0, &one, &w]),
        &t32(&[2], &h),
    );
    assert_same(
        &ev(scan(&body, 1, true, 1), &[&h0, &one, &w]),
        &t32(&[1, 2], &ys),
    );
}

#[test]
fn results_of_one_loop_in_a_graph() {
    // Both results of one loop, and a use of each: the graph evaluates the loop once
    // and each node reads its own result.
    let body = step();
    let mut g = Graph::new("rnn");
    let h0 = g.input("h0", f32t(&[2])).unwrap();
    let xs = g.input("xs", f32t(&[4, 2])).unwrap();
    let w = g.input("w", f32t(&[2])).unwrap();
    let last = g.add(scan(&body, 4, false, 0), &[h0, xs, w]).unwrap();
    let ys = g.add(scan(&body, 4, false, 1), &[h0, xs, w]).unwrap();
    let neg = g.add(Op::Unary(UnaryOp::Neg), &[last]).unwrap();
    g.output(neg, Some("neg_last"));
    g.output(ys, Some("ys"));
    let xs_v = [[1.0, 2.0], [-0.5, 0.75], [2.5, -1.5], [0.125, 4.0]];
    let out = run(
        &g,
        &[
            HostTensor::from_f32([2], vec![1.0, 2.0]).unwrap(),
            HostTensor::from_f32([4, 2], xs_v.concat()).unwrap(),
            HostTensor::from_f32([2], vec![-1.0, 0.5]).unwrap(),
        ],
    )
    .unwrap();
    let (h, ys) = by_hand([1.0, 2.0], &xs_v, [-1.0, 0.5], &[0, 1, 2, 3]);
    let neg_h: Vec<f32> = h.iter().map(|v| -v).collect();
    assert_same(&out[0], &t32(&[2], &neg_h));
    assert_same(&out[1], &t32(&[4, 2], &ys));
}

#[test]
fn nested_scans_and_integer_carries() {
    // Inner loop: count += x over a row of i32; outer loop: runs it per row and
    // carries a running total, stacking each row's sum.
    let i32t = |d: &[usize]| TensorType::new(DType::I32, d.to_vec());
    let mut inner = Graph::new("add_one");
    let c = inner.input("c", i32t(&[])).unwrap();
    let x = inner.input("x", i32t(&[])).unwrap();
    let s = inner.add(Op::Binary(BinaryOp::Add), &[c, x]).unwrap();
    inner.output(s, Some("c"));
    let inner = Body(Arc::new(inner));
    let mut outer = Graph::new("row");
    let total = outer.input("total", i32t(&[])).unwrap();
    let row = outer.input("row", i32t(&[3])).unwrap();
    let zero = outer.constant(HostTensor::from_i32([], vec![0]).unwrap());
    let sum = outer
        .add(
            Op::Scan(Scan {
                body: inner,
                carries: 1,
                xs: 1,
                length: 3,
                reverse: false,
                result: 0,
            }),
            &[zero, row],
        )
        .unwrap();
    let t2 = outer.add(Op::Binary(BinaryOp::Add), &[total, sum]).unwrap();
    outer.output(t2, Some("total"));
    outer.output(sum, Some("sum"));
    let outer = Body(Arc::new(outer));
    let rows = ti(&[2, 3], &[1, -2, 7, 10, 20, -5]);
    let op = |result| {
        Op::Scan(Scan {
            body: outer.clone(),
            carries: 1,
            xs: 1,
            length: 2,
            reverse: false,
            result,
        })
    };
    let start = ti(&[], &[100]);
    assert_same(&ev(op(0), &[&start, &rows]), &ti(&[], &[131]));
    assert_same(&ev(op(1), &[&start, &rows]), &ti(&[2], &[6, 25]));
}

#[test]
fn scan_typing_names_the_body() {
    let body = step();
    let h0 = t32(&[2], &[0.5, -1.0]);
    let w = t32(&[2], &[2.0, -0.5]);
    // xs of the wrong length.
    let xs = t32(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let e = ev_err(scan(&body, 3, false, 0), &[&h0, &xs, &w]).to_string();
    assert!(
        e.contains("operand 1 (xs) is f32[2,2], but the body `step` takes f32[2] per step, so f32[3,2] over 3 steps"),
        "{e}"
    );
    // Too few operands.
    let e = ev_err(scan(&body, 3, false, 0), &[&h0, &w]).to_string();
    assert!(e.contains("one per argument of the body `step`"), "{e}");
    // A result that does not exist.
    let xs = t32(&[3, 2], &[1.0; 6]);
    let e = ev_err(scan(&body, 3, false, 2), &[&h0, &xs, &w]).to_string();
    assert!(e.contains("result=2 is out of range"), "{e}");
    // A carry of another type than the body returns.
    let mut bad = Graph::new("widen");
    let h = bad.input("h", f32t(&[2])).unwrap();
    let x = bad.input("x", f32t(&[2])).unwrap();
    let c = bad.add(Op::Cast(DType::F64), &[h]).unwrap();
    bad.output(c, None);
    bad.output(x, None);
    let op = Op::Scan(Scan {
        body: Body(Arc::new(bad)),
        carries: 1,
        xs: 1,
        length: 3,
        reverse: false,
        result: 0,
    });
    let e = ev_err(op, &[&h0, &xs]).to_string();
    assert!(
        e.contains("the body `widen` returns f64[2] for carry 0, which it takes as f32[2]"),
        "{e}"
    );
}
