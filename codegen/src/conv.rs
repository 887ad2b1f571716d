//! Native f32 convolution and pooling: the three convolution forms as products
//! (stride 1 reads the image in place, see `Wide`; other strides go through
//! im2col), pooling and its gradient as direct loops. Layouts are NCHW activations and OIHW weights
//! (`conv_transpose2d` takes IOHW), as in the IR.

use kiln_ir::{Conv2dAttrs, Pool2dAttrs, PoolKind};

use crate::gemm;
use crate::parallel::{self, Workers};

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

/// Reused working memory of the convolution routines, so a warm call does not
/// allocate.
#[derive(Debug, Default)]
pub struct Scratch {
    /// One image's im2col columns `[c·kh·kw, oh·ow]`, or the wide `[c·kh·kw, q]`
    /// columns of an input gradient.
    cols: Vec<f32>,
    /// One zero-padded image `[c, hp, wp]`.
    image: Vec<f32>,
    /// An output or output gradient in the wide layout, `[o, q]`.
    wide: Vec<f32>,
    /// Row offsets of the kernel taps in the (padded) image.
    taps: Vec<usize>,
    /// The partial column panel of [`gemm::small_m`].
    tail: Vec<f32>,
    /// One thread's columns of a weight gradient.
    part: Vec<f32>,
}

/// Up to this many output channels the unpacked kernels of [`gemm`] beat packing
/// (measured on W3's 6 and 16 channels); wider convolutions use the packed GEMM.
const THIN: usize = 16;

/// A stride-1 convolution computed without im2col.
///
/// Over the zero-padded image `[c, hp, wp]`, output `(oy, ox)` of kernel tap
/// `r = (c, i, j)` reads `x[off_r + q]` with `q = oy·wp + ox` and
/// `off_r = c·hp·wp + i·dh·wp + j·dw`: row r of the im2col matrix is the image
/// itself, shifted by `off_r`. Taking q over the "wide" positions
/// `0..(oh-1)·wp + ow`, which include `wp - ow` junk columns per output row, makes
/// the convolution an ordinary product whose B rows overlap in memory. Junk columns
/// are dropped from outputs and are zero in output gradients. The extra work is the
/// `wp/ow` ratio (14% on LeNet's first layer), far cheaper than writing the
/// `c·kh·kw`-fold im2col matrix. The image is copied (zero-padded) into a buffer
/// with slack at the end, so q can be rounded up to a multiple of the vector width
/// and the kernels run without scalar tails; every read stays inside the buffer.
///
/// One difference from the definition: a junk column multiplies a zero gradient by
/// an input value the tap never reads, so an infinite input spreads NaN to weight
/// gradient entries the definition leaves finite (training has diverged by then).
struct Wide {
    hp: usize,
    wp: usize,
    /// Wide positions: `(oh - 1)·wp + ow`, rounded up to a multiple of [`LANES`].
    q: usize,
    /// Elements of the padded image buffer, slack included.
    len: usize,
    pad: [usize; 2],
}

/// The widest vector (AVX-512, 16 f32), to which wide rows are rounded up.
const LANES: usize = 16;

impl Wide {
    fn new(s: &ConvShape, a: &Conv2dAttrs) -> Option<Wide> {
        let (hp, wp) = (s.h + 2 * a.padding[0], s.w + 2 * a.padding[1]);
        let fits = s.oh + s.kh.saturating_sub(1) * a.dilation[0] <= hp
            && s.ow + s.kw.saturating_sub(1) * a.dilation[1] <= wp;
        (a.stride == [1, 1] && s.oh > 0 && s.ow > 0 && fits).then(|| {
            let exact = (s.oh - 1) * wp + s.ow;
            let q = exact.next_multiple_of(LANES);
            Wide {
                hp,
                wp,
                q,
                len: s.c * hp * wp + (q - exact),
                pad: a.padding,
            }
        })
    }

    /// Offsets of the kernel taps in weight order `(c, i, j)`.
    fn taps(&self, s: &ConvShape, a: &Conv2dAttrs, taps: &mut Vec<usize>) {
        taps.clear();
        for c in 0..s.c {
            for i in 0..s.kh {
                for j in 0..s.kw {
                    taps.push((c * self.hp + i * a.dilation[0]) * self.wp + j * a.dilation[1]);
                }
            }
        }
    }

