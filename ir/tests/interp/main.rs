//! Tests of the reference interpreter (`kiln_ir::interp`).
//!
//! Expected values are worked out independently of the interpreter: by hand, from
//! the mathematical definition with plain loops written here, or from identities
//! (adjointness, conservation). Data is never all zeros.
//!
//! `every_op_has_a_test` fails when an op (variant or kind) has no test listed in
//! `TESTED`, or when a listed test function does not exist.

mod api;
mod contract;
mod elementwise;
mod index;
mod movement;
mod pool;
mod random;
mod reduce;
mod scan;

use kiln_ir::interp::{EvalError, eval_op};
use kiln_ir::{BinaryOp, CmpOp, HostTensor, Op, PoolKind, ReduceOp, UnaryOp};
pub use kiln_testutil::Rng;

// ---------------------------------------------------------------------------
// Helpers

pub fn t32(dims: &[usize], v: &[f32]) -> HostTensor {
    HostTensor::from_f32(dims, v.to_vec()).unwrap()
}

pub fn t64(dims: &[usize], v: &[f64]) -> HostTensor {
    HostTensor::from_f64(dims, v.to_vec()).unwrap()
}

pub fn ti(dims: &[usize], v: &[i32]) -> HostTensor {
    HostTensor::from_i32(dims, v.to_vec()).unwrap()
}

pub fn tb(dims: &[usize], v: &[bool]) -> HostTensor {
    HostTensor::from_bool(dims, v.to_vec()).unwrap()
}

/// `op` applied to `xs`; panics with the error if evaluation fails.
pub fn ev(op: Op, xs: &[&HostTensor]) -> HostTensor {
    eval_op(&op, xs).unwrap_or_else(|e| panic!("`{op}` failed: {e}"))
}

/// The error of `op` applied to `xs`; panics if it succeeds.
pub fn ev_err(op: Op, xs: &[&HostTensor]) -> EvalError {
    match eval_op(&op, xs) {
        Ok(v) => panic!("`{op}` should fail, got {v}"),
        Err(e) => e,
    }
}

/// True if `got` matches `want`: both NaN, equal infinities, or
/// `|got - want| <= tol * max(1, |want|)`.
pub fn close(got: f64, want: f64, tol: f64) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= tol * want.abs().max(1.0)
}

/// Asserts `got` has shape `dims` and elements close to `want` (see [`close`]).
#[track_caller]
pub fn assert_close(got: &HostTensor, dims: &[usize], want: &[f64], tol: f64) {
    assert_eq!(got.shape().dims(), dims, "shape of {got}");
    assert_eq!(got.numel(), want.len(), "test data length");
    for (i, (&g, &w)) in got.to_f64_vec().iter().zip(want).enumerate() {
        assert!(
            close(g, w, tol),
            "element {i}: got {g}, want {w} (tol {tol})\n{got}"
        );
    }
}

/// Asserts exact equality of dtype, shape and elements, with NaN equal to NaN and
/// the sign of zero significant.
#[track_caller]
pub fn assert_same(got: &HostTensor, want: &HostTensor) {
    assert_eq!(got.ty(), want.ty(), "type: got {got}, want {want}");
    for i in 0..got.numel() {
        let (g, w) = (got.get_f64(i), want.get_f64(i));
        let same =
            (g.is_nan() && w.is_nan()) || (g == w && g.is_sign_negative() == w.is_sign_negative());
        assert!(
            same,
            "element {i}: got {g}, want {w}\ngot  {got}\nwant {want}"
        );
    }
}

/// `sum(a * b)` in f64: the inner product for adjoint checks.
pub fn dot(a: &HostTensor, b: &HostTensor) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(x, y)| x * y)
        .sum()
}

// ---------------------------------------------------------------------------
// Coverage

