//! The counter-based generator and `random_uniform`.

use kiln_ir::interp::uniform_sample;
use kiln_ir::{DType, Op, Shape};

use crate::{ev, ti};

/// 2^-24.
const ULP: f32 = 1.0 / 16_777_216.0;

#[test]
fn uniform_sample_known_values() {
    // (bits >> 8) worked out with an independent implementation of the definition
    // in the doc comment.
    let cases: [(i32, u32, u32, u32); 6] = [
        (0, 0, 0, 6565680),
        (0, 0, 1, 12626482),
        (42, 7, 0, 16343642),
        (42, 7, 3, 4725335),
        (-1, u32::MAX, u32::MAX, 8536674),
        (123456, 1, 1000, 10123478),
    ];
    for (seed, salt, index, top) in cases {
        assert_eq!(
            uniform_sample(seed, salt, index),
            top as f32 * ULP,
            "seed {seed} salt {salt} index {index}"
        );
    }
}

#[test]
fn uniform_sample_range_and_mean() {
    let n = 10_000;
    let xs: Vec<f32> = (0..n).map(|i| uniform_sample(1234, 5, i)).collect();
    assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
    let mean = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / f64::from(n);
    // Standard error of the mean is sqrt(1/12 / 10000) ~ 0.0029.
    assert!((mean - 0.5).abs() < 0.015, "mean {mean}");
    // Each quarter of [0, 1) gets about a quarter of the samples.
    for q in 0..4 {
        let lo = q as f32 * 0.25;
        let count = xs.iter().filter(|&&x| x >= lo && x < lo + 0.25).count();
        assert!((2250..2750).contains(&count), "quarter {q}: {count}");
    }
    // Multiples of 2^-24 only, so the values are exact in f32.
    assert!(xs.iter().all(|&x| (x / ULP).fract() == 0.0));
}

#[test]
fn uniform_sample_streams_differ() {
    let stream =
        |seed, salt| -> Vec<f32> { (0..64).map(|i| uniform_sample(seed, salt, i)).collect() };
    let base = stream(7, 1);
    assert_eq!(base, stream(7, 1), "deterministic");
    for other in [stream(7, 2), stream(8, 1), stream(-7, 1)] {
        let same = base.iter().zip(&other).filter(|(a, b)| a == b).count();
        assert!(
            same <= 1,
            "streams should be independent, {same} equal values"
        );
    }
    // Neighbouring indices are not correlated in an obvious way.
    let distinct: std::collections::HashSet<u32> = base.iter().map(|x| x.to_bits()).collect();
    assert_eq!(distinct.len(), base.len());
}

#[test]
fn random_uniform_op_uses_flat_index() {
    let op = |dtype| Op::RandomUniform {
        shape: Shape::from([2, 3]),
        dtype,
        salt: 7,
    };
    let seed = ti(&[], &[42]);
    let y = ev(op(DType::F32), &[&seed]);
    assert_eq!(y.shape().dims(), &[2, 3]);
    let v = y.as_f32().unwrap();
    // Elements 0 and 3 (row 1, column 0) are the hand-checked samples above.
    assert_eq!(v[0], 16343642.0 * ULP);
    assert_eq!(v[3], 4725335.0 * ULP);
    for (i, &x) in v.iter().enumerate() {
        assert_eq!(x, uniform_sample(42, 7, i as u32));
    }
    // f64 output: the same values widened.
    let y64 = ev(op(DType::F64), &[&seed]);
    let w = y64.as_f64().unwrap();
    for (a, b) in v.iter().zip(w) {
        assert_eq!(f64::from(*a), *b);
    }
    // Another seed changes everything; a scalar shape gives element 0.
    let other = ev(op(DType::F32), &[&ti(&[], &[43])]);
    assert!(other.as_f32().unwrap().iter().zip(v).all(|(a, b)| a != b));
    let s = Op::RandomUniform {
        shape: Shape::scalar(),
        dtype: DType::F32,
        salt: 0,
    };
    assert_eq!(
        ev(s, &[&ti(&[], &[0])]).as_f32().unwrap(),
        &[6565680.0 * ULP]
    );
}
