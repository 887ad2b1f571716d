//! Learning-rate schedules, as PyTorch's `torch.optim.lr_scheduler`.
//!
//! The learning rate of a [`TrainStep`](crate::TrainStep) is a run-time argument of
//! its compiled graph (`{optimizer}.lr`), so a schedule changes it between steps
//! without recompiling. A schedule is attached with
//! [`TrainStep::set_schedule`](crate::TrainStep::set_schedule); before each run
//! the step asks it for [`LrSchedule::lr`] of the step index `t` (0 for the first
//! step after attaching it) and the base rate (the step's learning rate when the
//! schedule was attached, PyTorch's `initial_lr`).
//!
//! PyTorch's schedulers count `scheduler.step()` calls, usually once per epoch;
//! here `t` counts training steps, so an epoch-based schedule takes its periods in
//! steps (`step_size = epochs × batches per epoch`). [`ReduceLrOnPlateau`] is fed
//! its metric with [`TrainStep::observe_metric`](crate::TrainStep::observe_metric).
//!
//! ```
//! use kiln::schedule::{LrSchedule, StepLr};
//! // PyTorch's StepLR(step_size=2, gamma=0.5) from lr 0.1.
//! let s = StepLr::new(2, 0.5);
//! let lrs: Vec<f64> = (0..5).map(|t| s.lr(0.1, t)).collect();
//! assert_eq!(lrs, [0.1, 0.1, 0.05, 0.05, 0.025]);
//! ```

use std::f64::consts::PI;
use std::fmt;

/// A learning rate as a function of the step index (and, for
/// [`ReduceLrOnPlateau`], of the metrics observed).
pub trait LrSchedule: fmt::Debug + Send + CloneSchedule {
    /// The learning rate of step `t` (0 for the first step after the schedule was
    /// attached), given `base`, the learning rate when it was attached.
    fn lr(&self, base: f64, t: u64) -> f64;

    /// Reports a metric, e.g. the validation loss after an epoch. Only
    /// [`ReduceLrOnPlateau`] uses it; the others ignore it.
    fn observe(&mut self, metric: f64) {
        let _ = metric;
    }
}

/// Clones a boxed schedule (implemented for every `LrSchedule + Clone`), so that a
/// [`TrainStep`](crate::TrainStep) with a schedule can be cloned.
pub trait CloneSchedule {
    /// A boxed copy of this schedule.
    fn clone_box(&self) -> Box<dyn LrSchedule>;
}

impl<T: LrSchedule + Clone + 'static> CloneSchedule for T {
    fn clone_box(&self) -> Box<dyn LrSchedule> {
        Box::new(self.clone())
    }
}

impl Clone for Box<dyn LrSchedule> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// The base learning rate at every step (PyTorch's `ConstantLR` with factor 1, or
/// no scheduler).
///
/// ```
/// use kiln::schedule::{ConstantLr, LrSchedule};
/// assert_eq!(ConstantLr.lr(0.1, 1000), 0.1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ConstantLr;

impl LrSchedule for ConstantLr {
    fn lr(&self, base: f64, _t: u64) -> f64 {
        base
    }
}

/// PyTorch's `StepLR`: `base · γ^⌊t / step_size⌋`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepLr {
    /// Steps between decays (at least 1).
    pub step_size: u64,
    /// Multiplicative decay γ.
    pub gamma: f64,
}

impl StepLr {
    /// Decays by `gamma` every `step_size` steps (a `step_size` of 0 counts as 1).
    pub fn new(step_size: u64, gamma: f64) -> Self {
        StepLr {
            step_size: step_size.max(1),
            gamma,
        }
    }
}

impl LrSchedule for StepLr {
    fn lr(&self, base: f64, t: u64) -> f64 {
        let k = t / self.step_size.max(1);
        base * self.gamma.powf(k as f64)
    }
}

