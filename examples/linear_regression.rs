//! W1 (shared/WORKLOADS.md): fit y = w*x + b to x = [1,3,5], y = [2,4,6] with MSE
//! and SGD (lr 0.01, 1000 steps, from w = b = 0). The exact answer is w = b = 1.
//!
//! The whole training step (forward, gradient, SGD update) is one graph, compiled to
//! native code with Cranelift on the first `run`.
//!
//! Run with `cargo run --release --example linear_regression`.

use kiln::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let g = GraphBuilder::new("linear_regression");
    let x = g.input("x", DType::F32, [3]);
    let y = g.input("y", DType::F32, [3]);
    let w = g.param("w", HostTensor::scalar(DType::F32, 0.0));
    let b = g.param("b", HostTensor::scalar(DType::F32, 0.0));
    let loss = loss::mse(&(&x * &w + &b), &y);
    let mut step = TrainStep::new(&loss, &Sgd::new(0.01))?;

    let xs = HostTensor::from_f32([3], vec![1.0, 3.0, 5.0])?;
    let ys = HostTensor::from_f32([3], vec![2.0, 4.0, 6.0])?;
    for i in 0..1000 {
        let out = step.run(&[("x", &xs), ("y", &ys)])?;
        if i % 100 == 0 || i == 999 {
            println!("step {i:4}  loss {:.6}", out.loss);
        }
    }
    let w = step.params().get("w").expect("declared above").get_f64(0);
    let b = step.params().get("b").expect("declared above").get_f64(0);
    println!("w = {w:.6}, b = {b:.6}");
    Ok(())
}
