//! Movement ops: reshape, flatten, (un)squeeze, transpose/permute, slicing, padding,
//! concatenation.

use std::ops::{Bound, RangeBounds};

use kiln_ir::{Op, Shape, TensorType, TypeError};

use crate::Tensor;
use crate::ctx::{Ctx, enter, or_fail};
use crate::shapes::normalize_axis;

/// The target of [`Tensor::reshape`]: dimensions, at most one of which may be `-1`
/// (inferred from the element count, as in PyTorch).
///
/// Built from arrays, slices and vectors of `usize`, `isize` or `i32` (integer
/// literals: `[2, -1]`), and from [`Shape`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewShape(Vec<i64>);

impl NewShape {
    /// The concrete shape for `numel` elements.
    fn resolve(&self, numel: usize) -> Result<Shape, TypeError> {
        let err = |why: &str| TypeError::Shape(format!("cannot reshape to {:?}: {why}", self.0));
        let inferred: Vec<usize> = (0..self.0.len()).filter(|&i| self.0[i] == -1).collect();
        if inferred.len() > 1 {
            return Err(err("more than one -1"));
        }
        if self.0.iter().any(|&d| d < -1) {
            return Err(err("negative dimension"));
        }
        let known: usize = self
            .0
            .iter()
            .filter(|&&d| d >= 0)
            .map(|&d| d as usize)
            .product();
        let mut dims: Vec<usize> = self.0.iter().map(|&d| d.max(0) as usize).collect();
        if let Some(&i) = inferred.first() {
            if known == 0 || !numel.is_multiple_of(known) {
                return Err(err(&format!(
                    "{numel} elements do not divide into the known dimensions"
                )));
            }
            dims[i] = numel / known;
        }
        Ok(Shape::new(dims))
    }
}

macro_rules! new_shape_from {
    ($($t:ty),*) => {$(
        impl<const N: usize> From<[$t; N]> for NewShape {
            fn from(v: [$t; N]) -> Self {
                NewShape(v.iter().map(|&d| d as i64).collect())
            }
        }
        impl From<&[$t]> for NewShape {
            fn from(v: &[$t]) -> Self {
                NewShape(v.iter().map(|&d| d as i64).collect())
            }
        }
        impl From<Vec<$t>> for NewShape {
            fn from(v: Vec<$t>) -> Self {
                NewShape(v.iter().map(|&d| d as i64).collect())
            }
        }
    )*};
}
new_shape_from!(usize, isize, i32);

impl From<Shape> for NewShape {
    fn from(s: Shape) -> Self {
        s.dims().into()
    }
}

impl From<&Shape> for NewShape {
    fn from(s: &Shape) -> Self {
        s.dims().into()
    }
}

/// `start..end` of a range over an axis of size `size` (clamped by the caller's check).
fn bounds(range: &impl RangeBounds<usize>, size: usize) -> (usize, usize) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e + 1,
        Bound::Excluded(&e) => e,
        Bound::Unbounded => size,
    };
    (start, end)
}

impl Tensor {
    /// The same elements in another shape; one dimension may be `-1`:
    /// `x.reshape([2, -1])`.
    #[track_caller]
    pub fn reshape(&self, shape: impl Into<NewShape>) -> Tensor {
        let target = shape.into().resolve(self.numel());
        let placeholder = match &target {
            Ok(s) => TensorType::new(self.dtype(), s.clone()),
            Err(_) => self.ty.clone(),
        };
        let cx = enter!("reshape", self; placeholder);
        match target {
            Ok(target) => cx.emit(|e, x| e.reshape(x[0], &target)),
            Err(e) => cx.fail(e),
        }
    }

    /// Axes `start_axis..` merged into one: `[N, C, H, W].flatten(1)` is `[N, C*H*W]`.
    #[track_caller]
    pub fn flatten(&self, start_axis: isize) -> Tensor {
        let cx = enter!("flatten", self);
        if self.rank() == 0 {
            return cx.emit(|e, x| e.reshape(x[0], &Shape::from([1])));
        }
        let start = or_fail!(cx, normalize_axis(start_axis, self.rank()));
        let mut dims = self.dims()[..start].to_vec();
        dims.push(self.dims()[start..].iter().product());
        cx.emit(|e, x| e.reshape(x[0], &Shape::new(dims)))
    }

    /// A size-1 axis inserted at `axis` (`-1` appends one at the end).
    #[track_caller]
    pub fn unsqueeze(&self, axis: isize) -> Tensor {
        let cx = enter!("unsqueeze", self);
        let a = or_fail!(cx, normalize_axis(axis, self.rank() + 1));
        let mut dims = self.dims().to_vec();
        dims.insert(a, 1);
        cx.emit(|e, x| e.reshape(x[0], &Shape::new(dims)))
    }

