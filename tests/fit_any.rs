//! `Fit` over named tensors of any shape: regression with metrics and an evaluation
//! set, an image-shaped autoencoder, early stopping by callback, the CSV history,
//! classification through the conversion from `Dataset`, and the errors.

use std::cell::Cell;
use std::ops::ControlFlow;

use kiln::data::{Dataset, TensorBatch, TensorDataset};
use kiln::prelude::*;
use kiln::{EpochMetrics, FitError, History, run_with_params};
use kiln_testutil::TempDir;

const BATCH: usize = 32;
/// The true function: y = W x + B, x in R^3, y in R^2.
const W: [[f32; 3]; 2] = [[1.5, -2.0, 0.5], [0.25, 0.75, -1.0]];
const B: [f32; 2] = [0.3, -0.6];

/// `n` samples of x uniform in [-1, 1]^3 and y = W x + B + noise (std 0.01).
fn linear_data(n: usize, seed: u64) -> TensorDataset {
    let mut rng = Rng::seed(seed);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let x: Vec<f32> = (0..3).map(|_| rng.uniform(-1.0, 1.0)).collect();
        for (w, b) in W.iter().zip(B) {
            let y: f32 = w.iter().zip(&x).map(|(w, x)| w * x).sum::<f32>() + b;
            ys.push(y + rng.normal(0.0, 0.01));
        }
        xs.extend(x);
    }
    TensorDataset::new(vec![
        ("x", HostTensor::from_f32([n, 3], xs).unwrap()),
        ("y", HostTensor::from_f32([n, 2], ys).unwrap()),
    ])
    .unwrap()
}

/// The linear model `lin` on a batch of `batch`: returns (x, y, pred) tensors.
fn linear_model(g: &GraphBuilder, batch: usize) -> (Tensor, Tensor) {
    let x = g.input("x", DType::F32, [batch, 3]);
    let pred = nn::Linear::new(g, "lin", 3, 2, &mut Rng::seed(5)).forward(&x);
    (x, pred)
}

fn linear_step(lr: f32) -> TrainStep {
    let g = GraphBuilder::new("linear");
    let (_, pred) = linear_model(&g, BATCH);
    let y = g.input("y", DType::F32, [BATCH, 2]);
    let loss = loss::mse(&pred, &y);
    TrainStep::with_outputs(&loss, &Adam::new(lr), &[("pred", &pred)]).unwrap()
}

/// Mean squared difference of two f32 slices, in f64.
fn mse(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
        .sum::<f64>()
        / a.len() as f64
}

fn batch_mse(out: &StepOutput, batch: &TensorBatch) -> f64 {
    mse(
        out.outputs[0].as_f32().unwrap(),
        batch["y"].as_f32().unwrap(),
    )
}

#[test]
fn regression_recovers_the_true_weights_with_metrics() {
    let (train, val) = linear_data(320, 11).split(0.8, 1);
    assert_eq!((train.len(), val.len()), (256, 64));
    let mut step = linear_step(0.02);
    // The evaluation runs a forward graph for the whole validation set at once.
    let g = GraphBuilder::new("linear_eval");
    let (_, pred) = linear_model(&g, val.len());
    let mut forward = kiln::compile(&g.build(&[("pred", &pred)]).unwrap().graph).unwrap();
    let history = Fit::new(80, BATCH)
        .seed(2)
        .progress(Progress::Silent)
        .with_data(&train)
        .metric("mse", batch_mse)
        .evaluate("val_mse", &val, val.len(), |params, batch| {
            let out = run_with_params(&mut forward, params, &batch.inputs())?;
            Ok::<_, kiln::EvalError>(mse(out[0].as_f32().unwrap(), batch["y"].as_f32().unwrap()))
        })
        .run(&mut step)
        .unwrap();
    assert_eq!(history.len(), 80);
    assert!(!history.stopped_early);
    // The metric on the step's output equals the loss the graph computed.
    for e in &history.epochs {
        let m = e.get("mse").unwrap();
        assert!((m - e.loss).abs() <= 1e-4 * e.loss.max(1e-6), "{e:?}");
    }
    let first = &history.epochs[0];
    let last = history.last().unwrap();
    assert!(last.loss < first.loss / 100.0, "{first:?} -> {last:?}");
    // The weights approach the true ones.
    let w = step.params().get("lin.weight").unwrap().as_f32().unwrap();
    let b = step.params().get("lin.bias").unwrap().as_f32().unwrap();
    let w_true: Vec<f32> = W.iter().flatten().copied().collect();
    for (got, want) in w.iter().zip(&w_true).chain(b.iter().zip(&B)) {
        assert!((got - want).abs() < 0.02, "weights {w:?} {b:?}");
    }
    // The validation metric, computed here from the parameters alone.
    let xs = val.get("x").unwrap().as_f32().unwrap();
    let ys = val.get("y").unwrap().as_f32().unwrap();
    let mut sq = 0.0;
    for (x, y) in xs.chunks(3).zip(ys.chunks(2)) {
        for o in 0..2 {
            let p: f64 = (0..3)
                .map(|i| f64::from(w[o * 3 + i]) * f64::from(x[i]))
                .sum::<f64>()
                + f64::from(b[o]);
            sq += (p - f64::from(y[o])).powi(2);
        }
    }
    let want = sq / ys.len() as f64;
    let got = last.get("val_mse").unwrap();
    assert!((got - want).abs() <= 1e-3 * want, "val_mse {got} vs {want}");
    // Noise of std 0.01: the fitted model is near the noise floor.
    assert!(want < 5e-4, "{want}");
}

