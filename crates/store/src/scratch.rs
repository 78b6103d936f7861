//! Throwaway databases for tests: a fresh SQLite file in a temporary directory, or a fresh
//! schema in the PostgreSQL named by `ALTER_TEST_DATABASE_URL`, dropped again afterwards.

use std::path::PathBuf;

use alter_core::ports::{StoreError, StoreResult};
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

use crate::db_error;

/// The environment variable naming the PostgreSQL server tests run against.
pub const TEST_DATABASE_URL_VAR: &str = "ALTER_TEST_DATABASE_URL";

/// One isolated database.
#[derive(Debug)]
pub struct ScratchDatabase {
    url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Sqlite(tempfile::TempDir),
    PostgresSchema { admin_url: String, schema: String },
}

impl ScratchDatabase {
    /// A new SQLite database file.
    pub fn sqlite() -> StoreResult<ScratchDatabase> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Other(e.to_string()))?;
        let path: PathBuf = dir.path().join("alter.db");
        Ok(ScratchDatabase {
            url: format!("sqlite://{}", path.display()),
            cleanup: Cleanup::Sqlite(dir),
        })
    }

    /// A new schema in the PostgreSQL of `ALTER_TEST_DATABASE_URL`, or `None` when the variable
    /// is not set. A set variable whose server cannot be reached is an error, never a skip.
    pub async fn postgres() -> StoreResult<Option<ScratchDatabase>> {
        let Ok(admin_url) = std::env::var(TEST_DATABASE_URL_VAR) else {
            return Ok(None);
        };
        sqlx::any::install_default_drivers();
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
            .map_err(db_error)?;
        pool.execute(format!("CREATE SCHEMA {schema}").as_str())
            .await
            .map_err(db_error)?;
        pool.close().await;
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        Ok(Some(ScratchDatabase {
            url: format!("{admin_url}{sep}options=-c%20search_path%3D{schema}"),
            cleanup: Cleanup::PostgresSchema { admin_url, schema },
        }))
    }

    /// The URL to connect to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs one statement with text parameters directly on the database, bypassing Alter: for
    /// tests that tamper with stored rows. Returns the rows affected.
    pub async fn execute(&self, sql: &str, params: &[&str]) -> StoreResult<u64> {
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await
            .map_err(db_error)?;
        let mut query = sqlx::query(sql);
        for param in params {
            query = query.bind(*param);
        }
        let affected = query
            .execute(&pool)
            .await
            .map_err(db_error)?
            .rows_affected();
        pool.close().await;
        Ok(affected)
    }

    /// The single integer a query with text parameters answers (a `SELECT COUNT(*) …`), read
    /// directly from the database: for tests that check what was stored.
    pub async fn count(&self, sql: &str, params: &[&str]) -> StoreResult<i64> {
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await
            .map_err(db_error)?;
        let mut query = sqlx::query_scalar::<_, i64>(sql);
        for param in params {
            query = query.bind(*param);
        }
        let counted = query.fetch_one(&pool).await.map_err(db_error);
        pool.close().await;
        counted
    }

    /// Rewrites an app's audit events from `from` on as a database writer without the master
    /// key can: the first one's body is edited, every hash recomputed with plain SHA-256 and
    /// every row's `hash_version` set to `hash_version`, the chain head moved along. For tests
    /// that the keyed chain catches such a rewrite.
    pub async fn rechain_audit_with_plain_hashes(
        &self,
        app: &str,
        from: i64,
        hash_version: i64,
    ) -> StoreResult<()> {
        use sqlx::Row;
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await
            .map_err(db_error)?;
        let rows = sqlx::query(
            "SELECT seq, body, prev_hash FROM audit_events WHERE app_id = $1 AND seq >= $2 \
             ORDER BY seq",
        )
        .bind(app)
        .bind(from)
        .fetch_all(&pool)
        .await
        .map_err(db_error)?;
        let Some(first) = rows.first() else {
            return Err(StoreError::Other(format!("no audit events from {from} on")));
        };
        let mut prev: [u8; 32] = first
            .try_get::<Vec<u8>, _>("prev_hash")
            .map_err(db_error)?
            .try_into()
            .map_err(|_| StoreError::Other("prev_hash is not 32 bytes".into()))?;
        for (i, row) in rows.iter().enumerate() {
            let seq: i64 = row.try_get("seq").map_err(db_error)?;
            let mut body: String = row.try_get("body").map_err(db_error)?;
            if i == 0 {
                body = body.replacen('{', "{ ", 1);
            }
            let hash = alter_core::audit::plain_chain_hash(&prev, seq, &body);
            sqlx::query(
                "UPDATE audit_events SET body = $1, prev_hash = $2, hash = $3, hash_version = $4 \
                 WHERE app_id = $5 AND seq = $6",
            )
            .bind(body)
            .bind(prev.to_vec())
            .bind(hash.to_vec())
            .bind(hash_version)
            .bind(app)
            .bind(seq)
            .execute(&pool)
            .await
            .map_err(db_error)?;
            prev = hash;
        }
        sqlx::query("UPDATE audit_heads SET hash = $1 WHERE app_id = $2")
            .bind(prev.to_vec())
            .bind(app)
            .execute(&pool)
            .await
            .map_err(db_error)?;
        pool.close().await;
        Ok(())
    }

    /// The SQLite database file and, while one exists, its `-wal` file, for byte scans.
    pub fn sqlite_files(&self) -> Vec<PathBuf> {
        match &self.cleanup {
            Cleanup::Sqlite(dir) => ["alter.db", "alter.db-wal"]
                .iter()
                .map(|f| dir.path().join(f))
                .filter(|path| path.exists())
                .collect(),
            Cleanup::PostgresSchema { .. } => Vec::new(),
        }
    }

    /// Drops a PostgreSQL schema (SQLite files go with their directory).
    pub async fn drop_now(self) -> StoreResult<()> {
        if let Cleanup::PostgresSchema { admin_url, schema } = &self.cleanup {
            let pool = AnyPoolOptions::new()
                .max_connections(1)
                .connect(admin_url)
                .await
                .map_err(db_error)?;
            pool.execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str())
                .await
                .map_err(db_error)?;
            pool.close().await;
        }
        Ok(())
    }
}
