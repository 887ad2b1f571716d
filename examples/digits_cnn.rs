//! A small CNN on the handwritten digits as images (`[N, 1, 8, 8]`; data and
//! attribution in examples/data/README.md), on the 80/20 split of `digits_mlp`:
//! two 3x3 convolutions with batch normalization and ReLU, 2x2 max pooling,
//! dropout, and two linear layers; Adam (1e-3), batch 32. The model is one
//! `kiln::Network`: training mode (batch statistics, dropout) for the steps,
//! evaluation mode (running statistics, no dropout) for the test set.
//!
//! Run with `cargo run --release --example digits_cnn`; it ends with
//! `test accuracy: <x>`.

use std::time::Instant;

use kiln::Network;
use kiln::data::{CsvOptions, Dataset, read_csv};
use kiln::prelude::*;

const BATCH: usize = 32;
const SEED: u64 = 0;

/// What one run does.
pub struct CnnRun {
    pub epochs: usize,
    pub verbose: bool,
}

/// The CNN over `x: [N, 1, 8, 8]`: class scores `[N, 10]`.
fn cnn(g: &GraphBuilder, x: &Tensor) -> Tensor {
    let mut rng = Rng::seed(SEED);
    let conv1 = nn::Conv2dConfig::new(1, 16, 3)
        .with_padding(1)
        .init(g, "conv1", &mut rng);
    let bn1 = nn::BatchNormConfig::new(16).init(g, "bn1");
    let conv2 = nn::Conv2dConfig::new(16, 32, 3)
        .with_padding(1)
        .init(g, "conv2", &mut rng);
    let bn2 = nn::BatchNormConfig::new(32).init(g, "bn2");
    let fc1 = nn::Linear::new(g, "fc1", 32 * 4 * 4, 64, &mut rng);
    let fc2 = nn::Linear::new(g, "fc2", 64, 10, &mut rng);
    let h = bn1.forward(&conv1.forward(x)).relu();
    let h = bn2.forward(&conv2.forward(&h)).relu();
    let h = nn::MaxPool2d::new(2).forward(&h).flatten(1);
    let h = nn::Dropout::new(g, 0.3).forward(&h);
    fc2.forward(&fc1.forward(&h).relu())
}

/// `data`'s pixels as images `[N, 1, 8, 8]`.
fn images(data: &Dataset) -> HostTensor {
    HostTensor::from_f32([data.len(), 1, 8, 8], data.features().to_vec()).expect("64 pixels")
}

/// The share of `data` classified right.
fn accuracy(net: &mut Network, data: &Dataset) -> Result<f64, Box<dyn std::error::Error>> {
    let logits = net.predict(&[("x", &images(data))])?;
    let logits = logits.as_f32().ok_or("logits are f32")?;
    let right = logits
        .chunks(10)
        .zip(data.labels())
        .filter(|(row, label)| {
            let best = (0..10).fold(0, |a, k| if row[k] > row[a] { k } else { a });
            best as i32 == **label
        })
        .count();
    Ok(right as f64 / data.len() as f64)
}

/// Trains the CNN; returns the test accuracy after each epoch.
pub fn run(options: &CnnRun) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    Ok(train(options)?.1)
}

/// Trains the CNN; returns it (inputs `x: f32[N, 1, 8, 8]` with pixels in
/// `[0, 1]`, output class scores) and the test accuracy after each epoch.
pub fn train(options: &CnnRun) -> Result<(Network, Vec<f64>), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz");
    let data = read_csv(path, &CsvOptions::default())?.map_features(|p| p / 16.0);
    let (train, test) = data.split(0.8, SEED);
    let mut net = Network::new("digits_cnn", &["x"], |g, x| cnn(g, &x[0]))
        .with_loss(&["labels"], |logits, t| loss::cross_entropy(logits, &t[0]))
        .with_optimizer(Adam::new(1e-3));
    let mut accuracies = Vec::new();
    for epoch in 0..options.epochs {
        let start = Instant::now();
        let (mut sum, mut steps) = (0.0, 0);
        for b in train
            .batches(BATCH)
            .shuffle(SEED + epoch as u64)
            .drop_last(true)
        {
            let x = b.x.reshape([b.len(), 1, 8, 8])?;
            sum += net.train(&[("x", &x), ("labels", &b.labels)])?.loss;
            steps += 1;
        }
        let acc = accuracy(&mut net, &test)?;
        accuracies.push(acc);
        if options.verbose {
            println!(
                "epoch {:>2}/{}: train loss {:.4}, test accuracy {acc:.4} ({:.2} s)",
                epoch + 1,
                options.epochs,
                sum / steps as f64,
                start.elapsed().as_secs_f64()
            );
        }
    }
    Ok((net, accuracies))
}

#[allow(dead_code)] // the test includes this file for `run`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let accuracies = run(&CnnRun {
        epochs: 20,
        verbose: true,
    })?;
    println!(
        "test accuracy: {:.4}",
        accuracies.last().copied().unwrap_or(0.0)
    );
    Ok(())
}
