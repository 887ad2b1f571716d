//! Pooling and its gradient.

use kiln_ir::{DType, HostTensor, Op, Pool2dAttrs, PoolKind};

use crate::{Rng, assert_close, assert_same, dot, ev, t32, t64};

fn pool(
    kind: PoolKind,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Pool2dAttrs {
    Pool2dAttrs {
        kind,
        kernel,
        stride,
        padding,
    }
}

/// Pooling by the definition: copy `x` into an array padded with `fill`, then take
/// each window's max (or sum / kernel area), in f64.
fn pool_ref(x: &HostTensor, p: &Pool2dAttrs) -> (Vec<usize>, Vec<f64>) {
    let [n, c, h, w]: [usize; 4] = x.shape().dims().try_into().unwrap();
    let fill = match p.kind {
        PoolKind::Max => f64::NEG_INFINITY,
        PoolKind::Avg => 0.0,
    };
    let (hp, wp) = (h + 2 * p.padding[0], w + 2 * p.padding[1]);
    let xv = x.to_f64_vec();
    let mut padded = vec![fill; n * c * hp * wp];
    for nc in 0..n * c {
        for i in 0..h {
            for j in 0..w {
                padded[(nc * hp + i + p.padding[0]) * wp + j + p.padding[1]] =
                    xv[(nc * h + i) * w + j];
            }
        }
    }
    let oh = (hp - p.kernel[0]) / p.stride[0] + 1;
    let ow = (wp - p.kernel[1]) / p.stride[1] + 1;
    let mut out = Vec::new();
    for nc in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut vals = Vec::new();
                for ky in 0..p.kernel[0] {
                    for kx in 0..p.kernel[1] {
                        vals.push(
                            padded[(nc * hp + oy * p.stride[0] + ky) * wp + ox * p.stride[1] + kx],
                        );
                    }
                }
                out.push(match p.kind {
                    PoolKind::Max => vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                    PoolKind::Avg => vals.iter().sum::<f64>() / vals.len() as f64,
                });
            }
        }
    }
    (vec![n, c, oh, ow], out)
}

/// (kernel, stride, padding, x dims).
type Case = ([usize; 2], [usize; 2], [usize; 2], [usize; 4]);

/// Overlapping, strided and padded windows on non-square inputs.
const CASES: [Case; 5] = [
    ([2, 2], [2, 2], [0, 0], [1, 1, 4, 6]),
    ([3, 2], [1, 2], [1, 1], [2, 3, 5, 7]),
    ([3, 3], [2, 1], [1, 0], [1, 2, 7, 5]),
    ([3, 3], [1, 1], [0, 0], [2, 1, 3, 3]),
    ([2, 3], [3, 1], [1, 1], [1, 1, 6, 4]),
];

/// The 4×4 input of the by-hand checks.
#[rustfmt::skip]
fn by_hand_input() -> HostTensor {
    t32(&[1, 1, 4, 4], &[
        1.0, 5.0, 2.0, 0.0,
        3.0, 4.0, 8.0, 6.0,
        7.0, 1.0, 0.0, 2.0,
        9.0, 3.0, 4.0, 5.0,
    ])
}

/// `x` pooled with these attributes.
fn pool_ev(
    x: &HostTensor,
    kind: PoolKind,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> HostTensor {
    ev(Op::Pool2d(pool(kind, kernel, stride, padding)), &[x])
}

#[test]
fn max_pool2d_by_hand() {
    let x = by_hand_input();
    let y = pool_ev(&x, PoolKind::Max, [2, 2], [2, 2], [0, 0]);
    assert_same(&y, &t32(&[1, 1, 2, 2], &[5.0, 8.0, 9.0, 5.0]));
    // Padding is -inf: with all-negative input the border windows still report
    // the input's values, never 0.
    let x = t32(&[1, 1, 2, 2], &[-4.0, -3.0, -2.0, -1.0]);
    let y = pool_ev(&x, PoolKind::Max, [2, 2], [2, 2], [1, 1]);
    assert_same(&y, &t32(&[1, 1, 2, 2], &[-4.0, -3.0, -2.0, -1.0]));
    // NaN poisons exactly the windows that contain it (overlapping windows).
    let x = t64(&[1, 1, 2, 3], &[1.0, f64::NAN, 3.0, 4.0, 5.0, 6.0]);
    let y = pool_ev(&x, PoolKind::Max, [1, 2], [1, 1], [0, 0]);
    assert_close(&y, &[1, 1, 2, 2], &[f64::NAN, f64::NAN, 5.0, 6.0], 0.0);
}

#[test]
fn max_pool2d_matches_padded_reference() {
    let mut rng = Rng::new(41);
    for (kernel, stride, padding, dims) in CASES {
        let p = pool(PoolKind::Max, kernel, stride, padding);
        for dtype in [DType::F32, DType::F64] {
            let x = rng.tensor(dtype, &dims, -5.0, 5.0);
            let (d, want) = pool_ref(&x, &p);
            assert_close(&ev(Op::Pool2d(p), &[&x]), &d, &want, 0.0);
        }
    }
}

#[test]
fn avg_pool2d_by_hand() {
    let x = by_hand_input();
    let y = pool_ev(&x, PoolKind::Avg, [2, 2], [2, 2], [0, 0]);
    assert_same(&y, &t32(&[1, 1, 2, 2], &[3.25, 4.0, 5.0, 2.75]));
    // Padding counts in the area: each window holds one real value out of four.
    let x = t32(&[1, 1, 2, 2], &[4.0, 8.0, 12.0, 16.0]);
    let y = pool_ev(&x, PoolKind::Avg, [2, 2], [2, 2], [1, 1]);
    assert_same(&y, &t32(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]));
}

