//! Counter-based randomness in the graph: uniform noise and dropout.

use kiln_ir::{BinaryOp, CmpOp, DType, Op, Shape, TensorType, TypeError};

use crate::Tensor;
use crate::ctx::enter;

fn seed_ok(seed: &TensorType) -> Result<(), TypeError> {
    if seed.dtype == DType::I32 && seed.shape.rank() == 0 {
        Ok(())
    } else {
        Err(TypeError::DType {
            index: 1,
            got: seed.clone(),
            expected: "the seed must be an i32 scalar".into(),
        })
    }
}

impl Tensor {
    /// Uniform f32 values in `[0, 1)` of `shape`, a deterministic function of the
    /// i32 scalar `seed` (usually an input, so each step can feed a new one) and
    /// `salt` (distinct salts give independent streams from one seed).
    #[track_caller]
    pub fn random_uniform(seed: &Tensor, shape: impl Into<Shape>, salt: u32) -> Tensor {
        Tensor::random_uniform_dtype(seed, shape, DType::F32, salt)
    }

    /// [`Tensor::random_uniform`] producing the float type `dtype`.
    #[track_caller]
    pub fn random_uniform_dtype(
        seed: &Tensor,
        shape: impl Into<Shape>,
        dtype: DType,
        salt: u32,
    ) -> Tensor {
        let shape = shape.into();
        let cx = enter!("random_uniform", seed; TensorType::new(dtype, shape.clone()));
        cx.emit(|e, x| e.op(Op::RandomUniform { shape, dtype, salt }, x))
    }

    /// Uniform values in `[0, 1)` with this tensor's shape and (float) dtype.
    #[track_caller]
    pub fn rand_like(&self, seed: &Tensor, salt: u32) -> Tensor {
        Tensor::random_uniform_dtype(seed, self.shape().clone(), self.dtype(), salt)
    }

    /// Inverted dropout: each element is zeroed with probability `p` and the others
    /// are scaled by `1 / (1 - p)`, so the expectation is unchanged. The mask is
    /// `random_uniform(seed, salt) >= p`; give each dropout layer its own `salt`.
    /// `p = 0` is the identity and `p = 1` gives zeros.
    #[track_caller]
    pub fn dropout(&self, p: f64, seed: &Tensor, salt: u32) -> Tensor {
        let cx = enter!("dropout", self, seed);
        if !(0.0..=1.0).contains(&p) {
            return cx.fail(TypeError::Attr(format!(
                "dropout probability must be in [0, 1], got {p}"
            )));
        }
        if let Err(p) = cx.check(|t| {
            seed_ok(&t[1])?;
            if t[0].dtype.is_float() {
                Ok(())
            } else {
                Err(TypeError::DType {
                    index: 0,
                    got: t[0].clone(),
                    expected: "a float type is required".into(),
                })
            }
        }) {
            return p;
        }
        let (shape, dtype) = (self.shape().clone(), self.dtype());
        cx.emit(|e, x| {
            if p == 0.0 {
                return Ok(x[0]);
            }
            if p == 1.0 {
                return e.splat(0.0, dtype, &shape);
            }
            let u = e.op(
                Op::RandomUniform {
                    shape: shape.clone(),
                    dtype,
                    salt,
                },
                &[x[1]],
            )?;
            let threshold = e.splat(p, dtype, &shape)?;
            let keep = e.op(Op::Compare(CmpOp::Ge), &[u, threshold])?;
            let scale = e.splat(1.0 / (1.0 - p), dtype, &shape)?;
            let scaled = e.binary(BinaryOp::Mul, x[0], scale)?;
            let zero = e.splat(0.0, dtype, &shape)?;
            e.op(Op::Select, &[keep, scaled, zero])
        })
    }
}
