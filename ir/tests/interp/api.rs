//! The graph-level API: argument binding and checking, outputs, errors naming nodes,
//! `eval_all`, and robustness on hostile values.

use kiln_ir::interp::{EvalError, eval_all, eval_op, run, run_named};
use kiln_ir::{
    BinaryOp, CmpOp, Conv2dAttrs, DType, Graph, GraphError, HostTensor, NodeId, Op, Output,
    Pool2dAttrs, PoolKind, ReduceOp, Shape, TensorType, UnaryOp,
};

use crate::{Rng, assert_close, assert_same, t32, ti};

fn ty(dtype: DType, dims: &[usize]) -> TensorType {
    TensorType::new(dtype, dims)
}

/// relu(x @ w + broadcast(b)), with x an input and w, b parameters.
fn mlp(batch: usize, inp: usize, hidden: usize) -> Graph {
    let mut g = Graph::new("mlp");
    let x = g.input("x", ty(DType::F32, &[batch, inp])).unwrap();
    let w = g.param("w", ty(DType::F32, &[inp, hidden])).unwrap();
    let b = g.param("b", ty(DType::F32, &[hidden])).unwrap();
    let mm = g.add(Op::MatMul, &[x, w]).unwrap();
    let bb = g
        .add(Op::Broadcast(Shape::from([batch, hidden])), &[b])
        .unwrap();
    let s = g.add(Op::Binary(BinaryOp::Add), &[mm, bb]).unwrap();
    let r = g.add(Op::Unary(UnaryOp::Relu), &[s]).unwrap();
    g.output(r, Some("y"));
    g
}

/// relu(x @ w + b) by the definition, in f64.
fn mlp_ref(x: &HostTensor, w: &HostTensor, b: &HostTensor) -> Vec<f64> {
    let (xv, wv, bv) = (x.to_f64_vec(), w.to_f64_vec(), b.to_f64_vec());
    let (n, k, h) = (x.shape().dim(0), x.shape().dim(1), w.shape().dim(1));
    let mut out = Vec::new();
    for i in 0..n {
        for j in 0..h {
            let s: f64 = (0..k).map(|p| xv[i * k + p] * wv[p * h + j]).sum::<f64>() + bv[j];
            out.push(s.max(0.0));
        }
    }
    out
}

#[test]
fn run_binds_arguments_in_order() {
    let g = mlp(2, 3, 2);
    let x = t32(&[2, 3], &[1.0, -2.0, 0.5, 3.0, 1.0, -1.0]);
    let w = t32(&[3, 2], &[0.5, -1.0, 1.0, 2.0, -2.0, 0.25]);
    let b = t32(&[2], &[0.5, -0.5]);
    // Row 0: [0.5 - 2 - 1, -1 - 4 + 0.125] + b = [-2.5 + 0.5, -4.875 - 0.5] -> relu [0, 0]
    // Row 1: [1.5 + 1 + 2, -3 + 2 - 0.25] + b = [5.0, -1.75] -> relu [5, 0]
    let y = run(&g, &[x.clone(), w.clone(), b.clone()]).unwrap();
    assert_eq!(y.len(), 1);
    assert_same(&y[0], &t32(&[2, 2], &[0.0, 0.0, 5.0, 0.0]));
    assert_close(&y[0], &[2, 2], &mlp_ref(&x, &w, &b), 1e-6);
    // Input and Param nodes evaluate to their argument.
    let all = eval_all(&g, &[x.clone(), w.clone(), b.clone()]).unwrap();
    assert_same(&all[&g.args()[0]], &x);
    assert_same(&all[&g.args()[1]], &w);
    assert_same(&all[&g.args()[2]], &b);
}

