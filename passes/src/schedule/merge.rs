//! Horizontal fusion: an elementwise kernel whose result a later elementwise kernel
//! over the same loops reads element by element joins that kernel, which then
//! stores both results in one pass. An optimizer update — new momentum, new second
//! moment, new parameter — becomes one loop that reads the gradient once.

use kiln_ir::Shape;

use super::{BufferId, Expr, ExprId, ExprNode, Kernel, KernelId, KernelProgram};

/// Merges kernels until nothing more merges.
pub(super) fn merge_elementwise(p: &mut KernelProgram) {
    while let Some((pi, ki)) = candidate(p) {
        let Kernel::Loop(prev) = p.kernels.remove(pi.index()) else {
            unreachable!("candidates are loops")
        };
        let Kernel::Loop(k) = &mut p.kernels[ki.index() - 1] else {
            unreachable!("candidates are loops")
        };
        let shift = prev.exprs.len();
        let remap = |i: ExprId| ExprId::new(i.index() + shift);
        // Every buffer `prev` writes, with the expression that computes it.
        let written: Vec<(ExprId, BufferId)> = std::iter::once((prev.value, prev.out))
            .chain(prev.also.iter().copied())
            .collect();
        let mut exprs = prev.exprs;
        for node in k.exprs.drain(..) {
            let expr = match node.expr {
                Expr::Load(a) if written.iter().any(|&(_, b)| b == a.buffer) => {
                    // Same index, so the value is `prev`'s own (`dedup` folds the copy).
                    let (v, _) = written
                        .iter()
                        .copied()
                        .find(|&(_, b)| b == a.buffer)
                        .expect("checked");
                    exprs.push(exprs[v.index()].clone());
                    continue;
                }
                e => e.map_operands(remap),
            };
            exprs.push(ExprNode {
                expr,
                dtype: node.dtype,
            });
        }
        k.value = remap(k.value);
        for (v, _) in &mut k.also {
            *v = remap(*v);
        }
        k.also.extend(written);
        k.exprs = dedup(exprs, &mut k.value, &mut k.also);
    }
}

/// Removes repeated expressions (both kernels load the same gradient, say).
fn dedup(
    list: Vec<ExprNode>,
    value: &mut ExprId,
    also: &mut [(ExprId, BufferId)],
) -> Vec<ExprNode> {
    let mut out: Vec<ExprNode> = Vec::with_capacity(list.len());
    let mut map: Vec<ExprId> = Vec::with_capacity(list.len());
    for node in list {
        let node = ExprNode {
            expr: node.expr.map_operands(|i| map[i.index()]),
            dtype: node.dtype,
        };
        match out.iter().position(|e| *e == node) {
            Some(i) => map.push(ExprId::new(i)),
            None => {
                out.push(node);
                map.push(ExprId::new(out.len() - 1));
            }
        }
    }
    *value = map[value.index()];
    for (v, _) in also.iter_mut() {
        *v = map[v.index()];
    }
    out
}

/// An elementwise kernel `pi` and a later one `ki` over the same loops that reads
/// `pi`'s results only at their own index, with no kernel in between reading any of
/// them (once merged, they are written later).
fn candidate(p: &KernelProgram) -> Option<(KernelId, KernelId)> {
    for (pi, first) in p.kernels.iter().enumerate() {
        let Kernel::Loop(prev) = first else { continue };
        if prev.reduce.is_some() || !prev.rows.is_empty() || prev.dims.is_empty() {
            continue;
        }
        // `prev` may already carry the results of kernels merged into it.
        let written = first.writes();
        let identity = Shape::new(prev.dims.clone()).strides();
        for ki in pi + 1..p.kernels.len() {
            let reads = p.kernels[ki].reads().iter().any(|b| written.contains(b));
            if !reads {
                continue;
            }
            let Kernel::Loop(k) = &p.kernels[ki] else {
                break;
            };
            let same_loops = k.reduce.is_none() && k.rows.is_empty() && k.dims == prev.dims;
            let elementwise_read = k.exprs.iter().all(|e| match &e.expr {
                Expr::Load(a) if written.contains(&a.buffer) => {
                    a.offset == 0 && a.strides == identity
                }
                Expr::Random { seed, .. } => !written.contains(&seed.buffer),
                _ => true,
            });
            if same_loops && elementwise_read {
                return Some((KernelId::new(pi), KernelId::new(ki)));
            }
            // The first reader decides: a kernel in between needs `prev` first.
            break;
        }
    }
    None
}
