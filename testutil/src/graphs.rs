//! A generator of random *valid* graphs over every op of the IR: random shapes,
//! attributes (edge values included: NaN, infinities, signed zeros, huge and tiny
//! constants), arguments and parameters with awkward names, loops nested up to two
//! levels. Every proposal that `Graph::add` rejects is skipped, so each result
//! type-checks. The text-format round trip (`kiln-ir`'s tests) and the
//! differential oracle (`kiln-runtime`'s tests) run on these graphs.
//!
//! The oracle's pieces are here too: [`twin`], a graph's f64 twin, and
//! [`accepted`], the judgement of a compiled element against the f32 interpreter
//! and the twin.

use std::collections::HashMap;
use std::sync::Arc;

use kiln_ir::{
    BinaryOp, Body, CmpOp, Conv2dAttrs, DType, Graph, HostTensor, NodeId, Op, Pool2dAttrs,
    PoolKind, ReduceOp, Scan, Shape, TensorType, UnaryOp,
};

use crate::{Draw, Rng, agrees};

/// The random-graph generator's draws beyond the shared generator's own.
trait Draws {
    fn dims(&mut self, rank: usize) -> Vec<usize>;
    fn float(&mut self) -> f64;
}

impl<T: Draw + ?Sized> Draws for T {
    fn dims(&mut self, rank: usize) -> Vec<usize> {
        (0..rank).map(|_| 1 + self.below(4)).collect()
    }
    fn float(&mut self) -> f64 {
        const SPECIAL: [f64; 8] = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.1,
            1e-8,
            3.5e20,
            -2.25,
        ];
        if self.chance(0.3) {
            SPECIAL[self.below(8)]
        } else {
            (self.bits() % 2000) as f64 / 64.0 - 15.0
        }
    }
}

/// Builds a random valid graph; every proposal that `Graph::add` rejects is skipped.
struct Gen {
    rng: Box<dyn Draw>,
    g: Graph,
    args: usize,
    /// How many loop bodies this graph is nested in.
    depth: usize,
}

impl Gen {
    fn arg(&mut self, ty: TensorType) -> NodeId {
        self.args += 1;
        // Valid argument names; the last two are not plain identifiers, so the
        // printer quotes them.
        let name = match self.args % 6 {
            0 => format!("x{}", self.args),
            1 => format!("layer{}.weight", self.args),
            2 => format!("_a{}", self.args),
            3 => format!("v{}", self.args),
            4 => format!("ü{}", self.args),
            _ => format!(".h{}", self.args),
        };
        if self.rng.chance(0.3) {
            self.g.param(&name, ty).unwrap()
        } else {
            self.g.input(&name, ty).unwrap()
        }
    }

    fn float_arg(&mut self, dims: &[usize]) -> NodeId {
        let dtype = if self.rng.chance(0.2) {
            DType::F64
        } else {
            DType::F32
        };
        self.arg(TensorType::new(dtype, dims))
    }

    fn constant(&mut self) -> NodeId {
        let dtype = DType::ALL[self.rng.below(DType::ALL.len())];
        let rank = self.rng.below(3);
        let ty = TensorType::new(dtype, self.rng.dims(rank));
        let splat = self.rng.chance(0.4);
        let first = self.rng.float();
        let mut vals = Vec::new();
        for i in 0..ty.shape.numel() {
            vals.push(if splat || i == 0 {
                first
            } else {
                self.rng.float()
            });
        }
        let t = match dtype {
            DType::F32 => {
                HostTensor::from_f32(ty.shape.clone(), vals.iter().map(|&v| v as f32).collect())
            }
            DType::F64 => HostTensor::from_f64(ty.shape.clone(), vals),
            DType::I32 => HostTensor::from_i32(
                ty.shape.clone(),
                vals.iter()
                    .map(|&v| if v.is_finite() { v as i32 } else { -3 })
                    .collect(),
            ),
            DType::Bool => {
                HostTensor::from_bool(ty.shape.clone(), vals.iter().map(|&v| v > 0.0).collect())
            }
        };
        self.g.constant(t.unwrap())
    }

