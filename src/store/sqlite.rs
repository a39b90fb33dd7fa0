//! SQLite backend: one writer connection behind a mutex (SQLite has one writer anyway) and a
//! small pool of reader connections; WAL, so readers never block the writer.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{
    params, params_from_iter, Connection, OpenFlags, OptionalExtension, TransactionBehavior,
};
use serde_json::{Map, Value};

mod audit;
mod backup;
mod file;
mod transfer;
mod unique;

pub use backup::{backup, BackupError, BackupReport};

use super::{
    now_rfc3339, Actor, AuditEntry, AuditQuery, CheckFn, ExportFn, ImportFailed, ImportOutcome,
    ImportResource, MemberChange, PasswordUpdate, ResourceCount, Store, StoreError, StoredResource,
    TenantDeleted, TenantInfo, TokenRecord, TokenScope, UpdateFn, UpdateOp,
};
use crate::metrics::{Histogram, BATCH_BUCKETS};
use crate::scim::filter::{fold_case, Filter};
use crate::scim::list::{Page, Sort};
use crate::scim::resource::{MemberInput, Meta, Reference, ValidResource};
use crate::scim::schema::Registry;
use crate::scim::ResourceKind;
use audit::MemberDelta;

mod query;

/// One step of a migration: SQL, or a check in Rust that may refuse the upgrade (the
/// transaction is then rolled back and the database stays as it was).
enum Step {
    Sql(&'static str),
    Check(fn(&Connection) -> Result<(), StoreError>),
}

/// Ordered schema migrations; each runs in its own transaction with the `user_version` bump.
const MIGRATIONS: &[&[Step]] = &[
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
];

/// Durability of a commit: `Full` survives power loss, `Normal` only a process crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    Full,
    Normal,
}

pub struct SqliteStore {
    path: std::path::PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// `None` with `synchronous = normal`: commits are not synced.
    group_commit: Option<GroupCommit>,
    /// Audit entries older than this many days are pruned; `None` keeps them forever.
    audit_retention_days: Option<u32>,
    /// When the next write prunes old audit entries (a write, so no thread of its own).
    next_prune: Mutex<Instant>,
    /// The schemas filters and sorts are compiled against.
    registry: Arc<Registry>,
}

/// How often writes prune the audit log.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How long `/healthz` waits for the write lock before calling the database unwritable.
const HEALTH_LOCK_WAIT: Duration = Duration::from_secs(1);
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    query::register_functions(conn)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Commits write the WAL without fsync; with `Synchronous::Full` the group commit below
    // makes each acknowledged write durable. WAL with NORMAL never corrupts the database.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

/// Group commit. Each write transaction commits (SQLite `synchronous = NORMAL`: the WAL is
/// written, not synced) and releases the writer; the request then waits until one fsync of
/// the WAL covers its commit. Whoever finds no fsync running does it for everyone committed
/// so far, so concurrent writers share one fsync instead of queueing for one each, and the
/// next transaction runs while the disk syncs. A commit is acknowledged only once durable.
struct GroupCommit {
    wal: std::path::PathBuf,
    state: Mutex<SyncState>,
    synced_cv: Condvar,
}

struct SyncState {
    /// Sequence number of the newest commit.
    committed: u64,
    /// Every commit up to this one is durable.
    synced: u64,
    syncing: bool,
    /// How many commits each fsync made durable (metrics: "write batch sizes").
    batch_sizes: Histogram,
}

impl Default for SyncState {
    fn default() -> Self {
        SyncState {
            committed: 0,
            synced: 0,
            syncing: false,
            batch_sizes: Histogram::new(BATCH_BUCKETS),
        }
    }
}

impl GroupCommit {
    fn new(db: &Path) -> GroupCommit {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        GroupCommit {
            wal: wal.into(),
            state: Mutex::new(SyncState::default()),
            synced_cv: Condvar::new(),
        }
    }

    /// Called with the writer held, right after a commit: its sequence number.
    fn committed(&self) -> u64 {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.committed += 1;
        st.committed
    }

