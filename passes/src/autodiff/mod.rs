//! Symbolic reverse-mode differentiation as a graph transform.
//!
//! [`grad`] appends, for a scalar loss, the nodes computing its gradient with respect
//! to chosen nodes, and returns an ordinary graph: nothing is taped at run time, the
//! result prints, optimizes and compiles like any other graph, and `grad` can be
//! applied to it again (higher derivatives).
//!
//! Each op has one vector-Jacobian rule in `vjp`. Gradients are only built for nodes
//! that lie on a path from a differentiated node to the loss, so no dead gradient
//! branches are emitted; contributions from several users are accumulated with `add`.

use std::collections::{HashMap, HashSet};

use kiln_ir::{
    BinaryOp, CmpOp, Conv2dAttrs, Graph, GraphError, HostTensor, NodeId, Op, PoolKind, ReduceOp,
    Shape, TensorType, UnaryOp,
};

use crate::emit::{EmitResult, Emitter};

mod scan;

/// Why a gradient cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AutodiffError {
    #[error("the loss %{} must be a float scalar, got {ty}", node.index())]
    LossNotScalar { node: NodeId, ty: TensorType },
    #[error("cannot differentiate with respect to %{}: it is {ty}, not a float tensor", node.index())]
    NotFloat { node: NodeId, ty: TensorType },
    #[error("node %{} does not exist", .0.index())]
    UnknownNode(NodeId),
    #[error("node %{} `{op}` has no derivative with respect to operand {operand}: {reason}", node.index())]
    NotDifferentiable {
        node: NodeId,
        op: String,
        operand: usize,
        reason: &'static str,
    },
    #[error("building the gradient graph failed: {0}")]
    Graph(#[from] GraphError),
}

/// The input graph extended with gradient nodes.
#[derive(Clone, Debug)]
pub struct Gradients {
    /// The original graph (same node ids, same outputs) plus the gradient nodes.
    pub graph: Graph,
    /// `d loss / d wrt[i]`, with the type of `wrt[i]` (zeros where the loss does not
    /// depend on it).
    pub grads: Vec<NodeId>,
}

