//! Values computed by the DSL's graphs (through the reference interpreter), checked
//! against direct f64 computations written out in the tests.

use kiln_frontend::prelude::*;
use kiln_ir::interp;
use kiln_testutil::near;

/// Builds `outputs` and evaluates them on the named inputs.
fn eval(g: &GraphBuilder, outputs: &[&Tensor], inputs: &[(&str, &HostTensor)]) -> Vec<Vec<f64>> {
    let model = g.build(outputs).unwrap();
    let args = model.call_args(inputs).unwrap();
    interp::run(&model.graph, &args)
        .unwrap()
        .iter()
        .map(|t| t.to_f64_vec())
        .collect()
}

fn f32s(shape: &[usize], v: &[f64]) -> HostTensor {
    HostTensor::from_f32(shape, v.iter().map(|&x| x as f32).collect()).unwrap()
}

/// Seeded values in `[lo, hi)`, never all zero.
fn random(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Vec<f64> {
    let mut rng = Rng::seed(seed);
    let n = shape.iter().product();
    (0..n).map(|_| rng.uniform_f64(lo, hi)).collect()
}

/// Rounds through f32 (what the graph sees).
fn as_f32(v: &[f64]) -> Vec<f64> {
    v.iter().map(|&x| x as f32 as f64).collect()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            near(*g, *w, tol),
            "element {i}: got {g}, want {w}\n got: {got:?}\nwant: {want:?}"
        );
    }
}

/// Softmax of each row of a row-major `[rows, cols]` matrix, in f64.
fn softmax_rows(x: &[f64], cols: usize) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|row| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
            row.iter()
                .map(move |v| (v - m).exp() / s)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn softmax_rows_sum_to_one_and_match_f64() {
    let g = GraphBuilder::new("softmax");
    let x = g.input("x", DType::F32, [5, 7]);
    let p = x.softmax(-1);
    let lp = x.log_softmax(1);
    let lse = x.logsumexp(-1, false);
    let xv = as_f32(&random(&[5, 7], -4.0, 4.0, 1));
    let out = eval(&g, &[&p, &lp, &lse], &[("x", &f32s(&[5, 7], &xv))]);
    let want = softmax_rows(&xv, 7);
    assert_close(&out[0], &want, 1e-6);
    for row in out[0].chunks(7) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-6);
    }
    let want_log: Vec<f64> = want.iter().map(|p| p.ln()).collect();
    assert_close(&out[1], &want_log, 1e-6);
    let want_lse: Vec<f64> = xv
        .chunks(7)
        .map(|r| r.iter().map(|v| v.exp()).sum::<f64>().ln())
        .collect();
    assert_close(&out[2], &want_lse, 1e-6);
}

#[test]
fn softmax_along_the_first_axis() {
    let g = GraphBuilder::new("softmax0");
    let x = g.input("x", DType::F32, [3, 2]);
    let p = x.softmax(0);
    let xv = [1.0, -1.0, 2.0, 0.0, 3.0, 1.0];
    let out = eval(&g, &[&p], &[("x", &f32s(&[3, 2], &xv))]);
    // Columns [1,2,3] and [-1,0,1] both give softmax([0,1,2]) (shift invariance).
    let s: f64 = [0.0f64, 1.0, 2.0].iter().map(|v| v.exp()).sum();
    let c: Vec<f64> = [0.0f64, 1.0, 2.0].iter().map(|v| v.exp() / s).collect();
    assert_close(&out[0], &[c[0], c[0], c[1], c[1], c[2], c[2]], 1e-6);
}

