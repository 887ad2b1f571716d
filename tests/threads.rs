//! The thread count changes speed, not results: GEMMs split their rows across
//! threads, and every output element is still summed by one thread in one order.

use kiln::prelude::*;

fn w2(batch: usize) -> (TrainStep, HostTensor, HostTensor) {
    let mut rng = Rng::seed(9);
    let g = GraphBuilder::new("w2");
    let x = g.input("x", DType::F32, [batch, 784]);
    let labels = g.input("labels", DType::I32, [batch]);
    let fc1 = nn::Linear::new(&g, "fc1", 784, 128, &mut rng);
    let fc2 = nn::Linear::new(&g, "fc2", 128, 64, &mut rng);
    let fc3 = nn::Linear::new(&g, "fc3", 64, 10, &mut rng);
    let logits = fc3.forward(&fc2.forward(&fc1.forward(&x).relu()).relu());
    let loss = loss::cross_entropy(&logits, &labels);
    let step = TrainStep::new(&loss, &Adam::new(1e-3)).unwrap();
    let xs = HostTensor::from_f32(
        [batch, 784],
        (0..batch * 784).map(|_| rng.uniform(0.0, 1.0)).collect(),
    )
    .unwrap();
    let ys =
        HostTensor::from_i32([batch], (0..batch).map(|_| rng.below(10) as i32).collect()).unwrap();
    (step, xs, ys)
}

#[test]
fn one_and_two_threads_give_identical_steps() {
    let (mut one, xs, ys) = w2(256);
    let mut two = one.clone();
    one.compile_with(&CompileOptions {
        threads: 1,
        ..CompileOptions::default()
    })
    .unwrap();
    two.compile_with(&CompileOptions {
        threads: 2,
        ..CompileOptions::default()
    })
    .unwrap();
    for _ in 0..3 {
        let a = one.run(&[("x", &xs), ("labels", &ys)]).unwrap().loss;
        let b = two.run(&[("x", &xs), ("labels", &ys)]).unwrap().loss;
        assert_eq!(a.to_bits(), b.to_bits(), "loss {a} vs {b}");
    }
    for (name, value) in one.params().iter() {
        assert_eq!(value, two.params().get(name).unwrap(), "{name}");
    }
}
