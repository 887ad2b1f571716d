//! Loss functions. The original ones ([`mse`], [`cross_entropy`], [`nll`], ...) take
//! the mean (PyTorch's default) and return a scalar; the others take a
//! [`Reduction`] or an options struct with one ([`l1_loss`], [`mse_loss`],
//! [`smooth_l1_loss`], [`huber_loss`], [`kl_div`],
//! [`binary_cross_entropy_with_logits_with`], [`cross_entropy_with`]), and with
//! [`Reduction::None`] return the elementwise (or per-sample) losses. Mismatched
//! operands are recorded as deferred errors naming the loss.
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

use kiln_ir::{DType, Shape, TensorType, TypeError};

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
/// `mean(max(x, 0) - x * t + log(1 + exp(-|x|)))`. For `pos_weight`, an element
/// `weight` or another reduction, see [`binary_cross_entropy_with_logits_with`].
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

/// How a loss combines its elementwise (or per-sample) terms: PyTorch's
/// `reduction` argument, plus `batchmean` (PyTorch's for [`kl_div`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean of the terms (PyTorch's default); for [`cross_entropy_with`] with
    /// class weights, the weighted mean.
    #[default]
    Mean,
    /// The sum of the terms.
    Sum,
    /// No reduction: the terms themselves, shaped like the input (per sample for
    /// the class losses).
    None,
    /// The sum divided by the size of axis 0 (the batch): PyTorch's `batchmean`,
    /// which makes [`kl_div`] the mathematical KL divergence per sample.
    BatchMean,
}

impl Reduction {
    /// Applies the reduction to `terms`; `Mean` divides by their number.
    #[track_caller]
    pub fn apply(self, terms: &Tensor) -> Tensor {
        match self {
            Reduction::Mean => terms.mean_all(),
            Reduction::Sum => terms.sum_all(),
            Reduction::None => terms.clone(),
            Reduction::BatchMean => {
                let batch = terms.dims().first().copied().unwrap_or(1);
                terms.sum_all().div(batch as f64)
            }
        }
    }

    /// The type of the result for terms of type `t`.
    fn result_type(self, t: &TensorType) -> TensorType {
        match self {
            Reduction::None => t.clone(),
            _ => TensorType::new(t.dtype, Shape::scalar()),
        }
    }
}

/// Mean (or summed, ...) absolute error `|pred - target|`: PyTorch's `l1_loss`.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("regression");
/// let pred = g.input("pred", DType::F64, [3]);
/// let target = g.input("target", DType::F64, [3]);
/// let l = loss::l1_loss(&pred, &target, loss::Reduction::Sum);
/// let model = g.build(&[&l]).unwrap();
/// let p = HostTensor::from_f64([3], vec![1.0, -2.0, 0.5]).unwrap();
/// let t = HostTensor::from_f64([3], vec![0.0, 1.0, 0.5]).unwrap();
/// let args = model.call_args(&[("pred", &p), ("target", &t)]).unwrap();
/// assert_eq!(kiln_ir::interp::run(&model.graph, &args).unwrap()[0].get_f64(0), 4.0);
/// ```
#[track_caller]
pub fn l1_loss(pred: &Tensor, target: &Tensor, reduction: Reduction) -> Tensor {
    let cx = enter!("l1_loss", pred, target; reduction.result_type(pred.ty()));
    if let Err(p) = cx.check(same_type) {
        return p;
    }
    reduction.apply(&(pred - target).abs())
}

/// Squared error `(pred - target)²` with a [`Reduction`]: PyTorch's `mse_loss`
/// ([`mse`] is its mean).
#[track_caller]
pub fn mse_loss(pred: &Tensor, target: &Tensor, reduction: Reduction) -> Tensor {
    let cx = enter!("mse_loss", pred, target; reduction.result_type(pred.ty()));
    if let Err(p) = cx.check(same_type) {
        return p;
    }
    reduction.apply(&(pred - target).square())
}

