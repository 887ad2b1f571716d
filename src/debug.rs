//! Looking inside a compile: graphs saved to and loaded from `.kir` files, the
//! gradient stage of the `kiln` tool, and seeded arguments and error measures for
//! checking compiled code against the interpreter.
//!
//! ```
//! use kiln::prelude::*;
//! let g = GraphBuilder::new("double");
//! let x = g.input("x", DType::F32, [3]);
//! let y = &x + &x;
//! let model = g.build(&[("y", &y)]).unwrap();
//! let path = std::env::temp_dir().join(format!("kiln-doc-{}.kir", std::process::id()));
//! kiln::save_graph(&model.graph, &path).unwrap();
//! let back = kiln::load_graph(&path).unwrap();
//! assert_eq!(back.to_string(), model.graph.to_string());
//! # std::fs::remove_file(&path).unwrap();
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use kiln_frontend::Rng;
use kiln_ir::text::ParseError;
use kiln_ir::{DType, Domain, Graph, HostTensor, NodeId, Op, OpClass, OpKind, Output, TensorData};
use kiln_passes::AutodiffError;

/// Writes `graph` to `path` in the text format (conventionally a `.kir` file).
pub fn save_graph(graph: &Graph, path: impl AsRef<Path>) -> std::io::Result<()> {
    std::fs::write(path, graph.to_string())
}

/// Why a graph file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum GraphFileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A syntax or type error; displays as `PATH:LINE:COL: message`.
    #[error("{}:{}", path.display(), error)]
    Parse { path: PathBuf, error: ParseError },
}

/// Reads a graph in the text format from `path`. Its nodes are numbered
/// canonically (see [`Graph::canonicalize`]), so `%N` in a printout of the result
/// is `NodeId` N.
pub fn load_graph(path: impl AsRef<Path>) -> Result<Graph, GraphFileError> {
    let path = path.as_ref();
    let src = std::fs::read_to_string(path).map_err(|source| GraphFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_graph(&src).map_err(|error| GraphFileError::Parse {
        path: path.to_path_buf(),
        error,
    })
}

/// Parses `src` in the text format and numbers its nodes canonically.
pub fn parse_graph(src: &str) -> Result<Graph, ParseError> {
    let graph = kiln_ir::text::parse(src)?;
    // A parsed graph is acyclic (operands are defined before use).
    Ok(graph.canonicalize().map(|(g, _)| g).unwrap_or(graph))
}

/// Why [`differentiate`] failed.
#[derive(Debug, thiserror::Error)]
pub enum GradError {
    #[error("no node `{0}`: name the loss as %N (as the text format numbers it) or by output name")]
    NoNode(String),
    #[error("the graph has no `param` arguments to differentiate with respect to")]
    NoParams,
    #[error(transparent)]
    Autodiff(#[from] AutodiffError),
}

/// Resolves `node` (`%N`, `N`, or the name of an output or a node) in `graph`.
pub fn find_node(graph: &Graph, node: &str) -> Option<NodeId> {
    let digits = node.strip_prefix('%').unwrap_or(node);
    if let Ok(n) = digits.parse::<usize>() {
        let id = NodeId::new(n);
        return graph.contains(id).then_some(id);
    }
    graph
        .outputs()
        .iter()
        .find(|o| o.name.as_deref() == Some(node))
        .map(|o| o.node)
        .or_else(|| {
            graph
                .node_ids()
                .find(|&id| graph.node(id).name.as_deref() == Some(node))
        })
}

/// The gradient stage of the `kiln` tool: differentiates the scalar node `loss`
/// (see [`find_node`]) with respect to every `param` argument. The result keeps
/// the graph's outputs and adds `grad.NAME` (the gradient of each parameter), and
/// is numbered canonically.
pub fn differentiate(graph: &Graph, loss: &str) -> Result<Graph, GradError> {
    let loss_id = find_node(graph, loss).ok_or_else(|| GradError::NoNode(loss.to_string()))?;
    let params = graph.params();
    if params.is_empty() {
        return Err(GradError::NoParams);
    }
    let grads = kiln_passes::grad(graph, loss_id, &params)?;
    let mut g = grads.graph;
    let mut outputs: Vec<Output> = g.outputs().to_vec();
    for (&p, &d) in params.iter().zip(&grads.grads) {
        let name = graph.node(p).name.clone().unwrap_or_default();
        outputs.push(Output {
            node: d,
            name: Some(format!("grad.{name}")),
        });
    }
    g.set_outputs(outputs);
    Ok(g.canonicalize().map(|(c, _)| c).unwrap_or(g))
}

/// How [`random_args`] drew one argument.
#[derive(Clone, Debug, PartialEq)]
pub enum ArgRange {
    /// Floats, uniform in `[lo, hi)`.
    Uniform(f64, f64),
    /// Integers in `[lo, hi)`; `why` names the op bounding them, if any.
    Ints { lo: i32, hi: i32, why: String },
    /// Booleans, each true with probability 1/2.
    Bits,
}

impl fmt::Display for ArgRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgRange::Uniform(lo, hi) => write!(f, "uniform in [{lo}, {hi})"),
            ArgRange::Ints { lo, hi, why } => write!(f, "integers in [{lo}, {hi}) ({why})"),
            ArgRange::Bits => f.write_str("random booleans"),
        }
    }
}

