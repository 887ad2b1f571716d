//! The operation set, grouped in families so each stage handles a family with one
//! match arm and a small table per kind.
//!
//! Conventions shared by every stage:
//! - Elementwise, comparison and select operands have *identical* types; broadcasting
//!   is always an explicit [`Op::Broadcast`] node (the DSL inserts them).
//! - Images are NCHW; convolution weights are OIHW (`conv_transpose2d` takes IOHW,
//!   as PyTorch's `ConvTranspose2d` does).
//! - Attributes hold plain integers and `f64`s so that one `Op` value describes an
//!   f32 and an f64 graph alike.

use std::fmt;

use crate::{DType, HostTensor, Shape};

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

    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Relu => "relu",
            UnaryOp::Abs => "abs",
            UnaryOp::Recip => "recip",
            UnaryOp::Sign => "sign",
            UnaryOp::LeakyRelu(_) => "leaky_relu",
        }
    }

    /// True if the op is also defined on integers (otherwise floats only).
    pub fn accepts_integers(self) -> bool {
        matches!(
            self,
            UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Relu | UnaryOp::Sign
        )
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

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Max => "max",
            BinaryOp::Min => "min",
            BinaryOp::Pow => "pow",
        }
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

    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
        }
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

    /// The text-format mnemonic (`reduce_sum`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "reduce_sum",
            ReduceOp::Mean => "reduce_mean",
            ReduceOp::Max => "reduce_max",
            ReduceOp::Min => "reduce_min",
        }
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
    /// The text-format mnemonic of the op.
    pub fn mnemonic(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Param => "param",
            Op::Const(_) => "const",
            Op::Unary(k) => k.name(),
            Op::Binary(k) => k.name(),
            Op::Compare(k) => k.name(),
            Op::Select => "select",
            Op::Cast(_) => "cast",
            Op::StopGradient => "stop_gradient",
            Op::Broadcast(_) => "broadcast",
            Op::Reshape(_) => "reshape",
            Op::Transpose(_) => "transpose",
            Op::Slice { .. } => "slice",
            Op::Concat { .. } => "concat",
            Op::Pad { .. } => "pad",
            Op::Reduce { kind, .. } => kind.name(),
            Op::ArgMax { .. } => "argmax",
            Op::MatMul => "matmul",
            Op::Conv2d(_) => "conv2d",
            Op::ConvTranspose2d { .. } => "conv_transpose2d",
            Op::Conv2dWeightGrad { .. } => "conv2d_weight_grad",
            Op::Pool2d(p) => match p.kind {
                PoolKind::Max => "max_pool2d",
                PoolKind::Avg => "avg_pool2d",
            },
            Op::Pool2dGrad(p) => match p.kind {
                PoolKind::Max => "max_pool2d_grad",
                PoolKind::Avg => "avg_pool2d_grad",
            },
            Op::Gather => "gather",
            Op::ScatterAdd { .. } => "scatter_add",
            Op::OneHot { .. } => "one_hot",
            Op::RandomUniform { .. } => "random_uniform",
            Op::Fma => "fma",
            Op::MatMulBias { .. } => "matmul_bias",
        }
    }

    /// One representative of every op variant and every kind of each family (with
    /// arbitrary attributes). Tests iterate over it to prove coverage: a new variant
    /// must be added here, which `samples_cover_every_variant` enforces.
    pub fn samples() -> Vec<Op> {
        let c = Conv2dAttrs {
            stride: [2, 1],
            padding: [1, 0],
            dilation: [1, 3],
        };
        let p = Pool2dAttrs {
            kind: PoolKind::Max,
            kernel: [2, 3],
            stride: [2, 2],
            padding: [1, 0],
        };
        let mut ops: Vec<Op> = vec![
            Op::Input,
            Op::Param,
            Op::Const(HostTensor::from_f32([2], vec![1.5, -2.0]).expect("2 elements")),
            Op::Select,
            Op::Cast(DType::I32),
            Op::StopGradient,
            Op::Broadcast(Shape::from([2, 3])),
            Op::Reshape(Shape::from([6])),
            Op::Transpose(vec![1, 0]),
            Op::Slice {
                start: vec![0, 1],
                end: vec![2, 3],
                step: vec![1, 2],
            },
            Op::Concat { axis: 1 },
            Op::Pad {
                low: vec![1],
                high: vec![0],
                value: -0.5,
            },
            Op::ArgMax {
                axis: 1,
                keepdims: false,
            },
            Op::MatMul,
            Op::Conv2d(c),
            Op::ConvTranspose2d {
                conv: c,
                output_padding: [1, 0],
            },
            Op::Conv2dWeightGrad {
                conv: c,
                kernel: [3, 3],
            },
            Op::Pool2d(p),
            Op::Pool2d(Pool2dAttrs {
                kind: PoolKind::Avg,
                ..p
            }),
            Op::Pool2dGrad(p),
            Op::Pool2dGrad(Pool2dAttrs {
                kind: PoolKind::Avg,
                ..p
            }),
            Op::Gather,
            Op::ScatterAdd { rows: 10 },
            Op::OneHot {
                depth: 4,
                dtype: DType::F32,
            },
            Op::RandomUniform {
                shape: Shape::from([3]),
                dtype: DType::F32,
                salt: 7,
            },
            Op::Fma,
            Op::MatMulBias { relu: true },
        ];
        ops.extend(UnaryOp::ALL.map(Op::Unary));
        ops.extend(BinaryOp::ALL.map(Op::Binary));
        ops.extend(CmpOp::ALL.map(Op::Compare));
        ops.extend(ReduceOp::ALL.map(|kind| Op::Reduce {
            kind,
            axes: vec![0, 2],
            keepdims: true,
        }));
        ops
    }

    /// True for the leaves fed by the caller (`Input` and `Param`).
    pub fn is_argument(&self) -> bool {
        matches!(self, Op::Input | Op::Param)
    }

    /// True for ops without operands.
    pub fn is_leaf(&self) -> bool {
        matches!(self, Op::Input | Op::Param | Op::Const(_))
    }

    /// True for ops that compute each output element from the same element of their
    /// operands (the fusible family).
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::Unary(_)
                | Op::Binary(_)
                | Op::Compare(_)
                | Op::Select
                | Op::Cast(_)
                | Op::StopGradient
                | Op::Fma
        )
    }

    /// The attributes of the op, in text-format order. Leaves have none (`const`
    /// prints its literal instead).
    pub fn attrs(&self) -> Vec<(&'static str, AttrValue)> {
        use AttrValue as A;
        let conv = |c: &Conv2dAttrs| {
            vec![
                ("stride", A::ints(&c.stride)),
                ("padding", A::ints(&c.padding)),
                ("dilation", A::ints(&c.dilation)),
            ]
        };
        let pool = |p: &Pool2dAttrs| {
            vec![
                ("kernel", A::ints(&p.kernel)),
                ("stride", A::ints(&p.stride)),
                ("padding", A::ints(&p.padding)),
            ]
        };
        match self {
            Op::Input | Op::Param | Op::Const(_) => vec![],
            Op::Unary(UnaryOp::LeakyRelu(slope)) => vec![("slope", A::Float(*slope))],
            Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::StopGradient => {
                vec![]
            }
            Op::MatMul | Op::Gather | Op::Fma => vec![],
            Op::MatMulBias { relu } => vec![("relu", A::Bool(*relu))],
            Op::Cast(to) => vec![("to", A::DType(*to))],
            Op::Broadcast(s) | Op::Reshape(s) => vec![("shape", A::ints(s.dims()))],
            Op::Transpose(perm) => vec![("perm", A::ints(perm))],
            Op::Slice { start, end, step } => vec![
                ("start", A::ints(start)),
                ("end", A::ints(end)),
                ("step", A::ints(step)),
            ],
            Op::Concat { axis } => vec![("axis", A::Int(*axis as i64))],
            Op::Pad { low, high, value } => vec![
                ("low", A::ints(low)),
                ("high", A::ints(high)),
                ("value", A::Float(*value)),
            ],
            Op::Reduce { axes, keepdims, .. } => {
                vec![("axes", A::ints(axes)), ("keepdims", A::Bool(*keepdims))]
            }
            Op::ArgMax { axis, keepdims } => vec![
                ("axis", A::Int(*axis as i64)),
                ("keepdims", A::Bool(*keepdims)),
            ],
            Op::Conv2d(c) => conv(c),
            Op::ConvTranspose2d {
                conv: c,
                output_padding,
            } => {
                let mut a = conv(c);
                a.push(("output_padding", A::ints(output_padding)));
                a
            }
            Op::Conv2dWeightGrad { conv: c, kernel } => {
                let mut a = conv(c);
                a.push(("kernel", A::ints(kernel)));
                a
            }
            Op::Pool2d(p) | Op::Pool2dGrad(p) => pool(p),
            Op::ScatterAdd { rows } => vec![("rows", A::Int(*rows as i64))],
            Op::OneHot { depth, dtype } => {
                vec![
                    ("depth", A::Int(*depth as i64)),
                    ("dtype", A::DType(*dtype)),
                ]
            }
            Op::RandomUniform { shape, dtype, salt } => vec![
                ("shape", A::ints(shape.dims())),
                ("dtype", A::DType(*dtype)),
                ("salt", A::Int(*salt as i64)),
            ],
        }
    }

    /// Builds a non-leaf op from its mnemonic and attributes: the inverse of
    /// [`Op::mnemonic`] and [`Op::attrs`]. Every attribute is required; unknown or
    /// repeated ones are errors.
    pub fn from_syntax(mnemonic: &str, attrs: Vec<(String, AttrValue)>) -> Result<Op, AttrError> {
        let mut a = Attrs::new(mnemonic, attrs)?;
        let op = Self::build_from(mnemonic, &mut a)?;
        a.finish()?;
        Ok(op)
    }

    fn build_from(m: &str, a: &mut Attrs) -> Result<Op, AttrError> {
        if let Some(k) = UnaryOp::ALL.iter().find(|k| k.name() == m) {
            return Ok(Op::Unary(match k {
                UnaryOp::LeakyRelu(_) => UnaryOp::LeakyRelu(a.float("slope")?),
                k => *k,
            }));
        }
        if let Some(k) = BinaryOp::ALL.iter().find(|k| k.name() == m) {
            return Ok(Op::Binary(*k));
        }
        if let Some(k) = CmpOp::ALL.iter().find(|k| k.name() == m) {
            return Ok(Op::Compare(*k));
        }
        if let Some(k) = ReduceOp::ALL.iter().find(|k| k.name() == m) {
            return Ok(Op::Reduce {
                kind: *k,
                axes: a.usizes("axes")?,
                keepdims: a.bool("keepdims")?,
            });
        }
        let conv = |a: &mut Attrs| -> Result<Conv2dAttrs, AttrError> {
            Ok(Conv2dAttrs {
                stride: a.pair("stride")?,
                padding: a.pair("padding")?,
                dilation: a.pair("dilation")?,
            })
        };
        let pool = |a: &mut Attrs, kind| -> Result<Pool2dAttrs, AttrError> {
            Ok(Pool2dAttrs {
                kind,
                kernel: a.pair("kernel")?,
                stride: a.pair("stride")?,
                padding: a.pair("padding")?,
            })
        };
        Ok(match m {
            "select" => Op::Select,
            "stop_gradient" => Op::StopGradient,
            "matmul" => Op::MatMul,
            "gather" => Op::Gather,
            "fma" => Op::Fma,
            "matmul_bias" => Op::MatMulBias {
                relu: a.bool("relu")?,
            },
            "cast" => Op::Cast(a.dtype("to")?),
            "broadcast" => Op::Broadcast(Shape::new(a.usizes("shape")?)),
            "reshape" => Op::Reshape(Shape::new(a.usizes("shape")?)),
            "transpose" => Op::Transpose(a.usizes("perm")?),
            "slice" => Op::Slice {
                start: a.usizes("start")?,
                end: a.usizes("end")?,
                step: a.usizes("step")?,
            },
            "concat" => Op::Concat {
                axis: a.usize("axis")?,
            },
            "pad" => Op::Pad {
                low: a.usizes("low")?,
                high: a.usizes("high")?,
                value: a.float("value")?,
            },
            "argmax" => Op::ArgMax {
                axis: a.usize("axis")?,
                keepdims: a.bool("keepdims")?,
            },
            "conv2d" => Op::Conv2d(conv(a)?),
            "conv_transpose2d" => Op::ConvTranspose2d {
                conv: conv(a)?,
                output_padding: a.pair("output_padding")?,
            },
            "conv2d_weight_grad" => Op::Conv2dWeightGrad {
                conv: conv(a)?,
                kernel: a.pair("kernel")?,
            },
            "max_pool2d" => Op::Pool2d(pool(a, PoolKind::Max)?),
            "avg_pool2d" => Op::Pool2d(pool(a, PoolKind::Avg)?),
            "max_pool2d_grad" => Op::Pool2dGrad(pool(a, PoolKind::Max)?),
            "avg_pool2d_grad" => Op::Pool2dGrad(pool(a, PoolKind::Avg)?),
            "scatter_add" => Op::ScatterAdd {
                rows: a.usize("rows")?,
            },
            "one_hot" => Op::OneHot {
                depth: a.usize("depth")?,
                dtype: a.dtype("dtype")?,
            },
            "random_uniform" => Op::RandomUniform {
                shape: Shape::new(a.usizes("shape")?),
                dtype: a.dtype("dtype")?,
                salt: u32::try_from(a.usize("salt")?)
                    .map_err(|_| AttrError::new(m, "salt", "does not fit in u32"))?,
            },
            "input" | "param" | "const" => {
                return Err(AttrError::new(
                    m,
                    "",
                    "leaves are declared in the signature (input, param) or with a literal (const)",
                ));
            }
            _ => return Err(AttrError::new(m, "", "unknown op")),
        })
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

/// An attribute value in the text format.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Int(i64),
    /// Printed with a decimal point or exponent (`0.01`, `1.0`, `inf`, `NaN`), so it
    /// reads back as a float and round-trips exactly.
    Float(f64),
    Bool(bool),
    Ints(Vec<i64>),
    DType(DType),
}

