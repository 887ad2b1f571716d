//! The graph builder: owns the graph under construction, the initial values of the
//! parameters, and the errors recorded so far.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::panic::Location;
use std::rc::Rc;

use kiln_ir::{DType, Graph, HostTensor, NodeId, Shape, TensorType};

use crate::Tensor;
use crate::ctx::Ctx;
use crate::error::{BuildError, DslError, ErrorKind};
use crate::init::Init;
use crate::model::{ArgError, Model, ParamStore};
use crate::rng::Rng;

struct State {
    graph: Graph,
    params: ParamStore,
    errors: Vec<DslError>,
    /// Parameters that hold state rather than weights (not trained), and the new
    /// value a training step gives each.
    buffers: Vec<String>,
    buffer_updates: Vec<(String, Tensor)>,
    training: bool,
    /// Dropout layers declared so far (each gets its own random stream).
    streams: u32,
}

/// Builds a [`kiln_ir::Graph`] from tensor expressions.
///
/// A cheap-to-clone handle: every [`Tensor`] holds one. Declare inputs and
/// parameters, write the model with tensor ops, then [`build`](GraphBuilder::build)
/// it into a [`Model`] (the graph plus the parameters' initial values).
///
/// Mistakes (mismatched shapes, bad axes, ...) do not panic: they are recorded with
/// the location of the offending call, and `build` returns them as a
/// [`BuildError`].
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("regression");
/// let x = g.input("x", DType::F32, [3]);
/// let y = g.input("y", DType::F32, [3]);
/// let w = g.param("w", HostTensor::scalar(DType::F32, 0.0));
/// let b = g.param("b", HostTensor::scalar(DType::F32, 0.0));
/// let pred = &x * &w + &b;
/// let loss = loss::mse(&pred, &y);
/// let model = g.build(&[("loss", &loss)]).unwrap();
/// assert_eq!(model.graph.outputs().len(), 1);
/// assert_eq!(model.params.names().collect::<Vec<_>>(), ["w", "b"]);
///
/// // A mistake is reported by `build`, with the line of the call.
/// let g = GraphBuilder::new("bad");
/// let a = g.input("a", DType::F32, [2, 3]);
/// let b = g.input("b", DType::F32, [4, 5]);
/// let c = a.matmul(&b).relu();
/// let err = g.build(&[("c", &c)]).unwrap_err();
/// assert!(err.to_string().contains("matmul"), "{err}");
/// ```
#[derive(Clone)]
pub struct GraphBuilder {
    inner: Rc<RefCell<State>>,
}

/// An output of [`GraphBuilder::build`]: a tensor, optionally named.
pub trait OutputSpec {
    /// The output's name (if any) and tensor.
    fn output(&self) -> (Option<&str>, &Tensor);
}

impl OutputSpec for (&str, &Tensor) {
    fn output(&self) -> (Option<&str>, &Tensor) {
        (Some(self.0), self.1)
    }
}

impl OutputSpec for &Tensor {
    fn output(&self) -> (Option<&str>, &Tensor) {
        (None, self)
    }
}

