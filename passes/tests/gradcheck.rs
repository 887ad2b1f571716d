//! Gradient checks: every op's vjp against central finite differences, computed in
//! f64 through the reference interpreter, on seeded random shapes and data.
//!
//! One table covers the op set; `every_op_is_covered` fails when an op has neither a
//! gradient check nor an entry in `NO_GRADIENT` saying why it has none.

use std::collections::BTreeSet;

use kiln_ir::{
    BinaryOp, CmpOp, Conv2dAttrs, DType, Graph, HostTensor, NodeId, Op, Pool2dAttrs, PoolKind,
    ReduceOp, Shape, TensorType, UnaryOp, interp,
};
use kiln_passes::{AutodiffError, grad};
use kiln_testutil::Rng;

/// Ops with no gradient check, and why.
const NO_GRADIENT: &[(&str, &str)] = &[
    ("input", "leaf"),
    ("param", "leaf"),
    ("const", "leaf"),
    ("eq", "bool output"),
    ("ne", "bool output"),
    ("lt", "bool output"),
    ("le", "bool output"),
    ("gt", "bool output"),
    ("ge", "bool output"),
    ("argmax", "integer output"),
    (
        "stop_gradient",
        "blocks gradients by definition; see stop_gradient_blocks",
    ),
    ("one_hot", "integer input"),
    ("random_uniform", "depends only on an integer seed"),
    (
        "max_pool2d_grad",
        "second derivative unsupported; see max_pool_grad_reports_second_order",
    ),
];

/// One of the sizes tests care about: 1, and odd sizes that are not multiples of 4.
fn dim(rng: &mut Rng) -> usize {
    [1, 2, 3, 5, 7][rng.below(5)]
}

/// How to draw an argument's values.
#[derive(Clone, Copy)]
enum Values {
    /// Uniform in [-2, 2).
    Any,
    /// Uniform in [0.5, 2): domain of log, sqrt, pow's base.
    Positive,
    /// |x| in [0.2, 1.5) with a random sign: away from the kinks of relu, abs, ...
    NonZero,
}

/// A graph under test: arguments with values, the node whose gradient is checked.
struct Setup {
    graph: Graph,
    values: Vec<HostTensor>,
    wrt: Vec<NodeId>,
}

impl Setup {
    fn new() -> Self {
        Setup {
            graph: Graph::new("case"),
            values: vec![],
            wrt: vec![],
        }
    }

    fn arg(&mut self, rng: &mut Rng, dims: &[usize], v: Values) -> NodeId {
        let name = format!("a{}", self.values.len());
        let ty = TensorType::new(DType::F64, dims);
        let id = self.graph.input(&name, ty.clone()).unwrap();
        self.values.push(HostTensor::from_fn(&ty, |_| match v {
            Values::Any => rng.uniform(-2.0, 2.0),
            Values::Positive => rng.uniform(0.5, 2.0),
            Values::NonZero => {
                let m = rng.uniform(0.2, 1.5);
                if rng.below(2) == 0 { m } else { -m }
            }
        }));
        self.wrt.push(id);
        id
    }

    /// An i32 index input (not differentiated) with values in [0, bound).
    fn indices(&mut self, rng: &mut Rng, dims: &[usize], bound: usize) -> NodeId {
        let name = format!("a{}", self.values.len());
        let ty = TensorType::new(DType::I32, dims);
        let id = self.graph.input(&name, ty.clone()).unwrap();
        self.values
            .push(HostTensor::from_fn(&ty, |_| rng.below(bound) as f64));
        id
    }

    fn op(&mut self, op: Op, operands: &[NodeId]) -> NodeId {
        self.graph
            .add(op, operands)
            .unwrap_or_else(|e| panic!("case graph: {e}"))
    }
}