impl AttrValue {
    fn ints(v: &[usize]) -> Self {
        AttrValue::Ints(v.iter().map(|&x| x as i64).collect())
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Float(x) => write!(f, "{x:?}"),
            AttrValue::Bool(b) => write!(f, "{b}"),
            AttrValue::DType(d) => write!(f, "{d}"),
            AttrValue::Ints(v) => {
                f.write_str("[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// A missing, unknown, repeated or ill-typed attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{op}`{}: {message}", if attr.is_empty() { String::new() } else { format!(" attribute `{attr}`") })]
pub struct AttrError {
    pub op: String,
    pub attr: String,
    pub message: String,
}

impl AttrError {
    fn new(op: &str, attr: &str, message: impl Into<String>) -> Self {
        AttrError {
            op: op.to_string(),
            attr: attr.to_string(),
            message: message.into(),
        }
    }
}

/// Attributes being consumed by [`Op::from_syntax`].
struct Attrs<'a> {
    op: &'a str,
    items: Vec<(String, AttrValue)>,
}

impl<'a> Attrs<'a> {
    fn new(op: &'a str, items: Vec<(String, AttrValue)>) -> Result<Self, AttrError> {
        for (i, (k, _)) in items.iter().enumerate() {
            if items[..i].iter().any(|(k2, _)| k2 == k) {
                return Err(AttrError::new(op, k, "given twice"));
            }
        }
        Ok(Attrs { op, items })
    }

