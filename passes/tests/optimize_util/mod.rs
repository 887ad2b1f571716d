//! Helpers shared by the optimizer tests.
#![allow(dead_code)]

use kiln_frontend::optim::{self, Optimizer};
use kiln_frontend::{GraphBuilder, Model, Tensor};
use kiln_ir::{DType, Graph, HostTensor, TensorType};
use kiln_testutil::Rng;

/// The graph in kiln's text format (what snapshots record).
pub fn listing(g: &Graph) -> String {
    g.to_string()
}

/// The training step of `loss` under `optimizer` as one graph, built the way
/// `kiln::TrainStep` does (forward, gradients, update; loss first, then the new
/// value of every parameter and optimizer state).
pub fn train_step(loss: &Tensor, optimizer: &dyn Optimizer) -> Model {
    let model = loss.builder().build(&[("loss", loss)]).unwrap();
    let loss_node = model.graph.outputs()[0].node;
    let params = model.graph.params();
    let grads = kiln_passes::grad(&model.graph, loss_node, &params).unwrap();
    let step = GraphBuilder::from_parts(grads.graph, model.params).unwrap();
    let t = |id| step.tensor(id).unwrap();
    let pairs: Vec<(Tensor, Tensor)> = params
        .iter()
        .zip(&grads.grads)
        .map(|(&p, &g)| (t(p), t(g)))
        .collect();
    let updates = optim::apply(optimizer, &pairs);
    let l = t(loss_node);
    let mut named: Vec<(&str, &Tensor)> = vec![("loss", &l)];
    named.extend(updates.iter().map(|(n, t)| (n.as_str(), t)));
    step.build(&named).unwrap()
}

/// Random, non-zero arguments for `g`: floats in ±[0.1, 1) (positive for
/// second-moment and step-count state, which are non-negative by construction),
/// i32 values in `[0, int_bound)`.
pub fn random_args(g: &Graph, seed: u64, int_bound: usize) -> Vec<HostTensor> {
    let mut rng = Rng::new(seed);
    g.args()
        .iter()
        .map(|&a| {
            let node = g.node(a);
            let name = node.name.as_deref().unwrap_or_default();
            let positive = name.contains(".v.") || name.ends_with(".step") || name.contains("sum");
            HostTensor::from_fn(&node.ty, |_| match node.ty.dtype {
                DType::I32 => (rng.bits() % int_bound as u64) as f64,
                DType::Bool => (rng.bits() % 2) as f64,
                _ => {
                    let m = rng.uniform(0.1, 1.0);
                    if positive || rng.bits().is_multiple_of(2) {
                        m
                    } else {
                        -m
                    }
                }
            })
        })
        .collect()
}

/// Asserts `got` matches `want` elementwise: `|g - w| <= atol + rtol * |w|`.
#[track_caller]
pub fn assert_close(what: &str, got: &[HostTensor], want: &[HostTensor], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: output count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.ty(), w.ty(), "{what}: output {i} type");
        for j in 0..g.numel() {
            let (a, b) = (g.get_f64(j), w.get_f64(j));
            let ok = (a.is_nan() && b.is_nan()) || (a - b).abs() <= atol + rtol * b.abs();
            assert!(ok, "{what}: output {i}[{j}]: optimized {a}, reference {b}");
        }
    }
}

/// Same name, arguments (names, kinds, types, order) and outputs (names, types).
#[track_caller]
pub fn assert_same_signature(a: &Graph, b: &Graph) {
    assert_eq!(a.name(), b.name());
    let args = |g: &Graph| -> Vec<(String, String, TensorType)> {
        g.args()
            .iter()
            .map(|&x| {
                let n = g.node(x);
                (
                    n.op.mnemonic().to_string(),
                    n.name.clone().unwrap(),
                    n.ty.clone(),
                )
            })
            .collect()
    };
    assert_eq!(args(a), args(b));
    let outs = |g: &Graph| -> Vec<(Option<String>, TensorType)> {
        g.outputs()
            .iter()
            .map(|o| (o.name.clone(), g.node(o.node).ty.clone()))
            .collect()
    };
    assert_eq!(outs(a), outs(b));
}
