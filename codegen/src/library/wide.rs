//! Elementwise f32 loop kernels with transcendental functions, run natively at the
//! host's full vector width.
//!
//! Cranelift's x86-64 backend emits 128-bit vectors and allocates 16 of them, so a
//! fused kernel such as an LSTM cell (three sigmoids and two tanhs per element)
//! runs four lanes at a time with constants spilled between the polynomials. Where
//! the host has AVX2 or AVX-512 with FMA, such a kernel is instead evaluated here:
//! one expression at a time over blocks of [`BLOCK`] elements of its last loop,
//! each a loop that LLVM vectorizes to 8 or 16 lanes, with the block's values kept
//! in a small scratch that stays in L1.
//!
//! The transcendental functions are the very algorithms the JIT emits (the
//! generic ones of [`crate::lower::approx`], instantiated on `f32`), with fused
//! multiply-adds as the JIT uses them on such hosts, and every other operation is
//! one IEEE operation in both: the results are bit for bit those of the
//! Cranelift-compiled kernel (NaN payloads aside).

use std::cell::RefCell;
use std::ops::Range;

use kiln_ir::kernel::{BufferId, Expr, ExprNode, KernelProgram, LoopKernel};
use kiln_ir::{BinaryOp, DType, UnaryOp};

use super::thin::{Isa, isa};
use crate::lower::approx::{self, MulAdd, Native};
use crate::parallel::{self, Workers};

/// Elements of the last loop evaluated together: each expression's block is 512
/// bytes, so the scratch of a kernel of some 30 expressions stays in L1.
pub const BLOCK: usize = 128;

/// Kernels with fewer elements than this run on one thread.
const SPLIT_MIN_ELEMENTS: usize = 1 << 15;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Unary {
    Neg,
    Abs,
    Sqrt,
    Recip,
    Exp,
    Log,
    Tanh,
    Sigmoid,
    Erf,
}

