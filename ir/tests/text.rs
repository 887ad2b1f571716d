//! The text format: exact printing, parse errors with line:column, and the
//! print -> parse -> print round trip on random valid graphs covering every op.

use kiln_ir::text::{parse, print};
use kiln_ir::{
    BinaryOp, DType, Graph, HostTensor, NodeId, Op, Shape, TensorData, TensorType, UnaryOp,
};
use kiln_testutil::Recipe;
use kiln_testutil::Rng;
use kiln_testutil::graphs::{random_graph, random_graph_with};
use proptest::prelude::*;
use std::collections::BTreeSet;

fn f32t(dims: &[usize]) -> TensorType {
    TensorType::new(DType::F32, dims)
}

#[test]
fn prints_the_documented_format() {
    let mut g = Graph::new("mlp");
    let x = g.input("x", f32t(&[4, 3])).unwrap();
    let w = g.param("w", f32t(&[3, 2])).unwrap();
    let b = g.param("b", f32t(&[2])).unwrap();
    let m = g.add(Op::MatMul, &[x, w]).unwrap();
    let bb = g.add(Op::Broadcast(Shape::from([4, 2])), &[b]).unwrap();
    let s = g.add(Op::Binary(BinaryOp::Add), &[m, bb]).unwrap();
    g.set_node_name(s, "pre act");
    let r = g.add(Op::Unary(UnaryOp::LeakyRelu(0.01)), &[s]).unwrap();
    let c = g.constant(HostTensor::from_f32([3], vec![1.5, f32::NAN, -0.0]).unwrap());
    g.output(r, Some("y"));
    g.output(c, None);
    let want = "\
fn mlp(x: f32[4,3], w: param f32[3,2], b: param f32[2]) -> (y: f32[4,2], f32[3]) {
  %3 = matmul %0, %1            : f32[4,2]
  %4 = broadcast %2 shape=[4,2] : f32[4,2]
  %5 = add %3, %4               : f32[4,2] @\"pre act\"
  %6 = leaky_relu %5 slope=0.01 : f32[4,2]
  %7 = const [1.5, NaN, -0.0]   : f32[3]
  return %6, %7
}
";
    assert_eq!(print(&g), want);
    assert_eq!(print(&parse(want).unwrap()), want);
}

#[test]
fn parse_accepts_comments_any_labels_and_splats() {
    let src = "// a comment\nfn f(a: i32[2,2]) -> (s: i32[2,2]) {\n  %10 = const 7 : i32[2,2] // splat\n  %4 = add %0, %10 : i32[2,2]\n  return %4\n}\n";
    let g = parse(src).unwrap();
    let printed = print(&g);
    assert!(printed.contains("%1 = const 7"), "{printed}");
    assert!(printed.contains("%2 = add %0, %1"), "{printed}");
}

