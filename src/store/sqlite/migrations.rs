//! Schema migrations, numbered, each in one transaction with its `user_version` bump.

use super::*;

/// One step of a migration: SQL, or a check in Rust that may refuse the upgrade (the
/// transaction is then rolled back and the database stays as it was).
pub(super) enum Step {
    Sql(&'static str),
    Check(fn(&Connection) -> Result<(), StoreError>),
}

/// Ordered schema migrations; each runs in its own transaction with the `user_version` bump.
pub(super) const MIGRATIONS: &[&[Step]] = &[
    // 1: tenants, resources with indexed search columns, memberships as rows, tokens.
    &[Step::Sql("CREATE TABLE tenants (
        name    TEXT PRIMARY KEY,
        created TEXT NOT NULL
    );
    CREATE TABLE resources (
        pk            INTEGER PRIMARY KEY,
        tenant        TEXT NOT NULL REFERENCES tenants(name),
        kind          TEXT NOT NULL CHECK (kind IN ('User', 'Group')),
        id            TEXT NOT NULL,
        user_name     TEXT COLLATE NOCASE,
        display_name  TEXT COLLATE NOCASE,
        external_id   TEXT,
        doc           TEXT NOT NULL,
        password_hash TEXT,
        created       TEXT NOT NULL,
        last_modified TEXT NOT NULL,
        version       INTEGER NOT NULL,
        UNIQUE (tenant, id)
    );
    CREATE UNIQUE INDEX users_user_name ON resources (tenant, user_name) WHERE kind = 'User';
    CREATE UNIQUE INDEX groups_display_name ON resources (tenant, display_name) WHERE kind = 'Group';
    CREATE INDEX resources_external_id ON resources (tenant, kind, external_id);
    CREATE INDEX resources_kind ON resources (tenant, kind, pk);
    CREATE TABLE memberships (
        group_pk  INTEGER NOT NULL REFERENCES resources(pk) ON DELETE CASCADE,
        member_pk INTEGER NOT NULL REFERENCES resources(pk) ON DELETE CASCADE,
        PRIMARY KEY (group_pk, member_pk)
    ) WITHOUT ROWID;
    CREATE INDEX memberships_member ON memberships (member_pk, group_pk);
    CREATE TABLE tokens (
        id        TEXT PRIMARY KEY,
        tenant    TEXT NOT NULL REFERENCES tenants(name),
        name      TEXT NOT NULL,
        hash      TEXT NOT NULL,
        created   TEXT NOT NULL,
        last_used TEXT,
        revoked   TEXT
    );
    INSERT INTO tenants (name, created) VALUES ('default', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));")],
    // 2: read-only views for applications on the same host (README, "SQL views"). A stable
    // interface: later migrations may add columns, never rename or remove them. `doc` is the
    // resource as the API renders it, without `meta.location` (no host here) and without
    // `groups`/`members` (see scim_group_members).
    &[Step::Sql("CREATE VIEW scim_users AS
    SELECT
        r.tenant AS tenant,
        r.id AS id,
        r.user_name AS userName,
        r.display_name AS displayName,
        r.external_id AS externalId,
        json_extract(r.doc, '$.active') AS active,
        json_extract(r.doc, '$.name.givenName') AS givenName,
        json_extract(r.doc, '$.name.familyName') AS familyName,
        (SELECT json_extract(e.value, '$.value') FROM json_each(r.doc, '$.emails') AS e
         ORDER BY json_extract(e.value, '$.primary') IS 1 DESC, e.key LIMIT 1) AS primaryEmail,
        r.created AS created,
        r.last_modified AS lastModified,
        r.version AS version,
        json_set(r.doc,
            '$.schemas', CASE
                WHEN json_type(r.doc, '$.\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\"') IS NULL
                THEN json_array('urn:ietf:params:scim:schemas:core:2.0:User')
                ELSE json_array('urn:ietf:params:scim:schemas:core:2.0:User',
                                'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User')
            END,
            '$.id', r.id,
            '$.meta', json_object('resourceType', 'User', 'created', r.created,
                'lastModified', r.last_modified, 'version', 'W/\"' || r.version || '\"')
        ) AS doc
    FROM resources AS r
    WHERE r.kind = 'User';
    CREATE VIEW scim_groups AS
    SELECT
        r.tenant AS tenant,
        r.id AS id,
        r.display_name AS displayName,
        r.external_id AS externalId,
        (SELECT count(*) FROM memberships AS m WHERE m.group_pk = r.pk) AS memberCount,
        r.created AS created,
        r.last_modified AS lastModified,
        r.version AS version,
        json_set(r.doc,
            '$.schemas', json_array('urn:ietf:params:scim:schemas:core:2.0:Group'),
            '$.id', r.id,
            '$.meta', json_object('resourceType', 'Group', 'created', r.created,
                'lastModified', r.last_modified, 'version', 'W/\"' || r.version || '\"')
        ) AS doc
    FROM resources AS r
    WHERE r.kind = 'Group';
    CREATE VIEW scim_group_members AS
    SELECT
        g.tenant AS tenant,
        g.id AS group_id,
        m.id AS member_id,
        m.kind AS member_type,
        COALESCE(m.display_name, m.user_name) AS member_display
    FROM memberships AS ms
    JOIN resources AS g ON g.pk = ms.group_pk
    JOIN resources AS m ON m.pk = ms.member_pk;")],
    // 3: scoped tokens (read-only, expiry) and per-tenant token lookups for rotation.
    // Existing tokens keep working: they become read-write tokens that never expire.
    &[Step::Sql("ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'read-write'
        CHECK (scope IN ('read-write', 'read-only'));
    ALTER TABLE tokens ADD COLUMN expires TEXT;
    CREATE INDEX tokens_tenant ON tokens (tenant, revoked);")],
    // 4: the audit log (`audit.rs`) and the row `/healthz` writes to prove the database takes
    // writes. `at` is UTC with exactly three fraction digits, so text order is time order; it
    // grows with `seq`, so no index on it (pruning reads the oldest rows by `seq`): every
    // write pays for as few B-trees as the `--resource` lookup needs.
    &[Step::Sql("CREATE TABLE audit_log (
        seq           INTEGER PRIMARY KEY,
        at            TEXT NOT NULL,
        tenant        TEXT NOT NULL,
        actor_id      TEXT,
        actor_name    TEXT NOT NULL,
        via           TEXT NOT NULL,
        operation     TEXT NOT NULL,
        resource_type TEXT NOT NULL,
        resource_id   TEXT NOT NULL,
        resource_name TEXT,
        changes       TEXT NOT NULL
    );
    CREATE TABLE audit_subjects (
        subject TEXT NOT NULL COLLATE NOCASE,
        seq     INTEGER NOT NULL,
        PRIMARY KEY (subject, seq)
    ) WITHOUT ROWID;
    CREATE INDEX audit_subjects_seq ON audit_subjects (seq);
    CREATE TABLE health_probe (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        probes INTEGER NOT NULL
    );
    INSERT INTO health_probe (id, probes) VALUES (1, 0);")],
    // 5: `userName` (Users) and `displayName` (Groups) unique under the full Unicode case fold
    // that `eq` uses (`fold_case`), not SQLite's ASCII-only NOCASE: `name_key` holds the
    // folded name, written by the store on every insert and update. Databases holding two
    // names that now collide are refused with the list of them (`check_name_collisions`).
    // The NOCASE indexes stay: applications look names up through the views with them, and
    // names equal under NOCASE are equal folded, so they never refuse what these allow.
    &[
        Step::Sql(
            "ALTER TABLE resources ADD COLUMN name_key TEXT;
            UPDATE resources
               SET name_key = scim_fold(CASE kind WHEN 'User' THEN user_name ELSE display_name END);",
        ),
        Step::Check(check_name_collisions),
        Step::Sql(
            "CREATE UNIQUE INDEX users_name_key ON resources (tenant, name_key) WHERE kind = 'User';
            CREATE UNIQUE INDEX groups_name_key ON resources (tenant, name_key) WHERE kind = 'Group';",
        ),
    ],
    // 6: schema extensions. `schema_extensions` lists the extensions the running server's config
    // declares (rewritten at every start, `unique::sync`), so the views show the values of
    // declared extensions only; `unique_values` holds the values of `uniqueness = "server"`
    // extension attributes (`unique.rs`). The attribute views: one row per value (each element
    // of a multi-valued attribute), `value` as SQLite's JSON functions give it (booleans 1/0,
    // complex values as JSON text) and `type` its JSON type.
    &[Step::Sql(
        "CREATE TABLE schema_extensions (
            kind TEXT NOT NULL CHECK (kind IN ('User', 'Group')),
            urn  TEXT NOT NULL,
            PRIMARY KEY (kind, urn)
        ) WITHOUT ROWID;
        INSERT INTO schema_extensions (kind, urn)
            VALUES ('User', 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User');
        CREATE TABLE unique_attributes (
            kind      TEXT NOT NULL,
            attribute TEXT NOT NULL,
            PRIMARY KEY (kind, attribute)
        ) WITHOUT ROWID;
        CREATE TABLE unique_values (
            tenant    TEXT NOT NULL,
            kind      TEXT NOT NULL,
            attribute TEXT NOT NULL,
            value     TEXT NOT NULL,
            pk        INTEGER NOT NULL REFERENCES resources(pk) ON DELETE CASCADE,
            PRIMARY KEY (tenant, kind, attribute, value)
        ) WITHOUT ROWID;
        CREATE INDEX unique_values_pk ON unique_values (pk);
        CREATE VIEW scim_user_attributes AS
        SELECT r.tenant AS tenant, r.id AS user_id, x.urn AS urn, a.key AS name,
               CASE a.type WHEN 'array' THEN e.value ELSE a.value END AS value,
               CASE a.type WHEN 'array' THEN e.type ELSE a.type END AS type
        FROM resources AS r
        JOIN schema_extensions AS x ON x.kind = 'User'
        JOIN json_each(r.doc, '$.\"' || x.urn || '\"') AS a
        LEFT JOIN json_each(CASE a.type WHEN 'array' THEN a.value END) AS e
        WHERE r.kind = 'User' AND (a.type <> 'array' OR e.key IS NOT NULL);
        CREATE VIEW scim_group_attributes AS
        SELECT r.tenant AS tenant, r.id AS group_id, x.urn AS urn, a.key AS name,
               CASE a.type WHEN 'array' THEN e.value ELSE a.value END AS value,
               CASE a.type WHEN 'array' THEN e.type ELSE a.type END AS type
        FROM resources AS r
        JOIN schema_extensions AS x ON x.kind = 'Group'
        JOIN json_each(r.doc, '$.\"' || x.urn || '\"') AS a
        LEFT JOIN json_each(CASE a.type WHEN 'array' THEN a.value END) AS e
        WHERE r.kind = 'Group' AND (a.type <> 'array' OR e.key IS NOT NULL);",
    )],
    // 7: provisioning events (RFC 9967; `events.rs`). `events` is the outbox: one row per
    // change, appended in the change's transaction, ordered per tenant by `seq`. A consumer
    // (a polling token, a push receiver) has done every event up to `acked_upto` plus those
    // in `event_acks`; a push receiver's lease says which process sends to it. `event_keys`
    // holds the ES256 keys that sign SETs. Tokens gain the `events` scope (and `admin`, for
    // the console): SQLite cannot change a CHECK, so the table is rebuilt, ids unchanged.
    &[Step::Sql(
        "CREATE TABLE events (
            seq           INTEGER PRIMARY KEY,
            tenant        TEXT NOT NULL,
            jti           TEXT NOT NULL UNIQUE,
            txn           TEXT NOT NULL,
            at            TEXT NOT NULL,
            resource_type TEXT NOT NULL,
            resource_id   TEXT NOT NULL,
            change        TEXT NOT NULL
        );
        CREATE INDEX events_tenant ON events (tenant, seq);
        CREATE TABLE event_consumers (
            consumer    TEXT PRIMARY KEY,
            tenant      TEXT NOT NULL,
            acked_upto  INTEGER NOT NULL,
            lease_owner TEXT,
            lease_until TEXT,
            failures    INTEGER NOT NULL DEFAULT 0,
            last_error  TEXT
        );
        CREATE TABLE event_acks (
            consumer TEXT NOT NULL,
            seq      INTEGER NOT NULL,
            PRIMARY KEY (consumer, seq)
        ) WITHOUT ROWID;
        CREATE TABLE event_keys (
            kid        TEXT PRIMARY KEY,
            created    TEXT NOT NULL,
            pkcs8      BLOB NOT NULL,
            public_key BLOB NOT NULL,
            retired    TEXT
        );
        CREATE TABLE tokens_v7 (
            id        TEXT PRIMARY KEY,
            tenant    TEXT NOT NULL REFERENCES tenants(name),
            name      TEXT NOT NULL,
            hash      TEXT NOT NULL,
            created   TEXT NOT NULL,
            last_used TEXT,
            revoked   TEXT,
            scope     TEXT NOT NULL DEFAULT 'read-write'
                CHECK (scope IN ('read-write', 'read-only', 'events', 'admin')),
            expires   TEXT
        );
        INSERT INTO tokens_v7 (id, tenant, name, hash, created, last_used, revoked, scope, expires)
            SELECT id, tenant, name, hash, created, last_used, revoked, scope, expires FROM tokens;
        DROP TABLE tokens;
        ALTER TABLE tokens_v7 RENAME TO tokens;
        CREATE INDEX tokens_tenant ON tokens (tenant, revoked);",
    )],
    // 8: admin console sessions (`sessions.rs`): the SHA-256 of each session's secret, never
    // the secret; a session goes with its token's row (a deleted tenant's tokens).
    &[Step::Sql(
        "CREATE TABLE admin_sessions (
            digest   TEXT PRIMARY KEY,
            token_id TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
            created  TEXT NOT NULL,
            expires  TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX admin_sessions_token ON admin_sessions (token_id);
        CREATE INDEX admin_sessions_expires ON admin_sessions (expires);",
    )],
    // 9: the key RFC 9865 cursors are sealed with (`scim::cursor`): one row, written by the
    // first server to start (`cursor_key`), read by every other, so each instance opens the
    // others' cursors. Deleting the row makes every outstanding cursor invalid.
    &[Step::Sql(
        "CREATE TABLE cursor_key (
            one     INTEGER PRIMARY KEY CHECK (one = 1),
            key     BLOB NOT NULL,
            created TEXT NOT NULL
        );",
    )],
    // 10: `events.seq` never hands out a number twice. A plain INTEGER PRIMARY KEY takes
    // max(seq) + 1, so once pruning (or a deleted tenant) removed the newest events, new
    // events got numbers that consumers had already passed, and were never delivered to
    // them. AUTOINCREMENT keeps the high-water mark in sqlite_sequence, seeded here above
    // every event and every consumer's position.
    &[Step::Sql(
        "CREATE TABLE events_v10 (
            seq           INTEGER PRIMARY KEY AUTOINCREMENT,
            tenant        TEXT NOT NULL,
            jti           TEXT NOT NULL UNIQUE,
            txn           TEXT NOT NULL,
            at            TEXT NOT NULL,
            resource_type TEXT NOT NULL,
            resource_id   TEXT NOT NULL,
            change        TEXT NOT NULL
        );
        INSERT INTO events_v10 (seq, tenant, jti, txn, at, resource_type, resource_id, change)
            SELECT seq, tenant, jti, txn, at, resource_type, resource_id, change FROM events;
        DROP TABLE events;
        ALTER TABLE events_v10 RENAME TO events;
        CREATE INDEX events_tenant ON events (tenant, seq);
        DELETE FROM sqlite_sequence WHERE name IN ('events', 'events_v10');
        INSERT INTO sqlite_sequence (name, seq) VALUES ('events', max(
            (SELECT COALESCE(max(seq), 0) FROM events),
            (SELECT COALESCE(max(acked_upto), 0) FROM event_consumers)));",
    )],
    // 11: an audit entry is found by its own resource's id through this index on the entry
    // itself; `audit_subjects` keeps only the other ids an entry mentions (a group's members,
    // a deleted user's groups). A create or update paid for two B-tree inserts there (the
    // subject row and its `seq` index), now for one: 2.4% of the server's instructions in an
    // initial sync (callgrind, issue 22). Older entries keep their subject rows until pruned.
    &[Step::Sql(
        "CREATE INDEX audit_log_resource ON audit_log (resource_id COLLATE NOCASE);",
    )],
];

/// Creates a database at an older schema version — the first `version` migrations, exactly as
/// the scimlite of that version ran them — for tests that upgrade an old database. The caller
/// fills it as the old code would.
#[doc(hidden)]
pub fn create_at_schema_version(path: &Path, version: usize) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    query::register_functions(&conn)?;
    for (i, steps) in MIGRATIONS.iter().take(version).enumerate() {
        run_migration(&mut conn, i + 1, steps)?;
    }
    Ok(conn)
}

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let latest = MIGRATIONS.len() as i64;
    if current > latest {
        return Err(StoreError::Incompatible(format!(
            "the database has schema version {current}, newer than this binary's {latest}; use a newer scimlite"
        )));
    }
    for (i, steps) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        run_migration(conn, i + 1, steps)?;
        log::info!("database migrated to schema version {}", i + 1);
    }
    Ok(())
}

