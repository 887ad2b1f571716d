//! Graph -> e-graph. The way back is extraction (`extract`).

use egg::Id;
use kiln_ir::{Graph, GraphError, Op, TensorType};

use super::analysis::{TensorAnalysis, TensorGraph};
use super::lang::ENode;

/// What extraction needs to rebuild a graph with the same calling convention.
#[derive(Clone, Debug)]
pub struct Signature {
    pub name: String,
    /// `(Input or Param, name, type)` in declaration order.
    pub args: Vec<(Op, String, TensorType)>,
    /// Output names, in order.
    pub outputs: Vec<Option<String>>,
}

/// The e-graph of `graph`, its output classes in order, and its signature.
/// Identical subterms share one e-class from the start (hash-consing is CSE).
pub fn to_egraph(
    graph: &Graph,
    analysis: TensorAnalysis,
) -> Result<(TensorGraph, Vec<Id>, Signature), GraphError> {
    graph.validate()?;
    let mut eg = TensorGraph::new(analysis);
    let mut class = std::collections::HashMap::new();
    let mut args = Vec::new();
    for &a in graph.args() {
        let node = graph.node(a);
        let name = node.name.clone().unwrap_or_default();
        let id = eg.add(ENode::arg(node.op.clone(), &name, node.ty.clone()));
        class.insert(a, id);
        args.push((node.op.clone(), name, node.ty.clone()));
    }
    for n in graph.topo_order()? {
        if class.contains_key(&n) {
            continue;
        }
        let node = graph.node(n);
        let enode = match &node.op {
            Op::Const(t) => ENode::constant(t.clone()),
            op => ENode::new(
                op.clone(),
                graph.operands(n).iter().map(|o| class[o]).collect(),
            ),
        };
        let id = eg.add(enode);
        debug_assert_eq!(eg[id].data.ty, node.ty, "analysis type of %{}", n.index());
        class.insert(n, id);
    }
    eg.rebuild();
    let roots = graph
        .outputs()
        .iter()
        .map(|o| eg.find(class[&o.node]))
        .collect();
    let sig = Signature {
        name: graph.name().to_string(),
        args,
        outputs: graph.outputs().iter().map(|o| o.name.clone()).collect(),
    };
    Ok((eg, roots, sig))
}
