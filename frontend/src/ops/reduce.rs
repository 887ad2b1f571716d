//! Reductions and the numerically stable normalizations built on them (softmax,
//! log-softmax, log-sum-exp).

use kiln_ir::{BinaryOp, NodeId, Op, ReduceOp, UnaryOp};

use crate::Tensor;
use crate::ctx::{Emitted, Emitter, enter};
use crate::shapes::{normalize_axes, normalize_axis};

/// `x - max(x, axis)` with the max broadcast back: the shift that makes `exp` safe.
/// Softmax is invariant to it, so it is a pure numerical device.
fn shifted(e: &mut Emitter, x: NodeId, axis: usize) -> Emitted {
    let shape = e.shape(x);
    let m = shift(e, x, axis)?;
    let m = e.broadcast(m, &shape)?;
    e.binary(BinaryOp::Sub, x, m)
}

/// The max over `axis` (kept), as a constant for autodiff: any shift leaves softmax
/// and log-sum-exp unchanged, so its gradient contributions cancel exactly and
/// building them would only cost backward-pass work.
fn shift(e: &mut Emitter, x: NodeId, axis: usize) -> Emitted {
    let m = e.reduce(ReduceOp::Max, x, vec![axis], true)?;
    e.op(Op::StopGradient, &[m])
}

/// `log(sum(exp(d), axis))`, keeping the axis.
fn log_sum_exp_kept(e: &mut Emitter, d: NodeId, axis: usize) -> Emitted {
    let ex = e.unary(UnaryOp::Exp, d)?;
    let s = e.reduce(ReduceOp::Sum, ex, vec![axis], true)?;
    e.unary(UnaryOp::Log, s)
}

impl Tensor {
    #[track_caller]
    fn reduce(&self, name: &'static str, kind: ReduceOp, axes: &[isize], keepdim: bool) -> Tensor {
        let cx = enter!(name, self);
        let axes = match normalize_axes(axes, self.rank()) {
            Ok(a) => a,
            Err(e) => return cx.fail(e),
        };
        cx.emit(|e, x| e.reduce(kind, x[0], axes, keepdim))
    }

    /// Sum over `axes` (negative counts from the end); `keepdim` keeps them as size 1.
    #[track_caller]
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Tensor {
        self.reduce("sum", ReduceOp::Sum, axes, keepdim)
    }

    /// Mean over `axes`.
    #[track_caller]
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Tensor {
        self.reduce("mean", ReduceOp::Mean, axes, keepdim)
    }

    /// Maximum over `axes`.
    #[track_caller]
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Tensor {
        self.reduce("max", ReduceOp::Max, axes, keepdim)
    }

    /// Minimum over `axes`.
    #[track_caller]
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Tensor {
        self.reduce("min", ReduceOp::Min, axes, keepdim)
    }

    fn all_axes(&self) -> Vec<isize> {
        (0..self.rank() as isize).collect()
    }

    /// Sum of all elements (a scalar).
    #[track_caller]
    pub fn sum_all(&self) -> Tensor {
        self.reduce("sum_all", ReduceOp::Sum, &self.all_axes(), false)
    }

    /// Mean of all elements (a scalar).
    #[track_caller]
    pub fn mean_all(&self) -> Tensor {
        self.reduce("mean_all", ReduceOp::Mean, &self.all_axes(), false)
    }

    /// Maximum of all elements (a scalar).
    #[track_caller]
    pub fn max_all(&self) -> Tensor {
        self.reduce("max_all", ReduceOp::Max, &self.all_axes(), false)
    }

    /// Minimum of all elements (a scalar).
    #[track_caller]
    pub fn min_all(&self) -> Tensor {
        self.reduce("min_all", ReduceOp::Min, &self.all_axes(), false)
    }

    /// The i32 index of the first maximum along `axis`.
    #[track_caller]
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Tensor {
        let cx = enter!("argmax", self);
        let axis = match normalize_axis(axis, self.rank()) {
            Ok(a) => a,
            Err(e) => return cx.fail(e),
        };
        cx.emit(|e, x| {
            e.op(
                Op::ArgMax {
                    axis,
                    keepdims: keepdim,
                },
                &[x[0]],
            )
        })
    }

    /// `exp(x) / sum(exp(x))` along `axis`, computed as
    /// `exp(x - max) / sum(exp(x - max))` so large logits do not overflow.
    #[track_caller]
    pub fn softmax(&self, axis: isize) -> Tensor {
        let cx = enter!("softmax", self);
        let axis = match normalize_axis(axis, self.rank()) {
            Ok(a) => a,
            Err(e) => return cx.fail(e),
        };
        cx.emit(|e, x| {
            let shape = e.shape(x[0]);
            let d = shifted(e, x[0], axis)?;
            let ex = e.unary(UnaryOp::Exp, d)?;
            let s = e.reduce(ReduceOp::Sum, ex, vec![axis], true)?;
            let s = e.broadcast(s, &shape)?;
            e.binary(BinaryOp::Div, ex, s)
        })
    }

    /// `log(softmax(x))` along `axis`, computed stably as
    /// `(x - max) - log(sum(exp(x - max)))`.
    #[track_caller]
    pub fn log_softmax(&self, axis: isize) -> Tensor {
        let cx = enter!("log_softmax", self);
        let axis = match normalize_axis(axis, self.rank()) {
            Ok(a) => a,
            Err(e) => return cx.fail(e),
        };
        cx.emit(|e, x| {
            let shape = e.shape(x[0]);
            let d = shifted(e, x[0], axis)?;
            let lse = log_sum_exp_kept(e, d, axis)?;
            let lse = e.broadcast(lse, &shape)?;
            e.binary(BinaryOp::Sub, d, lse)
        })
    }

    /// `log(sum(exp(x)))` along `axis`, computed stably as
    /// `max + log(sum(exp(x - max)))`.
    #[track_caller]
    pub fn logsumexp(&self, axis: isize, keepdim: bool) -> Tensor {
        let cx = enter!("logsumexp", self);
        let axis = match normalize_axis(axis, self.rank()) {
            Ok(a) => a,
            Err(e) => return cx.fail(e),
        };
        cx.emit(|e, x| {
            let shape = e.shape(x[0]);
            let m = shift(e, x[0], axis)?;
            let mb = e.broadcast(m, &shape)?;
            let d = e.binary(BinaryOp::Sub, x[0], mb)?;
            let lse = log_sum_exp_kept(e, d, axis)?;
            let out = e.binary(BinaryOp::Add, m, lse)?;
            if keepdim {
                return Ok(out);
            }
            let mut dims = shape.dims().to_vec();
            dims.remove(axis);
            e.reshape(out, &dims.into())
        })
    }
}
