//! kiln: a deep-learning compiler for Rust.
//!
//! This facade re-exports the workspace crates:
//! [`ir`] (tensor IR and reference interpreter), [`frontend`] (the DSL),
//! [`passes`] (autodiff and graph transforms), [`codegen`] and [`runtime`].

pub use kiln_codegen as codegen;
pub use kiln_frontend as frontend;
pub use kiln_ir as ir;
pub use kiln_passes as passes;
pub use kiln_runtime as runtime;
