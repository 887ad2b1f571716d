//! `KILN_DUMP`: every compile writes each stage into a folder of its own.
//!
//! With `KILN_DUMP=DIR` in the environment (or [`CompileOptions::dump_dir`] set from
//! code), each compile creates `DIR/NNNN-NAME/` (a sequence number, then the graph's
//! name) holding:
//!
//! | file | what |
//! |---|---|
//! | `NN-STAGE.kir`, `NN-STAGE.dot` | the graph after each stage: `built`, `grad` (when the caller differentiated), then each optimizer pass, in the text format and as Graphviz |
//! | `optimize-stats.txt` | the egg run: sizes, costs, e-graph, rules that fired |
//! | `kernels.txt` | the kernel program: buffers, memory plan, fused loop kernels, library calls |
//! | `clif/FUNCTION.clif` | the Cranelift IR of each generated function (the same note for a wide kernel) |
//! | `asm/FUNCTION.s` | its machine code after register allocation (Cranelift's VCode listing); for a loop kernel run natively on wide vectors ([`CompileOptions::wide_loops`]), a note saying so |
//! | `timings.txt` | time per compile stage |
//! | `summary.txt` | the headline numbers and the list of files |
//!
//! [`CompileOptions::dump_dir`]: crate::CompileOptions::dump_dir
//! [`CompileOptions::wide_loops`]: crate::CompileOptions::wide_loops

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_ir::Graph;
use kiln_ir::kernel::BufferKind;
use kiln_passes::optimize::graph_cost;

use crate::Executable;

/// The environment variable naming the dump folder.
pub const DUMP_ENV: &str = "KILN_DUMP";

/// The dump folder named by `KILN_DUMP`, if it is set and not empty.
pub fn dump_dir_from_env() -> Option<PathBuf> {
    std::env::var_os(DUMP_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Milliseconds, for reports.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A file-name-safe form of `name` (at most 40 characters).
fn file_safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if s.is_empty() { "graph".into() } else { s }
}

/// Creates `dir/NNNN-name/`, NNNN one more than the highest number already there.
/// Safe against concurrent compiles: creating a folder that exists fails, and the
/// next number is tried.
fn create_numbered(dir: &Path, name: &str) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let mut next = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name();
            let n = n.to_str()?;
            n.split_once('-')?.0.parse::<usize>().ok()
        })
        .max()
        .map_or(0, |m| m + 1);
    loop {
        let path = dir.join(format!("{next:04}-{}", file_safe(name)));
        match fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => next += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Writes files under one folder and remembers their names for the summary.
struct Writer {
    root: PathBuf,
    files: Vec<(String, usize)>,
}

impl Writer {
    fn file(&mut self, rel: &str, contents: &str) -> io::Result<()> {
        let path = self.root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, contents)?;
        self.files.push((rel.to_string(), contents.len()));
        Ok(())
    }
}

/// The text format of `graph`, led by a comment naming the stage.
pub fn stage_text(stage: &str, graph: &Graph) -> String {
    format!("// stage: {stage}\n{graph}")
}

/// Writes every stage of the compile that produced `exe` into a new numbered folder
/// under `dir` and returns that folder.
///
/// The executable must have been compiled with a trace ([`CompileOptions::trace`]
/// or a dump folder); otherwise only the kernel program, CLIF and timings exist.
///
/// [`CompileOptions::trace`]: crate::CompileOptions::trace
pub fn write(dir: &Path, exe: &Executable) -> io::Result<PathBuf> {
    let program = exe.program();
    let root = create_numbered(dir, &program.name)?;
    let mut w = Writer {
        root: root.clone(),
        files: Vec::new(),
    };
    let stages = exe.trace().map(|t| t.stages.as_slice()).unwrap_or_default();
    for (i, stage) in stages.iter().enumerate() {
        let base = format!("{i:02}-{}", file_safe(&stage.pass));
        w.file(
            &format!("{base}.kir"),
            &stage_text(&stage.pass, &stage.graph),
        )?;
        w.file(&format!("{base}.dot"), &kiln_ir::dot::to_dot(&stage.graph))?;
    }
    if let Some(stats) = exe.optimize_stats() {
        w.file("optimize-stats.txt", &stats.to_string())?;
    }
    w.file("kernels.txt", &program.to_string())?;
    for (name, text) in exe.clif() {
        w.file(&format!("clif/{}.clif", file_safe(name)), text)?;
    }
    if let Some(trace) = exe.trace() {
        for (name, text) in &trace.asm {
            w.file(&format!("asm/{}.s", file_safe(name)), text)?;
        }
    }
    w.file("timings.txt", &timings_text(exe))?;

    let summary = summary_text(exe, &root, &w.files);
    w.file("summary.txt", &summary)?;
    Ok(root)
}

