//! Differential tests: every op compiled by the JIT agrees with the reference
//! interpreter, over shapes with sizes 1, 3, 5, 7, 17, 127 and non-square ones, on
//! seeded random data (never all zeros).
//!
//! Tolerances ([`Tol`], compared by [`agrees`]: NaN only matches NaN, a zero only
//! a zero of the same sign): elementwise ops, views and reductions run the same
//! operations in the same order as the interpreter, so they agree to the last bit,
//! except f32 exp/log/tanh/sigmoid, which the JIT approximates within 2 ulp
//! (codegen/tests/approx.rs); contractions may sum in another order (1e-5
//! relative, with an absolute floor of 1e-5 for results cancelling to near zero).
//!
//! Comparisons, select, max and min also run on data full of ties, signed zeros,
//! NaN and infinities ([`Case::edgy`]). The float cases run in f32 and f64. A run
//! that falls back to the interpreter's own op inside a library call
//! ([`fallback_calls`]) fails the test, unless the case carries values worked out
//! by hand in this file ([`Case::expect`]).

use std::collections::BTreeSet;

use kiln_codegen::library::fallback_calls;
use kiln_ir::{
    BinaryOp, CmpOp, Conv2dAttrs, DType, Graph, HostTensor, NodeId, Op, Pool2dAttrs, PoolKind,
    ReduceOp, Shape, TensorType, UnaryOp, interp,
};
use kiln_runtime::{CompileOptions, Executable, RunError};
use kiln_testutil::{Rng, agrees};

/// How close the JIT must come to the interpreter: `ulps` units in the last place
/// of the output type, or `rel` relative with an absolute floor of `rel`.
#[derive(Clone, Copy, Debug)]
struct Tol {
    ulps: u64,
    rel: f64,
}

/// A graph under construction with the values of its arguments.
struct Case {
    graph: Graph,
    values: Vec<HostTensor>,
    /// Outputs worked out in this file, for a case whose library call runs the
    /// interpreter's own op: compared with these instead of the interpreter.
    expected: Option<Vec<HostTensor>>,
}

impl Case {
    fn new(name: &str) -> Self {
        Case {
            graph: Graph::new(name),
            values: vec![],
            expected: None,
        }
    }

    /// Compare with `outputs` (computed in the test) instead of the interpreter.
    fn expect(mut self, outputs: Vec<HostTensor>) -> Self {
        self.expected = Some(outputs);
        self
    }

    /// An argument with edge values: each element, with probability 1/2, one of
    /// -1, -0, 0, 1, NaN, -inf, +inf (so comparisons tie and see NaN), else
    /// uniform in `[-3, 3)`.
    fn edgy(&mut self, rng: &mut Rng, dtype: DType, dims: &[usize]) -> NodeId {
        const EDGES: [f64; 7] = [
            -1.0,
            -0.0,
            0.0,
            1.0,
            f64::NAN,
            f64::NEG_INFINITY,
            f64::INFINITY,
        ];
        let name = format!("a{}", self.values.len());
        let ty = TensorType::new(dtype, dims);
        let id = self.graph.input(&name, ty.clone()).unwrap();
        self.values.push(HostTensor::from_fn(&ty, |_| {
            if rng.chance(0.5) {
                EDGES[rng.below(EDGES.len())]
            } else {
                rng.uniform(-3.0, 3.0)
            }
        }));
        id
    }

    fn arg(&mut self, rng: &mut Rng, dtype: DType, dims: &[usize], lo: f64, hi: f64) -> NodeId {
        let name = format!("a{}", self.values.len());
        let ty = TensorType::new(dtype, dims);
        let id = self.graph.input(&name, ty.clone()).unwrap();
        self.values.push(HostTensor::from_fn(&ty, |_| match dtype {
            DType::I32 => (rng.uniform(lo, hi)).floor(),
            DType::Bool => (rng.below(2)) as f64,
            _ => rng.uniform(lo, hi),
        }));
        id
    }

    fn f32(&mut self, rng: &mut Rng, dims: &[usize]) -> NodeId {
        self.arg(rng, DType::F32, dims, -3.0, 3.0)
    }

    /// Uniform in `[-3, 3)`, of float type `dtype`.
    fn float(&mut self, rng: &mut Rng, dtype: DType, dims: &[usize]) -> NodeId {
        self.arg(rng, dtype, dims, -3.0, 3.0)
    }

    fn op(&mut self, op: Op, operands: &[NodeId]) -> NodeId {
        self.graph
            .add(op, operands)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn out(mut self, n: NodeId) -> Self {
        self.graph.output(n, None);
        self
    }
}

/// Compiles and runs `case` as given and through the optimizer.
fn check(case: &Case, tol: Tol) {
    check_with(case, tol, &CompileOptions::unoptimized());
    check_with(case, tol, &CompileOptions::default());
}

/// Compiles and runs `case` with `options`, comparing every output with the
/// interpreter's (or with the case's own expected values).
fn check_with(case: &Case, tol: Tol, options: &CompileOptions) {
    let want = match &case.expected {
        Some(want) => want.clone(),
        None => interp::run(&case.graph, &case.values)
            .unwrap_or_else(|e| panic!("interpreter: {e}\n{}", case.graph)),
    };
    let mut exe = Executable::compile_with(&case.graph, options)
        .unwrap_or_else(|e| panic!("compile: {e}\n{}", case.graph));
    let before = fallback_calls();
    let got = exe
        .run(&case.values)
        .unwrap_or_else(|e| panic!("run: {e}\n{}", case.graph));
    assert!(
        case.expected.is_some() || fallback_calls() == before,
        "a library call ran the interpreter's own op: compare with values worked out \
         in the test (Case::expect)\n{}\n{}",
        case.graph,
        exe.program()
    );
    assert_eq!(got.len(), want.len(), "output count\n{}", case.graph);
    assert_eq!(
        got.len(),
        case.graph.outputs().len(),
        "output count\n{}",
        case.graph
    );
    for (o, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.ty(), w.ty(), "output {o} type\n{}", case.graph);
        for i in 0..w.numel() {
            let (a, b) = (g.get_f64(i), w.get_f64(i));
            assert!(
                agrees(a, b, w.dtype(), tol.ulps, tol.rel),
                "output {o}[{i}]: jit {a:e}, want {b:e} (within {tol:?})\n{}\n{}",
                case.graph,
                exe.program()
            );
        }
    }
}

