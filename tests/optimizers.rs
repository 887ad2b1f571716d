//! Optimizer updates, run as training-step graphs through the interpreter, against
//! the textbook formulas computed here in f64.

use kiln::prelude::*;
use kiln_testutil::near;

/// The last two elements have a tiny and a zero gradient: where the formulas put
/// `eps` (inside or outside a square root) decides how far a tiny gradient moves
/// its parameter (Adam: about `lr` per step outside, `lr / 100` inside), and a zero
/// gradient must not give 0/0.
const C: [f32; 7] = [0.5, 1.5, -0.7, 2.0, 1.1, 1e-6, 0.0];
const P0: [f32; 7] = [1.0, -2.0, 0.3, 0.8, -1.2, 0.9, -0.6];
const N: usize = C.len();

/// loss = 0.5 * sum(c * p^2), so d loss / dp = c * p: the gradient moves with p,
/// which exercises the optimizer state across steps.
fn step_for(opt: &dyn Optimizer) -> TrainStep {
    let g = GraphBuilder::new("quadratic");
    let c = g.input("c", DType::F32, [N]);
    let p = g.param("p", HostTensor::from_f32([N], P0.to_vec()).unwrap());
    let loss = (&c * &p.square()).sum_all() * 0.5;
    TrainStep::new(&loss, opt).unwrap()
}

/// Runs `steps` steps through the interpreter and returns p after each; the same
/// steps compiled to native code must give the same values.
fn run(opt: &dyn Optimizer, steps: usize) -> Vec<Vec<f64>> {
    let mut step = step_for(opt);
    let mut compiled = step.clone();
    let c = HostTensor::from_f32([N], C.to_vec()).unwrap();
    (0..steps)
        .map(|_| {
            step.run_interpreted(&[("c", &c)]).unwrap();
            compiled.run(&[("c", &c)]).unwrap();
            let p = step.params().get("p").unwrap().to_f64_vec();
            let q = compiled.params().get("p").unwrap().to_f64_vec();
            for (a, b) in p.iter().zip(&q) {
                assert!(near(*b, *a, 1e-6), "compiled {b} vs interpreted {a}");
            }
            p
        })
        .collect()
}

/// The reference: `update(i, p, g, t, state)` per element, state as 2 floats.
fn reference(
    steps: usize,
    mut update: impl FnMut(f64, f64, f64, &mut [f64; 2]) -> f64,
) -> Vec<Vec<f64>> {
    let mut p: Vec<f64> = P0.iter().map(|&x| x as f64).collect();
    let mut state = [[0.0f64; 2]; N];
    (1..=steps)
        .map(|t| {
            for i in 0..N {
                let g = C[i] as f64 * p[i];
                p[i] = update(p[i], g, t as f64, &mut state[i]);
            }
            p.clone()
        })
        .collect()
}

fn assert_close(name: &str, got: &[Vec<f64>], want: &[Vec<f64>]) {
    for (t, (g, w)) in got.iter().zip(want).enumerate() {
        for i in 0..g.len() {
            assert!(
                near(g[i], w[i], 2e-5),
                "{name}, step {}: p[{i}] = {} but the formula gives {}",
                t + 1,
                g[i],
                w[i]
            );
        }
    }
    // The run must actually move the parameters.
    assert!(
        got.last()
            .unwrap()
            .iter()
            .zip(P0)
            .any(|(a, b)| (a - b as f64).abs() > 1e-3),
        "{name} did not move"
    );
}

#[test]
fn sgd_plain_momentum_nesterov_weight_decay() {
    let (lr, mu, wd) = (0.1, 0.9, 0.05);
    assert_close(
        "sgd",
        &run(&Sgd::new(0.1), 4),
        &reference(4, |p, g, _, _| p - lr * g),
    );
    assert_close(
        "sgd momentum",
        &run(&Sgd::new(0.1).momentum(0.9), 4),
        &reference(4, |p, g, _, s| {
            s[0] = mu * s[0] + g;
            p - lr * s[0]
        }),
    );
    assert_close(
        "sgd nesterov + weight decay",
        &run(&Sgd::new(0.1).nesterov(0.9).weight_decay(0.05), 4),
        &reference(4, |p, g, _, s| {
            let g = g + wd * p;
            s[0] = mu * s[0] + g;
            p - lr * (g + mu * s[0])
        }),
    );
}

