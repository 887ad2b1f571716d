//! What [`crate::GraphBuilder::build`] returns: the graph and the parameters' values.

use std::collections::HashMap;

use kiln_ir::{Graph, HostTensor, Op, TensorType};

/// A built model: a canonical, validated graph and the initial value of each of its
/// parameters.
///
/// The graph's arguments (inputs and parameters, in declaration order) are what a
/// caller feeds; [`Model::call_args`] assembles them from named inputs and the
/// parameter store.
#[derive(Clone, Debug)]
pub struct Model {
    /// The graph, canonicalized (arguments first, then topological order).
    pub graph: Graph,
    /// Parameter values by name, in declaration order (the graph's parameter order).
    pub params: ParamStore,
}

impl Model {
    /// The full argument list of the graph, in calling order: each input taken by
    /// name from `inputs`, each parameter from [`Model::params`]. Every input must
    /// be given once, with its declared type.
    ///
    /// The result is what `kiln_ir::interp::run(&model.graph, &args)` takes.
    pub fn call_args(&self, inputs: &[(&str, &HostTensor)]) -> Result<Vec<HostTensor>, ArgError> {
        let mut given: HashMap<&str, &HostTensor> = HashMap::new();
        for &(name, value) in inputs {
            if given.insert(name, value).is_some() {
                return Err(ArgError::Duplicate(name.to_string()));
            }
        }
        let mut args = Vec::with_capacity(self.graph.args().len());
        for &a in self.graph.args() {
            let node = self.graph.node(a);
            let name = node.name.as_deref().unwrap_or_default();
            let value = match node.op {
                Op::Input => given
                    .remove(name)
                    .ok_or_else(|| ArgError::Missing(name.to_string()))?,
                _ => self
                    .params
                    .get(name)
                    .ok_or_else(|| ArgError::Missing(name.to_string()))?,
            };
            if value.ty() != node.ty {
                return Err(ArgError::Type {
                    name: name.to_string(),
                    expected: node.ty.clone(),
                    got: value.ty(),
                });
            }
            args.push(value.clone());
        }
        if let Some(name) = given.keys().min() {
            return Err(ArgError::Unknown(name.to_string()));
        }
        Ok(args)
    }
}

/// A wrong set of arguments for a [`Model`], or a wrong parameter value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArgError {
    /// An input or parameter of the graph has no value.
    #[error("no value for argument `{0}`")]
    Missing(String),
    /// A value names no argument of the graph.
    #[error("`{0}` is not an argument of the graph")]
    Unknown(String),
    /// A value was given twice.
    #[error("argument `{0}` given twice")]
    Duplicate(String),
    /// A value's dtype or shape differs from the declared one.
    #[error("argument `{name}` is declared {expected} but the value is {got}")]
    Type {
        /// The argument.
        name: String,
        /// Its declared type.
        expected: TensorType,
        /// The value's type.
        got: TensorType,
    },
}

/// Parameter values by name, kept in declaration order.
///
/// ```
/// use kiln_frontend::prelude::*;
///
/// let g = GraphBuilder::new("m");
/// let mut rng = Rng::seed(0);
/// let fc = nn::Linear::new(&g, "fc", 3, 2, &mut rng);
/// let model = g.build(&[&fc.forward(&g.input("x", DType::F32, [1, 3]))]).unwrap();
/// let names: Vec<&str> = model.params.names().collect();
/// assert_eq!(names, ["fc.weight", "fc.bias"]);
/// assert_eq!(model.params.get("fc.weight").unwrap().shape().dims(), &[2, 3]);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamStore {
    entries: Vec<(String, HostTensor)>,
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push(&mut self, name: String, value: HostTensor) {
        self.entries.push((name, value));
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&HostTensor> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// True if there is a parameter called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Replaces the value of parameter `name`; the new value must have the same
    /// type (checkpoint loading, training updates).
    pub fn set(&mut self, name: &str, value: HostTensor) -> Result<(), ArgError> {
        let slot = self.slot(name, &value)?;
        *slot = value;
        Ok(())
    }

    /// The value of `name`, if `like` has its type.
    fn slot(&mut self, name: &str, like: &HostTensor) -> Result<&mut HostTensor, ArgError> {
        let slot = self
            .entries
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| ArgError::Unknown(name.to_string()))?;
        if slot.ty() != like.ty() {
            return Err(ArgError::Type {
                name: name.to_string(),
                expected: slot.ty(),
                got: like.ty(),
            });
        }
        Ok(slot)
    }

    /// Adds parameter `name` with `value` at the end, or replaces its value (of any
    /// type) if the store has it.
    pub fn insert(&mut self, name: &str, value: HostTensor) {
        match self.entries.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.entries.push((name.to_string(), value)),
        }
    }

    /// Exchanges the value of parameter `name` with `value` (same type required):
    /// how a training loop installs a step's results without copying them.
    pub fn swap(&mut self, name: &str, value: &mut HostTensor) -> Result<(), ArgError> {
        std::mem::swap(self.slot(name, value)?, value);
        Ok(())
    }

    /// Parameter names in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// Values in declaration order.
    pub fn values(&self) -> impl Iterator<Item = &HostTensor> + '_ {
        self.entries.iter().map(|(_, v)| v)
    }

    /// `(name, value)` pairs in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &HostTensor)> + '_ {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// Total number of scalar elements over all parameters.
    pub fn numel(&self) -> usize {
        self.entries.iter().map(|(_, v)| v.numel()).sum()
    }

    /// The `(name, value)` pairs in declaration order.
    pub fn into_vec(self) -> Vec<(String, HostTensor)> {
        self.entries
    }
}

type Entry = (String, HostTensor);

impl<'a> IntoIterator for &'a ParamStore {
    type Item = (&'a str, &'a HostTensor);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, Entry>, fn(&'a Entry) -> Self::Item>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(n, v)| (n.as_str(), v))
    }
}
