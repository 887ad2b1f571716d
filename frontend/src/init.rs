//! Parameter initializers, with PyTorch's formulas and fan conventions.

use kiln_ir::{HostTensor, Shape};

use crate::rng::Rng;

/// How to fill a new parameter. Fans are computed by [`fans`] from the parameter's
/// shape, as PyTorch does.
///
/// ```
/// use kiln_frontend::{Init, Rng};
///
/// let mut rng = Rng::seed(1);
/// let w = Init::kaiming_uniform_relu().sample([64, 100], &mut rng);
/// let bound = (2.0f32).sqrt() * (3.0f32 / 100.0).sqrt();
/// assert!(w.as_f32().unwrap().iter().all(|x| x.abs() <= bound));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// `U(-b, b)` with `b = gain * sqrt(3 / fan_in)` (He et al.). `gain` is `sqrt(2)`
    /// for ReLU layers; PyTorch's default `Linear`/`Conv2d` weight init is
    /// `gain = sqrt(1/3)`, i.e. `b = 1 / sqrt(fan_in)`.
    KaimingUniform {
        /// The activation's gain.
        gain: f32,
    },
    /// `N(0, std²)` with `std = gain / sqrt(fan_in)`.
    KaimingNormal {
        /// The activation's gain.
        gain: f32,
    },
    /// `U(-b, b)` with `b = sqrt(6 / (fan_in + fan_out))` (Glorot and Bengio).
    XavierUniform,
    /// `N(0, std²)` with `std = sqrt(2 / (fan_in + fan_out))`.
    XavierNormal,
    /// `U(lo, hi)`.
    Uniform {
        /// Lower bound (inclusive).
        lo: f32,
        /// Upper bound (exclusive).
        hi: f32,
    },
    /// `N(mean, std²)`.
    Normal {
        /// Mean.
        mean: f32,
        /// Standard deviation.
        std: f32,
    },
    /// All zeros.
    Zeros,
    /// Every element equal to the value.
    Constant(f32),
}

/// `(fan_in, fan_out)` of a parameter of `shape`, as PyTorch computes them: for a
/// `[out, in, k...]` weight (linear `[out, in]`, conv `[O, C, KH, KW]`),
/// `fan_in = in * prod(k)` and `fan_out = out * prod(k)`. A rank-1 `[n]` tensor has
/// both fans `n`, and a scalar both 1 (PyTorch rejects these; biases use explicit
/// bounds instead).
pub fn fans(shape: &Shape) -> (usize, usize) {
    match shape.dims() {
        [] => (1, 1),
        [n] => (*n, *n),
        [out, inp, rest @ ..] => {
            let receptive: usize = rest.iter().product();
            (inp * receptive, out * receptive)
        }
    }
}

impl Init {
    /// Kaiming uniform for layers followed by ReLU (`gain = sqrt(2)`).
    pub fn kaiming_uniform_relu() -> Init {
        Init::KaimingUniform {
            gain: std::f32::consts::SQRT_2,
        }
    }

    /// PyTorch's default weight init for `Linear` and `Conv2d`
    /// (`kaiming_uniform_(a=sqrt(5))`): `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
    pub fn torch_default() -> Init {
        Init::KaimingUniform {
            gain: (1.0f32 / 3.0).sqrt(),
        }
    }

    /// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`: PyTorch's default bias init for a layer
    /// whose weight has fan-in `fan_in`.
    pub fn bias_default(fan_in: usize) -> Init {
        let b = 1.0 / (fan_in.max(1) as f32).sqrt();
        Init::Uniform { lo: -b, hi: b }
    }

    /// An f32 tensor of `shape` drawn from this distribution.
    pub fn sample(&self, shape: impl Into<Shape>, rng: &mut Rng) -> HostTensor {
        let shape = shape.into();
        let (fan_in, fan_out) = fans(&shape);
        let (fan_in, fan_out) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
        let n = shape.numel();
        let uniform = |rng: &mut Rng, b: f64| -> Vec<f32> {
            (0..n).map(|_| rng.uniform_f64(-b, b) as f32).collect()
        };
        let normal = |rng: &mut Rng, mean: f64, std: f64| -> Vec<f32> {
            (0..n).map(|_| rng.normal_f64(mean, std) as f32).collect()
        };
        let data = match *self {
            Init::KaimingUniform { gain } => uniform(rng, gain as f64 * (3.0 / fan_in).sqrt()),
            Init::KaimingNormal { gain } => normal(rng, 0.0, gain as f64 / fan_in.sqrt()),
            Init::XavierUniform => uniform(rng, (6.0 / (fan_in + fan_out)).sqrt()),
            Init::XavierNormal => normal(rng, 0.0, (2.0 / (fan_in + fan_out)).sqrt()),
            Init::Uniform { lo, hi } => (0..n).map(|_| rng.uniform(lo, hi)).collect(),
            Init::Normal { mean, std } => normal(rng, mean as f64, std as f64),
            Init::Zeros => vec![0.0; n],
            Init::Constant(c) => vec![c; n],
        };
        HostTensor::from_f32(shape, data).expect("one value per element")
    }
}
