//! A thin training loop over [`TrainStep`]: [`Fit`] runs epochs of shuffled
//! batches and reports loss, accuracy and throughput; [`Evaluator`] measures a
//! classifier on a data set with an inference graph that shares the step's
//! parameters.
//!
//! Nothing is hidden: one epoch of [`Fit::run`] is the manual loop
//!
//! ```text
//! for batch in train.batches(64).shuffle(seed + epoch).drop_last(true) {
//!     let out = step.run(&[("x", &batch.x), ("labels", &batch.labels)])?;
//! }
//! let eval = evaluator.evaluate(step.params(), &test)?;
//! ```
//!
//! plus timing and printing.

use std::collections::HashMap;
use std::fmt;
use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_frontend::ParamStore;
use kiln_ir::{DType, Graph, HostTensor, Op};
use kiln_runtime::data::Dataset;
use kiln_runtime::{CollectiveError, CompileError, Executable, RunError};

use crate::dist::Members;
use crate::{TrainError, TrainStep};

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The function building the inference graph failed.
    #[error("building the evaluation graph for batch size {batch}: {message}")]
    Build {
        /// The batch size asked for.
        batch: usize,
        /// The builder's error.
        message: String,
    },
    /// The inference graph did not compile.
    #[error(transparent)]
    Compile(Box<CompileError>),
    /// Running it failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The inference graph has a parameter the store does not hold.
    #[error("the evaluation graph needs `{0}`, which is neither its input nor a parameter")]
    MissingParam(String),
    /// The graph's first output is not f32 logits `[batch, classes]`.
    #[error(
        "the evaluation graph's first output must be f32 logits [{batch}, classes], found {found}"
    )]
    Output {
        /// The batch size.
        batch: usize,
        /// The output's type.
        found: String,
    },
    /// There is nothing to evaluate.
    #[error("the evaluation data set is empty")]
    Empty,
    /// A label is not a class index of the logits.
    #[error(transparent)]
    Label(#[from] LabelError),
}

/// A label that is not a class index of the model: checked the same way by
/// [`Evaluator::evaluate`] (against the logits' class count) and [`Fit::run`]
/// (against the training step's, before the first step), instead of a NaN loss or
/// a failed step.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "label {label} of sample {sample} is out of range [0, {classes}): labels are class indices"
)]
pub struct LabelError {
    /// The sample, counting from 0 in its data set.
    pub sample: usize,
    /// Its label.
    pub label: i32,
    /// The model's number of classes.
    pub classes: usize,
}

/// Checks that every label is a class index in `0..classes`; `first` is the
/// data-set index of `labels[0]`.
pub fn check_labels(labels: &[i32], classes: usize, first: usize) -> Result<(), LabelError> {
    match labels
        .iter()
        .position(|&l| usize::try_from(l).map_or(true, |l| l >= classes))
    {
        Some(i) => Err(LabelError {
            sample: first + i,
            label: labels[i],
            classes,
        }),
        None => Ok(()),
    }
}

impl From<CompileError> for EvalError {
    fn from(e: CompileError) -> Self {
        EvalError::Compile(Box::new(e))
    }
}

/// What an evaluation measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Fraction of samples whose largest logit is at their label.
    pub accuracy: f64,
    /// Mean softmax cross-entropy of the logits.
    pub loss: f64,
    /// The number of samples.
    pub samples: usize,
}

type BuildFn<'a> = Box<dyn FnMut(usize) -> Result<Graph, String> + 'a>;

/// Evaluates a classifier: `build(b)` returns an inference graph with one input (by
/// default `x`, f32 `[b, D]`) whose first output is the logits `[b, classes]`, and
/// whose parameters have the names of the trained ones.
///
/// The data set is cut into batches of at most [`Evaluator::max_batch`] samples
/// (1000 by default); each distinct batch size is compiled once and cached, so a
/// data set needs at most two compilations (full batches and the remainder), and
/// one if it fits in a single batch.
pub struct Evaluator<'a> {
    build: BuildFn<'a>,
    input: String,
    max_batch: usize,
    cache: HashMap<usize, Executable>,
}

