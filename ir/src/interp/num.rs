//! Element traits: the kernels are written once, generic over these, and
//! instantiated for each dtype the typing rules admit.

use std::fmt::Debug;
use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::TensorData;

/// Any element type: enough to move, compare and fill values.
pub(crate) trait Elem: Copy + PartialOrd + Debug + 'static {
    /// The elements of `data`. Callers have checked the dtype with `infer`, so a
    /// mismatch is a bug in the interpreter, not a user error.
    fn slice(data: &TensorData) -> &[Self];
    fn wrap(v: Vec<Self>) -> TensorData;
    /// `x` converted with `as` semantics (non-zero is `true` for bool).
    fn from_f64(x: f64) -> Self;
}

/// Element types with arithmetic (floats and i32).
pub(crate) trait Num: Elem {
    const ZERO: Self;
    /// The identity of `max`: `-inf` for floats, the smallest value for integers.
    const LOWEST: Self;
    /// The identity of `min`: `+inf` for floats, the largest value for integers.
    const HIGHEST: Self;
    /// Addition (wrapping for integers).
    fn plus(self, b: Self) -> Self;
    /// Multiplication (wrapping for integers).
    fn times(self, b: Self) -> Self;
    /// Division; integers truncate toward zero and give `None` for a zero divisor.
    fn divide(self, b: Self) -> Option<Self>;
    /// `sum / count` for a mean; `None` for an integer mean of nothing.
    fn mean_of(sum: Self, count: usize) -> Option<Self>;
    fn is_nan(self) -> bool;

    /// The larger of two values: NaN if either is NaN (`self` if both are), and
    /// `-0.0 < +0.0` (IEEE 754-2019 `maximum`, commutative: `max(-0.0, 0.0)` and
    /// `max(0.0, -0.0)` are both `+0.0`).
    fn max_nan(self, b: Self) -> Self {
        if self.is_nan() {
            self
        } else if b.is_nan() || b > self || (b == self && self.is_neg_zero()) {
            b
        } else {
            self
        }
    }

    /// The smaller of two values: NaN if either is NaN (`self` if both are), and
    /// `-0.0 < +0.0` (IEEE 754-2019 `minimum`: `min(0.0, -0.0)` is `-0.0`).
    fn min_nan(self, b: Self) -> Self {
        if self.is_nan() {
            self
        } else if b.is_nan() || b < self || (b == self && b.is_neg_zero()) {
            b
        } else {
            self
        }
    }

    /// Whether this is `-0.0` (never for integers).
    fn is_neg_zero(self) -> bool;
}

/// IEEE floating-point element types, computed in their own precision.
pub(crate) trait Float:
    Num
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    const ONE: Self;
    fn from_usize(n: usize) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn tanh(self) -> Self;
    /// The error function ([`super::erf`], rounded to the type).
    fn erf(self) -> Self;
    fn powf(self, e: Self) -> Self;
    fn abs(self) -> Self;
    /// `self * a + b` with one rounding.
    fn mul_add(self, a: Self, b: Self) -> Self;
}

/// `Elem` for `$t`, held in `TensorData::$variant`, converted from `f64` by `$from`.
macro_rules! elem_impl {
    ($t:ident, $variant:ident, |$x:ident| $from:expr) => {
        impl Elem for $t {
            fn slice(data: &TensorData) -> &[Self] {
                match data {
                    TensorData::$variant(v) => v,
                    other => unreachable!(
                        "expected {} data, got {} (infer admitted the op)",
                        stringify!($t),
                        other.dtype()
                    ),
                }
            }
            fn wrap(v: Vec<Self>) -> TensorData {
                TensorData::$variant(v)
            }
            fn from_f64($x: f64) -> Self {
                $from
            }
        }
    };
}

