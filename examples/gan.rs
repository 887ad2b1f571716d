//! A GAN on the handwritten digits (examples/data/README.md): a generator (noise
//! 16 -> 128 -> 64 pixels, tanh) and a discriminator (64 -> 128 -> 1, leaky ReLU,
//! BCE on logits), trained by two alternating steps, each over its own parameters
//! with its own Adam (2e-4, betas 0.5 / 0.999) and sharing the other's values
//! (`TrainStep::sync_from`). Samples are judged, not eyeballed: the CNN of
//! `digits_cnn`, trained in the same run, classifies 1000 of them.
//!
//! Run with `cargo run --release --example gan`; it writes `gan.png` (64 samples,
//! in the system's temporary folder), the same 64 after every quarter of the
//! training (`gan_epoch50.png`, ...), and ends with
//! `gan: <k> of 10 classes, mean confidence <c>`.

use std::path::PathBuf;

use kiln::data::{CsvOptions, read_csv};
use kiln::plot::{GridOptions, save_image_grid};
use kiln::prelude::*;

#[path = "digits_cnn.rs"]
#[allow(dead_code)]
mod digits_cnn;

const BATCH: usize = 32;
const NOISE: usize = 16;
const SEED: u64 = 0;

/// What one run does.
pub struct GanRun {
    pub epochs: usize,
    pub verbose: bool,
    pub picture: PathBuf,
}

/// What the judge saw in 1000 samples.
pub struct GanReport {
    /// How many of the 10 classes the samples cover (a class counts if at least
    /// 2% of the samples fall in it).
    pub classes: usize,
    /// The judge's mean probability of its chosen class.
    pub confidence: f64,
}

fn generator(g: &GraphBuilder, z: &Tensor) -> Tensor {
    let mut rng = Rng::seed(SEED);
    let l1 = nn::Linear::new(g, "g.fc1", NOISE, 128, &mut rng);
    let l2 = nn::Linear::new(g, "g.fc2", 128, 64, &mut rng);
    l2.forward(&l1.forward(z).leaky_relu(0.2)).tanh()
}

/// The discriminator's layers, declared once per graph and applied to real and
/// generated batches alike.
struct Discriminator(nn::Linear, nn::Linear);

impl Discriminator {
    fn new(g: &GraphBuilder) -> Self {
        let mut rng = Rng::seed(SEED + 1);
        Discriminator(
            nn::Linear::new(g, "d.fc1", 64, 128, &mut rng),
            nn::Linear::new(g, "d.fc2", 128, 1, &mut rng),
        )
    }

    /// Logits of "real", `[n, 1]`.
    fn forward(&self, x: &Tensor) -> Tensor {
        self.1.forward(&self.0.forward(x).leaky_relu(0.2))
    }
}

/// The discriminator's step: real images towards 1, generated ones towards 0.
fn d_step() -> Result<TrainStep, Box<TrainError>> {
    let g = GraphBuilder::new("gan_d");
    let real = g.input("real", DType::F32, [BATCH, 64]);
    let z = g.input("z", DType::F32, [BATCH, NOISE]);
    let fake = generator(&g, &z);
    let (ones, zeros) = (
        g.full(DType::F32, [BATCH, 1], 1.0),
        g.full(DType::F32, [BATCH, 1], 0.0),
    );
    let d = Discriminator::new(&g);
    let loss = loss::binary_cross_entropy_with_logits(&d.forward(&real), &ones)
        + loss::binary_cross_entropy_with_logits(&d.forward(&fake), &zeros);
    TrainStep::builder(&loss)
        .params_with_prefix("d.")
        .build(&Adam::new(2e-4).betas(0.5, 0.999))
        .map_err(Box::new)
}

/// The generator's step: generated images towards 1.
fn g_step() -> Result<TrainStep, Box<TrainError>> {
    let g = GraphBuilder::new("gan_g");
    let z = g.input("z", DType::F32, [BATCH, NOISE]);
    let ones = g.full(DType::F32, [BATCH, 1], 1.0);
    let fake = generator(&g, &z);
    let loss =
        loss::binary_cross_entropy_with_logits(&Discriminator::new(&g).forward(&fake), &ones);
    TrainStep::builder(&loss)
        .params_with_prefix("g.")
        .build(&Adam::new(2e-4).betas(0.5, 0.999))
        .map_err(Box::new)
}

fn noise(rng: &mut Rng, n: usize) -> HostTensor {
    HostTensor::from_f32(
        [n, NOISE],
        (0..n * NOISE).map(|_| rng.normal(0.0, 1.0)).collect(),
    )
    .expect("sized")
}

/// Generated images for a fixed batch of noise: a generator graph compiled once,
/// run with the generator step's current values; pixels in `[0, 1]`.
struct Sampler {
    exe: Executable,
    z: HostTensor,
}

