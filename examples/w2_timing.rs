//! Measures W5 (compile latency: from building the W2 training-step graph to the
//! first result of the compiled step) and the W2 step time at batch 64 (median of
//! 200 steps after 20 warm-up steps), single-threaded. See shared/WORKLOADS.md.
//!
//! Run with `cargo run --release --example w2_timing`. Criterion benchmarks with
//! peer comparisons come with the performance issue; this is a quick report.

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

    for _ in 0..20 {
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
        "W2 Adam step, batch 64: median {:.3} ms (min {:.3}, max {:.3}) over 200 steps",
        times[100], times[0], times[199]
    );
    Ok(())
}