#[test]
fn run_mlp_sized_graph() {
    let g = mlp(64, 784, 128);
    let mut rng = Rng::new(61);
    let x = rng.tensor(DType::F32, &[64, 784], 0.0, 1.0);
    let w = rng.tensor(DType::F32, &[784, 128], -0.05, 0.05);
    let b = rng.tensor(DType::F32, &[128], -0.1, 0.1);
    let y = run(&g, &[x.clone(), w.clone(), b.clone()]).unwrap();
    assert_close(&y[0], &[64, 128], &mlp_ref(&x, &w, &b), 1e-4);
}

#[test]
fn run_named_matches_run() {
    let g = mlp(2, 3, 2);
    let mut rng = Rng::new(62);
    let x = rng.tensor(DType::F32, &[2, 3], -1.0, 1.0);
    let w = rng.tensor(DType::F32, &[3, 2], -1.0, 1.0);
    let b = rng.tensor(DType::F32, &[2], -1.0, 1.0);
    let by_pos = run(&g, &[x.clone(), w.clone(), b.clone()]).unwrap();
    let by_name = run_named(&g, &[("b", b.clone()), ("x", x.clone()), ("w", w.clone())]).unwrap();
    assert_eq!(by_pos, by_name);

    let e = run_named(&g, &[("x", x.clone()), ("w", w.clone())]).unwrap_err();
    assert_eq!(e, EvalError::MissingArg("b".into()));
    let e = run_named(
        &g,
        &[
            ("x", x.clone()),
            ("w", w.clone()),
            ("b", b.clone()),
            ("z", b.clone()),
        ],
    )
    .unwrap_err();
    assert_eq!(e, EvalError::UnknownArg("z".into()));
    let e = run_named(&g, &[("x", x.clone()), ("x", x.clone()), ("b", b.clone())]).unwrap_err();
    assert_eq!(e, EvalError::DuplicateArg("x".into()));
    // Type errors name the argument in named calls too.
    let e = run_named(&g, &[("x", x), ("w", w), ("b", t32(&[3], &[1.0; 3]))]).unwrap_err();
    assert!(
        matches!(e, EvalError::ArgType { ref name, .. } if name == "b"),
        "{e}"
    );
}

#[test]
fn arguments_are_checked() {
    let g = mlp(2, 3, 2);
    let x = t32(&[2, 3], &[1.0; 6]);
    let w = t32(&[3, 2], &[1.0; 6]);
    let b = t32(&[2], &[1.0; 2]);
    let e = run(&g, &[x.clone(), w.clone()]).unwrap_err();
    assert_eq!(
        e,
        EvalError::ArgCount {
            graph: "mlp".into(),
            expected: 3,
            got: 2
        }
    );
    assert!(
        e.to_string().contains("3") && e.to_string().contains("2"),
        "{e}"
    );
    // Wrong shape: the message names the argument and both types.
    let e = run(&g, &[w.clone(), w.clone(), b.clone()]).unwrap_err();
    assert_eq!(e.to_string(), "argument `x` must be f32[2,3], got f32[3,2]");
    // Wrong dtype.
    let xi = HostTensor::from_i32([2, 3], vec![1; 6]).unwrap();
    let e = run(&g, &[xi, w.clone(), b.clone()]).unwrap_err();
    assert_eq!(e.to_string(), "argument `x` must be f32[2,3], got i32[2,3]");
    // eval_all checks too.
    assert!(matches!(
        eval_all(&g, &[x, w]),
        Err(EvalError::ArgCount { .. })
    ));
}

#[test]
fn invalid_graphs_are_rejected() {
    let mut g = mlp(2, 3, 2);
    g.set_outputs(vec![Output {
        node: NodeId::new(999),
        name: None,
    }]);
    let args = [
        t32(&[2, 3], &[1.0; 6]),
        t32(&[3, 2], &[1.0; 6]),
        t32(&[2], &[1.0; 2]),
    ];
    let e = run(&g, &args).unwrap_err();
    assert_eq!(
        e,
        EvalError::Graph(GraphError::UnknownNode(NodeId::new(999)))
    );
}

