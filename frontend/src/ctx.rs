//! How every DSL op is applied: operand checks, capture of the caller's location,
//! error recording and poisoning. Internal.
//!
//! A public op method is `#[track_caller]` and starts with [`enter!`], which builds a
//! [`Ctx`] (or returns a poisoned tensor when an operand is poisoned or foreign).
//! The op then either [`Ctx::fail`]s with a reason or [`Ctx::emit`]s its nodes through
//! an [`Emitter`]; any type error while emitting is recorded against the user's call.

use std::panic::Location;

use kiln_ir::{
    BinaryOp, DType, Graph, GraphError, HostTensor, NodeId, Op, ReduceOp, Shape, TensorType,
    TypeError, UnaryOp,
};

use crate::error::{DslError, ErrorKind};
use crate::{GraphBuilder, Tensor};

/// One op application in progress.
pub(crate) struct Ctx {
    pub(crate) b: GraphBuilder,
    name: &'static str,
    loc: &'static Location<'static>,
    types: Vec<TensorType>,
    ids: Vec<NodeId>,
    placeholder: TensorType,
}

/// Starts an op on tensor operands: `let cx = enter!("matmul", self, rhs);`. Returns
/// early with a poisoned tensor when an operand is poisoned or belongs to another
/// builder. The enclosing function must be `#[track_caller]`.
///
/// `enter!("reshape", self; ty)` also sets the type a poisoned result reports (see
/// [`Ctx::placeholder`]), whether the poison comes from an operand or from this op.
macro_rules! enter {
    ($name:expr, $($t:expr),+ $(,)?) => {
        match $crate::ctx::Ctx::new($name, &[$($t),+]) {
            Ok(cx) => cx,
            Err(poisoned) => return poisoned,
        }
    };
    ($name:expr, $($t:expr),+ ; $placeholder:expr) => {
        match $crate::ctx::Ctx::new($name, &[$($t),+]) {
            Ok(cx) => cx.placeholder($placeholder),
            Err(mut poisoned) => {
                poisoned.ty = $placeholder;
                return poisoned;
            }
        }
    };
}
pub(crate) use enter;

/// `let a = or_fail!(cx, normalize_axis(axis, rank));`: the value of an `Ok`, or
/// an early return of the poisoned result with the error recorded (see
/// [`Ctx::fail`]).
macro_rules! or_fail {
    ($cx:expr, $result:expr) => {
        match $result {
            Ok(v) => v,
            Err(e) => return $cx.fail(e),
        }
    };
}
pub(crate) use or_fail;

impl Ctx {
    /// Checks `operands` (at least one) for poison and for coming from one builder.
    #[track_caller]
    pub(crate) fn new(name: &'static str, operands: &[&Tensor]) -> Result<Ctx, Tensor> {
        let loc = Location::caller();
        let first = operands[0];
        let cx = Ctx {
            b: first.b.clone(),
            name,
            loc,
            types: operands.iter().map(|t| t.ty.clone()).collect(),
            ids: Vec::with_capacity(operands.len()),
            placeholder: first.ty.clone(),
        };
        if let Some((index, t)) = operands
            .iter()
            .enumerate()
            .find(|(_, t)| !t.b.same(&first.b))
        {
            let kind = ErrorKind::ForeignOperand {
                index,
                ours: first.b.name(),
                theirs: t.b.name(),
            };
            return Err(cx.fail(kind));
        }
        let mut cx = cx;
        for t in operands {
            match t.node {
                Some(id) => cx.ids.push(id),
                None => return Err(cx.poison()),
            }
        }
        Ok(cx)
    }

    /// An op without tensor operands (leaves, constants).
    #[track_caller]
    pub(crate) fn leaf(b: &GraphBuilder, name: &'static str, placeholder: TensorType) -> Ctx {
        Ctx {
            b: b.clone(),
            name,
            loc: Location::caller(),
            types: Vec::new(),
            ids: Vec::new(),
            placeholder,
        }
    }

    /// Sets the type a poisoned result reports (by default the first operand's).
    pub(crate) fn placeholder(mut self, ty: TensorType) -> Self {
        self.placeholder = ty;
        self
    }

    /// The operand type `i`.
    pub(crate) fn ty(&self, i: usize) -> &TensorType {
        &self.types[i]
    }

    /// A poisoned result, recording nothing.
    pub(crate) fn poison(&self) -> Tensor {
        Tensor::poisoned(&self.b, self.placeholder.clone())
    }

