//! W2: the MLP training step (forward + backward + Adam) at batch 64 and 256, and
//! the forward pass alone at batch 64; one thread and all cores.

use criterion::{Criterion, criterion_group, criterion_main};
use kiln_bench::{StepTimes, w2, w2_forward};

fn step(c: &mut Criterion) {
    let mut group = c.benchmark_group("w2_step");
    for batch in [64, 256] {
        for (threads, label) in [(1, "1_thread"), (0, "all_cores")] {
            let mut w = w2(batch).threads(threads);
            for _ in 0..20 {
                w.run();
            }
            let name = format!("batch_{batch}/{label}");
            let mut times = StepTimes::default();
            group.bench_function(&name, |b| {
                b.iter_custom(|iters| {
                    times.time(iters, || {
                        w.run();
                    })
                })
            });
            times.report(&format!("w2_step/{name}"));
        }
    }
    group.finish();
}

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("w2_forward");
    for (threads, label) in [(1, "1_thread"), (0, "all_cores")] {
        let (mut exe, args) = w2_forward(64, threads);
        let refs: Vec<_> = args.iter().collect();
        let mut loss = kiln::ir::HostTensor::full(kiln::ir::DType::F32, [], 0.0);
        let name = format!("batch_64/{label}");
        let mut times = StepTimes::default();
        group.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                times.time(iters, || {
                    exe.run_into(&refs, &mut [Some(&mut loss)]).expect("runs");
                })
            })
        });
        times.report(&format!("w2_forward/{name}"));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(100);
    targets = step, forward
}
criterion_main!(benches);
