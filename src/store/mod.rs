//! Storage, split by concern into small traits the API layer talks to: resources and their
//! memberships ([`ResourceStore`]), tenants and tokens ([`TenantStore`]), the audit log
//! ([`AuditStore`]), provisioning events ([`EventStore`]), health ([`HealthStore`]) and the
//! admin console's sessions ([`SessionStore`]).
//! [`Store`] is all of them, what a backend implements, with [`SchemaStore`] for what the
//! server records of its config at start. SQLite (`sqlite/`, one file) and PostgreSQL
//! (`postgres/`, any number of instances on one database) are the backends; `shared` holds
//! what both compute the same way outside SQL. Every resource call is scoped to one tenant;
//! nothing reads or writes across tenants.
//!
//! The store knows no SCIM errors: a refusal from the caller's code inside a transaction
//! comes back as [`StoreError::Rejected`], unchanged, and the API maps every store error to
//! SCIM in one place. The only SCIM a backend needs is the schema registry and the filter
//! AST it compiles to SQL.

/// Each named test `fn name(open: fn() -> Option<Opened>)` of a store test module, once on
/// SQLite and once on PostgreSQL (`sqlite` and `postgres` in scope open the stores; without
/// `SCIMLITE_TEST_POSTGRES` the PostgreSQL run passes with a note).
#[cfg(test)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[test]
            fn $name() {
                super::$name(super::sqlite)
            })*
        }
        mod on_postgres {
            $(#[test]
            fn $name() {
                super::$name(super::postgres)
            })*
        }
    };
}
#[cfg(test)]
mod filter_tests;
mod json_text;
#[cfg(test)]
mod keyset_tests;
pub mod postgres;
#[cfg(test)]
mod references_tests;
pub(crate) mod shared;
pub mod sqlite;
mod times;
pub use times::{format_utc_millis, now_rfc3339, utc_to_the_second};

use serde_json::{Map, Value};

use crate::metrics::Histogram;
use crate::scim::filter::Filter;
use crate::scim::list::{Page, Position, Seek, Sort};
use crate::scim::resource::{MemberInput, Meta, Reference, ValidResource};
use crate::scim::ResourceKind;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

pub const DEFAULT_TENANT: &str = "default";

/// An error a caller's code returned from inside a store transaction (a PATCH that does not
/// apply, an `If-Match` that does not match): the transaction is rolled back and the error
/// handed back as it was.
pub type Refusal = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("no such resource")]
    NotFound,
    /// A uniqueness constraint (userName, group displayName) would be violated.
    #[error("{0}")]
    Conflict(String),
    /// The request references something that does not exist or cannot be referenced.
    #[error("{0}")]
    InvalidReference(String),
    /// The database is newer than this binary, or otherwise not ours.
    #[error("{0}")]
    Incompatible(String),
    /// The backend failed (the driver's error).
    #[error("database error: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    /// The database cannot be reached or is restarting (PostgreSQL), or every connection
    /// stayed busy: nothing was done, or a commit's outcome is unknown; try again later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A commit happened but could not be made durable (the WAL fsync failed).
    #[error("could not make the write durable: {0}")]
    Durability(String),
    /// The caller's code refused the change inside the transaction.
    #[error("{0}")]
    Rejected(Refusal),
    /// The consumer of an export could not take the next resource (e.g. a full disk).
    #[error("{0}")]
    Output(#[from] std::io::Error),
}

pub use crate::scim::patch::MemberChange;

/// How a change reached the store, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A SCIM request.
    Api,
    /// An operation inside `POST /Bulk`.
    Bulk,
    /// `scimlite token …` and other commands.
    Cli,
    /// `scimlite import`.
    Import,
    /// The server itself (the first-run token).
    Startup,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Bulk => "bulk",
            Via::Cli => "cli",
            Via::Import => "import",
            Via::Startup => "startup",
        }
    }
}

/// Who makes a change: written to the audit log in the same transaction as the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The bearer token's id; `None` for the command line, import and the server itself.
    pub token_id: Option<String>,
    /// The token's name, or "cli", "import", "server".
    pub name: String,
    pub via: Via,
    /// The transaction the change belongs to: one request (a Bulk request and all its
    /// operations), one import, one command. Every provisioning event of it carries it as
    /// the SET's `txn` (RFC 9967).
    pub txn: String,
}

