//! Run-time learning rates and schedules: the rate each compiled step uses, read
//! back from the parameter change of plain SGD on a linear loss (known gradient),
//! against PyTorch's formulas written out here; all with one compilation.

use kiln::prelude::*;
use kiln::schedule::{
    ConstantLr, ExponentialLr, PlateauMode, ReduceLrOnPlateau, StepLr, ThresholdMode, WarmupCosine,
};
use std::f64::consts::PI;

const C: [f32; 3] = [0.5, -1.5, 2.0];
const P0: [f32; 3] = [1.0, -0.5, 0.25];

/// loss = sum(c * p): the gradient is `c` whatever `p`, so `p_new = p - lr * c`.
fn linear_step(opt: &dyn Optimizer) -> TrainStep {
    let g = GraphBuilder::new("linear");
    let c = g.input("c", DType::F32, [3]);
    let p = g.param("p", HostTensor::from_f32([3], P0.to_vec()).unwrap());
    TrainStep::new(&(&c * &p).sum_all(), opt).unwrap()
}

fn p_of(step: &TrainStep) -> Vec<f32> {
    step.params().get("p").unwrap().as_f32().unwrap().to_vec()
}

/// Runs one compiled step and returns the learning rate it used, read from the
/// parameter change; checks the change against `want` computed in f32.
fn lr_of_one_step(step: &mut TrainStep, want: f64, what: &str) -> f64 {
    let c = HostTensor::from_f32([3], C.to_vec()).unwrap();
    let before = p_of(step);
    step.run(&[("c", &c)]).unwrap();
    let after = p_of(step);
    for i in 0..3 {
        let expect = before[i] - (want as f32) * C[i];
        assert!(
            (after[i] - expect).abs() <= 1e-6,
            "{what}: p[{i}] = {} but p - lr*c = {expect} (lr {want})",
            after[i]
        );
    }
    // The rate, from the largest component's change.
    f64::from(before[2] - after[2]) / f64::from(C[2])
}

/// Runs `lrs.len()` steps and checks each step's rate.
fn check_rates(step: &mut TrainStep, lrs: &[f64], what: &str) {
    for (t, &want) in lrs.iter().enumerate() {
        assert!(
            (step.learning_rate().unwrap() - want).abs() < 1e-12,
            "{what}, step {t}: the step reports {:?}, the formula gives {want}",
            step.learning_rate()
        );
        let got = lr_of_one_step(step, want, what);
        assert!(
            (got - want).abs() < 2e-6,
            "{what}, step {t}: the step used lr {got}, the formula gives {want}"
        );
    }
}

#[test]
fn every_schedule_drives_one_compiled_step() {
    let mut step = linear_step(&Sgd::new(0.1));
    let base = 0.1f32 as f64;
    assert_eq!(step.learning_rate(), Some(base));

    // A constant rate, then one set by hand.
    step.set_schedule(ConstantLr).unwrap();
    check_rates(&mut step, &[base, base], "constant");
    step.take_schedule();
    step.set_learning_rate(0.05).unwrap();
    check_rates(&mut step, &[0.05f32 as f64], "set by hand");

    // StepLR(step_size=2, gamma=0.5): 0.2, 0.2, 0.1, 0.1, 0.05.
    step.set_learning_rate(0.2).unwrap();
    step.set_schedule(StepLr::new(2, 0.5)).unwrap();
    let base = 0.2f32 as f64;
    let want: Vec<f64> = (0..5).map(|t| base * 0.5f64.powi(t / 2)).collect();
    check_rates(&mut step, &want, "StepLR");

    // ExponentialLR(gamma=0.8).
    step.take_schedule();
    step.set_learning_rate(0.1).unwrap();
    step.set_schedule(ExponentialLr::new(0.8)).unwrap();
    let base = 0.1f32 as f64;
    let want: Vec<f64> = (0..4).map(|t| base * 0.8f64.powi(t)).collect();
    check_rates(&mut step, &want, "ExponentialLR");

    // LinearLR(start_factor=0.25, total_iters=3) then CosineAnnealingLR(T_max=4,
    // eta_min=0.01), switched at milestone 3.
    step.take_schedule();
    step.set_learning_rate(0.1).unwrap();
    step.set_schedule(WarmupCosine::new(3, 4).start_factor(0.25).eta_min(0.01))
        .unwrap();
    let mut want = Vec::new();
    for t in 0..3 {
        want.push(base * (0.25 + 0.75 * t as f64 / 3.0));
    }
    for u in 0..5 {
        want.push(0.01 + (base - 0.01) * (1.0 + (PI * u as f64 / 4.0).cos()) / 2.0);
    }
    // The warm-up rises, the cosine ends at eta_min.
    assert!(want[1] > want[0] && (want[7] - 0.01).abs() < 1e-12);
    check_rates(&mut step, &want, "warm-up + cosine");

    // One compilation for everything above.
    assert_eq!(step.compilations(), 1);
    assert_eq!(step.steps_run(), 2 + 1 + 5 + 4 + 8);
}

