//! A graph with a loop compiles and runs (for now through the native library's
//! interpreter fallback) and agrees with the interpreter.

use kiln::frontend::scan::Step;
use kiln::prelude::*;

#[test]
fn a_compiled_loop_agrees_with_the_interpreter() {
    let g = GraphBuilder::new("rnn");
    let xs = g.input("xs", DType::F32, [9, 2, 3]);
    let h0 = g.input("h0", DType::F32, [2, 3]);
    let w = g.param(
        "w",
        HostTensor::from_f32([3, 3], (0..9).map(|i| 0.1 * i as f32 - 0.4).collect()).unwrap(),
    );
    let out = g.scan(&[&h0], &[&xs], &[&w], |_, h, x, c| {
        let h = (h[0].matmul(&c[0]) + &x[0]).tanh();
        Step {
            carries: vec![h.clone()],
            ys: vec![h.sum_all()],
        }
    });
    let model = g
        .build(&[("h", &out.carries[0]), ("sums", &out.ys[0])])
        .unwrap();
    let mut rng = Rng::seed(3);
    let xs_v = HostTensor::from_f32(
        [9, 2, 3],
        (0..54).map(|_| rng.uniform_f64(-1.0, 1.0) as f32).collect(),
    )
    .unwrap();
    let h0_v = HostTensor::from_f32([2, 3], vec![0.5, -0.25, 1.0, -1.0, 0.75, 0.125]).unwrap();
    let args = model.call_args(&[("xs", &xs_v), ("h0", &h0_v)]).unwrap();
    let want = kiln::ir::interp::run(&model.graph, &args).unwrap();
    let mut exe = kiln::compile(&model.graph).unwrap();
    let got = exe.run(&args).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(want[1].shape().dims(), &[9]);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.ty(), w.ty());
        assert_eq!(g.to_f64_vec(), w.to_f64_vec());
    }
}