#[test]
fn const_nodes_evaluate_to_their_literal() {
    let mut g = Graph::new("c");
    let c = g.constant(t32(&[2], &[1.5, -2.0]));
    let d = g.constant(t32(&[2], &[0.25, 4.0]));
    let s = g.add(Op::Binary(BinaryOp::Mul), &[c, d]).unwrap();
    g.output(s, None);
    g.output(c, Some("c"));
    let y = run(&g, &[]).unwrap();
    assert_same(&y[0], &t32(&[2], &[0.375, -8.0]));
    assert_same(&y[1], &t32(&[2], &[1.5, -2.0]));
    // eval_op on a const gives the literal; leaves fed by callers are errors.
    let lit = ti(&[3], &[4, 5, 6]);
    assert_same(&eval_op(&Op::Const(lit.clone()), &[]).unwrap(), &lit);
    let e = eval_op(&Op::Input, &[]).unwrap_err();
    assert!(matches!(e, EvalError::Type { .. }), "{e}");
}

#[test]
fn outputs_in_order_with_repeats() {
    let mut g = Graph::new("o");
    let x = g.input("x", ty(DType::I32, &[3])).unwrap();
    let n = g.add(Op::Unary(UnaryOp::Neg), &[x]).unwrap();
    let a = g.add(Op::Unary(UnaryOp::Abs), &[n]).unwrap();
    g.output(a, None);
    g.output(n, None);
    g.output(a, None);
    g.output(x, None);
    let xv = ti(&[3], &[-1, 2, -3]);
    let y = run(&g, std::slice::from_ref(&xv)).unwrap();
    assert_eq!(
        y,
        vec![
            ti(&[3], &[1, 2, 3]),
            ti(&[3], &[1, -2, 3]),
            ti(&[3], &[1, 2, 3]),
            xv.clone(),
        ]
    );
    // No outputs: nothing to compute.
    let mut g2 = g.clone();
    g2.set_outputs(vec![]);
    assert!(run(&g2, &[xv]).unwrap().is_empty());
}

