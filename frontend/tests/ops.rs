//! Result types of every op family, the nodes they emit, and the layers.

use kiln_frontend::prelude::*;
use kiln_ir::{Graph, NodeId, Op};

fn count(g: &Graph, m: &str) -> usize {
    g.node_ids()
        .filter(|&n| g.node(n).op.mnemonic() == m)
        .count()
}

fn find(g: &Graph, m: &str) -> NodeId {
    g.node_ids()
        .find(|&n| g.node(n).op.mnemonic() == m)
        .unwrap_or_else(|| panic!("no `{m}` node"))
}

#[test]
fn unary_and_binary_families() {
    let g = GraphBuilder::new("u");
    let x = g.input("x", DType::F32, [2, 3]);
    let y = g.input("y", DType::F32, [2, 3]);
    let ys = [
        x.neg(),
        x.exp(),
        x.log(),
        x.sqrt(),
        x.rsqrt(),
        x.tanh(),
        x.sigmoid(),
        x.relu(),
        x.abs(),
        x.recip(),
        x.sign(),
        x.leaky_relu(0.2),
        x.square(),
        x.add(&y),
        x.sub(2.0),
        x.mul(&y),
        x.div(&y),
        x.maximum(0.0),
        x.minimum(&y),
        x.pow(2.0),
        x.clamp(-1.0, 1.0),
    ];
    for t in &ys {
        assert_eq!(t.ty(), x.ty());
    }
    let masks = [x.lt(&y), x.le(&y), x.gt(0.5), x.ge(&y), x.eq(&y), x.ne(1)];
    for m in &masks {
        assert_eq!(m.dtype(), DType::Bool);
        assert_eq!(m.dims(), &[2, 3]);
    }
    let refs: Vec<&Tensor> = ys.iter().chain(&masks).collect();
    let outs: Vec<&Tensor> = refs.clone();
    let model = g.build(&outs).unwrap();
    let gr = &model.graph;
    assert_eq!(
        gr.node(find(gr, "leaky_relu")).op,
        Op::Unary(kiln_ir::UnaryOp::LeakyRelu(0.2))
    );
    // square is x * x with the same operand twice.
    let sq = gr.outputs()[12].node;
    let x_id = gr.arg("x").unwrap();
    assert_eq!(gr.operands(sq), vec![x_id, x_id]);
    for m in ["max", "min", "pow", "eq", "ne", "lt", "le", "gt", "ge"] {
        assert!(count(gr, m) >= 1, "{m}");
    }
}

#[test]
fn casts() {
    let g = GraphBuilder::new("c");
    let x = g.input("x", DType::F32, [2]);
    assert_eq!(x.cast(DType::I32).dtype(), DType::I32);
    assert_eq!(x.to_dtype(DType::F64).dtype(), DType::F64);
    assert_eq!(
        x.cast(DType::F32).node(),
        x.node(),
        "no-op cast adds nothing"
    );
    let m = x.gt(0.0).cast(DType::F32);
    assert_eq!(m.dtype(), DType::F32);
}

#[test]
fn reductions_with_signed_axes() {
    let g = GraphBuilder::new("r");
    let x = g.input("x", DType::F32, [2, 3, 4]);
    assert_eq!(x.sum(&[1], true).dims(), &[2, 1, 4]);
    assert_eq!(x.sum(&[-1, 0], false).dims(), &[3]);
    assert_eq!(x.mean(&[-1], false).dims(), &[2, 3]);
    assert_eq!(x.max(&[0, 1, 2], true).dims(), &[1, 1, 1]);
    assert_eq!(x.min(&[2], false).dims(), &[2, 3]);
    assert_eq!(x.sum_all().rank(), 0);
    assert_eq!(x.mean_all().rank(), 0);
    assert_eq!(x.max_all().rank(), 0);
    assert_eq!(x.min_all().rank(), 0);
    let am = x.argmax(-1, false);
    assert_eq!((am.dtype(), am.dims()), (DType::I32, &[2, 3][..]));
    assert_eq!(x.argmax(1, true).dims(), &[2, 1, 4]);
    assert_eq!(x.logsumexp(1, false).dims(), &[2, 4]);
    assert_eq!(x.logsumexp(1, true).dims(), &[2, 1, 4]);
    let s = x.sum(&[-3], false);
    let model = g.build(&[&s]).unwrap();
    let n = model.graph.outputs()[0].node;
    assert_eq!(
        model.graph.node(n).op,
        Op::Reduce {
            kind: kiln_ir::ReduceOp::Sum,
            axes: vec![0],
            keepdims: false
        }
    );
    let g = GraphBuilder::new("r");
    let x = g.input("x", DType::F32, [2, 3]);
    assert!(x.sum(&[2], false).is_poisoned());
    assert!(x.argmax(-3, false).is_poisoned());
}

