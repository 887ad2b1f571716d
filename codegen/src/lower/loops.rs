//! Loop nests: one function per loop kernel over a range of its outermost loop,
//! `f32x4` inner loops with a scalar tail where the body allows, reductions over
//! the innermost loops (on four lanes of partial results when vectorizable) or, in
//! column form, over rows accumulated into the output, row reductions computed per
//! outer index, and the choice of splitting a kernel across threads.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{BlockArg, Function, InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::JITModule;
use cranelift_module::Module;
use kiln_ir::kernel::{
    Access, Affine, BufferId, Expr, ExprId, ExprNode, Kernel, KernelProgram, LoopKernel,
};
use kiln_ir::{DType, ReduceOp};

use super::expr::exprs_vectorizable;
use super::{CodegenError, Imports, scalar_type};

/// How the entry runs a loop kernel.
#[derive(Clone, Copy, Debug)]
pub(super) enum Split {
    /// In one call over its outermost loop `0..n`.
    Whole { n: usize },
    /// Through `kiln_parallel`, its outermost loop `0..n` cut into ranges whose
    /// bounds are multiples of `align` (the vector width when that loop is the
    /// vectorized one, so every element takes the same path whatever the cut).
    Rows { n: usize, align: usize },
}

/// Below this many innermost iterations a loop kernel stays on one thread.
const SPLIT_MIN_ITERATIONS: usize = 1 << 15;

/// Whether `k` is worth splitting across threads: its outermost loop is over an
/// output dimension (every output element is then computed by one thread in the
/// same order), and it is long.
pub(super) fn split_of(k: &LoopKernel) -> Split {
    let n = k.dims.first().copied().unwrap_or(1);
    let work: usize = k.dims.iter().product();
    if k.outer_dims().is_empty() || n < 2 || work < SPLIT_MIN_ITERATIONS {
        return Split::Whole { n };
    }
    let vector_outer = k.dims.len() == 1 && k.reduce.is_none();
    Split::Rows {
        n,
        align: if vector_outer { 4 } else { 1 },
    }
}

/// True if the innermost loop of `k` can run on `f32x4` lanes.
///
/// For a reduction this is the innermost reduced loop: it then keeps `f32x4`
/// partial results and combines the lanes at the end (float sums are reassociated,
/// as in every vectorizing compiler; max and min are unaffected).
fn vectorizable(k: &LoopKernel, program: &KernelProgram) -> bool {
    let stores_f32 = std::iter::once(k.out)
        .chain(k.also.iter().map(|&(_, b)| b))
        .all(|b| program.buffer(b).ty.dtype == DType::F32);
    if !stores_f32 {
        return false;
    }
    let last = k.dims.len().wrapping_sub(1);
    if k.dims.is_empty() || k.dims[last] < 4 {
        return false;
    }
    exprs_vectorizable(&k.exprs, last)
}

/// Whether `k` runs in column form ([`LoopEmitter::column_reduction`]): an f32
/// reduction whose innermost reduced loop is strided in some operand while its
/// innermost output loop is contiguous (or broadcast) in all of them, such as a
/// bias gradient (a sum over a matrix's rows). Reducing along the strided loop
/// reads one element per cache line; walking rows accumulates whole vectors.
fn column_form(k: &LoopKernel, program: &KernelProgram) -> bool {
    let outer = k.outer_dims().len();
    if k.reduce.is_none()
        || outer == 0
        || !k.rows.is_empty()
        || !k.also.is_empty()
        || program.buffer(k.out).ty.dtype != DType::F32
    {
        return false;
    }
    let last = k.dims.len() - 1;
    let strided = k
        .exprs
        .iter()
        .any(|e| matches!(&e.expr, Expr::Load(a) if a.strides[last] > 1));
    strided && k.dims[outer - 1] >= 4 && exprs_vectorizable(&k.exprs, outer - 1)
}

/// The identity a `kind` reduction of `dtype` values starts from.
fn identity(kind: ReduceOp, dtype: DType) -> f64 {
    match (kind, dtype.is_float()) {
        (ReduceOp::Sum | ReduceOp::Mean, _) => 0.0,
        (ReduceOp::Max, true) => f64::NEG_INFINITY,
        (ReduceOp::Min, true) => f64::INFINITY,
        (ReduceOp::Max, false) => i32::MIN as f64,
        (ReduceOp::Min, false) => i32::MAX as f64,
    }
}

