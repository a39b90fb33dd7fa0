//! Users and Groups: create, read, update, delete, list, references, export and import.

use super::*;
use crate::scim::events::Change;

pub(super) const RESOURCE_COLUMNS: &str = "id, kind, doc, created, last_modified, version";

pub(super) fn row_to_resource(
    row: &rusqlite::Row,
) -> rusqlite::Result<(String, String, String, Meta)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        Meta {
            created: row.get(3)?,
            last_modified: row.get(4)?,
            version: row.get(5)?,
        },
    ))
}

pub(super) fn into_resource(
    (id, kind, doc, meta): (String, String, String, Meta),
) -> Result<StoredResource, StoreError> {
    let doc: Map<String, Value> = serde_json::from_str(&doc)
        .map_err(|e| StoreError::Corrupt(format!("document of {id}: {e}")))?;
    Ok(StoredResource {
        id,
        kind: parse_kind(&kind)?,
        doc,
        meta,
    })
}

/// Maps a unique-constraint failure to a readable conflict.
pub(super) fn conflict(
    kind: ResourceKind,
    doc: &Map<String, Value>,
) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |e| match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let text = |name: &str| doc.get(name).and_then(Value::as_str).unwrap_or_default();
            match kind {
                ResourceKind::User => StoreError::Conflict(format!(
                    "a User with userName \"{}\" already exists",
                    text("userName")
                )),
                ResourceKind::Group => StoreError::Conflict(format!(
                    "a Group with displayName \"{}\" already exists",
                    text("displayName")
                )),
            }
        }
        _ => e.into(),
    }
}

pub(super) use crate::store::shared::search_columns;

pub(super) fn pk_of(
    tx: &Connection,
    tenant: &str,
    kind: ResourceKind,
    id: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(tx
        .prepare_cached(&by_id_sql("pk", kind))?
        .query_row(params![tenant, id], |r| r.get(0))
        .optional()?)
}

/// `SELECT {columns} FROM resources` for one resource by tenant and id, `?1` and `?2`.
///
/// The kind is written as a literal, never bound: a bound kind is compared against the
/// partial indexes' `WHERE kind = 'User'` when the statement is planned, and SQLite then
/// re-plans the statement whenever the value differs from the one it planned for
/// (`sqlite3Reprepare` was 22% of the server's CPU under the IdP load before this).
pub(super) fn by_id_sql(columns: &str, kind: ResourceKind) -> String {
    format!(
        "SELECT {columns} FROM resources WHERE tenant = ?1 AND id = ?2 AND kind = '{}'",
        kind_str(kind)
    )
}

/// One page of a list: LIMIT and OFFSET are written as numbers (our own integers, never
/// client text), because SQLite re-plans a statement whose bound LIMIT changes.
pub(super) fn page_sql(where_sql: &str, order_sql: &str, limit: u64, offset: u64) -> String {
    let limit = limit.min(i64::MAX as u64);
    let offset = offset.min(i64::MAX as u64);
    format!(
        "SELECT {RESOURCE_COLUMNS}, resources.pk FROM resources WHERE {where_sql} ORDER BY {order_sql} LIMIT {limit} OFFSET {offset}"
    )
}

/// One page of the compiled list `q`, each resource with its pk, and the number of all its
/// matches; run inside a read, so both come from one snapshot.
fn list_page(
    conn: &Connection,
    q: &query::Compiled,
    page: Page,
) -> Result<(u64, Vec<(StoredResource, i64)>), StoreError> {
    let (sql, order) = (&q.where_sql, &q.order_sql);
    let offset = page.start_index.saturating_sub(1);
    let mut rows = Vec::new();
    if page.count > 0 {
        let text = page_sql(sql, order, page.count, offset);
        // First pages (every IdP lookup) repeat; a walk through the pages does not, so its
        // statements stay out of the cache instead of evicting the hot ones.
        let (mut cached, mut fresh);
        let stmt: &mut rusqlite::Statement = if offset == 0 {
            cached = conn.prepare_cached(&text)?;
            &mut cached
        } else {
            fresh = conn.prepare(&text)?;
            &mut fresh
        };
        let mapped = stmt.query_map(params_from_iter(q.args.iter()), |r| {
            Ok((row_to_resource(r)?, r.get::<_, i64>(6)?))
        })?;
        for r in mapped {
            let (row, pk) = r?;
            rows.push((into_resource(row)?, pk));
        }
    }
    // A first page that is not full holds every match (same snapshot): the count is its
    // length. That spares the second query of every IdP lookup (0 or 1 match).
    if offset == 0 && page.count > 0 && (rows.len() as u64) < page.count {
        return Ok((rows.len() as u64, rows));
    }
    let total: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM resources WHERE {sql}"))?
        .query_row(params_from_iter(q.args.iter()), |r| r.get(0))?;
    Ok((total.max(0) as u64, rows))
}

