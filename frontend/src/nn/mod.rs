//! Layers: the [`Module`] trait, [`Linear`], [`Conv2d`], pooling, [`Flatten`],
//! [`Sequential`] and activation modules (this file); [`Embedding`]
//! (`embedding.rs`); the recurrent cells [`RnnCell`], [`LstmCell`], [`GruCell`]
//! (`cell.rs`) and the multi-step layers [`Rnn`], [`Lstm`], [`Gru`] with
//! [`sequence_mask`] (`rnn.rs`).
//!
//! Parameters use PyTorch's layouts and names (`fc1.weight` is `[out, in]`,
//! `fc1.bias` is `[out]`, `lstm.weight_ih_l0` is `[4*hidden, input]`), so
//! checkpoints and imported models line up.

mod cell;
mod embedding;
mod norm;
mod rnn;
mod upsample;

pub use cell::{
    CellParams, GruCell, GruCellConfig, LstmCell, LstmCellConfig, Nonlinearity, RnnCell,
    RnnCellConfig,
};
pub use embedding::{Embedding, EmbeddingConfig};
pub use norm::{BatchNorm, BatchNorm1d, BatchNorm2d, BatchNormConfig, Dropout, LayerNorm};
pub use rnn::{Gru, GruConfig, Lstm, LstmConfig, Rnn, RnnConfig, sequence_mask};
pub use upsample::{ConvTranspose2d, ConvTranspose2dConfig, Unflatten, Upsample};

use crate::init::Init;
use crate::ops::Pair;
use crate::rng::Rng;
use crate::{GraphBuilder, Tensor};

/// A layer or model: a forward function over tensors and the parameters it owns.
pub trait Module {
    /// Applies the module to `x`. Errors are deferred like every op's, and reported
    /// at the line of this call.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor;

    /// The module's parameters (for optimizers, weight decay, L1/L2 penalties), in
    /// declaration order.
    fn params(&self) -> Vec<Tensor>;
}

/// A fully connected layer: `y = x W^T + b` with `W: [out, in]`, `b: [out]`.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("net");
/// let mut rng = Rng::seed(0);
/// let fc = nn::Linear::new(&g, "fc1", 784, 128, &mut rng);
/// assert_eq!(fc.weight.dims(), &[128, 784]);
/// let x = g.input("x", DType::F32, [32, 784]);
/// let h = fc.forward(&x).relu();
/// assert_eq!(h.dims(), &[32, 128]);
///
/// // Choosing the initializers, and no bias:
/// let fc2 = nn::LinearConfig::new(128, 10)
///     .with_weight_init(Init::XavierUniform)
///     .with_bias(false)
///     .init(&g, "fc2", &mut rng);
/// assert!(fc2.bias.is_none());
/// assert_eq!(fc2.forward(&h).dims(), &[32, 10]);
/// ```
#[derive(Clone, Debug)]
pub struct Linear {
    /// `[out_features, in_features]`.
    pub weight: Tensor,
    /// `[out_features]`, if the layer has a bias.
    pub bias: Option<Tensor>,
}

/// The configuration of a [`Linear`] layer, builder-style.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearConfig {
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
    /// Whether the layer adds a bias.
    pub bias: bool,
    /// The weight initializer (default: PyTorch's, [`Init::torch_default`]).
    pub weight_init: Init,
    /// The bias initializer (default: PyTorch's, [`Init::bias_default`]`(in)`).
    pub bias_init: Init,
}

/// `with_bias`, `with_weight_init` and `with_bias_init` for a layer configuration
/// with the fields `bias`, `weight_init` and `bias_init`.
macro_rules! bias_and_init_setters {
    () => {
        setters! {
            /// With or without a bias.
            with_bias(bias: bool) => bias;
            /// With another weight initializer.
            with_weight_init(init: Init) => weight_init;
            /// With another bias initializer.
            with_bias_init(init: Init) => bias_init;
        }
    };
}

/// Declares `{name}.weight` of shape `weight_dims` (output size first) drawn from
/// `weight_init` and, when `bias_init` is given, `{name}.bias` of the output size
/// drawn from it.
#[track_caller]
fn weight_and_bias<const N: usize>(
    g: &GraphBuilder,
    name: &str,
    weight_dims: [usize; N],
    weight_init: Init,
    bias_init: Option<Init>,
    rng: &mut Rng,
) -> (Tensor, Option<Tensor>) {
    let out = weight_dims[0];
    let weight = g.param_init(&format!("{name}.weight"), weight_dims, weight_init, rng);
    let bias = bias_init.map(|bias_init| {
        let value = bias_init.sample([out], rng);
        g.param(&format!("{name}.bias"), value)
    });
    (weight, bias)
}