/// The number of valid index values for i32 node `id`: the smallest axis it
/// indexes, following the value through movement ops (`reshape`, `transpose`,
/// `broadcast`, `slice`, `concat`, `pad`).
fn index_bound(graph: &Graph, id: NodeId) -> Option<(usize, &'static str)> {
    let mut best: Option<(usize, &'static str)> = None;
    let mut keep = |n: usize, why: &'static str| {
        if best.is_none_or(|(b, _)| n < b) {
            best = Some((n, why));
        }
    };
    walk_users(graph, id, |n, user| {
        let ops = graph.operands(user);
        match &graph.node(user).op {
            Op::Gather if ops.get(1) == Some(&n) => {
                if let Some(&d) = graph.node(ops[0]).ty.shape.dims().first() {
                    keep(d, "gather rows");
                }
            }
            Op::ScatterAdd { rows } if ops.first() == Some(&n) => keep(*rows, "scatter_add rows"),
            Op::OneHot { depth, .. } => keep(*depth, "one_hot depth"),
            op if matches!(op.class(), OpClass::View { .. })
                || matches!(op.kind(), OpKind::Concat | OpKind::Pad) =>
            {
                return Walk::Follow;
            }
            _ => {}
        }
        Walk::Skip
    });
    best
}

/// What [`walk_users`] does with a user it visits.
enum Walk {
    /// Visit the user's own users too.
    Follow,
    /// Go on with the other users.
    Skip,
    /// End the walk.
    Stop,
}

/// Depth-first over the users of `id`: calls `visit(node, user)` for each user of
/// each node reached (each node once), following the users `visit` says to.
/// Returns true if `visit` stopped the walk.
fn walk_users(graph: &Graph, id: NodeId, mut visit: impl FnMut(NodeId, NodeId) -> Walk) -> bool {
    let mut stack = vec![id];
    let mut seen = std::collections::HashSet::new();
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        for user in graph.users(n) {
            match visit(n, user) {
                Walk::Follow => stack.push(user),
                Walk::Skip => {}
                Walk::Stop => return true,
            }
        }
    }
    false
}

/// True if the value of `id` reaches `sqrt`, `rsqrt`, `log` or `pow` through
/// elementwise and movement ops only, as optimizer state does (Adam's second
/// moment and step count): random values of either sign would make it NaN.
fn feeds_a_restricted_domain(graph: &Graph, id: NodeId) -> bool {
    walk_users(graph, id, |_, user| {
        let op = &graph.node(user).op;
        if op.kind().domain() != Domain::Any {
            return Walk::Stop;
        }
        match op.class() {
            OpClass::Elementwise | OpClass::View { .. } => Walk::Follow,
            _ => Walk::Skip,
        }
    })
}

/// Seeded arguments for `graph`, never all zeros: floats uniform in `[-1, 1)`,
/// except those that reach `sqrt`, `rsqrt`, `log` or `pow` through elementwise
/// and movement ops only (optimizer state such as Adam's second moment and step
/// count), which are uniform in `[0.5, 1.5)`; i32 arguments that index (gather and scatter_add indices, one_hot) in
/// `[0, size of the indexed axis)`, other i32 arguments in `[1, 10)` (so they are
/// safe divisors); booleans at random. Returns each argument with how it was drawn.
pub fn random_args(graph: &Graph, seed: u64) -> Vec<(HostTensor, ArgRange)> {
    let mut rng = Rng::seed(seed);
    graph
        .args()
        .iter()
        .map(|&a| {
            let ty = &graph.node(a).ty;
            let n = ty.shape.numel();
            let shape = ty.shape.clone();
            let (lo, hi) = if ty.dtype.is_float() && feeds_a_restricted_domain(graph, a) {
                (0.5, 1.5)
            } else {
                (-1.0, 1.0)
            };
            let (tensor, range) = match ty.dtype {
                DType::F32 => (
                    HostTensor::from_f32(
                        shape,
                        (0..n).map(|_| rng.uniform(lo as f32, hi as f32)).collect(),
                    ),
                    ArgRange::Uniform(lo, hi),
                ),
                DType::F64 => (
                    HostTensor::from_f64(shape, (0..n).map(|_| rng.uniform_f64(lo, hi)).collect()),
                    ArgRange::Uniform(lo, hi),
                ),
                DType::I32 => {
                    let (lo, hi, why) = match index_bound(graph, a) {
                        Some((b, why)) => (0, b.clamp(1, i32::MAX as usize) as i32, why),
                        None => (1, 10, "not an index"),
                    };
                    let span = (hi - lo) as u64;
                    (
                        HostTensor::from_i32(
                            shape,
                            (0..n).map(|_| lo + rng.below(span) as i32).collect(),
                        ),
                        ArgRange::Ints {
                            lo,
                            hi,
                            why: why.to_string(),
                        },
                    )
                }
                DType::Bool => (
                    HostTensor::from_bool(shape, (0..n).map(|_| rng.below(2) == 1).collect()),
                    ArgRange::Bits,
                ),
            };
            (tensor.expect("sized from the type"), range)
        })
        .collect()
}

