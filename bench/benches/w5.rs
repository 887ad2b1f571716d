//! W5: compile latency, from building the W2 training-step graph (batch 64) to the
//! first result of the compiled step. Measured in one warm process: the first
//! compile of a fresh process also starts the worker threads and touches the code
//! pages. With `--fresh`, this binary measures that instead: one compile for one
//! thread, as a user's program meets it, printed in ms (the peer harness runs it in
//! several processes).

use std::time::Instant;

use criterion::{Criterion, criterion_group};
use kiln_bench::{StepTimes, w2};

fn latency(c: &mut Criterion) {
    let mut times = StepTimes::default();
    c.bench_function("w5_compile_to_first_result/batch_64", |b| {
        b.iter_custom(|iters| {
            times.time(iters, || {
                w2(64).run();
            })
        })
    });
    times.report("w5_compile_to_first_result/batch_64");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = latency
}
fn main() {
    if std::env::args().any(|a| a == "--fresh") {
        let start = Instant::now();
        let loss = w2(64).threads(1).run();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        assert!(loss.is_finite(), "the first loss is {loss}");
        println!("{ms:.3}");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
