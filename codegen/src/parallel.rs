//! Running library routines and long loop kernels on several threads.
//!
//! A small pool of its own rather than a general work-stealing one, for two
//! reasons measured on W2 (batch 256, 2 cores):
//! - Latency. A training step makes a handful of parallel calls a few hundred
//!   microseconds apart. Workers that sleep between them pay a wake-up (tens of
//!   microseconds in a VM) on every call, which ate the whole gain; these workers
//!   spin for `SPIN` (2 ms) after their last part before parking, as OpenMP runtimes do.
//! - The caller works too. It claims parts like a worker, so a pool for `threads`
//!   threads has `threads - 1` workers, and if the workers are slow to wake the
//!   caller simply runs more of the parts itself.
//!
//! Which thread runs a part never changes what it computes: callers split work so
//! that every output element is produced by one part, in the same order whatever
//! the thread count, which keeps results independent of it.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Below this many multiply-adds a product or convolution stays on one thread:
/// a split costs a few microseconds of hand-off, more than W2's batch-64 layers
/// (6.4M) gain from it.
pub const SPLIT_MIN_MACS: usize = 1 << 20;

/// How long an idle worker spins, watching for the next job, before it parks.
const SPIN: Duration = Duration::from_millis(2);

/// Worker threads shared by every executable compiled for the same thread count.
#[derive(Clone, Debug)]
pub struct Workers {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Threads in all, the caller included.
    threads: usize,
    /// Held by the caller of a running job: one job at a time.
    submit: Mutex<()>,
    /// Bumped for every job; workers watch it.
    generation: AtomicU64,
    current: Mutex<Option<Arc<Job>>>,
    handles: Mutex<Vec<Thread>>,
}

/// One parallel call: `parts` calls of `run`, claimed one by one.
struct Job {
    /// The caller's closure, its lifetime erased: it is only called for a claimed
    /// part index below `parts`, and the caller does not return before every
    /// claimed part is done.
    run: *const (dyn Fn(usize) + Sync),
    parts: usize,
    next: AtomicUsize,
    done: AtomicUsize,
    panicked: AtomicBool,
}

// SAFETY: `run` points to a `Sync` closure that outlives every call made through
// it (see the field's comment); the rest is atomics.
unsafe impl Send for Job {}
// SAFETY: as above.
unsafe impl Sync for Job {}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("parts", &self.parts).finish()
    }
}

impl Job {
    /// Claims and runs parts until none are left.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.parts {
                return;
            }
            // SAFETY: part `i` is claimed and not yet counted done, so the caller is
            // still waiting and the closure alive.
            let run = unsafe { &*self.run };
            if catch_unwind(AssertUnwindSafe(|| run(i))).is_err() {
                self.panicked.store(true, Ordering::Relaxed);
            }
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

impl Workers {
    /// The shared workers for `threads` threads in all (`None` for one thread, or
    /// if the system cannot start more threads: work then stays on the caller).
    pub fn shared(threads: usize) -> Option<Workers> {
        static POOLS: OnceLock<Mutex<HashMap<usize, Workers>>> = OnceLock::new();
        if threads <= 1 {
            return None;
        }
        let mut pools = POOLS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(w) = pools.get(&threads) {
            return Some(w.clone());
        }
        let shared = Arc::new(Shared {
            threads,
            submit: Mutex::new(()),
            generation: AtomicU64::new(0),
            current: Mutex::new(None),
            handles: Mutex::new(Vec::new()),
        });
        for i in 1..threads {
            let worker = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("kiln-worker-{i}"))
                .spawn(move || worker.serve())
                .ok()?;
            lock(&shared.handles).push(handle.thread().clone());
        }
        let workers = Workers { shared };
        pools.insert(threads, workers.clone());
        Some(workers)
    }

    /// Threads in all, the caller included.
    pub fn threads(&self) -> usize {
        self.shared.threads
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// A worker's life: wait for a new job (spinning, then parked), work on it.
    fn serve(&self) {
        let mut seen = self.generation.load(Ordering::Acquire);
        loop {
            let idle = Instant::now();
            let mut spins = 0u32;
            while self.generation.load(Ordering::Acquire) == seen {
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(64) && idle.elapsed() > SPIN {
                    // Woken by the next job's unpark (or spuriously: look again).
                    std::thread::park();
                } else {
                    relax(spins);
                }
            }
            seen = self.generation.load(Ordering::Acquire);
            let job = lock(&self.current).clone();
            if let Some(job) = job {
                job.work();
            }
        }
    }
}

