//! The reference interpreter: evaluates any graph naively on [`HostTensor`]s.
//!
//! It is the oracle every other stage is checked against (JIT output, optimizer
//! rewrites, gradients), so it favours obvious correctness over speed: each op is a
//! plain loop nest over dense row-major data, written once per family and generic
//! over the element type.
//!
//! ```
//! use kiln_ir::{DType, Graph, HostTensor, Op, TensorType, UnaryOp, interp};
//!
//! let mut g = Graph::new("relu");
//! let x = g.input("x", TensorType::new(DType::F32, [3])).unwrap();
//! let y = g.add(Op::Unary(UnaryOp::Relu), &[x]).unwrap();
//! g.output(y, None);
//! let x = HostTensor::from_f32([3], vec![-1.0, 0.5, 2.0]).unwrap();
//! let out = interp::run(&g, &[x]).unwrap();
//! assert_eq!(out[0].as_f32().unwrap(), &[0.0, 0.5, 2.0]);
//! ```
//!
//! # Semantics
//!
//! The op docs in [`Op`] are the definition; this module fixes the details.
//!
//! - f32 graphs compute in f32 and f64 graphs in f64 (Rust's `std` float functions);
//!   i32 arithmetic wraps on overflow, and integer division truncates toward zero (a
//!   zero divisor is [`EvalError::DivisionByZero`]).
//! - `sigmoid` is `1 / (1 + exp(-x))` for `x >= 0` and `exp(x) / (1 + exp(x))`
//!   otherwise, which is the same function without overflow to NaN. `relu(NaN)` is
//!   NaN. `sign` gives -1, 0 or 1, and NaN for NaN. `leaky_relu` converts its slope
//!   to the float type first.
//! - `max` and `min` (binary and reductions) are `torch.maximum` and
//!   `torch.minimum`: NaN if either operand is NaN. Signed zeros, which PyTorch
//!   leaves to the hardware (its scalar and vector CPU paths differ), follow IEEE
//!   754-2019 `maximum`/`minimum` (as Cranelift's `fmax`/`fmin` and StableHLO do):
//!   `-0.0 < +0.0`, so `max(-0.0, 0.0)` is `+0.0` in either order and `min` gives
//!   `-0.0`. Both ops are commutative, so a reduction's result does not depend on
//!   its order (NaN payloads aside).
//! - Max pooling follows PyTorch's CPU kernel instead: starting from the window's
//!   first in-bounds position and `-inf`, a value replaces the running maximum if
//!   it is larger or NaN. The output is that maximum and its gradient goes to that
//!   position: ties (the two zeros included) to the first maximum, a window that is
//!   all `-inf` to its first position, a window with NaN to its last NaN (the
//!   output is NaN). Padding is `-inf` and never takes the gradient; a window
//!   entirely in the padding gives `-inf` and routes its gradient nowhere.
//! - Reductions accumulate sequentially from zero in the tensor's own type, in
//!   row-major order over the reduced axes. `reduce_mean` is `sum / count`. Over an
//!   empty axis, `reduce_max` gives `-inf` (`i32::MIN`), `reduce_min` `+inf`
//!   (`i32::MAX`), a float mean NaN (0/0) and an i32 mean a division-by-zero error.
//! - `argmax` returns the first maximum; NaN counts as the maximum (the first NaN wins).
//! - `matmul` and the convolutions accumulate each output element from zero in the
//!   naive order of their contraction indices (`k`; `c, kh, kw`; `n, oh, ow`). Zero
//!   padding contributes nothing (padded positions are skipped, not multiplied).
//! - `max_pool2d` treats padding as `-inf`; `avg_pool2d` divides by the full kernel
//!   area. `max_pool2d_grad` routes each output gradient to the first maximal
//!   in-bounds position of its window (row-major scan, NaN maximal as in `argmax`),
//!   accumulating where windows overlap; `avg_pool2d_grad` adds `dy / area` to every
//!   in-bounds position of the window.
//! - `gather`, `scatter_add` and `one_hot` reject indices outside `[0, bound)` with
//!   [`EvalError::IndexOutOfRange`]; nothing is clamped.
//! - `cast` has Rust `as` semantics (float to i32 saturates, NaN becomes 0); bool
//!   converts to 0/1 and any non-zero value (NaN included) to `true`.
//! - `fma` rounds once (`mul_add`), so it can differ from `mul` then `add` in the
//!   last bit. `matmul_bias` accumulates like `matmul`, then adds the bias (one
//!   rounding) and applies relu (NaN stays NaN, as in `relu`).
//! - `random_uniform`: element `i` (flat row-major index) is
//!   [`uniform_sample`]`(seed, salt, i)`.

