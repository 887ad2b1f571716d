//! Autodiff on whole models: snapshots of the gradient graphs (reviewed by hand;
//! `cargo insta review` after a deliberate change) and analytic checks.

use kiln::ir::{Graph, HostTensor, NodeId, interp};
use kiln::passes::{eliminate_dead_code, grad};
use kiln::prelude::*;

/// The graph computing the loss and its gradient with respect to every parameter,
/// without dead nodes, in the text format.
fn gradient_graph(g: &GraphBuilder, loss: &Tensor) -> Graph {
    let model = g.build(&[("loss", loss)]).unwrap();
    let loss_node = model.graph.outputs()[0].node;
    let params = model.graph.params();
    let grads = grad(&model.graph, loss_node, &params).unwrap();
    let mut graph = grads.graph;
    for (&p, &d) in params.iter().zip(&grads.grads) {
        let name = format!("d.{}", graph.node(p).name.clone().unwrap());
        graph.output(d, Some(&name));
    }
    let graph = eliminate_dead_code(&graph).unwrap();
    graph.validate().unwrap();
    graph
}

#[test]
fn linear_regression_gradient_graph() {
    let g = GraphBuilder::new("linear_regression");
    let x = g.input("x", DType::F32, [3]);
    let y = g.input("y", DType::F32, [3]);
    let w = g.param("w", HostTensor::scalar(DType::F32, 0.5));
    let b = g.param("b", HostTensor::scalar(DType::F32, -0.5));
    let loss = loss::mse(&(&x * &w + &b), &y);
    insta::assert_snapshot!(gradient_graph(&g, &loss).to_string());
}

fn mlp() -> (GraphBuilder, Tensor) {
    let mut rng = Rng::seed(1);
    let g = GraphBuilder::new("mlp");
    let x = g.input("x", DType::F32, [4, 6]);
    let labels = g.input("labels", DType::I32, [4]);
    let fc1 = nn::Linear::new(&g, "fc1", 6, 5, &mut rng);
    let fc2 = nn::Linear::new(&g, "fc2", 5, 3, &mut rng);
    let logits = fc2.forward(&fc1.forward(&x).relu());
    (g.clone(), loss::cross_entropy(&logits, &labels))
}

#[test]
fn mlp_softmax_cross_entropy_gradient_graph() {
    let (g, loss) = mlp();
    insta::assert_snapshot!(gradient_graph(&g, &loss).to_string());
}

#[test]
fn conv_pool_linear_gradient_graph() {
    let mut rng = Rng::seed(2);
    let g = GraphBuilder::new("convnet");
    let x = g.input("x", DType::F32, [2, 1, 6, 6]);
    let labels = g.input("labels", DType::I32, [2]);
    let w = g.param_init(
        "conv.weight",
        [2, 1, 3, 3],
        Init::kaiming_uniform_relu(),
        &mut rng,
    );
    let h = x.conv2d(&w, 1, 0, 1).relu().max_pool2d(2, 2, 0).flatten(1);
    let fc = nn::Linear::new(&g, "fc", 8, 3, &mut rng);
    let loss = loss::cross_entropy(&fc.forward(&h), &labels);
    insta::assert_snapshot!(gradient_graph(&g, &loss).to_string());
}

/// d cross_entropy / d logits = (softmax(logits) - one_hot(labels)) / N, computed
/// here in f64 from the definition.
#[test]
fn cross_entropy_gradient_is_softmax_minus_one_hot() {
    let (n, c) = (5, 7);
    let g = GraphBuilder::new("ce");
    let logits = g.param(
        "logits",
        HostTensor::from_f32(
            [n, c],
            (0..n * c)
                .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.7)
                .collect(),
        )
        .unwrap(),
    );
    let labels = g.input("labels", DType::I32, [n]);
    let loss = loss::cross_entropy(&logits, &labels);
    let graph = gradient_graph(&g, &loss);
    let label_values = vec![3, 0, 6, 6, 1];
    let model_logits = g
        .build(&[&loss])
        .unwrap()
        .params
        .get("logits")
        .unwrap()
        .to_f64_vec();
    let out = interp::run_named(
        &graph,
        &[
            (
                "labels",
                HostTensor::from_i32([n], label_values.clone()).unwrap(),
            ),
            (
                "logits",
                HostTensor::from_f64([n, c], model_logits.clone())
                    .unwrap()
                    .cast(DType::F32),
            ),
        ],
    )
    .unwrap();
    let got = out[1].to_f64_vec();
    for r in 0..n {
        let row = &model_logits[r * c..(r + 1) * c];
        let m = row.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
        for k in 0..c {
            let p = (row[k] - m).exp() / z;
            let want = (p - if k == label_values[r] as usize {
                1.0
            } else {
                0.0
            }) / n as f64;
            let have = got[r * c + k];
            assert!((have - want).abs() < 1e-6, "[{r},{k}]: {have} vs {want}");
        }
    }
}

/// The softmax shift is a `stop_gradient`, so the backward pass of cross-entropy
/// contains no max-routing (no `eq` comparisons or tie counting).
#[test]
fn softmax_shift_builds_no_backward_work() {
    let (g, loss) = mlp();
    let graph = gradient_graph(&g, &loss);
    let ops: Vec<&str> = graph
        .node_ids()
        .map(|n: NodeId| graph.node(n).op.mnemonic())
        .collect();
    assert!(!ops.contains(&"eq"), "{graph}");
    assert_eq!(
        ops.iter().filter(|&&o| o == "reduce_max").count(),
        1,
        "{graph}"
    );
}
