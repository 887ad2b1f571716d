//! `Network`: one model object trained and used at several batch sizes with one
//! parameter store, checked against SGD worked out by hand; one compilation per
//! distinct input types; prediction in evaluation mode; errors for bad inputs.

use kiln::prelude::*;
use kiln::{Network, NetworkError};

/// `y = x · w + b` with dropout in front (only while training), MSE, SGD 0.1.
fn linear(dropout: f64) -> Network {
    Network::new("linear", &["x"], move |g, x| {
        let w = g.param(
            "w",
            HostTensor::from_f32([3, 1], vec![0.5, -0.25, 1.0]).unwrap(),
        );
        let b = g.param("b", HostTensor::from_f32([1], vec![0.1]).unwrap());
        let x = nn::Dropout::new(g, dropout).forward(&x[0]);
        x.matmul(&w) + &b
    })
    .with_loss(&["y"], |pred, t| loss::mse(pred, &t[0]))
    .with_optimizer(Sgd::new(0.1))
}

fn batch(rows: &[[f32; 3]], ys: &[f32]) -> (HostTensor, HostTensor) {
    let n = rows.len();
    (
        HostTensor::from_f32([n, 3], rows.concat()).unwrap(),
        HostTensor::from_f32([n, 1], ys.to_vec()).unwrap(),
    )
}

/// One SGD step of MSE on `y ≈ x·w + b`, in f64.
fn sgd(w: &mut [f64; 3], b: &mut f64, rows: &[[f32; 3]], ys: &[f32]) {
    let n = rows.len() as f64;
    let (mut gw, mut gb) = ([0.0; 3], 0.0);
    for (r, &y) in rows.iter().zip(ys) {
        let pred: f64 = (0..3).map(|k| r[k] as f64 * w[k]).sum::<f64>() + *b;
        let d = 2.0 * (pred - y as f64) / n;
        for k in 0..3 {
            gw[k] += d * r[k] as f64;
        }
        gb += d;
    }
    for k in 0..3 {
        w[k] -= 0.1 * gw[k];
    }
    *b -= 0.1 * gb;
}

#[test]
fn batch_sizes_share_one_store_and_compile_once_each() {
    let mut net = linear(0.0);
    let (mut w, mut b) = ([0.5, -0.25, 1.0], 0.1);
    let a_rows = [
        [1.0, 2.0, -1.0],
        [0.5, -1.5, 2.0],
        [-2.0, 0.25, 1.0],
        [3.0, 1.0, 0.5],
    ];
    let a_ys = [1.5, -0.5, 2.0, 0.25];
    let b_rows = [[-1.0, 1.0, 1.0], [2.0, -0.5, -1.5]];
    let b_ys = [0.75, -1.25];
    for round in 0..3 {
        let (x, y) = batch(&a_rows, &a_ys);
        net.train(&[("x", &x), ("y", &y)]).unwrap();
        sgd(&mut w, &mut b, &a_rows, &a_ys);
        let (x, y) = batch(&b_rows, &b_ys);
        net.train(&[("y", &y), ("x", &x)]).unwrap();
        sgd(&mut w, &mut b, &b_rows, &b_ys);
        let got_w = net.params().get("w").unwrap().to_f64_vec();
        let got_b = net.params().get("b").unwrap().get_f64(0);
        for k in 0..3 {
            assert!(
                (got_w[k] - w[k]).abs() < 1e-5,
                "round {round}: w {got_w:?} want {w:?}"
            );
        }
        assert!(
            (got_b - b).abs() < 1e-5,
            "round {round}: b {got_b} want {b}"
        );
    }
    // Two training graphs, each compiled once.
    assert_eq!(net.compilations(), 2);
    // Prediction at a third batch size, with the trained values.
    let rows = [[0.5, 0.5, 0.5], [1.0, -1.0, 2.0], [-3.0, 0.0, 1.0]];
    let (x, _) = batch(&rows, &[0.0; 3]);
    let pred = net.predict(&[("x", &x)]).unwrap();
    assert_eq!(net.compilations(), 3);
    net.predict(&[("x", &x)]).unwrap();
    assert_eq!(net.compilations(), 3);
    for (i, r) in rows.iter().enumerate() {
        let want: f64 = (0..3).map(|k| r[k] as f64 * w[k]).sum::<f64>() + b;
        assert!((pred.get_f64(i) - want).abs() < 1e-5);
    }
}

