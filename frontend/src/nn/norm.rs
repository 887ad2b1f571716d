//! Normalization and dropout. Batch normalization (running statistics kept as
//! buffers) and dropout (a fresh mask every step) behave differently in training
//! and evaluation: which behaviour a graph gets is the builder's mode at the call
//! ([`GraphBuilder::training`]), as a PyTorch module's `train()` / `eval()`. Layer
//! normalization behaves the same in both.

use kiln_ir::{DType, HostTensor};

use super::Module;
use crate::{GraphBuilder, Tensor};

/// A normalization's learned `{name}.weight` (ones) and `{name}.bias` (zeros).
#[track_caller]
fn scale_and_shift(g: &GraphBuilder, name: &str, shape: &[usize]) -> (Tensor, Tensor) {
    let full = |v| HostTensor::full(DType::F32, shape.to_vec(), v);
    (
        g.param(&format!("{name}.weight"), full(1.0)),
        g.param(&format!("{name}.bias"), full(0.0)),
    )
}

/// The weight and bias, if any, as a parameter list.
fn affine_params(affine: &Option<(Tensor, Tensor)>) -> Vec<Tensor> {
    affine
        .iter()
        .flat_map(|(w, b)| [w.clone(), b.clone()])
        .collect()
}

/// Options of [`BatchNorm`], PyTorch's defaults.
#[derive(Clone, Debug)]
pub struct BatchNormConfig {
    /// Channels (axis 1 of the input).
    pub num_features: usize,
    /// Added to the variance (default 1e-5).
    pub eps: f64,
    /// Weight of the new batch in the running statistics (default 0.1).
    pub momentum: f64,
    /// A learned scale and shift per channel (default true).
    pub affine: bool,
}

impl BatchNormConfig {
    /// The defaults for `num_features` channels.
    pub fn new(num_features: usize) -> Self {
        BatchNormConfig {
            num_features,
            eps: 1e-5,
            momentum: 0.1,
            affine: true,
        }
    }

    /// With another `eps`.
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// With another momentum.
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// With or without the learned scale and shift.
    pub fn with_affine(mut self, affine: bool) -> Self {
        self.affine = affine;
        self
    }

    /// Declares `{name}.weight` (ones) and `{name}.bias` (zeros) if affine, and the
    /// buffers `{name}.running_mean` (zeros) and `{name}.running_var` (ones), as
    /// PyTorch names them.
    #[track_caller]
    pub fn init(&self, g: &GraphBuilder, name: &str) -> BatchNorm {
        let c = self.num_features;
        let affine = self.affine.then(|| scale_and_shift(g, name, &[c]));
        let mean_name = format!("{name}.running_mean");
        let var_name = format!("{name}.running_var");
        BatchNorm {
            running_mean: g.buffer(&mean_name, HostTensor::full(DType::F32, [c], 0.0)),
            running_var: g.buffer(&var_name, HostTensor::full(DType::F32, [c], 1.0)),
            affine,
            names: (mean_name, var_name),
            eps: self.eps,
            momentum: self.momentum,
        }
    }
}

/// Batch normalization over axis 1 (channels) of `[N, C]`, `[N, C, L]`
/// (PyTorch's `BatchNorm1d`) or `[N, C, H, W]` (`BatchNorm2d`).
///
/// Training: each channel is normalized with the batch's mean and biased
/// variance, and the running statistics move towards the batch's (the variance
/// unbiased): `running = (1 - momentum) running + momentum batch`. Evaluation: the
/// running statistics normalize. Then `y = x̂ · weight + bias` if affine.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("bn");
/// let x = g.input("x", DType::F32, [8, 3]);
/// let bn = nn::BatchNormConfig::new(3).init(&g, "bn");
/// let y = bn.forward(&x);
/// // A training step stores the new running statistics after each step.
/// assert_eq!(g.buffer_updates().len(), 2);
/// assert_eq!(y.dims(), &[8, 3]);
/// ```
#[derive(Clone, Debug)]
pub struct BatchNorm {
    /// The running mean `[C]` (a buffer).
    pub running_mean: Tensor,
    /// The running variance `[C]` (a buffer).
    pub running_var: Tensor,
    /// `(weight, bias)` if affine.
    pub affine: Option<(Tensor, Tensor)>,
    names: (String, String),
    eps: f64,
    momentum: f64,
}

/// PyTorch's name for [`BatchNorm`] over `[N, C]` or `[N, C, L]`.
pub type BatchNorm1d = BatchNorm;
/// PyTorch's name for [`BatchNorm`] over `[N, C, H, W]`.
pub type BatchNorm2d = BatchNorm;

impl BatchNorm {
    /// The per-channel `[C]` value `v` shaped to broadcast against `x`.
    fn per_channel(v: &Tensor, x: &Tensor) -> Tensor {
        let mut dims = vec![1; x.dims().len()];
        dims[1] = v.dims()[0];
        v.reshape(dims)
    }
}