/// Differentiates the scalar `loss` with respect to each node of `wrt`.
///
/// ```
/// use kiln_ir::{DType, Graph, Op, ReduceOp, TensorType, BinaryOp};
/// // loss = sum(x * x); d loss / dx = 2x
/// let mut g = Graph::new("square");
/// let x = g.input("x", TensorType::new(DType::F32, [3])).unwrap();
/// let sq = g.add(Op::Binary(BinaryOp::Mul), &[x, x]).unwrap();
/// let loss = g.add(Op::Reduce { kind: ReduceOp::Sum, axes: vec![0], keepdims: false }, &[sq]).unwrap();
/// let grads = kiln_passes::autodiff::grad(&g, loss, &[x]).unwrap();
/// assert_eq!(grads.graph.node(grads.grads[0]).ty, TensorType::new(DType::F32, [3]));
/// ```
pub fn grad(graph: &Graph, loss: NodeId, wrt: &[NodeId]) -> Result<Gradients, AutodiffError> {
    for &n in wrt.iter().chain([&loss]) {
        if !graph.contains(n) {
            return Err(AutodiffError::UnknownNode(n));
        }
    }
    let loss_ty = graph.node(loss).ty.clone();
    if !loss_ty.dtype.is_float() || loss_ty.shape.rank() != 0 {
        return Err(AutodiffError::LossNotScalar {
            node: loss,
            ty: loss_ty,
        });
    }
    for &w in wrt {
        let ty = &graph.node(w).ty;
        if !ty.dtype.is_float() {
            return Err(AutodiffError::NotFloat {
                node: w,
                ty: ty.clone(),
            });
        }
    }

    let order = graph.topo_order()?;
    let order_pos: HashMap<NodeId, usize> =
        order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    // Nodes whose value depends on a differentiated node through float values.
    let mut depends: HashSet<NodeId> = wrt.iter().copied().collect();
    for &n in &order {
        if graph.node(n).ty.dtype.is_float()
            && graph.operands(n).iter().any(|o| depends.contains(o))
        {
            depends.insert(n);
        }
    }
    // Nodes the loss depends on.
    let mut feeds_loss: HashSet<NodeId> = HashSet::from([loss]);
    for &n in order.iter().rev() {
        if feeds_loss.contains(&n) {
            feeds_loss.extend(graph.operands(n));
        }
    }
    let on_path = |n: &NodeId| depends.contains(n) && feeds_loss.contains(n);

    let mut out = graph.clone();
    let mut e = Emitter::new(&mut out);
    let mut pending: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
    let mut adjoint: HashMap<NodeId, NodeId> = HashMap::new();
    if on_path(&loss) {
        let one = e.graph.constant(HostTensor::scalar(loss_ty.dtype, 1.0));
        pending.insert(loss, vec![one]);
    }
    // A loop's results are differentiated together, once the sweep has passed all
    // of them (at the one that comes first).
    let (loops, loop_of) = crate::loops::loops(graph, &order);
    let mut loop_adjs: Vec<Vec<Option<NodeId>>> =
        loops.iter().map(|l| vec![None; l.nodes.len()]).collect();
    for &n in order.iter().rev() {
        let adj = match pending.remove(&n) {
            Some(parts) => {
                let mut adj = parts[0];
                for &p in &parts[1..] {
                    adj = e.add(adj, p)?;
                }
                adjoint.insert(n, adj);
                Some(adj)
            }
            None => None,
        };
        if let (Some(&i), Op::Scan(s)) = (loop_of.get(&n), &graph.node(n).op) {
            loop_adjs[i][s.result] = adj;
            let l = &loops[i];
            let first = l
                .nodes
                .iter()
                .flatten()
                .all(|&m| m == n || order_pos[&m] > order_pos[&n]);
            if first && loop_adjs[i].iter().any(Option::is_some) {
                // One reverse loop gives every operand's gradient at once.
                let grads = scan::scan_vjp(&mut e, l, &loop_adjs[i])?;
                for (&o, g) in l.operands.iter().zip(grads) {
                    if let (true, Some(g)) = (on_path(&o), g) {
                        pending.entry(o).or_default().push(g);
                    }
                }
            }
            continue;
        }
        let Some(adj) = adj else {
            continue;
        };
        let operands = graph.operands(n);
        for (i, &o) in operands.iter().enumerate() {
            if !on_path(&o) {
                continue;
            }
            let node = Node {
                id: n,
                op: &graph.node(n).op,
                operands: &operands,
            };
            if let Some(c) = vjp(&mut e, &node, i, adj)? {
                pending.entry(o).or_default().push(c);
            }
        }
    }
    let mut grads = Vec::with_capacity(wrt.len());
    for &w in wrt {
        grads.push(match adjoint.get(&w) {
            Some(&a) => a,
            None => {
                let ty = graph.node(w).ty.clone();
                e.splat(0.0, &ty)?
            }
        });
    }
    Ok(Gradients { graph: out, grads })
}

/// The node being differentiated.
struct Node<'a> {
    id: NodeId,
    op: &'a Op,
    operands: &'a [NodeId],
}