/// A new transaction id (`txn`).
pub fn new_txn() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Actor {
    pub fn token(token_id: &str, name: &str, via: Via, txn: &str) -> Actor {
        Actor {
            token_id: Some(token_id.to_string()),
            name: name.to_string(),
            via,
            txn: txn.to_string(),
        }
    }
    pub fn cli() -> Actor {
        Actor {
            token_id: None,
            name: "cli".into(),
            via: Via::Cli,
            txn: new_txn(),
        }
    }
    pub fn import() -> Actor {
        Actor {
            token_id: None,
            name: "import".into(),
            via: Via::Import,
            txn: new_txn(),
        }
    }
    pub fn server() -> Actor {
        Actor {
            token_id: None,
            name: "server".into(),
            via: Via::Startup,
            txn: new_txn(),
        }
    }
}

/// Which kind of update [`Store::update`] makes, as the audit log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOp {
    Replace,
    Patch,
}

impl UpdateOp {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateOp::Replace => "replace",
            UpdateOp::Patch => "patch",
        }
    }
}

/// Which audit entries to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub tenant: Option<String>,
    /// Entries about this resource: its id or its name (userName, group displayName, token
    /// name), as the changed resource or as a member added to or removed from a group.
    pub resource: Option<String>,
    /// Entries at or after this time (`YYYY-MM-DDTHH:MM:SS.mmmZ`, see [`format_utc_millis`]).
    pub since: Option<String>,
    /// The newest `limit` matching entries (returned oldest first).
    pub limit: u64,
}

/// One audit log entry. `changes` names what changed, never values, except `active` and the
/// members added or removed; never a password or its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub tenant: String,
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub via: String,
    /// create, replace, patch, delete, import, token-create, token-rotate, token-revoke,
    /// tenant-create, tenant-delete
    pub operation: String,
    /// User, Group, Token or Tenant
    pub resource_type: String,
    pub resource_id: String,
    pub resource_name: Option<String>,
    pub changes: Value,
}

/// How many resources of one type a tenant holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceCount {
    pub tenant: String,
    pub kind: ResourceKind,
    pub count: u64,
}

/// A User's password after an update: kept, replaced by a new PHC hash, or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordUpdate {
    Keep,
    Set(String),
    Clear,
}

/// What an update function wants stored: the whole new document (already validated), the
/// password and the membership changes.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceUpdate {
    pub doc: Map<String, Value>,
    pub password: PasswordUpdate,
    pub members: Vec<MemberChange>,
}

/// A precondition on the current version, checked inside the write transaction.
pub type CheckFn<'a> = dyn FnMut(&Meta) -> Result<(), Refusal> + 'a;

/// The function PUT and PATCH hand to [`Store::update`]: it sees the current resource inside
/// the write transaction and returns the change, or refuses it.
pub type UpdateFn<'a> = dyn FnMut(&StoredResource) -> Result<ResourceUpdate, Refusal> + 'a;

/// A resource as stored: its id, document (client attributes) and meta.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    pub id: String,
    pub kind: ResourceKind,
    pub doc: Map<String, Value>,
    pub meta: Meta,
}

/// What [`ResourceStore::create`] made: the new resource's id and meta (its document is the
/// one the caller passed, stored as it is).
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub id: String,
    pub meta: Meta,
}

/// A bearer token's row; the secret is only ever stored as a PHC hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub hash: String,
    pub created: String,
    pub last_used: Option<String>,
    pub scope: TokenScope,
    /// RFC 3339 instant after which the token is refused; `None`: never expires.
    pub expires: Option<String>,
}

/// What a token may do within its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenScope {
    /// Everything (the only scope before schema version 3), provisioning events included.
    #[default]
    ReadWrite,
    /// GET and `POST …/.search` only; any write is 403.
    ReadOnly,
    /// Only the provisioning event feed (`POST …/Events`), for an application that reacts
    /// to changes.
    Events,
    /// Only the admin console (`/admin/`, read-only pages); never the SCIM API. A token of the
    /// default tenant sees every tenant there, a token of another tenant only its own.
    Admin,
}

