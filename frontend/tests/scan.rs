//! `GraphBuilder::scan`: an RNN cell in a loop computes what the same cell
//! unrolled by hand computes, bit for bit (through the interpreter); mistakes in
//! the body are reported with their line.

use kiln_frontend::prelude::*;
use kiln_frontend::scan::Step;
use kiln_ir::interp;

/// One step of an Elman RNN with a running sum: returns (h', sum + h').
fn rnn_cell(
    x: &Tensor,
    h: &Tensor,
    sum: &Tensor,
    w: &Tensor,
    u: &Tensor,
    b: &Tensor,
) -> (Tensor, Tensor) {
    let h2 = (x.matmul(&w.t()) + h.matmul(&u.t()) + b).tanh();
    let sum2 = sum + &h2;
    (h2, sum2)
}

fn seeded(shape: &[usize], seed: u64) -> HostTensor {
    let mut rng = Rng::seed(seed);
    let n: usize = shape.iter().product();
    HostTensor::from_f32(
        shape,
        (0..n).map(|_| rng.uniform_f64(-1.0, 1.0) as f32).collect(),
    )
    .unwrap()
}

/// An RNN over `xs: [T, B, I]` carrying h and the running sum of h, returning
/// every h and the final sum; with `scan` or unrolled.
fn rnn(steps: usize, use_scan: bool) -> Vec<HostTensor> {
    let (b, i, hsz) = (2, 3, 4);
    let g = GraphBuilder::new("rnn");
    let xs = g.input("xs", DType::F32, [steps, b, i]);
    let h0 = g.input("h0", DType::F32, [b, hsz]);
    let c0 = g.input("c0", DType::F32, [b, hsz]);
    let w_ih = g.param("w_ih", seeded(&[hsz, i], 1));
    let w_hh = g.param("w_hh", seeded(&[hsz, hsz], 2));
    let bias = g.param("bias", seeded(&[hsz], 3));
    let (hs, c_last) = if use_scan {
        let out = g.scan(
            &[&h0, &c0],
            &[&xs],
            &[&w_ih, &w_hh, &bias],
            |_, carry, x, p| {
                let (h, c) = rnn_cell(&x[0], &carry[0], &carry[1], &p[0], &p[1], &p[2]);
                Step {
                    carries: vec![h.clone(), c],
                    ys: vec![h],
                }
            },
        );
        (out.ys[0].clone(), out.carries[1].clone())
    } else {
        let (mut h, mut c) = (h0.clone(), c0.clone());
        let mut all = Vec::new();
        for t in 0..steps {
            let x = xs.narrow(0, t, 1).squeeze(0);
            (h, c) = rnn_cell(&x, &h, &c, &w_ih, &w_hh, &bias);
            all.push(h.unsqueeze(0));
        }
        let refs: Vec<&Tensor> = all.iter().collect();
        (Tensor::cat(&refs, 0), c)
    };
    let model = g.build(&[("hs", &hs), ("c", &c_last)]).unwrap();
    let xs_v = seeded(&[steps, b, i], 4);
    let h0_v = seeded(&[b, hsz], 5);
    let c0_v = seeded(&[b, hsz], 6);
    let args = model
        .call_args(&[("xs", &xs_v), ("h0", &h0_v), ("c0", &c0_v)])
        .unwrap();
    interp::run(&model.graph, &args).unwrap()
}

#[test]
fn an_rnn_in_a_loop_equals_the_unrolled_rnn() {
    for steps in [1, 6] {
        let looped = rnn(steps, true);
        let unrolled = rnn(steps, false);
        assert_eq!(looped.len(), 2);
        for (a, b) in looped.iter().zip(&unrolled) {
            assert_eq!(a.ty(), b.ty());
            let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
            assert!(a.iter().any(|&v| v != 0.0), "never all zero");
            assert_eq!(a, b, "{steps} steps");
        }
    }
}

#[test]
fn the_graph_holds_one_body_whatever_the_length() {
    let nodes = |steps: usize| {
        let g = GraphBuilder::new("rnn");
        let xs = g.input("xs", DType::F32, [steps, 3]);
        let h0 = g.input("h0", DType::F32, [3]);
        let out = g.scan(&[&h0], &[&xs], &[], |_, h, x, _| Step {
            carries: vec![(&h[0] + &x[0]).tanh()],
            ys: vec![],
        });
        g.build(&[&out.carries[0]]).unwrap().graph.node_count()
    };
    assert_eq!(nodes(4), nodes(512));
}

#[test]
fn mistakes_in_the_body_name_their_line() {
    let g = GraphBuilder::new("bad");
    let xs = g.input("xs", DType::F32, [5, 3]);
    let h0 = g.input("h0", DType::F32, [4]);
    let out = g.scan(&[&h0], &[&xs], &[], |_, h, x, _| Step {
        carries: vec![&h[0] + &x[0]], // [4] + [3]: no broadcast
        ys: vec![],
    });
    let e = g.build(&[&out.carries[0]]).unwrap_err().to_string();
    assert!(e.contains("frontend/tests/scan.rs:"), "{e}");
    assert!(e.contains("add"), "{e}");

    // A carry whose type changes from one step to the next.
    let g = GraphBuilder::new("widening");
    let xs = g.input("xs", DType::F32, [5, 3]);
    let h0 = g.input("h0", DType::F32, [3]);
    let out = g.scan(&[&h0], &[&xs], &[], |_, h, x, _| Step {
        carries: vec![(&h[0] + &x[0]).cast(DType::F64)],
        ys: vec![],
    });
    let e = g.build(&[&out.carries[0]]).unwrap_err().to_string();
    assert!(
        e.contains("returns f64[3] for carry 0, which it takes as f32[3]"),
        "{e}"
    );

    // Parameters belong outside the loop.
    let g = GraphBuilder::new("param_inside");
    let xs = g.input("xs", DType::F32, [5, 3]);
    let h0 = g.input("h0", DType::F32, [3]);
    let out = g.scan(&[&h0], &[&xs], &[], |b, h, x, _| {
        let w = b.param("w", HostTensor::full(DType::F32, [3], 0.5));
        Step {
            carries: vec![&h[0] * &w + &x[0]],
            ys: vec![],
        }
    });
    let e = g.build(&[&out.carries[0]]).unwrap_err().to_string();
    assert!(e.contains("pass them in `consts`"), "{e}");

    // No xs: no length.
    let g = GraphBuilder::new("no_xs");
    let h0 = g.input("h0", DType::F32, [3]);
    let out = g.scan(&[&h0], &[], &[], |_, h, _, _| Step {
        carries: vec![h[0].clone()],
        ys: vec![],
    });
    let e = g.build(&[&out.carries[0]]).unwrap_err().to_string();
    assert!(e.contains("needs at least one `xs`"), "{e}");
}
