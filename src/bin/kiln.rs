//! `kiln`: print any compile stage of a graph saved in the text format, run it
//! against the interpreter, or count what it costs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use kiln::debug::{self, Agreement};
use kiln::passes::optimize::{Stage, graph_cost};
use kiln::passes::schedule::{Kernel, KernelProgram};
use kiln::runtime::{CompileOptions, Executable, check_memory, dump};

/// Look inside kiln's compiler: print every stage of a graph, run it against the
/// reference interpreter, or measure it.
///
/// FILE is a graph in kiln's text format (`.kir`), as printed by `Graph`'s Display,
/// `kiln::save_graph` or `TrainStep::save`. Nodes are numbered `%N` as
/// `kiln dump FILE --stage built` prints them.
///
/// Set KILN_DUMP=DIR to also write every stage of each compile into DIR.
#[derive(Parser, Debug)]
#[command(name = "kiln", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Differentiate the scalar node LOSS_NODE (`%N` or an output name) with
    /// respect to every `param` argument before the other stages; the gradients
    /// become extra outputs `grad.NAME`.
    #[arg(long, global = true, value_name = "LOSS_NODE")]
    grad: Option<String>,
    /// Skip the egg optimizer (schedule and compile the graph as given).
    #[arg(long, global = true)]
    no_optimize: bool,
}

