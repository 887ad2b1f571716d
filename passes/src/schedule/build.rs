//! The scheduling algorithm: choose which nodes get buffers, then build one kernel
//! per materialized node, inlining the rest as expressions.

use std::collections::{HashMap, HashSet};

use kiln_ir::kernel::ScanKernel;
use kiln_ir::{DType, Graph, GraphError, NodeId, Op, OpClass, Shape, Work};

use super::{
    Access, Affine, Buffer, BufferId, BufferKind, CallInput, CallKernel, Expr, ExprId, ExprNode,
    Kernel, KernelProgram, LoopKernel, Reduction,
};

/// Why a graph cannot be scheduled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// How a node reaches the buffers: its kernel-index map. Node dimension `j` has
/// index `offset + scale · i[src]` (or just `offset` when `src` is `None`), where `i`
/// are the loop indices of the kernel being built.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Dim {
    src: Option<usize>,
    scale: usize,
    offset: usize,
}

type Map = Vec<Dim>;

fn identity(rank: usize) -> Map {
    (0..rank)
        .map(|k| Dim {
            src: Some(k),
            scale: 1,
            offset: 0,
        })
        .collect()
}

/// Flattens node indices given by `map` with the row-major strides of `shape` into an
/// affine function of `loops` loop indices.
fn flatten(map: &Map, shape: &Shape, loops: usize) -> Affine {
    let cs = shape.strides();
    let mut offset = 0;
    let mut strides = vec![0; loops];
    for (j, d) in map.iter().enumerate() {
        offset += cs[j] * d.offset;
        if let Some(k) = d.src {
            strides[k] += cs[j] * d.scale;
        }
    }
    Affine { offset, strides }
}

/// Views: ops that only re-index their operand.
fn is_view(op: &Op) -> bool {
    matches!(op.class(), OpClass::View { .. })
}

/// Views that keep an operand addressable by strides (not `reshape`, which needs a
/// contiguous operand).
fn is_strided_view(op: &Op) -> bool {
    op.class() == OpClass::View { strided: true }
}

/// Ops computed inside loop kernels, element by element.
fn is_loop_op(op: &Op) -> bool {
    matches!(
        op.class(),
        OpClass::Elementwise | OpClass::Generator | OpClass::View { .. }
    )
}

/// A literal whose elements are all equal: inlined as a constant.
fn splat_value(op: &Op) -> Option<f64> {
    let Op::Const(t) = op else { return None };
    if t.numel() == 0 {
        return None;
    }
    let first = t.get_f64(0);
    let same = (0..t.numel()).all(|i| t.get_f64(i).to_bits() == first.to_bits());
    same.then_some(first)
}

/// Largest inlined expression (in [`op_cost`] units) recomputed per consumer rather
/// than stored once.
const RECOMPUTE_LIMIT: usize = 8;

/// Rough cost of one element of `op` in a loop body: transcendental functions are
/// polynomials of a dozen instructions.
fn op_cost(op: &Op) -> usize {
    match op.kind().work() {
        Work::Transcendental => 4,
        Work::Power | Work::Hash => 8,
        Work::None | Work::Simple | Work::MulAdd | Work::Divide | Work::Root | Work::Shaped => 1,
    }
}

