//! Bulk (RFC 7644 §3.7), the pure part: parsing a BulkRequest, finding and substituting
//! `bulkId:` references, and choosing an execution order in which every referenced bulkId is
//! created before it is used. Executing the operations is `api::bulk`'s job.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use serde_json::{Map, Value};

use super::{ResourceKind, ScimError};

pub const BULK_REQUEST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// A reference to the resource created by the POST with that `bulkId` (RFC 7644 §3.7.2).
const PREFIX: &str = "bulkId:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    /// Case-insensitive, as clients send `post` as often as `POST`.
    pub fn parse(s: &str) -> Option<Method> {
        [Method::Post, Method::Put, Method::Patch, Method::Delete]
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// What an operation's `path` names: a collection (POST) or one resource. `id` is as sent,
/// so it may be a `bulkId:` reference or still percent-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: ResourceKind,
    pub id: Option<String>,
}

/// One entry of `Operations`.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// The method as the client wrote it, echoed back when it is not one we know.
    pub method_text: String,
    pub method: Option<Method>,
    pub bulk_id: Option<String>,
    pub version: Option<String>,
    pub data: Option<Value>,
    /// The parsed target, or why this operation is invalid; an invalid operation fails on its
    /// own (reported with this error) without failing the request.
    pub target: Result<Target, ScimError>,
}

impl Operation {
    /// The method for the response: canonical when known, otherwise as sent.
    pub fn method_name(&self) -> &str {
        match self.method {
            Some(m) => m.as_str(),
            None => &self.method_text,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BulkRequest {
    /// Stop after this many failed operations (RFC 7644 §3.7.3); `None`: run them all.
    pub fail_on_errors: Option<u64>,
    pub operations: Vec<Operation>,
}

/// The error for a request over `maxOperations`. RFC 7644 §3.7.4 asks for 413 with the limit
/// named in the body and shows no `scimType` (`tooMany` is defined for 400 on filters).
pub fn too_many_operations(count: usize, max: usize) -> ScimError {
    ScimError::new(
        413,
        None,
        format!("the bulk request has {count} operations; maxOperations is {max}"),
    )
}

/// The error for a body over `maxPayloadSize` (RFC 7644 §3.7.4, as above).
pub fn payload_too_large(size: usize, max: u64) -> ScimError {
    ScimError::new(
        413,
        None,
        format!("the bulk request is {size} bytes; maxPayloadSize is {max} bytes"),
    )
}

fn get_ci<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Parses a BulkRequest body. Errors in the request as a whole (no `Operations`, too many of
/// them, a bad `failOnErrors`) fail the request; errors in one operation are kept in that
/// operation's `target` and fail only it.
pub fn parse(body: &Value, max_operations: usize) -> Result<BulkRequest, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the bulk request must be a JSON object"))?;
    let has_urn = get_ci(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .any(|u| u.eq_ignore_ascii_case(BULK_REQUEST_URN))
        });
    if !has_urn {
        return Err(ScimError::invalid_value(format!(
            "a bulk request needs \"schemas\": [\"{BULK_REQUEST_URN}\"]"
        )));
    }
    let fail_on_errors = match get_ci(obj, "failOnErrors") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Some(n),
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "\"failOnErrors\" must be a positive integer, not {v}"
                )))
            }
        },
    };
    let ops = get_ci(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("a bulk request needs an \"Operations\" array"))?;
    if ops.is_empty() {
        return Err(ScimError::invalid_value(
            "\"Operations\" must contain at least one operation",
        ));
    }
    if ops.len() > max_operations {
        return Err(too_many_operations(ops.len(), max_operations));
    }
    Ok(BulkRequest {
        fail_on_errors,
        operations: ops.iter().map(parse_operation).collect(),
    })
}

