//! Endpoint handlers: the only layer that sees both HTTP and the store. Routing, auth,
//! media types, and the one mapping from store errors to SCIM errors.

pub mod admin;
mod bulk;
mod discovery;
pub mod events;
pub mod metrics;
mod patch;
pub mod quirks;
mod resources;
mod search;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use crate::auth::{self, AuthFailure, Authenticator, Principal};
use crate::http::query;
use crate::http::{Request, Response};
use crate::scim::patch::Quirk;
use crate::scim::resource::Meta;
use crate::scim::{ResourceKind, ScimError};
use crate::store::{Actor, Store, StoreError, TokenScope, Via};

/// Everything the handlers need; shared by all workers.
pub struct App {
    pub store: Arc<dyn Store>,
    /// Every schema and attribute: built-in and declared extensions.
    pub registry: Arc<crate::scim::schema::Registry>,
    pub auth: Authenticator,
    pub max_page_size: u64,
    /// What RFC 9865 cursors are sealed with: the database's key, the same on every instance.
    pub cursor_key: crate::scim::cursor::CursorKey,
    /// How long a cursor stays valid (config `cursor_timeout_secs`, `cursorTimeout`).
    pub cursor_timeout_secs: u64,
    pub max_body_bytes: u64,
    pub pbkdf2_rounds: u32,
    /// Group PATCH answers 200 with the group instead of 204 (config `group_patch_response`).
    pub group_patch_returns_resource: bool,
    /// Bulk limits (config `bulk_max_operations`, `bulk_max_payload_bytes`).
    pub bulk_max_operations: usize,
    pub bulk_max_payload_bytes: u64,
    /// Absolute URLs use https when TLS terminates here or at a proxy in front.
    pub https: bool,
    pub default_host: String,
    /// PATCH dialect steps per token and kind (`quirks::QuirkCounter`).
    pub quirks: Arc<quirks::QuirkCounter>,
    /// Requests by method, route, status and tenant, and their latency.
    pub requests: Arc<crate::metrics::RequestMetrics>,
    /// Who may read `/metrics`.
    pub metrics_access: metrics::MetricsAccess,
    /// Provisioning events: signing, the poll feed.
    pub events: Arc<crate::events::Events>,
    /// Longest wait of a long poll for events (below the request deadline).
    pub long_poll: std::time::Duration,
    /// The admin console at /admin/ and its request inspector.
    pub console: admin::Console,
}

pub const BASE_PATH: &str = "/scim/v2";

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ScimError::not_found("resource not found"),
            StoreError::Conflict(m) => ScimError::uniqueness(m),
            StoreError::InvalidReference(m) => ScimError::invalid_value(m),
            // The API's own code refused inside the transaction: its SCIM error as it was.
            StoreError::Rejected(e) => match e.downcast::<ScimError>() {
                Ok(scim) => *scim,
                Err(other) => {
                    log::error!("store refusal that is not a SCIM error: {other}");
                    ScimError::internal()
                }
            },
            // A client may retry (RFC 7644 §3.12 lists 503 with `Retry-After`).
            StoreError::Unavailable(m) => {
                log::warn!("store unavailable: {m}");
                ScimError::new(
                    503,
                    None,
                    "the database is unavailable; nothing was changed unless a retry finds it done — try again shortly",
                )
            }
            other => {
                log::error!("store failure: {other}");
                ScimError::internal()
            }
        }
    }
}

/// Seconds a client is asked to wait after a 503.
const RETRY_AFTER_SECS: u32 = 5;

/// Whether an `If-Match` / `If-None-Match` header names the current ETag (RFC 7232 §3.1–3.2,
/// weak comparison, as RFC 7644 §3.14 uses weak ETags): `*` or a list containing it.
fn etag_listed(header: &str, current: &Meta) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").trim().to_string();
    let current = strip(&current.etag());
    header
        .split(',')
        .any(|t| t.trim() == "*" || strip(t) == current)
}

/// `If-Match` on PUT/PATCH/DELETE: 412 unless it names the current version. Callers run it
/// inside the write transaction, so the check and the write see the same version.
fn check_if_match(header: Option<&str>, current: &Meta) -> Result<(), ScimError> {
    match header {
        Some(h) if !etag_listed(h, current) => Err(ScimError::new(
            412,
            None,
            format!(
                "If-Match {h} does not match the current version {}",
                current.etag()
            ),
        )),
        _ => Ok(()),
    }
}

