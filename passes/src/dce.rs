//! Dead-code elimination.

use std::collections::HashSet;

use kiln_ir::{Graph, GraphError, NodeId};

/// A copy of `graph` without the nodes no output depends on. Arguments are kept even
/// when unused, since they are part of the calling convention. The result is
/// canonical (dense ids; see [`Graph::canonicalize`]).
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
    Ok(pruned.canonicalize()?.0)
}
