//! `GET /metrics` (Prometheus text format) and `GET /healthz`, on the main listener and on the
//! optional separate metrics listener (`[metrics] listen`).
//!
//! Who may read `/metrics`: a request carrying the metrics token (`[metrics] token`, never a
//! SCIM token) as `Authorization: Bearer …`, or a request from a loopback address, except on
//! the main listener when `behind_tls_proxy` is set: there every client arrives from the proxy,
//! which usually runs on the same host.

use std::collections::BTreeMap;
use std::time::Instant;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{error_response, App};
use crate::http::{Request, Response};
use crate::metrics::{Exposition, CONTENT_TYPE};
use crate::scim::ScimError;
use crate::store::StoreError;

/// Who may read `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct MetricsAccess {
    /// SHA-256 of the metrics token, when one is configured (compared in constant time).
    token_digest: Option<[u8; 32]>,
    /// Whether a loopback peer on the main listener may read without the token.
    pub loopback_trusted_on_main: bool,
}

impl MetricsAccess {
    pub fn new(token: Option<&str>, behind_tls_proxy: bool) -> MetricsAccess {
        MetricsAccess {
            token_digest: token.map(|t| Sha256::digest(t.as_bytes()).into()),
            loopback_trusted_on_main: !behind_tls_proxy,
        }
    }

    fn allows(&self, req: &Request, trust_loopback: bool) -> bool {
        let presented = req.headers.authorization.as_deref().and_then(|h| {
            let (scheme, token) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        if let (Some(expected), Some(token)) = (&self.token_digest, presented) {
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if bool::from(digest.ct_eq(expected)) {
                return true;
            }
        }
        // The client a trusted proxy forwarded counts, not the proxy: behind a reverse proxy
        // on the same host every peer is loopback.
        let client = req.client.or(req.remote.map(|a| a.ip()));
        trust_loopback && client.is_some_and(|ip| ip.to_canonical().is_loopback())
    }
}

/// The route a path matches, as a label: a fixed set, never the raw path (ids would make
/// one series per resource).
pub fn endpoint_template(path: &str) -> &'static str {
    let path = path.trim_end_matches('/');
    match path {
        "/healthz" => return "/healthz",
        "/metrics" => return "/metrics",
        super::events::JWKS_PATH => return super::events::JWKS_PATH,
        _ => {}
    }
    let Some(rest) = path
        .strip_prefix(super::BASE_PATH)
        .filter(|r| r.is_empty() || r.starts_with('/'))
    else {
        return "other";
    };
    // `/scim/v2/{tenant}/Users` counts as `/scim/v2/Users`: the tenant has its own label.
    let (_, rest) = super::split_tenant(rest);
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [] => "/scim/v2",
        ["Users"] => "/scim/v2/Users",
        ["Users", ".search"] => "/scim/v2/Users/.search",
        ["Users", _] => "/scim/v2/Users/{id}",
        ["Groups"] => "/scim/v2/Groups",
        ["Groups", ".search"] => "/scim/v2/Groups/.search",
        ["Groups", _] => "/scim/v2/Groups/{id}",
        [".search"] => "/scim/v2/.search",
        ["Bulk"] => "/scim/v2/Bulk",
        ["Events"] => "/scim/v2/Events",
        ["ServiceProviderConfig"] => "/scim/v2/ServiceProviderConfig",
        ["Schemas"] => "/scim/v2/Schemas",
        ["Schemas", _] => "/scim/v2/Schemas/{id}",
        ["ResourceTypes"] => "/scim/v2/ResourceTypes",
        ["ResourceTypes", _] => "/scim/v2/ResourceTypes/{id}",
        _ => "other",
    }
}

fn get_only(req: &Request) -> Option<Response> {
    (req.method != "GET" && req.method != "HEAD").then(|| {
        error_response(&ScimError::new(405, None, "use GET")).with_header("Allow", "GET, HEAD")
    })
}

