//! W1 (docs/WORKLOADS.md): fit y = w*x + b to x = [1,3,5], y = [2,4,6] with MSE
//! and SGD (lr 0.01, 1000 steps, from w = b = 0). The exact answer is w = b = 1.
//!
//! The whole training step (forward, gradient, SGD update) is one graph, compiled to
//! native code with Cranelift on the first `run`.
//!
//! Run with `cargo run --release --example linear_regression`.

use kiln::workloads;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The graph: inputs x and y (f32[3]), parameters w and b from 0,
    // loss = mse(x * w + b, y), SGD with lr 0.01 (see `kiln::workloads::w1_step`).
    let mut step = workloads::w1_step(0.01)?;
    let (xs, ys) = workloads::w1_data();
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
