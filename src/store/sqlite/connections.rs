//! Connections: the one writer behind a mutex, a pool of readers, write batches (several
//! requests' writes in one transaction) and group commit (one fsync of the WAL makes every
//! commit so far durable).

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
    // Each write of a batch runs in a savepoint, whose undo pages SQLite keeps in a
    // sub-journal. Built as .cargo/config.toml says, SQLite keeps it in one 1 MiB buffer
    // (SQLITE_STMTJRNL_SPILL) and only a write of more than 256 pages spills to a temp file.
    // Without that option it would spill past 64 KiB, about one create's worth, so such a
    // build keeps it in memory through temp_store, in 1 KiB chunks (SQLite's fixed size for
    // in-memory temp storage): sixty allocations for a create's savepoint, 4.6% of the
    // server's instructions in a sync (callgrind, issue 22).
    if !statement_journal_spills_late(conn)? {
        conn.pragma_update(None, "temp_store", "MEMORY")?;
    }
    Ok(())
}

/// The statement-journal size this SQLite was built with (.cargo/config.toml).
const STATEMENT_JOURNAL_SPILL: &str = "STMTJRNL_SPILL=1048576";

/// Whether SQLite was built to keep statement journals in memory up to 1 MiB.
fn statement_journal_spills_late(conn: &Connection) -> Result<bool, StoreError> {
    Ok(conn.query_row(
        "SELECT sqlite_compileoption_used(?1)",
        [STATEMENT_JOURNAL_SPILL],
        |r| r.get(0),
    )?)
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
    /// Threads blocked on `synced_cv` (notified only when there are some, see `OutcomeState`).
    waiting: usize,
    /// Every wait on `synced_cv` so far.
    #[cfg(test)]
    waits: u64,
    /// How many commits each fsync made durable (metrics: "write batch sizes").
    batch_sizes: Histogram,
}

impl Default for SyncState {
    fn default() -> Self {
        SyncState {
            committed: 0,
            synced: 0,
            syncing: false,
            waiting: 0,
            #[cfg(test)]
            waits: 0,
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

    /// Whether an fsync is running.
    fn syncing(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).syncing
    }

    /// Returns once commit `seq` is durable, running the fsync itself when none runs.
    ///
    /// The thread that runs an fsync then commits the batch left open while it ran
    /// (`take_deferred`) and, if its own fsync succeeded, syncs once more before telling that
    /// batch's writes: they wake once, to a durable commit, instead of once for the commit and
    /// again for the next fsync (each wake-up a futex call and two context switches). One
    /// extra round at most, so the syncer's own answer waits for two fsyncs at most; a batch
    /// opened during the second one is committed and told at once, and its writes make it
    /// durable themselves.
    fn wait_durable(
        &self,
        seq: u64,
        take_deferred: &dyn Fn() -> Option<Deferred>,
    ) -> Result<(), StoreError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if st.synced >= seq {
                return Ok(());
            }
            if st.syncing {
                st.waiting += 1;
                #[cfg(test)]
                {
                    st.waits += 1;
                }
                st = self.synced_cv.wait(st).unwrap_or_else(|p| p.into_inner());
                st.waiting -= 1;
                continue;
            }
            st.syncing = true;
            drop(st);
            let result = self.sync_round();
            let deferred = take_deferred();
            if result.is_ok() && deferred.as_ref().is_some_and(Deferred::committed) {
                // If this fails, `synced` stays short of the batch: its writes find it not
                // durable and run an fsync themselves.
                let _ = self.sync_round();
            }
            st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.syncing = false;
            let wake = st.waiting > 0;
            drop(st);
            if wake {
                self.synced_cv.notify_all();
            }
            if let Some(d) = deferred {
                d.tell();
            }
            if let Some(d) = take_deferred() {
                d.tell();
            }
            result.map_err(|e| StoreError::Durability(e.to_string()))?;
            st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        }
    }

    /// One fsync covering every commit so far, run by the thread that set `syncing`; wakes
    /// the threads waiting for it (those whose commit is still not durable wait again while
    /// `syncing` stays set).
    fn sync_round(&self) -> std::io::Result<()> {
        let target = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .committed;
        let result = sync_file(&self.wal);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if result.is_ok() {
            // Only the syncer moves `synced`, so it is still what it was before the fsync.
            let covered = target.saturating_sub(st.synced);
            st.batch_sizes.observe(covered as f64);
            st.synced = st.synced.max(target);
        }
        let wake = st.waiting > 0;
        drop(st);
        if wake {
            self.synced_cv.notify_all();
        }
        result
    }
}

