//! The thread count changes speed, not results: GEMMs split their rows or columns
//! across threads, convolutions and pooling their images (the weight gradient its
//! kernel taps), and every output element is still summed by one thread in one
//! order. The multi-threaded runs do split their work (`split_runs`), so the
//! comparisons are not of one thread with itself.

use kiln::codegen::parallel::split_runs;
use kiln::prelude::*;
use kiln::workloads;

/// W2 (docs/WORKLOADS.md) with its data.
fn w2(batch: usize) -> (TrainStep, HostTensor, HostTensor) {
    let mut rng = Rng::seed(9);
    let step = workloads::w2_step(batch, &mut rng).unwrap();
    let xs = workloads::uniform(&mut rng, &[batch, 784], 0.0, 1.0);
    let ys = workloads::labels(&mut rng, batch, 10);
    (step, xs, ys)
}

#[test]
fn one_and_two_threads_give_identical_steps() {
    let (mut one, xs, ys) = w2(256);
    let mut two = one.clone();
    one.compile_with(&CompileOptions {
        threads: 1,
        ..CompileOptions::default()
    })
    .unwrap();
    two.compile_with(&CompileOptions {
        threads: 2,
        ..CompileOptions::default()
    })
    .unwrap();
    for _ in 0..3 {
        let before = split_runs();
        let a = one.run(&[("x", &xs), ("labels", &ys)]).unwrap().loss;
        assert_eq!(split_runs(), before, "one thread split its work");
        let b = two.run(&[("x", &xs), ("labels", &ys)]).unwrap().loss;
        assert!(split_runs() > before, "two threads did not split the work");
        assert_eq!(a.to_bits(), b.to_bits(), "loss {a} vs {b}");
    }
    for (name, value) in one.params().iter() {
        assert_eq!(value, two.params().get(name).unwrap(), "{name}");
    }
}

/// A LeNet-like step large enough that every convolution and pooling call splits.
fn lenet(batch: usize) -> (TrainStep, HostTensor, HostTensor) {
    let mut rng = Rng::seed(4);
    let g = GraphBuilder::new("lenet");
    let x = g.input("x", DType::F32, [batch, 3, 32, 32]);
    let labels = g.input("labels", DType::I32, [batch]);
    let conv1 = nn::Conv2d::new(&g, "conv1", 3, 6, 5, &mut rng);
    let conv2 = nn::Conv2dConfig::new(6, 16, 5)
        .with_padding(1)
        .init(&g, "conv2", &mut rng);
    let pool = nn::MaxPool2d::new(2);
    let h = pool.forward(&conv1.forward(&x).relu());
    let h = pool.forward(&conv2.forward(&h).relu()).flatten(1);
    let fc = nn::Linear::new(&g, "fc", 16 * 6 * 6, 10, &mut rng);
    let loss = loss::cross_entropy(&fc.forward(&h), &labels);
    let step = TrainStep::new(&loss, &Sgd::new(1e-2).momentum(0.9)).unwrap();
    let xs = workloads::uniform(&mut rng, &[batch, 3, 32, 32], -1.0, 1.0);
    let ys = workloads::labels(&mut rng, batch, 10);
    (step, xs, ys)
}

#[test]
fn convolution_steps_do_not_depend_on_the_thread_count() {
    let (base, xs, ys) = lenet(64);
    let mut runs = Vec::new();
    for threads in [1, 2, 3] {
        let mut step = base.clone();
        step.compile_with(&CompileOptions {
            threads,
            ..CompileOptions::default()
        })
        .unwrap();
        let before = split_runs();
        let losses: Vec<u64> = (0..3)
            .map(|_| {
                step.run(&[("x", &xs), ("labels", &ys)])
                    .unwrap()
                    .loss
                    .to_bits()
            })
            .collect();
        // Every convolution and pooling call of each step splits (6 forward and
        // backward library calls per step at the least).
        let splits = split_runs() - before;
        if threads == 1 {
            assert_eq!(splits, 0, "one thread split its work");
        } else {
            assert!(
                splits >= 3 * 6,
                "{threads} threads split only {splits} runs"
            );
        }
        runs.push((threads, losses, step));
    }
    let (_, want, first) = &runs[0];
    for (threads, losses, step) in &runs[1..] {
        assert_eq!(losses, want, "losses with {threads} threads");
        for (name, value) in first.params().iter() {
            assert_eq!(
                value,
                step.params().get(name).unwrap(),
                "{name} with {threads} threads"
            );
        }
    }
}