/// `/healthz`: 200 only when the database takes a write right now.
pub fn health(app: &App, req: &Request) -> Response {
    if let Some(r) = get_only(req) {
        return r;
    }
    match app.store.writable() {
        Ok(()) => Response::json(200, &serde_json::json!({"status": "ok"})),
        Err(e) => {
            log::warn!("health check: the database is not writable: {e}");
            error_response(&ScimError::new(503, None, "the database is not writable"))
        }
    }
}

/// `/metrics`; `trust_loopback` says whether a loopback peer needs no token here.
pub fn serve(app: &App, req: &Request, trust_loopback: bool) -> Response {
    if let Some(r) = get_only(req) {
        return r;
    }
    if !app.metrics_access.allows(req, trust_loopback) {
        return error_response(&ScimError::new(
            401,
            None,
            "metrics need the metrics token (Authorization: Bearer <[metrics] token>) or a loopback client",
        ));
    }
    match render(app) {
        Ok(text) => {
            let mut r = Response::new(200).with_header("Content-Type", CONTENT_TYPE);
            r.body = text.into_bytes();
            r
        }
        Err(e) => {
            log::error!("metrics: {e}");
            error_response(&ScimError::internal())
        }
    }
}

fn render(app: &App) -> Result<String, StoreError> {
    let mut out = Exposition::new();
    out.family(
        "scimlite_build_info",
        "gauge",
        "Always 1; the running version as a label.",
    );
    out.sample(
        "scimlite_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    app.requests.write(&mut out);

    out.family(
        "scimlite_resources",
        "gauge",
        "Users and Groups stored, by tenant and type.",
    );
    for c in app.store.resource_counts()? {
        out.sample(
            "scimlite_resources",
            &[("tenant", &c.tenant), ("type", c.kind.name())],
            c.count as f64,
        );
    }

    let tokens = app.store.tokens()?;
    let mut per_tenant: BTreeMap<&str, u64> = BTreeMap::new();
    for t in &tokens {
        *per_tenant.entry(&t.tenant).or_insert(0) += 1;
    }
    out.family(
        "scimlite_tokens_active",
        "gauge",
        "Bearer tokens not revoked, by tenant.",
    );
    for (tenant, n) in &per_tenant {
        out.sample("scimlite_tokens_active", &[("tenant", tenant)], *n as f64);
    }
    out.family(
        "scimlite_token_info",
        "gauge",
        "Always 1, one series per active token: its id, name and tenant (join on token_id).",
    );
    for t in &tokens {
        out.sample(
            "scimlite_token_info",
            &[
                ("token_id", &t.id),
                ("token_name", &t.name),
                ("tenant", &t.tenant),
            ],
            1.0,
        );
    }

    out.family(
        "scimlite_patch_dialect_normalisations_total",
        "counter",
        "PATCH requests that needed an IdP dialect step, by token id and kind.",
    );
    for q in app.quirks.snapshot() {
        out.sample(
            "scimlite_patch_dialect_normalisations_total",
            &[("token_id", &q.token_id), ("kind", q.quirk.name())],
            q.count as f64,
        );
    }

    out.family(
        "scimlite_write_batch_size",
        "histogram",
        "Commits made durable by one WAL fsync (group commit; on SQLite a commit holds one or more requests' writes); no samples with synchronous = normal.",
    );
    if let Some(h) = app.store.write_batch_sizes() {
        out.histogram("scimlite_write_batch_size", &[], &h);
    }

    // Provisioning events: how far each consumer (a polling token, a push receiver) is behind.
    let lag = app.store.consumer_lag()?;
    let now = time::OffsetDateTime::now_utc();
    for (name, kind, help) in [
        (
            "scimlite_events_backlog",
            "gauge",
            "Provisioning events a consumer has not acknowledged (poll) or had accepted (push).",
        ),
        (
            "scimlite_events_oldest_pending_seconds",
            "gauge",
            "Age of the oldest such event; 0 when none is pending.",
        ),
        (
            "scimlite_events_push_failures",
            "gauge",
            "Failed pushes to a receiver since its last success.",
        ),
    ] {
        out.family(name, kind, help);
        for l in &lag {
            let value = match name {
                "scimlite_events_backlog" => l.backlog as f64,
                "scimlite_events_push_failures" => l.failures as f64,
                _ => l
                    .oldest
                    .as_deref()
                    .and_then(|t| {
                        time::OffsetDateTime::parse(
                            t,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .ok()
                    })
                    .map(|t| (now - t).as_seconds_f64().max(0.0))
                    .unwrap_or(0.0),
            };
            out.sample(
                name,
                &[("consumer", &l.consumer), ("tenant", &l.tenant)],
                value,
            );
        }
    }
    Ok(out.finish())
}

impl App {
    /// The separate metrics listener (`[metrics] listen`): `/metrics` (loopback clients need
    /// no token there) and `/healthz`, nothing else.
    pub fn handle_metrics_listener(&self, req: &Request) -> Response {
        let started = Instant::now();
        let path = req.path.trim_end_matches('/');
        let response = match path {
            "/metrics" => serve(self, req, true),
            "/healthz" => health(self, req),
            _ => error_response(&ScimError::not_found(format!(
                "no endpoint at {path}; this listener serves /metrics and /healthz"
            ))),
        };
        self.observe(req, &response, None, started);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_route_templates() {
        for (path, want) in [
            ("/scim/v2/Users", "/scim/v2/Users"),
            ("/scim/v2/Users/", "/scim/v2/Users"),
            ("/scim/v2/Users/0192-abc", "/scim/v2/Users/{id}"),
            ("/scim/v2/Groups/x%20y", "/scim/v2/Groups/{id}"),
            ("/scim/v2/Groups/.search", "/scim/v2/Groups/.search"),
            ("/scim/v2/.search", "/scim/v2/.search"),
            ("/scim/v2/Bulk", "/scim/v2/Bulk"),
            ("/scim/v2/Schemas/urn:x", "/scim/v2/Schemas/{id}"),
            ("/scim/v2/Users/a/b", "other"),
            ("/scim/v2/acme/Users/0192-abc", "/scim/v2/Users/{id}"),
            ("/scim/v2/acme/Groups", "/scim/v2/Groups"),
            ("/scim/v2/org-42/.search", "/scim/v2/.search"),
            ("/scim/v2/acme", "/scim/v2"),
            ("/scim/v2x", "other"),
            ("/favicon.ico", "other"),
            ("/healthz", "/healthz"),
            ("/metrics", "/metrics"),
        ] {
            assert_eq!(endpoint_template(path), want, "{path}");
        }
    }

    #[test]
    fn access_needs_the_token_or_a_trusted_loopback_peer() {
        let access = MetricsAccess::new(Some("metrics-secret-0123456789"), false);
        let req = |remote: &str, auth: Option<&str>| Request {
            remote: Some(remote.parse().unwrap()),
            headers: crate::http::Headers {
                authorization: auth.map(str::to_string),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(access.allows(&req("127.0.0.1:5000", None), true));
        assert!(access.allows(&req("[::ffff:127.0.0.1]:5000", None), true));
        assert!(!access.allows(&req("127.0.0.1:5000", None), false));
        assert!(!access.allows(&req("10.0.0.1:5000", None), true));
        assert!(!access.allows(&req("10.0.0.1:5000", Some("Bearer wrong")), true));
        assert!(access.allows(
            &req("10.0.0.1:5000", Some("Bearer metrics-secret-0123456789")),
            false
        ));
        // Behind a trusted proxy on loopback, the forwarded client decides.
        let mut forwarded = req("127.0.0.1:5000", None);
        forwarded.client = Some("203.0.113.5".parse().unwrap());
        assert!(!access.allows(&forwarded, true));
        forwarded.client = Some("127.0.0.1".parse().unwrap());
        assert!(access.allows(&forwarded, true));
        let open = MetricsAccess::new(None, false);
        assert!(!open.allows(&req("10.0.0.1:5000", Some("Bearer ")), true));
    }
}
