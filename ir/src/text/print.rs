//! The printer.

use std::fmt::Write;

use crate::{Graph, HostTensor, Op, TensorData};

/// Widest left-hand side the ` : TYPE` column is aligned to.
const ALIGN_CAP: usize = 48;

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// `name` as an identifier, or quoted with escapes.
pub(crate) fn quote_name(s: &str) -> String {
    if is_ident(s) {
        return s.to_string();
    }
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// The literal of a `const`: one value if all elements are bitwise equal, else a flat
/// row-major list. NaNs all print as `NaN` (their sign and payload are not kept), so
/// for the splat test any two NaNs are equal: otherwise `[NaN, -NaN]` would print as
/// a list, read back as two equal NaNs, and print as a splat the second time.
fn literal(t: &HostTensor) -> String {
    fn render<T: Copy>(v: &[T], eq: impl Fn(T, T) -> bool, show: impl Fn(T) -> String) -> String {
        if let Some(&first) = v.first()
            && v.iter().all(|&x| eq(x, first))
        {
            return show(first);
        }
        let items: Vec<String> = v.iter().map(|&x| show(x)).collect();
        format!("[{}]", items.join(", "))
    }
    match t.data() {
        TensorData::F32(v) => render(
            v,
            |a, b| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            |x| format!("{x:?}"),
        ),
        TensorData::F64(v) => render(
            v,
            |a, b| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            |x| format!("{x:?}"),
        ),
        TensorData::I32(v) => render(v, |a, b| a == b, |x| x.to_string()),
        TensorData::Bool(v) => render(v, |a, b| a == b, |x| x.to_string()),
    }
}

/// Prints `graph` in the text format (see the module docs).
pub fn print(graph: &Graph) -> String {
    // Number nodes as `Graph::canonicalize` does: arguments first, then topological
    // order. A cyclic graph (invalid) falls back to index order so printing never fails.
    let order = graph
        .topo_order()
        .unwrap_or_else(|_| graph.node_ids().collect());
    let args = graph.args();
    let mut number = std::collections::HashMap::new();
    for &a in args {
        number.insert(a, number.len());
    }
    let body: Vec<_> = order.into_iter().filter(|n| !args.contains(n)).collect();
    for &n in &body {
        number.insert(n, number.len());
    }

    let mut out = String::new();
    let params: Vec<String> = args
        .iter()
        .map(|&a| {
            let node = graph.node(a);
            let name = quote_name(node.name.as_deref().unwrap_or(""));
            let kind = if matches!(node.op, Op::Param) {
                "param "
            } else {
                ""
            };
            format!("{name}: {kind}{}", node.ty)
        })
        .collect();
    let results: Vec<String> = graph
        .outputs()
        .iter()
        .map(|o| {
            let ty = &graph.node(o.node).ty;
            match &o.name {
                Some(n) => format!("{}: {ty}", quote_name(n)),
                None => ty.to_string(),
            }
        })
        .collect();
    let name = quote_name(graph.name());
    let one_line = format!(
        "fn {name}({}) -> ({}) {{",
        params.join(", "),
        results.join(", ")
    );
    if one_line.len() <= 100 {
        out.push_str(&one_line);
        out.push('\n');
    } else {
        // Long signatures (training steps) list one argument and one result per line.
        let _ = writeln!(out, "fn {name}(");
        for p in &params {
            let _ = writeln!(out, "    {p},");
        }
        out.push_str(") -> (\n");
        for r in &results {
            let _ = writeln!(out, "    {r},");
        }
        out.push_str(") {\n");
    }

    let lines: Vec<(String, String)> = body
        .iter()
        .map(|&n| {
            let node = graph.node(n);
            let mut left = format!("%{} = {}", number[&n], node.op.mnemonic());
            if let Op::Const(t) = &node.op {
                let _ = write!(left, " {}", literal(t));
            }
            let operands: Vec<String> = graph
                .operands(n)
                .iter()
                .map(|o| format!("%{}", number[o]))
                .collect();
            if !operands.is_empty() {
                let _ = write!(left, " {}", operands.join(", "));
            }
            for (k, v) in node.op.attrs() {
                let _ = write!(left, " {k}={v}");
            }
            let mut right = node.ty.to_string();
            if let Some(name) = &node.name {
                let _ = write!(right, " @{}", quote_name(name));
            }
            (left, right)
        })
        .collect();
    let width = lines
        .iter()
        .map(|(l, _)| l.len())
        .filter(|&w| w <= ALIGN_CAP)
        .max()
        .unwrap_or(0);
    for (left, right) in lines {
        let _ = writeln!(out, "  {left:<width$} : {right}");
    }
    let rets: Vec<String> = graph
        .outputs()
        .iter()
        .map(|o| format!("%{}", number[&o.node]))
        .collect();
    if rets.is_empty() {
        out.push_str("  return\n");
    } else {
        let _ = writeln!(out, "  return {}", rets.join(", "));
    }
    out.push_str("}\n");
    out
}