    fn wait_durable(&self, seq: u64) -> Result<(), StoreError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if st.synced >= seq {
                return Ok(());
            }
            if st.syncing {
                st = self.synced_cv.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.syncing = true;
            let target = st.committed;
            drop(st);
            let result = sync_file(&self.wal);
            st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.syncing = false;
            if result.is_ok() {
                // Only the syncer moves `synced`, so it is still what it was before the fsync.
                let covered = target.saturating_sub(st.synced);
                st.batch_sizes.observe(covered as f64);
                st.synced = st.synced.max(target);
            }
            self.synced_cv.notify_all();
            result.map_err(|e| StoreError::Durability(e.to_string()))?;
        }
    }
}

/// fsync of the WAL through a fresh handle (fsync covers every write to the file, whichever
/// descriptor made it). No WAL file means a checkpoint moved everything into the database
/// and synced it.
fn sync_file(path: &Path) -> std::io::Result<()> {
    match std::fs::File::open(path) {
        Ok(f) => f.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl SqliteStore {
    /// Opens or creates the database and brings its schema up to date.
    pub fn open(path: &Path, sync: Synchronous) -> Result<SqliteStore, StoreError> {
        file::create_private(path)?;
        let mut conn = Connection::open(path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            log::warn!("SQLite refused WAL mode (got {mode}); concurrent reads will block writes");
        }
        configure(&conn)?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            group_commit: match sync {
                Synchronous::Full => Some(GroupCommit::new(path)),
                Synchronous::Normal => None,
            },
            audit_retention_days: None,
            next_prune: Mutex::new(Instant::now()),
            registry: Arc::new(Registry::builtin()),
        })
    }

    /// Compiles filters and sorts against `registry` (the built-in schemas until this is
    /// called): the server passes the one built from its config, with the declared extensions.
    pub fn with_registry(mut self, registry: Arc<Registry>) -> SqliteStore {
        self.registry = registry;
        self
    }

    /// Records the registry's extensions in the database (for the SQL views) and makes its
    /// unique extension attributes unique (`unique::sync`). The server calls it at start.
    pub fn sync_schema(&self) -> Result<(), StoreError> {
        self.write(|tx| unique::sync(tx, &self.registry))
    }

    /// The extension URNs stored documents hold values under, per resource type, with how many
    /// resources hold each: `check-config` names those the config no longer declares.
    pub fn stored_extensions(&self) -> Result<Vec<(ResourceKind, String, u64)>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT r.kind, j.key, count(*) FROM resources AS r, json_each(r.doc) AS j
                 WHERE j.key LIKE 'urn:%' GROUP BY 1, 2 ORDER BY 1, 2",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            rows.map(|row| {
                let (kind, urn, n) = row?;
                Ok((parse_kind(&kind)?, urn, n.max(0) as u64))
            })
            .collect()
        })
    }

    /// Keeps audit entries for `days` days (pruned by writes, at most hourly); `None` or
    /// `Some(0)` keeps them forever.
    pub fn with_audit_retention(mut self, days: Option<u32>) -> SqliteStore {
        self.audit_retention_days = days.filter(|&d| d > 0);
        self
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_waiting(None, f)
    }

    /// A write transaction; `lock_wait` overrides how long it waits for SQLite's write lock.
    fn write_waiting<T>(
        &self,
        lock_wait: Option<Duration>,
        f: impl FnOnce(&rusqlite::Transaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let (out, seq) = {
            let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(wait) = lock_wait {
                conn.busy_timeout(wait)?;
            }
            let result = (|| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let out = f(&tx)?;
                self.prune_if_due(&tx);
                tx.commit()?;
                Ok::<_, StoreError>(out)
            })();
            if lock_wait.is_some() {
                conn.busy_timeout(BUSY_TIMEOUT)?;
            }
            (
                result?,
                self.group_commit.as_ref().map(GroupCommit::committed),
            )
        };
        if let (Some(gc), Some(seq)) = (&self.group_commit, seq) {
            gc.wait_durable(seq)?;
        }
        Ok(out)
    }

    /// Prunes old audit entries inside the current write, at most every [`PRUNE_EVERY`] (or
    /// again at once while a backlog remains). A failure only costs a log line: the write
    /// itself goes ahead.
    fn prune_if_due(&self, tx: &Connection) {
        let Some(days) = self.audit_retention_days else {
            return;
        };
        let now = Instant::now();
        {
            let next = self.next_prune.lock().unwrap_or_else(|p| p.into_inner());
            if now < *next {
                return;
            }
        }
        let backlog = match audit::prune(tx, days) {
            Ok(n) => {
                if n > 0 {
                    log::info!("audit log: pruned {n} entries older than {days} days");
                }
                n >= audit::PRUNE_BATCH as usize
            }
            Err(e) => {
                log::warn!("audit log: pruning failed: {e}");
                false
            }
        };
        if !backlog {
            *self.next_prune.lock().unwrap_or_else(|p| p.into_inner()) = now + PRUNE_EVERY;
        }
    }

    /// How many commits each WAL fsync covered since start; `None` with `synchronous =
    /// normal` (no fsync per commit).
    pub fn write_batch_sizes(&self) -> Option<Histogram> {
        self.group_commit.as_ref().map(|gc| {
            gc.state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .batch_sizes
                .clone()
        })
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_reader(true, f)
    }

    /// A read of one statement: its own snapshot already, so no BEGIN/COMMIT around it (the
    /// token check of every request).
    fn read_one<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_reader(false, f)
    }

    fn with_reader<T>(
        &self,
        transaction: bool,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX
                        | OpenFlags::SQLITE_OPEN_URI,
                )?;
                c.busy_timeout(BUSY_TIMEOUT)?;
                // Filters and sorts call `scim_fold` (see `query`).
                query::register_functions(&c)?;
                c
            }
        };
        let out = if transaction {
            // A read of several statements sees one snapshot. Cached: execute_batch would
            // parse both statements again on every read.
            conn.prepare_cached("BEGIN")?.execute([])?;
            let out = f(&conn);
            let _ = conn
                .prepare_cached("COMMIT")
                .and_then(|mut commit| commit.execute([]));
            out
        } else {
            f(&conn)
        };
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        out
    }

    /// Whether the database takes a write right now (for `/healthz`): a real change to the
    /// database file, committed and (with `synchronous = full`) synced like any write, waiting
    /// at most [`HEALTH_LOCK_WAIT`] for another process's write lock.
    pub fn writable(&self) -> Result<(), StoreError> {
        self.write_waiting(Some(HEALTH_LOCK_WAIT), |tx| {
            tx.execute(
                "UPDATE health_probe SET probes = probes + 1 WHERE id = 1",
                [],
            )?;
            Ok(())
        })
    }
}

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

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
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
fn run_migration(conn: &mut Connection, version: usize, steps: &[Step]) -> Result<(), StoreError> {
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
fn check_name_collisions(tx: &Connection) -> Result<(), StoreError> {
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

fn kind_str(kind: ResourceKind) -> &'static str {
    kind.name()
}

fn parse_kind(s: &str) -> Result<ResourceKind, StoreError> {
    match s {
        "User" => Ok(ResourceKind::User),
        "Group" => Ok(ResourceKind::Group),
        other => Err(StoreError::Corrupt(format!(
            "unknown resource kind {other}"
        ))),
    }
}

const RESOURCE_COLUMNS: &str = "id, kind, doc, created, last_modified, version";

fn row_to_resource(row: &rusqlite::Row) -> rusqlite::Result<(String, String, String, Meta)> {
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

fn into_resource(
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
fn conflict(
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
        _ => StoreError::Backend(e),
    }
}

/// The columns a resource's document is searched and kept unique by.
struct SearchColumns<'a> {
    user_name: Option<&'a str>,
    display_name: Option<&'a str>,
    external_id: Option<&'a str>,
    /// The unique name (`userName` of a User, `displayName` of a Group) folded as `eq`
    /// compares it ([`fold_case`]); the unique indexes are on it.
    name_key: Option<String>,
}

fn search_columns(kind: ResourceKind, doc: &Map<String, Value>) -> SearchColumns<'_> {
    let text = |name: &str| doc.get(name).and_then(Value::as_str);
    let (user_name, display_name) = (text("userName"), text("displayName"));
    let (user_name, unique) = match kind {
        ResourceKind::User => (user_name, user_name),
        ResourceKind::Group => (None, display_name),
    };
    SearchColumns {
        user_name,
        display_name,
        external_id: text("externalId"),
        name_key: unique.map(fold_case),
    }
}

