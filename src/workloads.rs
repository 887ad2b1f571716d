//! The benchmark workloads of docs/WORKLOADS.md, defined once for the examples,
//! the tests and the criterion benchmarks (`bench/`), so every figure measures the
//! same graphs.
//!
//! - W1: linear regression `y = w*x + b` on three points, MSE, SGD, from w = b = 0;
//! - W2: MLP 784-128-64-10 with ReLU, softmax cross-entropy, Adam (lr 1e-3);
//! - W3: LeNet on 3×32×32 images, softmax cross-entropy, SGD momentum 0.9, lr 1e-3;
//! - W4: a tagger, embedding -> LSTM (a `scan` over the sequence) -> linear ->
//!   log-softmax + NLL, SGD lr 0.1;
//! - W7: MLP 784-4096-4096-10 with ReLU, softmax cross-entropy, Adam (lr 1e-3),
//!   batch 512: large products, where overheads around them must stay small.
//!
//! The builders take the random generator that initializes the parameters, so a
//! caller decides the seed and whether it draws data before or after.
//!
//! ```
//! use kiln::prelude::*;
//! use kiln::workloads;
//!
//! let mut rng = Rng::seed(0);
//! let mut step = workloads::w2_step(8, &mut rng).unwrap();
//! let x = workloads::uniform(&mut rng, &[8, 784], 0.0, 1.0);
//! let labels = workloads::labels(&mut rng, 8, 10);
//! let loss = step.run_interpreted(&[("x", &x), ("labels", &labels)]).unwrap().loss;
//! assert!(loss.is_finite());
//! ```

use kiln_frontend::prelude::*;

use crate::{TrainError, TrainStep};

/// W1's training step with learning rate `lr`: `loss = mse(x * w + b, y)` over
/// inputs `x` and `y` of type `f32[3]`, scalar parameters `w` and `b` from 0, SGD.
pub fn w1_step(lr: f32) -> Result<TrainStep, TrainError> {
    let g = GraphBuilder::new("linear_regression");
    let x = g.input("x", DType::F32, [3]);
    let y = g.input("y", DType::F32, [3]);
    let w = g.param("w", HostTensor::scalar(DType::F32, 0.0));
    let b = g.param("b", HostTensor::scalar(DType::F32, 0.0));
    let loss = loss::mse(&(&x * &w + &b), &y);
    TrainStep::new(&loss, &Sgd::new(lr))
}

/// W1's data: `x = [1, 3, 5]`, `y = [2, 4, 6]` (the exact fit is w = b = 1).
pub fn w1_data() -> (HostTensor, HostTensor) {
    let x = HostTensor::from_f32([3], vec![1.0, 3.0, 5.0]).expect("three values");
    let y = HostTensor::from_f32([3], vec![2.0, 4.0, 6.0]).expect("three values");
    (x, y)
}

/// W2's MLP in `g`: the logits of `x` (`[batch, 784]`) through layers `fc1`
/// (784-128), `fc2` (128-64) and `fc3` (64-10) initialized from `rng`, with ReLU
/// between.
pub fn w2_mlp(g: &GraphBuilder, x: &Tensor, rng: &mut Rng) -> Tensor {
    let fc1 = nn::Linear::new(g, "fc1", 784, 128, rng);
    let fc2 = nn::Linear::new(g, "fc2", 128, 64, rng);
    let fc3 = nn::Linear::new(g, "fc3", 64, 10, rng);
    fc3.forward(&fc2.forward(&fc1.forward(x).relu()).relu())
}

/// W2's loss in `g`: inputs `x: f32[batch, 784]` and `labels: i32[batch]`, the
/// softmax cross-entropy of [`w2_mlp`]'s logits.
pub fn w2_loss(g: &GraphBuilder, batch: usize, rng: &mut Rng) -> Tensor {
    let x = g.input("x", DType::F32, [batch, 784]);
    let labels = g.input("labels", DType::I32, [batch]);
    loss::cross_entropy(&w2_mlp(g, &x, rng), &labels)
}

/// W2's training step (graph `w2`): [`w2_loss`], its gradients and Adam (lr 1e-3,
/// betas 0.9/0.999, eps 1e-8).
pub fn w2_step(batch: usize, rng: &mut Rng) -> Result<TrainStep, TrainError> {
    let g = GraphBuilder::new("w2");
    let loss = w2_loss(&g, batch, rng);
    TrainStep::new(&loss, &Adam::new(1e-3))
}

/// W7's loss in `g`: inputs `x: f32[batch, 784]` and `labels: i32[batch]`, an
/// MLP 784-4096-4096-10 (`fc1`..`fc3`, ReLU between) initialized from `rng`,
/// softmax cross-entropy.
pub fn w7_loss(g: &GraphBuilder, batch: usize, rng: &mut Rng) -> Tensor {
    let x = g.input("x", DType::F32, [batch, 784]);
    let labels = g.input("labels", DType::I32, [batch]);
    let fc1 = nn::Linear::new(g, "fc1", 784, 4096, rng);
    let fc2 = nn::Linear::new(g, "fc2", 4096, 4096, rng);
    let fc3 = nn::Linear::new(g, "fc3", 4096, 10, rng);
    let logits = fc3.forward(&fc2.forward(&fc1.forward(&x).relu()).relu());
    loss::cross_entropy(&logits, &labels)
}

