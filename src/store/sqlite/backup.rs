//! `scimlite backup`: a consistent copy of a live database with SQLite's online backup API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("database {0} does not exist")]
    NoSource(PathBuf),
    #[error("{0} already exists; pass --force to replace it")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the database stayed busy; no consistent copy could be taken within {0:?}")]
    Busy(Duration),
    #[error("the copy failed its integrity check: {0}")]
    Integrity(String),
}

/// What was copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    pub bytes: u64,
    pub schema_version: i64,
}

/// How long to keep retrying while the source is locked (a checkpoint or a migration).
const BUSY_LIMIT: Duration = Duration::from_secs(30);

/// Copies the database at `source` to `dest`, consistently, while other processes keep
/// reading and writing it. The copy is made in a temporary file beside `dest`, checked with
/// `PRAGMA integrity_check`, synced, and only then moved to `dest`; an existing `dest` is
/// replaced only with `overwrite`. `source` is opened read-only and never migrated.
pub fn backup(source: &Path, dest: &Path, overwrite: bool) -> Result<BackupReport, BackupError> {
    if !source.is_file() {
        return Err(BackupError::NoSource(source.to_path_buf()));
    }
    if !overwrite && dest.exists() {
        return Err(BackupError::Exists(dest.to_path_buf()));
    }
    let partial = partial_path(dest);
    let result = copy_into(source, &partial).and_then(|report| {
        publish(&partial, dest, overwrite)?;
        Ok(report)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(dest.file_name().unwrap_or_default());
    name.push(format!(".partial-{}", std::process::id()));
    dest.with_file_name(name)
}

fn copy_into(source: &Path, partial: &Path) -> Result<BackupReport, BackupError> {
    let src_err = |source| BackupError::Sqlite {
        path: partial.to_path_buf(),
        source,
    };
    let from_err = |e| BackupError::Sqlite {
        path: source.to_path_buf(),
        source: e,
    };
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(from_err)?;
    src.busy_timeout(Duration::from_secs(5)).map_err(from_err)?;
    // The copy holds password and token hashes: readable by the owner only. SQLite opens the
    // empty file as a new database and keeps its mode.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(partial).map_err(|e| BackupError::Io {
        path: partial.to_path_buf(),
        source: e,
    })?;
    let mut dst = Connection::open(partial).map_err(src_err)?;
    {
        let job = Backup::new(&src, &mut dst).map_err(src_err)?;
        // All pages in one step: the step reads one snapshot of the source (in WAL mode without
        // blocking the server's writers), so the copy is consistent. Copying in several steps
        // would restart from scratch after every write another process makes in between, and a
        // busy server would keep it from ever finishing.
        let started = std::time::Instant::now();
        loop {
            match job.step(-1).map_err(src_err)? {
                StepResult::Done => break,
                _ if started.elapsed() > BUSY_LIMIT => return Err(BackupError::Busy(BUSY_LIMIT)),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    // The copy is one self-contained file (no -wal beside it); the server switches it back to
    // WAL when it opens it after a restore.
    let _: String = dst
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .map_err(src_err)?;
    let problems: Vec<String> = dst
        .prepare("PRAGMA integrity_check")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(src_err)?;
    if problems != ["ok"] {
        return Err(BackupError::Integrity(problems.join("; ")));
    }
    let schema_version: i64 = dst
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(src_err)?;
    dst.close().map_err(|(_, e)| src_err(e))?;
    let io_err = |source| BackupError::Io {
        path: partial.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(partial).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    let bytes = file.metadata().map_err(io_err)?.len();
    Ok(BackupReport {
        bytes,
        schema_version,
    })
}

/// Moves the finished copy into place. Without `overwrite` a hard link is used, which fails
/// if `dest` appeared in the meantime, so an existing file is never replaced.
fn publish(partial: &Path, dest: &Path, overwrite: bool) -> Result<(), BackupError> {
    let io_err = |source| BackupError::Io {
        path: dest.to_path_buf(),
        source,
    };
    if overwrite {
        std::fs::rename(partial, dest).map_err(io_err)?;
    } else {
        match std::fs::hard_link(partial, dest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(BackupError::Exists(dest.to_path_buf()))
            }
            Err(e) => return Err(io_err(e)),
        }
        std::fs::remove_file(partial).map_err(io_err)?;
    }
    // The rename or link is durable once the folder is synced.
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{SqliteStore, Synchronous};

    #[test]
    fn refuses_to_overwrite_without_force_and_copies_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        drop(SqliteStore::open(&db, Synchronous::Normal).unwrap());
        let dest = dir.path().join("copy.db");
        std::fs::write(&dest, b"keep me").unwrap();
        assert!(matches!(
            backup(&db, &dest, false),
            Err(BackupError::Exists(_))
        ));
        assert_eq!(std::fs::read(&dest).unwrap(), b"keep me");
        let report = backup(&db, &dest, true).unwrap();
        assert_eq!(
            report.schema_version,
            crate::store::sqlite::migrations::MIGRATIONS.len() as i64
        );
        assert_eq!(std::fs::metadata(&dest).unwrap().len(), report.bytes);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No partial file is left behind, and a missing source is named.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.contains("partial")), "{names:?}");
        assert!(matches!(
            backup(&dir.path().join("nope.db"), &dir.path().join("x.db"), false),
            Err(BackupError::NoSource(_))
        ));
    }
}
