//! kiln-runtime: compiled graphs ([`Executable`]) with a checked call API, and
//! aligned buffers.

mod buffer;
mod executable;

pub use buffer::{AlignedBuffer, ALIGN};
pub use executable::{CompileError, CompileTimings, Executable, RunError};
