//! W4: the LSTM tagger training step (SGD) at sequence 32, batch 16; one thread and
//! all cores.

use criterion::{Criterion, criterion_group, criterion_main};
use kiln_bench::{StepTimes, w4};

fn step(c: &mut Criterion) {
    let mut group = c.benchmark_group("w4_step");
    for (threads, label) in [(1, "1_thread"), (0, "all_cores")] {
        let mut w = w4(32).threads(threads);
        for _ in 0..20 {
            w.run();
        }
        let name = format!("seq_32_batch_16/{label}");
        let mut times = StepTimes::default();
        group.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                times.time(iters, || {
                    w.run();
                })
            })
        });
        times.report(&format!("w4_step/{name}"));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = step
}
criterion_main!(benches);
