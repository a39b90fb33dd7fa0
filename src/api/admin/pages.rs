//! The console's pages about the server as a whole: the overview, the request inspector and
//! the provisioning event feed. Users and groups are in `directory`.

use std::collections::HashMap;

use askama::Template;

use super::inspector::{self, Captured};
use super::session::Admin;
use super::{error_page, failed, href, render, when, App, Chrome};
use crate::api::quirks::describe;
use crate::http::{query, Request, Response};
use crate::scim::events::ChangeOp;
use crate::store::{StoreError, TenantInfo};

/// Requests and events per page.
const PAGE: usize = 50;
/// Seconds between reloads of the request list.
const REFRESH_SECS: u32 = 10;

/// The tenants this admin sees, by name.
pub(super) fn visible_tenants(app: &App, admin: &Admin) -> Result<Vec<TenantInfo>, StoreError> {
    let mut tenants = app.store.tenants()?;
    tenants.retain(|t| admin.sees(&t.name));
    Ok(tenants)
}

struct TenantRow {
    name: String,
    users: u64,
    groups: u64,
    tokens: u64,
    requests: u64,
    errors: u64,
    users_href: String,
    groups_href: String,
    requests_href: String,
}

struct TokenRow {
    id: String,
    name: String,
    tenant: String,
    scope: &'static str,
    last_used: String,
    expires: String,
    expired: bool,
}

struct QuirkRow {
    token: String,
    kind: &'static str,
    what: &'static str,
    source: &'static str,
    count: u64,
}

#[derive(Template)]
#[template(path = "admin/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    tenants: Vec<TenantRow>,
    /// Requests and errors of the last hour that did not authenticate (admins of every tenant).
    unauthenticated: Option<(u64, u64)>,
    tokens: Vec<TokenRow>,
    quirks: Vec<QuirkRow>,
    database_size: String,
    last_backup: String,
    inspector: String,
}

/// `1.4 MiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub(super) fn overview(app: &App, admin: &Admin) -> Response {
    let tenants = match visible_tenants(app, admin) {
        Ok(t) => t,
        Err(e) => return failed(admin, "listing tenants", e),
    };
    let tokens = match app.store.tokens() {
        Ok(t) => t,
        Err(e) => return failed(admin, "listing tokens", e),
    };
    let activity: HashMap<String, (u64, u64)> = app
        .console
        .inspector
        .last_hour()
        .into_iter()
        .map(|(tenant, r, e)| (tenant, (r, e)))
        .collect();
    let tenant_rows = tenants
        .iter()
        .map(|t| {
            let (requests, errors) = activity.get(&t.name).copied().unwrap_or((0, 0));
            TenantRow {
                name: t.name.clone(),
                users: t.users,
                groups: t.groups,
                tokens: t.tokens,
                requests,
                errors,
                users_href: href("/admin/users", &[("tenant", &t.name)]),
                groups_href: href("/admin/groups", &[("tenant", &t.name)]),
                requests_href: href("/admin/requests", &[("tenant", &t.name)]),
            }
        })
        .collect();
    let names: HashMap<&str, &str> = tokens
        .iter()
        .map(|t| (t.id.as_str(), t.name.as_str()))
        .collect();
    let tenant_of: HashMap<&str, &str> = tokens
        .iter()
        .map(|t| (t.id.as_str(), t.tenant.as_str()))
        .collect();
    let quirks = app
        .quirks
        .snapshot()
        .into_iter()
        // A revoked token's counts: only for an admin of every tenant, who sees all of them.
        .filter(|q| {
            tenant_of
                .get(q.token_id.as_str())
                .map_or(admin.all_tenants(), |t| admin.sees(t))
        })
        .map(|q| {
            let (what, source) = describe(q.quirk);
            QuirkRow {
                token: match names.get(q.token_id.as_str()) {
                    Some(name) => format!("{name} ({})", q.token_id),
                    None => format!("{} (revoked)", q.token_id),
                },
                kind: q.quirk.name(),
                what,
                source,
                count: q.count,
            }
        })
        .collect();
    let token_rows = tokens
        .into_iter()
        .filter(|t| admin.sees(&t.tenant))
        .map(|t| TokenRow {
            expired: t.expires.as_deref().is_some_and(crate::auth::expired),
            id: t.id,
            name: t.name,
            tenant: t.tenant,
            scope: t.scope.as_str(),
            last_used: t.last_used.as_deref().map_or("never".into(), when),
            expires: t.expires.as_deref().map_or("never".into(), when),
        })
        .collect();
    let storage = app.store.storage();
    let inspector = &app.console.inspector;
    let page = OverviewPage {
        chrome: admin.chrome("Overview", "overview"),
        tenants: tenant_rows,
        unauthenticated: admin
            .all_tenants()
            .then(|| activity.get("").copied())
            .flatten(),
        tokens: token_rows,
        quirks,
        database_size: storage.size_bytes.map_or("unknown".into(), size),
        last_backup: storage
            .last_backup
            .as_deref()
            .map_or("unknown".into(), when),
        inspector: if inspector.enabled() {
            format!("keeps the last {} requests per tenant", inspector.size())
        } else {
            "off ([admin] inspector_size = 0)".into()
        },
    };
    render(200, &page)
}

