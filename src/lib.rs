//! kiln: a deep-learning compiler for Rust.
//!
//! Write a model with the DSL ([`frontend`]), turn model + loss + optimizer into one
//! training-step graph ([`TrainStep`]), and run it. The facade re-exports the
//! workspace crates: [`ir`] (tensor IR, text format, reference interpreter),
//! [`frontend`] (the DSL), [`passes`] (autodiff and graph transforms), [`codegen`]
//! and [`runtime`].

mod train;

pub use kiln_codegen as codegen;
pub use kiln_frontend as frontend;
pub use kiln_ir as ir;
pub use kiln_passes as passes;
pub use kiln_runtime as runtime;
pub use train::{StepOutput, TrainError, TrainStep};

/// Everything a training script needs: `use kiln::prelude::*;`.
pub mod prelude {
    pub use crate::{StepOutput, TrainError, TrainStep};
    pub use kiln_frontend::prelude::*;
}
