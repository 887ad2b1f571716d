//! A compiled graph and its checked call API.

use std::path::PathBuf;

use std::time::{Duration, Instant};

use kiln_codegen::collective::Collective;
use kiln_codegen::library::CallContext;
use kiln_codegen::parallel::Workers;
use kiln_codegen::{CodegenError, CodegenOptions, CompiledProgram};
use kiln_ir::kernel::{BufferKind, KernelProgram, MemoryPlan};
use kiln_ir::{DType, Graph, HostTensor, TensorData, TensorType};
use kiln_passes::optimize::{OptimizeConfig, OptimizeStats, Pipeline, PipelineError, Stage};
use kiln_passes::schedule::{ScheduleError, schedule};

use kiln_codegen::buffer::AlignedBuffer;

/// Why a graph could not be compiled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    /// A graph pass before scheduling (the optimizer) failed.
    #[error(transparent)]
    Pass(Box<PipelineError>),
    #[error(transparent)]
    Schedule(Box<ScheduleError>),
    #[error(transparent)]
    Codegen(#[from] CodegenError),
    /// `KILN_DUMP` (or [`CompileOptions::dump_dir`]) was set and the dump could not
    /// be written.
    #[error("could not write the compile dump to {dir}: {message}")]
    Dump { dir: String, message: String },
    /// One value of the graph is larger than the memory limit; found before the
    /// graph is optimized, and before anything is allocated.
    #[error(
        "node {node} ({op}) of type {ty} needs {bytes} bytes, more than the memory limit of {limit} bytes (CompileOptions::memory_limit)"
    )]
    NodeOverMemoryLimit {
        /// `%N`, with the node's name if it has one.
        node: String,
        /// The op's mnemonic.
        op: &'static str,
        ty: TensorType,
        bytes: usize,
        limit: usize,
    },
    /// The memory plan needs more than the memory limit in all; found before the
    /// arena and the constants are allocated.
    #[error(
        "the compiled graph needs {total} bytes (arena {arena}, constants {consts}, outputs {outputs}; the largest buffer is {largest}), more than the memory limit of {limit} bytes (CompileOptions::memory_limit)"
    )]
    OverMemoryLimit {
        total: usize,
        /// The largest buffer: its node, type and bytes.
        largest: String,
        /// The arena of temporaries (outputs included).
        arena: usize,
        /// Constant buffers.
        consts: usize,
        /// The host tensors each call returns.
        outputs: usize,
        limit: usize,
    },
    /// The allocator refused a buffer the limit allowed.
    #[error("could not allocate the {what} ({bytes} bytes)")]
    Alloc { what: &'static str, bytes: usize },
}

/// Checks every node of `graph` against a memory limit in bytes: the first whose
/// value is larger is a [`CompileError::NodeOverMemoryLimit`] naming it, its type
/// and the bytes it needs. [`Executable::compile_with`] runs it first; the `kiln`
/// tool runs it before drawing random arguments.
pub fn check_memory(graph: &Graph, limit: usize) -> Result<(), CompileError> {
    for id in graph.node_ids() {
        let n = graph.node(id);
        let bytes = n.ty.size_bytes();
        if bytes > limit {
            let node = match &n.name {
                Some(name) => format!("%{} `{name}`", id.index()),
                None => format!("%{}", id.index()),
            };
            return Err(CompileError::NodeOverMemoryLimit {
                node,
                op: n.op.mnemonic(),
                ty: n.ty.clone(),
                bytes,
                limit,
            });
        }
    }
    Ok(())
}

impl From<PipelineError> for CompileError {
    fn from(e: PipelineError) -> Self {
        CompileError::Pass(Box::new(e))
    }
}

impl From<ScheduleError> for CompileError {
    fn from(e: ScheduleError) -> Self {
        CompileError::Schedule(Box::new(e))
    }
}

/// Why a call failed. Argument problems are found before any generated code runs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    #[error("expected {expected} arguments ({names}), got {got}")]
    ArgCount {
        expected: usize,
        got: usize,
        names: String,
    },
    #[error("argument `{name}` must be {expected}, got {got}")]
    ArgType {
        name: String,
        expected: TensorType,
        got: TensorType,
    },
    #[error("no argument named `{0}`")]
    UnknownArg(String),
    #[error("argument `{0}` is missing")]
    MissingArg(String),
    #[error("kernel failed: {0}")]
    Kernel(String),
    #[error("bad output destinations: {0}")]
    Destinations(String),
    /// The allocator refused the host tensor for an output.
    #[error("could not allocate output {index} of type {ty} ({bytes} bytes)")]
    OutOfMemory {
        index: usize,
        ty: TensorType,
        bytes: usize,
    },
}

