//! Lowering a kernel program to machine code with Cranelift.
//!
//! Each loop kernel becomes one function `k<i>(bufs)` over the buffer table; one
//! entry function calls them in order (and the library for call kernels), so a
//! compiled graph is a single native entry point with no per-op dispatch.
//!
//! Innermost loops of elementwise f32 kernels run four lanes at a time (`f32x4`)
//! with a scalar tail; everything else runs scalar for now.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cranelift_codegen::Context;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    AbiParam, BlockArg, Function, InstBuilder, MemFlagsData, Type, UserFuncName, Value, types,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};
use kiln_ir::kernel::{
    Access, Affine, BufferId, Expr, ExprId, ExprNode, Kernel, KernelProgram, LoopKernel,
};
use kiln_ir::{BinaryOp, CmpOp, DType, ReduceOp, UnaryOp};

use crate::approx;
use crate::library::{self, CallContext, CallDesc};

/// Why a program could not be compiled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodegenError {
    #[error("the host ISA is not supported by Cranelift: {0}")]
    Isa(String),
    #[error("Cranelift rejected the generated code: {0}")]
    Module(String),
    #[error("not supported yet: {0}")]
    Unsupported(String),
}

fn module_err(e: impl std::fmt::Display) -> CodegenError {
    CodegenError::Module(e.to_string())
}

/// The entry point: `(buffer table, call context) -> status` (0 = success).
pub type EntryFn = unsafe extern "C" fn(*const *mut u8, *mut CallContext) -> u32;

/// A compiled kernel program.
pub struct CompiledProgram {
    module: Option<JITModule>,
    entry: EntryFn,
    /// The library calls, in the order the entry point refers to them.
    pub calls: Vec<CallDesc>,
    /// The Cranelift IR of every function, for dumps.
    pub clif: Vec<(String, String)>,
    /// The machine-code listing of every function (Cranelift's VCode after register
    /// allocation, with the code size), when [`CodegenOptions::disasm`] asked for it.
    pub asm: Vec<(String, String)>,
    /// Wall time spent in Cranelift.
    pub compile_time: Duration,
}

impl std::fmt::Debug for CompiledProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledProgram")
            .field("functions", &self.clif.len())
            .finish()
    }
}

impl CompiledProgram {
    /// The native entry point.
    pub fn entry(&self) -> EntryFn {
        self.entry
    }
}

impl Drop for CompiledProgram {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: `entry` dies with `self`; nothing else holds the code.
            unsafe { m.free_memory() };
        }
    }
}

/// A JIT module for the host ISA (opt_level speed, non-PIC) with kiln's runtime
/// symbols registered.
pub fn host_module() -> Result<JITModule, CodegenError> {
    let mut flags = settings::builder();
    flags
        .set("opt_level", "speed")
        .map_err(|e| CodegenError::Isa(e.to_string()))?;
    flags
        .set("is_pic", "false")
        .map_err(|e| CodegenError::Isa(e.to_string()))?;
    let isa = cranelift_native::builder()
        .map_err(|e| CodegenError::Isa(e.to_string()))?
        .finish(settings::Flags::new(flags))
        .map_err(|e| CodegenError::Isa(e.to_string()))?;
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    jb.symbol("kiln_call", library::kiln_call as *const u8);
    jb.symbol("kiln_parallel", library::kiln_parallel as *const u8);
    jb.symbol("kiln_powf", library::kiln_powf as *const u8);
    jb.symbol("kiln_pow", library::kiln_pow as *const u8);
    for (name, ptr) in library::scalar_symbols() {
        jb.symbol(name, ptr);
    }
    Ok(JITModule::new(jb))
}

/// The Cranelift type holding one element of `dtype` (bools as 0/1 bytes).
fn scalar_type(dtype: DType) -> Type {
    match dtype {
        DType::F32 => types::F32,
        DType::F64 => types::F64,
        DType::I32 => types::I32,
        DType::Bool => types::I8,
    }
}

