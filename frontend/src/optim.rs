//! Optimizers as graph builders.
//!
//! An optimizer does not run: it *emits* the update of each parameter into the
//! training-step graph, so forward pass, backward pass and update compile into one
//! function. Optimizer state (momentum buffers, moment estimates, step counts) is
//! declared as persistent parameters of the graph, named `{optimizer}.{slot}.{param}`
//! (e.g. `adam.m.fc1.weight`), with its next value as a graph output of the same
//! name; the runtime (or [`crate::Model`]'s caller) feeds outputs back in.
//!
//! The learning rate is a graph argument too: a scalar `param` named
//! `{optimizer}.lr` (e.g. `adam.lr`), declared through [`OptimizerState::lr`] with
//! the constructor's value as its initial value and never updated by the graph. A
//! compiled step reads it on every run, so changing it (by hand or by a schedule)
//! needs no recompilation. The other hyperparameters are baked into the graph as
//! constants, so they fold with the rest of the update arithmetic. Formulas follow
//! PyTorch's `torch.optim` defaults.
//!
//! Parameters can be updated in groups with their own learning-rate multiplier and
//! weight decay ([`GroupOptions`], [`apply_groups`]), as PyTorch's parameter groups.

use std::collections::HashMap;

use crate::Tensor;
use kiln_ir::HostTensor;

/// Emits parameter updates into a graph.
pub trait Optimizer {
    /// The prefix of this optimizer's state names (`"adam"`).
    fn name(&self) -> &str;

    /// Returns the next value of `param` given its gradient `grad`; declares and
    /// updates whatever state it needs through `state`.
    ///
    /// An implementation takes its learning rate from [`OptimizerState::lr`] and its
    /// weight decay from [`OptimizerState::weight_decay`], so that the rate can
    /// change between runs and parameter groups can override both.
    fn update(&self, param: &Tensor, grad: &Tensor, state: &mut OptimizerState) -> Tensor;
}

/// Per-group hyperparameters that override an optimizer's, as the options of a
/// PyTorch parameter group: the group's learning rate is `lr_scale` times the
/// optimizer's (run-time) learning rate, and `weight_decay`, when set, replaces
/// the optimizer's weight decay.
///
/// ```
/// use kiln_frontend::optim::GroupOptions;
/// let head = GroupOptions::default().lr_scale(10.0).weight_decay(0.0);
/// assert_eq!(head.lr_scale, 10.0);
/// assert_eq!(head.weight_decay, Some(0.0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupOptions {
    /// Multiplies the optimizer's learning rate (baked into the graph).
    pub lr_scale: f32,
    /// Replaces the optimizer's weight decay when set.
    pub weight_decay: Option<f32>,
}

impl Default for GroupOptions {
    fn default() -> Self {
        GroupOptions {
            lr_scale: 1.0,
            weight_decay: None,
        }
    }
}

impl GroupOptions {
    /// Sets the learning-rate multiplier.
    pub fn lr_scale(mut self, scale: f32) -> Self {
        self.lr_scale = scale;
        self
    }

    /// Sets the group's weight decay.
    pub fn weight_decay(mut self, weight_decay: f32) -> Self {
        self.weight_decay = Some(weight_decay);
        self
    }
}

/// The name of the learning-rate argument `optimizer` declares (`adam.lr`).
pub fn lr_name(optimizer: &dyn Optimizer) -> String {
    format!("{}.lr", optimizer.name())
}

/// The state an optimizer declares while emitting one parameter's update.
pub struct OptimizerState<'a> {
    optimizer: &'a str,
    param: &'a Tensor,
    param_name: &'a str,
    shared: &'a mut HashMap<String, Tensor>,
    updates: &'a mut Vec<(String, Tensor)>,
    group: GroupOptions,
}

