//! Measures W5 (compile latency: from building the W2 training-step graph to the
//! first result of the compiled step) and the W2 step time at batch 64 and 256
//! (median of 200 steps after 20 warm-up steps), on one thread and on all cores.
//! See docs/WORKLOADS.md.
//!
//! Run with `cargo run --release --example w2_timing`. This is the quick report,
//! and the one W5 figure taken in a fresh process; the criterion benchmarks are in
//! `bench/` (see BENCHMARKS.md).

use std::time::Instant;

use kiln::prelude::*;
use kiln::workloads;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const BATCH: usize = 64;
    let mut rng = Rng::seed(0);
    let xs = workloads::uniform(&mut rng, &[BATCH, 784], 0.0, 1.0);
    let ys = workloads::labels(&mut rng, BATCH, 10);

    let start = Instant::now();
    let mut step = workloads::w2_step(BATCH, &mut rng)?;
    let built = start.elapsed();
    let first = step.run(&[("x", &xs), ("labels", &ys)])?;
    let w5 = start.elapsed();
    let exe = step.compile()?;
    let (loops, calls) = exe.program().kernel_counts();
    let t = exe.timings().clone();
    println!(
        "W5 compile latency: {:.2} ms to the first result (graph + autodiff {:.2} ms, egg {:.2} ms, schedule {:.2} ms, Cranelift {:.2} ms); {} graph nodes, {loops} loop kernels, {calls} library calls; first loss {:.4}",
        w5.as_secs_f64() * 1e3,
        built.as_secs_f64() * 1e3,
        t.optimize.as_secs_f64() * 1e3,
        t.schedule.as_secs_f64() * 1e3,
        t.codegen.as_secs_f64() * 1e3,
        step.graph().node_count(),
        first.loss
    );

    let (med, lo, hi) = median_step(&mut step, &xs, &ys, 1)?;
    println!(
        "W2 Adam step, batch 64, 1 thread: median {med:.3} ms (min {lo:.3}, max {hi:.3}) over 200 steps"
    );
    let (med, lo, hi) = median_step(&mut step, &xs, &ys, 0)?;
    println!("W2 Adam step, batch 64, all cores: median {med:.3} ms (min {lo:.3}, max {hi:.3})");

    // Batch 256: one thread against all cores.
    const BIG: usize = 256;
    let mut big = workloads::w2_step(BIG, &mut rng)?;
    let xs = workloads::uniform(&mut rng, &[BIG, 784], 0.0, 1.0);
    let ys = workloads::labels(&mut rng, BIG, 10);
    let (one, lo1, hi1) = median_step(&mut big, &xs, &ys, 1)?;
    let (all, lo2, hi2) = median_step(&mut big, &xs, &ys, 0)?;
    println!("W2 Adam step, batch 256, 1 thread: median {one:.3} ms (min {lo1:.3}, max {hi1:.3})");
    println!(
        "W2 Adam step, batch 256, {} threads: median {all:.3} ms (min {lo2:.3}, max {hi2:.3}); speedup {:.2}x",
        CompileOptions::default().threads,
        one / all
    );
    Ok(())
}

/// Compiles `step` for `threads` (0: the default, all cores) and returns the median,
/// min and max milliseconds of 200 steps after 20 warm-up steps.
fn median_step(
    step: &mut TrainStep,
    xs: &HostTensor,
    ys: &HostTensor,
    threads: usize,
) -> Result<(f64, f64, f64), Box<dyn std::error::Error>> {
    let mut options = CompileOptions::default();
    if threads > 0 {
        options.threads = threads;
    }
    step.compile_with(&options)?;
    for _ in 0..20 {
        step.run(&[("x", xs), ("labels", ys)])?;
    }
    let mut times = Vec::with_capacity(200);
    for _ in 0..200 {
        let t = Instant::now();
        step.run(&[("x", xs), ("labels", ys)])?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[100], times[0], times[199]))
}
