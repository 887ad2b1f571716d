//! Data-parallel training: process groups and what a step needs from them.
//!
//! A data-parallel [`crate::TrainStep`] (see [`crate::TrainStepBuilder::data_parallel`])
//! runs on every member of a group, each on its own shard of the data
//! ([`kiln_runtime::data::Dataset::shard`]). Inside the compiled step, one
//! `all_reduce` sums the gradients of all members (packed into one buffer) and the
//! members' losses, so every member applies the same update to the same
//! parameters: the mean gradient of the global batch, as PyTorch's
//! `DistributedDataParallel` does.
//!
//! Groups:
//! - [`LocalGroup`]: members are threads of this process. For tests, and for
//!   trying data parallelism without an MPI installation.
//! - `MpiGroup` (feature `mpi`): members are the processes of `mpirun`, over
//!   MPI's `MPI_COMM_WORLD`.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use kiln_frontend::ParamStore;
use kiln_ir::{HostTensor, TensorType};
pub use kiln_runtime::{Collective, CollectiveError};

/// A group of threads in this process acting as the members of a data-parallel
/// group: [`LocalGroup::new`] returns one member per thread, and
/// [`LocalGroup::run`] runs a closure on each.
///
/// Sums are taken in rank order, so every member gets bit-identical results.
/// A member that does not reach a collective within the timeout (default 60 s)
/// makes the others fail with an error naming it, instead of waiting forever.
///
/// ```
/// use kiln::dist::{Collective, LocalGroup};
///
/// let members = LocalGroup::new(3);
/// let sums: Vec<Vec<f32>> = std::thread::scope(|s| {
///     let handles: Vec<_> = members
///         .iter()
///         .map(|m| s.spawn(move || {
///             let mut v = vec![m.rank() as f32, 1.0];
///             m.all_reduce_f32(&mut v).unwrap();
///             v
///         }))
///         .collect();
///     handles.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// // Ranks 0 + 1 + 2, and three ones.
/// assert!(sums.iter().all(|v| v == &[3.0, 3.0]));
/// ```
#[derive(Debug)]
pub struct LocalGroup {
    rank: usize,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    size: usize,
    timeout: Duration,
    state: Mutex<State>,
    changed: Condvar,
}

/// The rendezvous: each member posts its buffer, the last to arrive combines them,
/// everyone copies the result out; a generation counter separates rounds.
#[derive(Debug, Default)]
struct State {
    generation: u64,
    posted: Vec<Option<Vec<u8>>>,
    result: Vec<u8>,
    /// Members that have not yet taken the current round's result.
    readers: usize,
}

impl LocalGroup {
    /// `size` members (ranks `0..size`), to be moved to one thread each.
    ///
    /// # Panics
    /// If `size` is 0.
    pub fn new(size: usize) -> Vec<Arc<LocalGroup>> {
        Self::with_timeout(size, Duration::from_secs(60))
    }

