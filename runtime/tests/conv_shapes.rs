//! Convolution and pooling kernels against the interpreter on random geometry:
//! batch, channels on both sides of the thin-kernel limit (16 output channels),
//! kernel sizes, strides, padding, dilation and image sizes that are not multiples
//! of any vector width. Each case runs the forward op and both gradient forms on
//! one and on three threads, so the in-place stride-1 path, the im2col path, the
//! packed GEMM path and every way of splitting them are exercised.

use kiln_ir::{
    Conv2dAttrs, DType, Graph, HostTensor, Op, Pool2dAttrs, PoolKind, TensorType, interp,
};
use kiln_runtime::{CompileOptions, Executable};
use kiln_testutil::near;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// One random convolution (or pooling) geometry.
#[derive(Clone, Debug)]
struct Geometry {
    n: usize,
    c: usize,
    o: usize,
    kernel: [usize; 2],
    conv: Conv2dAttrs,
    hw: [usize; 2],
}

fn geometry() -> impl Strategy<Value = Geometry> {
    (
        1usize..4,
        1usize..5,
        prop_oneof![1usize..7, 15usize..19],
        [1usize..4, 1usize..4],
        [1usize..3, 1usize..3],
        [0usize..3, 0usize..3],
        [1usize..3, 1usize..3],
        [0usize..9, 0usize..9],
    )
        .prop_map(|(n, c, o, kernel, stride, padding, dilation, extra)| {
            // The smallest image the (dilated) kernel fits in once padded, plus a
            // random margin.
            let hw = [0, 1].map(|d| {
                let span = (kernel[d] - 1) * dilation[d] + 1;
                span.saturating_sub(2 * padding[d]).max(1) + extra[d]
            });
            Geometry {
                n,
                c,
                o,
                kernel,
                conv: Conv2dAttrs {
                    stride,
                    padding,
                    dilation,
                },
                hw,
            }
        })
}

/// Deterministic values in about [-1, 1], never all zero.
fn values(ty: &TensorType, salt: u64) -> HostTensor {
    HostTensor::from_fn(ty, |i| {
        let mut h = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt;
        h ^= h >> 31;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 29;
        (h % 2001) as f64 / 1000.0 - 1.0
    })
}

/// Compiles `op` over arguments of types `args` and compares it with the
/// interpreter on one and on three threads.
fn agree(op: Op, args: &[TensorType], tol: f64) -> Result<(), TestCaseError> {
    let mut g = Graph::new("case");
    let ids: Vec<_> = args
        .iter()
        .enumerate()
        .map(|(i, t)| g.input(&format!("a{i}"), t.clone()).unwrap())
        .collect();
    let y = g
        .add(op.clone(), &ids)
        .map_err(|e| TestCaseError::reject(e.to_string()))?;
    g.output(y, None);
    let vals: Vec<HostTensor> = args
        .iter()
        .enumerate()
        .map(|(i, t)| values(t, i as u64 * 7 + 1))
        .collect();
    let want = interp::run(&g, &vals).map_err(|e| TestCaseError::fail(e.to_string()))?;
    for threads in [1, 3] {
        let options = CompileOptions {
            threads,
            ..CompileOptions::unoptimized()
        };
        let mut exe = Executable::compile_with(&g, &options)
            .map_err(|e| TestCaseError::fail(format!("{}: {e}", op.mnemonic())))?;
        let got = exe
            .run(&vals)
            .map_err(|e| TestCaseError::fail(format!("{}: {e}", op.mnemonic())))?;
        for i in 0..want[0].numel() {
            let (a, b) = (got[0].get_f64(i), want[0].get_f64(i));
            prop_assert!(
                near(a, b, tol),
                "{} on {:?}, {threads} threads: element {i}: jit {a}, interpreter {b}",
                op.mnemonic(),
                args.iter()
                    .map(|t| t.shape.dims().to_vec())
                    .collect::<Vec<_>>()
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(kiln_testutil::proptest_config(64, 0x6b69_6c6e_0003))]

    #[test]
    fn convolutions_match_the_interpreter(g in geometry()) {
        let f32 = |d: [usize; 4]| TensorType::new(DType::F32, d);
        let x = f32([g.n, g.c, g.hw[0], g.hw[1]]);
        let w = f32([g.o, g.c, g.kernel[0], g.kernel[1]]);
        let y = kiln_ir::infer(&Op::Conv2d(g.conv), &[&x, &w])
            .map_err(|e| TestCaseError::reject(e.to_string()))?;
        // Sums of up to 4·3·3 = 36 products of values in [-1, 1].
        let tol = 2e-5;
        agree(Op::Conv2d(g.conv), &[x.clone(), w.clone()], tol)?;
        agree(Op::Conv2dWeightGrad { conv: g.conv, kernel: g.kernel }, &[x.clone(), y.clone()], tol * 8.0)?;
        // The transposed convolution back to x's shape, if the geometry determines
        // it without output padding.
        let back = Op::ConvTranspose2d { conv: g.conv, output_padding: [0, 0] };
        if kiln_ir::infer(&back, &[&y, &w]).is_ok_and(|t| t == x) {
            agree(back, &[y, w], tol)?;
        }
    }

    #[test]
    fn pooling_matches_the_interpreter(g in geometry(), avg in any::<bool>()) {
        let p = Pool2dAttrs {
            kind: if avg { PoolKind::Avg } else { PoolKind::Max },
            kernel: [g.kernel[0] + 1, g.kernel[1] + 1],
            stride: g.conv.stride.map(|s| s + 1),
            padding: [0, 1].map(|d| g.conv.padding[d].min(g.kernel[d].div_ceil(2))),
        };
        let x = TensorType::new(DType::F32, [g.n, g.c, g.hw[0] + 2, g.hw[1] + 2]);
        let y = kiln_ir::infer(&Op::Pool2d(p), &[&x]).map_err(|e| TestCaseError::reject(e.to_string()))?;
        agree(Op::Pool2d(p), std::slice::from_ref(&x), 1e-6)?;
        agree(Op::Pool2dGrad(p), &[x, y], 1e-6)?;
    }
}