mod contract;
mod elementwise;
mod erf;
mod index;
mod movement;
mod num;
mod pool;
mod random;
mod reduce;
mod scan;

use std::borrow::Cow;
use std::collections::HashMap;

use petgraph::visit::NodeIndexable;

use crate::shape::join_types;
use crate::{Graph, GraphError, HostTensor, NodeId, Op, TensorData, TensorType, TypeError, infer};

pub use erf::erf;
pub use random::uniform_sample;

/// Why a graph or an op could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// The graph is malformed (from [`Graph::validate`]).
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("graph `{graph}` takes {expected} argument(s), got {got}")]
    ArgCount {
        graph: String,
        expected: usize,
        got: usize,
    },
    #[error("argument `{name}` must be {expected}, got {got}")]
    ArgType {
        name: String,
        expected: TensorType,
        got: TensorType,
    },
    #[error("the graph has no argument named `{0}`")]
    UnknownArg(String),
    #[error("argument `{0}` is missing")]
    MissingArg(String),
    #[error("argument `{0}` is given twice")]
    DuplicateArg(String),
    /// Operands that `op` does not accept (only from [`eval_op`]; in a graph,
    /// validation catches these first).
    #[error("`{op}` on ({}): {source}", join_types(operands))]
    Type {
        op: String,
        operands: Vec<TensorType>,
        source: TypeError,
    },
    /// A `gather`, `scatter_add` or `one_hot` index outside `[0, bound)`. `node` is
    /// `None` for [`eval_op`].
    #[error("{}`{op}`: index {index} is out of range [0, {bound})", at(node))]
    IndexOutOfRange {
        node: Option<NodeId>,
        op: String,
        index: i32,
        bound: usize,
    },
    /// An i32 `div` by zero, or an i32 `reduce_mean` over an empty axis.
    #[error("{}`{op}`: integer division by zero", at(node))]
    DivisionByZero { node: Option<NodeId>, op: String },
}

fn at(node: &Option<NodeId>) -> String {
    node.map(|n| format!("node %{} ", n.index()))
        .unwrap_or_default()
}

/// A failure inside a kernel, before it is tied to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Index { index: i32, bound: usize },
    DivisionByZero,
}

impl Fault {
    fn at(self, node: Option<NodeId>, op: &Op) -> EvalError {
        let op = op.mnemonic().to_string();
        match self {
            Fault::Index { index, bound } => EvalError::IndexOutOfRange {
                node,
                op,
                index,
                bound,
            },
            Fault::DivisionByZero => EvalError::DivisionByZero { node, op },
        }
    }
}

/// Evaluates `graph` on `args` (in [`Graph::args`] order) and returns its outputs in
/// order.
///
/// Only the nodes the outputs depend on are evaluated, and each intermediate value is
/// dropped after its last use. Every argument is still checked against its declared
/// type.
pub fn run(graph: &Graph, args: &[HostTensor]) -> Result<Vec<HostTensor>, EvalError> {
    let args: Vec<&HostTensor> = args.iter().collect();
    run_refs(graph, &args)
}

/// Like [`run`], with the arguments given by name, in any order. Missing, unknown
/// and repeated names are errors.
pub fn run_named(graph: &Graph, args: &[(&str, HostTensor)]) -> Result<Vec<HostTensor>, EvalError> {
    let mut ordered: Vec<Option<&HostTensor>> = vec![None; graph.args().len()];
    for (name, value) in args {
        let pos = graph
            .args()
            .iter()
            .position(|&a| graph.get(a).and_then(|n| n.name.as_deref()) == Some(*name))
            .ok_or_else(|| EvalError::UnknownArg(name.to_string()))?;
        if ordered[pos].replace(value).is_some() {
            return Err(EvalError::DuplicateArg(name.to_string()));
        }
    }
    let mut bound = Vec::with_capacity(ordered.len());
    for (slot, &a) in ordered.iter().zip(graph.args()) {
        match slot {
            Some(v) => bound.push(*v),
            None => {
                let name = graph.get(a).and_then(|n| n.name.clone());
                return Err(EvalError::MissingArg(name.unwrap_or_default()));
            }
        }
    }
    run_refs(graph, &bound)
}