impl Module for BatchNorm {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let g = x.builder();
        let rank = x.dims().len();
        let axes: Vec<isize> = (0..rank as isize).filter(|&a| a != 1).collect();
        let (mean, var) = if g.training() {
            let mean = x.mean(&axes, false);
            let centered = x - &Self::per_channel(&mean, x);
            let var = centered.square().mean(&axes, false);
            // The running variance is the unbiased one (n / (n - 1)).
            let n: usize = (0..rank).filter(|&a| a != 1).map(|a| x.dims()[a]).product();
            let unbias = n as f64 / (n.max(2) - 1) as f64;
            let m = self.momentum as f32;
            let new_mean = &self.running_mean * (1.0 - m) + &mean * m;
            let new_var = &self.running_var * (1.0 - m) + &var * (m * unbias as f32);
            g.update_buffer(&self.names.0, &new_mean.detach());
            g.update_buffer(&self.names.1, &new_var.detach());
            (mean, var)
        } else {
            (self.running_mean.clone(), self.running_var.clone())
        };
        let inv = (var + self.eps as f32).rsqrt();
        let y = (x - &Self::per_channel(&mean, x)) * Self::per_channel(&inv, x);
        match &self.affine {
            Some((w, b)) => y * Self::per_channel(w, x) + Self::per_channel(b, x),
            None => y,
        }
    }

    fn params(&self) -> Vec<Tensor> {
        affine_params(&self.affine)
    }
}

/// Layer normalization over the last `normalized_shape.len()` axes (PyTorch's
/// `nn.LayerNorm`): `(x - mean) / sqrt(var + eps)` with the biased variance of each
/// sample's normalized axes, then `· weight + bias` (`{name}.weight` ones,
/// `{name}.bias` zeros, of `normalized_shape`) if `elementwise_affine`.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("ln");
/// let x = g.input("x", DType::F32, [4, 10]);
/// let ln = nn::LayerNorm::new(&g, "ln", &[10]);
/// assert_eq!(ln.forward(&x).dims(), &[4, 10]);
/// ```
#[derive(Clone, Debug)]
pub struct LayerNorm {
    /// `(weight, bias)` if affine.
    pub affine: Option<(Tensor, Tensor)>,
    /// How many trailing axes are normalized.
    axes: usize,
    eps: f64,
}

impl LayerNorm {
    /// Over the trailing axes `normalized_shape`, eps 1e-5, with the affine
    /// parameters.
    #[track_caller]
    pub fn new(g: &GraphBuilder, name: &str, normalized_shape: &[usize]) -> LayerNorm {
        Self::with_options(g, name, normalized_shape, 1e-5, true)
    }

    /// With another `eps`, and with or without the affine parameters.
    #[track_caller]
    pub fn with_options(
        g: &GraphBuilder,
        name: &str,
        normalized_shape: &[usize],
        eps: f64,
        elementwise_affine: bool,
    ) -> LayerNorm {
        let affine = elementwise_affine.then(|| scale_and_shift(g, name, normalized_shape));
        LayerNorm {
            affine,
            axes: normalized_shape.len(),
            eps,
        }
    }
}

impl Module for LayerNorm {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let rank = x.dims().len() as isize;
        let axes: Vec<isize> = (rank - self.axes as isize..rank).collect();
        let mean = x.mean(&axes, true);
        let centered = x - &mean;
        let var = centered.square().mean(&axes, true);
        let y = centered * (var + self.eps as f32).rsqrt();
        match &self.affine {
            Some((w, b)) => y * w + b,
            None => y,
        }
    }

    fn params(&self) -> Vec<Tensor> {
        affine_params(&self.affine)
    }
}

/// Inverted dropout (PyTorch's `nn.Dropout`): in training, each element is zeroed
/// with probability `p` and the others scaled by `1 / (1 - p)`; in evaluation, the
/// identity. The mask comes from the counter-based generator with the graph's step
/// seed (a buffer that every training step advances, so each step draws a new mask
/// without recompiling) and a stream of the layer's own.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("drop");
/// let x = g.input("x", DType::F32, [4, 5]);
/// let y = nn::Dropout::new(&g, 0.5).forward(&x);
/// assert_eq!(y.dims(), &[4, 5]);
/// ```
#[derive(Clone, Debug)]
pub struct Dropout {
    /// The probability of zeroing an element.
    pub p: f64,
    /// The step seed and the layer's stream, in training mode.
    stream: Option<(Tensor, u32)>,
}

impl Dropout {
    /// A dropout layer of `g` with drop probability `p` (in `[0, 1]`).
    pub fn new(g: &GraphBuilder, p: f64) -> Self {
        Dropout {
            p,
            stream: g.training().then(|| g.random_stream()),
        }
    }
}

impl Module for Dropout {
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        match &self.stream {
            Some((seed, salt)) => x.dropout(self.p, seed, *salt),
            None => x.clone(),
        }
    }

    fn params(&self) -> Vec<Tensor> {
        Vec::new()
    }
}
