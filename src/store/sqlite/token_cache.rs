//! Token rows without a read per request. Every request's token check used to read its row
//! (a read transaction: locks on the shared-memory file, a page cache that any write has
//! emptied) so that a revocation by `scimlite token revoke`, another process, applied at
//! once: about 5% of the server's CPU in an initial sync (perf, issue 22).
//!
//! Now a row read is kept and used again while the *token stamp* is unchanged: a file
//! beside the database (`<database>-token-stamp`) that every change to tokens, in whatever
//! process, grows by one byte after its commit. A check is one `stat`: any change of the
//! file's size (or modification time) drops every kept row. Growing, not rewriting, makes
//! each change visible whatever the file system's time resolution. A kept row is also read
//! again after [`KEEP_AT_MOST`], which bounds what a change made some other way (SQL typed
//! into `sqlite3`, a process that died between its commit and the stamp) can be late by.
//! Changes made by this process drop its kept rows directly, even if the stamp cannot be
//! written.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::store::TokenRecord;

/// The longest a row is used without being read again.
pub(super) const KEEP_AT_MOST: Duration = Duration::from_secs(1);

/// What `stat` says of the stamp; `None` while no change has written it.
type Stamp = Option<(u64, Option<SystemTime>)>;

pub(super) struct TokenCache {
    /// The stamp.
    path: PathBuf,
    /// The database file the stamp belongs to (its owner is the stamp's).
    db: PathBuf,
    /// The stamp, open once it exists: `stat` of a descriptor needs no path lookup.
    open: RwLock<Option<std::fs::File>>,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    /// The stamp the rows below were read under.
    stamp: Stamp,
    rows: HashMap<String, (TokenRecord, Instant)>,
}

impl TokenCache {
    /// The cache of the database at `db` (its stamp is `<db>-token-stamp`, beside the real
    /// file when `db` is a symbolic link, as SQLite's own `-wal` is).
    pub(super) fn new(db: &Path) -> TokenCache {
        let real = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
        let mut name = real.as_os_str().to_owned();
        name.push("-token-stamp");
        TokenCache {
            path: name.into(),
            db: real,
            open: RwLock::new(None),
            kept: Mutex::new(Kept::default()),
        }
    }

    #[cfg(test)]
    pub(super) fn stamp_path(&self) -> &Path {
        &self.path
    }

    /// What `stat` says of the stamp: of the descriptor kept open once the file exists (a
    /// `stat` by path walked the path on every request: 1.7% of the server's CPU in a sync,
    /// perf, issue 22), or by path while there is none or the file it names was deleted.
    fn stamp(&self) -> Stamp {
        let had_one = {
            let open = self.open.read().unwrap_or_else(|p| p.into_inner());
            if let Some(m) = open.as_ref().and_then(|f| f.metadata().ok()) {
                if still_linked(&m) {
                    return Some((m.len(), m.modified().ok()));
                }
            }
            open.is_some()
        };
        let m = std::fs::metadata(&self.path).ok();
        // Opened after the `stat`: if the file is replaced in between, the next request
        // sees the new one's size and reads its row again.
        let file = m
            .as_ref()
            .and_then(|_| std::fs::File::open(&self.path).ok());
        // While there is no stamp, requests take no write lock (they would queue on it).
        if had_one || file.is_some() {
            *self.open.write().unwrap_or_else(|p| p.into_inner()) = file;
        }
        m.map(|m| (m.len(), m.modified().ok()))
    }

