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
