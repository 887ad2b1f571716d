//! Compiled `scan` loops against the interpreter: random bodies over carries of
//! several shapes and dtypes (f32 matrices, an f64 vector, an i32 counter),
//! forward and reverse, zero, one and many steps, results used or not, outputs
//! that pass an argument through or return a value twice, literals in the body,
//! nested loops; and the loop must run natively (no library call falls back to the
//! interpreter).

use std::sync::Arc;

use kiln_codegen::library::fallback_calls;
use kiln_ir::{
    BinaryOp, Body, DType, Graph, HostTensor, NodeId, Op, ReduceOp, Scan, TensorType, UnaryOp,
    interp,
};
use kiln_runtime::{CompileOptions, Executable};
use kiln_testutil::{Rng, agrees};

fn ty(dtype: DType, dims: &[usize]) -> TensorType {
    TensorType::new(dtype, dims.to_vec())
}

fn add(g: &mut Graph, op: Op, operands: &[NodeId]) -> NodeId {
    g.add(op, operands).unwrap_or_else(|e| panic!("{e}\n{g}"))
}

fn bin(g: &mut Graph, k: BinaryOp, a: NodeId, b: NodeId) -> NodeId {
    add(g, Op::Binary(k), &[a, b])
}

/// A random loop: its body, the types of its operands, and how many are carries
/// and stacked inputs.
struct Loop {
    body: Body,
    carries: usize,
    xs: usize,
    /// Operand types as the body sees them (an `xs` element, not the stack).
    operand_types: Vec<TensorType>,
}

/// A random body over `f32[r, n]` states: one or two f32 carries (updated with
/// `tanh(h W + x)`, `h * c + x`, `max(h, x) - h * 0.5`, or swapped), sometimes an
/// f64 vector carry and an i32 step counter; `ys` drawn from the new carry, an
/// argument passed through, a row sum, a literal.
fn random_loop(rng: &mut Rng, r: usize, n: usize) -> Loop {
    let mut g = Graph::new("body");
    let s = ty(DType::F32, &[r, n]);
    let f32_carries = 1 + rng.below(2);
    let with_f64 = rng.chance(0.5);
    let with_counter = rng.chance(0.5);
    let mut types = Vec::new();
    let mut hs = Vec::new();
    for i in 0..f32_carries {
        hs.push(g.input(&format!("h{i}"), s.clone()).unwrap());
        types.push(s.clone());
    }
    let h64 = with_f64.then(|| {
        types.push(ty(DType::F64, &[n]));
        g.input("d", ty(DType::F64, &[n])).unwrap()
    });
    let count = with_counter.then(|| {
        types.push(ty(DType::I32, &[]));
        g.input("count", ty(DType::I32, &[])).unwrap()
    });
    let carries = types.len();
    let x = g.input("x", s.clone()).unwrap();
    types.push(s.clone());
    let w = g.input("w", ty(DType::F32, &[n, n])).unwrap();
    let c = g.input("c", s.clone()).unwrap();
    types.extend([ty(DType::F32, &[n, n]), s.clone()]);

    let mut new = Vec::new();
    for (i, &h) in hs.iter().enumerate() {
        let v = match rng.below(3) {
            0 => {
                let hw = add(&mut g, Op::MatMul, &[h, w]);
                let z = bin(&mut g, BinaryOp::Add, hw, x);
                add(&mut g, Op::Unary(UnaryOp::Tanh), &[z])
            }
            1 => {
                let hc = bin(&mut g, BinaryOp::Mul, h, c);
                bin(&mut g, BinaryOp::Add, hc, x)
            }
            _ => {
                let m = bin(&mut g, BinaryOp::Max, h, x);
                let half = g.constant(HostTensor::full(DType::F32, [r, n], 0.5));
                let hh = bin(&mut g, BinaryOp::Mul, h, half);
                bin(&mut g, BinaryOp::Sub, m, hh)
            }
        };
        // Now and then a carry passes through unchanged.
        new.push(if i > 0 && rng.chance(0.2) { h } else { v });
    }
    if hs.len() == 2 && rng.chance(0.3) {
        new.swap(0, 1);
    }
    if let Some(d) = h64 {
        let row = add(
            &mut g,
            Op::Reduce {
                kind: ReduceOp::Sum,
                axes: vec![0],
                keepdims: false,
            },
            &[new[0]],
        );
        let row64 = add(&mut g, Op::Cast(DType::F64), &[row]);
        let scale = g.constant(HostTensor::full(DType::F64, [n], 0.25));
        let scaled = bin(&mut g, BinaryOp::Mul, row64, scale);
        new.push(bin(&mut g, BinaryOp::Add, d, scaled));
    }
    if let Some(k) = count {
        let one = g.constant(HostTensor::scalar(DType::I32, 1.0));
        new.push(bin(&mut g, BinaryOp::Add, k, one));
    }
    for &v in &new {
        g.output(v, None);
    }
    let ys = 1 + rng.below(3);
    for _ in 0..ys {
        let y = match rng.below(5) {
            0 => new[0],
            1 => x,
            2 => hs[0],
            3 => add(
                &mut g,
                Op::Reduce {
                    kind: ReduceOp::Sum,
                    axes: vec![1],
                    keepdims: false,
                },
                &[new[0]],
            ),
            _ => g.constant(HostTensor::from_fn(&ty(DType::F32, &[n]), |i| {
                i as f64 - 1.5
            })),
        };
        g.output(y, None);
    }
    if let Some(k) = count {
        g.output(k, None);
    }
    Loop {
        body: Body(Arc::new(g)),
        carries,
        xs: 1,
        operand_types: types,
    }
}

