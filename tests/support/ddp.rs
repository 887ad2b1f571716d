//! What the data-parallel tests share (in one process on threads, and under
//! `mpirun`): a small classifier, its global batches and their shards, one
//! process's training as the reference, and the comparison of a member with it.

use std::sync::Arc;

use kiln::dist::Collective;
use kiln::prelude::*;

pub const FEATURES: usize = 6;
pub const CLASSES: usize = 3;
pub const STEPS: usize = 4;

/// The trained parameters and buffers after training, per name.
pub type Values = Vec<(String, Vec<f64>)>;

/// A classifier `Linear(6, 8) [-> BatchNorm] -> ReLU -> Linear(8, 3)`, the
/// cross-entropy of `x` `[rows, 6]` against `labels`, evaluated on the batch as
/// `parts` equal pieces (batch normalization over each piece alone) whose losses
/// are averaged: with `parts = p` this is what `p` members with local batch
/// statistics compute together.
pub fn classifier(g: &GraphBuilder, rows: usize, parts: usize, bn: bool, seed: u64) -> Tensor {
    let mut rng = Rng::seed(seed);
    let x = g.input("x", DType::F32, [rows, FEATURES]);
    let labels = g.input("labels", DType::I32, [rows]);
    let fc1 = nn::Linear::new(g, "fc1", FEATURES, 8, &mut rng);
    let norm = bn.then(|| nn::BatchNormConfig::new(8).init(g, "bn"));
    let fc2 = nn::Linear::new(g, "fc2", 8, CLASSES, &mut rng);
    let piece = rows / parts;
    let losses: Vec<Tensor> = (0..parts)
        .map(|k| {
            let h = fc1.forward(&x.narrow(0, k * piece, piece));
            let h = match &norm {
                Some(norm) => norm.forward(&h),
                None => h,
            };
            let logits = fc2.forward(&h.relu());
            loss::cross_entropy(&logits, &labels.narrow(0, k * piece, piece))
        })
        .collect();
    let sum = losses.iter().skip(1).fold(losses[0].clone(), |a, b| &a + b);
    &sum * (1.0 / parts as f32)
}

/// Global batch `step`: features and labels of `rows` samples, no zeros.
pub fn global_batch(step: usize, rows: usize) -> (HostTensor, HostTensor) {
    let mut rng = Rng::seed(1000 + step as u64);
    let x: Vec<f32> = (0..rows * FEATURES)
        .map(|_| rng.uniform(-2.0, 2.0))
        .collect();
    let labels: Vec<i32> = (0..rows)
        .map(|i| ((i * 7 + step) % CLASSES) as i32)
        .collect();
    (
        HostTensor::from_f32([rows, FEATURES], x).unwrap(),
        HostTensor::from_i32([rows], labels).unwrap(),
    )
}

/// Rows `[rank * n / size, (rank + 1) * n / size)` of `t`.
pub fn shard(t: &HostTensor, rank: usize, size: usize) -> HostTensor {
    let dims = t.shape().dims();
    let (n, row) = (dims[0], t.numel() / dims[0]);
    let (lo, hi) = (rank * n / size * row, (rank + 1) * n / size * row);
    let mut shape = dims.to_vec();
    shape[0] = n / size;
    match t.dtype() {
        DType::F32 => HostTensor::from_f32(shape, t.as_f32().unwrap()[lo..hi].to_vec()).unwrap(),
        _ => HostTensor::from_i32(shape, t.as_i32().unwrap()[lo..hi].to_vec()).unwrap(),
    }
}

pub fn values(step: &TrainStep) -> Values {
    step.params()
        .iter()
        .filter(|(n, _)| {
            step.trainable().iter().any(|t| t == n) || step.buffers().iter().any(|b| b == n)
        })
        .map(|(n, v)| (n.to_string(), v.to_f64_vec()))
        .collect()
}

/// One process on the global batch of `rows` (split in `parts` for batch
/// normalization); returns the values after `STEPS` steps and the losses.
pub fn one_process(
    optimizer: &dyn Optimizer,
    rows: usize,
    parts: usize,
    bn: bool,
) -> (Values, Vec<f64>) {
    let g = GraphBuilder::new("one");
    let loss = classifier(&g, rows, parts, bn, 100);
    let mut step = TrainStep::new(&loss, optimizer).unwrap();
    let mut losses = Vec::new();
    for s in 0..STEPS {
        let (x, labels) = global_batch(s, rows);
        losses.push(step.run(&[("x", &x), ("labels", &labels)]).unwrap().loss);
    }
    (values(&step), losses)
}

pub fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Float reassociation only: the members sum their gradient means instead of
/// taking one mean over the global batch. Measured: at most 6e-8 after 4 steps
/// (one f32 ulp of the parameters, of magnitude ~0.5), for SGD and Adam, with and
/// without batch normalization; the bound leaves 16x.
pub const TOLERANCE: f64 = 1e-6;

/// What member `group.rank()` of a data-parallel group does: trains `STEPS`
/// steps on its shard of each global batch of `rows`. It initializes its
/// parameters with its own seed, so only the broadcast from rank 0 makes the
/// members agree.
pub fn member_run(
    group: Arc<dyn Collective>,
    optimizer: &dyn Optimizer,
    rows: usize,
    bn: bool,
) -> (Values, Vec<f64>) {
    let (rank, size) = (group.rank(), group.size());
    let g = GraphBuilder::new("member");
    let loss = classifier(&g, rows / size, 1, bn, 100 + rank as u64);
    let mut step = TrainStep::builder(&loss)
        .data_parallel(group)
        .build(optimizer)
        .unwrap();
    let mut losses = Vec::new();
    for st in 0..STEPS {
        let (x, labels) = global_batch(st, rows);
        let (x, labels) = (shard(&x, rank, size), shard(&labels, rank, size));
        losses.push(step.run(&[("x", &x), ("labels", &labels)]).unwrap().loss);
    }
    (values(&step), losses)
}

/// Checks member `rank` of `size` against one process's training: trained
/// parameters within `TOLERANCE`, the reported losses the global ones, and with
/// batch normalization, the last member's running statistics the one process's
/// (its last piece's; each member's follow its own shard).
pub fn check_member(want: &(Values, Vec<f64>), got: &(Values, Vec<f64>), rank: usize, size: usize) {
    let ((want, want_losses), (values, losses)) = (want, got);
    for ((name, w), (n, v)) in want.iter().zip(values) {
        assert_eq!(name, n);
        if is_buffer(name) {
            if rank == size - 1 {
                assert!(
                    max_diff(w, v) < TOLERANCE,
                    "{name} of rank {rank}: {w:?} vs {v:?}"
                );
            }
            continue;
        }
        let d = max_diff(w, v);
        assert!(d < TOLERANCE, "{name} on rank {rank} differs by {d}");
    }
    assert!(
        max_diff(want_losses, losses) < 1e-5,
        "{want_losses:?} vs {losses:?}"
    );
}

/// True for batch normalization's running statistics.
pub fn is_buffer(name: &str) -> bool {
    name.starts_with("bn.running")
}

/// Checks that training moved the reference's parameters (so that a comparison
/// with them cannot pass by doing nothing).
pub fn check_trained(want: &Values, rows: usize, bn: bool) {
    let g = GraphBuilder::new("init");
    let loss = classifier(&g, rows, 1, bn, 100);
    let init = g.build(&[&loss]).unwrap().params;
    let w = &want.iter().find(|(n, _)| n == "fc1.weight").unwrap().1;
    assert!(max_diff(w, &init.get("fc1.weight").unwrap().to_f64_vec()) > 1e-3);
}
