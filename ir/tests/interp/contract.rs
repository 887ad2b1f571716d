//! Matmul and the convolutions (including their adjoint relations).

use kiln_ir::{Conv2dAttrs, DType, HostTensor, Op, TensorType};

use crate::{Rng, assert_close, assert_same, dot, ev, t32, t64, ti};

#[test]
fn matmul_by_hand() {
    // [[1,2,3],[4,5,6]] x [[7,8],[9,10],[11,12]] = [[58,64],[139,154]].
    let a = t32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = t32(&[3, 2], &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
    assert_same(
        &ev(Op::MatMul, &[&a, &b]),
        &t32(&[2, 2], &[58.0, 64.0, 139.0, 154.0]),
    );
    // i32 wraps: 65536 * 65536 + 2 * 3 = 2^32 + 6 -> 6.
    let a = ti(&[1, 2], &[65536, 2]);
    let b = ti(&[2, 1], &[65536, 3]);
    assert_same(&ev(Op::MatMul, &[&a, &b]), &ti(&[1, 1], &[6]));
    // Non-finite values follow IEEE: 1*0 + inf*1 = inf, 0*inf + 1*1 = NaN.
    let a = t64(&[2, 2], &[1.0, f64::INFINITY, 0.0, 1.0]);
    let b = t64(&[2, 1], &[0.0, 1.0]);
    let y = ev(Op::MatMul, &[&a, &b]);
    assert_close(&y, &[2, 1], &[f64::INFINITY, 1.0], 0.0);
    let b = t64(&[2, 1], &[f64::INFINITY, 1.0]);
    assert_close(
        &ev(Op::MatMul, &[&a, &b]),
        &[2, 1],
        &[f64::INFINITY, f64::NAN],
        0.0,
    );
    // k = 0: all zeros.
    let y = ev(Op::MatMul, &[&t32(&[2, 0], &[]), &t32(&[0, 3], &[])]);
    assert_same(&y, &t32(&[2, 3], &[0.0; 6]));
}

/// `a[batch..., m, k] x b[batch..., k, n]` by the definition, in f64.
fn matmul_ref(a: &HostTensor, b: &HostTensor) -> Vec<f64> {
    let (av, bv) = (a.to_f64_vec(), b.to_f64_vec());
    let r = a.shape().rank();
    let (m, k, n) = (
        a.shape().dim(r - 2),
        a.shape().dim(r - 1),
        b.shape().dim(r - 1),
    );
    let batch = a.numel() / (m * k);
    let mut out = Vec::new();
    for bi in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    s += av[bi * m * k + i * k + p] * bv[bi * k * n + p * n + j];
                }
                out.push(s);
            }
        }
    }
    out
}

#[test]
fn matmul_batched_matches_loops() {
    let mut rng = Rng::new(21);
    let a = rng.tensor(DType::F64, &[2, 3, 5], -2.0, 2.0);
    let b = rng.tensor(DType::F64, &[2, 5, 4], -2.0, 2.0);
    assert_close(
        &ev(Op::MatMul, &[&a, &b]),
        &[2, 3, 4],
        &matmul_ref(&a, &b),
        1e-14,
    );
    let a = rng.tensor(DType::F32, &[2, 1, 3, 7], -2.0, 2.0);
    let b = rng.tensor(DType::F32, &[2, 1, 7, 3], -2.0, 2.0);
    assert_close(
        &ev(Op::MatMul, &[&a, &b]),
        &[2, 1, 3, 3],
        &matmul_ref(&a, &b),
        1e-5,
    );
    let a = rng.tensor(DType::I32, &[3, 2, 3], -50.0, 50.0);
    let b = rng.tensor(DType::I32, &[3, 3, 2], -50.0, 50.0);
    assert_close(
        &ev(Op::MatMul, &[&a, &b]),
        &[3, 2, 2],
        &matmul_ref(&a, &b),
        0.0,
    );
}

#[test]
fn matmul_mlp_sized() {
    // An MLP layer: 64x784 by 784x128 in f32, against an f64 reference.
    let mut rng = Rng::new(22);
    let x = rng.tensor(DType::F32, &[64, 784], -1.0, 1.0);
    let w = rng.tensor(DType::F32, &[784, 128], -0.1, 0.1);
    assert_close(
        &ev(Op::MatMul, &[&x, &w]),
        &[64, 128],
        &matmul_ref(&x, &w),
        1e-4,
    );
}

