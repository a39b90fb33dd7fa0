//! `POST /Bulk` (RFC 7644 §3.7).
//!
//! Each operation runs through the same routing and handlers as its own request would
//! (`App::route` with an internal [`Request`] carrying the operation's `data` as body and its
//! `version` as `If-Match`), so Bulk adds no second implementation of validation, ETags or
//! storage; the handler's [`Response`] becomes the operation's result.
//!
//! Not atomic (RFC 7644 §3.7 does not ask for it): every operation commits on its own, as
//! the same request sent alone would, and stays committed whatever happens to the operations
//! after it. Other clients' requests may interleave between two operations.
//!
//! Order: operations run in request order, except that an operation referencing a bulkId
//! runs after the POST declaring it (`scim::bulk::plan`); results are reported in the
//! request's order whatever order they ran in.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::{error_response, App, Ctx, BASE_PATH};
use crate::http::{query, Headers, Request, Response, SCIM_JSON};
use crate::scim::bulk::{self, Method, Operation, Target, BULK_RESPONSE_URN};
use crate::scim::ScimError;
use crate::store::Via;

/// What a POST's bulkId resolves to once the POST has run.
enum Outcome {
    Created(String),
    /// The declaring operation failed, with this status.
    Failed(u16),
}

/// One operation's result as the handler produced it.
struct Done {
    status: u16,
    location: Option<String>,
    version: Option<String>,
    /// The created resource's id (a successful POST).
    id: Option<String>,
    /// The error body of a failed operation.
    error: Option<Value>,
}

impl Done {
    fn failed(e: &ScimError) -> Done {
        Done {
            status: e.status,
            location: None,
            version: None,
            id: None,
            error: Some(e.to_json()),
        }
    }
}

pub fn bulk(app: &App, ctx: &Ctx) -> Result<Response, ScimError> {
    // The HTTP layer already refused bodies over max_body_bytes; Bulk may be stricter.
    if ctx.req.body.len() as u64 > app.bulk_max_payload_bytes {
        return Err(bulk::payload_too_large(
            ctx.req.body.len(),
            app.bulk_max_payload_bytes,
        ));
    }
    let body = ctx.json_body()?;
    let request = bulk::parse(&body, app.bulk_max_operations)?;
    let ops = &request.operations;
    let plan = bulk::plan(ops);
    let mut outcomes: HashMap<&str, Outcome> = HashMap::new();
    let mut results: Vec<Option<Value>> = vec![None; ops.len()];
    let mut errors = 0u64;
    for &i in &plan.order {
        // RFC 7644 §3.7.3: after failOnErrors errors the rest is neither run nor reported.
        if request.fail_on_errors.is_some_and(|limit| errors >= limit) {
            break;
        }
        let op = &ops[i];
        let done = match &plan.failures[i] {
            Some(e) => Done::failed(e),
            None => match &op.target {
                Ok(target) => execute(app, ctx, op, target, &outcomes),
                Err(e) => Done::failed(e),
            },
        };
        if !(200..300).contains(&done.status) {
            errors += 1;
        }
        if let (true, Some(bulk_id)) = (plan.declares[i], op.bulk_id.as_deref()) {
            let outcome = match &done.id {
                Some(id) if done.status == 201 => Outcome::Created(id.clone()),
                _ => Outcome::Failed(done.status),
            };
            outcomes.insert(bulk_id, outcome);
        }
        results[i] = Some(report(op, done));
    }
    let reported: Vec<Value> = results.into_iter().flatten().collect();
    log::info!(
        "bulk: {} of {} operations run, {errors} failed",
        reported.len(),
        ops.len()
    );
    Ok(Response::json(
        200,
        &json!({"schemas": [BULK_RESPONSE_URN], "Operations": reported}),
    ))
}

