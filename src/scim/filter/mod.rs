//! SCIM filters (RFC 7644 §3.4.2.2), PATCH paths (RFC 7644 §3.5.2) and an in-memory evaluator.
//!
//! - [`parse`] reads the whole filter language: `eq ne co sw ew gt ge lt le pr`, `and` / `or` /
//!   `not (...)` (precedence `not` > `and` > `or`), parentheses, URN-qualified attribute paths,
//!   value paths `emails[type eq "work" and primary eq true]` and Entra's non-RFC
//!   `emails[type eq "work"].value eq "x"`, which becomes the value path
//!   `emails[type eq "work" and value eq "x"]`. Keywords are case-insensitive; literals are JSON
//!   (strings with every JSON escape, numbers, `true` / `false` / `null`). A bare word as a value
//!   is refused. Errors are 400 `invalidFilter` and name what was expected and the byte offset.
//! - [`parse_path`] reads a PATCH `path` (`attrPath / valuePath [subAttr]`); errors are
//!   400 `invalidPath`.
//! - [`matches`] / [`matches_value`] (`eval.rs`) evaluate a filter against a rendered resource
//!   (or one element of a multi-valued attribute). They are the reference semantics for the
//!   SQL compiler; the rules are listed on [`matches`]. Paths resolve through the schema
//!   registry ([`crate::scim::path`]).
//!
//! The parser recurses only through bracketing constructs and refuses more than [`MAX_DEPTH`]
//! of them, and refuses input longer than [`MAX_FILTER_LEN`], so hostile input cannot overflow
//! the stack. Attribute names are kept as written; lookups against the schema are
//! case-insensitive. Pure code: no HTTP, no SQL.

mod eval;

use std::fmt;

use serde_json::Value;

use super::{ScimError, ScimType};

pub use eval::{fold_case, matches, matches_value, resolve};

/// Longest filter (or PATCH path) accepted, in bytes; longer is refused before parsing.
pub const MAX_FILTER_LEN: usize = 4096;

/// Deepest nesting accepted; each `(`, each `not` and each `[` is one level.
pub const MAX_DEPTH: usize = 64;

/// An attribute path as written (names are NOT canonicalised by the parser; lookups against the
/// schema are case-insensitive). `urn` is the schema URN prefix if one was written.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

impl AttrPath {
    /// A path without URN or sub-attribute.
    pub fn simple(attr: impl Into<String>) -> Self {
        AttrPath {
            urn: None,
            attr: attr.into(),
            sub: None,
        }
    }
}

