//! The kernel program: what the scheduler makes of a graph and the code generator
//! lowers, loop nests and library calls over flat, row-major buffers.
//!
//! A [`KernelProgram`] is a table of [`Buffer`]s (arguments, literals and
//! temporaries) and a list of [`Kernel`]s in execution order. A [`LoopKernel`] is a
//! loop nest evaluating a small expression list ([`ExprNode`]s whose operands are
//! earlier expressions) and storing it contiguously, possibly reduced over its
//! innermost loops or with [`RowReduction`]s computed per outer index; a
//! [`CallKernel`] is a library routine over whole buffers; a [`ScanKernel`] runs a
//! kernel program of its own (a loop body) once per step of a `scan`. Buffers,
//! expressions and kernels are named by typed ids ([`BufferId`], [`ExprId`],
//! [`KernelId`]).
//!
//! - [`memory`]: liveness and the arena plan of the temporaries.
//! - `print`: the text form ([`std::fmt::Display`] of [`KernelProgram`]).

use std::fmt;

use crate::{BinaryOp, CmpOp, DType, HostTensor, NodeId, Op, ReduceOp, TensorType, UnaryOp};

pub mod memory;
mod print;

pub use memory::MemoryPlan;

/// Arena offsets and runtime buffers are aligned to this many bytes, so vector
/// loads stay aligned (a cache line, enough for any vector register).
pub const ALIGN: usize = 64;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);

        impl $name {
            /// The id of position `i`.
            ///
            /// # Panics
            /// If `i` does not fit in 32 bits.
            pub fn new(i: usize) -> Self {
                $name(u32::try_from(i).expect("id fits in 32 bits"))
            }

            /// The position this id names.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id!(
    /// A buffer of [`KernelProgram::buffers`] (printed `b<i>`).
    BufferId,
    "b"
);
id!(
    /// An expression of a loop body or row reduction, by position in its list
    /// (printed `e<i>`).
    ExprId,
    "e"
);
id!(
    /// A kernel of [`KernelProgram::kernels`] (printed `k<i>`).
    KernelId,
    "k"
);

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
    Unary(UnaryOp, ExprId),
    Binary(BinaryOp, ExprId, ExprId),
    Compare(CmpOp, ExprId, ExprId),
    Select(ExprId, ExprId, ExprId),
    /// `a * b + c` with one rounding.
    Fma(ExprId, ExprId, ExprId),
    Cast(ExprId),
    /// `random_uniform`: the counter-based sample for element `flat` (see
    /// `kiln_ir::interp::uniform_sample`) with the seed loaded from `seed`.
    Random {
        seed: Access,
        salt: u32,
        flat: Affine,
    },
    /// The value of the kernel's row reduction `k` (see [`RowReduction`], by
    /// position in [`LoopKernel::rows`]) for the current outer indices.
    Row(usize),
}

