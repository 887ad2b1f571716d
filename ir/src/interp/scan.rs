//! `scan`: the loop run step by step, the body evaluated by the interpreter itself.

use super::{EvalError, movement, run_valid};
use crate::{HostTensor, Scan, Shape, TensorType};

/// Runs the loop of `scan` on its operands (initial carries, `xs`, constants) and
/// returns every result: the final carries, then each `ys` stacked along a new
/// leading axis.
pub(crate) fn run_scan(
    scan: &Scan,
    operands: &[&HostTensor],
) -> Result<Vec<HostTensor>, EvalError> {
    let body = &scan.body.0;
    body.validate()?;
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
        let refs: Vec<&HostTensor> = args.iter().collect();
        let mut out = run_valid(body, &refs)?.into_iter();
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
    let dims = x.shape().dims();
    let mut start = vec![0; dims.len()];
    start[0] = t;
    let mut one = dims.to_vec();
    one[0] = 1;
    let data = movement::slice(x, &start, &vec![1; dims.len()], &Shape::new(one));
    HostTensor::new(Shape::new(dims[1..].to_vec()), data).expect("a row of the tensor")
}

/// `rows` (each of type `ty`) stacked along a new leading axis of `length`.
fn stack(rows: &[HostTensor], ty: &TensorType, length: usize) -> HostTensor {
    let out = ty.stacked(length);
    if rows.is_empty() {
        return HostTensor::full(out.dtype, out.shape, 0.0);
    }
    let one = ty.stacked(1).shape;
    let rows: Vec<HostTensor> = rows
        .iter()
        .map(|r| r.reshape(one.clone()).expect("one row"))
        .collect();
    let refs: Vec<&HostTensor> = rows.iter().collect();
    HostTensor::new(out.shape, movement::concat(&refs, 0)).expect("length rows")
}