impl fmt::Display for AttrPath {
    /// The path in filter syntax: `[urn:]attr[.sub]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    /// The operator keyword in lower case, e.g. `"eq"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    fn from_keyword(word: &str) -> Option<CompareOp> {
        [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ]
        .into_iter()
        .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// value is a JSON string, number, bool or null literal
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: Value,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work"]`: `filter`'s paths are relative to one element of the
    /// multi-valued attribute `path` (path.sub is None). True if ANY element matches.
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

/// A PATCH `path` (RFC 7644 §3.5.2 PATH = attrPath / valuePath [subAttr]):
/// `name.givenName` → attr "name", sub "givenName"; `emails[type eq "work"].value` → attr "emails",
/// filter Some(type eq work), sub "value"; `members[value eq "x"]`; `urn:...:enterprise:2.0:User:manager.value`
/// → urn Some(enterprise urn), attr "manager", sub "value".
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub urn: Option<String>,
    pub attr: String,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

/// Parses a `filter` query parameter (or `POST /.search` filter). Errors are 400 `invalidFilter`.
pub fn parse(input: &str) -> Result<Filter, ScimError> {
    let mut p = Parser::new(input, ScimType::InvalidFilter, "filter")?;
    if p.toks.is_empty() {
        return Err(p.err(0, "the filter is empty"));
    }
    let f = p.or_expr(false)?;
    if let Some(t) = p.peek() {
        return Err(p.err(
            t.at,
            format!(
                "expected \"and\", \"or\" or the end of the filter, found {}",
                t.tok.describe()
            ),
        ));
    }
    Ok(f)
}

/// Parses a PATCH operation's `path`. Errors (including those inside `[...]`) are 400
/// `invalidPath`.
pub fn parse_path(input: &str) -> Result<PatchPath, ScimError> {
    let mut p = Parser::new(input, ScimType::InvalidPath, "path")?;
    let (word, at) = match p.next() {
        Some(Token {
            tok: Tok::Word(w),
            at,
            ..
        }) => (w, at),
        Some(t) => {
            return Err(p.err(
                t.at,
                format!("expected an attribute path, found {}", t.tok.describe()),
            ))
        }
        None => return Err(p.err(0, "the path is empty")),
    };
    let path = p.attr_path(&word, at, false)?;
    let mut out = PatchPath {
        urn: path.urn,
        attr: path.attr,
        filter: None,
        sub: path.sub,
    };
    if let Some(open) = p.eat(&Tok::LBracket) {
        if out.sub.is_some() {
            return Err(p.err(
                open,
                format!(
                    "\"{word}\" names a sub-attribute; \"[\" must follow a multi-valued attribute"
                ),
            ));
        }
        out.filter = Some(p.bracketed(open)?);
        out.sub = p.sub_after_bracket()?;
    }
    if let Some(t) = p.peek() {
        return Err(p.err(
            t.at,
            format!("expected the end of the path, found {}", t.tok.describe()),
        ));
    }
    Ok(out)
}

/// Parses a bare attribute path (`[urn:]attr[.sub]`, no filter), e.g. a `sortBy` value.
/// Errors are 400 with `scim_type`.
pub fn parse_attr_path(input: &str, scim_type: ScimType) -> Result<AttrPath, ScimError> {
    let mut p = Parser::new(input, scim_type, "attribute path")?;
    let (word, at) = match p.next() {
        Some(Token {
            tok: Tok::Word(w),
            at,
        }) => (w, at),
        Some(t) => {
            return Err(p.err(
                t.at,
                format!("expected an attribute path, found {}", t.tok.describe()),
            ))
        }
        None => return Err(p.err(0, "the attribute path is empty")),
    };
    let path = p.attr_path(&word, at, false)?;
    if let Some(t) = p.peek() {
        return Err(p.err(
            t.at,
            format!(
                "expected the end of the attribute path, found {}",
                t.tok.describe()
            ),
        ));
    }
    Ok(path)
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// A decoded JSON string literal.
    Str(String),
    /// Anything else up to whitespace, a bracket or a quote: paths, keywords, numbers.
    Word(String),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::LParen => "\"(\"".into(),
            Tok::RParen => "\")\"".into(),
            Tok::LBracket => "\"[\"".into(),
            Tok::RBracket => "\"]\"".into(),
            Tok::Str(s) => format!("the string {}", Value::String(s.clone())),
            Tok::Word(w) => format!("\"{w}\""),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Byte offset of the token's first character.
    at: usize,
}

fn tokenize(
    input: &str,
    err: impl Fn(usize, String) -> ScimError,
) -> Result<Vec<Token>, ScimError> {
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' | b')' | b'[' | b']' => {
                let tok = match c {
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    b'[' => Tok::LBracket,
                    _ => Tok::RBracket,
                };
                out.push(Token { tok, at: i });
                i += 1;
            }
            b'"' => {
                // Find the closing quote honouring backslash escapes ('"' and '\\' are ASCII, so
                // scanning bytes is safe in UTF-8), then let serde_json decode the escapes.
                let start = i;
                let mut j = i + 1;
                let mut end = None;
                while j < bytes.len() {
                    match bytes[j] {
                        b'\\' => j += 2,
                        b'"' => {
                            end = Some(j);
                            break;
                        }
                        _ => j += 1,
                    }
                }
                let end = end.ok_or_else(|| err(start, "unterminated string".into()))?;
                let literal = input
                    .get(start..=end)
                    .ok_or_else(|| err(start, "invalid string".into()))?;
                let s: String = serde_json::from_str(literal)
                    .map_err(|e| err(start, format!("invalid string literal ({e})")))?;
                out.push(Token {
                    tok: Tok::Str(s),
                    at: start,
                });
                i = end + 1;
            }
            _ => {
                let start = i;
                let rest = input.get(start..).unwrap_or_default();
                let Some(first) = rest.chars().next() else {
                    break;
                };
                if first.is_whitespace() {
                    // Non-ASCII whitespace, e.g. U+00A0.
                    i += first.len_utf8();
                    continue;
                }
                let len = rest
                    .find(|ch: char| ch.is_whitespace() || "()[]\"".contains(ch))
                    .unwrap_or(rest.len());
                out.push(Token {
                    tok: Tok::Word(rest[..len].to_string()),
                    at: start,
                });
                i = start + len;
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    /// Offset reported for "the end of the input".
    end: usize,
    scim_type: ScimType,
    depth: usize,
}

impl Parser {
    fn new(input: &str, scim_type: ScimType, what: &str) -> Result<Parser, ScimError> {
        let err =
            |at: usize, msg: String| ScimError::bad_request(scim_type, format!("{msg} at {at}"));
        if input.len() > MAX_FILTER_LEN {
            return Err(ScimError::bad_request(
                scim_type,
                format!("the {what} is longer than {MAX_FILTER_LEN} bytes"),
            ));
        }
        Ok(Parser {
            toks: tokenize(input, err)?,
            pos: 0,
            end: input.len(),
            scim_type,
            depth: 0,
        })
    }

    fn err(&self, at: usize, msg: impl fmt::Display) -> ScimError {
        ScimError::bad_request(self.scim_type, format!("{msg} at {at}"))
    }

    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    /// Offset and description of the next token, for error messages.
    fn found(&self) -> (usize, String) {
        match self.peek() {
            Some(t) => (t.at, t.tok.describe()),
            None => (self.end, "the end of the input".into()),
        }
    }

