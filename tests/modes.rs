//! Training and evaluation behaviour (issue 15): batch normalization against
//! PyTorch's definitions computed here in f64 (batch statistics and running ones in
//! training, running statistics in evaluation, the running statistics updated by
//! the compiled step and saved in checkpoints), and dropout drawing a new mask on
//! every step of one compiled step, the identity in evaluation.

use kiln::prelude::*;
use kiln_testutil::TempDir;

/// Per-channel (axis 1) mean and biased variance of `x` with dims `dims`, in f64.
fn channel_stats(x: &[f32], dims: &[usize]) -> (Vec<f64>, Vec<f64>, usize) {
    let c = dims[1];
    let inner: usize = dims[2..].iter().product();
    let n = dims[0] * inner;
    let at = |i: usize, ch: usize, k: usize| x[(i * c + ch) * inner + k] as f64;
    let mut mean = vec![0.0; c];
    let mut var = vec![0.0; c];
    for ch in 0..c {
        let vals: Vec<f64> = (0..dims[0])
            .flat_map(|i| (0..inner).map(move |k| (i, k)))
            .map(|(i, k)| at(i, ch, k))
            .collect();
        mean[ch] = vals.iter().sum::<f64>() / n as f64;
        var[ch] = vals.iter().map(|v| (v - mean[ch]).powi(2)).sum::<f64>() / n as f64;
    }
    (mean, var, n)
}

fn seeded(rng: &mut Rng, dims: &[usize]) -> HostTensor {
    let n = dims.iter().product();
    HostTensor::from_f32(
        dims.to_vec(),
        (0..n).map(|_| rng.uniform(-2.0, 3.0)).collect(),
    )
    .unwrap()
}

/// A step whose loss reads a batch norm's output; learning rate 0, so only the
/// buffers change. Returns the step (its extra output `y` is the normalized batch).
fn bn_step(dims: &[usize], training: bool) -> (TrainStep, GraphBuilder) {
    let g = GraphBuilder::new("bn");
    g.set_training(training);
    let x = g.input("x", DType::F32, dims.to_vec());
    let bn = nn::BatchNormConfig::new(dims[1]).init(&g, "bn");
    let y = bn.forward(&x);
    let loss = y.square().mean_all();
    let step = TrainStep::with_outputs(&loss, &Sgd::new(0.0), &[("y", &y)]).unwrap();
    (step, g)
}