    fn existing(&mut self, want: impl Fn(&TensorType) -> bool) -> Option<NodeId> {
        let ids: Vec<NodeId> = self
            .g
            .node_ids()
            .filter(|&n| want(&self.g.node(n).ty))
            .collect();
        (!ids.is_empty()).then(|| ids[self.rng.below(ids.len())])
    }

    fn float_node(&mut self) -> NodeId {
        match self.existing(|t| t.dtype.is_float()) {
            Some(n) if self.rng.chance(0.7) => n,
            _ => {
                let rank = self.rng.below(4);
                let d = self.rng.dims(rank);
                self.float_arg(&d)
            }
        }
    }

    fn like(&mut self, n: NodeId) -> NodeId {
        let ty = self.g.node(n).ty.clone();
        match self.existing(|t| *t == ty) {
            Some(m) if self.rng.chance(0.5) => m,
            _ => self.arg(ty),
        }
    }

    /// An `i32` argument (indices for gather, scatter_add, one_hot).
    fn ints(&mut self, dims: &[usize]) -> NodeId {
        self.arg(TensorType::new(DType::I32, dims))
    }

    /// Proposes one op of family `k` (an index into the generator list).
    fn propose(&mut self, k: usize) {
        let r = &mut self.rng;
        let conv = Conv2dAttrs {
            stride: [1 + r.below(2), 1 + r.below(2)],
            padding: [r.below(2), r.below(2)],
            dilation: [1 + r.below(2), 1],
        };
        let pool = Pool2dAttrs {
            kind: if r.chance(0.5) {
                PoolKind::Max
            } else {
                PoolKind::Avg
            },
            kernel: [2, 1 + r.below(2)],
            stride: [1 + r.below(2), 1],
            padding: [r.below(2), 0],
        };
        let (op, operands): (Op, Vec<NodeId>) = match k {
            0 => {
                self.constant();
                return;
            }
            1 => {
                let u = UnaryOp::ALL[self.rng.below(UnaryOp::ALL.len())];
                let u = if let UnaryOp::LeakyRelu(_) = u {
                    UnaryOp::LeakyRelu(self.rng.float())
                } else {
                    u
                };
                let x = if u.accepts_integers() && self.rng.chance(0.3) {
                    self.existing(|t| t.dtype == DType::I32)
                        .unwrap_or_else(|| self.float_node())
                } else {
                    self.float_node()
                };
                (Op::Unary(u), vec![x])
            }
            2 => {
                let a = self.float_node();
                let b = self.like(a);
                (
                    Op::Binary(BinaryOp::ALL[self.rng.below(BinaryOp::ALL.len())]),
                    vec![a, b],
                )
            }
            3 => {
                let a = self.float_node();
                let b = self.like(a);
                (
                    Op::Compare(CmpOp::ALL[self.rng.below(CmpOp::ALL.len())]),
                    vec![a, b],
                )
            }
            4 => {
                let a = self.float_node();
                let b = self.like(a);
                let c = match self.g.add(Op::Compare(CmpOp::Gt), &[a, b]) {
                    Ok(c) => c,
                    Err(_) => return,
                };
                (Op::Select, vec![c, a, b])
            }
            5 => (
                Op::Cast(DType::ALL[self.rng.below(DType::ALL.len())]),
                vec![self.float_node()],
            ),
            6 => (Op::StopGradient, vec![self.float_node()]),
            7 => {
                let x = self.float_node();
                let mut dims = vec![1 + self.rng.below(3)];
                dims.extend(
                    self.g
                        .node(x)
                        .ty
                        .shape
                        .dims()
                        .iter()
                        .map(|&d| if d == 1 { 3 } else { d }),
                );
                (Op::Broadcast(Shape::new(dims)), vec![x])
            }
            8 => {
                let x = self.float_node();
                let n = self.g.node(x).ty.shape.numel();
                (Op::Reshape(Shape::from([n])), vec![x])
            }
            9 => {
                let x = self.float_node();
                let rank = self.g.node(x).ty.shape.rank();
                let mut perm: Vec<usize> = (0..rank).collect();
                perm.rotate_left(if rank > 0 { self.rng.below(rank) } else { 0 });
                (Op::Transpose(perm), vec![x])
            }
            10 => {
                let x = self.float_node();
                let dims = self.g.node(x).ty.shape.dims().to_vec();
                let start: Vec<usize> = dims.iter().map(|&d| self.rng.below(d)).collect();
                let end: Vec<usize> = dims
                    .iter()
                    .zip(&start)
                    .map(|(&d, &s)| s + 1 + self.rng.below(d - s))
                    .collect();
                let step = dims.iter().map(|_| 1 + self.rng.below(2)).collect();
                (Op::Slice { start, end, step }, vec![x])
            }
            11 => {
                let x = self.float_node();
                let rank = self.g.node(x).ty.shape.rank();
                if rank == 0 {
                    return;
                }
                let y = self.like(x);
                (
                    Op::Concat {
                        axis: self.rng.below(rank),
                    },
                    vec![x, y, x],
                )
            }
            12 => {
                let x = self.float_node();
                let rank = self.g.node(x).ty.shape.rank();
                let low = (0..rank).map(|_| self.rng.below(3)).collect();
                let high = (0..rank).map(|_| self.rng.below(3)).collect();
                (
                    Op::Pad {
                        low,
                        high,
                        value: self.rng.float(),
                    },
                    vec![x],
                )
            }
            13 => {
                let x = self.float_node();
                let rank = self.g.node(x).ty.shape.rank();
                let axes = (0..rank).filter(|_| self.rng.chance(0.5)).collect();
                (
                    Op::Reduce {
                        kind: ReduceOp::ALL[self.rng.below(ReduceOp::ALL.len())],
                        axes,
                        keepdims: self.rng.chance(0.5),
                    },
                    vec![x],
                )
            }
            14 => {
                let x = self.float_node();
                let rank = self.g.node(x).ty.shape.rank();
                if rank == 0 {
                    return;
                }
                (
                    Op::ArgMax {
                        axis: self.rng.below(rank),
                        keepdims: self.rng.chance(0.5),
                    },
                    vec![x],
                )
            }
            15 | 16 => {
                let (m, kk, n) = (
                    1 + self.rng.below(4),
                    1 + self.rng.below(4),
                    1 + self.rng.below(4),
                );
                let a = self.float_arg(&[m, kk]);
                let dt = self.g.node(a).ty.dtype;
                let b = self.arg(TensorType::new(dt, [kk, n]));
                if k == 15 {
                    (Op::MatMul, vec![a, b])
                } else {
                    let bias = self.arg(TensorType::new(dt, [n]));
                    (
                        Op::MatMulBias {
                            relu: self.rng.chance(0.5),
                        },
                        vec![a, b, bias],
                    )
                }
            }
            17 => {
                let x = self.float_arg(&[2, 2, 5, 6]);
                let w = self.arg(TensorType::new(self.g.node(x).ty.dtype, [3, 2, 2, 2]));
                (Op::Conv2d(conv), vec![x, w])
            }
            18 => {
                let y = self.float_arg(&[1, 3, 3, 4]);
                let w = self.arg(TensorType::new(self.g.node(y).ty.dtype, [3, 2, 2, 3]));
                (
                    Op::ConvTranspose2d {
                        conv,
                        output_padding: [0, 0],
                    },
                    vec![y, w],
                )
            }
            19 => {
                let x = self.float_arg(&[2, 2, 5, 6]);
                let dt = self.g.node(x).ty.dtype;
                let ys = match kiln_ir::infer(
                    &Op::Conv2d(conv),
                    &[&self.g.node(x).ty, &TensorType::new(dt, [3, 2, 2, 2])],
                ) {
                    Ok(t) => t,
                    Err(_) => return,
                };
                let dy = self.arg(ys);
                (
                    Op::Conv2dWeightGrad {
                        conv,
                        kernel: [2, 2],
                    },
                    vec![x, dy],
                )
            }
            20 => (Op::Pool2d(pool), vec![self.float_arg(&[1, 2, 5, 4])]),
            21 => {
                let x = self.float_arg(&[1, 2, 5, 4]);
                let ys = match kiln_ir::infer(&Op::Pool2d(pool), &[&self.g.node(x).ty]) {
                    Ok(t) => t,
                    Err(_) => return,
                };
                let dy = self.arg(ys);
                (Op::Pool2dGrad(pool), vec![x, dy])
            }
            22 => {
                let t = self.float_arg(&[5, 3]);
                let i = self.ints(&[2, 2]);
                (Op::Gather, vec![t, i])
            }
            23 => {
                let i = self.ints(&[3]);
                let u = self.float_arg(&[3, 2]);
                (Op::ScatterAdd { rows: 4 }, vec![i, u])
            }
            24 => {
                let i = self.ints(&[3]);
                (
                    Op::OneHot {
                        depth: 4,
                        dtype: DType::ALL[self.rng.below(DType::ALL.len())],
                    },
                    vec![i],
                )
            }
            25 => {
                let s = self.arg(TensorType::new(DType::I32, []));
                let dims = self.rng.dims(2);
                let dtype = if self.rng.chance(0.5) {
                    DType::F32
                } else {
                    DType::F64
                };
                (
                    Op::RandomUniform {
                        shape: Shape::new(dims),
                        dtype,
                        salt: self.rng.bits() as u32,
                    },
                    vec![s],
                )
            }
            26 => match self.scan() {
                Some(scan) => scan,
                None => return,
            },
            27 => (Op::AllReduce, vec![self.float_node()]),
            _ => {
                let a = self.float_node();
                let b = self.like(a);
                let c = self.like(a);
                (Op::Fma, vec![a, b, c])
            }
        };
        if let Ok(id) = self.g.add(op, &operands)
            && self.rng.chance(0.15)
        {
            let names = ["h", "pre act", "quote\"d", "layer.1", "ü"];
            let name = names[self.rng.below(names.len())];
            self.g.set_node_name(id, name);
        }
    }
}

