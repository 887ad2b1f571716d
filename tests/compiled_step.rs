//! Compiled training steps against the interpreter (the oracle) and against known
//! results.

use kiln::prelude::*;
use kiln::workloads;
use kiln_testutil::assert_w1_result;

fn linear_regression(lr: f32) -> TrainStep {
    workloads::w1_step(lr).unwrap()
}

#[test]
fn compiled_w1_reaches_w_and_b_near_one() {
    let mut step = linear_regression(0.01);
    let (xs, ys) = workloads::w1_data();
    for _ in 0..1000 {
        step.run(&[("x", &xs), ("y", &ys)]).unwrap();
    }
    let w = step.params().get("w").unwrap().get_f64(0);
    let b = step.params().get("b").unwrap().get_f64(0);
    // Near w = b = 1, and at JAX's result for the same run (docs/WORKLOADS.md).
    assert_w1_result(w, b);
}

/// W2 (docs/WORKLOADS.md): MLP 784-128-64-10, ReLU, softmax cross-entropy, Adam.
fn w2_step(batch: usize) -> (TrainStep, Vec<HostTensor>, Vec<HostTensor>) {
    let mut rng = Rng::seed(42);
    let step = workloads::w2_step(batch, &mut rng).unwrap();
    let xs = (0..3)
        .map(|_| workloads::uniform(&mut rng, &[batch, 784], 0.0, 1.0))
        .collect();
    let ys = (0..3)
        .map(|_| workloads::labels(&mut rng, batch, 10))
        .collect();
    (step, xs, ys)
}

#[test]
fn compiled_w2_step_agrees_with_the_interpreter_for_ten_steps() {
    let (mut compiled, xs, ys) = w2_step(64);
    let mut reference = compiled.clone();
    let mut initial = f64::NAN;
    for i in 0..10 {
        let inputs = [("x", &xs[i % 3]), ("labels", &ys[i % 3])];
        let a = compiled.run(&inputs).unwrap().loss;
        let b = reference.run_interpreted(&inputs).unwrap().loss;
        assert!((a - b).abs() <= 1e-5 * b.abs(), "step {i}: loss {a} vs {b}");
        if i == 0 {
            initial = b;
        }
    }
    for (name, want) in reference.params().iter() {
        let got = compiled.params().get(name).unwrap();
        let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
        let worst = g
            .iter()
            .zip(&w)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-5, "{name}: max difference {worst}");
    }
    // And it learned something: the loss on a seen batch went down.
    let first = reference
        .clone()
        .run_interpreted(&[("x", &xs[0]), ("labels", &ys[0])])
        .unwrap()
        .loss;
    // Relative to the same batch's loss before training (about ln 10 = 2.303,
    // chance): 2.304 -> 2.194 after ten Adam steps.
    assert!(first < 0.97 * initial, "{initial} -> {first}");
}

#[test]
fn compiled_steps_check_their_inputs() {
    let mut step = linear_regression(0.01);
    let xs = HostTensor::from_f32([4], vec![1.0; 4]).unwrap();
    let ys = HostTensor::from_f32([3], vec![2.0, 4.0, 6.0]).unwrap();
    let e = step.run(&[("x", &xs), ("y", &ys)]).unwrap_err();
    assert!(
        e.to_string().contains("`x`") && e.to_string().contains("f32[3]"),
        "{e}"
    );
    let e = step.run(&[("y", &ys)]).unwrap_err();
    assert!(e.to_string().contains("`x`"), "{e}");
    let e = step.run(&[("x", &ys), ("y", &ys), ("z", &ys)]).unwrap_err();
    assert!(e.to_string().contains("`z`"), "{e}");
}

#[test]
fn nan_in_the_data_is_an_error_and_leaves_the_model_unchanged() {
    let mut step = linear_regression(0.01);
    let ys = HostTensor::from_f32([3], vec![2.0, 4.0, 6.0]).unwrap();
    let good = HostTensor::from_f32([3], vec![1.0, 3.0, 5.0]).unwrap();
    step.run(&[("x", &good), ("y", &ys)]).unwrap();
    let before = step.params().clone();
    let bad = HostTensor::from_f32([3], vec![1.0, f32::NAN, 5.0]).unwrap();
    let e = step.run(&[("x", &bad), ("y", &ys)]).unwrap_err();
    assert!(matches!(e, TrainError::NonFiniteLoss(_)), "{e}");
    assert!(e.to_string().contains("NaN or infinite"), "{e}");
    assert_eq!(step.params(), &before);
    // Training goes on from the same values.
    step.run(&[("x", &good), ("y", &ys)]).unwrap();
}
