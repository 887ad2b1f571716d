//! Layout canonical forms: chains of movement ops collapse, reductions of
//! broadcasts shrink, elementwise ops move before broadcasts (computing on the small
//! tensor), and a transposed product is a product of transposes.

use std::sync::OnceLock;

use egg::Id;
use kiln_ir::{BinaryOp, Op, OpKind, ReduceOp, Shape, reduced_dims};

use super::{Rule, add, broadcast, nodes, reshape, splat_like, ty};
use crate::optimize::analysis::TensorGraph;
use crate::optimize::lang::ENode;

static REDUCTIONS: OnceLock<Vec<OpKind>> = OnceLock::new();
static UNARY: OnceLock<Vec<OpKind>> = OnceLock::new();
static BINARY: OnceLock<Vec<OpKind>> = OnceLock::new();

/// Every kind in the op table whose sample `is_member`: rules over a whole family
/// cover the kinds added to it later without a list to update.
fn family(cell: &'static OnceLock<Vec<OpKind>>, is_member: fn(&Op) -> bool) -> &'static [OpKind] {
    cell.get_or_init(|| {
        OpKind::ALL
            .iter()
            .copied()
            .filter(|k| is_member(&k.sample()))
            .collect()
    })
}

/// The rules of this group.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "layout/transpose",
            roots: &[OpKind::Transpose],
            matcher: transpose_rules,
        },
        Rule {
            name: "layout/reshape",
            roots: &[OpKind::Reshape],
            matcher: reshape_rules,
        },
        Rule {
            name: "layout/broadcast",
            roots: &[OpKind::Broadcast],
            matcher: broadcast_rules,
        },
        Rule {
            name: "layout/reduce-broadcast",
            roots: family(&REDUCTIONS, |op| matches!(op, Op::Reduce { .. })),
            matcher: reduce_broadcast,
        },
        Rule {
            name: "layout/unary-broadcast",
            roots: family(&UNARY, |op| matches!(op, Op::Unary(_) | Op::Cast(_))),
            matcher: unary_broadcast,
        },
        Rule {
            name: "layout/binary-broadcast",
            roots: family(&BINARY, |op| matches!(op, Op::Binary(_))),
            matcher: binary_broadcast,
        },
        Rule {
            name: "layout/matmul-transpose",
            roots: &[OpKind::MatMul],
            matcher: matmul_transposed,
        },
        Rule {
            name: "layout/pads-concat",
            roots: &[OpKind::Add],
            matcher: pads_concat,
        },
        Rule {
            name: "layout/concat-concat",
            roots: &[OpKind::Concat],
            matcher: concat_concat,
        },
    ]
}

/// `concat(concat(a, b), c) = concat(a, b, c)` along one axis: one copy, not two.
fn concat_concat(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let Op::Concat { axis } = n.op() else {
        return vec![];
    };
    let mut out = Vec::new();
    for (i, &c) in n.children().iter().enumerate() {
        for inner in nodes(eg, c, OpKind::Concat) {
            if inner.op() != n.op() {
                continue;
            }
            let mut parts = n.children()[..i].to_vec();
            parts.extend(inner.children());
            parts.extend(&n.children()[i + 1..]);
            out.extend(add(eg, Op::Concat { axis: *axis }, parts));
        }
    }
    out
}

/// `pad(a) + pad(b) = pad(concat(a, b))` when both pad with zeros and `a`'s region
/// ends where `b`'s begins along one axis, the same elsewhere: the gradient of
/// slices that cut a tensor into parts (an LSTM's four gates) is one concatenation
/// instead of a sum of padded copies. (As `x + 0 -> x`, a `-0` stays `-0`.)
fn pads_concat(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let (l, r) = (n.children()[0], n.children()[1]);
    let (pl, pr) = (nodes(eg, l, OpKind::Pad), nodes(eg, r, OpKind::Pad));
    let mut out = Vec::new();
    for p in &pl {
        for q in &pr {
            out.extend(join_pads(eg, p, q));
            out.extend(join_pads(eg, q, p));
        }
    }
    out
}

