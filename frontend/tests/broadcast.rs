//! Broadcasting inserts explicit `broadcast` nodes exactly where operand shapes
//! differ from the result, and scalars become `const` nodes of the other dtype.

use kiln_frontend::prelude::*;
use kiln_ir::{BinaryOp, Graph, NodeId, Op};

/// The nodes of `g` whose mnemonic is `m`.
fn nodes(g: &Graph, m: &str) -> Vec<NodeId> {
    g.node_ids()
        .filter(|&n| g.node(n).op.mnemonic() == m)
        .collect()
}

/// The single output node of a one-output model.
fn out(g: &Graph) -> NodeId {
    g.outputs()[0].node
}

fn dims(g: &Graph, n: NodeId) -> Vec<usize> {
    g.node(n).ty.shape.dims().to_vec()
}

#[test]
fn vector_plus_matrix_broadcasts_the_vector_only() {
    let g = GraphBuilder::new("b");
    let v = g.input("v", DType::F32, [3]);
    let m = g.input("m", DType::F32, [2, 3]);
    let y = &v + &m;
    assert_eq!(y.dims(), &[2, 3]);
    let model = g.build(&[&y]).unwrap();
    let gr = &model.graph;
    let bs = nodes(gr, "broadcast");
    assert_eq!(bs.len(), 1);
    assert_eq!(gr.node(bs[0]).op, Op::Broadcast([2, 3].into()));
    assert_eq!(gr.operands(bs[0]), vec![gr.arg("v").unwrap()]);
    // add(broadcast(v), m): operand order is kept.
    let add = out(gr);
    assert_eq!(gr.node(add).op, Op::Binary(BinaryOp::Add));
    assert_eq!(gr.operands(add), vec![bs[0], gr.arg("m").unwrap()]);
    assert_eq!(gr.node_count(), 4);
}

#[test]
fn column_times_row_broadcasts_both() {
    let g = GraphBuilder::new("b");
    let c = g.input("c", DType::F32, [2, 1]);
    let r = g.input("r", DType::F32, [1, 3]);
    let y = &c * &r;
    assert_eq!(y.dims(), &[2, 3]);
    let model = g.build(&[&y]).unwrap();
    let gr = &model.graph;
    let bs = nodes(gr, "broadcast");
    assert_eq!(bs.len(), 2);
    for b in &bs {
        assert_eq!(dims(gr, *b), [2, 3]);
    }
    let mul = out(gr);
    assert_eq!(gr.operands(mul), bs);
    assert_eq!(gr.operands(bs[0]), vec![gr.arg("c").unwrap()]);
    assert_eq!(gr.operands(bs[1]), vec![gr.arg("r").unwrap()]);
}

#[test]
fn equal_shapes_need_no_broadcast() {
    let g = GraphBuilder::new("b");
    let a = g.input("a", DType::F32, [2, 3]);
    let b = g.input("b", DType::F32, [2, 3]);
    let model = g.build(&[&(&a - &b).relu()]).unwrap();
    assert!(nodes(&model.graph, "broadcast").is_empty());
    assert_eq!(model.graph.node_count(), 4);
}

#[test]
fn scalars_become_constants_of_the_tensor_dtype() {
    for dtype in [DType::F32, DType::F64, DType::I32] {
        let g = GraphBuilder::new("s");
        let x = g.input("x", dtype, [2, 3]);
        let y = &x * 2.0;
        let model = g.build(&[&y]).unwrap();
        let gr = &model.graph;
        let consts = nodes(gr, "const");
        assert_eq!(consts.len(), 1);
        let Op::Const(c) = &gr.node(consts[0]).op else {
            unreachable!()
        };
        assert_eq!(c.dtype(), dtype);
        assert_eq!(c.shape().rank(), 0);
        assert_eq!(c.get_f64(0), 2.0);
        let bs = nodes(gr, "broadcast");
        assert_eq!(bs.len(), 1);
        assert_eq!(gr.operands(bs[0]), consts);
        assert_eq!(gr.operands(out(gr)), vec![gr.arg("x").unwrap(), bs[0]]);
    }
}

#[test]
fn scalar_on_the_left_keeps_operand_order() {
    let g = GraphBuilder::new("s");
    let p = g.input("p", DType::F32, [4]);
    let y = 1.0 - &p;
    let z = 3.0 / p.clone();
    let model = g.build(&[("y", &y), ("z", &z)]).unwrap();
    let gr = &model.graph;
    for (o, k, v) in [(0, BinaryOp::Sub, 1.0), (1, BinaryOp::Div, 3.0)] {
        let n = gr.outputs()[o].node;
        assert_eq!(gr.node(n).op, Op::Binary(k));
        let ops = gr.operands(n);
        assert_eq!(ops[1], gr.arg("p").unwrap());
        let b = ops[0];
        assert_eq!(gr.node(b).op.mnemonic(), "broadcast");
        let Op::Const(c) = &gr.node(gr.operands(b)[0]).op else {
            panic!("expected a const")
        };
        assert_eq!(c.get_f64(0), v);
    }
}