impl OptimizerState<'_> {
    /// A state tensor shaped like the parameter, named `{optimizer}.{slot}.{param}`,
    /// starting at `init`; `next` gives its value after this step (an output).
    #[track_caller]
    pub fn slot(&mut self, slot: &str, init: f32, next: impl FnOnce(&Tensor) -> Tensor) -> Tensor {
        let like = self.param.ty().clone();
        let name = format!("{}.{slot}.{}", self.optimizer, self.param_name);
        let current = self
            .param
            .builder()
            .param(&name, HostTensor::full(like.dtype, like.shape, init as f64));
        let new = next(&current);
        self.updates.push((name, new.clone()));
        new
    }

    /// The step count *after* this step (1 on the first call), an f32 scalar shared
    /// by every parameter and stored as `{optimizer}.step`.
    #[track_caller]
    pub fn step_count(&mut self) -> Tensor {
        let name = format!("{}.step", self.optimizer);
        if let Some(t) = self.shared.get(&name) {
            return t.clone();
        }
        let current = self
            .param
            .builder()
            .param(&name, HostTensor::scalar(kiln_ir::DType::F32, 0.0));
        let next = &current + 1.0;
        self.updates.push((name.clone(), next.clone()));
        self.shared.insert(name, next.clone());
        next
    }

    /// The learning rate for this parameter: the f32 scalar argument
    /// `{optimizer}.lr` (declared on first use with the value `initial`, shared by
    /// every parameter, never updated by the graph), times the group's
    /// [`GroupOptions::lr_scale`], in the parameter's dtype.
    #[track_caller]
    pub fn lr(&mut self, initial: f32) -> Tensor {
        let name = format!("{}.lr", self.optimizer);
        let dtype = self.param.dtype();
        let scale = self.group.lr_scale;
        let key = format!("{name}*{:08x}:{dtype:?}", scale.to_bits());
        if let Some(t) = self.shared.get(&key) {
            return t.clone();
        }
        let base = match self.shared.get(&name) {
            Some(t) => t.clone(),
            None => {
                let t = self.param.builder().param(
                    &name,
                    HostTensor::scalar(kiln_ir::DType::F32, initial as f64),
                );
                self.shared.insert(name, t.clone());
                t
            }
        };
        let lr = if scale == 1.0 { base } else { &base * scale }.cast(dtype);
        self.shared.insert(key, lr.clone());
        lr
    }

    /// The weight decay for this parameter: the group's
    /// [`GroupOptions::weight_decay`] if it sets one, else `default` (the
    /// optimizer's).
    pub fn weight_decay(&self, default: f32) -> f32 {
        self.group.weight_decay.unwrap_or(default)
    }
}

/// Emits the updates of every `(parameter, gradient)` pair. Returns the new values as
/// `(name, tensor)`: each parameter under its own name, then the optimizer state
/// under the state names, ready to be graph outputs.
#[track_caller]
pub fn apply(optimizer: &dyn Optimizer, params: &[(Tensor, Tensor)]) -> Vec<(String, Tensor)> {
    apply_groups(optimizer, &[(GroupOptions::default(), params)])
}