impl TokenScope {
    /// The stored and displayed form.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::ReadWrite => "read-write",
            TokenScope::ReadOnly => "read-only",
            TokenScope::Events => "events",
            TokenScope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<TokenScope> {
        match s {
            "read-write" => Some(TokenScope::ReadWrite),
            "read-only" => Some(TokenScope::ReadOnly),
            "events" => Some(TokenScope::Events),
            "admin" => Some(TokenScope::Admin),
            _ => None,
        }
    }
}

/// A tenant and how much it holds (`scimlite tenant list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantInfo {
    pub name: String,
    pub created: String,
    pub users: u64,
    pub groups: u64,
    /// Tokens not revoked (expired ones included).
    pub tokens: u64,
}

/// What deleting a tenant removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TenantDeleted {
    pub users: u64,
    pub groups: u64,
    /// Token rows removed (revoked ones included): a deleted tenant's tokens are gone.
    pub tokens: u64,
}

/// One resource to import exactly as given: its id, meta and (Groups) members are kept, so an
/// export read back into a fresh database answers the API as the original did.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportResource {
    pub tenant: String,
    pub kind: ResourceKind,
    pub id: String,
    pub doc: Map<String, Value>,
    pub meta: Meta,
    /// A Group's complete member list (replaces whatever the group had); empty for Users.
    pub members: Vec<MemberInput>,
}

/// What importing one resource did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    Created,
    Updated,
    /// The database already held exactly this resource (a re-run).
    Unchanged,
}

/// An import failed and stored nothing: at the resource at `index` (0-based position in the
/// batch), or, with `None`, when committing the whole.
#[derive(Debug, thiserror::Error)]
#[error("{}{source}", index.map(|i| format!("resource {i}: ")).unwrap_or_default())]
pub struct ImportFailed {
    pub index: Option<usize>,
    #[source]
    pub source: StoreError,
}

/// Receives each exported resource with its tenant and its references (a Group's members, the
/// Groups a User belongs to).
pub type ExportFn<'a> =
    dyn FnMut(&str, &StoredResource, &[Reference]) -> Result<(), std::io::Error> + 'a;

/// A resource with its references (a User's `groups`, a Group's `members`).
pub type WithReferences = (StoredResource, Vec<Reference>);