impl Unary {
    fn of(op: UnaryOp) -> Option<Unary> {
        Some(match op {
            UnaryOp::Neg => Unary::Neg,
            UnaryOp::Abs => Unary::Abs,
            UnaryOp::Sqrt => Unary::Sqrt,
            UnaryOp::Recip => Unary::Recip,
            UnaryOp::Exp => Unary::Exp,
            UnaryOp::Log => Unary::Log,
            UnaryOp::Tanh => Unary::Tanh,
            UnaryOp::Sigmoid => Unary::Sigmoid,
            UnaryOp::Erf => Unary::Erf,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Binary {
    Add,
    Sub,
    Mul,
    Div,
}

/// One expression; operands are earlier expressions by position.
#[derive(Clone, Debug, PartialEq)]
enum Node {
    /// Element `offset + Σ strides[d] · i[d]` of `buffer`.
    Load {
        buffer: BufferId,
        offset: usize,
        strides: Vec<usize>,
    },
    Const(f32),
    Unary(Unary, usize),
    Binary(Binary, usize, usize),
    Fma(usize, usize, usize),
}

/// A loop kernel in the form this module runs (see [`WideLoop::new`]).
#[derive(Clone, Debug, PartialEq)]
pub struct WideLoop {
    /// The loop extents, adjacent loops that every load walks as one merged.
    dims: Vec<usize>,
    nodes: Vec<Node>,
    /// Where each expression is computed: straight into the first buffer that
    /// stores it (written contiguously over `dims`), else into the scratch.
    dest: Vec<Option<BufferId>>,
    /// The other stores: expression and buffer.
    copies: Vec<(usize, BufferId)>,
}

impl WideLoop {
    /// The kernel in wide form, if this host and the kernel suit it: AVX2 or
    /// AVX-512 with FMA, an elementwise kernel (no reductions) of f32 loads,
    /// constants, arithmetic, `fma` and unary functions, at least one of them
    /// transcendental (without one the JIT's loop is as fast: it waits on memory).
    pub fn new(program: &KernelProgram, k: &LoopKernel) -> Option<WideLoop> {
        if !matches!(isa(), Isa::Avx512 | Isa::Avx2) || MulAdd::host() != MulAdd::Fused {
            return None;
        }
        // Checked first, before anything is built: most kernels have none.
        let transcendental = |e: &ExprNode| {
            matches!(
                e.expr,
                Expr::Unary(
                    UnaryOp::Exp | UnaryOp::Log | UnaryOp::Tanh | UnaryOp::Sigmoid | UnaryOp::Erf,
                    _
                )
            )
        };
        if k.reduce.is_some() || !k.rows.is_empty() || !k.exprs.iter().any(transcendental) {
            return None;
        }
        let stores: Vec<(usize, BufferId)> = std::iter::once((k.value.index(), k.out))
            .chain(k.also.iter().map(|&(e, b)| (e.index(), b)))
            .collect();
        let mut dest = vec![None; k.exprs.len()];
        let mut copies = Vec::new();
        for &(e, b) in &stores {
            match dest[e] {
                None => dest[e] = Some(b),
                Some(_) => copies.push((e, b)),
            }
        }
        if stores
            .iter()
            .any(|&(_, b)| program.buffer(b).ty.dtype != DType::F32)
        {
            return None;
        }
        let mut nodes = Vec::with_capacity(k.exprs.len());
        for e in &k.exprs {
            if e.dtype != DType::F32 {
                return None;
            }
            nodes.push(match &e.expr {
                Expr::Load(a) => Node::Load {
                    buffer: a.buffer,
                    offset: a.offset,
                    strides: a.strides.clone(),
                },
                Expr::Const(v) => Node::Const(*v as f32),
                Expr::Unary(op, x) => Node::Unary(Unary::of(*op)?, x.index()),
                Expr::Binary(op, a, b) => {
                    let op = match op {
                        BinaryOp::Add => Binary::Add,
                        BinaryOp::Sub => Binary::Sub,
                        BinaryOp::Mul => Binary::Mul,
                        BinaryOp::Div => Binary::Div,
                        _ => return None,
                    };
                    Node::Binary(op, a.index(), b.index())
                }
                Expr::Fma(a, b, c) => Node::Fma(a.index(), b.index(), c.index()),
                _ => return None,
            });
        }
        let mut w = WideLoop {
            dims: if k.dims.is_empty() {
                vec![1]
            } else {
                k.dims.clone()
            },
            nodes,
            dest,
            copies,
        };
        if k.dims.is_empty() {
            for n in &mut w.nodes {
                if let Node::Load { strides, .. } = n {
                    strides.push(0);
                }
            }
        }
        w.merge_loops();
        Some(w)
    }

    /// Merges loop `d` into loop `d + 1` wherever every load steps through the
    /// pair as through one loop (the output always does: it is contiguous), so the
    /// last loop, along which blocks run, is as long as it can be.
    fn merge_loops(&mut self) {
        let mut d = self.dims.len() - 1;
        while d > 0 {
            let inner = self.dims[d];
            let mergeable = self.nodes.iter().all(|n| match n {
                Node::Load { strides, .. } => strides[d - 1] == strides[d] * inner,
                _ => true,
            });
            if mergeable {
                self.dims[d - 1] *= inner;
                self.dims.remove(d);
                for n in &mut self.nodes {
                    if let Node::Load { strides, .. } = n {
                        strides.remove(d - 1);
                    }
                }
            }
            d -= 1;
        }
    }

    /// Runs the kernel over the buffer table `bufs`, split across `workers` when
    /// it is large.
    ///
    /// # Safety
    /// `bufs` must be the buffer table of the program the kernel came from: every
    /// buffer live and holding f32 elements at each index the kernel addresses,
    /// no stored buffer overlapping a loaded one (the memory plan never places a
    /// kernel's output over its inputs).
    pub unsafe fn run(&self, bufs: *const *mut u8, workers: Option<&Workers>) {
        let last = *self.dims.last().expect("at least one loop");
        let numel: usize = self.dims.iter().product();
        if numel == 0 {
            return;
        }
        let items = numel / last * last.div_ceil(BLOCK);
        let table = bufs as usize;
        // SAFETY: forwarded from the caller; items of different ranges write
        // disjoint elements.
        let part = |r: Range<usize>| unsafe { self.run_items(table as *const *mut u8, r) };
        if numel < SPLIT_MIN_ELEMENTS {
            part(0..items);
        } else {
            parallel::run(
                workers,
                parallel::ranges(items, parallel::threads(workers)),
                part,
            );
        }
    }

    /// Runs blocks `items` (row-major over the outer loops, then the blocks of
    /// the last loop), on the widest vectors the host has.
    ///
    /// # Safety
    /// As for [`WideLoop::run`].
    unsafe fn run_items(&self, bufs: *const *mut u8, items: Range<usize>) {
        SCRATCH.with(|s| {
            let s = &mut *s.borrow_mut();
            s.vals.resize(self.nodes.len() * BLOCK, 0.0);
            s.views.resize(self.nodes.len(), std::ptr::null());
            // SAFETY: `new` admits the kernel only where one of these ISAs is
            // present; the rest is forwarded from the caller.
            unsafe {
                match isa() {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => items_avx512(self, bufs, items, s),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => items_avx2(self, bufs, items, s),
                    _ => items_generic(self, bufs, items, s),
                }
            }
        });
    }
}

/// What the machine-code listing of a wide kernel says instead.
impl std::fmt::Display for WideLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lanes = match isa() {
            Isa::Avx512 => 16,
            _ => 8,
        };
        writeln!(
            f,
            "; runs natively on {lanes}-lane vectors (kiln_codegen::library::wide), not as Cranelift code"
        )?;
        writeln!(
            f,
            "; loops {:?}, blocks of {BLOCK} along the last",
            self.dims
        )?;
        let stores = self.dest.iter().flatten().count() + self.copies.len();
        writeln!(f, "; {} expressions, {stores} stored", self.nodes.len())
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch { vals: Vec::new(), views: Vec::new() })
    };
}

/// Working memory of one thread: a block of every expression of the kernel being
/// run, and where each expression's block is.
struct Scratch {
    vals: Vec<f32>,
    views: Vec<*const f32>,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn items_avx512(w: &WideLoop, bufs: *const *mut u8, items: Range<usize>, s: &mut Scratch) {
    // SAFETY: forwarded from the caller.
    unsafe { items_generic(w, bufs, items, s) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn items_avx2(w: &WideLoop, bufs: *const *mut u8, items: Range<usize>, s: &mut Scratch) {
    // SAFETY: forwarded from the caller.
    unsafe { items_generic(w, bufs, items, s) }
}

/// The body of [`WideLoop::run_items`], compiled once per ISA.
///
/// Each expression's block is computed into the first buffer that stores it, or
/// else into its slot of the scratch; a contiguous load that is not stored is read
/// in place. `views[n]` is where the block of expression `n` is. Writing stored
/// values before the last load of the block is sound because a kernel never writes
/// over its own inputs (the memory plan keeps them apart).
#[inline(always)]
unsafe fn items_generic(w: &WideLoop, bufs: *const *mut u8, items: Range<usize>, s: &mut Scratch) {
    let outer_dims = &w.dims[..w.dims.len() - 1];
    let last = w.dims[w.dims.len() - 1];
    let per_row = last.div_ceil(BLOCK);
    let slots = s.vals.as_mut_ptr();
    let views = &mut s.views;
    // SAFETY (for the buffer pointers below): guaranteed by the caller.
    let base = |b: BufferId| unsafe { *bufs.add(b.index()) as *mut f32 };
    for item in items {
        let (row, j0) = (item / per_row, item % per_row * BLOCK);
        let len = (last - j0).min(BLOCK);
        for (n, node) in w.nodes.iter().enumerate() {
            // SAFETY: slot n is BLOCK elements of the scratch, disjoint from the
            // other slots and from the buffers; a stored block lies inside its
            // buffer (contiguous over the loops), which no load reads; `views`
            // of earlier expressions address `len` readable elements.
            let (out, arg) = unsafe {
                let at = match w.dest[n] {
                    Some(b) => base(b).add(row * last + j0),
                    None => slots.add(n * BLOCK),
                };
                (std::slice::from_raw_parts_mut(at, len), |e: usize| {
                    std::slice::from_raw_parts(views[e], len)
                })
            };
            let mut view = out.as_ptr();
            match node {
                Node::Load {
                    buffer,
                    offset,
                    strides,
                } => {
                    // The element offset of (row's outer indices, j0).
                    let step = strides[outer_dims.len()];
                    let mut at = offset + step * j0;
                    let mut r = row;
                    for (d, &extent) in outer_dims.iter().enumerate().rev() {
                        at += strides[d] * (r % extent);
                        r /= extent;
                    }
                    // SAFETY: the kernel's accesses lie inside its buffers.
                    unsafe {
                        let src = base(*buffer).add(at);
                        match step {
                            0 => out.fill(*src),
                            1 if w.dest[n].is_none() => view = src,
                            1 => out.copy_from_slice(std::slice::from_raw_parts(src, len)),
                            _ => {
                                for (j, o) in out.iter_mut().enumerate() {
                                    *o = *src.add(j * step);
                                }
                            }
                        }
                    }
                }
                Node::Const(c) => out.fill(*c),
                Node::Unary(op, a) => unary(*op, arg(*a), out),
                Node::Binary(op, a, b) => {
                    let (a, b) = (arg(*a), arg(*b));
                    // One loop per operation (a macro rather than closures, so
                    // that each is inlined here and vectorized).
                    macro_rules! zip {
                        ($x:ident, $y:ident => $e:expr) => {
                            for ((o, &$x), &$y) in out.iter_mut().zip(a).zip(b) {
                                *o = $e;
                            }
                        };
                    }
                    match op {
                        Binary::Add => zip!(x, y => x + y),
                        Binary::Sub => zip!(x, y => x - y),
                        Binary::Mul => zip!(x, y => x * y),
                        Binary::Div => zip!(x, y => x / y),
                    }
                }
                Node::Fma(a, b, c) => {
                    let (a, b, c) = (arg(*a), arg(*b), arg(*c));
                    for (((o, &x), &y), &z) in out.iter_mut().zip(a).zip(b).zip(c) {
                        *o = x.mul_add(y, z);
                    }
                }
            }
            views[n] = view;
        }
        for &(n, buffer) in &w.copies {
            // SAFETY: as for the first store, in another buffer.
            unsafe {
                let dst = base(buffer).add(row * last + j0);
                std::ptr::copy_nonoverlapping(views[n], dst, len);
            }
        }
    }
}

/// `out[j] = op(a[j])`: one loop per function, each vectorized.
#[inline(always)]
fn unary(op: Unary, a: &[f32], out: &mut [f32]) {
    let m = MulAdd::Fused;
    macro_rules! map {
        ($x:ident => $e:expr) => {
            for (o, &$x) in out.iter_mut().zip(a) {
                *o = $e;
            }
        };
    }
    match op {
        Unary::Neg => map!(x => -x),
        Unary::Abs => map!(x => x.abs()),
        Unary::Sqrt => map!(x => x.sqrt()),
        Unary::Recip => map!(x => 1.0 / x),
        Unary::Exp => map!(x => approx::exp_of(&mut Native, m, x)),
        Unary::Log => map!(x => approx::log_of(&mut Native, m, x)),
        Unary::Tanh => map!(x => approx::tanh_of(&mut Native, m, x)),
        Unary::Sigmoid => map!(x => approx::sigmoid_of(&mut Native, m, x)),
        Unary::Erf => map!(x => approx::erf_of(&mut Native, m, x)),
    }
}
