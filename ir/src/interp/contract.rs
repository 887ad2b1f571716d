//! Contractions: batched matmul and the three 2-D convolutions.
//!
//! Every output element accumulates from zero in the naive order of its contraction
//! indices; loops are ordered for locality without changing that per-element order.

use super::num::{Float, Num, dispatch};
use crate::{Conv2dAttrs, HostTensor, Shape, TensorData};

pub(super) fn matmul(a: &HostTensor, b: &HostTensor, out: &Shape) -> TensorData {
    dispatch!(num a.dtype(), matmul_t(a, b, out))
}

fn matmul_t<T: Num>(a: &HostTensor, b: &HostTensor, out: &Shape) -> TensorData {
    let (av, bv) = (T::slice(a.data()), T::slice(b.data()));
    let r = out.rank();
    let (m, k, n) = (a.shape().dim(r - 2), a.shape().dim(r - 1), out.dim(r - 1));
    let batch: usize = out.dims()[..r - 2].iter().product();
    let mut c = vec![T::ZERO; out.numel()];
    for bi in 0..batch {
        let (a0, b0, c0) = (bi * m * k, bi * k * n, bi * m * n);
        for i in 0..m {
            let crow = &mut c[c0 + i * n..c0 + (i + 1) * n];
            // i-k-j order: c[i][j] still sees k = 0, 1, 2, ... in turn.
            for p in 0..k {
                let aip = av[a0 + i * k + p];
                let brow = &bv[b0 + p * n..b0 + (p + 1) * n];
                for (cj, &bpj) in crow.iter_mut().zip(brow) {
                    *cj = cj.plus(aip.times(bpj));
                }
            }
        }
    }
    T::wrap(c)
}

/// `a @ b + bias` (bias broadcast over rows), then relu if asked.
pub(super) fn matmul_bias(
    a: &HostTensor,
    b: &HostTensor,
    bias: &HostTensor,
    relu: bool,
    out: &Shape,
) -> TensorData {
    let product = HostTensor::new(out.clone(), matmul(a, b, out)).expect("matmul output size");
    dispatch!(float a.dtype(), add_bias_t(&product, bias, relu))
}

fn add_bias_t<F: Float>(product: &HostTensor, bias: &HostTensor, relu: bool) -> TensorData {
    let (p, bv) = (F::slice(product.data()), F::slice(bias.data()));
    let n = bv.len();
    let out = p
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let y = x + bv[i % n];
            if relu && !(y.is_nan() || y > F::ZERO) {
                F::ZERO
            } else {
                y
            }
        })
        .collect();
    F::wrap(out)
}

/// Per spatial axis, for every (kernel tap, output position) pair, the input
/// position it reads (or `None` in the padding). Computed once per op so the inner
/// loops only index.
struct Taps {
    /// `rows[kh][oh]`, `cols[kw][ow]`.
    rows: Vec<Vec<Option<usize>>>,
    cols: Vec<Vec<Option<usize>>>,
}

impl Taps {
    fn new(c: &Conv2dAttrs, kernel: [usize; 2], out: [usize; 2], input: [usize; 2]) -> Taps {
        let axis = |a: usize| -> Vec<Vec<Option<usize>>> {
            let (s, d, p) = (c.stride[a], c.dilation[a], c.padding[a]);
            (0..kernel[a])
                .map(|k| {
                    // Output o reads input o*s + k*d - p, unless that lies in the padding.
                    (0..out[a])
                        .map(|o| (o * s + k * d).checked_sub(p).filter(|&i| i < input[a]))
                        .collect()
                })
                .collect()
        };
        Taps {
            rows: axis(0),
            cols: axis(1),
        }
    }
}

fn dims4(s: &Shape) -> [usize; 4] {
    [s.dim(0), s.dim(1), s.dim(2), s.dim(3)]
}

pub(super) fn conv2d(x: &HostTensor, w: &HostTensor, c: &Conv2dAttrs, out: &Shape) -> TensorData {
    dispatch!(float x.dtype(), conv2d_t(x, w, c, out))
}