/// Like [`apply`], with the parameters in groups, each with its own
/// [`GroupOptions`]. The optimizer's state (learning rate, step count) is shared by
/// all groups, as in one PyTorch optimizer over several parameter groups.
///
/// ```
/// use kiln_frontend::prelude::*;
/// use kiln_frontend::optim::{self, GroupOptions};
///
/// let g = GraphBuilder::new("two_groups");
/// let a = g.param("a", HostTensor::scalar(DType::F32, 1.0));
/// let b = g.param("b", HostTensor::scalar(DType::F32, 1.0));
/// let (ga, gb) = (g.scalar(0.5), g.scalar(0.5));
/// let updates = optim::apply_groups(
///     &Sgd::new(0.1),
///     &[
///         (GroupOptions::default(), &[(a, ga)]),
///         (GroupOptions::default().lr_scale(2.0), &[(b, gb)]),
///     ],
/// );
/// let names: Vec<&str> = updates.iter().map(|(n, _)| n.as_str()).collect();
/// assert_eq!(names, ["a", "b"]);
/// let outputs: Vec<(&str, &Tensor)> = updates.iter().map(|(n, t)| (n.as_str(), t)).collect();
/// let model = g.build(&outputs).unwrap();
/// // The learning rate is an argument with the constructor's value.
/// assert_eq!(model.params.get("sgd.lr").unwrap().get_f64(0), 0.1f32 as f64);
/// let out = kiln_ir::interp::run(&model.graph, &model.call_args(&[]).unwrap()).unwrap();
/// assert!((out[0].get_f64(0) - (1.0 - 0.1 * 0.5)).abs() < 1e-6);
/// assert!((out[1].get_f64(0) - (1.0 - 0.2 * 0.5)).abs() < 1e-6);
/// ```
#[track_caller]
pub fn apply_groups(
    optimizer: &dyn Optimizer,
    groups: &[(GroupOptions, &[(Tensor, Tensor)])],
) -> Vec<(String, Tensor)> {
    let mut shared = HashMap::new();
    let mut state_updates = Vec::new();
    let mut out = Vec::new();
    for (group, params) in groups {
        for (p, g) in params.iter() {
            let name = p.name().unwrap_or_default();
            let mut st = OptimizerState {
                optimizer: optimizer.name(),
                param: p,
                param_name: &name,
                shared: &mut shared,
                updates: &mut state_updates,
                group: *group,
            };
            let next = optimizer.update(p, g, &mut st);
            out.push((name, next));
        }
    }
    out.extend(state_updates);
    out
}

/// `grad + weight_decay * param` (L2 penalty folded into the gradient).
fn decayed(param: &Tensor, grad: &Tensor, weight_decay: f32) -> Tensor {
    if weight_decay == 0.0 {
        grad.clone()
    } else {
        grad + &(param * weight_decay)
    }
}

/// Stochastic gradient descent with optional momentum, Nesterov momentum and L2
/// weight decay:
/// `g += wd·p; b = μ·b + g; g = nesterov ? g + μ·b : b; p -= lr·g`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate: the initial value of the run-time `{optimizer}.lr` argument.
    pub lr: f32,
    /// Momentum factor μ (0 disables the buffer).
    pub momentum: f32,
    /// Use Nesterov momentum.
    pub nesterov: bool,
    /// Weight decay factor (0 disables it).
    pub weight_decay: f32,
}

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f32) -> Self {
        Sgd {
            lr,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    setters! {
        /// Heavy-ball momentum `μ`.
        momentum(momentum: f32) => momentum;
        /// L2 weight decay added to the gradient.
        weight_decay(weight_decay: f32) => weight_decay;
    }

    /// Nesterov momentum `μ`.
    pub fn nesterov(mut self, momentum: f32) -> Self {
        self.momentum = momentum;
        self.nesterov = true;
        self
    }
}

impl Optimizer for Sgd {
    fn name(&self) -> &str {
        "sgd"
    }

    fn update(&self, p: &Tensor, g: &Tensor, state: &mut OptimizerState) -> Tensor {
        let mut g = decayed(p, g, state.weight_decay(self.weight_decay));
        if self.momentum != 0.0 {
            let mu = self.momentum;
            let buf = state.slot("momentum", 0.0, |b| &(b * mu) + &g);
            g = if self.nesterov {
                &g + &(&buf * mu)
            } else {
                buf
            };
        }
        let lr = state.lr(self.lr);
        p - &(&g * &lr)
    }
}

/// Adam, and AdamW with [`Adam::adamw`]:
/// `m = β1·m + (1-β1)·g; v = β2·v + (1-β2)·g²; p -= lr·m̂/(√v̂ + ε)` with the bias
/// corrections `m̂ = m/(1-β1^t)`, `v̂ = v/(1-β2^t)`. Adam's weight decay is added to
/// the gradient; AdamW's multiplies the parameter by `1 - lr·wd` first.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate: the initial value of the run-time `{optimizer}.lr` argument.
    pub lr: f32,
    /// Decay of the first-moment estimate.
    pub beta1: f32,
    /// Decay of the second-moment estimate.
    pub beta2: f32,
    /// Added to the denominator for stability.
    pub eps: f32,
    /// Weight decay factor (0 disables it).
    pub weight_decay: f32,
    /// AdamW: shrink the parameter instead of adding to the gradient.
    pub decoupled_weight_decay: bool,
}