/// Evaluates every node of `graph` (reachable from the outputs or not) and returns
/// all values, arguments and constants included. For debugging and tests.
pub fn eval_all(
    graph: &Graph,
    args: &[HostTensor],
) -> Result<HashMap<NodeId, HostTensor>, EvalError> {
    let args: Vec<&HostTensor> = args.iter().collect();
    graph.validate()?;
    let values = evaluate(graph, &args, true)?;
    Ok(values
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (NodeId::new(i), v.into_owned())))
        .collect())
}

/// Applies one non-leaf op to `operands`, checking them with [`infer`] first.
/// `Const` returns its literal; `Input` and `Param` are errors (they have no value
/// of their own).
pub fn eval_op(op: &Op, operands: &[&HostTensor]) -> Result<HostTensor, EvalError> {
    let types: Vec<TensorType> = operands.iter().map(|t| t.ty()).collect();
    let refs: Vec<&TensorType> = types.iter().collect();
    let out = infer(op, &refs).map_err(|source| EvalError::Type {
        op: op.mnemonic().to_string(),
        operands: types.clone(),
        source,
    })?;
    if let Op::Scan(scan) = op {
        return Ok(scan::run_scan(scan, operands)?.swap_remove(scan.result));
    }
    kernel(op, operands, &out).map_err(|f| f.at(None, op))
}

fn run_refs(graph: &Graph, args: &[&HostTensor]) -> Result<Vec<HostTensor>, EvalError> {
    graph.validate()?;
    run_valid(graph, args)
}

/// [`run_refs`] on a graph already validated (a loop body, run once per step).
pub(crate) fn run_valid(graph: &Graph, args: &[&HostTensor]) -> Result<Vec<HostTensor>, EvalError> {
    let mut values = evaluate(graph, args, false)?;
    let outputs = graph.outputs();
    let mut result = Vec::with_capacity(outputs.len());
    for (i, o) in outputs.iter().enumerate() {
        let slot = &mut values[o.node.index()];
        // Move the value out at its last mention in the output list; copy before.
        let value = if outputs[i + 1..].iter().any(|p| p.node == o.node) {
            slot.clone()
        } else {
            slot.take()
        };
        result.push(value.expect("outputs are evaluated").into_owned());
    }
    Ok(result)
}

/// Checks the arguments of the (validated) graph, then evaluates the nodes in
/// topological order. Returns the values indexed by node index: every node's if `keep_all`,
/// otherwise only the outputs' (the rest are skipped or dropped after their last use).
fn evaluate<'a>(
    graph: &'a Graph,
    args: &[&'a HostTensor],
    keep_all: bool,
) -> Result<Vec<Option<Cow<'a, HostTensor>>>, EvalError> {
    if args.len() != graph.args().len() {
        return Err(EvalError::ArgCount {
            graph: graph.name().to_string(),
            expected: graph.args().len(),
            got: args.len(),
        });
    }
    let bound = graph.petgraph().node_bound();
    let mut values: Vec<Option<Cow<'a, HostTensor>>> = vec![None; bound];
    for (&id, &value) in graph.args().iter().zip(args) {
        let node = graph.node(id);
        if value.ty() != node.ty {
            return Err(EvalError::ArgType {
                name: node.name.clone().unwrap_or_default(),
                expected: node.ty.clone(),
                got: value.ty(),
            });
        }
        values[id.index()] = Some(Cow::Borrowed(value));
    }

    let order = graph.topo_order()?;
    let operands: Vec<Vec<NodeId>> = {
        let mut ops = vec![Vec::new(); bound];
        for &id in &order {
            ops[id.index()] = graph.operands(id);
        }
        ops
    };
    // Which nodes to evaluate, and how many pending uses keep each value alive.
    let mut needed = vec![keep_all; bound];
    let mut pinned = vec![keep_all; bound];
    for o in graph.outputs() {
        needed[o.node.index()] = true;
        pinned[o.node.index()] = true;
    }
    for &id in order.iter().rev() {
        if needed[id.index()] {
            for &o in &operands[id.index()] {
                needed[o.index()] = true;
            }
        }
    }
    let mut uses = vec![0usize; bound];
    for &id in &order {
        if needed[id.index()] {
            for &o in &operands[id.index()] {
                uses[o.index()] += 1;
            }
        }
    }

    // The results of each loop, run once for all the nodes that name one of them:
    // keyed by the body and the operand nodes.
    let mut loops: HashMap<(usize, Vec<NodeId>), Vec<HostTensor>> = HashMap::new();
    for &id in &order {
        if !needed[id.index()] {
            continue;
        }
        let node = graph.node(id);
        let value = match &node.op {
            Op::Input | Op::Param => continue, // bound above
            Op::Const(t) => Cow::Borrowed(t),
            Op::Scan(scan) => {
                let key = (
                    std::sync::Arc::as_ptr(&scan.body.0) as usize,
                    operands[id.index()].clone(),
                );
                if !loops.contains_key(&key) {
                    let xs: Vec<&HostTensor> = operands[id.index()]
                        .iter()
                        .map(|o| values[o.index()].as_deref().expect("operands come first"))
                        .collect();
                    loops.insert(key.clone(), scan::run_scan(scan, &xs)?);
                }
                Cow::Owned(loops[&key][scan.result].clone())
            }
            op => {
                let xs: Vec<&HostTensor> = operands[id.index()]
                    .iter()
                    .map(|o| {
                        values[o.index()]
                            .as_deref()
                            .expect("operands come first in topological order")
                    })
                    .collect();
                Cow::Owned(kernel(op, &xs, &node.ty).map_err(|f| f.at(Some(id), op))?)
            }
        };
        values[id.index()] = Some(value);
        for &o in &operands[id.index()] {
            uses[o.index()] -= 1;
            if uses[o.index()] == 0 && !pinned[o.index()] {
                values[o.index()] = None;
            }
        }
    }
    Ok(values)
}

