//! Loop-invariant code motion for `scan`: work of a loop body that depends only on
//! the step's `xs` and the constants, not on the carries, is computed for every
//! step at once before the loop and enters it as a further stacked input. An
//! RNN's input projection `x_t W` becomes one GEMM over all steps instead of one
//! small GEMM per step, and once the forward loop is hoisted, its gradient (with
//! respect to `W` and the `xs`) is computed after the backward loop as one GEMM
//! too.
//!
//! A body node moves when all its operands can (the `xs` are stacked, constants
//! broadcast along the steps) and its op has a batched form: elementwise ops,
//! views, reductions, `concat`, and products of a stacked matrix by a constant one
//! or of two stacked ones. Only the values that carry a product out of the loop
//! move (a stacked elementwise result is no cheaper outside than inside).

use std::collections::HashMap;
use std::sync::Arc;

use kiln_ir::{Body, Graph, GraphError, NodeId, Op, Scan, Shape};

use crate::loops::{Loop, rewrite_loops};

/// Where a body node can be computed outside its loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// Once per step, stacked along a new leading axis.
    Stacked,
    /// Once (it depends only on constants).
    Once,
}

/// `graph` with the step-invariant work of every loop body moved out of the loop,
/// and how many body values now come from outside. Without any, the graph is
/// returned as it is; otherwise dead nodes are removed (ids change; see
/// [`crate::eliminate_dead_code`]).
pub fn hoist_loops(graph: &Graph) -> Result<(Graph, usize), GraphError> {
    Ok(hoisted(graph)?.unwrap_or_else(|| (graph.clone(), 0)))
}

/// [`hoist_loops`], or `None` if nothing moves.
pub(crate) fn hoisted(graph: &Graph) -> Result<Option<(Graph, usize)>, GraphError> {
    rewrite_loops(graph, hoist_loop)
}

/// Hoists what it can of loop `l` of `out`; returns how many values moved.
fn hoist_loop(out: &mut Graph, l: &Loop) -> Result<usize, GraphError> {
    let s = &l.scan;
    let body = &s.body.0;
    let (c, x) = (s.carries, s.xs);
    let args = body.args();
    let order = body.topo_order()?;

    // 1. Where each body node could be computed outside, and whether doing so
    // takes a product out of the loop.
    let mut place: HashMap<NodeId, Place> = HashMap::new();
    let mut heavy: HashMap<NodeId, bool> = HashMap::new();
    for (i, &a) in args.iter().enumerate().skip(c) {
        place.insert(
            a,
            if i < c + x {
                Place::Stacked
            } else {
                Place::Once
            },
        );
    }
    for &n in &order {
        if args.contains(&n) {
            continue;
        }
        let operands = body.operands(n);
        let Some(places) = operands
            .iter()
            .map(|o| place.get(o).copied())
            .collect::<Option<Vec<Place>>>()
        else {
            continue;
        };
        let op = &body.node(n).op;
        if !places.contains(&Place::Stacked) {
            place.insert(n, Place::Once);
        } else if stackable(body, op, &operands, &places) {
            place.insert(n, Place::Stacked);
            let h =
                matches!(op, Op::MatMul) || operands.iter().any(|o| heavy.get(o) == Some(&true));
            heavy.insert(n, h);
        }
    }
    // 2. The values that leave the loop: stacked, carrying a product, and read by
    // a node that stays or returned by the body.
    let outputs: Vec<NodeId> = body.outputs().iter().map(|o| o.node).collect();
    let stays = |n: NodeId| !place.contains_key(&n);
    let frontier: Vec<NodeId> = order
        .iter()
        .copied()
        .filter(|&n| {
            heavy.get(&n) == Some(&true)
                && (outputs.contains(&n) || body.users(n).into_iter().any(stays))
        })
        .collect();
    if frontier.is_empty() {
        return Ok(0);
    }

    // 3. Compute them outside, for all steps.
    let mut outer: HashMap<NodeId, NodeId> = HashMap::new();
    for (i, &a) in args.iter().enumerate().skip(c) {
        outer.insert(a, l.operands[i]);
    }
    let mut stacked = Vec::with_capacity(frontier.len());
    for &f in &frontier {
        stacked.push(lift(out, body, s.length, f, &place, &mut outer)?);
    }

    // 4. The body reads them as further `xs`.
    let mut nb = Graph::new(body.name());
    let mut map: HashMap<NodeId, NodeId> = HashMap::new();
    let arg_name = |a: NodeId, i: usize| body.node(a).name.clone().unwrap_or(format!("arg{i}"));
    for (i, &a) in args.iter().enumerate().take(c + x) {
        map.insert(a, nb.input(&arg_name(a, i), body.node(a).ty.clone())?);
    }
    for (j, &f) in frontier.iter().enumerate() {
        map.insert(
            f,
            nb.input(&format!("hoisted{j}"), body.node(f).ty.clone())?,
        );
    }
    for (i, &a) in args.iter().enumerate().skip(c + x) {
        map.insert(a, nb.input(&arg_name(a, i), body.node(a).ty.clone())?);
    }
    for &n in &order {
        if map.contains_key(&n) {
            continue;
        }
        let operands: Vec<NodeId> = body.operands(n).iter().map(|o| map[o]).collect();
        let id = nb.add(body.node(n).op.clone(), &operands)?;
        map.insert(n, id);
    }
    nb.set_outputs(
        body.outputs()
            .iter()
            .map(|o| kiln_ir::Output {
                node: map[&o.node],
                name: o.name.clone(),
            })
            .collect(),
    );
    let new_body = Body(Arc::new(crate::eliminate_dead_code(&nb)?));

    // 5. The loop's nodes read the new body and operands.
    let mut operands = l.operands[..c + x].to_vec();
    operands.extend(&stacked);
    operands.extend(&l.operands[c + x..]);
    for (result, node) in l.nodes.iter().enumerate() {
        let Some(old) = *node else { continue };
        let op = Op::Scan(Scan {
            body: new_body.clone(),
            xs: x + frontier.len(),
            result,
            ..s.clone()
        });
        let new = out.add(op, &operands)?;
        out.replace_uses(old, new)?;
    }
    Ok(frontier.len())
}