#[test]
fn softmax_is_stable_for_huge_logits() {
    let g = GraphBuilder::new("stable");
    let x = g.input("x", DType::F32, [2, 3]);
    let p = x.softmax(-1);
    let lp = x.log_softmax(-1);
    let xv = [1000.0, 1001.0, 1002.0, -1000.0, 0.0, 1000.0];
    let out = eval(&g, &[&p, &lp], &[("x", &f32s(&[2, 3], &xv))]);
    assert!(out.iter().flatten().all(|v| v.is_finite()), "{out:?}");
    // Row 0 is softmax([0,1,2]); row 1 is [e^-2000, e^-1000, 1] / (1 + ...) = [0, 0, 1].
    let s: f64 = [0.0f64, 1.0, 2.0].iter().map(|v| v.exp()).sum();
    let want = [1.0 / s, 1f64.exp() / s, 2f64.exp() / s, 0.0, 0.0, 1.0];
    assert_close(&out[0], &want, 1e-6);
    let want_log = [-s.ln(), 1.0 - s.ln(), 2.0 - s.ln(), -2000.0, -1000.0, 0.0];
    assert_close(&out[1], &want_log, 1e-6);
}

#[test]
fn mse_by_hand() {
    let g = GraphBuilder::new("mse");
    let p = g.input("p", DType::F32, [3]);
    let t = g.input("t", DType::F32, [3]);
    let l = loss::mse(&p, &t);
    let out = eval(
        &g,
        &[&l],
        &[
            ("p", &f32s(&[3], &[1.0, 2.0, 3.0])),
            ("t", &f32s(&[3], &[2.0, 4.0, 7.0])),
        ],
    );
    // Differences -1, -2, -4: (1 + 4 + 16) / 3.
    assert_close(&out[0], &[7.0], 1e-7);
}

#[test]
fn linear_regression_w1_loss_at_zero() {
    // WORKLOADS W1: x = [1,3,5], y = [2,4,6], w = b = 0 -> loss (4 + 16 + 36) / 3.
    let g = GraphBuilder::new("w1");
    let x = g.input("x", DType::F32, [3]);
    let y = g.input("y", DType::F32, [3]);
    let w = g.param("w", HostTensor::scalar(DType::F32, 0.0));
    let b = g.param("b", HostTensor::scalar(DType::F32, 0.0));
    let l = loss::mse(&(&x * &w + &b), &y);
    let xv = f32s(&[3], &[1.0, 3.0, 5.0]);
    let yv = f32s(&[3], &[2.0, 4.0, 6.0]);
    let out = eval(&g, &[&l], &[("x", &xv), ("y", &yv)]);
    assert_close(&out[0], &[56.0 / 3.0], 1e-6);
    // At w = b = 1 the fit is exact.
    let mut model = g.build(&[&l]).unwrap();
    model
        .params
        .set("w", HostTensor::scalar(DType::F32, 1.0))
        .unwrap();
    model
        .params
        .set("b", HostTensor::scalar(DType::F32, 1.0))
        .unwrap();
    let args = model.call_args(&[("x", &xv), ("y", &yv)]).unwrap();
    let out = interp::run(&model.graph, &args).unwrap();
    assert_eq!(out[0].to_f64_vec(), [0.0]);
}

#[test]
fn cross_entropy_and_nll_by_hand() {
    let g = GraphBuilder::new("ce");
    let logits = g.input("logits", DType::F32, [2, 3]);
    let labels = g.input("labels", DType::I32, [2]);
    let ce = loss::cross_entropy(&logits, &labels);
    let lv = [1.0, 2.0, 3.0, 1.0, 1.0, 1.0];
    let yv = HostTensor::from_i32([2], vec![2, 0]).unwrap();
    let out = eval(
        &g,
        &[&ce],
        &[("logits", &f32s(&[2, 3], &lv)), ("labels", &yv)],
    );
    // Row 0: log(e + e^2 + e^3) - 3; row 1: log 3.
    let e = std::f64::consts::E;
    let row0 = (e + e * e + e * e * e).ln() - 3.0;
    let want = (row0 + 3f64.ln()) / 2.0;
    assert_close(&out[0], &[want], 1e-6);

    let g = GraphBuilder::new("nll");
    let lp = g.input("lp", DType::F32, [2, 2]);
    let labels = g.input("labels", DType::I32, [2]);
    let l = loss::nll(&lp, &labels);
    let out = eval(
        &g,
        &[&l],
        &[
            ("lp", &f32s(&[2, 2], &[-0.5, -1.0, -2.0, -0.1])),
            ("labels", &HostTensor::from_i32([2], vec![1, 0]).unwrap()),
        ],
    );
    assert_close(&out[0], &[1.5], 1e-7);
}

