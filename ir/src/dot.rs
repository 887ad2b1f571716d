//! Graphviz DOT export: `dot -Tsvg graph.dot > graph.svg`.

use std::fmt::Write;

use crate::{Graph, Op};

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The graph as a DOT digraph. Nodes are numbered as in the text format (arguments
/// first, then topological order); inputs are ellipses, parameters boxes with
/// rounded corners, constants plain text, outputs get a double border and an
/// `output k` marker. Edges are labelled with the operand position when an op has
/// several operands. A loop's body is drawn once, as a cluster of its own (nested
/// loops nest clusters), with a dotted edge from each of the loop's nodes.
pub fn to_dot(graph: &Graph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", escape(graph.name()));
    out.push_str("  compound=true;\n  rankdir=TB;\n  node [fontname=\"monospace\", shape=box];\n");
    let mut bodies = Vec::new();
    write_graph(&mut out, graph, "n", &mut bodies);
    out.push_str("}\n");
    out
}

/// Writes the nodes and edges of `graph` with ids prefixed by `prefix`, and the
/// clusters of the loop bodies it uses that `drawn` does not hold yet.
fn write_graph(out: &mut String, graph: &Graph, prefix: &str, drawn: &mut Vec<usize>) {
    let (g, _) = match graph.canonicalize() {
        Ok(c) => c,
        Err(_) => (graph.clone(), Default::default()),
    };
    let outputs: Vec<_> = g.outputs().iter().map(|o| o.node).collect();
    for n in g.node_ids() {
        let node = g.node(n);
        let mut label = match &node.op {
            Op::Const(t) => format!("%{} const {}", n.index(), t),
            // The body is drawn as a cluster, not printed in the label.
            Op::Scan(scan) => {
                let mut l = format!("%{} scan", n.index());
                for (k, v) in node.op.attrs() {
                    if k != "body" {
                        let _ = write!(l, " {k}={v}");
                    }
                }
                let _ = write!(l, " body={}", scan.body.0.name());
                l
            }
            op => format!("%{} {}", n.index(), op),
        };
        if let Some(name) = &node.name {
            let _ = write!(label, " @{name}");
        }
        let _ = write!(label, "\n{}", node.ty);
        let shape = match node.op {
            Op::Input => "ellipse",
            Op::Param => "box, style=rounded",
            Op::Const(_) => "plaintext",
            _ => "box",
        };
        let border = if outputs.contains(&n) {
            ", peripheries=2"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {prefix}{} [label=\"{}\", shape={shape}{border}];",
            n.index(),
            escape(&label)
        );
    }
    for n in g.node_ids() {
        let operands = g.operands(n);
        for (i, o) in operands.iter().enumerate() {
            if operands.len() > 1 {
                let _ = writeln!(
                    out,
                    "  {prefix}{} -> {prefix}{} [label=\"{i}\"];",
                    o.index(),
                    n.index()
                );
            } else {
                let _ = writeln!(out, "  {prefix}{} -> {prefix}{};", o.index(), n.index());
            }
        }
        if let Op::Scan(scan) = &g.node(n).op {
            let key = std::sync::Arc::as_ptr(&scan.body.0) as usize;
            let k = match drawn.iter().position(|&d| d == key) {
                Some(k) => k,
                None => {
                    drawn.push(key);
                    let k = drawn.len() - 1;
                    let _ = writeln!(out, "  subgraph cluster_b{k} {{");
                    let _ = writeln!(
                        out,
                        "  label=\"body {}\"; style=dashed;",
                        escape(scan.body.0.name())
                    );
                    write_graph(out, &scan.body.0, &format!("b{k}_n"), drawn);
                    out.push_str("  }\n");
                    k
                }
            };
            if scan.body.0.node_count() > 0 {
                let _ = writeln!(
                    out,
                    "  {prefix}{} -> b{k}_n0 [style=dotted, lhead=cluster_b{k}];",
                    n.index()
                );
            }
        }
    }
    // Output markers: `out0` at the top, `b0_out0` in a body.
    let marker = prefix.strip_suffix('n').unwrap_or(prefix);
    for (k, o) in g.outputs().iter().enumerate() {
        let label = match &o.name {
            Some(name) => format!("output {k}: {name}"),
            None => format!("output {k}"),
        };
        let _ = writeln!(
            out,
            "  {marker}out{k} [label=\"{}\", shape=plaintext];",
            escape(&label)
        );
        let _ = writeln!(
            out,
            "  {prefix}{} -> {marker}out{k} [style=dashed];",
            o.node.index()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BinaryOp, DType, HostTensor, TensorType, UnaryOp};

    #[test]
    fn dot_has_nodes_edges_and_escaped_labels() {
        let mut g = Graph::new("t\"q");
        let x = g.input("x", TensorType::new(DType::F32, [2])).unwrap();
        let w = g.param("w", TensorType::new(DType::F32, [2])).unwrap();
        let y = g.add(Op::Binary(BinaryOp::Sub), &[w, x]).unwrap();
        g.set_node_name(y, "say \"hi\"");
        g.output(y, Some("y"));
        let dot = to_dot(&g);
        assert!(dot.starts_with("digraph \"t\\\"q\" {"), "{dot}");
        assert!(
            dot.contains("n0 [label=\"%0 input @x\\nf32[2]\", shape=ellipse];"),
            "{dot}"
        );
        assert!(dot.contains("shape=box, style=rounded"), "{dot}");
        assert!(
            dot.contains("n1 -> n2 [label=\"0\"];") && dot.contains("n0 -> n2 [label=\"1\"];"),
            "{dot}"
        );
        assert!(dot.contains("@say \\\"hi\\\""), "{dot}");
        assert!(
            dot.contains("peripheries=2") && dot.contains("output 0: y"),
            "{dot}"
        );
        assert_eq!(dot.matches(" -> ").count(), 3);
    }

    #[test]
    fn a_loop_body_is_one_cluster() {
        let scan = Op::samples()
            .into_iter()
            .find(|o| matches!(o, Op::Scan(_)))
            .unwrap();
        let Op::Scan(s) = &scan else { unreachable!() };
        let carry = Op::Scan(crate::Scan {
            result: 0,
            ..s.clone()
        });
        let mut g = Graph::new("loop");
        let h = g.input("h", TensorType::new(DType::F32, [2])).unwrap();
        let xs = g.input("xs", TensorType::new(DType::F32, [3, 2])).unwrap();
        let ys = g.add(scan.clone(), &[h, xs]).unwrap();
        let last = g.add(carry, &[h, xs]).unwrap();
        g.output(ys, None);
        g.output(last, None);
        let dot = to_dot(&g);
        // Both result nodes point at the one cluster; labels name the body only.
        assert_eq!(dot.matches("subgraph cluster_b0").count(), 1, "{dot}");
        assert!(!dot.contains("cluster_b1"), "{dot}");
        assert!(dot.contains("label=\"body step\""), "{dot}");
        assert_eq!(
            dot.matches("-> b0_n0 [style=dotted, lhead=cluster_b0]")
                .count(),
            2
        );
        assert!(dot.contains("result=1 body=step"), "{dot}");
        assert!(!dot.contains("fn step("), "{dot}");
        // The body's own nodes, with their own numbering.
        assert!(dot.contains("b0_n0 [label=\"%0 input @h"), "{dot}");
    }

    #[test]
    fn dot_numbers_nodes_like_the_text_format() {
        // Built out of canonical order: the constant comes before the arguments, so
        // both formats renumber it after them.
        let mut g = Graph::new("order");
        let c = g.constant(HostTensor::from_f32([2], vec![1.5, -2.0]).unwrap());
        let w = g.param("w", TensorType::new(DType::F32, [2])).unwrap();
        let x = g.input("x", TensorType::new(DType::F32, [2])).unwrap();
        let m = g.add(Op::Binary(BinaryOp::Mul), &[c, x]).unwrap();
        let r = g.add(Op::Unary(UnaryOp::Relu), &[m]).unwrap();
        let s = g.add(Op::Binary(BinaryOp::Add), &[r, w]).unwrap();
        g.output(s, None);
        g.output(r, Some("act"));
        let text = crate::text::print(&g);
        assert!(text.contains("%3 = mul %2, %1"), "{text}");
        let dot = to_dot(&g);
        // One DOT node per graph node plus one marker per output, one edge per
        // operand plus one per output.
        let decls = dot
            .lines()
            .filter(|l| l.contains("[label=") && !l.contains(" -> "));
        assert_eq!(decls.count(), 6 + 2, "{dot}");
        assert_eq!(dot.matches(" -> ").count(), 5 + 2, "{dot}");
        for want in [
            "n0 [label=\"%0 param @w\\nf32[2]\", shape=box, style=rounded]",
            "n1 [label=\"%1 input @x\\nf32[2]\", shape=ellipse]",
            "n2 [label=\"%2 const f32[2] [1.5, -2.0]\\nf32[2]\", shape=plaintext]",
            // Two-operand edges carry their position, one-operand edges do not.
            "n2 -> n3 [label=\"0\"];",
            "n1 -> n3 [label=\"1\"];",
            "  n3 -> n4;\n",
            "n4 [label=\"%4 relu\\nf32[2]\", shape=box, peripheries=2]",
            "n5 -> out0 [style=dashed]",
            "n4 -> out1 [style=dashed]",
            "out1 [label=\"output 1: act\"",
        ] {
            assert!(dot.contains(want), "{want:?} missing from {dot}");
        }
        assert!(dot.trim_end().ends_with('}'));
    }
}