/// The statement of [`references_of`], `?1` the resource's pk. The display name is read
/// from the referenced row now, so a rename shows everywhere at once. `+?1`: a bare `?1`
/// here makes SQLite re-plan the statement on every run (see [`by_id_sql`]); the unary
/// plus keeps the value out of planning and the index in use.
pub(super) fn references_sql(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Group => {
            "SELECT r.id, r.kind, COALESCE(r.display_name, r.user_name) FROM memberships m
             JOIN resources r ON r.pk = m.member_pk WHERE m.group_pk = +?1 ORDER BY r.pk"
        }
        ResourceKind::User => {
            "SELECT r.id, r.kind, r.display_name FROM memberships m
             JOIN resources r ON r.pk = m.group_pk WHERE m.member_pk = +?1 ORDER BY r.pk"
        }
    }
}

/// A Group's members, or the Groups a User is a direct member of, in creation order, with
/// their current display names.
pub(super) fn references_of(
    conn: &Connection,
    kind: ResourceKind,
    pk: i64,
) -> Result<Vec<Reference>, StoreError> {
    let mut stmt = conn.prepare_cached(references_sql(kind))?;
    let rows = stmt.query_map([pk], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for r in rows {
        let (id, kind, display) = r?;
        out.push(Reference {
            id,
            kind: parse_kind(&kind)?,
            display,
        });
    }
    Ok(out)
}

impl ResourceStore for SqliteStore {
    fn create(
        &self,
        tenant: &str,
        kind: ResourceKind,
        res: &ValidResource,
        password_hash: Option<String>,
        actor: &Actor,
    ) -> Result<Created, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_rfc3339();
        let doc_text = JsonText::of(&res.doc)?;
        let c = search_columns(kind, &res.doc);
        self.write(|tx| {
            // Cached, as every statement of a request's path: preparing these two on each
            // create and update was 3% of the server's CPU in a sync (perf, issue 22).
            tx.prepare_cached(
                "INSERT INTO resources (tenant, kind, id, user_name, display_name, external_id, name_key, doc, password_hash, created, last_modified, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, 1)",
            )?
            .execute(params![tenant, kind_str(kind), id, c.user_name, c.display_name, c.external_id, c.name_key, doc_text, password_hash, now])
            .map_err(conflict(kind, &res.doc))?;
            let pk = tx.last_insert_rowid();
            unique::index(tx, &self.registry, tenant, kind, pk, &res.doc)?;
            let mut delta = MemberDelta::default();
            if let Some(members) = &res.members {
                set_members(tx, tenant, pk, &id, members, &mut delta)?;
            }
            let mut subjects = Vec::new();
            let changes = audit::resource_changes(
                tx,
                tenant,
                &Map::new(),
                &res.doc,
                password_hash.is_some(),
                &delta,
                &mut subjects,
            )?;
            audit::append(
                tx,
                actor,
                audit::Entry {
                    tenant,
                    operation: "create",
                    resource_type: kind.name(),
                    resource_id: &id,
                    resource_name: audit::resource_name(self.registry.resource(kind), &res.doc),
                    changes,
                    subjects,
                },
            )?;
            let meta = Meta {
                created: now.clone(),
                last_modified: now.clone(),
                version: 1,
            };
            let refs = match kind {
                ResourceKind::Group => Some(references_of(tx, kind, pk)?),
                ResourceKind::User => None,
            };
            let change = Change::created(&res.doc, &meta, refs.as_deref());
            events::append(tx, actor, tenant, kind, &id, change, Some(&doc_text))
        })?;
        Ok(Created {
            id,
            meta: Meta {
                created: now.clone(),
                last_modified: now,
                version: 1,
            },
        })
    }

    fn get(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        self.read(|conn| {
            let row = conn
                .prepare_cached(&by_id_sql(RESOURCE_COLUMNS, kind))?
                .query_row(params![tenant, id], row_to_resource)
                .optional()?;
            row.map(into_resource).transpose()
        })
    }

    fn get_with_references(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
    ) -> Result<Option<WithReferences>, StoreError> {
        self.read(|conn| {
            let row = conn
                .prepare_cached(&by_id_sql(&format!("{RESOURCE_COLUMNS}, pk"), kind))?
                .query_row(params![tenant, id], |r| {
                    Ok((row_to_resource(r)?, r.get::<_, i64>(6)?))
                })
                .optional()?;
            let Some((row, pk)) = row else {
                return Ok(None);
            };
            let refs = references_of(conn, kind, pk)?;
            Ok(Some((into_resource(row)?, refs)))
        })
    }

    fn update(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
        actor: &Actor,
        op: UpdateOp,
        apply: &mut UpdateFn<'_>,
    ) -> Result<(StoredResource, bool), StoreError> {
        self.write(|tx| {
            let (pk, row) = tx
                .prepare_cached(&by_id_sql(&format!("pk, {RESOURCE_COLUMNS}"), kind))?
                .query_row(
                    params![tenant, id],
                    |r| {
                        let pk: i64 = r.get(0)?;
                        Ok((pk, (
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            Meta {
                                created: r.get(4)?,
                                last_modified: r.get(5)?,
                                version: r.get(6)?,
                            },
                        )))
                    },
                )
                .optional()?
                .ok_or(StoreError::NotFound)?;
            let old_doc_text = row.2.clone();
            let current = into_resource(row)?;
            let update = apply(&current).map_err(StoreError::Rejected)?;
            let doc_text = JsonText::of(&update.doc)?;
            let mut delta = MemberDelta::default();
            match kind {
                ResourceKind::Group => {
                    apply_member_changes(
                        tx,
                        &self.registry,
                        tenant,
                        pk,
                        id,
                        &update.members,
                        &mut delta,
                    )?;
                }
                ResourceKind::User if update.members.is_empty() => {}
                ResourceKind::User => {
                    return Err(StoreError::InvalidReference(
                        "a User has no members; its groups are changed through the Groups".into(),
                    ))
                }
            };
            // A member removed and added back by one request leaves the group as it was: its
            // version (and ETag) must not move.
            let delta = delta.net();
            let password_changed = update.password != PasswordUpdate::Keep;
            if doc_text.as_bytes() == old_doc_text.as_bytes() && !password_changed && delta.is_empty() {
                return Ok((current, false));
            }
            let now = now_rfc3339();
            let c = search_columns(kind, &update.doc);
            let (set_password, password_hash) = match &update.password {
                PasswordUpdate::Keep => (false, None),
                PasswordUpdate::Set(h) => (true, Some(h.as_str())),
                PasswordUpdate::Clear => (true, None),
            };
            tx.prepare_cached(
                "UPDATE resources SET user_name = ?1, display_name = ?2, external_id = ?3, name_key = ?4,
                 doc = ?5, password_hash = CASE WHEN ?6 THEN ?7 ELSE password_hash END,
                 last_modified = ?8, version = version + 1 WHERE pk = ?9",
            )?
            .execute(params![c.user_name, c.display_name, c.external_id, c.name_key, doc_text, set_password, password_hash, now, pk])
            .map_err(conflict(kind, &update.doc))?;
            unique::index(tx, &self.registry, tenant, kind, pk, &update.doc)?;
            let mut subjects = Vec::new();
            let changes = audit::resource_changes(
                tx,
                tenant,
                &current.doc,
                &update.doc,
                password_changed,
                &delta,
                &mut subjects,
            )?;
            audit::append(
                tx,
                actor,
                audit::Entry {
                    tenant,
                    operation: op.as_str(),
                    resource_type: kind.name(),
                    resource_id: id,
                    resource_name: audit::resource_name(self.registry.resource(kind), &update.doc),
                    changes,
                    subjects,
                },
            )?;
            let meta = Meta {
                created: current.meta.created.clone(),
                last_modified: now,
                version: current.meta.version + 1,
            };
            let change = match op {
                UpdateOp::Replace => {
                    let refs = match kind {
                        ResourceKind::Group => Some(references_of(tx, kind, pk)?),
                        ResourceKind::User => None,
                    };
                    Change::replaced(&current.doc, &update.doc, &meta, refs.as_deref())
                }
                UpdateOp::Patch => Change::patched(
                    self.registry.resource(kind),
                    &current.doc,
                    &update.doc,
                    &meta,
                    &delta.added,
                    &delta.removed,
                ),
            };
            events::append(tx, actor, tenant, kind, id, change, Some(&doc_text))?;
            Ok((
                StoredResource {
                    id: id.to_string(),
                    kind,
                    doc: update.doc,
                    meta,
                },
                true,
            ))
        })
    }

    fn delete(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
        actor: &Actor,
        check: &mut CheckFn<'_>,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let (pk, name, meta, external_id) = tx
                .prepare_cached(&by_id_sql(
                    "pk, CASE kind WHEN 'User' THEN user_name ELSE display_name END,
                     created, last_modified, version, external_id",
                    kind,
                ))?
                .query_row(params![tenant, id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        Meta {
                            created: r.get(2)?,
                            last_modified: r.get(3)?,
                            version: r.get(4)?,
                        },
                        r.get::<_, Option<String>>(5)?,
                    ))
                })
                .optional()?
                .ok_or(StoreError::NotFound)?;
            check(&meta).map_err(StoreError::Rejected)?;
            // What the delete takes with it: a User leaves its groups (named, so "who removed
            // Alice from Finance" finds the delete); a Group's member count.
            let mut changes = Map::new();
            let mut subjects = Vec::new();
            match kind {
                ResourceKind::User => {
                    let groups: Vec<String> = references_of(tx, kind, pk)?
                        .into_iter()
                        .map(|r| r.id)
                        .collect();
                    if !groups.is_empty() {
                        let described = audit::describe(tx, tenant, &groups, &mut subjects)?;
                        changes.insert("groups".into(), described);
                    }
                }
                ResourceKind::Group => {
                    let n: i64 = tx.query_row(
                        "SELECT count(*) FROM memberships WHERE group_pk = ?1",
                        [pk],
                        |r| r.get(0),
                    )?;
                    changes.insert("memberCount".into(), Value::from(n));
                }
            }
            audit::append(
                tx,
                actor,
                audit::Entry {
                    tenant,
                    operation: "delete",
                    resource_type: kind.name(),
                    resource_id: id,
                    resource_name: name.as_deref(),
                    changes,
                    subjects,
                },
            )?;
            events::append(
                tx,
                actor,
                tenant,
                kind,
                id,
                Change::deleted(external_id),
                None,
            )?;
            // Membership rows go with it (ON DELETE CASCADE), so no group keeps a dangling member.
            // By pk: the row was found above in this transaction.
            tx.prepare_cached("DELETE FROM resources WHERE pk = ?1")?
                .execute([pk])?;
            Ok(())
        })
    }

    fn list(
        &self,
        tenant: &str,
        kind: ResourceKind,
        filter: Option<&Filter>,
        sort: Option<&Sort>,
        page: Page,
        base: &str,
    ) -> Result<(u64, Vec<StoredResource>), StoreError> {
        let q = query::compile(tenant, self.registry.resource(kind), filter, sort, base);
        let (total, rows) = self.read(|conn| list_page(conn, &q, page))?;
        Ok((total, rows.into_iter().map(|(r, _)| r).collect()))
    }

    fn list_with_references(
        &self,
        tenant: &str,
        kind: ResourceKind,
        filter: Option<&Filter>,
        sort: Option<&Sort>,
        page: Page,
        base: &str,
    ) -> Result<(u64, Vec<WithReferences>), StoreError> {
        let q = query::compile(tenant, self.registry.resource(kind), filter, sort, base);
        self.read(|conn| {
            let (total, rows) = list_page(conn, &q, page)?;
            let rows = rows
                .into_iter()
                .map(|(r, pk)| Ok((r, references_of(conn, kind, pk)?)))
                .collect::<Result<_, StoreError>>()?;
            Ok((total, rows))
        })
    }

    fn list_seek(
        &self,
        tenant: &str,
        kind: ResourceKind,
        filter: Option<&Filter>,
        sort: Option<&Sort>,
        seek: &Seek,
        base: &str,
    ) -> Result<Vec<(StoredResource, Position)>, StoreError> {
        if seek.limit == 0 {
            return Ok(Vec::new());
        }
        let q = query::compile_seek(
            tenant,
            self.registry.resource(kind),
            filter,
            sort,
            seek,
            base,
        );
        let c = &q.compiled;
        let text = format!(
            "SELECT {RESOURCE_COLUMNS}, resources.pk, {} FROM resources WHERE {} ORDER BY {} LIMIT {}",
            q.key_sql,
            c.where_sql,
            c.order_sql,
            seek.limit.min(i64::MAX as u64)
        );
        self.read_one(|conn| {
            let mut stmt = conn.prepare(&text)?;
            let rows = stmt.query_map(params_from_iter(c.args.iter()), |row| {
                let value: rusqlite::types::Value = row.get(7)?;
                Ok((row_to_resource(row)?, row.get::<_, i64>(6)?, value))
            })?;
            let mut out = Vec::new();
            for r in rows {
                let (resource, tie, value) = r?;
                let resource = into_resource(resource)?;
                let value = match value {
                    rusqlite::types::Value::Null => None,
                    rusqlite::types::Value::Integer(i) => Some(SortValue::Integer(i)),
                    rusqlite::types::Value::Real(r) => Some(SortValue::Real(r)),
                    rusqlite::types::Value::Text(t) => Some(SortValue::Text(t)),
                    rusqlite::types::Value::Blob(_) => {
                        return Err(StoreError::Corrupt(format!(
                            "the sort value of {} is a blob",
                            resource.id
                        )))
                    }
                };
                out.push((resource, Position { value, tie }));
            }
            Ok(out)
        })
    }

    fn cursor_key(&self, candidate: &[u8; 32]) -> Result<[u8; 32], StoreError> {
        let stored = |conn: &Connection| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(conn
                .query_row("SELECT key FROM cursor_key", [], |r| r.get(0))
                .optional()?)
        };
        let key = match self.read_one(stored)? {
            Some(k) => k,
            None => self.write(|tx| {
                tx.execute(
                    "INSERT INTO cursor_key (one, key, created) VALUES (1, ?1, ?2) ON CONFLICT DO NOTHING",
                    params![candidate.as_slice(), now_rfc3339()],
                )?;
                stored(tx)?.ok_or_else(|| StoreError::Corrupt("no cursor key".into()))
            })?,
        };
        key.try_into()
            .map_err(|_| StoreError::Corrupt("the cursor key is not 32 bytes".into()))
    }

    fn references_of_each(
        &self,
        tenant: &str,
        kind: ResourceKind,
        ids: &[&str],
    ) -> Result<Vec<Vec<Reference>>, StoreError> {
        self.read(|conn| {
            ids.iter()
                .map(|id| match pk_of(conn, tenant, kind, id)? {
                    Some(pk) => references_of(conn, kind, pk),
                    None => Ok(Vec::new()),
                })
                .collect()
        })
    }

    fn export(&self, tenant: Option<&str>, each: &mut ExportFn<'_>) -> Result<(), StoreError> {
        self.read(|conn| transfer::export(conn, tenant, each))
    }

    fn import(
        &self,
        batch: &[ImportResource],
        actor: &Actor,
    ) -> Result<Vec<ImportOutcome>, ImportFailed> {
        let mut failed_at = None;
        self.write(|tx| transfer::import(tx, &self.registry, batch, actor, &mut failed_at))
            .map_err(|source| ImportFailed {
                index: failed_at,
                source,
            })
    }

    fn resource_counts(&self) -> Result<Vec<ResourceCount>, StoreError> {
        self.read(|conn| {
            // Counted on the (tenant, kind, pk) index; every tenant and type, zeros included.
            let mut stmt = conn.prepare_cached(
                "SELECT t.name, k.kind,
                        (SELECT count(*) FROM resources r WHERE r.tenant = t.name AND r.kind = k.kind)
                 FROM tenants t, (SELECT 'User' AS kind UNION ALL SELECT 'Group') k
                 ORDER BY t.name, k.kind DESC",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (tenant, kind, count) = row?;
                out.push(ResourceCount {
                    tenant,
                    kind: parse_kind(&kind)?,
                    count: count.max(0) as u64,
                });
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::test_support::*;

    /// Statements the server runs on every request are planned once: SQLite re-plans a
    /// statement whose bound value it looked at while planning (a value compared with a
    /// partial index's WHERE, a LIMIT), which cost a fifth of the CPU under load.
    #[test]
    fn hot_statements_are_never_re_planned() {
        use rusqlite::StatementStatus;
        let (_d, s) = store();
        s.create_tenant("acme", &A).unwrap();
        let alice = s
            .create(T, ResourceKind::User, &user("alice"), None, &A)
            .unwrap();
        let bob = s
            .create("acme", ResourceKind::User, &user("bob"), None, &A)
            .unwrap();
        let group = |name: &str, member: &str| {
            validate(
                REG.resource(ResourceKind::Group),
                json!({"displayName": name, "members": [{"value": member}]}),
            )
            .unwrap()
        };
        let g1 = s
            .create(T, ResourceKind::Group, &group("G1", &alice.id), None, &A)
            .unwrap();
        let g2 = s
            .create("acme", ResourceKind::Group, &group("G2", &bob.id), None, &A)
            .unwrap();
        let conn = Connection::open(s.path.as_path()).unwrap();
        query::register_functions(&conn).unwrap();
        let check = |sql: &str, runs: &[Vec<rusqlite::types::Value>]| {
            let mut stmt = conn.prepare(sql).unwrap();
            for args in runs {
                let rows = stmt
                    .query_map(params_from_iter(args.iter()), |_| Ok(()))
                    .unwrap();
                assert!(rows.count() > 0, "{sql} {args:?} found nothing");
            }
            assert_eq!(
                stmt.get_status(StatementStatus::RePrepare),
                0,
                "re-planned: {sql}"
            );
        };
        use rusqlite::types::Value as V;
        let text = |t: &str| V::Text(t.into());
        for (kind, a, b) in [
            (ResourceKind::User, (T, &alice.id), ("acme", &bob.id)),
            (ResourceKind::Group, (T, &g1.id), ("acme", &g2.id)),
        ] {
            check(
                &by_id_sql(RESOURCE_COLUMNS, kind),
                &[vec![text(a.0), text(a.1)], vec![text(b.0), text(b.1)]],
            );
        }
        let pk = |tenant: &str, kind, id: &str| pk_of(&conn, tenant, kind, id).unwrap().unwrap();
        let (alice_pk, bob_pk) = (
            pk(T, ResourceKind::User, &alice.id),
            pk("acme", ResourceKind::User, &bob.id),
        );
        let (g1_pk, g2_pk) = (
            pk(T, ResourceKind::Group, &g1.id),
            pk("acme", ResourceKind::Group, &g2.id),
        );
        check(
            references_sql(ResourceKind::User),
            &[vec![V::Integer(alice_pk)], vec![V::Integer(bob_pk)]],
        );
        check(
            references_sql(ResourceKind::Group),
            &[vec![V::Integer(g1_pk)], vec![V::Integer(g2_pk)]],
        );
        // The IdPs' lookups and a plain first page, in two tenants with different values.
        for (kind, a, b) in [
            (ResourceKind::User, None, None),
            (
                ResourceKind::User,
                Some(r#"userName eq "alice""#),
                Some(r#"userName eq "bob""#),
            ),
            (
                ResourceKind::Group,
                Some(r#"displayName eq "G1""#),
                Some(r#"displayName eq "G2""#),
            ),
            (
                ResourceKind::Group,
                Some(&*format!(r#"members.value eq "{}""#, alice.id)),
                Some(&*format!(r#"members.value eq "{}""#, bob.id)),
            ),
        ] {
            let sorted = Sort {
                by: match kind {
                    ResourceKind::User => "userName".into(),
                    ResourceKind::Group => "displayName".into(),
                },
                order: crate::scim::list::SortOrder::Descending,
            };
            for sort in [None, Some(&sorted)] {
                let compile = |tenant: &str, f: Option<&str>| {
                    let f = f.map(|f| crate::scim::filter::parse(f).unwrap());
                    query::compile(tenant, REG.resource(kind), f.as_ref(), sort, BASE)
                };
                let (qa, qb) = (compile(T, a), compile("acme", b));
                assert_eq!(qa.where_sql, qb.where_sql);
                let runs = [qa.args.clone(), qb.args.clone()];
                check(
                    &format!("SELECT count(*) FROM resources WHERE {}", qa.where_sql),
                    &runs,
                );
                check(&page_sql(&qa.where_sql, &qa.order_sql, 100, 0), &runs);
            }
        }
    }

    /// The total is right whichever way it is found: from a first page that is not full,
    /// or by counting (a full page, a later page, no page at all).
    #[test]
    fn list_totals_with_and_without_the_count_query() {
        let (_d, s) = store();
        for i in 0..5 {
            s.create(T, ResourceKind::User, &user(&format!("t{i}")), None, &A)
                .unwrap();
        }
        let f = crate::scim::filter::parse(r#"userName sw "t""#).unwrap();
        for (start_index, count, rows) in [
            (1, 10, 5),
            (1, 5, 5),
            (1, 2, 2),
            (3, 10, 3),
            (6, 10, 0),
            (1, 0, 0),
        ] {
            let (total, got) = s
                .list(
                    T,
                    ResourceKind::User,
                    Some(&f),
                    None,
                    Page { start_index, count },
                    BASE,
                )
                .unwrap();
            assert_eq!(
                (total, got.len()),
                (5, rows),
                "startIndex {start_index} count {count}"
            );
        }
        let none = crate::scim::filter::parse(r#"userName eq "nobody""#).unwrap();
        let (total, got) = s
            .list(T, ResourceKind::User, Some(&none), None, PAGE, BASE)
            .unwrap();
        assert_eq!((total, got.len()), (0, 0));
    }

    /// The same through the store's own pooled connections and statement cache.
    #[test]
    fn list_lookups_are_never_re_planned_in_the_pool() {
        use rusqlite::StatementStatus;
        let (_d, s) = store();
        for i in 0..20 {
            s.create(T, ResourceKind::User, &user(&format!("u{i}")), None, &A)
                .unwrap();
        }
        let page = Page {
            start_index: 1,
            count: 100,
        };
        for i in 0..20 {
            let f = crate::scim::filter::parse(&format!(r#"userName eq "u{i}""#)).unwrap();
            let (n, _) = s
                .list(T, ResourceKind::User, Some(&f), None, page, BASE)
                .unwrap();
            assert_eq!(n, 1);
        }
        let f = crate::scim::filter::parse(r#"userName eq "u0""#).unwrap();
        let q = query::compile(T, REG.resource(ResourceKind::User), Some(&f), None, BASE);
        let text = page_sql(&q.where_sql, &q.order_sql, page.count, 0);
        let (runs, reprepares) = s
            .read(|conn| {
                let st = conn.prepare_cached(&text)?;
                Ok((
                    st.get_status(StatementStatus::Run),
                    st.get_status(StatementStatus::RePrepare),
                ))
            })
            .unwrap();
        assert_eq!((runs, reprepares), (20, 0), "{text}");
    }

    #[test]
    fn user_name_is_unique_case_insensitively_and_keeps_its_case() {
        let (_d, s) = store();
        let a = s
            .create(T, ResourceKind::User, &user("Alice@Example.com"), None, &A)
            .unwrap();
        let e = s
            .create(T, ResourceKind::User, &user("alice@example.COM"), None, &A)
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)));
        let got = s.get(T, ResourceKind::User, &a.id).unwrap().unwrap();
        assert_eq!(got.doc["userName"], "Alice@Example.com");
        let f = crate::scim::filter::parse(r#"userName eq "ALICE@example.com""#).unwrap();
        let (n, rows) = s
            .list(T, ResourceKind::User, Some(&f), None, PAGE, BASE)
            .unwrap();
        assert_eq!((n, rows[0].id.as_str()), (1, a.id.as_str()));
    }

    /// Uniqueness uses the fold `eq` uses (all of Unicode), so a name `eq` finds is unique.
    #[test]
    fn unique_names_use_the_unicode_case_fold_of_eq() {
        let (_d, s) = store();
        let group = |name: &str| {
            validate(
                REG.resource(ResourceKind::Group),
                json!({"displayName": name}),
            )
            .unwrap()
        };
        for (kind, first, second) in [
            (ResourceKind::User, user("ÉMILE"), user("émile")),
            // KELVIN SIGN folds to k.
            (ResourceKind::User, user("\u{212a}im"), user("KIM")),
            (ResourceKind::Group, group("ÄRGER"), group("ärger")),
        ] {
            let a = s.create(T, kind, &first, None, &A).unwrap();
            let e = s.create(T, kind, &second, None, &A).unwrap_err();
            assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
            // A rename onto the other spelling collides too.
            let other = match kind {
                ResourceKind::User => user("other"),
                ResourceKind::Group => group("other"),
            };
            let b = s.create(T, kind, &other, None, &A).unwrap();
            let rename = s.update(T, kind, &b.id, &A, UpdateOp::Replace, &mut |_| {
                Ok(crate::store::ResourceUpdate {
                    doc: second.doc.clone(),
                    password: PasswordUpdate::Keep,
                    members: Vec::new(),
                })
            });
            assert!(matches!(rename, Err(StoreError::Conflict(_))), "{rename:?}");
            s.delete(T, kind, &b.id, &A, &mut |_| Ok(())).unwrap();
            let attr = if kind == ResourceKind::User {
                "userName"
            } else {
                "displayName"
            };
            let name = second.doc[attr].as_str().unwrap();
            let f = crate::scim::filter::parse(&format!("{attr} eq \"{name}\"")).unwrap();
            let (n, rows) = s.list(T, kind, Some(&f), None, PAGE, BASE).unwrap();
            assert_eq!((n, rows[0].id.as_str()), (1, a.id.as_str()));
        }
    }

    #[test]
    fn user_name_lookup_uses_its_index() {
        let (_d, s) = store();
        let writer = s.writer.lock().unwrap();
        let conn = &writer.conn;
        let plan = |sql: &str, args: &[rusqlite::types::Value]| -> Vec<String> {
            conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params_from_iter(args.iter()), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let raw = plan(
            "SELECT id FROM resources WHERE tenant = ?1 AND kind = 'User' AND name_key = ?2",
            &[T.to_string().into(), "x".to_string().into()],
        );
        assert!(raw.iter().any(|p| p.contains("users_name_key")), "{raw:?}");
        // Compiled filters: the case-insensitive eq (also with non-ASCII and Kelvin-sign
        // spellings) and the case-exact ones use their indexes, alone or under `and`.
        for (kind, filter, index) in [
            (
                ResourceKind::User,
                r#"userName eq "Bjensen@Example.com""#,
                "users_name_key",
            ),
            (
                ResourceKind::User,
                r#"userName eq "Émile.K""#,
                "users_name_key",
            ),
            (
                ResourceKind::User,
                r#"userName eq "x" and active eq true and title pr"#,
                "users_name_key",
            ),
            (
                ResourceKind::Group,
                r#"displayName eq "Admins""#,
                "groups_name_key",
            ),
            (
                ResourceKind::User,
                r#"externalId eq "e-1""#,
                "resources_external_id",
            ),
            (
                ResourceKind::Group,
                r#"externalId eq "e-1""#,
                "resources_external_id",
            ),
            (
                ResourceKind::User,
                r#"id eq "x""#,
                "sqlite_autoindex_resources_1",
            ),
        ] {
            let f = crate::scim::filter::parse(filter).unwrap();
            let q = query::compile(T, REG.resource(kind), Some(&f), None, BASE);
            // The WHERE alone, and the page statement `list` runs.
            for sql in [
                format!("SELECT id FROM resources WHERE {}", q.where_sql),
                page_sql(&q.where_sql, &q.order_sql, 100, 0),
            ] {
                let p = plan(&sql, &q.args);
                assert!(
                    p.iter().any(|l| l.contains(index)) && !p.iter().any(|l| l.starts_with("SCAN")),
                    "{filter}: {p:?}"
                );
            }
        }
    }

    #[test]
    fn update_bumps_version_only_on_change() {
        let (_d, s) = store();
        let u = s
            .create(T, ResourceKind::User, &user("u1"), None, &A)
            .unwrap();
        let put = |s: &SqliteStore, id: &str, name: &str| {
            let doc = user(name).doc;
            let mut f = |_: &StoredResource| {
                Ok(crate::store::ResourceUpdate {
                    doc: doc.clone(),
                    password: PasswordUpdate::Keep,
                    members: Vec::new(),
                })
            };
            s.update(T, ResourceKind::User, id, &A, UpdateOp::Patch, &mut f)
        };
        let (same, changed) = put(&s, &u.id, "u1").unwrap();
        assert_eq!((same.meta.version, changed), (1, false));
        let (other, changed) = put(&s, &u.id, "u2").unwrap();
        assert_eq!((other.meta.version, changed), (2, true));
        assert!(matches!(put(&s, "nope", "x"), Err(StoreError::NotFound)));
        // Users have no members.
        let mut f = |cur: &StoredResource| {
            Ok(crate::store::ResourceUpdate {
                doc: cur.doc.clone(),
                password: PasswordUpdate::Keep,
                members: vec![MemberChange::Clear],
            })
        };
        assert!(s
            .update(T, ResourceKind::User, &u.id, &A, UpdateOp::Patch, &mut f)
            .is_err());
    }

    /// The JSON columns hold TEXT (the views and applications read them with SQLite's JSON
    /// functions), written from a buffer bound as it is.
    #[test]
    fn json_columns_are_text_that_parses() {
        let (_d, s) = store();
        let u = s
            .create(T, ResourceKind::User, &user("é-ü"), None, &A)
            .unwrap();
        let conn = s.writer.lock().unwrap();
        for sql in [
            "SELECT typeof(doc), doc FROM resources",
            "SELECT typeof(changes), changes FROM audit_log",
            "SELECT typeof(change), change FROM events",
        ] {
            let (ty, text): (String, String) = conn
                .conn
                .query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap();
            assert_eq!(ty, "text", "{sql}");
            serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let name: String = conn
            .conn
            .query_row(
                "SELECT json_extract(doc, '$.userName') FROM resources WHERE id = ?1",
                [&u.id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(name, "é-ü");
    }
}
