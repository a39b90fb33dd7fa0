//! `scimlite export` / `import`: users and groups as SCIM JSON lines.
//!
//! One resource per line, exactly as the API renders it (`schemas`, `id`, the attributes,
//! `members` / `groups` with their values, `meta` with `created`, `lastModified`, `version`
//! and `resourceType`), plus one member outside SCIM, `"tenant"`. `meta.location` and `$ref`
//! are relative (`/scim/v2/Users/…`): the export does not know the host clients use. Per
//! tenant, Users come before Groups, each in creation order. Passwords are never exported
//! (their hashes stay in the database).

use std::collections::HashMap;
use std::io::{BufRead, Write};

use serde_json::{Map, Value};

use crate::scim::resource::{render, restore_undeclared, take_undeclared, validate};
use crate::scim::schema::Registry;
use crate::scim::ResourceKind;
use crate::store::{ImportOutcome, ImportResource, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("reading the input: {0}")]
    Read(std::io::Error),
    #[error("writing the output: {0}")]
    Write(std::io::Error),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSummary {
    pub users: u64,
    pub groups: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// The member that says which tenant a line belongs to.
pub const TENANT_KEY: &str = "tenant";

/// Writes every resource of `tenant` (or of all tenants) to `out`, one JSON object per line,
/// from one consistent snapshot of the store.
pub fn export(
    store: &dyn Store,
    registry: &Registry,
    tenant: Option<&str>,
    out: &mut dyn Write,
) -> Result<ExportSummary, TransferError> {
    let mut summary = ExportSummary::default();
    let mut each = |tenant: &str, r: &crate::store::StoredResource, refs: &[_]| {
        let rs = registry.resource(r.kind);
        let mut doc = r.doc.clone();
        // Values of extensions no longer declared are exported too: they are stored data, and
        // an import keeps them as the database did.
        let kept = take_undeclared(rs, &mut doc);
        let mut line = render(rs, &r.id, doc, &r.meta, Some(refs), crate::api::BASE_PATH);
        if let Value::Object(obj) = &mut line {
            obj.extend(kept);
            obj.insert(TENANT_KEY.into(), Value::String(tenant.to_string()));
        }
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
        match r.kind {
            ResourceKind::User => summary.users += 1,
            ResourceKind::Group => summary.groups += 1,
        }
        Ok(())
    };
    store.export(tenant, &mut each).map_err(|e| match e {
        StoreError::Output(io) => TransferError::Write(io),
        other => TransferError::Store(other),
    })?;
    out.flush().map_err(TransferError::Write)?;
    Ok(summary)
}

/// Reads lines written by [`export`] and stores them in one transaction: every line is parsed
/// and checked first, then all are stored, or none. Blank lines are skipped.
pub fn import(
    store: &dyn Store,
    registry: &Registry,
    input: &mut dyn BufRead,
) -> Result<ImportSummary, TransferError> {
    let mut batch = Vec::new();
    let mut lines = Vec::new();
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for (i, text) in input.lines().enumerate() {
        let line = i + 1;
        let text = text.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => TransferError::Line {
                line,
                message: "not UTF-8 text".into(),
            },
            _ => TransferError::Read(e),
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let resource =
            parse_line(registry, &text).map_err(|message| TransferError::Line { line, message })?;
        let key = (resource.tenant.clone(), resource.id.clone());
        if let Some(first) = seen.insert(key, line) {
            return Err(TransferError::Line {
                line,
                message: format!(
                    "id \"{}\" of tenant \"{}\" is already on line {first}",
                    resource.id, resource.tenant
                ),
            });
        }
        batch.push(resource);
        lines.push(line);
    }
    let outcomes = store
        .import(&batch, &crate::store::Actor::import())
        .map_err(|failed| match failed.index {
            Some(i) => TransferError::Line {
                line: lines.get(i).copied().unwrap_or_default(),
                message: failed.source.to_string(),
            },
            None => TransferError::Store(failed.source),
        })?;
    let mut summary = ImportSummary::default();
    for o in outcomes {
        match o {
            ImportOutcome::Created => summary.created += 1,
            ImportOutcome::Updated => summary.updated += 1,
            ImportOutcome::Unchanged => summary.unchanged += 1,
        }
    }
    Ok(summary)
}

/// One line: a SCIM resource with `id`, `meta` (`resourceType`, `created`, `lastModified`,
/// `version`) and `tenant`. Read-only attributes (`groups`, member `display` and `$ref`,
/// `meta.location`) are ignored, as the API ignores them.
pub fn parse_line(registry: &Registry, text: &str) -> Result<ImportResource, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(mut obj) = value else {
        return Err("not a JSON object".into());
    };
    let tenant = match obj.remove(TENANT_KEY) {
        Some(Value::String(t)) if !t.trim().is_empty() => {
            // It becomes a URL segment (`/scim/v2/{tenant}`) if the import creates it.
            crate::tenant::validate_name(&t).map_err(|e| format!("\"tenant\": {e}"))?;
            t
        }
        Some(_) => return Err("\"tenant\" must be a non-empty string".into()),
        None => return Err("missing \"tenant\"".into()),
    };
    let id = match obj.get("id") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
        Some(_) => return Err("\"id\" must be a non-empty string".into()),
        None => return Err("missing \"id\"".into()),
    };
    let meta = obj
        .get("meta")
        .and_then(Value::as_object)
        .ok_or("missing \"meta\" object")?;
    let kind = match meta.get("resourceType").and_then(Value::as_str) {
        Some("User") => ResourceKind::User,
        Some("Group") => ResourceKind::Group,
        _ => return Err("\"meta.resourceType\" must be \"User\" or \"Group\"".into()),
    };
    let meta = parse_meta(meta)?;
    if obj.keys().any(|k| k.eq_ignore_ascii_case("password")) {
        return Err("\"password\" is not imported (exports never contain passwords)".into());
    }
    let rs = registry.resource(kind);
    let kept = take_undeclared(rs, &mut obj);
    if let Some(Value::Array(urns)) = obj.get_mut("schemas") {
        // Exported from a server that declared extensions this one does not: their values
        // are kept (above) as the database keeps them, and their URNs are not checked.
        urns.retain(|u| {
            u.as_str()
                .is_none_or(|u| !kept.keys().any(|k| k.eq_ignore_ascii_case(u)))
        });
    }
    let mut valid = validate(rs, Value::Object(obj)).map_err(|e| e.detail)?;
    restore_undeclared(&mut valid.doc, kept);
    Ok(ImportResource {
        tenant,
        kind,
        id,
        doc: valid.doc,
        meta,
        members: valid.members.unwrap_or_default(),
    })
}

