//! The e-class analysis: type, constant value, splat value and finiteness of every
//! e-class.
//!
//! Constant folding lives here rather than in a rule: whenever an e-node's operands
//! are all known constants, `make` evaluates it with the reference interpreter, and
//! `modify` adds the literal to the e-class. Folding therefore composes with every
//! rewrite (a rule that exposes a constant subterm gets it folded in the same
//! iteration). Only results of at most [`TensorAnalysis::fold_limit`] elements are
//! folded, so large splats stay `broadcast(const)` instead of becoming huge literals.

use egg::{Analysis, DidMerge, EGraph, Id};
use kiln_ir::interp::eval_op;
use kiln_ir::{DType, Finiteness, HostTensor, Op, OpClass, ReduceOp, TensorType, infer};

use super::lang::ENode;

/// The e-graph type used by the optimizer.
pub type TensorGraph = EGraph<ENode, TensorAnalysis>;

/// What is known about the value of an e-class.
#[derive(Clone, Debug)]
pub struct Data {
    /// Dtype and shape: identical for every e-node of the class (rules check it).
    pub ty: TensorType,
    /// The value, if it is a literal or folds to one (small results only).
    pub constant: Option<HostTensor>,
    /// A rank-0 tensor equal to every element, if the value is a splat.
    pub splat: Option<HostTensor>,
    /// True if no element can be NaN or infinite (always true for integers and bool).
    pub finite: bool,
}

impl Data {
    /// The splat value widened to f64, if the class is a splat.
    pub fn splat_f64(&self) -> Option<f64> {
        self.splat.as_ref().map(|s| s.get_f64(0))
    }
}

/// The analysis: see the module docs.
#[derive(Clone, Debug)]
pub struct TensorAnalysis {
    /// Largest number of elements a folded constant may have.
    pub fold_limit: usize,
}

impl Default for TensorAnalysis {
    fn default() -> Self {
        TensorAnalysis { fold_limit: 4096 }
    }
}

/// The rank-0 value every element of `t` equals, if there is one (by bits, so
/// `0.0` and `-0.0` differ and NaNs with the same payload agree).
fn uniform(t: &HostTensor) -> Option<HostTensor> {
    if t.numel() == 0 {
        return None;
    }
    let first = t.get_f64(0).to_bits();
    if (1..t.numel()).all(|i| t.get_f64(i).to_bits() == first) {
        let s = t.reshape(t.shape().clone()).ok()?; // keep dtype
        let scalar = HostTensor::from_fn(&TensorType::new(s.dtype(), []), |_| s.get_f64(0));
        return Some(scalar);
    }
    None
}

fn all_finite(t: &HostTensor) -> bool {
    !t.dtype().is_float() || t.to_f64_vec().iter().all(|x| x.is_finite())
}

impl Analysis<ENode> for TensorAnalysis {
    type Data = Data;