    /// Records `kind` against the user's call and returns a poisoned result.
    pub(crate) fn fail(&self, kind: impl Into<ErrorKind>) -> Tensor {
        self.b.record(DslError {
            location: self.loc,
            op: self.name.to_string(),
            operands: self.types.clone(),
            kind: kind.into(),
        });
        self.poison()
    }

    /// Runs a check on the operand types; on failure records it and returns the
    /// poisoned result to return.
    pub(crate) fn check(
        &self,
        f: impl FnOnce(&[TensorType]) -> Result<(), TypeError>,
    ) -> Result<(), Tensor> {
        f(&self.types).map_err(|e| self.fail(e))
    }

    /// Adds nodes with `f` (given the operand node ids); the node it returns is the
    /// result. A type error is recorded against the user's call.
    pub(crate) fn emit(
        &self,
        f: impl FnOnce(&mut Emitter, &[NodeId]) -> Result<NodeId, TypeError>,
    ) -> Tensor {
        let result = self.b.with_graph(|g| {
            let mut e = Emitter { g };
            f(&mut e, &self.ids).map(|id| (id, e.g.node(id).ty.clone()))
        });
        match result {
            Ok((id, ty)) => Tensor::new(&self.b, id, ty),
            Err(e) => self.fail(e),
        }
    }

    /// Emits a graph-level operation that can fail with a [`GraphError`] (argument
    /// declarations).
    pub(crate) fn emit_graph(
        &self,
        f: impl FnOnce(&mut Graph) -> Result<NodeId, GraphError>,
    ) -> Tensor {
        match self
            .b
            .with_graph(|g| f(g).map(|id| (id, g.node(id).ty.clone())))
        {
            Ok((id, ty)) => Tensor::new(&self.b, id, ty),
            Err(e) => self.fail(e),
        }
    }
}

/// Terse node construction inside [`Ctx::emit`]; every node is type checked by
/// [`Graph::add`].
pub(crate) struct Emitter<'g> {
    g: &'g mut Graph,
}

pub(crate) type Emitted = Result<NodeId, TypeError>;

impl Emitter<'_> {
    pub(crate) fn ty(&self, id: NodeId) -> &TensorType {
        &self.g.node(id).ty
    }

    pub(crate) fn shape(&self, id: NodeId) -> Shape {
        self.g.node(id).ty.shape.clone()
    }

    pub(crate) fn op(&mut self, op: Op, operands: &[NodeId]) -> Emitted {
        self.g.add(op, operands).map_err(|e| match e {
            GraphError::Type { source, .. } => source,
            other => TypeError::Attr(other.to_string()),
        })
    }

    pub(crate) fn unary(&mut self, k: UnaryOp, x: NodeId) -> Emitted {
        self.op(Op::Unary(k), &[x])
    }

    pub(crate) fn binary(&mut self, k: BinaryOp, a: NodeId, b: NodeId) -> Emitted {
        self.op(Op::Binary(k), &[a, b])
    }

    /// A literal scalar.
    pub(crate) fn scalar(&mut self, value: f64, dtype: DType) -> NodeId {
        self.g.constant(HostTensor::scalar(dtype, value))
    }

    /// `value` of `dtype` broadcast to `shape` (a scalar literal plus a broadcast).
    pub(crate) fn splat(&mut self, value: f64, dtype: DType, shape: &Shape) -> Emitted {
        let c = self.scalar(value, dtype);
        self.broadcast(c, shape)
    }

    /// `x` broadcast to `shape`; `x` itself if it already has that shape.
    pub(crate) fn broadcast(&mut self, x: NodeId, shape: &Shape) -> Emitted {
        if self.ty(x).shape == *shape {
            return Ok(x);
        }
        self.op(Op::Broadcast(shape.clone()), &[x])
    }

    /// `x` reshaped; `x` itself if it already has that shape.
    pub(crate) fn reshape(&mut self, x: NodeId, shape: &Shape) -> Emitted {
        if self.ty(x).shape == *shape {
            return Ok(x);
        }
        self.op(Op::Reshape(shape.clone()), &[x])
    }

    pub(crate) fn reduce(
        &mut self,
        kind: ReduceOp,
        x: NodeId,
        axes: Vec<usize>,
        keepdims: bool,
    ) -> Emitted {
        self.op(
            Op::Reduce {
                kind,
                axes,
                keepdims,
            },
            &[x],
        )
    }
}