    /// The token's row: kept if the stamp has not moved and it was read within
    /// [`KEEP_AT_MOST`], else from `read` (and kept when it exists).
    pub(super) fn get<E>(
        &self,
        id: &str,
        read: impl FnOnce() -> Result<Option<TokenRecord>, E>,
    ) -> Result<Option<TokenRecord>, E> {
        // Taken before the read: a change that lands between the two moves the stamp again,
        // so its row is read at the next request.
        let stamp = self.stamp();
        let now = Instant::now();
        {
            let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            if kept.stamp != stamp {
                kept.rows.clear();
            } else if let Some((row, at)) = kept.rows.get(id) {
                if now.duration_since(*at) < KEEP_AT_MOST {
                    return Ok(Some(row.clone()));
                }
            }
        }
        let row = read()?;
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.stamp != stamp {
            kept.rows.clear();
            kept.stamp = stamp;
        }
        match &row {
            // Only existing tokens are kept: ids that match nothing cannot fill memory.
            Some(r) => {
                kept.rows.insert(id.to_string(), (r.clone(), now));
            }
            None => {
                kept.rows.remove(id);
            }
        }
        Ok(row)
    }

    /// After a committed change to tokens: drops this process's rows and grows the stamp
    /// for the others. A stamp that cannot be written is logged; other processes then see
    /// the change within [`KEEP_AT_MOST`].
    pub(super) fn changed(&self) {
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rows
            .clear();
        if let Err(e) = grow(&self.path, &self.db) {
            log::warn!(
                "cannot write {} ({e}); a running server sees this token change within {} s",
                self.path.display(),
                KEEP_AT_MOST.as_secs()
            );
        }
    }
}

/// Whether the file is still in the directory (a deleted stamp is found again by path).
#[cfg(unix)]
fn still_linked(m: &std::fs::Metadata) -> bool {
    std::os::unix::fs::MetadataExt::nlink(m) > 0
}

#[cfg(not(unix))]
fn still_linked(_: &std::fs::Metadata) -> bool {
    false
}

/// Appends one byte (O_APPEND: atomic between processes), creating the file owner-only.
fn grow(path: &Path, db: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    follow_database_owner(&file, db);
    file.write_all(b"\n")
}

