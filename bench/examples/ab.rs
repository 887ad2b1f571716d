//! A/B: one workload compiled two ways, timed in one process in alternating
//! blocks of steps, single thread, so the machine's drift (2-3x between periods,
//! 10% within a criterion run) falls on both alike. Prints each variant's median
//! block and the ratio B/A, which repeats to about half a percent where separate
//! criterion runs disagree by ten.
//!
//!   taskset -c 0 cargo run --release --manifest-path bench/Cargo.toml \
//!       --example ab -- WORKLOAD VARIANT
//!
//! WORKLOAD: w2 (batch 64), w2_256, w3, w4. VARIANT, what B changes from the
//! defaults (A): `no_wide_loops` (elementwise kernels with transcendentals on
//! Cranelift's 128-bit loops) or `no_optimize` (no equality saturation).
//!
//! To weigh a change inside a library kernel the same way, put it behind a
//! temporary switch and flip it between blocks instead of compiling twice.

use std::time::Instant;

use kiln::prelude::*;
use kiln_bench::Workload;

/// Blocks per variant, and steps per block (after a few unmeasured ones).
const BLOCKS: usize = 40;
const STEPS: usize = 10;
const WARM: usize = 3;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [workload, variant] = args.as_slice() else {
        return Err("usage: ab WORKLOAD VARIANT (see the example's docs)".into());
    };
    let build = || -> Result<Workload, String> {
        Ok(match workload.as_str() {
            "w2" => kiln_bench::w2(64),
            "w2_256" => kiln_bench::w2(256),
            "w3" => kiln_bench::w3(128),
            "w4" => kiln_bench::w4(32),
            other => return Err(format!("unknown workload {other:?}: w2, w2_256, w3 or w4")),
        })
    };
    let a_options = CompileOptions {
        threads: 1,
        ..CompileOptions::default()
    };
    let mut b_options = a_options.clone();
    match variant.as_str() {
        "no_wide_loops" => b_options.wide_loops = false,
        "no_optimize" => b_options.optimize = false,
        other => {
            return Err(format!(
                "unknown variant {other:?}: no_wide_loops or no_optimize"
            ));
        }
    }
    let mut runs = Vec::new();
    for options in [&a_options, &b_options] {
        let mut w = build()?;
        w.step.compile_with(options).map_err(|e| e.to_string())?;
        runs.push(w);
    }
    // Milliseconds per step of each block, per variant.
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..BLOCKS {
        for (w, t) in runs.iter_mut().zip(&mut times) {
            for _ in 0..WARM {
                w.run();
            }
            let start = Instant::now();
            for _ in 0..STEPS {
                w.run();
            }
            t.push(start.elapsed().as_secs_f64() * 1e3 / STEPS as f64);
        }
    }
    let median = |t: &mut Vec<f64>| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let (a, b) = (median(&mut times[0]), median(&mut times[1]));
    println!(
        "{workload}: A (defaults) {a:.3} ms, B ({variant}) {b:.3} ms, B/A {:.3}",
        b / a
    );
    Ok(())
}
