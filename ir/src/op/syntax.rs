//! An op's text syntax: attribute values, their errors, and the two
//! [`AttrVisitor`]s — one reads an op's fields into `name=value` pairs (printing),
//! the other writes parsed pairs into the fields (parsing). Each op lists its
//! attributes once, in [`Op::visit_attrs`], and both directions come from it.

use std::fmt;

use super::{Body, Conv2dAttrs, Op, OpClass, OpKind, UnaryOp};
use crate::{DType, Shape};

/// An attribute value in the text format.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Int(i64),
    /// Printed with a decimal point or exponent (`0.01`, `1.0`, `inf`, `NaN`), so it
    /// reads back as a float and round-trips exactly.
    Float(f64),
    Bool(bool),
    Ints(Vec<i64>),
    DType(DType),
    /// A nested graph (a loop body), printed as its `fn ... { ... }` text.
    Graph(Body),
}

impl AttrValue {
    fn ints(v: &[usize]) -> Self {
        AttrValue::Ints(v.iter().map(|&x| x as i64).collect())
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Float(x) => write!(f, "{x:?}"),
            AttrValue::Bool(b) => write!(f, "{b}"),
            AttrValue::DType(d) => write!(f, "{d}"),
            AttrValue::Graph(b) => {
                // Nested lines indented one level deeper than the op's line.
                let text = b.0.to_string();
                for (i, line) in text.trim_end().lines().enumerate() {
                    if i > 0 {
                        f.write_str("\n    ")?;
                    }
                    f.write_str(line)?;
                }
                Ok(())
            }
            AttrValue::Ints(v) => {
                f.write_str("[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// A missing, unknown, repeated or ill-typed attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{op}`{}: {message}", if attr.is_empty() { String::new() } else { format!(" attribute `{attr}`") })]
pub struct AttrError {
    pub op: String,
    pub attr: String,
    pub message: String,
}

impl AttrError {
    pub(crate) fn new(op: &str, attr: &str, message: impl Into<String>) -> Self {
        AttrError {
            op: op.to_string(),
            attr: attr.to_string(),
            message: message.into(),
        }
    }
}

/// Visits an op's attribute fields in text-format order, one method per field type.
pub(crate) trait AttrVisitor {
    fn usize(&mut self, name: &'static str, v: &mut usize) -> Result<(), AttrError>;
    fn u32(&mut self, name: &'static str, v: &mut u32) -> Result<(), AttrError>;
    fn usizes(&mut self, name: &'static str, v: &mut Vec<usize>) -> Result<(), AttrError>;
    fn pair(&mut self, name: &'static str, v: &mut [usize; 2]) -> Result<(), AttrError>;
    fn float(&mut self, name: &'static str, v: &mut f64) -> Result<(), AttrError>;
    fn bool(&mut self, name: &'static str, v: &mut bool) -> Result<(), AttrError>;
    fn dtype(&mut self, name: &'static str, v: &mut DType) -> Result<(), AttrError>;
    fn body(&mut self, name: &'static str, v: &mut Body) -> Result<(), AttrError>;

    fn shape(&mut self, name: &'static str, v: &mut Shape) -> Result<(), AttrError> {
        let mut dims = v.dims().to_vec();
        self.usizes(name, &mut dims)?;
        *v = Shape::new(dims);
        Ok(())
    }
}

/// Reads the fields into `(name, value)` pairs.
#[derive(Default)]
pub(crate) struct Collect(pub Vec<(&'static str, AttrValue)>);

impl AttrVisitor for Collect {
    fn usize(&mut self, name: &'static str, v: &mut usize) -> Result<(), AttrError> {
        self.0.push((name, AttrValue::Int(*v as i64)));
        Ok(())
    }
    fn u32(&mut self, name: &'static str, v: &mut u32) -> Result<(), AttrError> {
        self.0.push((name, AttrValue::Int(i64::from(*v))));
        Ok(())
    }
    fn usizes(&mut self, name: &'static str, v: &mut Vec<usize>) -> Result<(), AttrError> {
        self.0.push((name, AttrValue::ints(v)));
        Ok(())
    }
    fn pair(&mut self, name: &'static str, v: &mut [usize; 2]) -> Result<(), AttrError> {
        self.0.push((name, AttrValue::ints(v)));
        Ok(())
    }
    fn float(&mut self, name: &'static str, v: &mut f64) -> Result<(), AttrError> {
        self.0.push((name, AttrValue::Float(*v)));
        Ok(())
    }
    fn bool(&mut self, name: &'static str, v: &mut bool) -> Result<(), AttrError> {
        self.0.push((name, AttrValue::Bool(*v)));
        Ok(())
    }
    fn dtype(&mut self, name: &'static str, v: &mut DType) -> Result<(), AttrError> {
        self.0.push((name, AttrValue::DType(*v)));
        Ok(())
    }
    fn body(&mut self, name: &'static str, v: &mut Body) -> Result<(), AttrError> {
        self.0.push((name, AttrValue::Graph(v.clone())));
        Ok(())
    }
}

/// Writes parsed attributes into the fields. Every attribute is required; unknown
/// or repeated ones are errors ([`Assign::finish`]).
pub(crate) struct Assign<'a> {
    op: &'a str,
    items: Vec<(String, AttrValue)>,
}

impl<'a> Assign<'a> {
    pub(crate) fn new(op: &'a str, items: Vec<(String, AttrValue)>) -> Result<Self, AttrError> {
        for (i, (k, _)) in items.iter().enumerate() {
            if items[..i].iter().any(|(k2, _)| k2 == k) {
                return Err(AttrError::new(op, k, "given twice"));
            }
        }
        Ok(Assign { op, items })
    }

    fn take(&mut self, key: &str) -> Result<AttrValue, AttrError> {
        match self.items.iter().position(|(k, _)| k == key) {
            Some(i) => Ok(self.items.remove(i).1),
            None => Err(AttrError::new(self.op, key, "missing")),
        }
    }

    /// Attribute `key`, converted by `f` (which hands back what it cannot use).
    fn take_as<T>(
        &mut self,
        key: &str,
        what: &str,
        f: impl FnOnce(AttrValue) -> Result<T, AttrValue>,
    ) -> Result<T, AttrError> {
        f(self.take(key)?).map_err(|got| self.err(key, what, &got))
    }

    fn err(&self, key: &str, what: &str, got: &AttrValue) -> AttrError {
        AttrError::new(self.op, key, format!("expected {what}, got `{got}`"))
    }

    /// Fails on the first attribute no field took.
    pub(crate) fn finish(self) -> Result<(), AttrError> {
        match self.items.first() {
            Some((k, _)) => Err(AttrError::new(self.op, k, "unknown attribute")),
            None => Ok(()),
        }
    }
}

impl AttrVisitor for Assign<'_> {
    fn usize(&mut self, name: &'static str, v: &mut usize) -> Result<(), AttrError> {
        *v = match self.take(name)? {
            AttrValue::Int(i) if i >= 0 => i as usize,
            got => return Err(self.err(name, "a non-negative integer", &got)),
        };
        Ok(())
    }

    fn u32(&mut self, name: &'static str, v: &mut u32) -> Result<(), AttrError> {
        let mut wide = 0usize;
        self.usize(name, &mut wide)?;
        *v = u32::try_from(wide)
            .map_err(|_| AttrError::new(self.op, name, "does not fit in u32"))?;
        Ok(())
    }

    fn usizes(&mut self, name: &'static str, v: &mut Vec<usize>) -> Result<(), AttrError> {
        *v = match self.take(name)? {
            AttrValue::Ints(x) if x.iter().all(|&i| i >= 0) => {
                x.into_iter().map(|i| i as usize).collect()
            }
            got => return Err(self.err(name, "a list of non-negative integers", &got)),
        };
        Ok(())
    }

    fn pair(&mut self, name: &'static str, v: &mut [usize; 2]) -> Result<(), AttrError> {
        *v = match self.take(name)? {
            AttrValue::Ints(x) if x.len() == 2 && x.iter().all(|&i| i >= 0) => {
                [x[0] as usize, x[1] as usize]
            }
            got => return Err(self.err(name, "two non-negative integers `[h,w]`", &got)),
        };
        Ok(())
    }

    fn float(&mut self, name: &'static str, v: &mut f64) -> Result<(), AttrError> {
        *v = match self.take(name)? {
            AttrValue::Float(x) => x,
            AttrValue::Int(i) => i as f64,
            got => return Err(self.err(name, "a number", &got)),
        };
        Ok(())
    }

    fn bool(&mut self, name: &'static str, v: &mut bool) -> Result<(), AttrError> {
        *v = self.take_as(name, "true or false", |a| match a {
            AttrValue::Bool(b) => Ok(b),
            other => Err(other),
        })?;
        Ok(())
    }

    fn dtype(&mut self, name: &'static str, v: &mut DType) -> Result<(), AttrError> {
        *v = self.take_as(name, "a dtype", |a| match a {
            AttrValue::DType(d) => Ok(d),
            other => Err(other),
        })?;
        Ok(())
    }

    fn body(&mut self, name: &'static str, v: &mut Body) -> Result<(), AttrError> {
        *v = self.take_as(name, "a graph `fn ... { ... }`", |a| match a {
            AttrValue::Graph(b) => Ok(b),
            other => Err(other),
        })?;
        Ok(())
    }
}

impl Op {
    /// The one definition of the op's attributes, in text-format order: printing
    /// ([`Op::attrs`]) and parsing ([`Op::from_syntax`]) both walk it. Leaves have
    /// none (`const` prints its literal instead).
    pub(crate) fn visit_attrs(&mut self, v: &mut dyn AttrVisitor) -> Result<(), AttrError> {
        fn conv(c: &mut Conv2dAttrs, v: &mut dyn AttrVisitor) -> Result<(), AttrError> {
            v.pair("stride", &mut c.stride)?;
            v.pair("padding", &mut c.padding)?;
            v.pair("dilation", &mut c.dilation)
        }
        match self {
            Op::Input | Op::Param | Op::Const(_) => Ok(()),
            Op::Unary(UnaryOp::LeakyRelu(slope)) => v.float("slope", slope),
            Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::StopGradient => Ok(()),
            Op::MatMul | Op::Gather | Op::Fma | Op::AllReduce => Ok(()),
            Op::MatMulBias { relu } => v.bool("relu", relu),
            Op::Cast(to) => v.dtype("to", to),
            Op::Broadcast(s) | Op::Reshape(s) => v.shape("shape", s),
            Op::Transpose(perm) => v.usizes("perm", perm),
            Op::Slice { start, end, step } => {
                v.usizes("start", start)?;
                v.usizes("end", end)?;
                v.usizes("step", step)
            }
            Op::Concat { axis } => v.usize("axis", axis),
            Op::Pad { low, high, value } => {
                v.usizes("low", low)?;
                v.usizes("high", high)?;
                v.float("value", value)
            }
            Op::Reduce { axes, keepdims, .. } => {
                v.usizes("axes", axes)?;
                v.bool("keepdims", keepdims)
            }
            Op::ArgMax { axis, keepdims } => {
                v.usize("axis", axis)?;
                v.bool("keepdims", keepdims)
            }
            Op::Conv2d(c) => conv(c, v),
            Op::ConvTranspose2d {
                conv: c,
                output_padding,
            } => {
                conv(c, v)?;
                v.pair("output_padding", output_padding)
            }
            Op::Conv2dWeightGrad { conv: c, kernel } => {
                conv(c, v)?;
                v.pair("kernel", kernel)
            }
            Op::Pool2d(p) | Op::Pool2dGrad(p) => {
                v.pair("kernel", &mut p.kernel)?;
                v.pair("stride", &mut p.stride)?;
                v.pair("padding", &mut p.padding)
            }
            Op::ScatterAdd { rows } => v.usize("rows", rows),
            Op::OneHot { depth, dtype } => {
                v.usize("depth", depth)?;
                v.dtype("dtype", dtype)
            }
            Op::RandomUniform { shape, dtype, salt } => {
                v.shape("shape", shape)?;
                v.dtype("dtype", dtype)?;
                v.u32("salt", salt)
            }
            Op::Scan(scan) => {
                v.usize("carries", &mut scan.carries)?;
                v.usize("xs", &mut scan.xs)?;
                v.usize("length", &mut scan.length)?;
                v.bool("reverse", &mut scan.reverse)?;
                v.usize("result", &mut scan.result)?;
                v.body("body", &mut scan.body)
            }
        }
    }

    /// The attributes of the op, in text-format order. Leaves have none (`const`
    /// prints its literal instead).
    pub fn attrs(&self) -> Vec<(&'static str, AttrValue)> {
        if self.is_leaf() {
            return vec![];
        }
        let mut collect = Collect::default();
        self.clone()
            .visit_attrs(&mut collect)
            .expect("collecting attributes cannot fail");
        collect.0
    }

    /// True if every float attribute is finite (an infinite `leaky_relu` slope or
    /// `pad` value makes finite operands give infinite results).
    pub fn float_attrs_finite(&self) -> bool {
        self.attrs().iter().all(|(_, v)| match v {
            AttrValue::Float(x) => x.is_finite(),
            _ => true,
        })
    }

    /// Builds a non-leaf op from its mnemonic and attributes: the inverse of
    /// [`Op::mnemonic`] and [`Op::attrs`]. Every attribute is required; unknown or
    /// repeated ones are errors.
    pub fn from_syntax(mnemonic: &str, attrs: Vec<(String, AttrValue)>) -> Result<Op, AttrError> {
        let kind = OpKind::from_mnemonic(mnemonic)
            .ok_or_else(|| AttrError::new(mnemonic, "", "unknown op"))?;
        if matches!(kind.class(), OpClass::Argument | OpClass::Literal) {
            return Err(AttrError::new(
                mnemonic,
                "",
                "leaves are declared in the signature (input, param) or with a literal (const)",
            ));
        }
        let mut assign = Assign::new(mnemonic, attrs)?;
        let mut op = kind.sample();
        op.visit_attrs(&mut assign)?;
        assign.finish()?;
        Ok(op)
    }
}

impl fmt::Display for Op {
    /// The op as it appears in the text format, without operands: `transpose perm=[1,0]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mnemonic())?;
        for (k, v) in self.attrs() {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}