#[test]
fn batch_norm_follows_pytorch_in_training_and_evaluation() {
    let eps = 1e-5;
    for dims in [vec![6, 3], vec![2, 3, 4, 5]] {
        let c = dims[1];
        let inner: usize = dims[2..].iter().product();
        let mut rng = Rng::seed(7);
        let (mut step, _) = bn_step(&dims, true);
        assert_eq!(step.buffers(), ["bn.running_mean", "bn.running_var"]);
        assert_eq!(step.trainable(), ["bn.weight", "bn.bias"]);
        let w: Vec<f32> = (0..c).map(|i| 0.5 + i as f32).collect();
        let b: Vec<f32> = (0..c).map(|i| 0.25 - i as f32).collect();
        step.params_mut()
            .set("bn.weight", HostTensor::from_f32([c], w.clone()).unwrap())
            .unwrap();
        step.params_mut()
            .set("bn.bias", HostTensor::from_f32([c], b.clone()).unwrap())
            .unwrap();
        let (mut rm, mut rv) = (vec![0.0f64; c], vec![1.0f64; c]);
        for round in 0..3 {
            let x = seeded(&mut rng, &dims);
            let xv = x.as_f32().unwrap().to_vec();
            let (mean, var, n) = channel_stats(&xv, &dims);
            // Compiled on even rounds, interpreted on odd ones: the same updates.
            let out = if round % 2 == 0 {
                step.run(&[("x", &x)]).unwrap()
            } else {
                step.run_interpreted(&[("x", &x)]).unwrap()
            };
            let y = out.outputs[0].as_f32().unwrap();
            for (i, &v) in xv.iter().enumerate() {
                let ch = (i / inner) % c;
                let want =
                    (v as f64 - mean[ch]) / (var[ch] + eps).sqrt() * w[ch] as f64 + b[ch] as f64;
                assert!(
                    (y[i] as f64 - want).abs() < 1e-4,
                    "{dims:?} y[{i}] = {} want {want}",
                    y[i]
                );
            }
            for ch in 0..c {
                rm[ch] = 0.9 * rm[ch] + 0.1 * mean[ch];
                rv[ch] = 0.9 * rv[ch] + 0.1 * var[ch] * n as f64 / (n - 1) as f64;
            }
            let got_m = step.params().get("bn.running_mean").unwrap().to_f64_vec();
            let got_v = step.params().get("bn.running_var").unwrap().to_f64_vec();
            for ch in 0..c {
                assert!(
                    (got_m[ch] - rm[ch]).abs() < 1e-5,
                    "running mean {got_m:?} want {rm:?}"
                );
                assert!(
                    (got_v[ch] - rv[ch]).abs() < 1e-4,
                    "running var {got_v:?} want {rv:?}"
                );
            }
        }
        assert_eq!(step.compilations(), 1);

        // Evaluation: the running statistics normalize, nothing is updated.
        let (eval, g) = bn_step(&dims, false);
        assert!(g.buffer_updates().is_empty());
        let model = eval.forward_graph().clone();
        let x = seeded(&mut rng, &dims);
        let args: Vec<HostTensor> = model
            .args()
            .iter()
            .map(|&a| {
                let name = model.node(a).name.clone().unwrap();
                if name == "x" {
                    x.clone()
                } else {
                    step.params().get(&name).unwrap().clone()
                }
            })
            .collect();
        let mut exe = kiln::compile(&model).unwrap();
        let y = exe.run(&args).unwrap()[1].as_f32().unwrap().to_vec();
        for (i, &v) in x.as_f32().unwrap().iter().enumerate() {
            let ch = (i / inner) % c;
            let want = (v as f64 - rm[ch]) / (rv[ch] + eps).sqrt() * w[ch] as f64 + b[ch] as f64;
            assert!(
                (y[i] as f64 - want).abs() < 1e-4,
                "eval {dims:?} y[{i}] = {} want {want}",
                y[i]
            );
        }
    }
}

#[test]
fn running_statistics_are_saved_in_checkpoints() {
    let dims = [5, 2];
    let (mut step, _) = bn_step(&dims, true);
    let x = seeded(&mut Rng::seed(3), &dims);
    step.run(&[("x", &x)]).unwrap();
    let trained = step.params().get("bn.running_mean").unwrap().clone();
    assert!(trained.to_f64_vec().iter().any(|&v| v != 0.0));
    let dir = TempDir::new("kiln-bn");
    let path = dir.join("bn.safetensors");
    step.save_checkpoint(&path).unwrap();
    let (mut fresh, _) = bn_step(&dims, true);
    fresh.load_checkpoint(&path).unwrap();
    assert_eq!(fresh.params().get("bn.running_mean").unwrap(), &trained);
}

/// A step whose loss reads dropout of ones `[rows, cols]`; its extra output is the
/// dropped tensor.
fn dropout_step(p: f64, training: bool) -> TrainStep {
    let g = GraphBuilder::new("dropout");
    g.set_training(training);
    let x = g.input("x", DType::F32, [64, 48]);
    let w = g.param("w", HostTensor::full(DType::F32, [48], 0.5));
    let y = nn::Dropout::new(&g, p).forward(&(&x * &w));
    let loss = y.mean_all();
    TrainStep::with_outputs(&loss, &Sgd::new(0.0), &[("y", &y)]).unwrap()
}

