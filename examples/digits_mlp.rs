//! Handwritten digits (8x8 pixels, 1797 images; examples/data/README.md) classified
//! by a 64-128-64-10 MLP with dropout (0.3) after each hidden layer, trained with
//! AdamW (learning rate 3e-3, weight decay 0.1, batch 32, 40 epochs): test accuracy
//! 0.978 (0.958 without dropout and weight decay; scikit-learn's `MLPClassifier`
//! reaches 0.961–0.983 on seeded 80/20 splits of the same data). The evaluation
//! model is one `kiln::Network`: the forward function is written once and traced
//! for training (batch 32, dropout on) and evaluation (the whole test set,
//! evaluation mode), both over one parameter store. The data is split 80/20 with a
//! fixed seed; after training, the parameters, the dropout seed and the optimizer
//! state are saved to a safetensors checkpoint and loaded into a fresh network,
//! which must reach the same test accuracy.
//!
//! Run with `cargo run --example digits_mlp` (the build the tests share; `--release` for timing).

use std::time::Instant;

use kiln::Network;
use kiln::data::{CsvOptions, read_csv};
use kiln::prelude::*;

const BATCH: usize = 32;
const EPOCHS: usize = 40;
const SEED: u64 = 0;
const DROPOUT: f64 = 0.3;
/// AdamW's decoupled weight decay.
const WEIGHT_DECAY: f32 = 0.1;

/// The forward function: traced once for training (batch 32) and once for
/// evaluation (the test set's size); parameters are matched by name.
fn mlp(g: &GraphBuilder, x: &Tensor, rng: &mut Rng) -> Tensor {
    let fc1 = nn::Linear::new(g, "fc1", 64, 128, rng);
    let fc2 = nn::Linear::new(g, "fc2", 128, 64, rng);
    let fc3 = nn::Linear::new(g, "fc3", 64, 10, rng);
    // Dropout after each hidden layer: a new mask every step while training, the
    // identity in the evaluation graph (built with `set_training(false)`).
    let drop1 = nn::Dropout::new(g, DROPOUT);
    let drop2 = nn::Dropout::new(g, DROPOUT);
    let h = drop1.forward(&fc1.forward(x).relu());
    let h = drop2.forward(&fc2.forward(&h).relu());
    fc3.forward(&h)
}

/// The model as one [`Network`]: trained at batch 32 (training mode: dropout on),
/// evaluated on the whole test set at once (evaluation mode), one parameter store.
fn network() -> Network {
    Network::new("digits_mlp", &["x"], |g, x| {
        mlp(g, &x[0], &mut Rng::seed(SEED))
    })
    .with_loss(&["labels"], |logits, t| loss::cross_entropy(logits, &t[0]))
    .with_optimizer(Adam::adamw(3e-3, WEIGHT_DECAY))
}

/// The share of `data` classified right.
fn accuracy(net: &mut Network, data: &Dataset) -> Result<f64, Box<dyn std::error::Error>> {
    let x = HostTensor::from_f32([data.len(), data.dim()], data.features().to_vec())?;
    let logits = net.predict(&[("x", &x)])?;
    let logits = logits.as_f32().ok_or("logits are f32")?;
    let right = logits
        .chunks(10)
        .zip(data.labels())
        .filter(|(row, label)| {
            // The first highest score, as argmax.
            let best = (0..10).fold(0, |a, k| if row[k] > row[a] { k } else { a });
            best as i32 == **label
        })
        .count();
    Ok(right as f64 / data.len() as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz");
    let data = read_csv(path, &CsvOptions::default())?.map_features(|p| p / 16.0);
    let (train, test) = data.split(0.8, SEED);
    println!(
        "digits: {} training and {} test images of {} pixels, {} classes",
        train.len(),
        test.len(),
        data.dim(),
        data.num_classes()
    );

    let mut net = network();
    for epoch in 0..EPOCHS {
        let start = Instant::now();
        let (mut sum, mut steps) = (0.0, 0);
        for b in train
            .batches(BATCH)
            .shuffle(SEED + epoch as u64)
            .drop_last(true)
        {
            sum += net.train(&[("x", &b.x), ("labels", &b.labels)])?.loss;
            steps += 1;
        }
        println!(
            "epoch {:>2}/{EPOCHS}: train loss {:.4}, test accuracy {:.4} ({:.2} s)",
            epoch + 1,
            sum / steps as f64,
            accuracy(&mut net, &test)?,
            start.elapsed().as_secs_f64()
        );
    }
    let trained = accuracy(&mut net, &test)?;

    let checkpoint = std::env::temp_dir().join("kiln-digits-mlp.safetensors");
    net.save_checkpoint(&checkpoint)?;
    let before = accuracy(&mut network(), &test)?; // a fresh, untrained network
    let mut restored = network();
    restored.load_checkpoint(&checkpoint)?;
    let reloaded = accuracy(&mut restored, &test)?;
    println!(
        "checkpoint {} ({} tensors): fresh network {before:.4}, after loading {reloaded:.4}, trained {trained:.4}",
        checkpoint.display(),
        restored.params().len(),
    );
    if reloaded != trained {
        return Err("the reloaded model does not match the trained one".into());
    }
    println!("test accuracy: {reloaded:.4}");
    Ok(())
}
