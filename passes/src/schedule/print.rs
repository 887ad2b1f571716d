//! The kernel program's text form, for dumps and snapshot tests.

use std::fmt::{self, Write};

use super::{Access, Affine, BufferKind, Expr, ExprNode, Kernel, KernelProgram};

fn affine(f: &mut String, a: &Affine) {
    let _ = write!(f, "{}", a.offset);
    for (k, &s) in a.strides.iter().enumerate() {
        if s != 0 {
            let _ = write!(f, " + {s}*i{k}");
        }
    }
}

fn access(f: &mut String, a: &Access) {
    let _ = write!(f, "b{}[", a.buffer);
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
fn exprs(f: &mut fmt::Formatter<'_>, list: &[ExprNode], value: usize, indent: &str) -> fmt::Result {
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
                let _ = write!(s, "{} e{x}", k.name());
            }
            Expr::Binary(k, a, b) => {
                let _ = write!(s, "{} e{a}, e{b}", k.name());
            }
            Expr::Compare(k, a, b) => {
                let _ = write!(s, "{} e{a}, e{b}", k.name());
            }
            Expr::Select(c, a, b) => {
                let _ = write!(s, "select e{c}, e{a}, e{b}");
            }
            Expr::Fma(a, b, c) => {
                let _ = write!(s, "fma e{a}, e{b}, e{c}");
            }
            Expr::Cast(x) => {
                let _ = write!(s, "cast e{x}");
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
        let mark = if j == value { "  <- value" } else { "" };
        writeln!(f, "{indent}e{j}: {} = {s}{mark}", e.dtype)?;
    }
    Ok(())
}

impl fmt::Display for KernelProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = self.plan_memory();
        let (loops, calls) = self.kernel_counts();
        writeln!(
            f,
            "program {}: {} buffers, {loops} loop kernels, {calls} calls, arena {} bytes (unshared {})",
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
        for (i, k) in self.kernels.iter().enumerate() {
            match k {
                Kernel::Call(c) => {
                    let ins: Vec<String> = c
                        .inputs
                        .iter()
                        .map(|i| {
                            if i.is_contiguous() {
                                format!("b{}", i.access.buffer)
                            } else {
                                let mut s = String::new();
                                access(&mut s, &i.access);
                                s
                            }
                        })
                        .collect();
                    writeln!(f, "k{i}: b{} = call {} {}", c.out, c.op, ins.join(", "))?;
                }
                Kernel::Loop(l) => {
                    let dims: Vec<String> = l.dims.iter().map(|d| d.to_string()).collect();
                    let red = match l.reduce {
                        Some(r) => format!(" {} over the last {}", r.kind.name(), r.count),
                        None => String::new(),
                    };
                    writeln!(f, "k{i}: b{} = loop [{}]{red} {{", l.out, dims.join(", "))?;
                    for (j, row) in l.rows.iter().enumerate() {
                        writeln!(f, "  row{j} = {} over [{}] {{", row.kind.name(), row.len)?;
                        exprs(f, &row.exprs, row.value, "    ")?;
                        writeln!(f, "  }}")?;
                    }
                    exprs(f, &l.exprs, l.value, "  ")?;
                    for (v, b) in &l.also {
                        writeln!(f, "  also b{b} = e{v}")?;
                    }
                    writeln!(f, "}}")?;
                }
            }
        }
        let outs: Vec<String> = self.outputs.iter().map(|b| format!("b{b}")).collect();
        writeln!(f, "outputs: {}", outs.join(", "))
    }
}
