//! Layers that grow images (issue 16): `nn::ConvTranspose2d` against the
//! definition written as a direct scatter loop in f64 (stride, padding, output
//! padding, bias), compiled and interpreted; nearest `nn::Upsample` and
//! `nn::Unflatten` against index arithmetic. (The op's gradient is checked against
//! finite differences in passes/tests/gradcheck.rs.)

use kiln::prelude::*;

fn seeded(rng: &mut Rng, dims: &[usize]) -> HostTensor {
    let n = dims.iter().product();
    HostTensor::from_f32(
        dims.to_vec(),
        (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect(),
    )
    .unwrap()
}

/// Compiles and interprets `model` on `args`, returning both first outputs.
fn both(model: &kiln::frontend::Model, args: &[HostTensor]) -> (Vec<f64>, Vec<f64>) {
    let compiled = kiln::compile(&model.graph).unwrap().run(args).unwrap();
    let interpreted = kiln::ir::interp::run(&model.graph, args).unwrap();
    (compiled[0].to_f64_vec(), interpreted[0].to_f64_vec())
}

#[test]
fn conv_transpose2d_is_the_scatter_definition() {
    let (n, c, o, h, w, k, s, p, op) = (2, 3, 4, 3, 5, 3, 2, 1, 1);
    let g = GraphBuilder::new("up");
    let x = g.input("x", DType::F32, [n, c, h, w]);
    let layer = nn::ConvTranspose2dConfig::new(c, o, k)
        .with_stride(s)
        .with_padding(p)
        .with_output_padding(op)
        .init(&g, "up", &mut Rng::seed(1));
    let y = layer.forward(&x);
    let (oh, ow) = (
        (h - 1) * s - 2 * p + (k - 1) + op + 1,
        (w - 1) * s - 2 * p + (k - 1) + op + 1,
    );
    assert_eq!(y.dims(), &[n, o, oh, ow]);
    let model = g.build(&[("y", &y)]).unwrap();
    assert_eq!(
        model.params.names().collect::<Vec<_>>(),
        ["up.weight", "up.bias"]
    );
    assert_eq!(
        model.params.get("up.weight").unwrap().shape().dims(),
        &[c, o, k, k]
    );
    let xv = seeded(&mut Rng::seed(2), &[n, c, h, w]);
    let wv = model.params.get("up.weight").unwrap().to_f64_vec();
    let bv = model.params.get("up.bias").unwrap().to_f64_vec();
    let bound = 1.0 / ((o * k * k) as f64).sqrt();
    assert!(wv.iter().chain(&bv).all(|v| v.abs() <= bound));
    // y[b, oc, i s - p + di, j s - p + dj] += x[b, ic, i, j] w[ic, oc, di, dj], + bias.
    let xf = xv.to_f64_vec();
    let mut want = vec![0.0; n * o * oh * ow];
    for b in 0..n {
        for oc in 0..o {
            for v in &mut want[(b * o + oc) * oh * ow..(b * o + oc + 1) * oh * ow] {
                *v = bv[oc];
            }
            for ic in 0..c {
                for i in 0..h {
                    for j in 0..w {
                        for di in 0..k {
                            for dj in 0..k {
                                let (yi, yj) = (
                                    (i * s + di) as isize - p as isize,
                                    (j * s + dj) as isize - p as isize,
                                );
                                if yi < 0 || yj < 0 || yi as usize >= oh || yj as usize >= ow {
                                    continue;
                                }
                                want[((b * o + oc) * oh + yi as usize) * ow + yj as usize] += xf
                                    [((b * c + ic) * h + i) * w + j]
                                    * wv[((ic * o + oc) * k + di) * k + dj];
                            }
                        }
                    }
                }
            }
        }
    }
    let args = model.call_args(&[("x", &xv)]).unwrap();
    let (compiled, interpreted) = both(&model, &args);
    for (i, &w) in want.iter().enumerate() {
        assert!(
            (compiled[i] - w).abs() < 1e-5,
            "compiled y[{i}] = {} want {w}",
            compiled[i]
        );
        assert!(
            (interpreted[i] - w).abs() < 1e-5,
            "interpreted y[{i}] = {} want {w}",
            interpreted[i]
        );
    }
}

#[test]
fn upsample_repeats_pixels_and_unflatten_splits_an_axis() {
    let g = GraphBuilder::new("up");
    let x = g.input("x", DType::F32, [2, 3, 2, 3]);
    let y = nn::Upsample::new([2, 3]).forward(&x);
    let flat = g.input("flat", DType::F32, [2, 12]);
    let z = nn::Unflatten::new(1, &[3, 2, 2]).forward(&flat);
    assert_eq!(y.dims(), &[2, 3, 4, 9]);
    assert_eq!(z.dims(), &[2, 3, 2, 2]);
    let model = g.build(&[("y", &y), ("z", &z)]).unwrap();
    let xv = seeded(&mut Rng::seed(3), &[2, 3, 2, 3]);
    let fv = seeded(&mut Rng::seed(4), &[2, 12]);
    let args = model.call_args(&[("x", &xv), ("flat", &fv)]).unwrap();
    let out = kiln::compile(&model.graph).unwrap().run(&args).unwrap();
    let (yv, xs) = (out[0].as_f32().unwrap(), xv.as_f32().unwrap());
    for nc in 0..6 {
        for i in 0..4 {
            for j in 0..9 {
                assert_eq!(yv[(nc * 4 + i) * 9 + j], xs[(nc * 2 + i / 2) * 3 + j / 3]);
            }
        }
    }
    assert_eq!(out[1].as_f32().unwrap(), fv.as_f32().unwrap());
}
