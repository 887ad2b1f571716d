//! Host tensors: dense, row-major values living in ordinary Rust memory.
//!
//! They are the literals of `const` nodes, the inputs and outputs of the reference
//! interpreter, and what users hand to compiled functions.

use std::fmt;

use crate::{DType, Shape, TensorType};

/// The elements of a [`HostTensor`], one variant per [`DType`].
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F64(_) => DType::F64,
            TensorData::I32(_) => DType::I32,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Error building a [`HostTensor`] whose data does not fit its shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shape {shape} needs {expected} elements but {got} were given")]
pub struct DataLenMismatch {
    pub shape: Shape,
    pub expected: usize,
    pub got: usize,
}

/// A dense, row-major tensor on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    shape: Shape,
    data: TensorData,
}

impl HostTensor {
    /// A tensor from its shape and data; fails if the element count differs.
    pub fn new(shape: impl Into<Shape>, data: TensorData) -> Result<Self, DataLenMismatch> {
        let shape = shape.into();
        if shape.numel() != data.len() {
            return Err(DataLenMismatch {
                expected: shape.numel(),
                got: data.len(),
                shape,
            });
        }
        Ok(HostTensor { shape, data })
    }

    pub fn from_f32(shape: impl Into<Shape>, data: Vec<f32>) -> Result<Self, DataLenMismatch> {
        Self::new(shape, TensorData::F32(data))
    }

    pub fn from_f64(shape: impl Into<Shape>, data: Vec<f64>) -> Result<Self, DataLenMismatch> {
        Self::new(shape, TensorData::F64(data))
    }

    pub fn from_i32(shape: impl Into<Shape>, data: Vec<i32>) -> Result<Self, DataLenMismatch> {
        Self::new(shape, TensorData::I32(data))
    }

    pub fn from_bool(shape: impl Into<Shape>, data: Vec<bool>) -> Result<Self, DataLenMismatch> {
        Self::new(shape, TensorData::Bool(data))
    }

    /// A tensor of `shape` with every element equal to `value`, converted to `dtype`
    /// (`as` semantics for integers; non-zero is `true` for bool).
    pub fn full(dtype: DType, shape: impl Into<Shape>, value: f64) -> Self {
        let shape = shape.into();
        let n = shape.numel();
        let data = match dtype {
            DType::F32 => TensorData::F32(vec![value as f32; n]),
            DType::F64 => TensorData::F64(vec![value; n]),
            DType::I32 => TensorData::I32(vec![value as i32; n]),
            DType::Bool => TensorData::Bool(vec![value != 0.0; n]),
        };
        HostTensor { shape, data }
    }

    /// A rank-0 tensor holding `value` as `dtype`.
    pub fn scalar(dtype: DType, value: f64) -> Self {
        Self::full(dtype, Shape::scalar(), value)
    }

    /// A tensor of `ty` whose elements are `f(i)` for flat index `i`, converted to its dtype.
    pub fn from_fn(ty: &TensorType, mut f: impl FnMut(usize) -> f64) -> Self {
        let n = ty.shape.numel();
        let data = match ty.dtype {
            DType::F32 => TensorData::F32((0..n).map(|i| f(i) as f32).collect()),
            DType::F64 => TensorData::F64((0..n).map(&mut f).collect()),
            DType::I32 => TensorData::I32((0..n).map(|i| f(i) as i32).collect()),
            DType::Bool => TensorData::Bool((0..n).map(|i| f(i) != 0.0).collect()),
        };
        HostTensor {
            shape: ty.shape.clone(),
            data,
        }
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn ty(&self) -> TensorType {
        TensorType::new(self.dtype(), self.shape.clone())
    }

    pub fn data(&self) -> &TensorData {
        &self.data
    }

    pub fn into_data(self) -> TensorData {
        self.data
    }

    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// The address of the first element, for runtimes that fill the tensor in place
    /// (`numel() * dtype().size_bytes()` bytes; a bool element must stay 0 or 1).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        match &mut self.data {
            TensorData::F32(v) => v.as_mut_ptr() as *mut u8,
            TensorData::F64(v) => v.as_mut_ptr() as *mut u8,
            TensorData::I32(v) => v.as_mut_ptr() as *mut u8,
            TensorData::Bool(v) => v.as_mut_ptr() as *mut u8,
        }
    }

    /// The elements as bytes, in memory order (a bool is one byte, 0 or 1).
    pub fn as_bytes(&self) -> &[u8] {
        let (ptr, len) = match &self.data {
            TensorData::F32(v) => (v.as_ptr() as *const u8, v.len() * 4),
            TensorData::F64(v) => (v.as_ptr() as *const u8, v.len() * 8),
            TensorData::I32(v) => (v.as_ptr() as *const u8, v.len() * 4),
            TensorData::Bool(v) => (v.as_ptr() as *const u8, v.len()),
        };
        // SAFETY: every element type is plain old data without padding, and `bool`
        // is one byte holding 0 or 1; the slice borrows `self`.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<&[f64]> {
        match &self.data {
            TensorData::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_i32(&self) -> Option<&[i32]> {
        match &self.data {
            TensorData::I32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<&[bool]> {
        match &self.data {
            TensorData::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// Every element widened to f64 (bool as 0/1), for comparisons in tests and tools.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match &self.data {
            TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::F64(v) => v.clone(),
            TensorData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
        }
    }

    /// Element `i` (flat, row-major) widened to f64.
    pub fn get_f64(&self, i: usize) -> f64 {
        match &self.data {
            TensorData::F32(v) => v[i] as f64,
            TensorData::F64(v) => v[i],
            TensorData::I32(v) => v[i] as f64,
            TensorData::Bool(v) => v[i] as u8 as f64,
        }
    }

    /// This tensor converted to `dtype` (`as` semantics; bool is 0/1).
    pub fn cast(&self, dtype: DType) -> HostTensor {
        if dtype == self.dtype() {
            return self.clone();
        }
        // Integers and floats convert through f64 exactly for every i32 and f32 value.
        HostTensor::from_fn(&TensorType::new(dtype, self.shape.clone()), |i| {
            self.get_f64(i)
        })
    }

    /// The same data viewed with another shape of equal element count.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<HostTensor, DataLenMismatch> {
        HostTensor::new(shape, self.data.clone())
    }
}

impl fmt::Display for HostTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{} ", self.dtype(), self.shape)?;
        const MAX: usize = 16;
        f.write_str("[")?;
        for i in 0..self.numel().min(MAX) {
            if i > 0 {
                f.write_str(", ")?;
            }
            match &self.data {
                TensorData::F32(v) => write!(f, "{:?}", v[i])?,
                TensorData::F64(v) => write!(f, "{:?}", v[i])?,
                TensorData::I32(v) => write!(f, "{}", v[i])?,
                TensorData::Bool(v) => write!(f, "{}", v[i])?,
            }
        }
        if self.numel() > MAX {
            write!(f, ", ... ({} elements)", self.numel())?;
        }
        f.write_str("]")
    }
}