#[test]
fn cross_entropy_on_random_batches_matches_f64() {
    let (n, c) = (16, 10);
    let g = GraphBuilder::new("ce");
    let logits = g.input("logits", DType::F32, [n, c]);
    let labels = g.input("labels", DType::I32, [n]);
    let ce = loss::cross_entropy(&logits, &labels);
    let lv = as_f32(&random(&[n, c], -5.0, 5.0, 11));
    let mut rng = Rng::seed(12);
    let ys: Vec<i32> = (0..n).map(|_| rng.below(c as u64) as i32).collect();
    let out = eval(
        &g,
        &[&ce],
        &[
            ("logits", &f32s(&[n, c], &lv)),
            ("labels", &HostTensor::from_i32([n], ys.clone()).unwrap()),
        ],
    );
    let p = softmax_rows(&lv, c);
    let want = ys
        .iter()
        .enumerate()
        .map(|(i, &y)| -p[i * c + y as usize].ln())
        .sum::<f64>()
        / n as f64;
    assert_close(&out[0], &[want], 1e-6);
}

#[test]
fn binary_cross_entropy_clamps_the_log() {
    let g = GraphBuilder::new("bce");
    let p = g.input("p", DType::F32, [4]);
    let t = g.input("t", DType::F32, [4]);
    let l = loss::binary_cross_entropy(&p, &t);
    let out = eval(
        &g,
        &[&l],
        &[
            ("p", &f32s(&[4], &[0.9, 0.2, 0.0, 1.0])),
            ("t", &f32s(&[4], &[1.0, 0.0, 1.0, 1.0])),
        ],
    );
    // -log 0.9, -log 0.8, 100 (log 0 clamped to -100), 0.
    let want = (-(0.9f32 as f64).ln() - (1.0 - 0.2f32 as f64).ln() + 100.0) / 4.0;
    assert!(out[0][0].is_finite());
    assert_close(&out[0], &[want], 1e-6);
}

#[test]
fn binary_cross_entropy_with_logits_matches_the_definition() {
    let g = GraphBuilder::new("bcel");
    let x = g.input("x", DType::F32, [5]);
    let t = g.input("t", DType::F32, [5]);
    let l = loss::binary_cross_entropy_with_logits(&x, &t);
    let xv = [2.0, -1.0, 0.0, 30.0, -30.0];
    let tv = [1.0, 0.0, 0.5, 0.0, 1.0];
    let out = eval(
        &g,
        &[&l],
        &[("x", &f32s(&[5], &xv)), ("t", &f32s(&[5], &tv))],
    );
    // -(t log σ(x) + (1-t) log(1-σ(x))) with log σ(x) = -ln(1+e^-x) and
    // log(1-σ(x)) = -ln(1+e^x), in f64.
    let want = xv
        .iter()
        .zip(&tv)
        .map(|(&x, &t)| t * (-x).exp().ln_1p() + (1.0 - t) * x.exp().ln_1p())
        .sum::<f64>()
        / 5.0;
    assert!(out[0][0].is_finite());
    assert_close(&out[0], &[want], 1e-6);
}

#[test]
fn linear_forward_matches_a_hand_matmul() {
    let (n, i, o) = (3, 4, 2);
    let g = GraphBuilder::new("linear");
    let mut rng = Rng::seed(21);
    let fc = nn::Linear::new(&g, "fc", i, o, &mut rng);
    let x = g.input("x", DType::F32, [n, i]);
    let y = fc.forward(&x);
    let model = g.build(&[&y]).unwrap();
    let w = model.params.get("fc.weight").unwrap().to_f64_vec();
    let b = model.params.get("fc.bias").unwrap().to_f64_vec();
    assert!(w.iter().all(|&v| v != 0.0) && b.iter().all(|&v| v != 0.0));
    let xv = as_f32(&random(&[n, i], -2.0, 2.0, 22));
    let out = eval(&g, &[&y], &[("x", &f32s(&[n, i], &xv))]);
    let mut want = vec![0.0; n * o];
    for r in 0..n {
        for c in 0..o {
            // W is [out, in]: y[r][c] = sum_k x[r][k] * W[c][k] + b[c].
            want[r * o + c] = (0..i).map(|k| xv[r * i + k] * w[c * i + k]).sum::<f64>() + b[c];
        }
    }
    assert_close(&out[0], &want, 1e-6);
}

