//! Measures the W3 LeNet training step (docs/WORKLOADS.md): conv 3->6 k5, ReLU,
//! maxpool 2, conv 6->16 k5, ReLU, maxpool 2, fc 400-120-84-10 with ReLU between,
//! softmax cross-entropy, SGD momentum 0.9, lr 1e-3, batch 128, input 3x32x32 —
//! median of 200 steps after 50 warm-up steps, on one thread and on all cores.
//!
//! Run with `cargo run --release --example w3_timing`; the criterion benchmark is
//! `cargo bench --manifest-path bench/Cargo.toml --bench w3` (BENCHMARKS.md).

use std::time::Instant;

use kiln::prelude::*;
use kiln::workloads;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const BATCH: usize = 128;
    let mut rng = Rng::seed(3);
    let xs = workloads::uniform(&mut rng, &[BATCH, 3, 32, 32], -1.0, 1.0);
    let ys = workloads::labels(&mut rng, BATCH, 10);

    let start = Instant::now();
    let mut step = workloads::w3_step(BATCH, &mut rng)?;
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
