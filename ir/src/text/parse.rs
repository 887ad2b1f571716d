//! The parser: text format to [`Graph`], with `line:column` errors.

use std::collections::HashMap;

use std::sync::Arc;

use crate::{AttrValue, Body, DType, Graph, HostTensor, NodeId, Op, TensorData, TensorType};

/// A syntax or type error in a text-format graph, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Id(u64),
    Punct(&'static str),
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Num(s) => format!("number `{s}`"),
            Tok::Id(n) => format!("`%{n}`"),
            Tok::Punct(p) => format!("`{p}`"),
            Tok::Eof => "end of input".to_string(),
        }
    }
}

struct Token {
    tok: Tok,
    line: usize,
    col: usize,
}

fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let (mut i, mut line, mut col) = (0, 1, 1);
    let mut out = Vec::new();
    let err = |line, col, message: String| ParseError { line, col, message };
    while i < chars.len() {
        let c = chars[i];
        let (tl, tc) = (line, col);
        let advance = |i: &mut usize, col: &mut usize, n: usize| {
            *i += n;
            *col += n;
        };
        if c == '\n' {
            i += 1;
            line += 1;
            col = 1;
            continue;
        }
        if c.is_whitespace() {
            advance(&mut i, &mut col, 1);
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        let tok = if c == '-' && chars.get(i + 1) == Some(&'>') {
            advance(&mut i, &mut col, 2);
            Tok::Punct("->")
        } else if c.is_ascii_digit()
            || (matches!(c, '-' | '+') && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            advance(&mut i, &mut col, 1);
            while i < chars.len() {
                let d = chars[i];
                let exp_sign = matches!(d, '+' | '-') && matches!(chars[i - 1], 'e' | 'E');
                if d.is_ascii_alphanumeric() || d == '.' || exp_sign {
                    advance(&mut i, &mut col, 1);
                } else {
                    break;
                }
            }
            Tok::Num(chars[start..i].iter().collect())
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                advance(&mut i, &mut col, 1);
            }
            Tok::Ident(chars[start..i].iter().collect())
        } else if c == '%' {
            advance(&mut i, &mut col, 1);
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                advance(&mut i, &mut col, 1);
            }
            let digits: String = chars[start..i].iter().collect();
            let n = digits
                .parse()
                .map_err(|_| err(tl, tc, "expected a node id like `%3` after `%`".into()))?;
            Tok::Id(n)
        } else if c == '"' {
            advance(&mut i, &mut col, 1);
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None | Some('\n') => return Err(err(tl, tc, "unterminated string".into())),
                    Some('"') => {
                        advance(&mut i, &mut col, 1);
                        break;
                    }
                    Some('\\') => {
                        let e = match chars.get(i + 1) {
                            Some('n') => '\n',
                            Some('"') => '"',
                            Some('\\') => '\\',
                            _ => return Err(err(line, col, "unknown escape in string".into())),
                        };
                        s.push(e);
                        advance(&mut i, &mut col, 2);
                    }
                    Some(&ch) => {
                        s.push(ch);
                        advance(&mut i, &mut col, 1);
                    }
                }
            }
            Tok::Str(s)
        } else {
            let p = match c {
                '(' => "(",
                ')' => ")",
                '[' => "[",
                ']' => "]",
                '{' => "{",
                '}' => "}",
                ',' => ",",
                ':' => ":",
                '=' => "=",
                '@' => "@",
                '-' => "-",
                _ => return Err(err(tl, tc, format!("unexpected character `{c}`"))),
            };
            advance(&mut i, &mut col, 1);
            Tok::Punct(p)
        };
        out.push(Token {
            tok,
            line: tl,
            col: tc,
        });
    }
    out.push(Token {
        tok: Tok::Eof,
        line,
        col,
    });
    Ok(out)
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
}

/// A scalar literal, before it is given a dtype.
#[derive(Clone, Copy)]
enum Scalar {
    Int(i64),
    /// A float literal rounded once to each float type, so that an `f32` reads back
    /// exactly (rounding through `f64` first could round twice).
    Float {
        f64: f64,
        f32: f32,
    },
    Bool(bool),
}