#[test]
fn prediction_runs_in_evaluation_mode() {
    // Dropout 0.9 would zero most inputs while training; prediction is exact.
    let mut net = linear(0.9);
    let rows = [[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]];
    let (x, y) = batch(&rows, &[1.0, 2.0]);
    let before = net.predict(&[("x", &x)]).unwrap();
    assert_eq!(
        before.as_f32().unwrap(),
        &[0.5 - 0.5 + 3.0 + 0.1, -0.5 - 0.125 + 2.0 + 0.1]
    );
    // Training (dropout and its step seed included) after a prediction.
    for _ in 0..3 {
        net.train(&[("x", &x), ("y", &y)]).unwrap();
    }
    assert_eq!(net.params().get("rng.seed").unwrap().get_f64(0), 3.0);
    let w = net.params().get("w").unwrap().to_f64_vec();
    let b = net.params().get("b").unwrap().get_f64(0);
    let after = net.predict(&[("x", &x)]).unwrap();
    for (i, r) in rows.iter().enumerate() {
        let want: f64 = (0..3).map(|k| r[k] as f64 * w[k]).sum::<f64>() + b;
        // Relative: dropout's 10x scaling makes the trained values large.
        let got = after.get_f64(i);
        assert!(
            (got - want).abs() <= 1e-5 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }
}

#[test]
fn bad_calls_are_errors() {
    let mut net = linear(0.0);
    let (x, y) = batch(&[[1.0, 2.0, 3.0]], &[1.0]);
    let e = net.train(&[("x", &x)]).unwrap_err();
    assert!(
        matches!(&e, NetworkError::MissingInput(n) if n == "y"),
        "{e}"
    );
    let e = net.predict(&[("x", &x), ("z", &y)]).unwrap_err();
    assert!(
        matches!(&e, NetworkError::UnknownInput(n) if n == "z"),
        "{e}"
    );
    let mut bare = Network::new("bare", &["x"], |_, x| x[0].relu());
    let e = bare.train(&[("x", &x)]).unwrap_err();
    assert!(matches!(e, NetworkError::NoLoss), "{e}");
    assert_eq!(
        bare.predict(&[("x", &x)]).unwrap().as_f32().unwrap(),
        &[1.0, 2.0, 3.0]
    );
}

#[test]
fn checkpoints_restore_a_network() {
    let dir = kiln_testutil::TempDir::new("kiln-network");
    let path = dir.join("net.safetensors");
    let mut net = linear(0.5);
    let (x, y) = batch(&[[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]], &[1.0, 2.0]);
    for _ in 0..3 {
        net.train(&[("x", &x), ("y", &y)]).unwrap();
    }
    net.save_checkpoint(&path).unwrap();
    let mut fresh = linear(0.5);
    fresh.load_checkpoint(&path).unwrap();
    assert_eq!(fresh.params().len(), net.params().len());
    for (name, value) in net.params().iter() {
        assert_eq!(fresh.params().get(name), Some(value), "{name}");
    }
    let a = net.predict(&[("x", &x)]).unwrap();
    assert_eq!(fresh.predict(&[("x", &x)]).unwrap(), a);
    // Training continues identically (same seed, same optimizer state).
    let la = net.train(&[("x", &x), ("y", &y)]).unwrap().loss;
    let lb = fresh.train(&[("x", &x), ("y", &y)]).unwrap().loss;
    assert_eq!(la, lb);
    // A network that has traced a graph takes only a matching file.
    let mut other = Network::new("other", &["x"], |g, x| {
        let v = g.param("v", HostTensor::full(DType::F32, [3], 1.0));
        &x[0] * &v
    });
    other.predict(&[("x", &x)]).unwrap();
    assert!(other.load_checkpoint(&path).is_err());
}
