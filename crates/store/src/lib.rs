//! SQLite and PostgreSQL implementations of Alter's storage ports.
//!
//! One code path serves both engines: queries are written once in the SQL both understand
//! (`$N` placeholders, `RETURNING`, `ON CONFLICT`) and run through sqlx's `Any` driver. The
//! schema keeps to portable types: ids as canonical UUID text, times as microseconds since the
//! epoch, JSON as text. Migrations are kept per engine with the same numbering.
//!
//! SQLite runs in WAL mode with one writer connection, so writers queue in the pool instead of
//! spinning on `SQLITE_BUSY`, and several reader connections.
//!
//! The `test-support` feature adds `scratch` (throwaway databases) and `fixtures` (bulk rows for
//! benchmarks); tests and tools enable it, the `alter` binary never does.

mod agents;
mod approvals;
mod apps;
mod audit_events;
mod browser_sessions;
mod chain;
mod connect;
mod connections;
mod error;
#[cfg(feature = "test-support")]
pub mod fixtures;
mod grants;
mod group_commit;
mod identity;
mod idp_events;
mod keyring;
mod keys;
mod leases;
pub mod metrics;
mod nonces;
mod operators;
mod partitions;
mod policies;
mod provider_specs;
mod providers;
mod release;
mod rows;
#[cfg(feature = "test-support")]
pub mod scratch;
mod script;
mod secrets;
mod signin;
mod spans;
mod user_secrets;
mod wallet;
mod webhooks;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use alter_core::audit::ChainKey;
use alter_core::ports::{HealthStore, ReadFrom, StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Connection, Executor};

pub use error::db_error;

/// Writer tasks of the group commit on PostgreSQL (each holds a connection while it commits).
/// Two let one batch gather while the other waits on its commit; more only split the batches,
/// since every batch's appends queue on the same chain head (docs/benchmarks.md: at 16
/// clients four writers released about 30% fewer credentials per second than one or two).
const POSTGRES_WRITERS: usize = 2;
/// How long a PostgreSQL connection may sit idle in the pool before it is pinged on acquire.
const IDLE_PING: Duration = Duration::from_secs(1);
/// The `Any` driver's name for PostgreSQL connections.
pub(crate) const POSTGRES: &str = "PostgreSQL";

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Engine {
    /// The engine a `sqlite://` or `postgres://` URL names.
    pub fn of_url(url: &str) -> Result<Engine, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Engine::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Engine::Postgres)
        } else {
            Err(StoreError::Other(
                "database_url must start with sqlite:// or postgres://".into(),
            ))
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Engine::Sqlite => &SQLITE_MIGRATIONS,
            Engine::Postgres => &POSTGRES_MIGRATIONS,
        }
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Largest pool (PostgreSQL) or number of reader connections (SQLite).
    pub max_connections: u32,
    /// How long to wait for a connection before answering "unavailable".
    pub acquire_timeout: Duration,
    /// SQLite `synchronous` setting: `FULL` (default: every commit survives power loss) or
    /// `NORMAL` (commits survive a process crash, not a power loss).
    pub sqlite_synchronous: String,
    /// PostgreSQL: longest a statement may run (lock waits included) before the server
    /// cancels it and the caller gets "unavailable". Migrations are exempt.
    pub statement_timeout: Duration,
    /// Longest a request waits for the group commit of its writes before it gets
    /// "unavailable" (see [`group_commit`]).
    pub commit_wait_timeout: Duration,
    /// PostgreSQL: a read replica (`postgres://…`, a hot standby of the same database) that
    /// serves the listings allowed to lag ([`alter_core::ports::ReadFrom::Replica`]). Nothing
    /// that decides access or writes reads it.
    pub replica_url: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            sqlite_synchronous: "FULL".into(),
            statement_timeout: Duration::from_secs(30),
            commit_wait_timeout: Duration::from_secs(30),
            replica_url: None,
        }
    }
}

/// The storage of Alter on one database.
#[derive(Debug, Clone)]
pub struct SqlStore {
    engine: Engine,
    read: AnyPool,
    /// Where listings that may lag are read: the replica's pool, or `read` without one.
    listing: AnyPool,
    write: AnyPool,
    group: group_commit::GroupCommit,
    /// The group commit's batch sizes and latency.
    commit_stats: Arc<metrics::CommitStats>,
    /// Keys the hash of every audit event appended.
    chain: ChainKey,
}

