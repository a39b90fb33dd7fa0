//! Schema migrations, numbered as SQLite's are (schema version N is the same schema on both
//! backends), each in one transaction with its version bump. Every transaction first takes a
//! transaction-level advisory lock and reads the version again, so instances that start at
//! once migrate one after the other and the later ones find nothing left to do.
//!
//! Differences from SQLite's SQL, all of them dialect:
//! - Every text column is `COLLATE "C"`: comparisons and indexes go by bytes, i.e. by code
//!   point, as SQLite's BINARY does, whatever the database's own collation.
//! - `doc` is `jsonb`; `pk` and the audit log's `seq` are identity columns; tokens have an
//!   identity `seq` for creation order (SQLite's rowid).
//! - `scim_fold(text)` is `lower()` under ICU's root collation, which maps case as Rust's
//!   `str::to_lowercase` does (final sigma included; `fold_case_agrees_with_rust` in the
//!   tests checks it character by character).
//! - SQLite's NOCASE columns and indexes (ASCII-only case) are not repeated: `name_key`, the
//!   full Unicode fold, is unique and refuses everything NOCASE would; the audit log's
//!   name and subject lookups fold ASCII case explicitly (`lower(… COLLATE "C")`).
//! - Migration 5 has no collision check: no PostgreSQL database predates `name_key`.

use postgres::Client;

use super::StoreError;

/// The advisory lock key migrations hold ("scimlite" in ASCII).
const MIGRATION_LOCK: i64 = 0x7363_696d_6c69_7465;

