//! Pattern fusion into the fused ops of the IR, chosen by the extractor's cost model
//! (a fused node reads its operands once and writes one result):
//!
//! - `a * b + c -> fma(a, b, c)` (floats), which also fuses the optimizer update
//!   chains (`β·m + (1-β)·g`, `p - lr·u`) once constants are folded;
//! - `a @ b + broadcast(bias) -> matmul_bias(a, b, bias)` and
//!   `relu(matmul_bias(..)) -> matmul_bias(.., relu=true)`: the GEMM epilogue;
//! - relu backward: the mask `x > 0` of relu's gradient is also `relu(x) > 0`, so
//!   where `relu(x)` is computed anyway the mask reads it, and the pre-activation `x`
//!   need not be kept once the forward matmul, bias and relu are fused.

use egg::Id;
use kiln_ir::{CmpOp, Op, OpKind, Shape, UnaryOp};

use super::{Rule, add, is_splat, nodes, splat, splat_like, ty};
use crate::optimize::analysis::TensorGraph;
use crate::optimize::lang::ENode;

/// The rules of this group.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "fusion/fma",
            roots: &[OpKind::Add],
            matcher: fma_add,
        },
        Rule {
            name: "fusion/fma-sub",
            roots: &[OpKind::Sub],
            matcher: fma_sub,
        },
        Rule {
            name: "fusion/matmul-bias",
            roots: &[OpKind::Add],
            matcher: matmul_bias,
        },
        Rule {
            name: "fusion/matmul-bias-relu",
            roots: &[OpKind::Relu],
            matcher: matmul_bias_relu,
        },
        Rule {
            name: "fusion/relu-mask",
            roots: &[OpKind::Gt],
            matcher: relu_mask,
        },
    ]
}

fn fma_add(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let (l, r) = (n.children()[0], n.children()[1]);
    if !eg[l].data.ty.dtype.is_float() {
        return vec![];
    }
    let mut out = Vec::new();
    for (m, c) in [(l, r), (r, l)] {
        for mul in nodes(eg, m, OpKind::Mul) {
            let (a, b) = (mul.children()[0], mul.children()[1]);
            out.extend(add(eg, Op::Fma, vec![a, b, c]));
        }
    }
    out
}

/// `a*b - c = fma(a, b, -c)` and `c - a*b = fma(a, -b, c)`, only where the negation
/// folds (a splat), so no `neg` node is added.
fn fma_sub(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let (l, r) = (n.children()[0], n.children()[1]);
    if !eg[l].data.ty.dtype.is_float() {
        return vec![];
    }
    let t = ty(eg, l);
    let mut out = Vec::new();
    if let Some(v) = splat(eg, r) {
        let nc = splat_like(eg, -v, &t);
        for mul in nodes(eg, l, OpKind::Mul) {
            let (a, b) = (mul.children()[0], mul.children()[1]);
            out.extend(add(eg, Op::Fma, vec![a, b, nc]));
        }
    }
    for mul in nodes(eg, r, OpKind::Mul) {
        let (a, b) = (mul.children()[0], mul.children()[1]);
        for (x, k) in [(a, b), (b, a)] {
            if let Some(v) = splat(eg, k) {
                let nk = splat_like(eg, -v, &t);
                out.extend(add(eg, Op::Fma, vec![x, nk, l]));
            }
        }
    }
    out
}

/// `a·b + bias` (a row vector broadcast over the rows) as one `matmul_bias`; also
/// through a reshape of the product that keeps its last axis (the input
/// projection of every step of a sequence, `[T·B, n]` seen as `[T, B, n]`).
fn matmul_bias(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    let (l, r) = (n.children()[0], n.children()[1]);
    let mut out = Vec::new();
    for (p, q) in [(l, r), (r, l)] {
        let out_ty = ty(eg, p);
        if out_ty.shape.rank() == 0 {
            continue;
        }
        let cols = out_ty.shape.dim(out_ty.shape.rank() - 1);
        // The products in `p`'s class, and through a reshape that keeps the last
        // axis, each with the reshape (if any) to apply to the fused product.
        let mut products: Vec<(ENode, bool)> = nodes(eg, p, OpKind::MatMul)
            .into_iter()
            .map(|m| (m, false))
            .collect();
        for rs in nodes(eg, p, OpKind::Reshape) {
            let inner = rs.children()[0];
            let it = ty(eg, inner);
            if it.shape.rank() >= 2 && it.shape.dim(it.shape.rank() - 1) == cols {
                products.extend(
                    nodes(eg, inner, OpKind::MatMul)
                        .into_iter()
                        .map(|m| (m, true)),
                );
            }
        }
        if products.is_empty() {
            continue;
        }
        for bc in nodes(eg, q, OpKind::Broadcast) {
            let bias = bc.children()[0];
            let bt = ty(eg, bias);
            // [n], or [1, ..., 1, n]: reshaped to [n].
            let row_vector = bt.shape.rank() >= 1
                && bt.shape.dim(bt.shape.rank() - 1) == cols
                && bt.shape.dims()[..bt.shape.rank() - 1]
                    .iter()
                    .all(|&d| d == 1);
            if !row_vector {
                continue;
            }
            let Some(bias) = super::reshape(eg, bias, Shape::from([cols])) else {
                continue;
            };
            for (mm, reshaped) in &products {
                let (a, b) = (mm.children()[0], mm.children()[1]);
                let Some(fused) = add(eg, Op::MatMulBias { relu: false }, vec![a, b, bias]) else {
                    continue;
                };
                if *reshaped {
                    out.extend(super::reshape(eg, fused, out_ty.shape.clone()));
                } else {
                    out.push(fused);
                }
            }
        }
    }
    out
}

fn matmul_bias_relu(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    if *n.op() != Op::Unary(UnaryOp::Relu) {
        return vec![];
    }
    let x = n.children()[0];
    let mut out = Vec::new();
    for m in nodes(eg, x, OpKind::MatMulBias) {
        if *m.op() == (Op::MatMulBias { relu: false }) {
            out.extend(add(
                eg,
                Op::MatMulBias { relu: true },
                m.children().to_vec(),
            ));
        }
    }
    out
}

fn relu_mask(eg: &mut TensorGraph, _: Id, n: &ENode) -> Vec<Id> {
    if *n.op() != Op::Compare(CmpOp::Gt) {
        return vec![];
    }
    let (x, z) = (n.children()[0], n.children()[1]);
    if !is_splat(eg, z, 0.0) || !eg[x].data.ty.dtype.is_float() {
        return vec![];
    }
    // Only where relu(x) already exists: the rule must not add work.
    let Some(r) = eg.lookup(ENode::new(Op::Unary(UnaryOp::Relu), vec![x])) else {
        return vec![];
    };
    if r == eg.find(x) {
        return vec![];
    }
    add(eg, Op::Compare(CmpOp::Gt), vec![r, z])
        .into_iter()
        .collect()
}
