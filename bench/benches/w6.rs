//! W6: `C = A·B` in f32, single-threaded unless named: kiln's compiled matmul
//! against the Rust GEMM crates called directly, matrixmultiply (which kiln calls
//! for large products) and gemm. Square 256, 1024 and 2048, and W2's layer shapes.
//! Throughput is 2·m·n·k / time (criterion prints it as elements/s = flop/s).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln_bench::w6;

/// `(m, k, n)`: `[m, k] × [k, n]`.
const SHAPES: [(usize, usize, usize); 5] = [
    (256, 256, 256),
    (1024, 1024, 1024),
    (2048, 2048, 2048),
    (64, 784, 128),
    (64, 128, 64),
];

fn gemm_shapes(c: &mut Criterion) {
    let mut group = c.benchmark_group("w6_gemm");
    for (m, k, n) in SHAPES {
        let id = format!("{m}x{k}x{n}");
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        if m >= 2048 {
            group.sample_size(10);
        } else {
            group.sample_size(30);
        }
        for (threads, label) in [(1, "kiln_1_thread"), (0, "kiln_all_cores")] {
            let (mut exe, args, mut out) = w6(m, k, n, threads);
            let refs: Vec<_> = args.iter().collect();
            group.bench_function(BenchmarkId::new(label, &id), |b| {
                b.iter(|| {
                    exe.run_into(&refs, &mut [Some(&mut out)]).expect("runs");
                })
            });
        }
        let a = args_of(m * k, 1);
        let bm = args_of(k * n, 2);
        let mut cm = vec![0f32; m * n];
        check_peers_agree(m, k, n, &a, &bm);
        group.bench_function(BenchmarkId::new("matrixmultiply", &id), |b| {
            b.iter(|| matrixmultiply_nn((m, k, n), &a, &bm, &mut cm))
        });
        group.bench_function(BenchmarkId::new("gemm", &id), |b| {
            b.iter(|| gemm_nn((m, k, n), &a, &bm, &mut cm))
        });
    }
    group.finish();
}

/// The three implementations compute the same product (so the timings compare
/// like with like): kiln's output and gemm's against matrixmultiply's.
fn check_peers_agree(m: usize, k: usize, n: usize, a: &[f32], b: &[f32]) {
    let (mut want, mut got) = (vec![0f32; m * n], vec![0f32; m * n]);
    matrixmultiply_nn((m, k, n), a, b, &mut want);
    gemm_nn((m, k, n), a, b, &mut got);
    let close = |x: f32, y: f32| (x - y).abs() <= 1e-3 * (1.0 + y.abs());
    assert!(
        got.iter().zip(&want).all(|(&x, &y)| close(x, y)),
        "gemm disagrees"
    );
    let (mut exe, _, mut out) = w6(m, k, n, 1);
    let ta = kiln::ir::HostTensor::from_f32([m, k], a.to_vec()).expect("sized");
    let tb = kiln::ir::HostTensor::from_f32([k, n], b.to_vec()).expect("sized");
    exe.run_into(&[&ta, &tb], &mut [Some(&mut out)])
        .expect("runs");
    let kiln_out = out.as_f32().expect("f32 output");
    assert!(
        kiln_out.iter().zip(&want).all(|(&x, &y)| close(x, y)),
        "kiln disagrees"
    );
}

/// `c = a · b` for row-major `[m, k] × [k, n]` through matrixmultiply.
fn matrixmultiply_nn((m, k, n): (usize, usize, usize), a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // SAFETY: the buffers hold m·k, k·n and m·n elements, row-major (checked).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// `c = a · b` for row-major `[m, k] × [k, n]` through gemm, single-threaded.
fn gemm_nn((m, k, n): (usize, usize, usize), a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // SAFETY: as above; gemm reads the destination (alpha) only when read_dst is
    // true, and beta scales the product.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Deterministic values in [-1, 1), never all zero.
fn args_of(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5 - 1.0)
        .collect()
}

criterion_group!(benches, gemm_shapes);
criterion_main!(benches);