/// `y[n,o,oh,ow] = sum over (c, kh, kw) of x[n,c,ih,iw] * w[o,c,kh,kw]` with
/// `ih = oh*stride + kh*dilation - padding` (likewise `iw`).
fn conv2d_t<F: Float>(x: &HostTensor, w: &HostTensor, c: &Conv2dAttrs, out: &Shape) -> TensorData {
    let (xv, wv) = (F::slice(x.data()), F::slice(w.data()));
    let [bn, ci, h, wd] = dims4(x.shape());
    let [co, _, kh, kw] = dims4(w.shape());
    let [_, _, oh, ow] = dims4(out);
    let taps = Taps::new(c, [kh, kw], [oh, ow], [h, wd]);
    let mut y = vec![F::ZERO; out.numel()];
    for n in 0..bn {
        for o in 0..co {
            let yplane = &mut y[(n * co + o) * oh * ow..][..oh * ow];
            for ch in 0..ci {
                let xplane = &xv[(n * ci + ch) * h * wd..][..h * wd];
                for (ky, rows) in taps.rows.iter().enumerate() {
                    for (kx, cols) in taps.cols.iter().enumerate() {
                        let wt = wv[((o * ci + ch) * kh + ky) * kw + kx];
                        for (oy, iy) in rows.iter().enumerate() {
                            let Some(iy) = *iy else { continue };
                            for (ox, ix) in cols.iter().enumerate() {
                                let Some(ix) = *ix else { continue };
                                let acc = &mut yplane[oy * ow + ox];
                                *acc = *acc + xplane[iy * wd + ix] * wt;
                            }
                        }
                    }
                }
            }
        }
    }
    F::wrap(y)
}

pub(super) fn conv_transpose2d(
    y: &HostTensor,
    w: &HostTensor,
    c: &Conv2dAttrs,
    out: &Shape,
) -> TensorData {
    dispatch!(float y.dtype(), conv_transpose2d_t(y, w, c, out))
}

/// The adjoint of [`conv2d_t`] w.r.t. `x`: every product `y[n,i,oy,ox] * w[i,c,ky,kx]`
/// is added to `out[n,c,iy,ix]` at the position conv2d would have read it from
/// (contributions landing in the padding are dropped). Each output element
/// accumulates in `(i, ky, kx, oy, ox)` order.
fn conv_transpose2d_t<F: Float>(
    y: &HostTensor,
    w: &HostTensor,
    c: &Conv2dAttrs,
    out: &Shape,
) -> TensorData {
    let (yv, wv) = (F::slice(y.data()), F::slice(w.data()));
    let [bn, ci, oh, ow] = dims4(y.shape());
    let [_, co, kh, kw] = dims4(w.shape());
    let [_, _, h, wd] = dims4(out);
    let taps = Taps::new(c, [kh, kw], [oh, ow], [h, wd]);
    let mut x = vec![F::ZERO; out.numel()];
    for n in 0..bn {
        for i in 0..ci {
            let yplane = &yv[(n * ci + i) * oh * ow..][..oh * ow];
            for ch in 0..co {
                let xplane = &mut x[(n * co + ch) * h * wd..][..h * wd];
                for (ky, rows) in taps.rows.iter().enumerate() {
                    for (kx, cols) in taps.cols.iter().enumerate() {
                        let wt = wv[((i * co + ch) * kh + ky) * kw + kx];
                        for (oy, iy) in rows.iter().enumerate() {
                            let Some(iy) = *iy else { continue };
                            for (ox, ix) in cols.iter().enumerate() {
                                let Some(ix) = *ix else { continue };
                                let acc = &mut xplane[iy * wd + ix];
                                *acc = *acc + yplane[oy * ow + ox] * wt;
                            }
                        }
                    }
                }
            }
        }
    }
    F::wrap(x)
}

pub(super) fn conv2d_weight_grad(
    x: &HostTensor,
    dy: &HostTensor,
    c: &Conv2dAttrs,
    out: &Shape,
) -> TensorData {
    dispatch!(float x.dtype(), conv2d_weight_grad_t(x, dy, c, out))
}

/// The adjoint of [`conv2d_t`] w.r.t. `w`:
/// `dw[o,c,ky,kx] = sum over (n, oy, ox) of x[n,c,iy,ix] * dy[n,o,oy,ox]`.
fn conv2d_weight_grad_t<F: Float>(
    x: &HostTensor,
    dy: &HostTensor,
    c: &Conv2dAttrs,
    out: &Shape,
) -> TensorData {
    let (xv, dyv) = (F::slice(x.data()), F::slice(dy.data()));
    let [bn, ci, h, wd] = dims4(x.shape());
    let [_, co, oh, ow] = dims4(dy.shape());
    let [_, _, kh, kw] = dims4(out);
    let taps = Taps::new(c, [kh, kw], [oh, ow], [h, wd]);
    let mut dw = Vec::with_capacity(out.numel());
    for o in 0..co {
        for ch in 0..ci {
            for rows in &taps.rows {
                for cols in &taps.cols {
                    let mut acc = F::ZERO;
                    for n in 0..bn {
                        let xplane = &xv[(n * ci + ch) * h * wd..][..h * wd];
                        let dyplane = &dyv[(n * co + o) * oh * ow..][..oh * ow];
                        for (oy, iy) in rows.iter().enumerate() {
                            let Some(iy) = *iy else { continue };
                            for (ox, ix) in cols.iter().enumerate() {
                                let Some(ix) = *ix else { continue };
                                acc = acc + xplane[iy * wd + ix] * dyplane[oy * ow + ox];
                            }
                        }
                    }
                    dw.push(acc);
                }
            }
        }
    }
    F::wrap(dw)
}
