//! Recurrent layers end to end: gradients of every layer (f64, through the
//! interpreter) against central finite differences, with several layers, with and
//! without an initial state, with a padding mask; and a small tagger (embedding
//! with a padding row, LSTM over padded sentences, linear read-out, NLL ignoring
//! the padding) trained compiled and interpreted to the same falling losses,
//! its padding row untouched.

use kiln::ir::{DType, Graph, HostTensor, NodeId, interp};
use kiln::passes::grad;
use kiln::prelude::*;

/// Seeded f64 values uniform in `[-scale, scale)`, never all zero.
fn values(rng: &mut Rng, dims: &[usize], scale: f64) -> HostTensor {
    let n = dims.iter().product();
    HostTensor::from_f64(
        dims,
        (0..n).map(|_| rng.uniform_f64(-scale, scale)).collect(),
    )
    .unwrap()
}

/// `sum(t * r)` for a fixed random `r` in `[0.5, 1.5)`: every element counts with
/// its own weight (a plain sum would hide permuted gradients).
fn weighted(t: &Tensor, rng: &mut Rng) -> Tensor {
    let n = t.numel();
    let r = HostTensor::from_f64(
        t.dims(),
        (0..n).map(|_| rng.uniform_f64(0.5, 1.5)).collect(),
    )
    .unwrap();
    (t * &t.builder().constant(r)).sum_all()
}

/// The interpreter's value of the graph's first output.
fn loss_value(graph: &Graph, args: &[HostTensor]) -> f64 {
    interp::run(graph, args).unwrap()[0].get_f64(0)
}

/// Checks d loss / d every f64 argument of the model (parameters and inputs, but
/// not `mask`) against central differences. `inputs` are the values of the data
/// inputs by name.
fn gradcheck(name: &str, loss: &Tensor, inputs: &[(&str, HostTensor)]) {
    let model = loss.builder().build(&[("loss", loss)]).unwrap();
    let graph = &model.graph;
    let named: Vec<(&str, &HostTensor)> = inputs.iter().map(|(n, v)| (*n, v)).collect();
    let args = model.call_args(&named).unwrap();
    let wrt: Vec<(usize, NodeId)> = graph
        .args()
        .iter()
        .enumerate()
        .filter(|&(_, &a)| {
            let node = graph.node(a);
            node.ty.dtype == DType::F64 && node.name.as_deref() != Some("mask")
        })
        .map(|(i, &a)| (i, a))
        .collect();
    assert!(wrt.len() >= 3, "{name}: too few arguments to check");
    let loss_node = graph.outputs()[0].node;
    let ids: Vec<NodeId> = wrt.iter().map(|&(_, a)| a).collect();
    let grads = grad(graph, loss_node, &ids).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut g = grads.graph.clone();
    g.set_outputs(Vec::new());
    for &d in &grads.grads {
        g.output(d, None);
    }
    let analytic = interp::run(&g, &args).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut rng = Rng::seed(99);
    let eps = 1e-6;
    let mut nonzero = 0;
    for (k, &(arg, node)) in wrt.iter().enumerate() {
        let what = graph.node(node).name.clone().unwrap_or_default();
        let n = args[arg].numel();
        let picks: Vec<usize> = if n <= 48 {
            (0..n).collect()
        } else {
            (0..48).map(|_| rng.below(n as u64) as usize).collect()
        };
        for j in picks {
            let shifted = |delta: f64| {
                let mut v = args[arg].to_f64_vec();
                v[j] += delta;
                let mut a = args.clone();
                a[arg] = HostTensor::from_f64(args[arg].shape().clone(), v).unwrap();
                loss_value(graph, &a)
            };
            let numeric = (shifted(eps) - shifted(-eps)) / (2.0 * eps);
            let a = analytic[k].get_f64(j);
            if a != 0.0 {
                nonzero += 1;
            }
            let tol = 1e-6 * (1.0 + a.abs().max(numeric.abs()));
            assert!(
                (a - numeric).abs() <= tol,
                "{name}: d loss / d {what}[{j}]: autodiff {a}, finite differences {numeric}"
            );
        }
    }
    assert!(nonzero > 20, "{name}: the gradients are (nearly) all zero");
}

