//! Loop-invariant code motion (`hoist_loops`): random loop bodies whose products
//! of the step's `xs` by constants (with elementwise work, views, reductions and
//! concatenations around them) leave the loop. The hoisted graph must compute
//! exactly what the original computes (the interpreter's batched product sums
//! each row as the per-step one does), and the body must lose its products of
//! `xs`.

use std::sync::Arc;

use kiln_ir::{
    BinaryOp, Body, DType, Graph, HostTensor, NodeId, Op, ReduceOp, Scan, Shape, TensorType,
    UnaryOp, interp,
};
use kiln_passes::hoist_loops;
use kiln_testutil::Rng;

fn f32t(dims: &[usize]) -> TensorType {
    TensorType::new(DType::F32, dims.to_vec())
}

fn add(g: &mut Graph, op: Op, operands: &[NodeId]) -> NodeId {
    g.add(op, operands).unwrap_or_else(|e| panic!("{e}\n{g}"))
}

/// A body `(h: [m, n], x: [m, k], w: [k, n], b: [n], v: [n, n])`: a random
/// step-invariant expression `e` of `x w` (bias, activation, transposes, a slice
/// and concatenation, a row sum broadcast back, a product of `x` with itself),
/// then `h' = tanh(h v + e)`; the `ys` are `h'` and sometimes `e`.
fn body(rng: &mut Rng, m: usize, k: usize, n: usize) -> Graph {
    let mut g = Graph::new("step");
    let h = g.input("h", f32t(&[m, n])).unwrap();
    let x = g.input("x", f32t(&[m, k])).unwrap();
    let w = g.input("w", f32t(&[k, n])).unwrap();
    let b = g.input("b", f32t(&[n])).unwrap();
    let v = g.input("v", f32t(&[n, n])).unwrap();
    let mut e = add(&mut g, Op::MatMul, &[x, w]);
    for _ in 0..1 + rng.below(3) {
        e = match rng.below(6) {
            0 => {
                let bb = add(&mut g, Op::Broadcast(Shape::from([m, n])), &[b]);
                add(&mut g, Op::Binary(BinaryOp::Add), &[e, bb])
            }
            1 => add(&mut g, Op::Unary(UnaryOp::Sigmoid), &[e]),
            2 => {
                let t = add(&mut g, Op::Transpose(vec![1, 0]), &[e]);
                let t = add(&mut g, Op::Unary(UnaryOp::Tanh), &[t]);
                add(&mut g, Op::Transpose(vec![1, 0]), &[t])
            }
            3 if n >= 2 => {
                let cut = 1 + rng.below(n - 1);
                let lo = add(
                    &mut g,
                    Op::Slice {
                        start: vec![0, 0],
                        end: vec![m, cut],
                        step: vec![1, 1],
                    },
                    &[e],
                );
                let hi = add(
                    &mut g,
                    Op::Slice {
                        start: vec![0, cut],
                        end: vec![m, n],
                        step: vec![1, 1],
                    },
                    &[e],
                );
                let hi = add(&mut g, Op::Unary(UnaryOp::Neg), &[hi]);
                add(&mut g, Op::Concat { axis: 1 }, &[hi, lo])
            }
            4 => {
                let s = add(
                    &mut g,
                    Op::Reduce {
                        kind: ReduceOp::Sum,
                        axes: vec![1],
                        keepdims: true,
                    },
                    &[e],
                );
                let s = add(&mut g, Op::Broadcast(Shape::from([m, n])), &[s]);
                add(&mut g, Op::Binary(BinaryOp::Sub), &[e, s])
            }
            _ => {
                // A product of two stacked operands: (x x^T) e.
                let xt = add(&mut g, Op::Transpose(vec![1, 0]), &[x]);
                let xx = add(&mut g, Op::MatMul, &[x, xt]);
                add(&mut g, Op::MatMul, &[xx, e])
            }
        };
    }
    let hv = add(&mut g, Op::MatMul, &[h, v]);
    let z = add(&mut g, Op::Binary(BinaryOp::Add), &[hv, e]);
    let h2 = add(&mut g, Op::Unary(UnaryOp::Tanh), &[z]);
    g.output(h2, Some("h"));
    g.output(h2, Some("y"));
    if rng.chance(0.5) {
        g.output(e, Some("e"));
    }
    g
}

