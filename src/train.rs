//! The whole training step as one graph: forward, backward and optimizer update.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_frontend::optim::{self, GroupOptions, Optimizer};
use kiln_frontend::{ArgError, BuildError, GraphBuilder, ParamStore, Tensor};
use kiln_ir::interp::{self, EvalError};
use kiln_ir::{Graph, HostTensor};
use kiln_passes::AutodiffError;
use kiln_passes::optimize::Stage;
use kiln_runtime::{
    Collective, CollectiveError, CompileError, CompileOptions, Executable, RunError,
};

use crate::schedule::LrSchedule;

/// Why a training step could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Autodiff(#[from] AutodiffError),
    #[error(transparent)]
    Arg(#[from] ArgError),
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error("output name `{0}` clashes with a parameter or optimizer state of the step")]
    OutputName(String),
    #[error(transparent)]
    Compile(Box<CompileError>),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("the loss is NaN or infinite ({0}); lower the learning rate or check the data")]
    NonFiniteLoss(f64),
    /// A parameter group names a parameter the loss's graph does not have.
    #[error("parameter group: `{0}` is not a parameter of the loss's graph")]
    UnknownParam(String),
    /// A prefix selects no parameter.
    #[error("parameter group: no parameter name starts with `{0}`")]
    EmptyGroup(String),
    /// A parameter is selected by two groups.
    #[error("parameter `{0}` appears in more than one parameter group")]
    ParamInTwoGroups(String),
    /// The optimizer declares no run-time learning rate (`{optimizer}.lr`).
    #[error("the optimizer has no run-time learning rate (no `{0}` argument)")]
    NoLearningRate(String),
    /// A data-parallel step cannot be built or run this way.
    #[error("data-parallel training: {0}")]
    DataParallel(String),
    /// The group of a data-parallel step failed, or another member did.
    #[error(transparent)]
    Collective(#[from] CollectiveError),
}

impl From<CompileError> for TrainError {
    fn from(e: CompileError) -> Self {
        TrainError::Compile(Box::new(e))
    }
}

/// One training step compiled into a single graph.
///
/// The graph takes the data inputs and every persistent value (parameters and
/// optimizer state, declared as `param` arguments) and returns the loss, the extra
/// outputs asked for, then the next value of each persistent argument under that
/// argument's name. [`TrainStep::params`] holds the current values between steps.
///
/// ```
/// use kiln::prelude::*;
///
/// // W1: y = w*x + b, MSE, SGD.
/// let g = GraphBuilder::new("linreg");
/// let x = g.input("x", DType::F32, [3]);
/// let y = g.input("y", DType::F32, [3]);
/// let w = g.param("w", HostTensor::scalar(DType::F32, 0.0));
/// let b = g.param("b", HostTensor::scalar(DType::F32, 0.0));
/// let loss = loss::mse(&(&x * &w + &b), &y);
/// let mut step = TrainStep::new(&loss, &Sgd::new(0.01)).unwrap();
/// let xs = HostTensor::from_f32([3], vec![1.0, 3.0, 5.0]).unwrap();
/// let ys = HostTensor::from_f32([3], vec![2.0, 4.0, 6.0]).unwrap();
/// let first = step.run_interpreted(&[("x", &xs), ("y", &ys)]).unwrap().loss;
/// let second = step.run_interpreted(&[("x", &xs), ("y", &ys)]).unwrap().loss;
/// assert!(second < first);
/// ```
pub struct TrainStep {
    graph: Graph,
    /// The forward graph the step was made from, and the time autodiff and the
    /// optimizer took to turn it into `graph` (for dumps: stages `built`, `grad`).
    forward: Graph,
    grad_time: Duration,
    params: ParamStore,
    trainable: Vec<String>,
    /// Parameters holding state (buffers), updated by the step, not trained.
    buffers: Vec<String>,
    extra_outputs: usize,
    /// The native code, compiled on the first [`TrainStep::run`].
    compiled: Option<Executable>,
    /// Per output: a spare tensor the compiled step writes an updated value into,
    /// swapped with the current value afterwards (no copy, no allocation).
    spares: Vec<Option<HostTensor>>,
    /// How many times the step graph was compiled.
    compilations: usize,
    /// The learning-rate argument (`{optimizer}.lr`).
    lr_name: String,
    /// The schedule, the base rate it scales and the steps run since it was attached.
    schedule: Option<Box<dyn LrSchedule>>,
    base_lr: f64,
    schedule_steps: u64,
    /// Steps run (successfully) by this step.
    steps: u64,
    /// The data-parallel group, and this member's rank as the step's
    /// [`RANK_INPUT`] argument.
    group: Option<(Arc<dyn Collective>, HostTensor)>,
}

