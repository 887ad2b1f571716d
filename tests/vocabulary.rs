//! The activations (GELU exact and tanh, ELU, SiLU, softplus, their modules) and the
//! losses with options (L1, MSE, smooth L1, Huber, KL divergence, BCE on logits
//! with `pos_weight` and `weight`, cross-entropy with class weights, label
//! smoothing and `ignore_index`, every `Reduction`): values against f64 formulas
//! written out here (GELU's normal CDF by numerical integration, not through
//! `erf`), gradients (f64, interpreter) against central finite differences, and
//! compiled graphs against the interpreter on odd sizes in f32 and f64.

use kiln::ir::{DType, Graph, HostTensor, NodeId, interp};
use kiln::passes::grad;
use kiln::prelude::*;
use kiln_frontend::loss::{
    self, BceWithLogitsOptions, CrossEntropyOptions, KlDivOptions, Reduction,
};

/// Seeded f64 values uniform in `[lo, hi)`, never all zero.
fn values(rng: &mut Rng, dims: &[usize], lo: f64, hi: f64) -> Vec<f64> {
    let n: usize = dims.iter().product();
    (0..n).map(|_| rng.uniform_f64(lo, hi)).collect()
}

fn tensor(dtype: DType, dims: &[usize], v: &[f64]) -> HostTensor {
    match dtype {
        DType::F64 => HostTensor::from_f64(dims, v.to_vec()).unwrap(),
        _ => HostTensor::from_f32(dims, v.iter().map(|&x| x as f32).collect()).unwrap(),
    }
}

/// Runs the outputs on the interpreter with inputs by name.
fn eval(outputs: &[&Tensor], inputs: &[(&str, &HostTensor)]) -> Vec<Vec<f64>> {
    let model = outputs[0].builder().build(outputs).unwrap();
    let args = model.call_args(inputs).unwrap();
    interp::run(&model.graph, &args)
        .unwrap()
        .iter()
        .map(|t| t.to_f64_vec())
        .collect()
}

fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// The standard normal CDF by composite Simpson integration of the density
/// (independent of any `erf`): `Φ(x) = 1/2 + ∫₀ˣ φ`.
fn normal_cdf(x: f64) -> f64 {
    let n = 2000;
    let h = x / n as f64;
    let phi = |t: f64| (-0.5 * t * t).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let mut s = phi(0.0) + phi(x);
    for k in 1..n {
        s += phi(k as f64 * h) * if k % 2 == 1 { 4.0 } else { 2.0 };
    }
    0.5 + s * h / 3.0
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Activations as (name, DSL, formula).
type Activation = (&'static str, fn(&Tensor) -> Tensor, fn(f64) -> f64);

fn activations() -> Vec<Activation> {
    vec![
        ("gelu", |x| x.gelu(), |x| x * normal_cdf(x)),
        (
            "gelu_tanh",
            |x| x.gelu_tanh(),
            |x| {
                let k = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
            },
        ),
        (
            "elu",
            |x| x.elu(1.0),
            |x| if x > 0.0 { x } else { x.exp_m1() },
        ),
        (
            "elu_0.5",
            |x| x.elu(0.5),
            |x| {
                if x > 0.0 { x } else { 0.5 * x.exp_m1() }
            },
        ),
        ("silu", |x| x.silu(), |x| x * sigmoid(x)),
        (
            "softplus",
            |x| x.softplus(1.0, 20.0),
            |x| {
                if x > 20.0 { x } else { x.exp().ln_1p() }
            },
        ),
        (
            "softplus_b2_t5",
            |x| x.softplus(2.0, 5.0),
            |x| {
                if 2.0 * x > 5.0 {
                    x
                } else {
                    (2.0 * x).exp().ln_1p() / 2.0
                }
            },
        ),
    ]
}

#[test]
fn activations_match_formulas() {
    let mut rng = Rng::seed(1);
    let mut xs = values(&mut rng, &[60], -6.0, 6.0);
    xs.extend([0.0, -0.0, 1e-9, -30.0, 25.0, 2.4, 2.6, 10.0, -1.0, 1.0]);
    let x = HostTensor::from_f64([xs.len()], xs.clone()).unwrap();
    for (name, f, formula) in activations() {
        let g = GraphBuilder::new(name);
        let y = f(&g.input("x", DType::F64, [xs.len()]));
        let got = &eval(&[&y], &[("x", &x)])[0];
        let want: Vec<f64> = xs.iter().map(|&v| formula(v)).collect();
        assert_close(name, got, &want, 1e-13);
    }
    // Known values: GELU(1) = Φ(1), ELU(-inf) = -alpha, softplus(0) = ln 2.
    let g = GraphBuilder::new("known");
    let x = g.input("x", DType::F64, [1]);
    let one = HostTensor::from_f64([1], vec![1.0]).unwrap();
    let out = eval(
        &[&x.gelu(), &x.softplus(1.0, 20.0), &x.silu()],
        &[("x", &one)],
    );
    assert!((out[0][0] - 0.841_344_746_068_542_9).abs() < 1e-15);
    assert!((out[1][0] - (1.0 + 1f64.exp()).ln()).abs() < 1e-15);
    assert!((out[2][0] - sigmoid(1.0)).abs() < 1e-15);
}

#[test]
fn activation_modules_are_the_methods() {
    let g = GraphBuilder::new("modules");
    let x = g.input("x", DType::F64, [2, 5]);
    let pairs = [
        (nn::Gelu::new().forward(&x), x.gelu()),
        (nn::Gelu::tanh().forward(&x), x.gelu_tanh()),
        (nn::Elu::default().forward(&x), x.elu(1.0)),
        (nn::Elu(0.3).forward(&x), x.elu(0.3)),
        (nn::Silu.forward(&x), x.silu()),
        (nn::Softplus::default().forward(&x), x.softplus(1.0, 20.0)),
        (nn::LogSoftmax(0).forward(&x), x.log_softmax(0)),
    ];
    let mut rng = Rng::seed(2);
    let xv = HostTensor::from_f64([2, 5], values(&mut rng, &[10], -3.0, 3.0)).unwrap();
    for (i, (a, b)) in pairs.iter().enumerate() {
        let out = eval(&[a, b], &[("x", &xv)]);
        assert_eq!(out[0], out[1], "module {i}");
    }
    assert!(nn::Gelu::new().params().is_empty());
}

#[test]
fn softmax_and_log_softmax_over_any_axis() {
    let mut rng = Rng::seed(3);
    let dims = [2, 3, 4];
    let v = values(&mut rng, &dims, -4.0, 4.0);
    let xt = HostTensor::from_f64(dims, v.clone()).unwrap();
    let at = |i: usize, j: usize, k: usize| v[(i * 3 + j) * 4 + k];
    for axis in [0isize, 1, 2, -1, -2] {
        let g = GraphBuilder::new("softmax");
        let x = g.input("x", DType::F64, dims);
        let out = eval(&[&x.softmax(axis), &x.log_softmax(axis)], &[("x", &xt)]);
        let a = axis.rem_euclid(3) as usize;
        let mut want = Vec::new();
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    let mut idx = [i, j, k];
                    let denom: f64 = (0..dims[a])
                        .map(|m| {
                            idx[a] = m;
                            at(idx[0], idx[1], idx[2]).exp()
                        })
                        .sum();
                    want.push(at(i, j, k).exp() / denom);
                }
            }
        }
        assert_close("softmax", &out[0], &want, 1e-14);
        let log_want: Vec<f64> = want.iter().map(|w| w.ln()).collect();
        assert_close("log_softmax", &out[1], &log_want, 1e-14);
    }
}

fn reduce(terms: &[f64], r: Reduction, batch: usize) -> Vec<f64> {
    let sum: f64 = terms.iter().sum();
    match r {
        Reduction::Mean => vec![sum / terms.len() as f64],
        Reduction::Sum => vec![sum],
        Reduction::None => terms.to_vec(),
        Reduction::BatchMean => vec![sum / batch as f64],
    }
}

const REDUCTIONS: [Reduction; 4] = [
    Reduction::Mean,
    Reduction::Sum,
    Reduction::None,
    Reduction::BatchMean,
];

