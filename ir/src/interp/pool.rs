//! 2-D pooling and its gradient.

use super::num::{Float, dispatch};
use crate::{HostTensor, Pool2dAttrs, PoolKind, Shape, TensorData};

/// Fills `out` with the in-bounds input positions of window `(oy, ox)`, in
/// row-major window order, as flat offsets within one `h x w` plane (padding
/// positions are left out).
fn window(p: &Pool2dAttrs, (h, w): (usize, usize), (oy, ox): (usize, usize), out: &mut Vec<usize>) {
    out.clear();
    for ky in 0..p.kernel[0] {
        let Some(iy) = (oy * p.stride[0] + ky).checked_sub(p.padding[0]) else {
            continue;
        };
        if iy >= h {
            continue;
        }
        for kx in 0..p.kernel[1] {
            let Some(ix) = (ox * p.stride[1] + kx).checked_sub(p.padding[1]) else {
                continue;
            };
            if ix < w {
                out.push(iy * w + ix);
            }
        }
    }
}

/// The max-pool winner of a window, PyTorch's rule (its CPU kernel): starting from
/// the window's first position and `-inf`, a value replaces the running maximum if
/// it is larger or NaN. So ties go to the first maximum, a window that is all
/// `-inf` to its first position, and a NaN to the last NaN. Returns the index into
/// `pos` (which must not be empty).
fn max_at<F: Float>(xp: &[F], pos: &[usize]) -> usize {
    let (mut at, mut best) = (0, F::LOWEST);
    for (k, &i) in pos.iter().enumerate() {
        let v = xp[i];
        if v > best || v.is_nan() {
            (at, best) = (k, v);
        }
    }
    at
}

fn planes(s: &Shape) -> (usize, usize, usize) {
    (s.dim(0) * s.dim(1), s.dim(2), s.dim(3))
}

pub(super) fn pool2d(x: &HostTensor, p: &Pool2dAttrs, out: &Shape) -> TensorData {
    dispatch!(float x.dtype(), pool2d_t(x, p, out))
}

fn pool2d_t<F: Float>(x: &HostTensor, p: &Pool2dAttrs, out: &Shape) -> TensorData {
    let xv = F::slice(x.data());
    let (planes, h, w) = planes(x.shape());
    let (oh, ow) = (out.dim(2), out.dim(3));
    let area = F::from_usize(p.kernel[0] * p.kernel[1]);
    let mut pos = Vec::with_capacity(p.kernel[0] * p.kernel[1]);
    let mut y = Vec::with_capacity(out.numel());
    for plane in 0..planes {
        let xp = &xv[plane * h * w..][..h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                window(p, (h, w), (oy, ox), &mut pos);
                y.push(match p.kind {
                    // Padding is -inf, so it only matters when it is all there is.
                    PoolKind::Max if pos.is_empty() => F::LOWEST,
                    PoolKind::Max => xp[pos[max_at(xp, &pos)]],
                    // Padding adds zeros but still counts in the area.
                    PoolKind::Avg => pos.iter().fold(F::ZERO, |acc, &i| acc + xp[i]) / area,
                });
            }
        }
    }
    F::wrap(y)
}

pub(super) fn pool2d_grad(x: &HostTensor, dy: &HostTensor, p: &Pool2dAttrs) -> TensorData {
    dispatch!(float x.dtype(), pool2d_grad_t(x, dy, p))
}

fn pool2d_grad_t<F: Float>(x: &HostTensor, dy: &HostTensor, p: &Pool2dAttrs) -> TensorData {
    let (xv, dyv) = (F::slice(x.data()), F::slice(dy.data()));
    let (planes, h, w) = planes(x.shape());
    let (oh, ow) = (dy.shape().dim(2), dy.shape().dim(3));
    let area = F::from_usize(p.kernel[0] * p.kernel[1]);
    let mut pos = Vec::with_capacity(p.kernel[0] * p.kernel[1]);
    let mut dx = vec![F::ZERO; x.numel()];
    for plane in 0..planes {
        let xp = &xv[plane * h * w..][..h * w];
        let dxp = &mut dx[plane * h * w..][..h * w];
        let dyp = &dyv[plane * oh * ow..][..oh * ow];
        for oy in 0..oh {
            for ox in 0..ow {
                window(p, (h, w), (oy, ox), &mut pos);
                let g = dyp[oy * ow + ox];
                match p.kind {
                    PoolKind::Max => {
                        // A window entirely in the padding routes nowhere.
                        if !pos.is_empty() {
                            let i = pos[max_at(xp, &pos)];
                            dxp[i] = dxp[i] + g;
                        }
                    }
                    PoolKind::Avg => {
                        let share = g / area;
                        for &i in &pos {
                            dxp[i] = dxp[i] + share;
                        }
                    }
                }
            }
        }
    }
    F::wrap(dx)
}