/// `pad(a) + pad(b)` as one pad of `concat(a, b)`, if `a` comes right before `b`.
fn join_pads(eg: &mut TensorGraph, p: &ENode, q: &ENode) -> Option<Id> {
    let (
        Op::Pad {
            low: l1,
            high: h1,
            value: v1,
        },
        Op::Pad {
            low: l2,
            high: h2,
            value: v2,
        },
    ) = (p.op(), q.op())
    else {
        return None;
    };
    if *v1 != 0.0 || *v2 != 0.0 {
        return None;
    }
    let (a, b) = (p.children()[0], q.children()[0]);
    let differ: Vec<usize> = (0..l1.len())
        .filter(|&e| l1[e] != l2[e] || h1[e] != h2[e])
        .collect();
    let [d] = differ[..] else { return None };
    if l1[d] + ty(eg, a).shape.dim(d) != l2[d] {
        return None;
    }
    let joined = add(eg, Op::Concat { axis: d }, vec![a, b])?;
    let mut high = h1.clone();
    high[d] = h2[d];
    if l1.iter().chain(&high).all(|&w| w == 0) {
        return Some(joined);
    }
    add(
        eg,
        Op::Pad {
            low: l1.clone(),
            high,
            value: 0.0,
        },
        vec![joined],
    )
}

fn is_identity(perm: &[usize]) -> bool {
    perm.iter().enumerate().all(|(i, &p)| i == p)
}

/// The permutation swapping the last two of `rank` axes.
fn swap_last2(rank: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..rank).collect();
    p.swap(rank - 2, rank - 1);
    p
}

fn transpose_rules(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let Op::Transpose(q) = n.op() else {
        return vec![];
    };
    let x = n.children()[0];
    if is_identity(q) {
        return vec![x];
    }
    let mut out = Vec::new();
    // transpose(transpose(y, p), q) = transpose(y, p∘q): output axis j is y's p[q[j]].
    for m in nodes(eg, x, OpKind::Transpose) {
        let Op::Transpose(p) = m.op() else { continue };
        let y = m.children()[0];
        let r: Vec<usize> = q.iter().map(|&j| p[j]).collect();
        if is_identity(&r) {
            out.push(y);
        } else {
            out.extend(add(eg, Op::Transpose(r), vec![y]));
        }
    }
    // transpose(a @ b) = b^T @ a^T when the transpose swaps the last two axes.
    let rank = q.len();
    if rank >= 2 && *q == swap_last2(rank) {
        for m in nodes(eg, x, OpKind::MatMul) {
            let (a, b) = (m.children()[0], m.children()[1]);
            let Some(bt) = add(eg, Op::Transpose(q.clone()), vec![b]) else {
                continue;
            };
            let Some(at) = add(eg, Op::Transpose(q.clone()), vec![a]) else {
                continue;
            };
            out.extend(add(eg, Op::MatMul, vec![bt, at]));
        }
    }
    out
}

fn matmul_transposed(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    // b^T @ a^T = (a @ b)^T, when both operands are transposes of the last two axes.
    let (bt, at) = (n.children()[0], n.children()[1]);
    let rank = eg[bt].data.ty.shape.rank();
    let swap = swap_last2(rank);
    let mut out = Vec::new();
    for mb in nodes(eg, bt, OpKind::Transpose) {
        if *mb.op() != Op::Transpose(swap.clone()) {
            continue;
        }
        for ma in nodes(eg, at, OpKind::Transpose) {
            if *ma.op() != Op::Transpose(swap.clone()) {
                continue;
            }
            let (a, b) = (ma.children()[0], mb.children()[0]);
            if let Some(ab) = add(eg, Op::MatMul, vec![a, b]) {
                out.extend(add(eg, Op::Transpose(swap.clone()), vec![ab]));
            }
        }
    }
    out
}

/// The rewrites a reshape and a broadcast (`kind`, built by `op`) of `x` to shape
/// `s` share: `None` when `x` already has shape `s` (the op is `x` itself), else
/// `op(y, s)` for every `op(y)` in `x`'s class, since two in a row compose
/// (right-aligned broadcasts too: `op` checks the direct one is valid).
fn composed(
    eg: &mut TensorGraph,
    x: Id,
    s: &Shape,
    kind: OpKind,
    op: fn(&mut TensorGraph, Id, Shape) -> Option<Id>,
) -> Option<Vec<Id>> {
    if eg[x].data.ty.shape == *s {
        return None;
    }
    let mut out = Vec::new();
    for m in nodes(eg, x, kind) {
        out.extend(op(eg, m.children()[0], s.clone()));
    }
    Some(out)
}

fn reshape_rules(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let Op::Reshape(s) = n.op() else {
        return vec![];
    };
    let x = n.children()[0];
    composed(eg, x, s, OpKind::Reshape, reshape).unwrap_or_else(|| vec![x])
}