    /// Consumes the next token if it is `tok`; returns its offset.
    fn eat(&mut self, tok: &Tok) -> Option<usize> {
        match self.peek() {
            Some(t) if &t.tok == tok => {
                let at = t.at;
                self.pos += 1;
                Some(at)
            }
            _ => None,
        }
    }

    /// Consumes the next token if it is the keyword `kw` (case-insensitive).
    fn eat_keyword(&mut self, kw: &str) -> bool {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(w), ..
            }) if w.eq_ignore_ascii_case(kw) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), ScimError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.err(
                at,
                format!("nesting deeper than {MAX_DEPTH} levels of \"(\", \"not\" and \"[\""),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// `or_expr := and_expr ("or" and_expr)*`
    fn or_expr(&mut self, in_brackets: bool) -> Result<Filter, ScimError> {
        let mut f = self.and_expr(in_brackets)?;
        while self.eat_keyword("or") {
            let rhs = self.and_expr(in_brackets)?;
            f = Filter::Or(Box::new(f), Box::new(rhs));
        }
        Ok(f)
    }

    /// `and_expr := unary ("and" unary)*`
    fn and_expr(&mut self, in_brackets: bool) -> Result<Filter, ScimError> {
        let mut f = self.unary(in_brackets)?;
        while self.eat_keyword("and") {
            let rhs = self.unary(in_brackets)?;
            f = Filter::And(Box::new(f), Box::new(rhs));
        }
        Ok(f)
    }

    /// `unary := "not" "(" or_expr ")" | "(" or_expr ")" | attrExp`
    fn unary(&mut self, in_brackets: bool) -> Result<Filter, ScimError> {
        let Some(t) = self.next() else {
            let (at, found) = self.found();
            return Err(self.err(
                at,
                format!("expected an attribute path, \"not\" or \"(\", found {found}"),
            ));
        };
        match t.tok {
            Tok::Word(w) if w.eq_ignore_ascii_case("not") => {
                self.enter(t.at)?;
                let Some(open) = self.eat(&Tok::LParen) else {
                    let (at, found) = self.found();
                    return Err(
                        self.err(at, format!("expected \"(\" after \"not\", found {found}"))
                    );
                };
                let inner = self.parenthesised(open, in_brackets)?;
                self.leave();
                Ok(Filter::Not(Box::new(inner)))
            }
            Tok::LParen => self.parenthesised(t.at, in_brackets),
            Tok::Word(w) => self.attr_exp(&w, t.at, in_brackets),
            other => Err(self.err(
                t.at,
                format!(
                    "expected an attribute path, \"not\" or \"(\", found {}",
                    other.describe()
                ),
            )),
        }
    }

    /// The rest of `"(" or_expr ")"` after the `(` at `open`.
    fn parenthesised(&mut self, open: usize, in_brackets: bool) -> Result<Filter, ScimError> {
        self.enter(open)?;
        let inner = self.or_expr(in_brackets)?;
        if self.eat(&Tok::RParen).is_none() {
            let (at, found) = self.found();
            return Err(self.err(
                at,
                format!(
                    "expected \")\" closing the \"(\" at {open}, or \"and\"/\"or\", found {found}"
                ),
            ));
        }
        self.leave();
        Ok(inner)
    }

    /// The rest of `"[" valFilter "]"` after the `[` at `open`.
    fn bracketed(&mut self, open: usize) -> Result<Filter, ScimError> {
        self.enter(open)?;
        let inner = self.or_expr(true)?;
        if self.eat(&Tok::RBracket).is_none() {
            let (at, found) = self.found();
            return Err(self.err(
                at,
                format!(
                    "expected \"]\" closing the \"[\" at {open}, or \"and\"/\"or\", found {found}"
                ),
            ));
        }
        self.leave();
        Ok(inner)
    }

    /// An optional `.subAttr` right after `]`.
    fn sub_after_bracket(&mut self) -> Result<Option<String>, ScimError> {
        let Some(Token {
            tok: Tok::Word(w),
            at,
        }) = self.peek().cloned()
        else {
            return Ok(None);
        };
        let Some(name) = w.strip_prefix('.') else {
            return Ok(None);
        };
        if !valid_name(name) {
            return Err(self.err(
                at,
                format!("expected a sub-attribute name after \"].\", found \"{w}\""),
            ));
        }
        self.pos += 1;
        Ok(Some(name.to_string()))
    }

    /// `attrExp := attrPath ("pr" | compareOp compValue) | attrPath "[" valFilter "]" [...]`
    fn attr_exp(&mut self, word: &str, at: usize, in_brackets: bool) -> Result<Filter, ScimError> {
        let path = self.attr_path(word, at, in_brackets)?;
        if let Some(open) = self.eat(&Tok::LBracket) {
            if in_brackets {
                return Err(self.err(open, "a value filter cannot be nested inside \"[...]\""));
            }
            if path.sub.is_some() {
                return Err(self.err(
                    open,
                    format!("\"{word}\" names a sub-attribute; \"[\" must follow a multi-valued attribute"),
                ));
            }
            let inner = self.bracketed(open)?;
            // Entra's `emails[type eq "work"].value eq "x"`: fold the trailing comparison into
            // the element filter.
            let filter = match self.sub_after_bracket()? {
                None => inner,
                Some(sub) => {
                    let rel = AttrPath::simple(sub);
                    let text = format!("{word}[...].{}", rel.attr);
                    let cmp = self.operator(rel, &text)?;
                    Filter::And(Box::new(inner), Box::new(cmp))
                }
            };
            return Ok(Filter::ValuePath {
                path,
                filter: Box::new(filter),
            });
        }
        self.operator(path, word)
    }

    /// `"pr" | compareOp compValue` after the path written as `text`.
    fn operator(&mut self, path: AttrPath, text: &str) -> Result<Filter, ScimError> {
        let (op_at, op_word) = match self.peek() {
            Some(Token {
                tok: Tok::Word(w),
                at,
            }) => (*at, w.clone()),
            _ => {
                let (at, found) = self.found();
                return Err(self.err(
                    at,
                    format!("expected an operator after \"{text}\", found {found}"),
                ));
            }
        };
        if op_word.eq_ignore_ascii_case("pr") {
            self.pos += 1;
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::from_keyword(&op_word) else {
            return Err(self.err(
                op_at,
                format!(
                    "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after \"{text}\", found \"{op_word}\""
                ),
            ));
        };
        self.pos += 1;
        let (value, value_at) = self.value(text, op)?;
        match (op, &value) {
            (
                CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le,
                Value::Bool(_) | Value::Null,
            ) => Err(self.err(
                value_at,
                format!(
                    "\"{}\" cannot compare with {value}; booleans and null support only eq and ne",
                    op.as_str()
                ),
            )),
            (CompareOp::Co | CompareOp::Sw | CompareOp::Ew, v) if !v.is_string() => Err(self.err(
                value_at,
                format!("\"{}\" needs a quoted string, found {value}", op.as_str()),
            )),
            _ => Ok(Filter::Compare { path, op, value }),
        }
    }

    /// A comparison value: a JSON string, number, `true`, `false` or `null`.
    fn value(&mut self, text: &str, op: CompareOp) -> Result<(Value, usize), ScimError> {
        let t = match self.next() {
            Some(t) => t,
            None => {
                return Err(self.err(
                    self.end,
                    format!(
                        "expected a value after \"{text} {}\", found the end of the input",
                        op.as_str()
                    ),
                ))
            }
        };
        let v = match &t.tok {
            Tok::Str(s) => Value::String(s.clone()),
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => Value::Bool(true),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => Value::Bool(false),
            Tok::Word(w) if w.eq_ignore_ascii_case("null") => Value::Null,
            Tok::Word(w) if w.starts_with(|c: char| c.is_ascii_digit() || c == '-') => {
                match serde_json::from_str::<serde_json::Number>(w) {
                    Ok(n) => Value::Number(n),
                    Err(_) => {
                        return Err(self.err(t.at, format!("\"{w}\" is not a valid number")))
                    }
                }
            }
            other => {
                return Err(self.err(
                    t.at,
                    format!(
                        "expected a value (a \"quoted string\", a number, true, false or null) after \"{text} {}\", found {}",
                        op.as_str(),
                        other.describe()
                    ),
                ))
            }
        };
        Ok((v, t.at))
    }

    /// Splits `[urn:]attr[.sub]`. Inside `[...]` paths are relative to an element: no URN,
    /// no sub-attribute.
    fn attr_path(&self, word: &str, at: usize, in_brackets: bool) -> Result<AttrPath, ScimError> {
        let bad = |why: &str| {
            self.err(
                at,
                format!("\"{word}\" is not a valid attribute path ({why})"),
            )
        };
        let (urn, rest) = split_urn(word).map_err(&bad)?;
        if rest.split('.').any(str::is_empty) {
            return Err(bad("a name before or after \".\" is empty"));
        }
        let mut parts = rest.split('.');
        let attr = parts.next().unwrap_or_default();
        let sub = parts.next();
        if parts.next().is_some() {
            return Err(bad("at most one \".\" is allowed"));
        }
        if !valid_name(attr) || sub.is_some_and(|s| !valid_name(s)) {
            return Err(bad(
                "names start with a letter and contain letters, digits, \"-\" and \"_\"",
            ));
        }
        if in_brackets && (urn.is_some() || sub.is_some()) {
            return Err(bad(
                "inside \"[...]\" a path names one sub-attribute of the element, without URN or \".\"",
            ));
        }
        Ok(AttrPath {
            urn,
            attr: attr.to_string(),
            sub: sub.map(str::to_string),
        })
    }
}

/// Splits a leading `urn:` prefix off `word` at its last `:`: attribute names never contain
/// one, and a URN contains dots (`2.0`), so splitting anywhere else would cut it. The URN is
/// kept as written; the registry matches it case-insensitively ([`crate::scim::path`]).
fn split_urn(word: &str) -> Result<(Option<String>, &str), &'static str> {
    let is_urn = word
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
    if !is_urn {
        if word.contains(':') {
            return Err("only a \"urn:\" prefix may contain \":\"");
        }
        return Ok((None, word));
    }
    match word.rfind(':') {
        Some(i) if i > 4 && i + 1 < word.len() => Ok((Some(word[..i].to_string()), &word[i + 1..])),
        _ => Err("expected \"urn:...:attribute\""),
    }
}

