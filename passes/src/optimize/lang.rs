//! The e-graph language: one e-node per IR operation, carrying the whole `Op`.
//!
//! `Op` holds `f64` attributes and tensor literals, so it is not `Eq`/`Hash`/`Ord`;
//! an [`ENode`] gets those from a canonical key computed once at construction: the
//! op's text form (mnemonic and attributes, which round-trip exactly) plus, for
//! literals, the bit patterns of the elements, and for arguments their name.

use std::cmp::Ordering;
use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use egg::{Id, Language};
use kiln_ir::{HostTensor, Op, OpKind, TensorData, TensorType};

/// An IR operation applied to e-classes.
#[derive(Clone, Debug)]
pub struct ENode {
    op: Arc<Op>,
    /// Name and declared type of an argument (`input` / `param`).
    arg: Option<Arc<(String, TensorType)>>,
    /// The canonical text of the non-operand part (see the module docs).
    key: Arc<str>,
    /// Element bits of a literal: the key only holds their hash.
    bits: Option<Arc<[u64]>>,
    children: Vec<Id>,
}

impl ENode {
    /// `op` applied to `children`. Arguments must use [`ENode::arg`].
    pub fn new(op: Op, children: Vec<Id>) -> ENode {
        debug_assert!(!op.is_argument(), "arguments need a name: use ENode::arg");
        let (key, bits) = match &op {
            Op::Const(t) => {
                let bits = literal_bits(t);
                let mut h = DefaultHasher::new();
                bits.hash(&mut h);
                (format!("const {} #{:016x}", t.ty(), h.finish()), Some(bits))
            }
            op => (op.to_string(), None),
        };
        ENode {
            op: Arc::new(op),
            arg: None,
            key: key.into(),
            bits,
            children,
        }
    }

    /// A literal.
    pub fn constant(t: HostTensor) -> ENode {
        ENode::new(Op::Const(t), vec![])
    }

    /// The argument `name` (`op` is `Input` or `Param`) of type `ty`.
    pub fn arg(op: Op, name: &str, ty: TensorType) -> ENode {
        debug_assert!(op.is_argument());
        ENode {
            key: format!("{} {name}", op.mnemonic()).into(),
            op: Arc::new(op),
            arg: Some(Arc::new((name.to_string(), ty))),
            bits: None,
            children: vec![],
        }
    }

    pub fn op(&self) -> &Op {
        &self.op
    }

    /// The operand e-classes, in operand order.
    pub fn children(&self) -> &[Id] {
        &self.children
    }

    /// Name and type, for arguments.
    pub fn arg_info(&self) -> Option<(&str, &TensorType)> {
        self.arg.as_deref().map(|(n, t)| (n.as_str(), t))
    }

    /// The text-format mnemonic.
    pub fn mnemonic(&self) -> &'static str {
        self.op.mnemonic()
    }

    /// The op kind (also the discriminant rules search by).
    pub fn kind(&self) -> OpKind {
        self.op.kind()
    }

    /// True for `input`, `param` and `const`.
    pub fn is_leaf(&self) -> bool {
        self.op.is_leaf()
    }
}

fn literal_bits(t: &HostTensor) -> Arc<[u64]> {
    match t.data() {
        TensorData::F32(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
        TensorData::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x as u32 as u64).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| x as u64).collect(),
    }
}

impl PartialEq for ENode {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.children == other.children && self.bits == other.bits
    }
}

impl Eq for ENode {}

impl Hash for ENode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
        self.children.hash(state);
    }
}

impl PartialOrd for ENode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ENode {
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.key, &self.children, &self.bits).cmp(&(&other.key, &other.children, &other.bits))
    }
}

impl Language for ENode {
    type Discriminant = OpKind;

    fn discriminant(&self) -> Self::Discriminant {
        self.kind()
    }

    fn matches(&self, other: &Self) -> bool {
        self.key == other.key
            && self.bits == other.bits
            && self.children.len() == other.children.len()
    }

    fn children(&self) -> &[Id] {
        &self.children
    }

    fn children_mut(&mut self) -> &mut [Id] {
        &mut self.children
    }
}

impl fmt::Display for ENode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.arg {
            Some(a) => write!(f, "{} {}", self.op.mnemonic(), a.0),
            None => f.write_str(&self.key),
        }
    }
}
