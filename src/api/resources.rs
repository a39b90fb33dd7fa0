//! `/Users` and `/Groups`: create, read, list, replace, delete.

use serde_json::Value;

use super::{check_if_match, etag_listed, App, Ctx};
use crate::auth::hash_secret;
use crate::http::Response;
use crate::scim::list::ListQuery;
use crate::scim::resource::{self, Reference, ValidResource};
use crate::scim::{ResourceKind, ScimError};
use crate::store::{
    MemberChange, PasswordUpdate, Refusal, ResourceUpdate, StoreError, StoredResource, UpdateOp,
};

pub(super) use crate::scim::projection::Projection;

/// The `attributes` / `excludedAttributes` query parameters of any request that returns a
/// resource (GET, POST, PUT).
impl From<&Ctx<'_>> for Projection {
    fn from(ctx: &Ctx) -> Projection {
        Projection::from_params(ctx.param("attributes"), ctx.param("excludedAttributes"))
    }
}

/// Renders and projects a stored resource. The membership table is read only when the
/// projection keeps `members` / `groups` (Entra reads groups with
/// `excludedAttributes=members`, entra.md Q7; a big group's members are the expensive part).
pub(super) fn render(
    app: &App,
    ctx: &Ctx,
    r: StoredResource,
    proj: &Projection,
) -> Result<Value, ScimError> {
    render_with(app, ctx, r, proj, None)
}

/// [`render`] for a page of resources: the references of every resource whose projection
/// keeps them are read together, one read per kind on the page instead of one per resource.
pub(super) fn render_page(
    app: &App,
    ctx: &Ctx,
    rows: Vec<StoredResource>,
    proj: &Projection,
) -> Result<Vec<Value>, ScimError> {
    let mut known: Vec<Option<Vec<Reference>>> = rows.iter().map(|_| None).collect();
    for kind in [ResourceKind::User, ResourceKind::Group] {
        if !proj.returns(
            app.registry.resource(kind),
            resource::references_attribute(kind),
        ) {
            continue;
        }
        let at: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].kind == kind).collect();
        if at.is_empty() {
            continue;
        }
        let ids: Vec<&str> = at.iter().map(|&i| rows[i].id.as_str()).collect();
        let refs = app
            .store
            .references_of_each(&ctx.principal.tenant, kind, &ids)?;
        for (i, r) in at.into_iter().zip(refs) {
            known[i] = Some(r);
        }
    }
    rows.into_iter()
        .zip(known)
        .map(|(r, known)| render_with(app, ctx, r, proj, known))
        .collect()
}

/// [`render`], with the resource's references (`groups`, `members`) already known when
/// `known` is given, so they are not read again.
pub(super) fn render_with(
    app: &App,
    ctx: &Ctx,
    r: StoredResource,
    proj: &Projection,
    known: Option<Vec<Reference>>,
) -> Result<Value, ScimError> {
    let refs_name = resource::references_attribute(r.kind);
    let rs = app.registry.resource(r.kind);
    let refs = if proj.returns(rs, refs_name) {
        Some(match known {
            Some(refs) => refs,
            None => app.store.references(&ctx.principal.tenant, r.kind, &r.id)?,
        })
    } else {
        None
    };
    let v = resource::render(rs, &r.id, r.doc, &r.meta, refs.as_deref(), &ctx.base);
    Ok(proj.apply(rs, v))
}

/// A single resource's response, with the ETag of its version.
pub(super) fn single(status: u16, v: &Value, etag: String) -> Response {
    Response::json(status, v).with_header("ETag", etag)
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
    let res = resource::validate(app.registry.resource(kind), body)?;
    let password_hash = hash_password(app, &res)?;
    let created = app.store.create(
        &ctx.principal.tenant,
        kind,
        &res,
        password_hash,
        &ctx.actor(),
    )?;
    // The stored document is the validated one: moved here, not copied by the store.
    let stored = StoredResource {
        id: created.id,
        kind,
        doc: res.doc,
        meta: created.meta,
    };
    // At debug: the access line already names the new resource (its `location=`).
    log::debug!("created {} {}", kind.name(), stored.id);
    // A user this request created is in no group yet (memberships name existing
    // resources), so its `groups` need no read: that read was 3-5% of the server's CPU in
    // an initial sync (perf, issue 22).
    let known = (kind == ResourceKind::User).then(Vec::new);
    let location = format!("{}/{}/{}", ctx.base, kind.endpoint(), stored.id);
    let etag = stored.meta.etag();
    let v = render_with(app, ctx, stored, &Projection::from(ctx), known)?;
    Ok(single(201, &v, etag).with_header("Location", location))
}