#[test]
fn softmax_is_shifted_by_the_max() {
    let g = GraphBuilder::new("s");
    let x = g.input("x", DType::F32, [4, 10]);
    let p = x.softmax(-1);
    let lp = x.log_softmax(1);
    assert_eq!(p.ty(), x.ty());
    assert_eq!(lp.ty(), x.ty());
    let model = g.build(&[("p", &p)]).unwrap();
    let gr = &model.graph;
    assert_eq!(count(gr, "reduce_max"), 1);
    assert_eq!(count(gr, "exp"), 1);
    assert_eq!(count(gr, "reduce_sum"), 1);
    // exp is applied to x - max, not to x.
    let e = find(gr, "exp");
    assert_eq!(gr.node(gr.operands(e)[0]).op.mnemonic(), "sub");
}

#[test]
fn movement_ops() {
    let g = GraphBuilder::new("m");
    let x = g.input("x", DType::F32, [2, 3, 4]);
    assert_eq!(x.reshape([6, 4]).dims(), &[6, 4]);
    assert_eq!(x.reshape([-1, 2]).dims(), &[12, 2]);
    assert_eq!(x.reshape(vec![4usize, 6]).dims(), &[4, 6]);
    assert_eq!(x.reshape(x.shape()).node(), x.node());
    assert!(x.reshape([-1, -1]).is_poisoned());
    assert!(x.reshape([5, 5]).is_poisoned());
    assert_eq!(x.flatten(1).dims(), &[2, 12]);
    assert_eq!(x.flatten(0).dims(), &[24]);
    assert_eq!(x.flatten(-1).dims(), &[2, 3, 4]);
    assert_eq!(x.unsqueeze(0).dims(), &[1, 2, 3, 4]);
    assert_eq!(x.unsqueeze(-1).dims(), &[2, 3, 4, 1]);
    assert_eq!(x.unsqueeze(1).squeeze(1).dims(), &[2, 3, 4]);
    assert!(x.squeeze(0).is_poisoned());
    assert_eq!(x.permute(&[2, 0, 1]).dims(), &[4, 2, 3]);
    assert_eq!(x.transpose(0, -1).dims(), &[4, 3, 2]);
    assert_eq!(x.t().dims(), &[2, 4, 3]);
    assert_eq!(x.narrow(1, 1, 2).dims(), &[2, 2, 4]);
    assert_eq!(x.slice(-1, 1..).dims(), &[2, 3, 3]);
    assert_eq!(x.slice(0, ..=0).dims(), &[1, 3, 4]);
    assert_eq!(x.slice_step(2, .., 3).dims(), &[2, 3, 2]);
    assert!(x.slice(1, 2..5).is_poisoned());
    assert_eq!(x.pad(&[(0, 0), (1, 2), (0, 1)], 0.0).dims(), &[2, 6, 5]);
    assert!(x.pad(&[(1, 1)], 0.0).is_poisoned());
    let y = g.input("y", DType::F32, [2, 5, 4]);
    assert_eq!(Tensor::cat(&[&x, &y, &x], 1).dims(), &[2, 11, 4]);
    assert_eq!(concat(&[&x, &x], -1).dims(), &[2, 3, 8]);
    assert!(concat(&[&x, &y], 0).is_poisoned());
    let v = g.input("v", DType::F32, [5]);
    assert_eq!(v.t().node(), v.node());
    let errors = g.errors();
    assert_eq!(errors.len(), 6, "{errors:?}");

    // The slice node has per-axis start/end/step.
    let g = GraphBuilder::new("m");
    let x = g.input("x", DType::F32, [2, 3, 4]);
    let s = x.slice_step(-1, 1..4, 2);
    let model = g.build(&[&s]).unwrap();
    let n = model.graph.outputs()[0].node;
    assert_eq!(
        model.graph.node(n).op,
        Op::Slice {
            start: vec![0, 0, 1],
            end: vec![2, 3, 4],
            step: vec![1, 1, 2]
        }
    );
    assert_eq!(s.dims(), &[2, 3, 2]);
}