impl GraphBuilder {
    /// A builder for a graph called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        GraphBuilder {
            inner: Rc::new(RefCell::new(State {
                graph: Graph::new(name),
                params: ParamStore::default(),
                errors: Vec::new(),
                buffers: Vec::new(),
                buffer_updates: Vec::new(),
                training: true,
                streams: 0,
            })),
        }
    }

    /// Whether layers build their training behaviour (the default, as a new
    /// PyTorch module): dropout drops, batch normalization uses the batch's
    /// statistics and updates its running ones. An evaluation graph is built after
    /// [`GraphBuilder::set_training`]`(false)`.
    pub fn training(&self) -> bool {
        self.inner.borrow().training
    }

    /// Sets the mode layers build from now on (PyTorch's `train()` / `eval()`).
    pub fn set_training(&self, training: bool) {
        self.inner.borrow_mut().training = training;
    }

    /// Declares a buffer: persistent state that is not trained (batch
    /// normalization's running statistics, a random seed). It is a parameter of the
    /// graph, stored and checkpointed with the others; a training step leaves it
    /// out of differentiation and stores the value given by
    /// [`GraphBuilder::update_buffer`] after each step.
    #[track_caller]
    pub fn buffer(&self, name: &str, value: HostTensor) -> Tensor {
        let t = self.param(name, value);
        if !t.is_poisoned() {
            self.inner.borrow_mut().buffers.push(name.to_string());
        }
        t
    }

    /// Records `value` as the next value of buffer `name` (applied by a training
    /// step; a graph built for evaluation ignores it).
    #[track_caller]
    pub fn update_buffer(&self, name: &str, value: &Tensor) {
        let known = self.inner.borrow().buffers.iter().any(|b| b == name);
        if !known {
            Ctx::leaf(self, "update_buffer", value.ty.clone()).fail(kiln_ir::TypeError::Attr(
                format!("`{name}` is not a buffer of this graph"),
            ));
            return;
        }
        self.inner
            .borrow_mut()
            .buffer_updates
            .push((name.to_string(), value.clone()));
    }

    /// The names of the buffers declared so far.
    pub fn buffers(&self) -> Vec<String> {
        self.inner.borrow().buffers.clone()
    }

    /// The buffer updates recorded so far, by buffer name (the last one for each).
    pub fn buffer_updates(&self) -> Vec<(String, Tensor)> {
        let state = self.inner.borrow();
        let mut out: Vec<(String, Tensor)> = Vec::new();
        for (name, t) in &state.buffer_updates {
            match out.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = t.clone(),
                None => out.push((name.clone(), t.clone())),
            }
        }
        out
    }

    /// A fresh random stream for a layer: the step's seed, a buffer advanced by one
    /// every training step (so masks change without recompiling), and a salt of the
    /// stream's own.
    pub(crate) fn random_stream(&self) -> (Tensor, u32) {
        const SEED: &str = "rng.seed";
        let seed = {
            let existing = self.inner.borrow().buffers.iter().any(|b| b == SEED);
            if existing {
                let id = self
                    .inner
                    .borrow()
                    .graph
                    .arg(SEED)
                    .expect("a declared buffer is an argument");
                self.tensor(id).expect("the seed's node")
            } else {
                let seed = self.buffer(SEED, HostTensor::scalar(DType::I32, 0.0));
                let one = self.constant(HostTensor::scalar(DType::I32, 1.0));
                self.update_buffer(SEED, &(&seed + &one));
                seed
            }
        };
        let mut state = self.inner.borrow_mut();
        state.streams += 1;
        (seed, state.streams)
    }

    /// A builder that continues an existing graph, e.g. one that autodiff extended
    /// with gradient nodes: new ops can use its nodes (see [`GraphBuilder::tensor`]).
    /// `params` must hold a value of the right type for every parameter of `graph`;
    /// the graph's outputs are dropped (`build` sets new ones).
    pub fn from_parts(graph: Graph, params: ParamStore) -> Result<Self, ArgError> {
        for &p in &graph.params() {
            let node = graph.node(p);
            let name = node.name.as_deref().unwrap_or_default();
            let value = params
                .get(name)
                .ok_or_else(|| ArgError::Missing(name.to_string()))?;
            if value.ty() != node.ty {
                return Err(ArgError::Type {
                    name: name.to_string(),
                    expected: node.ty.clone(),
                    got: value.ty(),
                });
            }
        }
        let mut graph = graph;
        graph.set_outputs(Vec::new());
        Ok(GraphBuilder {
            inner: Rc::new(RefCell::new(State {
                graph,
                params,
                errors: Vec::new(),
                buffers: Vec::new(),
                buffer_updates: Vec::new(),
                training: true,
                streams: 0,
            })),
        })
    }

    /// The tensor for node `id` of the graph under construction, or `None` if there
    /// is no such node.
    pub fn tensor(&self, id: NodeId) -> Option<Tensor> {
        let ty = self.inner.borrow().graph.get(id)?.ty.clone();
        Some(Tensor::new(self, id, ty))
    }

    /// The graph's name.
    pub fn name(&self) -> String {
        self.inner.borrow().graph.name().to_string()
    }

    /// True if both handles refer to the same builder.
    pub fn same(&self, other: &GraphBuilder) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// Declares a data input, fed on every call.
    #[track_caller]
    pub fn input(&self, name: &str, dtype: DType, shape: impl Into<Shape>) -> Tensor {
        let ty = TensorType::new(dtype, shape);
        Ctx::leaf(self, "input", ty.clone()).emit_graph(|g| g.input(name, ty))
    }

    /// Declares a trainable parameter with its initial value.
    #[track_caller]
    pub fn param(&self, name: &str, value: HostTensor) -> Tensor {
        let ty = value.ty();
        let t = Ctx::leaf(self, "param", ty.clone()).emit_graph(|g| g.param(name, ty));
        if !t.is_poisoned() {
            self.inner.borrow_mut().params.push(name.to_string(), value);
        }
        t
    }

    /// Declares an f32 parameter of `shape` initialized by `init` (see [`Init`]).
    #[track_caller]
    pub fn param_init(
        &self,
        name: &str,
        shape: impl Into<Shape>,
        init: Init,
        rng: &mut Rng,
    ) -> Tensor {
        self.param(name, init.sample(shape, rng))
    }

    /// A literal tensor.
    #[track_caller]
    pub fn constant(&self, value: HostTensor) -> Tensor {
        let ty = value.ty();
        Ctx::leaf(self, "const", ty).emit_graph(|g| Ok(g.constant(value)))
    }

    /// An f32 scalar literal.
    #[track_caller]
    pub fn scalar(&self, value: f32) -> Tensor {
        self.constant(HostTensor::scalar(DType::F32, value as f64))
    }

    /// A tensor of `shape` filled with `value` converted to `dtype`: a scalar literal
    /// broadcast to the shape.
    #[track_caller]
    pub fn full(&self, dtype: DType, shape: impl Into<Shape>, value: f64) -> Tensor {
        let shape = shape.into();
        let ty = TensorType::new(dtype, shape.clone());
        Ctx::leaf(self, "full", ty).emit(|e, _| e.splat(value, dtype, &shape))
    }

    /// An f32 tensor of zeros.
    #[track_caller]
    pub fn zeros(&self, shape: impl Into<Shape>) -> Tensor {
        self.full(DType::F32, shape, 0.0)
    }

    /// An f32 tensor of ones.
    #[track_caller]
    pub fn ones(&self, shape: impl Into<Shape>) -> Tensor {
        self.full(DType::F32, shape, 1.0)
    }

    /// The first error recorded so far, if any.
    pub fn error(&self) -> Option<DslError> {
        self.inner.borrow().errors.first().cloned()
    }

    /// Every error recorded so far.
    pub fn errors(&self) -> Vec<DslError> {
        self.inner.borrow().errors.clone()
    }

    /// `Err` with the recorded errors, if any: for checking early, before `build`.
    pub fn check(&self) -> Result<(), BuildError> {
        let st = self.inner.borrow();
        if st.errors.is_empty() {
            Ok(())
        } else {
            Err(BuildError::new(st.errors.clone()))
        }
    }

    /// A snapshot of the graph as built so far (no outputs, ids not canonical).
    pub fn graph(&self) -> Graph {
        self.inner.borrow().graph.clone()
    }

    /// Finishes the graph with `outputs`, named (`&[("loss", &loss)]`) or not
    /// (`&[&y]`), and returns the canonicalized, validated graph with the parameters'
    /// initial values; or every error recorded while building.
    ///
    /// Nodes that no output depends on are left out; every declared input and
    /// parameter stays, as the graph's signature. The builder stays usable: building
    /// again (with other outputs) gives another model over the same arguments.
    #[track_caller]
    pub fn build<O: OutputSpec>(&self, outputs: &[O]) -> Result<Model, BuildError> {
        let location = Location::caller();
        let fail = |kind: ErrorKind| DslError {
            location,
            op: "build".to_string(),
            operands: Vec::new(),
            kind,
        };
        let mut errors = self.errors();
        let mut out = Vec::with_capacity(outputs.len());
        for (index, o) in outputs.iter().enumerate() {
            let (name, t) = o.output();
            if !t.b.same(self) {
                errors.push(fail(ErrorKind::ForeignOperand {
                    index,
                    ours: self.name(),
                    theirs: t.b.name(),
                }));
            } else if let Some(node) = t.node {
                out.push((node, name));
            }
        }
        if !errors.is_empty() {
            return Err(BuildError::new(errors));
        }
        let st = self.inner.borrow();
        let mut graph = st.graph.clone();
        for (node, name) in out {
            graph.output(node, name);
        }
        let live = live_nodes(&graph);
        let args: HashSet<NodeId> = graph.args().iter().copied().collect();
        graph.retain_nodes(|n| live.contains(&n) || args.contains(&n));
        let graph = graph
            .validate()
            .and_then(|()| graph.canonicalize())
            .map_err(|e| fail(ErrorKind::Graph(e)))?
            .0;
        Ok(Model {
            graph,
            params: st.params.clone(),
        })
    }

    pub(crate) fn record(&self, e: DslError) {
        self.inner.borrow_mut().errors.push(e);
    }

    pub(crate) fn with_graph<R>(&self, f: impl FnOnce(&mut Graph) -> R) -> R {
        f(&mut self.inner.borrow_mut().graph)
    }
}

/// The nodes the outputs of `g` depend on, outputs included.
fn live_nodes(g: &Graph) -> HashSet<NodeId> {
    let mut live = HashSet::new();
    let mut stack: Vec<NodeId> = g.outputs().iter().map(|o| o.node).collect();
    while let Some(n) = stack.pop() {
        if live.insert(n) {
            stack.extend(g.operands(n));
        }
    }
    live
}

impl fmt::Debug for GraphBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.borrow();
        f.debug_struct("GraphBuilder")
            .field("name", &st.graph.name())
            .field("nodes", &st.graph.node_count())
            .field("params", &st.params.len())
            .field("errors", &st.errors.len())
            .finish()
    }
}