const SIZES: [usize; 6] = [1, 3, 5, 7, 17, 127];
/// Convolutions sum up to ~100 products of values in [-3, 3] in another order than
/// the interpreter; a wrong index is off by O(1).
const CONV: Tol = Tol { ulps: 0, rel: 1e-4 };
/// Matrix products: another summation order.
const CONTRACT: Tol = Tol { ulps: 0, rel: 1e-5 };
/// The same bits (the sign of zero included), or both NaN.
const EXACT: Tol = Tol { ulps: 0, rel: 0.0 };
/// The f32 approximations: 2 ulp.
const APPROX: Tol = Tol { ulps: 2, rel: 0.0 };
/// Approximations feeding more operations: `tanh(x) * x`, and softmax's
/// `exp(x) / sum(exp(x))`, whose sum adds 131 terms, each 1 ulp off, and rounds
/// each addition differently from the interpreter's (the same order, other
/// operands): a relative error of a few 2^-23, in the ulps of results that may sit
/// at the bottom of their binade: 32 ulp (2e-6 relative, however small the value).
const CHAINED: Tol = Tol { ulps: 32, rel: 0.0 };
const FLOATS: [DType; 2] = [DType::F32, DType::F64];

/// Mnemonics of the ops the cases exercise (as the node under test).
fn tested(cases: &[(String, Case)]) -> BTreeSet<String> {
    cases.iter().map(|(m, _)| m.clone()).collect()
}