/// How to compile a graph.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Run the egg optimizer before scheduling (on by default).
    pub optimize: bool,
    /// Threads for large kernels (GEMMs): all cores by default, 1 for none.
    pub threads: usize,
    /// Its limits.
    pub optimizer: OptimizeConfig,
    /// Write every stage of the compile into a numbered folder under this one (see
    /// [`crate::dump`]). Defaults to the `KILN_DUMP` environment variable.
    pub dump_dir: Option<PathBuf>,
    /// Keep every stage's graph and the machine-code listing on the executable
    /// ([`Executable::trace`]); implied by a dump folder.
    pub trace: bool,
    /// How the compiled graph was made, oldest first, for traces and dumps: e.g. the
    /// forward graph (`built`) and the graph after autodiff (`grad`), the last being
    /// the graph compiled. When empty, the compiled graph is the `built` stage.
    pub history: Vec<Stage>,
    /// The most memory a compiled graph may take, in bytes: each value of the graph,
    /// and the arena, constants and output tensors of its memory plan together, are
    /// checked against it before anything is allocated
    /// ([`CompileError::NodeOverMemoryLimit`], [`CompileError::OverMemoryLimit`]).
    /// [`DEFAULT_MEMORY_LIMIT`] by default.
    pub memory_limit: usize,
    /// Run elementwise kernels with transcendental functions (an LSTM cell, a
    /// softmax's `exp`) natively on the host's widest vectors where it has AVX2 or
    /// AVX-512, instead of Cranelift's 128-bit loops (on by default). The results
    /// are the same bit for bit; turning it off is for tests that compare the two.
    pub wide_loops: bool,
}

/// The default [`CompileOptions::memory_limit`], 16 GiB: a fixed figure, so that a
/// graph compiles or is refused the same way on every machine (a laptop and CI
/// alike), far above every workload of this project (tens of megabytes), and far
/// below the 2^48 elements the type checker allows, whose allocation would abort
/// the process instead of failing.
pub const DEFAULT_MEMORY_LIMIT: usize = 16 << 30;

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            optimize: true,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            optimizer: OptimizeConfig::default(),
            dump_dir: crate::dump::dump_dir_from_env(),
            trace: false,
            history: Vec::new(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            wide_loops: true,
        }
    }
}

impl CompileOptions {
    /// The graph passes a compile with these options runs before scheduling.
    pub fn pipeline(&self) -> Pipeline {
        Pipeline::for_compile(self.optimize.then_some(&self.optimizer))
    }

    /// Compile the graph exactly as given (no rewrites): for testing the lowering of
    /// each op.
    pub fn unoptimized() -> Self {
        CompileOptions {
            optimize: false,
            ..Self::default()
        }
    }
}

/// Time spent in each compile stage.
#[derive(Clone, Debug, Default)]
pub struct CompileTimings {
    pub optimize: Duration,
    pub schedule: Duration,
    pub codegen: Duration,
}

/// A graph compiled to native code: call it with [`Executable::run`].
///
/// ```
/// use kiln_ir::{DType, Graph, HostTensor, Op, TensorType, UnaryOp};
/// let mut g = Graph::new("relu");
/// let x = g.input("x", TensorType::new(DType::F32, [5])).unwrap();
/// let y = g.add(Op::Unary(UnaryOp::Relu), &[x]).unwrap();
/// g.output(y, None);
/// let mut exe = kiln_runtime::Executable::compile(&g).unwrap();
/// let x = HostTensor::from_f32([5], vec![-2.0, -0.5, 0.0, 1.5, 3.0]).unwrap();
/// let y = exe.run(&[x]).unwrap();
/// assert_eq!(y[0].as_f32().unwrap(), &[0.0, 0.0, 0.0, 1.5, 3.0]);
///
/// // Arguments are checked before any generated code runs.
/// let bad = HostTensor::from_f32([4], vec![1.0; 4]).unwrap();
/// assert!(exe.run(&[bad]).unwrap_err().to_string().contains("f32[5]"));
/// ```
pub struct Executable {
    args: Vec<(String, TensorType)>,
    program: KernelProgram,
    plan: MemoryPlan,
    compiled: CompiledProgram,
    ctx: CallContext,
    arena: AlignedBuffer,
    consts: Vec<Option<AlignedBuffer>>,
    timings: CompileTimings,
    optimize_stats: Option<OptimizeStats>,
    trace: Option<CompileTrace>,
}