#[test]
fn avg_pool2d_matches_padded_reference() {
    let mut rng = Rng::new(42);
    for (kernel, stride, padding, dims) in CASES {
        let p = pool(PoolKind::Avg, kernel, stride, padding);
        let x = rng.tensor(DType::F64, &dims, -5.0, 5.0);
        let (d, want) = pool_ref(&x, &p);
        assert_close(&ev(Op::Pool2d(p), &[&x]), &d, &want, 1e-14);
        let x = rng.tensor(DType::F32, &dims, -5.0, 5.0);
        let (d, want) = pool_ref(&x, &p);
        assert_close(&ev(Op::Pool2d(p), &[&x]), &d, &want, 1e-6);
    }
}

#[test]
fn max_pool2d_grad_by_hand() {
    // 2x2 windows, stride 1, over a 3x3 input with ties. Window maxima (first in
    // row-major order): (0,0)->x[0][1], (0,1)->x[0][1], (1,0)->x[1][0], (1,1)->x[1][2].
    #[rustfmt::skip]
    let x = t32(&[1, 1, 3, 3], &[
        1.0, 5.0, 2.0,
        5.0, 3.0, 5.0,
        0.0, 4.0, 1.0,
    ]);
    let dy = t32(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let p = pool(PoolKind::Max, [2, 2], [1, 1], [0, 0]);
    #[rustfmt::skip]
    let want = t32(&[1, 1, 3, 3], &[
        0.0, 3.0, 0.0,
        3.0, 0.0, 4.0,
        0.0, 0.0, 0.0,
    ]);
    assert_same(&ev(Op::Pool2dGrad(p), &[&x, &dy]), &want);
    // NaN counts as the maximum and the last NaN wins (PyTorch's rule).
    let x = t64(&[1, 1, 1, 4], &[1.0, f64::NAN, 7.0, f64::NAN]);
    let dy = t64(&[1, 1, 1, 1], &[2.5]);
    let p = pool(PoolKind::Max, [1, 4], [1, 1], [0, 0]);
    assert_same(
        &ev(Op::Pool2dGrad(p), &[&x, &dy]),
        &t64(&[1, 1, 1, 4], &[0.0, 0.0, 0.0, 2.5]),
    );
    // Padded windows route to real positions only (padding is -inf).
    let x = t32(&[1, 1, 2, 2], &[-4.0, -3.0, -2.0, -1.0]);
    let dy = t32(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let p = pool(PoolKind::Max, [2, 2], [2, 2], [1, 1]);
    assert_same(&ev(Op::Pool2dGrad(p), &[&x, &dy]), &dy);
}

#[test]
fn max_pool2d_grad_routes_each_gradient_to_a_maximum() {
    // Each dy lands on one element equal to its window's maximum, so
    // <grad(x, dy), x> = <dy, pool(x)> and sum(grad) = sum(dy).
    let mut rng = Rng::new(43);
    for (kernel, stride, padding, dims) in CASES {
        let p = pool(PoolKind::Max, kernel, stride, padding);
        let x = rng.tensor(DType::F64, &dims, -5.0, 5.0);
        let y = ev(Op::Pool2d(p), &[&x]);
        let dy = HostTensor::from_fn(&y.ty(), |_| rng.uniform(0.5, 1.5));
        let dx = ev(Op::Pool2dGrad(p), &[&x, &dy]);
        assert_eq!(dx.ty(), x.ty());
        let (lhs, rhs) = (dot(&dx, &x), dot(&dy, &y));
        assert!(
            (lhs - rhs).abs() < 1e-12 * rhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
        let (sx, sy): (f64, f64) = (dx.to_f64_vec().iter().sum(), dy.to_f64_vec().iter().sum());
        assert!((sx - sy).abs() < 1e-12 * sy.abs(), "{sx} vs {sy}");
    }
}

#[test]
fn avg_pool2d_grad_by_hand() {
    // dy / 4 spread over each 2x2 window (stride 1) of a 3x3 input.
    let x = t32(&[1, 1, 3, 3], &[1.0; 9]);
    let dy = t32(&[1, 1, 2, 2], &[4.0, 8.0, 12.0, 16.0]);
    let p = pool(PoolKind::Avg, [2, 2], [1, 1], [0, 0]);
    #[rustfmt::skip]
    let want = t32(&[1, 1, 3, 3], &[
        1.0, 3.0, 2.0,
        4.0, 10.0, 6.0,
        3.0, 7.0, 4.0,
    ]);
    assert_same(&ev(Op::Pool2dGrad(p), &[&x, &dy]), &want);
    // The padding's share is dropped.
    let x = t32(&[1, 1, 2, 2], &[1.0; 4]);
    let p = pool(PoolKind::Avg, [2, 2], [2, 2], [1, 1]);
    assert_same(
        &ev(Op::Pool2dGrad(p), &[&x, &dy]),
        &t32(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]),
    );
}

#[test]
fn avg_pool2d_grad_is_adjoint() {
    // avg pooling is linear: <pool(x), dy> = <x, grad(x, dy)>.
    let mut rng = Rng::new(44);
    for (kernel, stride, padding, dims) in CASES {
        let p = pool(PoolKind::Avg, kernel, stride, padding);
        let x = rng.tensor(DType::F64, &dims, -5.0, 5.0);
        let y = ev(Op::Pool2d(p), &[&x]);
        let dy = HostTensor::from_fn(&y.ty(), |_| rng.uniform(-1.0, 1.0));
        let dx = ev(Op::Pool2dGrad(p), &[&x, &dy]);
        let (lhs, rhs) = (dot(&y, &dy), dot(&x, &dx));
        assert!(
            (lhs - rhs).abs() < 1e-12 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }
}

/// Issue 18, finding 2: the rule at the edges, PyTorch's (its CPU kernel starts
/// from the window's first in-bounds position and `-inf`, and takes a value that is
/// larger or NaN): a window that is all `-inf` gives `-inf` and its gradient goes to
/// its first position; a window with NaN gives NaN and its gradient goes to the
/// last NaN; ties (signed zeros included) go to the first; padding never wins.
#[test]
fn max_pool2d_nonfinite_windows_by_hand() {
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    // Four 2x2 windows, stride 2: all -inf; NaN, 1, 2, NaN; -0, +0, +0, -1;
    // NaN first then larger values.
    #[rustfmt::skip]
    let x = t32(&[1, 1, 2, 8], &[
        -inf, -inf,  nan, 1.0, -0.0, 0.0,  nan, 9.0,
        -inf, -inf,  2.0, nan,  0.0, -1.0, 3.0, inf,
    ]);
    let p = pool(PoolKind::Max, [2, 2], [2, 2], [0, 0]);
    let y = ev(Op::Pool2d(p), &[&x]);
    let yv = y.as_f32().unwrap();
    assert_eq!(yv[0], -inf);
    assert!(yv[1].is_nan() && yv[3].is_nan());
    assert_eq!(yv[2].to_bits(), (-0.0f32).to_bits());
    let dy = t32(&[1, 1, 1, 4], &[1.5, 2.5, 3.5, 4.5]);
    #[rustfmt::skip]
    let want = t32(&[1, 1, 2, 8], &[
        1.5, 0.0, 0.0, 0.0, 3.5, 0.0, 4.5, 0.0,
        0.0, 0.0, 0.0, 2.5, 0.0, 0.0, 0.0, 0.0,
    ]);
    assert_same(&ev(Op::Pool2dGrad(p), &[&x, &dy]), &want);

    // Padding is -inf but not a position: each padded window holds one real
    // element, which wins even when it is -inf or NaN.
    let x = t32(&[1, 1, 2, 2], &[nan, -inf, -inf, 5.0]);
    let p = pool(PoolKind::Max, [2, 2], [2, 2], [1, 1]);
    let y = ev(Op::Pool2d(p), &[&x]).as_f32().unwrap().to_vec();
    assert!(y[0].is_nan());
    assert_eq!(&y[1..], &[-inf, -inf, 5.0]);
    let dy = t32(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    assert_same(&ev(Op::Pool2dGrad(p), &[&x, &dy]), &dy);

    // Overlapping windows (3x3, stride 1, padding 1) over an all -inf plane: each
    // window's gradient goes to its first in-bounds position.
    let x = t32(&[1, 1, 2, 3], &[-inf; 6]);
    let p = pool(PoolKind::Max, [3, 3], [1, 1], [1, 1]);
    let dy = t32(&[1, 1, 2, 3], &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0]);
    // Windows at (0,0) and (1,0) start at x[0][0]; (0,1), (1,1) at x[0][0] too
    // (their columns start at 0); (0,2) and (1,2) at x[0][1].
    assert_same(
        &ev(Op::Pool2dGrad(p), &[&x, &dy]),
        &t32(
            &[1, 1, 2, 3],
            &[1.0 + 2.0 + 8.0 + 16.0, 4.0 + 32.0, 0.0, 0.0, 0.0, 0.0],
        ),
    );
}
