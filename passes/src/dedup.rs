//! Repeated loop results become one: when a body returns the same value as two
//! stacked `ys`, the loop would store it twice per step (the second a copy) and
//! every consumer of the second would repeat the work of the first. The backward
//! loop of an LSTM does this after the body's optimization, where the gradients
//! of the input and hidden projections (`gi + gh`) become one value.

use kiln_ir::{Graph, GraphError};

use crate::loops::{Loop, rewrite_loops};

/// `graph` with each repeated stacked result of its loops read from its first
/// occurrence, and how many were merged. Without any, `None`.
pub(crate) fn merged(graph: &Graph) -> Result<Option<(Graph, usize)>, GraphError> {
    rewrite_loops(graph, merge_loop)
}

fn merge_loop(out: &mut Graph, l: &Loop) -> Result<usize, GraphError> {
    let outputs = l.scan.body.0.outputs();
    let mut merged = 0;
    for r in l.scan.carries..outputs.len() {
        let Some(node) = l.nodes[r] else { continue };
        let first = (l.scan.carries..r)
            .find(|&j| outputs[j].node == outputs[r].node && l.nodes[j].is_some());
        if let Some(j) = first {
            out.replace_uses(node, l.nodes[j].expect("found above"))?;
            merged += 1;
        }
    }
    Ok(merged)
}
