//! kiln-runtime: compiled graphs ([`Executable`]) with a checked call API, and
//! aligned buffers; data sets and readers ([`data`]); checkpoints ([`checkpoint`]);
//! compile dumps (`KILN_DUMP`, [`dump`]).

mod buffer;
pub mod checkpoint;
pub mod data;
pub mod dump;
mod executable;

pub use buffer::{ALIGN, AlignedBuffer};
pub use executable::{
    CompileError, CompileOptions, CompileTimings, CompileTrace, DEFAULT_MEMORY_LIMIT, Executable,
    RunError, check_memory,
};