/// A graph running `l` for `length` steps over random arguments, asking for a
/// random nonempty subset of its results (some through a further op).
fn outer(rng: &mut Rng, l: &Loop, length: usize, reverse: bool) -> (Graph, Vec<HostTensor>) {
    let mut g = Graph::new("outer");
    let mut values = Vec::new();
    let mut operands = Vec::new();
    for (i, t) in l.operand_types.iter().enumerate() {
        let stacked = if (l.carries..l.carries + l.xs).contains(&i) {
            t.stacked(length)
        } else {
            t.clone()
        };
        operands.push(g.input(&format!("a{i}"), stacked.clone()).unwrap());
        values.push(rng.tensor(stacked.dtype, stacked.shape.dims(), -1.5, 1.5));
    }
    let results = l.body.0.outputs().len();
    let mut chosen: Vec<usize> = (0..results).filter(|_| rng.chance(0.6)).collect();
    if chosen.is_empty() {
        chosen.push(rng.below(results));
    }
    for result in chosen {
        let op = Op::Scan(Scan {
            body: l.body.clone(),
            carries: l.carries,
            xs: l.xs,
            length,
            reverse,
            result,
        });
        let mut v = add(&mut g, op, &operands);
        if g.node(v).ty.dtype == DType::F32 && rng.chance(0.3) {
            v = add(&mut g, Op::Unary(UnaryOp::Neg), &[v]);
        }
        g.output(v, None);
    }
    (g, values)
}

/// Compiles `graph` with and without the optimizer, runs it, and compares every
/// output with the interpreter's; no call may fall back to the interpreter.
fn check(graph: &Graph, values: &[HostTensor]) {
    let want = interp::run(graph, values).unwrap_or_else(|e| panic!("interpreter: {e}\n{graph}"));
    for options in [CompileOptions::unoptimized(), CompileOptions::default()] {
        let mut exe = Executable::compile_with(graph, &options)
            .unwrap_or_else(|e| panic!("compile: {e}\n{graph}"));
        let before = fallback_calls();
        // Twice: the loop state left by one run must not leak into the next.
        for _ in 0..2 {
            let got = exe
                .run(values)
                .unwrap_or_else(|e| panic!("run: {e}\n{graph}"));
            assert_eq!(
                fallback_calls(),
                before,
                "a call fell back\n{}",
                exe.program()
            );
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.ty(), w.ty(), "output {i}");
                let (gv, wv) = (g.to_f64_vec(), w.to_f64_vec());
                for (k, (&a, &b)) in gv.iter().zip(&wv).enumerate() {
                    assert!(
                        agrees(a, b, g.dtype(), 8, 1e-5),
                        "output {i} element {k}: compiled {a}, interpreter {b}\n{graph}\n{}",
                        exe.program()
                    );
                }
            }
        }
    }
}