fn cases(rng: &mut Rng) -> Vec<(String, Case, Tol)> {
    let mut out: Vec<(String, Case, Tol)> = Vec::new();
    let mut add = |m: &str, c: Case, tol: Tol| out.push((m.to_string(), c, tol));
    for n in SIZES {
        // Compiled without a group, as the interpreter is: one process, the
        // operand (a copy: the output never aliases it).
        for dtype in FLOATS {
            let mut c = Case::new("all_reduce");
            let x = c.arg(rng, dtype, &[3, n], -3.0, 3.0);
            let y = c.op(Op::AllReduce, &[x]);
            add("all_reduce", c.out(y), EXACT);
        }
        for k in UnaryOp::ALL {
            let (lo, hi) = match k {
                UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt => (0.01, 50.0),
                UnaryOp::Exp | UnaryOp::Sigmoid | UnaryOp::Tanh => (-90.0, 90.0),
                UnaryOp::Erf => (-5.0, 5.0),
                _ => (-3.0, 3.0),
            };
            for dtype in FLOATS {
                let mut c = Case::new("unary");
                let x = c.arg(rng, dtype, &[3, n], lo, hi);
                let y = c.op(Op::Unary(k), &[x]);
                let approximated = matches!(
                    k,
                    UnaryOp::Exp | UnaryOp::Log | UnaryOp::Tanh | UnaryOp::Sigmoid | UnaryOp::Erf
                );
                add(
                    k.name(),
                    c.out(y),
                    if approximated { APPROX } else { EXACT },
                );
            }
            if k.accepts_integers() {
                let mut c = Case::new("unary_i32");
                let x = c.arg(rng, DType::I32, &[n], -100.0, 100.0);
                let y = c.op(Op::Unary(k), &[x]);
                add(k.name(), c.out(y), EXACT);
            }
        }
        for k in BinaryOp::ALL {
            for dtype in FLOATS {
                let mut c = Case::new("binary");
                let a = c.arg(rng, dtype, &[n, 2], 0.1, 3.0);
                let b = c.arg(rng, dtype, &[n, 2], -2.0, 2.0);
                let y = c.op(Op::Binary(k), &[a, b]);
                add(k.name(), c.out(y), EXACT);
            }
            if k != BinaryOp::Pow {
                // Positive and negative divisors (truncation toward zero both ways).
                for (lo, hi) in [(1.0, 50.0), (-50.0, -1.0)] {
                    let mut c = Case::new("binary_i32");
                    let a = c.arg(rng, DType::I32, &[n], -1000.0, 1000.0);
                    let b = c.arg(rng, DType::I32, &[n], lo, hi);
                    let y = c.op(Op::Binary(k), &[a, b]);
                    add(k.name(), c.out(y), EXACT);
                }
            }
        }
        for k in [BinaryOp::Max, BinaryOp::Min] {
            // Ties (signed zeros among them), NaN and infinities, in both orders.
            for dtype in FLOATS {
                let mut c = Case::new("max_min_edges");
                let a = c.edgy(rng, dtype, &[2, n]);
                let b = c.edgy(rng, dtype, &[2, n]);
                let ab = c.op(Op::Binary(k), &[a, b]);
                let ba = c.op(Op::Binary(k), &[b, a]);
                c.graph.output(ab, None);
                add(k.name(), c.out(ba), EXACT);
            }
        }
        for k in CmpOp::ALL {
            for dtype in [DType::F32, DType::F64, DType::I32] {
                let mut c = Case::new("compare");
                let a = c.arg(rng, dtype, &[2, n], -3.0, 3.0);
                let b = c.arg(rng, dtype, &[2, n], -3.0, 3.0);
                let y = c.op(Op::Compare(k), &[a, b]);
                add(k.name(), c.out(y), EXACT);
            }
            for dtype in FLOATS {
                // Ties, NaN (unordered: only `ne` is true) and infinities.
                let mut c = Case::new("compare_edges");
                let a = c.edgy(rng, dtype, &[2, n]);
                let b = c.edgy(rng, dtype, &[2, n]);
                let y = c.op(Op::Compare(k), &[a, b]);
                add(k.name(), c.out(y), EXACT);
            }
        }
        for dtype in FLOATS {
            // select(a < b, a * 2, b) fused into one kernel, on uniform data, and
            // select(a <= b, a, b) on edge values.
            let mut c = Case::new("select");
            let a = c.float(rng, dtype, &[n, 3]);
            let b = c.float(rng, dtype, &[n, 3]);
            let m = c.op(Op::Compare(CmpOp::Lt), &[a, b]);
            let two = c.graph.constant(HostTensor::full(dtype, [n, 3], 2.0));
            let a2 = c.op(Op::Binary(BinaryOp::Mul), &[a, two]);
            let y = c.op(Op::Select, &[m, a2, b]);
            add("select", c.out(y), EXACT);
            let mut c = Case::new("select_edges");
            let a = c.edgy(rng, dtype, &[n, 3]);
            let b = c.edgy(rng, dtype, &[n, 3]);
            let m = c.op(Op::Compare(CmpOp::Le), &[a, b]);
            let y = c.op(Op::Select, &[m, a, b]);
            add("select", c.out(y), EXACT);
        }
        for (from, to) in [
            (DType::F32, DType::I32),
            (DType::I32, DType::F32),
            (DType::Bool, DType::F32),
            (DType::F32, DType::F64),
            (DType::F64, DType::F32),
            (DType::F32, DType::Bool),
            (DType::I32, DType::Bool),
            (DType::Bool, DType::I32),
        ] {
            let mut c = Case::new("cast");
            let x = c.arg(rng, from, &[n], -50.0, 50.0);
            let y = c.op(Op::Cast(to), &[x]);
            add("cast", c.out(y), EXACT);
        }
        {
            let mut c = Case::new("stop_gradient");
            let x = c.f32(rng, &[n]);
            let e = c.op(Op::Unary(UnaryOp::Exp), &[x]);
            let y = c.op(Op::StopGradient, &[e]);
            add("stop_gradient", c.out(y), APPROX);
        }
        {
            let mut c = Case::new("broadcast");
            let x = c.f32(rng, &[n, 1]);
            let y = c.op(Op::Broadcast(Shape::from([2, n, 5])), &[x]);
            add("broadcast", c.out(y), EXACT);
        }
        {
            let mut c = Case::new("reshape_transpose");
            let x = c.f32(rng, &[2, n, 3]);
            let t = c.op(Op::Transpose(vec![2, 0, 1]), &[x]);
            let y = c.op(Op::Reshape(Shape::from([3 * 2 * n])), &[t]);
            c.graph.output(t, None);
            add("transpose", c.out(y), EXACT);
            let mut c2 = Case::new("reshape");
            let x2 = c2.f32(rng, &[2, n, 3]);
            let y2 = c2.op(Op::Reshape(Shape::from([n, 6])), &[x2]);
            add("reshape", c2.out(y2), EXACT);
        }
        {
            let mut c = Case::new("slice");
            let x = c.f32(rng, &[n + 4, 7]);
            let y = c.op(
                Op::Slice {
                    start: vec![1, 2],
                    end: vec![n + 3, 7],
                    step: vec![2, 2],
                },
                &[x],
            );
            add("slice", c.out(y), EXACT);
        }
        {
            let mut c = Case::new("concat");
            let a = c.f32(rng, &[2, n]);
            let b = c.f32(rng, &[2, 3]);
            let y = c.op(Op::Concat { axis: 1 }, &[a, b]);
            add("concat", c.out(y), EXACT);
        }
        {
            let mut c = Case::new("pad");
            let x = c.f32(rng, &[n, 2]);
            let y = c.op(
                Op::Pad {
                    low: vec![1, 0],
                    high: vec![2, 3],
                    value: -1.5,
                },
                &[x],
            );
            add("pad", c.out(y), EXACT);
        }
        for kind in ReduceOp::ALL {
            // Axes [1] and [0, 1] leave a contiguous innermost output loop and a
            // strided innermost reduced one: the column form.
            for (axes, keepdims) in [
                (vec![1], false),
                (vec![0, 2], true),
                (vec![0, 1], false),
                (vec![0, 1, 2], false),
            ] {
                for dtype in FLOATS {
                    let mut c = Case::new("reduce");
                    let x = c.float(rng, dtype, &[3, n, 4]);
                    // A fused producer, reduce(x * x), and signed data with one
                    // all-negative row (a max starting at 0 fails it).
                    let sq = c.op(Op::Binary(BinaryOp::Mul), &[x, x]);
                    let r = Op::Reduce {
                        kind,
                        axes: axes.clone(),
                        keepdims,
                    };
                    let y = c.op(r.clone(), &[sq]);
                    c.graph.output(y, None);
                    let s = c.float(rng, dtype, &[3, n, 4]);
                    let signed = c.values.pop().unwrap();
                    let ty = signed.ty();
                    c.values.push(HostTensor::from_fn(&ty, |i| {
                        let v = signed.get_f64(i);
                        if i < 4 * n { -v.abs() - 0.5 } else { v }
                    }));
                    let y = c.op(r, &[s]);
                    add(kind.name(), c.out(y), EXACT);
                }
                let mut c = Case::new("reduce_i32");
                let x = c.arg(rng, DType::I32, &[n, 3], -50.0, 50.0);
                let y = c.op(
                    Op::Reduce {
                        kind,
                        axes: vec![0],
                        keepdims: false,
                    },
                    &[x],
                );
                add(kind.name(), c.out(y), EXACT);
            }
        }
        {
            let mut c = Case::new("argmax");
            let x = c.f32(rng, &[3, n]);
            let y = c.op(
                Op::ArgMax {
                    axis: 1,
                    keepdims: false,
                },
                &[x],
            );
            add("argmax", c.out(y), EXACT);
        }
        for dtype in FLOATS {
            let mut c = Case::new("matmul");
            let a = c.float(rng, dtype, &[n, 5]);
            let b = c.float(rng, dtype, &[5, 3]);
            let y = c.op(Op::MatMul, &[a, b]);
            add("matmul", c.out(y), CONTRACT);
            let mut c = Case::new("matmul_transposed");
            let a = c.float(rng, dtype, &[2, 7, n]);
            let b = c.float(rng, dtype, &[2, 3, n]);
            let bt = c.op(Op::Transpose(vec![0, 2, 1]), &[b]);
            let y = c.op(Op::MatMul, &[a, bt]);
            add("matmul", c.out(y), CONTRACT);
            // Views feeding the GEMM: a broadcast weight and a strided slice.
            let mut c = Case::new("matmul_views");
            let a = c.float(rng, dtype, &[2, n, 4]);
            let b = c.float(rng, dtype, &[9, 5]);
            let bs = c.op(
                Op::Slice {
                    start: vec![1, 0],
                    end: vec![9, 5],
                    step: vec![2, 1],
                },
                &[b],
            );
            let bb = c.op(Op::Broadcast(Shape::from([2, 4, 5])), &[bs]);
            let y = c.op(Op::MatMul, &[a, bb]);
            add("matmul", c.out(y), CONTRACT);
            // More than 16 rows, long rows of A, a narrow B (row- and
            // column-major): the unpacked kernel 16 rows at a time, the last
            // block partial. Sums of 260 products in another order than the
            // interpreter's: the convolutions' tolerance.
            let mut c = Case::new("matmul_row_blocks");
            let a = c.float(rng, dtype, &[n + 17, 260]);
            let b = c.float(rng, dtype, &[260, 9]);
            let w = c.float(rng, dtype, &[7, 260]);
            let wt = c.op(Op::Transpose(vec![1, 0]), &[w]);
            let y = c.op(Op::MatMul, &[a, b]);
            let z = c.op(Op::MatMul, &[a, wt]);
            add("matmul", c.out(y).out(z), CONV);
            // `A · Wᵀ`, more than 16 rows, long rows in both (785: a last,
            // partial vector), W wider than the row blocks take: on AVX-512
            // hosts, dot products of rows read in place (A also as a view whose
            // rows are longer than the product's depth). Positive values, so that 785-term sums do not
            // cancel below the relative tolerance; one wrong term moves a sum by
            // about 1/785 of it, ten times the tolerance.
            let mut c = Case::new("matmul_dot_rows");
            let a = c.arg(rng, dtype, &[n + 17, 785], 0.25, 1.0);
            let wide = c.arg(rng, dtype, &[n + 17, 796], 0.25, 1.0);
            let w = c.arg(rng, dtype, &[70, 785], 0.25, 1.0);
            let wt = c.op(Op::Transpose(vec![1, 0]), &[w]);
            let sliced = c.op(
                Op::Slice {
                    start: vec![0, 5],
                    end: vec![n + 17, 790],
                    step: vec![1, 1],
                },
                &[wide],
            );
            let y = c.op(Op::MatMul, &[a, wt]);
            let z = c.op(Op::MatMul, &[sliced, wt]);
            add("matmul", c.out(y).out(z), CONV);
        }
        for dtype in FLOATS {
            let mut c = Case::new("fma");
            let x = c.float(rng, dtype, &[2, n]);
            let y = c.float(rng, dtype, &[2, n]);
            let z = c.float(rng, dtype, &[2, n]);
            let f = c.op(Op::Fma, &[x, y, z]);
            add("fma", c.out(f), EXACT);
            for relu in [false, true] {
                let mut c = Case::new("matmul_bias");
                let a = c.float(rng, dtype, &[n, 5]);
                let b = c.float(rng, dtype, &[5, 3]);
                let bias = c.float(rng, dtype, &[3]);
                let y = c.op(Op::MatMulBias { relu }, &[a, b, bias]);
                add("matmul_bias", c.out(y), CONTRACT);
            }
        }
        {
            let mut c = Case::new("gather");
            let t = c.f32(rng, &[n + 2, 3]);
            let idx = c.arg(rng, DType::I32, &[2, 4], 0.0, (n + 2) as f64);
            let y = c.op(Op::Gather, &[t, idx]);
            add("gather", c.out(y), EXACT);
            let mut c = Case::new("scatter_add");
            let idx = c.arg(rng, DType::I32, &[n, 2], 0.0, 4.0);
            let u = c.f32(rng, &[n, 2, 3]);
            let y = c.op(Op::ScatterAdd { rows: 4 }, &[idx, u]);
            add("scatter_add", c.out(y), EXACT);
            let mut c = Case::new("one_hot");
            let idx = c.arg(rng, DType::I32, &[n], 0.0, 10.0);
            let y = c.op(
                Op::OneHot {
                    depth: 10,
                    dtype: DType::F32,
                },
                &[idx],
            );
            add("one_hot", c.out(y), EXACT);
        }
        for dtype in [DType::I32, DType::Bool, DType::F64] {
            // The index and movement routines move any element type.
            let mut c = Case::new("typed_gather");
            let t = c.arg(rng, dtype, &[n + 1, 2], -9.0, 9.0);
            let idx = c.arg(rng, DType::I32, &[3], 0.0, (n + 1) as f64);
            let y = c.op(Op::Gather, &[t, idx]);
            add("gather", c.out(y), EXACT);
            let mut c = Case::new("typed_pad_concat");
            let x = c.arg(rng, dtype, &[2, n], -9.0, 9.0);
            let p = c.op(
                Op::Pad {
                    low: vec![0, 2],
                    high: vec![1, 0],
                    value: 1.0,
                },
                &[x],
            );
            let q = c.op(Op::Concat { axis: 0 }, &[x, x]);
            c.graph.output(p, None);
            add("concat", c.out(q), EXACT);
        }
        {
            let mut c = Case::new("random");
            let seed = c
                .graph
                .input("seed", TensorType::new(DType::I32, []))
                .unwrap();
            c.values.push(HostTensor::scalar(
                DType::I32,
                (rng.below(1000) as f64) - 500.0,
            ));
            let y = c.op(
                Op::RandomUniform {
                    shape: Shape::from([2, n]),
                    dtype: DType::F32,
                    salt: 3,
                },
                &[seed],
            );
            add("random_uniform", c.out(y), EXACT);
        }
    }
    for (x, w, conv) in [
        ([2, 3, 7, 8], [4, 3, 3, 2], Conv2dAttrs::default()),
        // 11 output channels: a full 8-row register tile plus 3 rows; 81 output
        // positions: full column panels plus a partial one.
        ([2, 2, 11, 11], [11, 2, 3, 3], Conv2dAttrs::default()),
        // Padded and dilated at stride 1: the in-place path over a padded copy.
        (
            [2, 3, 9, 8],
            [5, 3, 3, 2],
            Conv2dAttrs {
                stride: [1, 1],
                padding: [2, 1],
                dilation: [2, 1],
            },
        ),
        // More channels than the thin kernels take: the packed GEMM path.
        (
            [2, 3, 6, 7],
            [17, 3, 3, 3],
            Conv2dAttrs {
                stride: [1, 1],
                padding: [1, 1],
                dilation: [1, 1],
            },
        ),
        (
            [1, 2, 9, 5],
            [3, 2, 3, 3],
            Conv2dAttrs {
                stride: [2, 1],
                padding: [1, 1],
                dilation: [1, 2],
            },
        ),
        (
            [3, 4, 8, 7],
            [5, 4, 2, 3],
            Conv2dAttrs {
                stride: [2, 3],
                padding: [0, 2],
                dilation: [2, 1],
            },
        ),
    ] {
        let ty = |d: [usize; 4]| TensorType::new(DType::F32, d);
        let ys = kiln_ir::infer(&Op::Conv2d(conv), &[&ty(x), &ty(w)]).unwrap();
        let mut c = Case::new("conv2d");
        let (xi, wi) = (c.f32(rng, &x), c.f32(rng, &w));
        let y = c.op(Op::Conv2d(conv), &[xi, wi]);
        add("conv2d", c.out(y), CONV);
        let mut c = Case::new("conv_transpose2d");
        let (dy, wi) = (c.f32(rng, ys.shape.dims()), c.f32(rng, &w));
        let y = c.op(
            Op::ConvTranspose2d {
                conv,
                // Exercise the extra row a strided convolution leaves undetermined.
                output_padding: [(conv.stride[0] > 1) as usize, 0],
            },
            &[dy, wi],
        );
        add("conv_transpose2d", c.out(y), CONV);
        let mut c = Case::new("conv2d_weight_grad");
        let (xi, dy) = (c.f32(rng, &x), c.f32(rng, ys.shape.dims()));
        let y = c.op(
            Op::Conv2dWeightGrad {
                conv,
                kernel: [w[2], w[3]],
            },
            &[xi, dy],
        );
        add("conv2d_weight_grad", c.out(y), CONV);
    }
    // Overlapping padded windows, and the 2×2 stride-2 windows that tile the image
    // (on odd sizes, which leave a last row and column uncovered).
    for (kind, kernel, stride, padding) in [
        (PoolKind::Max, [3, 2], [2, 2], [1, 0]),
        (PoolKind::Avg, [3, 2], [2, 2], [1, 0]),
        (PoolKind::Max, [2, 2], [2, 2], [0, 0]),
        (PoolKind::Avg, [2, 2], [2, 2], [0, 0]),
    ] {
        let p = Pool2dAttrs {
            kind,
            kernel,
            stride,
            padding,
        };
        let mut c = Case::new("pool");
        let x = c.f32(rng, &[2, 3, 7, 6]);
        let y = c.op(Op::Pool2d(p), &[x]);
        add(Op::Pool2d(p).mnemonic(), c.out(y), EXACT);
        let mut c = Case::new("pool_grad");
        let x = c.f32(rng, &[2, 3, 7, 6]);
        let ys = kiln_ir::infer(&Op::Pool2d(p), &[&c.graph.node(x).ty]).unwrap();
        let dy = c.f32(rng, ys.shape.dims());
        let y = c.op(Op::Pool2dGrad(p), &[x, dy]);
        add(Op::Pool2dGrad(p).mnemonic(), c.out(y), EXACT);
    }
    fallback_cases(rng, &mut add);
    {
        let mut c = Case::new("consts");
        let x = c.f32(rng, &[3]);
        let k = c
            .graph
            .constant(HostTensor::from_f32([3], vec![0.5, -1.0, 2.5]).unwrap());
        let s = c.graph.constant(HostTensor::full(DType::F32, [3], 0.25));
        let y = c.op(Op::Binary(BinaryOp::Mul), &[x, k]);
        let z = c.op(Op::Binary(BinaryOp::Add), &[y, s]);
        c.graph.output(k, None);
        c.graph.output(s, None);
        add("const", c.out(z), EXACT);
    }
    out
}

