//! The graph optimizer: equality saturation with egg, then DAG-aware extraction.
//!
//! ```text
//! Graph ──convert──▶ e-graph ──rules × Runner (limits)──▶ saturated e-graph ──extract──▶ Graph
//! ```
//!
//! - [`lang`]: the e-graph language, one e-node per IR op carrying its attributes.
//! - [`analysis`]: type, constant value (folding), splat value and finiteness per
//!   e-class.
//! - [`rules`]: rewrite groups: [`rules::algebra`], [`rules::layout`],
//!   [`rules::stable`], [`rules::fusion`].
//! - [`cost`]: memory traffic + flops per node.
//! - [`extract`]: greedy DAG extraction back to a [`Graph`].
//! - [`pipeline`]: a pass manager running named passes and recording each stage.
//!
//! The optimized graph has the same name, arguments (names, kinds, order) and
//! outputs (names, order, types) as its input, and is checked by `Graph::add` node
//! by node as it is built.
//!
//! ```
//! use kiln_ir::{BinaryOp, DType, Graph, HostTensor, Op, TensorType};
//! use kiln_passes::optimize::optimize;
//!
//! // (x * 1) + 0 is x.
//! let mut g = Graph::new("id");
//! let x = g.input("x", TensorType::new(DType::F32, [4])).unwrap();
//! let one = g.constant(HostTensor::full(DType::F32, [4], 1.0));
//! let zero = g.constant(HostTensor::full(DType::F32, [4], 0.0));
//! let m = g.add(Op::Binary(BinaryOp::Mul), &[x, one]).unwrap();
//! let y = g.add(Op::Binary(BinaryOp::Add), &[m, zero]).unwrap();
//! g.output(y, Some("y"));
//! let (opt, stats) = optimize(&g).unwrap();
//! assert_eq!(opt.node_count(), 1);
//! assert_eq!(opt.outputs()[0].node, opt.args()[0]);
//! println!("{stats}");
//! ```

pub mod analysis;
pub mod convert;
pub mod cost;
pub mod extract;
pub mod lang;
pub mod pipeline;
pub mod rules;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egg::{Id, Runner, SimpleScheduler};
use kiln_ir::{Body, Graph, GraphError, Op, Scan, TensorType};

pub use analysis::TensorAnalysis;
pub use cost::{Cost, fused_nodes, graph_cost};
pub use pipeline::{Pass, PassOutput, Pipeline, PipelineError, Report, Stage};
pub use rules::Rule;

/// Which rule groups run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleGroups {
    pub algebra: bool,
    pub layout: bool,
    pub stable: bool,
    pub fusion: bool,
}

impl RuleGroups {
    /// Every group.
    pub const ALL: RuleGroups = RuleGroups {
        algebra: true,
        layout: true,
        stable: true,
        fusion: true,
    };
    /// No rewrites: conversion, constant folding, CSE and extraction only.
    pub const NONE: RuleGroups = RuleGroups {
        algebra: false,
        layout: false,
        stable: false,
        fusion: false,
    };

    /// The rules of the selected groups.
    pub fn rules(&self) -> Vec<Rule> {
        let mut r = Vec::new();
        if self.algebra {
            r.extend(rules::algebra::rules());
        }
        if self.layout {
            r.extend(rules::layout::rules());
        }
        if self.stable {
            r.extend(rules::stable::rules());
        }
        if self.fusion {
            r.extend(rules::fusion::rules());
        }
        r
    }
}

/// Limits and switches of one optimizer run.
#[derive(Clone, Debug)]
pub struct OptimizeConfig {
    /// Stop growing the e-graph beyond this many e-nodes.
    pub node_limit: usize,
    /// Stop after this many rewrite iterations.
    pub iter_limit: usize,
    /// Stop saturating after this long (extraction runs regardless).
    pub time_limit: Duration,
    /// Largest constant folding may create, in elements.
    pub fold_limit: usize,
    pub groups: RuleGroups,
}

