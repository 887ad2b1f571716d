//! The text format: the lingua franca of dumps and snapshot tests.
//!
//! ```text
//! fn mlp(x: f32[64,784], w1: param f32[784,128], b1: param f32[128]) -> (y: f32[64,128]) {
//!   %3 = matmul %0, %1                : f32[64,128]
//!   %4 = broadcast %2 shape=[64,128]  : f32[64,128]
//!   %5 = add %3, %4                   : f32[64,128] @hidden
//!   %6 = relu %5                      : f32[64,128]
//!   return %6
//! }
//! ```
//!
//! - Arguments (`name: TYPE`, or `name: param TYPE`) are `%0..%k-1`; the body's
//!   nodes follow in topological order, numbered as [`crate::Graph::canonicalize`]
//!   numbers them. Results may be named (`name: TYPE`).
//! - A node line is `%N = MNEMONIC [LITERAL] [OPERANDS] [key=value ...] : TYPE [@name]`;
//!   attributes come from [`crate::Op::attrs`] and parse back through
//!   [`crate::Op::from_syntax`], so each op's syntax is defined once.
//! - `const` literals are one value (a splat) or a flat row-major list; floats print
//!   in Rust's shortest round-trip form (`0.1`, `1e-8`, `NaN`, `inf`) and read back
//!   bit-exact, except that every NaN reads back as the one canonical NaN.
//! - `//` starts a comment; names that are not identifiers are quoted.

mod parse;
mod print;

pub use parse::{ParseError, parse};
pub use print::print;