impl fmt::Debug for Evaluator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evaluator")
            .field("input", &self.input)
            .field("max_batch", &self.max_batch)
            .field("compiled", &self.cache.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<'a> Evaluator<'a> {
    /// An evaluator around `build(batch_size) -> graph`.
    pub fn new<F, E>(mut build: F) -> Self
    where
        F: FnMut(usize) -> Result<Graph, E> + 'a,
        E: fmt::Display,
    {
        Evaluator {
            build: Box::new(move |b| build(b).map_err(|e| e.to_string())),
            input: "x".into(),
            max_batch: 1000,
            cache: HashMap::new(),
        }
    }

    /// Sets the largest batch evaluated at once.
    ///
    /// # Panics
    /// If `max_batch` is 0.
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        assert!(max_batch > 0, "batch size must be positive");
        self.max_batch = max_batch;
        self
    }

    /// Sets the name of the features input (default `x`).
    pub fn input(mut self, name: &str) -> Self {
        self.input = name.into();
        self
    }

    /// The logits for `x` (f32 `[b, D]`), with parameter values from `params`.
    pub fn logits(&mut self, params: &ParamStore, x: &HostTensor) -> Result<HostTensor, EvalError> {
        let batch = x.shape().dims().first().copied().unwrap_or(1);
        if !self.cache.contains_key(&batch) {
            let graph =
                (self.build)(batch).map_err(|message| EvalError::Build { batch, message })?;
            self.cache.insert(batch, Executable::compile(&graph)?);
        }
        let exe = self.cache.get_mut(&batch).expect("inserted above");
        let args = exe
            .args()
            .iter()
            .map(|(name, _)| {
                if *name == self.input {
                    Ok(x)
                } else {
                    params
                        .get(name)
                        .ok_or_else(|| EvalError::MissingParam(name.clone()))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let logits = exe.run_refs(&args)?.swap_remove(0);
        let dims = logits.shape().dims();
        if logits.dtype() != DType::F32 || dims.len() != 2 || dims[0] != batch {
            return Err(EvalError::Output {
                batch,
                found: logits.ty().to_string(),
            });
        }
        Ok(logits)
    }

    /// Accuracy and mean cross-entropy over `data`, with parameter values from
    /// `params` (e.g. [`TrainStep::params`]).
    pub fn evaluate(
        &mut self,
        params: &ParamStore,
        data: &Dataset,
    ) -> Result<Evaluation, EvalError> {
        if data.is_empty() {
            return Err(EvalError::Empty);
        }
        let mut score = Score::default();
        for batch in data.batches(self.max_batch) {
            let logits = self.logits(params, &batch.x)?;
            let labels = batch.labels.as_i32().expect("labels are i32");
            check_labels(labels, logits.shape().dim(1), score.samples)?;
            score.add(&logits, labels, true);
        }
        Ok(Evaluation {
            accuracy: score.accuracy(),
            loss: score.loss(),
            samples: score.samples,
        })
    }
}

/// Running counts of correct predictions and summed cross-entropy.
#[derive(Default)]
struct Score {
    correct: usize,
    samples: usize,
    loss: f64,
}

impl Score {
    /// Adds the rows of `logits` (f32 `[b, C]`) against `labels`.
    fn add(&mut self, logits: &HostTensor, labels: &[i32], with_loss: bool) {
        let values = logits.as_f32().expect("f32 logits");
        let classes = values.len() / labels.len().max(1);
        for (row, &label) in values.chunks_exact(classes).zip(labels) {
            let (best, max) =
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                        if v > bv { (i, v) } else { (bi, bv) }
                    });
            self.correct += usize::from(best as i32 == label);
            if with_loss {
                let lse = f64::from(max)
                    + row
                        .iter()
                        .map(|&v| (f64::from(v) - f64::from(max)).exp())
                        .sum::<f64>()
                        .ln();
                let target = row.get(label as usize).map_or(f64::NAN, |&v| f64::from(v));
                self.loss += lse - target;
            }
        }
        self.samples += labels.len();
    }

    fn accuracy(&self) -> f64 {
        self.correct as f64 / self.samples.max(1) as f64
    }

    fn loss(&self) -> f64 {
        self.loss / self.samples.max(1) as f64
    }
}

/// Why [`Fit::run`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// A training step failed.
    #[error("epoch {epoch}: {source}")]
    Train {
        /// The epoch, counting from 1.
        epoch: usize,
        /// The step's error.
        source: Box<TrainError>,
    },
    /// The evaluation failed.
    #[error("epoch {epoch}: evaluation: {source}")]
    Eval {
        /// The epoch, counting from 1.
        epoch: usize,
        /// The evaluator's error.
        source: EvalError,
    },
    /// A label of the training or evaluation set is not a class index of the step
    /// (found before training starts).
    #[error("the {set} set: {source}")]
    Label {
        /// `training` or `evaluation`.
        set: &'static str,
        /// The first bad label.
        source: LabelError,
    },
    /// An evaluation metric of [`crate::FitData::evaluate`] failed.
    #[error("epoch {epoch}: metric `{name}`: {message}")]
    Metric {
        /// The epoch, counting from 1.
        epoch: usize,
        /// The metric's name.
        name: String,
        /// Its error.
        message: String,
    },
    /// The data-parallel group failed, or another member did (see
    /// [`crate::TrainStepBuilder::data_parallel`]).
    #[error("epoch {epoch}: {source}")]
    Group {
        /// The epoch, counting from 1 (0: before training).
        epoch: usize,
        /// The group's error.
        source: CollectiveError,
    },
    /// The training set has fewer samples than one batch.
    #[error("the training set has {samples} samples, fewer than one batch of {batch}")]
    TooFewSamples {
        /// Samples in the training set.
        samples: usize,
        /// The batch size.
        batch: usize,
    },
}

