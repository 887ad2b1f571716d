//! Parameter groups: training a subset of the parameters (the rest frozen, with no
//! gradient work in the step graph), per-group learning rates and weight decay,
//! and two steps sharing parameters (a GAN's alternating steps).

use kiln::prelude::*;
use kiln::workloads;

const N: usize = 4; // batch
const IN: usize = 6;
const HID: usize = 5;
const OUT: usize = 3;

/// x -> fc1 -> relu -> fc2 -> mse, every parameter shape distinct.
fn mlp_loss() -> Tensor {
    let mut rng = Rng::seed(7);
    let g = GraphBuilder::new("mlp");
    let x = g.input("x", DType::F32, [N, IN]);
    let y = g.input("y", DType::F32, [N, OUT]);
    let fc1 = nn::Linear::new(&g, "fc1", IN, HID, &mut rng);
    let fc2 = nn::Linear::new(&g, "fc2", HID, OUT, &mut rng);
    loss::mse(&fc2.forward(&fc1.forward(&x).relu()), &y)
}

fn data() -> (HostTensor, HostTensor) {
    let mut rng = Rng::seed(3);
    (
        workloads::uniform(&mut rng, &[N, IN], -1.0, 1.0),
        workloads::uniform(&mut rng, &[N, OUT], -1.0, 1.0),
    )
}

/// Nodes of the step graph with exactly this shape.
fn nodes_shaped(step: &TrainStep, dims: &[usize]) -> usize {
    let g = step.graph();
    g.node_ids()
        .filter(|&n| g.node(n).ty.shape.dims() == dims)
        .count()
}

#[test]
fn frozen_parameters_get_no_gradient_work() {
    let loss = mlp_loss();
    let full = TrainStep::new(&loss, &Sgd::new(0.1)).unwrap();
    let head = TrainStep::builder(&loss)
        .params(&["fc2.weight", "fc2.bias"])
        .build(&Sgd::new(0.1))
        .unwrap();
    assert_eq!(head.trainable(), ["fc2.weight", "fc2.bias"]);
    assert_eq!(head.frozen(), ["fc1.weight", "fc1.bias"]);
    let outputs: Vec<&str> = head
        .graph()
        .outputs()
        .iter()
        .filter_map(|o| o.name.as_deref())
        .collect();
    assert_eq!(outputs, ["loss", "fc2.weight", "fc2.bias"]);
    // fc1's weight [HID, IN] and bias [HID]: in the full step, a gradient and an
    // update each besides the argument; in the head-only step, the argument only.
    assert!(nodes_shaped(&full, &[HID, IN]) >= 3);
    assert!(nodes_shaped(&full, &[HID]) >= 3);
    assert_eq!(nodes_shaped(&head, &[HID, IN]), 1);
    assert_eq!(nodes_shaped(&head, &[HID]), 1);
    // Not even the gradient with respect to fc1's output is computed: every node
    // of the backward pass is shaped like fc2's or the loss's values, so the
    // head-only step is much smaller.
    assert!(
        head.graph().node_count() + 10 < full.graph().node_count(),
        "{} vs {}",
        head.graph().node_count(),
        full.graph().node_count()
    );
    // The same by prefix.
    let by_prefix = TrainStep::builder(&loss)
        .params_with_prefix("fc2.")
        .build(&Sgd::new(0.1))
        .unwrap();
    assert_eq!(by_prefix.graph().node_count(), head.graph().node_count());
}

/// The head-only step against SGD on fc2 computed here with plain loops.
#[test]
fn frozen_parameters_stay_unchanged_and_the_rest_follows_sgd() {
    let loss = mlp_loss();
    let mut step = TrainStep::builder(&loss)
        .params_with_prefix("fc2.")
        .build(&Sgd::new(0.1))
        .unwrap();
    let (x, y) = data();
    let get = |s: &TrainStep, n: &str| s.params().get(n).unwrap().to_f64_vec();
    let (w1, b1) = (get(&step, "fc1.weight"), get(&step, "fc1.bias"));
    let (mut w2, mut b2) = (get(&step, "fc2.weight"), get(&step, "fc2.bias"));
    let (xv, yv) = (x.to_f64_vec(), y.to_f64_vec());
    // h = relu(x W1ᵀ + b1) does not change.
    let mut h = [0.0; N * HID];
    for n in 0..N {
        for j in 0..HID {
            let s: f64 = (0..IN).map(|i| xv[n * IN + i] * w1[j * IN + i]).sum();
            h[n * HID + j] = (s + b1[j]).max(0.0);
        }
    }
    assert!(h.iter().any(|&v| v > 0.0));
    let lr = 0.1f32 as f64;
    for t in 0..3 {
        // d = d mse / d out = 2 (out - y) / (N · OUT).
        let mut d = [0.0; N * OUT];
        for n in 0..N {
            for k in 0..OUT {
                let out: f64 = (0..HID)
                    .map(|j| h[n * HID + j] * w2[k * HID + j])
                    .sum::<f64>()
                    + b2[k];
                d[n * OUT + k] = 2.0 * (out - yv[n * OUT + k]) / (N * OUT) as f64;
            }
        }
        for k in 0..OUT {
            for j in 0..HID {
                let gw: f64 = (0..N).map(|n| d[n * OUT + k] * h[n * HID + j]).sum();
                w2[k * HID + j] -= lr * gw;
            }
            let gb: f64 = (0..N).map(|n| d[n * OUT + k]).sum();
            b2[k] -= lr * gb;
        }
        step.run(&[("x", &x), ("y", &y)]).unwrap();
        for (name, want) in [("fc2.weight", &w2), ("fc2.bias", &b2)] {
            let got = get(&step, name);
            for (i, (a, b)) in got.iter().zip(want.iter()).enumerate() {
                assert!((a - b).abs() < 1e-5, "step {t}: {name}[{i}] {a} vs {b}");
            }
        }
        // Bit for bit unchanged.
        assert_eq!(get(&step, "fc1.weight"), w1);
        assert_eq!(get(&step, "fc1.bias"), b1);
    }
    let w2_0 = TrainStep::new(&loss, &Sgd::new(0.1))
        .unwrap()
        .params()
        .get("fc2.weight")
        .unwrap()
        .to_f64_vec();
    assert_ne!(w2, w2_0, "fc2 must move");
}