impl LinearConfig {
    /// A layer from `in_features` to `out_features` with a bias and PyTorch's default
    /// initialization: `U(-1/sqrt(in), 1/sqrt(in))` for weight and bias.
    pub fn new(in_features: usize, out_features: usize) -> Self {
        LinearConfig {
            in_features,
            out_features,
            bias: true,
            weight_init: Init::torch_default(),
            bias_init: Init::bias_default(in_features),
        }
    }

    bias_and_init_setters!();

    /// Declares the parameters `{name}.weight` and `{name}.bias` in `g`.
    #[track_caller]
    pub fn init(&self, g: &GraphBuilder, name: &str, rng: &mut Rng) -> Linear {
        let (weight, bias) = weight_and_bias(
            g,
            name,
            [self.out_features, self.in_features],
            self.weight_init,
            self.bias.then_some(self.bias_init),
            rng,
        );
        Linear { weight, bias }
    }
}

impl Linear {
    /// A layer with PyTorch's default initialization; see [`LinearConfig`] for
    /// other choices.
    #[track_caller]
    pub fn new(
        g: &GraphBuilder,
        name: &str,
        in_features: usize,
        out_features: usize,
        rng: &mut Rng,
    ) -> Linear {
        LinearConfig::new(in_features, out_features).init(g, name, rng)
    }
}

impl Module for Linear {
    /// `x.matmul(weight.t()) + bias` for `x: [..., in]`.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let y = x.matmul(&self.weight.t());
        match &self.bias {
            Some(b) => y + b,
            None => y,
        }
    }

    fn params(&self) -> Vec<Tensor> {
        let mut p = vec![self.weight.clone()];
        p.extend(self.bias.clone());
        p
    }
}

/// A 2-D convolution over NCHW input: `y = conv2d(x, W) + b` with
/// `W: [out, in, kh, kw]` and `b: [out]`, PyTorch's layout and default
/// initialization.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("cnn");
/// let mut rng = Rng::seed(0);
/// let x = g.input("x", DType::F32, [8, 3, 32, 32]);
/// let conv1 = nn::Conv2d::new(&g, "conv1", 3, 6, 5, &mut rng);
/// let h = nn::MaxPool2d::new(2).forward(&conv1.forward(&x).relu());
/// assert_eq!(h.dims(), &[8, 6, 14, 14]);
///
/// // Padding "same" for a 3×3 kernel, no bias:
/// let conv2 = nn::Conv2dConfig::new(6, 16, 3)
///     .with_padding(1)
///     .with_bias(false)
///     .init(&g, "conv2", &mut rng);
/// assert_eq!(conv2.forward(&h).dims(), &[8, 16, 14, 14]);
/// ```
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// `[out_channels, in_channels, kh, kw]`.
    pub weight: Tensor,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Tensor>,
    /// Step between windows, per spatial axis.
    pub stride: [usize; 2],
    /// Zeros added on both sides, per spatial axis.
    pub padding: [usize; 2],
    /// Spacing between kernel taps, per spatial axis.
    pub dilation: [usize; 2],
}

/// The configuration of a [`Conv2d`] layer, builder-style.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Step between windows (default 1).
    pub stride: [usize; 2],
    /// Zeros added on both sides (default 0).
    pub padding: [usize; 2],
    /// Spacing between kernel taps (default 1).
    pub dilation: [usize; 2],
    /// Whether the layer adds a bias.
    pub bias: bool,
    /// The weight initializer (default: PyTorch's, [`Init::torch_default`]).
    pub weight_init: Init,
    /// The bias initializer (default: PyTorch's, [`Init::bias_default`] of the
    /// fan-in `in·kh·kw`).
    pub bias_init: Init,
}