/// The input of a data-parallel step holding the member's rank (`i32[]`), fed by
/// [`TrainStep::run`]: the step graph is the same on every member.
const RANK_INPUT: &str = "dist.rank";

impl Clone for TrainStep {
    /// Clones the graph and the current values; the clone compiles on its own.
    fn clone(&self) -> Self {
        TrainStep {
            graph: self.graph.clone(),
            forward: self.forward.clone(),
            grad_time: self.grad_time,
            params: self.params.clone(),
            trainable: self.trainable.clone(),
            buffers: self.buffers.clone(),
            extra_outputs: self.extra_outputs,
            compiled: None,
            spares: Vec::new(),
            compilations: 0,
            lr_name: self.lr_name.clone(),
            schedule: self.schedule.clone(),
            base_lr: self.base_lr,
            schedule_steps: self.schedule_steps,
            steps: self.steps,
            group: self.group.clone(),
        }
    }
}

impl std::fmt::Debug for TrainStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainStep")
            .field("graph", &self.graph.name())
            .field("params", &self.params.names().collect::<Vec<_>>())
            .field("compiled", &self.compiled.is_some())
            .field("schedule", &self.schedule)
            .field("steps", &self.steps)
            .finish()
    }
}

/// What one step returns.
#[derive(Clone, Debug)]
pub struct StepOutput {
    /// The loss before the update.
    pub loss: f64,
    /// The extra outputs asked for, in order.
    pub outputs: Vec<HostTensor>,
}

impl TrainStep {
    /// The step minimizing the scalar `loss` over every parameter of its graph.
    #[track_caller]
    pub fn new(loss: &Tensor, optimizer: &dyn Optimizer) -> Result<TrainStep, TrainError> {
        Self::with_outputs(loss, optimizer, &[])
    }

    /// Like [`TrainStep::new`], also returning the named `outputs` (e.g. logits for
    /// accuracy) from each step.
    #[track_caller]
    pub fn with_outputs(
        loss: &Tensor,
        optimizer: &dyn Optimizer,
        outputs: &[(&str, &Tensor)],
    ) -> Result<TrainStep, TrainError> {
        TrainStep::builder(loss).outputs(outputs).build(optimizer)
    }

    /// A step with options: extra outputs, the parameters to train in groups
    /// (the others are frozen), gradient clipping, a learning-rate schedule.
    ///
    /// ```
    /// use kiln::prelude::*;
    /// use kiln::schedule::StepLr;
    ///
    /// let mut rng = Rng::seed(0);
    /// let g = GraphBuilder::new("finetune");
    /// let x = g.input("x", DType::F32, [8, 4]);
    /// let y = g.input("y", DType::F32, [8, 2]);
    /// let fc1 = nn::Linear::new(&g, "fc1", 4, 3, &mut rng);
    /// let fc2 = nn::Linear::new(&g, "fc2", 3, 2, &mut rng);
    /// let loss = loss::mse(&fc2.forward(&fc1.forward(&x).relu()), &y);
    /// let step = TrainStep::builder(&loss)
    ///     .group(ParamGroup::prefix("fc2."))                          // trained at lr
    ///     .group(ParamGroup::names(&["fc1.bias"]).lr_scale(0.1))      // at lr / 10
    ///     .clip_grad_norm(1.0)
    ///     .schedule(StepLr::new(100, 0.5))
    ///     .build(&Sgd::new(0.1).momentum(0.9))
    ///     .unwrap();
    /// assert_eq!(step.trainable(), ["fc1.bias", "fc2.weight", "fc2.bias"]);
    /// assert_eq!(step.frozen(), ["fc1.weight"]);
    /// assert_eq!(step.learning_rate(), Some(0.1f32 as f64));
    /// ```
    #[track_caller]
    pub fn builder(loss: &Tensor) -> TrainStepBuilder {
        TrainStepBuilder {
            loss: loss.clone(),
            outputs: Vec::new(),
            groups: Vec::new(),
            clip_norm: None,
            clip_value: None,
            schedule: None,
            group: None,
        }
    }

    /// The data-parallel group the step runs in, if any
    /// ([`TrainStepBuilder::data_parallel`]).
    pub fn group(&self) -> Option<&Arc<dyn Collective>> {
        self.group.as_ref().map(|(g, _)| g)
    }

    /// The training-step graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Current values of the parameters and the optimizer state.
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// Mutable access, e.g. to load a checkpoint (types are checked by `set`).
    pub fn params_mut(&mut self) -> &mut ParamStore {
        &mut self.params
    }

    /// Names of the trainable parameters (the rest of [`TrainStep::params`] is
    /// optimizer state).
    pub fn trainable(&self) -> &[String] {
        &self.trainable
    }