fn pk_of(
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
fn by_id_sql(columns: &str, kind: ResourceKind) -> String {
    format!(
        "SELECT {columns} FROM resources WHERE tenant = ?1 AND id = ?2 AND kind = '{}'",
        kind_str(kind)
    )
}

/// One page of a list: LIMIT and OFFSET are written as numbers (our own integers, never
/// client text), because SQLite re-plans a statement whose bound LIMIT changes.
fn page_sql(where_sql: &str, order_sql: &str, limit: u64, offset: u64) -> String {
    let limit = limit.min(i64::MAX as u64);
    let offset = offset.min(i64::MAX as u64);
    format!(
        "SELECT {RESOURCE_COLUMNS} FROM resources WHERE {where_sql} ORDER BY {order_sql} LIMIT {limit} OFFSET {offset}"
    )
}

/// Looks up a prospective member: it must exist in the same tenant, match the `type` the
/// client gave, and not be the group itself. Returns its pk and whether it is a Group.
fn member_pk(
    tx: &Connection,
    tenant: &str,
    group_id: &str,
    m: &MemberInput,
) -> Result<(i64, bool), StoreError> {
    if m.value == group_id {
        return Err(StoreError::InvalidReference(
            "a group cannot be a member of itself".into(),
        ));
    }
    let mut find =
        tx.prepare_cached("SELECT pk, kind FROM resources WHERE tenant = ?1 AND id = ?2")?;
    let found: Option<(i64, String)> = find
        .query_row(params![tenant, m.value], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((pk, kind)) = found else {
        return Err(StoreError::InvalidReference(format!(
            "member \"{}\" is not an existing User or Group",
            m.value
        )));
    };
    if let Some(expected) = m.kind {
        if parse_kind(&kind)? != expected {
            return Err(StoreError::InvalidReference(format!(
                "member \"{}\" is a {kind}, not a {}",
                m.value,
                expected.name()
            )));
        }
    }
    Ok((pk, kind == "Group"))
}

/// Whether `candidate` already contains `group_pk`, directly or through nested groups, so
/// that adding it to the group would make a cycle. Walks up from the group (its ancestors
/// are few), never down through a big member group.
fn contains_transitively(
    tx: &Connection,
    candidate: i64,
    group_pk: i64,
) -> Result<bool, StoreError> {
    let mut stmt = tx.prepare_cached(
        "WITH RECURSIVE up(pk) AS (
            SELECT group_pk FROM memberships WHERE member_pk = ?1
            UNION
            SELECT m.group_pk FROM memberships m JOIN up ON m.member_pk = up.pk
         )
         SELECT EXISTS (SELECT 1 FROM up WHERE pk = ?2)",
    )?;
    Ok(stmt.query_row(params![group_pk, candidate], |r| r.get(0))?)
}

/// Adds members; returns how many were not members before (and notes them in `delta`).
fn add_members(
    tx: &Connection,
    tenant: &str,
    group_pk: i64,
    group_id: &str,
    members: &[MemberInput],
    delta: &mut MemberDelta,
) -> Result<usize, StoreError> {
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO memberships (group_pk, member_pk) VALUES (?1, ?2)",
    )?;
    let mut added = 0;
    for m in members {
        let (pk, is_group) = member_pk(tx, tenant, group_id, m)?;
        // Groups may contain groups, but not in a cycle: "members of members" must end.
        if is_group && contains_transitively(tx, pk, group_pk)? {
            return Err(StoreError::InvalidReference(format!(
                "group \"{}\" already contains this group; adding it would make a cycle",
                m.value
            )));
        }
        let n = insert.execute(params![group_pk, pk])?;
        if n > 0 {
            delta.added.push(m.value.clone());
        }
        added += n;
    }
    Ok(added)
}

