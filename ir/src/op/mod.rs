//! The operation set, grouped in families so each stage handles a family with one
//! match arm; the op table ([`OpKind`], at the end of this file) holds every per-kind decision
//! (mnemonic, class, work, finiteness, domain, a sample) and sits at the end of
//! this file; `syntax.rs` defines each op's attributes once for printing and
//! parsing.
//!
//! Conventions shared by every stage:
//! - Elementwise, comparison and select operands have *identical* types; broadcasting
//!   is always an explicit [`Op::Broadcast`] node (the DSL inserts them).
//! - Images are NCHW; convolution weights are OIHW (`conv_transpose2d` takes IOHW,
//!   as PyTorch's `ConvTranspose2d` does).
//! - Attributes hold plain integers and `f64`s so that one `Op` value describes an
//!   f32 and an f64 graph alike.

#[macro_use]
mod table;
mod syntax;

use crate::{DType, HostTensor, Shape};

pub use syntax::{AttrError, AttrValue};
pub use table::{Domain, Finiteness, OpClass, Work};

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
    /// The error function `2/sqrt(pi) ∫₀ˣ e^(-t²) dt` (exact GELU is `x Φ(x)`,
    /// `Φ(x) = (1 + erf(x / sqrt 2)) / 2`).
    Erf,
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
    pub const ALL: [UnaryOp; 13] = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Tanh,
        UnaryOp::Erf,
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
            UnaryOp::Erf => OpKind::Erf,
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

    /// The op's integer form, for the ops also defined on `i32` (the others take
    /// floats only). The interpreter and the lowering match on it, so only this
    /// function lists the float-only ops.
    pub fn on_integers(self) -> Option<IntUnaryOp> {
        match self {
            UnaryOp::Neg => Some(IntUnaryOp::Neg),
            UnaryOp::Abs => Some(IntUnaryOp::Abs),
            UnaryOp::Relu => Some(IntUnaryOp::Relu),
            UnaryOp::Sign => Some(IntUnaryOp::Sign),
            UnaryOp::Exp
            | UnaryOp::Log
            | UnaryOp::Sqrt
            | UnaryOp::Rsqrt
            | UnaryOp::Tanh
            | UnaryOp::Erf
            | UnaryOp::Sigmoid
            | UnaryOp::Recip
            | UnaryOp::LeakyRelu(_) => None,
        }
    }

    /// True if the op is also defined on integers (otherwise floats only).
    pub fn accepts_integers(self) -> bool {
        self.on_integers().is_some()
    }
}

/// The unary ops defined on integers ([`UnaryOp::on_integers`]): `neg` and `abs`
/// wrap, `relu` is `max(x, 0)`, `sign` is -1, 0 or 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntUnaryOp {
    Neg,
    Abs,
    Relu,
    Sign,
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

/// A structured loop in the spirit of JAX's `lax.scan`: `length` steps of `body`,
/// each taking the carries, one step's slice (along axis 0) of each `xs` operand and
/// the constants, and returning the new carries followed by that step's `ys`.
///
/// Operands: `carries` initial carries, `xs` stacked inputs (leading axis
/// `length`), then the constants. The body's arguments are, in order, one per
/// operand (a carry's type, an `xs` element's type, a constant's type); its results
/// are the `carries` new carries (same types) and the per-step `ys`.
///
/// A scan has several results; each is its own node, `result` naming which:
/// `result < carries` is the final carry `result`, otherwise `ys[result - carries]`
/// stacked along a new leading axis of size `length`. Nodes with the same body
/// and operands are the same loop (as TVM's tensors share a multi-output op);
/// the interpreter runs it once per graph evaluation. `reverse` runs the steps from
/// the last to the first (`ys` keep the step's index).
#[derive(Clone, Debug, PartialEq)]
pub struct Scan {
    pub body: Body,
    pub carries: usize,
    pub xs: usize,
    pub length: usize,
    pub reverse: bool,
    pub result: usize,
}

impl Scan {
    /// The number of results (final carries, then stacked `ys`).
    pub fn results(&self) -> usize {
        self.body.0.outputs().len()
    }
}

/// The graph of a loop body, shared by the nodes of one loop. Two bodies are equal
/// when they are the same graph or print the same.
#[derive(Clone, Debug)]
pub struct Body(pub std::sync::Arc<crate::Graph>);

impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
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

    /// `(init_carries..., xs..., consts...)` -> one result of a loop over the
    /// leading axis of the `xs` (see [`Scan`]).
    Scan(Scan),

    /// `(x)` summed elementwise over the processes of a data-parallel group, every
    /// process getting the same sum (MPI's `MPI_Allreduce` with `MPI_SUM`); floats
    /// only. The compiled program calls the group it runs with; the reference
    /// interpreter runs one process, where the sum is `x` itself. Every process
    /// must run the same program, so that the collectives meet in the same order.
    AllReduce,
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
            Op::Scan(_) => OpKind::Scan,
            Op::AllReduce => OpKind::AllReduce,
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
}

