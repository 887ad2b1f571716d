//! Layers that grow images, for decoders and generators: the transposed
//! convolution, nearest-neighbour upsampling, and unflattening a feature vector.

use super::{Module, add_channel_bias};
use crate::init::Init;
use crate::ops::Pair;
use crate::rng::Rng;
use crate::{GraphBuilder, Tensor};

/// A transposed 2-D convolution (PyTorch's `nn.ConvTranspose2d`): the adjoint of a
/// convolution with the same geometry, so `stride` grows the image. The weight is
/// `[in_channels, out_channels, kh, kw]` (PyTorch's layout), the output
/// `[n, out, (h - 1) s - 2 p + d (k - 1) + output_padding + 1, ...]`.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("up");
/// let x = g.input("x", DType::F32, [2, 8, 4, 4]);
/// let up = nn::ConvTranspose2dConfig::new(8, 3, 4)
///     .with_stride(2)
///     .with_padding(1)
///     .init(&g, "up", &mut Rng::seed(0));
/// assert_eq!(up.forward(&x).dims(), &[2, 3, 8, 8]);
/// ```
#[derive(Clone, Debug)]
pub struct ConvTranspose2d {
    /// `[in_channels, out_channels, kh, kw]`.
    pub weight: Tensor,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Tensor>,
    /// Step of the adjoint convolution's windows, per spatial axis.
    pub stride: [usize; 2],
    /// Rows and columns removed from both sides of the output.
    pub padding: [usize; 2],
    /// Rows and columns added at the bottom and right of the output.
    pub output_padding: [usize; 2],
    /// Spacing between kernel taps.
    pub dilation: [usize; 2],
}

/// The configuration of a [`ConvTranspose2d`], builder-style; PyTorch's defaults
/// (stride 1, no padding, a bias, its initialization).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvTranspose2dConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// See [`ConvTranspose2d::stride`].
    pub stride: [usize; 2],
    /// See [`ConvTranspose2d::padding`].
    pub padding: [usize; 2],
    /// See [`ConvTranspose2d::output_padding`].
    pub output_padding: [usize; 2],
    /// See [`ConvTranspose2d::dilation`].
    pub dilation: [usize; 2],
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl ConvTranspose2dConfig {
    /// From `in_channels` to `out_channels` with a `kernel` (`usize` or `[h, w]`).
    pub fn new(in_channels: usize, out_channels: usize, kernel: impl Into<Pair>) -> Self {
        ConvTranspose2dConfig {
            in_channels,
            out_channels,
            kernel: kernel.into().0,
            stride: [1, 1],
            padding: [0, 0],
            output_padding: [0, 0],
            dilation: [1, 1],
            bias: true,
        }
    }

    /// With a stride.
    pub fn with_stride(mut self, stride: impl Into<Pair>) -> Self {
        self.stride = stride.into().0;
        self
    }

    /// With padding (removed from both sides of the output).
    pub fn with_padding(mut self, padding: impl Into<Pair>) -> Self {
        self.padding = padding.into().0;
        self
    }

    /// With output padding (rows and columns added at the bottom and right).
    pub fn with_output_padding(mut self, output_padding: impl Into<Pair>) -> Self {
        self.output_padding = output_padding.into().0;
        self
    }

    /// With a dilation.
    pub fn with_dilation(mut self, dilation: impl Into<Pair>) -> Self {
        self.dilation = dilation.into().0;
        self
    }

    /// With or without the bias.
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// Declares `{name}.weight` and `{name}.bias`, initialized as PyTorch does:
    /// `U(-1/√f, 1/√f)` for both, `f = out_channels · kh · kw`.
    #[track_caller]
    pub fn init(&self, g: &GraphBuilder, name: &str, rng: &mut Rng) -> ConvTranspose2d {
        let [kh, kw] = self.kernel;
        let dims = [self.in_channels, self.out_channels, kh, kw];
        let weight = g.param_init(&format!("{name}.weight"), dims, Init::torch_default(), rng);
        let bias = self.bias.then(|| {
            let value =
                Init::bias_default(self.out_channels * kh * kw).sample([self.out_channels], rng);
            g.param(&format!("{name}.bias"), value)
        });
        ConvTranspose2d {
            weight,
            bias,
            stride: self.stride,
            padding: self.padding,
            output_padding: self.output_padding,
            dilation: self.dilation,
        }
    }
}

impl Module for ConvTranspose2d {
    /// `conv_transpose2d(x, weight) + bias` for `x: [n, in, h, w]`.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let y = x.conv_transpose2d(
            &self.weight,
            self.stride,
            self.padding,
            self.output_padding,
            self.dilation,
        );
        add_channel_bias(y, self.bias.as_ref())
    }

    fn params(&self) -> Vec<Tensor> {
        let mut p = vec![self.weight.clone()];
        p.extend(self.bias.clone());
        p
    }
}

/// Nearest-neighbour upsampling of `[n, c, h, w]` by an integer `scale` per axis
/// (PyTorch's `nn.Upsample(scale_factor, mode="nearest")`): each pixel becomes a
/// `scale` block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Upsample(pub [usize; 2]);

impl Upsample {
    /// By `scale` (`usize` or `[h, w]`).
    pub fn new(scale: impl Into<Pair>) -> Self {
        Upsample(scale.into().0)
    }
}

impl Module for Upsample {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut d = x.dims().to_vec();
        // A tensor of another rank: the reshape below reports it at the caller's
        // line (its element count cannot match).
        d.resize(4, 0);
        let [sh, sw] = self.0;
        x.reshape([d[0], d[1], d[2], 1, d[3], 1])
            .broadcast_to([d[0], d[1], d[2], sh, d[3], sw])
            .reshape([d[0], d[1], d[2] * sh, d[3] * sw])
    }

    fn params(&self) -> Vec<Tensor> {
        Vec::new()
    }
}

/// Splits axis `dim` into `sizes` (PyTorch's `nn.Unflatten`), e.g. a decoder's
/// `[n, 64]` into `[n, 4, 4, 4]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Unflatten {
    /// The axis split.
    pub dim: usize,
    /// The sizes it splits into.
    pub sizes: Vec<usize>,
}

impl Unflatten {
    /// Axis `dim` into `sizes`.
    pub fn new(dim: usize, sizes: &[usize]) -> Self {
        Unflatten {
            dim,
            sizes: sizes.to_vec(),
        }
    }
}

impl Module for Unflatten {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let d = x.dims();
        let dim = self.dim.min(d.len());
        let shape: Vec<usize> = d[..dim]
            .iter()
            .chain(&self.sizes)
            .chain(d.get(dim + 1..).unwrap_or(&[]))
            .copied()
            .collect();
        x.reshape(shape)
    }

    fn params(&self) -> Vec<Tensor> {
        Vec::new()
    }
}
