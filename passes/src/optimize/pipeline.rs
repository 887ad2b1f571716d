//! A pass manager: named graph-to-graph passes run in order, with a hook that sees
//! the graph after each one (what `KILN_DUMP` and the `kiln` tool print).

use std::error::Error;
use std::fmt;
use std::time::{Duration, Instant};

use kiln_ir::Graph;

use super::{OptimizeConfig, optimize_with};

/// What a pass returns: the new graph and, optionally, a report (statistics).
#[derive(Clone, Debug)]
pub struct PassOutput {
    pub graph: Graph,
    pub report: Option<String>,
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
                report: Some(stats.to_string()),
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

/// The graph after one pass.
#[derive(Clone, Debug)]
pub struct Stage {
    /// The pass that produced it.
    pub pass: String,
    pub graph: Graph,
    pub report: Option<String>,
    pub duration: Duration,
}

impl Stage {
    /// The graph in the text format.
    pub fn text(&self) -> String {
        self.graph.to_string()
    }
}

/// A pass failed.
#[derive(Debug, thiserror::Error)]
#[error("pass `{pass}` failed: {source}")]
pub struct PipelineError {
    pub pass: String,
    #[source]
    pub source: Box<dyn Error + Send + Sync>,
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
        let mut current = graph.clone();
        for pass in &self.passes {
            let start = Instant::now();
            let out = (pass.run)(&current).map_err(|source| PipelineError {
                pass: pass.name.clone(),
                source,
            })?;
            let stage = Stage {
                pass: pass.name.clone(),
                graph: out.graph,
                report: out.report,
                duration: start.elapsed(),
            };
            hook(&stage);
            current = stage.graph;
        }
        Ok(current)
    }

    /// Runs every pass and returns the final graph with every stage.
    pub fn run_collect(&self, graph: &Graph) -> Result<(Graph, Vec<Stage>), PipelineError> {
        let mut stages = Vec::new();
        let g = self.run_with(graph, |s| stages.push(s.clone()))?;
        Ok((g, stages))
    }
}