macro_rules! float_impl {
    ($t:ident, $variant:ident) => {
        elem_impl!($t, $variant, |x| x as $t);

        impl Num for $t {
            const ZERO: Self = 0.0;
            const LOWEST: Self = $t::NEG_INFINITY;
            const HIGHEST: Self = $t::INFINITY;
            fn plus(self, b: Self) -> Self {
                self + b
            }
            fn times(self, b: Self) -> Self {
                self * b
            }
            fn divide(self, b: Self) -> Option<Self> {
                Some(self / b)
            }
            fn mean_of(sum: Self, count: usize) -> Option<Self> {
                // An empty mean is 0/0 = NaN, as in NumPy.
                Some(sum / count as $t)
            }
            fn is_nan(self) -> bool {
                $t::is_nan(self)
            }
            fn is_neg_zero(self) -> bool {
                self == 0.0 && self.is_sign_negative()
            }
        }

        impl Float for $t {
            const ONE: Self = 1.0;
            fn from_usize(n: usize) -> Self {
                n as $t
            }
            fn exp(self) -> Self {
                $t::exp(self)
            }
            fn ln(self) -> Self {
                $t::ln(self)
            }
            fn sqrt(self) -> Self {
                $t::sqrt(self)
            }
            fn tanh(self) -> Self {
                $t::tanh(self)
            }
            fn erf(self) -> Self {
                super::erf::erf(self as f64) as $t
            }
            fn powf(self, e: Self) -> Self {
                $t::powf(self, e)
            }
            fn abs(self) -> Self {
                $t::abs(self)
            }
            fn mul_add(self, a: Self, b: Self) -> Self {
                $t::mul_add(self, a, b)
            }
        }
    };
}

float_impl!(f32, F32);
float_impl!(f64, F64);

elem_impl!(i32, I32, |x| x as i32);

impl Num for i32 {
    const ZERO: Self = 0;
    const LOWEST: Self = i32::MIN;
    const HIGHEST: Self = i32::MAX;
    fn plus(self, b: Self) -> Self {
        self.wrapping_add(b)
    }
    fn times(self, b: Self) -> Self {
        self.wrapping_mul(b)
    }
    fn divide(self, b: Self) -> Option<Self> {
        // `wrapping_div` truncates toward zero and maps i32::MIN / -1 to i32::MIN.
        (b != 0).then(|| self.wrapping_div(b))
    }
    fn mean_of(sum: Self, count: usize) -> Option<Self> {
        // In i64 so that counts beyond i32::MAX still divide correctly.
        let count = i64::try_from(count).ok().filter(|&c| c != 0)?;
        Some((i64::from(sum) / count) as i32)
    }
    fn is_nan(self) -> bool {
        false
    }
    fn is_neg_zero(self) -> bool {
        false
    }
}

elem_impl!(bool, Bool, |x| x != 0.0);

/// Calls a generic kernel `$f::<T>(args)` with `T` the element type for `$dtype`.
/// `any` covers every dtype, `num` floats and i32, `float` f32 and f64; the
/// others are unreachable because `infer` rejects them first.
macro_rules! dispatch {
    (any $dtype:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $dtype {
            $crate::DType::F32 => $f::<f32>($($arg),*),
            $crate::DType::F64 => $f::<f64>($($arg),*),
            $crate::DType::I32 => $f::<i32>($($arg),*),
            $crate::DType::Bool => $f::<bool>($($arg),*),
        }
    };
    (num $dtype:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $dtype {
            $crate::DType::F32 => $f::<f32>($($arg),*),
            $crate::DType::F64 => $f::<f64>($($arg),*),
            $crate::DType::I32 => $f::<i32>($($arg),*),
            d @ $crate::DType::Bool => {
                unreachable!("{} on {d}: infer admits numbers only", stringify!($f))
            }
        }
    };
    (float $dtype:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $dtype {
            $crate::DType::F32 => $f::<f32>($($arg),*),
            $crate::DType::F64 => $f::<f64>($($arg),*),
            d @ ($crate::DType::I32 | $crate::DType::Bool) => {
                unreachable!("{} on {d}: infer admits floats only", stringify!($f))
            }
        }
    };
}

pub(crate) use dispatch;
