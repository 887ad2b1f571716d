//! The tensor graph: a petgraph `StableGraph` of typed, shaped ops.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;

use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};

use crate::shape::join_types;
use crate::{HostTensor, Op, TensorType, TypeError, infer};

/// Identifies a node of a [`Graph`]. Printed as `%N`.
pub type NodeId = NodeIndex<u32>;

/// One operation with its inferred type and an optional name (for arguments the name
/// is required: it is how callers address them).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub ty: TensorType,
    pub name: Option<String>,
}

/// One result of a graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub node: NodeId,
    pub name: Option<String>,
}

/// What is wrong with a graph, naming the node, the op and the shapes involved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    #[error("{} `{op}` on ({}): {source}", node.map(|n| format!("node %{}", n.index())).unwrap_or_else(|| "new node".into()), join_types(operands))]
    Type {
        node: Option<NodeId>,
        op: String,
        operands: Vec<TensorType>,
        source: TypeError,
    },
    #[error("node %{} `{op}` is recorded as {recorded} but its operands give {inferred}", node.index())]
    StaleType {
        node: NodeId,
        op: String,
        recorded: TensorType,
        inferred: TensorType,
    },
    #[error("node %{} does not exist", .0.index())]
    UnknownNode(NodeId),
    #[error("the name `{0}` is used by two arguments or two outputs")]
    DuplicateName(String),
    #[error("argument names must be non-empty identifiers, got `{0}`")]
    BadName(String),
    #[error("node %{} is an argument (`{op}`) but is not declared in the signature", node.index())]
    UndeclaredArgument { node: NodeId, op: String },
    #[error("node %{} `{op}` has operand positions {positions:?}; expected 0..{}", node.index(), positions.len())]
    BadOperandOrder {
        node: NodeId,
        op: String,
        positions: Vec<usize>,
    },
    #[error("the graph has a cycle through node %{}", .0.index())]
    Cycle(NodeId),
}

/// A tensor program: nodes are ops, edges carry the operand position, arguments
/// (inputs and parameters) are declared in order, and outputs are explicit.
///
/// Nodes are typed when added, so a graph built through [`Graph::add`] is well typed
/// by construction; [`Graph::validate`] re-checks everything for graphs that were
/// edited or parsed.
///
/// ```
/// use kiln_ir::{DType, Graph, Op, TensorType, UnaryOp};
/// let mut g = Graph::new("relu");
/// let x = g.input("x", TensorType::new(DType::F32, [2, 3])).unwrap();
/// let y = g.add(Op::Unary(UnaryOp::Relu), &[x]).unwrap();
/// g.output(y, None);
/// assert!(g.validate().is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct Graph {
    name: String,
    graph: StableDiGraph<Node, usize>,
    args: Vec<NodeId>,
    outputs: Vec<Output>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

impl Graph {
    /// An empty graph called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Graph {
            name: name.into(),
            graph: StableDiGraph::default(),
            args: Vec::new(),
            outputs: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn set_name(&mut self, name: impl Into<String>) {
        self.name = name.into();
    }

    /// Declares a data input, fed on every call.
    pub fn input(&mut self, name: &str, ty: TensorType) -> Result<NodeId, GraphError> {
        self.argument(Op::Input, name, ty)
    }

    /// Declares a trainable parameter.
    pub fn param(&mut self, name: &str, ty: TensorType) -> Result<NodeId, GraphError> {
        self.argument(Op::Param, name, ty)
    }

    fn argument(&mut self, op: Op, name: &str, ty: TensorType) -> Result<NodeId, GraphError> {
        if !valid_name(name) {
            return Err(GraphError::BadName(name.to_string()));
        }
        if self.arg(name).is_some() {
            return Err(GraphError::DuplicateName(name.to_string()));
        }
        ty.check_size().map_err(|message| GraphError::Type {
            node: None,
            op: op.mnemonic().to_string(),
            operands: vec![],
            source: TypeError::Shape(message),
        })?;
        let id = self.graph.add_node(Node {
            op,
            ty,
            name: Some(name.to_string()),
        });
        self.args.push(id);
        Ok(id)
    }