    /// Compiles the step to native code now (otherwise the first [`TrainStep::run`]
    /// does). Returns the executable, e.g. to inspect its kernel program.
    pub fn compile(&mut self) -> Result<&Executable, TrainError> {
        if self.compiled.is_none() {
            let options = self.with_history(&CompileOptions::default());
            self.compiled = Some(self.compile_graph(&options)?);
            self.compilations += 1;
        }
        Ok(self.compiled.as_ref().expect("compiled above"))
    }

    /// The step graph compiled with `options`, bound to the step's group.
    fn compile_graph(&self, options: &CompileOptions) -> Result<Executable, TrainError> {
        let mut exe = Executable::compile_with(&self.graph, options)?;
        exe.set_collective(self.group().cloned());
        Ok(exe)
    }

    /// The loss a step reports from its first output: the scalar loss, or in a
    /// group the mean of the members' losses (one per member). A NaN or infinite
    /// loss is an error, naming the member whose loss it was.
    fn read_loss(&self, first: &HostTensor) -> Result<f64, TrainError> {
        // Read in place: this runs after every step.
        let n = first.numel();
        if let Some(r) = (0..n).find(|&i| !first.get_f64(i).is_finite()) {
            let loss = first.get_f64(r);
            return Err(match &self.group {
                Some((g, _)) if g.rank() != r => {
                    TrainError::Collective(CollectiveError::RankFailed {
                        rank: r,
                        size: g.size(),
                        reason: format!("its loss is {loss}"),
                    })
                }
                _ => TrainError::NonFiniteLoss(loss),
            });
        }
        Ok((0..n).map(|i| first.get_f64(i)).sum::<f64>() / n.max(1) as f64)
    }

    /// The forward graph the step was made from (before autodiff and the optimizer).
    pub fn forward_graph(&self) -> &Graph {
        &self.forward
    }

    /// Writes the step graph to `path` in the text format, for `kiln dump`,
    /// `kiln run` and `kiln stats`. [`TrainStep::forward_graph`] can be saved with
    /// [`crate::save_graph`].
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
        crate::save_graph(&self.graph, path)
    }

    /// `options`, plus the step's history (`built`: the forward graph, `grad`: the
    /// step) when they trace or dump the compile.
    fn with_history(&self, options: &CompileOptions) -> CompileOptions {
        let mut options = options.clone();
        if (options.trace || options.dump_dir.is_some()) && options.history.is_empty() {
            options.history = vec![
                Stage::new("built", self.forward.clone(), Duration::ZERO),
                Stage::new("grad", self.graph.clone(), self.grad_time),
            ];
        }
        options
    }

    /// Compiles (again) with `options`, e.g. `threads: 1` for a single-threaded
    /// step. The parameters are kept.
    pub fn compile_with(&mut self, options: &CompileOptions) -> Result<&Executable, TrainError> {
        let options = self.with_history(options);
        self.compiled = Some(self.compile_graph(&options)?);
        self.compilations += 1;
        self.spares.clear();
        Ok(self.compiled.as_ref().expect("compiled above"))
    }

    /// Runs one step as native code (compiled on first use) and applies the updates.
    ///
    /// A NaN or infinite loss is an error and leaves the parameters unchanged.
    pub fn run(&mut self, inputs: &[(&str, &HostTensor)]) -> Result<StepOutput, TrainError> {
        self.compile()?;
        self.apply_schedule()?;
        let exe = self.compiled.as_mut().expect("compiled above");
        let mut args: Vec<&HostTensor> = Vec::with_capacity(exe.args().len());
        for (name, ty) in exe.args() {
            let own = match &self.group {
                Some((_, rank)) if name == RANK_INPUT => Some(rank),
                _ => self.params.get(name),
            };
            let value = match own {
                Some(v) => v,
                None => inputs
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| *v)
                    .ok_or_else(|| ArgError::Missing(name.clone()))?,
            };
            if value.ty() != *ty {
                return Err(ArgError::Type {
                    name: name.clone(),
                    expected: ty.clone(),
                    got: value.ty(),
                }
                .into());
            }
            args.push(value);
        }
        if let Some((name, _)) = inputs
            .iter()
            .find(|(n, _)| !exe.args().iter().any(|(a, _)| a == n))
        {
            return Err(ArgError::Unknown(name.to_string()).into());
        }
        let first_update = 1 + self.extra_outputs;
        let outputs = self.graph.outputs();
        if self.spares.len() != outputs.len() {
            self.spares = outputs
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let name = o.name.as_deref().unwrap_or_default();
                    (i >= first_update)
                        .then(|| self.params.get(name).expect("updates name params").clone())
                })
                .collect();
        }
        let mut dests: Vec<Option<&mut HostTensor>> =
            self.spares.iter_mut().map(Option::as_mut).collect();
        let results = exe.run_into(&args, &mut dests)?;
        let mut results = results.into_iter();
        let first = results.next().flatten().expect("the loss is returned");
        let loss = self.read_loss(&first)?;
        let extra: Vec<HostTensor> = results
            .take(self.extra_outputs)
            .map(|o| o.expect("returned"))
            .collect();
        for (o, spare) in outputs[first_update..]
            .iter()
            .zip(&mut self.spares[first_update..])
        {
            let name = o.name.as_deref().unwrap_or_default();
            self.params
                .swap(name, spare.as_mut().expect("a spare per update"))?;
        }
        self.count_step();
        Ok(StepOutput {
            loss,
            outputs: extra,
        })
    }

    /// Takes the loss, keeps the extra outputs, and stores the updated values.
    fn apply(&mut self, results: Vec<HostTensor>) -> Result<StepOutput, TrainError> {
        let mut results = results.into_iter();
        let loss = self.read_loss(&results.next().expect("the loss is output 0"))?;
        let outputs: Vec<HostTensor> = results.by_ref().take(self.extra_outputs).collect();
        let names: Vec<String> = self.graph.outputs()[1 + self.extra_outputs..]
            .iter()
            .map(|o| o.name.clone().unwrap_or_default())
            .collect();
        for (name, value) in names.iter().zip(results) {
            self.params.set(name, value)?;
        }
        self.count_step();
        Ok(StepOutput { loss, outputs })
    }

    /// Runs one step through the reference interpreter and applies the updates.
    /// Slow but exact: the oracle compiled steps are checked against.
    ///
    /// A NaN or infinite loss is an error and leaves the parameters unchanged.
    pub fn run_interpreted(
        &mut self,
        inputs: &[(&str, &HostTensor)],
    ) -> Result<StepOutput, TrainError> {
        if self.group.is_some() {
            return Err(TrainError::DataParallel(
                "a data-parallel step runs compiled only (TrainStep::run)".into(),
            ));
        }
        self.apply_schedule()?;
        let model = kiln_frontend::Model {
            graph: self.graph.clone(),
            params: self.params.clone(),
        };
        let args = model.call_args(inputs)?;
        let results = interp::run(&self.graph, &args)?;
        self.apply(results)
    }
}

