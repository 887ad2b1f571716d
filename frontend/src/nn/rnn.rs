//! Multi-step recurrent layers, PyTorch's `nn.RNN`, `nn.LSTM` and `nn.GRU`: each
//! layer of the stack is one [`GraphBuilder::scan`] over the sequence, its step the
//! cell equations of `nn::cell`. Variable-length batches take a padding mask
//! ([`sequence_mask`] makes one from lengths).

use kiln_ir::{DType, HostTensor, TensorType, TypeError};

use super::Module;
use super::cell::{CellKind, CellParams, Nonlinearity, cell_step, check_dtype, project};
use crate::ctx::{Ctx, enter};
use crate::rng::Rng;
use crate::scan::Step;
use crate::{GraphBuilder, Tensor};

/// What a recurrent layer needs to run: its cell, sizes, layout and parameters.
struct Stack<'a> {
    kind: CellKind,
    input_size: usize,
    hidden_size: usize,
    batch_first: bool,
    layers: &'a [CellParams],
}

impl Stack<'_> {
    /// The parameters' dtype.
    fn dtype(&self) -> DType {
        self.layers
            .first()
            .map_or(DType::F32, |l| l.weight_ih.dtype())
    }

    /// Checks the operands `[x, state..., mask?]` (`states` state tensors).
    fn check(&self, t: &[TensorType], states: usize) -> Result<(), TypeError> {
        let (layers, hidden) = (self.layers.len(), self.hidden_size);
        let dtype = self.dtype();
        let x = &t[0];
        let layout = if self.batch_first {
            "[batch, seq, input_size]"
        } else {
            "[seq, batch, input_size]"
        };
        if x.shape.rank() != 3 || x.shape.dim(2) != self.input_size {
            return Err(TypeError::Shape(format!(
                "the input must be {layout} with input_size {}, got {x}",
                self.input_size
            )));
        }
        if x.dtype != dtype {
            return Err(TypeError::DType {
                index: 0,
                got: x.clone(),
                expected: format!("must have the parameters' dtype {dtype}"),
            });
        }
        let (steps, batch) = self.steps_and_batch(x.shape.dims());
        for (i, s) in t.iter().enumerate().skip(1).take(states) {
            let expected = format!(
                "an initial state must be {dtype}[{layers}, {batch}, {hidden}] \
                 (num_layers, batch, hidden_size)"
            );
            if s.dtype != dtype {
                return Err(TypeError::DType {
                    index: i,
                    got: s.clone(),
                    expected,
                });
            }
            if s.shape.dims() != [layers, batch, hidden] {
                return Err(TypeError::Shape(format!("{expected}, got {s}")));
            }
        }
        if let Some(m) = t.get(1 + states) {
            let dims = if self.batch_first {
                [batch, steps]
            } else {
                [steps, batch]
            };
            if (m.dtype != dtype && m.dtype != DType::Bool) || m.shape.dims() != dims {
                return Err(TypeError::DType {
                    index: 1 + states,
                    got: m.clone(),
                    expected: format!(
                        "the mask must be {dtype} or bool [{}, {}] ({}), 1 at valid steps",
                        dims[0],
                        dims[1],
                        if self.batch_first {
                            "batch, seq"
                        } else {
                            "seq, batch"
                        }
                    ),
                });
            }
        }
        Ok(())
    }

    /// `(seq, batch)` of an input of `dims` in this layer's layout.
    fn steps_and_batch(&self, dims: &[usize]) -> (usize, usize) {
        let first = dims.first().copied().unwrap_or(0);
        let second = dims.get(1).copied().unwrap_or(0);
        if self.batch_first {
            (second, first)
        } else {
            (first, second)
        }
    }

    /// Runs the stack over `x` from `state` (one `[L, B, H]` tensor per state kind,
    /// or none for zeros) with an optional padding `mask`: the output sequence and
    /// the final states (`[L, B, H]` each).
    #[track_caller]
    fn run(&self, x: &Tensor, state: &[&Tensor], mask: Option<&Tensor>) -> (Tensor, Vec<Tensor>) {
        let states = self.kind.states();
        let dtype = self.dtype();
        let (steps, batch) = self.steps_and_batch(x.dims());
        let hidden = self.hidden_size;
        let out_dims = if self.batch_first {
            [batch, steps, hidden]
        } else {
            [steps, batch, hidden]
        };
        let out_ty = TensorType::new(dtype, out_dims);
        let state_ty = TensorType::new(dtype, [self.layers.len(), batch, hidden]);
        let poisoned = |b: &GraphBuilder| {
            (
                Tensor::poisoned(b, out_ty.clone()),
                vec![Tensor::poisoned(b, state_ty.clone()); states],
            )
        };
        let mut operands = vec![x];
        operands.extend_from_slice(state);
        operands.extend(mask);
        let cx = match Ctx::new(self.kind.layer_name(), &operands) {
            Ok(cx) => cx.placeholder(out_ty.clone()),
            Err(p) => return poisoned(&p.b),
        };
        if let Err(p) = cx.check(|t| self.check(t, state.len())) {
            return poisoned(&p.b);
        }
        if self.layers.is_empty() {
            // Declaring the layer failed, and said why.
            return poisoned(&cx.b);
        }
        let g = x.builder();

        // Sequence-first inside; a float mask [T, B].
        let seq_first = |t: &Tensor| {
            if self.batch_first {
                t.transpose(0, 1)
            } else {
                t.clone()
            }
        };
        let mut input = seq_first(x);
        let mask = mask.map(|m| seq_first(&m.cast(dtype)));

        let mut finals: Vec<Vec<Tensor>> = vec![Vec::new(); states];
        for (k, layer) in self.layers.iter().enumerate() {
            let init: Vec<Tensor> = match state.len() {
                0 => vec![g.full(dtype, [batch, hidden], 0.0); states],
                _ => state.iter().map(|s| s.narrow(0, k, 1).squeeze(0)).collect(),
            };
            // The input projection of every step at once: one [T*B, in] product.
            let gi = project(&input, &layer.weight_ih, layer.bias_ih.as_ref());
            let mut xs = vec![&gi];
            xs.extend(mask.as_ref());
            let mut consts = vec![&layer.weight_hh];
            consts.extend(layer.bias_hh.as_ref());
            let kind = self.kind;
            let init_refs: Vec<&Tensor> = init.iter().collect();
            let out = g.scan(&init_refs, &xs, &consts, |_, carry, x, c| {
                let gh = project(&carry[0], &c[0], c.get(1));
                let next = cell_step(kind, &x[0], &gh, carry);
                match x.get(1) {
                    // Padded steps keep the state and output zeros.
                    Some(m) => {
                        let m = m.unsqueeze(1);
                        let keep = 1.0 - &m;
                        let carries: Vec<Tensor> = next
                            .iter()
                            .zip(carry)
                            .map(|(new, old)| &m * new + &keep * old)
                            .collect();
                        Step {
                            ys: vec![&m * &next[0]],
                            carries,
                        }
                    }
                    None => Step {
                        ys: vec![next[0].clone()],
                        carries: next,
                    },
                }
            });
            input = out.ys.into_iter().next().unwrap_or_else(|| cx.poison());
            for (f, c) in finals.iter_mut().zip(out.carries) {
                f.push(c.unsqueeze(0));
            }
        }
        let output = seq_first(&input);
        let finals = finals
            .iter()
            .map(|f| Tensor::cat(&f.iter().collect::<Vec<_>>(), 0))
            .collect();
        (output, finals)
    }
}