impl Expr {
    /// The same expression with every operand passed through `f` (loads,
    /// constants, random samples and row values have none).
    pub fn map_operands(self, mut f: impl FnMut(ExprId) -> ExprId) -> Expr {
        match self {
            Expr::Unary(u, x) => Expr::Unary(u, f(x)),
            Expr::Binary(b, x, y) => Expr::Binary(b, f(x), f(y)),
            Expr::Compare(c, x, y) => Expr::Compare(c, f(x), f(y)),
            Expr::Select(c, x, y) => Expr::Select(f(c), f(x), f(y)),
            Expr::Fma(x, y, z) => Expr::Fma(f(x), f(y), f(z)),
            Expr::Cast(x) => Expr::Cast(f(x)),
            e @ (Expr::Load(_) | Expr::Const(_) | Expr::Random { .. } | Expr::Row(_)) => e,
        }
    }
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
    pub value: ExprId,
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
    pub value: ExprId,
    pub out: BufferId,
    /// Further values stored at the same index (elementwise kernels only): a
    /// kernel that absorbed another elementwise kernel over the same loops keeps
    /// writing that kernel's result (see the scheduler's horizontal fusion).
    pub also: Vec<(ExprId, BufferId)>,
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

/// The loop of a `scan` (see [`crate::Scan`]): `length` runs of `body`, a kernel
/// program compiled once, whose arguments are the carries, one step's slice of each
/// stacked input and the constants, and whose outputs are the new carries and the
/// step's `ys`.
///
/// The generated code keeps two slots per carry and alternates between them (the
/// step reads one and writes the other), writes each step's `ys` straight into
/// their slice of the stacked result, and reads each step's slice of the `xs` in
/// place: no step allocates or copies the state.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanKernel {
    /// The body, scheduled on its own.
    pub body: Box<KernelProgram>,
    pub length: usize,
    /// Steps run from the last to the first.
    pub reverse: bool,
    /// How many of the operands are initial carries, and how many stacked inputs
    /// follow them; the rest are constants.
    pub carries: usize,
    pub xs: usize,
    /// The outer buffers of the initial carries, stacked inputs and constants, in
    /// the body's argument order.
    pub operands: Vec<BufferId>,
    /// The outer buffer of each result (final carries, then stacked `ys`), or
    /// `None` for a result nothing reads.
    pub results: Vec<Option<BufferId>>,
}

/// One unit of generated code.
#[derive(Clone, Debug, PartialEq)]
pub enum Kernel {
    Loop(LoopKernel),
    Call(CallKernel),
    Scan(ScanKernel),
}

impl Kernel {
    /// The (first) buffer the kernel writes.
    pub fn out(&self) -> BufferId {
        match self {
            Kernel::Loop(k) => k.out,
            Kernel::Call(k) => k.out,
            Kernel::Scan(k) => k
                .results
                .iter()
                .flatten()
                .copied()
                .next()
                .expect("a scheduled scan writes at least one result"),
        }
    }

    /// Every buffer the kernel writes.
    pub fn writes(&self) -> Vec<BufferId> {
        match self {
            Kernel::Loop(k) => std::iter::once(k.out)
                .chain(k.also.iter().map(|&(_, b)| b))
                .collect(),
            Kernel::Call(k) => vec![k.out],
            Kernel::Scan(k) => k.results.iter().flatten().copied().collect(),
        }
    }

    /// Buffers the kernel reads.
    pub fn reads(&self) -> Vec<BufferId> {
        match self {
            Kernel::Call(k) => k.inputs.iter().map(|i| i.access.buffer).collect(),
            Kernel::Scan(k) => k.operands.clone(),
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

impl KernelProgram {
    /// The buffer `id` names.
    pub fn buffer(&self, id: BufferId) -> &Buffer {
        &self.buffers[id.index()]
    }

    /// The kernel `id` names.
    pub fn kernel(&self, id: KernelId) -> &Kernel {
        &self.kernels[id.index()]
    }

    /// Every kernel with its id, in execution order.
    pub fn kernels_with_ids(&self) -> impl Iterator<Item = (KernelId, &Kernel)> {
        self.kernels
            .iter()
            .enumerate()
            .map(|(i, k)| (KernelId::new(i), k))
    }

    /// Number of loop kernels and library calls (scans are neither; see
    /// [`KernelProgram::scans`]).
    pub fn kernel_counts(&self) -> (usize, usize) {
        let count = |f: fn(&Kernel) -> bool| self.kernels.iter().filter(|k| f(k)).count();
        (
            count(|k| matches!(k, Kernel::Loop(_))),
            count(|k| matches!(k, Kernel::Call(_))),
        )
    }

    /// The scan kernels of this program (not of their bodies).
    pub fn scans(&self) -> impl Iterator<Item = &ScanKernel> {
        self.kernels.iter().filter_map(|k| match k {
            Kernel::Scan(s) => Some(s),
            _ => None,
        })
    }
}
