//! Recurrent cells: the equations of one step of an Elman RNN, an LSTM and a GRU
//! (written once, in [`cell_step`], and shared by the cells and the multi-step
//! layers of `nn::rnn`), their parameters in PyTorch's layout ([`CellParams`]), and
//! the one-step modules [`RnnCell`], [`LstmCell`] and [`GruCell`].

use kiln_ir::{DType, TensorType, TypeError};

use crate::ctx::Ctx;
use crate::init::Init;
use crate::rng::Rng;
use crate::{GraphBuilder, Tensor};

/// The nonlinearity of an Elman RNN ([`super::Rnn`], [`RnnCell`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Nonlinearity {
    /// `tanh` (PyTorch's default).
    #[default]
    Tanh,
    /// `max(x, 0)`.
    Relu,
}

/// Which recurrent cell a layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CellKind {
    Rnn(Nonlinearity),
    Lstm,
    Gru,
}

impl CellKind {
    /// The number of gate blocks stacked in the weights (`gates * hidden` rows).
    pub(crate) fn gates(self) -> usize {
        match self {
            CellKind::Rnn(_) => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }

    /// The number of state tensors: `h`, and `c` for an LSTM.
    pub(crate) fn states(self) -> usize {
        match self {
            CellKind::Lstm => 2,
            CellKind::Rnn(_) | CellKind::Gru => 1,
        }
    }

    /// The layer's name in errors.
    pub(crate) fn layer_name(self) -> &'static str {
        match self {
            CellKind::Rnn(_) => "rnn",
            CellKind::Lstm => "lstm",
            CellKind::Gru => "gru",
        }
    }

    /// The cell's name in errors.
    pub(crate) fn cell_name(self) -> &'static str {
        match self {
            CellKind::Rnn(_) => "rnn_cell",
            CellKind::Lstm => "lstm_cell",
            CellKind::Gru => "gru_cell",
        }
    }
}

/// The parameters of one recurrent cell, or of one layer of a multi-layer RNN, in
/// PyTorch's layout: with `G` gate blocks (1 for an RNN; 4 for an LSTM, in the
/// order i, f, g, o; 3 for a GRU, in the order r, z, n) and hidden size `H`.
#[derive(Clone, Debug)]
pub struct CellParams {
    /// `[G*H, input_size]`: `weight_ih` (`weight_ih_l{k}` in a layer).
    pub weight_ih: Tensor,
    /// `[G*H, H]`: `weight_hh` (`weight_hh_l{k}`).
    pub weight_hh: Tensor,
    /// `[G*H]`: `bias_ih` (`bias_ih_l{k}`), if the cell has biases.
    pub bias_ih: Option<Tensor>,
    /// `[G*H]`: `bias_hh` (`bias_hh_l{k}`), if the cell has biases.
    pub bias_hh: Option<Tensor>,
}

impl CellParams {
    /// Declares `{name}.weight_ih{suffix}`, `{name}.weight_hh{suffix}` and, with
    /// `bias`, `{name}.bias_ih{suffix}` and `{name}.bias_hh{suffix}`, in that order
    /// (PyTorch's), each drawn from `U(-1/sqrt(H), 1/sqrt(H))` and stored as `dtype`.
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    pub(crate) fn declare(
        g: &GraphBuilder,
        kind: CellKind,
        name: &str,
        suffix: &str,
        (input_size, hidden_size): (usize, usize),
        bias: bool,
        dtype: DType,
        rng: &mut Rng,
    ) -> CellParams {
        let rows = kind.gates() * hidden_size;
        let k = 1.0 / (hidden_size.max(1) as f32).sqrt();
        let init = Init::Uniform { lo: -k, hi: k };
        let mut shapes = vec![
            ("weight_ih", vec![rows, input_size]),
            ("weight_hh", vec![rows, hidden_size]),
        ];
        if bias {
            shapes.extend([("bias_ih", vec![rows]), ("bias_hh", vec![rows])]);
        }
        let mut declared = Vec::with_capacity(4);
        for (what, dims) in shapes {
            let value = init.sample(dims, rng).cast(dtype);
            declared.push(g.param(&format!("{name}.{what}{suffix}"), value));
        }
        let mut declared = declared.into_iter();
        let mut next = || declared.next();
        let (weight_ih, weight_hh) = (next(), next());
        CellParams {
            weight_ih: weight_ih.expect("declared"),
            weight_hh: weight_hh.expect("declared"),
            bias_ih: next(),
            bias_hh: next(),
        }
    }

    /// The tensors, in declaration order.
    pub fn to_vec(&self) -> Vec<Tensor> {
        let mut p = vec![self.weight_ih.clone(), self.weight_hh.clone()];
        p.extend(self.bias_ih.clone());
        p.extend(self.bias_hh.clone());
        p
    }
}