/// Sizes of the gradient checks: seq, batch, input, hidden.
const T: usize = 4;
const B: usize = 2;
const I: usize = 3;
const H: usize = 3;

/// A padding mask `[T, B]` with lengths 4 and 2 (in `layout` order).
fn mask_values(batch_first: bool) -> HostTensor {
    let lens = [4, 2];
    let at = |t: usize, b: usize| if t < lens[b] { 1.0 } else { 0.0 };
    let v: Vec<f64> = if batch_first {
        (0..B).flat_map(|b| (0..T).map(move |t| at(t, b))).collect()
    } else {
        (0..T).flat_map(|t| (0..B).map(move |b| at(t, b))).collect()
    };
    let dims = if batch_first { [B, T] } else { [T, B] };
    HostTensor::from_f64(dims, v).unwrap()
}

/// One gradient check of a multi-step layer: `layers` stacked, an initial state
/// input or not, a mask or not, batch-first or not.
fn check_layer(kind: &str, layers: usize, with_state: bool, with_mask: bool, batch_first: bool) {
    let name = format!(
        "{kind} layers={layers} state={with_state} mask={with_mask} batch_first={batch_first}"
    );
    let g = GraphBuilder::new("grad");
    let mut rng = Rng::seed(layers as u64 * 10 + u64::from(with_state) * 2 + u64::from(with_mask));
    let x_dims = if batch_first { [B, T, I] } else { [T, B, I] };
    let x = g.input("x", DType::F64, x_dims);
    let mut inputs = vec![("x", values(&mut rng, &x_dims, 1.5))];
    let h0 = with_state.then(|| {
        inputs.push(("h0", values(&mut rng, &[layers, B, H], 0.8)));
        g.input("h0", DType::F64, [layers, B, H])
    });
    let c0 = (with_state && kind == "lstm").then(|| {
        inputs.push(("c0", values(&mut rng, &[layers, B, H], 0.8)));
        g.input("c0", DType::F64, [layers, B, H])
    });
    let mask = with_mask.then(|| {
        inputs.push(("mask", mask_values(batch_first)));
        g.input(
            "mask",
            DType::F64,
            if batch_first { [B, T] } else { [T, B] },
        )
    });
    let (out, states) = match kind {
        "lstm" => {
            let lstm = nn::LstmConfig::new(I, H)
                .with_num_layers(layers)
                .with_batch_first(batch_first)
                .with_dtype(DType::F64)
                .init(&g, "lstm", &mut rng);
            let state = h0.as_ref().zip(c0.as_ref());
            let (out, (h, c)) = lstm.forward_seq(&x, state, mask.as_ref());
            (out, vec![h, c])
        }
        "gru" => {
            let gru = nn::GruConfig::new(I, H)
                .with_num_layers(layers)
                .with_batch_first(batch_first)
                .with_dtype(DType::F64)
                .init(&g, "gru", &mut rng);
            let (out, h) = gru.forward_seq(&x, h0.as_ref(), mask.as_ref());
            (out, vec![h])
        }
        _ => {
            let rnn = nn::RnnConfig::new(I, H)
                .with_num_layers(layers)
                .with_batch_first(batch_first)
                .with_nonlinearity(if kind == "rnn_relu" {
                    nn::Nonlinearity::Relu
                } else {
                    nn::Nonlinearity::Tanh
                })
                .with_dtype(DType::F64)
                .init(&g, "rnn", &mut rng);
            let (out, h) = rnn.forward_seq(&x, h0.as_ref(), mask.as_ref());
            (out, vec![h])
        }
    };
    let mut loss = weighted(&out, &mut rng);
    for s in &states {
        loss = loss + weighted(s, &mut rng);
    }
    gradcheck(&name, &loss, &inputs);
}

