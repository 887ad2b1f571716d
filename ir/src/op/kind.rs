//! The op table: one row per op kind, from which every per-op decision outside the
//! semantics comes — mnemonic, op class, arithmetic work, finiteness, domain and a
//! sample instance. The stages ask the op ([`super::Op::kind`]) instead of keeping their
//! own lists, and the rules of the optimizer name ops by [`OpKind`], never by
//! string.
//!
//! Why a `macro_rules!` table rather than a trait implemented per op: the rows sit
//! side by side, so a reviewer compares a new op with its neighbours at a glance,
//! and a row that leaves out a column does not parse. The semantics (interpreter,
//! typing, vjp, lowering) stay exhaustive `match`es over the op families with no
//! wildcard arm, so a new variant fails to compile until each of them is written.

use super::{BinaryOp, CmpOp, ReduceOp, UnaryOp};
use super::{Conv2dAttrs, Op, Pool2dAttrs, PoolKind};
use crate::{DType, HostTensor, Shape};

/// What the compiler does with an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpClass {
    /// Fed by the caller on every call (`input`, `param`).
    Argument,
    /// A literal (`const`).
    Literal,
    /// Each output element from the same element of the operands: fused into loop
    /// kernels.
    Elementwise,
    /// Computed inside loop kernels from the element's index alone
    /// (`random_uniform`).
    Generator,
    /// Re-indexes its operand without arithmetic: an affine index map of the loads
    /// that read through it. `strided` views keep an operand addressable by strides;
    /// `reshape` is not strided (it needs a contiguous operand).
    View { strided: bool },
    /// A reduction over axes: one loop kernel of its own.
    Reduction,
    /// A routine of the native library over whole buffers (contractions, windows,
    /// indexing, data movement).
    Library,
}

/// Arithmetic per output element of an elementwise op or a generator. Each cost
/// model (the optimizer's and the scheduler's) maps it to its own units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Work {
    /// No arithmetic of its own: arguments, literals, views.
    None,
    /// One simple instruction: add, compare, select, negate, convert, ...
    Simple,
    /// A fused multiply-add.
    MulAdd,
    /// A division.
    Divide,
    /// A square root (`sqrt`, `rsqrt`).
    Root,
    /// A polynomial approximation: `exp`, `log`, `tanh`, `sigmoid`.
    Transcendental,
    /// `pow`: a logarithm and an exponential.
    Power,
    /// An integer hash per element (`random_uniform`).
    Hash,
    /// Depends on operand shapes and attributes (contractions, windows,
    /// reductions, data movement): each cost model computes it from the op.
    Shaped,
}

/// Whether finite operands give a finite result (the optimizer's analysis uses it
/// to decide, e.g., whether `x * 0` may become `0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Finiteness {
    /// Finite operands and finite float attributes give a finite result: no
    /// overflow, no domain error.
    Preserves,
    /// The result is finite whatever the operands.
    Always,
    /// No promise: the op can overflow or leave its domain (`exp`, `log`, `add`,
    /// `matmul`, a max-pool window that lies in the padding, ...).
    MayNotBe,
}

/// The operand values an op is defined on (the `kiln` tool draws random arguments
/// that reach a restricted op from its domain).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Domain {
    /// Every value.
    Any,
    /// Positive values (`log`, `sqrt`, `rsqrt`, the base of `pow`): others give NaN.
    Positive,
}

macro_rules! op_table {
    ($( $kind:ident $mnemonic:literal $class:expr, $work:ident, $finite:ident, $domain:ident, $sample:expr; )*) => {
        /// One kind of op per text-format mnemonic: [`Op`] without its attributes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum OpKind {
            $( #[doc = concat!("`", $mnemonic, "`")] $kind, )*
        }

        impl OpKind {
            /// Every kind, in table order.
            pub const ALL: &'static [OpKind] = &[$(OpKind::$kind),*];

            /// The text-format mnemonic.
            pub fn mnemonic(self) -> &'static str {
                match self { $(OpKind::$kind => $mnemonic,)* }
            }

            /// The kind printed as `mnemonic`, if there is one.
            pub fn from_mnemonic(mnemonic: &str) -> Option<OpKind> {
                match mnemonic { $($mnemonic => Some(OpKind::$kind),)* _ => None }
            }

            /// What the compiler does with the op.
            pub fn class(self) -> OpClass {
                use OpClass::*;
                match self { $(OpKind::$kind => $class,)* }
            }

            /// Arithmetic per output element.
            pub fn work(self) -> Work {
                match self { $(OpKind::$kind => Work::$work,)* }
            }

            /// Whether finite operands give a finite result.
            pub fn finiteness(self) -> Finiteness {
                match self { $(OpKind::$kind => Finiteness::$finite,)* }
            }

            /// The operand values the op is defined on.
            pub fn domain(self) -> Domain {
                match self { $(OpKind::$kind => Domain::$domain,)* }
            }

            /// A representative op of this kind with arbitrary (not default)
            /// attributes; the parser starts from it and overwrites every attribute.
            pub fn sample(self) -> Op {
                match self { $(OpKind::$kind => $sample,)* }
            }
        }
    };
}

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
    OneHot           "one_hot"             Library,                 Shaped,         Always,    Any,
        Op::OneHot { depth: 4, dtype: DType::F32 };
}
