//! Tenants and their tokens.

use super::*;

pub(super) const TOKEN_COLUMNS: &str = "id, tenant, name, hash, created, last_used, scope, expires";

pub(super) fn token_row(r: &rusqlite::Row) -> rusqlite::Result<TokenRecord> {
    let scope: String = r.get(6)?;
    Ok(TokenRecord {
        id: r.get(0)?,
        tenant: r.get(1)?,
        name: r.get(2)?,
        hash: r.get(3)?,
        created: r.get(4)?,
        last_used: r.get(5)?,
        // The column's CHECK admits only the two known values; anything else is refused
        // (read-only would be the safe reading, but a corrupt row should not authenticate).
        scope: TokenScope::parse(&scope).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                6,
                rusqlite::types::Type::Text,
                format!("unknown token scope {scope:?}").into(),
            )
        })?,
        expires: r.get(7)?,
    })
}

pub(super) fn tenant_exists(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM tenants WHERE name = ?1)",
        [name],
        |r| r.get(0),
    )?)
}

/// The audit entry of a token's creation, rotation or revocation, by (tenant, id, name):
/// never the secret or its hash.
pub(super) fn audit_token(
    tx: &Connection,
    actor: &Actor,
    (tenant, id, name): (&str, &str, &str),
    operation: &str,
    changes: Map<String, Value>,
) -> Result<(), StoreError> {
    audit::append(
        tx,
        actor,
        audit::Entry {
            tenant,
            operation,
            resource_type: "Token",
            resource_id: id,
            resource_name: Some(name),
            changes,
            subjects: Vec::new(),
        },
    )
}

pub(super) fn insert_token(tx: &Connection, t: &TokenRecord) -> Result<(), StoreError> {
    if !tenant_exists(tx, &t.tenant)? {
        return Err(StoreError::InvalidReference(format!(
            "no tenant named \"{}\"",
            t.tenant
        )));
    }
    tx.execute(
        "INSERT INTO tokens (id, tenant, name, hash, created, scope, expires)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            t.id,
            t.tenant,
            t.name,
            t.hash,
            t.created,
            t.scope.as_str(),
            t.expires
        ],
    )?;
    Ok(())
}

