//! The parser: text format to [`Graph`], with `line:column` errors.

use std::collections::HashMap;

use crate::{AttrValue, DType, Graph, HostTensor, NodeId, Op, TensorData, TensorType};

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
    Float(f64),
    Bool(bool),
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

    fn punct(&mut self, p: &str) -> Result<(), ParseError> {
        if *self.peek() == Tok::Punct(leak(p)) {
            self.next();
            Ok(())
        } else {
            Err(self.expected(&format!("`{p}`")))
        }
    }

    fn eat(&mut self, p: &str) -> bool {
        if *self.peek() == Tok::Punct(leak(p)) {
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
        Ok(TensorType::new(dtype, dims))
    }

    /// A number, `NaN`, `inf`, `-inf`, `true` or `false`.
    fn scalar(&mut self) -> Result<Scalar, ParseError> {
        let negative = self.eat("-");
        let at = self.pos;
        let v = match self.peek().clone() {
            Tok::Num(s) => {
                let is_float = s.contains(['.', 'e', 'E']);
                let v = if is_float {
                    s.parse::<f64>().map(Scalar::Float).map_err(|_| ())
                } else {
                    s.parse::<i64>().map(Scalar::Int).map_err(|_| ())
                };
                v.map_err(|_| self.error_at(at, format!("`{s}` is not a number")))?
            }
            Tok::Ident(s) if s == "NaN" => Scalar::Float(f64::NAN),
            Tok::Ident(s) if s == "inf" => Scalar::Float(f64::INFINITY),
            Tok::Ident(s) if s == "true" && !negative => Scalar::Bool(true),
            Tok::Ident(s) if s == "false" && !negative => Scalar::Bool(false),
            _ => return Err(self.expected("a number")),
        };
        self.next();
        Ok(match (v, negative) {
            (Scalar::Float(x), true) => Scalar::Float(-x),
            (Scalar::Int(x), true) => Scalar::Int(-x),
            (v, _) => v,
        })
    }

    fn attr_value(&mut self) -> Result<AttrValue, ParseError> {
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
            Scalar::Float(x) => AttrValue::Float(x),
            Scalar::Bool(b) => AttrValue::Bool(b),
        })
    }

    /// The literal of a `const`: one value or a bracketed list.
    fn literal(&mut self) -> Result<(Vec<Scalar>, usize), ParseError> {
        let at = self.pos;
        if self.eat("[") {
            let mut v = Vec::new();
            if !self.eat("]") {
                loop {
                    v.push(self.scalar()?);
                    if self.eat("]") {
                        break;
                    }
                    self.punct(",")?;
                }
            }
            return Ok((v, at));
        }
        Ok((vec![self.scalar()?], at))
    }
}

/// Interns the few punctuation strings so tokens can hold `&'static str`.
fn leak(p: &str) -> &'static str {
    ["(", ")", "[", "]", "{", "}", ",", ":", "=", "@", "-", "->"]
        .into_iter()
        .find(|q| *q == p)
        .expect("known punctuation")
}

/// The largest literal the parser materializes (1 GiB of f32): a splat of an
/// absurd shape must be an error, not an allocation failure.
const MAX_LITERAL: usize = 1 << 28;

