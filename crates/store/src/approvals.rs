//! Approvals (held proxy calls). Every transition is one `UPDATE … WHERE status = …`, so of
//! any number of nodes racing on the same row exactly one moves it.

use alter_core::approvals::{Approval, ApprovalDecision, ApprovalFinish, ApprovalStatus};
use alter_core::audit::AuditEvent;
use alter_core::audit::ChainKey;
use alter_core::ids::{AppId, ApprovalId, EventId};
use alter_core::ports::{ApprovalStore, Parked, StoreResult};
use alter_core::release::ReleaseCondition;
use alter_core::time::Timestamp;
use async_trait::async_trait;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::rows::{
    AnyQuery, fetch_all, fetch_optional, get, id, json, opt_id, opt_time, parsed, time, to_json,
};
use crate::{SqlStore, chain, db_error, group_commit};

const COLUMNS: &str = "id, group_id, app_id, status, grant_id, key_id, agent_id, sealed_request, \
    method, url, holds, reason, created_at, expires_at, decided_at, decided_by, decision_reason, \
    claimed_at, executed_at, execution_error, sealed_result, version";

fn approval(row: &AnyRow) -> StoreResult<Approval> {
    Ok(Approval {
        id: id(row, "id")?,
        group_id: id(row, "group_id")?,
        app_id: id(row, "app_id")?,
        status: parsed(row, "status", ApprovalStatus::parse)?,
        grant_id: id(row, "grant_id")?,
        key_id: id(row, "key_id")?,
        agent_id: opt_id(row, "agent_id")?,
        sealed_request: get(row, "sealed_request")?,
        method: get(row, "method")?,
        url: get(row, "url")?,
        holds: json(row, "holds")?,
        reason: get(row, "reason")?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
        decided_at: opt_time(row, "decided_at")?,
        decided_by: get(row, "decided_by")?,
        decision_reason: get(row, "decision_reason")?,
        claimed_at: opt_time(row, "claimed_at")?,
        executed_at: opt_time(row, "executed_at")?,
        execution_error: get(row, "execution_error")?,
        sealed_result: get(row, "sealed_result")?,
        version: get(row, "version")?,
    })
}

fn app_and_id(row: &AnyRow) -> StoreResult<(AppId, ApprovalId)> {
    Ok((id(row, "app_id")?, id(row, "id")?))
}

impl SqlStore {
    /// Runs `query` (an `UPDATE … RETURNING app_id, id`) and appends one copy of `template`
    /// per row it moved, aimed at that row, in the same transaction.
    async fn move_with_events(
        &self,
        query: AnyQuery<'_>,
        template: &AuditEvent,
    ) -> StoreResult<Vec<(AppId, ApprovalId)>> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let moved = query
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?
            .iter()
            .map(app_and_id)
            .collect::<StoreResult<Vec<_>>>()?;
        let events: Vec<AuditEvent> = moved
            .iter()
            .map(|(app, approval)| {
                let mut event = template.clone();
                event.id = EventId::new();
                event.app_id = *app;
                if let Some(target) = &mut event.target {
                    target.id = approval.to_string();
                }
                event
            })
            .collect();
        if !events.is_empty() {
            let refs: Vec<&AuditEvent> = events.iter().collect();
            chain::append_all(&mut tx, &self.chain, &refs).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(moved)
    }
}

/// Inserts a held call (`insert`, conditional on its app's pending count) with its event, in
/// one transaction that first checks `condition` still holds. Commits only what it parks.
async fn park(
    conn: &mut AnyConnection,
    insert: AnyQuery<'_>,
    event: &AuditEvent,
    condition: &ReleaseCondition,
    key: &ChainKey,
) -> StoreResult<Parked> {
    if !group_commit::begin_holding(conn, condition).await? {
        return Ok(Parked::Refused);
    }
    if insert
        .execute(&mut *conn)
        .await
        .map_err(db_error)?
        .rows_affected()
        != 1
    {
        return Ok(Parked::TooMany);
    }
    chain::append(conn, key, event).await?;
    sqlx::query("COMMIT")
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(Parked::Parked)
}

#[async_trait]
impl ApprovalStore for SqlStore {
    async fn insert_approval(
        &self,
        value: &Approval,
        max_pending: i64,
        event: &AuditEvent,
        condition: &ReleaseCondition,
    ) -> StoreResult<Parked> {
        let sql = format!(
            "INSERT INTO approvals ({COLUMNS}) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                    $18, $19, $20, $21, $22 \
             WHERE (SELECT COUNT(*) FROM approvals WHERE app_id = $3 AND status = 'pending') < $23"
        );
        let query = sqlx::query(&sql)
            .bind(value.id.to_string())
            .bind(value.group_id.to_string())
            .bind(value.app_id.to_string())
            .bind(value.status.as_str())
            .bind(value.grant_id.to_string())
            .bind(value.key_id.to_string())
            .bind(value.agent_id.map(|a| a.to_string()))
            .bind(value.sealed_request.clone())
            .bind(&value.method)
            .bind(&value.url)
            .bind(to_json(&value.holds)?)
            .bind(&value.reason)
            .bind(value.created_at.micros())
            .bind(value.expires_at.micros())
            .bind(value.decided_at.map(Timestamp::micros))
            .bind(value.decided_by.clone())
            .bind(value.decision_reason.clone())
            .bind(value.claimed_at.map(Timestamp::micros))
            .bind(value.executed_at.map(Timestamp::micros))
            .bind(value.execution_error.clone())
            .bind(value.sealed_result.clone())
            .bind(value.version)
            .bind(max_pending);
        let mut conn = self.write.acquire().await.map_err(db_error)?;
        let parked = park(&mut conn, query, event, condition, &self.chain).await;
        if !matches!(parked, Ok(Parked::Parked))
            && sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err()
        {
            // A connection left inside a transaction is not handed out again.
            conn.close_on_drop();
        }
        parked
    }