#[test]
fn random_loops_match_the_interpreter() {
    let mut rng = Rng::new(13);
    for case in 0..60 {
        let (r, n) = (1 + rng.below(3), 1 + rng.below(9));
        let l = random_loop(&mut rng, r, n);
        let length = match case % 6 {
            0 => 0,
            1 => 1,
            _ => 2 + rng.below(9),
        };
        let reverse = rng.chance(0.5);
        let (g, values) = outer(&mut rng, &l, length, reverse);
        check(&g, &values);
    }
}

#[test]
fn a_loop_inside_a_loop_matches_the_interpreter() {
    let mut rng = Rng::new(5);
    for reverse in [false, true] {
        let (r, n) = (2, 5);
        let inner = random_loop(&mut rng, r, n);
        // The outer body runs the inner loop over a stack of 3 steps of its own
        // `xs`, starting from the outer carry, and carries its final state.
        let mut body = Graph::new("outer_body");
        let s = ty(DType::F32, &[r, n]);
        let mut operands = Vec::new();
        for (i, t) in inner.operand_types.iter().enumerate() {
            let t = if (inner.carries..inner.carries + inner.xs).contains(&i) {
                t.stacked(3)
            } else {
                t.clone()
            };
            operands.push(body.input(&format!("o{i}"), t).unwrap());
        }
        let mut outs = Vec::new();
        for result in 0..inner.carries {
            let op = Op::Scan(Scan {
                body: inner.body.clone(),
                carries: inner.carries,
                xs: inner.xs,
                length: 3,
                reverse,
                result,
            });
            outs.push(add(&mut body, op, &operands));
        }
        for &o in &outs {
            body.output(o, None);
        }
        let y = add(&mut body, Op::Unary(UnaryOp::Exp), &[outs[0]]);
        body.output(y, None);
        assert_eq!(body.node(outs[0]).ty, s);
        let l = Loop {
            body: Body(Arc::new(body)),
            carries: inner.carries,
            xs: 1,
            operand_types: inner
                .operand_types
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    if (inner.carries..inner.carries + inner.xs).contains(&i) {
                        t.stacked(3)
                    } else {
                        t.clone()
                    }
                })
                .collect(),
        };
        let (g, values) = outer(&mut rng, &l, 4, !reverse);
        check(&g, &values);
    }
}

/// All results of one loop come from one run of it: the compiled program has one
/// scan kernel however many of its results the graph reads.
#[test]
fn the_results_of_one_loop_share_one_kernel() {
    let mut rng = Rng::new(2);
    let l = random_loop(&mut rng, 2, 3);
    let mut g = Graph::new("outer");
    let mut operands = Vec::new();
    for (i, t) in l.operand_types.iter().enumerate() {
        let t = if i == l.carries {
            t.stacked(4)
        } else {
            t.clone()
        };
        operands.push(g.input(&format!("a{i}"), t).unwrap());
    }
    for result in 0..l.body.0.outputs().len() {
        let op = Op::Scan(Scan {
            body: l.body.clone(),
            carries: l.carries,
            xs: l.xs,
            length: 4,
            reverse: false,
            result,
        });
        let v = add(&mut g, op, &operands);
        g.output(v, None);
    }
    let exe = Executable::compile_with(&g, &CompileOptions::unoptimized()).unwrap();
    assert_eq!(exe.program().scans().count(), 1, "{}", exe.program());
}
