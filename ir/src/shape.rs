//! Static tensor shapes and tensor types.

use std::fmt;

use crate::DType;

/// A static, row-major tensor shape. A scalar has rank 0 and one element.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shape(Vec<usize>);

impl Shape {
    /// A shape from its dimensions, outermost first.
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }

    /// The rank-0 shape.
    pub fn scalar() -> Self {
        Shape(Vec::new())
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a scalar, 0 if any dimension is 0). Saturates at
    /// `usize::MAX` instead of overflowing; graphs reject types above
    /// [`MAX_ELEMENTS`], so within a valid graph the count is exact.
    pub fn numel(&self) -> usize {
        self.0.iter().fold(1usize, |n, &d| n.saturating_mul(d))
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        let mut strides = vec![1; self.0.len()];
        for i in (0..self.0.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * self.0[i + 1];
        }
        strides
    }

    /// Dimension `axis`; panics if out of range (callers check ranks first).
    pub fn dim(&self, axis: usize) -> usize {
        self.0[axis]
    }

    pub fn into_vec(self) -> Vec<usize> {
        self.0
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Self {
        Shape(v)
    }
}

impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Self {
        Shape(v.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Self {
        Shape(v.to_vec())
    }
}

impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}

/// The largest element count of any tensor type in a graph (2^48): every byte
/// offset into such a tensor fits comfortably in an `isize`.
pub const MAX_ELEMENTS: usize = 1 << 48;

/// The type of a tensor value: element type and static shape, printed `f32[64,128]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Shape,
}

impl TensorType {
    pub fn new(dtype: DType, shape: impl Into<Shape>) -> Self {
        TensorType {
            dtype,
            shape: shape.into(),
        }
    }

    /// `length` values of this type stacked along a new leading axis (a loop's
    /// `xs` and `ys`).
    pub fn stacked(&self, length: usize) -> TensorType {
        let mut dims = vec![length];
        dims.extend_from_slice(self.shape.dims());
        TensorType::new(self.dtype, dims)
    }

    /// Size of a dense buffer holding a value of this type (saturating).
    pub fn size_bytes(&self) -> usize {
        self.shape.numel().saturating_mul(self.dtype.size_bytes())
    }

    /// `Err` naming the type if a value of it could not be addressed: more than
    /// [`MAX_ELEMENTS`] elements.
    pub fn check_size(&self) -> Result<(), String> {
        if self.shape.numel() > MAX_ELEMENTS {
            return Err(format!("{self} has more than {MAX_ELEMENTS} elements"));
        }
        Ok(())
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, self.shape)
    }
}

/// `types` as a comma-separated list, for error messages about operands.
pub(crate) fn join_types(types: &[TensorType]) -> String {
    types
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_and_numel() {
        let s = Shape::from([2, 3, 5]);
        assert_eq!(s.strides(), vec![15, 5, 1]);
        assert_eq!(s.numel(), 30);
        assert_eq!(Shape::scalar().numel(), 1);
        assert_eq!(Shape::scalar().strides(), Vec::<usize>::new());
        assert_eq!(
            TensorType::new(DType::F32, [64, 128]).to_string(),
            "f32[64,128]"
        );
        assert_eq!(TensorType::new(DType::I32, []).to_string(), "i32[]");
    }
}
