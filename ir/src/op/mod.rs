//! The operation set, grouped in families so each stage handles a family with one
//! match arm; the op table ([`OpKind`], in `kind.rs`) holds every per-kind decision
//! (mnemonic, class, work, finiteness, a sample), and [`Op::visit_attrs`] defines
//! each op's attributes once for printing and parsing.
//!
//! Conventions shared by every stage:
//! - Elementwise, comparison and select operands have *identical* types; broadcasting
//!   is always an explicit [`Op::Broadcast`] node (the DSL inserts them).
//! - Images are NCHW; convolution weights are OIHW (`conv_transpose2d` takes IOHW,
//!   as PyTorch's `ConvTranspose2d` does).
//! - Attributes hold plain integers and `f64`s so that one `Op` value describes an
//!   f32 and an f64 graph alike.

mod attrs;
mod kind;

use std::fmt;

use crate::{DType, HostTensor, Shape};

use attrs::{Assign, AttrVisitor, Collect};
pub use attrs::{AttrError, AttrValue};
pub use kind::{Domain, Finiteness, OpClass, OpKind, Work};

/// Elementwise operations with one operand.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    /// `1 / sqrt(x)`.
    Rsqrt,
    Tanh,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `max(x, 0)`.
    Relu,
    Abs,
    /// `1 / x`.
    Recip,
    /// -1, 0 or 1 (0 for NaN is not promised: NaN stays NaN).
    Sign,
    /// `x` if `x > 0`, else `slope * x`.
    LeakyRelu(f64),
}

impl UnaryOp {
    /// Every kind, with a representative slope for `LeakyRelu` (for tables and tests).
    pub const ALL: [UnaryOp; 12] = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Relu,
        UnaryOp::Abs,
        UnaryOp::Recip,
        UnaryOp::Sign,
        UnaryOp::LeakyRelu(0.01),
    ];

    /// The op kind (its row in the op table), which gives the mnemonic.
    pub fn kind(self) -> OpKind {
        match self {
            UnaryOp::Neg => OpKind::Neg,
            UnaryOp::Exp => OpKind::Exp,
            UnaryOp::Log => OpKind::Log,
            UnaryOp::Sqrt => OpKind::Sqrt,
            UnaryOp::Rsqrt => OpKind::Rsqrt,
            UnaryOp::Tanh => OpKind::Tanh,
            UnaryOp::Sigmoid => OpKind::Sigmoid,
            UnaryOp::Relu => OpKind::Relu,
            UnaryOp::Abs => OpKind::Abs,
            UnaryOp::Recip => OpKind::Recip,
            UnaryOp::Sign => OpKind::Sign,
            UnaryOp::LeakyRelu(_) => OpKind::LeakyRelu,
        }
    }

    /// The text-format mnemonic.
    pub fn name(self) -> &'static str {
        self.kind().mnemonic()
    }

    /// True if the op is also defined on integers (otherwise floats only).
    pub fn accepts_integers(self) -> bool {
        match self {
            UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Relu | UnaryOp::Sign => true,
            UnaryOp::Exp
            | UnaryOp::Log
            | UnaryOp::Sqrt
            | UnaryOp::Rsqrt
            | UnaryOp::Tanh
            | UnaryOp::Sigmoid
            | UnaryOp::Recip
            | UnaryOp::LeakyRelu(_) => false,
        }
    }
}

/// Elementwise operations with two operands of identical type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    /// Float division; integer division truncates toward zero.
    Div,
    Max,
    Min,
    /// `a ^ b`, floats only.
    Pow,
}

impl BinaryOp {
    pub const ALL: [BinaryOp; 7] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Pow,
    ];

    /// The op kind (its row in the op table), which gives the mnemonic.
    pub fn kind(self) -> OpKind {
        match self {
            BinaryOp::Add => OpKind::Add,
            BinaryOp::Sub => OpKind::Sub,
            BinaryOp::Mul => OpKind::Mul,
            BinaryOp::Div => OpKind::Div,
            BinaryOp::Max => OpKind::Max,
            BinaryOp::Min => OpKind::Min,
            BinaryOp::Pow => OpKind::Pow,
        }
    }

    /// The text-format mnemonic.
    pub fn name(self) -> &'static str {
        self.kind().mnemonic()
    }
}

