//! Connect sessions. Starting an attempt and claiming it by its state are each one conditional
//! `UPDATE`, so a state is used once whichever node the callback reaches.

use alter_core::audit::AuditEvent;
use alter_core::connect::{
    ClaimedAttempt, ConnectOutcome, ConnectSession, Declined, SessionStatus,
};
use alter_core::ids::ConnectSessionId;
use alter_core::ports::{ConnectStore, StoreResult};
use alter_core::time::Timestamp;
use async_trait::async_trait;
use sqlx::any::AnyRow;

use crate::rows::{fetch_optional, get, id, json, opt_json, opt_time, parsed, time, to_json};
use crate::{SqlStore, db_error};

const COLUMNS: &str =
    "id, app_id, settings, status, declined, outcome, verified_at, created_at, expires_at";

fn session(row: &AnyRow) -> StoreResult<ConnectSession> {
    Ok(ConnectSession {
        id: id(row, "id")?,
        app_id: id(row, "app_id")?,
        settings: json(row, "settings")?,
        status: parsed(row, "status", SessionStatus::parse)?,
        declined: json(row, "declined")?,
        outcome: opt_json(row, "outcome")?,
        verified_at: opt_time(row, "verified_at")?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
    })
}

impl SqlStore {
    async fn session_by(
        &self,
        column: &str,
        hash: &[u8; 32],
    ) -> StoreResult<Option<ConnectSession>> {
        let sql = format!("SELECT {COLUMNS} FROM connect_sessions WHERE {column} = $1");
        let query = sqlx::query(&sql).bind(hash.to_vec());
        fetch_optional(&self.read, query, session).await
    }
}

#[async_trait]
impl ConnectStore for SqlStore {
    async fn insert_connect_session(
        &self,
        value: &ConnectSession,
        poll_hash: &[u8; 32],
        page_hash: &[u8; 32],
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let query = sqlx::query(
            "INSERT INTO connect_sessions (id, app_id, poll_hash, page_hash, settings, status, \
             declined, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(value.id.to_string())
        .bind(value.app_id.to_string())
        .bind(poll_hash.to_vec())
        .bind(page_hash.to_vec())
        .bind(to_json(&value.settings)?)
        .bind(value.status.as_str())
        .bind(to_json(&value.declined)?)
        .bind(value.created_at.micros())
        .bind(value.expires_at.micros());
        self.execute_with_event(query, event).await
    }

    async fn connect_session_by_poll_hash(
        &self,
        hash: &[u8; 32],
    ) -> StoreResult<Option<ConnectSession>> {
        self.session_by("poll_hash", hash).await
    }

    async fn connect_session_by_page_hash(
        &self,
        hash: &[u8; 32],
    ) -> StoreResult<Option<ConnectSession>> {
        self.session_by("page_hash", hash).await
    }

    async fn start_connect_attempt(
        &self,
        session: ConnectSessionId,
        state_hash: &[u8; 32],
        browser_hash: &[u8; 32],
        provider_id: &str,
        sealed_verifier: &[u8],
        at: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE connect_sessions SET attempt_state_hash = $1, attempt_provider = $2, \
             attempt_verifier = $3, attempt_started_at = $4, attempt_browser_hash = $6 \
             WHERE id = $5 AND status = 'pending' AND expires_at > $4",
        )
        .bind(state_hash.to_vec())
        .bind(provider_id.to_owned())
        .bind(sealed_verifier.to_vec())
        .bind(at.micros())
        .bind(session.to_string())
        .bind(browser_hash.to_vec())
        .execute(&self.write)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(done == 1)
    }

    async fn claim_connect_attempt(
        &self,
        state_hash: &[u8; 32],
        browser_hash: &[u8; 32],
        _now: Timestamp,
    ) -> StoreResult<Option<ClaimedAttempt>> {
        // Clearing the state in the statement that reads it makes the claim single-use (the
        // verifier, which RETURNING must still see, is cleared when the session ends); a
        // state from another browser matches nothing and is not spent.
        let sql = format!(
            "UPDATE connect_sessions SET attempt_state_hash = NULL, status = 'exchanging' \
             WHERE attempt_state_hash = $1 AND attempt_browser_hash = $2 AND status = 'pending' \
             RETURNING {COLUMNS}, attempt_provider, attempt_verifier, attempt_started_at"
        );
        let row = sqlx::query(&sql)
            .bind(state_hash.to_vec())
            .bind(browser_hash.to_vec())
            .fetch_optional(&self.write)
            .await
            .map_err(db_error)?;
        row.map(|row| {
            Ok(ClaimedAttempt {
                session: session(&row)?,
                provider_id: get(&row, "attempt_provider")?,
                sealed_verifier: get(&row, "attempt_verifier")?,
                started_at: time(&row, "attempt_started_at")?,
            })
        })
        .transpose()
    }

    async fn set_connect_declined(
        &self,
        session: ConnectSessionId,
        declined: &[Declined],
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE connect_sessions SET declined = $1, status = 'pending' \
             WHERE id = $2 AND status = 'exchanging'",
        )
        .bind(to_json(declined)?)
        .bind(session.to_string())
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn verify_connect_session(
        &self,
        session: ConnectSessionId,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE connect_sessions SET status = 'pending', verified_at = $1 \
             WHERE id = $2 AND status = 'exchanging'",
        )
        .bind(at.micros())
        .bind(session.to_string())
        .execute(&self.write)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(done == 1)
    }

    async fn connect_session_by_browser(
        &self,
        hash: &[u8; 32],
    ) -> StoreResult<Option<ConnectSession>> {
        self.session_by("attempt_browser_hash", hash).await
    }

    async fn prune_connect_sessions(&self, before: Timestamp) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM connect_sessions WHERE expires_at < $1")
            .bind(before.micros())
            .execute(&self.write)
            .await
            .map_err(db_error)?
            .rows_affected();
        Ok(done)
    }

    async fn finish_connect_session(
        &self,
        session: ConnectSessionId,
        status: SessionStatus,
        outcome: &ConnectOutcome,
        at: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE connect_sessions SET status = $1, outcome = $2, finished_at = $3, \
             attempt_state_hash = NULL, attempt_verifier = NULL \
             WHERE id = $4 AND status IN ('pending', 'exchanging')",
        )
        .bind(status.as_str())
        .bind(to_json(outcome)?)
        .bind(at.micros())
        .bind(session.to_string())
        .execute(&self.write)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(done == 1)
    }
}