#[test]
fn conv2d_layer_matches_a_hand_convolution() {
    // 2 input channels, 3 output channels, a 2×3 kernel, stride 2 along the height,
    // padding 1 along the width: every output element summed by hand.
    let (n, c, o, h, w, kh, kw) = (2, 2, 3, 5, 4, 2, 3);
    let g = GraphBuilder::new("conv");
    let mut rng = Rng::seed(23);
    let conv = nn::Conv2dConfig::new(c, o, [kh, kw])
        .with_stride([2, 1])
        .with_padding([0, 1])
        .init(&g, "conv", &mut rng);
    assert_eq!(conv.params().len(), 2);
    let x = g.input("x", DType::F32, [n, c, h, w]);
    let y = conv.forward(&x);
    let (oh, ow) = ((h - kh) / 2 + 1, w + 2 - kw + 1);
    assert_eq!(y.dims(), &[n, o, oh, ow]);
    let model = g.build(&[&y]).unwrap();
    let wv = model.params.get("conv.weight").unwrap().to_f64_vec();
    let bv = model.params.get("conv.bias").unwrap().to_f64_vec();
    // PyTorch's default bias bound: 1/sqrt(fan_in).
    let bound = 1.0 / ((c * kh * kw) as f64).sqrt();
    assert!(bv.iter().all(|&v| v != 0.0 && v.abs() <= bound));
    let xv = as_f32(&random(&[n, c, h, w], -2.0, 2.0, 24));
    let out = eval(&g, &[&y], &[("x", &f32s(&[n, c, h, w], &xv))]);
    let mut want = Vec::new();
    for b in 0..n {
        for q in 0..o {
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = bv[q];
                    for ch in 0..c {
                        for u in 0..kh {
                            for v in 0..kw {
                                // Column j + v of the padded image is j + v - 1.
                                let Some(col) = (j + v).checked_sub(1).filter(|&col| col < w)
                                else {
                                    continue;
                                };
                                let xi = ((b * c + ch) * h + 2 * i + u) * w + col;
                                acc += xv[xi] * wv[((q * c + ch) * kh + u) * kw + v];
                            }
                        }
                    }
                    want.push(acc);
                }
            }
        }
    }
    assert_close(&out[0], &want, 1e-5);
}

#[test]
fn pooling_and_flatten_modules_shape_like_pytorch() {
    let g = GraphBuilder::new("pool");
    let x = g.input("x", DType::F32, [2, 3, 9, 8]);
    let net = nn::Sequential::new()
        .add(nn::MaxPool2d::new(2))
        .add(nn::AvgPool2d::new([2, 1]))
        .add(nn::Flatten(1));
    // 9×8 → max 2×2 (floor) 4×4 → avg 2×1 2×4 → 3·2·4 features.
    assert_eq!(net.forward(&x).dims(), &[2, 24]);
    assert!(net.params().is_empty());
}