    /// Adds a literal.
    pub fn constant(&mut self, value: HostTensor) -> NodeId {
        let ty = value.ty();
        self.graph.add_node(Node {
            op: Op::Const(value),
            ty,
            name: None,
        })
    }

    /// Adds `op` applied to `operands`, inferring its type; fails without changing the
    /// graph if the operands do not fit the op.
    pub fn add(&mut self, op: Op, operands: &[NodeId]) -> Result<NodeId, GraphError> {
        for &o in operands {
            if !self.graph.contains_node(o) {
                return Err(GraphError::UnknownNode(o));
            }
        }
        let ty = self.infer_node(None, &op, operands)?;
        let id = self.graph.add_node(Node { op, ty, name: None });
        for (pos, &o) in operands.iter().enumerate() {
            self.graph.add_edge(o, id, pos);
        }
        Ok(id)
    }

    /// The type of `op` on `operands`, or the error naming `node`.
    fn infer_node(
        &self,
        node: Option<NodeId>,
        op: &Op,
        operands: &[NodeId],
    ) -> Result<TensorType, GraphError> {
        let types: Vec<&TensorType> = operands.iter().map(|&o| &self.graph[o].ty).collect();
        infer(op, &types).map_err(|source| GraphError::Type {
            node,
            op: op.mnemonic().to_string(),
            operands: types.iter().map(|&t| t.clone()).collect(),
            source,
        })
    }

    /// Replaces the op of node `id` by an equivalent one (an optimized loop body,
    /// ...): `op` must give the node's recorded type from the same operands.
    pub fn replace_op(&mut self, id: NodeId, op: Op) -> Result<(), GraphError> {
        let node = self.get(id).ok_or(GraphError::UnknownNode(id))?;
        let inferred = self.infer_node(Some(id), &op, &self.operands(id))?;
        if inferred != node.ty {
            return Err(GraphError::StaleType {
                node: id,
                op: op.mnemonic().to_string(),
                recorded: node.ty.clone(),
                inferred,
            });
        }
        self.graph[id].op = op;
        Ok(())
    }

