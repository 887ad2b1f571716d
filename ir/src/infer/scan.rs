//! The typing rule of `scan`: the body's signature against the operands.

use super::{Inferred, TypeError};
use crate::{Scan, TensorType};

/// The type of result `scan.result`, after checking every operand against the
/// body argument it feeds and every carry result against its carry.
pub(super) fn scan(ops: &[&TensorType], scan: &Scan) -> Inferred {
    let body = &scan.body.0;
    let args: Vec<&TensorType> = body.args().iter().map(|&a| &body.node(a).ty).collect();
    let results: Vec<&TensorType> = body
        .outputs()
        .iter()
        .map(|o| &body.node(o.node).ty)
        .collect();
    let name = body.name();
    if ops.len() != args.len() {
        return Err(TypeError::Arity {
            expected: format!("{} (one per argument of the body `{name}`)", args.len()),
            got: ops.len(),
        });
    }
    if scan.carries + scan.xs > args.len() {
        return Err(TypeError::Attr(format!(
            "carries={} and xs={} need {} operands, the body `{name}` takes {}",
            scan.carries,
            scan.xs,
            scan.carries + scan.xs,
            args.len()
        )));
    }
    if results.len() < scan.carries {
        return Err(TypeError::Attr(format!(
            "the body `{name}` returns {} values, fewer than its {} carries",
            results.len(),
            scan.carries
        )));
    }
    for (i, (op, arg)) in ops.iter().zip(&args).enumerate() {
        let role = if i < scan.carries {
            "carry"
        } else if i < scan.carries + scan.xs {
            "xs"
        } else {
            "constant"
        };
        let want = if role == "xs" {
            stacked(arg, scan.length)?
        } else {
            (*arg).clone()
        };
        if **op != want {
            return Err(TypeError::Shape(format!(
                "operand {i} ({role}) is {op}, but the body `{name}` takes {arg}{}",
                if role == "xs" {
                    format!(" per step, so {want} over {} steps", scan.length)
                } else {
                    String::new()
                }
            )));
        }
    }
    for c in 0..scan.carries {
        if results[c] != args[c] {
            return Err(TypeError::Shape(format!(
                "the body `{name}` returns {} for carry {c}, which it takes as {}",
                results[c], args[c]
            )));
        }
    }
    match results.get(scan.result) {
        None => Err(TypeError::Attr(format!(
            "result={} is out of range: the body `{name}` returns {} values",
            scan.result,
            results.len()
        ))),
        Some(t) if scan.result < scan.carries => Ok((*t).clone()),
        Some(t) => stacked(t, scan.length),
    }
}

/// `t` with a leading axis of `length`, if a value of it can be addressed.
fn stacked(t: &TensorType, length: usize) -> Inferred {
    let ty = t.stacked(length);
    ty.check_size().map_err(TypeError::Shape)?;
    Ok(ty)
}