/// The CLI run as root (`sudo scimlite token revoke`, README) would leave a stamp only root
/// may grow, and the service's own token changes (the console) could no longer tell other
/// processes: the stamp takes the database file's owner, as SQLite gives the `-wal` and
/// `-shm` files it creates as root. Anyone else may not give a file away; nothing to do then.
#[cfg(unix)]
fn follow_database_owner(file: &std::fs::File, db: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let (Ok(stamp), Ok(db)) = (file.metadata(), std::fs::metadata(db)) {
        if (stamp.uid(), stamp.gid()) != (db.uid(), db.gid()) {
            let _ = std::os::unix::fs::fchown(file, Some(db.uid()), Some(db.gid()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TokenScope;
    use std::cell::Cell;

    fn record(id: &str) -> TokenRecord {
        TokenRecord {
            id: id.into(),
            tenant: "default".into(),
            name: "okta".into(),
            hash: "h".into(),
            created: "2026-12-07T00:00:00Z".into(),
            last_used: None,
            scope: TokenScope::ReadWrite,
            expires: None,
        }
    }

    /// Counts the reads a lookup makes.
    fn lookup(cache: &TokenCache, id: &str, reads: &Cell<u32>, row: Option<TokenRecord>) -> bool {
        cache
            .get(id, || {
                reads.set(reads.get() + 1);
                Ok::<_, ()>(row)
            })
            .unwrap()
            .is_some()
    }

    #[test]
    fn a_row_is_read_again_only_when_the_stamp_moves_or_it_is_old() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let server = TokenCache::new(&db);
        let cli = TokenCache::new(&db);
        let reads = Cell::new(0);
        assert!(lookup(&server, "a", &reads, Some(record("a"))));
        assert!(lookup(&server, "a", &reads, None), "kept: no read");
        assert_eq!(reads.get(), 1);
        // Another process (its own cache on the same file) changes tokens.
        cli.changed();
        assert!(
            !lookup(&server, "a", &reads, None),
            "the stamp moved: read again"
        );
        assert_eq!(reads.get(), 2);
        assert!(
            !lookup(&server, "a", &reads, None),
            "no row is kept for a missing token"
        );
        assert_eq!(reads.get(), 3);
        // Every change moves it, however close together.
        assert!(lookup(&server, "b", &reads, Some(record("b"))));
        cli.changed();
        cli.changed();
        assert!(lookup(&server, "b", &reads, Some(record("b"))));
        assert!(lookup(&server, "b", &reads, None));
        assert_eq!(reads.get(), 5);
        // This process's own change drops its rows even when the stamp cannot be written.
        let unwritable = TokenCache::new(&dir.path().join("no-such-dir").join("t.db"));
        assert!(lookup(&unwritable, "c", &reads, Some(record("c"))));
        unwritable.changed();
        assert!(!lookup(&unwritable, "c", &reads, None));
        assert_eq!(reads.get(), 7);
        // And a kept row is read again once older than KEEP_AT_MOST.
        server.kept.lock().unwrap().rows.get_mut("b").unwrap().1 -= KEEP_AT_MOST;
        assert!(!lookup(&server, "b", &reads, None));
        assert_eq!(reads.get(), 8);
    }

    /// The stamp is watched through a kept descriptor; one deleted and written again (a new
    /// file) is found by path at once, and so is one that appears after the server started.
    #[test]
    fn a_stamp_deleted_and_written_again_is_seen_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let server = TokenCache::new(&db);
        let cli = TokenCache::new(&db);
        let reads = Cell::new(0);
        assert!(lookup(&server, "a", &reads, Some(record("a"))));
        assert!(server.open.read().unwrap().is_none(), "no stamp yet");
        cli.changed();
        cli.changed();
        assert!(lookup(&server, "a", &reads, Some(record("a"))));
        assert!(server.open.read().unwrap().is_some(), "kept open");
        assert!(lookup(&server, "a", &reads, None));
        assert_eq!(reads.get(), 2);
        // Through the kept descriptor.
        cli.changed();
        assert!(!lookup(&server, "a", &reads, None));
        assert_eq!(reads.get(), 3);
        // Deleted, then written again by the next change: a new file, one byte long.
        assert!(lookup(&server, "a", &reads, Some(record("a"))));
        std::fs::remove_file(server.stamp_path()).unwrap();
        cli.changed();
        assert!(!lookup(&server, "a", &reads, None), "the new stamp is seen");
        assert_eq!(reads.get(), 5);
        assert!(lookup(&server, "a", &reads, Some(record("a"))));
        cli.changed();
        assert!(!lookup(&server, "a", &reads, None), "and watched in turn");
        assert_eq!(reads.get(), 7);
    }

    #[cfg(unix)]
    #[test]
    fn the_stamp_is_owner_only_and_beside_the_real_database_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.db");
        std::fs::write(&real, b"").unwrap();
        let link = dir.path().join("sub");
        std::fs::create_dir(&link).unwrap();
        std::os::unix::fs::symlink(&real, link.join("link.db")).unwrap();
        let cache = TokenCache::new(&link.join("link.db"));
        cache.changed();
        let stamp = dir.path().join("real.db-token-stamp");
        assert_eq!(cache.stamp_path(), std::fs::canonicalize(&stamp).unwrap());
        let mode = std::fs::metadata(&stamp).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// As root (CI's user) the stamp takes the database's owner; as anyone else both are
    /// that user's already.
    #[cfg(unix)]
    #[test]
    fn the_stamp_has_the_database_files_owner() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        std::fs::write(&db, b"").unwrap();
        // 65534 is `nobody`; only root may give the file to it.
        let _ = std::os::unix::fs::chown(&db, Some(65534), Some(65534));
        let owner = std::fs::metadata(&db).unwrap();
        TokenCache::new(&db).changed();
        let stamp = std::fs::metadata(dir.path().join("t.db-token-stamp")).unwrap();
        assert_eq!((stamp.uid(), stamp.gid()), (owner.uid(), owner.gid()));
    }
}