/// `x W^T + b` for `x: [..., in]`, `W: [out, in]`.
#[track_caller]
pub(crate) fn project(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
    let y = x.matmul(&weight.t());
    match bias {
        Some(b) => y + b,
        None => y,
    }
}

/// One step of a cell: the new state (`[h]`, or `[h, c]` for an LSTM) from the
/// input projection `gi = x W_ih^T + b_ih` and the hidden projection
/// `gh = h W_hh^T + b_hh` (both `[B, G*H]`) and the state. PyTorch's equations:
///
/// - RNN: `h' = act(gi + gh)`;
/// - LSTM: `i, f, g, o = σ, σ, tanh, σ of the blocks of gi + gh`;
///   `c' = f * c + i * g`, `h' = o * tanh(c')`;
/// - GRU: `r = σ(gi_r + gh_r)`, `z = σ(gi_z + gh_z)`, `n = tanh(gi_n + r * gh_n)`,
///   `h' = (1 - z) * n + z * h`.
#[track_caller]
pub(crate) fn cell_step(kind: CellKind, gi: &Tensor, gh: &Tensor, state: &[Tensor]) -> Vec<Tensor> {
    let hidden = state[0].dims().last().copied().unwrap_or(0);
    let block = |t: &Tensor, k: usize| t.narrow(-1, k * hidden, hidden);
    match kind {
        CellKind::Rnn(act) => {
            let pre = gi + gh;
            vec![match act {
                Nonlinearity::Tanh => pre.tanh(),
                Nonlinearity::Relu => pre.relu(),
            }]
        }
        CellKind::Lstm => {
            let gates = gi + gh;
            let i = block(&gates, 0).sigmoid();
            let f = block(&gates, 1).sigmoid();
            let g = block(&gates, 2).tanh();
            let o = block(&gates, 3).sigmoid();
            let c = f * &state[1] + i * g;
            let h = o * c.tanh();
            vec![h, c]
        }
        CellKind::Gru => {
            let r = (block(gi, 0) + block(gh, 0)).sigmoid();
            let z = (block(gi, 1) + block(gh, 1)).sigmoid();
            let n = (block(gi, 2) + r * block(gh, 2)).tanh();
            let h = (1.0 - &z) * n + z * &state[0];
            vec![h]
        }
    }
}

/// Checks one cell step's operands: `x: [B, input_size]` and each state `[B, H]`,
/// all of the parameters' float dtype.
fn check_cell_operands(
    t: &[TensorType],
    (input_size, hidden_size): (usize, usize),
    dtype: DType,
) -> Result<(), TypeError> {
    let x = &t[0];
    if x.shape.rank() != 2 || x.shape.dim(1) != input_size {
        return Err(TypeError::Shape(format!(
            "the input must be [batch, {input_size}], got {x}"
        )));
    }
    for (i, s) in t.iter().enumerate() {
        if s.dtype != dtype {
            return Err(TypeError::DType {
                index: i,
                got: s.clone(),
                expected: format!("must have the parameters' dtype {dtype}"),
            });
        }
    }
    let batch = x.shape.dim(0);
    for (i, s) in t.iter().enumerate().skip(1) {
        if s.shape.dims() != [batch, hidden_size] {
            return Err(TypeError::Shape(format!(
                "state {} must be [{batch}, {hidden_size}] (batch, hidden_size), got {s}",
                i - 1
            )));
        }
    }
    Ok(())
}

