//! One request of a flow and what its answer must satisfy, plus the two small mechanisms
//! that let steps build on each other: `${name}` templates and saved variables.
//!
//! Pure: no HTTP here. A step is data; [`Vars`] fills its templates and [`Check::eval`]
//! judges a response body.
//!
//! Templates: any string in a path, header, check pointer or JSON body (keys included) may
//! contain `${name}`. A JSON string that is exactly `${name}` becomes the variable's JSON
//! value (an object, a list…); anywhere else the variable's text is spliced in. In a path the
//! text is percent-encoded (`@` becomes `%40`, as Okta sends it), so flows write the rest of
//! the query themselves — which is how they send both `+` and `%20` for spaces. In a JSON
//! pointer the text is escaped (RFC 6901), so `/${urn}/${attr}` reaches the value under a
//! schema URN key whatever the URN holds.
//!
//! Discovery: a step can [`Find`] items of an array in its answer (the extensions a resource
//! type lists, the attributes a schema has) by the same [`Check`]s it applies to responses,
//! and save what it found; [`Step::for_each`] tries the step once per item of a list until
//! its finds succeed; [`Step::or_skip`] says that finding nothing means the flow does not
//! apply to this target, rather than that the target is wrong.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// Values that flows carry forward: `run` (unique per run), `guid`, and whatever steps save.
#[derive(Debug, Default, Clone)]
pub struct Vars(HashMap<String, Value>);

/// A template named a variable that no earlier step saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the step uses ${{{0}}}, which no earlier step saved")]
pub struct MissingVar(pub String);

impl Vars {
    pub fn set(&mut self, name: &str, value: Value) {
        self.0.insert(name.to_string(), value);
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    fn text(&self, name: &str) -> Result<String, MissingVar> {
        match self.0.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Ok(other.to_string()),
            None => Err(MissingVar(name.to_string())),
        }
    }

    /// Replaces every `${name}` in `s`, the inserted text passed through `encode`.
    fn splice(&self, s: &str, encode: fn(&str) -> String) -> Result<String, MissingVar> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            let Some(len) = rest[start + 2..].find('}') else {
                break;
            };
            out.push_str(&rest[..start]);
            let value = self.text(&rest[start + 2..start + 2 + len])?;
            out.push_str(&encode(&value));
            rest = &rest[start + 2 + len + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Fills a plain string (header values, check operands).
    pub fn fill_text(&self, s: &str) -> Result<String, MissingVar> {
        self.splice(s, str::to_string)
    }

    /// Fills a path and query; inserted values are percent-encoded.
    pub fn fill_path(&self, s: &str) -> Result<String, MissingVar> {
        self.splice(s, percent_encode)
    }

    /// Fills a JSON pointer; inserted values are escaped as RFC 6901 says (`~0`, `~1`).
    pub fn fill_pointer(&self, s: &str) -> Result<String, MissingVar> {
        self.splice(s, |v| v.replace('~', "~0").replace('/', "~1"))
    }

    /// Fills every string of a JSON value.
    pub fn fill_json(&self, v: &Value) -> Result<Value, MissingVar> {
        Ok(match v {
            Value::String(s) => {
                let whole = s
                    .strip_prefix("${")
                    .and_then(|r| r.strip_suffix('}'))
                    .filter(|name| !name.contains(['$', '{', '}']));
                match whole {
                    Some(name) => self
                        .0
                        .get(name)
                        .cloned()
                        .ok_or_else(|| MissingVar(name.to_string()))?,
                    None => Value::String(self.fill_text(s)?),
                }
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.fill_json(i))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((self.fill_text(k)?, self.fill_json(v)?)))
                    .collect::<Result<Map<_, _>, MissingVar>>()?,
            ),
            other => other.clone(),
        })
    }
}

/// RFC 3986 unreserved characters and `:` stay, everything else is `%XX`. A `:` is a plain
/// character in a path segment and a query (RFC 3986 §3.3, §3.4), and a reserved character
/// encoded is not the same URI (§2.2): `/Schemas/urn:…` and `filter=urn:…:User:attr` go out
/// as written.
fn percent_encode(s: &str) -> String {
    const KEPT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b':');
    percent_encoding::utf8_percent_encode(s, KEPT).to_string()
}

