//! `scan`: the loop run step by step, the body evaluated by the interpreter itself.

use super::{EvalError, run};
use crate::{DType, HostTensor, Scan, Shape, TensorData, TensorType};

/// Runs the loop of `scan` on its operands (initial carries, `xs`, constants) and
/// returns every result: the final carries, then each `ys` stacked along a new
/// leading axis.
pub(crate) fn run_scan(
    scan: &Scan,
    operands: &[&HostTensor],
) -> Result<Vec<HostTensor>, EvalError> {
    let body = &scan.body.0;
    let (init, rest) = operands.split_at(scan.carries);
    let (xs, consts) = rest.split_at(scan.xs);
    let mut carry: Vec<HostTensor> = init.iter().map(|&t| t.clone()).collect();
    let ys_types: Vec<TensorType> = body.outputs()[scan.carries..]
        .iter()
        .map(|o| body.node(o.node).ty.clone())
        .collect();
    let mut ys: Vec<Vec<HostTensor>> = vec![Vec::with_capacity(scan.length); ys_types.len()];
    let steps: Box<dyn Iterator<Item = usize>> = if scan.reverse {
        Box::new((0..scan.length).rev())
    } else {
        Box::new(0..scan.length)
    };
    for t in steps {
        let mut args: Vec<HostTensor> = carry;
        args.extend(xs.iter().map(|x| row(x, t)));
        args.extend(consts.iter().map(|&c| c.clone()));
        let mut out = run(body, &args)?.into_iter();
        carry = out.by_ref().take(scan.carries).collect();
        for (y, v) in ys.iter_mut().zip(out) {
            y.push(v);
        }
    }
    if scan.reverse {
        // Step t's ys go to index t whichever way the loop ran.
        ys.iter_mut().for_each(|y| y.reverse());
    }
    let stacked = ys
        .into_iter()
        .zip(&ys_types)
        .map(|(rows, ty)| stack(&rows, ty, scan.length));
    Ok(carry.into_iter().chain(stacked).collect())
}

/// Element `t` of `x` along its leading axis.
fn row(x: &HostTensor, t: usize) -> HostTensor {
    let inner = Shape::new(x.shape().dims()[1..].to_vec());
    let n = inner.numel();
    let r = t * n..(t + 1) * n;
    let data = match x.data() {
        TensorData::F32(v) => TensorData::F32(v[r].to_vec()),
        TensorData::F64(v) => TensorData::F64(v[r].to_vec()),
        TensorData::I32(v) => TensorData::I32(v[r].to_vec()),
        TensorData::Bool(v) => TensorData::Bool(v[r].to_vec()),
    };
    HostTensor::new(inner, data).expect("a row of the tensor")
}

/// `rows` (each of type `ty`) stacked along a new leading axis of `length`.
fn stack(rows: &[HostTensor], ty: &TensorType, length: usize) -> HostTensor {
    let mut dims = vec![length];
    dims.extend_from_slice(ty.shape.dims());
    macro_rules! stacked {
        ($variant:ident) => {
            TensorData::$variant(concat(rows, |d| match d {
                TensorData::$variant(v) => v,
                _ => unreachable!("the body's results have their declared types"),
            }))
        };
    }
    let data = match ty.dtype {
        DType::F32 => stacked!(F32),
        DType::F64 => stacked!(F64),
        DType::I32 => stacked!(I32),
        DType::Bool => stacked!(Bool),
    };
    HostTensor::new(Shape::new(dims), data).expect("length rows of the step's size")
}

fn concat<T: Clone>(rows: &[HostTensor], get: impl Fn(&TensorData) -> &Vec<T>) -> Vec<T> {
    rows.iter()
        .flat_map(|r| get(r.data()).iter().cloned())
        .collect()
}
