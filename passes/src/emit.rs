//! Terse node construction for passes that add many nodes (autodiff, rewrites).
//!
//! Every method adds one node through [`Graph::add`], so each emitted node is type
//! checked; a failure here means the pass itself built an ill-typed graph.

use kiln_ir::{
    BinaryOp, CmpOp, DType, Graph, GraphError, HostTensor, NodeId, Op, ReduceOp, Shape, TensorType,
    UnaryOp,
};

/// A mutable borrow of a graph with one-line builders for common nodes.
pub struct Emitter<'g> {
    pub graph: &'g mut Graph,
}

pub type EmitResult = Result<NodeId, GraphError>;

impl<'g> Emitter<'g> {
    pub fn new(graph: &'g mut Graph) -> Self {
        Emitter { graph }
    }

    pub fn ty(&self, n: NodeId) -> &TensorType {
        &self.graph.node(n).ty
    }

    pub fn op(&mut self, op: Op, operands: &[NodeId]) -> EmitResult {
        self.graph.add(op, operands)
    }

    pub fn unary(&mut self, k: UnaryOp, x: NodeId) -> EmitResult {
        self.op(Op::Unary(k), &[x])
    }

    pub fn binary(&mut self, k: BinaryOp, a: NodeId, b: NodeId) -> EmitResult {
        self.op(Op::Binary(k), &[a, b])
    }

    pub fn add(&mut self, a: NodeId, b: NodeId) -> EmitResult {
        self.binary(BinaryOp::Add, a, b)
    }

    pub fn sub(&mut self, a: NodeId, b: NodeId) -> EmitResult {
        self.binary(BinaryOp::Sub, a, b)
    }

    pub fn mul(&mut self, a: NodeId, b: NodeId) -> EmitResult {
        self.binary(BinaryOp::Mul, a, b)
    }

    pub fn div(&mut self, a: NodeId, b: NodeId) -> EmitResult {
        self.binary(BinaryOp::Div, a, b)
    }

    pub fn neg(&mut self, x: NodeId) -> EmitResult {
        self.unary(UnaryOp::Neg, x)
    }

    pub fn cmp(&mut self, k: CmpOp, a: NodeId, b: NodeId) -> EmitResult {
        self.op(Op::Compare(k), &[a, b])
    }

    pub fn select(&mut self, c: NodeId, a: NodeId, b: NodeId) -> EmitResult {
        self.op(Op::Select, &[c, a, b])
    }

    pub fn cast(&mut self, x: NodeId, to: DType) -> EmitResult {
        self.op(Op::Cast(to), &[x])
    }

    /// A tensor of `value` with the type of `like`: a scalar literal broadcast to the
    /// shape (later stages fold the broadcast into the consumer).
    pub fn splat(&mut self, value: f64, like: &TensorType) -> EmitResult {
        let c = self.graph.constant(HostTensor::scalar(like.dtype, value));
        if like.shape.rank() == 0 {
            return Ok(c);
        }
        self.broadcast(c, like.shape.clone())
    }

    /// `x * value` with `value` splatted to x's type.
    pub fn scale(&mut self, x: NodeId, value: f64) -> EmitResult {
        let ty = self.ty(x).clone();
        let c = self.splat(value, &ty)?;
        self.mul(x, c)
    }

    pub fn broadcast(&mut self, x: NodeId, shape: Shape) -> EmitResult {
        if self.ty(x).shape == shape {
            return Ok(x);
        }
        self.op(Op::Broadcast(shape), &[x])
    }

    pub fn reshape(&mut self, x: NodeId, shape: Shape) -> EmitResult {
        if self.ty(x).shape == shape {
            return Ok(x);
        }
        self.op(Op::Reshape(shape), &[x])
    }

    pub fn transpose(&mut self, x: NodeId, perm: Vec<usize>) -> EmitResult {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(x);
        }
        self.op(Op::Transpose(perm), &[x])
    }

    /// Swaps the last two axes.
    pub fn transpose_last2(&mut self, x: NodeId) -> EmitResult {
        let r = self.ty(x).shape.rank();
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        self.transpose(x, perm)
    }

    pub fn reduce(
        &mut self,
        kind: ReduceOp,
        x: NodeId,
        axes: Vec<usize>,
        keepdims: bool,
    ) -> EmitResult {
        if axes.is_empty() {
            return Ok(x);
        }
        self.op(
            Op::Reduce {
                kind,
                axes,
                keepdims,
            },
            &[x],
        )
    }

    pub fn sum(&mut self, x: NodeId, axes: Vec<usize>, keepdims: bool) -> EmitResult {
        self.reduce(ReduceOp::Sum, x, axes, keepdims)
    }

    /// Sums `x` down to `shape`, undoing a NumPy broadcast from `shape` to x's shape.
    pub fn sum_to(&mut self, x: NodeId, shape: &Shape) -> EmitResult {
        let from = self.ty(x).shape.clone();
        let lead = from.rank() - shape.rank();
        let axes: Vec<usize> = (0..from.rank())
            .filter(|&i| i < lead || (shape.dim(i - lead) == 1 && from.dim(i) != 1))
            .collect();
        let s = self.sum(x, axes, false)?;
        self.reshape(s, shape.clone())
    }
}
