//! Loop-carried sums move after the loop: a carry that only accumulates,
//! `acc' = acc + e_t`, ends as `acc_0 + Σ_t e_t`, and when `e_t` is linear in
//! per-step products the sum is one product over all steps. A backward loop
//! accumulates the gradients of the constants this way (`dW += h_tᵀ dz_t` for an
//! RNN's recurrent weights, `db += Σ_rows dz_t` for its bias): the loop then keeps
//! only `h_t` and `dz_t` per step, and one GEMM `Hᵀ DZ` over all steps' rows
//! replaces a small GEMM and an update of the whole weight-sized carry per step.
//!
//! `e_t` sinks when it is built from sums, transposes, reshapes, sum reductions and
//! products `P_tᵀ Q_t` of matrices: each `P_t`, `Q_t` becomes a stacked result of
//! the loop (or is a stacked input already), and the sum is computed from those.

use std::collections::HashMap;
use std::sync::Arc;

use kiln_ir::{BinaryOp, Body, Graph, GraphError, NodeId, Op, Output, ReduceOp, Scan, Shape};

use crate::loops::{Loop, rewrite_loops};

/// `graph` with the accumulating carries of its loops replaced by sums after the
/// loop, and how many carries went. Without any, `None`.
pub(crate) fn sunk(graph: &Graph) -> Result<Option<(Graph, usize)>, GraphError> {
    rewrite_loops(graph, sink_loop)
}

/// A sum over the steps of a body value, in terms of per-step values the loop
/// will return stacked.
#[derive(Clone, Debug)]
enum Term {
    /// `Σ_t P_tᵀ Q_t` of `[m, a]` and `[m, b]` matrices.
    Product(NodeId, NodeId),
    /// `Σ_t sum(P_t, axes)`.
    Sum(NodeId, Vec<usize>),
    Add(Box<Term>, Box<Term>),
    Transpose(Box<Term>, Vec<usize>),
    Reshape(Box<Term>, Shape),
}

/// `e` as a [`Term`], if it is linear in products and sums of per-step values
/// that do not involve `acc`.
fn term(body: &Graph, e: NodeId, acc: NodeId) -> Option<Term> {
    let ops = body.operands(e);
    if ops.contains(&acc) {
        return None;
    }
    let is_swap = |n: NodeId| matches!(&body.node(n).op, Op::Transpose(p) if *p == [1, 0]);
    Some(match &body.node(e).op {
        Op::Binary(BinaryOp::Add) => Term::Add(
            Box::new(term(body, ops[0], acc)?),
            Box::new(term(body, ops[1], acc)?),
        ),
        Op::Transpose(p) => Term::Transpose(Box::new(term(body, ops[0], acc)?), p.clone()),
        Op::Reshape(s) => Term::Reshape(Box::new(term(body, ops[0], acc)?), s.clone()),
        Op::Reduce {
            kind: ReduceOp::Sum,
            axes,
            keepdims: false,
        } if ops[0] != acc => Term::Sum(ops[0], axes.clone()),
        Op::MatMul if body.node(e).ty.shape.rank() == 2 && is_swap(ops[0]) => {
            let p = body.operands(ops[0])[0];
            if p == acc || ops[1] == acc {
                return None;
            }
            Term::Product(p, ops[1])
        }
        _ => return None,
    })
}

/// The per-step values `t` reads.
fn leaves(t: &Term, out: &mut Vec<NodeId>) {
    match t {
        Term::Product(p, q) => out.extend([*p, *q]),
        Term::Sum(p, _) => out.push(*p),
        Term::Add(a, b) => {
            leaves(a, out);
            leaves(b, out);
        }
        Term::Transpose(a, _) | Term::Reshape(a, _) => leaves(a, out),
    }
}

/// The outer node for `t`, given the stacked value of each leaf.
fn emit(
    out: &mut Graph,
    t: &Term,
    stacked: &HashMap<NodeId, NodeId>,
) -> Result<NodeId, GraphError> {
    let dims = |out: &Graph, n: NodeId| out.node(n).ty.shape.dims().to_vec();
    Ok(match t {
        Term::Product(p, q) => {
            // [T, m, a] and [T, m, b] as [T·m, a] and [T·m, b]: Σ_t P_tᵀ Q_t = Pᵀ Q.
            let (ps, qs) = (stacked[p], stacked[q]);
            let (pd, qd) = (dims(out, ps), dims(out, qs));
            let rows = pd[0] * pd[1];
            let pr = out.add(Op::Reshape(Shape::new(vec![rows, pd[2]])), &[ps])?;
            let qr = out.add(Op::Reshape(Shape::new(vec![rows, qd[2]])), &[qs])?;
            let pt = out.add(Op::Transpose(vec![1, 0]), &[pr])?;
            out.add(Op::MatMul, &[pt, qr])?
        }
        Term::Sum(p, axes) => {
            let axes = std::iter::once(0)
                .chain(axes.iter().map(|a| a + 1))
                .collect();
            out.add(
                Op::Reduce {
                    kind: ReduceOp::Sum,
                    axes,
                    keepdims: false,
                },
                &[stacked[p]],
            )?
        }
        Term::Add(a, b) => {
            let (a, b) = (emit(out, a, stacked)?, emit(out, b, stacked)?);
            out.add(Op::Binary(BinaryOp::Add), &[a, b])?
        }
        Term::Transpose(a, p) => {
            let a = emit(out, a, stacked)?;
            out.add(Op::Transpose(p.clone()), &[a])?
        }
        Term::Reshape(a, s) => {
            let a = emit(out, a, stacked)?;
            out.add(Op::Reshape(s.clone()), &[a])?
        }
    })
}