#[test]
fn malformed_inputs_report_line_and_column() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        ("", (1, 1), "expected `fn`"),
        (
            "fn f(x: f32[2]) -> () {\n  return\n",
            (3, 1),
            "expected `}`",
        ),
        (
            "fn f(x: f33[2]) -> () {\n  return\n}",
            (1, 9),
            "unknown dtype `f33`",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %1 = frob %0 : f32[2]\n  return\n}",
            (2, 8),
            "unknown op",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %1 = relu %5 : f32[2]\n  return\n}",
            (2, 13),
            "`%5` is not defined",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %1 = relu %0 : f32[3]\n  return\n}",
            (2, 18),
            "declares f32[3]",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %0 = relu %0 : f32[2]\n  return\n}",
            (2, 3),
            "already an argument",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %1 = relu %0 : f32[2]\n  %1 = relu %0 : f32[2]\n  return\n}",
            (3, 3),
            "defined twice",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %1 = relu %0 flavor=1 : f32[2]\n  return\n}",
            (2, 16),
            "attribute `flavor`: unknown attribute",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %1 = concat %0, %0 axis=0 axis=0 : f32[4]\n  return\n}",
            (2, 29),
            "attribute `axis`: given twice",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %1 = transpose %0 perm=true : f32[2]\n  return\n}",
            (2, 21),
            "attribute `perm`: expected a list",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %1 = const [1.0, true] : f32[2]\n  return\n}",
            (2, 20),
            "`true` is not a valid f32 value",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %1 = const 3000000000 : i32[]\n  return\n}",
            (2, 14),
            "`3000000000` is not a valid i32 value",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %1 = const - -1.0 : f32[]\n  return\n}",
            (2, 16),
            "two signs",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %1 = const 1.5.2 : f32[]\n  return\n}",
            (2, 14),
            "`1.5.2` is not a number",
        ),
        (
            "fn f(x: f32[2]) -> (y: f32[3]) {\n  return %0\n}",
            (1, 24),
            "result declared f32[3] but the returned node is f32[2]",
        ),
        (
            "fn f(x: f32[2]) -> (y: f32[2], y: f32[2]) {\n  return %0, %0\n}",
            (1, 32),
            "two results are named `y`",
        ),
        (
            "fn f(x: f32[2]) -> (f32[2]) {\n  return %7\n}",
            (2, 10),
            "`%7` is not defined",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %1 = relu",
            (2, 12),
            "expected `:`, found end of input",
        ),
        (
            "fn \"f(x: f32[2]) -> () {\n  return\n}",
            (1, 4),
            "unterminated string",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  % = relu %0 : f32[2]\n  return\n}",
            (2, 3),
            "expected a node id",
        ),
        (
            "fn f(x: f32[1000000000,1000000000]) -> () {\n  return\n}",
            (1, 9),
            "elements",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %1 = relu %0 : f32[2] @\n}",
            (3, 1),
            "expected a name, found `}`",
        ),
        (
            "fn f(x: f32[2,3]) -> () {\n  %1 = matmul %0, %0 : f32[2,3]\n  return\n}",
            (2, 8),
            "inner dimensions differ",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %1 = transpose %0 : f32[2]\n  return\n}",
            (2, 8),
            "attribute `perm`: missing",
        ),
        (
            "fn f(x: f32[2]) -> (f32[2], f32[2]) {\n  return %0\n}",
            (2, 3),
            "declares 2 results",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %1 = const [1.0, 2.0, 3.0] : f32[2]\n  return\n}",
            (2, 14),
            "needs 1 or 2 values",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %1 = relu %0 : f32[2] $\n  return\n}",
            (2, 25),
            "unexpected character",
        ),
        (
            "fn f(x: f32[2], x: f32[2]) -> () {\n  return\n}",
            (1, 17),
            "used by two",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  return\n}\nextra",
            (4, 1),
            "end of input",
        ),
        (
            "fn f(x: f32[2]) -> () {\n  %1 = reduce_sum %0 axes=[1] keepdims=false : f32[]\n  return\n}",
            (2, 8),
            "out of range",
        ),
    ];
    for (src, (line, col), msg) in cases {
        let e = parse(src).expect_err(src);
        assert_eq!((e.line, e.col), (*line, *col), "{src:?}: {e}");
        assert!(
            e.to_string().contains(msg),
            "{src:?}: `{e}` should mention `{msg}`"
        );
        assert!(e.to_string().starts_with(&format!("{line}:{col}: ")));
    }
}

/// Structural equality, NaN-aware for literals and attributes.
fn same_graph(a: &Graph, b: &Graph) -> Result<(), String> {
    let (a, _) = a.canonicalize().unwrap();
    if a.node_count() != b.node_count()
        || a.args() != b.args()
        || a.outputs() != b.outputs()
        || a.name() != b.name()
    {
        return Err("different sizes, arguments, outputs or names".into());
    }
    for n in a.node_ids() {
        let (x, y) = (a.node(n), b.node(n));
        let ops_equal = match (&x.op, &y.op) {
            (Op::Const(s), Op::Const(t)) => {
                s.shape() == t.shape() && bits(s.data()) == bits(t.data())
            }
            (p, q) => p.to_string() == q.to_string(),
        };
        if !ops_equal || x.ty != y.ty || x.name != y.name || a.operands(n) != b.operands(n) {
            return Err(format!("node %{} differs", n.index()));
        }
    }
    Ok(())
}

fn bits(d: &TensorData) -> Vec<u64> {
    match d {
        TensorData::F32(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
        TensorData::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x as u64).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| x as u64).collect(),
    }
}

proptest! {
    #![proptest_config(kiln_testutil::proptest_config(256, 0x6b69_6c6e_0002))]

    /// Graphs from recipes of choices, so that a failure shrinks to a small graph.
    #[test]
    fn print_parse_print_round_trips(recipe in prop::collection::vec(any::<u64>(), 0..400)) {
        let g = random_graph_with(Box::new(Recipe::new(recipe)), "random");
        let text = print(&g);
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(print(&parsed), text.clone());
        same_graph(&g, &parsed).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
    }

    #[test]
    fn mangled_input_is_an_error_not_a_panic(recipe in prop::collection::vec(any::<u64>(), 0..400), cut in 0usize..2000, byte in 0u8..128) {
        let text = print(&random_graph_with(Box::new(Recipe::new(recipe)), "random"));
        let cut = cut.min(text.len());
        let mut mangled: Vec<char> = text.chars().collect();
        let at = cut.min(mangled.len().saturating_sub(1));
        if !mangled.is_empty() {
            mangled[at] = byte as char;
        }
        let mangled: String = mangled.into_iter().collect();
        let _ = parse(&mangled);
        let _ = parse(&text[..text.char_indices().map(|(i, _)| i).find(|&i| i >= cut).unwrap_or(text.len())]);
    }

    #[test]
    fn float_literals_read_back_bit_exact(a in any::<u32>(), b in any::<u64>(), c in any::<u32>()) {
        let (a, b, c) = (f32::from_bits(a), f64::from_bits(b), f32::from_bits(c));
        prop_assume!(!a.is_nan() && !b.is_nan() && !c.is_nan());
        let mut g = Graph::new("floats");
        let x = g.constant(HostTensor::from_f32([3], vec![a, c, 1.0]).unwrap());
        let y = g.constant(HostTensor::from_f64([], vec![b]).unwrap());
        let z = g.constant(HostTensor::from_f32([2, 2], vec![a; 4]).unwrap());
        g.output(x, None);
        g.output(y, None);
        g.output(z, None);
        let text = print(&g);
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        same_graph(&g, &parsed).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
    }
}

