//! The loops of a graph: a `scan` has one node per result, and the nodes with the
//! same body, attributes and operands are one loop (see `kiln_ir::Scan`).

use std::collections::HashMap;

use kiln_ir::{Graph, GraphError, NodeId, Op, Scan};

/// The result nodes of one loop, by result index.
pub struct Loop {
    /// The loop (its `result` is that of the first node found).
    pub scan: Scan,
    pub operands: Vec<NodeId>,
    pub nodes: Vec<Option<NodeId>>,
}

impl Loop {
    /// Whether `s` over `operands` is a result of this loop not yet seen.
    fn takes(&self, s: &Scan, operands: &[NodeId]) -> bool {
        let strip = |s: &Scan| Scan {
            result: 0,
            ..s.clone()
        };
        self.operands == operands && strip(&self.scan) == strip(s) && self.nodes[s.result].is_none()
    }
}

/// The loops of `graph`, in the order their first node comes in `order`, and the
/// loop of each `scan` node.
pub fn loops(graph: &Graph, order: &[NodeId]) -> (Vec<Loop>, HashMap<NodeId, usize>) {
    let mut loops: Vec<Loop> = Vec::new();
    let mut of: HashMap<NodeId, usize> = HashMap::new();
    for &n in order {
        let Op::Scan(s) = &graph.node(n).op else {
            continue;
        };
        let operands = graph.operands(n);
        let i = match loops.iter().position(|l| l.takes(s, &operands)) {
            Some(i) => i,
            None => {
                loops.push(Loop {
                    scan: s.clone(),
                    operands,
                    nodes: vec![None; s.results()],
                });
                loops.len() - 1
            }
        };
        loops[i].nodes[s.result] = Some(n);
        of.insert(n, i);
    }
    (loops, of)
}

/// Applies `rewrite` to each loop of `graph` (on a copy; it returns how many
/// things it changed) and returns the result without dead nodes, or `None` if
/// nothing changed (ids change; see [`crate::eliminate_dead_code`]).
pub fn rewrite_loops(
    graph: &Graph,
    mut rewrite: impl FnMut(&mut Graph, &Loop) -> Result<usize, GraphError>,
) -> Result<Option<(Graph, usize)>, GraphError> {
    if !graph
        .node_ids()
        .any(|n| matches!(graph.node(n).op, Op::Scan(_)))
    {
        return Ok(None);
    }
    let order = graph.topo_order()?;
    let (found, _) = loops(graph, &order);
    let mut out = graph.clone();
    let mut changed = 0;
    for l in &found {
        changed += rewrite(&mut out, l)?;
    }
    if changed == 0 {
        return Ok(None);
    }
    Ok(Some((crate::eliminate_dead_code(&out)?, changed)))
}