    fn take(&mut self, key: &str) -> Result<AttrValue, AttrError> {
        match self.items.iter().position(|(k, _)| k == key) {
            Some(i) => Ok(self.items.remove(i).1),
            None => Err(AttrError::new(self.op, key, "missing")),
        }
    }

    fn err(&self, key: &str, what: &str, got: &AttrValue) -> AttrError {
        AttrError::new(self.op, key, format!("expected {what}, got `{got}`"))
    }

    fn float(&mut self, key: &str) -> Result<f64, AttrError> {
        match self.take(key)? {
            AttrValue::Float(x) => Ok(x),
            AttrValue::Int(i) => Ok(i as f64),
            v => Err(self.err(key, "a number", &v)),
        }
    }

    fn bool(&mut self, key: &str) -> Result<bool, AttrError> {
        match self.take(key)? {
            AttrValue::Bool(b) => Ok(b),
            v => Err(self.err(key, "true or false", &v)),
        }
    }

    fn dtype(&mut self, key: &str) -> Result<DType, AttrError> {
        match self.take(key)? {
            AttrValue::DType(d) => Ok(d),
            v => Err(self.err(key, "a dtype", &v)),
        }
    }

    fn usize(&mut self, key: &str) -> Result<usize, AttrError> {
        match self.take(key)? {
            AttrValue::Int(i) if i >= 0 => Ok(i as usize),
            v => Err(self.err(key, "a non-negative integer", &v)),
        }
    }