#[test]
fn matmul_variants_match_hand_products() {
    let g = GraphBuilder::new("mm");
    let a = g.input("a", DType::F32, [2, 3, 4]);
    let w = g.input("w", DType::F32, [4, 5]);
    let bb = g.input("bb", DType::F32, [2, 4, 5]);
    let v = g.input("v", DType::F32, [4]);
    let shared = a.matmul(&w); // [2,3,5]
    let batched = a.matmul(&bb); // [2,3,5]
    let mv = a.matmul(&v); // [2,3]
    let vm = v.matmul(&w); // [5]
    let av = as_f32(&random(&[2, 3, 4], -1.0, 1.0, 31));
    let wv = as_f32(&random(&[4, 5], -1.0, 1.0, 32));
    let bv = as_f32(&random(&[2, 4, 5], -1.0, 1.0, 33));
    let vv = as_f32(&random(&[4], -1.0, 1.0, 34));
    let out = eval(
        &g,
        &[&shared, &batched, &mv, &vm],
        &[
            ("a", &f32s(&[2, 3, 4], &av)),
            ("w", &f32s(&[4, 5], &wv)),
            ("bb", &f32s(&[2, 4, 5], &bv)),
            ("v", &f32s(&[4], &vv)),
        ],
    );
    let mut shared_want = vec![0.0; 30];
    let mut batched_want = vec![0.0; 30];
    let mut mv_want = vec![0.0; 6];
    for bi in 0..2 {
        for r in 0..3 {
            let row = |k: usize| av[bi * 12 + r * 4 + k];
            mv_want[bi * 3 + r] = (0..4).map(|k| row(k) * vv[k]).sum();
            for c in 0..5 {
                shared_want[bi * 15 + r * 5 + c] = (0..4).map(|k| row(k) * wv[k * 5 + c]).sum();
                batched_want[bi * 15 + r * 5 + c] =
                    (0..4).map(|k| row(k) * bv[bi * 20 + k * 5 + c]).sum();
            }
        }
    }
    let vm_want: Vec<f64> = (0..5)
        .map(|c| (0..4).map(|k| vv[k] * wv[k * 5 + c]).sum())
        .collect();
    assert_close(&out[0], &shared_want, 1e-6);
    assert_close(&out[1], &batched_want, 1e-6);
    assert_close(&out[2], &mv_want, 1e-6);
    assert_close(&out[3], &vm_want, 1e-6);
}

#[test]
fn broadcasting_arithmetic_values() {
    let g = GraphBuilder::new("bc");
    let c = g.input("c", DType::F32, [2, 1]);
    let r = g.input("r", DType::F32, [3]);
    let outer = &c * &r;
    let affine = 1.0 - &c / 4.0;
    let masked = c.gt(1.5).where_cond(&r, -1.0);
    let out = eval(
        &g,
        &[&outer, &affine, &masked],
        &[
            ("c", &f32s(&[2, 1], &[1.0, 2.0])),
            ("r", &f32s(&[3], &[3.0, 5.0, 7.0])),
        ],
    );
    assert_eq!(out[0], [3.0, 5.0, 7.0, 6.0, 10.0, 14.0]);
    assert_eq!(out[1], [0.75, 0.5]);
    assert_eq!(out[2], [-1.0, -1.0, -1.0, 3.0, 5.0, 7.0]);
}

#[test]
fn movement_values() {
    let g = GraphBuilder::new("mv");
    let x = g.input("x", DType::F32, [2, 3]);
    let t = x.t();
    let r = x.reshape([-1]);
    let s = x.slice(1, 1..);
    let c = Tensor::cat(&[&x, &(&x * 10.0)], 0).sum(&[0], false);
    let m = x.max(&[-1], false);
    let a = x.argmax(0, false);
    let xv = [1.0, 6.0, 3.0, 4.0, 5.0, 2.0];
    let out = eval(&g, &[&t, &r, &s, &c, &m, &a], &[("x", &f32s(&[2, 3], &xv))]);
    assert_eq!(out[0], [1.0, 4.0, 6.0, 5.0, 3.0, 2.0]);
    assert_eq!(out[1], xv);
    assert_eq!(out[2], [6.0, 3.0, 5.0, 2.0]);
    assert_eq!(out[3], [55.0, 121.0, 55.0]);
    assert_eq!(out[4], [6.0, 5.0]);
    assert_eq!(out[5], [1.0, 0.0, 0.0]);
}

