//! W5: compile latency, from building the W2 training-step graph (batch 64) to the
//! first result of the compiled step. Measured in one warm process: the first
//! compile of a fresh process also starts the worker threads and touches the code
//! pages (`cargo run --release --example w2_timing` reports that figure).

use criterion::{Criterion, criterion_group, criterion_main};
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
criterion_main!(benches);