impl Adam {
    /// Adam with PyTorch's defaults (betas 0.9/0.999, eps 1e-8).
    pub fn new(lr: f32) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
        }
    }

    /// AdamW: decoupled weight decay `wd` (PyTorch's default is 0.01).
    pub fn adamw(lr: f32, weight_decay: f32) -> Self {
        Adam {
            weight_decay,
            decoupled_weight_decay: true,
            ..Adam::new(lr)
        }
    }

    /// Sets β1 and β2.
    pub fn betas(mut self, beta1: f32, beta2: f32) -> Self {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }

    setters! {
        /// Sets ε.
        eps(eps: f32) => eps;
        /// L2 weight decay added to the gradient (not decoupled).
        weight_decay(weight_decay: f32) => weight_decay;
    }
}

impl Optimizer for Adam {
    fn name(&self) -> &str {
        if self.decoupled_weight_decay {
            "adamw"
        } else {
            "adam"
        }
    }

    fn update(&self, p: &Tensor, g: &Tensor, state: &mut OptimizerState) -> Tensor {
        let (b1, b2) = (self.beta1, self.beta2);
        let weight_decay = state.weight_decay(self.weight_decay);
        let g = if self.decoupled_weight_decay {
            g.clone()
        } else {
            decayed(p, g, weight_decay)
        };
        let m = state.slot("m", 0.0, |m| &(m * b1) + &(&g * (1.0 - b1)));
        let v = state.slot("v", 0.0, |v| &(v * b2) + &(&g.square() * (1.0 - b2)));
        let t = state.step_count();
        let lr = state.lr(self.lr);
        let p = if self.decoupled_weight_decay && weight_decay != 0.0 {
            p * &(1.0 - &(&lr * weight_decay))
        } else {
            p.clone()
        };
        let b = p.builder();
        // 1 - β^t, computed in the graph from the step count.
        let c1 = 1.0 - &b.scalar(b1).pow(&t);
        let c2 = 1.0 - &b.scalar(b2).pow(&t);
        // m̂/(√v̂ + ε) rearranged so the bias corrections are scalars computed once
        // per step: lr/c1 · m / (√v / √c2 + ε). One sqrt and one division per
        // element instead of two divisions more (as PyTorch arranges it too).
        let step_size = &lr / &c1;
        let inv_sqrt_c2 = c2.rsqrt();
        let denom = &v.sqrt() * &inv_sqrt_c2 + self.eps;
        &p - &(&(&m / &denom) * &step_size)
    }
}

/// AdaGrad: `s += g²; p -= lr·g/(√s + ε)`.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaGrad {
    /// Learning rate: the initial value of the run-time `{optimizer}.lr` argument.
    pub lr: f32,
    /// Added to the denominator for stability.
    pub eps: f32,
    /// Weight decay factor (0 disables it).
    pub weight_decay: f32,
    /// Starting value of the sum of squared gradients.
    pub initial_accumulator: f32,
}

impl AdaGrad {
    /// AdaGrad with PyTorch's defaults (eps 1e-10, accumulator starting at 0).
    pub fn new(lr: f32) -> Self {
        AdaGrad {
            lr,
            eps: 1e-10,
            weight_decay: 0.0,
            initial_accumulator: 0.0,
        }
    }

    setters! {
        /// L2 weight decay added to the gradient.
        weight_decay(weight_decay: f32) => weight_decay;
    }
}

impl Optimizer for AdaGrad {
    fn name(&self) -> &str {
        "adagrad"
    }