/// Imported helper functions, declared once per module.
struct Imports {
    call: FuncId,
    /// `kiln_parallel(ctx, kernel, bufs, n, align)`: a loop kernel split across
    /// threads.
    parallel: FuncId,
    /// f64 `exp`, `log`, `tanh` from libm, by name.
    unary: HashMap<&'static str, FuncId>,
    pow: HashMap<DType, FuncId>,
}

impl Imports {
    fn declare(module: &mut JITModule) -> Result<Self, CodegenError> {
        let ptr = module.target_config().pointer_type();
        let mut sig = module.make_signature();
        sig.params.extend([
            AbiParam::new(ptr),
            AbiParam::new(types::I64),
            AbiParam::new(ptr),
        ]);
        sig.returns.push(AbiParam::new(types::I32));
        let call = module
            .declare_function("kiln_call", Linkage::Import, &sig)
            .map_err(module_err)?;
        let mut sig = module.make_signature();
        sig.params.extend([
            AbiParam::new(ptr),
            AbiParam::new(ptr),
            AbiParam::new(ptr),
            AbiParam::new(types::I64),
            AbiParam::new(types::I64),
        ]);
        let parallel = module
            .declare_function("kiln_parallel", Linkage::Import, &sig)
            .map_err(module_err)?;
        let mut unary = HashMap::new();
        let mut pow = HashMap::new();
        for (dtype, suffix) in [(DType::F32, "f"), (DType::F64, "")] {
            let t = scalar_type(dtype);
            let mut sig = module.make_signature();
            sig.params.push(AbiParam::new(t));
            sig.returns.push(AbiParam::new(t));
            // f32 transcendentals are emitted inline (`approx`); only f64 calls libm.
            if dtype == DType::F64 {
                for f in ["exp", "log", "tanh"] {
                    let id = module
                        .declare_function(&format!("kiln_{f}"), Linkage::Import, &sig)
                        .map_err(module_err)?;
                    unary.insert(f, id);
                }
            }
            sig.params.push(AbiParam::new(t));
            let id = module
                .declare_function(&format!("kiln_pow{suffix}"), Linkage::Import, &sig)
                .map_err(module_err)?;
            pow.insert(dtype, id);
        }
        Ok(Imports {
            call,
            parallel,
            unary,
            pow,
        })
    }
}

/// What [`compile_with`] keeps besides the machine code.
#[derive(Clone, Copy, Debug, Default)]
pub struct CodegenOptions {
    /// Keep a machine-code listing of every function in [`CompiledProgram::asm`].
    pub disasm: bool,
}

/// Compiles `program` to native code.
pub fn compile(program: &KernelProgram) -> Result<CompiledProgram, CodegenError> {
    compile_with(program, &CodegenOptions::default())
}

