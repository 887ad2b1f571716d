//! kiln's graph passes: symbolic autodiff, dead-code elimination, and (later) the egg
//! optimizer and the scheduler.

pub mod autodiff;
pub mod dce;
mod dedup;
pub mod emit;
pub mod hoist;
mod loops;
pub mod optimize;
pub mod schedule;
mod sink;

pub use autodiff::{AutodiffError, Gradients, grad};
pub use dce::eliminate_dead_code;
pub use hoist::hoist_loops;
pub use optimize::{OptimizeConfig, OptimizeStats, Pipeline, optimize};