/// Computes `op` on operands whose types `infer` accepted, giving a value of type `out`.
fn kernel(op: &Op, xs: &[&HostTensor], out: &TensorType) -> Result<HostTensor, Fault> {
    let x = || xs[0];
    let data: TensorData = match op {
        Op::Input | Op::Param => unreachable!("infer rejects leaves; graphs bind them"),
        Op::Const(t) => return Ok(t.clone()),
        Op::Unary(k) => elementwise::unary(*k, x()),
        Op::Binary(k) => elementwise::binary(*k, xs[0], xs[1])?,
        Op::Compare(k) => elementwise::compare(*k, xs[0], xs[1]),
        Op::Select => elementwise::select(xs[0], xs[1], xs[2]),
        Op::Cast(to) => elementwise::cast(x(), *to),
        Op::Broadcast(_) => movement::broadcast(x(), &out.shape),
        // One process: the sum over the group is the operand itself.
        Op::Reshape(_) | Op::StopGradient | Op::AllReduce => x().data().clone(),
        Op::Transpose(perm) => movement::transpose(x(), perm),
        Op::Slice { start, step, .. } => movement::slice(x(), start, step, &out.shape),
        Op::Concat { axis } => movement::concat(xs, *axis),
        Op::Pad { low, value, .. } => movement::pad(x(), low, *value, &out.shape),
        Op::Reduce { kind, axes, .. } => reduce::reduce(*kind, x(), axes)?,
        Op::ArgMax { axis, .. } => reduce::argmax(x(), *axis),
        Op::MatMul => contract::matmul(xs[0], xs[1], &out.shape),
        Op::Conv2d(c) => contract::conv2d(xs[0], xs[1], c, &out.shape),
        Op::ConvTranspose2d { conv, .. } => {
            contract::conv_transpose2d(xs[0], xs[1], conv, &out.shape)
        }
        Op::Conv2dWeightGrad { conv, .. } => {
            contract::conv2d_weight_grad(xs[0], xs[1], conv, &out.shape)
        }
        Op::Pool2d(p) => pool::pool2d(x(), p, &out.shape),
        Op::Pool2dGrad(p) => pool::pool2d_grad(xs[0], xs[1], p),
        Op::Gather => index::gather(xs[0], xs[1])?,
        Op::ScatterAdd { rows } => index::scatter_add(xs[0], xs[1], *rows)?,
        Op::OneHot { depth, dtype } => index::one_hot(x(), *depth, *dtype)?,
        Op::RandomUniform { dtype, salt, .. } => {
            random::random_uniform(x(), *dtype, *salt, out.shape.numel())
        }
        Op::Fma => elementwise::fma(xs[0], xs[1], xs[2]),
        Op::MatMulBias { relu } => contract::matmul_bias(xs[0], xs[1], xs[2], *relu, &out.shape),
        Op::Scan(_) => unreachable!("evaluate and eval_op run loops themselves"),
    };
    Ok(HostTensor::new(out.shape.clone(), data).expect("kernels produce the inferred size"))
}