/// The op table: one row per kind, columns as documented on their types in
/// `table.rs`. A new op needs a row here (and an arm in its family's `kind()`), or
/// `Op::kind` does not compile.
const CONV: Conv2dAttrs = Conv2dAttrs {
    stride: [2, 1],
    padding: [1, 0],
    dilation: [1, 3],
};
const MAX_POOL: Pool2dAttrs = Pool2dAttrs {
    kind: PoolKind::Max,
    kernel: [2, 3],
    stride: [2, 2],
    padding: [1, 0],
};
const AVG_POOL: Pool2dAttrs = Pool2dAttrs {
    kind: PoolKind::Avg,
    ..MAX_POOL
};

/// `h' = h + x`, `y = h * x` over 3 steps: one carry, one `xs`, the `ys` result.
fn scan_sample() -> Op {
    let mut body = crate::Graph::new("step");
    let ty = crate::TensorType::new(DType::F32, [2]);
    let h = body.input("h", ty.clone()).expect("fresh name");
    let x = body.input("x", ty).expect("fresh name");
    let h2 = body
        .add(Op::Binary(BinaryOp::Add), &[h, x])
        .expect("same types");
    let y = body
        .add(Op::Binary(BinaryOp::Mul), &[h, x])
        .expect("same types");
    body.output(h2, Some("h"));
    body.output(y, Some("y"));
    Op::Scan(Scan {
        body: Body(std::sync::Arc::new(body)),
        carries: 1,
        xs: 1,
        length: 3,
        reverse: false,
        result: 1,
    })
}

fn reduce(kind: ReduceOp) -> Op {
    Op::Reduce {
        kind,
        axes: vec![0, 2],
        keepdims: true,
    }
}

