//! Native f32 convolution and pooling: the three convolution forms as im2col plus
//! GEMM (the GEMM does the arithmetic at full vector width), pooling and its
//! gradient as direct loops. Layouts are NCHW activations and OIHW weights
//! (`conv_transpose2d` takes IOHW), as in the IR.

use kiln_ir::{Conv2dAttrs, Pool2dAttrs, PoolKind};

/// Geometry of one convolution: input `[n, c, h, w]`, kernel `[kh, kw]`, output
/// `[oh, ow]`.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
}

impl ConvShape {
    fn rows(&self) -> usize {
        self.c * self.kh * self.kw
    }
    fn cols(&self) -> usize {
        self.oh * self.ow
    }
}

/// The input position read by output `(o, k)` along one axis, if inside the image.
#[inline]
fn source(o: usize, k: usize, stride: usize, pad: usize, dil: usize, size: usize) -> Option<usize> {
    (o * stride + k * dil)
        .checked_sub(pad)
        .filter(|&i| i < size)
}

/// The output columns `lo..hi` whose input column `ox·stride + k·dil - pad` lies
/// inside `0..size`.
fn valid_range(
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    size: usize,
    out: usize,
) -> (usize, usize) {
    let shift = k * dil;
    // ox·stride + shift >= pad  and  ox·stride + shift < pad + size
    let lo = pad.saturating_sub(shift).div_ceil(stride);
    let hi = (pad + size).saturating_sub(shift).div_ceil(stride);
    (lo.min(out), hi.clamp(lo.min(out), out))
}