/// loss = sum(out * r) for a fixed random r, so every output element matters with
/// its own weight (a plain sum would hide transposed or permuted gradients).
fn weighted_loss(s: &mut Setup, out: NodeId, rng: &mut Rng) -> NodeId {
    let ty = s.graph.node(out).ty.clone();
    let r = s
        .graph
        .constant(HostTensor::from_fn(&ty, |_| rng.uniform(0.5, 1.5)));
    let p = s.op(Op::Binary(BinaryOp::Mul), &[out, r]);
    let axes: Vec<usize> = (0..ty.shape.rank()).collect();
    if axes.is_empty() {
        return p;
    }
    s.op(
        Op::Reduce {
            kind: ReduceOp::Sum,
            axes,
            keepdims: false,
        },
        &[p],
    )
}

fn loss_value(graph: &Graph, values: &[HostTensor]) -> f64 {
    interp::run(graph, values).unwrap()[0].get_f64(0)
}

/// Compares the symbolic gradient of `sum(out * r)` with central differences.
fn check(name: &str, mut s: Setup, out: NodeId, rng: &mut Rng) {
    let loss = weighted_loss(&mut s, out, rng);
    let wrt = s.wrt.clone();
    let grads = grad(&s.graph, loss, &wrt).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut g = grads.graph.clone();
    g.output(loss, None);
    for &d in &grads.grads {
        g.output(d, None);
    }
    g.validate().unwrap();
    let analytic = interp::run(&g, &s.values).unwrap_or_else(|e| panic!("{name}: {e}"));

    let mut fwd = s.graph.clone();
    fwd.output(loss, None);
    let eps = 1e-6;
    for (k, &w) in wrt.iter().enumerate() {
        let arg = s.graph.args().iter().position(|&a| a == w).unwrap();
        let n = s.values[arg].numel();
        assert_eq!(
            analytic[1 + k].ty(),
            s.values[arg].ty(),
            "{name}: gradient type"
        );
        // Check every element of small tensors and a random sample of large ones.
        let picks: Vec<usize> = if n <= 64 {
            (0..n).collect()
        } else {
            (0..64).map(|_| rng.below(n)).collect()
        };
        for j in picks {
            let mut vals = s.values.clone();
            let base = s.values[arg].as_f64().unwrap().to_vec();
            let mut plus = base.clone();
            plus[j] += eps;
            vals[arg] = HostTensor::from_f64(s.values[arg].shape().clone(), plus).unwrap();
            let lp = loss_value(&fwd, &vals);
            let mut minus = base;
            minus[j] -= eps;
            vals[arg] = HostTensor::from_f64(s.values[arg].shape().clone(), minus).unwrap();
            let lm = loss_value(&fwd, &vals);
            let numeric = (lp - lm) / (2.0 * eps);
            let a = analytic[1 + k].get_f64(j);
            let tol = 1e-6 * (1.0 + a.abs().max(numeric.abs()));
            assert!(
                (a - numeric).abs() <= tol,
                "{name}: d loss / d arg{arg}[{j}]: autodiff {a}, finite differences {numeric}"
            );
        }
    }
}

fn shape2(rng: &mut Rng) -> Vec<usize> {
    vec![dim(rng), dim(rng) + 2]
}

