//! Loop bodies are optimized as graphs of their own; the loop's results and its
//! nodes' shared body survive.

use std::sync::Arc;

use kiln_ir::{
    BinaryOp, Body, DType, Graph, HostTensor, NodeId, Op, Scan, TensorType, UnaryOp, interp,
};
use kiln_passes::optimize;

/// `(h, x) -> (relu(h * 1 + x * 0 + x), exp(log(x)))`: algebra for the optimizer.
fn wasteful_body() -> Graph {
    let f = TensorType::new(DType::F32, [3]);
    let mut g = Graph::new("wasteful");
    let h = g.input("h", f.clone()).unwrap();
    let x = g.input("x", f).unwrap();
    let one = g.constant(HostTensor::from_f32([3], vec![1.0; 3]).unwrap());
    let zero = g.constant(HostTensor::from_f32([3], vec![0.0; 3]).unwrap());
    let h1 = g.add(Op::Binary(BinaryOp::Mul), &[h, one]).unwrap();
    let x0 = g.add(Op::Binary(BinaryOp::Mul), &[x, zero]).unwrap();
    let s = g.add(Op::Binary(BinaryOp::Add), &[h1, x0]).unwrap();
    let s = g.add(Op::Binary(BinaryOp::Add), &[s, x]).unwrap();
    let r = g.add(Op::Unary(UnaryOp::Relu), &[s]).unwrap();
    let y = g.add(Op::Unary(UnaryOp::Neg), &[x]).unwrap();
    g.output(r, Some("h"));
    g.output(y, Some("y"));
    g
}

/// An outer graph with the arguments `h0: [3]` and `xs: [4, 3]`.
fn outer() -> (Graph, NodeId, NodeId) {
    let mut g = Graph::new("outer");
    let h0 = g.input("h0", TensorType::new(DType::F32, [3])).unwrap();
    let xs = g.input("xs", TensorType::new(DType::F32, [4, 3])).unwrap();
    (g, h0, xs)
}

/// The `scan` op of `body`'s result `result` over `(h0, xs)`: one carry, one
/// stacked input, four steps.
fn scan(body: &Body, result: usize) -> Op {
    Op::Scan(Scan {
        body: body.clone(),
        carries: 1,
        xs: 1,
        length: 4,
        reverse: false,
        result,
    })
}

/// `g` and `opt` give the same values on fixed non-zero arguments.
fn assert_same_values(g: &Graph, opt: &Graph) {
    let args = [
        HostTensor::from_f32([3], vec![0.5, -2.0, 1.25]).unwrap(),
        HostTensor::from_f32(
            [4, 3],
            vec![
                1.0, -0.5, 2.0, -3.0, 0.25, 0.75, 1.5, -1.0, -0.125, 0.5, 2.5, -2.5,
            ],
        )
        .unwrap(),
    ];
    let want = interp::run(g, &args).unwrap();
    let got = interp::run(opt, &args).unwrap();
    assert_eq!(want.len(), got.len());
    for (w, o) in want.iter().zip(&got) {
        assert_eq!(w.to_f64_vec(), o.to_f64_vec());
    }
}

#[test]
fn loop_bodies_are_optimized_and_stay_shared() {
    let body = Body(Arc::new(wasteful_body()));
    let (mut g, h0, xs) = outer();
    let last = g.add(scan(&body, 0), &[h0, xs]).unwrap();
    let ys = g.add(scan(&body, 1), &[h0, xs]).unwrap();
    g.output(last, Some("last"));
    g.output(ys, Some("ys"));

    let (opt, _) = optimize(&g).unwrap();
    let bodies: Vec<&Body> = opt
        .node_ids()
        .filter_map(|n| match &opt.node(n).op {
            Op::Scan(s) => Some(&s.body),
            _ => None,
        })
        .collect();
    assert_eq!(bodies.len(), 2);
    assert!(
        Arc::ptr_eq(&bodies[0].0, &bodies[1].0),
        "one body for the loop"
    );
    let before = body.0.node_count();
    let after = bodies[0].0.node_count();
    assert!(
        after < before,
        "body {before} -> {after} nodes:\n{}",
        bodies[0].0
    );

    assert_same_values(&g, &opt);
}

/// A body returning one value twice as stacked results (here after its own
/// optimization merges two equal nodes) gives one result node: the loop stores it
/// once per step, and what reads the second reads the first.
#[test]
fn repeated_stacked_results_are_read_from_one() {
    let f = TensorType::new(DType::F32, [3]);
    let mut b = Graph::new("twice");
    let h = b.input("h", f.clone()).unwrap();
    let x = b.input("x", f).unwrap();
    let next = b.add(Op::Binary(BinaryOp::Add), &[h, x]).unwrap();
    let y1 = b.add(Op::Binary(BinaryOp::Mul), &[next, x]).unwrap();
    let y2 = b.add(Op::Binary(BinaryOp::Mul), &[next, x]).unwrap();
    b.output(next, Some("h"));
    b.output(y1, Some("y1"));
    b.output(y2, Some("y2"));
    let body = Body(Arc::new(b));

    let (mut g, h0, xs) = outer();
    let ys1 = g.add(scan(&body, 1), &[h0, xs]).unwrap();
    let ys2 = g.add(scan(&body, 2), &[h0, xs]).unwrap();
    let e = g.add(Op::Unary(UnaryOp::Exp), &[ys2]).unwrap();
    g.output(ys1, Some("ys1"));
    g.output(e, Some("exp_ys2"));

    let (opt, stats) = optimize(&g).unwrap();
    let results: Vec<usize> = opt
        .node_ids()
        .filter_map(|n| match &opt.node(n).op {
            Op::Scan(s) => Some(s.result),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 1, "one stacked result node:\n{opt}");
    assert!(
        stats
            .applied
            .iter()
            .any(|(r, n)| r == "loop/merge-results" && *n == 1),
        "{:?}",
        stats.applied
    );

    assert_same_values(&g, &opt);
}