impl Default for OptimizeConfig {
    /// Limits sized so a training step of a few hundred nodes saturates in a few
    /// milliseconds, and a graph ten times larger stops well under a second.
    fn default() -> Self {
        OptimizeConfig {
            node_limit: 30_000,
            iter_limit: 16,
            time_limit: Duration::from_millis(200),
            fold_limit: TensorAnalysis::default().fold_limit,
            groups: RuleGroups::ALL,
        }
    }
}

/// Why saturation stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum StopReason {
    /// No rule could add anything: the result is the best the rules allow.
    Saturated,
    IterationLimit(usize),
    NodeLimit(usize),
    /// The limit, in seconds.
    TimeLimit(f64),
    Other(String),
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Saturated => f.write_str("saturated"),
            StopReason::IterationLimit(n) => write!(f, "iteration limit ({n})"),
            StopReason::NodeLimit(n) => write!(f, "e-node limit ({n})"),
            StopReason::TimeLimit(s) => write!(f, "time limit ({:.0} ms)", s * 1e3),
            StopReason::Other(s) => f.write_str(s),
        }
    }
}

/// What one optimizer run did.
#[derive(Clone, Debug)]
pub struct OptimizeStats {
    pub nodes_before: usize,
    pub nodes_after: usize,
    /// `fma` and `matmul_bias` nodes in the result.
    pub fused_nodes: usize,
    /// Cost-model estimates of the whole graph (every node once).
    pub cost_before: Cost,
    pub cost_after: Cost,
    /// E-graph size when saturation stopped.
    pub e_nodes: usize,
    pub e_classes: usize,
    pub iterations: usize,
    pub stop_reason: StopReason,
    /// Rule applications that changed the e-graph, by rule, in rule order.
    pub applied: Vec<(String, usize)>,
    /// Graph -> e-graph.
    pub convert_time: Duration,
    pub saturate_time: Duration,
    pub extract_time: Duration,
    pub total_time: Duration,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl fmt::Display for OptimizeStats {
    /// A few lines: sizes and costs, the e-graph, and the rules that fired.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "nodes {} -> {} ({} fused); est. bytes {:.3} MB -> {:.3} MB; flops {:.3} M -> {:.3} M",
            self.nodes_before,
            self.nodes_after,
            self.fused_nodes,
            self.cost_before.bytes / 1e6,
            self.cost_after.bytes / 1e6,
            self.cost_before.flops / 1e6,
            self.cost_after.flops / 1e6,
        )?;
        writeln!(
            f,
            "e-graph {} e-nodes, {} e-classes, {} iterations, {}",
            self.e_nodes, self.e_classes, self.iterations, self.stop_reason
        )?;
        writeln!(
            f,
            "time {:.2} ms (convert {:.2}, saturate {:.2}, extract {:.2})",
            ms(self.total_time),
            ms(self.convert_time),
            ms(self.saturate_time),
            ms(self.extract_time)
        )?;
        f.write_str("applied")?;
        if self.applied.is_empty() {
            f.write_str(" nothing")?;
        }
        for (name, n) in &self.applied {
            write!(f, " {name}={n}")?;
        }
        writeln!(f)
    }
}

/// An optimizer failure: a bug in a rule or the extractor, or an invalid input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptimizeError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("e-class {0} has no extractable term")]
    NoTerm(Id),
    #[error("extracted `{node}` is {got}, but its e-class is {expected}")]
    TypeChanged {
        node: String,
        expected: TensorType,
        got: TensorType,
    },
}

/// `graph` with every loop body optimized as a graph of its own (each shared body
/// once, loops inside bodies first), or `None` if it has no loop. The outer
/// optimizer then sees each loop as one node.
fn optimize_bodies(graph: &Graph, config: &OptimizeConfig) -> Result<Option<Graph>, OptimizeError> {
    let mut done: HashMap<usize, Body> = HashMap::new();
    let mut out: Option<Graph> = None;
    for id in graph.node_ids() {
        let Op::Scan(scan) = &graph.node(id).op else {
            continue;
        };
        let key = Arc::as_ptr(&scan.body.0) as usize;
        let body = match done.get(&key) {
            Some(b) => b.clone(),
            None => {
                let (g, _) = optimize_with(&scan.body.0, config)?;
                let b = Body(Arc::new(g));
                done.insert(key, b.clone());
                b
            }
        };
        let op = Op::Scan(Scan {
            body,
            ..scan.clone()
        });
        out.get_or_insert_with(|| graph.clone())
            .replace_op(id, op)?;
    }
    Ok(out)
}

