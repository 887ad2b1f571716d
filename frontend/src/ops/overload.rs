//! Arithmetic operators: `+ - * /` on every combination of `Tensor` and `&Tensor`,
//! with `f32` scalars on either side, and unary `-`. They broadcast and report errors
//! exactly as the named methods do.

use std::borrow::Borrow;
use std::ops::{Add, Div, Mul, Neg, Sub};

use kiln_ir::BinaryOp;

use crate::Tensor;

macro_rules! binary_operator {
    ($trait:ident, $method:ident, $kind:expr) => {
        binary_operator!(@tensor $trait, $method, &Tensor, &Tensor);
        binary_operator!(@tensor $trait, $method, &Tensor, Tensor);
        binary_operator!(@tensor $trait, $method, Tensor, &Tensor);
        binary_operator!(@tensor $trait, $method, Tensor, Tensor);
        binary_operator!(@scalar $trait, $method, $kind, &Tensor);
        binary_operator!(@scalar $trait, $method, $kind, Tensor);
    };
    (@tensor $trait:ident, $method:ident, $lhs:ty, $rhs:ty) => {
        impl $trait<$rhs> for $lhs {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: $rhs) -> Tensor {
                let (a, b): (&Tensor, &Tensor) = (self.borrow(), rhs.borrow());
                Tensor::$method(a, b)
            }
        }
    };
    (@scalar $trait:ident, $method:ident, $kind:expr, $t:ty) => {
        impl $trait<f32> for $t {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: f32) -> Tensor {
                let a: &Tensor = self.borrow();
                Tensor::$method(a, rhs)
            }
        }
        impl $trait<$t> for f32 {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: $t) -> Tensor {
                let b: &Tensor = rhs.borrow();
                b.binary_scalar_lhs(stringify!($method), $kind, self as f64)
            }
        }
    };
}

binary_operator!(Add, add, BinaryOp::Add);
binary_operator!(Sub, sub, BinaryOp::Sub);
binary_operator!(Mul, mul, BinaryOp::Mul);
binary_operator!(Div, div, BinaryOp::Div);

impl Neg for &Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}

impl Neg for Tensor {
    type Output = Tensor;
    #[track_caller]
    fn neg(self) -> Tensor {
        Tensor::neg(&self)
    }
}
