//! What the Wallet reads and writes beyond the other ports: a grant's extended end, a user's
//! newest calls, and how many sign-ins are under way.

use alter_core::audit::{AuditEvent, EventFilter, StoredEvent};
use alter_core::ids::{AppId, GrantId, UserId};
use alter_core::ports::StoreResult;
use alter_core::time::Timestamp;
use alter_core::wallet::WalletStore;
use async_trait::async_trait;

use crate::rows::{fetch_all, get};
use crate::{SqlStore, db_error};

#[async_trait]
impl WalletStore for SqlStore {
    async fn extend_grant(
        &self,
        app: AppId,
        id: GrantId,
        from: Timestamp,
        to: Timestamp,
        now: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        // Conditional on the end read, on the grant still being active and on that end not
        // having passed: a revocation, another extension or the expiry in between wins, and
        // this one changes nothing (an expired grant is never revived).
        let query = sqlx::query(
            "UPDATE grants SET expires_at = $1 \
             WHERE app_id = $2 AND id = $3 AND status = 'active' AND expires_at = $4 \
             AND expires_at > $5",
        )
        .bind(to.micros())
        .bind(app.to_string())
        .bind(id.to_string())
        .bind(from.micros())
        .bind(now.micros());
        self.execute_one_with_event(query, event).await
    }

    async fn user_activity(
        &self,
        app: AppId,
        user: UserId,
        actions: &[&str],
        filter: &EventFilter,
        limit: i64,
    ) -> StoreResult<Vec<StoredEvent>> {
        if actions.is_empty() {
            return Ok(Vec::new());
        }
        // Newest first through the (app_id, app_user_id, seq) index; the actions, the
        // decision and the dates are filtered here, not after reading the whole history.
        let mut sql = String::from(
            "SELECT seq, body, hash FROM audit_events WHERE app_id = $1 AND app_user_id = $2",
        );
        let mut next = 3;
        let placeholders: Vec<String> = actions
            .iter()
            .map(|_| {
                next += 1;
                format!("${}", next - 1)
            })
            .collect();
        sql.push_str(&format!(" AND action IN ({})", placeholders.join(", ")));
        if filter.decision.is_some() {
            sql.push_str(&format!(" AND decision = ${next}"));
            next += 1;
        }
        for (op, value) in [(">=", filter.since), ("<", filter.until)] {
            if value.is_some() {
                sql.push_str(&format!(" AND at {op} ${next}"));
                next += 1;
            }
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${next}"));
        let mut query = sqlx::query(&sql)
            .bind(app.to_string())
            .bind(user.to_string());
        for action in actions {
            query = query.bind(*action);
        }
        if let Some(decision) = filter.decision {
            query = query.bind(decision.as_str());
        }
        for at in [filter.since, filter.until].into_iter().flatten() {
            query = query.bind(at.micros());
        }
        query = query.bind(limit);
        fetch_all(&self.read, query, crate::audit_events::stored_event).await
    }

    async fn pending_sign_ins(&self, app: AppId, now: Timestamp) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM auth_sessions \
             WHERE app_id = $1 AND status = 'pending' AND expires_at > $2",
        )
        .bind(app.to_string())
        .bind(now.micros())
        .fetch_one(&self.read)
        .await
        .map_err(db_error)?;
        get(&row, "n")
    }
}