#[test]
fn conv_and_pool_shapes() {
    let g = GraphBuilder::new("lenet");
    let x = g.input("x", DType::F32, [8, 3, 32, 32]);
    let w = g.input("w", DType::F32, [6, 3, 5, 5]);
    let y = x.conv2d(&w, 1, 0, 1);
    assert_eq!(y.dims(), &[8, 6, 28, 28]);
    assert_eq!(y.max_pool2d(2, 2, 0).dims(), &[8, 6, 14, 14]);
    assert_eq!(y.avg_pool2d([2, 4], [2, 4], 0).dims(), &[8, 6, 14, 7]);
    let y2 = x.conv2d(&w, [2, 1], (2, 0), 1);
    assert_eq!(y2.dims(), &[8, 6, 16, 28]);
    // conv_transpose2d with IOHW weights inverts the geometry.
    let wt = g.input("wt", DType::F32, [6, 3, 5, 5]);
    assert_eq!(y.conv_transpose2d(&wt, 1, 0, 0, 1).dims(), &[8, 3, 32, 32]);
    // Arguments in PyTorch's order: stride 2, padding 1, output_padding, dilation 2.
    let small = g.input("small", DType::F32, [1, 4, 3, 3]);
    let w42 = g.input("w42", DType::F32, [4, 2, 3, 3]);
    assert_eq!(
        small.conv_transpose2d(&w42, 2, 1, 0, 2).dims(),
        &[1, 2, 7, 7]
    );
    assert_eq!(
        small.conv_transpose2d(&w42, 2, 1, [1, 0], 2).dims(),
        &[1, 2, 8, 7]
    );
    assert_eq!(y.max_pool2d(3, 2, 1).dims(), &[8, 6, 14, 14]);
    let bias = g.input("bias", DType::F32, [6]);
    let yb = &y + &bias.reshape([1, 6, 1, 1]);
    assert_eq!(yb.dims(), &[8, 6, 28, 28]);
    let bad = x.conv2d(&g.input("w2", DType::F32, [6, 4, 5, 5]), 1, 0, 1);
    assert!(bad.is_poisoned());
    assert!(
        g.error()
            .unwrap()
            .to_string()
            .contains("input channels differ")
    );
}

#[test]
fn indexing_ops() {
    let g = GraphBuilder::new("i");
    let table = g.input("table", DType::F32, [100, 16]);
    let ids = g.input("ids", DType::I32, [4, 7]);
    let e = table.gather(&ids);
    assert_eq!(e.dims(), &[4, 7, 16]);
    assert_eq!(table.embedding(&ids).dims(), &[4, 7, 16]);
    let back = e.scatter_add(&ids, 100);
    assert_eq!(back.dims(), &[100, 16]);
    let oh = ids.one_hot(10, DType::F32);
    assert_eq!((oh.dtype(), oh.dims()), (DType::F32, &[4, 7, 10][..]));
    assert!(table.gather(&table).is_poisoned());
}

#[test]
fn random_and_dropout_structure() {
    let g = GraphBuilder::new("d");
    let seed = g.input("seed", DType::I32, []);
    let x = g.input("x", DType::F32, [8, 16]);
    let u = Tensor::random_uniform(&seed, [3, 4], 7);
    assert_eq!((u.dtype(), u.dims()), (DType::F32, &[3, 4][..]));
    assert_eq!(x.rand_like(&seed, 1).ty(), x.ty());
    let y = x.dropout(0.25, &seed, 3);
    assert_eq!(y.ty(), x.ty());
    assert_eq!(x.dropout(0.0, &seed, 3).node(), x.node());
    let model = g.build(&[&y]).unwrap();
    let gr = &model.graph;
    let sel = gr.outputs()[0].node;
    assert_eq!(gr.node(sel).op, Op::Select);
    let ru = find(gr, "random_uniform");
    assert_eq!(
        gr.node(ru).op,
        Op::RandomUniform {
            shape: [8, 16].into(),
            dtype: DType::F32,
            salt: 3
        }
    );
    let consts: Vec<f64> = gr
        .node_ids()
        .filter_map(|n| match &gr.node(n).op {
            Op::Const(c) => Some(c.get_f64(0)),
            _ => None,
        })
        .collect();
    assert!(consts.contains(&0.25), "{consts:?}");
    assert!(
        consts.iter().any(|&c| (c - 1.0 / 0.75).abs() < 1e-6),
        "{consts:?}"
    );

    let f = g.input("f", DType::F32, []);
    assert!(Tensor::random_uniform(&f, [2], 0).is_poisoned());
    assert!(x.dropout(0.5, &f, 0).is_poisoned());
    assert!(x.dropout(-0.1, &seed, 0).is_poisoned());
}

