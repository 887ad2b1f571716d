//! [`GraphBuilder::scan`]: a loop whose body is a Rust closure, traced once into a
//! body graph (see `kiln_ir::Scan`).

use std::sync::Arc;

use kiln_ir::{Body, Op, Scan, Shape, TensorType, TypeError};

use crate::ctx::Ctx;
use crate::{GraphBuilder, Tensor};

/// What a loop body returns for one step: the new carries (one per initial carry,
/// of the same types) and the step's `ys`.
#[derive(Clone)]
pub struct Step {
    /// The carries for the next step.
    pub carries: Vec<Tensor>,
    /// This step's outputs, stacked by the loop.
    pub ys: Vec<Tensor>,
}

/// The results of [`GraphBuilder::scan`]: the final carries, and each `ys` stacked
/// along a new leading axis (one row per step).
#[derive(Clone)]
pub struct ScanOutput {
    /// The carries after the last step.
    pub carries: Vec<Tensor>,
    /// Each step output, stacked: `[length, ...]`.
    pub ys: Vec<Tensor>,
}

impl GraphBuilder {
    /// A loop over the leading axis of `xs`, as JAX's `lax.scan`: `body` is called
    /// once, with a builder for the body graph and body tensors standing for the
    /// carries, one step's slice of each `xs` and the `consts` (parameters the body
    /// uses, for instance); it returns the new carries and the step's outputs.
    /// The loop compiles once whatever its length: the graph holds one body.
    ///
    /// Mistakes inside the body are reported by [`GraphBuilder::build`] with the
    /// line they were made on. Parameters are declared outside the loop and passed
    /// in `consts`.
    ///
    /// ```
    /// use kiln_frontend::prelude::*;
    /// use kiln_frontend::scan::Step;
    ///
    /// // h_t = tanh(h_{t-1} * w + x_t), every h_t kept.
    /// let g = GraphBuilder::new("rnn");
    /// let xs = g.input("xs", DType::F32, [7, 3]);
    /// let h0 = g.input("h0", DType::F32, [3]);
    /// let w = g.param("w", HostTensor::full(DType::F32, [3], 0.5));
    /// let out = g.scan(&[&h0], &[&xs], &[&w], |_, h, x, c| {
    ///     let h = (&h[0] * &c[0] + &x[0]).tanh();
    ///     Step { carries: vec![h.clone()], ys: vec![h] }
    /// });
    /// assert_eq!(out.ys[0].shape().dims(), &[7, 3]);
    /// let model = g.build(&[("last", &out.carries[0]), ("all", &out.ys[0])]).unwrap();
    /// ```
    #[track_caller]
    pub fn scan(
        &self,
        init: &[&Tensor],
        xs: &[&Tensor],
        consts: &[&Tensor],
        body: impl FnOnce(&GraphBuilder, &[Tensor], &[Tensor], &[Tensor]) -> Step,
    ) -> ScanOutput {
        self.scan_in(false, init, xs, consts, body)
    }

