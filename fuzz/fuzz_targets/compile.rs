//! The whole pipeline on parsed graphs: a graph that parses is checked against
//! a memory budget, run by the interpreter on seeded arguments, and compiled with
//! and without the optimizer. Nothing may crash, and where the interpreter
//! succeeds, the compiled program must run too (errors at compile time must be
//! clean errors).
#![no_main]

use kiln_ir::text::parse;
use kiln_ir::{DType, HostTensor, interp};
use kiln_runtime::{CompileOptions, Executable, check_memory};
use libfuzzer_sys::fuzz_target;

/// Small enough that the interpreter, which has no budget of its own, stays fast.
const BUDGET: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(graph) = parse(src) else {
        return;
    };
    if check_memory(&graph, BUDGET).is_err() {
        return;
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let args: Vec<HostTensor> = graph
        .args()
        .iter()
        .map(|&a| {
            let ty = &graph.node(a).ty;
            HostTensor::from_fn(ty, |_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                match ty.dtype {
                    DType::I32 => (u * 6.0).floor() - 1.0,
                    DType::Bool => (u < 0.5) as u8 as f64,
                    _ => u * 6.0 - 3.0,
                }
            })
        })
        .collect();
    let reference = interp::run(&graph, &args);
    for optimize in [false, true] {
        let options = CompileOptions {
            optimize,
            threads: 1,
            memory_limit: BUDGET * 16,
            ..CompileOptions::default()
        };
        let Ok(mut exe) = Executable::compile_with(&graph, &options) else {
            continue;
        };
        let run = exe.run(&args);
        if let (Ok(_), Err(e)) = (&reference, &run) {
            panic!("optimize={optimize}: the interpreter runs the graph, the compiled code fails: {e}\n{src}");
        }
    }
});
