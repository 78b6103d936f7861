//! Appending audit events to an app's hash chain, inside the caller's transaction.

use alter_core::audit::{AuditEvent, chain_hash};
use alter_core::ports::{StoreError, StoreResult};
use sqlx::AnyConnection;

use crate::db_error;
use crate::rows::{get, hash32};

/// Appends `event` to its app's chain. The head row's `UPDATE` both allocates the sequence
/// number and locks the chain until the transaction ends, so concurrent writers on PostgreSQL
/// line up behind each other; SQLite has a single writer anyway.
pub async fn append(conn: &mut AnyConnection, event: &AuditEvent) -> StoreResult<()> {
    let app = event.app_id.to_string();
    let head =
        sqlx::query("UPDATE audit_heads SET seq = seq + 1 WHERE app_id = $1 RETURNING seq, hash")
            .bind(&app)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?
            .ok_or_else(|| StoreError::Corrupt(format!("no audit chain for app {app}")))?;
    let seq: i64 = get(&head, "seq")?;
    let prev = hash32(&head, "hash")?;
    let body = event
        .canonical_body()
        .map_err(|e| StoreError::Other(e.to_string()))?;
    let hash = chain_hash(&prev, seq, &body);
    let target = event
        .target
        .as_ref()
        .filter(|t| !t.id.is_empty())
        .map(|t| t.id.clone());
    let grant = event
        .grant_id()
        .filter(|g| !g.is_empty())
        .map(str::to_owned);
    sqlx::query(
        "INSERT INTO audit_events (app_id, seq, id, at, action, decision, actor_key_id, agent_id, \
         grant_id, app_user_id, target_id, body, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&app)
    .bind(seq)
    .bind(event.id.to_string())
    .bind(event.at.micros())
    .bind(&event.action)
    .bind(match event.decision {
        alter_core::audit::Decision::Allow => "allow",
        alter_core::audit::Decision::Deny => "deny",
    })
    .bind(event.actor.key_id.map(|k| k.to_string()))
    .bind(event.actor.agent_id.map(|a| a.to_string()))
    .bind(grant)
    .bind(event.subject_user())
    .bind(target)
    .bind(body)
    .bind(prev.to_vec())
    .bind(hash.to_vec())
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    sqlx::query("UPDATE audit_heads SET hash = $1 WHERE app_id = $2")
        .bind(hash.to_vec())
        .bind(&app)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}
