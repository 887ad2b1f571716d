//! Native f32 pooling and its gradient as direct loops over NCHW planes (the
//! common 2×2, stride 2 case branch-free, its max gradient four windows at a time
//! with SSE2), the planes split across the workers when large.

use kiln_ir::{Pool2dAttrs, PoolKind};

use super::conv::ConvShape;
use crate::parallel::{self, Workers};

/// The input range a pooling window at output position `o` covers along one axis,
/// clipped to the image (`0..size`).
fn window(o: usize, kernel: usize, stride: usize, pad: usize, size: usize) -> (usize, usize) {
    let start = o * stride;
    let lo = start.max(pad) - pad;
    let hi = (start + kernel).saturating_sub(pad).min(size);
    (lo, hi.max(lo))
}

/// `v` replaces the running maximum `acc` if larger; the first NaN wins, as in the
/// interpreter (`v > acc` is false against NaN, so nothing replaces a NaN).
#[inline(always)]
fn beats(v: f32, acc: f32) -> bool {
    // Non-short-circuit operators: a select, not a branch, which ReLU outputs (full
    // of tied zeros) would mispredict.
    (v > acc) | (v.is_nan() & !acc.is_nan())
}

/// Whether `v` replaces `acc` as the running maximum of a window: [`beats`], or
/// `+0.0` over `-0.0` (the interpreter's `max`, IEEE 754-2019 `maximum`). Equal
/// floats with different bits are exactly the two zeros.
fn tops(v: f32, acc: f32) -> bool {
    beats(v, acc) | ((v == acc) & (v.to_bits() < acc.to_bits()))
}

/// Whether `p` is the common 2×2, stride 2, unpadded pooling, which has a
/// branch-free path: its windows tile the image without overlap.
fn is_2x2(p: &Pool2dAttrs) -> bool {
    p.kernel == [2, 2] && p.stride == [2, 2] && p.padding == [0, 0]
}

/// The two input rows under output row `oy` of a 2×2 pooling, cut to the `2·ow`
/// columns the windows cover.
#[inline(always)]
fn row_pair(xp: &[f32], w: usize, oy: usize, ow: usize) -> (&[f32], &[f32]) {
    (
        &xp[2 * oy * w..][..2 * ow],
        &xp[(2 * oy + 1) * w..][..2 * ow],
    )
}

/// Below this many input elements pooling stays on one thread (it streams memory:
/// W3's 600k-element layer takes about 0.1 ms).
const POOL_SPLIT_MIN: usize = 1 << 18;

/// Runs `f(planes, y, shape)` over the image planes of `s`, split across `workers`
/// when large; `y` (`y_plane` elements per plane) is cut to match each range.
fn by_planes(
    s: &ConvShape,
    workers: Option<&Workers>,
    (y, y_plane): (&mut [f32], usize),
    f: impl Fn(std::ops::Range<usize>, &mut [f32], &ConvShape) + Sync,
) {
    let planes = s.n * s.c;
    let parts = if planes * s.h * s.w >= POOL_SPLIT_MIN {
        parallel::threads(workers)
    } else {
        1
    };
    let ranges = parallel::ranges(planes, parts);
    if ranges.len() <= 1 {
        return f(0..planes, y, s);
    }
    let mut items = Vec::with_capacity(ranges.len());
    let mut rest = y;
    for r in ranges {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(r.len() * y_plane);
        rest = tail;
        let shape = ConvShape {
            n: r.len(),
            c: 1,
            ..*s
        };
        items.push((r, head, shape));
    }
    parallel::run(workers, items, |(r, y, shape)| f(r, y, &shape));
}

