//! Native f32 convolution: `conv2d` and its two backward forms (the input
//! gradient, `conv_transpose2d`, and the weight gradient) as matrix products.
//! Stride 1 reads the image in place (see `Wide`); other strides go through
//! im2col. Up to `THIN` output channels the products use the unpacked kernels
//! of [`thin`], wider ones the packed [`gemm::sgemm`]. Layouts are NCHW
//! activations and OIHW weights (`conv_transpose2d` takes IOHW), as in the IR.

use kiln_ir::Conv2dAttrs;

use super::{gemm, thin};
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
    /// The geometry of an image batch `[n, c, h, w]` under a `kernel`, with
    /// output `[.., .., oh, ow]`.
    pub fn new(image: &[usize], kernel: [usize; 2], out: &[usize]) -> ConvShape {
        ConvShape {
            n: image[0],
            c: image[1],
            h: image[2],
            w: image[3],
            kh: kernel[0],
            kw: kernel[1],
            oh: out[2],
            ow: out[3],
        }
    }

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
    /// The partial column panel of [`thin::small_m`].
    tail: Vec<f32>,
    /// One thread's columns of a weight gradient.
    part: Vec<f32>,
}

/// Up to this many output channels the unpacked kernels of [`thin`] beat packing
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
/// A junk column multiplies a zero gradient by an input value the tap never reads
/// (weight gradient), or a weight by a zero gradient and adds the product into a
/// pixel the tap never reaches (input gradient): harmless for finite values, but
/// `0 · inf` is NaN. So the weight gradient of an image holding an infinity or
/// NaN, and the input gradient of such a weight, take the im2col path, which
/// multiplies only what the definition multiplies.
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
    let work = s.n * o * s.rows() * s.cols();
    let per_image = (s.c * s.h * s.w, o * s.cols());
    by_images(
        s,
        workers,
        work,
        scratch,
        (x, y),
        per_image,
        |x, y, s, sc| conv2d_images(x, w, y, s, o, a, sc),
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
                thin::small_m((o, g.q, k), w, k, img, taps, wide, g.q, false, tail);
                g.gather(wide, s, yn);
            }
        }
        None => {
            cols.resize(k * p, 0.0);
            dense_rows(k, p, taps);
            for (xn, yn) in images {
                im2col(xn, s, a, cols);
                if o <= THIN {
                    thin::small_m((o, p, k), w, k, cols, taps, yn, p, false, tail);
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
    let work = s.n * o * s.rows() * s.cols();
    let per_image = (o * s.cols(), s.c * s.h * s.w);
    by_images(
        s,
        workers,
        work,
        scratch,
        (dy, dx),
        per_image,
        |dy, dx, s, sc| conv2d_input_grad_images(dy, w, dx, s, o, a, sc),
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
    // The wide layout's junk columns would multiply non-finite weights by zero
    // ([`Wide`]) and add the NaN into pixels the tap never reaches.
    match Wide::new(s, a).filter(|_| w.iter().all(|v| v.is_finite())) {
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
    // The wide layout's junk columns would read non-finite inputs ([`Wide`]).
    let finite = || x[..s.n * chw].iter().all(|v| v.is_finite());
    let Some(g) = Wide::new(s, a).filter(|_| o <= THIN && finite()) else {
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
        thin::dot_nt(
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
            thin::dot_nt((o, k, p), dyn_, p, cols, taps, dw, k, true);
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

/// Runs `f(input, output, shape, scratch)` over the batch of `s`, split by images
/// across `workers` when `work` is large: `input` and `output` (`per_image`
/// elements per image each) are cut to match, `shape` is the part's geometry,
/// and each part gets its own scratch.
fn by_images(
    s: &ConvShape,
    workers: Option<&Workers>,
    work: usize,
    scratch: &mut Vec<Scratch>,
    (input, output): (&[f32], &mut [f32]),
    (inp, out): (usize, usize),
    f: impl Fn(&[f32], &mut [f32], &ConvShape, &mut Scratch) + Sync,
) {
    let ranges = parallel::ranges(s.n, split_count(workers, work));
    scratch.resize_with(ranges.len().max(1), Default::default);
    if ranges.len() <= 1 {
        return f(&input[..s.n * inp], output, s, &mut scratch[0]);
    }
    let mut items = Vec::with_capacity(ranges.len());
    let mut rest = output;
    for (r, sc) in ranges.into_iter().zip(scratch.iter_mut()) {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(r.len() * out);
        rest = tail;
        let shape = ConvShape { n: r.len(), ..*s };
        items.push((&input[r.start * inp..r.end * inp], head, shape, sc));
    }
    parallel::run(workers, items, |(x, y, shape, sc)| f(x, y, &shape, sc));
}