/// Smooth L1: with `d = |pred - target|`, `0.5 d² / beta` where `d < beta`, else
/// `d - 0.5 beta` (PyTorch's `smooth_l1_loss`, default `beta = 1`). `beta = 0` is
/// [`l1_loss`], as in PyTorch.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("regression");
/// let pred = g.input("pred", DType::F64, [2]);
/// let target = g.input("target", DType::F64, [2]);
/// let l = loss::smooth_l1_loss(&pred, &target, 1.0, loss::Reduction::None);
/// let model = g.build(&[&l]).unwrap();
/// let p = HostTensor::from_f64([2], vec![0.5, 3.0]).unwrap();
/// let t = HostTensor::from_f64([2], vec![0.0, 0.0]).unwrap();
/// let args = model.call_args(&[("pred", &p), ("target", &t)]).unwrap();
/// let out = kiln_ir::interp::run(&model.graph, &args).unwrap();
/// assert_eq!(out[0].to_f64_vec(), vec![0.125, 2.5]);
/// ```
#[track_caller]
pub fn smooth_l1_loss(pred: &Tensor, target: &Tensor, beta: f64, reduction: Reduction) -> Tensor {
    let cx = enter!("smooth_l1_loss", pred, target; reduction.result_type(pred.ty()));
    if let Err(p) = cx.check(same_type) {
        return p;
    }
    let d = (pred - target).abs();
    if beta == 0.0 {
        return reduction.apply(&d);
    }
    let quadratic = d.square().mul(0.5 / beta);
    let linear = d.sub(0.5 * beta);
    reduction.apply(&d.lt(beta).where_cond(&quadratic, &linear))
}

/// Huber loss: with `d = |pred - target|`, `0.5 d²` where `d < delta`, else
/// `delta (d - 0.5 delta)` (PyTorch's `huber_loss`, default `delta = 1`); it is
/// `delta ·` [`smooth_l1_loss`] with `beta = delta`.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("regression");
/// let pred = g.input("pred", DType::F64, [2]);
/// let target = g.input("target", DType::F64, [2]);
/// let l = loss::huber_loss(&pred, &target, 2.0, loss::Reduction::Mean);
/// let model = g.build(&[&l]).unwrap();
/// let p = HostTensor::from_f64([2], vec![1.0, -5.0]).unwrap();
/// let t = HostTensor::from_f64([2], vec![0.0, 0.0]).unwrap();
/// let args = model.call_args(&[("pred", &p), ("target", &t)]).unwrap();
/// // (0.5 · 1² + 2 · (5 - 1)) / 2
/// assert_eq!(kiln_ir::interp::run(&model.graph, &args).unwrap()[0].get_f64(0), 4.25);
/// ```
#[track_caller]
pub fn huber_loss(pred: &Tensor, target: &Tensor, delta: f64, reduction: Reduction) -> Tensor {
    let cx = enter!("huber_loss", pred, target; reduction.result_type(pred.ty()));
    if let Err(p) = cx.check(same_type) {
        return p;
    }
    let d = (pred - target).abs();
    let quadratic = d.square().mul(0.5);
    let linear = d.sub(0.5 * delta).mul(delta);
    reduction.apply(&d.lt(delta).where_cond(&quadratic, &linear))
}

/// Options of [`kl_div`], builder-style. The default is PyTorch's: targets are
/// probabilities, [`Reduction::Mean`] (over all elements; [`Reduction::BatchMean`]
/// gives the true KL divergence per sample).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KlDivOptions {
    /// How the pointwise terms are reduced.
    pub reduction: Reduction,
    /// True if the target is given as log-probabilities too.
    pub log_target: bool,
}

impl KlDivOptions {
    /// PyTorch's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    setters! {
        /// With another reduction.
        with_reduction(reduction: Reduction) => reduction;
        /// With targets given as log-probabilities (`log_target=True`).
        with_log_target(log_target: bool) => log_target;
    }
}

