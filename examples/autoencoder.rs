//! An autoencoder on the handwritten digits (examples/data/README.md), on the
//! 80/20 split of `digits_mlp`: an encoder 64 -> 32 -> 8 and a decoder 8 -> 32 ->
//! 64 with a sigmoid output, trained with Adam (1e-3, batch 32) on the MSE between
//! each image and its reconstruction. The model is one `kiln::Network`. At the end
//! it writes `autoencoder.png` (in the system's temporary folder): 10 test images
//! above their reconstructions, and `autoencoder.curves.png`: the train and test
//! error per epoch.
//!
//! Run with `cargo run --release --example autoencoder`; it ends with
//! `test reconstruction mse: <x>`.

use std::path::PathBuf;
use std::time::Instant;

use kiln::Network;
use kiln::data::{CsvOptions, Dataset, read_csv};
use kiln::plot::{GridOptions, save_curves, save_image_grid};
use kiln::prelude::*;

const BATCH: usize = 32;
const SEED: u64 = 0;
/// The size of the code between encoder and decoder.
const CODE: usize = 8;

/// What one run does.
pub struct AutoencoderRun {
    pub epochs: usize,
    pub verbose: bool,
    /// Where to write the picture of originals and reconstructions.
    pub picture: PathBuf,
}

/// What a run reached.
pub struct AutoencoderReport {
    /// The test set's mean squared reconstruction error after each epoch.
    pub test_mse: Vec<f64>,
    /// The training batches' mean squared error in each epoch.
    pub train_mse: Vec<f64>,
    /// The test set's mean squared error of predicting every pixel by its mean
    /// over the training set (what the model must beat).
    pub baseline_mse: f64,
}

/// Encoder and decoder over `x: [N, 64]` (pixels in `[0, 1]`): reconstructions.
fn autoencoder(g: &GraphBuilder, x: &Tensor) -> Tensor {
    let mut rng = Rng::seed(SEED);
    let enc1 = nn::Linear::new(g, "enc1", 64, 32, &mut rng);
    let enc2 = nn::Linear::new(g, "enc2", 32, CODE, &mut rng);
    let dec1 = nn::Linear::new(g, "dec1", CODE, 32, &mut rng);
    let dec2 = nn::Linear::new(g, "dec2", 32, 64, &mut rng);
    let code = enc2.forward(&enc1.forward(x).relu());
    dec2.forward(&dec1.forward(&code).relu()).sigmoid()
}

fn pixels(data: &Dataset) -> HostTensor {
    HostTensor::from_f32([data.len(), 64], data.features().to_vec()).expect("64 pixels")
}

fn mse(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64
}

/// Trains the autoencoder and writes the picture.
pub fn run(options: &AutoencoderRun) -> Result<AutoencoderReport, Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz");
    let data = read_csv(path, &CsvOptions::default())?.map_features(|p| p / 16.0);
    let (train, test) = data.split(0.8, SEED);
    let test_x = pixels(&test);
    let mut mean = [0.0f32; 64];
    for row in train.features().chunks(64) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v / train.len() as f32;
        }
    }
    let baseline: Vec<f32> = (0..test.len()).flat_map(|_| mean).collect();
    let baseline_mse = mse(&baseline, test_x.as_f32().ok_or("f32")?);

    let mut net = Network::new("autoencoder", &["x"], |g, x| autoencoder(g, &x[0]))
        .with_loss(&["target"], |y, t| loss::mse(y, &t[0]))
        .with_optimizer(Adam::new(1e-3));
    let mut report = AutoencoderReport {
        test_mse: Vec::new(),
        train_mse: Vec::new(),
        baseline_mse,
    };
    for epoch in 0..options.epochs {
        let start = Instant::now();
        let (mut sum, mut steps) = (0.0, 0);
        for b in train
            .batches(BATCH)
            .shuffle(SEED + epoch as u64)
            .drop_last(true)
        {
            sum += net.train(&[("x", &b.x), ("target", &b.x)])?.loss;
            steps += 1;
        }
        let y = net.predict(&[("x", &test_x)])?;
        let err = mse(y.as_f32().ok_or("f32")?, test_x.as_f32().ok_or("f32")?);
        report.test_mse.push(err);
        report.train_mse.push(sum / steps as f64);
        if options.verbose {
            println!(
                "epoch {:>2}/{}: train mse {:.5}, test mse {err:.5} ({:.2} s)",
                epoch + 1,
                options.epochs,
                sum / steps as f64,
                start.elapsed().as_secs_f64()
            );
        }
    }
    // Ten test images above their reconstructions.
    let first = HostTensor::from_f32([10, 64], test_x.as_f32().ok_or("f32")?[..640].to_vec())?;
    let rebuilt = net.predict(&[("x", &first)])?;
    let mut both = first.as_f32().ok_or("f32")?.to_vec();
    both.extend_from_slice(rebuilt.as_f32().ok_or("f32")?);
    let grid = HostTensor::from_f32([20, 8, 8], both)?;
    let (w, h) = save_image_grid(&options.picture, &grid, &GridOptions::new(10))?;
    let curves = options.picture.with_extension("curves.png");
    save_curves(&curves, &[&report.train_mse, &report.test_mse], 480, 240)?;
    if options.verbose {
        println!(
            "wrote {} ({w}x{h}): test images above their reconstructions",
            options.picture.display()
        );
        println!(
            "wrote {}: train (blue) and test (orange) mse per epoch",
            curves.display()
        );
        println!("mean-image baseline: test mse {baseline_mse:.5}");
    }
    Ok(report)
}

#[allow(dead_code)] // the test includes this file for `run`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let report = run(&AutoencoderRun {
        epochs: 60,
        verbose: true,
        picture: std::env::temp_dir().join("autoencoder.png"),
    })?;
    println!(
        "test reconstruction mse: {:.5}",
        report.test_mse.last().copied().unwrap_or(f64::NAN)
    );
    Ok(())
}