/// 128 8x8 single-channel images, each a mix of two fixed patterns plus noise.
fn images() -> TensorDataset {
    let mut rng = Rng::seed(21);
    let p1: Vec<f32> = (0..64).map(|k| (k % 8) as f32 / 4.0 - 1.0).collect();
    let p2: Vec<f32> = (0..64).map(|k| ((k / 8) as f32 * 0.7).sin()).collect();
    let mut xs = Vec::new();
    for _ in 0..128 {
        let (a, c) = (rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0));
        xs.extend((0..64).map(|k| a * p1[k] + c * p2[k] + rng.normal(0.0, 0.02)));
    }
    TensorDataset::new(vec![(
        "x",
        HostTensor::from_f32([128, 1, 8, 8], xs).unwrap(),
    )])
    .unwrap()
}

#[test]
fn autoencoder_on_image_shaped_input_reconstructs() {
    let data = images();
    let g = GraphBuilder::new("autoencoder");
    let mut rng = Rng::seed(8);
    let x = g.input("x", DType::F32, [BATCH, 1, 8, 8]);
    let conv = nn::Conv2d::new(&g, "enc_conv", 1, 4, 3, &mut rng);
    let enc = nn::Linear::new(&g, "enc", 4 * 6 * 6, 4, &mut rng);
    let dec = nn::Linear::new(&g, "dec", 4, 64, &mut rng);
    let code = enc.forward(&conv.forward(&x).relu().flatten(1));
    let recon = dec.forward(&code).reshape([BATCH, 1, 8, 8]);
    let loss = loss::mse(&recon, &x);
    let mut step = TrainStep::with_outputs(&loss, &Adam::new(0.01), &[("recon", &recon)]).unwrap();
    let calls = Cell::new(0);
    let history = Fit::new(30, BATCH)
        .progress(Progress::Silent)
        .with_data(&data)
        .metric("recon_mse", |out, batch| {
            assert_eq!(out.outputs[0].shape().dims(), &[BATCH, 1, 8, 8]);
            mse(
                out.outputs[0].as_f32().unwrap(),
                batch["x"].as_f32().unwrap(),
            )
        })
        .on_epoch(|r| {
            calls.set(calls.get() + 1);
            assert_eq!(r.epoch, calls.get());
            ControlFlow::Continue(())
        })
        .run(&mut step)
        .unwrap();
    assert_eq!((history.len(), calls.get()), (30, 30));
    let (first, last) = (&history.epochs[0], history.last().unwrap());
    assert!(first.loss > 0.1, "{first:?}");
    assert!(last.loss < first.loss / 5.0, "{first:?} -> {last:?}");
    assert!((last.get("recon_mse").unwrap() - last.loss).abs() < 1e-4 * last.loss);
}

#[test]
fn a_callback_stops_training_early() {
    let train = linear_data(128, 3);
    let mut step = linear_step(0.05);
    let seen = Cell::new(0);
    let history = Fit::new(50, BATCH)
        .progress(Progress::Silent)
        .with_data(&train)
        .on_epoch(|r| {
            if r.epoch == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        // A later callback still sees the epoch that stopped training.
        .on_epoch(|r| {
            seen.set(r.epoch);
            ControlFlow::Continue(())
        })
        .run(&mut step)
        .unwrap();
    assert_eq!(history.len(), 3);
    assert!(history.stopped_early);
    assert_eq!(seen.get(), 3);
    assert_eq!(step.steps_run(), (3 * 128 / BATCH) as u64);
}

#[test]
fn history_csv_has_a_header_and_one_row_per_epoch() {
    let mut history = History::default();
    let report = |epoch, loss, metrics: &[(&str, f64)]| EpochMetrics {
        epoch,
        loss,
        metrics: metrics.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        samples_per_sec: 123.0,
        seconds: 0.5,
    };
    history.push(report(1, 2.5, &[("mae", 1.25)]));
    history.push(report(2, 0.125, &[("mae", 0.1), ("val, loss", -3e-7)]));
    let dir = TempDir::new("fit-any-csv");
    let path = dir.join("history.csv");
    history.to_csv(&path).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "epoch,loss,mae,\"val, loss\"\n1,2.5,1.25,\n2,0.125,0.1,-0.0000003\n"
    );
    // From a real run: the values round-trip.
    let train = linear_data(64, 4);
    let mut step = linear_step(0.05);
    let run = Fit::new(3, BATCH)
        .progress(Progress::Silent)
        .with_data(&train)
        .metric("mse", batch_mse)
        .run(&mut step)
        .unwrap();
    run.to_csv(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0], "epoch,loss,mse");
    for (line, e) in lines[1..].iter().zip(&run.epochs) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields[0], e.epoch.to_string());
        assert_eq!(fields[1].parse::<f64>().unwrap(), e.loss);
        assert_eq!(fields[2].parse::<f64>().unwrap(), e.get("mse").unwrap());
    }
}

