//! The whole training step as one graph: forward, backward and optimizer update.

use std::time::{Duration, Instant};

use kiln_frontend::optim::{self, Optimizer};
use kiln_frontend::{ArgError, BuildError, GraphBuilder, ParamStore, Tensor};
use kiln_ir::interp::{self, EvalError};
use kiln_ir::{Graph, HostTensor};
use kiln_passes::AutodiffError;
use kiln_passes::optimize::Stage;
use kiln_runtime::{CompileError, CompileOptions, Executable, RunError};

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
    extra_outputs: usize,
    /// The native code, compiled on the first [`TrainStep::run`].
    compiled: Option<Executable>,
    /// Per output: a spare tensor the compiled step writes an updated value into,
    /// swapped with the current value afterwards (no copy, no allocation).
    spares: Vec<Option<HostTensor>>,
}

impl Clone for TrainStep {
    /// Clones the graph and the current values; the clone compiles on its own.
    fn clone(&self) -> Self {
        TrainStep {
            graph: self.graph.clone(),
            forward: self.forward.clone(),
            grad_time: self.grad_time,
            params: self.params.clone(),
            trainable: self.trainable.clone(),
            extra_outputs: self.extra_outputs,
            compiled: None,
            spares: Vec::new(),
        }
    }
}

impl std::fmt::Debug for TrainStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainStep")
            .field("graph", &self.graph.name())
            .field("params", &self.params.names().collect::<Vec<_>>())
            .field("compiled", &self.compiled.is_some())
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
        let builder = loss.builder();
        let mut forward_outputs = vec![("loss", loss)];
        forward_outputs.extend_from_slice(outputs);
        let mut model = builder.build(&forward_outputs)?;
        // Loop-invariant work leaves its loops before differentiation, so that its
        // gradient is computed outside the backward loop too.
        model.graph = kiln_passes::hoist_loops(&model.graph)
            .map_err(AutodiffError::from)?
            .0;
        let loss_node = model.graph.outputs()[0].node;
        let params = model.graph.params();
        let trainable: Vec<String> = params
            .iter()
            .map(|&p| model.graph.node(p).name.clone().unwrap_or_default())
            .collect();
        let forward_nodes: Vec<_> = model.graph.outputs().iter().map(|o| o.node).collect();

        let grad_start = Instant::now();
        let grads = kiln_passes::grad(&model.graph, loss_node, &params)?;
        let step = GraphBuilder::from_parts(grads.graph, model.params)?;
        let tensor = |id| step.tensor(id).expect("node of the gradient graph");
        let pairs: Vec<(Tensor, Tensor)> = params
            .iter()
            .zip(&grads.grads)
            .map(|(&p, &g)| (tensor(p), tensor(g)))
            .collect();
        let updates = optim::apply(optimizer, &pairs);

        let forward: Vec<Tensor> = forward_nodes.iter().map(|&n| tensor(n)).collect();
        let mut named: Vec<(&str, &Tensor)> = vec![("loss", &forward[0])];
        for (i, (name, _)) in outputs.iter().enumerate() {
            if updates.iter().any(|(u, _)| u == name) || *name == "loss" {
                return Err(TrainError::OutputName(name.to_string()));
            }
            named.push((name, &forward[1 + i]));
        }
        named.extend(updates.iter().map(|(n, t)| (n.as_str(), t)));
        let built = step.build(&named)?;
        Ok(TrainStep {
            graph: built.graph,
            forward: model.graph,
            grad_time: grad_start.elapsed(),
            params: built.params,
            trainable,
            extra_outputs: outputs.len(),
            compiled: None,
            spares: Vec::new(),
        })
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
            self.compiled = Some(Executable::compile_with(&self.graph, &options)?);
        }
        Ok(self.compiled.as_ref().expect("compiled above"))
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
        self.compiled = Some(Executable::compile_with(&self.graph, &options)?);
        self.spares.clear();
        Ok(self.compiled.as_ref().expect("compiled above"))
    }

    /// Runs one step as native code (compiled on first use) and applies the updates.
    ///
    /// A NaN or infinite loss is an error and leaves the parameters unchanged.
    pub fn run(&mut self, inputs: &[(&str, &HostTensor)]) -> Result<StepOutput, TrainError> {
        self.compile()?;
        let exe = self.compiled.as_mut().expect("compiled above");
        let mut args: Vec<&HostTensor> = Vec::with_capacity(exe.args().len());
        for (name, ty) in exe.args() {
            let value = match self.params.get(name) {
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
        let loss = results
            .next()
            .flatten()
            .expect("the loss is returned")
            .get_f64(0);
        if !loss.is_finite() {
            return Err(TrainError::NonFiniteLoss(loss));
        }
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
        Ok(StepOutput {
            loss,
            outputs: extra,
        })
    }

    /// Takes the loss, keeps the extra outputs, and stores the updated values.
    fn apply(&mut self, results: Vec<HostTensor>) -> Result<StepOutput, TrainError> {
        let mut results = results.into_iter();
        let loss = results.next().expect("the loss is output 0").get_f64(0);
        if !loss.is_finite() {
            return Err(TrainError::NonFiniteLoss(loss));
        }
        let outputs: Vec<HostTensor> = results.by_ref().take(self.extra_outputs).collect();
        let names: Vec<String> = self.graph.outputs()[1 + self.extra_outputs..]
            .iter()
            .map(|o| o.name.clone().unwrap_or_default())
            .collect();
        for (name, value) in names.iter().zip(results) {
            self.params.set(name, value)?;
        }
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
        let model = kiln_frontend::Model {
            graph: self.graph.clone(),
            params: self.params.clone(),
        };
        let args = model.call_args(inputs)?;
        let results = interp::run(&self.graph, &args)?;
        self.apply(results)
    }
}