/// RFC 7643 §2.1 ATTRNAME (`ALPHA *(nameChar)`), plus `$ref`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '$' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::{ENTERPRISE_URN, GROUP_URN, USER_URN};
    use serde_json::json;

    fn p(attr: &str) -> AttrPath {
        AttrPath::simple(attr)
    }

    fn ps(attr: &str, sub: &str) -> AttrPath {
        AttrPath {
            urn: None,
            attr: attr.into(),
            sub: Some(sub.into()),
        }
    }

    fn cmp(path: AttrPath, op: CompareOp, value: Value) -> Filter {
        Filter::Compare { path, op, value }
    }

    fn eq(attr: &str, value: Value) -> Filter {
        cmp(p(attr), CompareOp::Eq, value)
    }

    fn and(a: Filter, b: Filter) -> Filter {
        Filter::And(Box::new(a), Box::new(b))
    }

    fn or(a: Filter, b: Filter) -> Filter {
        Filter::Or(Box::new(a), Box::new(b))
    }

    fn not(a: Filter) -> Filter {
        Filter::Not(Box::new(a))
    }

    fn ok(input: &str) -> Filter {
        match parse(input) {
            Ok(f) => f,
            Err(e) => panic!("{input}: {e}"),
        }
    }

    fn bad(input: &str) -> String {
        let e = parse(input).expect_err(input);
        assert_eq!(e.status, 400, "{input}");
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{input}");
        e.detail
    }

    fn bad_path(input: &str) -> String {
        let e = parse_path(input).expect_err(input);
        assert_eq!(e.status, 400, "{input}");
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath), "{input}");
        e.detail
    }

    // ---- parser ------------------------------------------------------------------------------

    #[test]
    fn every_operator() {
        for (kw, op) in [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
        ] {
            assert_eq!(
                ok(&format!(r#"title {kw} "x""#)),
                cmp(p("title"), op, json!("x"))
            );
            assert_eq!(
                ok(&format!(r#"title {} "x""#, kw.to_uppercase())),
                cmp(p("title"), op, json!("x"))
            );
        }
        assert_eq!(ok("title pr"), Filter::Present(p("title")));
        assert_eq!(ok("title PR"), Filter::Present(p("title")));
    }

    #[test]
    fn literals() {
        assert_eq!(ok("active eq true"), eq("active", json!(true)));
        assert_eq!(ok("active eq TRUE"), eq("active", json!(true)));
        assert_eq!(ok("active eq False"), eq("active", json!(false)));
        assert_eq!(ok("title eq NULL"), eq("title", Value::Null));
        assert_eq!(ok("n eq 42"), eq("n", json!(42)));
        assert_eq!(ok("n gt -3"), cmp(p("n"), CompareOp::Gt, json!(-3)));
        assert_eq!(ok("n le 2.5"), cmp(p("n"), CompareOp::Le, json!(2.5)));
        assert_eq!(ok("n eq 1e3"), eq("n", json!(1000.0)));
        assert_eq!(ok("n eq -1.5E-2"), eq("n", json!(-0.015)));
        assert_eq!(ok(r#"title eq """#), eq("title", json!("")));
    }

    #[test]
    fn json_escapes_in_strings() {
        assert_eq!(
            ok(r#"userName eq "a\"b\\c\/d\n\t""#),
            eq("userName", json!("a\"b\\c/d\n\t"))
        );
        assert_eq!(
            ok(r#"userName eq "caf\u00e9""#),
            eq("userName", json!("café"))
        );
        assert_eq!(
            ok(r#"userName eq "\ud83d\ude00""#),
            eq("userName", json!("😀"))
        );
        assert_eq!(
            ok(r#"userName eq "日本 ()[]""#),
            eq("userName", json!("日本 ()[]"))
        );
        assert!(bad(r#"userName eq "\x""#).contains("at 12"));
        assert!(bad(r#"userName eq "\ud83d""#).contains("invalid string"));
        assert!(bad(r#"userName eq "abc"#).contains("unterminated string at 12"));
        assert!(bad(r#"userName eq "abc\""#).contains("unterminated"));
    }

    #[test]
    fn logic_and_precedence() {
        let (a, b, c) = (eq("a", json!(1)), eq("b", json!(2)), eq("c", json!(3)));
        assert_eq!(
            ok("a eq 1 or b eq 2 and c eq 3"),
            or(a.clone(), and(b.clone(), c.clone()))
        );
        assert_eq!(
            ok("a eq 1 and b eq 2 or c eq 3"),
            or(and(a.clone(), b.clone()), c.clone())
        );
        assert_eq!(
            ok("(a eq 1 or b eq 2) and c eq 3"),
            and(or(a.clone(), b.clone()), c.clone())
        );
        assert_eq!(
            ok("a eq 1 and b eq 2 and c eq 3"),
            and(and(a.clone(), b.clone()), c.clone())
        );
        assert_eq!(
            ok("a eq 1 or b eq 2 or c eq 3"),
            or(or(a.clone(), b.clone()), c.clone())
        );
        assert_eq!(
            ok("not (a eq 1) and b eq 2"),
            and(not(a.clone()), b.clone())
        );
        assert_eq!(ok("NOT(a eq 1 or b eq 2)"), not(or(a.clone(), b.clone())));
        assert_eq!(ok("a eq 1 AND b eq 2"), and(a.clone(), b.clone()));
        assert_eq!(ok("a eq 1 Or b eq 2"), or(a.clone(), b.clone()));
        assert_eq!(ok("((a eq 1))"), a.clone());
        assert_eq!(ok("  a   eq\t1\n"), a);
        // Non-ASCII whitespace separates tokens too.
        assert_eq!(ok("a\u{a0}eq\u{a0}1"), eq("a", json!(1)));
    }

    #[test]
    fn attribute_paths() {
        assert_eq!(
            ok("name.familyName pr"),
            Filter::Present(ps("name", "familyName"))
        );
        assert_eq!(
            ok("NAME.FAMILYNAME pr"),
            Filter::Present(ps("NAME", "FAMILYNAME"))
        );
        assert_eq!(
            ok("members.$ref pr"),
            Filter::Present(ps("members", "$ref"))
        );
        assert_eq!(
            ok("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"x\""),
            cmp(
                AttrPath {
                    urn: Some(ENTERPRISE_URN.into()),
                    attr: "department".into(),
                    sub: None
                },
                CompareOp::Eq,
                json!("x")
            )
        );
        // The URN is split off at the last ':' and kept as written; the registry matches it
        // case-insensitively (crate::scim::path).
        assert_eq!(
            ok("URN:IETF:params:scim:schemas:EXTENSION:enterprise:2.0:user:manager.value pr"),
            Filter::Present(AttrPath {
                urn: Some("URN:IETF:params:scim:schemas:EXTENSION:enterprise:2.0:user".into()),
                attr: "manager".into(),
                sub: Some("value".into())
            })
        );
        assert_eq!(
            ok("urn:ietf:params:scim:schemas:core:2.0:User:userName pr"),
            Filter::Present(AttrPath {
                urn: Some(USER_URN.into()),
                attr: "userName".into(),
                sub: None
            })
        );
        assert_eq!(
            ok("urn:ietf:params:scim:schemas:core:2.0:Group:displayName pr"),
            Filter::Present(AttrPath {
                urn: Some(GROUP_URN.into()),
                attr: "displayName".into(),
                sub: None
            })
        );
        // Unknown URN: split at the last ':' and kept as written.
        assert_eq!(
            ok("urn:Example:ext:1.0:Thing:color.hue pr"),
            Filter::Present(AttrPath {
                urn: Some("urn:Example:ext:1.0:Thing".into()),
                attr: "color".into(),
                sub: Some("hue".into())
            })
        );
        assert_eq!(
            ok("urn:ietf:params:scim:schemas:core:2.0:UserX:foo pr"),
            Filter::Present(AttrPath {
                urn: Some("urn:ietf:params:scim:schemas:core:2.0:UserX".into()),
                attr: "foo".into(),
                sub: None
            })
        );
        let shown = AttrPath {
            urn: Some(ENTERPRISE_URN.into()),
            attr: "manager".into(),
            sub: Some("value".into()),
        };
        assert_eq!(shown.to_string(), format!("{ENTERPRISE_URN}:manager.value"));
    }

    #[test]
    fn value_paths() {
        assert_eq!(
            ok(r#"emails[type eq "work" and primary eq true]"#),
            Filter::ValuePath {
                path: p("emails"),
                filter: Box::new(and(eq("type", json!("work")), eq("primary", json!(true))))
            }
        );
        assert_eq!(
            ok(
                r#"emails[not (type eq "work") or (value co "@x" and primary pr)] and active eq true"#
            ),
            and(
                Filter::ValuePath {
                    path: p("emails"),
                    filter: Box::new(or(
                        not(eq("type", json!("work"))),
                        and(
                            cmp(p("value"), CompareOp::Co, json!("@x")),
                            Filter::Present(p("primary"))
                        )
                    ))
                },
                eq("active", json!(true))
            )
        );
        // Entra's non-RFC form.
        let entra = Filter::ValuePath {
            path: p("emails"),
            filter: Box::new(and(eq("type", json!("work")), eq("value", json!("x")))),
        };
        assert_eq!(ok(r#"emails[type eq "work"].value eq "x""#), entra);
        assert_eq!(ok(r#"emails[type EQ "work"].value EQ "x""#), entra);
        assert_eq!(
            ok(r#"emails[type eq "work"].value pr or userName eq "u""#),
            or(
                Filter::ValuePath {
                    path: p("emails"),
                    filter: Box::new(and(eq("type", json!("work")), Filter::Present(p("value"))))
                },
                eq("userName", json!("u"))
            )
        );
        assert_eq!(
            ok(r#"urn:ietf:params:scim:schemas:core:2.0:User:emails[value ew "@x"]"#),
            Filter::ValuePath {
                path: AttrPath {
                    urn: Some(USER_URN.into()),
                    attr: "emails".into(),
                    sub: None
                },
                filter: Box::new(cmp(p("value"), CompareOp::Ew, json!("@x")))
            }
        );
    }

    #[test]
    fn errors_name_what_was_expected_and_where() {
        assert_eq!(
            bad("userName"),
            "expected an operator after \"userName\", found the end of the input at 8"
        );
        assert_eq!(
            bad(r#"userName zz "x""#),
            "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after \"userName\", found \"zz\" at 9"
        );
        assert!(bad("userName eq").contains("expected a value after \"userName eq\""));
        assert!(bad("").contains("empty"));
        assert!(bad("   ").contains("empty"));
        // Bare words are not values.
        let e = bad("externalId eq jyoung");
        assert!(
            e.contains("expected a value") && e.contains("\"jyoung\" at 14"),
            "{e}"
        );
        assert!(bad("n eq 1x").contains("\"1x\" is not a valid number at 5"));
        assert!(bad("n eq 01").contains("not a valid number"));
        assert!(bad("n eq 1e999").contains("not a valid number"));
        // Operator/value type rules.
        assert!(bad("active gt true").contains("\"gt\" cannot compare with true"));
        assert!(bad("title le null").contains("cannot compare with null"));
        assert!(bad("title co 1").contains("\"co\" needs a quoted string"));
        assert!(bad("title sw true").contains("needs a quoted string"));
        assert!(bad("title ew null").contains("needs a quoted string"));
        assert!(bad("title pr \"x\"").contains("expected \"and\", \"or\" or the end"));
        // Structure.
        for input in [
            "userName eq \"x\" and",
            "userName eq \"x\" or",
            "and userName eq \"x\"",
            "(userName eq \"x\"",
            "userName eq \"x\")",
            "()",
            "not userName eq \"x\"",
            "not",
            "userName eq \"x\" userName eq \"y\"",
            "emails[type eq \"work\"",
            "emails[]",
            "emails]",
            "emails[type eq \"work\"].value",
            "emails[type eq \"work\"].value.x eq \"y\"",
            "emails[type eq \"work\"].1 eq \"y\"",
            "emails[type[value eq \"a\"]]",
            "emails[value[value eq \"a\"] eq \"b\"]",
            "emails[urn:x:y:type eq \"a\"]",
            "emails[type.value eq \"a\"]",
            "emails.value[type eq \"a\"]",
            "a..b eq 1",
            ".a eq 1",
            "a. eq 1",
            "a.b.c eq 1",
            "1abc eq 1",
            "na!me eq 1",
            "foo:bar eq 1",
            "urn:foo eq 1",
            "urn:ietf:params:scim:schemas:core:2.0:User: eq 1",
            "\"userName\" eq 1",
            "userName eq \"a\" [",
        ] {
            bad(input);
        }
        assert!(bad("(userName eq \"x\"").contains("expected \")\" closing the \"(\" at 0"));
        assert!(bad("emails[type eq \"work\"").contains("expected \"]\" closing the \"[\" at 6"));
        assert!(bad("not userName eq 1")
            .contains("expected \"(\" after \"not\", found \"userName\" at 4"));
        assert!(bad("emails[type[value eq 1]]").contains("nested"));
        assert!(bad("a..b eq 1").contains(
            "\"a..b\" is not a valid attribute path (a name before or after \".\" is empty) at 0"
        ));
        assert!(bad(&"a".repeat(MAX_FILTER_LEN + 1)).contains("longer than 4096"));
    }

    #[test]
    fn depth_limits_do_not_overflow_the_stack() {
        let parens = "(".repeat(MAX_FILTER_LEN);
        assert!(bad(&parens).contains("nesting deeper than 64"));
        let nots = "not(".repeat(MAX_FILTER_LEN / 4);
        assert!(bad(&nots).contains("nesting deeper than 64"));
        let brackets = format!("{}{}", "(".repeat(40), "not(".repeat(40));
        assert!(bad(&brackets).contains("nesting"));
        // Exactly at the limit is fine; one more is not.
        let at = format!("{}a pr{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(ok(&at), Filter::Present(p("a")));
        let over = format!(
            "{}a pr{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert!(bad(&over).contains(&format!("at {MAX_DEPTH}")));
        let nested_not = format!("{}a pr{}", "not (".repeat(32), ")".repeat(32));
        assert!(parse(&nested_not).is_ok());
        let too_many_not = format!("{}a pr{}", "not (".repeat(33), ")".repeat(33));
        bad(&too_many_not);
        let in_brackets = format!("emails[{}type pr{}]", "(".repeat(63), ")".repeat(63));
        assert!(parse(&in_brackets).is_ok());
        let in_brackets = format!("emails[{}type pr{}]", "(".repeat(64), ")".repeat(64));
        bad(&in_brackets);
        // A long flat chain is not nesting.
        let chain = vec!["userName pr"; 250].join(" and ");
        assert!(chain.len() <= MAX_FILTER_LEN);
        let reg = crate::scim::schema::Registry::builtin();
        let user = reg.resource(crate::scim::ResourceKind::User);
        let doc = json!({"userName": "u"});
        assert!(matches(&ok(&chain), user, &doc));
        let chain = vec!["a pr"; 450].join(" or ");
        assert!(!matches(&ok(&chain), user, &doc));
    }

    // ---- parse_path --------------------------------------------------------------------------

    #[test]
    fn patch_paths() {
        let pp =
            |urn: Option<&str>, attr: &str, filter: Option<Filter>, sub: Option<&str>| PatchPath {
                urn: urn.map(str::to_string),
                attr: attr.into(),
                filter,
                sub: sub.map(str::to_string),
            };
        assert_eq!(
            parse_path("userName").unwrap(),
            pp(None, "userName", None, None)
        );
        assert_eq!(
            parse_path("name.givenName").unwrap(),
            pp(None, "name", None, Some("givenName"))
        );
        assert_eq!(
            parse_path(r#"emails[type eq "work"].value"#).unwrap(),
            pp(
                None,
                "emails",
                Some(eq("type", json!("work"))),
                Some("value")
            )
        );
        assert_eq!(
            parse_path(r#"members[value eq "x"]"#).unwrap(),
            pp(None, "members", Some(eq("value", json!("x"))), None)
        );
        assert_eq!(
            parse_path(r#" emails[type eq "work" and primary eq TRUE] "#).unwrap(),
            pp(
                None,
                "emails",
                Some(and(eq("type", json!("work")), eq("primary", json!(true)))),
                None
            )
        );
        assert_eq!(
            parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
                .unwrap(),
            pp(Some(ENTERPRISE_URN), "manager", None, Some("value"))
        );
        assert_eq!(
            parse_path("urn:ietf:params:scim:schemas:extension:Enterprise:2.0:User:employeeNumber")
                .unwrap(),
            pp(
                Some("urn:ietf:params:scim:schemas:extension:Enterprise:2.0:User"),
                "employeeNumber",
                None,
                None
            )
        );
        assert_eq!(
            parse_path("urn:ietf:params:scim:schemas:core:2.0:User:emails[type eq \"work\"].value")
                .unwrap(),
            pp(
                Some(USER_URN),
                "emails",
                Some(eq("type", json!("work"))),
                Some("value")
            )
        );
        for input in [
            "",
            "  ",
            "emails[",
            "emails[type eq \"work\"",
            "emails[type eq \"work\"]x",
            "emails[type eq \"work\"].value extra",
            "emails[type eq \"work\"].value.x",
            "emails[type eq \"work\"] and",
            "userName eq \"x\"",
            "userName)",
            "a..b",
            "a.b.c",
            "(userName)",
            "\"userName\"",
            "emails[typo \"work\"]",
            "emails[type[value eq 1]]",
            "name.givenName[value eq 1]",
        ] {
            bad_path(input);
        }
        // A bare schema URN parses (split at its last ':'); the registry resolves it as the
        // whole extension (crate::scim::path).
        assert_eq!(
            parse_path(ENTERPRISE_URN).unwrap(),
            pp(
                Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0"),
                "User",
                None,
                None
            )
        );
        assert!(bad_path("").contains("empty"));
        assert!(bad_path("userName eq").contains("expected the end of the path, found \"eq\" at 9"));
        assert!(bad_path(&"a".repeat(MAX_FILTER_LEN + 1)).contains("longer"));
        assert!(bad_path(&format!("emails[{}type pr]", "(".repeat(100))).contains("nesting"));
    }
}
