//! `POST /scim/v2/Events` (and `/scim/v2/{tenant}/Events`): poll delivery of provisioning
//! events (RFC 8936), and `GET /.well-known/jwks.json`, the keys that verify them.
//!
//! Each token that polls has its own position in its tenant's events, so two applications
//! never take each other's events; an event stays pending for a token until that token
//! acknowledges it (`ack`) or reports it (`setErrs`), and is handed out again until then.
//! With `returnImmediately: false` (the default) and nothing pending, the request waits for
//! the next event, up to [`super::App::long_poll`], without holding a worker.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde_json::{Map, Value};

use super::{App, Ctx};
use crate::http::Response;
use crate::scim::ScimError;

/// Where the JWKS is served, unauthenticated, outside `/scim/v2`.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// Most events one response carries when the request sets no `maxEvents`.
pub const MAX_EVENTS: usize = 1000;

/// What a poll request asks (RFC 8936 §2.4); every member is optional.
#[derive(Debug, Default, PartialEq)]
struct PollRequest {
    max_events: Option<usize>,
    return_immediately: bool,
    /// `ack` and the keys of `setErrs`: every `jti` the receiver is done with.
    done: Vec<String>,
    errors: Vec<(String, String)>,
}

fn bad(detail: impl Into<String>) -> ScimError {
    ScimError::invalid_syntax(detail)
}

fn parse(body: &Value) -> Result<PollRequest, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| bad("a poll request is a JSON object (RFC 8936 §2.4)"))?;
    let mut req = PollRequest::default();
    for (key, value) in obj {
        match key.as_str() {
            "maxEvents" => {
                let n = value
                    .as_u64()
                    .ok_or_else(|| bad("\"maxEvents\" must be a whole number, 0 or more"))?;
                req.max_events = Some(usize::try_from(n).unwrap_or(usize::MAX).min(MAX_EVENTS));
            }
            "returnImmediately" => {
                req.return_immediately = value
                    .as_bool()
                    .ok_or_else(|| bad("\"returnImmediately\" must be true or false"))?;
            }
            "ack" => {
                for jti in value
                    .as_array()
                    .ok_or_else(|| bad("\"ack\" must be an array of jti strings"))?
                {
                    let jti = jti
                        .as_str()
                        .ok_or_else(|| bad("\"ack\" must be an array of jti strings"))?;
                    req.done.push(jti.to_string());
                }
            }
            "setErrs" => {
                let errs: &Map<String, Value> = value
                    .as_object()
                    .ok_or_else(|| bad("\"setErrs\" must be an object keyed by jti"))?;
                for (jti, err) in errs {
                    let text = format!(
                        "{}: {}",
                        err.get("err").and_then(Value::as_str).unwrap_or("?"),
                        err.get("description").and_then(Value::as_str).unwrap_or("")
                    );
                    req.done.push(jti.clone());
                    req.errors.push((jti.clone(), text));
                }
            }
            other => {
                return Err(bad(format!(
                    "unknown member \"{other}\" in a poll request (maxEvents, returnImmediately, ack, setErrs)"
                )))
            }
        }
    }
    Ok(req)
}

pub fn poll(app: &App, ctx: &Ctx) -> Result<Response, ScimError> {
    let body = ctx.json_body()?;
    let req = parse(&body)?;
    let tenant = &ctx.principal.tenant;
    let consumer = format!("token:{}", ctx.principal.token_id);
    for (jti, error) in &req.errors {
        log::warn!(
            "event receiver {} (token {}) reports {jti}: {error}",
            ctx.principal.token_name,
            ctx.principal.token_id
        );
    }
    let max = req.max_events.unwrap_or(MAX_EVENTS);
    let store = app.events.store();
    let mut seen = store.last_event_seq()?;
    let (mut events, mut more) = store.poll_events(&consumer, tenant, &req.done, max)?;
    if events.is_empty() && max > 0 && !req.return_immediately {
        // Long poll: wait for the next event without holding a worker.
        let until = Instant::now() + app.long_poll;
        let stop = AtomicBool::new(false);
        while Instant::now() < until {
            let woke = crate::http::adapter::outside_worker_limit(|| {
                app.events.wait_for_newer(seen, until, &stop)
            });
            if !woke {
                break;
            }
            seen = store.last_event_seq()?;
            (events, more) = store.poll_events(&consumer, tenant, &[], max)?;
            if !events.is_empty() {
                break;
            }
        }
    }
    // RFC 8936 §2.5: a JSON object, not a SCIM message. `sets` is written in feed order
    // (serde_json's maps would sort it by jti), so a client whose JSON parser keeps member
    // order — Python's, JavaScript's — reads the events in the order they happened.
    let mut body = String::from("{\"sets\":{");
    for (i, e) in events.iter().enumerate() {
        let set = app.events.set(e).map_err(|err| {
            log::error!("signing event {}: {err}", e.jti);
            ScimError::internal()
        })?;
        if i > 0 {
            body.push(',');
        }
        body.push_str(&Value::String(e.jti.clone()).to_string());
        body.push(':');
        body.push_str(&Value::String(set).to_string());
    }
    body.push_str(&format!("}},\"moreAvailable\":{more}}}"));
    let mut r = Response::new(200).with_header("Content-Type", "application/json");
    r.body = body.into_bytes();
    Ok(r)
}

/// `GET /.well-known/jwks.json`: public, as public keys are.
pub fn jwks(app: &App) -> Response {
    match app.events.jwks() {
        Ok(keys) => {
            let mut r = Response::json(200, &keys);
            r.headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case("Content-Type"));
            r.with_header("Content-Type", "application/jwk-set+json")
                .with_header("Cache-Control", "max-age=300")
        }
        Err(e) => {
            log::error!("event signing keys: {e}");
            super::error_response(&ScimError::internal())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn poll_requests_parse_as_rfc_8936_says() {
        assert_eq!(parse(&json!({})).unwrap(), PollRequest::default());
        let r = parse(
            &json!({"maxEvents": 5, "returnImmediately": true, "ack": ["a"],
            "setErrs": {"b": {"err": "invalid_key", "description": "expired"}}}),
        )
        .unwrap();
        assert_eq!(r.max_events, Some(5));
        assert!(r.return_immediately);
        assert_eq!(r.done, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(r.errors[0].1, "invalid_key: expired");
        assert_eq!(
            parse(&json!({"maxEvents": 1_000_000})).unwrap().max_events,
            Some(MAX_EVENTS)
        );
        for bad in [
            json!([]),
            json!({"maxEvents": -1}),
            json!({"maxEvents": "5"}),
            json!({"returnImmediately": "yes"}),
            json!({"ack": "a"}),
            json!({"ack": [1]}),
            json!({"setErrs": []}),
            json!({"nope": 1}),
        ] {
            assert_eq!(parse(&bad).unwrap_err().status, 400, "{bad}");
        }
    }
}