/// Time per compile stage, one per line: the caller's stages (e.g. autodiff), each
/// optimizer pass with the egg phases, scheduling and codegen.
pub fn timings_text(exe: &Executable) -> String {
    let t = exe.timings();
    let mut s = String::new();
    if let Some(trace) = exe.trace() {
        for st in &trace.stages {
            let _ = writeln!(s, "{:<24} {:>9.3} ms", st.pass, ms(st.duration));
        }
    } else {
        let _ = writeln!(s, "{:<24} {:>9.3} ms", "optimize", ms(t.optimize));
    }
    if let Some(o) = exe.optimize_stats() {
        for (what, d) in [
            ("  egg convert", o.convert_time),
            ("  egg saturate", o.saturate_time),
            ("  egg extract", o.extract_time),
        ] {
            let _ = writeln!(s, "{what:<24} {:>9.3} ms", ms(d));
        }
    }
    let _ = writeln!(s, "{:<24} {:>9.3} ms", "schedule", ms(t.schedule));
    let _ = writeln!(s, "{:<24} {:>9.3} ms", "codegen", ms(t.codegen));
    let _ = writeln!(
        s,
        "{:<24} {:>9.3} ms",
        "total",
        ms(t.optimize + t.schedule + t.codegen)
    );
    s
}

/// Bytes of buffers in the kernel program: arena (with and without reuse),
/// arguments and constants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferBytes {
    /// Arena holding the temporaries, after liveness-based reuse.
    pub arena: usize,
    /// What the temporaries would take without reuse.
    pub unshared: usize,
    /// The arguments (inputs and parameters).
    pub args: usize,
    /// Constants baked into the executable.
    pub consts: usize,
}

/// The buffer bytes of `exe`'s kernel program.
pub fn buffer_bytes(exe: &Executable) -> BufferBytes {
    let program = exe.program();
    let plan = program.plan_memory();
    let mut b = BufferBytes {
        arena: plan.arena_bytes,
        unshared: plan.unshared_bytes,
        ..BufferBytes::default()
    };
    for buf in &program.buffers {
        match buf.kind {
            BufferKind::Arg(_) => b.args += buf.ty.size_bytes(),
            BufferKind::Const(_) => b.consts += buf.ty.size_bytes(),
            BufferKind::Temp => {}
        }
    }
    b
}

/// The headline numbers of a compile: nodes per stage, kernels, buffer bytes,
/// compile time.
pub fn headline(exe: &Executable) -> String {
    let mut s = String::new();
    if let Some(trace) = exe.trace() {
        for st in &trace.stages {
            let c = graph_cost(&st.graph);
            let _ = writeln!(
                s,
                "{:<12} {:>6} nodes  est. {:>10.3} MB moved  {:>10.3} Mflop",
                st.pass,
                st.graph.node_count(),
                c.bytes / 1e6,
                c.flops / 1e6
            );
        }
    }
    if let Some(o) = exe.optimize_stats() {
        let _ = writeln!(
            s,
            "optimizer    {} -> {} nodes, {} fused, {} e-nodes, {} iterations, {}",
            o.nodes_before, o.nodes_after, o.fused_nodes, o.e_nodes, o.iterations, o.stop_reason
        );
    }
    let program = exe.program();
    let (loops, calls) = program.kernel_counts();
    let _ = writeln!(
        s,
        "kernels      {loops} loop kernels, {calls} library calls, {} buffers, {} functions ({} loops run wide)",
        program.buffers.len(),
        exe.clif().len(),
        exe.wide_loops()
    );
    let b = buffer_bytes(exe);
    let _ = writeln!(
        s,
        "buffers      arena {} bytes ({} without reuse), arguments {} bytes, constants {} bytes",
        b.arena, b.unshared, b.args, b.consts
    );
    let t = exe.timings();
    let _ = writeln!(
        s,
        "compile      {:.2} ms (optimize {:.2}, schedule {:.2}, codegen {:.2})",
        ms(t.optimize + t.schedule + t.codegen),
        ms(t.optimize),
        ms(t.schedule),
        ms(t.codegen)
    );
    s
}

fn summary_text(exe: &Executable, root: &Path, files: &[(String, usize)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "kiln compile of `{}` ({})\n",
        exe.program().name,
        root.display()
    );
    s.push_str(&headline(exe));
    s.push_str("\nfiles:\n");
    for (name, bytes) in files {
        let _ = writeln!(s, "  {name:<28} {bytes:>9} bytes");
    }
    s.push_str("  summary.txt\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_folders_count_up_and_names_are_file_safe() {
        let dir = std::env::temp_dir().join(format!("kiln-dump-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let a = create_numbered(&dir, "w2").unwrap();
        let b = create_numbered(&dir, "a/b c").unwrap();
        assert_eq!(a.file_name().unwrap(), "0000-w2");
        assert_eq!(b.file_name().unwrap(), "0001-a_b_c");
        fs::remove_dir_all(&dir).unwrap();
    }
}