impl Scalar {
    fn float(x: f64) -> Scalar {
        Scalar::Float {
            f64: x,
            f32: x as f32,
        }
    }
}

/// The literal of a `const`: its values with their token positions, and the
/// position of the whole literal.
struct Literal {
    values: Vec<(Scalar, usize)>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }

    fn peek2(&self) -> &Tok {
        &self.toks[(self.pos + 1).min(self.toks.len() - 1)].tok
    }

    fn next(&mut self) -> &Token {
        let t = &self.toks[self.pos];
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn error_at(&self, pos: usize, message: impl Into<String>) -> ParseError {
        let t = &self.toks[pos];
        ParseError {
            line: t.line,
            col: t.col,
            message: message.into(),
        }
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        self.error_at(self.pos, message)
    }

    fn expected(&self, what: &str) -> ParseError {
        self.error(format!("expected {what}, found {}", self.peek().describe()))
    }

    fn punct(&mut self, p: &'static str) -> Result<(), ParseError> {
        if *self.peek() == Tok::Punct(p) {
            self.next();
            Ok(())
        } else {
            Err(self.expected(&format!("`{p}`")))
        }
    }

    fn eat(&mut self, p: &'static str) -> bool {
        if *self.peek() == Tok::Punct(p) {
            self.next();
            true
        } else {
            false
        }
    }

    fn keyword(&mut self, k: &str) -> Result<(), ParseError> {
        match self.peek() {
            Tok::Ident(s) if s == k => {
                self.next();
                Ok(())
            }
            _ => Err(self.expected(&format!("`{k}`"))),
        }
    }

    fn name(&mut self) -> Result<String, ParseError> {
        match self.peek().clone() {
            Tok::Ident(s) | Tok::Str(s) => {
                self.next();
                Ok(s)
            }
            _ => Err(self.expected("a name")),
        }
    }

    fn uint(&mut self) -> Result<usize, ParseError> {
        match self.peek().clone() {
            Tok::Num(s) => s.parse().inspect(|_| {
                self.next();
            }),
            _ => return Err(self.expected("a non-negative integer")),
        }
        .map_err(|_| self.expected("a non-negative integer"))
    }

    fn ty(&mut self) -> Result<TensorType, ParseError> {
        let at = self.pos;
        let dtype = match self.peek().clone() {
            Tok::Ident(s) => s
                .parse::<DType>()
                .map_err(|e| self.error_at(at, e.to_string()))?,
            _ => return Err(self.expected("a type like `f32[2,3]`")),
        };
        self.next();
        self.punct("[")?;
        let mut dims = Vec::new();
        if !self.eat("]") {
            loop {
                dims.push(self.uint()?);
                if self.eat("]") {
                    break;
                }
                self.punct(",")?;
            }
        }
        let ty = TensorType::new(dtype, dims);
        ty.check_size().map_err(|m| self.error_at(at, m))?;
        Ok(ty)
    }

    /// A number, `NaN`, `inf`, `-inf`, `true` or `false`.
    fn scalar(&mut self) -> Result<Scalar, ParseError> {
        let negative = self.eat("-");
        let at = self.pos;
        let v = match self.peek().clone() {
            Tok::Num(s) if negative && s.starts_with(['+', '-']) => {
                return Err(self.error_at(at, format!("`-{s}` has two signs")));
            }
            Tok::Num(s) => {
                let bad = || self.error_at(at, format!("`{s}` is not a number"));
                if s.contains(['.', 'e', 'E']) {
                    match (s.parse::<f64>(), s.parse::<f32>()) {
                        (Ok(x), Ok(y)) => Scalar::Float { f64: x, f32: y },
                        _ => return Err(bad()),
                    }
                } else {
                    Scalar::Int(s.parse::<i64>().map_err(|_| bad())?)
                }
            }
            Tok::Ident(s) if s == "NaN" => Scalar::float(f64::NAN),
            Tok::Ident(s) if s == "inf" => Scalar::float(f64::INFINITY),
            Tok::Ident(s) if s == "true" && !negative => Scalar::Bool(true),
            Tok::Ident(s) if s == "false" && !negative => Scalar::Bool(false),
            _ => return Err(self.expected("a number")),
        };
        self.next();
        // An unsigned integer token is non-negative, so negating it cannot overflow.
        Ok(match (v, negative) {
            (Scalar::Float { f64, f32 }, true) => Scalar::Float {
                f64: -f64,
                f32: -f32,
            },
            (Scalar::Int(x), true) => Scalar::Int(-x),
            (v, _) => v,
        })
    }

    fn attr_value(&mut self) -> Result<AttrValue, ParseError> {
        if matches!(self.peek(), Tok::Ident(s) if s == "fn") {
            let body = function(self)?;
            return Ok(AttrValue::Graph(Body(Arc::new(body))));
        }
        if self.eat("[") {
            let mut v = Vec::new();
            if !self.eat("]") {
                loop {
                    let at = self.pos;
                    match self.scalar()? {
                        Scalar::Int(i) => v.push(i),
                        _ => return Err(self.error_at(at, "expected an integer in the list")),
                    }
                    if self.eat("]") {
                        break;
                    }
                    self.punct(",")?;
                }
            }
            return Ok(AttrValue::Ints(v));
        }
        if let Tok::Ident(s) = self.peek()
            && let Ok(d) = s.parse::<DType>()
        {
            self.next();
            return Ok(AttrValue::DType(d));
        }
        Ok(match self.scalar()? {
            Scalar::Int(i) => AttrValue::Int(i),
            Scalar::Float { f64, .. } => AttrValue::Float(f64),
            Scalar::Bool(b) => AttrValue::Bool(b),
        })
    }

    /// The literal of a `const`: one value or a bracketed list.
    fn literal(&mut self) -> Result<Literal, ParseError> {
        let at = self.pos;
        let mut values = Vec::new();
        if self.eat("[") {
            if !self.eat("]") {
                loop {
                    let at = self.pos;
                    values.push((self.scalar()?, at));
                    if self.eat("]") {
                        break;
                    }
                    self.punct(",")?;
                }
            }
        } else {
            values.push((self.scalar()?, at));
        }
        Ok(Literal { values, at })
    }

    /// A comma-separated, possibly empty list of `%n` references resolved in `ids`;
    /// an unknown one is the error "`%n` is not defined" followed by `unknown`.
    fn refs(
        &mut self,
        ids: &HashMap<u64, NodeId>,
        unknown: &str,
    ) -> Result<Vec<NodeId>, ParseError> {
        let mut refs = Vec::new();
        while let Tok::Id(n) = self.peek().clone() {
            let at = self.pos;
            let id = ids
                .get(&n)
                .ok_or_else(|| self.error_at(at, format!("`%{n}` is not defined{unknown}")))?;
            refs.push(*id);
            self.next();
            if !self.eat(",") {
                break;
            }
        }
        Ok(refs)
    }
}

