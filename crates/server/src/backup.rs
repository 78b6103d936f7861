//! `alter backup` and `alter restore`: a consistent online copy of a SQLite database, and
//! bringing one back on a fresh node. PostgreSQL is backed up with its own tools (`pg_dump`,
//! point-in-time recovery); see `docs/backup.md`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use alter_core::audit::ChainKey;
use alter_core::ports::KeyHolder;
use alter_core::time::SystemClock;
use alter_crypto::MasterKey;
use alter_store::{Engine, SqlStore, StoreOptions};

use crate::StartupError;
use crate::key_files::write_private;

/// What `alter backup` says on PostgreSQL.
pub const POSTGRES_BACKUP: &str = "this database is PostgreSQL: back it up with `pg_dump --format=custom` or point-in-time recovery (base backups and WAL archiving), not `alter backup`; see docs/backup.md";

/// The first bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Why a backup or a restore failed. Messages say what to fix and never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The database is PostgreSQL, which has its own tools.
    #[error("{0}")]
    Postgres(String),
    /// The file or database to write already exists.
    #[error("{0}")]
    Exists(String),
    /// The backup file is not an Alter database.
    #[error("{0}")]
    NotAlter(String),
    /// The master key does not open the backup.
    #[error("wrong master key: {0}")]
    WrongMasterKey(String),
    /// Anything else: files, the database.
    #[error("{0}")]
    Other(String),
}

impl From<StartupError> for BackupError {
    fn from(e: StartupError) -> Self {
        match e {
            StartupError::MasterKey(why) => BackupError::WrongMasterKey(why),
            other => BackupError::Other(other.to_string()),
        }
    }
}

/// Copies the live database at `database_url` into the new file `file` (mode 0600; an
/// existing file is refused), consistently as of one instant, while servers keep serving.
pub async fn backup(database_url: &str, file: &Path) -> Result<(), BackupError> {
    let source = sqlite_path(database_url, POSTGRES_BACKUP)?;
    if !source.is_file() {
        return Err(BackupError::Other(format!(
            "there is no database at {}",
            source.display()
        )));
    }
    // Created here, empty and private, so the copy is never readable by others and an existing
    // file is never overwritten; `VACUUM INTO` fills an empty file.
    write_private(file, b"").map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => BackupError::Exists(format!(
            "{} already exists: choose a new file (a backup never overwrites one)",
            file.display()
        )),
        _ => BackupError::Other(format!("cannot create {}: {e}", file.display())),
    })?;
    let copied = copy_into(database_url, file).await;
    if copied.is_err() {
        remove_database_files(file);
    }
    copied
}

async fn copy_into(database_url: &str, file: &Path) -> Result<(), BackupError> {
    let target = file
        .canonicalize()
        .map_err(|e| BackupError::Other(format!("{}: {e}", file.display())))?;
    // The chain key only matters to writes, and a backup writes nothing.
    let store = SqlStore::connect(
        database_url,
        &StoreOptions {
            max_connections: 1,
            ..StoreOptions::default()
        },
        ChainKey::derive(&MasterKey::generate().map_err(|e| BackupError::Other(e.to_string()))?),
    )
    .await
    .map_err(|e| BackupError::Other(format!("database: {e}")))?;
    let copied = store.backup_into(&target).await;
    store.close().await;
    copied.map_err(|e| BackupError::Other(format!("the copy failed: {e}")))?;
    std::fs::File::open(&target)
        .and_then(|f| f.sync_all())
        .map_err(|e| BackupError::Other(format!("{}: {e}", file.display())))
}

/// Restores the backup `file` as the database at `database_url`: refuses a target that holds
/// data unless `force`, checks the file is an Alter database that `master_key` opens, runs the
/// pending migrations on a copy beside the target, then moves the copy into place. On any
/// failure the target is left as it was.
pub async fn restore(
    file: &Path,
    database_url: &str,
    key_holder: &dyn KeyHolder,
    force: bool,
) -> Result<(), BackupError> {
    let target = sqlite_path(
        database_url,
        "the target is PostgreSQL: restore a `pg_dump` archive with `pg_restore` (or recover to a point in time); `alter restore` takes a SQLite backup onto a SQLite database; see docs/backup.md",
    )?;
    if !force && holds_data(&target) {
        return Err(BackupError::Exists(format!(
            "{} already holds a database: restore onto a fresh one, or pass --force to replace it (stop every server using it first)",
            target.display()
        )));
    }
    check_sqlite_header(file)?;
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    private_dir(&dir)?;
    let mut staging_name = target.file_name().unwrap_or_default().to_os_string();
    staging_name.push(".restoring");
    let staging = dir.join(staging_name);
    remove_database_files(&staging);
    copy_private(file, &staging)?;
    let checked = check_and_migrate(&staging, key_holder).await;
    if let Err(e) = checked {
        remove_database_files(&staging);
        return Err(e);
    }
    if force {
        remove_database_files(&target);
    }
    let moved = move_database_files(&staging, &target);
    if moved.is_err() {
        remove_database_files(&staging);
    }
    moved
}

