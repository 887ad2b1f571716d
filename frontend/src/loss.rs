//! Loss functions, all with mean reduction (PyTorch's default). Each returns a scalar
//! tensor; mismatched operands are recorded as deferred errors naming the loss.
//!
//! ```
//! use kiln_frontend::prelude::*;
//!
//! let g = GraphBuilder::new("classifier");
//! let logits = g.input("logits", DType::F32, [8, 10]);
//! let labels = g.input("labels", DType::I32, [8]);
//! let ce = loss::cross_entropy(&logits, &labels);
//! assert_eq!(ce.rank(), 0);
//!
//! let bad = loss::mse(&logits, &g.input("y", DType::F32, [8]));
//! assert!(bad.is_poisoned());
//! assert!(g.error().unwrap().to_string().contains("`mse`"));
//! ```

use kiln_ir::{DType, TensorType, TypeError};

use crate::Tensor;
use crate::ctx::enter;

/// Both operands must have identical types (no broadcasting in losses).
fn same_type(t: &[TensorType]) -> Result<(), TypeError> {
    if t[0] != t[1] {
        return Err(TypeError::Shape(format!(
            "prediction {} and target {} must have the same type",
            t[0], t[1]
        )));
    }
    if !t[0].dtype.is_float() {
        return Err(TypeError::DType {
            index: 0,
            got: t[0].clone(),
            expected: "a float type is required".into(),
        });
    }
    Ok(())
}

/// Scores `[N, C]` (float) and labels `i32[N]`.
fn scores_and_labels(t: &[TensorType]) -> Result<(), TypeError> {
    let (x, y) = (&t[0], &t[1]);
    if x.shape.rank() != 2 || !x.dtype.is_float() {
        return Err(TypeError::Shape(format!(
            "scores must be a float [N, C] tensor, got {x}"
        )));
    }
    if y.shape.rank() != 1 || y.dtype != DType::I32 {
        return Err(TypeError::DType {
            index: 1,
            got: y.clone(),
            expected: "labels must be i32[N]".into(),
        });
    }
    if x.shape.dim(0) != y.shape.dim(0) {
        return Err(TypeError::Shape(format!(
            "scores {x} and labels {y} disagree on the batch size"
        )));
    }
    Ok(())
}

fn scalar_of(t: &Tensor) -> TensorType {
    TensorType::new(t.dtype(), [])
}

/// Mean squared error: `mean((pred - target)^2)`.
#[track_caller]
pub fn mse(pred: &Tensor, target: &Tensor) -> Tensor {
    let cx = enter!("mse", pred, target; scalar_of(pred));
    if let Err(p) = cx.check(same_type) {
        return p;
    }
    (pred - target).square().mean_all()
}

/// Softmax cross-entropy of `logits: [N, C]` against class indices `labels: i32[N]`:
/// `mean_i(-log_softmax(logits)[i, labels[i]])`.
#[track_caller]
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    let cx = enter!("cross_entropy", logits, labels; scalar_of(logits));
    if let Err(p) = cx.check(scores_and_labels) {
        return p;
    }
    pick_mean_neg(&logits.log_softmax(-1), labels)
}

/// Negative log-likelihood of `log_probs: [N, C]` against `labels: i32[N]`:
/// `mean_i(-log_probs[i, labels[i]])`.
#[track_caller]
pub fn nll(log_probs: &Tensor, labels: &Tensor) -> Tensor {
    let cx = enter!("nll", log_probs, labels; scalar_of(log_probs));
    if let Err(p) = cx.check(scores_and_labels) {
        return p;
    }
    pick_mean_neg(log_probs, labels)
}

/// PyTorch's default `ignore_index`: the label of positions that do not count
/// (padding) in [`nll_ignore_index`] and [`cross_entropy_ignore_index`].
pub const IGNORE_INDEX: i32 = -100;

/// [`nll`] over the positions whose label is not `ignore_index`, PyTorch's
/// `nll_loss(log_probs, labels, ignore_index=...)`: the mean of
/// `-log_probs[i, labels[i]]` over those positions only (their sum divided by their
/// number). An ignored label need not be a class (`-100` is PyTorch's default,
/// [`IGNORE_INDEX`]); ignored positions get no gradient. If every label is
/// ignored the loss is `0 / 0`, NaN, as in PyTorch.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// // Tags of padded sentences, flattened to [tokens]: -100 at the padding.
/// let g = GraphBuilder::new("tagger");
/// let log_probs = g.input("logits", DType::F32, [6, 5]).log_softmax(-1);
/// let tags = g.input("tags", DType::I32, [6]);
/// let l = loss::nll_ignore_index(&log_probs, &tags, loss::IGNORE_INDEX);
/// let model = g.build(&[&l]).unwrap();
/// let logits = HostTensor::full(DType::F32, [6, 5], 0.5); // uniform: -log(1/5) each
/// let tags = HostTensor::from_i32([6], vec![1, 4, -100, 0, -100, -100]).unwrap();
/// let args = model.call_args(&[("logits", &logits), ("tags", &tags)]).unwrap();
/// let value = kiln_ir::interp::run(&model.graph, &args).unwrap()[0].get_f64(0);
/// assert!((value - 5f64.ln()).abs() < 1e-6);
/// ```
#[track_caller]
pub fn nll_ignore_index(log_probs: &Tensor, labels: &Tensor, ignore_index: i32) -> Tensor {
    let cx = enter!("nll_ignore_index", log_probs, labels; scalar_of(log_probs));
    if let Err(p) = cx.check(scores_and_labels) {
        return p;
    }
    pick_mean_neg_ignoring(log_probs, labels, ignore_index)
}

