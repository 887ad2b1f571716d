//! DAG-aware greedy extraction: picks one e-node per needed e-class so that the
//! resulting graph is cheap, paying a node shared by several users once.
//!
//! egg's `Extractor` minimizes tree cost, which counts a shared subterm once per
//! use; on training-step graphs, where the forward activations feed many gradient
//! nodes, that overstates sharing-heavy choices by orders of magnitude. Here each
//! class instead carries the *set* of classes its current best term needs (a bitset);
//! a candidate e-node costs its own cost plus the summed own costs of the union of
//! its operands' sets, so shared classes count once. Candidates are relaxed to a
//! fixed point, bottom-up by class id (roughly creation order, so few passes).
//!
//! The sets of a class can go stale when an operand later improves, so a pick could
//! in principle close a cycle; the builder detects that and falls back to tree-cost
//! choices, which are acyclic because every node costs at least 1.

use std::collections::HashMap;

use egg::Id;
use kiln_ir::{Graph, NodeId, Op, OpKind, TensorType};

use super::OptimizeError;
use super::analysis::TensorGraph;
use super::convert::Signature;
use super::cost::node_cost;
use super::lang::ENode;
use super::rules::stable::underflows;

/// Added to a `log` of a value that may have underflowed to zero, so a stable form
/// in the same class always wins.
const UNSTABLE_PENALTY: f64 = 1e12;

/// Relaxation passes before giving up on a fixed point (the choices are usable at
/// any point; more passes only lower the cost).
const MAX_PASSES: usize = 64;

struct Candidate<'a> {
    class: usize,
    own: f64,
    kids: Vec<usize>,
    node: &'a ENode,
}

/// Classes reachable from `roots` through any e-node, densely numbered.
fn reachable(eg: &TensorGraph, roots: &[Id]) -> Vec<Id> {
    let mut seen: HashMap<Id, ()> = HashMap::new();
    let mut stack: Vec<Id> = roots.iter().map(|&r| eg.find(r)).collect();
    while let Some(c) = stack.pop() {
        if seen.insert(c, ()).is_some() {
            continue;
        }
        for n in &eg[c].nodes {
            for &k in n.children() {
                let k = eg.find(k);
                if !seen.contains_key(&k) {
                    stack.push(k);
                }
            }
        }
    }
    let mut ids: Vec<Id> = seen.into_keys().collect();
    ids.sort_unstable();
    ids
}

/// Extracts the graph computing `roots` (the outputs, in order) with the calling
/// convention `sig`.
pub fn extract(eg: &TensorGraph, roots: &[Id], sig: &Signature) -> Result<Graph, OptimizeError> {
    let classes = reachable(eg, roots);
    let index: HashMap<Id, usize> = classes.iter().enumerate().map(|(i, &c)| (c, i)).collect();
    let mut cands: Vec<Candidate> = Vec::new();
    for (ci, &c) in classes.iter().enumerate() {
        let ty = &eg[c].data.ty;
        for node in &eg[c].nodes {
            let kids: Vec<usize> = node
                .children()
                .iter()
                .map(|&k| index[&eg.find(k)])
                .collect();
            let own = if node.op().is_argument() {
                0.0
            } else {
                let types: Vec<&TensorType> =
                    node.children().iter().map(|&k| &eg[k].data.ty).collect();
                let mut own = node_cost(node.op(), ty, &types).total() + 1.0;
                if node.kind() == OpKind::Log && underflows(eg, node.children()[0]) {
                    own += UNSTABLE_PENALTY;
                }
                own
            };
            cands.push(Candidate {
                class: ci,
                own,
                kids,
                node,
            });
        }
    }

    let mut dag = dag_choices(classes.len(), &cands);
    let root_idx: Vec<usize> = roots.iter().map(|&r| index[&eg.find(r)]).collect();
    improve(&mut dag, &cands, &root_idx, classes.len());
    match build(eg, &classes, &cands, &dag, &root_idx, sig)? {
        Some(g) => Ok(g),
        None => {
            let tree = tree_choices(classes.len(), &cands);
            Ok(build(eg, &classes, &cands, &tree, &root_idx, sig)?
                .expect("tree-cost choices are acyclic"))
        }
    }
}

