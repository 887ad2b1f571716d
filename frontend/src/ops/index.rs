//! Indexing ops: row gather (embedding lookup), its adjoint scatter-add, one-hot.

use kiln_ir::{DType, Op};

use crate::Tensor;
use crate::ctx::enter;

impl Tensor {
    /// Rows of this `[V, ...]` table picked by i32 `indices` of any shape: the result
    /// is `[indices..., ...]` (an embedding lookup).
    #[track_caller]
    pub fn gather(&self, indices: &Tensor) -> Tensor {
        let cx = enter!("gather", self, indices);
        cx.emit(|e, x| e.op(Op::Gather, x))
    }

    /// Alias of [`Tensor::gather`] reading as the layer does: `table.embedding(&ids)`.
    #[track_caller]
    pub fn embedding(&self, ids: &Tensor) -> Tensor {
        self.gather(ids)
    }

    /// Zeros of `[rows, ...]` with these updates `[indices..., ...]` added at the rows
    /// given by i32 `indices` (the adjoint of [`Tensor::gather`]).
    #[track_caller]
    pub fn scatter_add(&self, indices: &Tensor, rows: usize) -> Tensor {
        let cx = enter!("scatter_add", indices, self);
        cx.emit(|e, x| e.op(Op::ScatterAdd { rows }, x))
    }

    /// These i32 indices as one-hot vectors of length `depth` and type `dtype`: the
    /// result has one more axis, at the end.
    #[track_caller]
    pub fn one_hot(&self, depth: usize, dtype: DType) -> Tensor {
        let mut dims = self.dims().to_vec();
        dims.push(depth);
        let cx = enter!("one_hot", self; kiln_ir::TensorType::new(dtype, dims));
        cx.emit(|e, x| e.op(Op::OneHot { depth, dtype }, x))
    }
}