/// Edits a valid file with deletions, duplications, inserted tokens and swapped
/// lines: parsing never panics, and whatever it accepts prints to a fixed point.
#[test]
fn mutated_files_are_errors_or_graphs_never_panics() {
    const TOKENS: [&str; 22] = [
        "%",
        "%99",
        "%0",
        "-",
        "[",
        "]",
        ",",
        ":",
        "=",
        "@",
        "\"",
        "18446744073709551616",
        "-9223372036854775808",
        "4294967296",
        "1e999",
        "NaN",
        "-inf",
        "param",
        "const",
        "return",
        "}",
        "\n// c\n",
    ];
    let mut accepted = 0;
    for seed in 0..300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let mut text: Vec<char> = print(&random_graph(seed)).chars().collect();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(text.len());
            let len = 1 + rng.below(8);
            let end = (at + len).min(text.len());
            match rng.below(4) {
                0 => {
                    text.drain(at..end);
                }
                1 => {
                    let span: Vec<char> = text[at..end].to_vec();
                    text.splice(at..at, span);
                }
                2 => {
                    let token = TOKENS[rng.below(TOKENS.len())];
                    text.splice(at..at, format!(" {token} ").chars());
                }
                _ => {
                    let s: String = text.iter().collect();
                    let mut lines: Vec<&str> = s.lines().collect();
                    let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
                    lines.swap(i, j);
                    text = lines.join("\n").chars().collect();
                }
            }
            if text.is_empty() {
                break;
            }
        }
        let src: String = text.into_iter().collect();
        if let Ok(g) = parse(&src) {
            accepted += 1;
            let once = print(&g);
            let twice = parse(&once).map(|g| print(&g));
            assert_eq!(twice.as_ref(), Ok(&once), "accepted:\n{src}");
        }
    }
    // Some edits are harmless (a swapped pair of equal lines, a duplicated blank,
    // an inserted comment), most are not.
    assert!((1..150).contains(&accepted), "{accepted}");
}

#[test]
fn literals_splat_list_nan_zero_and_empty() {
    let mut g = Graph::new("lits");
    let neg_nan = f32::from_bits(f32::NAN.to_bits() | 0x8000_0000);
    let nans = g.constant(HostTensor::from_f32([2], vec![f32::NAN, neg_nan]).unwrap());
    let zeros = g.constant(HostTensor::from_f64([2], vec![0.0, -0.0]).unwrap());
    let empty = g.constant(HostTensor::from_i32([0, 3], vec![]).unwrap());
    let bools = g.constant(HostTensor::from_bool([2, 2], vec![true; 4]).unwrap());
    let ints = g.constant(HostTensor::from_i32([3], vec![i32::MIN, 0, i32::MAX]).unwrap());
    let inf = g.constant(HostTensor::from_f64([], vec![f64::NEG_INFINITY]).unwrap());
    for n in [nans, zeros, empty, bools, ints, inf] {
        g.output(n, None);
    }
    let want = "\
fn lits() -> (f32[2], f64[2], i32[0,3], bool[2,2], i32[3], f64[]) {
  %0 = const NaN                          : f32[2]
  %1 = const [0.0, -0.0]                  : f64[2]
  %2 = const []                           : i32[0,3]
  %3 = const true                         : bool[2,2]
  %4 = const [-2147483648, 0, 2147483647] : i32[3]
  %5 = const -inf                         : f64[]
  return %0, %1, %2, %3, %4, %5
}
";
    assert_eq!(print(&g), want);
    let parsed = parse(want).unwrap();
    assert_eq!(print(&parsed), want);
    let Op::Const(t) = &parsed.node(NodeId::new(4)).op else {
        panic!("not a const")
    };
    assert_eq!(t.as_i32(), Some(&[i32::MIN, 0, i32::MAX][..]));
}