impl Gen {
    /// A loop over a random body (itself a random graph, loops included up to two
    /// levels): carry `h` of an existing node's type, one `xs` of that element type,
    /// and the body's other arguments as constants.
    fn scan(&mut self) -> Option<(Op, Vec<NodeId>)> {
        if self.depth >= 2 {
            return None;
        }
        let h0 = self.float_node();
        let ty = self.g.node(h0).ty.clone();
        let mut body = Gen {
            rng: Box::new(Rng(self.rng.bits() | 1)),
            g: Graph::new(format!("body{}", self.depth)),
            args: 0,
            depth: self.depth + 1,
        };
        let h = body.arg(ty.clone());
        let x = body.arg(ty.clone());
        for _ in 0..4 {
            let k = body.rng.below(FAMILIES);
            body.propose(k);
        }
        let h2 = body.g.add(Op::Binary(BinaryOp::Add), &[h, x]).ok()?;
        let newest = body.g.node_ids().last()?;
        body.g.output(h2, Some("h"));
        body.g.output(newest, None);
        let length = [0, 1, 3][self.rng.below(3)];
        let mut stacked = vec![length];
        stacked.extend_from_slice(ty.shape.dims());
        let xs = self.arg(TensorType::new(ty.dtype, stacked));
        let mut operands = vec![h0, xs];
        for &a in &body.g.args()[2..] {
            let t = body.g.node(a).ty.clone();
            operands.push(self.arg(t));
        }
        let op = Op::Scan(Scan {
            body: Body(Arc::new(body.g)),
            carries: 1,
            xs: 1,
            length,
            reverse: self.rng.chance(0.5),
            result: self.rng.below(2),
        });
        Some((op, operands))
    }
}