/// PyTorch's `ExponentialLR`: `base · γ^t`.
///
/// ```
/// use kiln::schedule::{ExponentialLr, LrSchedule};
/// assert!((ExponentialLr::new(0.9).lr(1.0, 2) - 0.81).abs() < 1e-12);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExponentialLr {
    /// Multiplicative decay γ per step.
    pub gamma: f64,
}

impl ExponentialLr {
    /// Decays by `gamma` every step.
    pub fn new(gamma: f64) -> Self {
        ExponentialLr { gamma }
    }
}

impl LrSchedule for ExponentialLr {
    fn lr(&self, base: f64, t: u64) -> f64 {
        base * self.gamma.powf(t as f64)
    }
}

/// Linear warm-up then cosine annealing: PyTorch's
/// `SequentialLR([LinearLR(start_factor, 1.0, warmup), CosineAnnealingLR(t_max,
/// eta_min)], milestones=[warmup])`.
///
/// For `t < warmup`: `base · (start_factor + (1 - start_factor) · t / warmup)`.
/// Then, with `u = t - warmup`: `eta_min + (base - eta_min) · (1 + cos(π·u/t_max)) / 2`
/// (PyTorch's closed form: past `t_max` the rate rises again, with period
/// `2·t_max`).
///
/// ```
/// use kiln::schedule::{LrSchedule, WarmupCosine};
/// let s = WarmupCosine::new(2, 4).start_factor(0.5);
/// let lrs: Vec<f64> = (0..7).map(|t| s.lr(1.0, t)).collect();
/// let want = [0.5, 0.75, 1.0, 0.8535533905932737, 0.5, 0.14644660940672627, 0.0];
/// for (a, b) in lrs.iter().zip(want) {
///     assert!((a - b).abs() < 1e-12, "{a} vs {b}");
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmupCosine {
    /// Steps of linear warm-up (0: none).
    pub warmup: u64,
    /// The warm-up's first factor of the base rate (PyTorch's `LinearLR` default
    /// 1/3).
    pub start_factor: f64,
    /// Steps of the cosine half-period after the warm-up (at least 1).
    pub t_max: u64,
    /// The smallest rate, reached `t_max` steps after the warm-up.
    pub eta_min: f64,
}

impl WarmupCosine {
    /// `warmup` steps of linear warm-up from a third of the base rate, then a
    /// cosine from the base rate down to 0 over `t_max` steps.
    pub fn new(warmup: u64, t_max: u64) -> Self {
        WarmupCosine {
            warmup,
            start_factor: 1.0 / 3.0,
            t_max: t_max.max(1),
            eta_min: 0.0,
        }
    }

    /// Sets the warm-up's starting factor (PyTorch requires it in (0, 1]).
    pub fn start_factor(mut self, start_factor: f64) -> Self {
        self.start_factor = start_factor;
        self
    }

    /// Sets the rate the cosine ends at.
    pub fn eta_min(mut self, eta_min: f64) -> Self {
        self.eta_min = eta_min;
        self
    }
}

impl LrSchedule for WarmupCosine {
    fn lr(&self, base: f64, t: u64) -> f64 {
        if t < self.warmup {
            let f = self.start_factor + (1.0 - self.start_factor) * t as f64 / self.warmup as f64;
            return base * f;
        }
        let u = (t - self.warmup) as f64;
        let t_max = self.t_max.max(1) as f64;
        self.eta_min + (base - self.eta_min) * (1.0 + (PI * u / t_max).cos()) / 2.0
    }
}

/// Whether [`ReduceLrOnPlateau`] wants its metric to go down or up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PlateauMode {
    /// Lower is better (a loss).
    #[default]
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How [`ReduceLrOnPlateau`] compares a metric with the best one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ThresholdMode {
    /// Better means by more than `threshold` times the best (`best · (1 ∓ threshold)`).
    #[default]
    Rel,
    /// Better means by more than `threshold` (`best ∓ threshold`).
    Abs,
}