/// Schedules `graph` into a kernel program (see the module docs for the rules).
pub fn schedule(graph: &Graph) -> Result<KernelProgram, ScheduleError> {
    graph.validate()?;
    let order = graph.topo_order()?;
    let outputs: HashSet<NodeId> = graph.outputs().iter().map(|o| o.node).collect();

    let transposed = transposed_products(graph, &outputs);

    // 1. Which nodes get a buffer.
    let mut materialize: HashSet<NodeId> = HashSet::new();
    // What inlining a node costs each consumer: its ops plus those of the inlined
    // operands it drags along (loads of buffers, views and constants are free).
    let mut inline_cost: HashMap<NodeId, usize> = HashMap::new();
    for &n in &order {
        let op = &graph.node(n).op;
        let users = graph.users(n);
        let cost = if is_view(op) || op.is_leaf() {
            0
        } else {
            op_cost(op)
                + graph
                    .operands(n)
                    .iter()
                    .filter(|o| !materialize.contains(o))
                    .map(|o| inline_cost.get(o).copied().unwrap_or(0))
                    .sum::<usize>()
        };
        inline_cost.insert(n, cost);
        // A node with several consumers is recomputed in each while that is cheap
        // (e.g. the `exp` a softmax both sums and divides), else computed once.
        let shared = users.len() > 1 && cost > RECOMPUTE_LIMIT;
        let product = transposed_product(graph, &transposed, n);
        // A product read only transposed has no buffer: its users compute it.
        let needed = !transposed.contains(&n)
            && (op.is_argument()
                || outputs.contains(&n)
                || matches!(op, Op::Const(_)) && splat_value(op).is_none()
                || !is_loop_op(op) && !matches!(op, Op::Const(_))
                || (!is_view(op) && splat_value(op).is_none() && shared)
                || product.is_some());
        if needed {
            materialize.insert(n);
        }
        // Library calls read whole contiguous buffers; a reshape re-indexes its
        // operand's flat layout, which only a buffer has; the random seed is loaded.
        let call = op.class() == OpClass::Library;
        if call && super::call_takes_views(op) {
            // GEMM operands: the views stay index maps; their base gets a buffer. A
            // reshape of a buffer is one too (same elements in the same order).
            for (i, mut o) in graph.operands(n).into_iter().enumerate() {
                // The bias (operand 2) is read contiguously.
                while i < 2 && is_strided_view(&graph.node(o).op) {
                    o = graph.operands(o)[0];
                }
                if i < 2 && matches!(graph.node(o).op, Op::Reshape(_)) {
                    o = graph.operands(o)[0]; // a reshape reads its operand's buffer
                }
                materialize.insert(o);
            }
        } else if call {
            // Other calls, and loops, read a reshape of a buffer in place too.
            for o in graph.operands(n) {
                match graph.node(o).op {
                    Op::Reshape(_) => materialize.insert(graph.operands(o)[0]),
                    _ => materialize.insert(o),
                };
            }
        } else if matches!(op, Op::Reshape(_) | Op::RandomUniform { .. }) {
            materialize.extend(graph.operands(n));
        }
    }

    // 2. Buffers, in topological order.
    let mut program = KernelProgram {
        name: graph.name().to_string(),
        buffers: Vec::new(),
        kernels: Vec::new(),
        args: Vec::new(),
        outputs: Vec::new(),
        output_names: graph.outputs().iter().map(|o| o.name.clone()).collect(),
    };
    let mut buffer_of: HashMap<NodeId, BufferId> = HashMap::new();
    for &n in &order {
        if !materialize.contains(&n) {
            continue;
        }
        let node = graph.node(n);
        let kind = match &node.op {
            Op::Input | Op::Param => BufferKind::Arg(
                graph
                    .args()
                    .iter()
                    .position(|&a| a == n)
                    .expect("validated"),
            ),
            Op::Const(t) if splat_value(&node.op).is_none() => BufferKind::Const(t.clone()),
            _ => BufferKind::Temp,
        };
        buffer_of.insert(n, BufferId::new(program.buffers.len()));
        program.buffers.push(Buffer {
            ty: node.ty.clone(),
            kind,
            node: n,
        });
    }
    program.args = graph.args().iter().map(|a| buffer_of[a]).collect();
    program.outputs = graph.outputs().iter().map(|o| buffer_of[&o.node]).collect();

    // 3. One kernel per materialized computed node (one per loop for the results
    // of a scan).
    // The result nodes of each loop (one kernel runs the loop for all of them).
    let (loops, loop_of) = crate::loops::loops(graph, &order);
    let mut in_loop: HashSet<NodeId> = HashSet::new();
    for &n in &order {
        let Some(&out) = buffer_of.get(&n) else {
            continue;
        };
        if program.buffer(out).kind != BufferKind::Temp || in_loop.contains(&n) {
            continue;
        }
        let node = graph.node(n);
        if let Some(m) = transposed_product(graph, &transposed, n) {
            // (a @ b)^T computed as b^T @ a^T, the transposes read as views.
            let ops = graph.operands(m);
            let rank = node.ty.shape.rank();
            let mut swap = identity(rank);
            swap.swap(rank - 2, rank - 1);
            let inputs = [ops[1], ops[0]]
                .into_iter()
                .map(|o| {
                    let mut b = ExprBuilder::new(graph, &materialize, &buffer_of, o, rank);
                    b.root = NodeId::end();
                    let e = b.build(o, &swap);
                    let Expr::Load(access) = b.exprs[e.index()].expr.clone() else {
                        unreachable!("product operands are buffers or views of buffers")
                    };
                    let mut ty = graph.node(o).ty.clone();
                    let mut dims = ty.shape.dims().to_vec();
                    dims.swap(rank - 2, rank - 1);
                    ty.shape = Shape::new(dims);
                    CallInput { ty, access }
                })
                .collect();
            program.kernels.push(Kernel::Call(CallKernel {
                op: Op::MatMul,
                inputs,
                out,
            }));
            continue;
        }
        let kernel = match &node.op {
            Op::Scan(scan) => {
                let l = &loops[loop_of[&n]];
                let operands = &l.operands;
                let results: Vec<Option<BufferId>> = l
                    .nodes
                    .iter()
                    .map(|m| m.and_then(|m| buffer_of.get(&m).copied()))
                    .collect();
                in_loop.extend(l.nodes.iter().flatten());
                Kernel::Scan(ScanKernel {
                    body: Box::new(schedule(&scan.body.0)?),
                    length: scan.length,
                    reverse: scan.reverse,
                    carries: scan.carries,
                    xs: scan.xs,
                    operands: operands
                        .iter()
                        .map(|o| match buffer_of.get(o) {
                            Some(&b) => b,
                            // An unmaterialized reshape: its operand's buffer holds
                            // the same elements in the same order.
                            None => buffer_of[&graph.operands(*o)[0]],
                        })
                        .collect(),
                    results,
                })
            }
            Op::Reduce { kind, axes, .. } => {
                let x = graph.operands(n)[0];
                let xs = graph.node(x).ty.shape.clone();
                // Loops: kept axes outermost (they address the output), reduced inner.
                let kept: Vec<usize> = (0..xs.rank()).filter(|a| !axes.contains(a)).collect();
                let loop_axes: Vec<usize> = kept.iter().chain(axes).copied().collect();
                let dims = loop_axes.iter().map(|&a| xs.dim(a)).collect();
                let mut map = vec![
                    Dim {
                        src: None,
                        scale: 0,
                        offset: 0
                    };
                    xs.rank()
                ];
                for (k, &a) in loop_axes.iter().enumerate() {
                    map[a] = Dim {
                        src: Some(k),
                        scale: 1,
                        offset: 0,
                    };
                }
                let mut b = ExprBuilder::new(graph, &materialize, &buffer_of, n, loop_axes.len());
                let value = b.build(x, &map);
                Kernel::Loop(LoopKernel {
                    dims,
                    rows: Vec::new(),
                    reduce: Some(Reduction {
                        kind: *kind,
                        count: axes.len(),
                    }),
                    exprs: b.exprs,
                    value,
                    out,
                    also: Vec::new(),
                })
            }
            op if is_loop_op(op) || matches!(op, Op::Const(_)) => {
                let rank = node.ty.shape.rank();
                let mut b = ExprBuilder::new(graph, &materialize, &buffer_of, n, rank);
                let value = b.build(n, &identity(rank));
                Kernel::Loop(LoopKernel {
                    dims: node.ty.shape.dims().to_vec(),
                    rows: Vec::new(),
                    reduce: None,
                    exprs: b.exprs,
                    value,
                    out,
                    also: Vec::new(),
                })
            }
            op => {
                let inputs = graph
                    .operands(n)
                    .into_iter()
                    .map(|o| {
                        let ty = graph.node(o).ty.clone();
                        let rank = ty.shape.rank();
                        let mut b = ExprBuilder::new(graph, &materialize, &buffer_of, o, rank);
                        b.root = NodeId::end();
                        let e = b.build(o, &identity(rank));
                        let Expr::Load(access) = b.exprs[e.index()].expr.clone() else {
                            unreachable!("call operands are buffers or views of buffers")
                        };
                        CallInput { ty, access }
                    })
                    .collect();
                Kernel::Call(CallKernel {
                    op: op.clone(),
                    inputs,
                    out,
                })
            }
        };
        program.kernels.push(kernel);
    }
    super::rows::fuse_row_reductions(&mut program);
    super::merge::merge_elementwise(&mut program);
    Ok(program)
}