const FAMILIES: usize = 29;

/// The random valid graph of `seed` (12 proposals, zero to three outputs).
pub fn random_graph(seed: u64) -> Graph {
    let name = if seed.is_multiple_of(3) {
        "random graph"
    } else {
        "random"
    };
    random_graph_with(Box::new(Rng(seed | 1)), name)
}

/// The random valid graph called `name` that the choices of `draw` make, e.g. a
/// [`crate::Recipe`] proptest shrinks (loop bodies draw from a generator seeded by
/// one choice).
pub fn random_graph_with(draw: Box<dyn Draw>, name: &str) -> Graph {
    let mut builder = Gen {
        rng: draw,
        g: Graph::new(name),
        args: 0,
        depth: 0,
    };
    for _ in 0..12 {
        let k = builder.rng.below(FAMILIES);
        builder.propose(k);
    }
    // Zero to three outputs, mostly the newest nodes, sometimes any node (an
    // argument, or one node twice); named plainly, with quotes, or not at all.
    let ids: Vec<NodeId> = builder.g.node_ids().collect();
    let count = [0, 1, 2, 3, 3, 3][builder.rng.below(6)];
    for i in 0..count.min(ids.len()) {
        let n = if builder.rng.chance(0.8) {
            ids[ids.len() - 1 - i]
        } else {
            ids[builder.rng.below(ids.len())]
        };
        let name = match builder.rng.below(3) {
            0 => None,
            1 => Some(format!("out{i}")),
            _ => Some(format!("loss value {i}")),
        };
        builder.g.output(n, name.as_deref());
    }
    builder.g
}

