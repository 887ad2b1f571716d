//! Horizontal fusion: an elementwise kernel whose result a later elementwise kernel
//! over the same loops reads element by element joins that kernel, which then
//! stores both results in one pass. An optimizer update — new momentum, new second
//! moment, new parameter — becomes one loop that reads the gradient once. So does
//! an elementwise kernel and a later one over the same loops that reads none of its
//! results but loads some of the same data (siblings): the backward step of an
//! LSTM computes the four gate gradients from one shared cell gradient, once.

use kiln_ir::Shape;

use super::{
    Access, BufferId, Expr, ExprId, ExprNode, Kernel, KernelId, KernelProgram, LoopKernel,
};

/// How many kernels after a kernel another may be and still join it (the search
/// stays linear in the program's size).
const WINDOW: usize = 64;

/// How many kernels past the first reader of a kernel's results a sibling may be
/// and still join it.
const SIBLING_WINDOW: usize = 8;

/// Where a merged pair runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// In the later kernel's place (nothing in between reads the earlier one's
    /// results).
    Later,
    /// In the earlier kernel's place (the later one, a sibling, reads nothing
    /// written in between).
    Earlier,
}

/// Merges kernels until nothing more merges.
pub(super) fn merge_elementwise(p: &mut KernelProgram) {
    let mut start = 0;
    while let Some((pi, ki, at)) = candidate(p, start) {
        // Kernels more than a window before the pair never saw it: their search
        // cannot have changed.
        start = pi.index().saturating_sub(WINDOW);
        let ki = match at {
            At::Later => ki,
            At::Earlier => {
                // The later kernel moves next to the earlier one; the merge below
                // then leaves the pair in the earlier one's place.
                let k = p.kernels.remove(ki.index());
                p.kernels.insert(pi.index() + 1, k);
                KernelId::new(pi.index() + 1)
            }
        };
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

/// An elementwise kernel `pi` and a later one `ki` over the same loops that
/// either reads `pi`'s results only at their own index, with no kernel in between
/// reading any of them (once merged, they are written later), or reads none of
/// them but some of the same data (siblings; merged in either place, whichever is
/// free of conflicts).
fn candidate(p: &KernelProgram, start: usize) -> Option<(KernelId, KernelId, At)> {
    // What each kernel from `start` on reads and writes, listed once per search.
    let searched = p.kernels.get(start..).unwrap_or_default();
    let reads: Vec<Vec<BufferId>> = searched.iter().map(Kernel::reads).collect();
    let writes: Vec<Vec<BufferId>> = searched.iter().map(Kernel::writes).collect();
    let (reads, writes) = (|i: usize| &reads[i - start], |i: usize| &writes[i - start]);
    for (pi, first) in p.kernels.iter().enumerate().skip(start) {
        let Kernel::Loop(prev) = first else { continue };
        if prev.reduce.is_some() || !prev.rows.is_empty() || prev.dims.is_empty() {
            continue;
        }
        // `prev` may already carry the results of kernels merged into it.
        let written = writes(pi);
        let identity = Shape::new(prev.dims.clone()).strides();
        // Whether a kernel since `prev` reads its results, and what those kernels
        // write.
        let mut read_since = false;
        let mut written_since: Vec<BufferId> = Vec::new();
        let mut past_reader = 0;
        for ki in pi + 1..p.kernels.len().min(pi + 1 + WINDOW) {
            // Past the first reader only nearby siblings can join.
            if read_since {
                past_reader += 1;
                if past_reader > SIBLING_WINDOW {
                    break;
                }
            }
            let reads_prev = reads(ki).iter().any(|b| written.contains(b));
            if let Kernel::Loop(k) = &p.kernels[ki] {
                if !reads_prev && siblings(prev, k) {
                    if !read_since {
                        return Some((KernelId::new(pi), KernelId::new(ki), At::Later));
                    }
                    if !reads(ki).iter().any(|b| written_since.contains(b)) {
                        return Some((KernelId::new(pi), KernelId::new(ki), At::Earlier));
                    }
                }
                if reads_prev && !read_since && same_loops(prev, k) {
                    let elementwise_read = k.exprs.iter().all(|e| match &e.expr {
                        Expr::Load(a) if written.contains(&a.buffer) => {
                            a.offset == 0 && a.strides == identity
                        }
                        Expr::Random { seed, .. } => !written.contains(&seed.buffer),
                        _ => true,
                    });
                    if elementwise_read {
                        return Some((KernelId::new(pi), KernelId::new(ki), At::Later));
                    }
                }
            }
            read_since |= reads_prev;
            written_since.extend_from_slice(writes(ki));
        }
    }
    None
}

/// Whether `k` is elementwise over the loops of `prev`.
fn same_loops(prev: &LoopKernel, k: &LoopKernel) -> bool {
    k.reduce.is_none() && k.rows.is_empty() && k.dims == prev.dims
}

/// Whether `k` is elementwise over the loops of `prev` and loads some of the same
/// data at the same places: a tensor, not a scalar (the learning rate every
/// parameter's update reads does not make the updates one loop).
fn siblings(prev: &LoopKernel, k: &LoopKernel) -> bool {
    let tensor = |a: &Access| a.strides.iter().any(|&s| s != 0);
    same_loops(prev, k) && loads(k).any(|a| tensor(a) && loads(prev).any(|b| a == b))
}

/// The loads of `k`'s expressions.
fn loads(k: &LoopKernel) -> impl Iterator<Item = &Access> {
    k.exprs.iter().filter_map(|e| match &e.expr {
        Expr::Load(a) => Some(a),
        _ => None,
    })
}