/// Kullback-Leibler divergence of `target` from the distribution whose
/// log-probabilities are `input`, PyTorch's `kl_div(input, target)`: pointwise
/// `target (log(target) - input)`, 0 where `target` is 0 (PyTorch's `xlogy`), or
/// `e^target (target - input)` with `log_target` (NaN for a target of `-inf`, as in
/// PyTorch). Both operands have the same float type.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("distill");
/// let log_q = g.input("logits", DType::F64, [1, 2]).log_softmax(-1);
/// let p = g.input("p", DType::F64, [1, 2]);
/// let opts = loss::KlDivOptions::new().with_reduction(loss::Reduction::BatchMean);
/// let l = loss::kl_div(&log_q, &p, opts);
/// let model = g.build(&[&l]).unwrap();
/// let logits = HostTensor::from_f64([1, 2], vec![0.0, 0.0]).unwrap(); // q = (1/2, 1/2)
/// let p = HostTensor::from_f64([1, 2], vec![1.0, 0.0]).unwrap();
/// let args = model.call_args(&[("logits", &logits), ("p", &p)]).unwrap();
/// let kl = kiln_ir::interp::run(&model.graph, &args).unwrap()[0].get_f64(0);
/// assert!((kl - 2f64.ln()).abs() < 1e-15); // 1 · log(1 / (1/2)) + 0
/// ```
#[track_caller]
pub fn kl_div(input: &Tensor, target: &Tensor, options: KlDivOptions) -> Tensor {
    let cx = enter!("kl_div", input, target; options.reduction.result_type(input.ty()));
    if let Err(p) = cx.check(same_type) {
        return p;
    }
    let terms = if options.log_target {
        target.exp() * (target - input)
    } else {
        // xlogy(t, t) - t · input, with t log t = 0 at t = 0 (and a safe log there
        // so that the unused branch's gradient stays finite).
        let zero = target.eq(0.0);
        let safe = zero.where_cond(1.0, target);
        let t_log_t = zero.where_cond(0.0, &(target * safe.log()));
        t_log_t - target * input
    };
    options.reduction.apply(&terms)
}

/// Options of [`binary_cross_entropy_with_logits_with`], builder-style; the
/// default is PyTorch's (no weights, [`Reduction::Mean`]).
#[derive(Clone, Debug, Default)]
pub struct BceWithLogitsOptions {
    /// Weight of the positive term per class, broadcast against the logits from
    /// the right (PyTorch's `pos_weight`, e.g. `[C]` for `[N, C]` logits): above 1
    /// it raises recall.
    pub pos_weight: Option<Tensor>,
    /// Weight of each element's loss, broadcast against the logits (PyTorch's
    /// `weight`).
    pub weight: Option<Tensor>,
    /// How the elementwise losses are reduced.
    pub reduction: Reduction,
}

impl BceWithLogitsOptions {
    /// PyTorch's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// With a positive-class weight (`pos_weight`).
    pub fn with_pos_weight(mut self, pos_weight: &Tensor) -> Self {
        self.pos_weight = Some(pos_weight.clone());
        self
    }

    /// With an element weight (`weight`).
    pub fn with_weight(mut self, weight: &Tensor) -> Self {
        self.weight = Some(weight.clone());
        self
    }

    setters! {
        /// With another reduction.
        with_reduction(reduction: Reduction) => reduction;
    }
}

