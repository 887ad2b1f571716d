//! Reductions and the numerically stable normalizations built on them (softmax,
//! log-softmax, log-sum-exp).

use kiln_ir::{BinaryOp, NodeId, Op, ReduceOp, UnaryOp};

use crate::Tensor;
use crate::ctx::{Emitted, Emitter, enter, or_fail};
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

/// Per reduction kind, two `Tensor` methods: `$name` over given axes and `$all`
/// over all elements (to a scalar).
macro_rules! reductions {
    ($($kind:ident: $name:ident, $all:ident, $what:literal;)*) => {$(
        #[doc = concat!($what, " over `axes` (negative counts from the end); `keepdim` keeps them as size 1.")]
        #[track_caller]
        pub fn $name(&self, axes: &[isize], keepdim: bool) -> Tensor {
            self.reduce(stringify!($name), ReduceOp::$kind, axes, keepdim)
        }

        #[doc = concat!($what, " of all elements (a scalar).")]
        #[track_caller]
        pub fn $all(&self) -> Tensor {
            let all: Vec<isize> = (0..self.rank() as isize).collect();
            self.reduce(stringify!($all), ReduceOp::$kind, &all, false)
        }
    )*};
}

impl Tensor {
    #[track_caller]
    fn reduce(&self, name: &'static str, kind: ReduceOp, axes: &[isize], keepdim: bool) -> Tensor {
        let cx = enter!(name, self);
        let axes = or_fail!(cx, normalize_axes(axes, self.rank()));
        cx.emit(|e, x| e.reduce(kind, x[0], axes, keepdim))
    }

    /// An op along one axis: `f(e, x, axis)` emits it once `axis` is normalized.
    #[track_caller]
    fn along(
        &self,
        name: &'static str,
        axis: isize,
        f: impl FnOnce(&mut Emitter, NodeId, usize) -> Emitted,
    ) -> Tensor {
        let cx = enter!(name, self);
        let axis = or_fail!(cx, normalize_axis(axis, self.rank()));
        cx.emit(|e, x| f(e, x[0], axis))
    }

    reductions! {
        Sum: sum, sum_all, "Sum";
        Mean: mean, mean_all, "Mean";
        Max: max, max_all, "Maximum";
        Min: min, min_all, "Minimum";
    }

    /// The i32 index of the first maximum along `axis`.
    #[track_caller]
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Tensor {
        self.along("argmax", axis, |e, x, axis| {
            e.op(
                Op::ArgMax {
                    axis,
                    keepdims: keepdim,
                },
                &[x],
            )
        })
    }

    /// `exp(x) / sum(exp(x))` along `axis`, computed as
    /// `exp(x - max) / sum(exp(x - max))` so large logits do not overflow.
    #[track_caller]
    pub fn softmax(&self, axis: isize) -> Tensor {
        self.along("softmax", axis, |e, x, axis| {
            let shape = e.shape(x);
            let d = shifted(e, x, axis)?;
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
        self.along("log_softmax", axis, |e, x, axis| {
            let shape = e.shape(x);
            let d = shifted(e, x, axis)?;
            let lse = log_sum_exp_kept(e, d, axis)?;
            let lse = e.broadcast(lse, &shape)?;
            e.binary(BinaryOp::Sub, d, lse)
        })
    }

    /// `log(sum(exp(x)))` along `axis`, computed stably as
    /// `max + log(sum(exp(x - max)))`.
    #[track_caller]
    pub fn logsumexp(&self, axis: isize, keepdim: bool) -> Tensor {
        self.along("logsumexp", axis, |e, x, axis| {
            let shape = e.shape(x);
            let m = shift(e, x, axis)?;
            let mb = e.broadcast(m, &shape)?;
            let d = e.binary(BinaryOp::Sub, x, mb)?;
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