/// Builds every case: (name of the op under test, setup, node under test).
fn cases(rng: &mut Rng) -> Vec<(String, Setup, NodeId)> {
    let mut out = Vec::new();
    let mut push = |name: &str, s: Setup, n: NodeId| out.push((name.to_string(), s, n));

    for k in UnaryOp::ALL {
        let mut s = Setup::new();
        let v = match k {
            UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt => Values::Positive,
            UnaryOp::Relu
            | UnaryOp::LeakyRelu(_)
            | UnaryOp::Abs
            | UnaryOp::Sign
            | UnaryOp::Recip => Values::NonZero,
            _ => Values::Any,
        };
        let dims = shape2(rng);
        let x = s.arg(rng, &dims, v);
        let y = s.op(Op::Unary(k), &[x]);
        push(k.name(), s, y);
    }
    for k in BinaryOp::ALL {
        let mut s = Setup::new();
        let dims = shape2(rng);
        let (va, vb) = match k {
            BinaryOp::Div => (Values::Any, Values::NonZero),
            BinaryOp::Pow => (Values::Positive, Values::Any),
            _ => (Values::Any, Values::Any),
        };
        let a = s.arg(rng, &dims, va);
        let b = s.arg(rng, &dims, vb);
        let y = s.op(Op::Binary(k), &[a, b]);
        push(k.name(), s, y);
    }
    {
        // One process: the sum over the group is the operand, and so is the vjp's.
        let mut s = Setup::new();
        let dims = shape2(rng);
        let x = s.arg(rng, &dims, Values::Any);
        let y = s.op(Op::AllReduce, &[x]);
        push("all_reduce", s, y);
    }
    {
        // select(c < d, a, b): gradients reach a and b; c and d get none.
        let mut s = Setup::new();
        let dims = shape2(rng);
        let ops: Vec<NodeId> = (0..4).map(|_| s.arg(rng, &dims, Values::Any)).collect();
        let c = s.op(Op::Compare(CmpOp::Lt), &[ops[2], ops[3]]);
        let y = s.op(Op::Select, &[c, ops[0], ops[1]]);
        push("select", s, y);
    }
    {
        let mut s = Setup::new();
        let x = s.arg(rng, &[3, 5], Values::Any);
        let y = s.op(Op::Cast(DType::F64), &[x]);
        push("cast", s, y);
    }
    for (from, to) in [
        (vec![3, 1], vec![2, 3, 5]),
        (vec![5], vec![4, 5]),
        (vec![1, 1], vec![3, 7]),
    ] {
        let mut s = Setup::new();
        let x = s.arg(rng, &from, Values::Any);
        let y = s.op(Op::Broadcast(Shape::new(to)), &[x]);
        push("broadcast", s, y);
    }
    {
        let mut s = Setup::new();
        let x = s.arg(rng, &[2, 3, 5], Values::Any);
        let y = s.op(Op::Reshape(Shape::from([6, 5])), &[x]);
        push("reshape", s, y);
    }
    {
        let mut s = Setup::new();
        let x = s.arg(rng, &[2, 3, 5], Values::Any);
        let y = s.op(Op::Transpose(vec![2, 0, 1]), &[x]);
        push("transpose", s, y);
    }
    for (start, end, step) in [
        ([1, 0], [7, 5], [2, 3]),
        ([0, 2], [3, 5], [1, 1]),
        ([2, 1], [7, 4], [3, 2]),
    ] {
        let mut s = Setup::new();
        let x = s.arg(rng, &[7, 5], Values::Any);
        let y = s.op(
            Op::Slice {
                start: start.to_vec(),
                end: end.to_vec(),
                step: step.to_vec(),
            },
            &[x],
        );
        push("slice", s, y);
    }
    {
        let mut s = Setup::new();
        let a = s.arg(rng, &[2, 3, 2], Values::Any);
        let b = s.arg(rng, &[2, 1, 2], Values::Any);
        let c = s.arg(rng, &[2, 5, 2], Values::Any);
        let y = s.op(Op::Concat { axis: 1 }, &[a, b, c]);
        push("concat", s, y);
    }
    {
        let mut s = Setup::new();
        let x = s.arg(rng, &[3, 5], Values::Any);
        let y = s.op(
            Op::Pad {
                low: vec![1, 0],
                high: vec![2, 3],
                value: 0.75,
            },
            &[x],
        );
        push("pad", s, y);
    }
    for kind in ReduceOp::ALL {
        for (axes, keepdims) in [(vec![0, 2], true), (vec![1], false), (vec![0, 1, 2], false)] {
            let mut s = Setup::new();
            let x = s.arg(rng, &[3, 5, 2], Values::Any);
            let y = s.op(
                Op::Reduce {
                    kind,
                    axes,
                    keepdims,
                },
                &[x],
            );
            push(kind.name(), s, y);
        }
    }
    for (a, b) in [
        (vec![3, 5], vec![5, 7]),
        (vec![2, 3, 4], vec![2, 4, 5]),
        (vec![1, 6], vec![6, 1]),
    ] {
        let mut s = Setup::new();
        let x = s.arg(rng, &a, Values::Any);
        let w = s.arg(rng, &b, Values::Any);
        let y = s.op(Op::MatMul, &[x, w]);
        push("matmul", s, y);
    }
    {
        let mut s = Setup::new();
        let dims = shape2(rng);
        let ops: Vec<NodeId> = (0..3).map(|_| s.arg(rng, &dims, Values::Any)).collect();
        let y = s.op(Op::Fma, &ops);
        push("fma", s, y);
    }
    for (a, b, relu) in [
        (vec![3, 5], vec![5, 7], false),
        (vec![2, 3, 4], vec![2, 4, 5], true),
    ] {
        let mut s = Setup::new();
        let n = b[b.len() - 1];
        let x = s.arg(rng, &a, Values::Any);
        let w = s.arg(rng, &b, Values::Any);
        let bias = s.arg(rng, &[n], Values::Any);
        let y = s.op(Op::MatMulBias { relu }, &[x, w, bias]);
        push("matmul_bias", s, y);
    }
    let convs = [
        Conv2dAttrs::default(),
        Conv2dAttrs {
            stride: [2, 1],
            padding: [1, 1],
            dilation: [1, 2],
        },
        Conv2dAttrs {
            stride: [2, 3],
            padding: [0, 2],
            dilation: [2, 1],
        },
    ];
    for c in convs {
        let mut s = Setup::new();
        let x = s.arg(rng, &[2, 3, 7, 8], Values::Any);
        let w = s.arg(rng, &[4, 3, 3, 2], Values::Any);
        let y = s.op(Op::Conv2d(c), &[x, w]);
        push("conv2d", s, y);

        let mut s = Setup::new();
        let ys = kiln_ir::infer(
            &Op::Conv2d(c),
            &[
                &TensorType::new(DType::F64, [2, 3, 7, 8]),
                &TensorType::new(DType::F64, [4, 3, 3, 2]),
            ],
        )
        .unwrap();
        let dy = s.arg(rng, ys.shape.dims(), Values::Any);
        let w = s.arg(rng, &[4, 3, 3, 2], Values::Any);
        let output_padding = [(c.stride[0] - 1).min(1), 0];
        let y = s.op(
            Op::ConvTranspose2d {
                conv: c,
                output_padding,
            },
            &[dy, w],
        );
        push("conv_transpose2d", s, y);

        let mut s = Setup::new();
        let x = s.arg(rng, &[2, 3, 7, 8], Values::Any);
        let dy = s.arg(rng, ys.shape.dims(), Values::Any);
        let y = s.op(
            Op::Conv2dWeightGrad {
                conv: c,
                kernel: [3, 2],
            },
            &[x, dy],
        );
        push("conv2d_weight_grad", s, y);
    }
    for kind in [PoolKind::Max, PoolKind::Avg] {
        for (kernel, stride, padding) in [([2, 2], [2, 2], [0, 0]), ([3, 2], [2, 1], [1, 0])] {
            let p = Pool2dAttrs {
                kind,
                kernel,
                stride,
                padding,
            };
            let mut s = Setup::new();
            let x = s.arg(rng, &[2, 3, 7, 6], Values::Any);
            let y = s.op(Op::Pool2d(p), &[x]);
            push(Op::Pool2d(p).mnemonic(), s, y);
        }
    }
    {
        let p = Pool2dAttrs {
            kind: PoolKind::Avg,
            kernel: [3, 2],
            stride: [2, 1],
            padding: [1, 0],
        };
        let mut s = Setup::new();
        let x = s.arg(rng, &[2, 3, 7, 6], Values::Any);
        let ys = kiln_ir::infer(&Op::Pool2d(p), &[&s.graph.node(x).ty]).unwrap();
        let dy = s.arg(rng, ys.shape.dims(), Values::Any);
        let y = s.op(Op::Pool2dGrad(p), &[x, dy]);
        push("avg_pool2d_grad", s, y);
    }
    {
        let mut s = Setup::new();
        let table = s.arg(rng, &[7, 3], Values::Any);
        let idx = s.indices(rng, &[2, 4], 7);
        let y = s.op(Op::Gather, &[table, idx]);
        push("gather", s, y);
    }
    {
        let mut s = Setup::new();
        let idx = s.indices(rng, &[2, 4], 5);
        let upd = s.arg(rng, &[2, 4, 3], Values::Any);
        let y = s.op(Op::ScatterAdd { rows: 5 }, &[idx, upd]);
        push("scatter_add", s, y);
    }
    // Loops: h' = tanh(h * w + x), y = h' * x; each result, both directions, and a
    // loop nested in a loop body.
    for (reverse, result) in [(false, 0), (true, 1), (false, 1)] {
        let mut s = Setup::new();
        let h0 = s.arg(rng, &[3], Values::Any);
        let xs = s.arg(rng, &[4, 3], Values::Any);
        let w = s.arg(rng, &[3], Values::Any);
        let y = s.op(rnn_scan(rnn_body(), 4, reverse, result), &[h0, xs, w]);
        push("scan", s, y);
    }
    // Both results of one loop: one backward loop takes both cotangents.
    for reverse in [false, true] {
        let mut s = Setup::new();
        let h0 = s.arg(rng, &[3], Values::Any);
        let xs = s.arg(rng, &[4, 3], Values::Any);
        let w = s.arg(rng, &[3], Values::Any);
        let body = rnn_body();
        let last = s.op(rnn_scan(body.clone(), 4, reverse, 0), &[h0, xs, w]);
        let ys = s.op(rnn_scan(body, 4, reverse, 1), &[h0, xs, w]);
        let wide = s.op(Op::Broadcast(Shape::from([4, 3])), &[last]);
        let y = s.op(Op::Binary(BinaryOp::Mul), &[ys, wide]);
        push("scan", s, y);
    }
    {
        let mut s = Setup::new();
        let h0 = s.arg(rng, &[3], Values::Any);
        let xs = s.arg(rng, &[2, 4, 3], Values::Any);
        let w = s.arg(rng, &[3], Values::Any);
        // The outer body runs the inner loop over its row of xs.
        let mut outer = Graph::new("outer");
        let f = |d: &[usize]| TensorType::new(DType::F64, d.to_vec());
        let h = outer.input("h", f(&[3])).unwrap();
        let row = outer.input("row", f(&[4, 3])).unwrap();
        let wi = outer.input("w", f(&[3])).unwrap();
        let inner = outer
            .add(rnn_scan(rnn_body(), 4, true, 0), &[h, row, wi])
            .unwrap();
        outer.output(inner, Some("h"));
        let op = Op::Scan(kiln_ir::Scan {
            body: kiln_ir::Body(std::sync::Arc::new(outer)),
            carries: 1,
            xs: 1,
            length: 2,
            reverse: false,
            result: 0,
        });
        let y = s.op(op, &[h0, xs, w]);
        push("scan", s, y);
    }
    out
}