/// What a step sends as its body.
#[derive(Debug, Clone)]
pub enum Body {
    /// A JSON document (templated).
    Json(Value),
    /// A saved resource with some members set or removed: Okta's PUT sends back the
    /// resource it just read, `id`, `meta` and all (okta.md §2.3).
    Edit {
        from: String,
        set: Vec<(String, Value)>,
    },
}

impl Body {
    pub fn render(&self, vars: &Vars) -> Result<Value, MissingVar> {
        match self {
            Body::Json(v) => vars.fill_json(v),
            Body::Edit { from, set } => {
                let mut doc = vars
                    .get(from)
                    .cloned()
                    .ok_or_else(|| MissingVar(from.clone()))?;
                for (pointer, value) in set {
                    set_pointer(&mut doc, pointer, vars.fill_json(value)?);
                }
                Ok(doc)
            }
        }
    }
}

/// Sets `/a/b` in an object, creating objects on the way.
fn set_pointer(doc: &mut Value, pointer: &str, value: Value) {
    let mut cur = doc;
    let parts: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        if i + 1 == parts.len() {
            map.insert((*part).to_string(), value);
            return;
        }
        cur = map
            .entry((*part).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// A condition on the response. Pointers are RFC 6901 JSON pointers into the body, templated
/// ([`Vars::fill_pointer`]).
#[derive(Debug, Clone)]
pub enum Check {
    /// The value at the pointer equals this (templated) value.
    Eq(String, Value),
    /// The value at the pointer differs from this (templated) value.
    Ne(String, Value),
    /// Nothing at the pointer (or `null`).
    Absent(String),
    /// An array with exactly this many items; absent counts as empty.
    Len(String, usize),
    /// A non-empty string.
    NonEmpty(String),
    /// A JSON integer (Okta rejects paging numbers sent as strings, okta.md §2.2).
    Integer(String),
    /// An array of objects one of which has `"value"` equal to this (templated) text.
    HasValue(String, String),
    /// No object of the array has this `"value"`; absent counts as empty.
    LacksValue(String, String),
    /// An array that contains this (templated) value, e.g. a URN in `schemas`.
    Contains(String, Value),
    /// A response header starts with this text (case-insensitively).
    Header(String, String),
}

impl Check {
    /// Judges a response: `Ok(description)` or `Err(what was wrong)`.
    pub fn eval(
        &self,
        vars: &Vars,
        body: &Value,
        header: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, String> {
        let at = |p: &str| body.pointer(p).filter(|v| !v.is_null());
        let show = |p: &str| at(p).map_or("nothing".to_string(), |v| v.to_string());
        let filled = |v: &Value| vars.fill_json(v).map_err(|e| e.to_string());
        let text = |s: &str| vars.fill_text(s).map_err(|e| e.to_string());
        let pointer = |p: &str| vars.fill_pointer(p).map_err(|e| e.to_string());
        let values = |p: &str| -> Vec<String> {
            at(p)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.get("value").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        match self {
            Check::Eq(p, v) => {
                let p = &pointer(p)?;
                let want = filled(v)?;
                if at(p) == Some(&want) {
                    Ok(format!("{p} = {want}"))
                } else {
                    Err(format!("{p} is {}, expected {want}", show(p)))
                }
            }
            Check::Ne(p, v) => {
                let p = &pointer(p)?;
                let other = filled(v)?;
                match at(p) {
                    Some(got) if *got != other => Ok(format!("{p} = {got}, not {other}")),
                    _ => Err(format!("{p} is {}, expected something else", show(p))),
                }
            }
            Check::Absent(p) => {
                let p = &pointer(p)?;
                match at(p) {
                    None => Ok(format!("{p} absent")),
                    Some(v) => Err(format!("{p} is {v}, expected it absent")),
                }
            }
            Check::Len(p, n) => {
                let p = &pointer(p)?;
                let len = match at(p) {
                    None => Some(0),
                    Some(v) => v.as_array().map(Vec::len),
                };
                if len == Some(*n) {
                    Ok(format!("{p} has {n} item(s)"))
                } else {
                    Err(format!("{p} is {}, expected {n} item(s)", show(p)))
                }
            }
            Check::NonEmpty(p) => {
                let p = &pointer(p)?;
                match at(p).and_then(Value::as_str) {
                    Some(s) if !s.is_empty() => Ok(format!("{p} is set")),
                    _ => Err(format!("{p} is {}, expected a non-empty string", show(p))),
                }
            }
            Check::Integer(p) => {
                let p = &pointer(p)?;
                match at(p) {
                    Some(v) if v.is_u64() || v.is_i64() => Ok(format!("{p} = {v} (an integer)")),
                    _ => Err(format!("{p} is {}, expected a JSON integer", show(p))),
                }
            }
            Check::HasValue(p, id) => {
                let p = &pointer(p)?;
                let id = text(id)?;
                if values(p).contains(&id) {
                    Ok(format!("{p} has {id}"))
                } else {
                    Err(format!("{p} lacks {id}: {}", show(p)))
                }
            }
            Check::LacksValue(p, id) => {
                let p = &pointer(p)?;
                let id = text(id)?;
                if values(p).contains(&id) {
                    Err(format!("{p} still has {id}"))
                } else {
                    Ok(format!("{p} lacks {id}"))
                }
            }
            Check::Contains(p, v) => {
                let p = &pointer(p)?;
                let want = filled(v)?;
                match at(p).and_then(Value::as_array) {
                    Some(a) if a.contains(&want) => Ok(format!("{p} contains {want}")),
                    _ => Err(format!("{p} is {}, expected it to contain {want}", show(p))),
                }
            }
            Check::Header(name, prefix) => match header(name) {
                Some(h)
                    if h.to_ascii_lowercase()
                        .starts_with(&prefix.to_ascii_lowercase()) =>
                {
                    Ok(format!("{name}: {h}"))
                }
                other => Err(format!(
                    "header {name} is {}, expected {prefix}…",
                    other.unwrap_or_else(|| "missing".into())
                )),
            },
        }
    }
}

/// Picks items of an array in a response body: those that pass every one of `matching`
/// (judged against the item, not the whole body), and saves `take` of the first of them, or
/// of all of them as a list; or requires that there be none. Discovery uses it: "the
/// extensions `/ResourceTypes/User` lists that are optional and not the Enterprise User",
/// "a string attribute of this schema", "no required attribute".
#[derive(Debug, Clone)]
pub struct Find {
    /// The variable to save; for [`Seek::Nothing`], words for what must not be there.
    pub var: String,
    /// Pointer to the array in the body; templated.
    pub list: String,
    pub matching: Vec<Check>,
    /// Pointer into the item: what to save (`""` saves the item).
    pub take: String,
    pub seek: Seek,
}

/// What a [`Find`] wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    /// The first match.
    First,
    /// Every match, as a list (at least one).
    Every,
    /// No match at all: the step finds what it needs only if nothing matches.
    Nothing,
}

impl Find {
    /// What matched: the first match's `take` (for `First` and `Nothing`), or every one's as
    /// a list (`Every`); `None` when no item matches.
    pub fn eval(&self, vars: &Vars, body: &Value) -> Result<Option<Value>, MissingVar> {
        let list = vars.fill_pointer(&self.list)?;
        let take = vars.fill_pointer(&self.take)?;
        let no_headers = |_: &str| None;
        let mut found = body
            .pointer(&list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|item| {
                self.matching
                    .iter()
                    .all(|c| c.eval(vars, item, &no_headers).is_ok())
            })
            .filter_map(|item| item.pointer(&take).filter(|v| !v.is_null()).cloned());
        Ok(match self.seek {
            Seek::Every => {
                let all: Vec<Value> = found.collect();
                (!all.is_empty()).then_some(Value::Array(all))
            }
            Seek::First | Seek::Nothing => found.next(),
        })
    }
}

/// One request and its expectations.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub method: &'static str,
    /// Relative to the base URL, e.g. `/Users/${alice}`; templated.
    pub path: String,
    /// Sent in addition to (or instead of) the flow's headers; templated.
    pub headers: Vec<(String, String)>,
    pub body: Option<Body>,
    /// Any of these statuses passes (IdPs accept e.g. 200 or 204 after a PATCH).
    pub expect: Vec<u16>,
    pub checks: Vec<Check>,
    /// `(variable, pointer)`: what to remember from the response body; `""` saves the body.
    pub saves: Vec<(String, String)>,
    /// What to look for in the response body; applied after the checks, before the saves.
    pub finds: Vec<Find>,
    /// `(variable, list variable)`: send the step once per item of the list, the item in the
    /// variable, until an answer passes and its finds all find something.
    pub each: Option<(String, String)>,
    /// When the finds find nothing (for every item of `each`), the flow does not apply to
    /// this target: it stops here, reported as skipped with this (templated) reason. Without
    /// it, finding nothing is a failure.
    pub skip_reason: Option<String>,
}

impl Step {
    pub fn new(method: &'static str, name: &str, path: &str) -> Step {
        Step {
            name: name.to_string(),
            method,
            path: path.to_string(),
            headers: Vec::new(),
            body: None,
            expect: vec![200],
            checks: Vec::new(),
            saves: Vec::new(),
            finds: Vec::new(),
            each: None,
            skip_reason: None,
        }
    }

    pub fn body(mut self, v: Value) -> Step {
        self.body = Some(Body::Json(v));
        self
    }

    /// The saved resource `from` with each `(pointer, value)` set.
    pub fn edit(mut self, from: &str, set: &[(&str, Value)]) -> Step {
        self.body = Some(Body::Edit {
            from: from.to_string(),
            set: set
                .iter()
                .map(|(p, v)| (p.to_string(), v.clone()))
                .collect(),
        });
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Step {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn expect(mut self, statuses: &[u16]) -> Step {
        self.expect = statuses.to_vec();
        self
    }

    pub fn check(mut self, c: Check) -> Step {
        self.checks.push(c);
        self
    }

    pub fn save(mut self, var: &str, pointer: &str) -> Step {
        self.saves.push((var.to_string(), pointer.to_string()));
        self
    }

    /// Saves as `var` the `take` of the first item of the array at `list` that passes every
    /// check in `matching`.
    pub fn find(self, var: &str, list: &str, matching: Vec<Check>, take: &str) -> Step {
        self.finding(var, list, matching, take, Seek::First)
    }

    /// Saves as `var` the list of the `take` of every item that passes `matching`.
    pub fn find_all(self, var: &str, list: &str, matching: Vec<Check>, take: &str) -> Step {
        self.finding(var, list, matching, take, Seek::Every)
    }

    /// Finds what it needs only if no item of `list` passes `matching`; `what` names such an
    /// item (it is not saved).
    pub fn find_none(self, what: &str, list: &str, matching: Vec<Check>, take: &str) -> Step {
        self.finding(what, list, matching, take, Seek::Nothing)
    }

    fn finding(
        mut self,
        var: &str,
        list: &str,
        matching: Vec<Check>,
        take: &str,
        seek: Seek,
    ) -> Step {
        self.finds.push(Find {
            var: var.to_string(),
            list: list.to_string(),
            matching,
            take: take.to_string(),
            seek,
        });
        self
    }

    /// Sends the step once per item of the saved list `list`, the item as `var`, until one
    /// answer passes with every find finding something.
    pub fn for_each(mut self, var: &str, list: &str) -> Step {
        self.each = Some((var.to_string(), list.to_string()));
        self
    }

    /// Finding nothing means the flow does not apply here: skip it, saying `reason`.
    pub fn or_skip(mut self, reason: &str) -> Step {
        self.skip_reason = Some(reason.to_string());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Vars {
        let mut v = Vars::default();
        v.set("run", json!("ab12"));
        v.set("id", json!("u-1"));
        v.set(
            "doc",
            json!({"id": "u-1", "name": {"givenName": "A"}, "meta": {"version": "W/\"1\""}}),
        );
        v
    }

    #[test]
    fn templates_splice_text_encode_paths_and_insert_whole_values() {
        let v = vars();
        assert_eq!(v.fill_text("x-${run}@y").unwrap(), "x-ab12@y");
        assert_eq!(
            v.fill_path("/Users?filter=userName+eq+%22a.${run}@b%22")
                .unwrap(),
            "/Users?filter=userName+eq+%22a.ab12@b%22"
        );
        let mut w = v.clone();
        w.set("mail", json!("a b@c"));
        assert_eq!(w.fill_path("q=${mail}").unwrap(), "q=a%20b%40c");
        let filled = v
            .fill_json(&json!({"path": "members[value eq \"${id}\"]", "value": "${doc}", "n": 1}))
            .unwrap();
        assert_eq!(filled["path"], "members[value eq \"u-1\"]");
        assert_eq!(filled["value"]["name"]["givenName"], "A");
        assert_eq!(filled["n"], 1);
        assert_eq!(v.fill_text("${nope}"), Err(MissingVar("nope".into())));
        assert!(v.fill_json(&json!(["${nope}"])).is_err());
        // A lone "${" is text, not a template.
        assert_eq!(v.fill_text("a${b").unwrap(), "a${b");
    }

    #[test]
    fn urns_fill_keys_paths_and_pointers() {
        let mut v = vars();
        v.set("urn", json!("urn:ex:a/b~c:User"));
        v.set("attr", json!("costCenter"));
        // Keys are templates too: the value goes under the URN key.
        let body = v
            .fill_json(&json!({"${urn}": {"${attr}": "${run}"}, "${urn}:${attr}": 1}))
            .unwrap();
        assert_eq!(body["urn:ex:a/b~c:User"]["costCenter"], "ab12");
        assert_eq!(body["urn:ex:a/b~c:User:costCenter"], 1);
        assert!(v.fill_json(&json!({"${nope}": 1})).is_err());
        // `:` stays in a path (a plain pchar); `/` and `~` cannot be taken as structure.
        assert_eq!(
            v.fill_path("/Schemas/${urn}").unwrap(),
            "/Schemas/urn:ex:a%2Fb~c:User"
        );
        assert_eq!(
            v.fill_pointer("/${urn}/${attr}").unwrap(),
            "/urn:ex:a~1b~0c:User/costCenter"
        );
        let none = |_: &str| None;
        let check = Check::Eq("/${urn}/${attr}".into(), json!("ab12"));
        assert_eq!(
            check.eval(&v, &body, &none),
            Ok("/urn:ex:a~1b~0c:User/costCenter = \"ab12\"".into())
        );
        let body = json!({"urn:ex:a/b~c:User": {"costCenter": "x"}});
        assert!(check.eval(&v, &body, &none).is_err());
    }

    #[test]
    fn finds_pick_the_first_or_every_matching_item() {
        let v = vars();
        let body = json!({"schemaExtensions": [
            {"schema": "urn:ent", "required": false},
            {"schema": "urn:req", "required": true},
            {"schema": "urn:a", "required": false},
            {"required": false},
            {"schema": "urn:b", "required": false},
        ]});
        let optional = || {
            vec![
                Check::Ne("/schema".into(), json!("urn:ent")),
                Check::Eq("/required".into(), json!(false)),
            ]
        };
        let find = |all: bool, matching: Vec<Check>| Find {
            var: "x".into(),
            list: "/schemaExtensions".into(),
            matching,
            take: "/schema".into(),
            seek: if all { Seek::Every } else { Seek::First },
        };
        assert_eq!(
            find(false, optional()).eval(&v, &body).unwrap(),
            Some(json!("urn:a"))
        );
        // An item without the value to take is passed over.
        assert_eq!(
            find(true, optional()).eval(&v, &body).unwrap(),
            Some(json!(["urn:a", "urn:b"]))
        );
        let never = vec![Check::Eq("/required".into(), json!("maybe"))];
        assert_eq!(find(false, never.clone()).eval(&v, &body).unwrap(), None);
        // Nothing found is not an empty list: the step can skip or fail on it.
        assert_eq!(find(true, never).eval(&v, &body).unwrap(), None);
        assert_eq!(find(true, optional()).eval(&v, &json!({})).unwrap(), None);
        assert_eq!(
            find(false, vec![])
                .eval(&v, &json!({"schemaExtensions": "urn:a"}))
                .unwrap(),
            None
        );
        let mut templated = find(false, vec![]);
        templated.list = "/${nope}".into();
        assert_eq!(templated.eval(&v, &body), Err(MissingVar("nope".into())));
    }

    #[test]
    fn edit_sets_pointers_on_a_saved_resource() {
        let v = vars();
        let body = Body::Edit {
            from: "doc".into(),
            set: vec![
                ("/name/givenName".into(), json!("B")),
                ("/groups".into(), json!([])),
                ("/x/y".into(), json!("${run}")),
            ],
        }
        .render(&v)
        .unwrap();
        assert_eq!(body["name"]["givenName"], "B");
        assert_eq!(body["groups"], json!([]));
        assert_eq!(body["x"]["y"], "ab12");
        assert_eq!(body["meta"]["version"], "W/\"1\"");
        assert!(Body::Edit {
            from: "other".into(),
            set: vec![]
        }
        .render(&v)
        .is_err());
    }

    #[test]
    fn checks_pass_and_fail() {
        let v = vars();
        let body = json!({
            "totalResults": 1, "startIndex": "1", "id": "u-1", "empty": "",
            "members": [{"value": "u-1"}, {"value": "u-2"}],
            "schemas": ["urn:x"], "gone": null
        });
        let none = |_: &str| None;
        let ok = |c: Check| c.eval(&v, &body, &none).is_ok();
        assert!(ok(Check::Eq("/id".into(), json!("${id}"))));
        assert!(!ok(Check::Eq("/id".into(), json!("u-2"))));
        assert!(ok(Check::Ne("/id".into(), json!("u-2"))));
        assert!(!ok(Check::Ne("/id".into(), json!("${id}"))));
        assert!(!ok(Check::Ne("/missing".into(), json!("x"))));
        assert!(ok(Check::Absent("/gone".into())));
        assert!(!ok(Check::Absent("/id".into())));
        assert!(ok(Check::Len("/members".into(), 2)));
        assert!(ok(Check::Len("/missing".into(), 0)));
        assert!(!ok(Check::Len("/members".into(), 1)));
        assert!(!ok(Check::Len("/id".into(), 0)));
        assert!(ok(Check::NonEmpty("/id".into())));
        assert!(!ok(Check::NonEmpty("/empty".into())));
        assert!(ok(Check::Integer("/totalResults".into())));
        assert!(!ok(Check::Integer("/startIndex".into())));
        assert!(ok(Check::HasValue("/members".into(), "${id}".into())));
        assert!(!ok(Check::HasValue("/members".into(), "u-3".into())));
        assert!(ok(Check::LacksValue("/members".into(), "u-3".into())));
        assert!(!ok(Check::LacksValue("/members".into(), "u-2".into())));
        assert!(ok(Check::Contains("/schemas".into(), json!("urn:x"))));
        assert!(!ok(Check::Contains("/schemas".into(), json!("urn:y"))));
        let ct = |n: &str| (n == "content-type").then(|| "application/scim+json".to_string());
        let h = |p: &str| Check::Header("content-type".into(), p.into()).eval(&v, &body, &ct);
        assert!(h("application/scim+json").is_ok());
        assert!(h("application/json").is_err());
        assert!(Check::Eq("/id".into(), json!("${nope}"))
            .eval(&v, &body, &none)
            .is_err());
    }
}
