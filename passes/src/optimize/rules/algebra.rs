//! Algebraic identities.
//!
//! Soundness notes (IEEE arithmetic):
//! - `x + 0 -> x` does not keep the sign of a zero (`-0 + 0 = +0`); like XLA, kiln
//!   treats the two zeros as equal. Everything else here is exact unless noted.
//! - `x * 0 -> 0` and `x - x -> 0` are wrong for NaN and infinite `x`, so they only
//!   fire where the analysis proves `x` finite (integers, bounded ops, finite
//!   literals).
//! - `x / c -> x * (1/c)` can differ in the last bit when `1/c` is inexact.
//! - `log(exp(x)) -> x` also removes the overflow of `exp` for large `x`.
//! - `exp(log(x)) -> x` is not a rule: it is wrong for `x <= 0`, and the analysis does
//!   not track signs.

use egg::Id;
use kiln_ir::{BinaryOp, DType, Op, OpKind, UnaryOp};

use super::{Rule, add, is_splat, nodes, splat, splat_like, ty};
use crate::optimize::analysis::TensorGraph;
use crate::optimize::lang::ENode;

/// The rules of this group.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "algebra/add-zero",
            roots: &[OpKind::Add],
            matcher: add_zero,
        },
        Rule {
            name: "algebra/sub",
            roots: &[OpKind::Sub],
            matcher: sub_rules,
        },
        Rule {
            name: "algebra/mul-const",
            roots: &[OpKind::Mul],
            matcher: mul_const,
        },
        Rule {
            name: "algebra/div-const",
            roots: &[OpKind::Div],
            matcher: div_const,
        },
        Rule {
            name: "algebra/neg",
            roots: &[OpKind::Neg],
            matcher: neg_rules,
        },
        Rule {
            name: "algebra/log-exp",
            roots: &[OpKind::Log],
            matcher: log_exp,
        },
        Rule {
            name: "algebra/add-neg",
            roots: &[OpKind::Add],
            matcher: add_neg,
        },
        Rule {
            name: "algebra/abs-neg",
            roots: &[OpKind::Abs],
            matcher: abs_neg,
        },
        Rule {
            name: "algebra/select-same",
            roots: &[OpKind::Select],
            matcher: select_same,
        },
        Rule {
            name: "algebra/cast-same",
            roots: &[OpKind::Cast],
            matcher: cast_same,
        },
    ]
}

fn pair(n: &ENode) -> (Id, Id) {
    (n.children()[0], n.children()[1])
}

/// `[a]` when `b` is a zero splat (`a + 0` and `a - 0` are `a`), else nothing.
fn zero_right(eg: &TensorGraph, a: Id, b: Id) -> Vec<Id> {
    if is_splat(eg, b, 0.0) {
        vec![a]
    } else {
        vec![]
    }
}

fn add_zero(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let (a, b) = pair(n);
    let mut out = zero_right(eg, a, b);
    out.extend(zero_right(eg, b, a));
    out
}

fn sub_rules(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let (a, b) = pair(n);
    let mut out = zero_right(eg, a, b);
    if is_splat(eg, a, 0.0) {
        out.extend(add(eg, Op::Unary(UnaryOp::Neg), vec![b]));
    }
    if a == b && eg[a].data.finite {
        let t = ty(eg, a);
        out.push(splat_like(eg, 0.0, &t));
    }
    // a - (-y) = a + y
    for m in nodes(eg, b, OpKind::Neg) {
        out.extend(add(eg, Op::Binary(BinaryOp::Add), vec![a, m.children()[0]]));
    }
    out
}

fn mul_const(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let (a, b) = pair(n);
    let mut out = Vec::new();
    for (x, k) in [(a, b), (b, a)] {
        match splat(eg, k) {
            Some(1.0) => out.push(x),
            Some(v) if v == 0.0 && eg[x].data.finite => out.push(k),
            Some(-1.0) => out.extend(add(eg, Op::Unary(UnaryOp::Neg), vec![x])),
            _ => {}
        }
    }
    out
}

fn div_const(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let (a, b) = pair(n);
    let t = ty(eg, a);
    match splat(eg, b) {
        Some(1.0) => vec![a],
        Some(v) if t.dtype.is_float() && v.is_finite() && v != 0.0 => {
            // The reciprocal in the tensor's own precision.
            let r = match t.dtype {
                DType::F32 => (1.0f32 / v as f32) as f64,
                _ => 1.0 / v,
            };
            if !r.is_finite() {
                return vec![];
            }
            let r = splat_like(eg, r, &t);
            add(eg, Op::Binary(BinaryOp::Mul), vec![a, r])
                .into_iter()
                .collect()
        }
        _ => vec![],
    }
}

fn neg_rules(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let x = n.children()[0];
    let mut out: Vec<Id> = nodes(eg, x, OpKind::Neg)
        .iter()
        .map(|m| m.children()[0])
        .collect();
    // -(a - b) = b - a
    for m in nodes(eg, x, OpKind::Sub) {
        let (a, b) = pair(&m);
        out.extend(add(eg, Op::Binary(BinaryOp::Sub), vec![b, a]));
    }
    out
}

fn log_exp(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let x = n.children()[0];
    nodes(eg, x, OpKind::Exp)
        .iter()
        .map(|m| m.children()[0])
        .collect()
}

fn add_neg(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let (a, b) = pair(n);
    let mut out = Vec::new();
    for (x, y) in [(a, b), (b, a)] {
        for m in nodes(eg, y, OpKind::Neg) {
            out.extend(add(eg, Op::Binary(BinaryOp::Sub), vec![x, m.children()[0]]));
        }
    }
    out
}

fn abs_neg(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let x = n.children()[0];
    let inner: Vec<Id> = nodes(eg, x, OpKind::Neg)
        .iter()
        .map(|m| m.children()[0])
        .collect();
    inner
        .into_iter()
        .filter_map(|y| add(eg, Op::Unary(UnaryOp::Abs), vec![y]))
        .collect()
}

fn select_same(_: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let c = n.children();
    if c[1] == c[2] { vec![c[1]] } else { vec![] }
}

fn cast_same(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let x = n.children()[0];
    match n.op() {
        Op::Cast(to) if eg[x].data.ty.dtype == *to => vec![x],
        _ => vec![],
    }
}