/// The learning rate, its schedule, and parameter sharing between steps.
impl TrainStep {
    /// The learning rate the next run uses: the schedule's rate for the next step
    /// if one is attached, else the value of the `{optimizer}.lr` argument. `None`
    /// if the optimizer declares no run-time learning rate.
    pub fn learning_rate(&self) -> Option<f64> {
        match &self.schedule {
            Some(s) => Some(s.lr(self.base_lr, self.schedule_steps)),
            None => self.params.get(&self.lr_name).map(|v| v.get_f64(0)),
        }
    }

    /// Sets the learning rate of the following runs, without recompiling (it is an
    /// argument of the compiled step). With a schedule attached, sets the base rate
    /// the schedule scales instead.
    ///
    /// ```
    /// use kiln::prelude::*;
    /// let g = GraphBuilder::new("w");
    /// let w = g.param("w", HostTensor::scalar(DType::F32, 1.0));
    /// let mut step = TrainStep::new(&(&w * &w), &Sgd::new(0.1)).unwrap();
    /// step.run(&[]).unwrap(); // w = 1 - 0.1 * 2 = 0.8
    /// step.set_learning_rate(0.5).unwrap();
    /// step.run(&[]).unwrap(); // w = 0.8 - 0.5 * 1.6 = 0
    /// assert!(step.params().get("w").unwrap().get_f64(0).abs() < 1e-6);
    /// assert_eq!(step.compilations(), 1);
    /// ```
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<(), TrainError> {
        if !self.params.contains(&self.lr_name) {
            return Err(TrainError::NoLearningRate(self.lr_name.clone()));
        }
        if self.schedule.is_some() {
            self.base_lr = lr;
            Ok(())
        } else {
            self.write_lr(lr)
        }
    }

    /// Attaches a learning-rate schedule: before each run, the learning rate becomes
    /// `schedule.lr(base, t)`, `base` being the learning rate now and `t` the number
    /// of steps run since (as a PyTorch scheduler created now, stepped after each
    /// optimizer step). Replaces any previous schedule.
    ///
    /// ```
    /// use kiln::prelude::*;
    /// use kiln::schedule::ExponentialLr;
    /// let g = GraphBuilder::new("w");
    /// let w = g.param("w", HostTensor::scalar(DType::F32, 1.0));
    /// let mut step = TrainStep::new(&(&w * &w), &Sgd::new(0.1)).unwrap();
    /// step.set_schedule(ExponentialLr::new(0.5)).unwrap();
    /// step.run(&[]).unwrap();
    /// step.run(&[]).unwrap();
    /// assert!((step.learning_rate().unwrap() - 0.025).abs() < 1e-9);
    /// ```
    pub fn set_schedule(&mut self, schedule: impl LrSchedule + 'static) -> Result<(), TrainError> {
        self.set_boxed_schedule(Box::new(schedule))
    }