/// What a traced compile kept ([`CompileOptions::trace`], or a dump).
#[derive(Clone, Debug)]
pub struct CompileTrace {
    /// The graph after each stage: the caller's history (or the input as `built`),
    /// then each optimizer pass.
    pub stages: Vec<Stage>,
    /// The machine-code listing of each generated function.
    pub asm: Vec<(String, String)>,
    /// The folder the dump was written to, if one was.
    pub dump: Option<PathBuf>,
}

/// The arena, constants and output tensors of `plan` together against `limit`.
fn check_plan(
    program: &KernelProgram,
    plan: &MemoryPlan,
    loops: usize,
    limit: usize,
) -> Result<(), CompileError> {
    // The loops' working memory (their bodies' arenas, carry slots) counts as arena.
    let arena = plan.arena_bytes.saturating_add(loops);
    let sum = |sizes: &mut dyn Iterator<Item = usize>| sizes.fold(0usize, usize::saturating_add);
    let consts = sum(&mut program.buffers.iter().filter_map(|b| match &b.kind {
        BufferKind::Const(_) => Some(b.ty.size_bytes()),
        _ => None,
    }));
    let outputs = sum(&mut program
        .outputs
        .iter()
        .map(|&o| program.buffer(o).ty.size_bytes()));
    let total = arena.saturating_add(consts).saturating_add(outputs);
    if total > limit {
        let largest = program
            .buffers
            .iter()
            .max_by_key(|b| b.ty.size_bytes())
            .map_or_else(String::new, |b| {
                format!(
                    "%{} of type {} ({} bytes)",
                    b.node.index(),
                    b.ty,
                    b.ty.size_bytes()
                )
            });
        return Err(CompileError::OverMemoryLimit {
            total,
            largest,
            arena,
            consts,
            outputs,
            limit,
        });
    }
    Ok(())
}

/// A copy of `src`, or `None` if the allocator refuses it.
fn try_copy<T: Clone>(src: &[T]) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(src.len()).ok()?;
    v.extend_from_slice(src);
    Some(v)
}

/// Copies a buffer of type `ty` at `ptr` into a host tensor; `None` if the
/// allocator refuses the tensor.
///
/// # Safety
/// `ptr` must hold a value of type `ty`.
unsafe fn read(ptr: *const u8, ty: &TensorType) -> Option<HostTensor> {
    let n = ty.shape.numel();
    // SAFETY: guaranteed by the caller.
    let data = unsafe {
        match ty.dtype {
            DType::F32 => {
                TensorData::F32(try_copy(std::slice::from_raw_parts(ptr as *const f32, n))?)
            }
            DType::F64 => {
                TensorData::F64(try_copy(std::slice::from_raw_parts(ptr as *const f64, n))?)
            }
            DType::I32 => {
                TensorData::I32(try_copy(std::slice::from_raw_parts(ptr as *const i32, n))?)
            }
            DType::Bool => {
                let mut v = Vec::new();
                v.try_reserve_exact(n).ok()?;
                v.extend(std::slice::from_raw_parts(ptr, n).iter().map(|&b| b != 0));
                TensorData::Bool(v)
            }
        }
    };
    Some(HostTensor::new(ty.shape.clone(), data).expect("sized from the type"))
}

impl Executable {
    /// Optimizes, schedules and compiles `graph` with the default options.
    pub fn compile(graph: &Graph) -> Result<Executable, CompileError> {
        Self::compile_with(graph, &CompileOptions::default())
    }

