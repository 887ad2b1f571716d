//! Communication between the processes of a data-parallel group: what a compiled
//! `all_reduce` calls, and what training uses to agree on parameters and status.
//!
//! kiln's own code only sees this trait; the implementations live with the
//! caller: `kiln::dist` has an in-process group of threads (for tests and for
//! trying data parallelism without MPI) and, behind the `mpi` feature, MPI.

/// Why a collective operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CollectiveError {
    /// The communication layer reported an error.
    #[error("collective `{op}` failed: {reason}")]
    Failed { op: &'static str, reason: String },
    /// Another process of the group stopped with an error.
    #[error("rank {rank} of {size} stopped: {reason}")]
    RankFailed {
        rank: usize,
        size: usize,
        reason: String,
    },
}

/// A group of `size` processes, this one being `rank`, that run the same program.
///
/// Every member must call the same collectives in the same order with buffers of
/// the same length (as with MPI); every member receives the same result.
pub trait Collective: Send + Sync + std::fmt::Debug {
    /// This process's index in `0..size`.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn size(&self) -> usize;
    /// Writes to `recv` the elementwise sum of every member's `send` (of the
    /// same length as `recv`).
    fn all_reduce_f32_into(&self, send: &[f32], recv: &mut [f32]) -> Result<(), CollectiveError>;
    /// Writes to `recv` the elementwise sum of every member's `send` (of the
    /// same length as `recv`).
    fn all_reduce_f64_into(&self, send: &[f64], recv: &mut [f64]) -> Result<(), CollectiveError>;

    /// Sums `data` elementwise over the group, in place.
    fn all_reduce_f32(&self, data: &mut [f32]) -> Result<(), CollectiveError> {
        let send = data.to_vec();
        self.all_reduce_f32_into(&send, data)
    }

    /// Sums `data` elementwise over the group, in place.
    fn all_reduce_f64(&self, data: &mut [f64]) -> Result<(), CollectiveError> {
        let send = data.to_vec();
        self.all_reduce_f64_into(&send, data)
    }
    /// Copies `root`'s `data` to every other member.
    fn broadcast(&self, data: &mut [u8], root: usize) -> Result<(), CollectiveError>;
}