/// Unfolds image `x` (`[c, h, w]`) into `cols` (`[c·kh·kw, oh·ow]`), zero-padded.
/// Each output row is a zero prefix, a (strided) copy of one input row, and a zero
/// suffix, so the work is a few `memcpy`s per row rather than a bounds check per
/// element.
fn im2col(x: &[f32], s: &ConvShape, a: &Conv2dAttrs, cols: &mut [f32]) {
    let mut r = 0;
    for c in 0..s.c {
        for i in 0..s.kh {
            for j in 0..s.kw {
                let row = &mut cols[r * s.cols()..][..s.cols()];
                let (lo, hi) = valid_range(j, a.stride[1], a.padding[1], a.dilation[1], s.w, s.ow);
                for oy in 0..s.oh {
                    let out = &mut row[oy * s.ow..][..s.ow];
                    let Some(y) = source(oy, i, a.stride[0], a.padding[0], a.dilation[0], s.h)
                    else {
                        out.fill(0.0);
                        continue;
                    };
                    out[..lo].fill(0.0);
                    out[hi..].fill(0.0);
                    if lo < hi {
                        let start = lo * a.stride[1] + j * a.dilation[1] - a.padding[1];
                        let src = &x[(c * s.h + y) * s.w..][..s.w];
                        if a.stride[1] == 1 {
                            out[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
                        } else {
                            for (k, o) in out[lo..hi].iter_mut().enumerate() {
                                *o = src[start + k * a.stride[1]];
                            }
                        }
                    }
                }
                r += 1;
            }
        }
    }
}

/// Folds `cols` back, adding into image `x` (`[c, h, w]`): the adjoint of `im2col`.
fn col2im(cols: &[f32], s: &ConvShape, a: &Conv2dAttrs, x: &mut [f32]) {
    let mut r = 0;
    for c in 0..s.c {
        for i in 0..s.kh {
            for j in 0..s.kw {
                let row = &cols[r * s.cols()..][..s.cols()];
                let (lo, hi) = valid_range(j, a.stride[1], a.padding[1], a.dilation[1], s.w, s.ow);
                if lo < hi {
                    let start = lo * a.stride[1] + j * a.dilation[1] - a.padding[1];
                    for oy in 0..s.oh {
                        let Some(y) = source(oy, i, a.stride[0], a.padding[0], a.dilation[0], s.h)
                        else {
                            continue;
                        };
                        let dst = &mut x[(c * s.h + y) * s.w..][..s.w];
                        let src = &row[oy * s.ow + lo..oy * s.ow + hi];
                        for (k, &v) in src.iter().enumerate() {
                            dst[start + k * a.stride[1]] += v;
                        }
                    }
                }
                r += 1;
            }
        }
    }
}

/// `c[m,n] = beta·c + a[m,k] · b[k,n]` with `a` transposed when `ta` (then stored
/// `[k, m]`) and `b` transposed when `tb` (stored `[n, k]`); all row-major.
#[allow(clippy::too_many_arguments)]
fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    beta: f32,
    c: &mut [f32],
) {
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    // SAFETY: the slices hold m·k, k·n and m·n elements, as the strides address.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// `y = conv2d(x, w)`: per image, `w [o, c·kh·kw] × im2col(x) [c·kh·kw, oh·ow]`.
pub fn conv2d(
    x: &[f32],
    w: &[f32],
    y: &mut [f32],
    s: &ConvShape,
    o: usize,
    a: &Conv2dAttrs,
    scratch: &mut Vec<f32>,
) {
    scratch.resize(s.rows() * s.cols(), 0.0);
    for n in 0..s.n {
        im2col(&x[n * s.c * s.h * s.w..][..s.c * s.h * s.w], s, a, scratch);
        gemm(
            o,
            s.rows(),
            s.cols(),
            w,
            false,
            scratch,
            false,
            0.0,
            &mut y[n * o * s.cols()..][..o * s.cols()],
        );
    }
}

/// `dx = conv_transpose2d(dy, w)`, the gradient of `conv2d` w.r.t. its input `x`
/// (shape `s`): per image, `col2im(wᵀ × dy)`.
pub fn conv2d_input_grad(
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    s: &ConvShape,
    o: usize,
    a: &Conv2dAttrs,
    scratch: &mut Vec<f32>,
) {
    scratch.resize(s.rows() * s.cols(), 0.0);
    dx.fill(0.0);
    for n in 0..s.n {
        gemm(
            s.rows(),
            o,
            s.cols(),
            w,
            true,
            &dy[n * o * s.cols()..][..o * s.cols()],
            false,
            0.0,
            scratch,
        );
        col2im(
            scratch,
            s,
            a,
            &mut dx[n * s.c * s.h * s.w..][..s.c * s.h * s.w],
        );
    }
}

/// `dw = Σ_n dy_n × im2col(x_n)ᵀ`, the gradient of `conv2d` w.r.t. its weight.
pub fn conv2d_weight_grad(
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    s: &ConvShape,
    o: usize,
    a: &Conv2dAttrs,
    scratch: &mut Vec<f32>,
) {
    scratch.resize(s.rows() * s.cols(), 0.0);
    dw.fill(0.0);
    for n in 0..s.n {
        im2col(&x[n * s.c * s.h * s.w..][..s.c * s.h * s.w], s, a, scratch);
        gemm(
            o,
            s.cols(),
            s.rows(),
            &dy[n * o * s.cols()..][..o * s.cols()],
            false,
            scratch,
            true,
            1.0,
            dw,
        );
    }
}

/// The input range a pooling window at output position `o` covers along one axis,
/// clipped to the image (`0..size`).
fn window(o: usize, kernel: usize, stride: usize, pad: usize, size: usize) -> (usize, usize) {
    let start = o * stride;
    let lo = start.max(pad) - pad;
    let hi = (start + kernel).saturating_sub(pad).min(size);
    (lo, hi.max(lo))
}

/// Max or average pooling of `x` (`s` with `c` channels, kernel `p.kernel`) into `y`.
pub fn pool2d(x: &[f32], y: &mut [f32], s: &ConvShape, p: &Pool2dAttrs) {
    let area = (p.kernel[0] * p.kernel[1]) as f32;
    for plane in 0..s.n * s.c {
        let xp = &x[plane * s.h * s.w..][..s.h * s.w];
        let yp = &mut y[plane * s.oh * s.ow..][..s.oh * s.ow];
        for oy in 0..s.oh {
            let (y0, y1) = window(oy, p.kernel[0], p.stride[0], p.padding[0], s.h);
            for ox in 0..s.ow {
                let (x0, x1) = window(ox, p.kernel[1], p.stride[1], p.padding[1], s.w);
                let mut acc = if p.kind == PoolKind::Max {
                    f32::NEG_INFINITY
                } else {
                    0.0
                };
                for yy in y0..y1 {
                    let row = &xp[yy * s.w..][x0..x1];
                    match p.kind {
                        // `f32::max` would drop NaN; the first NaN wins, as in the
                        // interpreter (`v > acc` is false against NaN).
                        PoolKind::Max => {
                            for &v in row {
                                if v > acc || (v.is_nan() && !acc.is_nan()) {
                                    acc = v;
                                }
                            }
                        }
                        PoolKind::Avg => {
                            for &v in row {
                                acc += v;
                            }
                        }
                    }
                }
                yp[oy * s.ow + ox] = if p.kind == PoolKind::Avg {
                    acc / area
                } else {
                    acc
                };
            }
        }
    }
}

/// The gradient of [`pool2d`] w.r.t. `x`: max pooling routes each `dy` to the first
/// maximal position of its window; average pooling spreads `dy / area` over the
/// window (positions in the padding are dropped).
pub fn pool2d_grad(x: &[f32], dy: &[f32], dx: &mut [f32], s: &ConvShape, p: &Pool2dAttrs) {
    let area = (p.kernel[0] * p.kernel[1]) as f32;
    dx.fill(0.0);
    for plane in 0..s.n * s.c {
        let xp = &x[plane * s.h * s.w..][..s.h * s.w];
        let dxp = &mut dx[plane * s.h * s.w..][..s.h * s.w];
        let dyp = &dy[plane * s.oh * s.ow..][..s.oh * s.ow];
        for oy in 0..s.oh {
            let (y0, y1) = window(oy, p.kernel[0], p.stride[0], p.padding[0], s.h);
            for ox in 0..s.ow {
                let (x0, x1) = window(ox, p.kernel[1], p.stride[1], p.padding[1], s.w);
                let g = dyp[oy * s.ow + ox];
                match p.kind {
                    PoolKind::Avg => {
                        for yy in y0..y1 {
                            for v in &mut dxp[yy * s.w + x0..yy * s.w + x1] {
                                *v += g / area;
                            }
                        }
                    }
                    PoolKind::Max => {
                        if y0 == y1 || x0 == x1 {
                            continue;
                        }
                        // The first maximum in row-major order; the first NaN wins
                        // (`v > b` is false against NaN, so nothing replaces it).
                        let (mut at, mut b) = (y0 * s.w + x0, xp[y0 * s.w + x0]);
                        for yy in y0..y1 {
                            for xx in x0..x1 {
                                let v = xp[yy * s.w + xx];
                                if v > b || (v.is_nan() && !b.is_nan()) {
                                    (at, b) = (yy * s.w + xx, v);
                                }
                            }
                        }
                        dxp[at] += g;
                    }
                }
            }
        }
    }
}