#[test]
fn lstm_gradients_match_finite_differences() {
    check_layer("lstm", 1, false, false, false);
    check_layer("lstm", 2, true, false, false);
    check_layer("lstm", 2, true, true, false);
    check_layer("lstm", 1, false, true, true);
}

#[test]
fn gru_gradients_match_finite_differences() {
    check_layer("gru", 1, false, false, false);
    check_layer("gru", 2, true, false, true);
    check_layer("gru", 2, true, true, false);
}

#[test]
fn rnn_gradients_match_finite_differences() {
    check_layer("rnn", 2, true, true, false);
    check_layer("rnn", 1, false, false, true);
    check_layer("rnn_relu", 2, true, false, false);
}

#[test]
fn cell_and_embedding_gradients_match_finite_differences() {
    let g = GraphBuilder::new("cells");
    let mut rng = Rng::seed(5);
    let lstm = nn::LstmCellConfig::new(I, H)
        .with_dtype(DType::F64)
        .init(&g, "lstm", &mut rng);
    let gru = nn::GruCellConfig::new(H, H)
        .with_dtype(DType::F64)
        .init(&g, "gru", &mut rng);
    let embed = nn::EmbeddingConfig::new(6, I)
        .with_dtype(DType::F64)
        .init(&g, "embed", &mut rng);
    let ids = g.input("ids", DType::I32, [B]);
    let h0 = g.input("h0", DType::F64, [B, H]);
    let c0 = g.input("c0", DType::F64, [B, H]);
    let x = embed.forward(&ids);
    let (h1, c1) = lstm.forward(&x, (&h0, &c0));
    let (h2, c2) = lstm.forward(&x, (&h1, &c1));
    let h3 = gru.forward(&h2, &h1);
    let loss = weighted(&h3, &mut rng) + weighted(&c2, &mut rng);
    let inputs = [
        ("ids", HostTensor::from_i32([B], vec![4, 1]).unwrap()),
        ("h0", values(&mut rng, &[B, H], 0.8)),
        ("c0", values(&mut rng, &[B, H], 0.8)),
    ];
    gradcheck("cells", &loss, &inputs);
}

/// The padding row of an embedding gets a zero gradient, the other rows looked up
/// get the gradient through them.
#[test]
fn the_padding_row_gets_no_gradient() {
    let g = GraphBuilder::new("pad");
    let mut rng = Rng::seed(6);
    let embed = nn::EmbeddingConfig::new(5, 2)
        .with_padding_idx(0)
        .with_dtype(DType::F64)
        .init(&g, "embed", &mut rng);
    let ids = g.input("ids", DType::I32, [4]);
    let loss = weighted(&embed.forward(&ids).tanh(), &mut rng);
    let model = g.build(&[("loss", &loss)]).unwrap();
    let mut graph = model.graph.clone();
    let w = graph.params()[0];
    let grads = grad(&graph, graph.outputs()[0].node, &[w]).unwrap();
    graph = grads.graph;
    graph.set_outputs(Vec::new());
    graph.output(grads.grads[0], None);
    let idv = HostTensor::from_i32([4], vec![0, 3, 0, 2]).unwrap();
    let args = model.call_args(&[("ids", &idv)]).unwrap();
    let dw = interp::run(&graph, &args).unwrap()[0].to_f64_vec();
    assert_eq!(&dw[0..2], &[0.0, 0.0], "padding row");
    assert!(dw[4..8].iter().all(|&v| v != 0.0), "rows 2 and 3: {dw:?}");
    assert_eq!(&dw[2..4], &[0.0, 0.0], "row 1 is not looked up");
}

// ---------------------------------------------------------------------------
// A tagger trained compiled and interpreted.

const VOCAB: usize = 11;
const TAGS: usize = 4;
const SEQ: usize = 6;
const BATCH: usize = 3;

