//! Elementwise ops: unary, binary, comparisons, select and cast.

use super::Fault;
use super::num::{Elem, Float, Num, dispatch};
use crate::{BinaryOp, CmpOp, DType, HostTensor, IntUnaryOp, TensorData, UnaryOp};

fn map<T: Copy, U>(v: &[T], f: impl Fn(T) -> U) -> Vec<U> {
    v.iter().map(|&x| f(x)).collect()
}

fn zip<T: Copy, U>(a: &[T], b: &[T], f: impl Fn(T, T) -> U) -> Vec<U> {
    a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
}

pub(super) fn unary(k: UnaryOp, x: &HostTensor) -> TensorData {
    match x.data() {
        TensorData::F32(v) => TensorData::F32(unary_float(k, v)),
        TensorData::F64(v) => TensorData::F64(unary_float(k, v)),
        TensorData::I32(v) => TensorData::I32(unary_i32(k, v)),
        TensorData::Bool(_) => unreachable!("infer rejects `{}` on bool", k.name()),
    }
}

fn unary_float<F: Float>(k: UnaryOp, v: &[F]) -> Vec<F> {
    match k {
        UnaryOp::Neg => map(v, |x| -x),
        UnaryOp::Exp => map(v, F::exp),
        UnaryOp::Log => map(v, F::ln),
        UnaryOp::Sqrt => map(v, F::sqrt),
        UnaryOp::Rsqrt => map(v, |x| F::ONE / x.sqrt()),
        UnaryOp::Tanh => map(v, F::tanh),
        UnaryOp::Erf => map(v, F::erf),
        UnaryOp::Sigmoid => map(v, sigmoid),
        UnaryOp::Relu => map(v, |x| {
            if x.is_nan() || x > F::ZERO {
                x
            } else {
                F::ZERO
            }
        }),
        UnaryOp::Abs => map(v, F::abs),
        UnaryOp::Recip => map(v, |x| F::ONE / x),
        UnaryOp::Sign => map(v, |x| {
            if x > F::ZERO {
                F::ONE
            } else if x < F::ZERO {
                -F::ONE
            } else if x.is_nan() {
                x
            } else {
                F::ZERO
            }
        }),
        UnaryOp::LeakyRelu(slope) => {
            let slope = F::from_f64(slope);
            map(v, |x| if x > F::ZERO { x } else { slope * x })
        }
    }
}

/// `1 / (1 + exp(-x))`, evaluated through `exp(x) / (1 + exp(x))` for negative `x`
/// so `exp` never overflows (NaN stays NaN through the second branch).
fn sigmoid<F: Float>(x: F) -> F {
    if x >= F::ZERO {
        F::ONE / (F::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::ONE + e)
    }
}

fn unary_i32(k: UnaryOp, v: &[i32]) -> Vec<i32> {
    let Some(int) = k.on_integers() else {
        unreachable!("infer rejects `{}` on i32", k.name())
    };
    match int {
        IntUnaryOp::Neg => map(v, i32::wrapping_neg),
        IntUnaryOp::Abs => map(v, i32::wrapping_abs),
        IntUnaryOp::Relu => map(v, |x| x.max(0)),
        IntUnaryOp::Sign => map(v, i32::signum),
    }
}

pub(super) fn binary(k: BinaryOp, a: &HostTensor, b: &HostTensor) -> Result<TensorData, Fault> {
    Ok(match (a.data(), b.data()) {
        (TensorData::F32(a), TensorData::F32(b)) => TensorData::F32(binary_float(k, a, b)),
        (TensorData::F64(a), TensorData::F64(b)) => TensorData::F64(binary_float(k, a, b)),
        (TensorData::I32(a), TensorData::I32(b)) => TensorData::I32(binary_i32(k, a, b)?),
        (a, b) => unreachable!(
            "infer rejects `{}` on {} and {}",
            k.name(),
            a.dtype(),
            b.dtype()
        ),
    })
}

