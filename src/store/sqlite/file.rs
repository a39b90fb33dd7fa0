//! The database file's permissions: it holds token and password hashes, so a new database is
//! readable by its owner only, like backups, exports and the first-token file.

use std::path::Path;

/// Creates `path` as an empty file with mode 0600 unless it exists. SQLite opens an empty file
/// as a new database, and gives the `-wal` and `-shm` files it creates beside a database the
/// database file's permissions, so all three end up 0600 (the tests below check that claim).
/// An existing database keeps its mode: an admin may have opened it to a group on purpose,
/// for an application that reads the SQL views.
pub(super) fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use crate::store::sqlite::Synchronous;
    use crate::store::{Actor, SqliteStore, TenantStore, DEFAULT_TENANT};

    /// The permission bits in octal, as `ls -l` users read them.
    fn mode(path: &Path) -> String {
        let mode = std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode();
        format!("{:o}", mode & 0o777)
    }

    fn beside(db: &Path, suffix: &str) -> PathBuf {
        let mut name = db.file_name().unwrap().to_os_string();
        name.push(suffix);
        db.with_file_name(name)
    }

    /// A new database, its WAL and its shared-memory file are all 0600 once the store has
    /// written: SQLite copies the database file's mode to the files it creates beside it.
    #[test]
    fn a_new_database_and_its_wal_and_shm_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("new.db");
        let store = SqliteStore::open(&db, Synchronous::Full).unwrap();
        store.create_tenant("acme", &Actor::cli()).unwrap();
        assert!(store
            .tenants()
            .unwrap()
            .iter()
            .any(|t| t.name == DEFAULT_TENANT));
        for path in [db.clone(), beside(&db, "-wal"), beside(&db, "-shm")] {
            assert_eq!(mode(&path), "600", "{}", path.display());
        }
    }

    /// The claim the design rests on, checked against SQLite itself: the WAL and shm files get
    /// the database file's mode, whatever it is (0660 here: group-writable, which no umask
    /// makes of SQLite's default 0644, so the mode can only have come from the database file).
    #[test]
    fn sqlite_gives_wal_and_shm_the_database_files_mode() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("shared.db");
        std::fs::File::create(&db).unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o660)).unwrap();
        let store = SqliteStore::open(&db, Synchronous::Full).unwrap();
        store.create_tenant("acme", &Actor::cli()).unwrap();
        for path in [db.clone(), beside(&db, "-wal"), beside(&db, "-shm")] {
            assert_eq!(mode(&path), "660", "{}", path.display());
        }
    }

    /// An existing database keeps the mode its admin gave it.
    #[test]
    fn an_existing_database_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("old.db");
        drop(SqliteStore::open(&db, Synchronous::Full).unwrap());
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
        drop(SqliteStore::open(&db, Synchronous::Full).unwrap());
        assert_eq!(mode(&db), "640");
    }
}
