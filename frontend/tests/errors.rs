//! Deferred errors: the location of the offending user call, root causes only, and
//! operands from different builders.

use kiln_frontend::prelude::*;
use kiln_frontend::{ErrorKind, Operand};

/// `file:line:` of this test file, as the errors print it.
fn at(line: u32) -> String {
    format!("{}:{}:", file!(), line)
}

#[test]
fn shape_mismatch_names_this_file_and_line() {
    let g = GraphBuilder::new("bad");
    let a = g.input("a", DType::F32, [2, 3]);
    let b = g.input("b", DType::F32, [4, 5]);
    let (c, line) = (a.matmul(&b), line!());
    assert!(c.is_poisoned());
    let err = g.build(&[("c", &c)]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(&at(line)), "{msg}");
    assert!(msg.contains("`matmul` on (f32[2,3], f32[4,5])"), "{msg}");
    assert!(msg.contains("3 != 4"), "{msg}");
    assert_eq!(err.errors().len(), 1);
    let e = err.first();
    assert_eq!(e.location.file(), file!());
    assert_eq!(e.location.line(), line);
    assert_eq!(e.op, "matmul");
    assert!(matches!(e.kind, ErrorKind::Type(_)), "{:?}", e.kind);
}

#[test]
fn operators_report_the_line_of_the_operator() {
    let g = GraphBuilder::new("ops");
    let a = g.input("a", DType::F32, [2, 3]);
    let b = g.input("b", DType::F32, [4]);
    let (c, line) = (&a + &b, line!());
    let e = g.error().expect("recorded");
    assert!(e.to_string().starts_with(&at(line)), "{e}");
    assert!(e.to_string().contains("do not broadcast"), "{e}");
    assert_eq!(e.operands, vec![a.ty().clone(), b.ty().clone()]);
    assert!(c.is_poisoned());

    // Each operator form, by value and by reference, with scalars on either side.
    let g = GraphBuilder::new("ops");
    let x = g.input("x", DType::F32, [2]);
    let i = g.input("i", DType::I32, [2]);
    let checks: Vec<(Tensor, u32)> = vec![
        (x.clone() - i.clone(), line!()),
        (&x * &i, line!()),
        (x.clone() / &i, line!()),
        (&x + i.clone(), line!()),
    ];
    let errors = g.errors();
    assert_eq!(errors.len(), checks.len());
    for (e, (t, line)) in errors.iter().zip(&checks) {
        assert!(t.is_poisoned());
        assert_eq!(e.location.line(), *line, "{e}");
        assert!(e.to_string().contains("dtype f32"), "{e}");
    }
}

#[test]
fn composite_ops_and_layers_report_the_user_line() {
    let g = GraphBuilder::new("composite");
    let mut rng = Rng::seed(1);
    let x = g.input("x", DType::F32, [2, 5]);
    let labels = g.input("labels", DType::I32, [3]);
    let fc = nn::Linear::new(&g, "fc", 4, 3, &mut rng);

    let (_, l1) = (fc.forward(&x), line!());
    let (_, l2) = (x.softmax(2), line!());
    let (_, l3) = (loss::cross_entropy(&x, &labels), line!());
    let (_, l4) = (x.sum(&[0, -2], false), line!());
    let (_, l5) = (x.reshape([3, -1]), line!());
    let (_, l6) = (x.dropout(1.5, &g.input("seed", DType::I32, []), 0), line!());
    let seq = nn::Sequential::new().add(nn::Relu).add(fc.clone());
    let (_, l7) = (seq.forward(&x), line!());
    let (_, l8) = (x.conv2d(&x, 1, 0, 1), line!());

    let lines: Vec<u32> = g.errors().iter().map(|e| e.location.line()).collect();
    assert_eq!(lines, [l1, l2, l3, l4, l5, l6, l7, l8]);
    let ops: Vec<String> = g.errors().iter().map(|e| e.op.clone()).collect();
    assert_eq!(
        ops,
        [
            "matmul",
            "softmax",
            "cross_entropy",
            "sum",
            "reshape",
            "dropout",
            "matmul",
            "conv2d"
        ]
    );
    for e in g.errors() {
        assert_eq!(e.location.file(), file!());
    }
    let msgs: Vec<String> = g.errors().iter().map(|e| e.to_string()).collect();
    assert!(
        msgs[1].contains("axis 2 out of range for rank 2"),
        "{}",
        msgs[1]
    );
    assert!(
        msgs[2].contains("disagree on the batch size"),
        "{}",
        msgs[2]
    );
    assert!(msgs[3].contains("repeat"), "{}", msgs[3]);
    assert!(msgs[5].contains("[0, 1]"), "{}", msgs[5]);
}

