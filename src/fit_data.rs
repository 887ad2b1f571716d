//! [`Fit`] over a [`TensorDataset`] of named tensors, for any task: regression,
//! autoencoders, image-shaped and sequence inputs. [`Fit::with_data`] returns a
//! [`FitData`], which takes named metrics on the training batches
//! ([`FitData::metric`]) and on an evaluation set ([`FitData::evaluate`]), epoch-end
//! callbacks that may stop training early ([`FitData::on_epoch`]), and returns a
//! [`History`] of per-epoch metrics that can be written as CSV.
//!
//! One epoch of [`FitData::run`] is the manual loop
//!
//! ```text
//! for batch in train.batches(batch_size).shuffle(seed + epoch).drop_last(true) {
//!     let out = step.run(&batch.inputs())?;      // the data set's names are the inputs
//!     for each metric: sum += metric(&out, &batch) * batch.len();
//! }
//! for batch in eval_data.batches(eval_batch) { sum += f(step.params(), &batch)? * batch.len(); }
//! callbacks(&report)                              // ControlFlow::Break stops
//! ```

use std::fmt;
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use kiln_frontend::ParamStore;
use kiln_ir::HostTensor;
use kiln_runtime::Executable;
use kiln_runtime::data::{TensorBatch, TensorDataset};

use crate::dist::Members;
use crate::{EvalError, Fit, FitError, Progress, StepOutput, TrainStep};

type TrainMetric<'a> = Box<dyn FnMut(&StepOutput, &TensorBatch) -> f64 + 'a>;
type EvalMetric<'a> = Box<dyn FnMut(&ParamStore, &TensorBatch) -> Result<f64, String> + 'a>;
type Callback<'a> = Box<dyn FnMut(&EpochMetrics) -> ControlFlow<()> + 'a>;

struct Eval<'a> {
    name: String,
    data: &'a TensorDataset,
    batch_size: usize,
    f: EvalMetric<'a>,
}

/// A [`Fit`] bound to a training [`TensorDataset`], with metrics and callbacks;
/// made by [`Fit::with_data`], consumed by [`FitData::run`].
///
/// Every batch's tensors are passed to [`TrainStep::run`] under their names in the
/// data set, so the names must be exactly the step's inputs. Metrics are averaged
/// over an epoch's batches weighted by their sizes (the plain mean when all batches
/// are full, as with the default `drop_last`).
///
/// ```
/// use std::ops::ControlFlow;
/// use kiln::prelude::*;
/// use kiln::data::TensorDataset;
///
/// // y = 2x - 1 on 64 samples, fitted by a one-weight linear model.
/// let xs: Vec<f32> = (0..64).map(|i| i as f32 / 32.0 - 1.0).collect();
/// let ys: Vec<f32> = xs.iter().map(|x| 2.0 * x - 1.0).collect();
/// let data = TensorDataset::new(vec![
///     ("x", HostTensor::from_f32([64, 1], xs).unwrap()),
///     ("y", HostTensor::from_f32([64, 1], ys).unwrap()),
/// ])
/// .unwrap();
/// let g = GraphBuilder::new("line");
/// let x = g.input("x", DType::F32, [16, 1]);
/// let y = g.input("y", DType::F32, [16, 1]);
/// let pred = nn::Linear::new(&g, "fc", 1, 1, &mut Rng::seed(1)).forward(&x);
/// let loss = loss::mse(&pred, &y);
/// let mut step = TrainStep::with_outputs(&loss, &Adam::new(0.1), &[("pred", &pred)]).unwrap();
/// let history = Fit::new(100, 16)
///     .progress(Progress::Silent)
///     .with_data(&data)
///     .metric("mae", |out, batch| {
///         let (p, t) = (out.outputs[0].as_f32().unwrap(), batch["y"].as_f32().unwrap());
///         p.iter().zip(t).map(|(p, t)| f64::from((p - t).abs())).sum::<f64>() / p.len() as f64
///     })
///     .on_epoch(|report| {
///         if report.loss < 1e-4 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
///     })
///     .run(&mut step)
///     .unwrap();
/// assert!(history.stopped_early);
/// assert!(history.last().unwrap().get("mae").unwrap() < 0.02);
/// ```
pub struct FitData<'a> {
    fit: Fit,
    train: &'a TensorDataset,
    metrics: Vec<(String, TrainMetric<'a>)>,
    evals: Vec<Eval<'a>>,
    callbacks: Vec<Callback<'a>>,
}

