//! Operator accounts, their sign-in throttle and their events.

use alter_core::audit::Decision;
use alter_core::ids::Id;
use alter_core::operators::{
    Operator, OperatorEvent, OperatorId, OperatorStore, PasswordHashText, StoredOperator,
};
use alter_core::ports::StoreResult;
use alter_core::time::Timestamp;
use async_trait::async_trait;
use sqlx::any::AnyRow;

use crate::rows::{AnyQuery, execute, fetch_all, fetch_optional, get, id, parsed, time};
use crate::{SqlStore, db_error};

const COLUMNS: &str = "id, username, password_hash, created_at, password_changed_at";

fn operator(row: &AnyRow) -> StoreResult<Operator> {
    Ok(Operator {
        id: id(row, "id")?,
        username: get(row, "username")?,
        created_at: time(row, "created_at")?,
        password_changed_at: time(row, "password_changed_at")?,
    })
}

fn stored_operator(row: &AnyRow) -> StoreResult<StoredOperator> {
    Ok(StoredOperator {
        operator: operator(row)?,
        password_hash: PasswordHashText(get(row, "password_hash")?),
    })
}

fn operator_event(row: &AnyRow) -> StoreResult<OperatorEvent> {
    let event_id: String = get(row, "id")?;
    Ok(OperatorEvent {
        id: Id::parse(&event_id)
            .ok_or_else(|| alter_core::ports::StoreError::Corrupt("operator event id".into()))?,
        at: time(row, "at")?,
        action: get(row, "action")?,
        decision: parsed(row, "decision", Decision::parse)?,
        operator: get(row, "operator")?,
        reason: get(row, "reason")?,
        peer: get(row, "peer")?,
    })
}

fn insert_event(event: &OperatorEvent) -> AnyQuery<'_> {
    sqlx::query(
        "INSERT INTO operator_events (id, at, action, decision, operator, reason, peer) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(event.id.to_string())
    .bind(event.at.micros())
    .bind(&event.action)
    .bind(event.decision.as_str())
    .bind(&event.operator)
    .bind(&event.reason)
    .bind(&event.peer)
}

impl SqlStore {
    /// Runs one write statement and, if it changed exactly one row, appends the operator event
    /// in the same transaction; otherwise changes nothing. True if it committed.
    async fn with_operator_event(
        &self,
        query: AnyQuery<'_>,
        event: &OperatorEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let changed = execute(&mut *tx, query).await?;
        if changed != 1 {
            return Ok(false);
        }
        execute(&mut *tx, insert_event(event)).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }
}

#[async_trait]
impl OperatorStore for SqlStore {
    async fn insert_operator(
        &self,
        stored: &StoredOperator,
        event: &OperatorEvent,
    ) -> StoreResult<()> {
        let sql = format!("INSERT INTO operators ({COLUMNS}) VALUES ($1, $2, $3, $4, $5)");
        let query = sqlx::query(&sql)
            .bind(stored.operator.id.to_string())
            .bind(&stored.operator.username)
            .bind(&stored.password_hash.0)
            .bind(stored.operator.created_at.micros())
            .bind(stored.operator.password_changed_at.micros());
        self.with_operator_event(query, event).await.map(drop)
    }

    async fn find_operator(&self, username: &str) -> StoreResult<Option<StoredOperator>> {
        let sql = format!("SELECT {COLUMNS} FROM operators WHERE username = $1");
        fetch_optional(
            &self.read,
            sqlx::query(&sql).bind(username),
            stored_operator,
        )
        .await
    }

    async fn get_operator(&self, operator_id: OperatorId) -> StoreResult<Option<Operator>> {
        let sql = format!("SELECT {COLUMNS} FROM operators WHERE id = $1");
        let query = sqlx::query(&sql).bind(operator_id.to_string());
        fetch_optional(&self.read, query, operator).await
    }

    async fn list_operators(&self) -> StoreResult<Vec<Operator>> {
        let sql = format!("SELECT {COLUMNS} FROM operators ORDER BY username");
        fetch_all(&self.read, sqlx::query(&sql), operator).await
    }

    async fn delete_operator(&self, username: &str, event: &OperatorEvent) -> StoreResult<bool> {
        let query = sqlx::query("DELETE FROM operators WHERE username = $1").bind(username);
        self.with_operator_event(query, event).await
    }

    async fn set_operator_password(
        &self,
        username: &str,
        hash: &PasswordHashText,
        at: Timestamp,
        event: &OperatorEvent,
    ) -> StoreResult<bool> {
        let query = sqlx::query(
            "UPDATE operators SET password_hash = $1, password_changed_at = $2 WHERE username = $3",
        )
        .bind(&hash.0)
        .bind(at.micros())
        .bind(username);
        self.with_operator_event(query, event).await
    }