#[test]
fn poison_propagates_and_only_the_root_cause_is_reported() {
    let g = GraphBuilder::new("poison");
    let a = g.input("a", DType::F32, [2, 3]);
    let b = g.input("b", DType::F32, [4, 5]);
    let (bad, line) = (a.matmul(&b), line!());
    // A long chain of ops on the poisoned value, including ones that would fail on
    // their own (rank-2 placeholder, axis 5).
    let y = (bad.relu() + &a) * 2.0;
    let y = y.softmax(5).sum(&[7], true).matmul(&b);
    let z = loss::mse(&y, &a) + 1.0;
    assert!(y.is_poisoned() && z.is_poisoned());
    let err = g.build(&[("z", &z)]).unwrap_err();
    assert_eq!(err.errors().len(), 1, "{:?}", err.errors());
    assert_eq!(err.first().location.line(), line);
    // Ops on healthy tensors still work and still report their own mistakes.
    let ok = a.relu();
    assert!(!ok.is_poisoned());
    let (_, line2) = (a.transpose(0, 2), line!());
    let err = g.check().unwrap_err();
    assert_eq!(err.errors().len(), 2);
    assert_eq!(err.errors()[1].location.line(), line2);
    assert!(err.to_string().ends_with("(and 1 more error)"), "{err}");
}

#[test]
fn poisoned_tensors_keep_a_placeholder_type() {
    let g = GraphBuilder::new("placeholders");
    let a = g.input("a", DType::F32, [2, 3]);
    let dup = g.input("a", DType::F32, [7]);
    assert!(dup.is_poisoned());
    assert_eq!(dup.dims(), &[7], "the declared type");
    let r = dup.reshape([7, 1]);
    assert_eq!(r.dims(), &[7, 1]);
    assert_eq!(loss::mse(&r, &r).rank(), 0);
    assert_eq!(dup.broadcast_to([2, 7]).dims(), &[2, 7]);
    let e = g.error().unwrap();
    assert!(matches!(e.kind, ErrorKind::Graph(_)));
    assert!(e.to_string().contains("`a`"), "{e}");
    let bad = g.input("not a name", DType::F32, [1]);
    assert!(bad.is_poisoned());
    assert_eq!(g.errors().len(), 2);
    // The healthy input still works.
    assert!(!a.exp().is_poisoned());
}

#[test]
fn operands_from_another_builder_are_errors() {
    let g1 = GraphBuilder::new("one");
    let g2 = GraphBuilder::new("two");
    let x = g1.input("x", DType::F32, [3]);
    let y = g2.input("y", DType::F32, [3]);
    let (z, line) = (&x + &y, line!());
    assert!(z.is_poisoned());
    let e = g1.error().expect("recorded in the left operand's builder");
    assert_eq!(e.location.line(), line);
    assert!(
        matches!(&e.kind, ErrorKind::ForeignOperand { index: 1, ours, theirs } if ours == "one" && theirs == "two"),
        "{:?}",
        e.kind
    );
    assert!(
        e.to_string().contains("belongs to the graph builder `two`"),
        "{e}"
    );
    assert!(g2.check().is_ok());

    // Outputs from another builder.
    let err = g2.build(&[("x", &x)]).unwrap_err();
    assert!(matches!(err.first().kind, ErrorKind::ForeignOperand { .. }));
    assert!(err.first().to_string().contains("`build`"));

    // Scalars and selects check every tensor operand.
    let mask = g2.input("m", DType::Bool, [3]);
    let s = mask.where_cond(&y, Operand::Tensor(&x));
    assert!(s.is_poisoned());
    assert_eq!(g2.errors().len(), 1);
}

#[test]
fn concat_of_nothing_is_an_error_not_a_panic() {
    let g = GraphBuilder::new("cat");
    let x = g.input("x", DType::F32, [2]);
    let empty = Tensor::cat(&[], 0);
    assert!(empty.is_poisoned());
    let e = empty.builder().error().unwrap();
    assert!(e.to_string().contains("at least 1"), "{e}");
    // Using it with the real builder is reported there.
    let y = &x + &empty;
    assert!(y.is_poisoned());
    assert!(g.check().is_err());
}

#[test]
fn build_checks_output_names_and_keeps_the_builder_usable() {
    let g = GraphBuilder::new("outs");
    let x = g.input("x", DType::F32, [2]);
    let y = x.exp();
    let err = g.build(&[("y", &y), ("y", &x)]).unwrap_err();
    assert!(err.to_string().contains("the name `y`"), "{err}");
    // Nothing was recorded: a correct build still succeeds.
    let m = g.build(&[("y", &y)]).unwrap();
    assert_eq!(m.graph.outputs().len(), 1);
    let m = g.build(&[&y, &x]).unwrap();
    assert_eq!(m.graph.outputs()[0].name, None);
}

#[test]
fn wrong_dtypes_are_reported_with_both_types() {
    let g = GraphBuilder::new("dtypes");
    let x = g.input("x", DType::I32, [2]);
    let (_, line) = (x.exp(), line!());
    let e = g.error().unwrap();
    assert_eq!(e.location.line(), line);
    assert!(e.to_string().contains("`exp` on (i32[2])"), "{e}");
    assert!(e.to_string().contains("float"), "{e}");
    let f = g.input("f", DType::F32, [2]);
    let m = g.input("m", DType::F32, [2]);
    let _ = m.where_cond(&f, &f);
    assert!(g.errors()[1].to_string().contains("condition must be bool"));
}