    fn update(&self, p: &Tensor, g: &Tensor, state: &mut OptimizerState) -> Tensor {
        let g = decayed(p, g, state.weight_decay(self.weight_decay));
        let s = state.slot("sum", self.initial_accumulator, |s| s + &g.square());
        let lr = state.lr(self.lr);
        p - &(&(&g / &(&s.sqrt() + self.eps)) * &lr)
    }
}

/// RMSprop: `v = α·v + (1-α)·g²; p -= lr·g/(√v + ε)`.
#[derive(Clone, Debug, PartialEq)]
pub struct RmsProp {
    /// Learning rate: the initial value of the run-time `{optimizer}.lr` argument.
    pub lr: f32,
    /// Decay of the squared-gradient average.
    pub alpha: f32,
    /// Added to the denominator for stability.
    pub eps: f32,
    /// Weight decay factor (0 disables it).
    pub weight_decay: f32,
}

impl RmsProp {
    /// RMSprop with PyTorch's defaults (alpha 0.99, eps 1e-8).
    pub fn new(lr: f32) -> Self {
        RmsProp {
            lr,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    setters! {
        /// Sets α.
        alpha(alpha: f32) => alpha;
        /// L2 weight decay added to the gradient.
        weight_decay(weight_decay: f32) => weight_decay;
    }
}

impl Optimizer for RmsProp {
    fn name(&self) -> &str {
        "rmsprop"
    }

    fn update(&self, p: &Tensor, g: &Tensor, state: &mut OptimizerState) -> Tensor {
        let g = decayed(p, g, state.weight_decay(self.weight_decay));
        let a = self.alpha;
        let v = state.slot("square_avg", 0.0, |v| &(v * a) + &(&g.square() * (1.0 - a)));
        let lr = state.lr(self.lr);
        p - &(&(&g / &(&v.sqrt() + self.eps)) * &lr)
    }
}

/// Adadelta: `v = ρ·v + (1-ρ)·g²; Δ = √(u + ε)/√(v + ε)·g; u = ρ·u + (1-ρ)·Δ²;
/// p -= lr·Δ`.
#[derive(Clone, Debug, PartialEq)]
pub struct Adadelta {
    /// Learning rate: the initial value of the run-time `{optimizer}.lr` argument.
    pub lr: f32,
    /// Decay of the running averages.
    pub rho: f32,
    /// Added to the denominator for stability.
    pub eps: f32,
    /// Weight decay factor (0 disables it).
    pub weight_decay: f32,
}

impl Adadelta {
    /// Adadelta with PyTorch's defaults (lr 1.0, rho 0.9, eps 1e-6).
    pub fn new() -> Self {
        Adadelta {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
        }
    }

    setters! {
        /// Sets the learning rate.
        lr(lr: f32) => lr;
        /// L2 weight decay added to the gradient.
        weight_decay(weight_decay: f32) => weight_decay;
    }
}

impl Default for Adadelta {
    fn default() -> Self {
        Self::new()
    }
}

impl Optimizer for Adadelta {
    fn name(&self) -> &str {
        "adadelta"
    }

    fn update(&self, p: &Tensor, g: &Tensor, state: &mut OptimizerState) -> Tensor {
        let g = decayed(p, g, state.weight_decay(self.weight_decay));
        let (rho, eps) = (self.rho, self.eps);
        let v = state.slot("square_avg", 0.0, |v| {
            &(v * rho) + &(&g.square() * (1.0 - rho))
        });
        // Δ uses the *previous* u, so the u slot's update is emitted after computing Δ.
        let mut delta = None;
        state.slot("acc_delta", 0.0, |u| {
            let d = &(&(u + eps).sqrt() / &(&v + eps).sqrt()) * &g;
            let next = &(u * rho) + &(&d.square() * (1.0 - rho));
            delta = Some(d);
            next
        });
        let delta = delta.expect("slot calls its closure");
        let lr = state.lr(self.lr);
        p - &(&delta * &lr)
    }
}