#[test]
fn dropout_draws_a_new_mask_every_step_with_one_compilation() {
    let p = 0.3;
    let x = HostTensor::full(DType::F32, [64, 48], 2.0);
    let mut step = dropout_step(p, true);
    assert_eq!(step.buffers(), ["rng.seed"]);
    let mut masks = Vec::new();
    for k in 0..3 {
        let y = step.run(&[("x", &x)]).unwrap().outputs[0].clone();
        let v = y.as_f32().unwrap();
        // Kept elements are x * w / (1 - p) = 1 / 0.7; the others exactly 0.
        let kept = 1.0 / (1.0 - p as f32);
        assert!(
            v.iter().all(|&e| e == 0.0 || (e - kept).abs() < 1e-6),
            "{v:?}"
        );
        let dropped = v.iter().filter(|&&e| e == 0.0).count() as f64 / v.len() as f64;
        assert!((dropped - p).abs() < 0.05, "dropped {dropped}");
        masks.push(v.iter().map(|&e| e == 0.0).collect::<Vec<bool>>());
        let seed = step.params().get("rng.seed").unwrap().get_f64(0);
        assert_eq!(seed, (k + 1) as f64);
    }
    assert!(
        masks[0] != masks[1] && masks[1] != masks[2],
        "the mask did not change"
    );
    assert_eq!(step.compilations(), 1);

    // The interpreter draws the same mask for the same seed.
    let mut a = dropout_step(p, true);
    let mut b = dropout_step(p, true);
    let ya = a.run(&[("x", &x)]).unwrap().outputs[0].clone();
    let yb = b.run_interpreted(&[("x", &x)]).unwrap().outputs[0].clone();
    assert_eq!(ya, yb);

    // Evaluation: the identity, and no seed to advance.
    let mut eval = dropout_step(p, false);
    assert!(eval.buffers().is_empty());
    let y = eval.run(&[("x", &x)]).unwrap().outputs[0].clone();
    assert!(y.as_f32().unwrap().iter().all(|&e| e == 1.0));
}

#[test]
fn layer_norm_follows_pytorch() {
    let eps = 1e-5;
    let g = GraphBuilder::new("ln");
    let x = g.input("x", DType::F32, [3, 2, 5]);
    let ln = nn::LayerNorm::new(&g, "ln", &[2, 5]);
    let y = ln.forward(&x);
    let model = g.build(&[("y", &y)]).unwrap();
    let mut params = model.params.clone();
    let w: Vec<f32> = (0..10).map(|i| 0.5 + 0.1 * i as f32).collect();
    let b: Vec<f32> = (0..10).map(|i| 1.0 - 0.2 * i as f32).collect();
    params
        .set(
            "ln.weight",
            HostTensor::from_f32([2, 5], w.clone()).unwrap(),
        )
        .unwrap();
    params
        .set("ln.bias", HostTensor::from_f32([2, 5], b.clone()).unwrap())
        .unwrap();
    let xv = seeded(&mut Rng::seed(11), &[3, 2, 5]);
    let args = vec![
        xv.clone(),
        params.get("ln.weight").unwrap().clone(),
        params.get("ln.bias").unwrap().clone(),
    ];
    let mut exe = kiln::compile(&model.graph).unwrap();
    let got = exe.run(&args).unwrap()[0].as_f32().unwrap().to_vec();
    let want_interp = kiln::ir::interp::run(&model.graph, &args).unwrap()[0].to_f64_vec();
    let x = xv.as_f32().unwrap();
    for s in 0..3 {
        let row: Vec<f64> = x[s * 10..(s + 1) * 10].iter().map(|&v| v as f64).collect();
        let mean = row.iter().sum::<f64>() / 10.0;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 10.0;
        for k in 0..10 {
            let want = (row[k] - mean) / (var + eps).sqrt() * w[k] as f64 + b[k] as f64;
            let i = s * 10 + k;
            assert!(
                (got[i] as f64 - want).abs() < 1e-5,
                "y[{i}] = {} want {want}",
                got[i]
            );
            assert!((want_interp[i] - want).abs() < 1e-5);
        }
    }
}