pub fn get(app: &App, ctx: &Ctx, kind: ResourceKind, id: &str) -> Result<Response, ScimError> {
    let proj = Projection::from(ctx);
    // The resource and its `groups`/`members` (when the answer shows them) in one read.
    let references = proj.returns(
        app.registry.resource(kind),
        resource::references_attribute(kind),
    );
    let tenant = &ctx.principal.tenant;
    let found = match references {
        true => app
            .store
            .get_with_references(tenant, kind, id)?
            .map(|(r, refs)| (r, Some(refs))),
        false => app.store.get(tenant, kind, id)?.map(|r| (r, None)),
    };
    let (stored, refs) =
        found.ok_or_else(|| ScimError::not_found(format!("{} \"{id}\" not found", kind.name())))?;
    // RFC 7644 §3.14: a client holding the current version gets 304 and no body.
    if let Some(h) = &ctx.req.headers.if_none_match {
        if etag_listed(h, &stored.meta) {
            return Ok(Response::new(304).with_header("ETag", stored.meta.etag()));
        }
    }
    let etag = stored.meta.etag();
    let v = render_with(app, ctx, stored, &proj, refs)?;
    Ok(single(200, &v, etag))
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
    let rs = app.registry.resource(kind);
    let res = resource::validate(rs, body)?;
    let password = match hash_password(app, &res)? {
        Some(h) => PasswordUpdate::Set(h),
        None => PasswordUpdate::Keep,
    };
    let if_match = ctx.req.headers.if_match.clone();
    let mut apply = |current: &StoredResource| -> Result<ResourceUpdate, Refusal> {
        check_if_match(if_match.as_deref(), &current.meta)?;
        let mut old = current.doc.clone();
        let kept = resource::take_undeclared(rs, &mut old);
        resource::check_immutable_kept(rs, &old, &res.doc)?;
        let mut doc = res.doc.clone();
        // Values of extensions no longer declared stay stored, untouched by a replace.
        resource::restore_undeclared(&mut doc, kept);
        Ok(ResourceUpdate {
            doc,
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
        .update(
            &ctx.principal.tenant,
            kind,
            id,
            &ctx.actor(),
            UpdateOp::Replace,
            &mut apply,
        )
        .map_err(|e| match e {
            StoreError::NotFound => {
                ScimError::not_found(format!("{} \"{id}\" not found", kind.name()))
            }
            other => other.into(),
        })?;
    let etag = stored.meta.etag();
    let v = render(app, ctx, stored, &Projection::from(ctx))?;
    Ok(single(200, &v, etag))
}

pub fn delete(app: &App, ctx: &Ctx, kind: ResourceKind, id: &str) -> Result<Response, ScimError> {
    let if_match = ctx.req.headers.if_match.clone();
    app.store
        .delete(&ctx.principal.tenant, kind, id, &ctx.actor(), &mut |meta| {
            check_if_match(if_match.as_deref(), meta).map_err(Refusal::from)
        })
        .map_err(|e| match e {
            StoreError::NotFound => {
                ScimError::not_found(format!("{} \"{id}\" not found", kind.name()))
            }
            other => other.into(),
        })?;
    log::debug!("deleted {} {id}", kind.name());
    Ok(Response::new(204))
}

pub fn list(app: &App, ctx: &Ctx, kind: ResourceKind) -> Result<Response, ScimError> {
    let query = ListQuery::from_params(|name| ctx.param(name), app.max_page_size)?;
    super::search::run(app, ctx, &[kind], &query)
}