    /// [`TrainStep::set_schedule`] for a boxed schedule.
    pub fn set_boxed_schedule(&mut self, schedule: Box<dyn LrSchedule>) -> Result<(), TrainError> {
        let base = self
            .params
            .get(&self.lr_name)
            .map(|v| v.get_f64(0))
            .ok_or_else(|| TrainError::NoLearningRate(self.lr_name.clone()))?;
        if self.schedule.is_none() {
            self.base_lr = base;
        }
        self.schedule = Some(schedule);
        self.schedule_steps = 0;
        Ok(())
    }

    /// Detaches the schedule; the learning rate stays at the last one used.
    pub fn take_schedule(&mut self) -> Option<Box<dyn LrSchedule>> {
        self.schedule.take()
    }

    /// The attached schedule.
    pub fn schedule(&self) -> Option<&dyn LrSchedule> {
        self.schedule.as_deref()
    }

    /// Feeds a metric to the schedule ([`crate::schedule::ReduceLrOnPlateau`]
    /// reduces the rate when it stops improving); nothing without a schedule.
    pub fn observe_metric(&mut self, metric: f64) {
        if let Some(s) = &mut self.schedule {
            s.observe(metric);
        }
    }

    /// The number of steps run (successfully) so far.
    pub fn steps_run(&self) -> u64 {
        self.steps
    }

    /// How many times the step graph has been compiled (by [`TrainStep::run`] on
    /// first use, [`TrainStep::compile`] and [`TrainStep::compile_with`]).
    /// Learning-rate changes never recompile.
    pub fn compilations(&self) -> usize {
        self.compilations
    }

    /// The parameters of the forward graph that this step does not train: their
    /// values are arguments of the step, and no gradient is computed for them.
    pub fn frozen(&self) -> Vec<&str> {
        self.forward
            .params()
            .into_iter()
            .filter_map(|p| self.forward.node(p).name.as_deref())
            .filter(|n| {
                !self.trainable.iter().any(|t| t == n) && !self.buffers.iter().any(|b| b == n)
            })
            .collect()
    }

    /// The buffers of the forward graph (see `GraphBuilder::buffer`): state such as
    /// batch normalization's running statistics, which the step updates but does
    /// not train.
    pub fn buffers(&self) -> &[String] {
        &self.buffers
    }

    /// Copies into this step the current value of every parameter `other` trains
    /// and this step also has (trained or frozen); returns how many were copied.
    ///
    /// This is how two steps share parameters, e.g. a GAN's discriminator and
    /// generator steps: each trains its own group and holds the other's as frozen
    /// arguments; before running one, pull the other's latest values:
    ///
    /// ```text
    /// d_step.sync_from(&g_step)?;  d_step.run(&batch)?;
    /// g_step.sync_from(&d_step)?;  g_step.run(&noise)?;
    /// ```
    ///
    /// Optimizer state is never trainable, so it is not copied: each step keeps
    /// its own, as two PyTorch optimizers do (the optimizers may even be of the
    /// same kind).
    pub fn sync_from(&mut self, other: &TrainStep) -> Result<usize, TrainError> {
        let mut copied = 0;
        for name in &other.trainable {
            if self.params.contains(name) {
                let value = other.params.get(name).expect("trained parameters are held");
                self.params.set(name, value.clone())?;
                copied += 1;
            }
        }
        Ok(copied)
    }

    /// Writes `lr` into the learning-rate argument.
    fn write_lr(&mut self, lr: f64) -> Result<(), TrainError> {
        let value = HostTensor::scalar(kiln_ir::DType::F32, lr);
        self.params.set(&self.lr_name, value)?;
        Ok(())
    }

    /// Sets the learning rate of the coming run from the schedule.
    fn apply_schedule(&mut self) -> Result<(), TrainError> {
        if let Some(s) = &self.schedule {
            let lr = s.lr(self.base_lr, self.schedule_steps);
            self.write_lr(lr)?;
        }
        Ok(())
    }

    /// Counts a successful run.
    fn count_step(&mut self) {
        self.steps += 1;
        if self.schedule.is_some() {
            self.schedule_steps += 1;
        }
    }
}

/// A group of parameters trained by a [`TrainStep`], with its own learning-rate
/// multiplier and weight decay (a PyTorch parameter group). Parameters in no group
/// of a step are frozen.
///
/// ```
/// use kiln::ParamGroup;
/// let backbone = ParamGroup::prefix("conv").lr_scale(0.1);
/// let head = ParamGroup::names(&["fc.weight", "fc.bias"]).weight_decay(0.0);
/// # let _ = (backbone, head);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ParamGroup {
    select: Select,
    options: GroupOptions,
}

