//! Gradient clipping inside the compiled step, against PyTorch's formulas
//! (`clip_grad_norm_`, `clip_grad_value_`) computed here.

use kiln::prelude::*;

const CA: [f32; 3] = [3.0, -4.0, 0.5];
const CB: [f32; 2] = [-2.5, 1.0];
const A0: [f32; 3] = [1.0, -0.5, 0.25];
const B0: [f32; 2] = [0.75, -1.25];

/// loss = sum(ca * a) + sum(cb * b): the gradients are `ca` and `cb` at every step.
fn step(clip: impl Fn(kiln::TrainStepBuilder) -> kiln::TrainStepBuilder) -> TrainStep {
    let g = GraphBuilder::new("linear");
    let ca = g.input("ca", DType::F32, [3]);
    let cb = g.input("cb", DType::F32, [2]);
    let a = g.param("a", HostTensor::from_f32([3], A0.to_vec()).unwrap());
    let b = g.param("b", HostTensor::from_f32([2], B0.to_vec()).unwrap());
    let loss = (&ca * &a).sum_all() + (&cb * &b).sum_all();
    clip(TrainStep::builder(&loss))
        .build(&Sgd::new(0.1))
        .unwrap()
}

/// Runs `steps` steps compiled and interpreted; checks both against `a, b` moved
/// by `lr * clipped` each step, `clipped` the expected gradients.
fn check(mut compiled: TrainStep, clipped: &[f64; 5], steps: usize, what: &str) {
    let mut interpreted = compiled.clone();
    let ca = HostTensor::from_f32([3], CA.to_vec()).unwrap();
    let cb = HostTensor::from_f32([2], CB.to_vec()).unwrap();
    let inputs = [("ca", &ca), ("cb", &cb)];
    let lr = 0.1f32 as f64;
    for t in 1..=steps {
        compiled.run(&inputs).unwrap();
        interpreted.run_interpreted(&inputs).unwrap();
        let start: Vec<f64> = A0.iter().chain(&B0).map(|&x| x as f64).collect();
        for s in [&compiled, &interpreted] {
            let got: Vec<f64> = ["a", "b"]
                .iter()
                .flat_map(|n| s.params().get(n).unwrap().to_f64_vec())
                .collect();
            for i in 0..5 {
                let want = start[i] - t as f64 * lr * clipped[i];
                assert!(
                    (got[i] - want).abs() < 2e-6,
                    "{what}, step {t}: element {i} = {} but the formula gives {want}",
                    got[i]
                );
            }
        }
    }
}

fn raw() -> [f64; 5] {
    let mut g = [0.0; 5];
    for (i, v) in CA.iter().chain(&CB).enumerate() {
        g[i] = *v as f64;
    }
    g
}

#[test]
fn clip_by_global_norm_scales_all_gradients_together() {
    // ‖g‖ = sqrt(9 + 16 + 0.25 + 6.25 + 1) = sqrt(32.5) ≈ 5.70 over both parameters.
    let total = raw().iter().map(|g| g * g).sum::<f64>().sqrt();
    assert!((total - 32.5f64.sqrt()).abs() < 1e-12);
    let max_norm = 2.0;
    let scale = max_norm / (total + 1e-6);
    let want = raw().map(|g| g * scale);
    check(
        step(|b| b.clip_grad_norm(2.0)),
        &want,
        3,
        "clip_grad_norm(2)",
    );
    // A norm below max_norm is left alone (the factor is clamped to 1).
    check(
        step(|b| b.clip_grad_norm(10.0)),
        &raw(),
        2,
        "clip_grad_norm(10)",
    );
}

#[test]
fn clip_by_value_clamps_each_element() {
    let want = raw().map(|g| g.clamp(-1.5, 1.5));
    assert_eq!(want, [1.5, -1.5, 0.5, -1.5, 1.0]);
    check(
        step(|b| b.clip_grad_value(1.5)),
        &want,
        3,
        "clip_grad_value(1.5)",
    );
}

#[test]
fn value_then_norm() {
    // Clamped to ±1.5 first: norm sqrt(1.5² · 3 + 0.25 + 1) = sqrt(8), then scaled
    // to 1.
    let clamped = raw().map(|g| g.clamp(-1.5, 1.5));
    let total = clamped.iter().map(|g| g * g).sum::<f64>().sqrt();
    assert!((total - 8f64.sqrt()).abs() < 1e-12);
    let want = clamped.map(|g| g / (total + 1e-6));
    check(
        step(|b| b.clip_grad_value(1.5).clip_grad_norm(1.0)),
        &want,
        2,
        "value then norm",
    );
}
