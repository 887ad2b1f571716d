//! kiln-codegen: kernel programs to native code with Cranelift.
//!
//! - [`lower`]: loop kernels to Cranelift IR and machine code; one entry point per
//!   program.
//! - [`library`]: routines the generated code calls (contractions, pooling, ...).

pub mod conv;
pub mod gemm;
pub mod index;
pub mod library;
pub mod lower;
pub mod movement;
pub mod parallel;

pub use lower::{CodegenError, CodegenOptions, CompiledProgram, compile, compile_with};
