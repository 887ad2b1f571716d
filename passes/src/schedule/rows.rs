//! Row fusion: a reduction over the last axis whose only consumer is a kernel with
//! the same outer loops moves into that kernel as a [`RowReduction`], computed per
//! outer index just before the consumer's last loop. Softmax and log-softmax become
//! one kernel: max and sum of each row are registers, not buffers.

use kiln_ir::Shape;

use super::{BufferKind, Expr, Kernel, KernelId, KernelProgram, RowReduction};

/// Applies row fusion until nothing more fuses.
pub(super) fn fuse_row_reductions(p: &mut KernelProgram) {
    while let Some((ri, ki)) = candidate(p) {
        let (ri, ki) = (ri.index(), ki.index());
        let Kernel::Loop(r) = p.kernels.remove(ri) else {
            unreachable!("candidates are loops")
        };
        let ki = if ki > ri { ki - 1 } else { ki };
        let Kernel::Loop(k) = &mut p.kernels[ki] else {
            unreachable!("candidates are loops")
        };
        let kind = r.reduce.expect("a reduction").kind;
        let row = RowReduction {
            kind,
            len: *r.dims.last().expect("a reduced loop"),
            exprs: r.exprs,
            value: r.value,
        };
        // The new row goes first: it reads only buffers, while rows already there
        // (and the body) may read it.
        let shift = |e: &mut Expr| {
            if let Expr::Row(j) = e {
                *j += 1;
            }
        };
        let replace = |e: &mut Expr| {
            if matches!(e, Expr::Load(a) if a.buffer == r.out) {
                *e = Expr::Row(0);
            }
        };
        for node in k
            .rows
            .iter_mut()
            .flat_map(|x| x.exprs.iter_mut())
            .chain(k.exprs.iter_mut())
        {
            shift(&mut node.expr);
            replace(&mut node.expr);
        }
        k.rows.insert(0, row);
    }
}

/// A reduction kernel `ri` and its single consumer `ki` that can be fused.
fn candidate(p: &KernelProgram) -> Option<(KernelId, KernelId)> {
    for (ri, kernel) in p.kernels.iter().enumerate() {
        let Kernel::Loop(r) = kernel else { continue };
        let Some(red) = r.reduce else { continue };
        if red.count != 1 || !r.rows.is_empty() || r.dims.is_empty() {
            continue;
        }
        let b = r.out;
        if p.outputs.contains(&b) || p.buffer(b).kind != BufferKind::Temp {
            continue;
        }
        let readers: Vec<usize> = (0..p.kernels.len())
            .filter(|&k| k != ri && p.kernels[k].reads().contains(&b))
            .collect();
        let [ki] = readers[..] else { continue };
        let Kernel::Loop(k) = &p.kernels[ki] else {
            continue;
        };
        let outer = &r.dims[..r.dims.len() - 1];
        let same_loops = k.dims.len() == r.dims.len() && k.dims[..outer.len()] == *outer;
        let last_loop_free = k.reduce.is_none_or(|kr| kr.count == 1);
        // Every read of the result must address it by the outer indices alone.
        let mut want = Shape::new(outer.to_vec()).strides();
        want.push(0);
        let reads_by_row = k
            .rows
            .iter()
            .flat_map(|x| &x.exprs)
            .chain(&k.exprs)
            .all(|e| match &e.expr {
                Expr::Load(a) if a.buffer == b => a.offset == 0 && a.strides == want,
                Expr::Random { seed, .. } => seed.buffer != b,
                _ => true,
            });
        if same_loops && last_loop_free && reads_by_row {
            return Some((KernelId::new(ri), KernelId::new(ki)));
        }
    }
    None
}