/// Products read only transposed (every user swaps their last two axes), and not
/// outputs: each transposing user computes `b^T @ a^T` into its own buffer instead,
/// so the consumers read it in order (GEMM takes the transposed operands as views
/// for free, while a loop reading a transposed buffer strides through memory).
fn transposed_products(graph: &Graph, outputs: &HashSet<NodeId>) -> HashSet<NodeId> {
    graph
        .node_ids()
        .filter(|&m| {
            let rank = graph.node(m).ty.shape.rank();
            let users = graph.users(m);
            matches!(graph.node(m).op, Op::MatMul)
                && rank >= 2
                && !outputs.contains(&m)
                && !users.is_empty()
                && users
                    .iter()
                    .all(|&u| matches!(&graph.node(u).op, Op::Transpose(p) if swaps_last2(p)))
        })
        .collect()
}

/// The product `n` transposes, if `n` is a transposing user of one of
/// [`transposed_products`].
fn transposed_product(graph: &Graph, transposed: &HashSet<NodeId>, n: NodeId) -> Option<NodeId> {
    if !matches!(graph.node(n).op, Op::Transpose(_)) {
        return None;
    }
    let m = graph.operands(n)[0];
    transposed.contains(&m).then_some(m)
}

/// True for the permutation that swaps the last two axes and keeps the others.
fn swaps_last2(p: &[usize]) -> bool {
    let r = p.len();
    r >= 2
        && p[r - 2] == r - 1
        && p[r - 1] == r - 2
        && p[..r - 2].iter().enumerate().all(|(i, &j)| i == j)
}