fn broadcast_rules(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let Op::Broadcast(s) = n.op() else {
        return vec![];
    };
    let x = n.children()[0];
    let Some(mut out) = composed(eg, x, s, OpKind::Broadcast, broadcast) else {
        return vec![x];
    };
    // A broadcast of a reshape that only adds leading unit axes is a broadcast of
    // the source (`[n] -> [1,n] -> [m,n]` is `[n] -> [m,n]`).
    for m in nodes(eg, x, OpKind::Reshape) {
        let y = m.children()[0];
        let ys = eg[y].data.ty.shape.clone();
        let xs = eg[x].data.ty.shape.clone();
        let lead = xs.rank().saturating_sub(ys.rank());
        if xs.rank() >= ys.rank()
            && xs.dims()[..lead].iter().all(|&d| d == 1)
            && xs.dims()[lead..] == *ys.dims()
        {
            out.extend(broadcast(eg, y, s.clone()));
        }
    }
    out
}

/// `reduce(broadcast(x))` over axes that the broadcast created: the reduction sees
/// copies of the same value, so it is `x` (max, min, mean) or `x * count` (sum),
/// reshaped and broadcast to the result's shape.
fn reduce_broadcast(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let Op::Reduce {
        kind,
        axes,
        keepdims,
    } = n.op().clone()
    else {
        return vec![];
    };
    let b = n.children()[0];
    let mut out = Vec::new();
    for m in nodes(eg, b, OpKind::Broadcast) {
        let x = m.children()[0];
        let xt = ty(eg, x);
        let big = eg[b].data.ty.shape.clone();
        let lead = big.rank() - xt.shape.rank();
        // x's dims aligned to the broadcast shape.
        let mut aligned = vec![1; lead];
        aligned.extend_from_slice(xt.shape.dims());
        let expanded = |a: usize| aligned[a] == 1;
        if axes.is_empty() || !axes.iter().all(|&a| expanded(a)) {
            continue;
        }
        let count: usize = axes.iter().map(|&a| big.dim(a)).product();
        if count == 0 {
            continue;
        }
        let scaled = match kind {
            ReduceOp::Sum if count == 1 => Some(x),
            ReduceOp::Sum => {
                let c = splat_like(eg, count as f64, &xt);
                add(eg, Op::Binary(BinaryOp::Mul), vec![x, c])
            }
            // A mean of copies is the value up to rounding of sum/count.
            ReduceOp::Mean | ReduceOp::Max | ReduceOp::Min => Some(x),
        };
        let Some(scaled) = scaled else { continue };
        let small: Vec<usize> = reduced_dims(&Shape::new(aligned.clone()), &axes, keepdims);
        let result = Shape::new(reduced_dims(&big, &axes, keepdims));
        let Some(r) = reshape(eg, scaled, Shape::new(small)) else {
            continue;
        };
        out.extend(broadcast(eg, r, result));
    }
    out
}

/// `f(broadcast(x)) = broadcast(f(x))`: computes on the small tensor.
fn unary_broadcast(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let x = n.children()[0];
    let mut out = Vec::new();
    for m in nodes(eg, x, OpKind::Broadcast) {
        let Op::Broadcast(s) = m.op().clone() else {
            continue;
        };
        if let Some(fx) = add(eg, n.op().clone(), vec![m.children()[0]]) {
            out.extend(add(eg, Op::Broadcast(s), vec![fx]));
        }
    }
    out
}

/// `broadcast(a) ∘ broadcast(b) = broadcast(a ∘ b)` when `a` and `b` have one type,
/// and `broadcast(a) ∘ splat = broadcast(a ∘ splat)`.
fn binary_broadcast(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let (l, r) = (n.children()[0], n.children()[1]);
    let target = eg[l].data.ty.shape.clone();
    let mut out = Vec::new();
    let lb = nodes(eg, l, OpKind::Broadcast);
    let rb = nodes(eg, r, OpKind::Broadcast);
    let mut small_pairs = Vec::new();
    for ml in &lb {
        let a = ml.children()[0];
        for mr in &rb {
            let b = mr.children()[0];
            if eg[a].data.ty == eg[b].data.ty {
                small_pairs.push((a, b));
            }
        }
        if let Some(v) = eg[r].data.splat_f64() {
            let at = ty(eg, a);
            let k = splat_like(eg, v, &at);
            small_pairs.push((a, k));
        }
    }
    if let Some(v) = eg[l].data.splat_f64() {
        for mr in &rb {
            let b = mr.children()[0];
            let bt = ty(eg, b);
            let k = splat_like(eg, v, &bt);
            small_pairs.push((k, b));
        }
    }
    for (a, b) in small_pairs {
        // Only worth it when the operands really are smaller.
        if eg[a].data.ty.shape == target {
            continue;
        }
        if let Some(ab) = add(eg, n.op().clone(), vec![a, b]) {
            out.extend(add(eg, Op::Broadcast(target.clone()), vec![ab]));
        }
    }
    out
}