/// Users and Groups: CRUD, list queries, memberships, export and import.
pub trait ResourceStore: Send + Sync {
    /// Creates a resource; `password_hash` is the PHC string of a User's password.
    fn create(
        &self,
        tenant: &str,
        kind: ResourceKind,
        res: &ValidResource,
        password_hash: Option<String>,
        actor: &Actor,
    ) -> Result<Created, StoreError>;
    fn get(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
    ) -> Result<Option<StoredResource>, StoreError>;
    /// [`ResourceStore::get`] with the resource's [`ResourceStore::references`], read
    /// together: one read instead of two for a GET whose answer shows `groups` or `members`.
    fn get_with_references(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
    ) -> Result<Option<WithReferences>, StoreError>;
    /// Read-modify-write: the update `apply` makes of the resource is written over exactly
    /// the version it was given (under the row's lock, or only if the row still has that
    /// version), so concurrent updates of one resource never lose each other's changes.
    /// `apply` may be called again with a newer version (a write landed in between, or the
    /// database aborted a transaction), so it must not do what it cannot repeat.
    /// `meta.version` and `lastModified` move only when the document, the password or the
    /// membership actually changed; the bool says whether it did (and only then is the
    /// change audited, as `op`).
    fn update(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
        actor: &Actor,
        op: UpdateOp,
        apply: &mut UpdateFn<'_>,
    ) -> Result<(StoredResource, bool), StoreError>;
    /// Deletes a resource and every membership that names it, if `check` (run inside the
    /// write transaction with the current meta, e.g. for `If-Match`) accepts.
    fn delete(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
        actor: &Actor,
        check: &mut CheckFn<'_>,
    ) -> Result<(), StoreError>;
    /// Total number of matches and one page of them. `filter` selects exactly the resources
    /// [`crate::scim::filter::matches`] selects on their rendering; `base` is the URL prefix
    /// that rendering puts in `meta.location` and `$ref`, for filters on those. Without `sort`
    /// the order is creation order; with it, see [`Sort::resolve`] (missing values last in
    /// both directions, ties in creation order), so pages never overlap or skip.
    fn list(
        &self,
        tenant: &str,
        kind: ResourceKind,
        filter: Option<&Filter>,
        sort: Option<&Sort>,
        page: Page,
        base: &str,
    ) -> Result<(u64, Vec<StoredResource>), StoreError>;
    /// [`ResourceStore::list`] with each resource's [`ResourceStore::references`], read
    /// together: one read for an IdP's lookup (`filter=userName eq …`) instead of two.
    fn list_with_references(
        &self,
        tenant: &str,
        kind: ResourceKind,
        filter: Option<&Filter>,
        sort: Option<&Sort>,
        page: Page,
        base: &str,
    ) -> Result<(u64, Vec<WithReferences>), StoreError>;
    /// One keyset page (RFC 9865 cursors, [`Seek`]) in the order [`ResourceStore::list`]
    /// gives, each resource with its [`Position`] in it. The position's tie-breaker is unique,
    /// so a walk from page to page sees every resource that stays exactly once, whatever is
    /// created, changed or deleted meanwhile (a resource whose sort value changes moves).
    fn list_seek(
        &self,
        tenant: &str,
        kind: ResourceKind,
        filter: Option<&Filter>,
        sort: Option<&Sort>,
        seek: &Seek,
        base: &str,
    ) -> Result<Vec<(StoredResource, Position)>, StoreError>;
    /// The key RFC 9865 cursors are sealed with: the one in the database, or `candidate`,
    /// stored now when there is none. Every instance on one database gets the same key.
    fn cursor_key(&self, candidate: &[u8; 32]) -> Result<[u8; 32], StoreError>;
    /// A Group's members, or the Groups a User belongs to, with current display names.
    fn references(
        &self,
        tenant: &str,
        kind: ResourceKind,
        id: &str,
    ) -> Result<Vec<Reference>, StoreError> {
        Ok(self
            .references_of_each(tenant, kind, &[id])?
            .pop()
            .unwrap_or_default())
    }
    /// [`ResourceStore::references`] of several resources of one kind, in the order of `ids`
    /// (none for an id that names nothing), read together: a page of 100 Users costs one
    /// read, not 100.
    fn references_of_each(
        &self,
        tenant: &str,
        kind: ResourceKind,
        ids: &[&str],
    ) -> Result<Vec<Vec<Reference>>, StoreError>;

    /// Every resource of one tenant (or of all tenants, by name), from one consistent snapshot:
    /// per tenant all Users in creation order, then all Groups, each Group after every Group it
    /// contains, so that reading them back in this order never meets an unknown member. An
    /// unknown tenant is `InvalidReference`.
    fn export(&self, tenant: Option<&str>, each: &mut ExportFn<'_>) -> Result<(), StoreError>;
    /// Stores resources with the ids and meta they carry, in one transaction: a resource with
    /// the same tenant and id is overwritten (its password hash is kept), a new one is created
    /// (without a password), a missing tenant is created. Nothing is ever deleted. On any
    /// error nothing is stored and the error names the resource.
    /// Every created or changed resource is audited.
    fn import(
        &self,
        batch: &[ImportResource],
        actor: &Actor,
    ) -> Result<Vec<ImportOutcome>, ImportFailed>;

    /// Users and Groups per tenant (zero counts included), for metrics.
    fn resource_counts(&self) -> Result<Vec<ResourceCount>, StoreError>;
}

/// Tenants and their tokens.
pub trait TenantStore: Send + Sync {
    /// Creates an empty tenant; `Conflict` if it exists. The name must already be valid
    /// (`crate::tenant::validate_name`). Audited.
    fn create_tenant(&self, name: &str, actor: &Actor) -> Result<(), StoreError>;
    /// Every tenant, by name, with what it holds.
    fn tenants(&self) -> Result<Vec<TenantInfo>, StoreError>;
    /// Deletes a tenant and its tokens in one transaction. A tenant that still holds Users or
    /// Groups is refused with `Conflict` unless `purge`, which deletes them too. `NotFound`
    /// for an unknown tenant. Audited as one entry with the counts.
    fn delete_tenant(
        &self,
        name: &str,
        purge: bool,
        actor: &Actor,
    ) -> Result<TenantDeleted, StoreError>;

