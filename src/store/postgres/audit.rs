//! The audit log (see `sqlite/audit.rs` for what an entry holds): one row per change, written
//! inside the change's own transaction, read by `scimlite audit`, pruned after
//! `audit_retention_days`.

use std::collections::HashMap;
use std::sync::LazyLock;

use postgres::types::{Json, ToSql};
use serde_json::{Map, Value};

use super::connections::{placeholders, Db};
use super::{PostgresStore, StoreError};
use crate::store::AuditStore;
use crate::store::{Actor, AuditEntry, AuditQuery};

pub(super) use crate::store::shared::{changed_attributes, resource_name, Entry, MemberDelta};

/// The `changes` of a create, replace, patch or import: attribute names, `active` when it
/// changed, "password" when it was set or removed, and the members added or removed.
pub(super) fn resource_changes(
    db: &mut Db,
    tenant: &str,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    password_changed: bool,
    delta: &MemberDelta,
    subjects: &mut Vec<String>,
) -> Result<Map<String, Value>, StoreError> {
    let mut changes = attribute_changes(old, new, password_changed);
    if !delta.is_empty() {
        let mut members = Map::new();
        for (label, ids) in [("added", &delta.added), ("removed", &delta.removed)] {
            if !ids.is_empty() {
                members.insert(label.into(), describe(db, tenant, ids, subjects)?);
            }
        }
        changes.insert("members".into(), Value::Object(members));
    }
    Ok(changes)
}

/// The `changes` of a write that changes no members: [`resource_changes`] without a read.
pub(super) fn attribute_changes(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    password_changed: bool,
) -> Map<String, Value> {
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
    changes
}

/// `[{value, type, name}]` for resources by id, with their names as of now (the write's
/// transaction), in one statement; each id becomes a subject of the entry.
pub(super) fn describe(
    db: &mut Db,
    tenant: &str,
    ids: &[String],
    subjects: &mut Vec<String>,
) -> Result<Value, StoreError> {
    let found: HashMap<String, (String, Option<String>)> = if ids.is_empty() {
        HashMap::new()
    } else {
        db.query(
            "SELECT id, kind, CASE kind WHEN 'User' THEN user_name ELSE display_name END
             FROM resources WHERE tenant = $1 AND id = ANY($2)",
            &[&tenant, &ids],
        )?
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
    };
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        subjects.push(id.clone());
        let mut m = Map::new();
        m.insert("value".into(), Value::String(id.clone()));
        if let Some((kind, name)) = found.get(id) {
            m.insert("type".into(), Value::String(kind.clone()));
            if let Some(name) = name {
                m.insert("name".into(), Value::String(name.clone()));
            }
        }
        out.push(Value::Object(m));
    }
    Ok(Value::Array(out))
}

/// Appends an entry; runs inside the change's transaction. `at` is the time of the write
/// (UTC, three fraction digits), as SQLite's `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`.
pub(super) fn append(db: &mut Db, actor: &Actor, entry: Entry) -> Result<(), StoreError> {
    static APPEND: LazyLock<String> =
        LazyLock::new(|| format!("{} RETURNING seq", insert_sql(1, None)));
    let (row, subjects) = EntryRow::of(actor, entry);
    let seq: i64 = db.query_one(&APPEND, &row.params())?.get(0);
    // The entry's own resource is found through `audit_log_resource`; the others, however
    // many (a 100-member PATCH), in one statement.
    let others: Vec<&str> = subjects
        .iter()
        .map(String::as_str)
        .filter(|s| *s != row.resource_id)
        .collect();
    if !others.is_empty() {
        db.execute(
            "INSERT INTO audit_subjects (subject, seq) SELECT unnest($1::text[]), $2
             ON CONFLICT DO NOTHING",
            &[&others, &seq],
        )?;
    }
    Ok(())
}