#[test]
fn constants() {
    let g = GraphBuilder::new("c");
    let c = g.constant(HostTensor::from_f32([2], vec![1.0, 2.0]).unwrap());
    assert_eq!(c.dims(), &[2]);
    assert_eq!(g.scalar(3.0).rank(), 0);
    assert_eq!(g.zeros([2, 2]).dims(), &[2, 2]);
    let o = g.full(DType::I32, [3], 7.0);
    assert_eq!((o.dtype(), o.dims()), (DType::I32, &[3][..]));
    assert_eq!(g.ones([]).rank(), 0);
    let model = g.build(&[&(&c + &g.ones([2]))]).unwrap();
    assert!(model.graph.args().is_empty());
}

#[test]
fn linear_layers_follow_pytorch() {
    let g = GraphBuilder::new("mlp");
    let mut rng = Rng::seed(5);
    let fc1 = nn::Linear::new(&g, "fc1", 784, 128, &mut rng);
    let fc2 = nn::LinearConfig::new(128, 10)
        .with_bias(false)
        .init(&g, "fc2", &mut rng);
    assert_eq!(fc1.weight.dims(), &[128, 784]);
    assert_eq!(fc1.bias.as_ref().unwrap().dims(), &[128]);
    assert_eq!(fc1.params().len(), 2);
    assert_eq!(fc2.params().len(), 1);
    let x = g.input("x", DType::F32, [16, 784]);
    let y = fc2.forward(&fc1.forward(&x).relu());
    assert_eq!(y.dims(), &[16, 10]);
    // Works on batched sequences too.
    let s = g.input("s", DType::F32, [4, 5, 784]);
    assert_eq!(fc1.forward(&s).dims(), &[4, 5, 128]);
    let model = g.build(&[("y", &y)]).unwrap();
    let names: Vec<&str> = model.params.names().collect();
    assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight"]);
    let gparams: Vec<&str> = model
        .graph
        .params()
        .iter()
        .map(|&p| model.graph.node(p).name.as_deref().unwrap())
        .collect();
    assert_eq!(gparams, names, "graph parameters in declaration order");
    // PyTorch's default bound 1/sqrt(784) for both weight and bias.
    let bound = 1.0 / 784f32.sqrt();
    for name in ["fc1.weight", "fc1.bias"] {
        let v = model.params.get(name).unwrap().as_f32().unwrap();
        assert!(v.iter().all(|x| x.abs() <= bound), "{name}");
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(max > 0.9 * bound, "{name}: {max} should come near {bound}");
    }
    // Duplicate layer names are reported.
    let _ = nn::Linear::new(&g, "fc1", 2, 2, &mut rng);
    assert!(g.error().unwrap().to_string().contains("fc1.weight"));
}

#[test]
fn sequential_and_activations() {
    let g = GraphBuilder::new("seq");
    let mut rng = Rng::seed(0);
    let mut net = nn::Sequential::new()
        .add(nn::Linear::new(&g, "l1", 4, 8, &mut rng))
        .add(nn::Tanh)
        .add(nn::LeakyRelu(0.1))
        .add(nn::Sigmoid);
    net.push(nn::Linear::new(&g, "l2", 8, 3, &mut rng));
    net.push(nn::Softmax(-1));
    assert_eq!(net.len(), 6);
    let y = net.forward(&g.input("x", DType::F32, [2, 4]));
    assert_eq!(y.dims(), &[2, 3]);
    assert_eq!(net.params().len(), 4);
    let model = g.build(&[&y]).unwrap();
    for m in ["tanh", "leaky_relu", "sigmoid", "reduce_max"] {
        assert_eq!(count(&model.graph, m), 1, "{m}");
    }
    assert!(nn::Sequential::new().is_empty());
}