/// Elementwise comparisons; the result is a `bool` mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub const ALL: [CmpOp; 6] = [
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ];

    /// The op kind (its row in the op table), which gives the mnemonic.
    pub fn kind(self) -> OpKind {
        match self {
            CmpOp::Eq => OpKind::Eq,
            CmpOp::Ne => OpKind::Ne,
            CmpOp::Lt => OpKind::Lt,
            CmpOp::Le => OpKind::Le,
            CmpOp::Gt => OpKind::Gt,
            CmpOp::Ge => OpKind::Ge,
        }
    }

    /// The text-format mnemonic.
    pub fn name(self) -> &'static str {
        self.kind().mnemonic()
    }
}

/// Reductions over a set of axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
}

impl ReduceOp {
    pub const ALL: [ReduceOp; 4] = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min];

    /// The op kind (its row in the op table), which gives the mnemonic.
    pub fn kind(self) -> OpKind {
        match self {
            ReduceOp::Sum => OpKind::ReduceSum,
            ReduceOp::Mean => OpKind::ReduceMean,
            ReduceOp::Max => OpKind::ReduceMax,
            ReduceOp::Min => OpKind::ReduceMin,
        }
    }

    /// The text-format mnemonic (`reduce_sum`, ...).
    pub fn name(self) -> &'static str {
        self.kind().mnemonic()
    }
}

/// 2-D pooling kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// Padding positions count as `-inf`.
    Max,
    /// Divides by the full window area, padding included (PyTorch's
    /// `count_include_pad=True`).
    Avg,
}

/// Geometry of a 2-D convolution (per spatial axis: height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dAttrs {
    pub stride: [usize; 2],
    /// Zero padding added on both sides of each spatial axis.
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl Default for Conv2dAttrs {
    fn default() -> Self {
        Conv2dAttrs {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
        }
    }
}

/// Geometry of a 2-D pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2dAttrs {
    pub kind: PoolKind,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

/// One operation of the graph. Operand order is the edge weight in [`crate::Graph`].
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Data fed by the caller on every call (named by the node).
    Input,
    /// A trainable parameter (named by the node); also fed by the caller.
    Param,
    /// A literal value.
    Const(HostTensor),

    /// `(x)`: elementwise.
    Unary(UnaryOp),
    /// `(a, b)`: elementwise, identical types.
    Binary(BinaryOp),
    /// `(a, b)` -> bool mask of the same shape.
    Compare(CmpOp),
    /// `(cond: bool, a, b)`: `cond ? a : b` elementwise.
    Select,
    /// `(x)` converted to another dtype (`as` semantics; bool is 0/1).
    Cast(DType),
    /// `(x)` unchanged; autodiff treats it as a constant (no gradient flows through),
    /// like JAX's `stop_gradient` or PyTorch's `detach`. Used for the max subtracted
    /// in a stable softmax, whose gradient contributions cancel anyway.
    StopGradient,

    /// `(x)` broadcast NumPy-style to `shape`: dimensions align on the right and each
    /// operand dimension is 1 or equal to the target's.
    Broadcast(Shape),
    /// `(x)` with the same elements in another shape.
    Reshape(Shape),
    /// `(x)` with axes permuted: output axis `i` is input axis `perm[i]`.
    Transpose(Vec<usize>),
    /// `(x)[start..end; step]` per axis.
    Slice {
        start: Vec<usize>,
        end: Vec<usize>,
        step: Vec<usize>,
    },
    /// `(x0, x1, ...)` joined along `axis`.
    Concat { axis: usize },
    /// `(x)` padded with `value`: `low[i]` elements before and `high[i]` after axis `i`.
    Pad {
        low: Vec<usize>,
        high: Vec<usize>,
        value: f64,
    },

    /// `(x)` reduced over `axes` (sorted, distinct); `keepdims` keeps them as size 1.
    Reduce {
        kind: ReduceOp,
        axes: Vec<usize>,
        keepdims: bool,
    },
    /// `(x)` -> i32 index of the first maximum along `axis`.
    ArgMax { axis: usize, keepdims: bool },

    /// `(a: [..., m, k], b: [..., k, n])` -> `[..., m, n]`; batch dims are equal.
    MatMul,
    /// `(x: [N,C,H,W], w: [O,C,KH,KW])` -> `[N,O,OH,OW]` (cross-correlation, as in
    /// every DL framework).
    Conv2d(Conv2dAttrs),
    /// `(y: [N,I,H,W], w: [I,O,KH,KW])` -> `[N,O,OH,OW]`: the adjoint of `conv2d`
    /// w.r.t. its input; `output_padding` adds rows/columns at the bottom/right to
    /// pick among the input sizes a strided convolution maps to the same output.
    ConvTranspose2d {
        conv: Conv2dAttrs,
        output_padding: [usize; 2],
    },
    /// `(x: [N,C,H,W], dy: [N,O,OH,OW])` -> `[O,C,KH,KW]`: the gradient of `conv2d`
    /// w.r.t. its weight.
    Conv2dWeightGrad {
        conv: Conv2dAttrs,
        kernel: [usize; 2],
    },
    /// `(x: [N,C,H,W])` -> `[N,C,OH,OW]`.
    Pool2d(Pool2dAttrs),
    /// `(x: [N,C,H,W], dy: [N,C,OH,OW])` -> `[N,C,H,W]`: the gradient of `Pool2d`
    /// w.r.t. `x` (max pooling routes to the first maximum of each window).
    Pool2dGrad(Pool2dAttrs),

    /// `(table: [V, ...], idx: i32[I...])` -> `[I..., ...]`: rows of `table`
    /// (embedding lookup).
    Gather,
    /// `(idx: i32[I...], updates: [I..., ...])` -> `[rows, ...]`: zeros, then
    /// `out[idx[i]] += updates[i]` (the adjoint of `Gather`).
    ScatterAdd { rows: usize },
    /// `(idx: i32[I...])` -> `[I..., depth]` of `dtype`: 1 at the index, else 0.
    OneHot { depth: usize, dtype: DType },
    /// `(seed: i32[])` -> uniform values in `[0, 1)` of `shape` and float `dtype`.
    /// Counter-based: element `i` is a hash of `(seed, salt, i)`, so the same seed
    /// gives the same values on every backend, and different `salt`s give
    /// independent streams from one seed (one per dropout layer).
    RandomUniform {
        shape: Shape,
        dtype: DType,
        salt: u32,
    },

    /// `(a, b, c)` -> `a * b + c` elementwise with a single rounding (fused
    /// multiply-add); identical float types. Produced by the optimizer's fusion rules.
    Fma,
    /// `(a: [..., m, k], b: [..., k, n], bias: [n])` -> `a @ b + bias`, the bias added
    /// to every row, then `max(_, 0)` if `relu`: a GEMM with its epilogue. Produced by
    /// the optimizer's fusion rules.
    MatMulBias { relu: bool },
}