/// The INSERT of an entry's row, its parameters numbered from `$first` in the order of
/// [`EntryRow::params`]: [`append`] sends it alone, a User's create or update sends it with
/// the User's row and its event as one statement (`resources.rs`). With `from` (a WITH
/// query of that statement) the entry is written once per row `from` returns: only if the
/// write it records happened.
pub(super) fn insert_sql(first: usize, from: Option<&str>) -> String {
    format!(
        "INSERT INTO audit_log (at, tenant, actor_id, actor_name, via, operation, resource_type,
                                resource_id, resource_name, changes)
         SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), {}{}",
        placeholders(first, ENTRY_PARAMS),
        from.map(|f| format!(" FROM {f}")).unwrap_or_default()
    )
}

/// The parameters of [`insert_sql`].
pub(super) const ENTRY_PARAMS: usize = 9;

/// An entry's row in `audit_log` (its subjects are rows of `audit_subjects`).
pub(super) struct EntryRow<'a> {
    tenant: &'a str,
    actor: &'a Actor,
    via: &'static str,
    operation: &'a str,
    resource_type: &'a str,
    resource_id: &'a str,
    resource_name: Option<&'a str>,
    changes: Json<Value>,
}

impl<'a> EntryRow<'a> {
    /// The entry's row, and its subjects.
    pub(super) fn of(actor: &'a Actor, entry: Entry<'a>) -> (EntryRow<'a>, Vec<String>) {
        let row = EntryRow {
            tenant: entry.tenant,
            actor,
            via: actor.via.as_str(),
            operation: entry.operation,
            resource_type: entry.resource_type,
            resource_id: entry.resource_id,
            resource_name: entry.resource_name,
            changes: Json(Value::Object(entry.changes)),
        };
        (row, entry.subjects)
    }

    /// The values of [`insert_sql`]'s parameters, in order.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); ENTRY_PARAMS] {
        [
            &self.tenant,
            &self.actor.token_id,
            &self.actor.name,
            &self.via,
            &self.operation,
            &self.resource_type,
            &self.resource_id,
            &self.resource_name,
            &self.changes,
        ]
    }
}

/// Most entries one pruning pass deletes, so a long backlog never makes one write slow.
pub(super) const PRUNE_BATCH: i64 = 10_000;