/// Removes members by id; returns how many were removed (and notes them in `delta`).
fn remove_members(
    tx: &Connection,
    tenant: &str,
    group_pk: i64,
    ids: &[String],
    delta: &mut MemberDelta,
) -> Result<usize, StoreError> {
    let mut delete = tx.prepare_cached(
        "DELETE FROM memberships WHERE group_pk = ?1
         AND member_pk = (SELECT pk FROM resources WHERE tenant = ?2 AND id = ?3)",
    )?;
    let mut removed = 0;
    for id in ids {
        let n = delete.execute(params![group_pk, tenant, id])?;
        if n > 0 {
            delta.removed.push(id.clone());
        }
        removed += n;
    }
    Ok(removed)
}

/// Replaces a group's member rows. Every member must exist in the same tenant; a group may
/// contain groups but not itself.
fn set_members(
    tx: &Connection,
    tenant: &str,
    group_pk: i64,
    group_id: &str,
    members: &[MemberInput],
    delta: &mut MemberDelta,
) -> Result<usize, StoreError> {
    let current = member_ids(tx, group_pk)?;
    let wanted: std::collections::HashSet<&str> =
        members.iter().map(|m| m.value.as_str()).collect();
    let gone: Vec<String> = current
        .iter()
        .filter(|id| !wanted.contains(id.as_str()))
        .cloned()
        .collect();
    let removed = remove_members(tx, tenant, group_pk, &gone, delta)?;
    let added = add_members(tx, tenant, group_pk, group_id, members, delta)?;
    Ok(removed + added)
}