/// One round of a wait: a CPU spin hint at first, then yielding, so a waiting
/// thread never starves the one it waits for when both share a core.
fn relax(spins: u32) {
    if spins < 128 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// Threads available to a routine: `workers.threads()`, or 1.
pub fn threads(workers: Option<&Workers>) -> usize {
    workers.map_or(1, Workers::threads)
}

thread_local! {
    static SPLIT_RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many times this thread has handed [`run`] more than one part with workers
/// to share them: the work split across threads (run on the caller alone if
/// another call holds the workers at that moment). Tests read it before and after
/// a run to check that a multi-threaded executable divides its work.
pub fn split_runs() -> usize {
    SPLIT_RUNS.with(|n| n.get())
}

/// Calls `f` on every item, on the calling thread and the workers, and returns
/// when all are done. Runs everything on the caller when there are no workers, or
/// when another call is using them. A panic in any call panics here, after every
/// call has finished.
pub fn run<T: Send>(workers: Option<&Workers>, items: Vec<T>, f: impl Fn(T) + Sync) {
    let shared = match workers {
        Some(w) if items.len() > 1 => &w.shared,
        _ => return items.into_iter().for_each(f),
    };
    SPLIT_RUNS.with(|n| n.set(n.get() + 1));
    let Ok(_turn) = shared.submit.try_lock() else {
        return items.into_iter().for_each(f);
    };
    let parts = items.len();
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let call = |i: usize| {
        let item = lock(&slots[i]).take();
        f(item.expect("every part is claimed once"));
    };
    let call: &(dyn Fn(usize) + Sync) = &call;
    // SAFETY: only the lifetime is erased; see `Job::run`.
    let run: *const (dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(call) };
    let job = Arc::new(Job {
        run,
        parts,
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
    });
    *lock(&shared.current) = Some(job.clone());
    shared.generation.fetch_add(1, Ordering::Release);
    for t in lock(&shared.handles).iter() {
        t.unpark();
    }
    job.work();
    let mut spins = 0u32;
    while job.done.load(Ordering::Acquire) < parts {
        spins = spins.wrapping_add(1);
        relax(spins);
    }
    *lock(&shared.current) = None;
    assert!(
        !job.panicked.load(Ordering::Relaxed),
        "a parallel part panicked"
    );
}

/// `0..n` cut into `parts` contiguous ranges of nearly equal length (the first
/// ones one longer), none empty.
pub fn ranges(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    let (base, extra) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|p| {
            let len = base + usize::from(p < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .filter(|r| !r.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn ranges_cover_everything_once() {
        for n in [0, 1, 5, 128, 129] {
            for parts in [1, 2, 3, 8, 200] {
                let r = ranges(n, parts);
                assert_eq!(r.iter().map(|r| r.len()).sum::<usize>(), n);
                assert!(r.windows(2).all(|w| w[0].end == w[1].start));
                assert!(r.len() <= parts.max(1));
            }
        }
    }

    #[test]
    fn run_calls_every_item_once_on_several_threads() {
        let workers = Workers::shared(3).expect("threads");
        assert_eq!(workers.threads(), 3);
        let hits: Vec<AtomicUsize> = (0..10).map(|_| AtomicUsize::new(0)).collect();
        run(Some(&workers), (0..10).collect(), |i: usize| {
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
    }
}