    /// Makes every user of `old` (and every output naming it) use `new` instead,
    /// which must have the same type and must not depend on `old`'s users. `old`
    /// stays in the graph, unused.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) -> Result<(), GraphError> {
        let (a, b) = (
            self.get(old).ok_or(GraphError::UnknownNode(old))?,
            self.get(new).ok_or(GraphError::UnknownNode(new))?,
        );
        if a.ty != b.ty {
            return Err(GraphError::StaleType {
                node: new,
                op: b.op.mnemonic().to_string(),
                recorded: a.ty.clone(),
                inferred: b.ty.clone(),
            });
        }
        let edges: Vec<_> = self
            .graph
            .edges_directed(old, Direction::Outgoing)
            .map(|e| (e.id(), e.target(), *e.weight()))
            .collect();
        for (id, user, pos) in edges {
            self.graph.remove_edge(id);
            self.graph.add_edge(new, user, pos);
        }
        for o in &mut self.outputs {
            if o.node == old {
                o.node = new;
            }
        }
        Ok(())
    }

    /// Names a node (for debugging output); argument names cannot be changed.
    pub fn set_node_name(&mut self, id: NodeId, name: impl Into<String>) {
        let node = &mut self.graph[id];
        if !node.op.is_argument() {
            node.name = Some(name.into());
        }
    }

    /// Appends `node` to the outputs.
    pub fn output(&mut self, node: NodeId, name: Option<&str>) {
        self.outputs.push(Output {
            node,
            name: name.map(str::to_string),
        });
    }

    /// Replaces the output list.
    pub fn set_outputs(&mut self, outputs: Vec<Output>) {
        self.outputs = outputs;
    }

    /// The node `id`. Panics if `id` is not a node of this graph (a programming error,
    /// like indexing a `Vec` out of range).
    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[id]
    }

    pub fn get(&self, id: NodeId) -> Option<&Node> {
        self.graph.node_weight(id)
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.graph.contains_node(id)
    }

    /// The operands of `id`, in operand order.
    pub fn operands(&self, id: NodeId) -> Vec<NodeId> {
        let mut edges: Vec<(usize, NodeId)> = self
            .graph
            .edges_directed(id, Direction::Incoming)
            .map(|e| (*e.weight(), e.source()))
            .collect();
        edges.sort_unstable();
        edges.into_iter().map(|(_, n)| n).collect()
    }

    /// The distinct nodes that use `id` as an operand, in index order.
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        let mut users: Vec<NodeId> = self
            .graph
            .neighbors_directed(id, Direction::Outgoing)
            .collect();
        users.sort_unstable();
        users.dedup();
        users
    }

    /// Inputs and parameters, in declaration (calling) order.
    pub fn args(&self) -> &[NodeId] {
        &self.args
    }

    /// The argument called `name`.
    pub fn arg(&self, name: &str) -> Option<NodeId> {
        self.args
            .iter()
            .copied()
            .find(|&a| self.graph[a].name.as_deref() == Some(name))
    }

    /// Data inputs only, in declaration order.
    pub fn inputs(&self) -> Vec<NodeId> {
        self.args_where(|op| matches!(op, Op::Input))
    }

    /// Parameters only, in declaration order.
    pub fn params(&self) -> Vec<NodeId> {
        self.args_where(|op| matches!(op, Op::Param))
    }

    fn args_where(&self, f: impl Fn(&Op) -> bool) -> Vec<NodeId> {
        self.args
            .iter()
            .copied()
            .filter(|&a| f(&self.graph[a].op))
            .collect()
    }

    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }

    /// The number of nodes of this graph (not counting loop bodies).
    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    /// The number of nodes with those of every loop body, each body once however
    /// many of its loop's results the graph uses (nested bodies too): the size of
    /// the program, which does not grow with a loop's length.
    pub fn total_node_count(&self) -> usize {
        let mut seen: Vec<*const Graph> = Vec::new();
        self.count_into(&mut seen)
    }

    fn count_into(&self, seen: &mut Vec<*const Graph>) -> usize {
        let mut n = self.node_count();
        for id in self.node_ids() {
            if let crate::Op::Scan(s) = &self.node(id).op {
                let body = std::sync::Arc::as_ptr(&s.body.0);
                if !seen.contains(&body) {
                    seen.push(body);
                    n += s.body.0.count_into(seen);
                }
            }
        }
        n
    }

    /// All node ids in index order.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.graph.node_indices()
    }

    /// The underlying petgraph graph, for algorithms and visitors.
    pub fn petgraph(&self) -> &StableDiGraph<Node, usize> {
        &self.graph
    }

    /// Nodes in a topological order: operands before users, ties broken by index, so
    /// the order is deterministic and is plain index order for graphs built by `add`.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, GraphError> {
        let mut pending: HashMap<NodeId, usize> = HashMap::new();
        let mut ready = BinaryHeap::new();
        for n in self.graph.node_indices() {
            let k = self.graph.edges_directed(n, Direction::Incoming).count();
            if k == 0 {
                ready.push(Reverse(n));
            } else {
                pending.insert(n, k);
            }
        }
        let mut order = Vec::with_capacity(self.graph.node_count());
        while let Some(Reverse(n)) = ready.pop() {
            order.push(n);
            for e in self.graph.edges_directed(n, Direction::Outgoing) {
                let k = pending.get_mut(&e.target()).expect("counted above");
                *k -= 1;
                if *k == 0 {
                    ready.push(Reverse(e.target()));
                }
            }
        }
        if order.len() != self.graph.node_count() {
            let stuck = pending
                .iter()
                .filter(|(_, k)| **k > 0)
                .map(|(n, _)| *n)
                .min();
            return Err(GraphError::Cycle(
                stuck.expect("a cycle leaves a pending node"),
            ));
        }
        Ok(order)
    }

    /// Checks the whole graph: acyclic, operand positions dense, every node's recorded
    /// type equal to what its operands give, arguments declared with unique names,
    /// outputs present with unique names.
    pub fn validate(&self) -> Result<(), GraphError> {
        let order = self.topo_order()?;
        let declared: HashSet<NodeId> = self.args.iter().copied().collect();
        let mut names = HashSet::new();
        for &a in &self.args {
            let node = self.get(a).ok_or(GraphError::UnknownNode(a))?;
            let name = node.name.clone().unwrap_or_default();
            if !valid_name(&name) {
                return Err(GraphError::BadName(name));
            }
            if !names.insert(name.clone()) {
                return Err(GraphError::DuplicateName(name));
            }
        }
        for id in order {
            let node = &self.graph[id];
            let op = node.op.mnemonic().to_string();
            if node.op.is_argument() {
                if !declared.contains(&id) {
                    return Err(GraphError::UndeclaredArgument { node: id, op });
                }
                continue;
            }
            let mut positions: Vec<usize> = self
                .graph
                .edges_directed(id, Direction::Incoming)
                .map(|e| *e.weight())
                .collect();
            positions.sort_unstable();
            if positions.iter().enumerate().any(|(i, &p)| i != p) {
                return Err(GraphError::BadOperandOrder {
                    node: id,
                    op,
                    positions,
                });
            }
            let operands: Vec<&TensorType> = self
                .operands(id)
                .iter()
                .map(|&o| &self.graph[o].ty)
                .collect();
            let inferred = infer(&node.op, &operands).map_err(|source| GraphError::Type {
                node: Some(id),
                op: op.clone(),
                operands: operands.iter().map(|&t| t.clone()).collect(),
                source,
            })?;
            if inferred != node.ty {
                return Err(GraphError::StaleType {
                    node: id,
                    op,
                    recorded: node.ty.clone(),
                    inferred,
                });
            }
        }
        let mut out_names = HashSet::new();
        for o in &self.outputs {
            if !self.graph.contains_node(o.node) {
                return Err(GraphError::UnknownNode(o.node));
            }
            if let Some(name) = &o.name
                && !out_names.insert(name.clone())
            {
                return Err(GraphError::DuplicateName(name.clone()));
            }
        }
        Ok(())
    }

    /// Removes every node for which `keep` returns false, with its edges. Removed
    /// arguments and outputs leave the argument and output lists too. Ids of kept
    /// nodes do not change.
    pub fn retain_nodes(&mut self, keep: impl Fn(NodeId) -> bool) {
        self.graph.retain_nodes(|_, n| keep(n));
        let g = &self.graph;
        self.args.retain(|&a| g.contains_node(a));
        self.outputs.retain(|o| g.contains_node(o.node));
    }

    /// A copy with dense ids in canonical order: arguments first (in declaration
    /// order), then the other nodes in topological order. The text printer numbers
    /// nodes the same way, so `%N` in a dump is `NodeId` N of the canonical graph.
    /// Also returns the map from old ids to new ones.
    pub fn canonicalize(&self) -> Result<(Graph, HashMap<NodeId, NodeId>), GraphError> {
        let order = self.topo_order()?;
        let mut map = HashMap::with_capacity(order.len());
        let mut g = StableDiGraph::with_capacity(order.len(), self.graph.edge_count());
        let rest = order.iter().copied().filter(|n| !self.args.contains(n));
        for old in self.args.iter().copied().chain(rest) {
            map.insert(old, g.add_node(self.graph[old].clone()));
        }
        for e in self.graph.edge_references() {
            g.add_edge(map[&e.source()], map[&e.target()], *e.weight());
        }
        let graph = Graph {
            name: self.name.clone(),
            graph: g,
            args: self.args.iter().map(|a| map[a]).collect(),
            outputs: self
                .outputs
                .iter()
                .map(|o| Output {
                    node: map[&o.node],
                    name: o.name.clone(),
                })
                .collect(),
        };
        Ok((graph, map))
    }
}