/// `(h, x, w) -> (tanh(h * w + x), tanh(h * w + x) * x)` in f64.
fn rnn_body() -> Graph {
    let f = |d: &[usize]| TensorType::new(DType::F64, d.to_vec());
    let mut g = Graph::new("rnn");
    let h = g.input("h", f(&[3])).unwrap();
    let x = g.input("x", f(&[3])).unwrap();
    let w = g.input("w", f(&[3])).unwrap();
    let hw = g.add(Op::Binary(BinaryOp::Mul), &[h, w]).unwrap();
    let pre = g.add(Op::Binary(BinaryOp::Add), &[hw, x]).unwrap();
    let h2 = g.add(Op::Unary(UnaryOp::Tanh), &[pre]).unwrap();
    let y = g.add(Op::Binary(BinaryOp::Mul), &[h2, x]).unwrap();
    g.output(h2, Some("h"));
    g.output(y, Some("y"));
    g
}

fn rnn_scan(body: Graph, length: usize, reverse: bool, result: usize) -> Op {
    Op::Scan(kiln_ir::Scan {
        body: kiln_ir::Body(std::sync::Arc::new(body)),
        carries: 1,
        xs: 1,
        length,
        reverse,
        result,
    })
}

#[test]
fn every_vjp_matches_finite_differences() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for (name, s, y) in cases(&mut rng) {
        check(&name, s, y, &mut rng);
    }
}