/// Three scalars-per-element parameters with known gradients: `a` in the default
/// group, `b` with half the rate and no weight decay, `c` frozen.
fn grouped(opt: &dyn Optimizer) -> TrainStep {
    let g = GraphBuilder::new("groups");
    let ka = g.input("ka", DType::F32, [2]);
    let a = g.param("a", HostTensor::from_f32([2], vec![1.0, -2.0]).unwrap());
    let b = g.param("b", HostTensor::from_f32([2], vec![0.5, 1.5]).unwrap());
    let c = g.param("c", HostTensor::from_f32([2], vec![3.0, -1.0]).unwrap());
    // d/da = ka, d/db = 2, d/dc = b (unused: c is frozen).
    let loss = (&ka * &a).sum_all() + (&b * 2.0).sum_all() + (&b * &c).sum_all() * 0.0;
    TrainStep::builder(&loss)
        .group(ParamGroup::names(&["a"]))
        .group(ParamGroup::names(&["b"]).lr_scale(0.5).weight_decay(0.0))
        .build(opt)
        .unwrap()
}

#[test]
fn groups_have_their_own_learning_rate_and_weight_decay() {
    let mut step = grouped(&Sgd::new(0.1).weight_decay(0.2));
    assert_eq!(step.trainable(), ["a", "b"]);
    assert_eq!(step.frozen(), ["c"]);
    let ka = HostTensor::from_f32([2], vec![0.5, -1.0]).unwrap();
    let (mut a, mut b) = ([1.0f64, -2.0], [0.5f64, 1.5]);
    for lr in [0.1f32 as f64, 0.1f32 as f64, 0.4] {
        if lr == 0.4 {
            step.set_learning_rate(0.4).unwrap();
        }
        for i in 0..2 {
            // a: the optimizer's weight decay; b: half the rate, no decay.
            a[i] -= lr * ([0.5, -1.0][i] + 0.2 * a[i]);
            b[i] -= lr * 0.5 * 2.0;
        }
        step.run(&[("ka", &ka)]).unwrap();
        let (ga, gb) = (
            step.params().get("a").unwrap().to_f64_vec(),
            step.params().get("b").unwrap().to_f64_vec(),
        );
        for i in 0..2 {
            assert!((ga[i] - a[i]).abs() < 1e-6, "a[{i}] {} vs {}", ga[i], a[i]);
            assert!((gb[i] - b[i]).abs() < 1e-6, "b[{i}] {} vs {}", gb[i], b[i]);
        }
        assert_eq!(step.params().get("c").unwrap().to_f64_vec(), [3.0, -1.0]);
    }
    assert_eq!(step.compilations(), 1);

    // AdamW's decoupled decay per group: b's group has none, so its first step is
    // lr/2 · sign(g) exactly as Adam's; a's is shrunk by 1 - lr·wd first.
    let mut adamw = grouped(&Adam::adamw(0.1, 0.5));
    adamw.run_interpreted(&[("ka", &ka)]).unwrap();
    let lr = 0.1f32 as f64;
    let ga = adamw.params().get("a").unwrap().to_f64_vec();
    let gb = adamw.params().get("b").unwrap().to_f64_vec();
    let want_a = [1.0 * (1.0 - lr * 0.5) - lr, -2.0 * (1.0 - lr * 0.5) + lr];
    let want_b = [0.5 - lr * 0.5, 1.5 - lr * 0.5];
    for i in 0..2 {
        assert!((ga[i] - want_a[i]).abs() < 1e-5, "{ga:?} vs {want_a:?}");
        assert!((gb[i] - want_b[i]).abs() < 1e-5, "{gb:?} vs {want_b:?}");
    }
}