/// Compiles `program` to native code, keeping what `options` asks for.
pub fn compile_with(
    program: &KernelProgram,
    options: &CodegenOptions,
) -> Result<CompiledProgram, CodegenError> {
    let start = Instant::now();
    let mut asm = Vec::new();
    let mut module = host_module()?;
    let imports = Imports::declare(&mut module)?;
    let ptr = module.target_config().pointer_type();
    let mut fctx = FunctionBuilderContext::new();
    let mut ctx = module.make_context();
    let mut clif = Vec::new();

    // A loop kernel takes the buffer table and the range of its outermost loop to
    // run, so the entry can split that loop across threads.
    let mut kernel_sig = module.make_signature();
    kernel_sig.params.extend([
        AbiParam::new(ptr),
        AbiParam::new(types::I64),
        AbiParam::new(types::I64),
    ]);
    let mut kernel_ids = Vec::new();
    let mut calls = Vec::new();
    for (i, kernel) in program.kernels_with_ids() {
        match kernel {
            Kernel::Loop(k) => {
                let name = i.to_string();
                let id = module
                    .declare_function(&name, Linkage::Local, &kernel_sig)
                    .map_err(module_err)?;
                ctx.func = Function::with_name_signature(
                    UserFuncName::user(0, id.as_u32()),
                    kernel_sig.clone(),
                );
                emit_loop_kernel(&mut module, &imports, &mut ctx.func, &mut fctx, program, k)?;
                clif.push((name.clone(), ctx.func.display().to_string()));
                if let Some(listing) = define(&mut module, id, &mut ctx, options.disasm)? {
                    asm.push((name, listing));
                }
                kernel_ids.push(Some((id, split_of(k))));
            }
            Kernel::Call(c) => {
                calls.push(CallDesc {
                    op: c.op.clone(),
                    inputs: c.inputs.clone(),
                    out: (c.out, program.buffer(c.out).ty.clone()),
                });
                kernel_ids.push(None);
            }
        }
    }

    // The entry point: run every kernel in order; stop at the first failed call.
    let mut entry_sig = module.make_signature();
    entry_sig
        .params
        .extend([AbiParam::new(ptr), AbiParam::new(ptr)]);
    entry_sig.returns.push(AbiParam::new(types::I32));
    let entry_id = module
        .declare_function("entry", Linkage::Export, &entry_sig)
        .map_err(module_err)?;
    ctx.func = Function::with_name_signature(UserFuncName::user(0, entry_id.as_u32()), entry_sig);
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let block = b.create_block();
        b.append_block_params_for_function_params(block);
        b.switch_to_block(block);
        let (bufs, cctx) = (b.block_params(block)[0], b.block_params(block)[1]);
        let call_ref = module.declare_func_in_func(imports.call, b.func);
        let parallel_ref = module.declare_func_in_func(imports.parallel, b.func);
        let mut call_index = 0i64;
        for id in &kernel_ids {
            match id {
                Some((id, split)) => {
                    let f = module.declare_func_in_func(*id, b.func);
                    match split {
                        Split::Whole { n } => {
                            let lo = b.ins().iconst(types::I64, 0);
                            let hi = b.ins().iconst(types::I64, *n as i64);
                            b.ins().call(f, &[bufs, lo, hi]);
                        }
                        Split::Rows { n, align } => {
                            let addr = b.ins().func_addr(ptr, f);
                            let n = b.ins().iconst(types::I64, *n as i64);
                            let align = b.ins().iconst(types::I64, *align as i64);
                            b.ins().call(parallel_ref, &[cctx, addr, bufs, n, align]);
                        }
                    }
                }
                None => {
                    let idx = b.ins().iconst(types::I64, call_index);
                    call_index += 1;
                    let inst = b.ins().call(call_ref, &[cctx, idx, bufs]);
                    let status = b.inst_results(inst)[0];
                    let fail = b.create_block();
                    let next = b.create_block();
                    b.ins().brif(status, fail, &[], next, &[]);
                    b.switch_to_block(fail);
                    b.ins().return_(&[status]);
                    b.switch_to_block(next);
                }
            }
        }
        let zero = b.ins().iconst(types::I32, 0);
        b.ins().return_(&[zero]);
        b.seal_all_blocks();
        b.finalize(module.target_config());
    }
    clif.push(("entry".to_string(), ctx.func.display().to_string()));
    if let Some(listing) = define(&mut module, entry_id, &mut ctx, options.disasm)? {
        asm.push(("entry".to_string(), listing));
    }
    module.finalize_definitions().map_err(module_err)?;
    let code = module.get_finalized_function(entry_id);
    // SAFETY: the entry function was declared with exactly this signature.
    let entry: EntryFn = unsafe { std::mem::transmute::<*const u8, EntryFn>(code) };
    Ok(CompiledProgram {
        module: Some(module),
        entry,
        calls,
        clif,
        asm,
        compile_time: start.elapsed(),
    })
}

