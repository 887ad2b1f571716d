//! Builds the training step of a small MLP classifier (forward, backward and Adam
//! update in one graph), prints that graph in kiln's text format, then trains it
//! (compiled to native code on the first step) and prints the loss falling.
//!
//! The data: 4 classes of 16-dimensional points scattered around random centres.
//!
//! Run with `cargo run --release --example mlp_step`.

use kiln::prelude::*;

const BATCH: usize = 32;
const FEATURES: usize = 16;
const CLASSES: usize = 4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Rng::seed(7);
    let g = GraphBuilder::new("mlp_step");
    let x = g.input("x", DType::F32, [BATCH, FEATURES]);
    let labels = g.input("labels", DType::I32, [BATCH]);
    let fc1 = nn::Linear::new(&g, "fc1", FEATURES, 32, &mut rng);
    let fc2 = nn::Linear::new(&g, "fc2", 32, CLASSES, &mut rng);
    let logits = fc2.forward(&fc1.forward(&x).relu());
    let loss = loss::cross_entropy(&logits, &labels);
    let mut step = TrainStep::with_outputs(&loss, &Adam::new(1e-2), &[("logits", &logits)])?;
    println!("{}", step.graph());

    let centres: Vec<f32> = (0..CLASSES * FEATURES)
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    for i in 0..=100 {
        let mut xs = Vec::with_capacity(BATCH * FEATURES);
        let mut ys = Vec::with_capacity(BATCH);
        for _ in 0..BATCH {
            let class = rng.below(CLASSES as u64) as usize;
            ys.push(class as i32);
            xs.extend((0..FEATURES).map(|f| centres[class * FEATURES + f] + rng.normal(0.0, 0.7)));
        }
        let xs = HostTensor::from_f32([BATCH, FEATURES], xs)?;
        let ys_t = HostTensor::from_i32([BATCH], ys.clone())?;
        let out = step.run(&[("x", &xs), ("labels", &ys_t)])?;
        if i % 10 == 0 {
            let logits = out.outputs[0].as_f32().expect("f32 logits");
            let correct = ys
                .iter()
                .enumerate()
                .filter(|&(r, &y)| {
                    let row = &logits[r * CLASSES..(r + 1) * CLASSES];
                    let best = (0..CLASSES).fold(0, |b, c| if row[c] > row[b] { c } else { b });
                    best == y as usize
                })
                .count();
            println!(
                "step {i:3}  loss {:.4}  batch accuracy {:.2}",
                out.loss,
                correct as f64 / BATCH as f64
            );
        }
    }
    Ok(())
}