/// Library calls that no native routine takes (an i32 GEMM, f64 convolution and
/// pooling, a transposed gather table) run the interpreter's own op: these cases
/// are compared with loops written here instead.
fn fallback_cases(rng: &mut Rng, add: &mut impl FnMut(&str, Case, Tol)) {
    {
        // i32 matmul, wrapping.
        let mut c = Case::new("matmul_i32");
        let a = c.arg(rng, DType::I32, &[4, 3], -50.0, 50.0);
        let b = c.arg(rng, DType::I32, &[3, 5], -50.0, 50.0);
        let y = c.op(Op::MatMul, &[a, b]);
        let (av, bv) = (c.values[0].as_i32().unwrap(), c.values[1].as_i32().unwrap());
        let want = (0..4 * 5)
            .map(|o| {
                let (i, j) = (o / 5, o % 5);
                (0..3).fold(0i32, |s, k| {
                    s.wrapping_add(av[i * 3 + k].wrapping_mul(bv[k * 5 + j]))
                })
            })
            .collect();
        let want = HostTensor::from_i32([4, 5], want).unwrap();
        add("matmul", c.out(y).expect(vec![want]), EXACT);
    }
    {
        // f64 convolution: strided, padded, dilated.
        let conv = Conv2dAttrs {
            stride: [2, 1],
            padding: [1, 0],
            dilation: [1, 2],
        };
        let (xd, wd) = ([2, 2, 5, 6], [3, 2, 3, 2]);
        let mut c = Case::new("conv2d_f64");
        let x = c.float(rng, DType::F64, &xd);
        let w = c.float(rng, DType::F64, &wd);
        let y = c.op(Op::Conv2d(conv), &[x, w]);
        let yd = c.graph.node(y).ty.shape.dims().to_vec();
        let (xv, wv) = (c.values[0].as_f64().unwrap(), c.values[1].as_f64().unwrap());
        let mut want = vec![0.0; yd.iter().product()];
        for (o, v) in want.iter_mut().enumerate() {
            let (n, k, oy, ox) = (
                o / (yd[1] * yd[2] * yd[3]),
                o / (yd[2] * yd[3]) % yd[1],
                o / yd[3] % yd[2],
                o % yd[3],
            );
            for ch in 0..wd[1] {
                for ky in 0..wd[2] {
                    for kx in 0..wd[3] {
                        let iy = (oy * conv.stride[0] + ky * conv.dilation[0]) as isize
                            - conv.padding[0] as isize;
                        let ix = (ox * conv.stride[1] + kx * conv.dilation[1]) as isize
                            - conv.padding[1] as isize;
                        if iy < 0 || ix < 0 || iy >= xd[2] as isize || ix >= xd[3] as isize {
                            continue;
                        }
                        let xi = ((n * xd[1] + ch) * xd[2] + iy as usize) * xd[3] + ix as usize;
                        *v += xv[xi] * wv[((k * wd[1] + ch) * wd[2] + ky) * wd[3] + kx];
                    }
                }
            }
        }
        let want = HostTensor::from_f64(yd, want).unwrap();
        add("conv2d", c.out(y).expect(vec![want]), CONTRACT);
    }
    {
        // f64 max pooling with padding (treated as -inf).
        let p = Pool2dAttrs {
            kind: PoolKind::Max,
            kernel: [3, 2],
            stride: [2, 2],
            padding: [1, 0],
        };
        let xd = [1, 2, 5, 4];
        let mut c = Case::new("pool_f64");
        let x = c.float(rng, DType::F64, &xd);
        let y = c.op(Op::Pool2d(p), &[x]);
        let yd = c.graph.node(y).ty.shape.dims().to_vec();
        let xv = c.values[0].as_f64().unwrap();
        let want = (0..yd.iter().product::<usize>())
            .map(|o| {
                let (plane, oy, ox) = (o / (yd[2] * yd[3]), o / yd[3] % yd[2], o % yd[3]);
                let mut m = f64::NEG_INFINITY;
                for ky in 0..p.kernel[0] {
                    for kx in 0..p.kernel[1] {
                        let iy = (oy * p.stride[0] + ky) as isize - p.padding[0] as isize;
                        let ix = (ox * p.stride[1] + kx) as isize - p.padding[1] as isize;
                        if iy >= 0 && ix >= 0 && iy < xd[2] as isize && ix < xd[3] as isize {
                            m = m.max(xv[(plane * xd[2] + iy as usize) * xd[3] + ix as usize]);
                        }
                    }
                }
                m
            })
            .collect();
        let want = HostTensor::from_f64(yd, want).unwrap();
        add(Op::Pool2d(p).mnemonic(), c.out(y).expect(vec![want]), EXACT);
    }
    {
        // A gather from a transposed (strided) table.
        let mut c = Case::new("gather_transposed");
        let t = c.f32(rng, &[3, 6]);
        let tt = c.op(Op::Transpose(vec![1, 0]), &[t]);
        let idx = c.arg(rng, DType::I32, &[4], 0.0, 6.0);
        let y = c.op(Op::Gather, &[tt, idx]);
        let (tv, iv) = (c.values[0].as_f32().unwrap(), c.values[1].as_i32().unwrap());
        let want = iv
            .iter()
            .flat_map(|&r| (0..3).map(move |j| tv[j * 6 + r as usize]))
            .collect();
        let want = HostTensor::from_f32([4, 3], want).unwrap();
        add("gather", c.out(y).expect(vec![want]), EXACT);
    }
}

