//! Rewrite rules, in groups (one module each), and the machinery that runs Rust
//! matchers inside egg's runner.
//!
//! A [`Rule`] names the op kinds its root can have and a matcher: a plain function
//! that, given an e-class and one of its e-nodes with such a root, inspects the
//! e-graph (operand classes, their e-nodes and analysis data) and returns e-classes
//! equal to it, adding whatever e-nodes it needs. Matching in Rust rather than with
//! egg's string patterns is what lets rules read attributes (perms, shapes, axes) and
//! check types before they add anything: every e-node is added through [`add`],
//! which refuses ill-typed nodes, and a result of another type than the matched
//! class is never merged.

pub mod algebra;
pub mod fusion;
pub mod layout;
pub mod stable;

use egg::{
    Applier, Id, Language, PatternAst, Rewrite, SearchMatches, Searcher, Subst, Symbol, Var,
};
use kiln_ir::{HostTensor, Op, OpKind, Shape, TensorType, infer};

use super::analysis::{TensorAnalysis, TensorGraph};
use super::lang::ENode;

/// Finds the e-classes equal to the matched one: `(egraph, class, node)` where
/// `node` is an e-node of `class` whose kind is one of the rule's roots.
pub type Matcher = fn(&mut TensorGraph, Id, &ENode) -> Vec<Id>;

/// One rewrite rule.
#[derive(Clone, Copy)]
pub struct Rule {
    /// Shown in statistics (`algebra/add-zero`).
    pub name: &'static str,
    /// Op kinds the matched e-node can have.
    pub roots: &'static [OpKind],
    pub matcher: Matcher,
}

impl Rule {
    /// The rule as an egg rewrite.
    pub fn rewrite(self) -> Rewrite<ENode, TensorAnalysis> {
        Rewrite::new(self.name, RootSearcher(self), RustApplier(self))
            .expect("rules bind no pattern variables")
    }
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Finds the e-classes holding an e-node with one of the rule's root kinds, by
/// egg's per-operator index. The real matching happens when applying.
struct RootSearcher(Rule);

impl Searcher<ENode, TensorAnalysis> for RootSearcher {
    fn search_eclass_with_limit(
        &self,
        egraph: &TensorGraph,
        eclass: Id,
        _limit: usize,
    ) -> Option<SearchMatches<'_, ENode>> {
        let class = &egraph[eclass];
        class
            .nodes
            .iter()
            .any(|n| self.0.roots.contains(&n.kind()))
            .then(|| SearchMatches {
                eclass: class.id,
                substs: vec![Subst::with_capacity(0)],
                ast: None,
            })
    }

    fn search_with_limit(
        &self,
        egraph: &TensorGraph,
        limit: usize,
    ) -> Vec<SearchMatches<'_, ENode>> {
        let mut ids: Vec<Id> = self
            .0
            .roots
            .iter()
            .filter_map(|r| egraph.classes_for_op(r))
            .flatten()
            .map(|id| egraph.find(id))
            .collect();
        // Sorted so runs are deterministic (the index is a hash set).
        ids.sort_unstable();
        ids.dedup();
        ids.truncate(limit);
        ids.into_iter()
            .map(|eclass| SearchMatches {
                eclass,
                substs: vec![Subst::with_capacity(0)],
                ast: None,
            })
            .collect()
    }

    fn vars(&self) -> Vec<Var> {
        vec![]
    }
}

/// Runs the matcher on every root e-node of each found class and merges what it
/// returns.
struct RustApplier(Rule);

impl Applier<ENode, TensorAnalysis> for RustApplier {
    fn apply_matches(
        &self,
        egraph: &mut TensorGraph,
        matches: &[SearchMatches<ENode>],
        _rule_name: Symbol,
    ) -> Vec<Id> {
        let mut changed = Vec::new();
        for m in matches {
            let class = egraph.find(m.eclass);
            let nodes: Vec<ENode> = egraph[class]
                .nodes
                .iter()
                .filter(|n| self.0.roots.contains(&n.kind()))
                .cloned()
                .collect();
            for node in nodes {
                let node = node.map_children(|c| egraph.find(c));
                for new in (self.0.matcher)(egraph, class, &node) {
                    let class = egraph.find(class);
                    let same_type = egraph[new].data.ty == egraph[class].data.ty;
                    debug_assert!(
                        same_type,
                        "rule {} would merge {} with {}",
                        self.0.name, egraph[new].data.ty, egraph[class].data.ty
                    );
                    if same_type && egraph.union(class, new) {
                        changed.push(new);
                    }
                }
            }
        }
        changed
    }

    fn apply_one(
        &self,
        _egraph: &mut TensorGraph,
        _eclass: Id,
        _subst: &Subst,
        _searcher_ast: Option<&PatternAst<ENode>>,
        _rule_name: Symbol,
    ) -> Vec<Id> {
        unreachable!("apply_matches is overridden")
    }
}

/// Every rule of every group.
pub fn all() -> Vec<Rule> {
    let mut rules = algebra::rules();
    rules.extend(layout::rules());
    rules.extend(stable::rules());
    rules.extend(fusion::rules());
    rules
}

// ---------------------------------------------------------------------------
// Helpers for matchers.

/// The type of class `id`.
pub fn ty(eg: &TensorGraph, id: Id) -> TensorType {
    eg[id].data.ty.clone()
}

/// Adds `op(children)` if it is well typed; `None` otherwise (the rule then does
/// not fire).
pub fn add(eg: &mut TensorGraph, op: Op, children: Vec<Id>) -> Option<Id> {
    let types: Vec<&TensorType> = children.iter().map(|&c| &eg[c].data.ty).collect();
    infer(&op, &types).ok()?;
    Some(eg.add(ENode::new(op, children)))
}

/// The e-nodes of class `id` of kind `kind` (children canonical).
pub fn nodes(eg: &TensorGraph, id: Id, kind: OpKind) -> Vec<ENode> {
    eg[id]
        .nodes
        .iter()
        .filter(|n| n.kind() == kind)
        .map(|n| n.clone().map_children(|c| eg.find(c)))
        .collect()
}

/// The splat value of class `id`, widened to f64.
pub fn splat(eg: &TensorGraph, id: Id) -> Option<f64> {
    eg[id].data.splat_f64()
}

/// True if class `id` is a splat of exactly `v` (either zero for `v == 0`).
pub fn is_splat(eg: &TensorGraph, id: Id, v: f64) -> bool {
    splat(eg, id) == Some(v)
}

/// A class holding `value` at every element of type `like`: a scalar literal,
/// broadcast unless `like` is rank 0.
pub fn splat_like(eg: &mut TensorGraph, value: f64, like: &TensorType) -> Id {
    let c = eg.add(ENode::constant(HostTensor::scalar(like.dtype, value)));
    if like.shape.rank() == 0 {
        return c;
    }
    eg.add(ENode::new(Op::Broadcast(like.shape.clone()), vec![c]))
}

/// `reshape(x, shape)`, or `x` itself if it already has that shape.
pub fn reshape(eg: &mut TensorGraph, x: Id, shape: Shape) -> Option<Id> {
    if eg[x].data.ty.shape == shape {
        return Some(x);
    }
    add(eg, Op::Reshape(shape), vec![x])
}

/// `broadcast(x, shape)`, or `x` itself if it already has that shape.
pub fn broadcast(eg: &mut TensorGraph, x: Id, shape: Shape) -> Option<Id> {
    if eg[x].data.ty.shape == shape {
        return Some(x);
    }
    add(eg, Op::Broadcast(shape), vec![x])
}
