//! Measures the W4 tagger training step (docs/WORKLOADS.md): embedding (vocab
//! 1000, dim 64) -> LSTM (hidden 128) -> linear 128->16 -> log-softmax + NLL,
//! SGD lr 0.1, batch 16 — at sequence lengths 32 and 512. The LSTM is one `scan`,
//! so the graph and the compile time do not grow with the length; only the step
//! time does.
//!
//! Run with `cargo run --release --example w4_timing`. One line per length:
//! `W4 T=<T>: compile <ms> ms, step median <ms> ms, <N> graph nodes` (compile:
//! from the training step's graph to native code, optimizer included; step: the
//! median over 20 steps after 3 warm-up steps, one thread; nodes: the training
//! step's graph with its loop bodies).

use std::time::Instant;

use kiln::prelude::*;
use kiln::workloads::{self, W4_TAGS, W4_VOCAB};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const BATCH: usize = 16;
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
        for _ in 0..3 {
            step.run(&inputs)?;
        }
        let mut times: Vec<f64> = (0..20)
            .map(|_| {
                let t = Instant::now();
                step.run(&inputs).expect("step");
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let last = step.run(&inputs)?.loss;
        println!(
            "W4 T={seq}: compile {compile_ms:.1} ms, step median {:.2} ms, {nodes} graph nodes",
            times[10]
        );
        println!("    loss {first:.4} -> {last:.4} after 25 steps on one batch");
    }
    Ok(())
}