/// [`cross_entropy`] over the positions whose label is not `ignore_index`: the
/// mean of `-log_softmax(logits)[i, labels[i]]` over those positions only, as
/// PyTorch's `cross_entropy(logits, labels, ignore_index=...)`. See
/// [`nll_ignore_index`].
#[track_caller]
pub fn cross_entropy_ignore_index(logits: &Tensor, labels: &Tensor, ignore_index: i32) -> Tensor {
    let cx = enter!("cross_entropy_ignore_index", logits, labels; scalar_of(logits));
    if let Err(p) = cx.check(scores_and_labels) {
        return p;
    }
    pick_mean_neg_ignoring(&logits.log_softmax(-1), labels, ignore_index)
}

/// `-sum_i(valid_i * x[i, labels[i]]) / sum_i(valid_i)` with `valid_i` = `labels[i]
/// != ignore_index`; ignored labels pick class 0 (times zero), so that an ignore
/// index outside the classes never reaches `one_hot`.
#[track_caller]
fn pick_mean_neg_ignoring(x: &Tensor, labels: &Tensor, ignore_index: i32) -> Tensor {
    let valid = labels.ne(ignore_index);
    let safe = valid.where_cond(labels, 0);
    let valid = valid.cast(x.dtype());
    let mask = safe.one_hot(x.dims()[1], x.dtype());
    let picked = (x * &mask).sum(&[1], false);
    -(picked * &valid).sum_all() / valid.sum_all()
}

/// `-mean_i(x[i, labels[i]])`, picking by a one-hot mask.
#[track_caller]
fn pick_mean_neg(x: &Tensor, labels: &Tensor) -> Tensor {
    let mask = labels.one_hot(x.dims()[1], x.dtype());
    -(x * &mask).sum(&[1], false).mean_all()
}

/// Binary cross-entropy of probabilities `probs` against targets in `[0, 1]`:
/// `-mean(t * log(p) + (1 - t) * log(1 - p))`, each log clamped below at -100 as in
/// PyTorch, so `p = 0` or `1` gives a finite loss.
#[track_caller]
pub fn binary_cross_entropy(probs: &Tensor, targets: &Tensor) -> Tensor {
    let cx = enter!("binary_cross_entropy", probs, targets; scalar_of(probs));
    if let Err(p) = cx.check(same_type) {
        return p;
    }
    let log_p = probs.log().maximum(-100.0);
    let log_q = (1.0 - probs).log().maximum(-100.0);
    -(targets * &log_p + (1.0 - targets) * &log_q).mean_all()
}

/// Binary cross-entropy on logits (sigmoid folded in), in the stable form
/// `mean(max(x, 0) - x * t + log(1 + exp(-|x|)))`.
#[track_caller]
pub fn binary_cross_entropy_with_logits(logits: &Tensor, targets: &Tensor) -> Tensor {
    let cx = enter!("binary_cross_entropy_with_logits", logits, targets; scalar_of(logits));
    if let Err(p) = cx.check(same_type) {
        return p;
    }
    let softplus_neg_abs = (-logits.abs()).exp().add(1.0).log();
    (logits.maximum(0.0) - logits * targets + softplus_neg_abs).mean_all()
}

/// L2 penalty `sum(p²)` over every tensor of `params`, to add to a loss with a
/// weight: `loss + λ * l2_penalty(&model.params())`. Its gradient is `2p`, so
/// λ = wd / 2 matches SGD's `weight_decay = wd`.
///
/// # Panics
/// If `params` is empty (there is no graph to build the zero in).
#[track_caller]
pub fn l2_penalty(params: &[Tensor]) -> Tensor {
    penalty(params, |p| p.square().sum_all())
}

/// L1 penalty `sum(|p|)` over every tensor of `params` (sparsity-inducing).
///
/// # Panics
/// If `params` is empty.
#[track_caller]
pub fn l1_penalty(params: &[Tensor]) -> Tensor {
    penalty(params, |p| p.abs().sum_all())
}

#[track_caller]
fn penalty(params: &[Tensor], term: impl Fn(&Tensor) -> Tensor) -> Tensor {
    let mut terms = params.iter().map(term);
    let first = terms
        .next()
        .expect("a penalty needs at least one parameter tensor");
    terms.fold(first, |acc, t| acc + t)
}
