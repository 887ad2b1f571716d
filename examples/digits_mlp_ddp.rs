//! Data-parallel training (examples/data/README.md: 8x8 handwritten digits) of a
//! 64-128-64-10 MLP with Adam (learning rate 3e-3, global batch 32, 40 epochs):
//! each epoch, every member of the group trains on its part of every global batch
//! (a batch of `32 / members`), and the compiled step sums the members' gradients
//! with one `all_reduce`, so each update is the global batch's: the training is
//! the one-process training up to float rounding, and reaches the same test
//! accuracy. Only rank 0 prints; it saves the trained parameters to a checkpoint.
//!
//! Two ways to run it:
//! - on threads of one process (no MPI needed): `cargo run --release --example
//!   digits_mlp_ddp -- --members 2`;
//! - as MPI processes: `cargo build --release --features mpi --example
//!   digits_mlp_ddp`, then `mpirun -np 2 target/release/examples/digits_mlp_ddp`.
//!
//! `--members 1` is the same training in one process, for comparison.

use std::error::Error;
use std::sync::Arc;

use kiln::data::{CsvOptions, read_csv};
use kiln::dist::{Collective, LocalGroup};
use kiln::prelude::*;

const GLOBAL_BATCH: usize = 32;
const EPOCHS: usize = 40;
const SEED: u64 = 0;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

fn mlp(g: &GraphBuilder, x: &Tensor) -> Tensor {
    let mut rng = Rng::seed(SEED);
    let fc1 = nn::Linear::new(g, "fc1", 64, 128, &mut rng);
    let fc2 = nn::Linear::new(g, "fc2", 128, 64, &mut rng);
    let fc3 = nn::Linear::new(g, "fc3", 64, 10, &mut rng);
    fc3.forward(&fc2.forward(&fc1.forward(x).relu()).relu())
}

/// Trains as member `group.rank()` of the group; returns the test accuracy over
/// every member's share of the test set.
fn train(group: Arc<dyn Collective>) -> Result<f64> {
    let (rank, size) = (group.rank(), group.size());
    if !GLOBAL_BATCH.is_multiple_of(size) {
        return Err(
            format!("{size} members do not divide the global batch of {GLOBAL_BATCH}").into(),
        );
    }
    let batch = GLOBAL_BATCH / size;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv.gz");
    let data = read_csv(path, &CsvOptions::default())?.map_features(|p| p / 16.0);
    let (train, test) = data.split(0.8, SEED);
    if rank == 0 {
        println!(
            "digits: {} training and {} test images; {size} member(s), batch {batch} each",
            train.len(),
            test.len()
        );
    }

    let g = GraphBuilder::new("digits_ddp");
    let x = g.input("x", DType::F32, [batch, 64]);
    let labels = g.input("labels", DType::I32, [batch]);
    let logits = mlp(&g, &x);
    let loss = loss::cross_entropy(&logits, &labels);
    let mut step = TrainStep::builder(&loss)
        .outputs(&[("logits", &logits)])
        .data_parallel(group.clone())
        .build(&Adam::new(3e-3))?;
    // One thread per member: the members are the parallelism.
    step.compile_with(&CompileOptions {
        threads: 1,
        ..CompileOptions::default()
    })?;
    let mut evaluator = Evaluator::new(|b| {
        let g = GraphBuilder::new("digits_eval");
        let x = g.input("x", DType::F32, [b, 64]);
        let logits = mlp(&g, &x);
        g.build(&[("logits", &logits)]).map(|m| m.graph)
    });
    // Every member passes the whole data: `Fit` gives each its part of every
    // epoch's global batches and of the test set.
    let reports = Fit::new(EPOCHS, batch)
        .seed(SEED)
        .progress(Progress::Lines)
        .run(&mut step, &train, Some((&mut evaluator, &test)))?;
    let accuracy = reports
        .last()
        .and_then(|r| r.eval)
        .map(|e| e.accuracy)
        .ok_or("no evaluation")?;
    if rank == 0 {
        let checkpoint = std::env::temp_dir().join("kiln-digits-ddp.safetensors");
        kiln::checkpoint::save_params(&checkpoint, step.params())?;
        println!("checkpoint: {}", checkpoint.display());
    }
    Ok(accuracy)
}

/// `--members N` (default 2).
fn members_arg() -> Result<usize> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(2),
        [flag, n] if flag == "--members" => match n.parse() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("--members wants a positive count, got `{n}`").into()),
        },
        _ => Err("usage: digits_mlp_ddp [--members N]".into()),
    }
}

/// Under `mpirun` (with the `mpi` feature): one MPI process per member. A member
/// that fails ends the whole job (MPI_Abort), so no other waits for it.
#[cfg(feature = "mpi")]
fn run_mpi() -> Option<Result<()>> {
    std::env::var_os("OMPI_COMM_WORLD_SIZE").or_else(|| std::env::var_os("PMI_SIZE"))?;
    let group = match kiln::dist::MpiGroup::init() {
        Ok(g) => g,
        Err(e) => return Some(Err(e.into())),
    };
    Some(match train(group.clone()) {
        Ok(accuracy) => {
            if group.rank() == 0 {
                println!("test accuracy: {accuracy:.4}");
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("rank {} of {}: {e}", group.rank(), group.size());
            group.abort(1)
        }
    })
}

#[cfg(not(feature = "mpi"))]
fn run_mpi() -> Option<Result<()>> {
    None
}

fn main() -> Result<()> {
    if let Some(result) = run_mpi() {
        return result;
    }
    let results: Vec<Result<f64>> = LocalGroup::run(members_arg()?, |m| train(m));
    for (rank, r) in results.iter().enumerate() {
        if let Err(e) = r {
            return Err(format!("rank {rank}: {e}").into());
        }
    }
    let accuracy = *results[0].as_ref().map_err(|e| e.to_string())?;
    println!("test accuracy: {accuracy:.4}");
    Ok(())
}