/// Builds the expressions of one loop kernel, inlining non-materialized nodes.
struct ExprBuilder<'a> {
    graph: &'a Graph,
    materialize: &'a HashSet<NodeId>,
    buffer_of: &'a HashMap<NodeId, BufferId>,
    root: NodeId,
    loops: usize,
    exprs: Vec<ExprNode>,
    memo: HashMap<(NodeId, Map), ExprId>,
}

impl<'a> ExprBuilder<'a> {
    fn new(
        graph: &'a Graph,
        materialize: &'a HashSet<NodeId>,
        buffer_of: &'a HashMap<NodeId, BufferId>,
        root: NodeId,
        loops: usize,
    ) -> Self {
        ExprBuilder {
            graph,
            materialize,
            buffer_of,
            root,
            loops,
            exprs: Vec::new(),
            memo: HashMap::new(),
        }
    }

    fn push(&mut self, expr: Expr, dtype: DType) -> ExprId {
        // Identical expressions (e.g. the same load twice) are computed once.
        if let Some(i) = self
            .exprs
            .iter()
            .position(|e| e.expr == expr && e.dtype == dtype)
        {
            return ExprId::new(i);
        }
        self.exprs.push(ExprNode { expr, dtype });
        ExprId::new(self.exprs.len() - 1)
    }

    fn load(&mut self, n: NodeId, map: &Map) -> ExprId {
        let ty = &self.graph.node(n).ty;
        let a = flatten(map, &ty.shape, self.loops);
        let access = Access {
            buffer: self.buffer_of[&n],
            offset: a.offset,
            strides: a.strides,
        };
        self.push(Expr::Load(access), ty.dtype)
    }