/// Binary cross-entropy on logits with PyTorch's options
/// (`binary_cross_entropy_with_logits(x, t, weight, pos_weight, reduction)`):
/// elementwise `w · (pw · t · softplus(-x) + (1 - t) · softplus(x))`, computed as
/// PyTorch does, `w · ((1 - t) x + (1 + (pw - 1) t) softplus(-x))`, with
/// `softplus(-x) = max(-x, 0) + log(1 + e^-|x|)`.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("multilabel");
/// let logits = g.input("logits", DType::F64, [4, 3]);
/// let targets = g.input("targets", DType::F64, [4, 3]);
/// let pos_weight = g.constant(HostTensor::from_f64([3], vec![1.0, 2.0, 5.0]).unwrap());
/// let opts = loss::BceWithLogitsOptions::new().with_pos_weight(&pos_weight);
/// let l = loss::binary_cross_entropy_with_logits_with(&logits, &targets, &opts);
/// assert_eq!(l.rank(), 0);
/// assert!(g.check().is_ok());
/// ```
#[track_caller]
pub fn binary_cross_entropy_with_logits_with(
    logits: &Tensor,
    targets: &Tensor,
    options: &BceWithLogitsOptions,
) -> Tensor {
    let ty = options.reduction.result_type(logits.ty());
    let cx = enter!("binary_cross_entropy_with_logits_with", logits, targets; ty);
    if let Err(p) = cx.check(same_type) {
        return p;
    }
    let softplus_neg = (-logits).maximum(0.0) + (-logits.abs()).exp().add(1.0).log();
    let neg_part = (1.0 - targets) * logits;
    let mut terms = match &options.pos_weight {
        Some(pw) => {
            let log_weight = (pw.sub(1.0) * targets).add(1.0);
            neg_part + log_weight * softplus_neg
        }
        None => neg_part + softplus_neg,
    };
    if let Some(w) = &options.weight {
        terms = terms * w;
    }
    options.reduction.apply(&terms)
}

/// Options of [`cross_entropy_with`], builder-style; the default is PyTorch's (no
/// class weights, no label smoothing, nothing ignored, [`Reduction::Mean`]).
#[derive(Clone, Debug, Default)]
pub struct CrossEntropyOptions {
    /// A weight per class, `[C]` (PyTorch's `weight`): each sample's loss is
    /// scaled by its label's weight, and the mean divides by the sum of those
    /// weights.
    pub weight: Option<Tensor>,
    /// The label that does not count (PyTorch's `ignore_index`; PyTorch always
    /// has one, -100, which only matters if some label is -100).
    pub ignore_index: Option<i32>,
    /// Mixes the one-hot target with the uniform distribution:
    /// `(1 - ε) one_hot + ε / C` (PyTorch's `label_smoothing`, in `[0, 1]`).
    pub label_smoothing: f64,
    /// How the per-sample losses are reduced (`None`: one per sample, 0 where
    /// ignored).
    pub reduction: Reduction,
}

impl CrossEntropyOptions {
    /// PyTorch's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// With a weight per class (`[C]`, the logits' dtype).
    pub fn with_weight(mut self, weight: &Tensor) -> Self {
        self.weight = Some(weight.clone());
        self
    }

    /// With positions whose label is `ignore_index` left out.
    pub fn with_ignore_index(mut self, ignore_index: i32) -> Self {
        self.ignore_index = Some(ignore_index);
        self
    }

    setters! {
        /// With label smoothing `ε` in `[0, 1]`.
        with_label_smoothing(label_smoothing: f64) => label_smoothing;
        /// With another reduction.
        with_reduction(reduction: Reduction) => reduction;
    }
}