fn parse_meta(meta: &Map<String, Value>) -> Result<crate::scim::resource::Meta, String> {
    let time = |name: &str| -> Result<String, String> {
        let s = meta
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("missing \"meta.{name}\""))?;
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map_err(|_| format!("\"meta.{name}\" must be an RFC 3339 dateTime"))?;
        Ok(s.to_string())
    };
    let version = meta
        .get("version")
        .and_then(Value::as_str)
        .and_then(|v| {
            v.trim_start_matches("W/")
                .strip_prefix('"')?
                .strip_suffix('"')?
                .parse::<i64>()
                .ok()
        })
        .filter(|v| *v >= 1)
        .ok_or("\"meta.version\" must be a version as rendered, e.g. W/\"3\"")?;
    Ok(crate::scim::resource::Meta {
        created: time("created")?,
        last_modified: time("lastModified")?,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(v: Value) -> Result<ImportResource, String> {
        parse_line(&Registry::builtin(), &v.to_string())
    }

    #[test]
    fn a_rendered_group_parses_back_with_its_members_and_meta() {
        let r = line(json!({"tenant":"default","schemas":[crate::scim::GROUP_URN],"id":"g1",
            "displayName":"Admins","members":[{"value":"u1","type":"User","display":"x","$ref":"/scim/v2/Users/u1"}],
            "meta":{"resourceType":"Group","created":"2024-01-02T03:04:05.678Z",
                "lastModified":"2024-01-03T03:04:05Z","location":"/scim/v2/Groups/g1","version":"W/\"7\""}}))
        .unwrap();
        assert_eq!(
            (r.kind, r.id.as_str(), r.meta.version),
            (ResourceKind::Group, "g1", 7)
        );
        assert_eq!(r.members.len(), 1);
        assert_eq!(r.members[0].kind, Some(ResourceKind::User));
        assert!(!r.doc.contains_key("meta") && !r.doc.contains_key("id"));
    }

    #[test]
    fn broken_lines_say_what_is_wrong() {
        let ok_meta = json!({"resourceType":"User","created":"2024-01-02T03:04:05Z",
            "lastModified":"2024-01-02T03:04:05Z","version":"W/\"1\""});
        let cases = [
            (json!([1]), "JSON object"),
            (json!({"id":"a","userName":"a","meta":ok_meta}), "tenant"),
            (
                json!({"tenant":"users","id":"a","userName":"a","meta":ok_meta}),
                "SCIM endpoint name",
            ),
            (
                json!({"tenant":"Acme","id":"a","userName":"a","meta":ok_meta}),
                "lower case",
            ),
            (
                json!({"tenant":"t","userName":"a","meta":ok_meta}),
                "\"id\"",
            ),
            (json!({"tenant":"t","id":"a","userName":"a"}), "meta"),
            (
                json!({"tenant":"t","id":"a","userName":"a","password":"p","meta":ok_meta}),
                "password",
            ),
            (
                json!({"tenant":"t","id":"a","userName":"a","bogus":1,"meta":ok_meta}),
                "bogus",
            ),
            (
                json!({"tenant":"t","id":"a","userName":"a","meta":{"resourceType":"User",
                "created":"yesterday","lastModified":"2024-01-02T03:04:05Z","version":"W/\"1\""}}),
                "created",
            ),
            (
                json!({"tenant":"t","id":"a","userName":"a","meta":{"resourceType":"User",
                "created":"2024-01-02T03:04:05Z","lastModified":"2024-01-02T03:04:05Z","version":"3"}}),
                "version",
            ),
        ];
        for (v, needle) in cases {
            let e = line(v.clone()).unwrap_err();
            assert!(e.contains(needle), "{v}: {e}");
        }
        assert!(parse_line(&Registry::builtin(), "{\"tenant\":")
            .unwrap_err()
            .contains("JSON"));
    }
}