struct RequestRow {
    href: String,
    at: String,
    tenant: String,
    idp: &'static str,
    method: String,
    target: String,
    status: u16,
    error: bool,
    latency: String,
    token: String,
    quirks: String,
}

/// One choice of a tenant picker: its value ("" for all), label, and whether it is chosen.
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "admin/requests.html")]
struct RequestsPage {
    chrome: Chrome,
    enabled: bool,
    size: usize,
    tenants: Vec<Choice>,
    errors_only: bool,
    resource: String,
    rows: Vec<RequestRow>,
    older: Option<String>,
    /// The same list, refreshing or not.
    refresh_toggle: String,
    refreshing: bool,
}

fn tenant_label(tenant: &str) -> String {
    if tenant.is_empty() {
        "not authenticated".into()
    } else {
        tenant.to_string()
    }
}

/// The tenant picker of a page that can also show every tenant at once (`""`).
fn tenant_choices(
    app: &App,
    admin: &Admin,
    chosen: &str,
    unauthenticated: bool,
) -> Result<Vec<Choice>, StoreError> {
    let mut choices = Vec::new();
    if admin.all_tenants() {
        choices.push(Choice {
            value: String::new(),
            label: "all tenants".into(),
            selected: chosen.is_empty(),
        });
    }
    for t in visible_tenants(app, admin)? {
        choices.push(Choice {
            selected: t.name == chosen,
            label: t.name.clone(),
            value: t.name,
        });
    }
    if unauthenticated && admin.all_tenants() {
        choices.push(Choice {
            value: "-".into(),
            label: tenant_label(""),
            selected: chosen == "-",
        });
    }
    Ok(choices)
}

/// The tenant a page shows: the one asked for if this admin sees it; by default every tenant
/// for an admin of all, else the admin's own.
fn chosen_tenant(admin: &Admin, params: &[(String, String)]) -> Result<String, String> {
    match query::get(params, "tenant").map(str::trim) {
        Some(t) if !t.is_empty() => {
            let key = if t == "-" { "" } else { t };
            if admin.sees(key) {
                Ok(t.to_string())
            } else {
                Err(format!("This token does not see tenant \"{t}\"."))
            }
        }
        _ if admin.all_tenants() => Ok(String::new()),
        _ => Ok(admin.tenant.clone()),
    }
}