impl fmt::Debug for FitData<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FitData")
            .field("fit", &self.fit)
            .field("train", &self.train.len())
            .field(
                "metrics",
                &self.metrics.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field(
                "evals",
                &self.evals.iter().map(|e| &e.name).collect::<Vec<_>>(),
            )
            .field("callbacks", &self.callbacks.len())
            .finish()
    }
}

impl Fit {
    /// This loop's settings (epochs, batch size, seed, `drop_last`, progress) over
    /// a data set of named tensors; see [`FitData`]. The names set by
    /// [`Fit::inputs`] and [`Fit::logits`] are not used: the data set's names are
    /// the step's inputs. A classification [`kiln_runtime::data::Dataset`] converts
    /// with `TensorDataset::from(&data)` (names `x` and `labels`).
    pub fn with_data<'a>(&self, train: &'a TensorDataset) -> FitData<'a> {
        FitData {
            fit: self.clone(),
            train,
            metrics: Vec::new(),
            evals: Vec::new(),
            callbacks: Vec::new(),
        }
    }
}

impl<'a> FitData<'a> {
    /// Adds a training metric called `name`: `f(output, batch)` for each step's
    /// output (computed before that step's update; `output.outputs` are the step's
    /// extra outputs in the order given to [`TrainStep::with_outputs`]) and its
    /// batch, averaged over the epoch.
    pub fn metric<F>(mut self, name: &str, f: F) -> Self
    where
        F: FnMut(&StepOutput, &TensorBatch) -> f64 + 'a,
    {
        self.metrics.push((name.into(), Box::new(f)));
        self
    }

    /// Adds an evaluation metric called `name`, measured after each epoch on
    /// `data` in batches of at most `batch_size` (the last one may be smaller):
    /// `f(params, batch)` gets the trained parameters ([`TrainStep::params`]) and
    /// usually runs a forward graph on them, e.g. with [`run_with_params`]; an
    /// error stops training with [`FitError::Metric`]. The value is the mean over
    /// the batches weighted by their sizes.
    ///
    /// # Panics
    /// If `batch_size` is 0.
    pub fn evaluate<F, E>(
        mut self,
        name: &str,
        data: &'a TensorDataset,
        batch_size: usize,
        mut f: F,
    ) -> Self
    where
        F: FnMut(&ParamStore, &TensorBatch) -> Result<f64, E> + 'a,
        E: fmt::Display,
    {
        assert!(batch_size > 0, "batch size must be positive");
        self.evals.push(Eval {
            name: name.into(),
            data,
            batch_size,
            f: Box::new(move |p, b| f(p, b).map_err(|e| e.to_string())),
        });
        self
    }

    /// Adds a callback run after each epoch with its report (training and
    /// evaluation metrics); [`ControlFlow::Break`] stops training after that epoch
    /// (the report is kept and [`History::stopped_early`] is set). Callbacks run in
    /// the order added, all of them, even when an earlier one breaks.
    pub fn on_epoch<F>(mut self, f: F) -> Self
    where
        F: FnMut(&EpochMetrics) -> ControlFlow<()> + 'a,
    {
        self.callbacks.push(Box::new(f));
        self
    }