/// The fallback counter sees a call no native routine takes (an i32 GEMM), and
/// only then.
#[test]
fn fallback_counter_counts_reference_calls() {
    let rng = &mut Rng(7);
    let mut c = Case::new("i32_gemm");
    let a = c.arg(rng, DType::I32, &[2, 3], -5.0, 5.0);
    let b = c.arg(rng, DType::I32, &[3, 2], -5.0, 5.0);
    let y = c.op(Op::MatMul, &[a, b]);
    let c = c.out(y);
    let mut exe = Executable::compile_with(&c.graph, &CompileOptions::unoptimized()).unwrap();
    let before = fallback_calls();
    exe.run(&c.values).unwrap();
    assert_eq!(fallback_calls(), before + 1);
    let mut c = Case::new("f32_gemm");
    let a = c.f32(rng, &[2, 3]);
    let b = c.f32(rng, &[3, 2]);
    let y = c.op(Op::MatMul, &[a, b]);
    let c = c.out(y);
    let mut exe = Executable::compile_with(&c.graph, &CompileOptions::unoptimized()).unwrap();
    let before = fallback_calls();
    exe.run(&c.values).unwrap();
    assert_eq!(fallback_calls(), before);
}

#[test]
fn every_op_matches_the_interpreter() {
    let mut rng = Rng(0x00c0_ffee_1234_5678);
    for (_, case, tol) in cases(&mut rng) {
        check(&case, tol);
    }
}

