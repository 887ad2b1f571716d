//! kiln's tensor IR.
//!
//! - [`DType`], [`Shape`], [`TensorType`]: element types and static shapes.
//! - [`Op`]: the operation set, in families ([`UnaryOp`], [`BinaryOp`], ...), with
//!   one typing rule each ([`infer`]); [`OpKind`] is the op table every stage asks
//!   for per-op decisions ([`OpClass`], [`Work`], [`Finiteness`]).
//! - [`Graph`]: a petgraph graph of typed nodes with declared arguments and outputs.
//! - [`text`]: the text format (print and parse, round-tripping) and [`dot`] export.
//! - [`interp`]: the reference interpreter, the oracle every compiled result is
//!   checked against.
//! - [`HostTensor`]: dense values on the host.
//! - [`kernel`]: the kernel program (loop nests and library calls over flat buffers)
//!   that the scheduler produces and the code generator lowers.

mod dtype;
mod graph;
mod infer;
mod op;
mod shape;
mod tensor;

pub mod dot;
pub use dot::to_dot;
pub mod interp;
pub mod kernel;
pub mod text;

pub use dtype::{DType, UnknownDType};
pub use graph::{Graph, GraphError, Node, NodeId, Output};
pub use infer::{TypeError, infer, reduced_dims, window_out};
pub use op::{
    AttrError, AttrValue, BinaryOp, Body, CmpOp, Conv2dAttrs, Domain, Finiteness, IntUnaryOp, Op,
    OpClass, OpKind, Pool2dAttrs, PoolKind, ReduceOp, Scan, UnaryOp, Work,
};
pub use shape::{MAX_ELEMENTS, Shape, TensorType};
pub use tensor::{DataLenMismatch, HostTensor, TensorData};