#[test]
fn dropout_keeps_about_one_minus_p_scaled() {
    let p = 0.3;
    let g = GraphBuilder::new("dropout");
    let x = g.input("x", DType::F32, [100, 100]);
    let seed = g.input("seed", DType::I32, []);
    let a = x.dropout(p, &seed, 0);
    let b = x.dropout(p, &seed, 1);
    let xv = as_f32(&random(&[100, 100], 0.5, 1.5, 41));
    let xt = f32s(&[100, 100], &xv);
    let s1 = HostTensor::scalar(DType::I32, 1.0);
    let s2 = HostTensor::scalar(DType::I32, 2.0);
    let run = |seed: &HostTensor| eval(&g, &[&a, &b], &[("x", &xt), ("seed", seed)]);
    let out = run(&s1);
    for y in &out {
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / y.len() as f64;
        // 10,000 Bernoulli(0.7) draws: standard deviation 0.0046.
        assert!((kept - (1.0 - p)).abs() < 0.02, "kept {kept}");
        for (v, x) in y.iter().zip(&xv) {
            if *v != 0.0 {
                assert!((v - x / (1.0 - p)).abs() < 1e-5 * v.abs(), "{v} vs {x}");
            }
        }
        // The mean is preserved in expectation.
        let mean_y = y.iter().sum::<f64>() / y.len() as f64;
        let mean_x = xv.iter().sum::<f64>() / xv.len() as f64;
        assert!((mean_y / mean_x - 1.0).abs() < 0.05, "{mean_y} vs {mean_x}");
    }
    assert_ne!(out[0], out[1], "salts give independent masks");
    assert_eq!(run(&s1), out, "same seed, same masks");
    assert_ne!(run(&s2)[0], out[0], "another seed, another mask");
}

#[test]
fn dropout_edge_probabilities() {
    let g = GraphBuilder::new("dropout");
    let x = g.input("x", DType::F32, [4]);
    let seed = g.input("seed", DType::I32, []);
    let zero = x.dropout(0.0, &seed, 0);
    let all = x.dropout(1.0, &seed, 0);
    let xv = f32s(&[4], &[1.0, -2.0, 3.0, -4.0]);
    let s = HostTensor::scalar(DType::I32, 7.0);
    let out = eval(&g, &[&zero, &all], &[("x", &xv), ("seed", &s)]);
    assert_eq!(out[0], [1.0, -2.0, 3.0, -4.0]);
    assert_eq!(out[1], [0.0; 4]);
}

#[test]
fn one_hot_gather_and_scatter_values() {
    let g = GraphBuilder::new("idx");
    let table = g.input("table", DType::F32, [3, 2]);
    let ids = g.input("ids", DType::I32, [4]);
    let e = table.gather(&ids);
    let back = e.scatter_add(&ids, 3);
    let oh = ids.one_hot(3, DType::F32);
    let tv = f32s(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let iv = HostTensor::from_i32([4], vec![2, 0, 2, 1]).unwrap();
    let out = eval(&g, &[&e, &back, &oh], &[("table", &tv), ("ids", &iv)]);
    assert_eq!(out[0], [5.0, 6.0, 1.0, 2.0, 5.0, 6.0, 3.0, 4.0]);
    assert_eq!(out[1], [1.0, 2.0, 3.0, 4.0, 10.0, 12.0]);
    assert_eq!(
        out[2],
        [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    );
}

#[test]
fn conv_and_pool_values() {
    let g = GraphBuilder::new("conv");
    let x = g.input("x", DType::F32, [1, 1, 3, 3]);
    let w = g.input("w", DType::F32, [1, 1, 2, 2]);
    let c = x.conv2d(&w, 1, 0, 1);
    let padded = x.conv2d(&w, 2, 1, 1);
    let mp = x.max_pool2d(2, 1, 0);
    let ap = x.avg_pool2d(2, 1, 0);
    let xv: Vec<f64> = (1..=9).map(f64::from).collect();
    let out = eval(
        &g,
        &[&c, &padded, &mp, &ap],
        &[
            ("x", &f32s(&[1, 1, 3, 3], &xv)),
            ("w", &f32s(&[1, 1, 2, 2], &[1.0, 10.0, 100.0, 1000.0])),
        ],
    );
    // x = [[1,2,3],[4,5,6],[7,8,9]]; each output is a + 10b + 100c + 1000d of a window.
    assert_eq!(out[0], [5421.0, 6532.0, 8754.0, 9865.0]);
    // Zero padding 1, stride 2: windows at (-1,-1), (-1,1), (1,-1), (1,1).
    assert_eq!(out[1], [1000.0, 3200.0, 7040.0, 9865.0]);
    assert_eq!(out[2], [5.0, 6.0, 8.0, 9.0]);
    assert_eq!(out[3], [3.0, 4.0, 6.0, 7.0]);
}
