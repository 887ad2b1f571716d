//! Shape-specialized compilation with a cache, as `jax.jit` does: a function that
//! builds a graph for given argument types is compiled once per distinct signature.

use std::collections::HashMap;

use kiln_ir::{Graph, HostTensor, TensorType};
use kiln_runtime::{CompileError, Executable, RunError};

/// Why a [`Jit`] call failed.
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    #[error("building the graph for ({signature}) failed: {message}")]
    Build { signature: String, message: String },
    #[error(transparent)]
    Compile(Box<CompileError>),
    #[error(transparent)]
    Run(#[from] RunError),
}

impl From<CompileError> for JitError {
    fn from(e: CompileError) -> Self {
        JitError::Compile(Box::new(e))
    }
}

/// Compiles `build(types)` once per distinct list of argument types and runs it.
///
/// ```
/// use kiln::prelude::*;
/// use kiln::ir::TensorType;
/// let mut double = kiln::Jit::new(|types: &[TensorType]| {
///     let g = GraphBuilder::new("double");
///     let x = g.input("x", types[0].dtype, types[0].shape.clone());
///     g.build(&[&(&x * 2.0)]).map(|m| m.graph)
/// });
/// let a = HostTensor::from_f32([3], vec![1.0, 2.0, 3.0]).unwrap();
/// let b = HostTensor::from_f32([2], vec![-1.0, 0.5]).unwrap();
/// assert_eq!(double.run(&[a.clone()]).unwrap()[0].as_f32().unwrap(), &[2.0, 4.0, 6.0]);
/// assert_eq!(double.run(&[b]).unwrap()[0].as_f32().unwrap(), &[-2.0, 1.0]);
/// double.run(&[a]).unwrap();
/// assert_eq!(double.compiles(), 2); // one per shape; the third call hit the cache
/// ```
pub struct Jit<F> {
    build: F,
    cache: HashMap<Vec<TensorType>, Executable>,
    compiles: usize,
}

impl<F, E> Jit<F>
where
    F: FnMut(&[TensorType]) -> Result<Graph, E>,
    E: std::fmt::Display,
{
    /// A cache around `build`, which must return a graph whose arguments have the
    /// given types, in order.
    pub fn new(build: F) -> Self {
        Jit {
            build,
            cache: HashMap::new(),
            compiles: 0,
        }
    }

    /// The executable for `types`, compiling it on first use.
    pub fn executable(&mut self, types: &[TensorType]) -> Result<&mut Executable, JitError> {
        if !self.cache.contains_key(types) {
            let signature = types
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let graph = (self.build)(types).map_err(|e| JitError::Build {
                signature,
                message: e.to_string(),
            })?;
            self.cache
                .insert(types.to_vec(), Executable::compile(&graph)?);
            self.compiles += 1;
        }
        Ok(self.cache.get_mut(types).expect("inserted above"))
    }

    /// Runs the specialization for the arguments' types (compiling it if needed).
    /// The executable still checks the arguments against the built graph.
    pub fn run(&mut self, args: &[HostTensor]) -> Result<Vec<HostTensor>, JitError> {
        let types: Vec<TensorType> = args.iter().map(HostTensor::ty).collect();
        Ok(self.executable(&types)?.run(args)?)
    }

    /// How many specializations were compiled so far.
    pub fn compiles(&self) -> usize {
        self.compiles
    }
}