/// Every op mnemonic, with the test function (`module::name`) that checks it.
const TESTED: &[(&str, &str)] = &[
    ("input", "api::run_binds_arguments_in_order"),
    ("param", "api::run_binds_arguments_in_order"),
    ("const", "api::const_nodes_evaluate_to_their_literal"),
    ("stop_gradient", "elementwise::stop_gradient_is_identity"),
    ("neg", "elementwise::neg_floats_and_wrapping_i32"),
    ("erf", "elementwise::erf_matches_tabulated_values"),
    ("exp", "elementwise::exp_known_values"),
    ("log", "elementwise::log_known_values"),
    ("sqrt", "elementwise::sqrt_known_values"),
    ("rsqrt", "elementwise::rsqrt_known_values"),
    ("tanh", "elementwise::tanh_matches_exponential_definition"),
    (
        "sigmoid",
        "elementwise::sigmoid_known_values_and_no_overflow",
    ),
    ("relu", "elementwise::relu_floats_ints_and_nan"),
    ("abs", "elementwise::abs_floats_and_wrapping_i32"),
    ("recip", "elementwise::recip_known_values"),
    ("sign", "elementwise::sign_floats_ints_and_nan"),
    (
        "leaky_relu",
        "elementwise::leaky_relu_uses_slope_for_non_positive",
    ),
    ("add", "elementwise::add_floats_and_wrapping_i32"),
    ("sub", "elementwise::sub_floats_and_wrapping_i32"),
    ("mul", "elementwise::mul_floats_and_wrapping_i32"),
    ("div", "elementwise::div_floats_and_truncating_i32"),
    ("max", "elementwise::max_propagates_nan"),
    ("min", "elementwise::min_propagates_nan"),
    ("pow", "elementwise::pow_known_values"),
    ("eq", "elementwise::eq_table"),
    ("ne", "elementwise::ne_table"),
    ("lt", "elementwise::lt_table"),
    ("le", "elementwise::le_table"),
    ("gt", "elementwise::gt_table"),
    ("ge", "elementwise::ge_table"),
    ("select", "elementwise::select_every_dtype"),
    ("cast", "elementwise::cast_has_as_semantics"),
    ("broadcast", "movement::broadcast_matches_loops"),
    ("reshape", "movement::reshape_keeps_row_major_order"),
    ("transpose", "movement::transpose_matches_loops"),
    ("slice", "movement::slice_with_steps"),
    ("concat", "movement::concat_along_each_axis"),
    ("pad", "movement::pad_places_input_and_fills_value"),
    ("reduce_sum", "reduce::reduce_sum_matches_loops"),
    ("reduce_mean", "reduce::reduce_mean_divides_by_count"),
    ("reduce_max", "reduce::reduce_max_propagates_nan"),
    ("reduce_min", "reduce::reduce_min_propagates_nan"),
    ("argmax", "reduce::argmax_first_maximum"),
    ("matmul", "contract::matmul_batched_matches_loops"),
    ("conv2d", "contract::conv2d_matches_padded_reference"),
    ("conv_transpose2d", "contract::conv_transpose2d_by_hand"),
    ("conv2d_weight_grad", "contract::conv2d_weight_grad_by_hand"),
    ("max_pool2d", "pool::max_pool2d_matches_padded_reference"),
    ("avg_pool2d", "pool::avg_pool2d_matches_padded_reference"),
    ("max_pool2d_grad", "pool::max_pool2d_grad_by_hand"),
    ("avg_pool2d_grad", "pool::avg_pool2d_grad_is_adjoint"),
    ("gather", "index::gather_rows"),
    ("scatter_add", "index::scatter_add_accumulates"),
    ("one_hot", "index::one_hot_every_dtype"),
    (
        "random_uniform",
        "random::random_uniform_op_uses_flat_index",
    ),
    ("fma", "elementwise::fma_rounds_once"),
    ("matmul_bias", "contract::matmul_bias_adds_rows_then_relu"),
    ("scan", "scan::scan_carries_and_stacks"),
    (
        "all_reduce",
        "elementwise::all_reduce_of_one_process_is_its_operand",
    ),
];