/// Ordered schema migrations; each runs in its own transaction with the version bump.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: tenants, resources with indexed search columns, memberships as rows, tokens.
    r#"CREATE FUNCTION scim_fold(t text) RETURNS text
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT lower(t COLLATE "und-x-icu") COLLATE "C" $$;
    -- An RFC 3339 time as integer milliseconds since 1970 (SQLite's `unixepoch(t, 'subsec')`
    -- rounded); NULL for text of another shape, so a filter never fails on a stored value.
    -- STABLE: the cast reads the session's settings, though an explicit offset leaves none
    -- to read.
    CREATE FUNCTION scim_millis(t text) RETURNS bigint
        LANGUAGE sql STABLE STRICT PARALLEL SAFE
        AS $$ SELECT CASE WHEN t ~ '^([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)([.][0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$'
            THEN round(extract(epoch FROM t::timestamptz) * 1000)::bigint END $$;
    CREATE TABLE tenants (
        name    TEXT COLLATE "C" PRIMARY KEY,
        created TEXT NOT NULL
    );
    CREATE TABLE resources (
        pk            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant        TEXT COLLATE "C" NOT NULL REFERENCES tenants(name),
        kind          TEXT COLLATE "C" NOT NULL CHECK (kind IN ('User', 'Group')),
        id            TEXT COLLATE "C" NOT NULL,
        user_name     TEXT COLLATE "C",
        display_name  TEXT COLLATE "C",
        external_id   TEXT COLLATE "C",
        doc           JSONB NOT NULL,
        password_hash TEXT,
        created       TEXT COLLATE "C" NOT NULL,
        last_modified TEXT COLLATE "C" NOT NULL,
        version       BIGINT NOT NULL,
        CONSTRAINT resources_tenant_id UNIQUE (tenant, id)
    );
    CREATE INDEX resources_external_id ON resources (tenant, kind, external_id);
    CREATE INDEX resources_kind ON resources (tenant, kind, pk);
    CREATE TABLE memberships (
        group_pk  BIGINT NOT NULL REFERENCES resources(pk) ON DELETE CASCADE,
        member_pk BIGINT NOT NULL REFERENCES resources(pk) ON DELETE CASCADE,
        PRIMARY KEY (group_pk, member_pk)
    );
    CREATE INDEX memberships_member ON memberships (member_pk, group_pk);
    CREATE TABLE tokens (
        seq       BIGINT GENERATED ALWAYS AS IDENTITY,
        id        TEXT COLLATE "C" PRIMARY KEY,
        tenant    TEXT COLLATE "C" NOT NULL REFERENCES tenants(name),
        name      TEXT COLLATE "C" NOT NULL,
        hash      TEXT NOT NULL,
        created   TEXT NOT NULL,
        last_used TEXT,
        revoked   TEXT
    );
    INSERT INTO tenants (name, created)
        VALUES ('default', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));"#,
    // 2: read-only views for applications (README, "SQL views"): the names and columns of
    // SQLite's. Column names keep their case, so they are quoted in queries ("userName").
    r#"CREATE VIEW scim_users AS
    SELECT
        r.tenant AS tenant,
        r.id AS id,
        r.user_name AS "userName",
        r.display_name AS "displayName",
        r.external_id AS "externalId",
        CASE jsonb_typeof(r.doc -> 'active') WHEN 'boolean' THEN (r.doc ->> 'active')::boolean END AS active,
        r.doc #>> '{name,givenName}' AS "givenName",
        r.doc #>> '{name,familyName}' AS "familyName",
        (SELECT e.value ->> 'value'
         FROM jsonb_array_elements(CASE jsonb_typeof(r.doc -> 'emails') WHEN 'array' THEN r.doc -> 'emails' END)
              WITH ORDINALITY AS e(value, i)
         ORDER BY (e.value -> 'primary') = 'true'::jsonb IS TRUE DESC, e.i LIMIT 1) AS "primaryEmail",
        r.created AS created,
        r.last_modified AS "lastModified",
        r.version AS version,
        r.doc || jsonb_build_object(
            'schemas', CASE
                WHEN r.doc ? 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'
                THEN jsonb_build_array('urn:ietf:params:scim:schemas:core:2.0:User',
                                       'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User')
                ELSE jsonb_build_array('urn:ietf:params:scim:schemas:core:2.0:User')
            END,
            'id', r.id,
            'meta', jsonb_build_object('resourceType', 'User', 'created', r.created,
                'lastModified', r.last_modified, 'version', 'W/"' || r.version || '"')
        ) AS doc
    FROM resources AS r
    WHERE r.kind = 'User';
    CREATE VIEW scim_groups AS
    SELECT
        r.tenant AS tenant,
        r.id AS id,
        r.display_name AS "displayName",
        r.external_id AS "externalId",
        (SELECT count(*) FROM memberships AS m WHERE m.group_pk = r.pk) AS "memberCount",
        r.created AS created,
        r.last_modified AS "lastModified",
        r.version AS version,
        r.doc || jsonb_build_object(
            'schemas', jsonb_build_array('urn:ietf:params:scim:schemas:core:2.0:Group'),
            'id', r.id,
            'meta', jsonb_build_object('resourceType', 'Group', 'created', r.created,
                'lastModified', r.last_modified, 'version', 'W/"' || r.version || '"')
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
    JOIN resources AS m ON m.pk = ms.member_pk;"#,
    // 3: scoped tokens (read-only, expiry) and per-tenant token lookups for rotation.
    r#"ALTER TABLE tokens ADD COLUMN scope TEXT COLLATE "C" NOT NULL DEFAULT 'read-write'
        CHECK (scope IN ('read-write', 'read-only'));
    ALTER TABLE tokens ADD COLUMN expires TEXT;
    CREATE INDEX tokens_tenant ON tokens (tenant, revoked);"#,
    // 4: the audit log and the row `/healthz` writes. `at` is UTC with exactly three fraction
    // digits (text order is time order). Subjects are found with ASCII case folded, as
    // SQLite's NOCASE finds them.
    r#"CREATE TABLE audit_log (
        seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at            TEXT COLLATE "C" NOT NULL,
        tenant        TEXT COLLATE "C" NOT NULL,
        actor_id      TEXT COLLATE "C",
        actor_name    TEXT NOT NULL,
        via           TEXT NOT NULL,
        operation     TEXT NOT NULL,
        resource_type TEXT NOT NULL,
        resource_id   TEXT COLLATE "C" NOT NULL,
        resource_name TEXT COLLATE "C",
        changes       JSONB NOT NULL
    );
    CREATE TABLE audit_subjects (
        subject TEXT COLLATE "C" NOT NULL,
        seq     BIGINT NOT NULL
    );
    CREATE UNIQUE INDEX audit_subjects_key ON audit_subjects (lower(subject), seq);
    CREATE INDEX audit_subjects_seq ON audit_subjects (seq);
    CREATE TABLE health_probe (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        probes BIGINT NOT NULL
    );
    INSERT INTO health_probe (id, probes) VALUES (1, 0);"#,
    // 5: userName (Users) and displayName (Groups) unique under the full Unicode case fold
    // that `eq` uses: `name_key`, written by the store on every insert and update.
    r#"ALTER TABLE resources ADD COLUMN name_key TEXT COLLATE "C";
    CREATE UNIQUE INDEX users_name_key ON resources (tenant, name_key) WHERE kind = 'User';
    CREATE UNIQUE INDEX groups_name_key ON resources (tenant, name_key) WHERE kind = 'Group';"#,
    // 6: schema extensions (see SQLite's migration 6). The attribute views: one row per value
    // (each element of a multi-valued attribute); `value` is the value as text (a string
    // without quotes, numbers and booleans as JSON writes them, complex values as JSON) and
    // `type` SQLite's name for its JSON type (text, integer, real, true, false, object,
    // array, null), so queries on `type` read the same on both backends.
    r#"CREATE TABLE schema_extensions (
        kind TEXT COLLATE "C" NOT NULL CHECK (kind IN ('User', 'Group')),
        urn  TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (kind, urn)
    );
    INSERT INTO schema_extensions (kind, urn)
        VALUES ('User', 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User');
    CREATE TABLE unique_attributes (
        kind      TEXT COLLATE "C" NOT NULL,
        attribute TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (kind, attribute)
    );
    CREATE TABLE unique_values (
        tenant    TEXT COLLATE "C" NOT NULL,
        kind      TEXT COLLATE "C" NOT NULL,
        attribute TEXT COLLATE "C" NOT NULL,
        value     TEXT COLLATE "C" NOT NULL,
        pk        BIGINT NOT NULL REFERENCES resources(pk) ON DELETE CASCADE,
        CONSTRAINT unique_values_key PRIMARY KEY (tenant, kind, attribute, value)
    );
    CREATE INDEX unique_values_pk ON unique_values (pk);
    CREATE FUNCTION scim_json_type(v jsonb) RETURNS text
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT CASE jsonb_typeof(v)
            WHEN 'string' THEN 'text'
            WHEN 'number' THEN CASE WHEN (v::text) ~ '^-?[0-9]+$' THEN 'integer' ELSE 'real' END
            WHEN 'boolean' THEN v::text
            ELSE jsonb_typeof(v) END $$;
    CREATE VIEW scim_user_attributes AS
    SELECT r.tenant AS tenant, r.id AS user_id, x.urn AS urn, a.key AS name,
           CASE jsonb_typeof(a.value) WHEN 'array' THEN e.value #>> '{}' ELSE a.value #>> '{}' END AS value,
           scim_json_type(CASE jsonb_typeof(a.value) WHEN 'array' THEN e.value ELSE a.value END) AS type
    FROM resources AS r
    JOIN schema_extensions AS x ON x.kind = 'User'
    CROSS JOIN LATERAL jsonb_each(CASE jsonb_typeof(r.doc -> x.urn) WHEN 'object' THEN r.doc -> x.urn END) AS a
    LEFT JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(a.value) WHEN 'array' THEN a.value END)
        WITH ORDINALITY AS e(value, i) ON true
    WHERE r.kind = 'User' AND (jsonb_typeof(a.value) <> 'array' OR e.i IS NOT NULL);
    CREATE VIEW scim_group_attributes AS
    SELECT r.tenant AS tenant, r.id AS group_id, x.urn AS urn, a.key AS name,
           CASE jsonb_typeof(a.value) WHEN 'array' THEN e.value #>> '{}' ELSE a.value #>> '{}' END AS value,
           scim_json_type(CASE jsonb_typeof(a.value) WHEN 'array' THEN e.value ELSE a.value END) AS type
    FROM resources AS r
    JOIN schema_extensions AS x ON x.kind = 'Group'
    CROSS JOIN LATERAL jsonb_each(CASE jsonb_typeof(r.doc -> x.urn) WHEN 'object' THEN r.doc -> x.urn END) AS a
    LEFT JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(a.value) WHEN 'array' THEN a.value END)
        WITH ORDINALITY AS e(value, i) ON true
    WHERE r.kind = 'Group' AND (jsonb_typeof(a.value) <> 'array' OR e.i IS NOT NULL);"#,
    // 7: provisioning events (see SQLite's migration 7 and `events.rs`): the outbox, each
    // consumer's position and acknowledgements, the signing keys; tokens gain the `events`
    // and `admin` scopes.
    r#"CREATE TABLE events (
        seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant        TEXT COLLATE "C" NOT NULL,
        jti           TEXT COLLATE "C" NOT NULL UNIQUE,
        txn           TEXT NOT NULL,
        at            TEXT COLLATE "C" NOT NULL,
        resource_type TEXT NOT NULL,
        resource_id   TEXT COLLATE "C" NOT NULL,
        change        TEXT NOT NULL
    );
    CREATE INDEX events_tenant ON events (tenant, seq);
    CREATE TABLE event_consumers (
        consumer    TEXT COLLATE "C" PRIMARY KEY,
        tenant      TEXT COLLATE "C" NOT NULL,
        acked_upto  BIGINT NOT NULL,
        lease_owner TEXT COLLATE "C",
        lease_until TEXT COLLATE "C",
        failures    BIGINT NOT NULL DEFAULT 0,
        last_error  TEXT
    );
    CREATE TABLE event_acks (
        consumer TEXT COLLATE "C" NOT NULL,
        seq      BIGINT NOT NULL,
        PRIMARY KEY (consumer, seq)
    );
    CREATE TABLE event_keys (
        kid        TEXT COLLATE "C" PRIMARY KEY,
        created    TEXT COLLATE "C" NOT NULL,
        pkcs8      BYTEA NOT NULL,
        public_key BYTEA NOT NULL,
        retired    TEXT COLLATE "C"
    );
    ALTER TABLE tokens DROP CONSTRAINT tokens_scope_check;
    ALTER TABLE tokens ADD CONSTRAINT tokens_scope_check
        CHECK (scope IN ('read-write', 'read-only', 'events', 'admin'));"#,
    // 8: admin console sessions (see SQLite's migration 8 and `sessions.rs`): the SHA-256 of
    // each session's secret, never the secret; a session goes with its token's row. Times
    // are text in "C" order, which is time order.
    r#"CREATE TABLE admin_sessions (
        digest   TEXT COLLATE "C" PRIMARY KEY,
        token_id TEXT COLLATE "C" NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
        created  TEXT COLLATE "C" NOT NULL,
        expires  TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX admin_sessions_token ON admin_sessions (token_id);
    CREATE INDEX admin_sessions_expires ON admin_sessions (expires);"#,
    // 9: the key RFC 9865 cursors are sealed with: one row, written by the first instance
    // to start, read by every other.
    r#"CREATE TABLE cursor_key (
        one     BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
        key     BYTEA NOT NULL,
        created TEXT COLLATE "C" NOT NULL
    );"#,
    // 10: nothing to change. SQLite's migration 10 makes `events.seq` never reuse a number
    // after pruning; an identity column never did. Kept so both backends count alike.
    r#"SELECT 1;"#,
    // 11: as SQLite's: an audit entry is found by its own resource's id through this index
    // on the entry itself; `audit_subjects` keeps only the other ids an entry mentions, so a
    // write saves a statement (a round trip) and an index insert. Older entries keep their
    // subject rows until pruned.
    r#"CREATE INDEX audit_log_resource ON audit_log (lower(resource_id));"#,
];