/// A batch committed (or found broken) by the thread that ended an fsync, whose writes have
/// not been told yet (see [`GroupCommit::wait_durable`]).
pub(super) struct Deferred {
    outcome: Arc<BatchOutcome>,
    settled: Settled,
}

impl Deferred {
    /// Whether the batch is committed as a group commit's commit (and so can be synced).
    fn committed(&self) -> bool {
        self.commit_seq().is_some()
    }

    /// The group commit's sequence number of the batch's commit, if it committed as one.
    fn commit_seq(&self) -> Option<u64> {
        match self.settled {
            Ok(Some(seq)) => Some(seq),
            _ => None,
        }
    }

    fn tell(self) {
        self.outcome.settle(self.settled);
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

/// The writer connection and the batch its open transaction holds, if any.
pub(super) struct Writer {
    pub(super) conn: Connection,
    batch: Option<OpenBatch>,
}

impl Writer {
    pub(super) fn new(conn: Connection) -> Writer {
        Writer { conn, batch: None }
    }
}

/// Several requests' writes in one SQLite transaction, each after the first in its own
/// savepoint (the first is undone by rolling back the transaction). A commit
/// writes every page the transaction changed to the WAL once, so the creates of one batch
/// share the pages they have in common (the tables' last leaves, the audit log's and the
/// outbox's) instead of writing each again: fewer WAL frames, `pwrite`s and checksums per
/// write, and one commit and one fsync for the batch. A write joins the open batch while
/// other writers queue for the connection; the last of them (or the one that fills the batch)
/// commits. Every write of a batch is acknowledged only once the batch is committed and,
/// with `synchronous = full`, durable; if the commit fails, none of them is.
struct OpenBatch {
    /// Where the batch's outcome is posted for the writes waiting on it.
    outcome: Arc<BatchOutcome>,
    writes: usize,
    began: Instant,
}

/// A batch is committed once it holds this many writes…
const BATCH_MOST_WRITES: usize = 32;
/// …or has been open this long, even while writers are still queueing.
const BATCH_LONGEST: Duration = Duration::from_millis(10);

/// What became of a batch: `Ok(Some(seq))` committed as group commit's commit `seq`,
/// `Ok(None)` committed without group commit, `Err` not committed.
type Settled = Result<Option<u64>, String>;

#[derive(Default)]
struct BatchOutcome {
    state: Mutex<OutcomeState>,
    cv: Condvar,
}

#[derive(Default)]
struct OutcomeState {
    settled: Option<Settled>,
    /// Writes blocked in `wait`. A notify is a futex syscall even when no one waits, and the
    /// write that closes a batch of one waits for no one: it is notified only if someone does.
    waiting: usize,
}

impl BatchOutcome {
    fn settle(&self, outcome: Settled) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.settled = Some(outcome);
        let wake = st.waiting > 0;
        drop(st);
        if wake {
            self.cv.notify_all();
        }
    }

    fn wait(&self) -> Settled {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(outcome) = st.settled.as_ref() {
                return outcome.clone();
            }
            st.waiting += 1;
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
            st.waiting -= 1;
        }
    }
}