/// The contribution of `node`'s adjoint `g` to the adjoint of its operand `i`, or
/// `None` where the derivative is zero everywhere it exists (piecewise-constant ops).
fn vjp(e: &mut Emitter, node: &Node, i: usize, g: NodeId) -> Result<Option<NodeId>, AutodiffError> {
    let y = node.id;
    let x = |k: usize| node.operands[k];
    let not_diff = |reason| AutodiffError::NotDifferentiable {
        node: node.id,
        op: node.op.mnemonic().to_string(),
        operand: i,
        reason,
    };
    let r: NodeId = match node.op {
        Op::Input | Op::Param | Op::Const(_) => unreachable!("leaves have no operands"),
        Op::Unary(k) => match unary_vjp(e, *k, x(0), y, g)? {
            Some(c) => c,
            None => return Ok(None),
        },
        Op::Binary(k) => binary_vjp(e, *k, x(0), x(1), y, i, g)?,
        // Piecewise constant: the mask changes only on a measure-zero set.
        Op::Compare(_) | Op::ArgMax { .. } | Op::OneHot { .. } | Op::RandomUniform { .. } => {
            return Ok(None);
        }
        // By definition.
        Op::StopGradient => return Ok(None),
        Op::Select => {
            if i == 0 {
                return Ok(None);
            }
            let zero = e.splat(0.0, &e.ty(g).clone())?;
            let (a, b) = if i == 1 { (g, zero) } else { (zero, g) };
            e.select(x(0), a, b)?
        }
        Op::Cast(_) => {
            let from = e.ty(x(0)).dtype;
            e.cast(g, from)?
        }
        Op::Broadcast(_) => {
            let shape = e.ty(x(0)).shape.clone();
            e.sum_to(g, &shape)?
        }
        Op::Reshape(_) => {
            let shape = e.ty(x(0)).shape.clone();
            e.reshape(g, shape)?
        }
        Op::Transpose(perm) => {
            let mut inv = vec![0; perm.len()];
            for (o, &p) in perm.iter().enumerate() {
                inv[p] = o;
            }
            e.transpose(g, inv)?
        }
        Op::Slice { start, end, step } => {
            let shape = e.ty(x(0)).shape.clone();
            unslice(e, g, &shape, start, end, step)?
        }
        Op::Concat { axis } => {
            let offset: usize = node.operands[..i]
                .iter()
                .map(|&o| e.ty(o).shape.dim(*axis))
                .sum();
            let part = e.ty(x(i)).shape.clone();
            let gs = e.ty(g).shape.clone();
            let mut start = vec![0; gs.rank()];
            let mut end = gs.dims().to_vec();
            start[*axis] = offset;
            end[*axis] = offset + part.dim(*axis);
            let step = vec![1; gs.rank()];
            e.op(Op::Slice { start, end, step }, &[g])?
        }
        Op::Pad { low, .. } => {
            let shape = e.ty(x(0)).shape.clone();
            let end = low.iter().zip(shape.dims()).map(|(l, d)| l + d).collect();
            let step = vec![1; shape.rank()];
            e.op(
                Op::Slice {
                    start: low.clone(),
                    end,
                    step,
                },
                &[g],
            )?
        }
        Op::Reduce {
            kind,
            axes,
            keepdims,
        } => reduce_vjp(e, *kind, axes, *keepdims, x(0), y, g)?,
        Op::MatMul => {
            if i == 0 {
                let bt = e.transpose_last2(x(1))?;
                e.op(Op::MatMul, &[g, bt])?
            } else {
                let at = e.transpose_last2(x(0))?;
                e.op(Op::MatMul, &[at, g])?
            }
        }
        Op::Conv2d(c) => {
            if i == 0 {
                let input = e.ty(x(0)).shape.clone();
                conv_input_grad(e, g, x(1), c, &input)?
            } else {
                conv_weight_grad(e, x(0), g, x(1), c)?
            }
        }
        Op::ConvTranspose2d { conv, .. } => {
            // conv_transpose2d(y, w) is the adjoint of conv2d(., w), so its own adjoint
            // w.r.t. y is conv2d(g, w), and w.r.t. w is the weight gradient of that conv.
            if i == 0 {
                e.op(Op::Conv2d(*conv), &[g, x(1)])?
            } else {
                conv_weight_grad(e, g, x(0), x(1), conv)?
            }
        }
        Op::Conv2dWeightGrad { conv, .. } => {
            // Bilinear: <wgrad(x, dy), G> = <conv2d(x, G), dy> = <x, conv_transpose2d(dy, G)>.
            if i == 0 {
                let input = e.ty(x(0)).shape.clone();
                conv_input_grad(e, x(1), g, conv, &input)?
            } else {
                e.op(Op::Conv2d(*conv), &[x(0), g])?
            }
        }
        Op::Pool2d(p) => e.op(Op::Pool2dGrad(*p), &[x(0), g])?,
        Op::Scan(_) => unreachable!("grad differentiates loops as a whole (scan::scan_vjp)"),
        // The loss is the sum of the processes' losses, and each process's input
        // reaches every process's output: the cotangent is summed across them too.
        Op::AllReduce => e.op(Op::AllReduce, &[g])?,
        Op::Pool2dGrad(p) => match (p.kind, i) {
            // The routing of max pooling is piecewise constant in x; average pooling
            // does not depend on x at all.
            (_, 0) => return Ok(None),
            // avg_pool2d_grad is the transpose of the linear map avg_pool2d.
            (PoolKind::Avg, _) => e.op(Op::Pool2d(*p), &[g])?,
            (PoolKind::Max, _) => {
                return Err(not_diff(
                    "the adjoint of max-pool routing (a gather by argmax) is not an op yet",
                ));
            }
        },
        Op::Gather => {
            if i == 1 {
                return Ok(None);
            }
            let rows = e.ty(x(0)).shape.dim(0);
            e.op(Op::ScatterAdd { rows }, &[x(1), g])?
        }
        Op::ScatterAdd { .. } => {
            if i == 0 {
                return Ok(None);
            }
            e.op(Op::Gather, &[g, x(0)])?
        }
        Op::Fma => match i {
            0 => e.mul(g, x(1))?,
            1 => e.mul(g, x(0))?,
            _ => g,
        },
        Op::MatMulBias { relu } => {
            // The relu mask is taken from the output: y > 0 exactly where the
            // pre-activation is, so the pre-activation need not be kept.
            let g = if *relu {
                let ty = e.ty(y).clone();
                let zero = e.splat(0.0, &ty)?;
                let m = e.cmp(CmpOp::Gt, y, zero)?;
                e.select(m, g, zero)?
            } else {
                g
            };
            match i {
                0 => {
                    let bt = e.transpose_last2(x(1))?;
                    e.op(Op::MatMul, &[g, bt])?
                }
                1 => {
                    let at = e.transpose_last2(x(0))?;
                    e.op(Op::MatMul, &[at, g])?
                }
                _ => {
                    let bias = e.ty(x(2)).shape.clone();
                    e.sum_to(g, &bias)?
                }
            }
        }
    };
    Ok(Some(r))
}

