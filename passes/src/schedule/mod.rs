//! Scheduling: turns a graph into a *kernel program* — loop nests and library calls
//! over flat buffers — that the code generator lowers one kernel at a time.
//!
//! Fusion rules (increment 1):
//! - *Views* (`broadcast`, `transpose`, `slice`, `reshape` of a buffer,
//!   `stop_gradient`) never copy: they become affine index maps of the loads that
//!   read through them.
//! - Elementwise ops (and splat constants, `random_uniform`) are inlined into their
//!   consumers; a node used by several consumers is recomputed in each while its
//!   inlined expression is cheap, else computed once into a buffer.
//! - A reduction is one loop kernel whose inner loops evaluate its (fused) input.
//! - Contractions, pooling, gather/scatter, `one_hot` (it validates its indices),
//!   `argmax`, `pad` and `concat` are library calls over materialized, contiguous
//!   operands.
//!
//! Every kernel writes one contiguous buffer. Temporary buffers are placed in one
//! arena by liveness ([`KernelProgram::plan_memory`]), so memory is reused.

mod build;
mod merge;
mod print;
mod rows;

use kiln_ir::{
    BinaryOp, CmpOp, DType, HostTensor, NodeId, Op, ReduceOp, Shape, TensorType, UnaryOp,
};

pub use build::{ScheduleError, schedule};

/// Index of a buffer in [`KernelProgram::buffers`].
pub type BufferId = usize;

/// Where a buffer's memory comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum BufferKind {
    /// Argument `i` of the graph (fed by the caller).
    Arg(usize),
    /// A literal, owned by the compiled program.
    Const(HostTensor),
    /// Written by a kernel; lives in the arena (or in an output, see
    /// [`KernelProgram::outputs`]).
    Temp,
}

/// A dense, row-major buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    pub ty: TensorType,
    pub kind: BufferKind,
    /// The graph node whose value the buffer holds.
    pub node: NodeId,
}

/// A load address: element `offset + Σ strides[k] · i[k]` of `buffer`, where `i` are
/// the kernel's loop indices.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Access {
    pub buffer: BufferId,
    pub offset: usize,
    pub strides: Vec<usize>,
}

/// An integer computed from the loop indices: `offset + Σ strides[k] · i[k]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Affine {
    pub offset: usize,
    pub strides: Vec<usize>,
}

/// One scalar computation in a loop body; operands refer to earlier expressions.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Load(Access),
    /// A literal of the expression's dtype.
    Const(f64),
    Unary(UnaryOp, usize),
    Binary(BinaryOp, usize, usize),
    Compare(CmpOp, usize, usize),
    Select(usize, usize, usize),
    /// `a * b + c` with one rounding.
    Fma(usize, usize, usize),
    Cast(usize),
    /// `random_uniform`: the counter-based sample for element `flat` (see
    /// `kiln_ir::interp::uniform_sample`) with the seed loaded from `seed`.
    Random {
        seed: Access,
        salt: u32,
        flat: Affine,
    },
    /// The value of the kernel's row reduction `k` (see [`RowReduction`]) for the
    /// current outer indices.
    Row(usize),
}

/// A reduction over the last loop, computed inside the kernel that consumes it,
/// once per value of the outer loops, before the kernel's own last loop: the max
/// and the sum of a softmax run in the same kernel as the division, and their
/// results never go to memory.
#[derive(Clone, Debug, PartialEq)]
pub struct RowReduction {
    pub kind: ReduceOp,
    /// Length of the reduced (last) loop.
    pub len: usize,
    /// Expressions in the kernel's index space, the last index running over `len`;
    /// they may use earlier row reductions.
    pub exprs: Vec<ExprNode>,
    pub value: usize,
}

/// An expression with its result dtype.
#[derive(Clone, Debug, PartialEq)]
pub struct ExprNode {
    pub expr: Expr,
    pub dtype: DType,
}

/// A reduction over the innermost `count` loops of a [`LoopKernel`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reduction {
    pub kind: ReduceOp,
    pub count: usize,
}

/// A loop nest over `dims` evaluating `exprs` and storing `value` (reduced over the
/// innermost loops if `reduce` is set) to `out`, contiguously over the non-reduced
/// loops.
#[derive(Clone, Debug, PartialEq)]
pub struct LoopKernel {
    pub dims: Vec<usize>,
    pub reduce: Option<Reduction>,
    /// Reductions computed per outer index before the last loop, in order.
    pub rows: Vec<RowReduction>,
    pub exprs: Vec<ExprNode>,
    pub value: usize,
    pub out: BufferId,
    /// Further values stored at the same index (elementwise kernels only): a
    /// kernel that absorbed another elementwise kernel over the same loops keeps
    /// writing that kernel's result (see `merge`).
    pub also: Vec<(usize, BufferId)>,
}

impl LoopKernel {
    /// The loops whose indices address the output (all but the reduced ones).
    pub fn outer_dims(&self) -> &[usize] {
        &self.dims[..self.dims.len() - self.reduce.map_or(0, |r| r.count)]
    }
}

