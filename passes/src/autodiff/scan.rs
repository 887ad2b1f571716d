//! The vjp of a loop: a reverse loop.
//!
//! The backward loop runs the steps in the opposite order. Its body differentiates
//! the forward body with [`grad`] against the cotangents of the new carries and of
//! the step's `ys`; its carries are the carries' cotangents and the constants'
//! accumulated gradients, its `ys` the gradients of the `xs`. The forward values
//! the gradient reads (residuals: a GRU's gates, an LSTM's cell state) are saved
//! per step by the forward loop, with the carry each step starts from, as extra
//! `ys`; the forward loop's result nodes switch to a body that returns those too,
//! so the forward pass still runs one loop. Views and literals are recomputed.
//!
//! Saving rather than recomputing was measured on W4 (an LSTM tagger, sequence
//! 32, batch 16): recomputing the gates costs a second product `h W` per step
//! and their activations again, about a sixth of the step; saving them costs
//! memory, seven `[batch, hidden]` values per step for an LSTM.
//!
//! All result nodes of one loop are differentiated together, by one backward loop
//! taking every result's cotangent (zero for results nothing differentiates).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kiln_ir::{Body, Graph, NodeId, Op, OpClass, Output, ReduceOp, Scan};

use super::{AutodiffError, grad};
use crate::emit::Emitter;
use crate::loops::Loop;

/// Gradients of loop `l` with respect to each operand (`None` for integer
/// operands), given the cotangent of each result (`None`: zero).
pub(super) fn scan_vjp(
    e: &mut Emitter,
    l: &Loop,
    adjs: &[Option<NodeId>],
) -> Result<Vec<Option<NodeId>>, AutodiffError> {
    let (scan, operands) = (&l.scan, &l.operands[..]);
    let node = l
        .nodes
        .iter()
        .flatten()
        .copied()
        .next()
        .expect("a loop has a node");
    let body = &scan.body.0;
    let (c, x) = (scan.carries, scan.xs);
    let not_diff = |reason| AutodiffError::NotDifferentiable {
        node,
        op: "scan".into(),
        operand: 0,
        reason,
    };
    let arg_ty = |i: usize| body.node(body.args()[i]).ty.clone();
    if (0..c).any(|i| !arg_ty(i).dtype.is_float()) {
        return Err(not_diff("integer carries are not differentiated"));
    }
    let float_consts: Vec<usize> = (c + x..body.args().len())
        .filter(|&i| arg_ty(i).dtype.is_float())
        .collect();
    let float_xs: Vec<usize> = (c..c + x).filter(|&i| arg_ty(i).dtype.is_float()).collect();
    let ys = scan.results() - c;

    // 1. The backward step, reading the forward values it needs (residuals).
    let (step, residuals) = backward_body(body, c, x, ys, &float_xs, &float_consts)?;
    let step = Body(Arc::new(step));

    // 2. The forward loop saves the carry each step starts from and the residuals:
    // its nodes run a body with those as further `ys`.
    let mut saving = (**body).clone();
    let mut outputs = saving.outputs().to_vec();
    outputs.extend(
        body.args()[..c]
            .iter()
            .chain(&residuals)
            .map(|&node| Output { node, name: None }),
    );
    saving.set_outputs(outputs);
    let saving = Body(Arc::new(saving));
    let forward = |result: usize| {
        Op::Scan(Scan {
            body: saving.clone(),
            result,
            ..scan.clone()
        })
    };
    for (r, n) in l.nodes.iter().enumerate() {
        if let Some(n) = *n {
            e.graph.replace_op(n, forward(r))?;
        }
    }
    let mut saved = Vec::with_capacity(c + residuals.len());
    for i in 0..c + residuals.len() {
        saved.push(e.op(forward(c + ys + i), operands)?);
    }

    // 3. The backward loop: cotangents in, gradients out.
    let mut bwd = Vec::new();
    for (i, adj) in adjs.iter().enumerate().take(c) {
        bwd.push(match adj {
            Some(a) => *a,
            None => e.splat(0.0, &arg_ty(i))?,
        });
    }
    for &k in &float_consts {
        bwd.push(e.splat(0.0, &arg_ty(k))?);
    }
    bwd.extend(&saved[..c]);
    bwd.extend(&operands[c..c + x]);
    bwd.extend(&saved[c..]);
    for j in 0..ys {
        let y = &body.node(body.outputs()[c + j].node).ty;
        bwd.push(match adjs[c + j] {
            Some(a) => a,
            None => e.splat(0.0, &y.stacked(scan.length))?,
        });
    }
    bwd.extend(&operands[c + x..]);
    let backward = |result: usize| {
        Op::Scan(Scan {
            body: step.clone(),
            carries: c + float_consts.len(),
            xs: c + x + residuals.len() + ys,
            length: scan.length,
            reverse: !scan.reverse,
            result,
        })
    };
    let mut grads = vec![None; operands.len()];
    for (i, g) in grads.iter_mut().enumerate().take(c) {
        *g = Some(e.op(backward(i), &bwd)?);
    }
    for (j, &k) in float_consts.iter().enumerate() {
        grads[k] = Some(e.op(backward(c + j), &bwd)?);
    }
    for (j, &xi) in float_xs.iter().enumerate() {
        grads[xi] = Some(e.op(backward(c + float_consts.len() + j), &bwd)?);
    }
    Ok(grads)
}

