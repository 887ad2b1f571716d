//! The kernel program's text form, for dumps and snapshot tests.

use std::fmt::{self, Write};

use super::{Access, Affine, BufferKind, Expr, ExprId, ExprNode, Kernel, KernelProgram};

fn affine(f: &mut String, a: &Affine) {
    let _ = write!(f, "{}", a.offset);
    for (k, &s) in a.strides.iter().enumerate() {
        if s != 0 {
            let _ = write!(f, " + {s}*i{k}");
        }
    }
}

fn access(f: &mut String, a: &Access) {
    let _ = write!(f, "{}[", a.buffer);
    affine(
        f,
        &Affine {
            offset: a.offset,
            strides: a.strides.clone(),
        },
    );
    f.push(']');
}

/// Prints a loop body, one expression per line, marking the value.
fn exprs(
    f: &mut fmt::Formatter<'_>,
    list: &[ExprNode],
    value: ExprId,
    indent: &str,
) -> fmt::Result {
    for (j, e) in list.iter().enumerate() {
        let mut s = String::new();
        match &e.expr {
            Expr::Load(a) => {
                s.push_str("load ");
                access(&mut s, a);
            }
            Expr::Const(v) => {
                let _ = write!(s, "const {v:?}");
            }
            Expr::Unary(k, x) => {
                let _ = write!(s, "{} {x}", k.name());
            }
            Expr::Binary(k, a, b) => {
                let _ = write!(s, "{} {a}, {b}", k.name());
            }
            Expr::Compare(k, a, b) => {
                let _ = write!(s, "{} {a}, {b}", k.name());
            }
            Expr::Select(c, a, b) => {
                let _ = write!(s, "select {c}, {a}, {b}");
            }
            Expr::Fma(a, b, c) => {
                let _ = write!(s, "fma {a}, {b}, {c}");
            }
            Expr::Cast(x) => {
                let _ = write!(s, "cast {x}");
            }
            Expr::Random { seed, salt, flat } => {
                s.push_str("random seed=");
                access(&mut s, seed);
                let _ = write!(s, " salt={salt} index=");
                affine(&mut s, flat);
            }
            Expr::Row(r) => {
                let _ = write!(s, "row{r}");
            }
        }
        let id = ExprId::new(j);
        let mark = if id == value { "  <- value" } else { "" };
        writeln!(f, "{indent}{id}: {} = {s}{mark}", e.dtype)?;
    }
    Ok(())
}

impl fmt::Display for KernelProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = self.plan_memory();
        let (loops, calls) = self.kernel_counts();
        let scans = match self.scans().count() {
            0 => String::new(),
            n => format!(", {n} scans"),
        };
        writeln!(
            f,
            "program {}: {} buffers, {loops} loop kernels, {calls} calls{scans}, arena {} bytes (unshared {})",
            self.name,
            self.buffers.len(),
            plan.arena_bytes,
            plan.unshared_bytes
        )?;
        for (i, b) in self.buffers.iter().enumerate() {
            let what = match &b.kind {
                BufferKind::Arg(a) => format!("arg {a}"),
                BufferKind::Const(_) => "const".to_string(),
                BufferKind::Temp => match plan.offsets[i] {
                    Some(o) => format!("temp @{o}"),
                    None => "not stored (fused into its consumer)".to_string(),
                },
            };
            writeln!(f, "  b{i}: {} {what} (%{})", b.ty, b.node.index())?;
        }
        for (i, k) in self.kernels_with_ids() {
            match k {
                Kernel::Call(c) => {
                    let ins: Vec<String> = c
                        .inputs
                        .iter()
                        .map(|i| {
                            if i.is_contiguous() {
                                i.access.buffer.to_string()
                            } else {
                                let mut s = String::new();
                                access(&mut s, &i.access);
                                s
                            }
                        })
                        .collect();
                    writeln!(f, "{i}: {} = call {} {}", c.out, c.op, ins.join(", "))?;
                }
                Kernel::Loop(l) => {
                    let dims: Vec<String> = l.dims.iter().map(|d| d.to_string()).collect();
                    let red = match l.reduce {
                        Some(r) => format!(" {} over the last {}", r.kind.name(), r.count),
                        None => String::new(),
                    };
                    writeln!(f, "{i}: {} = loop [{}]{red} {{", l.out, dims.join(", "))?;
                    for (j, row) in l.rows.iter().enumerate() {
                        writeln!(f, "  row{j} = {} over [{}] {{", row.kind.name(), row.len)?;
                        exprs(f, &row.exprs, row.value, "    ")?;
                        writeln!(f, "  }}")?;
                    }
                    exprs(f, &l.exprs, l.value, "  ")?;
                    for (v, b) in &l.also {
                        writeln!(f, "  also {b} = {v}")?;
                    }
                    writeln!(f, "}}")?;
                }
                Kernel::Scan(s) => {
                    let results: Vec<String> = s
                        .results
                        .iter()
                        .map(|r| r.map_or_else(|| "_".to_string(), |b| b.to_string()))
                        .collect();
                    let ops: Vec<String> = s.operands.iter().map(|b| b.to_string()).collect();
                    writeln!(
                        f,
                        "{i}: {} = scan length={} carries={} xs={}{} ({}) {{",
                        results.join(", "),
                        s.length,
                        s.carries,
                        s.xs,
                        if s.reverse { " reverse" } else { "" },
                        ops.join(", ")
                    )?;
                    for line in s.body.to_string().lines() {
                        writeln!(f, "  {line}")?;
                    }
                    writeln!(f, "}}")?;
                }
            }
        }
        let outs: Vec<String> = self.outputs.iter().map(|b| b.to_string()).collect();
        writeln!(f, "outputs: {}", outs.join(", "))
    }
}