/// Applies membership changes in order; returns how many rows changed.
fn apply_member_changes(
    tx: &Connection,
    registry: &Registry,
    tenant: &str,
    group_pk: i64,
    group_id: &str,
    changes: &[MemberChange],
    delta: &mut MemberDelta,
) -> Result<usize, StoreError> {
    let mut changed = 0;
    for change in changes {
        changed += match change {
            MemberChange::Add(members) => {
                add_members(tx, tenant, group_pk, group_id, members, delta)?
            }
            MemberChange::Remove(ids) => remove_members(tx, tenant, group_pk, ids, delta)?,
            MemberChange::Clear => {
                delta.removed.extend(member_ids(tx, group_pk)?);
                tx.execute("DELETE FROM memberships WHERE group_pk = ?1", [group_pk])?
            }
            MemberChange::Replace(members) => {
                set_members(tx, tenant, group_pk, group_id, members, delta)?
            }
            MemberChange::RemoveWhere(filter) => {
                // Rare (the IdPs select members by value, which becomes `Remove`): this one
                // reads the group's members to evaluate the filter on each.
                let members_def = registry
                    .resource(ResourceKind::Group)
                    .top_level("members")
                    .ok_or_else(|| StoreError::Corrupt("no members attribute".into()))?;
                let mut stmt = tx.prepare_cached(
                    "SELECT r.id, r.kind, COALESCE(r.display_name, r.user_name) FROM memberships m
                     JOIN resources r ON r.pk = m.member_pk WHERE m.group_pk = ?1",
                )?;
                let rows = stmt.query_map([group_pk], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                })?;
                let mut doomed = Vec::new();
                for row in rows {
                    let (id, kind, display) = row?;
                    let element =
                        serde_json::json!({"value": id, "type": kind, "display": display});
                    if crate::scim::filter::matches_value(filter, members_def, &element) {
                        doomed.push(id);
                    }
                }
                remove_members(tx, tenant, group_pk, &doomed, delta)?
            }
        };
    }
    Ok(changed)
}