pub(super) fn requests(app: &App, admin: &Admin, params: &[(String, String)]) -> Response {
    let tenant = match chosen_tenant(admin, params) {
        Ok(t) => t,
        Err(message) => return error_page(admin, 404, &message),
    };
    let errors_only = query::get(params, "errors").is_some_and(|v| v == "1");
    let resource = query::get(params, "resource")
        .unwrap_or_default()
        .trim()
        .to_string();
    let refreshing = query::get(params, "refresh") != Some("off");
    let before = query::get(params, "before").and_then(|b| b.parse::<u64>().ok());
    let tenants = match tenant_choices(app, admin, &tenant, true) {
        Ok(t) => t,
        Err(e) => return failed(admin, "listing tenants", e),
    };
    let filter = inspector::Filter {
        tenants: match tenant.as_str() {
            "" => None,
            "-" => Some(vec![String::new()]),
            t => Some(vec![t.to_string()]),
        },
        errors_only,
        resource_id: (!resource.is_empty()).then(|| resource.clone()),
        before,
    };
    let found = app.console.inspector.list(&filter, PAGE + 1);
    let older = (found.len() > PAGE)
        .then(|| found.get(PAGE - 1).map(|c| c.seq))
        .flatten()
        .map(|seq| {
            href(
                "/admin/requests",
                &[
                    ("tenant", &tenant),
                    ("errors", if errors_only { "1" } else { "" }),
                    ("resource", &resource),
                    ("refresh", "off"),
                    ("before", &seq.to_string()),
                ],
            )
        });
    let rows = found.iter().take(PAGE).map(|c| row(c)).collect();
    // Older pages hold still: they are read, not watched.
    let refreshing = refreshing && before.is_none();
    let refresh_toggle = href(
        "/admin/requests",
        &[
            ("tenant", &tenant),
            ("errors", if errors_only { "1" } else { "" }),
            ("resource", &resource),
            ("refresh", if refreshing { "off" } else { "" }),
        ],
    );
    let mut chrome = admin.chrome("Requests", "requests");
    chrome.refresh = refreshing.then_some(REFRESH_SECS);
    let page = RequestsPage {
        chrome,
        enabled: app.console.inspector.enabled(),
        size: app.console.inspector.size(),
        tenants,
        errors_only,
        resource,
        rows,
        older,
        refresh_toggle,
        refreshing,
    };
    render(200, &page)
}