const EXAMPLES: &str = "Examples:
  kiln dump mlp.kir --stage optimized
  kiln dump mlp.kir --stage built --format dot | dot -Tsvg > mlp.svg
  kiln dump mlp.kir --grad loss --stage kernels
  kiln run mlp.kir --seed 3
  kiln stats mlp.kir
  KILN_DUMP=/tmp/kiln kiln run mlp.kir";

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a compile stage.
    Dump {
        /// The graph, in the text format.
        file: PathBuf,
        /// Which stage: the graph as read (built), after --grad (grad), after the
        /// optimizer (optimized), the kernel program with its buffers and loop
        /// bodies (scheduled), one line per kernel (kernels), Cranelift IR (clif),
        /// machine code (asm), or all of them.
        #[arg(long, value_enum, default_value_t = StageArg::Optimized)]
        stage: StageArg,
        /// Text format or Graphviz DOT (graph stages only).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Compile and run on seeded random arguments; compare every output with the
    /// interpreter. Exits with status 1 if any output disagrees.
    ///
    /// Float arguments are uniform in [-1, 1), except those that reach sqrt,
    /// rsqrt, log or pow through elementwise ops only (optimizer state such as
    /// Adam's second moment), which lie in [0.5, 1.5); i32 arguments that index
    /// (gather, scatter_add, one_hot) lie in [0, size of the indexed axis), other
    /// i32 arguments in [1, 10); booleans are random. Values that are NaN or
    /// infinite on both sides count as agreeing and are reported.
    Run {
        /// The graph, in the text format.
        file: PathBuf,
        /// Seed of the random arguments.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Relative tolerance.
        #[arg(long, default_value_t = 1e-4)]
        rtol: f64,
        /// Absolute tolerance.
        #[arg(long, default_value_t = 1e-5)]
        atol: f64,
    },
    /// Node counts, estimated flops and bytes per stage, kernels, buffers, and
    /// compile time per stage.
    Stats {
        /// The graph, in the text format.
        file: PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum StageArg {
    Built,
    Grad,
    Optimized,
    Scheduled,
    Kernels,
    Clif,
    Asm,
    All,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Text,
    Dot,
}

type Error = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The graph stages before compiling: `built` (as read) and, with `--grad`, `grad`.
fn front_stages(cli: &Cli, file: &PathBuf) -> Result<Vec<Stage>, Error> {
    let t = Instant::now();
    let graph = kiln::load_graph(file)?;
    graph.validate()?;
    let mut stages = vec![Stage::new("built", graph, t.elapsed())];
    if let Some(loss) = &cli.grad {
        let t = Instant::now();
        let g = debug::differentiate(&stages[0].graph, loss)?;
        stages.push(Stage::new("grad", g, t.elapsed()));
    }
    Ok(stages)
}

/// Compiles the last front stage; with `trace`, keeps every stage on the
/// executable. Dumps if KILN_DUMP is set.
fn compile(cli: &Cli, front: &[Stage], trace: bool) -> Result<Executable, Error> {
    let options = CompileOptions {
        optimize: !cli.no_optimize,
        trace,
        history: front.to_vec(),
        ..CompileOptions::default()
    };
    let graph = &front.last().expect("built").graph;
    let exe = Executable::compile_with(graph, &options)?;
    if let Some(dir) = exe.trace().and_then(|t| t.dump.as_ref()) {
        eprintln!("kiln: dumped to {}", dir.display());
    }
    Ok(exe)
}

fn run(cli: &Cli) -> Result<ExitCode, Error> {
    match &cli.command {
        Command::Dump {
            file,
            stage,
            format,
        } => {
            let front = front_stages(cli, file)?;
            print!("{}", dump_stage(cli, &front, *stage, *format)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            file,
            seed,
            rtol,
            atol,
        } => run_compare(cli, file, *seed, *rtol, *atol),
        Command::Stats { file } => {
            let front = front_stages(cli, file)?;
            let exe = compile(cli, &front, true)?;
            print!("{}", stats(&exe));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn graph_out(stage: &Stage, format: Format) -> String {
    match format {
        Format::Text => dump::stage_text(&stage.pass, &stage.graph),
        Format::Dot => kiln::ir::dot::to_dot(&stage.graph),
    }
}

fn dump_stage(
    cli: &Cli,
    front: &[Stage],
    which: StageArg,
    format: Format,
) -> Result<String, Error> {
    let no_dot = |what: &str| -> Result<String, Error> {
        Err(format!(
            "stage `{what}` has no DOT form; --format dot works for built, grad and optimized"
        )
        .into())
    };
    match which {
        StageArg::Built => return Ok(graph_out(&front[0], format)),
        StageArg::Grad => {
            return match front.get(1) {
                Some(s) => Ok(graph_out(s, format)),
                None => Err("--stage grad needs --grad LOSS_NODE".into()),
            };
        }
        StageArg::Scheduled | StageArg::Kernels | StageArg::Clif | StageArg::Asm
            if format == Format::Dot =>
        {
            return no_dot(&format!("{which:?}").to_lowercase());
        }
        _ => {}
    }
    let exe = compile(cli, front, true)?;
    let trace = exe.trace().expect("compiled with a trace");
    let optimized = || {
        trace
            .stages
            .last()
            .expect("at least the built stage")
            .clone()
    };
    let functions = |list: &[(String, String)]| {
        let mut s = String::new();
        for (name, text) in list {
            let _ = writeln!(s, "; function {name}\n{text}");
        }
        s
    };
    Ok(match which {
        StageArg::Optimized => graph_out(&optimized(), format),
        StageArg::Scheduled => exe.program().to_string(),
        StageArg::Kernels => kernel_table(exe.program()),
        StageArg::Clif => functions(exe.clif()),
        StageArg::Asm => functions(&trace.asm),
        StageArg::All => {
            let mut s = String::new();
            for st in &trace.stages {
                if format == Format::Text {
                    let _ = writeln!(s, "==== {} ====", st.pass);
                }
                s.push_str(&graph_out(st, format));
                if let (Format::Text, Some(r)) = (format, &st.report) {
                    let _ = write!(s, "\n==== {} statistics ====\n{r}", st.pass);
                }
                s.push('\n');
            }
            if format == Format::Text {
                let _ = write!(s, "==== scheduled ====\n{}\n", exe.program());
                let _ = write!(s, "==== kernels ====\n{}\n", kernel_table(exe.program()));
                let _ = write!(s, "==== clif ====\n{}", functions(exe.clif()));
                let _ = write!(s, "==== asm ====\n{}", functions(&trace.asm));
                let _ = write!(s, "==== timings ====\n{}", dump::timings_text(&exe));
            }
            s
        }
        StageArg::Built | StageArg::Grad => unreachable!("handled above"),
    })
}

/// One line per kernel: what it computes, over which loops, into which buffer.
fn kernel_table(p: &KernelProgram) -> String {
    let (loops, calls) = p.kernel_counts();
    let mut s = format!(
        "{} kernels ({loops} loops, {calls} library calls)\n",
        p.kernels.len()
    );
    for (i, k) in p.kernels.iter().enumerate() {
        let out = p.buffer(k.out());
        let what = match k {
            Kernel::Loop(l) => {
                let dims: Vec<String> = l.dims.iter().map(|d| d.to_string()).collect();
                let red = l
                    .reduce
                    .as_ref()
                    .map(|r| format!(", {} over the last {}", r.kind.name(), r.count))
                    .unwrap_or_default();
                format!(
                    "loop [{}]{red}, {} exprs{}",
                    dims.join(", "),
                    l.exprs.len(),
                    if l.rows.is_empty() {
                        String::new()
                    } else {
                        format!(", {} row reductions", l.rows.len())
                    }
                )
            }
            Kernel::Call(c) => format!("call {}", c.op),
            Kernel::Scan(l) => format!(
                "scan of {} steps{}, body of {} kernels",
                l.length,
                if l.reverse { " (reverse)" } else { "" },
                l.body.kernels.len()
            ),
        };
        let _ = writeln!(
            s,
            "k{i:<4} b{:<5} {:<20} {:>10} B  {what}  (%{})",
            k.out().index(),
            out.ty.to_string(),
            out.ty.size_bytes(),
            out.node.index()
        );
    }
    s
}

fn run_compare(
    cli: &Cli,
    file: &PathBuf,
    seed: u64,
    rtol: f64,
    atol: f64,
) -> Result<ExitCode, Error> {
    let front = front_stages(cli, file)?;
    let graph = &front.last().expect("built").graph;
    // Before drawing the arguments: a graph too large to compile must not abort
    // here, allocating them.
    check_memory(graph, CompileOptions::default().memory_limit)?;
    let args = debug::random_args(graph, seed);
    println!(
        "graph `{}`: {} arguments (seed {seed})",
        graph.name(),
        args.len()
    );
    for (&a, (t, range)) in graph.args().iter().zip(&args) {
        let name = graph.node(a).name.clone().unwrap_or_default();
        println!("  {name:<24} {:<20} {range}", t.ty().to_string());
    }
    let start = Instant::now();
    let mut exe = compile(cli, &front, false)?;
    println!("compiled in {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    let values: Vec<_> = args.into_iter().map(|(t, _)| t).collect();
    let got = exe.run(&values)?;
    let want = kiln::ir::interp::run(graph, &values)?;
    println!(
        "{:<24} {:<20} {:>12} {:>12}  verdict (rtol {rtol:e}, atol {atol:e})",
        "output", "type", "max abs err", "max rel err"
    );
    let mut bad = 0;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let name = graph.outputs()[i]
            .name
            .clone()
            .unwrap_or_else(|| format!("#{i}"));
        let a: Agreement = debug::compare(g, w, rtol, atol);
        let mut verdict = if a.ok() {
            "ok".to_string()
        } else {
            bad += 1;
            format!("DIFFERS ({} elements)", a.failures + a.nonfinite_mismatches)
        };
        if a.nonfinite_matches > 0 {
            let _ = write!(
                verdict,
                ", {} non-finite on both sides",
                a.nonfinite_matches
            );
        }
        println!(
            "{name:<24} {:<20} {:>12.3e} {:>12.3e}  {verdict}",
            w.ty().to_string(),
            a.max_abs,
            a.max_rel
        );
    }
    if bad == 0 {
        println!("all {} outputs agree with the interpreter", want.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{bad} of {} outputs disagree with the interpreter",
            want.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

fn stats(exe: &Executable) -> String {
    let trace = exe.trace().expect("compiled with a trace");
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:>7} {:>14} {:>14}",
        "stage", "nodes", "est. Mflop", "est. MB moved"
    );
    for st in &trace.stages {
        let c = graph_cost(&st.graph);
        let _ = writeln!(
            s,
            "{:<10} {:>7} {:>14.3} {:>14.3}",
            st.pass,
            st.graph.node_count(),
            c.flops / 1e6,
            c.bytes / 1e6
        );
    }
    let _ = writeln!(s, "\nops per stage:");
    let mut counts: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, st) in trace.stages.iter().enumerate() {
        for id in st.graph.node_ids() {
            let e = counts
                .entry(st.graph.node(id).op.mnemonic())
                .or_insert_with(|| vec![0; trace.stages.len()]);
            e[i] += 1;
        }
    }
    let _ = write!(s, "  {:<20}", "op");
    for st in &trace.stages {
        let _ = write!(s, " {:>9}", st.pass);
    }
    s.push('\n');
    for (op, n) in &counts {
        let _ = write!(s, "  {op:<20}");
        for c in n {
            let _ = write!(s, " {c:>9}");
        }
        s.push('\n');
    }
    if let Some(o) = exe.optimize_stats() {
        let _ = write!(s, "\noptimizer:\n{o}");
    }
    let _ = write!(s, "\n{}", dump::headline(exe));
    let _ = write!(s, "\ncompile time per stage:\n{}", dump::timings_text(exe));
    s
}
