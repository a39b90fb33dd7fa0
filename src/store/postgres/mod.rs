//! PostgreSQL backend (`database = "postgres://…"`): the same tables, constraints, views and
//! semantics as the SQLite backend, for any number of instances on one database.
//!
//! - A bounded pool of connections (`connections`); every method takes one for the length of
//!   one transaction, never two at once.
//! - Writers run concurrently: a read-modify-write locks its row (`SELECT … FOR NO KEY
//!   UPDATE`, which still lets other transactions reference the row from `memberships`), or,
//!   for a User, writes it only if its version is still the one it read (and reads again if
//!   not: `resources::update_user_at_once`); uniqueness is the database's constraints', so it
//!   holds across processes. A transaction that loses a deadlock or a serialization race is
//!   run again.
//! - Documents are `jsonb`; filters compile to SQL over it (`query`) with the evaluator's
//!   semantics. Times are stored as the RFC 3339 text SQLite stores, so exports and ETags are
//!   the same on both backends.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::types::Json;
use serde_json::{Map, Value};

mod audit;
mod connections;
mod events;
mod members;
mod migrations;
mod query;
mod resources;
mod sessions;
mod tenants;
mod transfer;
mod unique;

pub use connections::{is_postgres_url, ConnectOptions, TlsMode};

use super::{
    now_rfc3339, Actor, CheckFn, Created, ExportFn, HealthStore, ImportFailed, ImportOutcome,
    ImportResource, MemberChange, PasswordUpdate, ResourceCount, ResourceStore, SchemaStore,
    StoreError, StoredResource, TenantDeleted, TenantInfo, TenantStore, TokenRecord, TokenScope,
    UpdateFn, UpdateOp, WithReferences,
};
use crate::scim::filter::Filter;
use crate::scim::list::{Page, Position, Seek, Sort, SortValue};
use crate::scim::resource::{MemberInput, Meta, Reference, ValidResource};
use crate::scim::schema::Registry;
use crate::scim::ResourceKind;
use audit::MemberDelta;
use connections::{Db, Pool};
use members::{apply_member_changes, set_members};
use query::KeyType;
use resources::{conflict, into_resource, references_of};

pub struct PostgresStore {
    pool: Pool,
    /// Audit entries older than this many days are pruned; `None` keeps them forever.
    audit_retention_days: Option<u32>,
    /// When the next write of this process prunes old audit entries.
    next_prune: Mutex<Instant>,
    /// The schemas filters and sorts are compiled against.
    registry: Arc<Registry>,
    /// The highest event `seq` this process has seen settle (`events::settled_seq`).
    events_settled: std::sync::atomic::AtomicI64,
}

/// How often writes prune the audit log.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How long `/healthz` waits for the health row's lock (another instance's probe).
const HEALTH_LOCK_WAIT: Duration = Duration::from_secs(1);

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

/// The driver's errors are backend errors; a constraint the store did not map itself too.
/// Text PostgreSQL cannot hold is the client's: a NUL character (U+0000) in a string, which
/// neither `text` nor `jsonb` stores (SQLite does; the one difference in what is accepted).
impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        use postgres::error::SqlState;
        match e.code() {
            Some(&SqlState::UNTRANSLATABLE_CHARACTER)
            | Some(&SqlState::CHARACTER_NOT_IN_REPERTOIRE) => StoreError::InvalidReference(
                "PostgreSQL cannot store the character U+0000 (NUL) in text".into(),
            ),
            _ if connection_lost(&e) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Backend(Box::new(e)),
        }
    }
}

/// Whether `e` says the database went away rather than refused a statement: the connection
/// closed or failed (a restart, a failover, the network), or the server is shutting down,
/// starting up or out of connections (SQLSTATE classes 08 and 57P0x, and 53300).
fn connection_lost(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
        }
        // No SQLSTATE: the driver's own failure, an I/O error on the socket among them.
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// A document as the `jsonb` parameter of a statement.
fn doc_param(doc: &Map<String, Value>) -> Json<&Map<String, Value>> {
    Json(doc)
}

/// Reads a `jsonb` document column.
fn doc_of(row: &postgres::Row, idx: usize, id: &str) -> Result<Map<String, Value>, StoreError> {
    let Json(v): Json<Value> = row
        .try_get(idx)
        .map_err(|e| StoreError::Corrupt(format!("document of {id}: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        other => Err(StoreError::Corrupt(format!(
            "document of {id} is not an object: {other}"
        ))),
    }
}

