//! Audit events read back (listings, chain verification, chain heads), and events appended
//! with no other change. Events that go with a change are appended by that change's own
//! transaction (see [`chain`]).

use alter_core::audit::{
    AuditEvent, ChainRow, Checkpoint, EventFilter, HASH_PLAIN_SHA256, StoredEvent,
};
use alter_core::ids::AppId;
use alter_core::ports::{AuditStore, StoreError, StoreResult};
use alter_core::time::Timestamp;
use async_trait::async_trait;
use sqlx::any::AnyRow;

use crate::partitions::{self, Partitioned};
use crate::rows::{fetch_all, fetch_optional, get, hash32, id, time};
use crate::{Engine, SqlStore, chain, db_error};

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

    async fn audit_anchor(&self, app: AppId) -> StoreResult<Option<Checkpoint>> {
        let query = sqlx::query(
            "SELECT app_id, through_seq, through_hash, at, mac FROM audit_anchors \
             WHERE app_id = $1",
        )
        .bind(app.to_string());
        fetch_optional(&self.read, query, anchor).await
    }

    async fn audit_anchors(&self) -> StoreResult<Vec<Checkpoint>> {
        let query = sqlx::query(
            "SELECT app_id, through_seq, through_hash, at, mac FROM audit_anchors ORDER BY app_id",
        );
        fetch_all(&self.write, query, anchor).await
    }

    fn audit_retention_bound(&self, cutoff: Timestamp) -> Timestamp {
        match self.engine {
            Engine::Sqlite => cutoff,
            Engine::Postgres => Timestamp::from_micros(partitions::month_start_of(cutoff.micros())),
        }
    }

    async fn audit_cuts(&self, bound: Timestamp) -> StoreResult<Vec<(AppId, i64, Vec<u8>)>> {
        let query = sqlx::query(
            // The cut stops before the app's first event at or after the bound, so that one
            // event with an older time (a node's clock) never carries newer ones past it.
            "SELECT e.app_id, e.seq, e.hash FROM audit_events e \
             JOIN (SELECT o.app_id, COALESCE((SELECT MIN(n.seq) FROM audit_events n \
                     WHERE n.app_id = o.app_id AND n.at >= $1) - 1, MAX(o.seq)) AS seq \
                   FROM audit_events o WHERE o.at < $1 GROUP BY o.app_id) m \
               ON e.app_id = m.app_id AND e.seq = m.seq \
             LEFT JOIN audit_anchors a ON a.app_id = e.app_id \
             WHERE a.through_seq IS NULL OR e.seq > a.through_seq ORDER BY e.app_id",
        )
        .bind(bound.micros());
        fetch_all(&self.write, query, |row| {
            Ok((id(row, "app_id")?, get(row, "seq")?, get(row, "hash")?))
        })
        .await
    }

    async fn record_audit_anchor(&self, anchor: &Checkpoint) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_anchors (app_id, through_seq, through_hash, at, mac) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app_id) DO UPDATE SET \
             through_seq = excluded.through_seq, through_hash = excluded.through_hash, \
             at = excluded.at, mac = excluded.mac \
             WHERE excluded.through_seq > audit_anchors.through_seq",
        )
        .bind(anchor.app_id.to_string())
        .bind(anchor.seq)
        .bind(anchor.hash.to_vec())
        .bind(anchor.at.micros())
        .bind(anchor.tag.to_vec())
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn remove_audit_events(&self, bound: Timestamp) -> StoreResult<u64> {
        let mut dropped = 0;
        let table = match self.engine {
            Engine::Sqlite => "audit_events",
            Engine::Postgres => {
                for name in
                    partitions::older_than(&self.write, Partitioned::AuditEvents, bound.micros())
                        .await?
                {
                    if partitions::audit_partition_covered(&self.write, &name).await? {
                        partitions::drop_partition(&self.write, &name).await?;
                        dropped += 1;
                    } else {
                        tracing::warn!(partition = %name, "audit events no anchor covers: the partition is kept");
                    }
                }
                "audit_events_default"
            }
        };
        // Only what the app's anchor covers: the append-only trigger refuses the rest. In
        // batches, so that SQLite's one writer (and the releases queued on it) is held for a
        // short while at a time, however much a first run removes.
        let delete = format!(
            "DELETE FROM {table} WHERE (app_id, seq) IN (SELECT e.app_id, e.seq FROM {table} e \
             JOIN audit_anchors a ON a.app_id = e.app_id \
             WHERE e.at < $1 AND e.seq <= a.through_seq LIMIT $2)"
        );
        let mut deleted = 0;
        loop {
            let batch = sqlx::query(&delete)
                .bind(bound.micros())
                .bind(DELETE_BATCH)
                .execute(&self.write)
                .await
                .map_err(db_error)?
                .rows_affected();
            deleted += batch;
            if batch < DELETE_BATCH as u64 {
                break;
            }
        }
        Ok(dropped + deleted)
    }
}

/// Events deleted per statement by retention.
const DELETE_BATCH: i64 = 5_000;

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

/// An anchor row, as stored (a value of the wrong length is left for the MAC check to refuse).
fn anchor(row: &sqlx::any::AnyRow) -> StoreResult<Checkpoint> {
    let bytes = |column: &str| -> StoreResult<[u8; 32]> {
        let value: Vec<u8> = get(row, column)?;
        Ok(value.try_into().unwrap_or([0; 32]))
    };
    Ok(Checkpoint {
        app_id: id(row, "app_id")?,
        seq: get(row, "through_seq")?,
        hash: bytes("through_hash")?,
        at: time(row, "at")?,
        tag: bytes("mac")?,
    })
}