#[test]
fn adam_and_adamw() {
    let (lr, b1, b2, eps) = (0.05, 0.9, 0.999, 1e-8);
    let adam = |wd: f64, decoupled: bool| {
        move |p: f64, g: f64, t: f64, s: &mut [f64; 2]| {
            let (p, g) = if decoupled {
                (p * (1.0 - lr * wd), g)
            } else {
                (p, g + wd * p)
            };
            s[0] = b1 * s[0] + (1.0 - b1) * g;
            s[1] = b2 * s[1] + (1.0 - b2) * g * g;
            let m = s[0] / (1.0 - b1.powf(t));
            let v = s[1] / (1.0 - b2.powf(t));
            p - lr * m / (v.sqrt() + eps)
        }
    };
    assert_close(
        "adam",
        &run(&Adam::new(0.05), 5),
        &reference(5, adam(0.0, false)),
    );
    assert_close(
        "adam l2",
        &run(&Adam::new(0.05).weight_decay(0.1), 5),
        &reference(5, adam(0.1, false)),
    );
    assert_close(
        "adamw",
        &run(&Adam::adamw(0.05, 0.1), 5),
        &reference(5, adam(0.1, true)),
    );
}

#[test]
fn adagrad_rmsprop_adadelta() {
    let lr = 0.1;
    assert_close(
        "adagrad",
        &run(&AdaGrad::new(0.1), 4),
        &reference(4, |p, g, _, s| {
            s[0] += g * g;
            p - lr * g / (s[0].sqrt() + 1e-10)
        }),
    );
    assert_close(
        "rmsprop",
        &run(&RmsProp::new(0.01), 4),
        &reference(4, |p, g, _, s| {
            s[0] = 0.99 * s[0] + 0.01 * g * g;
            p - 0.01 * g / (s[0].sqrt() + 1e-8)
        }),
    );
    assert_close(
        "adadelta",
        &run(&Adadelta::new(), 4),
        &reference(4, |p, g, _, s| {
            let (rho, eps) = (0.9, 1e-6);
            s[0] = rho * s[0] + (1.0 - rho) * g * g;
            let d = (s[1] + eps).sqrt() / (s[0] + eps).sqrt() * g;
            s[1] = rho * s[1] + (1.0 - rho) * d * d;
            p - d
        }),
    );
}

#[test]
fn optimizer_state_is_part_of_the_step_graph() {
    let step = step_for(&Adam::new(0.01));
    let names: Vec<&str> = step.params().names().collect();
    // The learning rate is an argument too (read at run time), but never an output.
    assert_eq!(names, ["p", "adam.m.p", "adam.v.p", "adam.step", "adam.lr"]);
    assert_eq!(step.trainable(), ["p"]);
    let outs: Vec<Option<&str>> = step
        .graph()
        .outputs()
        .iter()
        .map(|o| o.name.as_deref())
        .collect();
    assert_eq!(
        outs,
        [
            Some("loss"),
            Some("p"),
            Some("adam.m.p"),
            Some("adam.v.p"),
            Some("adam.step")
        ]
    );
}

#[test]
fn l2_penalty_in_the_loss_equals_sgd_weight_decay() {
    // loss + (wd/2)·sum(p²) has gradient g + wd·p: the same step as weight_decay = wd.
    let g = GraphBuilder::new("penalized");
    let c = g.input("c", DType::F32, [N]);
    let p = g.param("p", HostTensor::from_f32([N], P0.to_vec()).unwrap());
    let loss =
        (&c * &p.square()).sum_all() * 0.5 + loss::l2_penalty(std::slice::from_ref(&p)) * 0.025;
    let mut step = TrainStep::new(&loss, &Sgd::new(0.1)).unwrap();
    let cv = HostTensor::from_f32([N], C.to_vec()).unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        step.run_interpreted(&[("c", &cv)]).unwrap();
        got.push(step.params().get("p").unwrap().to_f64_vec());
    }
    assert_close(
        "l2 penalty",
        &got,
        &run(&Sgd::new(0.1).weight_decay(0.05), 3),
    );
    // And the L1 penalty's gradient is λ·sign(p).
    let g = GraphBuilder::new("l1");
    let p = g.param("p", HostTensor::from_f32([N], P0.to_vec()).unwrap());
    let loss = loss::l1_penalty(std::slice::from_ref(&p)) * 0.5;
    let mut step = TrainStep::new(&loss, &Sgd::new(0.1)).unwrap();
    step.run_interpreted(&[]).unwrap();
    let after = step.params().get("p").unwrap().to_f64_vec();
    for (a, b) in after.iter().zip(P0) {
        let want = b as f64 - 0.1 * 0.5 * (b as f64).signum();
        assert!((a - want).abs() < 1e-6, "{a} vs {want}");
    }
}
