//! `/Users` and `/Groups`: create, read, list, replace, delete.

use serde_json::Value;

use super::{check_if_match, etag_listed, App, Ctx};
use crate::auth::hash_secret;
use crate::http::Response;
use crate::scim::resource::{self, ValidResource};
use crate::scim::{filter, list, ResourceKind, ScimError};
use crate::store::{MemberChange, PasswordUpdate, ResourceUpdate, StoreError, StoredResource};

/// Top-level attribute names from `attributes` / `excludedAttributes`. Sub-attribute and
/// extension projection come with the query-engine issue; here a dotted name projects its
/// top-level attribute.
pub(super) struct Projection {
    attributes: Option<Vec<String>>,
    excluded: Vec<String>,
}

impl Projection {
    pub(super) fn from(ctx: &Ctx) -> Projection {
        let names = |v: &str| -> Vec<String> {
            v.split(',')
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(|s| s.split('.').next().unwrap_or(s).to_ascii_lowercase())
                .collect()
        };
        Projection {
            attributes: ctx.param("attributes").map(names).filter(|v| !v.is_empty()),
            excluded: ctx
                .param("excludedAttributes")
                .map(names)
                .unwrap_or_default(),
        }
    }

    fn wants(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        // returned "always" (RFC 7643 §7): never projected away.
        if ["id", "schemas", "meta"].contains(&lower.as_str()) {
            return true;
        }
        match &self.attributes {
            Some(list) => list.contains(&lower),
            None => !self.excluded.contains(&lower),
        }
    }

    fn apply(&self, mut v: Value) -> Value {
        if let Value::Object(map) = &mut v {
            map.retain(|k, _| self.wants(k));
        }
        v
    }
}

/// Renders a stored resource; the membership table is read only when the projection keeps
/// `members` / `groups` (Entra reads groups with `excludedAttributes=members`, entra.md Q7).
pub(super) fn render(
    app: &App,
    ctx: &Ctx,
    r: &StoredResource,
    proj: &Projection,
) -> Result<Value, ScimError> {
    let refs_name = match r.kind {
        ResourceKind::User => "groups",
        ResourceKind::Group => "members",
    };
    let refs = if proj.wants(refs_name) {
        Some(app.store.references(&ctx.principal.tenant, r.kind, &r.id)?)
    } else {
        None
    };
    let v = resource::render(r.kind, &r.id, &r.doc, &r.meta, refs.as_deref(), &ctx.base);
    Ok(proj.apply(v))
}

pub(super) fn single(status: u16, v: &Value, r: &StoredResource) -> Response {
    Response::json(status, v).with_header("ETag", r.meta.etag())
}

fn hash_password(app: &App, res: &ValidResource) -> Result<Option<String>, ScimError> {
    res.password
        .as_ref()
        .map(|p| {
            hash_secret(p.as_bytes(), app.pbkdf2_rounds).map_err(|e| {
                log::error!("password hashing failed: {e}");
                ScimError::internal()
            })
        })
        .transpose()
}

pub fn create(app: &App, ctx: &Ctx, kind: ResourceKind) -> Result<Response, ScimError> {
    let body = ctx.json_body()?;
    let res = resource::validate(kind, &body)?;
    let password_hash = hash_password(app, &res)?;
    let stored = app
        .store
        .create(&ctx.principal.tenant, kind, &res, password_hash)?;
    log::info!("created {} {}", kind.name(), stored.id);
    let v = render(app, ctx, &stored, &Projection::from(ctx))?;
    let location = format!("{}/{}/{}", ctx.base, kind.endpoint(), stored.id);
    Ok(single(201, &v, &stored).with_header("Location", location))
}

pub fn get(app: &App, ctx: &Ctx, kind: ResourceKind, id: &str) -> Result<Response, ScimError> {
    let stored = app
        .store
        .get(&ctx.principal.tenant, kind, id)?
        .ok_or_else(|| ScimError::not_found(format!("{} \"{id}\" not found", kind.name())))?;
    // RFC 7644 §3.14: a client holding the current version gets 304 and no body.
    if let Some(h) = &ctx.req.headers.if_none_match {
        if etag_listed(h, &stored.meta) {
            return Ok(Response::new(304).with_header("ETag", stored.meta.etag()));
        }
    }
    let v = render(app, ctx, &stored, &Projection::from(ctx))?;
    Ok(single(200, &v, &stored))
}

pub fn replace(app: &App, ctx: &Ctx, kind: ResourceKind, id: &str) -> Result<Response, ScimError> {
    let body = ctx.json_body()?;
    // RFC 7644 §3.5.1: `id` in the body is read-only; a different one is a client mistake.
    if let Some(body_id) = body.get("id").and_then(Value::as_str) {
        if body_id != id {
            return Err(ScimError::bad_request(
                crate::scim::ScimType::Mutability,
                format!("the body's id \"{body_id}\" differs from the URL's \"{id}\""),
            ));
        }
    }
    let res = resource::validate(kind, &body)?;
    let password = match hash_password(app, &res)? {
        Some(h) => PasswordUpdate::Set(h),
        None => PasswordUpdate::Keep,
    };
    let if_match = ctx.req.headers.if_match.clone();
    let mut apply = |current: &StoredResource| -> Result<ResourceUpdate, ScimError> {
        check_if_match(if_match.as_deref(), &current.meta)?;
        Ok(ResourceUpdate {
            doc: res.doc.clone(),
            password: password.clone(),
            // A full replace: a Group PUT without `members` has none (RFC 7644 §3.5.1).
            members: match kind {
                ResourceKind::Group => vec![MemberChange::Replace(
                    res.members.clone().unwrap_or_default(),
                )],
                ResourceKind::User => Vec::new(),
            },
        })
    };
    let (stored, _) = app
        .store
        .update(&ctx.principal.tenant, kind, id, &mut apply)
        .map_err(|e| match e {
            StoreError::NotFound => {
                ScimError::not_found(format!("{} \"{id}\" not found", kind.name()))
            }
            other => other.into(),
        })?;
    let v = render(app, ctx, &stored, &Projection::from(ctx))?;
    Ok(single(200, &v, &stored))
}

pub fn delete(app: &App, ctx: &Ctx, kind: ResourceKind, id: &str) -> Result<Response, ScimError> {
    let if_match = ctx.req.headers.if_match.clone();
    app.store
        .delete(&ctx.principal.tenant, kind, id, &mut |meta| {
            check_if_match(if_match.as_deref(), meta)
        })
        .map_err(|e| match e {
            StoreError::NotFound => {
                ScimError::not_found(format!("{} \"{id}\" not found", kind.name()))
            }
            other => other.into(),
        })?;
    log::info!("deleted {} {id}", kind.name());
    Ok(Response::new(204))
}

pub fn list(app: &App, ctx: &Ctx, kind: ResourceKind) -> Result<Response, ScimError> {
    let filter = ctx
        .param("filter")
        .filter(|f| !f.trim().is_empty())
        .map(filter::parse)
        .transpose()?;
    let page = list::Page::parse(
        ctx.param("startIndex"),
        ctx.param("count"),
        app.max_page_size,
    )?;
    let (total, rows) = app
        .store
        .list(&ctx.principal.tenant, kind, filter.as_ref(), page)?;
    let proj = Projection::from(ctx);
    let resources = rows
        .iter()
        .map(|r| render(app, ctx, r, &proj))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Response::json(
        200,
        &list::list_response(total, page.start_index, resources),
    ))
}
