//! The audit log: one row per change, written inside the change's own write transaction (so a
//! change and its entry commit or vanish together), read by `scimlite audit`, pruned after
//! `audit_retention_days`.
//!
//! An entry says when, who (token id and name), how (api, bulk, cli, import), what operation
//! on which resource, and what changed: attribute names (never values, so the log is not a
//! second copy of personal data), the new `active` value, the members added or removed (id,
//! type and userName/displayName at the time) and, for a deleted User, the groups it left.
//! Passwords appear only as the attribute name "password". An entry is indexed by its
//! resource's id (`audit_log_resource`) and, in `audit_subjects`, by every other id it
//! mentions, so "who removed Alice from Finance" is one indexed lookup for Alice's id; a name
//! is turned into ids when reading. Only ids, never names, are indexed: each index entry is a
//! B-tree insert on every write.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};

use super::{SqliteStore, StoreError};
use crate::store::AuditStore;
use crate::store::{Actor, AuditEntry, AuditQuery};

pub(super) use crate::store::shared::{changed_attributes, resource_name, Entry, MemberDelta};

/// The `changes` of a create, replace, patch or import: attribute names, `active` when it
/// changed, "password" when it was set or removed, and the members added or removed.
pub(super) fn resource_changes(
    tx: &Connection,
    tenant: &str,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    password_changed: bool,
    delta: &MemberDelta,
    subjects: &mut Vec<String>,
) -> Result<Map<String, Value>, StoreError> {
    let mut attributes = changed_attributes(old, new);
    if password_changed {
        attributes.push("password".into());
        attributes.sort();
    }
    let mut changes = Map::new();
    if attributes.iter().any(|a| a == "active") {
        if let Some(active) = new.get("active").filter(|v| v.is_boolean()) {
            changes.insert("active".into(), active.clone());
        }
    }
    if !attributes.is_empty() {
        changes.insert("attributes".into(), Value::from(attributes));
    }
    if !delta.is_empty() {
        let mut members = Map::new();
        for (label, ids) in [("added", &delta.added), ("removed", &delta.removed)] {
            if !ids.is_empty() {
                members.insert(label.into(), describe(tx, tenant, ids, subjects)?);
            }
        }
        changes.insert("members".into(), Value::Object(members));
    }
    Ok(changes)
}

/// `[{value, type, name}]` for resources by id, with their names as of now (the write's
/// transaction); each id becomes a subject of the entry.
pub(super) fn describe(
    tx: &Connection,
    tenant: &str,
    ids: &[String],
    subjects: &mut Vec<String>,
) -> Result<Value, StoreError> {
    let mut find = tx.prepare_cached(
        "SELECT kind, CASE kind WHEN 'User' THEN user_name ELSE display_name END
         FROM resources WHERE tenant = ?1 AND id = ?2",
    )?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let found: Option<(String, Option<String>)> = find
            .query_row(params![tenant, id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        subjects.push(id.clone());
        let mut m = Map::new();
        m.insert("value".into(), Value::String(id.clone()));
        if let Some((kind, name)) = found {
            m.insert("type".into(), Value::String(kind));
            if let Some(name) = name {
                m.insert("name".into(), Value::String(name));
            }
        }
        out.push(Value::Object(m));
    }
    Ok(Value::Array(out))
}

/// Appends an entry; runs inside the change's transaction.
pub(super) fn append(tx: &Connection, actor: &Actor, entry: Entry) -> Result<(), StoreError> {
    let changes = super::JsonText::of(&entry.changes)?;
    tx.prepare_cached(
        "INSERT INTO audit_log (at, tenant, actor_id, actor_name, via, operation, resource_type,
                                resource_id, resource_name, changes)
         VALUES (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        entry.tenant,
        actor.token_id,
        actor.name,
        actor.via.as_str(),
        entry.operation,
        entry.resource_type,
        entry.resource_id,
        entry.resource_name,
        changes
    ])?;
    if entry.subjects.is_empty() {
        return Ok(());
    }
    let seq = tx.last_insert_rowid();
    let mut subject =
        tx.prepare_cached("INSERT OR IGNORE INTO audit_subjects (subject, seq) VALUES (?1, ?2)")?;
    // The entry's own resource is found through `audit_log_resource`.
    for s in entry.subjects.iter().filter(|s| *s != entry.resource_id) {
        subject.execute(params![s, seq])?;
    }
    Ok(())
}

