//! Users and Groups in the console: paged lists per tenant with a SCIM filter box — parsed
//! and run by the same `ListQuery` and `Store::list` as `GET /Users?filter=…`, so the console
//! finds exactly what the API finds and its errors are the API's — and one resource's page:
//! every attribute (extensions included), its groups or a page of its members, its audit
//! history.

use askama::Template;
use serde_json::{Map, Value};

use super::session::Admin;
use super::{error_page, failed, href, render, when, App, Chrome};
use crate::http::{query, Request, Response};
use crate::scim::list::{ListQuery, Paging};
use crate::scim::resource::{self, Reference};
use crate::scim::ResourceKind;
use crate::store::{AuditQuery, StoredResource};

/// Resources (and members) per page.
const PAGE: u64 = 50;
/// Audit entries shown on a resource's page (the newest).
const AUDIT_LIMIT: u64 = 200;

fn endpoint(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::User => "users",
        ResourceKind::Group => "groups",
    }
}

fn text(doc: &Map<String, Value>, key: &str) -> String {
    match doc.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The tenant a directory page shows: the one asked for, if this admin sees it and it exists.
fn tenant_of(
    app: &App,
    admin: &Admin,
    params: &[(String, String)],
) -> Result<(String, Vec<String>), Response> {
    let tenants: Vec<String> = match super::pages::visible_tenants(app, admin) {
        Ok(t) => t.into_iter().map(|t| t.name).collect(),
        Err(e) => return Err(failed(admin, "listing tenants", e)),
    };
    let asked = query::get(params, "tenant")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(&admin.tenant);
    if !tenants.iter().any(|t| t == asked) {
        return Err(error_page(
            admin,
            404,
            &format!("There is no tenant \"{asked}\" this token can see."),
        ));
    }
    Ok((asked.to_string(), tenants))
}

struct Row {
    href: String,
    cells: Vec<String>,
}

#[derive(Template)]
#[template(path = "admin/list.html")]
struct ListPage {
    chrome: Chrome,
    /// "users" or "groups": the form's action and the links.
    endpoint: &'static str,
    tenant: String,
    tenants: Vec<String>,
    filter: String,
    /// The filter's error, as the API would answer it.
    error: Option<String>,
    total: u64,
    first: u64,
    last: u64,
    columns: Vec<&'static str>,
    rows: Vec<Row>,
    previous: Option<String>,
    next: Option<String>,
}

pub(super) fn list(
    app: &App,
    req: &Request,
    admin: &Admin,
    params: &[(String, String)],
    kind: ResourceKind,
) -> Response {
    let (tenant, tenants) = match tenant_of(app, admin, params) {
        Ok(t) => t,
        Err(response) => return response,
    };
    let filter = query::get(params, "filter")
        .unwrap_or_default()
        .trim()
        .to_string();
    let start = query::get(params, "start").unwrap_or("1").to_string();
    let count = PAGE.to_string();
    let page_link = |start: u64| {
        href(
            &format!("/admin/{}", endpoint(kind)),
            &[
                ("tenant", tenant.as_str()),
                ("filter", filter.as_str()),
                ("start", &start.to_string()),
            ],
        )
    };
    let found = ListQuery::from_params(
        |name| match name {
            "filter" => (!filter.is_empty()).then_some(filter.as_str()),
            "startIndex" => Some(start.as_str()),
            "count" => Some(count.as_str()),
            _ => None,
        },
        PAGE,
    )
    .and_then(|q| {
        // The console sends no `cursor`, so the query pages by index.
        let Paging::Index(page) = q.paging else {
            return Err(crate::scim::ScimError::invalid_value(
                "the console pages by index",
            ));
        };
        let base = app.base_url(req, Some(&tenant));
        app.store
            .list(&tenant, kind, q.filter.as_ref(), None, page, &base)
            .map(|(total, rows)| (page.start_index, total, rows))
            .map_err(crate::scim::ScimError::from)
    });
    let (first, total, rows, error) = match found {
        Ok((first, total, rows)) => (first, total, rows, None),
        Err(e) => (1, 0, Vec::new(), Some(e.detail)),
    };
    // The attributes shown as columns, then when each was last modified.
    let shown: &[&str] = match kind {
        ResourceKind::User => &["userName", "displayName", "active", "externalId"],
        ResourceKind::Group => &["displayName", "externalId"],
    };
    let columns: Vec<&str> = shown.iter().copied().chain(["last modified"]).collect();
    let rows: Vec<Row> = rows
        .iter()
        .map(|r| Row {
            href: resource_href(kind, &r.id, &tenant),
            cells: shown
                .iter()
                .map(|name| text(&r.doc, name))
                .chain([when(&r.meta.last_modified)])
                .collect(),
        })
        .collect();
    let last = first + rows.len() as u64 - u64::from(!rows.is_empty());
    let previous = (first > 1).then(|| page_link(first.saturating_sub(PAGE).max(1)));
    let next = (first + (rows.len() as u64) <= total && !rows.is_empty())
        .then(|| page_link(first + rows.len() as u64));
    let title = match kind {
        ResourceKind::User => "Users",
        ResourceKind::Group => "Groups",
    };
    render(
        if error.is_some() { 400 } else { 200 },
        &ListPage {
            chrome: admin.chrome(title, endpoint(kind)),
            endpoint: endpoint(kind),
            tenant,
            tenants,
            filter,
            error,
            total,
            first,
            last,
            columns,
            rows,
            previous,
            next,
        },
    )
}

fn resource_href(kind: ResourceKind, id: &str, tenant: &str) -> String {
    href(
        &format!("/admin/{}/{}", endpoint(kind), super::encode(id)),
        &[("tenant", tenant)],
    )
}

struct RefRow {
    href: String,
    display: String,
    id: String,
    kind: &'static str,
}

struct AuditRow {
    at: String,
    actor: String,
    operation: String,
    changes: String,
}

#[derive(Template)]
#[template(path = "admin/resource.html")]
struct ResourcePage {
    chrome: Chrome,
    kind: &'static str,
    tenant: String,
    id: String,
    attributes: Vec<(String, String)>,
    json: String,
    refs_title: &'static str,
    refs: Vec<RefRow>,
    refs_total: usize,
    refs_first: usize,
    refs_previous: Option<String>,
    refs_next: Option<String>,
    audit: Vec<AuditRow>,
}

pub(super) fn resource(
    app: &App,
    req: &Request,
    admin: &Admin,
    params: &[(String, String)],
    kind: ResourceKind,
    id: &str,
) -> Response {
    let (tenant, _) = match tenant_of(app, admin, params) {
        Ok(t) => t,
        Err(response) => return response,
    };
    let stored: StoredResource = match app.store.get(&tenant, kind, id) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return error_page(
                admin,
                404,
                &format!(
                    "There is no {} \"{id}\" in tenant \"{tenant}\".",
                    kind.name()
                ),
            )
        }
        Err(e) => return failed(admin, "reading a resource", e),
    };
    let refs: Vec<Reference> = match app.store.references(&tenant, kind, id) {
        Ok(r) => r,
        Err(e) => return failed(admin, "reading references", e),
    };
    let audit = match app.store.audit(&AuditQuery {
        tenant: Some(tenant.clone()),
        resource: Some(id.to_string()),
        since: None,
        limit: AUDIT_LIMIT,
    }) {
        Ok(a) => a,
        Err(e) => return failed(admin, "reading the audit log", e),
    };
    let base = app.base_url(req, Some(&tenant));
    let rs = app.registry.resource(kind);
    // As the API renders it (its groups too), plus any value of an extension no longer
    // declared, which the API stops returning but the database still holds.
    let mut rendered =
        resource::render(rs, id, stored.doc.clone(), &stored.meta, Some(&refs), &base);
    if let Value::Object(out) = &mut rendered {
        for (k, v) in &stored.doc {
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
        // Members are paged below; the attribute table would list every one of them.
        if kind == ResourceKind::Group {
            out.remove("members");
        }
    }
    let mut attributes = Vec::new();
    attribute_paths(&rendered, &mut attributes);
    let refs_first = query::get(params, "start")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let page = PAGE as usize;
    let link = |start: usize| {
        href(
            &format!("/admin/{}/{}", endpoint(kind), super::encode(id)),
            &[("tenant", tenant.as_str()), ("start", &start.to_string())],
        )
    };
    let refs_previous = (refs_first > 1).then(|| link(refs_first.saturating_sub(page).max(1)));
    let refs_next = (refs_first - 1 + page < refs.len()).then(|| link(refs_first + page));
    let ref_rows = refs
        .iter()
        .skip(refs_first - 1)
        .take(page)
        .map(|r| RefRow {
            href: resource_href(r.kind, &r.id, &tenant),
            display: r.display.clone().unwrap_or_default(),
            id: r.id.clone(),
            kind: r.kind.name(),
        })
        .collect();
    let title = text(&stored.doc, app.registry.resource(kind).unique_name());
    render(
        200,
        &ResourcePage {
            chrome: admin.chrome(&title, endpoint(kind)),
            kind: kind.name(),
            tenant,
            id: id.to_string(),
            attributes,
            json: serde_json::to_string_pretty(&rendered).unwrap_or_default(),
            refs_title: match kind {
                ResourceKind::User => "Groups",
                ResourceKind::Group => "Members",
            },
            refs_total: refs.len(),
            refs_first,
            refs: ref_rows,
            refs_previous,
            refs_next,
            audit: audit
                .into_iter()
                .rev()
                .map(|a| AuditRow {
                    at: when(&a.at),
                    actor: format!("{} ({})", a.actor_name, a.via),
                    operation: a.operation,
                    changes: a.changes.to_string(),
                })
                .collect(),
        },
    )
}

