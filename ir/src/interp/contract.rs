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

/// The geometry of one 2-D convolution, stated as the weight `[A,B,KH,KW]`, the
/// output side `[N,A,OH,OW]` and the input side `[N,B,H,W]` (conv2d reads the input
/// side, its transpose writes it). Per spatial axis it holds, for every (kernel
/// tap, output position) pair, the input position it reads (or `None` in the
/// padding), computed once per op so the inner loops only index.
struct Taps {
    /// `rows[kh][oh]`, `cols[kw][ow]`.
    rows: Vec<Vec<Option<usize>>>,
    cols: Vec<Vec<Option<usize>>>,
    /// `[A, B, KH, KW]`.
    w: [usize; 4],
    batch: usize,
    /// Spatial sizes of an output plane and of an input plane.
    out: [usize; 2],
    input: [usize; 2],
}

impl Taps {
    fn new(c: &Conv2dAttrs, w: &Shape, y: &Shape, x: &Shape) -> Taps {
        let w = dims4(w);
        let [batch, _, oh, ow] = dims4(y);
        let [_, _, h, wd] = dims4(x);
        let (kernel, out, input) = ([w[2], w[3]], [oh, ow], [h, wd]);
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
            w,
            batch,
            out,
            input,
        }
    }

    /// Flat starts of output-side plane `(n, a)` and input-side plane `(n, b)`.
    fn planes(&self, n: usize, a: usize, b: usize) -> (usize, usize) {
        let [an, bn, ..] = self.w;
        let y0 = (n * an + a) * self.out[0] * self.out[1];
        let x0 = (n * bn + b) * self.input[0] * self.input[1];
        (y0, x0)
    }

    /// Calls `f(output offset, input offset)` (offsets within one row-major plane)
    /// for every output position under kernel tap `(ky, kx)`, in `(oy, ox)` order;
    /// the input offset is `None` where the tap reads the padding.
    fn each(&self, ky: usize, kx: usize, mut f: impl FnMut(usize, Option<usize>)) {
        for (oy, iy) in self.rows[ky].iter().enumerate() {
            for (ox, ix) in self.cols[kx].iter().enumerate() {
                let xi = iy.zip(*ix).map(|(iy, ix)| iy * self.input[1] + ix);
                f(oy * self.out[1] + ox, xi);
            }
        }
    }

    /// The loop nest of conv2d and of its transpose, which differ only in which
    /// side accumulates: for each batch item, each weight `w[a,b,ky,kx]` and each
    /// pair of positions its tap connects, calls `mac(yi, xi, w)` with `yi` a flat
    /// index into the output side and `xi` one into the input side (`None` in the
    /// padding). An output-side
    /// element sees `(b, ky, kx, oy, ox)` in order, an input-side one
    /// `(a, ky, kx, oy, ox)`.
    fn nest<F: Float>(&self, w: &[F], mut mac: impl FnMut(usize, Option<usize>, F)) {
        let [an, bn, kh, kw] = self.w;
        for n in 0..self.batch {
            for a in 0..an {
                for b in 0..bn {
                    let (y0, x0) = self.planes(n, a, b);
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let wt = w[((a * bn + b) * kh + ky) * kw + kx];
                            self.each(ky, kx, |yo, xi| mac(y0 + yo, xi.map(|i| x0 + i), wt));
                        }
                    }
                }
            }
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
/// `ih = oh*stride + kh*dilation - padding` (likewise `iw`); padded positions
/// contribute `0 * w`.
fn conv2d_t<F: Float>(x: &HostTensor, w: &HostTensor, c: &Conv2dAttrs, out: &Shape) -> TensorData {
    let (xv, wv) = (F::slice(x.data()), F::slice(w.data()));
    let mut y = vec![F::ZERO; out.numel()];
    let taps = Taps::new(c, w.shape(), out, x.shape());
    // Padding is zeros that are multiplied, as in PyTorch and the native kernels:
    // `0 * inf` is NaN.
    taps.nest(wv, |yi, xi, wt| {
        y[yi] = y[yi] + xi.map_or(F::ZERO, |i| xv[i]) * wt;
    });
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
    let mut x = vec![F::ZERO; out.numel()];
    Taps::new(c, w.shape(), y.shape(), out).nest(wv, |yi, xi, wt| {
        if let Some(xi) = xi {
            x[xi] = x[xi] + yv[yi] * wt;
        }
    });
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
    let taps = Taps::new(c, out, dy.shape(), x.shape());
    let [co, ci, kh, kw] = taps.w;
    let mut dw = Vec::with_capacity(out.numel());
    for o in 0..co {
        for ch in 0..ci {
            for ky in 0..kh {
                for kx in 0..kw {
                    let mut acc = F::ZERO;
                    for n in 0..taps.batch {
                        let (y0, x0) = taps.planes(n, o, ch);
                        // Padding zeros are multiplied too (`0 * NaN` is NaN).
                        taps.each(ky, kx, |yo, xi| {
                            let x = xi.map_or(F::ZERO, |i| xv[x0 + i]);
                            acc = acc + x * dyv[y0 + yo];
                        });
                    }
                    dw.push(acc);
                }
            }
        }
    }
    F::wrap(dw)
}