/// `ty` with f32 widened to f64.
fn widen(ty: &TensorType) -> TensorType {
    match ty.dtype {
        DType::F32 => TensorType::new(DType::F64, ty.shape.clone()),
        _ => ty.clone(),
    }
}

pub fn widen_dtype(d: DType) -> DType {
    if d == DType::F32 { DType::F64 } else { d }
}

/// `g` with every f32 value computed in f64 (arguments, literals, casts to f32,
/// `one_hot` results, loop bodies); `random_uniform` keeps its f32 draws, widened
/// after, so both graphs see the same random numbers. Arguments keep their order.
pub fn twin(g: &Graph) -> Graph {
    widened(g, None)
}

/// The f32 unit roundoff, 2^-24: the largest relative error of one rounding.
pub const F32_ROUNDOFF: f64 = 1.0 / 16_777_216.0;

/// [`twin`] with f32 rounding simulated: every value that is f32 in `g`
/// (arguments included, loop bodies too) is multiplied, element by element, by
/// a random factor in `1 ± 2^-24` ([`F32_ROUNDOFF`]), drawn from `rng`.
///
/// Running a few of these shows what rounding *can* make of the graph
/// (Monte Carlo arithmetic): a well-conditioned output barely moves, one where
/// huge terms cancel, or where a comparison or a `max` sits on a tie, moves by
/// as much as any f32 evaluation order may ([`accepted_under_rounding`]).
pub fn rounding_twin(g: &Graph, rng: &mut Rng) -> Graph {
    widened(g, Some(rng))
}

fn widened(g: &Graph, mut rounding: Option<&mut Rng>) -> Graph {
    let mut out = Graph::new(g.name());
    let mut map: HashMap<NodeId, NodeId> = HashMap::new();
    for &a in g.args() {
        let node = g.node(a);
        let name = node.name.clone().unwrap_or_default();
        let id = match node.op {
            Op::Param => out.param(&name, widen(&node.ty)),
            _ => out.input(&name, widen(&node.ty)),
        }
        .expect("distinct argument names");
        let id = rounded(&mut out, id, &node.ty, rounding.as_deref_mut());
        map.insert(a, id);
    }
    for id in g.topo_order().expect("valid graph") {
        if map.contains_key(&id) {
            continue;
        }
        let node = g.node(id);
        let operands: Vec<NodeId> = g.operands(id).iter().map(|o| map[o]).collect();
        let new = match &node.op {
            Op::Const(t) => out.constant(t.cast(widen_dtype(t.dtype()))),
            Op::RandomUniform {
                dtype: DType::F32, ..
            } => {
                let r = out.add(node.op.clone(), &operands).expect("as in g");
                out.add(Op::Cast(DType::F64), &[r]).expect("float to f64")
            }
            op => {
                let op = match op {
                    Op::Cast(to) => Op::Cast(widen_dtype(*to)),
                    Op::OneHot { depth, dtype } => Op::OneHot {
                        depth: *depth,
                        dtype: widen_dtype(*dtype),
                    },
                    Op::Scan(s) => {
                        let body = widened(&s.body.0, rounding.as_deref_mut());
                        Op::Scan(Scan {
                            body: kiln_ir::Body(Arc::new(body)),
                            ..s.clone()
                        })
                    }
                    other => other.clone(),
                };
                let new = out
                    .add(op, &operands)
                    .unwrap_or_else(|e| panic!("the f64 twin of %{}: {e}\n{g}", id.index()));
                // A literal is exact; every computed value is rounded once.
                rounded(&mut out, new, &node.ty, rounding.as_deref_mut())
            }
        };
        map.insert(id, new);
    }
    for o in g.outputs() {
        out.output(map[&o.node], o.name.as_deref());
    }
    out
}