fn unary_vjp(
    e: &mut Emitter,
    k: UnaryOp,
    x: NodeId,
    y: NodeId,
    g: NodeId,
) -> Result<Option<NodeId>, GraphError> {
    let ty = e.ty(x).clone();
    let positive = |e: &mut Emitter| -> EmitResult {
        let zero = e.splat(0.0, &ty)?;
        e.cmp(CmpOp::Gt, x, zero)
    };
    Ok(Some(match k {
        UnaryOp::Neg => e.neg(g)?,
        UnaryOp::Exp => e.mul(g, y)?,
        UnaryOp::Log => e.div(g, x)?,
        // d sqrt(x) = 1 / (2 sqrt(x))
        UnaryOp::Sqrt => {
            let h = e.div(g, y)?;
            e.scale(h, 0.5)?
        }
        // d x^(-1/2) = -1/2 x^(-3/2) = -1/2 y^3
        UnaryOp::Rsqrt => {
            let y2 = e.mul(y, y)?;
            let y3 = e.mul(y2, y)?;
            let t = e.mul(g, y3)?;
            e.scale(t, -0.5)?
        }
        // d tanh = 1 - y^2
        UnaryOp::Tanh => {
            let y2 = e.mul(y, y)?;
            let one = e.splat(1.0, &ty)?;
            let d = e.sub(one, y2)?;
            e.mul(g, d)?
        }
        // d erf = 2/sqrt(pi) e^(-x²)
        UnaryOp::Erf => {
            let x2 = e.mul(x, x)?;
            let nx2 = e.neg(x2)?;
            let ex = e.unary(UnaryOp::Exp, nx2)?;
            let d = e.scale(ex, std::f64::consts::FRAC_2_SQRT_PI)?;
            e.mul(g, d)?
        }
        // d sigmoid = y (1 - y)
        UnaryOp::Sigmoid => {
            let one = e.splat(1.0, &ty)?;
            let om = e.sub(one, y)?;
            let d = e.mul(y, om)?;
            e.mul(g, d)?
        }
        UnaryOp::Relu => {
            let m = positive(e)?;
            let zero = e.splat(0.0, &ty)?;
            e.select(m, g, zero)?
        }
        UnaryOp::LeakyRelu(slope) => {
            let m = positive(e)?;
            let s = e.scale(g, slope)?;
            e.select(m, g, s)?
        }
        UnaryOp::Abs => {
            let s = e.unary(UnaryOp::Sign, x)?;
            e.mul(g, s)?
        }
        // d (1/x) = -1/x^2 = -y^2
        UnaryOp::Recip => {
            let y2 = e.mul(y, y)?;
            let t = e.mul(g, y2)?;
            e.neg(t)?
        }
        UnaryOp::Sign => return Ok(None),
    }))
}

