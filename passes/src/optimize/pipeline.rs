//! The pass manager: named graph-to-graph passes run in order, with a hook that
//! sees the graph after each one. It is the one way compile stages are run and
//! recorded: `kiln_runtime::Executable` compiles through it, and the stages it
//! records (after the caller's own history, such as a training step's `built` and
//! `grad` graphs) are what `KILN_DUMP`, `Executable::trace` and the `kiln` tool
//! show.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_ir::Graph;

use super::{OptimizeConfig, OptimizeStats, optimize_with};

/// What a pass says about its run.
#[derive(Clone, Debug)]
pub enum Report {
    /// The egg optimizer's statistics.
    Optimize(OptimizeStats),
    /// Free text, for passes without statistics of their own.
    Text(String),
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Report::Optimize(stats) => stats.fmt(f),
            Report::Text(t) => f.write_str(t),
        }
    }
}

/// What a pass returns: the new graph and, optionally, a report.
#[derive(Clone, Debug)]
pub struct PassOutput {
    pub graph: Graph,
    pub report: Option<Report>,
}

type PassFn = dyn Fn(&Graph) -> Result<PassOutput, Box<dyn Error + Send + Sync>> + Send + Sync;

/// One named pass.
pub struct Pass {
    name: String,
    run: Box<PassFn>,
}

impl Pass {
    /// A pass called `name` running `run`.
    pub fn new(
        name: impl Into<String>,
        run: impl Fn(&Graph) -> Result<PassOutput, Box<dyn Error + Send + Sync>> + Send + Sync + 'static,
    ) -> Self {
        Pass {
            name: name.into(),
            run: Box::new(run),
        }
    }

    /// Dead-code elimination.
    pub fn dce() -> Self {
        Pass::new("dce", |g| {
            Ok(PassOutput {
                graph: crate::eliminate_dead_code(g)?,
                report: None,
            })
        })
    }

    /// The egg optimizer; its report is the run's [`super::OptimizeStats`].
    pub fn optimize(config: OptimizeConfig) -> Self {
        Pass::new("optimize", move |g| {
            let (graph, stats) = optimize_with(g, &config)?;
            Ok(PassOutput {
                graph,
                report: Some(Report::Optimize(stats)),
            })
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for Pass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pass({})", self.name)
    }
}

/// The graph after one pass (or one step of building it, such as `built` or
/// `grad`).
#[derive(Clone, Debug)]
pub struct Stage {
    /// The pass that produced it.
    pub pass: String,
    pub graph: Graph,
    pub report: Option<Report>,
    pub duration: Duration,
}

impl Stage {
    /// A stage without a report: how a graph was made before compiling (the
    /// caller's `built` and `grad` graphs).
    pub fn new(pass: impl Into<String>, graph: Graph, duration: Duration) -> Stage {
        Stage {
            pass: pass.into(),
            graph,
            report: None,
            duration,
        }
    }

    /// The optimizer's statistics, if this stage is the optimizer's.
    pub fn optimize_stats(&self) -> Option<&OptimizeStats> {
        match &self.report {
            Some(Report::Optimize(s)) => Some(s),
            _ => None,
        }
    }

    /// The graph in the text format.
    pub fn text(&self) -> String {
        self.graph.to_string()
    }
}

/// A pass failed.
#[derive(Clone, Debug, thiserror::Error)]
#[error("pass `{pass}` failed: {source}")]
pub struct PipelineError {
    pub pass: String,
    #[source]
    pub source: Arc<dyn Error + Send + Sync>,
}

impl PartialEq for PipelineError {
    /// Same pass, same message.
    fn eq(&self, other: &Self) -> bool {
        self.pass == other.pass && self.source.to_string() == other.source.to_string()
    }
}

/// Passes run in order.
///
/// ```
/// use kiln_passes::optimize::Pipeline;
/// let p = Pipeline::standard();
/// assert_eq!(p.names(), ["dce", "optimize"]);
/// ```
#[derive(Debug, Default)]
pub struct Pipeline {
    passes: Vec<Pass>,
}

impl Pipeline {
    /// An empty pipeline (running it returns the input unchanged).
    pub fn new() -> Self {
        Pipeline::default()
    }

    /// Dead-code elimination, then the optimizer with default limits.
    pub fn standard() -> Self {
        Pipeline::new()
            .then(Pass::dce())
            .then(Pass::optimize(OptimizeConfig::default()))
    }

    /// What a compile runs before scheduling: the optimizer with `config`, or
    /// only dead-code elimination (`None`: the graph is compiled as given, bar the
    /// nodes no output needs, which the interpreter does not evaluate either: a
    /// dead `gather` with an index out of range is no error).
    pub fn for_compile(config: Option<&OptimizeConfig>) -> Self {
        match config {
            Some(c) => Pipeline::new().then(Pass::optimize(c.clone())),
            None => Pipeline::new().then(Pass::dce()),
        }
    }

    /// Appends `pass`.
    pub fn then(mut self, pass: Pass) -> Self {
        self.passes.push(pass);
        self
    }

    /// The pass names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// Runs every pass on `graph`.
    pub fn run(&self, graph: &Graph) -> Result<Graph, PipelineError> {
        self.run_with(graph, |_| {})
    }

    /// Runs every pass, calling `hook` with each stage as it is produced.
    pub fn run_with(
        &self,
        graph: &Graph,
        mut hook: impl FnMut(&Stage),
    ) -> Result<Graph, PipelineError> {
        // The first pass reads the caller's graph: no copy unless nothing runs.
        let mut current: Option<Graph> = None;
        for pass in &self.passes {
            let start = Instant::now();
            let input = current.as_ref().unwrap_or(graph);
            let out = (pass.run)(input).map_err(|source| PipelineError {
                pass: pass.name.clone(),
                source: source.into(),
            })?;
            let stage = Stage {
                pass: pass.name.clone(),
                graph: out.graph,
                report: out.report,
                duration: start.elapsed(),
            };
            hook(&stage);
            current = Some(stage.graph);
        }
        Ok(current.unwrap_or_else(|| graph.clone()))
    }

    /// Runs every pass and returns the final graph with every stage.
    pub fn run_collect(&self, graph: &Graph) -> Result<(Graph, Vec<Stage>), PipelineError> {
        let mut stages = Vec::new();
        let g = self.run_with(graph, |s| stages.push(s.clone()))?;
        Ok((g, stages))
    }
}
