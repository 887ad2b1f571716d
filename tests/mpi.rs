//! Data-parallel training over MPI (feature `mpi`):
//! `cargo test --features mpi --test mpi` runs this binary, which starts
//! `mpirun -np 2` on itself once per case and checks how the job ends:
//!
//! - `train`: 4 steps of SGD (momentum) and Adam, with and without batch
//!   normalization, on each rank's half of every global batch, give one
//!   process's parameters on the global batch (to the tolerance of
//!   `support/ddp.rs`), bit-identical on both ranks;
//! - `nan`: a NaN loss on rank 1 fails the step on both ranks, naming rank 1,
//!   and changes no parameter;
//! - `error`: rank 1 stops with an error and aborts the job; rank 0, waiting in
//!   a collective, does not hang, and mpirun names rank 1;
//! - `killed`: rank 1 is killed (SIGKILL) in the middle of training; rank 0 does
//!   not hang, and mpirun names rank 1.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln::dist::{Collective, CollectiveError, MpiGroup};
use kiln::prelude::*;

#[path = "support/ddp.rs"]
mod ddp;
use ddp::*;

/// A job that has not ended by then is hung.
const JOB_TIMEOUT: Duration = Duration::from_secs(120);

fn main() {
    if let Some(case) = std::env::var_os("KILN_MPI_CASE") {
        return member(&case.to_string_lossy());
    }
    let mut failed = 0;
    for (case, expect_success, must_mention) in [
        ("train", true, &[][..]),
        ("nan", true, &[][..]),
        ("error", false, &["rank 1"][..]),
        ("killed", false, &["rank 1"][..]),
    ] {
        let start = Instant::now();
        let (ok, output) = launch(case);
        let mut problems = Vec::new();
        if ok != expect_success {
            problems.push(format!(
                "the job {} (expected it to {})",
                if ok { "succeeded" } else { "failed" },
                if expect_success { "succeed" } else { "fail" }
            ));
        }
        for m in must_mention {
            if !output.contains(m) {
                problems.push(format!("the output does not mention `{m}`"));
            }
        }
        if problems.is_empty() {
            println!(
                "test mpi::{case} ... ok ({:.1} s)",
                start.elapsed().as_secs_f64()
            );
        } else {
            failed += 1;
            println!(
                "test mpi::{case} ... FAILED: {}\n{output}",
                problems.join("; ")
            );
        }
    }
    if failed > 0 {
        std::process::exit(1);
    }
}

/// Runs `mpirun -np 2` on this binary for `case`; returns whether the job
/// succeeded and its output (stdout and stderr). Fails the test if it hangs.
fn launch(case: &str) -> (bool, String) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new("mpirun")
        .args(["-np", "2", "--allow-run-as-root", "--oversubscribe"])
        .arg(exe)
        .env("KILN_MPI_CASE", case)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start mpirun (is OpenMPI installed?): {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for mpirun") {
            break status;
        }
        if start.elapsed() > JOB_TIMEOUT {
            let _ = child.kill();
            panic!("case `{case}`: the job hung for {JOB_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = String::new();
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut s = stream;
        let _ = s.read_to_string(&mut output);
    }
    (status.success(), output)
}

/// One MPI process of case `case`.
fn member(case: &str) {
    let group = MpiGroup::init().expect("MPI initializes");
    let rank = group.rank();
    assert_eq!(group.size(), 2, "the cases are written for two ranks");
    let dyn_group: Arc<dyn Collective> = group.clone();
    match case {
        "train" => train(&dyn_group),
        "nan" => nan_loss(&dyn_group),
        "error" => {
            if rank == 1 {
                eprintln!("rank 1 of 2: cannot read its batch (a planted error)");
                group.abort(3);
            }
            // Rank 0 waits in the step's all-reduce, which rank 1 never joins.
            member_run(dyn_group, &Sgd::new(0.1), 16, false);
            unreachable!("rank 0 cannot finish without rank 1");
        }
        "killed" => {
            if rank == 1 {
                // Dies between two steps: rank 0 is in (or about to enter) the next
                // collective.
                let pid = std::process::id().to_string();
                let _ = Command::new("kill").args(["-9", &pid]).status();
                std::thread::sleep(Duration::from_secs(60));
            }
            member_run(dyn_group, &Sgd::new(0.1), 16, false);
            unreachable!("rank 0 cannot finish without rank 1");
        }
        other => panic!("unknown case `{other}`"),
    }
    println!("rank {rank}: {case} ok");
}

fn train(group: &Arc<dyn Collective>) {
    let rows = 16;
    let (rank, size) = (group.rank(), group.size());
    let cases: [(&str, Box<dyn Optimizer>, bool); 4] = [
        ("sgd", Box::new(Sgd::new(0.1).momentum(0.9)), false),
        ("adam", Box::new(Adam::new(0.01)), false),
        ("sgd+bn", Box::new(Sgd::new(0.1).momentum(0.9)), true),
        ("adam+bn", Box::new(Adam::new(0.01)), true),
    ];
    for (name, optimizer, bn) in cases {
        let want = one_process(&*optimizer, rows, if bn { size } else { 1 }, bn);
        let got = member_run(group.clone(), &*optimizer, rows, bn);
        check_member(&want, &got, rank, size);
        check_trained(&want.0, rows, bn);
        // Both ranks hold the same trained parameters, bit for bit: rank 0's
        // values, broadcast, equal this rank's.
        let mine: Vec<f64> = got
            .0
            .iter()
            .filter(|(n, _)| !is_buffer(n))
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        let mut bytes: Vec<u8> = mine.iter().flat_map(|v| v.to_le_bytes()).collect();
        group.broadcast(&mut bytes, 0).unwrap();
        let root: Vec<f64> = bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(
            root, mine,
            "{name}: rank {rank}'s parameters differ from rank 0's"
        );
        println!("rank {rank}: {name} matches one process");
    }
}

fn nan_loss(group: &Arc<dyn Collective>) {
    let rank = group.rank();
    let g = GraphBuilder::new("member");
    let loss = classifier(&g, 8, 1, false, 7);
    let mut step = TrainStep::builder(&loss)
        .data_parallel(group.clone())
        .build(&Sgd::new(0.1))
        .unwrap();
    let (x, labels) = global_batch(0, 16);
    let (mut x, labels) = (shard(&x, rank, 2), shard(&labels, rank, 2));
    if rank == 1 {
        let mut v = x.as_f32().unwrap().to_vec();
        v[5] = f32::NAN;
        x = HostTensor::from_f32([8, FEATURES], v).unwrap();
    }
    let before = values(&step);
    match step.run(&[("x", &x), ("labels", &labels)]) {
        Err(TrainError::NonFiniteLoss(l)) if rank == 1 => assert!(l.is_nan()),
        Err(TrainError::Collective(CollectiveError::RankFailed {
            rank: 1, size: 2, ..
        })) if rank == 0 => {}
        other => panic!("rank {rank}: {other:?}"),
    }
    assert_eq!(before, values(&step), "rank {rank} changed its parameters");
}