/// PyTorch's `ReduceLROnPlateau`: multiplies the rate by `factor` (not below
/// `min_lr`) when the metric fed to [`LrSchedule::observe`] has not improved for
/// more than `patience` observations, then waits `cooldown` observations before
/// counting again. A reduction that would change the rate by at most `eps` is
/// skipped. The metric is fed by the user, e.g. the validation loss after each
/// epoch, through [`TrainStep::observe_metric`](crate::TrainStep::observe_metric).
///
/// ```
/// use kiln::schedule::{LrSchedule, ReduceLrOnPlateau};
/// let mut s = ReduceLrOnPlateau::new().patience(1).factor(0.5);
/// for loss in [1.0, 0.5, 0.6, 0.7] {
///     s.observe(loss);
/// }
/// // Two observations without improvement (more than the patience of 1): halved.
/// assert_eq!(s.lr(0.1, 0), 0.05);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ReduceLrOnPlateau {
    /// Whether the metric should decrease or increase.
    pub mode: PlateauMode,
    /// Multiplies the rate at each reduction (default 0.1).
    pub factor: f64,
    /// Observations without improvement tolerated (default 10).
    pub patience: u64,
    /// The least improvement that counts (default 1e-4).
    pub threshold: f64,
    /// Whether `threshold` is relative or absolute.
    pub threshold_mode: ThresholdMode,
    /// Observations to wait after a reduction (default 0).
    pub cooldown: u64,
    /// The smallest rate (default 0).
    pub min_lr: f64,
    /// Reductions smaller than this are skipped (default 1e-8).
    pub eps: f64,
    best: f64,
    bad: u64,
    cooldown_left: u64,
    reductions: u32,
}

impl Default for ReduceLrOnPlateau {
    fn default() -> Self {
        Self::new()
    }
}

impl ReduceLrOnPlateau {
    /// PyTorch's defaults: mode min, factor 0.1, patience 10, threshold 1e-4
    /// relative, cooldown 0, min_lr 0, eps 1e-8.
    pub fn new() -> Self {
        ReduceLrOnPlateau {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
            best: f64::INFINITY,
            bad: 0,
            cooldown_left: 0,
            reductions: 0,
        }
    }

    /// Sets the mode (and resets the best value seen).
    pub fn mode(mut self, mode: PlateauMode) -> Self {
        self.mode = mode;
        self.best = match mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        };
        self
    }

    /// Sets the factor (PyTorch requires it below 1).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Sets the patience.
    pub fn patience(mut self, patience: u64) -> Self {
        self.patience = patience;
        self
    }

    /// Sets the threshold and how it is applied.
    pub fn threshold(mut self, threshold: f64, mode: ThresholdMode) -> Self {
        self.threshold = threshold;
        self.threshold_mode = mode;
        self
    }

    /// Sets the cooldown.
    pub fn cooldown(mut self, cooldown: u64) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Sets the smallest rate.
    pub fn min_lr(mut self, min_lr: f64) -> Self {
        self.min_lr = min_lr;
        self
    }

    /// How many reductions the observations so far have triggered.
    pub fn reductions(&self) -> u32 {
        self.reductions
    }

    fn is_better(&self, a: f64) -> bool {
        let (best, th) = (self.best, self.threshold);
        match (self.mode, self.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < best * (1.0 - th),
            (PlateauMode::Min, ThresholdMode::Abs) => a < best - th,
            (PlateauMode::Max, ThresholdMode::Rel) => a > best * (th + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => a > best + th,
        }
    }
}

impl LrSchedule for ReduceLrOnPlateau {
    fn lr(&self, base: f64, _t: u64) -> f64 {
        // Replays the reductions as PyTorch applies them to the current rate.
        let mut lr = base;
        for _ in 0..self.reductions {
            let new = (lr * self.factor).max(self.min_lr);
            if lr - new > self.eps {
                lr = new;
            }
        }
        lr
    }

    fn observe(&mut self, metric: f64) {
        if self.is_better(metric) {
            self.best = metric;
            self.bad = 0;
        } else {
            self.bad += 1;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad = 0;
        }
        if self.bad > self.patience {
            self.reductions += 1;
            self.cooldown_left = self.cooldown;
            self.bad = 0;
        }
    }
}