#[derive(Clone, Debug, PartialEq)]
enum Select {
    Names(Vec<String>),
    Prefix(String),
}

impl ParamGroup {
    /// The parameters named `names` (each must exist).
    pub fn names(names: &[&str]) -> Self {
        ParamGroup {
            select: Select::Names(names.iter().map(|n| n.to_string()).collect()),
            options: GroupOptions::default(),
        }
    }

    /// Every parameter whose name starts with `prefix` (at least one must).
    pub fn prefix(prefix: &str) -> Self {
        ParamGroup {
            select: Select::Prefix(prefix.to_string()),
            options: GroupOptions::default(),
        }
    }

    /// The group's learning rate is `scale` times the step's (baked into the graph;
    /// the step's rate stays a run-time argument).
    pub fn lr_scale(mut self, scale: f32) -> Self {
        self.options.lr_scale = scale;
        self
    }

    /// Replaces the optimizer's weight decay for this group.
    pub fn weight_decay(mut self, weight_decay: f32) -> Self {
        self.options.weight_decay = Some(weight_decay);
        self
    }

    /// The group's hyperparameters.
    pub fn options(&self) -> GroupOptions {
        self.options
    }
}

/// Options of a [`TrainStep`], made by [`TrainStep::builder`] and finished by
/// [`TrainStepBuilder::build`].
#[must_use]
pub struct TrainStepBuilder {
    loss: Tensor,
    outputs: Vec<(String, Tensor)>,
    groups: Vec<ParamGroup>,
    clip_norm: Option<f32>,
    clip_value: Option<f32>,
    schedule: Option<Box<dyn LrSchedule>>,
    group: Option<Arc<dyn Collective>>,
}

impl std::fmt::Debug for TrainStepBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainStepBuilder")
            .field(
                "outputs",
                &self.outputs.iter().map(|o| &o.0).collect::<Vec<_>>(),
            )
            .field("groups", &self.groups)
            .field("clip_norm", &self.clip_norm)
            .field("clip_value", &self.clip_value)
            .field("schedule", &self.schedule)
            .field("group", &self.group)
            .finish()
    }
}

impl TrainStepBuilder {
    /// Also returns the named `outputs` (e.g. logits) from each step.
    pub fn outputs(mut self, outputs: &[(&str, &Tensor)]) -> Self {
        self.outputs
            .extend(outputs.iter().map(|(n, t)| (n.to_string(), (*t).clone())));
        self
    }

    /// Trains the parameters named `names`, as one group with the optimizer's
    /// hyperparameters (the same as `.group(ParamGroup::names(names))`).
    pub fn params(self, names: &[&str]) -> Self {
        self.group(ParamGroup::names(names))
    }

    /// Trains the parameters whose names start with `prefix`, as one group.
    pub fn params_with_prefix(self, prefix: &str) -> Self {
        self.group(ParamGroup::prefix(prefix))
    }

    /// Adds a parameter group. With no group, every parameter is trained; with
    /// groups, only theirs, and the others are frozen (no gradient is computed for
    /// them). A parameter may be in one group only.
    pub fn group(mut self, group: ParamGroup) -> Self {
        self.groups.push(group);
        self
    }

    /// Clips the gradients by their global norm inside the step, as PyTorch's
    /// `clip_grad_norm_(params, max_norm)`: all gradients are multiplied by
    /// `min(1, max_norm / (‖g‖ + 1e-6))`, `‖g‖` the 2-norm of all of them
    /// together. Applied before the optimizer (and its weight decay).
    pub fn clip_grad_norm(mut self, max_norm: f32) -> Self {
        self.clip_norm = Some(max_norm);
        self
    }

    /// Clamps each gradient element to `[-value, value]` inside the step, as
    /// PyTorch's `clip_grad_value_`. With [`TrainStepBuilder::clip_grad_norm`]
    /// too, values are clamped first.
    pub fn clip_grad_value(mut self, value: f32) -> Self {
        self.clip_value = Some(value);
        self
    }

    /// Attaches a learning-rate schedule (see [`TrainStep::set_schedule`]).
    pub fn schedule(mut self, schedule: impl LrSchedule + 'static) -> Self {
        self.schedule = Some(Box::new(schedule));
        self
    }

    /// Trains data-parallel in `group` (see [`crate::dist`]): every member runs
    /// the step on its own batch (its shard of the global batch), and inside the
    /// compiled step one `all_reduce` sums the members' gradients, packed into one
    /// buffer together with their losses. The update then uses the mean gradient
    /// over the members, so with equal batches it is the update of one process on
    /// the global batch (up to float reassociation). [`TrainStep::run`] reports the
    /// mean loss over the members; a non-finite loss on any member fails the step
    /// on every member, naming it, before any parameter changes.
    ///
    /// `build` copies rank 0's parameters, optimizer state and buffers to every
    /// member (a collective: all members build together). Batch normalization
    /// keeps per-member statistics (PyTorch's default under DDP, not its
    /// `SyncBatchNorm`); gradient clipping sees the summed gradients. All trained
    /// parameters must share the loss's dtype.
    pub fn data_parallel(mut self, group: Arc<dyn Collective>) -> Self {
        self.group = Some(group);
        self
    }

