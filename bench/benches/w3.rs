//! W3: the LeNet training step (SGD with momentum) at batch 128; one thread and
//! all cores.

use criterion::{Criterion, criterion_group, criterion_main};
use kiln_bench::{StepTimes, w3};

fn step(c: &mut Criterion) {
    let mut group = c.benchmark_group("w3_step");
    for (threads, label) in [(1, "1_thread"), (0, "all_cores")] {
        let mut w = w3(128).threads(threads);
        for _ in 0..50 {
            w.run();
        }
        let name = format!("batch_128/{label}");
        let mut times = StepTimes::default();
        group.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                times.time(iters, || {
                    w.run();
                })
            })
        });
        times.report(&format!("w3_step/{name}"));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = step
}
criterion_main!(benches);