fn binary_vjp(
    e: &mut Emitter,
    k: BinaryOp,
    a: NodeId,
    b: NodeId,
    y: NodeId,
    i: usize,
    g: NodeId,
) -> EmitResult {
    let ty = e.ty(a).clone();
    // Max/min send the gradient to the operand that won; ties go to the first.
    let route = |e: &mut Emitter, cmp: CmpOp| -> EmitResult {
        let m = e.cmp(cmp, a, b)?;
        let zero = e.splat(0.0, &ty)?;
        if i == 0 {
            e.select(m, g, zero)
        } else {
            e.select(m, zero, g)
        }
    };
    match (k, i) {
        (BinaryOp::Add, _) => Ok(g),
        (BinaryOp::Sub, 0) => Ok(g),
        (BinaryOp::Sub, _) => e.neg(g),
        (BinaryOp::Mul, 0) => e.mul(g, b),
        (BinaryOp::Mul, _) => e.mul(g, a),
        (BinaryOp::Div, 0) => e.div(g, b),
        // d (a/b) / db = -a/b^2 = -y/b
        (BinaryOp::Div, _) => {
            let t = e.div(y, b)?;
            let t = e.mul(g, t)?;
            e.neg(t)
        }
        (BinaryOp::Max, _) => route(e, CmpOp::Ge),
        (BinaryOp::Min, _) => route(e, CmpOp::Le),
        // d a^b / da = b a^(b-1)
        (BinaryOp::Pow, 0) => {
            let one = e.splat(1.0, &ty)?;
            let bm1 = e.sub(b, one)?;
            let p = e.binary(BinaryOp::Pow, a, bm1)?;
            let t = e.mul(b, p)?;
            e.mul(g, t)
        }
        // d a^b / db = a^b ln a
        (BinaryOp::Pow, _) => {
            let l = e.unary(UnaryOp::Log, a)?;
            let t = e.mul(y, l)?;
            e.mul(g, t)
        }
    }
}

fn reduce_vjp(
    e: &mut Emitter,
    kind: ReduceOp,
    axes: &[usize],
    keepdims: bool,
    x: NodeId,
    y: NodeId,
    g: NodeId,
) -> EmitResult {
    let xs = e.ty(x).clone();
    let kept = Shape::new(kiln_ir::reduced_dims(&xs.shape, axes, true));
    let g_kept = e.reshape(g, kept.clone())?;
    let count: usize = axes.iter().map(|&a| xs.shape.dim(a)).product();
    match kind {
        ReduceOp::Sum => e.broadcast(g_kept, xs.shape.clone()),
        ReduceOp::Mean => {
            let gb = e.broadcast(g_kept, xs.shape.clone())?;
            e.scale(gb, 1.0 / count as f64)
        }
        ReduceOp::Max | ReduceOp::Min => {
            // The gradient is shared evenly among the elements equal to the extreme.
            let _ = keepdims;
            let y_kept = e.reshape(y, kept)?;
            let yb = e.broadcast(y_kept, xs.shape.clone())?;
            let hit = e.cmp(CmpOp::Eq, x, yb)?;
            let hit = e.cast(hit, xs.dtype)?;
            let n = e.sum(hit, axes.to_vec(), true)?;
            let share = e.div(g_kept, n)?;
            let sb = e.broadcast(share, xs.shape.clone())?;
            e.mul(hit, sb)
        }
    }
}