/// The largest literal the parser materializes (1 GiB of f32): a splat of an
/// absurd shape must be an error, not an allocation failure.
const MAX_LITERAL: usize = 1 << 28;

impl Parser {
    /// The value of a `const` of type `ty`: one value repeated (a splat) or one value
    /// per element. Errors point at the offending element.
    fn literal_tensor(&self, lit: &Literal, ty: &TensorType) -> Result<HostTensor, ParseError> {
        let n = ty.shape.numel();
        if n > MAX_LITERAL {
            return Err(self.error_at(
                lit.at,
                format!("a literal of type {ty} would have more than {MAX_LITERAL} elements"),
            ));
        }
        if lit.values.len() != 1 && lit.values.len() != n {
            return Err(self.error_at(
                lit.at,
                format!(
                    "a literal of type {ty} needs 1 or {n} values, got {}",
                    lit.values.len()
                ),
            ));
        }
        let data = match ty.dtype {
            DType::F32 => TensorData::F32(self.elements(lit, n, ty.dtype, |s| match s {
                Scalar::Int(i) => Some(i as f32),
                Scalar::Float { f32, .. } => Some(f32),
                Scalar::Bool(_) => None,
            })?),
            DType::F64 => TensorData::F64(self.elements(lit, n, ty.dtype, |s| match s {
                Scalar::Int(i) => Some(i as f64),
                Scalar::Float { f64, .. } => Some(f64),
                Scalar::Bool(_) => None,
            })?),
            DType::I32 => TensorData::I32(self.elements(lit, n, ty.dtype, |s| match s {
                Scalar::Int(i) => i32::try_from(i).ok(),
                _ => None,
            })?),
            DType::Bool => TensorData::Bool(self.elements(lit, n, ty.dtype, |s| match s {
                Scalar::Bool(b) => Some(b),
                _ => None,
            })?),
        };
        HostTensor::new(ty.shape.clone(), data).map_err(|e| self.error_at(lit.at, e.to_string()))
    }