impl fmt::Display for Graph {
    /// The text format (see the `text` module).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::text::print(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BinaryOp, DType, UnaryOp};

    fn f32(dims: &[usize]) -> TensorType {
        TensorType::new(DType::F32, dims)
    }

    /// Graph `t` with `x: f32[2,3]`, `w: param f32[3,4]` and `y = matmul x, w`.
    fn matmul_graph() -> (Graph, NodeId, NodeId, NodeId) {
        let mut g = Graph::new("t");
        let x = g.input("x", f32(&[2, 3])).unwrap();
        let w = g.param("w", f32(&[3, 4])).unwrap();
        let y = g.add(Op::MatMul, &[x, w]).unwrap();
        (g, x, w, y)
    }

    #[test]
    fn add_infers_types_and_rejects_bad_operands() {
        let (mut g, x, w, y) = matmul_graph();
        assert_eq!(g.node(y).ty, f32(&[2, 4]));
        let before = g.node_count();
        let err = g.add(Op::MatMul, &[x, x]).unwrap_err();
        assert_eq!(g.node_count(), before);
        let msg = err.to_string();
        assert!(
            msg.contains("matmul") && msg.contains("f32[2,3], f32[2,3]"),
            "{msg}"
        );
        assert_eq!(g.operands(y), vec![x, w]);
        assert_eq!(g.users(x), vec![y]);
        assert_eq!(g.inputs(), vec![x]);
        assert_eq!(g.params(), vec![w]);
    }