    /// Runs `f` on `size` threads, each with its member of a new group, and
    /// returns the results in rank order (a member's panic is re-raised here).
    ///
    /// ```
    /// use kiln::dist::{Collective, LocalGroup};
    ///
    /// let sums = LocalGroup::run(2, |m| {
    ///     let mut v = [m.rank() as f64 + 1.0];
    ///     m.all_reduce_f64(&mut v).map(|()| v[0])
    /// });
    /// assert_eq!(sums, [Ok(3.0), Ok(3.0)]);
    /// ```
    pub fn run<T: Send>(size: usize, f: impl Fn(Arc<LocalGroup>) -> T + Sync) -> Vec<T> {
        let f = &f;
        std::thread::scope(|s| {
            let handles: Vec<_> = Self::new(size)
                .into_iter()
                .map(|member| s.spawn(move || f(member)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        })
    }

    /// Like [`LocalGroup::new`], failing a collective that some member has not
    /// joined after `timeout`.
    pub fn with_timeout(size: usize, timeout: Duration) -> Vec<Arc<LocalGroup>> {
        assert!(size > 0, "a group has at least one member");
        let shared = Arc::new(Shared {
            size,
            timeout,
            state: Mutex::new(State {
                posted: vec![None; size],
                ..State::default()
            }),
            changed: Condvar::new(),
        });
        (0..size)
            .map(|rank| {
                Arc::new(LocalGroup {
                    rank,
                    shared: shared.clone(),
                })
            })
            .collect()
    }

    /// Posts `data`, waits for every member, and returns `combine` of all posts
    /// (in rank order), the same bytes for every member.
    fn exchange(
        &self,
        op: &'static str,
        data: Vec<u8>,
        combine: impl FnOnce(&[Vec<u8>]) -> Vec<u8>,
    ) -> Result<Vec<u8>, CollectiveError> {
        let sh = &*self.shared;
        let failed = |reason: String| CollectiveError::Failed { op, reason };
        let mut st = sh
            .state
            .lock()
            .map_err(|_| failed("a member panicked".into()))?;
        // Wait until the previous round's result has been read by everyone.
        while st.readers > 0 {
            st = self.wait(st, op)?;
        }
        st.posted[self.rank] = Some(data);
        let generation = st.generation;
        if st.posted.iter().all(Option::is_some) {
            let posts: Vec<Vec<u8>> = st
                .posted
                .iter_mut()
                .map(|p| p.take().unwrap_or_default())
                .collect();
            st.result = combine(&posts);
            st.readers = sh.size;
            st.generation += 1;
            sh.changed.notify_all();
        } else {
            while st.generation == generation {
                st = self.wait(st, op)?;
            }
        }
        let out = st.result.clone();
        st.readers -= 1;
        if st.readers == 0 {
            sh.changed.notify_all();
        }
        Ok(out)
    }

    fn wait<'a>(
        &self,
        st: std::sync::MutexGuard<'a, State>,
        op: &'static str,
    ) -> Result<std::sync::MutexGuard<'a, State>, CollectiveError> {
        let sh = &*self.shared;
        let (st, timeout) =
            sh.changed
                .wait_timeout(st, sh.timeout)
                .map_err(|_| CollectiveError::Failed {
                    op,
                    reason: "a member panicked".into(),
                })?;
        if timeout.timed_out() {
            let missing: Vec<String> = (0..sh.size)
                .filter(|&r| st.posted[r].is_none() && st.readers == 0)
                .map(|r| r.to_string())
                .collect();
            return Err(CollectiveError::Failed {
                op,
                reason: format!(
                    "rank {} waited {:?}; rank(s) [{}] did not join",
                    self.rank,
                    sh.timeout,
                    missing.join(", ")
                ),
            });
        }
        Ok(st)
    }
}

/// Elementwise sums of equal-length posts of `T`s (as little-endian bytes), in
/// rank order.
fn sum_posts<const N: usize, T>(
    posts: &[Vec<u8>],
    from: fn([u8; N]) -> T,
    to: fn(T) -> [u8; N],
) -> Vec<u8>
where
    T: Copy + std::ops::Add<Output = T>,
{
    let values = |p: &Vec<u8>| -> Vec<T> {
        p.chunks_exact(N)
            .map(|c| from(c.try_into().expect("N bytes")))
            .collect()
    };
    let mut acc = values(&posts[0]);
    for p in &posts[1..] {
        for (a, b) in acc.iter_mut().zip(values(p)) {
            *a = *a + b;
        }
    }
    acc.into_iter().flat_map(to).collect()
}

/// Checks that every member posted the same number of bytes.
fn same_lengths(op: &'static str, posts: &[Vec<u8>]) -> Result<(), CollectiveError> {
    match posts.iter().position(|p| p.len() != posts[0].len()) {
        None => Ok(()),
        Some(r) => Err(CollectiveError::Failed {
            op,
            reason: format!(
                "rank {r} gave {} bytes, rank 0 gave {}",
                posts[r].len(),
                posts[0].len()
            ),
        }),
    }
}