/// How [`Fit::run`] shows its progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Progress {
    /// A progress bar when standard error is a terminal, log lines otherwise.
    #[default]
    Auto,
    /// A progress bar per epoch (on standard error) and a line per epoch.
    Bar,
    /// One line per epoch on standard output.
    Lines,
    /// Nothing.
    Silent,
}

/// What one epoch of [`Fit::run`] measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochReport {
    /// The epoch, counting from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub loss: f64,
    /// Training accuracy over the epoch, when the step outputs logits.
    pub train_accuracy: Option<f64>,
    /// The evaluation after the epoch, when an evaluation set was given.
    pub eval: Option<Evaluation>,
    /// Training samples per second (steps only, not evaluation).
    pub samples_per_sec: f64,
    /// Seconds the epoch's steps took.
    pub seconds: f64,
}

impl fmt::Display for EpochReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "loss {:.4}", self.loss)?;
        if let Some(a) = self.train_accuracy {
            write!(f, "  train acc {a:.4}")?;
        }
        if let Some(e) = &self.eval {
            write!(f, "  eval loss {:.4}  eval acc {:.4}", e.loss, e.accuracy)?;
        }
        write!(
            f,
            "  {:.0} samples/s  {:.2} s",
            self.samples_per_sec, self.seconds
        )
    }
}

/// Trains a [`TrainStep`] for some epochs of seeded, shuffled mini-batches.
///
/// Each epoch visits the training set in a new order (seed `seed + epoch`) in
/// batches of `batch_size`, dropping the last partial batch by default: the
/// compiled step is specialized to its batch size, a partial batch would need a
/// second step compiled (and its own optimizer-state bookkeeping), and with a
/// different order each epoch every sample is still used. The step is fed the
/// inputs `x` and `labels` (see [`Fit::inputs`]); if it outputs `logits` (see
/// [`TrainStep::with_outputs`]), training accuracy is reported too. For any other
/// task (regression, autoencoders, image or sequence inputs) [`Fit::with_data`]
/// trains on named tensors of any shape with user-defined metrics and callbacks.
///
/// ```
/// use kiln::prelude::*;
/// use kiln::data::Dataset;
///
/// // Two well separated classes in two dimensions.
/// let mut rng = Rng::seed(1);
/// let (mut xs, mut ys) = (Vec::new(), Vec::new());
/// for i in 0..64 {
///     let c = i % 2;
///     xs.extend([c as f32 * 2.0 - 1.0 + rng.uniform(-0.3, 0.3), rng.uniform(-1.0, 1.0)]);
///     ys.push(c as i32);
/// }
/// let data = Dataset::new(xs, ys, 2).unwrap();
/// let g = GraphBuilder::new("logreg");
/// let x = g.input("x", DType::F32, [16, 2]);
/// let labels = g.input("labels", DType::I32, [16]);
/// let logits = nn::Linear::new(&g, "fc", 2, 2, &mut rng).forward(&x);
/// let loss = loss::cross_entropy(&logits, &labels);
/// let mut step = TrainStep::with_outputs(&loss, &Adam::new(0.1), &[("logits", &logits)]).unwrap();
/// let history = Fit::new(5, 16).progress(Progress::Silent).run(&mut step, &data, None).unwrap();
/// assert!(history.last().unwrap().train_accuracy.unwrap() > 0.9);
/// ```
#[derive(Clone, Debug)]
pub struct Fit {
    pub(crate) epochs: usize,
    pub(crate) batch_size: usize,
    pub(crate) seed: u64,
    pub(crate) drop_last: bool,
    input: String,
    labels: String,
    logits: String,
    pub(crate) progress: Progress,
}