/// Max pooling follows PyTorch's rule (the first maximum, the last NaN, the first
/// position of an all `-inf` window; padding is `-inf`), bit for bit with the
/// interpreter: on the 2×2 fast path (its SSE2 block of four windows and its
/// scalar tail) and the general path, with and without padding, on data full of
/// ties, signed zeros, `-inf` (whole windows of it) and NaN.
#[test]
fn pooling_keeps_the_interpreters_tie_and_nan_rules() {
    let cases = [
        ([2, 2], [2, 2], [0, 0]), // the fast path
        ([3, 3], [2, 2], [0, 0]),
        ([2, 2], [2, 2], [1, 1]),
        ([3, 3], [1, 2], [1, 1]),
        ([2, 2], [1, 1], [0, 1]),
    ];
    for (kernel, stride, padding) in cases {
        let p = Pool2dAttrs {
            kind: PoolKind::Max,
            kernel,
            stride,
            padding,
        };
        // 5 windows per row on the fast path: a vector block of 4 and one more,
        // and an odd last row and column.
        let dims = [2, 3, 7, 11];
        let xt = TensorType::new(DType::F32, dims);
        let yt = kiln_ir::infer(&Op::Pool2d(p), &[&xt]).unwrap();
        let mut c = Case::new("pool_ties");
        let x = c.graph.input("x", xt.clone()).unwrap();
        let dy = c.graph.input("dy", yt.clone()).unwrap();
        let y = c.op(Op::Pool2d(p), &[x]);
        let dx = c.op(Op::Pool2dGrad(p), &[x, dy]);
        c.graph.output(y, None);
        c.graph.output(dx, None);
        // Four levels (-inf, -1, -0, +0) in a scrambled order, so windows tie in
        // every pattern; the first two rows of the first plane all -inf; a NaN
        // every 13th element (two in some windows).
        c.values.push(HostTensor::from_fn(&xt, |i| {
            let mut h = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 29;
            h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
            h ^= h >> 32;
            // Four levels, -0 and +0 among them (a window's max is +0 over -0).
            if i % 13 == 5 {
                f64::NAN
            } else if i < 22 {
                f64::NEG_INFINITY
            } else {
                [f64::NEG_INFINITY, -1.0, -0.0, 0.0][(h % 4) as usize]
            }
        }));
        c.values.push(HostTensor::from_fn(&yt, |i| 0.5 + i as f64));
        for options in [CompileOptions::unoptimized(), CompileOptions::default()] {
            let want = interp::run(&c.graph, &c.values).unwrap();
            let got = Executable::compile_with(&c.graph, &options)
                .unwrap()
                .run(&c.values)
                .unwrap();
            assert_eq!(got.len(), want.len(), "output count");
            for (o, (g, w)) in got.iter().zip(&want).enumerate() {
                let (g, w) = (g.as_f32().unwrap(), w.as_f32().unwrap());
                assert_eq!(g.len(), w.len(), "output {o} length");
                for (i, (a, b)) in g.iter().zip(w).enumerate() {
                    assert!(
                        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                        "{p:?} output {o}[{i}]: jit {a:?}, interpreter {b:?}"
                    );
                }
            }
        }
    }
}

