//! The loops of a graph: a `scan` has one node per result, and the nodes with the
//! same body, attributes and operands are one loop (see `kiln_ir::Scan`).

use std::collections::HashMap;

use kiln_ir::{Graph, NodeId, Op, Scan};

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