    /// Converts each value of `lit` with `convert` (`None`: not a value of the
    /// element type), then repeats a single value `n` times.
    fn elements<T: Clone>(
        &self,
        lit: &Literal,
        n: usize,
        dtype: DType,
        convert: impl Fn(Scalar) -> Option<T>,
    ) -> Result<Vec<T>, ParseError> {
        let mut out = Vec::with_capacity(lit.values.len());
        for &(s, at) in &lit.values {
            let what = match s {
                Scalar::Int(i) => i.to_string(),
                Scalar::Float { f64, .. } => format!("{f64:?}"),
                Scalar::Bool(b) => b.to_string(),
            };
            out.push(convert(s).ok_or_else(|| {
                self.error_at(at, format!("`{what}` is not a valid {dtype} value"))
            })?);
        }
        if out.len() == 1 {
            out = vec![out[0].clone(); n];
        }
        Ok(out)
    }
}

/// Parses one function in the text format into a validated graph. Node ids in the
/// text are labels: any numbers, each defined once before use.
///
/// ```
/// let g = kiln_ir::text::parse(
///     "fn f(x: f32[2,3]) -> (y: f32[2,3]) {\n  %1 = relu %0 : f32[2,3]\n  return %1\n}\n",
/// )
/// .unwrap();
/// assert_eq!(g.to_string().lines().nth(1).unwrap().trim(), "%1 = relu %0 : f32[2,3]");
/// let e = kiln_ir::text::parse("fn f(x: f32[2]) -> () {\n  %1 = frob %0 : f32[2]\n  return\n}").unwrap_err();
/// assert_eq!((e.line, e.col), (2, 8));
/// ```
pub fn parse(src: &str) -> Result<Graph, ParseError> {
    let mut p = Parser {
        toks: lex(src)?,
        pos: 0,
    };
    let graph = function(&mut p)?;
    if *p.peek() != Tok::Eof {
        return Err(p.expected("end of input after `}`"));
    }
    Ok(graph)
}

