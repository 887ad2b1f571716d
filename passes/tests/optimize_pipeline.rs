//! The pass manager: named passes in order, a hook per stage, errors naming the pass.

mod optimize_util;

use kiln_ir::{BinaryOp, DType, Graph, HostTensor, Op, TensorType, UnaryOp};
use kiln_passes::optimize::{Pass, PassOutput, Pipeline, Report};
use optimize_util::listing;

fn sample() -> Graph {
    let mut g = Graph::new("sample");
    let x = g.input("x", TensorType::new(DType::F32, [4])).unwrap();
    let one = g.constant(HostTensor::full(DType::F32, [4], 1.0));
    let m = g.add(Op::Binary(BinaryOp::Mul), &[x, one]).unwrap();
    let _dead = g.add(Op::Unary(UnaryOp::Exp), &[x]).unwrap();
    let y = g.add(Op::Unary(UnaryOp::Relu), &[m]).unwrap();
    g.output(y, Some("y"));
    g
}

#[test]
fn standard_pipeline_runs_dce_then_optimize() {
    let mut seen = Vec::new();
    let out = Pipeline::standard()
        .run_with(&sample(), |s| {
            seen.push((s.pass.clone(), s.graph.node_count(), s.report.is_some()));
            // The text of every stage is available to dump (KILN_DUMP, `kiln`).
            assert!(!s.text().is_empty());
        })
        .unwrap();
    assert_eq!(
        seen,
        vec![
            ("dce".to_string(), 4, false),
            ("optimize".to_string(), 2, true)
        ]
    );
    insta::assert_snapshot!(listing(&out), @r"
    fn sample(x: f32[4]) -> (y: f32[4]) {
      %1 = relu %0 : f32[4]
      return %1
    }
    ");
}

#[test]
fn run_collect_keeps_every_stage_and_errors_name_the_pass() {
    let p = Pipeline::new()
        .then(Pass::dce())
        .then(Pass::new("identity", |g| {
            Ok(PassOutput {
                graph: g.clone(),
                report: Some(Report::Text("nothing to do".into())),
            })
        }));
    let (g, stages) = p.run_collect(&sample()).unwrap();
    assert_eq!(stages.len(), 2);
    assert_eq!(
        stages[1].report.as_ref().map(|r| r.to_string()).as_deref(),
        Some("nothing to do")
    );
    assert_eq!(listing(&g), listing(&stages[1].graph));

    let failing = Pipeline::new().then(Pass::new("broken", |_| Err("no luck".into())));
    let e = failing.run(&sample()).unwrap_err();
    assert_eq!(e.to_string(), "pass `broken` failed: no luck");
    assert_eq!(Pipeline::new().run(&sample()).unwrap().node_count(), 5);
}