/// Emits one loop kernel's function body ([`expr`](super::expr) adds the
/// expression lowering).
pub(super) struct LoopEmitter<'a, 'b> {
    pub(super) b: FunctionBuilder<'b>,
    pub(super) module: &'a mut JITModule,
    pub(super) imports: &'a Imports,
    program: &'a KernelProgram,
    pub(super) kernel: &'a LoopKernel,
    bases: HashMap<BufferId, Value>,
    pub(super) flags: MemFlagsData,
    /// The kernel's row reductions for the current outer indices.
    pub(super) rows: Vec<Value>,
    /// The range of the outermost loop this call runs (function parameters).
    range: (Value, Value),
    /// The loop whose consecutive iterations are the `f32x4` lanes: the innermost
    /// one, or the innermost output loop in column form.
    pub(super) lane_axis: usize,
}

pub(super) fn emit_loop_kernel(
    module: &mut JITModule,
    imports: &Imports,
    func: &mut Function,
    fctx: &mut FunctionBuilderContext,
    program: &KernelProgram,
    kernel: &LoopKernel,
) -> Result<(), CodegenError> {
    if let Some(r) = kernel.reduce {
        let count: usize = kernel.dims[kernel.dims.len() - r.count..].iter().product();
        if r.kind == ReduceOp::Mean
            && count == 0
            && program.buffer(kernel.out).ty.dtype == DType::I32
        {
            return Err(CodegenError::Unsupported(
                "integer mean over an empty axis".into(),
            ));
        }
    }
    let mut b = FunctionBuilder::new(func, fctx);
    let block = b.create_block();
    b.append_block_params_for_function_params(block);
    b.switch_to_block(block);
    let (bufs, lo, hi) = (
        b.block_params(block)[0],
        b.block_params(block)[1],
        b.block_params(block)[2],
    );
    // Load the base address of every buffer the kernel touches, once.
    let mut bases = HashMap::new();
    let mut touched: Vec<BufferId> = Kernel::Loop(kernel.clone()).reads();
    touched.push(kernel.out);
    touched.extend(kernel.also.iter().map(|&(_, b)| b));
    for buf in touched {
        if let std::collections::hash_map::Entry::Vacant(v) = bases.entry(buf) {
            let addr = b.ins().load(
                types::I64,
                MemFlagsData::trusted(),
                bufs,
                (buf.index() * 8) as i32,
            );
            v.insert(addr);
        }
    }
    let mut e = LoopEmitter {
        b,
        module,
        imports,
        program,
        kernel,
        bases,
        flags: MemFlagsData::new().with_notrap(),
        rows: Vec::new(),
        range: (lo, hi),
        lane_axis: kernel.dims.len().wrapping_sub(1),
    };
    if column_form(kernel, program) {
        e.lane_axis = kernel.outer_dims().len() - 1;
        e.column_reduction();
    } else {
        let mut idx = Vec::new();
        e.outer(0, &mut idx);
    }
    e.b.ins().return_(&[]);
    e.b.seal_all_blocks();
    let cfg = e.module.target_config();
    e.b.finalize(cfg);
    Ok(())
}

impl LoopEmitter<'_, '_> {
    fn iconst(&mut self, v: i64) -> Value {
        self.b.ins().iconst(types::I64, v)
    }

    /// `for i in start..n step step`, threading `carried` values through the loop;
    /// returns their final values.
    fn counted_loop(
        &mut self,
        start: usize,
        n: usize,
        step: usize,
        carried: &[(Type, Value)],
        mut body: impl FnMut(&mut Self, Value, &[Value]) -> Vec<Value>,
    ) -> Vec<Value> {
        let header = self.b.create_block();
        let body_block = self.b.create_block();
        let exit = self.b.create_block();
        self.b.append_block_param(header, types::I64);
        for &(t, _) in carried {
            self.b.append_block_param(header, t);
            self.b.append_block_param(exit, t);
        }
        let mut init = vec![BlockArg::from(self.iconst(start as i64))];
        init.extend(carried.iter().map(|&(_, v)| BlockArg::from(v)));
        self.b.ins().jump(header, &init);
        self.b.switch_to_block(header);
        let params = self.b.block_params(header).to_vec();
        let i = params[0];
        // Stop when fewer than `step` iterations are left.
        let limit = self.iconst((n + 1 - step.min(n + 1)) as i64);
        let go = self.b.ins().icmp(IntCC::UnsignedLessThan, i, limit);
        let rest: Vec<BlockArg> = params[1..].iter().map(|&v| v.into()).collect();
        self.b.ins().brif(go, body_block, &[], exit, &rest);
        self.b.switch_to_block(body_block);
        let next_carried = body(self, i, &params[1..]);
        let next = self.b.ins().iadd_imm_s(i, step as i64);
        let mut args = vec![BlockArg::from(next)];
        args.extend(next_carried.iter().map(|&v| BlockArg::from(v)));
        self.b.ins().jump(header, &args);
        self.b.switch_to_block(exit);
        self.b.block_params(exit).to_vec()
    }