/// W3's loss in `g`: inputs `x: f32[batch, 3, 32, 32]` and `labels: i32[batch]`;
/// LeNet: conv 3->6 k5, ReLU, maxpool 2, conv 6->16 k5, ReLU, maxpool 2, fc
/// 400-120-84-10 with ReLU between, initialized from `rng`; softmax cross-entropy.
pub fn w3_loss(g: &GraphBuilder, batch: usize, rng: &mut Rng) -> Tensor {
    let x = g.input("x", DType::F32, [batch, 3, 32, 32]);
    let labels = g.input("labels", DType::I32, [batch]);
    let conv1 = nn::Conv2d::new(g, "conv1", 3, 6, 5, rng);
    let conv2 = nn::Conv2d::new(g, "conv2", 6, 16, 5, rng);
    let pool = nn::MaxPool2d::new(2);
    let h = pool.forward(&conv1.forward(&x).relu());
    let h = pool.forward(&conv2.forward(&h).relu());
    let h = h.flatten(1);
    let fc1 = nn::Linear::new(g, "fc1", 400, 120, rng);
    let fc2 = nn::Linear::new(g, "fc2", 120, 84, rng);
    let fc3 = nn::Linear::new(g, "fc3", 84, 10, rng);
    let logits = fc3.forward(&fc2.forward(&fc1.forward(&h).relu()).relu());
    loss::cross_entropy(&logits, &labels)
}

/// W3's training step (graph `lenet`): [`w3_loss`], its gradients and SGD with
/// momentum 0.9, lr 1e-3.
pub fn w3_step(batch: usize, rng: &mut Rng) -> Result<TrainStep, TrainError> {
    let g = GraphBuilder::new("lenet");
    let loss = w3_loss(&g, batch, rng);
    TrainStep::new(&loss, &Sgd::new(1e-3).momentum(0.9))
}

/// W4's sizes: vocabulary, embedding width, LSTM hidden size, tag set.
pub const W4_VOCAB: usize = 1000;
pub const W4_EMBED: usize = 64;
pub const W4_HIDDEN: usize = 128;
pub const W4_TAGS: usize = 16;

/// W4's loss in `g`: inputs `tokens: i32[seq, batch]` and `tags: i32[seq, batch]`;
/// `nn::Embedding` `[W4_VOCAB, W4_EMBED]`, `nn::Lstm` of hidden size [`W4_HIDDEN`]
/// from zero state (one `scan` over the sequence), `nn::Linear` to [`W4_TAGS`] tags
/// at every step, and the mean NLL of their log-softmax; PyTorch's initialization
/// throughout. The graph's size does not depend on `seq`.
pub fn w4_loss(g: &GraphBuilder, seq: usize, batch: usize, rng: &mut Rng) -> Tensor {
    let tokens = g.input("tokens", DType::I32, [seq, batch]);
    let tags = g.input("tags", DType::I32, [seq, batch]);
    let embed = nn::Embedding::new(g, "embed", W4_VOCAB, W4_EMBED, rng);
    let lstm = nn::Lstm::new(g, "lstm", W4_EMBED, W4_HIDDEN, rng);
    let out = nn::Linear::new(g, "out", W4_HIDDEN, W4_TAGS, rng);
    let states = lstm.forward(&embed.forward(&tokens));
    let logits = out.forward(&states.reshape([seq * batch, W4_HIDDEN]));
    loss::nll(&logits.log_softmax(-1), &tags.reshape([seq * batch]))
}

/// W4's training step (graph `w4`): [`w4_loss`], its gradients and SGD (lr 0.1).
pub fn w4_step(seq: usize, batch: usize, rng: &mut Rng) -> Result<TrainStep, TrainError> {
    let g = GraphBuilder::new("w4");
    let loss = w4_loss(&g, seq, batch, rng);
    TrainStep::new(&loss, &Sgd::new(0.1))
}

/// `i32` tokens of shape `dims`, uniform in `0..vocab`.
pub fn tokens(rng: &mut Rng, dims: &[usize], vocab: usize) -> HostTensor {
    let n = dims.iter().product();
    HostTensor::from_i32(
        dims.to_vec(),
        (0..n).map(|_| rng.below(vocab as u64) as i32).collect(),
    )
    .expect("sized from the shape")
}

/// An `f32` tensor of shape `dims` with values uniform in `[lo, hi)`, drawn in
/// order from `rng`.
pub fn uniform(rng: &mut Rng, dims: &[usize], lo: f32, hi: f32) -> HostTensor {
    let n = dims.iter().product();
    HostTensor::from_f32(dims.to_vec(), (0..n).map(|_| rng.uniform(lo, hi)).collect())
        .expect("sized from the shape")
}

/// `batch` `i32` labels uniform in `0..classes`.
pub fn labels(rng: &mut Rng, batch: usize, classes: usize) -> HostTensor {
    HostTensor::from_i32(
        [batch],
        (0..batch)
            .map(|_| rng.below(classes as u64) as i32)
            .collect(),
    )
    .expect("sized from the batch")
}
