//! Initializers and the generator, checked on large samples against the formulas.

use kiln_frontend::{Init, Rng, fans};
use kiln_ir::Shape;

fn mean_var(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

fn sample(init: Init, shape: &[usize], seed: u64) -> Vec<f32> {
    let t = init.sample(Shape::from(shape), &mut Rng::seed(seed));
    assert_eq!(t.shape().dims(), shape);
    t.as_f32().unwrap().to_vec()
}

#[test]
fn fans_match_pytorch() {
    assert_eq!(fans(&Shape::from([128, 784])), (784, 128));
    // Conv weight [O, C, KH, KW]: fan_in = C*KH*KW, fan_out = O*KH*KW.
    assert_eq!(fans(&Shape::from([6, 3, 5, 5])), (75, 150));
    assert_eq!(fans(&Shape::from([10])), (10, 10));
    assert_eq!(fans(&Shape::scalar()), (1, 1));
}

#[test]
fn kaiming_uniform_bounds_and_variance() {
    // [out=200, in=500]: bound = sqrt(2) * sqrt(3/500); variance of U(-b,b) = b²/3.
    let v = sample(Init::kaiming_uniform_relu(), &[200, 500], 1);
    let b = 2f64.sqrt() * (3.0 / 500f64).sqrt();
    assert!(v.iter().all(|&x| (x as f64).abs() <= b));
    let max = v.iter().fold(0f64, |m, &x| m.max((x as f64).abs()));
    assert!(max > 0.999 * b, "{max} vs {b}");
    let (mean, var) = mean_var(&v);
    assert!(mean.abs() < 0.01 * b, "{mean}");
    let expected = b * b / 3.0; // = 2/500
    assert!((var / expected - 1.0).abs() < 0.02, "{var} vs {expected}");
}

#[test]
fn torch_default_is_one_over_sqrt_fan_in() {
    let v = sample(Init::torch_default(), &[64, 100], 2);
    let b = 0.1;
    assert!(v.iter().all(|&x| (x as f64).abs() <= b + 1e-7));
    let max = v.iter().fold(0f64, |m, &x| m.max((x as f64).abs()));
    assert!(max > 0.99 * b);
    let Init::Uniform { lo, hi } = Init::bias_default(100) else {
        panic!()
    };
    assert_eq!((lo, hi), (-0.1, 0.1));
}

#[test]
fn xavier_uniform_uses_both_fans() {
    // Conv weight [64, 32, 5, 5]: fan_in 800, fan_out 1600; bound sqrt(6/2400).
    let v = sample(Init::XavierUniform, &[64, 32, 5, 5], 3);
    let b = (6.0f64 / 2400.0).sqrt();
    assert!(v.iter().all(|&x| (x as f64).abs() <= b));
    let (mean, var) = mean_var(&v);
    assert!(mean.abs() < 0.02 * b, "{mean}");
    assert!((var / (b * b / 3.0) - 1.0).abs() < 0.03, "{var}");
}

#[test]
fn normal_initializers_have_the_right_moments() {
    let v = sample(
        Init::Normal {
            mean: 3.0,
            std: 0.5,
        },
        &[400, 250],
        4,
    );
    let (mean, var) = mean_var(&v);
    assert!((mean - 3.0).abs() < 0.008, "{mean}");
    assert!((var.sqrt() - 0.5).abs() < 0.005, "{}", var.sqrt());
    // Kaiming normal: std = gain / sqrt(fan_in) = 2 / sqrt(400).
    let v = sample(Init::KaimingNormal { gain: 2.0 }, &[250, 400], 5);
    let (mean, var) = mean_var(&v);
    assert!(mean.abs() < 0.0016, "{mean}");
    assert!((var.sqrt() - 0.1).abs() < 0.001, "{}", var.sqrt());
    // Xavier normal: std = sqrt(2 / (fan_in + fan_out)) = sqrt(2/650).
    let v = sample(Init::XavierNormal, &[250, 400], 6);
    let (_, var) = mean_var(&v);
    assert!((var / (2.0 / 650.0) - 1.0).abs() < 0.025, "{var}");
    // Roughly 68% within one standard deviation.
    let v = sample(
        Init::Normal {
            mean: 0.0,
            std: 1.0,
        },
        &[100_000],
        7,
    );
    let inside = v.iter().filter(|x| x.abs() < 1.0).count() as f64 / v.len() as f64;
    assert!((inside - 0.6827).abs() < 0.007, "{inside}");
}

#[test]
fn uniform_zeros_and_constants() {
    let v = sample(Init::Uniform { lo: 2.0, hi: 5.0 }, &[100_000], 8);
    assert!(v.iter().all(|&x| (2.0..5.0).contains(&x)));
    let (mean, var) = mean_var(&v);
    assert!((mean - 3.5).abs() < 0.02, "{mean}");
    assert!((var - 0.75).abs() < 0.01, "{var}");
    assert!(sample(Init::Zeros, &[3, 4], 9).iter().all(|&x| x == 0.0));
    assert!(
        sample(Init::Constant(0.25), &[5], 9)
            .iter()
            .all(|&x| x == 0.25)
    );
}

#[test]
fn rng_is_deterministic_per_seed() {
    let a: Vec<u64> = {
        let mut r = Rng::seed(123);
        (0..100).map(|_| r.next_u64()).collect()
    };
    let b: Vec<u64> = {
        let mut r = Rng::seed(123);
        (0..100).map(|_| r.next_u64()).collect()
    };
    let c: Vec<u64> = {
        let mut r = Rng::seed(124);
        (0..100).map(|_| r.next_u64()).collect()
    };
    assert_eq!(a, b);
    assert_ne!(a, c);
    // No repeats and bits look balanced.
    let mut sorted = a.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 100);
    let ones: u32 = a.iter().map(|x| x.count_ones()).sum();
    assert!((3000..3400).contains(&ones), "{ones}");
    // Initializers are deterministic too.
    assert_eq!(
        sample(Init::XavierUniform, &[7, 9], 42),
        sample(Init::XavierUniform, &[7, 9], 42)
    );
    assert_ne!(
        sample(Init::XavierUniform, &[7, 9], 42),
        sample(Init::XavierUniform, &[7, 9], 43)
    );
}