/// An operand of a library call: `ty`'s elements read from `buffer` at
/// `offset + Σ strides[d] · index[d]` (contiguous unless the call accepts views).
#[derive(Clone, Debug, PartialEq)]
pub struct CallInput {
    pub ty: TensorType,
    pub access: Access,
}

impl CallInput {
    /// True if the operand is the whole buffer in row-major order.
    pub fn is_contiguous(&self) -> bool {
        self.access.offset == 0 && self.access.strides == self.ty.shape.strides()
    }
}

/// A library routine applied to whole buffers: `op(inputs) -> out`.
#[derive(Clone, Debug, PartialEq)]
pub struct CallKernel {
    pub op: Op,
    pub inputs: Vec<CallInput>,
    pub out: BufferId,
}

/// True for calls that read their operands through strided views (GEMM handles
/// any row and column strides, so transposes and broadcasts feeding it are free).
pub fn call_takes_views(op: &Op) -> bool {
    matches!(op, Op::MatMul | Op::MatMulBias { .. })
}

/// One unit of generated code.
#[derive(Clone, Debug, PartialEq)]
pub enum Kernel {
    Loop(LoopKernel),
    Call(CallKernel),
}

impl Kernel {
    pub fn out(&self) -> BufferId {
        match self {
            Kernel::Loop(k) => k.out,
            Kernel::Call(k) => k.out,
        }
    }

    /// Every buffer the kernel writes.
    pub fn writes(&self) -> Vec<BufferId> {
        match self {
            Kernel::Loop(k) => std::iter::once(k.out)
                .chain(k.also.iter().map(|&(_, b)| b))
                .collect(),
            Kernel::Call(k) => vec![k.out],
        }
    }

    /// Buffers the kernel reads.
    pub fn reads(&self) -> Vec<BufferId> {
        match self {
            Kernel::Call(k) => k.inputs.iter().map(|i| i.access.buffer).collect(),
            Kernel::Loop(k) => k
                .rows
                .iter()
                .flat_map(|r| &r.exprs)
                .chain(&k.exprs)
                .filter_map(|e| match &e.expr {
                    Expr::Load(a) | Expr::Random { seed: a, .. } => Some(a.buffer),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// A graph scheduled into kernels over buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelProgram {
    pub name: String,
    pub buffers: Vec<Buffer>,
    /// Kernels in execution order.
    pub kernels: Vec<Kernel>,
    /// The buffer of each graph argument, in calling order.
    pub args: Vec<BufferId>,
    /// The buffer of each graph output, in order (an argument, a constant or a
    /// temporary; the same buffer may appear more than once).
    pub outputs: Vec<BufferId>,
    pub output_names: Vec<Option<String>>,
}

/// Where each temporary lives in the arena.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryPlan {
    /// Byte offset in the arena for each temporary buffer (`None` for other kinds).
    pub offsets: Vec<Option<usize>>,
    /// Arena size in bytes.
    pub arena_bytes: usize,
    /// What the arena would take without reuse.
    pub unshared_bytes: usize,
}

/// Arena offsets are multiples of this, so vector loads stay aligned.
pub const ALIGN: usize = 64;

impl KernelProgram {
    /// Places temporaries in an arena, reusing the memory of buffers whose last
    /// reader has run (first fit over free blocks in kernel order). Outputs are
    /// placed too: the runtime copies them out after the call.
    pub fn plan_memory(&self) -> MemoryPlan {
        let n = self.buffers.len();
        let mut last_use = vec![0usize; n];
        for (k, kernel) in self.kernels.iter().enumerate() {
            for b in kernel.reads() {
                last_use[b] = last_use[b].max(k);
            }
        }
        let end = self.kernels.len();
        for &o in &self.outputs {
            last_use[o] = end;
        }
        let size = |b: BufferId| self.buffers[b].ty.size_bytes().max(1).div_ceil(ALIGN) * ALIGN;
        let mut offsets = vec![None; n];
        // Live blocks: (offset, size, last use).
        let mut live: Vec<(usize, usize, usize)> = Vec::new();
        let mut arena = 0;
        let mut unshared = 0;
        for (k, b) in self
            .kernels
            .iter()
            .enumerate()
            .flat_map(|(k, kernel)| kernel.writes().into_iter().map(move |b| (k, b)))
        {
            if self.buffers[b].kind != BufferKind::Temp {
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
            offsets[b] = Some(at);
            arena = arena.max(at + s);
            live.push((at, s, last_use[b].max(k)));
        }
        MemoryPlan {
            offsets,
            arena_bytes: arena,
            unshared_bytes: unshared,
        }
    }

    /// Number of loop kernels and library calls.
    pub fn kernel_counts(&self) -> (usize, usize) {
        let loops = self
            .kernels
            .iter()
            .filter(|k| matches!(k, Kernel::Loop(_)))
            .count();
        (loops, self.kernels.len() - loops)
    }
}
