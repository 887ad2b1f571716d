//! Measures the W4 tagger training step (docs/WORKLOADS.md): embedding (vocab
//! 1000, dim 64) -> LSTM (hidden 128) -> linear 128->16 -> log-softmax + NLL,
//! SGD lr 0.1, batch 16 — at sequence lengths 32 and 512. The LSTM is one `scan`,
//! so the graph and the compile time do not grow with the length; only the step
//! time does.
//!
//! Run with `cargo run --release --example w4_timing`. One line per length:
//! `W4 T=<T>: compile <ms> ms, step median <ms> ms, <N> graph nodes` (compile:
//! from the training step's graph to native code, optimizer included, in a
//! process that has compiled once already; step: the
//! median over 200 steps after 20 warm-up steps at T = 32, 20 after 2 at T = 512,
//! one thread; nodes: the training step's graph with its loop bodies), then the
//! median on all cores.

use std::time::Instant;

use kiln::prelude::*;
use kiln::workloads::{self, W4_TAGS, W4_VOCAB};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const BATCH: usize = 16;
    // The process's first compile also starts the JIT and the worker pool (W5
    // measures that); compile once before timing.
    workloads::w4_step(32, BATCH, &mut Rng::seed(4))?.compile()?;
    for seq in [32, 512] {
        let mut rng = Rng::seed(4);
        let tokens = workloads::tokens(&mut rng, &[seq, BATCH], W4_VOCAB);
        let tags = workloads::tokens(&mut rng, &[seq, BATCH], W4_TAGS);
        let inputs = [("tokens", &tokens), ("tags", &tags)];
        let mut step = workloads::w4_step(seq, BATCH, &mut rng)?;
        let nodes = step.graph().total_node_count();
        let start = Instant::now();
        step.compile_with(&CompileOptions {
            threads: 1,
            ..CompileOptions::default()
        })?;
        let compile_ms = start.elapsed().as_secs_f64() * 1e3;
        let first = step.run(&inputs)?.loss;
        // The protocol's 200 steps after 20 at T = 32; a tenth of that at T = 512.
        let (warm, steps) = if seq <= 64 { (20, 200) } else { (2, 20) };
        let median = |step: &mut TrainStep| -> f64 {
            for _ in 0..warm {
                step.run(&inputs).expect("step");
            }
            let mut times: Vec<f64> = (0..steps)
                .map(|_| {
                    let t = Instant::now();
                    step.run(&inputs).expect("step");
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            times.sort_by(f64::total_cmp);
            times[steps / 2]
        };
        let one = median(&mut step);
        let last = step.run(&inputs)?.loss;
        println!(
            "W4 T={seq}: compile {compile_ms:.1} ms, step median {one:.2} ms, {nodes} graph nodes"
        );
        step.compile_with(&CompileOptions::default())?;
        let all = median(&mut step);
        println!(
            "    all cores ({}): step median {all:.2} ms; loss {first:.4} -> {last:.4} after {} steps on one batch",
            CompileOptions::default().threads,
            1 + warm + steps
        );
    }
    Ok(())
}