/// Conv geometry for reference computations.
#[derive(Clone, Copy)]
struct Geo {
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
}

impl Geo {
    fn attrs(self) -> Conv2dAttrs {
        Conv2dAttrs {
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        }
    }
    /// floor((in + 2p - d(k-1) - 1) / s) + 1.
    fn out(self, axis: usize, input: usize, k: usize) -> usize {
        (input + 2 * self.padding[axis] - self.dilation[axis] * (k - 1) - 1) / self.stride[axis] + 1
    }
}

/// `x` [N,C,H,W] copied into a zero array with `p` rows/columns on each side.
fn zero_pad(x: &HostTensor, p: [usize; 2]) -> (Vec<f64>, usize, usize) {
    let d = x.shape().dims();
    let (hp, wp) = (d[2] + 2 * p[0], d[3] + 2 * p[1]);
    let xv = x.to_f64_vec();
    let mut out = vec![0.0; d[0] * d[1] * hp * wp];
    for nc in 0..d[0] * d[1] {
        for i in 0..d[2] {
            for j in 0..d[3] {
                out[(nc * hp + i + p[0]) * wp + j + p[1]] = xv[(nc * d[2] + i) * d[3] + j];
            }
        }
    }
    (out, hp, wp)
}

/// Cross-correlation on an explicitly zero-padded input, in f64.
fn conv_ref(x: &HostTensor, w: &HostTensor, g: Geo) -> (Vec<usize>, Vec<f64>) {
    let [n, c, h, wd]: [usize; 4] = x.shape().dims().try_into().unwrap();
    let [o, _, kh, kw]: [usize; 4] = w.shape().dims().try_into().unwrap();
    let (oh, ow) = (g.out(0, h, kh), g.out(1, wd, kw));
    let (xp, hp, wp) = zero_pad(x, g.padding);
    let wv = w.to_f64_vec();
    let mut y = Vec::new();
    for b in 0..n {
        for oc in 0..o {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = 0.0;
                    for ic in 0..c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = oy * g.stride[0] + ky * g.dilation[0];
                                let ix = ox * g.stride[1] + kx * g.dilation[1];
                                s += xp[((b * c + ic) * hp + iy) * wp + ix]
                                    * wv[((oc * c + ic) * kh + ky) * kw + kx];
                            }
                        }
                    }
                    y.push(s);
                }
            }
        }
    }
    (vec![n, o, oh, ow], y)
}

/// Weight gradient on an explicitly zero-padded input, in f64.
fn weight_grad_ref(x: &HostTensor, dy: &HostTensor, k: [usize; 2], g: Geo) -> Vec<f64> {
    let [n, c, _, _]: [usize; 4] = x.shape().dims().try_into().unwrap();
    let [_, o, oh, ow]: [usize; 4] = dy.shape().dims().try_into().unwrap();
    let (xp, hp, wp) = zero_pad(x, g.padding);
    let dyv = dy.to_f64_vec();
    let mut dw = Vec::new();
    for oc in 0..o {
        for ic in 0..c {
            for ky in 0..k[0] {
                for kx in 0..k[1] {
                    let mut s = 0.0;
                    for b in 0..n {
                        for oy in 0..oh {
                            for ox in 0..ow {
                                let iy = oy * g.stride[0] + ky * g.dilation[0];
                                let ix = ox * g.stride[1] + kx * g.dilation[1];
                                s += xp[((b * c + ic) * hp + iy) * wp + ix]
                                    * dyv[((b * o + oc) * oh + oy) * ow + ox];
                            }
                        }
                    }
                    dw.push(s);
                }
            }
        }
    }
    dw
}

const GEOS: [(Geo, [usize; 4], [usize; 4]); 5] = [
    // (geometry, x dims, w dims)
    (
        Geo {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
        },
        [1, 1, 4, 5],
        [1, 1, 2, 3],
    ),
    (
        Geo {
            stride: [2, 1],
            padding: [1, 2],
            dilation: [1, 2],
        },
        [2, 3, 7, 5],
        [4, 3, 3, 2],
    ),
    (
        Geo {
            stride: [2, 2],
            padding: [1, 1],
            dilation: [1, 1],
        },
        [1, 2, 6, 6],
        [3, 2, 3, 3],
    ),
    (
        Geo {
            stride: [1, 3],
            padding: [0, 1],
            dilation: [3, 2],
        },
        [1, 1, 9, 8],
        [2, 1, 2, 3],
    ),
    (
        Geo {
            stride: [3, 3],
            padding: [0, 0],
            dilation: [1, 1],
        },
        [2, 2, 7, 4],
        [2, 2, 1, 1],
    ),
];