    fn make(egraph: &mut TensorGraph, enode: &ENode, _id: Id) -> Data {
        if let Some((_, ty)) = enode.arg_info() {
            return Data {
                finite: !ty.dtype.is_float(),
                ty: ty.clone(),
                constant: None,
                splat: None,
            };
        }
        if let Op::Const(t) = enode.op() {
            return Data {
                ty: t.ty(),
                splat: uniform(t),
                finite: all_finite(t),
                constant: Some(t.clone()),
            };
        }
        let kids: Vec<&Data> = enode.children().iter().map(|&c| &egraph[c].data).collect();
        let types: Vec<&TensorType> = kids.iter().map(|d| &d.ty).collect();
        let op = enode.op();
        let ty = infer(op, &types).unwrap_or_else(|e| {
            panic!("ill-typed e-node `{enode}` on ({types:?}): {e}; rules must check types")
        });
        let constant = fold(op, &kids, &ty, egraph.analysis.fold_limit);
        let splat = match &constant {
            Some(c) => uniform(c),
            None => splat_of(op, &kids, &ty),
        };
        let finite = !ty.dtype.is_float()
            || constant.as_ref().is_some_and(all_finite)
            || splat.as_ref().is_some_and(all_finite)
            || finite_of(op, &kids);
        Data {
            ty,
            constant,
            splat,
            finite,
        }
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> DidMerge {
        debug_assert_eq!(a.ty, b.ty, "merged e-classes of different types");
        let mut changed = DidMerge(false, false);
        merge_option(&mut a.constant, b.constant, &mut changed);
        merge_option(&mut a.splat, b.splat, &mut changed);
        if a.finite != b.finite {
            if b.finite {
                a.finite = true;
                changed.0 = true;
            } else {
                changed.1 = true;
            }
        }
        changed
    }

    fn modify(egraph: &mut TensorGraph, id: Id) {
        let data = &egraph[id].data;
        let shape = data.ty.shape.clone();
        if let Some(s) = data.splat.clone()
            && shape.rank() > 0
        {
            // A splat is best kept as a broadcast scalar: tiny literal, and the
            // scheduler inlines it into its consumers.
            let c = egraph.add(ENode::constant(s));
            let b = egraph.add(ENode::new(Op::Broadcast(shape), vec![c]));
            egraph.union(id, b);
        } else if let Some(c) = data.constant.clone() {
            let has_literal = egraph[id]
                .nodes
                .iter()
                .any(|n| matches!(n.op(), Op::Const(_)));
            if !has_literal {
                let lit = egraph.add(ENode::constant(c));
                egraph.union(id, lit);
            }
        }
    }
}

fn merge_option<T>(a: &mut Option<T>, b: Option<T>, changed: &mut DidMerge) {
    match (a.is_some(), b.is_some()) {
        (false, true) => {
            *a = b;
            changed.0 = true;
        }
        (true, false) => changed.1 = true,
        _ => {}
    }
}

/// Evaluates `op` if every operand is a known constant and the result is small.
fn fold(op: &Op, kids: &[&Data], ty: &TensorType, limit: usize) -> Option<HostTensor> {
    // A collective's value depends on the other processes: never a constant.
    if ty.shape.numel() > limit || kids.is_empty() || matches!(op, Op::AllReduce) {
        return None;
    }
    let values: Option<Vec<&HostTensor>> = kids.iter().map(|d| d.constant.as_ref()).collect();
    eval_op(op, &values?).ok()
}

/// The splat value of `op` applied to splat operands, without materializing them:
/// elementwise ops are evaluated on the rank-0 values, movement ops keep the value.
fn splat_of(op: &Op, kids: &[&Data], ty: &TensorType) -> Option<HostTensor> {
    let splats: Option<Vec<&HostTensor>> = kids.iter().map(|d| d.splat.as_ref()).collect();
    let splats = splats?;
    match op {
        op if op.is_elementwise() => eval_op(op, &splats).ok(),
        op if matches!(op.class(), OpClass::View { .. }) => Some(splats[0].clone()),
        Op::Concat { .. } => {
            let first = splats[0].get_f64(0).to_bits();
            splats
                .iter()
                .all(|s| s.get_f64(0).to_bits() == first)
                .then(|| splats[0].clone())
        }
        Op::Pad { value, .. } => {
            let v = HostTensor::scalar(ty.dtype, *value);
            (v.get_f64(0).to_bits() == splats[0].get_f64(0).to_bits()).then_some(v)
        }
        Op::Reduce {
            kind: ReduceOp::Max | ReduceOp::Min,
            axes,
            ..
        } if axes.iter().all(|&a| kids[0].ty.shape.dim(a) > 0) => Some(splats[0].clone()),
        _ => None,
    }
}

/// True if `op` applied to operands described by `kids` gives finite results, by
/// the op table's [`Finiteness`] (integer and bool operands are always finite).
fn finite_of(op: &Op, kids: &[&Data]) -> bool {
    match op.kind().finiteness() {
        Finiteness::Always => true,
        Finiteness::MayNotBe => false,
        // f64 -> f32 can overflow a finite value.
        Finiteness::Preserves
            if matches!(op, Op::Cast(DType::F32)) && kids[0].ty.dtype == DType::F64 =>
        {
            false
        }
        Finiteness::Preserves => op.float_attrs_finite() && kids.iter().all(|d| d.finite),
    }
}

/// Dtype helper for rules: true for f32 and f64.
pub fn is_float(d: DType) -> bool {
    d.is_float()
}