fn literal_tensor(values: &[Scalar], ty: &TensorType) -> Result<HostTensor, String> {
    let n = ty.shape.numel();
    if n > MAX_LITERAL {
        return Err(format!(
            "a literal of type {ty} would have more than {MAX_LITERAL} elements"
        ));
    }
    if values.len() != 1 && values.len() != n {
        return Err(format!(
            "a literal of type {ty} needs 1 or {n} values, got {}",
            values.len()
        ));
    }
    let get = |i: usize| values[if values.len() == 1 { 0 } else { i }];
    let float = |s: Scalar| match s {
        Scalar::Int(i) => Ok(i as f64),
        Scalar::Float(x) => Ok(x),
        Scalar::Bool(_) => Err(format!("`true`/`false` is not a {} value", ty.dtype)),
    };
    let data = match ty.dtype {
        DType::F32 => TensorData::F32(
            (0..n)
                .map(|i| float(get(i)).map(|x| x as f32))
                .collect::<Result<_, _>>()?,
        ),
        DType::F64 => TensorData::F64((0..n).map(|i| float(get(i))).collect::<Result<_, _>>()?),
        DType::I32 => TensorData::I32(
            (0..n)
                .map(|i| match get(i) {
                    Scalar::Int(v) => {
                        i32::try_from(v).map_err(|_| format!("{v} does not fit in i32"))
                    }
                    _ => Err("i32 literals must be integers".to_string()),
                })
                .collect::<Result<_, _>>()?,
        ),
        DType::Bool => TensorData::Bool(
            (0..n)
                .map(|i| match get(i) {
                    Scalar::Bool(b) => Ok(b),
                    _ => Err("bool literals are `true` or `false`".to_string()),
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(HostTensor::new(ty.shape.clone(), data).expect("sized from the type"))
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
    p.keyword("fn")?;
    let mut graph = Graph::new(p.name()?);
    let mut ids: HashMap<u64, NodeId> = HashMap::new();

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
    p.punct("->")?;
    p.punct("(")?;
    let mut results: Vec<(Option<String>, TensorType, usize)> = Vec::new();
    while !p.eat(")") {
        let at = p.pos;
        let named =
            matches!(p.peek(), Tok::Ident(_) | Tok::Str(_)) && *p.peek2() == Tok::Punct(":");
        let name = if named {
            let n = p.name()?;
            p.punct(":")?;
            Some(n)
        } else {
            None
        };
        results.push((name, p.ty()?, at));
        if !p.eat(",") {
            p.punct(")")?;
            break;
        }
    }
    p.punct("{")?;

    loop {
        if matches!(p.peek(), Tok::Ident(s) if s == "return") {
            break;
        }
        let def_at = p.pos;
        let Tok::Id(label) = p.peek().clone() else {
            return Err(p.expected("a node `%N = ...` or `return`"));
        };
        p.next();
        if ids.contains_key(&label) {
            return Err(p.error_at(def_at, format!("`%{label}` is defined twice")));
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
        let mut operands = Vec::new();
        while let Tok::Id(n) = p.peek().clone() {
            let at = p.pos;
            let id = *ids
                .get(&n)
                .ok_or_else(|| p.error_at(at, format!("`%{n}` is not defined before this use")))?;
            operands.push(id);
            p.next();
            if !p.eat(",") {
                break;
            }
        }
        let mut attrs = Vec::new();
        while let (Tok::Ident(key), Tok::Punct("=")) = (p.peek().clone(), p.peek2().clone()) {
            p.next();
            p.next();
            attrs.push((key, p.attr_value()?));
        }
        p.punct(":")?;
        let ty = p.ty()?;
        let id = match literal {
            Some((values, at)) => {
                if !operands.is_empty() || !attrs.is_empty() {
                    return Err(
                        p.error_at(op_at, "`const` takes a literal, no operands or attributes")
                    );
                }
                let t = literal_tensor(&values, &ty).map_err(|m| p.error_at(at, m))?;
                graph.constant(t)
            }
            None => {
                let op = Op::from_syntax(&mnemonic, attrs)
                    .map_err(|e| p.error_at(op_at, e.to_string()))?;
                let id = graph
                    .add(op, &operands)
                    .map_err(|e| p.error_at(op_at, e.to_string()))?;
                if graph.node(id).ty != ty {
                    let inferred = graph.node(id).ty.clone();
                    return Err(p.error_at(
                        op_at,
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
    let ret_at = p.pos;
    p.keyword("return")?;
    let mut returned = Vec::new();
    while let Tok::Id(n) = p.peek().clone() {
        let at = p.pos;
        returned.push((
            *ids.get(&n)
                .ok_or_else(|| p.error_at(at, format!("`%{n}` is not defined")))?,
            at,
        ));
        p.next();
        if !p.eat(",") {
            break;
        }
    }
    p.punct("}")?;
    if *p.peek() != Tok::Eof {
        return Err(p.expected("end of input after `}`"));
    }
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
    for ((name, ty, at), (node, _)) in results.into_iter().zip(returned) {
        if graph.node(node).ty != ty {
            return Err(p.error_at(
                at,
                format!(
                    "result declared {ty} but the returned node is {}",
                    graph.node(node).ty
                ),
            ));
        }
        graph.output(node, name.as_deref());
    }
    graph
        .validate()
        .map_err(|e| p.error_at(ret_at, e.to_string()))?;
    Ok(graph)
}
