//! Deferred errors: what went wrong in user code, and where.
//!
//! Ops never panic on bad operands. The builder records a [`DslError`] with the
//! caller's source location and returns a *poisoned* tensor; ops on poisoned tensors
//! stay poisoned without recording anything more, so only root causes are reported.
//! [`crate::GraphBuilder::build`] then returns every recorded error as a
//! [`BuildError`].

use std::fmt;
use std::panic::Location;

use kiln_ir::{GraphError, TensorType, TypeError};

/// One mistake in a model definition: the op, its operands, and the source location
/// of the call in user code.
#[derive(Debug, Clone, PartialEq)]
pub struct DslError {
    /// Where the offending call is in the user's code.
    pub location: &'static Location<'static>,
    /// The DSL operation (`matmul`, `softmax`, `input`, `cross_entropy`, ...).
    pub op: String,
    /// The types of the tensor operands as the user passed them.
    pub operands: Vec<TensorType>,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// What is wrong with an op application.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ErrorKind {
    /// The operands do not fit the op (shapes, dtypes, axes, attributes).
    #[error("{0}")]
    Type(#[from] TypeError),
    /// A graph-level problem: a bad or duplicate argument name, a duplicate output
    /// name, ...
    #[error("{0}")]
    Graph(#[from] GraphError),
    /// An operand was created by another [`crate::GraphBuilder`].
    #[error("operand {index} belongs to the graph builder `{theirs}`, not `{ours}`")]
    ForeignOperand {
        /// Position of the operand in the call.
        index: usize,
        /// Name of the builder the op was applied in.
        ours: String,
        /// Name of the builder the operand comes from.
        theirs: String,
    },
}

impl fmt::Display for DslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: `{}`", self.location, self.op)?;
        if !self.operands.is_empty() {
            f.write_str(" on (")?;
            for (i, t) in self.operands.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{t}")?;
            }
            f.write_str(")")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for DslError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

/// The errors that kept a model from being built, in the order they were made (never
/// empty). `Display` shows the first one with its location and counts the others.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildError {
    errors: Vec<DslError>,
}

impl BuildError {
    /// Wraps a non-empty list of errors.
    pub(crate) fn new(errors: Vec<DslError>) -> Self {
        debug_assert!(!errors.is_empty());
        BuildError { errors }
    }

    /// The first error (the root cause of everything after it, usually).
    pub fn first(&self) -> &DslError {
        &self.errors[0]
    }

    /// Every recorded error, in order.
    pub fn errors(&self) -> &[DslError] {
        &self.errors
    }

    /// Consumes the error, returning the list.
    pub fn into_errors(self) -> Vec<DslError> {
        self.errors
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.first())?;
        match self.errors.len() {
            1 => Ok(()),
            2 => f.write_str(" (and 1 more error)"),
            n => write!(f, " (and {} more errors)", n - 1),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.first())
    }
}

impl From<DslError> for BuildError {
    fn from(e: DslError) -> Self {
        BuildError::new(vec![e])
    }
}
