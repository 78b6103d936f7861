//! Audit events read back (listings, chain verification, chain heads), and events appended
//! with no other change. Events that go with a change are appended by that change's own
//! transaction (see [`chain`]).

use alter_core::audit::{AuditEvent, ChainRow, EventFilter, HASH_PLAIN_SHA256, StoredEvent};
use alter_core::ids::AppId;
use alter_core::ports::{AuditStore, StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::any::AnyRow;

use crate::rows::{fetch_all, fetch_optional, get, hash32, id};
use crate::{SqlStore, chain, db_error};

#[async_trait]
impl AuditStore for SqlStore {
    async fn append_event(&self, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        chain::append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn unkeyed_audit_chains(&self) -> StoreResult<Vec<AppId>> {
        let query = sqlx::query(
            "SELECT h.app_id FROM audit_heads h JOIN audit_events e \
             ON e.app_id = h.app_id AND e.seq = h.seq WHERE e.hash_version = $1",
        )
        .bind(HASH_PLAIN_SHA256);
        fetch_all(&self.read, query, |row| id(row, "app_id")).await
    }

    async fn list_events(
        &self,
        app: AppId,
        filter: &EventFilter,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredEvent>> {
        let mut sql =
            String::from("SELECT seq, body, hash FROM audit_events WHERE app_id = $1 AND seq > $2");
        let mut texts: Vec<String> = Vec::new();
        let mut ints: Vec<i64> = Vec::new();
        // Text parameters follow the two fixed ones, then the integer ones.
        let text_filters = [
            ("grant_id", &filter.grant_id),
            ("agent_id", &filter.agent_id),
            ("app_user_id", &filter.app_user_id),
            ("action", &filter.action),
            ("trace_id", &filter.trace_id),
        ];
        for (column, value) in text_filters {
            if let Some(value) = value {
                texts.push(value.clone());
                sql.push_str(&format!(" AND {column} = ${}", 2 + texts.len()));
            }
        }
        if let Some(decision) = filter.decision {
            texts.push(decision.as_str().into());
            sql.push_str(&format!(" AND decision = ${}", 2 + texts.len()));
        }
        for (op, value) in [(">=", filter.since), ("<", filter.until)] {
            if let Some(at) = value {
                ints.push(at.micros());
                sql.push_str(&format!(" AND at {op} ${}", 2 + texts.len() + ints.len()));
            }
        }
        sql.push_str(&format!(
            " ORDER BY seq LIMIT ${}",
            3 + texts.len() + ints.len()
        ));
        let mut query = sqlx::query(&sql).bind(app.to_string()).bind(after_seq);
        for t in texts {
            query = query.bind(t);
        }
        for i in ints {
            query = query.bind(i);
        }
        query = query.bind(limit);
        fetch_all(&self.listing, query, stored_event).await
    }

    async fn chain_rows(
        &self,
        app: AppId,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<ChainRow>> {
        let query = sqlx::query(
            "SELECT seq, id, at, action, decision, actor_key_id, agent_id, grant_id, app_user_id, \
             target_id, body, hash_version, prev_hash, hash FROM audit_events \
             WHERE app_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(app.to_string())
        .bind(after_seq)
        .bind(limit);
        fetch_all(&self.read, query, |row| {
            Ok(ChainRow {
                seq: get(row, "seq")?,
                id: get(row, "id")?,
                at: get(row, "at")?,
                action: get(row, "action")?,
                decision: get(row, "decision")?,
                actor_key_id: get(row, "actor_key_id")?,
                agent_id: get(row, "agent_id")?,
                grant_id: get(row, "grant_id")?,
                app_user_id: get(row, "app_user_id")?,
                target_id: get(row, "target_id")?,
                body: get(row, "body")?,
                hash_version: get(row, "hash_version")?,
                prev_hash: get(row, "prev_hash")?,
                hash: get(row, "hash")?,
            })
        })
        .await
    }

    async fn chain_head(&self, app: AppId) -> StoreResult<Option<(i64, Vec<u8>)>> {
        let query = sqlx::query("SELECT seq, hash FROM audit_heads WHERE app_id = $1")
            .bind(app.to_string());
        fetch_optional(&self.read, query, |row| {
            Ok((get(row, "seq")?, get(row, "hash")?))
        })
        .await
    }
}

/// An `audit_events` row read back: its place, event and hash.
pub(crate) fn stored_event(row: &AnyRow) -> StoreResult<StoredEvent> {
    let body: String = get(row, "body")?;
    Ok(StoredEvent {
        seq: get(row, "seq")?,
        event: serde_json::from_str(&body)
            .map_err(|_| StoreError::Corrupt("audit event body".into()))?,
        hash: hash32(row, "hash")?,
    })
}