impl Op {
    /// The op's kind: its row in the op table ([`OpKind`]). The one exhaustive map
    /// from variants to kinds: a new variant does not compile until it has a row.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Input => OpKind::Input,
            Op::Param => OpKind::Param,
            Op::Const(_) => OpKind::Const,
            Op::Unary(k) => k.kind(),
            Op::Binary(k) => k.kind(),
            Op::Compare(k) => k.kind(),
            Op::Select => OpKind::Select,
            Op::Cast(_) => OpKind::Cast,
            Op::StopGradient => OpKind::StopGradient,
            Op::Broadcast(_) => OpKind::Broadcast,
            Op::Reshape(_) => OpKind::Reshape,
            Op::Transpose(_) => OpKind::Transpose,
            Op::Slice { .. } => OpKind::Slice,
            Op::Concat { .. } => OpKind::Concat,
            Op::Pad { .. } => OpKind::Pad,
            Op::Reduce { kind, .. } => kind.kind(),
            Op::ArgMax { .. } => OpKind::ArgMax,
            Op::MatMul => OpKind::MatMul,
            Op::Conv2d(_) => OpKind::Conv2d,
            Op::ConvTranspose2d { .. } => OpKind::ConvTranspose2d,
            Op::Conv2dWeightGrad { .. } => OpKind::Conv2dWeightGrad,
            Op::Pool2d(p) => match p.kind {
                PoolKind::Max => OpKind::MaxPool2d,
                PoolKind::Avg => OpKind::AvgPool2d,
            },
            Op::Pool2dGrad(p) => match p.kind {
                PoolKind::Max => OpKind::MaxPool2dGrad,
                PoolKind::Avg => OpKind::AvgPool2dGrad,
            },
            Op::Gather => OpKind::Gather,
            Op::ScatterAdd { .. } => OpKind::ScatterAdd,
            Op::OneHot { .. } => OpKind::OneHot,
            Op::RandomUniform { .. } => OpKind::RandomUniform,
            Op::Fma => OpKind::Fma,
            Op::MatMulBias { .. } => OpKind::MatMulBias,
        }
    }

    /// The text-format mnemonic of the op.
    pub fn mnemonic(&self) -> &'static str {
        self.kind().mnemonic()
    }

    /// What the compiler does with the op (see [`OpClass`]).
    pub fn class(&self) -> OpClass {
        self.kind().class()
    }

    /// One op of every kind in the op table, with arbitrary attributes. Tests
    /// iterate over it to prove coverage.
    pub fn samples() -> Vec<Op> {
        OpKind::ALL.iter().map(|k| k.sample()).collect()
    }

    /// True for the leaves fed by the caller (`Input` and `Param`).
    pub fn is_argument(&self) -> bool {
        self.class() == OpClass::Argument
    }

    /// True for ops without operands.
    pub fn is_leaf(&self) -> bool {
        matches!(self.class(), OpClass::Argument | OpClass::Literal)
    }

    /// True for ops that compute each output element from the same element of their
    /// operands (the fusible family).
    pub fn is_elementwise(&self) -> bool {
        self.class() == OpClass::Elementwise
    }

    /// The one definition of the op's attributes, in text-format order: printing
    /// ([`Op::attrs`]) and parsing ([`Op::from_syntax`]) both walk it. Leaves have
    /// none (`const` prints its literal instead).
    pub(crate) fn visit_attrs(&mut self, v: &mut dyn AttrVisitor) -> Result<(), AttrError> {
        fn conv(c: &mut Conv2dAttrs, v: &mut dyn AttrVisitor) -> Result<(), AttrError> {
            v.pair("stride", &mut c.stride)?;
            v.pair("padding", &mut c.padding)?;
            v.pair("dilation", &mut c.dilation)
        }
        match self {
            Op::Input | Op::Param | Op::Const(_) => Ok(()),
            Op::Unary(UnaryOp::LeakyRelu(slope)) => v.float("slope", slope),
            Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::StopGradient => Ok(()),
            Op::MatMul | Op::Gather | Op::Fma => Ok(()),
            Op::MatMulBias { relu } => v.bool("relu", relu),
            Op::Cast(to) => v.dtype("to", to),
            Op::Broadcast(s) | Op::Reshape(s) => v.shape("shape", s),
            Op::Transpose(perm) => v.usizes("perm", perm),
            Op::Slice { start, end, step } => {
                v.usizes("start", start)?;
                v.usizes("end", end)?;
                v.usizes("step", step)
            }
            Op::Concat { axis } => v.usize("axis", axis),
            Op::Pad { low, high, value } => {
                v.usizes("low", low)?;
                v.usizes("high", high)?;
                v.float("value", value)
            }
            Op::Reduce { axes, keepdims, .. } => {
                v.usizes("axes", axes)?;
                v.bool("keepdims", keepdims)
            }
            Op::ArgMax { axis, keepdims } => {
                v.usize("axis", axis)?;
                v.bool("keepdims", keepdims)
            }
            Op::Conv2d(c) => conv(c, v),
            Op::ConvTranspose2d {
                conv: c,
                output_padding,
            } => {
                conv(c, v)?;
                v.pair("output_padding", output_padding)
            }
            Op::Conv2dWeightGrad { conv: c, kernel } => {
                conv(c, v)?;
                v.pair("kernel", kernel)
            }
            Op::Pool2d(p) | Op::Pool2dGrad(p) => {
                v.pair("kernel", &mut p.kernel)?;
                v.pair("stride", &mut p.stride)?;
                v.pair("padding", &mut p.padding)
            }
            Op::ScatterAdd { rows } => v.usize("rows", rows),
            Op::OneHot { depth, dtype } => {
                v.usize("depth", depth)?;
                v.dtype("dtype", dtype)
            }
            Op::RandomUniform { shape, dtype, salt } => {
                v.shape("shape", shape)?;
                v.dtype("dtype", dtype)?;
                v.u32("salt", salt)
            }
        }
    }

    /// The attributes of the op, in text-format order. Leaves have none (`const`
    /// prints its literal instead).
    pub fn attrs(&self) -> Vec<(&'static str, AttrValue)> {
        if self.is_leaf() {
            return vec![];
        }
        let mut collect = Collect::default();
        self.clone()
            .visit_attrs(&mut collect)
            .expect("collecting attributes cannot fail");
        collect.0
    }

    /// True if every float attribute is finite (an infinite `leaky_relu` slope or
    /// `pad` value makes finite operands give infinite results).
    pub fn float_attrs_finite(&self) -> bool {
        self.attrs().iter().all(|(_, v)| match v {
            AttrValue::Float(x) => x.is_finite(),
            _ => true,
        })
    }

    /// Builds a non-leaf op from its mnemonic and attributes: the inverse of
    /// [`Op::mnemonic`] and [`Op::attrs`]. Every attribute is required; unknown or
    /// repeated ones are errors.
    pub fn from_syntax(mnemonic: &str, attrs: Vec<(String, AttrValue)>) -> Result<Op, AttrError> {
        let kind = OpKind::from_mnemonic(mnemonic)
            .ok_or_else(|| AttrError::new(mnemonic, "", "unknown op"))?;
        if matches!(kind.class(), OpClass::Argument | OpClass::Literal) {
            return Err(AttrError::new(
                mnemonic,
                "",
                "leaves are declared in the signature (input, param) or with a literal (const)",
            ));
        }
        let mut assign = Assign::new(mnemonic, attrs)?;
        let mut op = kind.sample();
        op.visit_attrs(&mut assign)?;
        assign.finish()?;
        Ok(op)
    }
}