/// Optimizes `graph` with the default configuration.
pub fn optimize(graph: &Graph) -> Result<(Graph, OptimizeStats), OptimizeError> {
    optimize_with(graph, &OptimizeConfig::default())
}

/// Optimizes `graph`: saturates its e-graph under the selected rules within the
/// limits of `config`, then extracts the cheapest graph (see the module docs).
pub fn optimize_with(
    graph: &Graph,
    config: &OptimizeConfig,
) -> Result<(Graph, OptimizeStats), OptimizeError> {
    let start = Instant::now();
    let hoisted = crate::hoist::hoisted(graph)?;
    let graph = hoisted.as_ref().map_or(graph, |(g, _)| g);
    let sunk = crate::sink::sunk(graph)?;
    let graph = sunk.as_ref().map_or(graph, |(g, _)| g);
    let with_bodies = optimize_bodies(graph, config)?;
    let graph = with_bodies.as_ref().unwrap_or(graph);
    let merged = crate::dedup::merged(graph)?;
    let graph = merged.as_ref().map_or(graph, |(g, _)| g);
    let analysis = TensorAnalysis {
        fold_limit: config.fold_limit,
    };
    let (egraph, roots, sig) = convert::to_egraph(graph, analysis.clone())?;
    let convert_time = start.elapsed();

    let rules = config.groups.rules();
    let rewrites: Vec<_> = rules.iter().map(|r| r.rewrite()).collect();
    let t = Instant::now();
    let runner: Runner<lang::ENode, TensorAnalysis, ()> = Runner::new(analysis)
        .with_egraph(egraph)
        .with_node_limit(config.node_limit)
        .with_iter_limit(config.iter_limit)
        .with_time_limit(config.time_limit)
        .with_scheduler(SimpleScheduler)
        .run(&rewrites);
    let saturate_time = t.elapsed();

    let mut applied: Vec<(String, usize)> = rules.iter().map(|r| (r.name.to_string(), 0)).collect();
    for it in &runner.iterations {
        for (name, n) in &it.applied {
            if let Some(slot) = applied
                .iter_mut()
                .find(|(r, _)| r.as_str() == name.as_str())
            {
                slot.1 += n;
            }
        }
    }
    applied.retain(|(_, n)| *n > 0);
    if let Some((_, n)) = &merged {
        applied.insert(0, ("loop/merge-results".to_string(), *n));
    }
    if let Some((_, moved)) = &sunk {
        applied.insert(0, ("loop/sink-sums".to_string(), *moved));
    }
    if let Some((_, moved)) = &hoisted {
        applied.insert(0, ("loop/hoist".to_string(), *moved));
    }
    let stop_reason = match runner.stop_reason.clone() {
        Some(egg::StopReason::Saturated) | None => StopReason::Saturated,
        Some(egg::StopReason::IterationLimit(n)) => StopReason::IterationLimit(n),
        Some(egg::StopReason::NodeLimit(n)) => StopReason::NodeLimit(n),
        Some(egg::StopReason::TimeLimit(s)) => StopReason::TimeLimit(s),
        Some(egg::StopReason::Other(s)) => StopReason::Other(s),
    };
    let iterations = runner.iterations.len();
    let mut egraph = runner.egraph;
    egraph.rebuild();

    let t = Instant::now();
    let optimized = extract::extract(&egraph, &roots, &sig)?;
    let extract_time = t.elapsed();
    let total_time = start.elapsed();

    let stats = OptimizeStats {
        nodes_before: graph.node_count(),
        nodes_after: optimized.node_count(),
        fused_nodes: fused_nodes(&optimized),
        cost_before: graph_cost(graph),
        cost_after: graph_cost(&optimized),
        e_nodes: egraph.total_number_of_nodes(),
        e_classes: egraph.number_of_classes(),
        iterations,
        stop_reason,
        applied,
        convert_time,
        saturate_time,
        extract_time,
        total_time,
    };
    Ok((optimized, stats))
}
