//! Contractions and windows: matmul, 2-D convolution and pooling.

use kiln_ir::{Conv2dAttrs, Op, Pool2dAttrs, PoolKind, Shape, TypeError};

use crate::Tensor;
use crate::ctx::enter;
use crate::shapes::broadcast_shapes;

/// A per-spatial-axis `[height, width]` pair; a single `usize` means both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair(pub [usize; 2]);

impl From<usize> for Pair {
    fn from(v: usize) -> Self {
        Pair([v, v])
    }
}

impl From<[usize; 2]> for Pair {
    fn from(v: [usize; 2]) -> Self {
        Pair(v)
    }
}

impl From<(usize, usize)> for Pair {
    fn from((h, w): (usize, usize)) -> Self {
        Pair([h, w])
    }
}

impl Tensor {
    /// Matrix product, following NumPy's `matmul`:
    /// - `[m,k] x [k,n] -> [m,n]`;
    /// - batched `[...,m,k] x [...,k,n]`, batch dimensions broadcast;
    /// - `[...,m,k] x [k,n]` (a shared weight) is computed as one `[(...*m),k] x [k,n]`
    ///   product and reshaped back;
    /// - a rank-1 operand is a row (left) or column (right) vector whose axis is
    ///   dropped from the result.
    #[track_caller]
    pub fn matmul(&self, rhs: &Tensor) -> Tensor {
        let cx = enter!("matmul", self, rhs);
        let (a, b) = (cx.ty(0).clone(), cx.ty(1).clone());
        let (ra, rb) = (a.shape.rank(), b.shape.rank());
        if ra == 0 || rb == 0 {
            return cx.fail(TypeError::Shape(
                "matmul needs operands of rank >= 1".into(),
            ));
        }
        let ka = a.shape.dim(ra - 1);
        let kb = b.shape.dim(rb.saturating_sub(2));
        if ka != kb {
            return cx.fail(TypeError::Shape(format!(
                "matmul inner dimensions differ: {a} x {b} ({ka} != {kb})"
            )));
        }
        // Batch dimensions of both, broadcast.
        let batch_a = &a.shape.dims()[..ra.saturating_sub(2)];
        let batch_b = &b.shape.dims()[..rb.saturating_sub(2)];
        let Some(batch) = broadcast_shapes(&batch_a.into(), &batch_b.into()) else {
            return cx.fail(TypeError::Shape(format!(
                "matmul batch dimensions {a} and {b} do not broadcast"
            )));
        };
        let m = if ra == 1 { 1 } else { a.shape.dim(ra - 2) };
        let n = if rb == 1 { 1 } else { b.shape.dim(rb - 1) };
        // Result dimensions, without the axes of rank-1 operands.
        let mut out = batch.dims().to_vec();
        if ra > 1 {
            out.push(m);
        }
        if rb > 1 {
            out.push(n);
        }
        let out = Shape::new(out);
        cx.emit(|e, x| {
            let with = |batch: &[usize], r: usize, c: usize| {
                let mut d = batch.to_vec();
                d.extend([r, c]);
                Shape::new(d)
            };
            // Both operands as matrices (rank >= 2).
            let xa = e.reshape(x[0], &with(batch_a, m, ka))?;
            let xb = e.reshape(x[1], &with(batch_b, kb, n))?;
            let y = if batch_b.is_empty() && !batch_a.is_empty() {
                // Shared weight: fold the batch into the rows.
                let rows = batch.numel() * m;
                let flat = e.reshape(xa, &Shape::from([rows, ka]))?;
                let y = e.op(Op::MatMul, &[flat, xb])?;
                e.reshape(y, &with(batch.dims(), m, n))?
            } else {
                let xa = e.broadcast(xa, &with(batch.dims(), m, ka))?;
                let xb = e.broadcast(xb, &with(batch.dims(), kb, n))?;
                e.op(Op::MatMul, &[xa, xb])?
            };
            e.reshape(y, &out)
        })
    }

    /// 2-D cross-correlation of an NCHW input with an OIHW `weight`, as PyTorch's
    /// `conv2d` (no bias: add one broadcast from `[1, O, 1, 1]`). `stride`,
    /// `padding` (zeros, both sides) and `dilation` take a `usize` or `[h, w]`.
    #[track_caller]
    pub fn conv2d(
        &self,
        weight: &Tensor,
        stride: impl Into<Pair>,
        padding: impl Into<Pair>,
        dilation: impl Into<Pair>,
    ) -> Tensor {
        let attrs = conv_attrs(stride, padding, dilation);
        let cx = enter!("conv2d", self, weight);
        cx.emit(|e, x| e.op(Op::Conv2d(attrs), x))
    }

    /// Transposed 2-D convolution of an NCHW input with an IOHW `weight` (PyTorch's
    /// `conv_transpose2d` layout): the adjoint of [`Tensor::conv2d`] with the same
    /// geometry. `output_padding` adds rows/columns at the bottom/right.
    #[track_caller]
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        stride: impl Into<Pair>,
        padding: impl Into<Pair>,
        output_padding: impl Into<Pair>,
        dilation: impl Into<Pair>,
    ) -> Tensor {
        let conv = conv_attrs(stride, padding, dilation);
        let output_padding = output_padding.into().0;
        let cx = enter!("conv_transpose2d", self, weight);
        cx.emit(|e, x| {
            e.op(
                Op::ConvTranspose2d {
                    conv,
                    output_padding,
                },
                x,
            )
        })
    }

    #[track_caller]
    fn pool2d(
        &self,
        name: &'static str,
        kind: PoolKind,
        kernel: Pair,
        stride: Pair,
        padding: Pair,
    ) -> Tensor {
        let attrs = Pool2dAttrs {
            kind,
            kernel: kernel.0,
            stride: stride.0,
            padding: padding.0,
        };
        let cx = enter!(name, self);
        cx.emit(|e, x| e.op(Op::Pool2d(attrs), x))
    }

    /// 2-D max pooling of an NCHW input (padding counts as `-inf`).
    #[track_caller]
    pub fn max_pool2d(
        &self,
        kernel: impl Into<Pair>,
        stride: impl Into<Pair>,
        padding: impl Into<Pair>,
    ) -> Tensor {
        self.pool2d(
            "max_pool2d",
            PoolKind::Max,
            kernel.into(),
            stride.into(),
            padding.into(),
        )
    }

    /// 2-D average pooling of an NCHW input; divides by the full window, padding
    /// included (PyTorch's default `count_include_pad=True`).
    #[track_caller]
    pub fn avg_pool2d(
        &self,
        kernel: impl Into<Pair>,
        stride: impl Into<Pair>,
        padding: impl Into<Pair>,
    ) -> Tensor {
        self.pool2d(
            "avg_pool2d",
            PoolKind::Avg,
            kernel.into(),
            stride.into(),
            padding.into(),
        )
    }
}

/// The attributes of a convolution with this geometry.
fn conv_attrs(
    stride: impl Into<Pair>,
    padding: impl Into<Pair>,
    dilation: impl Into<Pair>,
) -> Conv2dAttrs {
    Conv2dAttrs {
        stride: stride.into().0,
        padding: padding.into().0,
        dilation: dilation.into().0,
    }
}
