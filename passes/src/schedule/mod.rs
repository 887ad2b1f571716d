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
//!
//! The kernel program's types live in [`kiln_ir::kernel`] (the code generator
//! needs them without the optimizer); they are re-exported here.

mod build;
mod merge;
mod rows;

pub use build::{ScheduleError, schedule};
pub use kiln_ir::kernel::{
    ALIGN, Access, Affine, Buffer, BufferId, BufferKind, CallInput, CallKernel, Expr, ExprId,
    ExprNode, Kernel, KernelId, KernelProgram, LoopKernel, MemoryPlan, Reduction, RowReduction,
    call_takes_views,
};
