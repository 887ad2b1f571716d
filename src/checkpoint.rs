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
    ///
    /// In a data-parallel step only rank 0 writes (the members hold the same
    /// parameters; batch-norm statistics are rank 0's); the others return `Ok`
    /// without touching `path`, so every member may call it.
    pub fn save_checkpoint(&self, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
        if self.group().is_some_and(|g| g.rank() != 0) {
            return Ok(());
        }
        save_params(path, self.params())
    }

    /// Restores parameters and optimizer state saved by
    /// [`TrainStep::save_checkpoint`] from a step of the same model and optimizer.
    /// Training continues exactly where the saved step left off.
    ///
    /// In a data-parallel step every member calls it: rank 0 reads `path` and
    /// sends the values to the others, which need not see the file; if rank 0
    /// fails, every member returns an error.
    pub fn load_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
        let Some(group) = self.group().cloned() else {
            return load_params(path, self.params_mut());
        };
        let loaded = match group.rank() {
            0 => load_params(path, self.params_mut()),
            _ => Ok(()),
        };
        let status = loaded.as_ref().map(|_| ()).map_err(ToString::to_string);
        let agreed = crate::dist::check_all(&*group, status);
        loaded?;
        agreed?;
        crate::dist::broadcast_params(&*group, self.params_mut())?;
        Ok(())
    }
}