impl Store for SqliteStore {
    fn create(
        &self,
        tenant: &str,
        kind: ResourceKind,
        res: &ValidResource,
        password_hash: Option<String>,
        actor: &Actor,
    ) -> Result<StoredResource, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_rfc3339();
        let doc_text =
            serde_json::to_string(&res.doc).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let c = search_columns(kind, &res.doc);
        self.write(|tx| {
            tx.execute(
                "INSERT INTO resources (tenant, kind, id, user_name, display_name, external_id, name_key, doc, password_hash, created, last_modified, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, 1)",
                params![tenant, kind_str(kind), id, c.user_name, c.display_name, c.external_id, c.name_key, doc_text, password_hash, now],
            )
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
                    resource_name: audit::resource_name(kind, &res.doc),
                    changes,
                    subjects,
                },
            )
        })?;
        Ok(StoredResource {
            id,
            kind,
            doc: res.doc.clone(),
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
            let doc_text = serde_json::to_string(&update.doc)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
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
            if doc_text == old_doc_text && !password_changed && delta.is_empty() {
                return Ok((current, false));
            }
            let now = now_rfc3339();
            let c = search_columns(kind, &update.doc);
            let (set_password, password_hash) = match &update.password {
                PasswordUpdate::Keep => (false, None),
                PasswordUpdate::Set(h) => (true, Some(h.as_str())),
                PasswordUpdate::Clear => (true, None),
            };
            tx.execute(
                "UPDATE resources SET user_name = ?1, display_name = ?2, external_id = ?3, name_key = ?4,
                 doc = ?5, password_hash = CASE WHEN ?6 THEN ?7 ELSE password_hash END,
                 last_modified = ?8, version = version + 1 WHERE pk = ?9",
                params![c.user_name, c.display_name, c.external_id, c.name_key, doc_text, set_password, password_hash, now, pk],
            )
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
                    resource_name: audit::resource_name(kind, &update.doc),
                    changes,
                    subjects,
                },
            )?;
            let meta = Meta {
                created: current.meta.created.clone(),
                last_modified: now,
                version: current.meta.version + 1,
            };
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
            let (pk, name, meta) = tx
                .prepare_cached(&by_id_sql(
                    "pk, CASE kind WHEN 'User' THEN user_name ELSE display_name END,
                     created, last_modified, version",
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
        let (sql, order) = (&q.where_sql, &q.order_sql);
        self.read(|conn| {
            let offset = page.start_index.saturating_sub(1);
            let mut rows = Vec::new();
            if page.count > 0 {
                let text = page_sql(sql, order, page.count, offset);
                // First pages (every IdP lookup) repeat; a walk through the pages does not, so
                // its statements stay out of the cache instead of evicting the hot ones.
                let (mut cached, mut fresh);
                let stmt: &mut rusqlite::Statement = if offset == 0 {
                    cached = conn.prepare_cached(&text)?;
                    &mut cached
                } else {
                    fresh = conn.prepare(&text)?;
                    &mut fresh
                };
                let mapped = stmt.query_map(params_from_iter(q.args.iter()), row_to_resource)?;
                for r in mapped {
                    rows.push(into_resource(r?)?);
                }
            }
            // A first page that is not full holds every match (same snapshot): the count is
            // its length. That spares the second query of every IdP lookup (0 or 1 match).
            if offset == 0 && page.count > 0 && (rows.len() as u64) < page.count {
                return Ok((rows.len() as u64, rows));
            }
            let total: i64 = conn
                .prepare_cached(&format!("SELECT count(*) FROM resources WHERE {sql}"))?
                .query_row(params_from_iter(q.args.iter()), |r| r.get(0))?;
            Ok((total.max(0) as u64, rows))
        })
    }

    fn references(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
    ) -> Result<Vec<Reference>, StoreError> {
        self.read(|conn| {
            let Some(pk) = pk_of(conn, tenant, kind, id)? else {
                return Ok(Vec::new());
            };
            references_of(conn, kind, pk)
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

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|conn| audit::read(conn, query))
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
    }

    fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.read_one(|conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1 AND revoked IS NULL"
                ))?
                .query_row([id], token_row)
                .optional()?)
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

/// The statement of [`references_of`], `?1` the resource's pk. The display name is read
/// from the referenced row now, so a rename shows everywhere at once. `+?1`: a bare `?1`
/// here makes SQLite re-plan the statement on every run (see [`by_id_sql`]); the unary
/// plus keeps the value out of planning and the index in use.
fn references_sql(kind: ResourceKind) -> &'static str {
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
fn references_of(
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

const TOKEN_COLUMNS: &str = "id, tenant, name, hash, created, last_used, scope, expires";

fn token_row(r: &rusqlite::Row) -> rusqlite::Result<TokenRecord> {
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

fn tenant_exists(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM tenants WHERE name = ?1)",
        [name],
        |r| r.get(0),
    )?)
}

