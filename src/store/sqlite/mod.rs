//! SQLite backend: one writer connection behind a mutex (SQLite has one writer anyway) and a
//! small pool of reader connections; WAL, so readers never block the writer.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{
    params, params_from_iter, Connection, OpenFlags, OptionalExtension, TransactionBehavior,
};
use serde_json::{Map, Value};

mod audit;
mod backup;
mod connections;
mod events;
mod file;
mod members;
mod migrations;
mod query;
mod resources;
mod sessions;
mod tenants;
mod token_cache;
mod transfer;
mod unique;

pub use backup::{backup, BackupError, BackupReport};
#[doc(hidden)]
pub use migrations::create_at_schema_version;

use super::json_text::JsonText;
use super::{
    now_rfc3339, Actor, CheckFn, Created, ExportFn, HealthStore, ImportFailed, ImportOutcome,
    ImportResource, MemberChange, PasswordUpdate, ResourceCount, ResourceStore, StoreError,
    StoredResource, TenantDeleted, TenantInfo, TenantStore, TokenRecord, TokenScope, UpdateFn,
    UpdateOp, WithReferences,
};
use crate::metrics::{Histogram, BATCH_BUCKETS};
use crate::scim::filter::{fold_case, Filter};
use crate::scim::list::{Page, Position, Seek, Sort, SortValue};
use crate::scim::resource::{MemberInput, Meta, Reference, ValidResource};
use crate::scim::schema::Registry;
use crate::scim::ResourceKind;
use audit::MemberDelta;
use connections::{configure, GroupCommit, Writer};
use members::{apply_member_changes, set_members};
use migrations::migrate;
use resources::{conflict, into_resource, references_of, search_columns};

/// Durability of a commit: `Full` survives power loss, `Normal` only a process crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    Full,
    Normal,
}

pub struct SqliteStore {
    path: std::path::PathBuf,
    writer: Mutex<Writer>,
    /// Writers waiting for `writer`: while any is, a write leaves its batch open for them.
    queued_writers: AtomicUsize,
    readers: Mutex<Vec<Connection>>,
    /// `None` with `synchronous = normal`: commits are not synced.
    group_commit: Option<GroupCommit>,
    /// Audit entries older than this many days are pruned; `None` keeps them forever.
    audit_retention_days: Option<u32>,
    /// When the next write prunes old audit entries (a write, so no thread of its own).
    next_prune: Mutex<Instant>,
    /// The schemas filters and sorts are compiled against.
    registry: Arc<Registry>,
    /// Token rows kept between requests while no token changes (`token_cache`).
    token_cache: token_cache::TokenCache,
}

/// How often writes prune the audit log.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How long `/healthz` waits for the write lock before calling the database unwritable.
const HEALTH_LOCK_WAIT: Duration = Duration::from_secs(1);
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl rusqlite::ToSql for JsonText {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(
            rusqlite::types::ValueRef::Text(self.as_bytes()),
        ))
    }
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

/// The driver's errors are backend errors; a constraint the store did not map itself too.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

impl HealthStore for SqliteStore {
    fn writable(&self) -> Result<(), StoreError> {
        SqliteStore::writable(self)
    }

    fn write_batch_sizes(&self) -> Option<Histogram> {
        SqliteStore::write_batch_sizes(self)
    }

    /// The file and its WAL on disk. SQLite keeps no record of backups (`scimlite backup`
    /// reads the file without writing to it), so the last one is not known.
    fn storage(&self) -> super::StorageInfo {
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).ok();
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        super::StorageInfo {
            size_bytes: size(&self.path).map(|db| db + size(Path::new(&wal)).unwrap_or(0)),
            last_backup: None,
        }
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
            writer: Mutex::new(Writer::new(conn)),
            queued_writers: AtomicUsize::new(0),
            readers: Mutex::new(Vec::new()),
            group_commit: match sync {
                Synchronous::Full => Some(GroupCommit::new(path)),
                Synchronous::Normal => None,
            },
            audit_retention_days: None,
            next_prune: Mutex::new(Instant::now()),
            registry: Arc::new(Registry::builtin()),
            token_cache: token_cache::TokenCache::new(path),
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
}

#[cfg(test)]
/// What the store's tests share: a fresh store, sample resources, the traits in scope.
pub(crate) mod test_support {
    pub(crate) use super::*;
    pub(crate) use crate::scim::resource::validate;
    pub(crate) use crate::store::{AuditStore, ResourceStore};
    pub(crate) use serde_json::json;
    use std::sync::LazyLock;

    pub(crate) static REG: LazyLock<Registry> = LazyLock::new(Registry::builtin);

    pub(crate) fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
        (dir, s)
    }

    pub(crate) fn user(name: &str) -> ValidResource {
        validate(
            REG.resource(ResourceKind::User),
            json!({"userName": name, "displayName": format!("D {name}")}),
        )
        .unwrap()
    }

    pub(crate) const T: &str = crate::store::DEFAULT_TENANT;
    pub(crate) static A: std::sync::LazyLock<Actor> = std::sync::LazyLock::new(Actor::cli);
    pub(crate) const BASE: &str = "https://h/scim/v2";
    pub(crate) const PAGE: Page = Page {
        start_index: 1,
        count: 10,
    };
}