#[test]
fn errors_name_the_node() {
    let mut g = Graph::new("emb");
    let table = g.param("table", ty(DType::F32, &[4, 2])).unwrap();
    let idx = g.input("idx", ty(DType::I32, &[3])).unwrap();
    let rows = g.add(Op::Gather, &[table, idx]).unwrap();
    g.output(rows, None);
    let t = t32(&[4, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    let e = run(&g, &[t.clone(), ti(&[3], &[0, 9, 1])]).unwrap_err();
    assert_eq!(
        e,
        EvalError::IndexOutOfRange {
            node: Some(rows),
            op: "gather".into(),
            index: 9,
            bound: 4
        }
    );
    assert_eq!(
        e.to_string(),
        format!(
            "node %{} `gather`: index 9 is out of range [0, 4)",
            rows.index()
        )
    );

    let mut g = Graph::new("div");
    let a = g.input("a", ty(DType::I32, &[2])).unwrap();
    let b = g.input("b", ty(DType::I32, &[2])).unwrap();
    let d = g.add(Op::Binary(BinaryOp::Div), &[a, b]).unwrap();
    g.output(d, None);
    let e = run(&g, &[ti(&[2], &[4, 5]), ti(&[2], &[2, 0])]).unwrap_err();
    assert_eq!(
        e,
        EvalError::DivisionByZero {
            node: Some(d),
            op: "div".into()
        }
    );
    assert!(
        e.to_string()
            .starts_with(&format!("node %{} `div`", d.index())),
        "{e}"
    );
}

#[test]
fn run_skips_nodes_the_outputs_do_not_need() {
    // An unused gather with a bad index: `run` never evaluates it, `eval_all` does.
    let mut g = Graph::new("dead");
    let x = g.input("x", ty(DType::F32, &[2])).unwrap();
    let i = g.input("i", ty(DType::I32, &[1])).unwrap();
    let dead = g.add(Op::Gather, &[x, i]).unwrap();
    let live = g.add(Op::Unary(UnaryOp::Exp), &[x]).unwrap();
    g.output(live, None);
    let args = [t32(&[2], &[0.0, 1.0]), ti(&[1], &[7])];
    let y = run(&g, &args).unwrap();
    assert_close(&y[0], &[2], &[1.0, std::f64::consts::E], 1e-6);
    let e = eval_all(&g, &args).unwrap_err();
    assert!(
        matches!(e, EvalError::IndexOutOfRange { node: Some(n), .. } if n == dead),
        "{e}"
    );
    // With a good index, eval_all returns every node.
    let args = [t32(&[2], &[0.0, 1.0]), ti(&[1], &[1])];
    let all = eval_all(&g, &args).unwrap();
    assert_eq!(all.len(), 4);
    assert_same(&all[&dead], &t32(&[1], &[1.0]));
    assert_close(&all[&live], &[2], &[1.0, std::f64::consts::E], 1e-6);
}

#[test]
fn shared_operands_and_diamonds() {
    // y = (x * x) + exp(x * x): the product is used twice, x three times.
    let mut g = Graph::new("diamond");
    let x = g.input("x", ty(DType::F64, &[3])).unwrap();
    let sq = g.add(Op::Binary(BinaryOp::Mul), &[x, x]).unwrap();
    let e = g.add(Op::Unary(UnaryOp::Exp), &[sq]).unwrap();
    let y = g.add(Op::Binary(BinaryOp::Add), &[sq, e]).unwrap();
    g.output(y, None);
    let xs = [0.5, -1.0, 2.0];
    let want: Vec<f64> = xs.iter().map(|&v: &f64| v * v + (v * v).exp()).collect();
    let out = run(&g, &[HostTensor::from_f64([3], xs.to_vec()).unwrap()]).unwrap();
    assert_close(&out[0], &[3], &want, 1e-15);
}

/// Values that break careless kernels: NaN, infinities, extremes, signed zero.
fn hostile(dtype: DType, dims: &[usize], rng: &mut Rng) -> HostTensor {
    const F: [f64; 10] = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e308,
        -1e308,
        -0.0,
        0.0,
        1e-310,
        3.5,
        -2.25,
    ];
    const I: [f64; 8] = [
        2147483647.0,
        -2147483648.0,
        0.0,
        -1.0,
        1.0,
        7.0,
        -100.0,
        65536.0,
    ];
    HostTensor::from_fn(&TensorType::new(dtype, dims), |_| match dtype {
        DType::I32 => I[rng.below(I.len())],
        DType::Bool => (rng.below(2)) as f64,
        _ => F[rng.below(F.len())],
    })
}

#[test]
fn never_panics_on_hostile_values() {
    // Every op with every operand dtype the typing rules accept, on values full of
    // NaN, infinities and extremes: evaluation returns (Ok or a clean error).
    let mut rng = Rng::new(63);
    let conv = Conv2dAttrs {
        stride: [2, 1],
        padding: [1, 1],
        dilation: [1, 2],
    };
    let pool = |kind| Pool2dAttrs {
        kind,
        kernel: [2, 3],
        stride: [1, 2],
        padding: [1, 1],
    };
    // (op, operand shapes); operand dtypes are tried in every combination.
    let mut cases: Vec<(Op, Vec<Vec<usize>>)> = vec![
        (Op::Select, vec![vec![2, 3]; 3]),
        (Op::Broadcast(Shape::from([2, 3, 4])), vec![vec![3, 1]]),
        (Op::Reshape(Shape::from([6, 1])), vec![vec![2, 3]]),
        (Op::Transpose(vec![1, 0]), vec![vec![2, 3]]),
        (
            Op::Slice {
                start: vec![0, 1],
                end: vec![2, 3],
                step: vec![2, 1],
            },
            vec![vec![2, 3]],
        ),
        (Op::Concat { axis: 0 }, vec![vec![1, 3], vec![2, 3]]),
        (
            Op::Pad {
                low: vec![1, 0],
                high: vec![0, 2],
                value: f64::NAN,
            },
            vec![vec![2, 3]],
        ),
        (
            Op::ArgMax {
                axis: 1,
                keepdims: true,
            },
            vec![vec![2, 3]],
        ),
        (Op::MatMul, vec![vec![2, 3], vec![3, 2]]),
        (Op::Conv2d(conv), vec![vec![1, 2, 4, 5], vec![3, 2, 2, 2]]),
        (
            Op::ConvTranspose2d {
                conv,
                output_padding: [1, 0],
            },
            vec![vec![1, 3, 2, 3], vec![3, 2, 2, 2]],
        ),
        (
            Op::Conv2dWeightGrad {
                conv,
                kernel: [2, 2],
            },
            vec![vec![1, 2, 4, 5], vec![1, 3, 3, 3]],
        ),
        (Op::Pool2d(pool(PoolKind::Max)), vec![vec![1, 2, 3, 4]]),
        (Op::Pool2d(pool(PoolKind::Avg)), vec![vec![1, 2, 3, 4]]),
        (
            Op::Pool2dGrad(pool(PoolKind::Max)),
            vec![vec![1, 2, 3, 4], vec![1, 2, 4, 2]],
        ),
        (
            Op::Pool2dGrad(pool(PoolKind::Avg)),
            vec![vec![1, 2, 3, 4], vec![1, 2, 4, 2]],
        ),
        (Op::Gather, vec![vec![4, 2], vec![3]]),
        (Op::ScatterAdd { rows: 4 }, vec![vec![3], vec![3, 2]]),
        (
            Op::RandomUniform {
                shape: Shape::from([5]),
                dtype: DType::F64,
                salt: u32::MAX,
            },
            vec![vec![]],
        ),
    ];
    for d in DType::ALL {
        cases.push((Op::Cast(d), vec![vec![7]]));
        cases.push((Op::OneHot { depth: 3, dtype: d }, vec![vec![4]]));
    }
    for k in UnaryOp::ALL {
        cases.push((Op::Unary(k), vec![vec![10]]));
    }
    for k in BinaryOp::ALL {
        cases.push((Op::Binary(k), vec![vec![10]; 2]));
    }
    for k in CmpOp::ALL {
        cases.push((Op::Compare(k), vec![vec![10]; 2]));
    }
    for kind in ReduceOp::ALL {
        cases.push((
            Op::Reduce {
                kind,
                axes: vec![0, 2],
                keepdims: false,
            },
            vec![vec![3, 2, 5]],
        ));
    }
    let mut accepted = 0;
    for (op, shapes) in &cases {
        let n = shapes.len();
        // Every assignment of dtypes to operands (4^n).
        for mut code in 0..4usize.pow(n as u32) {
            let mut types = Vec::new();
            for s in shapes {
                types.push(TensorType::new(DType::ALL[code % 4], s.clone()));
                code /= 4;
            }
            let refs: Vec<&TensorType> = types.iter().collect();
            if kiln_ir::infer(op, &refs).is_err() {
                continue;
            }
            accepted += 1;
            for _ in 0..3 {
                let xs: Vec<HostTensor> = types
                    .iter()
                    .map(|t| hostile(t.dtype, t.shape.dims(), &mut rng))
                    .collect();
                let xr: Vec<&HostTensor> = xs.iter().collect();
                match eval_op(op, &xr) {
                    Ok(y) => {
                        let want = kiln_ir::infer(op, &refs).unwrap();
                        assert_eq!(y.ty(), want, "{op}");
                    }
                    Err(EvalError::IndexOutOfRange { .. } | EvalError::DivisionByZero { .. }) => {}
                    Err(e) => panic!("{op}: unexpected error {e}"),
                }
            }
        }
    }
    assert!(accepted > 100, "only {accepted} typed cases");
}