/// A `[seq, batch]` mask of `dtype` from i32 `lengths: [batch]`: 1 at the steps
/// `t < lengths[b]`, 0 after (transpose it for a `batch_first` layer).
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("mask");
/// let lengths = g.input("lengths", DType::I32, [3]);
/// let mask = nn::sequence_mask(&lengths, 5, DType::F32);
/// assert_eq!(mask.dims(), &[5, 3]);
/// ```
#[track_caller]
pub fn sequence_mask(lengths: &Tensor, steps: usize, dtype: DType) -> Tensor {
    let batch = lengths.dims().first().copied().unwrap_or(0);
    let cx = enter!("sequence_mask", lengths; TensorType::new(dtype, [steps, batch]));
    if let Err(p) = cx.check(|t| {
        if t[0].dtype != DType::I32 || t[0].shape.rank() != 1 {
            return Err(TypeError::DType {
                index: 0,
                got: t[0].clone(),
                expected: "lengths must be i32[batch]".into(),
            });
        }
        Ok(())
    }) {
        return p;
    }
    let positions =
        HostTensor::from_i32([steps, 1], (0..steps).map(|t| t as i32).collect()).expect("sized");
    let positions = lengths.builder().constant(positions);
    positions.lt(lengths).cast(dtype)
}

macro_rules! recurrent_layer {
    (
        $(#[$doc:meta])*
        $layer:ident, $config:ident, $kind:expr;
        $(#[$cdoc:meta])*
        config { $($cfg:tt)* }
        setters { $($setters:tt)* }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $layer {
            /// One entry per layer of the stack: `weight_ih_l{k}`, `weight_hh_l{k}`,
            /// `bias_ih_l{k}`, `bias_hh_l{k}`.
            pub layers: Vec<CellParams>,
            /// The size of each input vector.
            pub input_size: usize,
            /// The size of the hidden state.
            pub hidden_size: usize,
            /// Whether inputs and outputs are `[batch, seq, ...]` (else
            /// `[seq, batch, ...]`).
            pub batch_first: bool,
            kind: CellKind,
        }

        super::cell::recurrent_config! {
            $(#[$cdoc])*
            $config {
                /// The number of stacked layers (default 1); layer `k > 0` reads the
                /// outputs of layer `k - 1`.
                num_layers: usize = 1;
                /// Whether inputs and outputs are `[batch, seq, ...]` (default false:
                /// `[seq, batch, ...]`).
                batch_first: bool = false;
                $($cfg)*
            }
            setters {
                /// With another number of stacked layers.
                with_num_layers(num_layers: usize) => num_layers;
                /// With batch-first inputs and outputs.
                with_batch_first(batch_first: bool) => batch_first;
                $($setters)*
            }
        }

        impl $config {
            /// Declares the parameters in `g`, PyTorch's names in PyTorch's order:
            /// for each layer `k`, `{name}.weight_ih_l{k}`, `{name}.weight_hh_l{k}`,
            /// `{name}.bias_ih_l{k}`, `{name}.bias_hh_l{k}`.
            #[track_caller]
            pub fn init(&self, g: &GraphBuilder, name: &str, rng: &mut Rng) -> $layer {
                let kind: CellKind = $kind(self);
                let mut layers = Vec::with_capacity(self.num_layers);
                if self.num_layers == 0 {
                    Ctx::leaf(g, kind.layer_name(), TensorType::new(self.dtype, []))
                        .fail(TypeError::Attr("num_layers must be at least 1".into()));
                } else if check_dtype(g, kind.layer_name(), self.dtype).is_ok() {
                    for k in 0..self.num_layers {
                        let input = if k == 0 { self.input_size } else { self.hidden_size };
                        layers.push(CellParams::declare(
                            g,
                            kind,
                            name,
                            &format!("_l{k}"),
                            (input, self.hidden_size),
                            self.bias,
                            self.dtype,
                            rng,
                        ));
                    }
                }
                $layer {
                    layers,
                    input_size: self.input_size,
                    hidden_size: self.hidden_size,
                    batch_first: self.batch_first,
                    kind,
                }
            }
        }

        impl $layer {
            /// A one-layer, sequence-first layer with biases and PyTorch's
            /// initialization; see the configuration for options.
            #[track_caller]
            pub fn new(
                g: &GraphBuilder,
                name: &str,
                input_size: usize,
                hidden_size: usize,
                rng: &mut Rng,
            ) -> $layer {
                $config::new(input_size, hidden_size).init(g, name, rng)
            }

            /// The number of stacked layers.
            pub fn num_layers(&self) -> usize {
                self.layers.len()
            }

            fn stack(&self) -> Stack<'_> {
                Stack {
                    kind: self.kind,
                    input_size: self.input_size,
                    hidden_size: self.hidden_size,
                    batch_first: self.batch_first,
                    layers: &self.layers,
                }
            }
        }

        impl Module for $layer {
            /// The output sequence from a zero initial state, without a mask; see
            /// `forward_seq` for the final state, an initial state and a mask.
            #[track_caller]
            fn forward(&self, x: &Tensor) -> Tensor {
                self.stack().run(x, &[], None).0
            }

            fn params(&self) -> Vec<Tensor> {
                self.layers.iter().flat_map(CellParams::to_vec).collect()
            }
        }
    };
}

recurrent_layer! {
    /// A stack of Elman RNN layers, PyTorch's `nn.RNN`: at each step
    /// `h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)` (the [`super::RnnCell`]
    /// equation), `act` tanh or ReLU. Each layer is one loop over the sequence.
    ///
    /// ```
    /// use kiln_frontend::prelude::*;
    ///
    /// let g = GraphBuilder::new("rnn");
    /// let mut rng = Rng::seed(0);
    /// let rnn = nn::RnnConfig::new(4, 8)
    ///     .with_num_layers(2)
    ///     .with_nonlinearity(nn::Nonlinearity::Relu)
    ///     .init(&g, "rnn", &mut rng);
    /// let x = g.input("x", DType::F32, [6, 3, 4]); // [seq, batch, input]
    /// let h0 = g.input("h0", DType::F32, [2, 3, 8]); // [layers, batch, hidden]
    /// let (out, h_n) = rnn.forward_seq(&x, Some(&h0), None);
    /// assert_eq!(out.dims(), &[6, 3, 8]);
    /// assert_eq!(h_n.dims(), &[2, 3, 8]);
    /// ```
    Rnn, RnnConfig, |c: &RnnConfig| CellKind::Rnn(c.nonlinearity);
    /// The configuration of an [`Rnn`], builder-style.
    config {
        /// tanh (default) or ReLU.
        nonlinearity: Nonlinearity = Nonlinearity::Tanh;
    }
    setters {
        /// With another nonlinearity.
        with_nonlinearity(nonlinearity: Nonlinearity) => nonlinearity;
    }
}

recurrent_layer! {
    /// A stack of LSTM layers, PyTorch's `nn.LSTM`, gates in the order i, f, g, o
    /// (the [`super::LstmCell`] equations). Each layer is one loop over the
    /// sequence; the input projections of all steps are one product before it.
    ///
    /// A part-of-speech tagger over padded sentences: an embedding with a padding
    /// row, a two-layer LSTM that padded steps do not disturb, a linear read-out
    /// per token, and the mean NLL over the real tokens only.
    ///
    /// ```
    /// use kiln_frontend::prelude::*;
    ///
    /// let (seq, batch, vocab, tags) = (12, 4, 1000, 17);
    /// let g = GraphBuilder::new("tagger");
    /// let mut rng = Rng::seed(0);
    /// let tokens = g.input("tokens", DType::I32, [batch, seq]); // 0 = padding
    /// let lengths = g.input("lengths", DType::I32, [batch]);
    /// let labels = g.input("labels", DType::I32, [batch, seq]); // -100 at padding
    ///
    /// let embed = nn::EmbeddingConfig::new(vocab, 32)
    ///     .with_padding_idx(0)
    ///     .init(&g, "embed", &mut rng);
    /// let lstm = nn::LstmConfig::new(32, 64)
    ///     .with_num_layers(2)
    ///     .with_batch_first(true)
    ///     .init(&g, "lstm", &mut rng);
    /// let out = nn::Linear::new(&g, "out", 64, tags, &mut rng);
    ///
    /// let mask = nn::sequence_mask(&lengths, seq, DType::F32).t(); // [batch, seq]
    /// let (hs, (h_n, c_n)) = lstm.forward_seq(&embed.forward(&tokens), None, Some(&mask));
    /// assert_eq!(hs.dims(), &[batch, seq, 64]);
    /// assert_eq!((h_n.dims(), c_n.dims()), (&[2, batch, 64][..], &[2, batch, 64][..]));
    /// let logits = out.forward(&hs.reshape([batch * seq, 64]));
    /// let loss = loss::nll_ignore_index(
    ///     &logits.log_softmax(-1),
    ///     &labels.reshape([batch * seq]),
    ///     loss::IGNORE_INDEX,
    /// );
    /// let model = g.build(&[("loss", &loss)]).unwrap();
    /// assert!(model.params.contains("lstm.weight_hh_l1"));
    /// assert_eq!(model.params.get("lstm.weight_ih_l0").unwrap().shape().dims(), &[256, 32]);
    /// ```
    Lstm, LstmConfig, |_: &LstmConfig| CellKind::Lstm;
    /// The configuration of an [`Lstm`], builder-style.
    config {}
    setters {}
}

recurrent_layer! {
    /// A stack of GRU layers, PyTorch's `nn.GRU`, gates in the order r, z, n, with
    /// PyTorch's equations (the [`super::GruCell`] ones:
    /// `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`, `h' = (1 - z) * n + z * h`).
    /// Each layer is one loop over the sequence.
    ///
    /// ```
    /// use kiln_frontend::prelude::*;
    ///
    /// let g = GraphBuilder::new("gru");
    /// let mut rng = Rng::seed(0);
    /// let gru = nn::Gru::new(&g, "gru", 4, 8, &mut rng);
    /// let x = g.input("x", DType::F32, [6, 3, 4]);
    /// let (out, h_n) = gru.forward_seq(&x, None, None);
    /// assert_eq!((out.dims(), h_n.dims()), (&[6, 3, 8][..], &[1, 3, 8][..]));
    /// assert_eq!(gru.forward(&x).dims(), &[6, 3, 8]);
    /// ```
    Gru, GruConfig, |_: &GruConfig| CellKind::Gru;
    /// The configuration of a [`Gru`], builder-style.
    config {}
    setters {}
}

/// Unpacks the one final state of an RNN or GRU.
fn single(mut states: Vec<Tensor>) -> Tensor {
    states.swap_remove(0)
}

impl Rnn {
    /// Runs the stack over `x: [seq, batch, input_size]` (`[batch, seq, ...]` with
    /// `batch_first`) from `h0: [num_layers, batch, hidden_size]` (zeros if
    /// `None`). With a `mask` (`[seq, batch]`, or `[batch, seq]` with
    /// `batch_first`; float of the input's dtype or bool, 1 at valid steps), a
    /// padded step leaves the state unchanged and outputs zeros, so the final state
    /// is each sequence's state at its last valid step.
    ///
    /// Returns the last layer's outputs (`[seq, batch, hidden_size]`, or
    /// batch-first) and the final hidden state of every layer
    /// (`[num_layers, batch, hidden_size]`), as PyTorch's `output, h_n`.
    #[track_caller]
    pub fn forward_seq(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        mask: Option<&Tensor>,
    ) -> (Tensor, Tensor) {
        let (out, states) = self.stack().run(x, h0.as_slice(), mask);
        (out, single(states))
    }
}

impl Gru {
    /// Runs the stack; the same arguments and results as [`Rnn::forward_seq`].
    #[track_caller]
    pub fn forward_seq(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        mask: Option<&Tensor>,
    ) -> (Tensor, Tensor) {
        let (out, states) = self.stack().run(x, h0.as_slice(), mask);
        (out, single(states))
    }
}

impl Lstm {
    /// Runs the stack over `x: [seq, batch, input_size]` (`[batch, seq, ...]` with
    /// `batch_first`) from `state = (h0, c0)`, each
    /// `[num_layers, batch, hidden_size]` (zeros if `None`), with an optional
    /// padding `mask` as in [`Rnn::forward_seq`] (padded steps keep `h` and `c` and
    /// output zeros).
    ///
    /// Returns the last layer's outputs and the final `(h_n, c_n)` of every layer,
    /// as PyTorch's `output, (h_n, c_n)`.
    #[track_caller]
    pub fn forward_seq(
        &self,
        x: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
        mask: Option<&Tensor>,
    ) -> (Tensor, (Tensor, Tensor)) {
        let state: Vec<&Tensor> = state.map(|(h, c)| vec![h, c]).unwrap_or_default();
        let (out, states) = self.stack().run(x, &state, mask);
        let mut states = states.into_iter();
        match (states.next(), states.next()) {
            (Some(h), Some(c)) => (out, (h, c)),
            _ => unreachable!("an LSTM has two states"),
        }
    }
}