    /// Trains `step`: returns the per-epoch history, or the first error (a failed
    /// step, e.g. a data set name that is not a step input or a batch of the wrong
    /// size; a failed evaluation; a training set smaller than one batch).
    ///
    /// With a data-parallel step, as [`Fit::run`]: every member runs `run` with the
    /// whole data sets and trains on its part of each shuffled epoch
    /// ([`TensorDataset::shuffled_shard`]), evaluates its [`TensorDataset::shard`]
    /// of each evaluation set; metrics are means over all members' samples, every
    /// member gets the same history (so callbacks decide alike), and only rank 0
    /// prints.
    pub fn run(mut self, step: &mut TrainStep) -> Result<History, FitError> {
        let fit = &self.fit;
        let group = step.group().cloned();
        let members = Members(group.as_deref());
        let group_err = |epoch| move |source| FitError::Group { epoch, source };
        let (rank, size) = members.position();
        let steps = members
            .steps(self.train.len(), fit.batch_size, fit.drop_last)
            .map_err(group_err(0))?;
        let eval_parts: Vec<Option<TensorDataset>> = self
            .evals
            .iter()
            .map(|e| (size > 1).then(|| e.data.shard(rank, size)))
            .collect();
        if steps == 0 {
            return Err(FitError::TooFewSamples {
                samples: self.train.len(),
                batch: fit.batch_size,
            });
        }
        let bar_mode = members.leader()
            && match fit.progress {
                Progress::Auto => std::io::stderr().is_terminal(),
                Progress::Bar => true,
                Progress::Lines | Progress::Silent => false,
            };
        step.compile().map_err(|e| FitError::Train {
            epoch: 1,
            source: Box::new(e),
        })?;
        let mut history = History::default();
        for epoch in 1..=fit.epochs {
            let bar = bar_mode.then(|| crate::fit::epoch_bar(steps, epoch, fit.epochs));
            let mut loss_sum = 0.0;
            let mut sums = vec![0.0; self.metrics.len()];
            let mut samples = 0usize;
            let start = Instant::now();
            let epoch_seed = fit.seed.wrapping_add(epoch as u64);
            let part = (size > 1).then(|| self.train.shuffled_shard(epoch_seed, rank, size));
            let batches = match &part {
                Some(part) => part.batches(fit.batch_size),
                None => self.train.batches(fit.batch_size).shuffle(epoch_seed),
            }
            .drop_last(fit.drop_last)
            .take(steps);
            for batch in batches {
                let out = step.run(&batch.inputs()).map_err(|e| FitError::Train {
                    epoch,
                    source: Box::new(e),
                })?;
                let b = batch.len() as f64;
                loss_sum += out.loss * b;
                for ((_, f), sum) in self.metrics.iter_mut().zip(&mut sums) {
                    *sum += f(&out, &batch) * b;
                }
                samples += batch.len();
                if let Some(bar) = &bar {
                    bar.inc(1);
                    bar.set_message(format!("loss {:.4}", loss_sum / samples as f64));
                }
            }
            let seconds = start.elapsed().as_secs_f64();
            // Sums and sample counts, summed over the members in one collective:
            // the loss, the training metrics, then each evaluation metric.
            let mut totals = vec![loss_sum, samples as f64];
            totals.extend(&sums);
            let mut status = Ok(());
            for (eval, part) in self.evals.iter_mut().zip(&eval_parts) {
                let data = part.as_ref().unwrap_or(eval.data);
                let mut sum = 0.0;
                for batch in data.batches(eval.batch_size) {
                    match (eval.f)(step.params(), &batch) {
                        Ok(v) => sum += v * batch.len() as f64,
                        Err(message) => {
                            status = Err(FitError::Metric {
                                epoch,
                                name: eval.name.clone(),
                                message,
                            });
                            break;
                        }
                    }
                }
                totals.extend([sum, data.len() as f64]);
            }
            members.check(status, group_err(epoch))?;
            members.sum(&mut totals).map_err(group_err(epoch))?;
            let n = totals[1].max(1.0);
            let mut metrics: Vec<(String, f64)> = self
                .metrics
                .iter()
                .zip(&totals[2..])
                .map(|((name, _), sum)| (name.clone(), sum / n))
                .collect();
            let evals = &totals[2 + sums.len()..];
            for (eval, pair) in self.evals.iter().zip(evals.chunks_exact(2)) {
                metrics.push((eval.name.clone(), pair[0] / pair[1].max(1.0)));
            }
            let report = EpochMetrics {
                epoch,
                loss: totals[0] / n,
                metrics,
                samples_per_sec: totals[1] / seconds.max(1e-9),
                seconds,
            };
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if members.leader() && fit.progress != Progress::Silent {
                let width = fit.epochs.to_string().len();
                println!("epoch {epoch:>width$}/{}  {report}", fit.epochs);
            }
            let mut stop = false;
            for callback in &mut self.callbacks {
                stop |= callback(&report).is_break();
            }
            history.push(report);
            if stop {
                history.stopped_early = true;
                break;
            }
        }
        Ok(history)
    }
}