impl TenantStore for SqliteStore {
    fn create_tenant(&self, name: &str, actor: &Actor) -> Result<(), StoreError> {
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO tenants (name, created) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                params![name, now_rfc3339()],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!(
                    "tenant \"{name}\" already exists"
                )));
            }
            audit::append(
                tx,
                actor,
                audit::Entry {
                    tenant: name,
                    operation: "tenant-create",
                    resource_type: "Tenant",
                    resource_id: name,
                    resource_name: Some(name),
                    changes: Map::new(),
                    subjects: Vec::new(),
                },
            )
        })
    }

    fn tenants(&self) -> Result<Vec<TenantInfo>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT t.name, t.created,
                    (SELECT count(*) FROM resources r WHERE r.tenant = t.name AND r.kind = 'User'),
                    (SELECT count(*) FROM resources r WHERE r.tenant = t.name AND r.kind = 'Group'),
                    (SELECT count(*) FROM tokens k WHERE k.tenant = t.name AND k.revoked IS NULL)
                 FROM tenants t ORDER BY t.name",
            )?;
            let rows = stmt.query_map([], |r| {
                let count = |i: usize| r.get::<_, i64>(i).map(|n| n.max(0) as u64);
                Ok(TenantInfo {
                    name: r.get(0)?,
                    created: r.get(1)?,
                    users: count(2)?,
                    groups: count(3)?,
                    tokens: count(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn delete_tenant(
        &self,
        name: &str,
        purge: bool,
        actor: &Actor,
    ) -> Result<TenantDeleted, StoreError> {
        self.write(|tx| {
            if !tenant_exists(tx, name)? {
                return Err(StoreError::NotFound);
            }
            let count = |kind: ResourceKind| -> Result<u64, StoreError> {
                let n: i64 = tx.query_row(
                    "SELECT count(*) FROM resources WHERE tenant = ?1 AND kind = ?2",
                    params![name, kind_str(kind)],
                    |r| r.get(0),
                )?;
                Ok(n.max(0) as u64)
            };
            let users = count(ResourceKind::User)?;
            let groups = count(ResourceKind::Group)?;
            if (users > 0 || groups > 0) && !purge {
                return Err(StoreError::Conflict(format!(
                    "tenant \"{name}\" holds {users} users and {groups} groups"
                )));
            }
            // Memberships go with their resources (ON DELETE CASCADE).
            tx.execute("DELETE FROM resources WHERE tenant = ?1", [name])?;
            let tokens = tx.execute("DELETE FROM tokens WHERE tenant = ?1", [name])? as u64;
            super::events::forget_tenant(tx, name)?;
            tx.execute("DELETE FROM tenants WHERE name = ?1", [name])?;
            // One entry for the whole purge: the counts, not an entry per resource. The
            // tenant's earlier entries stay until audit_retention_days prunes them.
            let mut changes = Map::new();
            changes.insert("users".into(), users.into());
            changes.insert("groups".into(), groups.into());
            changes.insert("tokens".into(), tokens.into());
            audit::append(
                tx,
                actor,
                audit::Entry {
                    tenant: name,
                    operation: "tenant-delete",
                    resource_type: "Tenant",
                    resource_id: name,
                    resource_name: Some(name),
                    changes,
                    subjects: Vec::new(),
                },
            )?;
            Ok(TenantDeleted {
                users,
                groups,
                tokens,
            })
        })
        .inspect(|_| self.token_cache.changed())
    }

    fn create_token(&self, t: &TokenRecord, actor: &Actor) -> Result<(), StoreError> {
        self.write(|tx| {
            insert_token(tx, t)?;
            audit_token(
                tx,
                actor,
                (&t.tenant, &t.id, &t.name),
                "token-create",
                Map::new(),
            )
        })
        .inspect(|_| self.token_cache.changed())
    }

    fn create_first_token(&self, t: &TokenRecord, actor: &Actor) -> Result<bool, StoreError> {
        // One writer at a time: the check and the insert see the same table.
        self.write(|tx| {
            if tx.query_row("SELECT EXISTS (SELECT 1 FROM tokens)", [], |r| r.get(0))? {
                return Ok(false);
            }
            insert_token(tx, t)?;
            audit_token(
                tx,
                actor,
                (&t.tenant, &t.id, &t.name),
                "token-create",
                Map::new(),
            )?;
            Ok(true)
        })
        .inspect(|_| self.token_cache.changed())
    }

    fn rotate_token(&self, t: &TokenRecord, actor: &Actor) -> Result<Vec<String>, StoreError> {
        self.write(|tx| {
            let previous: Vec<String> = {
                let mut stmt = tx.prepare(
                    // rowid: creation order (the `created` text does not sort: its fraction
                    // has no fixed width).
                    "SELECT id FROM tokens WHERE tenant = ?1 AND revoked IS NULL ORDER BY rowid",
                )?;
                let rows = stmt.query_map([&t.tenant], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            insert_token(tx, t)?;
            tx.execute(
                "UPDATE tokens SET revoked = ?2 WHERE tenant = ?1 AND revoked IS NULL AND id <> ?3",
                params![t.tenant, now_rfc3339(), t.id],
            )?;
            let mut changes = Map::new();
            changes.insert("revoked".into(), previous.clone().into());
            audit_token(
                tx,
                actor,
                (&t.tenant, &t.id, &t.name),
                "token-rotate",
                changes,
            )?;
            Ok(previous)
        })
        .inspect(|_| self.token_cache.changed())
    }

    /// The row, kept between requests while no token changes (see `token_cache`).
    fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.token_cache.get(id, || {
            self.read_one(|conn| {
                Ok(conn
                    .prepare_cached(&format!(
                        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1 AND revoked IS NULL"
                    ))?
                    .query_row([id], token_row)
                    .optional()?)
            })
        })
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE revoked IS NULL ORDER BY rowid"
            ))?;
            let rows = stmt.query_map([], token_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn revoke_token(&self, id: &str, actor: &Actor) -> Result<bool, StoreError> {
        self.write(|tx| {
            let token: Option<(String, String)> = tx
                .query_row(
                    "SELECT tenant, name FROM tokens WHERE id = ?1 AND revoked IS NULL",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((tenant, name)) = token else {
                return Ok(false);
            };
            tx.execute(
                "UPDATE tokens SET revoked = ?2 WHERE id = ?1 AND revoked IS NULL",
                params![id, now_rfc3339()],
            )?;
            audit_token(tx, actor, (&tenant, id, &name), "token-revoke", Map::new())?;
            Ok(true)
        })
        .inspect(|_| self.token_cache.changed())
    }

    fn touch_token(&self, id: &str, when: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE tokens SET last_used = ?2 WHERE id = ?1",
                params![id, when],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::test_support::*;
    use crate::store::AuditQuery;

    /// Instances starting at once on an empty database: one first-run token, not one each.
    #[test]
    fn only_one_first_run_token_however_many_start_at_once() {
        let (_d, s) = store();
        let made: Vec<bool> = std::thread::scope(|scope| {
            let runs: Vec<_> = (0..4)
                .map(|i| {
                    let s = &s;
                    scope.spawn(move || {
                        let t = TokenRecord {
                            id: format!("first{i}"),
                            tenant: T.into(),
                            name: "first-run".into(),
                            hash: "h".into(),
                            created: now_rfc3339(),
                            last_used: None,
                            scope: TokenScope::ReadWrite,
                            expires: None,
                        };
                        s.create_first_token(&t, &A).unwrap()
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(made.iter().filter(|m| **m).count(), 1, "{made:?}");
        assert_eq!(s.tokens().unwrap().len(), 1);
    }

    #[test]
    fn tenants_rotation_and_deletion() {
        let (_d, s) = store();
        s.create_tenant("acme", &A).unwrap();
        assert!(matches!(
            s.create_tenant("acme", &A),
            Err(StoreError::Conflict(_))
        ));
        let token = |id: &str, tenant: &str| TokenRecord {
            id: id.into(),
            tenant: tenant.into(),
            name: "n".into(),
            hash: "h".into(),
            created: now_rfc3339(),
            last_used: None,
            scope: TokenScope::ReadOnly,
            expires: Some("2099-01-01T00:00:00Z".into()),
        };
        assert!(matches!(
            s.create_token(&token("00", "nope"), &A),
            Err(StoreError::InvalidReference(_))
        ));
        s.create_token(&token("a1", "acme"), &A).unwrap();
        s.create_token(&token("a2", "acme"), &A).unwrap();
        s.create_token(&token("d1", T), &A).unwrap();
        let a1 = s.token("a1").unwrap().unwrap();
        assert_eq!(
            (a1.tenant.as_str(), a1.scope, a1.expires.as_deref()),
            ("acme", TokenScope::ReadOnly, Some("2099-01-01T00:00:00Z"))
        );
        let revoked = s.rotate_token(&token("a3", "acme"), &A).unwrap();
        assert_eq!(revoked, vec!["a1".to_string(), "a2".to_string()]);
        assert!(s.token("a1").unwrap().is_none() && s.token("a2").unwrap().is_none());
        assert!(s.token("a3").unwrap().is_some() && s.token("d1").unwrap().is_some());

        s.create("acme", ResourceKind::User, &user("bob"), None, &A)
            .unwrap();
        // The same userName in another tenant is no conflict.
        s.create(T, ResourceKind::User, &user("bob"), None, &A)
            .unwrap();
        assert!(matches!(
            s.delete_tenant("acme", false, &A),
            Err(StoreError::Conflict(_))
        ));
        assert!(s.token("a3").unwrap().is_some());
        let d = s.delete_tenant("acme", true, &A).unwrap();
        assert_eq!((d.users, d.groups, d.tokens), (1, 0, 3));
        assert!(s.token("a3").unwrap().is_none());
        assert!(matches!(
            s.delete_tenant("acme", true, &A),
            Err(StoreError::NotFound)
        ));
        let names: Vec<String> = s.tenants().unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(names, vec![T.to_string()]);
        // Each of those changes is in the audit log, the purge as one entry with its counts.
        let log = s
            .audit(&AuditQuery {
                tenant: Some("acme".into()),
                resource: None,
                since: None,
                limit: 100,
            })
            .unwrap();
        let ops: Vec<&str> = log.iter().map(|e| e.operation.as_str()).collect();
        assert_eq!(
            ops,
            [
                "tenant-create",
                "token-create",
                "token-create",
                "token-rotate",
                "create",
                "tenant-delete"
            ]
        );
        assert_eq!(log[3].changes["revoked"], json!(["a1", "a2"]));
        assert_eq!(
            log[5].changes,
            json!({"users": 1, "groups": 0, "tokens": 3})
        );
        assert_eq!(s.tenants().unwrap()[0].users, 1);
    }
}