    /// Emits the loops over the output dimensions from `level` on.
    fn outer(&mut self, level: usize, idx: &mut Vec<Value>) {
        let k = self.kernel;
        let outer = k.outer_dims().len();
        if level + 1 == k.dims.len() && !k.rows.is_empty() {
            self.compute_rows(idx);
        }
        if level == outer {
            match k.reduce {
                Some(_) => self.reduction(idx),
                None => self.body_and_stores(idx, 1),
            }
            return;
        }
        let n = k.dims[level];
        let innermost = level + 1 == outer && k.reduce.is_none();
        // The outermost loop runs the range this call was given.
        let (lo, hi) = if level == 0 {
            self.range
        } else {
            (self.iconst(0), self.iconst(n as i64))
        };
        if innermost && vectorizable(k, self.program) {
            let rest = self.range_loop(lo, hi, 4, |e, i| {
                idx.push(i);
                e.body_and_stores(idx, 4);
                idx.pop();
            });
            self.range_loop(rest, hi, 1, |e, i| {
                idx.push(i);
                e.body_and_stores(idx, 1);
                idx.pop();
            });
            return;
        }
        self.range_loop(lo, hi, 1, |e, i| {
            idx.push(i);
            e.outer(level + 1, idx);
            idx.pop();
        });
    }

