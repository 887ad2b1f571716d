//! Pictures of what a model does, written as PNG files: image grids
//! ([`save_image_grid`]) and training curves ([`save_curves`]).
//!
//! ```
//! use kiln::prelude::*;
//!
//! // Two 2x3 grayscale images side by side, each pixel drawn 4x4.
//! let images = HostTensor::from_f32([2, 2, 3], (0..12).map(|i| i as f32 / 11.0).collect()).unwrap();
//! let path = std::env::temp_dir().join(format!("kiln-plot-doc-{}.png", std::process::id()));
//! let (w, h) = kiln::plot::save_image_grid(&path, &images, &kiln::plot::GridOptions::new(2)).unwrap();
//! assert_eq!((w, h), (2 * 3 * 4 + 3, 2 * 4 + 2));
//! std::fs::remove_file(&path).unwrap();
//! ```

use std::io::BufWriter;
use std::path::Path;

use kiln_ir::HostTensor;

/// Why a picture could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("images must be f32 [N, H, W] or [N, 1, H, W], got {0}")]
    Shape(String),
    #[error("{path}: {message}")]
    Write { path: String, message: String },
}

/// How [`save_image_grid`] lays images out.
#[derive(Clone, Debug, PartialEq)]
pub struct GridOptions {
    /// Images per row.
    pub columns: usize,
    /// Each pixel is drawn as a `scale` x `scale` square.
    pub scale: usize,
    /// The values drawn black and white (clamped between).
    pub range: (f32, f32),
}

impl GridOptions {
    /// `columns` images per row, pixels drawn 4x4, values from 0 (black) to 1
    /// (white).
    pub fn new(columns: usize) -> Self {
        GridOptions {
            columns: columns.max(1),
            scale: 4,
            range: (0.0, 1.0),
        }
    }

    /// With another value range.
    pub fn with_range(mut self, lo: f32, hi: f32) -> Self {
        self.range = (lo, hi);
        self
    }

    /// With another pixel size.
    pub fn with_scale(mut self, scale: usize) -> Self {
        self.scale = scale.max(1);
        self
    }
}

/// Writes the grayscale `images` (f32 `[N, H, W]` or `[N, 1, H, W]`) as one PNG
/// grid, row by row, with one-pixel gray lines between images; returns its width
/// and height in pixels.
pub fn save_image_grid(
    path: impl AsRef<Path>,
    images: &HostTensor,
    options: &GridOptions,
) -> Result<(u32, u32), PlotError> {
    let dims = images.shape().dims();
    let (n, h, w) = match dims {
        [n, h, w] | [n, 1, h, w] => (*n, *h, *w),
        _ => return Err(PlotError::Shape(images.ty().to_string())),
    };
    let values = images
        .as_f32()
        .ok_or_else(|| PlotError::Shape(images.ty().to_string()))?;
    let (cols, s) = (options.columns.min(n.max(1)), options.scale);
    let rows = n.div_ceil(cols).max(1);
    let (width, height) = (cols * (w * s + 1) + 1, rows * (h * s + 1) + 1);
    let mut pixels = vec![128u8; width * height];
    let (lo, hi) = options.range;
    for k in 0..n {
        let (r, c) = (k / cols, k % cols);
        for i in 0..h * s {
            for j in 0..w * s {
                let v = values[(k * h + i / s) * w + j / s];
                let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
                let byte = (t.clamp(0.0, 1.0) * 255.0).round() as u8;
                let (y, x) = (r * (h * s + 1) + 1 + i, c * (w * s + 1) + 1 + j);
                pixels[y * width + x] = byte;
            }
        }
    }
    let path = path.as_ref();
    let fail = |message: String| PlotError::Write {
        path: path.display().to_string(),
        message,
    };
    let file = std::fs::File::create(path).map_err(|e| fail(e.to_string()))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| fail(e.to_string()))?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| fail(e.to_string()))?;
    writer.finish().map_err(|e| fail(e.to_string()))?;
    Ok((width as u32, height as u32))
}

/// Colors of the curves of [`save_curves`], in order (then repeated).
const COLORS: [[u8; 3]; 6] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
];

/// Draws `series` (say a loss and a metric per epoch) as curves on one chart of
/// `width` x `height` pixels, PNG: a white background, a gray frame, one colored
/// polyline per series (in the order of `COLORS`: blue, orange, green, red, ...)
/// over their common x range (the index) and y range (min to max of all finite
/// values). Non-finite values break the line. There is no text: print the legend
/// with the path.
///
/// ```
/// let path = std::env::temp_dir().join(format!("kiln-curve-doc-{}.png", std::process::id()));
/// let loss = [2.3, 1.1, 0.7, 0.5, 0.45];
/// kiln::plot::save_curves(&path, &[&loss], 200, 100).unwrap();
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn save_curves(
    path: impl AsRef<Path>,
    series: &[&[f64]],
    width: u32,
    height: u32,
) -> Result<(), PlotError> {
    let (w, h) = (width.max(16) as usize, height.max(16) as usize);
    let mut rgb = vec![255u8; w * h * 3];
    let mut put = |x: usize, y: usize, c: [u8; 3]| {
        if x < w && y < h {
            rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&c);
        }
    };
    for x in 0..w {
        put(x, 0, [160; 3]);
        put(x, h - 1, [160; 3]);
    }
    for y in 0..h {
        put(0, y, [160; 3]);
        put(w - 1, y, [160; 3]);
    }
    let finite = series
        .iter()
        .flat_map(|s| s.iter())
        .copied()
        .filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let longest = series.iter().map(|s| s.len()).max().unwrap_or(0);
    if lo.is_finite() && longest > 0 {
        let span = if hi > lo { hi - lo } else { 1.0 };
        let margin = 4.0;
        let to_px = |i: usize, v: f64| -> (f64, f64) {
            let x = margin + (w as f64 - 2.0 * margin) * i as f64 / (longest.max(2) - 1) as f64;
            let y = margin + (h as f64 - 2.0 * margin) * (1.0 - (v - lo) / span);
            (x, y)
        };
        for (k, s) in series.iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            for i in 0..s.len() {
                let (a, b) = (s[i], s.get(i + 1).copied().unwrap_or(s[i]));
                if !a.is_finite() || !b.is_finite() {
                    continue;
                }
                let (p, q) = (to_px(i, a), to_px((i + 1).min(s.len() - 1), b));
                // A line two pixels thick, sampled densely enough to have no gaps.
                let steps = ((q.0 - p.0).abs().max((q.1 - p.1).abs()) * 2.0)
                    .ceil()
                    .max(1.0) as usize;
                for t in 0..=steps {
                    let f = t as f64 / steps as f64;
                    let (x, y) = (p.0 + f * (q.0 - p.0), p.1 + f * (q.1 - p.1));
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        put(x as usize + dx, y as usize + dy, color);
                    }
                }
            }
        }
    }
    let path = path.as_ref();
    let fail = |message: String| PlotError::Write {
        path: path.display().to_string(),
        message,
    };
    let file = std::fs::File::create(path).map_err(|e| fail(e.to_string()))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), w as u32, h as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| fail(e.to_string()))?;
    writer
        .write_image_data(&rgb)
        .map_err(|e| fail(e.to_string()))?;
    writer.finish().map_err(|e| fail(e.to_string()))?;
    Ok(())
}
