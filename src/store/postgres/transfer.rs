//! Export and import (`scimlite export` / `import`): reading every resource in one snapshot,
//! and storing resources with the ids, meta and members they carry, so an export of a SQLite
//! database imported here answers the API as the original did (same ids, versions, times).

use serde_json::{Map, Value};

use super::audit::{self, MemberDelta};
use super::connections::Db;
use super::resources::RESOURCE_COLUMNS;
use super::{conflict, doc_param, into_resource, kind_str, references_of, set_members};
use super::{ExportFn, ImportOutcome, ImportResource, StoreError};
use crate::scim::events::Change;
use crate::scim::schema::Registry;
use crate::scim::ResourceKind;
use crate::store::shared::search_columns;
use crate::store::{now_rfc3339, Actor};

/// Runs inside one REPEATABLE READ transaction, so the export is one consistent snapshot even
/// while servers keep writing.
pub(super) fn export(
    db: &mut Db,
    tenant: Option<&str>,
    each: &mut ExportFn<'_>,
) -> Result<(), StoreError> {
    let tenants: Vec<String> = match tenant {
        Some(t) => {
            if !super::tenants::tenant_exists(db, t)? {
                return Err(StoreError::InvalidReference(format!(
                    "no tenant named \"{t}\""
                )));
            }
            vec![t.to_string()]
        }
        None => db
            .query("SELECT name FROM tenants ORDER BY name", &[])?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    };
    for t in &tenants {
        // Users first, then Groups, each in creation order: a fresh database that imports
        // them in this order lists them, and their members, in the same order.
        for kind in [ResourceKind::User, ResourceKind::Group] {
            let rows = db.query(
                &format!(
                    "SELECT pk, {RESOURCE_COLUMNS} FROM resources WHERE tenant = $1 AND kind = $2 ORDER BY pk"
                ),
                &[t, &kind_str(kind)],
            )?;
            for row in rows {
                let pk: i64 = row.get(0);
                let resource = into_resource(&row, 1)?;
                let refs = references_of(db, kind, pk)?;
                each(t, &resource, &refs)?;
            }
        }
    }
    Ok(())
}

/// Runs inside one write transaction. First every resource's row (so Groups may name members
/// that come later in the batch), then every Group's members, then one audit entry per
/// resource created or changed. `failed_at` names the resource an error came from.
pub(super) fn import(
    db: &mut Db,
    registry: &Registry,
    batch: &[ImportResource],
    actor: &Actor,
    failed_at: &mut Option<usize>,
) -> Result<Vec<ImportOutcome>, StoreError> {
    super::events::hold_for_appends(db)?;
    let now = now_rfc3339();
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut pks = Vec::with_capacity(batch.len());
    let mut old_docs = Vec::with_capacity(batch.len());
    for (i, item) in batch.iter().enumerate() {
        *failed_at = Some(i);
        let (pk, outcome, old_doc) = upsert(db, item, &now)?;
        if outcome != ImportOutcome::Unchanged {
            super::unique::index(db, registry, &item.tenant, item.kind, pk, &item.doc)?;
        }
        pks.push(pk);
        outcomes.push(outcome);
        old_docs.push(old_doc);
    }
    let mut deltas = vec![MemberDelta::default(); batch.len()];
    for (i, item) in batch.iter().enumerate() {
        if item.kind != ResourceKind::Group {
            continue;
        }
        *failed_at = Some(i);
        let changed = set_members(
            db,
            &item.tenant,
            pks[i],
            &item.id,
            &item.members,
            &mut deltas[i],
        )?;
        if changed > 0 && outcomes[i] == ImportOutcome::Unchanged {
            outcomes[i] = ImportOutcome::Updated;
        }
    }
    for (i, item) in batch.iter().enumerate() {
        if outcomes[i] == ImportOutcome::Unchanged {
            continue;
        }
        *failed_at = Some(i);
        let old = old_docs[i].take().unwrap_or_default();
        let mut subjects = Vec::new();
        let changes = audit::resource_changes(
            db,
            &item.tenant,
            &old,
            &item.doc,
            false,
            &std::mem::take(&mut deltas[i]).net(),
            &mut subjects,
        )?;
        audit::append(
            db,
            actor,
            audit::Entry {
                tenant: &item.tenant,
                operation: "import",
                resource_type: item.kind.name(),
                resource_id: &item.id,
                resource_name: audit::resource_name(registry.resource(item.kind), &item.doc),
                changes,
                subjects,
            },
        )?;
        // An imported resource is created or replaced, as its event says.
        let refs = match item.kind {
            ResourceKind::Group => Some(references_of(db, item.kind, pks[i])?),
            ResourceKind::User => None,
        };
        let change = match outcomes[i] {
            ImportOutcome::Created => Change::created(&item.doc, &item.meta, refs.as_deref()),
            _ => Change::replaced(&old, &item.doc, &item.meta, refs.as_deref()),
        };
        super::events::append(db, actor, &item.tenant, item.kind, &item.id, change, None)?;
    }
    *failed_at = None;
    Ok(outcomes)
}