/// One `fn NAME(ARGS) -> (RESULTS) { ... }`: the whole file, or a loop body nested
/// in an attribute.
fn function(p: &mut Parser) -> Result<Graph, ParseError> {
    p.keyword("fn")?;
    let mut graph = Graph::new(p.name()?);
    let mut ids: HashMap<u64, NodeId> = HashMap::new();

    // Arguments: `name: TYPE` or `name: param TYPE`, implicitly %0..%k-1.
    p.punct("(")?;
    while !p.eat(")") {
        let at = p.pos;
        let name = p.name()?;
        p.punct(":")?;
        let param = matches!(p.peek(), Tok::Ident(s) if s == "param");
        if param {
            p.next();
        }
        let ty = p.ty()?;
        let id = if param {
            graph.param(&name, ty)
        } else {
            graph.input(&name, ty)
        }
        .map_err(|e| p.error_at(at, e.to_string()))?;
        ids.insert(ids.len() as u64, id);
        if !p.eat(",") {
            p.punct(")")?;
            break;
        }
    }
    let num_args = ids.len() as u64;

    // Results: `TYPE` or `name: TYPE`.
    p.punct("->")?;
    p.punct("(")?;
    let mut results: Vec<(Option<String>, TensorType, usize)> = Vec::new();
    while !p.eat(")") {
        let named =
            matches!(p.peek(), Tok::Ident(_) | Tok::Str(_)) && *p.peek2() == Tok::Punct(":");
        let name = if named {
            let at = p.pos;
            let n = p.name()?;
            if results.iter().any(|r| r.0.as_ref() == Some(&n)) {
                return Err(p.error_at(at, format!("two results are named `{n}`")));
            }
            p.punct(":")?;
            Some(n)
        } else {
            None
        };
        let at = p.pos;
        results.push((name, p.ty()?, at));
        if !p.eat(",") {
            p.punct(")")?;
            break;
        }
    }
    p.punct("{")?;

    // Body: `%N = MNEMONIC [LITERAL] [OPERANDS] [ATTRS] : TYPE [@name]`.
    while !matches!(p.peek(), Tok::Ident(s) if s == "return") {
        let def_at = p.pos;
        let Tok::Id(label) = p.peek().clone() else {
            return Err(p.expected("a node `%N = ...` or `return`"));
        };
        p.next();
        if ids.contains_key(&label) {
            let what = if label < num_args {
                format!(
                    "`%{label}` is already an argument (arguments are %0..%{num_args} in order)",
                    num_args = num_args - 1
                )
            } else {
                format!("`%{label}` is defined twice")
            };
            return Err(p.error_at(def_at, what));
        }
        p.punct("=")?;
        let op_at = p.pos;
        let mnemonic = match p.peek().clone() {
            Tok::Ident(s) => s,
            _ => return Err(p.expected("an op name")),
        };
        p.next();
        let literal = if mnemonic == "const" {
            Some(p.literal()?)
        } else {
            None
        };
        let operands = p.refs(&ids, " before this use")?;
        let mut attrs = Vec::new();
        let mut attr_at = Vec::new();
        while let (Tok::Ident(key), Tok::Punct("=")) = (p.peek().clone(), p.peek2().clone()) {
            attr_at.push(p.pos);
            p.next();
            p.next();
            attrs.push((key, p.attr_value()?));
        }
        p.punct(":")?;
        let ty_at = p.pos;
        let ty = p.ty()?;
        let id = match literal {
            Some(lit) => {
                if !operands.is_empty() || !attrs.is_empty() {
                    return Err(
                        p.error_at(op_at, "`const` takes a literal, no operands or attributes")
                    );
                }
                let t = p.literal_tensor(&lit, &ty)?;
                graph.constant(t)
            }
            None => {
                let keys: Vec<String> = attrs.iter().map(|(k, _)| k.clone()).collect();
                let op = Op::from_syntax(&mnemonic, attrs).map_err(|e| {
                    // Point at the attribute the error names: its repetition if it is
                    // given twice, else its first occurrence; a missing one at the op.
                    let mut hits = keys.iter().zip(&attr_at).filter(|(k, _)| **k == e.attr);
                    let first = hits.next().map(|(_, &at)| at);
                    let second = hits.next().map(|(_, &at)| at);
                    p.error_at(second.or(first).unwrap_or(op_at), e.to_string())
                })?;
                let id = graph
                    .add(op, &operands)
                    .map_err(|e| p.error_at(op_at, e.to_string()))?;
                let inferred = &graph.node(id).ty;
                if *inferred != ty {
                    return Err(p.error_at(
                        ty_at,
                        format!("`{mnemonic}` gives {inferred}, but the line declares {ty}"),
                    ));
                }
                id
            }
        };
        if p.eat("@") {
            let name = p.name()?;
            graph.set_node_name(id, name);
        }
        ids.insert(label, id);
    }

    // `return %a, %b` and the closing brace, then nothing.
    let ret_at = p.pos;
    p.keyword("return")?;
    let returned = p.refs(&ids, "")?;
    p.punct("}")?;
    if returned.len() != results.len() {
        return Err(p.error_at(
            ret_at,
            format!(
                "the signature declares {} results but `return` gives {}",
                results.len(),
                returned.len()
            ),
        ));
    }
    for ((name, ty, at), node) in results.into_iter().zip(returned) {
        let got = &graph.node(node).ty;
        if *got != ty {
            return Err(p.error_at(
                at,
                format!("result declared {ty} but the returned node is {got}"),
            ));
        }
        graph.output(node, name.as_deref());
    }
    graph
        .validate()
        .map_err(|e| p.error_at(ret_at, e.to_string()))?;
    Ok(graph)
}
