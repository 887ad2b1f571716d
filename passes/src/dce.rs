//! Dead-code elimination.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kiln_ir::{Body, Graph, GraphError, NodeId, Op, Scan};

/// A copy of `graph` without the nodes no output depends on, loop bodies included
/// (the interpreter evaluates neither, so neither may fail or cost). Arguments are
/// kept even when unused, since they are part of the calling convention. The
/// result is canonical (dense ids; see [`Graph::canonicalize`]).
pub fn eliminate_dead_code(graph: &Graph) -> Result<Graph, GraphError> {
    let mut live: HashSet<NodeId> = graph.args().iter().copied().collect();
    let mut stack: Vec<NodeId> = graph.outputs().iter().map(|o| o.node).collect();
    while let Some(n) = stack.pop() {
        if live.insert(n) {
            stack.extend(graph.operands(n));
        }
    }
    let mut pruned = graph.clone();
    pruned.retain_nodes(|n| live.contains(&n));
    // The nodes of one loop share their body: prune each body once, so they still do.
    let mut bodies: HashMap<*const Graph, Body> = HashMap::new();
    let loops: Vec<NodeId> = pruned
        .node_ids()
        .filter(|&n| matches!(pruned.node(n).op, Op::Scan(_)))
        .collect();
    for n in loops {
        let Op::Scan(scan) = &pruned.node(n).op else {
            unreachable!("filtered above")
        };
        let key = Arc::as_ptr(&scan.body.0);
        let body = match bodies.get(&key) {
            Some(b) => b.clone(),
            None => {
                let b = Body(Arc::new(eliminate_dead_code(&scan.body.0)?));
                bodies.insert(key, b.clone());
                b
            }
        };
        let op = Op::Scan(Scan {
            body,
            ..scan.clone()
        });
        pruned.replace_op(n, op)?;
    }
    Ok(pruned.canonicalize()?.0)
}
