//! Handwritten digits (8x8 pixels, 1797 images; examples/data/README.md) classified
//! by a 64-128-64-10 MLP with dropout (0.3) after each hidden layer, trained with
//! AdamW (learning rate 3e-3, weight decay 0.1, batch 32, 40 epochs): test accuracy
//! 0.972 (0.958 without dropout and weight decay; scikit-learn's `MLPClassifier`
//! reaches 0.961–0.983 on seeded 80/20 splits of the same data). The evaluation
//! graph is built in evaluation mode (no dropout). The data is split 80/20 with a
//! fixed seed; after training, the
//! parameters and optimizer state are saved to a safetensors checkpoint and loaded
//! into a freshly built step, which must reach the same test accuracy.
//!
//! Run with `cargo run --example digits_mlp` (the build the tests share; `--release` for timing).

use kiln::data::{CsvOptions, read_csv};
use kiln::prelude::*;

const BATCH: usize = 32;
const EPOCHS: usize = 40;
const SEED: u64 = 0;
const DROPOUT: f64 = 0.3;
/// AdamW's decoupled weight decay.
const WEIGHT_DECAY: f32 = 0.1;

/// The model: the same function builds the training step (batch 32) and the
/// evaluation graph (any batch size); parameters are matched by name.
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

fn train_step() -> Result<TrainStep, Box<dyn std::error::Error>> {
    let g = GraphBuilder::new("digits_mlp");
    let x = g.input("x", DType::F32, [BATCH, 64]);
    let labels = g.input("labels", DType::I32, [BATCH]);
    let logits = mlp(&g, &x, &mut Rng::seed(SEED));
    let loss = loss::cross_entropy(&logits, &labels);
    let optimizer = Adam::adamw(3e-3, WEIGHT_DECAY);
    let step = TrainStep::with_outputs(&loss, &optimizer, &[("logits", &logits)])?;
    Ok(step)
}

fn evaluator() -> Evaluator<'static> {
    Evaluator::new(|batch| {
        let g = GraphBuilder::new("digits_mlp_eval");
        g.set_training(false);
        let x = g.input("x", DType::F32, [batch, 64]);
        // Initial values are irrelevant: the evaluator passes the trained ones.
        let logits = mlp(&g, &x, &mut Rng::seed(SEED));
        g.build(&[("logits", &logits)]).map(|m| m.graph)
    })
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

    let mut step = train_step()?;
    let mut eval = evaluator();
    // `Fit` is a thin loop; by hand, one epoch is
    //   for b in train.batches(BATCH).shuffle(seed).drop_last(true) {
    //       step.run(&[("x", &b.x), ("labels", &b.labels)])?;
    //   }
    Fit::new(EPOCHS, BATCH)
        .seed(SEED)
        .run(&mut step, &train, Some((&mut eval, &test)))?;
    let trained = eval.evaluate(step.params(), &test)?;

    let checkpoint = std::env::temp_dir().join("kiln-digits-mlp.safetensors");
    step.save_checkpoint(&checkpoint)?;
    let mut restored = train_step()?; // a fresh, untrained step
    let before = eval.evaluate(restored.params(), &test)?;
    restored.load_checkpoint(&checkpoint)?;
    let reloaded = eval.evaluate(restored.params(), &test)?;
    println!(
        "checkpoint {} ({} tensors): fresh step {:.4}, after loading {:.4}, trained {:.4}",
        checkpoint.display(),
        restored.params().len(),
        before.accuracy,
        reloaded.accuracy,
        trained.accuracy
    );
    if reloaded != trained {
        return Err("the reloaded model does not match the trained one".into());
    }
    println!("test accuracy: {:.4}", reloaded.accuracy);
    Ok(())
}