/// Resolves the operation's bulkId references and runs it through the normal route.
fn execute(
    app: &App,
    ctx: &Ctx,
    op: &Operation,
    target: &Target,
    outcomes: &HashMap<&str, Outcome>,
) -> Done {
    let Some(method) = op.method else {
        // parse() keeps an unknown method as the target's error; not reached.
        return Done::failed(&ScimError::invalid_value("unknown method"));
    };
    let mut resolve = |bulk_id: &str| -> Result<String, ScimError> {
        match outcomes.get(bulk_id) {
            Some(Outcome::Created(id)) => Ok(id.clone()),
            // The reference is well-formed, but what it names could not be created: a
            // conflict with the outcome of another operation, not a malformed request, so
            // 409 (as RFC 7644 §3.7.2 uses for references it cannot resolve).
            Some(Outcome::Failed(status)) => Err(ScimError::new(
                409,
                None,
                format!(
                    "bulkId \"{bulk_id}\" cannot be resolved: the operation declaring it failed with {status}"
                ),
            )),
            // plan() orders every declaration before its uses; kept as a 409 all the same.
            None => Err(ScimError::new(
                409,
                None,
                format!("bulkId \"{bulk_id}\" has not been created yet"),
            )),
        }
    };
    let id = match &target.id {
        Some(raw) => match bulk::reference(raw) {
            Some(_) => match bulk::substitute_str(raw, &mut resolve) {
                Ok(id) => Some(id),
                Err(e) => return Done::failed(&e),
            },
            None => Some(query::decode_path(raw)),
        },
        None => None,
    };
    let body = match &op.data {
        Some(data) => match bulk::substitute(data, &mut resolve) {
            Ok(v) => serde_json::to_vec(&v).unwrap_or_default(),
            Err(e) => return Done::failed(&e),
        },
        None => Vec::new(),
    };
    let endpoint = target.kind.endpoint();
    let mut segs = vec![endpoint];
    let path = match &id {
        Some(id) => {
            segs.push(id);
            format!("{BASE_PATH}/{endpoint}/{id}")
        }
        None => format!("{BASE_PATH}/{endpoint}"),
    };
    let req = Request {
        method: method.as_str().to_string(),
        path,
        query: String::new(),
        headers: Headers {
            authorization: None,
            content_type: Some(SCIM_JSON.to_string()),
            host: ctx.req.headers.host.clone(),
            // RFC 7644 §3.7: `version` is the ETag a PUT/PATCH/DELETE expects.
            if_match: op.version.clone().filter(|_| method != Method::Post),
            if_none_match: None,
            ..Headers::default()
        },
        body,
        remote: ctx.req.remote,
        client: ctx.req.client,
        secure: ctx.req.secure,
    };
    let inner = Ctx {
        req: &req,
        params: Vec::new(),
        principal: ctx.principal.clone(),
        base: ctx.base.clone(),
        via: Via::Bulk,
        txn: ctx.txn.clone(),
        quirks: std::cell::RefCell::new(Vec::new()),
    };
    let response = app
        .route(&inner, &segs)
        .unwrap_or_else(|e| error_response(&e));
    ctx.note_quirks(&inner.quirks.borrow());
    let json: Option<Value> = serde_json::from_slice(&response.body).ok();
    let ok = (200..300).contains(&response.status);
    let created_id = json
        .as_ref()
        .and_then(|v| v.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let location = response.header("Location").map(str::to_string).or_else(|| {
        id.as_ref()
            .filter(|_| ok)
            .map(|id| format!("{}/{endpoint}/{id}", ctx.base))
    });
    Done {
        status: response.status,
        location: location.filter(|_| ok),
        version: response.header("ETag").map(str::to_string).filter(|_| ok),
        id: created_id.filter(|_| ok && method == Method::Post),
        error: json.filter(|_| !ok),
    }
}

/// One entry of the BulkResponse's `Operations` (RFC 7644 §3.7.3): `status` as a string, the
/// error body as `response` for a failure; a success carries `location` and, when the
/// resource still exists, `version`, and no body.
fn report(op: &Operation, done: Done) -> Value {
    let mut out = Map::new();
    out.insert("method".into(), Value::String(op.method_name().to_string()));
    if let Some(b) = &op.bulk_id {
        out.insert("bulkId".into(), Value::String(b.clone()));
    }
    if let Some(v) = done.version {
        out.insert("version".into(), Value::String(v));
    }
    if let Some(l) = done.location {
        out.insert("location".into(), Value::String(l));
    }
    out.insert("status".into(), Value::String(done.status.to_string()));
    if let Some(e) = done.error {
        out.insert("response".into(), e);
    }
    Value::Object(out)
}