fn parse_operation(v: &Value) -> Operation {
    let mut op = Operation {
        method_text: String::new(),
        method: None,
        bulk_id: None,
        version: None,
        data: None,
        target: Err(ScimError::invalid_syntax(
            "an operation must be a JSON object",
        )),
    };
    let Some(obj) = v.as_object() else {
        return op;
    };
    let text = |name: &str| -> Result<Option<String>, ScimError> {
        match get_ci(obj, name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(ScimError::invalid_syntax(format!(
                "\"{name}\" must be a string, not {other}"
            ))),
        }
    };
    let fields = (|| -> Result<_, ScimError> {
        Ok((
            text("method")?,
            text("bulkId")?,
            text("version")?,
            text("path")?,
        ))
    })();
    let (method, bulk_id, version, path) = match fields {
        Ok(f) => f,
        Err(e) => {
            op.target = Err(e);
            return op;
        }
    };
    op.method_text = method.unwrap_or_default();
    op.method = Method::parse(&op.method_text);
    op.bulk_id = bulk_id;
    op.version = version;
    op.data = get_ci(obj, "data").filter(|d| !d.is_null()).cloned();
    op.target = check(&op, path.as_deref());
    op
}

/// Checks method, bulkId and path of one operation and parses the path.
fn check(op: &Operation, path: Option<&str>) -> Result<Target, ScimError> {
    let method = op.method.ok_or_else(|| {
        ScimError::invalid_value(format!(
            "method \"{}\" is not one of POST, PUT, PATCH, DELETE",
            op.method_text
        ))
    })?;
    if method == Method::Post && op.bulk_id.as_deref().is_none_or(str::is_empty) {
        // RFC 7644 §3.7: bulkId is REQUIRED when the method is POST.
        return Err(ScimError::invalid_value(
            "a POST operation needs a \"bulkId\"",
        ));
    }
    let path = path.ok_or_else(|| ScimError::invalid_value("the operation needs a \"path\""))?;
    let bad = |why: &str| ScimError::invalid_value(format!("path \"{path}\": {why}"));
    if path.contains(['?', '#']) {
        return Err(bad(
            "query parameters are not supported in a bulk operation",
        ));
    }
    let segs: Vec<&str> = path
        .strip_prefix('/')
        .ok_or_else(|| bad("must start with \"/\", as in \"/Users\""))?
        .split('/')
        .collect();
    let kind = match segs.first().copied() {
        Some("Users") => ResourceKind::User,
        Some("Groups") => ResourceKind::Group,
        Some("Bulk") => return Err(bad("a bulk operation cannot contain another bulk request")),
        _ => return Err(bad("only /Users and /Groups can be written in bulk")),
    };
    match (method, &segs[1..]) {
        (Method::Post, []) => Ok(Target { kind, id: None }),
        (Method::Post, _) => Err(bad("POST must name the collection, as in \"/Users\"")),
        (_, [id]) if !id.is_empty() => Ok(Target {
            kind,
            id: Some((*id).to_string()),
        }),
        (m, _) => Err(bad(&format!(
            "{} must name one resource, as in \"/{}/{{id}}\"",
            m.as_str(),
            kind.endpoint()
        ))),
    }
}

/// The bulkId a string refers to when the whole string is a reference (`"bulkId:qwerty"`).
pub fn reference(s: &str) -> Option<&str> {
    s.strip_prefix(PREFIX).filter(|id| !id.is_empty())
}

/// The references inside one string: the whole string, or, for PATCH paths and filters such
/// as `members[value eq "bulkId:qwerty"]`, each quoted `"bulkId:…"` literal. Returns the byte
/// range of each referenced bulkId's text including the prefix, and the bulkId.
fn references_in(s: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    if let Some(id) = reference(s) {
        return vec![(0..s.len(), id)];
    }
    let quoted = format!("\"{PREFIX}");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = s[from..].find(&quoted) {
        let start = from + at + 1;
        let id_start = start + PREFIX.len();
        let Some(len) = s[id_start..].find('"') else {
            break;
        };
        if len > 0 {
            found.push((start..id_start + len, &s[id_start..id_start + len]));
        }
        from = id_start + len;
    }
    found
}