/// Every leaf of a rendered resource as (attribute path, value): `name.givenName`,
/// `emails[0].value`, `urn:…:enterprise:2.0:User:manager.value` (an extension's attributes
/// follow its URN after a colon, RFC 7644 §3.10).
fn attribute_paths(resource: &Value, out: &mut Vec<(String, String)>) {
    let Value::Object(map) = resource else {
        return flatten("", resource, out);
    };
    for (key, value) in map {
        match value {
            Value::Object(ext) if key.starts_with("urn:") && !ext.is_empty() => {
                for (attr, v) in ext {
                    flatten(&format!("{key}:{attr}"), v, out);
                }
            }
            _ => flatten(key, value, out),
        }
    }
}

fn flatten(path: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                flatten(&format!("{path}.{k}"), child, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{path}[{i}]"), item, out);
            }
        }
        Value::String(s) => out.push((path.to_string(), s.clone())),
        other => out.push((path.to_string(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leaves_by_attribute_path() {
        let mut out = Vec::new();
        attribute_paths(
            &json!({
                "userName": "a",
                "name": {"givenName": "G"},
                "emails": [{"value": "a@b.c", "primary": true}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                    "manager": {"value": "m1"}, "employeeNumber": "7"
                },
                "x": {}, "y": []
            }),
            &mut out,
        );
        let want = [
            ("emails[0].primary", "true"),
            ("emails[0].value", "a@b.c"),
            ("name.givenName", "G"),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
                "7",
            ),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
                "m1",
            ),
            ("userName", "a"),
            ("x", "{}"),
            ("y", "[]"),
        ];
        let mut got: Vec<(&str, &str)> =
            out.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        got.sort();
        assert_eq!(got, want);
    }
}