/// Splits `/{tenant}/rest` off the path after `/scim/v2` when its first segment has the
/// shape of a tenant name (never an endpoint name such as `Users`; `crate::tenant`).
pub(crate) fn split_tenant(rest: &str) -> (Option<&str>, &str) {
    let trimmed = rest.strip_prefix('/').unwrap_or(rest);
    let (first, after) = match trimmed.find('/') {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, ""),
    };
    if crate::tenant::is_tenant_segment(first) {
        (Some(first), after)
    } else {
        (None, rest)
    }
}

/// The 404 for a path under `/scim/v2` that names no endpoint of the token's tenant: a typo, a
/// tenant that does not exist, or another tenant's URL. One text for all of them, with
/// nothing in it that depends on which tenants exist, so a token learns nothing about other
/// tenants; it sends the admin to the URL field, and names the URLs this token can use.
fn no_endpoint(path: &str, principal: &Principal) -> ScimError {
    ScimError::not_found(format!(
        "no SCIM endpoint at {path}; check the tenant URL (this token's tenant is served at {BASE_PATH}/{} and {BASE_PATH})",
        principal.tenant
    ))
}

/// The method a request is routed by: HEAD is GET without the body (RFC 9110 §9.3.2; the
/// transport drops the body), so it is served wherever GET is and refused where GET is.
fn routed_method(method: &str) -> &str {
    if method == "HEAD" {
        "GET"
    } else {
        method
    }
}

/// What a read-only token may do: GET (and HEAD) anything, and POST a search.
fn is_read(method: &str, segs: &[&str]) -> bool {
    match method {
        "GET" | "HEAD" => true,
        "POST" => segs.last() == Some(&".search"),
        _ => false,
    }
}

pub fn error_response(e: &ScimError) -> Response {
    let r = Response::json(e.status, &e.to_json());
    match e.status {
        401 => r.with_header("WWW-Authenticate", "Bearer realm=\"scimlite\""),
        503 => r.with_header("Retry-After", RETRY_AFTER_SECS.to_string()),
        _ => r,
    }
}

/// A parsed request as the handlers see it.
pub struct Ctx<'a> {
    pub req: &'a Request,
    pub params: Vec<(String, String)>,
    pub principal: Principal,
    /// `https://host/scim/v2`, or `https://host/scim/v2/{tenant}` when the request used that
    /// form; for `meta.location`, `$ref` and discovery.
    pub base: String,
    /// A request of its own, or an operation inside a Bulk request (for the audit log).
    pub via: Via,
    /// The request's transaction id: every change it makes (each operation of a Bulk
    /// request too) reports it as its events' `txn`.
    pub txn: String,
    /// The PATCH dialect steps the request needed (its Bulk operations' too), for the
    /// console's request inspector.
    pub quirks: RefCell<Vec<Quirk>>,
}

impl Ctx<'_> {
    /// Notes dialect steps the request needed, each once.
    pub fn note_quirks(&self, quirks: &[Quirk]) {
        let mut seen = self.quirks.borrow_mut();
        for q in quirks {
            if !seen.contains(q) {
                seen.push(*q);
            }
        }
    }

    /// Who the audit log names for a change made by this request.
    pub fn actor(&self) -> Actor {
        Actor::token(
            &self.principal.token_id,
            &self.principal.token_name,
            self.via,
            &self.txn,
        )
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        query::get(&self.params, name)
    }

    /// Parses a JSON body after checking its media type (RFC 7644 §3.1, §8.1: both
    /// `application/scim+json` and `application/json` are accepted, with parameters).
    pub fn json_body(&self) -> Result<Value, ScimError> {
        if let Some(ct) = &self.req.headers.content_type {
            let media = ct.split(';').next().unwrap_or_default().trim();
            if !media.eq_ignore_ascii_case("application/scim+json")
                && !media.eq_ignore_ascii_case("application/json")
            {
                return Err(ScimError::new(
                    415,
                    None,
                    format!("Content-Type \"{media}\" is not supported; send application/scim+json or application/json"),
                ));
            }
        }
        if self.req.body.is_empty() {
            return Err(ScimError::invalid_syntax("the request needs a JSON body"));
        }
        serde_json::from_slice(&self.req.body)
            .map_err(|e| ScimError::invalid_syntax(format!("the body is not valid JSON: {e}")))
    }
}

/// What dispatch learnt about a request besides its response.
#[derive(Default)]
struct Seen {
    /// The tenant of an authenticated request.
    tenant: Option<String>,
    /// A request for the SCIM API (authenticated or not), which the inspector keeps.
    scim: bool,
    quirks: Vec<Quirk>,
}

impl Seen {
    fn scim(tenant: Option<String>) -> Seen {
        Seen {
            tenant,
            scim: true,
            quirks: Vec::new(),
        }
    }
}

