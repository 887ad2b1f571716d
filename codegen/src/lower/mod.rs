//! Cranelift lowering: a kernel program to machine code.
//!
//! Each loop kernel becomes one function `k<i>(bufs, lo, hi)` over the buffer
//! table and a range of its outermost loop; one entry function calls them in order
//! (long ones through `kiln_parallel`, split across threads) and calls the native
//! library ([`crate::library`]) for call kernels, so a compiled graph is a single
//! native entry point with no per-op dispatch. An elementwise kernel with
//! transcendentals is instead run by the library's wide loops
//! ([`crate::library::wide`], through `kiln_wide`) where the host has AVX2 or
//! AVX-512: Cranelift emits 128-bit vectors only.
//!
//! - this module: the JIT module and its runtime symbols, the imported helpers,
//!   function declaration and definition, the entry function;
//! - `loops`: loop nests, the `f32x4` inner loops, reductions and row reductions,
//!   the threading split;
//! - `expr`: scalar and vector expressions (unary, binary, compare, select,
//!   cast, random);
//! - [`approx`]: the f32 `exp`/`log`/`tanh`/`sigmoid`/`erf` approximations, as CLIF
//!   and as native `f32` code from one generic source.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cranelift_codegen::Context;
use cranelift_codegen::ir::{
    AbiParam, Function, InstBuilder, Signature, Type, UserFuncName, types,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};
use kiln_ir::DType;
use kiln_ir::kernel::{Kernel, KernelProgram};

use crate::library::wide::WideLoop;
use crate::library::{self, CallContext, CallDesc};
use crate::scan::{self, ScanDesc, ScanHandle};
use loops::{Split, emit_loop_kernel, split_of};

pub mod approx;
mod expr;
mod loops;

