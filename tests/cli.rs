//! The `kiln` debug tool, run as a process over the graphs in tests/data/.

use std::path::PathBuf;
use std::process::{Command, Output};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Runs `kiln ARGS` with KILN_DUMP cleared (so a developer's setting does not
/// litter the test run).
fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env_remove("KILN_DUMP")
        .output()
        .expect("the kiln binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(args: &[&str]) -> String {
    let o = kiln(args);
    assert!(
        o.status.success(),
        "kiln {args:?} failed: {}\n{}",
        stderr(&o),
        stdout(&o)
    );
    stdout(&o)
}

/// An MLP, a softmax, a CNN, and an RNN: a loop and a reverse loop over its
/// states (`scan` with a nested body).
const GRAPHS: [&str; 4] = ["mlp.kir", "softmax.kir", "conv_pool.kir", "rnn.kir"];

#[test]
fn every_stage_prints_for_every_graph() {
    for file in GRAPHS {
        let path = data(file);
        let path = path.to_str().unwrap();
        let built = ok(&["dump", path, "--stage", "built"]);
        assert!(built.starts_with("// stage: built\nfn "), "{built}");
        let optimized = ok(&["dump", path, "--stage", "optimized"]);
        assert!(optimized.contains("// stage: optimize\nfn "), "{optimized}");
        let scheduled = ok(&["dump", path, "--stage", "scheduled"]);
        assert!(scheduled.starts_with("program "), "{scheduled}");
        let kernels = ok(&["dump", path, "--stage", "kernels"]);
        assert!(
            kernels.lines().nth(1).unwrap().starts_with("k0 "),
            "{kernels}"
        );
        let clif = ok(&["dump", path, "--stage", "clif"]);
        assert!(clif.contains("; function entry\nfunction "), "{clif}");
        let asm = ok(&["dump", path, "--stage", "asm"]);
        assert!(asm.contains("bytes of machine code"), "{asm}");
        assert!(asm.contains("ret"), "{asm}");
        let all = ok(&["dump", path, "--stage", "all"]);
        for header in ["built", "optimize", "scheduled", "kernels", "clif", "asm"] {
            assert!(all.contains(&format!("==== {header} ====")), "{header}");
        }
        let dot = ok(&["dump", path, "--stage", "built", "--format", "dot"]);
        assert!(dot.starts_with("digraph"), "{dot}");
    }
}

#[test]
fn printed_graph_stages_parse_back() {
    let path = data("mlp.kir");
    let path = path.to_str().unwrap();
    for stage in ["built", "grad", "optimized"] {
        let text = ok(&["dump", path, "--grad", "loss", "--stage", stage]);
        let g = kiln::debug::parse_graph(&text).unwrap_or_else(|e| panic!("{stage}: {e}"));
        g.validate().unwrap();
    }
}

#[test]
fn grad_adds_a_gradient_output_per_parameter() {
    let path = data("mlp.kir");
    let text = ok(&[
        "dump",
        path.to_str().unwrap(),
        "--grad",
        "%28",
        "--stage",
        "grad",
    ]);
    assert!(text.starts_with("// stage: grad\n"));
    for p in ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"] {
        assert!(text.contains(&format!("grad.{p}: f32[")), "{p}\n{text}");
    }
    // Without --grad there is no grad stage.
    let o = kiln(&["dump", path.to_str().unwrap(), "--stage", "grad"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--grad"), "{}", stderr(&o));
    // A node that is not a scalar loss.
    let o = kiln(&["dump", path.to_str().unwrap(), "--grad", "logits"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("scalar"), "{}", stderr(&o));
}

#[test]
fn run_agrees_with_the_interpreter() {
    for file in GRAPHS {
        let out = ok(&["run", data(file).to_str().unwrap(), "--seed", "3"]);
        assert!(
            out.contains("outputs agree with the interpreter"),
            "{file}:\n{out}"
        );
    }
    // Gradients too, and the one_hot labels stay inside their depth.
    let out = ok(&["run", data("mlp.kir").to_str().unwrap(), "--grad", "loss"]);
    assert!(out.contains("grad.fc1.weight"), "{out}");
    assert!(out.contains("integers in [0, 4) (one_hot depth)"), "{out}");
    assert!(out.contains("all 6 outputs agree"), "{out}");
    let out = ok(&[
        "run",
        data("conv_pool.kir").to_str().unwrap(),
        "--grad",
        "loss",
    ]);
    assert!(out.contains("all 3 outputs agree"), "{out}");
    // Through loops: the backward loops of both scans.
    let out = ok(&["run", data("rnn.kir").to_str().unwrap(), "--grad", "loss"]);
    assert!(out.contains("grad.w_hh"), "{out}");
    assert!(out.contains("all 3 outputs agree"), "{out}");
}

#[test]
fn a_saved_w2_training_step_runs_and_agrees() {
    let out = ok(&["run", data("w2_step.kir").to_str().unwrap()]);
    // Adam's second moment and step count feed a sqrt: drawn positive, so the
    // updated parameters are finite and really compared.
    assert!(
        out.lines()
            .any(|l| l.starts_with("  adam.v.fc1.weight") && l.ends_with("uniform in [0.5, 1.5)")),
        "{out}"
    );
    assert!(!out.contains("non-finite"), "{out}");
    assert!(out.contains("all 20 outputs agree"), "{out}");
}

#[test]
fn run_fails_when_outputs_disagree() {
    // A zero tolerance cannot hold for a float reduction computed in another order.
    let o = kiln(&[
        "run",
        data("mlp.kir").to_str().unwrap(),
        "--grad",
        "loss",
        "--rtol",
        "0",
        "--atol",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("DIFFERS"), "{}", stdout(&o));
}

#[test]
fn stats_prints_counts_costs_and_times() {
    let out = ok(&["stats", data("mlp.kir").to_str().unwrap(), "--grad", "loss"]);
    for want in [
        "est. Mflop",
        "ops per stage:",
        "matmul_bias",
        "optimizer:",
        "kernels ",
        "arena ",
        "compile time per stage:",
        "codegen",
    ] {
        assert!(out.contains(want), "{want}\n{out}");
    }
    let grad_line = out.lines().find(|l| l.starts_with("grad ")).unwrap();
    assert!(
        grad_line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 29
    );
}

#[test]
fn malformed_files_report_line_and_column() {
    let o = kiln(&["dump", data("malformed.kir").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("malformed.kir:3:8: `frob`: unknown op"),
        "{err}"
    );

    let o = kiln(&["run", data("mistyped.kir").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("mistyped.kir:3:"), "{err}");
    assert!(err.contains("f32[5]"), "{err}");

    let o = kiln(&["stats", data("no_such_file.kir").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no_such_file.kir"), "{}", stderr(&o));
}

#[test]
fn bad_usage_is_an_error_and_help_documents_the_tool() {
    let o = kiln(&["dump", data("mlp.kir").to_str().unwrap(), "--stage", "nope"]);
    assert!(!o.status.success());
    let o = kiln(&[
        "dump",
        data("mlp.kir").to_str().unwrap(),
        "--stage",
        "clif",
        "--format",
        "dot",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no DOT form"), "{}", stderr(&o));

    let help = ok(&["--help"]);
    for want in ["dump", "run", "stats", "--grad", "KILN_DUMP"] {
        assert!(help.contains(want), "{want}\n{help}");
    }
    let help = ok(&["dump", "--help"]);
    for want in [
        "--stage",
        "built",
        "optimized",
        "kernels",
        "asm",
        "--format",
    ] {
        assert!(help.contains(want), "{want}\n{help}");
    }
}

#[test]
fn kiln_dump_env_writes_a_folder_per_compile() {
    let dir = std::env::temp_dir().join(format!("kiln-cli-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["run", data("softmax.kir").to_str().unwrap()])
        .env("KILN_DUMP", &dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let folder = dir.join("0000-softmax");
    assert!(stderr(&o).contains("0000-softmax"), "{}", stderr(&o));
    for f in [
        "00-built.kir",
        "01-optimize.dot",
        "kernels.txt",
        "summary.txt",
    ] {
        assert!(folder.join(f).is_file(), "{f}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 18, finding 1: graphs the type checker accepts but whose buffers are over
/// the memory limit are an error and exit 1, not an aborted allocation: in the
/// compile, and in `kiln run` before it draws random arguments.
#[test]
fn graphs_over_the_memory_limit_are_an_error() {
    for cmd in ["run", "stats"] {
        let o = kiln(&[cmd, data("huge.kir").to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{cmd}: {}", stderr(&o));
        let err = stderr(&o);
        for want in [
            "node %1 (broadcast)",
            "f32[17179869184]",
            "68719476736 bytes",
            "memory limit of 17179869184 bytes",
        ] {
            assert!(err.contains(want), "{cmd}: `{want}` not in {err}");
        }
    }
    let o = kiln(&["run", data("huge_arg.kir").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("node %0 `x` (input)"), "{err}");
    assert!(err.contains("137438953472 bytes"), "{err}");
}

#[test]
fn non_finite_gradients_through_padding_agree() {
    // Issue 18's reproducer: `log` of a zero-padded convolution gives -inf windows
    // and a NaN gradient at the padding; the padding's zeros are multiplied (0 *
    // NaN is NaN) in the interpreter as in the native kernels.
    for seed in ["0", "1", "2"] {
        let out = ok(&[
            "run",
            data("neginf_pool.kir").to_str().unwrap(),
            "--grad",
            "loss",
            "--seed",
            seed,
        ]);
        assert!(out.contains("all 2 outputs agree"), "seed {seed}:\n{out}");
    }
}