/// The native stride-1 convolution computes over "wide" rows whose junk columns
/// multiply zeros by values the definition never reads; with an infinite image
/// (weight gradient) or weight (input gradient, `conv_transpose2d`) that is NaN.
/// Both must keep the interpreter's infinities and NaNs element for element.
#[test]
fn convolution_gradients_keep_the_interpreters_infinities() {
    let mut rng = Rng::new(18);
    let conv = Conv2dAttrs {
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
    };
    let (x, w) = ([2, 3, 6, 7], [4, 3, 3, 3]);
    let ty = |d: &[usize]| TensorType::new(DType::F32, d);
    let ys = kiln_ir::infer(&Op::Conv2d(conv), &[&ty(&x), &ty(&w)]).unwrap();
    // Finite values with a few infinities of either sign.
    let sprinkled = |rng: &mut Rng, t: &TensorType| {
        HostTensor::from_fn(t, |i| match i % 23 {
            4 => f64::INFINITY,
            15 => f64::NEG_INFINITY,
            _ => rng.uniform(-3.0, 3.0),
        })
    };

    let mut c = Case::new("weight_grad_of_an_infinite_image");
    let xi = c.graph.input("x", ty(&x)).unwrap();
    let dy = c.f32(&mut rng, ys.shape.dims());
    c.values.insert(0, sprinkled(&mut rng, &ty(&x)));
    let dw = c.op(
        Op::Conv2dWeightGrad {
            conv,
            kernel: [w[2], w[3]],
        },
        &[xi, dy],
    );
    check(&c.out(dw), CONV);

    let mut c = Case::new("input_grad_of_an_infinite_weight");
    let dy = c.f32(&mut rng, ys.shape.dims());
    let wi = c.graph.input("w", ty(&w)).unwrap();
    c.values.push(sprinkled(&mut rng, &ty(&w)));
    let dx = c.op(
        Op::ConvTranspose2d {
            conv,
            output_padding: [0, 0],
        },
        &[dy, wi],
    );
    check(&c.out(dx), CONV);
}