op_table! {
    // kind           mnemonic              class                    work            finiteness domain    sample
    Input            "input"               Argument,                None,           MayNotBe,  Any,      Op::Input;
    Param            "param"               Argument,                None,           MayNotBe,  Any,      Op::Param;
    Const            "const"               Literal,                 None,           MayNotBe,  Any,
        Op::Const(HostTensor::from_f32([2], vec![1.5, -2.0]).expect("2 elements"));

    Neg              "neg"                 Elementwise,             Simple,         Preserves, Any,      Op::Unary(UnaryOp::Neg);
    Exp              "exp"                 Elementwise,             Transcendental, MayNotBe,  Any,      Op::Unary(UnaryOp::Exp);
    Log              "log"                 Elementwise,             Transcendental, MayNotBe,  Positive, Op::Unary(UnaryOp::Log);
    Sqrt             "sqrt"                Elementwise,             Root,           MayNotBe,  Positive, Op::Unary(UnaryOp::Sqrt);
    Rsqrt            "rsqrt"               Elementwise,             Root,           MayNotBe,  Positive, Op::Unary(UnaryOp::Rsqrt);
    Tanh             "tanh"                Elementwise,             Transcendental, Preserves, Any,      Op::Unary(UnaryOp::Tanh);
    Erf              "erf"                 Elementwise,             Transcendental, Preserves, Any,      Op::Unary(UnaryOp::Erf);
    Sigmoid          "sigmoid"             Elementwise,             Transcendental, Preserves, Any,      Op::Unary(UnaryOp::Sigmoid);
    Relu             "relu"                Elementwise,             Simple,         Preserves, Any,      Op::Unary(UnaryOp::Relu);
    Abs              "abs"                 Elementwise,             Simple,         Preserves, Any,      Op::Unary(UnaryOp::Abs);
    // Costed as one instruction (not a division): the extractor's choices and the
    // reviewed snapshots depend on it.
    Recip            "recip"               Elementwise,             Simple,         MayNotBe,  Any,      Op::Unary(UnaryOp::Recip);
    Sign             "sign"                Elementwise,             Simple,         Preserves, Any,      Op::Unary(UnaryOp::Sign);
    LeakyRelu        "leaky_relu"          Elementwise,             Simple,         Preserves, Any,      Op::Unary(UnaryOp::LeakyRelu(0.01));

    Add              "add"                 Elementwise,             Simple,         MayNotBe,  Any,      Op::Binary(BinaryOp::Add);
    Sub              "sub"                 Elementwise,             Simple,         MayNotBe,  Any,      Op::Binary(BinaryOp::Sub);
    Mul              "mul"                 Elementwise,             Simple,         MayNotBe,  Any,      Op::Binary(BinaryOp::Mul);
    Div              "div"                 Elementwise,             Divide,         MayNotBe,  Any,      Op::Binary(BinaryOp::Div);
    Max              "max"                 Elementwise,             Simple,         Preserves, Any,      Op::Binary(BinaryOp::Max);
    Min              "min"                 Elementwise,             Simple,         Preserves, Any,      Op::Binary(BinaryOp::Min);
    Pow              "pow"                 Elementwise,             Power,          MayNotBe,  Positive, Op::Binary(BinaryOp::Pow);

    Eq               "eq"                  Elementwise,             Simple,         Always,    Any,      Op::Compare(CmpOp::Eq);
    Ne               "ne"                  Elementwise,             Simple,         Always,    Any,      Op::Compare(CmpOp::Ne);
    Lt               "lt"                  Elementwise,             Simple,         Always,    Any,      Op::Compare(CmpOp::Lt);
    Le               "le"                  Elementwise,             Simple,         Always,    Any,      Op::Compare(CmpOp::Le);
    Gt               "gt"                  Elementwise,             Simple,         Always,    Any,      Op::Compare(CmpOp::Gt);
    Ge               "ge"                  Elementwise,             Simple,         Always,    Any,      Op::Compare(CmpOp::Ge);

    Select           "select"              Elementwise,             Simple,         Preserves, Any,      Op::Select;
    Cast             "cast"                Elementwise,             Simple,         Preserves, Any,      Op::Cast(DType::I32);
    Fma              "fma"                 Elementwise,             MulAdd,         MayNotBe,  Any,      Op::Fma;
    RandomUniform    "random_uniform"      Generator,               Hash,           Always,    Any,
        Op::RandomUniform { shape: Shape::from([3]), dtype: DType::F32, salt: 7 };

    StopGradient     "stop_gradient"       View { strided: true },  None,           Preserves, Any,      Op::StopGradient;
    Broadcast        "broadcast"           View { strided: true },  None,           Preserves, Any,      Op::Broadcast(Shape::from([2, 3]));
    Transpose        "transpose"           View { strided: true },  None,           Preserves, Any,      Op::Transpose(vec![1, 0]);
    Slice            "slice"               View { strided: true },  None,           Preserves, Any,
        Op::Slice { start: vec![0, 1], end: vec![2, 3], step: vec![1, 2] };
    Reshape          "reshape"             View { strided: false }, None,           Preserves, Any,      Op::Reshape(Shape::from([6]));

    ReduceSum        "reduce_sum"          Reduction,               Shaped,         MayNotBe,  Any,      reduce(ReduceOp::Sum);
    ReduceMean       "reduce_mean"         Reduction,               Shaped,         MayNotBe,  Any,      reduce(ReduceOp::Mean);
    ReduceMax        "reduce_max"          Reduction,               Shaped,         Preserves, Any,      reduce(ReduceOp::Max);
    ReduceMin        "reduce_min"          Reduction,               Shaped,         Preserves, Any,      reduce(ReduceOp::Min);

    Concat           "concat"              Library,                 Shaped,         Preserves, Any,      Op::Concat { axis: 1 };
    Pad              "pad"                 Library,                 Shaped,         Preserves, Any,
        Op::Pad { low: vec![1], high: vec![0], value: -0.5 };
    ArgMax           "argmax"              Library,                 Shaped,         Always,    Any,
        Op::ArgMax { axis: 1, keepdims: false };
    MatMul           "matmul"              Library,                 Shaped,         MayNotBe,  Any,      Op::MatMul;
    MatMulBias       "matmul_bias"         Library,                 Shaped,         MayNotBe,  Any,      Op::MatMulBias { relu: true };
    Conv2d           "conv2d"              Library,                 Shaped,         MayNotBe,  Any,      Op::Conv2d(CONV);
    ConvTranspose2d  "conv_transpose2d"    Library,                 Shaped,         MayNotBe,  Any,
        Op::ConvTranspose2d { conv: CONV, output_padding: [1, 0] };
    Conv2dWeightGrad "conv2d_weight_grad"  Library,                 Shaped,         MayNotBe,  Any,
        Op::Conv2dWeightGrad { conv: CONV, kernel: [3, 3] };
    // Padding counts as -inf, so a window inside the padding has no finite maximum.
    MaxPool2d        "max_pool2d"          Library,                 Shaped,         MayNotBe,  Any,      Op::Pool2d(MAX_POOL);
    AvgPool2d        "avg_pool2d"          Library,                 Shaped,         MayNotBe,  Any,      Op::Pool2d(AVG_POOL);
    MaxPool2dGrad    "max_pool2d_grad"     Library,                 Shaped,         MayNotBe,  Any,      Op::Pool2dGrad(MAX_POOL);
    AvgPool2dGrad    "avg_pool2d_grad"     Library,                 Shaped,         MayNotBe,  Any,      Op::Pool2dGrad(AVG_POOL);
    Gather           "gather"              Library,                 Shaped,         Preserves, Any,      Op::Gather;
    ScatterAdd       "scatter_add"         Library,                 Shaped,         MayNotBe,  Any,      Op::ScatterAdd { rows: 10 };
    Scan             "scan"                Library,                 Shaped,         MayNotBe,  Any,      scan_sample();
    OneHot           "one_hot"             Library,                 Shaped,         Always,    Any,
        Op::OneHot { depth: 4, dtype: DType::F32 };
    AllReduce        "all_reduce"          Library,                 Shaped,         MayNotBe,  Any,      Op::AllReduce;
}

#[cfg(test)]
mod tests;