    /// Image `x` (`[c, h, w]`), copied into `buf` with its zero padding and slack.
    fn image<'a>(&self, x: &[f32], s: &ConvShape, buf: &'a mut Vec<f32>) -> &'a [f32] {
        self.zeroed(buf);
        for (src, dst) in x.chunks_exact(s.w).zip(self.interior_rows(s, buf)) {
            dst.copy_from_slice(src);
        }
        buf
    }

    /// `buf` as an all-zero padded image with slack.
    fn zeroed<'a>(&self, buf: &'a mut Vec<f32>) -> &'a mut [f32] {
        buf.clear();
        buf.resize(self.len, 0.0);
        buf
    }

    /// The rows of the unpadded image inside a padded one, in order.
    fn interior_rows<'a>(
        &self,
        s: &ConvShape,
        padded: &'a mut [f32],
    ) -> impl Iterator<Item = &'a mut [f32]> {
        let (top, left, w, h, wp) = (self.pad[0], self.pad[1], s.w, s.h, self.wp);
        padded
            .chunks_exact_mut(self.hp * self.wp)
            .take(s.c)
            .flat_map(move |plane| plane.chunks_exact_mut(wp).skip(top).take(h))
            .map(move |row| &mut row[left..left + w])
    }

    /// `[o, oh, ow]` into the wide `[o, q]` layout, junk columns zero.
    fn spread(&self, y: &[f32], o: usize, s: &ConvShape, wide: &mut Vec<f32>) {
        wide.clear();
        wide.resize(o * self.q, 0.0);
        for (src, dst) in y
            .chunks_exact(s.oh * s.ow)
            .zip(wide.chunks_exact_mut(self.q))
        {
            for (oy, row) in src.chunks_exact(s.ow).enumerate() {
                dst[oy * self.wp..][..s.ow].copy_from_slice(row);
            }
        }
    }

    /// The wide `[o, q]` layout back to `[o, oh, ow]`, junk columns dropped.
    fn gather(&self, wide: &[f32], s: &ConvShape, y: &mut [f32]) {
        for (dst, src) in y
            .chunks_exact_mut(s.oh * s.ow)
            .zip(wide.chunks_exact(self.q))
        {
            for (oy, row) in dst.chunks_exact_mut(s.ow).enumerate() {
                row.copy_from_slice(&src[oy * self.wp..][..s.ow]);
            }
        }
    }
}

/// The rows of `cols` (`[rows, cols]`) as offsets, for the unpacked kernels.
fn dense_rows(rows: usize, cols: usize, out: &mut Vec<usize>) {
    out.clear();
    out.extend((0..rows).map(|r| r * cols));
}

/// `y = conv2d(x, w)`: per image, `w [o, c·kh·kw] × im2col(x) [c·kh·kw, oh·ow]`,
/// with the images split across `workers` when the work is large.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    x: &[f32],
    w: &[f32],
    y: &mut [f32],
    s: &ConvShape,
    o: usize,
    a: &Conv2dAttrs,
    workers: Option<&Workers>,
    scratch: &mut Vec<Scratch>,
) {
    let (inp, out) = (s.c * s.h * s.w, o * s.cols());
    by_images(
        s,
        workers,
        s.n * o * s.rows() * s.cols(),
        scratch,
        y,
        out,
        |part, y, sc| {
            conv2d_images(
                &x[part.start * inp..part.end * inp],
                w,
                y,
                &part.shape,
                o,
                a,
                sc,
            )
        },
    );
}

/// [`conv2d`] on one thread.
fn conv2d_images(
    x: &[f32],
    w: &[f32],
    y: &mut [f32],
    s: &ConvShape,
    o: usize,
    a: &Conv2dAttrs,
    scratch: &mut Scratch,
) {
    let Scratch {
        cols,
        image,
        wide,
        taps,
        tail,
        ..
    } = scratch;
    let (k, p, chw) = (s.rows(), s.cols(), s.c * s.h * s.w);
    if chw == 0 || o * p == 0 {
        y.fill(0.0);
        return;
    }
    let images = x.chunks_exact(chw).zip(y.chunks_exact_mut(o * p)).take(s.n);
    match Wide::new(s, a).filter(|_| o <= THIN) {
        Some(g) => {
            g.taps(s, a, taps);
            wide.resize(o * g.q, 0.0);
            for (xn, yn) in images {
                let img = g.image(xn, s, image);
                gemm::small_m((o, g.q, k), w, k, img, taps, wide, g.q, false, tail);
                g.gather(wide, s, yn);
            }
        }
        None => {
            cols.resize(k * p, 0.0);
            dense_rows(k, p, taps);
            for (xn, yn) in images {
                im2col(xn, s, a, cols);
                if o <= THIN {
                    gemm::small_m((o, p, k), w, k, cols, taps, yn, p, false, tail);
                } else {
                    gemm::sgemm((o, p, k), w, false, cols, false, 0.0, yn);
                }
            }
        }
    }
}

