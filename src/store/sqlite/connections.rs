//! Connections: the one writer behind a mutex, a pool of readers, and group commit (one
//! fsync of the WAL makes every commit so far durable).

use super::*;

pub(super) fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The store has more statements than rusqlite's default cache of 16 holds (over 40, and
    // the compiled filters' shapes besides): a request path that cycles through more than
    // the cache re-prepares each statement it evicted.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    query::register_functions(conn)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Commits write the WAL without fsync; with `Synchronous::Full` the group commit below
    // makes each acknowledged write durable. WAL with NORMAL never corrupts the database.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

/// Prepared statements kept per connection (see `configure`).
const STATEMENT_CACHE: usize = 128;

/// Group commit. Each write transaction commits (SQLite `synchronous = NORMAL`: the WAL is
/// written, not synced) and releases the writer; the request then waits until one fsync of
/// the WAL covers its commit. Whoever finds no fsync running does it for everyone committed
/// so far, so concurrent writers share one fsync instead of queueing for one each, and the
/// next transaction runs while the disk syncs. A commit is acknowledged only once durable.
pub(super) struct GroupCommit {
    wal: std::path::PathBuf,
    state: Mutex<SyncState>,
    synced_cv: Condvar,
}

pub(super) struct SyncState {
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
    pub(super) fn new(db: &Path) -> GroupCommit {
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
pub(super) fn sync_file(path: &Path) -> std::io::Result<()> {
    match std::fs::File::open(path) {
        Ok(f) => f.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl SqliteStore {
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_waiting(None, f)
    }

    /// A write transaction; `lock_wait` overrides how long it waits for SQLite's write lock.
    pub(super) fn write_waiting<T>(
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
    pub(super) fn prune_if_due(&self, tx: &Connection) {
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

    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_reader(true, f)
    }

    /// A read of one statement: its own snapshot already, so no BEGIN/COMMIT around it (the
    /// token check of every request).
    pub(super) fn read_one<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_reader(false, f)
    }

    pub(super) fn with_reader<T>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::test_support::*;

    /// The console's "database size" is the file and its WAL; a backup is never known.
    #[test]
    fn storage_is_the_file_and_its_wal_and_backups_are_unknown() {
        let (dir, s) = store();
        let on_disk = |name: &str| {
            std::fs::metadata(dir.path().join(name))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        s.create(T, ResourceKind::User, &user("a"), None, &A)
            .unwrap();
        let info = HealthStore::storage(&s);
        assert_eq!(info.size_bytes, Some(on_disk("t.db") + on_disk("t.db-wal")));
        assert!(info.size_bytes.unwrap_or(0) > 0);
        assert_eq!(info.last_backup, None);
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
}