/// Why a program could not be compiled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodegenError {
    #[error("the host ISA is not supported by Cranelift: {0}")]
    Isa(String),
    #[error("Cranelift rejected the generated code: {0}")]
    Module(String),
    #[error("not supported yet: {0}")]
    Unsupported(String),
    #[error("could not allocate {bytes} bytes for the state of a loop")]
    Alloc { bytes: usize },
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
    /// The `scan` loops, likewise.
    pub scans: Vec<ScanDesc>,
    /// The loop kernels run natively on wide vectors ([`library::wide`]), likewise.
    pub wide: Arc<[WideLoop]>,
    /// The Cranelift IR of every function, for dumps (for a loop kernel run by
    /// [`library::wide`], a note saying so).
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

    /// A fresh context to run the entry point with (single-threaded until its
    /// `workers` are set), holding the memory of every `scan` loop.
    pub fn context(&self) -> Result<CallContext, CodegenError> {
        let mut ctx = CallContext::new(self.calls.clone());
        ctx.wide = self.wide.clone();
        for s in &self.scans {
            ctx.scans
                .push(ScanHandle::new(s).ok_or(CodegenError::Alloc {
                    bytes: s.working_bytes(),
                })?);
        }
        Ok(ctx)
    }

    /// Bytes the `scan` loops allocate in each context (bodies' arenas and
    /// constants, carry slots).
    pub fn loop_bytes(&self) -> usize {
        self.scans.iter().map(ScanDesc::working_bytes).sum()
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

/// A JIT module for the host ISA (opt_level speed, non-PIC, the IR verifier only
/// with debug assertions) with kiln's runtime symbols registered.
pub fn host_module() -> Result<JITModule, CodegenError> {
    let mut flags = settings::builder();
    flags
        .set("opt_level", "speed")
        .map_err(|e| CodegenError::Isa(e.to_string()))?;
    flags
        .set("is_pic", "false")
        .map_err(|e| CodegenError::Isa(e.to_string()))?;
    // Cranelift's IR verifier catches lowering bugs: builds with debug assertions
    // (the tests, the fuzzers) keep it; release builds skip it, 5% of a compile.
    flags
        .set("enable_verifier", &cfg!(debug_assertions).to_string())
        .map_err(|e| CodegenError::Isa(e.to_string()))?;
    let isa = cranelift_native::builder()
        .map_err(|e| CodegenError::Isa(e.to_string()))?
        .finish(settings::Flags::new(flags))
        .map_err(|e| CodegenError::Isa(e.to_string()))?;
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    jb.symbol("kiln_call", library::kiln_call as *const u8);
    jb.symbol("kiln_parallel", library::kiln_parallel as *const u8);
    jb.symbol("kiln_wide", library::kiln_wide as *const u8);
    jb.symbol("kiln_scan", scan::kiln_scan as *const u8);
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
    /// `kiln_wide(ctx, index, bufs) -> status`: a loop kernel run natively.
    wide: FuncId,
    /// `kiln_parallel(ctx, kernel, bufs, n, align)`: a loop kernel split across
    /// threads.
    parallel: FuncId,
    /// `kiln_scan(ctx, index, bufs, body) -> status`: a loop over a compiled body.
    scan: FuncId,
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
        let wide = module
            .declare_function("kiln_wide", Linkage::Import, &sig)
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
        let mut sig = module.make_signature();
        sig.params.extend([
            AbiParam::new(ptr),
            AbiParam::new(types::I64),
            AbiParam::new(ptr),
            AbiParam::new(ptr),
        ]);
        sig.returns.push(AbiParam::new(types::I32));
        let scan = module
            .declare_function("kiln_scan", Linkage::Import, &sig)
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
                for f in ["exp", "log", "tanh", "erf"] {
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
            wide,
            parallel,
            scan,
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
    /// Compile every loop kernel with Cranelift, none with [`library::wide`]
    /// (the results are the same; tests compare the two).
    pub cranelift_only: bool,
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
    let mut module = host_module()?;
    let imports = Imports::declare(&mut module)?;
    let ptr = module.target_config().pointer_type();
    // A loop kernel takes the buffer table and the range of its outermost loop to
    // run, so the entry can split that loop across threads.
    let mut kernel_sig = module.make_signature();
    kernel_sig.params.extend([
        AbiParam::new(ptr),
        AbiParam::new(types::I64),
        AbiParam::new(types::I64),
    ]);
    let mut e = Emitter {
        ctx: module.make_context(),
        module,
        imports,
        fctx: FunctionBuilderContext::new(),
        kernel_sig,
        disasm: options.disasm,
        cranelift_only: options.cranelift_only,
        calls: Vec::new(),
        wide: Vec::new(),
        scans: Vec::new(),
        clif: Vec::new(),
        asm: Vec::new(),
    };
    let entry_id = e.program(program, "", Linkage::Export)?;
    let Emitter {
        mut module,
        calls,
        scans,
        wide,
        clif,
        asm,
        ..
    } = e;
    module.finalize_definitions().map_err(module_err)?;
    let code = module.get_finalized_function(entry_id);
    // SAFETY: the entry function was declared with exactly this signature.
    let entry: EntryFn = unsafe { std::mem::transmute::<*const u8, EntryFn>(code) };
    Ok(CompiledProgram {
        module: Some(module),
        entry,
        calls,
        scans,
        wide: wide.into(),
        clif,
        asm,
        compile_time: start.elapsed(),
    })
}

/// How an entry function runs one kernel.
enum Step {
    Loop(FuncId, Split),
    /// Call `i` of the context.
    Call(usize),
    /// Wide loop `i` of the context.
    Wide(usize),
    /// Scan `i` of the context, with its compiled body's entry.
    Scan(FuncId, usize),
}

/// The module being built, with what the compiled program keeps.
struct Emitter {
    module: JITModule,
    imports: Imports,
    ctx: Context,
    fctx: FunctionBuilderContext,
    kernel_sig: Signature,
    disasm: bool,
    cranelift_only: bool,
    calls: Vec<CallDesc>,
    scans: Vec<ScanDesc>,
    wide: Vec<WideLoop>,
    clif: Vec<(String, String)>,
    asm: Vec<(String, String)>,
}

impl Emitter {
    /// Defines the kernels of `program` and its entry function `{prefix}entry`
    /// (each scan's body first, named after its kernel); returns the entry.
    fn program(
        &mut self,
        program: &KernelProgram,
        prefix: &str,
        linkage: Linkage,
    ) -> Result<FuncId, CodegenError> {
        let mut steps = Vec::new();
        for (i, kernel) in program.kernels_with_ids() {
            steps.push(match kernel {
                Kernel::Loop(k)
                    if !self.cranelift_only
                        && let Some(w) = WideLoop::new(program, k) =>
                {
                    // Its listings are a note, so that every loop kernel has both.
                    let (name, note) = (format!("{prefix}{i}"), w.to_string());
                    if self.disasm {
                        self.asm.push((name.clone(), note.clone()));
                    }
                    self.clif.push((name, note));
                    self.wide.push(w);
                    Step::Wide(self.wide.len() - 1)
                }
                Kernel::Loop(k) => {
                    let name = format!("{prefix}{i}");
                    let id = self
                        .module
                        .declare_function(&name, Linkage::Local, &self.kernel_sig)
                        .map_err(module_err)?;
                    self.ctx.func = Function::with_name_signature(
                        UserFuncName::user(0, id.as_u32()),
                        self.kernel_sig.clone(),
                    );
                    emit_loop_kernel(
                        &mut self.module,
                        &self.imports,
                        &mut self.ctx.func,
                        &mut self.fctx,
                        program,
                        k,
                    )?;
                    self.define(id, name)?;
                    Step::Loop(id, split_of(k))
                }
                Kernel::Call(c) => {
                    self.calls.push(CallDesc {
                        op: c.op.clone(),
                        inputs: c.inputs.clone(),
                        out: (c.out, program.buffer(c.out).ty.clone()),
                    });
                    Step::Call(self.calls.len() - 1)
                }
                Kernel::Scan(s) => {
                    let body = self.program(&s.body, &format!("{prefix}{i}."), Linkage::Local)?;
                    self.scans.push(ScanDesc::new(s));
                    Step::Scan(body, self.scans.len() - 1)
                }
            });
        }
        self.entry(&steps, prefix, linkage)
    }

    /// The entry function over `steps`: runs every kernel in order and stops at the
    /// first failed call or loop, returning its status.
    fn entry(
        &mut self,
        steps: &[Step],
        prefix: &str,
        linkage: Linkage,
    ) -> Result<FuncId, CodegenError> {
        let module = &mut self.module;
        let ptr = module.target_config().pointer_type();
        let mut entry_sig = module.make_signature();
        entry_sig
            .params
            .extend([AbiParam::new(ptr), AbiParam::new(ptr)]);
        entry_sig.returns.push(AbiParam::new(types::I32));
        let name = format!("{prefix}entry");
        let entry_id = module
            .declare_function(&name, linkage, &entry_sig)
            .map_err(module_err)?;
        self.ctx.func =
            Function::with_name_signature(UserFuncName::user(0, entry_id.as_u32()), entry_sig);
        let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
        let block = b.create_block();
        b.append_block_params_for_function_params(block);
        b.switch_to_block(block);
        let (bufs, cctx) = (b.block_params(block)[0], b.block_params(block)[1]);
        let call_ref = module.declare_func_in_func(self.imports.call, b.func);
        let wide_ref = module.declare_func_in_func(self.imports.wide, b.func);
        let parallel_ref = module.declare_func_in_func(self.imports.parallel, b.func);
        let scan_ref = module.declare_func_in_func(self.imports.scan, b.func);
        for step in steps {
            let status = match step {
                Step::Loop(id, split) => {
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
                    continue;
                }
                Step::Call(i) => {
                    let idx = b.ins().iconst(types::I64, *i as i64);
                    let inst = b.ins().call(call_ref, &[cctx, idx, bufs]);
                    b.inst_results(inst)[0]
                }
                Step::Wide(i) => {
                    let idx = b.ins().iconst(types::I64, *i as i64);
                    let inst = b.ins().call(wide_ref, &[cctx, idx, bufs]);
                    b.inst_results(inst)[0]
                }
                Step::Scan(body, i) => {
                    let idx = b.ins().iconst(types::I64, *i as i64);
                    let f = module.declare_func_in_func(*body, b.func);
                    let addr = b.ins().func_addr(ptr, f);
                    let inst = b.ins().call(scan_ref, &[cctx, idx, bufs, addr]);
                    b.inst_results(inst)[0]
                }
            };
            let fail = b.create_block();
            let next = b.create_block();
            b.ins().brif(status, fail, &[], next, &[]);
            b.switch_to_block(fail);
            b.ins().return_(&[status]);
            b.switch_to_block(next);
        }
        let zero = b.ins().iconst(types::I32, 0);
        b.ins().return_(&[zero]);
        b.seal_all_blocks();
        b.finalize(module.target_config());
        self.define(entry_id, name)?;
        Ok(entry_id)
    }

    /// Compiles the function in `self.ctx` as `id`, keeping its IR and listing.
    fn define(&mut self, id: FuncId, name: String) -> Result<(), CodegenError> {
        self.clif
            .push((name.clone(), self.ctx.func.display().to_string()));
        if let Some(listing) = define(&mut self.module, id, &mut self.ctx, self.disasm)? {
            self.asm.push((name, listing));
        }
        Ok(())
    }
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