impl SqliteStore {
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_waiting(None, f)
    }

    /// A write: `f` runs in the open batch's transaction (see [`OpenBatch`]), in a savepoint
    /// unless it is the batch's first write, and its result is returned once the batch is
    /// committed (and durable). An error of `f` rolls back `f`'s changes alone. `lock_wait`
    /// overrides how long starting a transaction waits for SQLite's write lock (held by
    /// another process).
    pub(super) fn write_waiting<T>(
        &self,
        lock_wait: Option<Duration>,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.queued_writers.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.queued_writers.fetch_sub(1, Ordering::SeqCst);
        let writer = &mut *guard;
        if writer.batch.is_none() {
            begin(&writer.conn, lock_wait)?;
            writer.batch = Some(OpenBatch {
                outcome: Arc::default(),
                writes: 0,
                began: Instant::now(),
            });
        }
        let conn = &writer.conn;
        let first = writer.batch.as_ref().is_some_and(|b| b.writes == 0);
        let (out, intact) = if first {
            // The batch's transaction holds nothing else yet, so undoing it undoes this write
            // alone: no savepoint, whose journal copied each page the write changed (15 of
            // them, 60 KB, per create: 7% of the server's instructions in a sync, callgrind).
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)));
            if !matches!(out, Ok(Ok(_))) {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                writer.batch = None;
                drop(guard);
                return match out {
                    Ok(err) => err,
                    Err(panic) => std::panic::resume_unwind(panic),
                };
            }
            let intact = !conn.is_autocommit();
            (out, intact)
        } else {
            in_savepoint(conn, f)
        };
        let Some(batch) = writer.batch.as_mut() else {
            return Err(StoreError::Corrupt("the write batch vanished".into()));
        };
        batch.writes += 1;
        let outcome = Arc::clone(&batch.outcome);
        // With group commit, a commit while an fsync runs could not be durable before the
        // next one anyway: the batch stays open for more writes, and whoever finishes that
        // fsync commits it (`commit_deferred`).
        let close = !intact
            || batch.writes >= BATCH_MOST_WRITES
            || batch.began.elapsed() >= BATCH_LONGEST
            || (self.queued_writers.load(Ordering::SeqCst) == 0
                && !self.group_commit.as_ref().is_some_and(GroupCommit::syncing));
        let closed = if close {
            self.close_batch(writer, intact)
        } else {
            None
        };
        drop(guard);
        if let Some(closed) = closed {
            // The batch's other writes are told once it is durable, not at its commit: they
            // wake once, instead of once to find it committed and again for its fsync. If the
            // fsync fails they are told anyway, find it not durable and sync themselves.
            if let (Some(gc), Some(seq)) = (&self.group_commit, closed.commit_seq()) {
                let _ = gc.wait_durable(seq, &|| self.take_deferred());
            }
            closed.tell();
        }
        let out = match out {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let seq = outcome
            .wait()
            .map_err(|e| StoreError::Unavailable(format!("the write was not committed: {e}")))?;
        if let (Some(gc), Some(seq)) = (&self.group_commit, seq) {
            gc.wait_durable(seq, &|| self.take_deferred())?;
        }
        out
    }

    /// Commits (or, when SQLite already ended it, rolls back) the open batch, if any; its
    /// writes are told the outcome by [`Deferred::tell`].
    fn close_batch(&self, writer: &mut Writer, intact: bool) -> Option<Deferred> {
        let batch = writer.batch.take()?;
        let conn = &writer.conn;
        let committed = if intact {
            self.prune_if_due(conn);
            commit(conn)
        } else {
            // SQLite rolled the whole transaction back (a full disk, an I/O error): the
            // writes before this one are gone with it.
            let _ = conn.execute_batch("ROLLBACK");
            Err("SQLite rolled the transaction back".to_string())
        };
        let settled = committed.map(|()| self.group_commit.as_ref().map(GroupCommit::committed));
        Some(Deferred {
            outcome: batch.outcome,
            settled,
        })
    }

    /// Run by a writer that has just finished an fsync: commits a batch left open while it
    /// ran, so its writes can be made durable by the next one.
    fn take_deferred(&self) -> Option<Deferred> {
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.close_batch(&mut guard, true)
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

/// Starts the batch's transaction, waiting up to `lock_wait` (else the connection's busy
/// timeout) for another process's write lock.
fn begin(conn: &Connection, lock_wait: Option<Duration>) -> Result<(), StoreError> {
    if let Some(wait) = lock_wait {
        conn.busy_timeout(wait)?;
    }
    let begun = conn
        .prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut begin| begin.execute([]));
    if lock_wait.is_some() {
        conn.busy_timeout(BUSY_TIMEOUT)?;
    }
    begun?;
    Ok(())
}

/// What a write in a savepoint gave, and whether the batch's transaction is still intact.
type SavepointRun<T> = (std::thread::Result<Result<T, StoreError>>, bool);

/// Runs `f` in a savepoint: kept if `f` succeeds, undone if it fails or panics. Intact is
/// false when SQLite ended the whole transaction (or the savepoint could not be handled).
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> SavepointRun<T> {
    let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
    if let Err(e) = run("SAVEPOINT write") {
        return (Ok(Err(e.into())), !conn.is_autocommit());
    }
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)));
    if conn.is_autocommit() {
        return (out, false);
    }
    let kept = matches!(out, Ok(Ok(_)));
    let ended = if kept {
        run("RELEASE write")
    } else {
        run("ROLLBACK TO write").and_then(|_| run("RELEASE write"))
    };
    (out, ended.is_ok() && !conn.is_autocommit())
}

