//! A graph with a loop compiles to a native loop and agrees with the interpreter;
//! an LSTM written with `scan` trains like the same LSTM unrolled.

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
    let xs_v = uniform(&mut Rng::seed(3), &[9, 2, 3], 1.0);
    let h0_v = HostTensor::from_f32([2, 3], vec![0.5, -0.25, 1.0, -1.0, 0.75, 0.125]).unwrap();
    let args = model.call_args(&[("xs", &xs_v), ("h0", &h0_v)]).unwrap();
    let want = kiln::ir::interp::run(&model.graph, &args).unwrap();
    let mut exe = kiln::compile(&model.graph).unwrap();
    assert_eq!(exe.program().scans().count(), 1);
    let before = kiln::codegen::library::fallback_calls();
    let got = exe.run(&args).unwrap();
    assert_eq!(kiln::codegen::library::fallback_calls(), before);
    assert_eq!(got.len(), 2);
    assert_eq!(want[1].shape().dims(), &[9]);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.ty(), w.ty());
        // The compiled `tanh` is a polynomial within a few ulps of the exact one.
        for (a, b) in g.to_f64_vec().iter().zip(w.to_f64_vec()) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}

/// One LSTM step (gate order i, f, g, o): returns (h', c').
fn lstm_cell(
    x: &Tensor,
    h: &Tensor,
    c: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    b: &Tensor,
) -> (Tensor, Tensor) {
    let hidden = h.shape().dims()[1];
    let gates = x.matmul(&w_ih.t()) + h.matmul(&w_hh.t()) + b;
    let gate = |k: usize| gates.narrow(1, k * hidden, hidden);
    let (i, f, g, o) = (
        gate(0).sigmoid(),
        gate(1).sigmoid(),
        gate(2).tanh(),
        gate(3).sigmoid(),
    );
    let c2 = &f * c + &i * &g;
    let h2 = &o * &c2.tanh();
    (h2, c2)
}

/// A sequence regression: an LSTM over `xs: [T, B, 2]`, a linear read-out of every
/// h, MSE against `target: [T, B, 1]`; the loop with `scan` or unrolled.
fn lstm_step(steps: usize, use_scan: bool) -> TrainStep {
    let (b, i, hsz) = (3, 2, 5);
    let g = GraphBuilder::new("lstm");
    let mut rng = Rng::seed(11);
    let mut init = |shape: &[usize]| uniform(&mut rng, shape, 0.5);
    let xs = g.input("xs", DType::F32, [steps, b, i]);
    let target = g.input("target", DType::F32, [steps, b, 1]);
    let w_ih = g.param("w_ih", init(&[4 * hsz, i]));
    let w_hh = g.param("w_hh", init(&[4 * hsz, hsz]));
    let bias = g.param("bias", init(&[4 * hsz]));
    let w_out = g.param("w_out", init(&[hsz, 1]));
    let h0 = g.zeros([b, hsz]);
    let c0 = g.zeros([b, hsz]);
    let hs = if use_scan {
        g.scan(
            &[&h0, &c0],
            &[&xs],
            &[&w_ih, &w_hh, &bias],
            |_, carry, x, p| {
                let (h, c) = lstm_cell(&x[0], &carry[0], &carry[1], &p[0], &p[1], &p[2]);
                Step {
                    carries: vec![h.clone(), c],
                    ys: vec![h],
                }
            },
        )
        .ys[0]
            .clone()
    } else {
        let (mut h, mut c) = (h0, c0);
        let mut all = Vec::new();
        for t in 0..steps {
            let x = xs.narrow(0, t, 1).squeeze(0);
            (h, c) = lstm_cell(&x, &h, &c, &w_ih, &w_hh, &bias);
            all.push(h.unsqueeze(0));
        }
        let refs: Vec<&Tensor> = all.iter().collect();
        Tensor::cat(&refs, 0)
    };
    let pred = hs.matmul(&w_out);
    let loss = kiln::frontend::loss::mse(&pred, &target);
    TrainStep::new(&loss, &Sgd::new(0.5)).unwrap()
}

#[test]
fn an_lstm_in_a_loop_trains_like_the_unrolled_lstm() {
    let steps = 6;
    let xs = uniform(&mut Rng::seed(5), &[steps, 3, 2], 1.0);
    // The target: a running mean of the first input feature, a task with memory.
    let xv = xs.to_f64_vec();
    let mut tv = Vec::new();
    for t in 0..steps {
        for b in 0..3 {
            let mean: f64 = (0..=t).map(|s| xv[(s * 3 + b) * 2]).sum::<f64>() / (t + 1) as f64;
            tv.push(mean as f32);
        }
    }
    let target = HostTensor::from_f32([steps, 3, 1], tv).unwrap();
    let inputs = [("xs", &xs), ("target", &target)];

    let mut looped = lstm_step(steps, true);
    let mut looped_interp = lstm_step(steps, true);
    let mut unrolled = lstm_step(steps, false);
    let mut losses = Vec::new();
    for _ in 0..40 {
        let a = looped.run(&inputs).unwrap().loss;
        let b = looped_interp.run_interpreted(&inputs).unwrap().loss;
        let c = unrolled.run(&inputs).unwrap().loss;
        // Compiled loop = interpreter (the loop runs through it) and = the unrolled
        // model compiled natively (its f32 approximations differ by ulps).
        assert!(
            (a - b).abs() <= 1e-6 * b.abs(),
            "loop {a} vs interpreter {b}"
        );
        assert!(
            (a - c).abs() <= 1e-5 * c.abs().max(1e-3),
            "loop {a} vs unrolled {c}"
        );
        losses.push(a);
    }
    assert!(
        losses[39] < 0.5 * losses[0],
        "the loss falls: {} -> {}",
        losses[0],
        losses[39]
    );
    // The graph of the loop does not grow with the sequence.
    assert!(looped.graph().node_count() < unrolled.graph().node_count());
}

/// Seeded values uniform in `[-scale, scale)`, never all zero.
fn uniform(rng: &mut Rng, shape: &[usize], scale: f64) -> HostTensor {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|_| rng.uniform_f64(-scale, scale) as f32)
        .collect();
    HostTensor::from_f32(shape, v).unwrap()
}

/// Training a loop runs it twice per step, not more: one forward loop (which also
/// saves the carries the backward loop starts from) and one backward loop, even
/// when the loss reads several of the loop's results.
#[test]
fn a_training_step_runs_one_forward_and_one_backward_loop() {
    let g = GraphBuilder::new("two_results");
    let xs = g.input("xs", DType::F32, [5, 2, 3]);
    let w = g.param("w", uniform(&mut Rng::seed(1), &[3, 3], 0.5));
    let h0 = g.zeros([2, 3]);
    let out = g.scan(&[&h0], &[&xs], &[&w], |_, h, x, c| {
        let h = (h[0].matmul(&c[0]) + &x[0]).tanh();
        Step {
            carries: vec![h.clone()],
            ys: vec![h],
        }
    });
    let loss = out.carries[0].sum_all() + out.ys[0].square().mean_all();
    let mut step = TrainStep::new(&loss, &Sgd::new(0.1)).unwrap();
    let exe = step.compile().unwrap();
    assert_eq!(exe.program().scans().count(), 2, "{}", exe.program());
}
