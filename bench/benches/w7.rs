//! W7 (docs/WORKLOADS.md): MLP 784-4096-4096-10, ReLU, softmax cross-entropy,
//! Adam, batch 512 — large products, where what surrounds them must stay small.
//! Times the training step on one thread, then, in the same run, kiln's own GEMM
//! (`kiln::codegen::library::gemm::sgemm`, the routine the step calls) on the
//! step's eight products, and prints the step's rate as a fraction of the GEMM's
//! rate on the same FLOPs (median of 5 steps after 2 warm-up steps; GEMMs
//! likewise). Then the step on all cores.
//!
//! Run with `cargo bench --manifest-path bench/Cargo.toml --bench w7` (a plain
//! program, not a criterion bench: a step takes about a second).

use std::time::Instant;

use kiln::codegen::library::gemm::sgemm;
use kiln::prelude::*;
use kiln::workloads;

const BATCH: usize = 512;
const LAYERS: [(usize, usize); 3] = [(784, 4096), (4096, 4096), (4096, 10)];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `f` over 5 runs after 2 warm-up runs.
fn time(mut f: impl FnMut()) -> f64 {
    let mut t = Vec::new();
    for i in 0..7 {
        let start = Instant::now();
        f();
        if i >= 2 {
            t.push(start.elapsed().as_secs_f64());
        }
    }
    median(t)
}

/// The step's products as `(m, n, k, a transposed, b transposed)`: per layer
/// `x·Wᵀ` forward, `dy·W` for the input gradient (not for the first layer) and
/// `dyᵀ·x` for the weight gradient.
fn products() -> Vec<(usize, usize, usize, bool, bool)> {
    let mut p = Vec::new();
    for (i, &(inp, out)) in LAYERS.iter().enumerate() {
        p.push((BATCH, out, inp, false, true));
        if i > 0 {
            p.push((BATCH, inp, out, false, false));
        }
        p.push((out, inp, BATCH, true, false));
    }
    p
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Rng::seed(7);
    let g = GraphBuilder::new("w7");
    let loss = workloads::w7_loss(&g, BATCH, &mut rng);
    let mut step = TrainStep::new(&loss, &Adam::new(1e-3))?;
    let x = workloads::uniform(&mut rng, &[BATCH, 784], 0.0, 1.0);
    let labels = workloads::labels(&mut rng, BATCH, 10);
    let inputs = [("x", &x), ("labels", &labels)];

    step.compile_with(&CompileOptions {
        threads: 1,
        ..CompileOptions::default()
    })?;
    let mut result = Ok(());
    let one = time(|| {
        if let Err(e) = step.run(&inputs) {
            result = Err(e);
        }
    });
    result?;

    let flops: f64 = products()
        .iter()
        .map(|&(m, n, k, _, _)| 2.0 * (m * n * k) as f64)
        .sum();
    let mut gemm = 0.0;
    for (m, n, k, ta, tb) in products() {
        let a = vec![0.5f32; m * k];
        let b = vec![0.25f32; k * n];
        let mut c = vec![0.0f32; m * n];
        gemm += time(|| sgemm((m, n, k), &a, ta, &b, tb, 0.0, &mut c));
    }
    println!(
        "W7 Adam step, batch 512, 1 thread: median {:.1} ms, {:.1} GFLOP/s over its {:.1} GFLOP of products",
        one * 1e3,
        flops / one / 1e9,
        flops / 1e9
    );
    println!(
        "kiln's GEMM on the same products, same run: {:.1} ms, {:.1} GFLOP/s; the step runs at {:.0}% of it",
        gemm * 1e3,
        flops / gemm / 1e9,
        100.0 * gemm / one
    );

    step.compile()?;
    let all = time(|| {
        let _ = step.run(&inputs);
    });
    println!(
        "W7 step on all cores ({}): median {:.1} ms, {:.2}x one thread",
        CompileOptions::default().threads,
        all * 1e3,
        one / all
    );
    Ok(())
}