type Pointwise = fn(&Tensor, &Tensor, Reduction) -> Tensor;
/// A regression loss: its name, its DSL form, its formula of `d = pred - target`.
type RegressionLoss = (&'static str, Pointwise, fn(f64) -> f64);

/// The pointwise regression losses.
fn regression_losses() -> Vec<RegressionLoss> {
    vec![
        ("l1", |p, t, r| loss::l1_loss(p, t, r), |d| d.abs()),
        ("mse", |p, t, r| loss::mse_loss(p, t, r), |d| d * d),
        (
            "smooth_l1",
            |p, t, r| loss::smooth_l1_loss(p, t, 0.7, r),
            |d| {
                if d.abs() < 0.7 {
                    0.5 * d * d / 0.7
                } else {
                    d.abs() - 0.35
                }
            },
        ),
        (
            "smooth_l1_beta0",
            |p, t, r| loss::smooth_l1_loss(p, t, 0.0, r),
            |d| d.abs(),
        ),
        (
            "huber",
            |p, t, r| loss::huber_loss(p, t, 1.3, r),
            |d| {
                if d.abs() < 1.3 {
                    0.5 * d * d
                } else {
                    1.3 * (d.abs() - 0.65)
                }
            },
        ),
    ]
}

#[test]
fn regression_losses_match_formulas() {
    let mut rng = Rng::seed(4);
    let dims = [3, 5];
    let p = values(&mut rng, &dims, -3.0, 3.0);
    let t = values(&mut rng, &dims, -3.0, 3.0);
    let (pt, tt) = (tensor(DType::F64, &dims, &p), tensor(DType::F64, &dims, &t));
    for (name, f, formula) in regression_losses() {
        for r in REDUCTIONS {
            let g = GraphBuilder::new(name);
            let l = f(
                &g.input("p", DType::F64, dims),
                &g.input("t", DType::F64, dims),
                r,
            );
            let got = &eval(&[&l], &[("p", &pt), ("t", &tt)])[0];
            let terms: Vec<f64> = p.iter().zip(&t).map(|(a, b)| formula(a - b)).collect();
            assert_close(&format!("{name} {r:?}"), got, &reduce(&terms, r, 3), 1e-14);
        }
    }
}

/// `[N, C]` probabilities (rows sum to 1, one zero per row) and log-probabilities.
fn distributions(rng: &mut Rng, n: usize, c: usize) -> (Vec<f64>, Vec<f64>) {
    let mut probs = Vec::new();
    let mut logq = Vec::new();
    for i in 0..n {
        let raw: Vec<f64> = (0..c)
            .map(|j| {
                if j == i % c {
                    0.0
                } else {
                    rng.uniform_f64(0.1, 1.0)
                }
            })
            .collect();
        let s: f64 = raw.iter().sum();
        probs.extend(raw.iter().map(|r| r / s));
        let logits = values(rng, &[c], -2.0, 2.0);
        let lse = logits.iter().map(|l| l.exp()).sum::<f64>().ln();
        logq.extend(logits.iter().map(|l| l - lse));
    }
    (probs, logq)
}

#[test]
fn kl_div_matches_formula() {
    let mut rng = Rng::seed(5);
    let (n, c) = (3, 4);
    let (p, logq) = distributions(&mut rng, n, c);
    for log_target in [false, true] {
        // With log_target a zero probability would be -inf, and e^-inf (-inf - x) is
        // NaN (as in PyTorch): the targets are positive there.
        let p: Vec<f64> = if log_target {
            p.iter().map(|&v| if v == 0.0 { 0.05 } else { v }).collect()
        } else {
            p.clone()
        };
        let logp: Vec<f64> = p.iter().map(|v| v.ln()).collect();
        let target = if log_target { &logp } else { &p };
        let tt = tensor(DType::F64, &[n, c], target);
        let it = tensor(DType::F64, &[n, c], &logq);
        // Pointwise p (log p - log q), 0 where p = 0 (log_target: e^-inf = 0 too).
        let terms: Vec<f64> = p
            .iter()
            .zip(&logq)
            .map(|(&pv, &lq)| if pv == 0.0 { 0.0 } else { pv * (pv.ln() - lq) })
            .collect();
        for r in REDUCTIONS {
            let g = GraphBuilder::new("kl");
            let opts = KlDivOptions::new()
                .with_reduction(r)
                .with_log_target(log_target);
            let l = loss::kl_div(
                &g.input("input", DType::F64, [n, c]),
                &g.input("target", DType::F64, [n, c]),
                opts,
            );
            let got = &eval(&[&l], &[("input", &it), ("target", &tt)])[0];
            let what = format!("kl_div log_target={log_target} {r:?}");
            assert_close(&what, got, &reduce(&terms, r, n), 1e-14);
        }
    }
}

#[test]
fn bce_with_logits_options_match_formula() {
    let mut rng = Rng::seed(6);
    let (n, c) = (4, 3);
    let x = values(&mut rng, &[n, c], -25.0, 25.0);
    let t = values(&mut rng, &[n, c], 0.0, 1.0);
    let pw = [0.5, 2.0, 3.5];
    let w = values(&mut rng, &[n, c], 0.2, 2.0);
    for (with_pw, with_w) in [(false, false), (true, false), (false, true), (true, true)] {
        for r in REDUCTIONS {
            let g = GraphBuilder::new("bce");
            let mut opts = BceWithLogitsOptions::new().with_reduction(r);
            if with_pw {
                opts = opts.with_pos_weight(&g.constant(tensor(DType::F64, &[c], &pw)));
            }
            if with_w {
                opts = opts.with_weight(&g.constant(tensor(DType::F64, &[n, c], &w)));
            }
            let l = loss::binary_cross_entropy_with_logits_with(
                &g.input("x", DType::F64, [n, c]),
                &g.input("t", DType::F64, [n, c]),
                &opts,
            );
            let (xt, tt) = (
                tensor(DType::F64, &[n, c], &x),
                tensor(DType::F64, &[n, c], &t),
            );
            let got = &eval(&[&l], &[("x", &xt), ("t", &tt)])[0];
            // -(pw t log σ(x) + (1 - t) log(1 - σ(x))), log σ(x) = -log1p(e^-x).
            let log_sig = |v: f64| {
                if v > 0.0 {
                    -(-v).exp().ln_1p()
                } else {
                    v - v.exp().ln_1p()
                }
            };
            let terms: Vec<f64> = (0..n * c)
                .map(|k| {
                    let pwk = if with_pw { pw[k % c] } else { 1.0 };
                    let wk = if with_w { w[k] } else { 1.0 };
                    -wk * (pwk * t[k] * log_sig(x[k]) + (1.0 - t[k]) * log_sig(-x[k]))
                })
                .collect();
            let what = format!("bce pos_weight={with_pw} weight={with_w} {r:?}");
            assert_close(&what, got, &reduce(&terms, r, n), 1e-13);
        }
    }
    // Without options it is the existing loss.
    let g = GraphBuilder::new("bce");
    let (xi, ti) = (
        g.input("x", DType::F64, [n, c]),
        g.input("t", DType::F64, [n, c]),
    );
    let a = loss::binary_cross_entropy_with_logits(&xi, &ti);
    let b = loss::binary_cross_entropy_with_logits_with(&xi, &ti, &BceWithLogitsOptions::new());
    let (xt, tt) = (
        tensor(DType::F64, &[n, c], &x),
        tensor(DType::F64, &[n, c], &t),
    );
    let out = eval(&[&a, &b], &[("x", &xt), ("t", &tt)]);
    assert_close("bce default", &out[1], &out[0], 1e-15);
}

/// PyTorch's cross-entropy, written per sample: `(1 - ε) w[y] (-logp[y]) + ε/C Σ_c
/// w_c (-logp_c)`, 0 where ignored; the mean divides by `Σ w[y]` over counted rows.
fn cross_entropy_reference(
    logits: &[f64],
    labels: &[i32],
    c: usize,
    weight: Option<&[f64]>,
    eps: f64,
    ignore: Option<i32>,
    r: Reduction,
) -> Vec<f64> {
    let n = labels.len();
    let w = |k: usize| weight.map_or(1.0, |w| w[k]);
    let mut terms = Vec::new();
    let mut denom = 0.0;
    for i in 0..n {
        let row = &logits[i * c..(i + 1) * c];
        let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
        if Some(labels[i]) == ignore {
            terms.push(0.0);
            continue;
        }
        let y = labels[i] as usize;
        let smooth: f64 = (0..c).map(|k| w(k) * (lse - row[k])).sum();
        terms.push((1.0 - eps) * w(y) * (lse - row[y]) + eps / c as f64 * smooth);
        denom += w(y);
    }
    match r {
        Reduction::Mean => vec![terms.iter().sum::<f64>() / denom],
        other => reduce(&terms, other, n),
    }
}

#[test]
fn cross_entropy_options_match_formula() {
    let mut rng = Rng::seed(7);
    let (n, c) = (6, 4);
    let logits = values(&mut rng, &[n, c], -3.0, 3.0);
    let labels = [2, 0, -100, 3, 1, 3];
    let weight = [0.5, 1.5, 2.0, 0.7];
    let xt = tensor(DType::F64, &[n, c], &logits);
    let yt = HostTensor::from_i32([n], labels.to_vec()).unwrap();
    let all_valid: Vec<i32> = labels.iter().map(|&l| l.max(0)).collect();
    let yt_valid = HostTensor::from_i32([n], all_valid.clone()).unwrap();
    for with_w in [false, true] {
        for eps in [0.0, 0.1, 1.0] {
            for ignore in [None, Some(-100)] {
                for r in REDUCTIONS {
                    let g = GraphBuilder::new("ce");
                    let mut opts = CrossEntropyOptions::new()
                        .with_label_smoothing(eps)
                        .with_reduction(r);
                    if with_w {
                        opts = opts.with_weight(&g.constant(tensor(DType::F64, &[c], &weight)));
                    }
                    if let Some(i) = ignore {
                        opts = opts.with_ignore_index(i);
                    }
                    let l = loss::cross_entropy_with(
                        &g.input("x", DType::F64, [n, c]),
                        &g.input("y", DType::I32, [n]),
                        &opts,
                    );
                    let (ys, yv): (&[i32], _) = match ignore {
                        Some(_) => (&labels, &yt),
                        None => (&all_valid, &yt_valid),
                    };
                    let got = &eval(&[&l], &[("x", &xt), ("y", yv)])[0];
                    let want = cross_entropy_reference(
                        &logits,
                        ys,
                        c,
                        with_w.then_some(&weight[..]),
                        eps,
                        ignore,
                        r,
                    );
                    let what = format!("ce weight={with_w} eps={eps} ignore={ignore:?} {r:?}");
                    assert_close(&what, got, &want, 1e-14);
                }
            }
        }
    }
    // Defaults: the existing losses.
    let g = GraphBuilder::new("ce");
    let (x, y) = (
        g.input("x", DType::F64, [n, c]),
        g.input("y", DType::I32, [n]),
    );
    let out = eval(
        &[
            &loss::cross_entropy(&x, &y),
            &loss::cross_entropy_with(&x, &y, &CrossEntropyOptions::new()),
            &loss::cross_entropy_ignore_index(&x, &y, -100),
            &loss::cross_entropy_with(&x, &y, &CrossEntropyOptions::new().with_ignore_index(-100)),
        ],
        &[("x", &xt), ("y", &yt_valid)],
    );
    assert_close("ce default", &out[1], &out[0], 1e-15);
    assert_close("ce ignore default", &out[3], &out[2], 1e-15);
}

#[test]
fn bad_options_are_deferred_errors() {
    let g = GraphBuilder::new("bad");
    let x = g.input("x", DType::F32, [4, 3]);
    let y = g.input("y", DType::I32, [4]);
    let w = g.input("w", DType::F32, [4]);
    let l = loss::cross_entropy_with(&x, &y, &CrossEntropyOptions::new().with_weight(&w));
    assert!(l.is_poisoned());
    assert!(g.error().unwrap().to_string().contains("class weight"));
    let g = GraphBuilder::new("bad");
    let x = g.input("x", DType::F32, [4, 3]);
    let y = g.input("y", DType::I32, [4]);
    let l = loss::cross_entropy_with(
        &x,
        &y,
        &CrossEntropyOptions::new().with_label_smoothing(1.5),
    );
    assert!(l.is_poisoned());
    let g = GraphBuilder::new("bad");
    let a = g.input("a", DType::F32, [4, 3]);
    let l = loss::huber_loss(&a, &g.input("b", DType::F32, [4]), 1.0, Reduction::None);
    assert!(l.is_poisoned());
    assert_eq!(l.dims(), &[4, 3]);
    assert!(g.error().unwrap().to_string().contains("`huber_loss`"));
}

/// `sum(t * r)` for a fixed random `r` in `[0.5, 1.5)`, so every element of a
/// non-scalar result counts with its own weight.
fn weighted(t: &Tensor, rng: &mut Rng) -> Tensor {
    let r = values(rng, t.dims(), 0.5, 1.5);
    (t * &t.builder().constant(tensor(t.dtype(), t.dims(), &r))).sum_all()
}

/// Checks d loss / d every f64 argument against central differences.
fn gradcheck(name: &str, loss: &Tensor, inputs: &[(&str, &HostTensor)]) {
    let model = loss.builder().build(&[("loss", loss)]).unwrap();
    let graph: &Graph = &model.graph;
    let args = model.call_args(inputs).unwrap();
    let wrt: Vec<(usize, NodeId)> = graph
        .args()
        .iter()
        .enumerate()
        .filter(|&(_, &a)| graph.node(a).ty.dtype == DType::F64)
        .map(|(i, &a)| (i, a))
        .collect();
    let loss_node = graph.outputs()[0].node;
    let ids: Vec<NodeId> = wrt.iter().map(|&(_, a)| a).collect();
    let grads = grad(graph, loss_node, &ids).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut g = grads.graph.clone();
    g.set_outputs(Vec::new());
    for &d in &grads.grads {
        g.output(d, None);
    }
    let analytic = interp::run(&g, &args).unwrap_or_else(|e| panic!("{name}: {e}"));
    let eps = 1e-6;
    let mut nonzero = 0;
    for (k, &(arg, _)) in wrt.iter().enumerate() {
        for j in 0..args[arg].numel() {
            let shifted = |delta: f64| {
                let mut v = args[arg].to_f64_vec();
                v[j] += delta;
                let mut a = args.clone();
                a[arg] = HostTensor::from_f64(args[arg].shape().clone(), v).unwrap();
                interp::run(graph, &a).unwrap()[0].get_f64(0)
            };
            let numeric = (shifted(eps) - shifted(-eps)) / (2.0 * eps);
            let a = analytic[k].get_f64(j);
            if a != 0.0 {
                nonzero += 1;
            }
            let tol = 1e-6 * (1.0 + a.abs().max(numeric.abs()));
            assert!(
                (a - numeric).abs() <= tol,
                "{name}: d/d arg{arg}[{j}]: autodiff {a}, finite differences {numeric}"
            );
        }
    }
    assert!(nonzero >= 4, "{name}: the gradients are (nearly) all zero");
}

#[test]
fn activation_gradients_match_finite_differences() {
    let mut rng = Rng::seed(8);
    // Away from the kinks at 0 and softplus' threshold, by more than the step.
    let mut xs = values(&mut rng, &[20], -5.0, 5.0);
    xs.retain(|v| v.abs() > 1e-3 && (v - 2.5).abs() > 1e-3);
    xs.extend([25.0, -25.0, 0.3, -0.3]);
    let x = HostTensor::from_f64([xs.len()], xs.clone()).unwrap();
    for (name, f, _) in activations() {
        let g = GraphBuilder::new(name);
        let y = f(&g.input("x", DType::F64, [xs.len()]));
        let l = weighted(&y, &mut rng);
        gradcheck(name, &l, &[("x", &x)]);
    }
    let g = GraphBuilder::new("erf");
    let l = weighted(&g.input("x", DType::F64, [xs.len()]).erf(), &mut rng);
    gradcheck("erf", &l, &[("x", &x)]);
}

#[test]
fn loss_gradients_match_finite_differences() {
    let mut rng = Rng::seed(9);
    let dims = [3, 4];
    // |pred - target| kept away from 0 and from the smooth-L1 / Huber switch points.
    let p = values(&mut rng, &dims, -3.0, 3.0);
    let t: Vec<f64> = p
        .iter()
        .enumerate()
        .map(|(i, v)| v + [0.31, -0.52, 1.04, -2.2, 0.9, -1.6][i % 6])
        .collect();
    let (pt, tt) = (tensor(DType::F64, &dims, &p), tensor(DType::F64, &dims, &t));
    for (name, f, _) in regression_losses() {
        for r in [Reduction::Mean, Reduction::None] {
            let g = GraphBuilder::new(name);
            let l = f(
                &g.input("p", DType::F64, dims),
                &g.input("t", DType::F64, dims),
                r,
            );
            let l = if r == Reduction::None {
                weighted(&l, &mut rng)
            } else {
                l
            };
            gradcheck(&format!("{name} {r:?}"), &l, &[("p", &pt), ("t", &tt)]);
        }
    }
    // KL: gradient in the input (log q) and a strictly positive target.
    let (n, c) = (3, 4);
    let (_, logq) = distributions(&mut rng, n, c);
    let probs: Vec<f64> = values(&mut rng, &[n, c], 0.1, 1.0);
    for log_target in [false, true] {
        let target: Vec<f64> = if log_target {
            probs.iter().map(|v| v.ln()).collect()
        } else {
            probs.clone()
        };
        let g = GraphBuilder::new("kl");
        let opts = KlDivOptions::new()
            .with_reduction(Reduction::BatchMean)
            .with_log_target(log_target);
        let l = loss::kl_div(
            &g.input("input", DType::F64, [n, c]),
            &g.input("target", DType::F64, [n, c]),
            opts,
        );
        let (it, tt) = (
            tensor(DType::F64, &[n, c], &logq),
            tensor(DType::F64, &[n, c], &target),
        );
        gradcheck("kl_div", &l, &[("input", &it), ("target", &tt)]);
    }
    // BCE on logits with both weights: gradients in the logits and the targets.
    let x = values(&mut rng, &[n, c], -4.0, 4.0);
    let tg = values(&mut rng, &[n, c], 0.0, 1.0);
    let g = GraphBuilder::new("bce");
    let opts = BceWithLogitsOptions::new()
        .with_pos_weight(&g.constant(tensor(DType::F64, &[c], &[0.5, 2.0, 3.0, 1.5])))
        .with_weight(&g.constant(tensor(
            DType::F64,
            &[n, c],
            &values(&mut rng, &[n, c], 0.5, 2.0),
        )));
    let l = loss::binary_cross_entropy_with_logits_with(
        &g.input("x", DType::F64, [n, c]),
        &g.input("t", DType::F64, [n, c]),
        &opts,
    );
    let (xt, tt) = (
        tensor(DType::F64, &[n, c], &x),
        tensor(DType::F64, &[n, c], &tg),
    );
    gradcheck("bce_with_logits", &l, &[("x", &xt), ("t", &tt)]);
    // Cross-entropy with every option: gradient in the logits.
    let logits = values(&mut rng, &[5, c], -3.0, 3.0);
    let labels = HostTensor::from_i32([5], vec![1, -100, 3, 0, 3]).unwrap();
    for r in [Reduction::Mean, Reduction::Sum] {
        let g = GraphBuilder::new("ce");
        let opts = CrossEntropyOptions::new()
            .with_weight(&g.constant(tensor(DType::F64, &[c], &[0.5, 1.5, 2.0, 0.7])))
            .with_label_smoothing(0.2)
            .with_ignore_index(-100)
            .with_reduction(r);
        let l = loss::cross_entropy_with(
            &g.input("x", DType::F64, [5, c]),
            &g.input("y", DType::I32, [5]),
            &opts,
        );
        let xt = tensor(DType::F64, &[5, c], &logits);
        gradcheck("cross_entropy_with", &l, &[("x", &xt), ("y", &labels)]);
    }
}

/// Every activation and loss in one graph, compiled, against the interpreter.
fn compiled_case(dtype: DType, n: usize, rng: &mut Rng) {
    let c = 5;
    let g = GraphBuilder::new("vocabulary");
    let x = g.input("x", dtype, [3, n]);
    let p = g.input("p", dtype, [3, n]);
    let t = g.input("t", dtype, [3, n]);
    let probs = g.input("probs", dtype, [n, c]);
    let logits = g.input("logits", dtype, [n, c]);
    let labels = g.input("labels", DType::I32, [n]);
    let mut outs: Vec<Tensor> = activations().iter().map(|(_, f, _)| f(&x)).collect();
    outs.push(x.erf());
    outs.push(x.log_softmax(0));
    for (_, f, _) in regression_losses() {
        outs.push(f(&p, &t, Reduction::None));
        outs.push(f(&p, &t, Reduction::Mean));
    }
    let logq = logits.log_softmax(-1);
    outs.push(loss::kl_div(&logq, &probs, KlDivOptions::new()));
    outs.push(loss::kl_div(
        &logq,
        &probs,
        KlDivOptions::new()
            .with_log_target(true)
            .with_reduction(Reduction::None),
    ));
    let pw = g.constant(tensor(dtype, &[n], &values(rng, &[n], 0.5, 3.0)));
    let bce = BceWithLogitsOptions::new().with_pos_weight(&pw);
    outs.push(loss::binary_cross_entropy_with_logits_with(&x, &t, &bce));
    let w = g.constant(tensor(dtype, &[c], &[0.5, 1.5, 2.0, 0.7, 1.0]));
    let ce = CrossEntropyOptions::new()
        .with_weight(&w)
        .with_label_smoothing(0.1)
        .with_ignore_index(-100);
    outs.push(loss::cross_entropy_with(&logits, &labels, &ce));
    outs.push(loss::cross_entropy_with(
        &logits,
        &labels,
        &ce.clone().with_reduction(Reduction::None),
    ));
    let refs: Vec<&Tensor> = outs.iter().collect();
    let model = g.build(&refs).unwrap();
    let probs_v: Vec<f64> = values(rng, &[n, c], 0.0, 1.0)
        .iter()
        .map(|&v| if v < 0.2 { 0.0 } else { v })
        .collect();
    let labels_v: Vec<i32> = (0..n)
        .map(|i| {
            if i % 4 == 2 {
                -100
            } else {
                rng.below(c as u64) as i32
            }
        })
        .collect();
    let inputs = [
        (
            "x",
            tensor(dtype, &[3, n], &values(rng, &[3 * n], -6.0, 6.0)),
        ),
        (
            "p",
            tensor(dtype, &[3, n], &values(rng, &[3 * n], -3.0, 3.0)),
        ),
        (
            "t",
            tensor(dtype, &[3, n], &values(rng, &[3 * n], 0.0, 1.0)),
        ),
        ("probs", tensor(dtype, &[n, c], &probs_v)),
        (
            "logits",
            tensor(dtype, &[n, c], &values(rng, &[n * c], -4.0, 4.0)),
        ),
        ("labels", HostTensor::from_i32([n], labels_v).unwrap()),
    ];
    let named: Vec<(&str, &HostTensor)> = inputs.iter().map(|(k, v)| (*k, v)).collect();
    let args = model.call_args(&named).unwrap();
    let want = interp::run(&model.graph, &args).unwrap();
    let mut exe = kiln::compile(&model.graph).unwrap();
    let got = exe.run(&args).unwrap();
    let tol = if dtype == DType::F32 { 2e-5 } else { 1e-12 };
    for (k, (a, b)) in got.iter().zip(&want).enumerate() {
        assert_eq!(a.ty(), b.ty(), "output {k}");
        assert_close(
            &format!("{dtype} n={n} output {k}"),
            &a.to_f64_vec(),
            &b.to_f64_vec(),
            tol,
        );
    }
}

#[test]
fn compiled_matches_interpreter() {
    let mut rng = Rng::seed(10);
    for n in [1, 3, 5, 7, 17] {
        for dtype in [DType::F32, DType::F64] {
            compiled_case(dtype, n, &mut rng);
        }
    }
}