    /// The size-1 axis `axis` removed.
    #[track_caller]
    pub fn squeeze(&self, axis: isize) -> Tensor {
        let cx = enter!("squeeze", self);
        let a = or_fail!(cx, normalize_axis(axis, self.rank()));
        if self.dims()[a] != 1 {
            return cx.fail(TypeError::Attr(format!(
                "axis {axis} has size {}, not 1",
                self.dims()[a]
            )));
        }
        let mut dims = self.dims().to_vec();
        dims.remove(a);
        cx.emit(|e, x| e.reshape(x[0], &Shape::new(dims)))
    }

    /// Axes permuted: output axis `i` is input axis `axes[i]` (PyTorch's `permute`).
    #[track_caller]
    pub fn permute(&self, axes: &[isize]) -> Tensor {
        let cx = enter!("permute", self);
        let perm = axes.iter().map(|&a| normalize_axis(a, self.rank()));
        let perm = or_fail!(cx, perm.collect::<Result<Vec<_>, _>>());
        cx.emit(|e, x| e.op(Op::Transpose(perm), &[x[0]]))
    }

    /// Axes `a` and `b` swapped (PyTorch's `transpose(dim0, dim1)`).
    #[track_caller]
    pub fn transpose(&self, a: isize, b: isize) -> Tensor {
        let cx = enter!("transpose", self);
        let rank = self.rank();
        let (a, b) = match (normalize_axis(a, rank), normalize_axis(b, rank)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return cx.fail(e),
        };
        if a == b {
            return self.clone();
        }
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(a, b);
        cx.emit(|e, x| e.op(Op::Transpose(perm), &[x[0]]))
    }

    /// The last two axes swapped (a matrix transpose); tensors of rank below 2 are
    /// returned unchanged.
    #[track_caller]
    pub fn t(&self) -> Tensor {
        if self.rank() < 2 {
            return self.clone();
        }
        self.transpose(-2, -1)
    }

    /// `len` elements of axis `axis` starting at `start` (PyTorch's `narrow`).
    #[track_caller]
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Tensor {
        self.slice_step(axis, start..start.saturating_add(len), 1)
    }

    /// The elements of `range` along `axis`: `x.slice(1, 2..5)`, `x.slice(0, ..3)`.
    #[track_caller]
    pub fn slice(&self, axis: isize, range: impl RangeBounds<usize>) -> Tensor {
        self.slice_step(axis, range, 1)
    }

    /// Every `step`-th element of `range` along `axis`.
    #[track_caller]
    pub fn slice_step(&self, axis: isize, range: impl RangeBounds<usize>, step: usize) -> Tensor {
        let cx = enter!("slice", self);
        let a = or_fail!(cx, normalize_axis(axis, self.rank()));
        let (s, e) = bounds(&range, self.dims()[a]);
        let mut start = vec![0; self.rank()];
        let mut end = self.dims().to_vec();
        let mut steps = vec![1; self.rank()];
        start[a] = s;
        end[a] = e;
        steps[a] = step;
        cx.emit(|em, x| {
            em.op(
                Op::Slice {
                    start,
                    end,
                    step: steps,
                },
                &[x[0]],
            )
        })
    }

    /// Padded with `value`: `pads[i] = (before, after)` elements on axis `i`, one pair
    /// per axis, outermost first.
    #[track_caller]
    pub fn pad(&self, pads: &[(usize, usize)], value: f64) -> Tensor {
        let cx = enter!("pad", self);
        let low = pads.iter().map(|p| p.0).collect();
        let high = pads.iter().map(|p| p.1).collect();
        cx.emit(|e, x| e.op(Op::Pad { low, high, value }, &[x[0]]))
    }

    /// `tensors` joined along `axis` (all other dimensions equal):
    /// `Tensor::cat(&[&a, &b], 0)`.
    ///
    /// `tensors` must not be empty; an empty list gives a poisoned tensor of a new,
    /// failed builder (any use of it with your builder is then reported).
    #[track_caller]
    pub fn cat(tensors: &[&Tensor], axis: isize) -> Tensor {
        let Some(first) = tensors.first() else {
            let orphan = crate::GraphBuilder::new("empty_concat");
            let cx = Ctx::leaf(&orphan, "concat", TensorType::new(kiln_ir::DType::F32, []));
            return cx.fail(TypeError::Arity {
                expected: "at least 1".into(),
                got: 0,
            });
        };
        let cx = match Ctx::new("concat", tensors) {
            Ok(cx) => cx,
            Err(p) => return p,
        };
        let a = or_fail!(cx, normalize_axis(axis, first.rank()));
        cx.emit(|e, xs| e.op(Op::Concat { axis: a }, xs))
    }
}

/// `tensors` joined along `axis`; see [`Tensor::cat`].
#[track_caller]
pub fn concat(tensors: &[&Tensor], axis: isize) -> Tensor {
    Tensor::cat(tensors, axis)
}
