//! KILN_DUMP, set from code through `CompileOptions::dump_dir` (so tests stay
//! independent of the process environment), and saving graphs to .kir files.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use kiln::prelude::*;
use kiln::runtime::CompileOptions;
use kiln::workloads;

/// A fresh folder for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-dump-{test}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

/// Every file under `dir`, relative, with `/` separators.
fn files(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_str().unwrap();
                out.insert(rel.replace('\\', "/"));
            }
        }
    }
    out
}

/// W2 (docs/WORKLOADS.md): MLP 784-128-64-10, ReLU, softmax cross-entropy, Adam,
/// batch 64.
fn w2_step() -> TrainStep {
    workloads::w2_step(64, &mut Rng::seed(42)).unwrap()
}

#[test]
fn w2_step_dump_has_every_stage_and_each_graph_parses_back() {
    let dir = scratch("w2");
    let mut step = w2_step();
    let (forward_text, step_text) = (step.forward_graph().to_string(), step.graph().to_string());
    let options = CompileOptions {
        dump_dir: Some(dir.clone()),
        ..CompileOptions::default()
    };
    let exe = step.compile_with(&options).unwrap();
    let folder = exe.trace().unwrap().dump.clone().unwrap();
    assert_eq!(folder, dir.join("0000-w2"));
    let (loops, calls) = exe.program().kernel_counts();

    let got = files(&folder);
    let mut want: BTreeSet<String> = [
        "00-built.kir",
        "00-built.dot",
        "01-grad.kir",
        "01-grad.dot",
        "02-optimize.kir",
        "02-optimize.dot",
        "optimize-stats.txt",
        "kernels.txt",
        "timings.txt",
        "summary.txt",
        "clif/entry.clif",
        "asm/entry.s",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for (name, _) in exe.clif() {
        if name != "entry" {
            want.insert(format!("clif/{name}.clif"));
            want.insert(format!("asm/{name}.s"));
        }
    }
    assert_eq!(got, want);
    // One CLIF function per loop kernel, plus the entry point.
    assert_eq!(exe.clif().len(), loops + 1);

    // Each graph file parses back to the graph of its stage.
    let stages = &exe.trace().unwrap().stages;
    let names: Vec<&str> = stages.iter().map(|s| s.pass.as_str()).collect();
    assert_eq!(names, ["built", "grad", "optimize"]);
    for (i, stage) in stages.iter().enumerate() {
        let path = folder.join(format!("{i:02}-{}.kir", stage.pass));
        let g = kiln::load_graph(&path).unwrap_or_else(|e| panic!("{e}"));
        g.validate().unwrap();
        assert_eq!(g.to_string(), stage.graph.to_string(), "{}", path.display());
        let dot = fs::read_to_string(folder.join(format!("{i:02}-{}.dot", stage.pass))).unwrap();
        assert!(dot.starts_with("digraph"));
    }
    assert_eq!(stages[0].graph.to_string(), forward_text);
    assert_eq!(stages[1].graph.to_string(), step_text);

    let summary = fs::read_to_string(folder.join("summary.txt")).unwrap();
    for want in [
        format!("kernels      {loops} loop kernels, {calls} library calls"),
        "arena ".to_string(),
        "compile ".to_string(),
        "02-optimize.kir".to_string(),
        "asm/entry.s".to_string(),
    ] {
        assert!(summary.contains(&want), "{want}\n{summary}");
    }
    let timings = fs::read_to_string(folder.join("timings.txt")).unwrap();
    for stage in ["grad", "optimize", "egg saturate", "schedule", "codegen"] {
        assert!(timings.contains(stage), "{stage}\n{timings}");
    }
    let asm = fs::read_to_string(folder.join("asm/entry.s")).unwrap();
    assert!(
        asm.contains("bytes of machine code") && asm.contains("call"),
        "{asm}"
    );
    let stats = fs::read_to_string(folder.join("optimize-stats.txt")).unwrap();
    assert!(stats.contains("fusion/matmul-bias"), "{stats}");

    // The dumped step still trains.
    let mut rng = Rng::seed(1);
    let xs = workloads::uniform(&mut rng, &[64, 784], 0.0, 1.0);
    let ys = workloads::labels(&mut rng, 64, 10);
    let first = step.run(&[("x", &xs), ("labels", &ys)]).unwrap().loss;
    let second = step.run(&[("x", &xs), ("labels", &ys)]).unwrap().loss;
    assert!(second < first);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn each_compile_gets_the_next_number_and_no_dump_without_a_folder() {
    let dir = scratch("seq");
    let g = GraphBuilder::new("tiny graph");
    let x = g.input("x", DType::F32, [4]);
    let model = g.build(&[("y", &x.relu())]).unwrap();
    let options = CompileOptions {
        dump_dir: Some(dir.clone()),
        ..CompileOptions::default()
    };
    for _ in 0..2 {
        kiln::Executable::compile_with(&model.graph, &options).unwrap();
    }
    let names: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["0000-tiny_graph".into(), "0001-tiny_graph".into()])
    );
    // A plain compile has no history: the input is the `built` stage.
    let got = files(&dir.join("0001-tiny_graph"));
    assert!(
        got.contains("00-built.kir") && got.contains("01-optimize.kir"),
        "{got:?}"
    );

    // Neither a trace nor a dump unless asked.
    let options = CompileOptions {
        dump_dir: None,
        ..CompileOptions::default()
    };
    let exe = kiln::Executable::compile_with(&model.graph, &options).unwrap();
    assert!(exe.trace().is_none());
    // A trace without a dump keeps the stages in memory only.
    let options = CompileOptions {
        dump_dir: None,
        trace: true,
        ..CompileOptions::default()
    };
    let exe = kiln::Executable::compile_with(&model.graph, &options).unwrap();
    let trace = exe.trace().unwrap();
    assert!(trace.dump.is_none());
    assert_eq!(trace.stages.len(), 2);
    assert_eq!(trace.asm.len(), exe.clif().len());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unwritable_dump_folder_is_a_compile_error() {
    let dir = scratch("unwritable");
    fs::write(&dir, "a file, not a folder").unwrap();
    let g = GraphBuilder::new("g");
    let x = g.input("x", DType::F32, [4]);
    let model = g.build(&[("y", &x.relu())]).unwrap();
    let options = CompileOptions {
        dump_dir: Some(dir.clone()),
        ..CompileOptions::default()
    };
    let err = kiln::Executable::compile_with(&model.graph, &options)
        .err()
        .unwrap();
    assert!(err.to_string().contains("compile dump"), "{err}");
    fs::remove_file(&dir).unwrap();
}

#[test]
fn train_steps_and_graphs_save_to_kir_files() {
    let dir = scratch("save");
    fs::create_dir_all(&dir).unwrap();
    let step = w2_step();
    step.save(dir.join("w2_step.kir")).unwrap();
    kiln::save_graph(step.forward_graph(), dir.join("w2_forward.kir")).unwrap();
    let back = kiln::load_graph(dir.join("w2_step.kir")).unwrap();
    assert_eq!(back.to_string(), step.graph().to_string());
    let back = kiln::load_graph(dir.join("w2_forward.kir")).unwrap();
    assert_eq!(back.to_string(), step.forward_graph().to_string());
    fs::remove_dir_all(&dir).unwrap();
}
