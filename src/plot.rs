//! Pictures of what a model does: image grids written as PNG files.
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