    /// Stores a token; `InvalidReference` when its tenant does not exist. Audited.
    fn create_token(&self, token: &TokenRecord, actor: &Actor) -> Result<(), StoreError>;
    /// Stores `token` only if the database holds no token at all (a first run); `false`
    /// when it holds one, e.g. because another instance starting at the same time made it.
    fn create_first_token(&self, token: &TokenRecord, actor: &Actor) -> Result<bool, StoreError>;
    /// Stores `token` and revokes every other active token of its tenant, in one transaction;
    /// returns the revoked ids. Audited.
    fn rotate_token(&self, token: &TokenRecord, actor: &Actor) -> Result<Vec<String>, StoreError>;
    /// The token with this id unless revoked (an expired token is returned; the caller checks).
    fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError>;
    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Returns false when no active token has that id.
    fn revoke_token(&self, id: &str, actor: &Actor) -> Result<bool, StoreError>;
    fn touch_token(&self, id: &str, when: &str) -> Result<(), StoreError>;
}

/// The audit log: an entry for every change, written in the change's transaction.
pub trait AuditStore: Send + Sync {
    /// The audit log, newest `query.limit` matching entries, oldest first.
    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;
}

/// One provisioning event as the outbox keeps it: appended in the transaction of the change
/// it reports (`scim::events::Change`), per tenant in commit order (`seq`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub tenant: String,
    pub jti: String,
    pub txn: String,
    /// When the change was committed, RFC 3339 UTC (the SET's `iat`).
    pub at: String,
    pub kind: ResourceKind,
    pub resource_id: String,
    pub change: crate::scim::events::Change<'static>,
}

/// A key that signs SETs (ES256): its id, its PKCS#8 private key and its public key (the
/// uncompressed P-256 point), and whether it is the current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub created: String,
    pub pkcs8: Vec<u8>,
    pub public_key: Vec<u8>,
    /// When a newer key took over; retired keys stay in the JWKS so receivers can still
    /// verify what they signed.
    pub retired: Option<String>,
}

/// How far one consumer of a tenant's events is behind (metrics, `events tail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerLag {
    pub consumer: String,
    pub tenant: String,
    /// Events not yet acknowledged (poll) or accepted (push).
    pub backlog: u64,
    /// Commit time of the oldest of them.
    pub oldest: Option<String>,
    /// Failed push attempts in a row, and the last error.
    pub failures: u64,
    pub last_error: Option<String>,
}

/// The provisioning event outbox: written by the resource writes themselves (same
/// transaction), read by the poll endpoint, the push senders and `events tail`.
pub trait EventStore: Send + Sync {
    /// Events after `after` (exclusive), oldest first, at most `limit`; of one tenant or all.
    fn events_after(
        &self,
        tenant: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;
    /// The newest event's `seq` (0 when there is none): a cheap "anything new?".
    fn last_event_seq(&self) -> Result<i64, StoreError>;
    /// For one consumer (a polling token, a push receiver) of `tenant`: records `done` (the
    /// `jti`s acknowledged or reported as errors) and returns the oldest `max` events not yet
    /// done, and whether more are waiting. A consumer starts at the oldest retained event.
    fn poll_events(
        &self,
        consumer: &str,
        tenant: &str,
        done: &[String],
        max: usize,
    ) -> Result<(Vec<StoredEvent>, bool), StoreError>;
    /// Takes or renews the right to push to `consumer` until `until` (RFC 3339) for `owner`
    /// (one process); `false` while another owner holds an unexpired lease.
    fn lease_consumer(
        &self,
        consumer: &str,
        tenant: &str,
        owner: &str,
        now: &str,
        until: &str,
    ) -> Result<bool, StoreError>;
    /// Records that `consumer` has every event of its tenant up to `through` (a push
    /// receiver, which is sent events in order): one statement, however many there were.
    fn consumer_delivered(&self, consumer: &str, through: i64) -> Result<(), StoreError>;
    /// Records a failed push attempt (counted until the next success).
    fn consumer_failed(&self, consumer: &str, error: &str) -> Result<(), StoreError>;
    /// Every consumer's backlog.
    fn consumer_lag(&self) -> Result<Vec<ConsumerLag>, StoreError>;
    /// Deletes events committed before `before` (RFC 3339); returns how many.
    fn prune_events(&self, before: &str) -> Result<u64, StoreError>;
    /// The signing keys, newest first.
    fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Adds `key` as the current signing key, retiring the others, in one transaction.
    fn add_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;

    /// Events before `before` (exclusive), newest first, at most `limit`; of one tenant or
    /// all (the console's feed, paged backwards). Built on [`EventStore::events_after`] over
    /// growing windows of `seq`, so a backend needs nothing more; it reads at most the
    /// tenant's events of the last window.
    fn events_before(
        &self,
        tenant: Option<&str>,
        before: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let before = before.min(self.last_event_seq()?.saturating_add(1));
        if limit == 0 || before <= 1 {
            return Ok(Vec::new());
        }
        let mut span = i64::try_from(limit).unwrap_or(i64::MAX).saturating_mul(2);
        loop {
            let after = before.saturating_sub(1).saturating_sub(span).max(0);
            // Events after `after` and before `before`: at most `before - 1 - after` of them.
            let most = usize::try_from(before - 1 - after).unwrap_or(usize::MAX);
            let mut found = self.events_after(tenant, after, most)?;
            found.retain(|e| e.seq < before);
            if found.len() >= limit || after == 0 {
                found.reverse();
                found.truncate(limit);
                return Ok(found);
            }
            span = span.saturating_mul(4);
        }
    }
}

/// What the admin console's overview says about the database; `None` where the backend
/// cannot tell (the console then says "unknown").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageInfo {
    /// Bytes on disk (SQLite: the database file and its WAL).
    pub size_bytes: Option<u64>,
    /// When the last backup was taken, RFC 3339.
    pub last_backup: Option<String>,
}