/// The mnemonics of `op`, spelled out with no wildcard so that a new variant or kind
/// fails to compile here until it is listed (and then, via `TESTED`, tested).
fn mnemonics_of(op: &Op) -> Vec<&'static str> {
    match op {
        Op::Input => vec!["input"],
        Op::Param => vec!["param"],
        Op::Const(_) => vec!["const"],
        Op::Unary(k) => vec![match k {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Erf => "erf",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Relu => "relu",
            UnaryOp::Abs => "abs",
            UnaryOp::Recip => "recip",
            UnaryOp::Sign => "sign",
            UnaryOp::LeakyRelu(_) => "leaky_relu",
        }],
        Op::Binary(k) => vec![match k {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Max => "max",
            BinaryOp::Min => "min",
            BinaryOp::Pow => "pow",
        }],
        Op::Compare(k) => vec![match k {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
        }],
        Op::Select => vec!["select"],
        Op::Cast(_) => vec!["cast"],
        Op::StopGradient => vec!["stop_gradient"],
        Op::Broadcast(_) => vec!["broadcast"],
        Op::Reshape(_) => vec!["reshape"],
        Op::Transpose(_) => vec!["transpose"],
        Op::Slice { .. } => vec!["slice"],
        Op::Concat { .. } => vec!["concat"],
        Op::Pad { .. } => vec!["pad"],
        Op::Reduce { kind, .. } => vec![match kind {
            ReduceOp::Sum => "reduce_sum",
            ReduceOp::Mean => "reduce_mean",
            ReduceOp::Max => "reduce_max",
            ReduceOp::Min => "reduce_min",
        }],
        Op::ArgMax { .. } => vec!["argmax"],
        Op::MatMul => vec!["matmul"],
        Op::Conv2d(_) => vec!["conv2d"],
        Op::ConvTranspose2d { .. } => vec!["conv_transpose2d"],
        Op::Conv2dWeightGrad { .. } => vec!["conv2d_weight_grad"],
        // Both kinds of each, whichever kind `op` has.
        Op::Pool2d(p) => match p.kind {
            PoolKind::Max | PoolKind::Avg => vec!["max_pool2d", "avg_pool2d"],
        },
        Op::Pool2dGrad(p) => match p.kind {
            PoolKind::Max | PoolKind::Avg => vec!["max_pool2d_grad", "avg_pool2d_grad"],
        },
        Op::Gather => vec!["gather"],
        Op::ScatterAdd { .. } => vec!["scatter_add"],
        Op::OneHot { .. } => vec!["one_hot"],
        Op::RandomUniform { .. } => vec!["random_uniform"],
        Op::Fma => vec!["fma"],
        Op::MatMulBias { .. } => vec!["matmul_bias"],
        Op::Scan(_) => vec!["scan"],
        Op::AllReduce => vec!["all_reduce"],
    }
}

fn test_source(module: &str) -> &'static str {
    match module {
        "api" => include_str!("api.rs"),
        "contract" => include_str!("contract.rs"),
        "elementwise" => include_str!("elementwise.rs"),
        "index" => include_str!("index.rs"),
        "movement" => include_str!("movement.rs"),
        "pool" => include_str!("pool.rs"),
        "random" => include_str!("random.rs"),
        "reduce" => include_str!("reduce.rs"),
        "scan" => include_str!("scan.rs"),
        other => panic!("unknown test module `{other}`"),
    }
}

#[test]
fn every_op_has_a_test() {
    let mut all: Vec<&str> = Op::samples().iter().flat_map(mnemonics_of).collect();
    // The spelled-out names must agree with the IR's own.
    for op in Op::samples() {
        assert!(mnemonics_of(&op).contains(&op.mnemonic()), "{op}");
    }
    for k in UnaryOp::ALL {
        all.extend(mnemonics_of(&Op::Unary(k)));
    }
    for k in BinaryOp::ALL {
        all.extend(mnemonics_of(&Op::Binary(k)));
    }
    for k in CmpOp::ALL {
        all.extend(mnemonics_of(&Op::Compare(k)));
    }
    all.sort_unstable();
    all.dedup();
    let untested: Vec<&&str> = all
        .iter()
        .filter(|m| !TESTED.iter().any(|(t, _)| t == *m))
        .collect();
    assert!(
        untested.is_empty(),
        "ops without an interpreter test: {untested:?}"
    );
    for (m, path) in TESTED {
        assert!(all.contains(m), "TESTED lists `{m}`, which is not an op");
        let (module, name) = path.split_once("::").unwrap();
        assert!(
            test_source(module).contains(&format!("fn {name}()")),
            "`{m}`: no test function `{path}`"
        );
    }
}