/// `node` (a value of the twin) times a fresh factor in 1 ± 2^-24 where `ty`, its
/// type in the original graph, is f32 and rounding is simulated.
fn rounded(out: &mut Graph, node: NodeId, ty: &TensorType, rounding: Option<&mut Rng>) -> NodeId {
    match rounding {
        Some(rng) if ty.dtype == DType::F32 => {
            let factors =
                HostTensor::from_fn(&widen(ty), |_| 1.0 + F32_ROUNDOFF * rng.uniform(-1.0, 1.0));
            let factors = out.constant(factors);
            out.add(Op::Binary(BinaryOp::Mul), &[node, factors])
                .expect("same type")
        }
        _ => node,
    }
}

/// The differential oracle's judgement of a compiled f32 element `got`, given
/// the f32 interpreter's value `f32v` and the f64 twin's `f64v` ([`twin`]):
/// accepted when it agrees with the f32 interpreter (64 ulps, or 1e-4 relative
/// to `max(|x|, 1)`), or is no further from the f64 value than 4 times the f32
/// interpreter's own error plus 1e-5 relative, so that only errors beyond what
/// f32 rounding makes of the graph count. Where the f32 interpreter is not finite
/// but the f64 value is (f32 overflowed), its error is unbounded and any value
/// is accepted; where the f64 value is not finite, `got` must have its class
/// (NaN, +inf, -inf) or the f32 interpreter's. Integers and bools must equal
/// either value.
pub fn accepted(got: f64, f32v: f64, f64v: f64, dtype: DType) -> bool {
    if !dtype.is_float() {
        return got == f32v || got == f64v;
    }
    if agrees(got, f32v, dtype, 64, 1e-4) {
        return true;
    }
    let class = |x: f64| {
        (
            x.is_nan(),
            x.is_infinite() && x > 0.0,
            x.is_infinite() && x < 0.0,
        )
    };
    if !f64v.is_finite() {
        return class(got) == class(f64v) || class(got) == class(f32v);
    }
    if !f32v.is_finite() {
        return true;
    }
    got.is_finite() && (got - f64v).abs() <= 4.0 * (f32v - f64v).abs() + 1e-5 * f64v.abs().max(1.0)
}