/// Embedding (padding row 0) -> 2-layer LSTM over a mask from `lengths` ->
/// linear -> log-softmax -> NLL ignoring the label -100, Adam.
fn tagger() -> TrainStep {
    let g = GraphBuilder::new("tagger");
    let mut rng = Rng::seed(17);
    let tokens = g.input("tokens", DType::I32, [SEQ, BATCH]);
    let lengths = g.input("lengths", DType::I32, [BATCH]);
    let tags = g.input("tags", DType::I32, [SEQ, BATCH]);
    let embed = nn::EmbeddingConfig::new(VOCAB, 5)
        .with_padding_idx(0)
        .init(&g, "embed", &mut rng);
    let lstm = nn::LstmConfig::new(5, 8)
        .with_num_layers(2)
        .init(&g, "lstm", &mut rng);
    let out = nn::Linear::new(&g, "out", 8, TAGS, &mut rng);
    let mask = nn::sequence_mask(&lengths, SEQ, DType::F32);
    let (hs, _) = lstm.forward_seq(&embed.forward(&tokens), None, Some(&mask));
    let logits = out.forward(&hs.reshape([SEQ * BATCH, 8]));
    let loss = loss::nll_ignore_index(
        &logits.log_softmax(-1),
        &tags.reshape([SEQ * BATCH]),
        loss::IGNORE_INDEX,
    );
    TrainStep::new(&loss, &Adam::new(0.05)).unwrap()
}

/// Sentences of lengths 6, 4, 2 (token 0 and tag -100 after the end, token 0 also
/// at some real positions); the tag of a token is a function of it and the token
/// before.
fn tagger_data() -> [(&'static str, HostTensor); 3] {
    let lens = [6usize, 4, 2];
    let mut rng = Rng::seed(3);
    let mut tokens = vec![0i32; SEQ * BATCH];
    let mut tags = vec![-100i32; SEQ * BATCH];
    for (b, &n) in lens.iter().enumerate() {
        let mut prev = 0;
        for t in 0..n {
            // Token 0 also inside sentences (an unknown word): it reaches the loss.
            let tok = if (t + b) % 3 == 1 {
                0
            } else {
                1 + rng.below(VOCAB as u64 - 1) as i32
            };
            tokens[t * BATCH + b] = tok;
            tags[t * BATCH + b] = (tok + prev) % TAGS as i32;
            prev = tok;
        }
    }
    [
        (
            "tokens",
            HostTensor::from_i32([SEQ, BATCH], tokens).unwrap(),
        ),
        (
            "lengths",
            HostTensor::from_i32([BATCH], lens.map(|n| n as i32).to_vec()).unwrap(),
        ),
        ("tags", HostTensor::from_i32([SEQ, BATCH], tags).unwrap()),
    ]
}

#[test]
fn a_tagger_trains_compiled_as_interpreted_and_keeps_its_padding_row() {
    let data = tagger_data();
    let inputs: Vec<(&str, &HostTensor)> = data.iter().map(|(n, v)| (*n, v)).collect();
    let mut compiled = tagger();
    let mut interpreted = tagger();
    let before = compiled.params().get("embed.weight").unwrap().to_f64_vec();
    assert!(before[..5].iter().all(|&v| v == 0.0));
    let mut losses = Vec::new();
    for step in 0..25 {
        let a = compiled.run(&inputs).unwrap().loss;
        let b = interpreted.run_interpreted(&inputs).unwrap().loss;
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "step {step}: compiled {a} vs interpreted {b}"
        );
        losses.push(a);
    }
    assert!(losses[24] < 0.3 * losses[0], "the loss falls: {losses:?}");
    for step in [&compiled, &interpreted] {
        let after = step.params().get("embed.weight").unwrap().to_f64_vec();
        assert!(
            after[..5].iter().all(|&v| v == 0.0),
            "padding row {:?}",
            &after[..5]
        );
        for &tok in data[0].1.as_i32().unwrap().iter().filter(|&&t| t != 0) {
            let row = tok as usize * 5..(tok as usize + 1) * 5;
            assert_ne!(&after[row.clone()], &before[row], "row {tok} trains");
        }
    }
    // One forward and one backward loop per LSTM layer.
    let exe = compiled.compile().unwrap();
    assert_eq!(exe.program().scans().count(), 4, "{}", exe.program());
}