/// The audit entry of a token's creation, rotation or revocation, by (tenant, id, name):
/// never the secret or its hash.
fn audit_token(
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

fn insert_token(tx: &Connection, t: &TokenRecord) -> Result<(), StoreError> {
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

fn member_ids(tx: &Connection, group_pk: i64) -> Result<Vec<String>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT r.id FROM memberships m JOIN resources r ON r.pk = m.member_pk WHERE m.group_pk = ?1 ORDER BY r.id",
    )?;
    let rows = stmt.query_map([group_pk], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<String>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::resource::validate;
    use std::sync::LazyLock;

    static REG: LazyLock<Registry> = LazyLock::new(Registry::builtin);
    use serde_json::json;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
        (dir, s)
    }

    fn user(name: &str) -> ValidResource {
        validate(
            REG.resource(ResourceKind::User),
            &json!({"userName": name, "displayName": format!("D {name}")}),
        )
        .unwrap()
    }

    const T: &str = crate::store::DEFAULT_TENANT;
    static A: std::sync::LazyLock<Actor> = std::sync::LazyLock::new(Actor::cli);
    const BASE: &str = "https://h/scim/v2";
    const PAGE: Page = Page {
        start_index: 1,
        count: 10,
    };

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
                &json!({"displayName": name, "members": [{"value": member}]}),
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
                &json!({"displayName": name}),
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

    #[test]
    fn user_name_lookup_uses_its_index() {
        let (_d, s) = store();
        let conn = s.writer.lock().unwrap();
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
    fn deleting_a_user_removes_it_from_groups_and_members_must_exist() {
        let (_d, s) = store();
        let u = s
            .create(T, ResourceKind::User, &user("u1"), None, &A)
            .unwrap();
        let g = validate(
            REG.resource(ResourceKind::Group),
            &json!({"displayName":"g","members":[{"value": u.id}]}),
        )
        .unwrap();
        let g = s.create(T, ResourceKind::Group, &g, None, &A).unwrap();
        let refs = s.references(T, ResourceKind::Group, &g.id).unwrap();
        assert_eq!(refs[0].display.as_deref(), Some("D u1"));
        assert_eq!(
            s.references(T, ResourceKind::User, &u.id).unwrap()[0].id,
            g.id
        );
        s.delete(T, ResourceKind::User, &u.id, &A, &mut |_| Ok(()))
            .unwrap();
        assert!(s
            .references(T, ResourceKind::Group, &g.id)
            .unwrap()
            .is_empty());
        assert!(matches!(
            s.delete(T, ResourceKind::User, &u.id, &A, &mut |_| Ok(())),
            Err(StoreError::NotFound)
        ));
        let bad = validate(
            REG.resource(ResourceKind::Group),
            &json!({"displayName":"h","members":[{"value":"nope"}]}),
        )
        .unwrap();
        assert!(matches!(
            s.create(T, ResourceKind::Group, &bad, None, &A),
            Err(StoreError::InvalidReference(_))
        ));
        // The failed create left nothing behind.
        let (n, _) = s
            .list(T, ResourceKind::Group, None, None, PAGE, BASE)
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn membership_changes_are_deltas_and_move_the_version_only_when_rows_change() {
        use crate::scim::resource::MemberInput;
        let (_d, s) = store();
        let ids: Vec<String> = (0..4)
            .map(|i| {
                s.create(T, ResourceKind::User, &user(&format!("m{i}")), None, &A)
                    .unwrap()
                    .id
            })
            .collect();
        let g = validate(
            REG.resource(ResourceKind::Group),
            &json!({"displayName": "g"}),
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
        let run = |changes: Vec<MemberChange>| {
            let mut f = |cur: &StoredResource| {
                Ok(super::super::ResourceUpdate {
                    doc: cur.doc.clone(),
                    password: PasswordUpdate::Keep,
                    members: changes.clone(),
                })
            };
            let (r, changed) = s
                .update(T, ResourceKind::Group, &g.id, &A, UpdateOp::Patch, &mut f)
                .unwrap();
            let mut members: Vec<String> = s
                .references(T, ResourceKind::Group, &g.id)
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            members.sort();
            (r.meta.version, changed, members)
        };
        let sorted = |v: &[usize]| {
            let mut out: Vec<String> = v.iter().map(|&i| ids[i].clone()).collect();
            out.sort();
            out
        };
        assert_eq!(
            run(vec![MemberChange::Add(input(&[0, 1]))]),
            (2, true, sorted(&[0, 1]))
        );
        // Re-adding and removing a non-member change nothing.
        assert_eq!(
            run(vec![
                MemberChange::Add(input(&[0])),
                MemberChange::Remove(vec![ids[3].clone()])
            ]),
            (2, false, sorted(&[0, 1]))
        );
        assert_eq!(
            run(vec![MemberChange::Replace(input(&[1, 2]))]),
            (3, true, sorted(&[1, 2]))
        );
        assert_eq!(
            run(vec![MemberChange::Replace(input(&[2, 1]))]),
            (3, false, sorted(&[1, 2]))
        );
        let by_name = crate::scim::filter::parse("display eq \"D m2\"").unwrap();
        assert_eq!(
            run(vec![MemberChange::RemoveWhere(by_name)]),
            (4, true, sorted(&[1]))
        );
        assert_eq!(run(vec![MemberChange::Clear]), (5, true, vec![]));
        // A refused update stores nothing.
        let mut refuse = |_: &StoredResource| Err(crate::scim::ScimError::invalid_value("no"));
        assert!(matches!(
            s.update(
                T,
                ResourceKind::Group,
                &g.id,
                &A,
                UpdateOp::Patch,
                &mut refuse
            ),
            Err(StoreError::Rejected(_))
        ));
        let mut bad = |cur: &StoredResource| {
            Ok(super::super::ResourceUpdate {
                doc: cur.doc.clone(),
                password: PasswordUpdate::Keep,
                members: vec![
                    MemberChange::Add(input(&[3])),
                    MemberChange::Add(vec![MemberInput {
                        value: "nope".into(),
                        kind: None,
                    }]),
                ],
            })
        };
        assert!(matches!(
            s.update(T, ResourceKind::Group, &g.id, &A, UpdateOp::Patch, &mut bad),
            Err(StoreError::InvalidReference(_))
        ));
        assert!(s
            .references(T, ResourceKind::Group, &g.id)
            .unwrap()
            .is_empty());
        assert_eq!(
            s.get(T, ResourceKind::Group, &g.id)
                .unwrap()
                .unwrap()
                .meta
                .version,
            5
        );
    }

    #[test]
    fn group_commit_syncs_every_acknowledged_commit() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("g.db"), Synchronous::Full).unwrap();
        std::thread::scope(|scope| {
            for t in 0..8 {
                let s = &s;
                scope.spawn(move || {
                    for i in 0..25 {
                        s.create(T, ResourceKind::User, &user(&format!("g{t}-{i}")), None, &A)
                            .unwrap();
                    }
                });
            }
        });
        let gc = s.group_commit.as_ref().unwrap();
        let st = gc.state.lock().unwrap();
        assert_eq!(st.committed, 200, "every write counted");
        assert_eq!(
            st.synced, st.committed,
            "every acknowledged commit is synced"
        );
        assert!(!st.syncing);
        drop(st);
        // `normal` has no group commit.
        let n = SqliteStore::open(&dir.path().join("n.db"), Synchronous::Normal).unwrap();
        assert!(n.group_commit.is_none());
    }

    #[test]
    fn audit_names_actor_and_members_and_old_entries_are_pruned() {
        use crate::store::{AuditQuery, ResourceUpdate, Via};
        let (_d, s) = store();
        let okta = Actor::token("t1", "okta", Via::Api);
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
            &json!({"displayName": "Finance", "members": [{"value": alice.id}]}),
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
            .query_row(
                "SELECT count(*) FROM audit_subjects WHERE seq <= 2",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0);
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
            &json!({"displayName": "g"}),
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

    #[test]
    fn update_bumps_version_only_on_change() {
        let (_d, s) = store();
        let u = s
            .create(T, ResourceKind::User, &user("u1"), None, &A)
            .unwrap();
        let put = |s: &SqliteStore, id: &str, name: &str| {
            let doc = user(name).doc;
            let mut f = |_: &StoredResource| {
                Ok(super::super::ResourceUpdate {
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
            Ok(super::super::ResourceUpdate {
                doc: cur.doc.clone(),
                password: PasswordUpdate::Keep,
                members: vec![MemberChange::Clear],
            })
        };
        assert!(s
            .update(T, ResourceKind::User, &u.id, &A, UpdateOp::Patch, &mut f)
            .is_err());
    }
}

#[cfg(test)]
mod filter_tests;