#[test]
fn every_op_is_covered() {
    let mut rng = Rng(7);
    let tested: BTreeSet<String> = cases(&mut rng)
        .iter()
        .map(|(_, s, y)| s.graph.node(*y).op.mnemonic().to_string())
        .collect();
    for op in Op::samples() {
        let m = op.mnemonic();
        let excused = NO_GRADIENT.iter().any(|(n, _)| *n == m);
        assert!(
            tested.contains(m) != excused,
            "`{m}` must have a gradient check or an entry in NO_GRADIENT (not both)"
        );
    }
}

#[test]
fn second_derivative_through_a_loop() {
    // d/dw of (d loss / d h0 · v) against finite differences of the first gradient:
    // the backward loop is itself differentiated.
    let mut rng = Rng(0x5ca9);
    let mut s = Setup::new();
    let h0 = s.arg(&mut rng, &[3], Values::Any);
    let xs = s.arg(&mut rng, &[4, 3], Values::Any);
    let w = s.arg(&mut rng, &[3], Values::Any);
    let y = s.op(rnn_scan(rnn_body(), 4, false, 1), &[h0, xs, w]);
    let loss = weighted_loss(&mut s, y, &mut rng);
    let first = grad(&s.graph, loss, &[h0]).unwrap();
    // A scalar of the first gradient: its weighted sum.
    let mut g = first.graph.clone();
    let dh = first.grads[0];
    let v = g.constant(HostTensor::from_f64([3], vec![0.7, -1.3, 0.4]).unwrap());
    let p = g.add(Op::Binary(BinaryOp::Mul), &[dh, v]).unwrap();
    let sum = g
        .add(
            Op::Reduce {
                kind: ReduceOp::Sum,
                axes: vec![0],
                keepdims: false,
            },
            &[p],
        )
        .unwrap();
    let second = grad(&g, sum, &[w]).unwrap();
    let mut out = second.graph.clone();
    out.output(second.grads[0], None);
    let analytic = interp::run(&out, &s.values).unwrap()[0].to_f64_vec();
    let mut fwd = g.clone();
    fwd.output(sum, None);
    let eps = 1e-6;
    let w_arg = s.graph.args().iter().position(|&a| a == w).unwrap();
    for j in 0..3 {
        let at = |d: f64| {
            let mut vals = s.values.clone();
            let mut v = vals[w_arg].to_f64_vec();
            v[j] += d;
            vals[w_arg] = HostTensor::from_f64([3], v).unwrap();
            interp::run(&fwd, &vals).unwrap()[0].get_f64(0)
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
        assert!(
            (analytic[j] - numeric).abs() <= 1e-6 * (1.0 + numeric.abs()),
            "element {j}: analytic {} numeric {numeric}",
            analytic[j]
        );
    }
}

#[test]
fn max_pool_grad_reports_second_order() {
    let p = Pool2dAttrs {
        kind: PoolKind::Max,
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
    };
    let mut rng = Rng(3);
    let mut s = Setup::new();
    let x = s.arg(&mut rng, &[1, 1, 4, 4], Values::Any);
    let dy = s.arg(&mut rng, &[1, 1, 2, 2], Values::Any);
    let y = s.op(Op::Pool2dGrad(p), &[x, dy]);
    let loss = weighted_loss(&mut s, y, &mut rng);
    let err = grad(&s.graph, loss, &[dy]).unwrap_err();
    assert!(
        matches!(err, AutodiffError::NotDifferentiable { operand: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("max_pool2d_grad"), "{err}");
    // With respect to x alone the routing is piecewise constant: a zero gradient.
    let g = grad(&s.graph, loss, &[x]).unwrap();
    let mut gg = g.graph.clone();
    gg.output(g.grads[0], None);
    let v = interp::run(&gg, &s.values).unwrap();
    assert!(v[0].to_f64_vec().iter().all(|&d| d == 0.0));
}

/// The gradient through an f32 -> f64 cast comes back as f32 (the table's checks
/// run in f64 only, where the cast is the identity): for loss = sum(f64(x) * r) it
/// is `r` rounded to f32, exactly.
#[test]
fn cast_gradient_returns_to_the_source_type() {
    let rng = &mut Rng(31);
    let mut g = Graph::new("cast");
    let ty = TensorType::new(DType::F32, [3, 5]);
    let x = g.input("x", ty.clone()).unwrap();
    let y = g.add(Op::Cast(DType::F64), &[x]).unwrap();
    // r with more bits than f32 holds, so the rounding back shows.
    let r = HostTensor::from_fn(&TensorType::new(DType::F64, [3, 5]), |_| {
        rng.uniform(0.5, 1.5)
    });
    let rc = g.constant(r.clone());
    let p = g.add(Op::Binary(BinaryOp::Mul), &[y, rc]).unwrap();
    let loss = g
        .add(
            Op::Reduce {
                kind: ReduceOp::Sum,
                axes: vec![0, 1],
                keepdims: false,
            },
            &[p],
        )
        .unwrap();
    let grads = grad(&g, loss, &[x]).unwrap();
    let mut gg = grads.graph.clone();
    gg.output(grads.grads[0], None);
    let xv = HostTensor::from_fn(&ty, |_| rng.uniform(-2.0, 2.0));
    let dx = &interp::run(&gg, &[xv]).unwrap()[0];
    assert_eq!(dx.ty(), ty, "gradient type");
    let want: Vec<f32> = r.to_f64_vec().iter().map(|&v| v as f32).collect();
    assert_eq!(dx.as_f32().unwrap(), &want[..]);
}

/// f(x) = sum(exp(x)) + 0.5 * |x M|^2 has Hessian diag(exp(x)) + M M^T, so the
/// Hessian-vector product is exp(x) * v + v M M^T. Built as grad(<grad f, v>).
#[test]
fn hessian_vector_product_composes() {
    let mut rng = Rng(11);
    let (n, m) = (5, 3);
    let mut s = Setup::new();
    let x = s.arg(&mut rng, &[1, n], Values::Any);
    let v = s.arg(&mut rng, &[1, n], Values::Any);
    let mm = s.arg(&mut rng, &[n, m], Values::Any);
    let sum_all = |s: &mut Setup, t: NodeId| {
        s.op(
            Op::Reduce {
                kind: ReduceOp::Sum,
                axes: vec![0, 1],
                keepdims: false,
            },
            &[t],
        )
    };
    let e = s.op(Op::Unary(UnaryOp::Exp), &[x]);
    let e = sum_all(&mut s, e);
    let xm = s.op(Op::MatMul, &[x, mm]);
    let sq = s.op(Op::Binary(BinaryOp::Mul), &[xm, xm]);
    let sq = sum_all(&mut s, sq);
    let half = s.graph.constant(HostTensor::scalar(DType::F64, 0.5));
    let q = s.op(Op::Binary(BinaryOp::Mul), &[sq, half]);
    let f = s.op(Op::Binary(BinaryOp::Add), &[e, q]);

    let g1 = grad(&s.graph, f, &[x]).unwrap();
    let mut g = g1.graph;
    let gv = g.add(Op::Binary(BinaryOp::Mul), &[g1.grads[0], v]).unwrap();
    let h = g
        .add(
            Op::Reduce {
                kind: ReduceOp::Sum,
                axes: vec![0, 1],
                keepdims: false,
            },
            &[gv],
        )
        .unwrap();
    let g2 = grad(&g, h, &[x]).unwrap();
    let mut gg = g2.graph;
    gg.output(g2.grads[0], None);
    let hv = interp::run(&gg, &s.values).unwrap()[0].to_f64_vec();

    let xs = s.values[0].to_f64_vec();
    let vs = s.values[1].to_f64_vec();
    let ms = s.values[2].to_f64_vec();
    for i in 0..n {
        let mut expect = xs[i].exp() * vs[i];
        for j in 0..n {
            let mmt: f64 = (0..m).map(|k| ms[i * m + k] * ms[j * m + k]).sum();
            expect += vs[j] * mmt;
        }
        assert!(
            (hv[i] - expect).abs() < 1e-10 * (1.0 + expect.abs()),
            "Hv[{i}] = {} vs {expect}",
            hv[i]
        );
    }
}

#[test]
fn unconnected_parameters_get_zero_gradients_and_no_dead_nodes() {
    let mut rng = Rng(5);
    let mut s = Setup::new();
    let a = s.arg(&mut rng, &[3], Values::Any);
    let b = s.arg(&mut rng, &[2, 2], Values::Any);
    let t = s.op(Op::Unary(UnaryOp::Tanh), &[a]);
    let loss = s.op(
        Op::Reduce {
            kind: ReduceOp::Sum,
            axes: vec![0],
            keepdims: false,
        },
        &[t],
    );
    // A branch the loss does not use: it must not get gradient nodes.
    let unused = s.op(Op::Unary(UnaryOp::Exp), &[a]);
    let before = s.graph.node_count();
    let g = grad(&s.graph, loss, &[a, b]).unwrap();
    // Seed; sum's vjp (reshape, broadcast); tanh's (y*y, const 1, broadcast, sub,
    // mul); zeros for b (const, broadcast). Nothing for the unused branch.
    assert_eq!(g.graph.node_count() - before, 10, "{}", g.graph);
    assert!(g.graph.users(unused).is_empty());
    let mut gg = g.graph.clone();
    gg.output(g.grads[1], None);
    let v = interp::run(&gg, &s.values).unwrap();
    assert_eq!(v[0].ty(), TensorType::new(DType::F64, [2, 2]));
    assert!(v[0].to_f64_vec().iter().all(|&d| d == 0.0));
}

#[test]
fn bad_requests_are_errors() {
    let mut rng = Rng(9);
    let mut s = Setup::new();
    let a = s.arg(&mut rng, &[3], Values::Any);
    let idx = s.indices(&mut rng, &[3], 3);
    let e = grad(&s.graph, a, &[a]).unwrap_err();
    assert!(matches!(e, AutodiffError::LossNotScalar { .. }), "{e}");
    let l = s.op(
        Op::Reduce {
            kind: ReduceOp::Sum,
            axes: vec![0],
            keepdims: false,
        },
        &[a],
    );
    let e = grad(&s.graph, l, &[idx]).unwrap_err();
    assert!(matches!(e, AutodiffError::NotFloat { .. }), "{e}");
    assert!(e.to_string().contains("i32[3]"), "{e}");
}

#[test]
fn stop_gradient_blocks() {
    // loss = sum(x * stop_gradient(x)): the gradient is stop_gradient(x) = x, not 2x.
    let mut rng = Rng(13);
    let mut s = Setup::new();
    let x = s.arg(&mut rng, &[2, 3], Values::Any);
    let c = s.op(Op::StopGradient, &[x]);
    let p = s.op(Op::Binary(BinaryOp::Mul), &[x, c]);
    let loss = s.op(
        Op::Reduce {
            kind: ReduceOp::Sum,
            axes: vec![0, 1],
            keepdims: false,
        },
        &[p],
    );
    let g = grad(&s.graph, loss, &[x]).unwrap();
    let mut gg = g.graph.clone();
    gg.output(g.grads[0], None);
    let v = interp::run(&gg, &s.values).unwrap();
    assert_eq!(v[0].to_f64_vec(), s.values[0].to_f64_vec());
}