/// Commits the batch's transaction; on failure rolls it back, so the connection is ready
/// for the next batch.
fn commit(conn: &Connection) -> Result<(), String> {
    match conn
        .prepare_cached("COMMIT")
        .and_then(|mut c| c.execute([]))
    {
        Ok(_) => Ok(()),
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Err(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::test_support::*;

    /// The build setting in .cargo/config.toml reached SQLite: without it every savepointed
    /// write allocates its undo pages in 1 KiB chunks (see `configure`).
    #[test]
    fn sqlite_keeps_statement_journals_in_memory_up_to_one_mebibyte() {
        let conn = Connection::open_in_memory().unwrap();
        configure(&conn).unwrap();
        assert!(statement_journal_spills_late(&conn).unwrap());
        let temp_store: i64 = conn
            .query_row("PRAGMA temp_store", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            temp_store, 0,
            "SQLite's default, not the fallback's MEMORY (2)"
        );
    }

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
        assert!(
            (1..=200).contains(&st.committed),
            "one commit per batch: {}",
            st.committed
        );
        assert_eq!(
            st.synced, st.committed,
            "every acknowledged commit is synced"
        );
        assert!(!st.syncing);
        drop(st);
        // `normal` has no group commit.
        let n = SqliteStore::open(&dir.path().join("n.db"), Synchronous::Normal).unwrap();
        assert!(n.group_commit.is_none());
        assert_eq!(users(&s), 200, "every acknowledged write is stored");
    }

    fn users(s: &SqliteStore) -> u64 {
        s.list(T, ResourceKind::User, None, None, PAGE, BASE)
            .unwrap()
            .0
    }

    fn commits(s: &SqliteStore) -> u64 {
        s.group_commit
            .as_ref()
            .unwrap()
            .state
            .lock()
            .unwrap()
            .committed
    }

    /// Waits (at most 10 s) until the open batch holds `n` writes.
    fn until_batch_holds(s: &SqliteStore, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let writes = s
                .writer
                .lock()
                .unwrap()
                .batch
                .as_ref()
                .map_or(0, |b| b.writes);
            if writes == n {
                return;
            }
            assert!(Instant::now() < deadline, "the batch never held {n} writes");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Writes that arrive while others queue share one transaction and one commit; one that
    /// fails (a taken userName) is undone alone, and is answered only once the batch is in.
    #[test]
    fn queued_writes_share_a_commit_and_a_failed_one_is_undone_alone() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("b.db"), Synchronous::Full).unwrap();
        s.create(T, ResourceKind::User, &user("taken"), None, &A)
            .unwrap();
        let before = commits(&s);
        // A writer "queues" for the whole test, so each write leaves the batch open.
        s.queued_writers.fetch_add(1, Ordering::SeqCst);
        std::thread::scope(|scope| {
            let first = scope.spawn(|| s.create(T, ResourceKind::User, &user("a"), None, &A));
            until_batch_holds(&s, 1);
            let taken = scope.spawn(|| s.create(T, ResourceKind::User, &user("TAKEN"), None, &A));
            until_batch_holds(&s, 2);
            assert_eq!(users(&s), 1, "nothing of an open batch is visible");
            s.queued_writers.fetch_sub(1, Ordering::SeqCst);
            // The last write finds no one queueing and commits the three.
            s.create(T, ResourceKind::User, &user("c"), None, &A)
                .unwrap();
            assert!(first.join().unwrap().is_ok());
            assert!(matches!(
                taken.join().unwrap(),
                Err(StoreError::Conflict(_))
            ));
        });
        assert_eq!(commits(&s) - before, 1, "one commit for the batch");
        assert_eq!(users(&s), 3);
        let gc = s.group_commit.as_ref().unwrap().state.lock().unwrap();
        assert_eq!(gc.synced, gc.committed, "and it is durable");
    }

    /// A write that panics is undone and the batch goes on without it.
    #[test]
    fn a_write_that_panics_leaves_the_rest_of_its_batch() {
        let (_dir, s) = store();
        s.queued_writers.fetch_add(1, Ordering::SeqCst);
        std::thread::scope(|scope| {
            let first = scope.spawn(|| s.create(T, ResourceKind::User, &user("a"), None, &A));
            until_batch_holds(&s, 1);
            let panicking = scope.spawn(|| {
                s.write(|conn| -> Result<(), StoreError> {
                    conn.execute("DELETE FROM resources", [])?;
                    panic!("a bug in a write")
                })
            });
            assert!(panicking.join().is_err());
            s.queued_writers.fetch_sub(1, Ordering::SeqCst);
            s.create(T, ResourceKind::User, &user("b"), None, &A)
                .unwrap();
            assert!(first.join().unwrap().is_ok());
        });
        assert_eq!(users(&s), 2, "the panicking write's DELETE was undone");
    }

    /// The first write of a batch runs without a savepoint: one that fails or panics is
    /// undone by rolling back the transaction, answers its own error, and the next write
    /// starts a batch of its own.
    #[test]
    fn a_first_write_that_fails_or_panics_is_undone_with_its_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("f.db"), Synchronous::Full).unwrap();
        s.create(T, ResourceKind::User, &user("kept"), None, &A)
            .unwrap();
        let failed = s.write(|conn| -> Result<(), StoreError> {
            conn.execute("DELETE FROM resources", [])?;
            Err(StoreError::Conflict("refused after deleting".into()))
        });
        assert!(matches!(failed, Err(StoreError::Conflict(_))), "{failed:?}");
        assert_eq!(users(&s), 1, "the failed write's DELETE was undone");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            s.write(|conn| -> Result<(), StoreError> {
                conn.execute("DELETE FROM resources", [])?;
                panic!("a bug in a write")
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(users(&s), 1, "the panicking write's DELETE was undone");
        assert!(
            s.writer.lock().unwrap().batch.is_none(),
            "no batch left open"
        );
        // While others queue, a failed first write leaves no batch behind for them to join.
        s.queued_writers.fetch_add(1, Ordering::SeqCst);
        let failed = s.write(|conn| -> Result<(), StoreError> {
            conn.execute("DELETE FROM resources", [])?;
            Err(StoreError::Conflict("refused".into()))
        });
        assert!(failed.is_err());
        assert!(s.writer.lock().unwrap().batch.is_none());
        s.queued_writers.fetch_sub(1, Ordering::SeqCst);
        s.create(T, ResourceKind::User, &user("next"), None, &A)
            .unwrap();
        assert_eq!(users(&s), 2);
        let gc = s.group_commit.as_ref().unwrap().state.lock().unwrap();
        assert_eq!(gc.synced, gc.committed, "and it is durable");
    }

    /// A later write of a batch that fails is undone alone: the first write, which ran
    /// without a savepoint, keeps its changes.
    #[test]
    fn a_later_write_that_fails_keeps_the_first_write_of_its_batch() {
        let (_dir, s) = store();
        s.queued_writers.fetch_add(1, Ordering::SeqCst);
        std::thread::scope(|scope| {
            let first = scope.spawn(|| s.create(T, ResourceKind::User, &user("a"), None, &A));
            until_batch_holds(&s, 1);
            let failed = scope.spawn(|| {
                s.write(|conn| -> Result<(), StoreError> {
                    conn.execute("DELETE FROM resources", [])?;
                    Err(StoreError::Conflict("refused after deleting".into()))
                })
            });
            until_batch_holds(&s, 2);
            s.queued_writers.fetch_sub(1, Ordering::SeqCst);
            s.create(T, ResourceKind::User, &user("b"), None, &A)
                .unwrap();
            assert!(first.join().unwrap().is_ok());
            assert!(matches!(
                failed.join().unwrap(),
                Err(StoreError::Conflict(_))
            ));
        });
        assert_eq!(
            users(&s),
            2,
            "the first write survived the later one's DELETE"
        );
    }

    /// When SQLite ends the whole transaction (here a write that rolls it back itself, as a
    /// full disk would), no write of the batch is acknowledged and none is stored.
    #[test]
    fn a_batch_that_cannot_commit_acknowledges_none_of_its_writes() {
        let (_dir, s) = store();
        s.queued_writers.fetch_add(1, Ordering::SeqCst);
        std::thread::scope(|scope| {
            let first = scope.spawn(|| s.create(T, ResourceKind::User, &user("a"), None, &A));
            until_batch_holds(&s, 1);
            s.queued_writers.fetch_sub(1, Ordering::SeqCst);
            let broke = s.write(|conn| Ok(conn.execute_batch("ROLLBACK")?));
            assert!(
                matches!(broke, Err(StoreError::Unavailable(_))),
                "{broke:?}"
            );
            let first = first.join().unwrap();
            assert!(
                matches!(first, Err(StoreError::Unavailable(_))),
                "{first:?}"
            );
        });
        assert_eq!(users(&s), 0);
        // The connection takes the next write.
        s.create(T, ResourceKind::User, &user("b"), None, &A)
            .unwrap();
        assert_eq!(users(&s), 1);
    }

    /// The write that closes a batch syncs it before telling the batch's other writes: they
    /// wake once, to a durable commit, and never wait for the fsync themselves.
    #[test]
    fn a_closed_batch_is_synced_before_its_other_writes_are_told() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("c.db"), Synchronous::Full).unwrap();
        let gc = s.group_commit.as_ref().unwrap();
        let waits = gc.state.lock().unwrap().waits;
        for round in 0..10 {
            s.queued_writers.fetch_add(1, Ordering::SeqCst);
            std::thread::scope(|scope| {
                let name = format!("open{round}");
                let store = &s;
                let first = scope
                    .spawn(move || store.create(T, ResourceKind::User, &user(&name), None, &A));
                until_batch_holds(&s, 1);
                s.queued_writers.fetch_sub(1, Ordering::SeqCst);
                s.create(
                    T,
                    ResourceKind::User,
                    &user(&format!("close{round}")),
                    None,
                    &A,
                )
                .unwrap();
                assert!(first.join().unwrap().is_ok());
            });
        }
        let st = gc.state.lock().unwrap();
        assert_eq!(
            st.synced, st.committed,
            "every acknowledged write is durable"
        );
        assert_eq!(st.waits, waits, "no write waited for an fsync");
        drop(st);
        assert_eq!(users(&s), 20);
    }

    /// The thread that ends an fsync commits the batch left open during it and syncs again
    /// before telling its writes: they wake once, to a durable commit, and never wait for the
    /// fsync themselves.
    #[test]
    fn a_deferred_batch_is_synced_before_its_writes_are_told() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("w.db"), Synchronous::Full).unwrap();
        let gc = s.group_commit.as_ref().unwrap();
        s.create(T, ResourceKind::User, &user("first"), None, &A)
            .unwrap();
        // An fsync "runs": the next writes leave their batch open.
        gc.state.lock().unwrap().syncing = true;
        let (waits, rounds) = {
            let st = gc.state.lock().unwrap();
            (st.waits, st.batch_sizes.count())
        };
        std::thread::scope(|scope| {
            let a = scope.spawn(|| s.create(T, ResourceKind::User, &user("a"), None, &A));
            let b = scope.spawn(|| s.create(T, ResourceKind::User, &user("b"), None, &A));
            until_batch_holds(&s, 2);
            // This thread is the syncer of one more commit (pretended): it ends the fsync.
            let own = {
                let mut st = gc.state.lock().unwrap();
                st.committed += 1;
                st.syncing = false;
                st.committed
            };
            gc.wait_durable(own, &|| s.take_deferred()).unwrap();
            assert!(a.join().unwrap().is_ok() && b.join().unwrap().is_ok());
        });
        let st = gc.state.lock().unwrap();
        assert_eq!(
            st.synced, st.committed,
            "every acknowledged write is durable"
        );
        assert_eq!(st.waits, waits, "no write waited for an fsync");
        assert_eq!(
            st.batch_sizes.count(),
            rounds + 2,
            "the syncer's fsync and one more"
        );
        drop(st);
        assert_eq!(users(&s), 3);
    }

    /// While an fsync runs, a write leaves its batch open (a commit now could not be durable
    /// before the next fsync anyway); the writer that finishes the fsync commits it.
    #[test]
    fn a_batch_left_open_during_an_fsync_is_committed_when_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("d.db"), Synchronous::Full).unwrap();
        let gc = s.group_commit.as_ref().unwrap();
        gc.state.lock().unwrap().syncing = true;
        let before = commits(&s);
        std::thread::scope(|scope| {
            let write = scope.spawn(|| s.create(T, ResourceKind::User, &user("a"), None, &A));
            until_batch_holds(&s, 1);
            assert_eq!(commits(&s), before, "no commit while the fsync runs");
            // The fsync ends: its writer commits what waited, and the write is made durable.
            gc.state.lock().unwrap().syncing = false;
            if let Some(d) = s.take_deferred() {
                d.tell();
            }
            assert!(write.join().unwrap().is_ok());
        });
        assert_eq!(commits(&s), before + 1);
        let st = gc.state.lock().unwrap();
        assert_eq!(st.synced, st.committed);
        drop(st);
        assert_eq!(users(&s), 1);
    }
}