#[test]
fn rng_uniform_and_normal_moments() {
    let mut r = Rng::seed(99);
    let n = 200_000;
    let u: Vec<f64> = (0..n).map(|_| r.f64()).collect();
    assert!(u.iter().all(|x| (0.0..1.0).contains(x)));
    let mean = u.iter().sum::<f64>() / n as f64;
    let var = u.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    assert!((mean - 0.5).abs() < 0.003, "{mean}");
    assert!((var - 1.0 / 12.0).abs() < 0.001, "{var}");
    let z: Vec<f64> = (0..n).map(|_| r.normal_f64(-1.0, 2.0)).collect();
    let mean = z.iter().sum::<f64>() / n as f64;
    let var = z.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    assert!((mean + 1.0).abs() < 0.02, "{mean}");
    assert!((var - 4.0).abs() < 0.2, "{var}");
    let f: Vec<f32> = (0..1000).map(|_| r.f32()).collect();
    assert!(f.iter().all(|x| (0.0..1.0).contains(x)));
}

#[test]
fn shuffle_is_a_uniform_permutation() {
    let mut r = Rng::seed(5);
    // Over many shuffles of [0, 1, 2], each of the 6 orders appears about equally.
    let mut counts = std::collections::HashMap::new();
    for _ in 0..60_000 {
        let mut v = [0, 1, 2];
        r.shuffle(&mut v);
        *counts.entry(v).or_insert(0u32) += 1;
    }
    assert_eq!(counts.len(), 6);
    for (k, c) in &counts {
        assert!((9_500..10_500).contains(c), "{k:?}: {c}");
    }
    let mut v: Vec<u32> = (0..1000).collect();
    r.shuffle(&mut v);
    assert_ne!(v, (0..1000).collect::<Vec<_>>());
    v.sort_unstable();
    assert_eq!(v, (0..1000).collect::<Vec<_>>());
    let mut a = Rng::seed(8);
    let mut f1 = a.fork();
    let mut f2 = a.fork();
    assert_ne!(f1.next_u64(), f2.next_u64());
}