impl Fit {
    /// `epochs` passes over the data in batches of `batch_size` (which must be the
    /// batch size the step was built for).
    pub fn new(epochs: usize, batch_size: usize) -> Fit {
        Fit {
            epochs,
            batch_size: batch_size.max(1),
            seed: 0,
            drop_last: true,
            input: "x".into(),
            labels: "labels".into(),
            logits: "logits".into(),
            progress: Progress::Auto,
        }
    }

    /// Sets the base seed of the per-epoch shuffles (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Keeps a last partial batch when `false`; the step must then accept that size
    /// too, which a [`TrainStep`] built for one batch size does not.
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.drop_last = drop;
        self
    }

    /// Names of the step's features and labels inputs (default `x`, `labels`).
    pub fn inputs(mut self, features: &str, labels: &str) -> Self {
        self.input = features.into();
        self.labels = labels.into();
        self
    }

    /// Name of the step output holding the logits (default `logits`).
    pub fn logits(mut self, name: &str) -> Self {
        self.logits = name.into();
        self
    }

    /// Sets how progress is shown (default [`Progress::Auto`]).
    pub fn progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }

    /// The step's number of classes: the depth of a `one_hot` of its labels input
    /// (as the cross-entropy losses make), else the width of its logits output.
    fn classes(&self, step: &TrainStep, logits_at: Option<usize>) -> Option<usize> {
        let g = step.graph();
        let labels = g
            .args()
            .iter()
            .find(|&&a| g.node(a).name.as_deref() == Some(&self.labels));
        let depth = labels.and_then(|&a| {
            g.users(a).into_iter().find_map(|u| match g.node(u).op {
                Op::OneHot { depth, .. } => Some(depth),
                _ => None,
            })
        });
        depth.or_else(|| {
            let logits = g.node(g.outputs()[logits_at? + 1].node);
            logits.ty.shape.dims().get(1).copied()
        })
    }

    /// Trains `step` on `train`; after each epoch evaluates on `eval` if given.
    /// Returns one report per epoch. Labels of both sets are checked first against
    /// the step's class count ([`FitError::Label`]).
    ///
    /// A data-parallel step ([`crate::TrainStepBuilder::data_parallel`]) is
    /// trained by calling `run` on every member with the same arguments, the whole
    /// data sets included, and `batch_size` the step's (per-member) batch. Each
    /// epoch, every member takes its part of the shuffled training set
    /// ([`Dataset::shuffled_shard`]: PyTorch's `DistributedSampler`), so the
    /// members' batches together form the global batches of `size * batch_size`
    /// one process would take, and each evaluates its [`Dataset::shard`] of the
    /// evaluation set. Accuracy, loss and evaluation are over all members'
    /// samples, the reports are the same on every member, and only rank 0 prints.
    pub fn run(
        &self,
        step: &mut TrainStep,
        train: &Dataset,
        mut eval: Option<(&mut Evaluator<'_>, &Dataset)>,
    ) -> Result<Vec<EpochReport>, FitError> {
        let group = step.group().cloned();
        let members = Members(group.as_deref());
        let group_err = |epoch| move |source| FitError::Group { epoch, source };
        let (rank, size) = members.position();
        let steps = members
            .steps(train.len(), self.batch_size, self.drop_last)
            .map_err(group_err(0))?;
        if steps == 0 {
            return Err(FitError::TooFewSamples {
                samples: train.len(),
                batch: self.batch_size,
            });
        }
        let bar_mode = members.leader()
            && match self.progress {
                Progress::Auto => std::io::stderr().is_terminal(),
                Progress::Bar => true,
                Progress::Lines | Progress::Silent => false,
            };
        let print = members.leader() && self.progress != Progress::Silent;
        // The index among the step's extra outputs of the logits, if any.
        let logits_at = step
            .graph()
            .outputs()
            .iter()
            .skip(1)
            .position(|o| o.name.as_deref() == Some(&self.logits));
        let labels = match self.classes(step, logits_at) {
            Some(classes) => check_labels(train.labels(), classes, 0)
                .map_err(|source| FitError::Label {
                    set: "training",
                    source,
                })
                .and_then(|()| match &eval {
                    Some((_, data)) => {
                        check_labels(data.labels(), classes, 0).map_err(|source| FitError::Label {
                            set: "evaluation",
                            source,
                        })
                    }
                    None => Ok(()),
                }),
            None => Ok(()),
        };
        members.check(labels, group_err(0))?;
        step.compile().map_err(|e| FitError::Train {
            epoch: 1,
            source: Box::new(e),
        })?;

        let mut reports = Vec::with_capacity(self.epochs);
        for epoch in 1..=self.epochs {
            let bar = bar_mode.then(|| epoch_bar(steps, epoch, self.epochs));
            let mut loss_sum = 0.0;
            let mut score = Score::default();
            let mut samples = 0usize;
            let start = Instant::now();
            let epoch_seed = self.seed.wrapping_add(epoch as u64);
            let part = (size > 1).then(|| train.shuffled_shard(epoch_seed, rank, size));
            let batches = match &part {
                Some(part) => part.batches(self.batch_size),
                None => train.batches(self.batch_size).shuffle(epoch_seed),
            }
            .drop_last(self.drop_last)
            .take(steps);
            for (i, batch) in batches.enumerate() {
                let out = step
                    .run(&[(&self.input, &batch.x), (&self.labels, &batch.labels)])
                    .map_err(|e| FitError::Train {
                        epoch,
                        source: Box::new(e),
                    })?;
                loss_sum += out.loss;
                samples += batch.len();
                if let Some(k) = logits_at {
                    score.add(&out.outputs[k], batch.labels.as_i32().expect("i32"), false);
                }
                if let Some(bar) = &bar {
                    bar.inc(1);
                    if i % 8 == 0 || i + 1 == steps {
                        let rate = samples as f64 / start.elapsed().as_secs_f64().max(1e-9);
                        let mut msg = format!("loss {:.4}", loss_sum / (i + 1) as f64);
                        if logits_at.is_some() {
                            msg += &format!("  acc {:.4}", score.accuracy());
                        }
                        bar.set_message(format!("{msg}  {rate:.0} samples/s"));
                    }
                }
            }
            let seconds = start.elapsed().as_secs_f64();
            let evaluation = match eval.as_mut() {
                Some((evaluator, data)) => {
                    let result = match size {
                        1 => evaluator.evaluate(step.params(), data),
                        _ => evaluator.evaluate(step.params(), &data.shard(rank, size)),
                    };
                    let (result, status) = match result {
                        Ok(e) => (Some(e), Ok(())),
                        Err(source) => (None, Err(FitError::Eval { epoch, source })),
                    };
                    members.check(status, group_err(epoch))?;
                    result
                }
                None => None,
            };
            // Over every member's samples (the loss already is: each step's is).
            let mut totals = [
                score.correct as f64,
                score.samples as f64,
                samples as f64,
                0.0,
                0.0,
                0.0,
            ];
            if let Some(e) = &evaluation {
                let n = e.samples as f64;
                totals[3..].copy_from_slice(&[e.accuracy * n, e.loss * n, n]);
            }
            members.sum(&mut totals).map_err(group_err(epoch))?;
            let [
                correct,
                scored,
                samples,
                eval_correct,
                eval_loss,
                eval_samples,
            ] = totals;
            let report = EpochReport {
                epoch,
                loss: loss_sum / steps as f64,
                train_accuracy: logits_at.map(|_| correct / scored.max(1.0)),
                eval: evaluation.map(|_| Evaluation {
                    accuracy: eval_correct / eval_samples.max(1.0),
                    loss: eval_loss / eval_samples.max(1.0),
                    samples: eval_samples as usize,
                }),
                samples_per_sec: samples / seconds.max(1e-9),
                seconds,
            };
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if print {
                let width = self.epochs.to_string().len();
                println!("epoch {epoch:>width$}/{}  {report}", self.epochs);
            }
            reports.push(report);
        }
        Ok(reports)
    }
}

/// The progress bar of one epoch of `steps` batches, on stderr.
pub(crate) fn epoch_bar(steps: usize, epoch: usize, epochs: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("epoch {epoch}/{epochs}"));
    bar
}
