//! Recurrent layers, cells and the embedding against PyTorch's equations written
//! out in plain f64 loops over the parameter values the layers drew (read back
//! from the model), through the reference interpreter; padding masks against
//! each sequence run alone at its own length; PyTorch's names, shapes and
//! initialization bounds; losses with `ignore_index`; and errors for wrong
//! operands.

use kiln_frontend::prelude::*;
use kiln_ir::interp;

// ---------------------------------------------------------------------------
// The reference: PyTorch's equations in plain Rust.

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Rnn { relu: bool },
    Lstm,
    Gru,
}

impl Kind {
    fn gates(self) -> usize {
        match self {
            Kind::Rnn { .. } => 1,
            Kind::Lstm => 4,
            Kind::Gru => 3,
        }
    }
}

/// One layer's (or cell's) parameters, row-major.
struct RefLayer {
    w_ih: Vec<f64>,
    w_hh: Vec<f64>,
    b_ih: Option<Vec<f64>>,
    b_hh: Option<Vec<f64>>,
    input: usize,
}

impl RefLayer {
    /// Reads `{name}.weight_ih{suffix}` etc. from the model's parameters.
    fn read(params: &ParamStore, name: &str, suffix: &str, input: usize) -> RefLayer {
        let get = |what: &str| {
            params
                .get(&format!("{name}.{what}{suffix}"))
                .map(HostTensor::to_f64_vec)
        };
        RefLayer {
            w_ih: get("weight_ih").expect("weight_ih"),
            w_hh: get("weight_hh").expect("weight_hh"),
            b_ih: get("bias_ih"),
            b_hh: get("bias_hh"),
            input,
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `W v + b` for `W: [rows, v.len()]`.
fn affine(w: &[f64], b: Option<&Vec<f64>>, v: &[f64]) -> Vec<f64> {
    let cols = v.len();
    let rows = w.len() / cols;
    (0..rows)
        .map(|r| {
            let dot: f64 = (0..cols).map(|k| w[r * cols + k] * v[k]).sum();
            dot + b.map_or(0.0, |b| b[r])
        })
        .collect()
}

/// One step of one sequence: `(h', c')` (c unused except by the LSTM).
fn ref_cell(kind: Kind, p: &RefLayer, x: &[f64], h: &[f64], c: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = h.len();
    let gi = affine(&p.w_ih, p.b_ih.as_ref(), x);
    let gh = affine(&p.w_hh, p.b_hh.as_ref(), h);
    assert_eq!(gi.len(), kind.gates() * n);
    match kind {
        Kind::Rnn { relu } => {
            let h2 = (0..n)
                .map(|j| {
                    let a = gi[j] + gh[j];
                    if relu { a.max(0.0) } else { a.tanh() }
                })
                .collect();
            (h2, c.to_vec())
        }
        Kind::Lstm => {
            let (mut h2, mut c2) = (vec![0.0; n], vec![0.0; n]);
            for j in 0..n {
                let i = sigmoid(gi[j] + gh[j]);
                let f = sigmoid(gi[n + j] + gh[n + j]);
                let g = (gi[2 * n + j] + gh[2 * n + j]).tanh();
                let o = sigmoid(gi[3 * n + j] + gh[3 * n + j]);
                c2[j] = f * c[j] + i * g;
                h2[j] = o * c2[j].tanh();
            }
            (h2, c2)
        }
        Kind::Gru => {
            let h2 = (0..n)
                .map(|j| {
                    let r = sigmoid(gi[j] + gh[j]);
                    let z = sigmoid(gi[n + j] + gh[n + j]);
                    let nn = (gi[2 * n + j] + r * gh[2 * n + j]).tanh();
                    (1.0 - z) * nn + z * h[j]
                })
                .collect();
            (h2, c.to_vec())
        }
    }
}

/// A sequence-first problem in nested vectors: `x[t][b]`, states `[l][b]`.
struct RefOut {
    out: Vec<Vec<Vec<f64>>>,
    h: Vec<Vec<Vec<f64>>>,
    c: Vec<Vec<Vec<f64>>>,
}

/// Runs a stack over `x[t][b]` from `h0[l][b]`, `c0[l][b]`, skipping the steps
/// where `mask[t][b] == 0` (state kept, output zero).
fn ref_stack(
    kind: Kind,
    layers: &[RefLayer],
    x: &[Vec<Vec<f64>>],
    h0: &[Vec<Vec<f64>>],
    c0: &[Vec<Vec<f64>>],
    mask: Option<&[Vec<f64>]>,
) -> RefOut {
    let (steps, batch) = (x.len(), h0[0].len());
    let mut input: Vec<Vec<Vec<f64>>> = x.to_vec();
    let (mut h_n, mut c_n) = (h0.to_vec(), c0.to_vec());
    for (l, p) in layers.iter().enumerate() {
        let mut out = Vec::new();
        for (t, row) in input.iter().enumerate() {
            let mut out_t = Vec::new();
            for b in 0..batch {
                assert_eq!(row[b].len(), p.input);
                let valid = mask.is_none_or(|m| m[t][b] == 1.0);
                if valid {
                    let (h2, c2) = ref_cell(kind, p, &row[b], &h_n[l][b], &c_n[l][b]);
                    out_t.push(h2.clone());
                    h_n[l][b] = h2;
                    c_n[l][b] = c2;
                } else {
                    out_t.push(vec![0.0; h_n[l][b].len()]);
                }
            }
            out.push(out_t);
        }
        assert_eq!(out.len(), steps);
        input = out;
    }
    RefOut {
        out: input,
        h: h_n,
        c: c_n,
    }
}

// ---------------------------------------------------------------------------
// Helpers.

fn seeded(shape: &[usize], seed: u64, scale: f64) -> HostTensor {
    let mut rng = Rng::seed(seed);
    let n: usize = shape.iter().product();
    HostTensor::from_f32(
        shape,
        (0..n)
            .map(|_| rng.uniform_f64(-scale, scale) as f32)
            .collect(),
    )
    .unwrap()
}

/// A row-major `[a, b, c]` tensor as nested vectors.
fn nest3(t: &HostTensor) -> Vec<Vec<Vec<f64>>> {
    let d = t.shape().dims().to_vec();
    let v = t.to_f64_vec();
    (0..d[0])
        .map(|i| {
            (0..d[1])
                .map(|j| v[(i * d[1] + j) * d[2]..(i * d[1] + j + 1) * d[2]].to_vec())
                .collect()
        })
        .collect()
}

/// `[a][b][..]` to `[b][a][..]`.
fn swap01<T: Clone>(x: &[Vec<T>]) -> Vec<Vec<T>> {
    (0..x[0].len())
        .map(|j| x.iter().map(|row| row[j].clone()).collect())
        .collect()
}

fn flat3(x: &[Vec<Vec<f64>>]) -> Vec<f64> {
    x.iter().flatten().flatten().copied().collect()
}

fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert!(want.iter().any(|&w| w.abs() > 1e-3), "{what}: trivial data");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

fn eval(model: &Model, inputs: &[(&str, &HostTensor)]) -> Vec<HostTensor> {
    let args = model.call_args(inputs).unwrap();
    interp::run(&model.graph, &args).unwrap()
}

fn zeros3(a: usize, b: usize, c: usize) -> Vec<Vec<Vec<f64>>> {
    vec![vec![vec![0.0; c]; b]; a]
}

// ---------------------------------------------------------------------------
// Layers against the reference.

#[test]
fn lstm_two_layers_with_initial_state_matches_the_equations() {
    let (t, b, i, h, l) = (5, 3, 4, 6, 2);
    let g = GraphBuilder::new("lstm");
    let mut rng = Rng::seed(7);
    let lstm = nn::LstmConfig::new(i, h)
        .with_num_layers(l)
        .init(&g, "lstm", &mut rng);
    let x = g.input("x", DType::F32, [t, b, i]);
    let h0 = g.input("h0", DType::F32, [l, b, h]);
    let c0 = g.input("c0", DType::F32, [l, b, h]);
    let (out, (h_n, c_n)) = lstm.forward_seq(&x, Some((&h0, &c0)), None);
    assert_eq!(out.dims(), &[t, b, h]);
    assert_eq!(h_n.dims(), &[l, b, h]);
    let model = g.build(&[&out, &h_n, &c_n]).unwrap();

    let (xv, h0v, c0v) = (
        seeded(&[t, b, i], 1, 1.5),
        seeded(&[l, b, h], 2, 0.8),
        seeded(&[l, b, h], 3, 0.8),
    );
    let got = eval(&model, &[("x", &xv), ("h0", &h0v), ("c0", &c0v)]);
    let layers: Vec<RefLayer> = (0..l)
        .map(|k| RefLayer::read(&model.params, "lstm", &format!("_l{k}"), [i, h][k.min(1)]))
        .collect();
    let want = ref_stack(
        Kind::Lstm,
        &layers,
        &nest3(&xv),
        &nest3(&h0v),
        &nest3(&c0v),
        None,
    );
    assert_close("output", &got[0].to_f64_vec(), &flat3(&want.out), 1e-5);
    assert_close("h_n", &got[1].to_f64_vec(), &flat3(&want.h), 1e-5);
    assert_close("c_n", &got[2].to_f64_vec(), &flat3(&want.c), 1e-5);
}

#[test]
fn gru_batch_first_with_a_mask_matches_the_equations() {
    let (t, b, i, h, l) = (6, 3, 2, 5, 2);
    let g = GraphBuilder::new("gru");
    let mut rng = Rng::seed(8);
    let gru = nn::GruConfig::new(i, h)
        .with_num_layers(l)
        .with_batch_first(true)
        .init(&g, "gru", &mut rng);
    let x = g.input("x", DType::F32, [b, t, i]);
    let lengths = g.input("lengths", DType::I32, [b]);
    let mask = nn::sequence_mask(&lengths, t, DType::F32).t();
    let (out, h_n) = gru.forward_seq(&x, None, Some(&mask));
    assert_eq!(out.dims(), &[b, t, h]);
    let model = g.build(&[&out, &h_n, &mask]).unwrap();

    let xv = seeded(&[b, t, i], 4, 2.0);
    let lens = [6, 2, 4];
    let lv = HostTensor::from_i32([b], lens.to_vec()).unwrap();
    let got = eval(&model, &[("x", &xv), ("lengths", &lv)]);
    let mask_t: Vec<Vec<f64>> = (0..t)
        .map(|s| lens.iter().map(|&n| f64::from(s < n as usize)).collect())
        .collect();
    assert_eq!(got[2].to_f64_vec(), flat_mask_batch_first(&mask_t));
    let layers: Vec<RefLayer> = (0..l)
        .map(|k| RefLayer::read(&model.params, "gru", &format!("_l{k}"), [i, h][k.min(1)]))
        .collect();
    let want = ref_stack(
        Kind::Gru,
        &layers,
        &swap01(&nest3(&xv)),
        &zeros3(l, b, h),
        &zeros3(l, b, h),
        Some(&mask_t),
    );
    assert_close(
        "output",
        &got[0].to_f64_vec(),
        &flat3(&swap01(&want.out)),
        1e-5,
    );
    assert_close("h_n", &got[1].to_f64_vec(), &flat3(&want.h), 1e-5);
    // Padded outputs are exactly zero.
    let o = got[0].to_f64_vec();
    assert!(o[(t + 2) * h..(t + 3) * h].iter().all(|&v| v == 0.0));
}

fn flat_mask_batch_first(mask_t: &[Vec<f64>]) -> Vec<f64> {
    swap01(mask_t).into_iter().flatten().collect()
}

#[test]
fn rnn_tanh_and_relu_without_bias_match_the_equations() {
    for (relu, bias, layers_n) in [(false, true, 2), (true, false, 1), (true, true, 3)] {
        let (t, b, i, h) = (4, 2, 3, 4);
        let g = GraphBuilder::new("rnn");
        let mut rng = Rng::seed(9);
        let act = if relu {
            nn::Nonlinearity::Relu
        } else {
            nn::Nonlinearity::Tanh
        };
        let rnn = nn::RnnConfig::new(i, h)
            .with_num_layers(layers_n)
            .with_nonlinearity(act)
            .with_bias(bias)
            .init(&g, "rnn", &mut rng);
        assert_eq!(rnn.params().len(), layers_n * if bias { 4 } else { 2 });
        let x = g.input("x", DType::F32, [t, b, i]);
        let h0 = g.input("h0", DType::F32, [layers_n, b, h]);
        let (out, h_n) = rnn.forward_seq(&x, Some(&h0), None);
        let model = g.build(&[&out, &h_n]).unwrap();
        let (xv, h0v) = (
            seeded(&[t, b, i], 5, 2.0),
            seeded(&[layers_n, b, h], 6, 1.0),
        );
        let got = eval(&model, &[("x", &xv), ("h0", &h0v)]);
        let layers: Vec<RefLayer> = (0..layers_n)
            .map(|k| RefLayer::read(&model.params, "rnn", &format!("_l{k}"), [i, h][k.min(1)]))
            .collect();
        let want = ref_stack(
            Kind::Rnn { relu },
            &layers,
            &nest3(&xv),
            &nest3(&h0v),
            &nest3(&h0v),
            None,
        );
        assert_close("output", &got[0].to_f64_vec(), &flat3(&want.out), 1e-5);
        assert_close("h_n", &got[1].to_f64_vec(), &flat3(&want.h), 1e-5);
        if relu {
            assert!(got[0].to_f64_vec().iter().all(|&v| v >= 0.0));
        }
    }
}

/// A padded batch gives each sequence what running it alone at its own length
/// gives (the final state at its last real step), and zeros after it.
#[test]
fn masked_lstm_equals_each_sequence_run_alone() {
    let (t, b, i, h, l) = (5, 3, 2, 3, 2);
    let lens = [3usize, 5, 1];
    let xv = seeded(&[t, b, i], 11, 1.0);
    let h0v = seeded(&[l, b, h], 12, 0.5);
    let c0v = seeded(&[l, b, h], 13, 0.5);
    let run = |steps: usize,
               batch: usize,
               x: HostTensor,
               h0: HostTensor,
               c0: HostTensor,
               mask: Option<HostTensor>| {
        let g = GraphBuilder::new("lstm");
        let lstm =
            nn::LstmConfig::new(i, h)
                .with_num_layers(l)
                .init(&g, "lstm", &mut Rng::seed(21));
        let xs = g.input("x", DType::F32, [steps, batch, i]);
        let hs = g.input("h0", DType::F32, [l, batch, h]);
        let cs = g.input("c0", DType::F32, [l, batch, h]);
        let m = mask
            .as_ref()
            .map(|_| g.input("mask", DType::F32, [steps, batch]));
        let (out, (h_n, c_n)) = lstm.forward_seq(&xs, Some((&hs, &cs)), m.as_ref());
        let model = g.build(&[&out, &h_n, &c_n]).unwrap();
        let mut inputs = vec![("x", &x), ("h0", &h0), ("c0", &c0)];
        if let Some(m) = &mask {
            inputs.push(("mask", m));
        }
        eval(&model, &inputs)
    };
    let mask: Vec<f32> = (0..t)
        .flat_map(|s| lens.iter().map(move |&n| if s < n { 1.0 } else { 0.0 }))
        .collect();
    let padded = run(
        t,
        b,
        xv.clone(),
        h0v.clone(),
        c0v.clone(),
        Some(HostTensor::from_f32([t, b], mask).unwrap()),
    );
    let (x3, h3, c3) = (nest3(&xv), nest3(&h0v), nest3(&c0v));
    let (out, hn, cn) = (nest3(&padded[0]), nest3(&padded[1]), nest3(&padded[2]));
    for (seq, &n) in lens.iter().enumerate() {
        let one = |v: &[Vec<Vec<f64>>], rows: usize| -> HostTensor {
            let data: Vec<f32> = v[..rows]
                .iter()
                .flat_map(|r| r[seq].iter().map(|&x| x as f32))
                .collect();
            let d = v[0][seq].len();
            HostTensor::from_f32([rows, 1, d], data).unwrap()
        };
        let alone = run(n, 1, one(&x3, n), one(&h3, l), one(&c3, l), None);
        let alone_out = alone[0].to_f64_vec();
        for s in 0..t {
            let got = &out[s][seq];
            if s < n {
                assert_close("output", got, &alone_out[s * h..(s + 1) * h], 1e-6);
            } else {
                assert!(got.iter().all(|&v| v == 0.0), "padded output {got:?}");
            }
        }
        let (ah, ac) = (nest3(&alone[1]), nest3(&alone[2]));
        for k in 0..l {
            assert_close("h_n", &hn[k][seq], &ah[k][0], 1e-6);
            assert_close("c_n", &cn[k][seq], &ac[k][0], 1e-6);
        }
    }
}

#[test]
fn cells_match_the_equations_and_the_one_step_layers() {
    let (b, i, h) = (3, 4, 5);
    let g = GraphBuilder::new("cells");
    let mut rng = Rng::seed(30);
    let lstm = nn::LstmCell::new(&g, "lstm", i, h, &mut rng);
    let gru = nn::GruCell::new(&g, "gru", i, h, &mut rng);
    let rnn = nn::RnnCellConfig::new(i, h)
        .with_nonlinearity(nn::Nonlinearity::Relu)
        .with_bias(false)
        .init(&g, "rnn", &mut rng);
    let x = g.input("x", DType::F32, [b, i]);
    let h0 = g.input("h0", DType::F32, [b, h]);
    let c0 = g.input("c0", DType::F32, [b, h]);
    let (lh, lc) = lstm.forward(&x, (&h0, &c0));
    let (lh2, lc2) = lstm.forward(&x, (&lh, &lc));
    let gh = gru.forward(&x, &h0);
    let rh = rnn.forward(&x, &h0);
    let model = g.build(&[&lh, &lc, &lh2, &lc2, &gh, &rh]).unwrap();
    let names: Vec<&str> = model.params.names().collect();
    assert_eq!(
        names,
        [
            "lstm.weight_ih",
            "lstm.weight_hh",
            "lstm.bias_ih",
            "lstm.bias_hh",
            "gru.weight_ih",
            "gru.weight_hh",
            "gru.bias_ih",
            "gru.bias_hh",
            "rnn.weight_ih",
            "rnn.weight_hh"
        ]
    );
    let (xv, h0v, c0v) = (
        seeded(&[b, i], 31, 2.0),
        seeded(&[b, h], 32, 1.0),
        seeded(&[b, h], 33, 1.0),
    );
    let got = eval(&model, &[("x", &xv), ("h0", &h0v), ("c0", &c0v)]);
    let rows = |t: &HostTensor| -> Vec<Vec<f64>> {
        t.to_f64_vec()
            .chunks(t.shape().dims()[1])
            .map(<[f64]>::to_vec)
            .collect()
    };
    let (xr, hr, cr) = (rows(&xv), rows(&h0v), rows(&c0v));
    let pl = RefLayer::read(&model.params, "lstm", "", i);
    let pg = RefLayer::read(&model.params, "gru", "", i);
    let pr = RefLayer::read(&model.params, "rnn", "", i);
    let mut want: Vec<Vec<f64>> = vec![Vec::new(); 6];
    for s in 0..b {
        let (h1, c1) = ref_cell(Kind::Lstm, &pl, &xr[s], &hr[s], &cr[s]);
        let (h2, c2) = ref_cell(Kind::Lstm, &pl, &xr[s], &h1, &c1);
        let (g1, _) = ref_cell(Kind::Gru, &pg, &xr[s], &hr[s], &cr[s]);
        let (r1, _) = ref_cell(Kind::Rnn { relu: true }, &pr, &xr[s], &hr[s], &cr[s]);
        for (k, v) in [h1, c1, h2, c2, g1, r1].into_iter().enumerate() {
            want[k].extend(v);
        }
    }
    for (k, what) in ["lstm h", "lstm c", "lstm h2", "lstm c2", "gru h", "rnn h"]
        .iter()
        .enumerate()
    {
        assert_close(what, &got[k].to_f64_vec(), &want[k], 1e-5);
    }
}

// ---------------------------------------------------------------------------
// PyTorch's names, shapes and initialization.

#[test]
fn parameters_have_pytorch_names_shapes_and_bounds() {
    let g = GraphBuilder::new("names");
    let mut rng = Rng::seed(40);
    let (i, h) = (7, 16);
    nn::LstmConfig::new(i, h)
        .with_num_layers(2)
        .init(&g, "lstm", &mut rng);
    nn::GruConfig::new(i, h)
        .with_bias(false)
        .init(&g, "gru", &mut rng);
    nn::Rnn::new(&g, "rnn", i, h, &mut rng);
    let embed = nn::EmbeddingConfig::new(300, 20)
        .with_padding_idx(3)
        .init(&g, "embed", &mut rng);
    let x = g.input("x", DType::I32, [2]);
    let model = g.build(&[&embed.forward(&x)]).unwrap();
    let got: Vec<(String, Vec<usize>)> = model
        .params
        .iter()
        .map(|(n, v)| (n.to_string(), v.shape().dims().to_vec()))
        .collect();
    let want: Vec<(&str, Vec<usize>)> = vec![
        ("lstm.weight_ih_l0", vec![4 * h, i]),
        ("lstm.weight_hh_l0", vec![4 * h, h]),
        ("lstm.bias_ih_l0", vec![4 * h]),
        ("lstm.bias_hh_l0", vec![4 * h]),
        ("lstm.weight_ih_l1", vec![4 * h, h]),
        ("lstm.weight_hh_l1", vec![4 * h, h]),
        ("lstm.bias_ih_l1", vec![4 * h]),
        ("lstm.bias_hh_l1", vec![4 * h]),
        ("gru.weight_ih_l0", vec![3 * h, i]),
        ("gru.weight_hh_l0", vec![3 * h, h]),
        ("rnn.weight_ih_l0", vec![h, i]),
        ("rnn.weight_hh_l0", vec![h, h]),
        ("rnn.bias_ih_l0", vec![h]),
        ("rnn.bias_hh_l0", vec![h]),
        ("embed.weight", vec![300, 20]),
    ];
    let want: Vec<(String, Vec<usize>)> =
        want.into_iter().map(|(n, d)| (n.to_string(), d)).collect();
    assert_eq!(got, want);

    // U(-1/sqrt(H), 1/sqrt(H)) for every recurrent tensor, filling the range.
    let bound = 1.0 / (h as f64).sqrt();
    for (name, value) in model.params.iter().filter(|(n, _)| !n.starts_with("embed")) {
        let v = value.to_f64_vec();
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        assert!(lo >= -bound && hi <= bound, "{name}: [{lo}, {hi}]");
        assert!(
            lo < -0.8 * bound && hi > 0.8 * bound,
            "{name}: [{lo}, {hi}]"
        );
    }
    // N(0, 1) for the embedding, its padding row zero.
    let w = model.params.get("embed.weight").unwrap().to_f64_vec();
    assert!(w[60..80].iter().all(|&x| x == 0.0));
    let n = w.len() as f64;
    let mean = w.iter().sum::<f64>() / n;
    let std = (w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!(
        mean.abs() < 0.05 && (std - 1.0).abs() < 0.05,
        "mean {mean}, std {std}"
    );
}

#[test]
fn embedding_looks_up_rows_padding_included() {
    let g = GraphBuilder::new("embed");
    let mut rng = Rng::seed(41);
    let embed = nn::EmbeddingConfig::new(5, 3)
        .with_padding_idx(1)
        .init(&g, "embed", &mut rng);
    let ids = g.input("ids", DType::I32, [2, 3]);
    let y = embed.forward(&ids);
    assert_eq!(y.dims(), &[2, 3, 3]);
    let mut model = g.build(&[&y]).unwrap();
    // A loaded, non-zero padding row is returned as it is (as in PyTorch).
    let table = seeded(&[5, 3], 42, 1.0);
    model.params.set("embed.weight", table.clone()).unwrap();
    let idv = HostTensor::from_i32([2, 3], vec![4, 1, 0, 2, 2, 1]).unwrap();
    let got = eval(&model, &[("ids", &idv)])[0].to_f64_vec();
    let t = table.to_f64_vec();
    let want: Vec<f64> = [4, 1, 0, 2, 2, 1]
        .iter()
        .flat_map(|&r| t[r * 3..r * 3 + 3].to_vec())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn sequence_mask_marks_the_steps_before_each_length() {
    let g = GraphBuilder::new("mask");
    let lengths = g.input("lengths", DType::I32, [4]);
    let m = nn::sequence_mask(&lengths, 3, DType::F64);
    let model = g.build(&[&m]).unwrap();
    let lv = HostTensor::from_i32([4], vec![0, 3, 1, 2]).unwrap();
    let got = eval(&model, &[("lengths", &lv)]);
    assert_eq!(got[0].dtype(), DType::F64);
    #[rustfmt::skip]
    let want = [
        0.0, 1.0, 1.0, 1.0,
        0.0, 1.0, 0.0, 1.0,
        0.0, 1.0, 0.0, 0.0,
    ];
    assert_eq!(got[0].to_f64_vec(), want);
}

// ---------------------------------------------------------------------------
// Losses with ignore_index.

#[test]
fn losses_with_ignore_index_average_over_the_kept_labels() {
    let (n, c) = (5, 4);
    let g = GraphBuilder::new("losses");
    let logits = g.input("logits", DType::F64, [n, c]);
    let padded = g.input("padded", DType::I32, [n]);
    let tags = g.input("tags", DType::I32, [n]);
    let ce = loss::cross_entropy_ignore_index(&logits, &padded, loss::IGNORE_INDEX);
    // Ignoring a real class (2).
    let nll = loss::nll_ignore_index(&logits.log_softmax(-1), &tags, 2);
    // Nothing ignored: the plain loss.
    let all = loss::nll_ignore_index(&logits.log_softmax(-1), &tags, -1);
    let plain = loss::cross_entropy(&logits, &tags);
    let model = g.build(&[&ce, &nll, &all, &plain]).unwrap();
    let mut rng = Rng::seed(50);
    let lv: Vec<f64> = (0..n * c).map(|_| rng.uniform_f64(-3.0, 3.0)).collect();
    let padded_v = [3, -100, 0, 2, -100];
    let tags_v = [3, 1, 2, 0, 2];
    let got = eval(
        &model,
        &[
            ("logits", &HostTensor::from_f64([n, c], lv.clone()).unwrap()),
            (
                "padded",
                &HostTensor::from_i32([n], padded_v.to_vec()).unwrap(),
            ),
            ("tags", &HostTensor::from_i32([n], tags_v.to_vec()).unwrap()),
        ],
    );
    let neg_log_p = |i: usize, k: usize| {
        let row = &lv[i * c..(i + 1) * c];
        let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
        lse - row[k]
    };
    let want = [
        (neg_log_p(0, 3) + neg_log_p(2, 0) + neg_log_p(3, 2)) / 3.0,
        (neg_log_p(0, 3) + neg_log_p(1, 1) + neg_log_p(3, 0)) / 3.0,
        (0..n)
            .map(|i| neg_log_p(i, tags_v[i] as usize))
            .sum::<f64>()
            / n as f64,
    ];
    for (k, w) in want.iter().enumerate() {
        let v = got[k].get_f64(0);
        assert!((v - w).abs() < 1e-12, "loss {k}: {v} vs {w}");
    }
    assert!((got[3].get_f64(0) - want[2]).abs() < 1e-12);
}

// ---------------------------------------------------------------------------
// Errors.

/// `(op, line)` of every error recorded in `g`.
fn errors(g: &GraphBuilder) -> Vec<(String, u32)> {
    g.errors()
        .iter()
        .map(|e| {
            assert_eq!(e.location.file(), file!(), "{e}");
            (e.op.clone(), e.location.line())
        })
        .collect()
}

#[test]
fn wrong_operands_are_reported_at_the_call() {
    let g = GraphBuilder::new("bad");
    let mut rng = Rng::seed(60);
    let lstm = nn::LstmConfig::new(3, 4)
        .with_num_layers(2)
        .init(&g, "lstm", &mut rng);
    let gru = nn::GruConfig::new(3, 4)
        .with_batch_first(true)
        .init(&g, "gru", &mut rng);
    let cell = nn::LstmCell::new(&g, "cell", 3, 4, &mut rng);
    let x = g.input("x", DType::F32, [5, 2, 3]);
    let msgs =
        |from: usize| -> Vec<String> { g.errors()[from..].iter().map(|e| e.to_string()).collect() };

    let (flat, wide, x64) = (
        g.input("flat", DType::F32, [5, 3]),
        g.input("wide", DType::F32, [5, 2, 7]),
        g.input("x64", DType::F64, [5, 2, 3]),
    );
    let h0 = g.input("h0", DType::F32, [1, 2, 4]); // one layer, not two
    // x is [batch 5, seq 2, 3] for the batch-first gru, the mask [seq, batch].
    let m = g.input("m", DType::F32, [2, 5]);
    let (z24, z34, z23) = (g.zeros([2, 4]), g.zeros([3, 4]), g.zeros([2, 3]));

    let (rank2, l1) = (lstm.forward(&flat), line!());
    let (wide, l2) = (lstm.forward(&wide), line!());
    let ((out, (h, c)), l3) = (lstm.forward_seq(&x, Some((&h0, &h0)), None), line!());
    let ((gout, gh), l4) = (gru.forward_seq(&x, None, Some(&m)), line!());
    let (f64x, l5) = (lstm.forward(&x64), line!());
    let ((ch, _), l6) = (cell.forward(&x, (&z24, &z24)), line!());
    let (_, l7) = (cell.forward(&z23, (&z24, &z34)), line!());
    let want = vec![
        ("lstm".to_string(), l1),
        ("lstm".to_string(), l2),
        ("lstm".to_string(), l3),
        ("gru".to_string(), l4),
        ("lstm".to_string(), l5),
        ("lstm_cell".to_string(), l6),
        ("lstm_cell".to_string(), l7),
    ];
    assert_eq!(errors(&g), want);
    let m = msgs(0);
    assert!(
        m[0].contains("[seq, batch, input_size] with input_size 3"),
        "{}",
        m[0]
    );
    assert!(m[1].contains("f32[5,2,7]"), "{}", m[1]);
    assert!(
        m[2].contains("[2, 2, 4] (num_layers, batch, hidden_size)"),
        "{}",
        m[2]
    );
    assert!(m[3].contains("[5, 2] (batch, seq)"), "{}", m[3]);
    assert!(m[4].contains("parameters' dtype f32"), "{}", m[4]);
    assert!(m[5].contains("[batch, 3]"), "{}", m[5]);
    assert!(m[6].contains("[2, 4]"), "{}", m[6]);
    // Poisoned results keep the types the call would have had.
    for t in [&rank2, &wide, &out, &h, &c, &gout, &gh, &f64x, &ch] {
        assert!(t.is_poisoned());
    }
    assert_eq!(out.dims(), &[5, 2, 4]);
    assert_eq!(h.dims(), &[2, 2, 4]);
    assert_eq!(gh.dims(), &[1, 5, 4]);
    // Only the root causes: using the poisoned results records nothing more.
    let n = g.errors().len();
    let _ = (&out + 1.0).sum_all() + h.sum_all();
    assert_eq!(g.errors().len(), n);
    assert!(g.build(&[&out]).is_err());
}

#[test]
fn bad_configurations_and_ids_are_reported_at_the_call() {
    let g = GraphBuilder::new("bad");
    let mut rng = Rng::seed(61);
    let no_layers = nn::LstmConfig::new(3, 4).with_num_layers(0);
    let integer = nn::GruConfig::new(3, 4).with_dtype(DType::I32);
    let pad_out = nn::EmbeddingConfig::new(4, 2).with_padding_idx(4);
    let ok = nn::Embedding::new(&g, "d", 4, 2, &mut rng);
    let (f_ids, f_lens) = (
        g.input("ids", DType::F32, [3]),
        g.input("lens", DType::F32, [3]),
    );
    let logits = g.input("logits", DType::F32, [3, 5]);
    let (y4, zf) = (g.input("y", DType::I32, [4]), g.input("z", DType::F32, [3]));
    let errors_before = g.errors().len();
    assert_eq!(errors_before, 0);

    let (_, l1) = (no_layers.init(&g, "a", &mut rng), line!());
    let (_, l2) = (integer.init(&g, "b", &mut rng), line!());
    let (e, l3) = (pad_out.init(&g, "c", &mut rng), line!());
    let (_, l4) = (ok.forward(&f_ids), line!());
    let (_, l5) = (nn::sequence_mask(&f_lens, 4, DType::F32), line!());
    let (_, l6) = (loss::nll_ignore_index(&logits, &y4, -100), line!());
    let (_, l7) = (loss::cross_entropy_ignore_index(&logits, &zf, 0), line!());
    assert!(e.weight.is_poisoned());
    assert_eq!(
        errors(&g),
        vec![
            ("lstm".to_string(), l1),
            ("gru".to_string(), l2),
            ("embedding".to_string(), l3),
            ("embedding".to_string(), l4),
            ("sequence_mask".to_string(), l5),
            ("nll_ignore_index".to_string(), l6),
            ("cross_entropy_ignore_index".to_string(), l7),
        ]
    );
    let msgs: Vec<String> = g.errors().iter().map(|e| e.to_string()).collect();
    assert!(
        msgs[0].contains("num_layers must be at least 1"),
        "{}",
        msgs[0]
    );
    assert!(
        msgs[2].contains("padding_idx 4 is outside a table of 4 rows"),
        "{}",
        msgs[2]
    );
    assert!(msgs[3].contains("ids must be i32"), "{}", msgs[3]);
}
