//! Browser sessions of the web UIs (the Wallet, the portal), found by the hash of their token.

use alter_core::browser_sessions::{BrowserSession, BrowserSessionKind, BrowserSessionStore};
use alter_core::ports::StoreResult;
use alter_core::time::Timestamp;
use async_trait::async_trait;
use sqlx::any::AnyRow;

use crate::rows::{fetch_optional, get, hash32, opt_id, opt_time, parsed, time};
use crate::{SqlStore, db_error};

const COLUMNS: &str = "token_hash, kind, app_id, subject, created_at, expires_at, revoked_at";

fn session(row: &AnyRow) -> StoreResult<BrowserSession> {
    Ok(BrowserSession {
        token_hash: hash32(row, "token_hash")?,
        kind: parsed(row, "kind", BrowserSessionKind::parse)?,
        app_id: opt_id(row, "app_id")?,
        subject: get(row, "subject")?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
    })
}

#[async_trait]
impl BrowserSessionStore for SqlStore {
    async fn insert_browser_session(&self, value: &BrowserSession) -> StoreResult<()> {
        let sql =
            format!("INSERT INTO browser_sessions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)");
        sqlx::query(&sql)
            .bind(value.token_hash.to_vec())
            .bind(value.kind.as_str())
            .bind(value.app_id.map(|a| a.to_string()))
            .bind(&value.subject)
            .bind(value.created_at.micros())
            .bind(value.expires_at.micros())
            .bind(value.revoked_at.map(|t| t.micros()))
            .execute(&self.write)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn find_browser_session(
        &self,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<BrowserSession>> {
        // The read pool: every page view looks its session up, and on SQLite the write pool is
        // the single writer connection. A read connection sees every committed sign-out (WAL;
        // on PostgreSQL both pools are one), so a signed-out session is refused at once.
        let sql = format!("SELECT {COLUMNS} FROM browser_sessions WHERE token_hash = $1");
        fetch_optional(
            &self.read,
            sqlx::query(&sql).bind(token_hash.to_vec()),
            session,
        )
        .await
    }

    async fn revoke_browser_session(
        &self,
        token_hash: &[u8; 32],
        at: Timestamp,
    ) -> StoreResult<bool> {
        let changed = sqlx::query(
            "UPDATE browser_sessions SET revoked_at = $1 \
             WHERE token_hash = $2 AND revoked_at IS NULL",
        )
        .bind(at.micros())
        .bind(token_hash.to_vec())
        .execute(&self.write)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn prune_browser_sessions(&self, before: Timestamp) -> StoreResult<u64> {
        Ok(
            sqlx::query("DELETE FROM browser_sessions WHERE expires_at < $1")
                .bind(before.micros())
                .execute(&self.write)
                .await
                .map_err(db_error)?
                .rows_affected(),
        )
    }
}
