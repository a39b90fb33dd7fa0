//! Export and import (`scimlite export` / `import`): reading every resource in one snapshot,
//! and storing resources with the ids, meta and members they carry.

use rusqlite::{params, Connection, OptionalExtension};

use serde_json::{Map, Value};

use super::audit::{self, MemberDelta};
use super::{conflict, into_resource, kind_str, references_of, search_columns, set_members};
use super::{ExportFn, ImportOutcome, ImportResource, StoreError};
use crate::scim::events::Change;
use crate::scim::resource::Meta;
use crate::scim::schema::Registry;
use crate::scim::ResourceKind;
use crate::store::now_rfc3339;
use crate::store::Actor;

/// Runs inside one read transaction, so the export is one consistent snapshot even while a
/// server keeps writing.
pub(super) fn export(
    conn: &Connection,
    tenant: Option<&str>,
    each: &mut ExportFn<'_>,
) -> Result<(), StoreError> {
    let tenants: Vec<String> = match tenant {
        Some(t) => {
            let known: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM tenants WHERE name = ?1)",
                [t],
                |r| r.get(0),
            )?;
            if !known {
                return Err(StoreError::InvalidReference(format!(
                    "no tenant named \"{t}\""
                )));
            }
            vec![t.to_string()]
        }
        None => {
            let mut stmt = conn.prepare("SELECT name FROM tenants ORDER BY name")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        }
    };
    let mut stmt = conn.prepare(
        "SELECT pk, id, kind, doc, created, last_modified, version FROM resources
         WHERE tenant = ?1 AND kind = ?2 ORDER BY pk",
    )?;
    for t in &tenants {
        // Users first, then Groups, each in creation order: a fresh database that imports
        // them in this order lists them, and their members, in the same order.
        for kind in [ResourceKind::User, ResourceKind::Group] {
            let mut rows = stmt.query(params![t, kind_str(kind)])?;
            while let Some(row) = rows.next()? {
                let pk: i64 = row.get(0)?;
                let resource = into_resource((
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    Meta {
                        created: row.get(4)?,
                        last_modified: row.get(5)?,
                        version: row.get(6)?,
                    },
                ))?;
                let refs = references_of(conn, kind, pk)?;
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
    tx: &Connection,
    registry: &Registry,
    batch: &[ImportResource],
    actor: &Actor,
    failed_at: &mut Option<usize>,
) -> Result<Vec<ImportOutcome>, StoreError> {
    let now = now_rfc3339();
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut pks = Vec::with_capacity(batch.len());
    let mut old_docs = Vec::with_capacity(batch.len());
    for (i, item) in batch.iter().enumerate() {
        *failed_at = Some(i);
        let (pk, outcome, old_doc) = upsert(tx, item, &now)?;
        if outcome != ImportOutcome::Unchanged {
            super::unique::index(tx, registry, &item.tenant, item.kind, pk, &item.doc)?;
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
            tx,
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
        let old: Map<String, Value> = match &old_docs[i] {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| StoreError::Corrupt(format!("document of {}: {e}", item.id)))?,
            None => Map::new(),
        };
        let mut subjects = Vec::new();
        let changes = audit::resource_changes(
            tx,
            &item.tenant,
            &old,
            &item.doc,
            false,
            &std::mem::take(&mut deltas[i]).net(),
            &mut subjects,
        )?;
        audit::append(
            tx,
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
            ResourceKind::Group => Some(references_of(tx, item.kind, pks[i])?),
            ResourceKind::User => None,
        };
        let change = match &old_docs[i] {
            None => Change::created(&item.doc, &item.meta, refs.as_deref()),
            Some(_) => Change::replaced(&old, &item.doc, &item.meta, refs.as_deref()),
        };
        super::events::append(tx, actor, &item.tenant, item.kind, &item.id, change, None)?;
    }
    *failed_at = None;
    Ok(outcomes)
}

/// Inserts or overwrites one resource's row; returns its pk, whether anything changed
/// (members aside) and, for an existing resource, its document before.
fn upsert(
    tx: &Connection,
    item: &ImportResource,
    now: &str,
) -> Result<(i64, ImportOutcome, Option<String>), StoreError> {
    if item.kind == ResourceKind::User && !item.members.is_empty() {
        return Err(StoreError::InvalidReference("a User has no members".into()));
    }
    tx.execute(
        "INSERT OR IGNORE INTO tenants (name, created) VALUES (?1, ?2)",
        params![item.tenant, now],
    )?;
    let doc_text =
        serde_json::to_string(&item.doc).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let c = search_columns(item.kind, &item.doc);
    let existing: Option<(i64, String, String, Meta)> = tx
        .query_row(
            "SELECT pk, kind, doc, created, last_modified, version FROM resources
             WHERE tenant = ?1 AND id = ?2",
            params![item.tenant, item.id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    Meta {
                        created: r.get(3)?,
                        last_modified: r.get(4)?,
                        version: r.get(5)?,
                    },
                ))
            },
        )
        .optional()?;
    match existing {
        None => {
            // Passwords are never exported, so an imported User has none until its IdP sets one.
            tx.execute(
                "INSERT INTO resources (tenant, kind, id, user_name, display_name, external_id, name_key, doc, password_hash, created, last_modified, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9, ?10, ?11)",
                params![
                    item.tenant,
                    kind_str(item.kind),
                    item.id,
                    c.user_name,
                    c.display_name,
                    c.external_id,
                    c.name_key,
                    doc_text,
                    item.meta.created,
                    item.meta.last_modified,
                    item.meta.version
                ],
            )
            .map_err(conflict(item.kind, &item.doc))?;
            Ok((tx.last_insert_rowid(), ImportOutcome::Created, None))
        }
        Some((_, kind, _, _)) if kind != kind_str(item.kind) => {
            Err(StoreError::InvalidReference(format!(
                "id \"{}\" is a {kind} in the database, not a {}",
                item.id,
                item.kind.name()
            )))
        }
        Some((pk, _, old_doc, old_meta)) => {
            if old_doc == doc_text && old_meta == item.meta {
                return Ok((pk, ImportOutcome::Unchanged, Some(old_doc)));
            }
            // The password hash stays: the export never carries it.
            tx.execute(
                "UPDATE resources SET user_name = ?1, display_name = ?2, external_id = ?3, name_key = ?4,
                 doc = ?5, created = ?6, last_modified = ?7, version = ?8 WHERE pk = ?9",
                params![
                    c.user_name,
                    c.display_name,
                    c.external_id,
                    c.name_key,
                    doc_text,
                    item.meta.created,
                    item.meta.last_modified,
                    item.meta.version,
                    pk
                ],
            )
            .map_err(conflict(item.kind, &item.doc))?;
            Ok((pk, ImportOutcome::Updated, Some(old_doc)))
        }
    }
}