/// A resource's pk, what importing it did, and its document before (if it existed).
type Upserted = (i64, ImportOutcome, Option<Map<String, Value>>);

/// Inserts or overwrites one resource's row; returns its pk, whether anything changed
/// (members aside) and, for an existing resource, its document before.
fn upsert(db: &mut Db, item: &ImportResource, now: &str) -> Result<Upserted, StoreError> {
    if item.kind == ResourceKind::User && !item.members.is_empty() {
        return Err(StoreError::InvalidReference("a User has no members".into()));
    }
    db.execute(
        "INSERT INTO tenants (name, created) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&item.tenant, &now],
    )?;
    let c = search_columns(item.kind, &item.doc);
    let existing = db.query_opt(
        &format!(
            "SELECT pk, {RESOURCE_COLUMNS} FROM resources WHERE tenant = $1 AND id = $2 FOR NO KEY UPDATE"
        ),
        &[&item.tenant, &item.id],
    )?;
    let Some(row) = existing else {
        // Passwords are never exported, so an imported User has none until its IdP sets one.
        let pk: i64 = db
            .query_one(
                "INSERT INTO resources (tenant, kind, id, user_name, display_name, external_id, name_key, doc, password_hash, created, last_modified, version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10, $11) RETURNING pk",
                &[
                    &item.tenant,
                    &kind_str(item.kind),
                    &item.id,
                    &c.user_name,
                    &c.display_name,
                    &c.external_id,
                    &c.name_key,
                    &doc_param(&item.doc),
                    &item.meta.created,
                    &item.meta.last_modified,
                    &item.meta.version,
                ],
            )
            .map_err(conflict(item.kind, &item.doc))?
            .get(0);
        return Ok((pk, ImportOutcome::Created, None));
    };
    let pk: i64 = row.get(0);
    let old = into_resource(&row, 1)?;
    if old.kind != item.kind {
        return Err(StoreError::InvalidReference(format!(
            "id \"{}\" is a {} in the database, not a {}",
            item.id,
            old.kind.name(),
            item.kind.name()
        )));
    }
    if old.doc == item.doc && old.meta == item.meta {
        return Ok((pk, ImportOutcome::Unchanged, Some(old.doc)));
    }
    // The password hash stays: the export never carries it.
    db.execute(
        "UPDATE resources SET user_name = $1, display_name = $2, external_id = $3, name_key = $4,
         doc = $5, created = $6, last_modified = $7, version = $8 WHERE pk = $9",
        &[
            &c.user_name,
            &c.display_name,
            &c.external_id,
            &c.name_key,
            &doc_param(&item.doc),
            &item.meta.created,
            &item.meta.last_modified,
            &item.meta.version,
            &pk,
        ],
    )
    .map_err(conflict(item.kind, &item.doc))?;
    Ok((pk, ImportOutcome::Updated, Some(old.doc)))
}