impl fmt::Display for Op {
    /// The op as it appears in the text format, without operands: `transpose perm=[1,0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mnemonic())?;
        for (k, v) in self.attrs() {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_round_trips_for_every_kind() {
        let ops: Vec<Op> = Op::samples().into_iter().filter(|o| !o.is_leaf()).collect();
        for op in ops {
            let attrs = op
                .attrs()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            assert_eq!(Op::from_syntax(op.mnemonic(), attrs).unwrap(), op);
        }
    }

    #[test]
    fn every_row_of_the_table_is_its_own_kind() {
        for &kind in OpKind::ALL {
            assert_eq!(kind.sample().kind(), kind, "sample of {kind:?}");
            assert_eq!(OpKind::from_mnemonic(kind.mnemonic()), Some(kind));
        }
        let mut names: Vec<&str> = OpKind::ALL.iter().map(|k| k.mnemonic()).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "every kind has its own mnemonic");
    }

    #[test]
    fn family_lists_hold_every_kind_of_their_family() {
        let table = |f: fn(&Op) -> bool| -> Vec<OpKind> {
            OpKind::ALL
                .iter()
                .copied()
                .filter(|k| f(&k.sample()))
                .collect()
        };
        assert_eq!(
            table(|o| matches!(o, Op::Unary(_))),
            UnaryOp::ALL.iter().map(|k| k.kind()).collect::<Vec<_>>()
        );
        assert_eq!(
            table(|o| matches!(o, Op::Binary(_))),
            BinaryOp::ALL.iter().map(|k| k.kind()).collect::<Vec<_>>()
        );
        assert_eq!(
            table(|o| matches!(o, Op::Compare(_))),
            CmpOp::ALL.iter().map(|k| k.kind()).collect::<Vec<_>>()
        );
        assert_eq!(
            table(|o| matches!(o, Op::Reduce { .. })),
            ReduceOp::ALL.iter().map(|k| k.kind()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn non_finite_float_attributes_are_seen() {
        assert!(Op::Unary(UnaryOp::LeakyRelu(0.2)).float_attrs_finite());
        assert!(!Op::Unary(UnaryOp::LeakyRelu(f64::INFINITY)).float_attrs_finite());
        let pad = |value| Op::Pad {
            low: vec![1],
            high: vec![1],
            value,
        };
        assert!(!pad(f64::NAN).float_attrs_finite());
        assert!(pad(-3.0).float_attrs_finite());
    }

    #[test]
    fn attribute_errors_name_the_problem() {
        let e = Op::from_syntax("transpose", vec![]).unwrap_err();
        assert_eq!(e.to_string(), "`transpose` attribute `perm`: missing");
        let e = Op::from_syntax(
            "concat",
            vec![
                ("axis".into(), AttrValue::Int(0)),
                ("bogus".into(), AttrValue::Int(1)),
            ],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "`concat` attribute `bogus`: unknown attribute"
        );
        assert!(Op::from_syntax("frobnicate", vec![]).is_err());
        let e = Op::from_syntax("concat", vec![("axis".into(), AttrValue::Int(-1))]).unwrap_err();
        assert!(e.to_string().contains("non-negative"), "{e}");
    }
}