    /// The expression for node `n` read through `map`.
    fn build(&mut self, n: NodeId, map: &Map) -> ExprId {
        if let Some(&e) = self.memo.get(&(n, map.clone())) {
            return e;
        }
        let e = self.build_uncached(n, map);
        self.memo.insert((n, map.clone()), e);
        e
    }

    fn build_uncached(&mut self, n: NodeId, map: &Map) -> ExprId {
        if n != self.root && self.materialize.contains(&n) {
            return self.load(n, map);
        }
        let node = self.graph.node(n);
        let dtype = node.ty.dtype;
        let ops = self.graph.operands(n);
        match &node.op {
            Op::Const(_) => {
                let v = splat_value(&node.op).expect("non-splat constants are buffers");
                self.push(Expr::Const(v), dtype)
            }
            Op::Unary(k) => {
                let x = self.build(ops[0], map);
                self.push(Expr::Unary(*k, x), dtype)
            }
            Op::Binary(k) => {
                let (a, b) = (self.build(ops[0], map), self.build(ops[1], map));
                self.push(Expr::Binary(*k, a, b), dtype)
            }
            Op::Compare(k) => {
                let (a, b) = (self.build(ops[0], map), self.build(ops[1], map));
                self.push(Expr::Compare(*k, a, b), dtype)
            }
            Op::Select => {
                let c = self.build(ops[0], map);
                let (a, b) = (self.build(ops[1], map), self.build(ops[2], map));
                self.push(Expr::Select(c, a, b), dtype)
            }
            Op::Fma => {
                let a = self.build(ops[0], map);
                let (b, c) = (self.build(ops[1], map), self.build(ops[2], map));
                self.push(Expr::Fma(a, b, c), dtype)
            }
            Op::Cast(_) => {
                let x = self.build(ops[0], map);
                if self.exprs[x.index()].dtype == dtype {
                    return x;
                }
                self.push(Expr::Cast(x), dtype)
            }
            Op::StopGradient => self.build(ops[0], map),
            Op::Broadcast(_) => {
                let xs = self.graph.node(ops[0]).ty.shape.clone();
                let lead = map.len() - xs.rank();
                let m: Map = (0..xs.rank())
                    .map(|j| {
                        if xs.dim(j) == 1 {
                            Dim {
                                src: None,
                                scale: 0,
                                offset: 0,
                            }
                        } else {
                            map[j + lead].clone()
                        }
                    })
                    .collect();
                self.build(ops[0], &m)
            }
            Op::Transpose(perm) => {
                let mut m = map.clone();
                for (i, &p) in perm.iter().enumerate() {
                    m[p] = map[i].clone();
                }
                self.build(ops[0], &m)
            }
            Op::Slice { start, step, .. } => {
                let m: Map = map
                    .iter()
                    .enumerate()
                    .map(|(j, d)| Dim {
                        src: d.src,
                        scale: d.scale * step[j],
                        offset: d.offset * step[j] + start[j],
                    })
                    .collect();
                self.build(ops[0], &m)
            }
            Op::Reshape(_) => {
                // The operand is a buffer: same flat index, new shape.
                let a = flatten(map, &node.ty.shape, self.loops);
                let ty = &self.graph.node(ops[0]).ty;
                let access = Access {
                    buffer: self.buffer_of[&ops[0]],
                    offset: a.offset,
                    strides: a.strides,
                };
                self.push(Expr::Load(access), ty.dtype)
            }
            Op::RandomUniform { salt, .. } => {
                let flat = flatten(map, &node.ty.shape, self.loops);
                let seed = Access {
                    buffer: self.buffer_of[&ops[0]],
                    offset: 0,
                    strides: vec![0; self.loops],
                };
                self.push(
                    Expr::Random {
                        seed,
                        salt: *salt,
                        flat,
                    },
                    dtype,
                )
            }
            op => unreachable!("`{}` is always materialized", op.mnemonic()),
        }
    }
}