impl App {
    /// The main listener's handler: counts every request for `/metrics`, and hands each SCIM
    /// request with its response to the console's inspector.
    pub fn handle(&self, req: &Request) -> Response {
        let started = Instant::now();
        let (response, seen) = self.dispatch(req);
        self.observe(req, &response, seen.tenant.as_deref(), started);
        if seen.scim {
            self.console.inspector.capture(&admin::inspector::Seen {
                req,
                response: &response,
                tenant: seen.tenant.as_deref(),
                quirks: &seen.quirks,
                elapsed: started.elapsed(),
            });
        }
        response
    }

    fn observe(&self, req: &Request, response: &Response, tenant: Option<&str>, started: Instant) {
        self.requests.observe(
            crate::metrics::method_label(&req.method),
            metrics::endpoint_template(&req.path),
            response.status,
            tenant.unwrap_or(""),
            started.elapsed().as_secs_f64(),
        );
    }

    /// The response, and what else the request was.
    fn dispatch(&self, req: &Request) -> (Response, Seen) {
        let path = req.path.trim_end_matches('/');
        if path == "/healthz" {
            return (metrics::health(self, req), Seen::default());
        }
        if path == "/metrics" {
            let trust = self.metrics_access.loopback_trusted_on_main;
            return (metrics::serve(self, req, trust), Seen::default());
        }
        if path == events::JWKS_PATH && matches!(req.method.as_str(), "GET" | "HEAD") {
            return (events::jwks(self), Seen::default());
        }
        if self.console.enabled && admin::is_console(&req.path) {
            return (admin::handle(self, req), Seen::default());
        }
        let Some(rest) = path
            .strip_prefix(BASE_PATH)
            .filter(|r| r.is_empty() || r.starts_with('/'))
        else {
            let e = ScimError::not_found(format!(
                "no endpoint at {path}; SCIM lives under {BASE_PATH}"
            ));
            return (error_response(&e), Seen::default());
        };
        let (url_tenant, rest) = split_tenant(rest);
        let principal = match self.authenticate(req) {
            Ok(p) => p,
            Err(e) => return (e, Seen::scim(None)),
        };
        let name = principal.token_name.clone();
        let tenant = principal.tenant.clone();
        // A console token is no SCIM credential, on any URL (a SCIM token never opens the
        // console either).
        if principal.scope == TokenScope::Admin {
            let e = ScimError::new(
                403,
                None,
                format!(
                    "this token is for the admin console (/admin/) only, not {} {}; the SCIM API needs a token of scope read-write, read-only or events",
                    req.method, req.path
                ),
            );
            let mut response = error_response(&e);
            response.principal = Some(name);
            return (response, Seen::scim(Some(tenant)));
        }
        // Another tenant's URL, existing or not, is a place this token does not have: 404 like
        // any other, and not a failed credential (the token was valid).
        if url_tenant.is_some_and(|t| t != principal.tenant) {
            let mut response = error_response(&no_endpoint(&req.path, &principal));
            response.principal = Some(name);
            return (response, Seen::scim(Some(tenant)));
        }
        let ctx = Ctx {
            req,
            params: query::parse(&req.query),
            base: self.base_url(req, url_tenant),
            principal,
            via: Via::Api,
            txn: crate::store::new_txn(),
            quirks: RefCell::new(Vec::new()),
        };
        let segments: Vec<String> = rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(query::decode_path)
            .collect();
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let is_events = segs.len() == 1 && segs[0] == "Events";
        let routed = match ctx.principal.scope {
            TokenScope::ReadOnly if is_events || !is_read(&req.method, &segs) => {
                Err(ScimError::new(
                    403,
                    None,
                    format!(
                        "this token is read-only: it may GET and POST …/.search, not {} {}",
                        req.method, req.path
                    ),
                ))
            }
            TokenScope::Events if !is_events => Err(ScimError::new(
                403,
                None,
                format!(
                    "this token may only read provisioning events (POST …/Events), not {} {}",
                    req.method, req.path
                ),
            )),
            _ => self.route(&ctx, &segs),
        };
        let mut response = routed.unwrap_or_else(|e| error_response(&e));
        response.principal = Some(name);
        let seen = Seen {
            quirks: ctx.quirks.take(),
            ..Seen::scim(Some(tenant))
        };
        (response, seen)
    }