/// Compiles `ctx.func` as function `id`; with `disasm`, returns its machine-code
/// listing (Cranelift's VCode text, no disassembler needed).
fn define(
    module: &mut JITModule,
    id: FuncId,
    ctx: &mut Context,
    disasm: bool,
) -> Result<Option<String>, CodegenError> {
    ctx.set_disasm(disasm);
    module.define_function(id, ctx).map_err(|e| match e {
        cranelift_module::ModuleError::Compilation(c) => CodegenError::Module(format!("{c:?}")),
        e => module_err(e),
    })?;
    let listing = ctx.compiled_code().and_then(|c| {
        let text = c.vcode.as_ref()?;
        Some(format!(
            "; {} bytes of machine code\n{text}",
            c.code_info().total_size
        ))
    });
    module.clear_context(ctx);
    Ok(listing)
}

/// How the entry runs a loop kernel.
#[derive(Clone, Copy, Debug)]
enum Split {
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
fn split_of(k: &LoopKernel) -> Split {
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

/// True if `list` evaluates on `f32x4` lanes along loop `last`: f32 values (and
/// their comparison masks), loads contiguous or invariant along that loop.
fn exprs_vectorizable(list: &[ExprNode], last: usize) -> bool {
    list.iter().all(|e| {
        let f32_or_mask = e.dtype == DType::F32 || e.dtype == DType::Bool;
        f32_or_mask
            && match &e.expr {
                Expr::Load(a) => e.dtype == DType::F32 && a.strides[last] <= 1,
                Expr::Const(_) | Expr::Select(..) | Expr::Fma(..) | Expr::Row(_) => true,
                Expr::Compare(_, a, _) => list[a.index()].dtype == DType::F32,
                Expr::Unary(u, _) => *u != UnaryOp::Sign,
                Expr::Binary(b, _, _) => *b != BinaryOp::Pow,
                Expr::Cast(_) | Expr::Random { .. } => false,
            }
    })
}

struct LoopEmitter<'a, 'b> {
    b: FunctionBuilder<'b>,
    module: &'a mut JITModule,
    imports: &'a Imports,
    program: &'a KernelProgram,
    kernel: &'a LoopKernel,
    bases: HashMap<BufferId, Value>,
    flags: MemFlagsData,
    /// The kernel's row reductions for the current outer indices.
    rows: Vec<Value>,
    /// The range of the outermost loop this call runs (function parameters).
    range: (Value, Value),
}

fn emit_loop_kernel(
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
    };
    let mut idx = Vec::new();
    e.outer(0, &mut idx);
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
        let init = match (r.kind, dtype.is_float()) {
            (ReduceOp::Sum | ReduceOp::Mean, _) => 0.0,
            (ReduceOp::Max, true) => f64::NEG_INFINITY,
            (ReduceOp::Min, true) => f64::INFINITY,
            (ReduceOp::Max, false) => i32::MIN as f64,
            (ReduceOp::Min, false) => i32::MAX as f64,
        };
        let acc0 = self.constant(dtype, init, 1);
        let acc = self.reduce_level(idx, k.outer_dims().len(), (t, acc0), r.kind, dtype);
        let count: usize = k.dims[k.outer_dims().len()..].iter().product();
        let v = if r.kind == ReduceOp::Mean {
            let c = self.constant(dtype, count as f64, 1);
            if dtype.is_float() {
                self.b.ins().fdiv(acc, c)
            } else {
                self.b.ins().sdiv(acc, c)
            }
        } else {
            acc
        };
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

    /// Computes every row reduction of the kernel for the current outer indices.
    fn compute_rows(&mut self, idx: &mut Vec<Value>) {
        let k = self.kernel;
        self.rows.clear();
        let last = k.dims.len() - 1;
        for row in &k.rows {
            let dtype = row.exprs[row.value.index()].dtype;
            let init = match (row.kind, dtype.is_float()) {
                (ReduceOp::Sum | ReduceOp::Mean, _) => 0.0,
                (ReduceOp::Max, true) => f64::NEG_INFINITY,
                (ReduceOp::Min, true) => f64::INFINITY,
                (ReduceOp::Max, false) => i32::MIN as f64,
                (ReduceOp::Min, false) => i32::MAX as f64,
            };
            let acc = self.constant(dtype, init, 1);
            let vector =
                dtype == DType::F32 && row.len >= 4 && exprs_vectorizable(&row.exprs, last);
            let t = scalar_type(dtype);
            let mut v = self.reduce_last(
                &row.exprs,
                row.value,
                row.len,
                row.kind,
                dtype,
                (t, acc),
                idx,
                vector,
            );
            if row.kind == ReduceOp::Mean {
                let c = self.constant(dtype, row.len as f64, 1);
                v = if dtype.is_float() {
                    self.b.ins().fdiv(v, c)
                } else {
                    self.b.ins().sdiv(v, c)
                };
            }
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
            let identity = match kind {
                ReduceOp::Sum | ReduceOp::Mean => 0.0,
                ReduceOp::Max => f32::NEG_INFINITY,
                ReduceOp::Min => f32::INFINITY,
            };
            let identity = self.b.ins().f32const(identity);
            let init = self.b.ins().splat(types::F32X4, identity);
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
    fn affine(&mut self, a: &Affine, idx: &[Value]) -> Value {
        let mut sum = self.iconst(a.offset as i64);
        for (k, &s) in a.strides.iter().enumerate().take(idx.len()) {
            if s != 0 {
                let t = self.b.ins().imul_imm_s(idx[k], s as i64);
                sum = self.b.ins().iadd(sum, t);
            }
        }
        sum
    }

    fn address(&mut self, a: &Access, idx: &[Value]) -> Value {
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
        let addr = self.address(&a, idx);
        self.b.ins().store(self.flags, v, addr, 0);
    }

    fn constant(&mut self, dtype: DType, v: f64, lanes: usize) -> Value {
        let s = match dtype {
            DType::F32 => self.b.ins().f32const(v as f32),
            DType::F64 => self.b.ins().f64const(v),
            DType::I32 => self.b.ins().iconst(types::I32, v as i32 as i64),
            DType::Bool => self.b.ins().iconst(types::I8, (v != 0.0) as i64),
        };
        if lanes == 4 {
            let vt = if dtype == DType::Bool {
                types::I32X4
            } else {
                types::F32X4
            };
            let s = if dtype == DType::Bool {
                self.b.ins().iconst(types::I32, -((v != 0.0) as i64))
            } else {
                s
            };
            return self.b.ins().splat(vt, s);
        }
        s
    }

    /// Calls the f64 libm routine `name`.
    fn call_f64(&mut self, name: &'static str, x: Value) -> Value {
        let f = self
            .module
            .declare_func_in_func(self.imports.unary[name], self.b.func);
        let inst = self.b.ins().call(f, &[x]);
        self.b.inst_results(inst)[0]
    }

    /// Evaluates the kernel's value at the loop indices `idx` on `lanes` lanes.
    fn body(&mut self, idx: &[Value], lanes: usize) -> Value {
        let k = self.kernel;
        self.eval(&k.exprs, k.value, idx, lanes)
    }

    /// Evaluates expression `value` of `list` at the loop indices `idx`.
    fn eval(&mut self, list: &[ExprNode], value: ExprId, idx: &[Value], lanes: usize) -> Value {
        self.eval_all(list, idx, lanes)[value.index()]
    }

    /// Evaluates every expression of `list` at the loop indices `idx`.
    fn eval_all(&mut self, list: &[ExprNode], idx: &[Value], lanes: usize) -> Vec<Value> {
        let mut vals: Vec<Value> = Vec::with_capacity(list.len());
        for e in list {
            let v = self.expr(list, &e.expr, e.dtype, &vals, idx, lanes);
            vals.push(v);
        }
        vals
    }

    fn expr(
        &mut self,
        exprs: &[ExprNode],
        expr: &Expr,
        dtype: DType,
        vals: &[Value],
        idx: &[Value],
        lanes: usize,
    ) -> Value {
        let float = dtype.is_float();
        match expr {
            Expr::Load(a) => {
                let last = idx.len().wrapping_sub(1);
                let addr = self.address(a, idx);
                if lanes == 4 && a.strides[last] == 1 {
                    self.b.ins().load(types::F32X4, self.flags, addr, 0)
                } else if lanes == 4 {
                    let s = self.b.ins().load(types::F32, self.flags, addr, 0);
                    self.b.ins().splat(types::F32X4, s)
                } else {
                    self.b.ins().load(scalar_type(dtype), self.flags, addr, 0)
                }
            }
            Expr::Const(v) => self.constant(dtype, *v, lanes),
            Expr::Unary(k, x) => self.unary(*k, dtype, vals[x.index()], lanes),
            Expr::Binary(k, a, b) => {
                let (a, b) = (vals[a.index()], vals[b.index()]);
                let ins = self.b.ins();
                match (k, float) {
                    (BinaryOp::Add, true) => ins.fadd(a, b),
                    (BinaryOp::Sub, true) => ins.fsub(a, b),
                    (BinaryOp::Mul, true) => ins.fmul(a, b),
                    (BinaryOp::Div, true) => ins.fdiv(a, b),
                    (BinaryOp::Max, true) => ins.fmax(a, b),
                    (BinaryOp::Min, true) => ins.fmin(a, b),
                    (BinaryOp::Pow, _) => {
                        let f = self
                            .module
                            .declare_func_in_func(self.imports.pow[&dtype], self.b.func);
                        let inst = self.b.ins().call(f, &[a, b]);
                        self.b.inst_results(inst)[0]
                    }
                    (BinaryOp::Add, false) => ins.iadd(a, b),
                    (BinaryOp::Sub, false) => ins.isub(a, b),
                    (BinaryOp::Mul, false) => ins.imul(a, b),
                    (BinaryOp::Max, false) => ins.smax(a, b),
                    (BinaryOp::Min, false) => ins.smin(a, b),
                    (BinaryOp::Div, false) => self.int_div(a, b),
                }
            }
            Expr::Compare(k, a, b) => {
                let operand = exprs[a.index()].dtype;
                let (a, b) = (vals[a.index()], vals[b.index()]);
                if operand.is_float() {
                    let cc = match k {
                        CmpOp::Eq => FloatCC::Equal,
                        CmpOp::Ne => FloatCC::NotEqual,
                        CmpOp::Lt => FloatCC::LessThan,
                        CmpOp::Le => FloatCC::LessThanOrEqual,
                        CmpOp::Gt => FloatCC::GreaterThan,
                        CmpOp::Ge => FloatCC::GreaterThanOrEqual,
                    };
                    self.b.ins().fcmp(cc, a, b)
                } else {
                    let cc = match k {
                        CmpOp::Eq => IntCC::Equal,
                        CmpOp::Ne => IntCC::NotEqual,
                        CmpOp::Lt => IntCC::SignedLessThan,
                        CmpOp::Le => IntCC::SignedLessThanOrEqual,
                        CmpOp::Gt => IntCC::SignedGreaterThan,
                        CmpOp::Ge => IntCC::SignedGreaterThanOrEqual,
                    };
                    self.b.ins().icmp(cc, a, b)
                }
            }
            Expr::Select(c, a, b) => {
                let (c, a, b) = (vals[c.index()], vals[a.index()], vals[b.index()]);
                if lanes == 4 {
                    let mask = self.b.ins().bitcast(types::F32X4, MemFlagsData::new(), c);
                    self.b.ins().bitselect(mask, a, b)
                } else {
                    self.b.ins().select(c, a, b)
                }
            }
            Expr::Fma(a, b, c) => {
                let (a, b, c) = (vals[a.index()], vals[b.index()], vals[c.index()]);
                self.b.ins().fma(a, b, c)
            }
            Expr::Row(r) => {
                let v = self.rows[*r];
                if lanes == 4 {
                    self.b.ins().splat(types::F32X4, v)
                } else {
                    v
                }
            }
            Expr::Cast(x) => self.cast(vals[x.index()], exprs[x.index()].dtype, dtype),
            Expr::Random { seed, salt, flat } => {
                let seed_addr = self.address(seed, idx);
                let seed = self.b.ins().load(types::I32, self.flags, seed_addr, 0);
                let k0 = fmix32(salt.wrapping_add(0x9e37_79b9));
                let s = self.b.ins().bxor_imm_u(seed, k0 as i64);
                let key = self.fmix32(s);
                let i = self.affine(flat, idx);
                let i = self.b.ins().ireduce(types::I32, i);
                let i = self.b.ins().imul_imm_u(i, 0x9e37_79b9u32 as i64);
                let h = self.b.ins().bxor(i, key);
                let bits = self.fmix32(h);
                let top = self.b.ins().ushr_imm_u(bits, 8);
                let f = self.b.ins().fcvt_from_uint(types::F32, top);
                let scale = self.b.ins().f32const(1.0 / (1u32 << 24) as f32);
                let u = self.b.ins().fmul(f, scale);
                if dtype == DType::F64 {
                    self.b.ins().fpromote(types::F64, u)
                } else {
                    u
                }
            }
        }
    }

    fn fmix32(&mut self, h: Value) -> Value {
        let t = self.b.ins().ushr_imm_u(h, 16);
        let h = self.b.ins().bxor(h, t);
        let h = self.b.ins().imul_imm_u(h, 0x85eb_ca6bu32 as i64);
        let t = self.b.ins().ushr_imm_u(h, 13);
        let h = self.b.ins().bxor(h, t);
        let h = self.b.ins().imul_imm_u(h, 0xc2b2_ae35u32 as i64);
        let t = self.b.ins().ushr_imm_u(h, 16);
        self.b.ins().bxor(h, t)
    }

    /// Truncating i32 division that never traps: x/0 is 0 (the interpreter reports an
    /// error there; graphs with i32 division are rare) and MIN/-1 wraps to MIN.
    fn int_div(&mut self, a: Value, b: Value) -> Value {
        let zero = self.b.ins().iconst(types::I32, 0);
        let one = self.b.ins().iconst(types::I32, 1);
        let is_zero = self.b.ins().icmp(IntCC::Equal, b, zero);
        let minus_one = self.b.ins().icmp_imm_s(IntCC::Equal, b, -1);
        let safe_b = self.b.ins().select(is_zero, one, b);
        let safe_b = self.b.ins().select(minus_one, one, safe_b);
        let q = self.b.ins().sdiv(a, safe_b);
        let neg = self.b.ins().ineg(a);
        let q = self.b.ins().select(minus_one, neg, q);
        self.b.ins().select(is_zero, zero, q)
    }

    fn unary(&mut self, k: UnaryOp, dtype: DType, x: Value, lanes: usize) -> Value {
        let one = |e: &mut Self| e.constant(dtype, 1.0, lanes);
        let zero = |e: &mut Self| e.constant(dtype, 0.0, lanes);
        if !dtype.is_float() {
            let z = zero(self);
            return match k {
                UnaryOp::Neg => self.b.ins().ineg(x),
                UnaryOp::Abs => self.b.ins().iabs(x),
                UnaryOp::Relu => self.b.ins().smax(x, z),
                UnaryOp::Sign => {
                    let pos = self.b.ins().icmp(IntCC::SignedGreaterThan, x, z);
                    let neg = self.b.ins().icmp(IntCC::SignedLessThan, x, z);
                    let p = self.b.ins().uextend(types::I32, pos);
                    let n = self.b.ins().uextend(types::I32, neg);
                    self.b.ins().isub(p, n)
                }
                _ => unreachable!("typing allows only neg, abs, relu, sign on integers"),
            };
        }
        let gt0 = |e: &mut Self, x: Value| {
            let z = zero(e);
            let m = e.b.ins().fcmp(FloatCC::GreaterThan, x, z);
            if lanes == 4 {
                e.b.ins().bitcast(types::F32X4, MemFlagsData::new(), m)
            } else {
                m
            }
        };
        let pick = |e: &mut Self, m: Value, a: Value, b: Value| {
            if lanes == 4 {
                e.b.ins().bitselect(m, a, b)
            } else {
                e.b.ins().select(m, a, b)
            }
        };
        match k {
            UnaryOp::Neg => self.b.ins().fneg(x),
            UnaryOp::Abs => self.b.ins().fabs(x),
            UnaryOp::Sqrt => self.b.ins().sqrt(x),
            UnaryOp::Rsqrt => {
                let s = self.b.ins().sqrt(x);
                let o = one(self);
                self.b.ins().fdiv(o, s)
            }
            UnaryOp::Recip => {
                let o = one(self);
                self.b.ins().fdiv(o, x)
            }
            UnaryOp::Relu => {
                // NaN stays NaN, like the interpreter: select on x > 0 instead of fmax.
                let m = gt0(self, x);
                let z = zero(self);
                let keep_nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
                let keep_nan = if lanes == 4 {
                    self.b
                        .ins()
                        .bitcast(types::F32X4, MemFlagsData::new(), keep_nan)
                } else {
                    keep_nan
                };
                let r = pick(self, m, x, z);
                pick(self, keep_nan, x, r)
            }
            UnaryOp::LeakyRelu(slope) => {
                let m = gt0(self, x);
                let s = self.constant(dtype, slope, lanes);
                let sx = self.b.ins().fmul(x, s);
                pick(self, m, x, sx)
            }
            UnaryOp::Sign => {
                let o = one(self);
                let mo = self.b.ins().fneg(o);
                let z = zero(self);
                let pos = self.b.ins().fcmp(FloatCC::GreaterThan, x, z);
                let neg = self.b.ins().fcmp(FloatCC::LessThan, x, z);
                let is_zero = self.b.ins().fcmp(FloatCC::Equal, x, z);
                // NaN falls through to x itself.
                let r = self.b.ins().select(is_zero, z, x);
                let r = self.b.ins().select(neg, mo, r);
                self.b.ins().select(pos, o, r)
            }
            // f32 (scalar and f32x4 alike, so every element gets the same rounding)
            // uses the emitted approximations; f64 calls libm.
            UnaryOp::Exp if dtype == DType::F32 => approx::exp(&mut self.b, x),
            UnaryOp::Log if dtype == DType::F32 => approx::log(&mut self.b, x),
            UnaryOp::Tanh if dtype == DType::F32 => approx::tanh(&mut self.b, x),
            UnaryOp::Sigmoid if dtype == DType::F32 => approx::sigmoid(&mut self.b, x),
            UnaryOp::Exp => self.call_f64("exp", x),
            UnaryOp::Log => self.call_f64("log", x),
            UnaryOp::Tanh => self.call_f64("tanh", x),
            UnaryOp::Sigmoid => {
                let n = self.b.ins().fneg(x);
                let e = self.call_f64("exp", n);
                let o = one(self);
                let d = self.b.ins().fadd(o, e);
                self.b.ins().fdiv(o, d)
            }
        }
    }

    fn cast(&mut self, x: Value, from: DType, to: DType) -> Value {
        use DType::*;
        match (from, to) {
            (a, b) if a == b => x,
            (F32, F64) => self.b.ins().fpromote(types::F64, x),
            (F64, F32) => self.b.ins().fdemote(types::F32, x),
            (F32 | F64, I32) => self.b.ins().fcvt_to_sint_sat(types::I32, x),
            (I32, F32 | F64) => self.b.ins().fcvt_from_sint(scalar_type(to), x),
            (Bool, I32) => self.b.ins().uextend(types::I32, x),
            (Bool, F32 | F64) => {
                let i = self.b.ins().uextend(types::I32, x);
                self.b.ins().fcvt_from_uint(scalar_type(to), i)
            }
            (F32 | F64, Bool) => {
                let z = self.constant(from, 0.0, 1);
                self.b.ins().fcmp(FloatCC::NotEqual, x, z)
            }
            (I32, Bool) => self.b.ins().icmp_imm_s(IntCC::NotEqual, x, 0),
            _ => unreachable!("all pairs covered"),
        }
    }
}

fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}