#[test]
fn bad_groups_are_errors() {
    let loss = mlp_loss();
    let e = TrainStep::builder(&loss)
        .params(&["fc3.weight"])
        .build(&Sgd::new(0.1))
        .unwrap_err();
    assert!(
        matches!(&e, TrainError::UnknownParam(n) if n == "fc3.weight"),
        "{e}"
    );
    let e = TrainStep::builder(&loss)
        .params_with_prefix("conv")
        .build(&Sgd::new(0.1))
        .unwrap_err();
    assert!(
        matches!(&e, TrainError::EmptyGroup(p) if p == "conv"),
        "{e}"
    );
    let e = TrainStep::builder(&loss)
        .params_with_prefix("fc2.")
        .group(ParamGroup::names(&["fc2.bias"]).lr_scale(2.0))
        .build(&Sgd::new(0.1))
        .unwrap_err();
    assert!(
        matches!(&e, TrainError::ParamInTwoGroups(p) if p == "fc2.bias"),
        "{e}"
    );
    assert!(
        e.to_string().contains("more than one parameter group"),
        "{e}"
    );
}

/// A least-squares GAN over one graph: the generator `gen` maps noise z to
/// samples, the discriminator `disc` scores them. Two steps over the same
/// parameters, each training its own group.
#[test]
fn gan_steps_share_parameters_and_each_changes_only_its_own_group() {
    let mut rng = Rng::seed(11);
    let g = GraphBuilder::new("gan");
    let z = g.input("z", DType::F32, [8, 2]);
    let real = g.input("real", DType::F32, [8, 3]);
    let generator = nn::Linear::new(&g, "gen", 2, 3, &mut rng);
    let disc = nn::Linear::new(&g, "disc", 3, 1, &mut rng);
    let fake = generator.forward(&z).tanh();
    let d_real = disc.forward(&real);
    let d_fake = disc.forward(&fake);
    let d_loss = (&d_real - 1.0).square().mean_all() + d_fake.square().mean_all();
    let g_loss = (&d_fake - 1.0).square().mean_all();
    let mut d_step = TrainStep::builder(&d_loss)
        .params_with_prefix("disc.")
        .build(&Adam::new(0.05))
        .unwrap();
    let mut g_step = TrainStep::builder(&g_loss)
        .params_with_prefix("gen.")
        .build(&Adam::new(0.05))
        .unwrap();
    // The discriminator step computes no gradient for the generator's weight [3, 2]
    // (nor anything else shaped like it).
    assert_eq!(d_step.frozen(), ["gen.weight", "gen.bias"]);
    assert_eq!(
        d_step
            .graph()
            .node_ids()
            .filter(|&n| d_step.graph().node(n).ty.shape.dims() == [3, 2])
            .count(),
        1
    );
    let mut data = Rng::seed(5);
    let zs = workloads::uniform(&mut data, &[8, 2], -1.0, 1.0);
    let reals = workloads::uniform(&mut data, &[8, 3], 0.5, 1.5);
    let inputs = [("z", &zs), ("real", &reals)];
    let names = ["gen.weight", "gen.bias", "disc.weight", "disc.bias"];
    let values = |s: &TrainStep| -> Vec<Vec<f64>> {
        names
            .iter()
            .map(|n| s.params().get(n).unwrap().to_f64_vec())
            .collect()
    };
    let mut d_losses = Vec::new();
    for round in 0..4 {
        // Discriminator step, with the generator's latest values.
        let copied = d_step.sync_from(&g_step).unwrap();
        assert_eq!(copied, 2);
        let before = values(&d_step);
        assert_eq!(before[..2], values(&g_step)[..2]);
        d_losses.push(d_step.run(&inputs).unwrap().loss);
        let after = values(&d_step);
        assert_eq!(after[..2], before[..2], "round {round}: D step moved gen");
        assert!(
            after[2] != before[2] && after[3] != before[3],
            "round {round}"
        );

        // Generator step, with the discriminator's latest values.
        assert_eq!(g_step.sync_from(&d_step).unwrap(), 2);
        let before = values(&g_step);
        assert_eq!(before[2..], after[2..]);
        g_step.run(&inputs).unwrap();
        let after = values(&g_step);
        assert_eq!(after[2..], before[2..], "round {round}: G step moved disc");
        assert!(
            after[0] != before[0] && after[1] != before[1],
            "round {round}"
        );
    }
    // Each step keeps its own optimizer state and counts its own steps.
    assert_eq!(d_step.params().get("adam.step").unwrap().get_f64(0), 4.0);
    assert_eq!(g_step.params().get("adam.step").unwrap().get_f64(0), 4.0);
    assert!(d_step.params().contains("adam.m.disc.weight"));
    assert!(!d_step.params().contains("adam.m.gen.weight"));
    assert!(g_step.params().contains("adam.m.gen.weight"));
    assert!(d_losses.iter().all(|l| l.is_finite()));

    // The G step after syncing is the same step as one built on a single store
    // holding the D step's values: check against the interpreter on a clone.
    let mut check = g_step.clone();
    let a = g_step.run(&inputs).unwrap().loss;
    let b = check.run_interpreted(&inputs).unwrap().loss;
    assert!((a - b).abs() <= 1e-5 * b.abs().max(1e-3), "{a} vs {b}");
}