/// The configuration of a recurrent layer or cell, builder-style: the fields every
/// one has (`input_size`, `hidden_size`, `bias`, `dtype`) and `extra` ones.
macro_rules! recurrent_config {
    (
        $(#[$doc:meta])*
        $config:ident {
            $($(#[$fdoc:meta])* $field:ident: $fty:ty = $default:expr;)*
        }
        setters { $($setters:tt)* }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $config {
            /// The size of each input vector.
            pub input_size: usize,
            /// The size of the hidden state `h` (and cell state `c`).
            pub hidden_size: usize,
            /// Whether the cells have the biases `bias_ih` and `bias_hh` (default
            /// true).
            pub bias: bool,
            /// The dtype of the parameters (default f32; f64 for gradient checks).
            pub dtype: kiln_ir::DType,
            $($(#[$fdoc])* pub $field: $fty,)*
        }

        impl $config {
            /// From `input_size` to `hidden_size`, with biases, in f32, every other
            /// option at PyTorch's default; parameters drawn from
            /// `U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))` as in PyTorch.
            pub fn new(input_size: usize, hidden_size: usize) -> Self {
                $config {
                    input_size,
                    hidden_size,
                    bias: true,
                    dtype: kiln_ir::DType::F32,
                    $($field: $default,)*
                }
            }

            setters! {
                /// With or without the biases.
                with_bias(bias: bool) => bias;
                /// With parameters of another (float) dtype.
                with_dtype(dtype: kiln_ir::DType) => dtype;
                $($setters)*
            }
        }
    };
}
pub(crate) use recurrent_config;

/// Records a non-float dtype as an error of `op` and returns it, before any
/// parameter is declared.
#[track_caller]
pub(crate) fn check_dtype(g: &GraphBuilder, op: &'static str, dtype: DType) -> Result<(), Tensor> {
    if dtype.is_float() {
        return Ok(());
    }
    let ty = TensorType::new(dtype, []);
    Err(Ctx::leaf(g, op, ty.clone()).fail(TypeError::DType {
        index: 0,
        got: ty,
        expected: "recurrent parameters must have a float dtype".into(),
    }))
}

/// One step of a cell of `kind` on `x` and `state`, after checking the operands;
/// every result poisoned (with the state's types) if they do not fit.
#[track_caller]
fn cell_forward(
    kind: CellKind,
    weights: &CellParams,
    sizes: (usize, usize),
    x: &Tensor,
    state: &[&Tensor],
) -> Vec<Tensor> {
    let dtype = weights.weight_ih.dtype();
    let batch = x.dims().first().copied().unwrap_or(0);
    let state_ty = TensorType::new(dtype, [batch, sizes.1]);
    let mut operands = vec![x];
    operands.extend_from_slice(state);
    let poisoned = |b: &GraphBuilder| {
        (0..state.len())
            .map(|_| Tensor::poisoned(b, state_ty.clone()))
            .collect()
    };
    let cx = match Ctx::new(kind.cell_name(), &operands) {
        Ok(cx) => cx.placeholder(state_ty.clone()),
        Err(p) => return poisoned(&p.b),
    };
    if let Err(p) = cx.check(|t| check_cell_operands(t, sizes, dtype)) {
        return poisoned(&p.b);
    }
    let gi = project(x, &weights.weight_ih, weights.bias_ih.as_ref());
    let gh = project(state[0], &weights.weight_hh, weights.bias_hh.as_ref());
    let state: Vec<Tensor> = state.iter().map(|&s| s.clone()).collect();
    cell_step(kind, &gi, &gh, &state)
}

macro_rules! cell_module {
    (
        $(#[$doc:meta])*
        $cell:ident, $config:ident, $kind:expr;
        $(#[$cdoc:meta])*
        config { $($cfg:tt)* }
        setters { $($setters:tt)* }
        $(#[$fdoc:meta])*
        fn forward($self:ident, $x:ident, $state:ident: $sty:ty) -> $ret:ty $body:block
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $cell {
            /// `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`.
            pub weights: CellParams,
            /// The size of each input vector.
            pub input_size: usize,
            /// The size of the hidden state.
            pub hidden_size: usize,
            kind: CellKind,
        }

        recurrent_config! {
            $(#[$cdoc])*
            $config { $($cfg)* }
            setters { $($setters)* }
        }

        impl $config {
            /// Declares the parameters `{name}.weight_ih`, `{name}.weight_hh`,
            /// `{name}.bias_ih` and `{name}.bias_hh` in `g`, PyTorch's names.
            #[track_caller]
            pub fn init(&self, g: &GraphBuilder, name: &str, rng: &mut Rng) -> $cell {
                let kind: CellKind = $kind(self);
                let sizes = (self.input_size, self.hidden_size);
                let weights = match check_dtype(g, kind.cell_name(), self.dtype) {
                    Ok(()) => {
                        CellParams::declare(g, kind, name, "", sizes, self.bias, self.dtype, rng)
                    }
                    Err(p) => CellParams {
                        weight_ih: p.clone(),
                        weight_hh: p,
                        bias_ih: None,
                        bias_hh: None,
                    },
                };
                $cell {
                    weights,
                    input_size: self.input_size,
                    hidden_size: self.hidden_size,
                    kind,
                }
            }
        }

        impl $cell {
            /// A cell with PyTorch's defaults; see the configuration for options.
            #[track_caller]
            pub fn new(
                g: &GraphBuilder,
                name: &str,
                input_size: usize,
                hidden_size: usize,
                rng: &mut Rng,
            ) -> $cell {
                $config::new(input_size, hidden_size).init(g, name, rng)
            }

            $(#[$fdoc])*
            #[track_caller]
            pub fn forward(&$self, $x: &Tensor, $state: $sty) -> $ret $body

            /// The parameters, in declaration order.
            pub fn params(&self) -> Vec<Tensor> {
                self.weights.to_vec()
            }

            #[track_caller]
            fn step(&self, x: &Tensor, state: &[&Tensor]) -> Vec<Tensor> {
                let sizes = (self.input_size, self.hidden_size);
                cell_forward(self.kind, &self.weights, sizes, x, state)
            }
        }
    };
}

cell_module! {
    /// One step of an Elman RNN, PyTorch's `nn.RNNCell`:
    /// `h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)`, `act` tanh or ReLU.
    ///
    /// ```
    /// use kiln_frontend::prelude::*;
    ///
    /// let g = GraphBuilder::new("cell");
    /// let mut rng = Rng::seed(0);
    /// let cell = nn::RnnCell::new(&g, "cell", 3, 5, &mut rng);
    /// let h = cell.forward(&g.input("x", DType::F32, [2, 3]), &g.zeros([2, 5]));
    /// assert_eq!(h.dims(), &[2, 5]);
    /// ```
    RnnCell, RnnCellConfig, |c: &RnnCellConfig| CellKind::Rnn(c.nonlinearity);
    /// The configuration of an [`RnnCell`], builder-style.
    config {
        /// tanh (default) or ReLU.
        nonlinearity: Nonlinearity = Nonlinearity::Tanh;
    }
    setters {
        /// With another nonlinearity.
        with_nonlinearity(nonlinearity: Nonlinearity) => nonlinearity;
    }
    /// The next hidden state `[B, H]` from `x: [B, input_size]` and `h: [B, H]`.
    fn forward(self, x, h: &Tensor) -> Tensor {
        self.step(x, &[h]).swap_remove(0)
    }
}

cell_module! {
    /// One step of an LSTM, PyTorch's `nn.LSTMCell`, gates in the order i, f, g, o:
    /// `i, f, g, o = σ, σ, tanh, σ (x W_ih^T + b_ih + h W_hh^T + b_hh)`,
    /// `c' = f * c + i * g`, `h' = o * tanh(c')`.
    ///
    /// For a loop of your own: pass the cell's parameters (`cell.params()`) as the
    /// `consts` of [`GraphBuilder::scan`] (a cell cannot be used inside a loop body
    /// directly, its parameters belong to the outer graph), or use [`super::Lstm`].
    ///
    /// ```
    /// use kiln_frontend::prelude::*;
    ///
    /// let g = GraphBuilder::new("cell");
    /// let mut rng = Rng::seed(0);
    /// let cell = nn::LstmCell::new(&g, "cell", 3, 5, &mut rng);
    /// let x = g.input("x", DType::F32, [2, 3]);
    /// let (h, c) = cell.forward(&x, (&g.zeros([2, 5]), &g.zeros([2, 5])));
    /// let (h, c) = cell.forward(&x, (&h, &c)); // a second step
    /// assert_eq!(h.dims(), &[2, 5]);
    /// let model = g.build(&[&h, &c]).unwrap();
    /// let names: Vec<&str> = model.params.names().collect();
    /// assert_eq!(names, ["cell.weight_ih", "cell.weight_hh", "cell.bias_ih", "cell.bias_hh"]);
    /// ```
    LstmCell, LstmCellConfig, |_: &LstmCellConfig| CellKind::Lstm;
    /// The configuration of an [`LstmCell`], builder-style.
    config {}
    setters {}
    /// The next `(h, c)`, each `[B, H]`, from `x: [B, input_size]` and `(h, c)`.
    fn forward(self, x, state: (&Tensor, &Tensor)) -> (Tensor, Tensor) {
        let mut next = self.step(x, &[state.0, state.1]).into_iter();
        match (next.next(), next.next()) {
            (Some(h), Some(c)) => (h, c),
            _ => unreachable!("an LSTM step returns h and c"),
        }
    }
}

cell_module! {
    /// One step of a GRU, PyTorch's `nn.GRUCell`, gates in the order r, z, n:
    /// `r = σ(W_ir x + b_ir + W_hr h + b_hr)`, `z = σ(W_iz x + b_iz + W_hz h + b_hz)`,
    /// `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`, `h' = (1 - z) * n + z * h`.
    ///
    /// ```
    /// use kiln_frontend::prelude::*;
    ///
    /// let g = GraphBuilder::new("cell");
    /// let mut rng = Rng::seed(0);
    /// let cell = nn::GruCell::new(&g, "cell", 3, 5, &mut rng);
    /// let h = cell.forward(&g.input("x", DType::F32, [2, 3]), &g.zeros([2, 5]));
    /// assert_eq!(h.dims(), &[2, 5]);
    /// assert_eq!(cell.weights.weight_ih.dims(), &[15, 3]);
    /// ```
    GruCell, GruCellConfig, |_: &GruCellConfig| CellKind::Gru;
    /// The configuration of a [`GruCell`], builder-style.
    config {}
    setters {}
    /// The next hidden state `[B, H]` from `x: [B, input_size]` and `h: [B, H]`.
    fn forward(self, x, h: &Tensor) -> Tensor {
        self.step(x, &[h]).swap_remove(0)
    }
}