impl SqlStore {
    /// Connects to `sqlite://PATH` (created if missing) or `postgres://…`; audit events are
    /// chained with `chain` (derived from the master key).
    pub async fn connect(
        url: &str,
        options: &StoreOptions,
        chain: ChainKey,
    ) -> StoreResult<SqlStore> {
        sqlx::any::install_default_drivers();
        let engine = Engine::of_url(url)?;
        let url = match engine {
            Engine::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let connect = AnyConnectOptions::from_str(&url).map_err(db_error)?;
        let (read, write, writers) = match engine {
            Engine::Postgres => {
                let set_timeout = format!(
                    "SET statement_timeout = {}",
                    options.statement_timeout.as_millis()
                );
                let pool = open_pool(
                    options,
                    options.max_connections,
                    set_timeout,
                    connect,
                    Liveness::PingWhenIdle,
                )
                .await?;
                (pool.clone(), pool, POSTGRES_WRITERS)
            }
            Engine::Sqlite => {
                let pragmas = sqlite_pragmas(&options.sqlite_synchronous)?;
                restrict_sqlite_files(&url)?;
                let write = open_pool(
                    options,
                    1,
                    pragmas.to_owned(),
                    connect.clone(),
                    Liveness::Assumed,
                )
                .await?;
                // WAL must be on before readers open the file.
                write
                    .execute("PRAGMA journal_mode = WAL")
                    .await
                    .map_err(db_error)?;
                let read = open_pool(
                    options,
                    options.max_connections,
                    pragmas.to_owned(),
                    connect,
                    Liveness::Assumed,
                )
                .await?;
                // SQLite has one writer connection: one writer task batches onto it.
                (read, write, 1)
            }
        };
        let listing = match (&options.replica_url, engine) {
            (None, _) => read.clone(),
            (Some(replica), Engine::Postgres) if Engine::of_url(replica)? == Engine::Postgres => {
                let connect = AnyConnectOptions::from_str(replica).map_err(db_error)?;
                // Read-only on purpose: a replica that was promoted still takes no write
                // from this pool. Connected lazily: a replica that is down fails the
                // listings, never start-up nor a release.
                let init = format!(
                    "SET statement_timeout = {}; SET default_transaction_read_only = on",
                    options.statement_timeout.as_millis()
                );
                lazy_pool(options, init, connect)
            }
            (Some(_), _) => {
                return Err(StoreError::Other(
                    "a read replica is for PostgreSQL: database_url and replica_url must both \
                     be postgres:// URLs"
                        .into(),
                ));
            }
        };
        let commit_stats = Arc::new(metrics::CommitStats::default());
        Ok(SqlStore {
            engine,
            listing,
            read,
            group: group_commit::GroupCommit::start(
                write.clone(),
                chain.clone(),
                writers,
                options.commit_wait_timeout,
                commit_stats.clone(),
            ),
            commit_stats,
            write,
            chain,
        })
    }

    /// Applies every pending migration. On PostgreSQL they run on a connection of their own
    /// without the statement timeout (rewriting a large table may rightly take long), which is
    /// closed afterwards rather than returned to the pool.
    pub async fn migrate(&self) -> StoreResult<()> {
        let failed =
            |e: sqlx::migrate::MigrateError| StoreError::Other(format!("migration failed: {e}"));
        match self.engine {
            Engine::Sqlite => self
                .engine
                .migrator()
                .run(&self.write)
                .await
                .map_err(failed),
            Engine::Postgres => {
                let mut conn = self.write.acquire().await.map_err(db_error)?.detach();
                conn.execute("SET statement_timeout = 0")
                    .await
                    .map_err(db_error)?;
                let migrated = self.engine.migrator().run(&mut conn).await.map_err(failed);
                let _ = conn.close().await;
                migrated
            }
        }
    }

    /// The pool a listing reads from.
    pub(crate) fn pool_for(&self, read: ReadFrom) -> &AnyPool {
        match read {
            ReadFrom::Primary => &self.read,
            ReadFrom::Replica => &self.listing,
        }
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// SQLite: writes a consistent copy of the whole database, as of one instant, into `path`
    /// (which must be missing or an empty file) with `VACUUM INTO`. It runs online: the copy
    /// is one read transaction, so writers go on meanwhile. PostgreSQL has its own tools
    /// (`pg_dump`, point-in-time recovery) and is refused.
    pub async fn backup_into(&self, path: &Path) -> StoreResult<()> {
        if self.engine != Engine::Sqlite {
            return Err(StoreError::Other(
                "only a SQLite database is copied this way".into(),
            ));
        }
        let path = path.to_str().ok_or_else(|| {
            StoreError::Other(format!("{}: the path is not UTF-8", path.display()))
        })?;
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(&self.read)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Whether the database holds Alter's migrations table: false for an empty database or
    /// one of another program.
    pub async fn has_migrations_table(&self) -> StoreResult<bool> {
        let sql = match self.engine {
            Engine::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Engine::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
            }
        };
        let found: i64 = sqlx::query_scalar(sql)
            .fetch_one(&self.read)
            .await
            .map_err(db_error)?;
        Ok(found > 0)
    }

    /// The group commit's batch sizes and commit latency on this node.
    pub fn commit_stats(&self) -> &metrics::CommitStats {
        &self.commit_stats
    }

    /// The connection pools now: `read` and `write` on SQLite, `shared` on PostgreSQL.
    pub fn pool_stats(&self) -> Vec<metrics::PoolStats> {
        let stats = |pool: &'static str, of: &AnyPool| metrics::PoolStats {
            pool,
            size: of.size(),
            idle: u32::try_from(of.num_idle()).unwrap_or(u32::MAX),
            max: of.options().get_max_connections(),
        };
        match self.engine {
            Engine::Postgres => vec![stats("shared", &self.write)],
            Engine::Sqlite => vec![stats("read", &self.read), stats("write", &self.write)],
        }
    }

    /// Closes every connection (SQLite checkpoints its WAL).
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// Whether a pooled connection is checked before each use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    /// A round trip before handing out a connection that sat idle for over [`IDLE_PING`]: a
    /// PostgreSQL connection can die with its server (a restart, a failover), and the pool
    /// should hand out a live one instead. A busier connection is not pinged again on the
    /// request's path: sqlx pings every connection as it returns to the pool (off that path),
    /// so one that died since fails at most one query, closed, while its server is down.
    PingWhenIdle,
    /// None: a SQLite connection is a handle on a local file and does not go stale; the ping
    /// would cost a thread hand-off before every query of the hot path.
    Assumed,
}

/// A pool of at most `max` connections that each run `init` (their session settings) first.
async fn open_pool(
    options: &StoreOptions,
    max: u32,
    init: String,
    connect: AnyConnectOptions,
    liveness: Liveness,
) -> StoreResult<AnyPool> {
    pool_options(options, max, init, liveness)
        .connect_with(connect)
        .await
        .map_err(db_error)
}

fn pool_options(
    options: &StoreOptions,
    max: u32,
    init: String,
    liveness: Liveness,
) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                if liveness == Liveness::PingWhenIdle && meta.idle_for > IDLE_PING {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .acquire_timeout(options.acquire_timeout)
        .after_connect(move |conn, _| {
            let init = init.clone();
            Box::pin(async move {
                conn.execute(init.as_str()).await?;
                Ok(())
            })
        })
}

/// A PostgreSQL pool that connects on first use (a replica's).
fn lazy_pool(options: &StoreOptions, init: String, connect: AnyConnectOptions) -> AnyPool {
    pool_options(
        options,
        options.max_connections,
        init,
        Liveness::PingWhenIdle,
    )
    .connect_lazy_with(connect)
}

/// Creates a missing SQLite database file with mode 0600 — SQLite gives its `-wal` and `-shm`
/// files the mode of the database file — and restricts existing ones to 0600, whatever the
/// umask.
/// The file a `sqlite://` URL names; `None` for an in-memory database or another engine.
pub fn sqlite_file(url: &str) -> StoreResult<Option<PathBuf>> {
    if Engine::of_url(url)? != Engine::Sqlite {
        return Ok(None);
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).map_err(db_error)?;
    let db = options.get_filename();
    if url.contains("mode=memory") || db.to_string_lossy().starts_with("file:") {
        return Ok(None);
    }
    Ok(Some(db.to_path_buf()))
}

fn restrict_sqlite_files(url: &str) -> StoreResult<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let Some(db) = sqlite_file(url)? else {
            return Ok(());
        };
        let db = db.as_path();
        let failed = |e: std::io::Error| StoreError::Other(format!("{}: {e}", db.display()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(db)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut path = db.as_os_str().to_owned();
                    path.push(suffix);
                    if std::path::Path::new(&path).exists() {
                        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                            .map_err(failed)?;
                    }
                }
            }
            Err(e) => return Err(failed(e)),
        }
    }
    Ok(())
}

fn sqlite_pragmas(synchronous: &str) -> StoreResult<&'static str> {
    match synchronous.to_ascii_uppercase().as_str() {
        "FULL" => {
            Ok("PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")
        }
        "NORMAL" => Ok(
            "PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
        ),
        other => Err(StoreError::Other(format!(
            "sqlite synchronous must be FULL or NORMAL, not {other:?}"
        ))),
    }
}

#[async_trait]
impl HealthStore for SqlStore {
    async fn ready(&self) -> StoreResult<()> {
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = $1")
                .bind(true)
                .fetch_one(&self.read)
                .await
                .map_err(db_error)?;
        let latest = self.engine.migrator().iter().map(|m| m.version).max();
        if applied == latest {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "migrations not applied (database at {applied:?}, this version needs {latest:?})"
            )))
        }
    }
}
