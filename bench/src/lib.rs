//! The benchmark workloads of docs/WORKLOADS.md, built with kiln's DSL (the
//! models come from `kiln::workloads`): the same definitions every peer figure in
//! BENCHMARKS.md uses. All float32, inputs from a fixed seed (never zeros), labels
//! uniform in range.

use kiln::prelude::*;
use kiln::workloads;

pub use kiln::workloads::{labels, uniform};

/// The default options with `threads` threads (0: all cores).
fn options(threads: usize) -> CompileOptions {
    let mut options = CompileOptions::default();
    if threads > 0 {
        options.threads = threads;
    }
    options
}

/// A compiled workload and the inputs it runs on, by name.
pub struct Workload {
    pub step: TrainStep,
    pub inputs: Vec<(&'static str, HostTensor)>,
}

impl Workload {
    /// Compiles for `threads` threads (0: all cores).
    pub fn threads(mut self, threads: usize) -> Self {
        self.step.compile_with(&options(threads)).expect("compiles");
        self
    }

    /// One training step.
    pub fn run(&mut self) -> f64 {
        let inputs: Vec<(&str, &HostTensor)> = self.inputs.iter().map(|(n, t)| (*n, t)).collect();
        self.step.run(&inputs).expect("step runs").loss
    }
}

/// W2: forward, backward and Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8).
pub fn w2(batch: usize) -> Workload {
    let mut rng = Rng::seed(0);
    let step = workloads::w2_step(batch, &mut rng).expect("W2 builds");
    let x = uniform(&mut rng, &[batch, 784], 0.0, 1.0);
    let y = labels(&mut rng, batch, 10);
    Workload {
        step,
        inputs: vec![("x", x), ("labels", y)],
    }
}

/// W2 forward only: the loss of the same MLP, compiled for `threads`, with its
/// arguments.
pub fn w2_forward(batch: usize, threads: usize) -> (Executable, Vec<HostTensor>) {
    let mut rng = Rng::seed(0);
    let g = GraphBuilder::new("w2_forward");
    let loss = workloads::w2_loss(&g, batch, &mut rng);
    let model = g.build(&[("loss", &loss)]).expect("W2 forward builds");
    let x = uniform(&mut rng, &[batch, 784], 0.0, 1.0);
    let y = labels(&mut rng, batch, 10);
    let args = model
        .call_args(&[("x", &x), ("labels", &y)])
        .expect("arguments match");
    let exe = Executable::compile_with(&model.graph, &options(threads)).expect("compiles");
    (exe, args)
}

/// W3: LeNet (conv 3->6 k5, ReLU, maxpool 2, conv 6->16 k5, ReLU, maxpool 2,
/// fc 400-120-84-10 with ReLU between), softmax cross-entropy, SGD momentum 0.9,
/// lr 1e-3, input 3×32×32.
pub fn w3(batch: usize) -> Workload {
    let mut rng = Rng::seed(3);
    let step = workloads::w3_step(batch, &mut rng).expect("W3 builds");
    let x = uniform(&mut rng, &[batch, 3, 32, 32], -1.0, 1.0);
    let y = labels(&mut rng, batch, 10);
    Workload {
        step,
        inputs: vec![("x", x), ("labels", y)],
    }
}

/// W4: the tagger (embedding 1000x64, LSTM 128 as one `scan`, linear 128->16,
/// log-softmax + NLL), SGD lr 0.1, over `seq` steps of a batch of 16; tokens and
/// tags uniform in range.
pub fn w4(seq: usize) -> Workload {
    const BATCH: usize = 16;
    let mut rng = Rng::seed(4);
    let tokens = workloads::tokens(&mut rng, &[seq, BATCH], workloads::W4_VOCAB);
    let tags = workloads::tokens(&mut rng, &[seq, BATCH], workloads::W4_TAGS);
    let step = workloads::w4_step(seq, BATCH, &mut rng).expect("W4 builds");
    Workload {
        step,
        inputs: vec![("tokens", tokens), ("tags", tags)],
    }
}

/// W6: `C = A·B` for `[m, k] × [k, n]` as a compiled kiln graph, with its
/// arguments and an output tensor to run into.
pub fn w6(
    m: usize,
    k: usize,
    n: usize,
    threads: usize,
) -> (Executable, Vec<HostTensor>, HostTensor) {
    let mut rng = Rng::seed(6);
    let g = GraphBuilder::new("gemm");
    let a = g.input("a", DType::F32, [m, k]);
    let b = g.input("b", DType::F32, [k, n]);
    let model = g.build(&[&a.matmul(&b)]).expect("GEMM builds");
    let exe = Executable::compile_with(&model.graph, &options(threads)).expect("compiles");
    let args = vec![
        uniform(&mut rng, &[m, k], -1.0, 1.0),
        uniform(&mut rng, &[k, n], -1.0, 1.0),
    ];
    (exe, args, HostTensor::full(DType::F32, [m, n], 0.0))
}

/// Per-step times recorded while criterion measures, for the median, min and max
/// that WORKLOADS.md asks for (criterion's own estimate is a mean-like slope, which
/// rare slow steps pull up).
#[derive(Debug, Default)]
pub struct StepTimes(Vec<f64>);

impl StepTimes {
    /// Runs `step` `iters` times, timing each; returns the total (for
    /// `Bencher::iter_custom`).
    pub fn time(&mut self, iters: u64, mut step: impl FnMut()) -> std::time::Duration {
        let mut total = std::time::Duration::ZERO;
        for _ in 0..iters {
            let start = std::time::Instant::now();
            step();
            let took = start.elapsed();
            total += took;
            self.0.push(took.as_secs_f64() * 1e3);
        }
        total
    }

    /// Prints `name: median … ms (min …, max …) over N steps` and forgets the times.
    pub fn report(&mut self, name: &str) {
        let t = &mut self.0;
        if t.is_empty() {
            return;
        }
        t.sort_by(f64::total_cmp);
        println!(
            "{name}: median {:.3} ms (min {:.3}, max {:.3}) over {} steps",
            t[t.len() / 2],
            t[0],
            t[t.len() - 1],
            t.len()
        );
        t.clear();
    }
}