    /// Builds the step: the forward graph, the gradient of the loss with respect to
    /// the trained parameters only, clipping, and `optimizer`'s update.
    #[track_caller]
    pub fn build(self, optimizer: &dyn Optimizer) -> Result<TrainStep, TrainError> {
        let builder = self.loss.builder();
        // Buffers (running statistics, the step seed) are outputs too: their next
        // values, stored after each step like the optimizer's state.
        let buffers = builder.buffers();
        let buffer_updates = builder.buffer_updates();
        let mut forward_outputs = vec![("loss", &self.loss)];
        forward_outputs.extend(self.outputs.iter().map(|(n, t)| (n.as_str(), t)));
        forward_outputs.extend(buffer_updates.iter().map(|(n, t)| (n.as_str(), t)));
        let mut model = builder.build(&forward_outputs)?;
        // Loop-invariant work leaves its loops before differentiation, so that its
        // gradient is computed outside the backward loop too.
        model.graph = kiln_passes::hoist_loops(&model.graph)
            .map_err(AutodiffError::from)?
            .0;
        let loss_node = model.graph.outputs()[0].node;
        let all: Vec<(kiln_ir::NodeId, String)> = model
            .graph
            .params()
            .into_iter()
            .map(|p| (p, model.graph.node(p).name.clone().unwrap_or_default()))
            .filter(|(_, name)| !buffers.contains(name))
            .collect();
        // Each trained parameter's group, in the graph's parameter order.
        let every = self.groups.is_empty();
        let groups = if every {
            vec![ParamGroup::prefix("")]
        } else {
            self.groups
        };
        let mut group_of: Vec<Option<usize>> = vec![every.then_some(0); all.len()];
        for (gi, group) in groups.iter().enumerate().filter(|_| !every) {
            let chosen: Vec<usize> = match &group.select {
                Select::Names(names) => names
                    .iter()
                    .map(|n| {
                        all.iter()
                            .position(|(_, a)| a == n)
                            .ok_or_else(|| TrainError::UnknownParam(n.clone()))
                    })
                    .collect::<Result<_, _>>()?,
                Select::Prefix(prefix) => {
                    let found: Vec<usize> = (0..all.len())
                        .filter(|&i| all[i].1.starts_with(prefix.as_str()))
                        .collect();
                    if found.is_empty() {
                        return Err(TrainError::EmptyGroup(prefix.clone()));
                    }
                    found
                }
            };
            for i in chosen {
                match group_of[i] {
                    Some(other) if other != gi => {
                        return Err(TrainError::ParamInTwoGroups(all[i].1.clone()));
                    }
                    _ => group_of[i] = Some(gi),
                }
            }
        }
        let params: Vec<kiln_ir::NodeId> = (0..all.len())
            .filter(|&i| group_of[i].is_some())
            .map(|i| all[i].0)
            .collect();
        let trainable: Vec<String> = (0..all.len())
            .filter(|&i| group_of[i].is_some())
            .map(|i| all[i].1.clone())
            .collect();
        let forward_nodes: Vec<_> = model.graph.outputs().iter().map(|o| o.node).collect();

        let grad_start = Instant::now();
        let grads = kiln_passes::grad(&model.graph, loss_node, &params)?;
        let step = GraphBuilder::from_parts(grads.graph, model.params)?;
        let tensor = |id| step.tensor(id).expect("node of the gradient graph");
        let param_tensors: Vec<Tensor> = params.iter().map(|&p| tensor(p)).collect();
        let mut grad_tensors: Vec<Tensor> = grads.grads.iter().map(|&g| tensor(g)).collect();
        let forward: Vec<Tensor> = forward_nodes.iter().map(|&n| tensor(n)).collect();
        let mut loss_out = forward[0].clone();
        if let Some(group) = &self.group {
            let rank = step.input(RANK_INPUT, kiln_ir::DType::I32, []);
            (loss_out, grad_tensors) =
                all_reduce_bucket(&loss_out, &grad_tensors, &rank, group.size())?;
        }
        let grad_tensors = clip(grad_tensors, self.clip_value, self.clip_norm);
        let mut per_group: Vec<Vec<(Tensor, Tensor)>> = vec![Vec::new(); groups.len()];
        for (k, g) in group_of.iter().flatten().enumerate() {
            per_group[*g].push((param_tensors[k].clone(), grad_tensors[k].clone()));
        }
        let grouped: Vec<(GroupOptions, &[(Tensor, Tensor)])> = groups
            .iter()
            .zip(&per_group)
            .filter(|(_, ps)| !ps.is_empty())
            .map(|(g, ps)| (g.options, ps.as_slice()))
            .collect();
        let updates = optim::apply_groups(optimizer, &grouped);

        let mut named: Vec<(&str, &Tensor)> = vec![("loss", &loss_out)];
        for (i, (name, _)) in self.outputs.iter().enumerate() {
            if updates.iter().any(|(u, _)| u == name) || buffers.contains(name) || name == "loss" {
                return Err(TrainError::OutputName(name.to_string()));
            }
            named.push((name, &forward[1 + i]));
        }
        let first_buffer = 1 + self.outputs.len();
        for (i, (name, _)) in buffer_updates.iter().enumerate() {
            named.push((name, &forward[first_buffer + i]));
        }
        named.extend(updates.iter().map(|(n, t)| (n.as_str(), t)));
        let built = step.build(&named)?;
        let lr_name = optim::lr_name(optimizer);
        let mut train = TrainStep {
            graph: built.graph,
            forward: model.graph,
            grad_time: grad_start.elapsed(),
            params: built.params,
            trainable,
            buffers,
            extra_outputs: self.outputs.len(),
            compiled: None,
            spares: Vec::new(),
            compilations: 0,
            lr_name,
            schedule: None,
            base_lr: 0.0,
            schedule_steps: 0,
            steps: 0,
            group: None,
        };
        if let Some(s) = self.schedule {
            train.set_boxed_schedule(s)?;
        }
        if let Some(group) = self.group {
            crate::dist::broadcast_params(&*group, &mut train.params)?;
            let rank = HostTensor::scalar(kiln_ir::DType::I32, group.rank() as f64);
            train.group = Some((group, rank));
        }
        Ok(train)
    }
}

