//! kiln-runtime: compiled graphs ([`Executable`]) with a checked call API, and
//! aligned buffers; data sets and readers ([`data`]); checkpoints ([`checkpoint`]);
//! compile dumps (`KILN_DUMP`, [`dump`]).

pub mod checkpoint;
pub mod data;
pub mod dump;
mod executable;

pub use executable::{
    CompileError, CompileOptions, CompileTimings, CompileTrace, DEFAULT_MEMORY_LIMIT, Executable,
    RunError, check_memory,
};
pub use kiln_codegen::buffer::AlignedBuffer;
pub use kiln_codegen::collective::{Collective, CollectiveError};
/// Alignment of every runtime buffer: the kernel program's arena alignment (a
/// cache line, and enough for any vector load).
pub use kiln_ir::kernel::ALIGN;
