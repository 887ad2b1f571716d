//! Times a data-parallel training step against one process: W2 (MLP 784-128-64-10,
//! Adam) at global batch 256 and W7 (MLP 784-4096-4096-10, Adam) at global batch
//! 512, every member on one thread (docs/WORKLOADS.md). Prints, per workload, the
//! median step time and, for a group, the bytes one step all-reduces and the
//! median time of that all-reduce alone.
//!
//! - `ddp_timing single [THREADS]`: one process, the whole global batch, on
//!   THREADS threads (default 1);
//! - `ddp_timing threads N`: N members on threads of this process (`LocalGroup`);
//! - `mpirun -np N ddp_timing mpi` (built with `--features mpi`): N processes.
//!
//! `bench/ddp.sh` runs single, MPI, single again and prints the speed-ups.

use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use kiln::dist::{Collective, LocalGroup};
use kiln::prelude::*;
use kiln::workloads;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// `(name, global batch, timed steps)`.
const WORKLOADS: [(&str, usize, usize); 2] = [("W2", 256, 200), ("W7", 512, 6)];

/// What one member measured for one workload.
struct Timing {
    step_ms: f64,
    reduce_bytes: usize,
    reduce_us: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `steps` steps (after 2 warm-up steps) of workload `name` as member
/// `group.rank()` (or one process without a group), on `threads` threads.
fn time(
    name: &str,
    global: usize,
    steps: usize,
    group: Option<Arc<dyn Collective>>,
    threads: usize,
) -> Result<Timing> {
    let size = group.as_ref().map_or(1, |g| g.size());
    let batch = global / size;
    let mut rng = Rng::seed(0);
    let g = GraphBuilder::new(name);
    let loss = match name {
        "W2" => workloads::w2_loss(&g, batch, &mut rng),
        _ => workloads::w7_loss(&g, batch, &mut rng),
    };
    let mut builder = TrainStep::builder(&loss);
    if let Some(group) = &group {
        builder = builder.data_parallel(group.clone());
    }
    let mut step = builder.build(&Adam::new(1e-3))?;
    step.compile_with(&CompileOptions {
        threads,
        ..CompileOptions::default()
    })?;
    let x = workloads::uniform(&mut rng, &[batch, 784], 0.0, 1.0);
    let labels = workloads::labels(&mut rng, batch, 10);
    let mut times = Vec::with_capacity(steps);
    for i in 0..steps + 2 {
        let start = Instant::now();
        step.run(&[("x", &x), ("labels", &labels)])?;
        if i >= 2 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    // The all-reduce alone, on a buffer of the step's: every gradient and one loss
    // per member.
    let (mut reduce_bytes, mut reduce_us) = (0, 0.0);
    if let Some(group) = &group {
        let n = step
            .trainable()
            .iter()
            .map(|p| step.params().get(p).map_or(0, |t| t.numel()))
            .sum::<usize>()
            + size;
        let (send, mut recv) = (vec![1.0f32; n], vec![0.0f32; n]);
        let mut us = Vec::new();
        for _ in 0..steps.clamp(5, 50) {
            let start = Instant::now();
            group.all_reduce_f32_into(&send, &mut recv)?;
            us.push(start.elapsed().as_secs_f64() * 1e6);
        }
        reduce_bytes = n * 4;
        reduce_us = median(us);
    }
    Ok(Timing {
        step_ms: median(times),
        reduce_bytes,
        reduce_us,
    })
}

fn report(mode: &str, size: usize, timings: &[Timing]) {
    for ((name, global, _), t) in WORKLOADS.iter().zip(timings) {
        let mut line = format!(
            "{mode:>8} x{size}  {name} global batch {global}: step {:.3} ms",
            t.step_ms
        );
        if t.reduce_bytes > 0 {
            line += &format!(
                ", all-reduce {} bytes in {:.0} us ({:.2} GB/s)",
                t.reduce_bytes,
                t.reduce_us,
                t.reduce_bytes as f64 / t.reduce_us / 1e3
            );
        }
        println!("{line}");
    }
}

fn member(group: Option<Arc<dyn Collective>>, threads: usize) -> Result<Vec<Timing>> {
    WORKLOADS
        .iter()
        .map(|&(name, global, steps)| time(name, global, steps, group.clone(), threads))
        .collect()
}

#[cfg(feature = "mpi")]
fn mpi() -> Result<()> {
    let group = kiln::dist::MpiGroup::init()?;
    let timings = member(Some(group.clone()), 1)?;
    if group.rank() == 0 {
        report("mpi", group.size(), &timings);
    }
    Ok(())
}

#[cfg(not(feature = "mpi"))]
fn mpi() -> Result<()> {
    Err("built without MPI: add `--features mpi`".into())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["single"] | [] => report("single", 1, &member(None, 1)?),
        ["single", threads] => {
            let threads: usize = threads.parse()?;
            report(&format!("{threads} thr"), 1, &member(None, threads)?);
        }
        ["threads", n] => {
            let n: usize = n.parse()?;
            let results: Vec<Result<Vec<Timing>>> = LocalGroup::run(n, |m| member(Some(m), 1));
            let mut results = results.into_iter();
            let first = results.next().ok_or("no member")??;
            for r in results {
                r?;
            }
            report("threads", n, &first);
        }
        ["mpi"] => mpi()?,
        _ => return Err("usage: ddp_timing [single [THREADS] | threads N | mpi]".into()),
    }
    Ok(())
}