/// Opens the staged copy: an Alter database (its migrations table), migrated, and opened by
/// the master key.
async fn check_and_migrate(staging: &Path, key_holder: &dyn KeyHolder) -> Result<(), BackupError> {
    let url = format!("sqlite://{}", staging.display());
    // The chain key only matters to audit appends, and the check appends none.
    let chain =
        ChainKey::derive(&MasterKey::generate().map_err(|e| BackupError::Other(e.to_string()))?);
    let store = SqlStore::connect(&url, &StoreOptions::default(), chain)
        .await
        .map_err(|e| BackupError::Other(format!("database: {e}")))?;
    let checked = async {
        if !store
            .has_migrations_table()
            .await
            .map_err(|e| BackupError::NotAlter(format!("not an Alter database: {e}")))?
        {
            return Err(BackupError::NotAlter(
                "the file is not an Alter database (it has no migrations table)".into(),
            ));
        }
        store.migrate().await.map_err(|e| {
            BackupError::NotAlter(format!(
                "the backup's migrations do not match this version of Alter: {e}"
            ))
        })?;
        let clock: Arc<dyn alter_core::ports::Clock> = Arc::new(SystemClock);
        crate::open_keys(&store, key_holder, &clock).await?;
        Ok(())
    }
    .await;
    store.close().await;
    checked.map_err(|e| match e {
        BackupError::WrongMasterKey(why) => BackupError::WrongMasterKey(format!(
            "the configured master key does not open this backup ({why}); restore with the master key of the vault it was taken from"
        )),
        other => other,
    })
}

/// The SQLite file of `database_url`, or `postgres` as the error for PostgreSQL.
fn sqlite_path(database_url: &str, postgres: &str) -> Result<PathBuf, BackupError> {
    let engine = Engine::of_url(database_url).map_err(|e| BackupError::Other(e.to_string()))?;
    if engine == Engine::Postgres {
        return Err(BackupError::Postgres(postgres.to_owned()));
    }
    alter_store::sqlite_file(database_url)
        .map_err(|e| BackupError::Other(e.to_string()))?
        .ok_or_else(|| BackupError::Other("an in-memory database has nothing to back up".into()))
}

/// Whether a database file is there with anything in it.
fn holds_data(target: &Path) -> bool {
    ["", "-wal"]
        .iter()
        .any(|suffix| std::fs::metadata(with_suffix(target, suffix)).is_ok_and(|m| m.len() > 0))
}

fn check_sqlite_header(file: &Path) -> Result<(), BackupError> {
    let mut header = [0u8; 16];
    std::fs::File::open(file)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => BackupError::NotAlter(format!(
                "{} is not an Alter backup (not a SQLite database)",
                file.display()
            )),
            _ => BackupError::Other(format!("cannot read {}: {e}", file.display())),
        })?;
    if &header != SQLITE_HEADER {
        return Err(BackupError::NotAlter(format!(
            "{} is not an Alter backup (not a SQLite database)",
            file.display()
        )));
    }
    Ok(())
}

fn private_dir(dir: &Path) -> Result<(), BackupError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| BackupError::Other(format!("cannot create {}: {e}", dir.display())))
}

/// Copies `from` into the new file `to` with mode 0600.
fn copy_private(from: &Path, to: &Path) -> Result<(), BackupError> {
    let fail = |e: std::io::Error| {
        BackupError::Other(format!(
            "cannot copy {} to {}: {e}",
            from.display(),
            to.display()
        ))
    };
    write_private(to, b"").map_err(fail)?;
    let copied = std::fs::File::open(from).and_then(|mut source| {
        let mut dest = std::fs::OpenOptions::new().write(true).open(to)?;
        std::io::copy(&mut source, &mut dest)?;
        dest.sync_all()
    });
    if let Err(e) = copied {
        remove_database_files(to);
        return Err(fail(e));
    }
    Ok(())
}

/// Renames the database `from` (and a write-ahead log left beside it) to `to`.
fn move_database_files(from: &Path, to: &Path) -> Result<(), BackupError> {
    for suffix in ["-wal", ""] {
        let source = with_suffix(from, suffix);
        if suffix.is_empty() || source.exists() {
            std::fs::rename(&source, with_suffix(to, suffix)).map_err(|e| {
                BackupError::Other(format!(
                    "cannot move {} to {}: {e}",
                    source.display(),
                    to.display()
                ))
            })?;
        }
    }
    let _ = std::fs::remove_file(with_suffix(from, "-shm"));
    Ok(())
}

/// Removes a database file with its write-ahead log and shared-memory index, where present.
fn remove_database_files(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(db, suffix));
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn postgres_is_sent_to_its_own_tools() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b.db");
        let e = backup("postgres://localhost/x", &file).await.unwrap_err();
        assert!(matches!(e, BackupError::Postgres(_)));
        assert!(e.to_string().contains("pg_dump"), "{e}");
        assert!(!file.exists());
    }

    #[tokio::test]
    async fn a_missing_database_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("none.db");
        let file = dir.path().join("b.db");
        let e = backup(&format!("sqlite://{}", db.display()), &file)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("there is no database"), "{e}");
        assert!(!db.exists() && !file.exists());
    }

    #[tokio::test]
    async fn a_database_without_alters_migrations_is_not_restored() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other.db");
        let key = MasterKey::generate().unwrap();
        let store = SqlStore::connect(
            &format!("sqlite://{}", other.display()),
            &StoreOptions::default(),
            ChainKey::derive(&key),
        )
        .await
        .unwrap();
        store.close().await;
        let target = dir.path().join("data/alter.db");
        let e = restore(
            &other,
            &format!("sqlite://{}", target.display()),
            &key,
            false,
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("no migrations table"), "{e}");
        assert!(!target.exists());
        assert_eq!(
            std::fs::read_dir(dir.path().join("data")).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn a_file_of_another_kind_is_not_restored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "hello, this is not a database at all").unwrap();
        let target = dir.path().join("data/alter.db");
        let key = MasterKey::generate().unwrap();
        let e = restore(
            &file,
            &format!("sqlite://{}", target.display()),
            &key,
            false,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, BackupError::NotAlter(_)), "{e}");
        assert!(!target.exists());
    }
}