    async fn get_approval(&self, app: AppId, id: ApprovalId) -> StoreResult<Option<Approval>> {
        let sql = format!("SELECT {COLUMNS} FROM approvals WHERE app_id = $1 AND id = $2");
        let query = sqlx::query(&sql).bind(app.to_string()).bind(id.to_string());
        fetch_optional(&self.read, query, approval).await
    }

    async fn list_approvals(
        &self,
        app: AppId,
        status: Option<ApprovalStatus>,
        limit: i64,
    ) -> StoreResult<Vec<Approval>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM approvals WHERE app_id = $1 AND ($2 IS NULL OR status = $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let query = sqlx::query(&sql)
            .bind(app.to_string())
            .bind(status.map(ApprovalStatus::as_str))
            .bind(limit);
        fetch_all(&self.read, query, approval).await
    }

    async fn decide_approval(
        &self,
        app: AppId,
        id: ApprovalId,
        decision: &ApprovalDecision,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let status = if decision.approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Denied
        };
        let query = sqlx::query(
            "UPDATE approvals SET status = $1, decided_at = $2, decided_by = $3, \
             decision_reason = $4, version = version + 1 \
             WHERE app_id = $5 AND id = $6 AND status = 'pending' AND expires_at > $2",
        )
        .bind(status.as_str())
        .bind(decision.at.micros())
        .bind(&decision.decided_by)
        .bind(decision.reason.clone())
        .bind(app.to_string())
        .bind(id.to_string());
        self.execute_one_with_event(query, event).await
    }

    async fn claim_approval(&self, app: AppId, id: ApprovalId, at: Timestamp) -> StoreResult<bool> {
        let changed = sqlx::query(
            "UPDATE approvals SET status = 'executing', claimed_at = $1, version = version + 1 \
             WHERE app_id = $2 AND id = $3 AND status = 'approved'",
        )
        .bind(at.micros())
        .bind(app.to_string())
        .bind(id.to_string())
        .execute(&self.write)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn finish_approval(
        &self,
        app: AppId,
        id: ApprovalId,
        finish: &ApprovalFinish,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let status = if finish.executed {
            ApprovalStatus::Executed
        } else {
            ApprovalStatus::Failed
        };
        let query = sqlx::query(
            "UPDATE approvals SET status = $1, executed_at = $2, execution_error = $3, \
             sealed_result = $4, version = version + 1 \
             WHERE app_id = $5 AND id = $6 AND status = 'executing'",
        )
        .bind(status.as_str())
        .bind(finish.at.micros())
        .bind(finish.error.clone())
        .bind(finish.sealed_result.clone())
        .bind(app.to_string())
        .bind(id.to_string());
        self.execute_one_with_event(query, event).await
    }

    async fn expire_approvals(
        &self,
        at: Timestamp,
        limit: i64,
        template: &AuditEvent,
    ) -> StoreResult<Vec<(AppId, ApprovalId)>> {
        let query = sqlx::query(
            "UPDATE approvals SET status = 'expired', version = version + 1 \
             WHERE id IN (SELECT id FROM approvals WHERE status = 'pending' AND expires_at <= $1 \
                          ORDER BY expires_at LIMIT $2) \
               AND status = 'pending' \
             RETURNING app_id, id",
        )
        .bind(at.micros())
        .bind(limit);
        self.move_with_events(query, template).await
    }

    async fn fail_stale_executions(
        &self,
        claimed_before: Timestamp,
        at: Timestamp,
        error: &str,
        template: &AuditEvent,
    ) -> StoreResult<Vec<(AppId, ApprovalId)>> {
        let query = sqlx::query(
            "UPDATE approvals SET status = 'failed', executed_at = $1, execution_error = $2, \
             version = version + 1 \
             WHERE status = 'executing' AND claimed_at < $3 \
             RETURNING app_id, id",
        )
        .bind(at.micros())
        .bind(error)
        .bind(claimed_before.micros());
        self.move_with_events(query, template).await
    }

    async fn unclaimed_approvals(&self, limit: i64) -> StoreResult<Vec<(AppId, ApprovalId)>> {
        let query = sqlx::query(
            "SELECT app_id, id FROM approvals WHERE status = 'approved' \
             ORDER BY decided_at LIMIT $1",
        )
        .bind(limit);
        fetch_all(&self.read, query, app_and_id).await
    }
}