impl LocalGroup {
    fn all_reduce<const N: usize, T>(
        &self,
        op: &'static str,
        send: &[T],
        data: &mut [T],
        from: fn([u8; N]) -> T,
        to: fn(T) -> [u8; N],
    ) -> Result<(), CollectiveError>
    where
        T: Copy + std::ops::Add<Output = T>,
    {
        if send.len() != data.len() {
            return Err(CollectiveError::Failed {
                op,
                reason: format!("{} values to send, room for {}", send.len(), data.len()),
            });
        }
        let bytes: Vec<u8> = send.iter().flat_map(|&v| to(v)).collect();
        // A length mismatch gives every member an empty result, which each
        // reports (the posts are gone by then).
        let out = self.exchange(op, bytes, |posts| {
            if same_lengths(op, posts).is_err() {
                Vec::new()
            } else {
                sum_posts(posts, from, to)
            }
        })?;
        if out.len() != data.len() * N {
            return Err(CollectiveError::Failed {
                op,
                reason: "the members gave buffers of different lengths".into(),
            });
        }
        for (d, c) in data.iter_mut().zip(out.chunks_exact(N)) {
            *d = from(c.try_into().expect("N bytes"));
        }
        Ok(())
    }
}

impl Collective for LocalGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn all_reduce_f32_into(&self, send: &[f32], recv: &mut [f32]) -> Result<(), CollectiveError> {
        self.all_reduce(
            "all_reduce",
            send,
            recv,
            f32::from_le_bytes,
            f32::to_le_bytes,
        )
    }

    fn all_reduce_f64_into(&self, send: &[f64], recv: &mut [f64]) -> Result<(), CollectiveError> {
        self.all_reduce(
            "all_reduce",
            send,
            recv,
            f64::from_le_bytes,
            f64::to_le_bytes,
        )
    }

    fn broadcast(&self, data: &mut [u8], root: usize) -> Result<(), CollectiveError> {
        let op = "broadcast";
        let out = self.exchange(op, data.to_vec(), |posts| posts[root].clone())?;
        if out.len() != data.len() {
            return Err(CollectiveError::Failed {
                op,
                reason: format!(
                    "rank {} has {} bytes, the root {} sent {}",
                    self.rank,
                    data.len(),
                    root,
                    out.len()
                ),
            });
        }
        data.copy_from_slice(&out);
        Ok(())
    }
}

/// Tells every member whether this one is fine, and learns the same of the
/// others: `Ok` when all are, else the first failed rank's error (this one's own
/// `reason` if it failed itself). Every member must call it at the same point.
/// Used around work done outside compiled steps (reading a batch, evaluating),
/// so that one member's failure stops all of them instead of leaving them
/// waiting in the next collective.
pub fn check_all(
    group: &dyn Collective,
    status: Result<(), String>,
) -> Result<(), CollectiveError> {
    let mut failed = vec![0.0f64; group.size()];
    failed[group.rank()] = f64::from(u8::from(status.is_err()));
    group.all_reduce_f64(&mut failed)?;
    if let Err(reason) = status {
        return Err(CollectiveError::RankFailed {
            rank: group.rank(),
            size: group.size(),
            reason,
        });
    }
    match failed.iter().position(|&f| f != 0.0) {
        None => Ok(()),
        Some(rank) => Err(CollectiveError::RankFailed {
            rank,
            size: group.size(),
            reason: "it stopped with an error (see its own output)".into(),
        }),
    }
}

/// What a training loop ([`crate::Fit`]) needs from a step's group: one member
/// prints, all agree on the number of steps, sums span the members. Without a
/// group, a group of one.
#[derive(Clone, Copy)]
pub(crate) struct Members<'a>(pub Option<&'a dyn Collective>);

