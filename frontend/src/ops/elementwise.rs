//! Elementwise ops: unary math, binary arithmetic, comparisons, select, cast, and the
//! NumPy broadcasting that lines their operands up.

use kiln_ir::{BinaryOp, CmpOp, DType, Op, Shape, TypeError, UnaryOp};

use crate::Tensor;
use crate::ctx::{Ctx, enter};
use crate::shapes::broadcast_shapes;
use crate::tensor::Operand;

/// Applies an elementwise `op` to `operands` (tensors and scalars), broadcasting them
/// to a common shape. With `has_cond`, operand 0 is a bool condition and the dtype of
/// the rest is the value dtype (`select`).
#[track_caller]
pub(crate) fn elementwise(
    name: &'static str,
    op: Op,
    operands: &[Operand],
    has_cond: bool,
) -> Tensor {
    let tensors: Vec<&Tensor> = operands
        .iter()
        .filter_map(|o| match o {
            Operand::Tensor(t) => Some(*t),
            Operand::Scalar(_) => None,
        })
        .collect();
    let cx = match Ctx::new(name, &tensors) {
        Ok(cx) => cx,
        Err(poisoned) => return poisoned,
    };
    // Value dtype: the first tensor among the value operands (f32 if all are scalars).
    let first_value = usize::from(has_cond);
    let mut dtype = None;
    let mut shape = Shape::scalar();
    let mut ti = 0; // index into cx.types()
    for (i, o) in operands.iter().enumerate() {
        let Operand::Tensor(_) = o else { continue };
        let t = cx.ty(ti).clone();
        ti += 1;
        if has_cond && i == 0 {
            if t.dtype != DType::Bool {
                return cx.fail(TypeError::DType {
                    index: 0,
                    got: t,
                    expected: "the condition must be bool".into(),
                });
            }
        } else if i >= first_value {
            match dtype {
                None => dtype = Some(t.dtype),
                Some(d) if d != t.dtype => {
                    return cx.fail(TypeError::DType {
                        index: i,
                        got: t,
                        expected: format!("must match the other operand's dtype {d} (cast first)"),
                    });
                }
                Some(_) => {}
            }
        }
        shape = match broadcast_shapes(&shape, &t.shape) {
            Some(s) => s,
            None => {
                return cx.fail(TypeError::Shape(format!(
                    "shapes {shape} and {} do not broadcast together",
                    t.shape
                )));
            }
        };
    }
    let dtype = dtype.unwrap_or(DType::F32);
    let cx = cx.placeholder(kiln_ir::TensorType::new(dtype, shape.clone()));
    cx.emit(|e, ids| {
        let mut ids = ids.iter();
        let mut nodes = Vec::with_capacity(operands.len());
        for o in operands {
            nodes.push(match o {
                Operand::Tensor(_) => {
                    let id = *ids.next().expect("one id per tensor operand");
                    e.broadcast(id, &shape)?
                }
                Operand::Scalar(v) => e.splat(*v, dtype, &shape)?,
            });
        }
        e.op(op, &nodes)
    })
}

/// `cond ? on_true : on_false` elementwise, broadcasting all three (NumPy's `where`).
/// The same as [`Tensor::where_cond`].
#[track_caller]
pub fn select<'a, 'b>(
    cond: &Tensor,
    on_true: impl Into<Operand<'a>>,
    on_false: impl Into<Operand<'b>>,
) -> Tensor {
    cond.where_cond(on_true, on_false)
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $method:ident => $kind:expr;)*) => {
        $(
            $(#[$doc])*
            #[track_caller]
            pub fn $method(&self) -> Tensor {
                self.unary(stringify!($method), $kind)
            }
        )*
    };
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $method:ident => $op:expr;)*) => {
        $(
            $(#[$doc])*
            #[track_caller]
            pub fn $method<'a>(&self, rhs: impl Into<Operand<'a>>) -> Tensor {
                elementwise(stringify!($method), $op, &[Operand::Tensor(self), rhs.into()], false)
            }
        )*
    };
}

impl Tensor {
    #[track_caller]
    fn unary(&self, name: &'static str, k: UnaryOp) -> Tensor {
        let cx = enter!(name, self);
        cx.emit(|e, x| e.unary(k, x[0]))
    }

    unary_methods! {
        /// `-x`.
        neg => UnaryOp::Neg;
        /// `e^x`.
        exp => UnaryOp::Exp;
        /// Natural logarithm.
        log => UnaryOp::Log;
        /// Square root.
        sqrt => UnaryOp::Sqrt;
        /// `1 / sqrt(x)`.
        rsqrt => UnaryOp::Rsqrt;
        /// Hyperbolic tangent.
        tanh => UnaryOp::Tanh;
        /// The error function `2/sqrt(pi) ∫₀ˣ e^(-t²) dt`.
        erf => UnaryOp::Erf;
        /// `1 / (1 + e^-x)`.
        sigmoid => UnaryOp::Sigmoid;
        /// `max(x, 0)`.
        relu => UnaryOp::Relu;
        /// `|x|`.
        abs => UnaryOp::Abs;
        /// `1 / x`.
        recip => UnaryOp::Recip;
        /// -1, 0 or 1 by the sign of `x`.
        sign => UnaryOp::Sign;
    }

