//! Measures W5 (compile latency: from building the W2 training-step graph to the
//! first result of the compiled step) and the W2 step time at batch 64 and 256
//! (median of 200 steps after 20 warm-up steps), on one thread and on all cores.
//! See shared/WORKLOADS.md.
//!
//! Run with `cargo run --release --example w2_timing`. This is the quick report,
//! and the one W5 figure taken in a fresh process; the criterion benchmarks are in
//! `bench/` (see BENCHMARKS.md).

use std::time::Instant;

use kiln::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const BATCH: usize = 64;
    let mut rng = Rng::seed(0);
    let xs = HostTensor::from_f32(
        [BATCH, 784],
        (0..BATCH * 784).map(|_| rng.uniform(0.0, 1.0)).collect(),
    )?;
    let ys = HostTensor::from_i32([BATCH], (0..BATCH).map(|_| rng.below(10) as i32).collect())?;

    let start = Instant::now();
    let g = GraphBuilder::new("w2");
    let x = g.input("x", DType::F32, [BATCH, 784]);
    let labels = g.input("labels", DType::I32, [BATCH]);
    let fc1 = nn::Linear::new(&g, "fc1", 784, 128, &mut rng);
    let fc2 = nn::Linear::new(&g, "fc2", 128, 64, &mut rng);
    let fc3 = nn::Linear::new(&g, "fc3", 64, 10, &mut rng);
    let logits = fc3.forward(&fc2.forward(&fc1.forward(&x).relu()).relu());
    let loss = loss::cross_entropy(&logits, &labels);
    let mut step = TrainStep::new(&loss, &Adam::new(1e-3))?;
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
    let g = GraphBuilder::new("w2_256");
    let x = g.input("x", DType::F32, [BIG, 784]);
    let labels = g.input("labels", DType::I32, [BIG]);
    let fc1 = nn::Linear::new(&g, "fc1", 784, 128, &mut rng);
    let fc2 = nn::Linear::new(&g, "fc2", 128, 64, &mut rng);
    let fc3 = nn::Linear::new(&g, "fc3", 64, 10, &mut rng);
    let logits = fc3.forward(&fc2.forward(&fc1.forward(&x).relu()).relu());
    let loss = loss::cross_entropy(&logits, &labels);
    let mut big = TrainStep::new(&loss, &Adam::new(1e-3))?;
    let xs = HostTensor::from_f32(
        [BIG, 784],
        (0..BIG * 784).map(|_| rng.uniform(0.0, 1.0)).collect(),
    )?;
    let ys = HostTensor::from_i32([BIG], (0..BIG).map(|_| rng.below(10) as i32).collect())?;
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