/// Most entries one pruning pass deletes, so a long backlog never makes one write slow.
pub(super) const PRUNE_BATCH: i64 = 10_000;

/// Deletes entries older than `days` days, at most [`PRUNE_BATCH`] (the oldest, read in
/// `seq` order, which is time order); returns how many.
pub(super) fn prune(tx: &Connection, days: u32) -> Result<usize, StoreError> {
    let upto: Option<i64> = tx.query_row(
        "SELECT max(seq) FROM (SELECT seq, at FROM audit_log ORDER BY seq LIMIT ?2)
         WHERE at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || ?1 || ' days')",
        params![days, PRUNE_BATCH],
        |r| r.get(0),
    )?;
    let Some(upto) = upto else {
        return Ok(0);
    };
    tx.execute("DELETE FROM audit_subjects WHERE seq <= ?1", [upto])?;
    Ok(tx.execute("DELETE FROM audit_log WHERE seq <= ?1", [upto])?)
}

/// `q.resource` is an id or a name: a current userName, group displayName or token name, or
/// a name the audit log recorded (a deleted or renamed resource), each case-insensitively.
/// Reading is rare (the CLI), so the name lookups may scan; writes stay cheap.
pub(super) fn read(conn: &Connection, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
    let mut stmt = conn.prepare(
        "WITH wanted(id) AS (
             SELECT ?2 WHERE ?2 IS NOT NULL
             UNION SELECT id FROM resources
                   WHERE ?2 IS NOT NULL AND (?1 IS NULL OR tenant = ?1)
                     AND (user_name = ?2 OR display_name = ?2)
             UNION SELECT id FROM tokens WHERE ?2 IS NOT NULL AND name = ?2 COLLATE NOCASE
             UNION SELECT resource_id FROM audit_log
                   WHERE ?2 IS NOT NULL AND resource_name = ?2 COLLATE NOCASE
         )
         SELECT seq, at, tenant, actor_id, actor_name, via, operation, resource_type, resource_id,
                resource_name, changes
         FROM audit_log
         WHERE (?1 IS NULL OR tenant = ?1)
           AND (?2 IS NULL
                OR seq IN (SELECT s.seq FROM audit_subjects s JOIN wanted w ON s.subject = w.id)
                OR seq IN (SELECT a.seq FROM audit_log a JOIN wanted w
                           ON a.resource_id = w.id COLLATE NOCASE))
           AND (?3 IS NULL OR at >= ?3)
         ORDER BY seq DESC LIMIT ?4",
    )?;
    let limit = q.limit.min(i64::MAX as u64) as i64;
    let rows = stmt.query_map(params![q.tenant, q.resource, q.since, limit], |r| {
        Ok((
            AuditEntry {
                seq: r.get(0)?,
                at: r.get(1)?,
                tenant: r.get(2)?,
                actor_id: r.get(3)?,
                actor_name: r.get(4)?,
                via: r.get(5)?,
                operation: r.get(6)?,
                resource_type: r.get(7)?,
                resource_id: r.get(8)?,
                resource_name: r.get(9)?,
                changes: Value::Null,
            },
            r.get::<_, String>(10)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (mut entry, changes) = row?;
        entry.changes = serde_json::from_str(&changes)
            .map_err(|e| StoreError::Corrupt(format!("audit entry {}: {e}", entry.seq)))?;
        out.push(entry);
    }
    out.reverse();
    Ok(out)
}

impl AuditStore for SqliteStore {
    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|conn| read(conn, query))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The store-level audit tests.
    use crate::store::sqlite::test_support::*;

    #[test]
    fn audit_names_actor_and_members_and_old_entries_are_pruned() {
        use crate::store::{AuditQuery, ResourceUpdate, Via};
        let (_d, s) = store();
        let okta = Actor::token("t1", "okta", Via::Api, "txn-1");
        let alice = s
            .create(
                T,
                ResourceKind::User,
                &user("alice"),
                Some("$pbkdf2-sha256$i=1000$salt$hash".into()),
                &okta,
            )
            .unwrap();
        let g = validate(
            REG.resource(ResourceKind::Group),
            json!({"displayName": "Finance", "members": [{"value": alice.id}]}),
        )
        .unwrap();
        let g = s.create(T, ResourceKind::Group, &g, None, &okta).unwrap();
        let mut remove = |cur: &StoredResource| {
            Ok(ResourceUpdate {
                doc: cur.doc.clone(),
                password: PasswordUpdate::Keep,
                members: vec![MemberChange::Remove(vec![alice.id.clone()])],
            })
        };
        s.update(
            T,
            ResourceKind::Group,
            &g.id,
            &okta,
            UpdateOp::Patch,
            &mut remove,
        )
        .unwrap();
        // Removing her again changes nothing and is not audited.
        let (_, changed) = s
            .update(
                T,
                ResourceKind::Group,
                &g.id,
                &okta,
                UpdateOp::Patch,
                &mut remove,
            )
            .unwrap();
        assert!(!changed);
        let q = |resource: &str| AuditQuery {
            resource: Some(resource.into()),
            limit: 100,
            ..Default::default()
        };
        let entries = s.audit(&q("ALICE")).unwrap();
        let ops: Vec<&str> = entries.iter().map(|e| e.operation.as_str()).collect();
        assert_eq!(ops, ["create", "create", "patch"]);
        assert_eq!(s.audit(&q(&alice.id)).unwrap(), entries);
        assert_eq!(s.audit(&q(&alice.id.to_uppercase())).unwrap(), entries);
        // Her own entry is found through the entry's index, the group's through a subject row.
        let subject_rows: Vec<(String, i64)> = {
            let w = s.writer.lock().unwrap();
            let mut st = w
                .conn
                .prepare("SELECT subject, seq FROM audit_subjects ORDER BY seq")
                .unwrap();
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            rows
        };
        assert_eq!(subject_rows, [(alice.id.clone(), 2), (alice.id.clone(), 3)]);
        let removal = &entries[2];
        assert_eq!(
            (
                removal.actor_id.as_deref(),
                removal.actor_name.as_str(),
                removal.via.as_str()
            ),
            (Some("t1"), "okta", "api")
        );
        assert_eq!(removal.resource_name.as_deref(), Some("Finance"));
        assert_eq!(
            removal.changes["members"]["removed"],
            json!([{"value": alice.id, "type": "User", "name": "alice"}])
        );
        assert!(entries[0].changes["attributes"]
            .as_array()
            .unwrap()
            .contains(&json!("password")));
        assert!(!entries[0].changes.to_string().contains("pbkdf2"));

        // Retention: entries older than 30 days go on the next write, with their subjects.
        let s = s.with_audit_retention(Some(30));
        s.writer
            .lock()
            .unwrap()
            .conn
            .execute(
                "UPDATE audit_log SET at = '2000-01-01T00:00:00.000Z' WHERE seq <= 2",
                [],
            )
            .unwrap();
        s.create(T, ResourceKind::User, &user("bob"), None, &A)
            .unwrap();
        let all = s
            .audit(&AuditQuery {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [3, 4]);
        let orphans: i64 = s
            .writer
            .lock()
            .unwrap()
            .conn
            .query_row(
                "SELECT count(*) FROM audit_subjects WHERE seq <= 2",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0);
    }

    #[test]
    fn a_lookup_by_id_uses_the_entries_index() {
        let (_d, s) = store();
        let w = s.writer.lock().unwrap();
        let plan: Vec<String> = w
            .conn
            .prepare(
                "EXPLAIN QUERY PLAN
                 SELECT a.seq FROM audit_log a WHERE a.resource_id = ?1 COLLATE NOCASE",
            )
            .unwrap()
            .query_map(["X"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("audit_log_resource")),
            "{plan:?}"
        );
    }

    /// Entries written before schema 11 indexed their own resource in `audit_subjects` too:
    /// each is still found, once.
    #[test]
    fn entries_from_before_the_resource_index_are_found_once() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("old.db");
        {
            let c = crate::store::sqlite::migrations::create_at_schema_version(&p, 10).unwrap();
            c.execute_batch(
                "INSERT INTO audit_log (seq, at, tenant, actor_name, via, operation,
                     resource_type, resource_id, changes)
                 VALUES (1, '2026-01-01T00:00:00.000Z', 'default', 'okta', 'api', 'create',
                     'User', 'u-1', '{}');
                 INSERT INTO audit_subjects (subject, seq) VALUES ('u-1', 1);",
            )
            .unwrap();
        }
        let s = SqliteStore::open(&p, crate::store::sqlite::Synchronous::Full).unwrap();
        let found = s
            .audit(&crate::store::AuditQuery {
                resource: Some("U-1".into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(found.iter().map(|e| e.seq).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn audit_records_the_net_member_delta_of_replace_clear_and_filters() {
        use crate::scim::resource::MemberInput;
        use crate::store::{AuditQuery, ResourceUpdate};
        let (_d, s) = store();
        let ids: Vec<String> = (0..3)
            .map(|i| {
                s.create(T, ResourceKind::User, &user(&format!("m{i}")), None, &A)
                    .unwrap()
                    .id
            })
            .collect();
        let g = validate(
            REG.resource(ResourceKind::Group),
            json!({"displayName": "g"}),
        )
        .unwrap();
        let g = s.create(T, ResourceKind::Group, &g, None, &A).unwrap();
        let input = |v: &[usize]| -> Vec<MemberInput> {
            v.iter()
                .map(|&i| MemberInput {
                    value: ids[i].clone(),
                    kind: None,
                })
                .collect()
        };
        let run = |changes: Vec<MemberChange>| -> serde_json::Value {
            let mut f = |cur: &StoredResource| {
                Ok(ResourceUpdate {
                    doc: cur.doc.clone(),
                    password: PasswordUpdate::Keep,
                    members: changes.clone(),
                })
            };
            s.update(T, ResourceKind::Group, &g.id, &A, UpdateOp::Replace, &mut f)
                .unwrap();
            let last = s
                .audit(&AuditQuery {
                    limit: 1,
                    ..Default::default()
                })
                .unwrap();
            let members = &last[0].changes["members"];
            let side = |k: &str| -> Vec<String> {
                let mut v: Vec<String> = members[k]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|m| m["name"].as_str().unwrap().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                v.sort();
                v
            };
            json!({"added": side("added"), "removed": side("removed")})
        };
        assert_eq!(
            run(vec![MemberChange::Replace(input(&[0, 1]))]),
            json!({"added": ["m0", "m1"], "removed": []})
        );
        assert_eq!(
            run(vec![MemberChange::Replace(input(&[1, 2]))]),
            json!({"added": ["m2"], "removed": ["m0"]})
        );
        // Removed and added back in one PATCH: the net change is m0 joining.
        assert_eq!(
            run(vec![
                MemberChange::Remove(vec![ids[1].clone()]),
                MemberChange::Add(input(&[1, 0])),
            ]),
            json!({"added": ["m0"], "removed": []})
        );
        let by_name = crate::scim::filter::parse("display eq \"D m2\"").unwrap();
        assert_eq!(
            run(vec![MemberChange::RemoveWhere(by_name)]),
            json!({"added": [], "removed": ["m2"]})
        );
        assert_eq!(
            run(vec![MemberChange::Clear]),
            json!({"added": [], "removed": ["m0", "m1"]})
        );
    }
}
