//! Liveness of the temporaries and their placement in one arena.

use super::{ALIGN, BufferId, BufferKind, KernelId, KernelProgram};

/// Where each temporary lives in the arena.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryPlan {
    /// Byte offset in the arena for each temporary buffer (`None` for other kinds),
    /// by [`BufferId::index`].
    pub offsets: Vec<Option<usize>>,
    /// Arena size in bytes.
    pub arena_bytes: usize,
    /// What the arena would take without reuse.
    pub unshared_bytes: usize,
}

impl MemoryPlan {
    /// The arena offset of buffer `b`, if it is a temporary that is stored.
    pub fn offset(&self, b: BufferId) -> Option<usize> {
        self.offsets[b.index()]
    }
}

impl KernelProgram {
    /// Places temporaries in an arena, reusing the memory of buffers whose last
    /// reader has run (first fit over free blocks in kernel order). Outputs are
    /// placed too: the runtime copies them out after the call.
    pub fn plan_memory(&self) -> MemoryPlan {
        let n = self.buffers.len();
        let mut last_use = vec![KernelId(0); n];
        for (k, kernel) in self.kernels_with_ids() {
            for b in kernel.reads() {
                last_use[b.index()] = last_use[b.index()].max(k);
            }
        }
        let end = KernelId::new(self.kernels.len());
        for &o in &self.outputs {
            last_use[o.index()] = end;
        }
        let size = |b: BufferId| self.buffer(b).ty.size_bytes().max(1).div_ceil(ALIGN) * ALIGN;
        let mut offsets = vec![None; n];
        // Live blocks: (offset, size, last use).
        let mut live: Vec<(usize, usize, KernelId)> = Vec::new();
        let mut arena = 0;
        let mut unshared = 0;
        for (k, b) in self
            .kernels_with_ids()
            .flat_map(|(k, kernel)| kernel.writes().into_iter().map(move |b| (k, b)))
        {
            if self.buffer(b).kind != BufferKind::Temp {
                continue;
            }
            // A kernel may not write over its own inputs, so free only blocks whose
            // last reader ran strictly before this kernel.
            live.retain(|&(_, _, last)| last >= k);
            let s = size(b);
            unshared += s;
            live.sort_unstable();
            let mut at = 0;
            for &(o, sz, _) in &live {
                if o >= at + s {
                    break;
                }
                at = at.max(o + sz);
            }
            offsets[b.index()] = Some(at);
            arena = arena.max(at + s);
            live.push((at, s, last_use[b.index()].max(k)));
        }
        MemoryPlan {
            offsets,
            arena_bytes: arena,
            unshared_bytes: unshared,
        }
    }
}