    async fn claim_sign_in_attempt(
        &self,
        throttle_key: &str,
        now: Timestamp,
        max_failures: i64,
        lock_until: Timestamp,
    ) -> StoreResult<bool> {
        // One statement, so concurrent attempts each count: the one that reaches the limit
        // sets the lock, and none gets past a lock that holds.
        let query = sqlx::query(
            "INSERT INTO operator_sign_in_throttle \
             (throttle_key, failures, locked_until, last_attempt_at) \
             VALUES ($1, 1, CASE WHEN 1 >= $3 THEN $4 ELSE 0 END, $2) \
             ON CONFLICT (throttle_key) DO UPDATE SET \
             failures = operator_sign_in_throttle.failures + 1, \
             locked_until = CASE WHEN operator_sign_in_throttle.failures + 1 >= $3 \
             THEN $4 ELSE 0 END, \
             last_attempt_at = $2 \
             WHERE operator_sign_in_throttle.locked_until <= $2",
        )
        .bind(throttle_key)
        .bind(now.micros())
        .bind(max_failures)
        .bind(lock_until.micros());
        Ok(execute(&self.write, query).await? == 1)
    }

    async fn clear_sign_in_failures(&self, throttle_key: &str) -> StoreResult<()> {
        let query = sqlx::query("DELETE FROM operator_sign_in_throttle WHERE throttle_key = $1")
            .bind(throttle_key);
        execute(&self.write, query).await.map(drop)
    }

    async fn count_sign_in_failure(
        &self,
        operator: &str,
        now: Timestamp,
        recorded_before: Timestamp,
    ) -> StoreResult<Option<i64>> {
        // One statement, so concurrent refusals each count once and one of them is recorded
        // per interval: SET reads the row as it was, so `reported` takes the old `pending`.
        let query = sqlx::query(
            "INSERT INTO operator_sign_in_failure_digest \
             (operator, recorded_at, pending, reported) VALUES ($1, $2, 0, 1) \
             ON CONFLICT (operator) DO UPDATE SET \
             reported = CASE WHEN operator_sign_in_failure_digest.recorded_at <= $3 \
             THEN operator_sign_in_failure_digest.pending + 1 \
             ELSE operator_sign_in_failure_digest.reported END, \
             pending = CASE WHEN operator_sign_in_failure_digest.recorded_at <= $3 \
             THEN 0 ELSE operator_sign_in_failure_digest.pending + 1 END, \
             recorded_at = CASE WHEN operator_sign_in_failure_digest.recorded_at <= $3 \
             THEN $2 ELSE operator_sign_in_failure_digest.recorded_at END \
             RETURNING pending, reported",
        )
        .bind(operator)
        .bind(now.micros())
        .bind(recorded_before.micros());
        let row = fetch_optional(&self.write, query, |row| {
            Ok((get::<i64>(row, "pending")?, get::<i64>(row, "reported")?))
        })
        .await?;
        Ok(row.and_then(|(pending, reported)| (pending == 0).then_some(reported)))
    }

    async fn prune_sign_in_throttle(&self, before: Timestamp) -> StoreResult<u64> {
        let query = sqlx::query(
            "DELETE FROM operator_sign_in_throttle \
             WHERE last_attempt_at < $1 AND locked_until < $1",
        )
        .bind(before.micros());
        execute(&self.write, query).await
    }

    async fn append_operator_event(&self, event: &OperatorEvent) -> StoreResult<()> {
        execute(&self.write, insert_event(event)).await.map(drop)
    }

    async fn list_operator_events(&self, limit: i64) -> StoreResult<Vec<OperatorEvent>> {
        let query = sqlx::query(
            "SELECT id, at, action, decision, operator, reason, peer FROM operator_events \
             ORDER BY at DESC, id DESC LIMIT $1",
        )
        .bind(limit);
        fetch_all(&self.read, query, operator_event).await
    }

    async fn count_events_by_hour(
        &self,
        since: Timestamp,
        actions: &[&str],
    ) -> StoreResult<Vec<(i64, String, i64)>> {
        let placeholders: Vec<String> = (0..actions.len()).map(|i| format!("${}", i + 2)).collect();
        // Integer division by an hour in microseconds: the same bucket on both engines.
        let sql = format!(
            "SELECT at / 3600000000 AS hour, action, COUNT(*) AS n FROM audit_events \
             WHERE at >= $1 AND action IN ({}) GROUP BY at / 3600000000, action",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(since.micros());
        for action in actions {
            query = query.bind(*action);
        }
        fetch_all(&self.read, query, |row| {
            Ok((get(row, "hour")?, get(row, "action")?, get(row, "n")?))
        })
        .await
    }
}