/// Every bulkId referenced in a JSON value (string values only, at any depth).
pub fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.extend(references_in(s).into_iter().map(|(_, id)| id.to_string())),
        Value::Array(items) => items.iter().for_each(|i| references(i, out)),
        Value::Object(map) => map.values().for_each(|i| references(i, out)),
        _ => {}
    }
}

/// A copy of `v` with every reference replaced by what `resolve` says the bulkId's resource
/// id is; the first error `resolve` returns is the result.
pub fn substitute(
    v: &Value,
    resolve: &mut dyn FnMut(&str) -> Result<String, ScimError>,
) -> Result<Value, ScimError> {
    Ok(match v {
        Value::String(s) => Value::String(substitute_str(s, resolve)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| substitute(i, resolve))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, i)| Ok((k.clone(), substitute(i, resolve)?)))
                .collect::<Result<_, ScimError>>()?,
        ),
        other => other.clone(),
    })
}

/// [`substitute`] for one string (an operation's path id, or a string inside `data`).
pub fn substitute_str(
    s: &str,
    resolve: &mut dyn FnMut(&str) -> Result<String, ScimError>,
) -> Result<String, ScimError> {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (range, id) in references_in(s) {
        out.push_str(&s[last..range.start]);
        out.push_str(&resolve(id)?);
        last = range.end;
    }
    out.push_str(&s[last..]);
    Ok(out)
}

/// How the operations will run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Every operation's index once, in an order where each operation comes after the POSTs
    /// whose bulkIds it references; otherwise in request order.
    pub order: Vec<usize>,
    /// Errors known before anything runs (an invalid operation, an undeclared or duplicate
    /// bulkId, a circular reference), by operation index.
    pub failures: Vec<Option<ScimError>>,
    /// For each operation: whether it is the POST that declares its bulkId, whose outcome
    /// later references resolve to.
    pub declares: Vec<bool>,
}