#[test]
fn long_lines_are_not_padded_and_long_signatures_wrap() {
    let mut g = Graph::new("wide");
    let x = g.input("x", f32t(&[2, 3, 4, 5])).unwrap();
    let t = g.add(Op::Transpose(vec![3, 2, 1, 0]), &[x]).unwrap();
    let s = g
        .add(
            Op::Slice {
                start: vec![0, 0, 0, 0],
                end: vec![5, 4, 3, 2],
                step: vec![2, 2, 2, 2],
            },
            &[t],
        )
        .unwrap();
    g.output(s, None);
    let text = print(&g);
    assert!(
        text.contains("  %1 = transpose %0 perm=[3,2,1,0] : f32[5,4,3,2]\n"),
        "{text}"
    );
    assert!(text.contains(" step=[2,2,2,2] : f32[3,2,2,1]\n"), "{text}");
    assert_eq!(print(&parse(&text).unwrap()), text);

    let mut g = Graph::new("step");
    for i in 0..8 {
        let p = g
            .param(&format!("layer{i}.weight"), f32t(&[64, 64]))
            .unwrap();
        g.output(p, Some(&format!("grad{i}")));
    }
    let text = print(&g);
    assert!(
        text.starts_with("fn step(\n    layer0.weight: param f32[64,64],\n"),
        "{text}"
    );
    assert_eq!(print(&parse(&text).unwrap()), text);
}

#[test]
fn the_generator_covers_every_op() {
    let mut seen = BTreeSet::new();
    for seed in 0..400u64 {
        let g = random_graph(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        for n in g.node_ids() {
            seen.insert(g.node(n).op.mnemonic());
        }
    }
    for op in Op::samples() {
        assert!(
            seen.contains(op.mnemonic()),
            "the random graphs never contain `{}`",
            op.mnemonic()
        );
    }
}

#[test]
fn random_graphs_are_substantial() {
    // The round trip is only as good as the graphs it sees: most of the twelve
    // proposals per graph must be accepted, so most graphs have many computed nodes
    // beyond their arguments and constants.
    let computed: Vec<usize> = (0..200u64)
        .map(|s| {
            let g = random_graph(s * 7919);
            g.node_ids().filter(|&n| !g.node(n).op.is_leaf()).count()
        })
        .collect();
    let total: usize = computed.iter().sum();
    assert!(total >= 200 * 8, "{total} computed nodes: {computed:?}");
    let outputs: BTreeSet<usize> = (0..200u64)
        .map(|s| random_graph(s * 7919).outputs().len())
        .collect();
    assert_eq!(outputs, BTreeSet::from([0, 1, 2, 3]));
}

/// Absurd sizes and attributes (overflowing windows, paddings, concatenations,
/// element counts) are parse errors, never panics or giant allocations.
#[test]
fn absurd_numbers_are_errors_not_panics() {
    let templates = [
        "fn f(x: f32[2,2,5,6], w: f32[3,2,2,2]) -> () {\n  %2 = conv2d %0, %1 stride=[A,1] padding=[B,0] dilation=[C,1] : f32[2,3,4,5]\n  return\n}",
        "fn f(x: f32[1,3,3,4], w: f32[3,2,2,3]) -> () {\n  %2 = conv_transpose2d %0, %1 stride=[A,1] padding=[B,0] dilation=[C,1] output_padding=[0,0] : f32[2,3,4,5]\n  return\n}",
        "fn f(x: f32[1,2,5,4]) -> () {\n  %1 = max_pool2d %0 kernel=[A,2] stride=[B,1] padding=[C,0] : f32[2]\n  return\n}",
        "fn f(x: f32[2]) -> () {\n  %1 = pad %0 low=[A] high=[B] value=0.0 : f32[2]\n  return\n}",
        "fn f(x: f32[2]) -> () {\n  %1 = reshape %0 shape=[A,B,C] : f32[2]\n  return\n}",
        "fn f(x: f32[A,B]) -> () {\n  %1 = concat %0, %0 axis=0 : f32[2]\n  return\n}",
        "fn f(x: f32[2]) -> () {\n  %1 = const 1.0 : f32[A,B]\n  return\n}",
        "fn f(x: i32[]) -> () {\n  %1 = random_uniform %0 shape=[A,B] dtype=f32 salt=C : f32[2]\n  return\n}",
    ];
    let numbers = [
        "0",
        "1",
        "4294967296",
        "9223372036854775807",
        "18446744073709551615",
        "3037000500",
    ];
    let mut errors = 0;
    for t in templates {
        for a in numbers {
            for b in numbers {
                for c in numbers {
                    let src = t.replace('A', a).replace('B', b).replace('C', c);
                    errors += parse(&src).is_err() as usize;
                }
            }
        }
    }
    // Nearly every combination is invalid; none may panic (reaching here is the test).
    assert!(errors > templates.len() * 150, "{errors}");
}