impl Conv2dConfig {
    /// A convolution from `in_channels` to `out_channels` with a `kernel` (one size
    /// or `[kh, kw]`), stride 1, no padding, a bias, and PyTorch's default
    /// initialization.
    pub fn new(in_channels: usize, out_channels: usize, kernel: impl Into<Pair>) -> Self {
        let kernel = kernel.into().0;
        Conv2dConfig {
            in_channels,
            out_channels,
            kernel,
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            bias: true,
            weight_init: Init::torch_default(),
            bias_init: Init::bias_default(in_channels * kernel[0] * kernel[1]),
        }
    }

    /// With another stride.
    pub fn with_stride(mut self, stride: impl Into<Pair>) -> Self {
        self.stride = stride.into().0;
        self
    }

    /// With zero padding.
    pub fn with_padding(mut self, padding: impl Into<Pair>) -> Self {
        self.padding = padding.into().0;
        self
    }

    /// With dilated kernel taps.
    pub fn with_dilation(mut self, dilation: impl Into<Pair>) -> Self {
        self.dilation = dilation.into().0;
        self
    }

    bias_and_init_setters!();

    /// Declares the parameters `{name}.weight` and `{name}.bias` in `g`.
    #[track_caller]
    pub fn init(&self, g: &GraphBuilder, name: &str, rng: &mut Rng) -> Conv2d {
        let [kh, kw] = self.kernel;
        let (weight, bias) = weight_and_bias(
            g,
            name,
            [self.out_channels, self.in_channels, kh, kw],
            self.weight_init,
            self.bias.then_some(self.bias_init),
            rng,
        );
        Conv2d {
            weight,
            bias,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        }
    }
}

impl Conv2d {
    /// A stride-1, unpadded convolution with PyTorch's default initialization; see
    /// [`Conv2dConfig`] for other choices.
    #[track_caller]
    pub fn new(
        g: &GraphBuilder,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: impl Into<Pair>,
        rng: &mut Rng,
    ) -> Conv2d {
        Conv2dConfig::new(in_channels, out_channels, kernel).init(g, name, rng)
    }
}

impl Module for Conv2d {
    /// `conv2d(x, weight) + bias` for `x: [n, in, h, w]`.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let y = x.conv2d(&self.weight, self.stride, self.padding, self.dilation);
        add_channel_bias(y, self.bias.as_ref())
    }

    fn params(&self) -> Vec<Tensor> {
        let mut p = vec![self.weight.clone()];
        p.extend(self.bias.clone());
        p
    }
}

/// `y + bias` per channel (axis 1 of an NCHW `y`), if there is a bias.
#[track_caller]
pub(crate) fn add_channel_bias(y: Tensor, bias: Option<&Tensor>) -> Tensor {
    match bias {
        Some(b) => {
            let channels = b.dims().first().copied().unwrap_or(0);
            y + b.reshape([1, channels, 1, 1])
        }
        None => y,
    }
}

/// `Module` for layers without parameters: `Name => method(fields)` forwards to
/// `x.method(self.field, ...)`.
macro_rules! parameterless_modules {
    ($($name:ident => $method:ident($($field:tt),*);)*) => {$(
        impl Module for $name {
            #[track_caller]
            fn forward(&self, x: &Tensor) -> Tensor {
                x.$method($(self.$field),*)
            }

            fn params(&self) -> Vec<Tensor> {
                Vec::new()
            }
        }
    )*};
}

macro_rules! pool_module {
    ($($(#[$doc:meta])* $name:ident => $method:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            /// Window height and width.
            pub kernel: [usize; 2],
            /// Step between windows.
            pub stride: [usize; 2],
            /// Padding on both sides.
            pub padding: [usize; 2],
        }

        impl $name {
            /// Non-overlapping `kernel` windows (stride = kernel), unpadded.
            pub fn new(kernel: impl Into<Pair>) -> Self {
                let kernel = kernel.into().0;
                $name {
                    kernel,
                    stride: kernel,
                    padding: [0, 0],
                }
            }
        }

        parameterless_modules! { $name => $method(kernel, stride, padding); }
    )*};
}

pool_module! {
    /// Max pooling over NCHW input, as a module (padding is never the maximum).
    MaxPool2d => max_pool2d;
    /// Average pooling over NCHW input, as a module (padding counts as zeros).
    AvgPool2d => avg_pool2d;
}

/// Flattens every axis from `.0` on into one, as a module (`Flatten(1)` between
/// convolutions and dense layers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flatten(pub isize);

