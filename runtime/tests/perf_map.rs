//! `KILN_PERF_MAP=1` lists every compiled function in `/tmp/perf-<pid>.map`, the
//! file `perf report` reads to name JIT code. A test binary of its own: the
//! variable is read once per process.

use kiln_ir::text::parse;
use kiln_ir::{DType, HostTensor, TensorType};
use kiln_runtime::Executable;

#[test]
fn compiled_functions_are_listed_for_perf() {
    // SAFETY: set before any other thread of this process reads the environment
    // (the only test in this binary, before the first compile).
    unsafe { std::env::set_var("KILN_PERF_MAP", "1") };
    let path = format!("/tmp/perf-{}.map", std::process::id());
    let _ = std::fs::remove_file(&path);
    let g = parse(
        "fn f(x: f32[3,5]) -> (y: f32[3], z: f32[3,5]) {
           %1 = exp %0 : f32[3,5]
           %2 = reduce_sum %1 axes=[1] keepdims=false : f32[3]
           %3 = mul %1, %0 : f32[3,5]
           return %2, %3
         }",
    )
    .unwrap();
    let x = HostTensor::from_fn(&TensorType::new(DType::F32, [3, 5]), |i| {
        i as f64 * 0.25 - 1.0
    });
    let mut exe = Executable::compile(&g).unwrap();
    exe.run(&[x]).unwrap();

    let map = std::fs::read_to_string(&path).expect("the perf map is written");
    let entries: Vec<(usize, usize, &str)> = map
        .lines()
        .map(|line| {
            let mut f = line.splitn(3, ' ');
            let mut hex = || usize::from_str_radix(f.next().unwrap(), 16).unwrap();
            let (addr, size) = (hex(), hex());
            (addr, size, f.next().unwrap())
        })
        .collect();
    let _ = std::fs::remove_file(&path);
    assert!(entries.len() >= 2, "the entry and its kernels: {map}");
    assert!(entries.iter().any(|e| e.2 == "kiln:entry"), "{map}");
    for (i, &(addr, size, name)) in entries.iter().enumerate() {
        assert!(name.starts_with("kiln:") && size > 0 && addr > 0, "{map}");
        // Functions do not overlap.
        for &(other, other_size, _) in &entries[i + 1..] {
            assert!(addr + size <= other || other + other_size <= addr, "{map}");
        }
    }
}