/// Deletes entries older than `days` days, at most [`PRUNE_BATCH`] (the oldest by `seq`);
/// returns how many.
pub(super) fn prune(db: &mut Db, days: u32) -> Result<u64, StoreError> {
    let days = i32::try_from(days).unwrap_or(i32::MAX);
    let upto: Option<i64> = db
        .query_one(
            "SELECT max(seq) FROM (SELECT seq, at FROM audit_log ORDER BY seq LIMIT $2) AS oldest
             WHERE at < to_char((clock_timestamp() - make_interval(days => $1)) AT TIME ZONE 'UTC',
                                'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
            &[&days, &PRUNE_BATCH],
        )?
        .get(0);
    let Some(upto) = upto else {
        return Ok(0);
    };
    db.execute("DELETE FROM audit_subjects WHERE seq <= $1", &[&upto])?;
    db.execute("DELETE FROM audit_log WHERE seq <= $1", &[&upto])
}

/// `q.resource` is an id or a name: a current userName, group displayName or token name, or
/// a name the audit log recorded, each with ASCII case folded (as SQLite's NOCASE).
pub(super) fn read(db: &mut Db, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
    let limit = q.limit.min(i64::MAX as u64) as i64;
    let rows = db.query(
        "WITH wanted(id) AS (
             SELECT $2::text WHERE $2::text IS NOT NULL
             UNION SELECT id FROM resources
                   WHERE $2::text IS NOT NULL AND ($1::text IS NULL OR tenant = $1::text)
                     AND (lower(user_name) = lower($2::text COLLATE \"C\")
                          OR lower(display_name) = lower($2::text COLLATE \"C\"))
             UNION SELECT id FROM tokens
                   WHERE $2::text IS NOT NULL AND lower(name) = lower($2::text COLLATE \"C\")
             UNION SELECT resource_id FROM audit_log
                   WHERE $2::text IS NOT NULL AND lower(resource_name) = lower($2::text COLLATE \"C\")
         )
         SELECT seq, at, tenant, actor_id, actor_name, via, operation, resource_type, resource_id,
                resource_name, changes
         FROM audit_log
         WHERE ($1::text IS NULL OR tenant = $1::text)
           AND ($2::text IS NULL
                OR seq IN (SELECT s.seq FROM audit_subjects s
                           JOIN wanted w ON lower(s.subject) = lower(w.id COLLATE \"C\"))
                OR seq IN (SELECT a.seq FROM audit_log a
                           JOIN wanted w ON lower(a.resource_id) = lower(w.id COLLATE \"C\")))
           AND ($3::text IS NULL OR at >= $3::text)
         ORDER BY seq DESC LIMIT $4",
        &[&q.tenant, &q.resource, &q.since, &limit],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows.iter().rev() {
        let postgres::types::Json(changes): postgres::types::Json<Value> = r.get(10);
        out.push(AuditEntry {
            seq: r.get(0),
            at: r.get(1),
            tenant: r.get(2),
            actor_id: r.get(3),
            actor_name: r.get(4),
            via: r.get(5),
            operation: r.get(6),
            resource_type: r.get(7),
            resource_id: r.get(8),
            resource_name: r.get(9),
            changes,
        });
    }
    Ok(out)
}

impl AuditStore for PostgresStore {
    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|db| read(db, query))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::test_support::*;

    #[test]
    fn audit_names_actor_and_members_and_old_entries_are_pruned() {
        use crate::store::{AuditQuery, ResourceUpdate, Via};
        let Some((_d, s)) = store() else {
            return;
        };
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
        let g = group_of(&s, "Finance", &[&alice.id], &okta);
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
        let subject_rows: Vec<(String, i64)> = s
            .read(|db| {
                Ok(db
                    .query("SELECT subject, seq FROM audit_subjects ORDER BY seq", &[])?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect())
            })
            .unwrap();
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
        s.pool
            .write(|db| {
                db.execute(
                    "UPDATE audit_log SET at = '2000-01-01T00:00:00.000Z' WHERE seq <= 2",
                    &[],
                )
            })
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
            .read(|db| {
                Ok(db
                    .query_one("SELECT count(*) FROM audit_subjects WHERE seq <= 2", &[])?
                    .get(0))
            })
            .unwrap();
        assert_eq!(orphans, 0);
    }

    #[test]
    fn a_lookup_by_id_can_use_the_entries_index() {
        let Some((_d, s)) = store() else {
            return;
        };
        let plan: Vec<String> = s
            .pool
            .write(|db| {
                // A small table is scanned whatever the indexes; the plan without scans shows
                // that the index serves the lookup.
                db.execute("SET LOCAL enable_seqscan = off", &[])?;
                Ok(db
                    .query(
                        "EXPLAIN SELECT a.seq FROM audit_log a
                         WHERE lower(a.resource_id) = lower($1::text COLLATE \"C\")",
                        &[&"X"],
                    )?
                    .iter()
                    .map(|r| r.get(0))
                    .collect())
            })
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("audit_log_resource")),
            "{plan:?}"
        );
    }

    /// Entries written before schema 11 (or by an instance still running the code before it)
    /// index their own resource in `audit_subjects` too: each is still found, once.
    #[test]
    fn entries_that_also_name_their_own_resource_as_a_subject_are_found_once() {
        let Some((_d, s)) = store() else {
            return;
        };
        s.pool
            .write(|db| {
                db.execute(
                    "INSERT INTO audit_log (seq, at, tenant, actor_name, via, operation,
                         resource_type, resource_id, changes)
                     OVERRIDING SYSTEM VALUE
                     VALUES (1, '2026-01-01T00:00:00.000Z', 'default', 'okta', 'api', 'create',
                         'User', 'u-1', '{}')",
                    &[],
                )?;
                db.execute(
                    "INSERT INTO audit_subjects (subject, seq) VALUES ('u-1', 1)",
                    &[],
                )
            })
            .unwrap();
        let found = s
            .audit(&AuditQuery {
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
        let Some((_d, s)) = store() else {
            return;
        };
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