impl HealthStore for PostgresStore {
    /// A real write, committed like any other: the health row's counter, waiting at most
    /// [`HEALTH_LOCK_WAIT`] for a free connection and for the row.
    fn writable(&self) -> Result<(), StoreError> {
        self.pool.write_within(HEALTH_LOCK_WAIT, |db| {
            let wait = format!("{}ms", HEALTH_LOCK_WAIT.as_millis());
            db.execute("SELECT set_config('lock_timeout', $1, true)", &[&wait])?;
            db.execute(
                "UPDATE health_probe SET probes = probes + 1 WHERE id = 1",
                &[],
            )?;
            Ok(())
        })
    }

    /// The database's size as PostgreSQL counts it; backups (pg_dump) leave no trace here.
    fn storage(&self) -> super::StorageInfo {
        let size = self.pool.read_one(|db| {
            Ok(db
                .query_one("SELECT pg_database_size(current_database())", &[])?
                .get::<_, i64>(0))
        });
        super::StorageInfo {
            size_bytes: size.ok().and_then(|n| u64::try_from(n).ok()),
            last_backup: None,
        }
    }
}

impl SchemaStore for PostgresStore {
    fn sync_schema(&self) -> Result<(), StoreError> {
        self.write(|db| unique::sync(db, &self.registry))
    }

    fn stored_extensions(&self) -> Result<Vec<(ResourceKind, String, u64)>, StoreError> {
        self.read(|db| {
            let rows = db.query(
                "SELECT r.kind, j.key, count(*) FROM resources AS r, jsonb_each(r.doc) AS j
                 WHERE j.key LIKE 'urn:%' GROUP BY 1, 2 ORDER BY 1, 2",
                &[],
            )?;
            rows.iter()
                .map(|r| {
                    let n: i64 = r.get(2);
                    Ok((
                        parse_kind(r.get(0))?,
                        r.get::<_, String>(1),
                        n.max(0) as u64,
                    ))
                })
                .collect()
        })
    }
}