    /// `for i in (lo..hi).step_by(step)` while a whole step fits (`i + step <= hi`);
    /// returns the first index not run.
    fn range_loop(
        &mut self,
        lo: Value,
        hi: Value,
        step: usize,
        mut body: impl FnMut(&mut Self, Value),
    ) -> Value {
        let header = self.b.create_block();
        let body_block = self.b.create_block();
        let exit = self.b.create_block();
        self.b.append_block_param(header, types::I64);
        self.b.append_block_param(exit, types::I64);
        self.b.ins().jump(header, &[BlockArg::from(lo)]);
        self.b.switch_to_block(header);
        let i = self.b.block_params(header)[0];
        let end = self.b.ins().iadd_imm_s(i, step as i64);
        let go = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, end, hi);
        self.b
            .ins()
            .brif(go, body_block, &[], exit, &[BlockArg::from(i)]);
        self.b.switch_to_block(body_block);
        body(self, i);
        self.b.ins().jump(header, &[BlockArg::from(end)]);
        self.b.switch_to_block(exit);
        self.b.block_params(exit)[0]
    }

    /// Emits the reduced loops for the current output element and stores the result.
    fn reduction(&mut self, idx: &mut Vec<Value>) {
        let k = self.kernel;
        let r = k.reduce.expect("reduction kernel");
        let dtype = self.program.buffer(k.out).ty.dtype;
        let t = scalar_type(dtype);
        let acc0 = self.constant(dtype, identity(r.kind, dtype), 1);
        let acc = self.reduce_level(idx, k.outer_dims().len(), (t, acc0), r.kind, dtype);
        let count: usize = k.dims[k.outer_dims().len()..].iter().product();
        let v = self.finish(r.kind, dtype, acc, count);
        self.store(idx, v);
    }

    fn reduce_level(
        &mut self,
        idx: &mut Vec<Value>,
        level: usize,
        acc: (Type, Value),
        kind: ReduceOp,
        dtype: DType,
    ) -> Value {
        let k = self.kernel;
        if level == k.dims.len() {
            let x = self.body(idx, 1);
            return self.combine(kind, dtype, acc.1, x);
        }
        let n = k.dims[level];
        if level + 1 == k.dims.len() {
            let vector = vectorizable(k, self.program);
            return self.reduce_last(&k.exprs, k.value, n, kind, dtype, acc, idx, vector);
        }
        let out = self.counted_loop(0, n, 1, &[acc], |e, i, carried| {
            idx.push(i);
            let a = e.reduce_level(idx, level + 1, (acc.0, carried[0]), kind, dtype);
            idx.pop();
            vec![a]
        });
        out[0]
    }

    /// Column form (see [`column_form`]): `out = identity`, then for each index of
    /// the reduced loops (outermost here, in order) `out[o] ⊕= value(o, r)` over
    /// the output loops, the innermost on `f32x4` lanes; then a mean's division.
    /// Each output element is reduced in the reduced loops' order whichever lanes
    /// or thread computed it, so results do not depend on the split.
    fn column_reduction(&mut self) {
        let k = self.kernel;
        let r = k.reduce.expect("column form reduces");
        let outer = k.outer_dims().len();
        let zero = self.iconst(0);
        let mut idx = vec![zero; k.dims.len()];
        let start = identity(r.kind, DType::F32);
        self.each_output(&mut idx, 0, &mut |e, idx, lanes| {
            let v = e.constant(DType::F32, start, lanes);
            e.store(idx, v);
        });
        self.each_reduced(&mut idx, outer, r.kind);
        if r.kind == ReduceOp::Mean {
            let count: f64 = k.dims[outer..].iter().product::<usize>() as f64;
            self.each_output(&mut idx, 0, &mut |e, idx, lanes| {
                let acc = e.load_out(idx, lanes);
                let c = e.constant(DType::F32, count, lanes);
                let v = e.b.ins().fdiv(acc, c);
                e.store(idx, v);
            });
        }
    }

    /// The reduced loops from `level` on, around one pass over the outputs.
    fn each_reduced(&mut self, idx: &mut Vec<Value>, level: usize, kind: ReduceOp) {
        let k = self.kernel;
        if level == k.dims.len() {
            self.each_output(idx, 0, &mut |e, idx, lanes| {
                let x = e.body(idx, lanes);
                let acc = e.load_out(idx, lanes);
                let v = e.combine(kind, DType::F32, acc, x);
                e.store(idx, v);
            });
            return;
        }
        let (lo, hi) = (self.iconst(0), self.iconst(k.dims[level] as i64));
        self.range_loop(lo, hi, 1, |e, i| {
            idx[level] = i;
            e.each_reduced(idx, level + 1, kind);
        });
    }

    /// Runs `f` at every output index of this call's range (output loops from
    /// `level` on), four lanes at a time along the innermost, then one.
    fn each_output(
        &mut self,
        idx: &mut Vec<Value>,
        level: usize,
        f: &mut dyn FnMut(&mut Self, &[Value], usize),
    ) {
        let outer = self.kernel.outer_dims().len();
        let (lo, hi) = if level == 0 {
            self.range
        } else {
            let n = self.kernel.dims[level];
            (self.iconst(0), self.iconst(n as i64))
        };
        if level + 1 < outer {
            self.range_loop(lo, hi, 1, |e, i| {
                idx[level] = i;
                e.each_output(idx, level + 1, f);
            });
            return;
        }
        let rest = self.range_loop(lo, hi, 4, |e, i| {
            idx[level] = i;
            f(e, idx, 4);
        });
        self.range_loop(rest, hi, 1, |e, i| {
            idx[level] = i;
            f(e, idx, 1);
        });
    }

    /// The output element (or four) at the output loops' indices.
    fn load_out(&mut self, idx: &[Value], lanes: usize) -> Value {
        let addr = self.out_address(self.kernel.out, idx);
        let ty = if lanes == 4 { types::F32X4 } else { types::F32 };
        self.b.ins().load(ty, self.flags, addr, 0)
    }

    /// Computes every row reduction of the kernel for the current outer indices.
    fn compute_rows(&mut self, idx: &mut Vec<Value>) {
        let k = self.kernel;
        self.rows.clear();
        let last = k.dims.len() - 1;
        for row in &k.rows {
            let dtype = row.exprs[row.value.index()].dtype;
            let acc = self.constant(dtype, identity(row.kind, dtype), 1);
            let vector =
                dtype == DType::F32 && row.len >= 4 && exprs_vectorizable(&row.exprs, last);
            let t = scalar_type(dtype);
            let v = self.reduce_last(
                &row.exprs,
                row.value,
                row.len,
                row.kind,
                dtype,
                (t, acc),
                idx,
                vector,
            );
            let v = self.finish(row.kind, dtype, v, row.len);
            self.rows.push(v);
        }
    }

    /// Reduces `list`'s value over the last loop (`n` iterations) into `acc`, on
    /// four lanes of partial results when `vector`.
    #[allow(clippy::too_many_arguments)]
    fn reduce_last(
        &mut self,
        list: &[ExprNode],
        value: ExprId,
        n: usize,
        kind: ReduceOp,
        dtype: DType,
        acc: (Type, Value),
        idx: &mut Vec<Value>,
        vector: bool,
    ) -> Value {
        if vector {
            // Four lanes of partial results from the identity (the running `acc`
            // may already hold earlier rows), combined into `acc` after the loop.
            let start = self.b.ins().f32const(identity(kind, DType::F32) as f32);
            let init = self.b.ins().splat(types::F32X4, start);
            let lanes = self.counted_loop(0, n, 4, &[(types::F32X4, init)], |e, i, carried| {
                idx.push(i);
                let x = e.eval(list, value, idx, 4);
                idx.pop();
                vec![e.combine(kind, dtype, carried[0], x)]
            })[0];
            let mut a = acc.1;
            for lane in 0..4u8 {
                let x = self.b.ins().extractlane(lanes, lane);
                a = self.combine(kind, dtype, a, x);
            }
            let main = n - n % 4;
            if main == n {
                return a;
            }
            return self.counted_loop(main, n, 1, &[(acc.0, a)], |e, i, carried| {
                idx.push(i);
                let x = e.eval(list, value, idx, 1);
                idx.pop();
                vec![e.combine(kind, dtype, carried[0], x)]
            })[0];
        }
        self.counted_loop(0, n, 1, &[acc], |e, i, carried| {
            idx.push(i);
            let x = e.eval(list, value, idx, 1);
            idx.pop();
            vec![e.combine(kind, dtype, carried[0], x)]
        })[0]
    }

    /// The reduced value `acc` of `count` elements: divided by `count` for a mean.
    fn finish(&mut self, kind: ReduceOp, dtype: DType, acc: Value, count: usize) -> Value {
        if kind != ReduceOp::Mean {
            return acc;
        }
        let c = self.constant(dtype, count as f64, 1);
        if dtype.is_float() {
            self.b.ins().fdiv(acc, c)
        } else {
            self.b.ins().sdiv(acc, c)
        }
    }

    /// One reduction step `acc ⊕ x` (scalars or lanes).
    fn combine(&mut self, kind: ReduceOp, dtype: DType, a: Value, x: Value) -> Value {
        match (kind, dtype.is_float()) {
            (ReduceOp::Sum | ReduceOp::Mean, true) => self.b.ins().fadd(a, x),
            (ReduceOp::Sum | ReduceOp::Mean, false) => self.b.ins().iadd(a, x),
            (ReduceOp::Max, true) => self.b.ins().fmax(a, x),
            (ReduceOp::Min, true) => self.b.ins().fmin(a, x),
            (ReduceOp::Max, false) => self.b.ins().smax(a, x),
            (ReduceOp::Min, false) => self.b.ins().smin(a, x),
        }
    }

    /// Element offset `offset + Σ strides[k]·i[k]` as an i64.
    pub(super) fn affine(&mut self, a: &Affine, idx: &[Value]) -> Value {
        let mut sum = self.iconst(a.offset as i64);
        for (k, &s) in a.strides.iter().enumerate().take(idx.len()) {
            if s != 0 {
                let t = self.b.ins().imul_imm_s(idx[k], s as i64);
                sum = self.b.ins().iadd(sum, t);
            }
        }
        sum
    }

    pub(super) fn address(&mut self, a: &Access, idx: &[Value]) -> Value {
        let size = self.program.buffer(a.buffer).ty.dtype.size_bytes() as i64;
        let off = self.affine(
            &Affine {
                offset: a.offset,
                strides: a.strides.clone(),
            },
            idx,
        );
        let bytes = self.b.ins().imul_imm_s(off, size);
        self.b.ins().iadd(self.bases[&a.buffer], bytes)
    }

    /// Evaluates an elementwise kernel's body and stores its value and every extra
    /// value (`also`) at the current index.
    fn body_and_stores(&mut self, idx: &[Value], lanes: usize) {
        let k = self.kernel;
        let vals = self.eval_all(&k.exprs, idx, lanes);
        self.store_to(k.out, idx, vals[k.value.index()]);
        for &(v, buffer) in &k.also {
            self.store_to(buffer, idx, vals[v.index()]);
        }
    }

    fn store(&mut self, idx: &[Value], v: Value) {
        self.store_to(self.kernel.out, idx, v);
    }

    /// Stores `v` to `buffer` at the flat index of the output loops.
    fn store_to(&mut self, buffer: BufferId, idx: &[Value], v: Value) {
        let addr = self.out_address(buffer, idx);
        self.b.ins().store(self.flags, v, addr, 0);
    }

    /// The address in `buffer` of the flat index of the output loops.
    fn out_address(&mut self, buffer: BufferId, idx: &[Value]) -> Value {
        let k = self.kernel;
        let outer = k.outer_dims();
        let strides = kiln_ir::Shape::new(outer.to_vec()).strides();
        let mut all = strides;
        all.resize(k.dims.len(), 0);
        let a = Access {
            buffer,
            offset: 0,
            strides: all,
        };
        self.address(&a, idx)
    }
}