fn binary_float<F: Float>(k: BinaryOp, a: &[F], b: &[F]) -> Vec<F> {
    match k {
        BinaryOp::Add => zip(a, b, |x, y| x + y),
        BinaryOp::Sub => zip(a, b, |x, y| x - y),
        BinaryOp::Mul => zip(a, b, |x, y| x * y),
        BinaryOp::Div => zip(a, b, |x, y| x / y),
        BinaryOp::Max => zip(a, b, F::max_nan),
        BinaryOp::Min => zip(a, b, F::min_nan),
        BinaryOp::Pow => zip(a, b, F::powf),
    }
}

fn binary_i32(k: BinaryOp, a: &[i32], b: &[i32]) -> Result<Vec<i32>, Fault> {
    Ok(match k {
        BinaryOp::Add => zip(a, b, i32::wrapping_add),
        BinaryOp::Sub => zip(a, b, i32::wrapping_sub),
        BinaryOp::Mul => zip(a, b, i32::wrapping_mul),
        BinaryOp::Div => {
            return a
                .iter()
                .zip(b)
                .map(|(&x, &y)| x.divide(y).ok_or(Fault::DivisionByZero))
                .collect();
        }
        BinaryOp::Max => zip(a, b, i32::max),
        BinaryOp::Min => zip(a, b, i32::min),
        BinaryOp::Pow => unreachable!("infer rejects `pow` on i32"),
    })
}

pub(super) fn compare(k: CmpOp, a: &HostTensor, b: &HostTensor) -> TensorData {
    dispatch!(any a.dtype(), compare_t(k, a, b))
}

/// IEEE comparisons: every comparison with NaN is false except `ne`.
fn compare_t<T: Elem>(k: CmpOp, a: &HostTensor, b: &HostTensor) -> TensorData {
    let (a, b) = (T::slice(a.data()), T::slice(b.data()));
    TensorData::Bool(match k {
        CmpOp::Eq => zip(a, b, |x, y| x == y),
        CmpOp::Ne => zip(a, b, |x, y| x != y),
        CmpOp::Lt => zip(a, b, |x, y| x < y),
        CmpOp::Le => zip(a, b, |x, y| x <= y),
        CmpOp::Gt => zip(a, b, |x, y| x > y),
        CmpOp::Ge => zip(a, b, |x, y| x >= y),
    })
}

pub(super) fn select(cond: &HostTensor, a: &HostTensor, b: &HostTensor) -> TensorData {
    dispatch!(any a.dtype(), select_t(cond, a, b))
}

fn select_t<T: Elem>(cond: &HostTensor, a: &HostTensor, b: &HostTensor) -> TensorData {
    let cond = bool::slice(cond.data());
    let (a, b) = (T::slice(a.data()), T::slice(b.data()));
    let out = cond
        .iter()
        .zip(a.iter().zip(b))
        .map(|(&c, (&x, &y))| if c { x } else { y })
        .collect();
    T::wrap(out)
}

pub(super) fn cast(x: &HostTensor, to: DType) -> TensorData {
    if x.dtype() == to {
        return x.data().clone();
    }
    // Every f32, i32 and bool value is exact in f64, so widening first and then
    // applying `as` gives the direct conversion's result (a single rounding).
    let wide: Vec<f64> = match x.data() {
        TensorData::F32(v) => map(v, f64::from),
        TensorData::F64(v) => v.clone(),
        TensorData::I32(v) => map(v, f64::from),
        TensorData::Bool(v) => map(v, |b| if b { 1.0 } else { 0.0 }),
    };
    match to {
        DType::F32 => TensorData::F32(map(&wide, f32::from_f64)),
        DType::F64 => TensorData::F64(wide),
        DType::I32 => TensorData::I32(map(&wide, i32::from_f64)),
        DType::Bool => TensorData::Bool(map(&wide, bool::from_f64)),
    }
}

pub(super) fn fma(a: &HostTensor, b: &HostTensor, c: &HostTensor) -> TensorData {
    dispatch!(float a.dtype(), fma_t(a, b, c))
}

fn fma_t<F: Float>(a: &HostTensor, b: &HostTensor, c: &HostTensor) -> TensorData {
    let (a, b, c) = (F::slice(a.data()), F::slice(b.data()), F::slice(c.data()));
    let out = a
        .iter()
        .zip(b.iter().zip(c))
        .map(|(&x, (&y, &z))| x.mul_add(y, z))
        .collect();
    F::wrap(out)
}