impl Members<'_> {
    /// True on the member that prints progress and reports (rank 0).
    pub fn leader(&self) -> bool {
        self.0.is_none_or(|g| g.rank() == 0)
    }

    /// `(rank, size)`; `(0, 1)` without a group.
    pub fn position(&self) -> (usize, usize) {
        self.0.map_or((0, 1), |g| (g.rank(), g.size()))
    }

    /// The number of batches of `batch` every member runs in an epoch over `n`
    /// samples (its part: every `size`-th sample): the fewest any member has,
    /// which is the number of global batches of `size * batch`.
    pub fn steps(&self, n: usize, batch: usize, drop_last: bool) -> Result<usize, CollectiveError> {
        let (rank, size) = self.position();
        // Samples rank, rank + size, ...: ceil((n - rank) / size) of them.
        let part = (n + size - 1 - rank) / size;
        let local = if drop_last {
            part / batch
        } else {
            part.div_ceil(batch)
        };
        let Some(g) = self.0 else { return Ok(local) };
        let mut counts = vec![0.0; g.size()];
        counts[g.rank()] = local as f64;
        g.all_reduce_f64(&mut counts)?;
        Ok(counts.iter().fold(f64::INFINITY, |a, &b| a.min(b)) as usize)
    }

    /// Sums `values` over the members, in place.
    pub fn sum(&self, values: &mut [f64]) -> Result<(), CollectiveError> {
        match self.0 {
            Some(g) => g.all_reduce_f64(values),
            None => Ok(()),
        }
    }

    /// `status` if this member failed; otherwise an error if another did.
    pub fn check<E: std::fmt::Display>(
        &self,
        status: Result<(), E>,
        other: impl FnOnce(CollectiveError) -> E,
    ) -> Result<(), E> {
        let Some(g) = self.0 else { return status };
        let reason = status.as_ref().err().map(ToString::to_string);
        match (status, check_all(g, reason.map_or(Ok(()), Err))) {
            (Err(own), _) => Err(own),
            (Ok(()), Err(e)) => Err(other(e)),
            (Ok(()), Ok(())) => Ok(()),
        }
    }
}

/// Copies rank 0's values of every entry of `params` to every member, in one
/// broadcast; first checks that all members hold the same number of bytes.
pub(crate) fn broadcast_params(
    group: &dyn Collective,
    params: &mut ParamStore,
) -> Result<(), CollectiveError> {
    let mut bytes: Vec<u8> = Vec::with_capacity(params.numel() * 4);
    for v in params.values() {
        bytes.extend_from_slice(v.as_bytes());
    }
    let mut sizes = vec![0.0f64; group.size()];
    sizes[group.rank()] = bytes.len() as f64;
    group.all_reduce_f64(&mut sizes)?;
    if let Some(r) = sizes.iter().position(|&s| s != sizes[0]) {
        return Err(CollectiveError::Failed {
            op: "broadcast",
            reason: format!(
                "the members' parameters differ: rank 0 holds {} bytes, rank {r} {}",
                sizes[0], sizes[r]
            ),
        });
    }
    group.broadcast(&mut bytes, 0)?;
    let names: Vec<String> = params.names().map(str::to_string).collect();
    let mut at = 0;
    for name in names {
        let old = params.get(&name).expect("listed above");
        let n = old.as_bytes().len();
        let value = tensor_from_bytes(&old.ty(), &bytes[at..at + n]);
        at += n;
        params.insert(&name, value);
    }
    Ok(())
}

/// A tensor of type `ty` from its bytes in memory order.
fn tensor_from_bytes(ty: &TensorType, bytes: &[u8]) -> HostTensor {
    let mut t = HostTensor::full(ty.dtype, ty.shape.clone(), 0.0);
    debug_assert_eq!(t.as_bytes().len(), bytes.len());
    // SAFETY: `t` holds exactly `bytes.len()` bytes of plain data (bools came from
    // a tensor of the same type, so they are 0 or 1).
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), t.as_mut_ptr(), bytes.len()) };
    t
}

#[cfg(feature = "mpi")]
pub use self::mpi_group::MpiGroup;