    /// [`GraphBuilder::scan`] from the last step to the first (JAX's
    /// `reverse=True`): step `t` reads row `t` of each `xs` and writes row `t` of
    /// each `ys`, the carries flowing from `t + 1` to `t`. The backward half of a
    /// bidirectional recurrent layer.
    ///
    /// ```
    /// use kiln_frontend::prelude::*;
    /// use kiln_frontend::scan::Step;
    ///
    /// // Suffix sums: ys[t] = xs[t] + xs[t + 1] + ...
    /// let g = GraphBuilder::new("suffix");
    /// let xs = g.input("xs", DType::F32, [4]);
    /// let zero = g.zeros([]);
    /// let out = g.scan_reverse(&[&zero], &[&xs], &[], |_, acc, x, _| {
    ///     let acc = &acc[0] + &x[0];
    ///     Step { carries: vec![acc.clone()], ys: vec![acc] }
    /// });
    /// let model = g.build(&[("sums", &out.ys[0])]).unwrap();
    /// let x = HostTensor::from_f32([4], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    /// let sums = kiln_ir::interp::run(&model.graph, &[x]).unwrap();
    /// assert_eq!(sums[0].as_f32().unwrap(), &[10.0, 9.0, 7.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn scan_reverse(
        &self,
        init: &[&Tensor],
        xs: &[&Tensor],
        consts: &[&Tensor],
        body: impl FnOnce(&GraphBuilder, &[Tensor], &[Tensor], &[Tensor]) -> Step,
    ) -> ScanOutput {
        self.scan_in(true, init, xs, consts, body)
    }

    #[track_caller]
    fn scan_in(
        &self,
        reverse: bool,
        init: &[&Tensor],
        xs: &[&Tensor],
        consts: &[&Tensor],
        body: impl FnOnce(&GraphBuilder, &[Tensor], &[Tensor], &[Tensor]) -> Step,
    ) -> ScanOutput {
        let operands: Vec<&Tensor> = init.iter().chain(xs).chain(consts).copied().collect();
        let fail = |message: String| {
            Ctx::leaf(self, "scan", TensorType::new(kiln_ir::DType::F32, []))
                .fail(TypeError::Attr(message));
            ScanOutput {
                carries: init
                    .iter()
                    .map(|t| Tensor::poisoned(self, t.ty.clone()))
                    .collect(),
                ys: Vec::new(),
            }
        };
        let Some(length) = xs.first().and_then(|x| x.ty.shape.dims().first().copied()) else {
            return fail(
                "needs at least one `xs` with a leading axis (its length is the number of steps)"
                    .into(),
            );
        };

        // Trace the body once, on tensors of the per-step types.
        let b = GraphBuilder::new(format!("{}_step", self.name()));
        let declare = |prefix: &str, ts: &[&Tensor], per_step: bool| -> Vec<Tensor> {
            ts.iter()
                .enumerate()
                .map(|(i, t)| {
                    let dims = t.ty.shape.dims();
                    let dims = if per_step {
                        &dims[dims.len().min(1)..]
                    } else {
                        dims
                    };
                    b.input(
                        &format!("{prefix}{i}"),
                        t.ty.dtype,
                        Shape::new(dims.to_vec()),
                    )
                })
                .collect()
        };
        let carry_in = declare("carry", init, false);
        let x_in = declare("x", xs, true);
        let const_in = declare("const", consts, false);
        let step = body(&b, &carry_in, &x_in, &const_in);
        let names: Vec<String> = (0..step.carries.len())
            .map(|i| format!("carry{i}"))
            .chain((0..step.ys.len()).map(|i| format!("y{i}")))
            .collect();
        let outputs: Vec<(&str, &Tensor)> = names
            .iter()
            .map(String::as_str)
            .zip(step.carries.iter().chain(&step.ys))
            .collect();
        let graph = match b.build(&outputs) {
            Ok(model) if model.params.is_empty() => model.graph,
            Ok(_) => {
                return fail(
                    "declares parameters inside the body: declare them outside and pass them in `consts`"
                        .into(),
                );
            }
            Err(e) => {
                for error in e.into_errors() {
                    self.record(error);
                }
                return ScanOutput {
                    carries: init
                        .iter()
                        .map(|t| Tensor::poisoned(self, t.ty.clone()))
                        .collect(),
                    ys: step
                        .ys
                        .iter()
                        .map(|y| Tensor::poisoned(self, y.ty.stacked(length)))
                        .collect(),
                };
            }
        };

        // One node per result, all naming the same loop.
        let body = Body(Arc::new(graph));
        let results = step.carries.len() + step.ys.len();
        let mut out: Vec<Tensor> = (0..results)
            .map(|result| {
                let op = Op::Scan(Scan {
                    body: body.clone(),
                    carries: init.len(),
                    xs: xs.len(),
                    length,
                    reverse,
                    result,
                });
                match Ctx::new("scan", &operands) {
                    Ok(cx) => cx.emit(|e, ids| e.op(op, ids)),
                    Err(poisoned) => poisoned,
                }
            })
            .collect();
        let ys = out.split_off(step.carries.len());
        ScanOutput { carries: out, ys }
    }
}
