//! The machinery of the op table (the table itself is in `op/mod.rs`, next to the
//! op families): the columns' types and the macro that turns the rows into
//! [`OpKind`] and its per-kind answers. Every per-op decision outside the
//! semantics comes from the table — mnemonic, op class, arithmetic work,
//! finiteness, domain and a sample instance. The stages ask the op
//! ([`super::Op::kind`]) instead of keeping their own lists, and the rules of the
//! optimizer name ops by [`OpKind`], never by string.
//!
//! Why a `macro_rules!` table rather than a trait implemented per op: the rows sit
//! side by side, so a reviewer compares a new op with its neighbours at a glance,
//! and a row that leaves out a column does not parse. The semantics (interpreter,
//! typing, vjp, lowering) stay exhaustive `match`es over the op families with no
//! wildcard arm, so a new variant fails to compile until each of them is written.

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