    fn usizes(&mut self, key: &str) -> Result<Vec<usize>, AttrError> {
        match self.take(key)? {
            AttrValue::Ints(v) if v.iter().all(|&i| i >= 0) => {
                Ok(v.into_iter().map(|i| i as usize).collect())
            }
            v => Err(self.err(key, "a list of non-negative integers", &v)),
        }
    }

    fn pair(&mut self, key: &str) -> Result<[usize; 2], AttrError> {
        match self.take(key)? {
            AttrValue::Ints(v) if v.len() == 2 && v.iter().all(|&i| i >= 0) => {
                Ok([v[0] as usize, v[1] as usize])
            }
            v => Err(self.err(key, "two non-negative integers `[h,w]`", &v)),
        }
    }

    fn finish(self) -> Result<(), AttrError> {
        match self.items.first() {
            Some((k, _)) => Err(AttrError::new(self.op, k, "unknown attribute")),
            None => Ok(()),
        }
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
    fn samples_cover_every_variant() {
        let mut seen = [false; 29];
        for op in Op::samples() {
            // No wildcard: a new variant fails to compile here until it gets a slot.
            let slot = match op {
                Op::Input => 0,
                Op::Param => 1,
                Op::Const(_) => 2,
                Op::Unary(_) => 3,
                Op::Binary(_) => 4,
                Op::Compare(_) => 5,
                Op::Select => 6,
                Op::Cast(_) => 7,
                Op::Broadcast(_) => 8,
                Op::Reshape(_) => 9,
                Op::Transpose(_) => 10,
                Op::Slice { .. } => 11,
                Op::Concat { .. } => 12,
                Op::Pad { .. } => 13,
                Op::Reduce { .. } => 14,
                Op::ArgMax { .. } => 15,
                Op::MatMul => 16,
                Op::Conv2d(_) => 17,
                Op::ConvTranspose2d { .. } => 18,
                Op::Conv2dWeightGrad { .. } => 19,
                Op::Pool2d(_) => 20,
                Op::Pool2dGrad(_) => 21,
                Op::Gather => 22,
                Op::ScatterAdd { .. } => 23,
                Op::OneHot { .. } => 24,
                Op::RandomUniform { .. } => 25,
                Op::StopGradient => 26,
                Op::Fma => 27,
                Op::MatMulBias { .. } => 28,
            };
            seen[slot] = true;
        }
        assert!(seen.iter().all(|&s| s), "missing samples: {seen:?}");
        let mut names: Vec<&str> = Op::samples().iter().map(|o| o.mnemonic()).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "every sample has its own mnemonic");
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
