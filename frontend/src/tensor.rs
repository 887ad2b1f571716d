//! The symbolic tensor handle.

use std::fmt;

use kiln_ir::{DType, NodeId, Shape, TensorType};

use crate::GraphBuilder;

/// A symbolic tensor: a node of the graph a [`GraphBuilder`] is building, with its
/// type. Cloning is cheap (it shares the builder).
///
/// Ops are methods (`x.matmul(&w).relu()`) and operators (`&a + &b`, `&x * 2.0`,
/// `1.0 - &p`, `-&x`). They never panic on bad operands: they record an error in the
/// builder, naming the line of the call, and return a *poisoned* tensor, which every
/// later op passes through silently; [`GraphBuilder::build`] then reports the error.
///
/// A poisoned tensor still reports a type so that code inspecting shapes keeps
/// running: the declared type for arguments, else its first operand's type. The
/// value is meaningless; check [`Tensor::is_poisoned`] where it matters.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("affine");
/// let x = g.input("x", DType::F32, [4, 3]);
/// let w = g.param("w", HostTensor::from_f32([3, 2], vec![1.0; 6]).unwrap());
/// let b = g.param("b", HostTensor::from_f32([2], vec![0.5, -0.5]).unwrap());
/// let y = (x.matmul(&w) + &b).relu();
/// assert_eq!(y.dims(), &[4, 2]);
/// assert_eq!(y.dtype(), DType::F32);
///
/// let bad = x.matmul(&x); // [4,3] x [4,3]: recorded, not panicking
/// assert!(bad.is_poisoned());
/// assert!(g.check().is_err());
/// ```
#[derive(Clone)]
pub struct Tensor {
    pub(crate) b: GraphBuilder,
    /// `None` for a poisoned tensor.
    pub(crate) node: Option<NodeId>,
    pub(crate) ty: TensorType,
}

impl Tensor {
    pub(crate) fn new(b: &GraphBuilder, node: NodeId, ty: TensorType) -> Tensor {
        Tensor {
            b: b.clone(),
            node: Some(node),
            ty,
        }
    }

    pub(crate) fn poisoned(b: &GraphBuilder, ty: TensorType) -> Tensor {
        Tensor {
            b: b.clone(),
            node: None,
            ty,
        }
    }

    /// The tensor's type (dtype and shape).
    pub fn ty(&self) -> &TensorType {
        &self.ty
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.ty.shape
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        self.ty.shape.dims()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.ty.dtype
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.ty.shape.rank()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.ty.shape.numel()
    }

    /// The builder this tensor belongs to.
    pub fn builder(&self) -> &GraphBuilder {
        &self.b
    }

    /// The graph node computing this tensor (in the builder's graph, before
    /// [`GraphBuilder::build`] renumbers nodes); `None` if poisoned.
    pub fn node(&self) -> Option<NodeId> {
        self.node
    }

    /// The node's name: an argument's declared name, or a name given to the node.
    pub fn name(&self) -> Option<String> {
        let id = self.node?;
        self.b.with_graph(|g| g.node(id).name.clone())
    }

    /// True if an earlier mistake made this tensor meaningless (see the type docs).
    pub fn is_poisoned(&self) -> bool {
        self.node.is_none()
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node {
            Some(n) => write!(f, "Tensor(%{}: {})", n.index(), self.ty),
            None => write!(f, "Tensor(poisoned: {})", self.ty),
        }
    }
}

/// An operand of an elementwise op: a tensor or a scalar literal. Scalars become
/// `const` nodes of the other operand's dtype, broadcast to the result shape.
///
/// Methods taking `impl Into<Operand>` accept `&Tensor`, `f32`, `f64` and `i32`:
/// `x.maximum(0.0)`, `x.add(&y)`, `x.lt(0.5)`.
#[derive(Clone, Copy, Debug)]
pub enum Operand<'a> {
    /// A tensor operand.
    Tensor(&'a Tensor),
    /// A scalar literal, converted to the dtype of the tensor operands.
    Scalar(f64),
}

impl<'a> From<&'a Tensor> for Operand<'a> {
    fn from(t: &'a Tensor) -> Self {
        Operand::Tensor(t)
    }
}

impl From<f32> for Operand<'_> {
    fn from(x: f32) -> Self {
        Operand::Scalar(x as f64)
    }
}

impl From<f64> for Operand<'_> {
    fn from(x: f64) -> Self {
        Operand::Scalar(x)
    }
}

impl From<i32> for Operand<'_> {
    fn from(x: i32) -> Self {
        Operand::Scalar(x as f64)
    }
}
