//! W2 (docs/WORKLOADS.md) on real MNIST: the 784-128-64-10 ReLU MLP, softmax
//! cross-entropy, Adam (1e-3), batch 64, read from the IDX files in `--data DIR`.
//! The training loop is written out by hand here (digits_mlp uses `kiln::Fit`).
//!
//! Run with `cargo run --release --example mnist_mlp -- --data DIR [--epochs N]`.
//! Without `--data` it says how to get the files and exits.

use std::path::{Path, PathBuf};
use std::time::Instant;

use kiln::data::read_idx_dataset;
use kiln::prelude::*;
use kiln::workloads::w2_mlp;

const BATCH: usize = 64;

const HOW_TO_GET: &str = "\
usage: cargo run --release --example mnist_mlp -- --data DIR [--epochs N]

DIR holds the four MNIST files in IDX format, gzip-compressed or not:
  train-images-idx3-ubyte  train-labels-idx1-ubyte
  t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte
(`train-images.idx3-ubyte` spellings and a `.gz` suffix are accepted too).

To get them, either
  - download the four `.gz` files of the MNIST database (Y. LeCun, C. Cortes,
    C. J. C. Burges), e.g. from the mirror torchvision uses,
    https://ossci-datasets.s3.amazonaws.com/mnist/, or
  - run `python -c \"import torchvision; torchvision.datasets.MNIST('mnist', download=True)\"`
    and pass `--data mnist/MNIST/raw`.
Fashion-MNIST (github.com/zalandoresearch/fashion-mnist) uses the same names and
format and works as well.";

/// The file `stem` in `dir`, under any of the usual spellings.
fn find(dir: &Path, stem: &str) -> Result<PathBuf, String> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    let names = [
        stem.to_string(),
        format!("{stem}.gz"),
        dotted.clone(),
        format!("{dotted}.gz"),
    ];
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{} has no {stem}[.gz]\n\n{HOW_TO_GET}", dir.display()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut epochs) = (None, 5usize);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--data" => dir = args.next().map(PathBuf::from),
            "--epochs" => epochs = args.next().ok_or("--epochs needs a number")?.parse()?,
            "-h" | "--help" => {
                println!("{HOW_TO_GET}");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}`\n\n{HOW_TO_GET}").into()),
        }
    }
    let Some(dir) = dir else {
        println!("No MNIST data given.\n\n{HOW_TO_GET}");
        return Ok(());
    };

    let load = |images: &str, labels: &str| -> Result<Dataset, Box<dyn std::error::Error>> {
        let data = read_idx_dataset(find(&dir, images)?, find(&dir, labels)?)?;
        Ok(data.map_features(|p| p / 255.0))
    };
    let train = load("train-images-idx3-ubyte", "train-labels-idx1-ubyte")?;
    let test = load("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?;
    if train.dim() != 784 || test.dim() != 784 {
        return Err(format!(
            "expected 28x28 images, found {} and {} pixels",
            train.dim(),
            test.dim()
        )
        .into());
    }
    println!(
        "MNIST: {} training and {} test images",
        train.len(),
        test.len()
    );

    let g = GraphBuilder::new("w2");
    let x = g.input("x", DType::F32, [BATCH, 784]);
    let labels = g.input("labels", DType::I32, [BATCH]);
    let loss = loss::cross_entropy(&w2_mlp(&g, &x, &mut Rng::seed(0)), &labels);
    let mut step = TrainStep::new(&loss, &Adam::new(1e-3))?;
    let mut eval = Evaluator::new(|batch| {
        let g = GraphBuilder::new("w2_eval");
        let x = g.input("x", DType::F32, [batch, 784]);
        let logits = w2_mlp(&g, &x, &mut Rng::seed(0));
        g.build(&[("logits", &logits)]).map(|m| m.graph)
    });

    let mut accuracy = 0.0;
    for epoch in 1..=epochs {
        let start = Instant::now();
        let (mut loss_sum, mut steps) = (0.0, 0);
        // Drop the last partial batch: the compiled step is specialized to BATCH.
        for batch in train.batches(BATCH).shuffle(epoch as u64).drop_last(true) {
            loss_sum += step
                .run(&[("x", &batch.x), ("labels", &batch.labels)])?
                .loss;
            steps += 1;
        }
        let seconds = start.elapsed().as_secs_f64();
        let result = eval.evaluate(step.params(), &test)?;
        accuracy = result.accuracy;
        println!(
            "epoch {epoch}/{epochs}  loss {:.4}  test loss {:.4}  test acc {:.4}  {:.0} samples/s",
            loss_sum / steps as f64,
            result.loss,
            result.accuracy,
            (steps * BATCH) as f64 / seconds
        );
    }
    println!("test accuracy: {accuracy:.4}");
    Ok(())
}