#[test]
fn plateau_reduces_the_rate_when_the_metric_stalls() {
    let mut step = linear_step(&Sgd::new(0.1));
    step.set_schedule(
        ReduceLrOnPlateau::new()
            .patience(1)
            .factor(0.5)
            .cooldown(1)
            .min_lr(0.02),
    )
    .unwrap();
    let base = 0.1f32 as f64;
    // Traced by hand with PyTorch's rules (mode min, threshold 1e-4 relative):
    // metric  best  bad  cooldown  reduce -> rate after
    // 1.0     1.0   0    0                 base
    // 0.9     0.9   0    0                 base
    // 0.9     0.9   1    0                 base  (not better by 1e-4)
    // 0.95    0.9   2    0         yes     base/2, cooldown 1
    // 0.95    0.9   0    1->0              base/2 (cooldown zeroes bad)
    // 0.95    0.9   1    0                 base/2
    // 0.95    0.9   2    0         yes     base/4 = 0.025, cooldown 1
    // 0.95    0.9   0    1->0              0.025
    // 0.95    0.9   1    0                 0.025
    // 0.95    0.9   2    0         yes     max(0.0125, 0.02) = 0.02
    // 0.95    ...                  yes     0.02: no change (min_lr)
    let metrics = [1.0, 0.9, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95];
    let want = [
        base,
        base,
        base,
        base / 2.0,
        base / 2.0,
        base / 2.0,
        base / 4.0,
        base / 4.0,
        base / 4.0,
        0.02,
    ];
    for (i, (&m, &w)) in metrics.iter().zip(&want).enumerate() {
        step.observe_metric(m);
        assert!(
            (step.learning_rate().unwrap() - w).abs() < 1e-12,
            "after metric {i}: {:?} vs {w}",
            step.learning_rate()
        );
        let got = lr_of_one_step(&mut step, w, "plateau");
        assert!(
            (got - w).abs() < 2e-6,
            "after metric {i}: used {got}, want {w}"
        );
    }
    for _ in 0..4 {
        step.observe_metric(0.95);
    }
    assert_eq!(step.learning_rate(), Some(0.02));
    assert_eq!(step.compilations(), 1);
}

#[test]
fn plateau_modes_and_thresholds() {
    // Max mode, absolute threshold 0.1: 0.55 is not better than 0.5 + 0.1.
    let mut s = ReduceLrOnPlateau::new()
        .mode(PlateauMode::Max)
        .threshold(0.1, ThresholdMode::Abs)
        .patience(0);
    s.observe(0.5);
    assert_eq!(s.reductions(), 0);
    s.observe(0.55);
    assert_eq!(s.reductions(), 1);
    s.observe(0.7);
    assert_eq!(s.reductions(), 1);
    assert!((s.lr(1.0, 0) - 0.1).abs() < 1e-15);
    // Max mode, relative: better means above best * 1.0001.
    let mut s = ReduceLrOnPlateau::new().mode(PlateauMode::Max).patience(0);
    s.observe(1.0);
    s.observe(1.00005);
    assert_eq!(s.reductions(), 1);
}

#[test]
fn adam_follows_a_schedule_compiled_and_interpreted() {
    // Adam on loss = 0.5 * sum(c * p^2), the rate halving every step: the
    // reference is Adam's formula in f64 with lr_t = 0.1 * 0.5^t.
    let g = GraphBuilder::new("quadratic");
    let c = g.input("c", DType::F32, [3]);
    let p = g.param("p", HostTensor::from_f32([3], P0.to_vec()).unwrap());
    let loss = (&c * &p.square()).sum_all() * 0.5;
    let mut step = TrainStep::builder(&loss)
        .schedule(ExponentialLr::new(0.5))
        .build(&Adam::new(0.1))
        .unwrap();
    let mut interpreted = step.clone();
    let cv = HostTensor::from_f32([3], C.to_vec()).unwrap();
    let mut p: Vec<f64> = P0.iter().map(|&x| x as f64).collect();
    let (mut m, mut v) = ([0.0f64; 3], [0.0f64; 3]);
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    for t in 1..=5 {
        let lr = (0.1f32 as f64) * 0.5f64.powi(t - 1);
        for i in 0..3 {
            let gr = C[i] as f64 * p[i];
            m[i] = b1 * m[i] + (1.0 - b1) * gr;
            v[i] = b2 * v[i] + (1.0 - b2) * gr * gr;
            let mh = m[i] / (1.0 - b1.powi(t));
            let vh = v[i] / (1.0 - b2.powi(t));
            p[i] -= lr * mh / (vh.sqrt() + eps);
        }
        step.run(&[("c", &cv)]).unwrap();
        interpreted.run_interpreted(&[("c", &cv)]).unwrap();
        for (which, s) in [("compiled", &step), ("interpreted", &interpreted)] {
            let got = s.params().get("p").unwrap().to_f64_vec();
            for i in 0..3 {
                assert!(
                    (got[i] - p[i]).abs() < 1e-5,
                    "{which}, step {t}: p[{i}] = {} vs {}",
                    got[i],
                    p[i]
                );
            }
        }
    }
    // A halving rate moves p much less than a constant one would: 0.1 * (1 + 1/2
    // + ...) < 0.2 in total per coordinate (Adam's step is about lr).
    assert!((p[0] - P0[0] as f64).abs() < 0.2 && (p[0] - P0[0] as f64).abs() > 0.1);
    assert_eq!(step.compilations(), 1);
}

#[test]
fn the_learning_rate_is_an_argument_of_the_compiled_step() {
    let mut step = linear_step(&Sgd::new(0.1));
    let exe = step.compile().unwrap();
    assert!(
        exe.args().iter().any(|(n, _)| n == "sgd.lr"),
        "{:?}",
        exe.args()
    );
    // It is not an output: the graph never changes it.
    assert!(
        step.graph()
            .outputs()
            .iter()
            .all(|o| o.name.as_deref() != Some("sgd.lr"))
    );
    // The rate set by hand is used by the next run, compiled or interpreted.
    step.set_learning_rate(0.3).unwrap();
    let c = HostTensor::from_f32([3], C.to_vec()).unwrap();
    let mut other = step.clone();
    other.run_interpreted(&[("c", &c)]).unwrap();
    let got = lr_of_one_step(&mut step, 0.3f32 as f64, "set_learning_rate");
    assert!((got - 0.3).abs() < 2e-6);
    assert_eq!(p_of(&other), p_of(&step));
    assert_eq!(step.compilations(), 1);
}