/// Orders the operations (RFC 7644 §3.7.2 lets the server resolve forward references) and
/// finds those that cannot run.
pub fn plan(ops: &[Operation]) -> Plan {
    let n = ops.len();
    let mut failures: Vec<Option<ScimError>> = ops.iter().map(|o| o.target.clone().err()).collect();
    let mut declares = vec![false; n];
    let mut declared: HashMap<&str, usize> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        let Some(bulk_id) = op
            .bulk_id
            .as_deref()
            .filter(|_| op.method == Some(Method::Post))
        else {
            continue;
        };
        match declared.get(bulk_id) {
            // References resolve to the first declaration; a second one is a client error.
            Some(first) => {
                failures[i].get_or_insert_with(|| {
                    ScimError::invalid_value(format!(
                        "bulkId \"{bulk_id}\" is already declared by operation {}",
                        first + 1
                    ))
                });
            }
            None => {
                declared.insert(bulk_id, i);
                declares[i] = true;
            }
        }
    }
    // deps[i]: the operations whose bulkIds operation i references.
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, op) in ops.iter().enumerate() {
        if failures[i].is_some() {
            continue;
        }
        let mut refs = Vec::new();
        if let Ok(Target { id: Some(id), .. }) = &op.target {
            refs.extend(reference(id).map(str::to_string));
        }
        if let Some(data) = &op.data {
            references(data, &mut refs);
        }
        for r in refs {
            match declared.get(r.as_str()) {
                Some(&j) => {
                    if !deps[i].contains(&j) {
                        deps[i].push(j);
                    }
                }
                // Undeclared: the request itself is wrong, whatever the server's state, so
                // 400 invalidValue rather than the 409 of a reference that could not be met.
                None => {
                    failures[i] = Some(ScimError::invalid_value(format!(
                        "bulkId \"{r}\" is not declared by any POST operation in this request"
                    )));
                    deps[i].clear();
                    break;
                }
            }
        }
    }
    // Operations on a cycle cannot be ordered: RFC 7644 §3.7.2 lets the server answer 409.
    for component in cycles(&deps) {
        let mut names: Vec<&str> = component
            .iter()
            .filter_map(|&j| ops[j].bulk_id.as_deref())
            .collect();
        names.sort_unstable();
        for &j in &component {
            failures[j] = Some(ScimError::new(
                409,
                None,
                format!(
                    "circular bulkId references between {}: no order creates each before it is referenced; \
                     create them without the references, then add those with PATCH",
                    names
                        .iter()
                        .map(|n| format!("\"{n}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            deps[j].clear();
        }
    }
    // Kahn's algorithm taking the lowest ready index first, so the order is the request's
    // wherever the references allow. Without the cycles' edges the graph is acyclic.
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    for (i, d) in deps.iter().enumerate() {
        for &j in d {
            dependents[j].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &k in &dependents[i] {
            waiting[k] -= 1;
            if waiting[k] == 0 {
                ready.push(Reverse(k));
            }
        }
    }
    debug_assert_eq!(order.len(), n);
    Plan {
        order,
        failures,
        declares,
    }
}

/// The strongly connected components that contain a cycle (more than one node, or a node
/// referencing itself), by Tarjan's algorithm without recursion (a chain of thousands of
/// operations must not exhaust the stack).
fn cycles(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let n = adj.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut found = Vec::new();
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        // (node, position of the next edge to follow)
        let mut calls = vec![(root, 0usize)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&(v, pos)) = calls.last() {
            if let Some(&w) = adj[v].get(pos) {
                if let Some(top) = calls.last_mut() {
                    top.1 += 1;
                }
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 || adj[v].contains(&v) {
                    component.sort_unstable();
                    found.push(component);
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(ops: Value) -> Value {
        json!({"schemas": [BULK_REQUEST_URN], "Operations": ops})
    }

    fn post(bulk_id: &str, path: &str, data: Value) -> Value {
        json!({"method": "POST", "bulkId": bulk_id, "path": path, "data": data})
    }

    fn group(bulk_id: &str, members: &[&str]) -> Value {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
        post(
            bulk_id,
            "/Groups",
            json!({"displayName": bulk_id, "members": members}),
        )
    }

    fn ops(list: Value) -> Vec<Operation> {
        parse(&request(list), 1000).unwrap().operations
    }

    fn status(e: &Option<ScimError>) -> Option<u16> {
        e.as_ref().map(|e| e.status)
    }

    #[test]
    fn parses_methods_paths_and_options() {
        let r = parse(
            &json!({
                "schemas": [BULK_REQUEST_URN],
                "failOnErrors": 2,
                "Operations": [
                    {"method": "post", "bulkId": "a", "path": "/Users", "data": {"userName": "a"}},
                    {"method": "Put", "version": "W/\"3\"", "path": "/Users/123", "data": {}},
                    {"method": "PATCH", "path": "/Groups/bulkId:a", "data": {}},
                    {"method": "delete", "path": "/Groups/9"},
                ]
            }),
            10,
        )
        .unwrap();
        assert_eq!(r.fail_on_errors, Some(2));
        let o = &r.operations;
        assert_eq!(o[0].method, Some(Method::Post));
        assert_eq!(o[0].method_name(), "POST");
        assert_eq!(
            o[0].target,
            Ok(Target {
                kind: ResourceKind::User,
                id: None
            })
        );
        assert_eq!(o[1].version.as_deref(), Some("W/\"3\""));
        assert_eq!(o[1].target.as_ref().unwrap().id.as_deref(), Some("123"));
        assert_eq!(
            o[2].target.as_ref().unwrap().id.as_deref(),
            Some("bulkId:a")
        );
        assert_eq!(o[3].target.as_ref().unwrap().kind, ResourceKind::Group);
        assert!(o[3].data.is_none());
    }

    #[test]
    fn request_level_errors() {
        let e = |body: Value, max| parse(&body, max).unwrap_err();
        assert_eq!(e(json!([]), 10).status, 400);
        assert_eq!(e(json!({"Operations": []}), 10).status, 400);
        assert_eq!(e(request(json!([])), 10).status, 400);
        assert_eq!(e(json!({"schemas": [BULK_REQUEST_URN]}), 10).status, 400);
        let mut body = request(json!([{"method": "DELETE", "path": "/Users/1"}]));
        body["failOnErrors"] = json!(0);
        assert_eq!(
            e(body, 10).scim_type,
            Some(super::super::ScimType::InvalidValue)
        );
        let many = request(Value::Array(vec![
            json!({"method": "DELETE", "path": "/Users/1"});
            3
        ]));
        let err = e(many, 2);
        assert_eq!(err.status, 413);
        assert!(err.detail.contains("maxOperations is 2"), "{}", err.detail);
    }

    #[test]
    fn operation_level_errors_stay_with_their_operation() {
        let o = ops(json!([
            {"method": "GET", "path": "/Users/1"},
            {"method": "POST", "path": "/Users", "data": {}},
            {"method": "POST", "bulkId": "x", "path": "/Users/1", "data": {}},
            {"method": "PUT", "path": "/Users", "data": {}},
            {"method": "DELETE", "path": "/Bulk"},
            {"method": "DELETE", "path": "/Widgets/1"},
            {"method": "DELETE", "path": "Users/1"},
            {"method": "DELETE", "path": "/Users/1?attributes=id"},
            {"method": "DELETE"},
            {"method": 3, "path": "/Users/1"},
            "DELETE /Users/1",
            {"method": "DELETE", "path": "/Users/1/extra"},
        ]));
        for (i, op) in o.iter().enumerate() {
            let e = op.target.as_ref().unwrap_err();
            assert_eq!(e.status, 400, "{i}: {e:?}");
        }
        assert_eq!(o[0].method_name(), "GET");
        assert!(o[0].target.as_ref().unwrap_err().detail.contains("GET"));
        assert!(o[1].target.as_ref().unwrap_err().detail.contains("bulkId"));
        assert!(o[4]
            .target
            .as_ref()
            .unwrap_err()
            .detail
            .contains("another bulk"));
    }

    #[test]
    fn finds_references_nested_and_in_filters() {
        let data = json!({
            "members": [{"value": "bulkId:u1"}, {"value": "plain"}, {"value": "bulkId:"}],
            "nested": {"deeper": [[{"x": "bulkId:u2"}]]},
            "Operations": [{"op": "remove", "path": "members[value eq \"bulkId:u3\"]"}],
            "displayName": "mentions bulkId:u4 in prose",
            "n": 1,
        });
        let mut refs = Vec::new();
        references(&data, &mut refs);
        refs.sort();
        assert_eq!(refs, ["u1", "u2", "u3"]);
    }

    #[test]
    fn substitutes_nested_values_and_paths() {
        let ids: HashMap<&str, &str> = [("u1", "id-1"), ("u2", "id-2")].into();
        let mut resolve = |b: &str| {
            ids.get(b)
                .map(|s| s.to_string())
                .ok_or_else(|| ScimError::new(409, None, format!("no {b}")))
        };
        let data = json!({
            "members": [{"value": "bulkId:u1"}, {"value": "keep"}],
            "deep": {"a": [{"b": "bulkId:u2"}]},
            "path": "members[value eq \"bulkId:u1\" or value eq \"bulkId:u2\"]",
            "other": true,
        });
        let out = substitute(&data, &mut resolve).unwrap();
        assert_eq!(
            out,
            json!({
                "members": [{"value": "id-1"}, {"value": "keep"}],
                "deep": {"a": [{"b": "id-2"}]},
                "path": "members[value eq \"id-1\" or value eq \"id-2\"]",
                "other": true,
            })
        );
        assert_eq!(substitute_str("bulkId:u2", &mut resolve).unwrap(), "id-2");
        assert_eq!(substitute_str("abc", &mut resolve).unwrap(), "abc");
        let e = substitute(&json!([{"value": "bulkId:nope"}]), &mut resolve).unwrap_err();
        assert_eq!(e.status, 409);
    }

    #[test]
    fn orders_forward_references_after_their_declaration() {
        let o = ops(json!([
            group("g", &["bulkId:u1", "bulkId:u2"]),
            {"method": "PATCH", "path": "/Users/bulkId:u2", "data": {}},
            post("u1", "/Users", json!({"userName": "u1"})),
            post("u2", "/Users", json!({"userName": "u2"})),
            {"method": "DELETE", "path": "/Users/x"},
        ]));
        let p = plan(&o);
        assert_eq!(p.order, [2, 3, 0, 1, 4]);
        assert!(p.failures.iter().all(Option::is_none));
        assert_eq!(p.declares, [true, false, true, true, false]);
    }

    #[test]
    fn keeps_request_order_without_references() {
        let o = ops(json!([
            post("a", "/Users", json!({})),
            {"method": "DELETE", "path": "/Users/x"},
            post("b", "/Users", json!({})),
        ]));
        assert_eq!(plan(&o).order, [0, 1, 2]);
    }

    #[test]
    fn cycles_fail_with_409_and_their_dependents_wait_for_them() {
        let o = ops(json!([
            group("g1", &["bulkId:g2"]),
            group("g2", &["bulkId:g1"]),
            group("g3", &["bulkId:g1"]),
            group("self", &["bulkId:self"]),
            group("ok", &[]),
        ]));
        let p = plan(&o);
        let statuses: Vec<_> = p.failures.iter().map(status).collect();
        assert_eq!(statuses, [Some(409), Some(409), None, Some(409), None]);
        let detail = &p.failures[0].as_ref().unwrap().detail;
        assert!(detail.contains("\"g1\", \"g2\""), "{detail}");
        // g3 is not on the cycle: it runs after g1 and fails then, because g1 failed.
        let pos = |i| p.order.iter().position(|&x| x == i).unwrap();
        assert!(pos(2) > pos(0));
        assert_eq!(p.order.len(), 5);
    }

    #[test]
    fn longer_cycles_and_long_chains() {
        let o = ops(json!([
            group("a", &["bulkId:b"]),
            group("b", &["bulkId:c"]),
            group("c", &["bulkId:a"]),
        ]));
        assert!(plan(&o).failures.iter().all(|f| status(f) == Some(409)));
        // A chain of 5000 forward references: no recursion, ordered back to front.
        let n = 5000;
        let chain: Vec<Value> = (0..n)
            .map(|i| {
                let next = format!("bulkId:{}", i + 1);
                let members: &[&str] = if i + 1 < n { &[&next] } else { &[] };
                group(&i.to_string(), members)
            })
            .collect();
        let o = parse(&request(Value::Array(chain)), n).unwrap().operations;
        let p = plan(&o);
        assert!(p.failures.iter().all(Option::is_none));
        assert_eq!(p.order, (0..n).rev().collect::<Vec<_>>());
    }

    #[test]
    fn undeclared_and_duplicate_bulk_ids() {
        let o = ops(json!([
            post("a", "/Users", json!({})),
            post("a", "/Users", json!({})),
            group("g", &["bulkId:missing"]),
            {"method": "DELETE", "path": "/Users/bulkId:nowhere"},
            {"method": "DELETE", "path": "/Users/bulkId:a"},
            {"method": "PUT", "bulkId": "p", "path": "/Users/1", "data": {}},
            group("h", &["bulkId:p"]),
        ]));
        let p = plan(&o);
        let statuses: Vec<_> = p.failures.iter().map(status).collect();
        // A bulkId on a PUT declares nothing: only a POST creates a resource to refer to.
        assert_eq!(
            statuses,
            [None, Some(400), Some(400), Some(400), None, None, Some(400)]
        );
        assert!(p.failures[2].as_ref().unwrap().detail.contains("missing"));
        assert_eq!(p.declares, [true, false, true, false, false, false, true]);
    }
}