/// Brings the schema up to date, one migration per transaction under the advisory lock.
pub(super) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let latest = MIGRATIONS.len() as i64;
    loop {
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        // Without it every start logs the server's notice that the table already exists.
        tx.batch_execute(
            "SET LOCAL client_min_messages = warning;
             CREATE TABLE IF NOT EXISTS scimlite_schema (
                 one     BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
                 version BIGINT NOT NULL
             );
             INSERT INTO scimlite_schema (version) VALUES (0) ON CONFLICT DO NOTHING;",
        )?;
        let current: i64 = tx
            .query_one("SELECT version FROM scimlite_schema", &[])?
            .get(0);
        if current > latest {
            return Err(StoreError::Incompatible(format!(
                "the database has schema version {current}, newer than this binary's {latest}; use a newer scimlite"
            )));
        }
        if current == latest {
            tx.commit()?;
            return Ok(());
        }
        if current == 0 {
            let icu: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu')",
                    &[],
                )?
                .get(0);
            if !icu {
                return Err(StoreError::Incompatible(
                    "this PostgreSQL has no ICU collations (\"und-x-icu\"), which scimlite needs to fold case as its filters do; use a PostgreSQL built with ICU (Debian's and most distributions' are)".into(),
                ));
            }
        }
        let next = current + 1;
        tx.batch_execute(MIGRATIONS[current as usize])?;
        tx.execute("UPDATE scimlite_schema SET version = $1", &[&next])?;
        tx.commit()?;
        log::info!("database migrated to schema version {next}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::test_support::*;
    use crate::store::postgres::ConnectOptions;

    fn client(options: &ConnectOptions) -> Client {
        options
            .connect_config()
            .unwrap()
            .connect(postgres::NoTls)
            .unwrap()
    }

    #[test]
    fn migrations_are_idempotent_and_refuse_newer_databases() {
        let Some(db) = test_db() else { return };
        drop(PostgresStore::open(&db.options, 2).unwrap());
        drop(PostgresStore::open(&db.options, 2).unwrap());
        let mut c = client(&db.options);
        let v: i64 = c
            .query_one("SELECT version FROM scimlite_schema", &[])
            .unwrap()
            .get(0);
        assert_eq!(v, MIGRATIONS.len() as i64);
        c.execute("UPDATE scimlite_schema SET version = 99", &[])
            .unwrap();
        assert!(matches!(
            PostgresStore::open(&db.options, 2),
            Err(StoreError::Incompatible(_))
        ));
    }

    /// Instances that start at once on an empty database: one migrates, the others wait for
    /// the lock and find the schema current.
    #[test]
    fn instances_starting_at_once_migrate_once() {
        let Some(db) = test_db() else { return };
        let opened: Vec<Result<PostgresStore, StoreError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| PostgresStore::open(&db.options, 2)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for o in opened {
            o.unwrap();
        }
        let mut c = client(&db.options);
        let tenants: i64 = c
            .query_one("SELECT count(*) FROM tenants", &[])
            .unwrap()
            .get(0);
        assert_eq!(tenants, 1, "the default tenant, created once");
    }
}
