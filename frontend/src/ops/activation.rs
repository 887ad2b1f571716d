//! Activation functions that are DSL composites of elementwise IR ops: GELU (exact
//! and tanh-approximated), ELU, SiLU and softplus, with PyTorch's definitions and
//! defaults. (`relu`, `leaky_relu`, `sigmoid`, `tanh` are IR ops; `softmax` and
//! `log_softmax` are in the reductions.)

use crate::Tensor;

/// `sqrt(2 / pi)`, the scale inside the tanh approximation of GELU.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

impl Tensor {
    /// The Gaussian error linear unit `x · Φ(x) = x (1 + erf(x / sqrt 2)) / 2`, with
    /// `Φ` the standard normal CDF: PyTorch's `gelu(x)` (`approximate='none'`).
    ///
    /// ```
    /// use kiln_frontend::prelude::*;
    ///
    /// let g = GraphBuilder::new("act");
    /// let y = g.input("x", DType::F64, [2]).gelu();
    /// let model = g.build(&[&y]).unwrap();
    /// let x = HostTensor::from_f64([2], vec![1.0, -1.0]).unwrap();
    /// let out = kiln_ir::interp::run(&model.graph, &model.call_args(&[("x", &x)]).unwrap())
    ///     .unwrap();
    /// assert!((out[0].get_f64(0) - 0.841_344_746_068_542_9).abs() < 1e-14);
    /// assert!((out[0].get_f64(1) + 0.158_655_253_931_457_05).abs() < 1e-14);
    /// ```
    #[track_caller]
    pub fn gelu(&self) -> Tensor {
        let cdf = self
            .mul(std::f64::consts::FRAC_1_SQRT_2)
            .erf()
            .add(1.0)
            .mul(0.5);
        self * cdf
    }

    /// GELU's tanh approximation `x (1 + tanh(sqrt(2/pi) (x + 0.044715 x³))) / 2`:
    /// PyTorch's `gelu(x, approximate='tanh')`.
    #[track_caller]
    pub fn gelu_tanh(&self) -> Tensor {
        let inner = (self + (self.square() * self).mul(0.044_715)).mul(SQRT_2_OVER_PI);
        (self * inner.tanh().add(1.0)).mul(0.5)
    }

    /// The exponential linear unit: `x` where `x > 0`, else `alpha (e^x - 1)`
    /// (PyTorch's `elu`, whose default `alpha` is 1). The exponential is taken of
    /// `min(x, 0)`, so large positive inputs neither overflow nor poison the
    /// gradient.
    #[track_caller]
    pub fn elu(&self, alpha: f64) -> Tensor {
        let neg = self.minimum(0.0).exp().sub(1.0).mul(alpha);
        self.gt(0.0).where_cond(self, &neg)
    }

    /// The sigmoid linear unit (swish) `x · sigmoid(x)`: PyTorch's `silu`.
    #[track_caller]
    pub fn silu(&self) -> Tensor {
        self * self.sigmoid()
    }

    /// `log(1 + e^(beta x)) / beta`, reverting to `x` where `beta x > threshold`
    /// (PyTorch's `softplus(x, beta=1, threshold=20)`). Computed as
    /// `(max(z, 0) + log(1 + e^-|z|)) / beta` with `z = beta x`, which never
    /// overflows; for `z` below about -37 (f64) or -17 (f32) `1 + e^-|z|` rounds to
    /// 1 and the result is 0 where the exact value is the tiny `e^z / beta`.
    #[track_caller]
    pub fn softplus(&self, beta: f64, threshold: f64) -> Tensor {
        let z = self.mul(beta);
        let soft = (z.maximum(0.0) + (-z.abs()).exp().add(1.0).log()).div(beta);
        z.gt(threshold).where_cond(self, &soft)
    }
}