#[cfg(feature = "mpi")]
mod mpi_group {
    use std::sync::{Arc, Mutex};

    use mpi::Threading;
    use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
    use mpi::environment::Universe;
    use mpi::topology::{Communicator, SimpleCommunicator};

    use super::{Collective, CollectiveError};

    /// The processes started by `mpirun`, as a data-parallel group over
    /// `MPI_COMM_WORLD` (feature `mpi`).
    ///
    /// MPI is initialized by [`MpiGroup::init`] and finalized when the last
    /// reference is dropped. Calls are serialized through a lock, so a group may be
    /// shared between threads (MPI's `MPI_THREAD_SERIALIZED`).
    pub struct MpiGroup {
        world: Mutex<SimpleCommunicator>,
        rank: usize,
        size: usize,
        // Dropped last: finalizes MPI.
        _universe: Universe,
    }

    // SAFETY: MPI is initialized with at least `MPI_THREAD_SERIALIZED` (checked in
    // `init`) and every call goes through the `world` lock, so no two threads use
    // MPI at once.
    unsafe impl Send for MpiGroup {}
    // SAFETY: as above.
    unsafe impl Sync for MpiGroup {}

    impl std::fmt::Debug for MpiGroup {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("MpiGroup")
                .field("rank", &self.rank)
                .field("size", &self.size)
                .finish()
        }
    }

    impl MpiGroup {
        /// Initializes MPI (once per process) and returns the world group.
        pub fn init() -> Result<Arc<MpiGroup>, CollectiveError> {
            let failed = |reason: String| CollectiveError::Failed { op: "init", reason };
            let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
                .ok_or_else(|| failed("MPI is already initialized in this process".into()))?;
            if threading < Threading::Serialized {
                return Err(failed(format!(
                    "the MPI library offers threading level {threading:?}, kiln needs Serialized"
                )));
            }
            let world = universe.world();
            let (rank, size) = (world.rank() as usize, world.size() as usize);
            Ok(Arc::new(MpiGroup {
                world: Mutex::new(world),
                rank,
                size,
                _universe: universe,
            }))
        }

        /// Ends every process of the job with `code` (`MPI_Abort`): what a rank
        /// calls when it cannot go on, so that the others do not wait for it.
        /// mpirun reports the rank that aborted.
        pub fn abort(&self, code: i32) -> ! {
            let world = self.world.lock().unwrap_or_else(|p| p.into_inner());
            world.abort(code)
        }

        fn world(&self) -> std::sync::MutexGuard<'_, SimpleCommunicator> {
            self.world.lock().unwrap_or_else(|p| p.into_inner())
        }
    }

    /// MPI cannot check that the buffers have the same length; this does.
    fn same_length(send: usize, recv: usize) -> Result<(), CollectiveError> {
        if send == recv {
            Ok(())
        } else {
            Err(CollectiveError::Failed {
                op: "all_reduce",
                reason: format!("{send} values to send, room for {recv}"),
            })
        }
    }

    impl Collective for MpiGroup {
        fn rank(&self) -> usize {
            self.rank
        }

        fn size(&self) -> usize {
            self.size
        }

        fn all_reduce_f32_into(
            &self,
            send: &[f32],
            recv: &mut [f32],
        ) -> Result<(), CollectiveError> {
            same_length(send.len(), recv.len())?;
            self.world()
                .all_reduce_into(send, recv, SystemOperation::sum());
            Ok(())
        }

        fn all_reduce_f64_into(
            &self,
            send: &[f64],
            recv: &mut [f64],
        ) -> Result<(), CollectiveError> {
            same_length(send.len(), recv.len())?;
            self.world()
                .all_reduce_into(send, recv, SystemOperation::sum());
            Ok(())
        }

        fn broadcast(&self, data: &mut [u8], root: usize) -> Result<(), CollectiveError> {
            let world = self.world();
            world.process_at_rank(root as i32).broadcast_into(data);
            Ok(())
        }
    }
}