/// `dx = conv_transpose2d(dy, w)`, the gradient of `conv2d` w.r.t. its input `x`
/// (shape `s`): per image, `col2im(wᵀ × dy)`, the images split across `workers`
/// when the work is large.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_input_grad(
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    s: &ConvShape,
    o: usize,
    a: &Conv2dAttrs,
    workers: Option<&Workers>,
    scratch: &mut Vec<Scratch>,
) {
    let (inp, out) = (o * s.cols(), s.c * s.h * s.w);
    by_images(
        s,
        workers,
        s.n * o * s.rows() * s.cols(),
        scratch,
        dx,
        out,
        |part, dx, sc| {
            conv2d_input_grad_images(
                &dy[part.start * inp..part.end * inp],
                w,
                dx,
                &part.shape,
                o,
                a,
                sc,
            )
        },
    );
}

/// [`conv2d_input_grad`] on one thread.
fn conv2d_input_grad_images(
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    s: &ConvShape,
    o: usize,
    a: &Conv2dAttrs,
    scratch: &mut Scratch,
) {
    let Scratch {
        cols,
        image,
        wide,
        taps,
        ..
    } = scratch;
    let (k, p, chw) = (s.rows(), s.cols(), s.c * s.h * s.w);
    if chw == 0 || o * p == 0 {
        dx.fill(0.0);
        return;
    }
    let images = dy
        .chunks_exact(o * p)
        .zip(dx.chunks_exact_mut(chw))
        .take(s.n);
    match Wide::new(s, a) {
        Some(g) => {
            // Each tap's row of wᵀ × dy adds into the image at the tap's offset.
            g.taps(s, a, taps);
            cols.resize(k * g.q, 0.0);
            for (dyn_, dxn) in images {
                g.spread(dyn_, o, s, wide);
                gemm::sgemm((k, g.q, o), w, true, wide, false, 0.0, cols);
                let target = g.zeroed(image);
                for (&off, row) in taps.iter().zip(cols.chunks_exact(g.q)) {
                    for (t, &v) in target[off..off + g.q].iter_mut().zip(row) {
                        *t += v;
                    }
                }
                for (dst, src) in dxn.chunks_exact_mut(s.w).zip(g.interior_rows(s, image)) {
                    dst.copy_from_slice(src);
                }
            }
        }
        None => {
            cols.resize(k * p, 0.0);
            for (dyn_, dxn) in images {
                gemm::sgemm((k, p, o), w, true, dyn_, false, 0.0, cols);
                dxn.fill(0.0);
                col2im(cols, s, a, dxn);
            }
        }
    }
}

/// `dw = Σ_n dy_n × im2col(x_n)ᵀ`, the gradient of `conv2d` w.r.t. its weight. On
/// several threads each computes some of the kernel taps (columns of `dw`) over
/// every image, so each entry is summed in the same order whatever the split.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_weight_grad(
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    s: &ConvShape,
    o: usize,
    a: &Conv2dAttrs,
    workers: Option<&Workers>,
    scratch: &mut Vec<Scratch>,
) {
    let (k, p, chw) = (s.rows(), s.cols(), s.c * s.h * s.w);
    scratch.resize_with(scratch.len().max(1), Default::default);
    dw.fill(0.0);
    if chw == 0 || o * p == 0 {
        return;
    }
    let Some(g) = Wide::new(s, a).filter(|_| o <= THIN) else {
        return weight_grad_im2col(x, dy, dw, s, o, a, &mut scratch[0]);
    };
    let taps = parallel::ranges(k, split_count(workers, s.n * o * k * p));
    if taps.len() <= 1 {
        return weight_grad_wide(x, dy, s, o, a, &g, 0..k, &mut scratch[0], dw);
    }
    scratch.resize_with(taps.len(), Default::default);
    let items: Vec<_> = taps.iter().cloned().zip(scratch.iter_mut()).collect();
    parallel::run(workers, items, |(r, sc)| {
        let mut part = std::mem::take(&mut sc.part);
        part.clear();
        part.resize(o * r.len(), 0.0);
        weight_grad_wide(x, dy, s, o, a, &g, r, sc, &mut part);
        sc.part = part;
    });
    for (r, sc) in taps.iter().zip(scratch.iter()) {
        for (dst, src) in dw.chunks_exact_mut(k).zip(sc.part.chunks_exact(r.len())) {
            dst[r.clone()].copy_from_slice(src);
        }
    }
}