/// The backward step: `(dc..., dk..., c..., x..., dy..., k...) -> (dc_prev...,
/// dk + dk_step..., dx...)` (`dk` for float constants, `dx` for float `xs`).
fn backward_body(
    body: &Graph,
    c: usize,
    x: usize,
    ys: usize,
    float_xs: &[usize],
    float_consts: &[usize],
) -> Result<(Graph, Vec<NodeId>), AutodiffError> {
    let mut g = Graph::new(format!("{}_vjp", body.name()));
    let ty = |n: NodeId| body.node(n).ty.clone();
    let args = body.args();
    let mut dc = Vec::with_capacity(c);
    for (i, &a) in args.iter().enumerate().take(c) {
        dc.push(g.input(&format!("dc{i}"), ty(a))?);
    }
    let mut dk = Vec::with_capacity(float_consts.len());
    for (j, &k) in float_consts.iter().enumerate() {
        dk.push(g.input(&format!("dk{j}"), ty(args[k]))?);
    }
    // The forward body's arguments, mapped to ours: carries and xs, then consts.
    let mut map: HashMap<NodeId, NodeId> = HashMap::new();
    for (i, &a) in args.iter().enumerate().take(c + x) {
        map.insert(a, g.input(&format!("a{i}"), ty(a))?);
    }
    let mut dy = Vec::with_capacity(ys);
    for j in 0..ys {
        dy.push(g.input(&format!("dy{j}"), ty(body.outputs()[c + j].node))?);
    }
    for (i, &a) in args.iter().enumerate().skip(c + x) {
        map.insert(a, g.input(&format!("a{i}"), ty(a))?);
    }
    // Replay the body.
    for n in body.topo_order()? {
        if map.contains_key(&n) {
            continue;
        }
        let operands: Vec<NodeId> = body.operands(n).iter().map(|o| map[o]).collect();
        let new = g.add(body.node(n).op.clone(), &operands)?;
        map.insert(n, new);
    }
    // s = Σ <new carry, dc> + Σ <y, dy>: its gradient is the step's vjp.
    let mut e = Emitter::new(&mut g);
    let mut s: Option<NodeId> = None;
    let pairs: Vec<(NodeId, NodeId)> = (0..c)
        .map(|i| (map[&body.outputs()[i].node], dc[i]))
        .chain((0..ys).map(|j| (map[&body.outputs()[c + j].node], dy[j])))
        .collect();
    for (out, cot) in pairs {
        if !e.ty(out).dtype.is_float() {
            continue;
        }
        let prod = e.mul(out, cot)?;
        let rank = e.ty(prod).shape.rank();
        let sum = e.reduce(ReduceOp::Sum, prod, (0..rank).collect(), false)?;
        s = Some(match s {
            Some(acc) => e.add(acc, sum)?,
            None => sum,
        });
    }
    let wrt: Vec<NodeId> = (0..c)
        .chain(float_consts.iter().copied())
        .chain(float_xs.iter().copied())
        .map(|i| map[&args[i]])
        .collect();
    let (mut g, grads) = match s {
        Some(s) => {
            let r = grad(&g, s, &wrt)?;
            (r.graph, r.grads)
        }
        // Nothing float flows out: every gradient is zero.
        None => {
            let mut zeros = Vec::with_capacity(wrt.len());
            for &w in &wrt {
                let t = e.ty(w).clone();
                zeros.push(e.splat(0.0, &t)?);
            }
            (g, zeros)
        }
    };
    let mut e = Emitter::new(&mut g);
    let mut outs: Vec<NodeId> = grads[..c].to_vec();
    for (j, &d) in dk.iter().enumerate() {
        outs.push(e.add(d, grads[c + j])?);
    }
    outs.extend(&grads[c + float_consts.len()..]);
    g.set_outputs(
        outs.into_iter()
            .map(|node| Output { node, name: None })
            .collect(),
    );
    save_residuals(&g, body, &map, c + float_consts.len() + c + x)
}