#[test]
fn classification_through_the_conversion_from_dataset() {
    let mut rng = Rng::seed(1);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for i in 0..96 {
        let c = i % 3;
        xs.extend([
            c as f32 - 1.0 + rng.uniform(-0.3, 0.3),
            rng.uniform(-1.0, 1.0),
        ]);
        ys.push(c);
    }
    let data = TensorDataset::from(Dataset::new(xs, ys, 2).unwrap());
    let g = GraphBuilder::new("logreg");
    let x = g.input("x", DType::F32, [16, 2]);
    let labels = g.input("labels", DType::I32, [16]);
    let logits = nn::Linear::new(&g, "fc", 2, 3, &mut rng).forward(&x);
    let loss = loss::cross_entropy(&logits, &labels);
    let mut step = TrainStep::with_outputs(&loss, &Adam::new(0.1), &[("logits", &logits)]).unwrap();
    let accuracy = |out: &StepOutput, batch: &TensorBatch| {
        let logits = out.outputs[0].as_f32().unwrap();
        let labels = batch["labels"].as_i32().unwrap();
        let correct = logits
            .chunks(3)
            .zip(labels)
            .filter(|(row, l)| {
                let best = (0..3).fold(0, |b, k| if row[k] > row[b] { k } else { b });
                best as i32 == **l
            })
            .count();
        correct as f64 / labels.len() as f64
    };
    let history = Fit::new(15, 16)
        .progress(Progress::Silent)
        .with_data(&data)
        .metric("acc", accuracy)
        .run(&mut step)
        .unwrap();
    let acc = history.column("acc");
    assert!(acc[0].unwrap() < 0.9, "{acc:?}");
    assert!(history.last().unwrap().get("acc").unwrap() > 0.9, "{acc:?}");
}

#[test]
fn errors_name_the_input_and_the_sizes() {
    // A data set name that is not a step input.
    let mut data = linear_data(64, 5);
    let z = HostTensor::from_f32([64], vec![1.0; 64]).unwrap();
    let mut named: Vec<(String, HostTensor)> = data
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    named.push(("z".into(), z));
    let extra = TensorDataset::new(named).unwrap();
    let mut step = linear_step(0.05);
    let e = Fit::new(1, BATCH)
        .progress(Progress::Silent)
        .with_data(&extra)
        .run(&mut step)
        .unwrap_err();
    assert!(matches!(e, FitError::Train { epoch: 1, .. }), "{e}");
    assert!(e.to_string().contains('z'), "{e}");
    // Fewer samples than a batch.
    data = data.select(&[0, 1, 2]);
    let e = Fit::new(1, BATCH)
        .progress(Progress::Silent)
        .with_data(&data)
        .run(&mut step)
        .unwrap_err();
    assert!(
        matches!(
            e,
            FitError::TooFewSamples {
                samples: 3,
                batch: 32
            }
        ),
        "{e}"
    );
    // A failing evaluation stops training with the metric's name.
    let data = linear_data(64, 6);
    let e = Fit::new(2, BATCH)
        .progress(Progress::Silent)
        .with_data(&data)
        .evaluate("broken", &data, 64, |_, _| Err("no forward graph"))
        .run(&mut step)
        .unwrap_err();
    assert!(
        matches!(&e, FitError::Metric { epoch: 1, name, .. } if name == "broken"),
        "{e}"
    );
    assert!(e.to_string().contains("no forward graph"), "{e}");
}

#[test]
fn history_curves_are_a_png_with_one_color_per_series() {
    let mut history = History::default();
    for (epoch, (loss, acc)) in [(2.0, 0.3), (1.0, 0.6), (0.5, 0.8)].into_iter().enumerate() {
        history.push(EpochMetrics {
            epoch: epoch + 1,
            loss,
            metrics: vec![("acc".to_string(), acc)],
            samples_per_sec: 1.0,
            seconds: 0.1,
        });
    }
    let dir = TempDir::new("kiln-curves");
    let path = dir.join("curves.png");
    history.save_curves(&path, 160, 90).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut rgb).unwrap();
    assert_eq!((info.width, info.height), (160, 90));
    let count = |c: [u8; 3]| {
        rgb[..info.buffer_size()]
            .chunks(3)
            .filter(|p| *p == c)
            .count()
    };
    // The loss in blue, the metric in orange, both drawn.
    assert!(count([31, 119, 180]) > 50 && count([255, 127, 14]) > 50);
}