/// Sinks the accumulating carries of loop `l` in `out`; returns how many.
fn sink_loop(out: &mut Graph, l: &Loop) -> Result<usize, GraphError> {
    let s = &l.scan;
    let body = &s.body.0;
    let (c, x) = (s.carries, s.xs);
    let args = body.args();
    let outputs: Vec<NodeId> = body.outputs().iter().map(|o| o.node).collect();
    // Carries with `acc' = acc + e` (either order), `acc` read by nothing else.
    let mut sinks: Vec<(usize, Term)> = Vec::new();
    for (i, &acc) in args.iter().enumerate().take(c) {
        let new = outputs[i];
        let Op::Binary(BinaryOp::Add) = body.node(new).op else {
            continue;
        };
        let ops = body.operands(new);
        let e = match ops[..] {
            [a, e] if a == acc && e != acc => e,
            [e, a] if a == acc && e != acc => e,
            _ => continue,
        };
        let only_here = body.users(acc) == [new] && !outputs.contains(&acc);
        if let (true, Some(t)) = (only_here, term(body, e, acc)) {
            sinks.push((i, t));
        }
    }
    // The new carry must be read only as the next carry (not by a `ys`).
    sinks.retain(|(i, _)| outputs.iter().filter(|&&o| o == outputs[*i]).count() == 1);
    if sinks.is_empty() {
        return Ok(0);
    }

    // The leaves come out stacked: stacked inputs as they are, the other values
    // as further `ys`.
    let mut leaf_nodes = Vec::new();
    for (_, t) in &sinks {
        leaves(t, &mut leaf_nodes);
    }
    leaf_nodes.dedup();
    let removed: Vec<usize> = sinks.iter().map(|(i, _)| *i).collect();
    let kept_carries: Vec<usize> = (0..c).filter(|i| !removed.contains(i)).collect();
    let mut extra: Vec<NodeId> = Vec::new();
    for &n in &leaf_nodes {
        let is_x = args[c..c + x].contains(&n);
        if !is_x && !extra.contains(&n) {
            extra.push(n);
        }
    }

    // The new body: without the sunk carries, with the leaves as further `ys`.
    let mut nb = Graph::new(body.name());
    let mut map: HashMap<NodeId, NodeId> = HashMap::new();
    for (i, &a) in args.iter().enumerate() {
        if removed.contains(&i) {
            continue;
        }
        let name = body.node(a).name.clone().unwrap_or(format!("arg{i}"));
        map.insert(a, nb.input(&name, body.node(a).ty.clone())?);
    }
    for n in body.topo_order()? {
        if map.contains_key(&n) || args.contains(&n) {
            continue;
        }
        let ops = body.operands(n);
        if ops.iter().any(|o| !map.contains_key(o)) {
            continue; // reads a sunk carry: the accumulation itself
        }
        let operands: Vec<NodeId> = ops.iter().map(|o| map[o]).collect();
        map.insert(n, nb.add(body.node(n).op.clone(), &operands)?);
    }
    let mut new_outputs: Vec<Output> = Vec::new();
    for &i in &kept_carries {
        new_outputs.push(Output {
            node: map[&outputs[i]],
            name: body.outputs()[i].name.clone(),
        });
    }
    new_outputs.extend(body.outputs()[c..].iter().map(|o| Output {
        node: map[&o.node],
        name: o.name.clone(),
    }));
    new_outputs.extend(extra.iter().map(|n| Output {
        node: map[n],
        name: None,
    }));
    nb.set_outputs(new_outputs);
    let new_body = Body(Arc::new(crate::eliminate_dead_code(&nb)?));
    let ys = outputs.len() - c;
    let new_scan = |result: usize| {
        Op::Scan(Scan {
            body: new_body.clone(),
            carries: kept_carries.len(),
            result,
            ..s.clone()
        })
    };
    let operands: Vec<NodeId> = l
        .operands
        .iter()
        .enumerate()
        .filter(|(i, _)| !removed.contains(i))
        .map(|(_, &o)| o)
        .collect();
    let k = kept_carries.len();

    // The old results that stay, renumbered.
    for (r, node) in l.nodes.iter().enumerate() {
        let Some(old) = *node else { continue };
        let result = if r < c {
            match kept_carries.iter().position(|&i| i == r) {
                Some(p) => p,
                None => continue,
            }
        } else {
            k + (r - c)
        };
        let new = out.add(new_scan(result), &operands)?;
        out.replace_uses(old, new)?;
    }
    // The sunk carries: initial value plus the sum over the steps.
    let mut stacked: HashMap<NodeId, NodeId> = HashMap::new();
    for &n in &leaf_nodes {
        let node = match args[c..c + x].iter().position(|&a| a == n) {
            Some(j) => l.operands[c + j],
            None => {
                let j = extra.iter().position(|&e| e == n).expect("a further ys");
                out.add(new_scan(k + ys + j), &operands)?
            }
        };
        stacked.insert(n, node);
    }
    for (i, t) in &sinks {
        let Some(old) = l.nodes[*i] else { continue };
        let total = emit(out, t, &stacked)?;
        let new = out.add(Op::Binary(BinaryOp::Add), &[l.operands[*i], total])?;
        out.replace_uses(old, new)?;
    }
    Ok(sinks.len())
}
