//! One model object for training, evaluation and prediction at any batch size:
//! [`Network`].

use std::collections::HashMap;
use std::sync::Arc;

use kiln_frontend::optim::Optimizer;
use kiln_frontend::{BuildError, GraphBuilder, ParamStore, Tensor};
use kiln_ir::{HostTensor, TensorType};
use kiln_runtime::{Collective, CompileError, Executable, RunError};

use crate::{StepOutput, TrainError, TrainStep};

/// Why a [`Network`] call failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("input `{0}` is missing")]
    MissingInput(String),
    #[error("input `{0}` is given but the network has no such input")]
    UnknownInput(String),
    #[error("the network has no loss: set one with `Network::with_loss`")]
    NoLoss,
    #[error("the network has no optimizer: set one with `Network::with_optimizer`")]
    NoOptimizer,
    #[error("parameter `{0}` has no value (train the network or set it first)")]
    MissingParam(String),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Train(#[from] Box<TrainError>),
    #[error(transparent)]
    Compile(#[from] Box<CompileError>),
    #[error(transparent)]
    Run(#[from] RunError),
}

impl From<TrainError> for NetworkError {
    fn from(e: TrainError) -> Self {
        NetworkError::Train(Box::new(e))
    }
}

impl From<CompileError> for NetworkError {
    fn from(e: CompileError) -> Self {
        NetworkError::Compile(Box::new(e))
    }
}

type Forward = dyn Fn(&GraphBuilder, &[Tensor]) -> Tensor;
type Loss = dyn Fn(&Tensor, &[Tensor]) -> Tensor;

/// A model written once as a forward function, PyTorch's `nn.Module` in use:
/// training steps, evaluation and prediction are graphs traced from it on demand,
/// one per distinct list of input types (a new batch size traces and compiles
/// once more, then hits the cache, as `jax.jit` does), and every one of them
/// shares one parameter store. Training graphs are built in training mode,
/// prediction graphs in evaluation mode (`GraphBuilder::set_training`): dropout
/// drops only while training, batch normalization switches to its running
/// statistics.
///
/// The forward function declares its layers (their parameters get their initial
/// values from the first trace; later traces take the store's values by name)
/// and receives the network's inputs, in the order given to [`Network::new`]. The
/// loss receives the forward output and the loss's own inputs (targets).
///
/// ```
/// use kiln::prelude::*;
/// use kiln::Network;
///
/// let mut net = Network::new("mlp", &["x"], |g, x| {
///     let mut rng = Rng::seed(0);
///     let fc1 = nn::Linear::new(g, "fc1", 4, 16, &mut rng);
///     let fc2 = nn::Linear::new(g, "fc2", 16, 3, &mut rng);
///     fc2.forward(&nn::Dropout::new(g, 0.1).forward(&fc1.forward(&x[0]).relu()))
/// })
/// .with_loss(&["labels"], |logits, t| loss::cross_entropy(logits, &t[0]))
/// .with_optimizer(Adam::new(1e-2));
///
/// let x = HostTensor::from_fn(&kiln::ir::TensorType::new(DType::F32, [8, 4]), |i| (i % 5) as f64 - 2.0);
/// let labels = HostTensor::from_i32([8], vec![0, 1, 2, 0, 1, 2, 0, 1]).unwrap();
/// let first = net.train(&[("x", &x), ("labels", &labels)]).unwrap().loss;
/// for _ in 0..50 {
///     net.train(&[("x", &x), ("labels", &labels)]).unwrap();
/// }
/// assert!(net.train(&[("x", &x), ("labels", &labels)]).unwrap().loss < first);
/// // Prediction at another batch size: a new graph, the same parameters.
/// let one = HostTensor::from_f32([1, 4], vec![1.0, -2.0, 0.0, 2.0]).unwrap();
/// assert_eq!(net.predict(&[("x", &one)]).unwrap().shape().dims(), &[1, 3]);
/// ```
pub struct Network {
    name: String,
    inputs: Vec<String>,
    forward: Box<Forward>,
    targets: Vec<String>,
    loss: Option<Box<Loss>>,
    optimizer: Option<Box<dyn Optimizer>>,
    /// The parameters, buffers and optimizer state every graph shares.
    params: ParamStore,
    steps: HashMap<Vec<TensorType>, TrainStep>,
    predictors: HashMap<Vec<TensorType>, Executable>,
    /// The data-parallel group the training steps run in.
    group: Option<Arc<dyn Collective>>,
}

impl Network {
    /// A network called `name` whose forward function takes the inputs `inputs`
    /// (by name, in this order).
    pub fn new(
        name: &str,
        inputs: &[&str],
        forward: impl Fn(&GraphBuilder, &[Tensor]) -> Tensor + 'static,
    ) -> Network {
        Network {
            name: name.to_string(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            forward: Box::new(forward),
            targets: Vec::new(),
            loss: None,
            optimizer: None,
            params: ParamStore::new(),
            steps: HashMap::new(),
            predictors: HashMap::new(),
            group: None,
        }
    }

    /// The training loss over the forward output and the further inputs `targets`
    /// (by name, in this order).
    pub fn with_loss(
        mut self,
        targets: &[&str],
        loss: impl Fn(&Tensor, &[Tensor]) -> Tensor + 'static,
    ) -> Network {
        self.targets = targets.iter().map(|s| s.to_string()).collect();
        self.loss = Some(Box::new(loss));
        self
    }

    /// The optimizer of the training steps.
    pub fn with_optimizer(mut self, optimizer: impl Optimizer + 'static) -> Network {
        self.optimizer = Some(Box::new(optimizer));
        self
    }

    /// Trains data-parallel in `group` ([`crate::TrainStepBuilder::data_parallel`]):
    /// every member calls [`Network::train`] with its part of each global batch.
    /// Tracing a training step for new input types is a collective (it copies
    /// rank 0's initial values to every member), so all members train on the same
    /// sequence of input types.
    pub fn data_parallel(mut self, group: Arc<dyn Collective>) -> Network {
        self.group = Some(group);
        self
    }

    /// The parameters, buffers and optimizer state (empty until the first trace).
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// Mutable access to the shared store (to load values into it).
    pub fn params_mut(&mut self) -> &mut ParamStore {
        &mut self.params
    }

    /// Saves the store (parameters, buffers, optimizer state) to `path`
    /// (safetensors, written atomically).
    pub fn save_checkpoint(
        &self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<(), crate::checkpoint::CheckpointError> {
        crate::checkpoint::save_params(path, &self.params)
    }

    /// Restores a store saved by [`Network::save_checkpoint`]. A network that has
    /// traced nothing yet takes the file as it is; otherwise the file must match
    /// the store exactly (names, dtypes, shapes), and nothing changes if it does
    /// not.
    pub fn load_checkpoint(
        &mut self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<(), crate::checkpoint::CheckpointError> {
        if !self.params.is_empty() {
            return crate::checkpoint::load_params(path, &mut self.params);
        }
        for (name, value) in kiln_runtime::checkpoint::load(path)? {
            self.params.insert(&name, value);
        }
        Ok(())
    }

    /// How many graphs were compiled so far (training steps and predictors).
    pub fn compilations(&self) -> usize {
        self.steps
            .values()
            .map(TrainStep::compilations)
            .sum::<usize>()
            + self.predictors.len()
    }

    /// `names`' values from `given`, in order; every given input must be used.
    fn pick<'a>(
        names: &[&[String]],
        given: &[(&str, &'a HostTensor)],
    ) -> Result<Vec<&'a HostTensor>, NetworkError> {
        if let Some((n, _)) = given
            .iter()
            .find(|(n, _)| !names.iter().any(|ns| ns.iter().any(|m| m == n)))
        {
            return Err(NetworkError::UnknownInput(n.to_string()));
        }
        names
            .iter()
            .flat_map(|ns| ns.iter())
            .map(|n| {
                given
                    .iter()
                    .find(|(g, _)| g == n)
                    .map(|(_, t)| *t)
                    .ok_or_else(|| NetworkError::MissingInput(n.clone()))
            })
            .collect()
    }

    /// Declares `names` with the types of `values` in `g`.
    fn declare(g: &GraphBuilder, names: &[String], values: &[&HostTensor]) -> Vec<Tensor> {
        names
            .iter()
            .zip(values)
            .map(|(n, v)| g.input(n, v.dtype(), v.shape().clone()))
            .collect()
    }

    /// One training step on a batch holding every input and target by name: the
    /// step for these types is traced and compiled on first use. Returns the loss
    /// (before the update) and the step's outputs.
    pub fn train(&mut self, batch: &[(&str, &HostTensor)]) -> Result<StepOutput, NetworkError> {
        let values = Self::pick(&[&self.inputs, &self.targets], batch)?;
        let key: Vec<TensorType> = values.iter().map(|v| v.ty()).collect();
        if !self.steps.contains_key(&key) {
            let loss_fn = self.loss.as_ref().ok_or(NetworkError::NoLoss)?;
            let optimizer = self.optimizer.as_deref().ok_or(NetworkError::NoOptimizer)?;
            let g = GraphBuilder::new(&self.name);
            let (xs, ts) = values.split_at(self.inputs.len());
            let x = Self::declare(&g, &self.inputs, xs);
            let t = Self::declare(&g, &self.targets, ts);
            let out = (self.forward)(&g, &x);
            let mut builder = TrainStep::builder(&loss_fn(&out, &t));
            if let Some(group) = &self.group {
                builder = builder.data_parallel(group.clone());
            }
            let step = builder.build(optimizer)?;
            // What the shared store lacks (everything, on the first trace; the
            // optimizer's state after predictions only) starts at the step's values.
            for (name, value) in step.params().iter() {
                if !self.params.contains(name) {
                    self.params.insert(name, value.clone());
                }
            }
            // The store may hold values from before (predictions, a checkpoint
            // loaded on one member): rank 0's win.
            if let Some(group) = &self.group {
                crate::dist::broadcast_params(&**group, &mut self.params)
                    .map_err(TrainError::from)?;
            }
            self.steps.insert(key.clone(), step);
        }
        let step = self.steps.get_mut(&key).expect("inserted above");
        // The shared store moves into the step for the run and back.
        std::mem::swap(step.params_mut(), &mut self.params);
        let named: Vec<(&str, &HostTensor)> = self
            .inputs
            .iter()
            .chain(&self.targets)
            .map(String::as_str)
            .zip(values)
            .collect();
        let result = step.run(&named);
        std::mem::swap(step.params_mut(), &mut self.params);
        Ok(result?)
    }

    /// The forward output for `inputs` (every input of the network by name), in
    /// evaluation mode; traced and compiled once per list of input types.
    pub fn predict(&mut self, inputs: &[(&str, &HostTensor)]) -> Result<HostTensor, NetworkError> {
        let values = Self::pick(&[&self.inputs], inputs)?;
        let key: Vec<TensorType> = values.iter().map(|v| v.ty()).collect();
        if !self.predictors.contains_key(&key) {
            let g = GraphBuilder::new(format!("{}_eval", self.name));
            g.set_training(false);
            let x = Self::declare(&g, &self.inputs, &values);
            let out = (self.forward)(&g, &x);
            let model = g.build(&[("output", &out)])?;
            // A network not trained yet predicts with its initial values.
            for (name, value) in model.params.iter() {
                if !self.params.contains(name) {
                    self.params.insert(name, value.clone());
                }
            }
            self.predictors
                .insert(key.clone(), Executable::compile(&model.graph)?);
        }
        let exe = self.predictors.get_mut(&key).expect("inserted above");
        let args = exe
            .args()
            .iter()
            .map(
                |(name, _)| match self.inputs.iter().position(|n| n == name) {
                    Some(i) => Ok(values[i]),
                    None => self
                        .params
                        .get(name)
                        .ok_or_else(|| NetworkError::MissingParam(name.clone())),
                },
            )
            .collect::<Result<Vec<_>, _>>()?;
        Ok(exe.run_refs(&args)?.swap_remove(0))
    }
}