/// The gradient of `conv2d(x, w)` w.r.t. `x` (of shape `input`), given the output
/// gradient `dy`: a transposed convolution whose `output_padding` restores the rows
/// and columns a strided convolution skipped.
fn conv_input_grad(
    e: &mut Emitter,
    dy: NodeId,
    w: NodeId,
    c: &Conv2dAttrs,
    input: &Shape,
) -> EmitResult {
    let ys = e.ty(dy).shape.clone();
    let ws = e.ty(w).shape.clone();
    let output_padding = [0, 1].map(|a| {
        let covered = (ys.dim(2 + a) - 1) * c.stride[a] + c.dilation[a] * (ws.dim(2 + a) - 1) + 1;
        input.dim(2 + a) + 2 * c.padding[a] - covered
    });
    e.op(
        Op::ConvTranspose2d {
            conv: *c,
            output_padding,
        },
        &[dy, w],
    )
}

/// The gradient w.r.t. the weight `w` of the convolution (attributes `c`) of `x`
/// whose output gradient is `dy`.
fn conv_weight_grad(
    e: &mut Emitter,
    x: NodeId,
    dy: NodeId,
    w: NodeId,
    c: &Conv2dAttrs,
) -> EmitResult {
    let ws = e.ty(w).shape.clone();
    let kernel = [ws.dim(2), ws.dim(3)];
    e.op(Op::Conv2dWeightGrad { conv: *c, kernel }, &[x, dy])
}

/// The adjoint of a strided slice: `g` placed back at the sliced positions of a
/// zero tensor of `shape`. Per strided axis, zeros are interleaved by reshaping to
/// `[.., m, 1, ..]` and padding to `[.., m, step, ..]`; then one pad restores the
/// borders.
fn unslice(
    e: &mut Emitter,
    g: NodeId,
    shape: &Shape,
    start: &[usize],
    end: &[usize],
    step: &[usize],
) -> EmitResult {
    let rank = shape.rank();
    let mut cur = g;
    for a in 0..rank {
        let s = step[a];
        let dims = e.ty(cur).shape.dims().to_vec();
        let m = dims[a];
        if s == 1 || m == 0 {
            continue;
        }
        let mut split = dims.clone();
        split.insert(a + 1, 1);
        let r = e.reshape(cur, Shape::new(split.clone()))?;
        let mut high = vec![0; rank + 1];
        high[a + 1] = s - 1;
        let p = e.op(
            Op::Pad {
                low: vec![0; rank + 1],
                high,
                value: 0.0,
            },
            &[r],
        )?;
        let mut merged = dims.clone();
        merged[a] = m * s;
        let r = e.reshape(p, Shape::new(merged.clone()))?;
        // Keep (m-1)*s + 1 elements: the last kept value, not the zeros after it.
        let mut stop = merged.clone();
        stop[a] = (m - 1) * s + 1;
        cur = e.op(
            Op::Slice {
                start: vec![0; rank],
                end: stop,
                step: vec![1; rank],
            },
            &[r],
        )?;
    }
    let dims = e.ty(cur).shape.dims().to_vec();
    let low = start.to_vec();
    let high: Vec<usize> = (0..rank)
        .map(|a| shape.dim(a) - start[a] - dims[a])
        .collect();
    let _ = end;
    if low.iter().chain(&high).all(|&p| p == 0) {
        return Ok(cur);
    }
    e.op(
        Op::Pad {
            low,
            high,
            value: 0.0,
        },
        &[cur],
    )
}