    /// Compiles `graph` with `options`.
    pub fn compile_with(
        graph: &Graph,
        options: &CompileOptions,
    ) -> Result<Executable, CompileError> {
        check_memory(graph, options.memory_limit)?;
        let traced = options.trace || options.dump_dir.is_some();
        let mut stages = Vec::new();
        if traced {
            stages = options.history.clone();
            if stages.is_empty() {
                stages.push(Stage::new("built", graph.clone(), Duration::ZERO));
            }
        }
        let t0 = Instant::now();
        let mut optimize_stats = None;
        let optimized = options.pipeline().run_with(graph, |stage| {
            if let Some(s) = stage.optimize_stats() {
                optimize_stats = Some(s.clone());
            }
            if traced {
                stages.push(stage.clone());
            }
        })?;
        let t1 = Instant::now();
        let program = schedule(&optimized)?;
        let t2 = Instant::now();
        let mut compiled = kiln_codegen::compile_with(
            &program,
            &CodegenOptions {
                disasm: traced,
                cranelift_only: !options.wide_loops,
            },
        )?;
        let timings = CompileTimings {
            optimize: t1 - t0,
            schedule: t2 - t1,
            codegen: t2.elapsed(),
        };
        let plan = program.plan_memory();
        check_plan(&program, &plan, compiled.loop_bytes(), options.memory_limit)?;
        let arena = AlignedBuffer::try_zeroed(plan.arena_bytes).ok_or(CompileError::Alloc {
            what: "arena",
            bytes: plan.arena_bytes,
        })?;
        let consts = program
            .buffers
            .iter()
            .map(|b| match &b.kind {
                BufferKind::Const(t) => AlignedBuffer::try_from_bytes(t.as_bytes())
                    .map(Some)
                    .ok_or(CompileError::Alloc {
                        what: "constant",
                        bytes: t.ty().size_bytes(),
                    }),
                _ => Ok(None),
            })
            .collect::<Result<_, _>>()?;
        let args = graph
            .args()
            .iter()
            .map(|&a| {
                let n = graph.node(a);
                (n.name.clone().unwrap_or_default(), n.ty.clone())
            })
            .collect();
        let mut ctx = compiled.context()?;
        ctx.workers = Workers::shared(options.threads);
        let asm = std::mem::take(&mut compiled.asm);
        let mut exe = Executable {
            args,
            program,
            plan,
            compiled,
            ctx,
            arena,
            consts,
            timings,
            optimize_stats,
            trace: traced.then_some(CompileTrace {
                stages,
                asm,
                dump: None,
            }),
        };
        if let Some(dir) = &options.dump_dir {
            let folder = crate::dump::write(dir, &exe).map_err(|e| CompileError::Dump {
                dir: dir.display().to_string(),
                message: e.to_string(),
            })?;
            if let Some(t) = exe.trace.as_mut() {
                t.dump = Some(folder);
            }
        }
        Ok(exe)
    }

    /// Every stage's graph and the machine code listing, when compiled with
    /// [`CompileOptions::trace`] or a dump folder.
    pub fn trace(&self) -> Option<&CompileTrace> {
        self.trace.as_ref()
    }

    /// The kernel program the executable runs.
    pub fn program(&self) -> &KernelProgram {
        &self.program
    }

    /// How many loop kernels run natively on wide vectors instead of as Cranelift
    /// code (see [`CompileOptions::wide_loops`]).
    pub fn wide_loops(&self) -> usize {
        self.compiled.wide.len()
    }

    /// The Cranelift IR of each generated function (for a loop kernel run natively
    /// on wide vectors, a note saying so).
    pub fn clif(&self) -> &[(String, String)] {
        &self.compiled.clif
    }

    pub fn timings(&self) -> &CompileTimings {
        &self.timings
    }

    /// What the optimizer did, if it ran.
    pub fn optimize_stats(&self) -> Option<&OptimizeStats> {
        self.optimize_stats.as_ref()
    }

    /// Sets the process group the program's `all_reduce` ops sum over (`None`, the
    /// default: this process alone, where `all_reduce` returns its operand).
    pub fn set_collective(&mut self, group: Option<std::sync::Arc<dyn Collective>>) {
        self.ctx.collective = group;
    }

    /// Names and types of the arguments, in calling order.
    pub fn args(&self) -> &[(String, TensorType)] {
        &self.args
    }

    /// Runs the compiled graph on `args` (in the graph's argument order).
    pub fn run(&mut self, args: &[HostTensor]) -> Result<Vec<HostTensor>, RunError> {
        let refs: Vec<&HostTensor> = args.iter().collect();
        self.run_refs(&refs)
    }