#[test]
fn scalar_with_a_scalar_tensor_needs_no_broadcast() {
    let g = GraphBuilder::new("s");
    let w = g.input("w", DType::F32, []);
    let y = -(&w + 1.5);
    let model = g.build(&[&y]).unwrap();
    assert!(nodes(&model.graph, "broadcast").is_empty());
    assert_eq!(nodes(&model.graph, "const").len(), 1);
    assert_eq!(nodes(&model.graph, "neg").len(), 1);
}

#[test]
fn comparisons_and_select_broadcast_all_operands() {
    let g = GraphBuilder::new("c");
    let x = g.input("x", DType::F32, [2, 3]);
    let t = g.input("t", DType::F32, [3]);
    let mask = x.gt(&t);
    assert_eq!(mask.dtype(), DType::Bool);
    assert_eq!(mask.dims(), &[2, 3]);
    let col = g.input("col", DType::F32, [2, 1]);
    let y = mask.where_cond(&col, 0.0);
    assert_eq!(y.dims(), &[2, 3]);
    assert_eq!(y.dtype(), DType::F32);
    let s = select(&x.lt(0.0), 1.0, -1.0);
    assert_eq!(s.dims(), &[2, 3]);
    let model = g.build(&[("y", &y), ("s", &s)]).unwrap();
    let gr = &model.graph;
    let sel = gr.outputs()[0].node;
    let ops = gr.operands(sel);
    assert_eq!(dims(gr, ops[1]), [2, 3]);
    assert_eq!(gr.operands(ops[1]), vec![gr.arg("col").unwrap()]);
    assert_eq!(gr.node(ops[2]).op.mnemonic(), "broadcast");
    // broadcasts: t for gt, col and the 0.0 for select, 0.0 for lt, 1.0 and -1.0.
    assert_eq!(nodes(gr, "broadcast").len(), 6);
}

#[test]
fn explicit_broadcast_to() {
    let g = GraphBuilder::new("e");
    let x = g.input("x", DType::F32, [3, 1]);
    let y = x.broadcast_to([2, 3, 4]);
    assert_eq!(y.dims(), &[2, 3, 4]);
    let same = x.broadcast_to([3, 1]);
    assert_eq!(same.node(), x.node(), "no node when the shape already fits");
    let bad = x.broadcast_to([2, 4, 4]);
    assert!(bad.is_poisoned());
    assert!(g.error().unwrap().to_string().contains("cannot broadcast"));
}

#[test]
fn batched_matmul_broadcasts_batch_dimensions() {
    let g = GraphBuilder::new("m");
    let a = g.input("a", DType::F32, [2, 1, 4, 3]);
    let b = g.input("b", DType::F32, [5, 3, 6]);
    let y = a.matmul(&b);
    assert_eq!(y.dims(), &[2, 5, 4, 6]);
    let model = g.build(&[&y]).unwrap();
    let gr = &model.graph;
    let mm = nodes(gr, "matmul");
    assert_eq!(mm.len(), 1);
    let ops = gr.operands(mm[0]);
    assert_eq!(dims(gr, ops[0]), [2, 5, 4, 3]);
    assert_eq!(dims(gr, ops[1]), [2, 5, 3, 6]);
}

#[test]
fn rank3_by_rank2_matmul_folds_the_batch_into_rows() {
    let g = GraphBuilder::new("m");
    let x = g.input("x", DType::F32, [4, 5, 3]);
    let w = g.input("w", DType::F32, [3, 7]);
    let y = x.matmul(&w);
    assert_eq!(y.dims(), &[4, 5, 7]);
    let model = g.build(&[&y]).unwrap();
    let gr = &model.graph;
    let mm = nodes(gr, "matmul");
    assert_eq!(mm.len(), 1);
    let ops = gr.operands(mm[0]);
    assert_eq!(dims(gr, ops[0]), [20, 3]);
    assert_eq!(ops[1], gr.arg("w").unwrap());
    assert!(nodes(gr, "broadcast").is_empty());
    assert_eq!(nodes(gr, "reshape").len(), 2);
    assert_eq!(dims(gr, out(gr)), [4, 5, 7]);
}

#[test]
fn vector_matmuls_drop_the_vector_axis() {
    let g = GraphBuilder::new("m");
    let v = g.input("v", DType::F32, [3]);
    let m = g.input("m", DType::F32, [3, 4]);
    let n = g.input("n", DType::F32, [4, 3]);
    assert_eq!(v.matmul(&m).dims(), &[4]);
    assert_eq!(n.matmul(&v).dims(), &[4]);
    assert_eq!(v.matmul(&v).dims(), &[] as &[usize]);
    assert!(g.check().is_ok());
}
