//! Measures the W3 LeNet training step (shared/WORKLOADS.md): conv 3->6 k5, ReLU,
//! maxpool 2, conv 6->16 k5, ReLU, maxpool 2, fc 400-120-84-10 with ReLU between,
//! softmax cross-entropy, SGD momentum 0.9, lr 1e-3, batch 128, input 3x32x32 —
//! median of 200 steps after 50 warm-up steps, on one thread and on all cores.
//!
//! Run with `cargo run --release --example w3_timing`; the criterion benchmark is
//! `cargo bench --manifest-path bench/Cargo.toml --bench w3` (BENCHMARKS.md).

use std::time::Instant;

use kiln::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const BATCH: usize = 128;
    let mut rng = Rng::seed(3);
    let xs = HostTensor::from_f32(
        [BATCH, 3, 32, 32],
        (0..BATCH * 3 * 32 * 32)
            .map(|_| rng.uniform(-1.0, 1.0))
            .collect(),
    )?;
    let ys = HostTensor::from_i32([BATCH], (0..BATCH).map(|_| rng.below(10) as i32).collect())?;

    let start = Instant::now();
    let g = GraphBuilder::new("lenet");
    let x = g.input("x", DType::F32, [BATCH, 3, 32, 32]);
    let labels = g.input("labels", DType::I32, [BATCH]);
    let conv1 = nn::Conv2d::new(&g, "conv1", 3, 6, 5, &mut rng);
    let conv2 = nn::Conv2d::new(&g, "conv2", 6, 16, 5, &mut rng);
    let pool = nn::MaxPool2d::new(2);
    let h = pool.forward(&conv1.forward(&x).relu());
    let h = pool.forward(&conv2.forward(&h).relu());
    let h = h.flatten(1);
    let fc1 = nn::Linear::new(&g, "fc1", 400, 120, &mut rng);
    let fc2 = nn::Linear::new(&g, "fc2", 120, 84, &mut rng);
    let fc3 = nn::Linear::new(&g, "fc3", 84, 10, &mut rng);
    let logits = fc3.forward(&fc2.forward(&fc1.forward(&h).relu()).relu());
    let loss = loss::cross_entropy(&logits, &labels);
    let mut step = TrainStep::new(&loss, &Sgd::new(1e-3).momentum(0.9))?;
    let first = step.run(&[("x", &xs), ("labels", &ys)])?;
    println!(
        "compile latency {:.1} ms to the first result; first loss {:.4}",
        start.elapsed().as_secs_f64() * 1e3,
        first.loss
    );
    for (threads, label) in [
        (1, "1 thread"),
        (CompileOptions::default().threads, "all cores"),
    ] {
        step.compile_with(&CompileOptions {
            threads,
            ..CompileOptions::default()
        })?;
        for _ in 0..50 {
            step.run(&[("x", &xs), ("labels", &ys)])?;
        }
        let mut times: Vec<f64> = (0..200)
            .map(|_| {
                let t = Instant::now();
                step.run(&[("x", &xs), ("labels", &ys)]).expect("step");
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "W3 LeNet SGD-momentum step, batch 128, {label} ({threads}): median {:.2} ms (min {:.2}, max {:.2}) over 200 steps",
            times[100], times[0], times[199]
        );
    }
    let last = step.run(&[("x", &xs), ("labels", &ys)])?.loss;
    println!("loss after {} steps: {last:.4}", 1 + 2 * 250 + 1);
    Ok(())
}
