//! SCIM filters (RFC 7644 §3.4.2.2). This first version parses the subset the IdPs send:
//! `attrPath eq value` comparisons joined by `and` (entra.md Q8, okta.md §2.1). The full
//! grammar lands with the query-engine issue; anything else is a clear 400 `invalidFilter`.

use serde_json::Value;

use super::ScimError;

/// Longest filter accepted; longer is refused before parsing.
pub const MAX_FILTER_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `path eq value`; the path is as written (resolution is the store's job).
    Eq {
        path: String,
        value: Value,
    },
    And(Box<Filter>, Box<Filter>),
}

pub fn parse(input: &str) -> Result<Filter, ScimError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_filter(format!(
            "filter is longer than {MAX_FILTER_LEN} bytes"
        )));
    }
    let tokens = tokenize(input)?;
    let mut it = tokens.into_iter().peekable();
    let mut filter = comparison(&mut it)?;
    while let Some(tok) = it.next() {
        match tok {
            Token::Word(w) if w.eq_ignore_ascii_case("and") => {
                let rhs = comparison(&mut it)?;
                filter = Filter::And(Box::new(filter), Box::new(rhs));
            }
            other => {
                return Err(ScimError::invalid_filter(format!(
                    "expected \"and\" but found {}",
                    other.describe()
                )))
            }
        }
    }
    Ok(filter)
}

fn comparison(it: &mut impl Iterator<Item = Token>) -> Result<Filter, ScimError> {
    let path = match it.next() {
        Some(Token::Word(w)) => w,
        Some(t) => {
            return Err(ScimError::invalid_filter(format!(
                "expected an attribute name, found {}",
                t.describe()
            )))
        }
        None => {
            return Err(ScimError::invalid_filter(
                "the filter is empty or ends too early",
            ))
        }
    };
    if !path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.:$".contains(c))
    {
        return Err(ScimError::invalid_filter(format!(
            "\"{path}\" is not an attribute path this server can filter on yet"
        )));
    }
    let op = match it.next() {
        Some(Token::Word(w)) => w,
        _ => {
            return Err(ScimError::invalid_filter(format!(
                "expected an operator after \"{path}\""
            )))
        }
    };
    if !op.eq_ignore_ascii_case("eq") {
        let known = ["ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"];
        return Err(ScimError::invalid_filter(
            if known.iter().any(|k| k.eq_ignore_ascii_case(&op)) {
                format!("operator \"{op}\" is not supported yet; only \"eq\" and \"and\"")
            } else {
                format!("\"{op}\" is not a filter operator")
            },
        ));
    }
    let value = match it.next() {
        Some(Token::Str(s)) => Value::String(s),
        Some(Token::Word(w)) => match w.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            _ => match serde_json::from_str::<serde_json::Number>(&w) {
                Ok(n) => Value::Number(n),
                // Entra's docs print `externalId eq jyoung` unquoted (entra.md §6); accept it.
                Err(_) => Value::String(w),
            },
        },
        _ => {
            return Err(ScimError::invalid_filter(format!(
                "expected a value after \"{path} {op}\""
            )))
        }
    };
    Ok(Filter::Eq { path, value })
}

#[derive(Debug)]
enum Token {
    Word(String),
    Str(String),
    Other(char),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("\"{w}\""),
            Token::Str(s) => format!("the string {s:?}"),
            Token::Other(c) => format!("'{c}'"),
        }
    }
}

fn tokenize(input: &str) -> Result<Vec<Token>, ScimError> {
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            // A JSON string literal: find its end honouring backslash escapes, then let
            // serde_json decode the escapes.
            chars.next();
            let mut escaped = false;
            let mut end = None;
            for (i, ch) in chars.by_ref() {
                if escaped {
                    escaped = false;
                } else if ch == '\\' {
                    escaped = true;
                } else if ch == '"' {
                    end = Some(i);
                    break;
                }
            }
            let end =
                end.ok_or_else(|| ScimError::invalid_filter("unterminated string in filter"))?;
            let s: String = serde_json::from_str(&input[start..=end])
                .map_err(|_| ScimError::invalid_filter("invalid escape in filter string"))?;
            out.push(Token::Str(s));
        } else if c == '(' || c == ')' || c == '[' || c == ']' {
            chars.next();
            out.push(Token::Other(c));
        } else {
            let mut end = input.len();
            while let Some(&(i, ch)) = chars.peek() {
                if ch.is_whitespace() || "()[]\"".contains(ch) {
                    end = i;
                    break;
                }
                chars.next();
            }
            out.push(Token::Word(input[start..end].to_string()));
        }
    }
    if let Some(t @ Token::Other(_)) = out.iter().find(|t| matches!(t, Token::Other(_))) {
        return Err(ScimError::invalid_filter(format!(
            "{} is not supported in filters yet; only \"attr eq value\" joined by \"and\"",
            t.describe()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eq(path: &str, value: Value) -> Filter {
        Filter::Eq {
            path: path.into(),
            value,
        }
    }

    #[test]
    fn parses_what_the_idps_send() {
        assert_eq!(
            parse(r#"userName eq "a@b.c""#).unwrap(),
            eq("userName", json!("a@b.c"))
        );
        assert_eq!(
            parse(r#"userName EQ "x\"y""#).unwrap(),
            eq("userName", json!("x\"y"))
        );
        assert_eq!(
            parse("externalId eq jyoung").unwrap(),
            eq("externalId", json!("jyoung"))
        );
        assert_eq!(
            parse(r#"id eq "1" and displayName eq "g""#).unwrap(),
            Filter::And(
                Box::new(eq("id", json!("1"))),
                Box::new(eq("displayName", json!("g")))
            )
        );
        assert_eq!(parse("active eq true").unwrap(), eq("active", json!(true)));
    }

    #[test]
    fn rejects_what_it_cannot_do() {
        for bad in [
            "",
            "userName",
            "userName eq",
            r#"userName eq "x"#,
            r#"userName co "x""#,
            r#"userName zz "x""#,
            r#"emails[type eq "work"]"#,
            r#"a eq "b" or c eq "d""#,
            r#"(a eq "b")"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(
                e.scim_type,
                Some(crate::scim::ScimType::InvalidFilter),
                "{bad}"
            );
        }
        assert!(parse(&"a".repeat(MAX_FILTER_LEN + 1)).is_err());
    }
}
