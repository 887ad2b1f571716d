//! Builds two models with the Rust DSL, prints their graphs in the text format and
//! evaluates them with the reference interpreter.
//!
//! 1. W1 (docs/WORKLOADS.md): linear regression `y = w*x + b` with MSE loss on
//!    x = [1,3,5], y = [2,4,6], starting from w = b = 0.
//! 2. W2's forward pass: an MLP 784-128-64-10 with ReLU and softmax cross-entropy,
//!    at a small batch of seeded random data.
//!
//! Run with `cargo run --example graphs`.

use std::error::Error;

use kiln_frontend::prelude::*;
use kiln_ir::interp;

fn linear_regression() -> Result<(), Box<dyn Error>> {
    let g = GraphBuilder::new("linear_regression");
    let x = g.input("x", DType::F32, [3]);
    let y = g.input("y", DType::F32, [3]);
    let w = g.param("w", HostTensor::scalar(DType::F32, 0.0));
    let b = g.param("b", HostTensor::scalar(DType::F32, 0.0));
    let pred = &x * &w + &b;
    let loss = loss::mse(&pred, &y);
    let model = g.build(&[("loss", &loss), ("pred", &pred)])?;

    println!("== W1: linear regression ==\n{}", model.graph);
    let xv = HostTensor::from_f32([3], vec![1.0, 3.0, 5.0])?;
    let yv = HostTensor::from_f32([3], vec![2.0, 4.0, 6.0])?;
    let args = model.call_args(&[("x", &xv), ("y", &yv)])?;
    let out = interp::run(&model.graph, &args)?;
    println!("pred at w = b = 0: {}", out[1]);
    let loss = out[0].get_f64(0);
    println!("loss at w = b = 0: {loss:.4} (expected 56/3 = 18.6667)\n");
    Ok(())
}

fn mlp() -> Result<(), Box<dyn Error>> {
    const BATCH: usize = 8;
    let mut rng = Rng::seed(2024);

    let g = GraphBuilder::new("mlp");
    let x = g.input("x", DType::F32, [BATCH, 784]);
    let labels = g.input("labels", DType::I32, [BATCH]);
    let net = nn::Sequential::new()
        .add(nn::Linear::new(&g, "fc1", 784, 128, &mut rng))
        .add(nn::Relu)
        .add(nn::Linear::new(&g, "fc2", 128, 64, &mut rng))
        .add(nn::Relu)
        .add(nn::Linear::new(&g, "fc3", 64, 10, &mut rng));
    let logits = net.forward(&x);
    let loss = loss::cross_entropy(&logits, &labels);
    let predicted = logits.argmax(-1, false);
    let model = g.build(&[
        ("loss", &loss),
        ("logits", &logits),
        ("predicted", &predicted),
    ])?;

    println!("== W2 forward: MLP 784-128-64-10 ==\n{}", model.graph);
    println!(
        "{} parameters in {} tensors",
        model.params.numel(),
        model.params.len()
    );

    // Seeded "pixels" in [0, 1) and labels uniform in 0..10.
    let xv = Init::Uniform { lo: 0.0, hi: 1.0 }.sample([BATCH, 784], &mut rng);
    let yv: Vec<i32> = (0..BATCH).map(|_| rng.below(10) as i32).collect();
    let yt = HostTensor::from_i32([BATCH], yv.clone())?;
    let args = model.call_args(&[("x", &xv), ("labels", &yt)])?;
    let out = interp::run(&model.graph, &args)?;
    println!("labels:    {yv:?}");
    println!("predicted: {:?}", out[2].as_i32().unwrap_or_default());
    println!(
        "cross-entropy at initialization: {:.4} (about ln 10 = {:.4} for an untrained net)",
        out[0].get_f64(0),
        10f64.ln()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    linear_regression()?;
    mlp()
}
