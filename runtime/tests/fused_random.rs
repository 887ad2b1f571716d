//! Random fused graphs — chains of elementwise ops, broadcasts, transposes, slices,
//! reshapes and reductions — compiled with and without the optimizer agree with the
//! interpreter (proptest, fixed number of cases, seeded data, never zeros).
//!
//! Ops are chosen to stay finite (bounded activations, division by `1 + |x|`), so a
//! relative tolerance of 1e-4 covers the optimizer's reassociation and fusion (e.g.
//! `a*b+c` becoming one `fma` with a single rounding). Unoptimized, the JIT runs the
//! interpreter's operations, bar the f32 approximations (2 ulp) and the summation
//! order of reductions: 1e-6 there. An element outside these bounds is judged by
//! the differential oracle (`kiln_testutil::graphs::accepted`): it passes only if
//! it is about as close to the graph's f64 value as the f32 interpreter is (a sum
//! of 2023 terms in another order differs by 1e-2 where both are that far from
//! the f64 sum). Graphs come from recipes of choices, so a failure shrinks;
//! `KILN_PROPTEST_CASES=N` runs N random cases.
//!
//! The same graphs also compare the two ways a kernel with transcendental
//! functions can run, natively on wide vectors or as Cranelift code: bit for bit.

use kiln_ir::{
    BinaryOp, DType, Graph, HostTensor, NodeId, Op, ReduceOp, Shape, TensorType, UnaryOp, interp,
};
use kiln_runtime::{CompileOptions, Executable};
use kiln_testutil::graphs::{accepted, twin};
use kiln_testutil::{Draw, Recipe, Rng};
use proptest::prelude::*;

/// A random graph over one or two f32 inputs of a random 2-D or 3-D shape, and
/// its argument values, from the choices of `r`.
fn random_graph(r: &mut impl Draw) -> (Graph, Vec<HostTensor>) {
    let sizes = [1, 3, 4, 5, 7, 17];
    let rank = 2 + r.below(2);
    let dims: Vec<usize> = (0..rank).map(|_| sizes[r.below(sizes.len())]).collect();
    let ty = TensorType::new(DType::F32, dims.clone());
    let mut g = Graph::new("fused");
    let x = g.input("x", ty.clone()).unwrap();
    let y = g.input("y", ty.clone()).unwrap();
    let mut pool: Vec<NodeId> = vec![x, y];
    for _ in 0..(4 + r.below(10)) {
        let a = pool[r.below(pool.len())];
        let at = g.node(a).ty.clone();
        let same: Vec<NodeId> = pool
            .iter()
            .copied()
            .filter(|&n| g.node(n).ty == at)
            .collect();
        let b = same[r.below(same.len())];
        let (op, operands) = match r.below(9) {
            0 | 1 => {
                let k = [
                    UnaryOp::Neg,
                    UnaryOp::Abs,
                    UnaryOp::Relu,
                    UnaryOp::Tanh,
                    UnaryOp::Sigmoid,
                    UnaryOp::LeakyRelu(0.1),
                ][r.below(6)];
                (Op::Unary(k), vec![a])
            }
            2 | 3 => {
                let k = [
                    BinaryOp::Add,
                    BinaryOp::Sub,
                    BinaryOp::Mul,
                    BinaryOp::Max,
                    BinaryOp::Min,
                ][r.below(5)];
                (Op::Binary(k), vec![a, b])
            }
            4 => {
                // a / (1 + |b|): finite.
                let ab = g.add(Op::Unary(UnaryOp::Abs), &[b]).unwrap();
                let one = g.constant(HostTensor::full(DType::F32, at.shape.clone(), 1.0));
                let d = g.add(Op::Binary(BinaryOp::Add), &[ab, one]).unwrap();
                (Op::Binary(BinaryOp::Div), vec![a, d])
            }
            5 => {
                // Reduce then broadcast back, so the result joins the pool's shapes.
                let axis = r.below(at.shape.rank());
                let kind = ReduceOp::ALL[r.below(4)];
                let red = g
                    .add(
                        Op::Reduce {
                            kind,
                            axes: vec![axis],
                            keepdims: true,
                        },
                        &[a],
                    )
                    .unwrap();
                (Op::Broadcast(at.shape.clone()), vec![red])
            }
            6 => {
                // Rotate the axes and back (a round trip through strided views).
                let n = at.shape.rank();
                let perm: Vec<usize> = (0..n).map(|i| (i + 1) % n).collect();
                let mut inverse = vec![0; n];
                for (i, &p) in perm.iter().enumerate() {
                    inverse[p] = i;
                }
                let t = g.add(Op::Transpose(perm), &[a]).unwrap();
                let u = g.add(Op::Unary(UnaryOp::Tanh), &[t]).unwrap();
                (Op::Transpose(inverse), vec![u])
            }
            7 => {
                // Reshape to flat and back.
                let flat = g
                    .add(Op::Reshape(Shape::from([at.shape.numel()])), &[a])
                    .unwrap();
                let s = g.add(Op::Unary(UnaryOp::Sigmoid), &[flat]).unwrap();
                (Op::Reshape(at.shape.clone()), vec![s])
            }
            _ => {
                // Pad a slice back to the full shape.
                let d = at.shape.dims().to_vec();
                let start: Vec<usize> = d.iter().map(|&n| if n > 1 { 1 } else { 0 }).collect();
                let end = d.clone();
                let s = g
                    .add(
                        Op::Slice {
                            start: start.clone(),
                            end,
                            step: vec![1; d.len()],
                        },
                        &[a],
                    )
                    .unwrap();
                (
                    Op::Pad {
                        low: start,
                        high: vec![0; d.len()],
                        value: 0.5,
                    },
                    vec![s],
                )
            }
        };
        let n = g.add(op, &operands).unwrap();
        pool.push(n);
    }
    let last = *pool.last().unwrap();
    g.output(last, Some("out"));
    let mid = pool[pool.len() / 2];
    if mid != last {
        g.output(mid, None);
    }
    let sum = g
        .add(
            Op::Reduce {
                kind: ReduceOp::Sum,
                axes: (0..rank).collect(),
                keepdims: false,
            },
            &[last],
        )
        .unwrap();
    g.output(sum, Some("total"));
    let values = (0..2)
        .map(|_| HostTensor::from_fn(&ty, |_| r.uniform(-2.0, 2.0)))
        .collect();
    (g, values)
}