impl Sampler {
    fn new(z: HostTensor) -> Result<Sampler, Box<dyn std::error::Error>> {
        let g = GraphBuilder::new("gan_sample");
        let zt = g.input("z", DType::F32, z.shape().clone());
        let images = generator(&g, &zt);
        let model = g.build(&[("x", &images)])?;
        Ok(Sampler {
            exe: kiln::compile(&model.graph)?,
            z,
        })
    }

    fn sample(&mut self, step: &TrainStep) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
        let args = self
            .exe
            .args()
            .iter()
            .map(|(name, _)| match name.as_str() {
                "z" => Ok(self.z.clone()),
                p => step.params().get(p).cloned().ok_or(p.to_string()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let x = self.exe.run(&args)?.swap_remove(0);
        Ok(x.as_f32()
            .ok_or("f32")?
            .iter()
            .map(|v| (v + 1.0) / 2.0)
            .collect())
    }

    /// Writes 64 samples as an 8x8 grid to `path`.
    fn save(
        &mut self,
        step: &TrainStep,
        path: &std::path::Path,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let grid = HostTensor::from_f32([64, 8, 8], self.sample(step)?[..64 * 64].to_vec())?;
        save_image_grid(path, &grid, &GridOptions::new(8))?;
        Ok(())
    }
}

/// Trains the GAN and judges 1000 samples.
pub fn run(options: &GanRun) -> Result<GanReport, Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz");
    // Pixels in [-1, 1], the generator's range.
    let data = read_csv(path, &CsvOptions::default())?.map_features(|p| p / 8.0 - 1.0);
    let (train, _) = data.split(0.8, SEED);
    let (mut d, mut g) = (d_step()?, g_step()?);
    let mut rng = Rng::seed(SEED + 2);
    // The same 64 noise vectors for every picture, so they show one training.
    let mut grid = Sampler::new(noise(&mut Rng::seed(SEED + 3), 64))?;
    let every = (options.epochs / 4).max(1);
    for epoch in 0..options.epochs {
        let (mut dl, mut gl, mut n) = (0.0, 0.0, 0);
        for b in train
            .batches(BATCH)
            .shuffle(SEED + epoch as u64)
            .drop_last(true)
        {
            d.sync_from(&g)?;
            dl += d
                .run(&[("real", &b.x), ("z", &noise(&mut rng, BATCH))])?
                .loss;
            g.sync_from(&d)?;
            gl += g.run(&[("z", &noise(&mut rng, BATCH))])?.loss;
            n += 1;
        }
        if options.verbose && (epoch + 1) % 20 == 0 {
            println!(
                "epoch {:>3}/{}: discriminator loss {:.3}, generator loss {:.3}",
                epoch + 1,
                options.epochs,
                dl / n as f64,
                gl / n as f64
            );
        }
        if (epoch + 1) % every == 0 && epoch + 1 < options.epochs {
            let stem = options.picture.with_extension("");
            let path = PathBuf::from(format!("{}_epoch{}.png", stem.display(), epoch + 1));
            grid.save(&g, &path)?;
            if options.verbose {
                println!(
                    "wrote {}: 64 samples after epoch {}",
                    path.display(),
                    epoch + 1
                );
            }
        }
    }
    grid.save(&g, &options.picture)?;
    if options.verbose {
        println!("wrote {}: 64 generated digits", options.picture.display());
    }

    // 1000 samples for the judge.
    let pixels = Sampler::new(noise(&mut rng, 1000))?.sample(&g)?;

    // The judge.
    let (mut cnn, acc) = digits_cnn::train(&digits_cnn::CnnRun {
        epochs: 10,
        verbose: false,
    })?;
    if options.verbose {
        println!(
            "judge: digits CNN, test accuracy {:.4}",
            acc.last().copied().unwrap_or(0.0)
        );
    }
    let x = HostTensor::from_f32([1000, 1, 8, 8], pixels)?;
    let scores = cnn.predict(&[("x", &x)])?;
    let (mut counts, mut confidence) = ([0usize; 10], 0.0);
    for row in scores.as_f32().ok_or("f32")?.chunks(10) {
        let best = (0..10).fold(0, |a, k| if row[k] > row[a] { k } else { a });
        let sum: f64 = row.iter().map(|&s| ((s - row[best]) as f64).exp()).sum();
        counts[best] += 1;
        confidence += 1.0 / sum;
    }
    Ok(GanReport {
        classes: counts.iter().filter(|&&c| c >= 20).count(),
        confidence: confidence / 1000.0,
    })
}

#[allow(dead_code)] // the test includes this file for `run`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let report = run(&GanRun {
        epochs: 200,
        verbose: true,
        picture: std::env::temp_dir().join("gan.png"),
    })?;
    println!(
        "gan: {} of 10 classes, mean confidence {:.3}",
        report.classes, report.confidence
    );
    Ok(())
}