#[test]
fn losses_are_scalars_and_check_their_operands() {
    let g = GraphBuilder::new("l");
    let logits = g.input("logits", DType::F32, [4, 3]);
    let labels = g.input("labels", DType::I32, [4]);
    let p = g.input("p", DType::F32, [4, 3]);
    for l in [
        loss::mse(&logits, &p),
        loss::cross_entropy(&logits, &labels),
        loss::nll(&logits.log_softmax(-1), &labels),
        loss::binary_cross_entropy(&p, &p),
        loss::binary_cross_entropy_with_logits(&logits, &p),
    ] {
        assert!(!l.is_poisoned());
        assert_eq!(l.rank(), 0);
    }
    assert!(g.check().is_ok());
    let bad = [
        loss::mse(&logits, &labels),
        loss::cross_entropy(&logits, &p),
        loss::cross_entropy(&p.reshape([12]), &labels),
        loss::nll(&logits, &g.input("l5", DType::I32, [5])),
        loss::binary_cross_entropy(&p, &p.t()),
    ];
    for b in &bad {
        assert!(b.is_poisoned());
        assert_eq!(b.rank(), 0, "placeholder is a scalar");
    }
    let ops: Vec<String> = g.errors().into_iter().map(|e| e.op).collect();
    assert_eq!(
        ops,
        [
            "mse",
            "cross_entropy",
            "cross_entropy",
            "nll",
            "binary_cross_entropy"
        ]
    );
}

#[test]
fn model_call_args_are_in_declaration_order() {
    let g = GraphBuilder::new("a");
    let x = g.input("x", DType::F32, [2]);
    let w = g.param("w", HostTensor::from_f32([2], vec![1.0, 2.0]).unwrap());
    let y = g.input("y", DType::F32, [2]);
    let model = g.build(&[&(&(&x * &w) - &y)]).unwrap();
    let xv = HostTensor::from_f32([2], vec![3.0, 4.0]).unwrap();
    let yv = HostTensor::from_f32([2], vec![5.0, 6.0]).unwrap();
    let args = model.call_args(&[("y", &yv), ("x", &xv)]).unwrap();
    assert_eq!(
        args,
        vec![
            xv.clone(),
            model.params.get("w").unwrap().clone(),
            yv.clone()
        ]
    );
    use kiln_frontend::ArgError;
    assert_eq!(
        model.call_args(&[("x", &xv)]),
        Err(ArgError::Missing("y".into()))
    );
    assert_eq!(
        model.call_args(&[("x", &xv), ("y", &yv), ("z", &yv)]),
        Err(ArgError::Unknown("z".into()))
    );
    let wrong = HostTensor::from_f32([3], vec![0.0; 3]).unwrap();
    assert!(matches!(
        model.call_args(&[("x", &wrong), ("y", &yv)]),
        Err(ArgError::Type { .. })
    ));
    let mut params = model.params.clone();
    params.set("w", xv.clone()).unwrap();
    assert_eq!(params.get("w"), Some(&xv));
    assert!(params.set("w", wrong).is_err());
    assert!(params.set("nope", xv).is_err());
    assert_eq!(params.iter().count(), 1);
    assert_eq!((&params).into_iter().next().unwrap().0, "w");
}

#[test]
fn build_keeps_arguments_and_drops_dead_nodes() {
    let g = GraphBuilder::new("dead");
    let x = g.input("x", DType::F32, [2]);
    let unused = g.input("unused", DType::F32, [2]);
    let w = g.param("w", HostTensor::from_f32([2], vec![0.5, 1.5]).unwrap());
    let y = (&x * &w).exp();
    let _dead = (&unused + &x).log().sum_all();
    let model = g.build(&[("y", &y)]).unwrap();
    let gr = &model.graph;
    // x, unused, w, mul, exp: the dead add/log/sum are gone, the arguments stay.
    assert_eq!(gr.node_count(), 5);
    assert_eq!(gr.args().len(), 3);
    assert_eq!(count(gr, "log"), 0);
    assert_eq!(count(gr, "exp"), 1);
    // Canonical numbering: arguments first, then topological order.
    let ids: Vec<usize> = gr.node_ids().map(|n| n.index()).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    assert_eq!(gr.outputs()[0].node.index(), 4);
    gr.validate().unwrap();
}