    /// The principal, or the finished 401 / 429 response. Which URL the token was sent to
    /// plays no part here.
    fn authenticate(&self, req: &Request) -> Result<Principal, Response> {
        // The peer, or behind a trusted proxy the client it forwarded for.
        let client = req.client;
        let verified = auth::bearer_token(req.headers.authorization.as_deref())
            .and_then(|token| self.auth.authenticate(token, client));
        match verified {
            Ok(p) => Ok(p),
            Err(
                e @ (AuthFailure::Missing
                | AuthFailure::NotBearer
                | AuthFailure::Malformed
                | AuthFailure::Unknown
                | AuthFailure::Expired(_)),
            ) => Err(error_response(&ScimError::new(401, None, e.to_string()))),
            Err(e @ AuthFailure::Limited { retry_after_secs }) => {
                // Debug only: a flood must not flood the log (auth warns once per limit).
                log::debug!(
                    "authentication from {} rate-limited for {retry_after_secs} s",
                    client.map(|r| r.to_string()).unwrap_or_else(|| "-".into())
                );
                Err(error_response(&ScimError::new(429, None, e.to_string()))
                    .with_header("Retry-After", retry_after_secs.to_string()))
            }
            Err(AuthFailure::Store(e)) => Err(error_response(&ScimError::from(e))),
        }
    }

    /// `https://host/scim/v2`, or `https://host/scim/v2/{tenant}` when the client used that
    /// form, so every URL in a response (`meta.location`, `$ref`, `Location`, discovery) is one
    /// the client can use as it is.
    fn base_url(&self, req: &Request, url_tenant: Option<&str>) -> String {
        // Appended, not formatted: two `format!`s were 1,700 instructions a request.
        let mut base = self.origin(req);
        base.push_str(BASE_PATH);
        if let Some(t) = url_tenant {
            base.push('/');
            base.push_str(t);
        }
        base
    }

    /// `https://host`: the scheme and the request's `Host` when it is a plain host name (else
    /// the listen address).
    fn origin(&self, req: &Request) -> String {
        let scheme = if req.secure || self.https {
            "https"
        } else {
            "http"
        };
        let host = req
            .headers
            .host
            .as_deref()
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
            })
            .unwrap_or(&self.default_host);
        let mut origin = String::with_capacity(scheme.len() + host.len() + 64);
        origin.push_str(scheme);
        origin.push_str("://");
        origin.push_str(host);
        origin
    }

    fn route(&self, ctx: &Ctx, segs: &[&str]) -> Result<Response, ScimError> {
        let method = routed_method(&ctx.req.method);
        let not_allowed = |allow: &str| -> Result<Response, ScimError> {
            Ok(error_response(&ScimError::new(
                405,
                None,
                format!("{} is not allowed here; allowed: {allow}", ctx.req.method),
            ))
            .with_header("Allow", allow))
        };
        let kind = |s: &str| match s {
            "Users" => Some(ResourceKind::User),
            "Groups" => Some(ResourceKind::Group),
            _ => None,
        };
        match segs {
            // Before `[collection, id]`: `.search` is not an id.
            [collection, ".search"] if kind(collection).is_some() => match method {
                "POST" => search::search(self, ctx, kind(collection)),
                _ => not_allowed("POST"),
            },
            [".search"] => match method {
                "POST" => search::search(self, ctx, None),
                _ => not_allowed("POST"),
            },
            [collection] if kind(collection).is_some() => {
                let k = kind(collection).unwrap_or(ResourceKind::User);
                match method {
                    "GET" => resources::list(self, ctx, k),
                    "POST" => resources::create(self, ctx, k),
                    _ => not_allowed("GET, HEAD, POST"),
                }
            }
            [collection, id] if kind(collection).is_some() => {
                let k = kind(collection).unwrap_or(ResourceKind::User);
                match method {
                    "GET" => resources::get(self, ctx, k, id),
                    "PUT" => resources::replace(self, ctx, k, id),
                    "DELETE" => resources::delete(self, ctx, k, id),
                    "PATCH" => patch::patch(self, ctx, k, id),
                    _ => not_allowed("GET, HEAD, PUT, PATCH, DELETE"),
                }
            }
            ["Bulk"] if method == "POST" => bulk::bulk(self, ctx),
            ["Bulk"] => not_allowed("POST"),
            // RFC 8936 poll delivery of provisioning events.
            ["Events"] if method == "POST" => events::poll(self, ctx),
            ["Events"] => not_allowed("POST"),
            ["ServiceProviderConfig"]
            | ["Schemas"]
            | ["Schemas", _]
            | ["ResourceTypes"]
            | ["ResourceTypes", _] => {
                if method != "GET" {
                    return not_allowed("GET, HEAD");
                }
                discovery::serve(self, ctx, segs)
            }
            _ => Err(no_endpoint(&ctx.req.path, &ctx.principal)),
        }
    }
}