/// Greedy DAG-cost choices: a candidate index per class.
fn dag_choices(n: usize, cands: &[Candidate]) -> Vec<Option<usize>> {
    let words = n.div_ceil(64);
    let mut best: Vec<Option<usize>> = vec![None; n];
    let mut total = vec![f64::INFINITY; n];
    let mut own_best = vec![0.0; n];
    let mut sets: Vec<Vec<u64>> = vec![Vec::new(); n];
    let mut scratch = vec![0u64; words];
    for _ in 0..MAX_PASSES {
        let mut changed = false;
        for (ci, cand) in cands.iter().enumerate() {
            let c = cand.class;
            if cand.kids.iter().any(|&k| best[k].is_none()) {
                continue;
            }
            let cost = if cand.kids.is_empty() {
                scratch.iter_mut().for_each(|w| *w = 0);
                cand.own
            } else {
                scratch.iter_mut().for_each(|w| *w = 0);
                for &k in &cand.kids {
                    for (w, s) in scratch.iter_mut().zip(&sets[k]) {
                        *w |= s;
                    }
                }
                if scratch[c / 64] & (1 << (c % 64)) != 0 {
                    continue; // would depend on itself
                }
                let mut sum = cand.own;
                for (wi, &w) in scratch.iter().enumerate() {
                    let mut w = w;
                    while w != 0 {
                        let b = w.trailing_zeros() as usize;
                        sum += own_best[wi * 64 + b];
                        w &= w - 1;
                    }
                }
                sum
            };
            if best[c].is_none() || cost < total[c] - 1e-9 * total[c].abs().max(1.0) {
                total[c] = cost;
                best[c] = Some(ci);
                own_best[c] = cand.own;
                scratch[c / 64] |= 1 << (c % 64);
                sets[c].clear();
                sets[c].extend_from_slice(&scratch);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    best
}

/// Bound on the node visits [`improve`] may spend.
const IMPROVE_BUDGET: usize = 20_000_000;

/// The exact cost of the graph `choice` gives for `roots` (each class once), or
/// `None` if the choices form a cycle or leave a class without a pick.
fn dag_cost(
    choice: &[Option<usize>],
    cands: &[Candidate],
    roots: &[usize],
    mark: &mut [u32],
    epoch: u32,
    visits: &mut usize,
) -> Option<f64> {
    // mark: epoch*2 = open, epoch*2+1 = done.
    let (open, done) = (epoch * 2, epoch * 2 + 1);
    let mut total = 0.0;
    let mut stack: Vec<(usize, bool)> = roots.iter().map(|&r| (r, false)).collect();
    while let Some((c, expanded)) = stack.pop() {
        *visits += 1;
        if mark[c] == done {
            continue;
        }
        let cand = &cands[choice[c]?];
        if expanded {
            mark[c] = done;
            total += cand.own;
            continue;
        }
        if mark[c] == open {
            return None;
        }
        mark[c] = open;
        stack.push((c, true));
        for &k in &cand.kids {
            if mark[k] == open {
                return None;
            }
            if mark[k] != done {
                stack.push((k, false));
            }
        }
    }
    Some(total)
}

/// Local search after the greedy pass: for each class of the extracted graph, tries
/// every alternative e-node and keeps a switch if the whole graph gets cheaper.
/// This catches what the greedy pass cannot see locally: an alternative that reuses
/// a class other users need anyway (the relu mask reading the fused relu output), so
/// that the current pick's operands become dead.
fn improve(choice: &mut [Option<usize>], cands: &[Candidate], roots: &[usize], n: usize) {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, c) in cands.iter().enumerate() {
        by_class[c.class].push(i);
    }
    let mut mark = vec![0u32; n];
    let mut epoch = 1u32;
    let mut visits = 0usize;
    let Some(mut best) = dag_cost(choice, cands, roots, &mut mark, epoch, &mut visits) else {
        return;
    };
    // A class switched to an equally cheap pick is not revisited, so accepting ties
    // cannot ping-pong (strict improvements cannot cycle). Ties matter: moving the relu mask onto the
    // relu output costs nothing by itself, but then fusing the relu into its matmul
    // kills the pre-activation.
    let mut tied = vec![false; n];
    for _round in 0..3 {
        let mut improved = false;
        // The classes currently used, as the last pass marked them.
        let used: Vec<usize> = (0..n).filter(|&c| mark[c] == epoch * 2 + 1).collect();
        for c in used {
            if tied[c] {
                continue;
            }
            let current = choice[c];
            for &alt in &by_class[c] {
                if Some(alt) == choice[c] || cands[alt].kids.iter().any(|&k| choice[k].is_none()) {
                    continue;
                }
                if visits > IMPROVE_BUDGET {
                    return;
                }
                let before = choice[c];
                choice[c] = Some(alt);
                epoch += 1;
                match dag_cost(choice, cands, roots, &mut mark, epoch, &mut visits) {
                    Some(cost) if cost < best - 1e-9 * best.max(1.0) => {
                        best = cost;
                        improved = true;
                    }
                    Some(cost) if cost <= best && before == current => {
                        // A tie: take it (once) and keep looking for a strict gain.
                        best = cost;
                        tied[c] = true;
                    }
                    _ => choice[c] = before,
                }
            }
            if choice[c] != current {
                improved = true;
            }
        }
        if !improved {
            return;
        }
        epoch += 1;
        let _ = dag_cost(choice, cands, roots, &mut mark, epoch, &mut visits);
    }
}

/// Tree-cost choices: each class's cheapest term counting shared subterms per use.
fn tree_choices(n: usize, cands: &[Candidate]) -> Vec<Option<usize>> {
    let mut best = vec![None; n];
    let mut total = vec![f64::INFINITY; n];
    loop {
        let mut changed = false;
        for (ci, cand) in cands.iter().enumerate() {
            let cost = cand.own + cand.kids.iter().map(|&k| total[k]).sum::<f64>();
            if cost < total[cand.class] {
                total[cand.class] = cost;
                best[cand.class] = Some(ci);
                changed = true;
            }
        }
        if !changed {
            return best;
        }
    }
}

/// Builds the graph from `choice`; `Ok(None)` if the choices form a cycle.
fn build(
    eg: &TensorGraph,
    classes: &[Id],
    cands: &[Candidate],
    choice: &[Option<usize>],
    roots: &[usize],
    sig: &Signature,
) -> Result<Option<Graph>, OptimizeError> {
    let mut g = Graph::new(sig.name.clone());
    let mut args: HashMap<&str, NodeId> = HashMap::new();
    for (op, name, ty) in &sig.args {
        let id = match op {
            Op::Param => g.param(name, ty.clone())?,
            _ => g.input(name, ty.clone())?,
        };
        args.insert(name, id);
    }
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        Open,
        Done(NodeId),
    }
    let mut state = vec![State::New; classes.len()];
    for &root in roots {
        // Iterative post-order: (class, operands pushed yet?).
        let mut stack = vec![(root, false)];
        while let Some((c, expanded)) = stack.pop() {
            if let State::Done(_) = state[c] {
                continue;
            }
            let cand = &cands[choice[c].ok_or(OptimizeError::NoTerm(classes[c]))?];
            if !expanded {
                if state[c] == State::Open {
                    return Ok(None);
                }
                state[c] = State::Open;
                stack.push((c, true));
                for &k in cand.kids.iter().rev() {
                    match state[k] {
                        State::Done(_) => {}
                        State::Open => return Ok(None),
                        State::New => stack.push((k, false)),
                    }
                }
                continue;
            }
            let id = if let Some((name, _)) = cand.node.arg_info() {
                args[name]
            } else if let Op::Const(t) = cand.node.op() {
                g.constant(t.clone())
            } else {
                let mut operands = Vec::with_capacity(cand.kids.len());
                for &k in &cand.kids {
                    match state[k] {
                        State::Done(id) => operands.push(id),
                        _ => return Ok(None),
                    }
                }
                g.add(cand.node.op().clone(), &operands)?
            };
            if g.node(id).ty != eg[classes[c]].data.ty {
                return Err(OptimizeError::TypeChanged {
                    node: cand.node.to_string(),
                    expected: eg[classes[c]].data.ty.clone(),
                    got: g.node(id).ty.clone(),
                });
            }
            state[c] = State::Done(id);
        }
    }
    for (&root, name) in roots.iter().zip(&sig.outputs) {
        let State::Done(id) = state[root] else {
            unreachable!("roots are built above")
        };
        g.output(id, name.as_deref());
    }
    Ok(Some(g))
}