/// What `/healthz`, `/metrics` and the admin console ask the storage.
pub trait HealthStore: Send + Sync {
    /// Proves the database takes a write now (a write of its own, bounded in time).
    fn writable(&self) -> Result<(), StoreError>;
    /// How many commits each durable flush made durable, if the backend batches them.
    fn write_batch_sizes(&self) -> Option<Histogram> {
        None
    }
    /// The database's size and last backup, as far as the backend knows them.
    fn storage(&self) -> StorageInfo {
        StorageInfo::default()
    }
}

/// A login to the admin console. Only the SHA-256 of the session's secret (the cookie's
/// value) is stored, so a copy of the database opens no console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the session secret, lower-case hex.
    pub digest: String,
    /// The admin token that logged in: the session lives no longer than it.
    pub token_id: String,
    /// [`format_utc_millis`] times, so text order is time order.
    pub created: String,
    pub expires: String,
}

/// Admin console sessions.
pub trait SessionStore: Send + Sync {
    /// Stores a new session, and drops those expired at `now`. `InvalidReference` when its
    /// token is not an active token.
    fn create_session(&self, session: &SessionRecord, now: &str) -> Result<(), StoreError>;
    /// The session with this digest if it has not expired at `now` and its token is still
    /// active: a session dies with its token (revoked, rotated away, its tenant deleted). The
    /// token's own expiry and scope are the caller's to check.
    fn session(&self, digest: &str, now: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// Ends a session (logout); false when there was none.
    fn delete_session(&self, digest: &str) -> Result<bool, StoreError>;
}

/// What the server records of its configuration at start, and `check-config` reads back.
pub trait SchemaStore: Send + Sync {
    /// Records the registry's extensions in the database (for the SQL views) and makes its
    /// unique extension attributes unique.
    fn sync_schema(&self) -> Result<(), StoreError>;
    /// The extension URNs stored documents hold values under, per resource type, with how
    /// many resources hold each.
    fn stored_extensions(&self) -> Result<Vec<(ResourceKind, String, u64)>, StoreError>;
}

impl SchemaStore for SqliteStore {
    fn sync_schema(&self) -> Result<(), StoreError> {
        SqliteStore::sync_schema(self)
    }

    fn stored_extensions(&self) -> Result<Vec<(ResourceKind, String, u64)>, StoreError> {
        SqliteStore::stored_extensions(self)
    }
}

/// Everything the API needs from a backend.
pub trait Store:
    ResourceStore + TenantStore + AuditStore + EventStore + HealthStore + SchemaStore + SessionStore
{
}

impl<
        T: ResourceStore
            + TenantStore
            + AuditStore
            + EventStore
            + HealthStore
            + SchemaStore
            + SessionStore,
    > Store for T
{
}
