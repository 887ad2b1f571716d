//! Checkpoints of a [`ParamStore`] or a [`TrainStep`]: the glue between the
//! frontend's parameter store and [`kiln_runtime::checkpoint`] (safetensors files,
//! atomic writes, checked loads).

use std::path::Path;

use kiln_frontend::ParamStore;
pub use kiln_runtime::checkpoint::{CheckpointError, Mismatch};

use crate::TrainStep;

/// Saves every value of `params` to `path` (safetensors, atomic).
pub fn save_params(path: impl AsRef<Path>, params: &ParamStore) -> Result<(), CheckpointError> {
    kiln_runtime::checkpoint::save(path, params.iter())
}

/// Loads `path` into `params`, which must match it exactly: the same names, dtypes
/// and shapes. On any mismatch nothing is changed and the error lists them all.
pub fn load_params(path: impl AsRef<Path>, params: &mut ParamStore) -> Result<(), CheckpointError> {
    let expected: Vec<_> = params
        .iter()
        .map(|(n, v)| (n.to_string(), v.ty()))
        .collect();
    let loaded = kiln_runtime::checkpoint::load_checked(path, expected)?;
    for (name, value) in loaded {
        params
            .set(&name, value)
            .expect("names and types were checked against the store");
    }
    Ok(())
}

impl TrainStep {
    /// Saves the parameters and the optimizer state to `path` (safetensors,
    /// written atomically: a crash while saving leaves the previous file intact).
    pub fn save_checkpoint(&self, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
        save_params(path, self.params())
    }

    /// Restores parameters and optimizer state saved by
    /// [`TrainStep::save_checkpoint`] from a step of the same model and optimizer.
    /// Training continues exactly where the saved step left off.
    pub fn load_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
        load_params(path, self.params_mut())
    }
}