/// The relative tolerance for `options`: 1e-6 unoptimized, 1e-4 optimized.
fn agree(g: &Graph, values: &[HostTensor], options: &CompileOptions) -> Result<(), String> {
    let rel = if options.optimize { 1e-4 } else { 1e-6 };
    let want = interp::run(g, values).map_err(|e| e.to_string())?;
    let mut exe = Executable::compile_with(g, options).map_err(|e| format!("compile: {e}"))?;
    let got = exe.run(values).map_err(|e| format!("run: {e}"))?;
    if got.len() != want.len() || got.len() != g.outputs().len() {
        return Err(format!(
            "{} outputs, interpreter {}, graph {}",
            got.len(),
            want.len(),
            g.outputs().len()
        ));
    }
    // The graph in f64, for the elements where the JIT and the f32 interpreter
    // differ by more than `rel`: the last output sums the first in another order,
    // with an error that scales with the magnitudes summed and their number.
    let mut truth: Option<Vec<HostTensor>> = None;
    for (o, (a, b)) in got.iter().zip(&want).enumerate() {
        for i in 0..b.numel() {
            let (x, y) = (a.get_f64(i), b.get_f64(i));
            if (x - y).abs() <= rel * (1.0 + y.abs()) {
                continue;
            }
            let t = truth.get_or_insert_with(|| {
                let wide: Vec<HostTensor> = values.iter().map(|v| v.cast(DType::F64)).collect();
                interp::run(&twin(g), &wide).expect("the f64 twin runs")
            });
            if !accepted(x, y, t[o].get_f64(i), DType::F32) {
                return Err(format!(
                    "output {o}[{i}]: jit {x}, interpreter {y}\n{g}\n{}",
                    exe.program()
                ));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(kiln_testutil::proptest_config(96, 0x6b69_6c6e_0001))]

    /// A recipe of choices, so that a failure shrinks to a small graph.
    #[test]
    fn random_fused_graphs_match_the_interpreter(recipe in prop::collection::vec(any::<u64>(), 0..160)) {
        let (g, values) = random_graph(&mut Recipe::new(recipe));
        agree(&g, &values, &CompileOptions::unoptimized()).map_err(TestCaseError::fail)?;
        agree(&g, &values, &CompileOptions::default()).map_err(TestCaseError::fail)?;
    }
}

/// The outputs of `g` compiled with and without wide loops, bit for bit (any NaN
/// matches any NaN); returns how many kernels ran wide.
fn wide_matches_cranelift(
    g: &Graph,
    values: &[HostTensor],
    threads: usize,
) -> Result<usize, String> {
    let run = |wide_loops: bool| -> Result<(Executable, Vec<HostTensor>), String> {
        let options = CompileOptions {
            wide_loops,
            threads,
            ..CompileOptions::default()
        };
        let mut exe = Executable::compile_with(g, &options).map_err(|e| format!("compile: {e}"))?;
        let out = exe.run(values).map_err(|e| format!("run: {e}"))?;
        Ok((exe, out))
    };
    let (wide, got) = run(true)?;
    let (_, want) = run(false)?;
    for (o, (a, b)) in got.iter().zip(&want).enumerate() {
        for i in 0..b.numel() {
            let (x, y) = (a.get_f64(i), b.get_f64(i));
            if x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan()) {
                return Err(format!(
                    "output {o}[{i}]: wide {x}, cranelift {y}\n{g}\n{}",
                    wide.program()
                ));
            }
        }
    }
    Ok(wide.wide_loops())
}

proptest! {
    #![proptest_config(kiln_testutil::proptest_config(64, 0x6b69_6c6e_0002))]

    #[test]
    fn wide_loops_match_cranelift_bit_for_bit(recipe in prop::collection::vec(any::<u64>(), 0..160)) {
        let (g, values) = random_graph(&mut Recipe::new(recipe));
        wide_matches_cranelift(&g, &values, 1).map_err(TestCaseError::fail)?;
    }
}

/// An LSTM cell as the scan body computes it, on shapes that are and are not
/// multiples of the block and the vector width, large enough to be split across
/// threads: gate pre-activations read at column offsets of a wider matrix (loads
/// with a row stride), a broadcast bias, seven stored results. Values span the
/// ranges where the approximations switch branches.
#[test]
fn an_lstm_cell_runs_wide_and_matches_cranelift() {
    let mut rng = Rng(0x5eed);
    let mut used = 0;
    for (rows, h) in [(1, 1), (3, 5), (16, 128), (7, 129), (33, 300), (300, 130)] {
        let mut g = Graph::new("cell");
        let gates_ty = TensorType::new(DType::F32, vec![rows, 4 * h]);
        let gates = g.input("gates", gates_ty.clone()).unwrap();
        let c_prev = g
            .input("c_prev", TensorType::new(DType::F32, vec![rows, h]))
            .unwrap();
        let bias = g
            .input("bias", TensorType::new(DType::F32, vec![h]))
            .unwrap();
        let gate = |g: &mut Graph, k: usize, f: UnaryOp| {
            let s = g
                .add(
                    Op::Slice {
                        start: vec![0, k * h],
                        end: vec![rows, (k + 1) * h],
                        step: vec![1, 1],
                    },
                    &[gates],
                )
                .unwrap();
            let b = g
                .add(Op::Broadcast(Shape::from([rows, h])), &[bias])
                .unwrap();
            let s = g.add(Op::Binary(BinaryOp::Add), &[s, b]).unwrap();
            g.add(Op::Unary(f), &[s]).unwrap()
        };
        let i = gate(&mut g, 0, UnaryOp::Sigmoid);
        let f = gate(&mut g, 1, UnaryOp::Sigmoid);
        let gg = gate(&mut g, 2, UnaryOp::Tanh);
        let o = gate(&mut g, 3, UnaryOp::Sigmoid);
        let fc = g.add(Op::Binary(BinaryOp::Mul), &[f, c_prev]).unwrap();
        let ig = g.add(Op::Binary(BinaryOp::Mul), &[i, gg]).unwrap();
        let c = g.add(Op::Binary(BinaryOp::Add), &[fc, ig]).unwrap();
        let tc = g.add(Op::Unary(UnaryOp::Tanh), &[c]).unwrap();
        let hh = g.add(Op::Binary(BinaryOp::Mul), &[o, tc]).unwrap();
        for n in [hh, c, i, f, gg, o, tc] {
            g.output(n, None);
        }
        let values = vec![
            HostTensor::from_fn(&gates_ty, |_| rng.uniform(-12.0, 12.0)),
            HostTensor::from_fn(&TensorType::new(DType::F32, vec![rows, h]), |_| {
                rng.uniform(-3.0, 3.0)
            }),
            HostTensor::from_fn(&TensorType::new(DType::F32, vec![h]), |_| {
                rng.uniform(-0.7, 0.7)
            }),
        ];
        for threads in [1, 2] {
            used += wide_matches_cranelift(&g, &values, threads).unwrap();
        }
        // Each wide kernel's listing says where it runs.
        let exe = Executable::compile_with(&g, &CompileOptions::default()).unwrap();
        let notes = exe
            .clif()
            .iter()
            .filter(|(_, text)| text.contains("runs natively"))
            .count();
        assert_eq!(notes, exe.wide_loops());
    }
    if wide_host() {
        assert!(used > 0, "no kernel ran wide on a host with AVX2 and FMA");
    }
}

/// Whether this host runs wide loops (x86-64 with AVX2 and FMA).
fn wide_host() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Seeds that once exposed bugs: a reduction summed in another order than the
/// interpreter's (tolerance), and a merged kernel moved after a reader of one of
/// its results.
#[test]
fn former_failures_stay_fixed() {
    for seed in [
        15902196212819812704,
        13940974989318872940,
        3185131290368437802,
    ] {
        let (g, values) = random_graph(&mut Rng(seed | 1));
        agree(&g, &values, &CompileOptions::unoptimized()).unwrap();
        agree(&g, &values, &CompileOptions::default()).unwrap();
    }
}
