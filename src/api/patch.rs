//! `PATCH /Users/{id}` and `PATCH /Groups/{id}` (RFC 7644 §3.5.2).

use serde_json::Value;

use super::resources::{render, single, Projection};
use super::{check_if_match, App, Ctx};
use crate::auth::hash_secret;
use crate::http::Response;
use crate::scim::patch::{self, OpKind, Operation, PasswordChange, Quirks};
use crate::scim::{ResourceKind, ScimError};
use crate::store::{PasswordUpdate, Refusal, ResourceUpdate, StoreError, StoredResource, UpdateOp};

pub fn patch(app: &App, ctx: &Ctx, kind: ResourceKind, id: &str) -> Result<Response, ScimError> {
    let body = ctx.json_body()?;
    let mut quirks = Quirks::default();
    let parsed = patch::parse(&body, &mut quirks);
    // The inspector shows the steps a request needed, also when it failed after them.
    ctx.note_quirks(quirks.list());
    let ops = parsed?;
    // PBKDF2 is slow on purpose: hash a new password before taking the write lock.
    let prehashed = match last_password(&ops) {
        Some(p) => Some((p.to_string(), hash(app, p)?)),
        None => None,
    };
    let if_match = ctx.req.headers.if_match.clone();
    let mut apply = |current: &StoredResource| -> Result<ResourceUpdate, Refusal> {
        // Checked against the version the write replaces (the store writes over exactly
        // the version it passed here, or calls this again), so nothing can change in between.
        check_if_match(if_match.as_deref(), &current.meta)?;
        let outcome = patch::apply(
            app.registry.resource(kind),
            id,
            &current.doc,
            &ops,
            &mut quirks,
        )?;
        let password = match outcome.password {
            PasswordChange::Keep => PasswordUpdate::Keep,
            PasswordChange::Clear => PasswordUpdate::Clear,
            PasswordChange::Set(p) => match &prehashed {
                Some((plain, hashed)) if *plain == p => PasswordUpdate::Set(hashed.clone()),
                _ => PasswordUpdate::Set(hash(app, &p)?),
            },
        };
        Ok(ResourceUpdate {
            doc: outcome.doc,
            password,
            members: outcome.members,
        })
    };
    let updated = app.store.update(
        &ctx.principal.tenant,
        kind,
        id,
        &ctx.actor(),
        UpdateOp::Patch,
        &mut apply,
    );
    ctx.note_quirks(quirks.list());
    let (stored, changed) = updated.map_err(|e| match e {
        StoreError::NotFound => ScimError::not_found(format!("{} \"{id}\" not found", kind.name())),
        other => other.into(),
    })?;
    app.quirks.record(
        &ctx.principal.token_id,
        &ctx.principal.token_name,
        quirks.list(),
    );
    for q in quirks.list() {
        log::debug!(
            "PATCH {} {id}: accepted the {} dialect step",
            kind.name(),
            q.name()
        );
    }
    if changed {
        log::debug!("patched {} {id}", kind.name());
    }
    let projected = ctx.param("attributes").is_some() || ctx.param("excludedAttributes").is_some();
    // Entra ID documents 204 for a Group PATCH (entra.md Q11); echoing a large group after
    // every membership change is how big groups time out.
    if kind == ResourceKind::Group && !projected && !app.group_patch_returns_resource {
        return Ok(Response::new(204).with_header("ETag", stored.meta.etag()));
    }
    let etag = stored.meta.etag();
    let v = render(app, ctx, stored, &Projection::from(ctx))?;
    Ok(single(200, &v, etag))
}

fn hash(app: &App, password: &str) -> Result<String, ScimError> {
    hash_secret(password.as_bytes(), app.pbkdf2_rounds).map_err(|e| {
        log::error!("password hashing failed: {e}");
        ScimError::internal()
    })
}

/// The last password an add/replace sets, by path or inside a path-less value (Okta's
/// password sync, okta.md §2.4).
fn last_password(ops: &[Operation]) -> Option<&str> {
    let mut found = None;
    for op in ops.iter().filter(|o| o.op != OpKind::Remove) {
        let value = op.value.as_ref();
        let p = match &op.path {
            Some(p) if p.urn.is_none() && p.attr.eq_ignore_ascii_case("password") => {
                value.and_then(Value::as_str)
            }
            None => value.and_then(Value::as_object).and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("password"))
                    .and_then(|(_, v)| v.as_str())
            }),
            _ => None,
        };
        if p.is_some() {
            found = p;
        }
    }
    found
}