    /// Runs with arguments given by name, in any order.
    pub fn run_named(&mut self, args: &[(&str, &HostTensor)]) -> Result<Vec<HostTensor>, RunError> {
        for (name, _) in args {
            if !self.args.iter().any(|(n, _)| n == name) {
                return Err(RunError::UnknownArg(name.to_string()));
            }
        }
        let ordered = self
            .args
            .iter()
            .map(|(n, _)| {
                args.iter()
                    .find(|(name, _)| name == n)
                    .map(|(_, t)| *t)
                    .ok_or_else(|| RunError::MissingArg(n.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.run_refs(&ordered)
    }

    /// Runs with borrowed arguments in calling order.
    pub fn run_refs(&mut self, args: &[&HostTensor]) -> Result<Vec<HostTensor>, RunError> {
        let mut none: Vec<Option<&mut HostTensor>> =
            (0..self.program.outputs.len()).map(|_| None).collect();
        let outs = self.run_into(args, &mut none)?;
        Ok(outs
            .into_iter()
            .map(|o| o.expect("no destinations were given"))
            .collect())
    }

    /// Runs with borrowed arguments, writing output `i` straight into `dests[i]` where
    /// one is given (no copy: the kernel that computes it stores there), and
    /// returning the other outputs. A training loop passes spare tensors for the
    /// updated parameters and swaps them in afterwards, so a step neither allocates
    /// nor copies its parameters. Destinations must have the output's type.
    pub fn run_into(
        &mut self,
        args: &[&HostTensor],
        dests: &mut [Option<&mut HostTensor>],
    ) -> Result<Vec<Option<HostTensor>>, RunError> {
        let outputs = self.program.outputs.clone();
        if dests.len() != outputs.len() {
            return Err(RunError::Destinations(format!(
                "{} destinations for {} outputs",
                dests.len(),
                outputs.len()
            )));
        }
        for (i, d) in dests.iter().enumerate() {
            if let Some(d) = d {
                let ty = &self.program.buffer(outputs[i]).ty;
                if d.ty() != *ty {
                    return Err(RunError::Destinations(format!(
                        "output {i} is {ty}, its destination {}",
                        d.ty()
                    )));
                }
            }
        }
        if args.len() != self.args.len() {
            let names: Vec<&str> = self.args.iter().map(|(n, _)| n.as_str()).collect();
            return Err(RunError::ArgCount {
                expected: self.args.len(),
                got: args.len(),
                names: names.join(", "),
            });
        }
        for ((name, ty), a) in self.args.iter().zip(args) {
            if a.ty() != *ty {
                return Err(RunError::ArgType {
                    name: name.clone(),
                    expected: ty.clone(),
                    got: a.ty(),
                });
            }
        }
        let mut table: Vec<*mut u8> = self
            .program
            .buffers
            .iter()
            .enumerate()
            .map(|(i, b)| match &b.kind {
                // Arguments are only read by generated code.
                BufferKind::Arg(a) => args[*a].as_bytes().as_ptr() as *mut u8,
                BufferKind::Const(_) => self.consts[i].as_ref().expect("const buffer").as_mut_ptr(),
                // A temporary no kernel writes (its reduction was fused into its
                // consumer) has no memory and is never addressed.
                BufferKind::Temp => match self.plan.offsets[i] {
                    // SAFETY: the plan keeps every temporary inside the arena.
                    Some(off) => unsafe { self.arena.as_mut_ptr().add(off) },
                    None => std::ptr::null_mut(),
                },
            })
            .collect();
        // Temporaries that are outputs with a destination live in the destination.
        let mut redirected = vec![false; outputs.len()];
        for (i, d) in dests.iter_mut().enumerate() {
            let b = outputs[i];
            let first = outputs.iter().position(|&o| o == b) == Some(i);
            if let Some(d) = d
                && first
                && self.program.buffer(b).kind == BufferKind::Temp
            {
                table[b.index()] = d.as_mut_ptr();
                redirected[i] = true;
            }
        }
        self.ctx.error = None;
        // SAFETY: the table holds a live buffer of the scheduled type for every
        // buffer of the program (arguments were type-checked above), and the call
        // context is exclusively borrowed for the call.
        let status = unsafe { (self.compiled.entry())(table.as_ptr(), &mut self.ctx) };
        if status != 0 {
            return Err(RunError::Kernel(
                self.ctx
                    .error
                    .take()
                    .unwrap_or_else(|| "unknown failure".into()),
            ));
        }
        let mut result = Vec::with_capacity(outputs.len());
        for (i, &b) in outputs.iter().enumerate() {
            let ty = &self.program.buffer(b).ty;
            let value = if redirected[i] {
                None
            } else {
                // SAFETY: output buffers hold values of their type after the call.
                let v = unsafe { read(table[b.index()], ty) };
                Some(v.ok_or_else(|| RunError::OutOfMemory {
                    index: i,
                    ty: ty.clone(),
                    bytes: ty.size_bytes(),
                })?)
            };
            match (&mut dests[i], value) {
                (Some(d), Some(v)) => {
                    **d = v;
                    result.push(None);
                }
                (Some(_), None) => result.push(None),
                (None, v) => result.push(v),
            }
        }
        Ok(result)
    }
}