/// Softmax cross-entropy of `logits: [N, C]` against `labels: i32[N]` with
/// PyTorch's options (`cross_entropy(logits, labels, weight, ignore_index,
/// reduction, label_smoothing)`). With `logp = log_softmax(logits)`, class
/// weights `w` (1 if none), `valid_i = labels[i] != ignore_index` and the smoothed
/// target `q_ic = (1 - ε) [c = labels[i]] + ε / C`, sample `i` contributes
/// `l_i = -valid_i Σ_c w_c q_ic logp_ic`; [`Reduction::Mean`] is
/// `Σ_i l_i / Σ_i valid_i w[labels[i]]` (PyTorch's weighted mean, also with label
/// smoothing), `BatchMean` divides by `N`.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("classifier");
/// let logits = g.input("logits", DType::F64, [2, 3]);
/// let labels = g.input("labels", DType::I32, [2]);
/// let weight = g.constant(HostTensor::from_f64([3], vec![1.0, 2.0, 3.0]).unwrap());
/// let opts = loss::CrossEntropyOptions::new()
///     .with_weight(&weight)
///     .with_label_smoothing(0.1);
/// let l = loss::cross_entropy_with(&logits, &labels, &opts);
/// let model = g.build(&[&l]).unwrap();
/// let x = HostTensor::from_f64([2, 3], vec![0.0; 6]).unwrap(); // logp = -ln 3 everywhere
/// let y = HostTensor::from_i32([2], vec![0, 2]).unwrap();
/// let args = model.call_args(&[("logits", &x), ("labels", &y)]).unwrap();
/// let value = kiln_ir::interp::run(&model.graph, &args).unwrap()[0].get_f64(0);
/// // l_0 = ln 3 (0.9 · 1 + 0.1 · 6 / 3), l_1 = ln 3 (0.9 · 3 + 0.1 · 6 / 3); / (1 + 3)
/// let want = 3f64.ln() * (1.1 + 2.9) / 4.0;
/// assert!((value - want).abs() < 1e-15);
/// ```
#[track_caller]
pub fn cross_entropy_with(
    logits: &Tensor,
    labels: &Tensor,
    options: &CrossEntropyOptions,
) -> Tensor {
    let n = logits.dims().first().copied().unwrap_or(0);
    let ty = match options.reduction {
        Reduction::None => TensorType::new(logits.dtype(), [n]),
        _ => scalar_of(logits),
    };
    let cx = enter!("cross_entropy_with", logits, labels; ty);
    if let Err(p) = cx.check(scores_and_labels) {
        return p;
    }
    if let Some(w) = &options.weight {
        let classes = logits.dims()[1];
        let want = TensorType::new(logits.dtype(), [classes]);
        if *w.ty() != want {
            return cx.fail(TypeError::Shape(format!(
                "the class weight must be {want}, got {}",
                w.ty()
            )));
        }
    }
    if !(0.0..=1.0).contains(&options.label_smoothing) {
        return cx.fail(TypeError::Shape(format!(
            "label_smoothing must be in [0, 1], got {}",
            options.label_smoothing
        )));
    }
    let classes = logits.dims()[1];
    let dtype = logits.dtype();
    let logp = logits.log_softmax(-1);
    let (labels, valid) = match options.ignore_index {
        // Ignored labels pick class 0 (times zero), so that an ignore index outside
        // the classes never reaches `one_hot`.
        Some(ignore) => {
            let valid = labels.ne(ignore);
            (valid.where_cond(labels, 0), Some(valid.cast(dtype)))
        }
        None => (labels.clone(), None),
    };
    let one_hot = labels.one_hot(classes, dtype);
    let eps = options.label_smoothing;
    let target = if eps == 0.0 {
        one_hot.clone()
    } else {
        one_hot.mul(1.0 - eps).add(eps / classes as f64)
    };
    let target = match &options.weight {
        Some(w) => target * w,
        None => target,
    };
    let mut per_sample = -(target * &logp).sum(&[1], false);
    if let Some(v) = &valid {
        per_sample = per_sample * v;
    }
    match options.reduction {
        Reduction::Mean => {
            // Σ_i valid_i w[labels[i]]: the number of counted samples without weights.
            let denom = match (&options.weight, &valid) {
                (Some(w), Some(v)) => ((&one_hot * w).sum(&[1], false) * v).sum_all(),
                (Some(w), None) => (&one_hot * w).sum_all(),
                (None, Some(v)) => v.sum_all(),
                (None, None) => return per_sample.mean_all(),
            };
            per_sample.sum_all() / denom
        }
        other => other.apply(&per_sample),
    }
}