/// The gradients of one member of a data-parallel group turned into the mean
/// gradients over the group, with one `all_reduce` of one buffer: every gradient
/// flattened, then this member's loss at its rank's position of a vector of one
/// loss per member (zeros elsewhere), so the sum holds every member's loss.
/// Returns that vector of losses and the mean gradients.
#[track_caller]
fn all_reduce_bucket(
    loss: &Tensor,
    grads: &[Tensor],
    rank: &Tensor,
    size: usize,
) -> Result<(Tensor, Vec<Tensor>), TrainError> {
    let dtype = loss.dtype();
    if !dtype.is_float() {
        return Err(TrainError::DataParallel(format!(
            "the loss is {dtype}, not a float"
        )));
    }
    if let Some(g) = grads.iter().find(|g| g.dtype() != dtype) {
        return Err(TrainError::DataParallel(format!(
            "a gradient is {}, the loss {dtype}: all trained parameters must share the loss's dtype",
            g.dtype()
        )));
    }
    let mut parts: Vec<Tensor> = grads.iter().map(|g| g.reshape([g.numel()])).collect();
    // Selected, not multiplied: `0 * NaN` would spread one member's NaN loss
    // to every member's slot.
    let own = rank.one_hot(size, dtype).gt(0.5f32);
    parts.push(own.where_cond(loss, 0.0f32));
    let refs: Vec<&Tensor> = parts.iter().collect();
    let summed = kiln_frontend::concat(&refs, 0).all_reduce();
    let scale = 1.0 / size as f32;
    let mut offset = 0;
    let mut mean = Vec::with_capacity(grads.len());
    for g in grads {
        let n = g.numel();
        mean.push(&summed.narrow(0, offset, n).reshape(g.dims().to_vec()) * scale);
        offset += n;
    }
    Ok((summed.narrow(0, offset, size), mean))
}

/// The gradients clamped to `±value`, then scaled to a global norm of at most
/// `max_norm` (PyTorch's `clip_grad_value_` and `clip_grad_norm_`).
#[track_caller]
fn clip(grads: Vec<Tensor>, value: Option<f32>, max_norm: Option<f32>) -> Vec<Tensor> {
    let mut grads = grads;
    if let Some(v) = value {
        let v = f64::from(v);
        grads = grads.iter().map(|g| g.clamp(-v, v)).collect();
    }
    if let (Some(max_norm), Some(first)) = (max_norm, grads.first()) {
        let dtype = first.dtype();
        let squares = grads
            .iter()
            .map(|g| g.square().sum_all().cast(dtype))
            .reduce(|a, b| &a + &b)
            .expect("at least one gradient");
        let total = squares.sqrt();
        let coef = (max_norm / &(&total + 1e-6f32)).minimum(1.0);
        grads = grads.iter().map(|g| g * &coef.cast(g.dtype())).collect();
    }
    grads
}
