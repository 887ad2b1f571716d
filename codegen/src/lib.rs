//! kiln-codegen: kernel programs ([`kiln_ir::kernel`]) to native code, in two
//! halves.
//!
//! - [`lower`]: Cranelift lowering. Every loop kernel becomes a function of loop
//!   nests (vectorized inner loops, reductions, row reductions) over the buffer
//!   table, and one entry function runs the kernels in order: a compiled program
//!   is a single native entry point.
//! - [`library`]: the native kernel library the entry calls for everything that
//!   is not a loop: GEMMs, convolutions, pooling, gather/scatter, pad/concat, with
//!   the C-ABI symbols the JIT links against.
//! - [`scan`]: the native loop of a `scan`, running its compiled body once per
//!   step.
//! - [`parallel`]: the worker pool both halves split long work across.
//! - [`buffer`]: the aligned memory of arenas, constants and loop state.
//! - [`collective`]: the process group a compiled `all_reduce` sums over.

pub mod buffer;
pub mod collective;
pub mod library;
pub mod lower;
pub mod parallel;
pub mod scan;

pub use lower::{CodegenError, CodegenOptions, CompiledProgram, compile, compile_with};