/// Runs `exe` (e.g. a forward graph compiled with [`crate::compile`]) with each
/// argument taken from `inputs` by name, else from `params`: the helper for an
/// evaluation metric of [`FitData::evaluate`], as in
/// `run_with_params(&mut exe, params, &batch.inputs())`.
pub fn run_with_params(
    exe: &mut Executable,
    params: &ParamStore,
    inputs: &[(&str, &HostTensor)],
) -> Result<Vec<HostTensor>, EvalError> {
    let args = exe
        .args()
        .iter()
        .map(|(name, _)| {
            inputs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| *t)
                .or_else(|| params.get(name))
                .ok_or_else(|| EvalError::MissingParam(name.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(exe.run_refs(&args)?)
}

/// What one epoch of [`FitData::run`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochMetrics {
    /// The epoch, counting from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps (each computed before its update).
    pub loss: f64,
    /// The named metrics: training metrics in the order added, then evaluation
    /// metrics in the order added.
    pub metrics: Vec<(String, f64)>,
    /// Training samples per second (steps only, not evaluation).
    pub samples_per_sec: f64,
    /// Seconds the epoch's steps took.
    pub seconds: f64,
}

impl EpochMetrics {
    /// The metric called `name`, or the loss for `loss`.
    pub fn get(&self, name: &str) -> Option<f64> {
        if name == "loss" {
            return Some(self.loss);
        }
        self.metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

impl fmt::Display for EpochMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "loss {:.4}", self.loss)?;
        for (name, value) in &self.metrics {
            write!(f, "  {name} {value:.4}")?;
        }
        write!(
            f,
            "  {:.0} samples/s  {:.2} s",
            self.samples_per_sec, self.seconds
        )
    }
}

/// The per-epoch metrics of a [`FitData::run`].
///
/// ```
/// use kiln::{EpochMetrics, History};
///
/// let mut history = History::default();
/// for (epoch, loss) in [(1, 0.5), (2, 0.25)] {
///     history.push(EpochMetrics {
///         epoch,
///         loss,
///         metrics: vec![("mae".into(), loss / 2.0)],
///         samples_per_sec: 1000.0,
///         seconds: 0.1,
///     });
/// }
/// assert_eq!(history.to_csv_string(), "epoch,loss,mae\n1,0.5,0.25\n2,0.25,0.125\n");
/// assert_eq!(history.column("mae"), vec![Some(0.25), Some(0.125)]);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// One report per epoch run, in order.
    pub epochs: Vec<EpochMetrics>,
    /// True when a callback stopped training before the last epoch asked for.
    pub stopped_early: bool,
}

impl History {
    /// Appends an epoch's report.
    pub fn push(&mut self, report: EpochMetrics) {
        self.epochs.push(report);
    }

    /// The number of epochs run.
    pub fn len(&self) -> usize {
        self.epochs.len()
    }

    /// True if no epoch was run.
    pub fn is_empty(&self) -> bool {
        self.epochs.is_empty()
    }

    /// The last epoch's report.
    pub fn last(&self) -> Option<&EpochMetrics> {
        self.epochs.last()
    }

    /// The metric `name` (or `loss`) of every epoch, `None` where it is missing.
    pub fn column(&self, name: &str) -> Vec<Option<f64>> {
        self.epochs.iter().map(|e| e.get(name)).collect()
    }

    /// Draws the loss and then each metric (in the order of
    /// [`History::metric_names`]) per epoch as curves in a PNG of `width` x
    /// `height` pixels (see [`crate::plot::save_curves`]: blue, orange, green, ...;
    /// a missing value breaks its line).
    pub fn save_curves(
        &self,
        path: impl AsRef<std::path::Path>,
        width: u32,
        height: u32,
    ) -> Result<(), crate::plot::PlotError> {
        let column = |name: &str| -> Vec<f64> {
            self.column(name)
                .into_iter()
                .map(|v| v.unwrap_or(f64::NAN))
                .collect()
        };
        let mut series = vec![column("loss")];
        series.extend(self.metric_names().into_iter().map(column));
        let refs: Vec<&[f64]> = series.iter().map(Vec::as_slice).collect();
        crate::plot::save_curves(path, &refs, width, height)
    }

    /// The metric names, in order of first appearance.
    pub fn metric_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for e in &self.epochs {
            for (n, _) in &e.metrics {
                if !names.contains(&n.as_str()) {
                    names.push(n);
                }
            }
        }
        names
    }

    /// The history as CSV: a header `epoch,loss,<metric names>` and one row per
    /// epoch; values are written in Rust's shortest round-trip form, a missing
    /// metric as an empty field, and a name with a comma, quote or line break is
    /// quoted. Timing is left out, so the same training writes the same file.
    pub fn to_csv_string(&self) -> String {
        let names = self.metric_names();
        let mut out = String::from("epoch,loss");
        for n in &names {
            out.push(',');
            out.push_str(&csv_field(n));
        }
        out.push('\n');
        for e in &self.epochs {
            out += &format!("{},{}", e.epoch, e.loss);
            for n in &names {
                out.push(',');
                if let Some((_, v)) = e.metrics.iter().find(|(m, _)| m == n) {
                    out += &v.to_string();
                }
            }
            out.push('\n');
        }
        out
    }

    /// Writes [`History::to_csv_string`] to `path`.
    pub fn to_csv(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.to_csv_string())
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
