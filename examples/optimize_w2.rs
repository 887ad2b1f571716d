//! Runs the egg optimizer on the W2 training step (MLP 784-128-64-10, ReLU, softmax
//! cross-entropy, Adam, batch 64) and prints what it did: node counts, fused nodes,
//! the cost model's estimate of bytes moved, and wall time (median of 20 runs).
//!
//! Run with `cargo run --release --example optimize_w2`.

use std::time::Instant;

use kiln::passes::optimize::{fused_nodes, graph_cost, optimize};
use kiln::prelude::*;
use kiln::workloads;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let step = workloads::w2_step(64, &mut Rng::seed(7))?;
    let graph = step.graph();

    let mut times = Vec::new();
    let mut result = None;
    for _ in 0..20 {
        let t = Instant::now();
        let r = optimize(graph)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        result = Some(r);
    }
    times.sort_by(f64::total_cmp);
    let (opt, stats) = result.expect("ran at least once");
    let (before, after) = (graph_cost(graph), graph_cost(&opt));
    println!("W2 training step (MLP 784-128-64-10, Adam, batch 64)");
    println!("nodes: {} -> {}", graph.node_count(), opt.node_count());
    println!("fused nodes: {}", fused_nodes(&opt));
    println!(
        "estimated bytes moved: {:.2} MB -> {:.2} MB ({:+.1}%)",
        before.bytes / 1e6,
        after.bytes / 1e6,
        100.0 * (after.bytes / before.bytes - 1.0)
    );
    println!(
        "optimizer wall time: median {:.2} ms, min {:.2} ms, max {:.2} ms",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
    println!("last run:\n{stats}");
    Ok(())
}