impl PostgresStore {
    /// Connects (at most `max_connections` at once), waits for other instances' migrations
    /// and brings the schema up to date.
    pub fn open(options: &ConnectOptions, max_connections: usize) -> Result<Self, StoreError> {
        let pool = Pool::new(options, max_connections)?;
        pool.with_client(migrations::migrate)?;
        Ok(PostgresStore {
            pool,
            audit_retention_days: None,
            next_prune: Mutex::new(Instant::now()),
            registry: Arc::new(Registry::builtin()),
            events_settled: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// Compiles filters and sorts against `registry` (the built-in schemas until this is
    /// called): the server passes the one built from its config, with the declared extensions.
    pub fn with_registry(mut self, registry: Arc<Registry>) -> PostgresStore {
        self.registry = registry;
        self
    }

    /// Keeps audit entries for `days` days (pruned by writes, at most hourly per process);
    /// `None` or `Some(0)` keeps them forever.
    pub fn with_audit_retention(mut self, days: Option<u32>) -> PostgresStore {
        self.audit_retention_days = days.filter(|&d| d > 0);
        self
    }

    /// A write transaction (run again if it lost a deadlock or serialization race).
    fn write<T>(
        &self,
        mut f: impl FnMut(&mut Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.pool.write(|db| {
            let out = f(db)?;
            self.prune_if_due(db);
            Ok(out)
        })
    }

    /// A read of several statements from one snapshot.
    fn read<T>(&self, f: impl FnOnce(&mut Db) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.pool.read(f)
    }

    /// Whether the next write prunes the audit log (see [`Self::prune_if_due`]).
    fn prune_due(&self, now: Instant) -> bool {
        self.audit_retention_days.is_some()
            && now >= *self.next_prune.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Prunes old audit entries inside the current write, at most every [`PRUNE_EVERY`] (or
    /// again at once while a backlog remains). In a savepoint: a failure only costs a log
    /// line, and the write itself goes ahead.
    fn prune_if_due(&self, db: &mut Db) {
        let Some(days) = self.audit_retention_days else {
            return;
        };
        let now = Instant::now();
        if !self.prune_due(now) {
            return;
        }
        let backlog = match db.savepoint(|db| audit::prune(db, days)) {
            Ok(n) => {
                if n > 0 {
                    log::info!("audit log: pruned {n} entries older than {days} days");
                }
                n >= audit::PRUNE_BATCH as u64
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
}

#[cfg(test)]
/// What the store's tests share: a store on a fresh database of the PostgreSQL named by
/// `SCIMLITE_TEST_POSTGRES`, or none (the test prints a note and passes) without it.
pub(crate) mod test_support {
    pub(crate) use super::*;
    pub(crate) use crate::scim::resource::validate;
    #[allow(unused_imports)]
    pub(crate) use crate::store::{AuditStore, ResourceStore};
    pub(crate) use serde_json::json;
    use std::sync::LazyLock;

    pub(crate) static REG: LazyLock<Registry> = LazyLock::new(Registry::builtin);

    /// A fresh, empty database; dropped with the guard.
    pub(crate) struct TestDb {
        pub(crate) options: ConnectOptions,
        admin: String,
        name: String,
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
                let _ = c.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                ));
            }
        }
    }

    /// A new database on the test server, or `None` (with a note) when there is none.
    pub(crate) fn test_db() -> Option<TestDb> {
        let Ok(url) = std::env::var("SCIMLITE_TEST_POSTGRES") else {
            eprintln!("note: SCIMLITE_TEST_POSTGRES is not set; skipping this PostgreSQL test");
            return None;
        };
        let name = format!("scimlite_unit_{}", uuid::Uuid::now_v7().simple());
        let mut admin = postgres::Client::connect(&url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("SCIMLITE_TEST_POSTGRES: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap();
        let options = ConnectOptions::parse(&with_database(&url, &name), None).unwrap();
        Some(TestDb {
            options,
            admin: url,
            name,
        })
    }

    /// `url` with its database name replaced by `name`.
    pub(crate) fn with_database(url: &str, name: &str) -> String {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (url, String::new()),
        };
        let authority_end = base
            .find("://")
            .map(|i| i + 3)
            .and_then(|start| base[start..].find('/').map(|j| start + j))
            .unwrap_or(base.len());
        format!("{}/{name}{query}", &base[..authority_end])
    }

    pub(crate) fn store() -> Option<(TestDb, PostgresStore)> {
        let db = test_db()?;
        let s = PostgresStore::open(&db.options, 8).unwrap();
        Some((db, s))
    }

    pub(crate) fn user(name: &str) -> ValidResource {
        validate(
            REG.resource(ResourceKind::User),
            json!({"userName": name, "displayName": format!("D {name}")}),
        )
        .unwrap()
    }

    /// The ids of `n` new Users named `{prefix}0`, `{prefix}1`, …
    pub(crate) fn user_ids(s: &PostgresStore, prefix: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                s.create(
                    T,
                    ResourceKind::User,
                    &user(&format!("{prefix}{i}")),
                    None,
                    &A,
                )
                .unwrap()
                .id
            })
            .collect()
    }

    /// The audit entries about `resource` (an id or a name), oldest first.
    pub(crate) fn entries_about(
        s: &PostgresStore,
        resource: &str,
    ) -> Vec<crate::store::AuditEntry> {
        let q = crate::store::AuditQuery {
            resource: Some(resource.into()),
            limit: 100,
            ..Default::default()
        };
        s.audit(&q).unwrap()
    }

    /// A new Group with these members, created by `actor`.
    pub(crate) fn group_of(
        s: &PostgresStore,
        name: &str,
        members: &[&str],
        actor: &Actor,
    ) -> Created {
        let members: Vec<Value> = members.iter().map(|id| json!({ "value": id })).collect();
        let g = validate(
            REG.resource(ResourceKind::Group),
            json!({"displayName": name, "members": members}),
        )
        .unwrap();
        s.create(T, ResourceKind::Group, &g, None, actor).unwrap()
    }

    pub(crate) const T: &str = crate::store::DEFAULT_TENANT;
    pub(crate) static A: std::sync::LazyLock<Actor> = std::sync::LazyLock::new(Actor::cli);
    pub(crate) const BASE: &str = "https://h/scim/v2";
    pub(crate) const PAGE: Page = Page {
        start_index: 1,
        count: 10,
    };
}