/// Products in `graph` with an `xs` argument of the body as an operand.
fn products_of_xs(body: &Graph, carries: usize, xs: usize) -> usize {
    let stacked = &body.args()[carries..carries + xs];
    body.node_ids()
        .filter(|&n| {
            matches!(body.node(n).op, Op::MatMul)
                && body.operands(n).iter().any(|o| stacked.contains(o))
        })
        .count()
}

#[test]
fn step_invariant_products_leave_the_loop_and_nothing_changes() {
    let mut rng = Rng::new(21);
    for case in 0..40 {
        let (m, k, n) = (1 + rng.below(3), 1 + rng.below(5), 1 + rng.below(6));
        let body = Body(Arc::new(body(&mut rng, m, k, n)));
        let length = [0, 1, 2, 5][case % 4];
        let reverse = rng.chance(0.5);
        let mut g = Graph::new("outer");
        let h0 = g.input("h0", f32t(&[m, n])).unwrap();
        let xs = g.input("xs", f32t(&[length, m, k])).unwrap();
        let consts: Vec<NodeId> = [&[k, n][..], &[n], &[n, n]]
            .iter()
            .enumerate()
            .map(|(i, d)| g.input(&format!("c{i}"), f32t(d)).unwrap())
            .collect();
        let mut operands = vec![h0, xs];
        operands.extend(&consts);
        for result in 0..body.0.outputs().len() {
            let op = Op::Scan(Scan {
                body: body.clone(),
                carries: 1,
                xs: 1,
                length,
                reverse,
                result,
            });
            let r = add(&mut g, op, &operands);
            g.output(r, None);
        }
        let args: Vec<HostTensor> = g
            .args()
            .iter()
            .map(|&a| {
                let t = &g.node(a).ty;
                rng.tensor(t.dtype, t.shape.dims(), -1.0, 1.0)
            })
            .collect();

        let (hoisted, moved) = hoist_loops(&g).unwrap();
        assert!(moved >= 1, "nothing moved out of\n{g}");
        hoisted.validate().unwrap();
        let loops: Vec<&Scan> = hoisted
            .node_ids()
            .filter_map(|n| match &hoisted.node(n).op {
                Op::Scan(s) => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(loops.len(), body.0.outputs().len(), "{hoisted}");
        let s = loops[0];
        assert_eq!(s.xs, 1 + moved);
        assert_eq!(
            products_of_xs(&s.body.0, 1, s.xs),
            0,
            "a product of xs stayed in the loop:\n{hoisted}"
        );
        let want = interp::run(&g, &args).unwrap();
        let got = interp::run(&hoisted, &args).unwrap();
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a.ty(), b.ty(), "output {i}");
            let (av, bv) = (a.to_f64_vec(), b.to_f64_vec());
            assert!(
                av.iter().zip(&bv).all(|(x, y)| x.to_bits() == y.to_bits()),
                "output {i} changed:\n{av:?}\n{bv:?}\n{g}\n{hoisted}"
            );
        }
    }
}

#[test]
fn a_loop_without_step_invariant_products_is_left_alone() {
    // h' = tanh(h v + x): nothing but an addition of x, which is no cheaper outside.
    let mut body = Graph::new("step");
    let h = body.input("h", f32t(&[2, 3])).unwrap();
    let x = body.input("x", f32t(&[2, 3])).unwrap();
    let v = body.input("v", f32t(&[3, 3])).unwrap();
    let hv = add(&mut body, Op::MatMul, &[h, v]);
    let z = add(&mut body, Op::Binary(BinaryOp::Add), &[hv, x]);
    let h2 = add(&mut body, Op::Unary(UnaryOp::Tanh), &[z]);
    body.output(h2, None);
    let mut g = Graph::new("outer");
    let h0 = g.input("h0", f32t(&[2, 3])).unwrap();
    let xs = g.input("xs", f32t(&[4, 2, 3])).unwrap();
    let v = g.input("v", f32t(&[3, 3])).unwrap();
    let op = Op::Scan(Scan {
        body: Body(Arc::new(body)),
        carries: 1,
        xs: 1,
        length: 4,
        reverse: false,
        result: 0,
    });
    let r = add(&mut g, op, &[h0, xs, v]);
    g.output(r, None);
    let (same, moved) = hoist_loops(&g).unwrap();
    assert_eq!(moved, 0);
    assert_eq!(same.to_string(), g.to_string());
}