/// How far a computed tensor is from the reference.
#[derive(Clone, Debug, PartialEq)]
pub struct Agreement {
    /// Largest `|got - want|` over elements where both are finite.
    pub max_abs: f64,
    /// Largest `|got - want| / |want|` over finite elements with `want != 0`.
    pub max_rel: f64,
    /// Elements where exactly one side is NaN, or the infinities differ.
    pub nonfinite_mismatches: usize,
    /// Elements where both sides are NaN or the same infinity (they agree).
    pub nonfinite_matches: usize,
    /// Elements outside `atol + rtol * |want|`.
    pub failures: usize,
}

impl Agreement {
    /// True if every element is within tolerance and non-finite values match.
    pub fn ok(&self) -> bool {
        self.failures == 0 && self.nonfinite_mismatches == 0
    }
}

/// Compares `got` with the reference `want` elementwise (as f64), with tolerance
/// `atol + rtol * |want|`.
pub fn compare(got: &HostTensor, want: &HostTensor, rtol: f64, atol: f64) -> Agreement {
    let mut a = Agreement {
        max_abs: 0.0,
        max_rel: 0.0,
        nonfinite_mismatches: 0,
        nonfinite_matches: 0,
        failures: 0,
    };
    if got.ty() != want.ty() {
        a.failures = want.numel().max(1);
        return a;
    }
    let exact = matches!(want.data(), TensorData::I32(_) | TensorData::Bool(_));
    for (g, w) in got.to_f64_vec().into_iter().zip(want.to_f64_vec()) {
        if !(g.is_finite() && w.is_finite()) {
            if (g.is_nan() && w.is_nan()) || g == w {
                a.nonfinite_matches += 1;
            } else {
                a.nonfinite_mismatches += 1;
            }
            continue;
        }
        let d = (g - w).abs();
        a.max_abs = a.max_abs.max(d);
        if w != 0.0 {
            a.max_rel = a.max_rel.max(d / w.abs());
        }
        let tol = if exact { 0.0 } else { atol + rtol * w.abs() };
        if d > tol {
            a.failures += 1;
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "fn f(table: param f32[5,3], idx: i32[4], k: i32[2]) -> (y: f32[4,3]) {
  %3 = reshape %1 shape=[2,2] : i32[2,2]
  %4 = gather %0, %3 : f32[2,2,3]
  %5 = reshape %4 shape=[4,3] : f32[4,3]
  return %5
}
";

    #[test]
    fn index_arguments_stay_inside_the_axis_they_index() {
        let g = parse_graph(SRC).unwrap();
        let args = random_args(&g, 7);
        assert_eq!(args[0].1, ArgRange::Uniform(-1.0, 1.0));
        assert!(matches!(args[1].1, ArgRange::Ints { lo: 0, hi: 5, .. }));
        assert!(matches!(args[2].1, ArgRange::Ints { lo: 1, hi: 10, .. }));
        let TensorData::I32(idx) = args[1].0.data() else {
            panic!()
        };
        assert!(idx.iter().all(|&i| (0..5).contains(&i)));
        assert!(args[0].0.to_f64_vec().iter().any(|&v| v != 0.0));
    }

    #[test]
    fn compare_counts_failures_and_nan_agreement() {
        let a = HostTensor::from_f32([3], vec![1.0, f32::NAN, 2.0]).unwrap();
        let b = HostTensor::from_f32([3], vec![1.0 + 1e-7, f32::NAN, 2.5]).unwrap();
        let c = compare(&a, &b, 1e-4, 1e-5);
        assert_eq!((c.failures, c.nonfinite_matches), (1, 1));
        assert!(!c.ok());
        assert!((c.max_abs - 0.5).abs() < 1e-6);
    }

    #[test]
    fn find_node_takes_ids_and_names() {
        let g = parse_graph(SRC).unwrap();
        assert_eq!(find_node(&g, "%4"), Some(NodeId::new(4)));
        assert_eq!(find_node(&g, "y"), Some(NodeId::new(5)));
        assert_eq!(find_node(&g, "%9"), None);
    }
}