/// The oracle's second judgement, for an element [`accepted`] refuses: `got`
/// against the f64 twin's `f64v` and the same element of a few
/// [`rounding_twin`]s (`rounded`). Accepted when it is within 16 times the
/// largest distance of a rounded run from `f64v` (rounding moves this output that
/// much, so another legitimate f32 order may move it 16 times more), or where it is
/// not finite, when some rounded run has its class (NaN, +inf, -inf). A rounded
/// run that is not finite where `f64v` is means the output sits at an overflow
/// or a pole: any value is accepted; a finite value where `f64v` is not finite
/// needs a finite rounded run. An integer or bool must equal a rounded run's value
/// (an `argmax` on a near tie, a comparison of nearly equal floats).
pub fn accepted_under_rounding(got: f64, f64v: f64, rounded: &[f64], dtype: DType) -> bool {
    if !dtype.is_float() {
        return rounded.contains(&got);
    }
    let class = |x: f64| (x.is_nan(), x == f64::INFINITY, x == f64::NEG_INFINITY);
    if !got.is_finite() {
        return rounded.iter().any(|&r| class(r) == class(got));
    }
    if !f64v.is_finite() || rounded.iter().any(|r| !r.is_finite()) {
        return f64v.is_finite() || rounded.iter().any(|r| r.is_finite());
    }
    let spread = rounded.iter().map(|r| (r - f64v).abs()).fold(0.0, f64::max);
    (got - f64v).abs() <= 16.0 * spread
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a - b` and `a + b` on `a = [1e8, 3]`, `b = [1e8 + 8, 5]`: the twin's
    /// answers and four rounded runs of each element.
    fn runs() -> (Vec<f64>, Vec<Vec<f64>>) {
        let mut g = Graph::new("cancel");
        let ty = TensorType::new(DType::F32, [2]);
        let a = g.input("a", ty.clone()).unwrap();
        let b = g.input("b", ty).unwrap();
        let d = g.add(Op::Binary(BinaryOp::Sub), &[a, b]).unwrap();
        let s = g.add(Op::Binary(BinaryOp::Add), &[a, b]).unwrap();
        g.output(d, Some("d"));
        g.output(s, Some("s"));
        let args = [
            HostTensor::from_f64([2], vec![1e8, 3.0]).unwrap(),
            HostTensor::from_f64([2], vec![1e8 + 8.0, 5.0]).unwrap(),
        ];
        let flat = |outs: Vec<HostTensor>| -> Vec<f64> {
            outs.iter().flat_map(|t| t.to_f64_vec()).collect()
        };
        let truth = flat(kiln_ir::interp::run(&twin(&g), &args).unwrap());
        let mut rng = Rng::new(1);
        let rounded: Vec<Vec<f64>> = (0..4)
            .map(|_| flat(kiln_ir::interp::run(&rounding_twin(&g, &mut rng), &args).unwrap()))
            .collect();
        (truth, rounded)
    }

    #[test]
    fn rounding_moves_a_cancelling_output_and_barely_a_benign_one() {
        let (truth, rounded) = runs();
        assert_eq!(truth, [-8.0, -2.0, 2e8 + 8.0, 8.0]);
        let element = |i: usize| -> Vec<f64> { rounded.iter().map(|r| r[i]).collect() };
        // 1e8 - (1e8 + 8): each operand moves by up to 6 in f32 rounding.
        let spread = |i: usize| {
            element(i)
                .iter()
                .map(|r| (r - truth[i]).abs())
                .fold(0.0, f64::max)
        };
        assert!(spread(0) > 0.5 && spread(0) < 12.0, "{}", spread(0));
        assert!(spread(1) > 0.0 && spread(1) < 1e-6, "{}", spread(1));
        // An error rounding can make is accepted, a larger one is not.
        assert!(accepted_under_rounding(
            -8.0 + spread(0),
            -8.0,
            &element(0),
            DType::F32
        ));
        assert!(!accepted_under_rounding(
            -8.0 + 1e3,
            -8.0,
            &element(0),
            DType::F32
        ));
        assert!(accepted_under_rounding(-2.0, -2.0, &element(1), DType::F32));
        assert!(!accepted_under_rounding(
            -2.0 + 1e-3,
            -2.0,
            &element(1),
            DType::F32
        ));
        // Non-finite values need a rounded run of their class.
        assert!(!accepted_under_rounding(
            f64::NAN,
            -2.0,
            &element(1),
            DType::F32
        ));
        let at_overflow = [f64::INFINITY, 3e38];
        assert!(accepted_under_rounding(
            f64::INFINITY,
            3e38,
            &at_overflow,
            DType::F32
        ));
        assert!(!accepted_under_rounding(
            f64::NEG_INFINITY,
            3e38,
            &at_overflow,
            DType::F32
        ));
    }

    #[test]
    fn integers_must_equal_a_rounded_run() {
        assert!(accepted_under_rounding(3.0, 2.0, &[2.0, 3.0], DType::I32));
        assert!(!accepted_under_rounding(4.0, 2.0, &[2.0, 3.0], DType::I32));
    }
}