fn row(c: &Captured) -> RequestRow {
    RequestRow {
        href: format!("/admin/requests/{}", c.seq),
        at: when(&crate::store::format_utc_millis(c.at)),
        tenant: tenant_label(&c.tenant),
        idp: c.idp.label(),
        method: c.method.clone(),
        target: c.target.clone(),
        status: c.status,
        error: c.is_error(),
        latency: format!("{:.1} ms", c.latency.as_secs_f64() * 1000.0),
        token: c.token_name.clone().unwrap_or_else(|| "-".into()),
        quirks: c
            .quirks
            .iter()
            .map(|q| q.name())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

struct QuirkLine {
    name: &'static str,
    what: &'static str,
    source: &'static str,
}

#[derive(Template)]
#[template(path = "admin/request.html")]
struct RequestPage {
    chrome: Chrome,
    row: RequestRow,
    user_agent: String,
    resource_ids: Vec<String>,
    quirks: Vec<QuirkLine>,
    request_headers: Vec<(String, String)>,
    request_body: String,
    request_cut: Option<String>,
    response_headers: Vec<(String, String)>,
    response_body: String,
    response_cut: Option<String>,
    curl: String,
    curl_note: String,
}

fn owned(headers: &inspector::Headers) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn cut_note(body: &inspector::Body) -> Option<String> {
    body.cut_from
        .map(|n| format!("Cut: the first {} of {n} bytes are kept.", body.text.len()))
}

pub(super) fn request(app: &App, req: &Request, admin: &Admin, seq: &str) -> Response {
    let found = seq
        .parse::<u64>()
        .ok()
        .and_then(|n| app.console.inspector.get(n))
        .filter(|c| admin.sees(&c.tenant));
    let Some(c) = found else {
        return error_page(
            admin,
            404,
            "This request is not (or no longer) in the inspector: it keeps the last requests of each tenant in memory only.",
        );
    };
    let curl_note = if c.request_body.cut_from.is_some() {
        "The body was cut: this command sends only its beginning."
    } else if !c.request_body.is_empty() && !c.request_body.is_json() {
        "The body was not JSON; it is shown as kept, secrets hidden."
    } else {
        "Set TOKEN to a token of this tenant first. Secrets shown as [redacted] were never kept: put real values back before replaying."
    };
    let page = RequestPage {
        chrome: admin.chrome(&format!("{} {}", c.method, c.target), "requests"),
        row: row(&c),
        user_agent: c.user_agent.clone().unwrap_or_else(|| "-".into()),
        resource_ids: c.resource_ids.clone(),
        quirks: c
            .quirks
            .iter()
            .map(|&q| {
                let (what, source) = describe(q);
                QuirkLine {
                    name: q.name(),
                    what,
                    source,
                }
            })
            .collect(),
        request_headers: owned(&c.request_headers),
        request_body: c.request_body.display(),
        request_cut: cut_note(&c.request_body),
        response_headers: owned(&c.response_headers),
        response_body: c.response_body.display(),
        response_cut: cut_note(&c.response_body),
        curl: c.curl(&app.origin(req)),
        curl_note: curl_note.into(),
    };
    render(200, &page)
}

struct EventRow {
    seq: i64,
    at: String,
    tenant: String,
    kind: &'static str,
    resource_id: String,
    resource_href: String,
    op: &'static str,
    detail: String,
}

struct LagRow {
    consumer: String,
    tenant: String,
    backlog: u64,
    oldest: String,
    failures: u64,
    last_error: String,
}

#[derive(Template)]
#[template(path = "admin/events.html")]
struct EventsPage {
    chrome: Chrome,
    tenants: Vec<Choice>,
    rows: Vec<EventRow>,
    older: Option<String>,
    lag: Vec<LagRow>,
}

pub(super) fn events(app: &App, admin: &Admin, params: &[(String, String)]) -> Response {
    let tenant = match chosen_tenant(admin, params) {
        Ok(t) if t != "-" => t,
        Ok(_) => String::new(),
        Err(message) => return error_page(admin, 404, &message),
    };
    let before = query::get(params, "before")
        .and_then(|b| b.parse::<i64>().ok())
        .unwrap_or(i64::MAX);
    let tenants = match tenant_choices(app, admin, &tenant, false) {
        Ok(t) => t,
        Err(e) => return failed(admin, "listing tenants", e),
    };
    let scope = (!tenant.is_empty()).then_some(tenant.as_str());
    let found = match app.store.events_before(scope, before, PAGE + 1) {
        Ok(found) => found,
        Err(e) => return failed(admin, "reading events", e),
    };
    let older = (found.len() > PAGE)
        .then(|| found.get(PAGE - 1).map(|e| e.seq))
        .flatten()
        .map(|seq| {
            href(
                "/admin/events",
                &[("tenant", &tenant), ("before", &seq.to_string())],
            )
        });
    let rows = found
        .into_iter()
        .take(PAGE)
        .map(|e| {
            let mut detail = Vec::new();
            if let Some(active) = e.change.active {
                detail.push(if active { "activated" } else { "deactivated" }.to_string());
            }
            if !e.change.operations.is_empty() {
                let paths: Vec<String> = e
                    .change
                    .operations
                    .iter()
                    .map(|op| {
                        format!(
                            "{} {}",
                            op["op"].as_str().unwrap_or("?"),
                            op["path"].as_str().unwrap_or("(no path)")
                        )
                    })
                    .collect();
                detail.push(paths.join("; "));
            }
            if let Some(members) = &e.change.members {
                detail.push(format!("{} members", members.len()));
            }
            let endpoint = match e.kind {
                crate::scim::ResourceKind::User => "users",
                crate::scim::ResourceKind::Group => "groups",
            };
            EventRow {
                seq: e.seq,
                at: when(&e.at),
                resource_href: href(
                    &format!("/admin/{endpoint}/{}", super::encode(&e.resource_id)),
                    &[("tenant", &e.tenant)],
                ),
                tenant: e.tenant,
                kind: e.kind.name(),
                resource_id: e.resource_id,
                op: match e.change.op {
                    ChangeOp::Create => "create",
                    ChangeOp::Replace => "replace",
                    ChangeOp::Patch => "patch",
                    ChangeOp::Delete => "delete",
                },
                detail: detail.join(" · "),
            }
        })
        .collect();
    let lag = match app.store.consumer_lag() {
        Ok(lag) => lag,
        Err(e) => return failed(admin, "reading event consumers", e),
    };
    let lag = lag
        .into_iter()
        .filter(|l| admin.sees(&l.tenant) && (tenant.is_empty() || l.tenant == tenant))
        .map(|l| LagRow {
            consumer: l.consumer,
            tenant: l.tenant,
            backlog: l.backlog,
            oldest: l.oldest.as_deref().map_or("-".into(), when),
            failures: l.failures,
            last_error: l.last_error.unwrap_or_default(),
        })
        .collect();
    render(
        200,
        &EventsPage {
            chrome: admin.chrome("Events", "events"),
            tenants,
            rows,
            older,
            lag,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(size(0), "0 bytes");
        assert_eq!(size(1023), "1023 bytes");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 * 1024 * 1024), "5.0 MiB");
    }
}