#[test]
fn conv2d_by_hand() {
    // x = 1..9 (3x3), w = [[1,2],[3,4]]: each output is the window dotted with w.
    let x = t32(
        &[1, 1, 3, 3],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
    );
    let w = t32(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let y = ev(Op::Conv2d(Conv2dAttrs::default()), &[&x, &w]);
    assert_same(&y, &t32(&[1, 1, 2, 2], &[37.0, 47.0, 67.0, 77.0]));
    // Padding 1: the corner output sees only x[0][0] * w[1][1] = 4.
    let c = Conv2dAttrs {
        padding: [1, 1],
        ..Default::default()
    };
    let y = ev(Op::Conv2d(c), &[&x, &w]);
    assert_eq!(y.shape().dims(), &[1, 1, 4, 4]);
    assert_eq!(y.get_f64(0), 4.0);
    assert_eq!(y.get_f64(15), 9.0); // x[2][2] * w[0][0]
    // Two output channels summing over two input channels.
    let x = t64(&[1, 2, 1, 2], &[1.0, 2.0, 10.0, 20.0]);
    let w = t64(&[2, 2, 1, 1], &[1.0, 0.5, -1.0, 2.0]);
    let y = ev(Op::Conv2d(Conv2dAttrs::default()), &[&x, &w]);
    // o=0: 1*x0 + 0.5*x1 = [6, 12]; o=1: -x0 + 2*x1 = [19, 38].
    assert_same(&y, &t64(&[1, 2, 1, 2], &[6.0, 12.0, 19.0, 38.0]));
}

#[test]
fn conv2d_matches_padded_reference() {
    let mut rng = Rng::new(31);
    for (g, xd, wd) in GEOS {
        for dtype in [DType::F64, DType::F32] {
            let x = rng.tensor(dtype, &xd, -1.0, 1.0);
            let w = rng.tensor(dtype, &wd, -1.0, 1.0);
            let (dims, want) = conv_ref(&x, &w, g);
            let tol = if dtype == DType::F64 { 1e-14 } else { 1e-5 };
            assert_close(&ev(Op::Conv2d(g.attrs()), &[&x, &w]), &dims, &want, tol);
        }
    }
}

#[test]
fn conv_transpose2d_by_hand() {
    let y = t32(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let w = t32(&[1, 1, 2, 2], &[1.0, 10.0, 100.0, 1000.0]);
    let op = |stride, padding, output_padding| Op::ConvTranspose2d {
        conv: Conv2dAttrs {
            stride,
            padding,
            dilation: [1, 1],
        },
        output_padding,
    };
    // Stride 1: out[i+ky][j+kx] += y[i][j] * w[ky][kx].
    #[rustfmt::skip]
    let want = [
        1.0, 12.0, 20.0,
        103.0, 1234.0, 2040.0,
        300.0, 3400.0, 4000.0,
    ];
    assert_same(
        &ev(op([1, 1], [0, 0], [0, 0]), &[&y, &w]),
        &t32(&[1, 1, 3, 3], &want),
    );
    // Padding 1 crops one row/column on each side: the centre remains.
    assert_same(
        &ev(op([1, 1], [1, 1], [0, 0]), &[&y, &w]),
        &t32(&[1, 1, 1, 1], &[1234.0]),
    );
    // Stride 2 tiles y[i][j] * w without overlap; output_padding adds a zero row
    // and column at the bottom/right.
    #[rustfmt::skip]
    let want = [
        1.0, 10.0, 2.0, 20.0, 0.0,
        100.0, 1000.0, 200.0, 2000.0, 0.0,
        3.0, 30.0, 4.0, 40.0, 0.0,
        300.0, 3000.0, 400.0, 4000.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0,
    ];
    assert_same(
        &ev(op([2, 2], [0, 0], [1, 1]), &[&y, &w]),
        &t32(&[1, 1, 5, 5], &want),
    );
    // Channels: weight is IOHW, so w[i][o] maps input channel i to output channel o.
    let y = t64(&[1, 2, 1, 1], &[1.0, 3.0]);
    let w = t64(&[2, 3, 1, 1], &[1.0, 2.0, 4.0, -1.0, 0.5, 0.25]);
    // out[o] = y0 * w[0][o] + y1 * w[1][o] = [1 - 3, 2 + 1.5, 4 + 0.75].
    assert_same(
        &ev(op([1, 1], [0, 0], [0, 0]), &[&y, &w]),
        &t64(&[1, 3, 1, 1], &[-2.0, 3.5, 4.75]),
    );
}

#[test]
fn conv2d_weight_grad_by_hand() {
    // dw[ky][kx] = sum over (oy, ox) of x[oy+ky][ox+kx] * dy[oy][ox]: with the same
    // numbers as `conv2d_by_hand`, the same results.
    let x = t32(
        &[1, 1, 3, 3],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
    );
    let dy = t32(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let op = Op::Conv2dWeightGrad {
        conv: Conv2dAttrs::default(),
        kernel: [2, 2],
    };
    assert_same(
        &ev(op, &[&x, &dy]),
        &t32(&[1, 1, 2, 2], &[37.0, 47.0, 67.0, 77.0]),
    );
    // Batch entries add up: two copies of the batch double the gradient.
    let x2 = t32(
        &[2, 1, 3, 3],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0].repeat(2),
    );
    let dy2 = t32(&[2, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0].repeat(2));
    let op = Op::Conv2dWeightGrad {
        conv: Conv2dAttrs::default(),
        kernel: [2, 2],
    };
    assert_same(
        &ev(op, &[&x2, &dy2]),
        &t32(&[1, 1, 2, 2], &[74.0, 94.0, 134.0, 154.0]),
    );
}

#[test]
fn conv2d_weight_grad_matches_padded_reference() {
    let mut rng = Rng::new(32);
    for (g, xd, wd) in GEOS {
        let x = rng.tensor(DType::F64, &xd, -1.0, 1.0);
        let (oh, ow) = (g.out(0, xd[2], wd[2]), g.out(1, xd[3], wd[3]));
        let dy = rng.tensor(DType::F64, &[xd[0], wd[0], oh, ow], -1.0, 1.0);
        let k = [wd[2], wd[3]];
        let op = Op::Conv2dWeightGrad {
            conv: g.attrs(),
            kernel: k,
        };
        assert_close(
            &ev(op, &[&x, &dy]),
            &wd,
            &weight_grad_ref(&x, &dy, k, g),
            1e-14,
        );
    }
}

/// <conv(x, w), dy> == <x, conv_transpose(dy, w)> == <w, weight_grad(x, dy)>.
#[test]
fn convolutions_are_adjoint() {
    let mut rng = Rng::new(33);
    for (g, xd, wd) in GEOS {
        let x = rng.tensor(DType::F64, &xd, -1.0, 1.0);
        let w = rng.tensor(DType::F64, &wd, -1.0, 1.0);
        let y = ev(Op::Conv2d(g.attrs()), &[&x, &w]);
        let dy = HostTensor::from_fn(&y.ty(), |_| rng.uniform(-1.0, 1.0));
        // The output padding that maps the conv output back to x's size.
        let mut output_padding = [0; 2];
        for a in 0..2 {
            let span =
                (y.shape().dim(2 + a) - 1) * g.stride[a] + g.dilation[a] * (wd[2 + a] - 1) + 1;
            output_padding[a] = xd[2 + a] + 2 * g.padding[a] - span;
        }
        let dx = ev(
            Op::ConvTranspose2d {
                conv: g.attrs(),
                output_padding,
            },
            &[&dy, &w],
        );
        assert_eq!(dx.ty(), TensorType::new(DType::F64, xd));
        let dw = ev(
            Op::Conv2dWeightGrad {
                conv: g.attrs(),
                kernel: [wd[2], wd[3]],
            },
            &[&x, &dy],
        );
        let lhs = dot(&y, &dy);
        let (by_x, by_w) = (dot(&x, &dx), dot(&w, &dw));
        assert!(
            (lhs - by_x).abs() < 1e-12 * lhs.abs().max(1.0),
            "{lhs} vs {by_x}"
        );
        assert!(
            (lhs - by_w).abs() < 1e-12 * lhs.abs().max(1.0),
            "{lhs} vs {by_w}"
        );
    }
}

#[test]
fn conv_transpose2d_is_adjoint_elementwise() {
    // Stronger than the inner product: conv_transpose(e_j, w) is row j of the conv
    // matrix, so out[i] = d conv(x)[j] / d x[i] for every basis vector e_j.
    let g = GEOS[1].0;
    let (xd, wd) = (GEOS[1].1, GEOS[1].2);
    let mut rng = Rng::new(34);
    let w = rng.tensor(DType::F64, &wd, -1.0, 1.0);
    let x = rng.tensor(DType::F64, &xd, -1.0, 1.0);
    let y = ev(Op::Conv2d(g.attrs()), &[&x, &w]);
    for j in [0, 7, y.numel() / 2, y.numel() - 1] {
        let e = HostTensor::from_fn(&y.ty(), |i| if i == j { 1.0 } else { 0.0 });
        let row = ev(
            Op::ConvTranspose2d {
                conv: g.attrs(),
                output_padding: [0, 0],
            },
            &[&e, &w],
        );
        assert_eq!(row.shape().dims(), &xd);
        // conv is linear in x: y[j] = sum_i row[i] * x[i].
        let yj = dot(&row, &x);
        assert!(
            (yj - y.get_f64(j)).abs() < 1e-12,
            "{j}: {yj} vs {}",
            y.get_f64(j)
        );
    }
}

#[test]
fn matmul_bias_adds_rows_then_relu() {
    // [[1,2,3],[4,5,6]] x [[7,8],[9,10],[11,12]] = [[58,64],[139,154]].
    let a = t32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = t32(&[3, 2], &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
    let bias = t32(&[2], &[-60.0, 0.5]);
    let plain = ev(Op::MatMulBias { relu: false }, &[&a, &b, &bias]);
    assert_same(&plain, &t32(&[2, 2], &[-2.0, 64.5, 79.0, 154.5]));
    let relu = ev(Op::MatMulBias { relu: true }, &[&a, &b, &bias]);
    assert_same(&relu, &t32(&[2, 2], &[0.0, 64.5, 79.0, 154.5]));
    // Batched: the bias applies to every row of every batch.
    let mut rng = Rng::new(11);
    let a = rng.tensor(DType::F64, &[2, 3, 4], -1.0, 1.0);
    let b = rng.tensor(DType::F64, &[2, 4, 5], -1.0, 1.0);
    let bias = rng.tensor(DType::F64, &[5], -1.0, 1.0);
    let y = ev(Op::MatMulBias { relu: true }, &[&a, &b, &bias]);
    let want: Vec<f64> = matmul_ref(&a, &b)
        .iter()
        .enumerate()
        .map(|(i, &v)| (v + bias.get_f64(i % 5)).max(0.0))
        .collect();
    assert_close(&y, &[2, 3, 5], &want, 1e-12);
    // The bias must be [n].
    let bad = t64(&[1, 5], &[0.0; 5]);
    assert!(kiln_ir::interp::eval_op(&Op::MatMulBias { relu: false }, &[&a, &b, &bad]).is_err());
}

#[test]
fn conv_padding_zeros_are_multiplied() {
    // An infinite weight tap that reads the padding gives 0 * inf = NaN, as in
    // PyTorch and the native kernels (skipping the padding would give 2).
    let x = t32(&[1, 1, 1, 1], &[2.0]);
    let w = t32(&[1, 1, 1, 3], &[f32::INFINITY, 1.0, 1.0]);
    let c = Conv2dAttrs {
        stride: [1, 1],
        padding: [0, 1],
        dilation: [1, 1],
    };
    let y = ev(Op::Conv2d(c), &[&x, &w]);
    let v = y.to_f64_vec();
    assert_eq!(v.len(), 1);
    assert!(v[0].is_nan(), "{y}");
    // The weight gradient multiplies the padding too: dy NaN at a padded tap.
    let dy = t32(&[1, 1, 1, 1], &[f32::NAN]);
    let dw = ev(
        Op::Conv2dWeightGrad {
            conv: c,
            kernel: [1, 3],
        },
        &[&x, &dy],
    );
    assert!(dw.to_f64_vec().iter().all(|g| g.is_nan()), "{dw}");
    let dy = t32(&[1, 1, 1, 1], &[3.0]);
    let dw = ev(
        Op::Conv2dWeightGrad {
            conv: c,
            kernel: [1, 3],
        },
        &[&x, &dy],
    );
    assert_same(&dw, &t32(&[1, 1, 1, 3], &[0.0, 6.0, 0.0]));
}