/// Runs one migration and sets `user_version` to `version`, all in one transaction.
pub(super) fn run_migration(
    conn: &mut Connection,
    version: usize,
    steps: &[Step],
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for step in steps {
        match step {
            Step::Sql(sql) => tx.execute_batch(sql)?,
            Step::Check(check) => check(&tx)?,
        }
    }
    tx.pragma_update(None, "user_version", version as i64)?;
    tx.commit()?;
    Ok(())
}

/// Migration 5: refuses the upgrade, naming every pair, when two Users of a tenant have
/// userNames (or two Groups displayNames) that differ only in case beyond ASCII (`É`/`é`,
/// the Kelvin sign): SQLite's NOCASE let both in, but `eq` folds all of Unicode and finds both
/// for either name, so they cannot stay unique. The statements it prints rename all but the
/// oldest of each so the upgrade can go on; nothing else changes.
pub(super) fn check_name_collisions(tx: &Connection) -> Result<(), StoreError> {
    let mut stmt = tx.prepare(
        "SELECT r.tenant, r.kind, r.id, CASE r.kind WHEN 'User' THEN r.user_name ELSE r.display_name END
         FROM resources AS r
         JOIN (SELECT tenant, kind, name_key FROM resources WHERE name_key IS NOT NULL
               GROUP BY tenant, kind, name_key HAVING count(*) > 1) AS d
           ON d.tenant = r.tenant AND d.kind = r.kind AND d.name_key = r.name_key
         ORDER BY r.tenant, r.kind, r.name_key, r.pk",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut groups: Vec<Vec<(String, String, String, String)>> = Vec::new();
    for row in rows {
        let row = row?;
        match groups.last_mut() {
            Some(g)
                if g[0].0 == row.0
                    && g[0].1 == row.1
                    && fold_case(&g[0].3) == fold_case(&row.3) =>
            {
                g.push(row)
            }
            _ => groups.push(vec![row]),
        }
    }
    if groups.is_empty() {
        return Ok(());
    }
    let sql_text = |s: &str| s.replace('\'', "''");
    let mut listing = String::new();
    let mut fixes = String::new();
    for g in &groups {
        let (tenant, kind, _, _) = &g[0];
        let (attr, column) = if kind == "User" {
            ("userName", "user_name")
        } else {
            ("displayName", "display_name")
        };
        let names: Vec<String> = g
            .iter()
            .map(|(_, _, id, name)| format!("\"{name}\" (id {id})"))
            .collect();
        listing.push_str(&format!(
            "\n  tenant \"{tenant}\": {kind}s with {attr} {}",
            names.join(" and ")
        ));
        for (n, (_, _, id, name)) in g.iter().enumerate().skip(1) {
            let new_name = sql_text(&format!("{name} (duplicate {n})"));
            fixes.push_str(&format!(
                "\n  UPDATE resources SET {column} = '{new_name}', doc = json_set(doc, '$.{attr}', '{new_name}') WHERE tenant = '{}' AND id = '{}';",
                sql_text(tenant),
                sql_text(id)
            ));
        }
    }
    Err(StoreError::Incompatible(format!(
        "cannot upgrade the database to schema version 5: userName and group displayName are now unique \
         under the full Unicode case fold that filters use, and these names differ only in the case of \
         non-ASCII letters, so a filter for one finds both:{listing}\n\
         Nothing was changed. Keep one of each: delete or rename the others in your IdP or through the \
         SCIM API with the scimlite you upgraded from; or stop scimlite and rename them in the database \
         with the sqlite3 shell (the IdP's next update then sets the name it wants):{fixes}\n\
         Then start scimlite again."
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::test_support::*;

    #[test]
    fn migrations_are_idempotent_and_refuse_newer_databases() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.db");
        drop(SqliteStore::open(&p, Synchronous::Full).unwrap());
        drop(SqliteStore::open(&p, Synchronous::Full).unwrap());
        let c = Connection::open(&p).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        assert!(matches!(
            SqliteStore::open(&p, Synchronous::Full),
            Err(StoreError::Incompatible(_))
        ));
    }

    /// A schema-9 database whose newest events are gone (pruned, or their tenant deleted)
    /// while a consumer had passed them: after the upgrade the next event is numbered above
    /// that consumer's position, so it is delivered, and numbers are never reused again.
    #[test]
    fn an_upgrade_to_schema_10_numbers_new_events_above_every_position() {
        use crate::store::EventStore;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.db");
        {
            let c = create_at_schema_version(&p, 9).unwrap();
            c.execute_batch(
                "INSERT INTO events (seq, tenant, jti, txn, at, resource_type, resource_id, change)
                 VALUES (1, 'default', 'j1', 't', '2026-01-01T00:00:00.000Z', 'User', 'u1', '{\"op\":\"delete\"}');
                 INSERT INTO event_consumers (consumer, tenant, acked_upto) VALUES ('token:x', 'default', 7);",
            )
            .unwrap();
        }
        let s = SqliteStore::open(&p, Synchronous::Normal).unwrap();
        assert_eq!(s.events_after(None, 0, 10).unwrap().len(), 1);
        let u = s
            .create(T, ResourceKind::User, &user("a"), None, &A)
            .unwrap();
        let (got, _) = s.poll_events("token:x", T, &[], 10).unwrap();
        assert_eq!(
            got.iter()
                .map(|e| (e.seq, e.resource_id.clone()))
                .collect::<Vec<_>>(),
            vec![(8, u.id)]
        );
        // Everything pruned: the next number still goes up.
        s.prune_events("2999-01-01T00:00:00.000Z").unwrap();
        s.create(T, ResourceKind::User, &user("b"), None, &A)
            .unwrap();
        assert_eq!(s.events_after(None, 0, 10).unwrap()[0].seq, 9);
    }

    /// A database written by a schema-2 scimlite (tokens without scope or expiry) opens,
    /// migrates, and its token and data keep working.
    #[test]
    fn a_schema_2_database_upgrades_and_its_tokens_keep_working() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.db");
        let token = format!("scim_0123456789abcdef_{}", "s".repeat(43));
        {
            let c = create_at_schema_version(&p, 2).unwrap();
            // The rows as the schema-2 code wrote them.
            c.execute(
                "INSERT INTO tokens (id, tenant, name, hash, created) VALUES ('0123456789abcdef', 'default', 'okta', ?1, '2025-01-01T00:00:00.000Z')",
                [crate::auth::hash_secret(token.as_bytes(), 1000).unwrap()],
            )
            .unwrap();
            c.execute(
                "INSERT INTO tokens (id, tenant, name, hash, created, revoked) VALUES ('fedcba9876543210', 'default', 'old', 'x', '2024-01-01T00:00:00.000Z', '2024-06-01T00:00:00.000Z')",
                [],
            )
            .unwrap();
            c.execute(
                "INSERT INTO resources (tenant, kind, id, user_name, doc, created, last_modified, version)
                 VALUES ('default', 'User', 'u1', 'alice', '{\"userName\":\"alice\"}', '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z', 1)",
                [],
            )
            .unwrap();
        }
        let s = std::sync::Arc::new(SqliteStore::open(&p, Synchronous::Normal).unwrap());
        let v: i64 = s
            .writer
            .lock()
            .unwrap()
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        let t = s.token("0123456789abcdef").unwrap().unwrap();
        assert_eq!(
            (t.scope, t.expires.as_deref()),
            (TokenScope::ReadWrite, None)
        );
        assert!(s.token("fedcba9876543210").unwrap().is_none());
        let auth = crate::auth::Authenticator::new(s.clone());
        let who = auth.authenticate(&token, None).unwrap();
        assert_eq!((who.tenant.as_str(), who.read_only()), (T, false));
        assert!(s.get(T, ResourceKind::User, "u1").unwrap().is_some());
        let tenants = s.tenants().unwrap();
        assert_eq!(tenants.len(), 1);
        assert_eq!(
            (
                tenants[0].name.as_str(),
                tenants[0].users,
                tenants[0].tokens
            ),
            (T, 1, 1)
        );
        // Opening again runs nothing.
        drop(auth);
        drop(s);
        SqliteStore::open(&p, Synchronous::Normal).unwrap();
    }

    /// A schema-4 database could hold names that NOCASE (ASCII only) let in and the fold does
    /// not: the upgrade is refused, names them and says how to fix them, and changes nothing.
    #[test]
    fn an_upgrade_with_names_that_now_collide_names_them_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.db");
        {
            let c = create_at_schema_version(&p, 4).unwrap();
            // Pairwise different under NOCASE (which ignores ASCII case only), equal folded.
            for (id, kind, name) in [
                ("u1", "User", "ÉLÈVE"),
                ("u2", "User", "élève"),
                ("u3", "User", "Élève"),
                ("u4", "User", "bob"),
                ("g1", "Group", "Ärger"),
                ("g2", "Group", "äRGER"),
            ] {
                let column = if kind == "User" {
                    "user_name"
                } else {
                    "display_name"
                };
                let attr = if kind == "User" {
                    "userName"
                } else {
                    "displayName"
                };
                c.execute(
                    &format!(
                        "INSERT INTO resources (tenant, kind, id, {column}, doc, created, last_modified, version)
                         VALUES ('default', ?1, ?2, ?3, json_object('{attr}', ?3), '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z', 1)"
                    ),
                    params![kind, id, name],
                )
                .unwrap();
            }
        }
        let err = match SqliteStore::open(&p, Synchronous::Normal) {
            Err(StoreError::Incompatible(m)) => m,
            other => panic!("expected the upgrade to be refused, got {:?}", other.err()),
        };
        for needle in [
            "schema version 5",
            "\"ÉLÈVE\" (id u1) and \"élève\" (id u2) and \"Élève\" (id u3)",
            "Groups with displayName \"Ärger\" (id g1) and \"äRGER\" (id g2)",
            "Nothing was changed",
        ] {
            assert!(err.contains(needle), "{needle} not in:\n{err}");
        }
        assert!(!err.contains("bob"), "{err}");
        let c = Connection::open(&p).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 4, "the refused migration left the schema as it was");
        // The printed statements fix it: the oldest of each keeps its name.
        for line in err.lines().filter(|l| l.trim_start().starts_with("UPDATE")) {
            c.execute(line.trim(), []).unwrap();
        }
        drop(c);
        let s = SqliteStore::open(&p, Synchronous::Normal).unwrap();
        let name = |id: &str, kind| {
            let r = s.get(T, kind, id).unwrap().unwrap();
            let attr = if kind == ResourceKind::User {
                "userName"
            } else {
                "displayName"
            };
            r.doc[attr].as_str().unwrap().to_string()
        };
        assert_eq!(name("u1", ResourceKind::User), "ÉLÈVE");
        assert_eq!(name("u2", ResourceKind::User), "élève (duplicate 1)");
        assert_eq!(name("u3", ResourceKind::User), "Élève (duplicate 2)");
        assert_eq!(name("g2", ResourceKind::Group), "äRGER (duplicate 1)");
        let f = crate::scim::filter::parse(r#"userName eq "élève""#).unwrap();
        let (n, rows) = s
            .list(T, ResourceKind::User, Some(&f), None, PAGE, BASE)
            .unwrap();
        assert_eq!((n, rows[0].id.as_str()), (1, "u1"));
    }
}
