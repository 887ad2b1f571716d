//! kiln-runtime: compiled graphs ([`Executable`]) with a checked call API, and
//! aligned buffers.

mod buffer;
mod executable;

pub use buffer::{ALIGN, AlignedBuffer};
pub use executable::{CompileError, CompileOptions, CompileTimings, Executable, RunError};
