//! kiln: a deep-learning compiler for Rust.
//!
//! Write a model with the DSL ([`frontend`]), turn model + loss + optimizer into one
//! training-step graph ([`TrainStep`]), and run it. The facade re-exports the
//! workspace crates: [`ir`] (tensor IR, text format, reference interpreter),
//! [`frontend`] (the DSL), [`passes`] (autodiff and graph transforms), [`codegen`]
//! and [`runtime`]. [`workloads`] builds the benchmark models; [`schedule`] has the
//! learning-rate schedules.

pub mod checkpoint;
pub mod debug;
pub mod dist;
mod fit;
mod fit_data;
mod jit;
mod network;
pub mod plot;
pub mod schedule;
mod train;
pub mod workloads;

pub use debug::{GraphFileError, load_graph, save_graph};
pub use fit::{
    EpochReport, EvalError, Evaluation, Evaluator, Fit, FitError, LabelError, Progress,
    check_labels,
};
pub use fit_data::{EpochMetrics, FitData, History, run_with_params};
pub use jit::{Jit, JitError};
pub use kiln_codegen as codegen;
pub use kiln_frontend as frontend;
pub use kiln_ir as ir;
pub use kiln_passes as passes;
pub use kiln_runtime as runtime;
pub use kiln_runtime::data;
pub use kiln_runtime::{CompileError, CompileOptions, Executable, RunError};
pub use network::{Network, NetworkError};
pub use train::{ParamGroup, StepOutput, TrainError, TrainStep, TrainStepBuilder};

/// Compiles `graph` to native code (for inference, or any graph built by hand).
///
/// ```
/// use kiln::prelude::*;
/// let g = GraphBuilder::new("affine");
/// let x = g.input("x", DType::F32, [2, 3]);
/// let w = g.param("w", HostTensor::from_f32([3], vec![1.0, -1.0, 0.5]).unwrap());
/// let y = (&x * &w).sum(&[1], false).relu();
/// let model = g.build(&[&y]).unwrap();
/// let mut exe = kiln::compile(&model.graph).unwrap();
/// let xv = HostTensor::from_f32([2, 3], vec![1.0, 2.0, 4.0, 3.0, 1.0, -2.0]).unwrap();
/// let args = model.call_args(&[("x", &xv)]).unwrap();
/// let y = exe.run(&args).unwrap();
/// assert_eq!(y[0].as_f32().unwrap(), &[1.0, 1.0]);
/// ```
pub fn compile(graph: &ir::Graph) -> Result<Executable, CompileError> {
    Executable::compile(graph)
}

/// Everything a training script needs: `use kiln::prelude::*;`.
pub mod prelude {
    pub use crate::data::{Dataset, TensorDataset};
    pub use crate::schedule::LrSchedule;
    pub use crate::{
        CompileOptions, Evaluator, Executable, Fit, History, ParamGroup, Progress, StepOutput,
        TrainError, TrainStep,
    };
    pub use kiln_frontend::prelude::*;
}
