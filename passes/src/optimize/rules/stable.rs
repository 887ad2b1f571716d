//! Numerically stable forms.
//!
//! These rules add the stable form next to the naive one; the extractor's cost model
//! charges a penalty for a `log` of a value that can underflow to zero (an `exp`, a
//! `sigmoid`, or a quotient of an `exp`), so the stable form wins whenever it exists:
//!
//! - `log(exp(d) / s) -> d - log(s)`: with `log(broadcast(s)) -> broadcast(log(s))`
//!   (layout group) this turns `log(softmax(x))` into log-softmax, which is also what
//!   softmax followed by cross-entropy becomes.
//! - `log(sigmoid(x)) -> min(x, 0) - log(1 + exp(-|x|))` (log-sigmoid, the stable
//!   core of binary cross-entropy with logits), and `1 - sigmoid(x) -> sigmoid(-x)`
//!   so that `log(1 - sigmoid(x))` takes the same path.

use egg::Id;
use kiln_ir::{BinaryOp, Op, OpKind, UnaryOp};

use super::{Rule, add, is_splat, nodes, splat_like, ty};
use crate::optimize::analysis::TensorGraph;
use crate::optimize::lang::ENode;

/// The rules of this group.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "stable/log-softmax",
            roots: &[OpKind::Log],
            matcher: log_of_exp_quotient,
        },
        Rule {
            name: "stable/log-sigmoid",
            roots: &[OpKind::Log],
            matcher: log_sigmoid,
        },
        Rule {
            name: "stable/one-minus-sigmoid",
            roots: &[OpKind::Sub],
            matcher: one_minus_sigmoid,
        },
    ]
}

/// True if a `log` of class `id` may see a value that underflowed to zero.
pub fn underflows(eg: &TensorGraph, id: Id) -> bool {
    eg[id].nodes.iter().any(|n| match n.kind() {
        OpKind::Exp | OpKind::Sigmoid => true,
        OpKind::Div => eg[n.children()[0]]
            .nodes
            .iter()
            .any(|m| m.kind() == OpKind::Exp),
        _ => false,
    })
}

fn log_of_exp_quotient(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let q = n.children()[0];
    let mut out = Vec::new();
    for div in nodes(eg, q, OpKind::Div) {
        let (e, s) = (div.children()[0], div.children()[1]);
        for ex in nodes(eg, e, OpKind::Exp) {
            let d = ex.children()[0];
            let Some(ls) = add(eg, Op::Unary(UnaryOp::Log), vec![s]) else {
                continue;
            };
            out.extend(add(eg, Op::Binary(BinaryOp::Sub), vec![d, ls]));
        }
    }
    out
}

fn log_sigmoid(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let s = n.children()[0];
    let mut out = Vec::new();
    for sig in nodes(eg, s, OpKind::Sigmoid) {
        let x = sig.children()[0];
        let t = ty(eg, x);
        let zero = splat_like(eg, 0.0, &t);
        let one = splat_like(eg, 1.0, &t);
        let un = |op| Op::Unary(op);
        let bin = |op| Op::Binary(op);
        let built = (|| {
            let m = add(eg, bin(BinaryOp::Min), vec![x, zero])?;
            let a = add(eg, un(UnaryOp::Abs), vec![x])?;
            let na = add(eg, un(UnaryOp::Neg), vec![a])?;
            let e = add(eg, un(UnaryOp::Exp), vec![na])?;
            let p = add(eg, bin(BinaryOp::Add), vec![e, one])?;
            let l = add(eg, un(UnaryOp::Log), vec![p])?;
            add(eg, bin(BinaryOp::Sub), vec![m, l])
        })();
        out.extend(built);
    }
    out
}

fn one_minus_sigmoid(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let (a, b) = (n.children()[0], n.children()[1]);
    if !is_splat(eg, a, 1.0) {
        return vec![];
    }
    let mut out = Vec::new();
    for sig in nodes(eg, b, OpKind::Sigmoid) {
        let x = sig.children()[0];
        if let Some(nx) = add(eg, Op::Unary(UnaryOp::Neg), vec![x]) {
            out.extend(add(eg, Op::Unary(UnaryOp::Sigmoid), vec![nx]));
        }
    }
    out
}