/// Modules applied one after another.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("mlp");
/// let mut rng = Rng::seed(0);
/// let mlp = nn::Sequential::new()
///     .add(nn::Linear::new(&g, "fc1", 4, 8, &mut rng))
///     .add(nn::Relu)
///     .add(nn::Linear::new(&g, "fc2", 8, 3, &mut rng));
/// let y = mlp.forward(&g.input("x", DType::F32, [2, 4]));
/// assert_eq!(y.dims(), &[2, 3]);
/// assert_eq!(mlp.params().len(), 4);
/// ```
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// No layers (the identity).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `layer`, builder-style.
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: impl Module + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Appends `layer`.
    pub fn push(&mut self, layer: impl Module + 'static) {
        self.layers.push(Box::new(layer));
    }

    /// The number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True if there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Module for Sequential {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut y = x.clone();
        for layer in &self.layers {
            y = layer.forward(&y);
        }
        y
    }

    fn params(&self) -> Vec<Tensor> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }
}

macro_rules! activation {
    ($($(#[$doc:meta])* $name:ident => $method:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name;

        parameterless_modules! { $name => $method(); }
    )*};
}

activation! {
    /// `max(x, 0)` as a module.
    Relu => relu;
    /// The logistic sigmoid as a module.
    Sigmoid => sigmoid;
    /// `tanh` as a module.
    Tanh => tanh;
    /// SiLU (swish) `x · sigmoid(x)` as a module ([`Tensor::silu`]).
    Silu => silu;
}

/// Which GELU a [`Gelu`] computes (PyTorch's `approximate` argument).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GeluApproximation {
    /// The exact `x · Φ(x)` ([`Tensor::gelu`]), PyTorch's default `'none'`.
    #[default]
    None,
    /// The tanh approximation ([`Tensor::gelu_tanh`]), PyTorch's `'tanh'`.
    Tanh,
}

/// GELU as a module: exact by default, `Gelu::tanh()` for the approximation.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("mlp");
/// let mut rng = Rng::seed(0);
/// let mlp = nn::Sequential::new()
///     .add(nn::Linear::new(&g, "fc1", 4, 16, &mut rng))
///     .add(nn::Gelu::default())
///     .add(nn::Linear::new(&g, "fc2", 16, 2, &mut rng))
///     .add(nn::Softplus::default());
/// let y = mlp.forward(&g.input("x", DType::F32, [3, 4]));
/// assert_eq!(y.dims(), &[3, 2]);
/// assert!(g.check().is_ok());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gelu {
    /// Exact or tanh-approximated.
    pub approximate: GeluApproximation,
}

impl Gelu {
    /// The exact GELU (the default).
    pub fn new() -> Self {
        Gelu::default()
    }

    /// The tanh approximation.
    pub fn tanh() -> Self {
        Gelu {
            approximate: GeluApproximation::Tanh,
        }
    }
}

impl Module for Gelu {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        match self.approximate {
            GeluApproximation::None => x.gelu(),
            GeluApproximation::Tanh => x.gelu_tanh(),
        }
    }

    fn params(&self) -> Vec<Tensor> {
        Vec::new()
    }
}

/// ELU with the given `alpha` as a module ([`Tensor::elu`]); the default is
/// PyTorch's `alpha = 1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Elu(pub f64);

impl Default for Elu {
    fn default() -> Self {
        Elu(1.0)
    }
}

/// Softplus as a module ([`Tensor::softplus`]); the default is PyTorch's
/// `beta = 1, threshold = 20`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Softplus {
    /// The sharpness: `log(1 + e^(beta x)) / beta`.
    pub beta: f64,
    /// Above `beta x > threshold` the result is `x` itself.
    pub threshold: f64,
}

impl Default for Softplus {
    fn default() -> Self {
        Softplus {
            beta: 1.0,
            threshold: 20.0,
        }
    }
}

/// Leaky ReLU with the given negative slope, as a module.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyRelu(pub f64);

/// Softmax along an axis, as a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Softmax(pub isize);

/// Log-softmax along an axis, as a module ([`Tensor::log_softmax`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogSoftmax(pub isize);

parameterless_modules! {
    Flatten => flatten(0);
    LeakyRelu => leaky_relu(0);
    Softmax => softmax(0);
    LogSoftmax => log_softmax(0);
    Elu => elu(0);
    Softplus => softplus(beta, threshold);
}
