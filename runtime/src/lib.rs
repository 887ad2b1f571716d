//! kiln-runtime: compiled graphs ([`Executable`]) with a checked call API, and
//! aligned buffers; data sets and readers ([`data`]); checkpoints ([`checkpoint`]).

mod buffer;
pub mod checkpoint;
pub mod data;
mod executable;

pub use buffer::{ALIGN, AlignedBuffer};
pub use executable::{CompileError, CompileOptions, CompileTimings, Executable, RunError};