/// The backward step `g` reading the forward values it needs (its residuals)
/// from further stacked inputs, saved by the forward loop, instead of replaying
/// the body: the arguments become `(dc..., dk..., c..., x..., r..., dy..., k...)`
/// (`r` inserted at position `at`). Returns it with the residuals as nodes of the
/// forward `body`. Views and literals are not saved (recomputing them is free),
/// nor is anything the arguments already hold.
fn save_residuals(
    g: &Graph,
    body: &Graph,
    map: &HashMap<NodeId, NodeId>,
    at: usize,
) -> Result<(Graph, Vec<NodeId>), AutodiffError> {
    let replayed: HashMap<NodeId, NodeId> = map
        .iter()
        .filter(|(f, _)| !body.node(**f).op.is_argument())
        .map(|(&f, &r)| (r, f))
        .collect();
    let mut live: HashSet<NodeId> = HashSet::new();
    let mut stack: Vec<NodeId> = g.outputs().iter().map(|o| o.node).collect();
    while let Some(n) = stack.pop() {
        if live.insert(n) {
            stack.extend(g.operands(n));
        }
    }
    let outputs: HashSet<NodeId> = g.outputs().iter().map(|o| o.node).collect();
    let mut residuals: Vec<NodeId> = Vec::new();
    for n in body.topo_order()? {
        let Some(&r) = map.get(&n) else { continue };
        let op = &body.node(n).op;
        let free =
            op.is_argument() || matches!(op.class(), OpClass::View { .. } | OpClass::Literal);
        let read = outputs.contains(&r)
            || g.users(r)
                .iter()
                .any(|u| live.contains(u) && !replayed.contains_key(u));
        if !free && live.contains(&r) && read {
            residuals.push(n);
        }
    }
    let mut out = Graph::new(g.name());
    let mut new: HashMap<NodeId, NodeId> = HashMap::new();
    let args = g.args();
    let arg = |out: &mut Graph, new: &mut HashMap<NodeId, NodeId>, i: usize| {
        let a = args[i];
        let name = g.node(a).name.clone().unwrap_or_else(|| format!("a{i}"));
        new.insert(a, out.input(&name, g.node(a).ty.clone())?);
        Ok::<_, AutodiffError>(())
    };
    for i in 0..at {
        arg(&mut out, &mut new, i)?;
    }
    for (j, &f) in residuals.iter().enumerate() {
        new.insert(
            map[&f],
            out.input(&format!("r{j}"), body.node(f).ty.clone())?,
        );
    }
    for i in at..args.len() {
        arg(&mut out, &mut new, i)?;
    }
    for n in g.topo_order()? {
        if new.contains_key(&n) || !live.contains(&n) {
            continue;
        }
        let operands: Vec<NodeId> = g.operands(n).iter().map(|o| new[o]).collect();
        new.insert(n, out.add(g.node(n).op.clone(), &operands)?);
    }
    out.set_outputs(
        g.outputs()
            .iter()
            .map(|o| Output {
                node: new[&o.node],
                name: o.name.clone(),
            })
            .collect(),
    );
    Ok((out, residuals))
}