    /// `x` where `x > 0`, else `slope * x`.
    #[track_caller]
    pub fn leaky_relu(&self, slope: f64) -> Tensor {
        self.unary("leaky_relu", UnaryOp::LeakyRelu(slope))
    }

    /// The same values, but a constant for autodiff: no gradient flows through
    /// (PyTorch's `detach`, JAX's `stop_gradient`).
    #[track_caller]
    pub fn detach(&self) -> Tensor {
        let cx = enter!("detach", self);
        cx.emit(|e, x| e.op(Op::StopGradient, &[x[0]]))
    }

    /// The elementwise sum of this tensor over the processes of a data-parallel
    /// group (`all_reduce` with sum, as `torch.distributed.all_reduce`); the
    /// group is the one the compiled program runs with, and a single process
    /// returns the tensor unchanged. Floats only.
    #[track_caller]
    pub fn all_reduce(&self) -> Tensor {
        let cx = enter!("all_reduce", self);
        cx.emit(|e, x| e.op(Op::AllReduce, &[x[0]]))
    }

    /// `x * x`.
    #[track_caller]
    pub fn square(&self) -> Tensor {
        let cx = enter!("square", self);
        cx.emit(|e, x| e.binary(BinaryOp::Mul, x[0], x[0]))
    }

    binary_methods! {
        /// `self + rhs`, broadcasting (also the `+` operator).
        add => Op::Binary(BinaryOp::Add);
        /// `self - rhs`, broadcasting (also the `-` operator).
        sub => Op::Binary(BinaryOp::Sub);
        /// `self * rhs` elementwise, broadcasting (also the `*` operator).
        mul => Op::Binary(BinaryOp::Mul);
        /// `self / rhs`, broadcasting (also the `/` operator); integers truncate.
        div => Op::Binary(BinaryOp::Div);
        /// Elementwise maximum, broadcasting: `x.maximum(0.0)` is `relu`.
        maximum => Op::Binary(BinaryOp::Max);
        /// Elementwise minimum, broadcasting.
        minimum => Op::Binary(BinaryOp::Min);
        /// `self ^ rhs` elementwise, broadcasting (floats only).
        pow => Op::Binary(BinaryOp::Pow);
        /// `self < rhs` as a bool mask, broadcasting.
        lt => Op::Compare(CmpOp::Lt);
        /// `self <= rhs` as a bool mask, broadcasting.
        le => Op::Compare(CmpOp::Le);
        /// `self > rhs` as a bool mask, broadcasting.
        gt => Op::Compare(CmpOp::Gt);
        /// `self >= rhs` as a bool mask, broadcasting.
        ge => Op::Compare(CmpOp::Ge);
        /// `self == rhs` as a bool mask, broadcasting.
        eq => Op::Compare(CmpOp::Eq);
        /// `self != rhs` as a bool mask, broadcasting.
        ne => Op::Compare(CmpOp::Ne);
    }

    /// `rhs - self` with a scalar on the left (what `1.0 - &x` calls).
    #[track_caller]
    pub(crate) fn binary_scalar_lhs(&self, name: &'static str, k: BinaryOp, lhs: f64) -> Tensor {
        elementwise(
            name,
            Op::Binary(k),
            &[Operand::Scalar(lhs), Operand::Tensor(self)],
            false,
        )
    }

    /// `x` limited to `[min, max]` (`maximum` then `minimum`).
    #[track_caller]
    pub fn clamp<'a, 'b>(
        &self,
        min: impl Into<Operand<'a>>,
        max: impl Into<Operand<'b>>,
    ) -> Tensor {
        self.maximum(min).minimum(max)
    }

    /// Selects `on_true` where this bool mask is true and `on_false` elsewhere,
    /// broadcasting all three: `mask.where_cond(&x, 0.0)`.
    #[track_caller]
    pub fn where_cond<'a, 'b>(
        &self,
        on_true: impl Into<Operand<'a>>,
        on_false: impl Into<Operand<'b>>,
    ) -> Tensor {
        elementwise(
            "where_cond",
            Op::Select,
            &[Operand::Tensor(self), on_true.into(), on_false.into()],
            true,
        )
    }

    /// This tensor broadcast NumPy-style to `shape` (no node if already that shape).
    #[track_caller]
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        let cx =
            enter!("broadcast_to", self; kiln_ir::TensorType::new(self.dtype(), shape.clone()));
        cx.emit(|e, x| e.broadcast(x[0], &shape))
    }

    /// This tensor broadcast to the shape of `other`.
    #[track_caller]
    pub fn broadcast_as(&self, other: &Tensor) -> Tensor {
        self.broadcast_to(other.shape().clone())
    }

    /// The elements converted to `dtype` (`as` semantics; bool is 0/1). No node if
    /// the dtype is already `dtype`.
    #[track_caller]
    pub fn cast(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype() {
            return self.clone();
        }
        let cx = enter!("cast", self);
        cx.emit(|e, x| e.op(Op::Cast(dtype), &[x[0]]))
    }

    /// Alias of [`Tensor::cast`].
    #[track_caller]
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        self.cast(dtype)
    }
}