/// Taps `taps` of the weight gradient over the stride-1 wide layout: `dw[o, r]` is
/// the dot product of the wide dy row and the tap's shifted image row (junk columns
/// of dy are zero). Accumulates into `out` (`[o, taps.len()]`).
#[allow(clippy::too_many_arguments)]
fn weight_grad_wide(
    x: &[f32],
    dy: &[f32],
    s: &ConvShape,
    o: usize,
    a: &Conv2dAttrs,
    g: &Wide,
    taps: std::ops::Range<usize>,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    let Scratch {
        image,
        wide,
        taps: offsets,
        ..
    } = scratch;
    let (chw, op) = (s.c * s.h * s.w, o * s.cols());
    g.taps(s, a, offsets);
    for (xn, dyn_) in x.chunks_exact(chw).zip(dy.chunks_exact(op)).take(s.n) {
        let img = g.image(xn, s, image);
        g.spread(dyn_, o, s, wide);
        let n = taps.len();
        gemm::dot_nt(
            (o, n, g.q),
            wide,
            g.q,
            img,
            &offsets[taps.clone()],
            out,
            n,
            true,
        );
    }
}

/// The weight gradient through im2col (strided convolutions, many channels), on
/// one thread, accumulated into `dw`.
fn weight_grad_im2col(
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    s: &ConvShape,
    o: usize,
    a: &Conv2dAttrs,
    scratch: &mut Scratch,
) {
    let Scratch { cols, taps, .. } = scratch;
    let (k, p, chw) = (s.rows(), s.cols(), s.c * s.h * s.w);
    cols.resize(k * p, 0.0);
    dense_rows(k, p, taps);
    for (xn, dyn_) in x.chunks_exact(chw).zip(dy.chunks_exact(o * p)).take(s.n) {
        im2col(xn, s, a, cols);
        if o <= THIN {
            // Both operands are contiguous along the output positions.
            gemm::dot_nt((o, k, p), dyn_, p, cols, taps, dw, k, true);
        } else {
            gemm::sgemm((o, k, p), dyn_, false, cols, true, 1.0, dw);
        }
    }
}

/// Below this many multiply-adds a convolution stays on one thread.
const SPLIT_MIN: usize = parallel::SPLIT_MIN_MACS;

/// How many parts to split `work` multiply-adds into.
fn split_count(workers: Option<&Workers>, work: usize) -> usize {
    if work >= SPLIT_MIN {
        parallel::threads(workers)
    } else {
        1
    }
}

/// One thread's share of a batch: images `start..end`, and the geometry of that
/// sub-batch.
struct Part {
    start: usize,
    end: usize,
    shape: ConvShape,
}

/// Runs `f` over the batch of `s`, split by images across `workers` when `work` is
/// large; `out` (`per_image` elements per image) is cut to match, and each part
/// gets its own scratch.
fn by_images(
    s: &ConvShape,
    workers: Option<&Workers>,
    work: usize,
    scratch: &mut Vec<Scratch>,
    out: &mut [f32],
    per_image: usize,
    f: impl Fn(Part, &mut [f32], &mut Scratch) + Sync,
) {
    let ranges = parallel::ranges(s.n, split_count(workers, work));
    scratch.resize_with(ranges.len().max(1), Default::default);
    if ranges.len() <= 1 {
        let whole = Part {
            start: 0,
            end: s.n,
            shape: *s,
        };
        return f(whole, out, &mut scratch[0]);
    }
    let mut items = Vec::with_capacity(ranges.len());
    let mut rest = out;
    for (r, sc) in ranges.into_iter().zip(scratch.iter_mut()) {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(r.len() * per_image);
        rest = tail;
        let shape = ConvShape { n: r.len(), ..*s };
        items.push((
            Part {
                start: r.start,
                end: r.end,
                shape,
            },
            head,
            sc,
        ));
    }
    parallel::run(workers, items, |(part, out, sc)| f(part, out, sc));
}

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
                            .fold(a[0], |acc, v| if beats(v, acc) { v } else { acc }),
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
                                if beats(v, acc) {
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