/// Long loop kernels split their outermost loop across threads: a 1-D kernel whose
/// loop is the vectorized one (cut at multiples of the vector width), a 2-D one
/// with a row reduction, and two column reductions (one fused, a mean). Every
/// thread count gives the
/// interpreter's answer and the same bits.
#[test]
fn split_loop_kernels_match_the_interpreter_and_each_other() {
    let rng = &mut Rng(0x5eed_1234);
    let mut c = Case::new("split");
    let x = c.arg(rng, DType::F32, &[40_003], -4.0, 4.0);
    let m = c.f32(rng, &[257, 131]);
    let t = c.op(Op::Unary(UnaryOp::Tanh), &[x]);
    let y = c.op(Op::Binary(BinaryOp::Mul), &[t, x]);
    let e = c.op(Op::Unary(UnaryOp::Exp), &[m]);
    let rows = c.op(
        Op::Reduce {
            kind: ReduceOp::Sum,
            axes: vec![1],
            keepdims: true,
        },
        &[e],
    );
    let rows = c.op(Op::Broadcast(Shape::from([257, 131])), &[rows]);
    let soft = c.op(Op::Binary(BinaryOp::Div), &[e, rows]);
    let cols = c.op(
        Op::Reduce {
            kind: ReduceOp::Max,
            axes: vec![0],
            keepdims: false,
        },
        &[m],
    );
    // A fused column mean: exp(m) summed over rows, then divided.
    let col_mean = c.op(
        Op::Reduce {
            kind: ReduceOp::Mean,
            axes: vec![0],
            keepdims: false,
        },
        &[e],
    );
    for out in [y, soft, cols, col_mean] {
        c.graph.output(out, None);
    }
    let mut results = Vec::new();
    for threads in [1, 2, 3] {
        let options = CompileOptions {
            threads,
            ..CompileOptions::default()
        };
        check_with(&c, CHAINED, &options);
        let mut exe = Executable::compile_with(&c.graph, &options).unwrap();
        results.push(exe.run(&c.values).unwrap());
    }
    assert!(
        results.windows(2).all(|w| w[0] == w[1]),
        "results depend on the thread count"
    );
}

#[test]
fn every_op_has_a_differential_test() {
    let mut rng = Rng(1);
    let all = cases(&mut rng);
    let names: Vec<(String, Case)> = all.into_iter().map(|(m, c, _)| (m, c)).collect();
    let seen = tested(&names);
    for op in Op::samples() {
        let m = op.mnemonic();
        if matches!(op, Op::Input | Op::Param) {
            continue;
        }
        // Loops have a differential test of their own, over random bodies
        // (tests/scan.rs).
        if matches!(op, Op::Scan(_)) {
            continue;
        }
        assert!(seen.contains(m), "no differential test for `{m}`");
    }
}

/// Fused chains: an MLP layer with bias and ReLU, and a stable softmax.
#[test]
fn fused_graphs_match_the_interpreter() {
    let mut rng = Rng(99);
    for n in SIZES {
        let mut c = Case::new("layer");
        let x = c.f32(&mut rng, &[n, 6]);
        let w = c.f32(&mut rng, &[6, 5]);
        let b = c.f32(&mut rng, &[5]);
        let xw = c.op(Op::MatMul, &[x, w]);
        let bb = c.op(Op::Broadcast(Shape::from([n, 5])), &[b]);
        let s = c.op(Op::Binary(BinaryOp::Add), &[xw, bb]);
        let r = c.op(Op::Unary(UnaryOp::Relu), &[s]);
        check(&c.out(r), CONTRACT);

        let mut c = Case::new("softmax");
        let x = c.arg(&mut rng, DType::F32, &[3, n], -40.0, 40.0);
        let m = c.op(
            Op::Reduce {
                kind: ReduceOp::Max,
                axes: vec![1],
                keepdims: true,
            },
            &[x],
        );
        let m = c.op(Op::StopGradient, &[m]);
        let mb = c.op(Op::Broadcast(Shape::from([3, n])), &[m]);
        let d = c.op(Op::Binary(BinaryOp::Sub), &[x, mb]);
        let e = c.op(Op::Unary(UnaryOp::Exp), &[d]);
        let s = c.op(
            Op::Reduce {
                kind: ReduceOp::Sum,
                axes: vec![1],
                keepdims: true,
            },
            &[e],
        );
        let sb = c.op(Op::Broadcast(Shape::from([3, n])), &[s]);
        let y = c.op(Op::Binary(BinaryOp::Div), &[e, sb]);
        check(&c.out(y), CHAINED);
    }
}

#[test]
fn bad_arguments_are_reported_before_running() {
    let mut rng = Rng(5);
    let mut c = Case::new("args");
    let x = c.f32(&mut rng, &[2, 3]);
    let i = c.arg(&mut rng, DType::I32, &[4], 0.0, 3.0);
    let t = c
        .graph
        .constant(HostTensor::from_f32([3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap());
    let g = c.op(Op::Gather, &[t, i]);
    let c = c.out(x).out(g);
    let mut exe = Executable::compile(&c.graph).unwrap();
    let e = exe.run(&c.values[..1]).unwrap_err();
    assert!(
        matches!(
            e,
            RunError::ArgCount {
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{e}"
    );
    let wrong = HostTensor::from_f32([3, 2], vec![1.0; 6]).unwrap();
    let e = exe.run(&[wrong, c.values[1].clone()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "argument `a0` must be f32[2,3], got f32[3,2]"
    );
    let e = exe
        .run(&[
            c.values[0].clone(),
            HostTensor::from_f32([4], vec![0.0; 4]).unwrap(),
        ])
        .unwrap_err();
    assert!(e.to_string().contains("i32[4]"), "{e}");
    // An index out of range inside a library call is an error, not a crash.
    let bad = HostTensor::from_i32([4], vec![0, 1, 7, 2]).unwrap();
    let e = exe.run(&[c.values[0].clone(), bad]).unwrap_err();
    assert!(
        matches!(e, RunError::Kernel(_)) && e.to_string().contains("gather"),
        "{e}"
    );
    // The executable still works afterwards.
    assert!(exe.run(&c.values).is_ok());
}
