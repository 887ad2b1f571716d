//! The vjp of a loop: a reverse loop.
//!
//! The forward loop saves the carry each step starts from (extra `ys`): its result
//! nodes are switched to a body that returns those too, so the forward pass runs
//! one loop. The backward loop runs the steps in the opposite order. Its body
//! replays the forward body on the saved carry, the step's `xs` and the constants
//! (intermediates are recomputed, not stored: memory stays one carry per step), and
//! differentiates it with [`grad`] against the cotangents of the new carries and of
//! the step's `ys`. Its carries are the carries' cotangents and the constants'
//! accumulated gradients; its `ys` are the gradients of the `xs`.
//!
//! All result nodes of one loop are differentiated together, by one backward loop
//! taking every result's cotangent (zero for results nothing differentiates).

use std::collections::HashMap;
use std::sync::Arc;

use kiln_ir::{Body, Graph, NodeId, Op, Output, ReduceOp, Scan};

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

    // 1. The forward loop saves the carry each step starts from: its nodes run a
    // body with those as further `ys`.
    let mut saving = (**body).clone();
    let mut outputs = saving.outputs().to_vec();
    outputs.extend((0..c).map(|i| Output {
        node: body.args()[i],
        name: None,
    }));
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
    let mut saved = Vec::with_capacity(c);
    for i in 0..c {
        saved.push(e.op(forward(c + ys + i), operands)?);
    }

    // 2. The backward loop: cotangents in, gradients out.
    let step = Body(Arc::new(backward_body(
        body,
        c,
        x,
        ys,
        &float_xs,
        &float_consts,
    )?));
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
    bwd.extend(&saved);
    bwd.extend(&operands[c..c + x]);
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
            xs: c + x + ys,
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
) -> Result<Graph, AutodiffError> {
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
    Ok(g)
}