    #[test]
    fn argument_names_are_checked() {
        let mut g = Graph::new("t");
        g.input("x", f32(&[1])).unwrap();
        assert_eq!(
            g.input("x", f32(&[1])),
            Err(GraphError::DuplicateName("x".into()))
        );
        assert!(matches!(
            g.param("", f32(&[1])),
            Err(GraphError::BadName(_))
        ));
        assert!(matches!(
            g.param("a b", f32(&[1])),
            Err(GraphError::BadName(_))
        ));
    }

    #[test]
    fn operand_order_is_kept_for_non_commutative_ops() {
        let mut g = Graph::new("t");
        let a = g.input("a", f32(&[2])).unwrap();
        let b = g.input("b", f32(&[2])).unwrap();
        let d = g.add(Op::Binary(BinaryOp::Sub), &[b, a]).unwrap();
        assert_eq!(g.operands(d), vec![b, a]);
        let s = g.add(Op::Binary(BinaryOp::Mul), &[a, a]).unwrap();
        assert_eq!(g.operands(s), vec![a, a]);
        assert_eq!(g.users(a), vec![d, s]);
    }

    #[test]
    fn validate_catches_stale_types() {
        let mut g = Graph::new("t");
        let x = g.input("x", f32(&[2])).unwrap();
        let y = g.add(Op::Unary(UnaryOp::Exp), &[x]).unwrap();
        g.output(y, Some("y"));
        assert!(g.validate().is_ok());
        g.graph[y].ty = f32(&[3]);
        let e = g.validate().unwrap_err();
        assert!(matches!(e, GraphError::StaleType { .. }), "{e}");
        assert!(e.to_string().contains("f32[3]"), "{e}");
    }

    #[test]
    fn canonical_order_puts_arguments_first() {
        let (mut g, _, _, y) = matmul_graph();
        let b = g.param("b", f32(&[2, 4])).unwrap();
        let z = g.add(Op::Binary(BinaryOp::Add), &[y, b]).unwrap();
        g.output(z, None);
        let (c, map) = g.canonicalize().unwrap();
        assert_eq!(map[&b].index(), 2);
        assert_eq!(map[&y].index(), 3);
        assert_eq!(c.outputs()[0].node.index(), 4);
        assert_eq!(c.operands(map[&z]), vec![map[&y], map[&b]]);
        c.validate().unwrap();
    }
}