/// The 2×2 max-pool gradient of one output row: `top` and `bottom` are the two
/// input rows (two columns per window), `g` the window gradients; writes every
/// position of `dtop` and `dbottom`. Four windows at a time with SSE2 on x86-64
/// (the compiler does not vectorize the strided, NaN-aware selects by itself), the
/// rest one at a time.
fn max_quads_row(top: &[f32], bottom: &[f32], g: &[f32], dtop: &mut [f32], dbottom: &mut [f32]) {
    let n = g.len();
    assert!(
        top.len() >= 2 * n
            && bottom.len() >= 2 * n
            && dtop.len() >= 2 * n
            && dbottom.len() >= 2 * n
    );
    #[cfg(target_arch = "x86_64")]
    let done = {
        let full = n / 4 * 4;
        for w in (0..full).step_by(4) {
            // SAFETY: windows w..w+4 read and write 8 elements of each row from 2w,
            // inside the lengths asserted above; SSE2 is part of x86-64.
            unsafe { max_quads_sse2(top, bottom, g, dtop, dbottom, w) };
        }
        full
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for w in done..n {
        let (a, b) = (
            [top[2 * w], top[2 * w + 1]],
            [bottom[2 * w], bottom[2 * w + 1]],
        );
        let m = [a[1], b[0], b[1]]
            .into_iter()
            .fold(a[0], |acc, v| if beats(v, acc) { v } else { acc });
        let hit = |v: f32| (v == m) | (v.is_nan() & m.is_nan());
        let t0 = hit(a[0]);
        let t1 = hit(a[1]) & !t0;
        let t2 = hit(b[0]) & !(t0 | t1);
        let t3 = !(t0 | t1 | t2);
        let pick = |t: bool| if t { g[w] } else { 0.0 };
        (dtop[2 * w], dtop[2 * w + 1]) = (pick(t0), pick(t1));
        (dbottom[2 * w], dbottom[2 * w + 1]) = (pick(t2), pick(t3));
    }
}

/// Windows `w..w + 4` of [`max_quads_row`], the same rule as its scalar loop: the
/// first of a0, a1, b0, b1 equal to the maximum (or the first NaN) takes the
/// gradient.
///
/// # Safety
/// Each row must hold `2·(w + 4)` elements and `g` `w + 4`.
#[cfg(target_arch = "x86_64")]
unsafe fn max_quads_sse2(
    top: &[f32],
    bottom: &[f32],
    g: &[f32],
    dtop: &mut [f32],
    dbottom: &mut [f32],
    w: usize,
) {
    use std::arch::x86_64::*;
    // SAFETY: guaranteed by the caller; unaligned loads and stores.
    unsafe {
        let load_pairs = |row: &[f32]| {
            let (lo, hi) = (
                _mm_loadu_ps(row.as_ptr().add(2 * w)),
                _mm_loadu_ps(row.as_ptr().add(2 * w + 4)),
            );
            // Even and odd columns: the left and right inputs of each window.
            (
                _mm_shuffle_ps::<0b10_00_10_00>(lo, hi),
                _mm_shuffle_ps::<0b11_01_11_01>(lo, hi),
            )
        };
        let (a0, a1) = load_pairs(top);
        let (b0, b1) = load_pairs(bottom);
        let nan = |v: __m128| _mm_cmpunord_ps(v, v);
        // `beats(v, m)`: v > m, or v is the first NaN.
        let beats =
            |v: __m128, m: __m128| _mm_or_ps(_mm_cmpgt_ps(v, m), _mm_andnot_ps(nan(m), nan(v)));
        let select = |mask: __m128, v: __m128, m: __m128| {
            _mm_or_ps(_mm_and_ps(mask, v), _mm_andnot_ps(mask, m))
        };
        let mut m = a0;
        for v in [a1, b0, b1] {
            m = select(beats(v, m), v, m);
        }
        let hit = |v: __m128| _mm_or_ps(_mm_cmpeq_ps(v, m), _mm_and_ps(nan(v), nan(m)));
        let t0 = hit(a0);
        let t1 = _mm_andnot_ps(t0, hit(a1));
        let t2 = _mm_andnot_ps(_mm_or_ps(t0, t1), hit(b0));
        let t3 = _mm_andnot_ps(
            _mm_or_ps(_mm_or_ps(t0, t1), t2),
            _mm_castsi128_ps(_mm_set1_epi32(-1)),
        );
        let gv = _mm_loadu_ps(g.as_ptr().add(w));
        let (p0, p1, p2, p3) = (
            _mm_and_ps(t0, gv),
            _mm_and_ps(t1, gv),
            _mm_and_ps(t2, gv),
            _mm_and_ps(t3, gv),
        );
        // Interleave back to columns.
        let store = |row: &mut [f32], even: __m128, odd: __m128| {
            _mm_storeu_ps(row.as_mut_ptr().add(2 * w), _mm_unpacklo_ps(even, odd));
            _mm_storeu_ps(row.as_mut_ptr().add(2 * w + 4), _mm_unpackhi_ps(even, odd));
        };
        store(dtop, p0, p1);
        store(dbottom, p2, p3);
    }
}

/// Max or average pooling of `x` (`s` with `c` channels, kernel `p.kernel`) into
/// `y`, the planes split across `workers` when large.
pub fn pool2d(x: &[f32], y: &mut [f32], s: &ConvShape, p: &Pool2dAttrs, workers: Option<&Workers>) {
    let (xp, yp) = (s.h * s.w, s.oh * s.ow);
    by_planes(s, workers, (y, yp), |r, y, sub| {
        pool2d_planes(&x[r.start * xp..r.end * xp], y, sub, p)
    });
}

/// The gradient of [`pool2d`] w.r.t. `x`, the planes split across `workers` when
/// large.
pub fn pool2d_grad(
    x: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    s: &ConvShape,
    p: &Pool2dAttrs,
    workers: Option<&Workers>,
) {
    let (xp, yp) = (s.h * s.w, s.oh * s.ow);
    by_planes(s, workers, (dx, xp), |r, dx, sub| {
        let (x, dy) = (&x[r.start * xp..r.end * xp], &dy[r.start * yp..r.end * yp]);
        pool2d_grad_planes(x, dy, dx, sub, p)
    });
}

/// [`pool2d`] on one thread.
fn pool2d_planes(x: &[f32], y: &mut [f32], s: &ConvShape, p: &Pool2dAttrs) {
    let area = (p.kernel[0] * p.kernel[1]) as f32;
    if is_2x2(p) {
        for (xp, yp) in x
            .chunks_exact(s.h * s.w)
            .zip(y.chunks_exact_mut(s.oh * s.ow))
        {
            for (oy, out) in yp.chunks_exact_mut(s.ow).enumerate() {
                let (r0, r1) = row_pair(xp, s.w, oy, s.ow);
                let windows = r0.chunks_exact(2).zip(r1.chunks_exact(2));
                for (o, (a, b)) in out.iter_mut().zip(windows) {
                    *o = match p.kind {
                        PoolKind::Max => [a[1], b[0], b[1]]
                            .into_iter()
                            .fold(a[0], |acc, v| if tops(v, acc) { v } else { acc }),
                        PoolKind::Avg => (((0.0 + a[0]) + a[1]) + b[0] + b[1]) / area,
                    };
                }
            }
        }
        return;
    }
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
                        // `f32::max` would drop NaN.
                        PoolKind::Max => {
                            for &v in row {
                                if tops(v, acc) {
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

/// [`pool2d_grad`] on one thread: max pooling routes each `dy` to the first
/// maximal position of its window; average pooling spreads `dy / area` over the
/// window (positions in the padding are dropped).
fn pool2d_grad_planes(x: &[f32], dy: &[f32], dx: &mut [f32], s: &ConvShape, p: &Pool2dAttrs) {
    let area = (p.kernel[0] * p.kernel[1]) as f32;
    if is_2x2(p) {
        let planes = x
            .chunks_exact(s.h * s.w)
            .zip(dx.chunks_exact_mut(s.h * s.w));
        for ((xp, dxp), dyp) in planes.zip(dy.chunks_exact(s.oh * s.ow)) {
            // The windows write every position they cover; zero the rest (a last
            // odd row or column).
            for (y, row) in dxp.chunks_exact_mut(s.w).enumerate() {
                let covered = if y < 2 * s.oh { 2 * s.ow } else { 0 };
                row[covered..].fill(0.0);
            }
            for (oy, g_row) in dyp.chunks_exact(s.ow).enumerate() {
                let (r0, r1) = row_pair(xp, s.w, oy, s.ow);
                let (d0, rest) = dxp[2 * oy * s.w..].split_at_mut(s.w);
                let d1 = &mut rest[..s.w];
                let (d0, d1) = (&mut d0[..2 * s.ow], &mut d1[..2 * s.ow]);
                match p.kind {
                    PoolKind::Max => max_quads_row(r0, r1, g_row, d0, d1),
                    PoolKind::Avg => {
                        for ((&g, da), db) in g_row
                            .iter()
                            .zip(d0.chunks_exact_mut(2))
                            .zip(d1.chunks_exact_mut(2))
                        {
                            let v = g / area;
                            (da[0], da[1], db[0], db[1]) = (v, v, v, v);
                        }
                    }
                }
            }
        }
        return;
    }
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
                                if beats(v, b) {
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