/// Whether body node `op` over `operands` (placed as `places`, one stacked at
/// least) has a stacked form [`lift`] builds.
fn stackable(body: &Graph, op: &Op, operands: &[NodeId], places: &[Place]) -> bool {
    match op {
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Compare(_)
        | Op::Select
        | Op::Cast(_)
        | Op::Fma
        | Op::StopGradient
        | Op::Transpose(_)
        | Op::Reshape(_)
        | Op::Broadcast(_)
        | Op::Slice { .. }
        | Op::Reduce { .. }
        | Op::Concat { .. } => true,
        // A stacked matrix times a constant one is one product over all the rows;
        // two stacked operands are a batched product.
        Op::MatMul => {
            body.node(operands[0]).ty.shape.rank() == 2
                && places[0] == Place::Stacked
                && (places[1] == Place::Once || body.node(operands[1]).ty.shape.rank() == 2)
        }
        _ => false,
    }
}

/// The outer node computing body node `n` for every step (stacked along a new
/// leading axis of `steps`) or once, building its operands first.
fn lift(
    out: &mut Graph,
    body: &Graph,
    steps: usize,
    n: NodeId,
    place: &HashMap<NodeId, Place>,
    outer: &mut HashMap<NodeId, NodeId>,
) -> Result<NodeId, GraphError> {
    if let Some(&o) = outer.get(&n) {
        return Ok(o);
    }
    let operands = body.operands(n);
    let mut ins = Vec::with_capacity(operands.len());
    for &o in &operands {
        ins.push(lift(out, body, steps, o, place, outer)?);
    }
    let op = body.node(n).op.clone();
    let id = if place[&n] == Place::Once {
        out.add(op, &ins)?
    } else {
        let stacked: Vec<bool> = operands
            .iter()
            .map(|o| place[o] == Place::Stacked)
            .collect();
        lift_op(out, steps, op, &ins, &stacked)?
    };
    outer.insert(n, id);
    Ok(id)
}

/// `op` applied to every step: `ins` are stacked where `stacked` says, else the
/// same for every step.
fn lift_op(
    out: &mut Graph,
    steps: usize,
    op: Op,
    ins: &[NodeId],
    stacked: &[bool],
) -> Result<NodeId, GraphError> {
    let dims = |out: &Graph, n: NodeId| out.node(n).ty.shape.dims().to_vec();
    let with_steps = |d: &[usize]| Shape::new([&[steps][..], d].concat());
    // Operands that do not vary are broadcast along the steps.
    let spread = |out: &mut Graph, ins: &[NodeId]| -> Result<Vec<NodeId>, GraphError> {
        ins.iter()
            .zip(stacked)
            .map(|(&i, &s)| {
                if s {
                    Ok(i)
                } else {
                    let d = dims(out, i);
                    out.add(Op::Broadcast(with_steps(&d)), &[i])
                }
            })
            .collect()
    };
    match op {
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Compare(_)
        | Op::Select
        | Op::Cast(_)
        | Op::Fma
        | Op::StopGradient => {
            let ins = spread(out, ins)?;
            out.add(op, &ins)
        }
        Op::Concat { axis } => {
            let ins = spread(out, ins)?;
            out.add(Op::Concat { axis: axis + 1 }, &ins)
        }
        Op::Transpose(p) => {
            let perm = std::iter::once(0).chain(p.iter().map(|&a| a + 1)).collect();
            out.add(Op::Transpose(perm), ins)
        }
        Op::Reshape(shape) => out.add(Op::Reshape(with_steps(shape.dims())), ins),
        Op::Broadcast(shape) => {
            // Right-aligned: pad the step's shape with ones up to the target rank.
            let d = dims(out, ins[0]);
            let pad = shape.rank() + 1 - d.len();
            let padded = [&[steps][..], &vec![1; pad], &d[1..]].concat();
            let x = out.add(Op::Reshape(Shape::new(padded)), ins)?;
            out.add(Op::Broadcast(with_steps(shape.dims())), &[x])
        }
        Op::Slice { start, end, step } => {
            let pre = |v: &[usize], first: usize| [&[first][..], v].concat();
            out.add(
                Op::Slice {
                    start: pre(&start, 0),
                    end: pre(&end, steps),
                    step: pre(&step, 1),
                },
                ins,
            )
        }
        Op::Reduce {
            kind,
            axes,
            keepdims,
        } => out.add(
            Op::Reduce {
                kind,
                axes: axes.iter().map(|a| a + 1).collect(),
                keepdims,
            },
            ins,
        ),
        Op::MatMul if !stacked[1] => {
            // [steps, m, k] as [steps * m, k]: one product over all rows.
            let a = dims(out, ins[0]);
            let (m, k) = (a[1], a[2]);
            let n = dims(out, ins[1])[1];
            let rows = out.add(Op::Reshape(Shape::new(vec![steps * m, k])), &ins[..1])?;
            let p = out.add(Op::MatMul, &[rows, ins[1]])?;
            out.add(Op::Reshape(Shape::new(vec![steps, m, n])), &[p])
        }
        Op::MatMul => out.add(Op::MatMul, ins),
        op => unreachable!("`{}` is not stackable", op.mnemonic()),
    }
}
