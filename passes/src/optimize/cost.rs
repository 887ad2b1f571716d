//! The cost model: estimated memory traffic plus weighted arithmetic.
//!
//! Each node is charged the bytes it reads (every operand once) and writes (its
//! result), as if it ran as its own kernel, plus its flops times
//! [`FLOP_WEIGHT`]. That makes a fused node cheaper than its parts (they write and
//! re-read the intermediates), and ranks a broadcast or a transpose as the copy it is
//! when materialized. Views that never move data (`reshape`, `stop_gradient`) and
//! arguments cost nothing; literals cost their size. Every other node costs at least
//! 1, so among equal alternatives the smaller graph wins.

use kiln_ir::{Graph, Op, TensorType, Work};

/// Bytes one flop is worth: a core streams roughly 20-60 GB/s but computes
/// 30-100 GFLOP/s, so a flop is about a quarter of a byte.
pub const FLOP_WEIGHT: f64 = 0.25;

/// Estimated work of a node or a graph.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Bytes read and written.
    pub bytes: f64,
    /// Arithmetic operations.
    pub flops: f64,
}

impl Cost {
    /// The scalar the extractor minimizes.
    pub fn total(&self) -> f64 {
        self.bytes + FLOP_WEIGHT * self.flops
    }
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            bytes: self.bytes + o.bytes,
            flops: self.flops + o.flops,
        }
    }
}

/// The cost of `op` producing `out` from operands of types `operands`.
pub fn node_cost(op: &Op, out: &TensorType, operands: &[&TensorType]) -> Cost {
    let n = out.shape.numel() as f64;
    let bytes_in: f64 = operands.iter().map(|t| t.size_bytes() as f64).sum();
    let moved = bytes_in + out.size_bytes() as f64;
    let flops = match op {
        Op::Input | Op::Param => return Cost::default(),
        Op::Const(t) => {
            return Cost {
                bytes: t.ty().size_bytes() as f64,
                flops: 0.0,
            };
        }
        Op::Reshape(_) | Op::StopGradient => return Cost::default(),
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Compare(_)
        | Op::Select
        | Op::Cast(_)
        | Op::Fma
        | Op::RandomUniform { .. } => elementwise_flops(op.kind().work()) * n,
        Op::MatMul | Op::MatMulBias { .. } => {
            let k = operands[0].shape.dim(operands[0].shape.rank() - 1) as f64;
            2.0 * n * k
                + if matches!(op, Op::MatMulBias { .. }) {
                    2.0 * n
                } else {
                    0.0
                }
        }
        Op::Conv2d(_) => {
            let w = &operands[1].shape;
            2.0 * n * (w.dim(1) * w.dim(2) * w.dim(3)) as f64
        }
        Op::ConvTranspose2d { .. } => {
            let w = &operands[1].shape;
            2.0 * operands[0].shape.numel() as f64 * (w.dim(1) * w.dim(2) * w.dim(3)) as f64
        }
        Op::Conv2dWeightGrad { .. } => {
            2.0 * n * (operands[1].shape.numel() / operands[1].shape.dim(1).max(1)) as f64
        }
        Op::Reduce { .. } | Op::ArgMax { .. } => operands[0].shape.numel() as f64,
        // The body's cost once per step.
        Op::Scan(scan) => scan.length as f64 * graph_cost(&scan.body.0).total(),
        Op::Pool2d(p) | Op::Pool2dGrad(p) => {
            (operands[0].shape.numel().max(out.shape.numel()) * p.kernel[0] * p.kernel[1]) as f64
        }
        Op::Broadcast(_)
        | Op::Transpose(_)
        | Op::Slice { .. }
        | Op::Concat { .. }
        | Op::Pad { .. }
        | Op::Gather
        | Op::ScatterAdd { .. }
        | Op::OneHot { .. }
        | Op::AllReduce => n,
    };
    Cost {
        bytes: moved.max(1.0),
        flops,
    }
}

/// Flops per element of an elementwise op. Transcendentals are polynomial
/// approximations (a dozen flops each); a divide takes several multiplies' time.
fn elementwise_flops(work: Work) -> f64 {
    match work {
        Work::None => 0.0,
        Work::Simple | Work::Hash | Work::Shaped => 1.0,
        Work::MulAdd => 2.0,
        Work::Divide => 4.0,
        Work::Root | Work::Transcendental => 12.0,
        Work::Power => 24.0,
    }
}

/// The estimated cost of running every node of `graph` once.
pub fn graph_cost(graph: &Graph) -> Cost {
    graph
        .node_ids()
        .map(|id| {
            let node = graph.node(id);
            let ops = graph.operands(id);
            let types: Vec<&TensorType> = ops.iter().map(|&o| &graph.node(o).ty).collect();
            node_cost(&node.op, &node.ty, &types)
        })
        .fold(Cost::default(), |a, b| a + b)
}

/// The number of fused nodes (`fma`, `matmul_bias`) in `graph`.
pub fn fused_nodes(graph: &Graph) -> usize {
    graph
        .node_ids()
        .filter(|&id| matches!(graph.node(id).op, Op::Fma | Op::MatMulBias { .. }))
        .count()
}
