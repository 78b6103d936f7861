//! Inbound IdP events: the app's event secret, delivery receipts, and the user changes events
//! make (status, membership), each dated so an older change never undoes a newer one.

use alter_core::audit::AuditEvent;
use alter_core::grants::Grant;
use alter_core::identity::UserStatus;
use alter_core::idp_events::{IdpEventSecret, IdpEventStore};
use alter_core::ids::{AppId, UserId};
use alter_core::ports::StoreResult;
use alter_core::time::Timestamp;
use async_trait::async_trait;
use sqlx::any::AnyRow;

use crate::chain::append;
use crate::grants::{COLUMNS as GRANT_COLUMNS, grant};
use crate::rows::{fetch_all, fetch_optional, get, id, micros, opt_time, time};
use crate::{SqlStore, db_error};

const SECRET_COLUMNS: &str =
    "app_id, version, sealed_secret, previous_sealed, previous_until, created_at, rotated_at";

fn secret(row: &AnyRow) -> StoreResult<IdpEventSecret> {
    Ok(IdpEventSecret {
        app_id: id(row, "app_id")?,
        version: get(row, "version")?,
        sealed_secret: get(row, "sealed_secret")?,
        previous_sealed: get(row, "previous_sealed")?,
        previous_until: opt_time(row, "previous_until")?,
        created_at: time(row, "created_at")?,
        rotated_at: time(row, "rotated_at")?,
    })
}

#[async_trait]
impl IdpEventStore for SqlStore {
    async fn get_idp_event_secret(&self, app: AppId) -> StoreResult<Option<IdpEventSecret>> {
        let sql = format!("SELECT {SECRET_COLUMNS} FROM idp_event_secrets WHERE app_id = $1");
        fetch_optional(&self.read, sqlx::query(&sql).bind(app.to_string()), secret).await
    }

    async fn put_idp_event_secret(
        &self,
        value: &IdpEventSecret,
        expected_version: Option<i64>,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        // The first secret is an insert that loses to a concurrent one; a rotation an update
        // from the version it read (compare-and-swap), so two rotations cannot both win.
        let sql = match expected_version {
            None => format!(
                "INSERT INTO idp_event_secrets ({SECRET_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (app_id) DO NOTHING"
            ),
            Some(_) => "UPDATE idp_event_secrets SET version = $2, sealed_secret = $3, \
                 previous_sealed = $4, previous_until = $5, rotated_at = $7 \
                 WHERE app_id = $1 AND created_at = $6 AND version = $8"
                .to_owned(),
        };
        let query = sqlx::query(&sql)
            .bind(value.app_id.to_string())
            .bind(value.version)
            .bind(value.sealed_secret.clone())
            .bind(value.previous_sealed.clone())
            .bind(micros(value.previous_until))
            .bind(value.created_at.micros())
            .bind(value.rotated_at.micros());
        let query = match expected_version {
            Some(version) => query.bind(version),
            None => query,
        };
        self.execute_one_with_event(query, event).await
    }

    async fn end_previous_idp_event_secret(
        &self,
        app: AppId,
        version: i64,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let query = sqlx::query(
            "UPDATE idp_event_secrets SET previous_sealed = NULL, previous_until = NULL \
             WHERE app_id = $1 AND version = $2 AND previous_sealed IS NOT NULL",
        )
        .bind(app.to_string())
        .bind(version);
        self.execute_one_with_event(query, event).await
    }

    async fn clear_expired_previous_idp_event_secrets(&self, now: Timestamp) -> StoreResult<u64> {
        Ok(sqlx::query(
            "UPDATE idp_event_secrets SET previous_sealed = NULL, previous_until = NULL \
             WHERE previous_sealed IS NOT NULL AND previous_until <= $1",
        )
        .bind(now.micros())
        .execute(&self.write)
        .await
        .map_err(db_error)?
        .rows_affected())
    }

    async fn idp_event_received(&self, app: AppId, webhook_id: &str) -> StoreResult<bool> {
        let found: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM idp_event_receipts WHERE app_id = $1 AND webhook_id = $2",
        )
        .bind(app.to_string())
        .bind(webhook_id)
        .fetch_one(&self.read)
        .await
        .map_err(db_error)?;
        Ok(found > 0)
    }

    async fn record_idp_event(
        &self,
        app: AppId,
        webhook_id: &str,
        event_type: &str,
        at: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let query = sqlx::query(
            "INSERT INTO idp_event_receipts (app_id, webhook_id, event_type, received_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (app_id, webhook_id) DO NOTHING",
        )
        .bind(app.to_string())
        .bind(webhook_id.to_owned())
        .bind(event_type.to_owned())
        .bind(at.micros());
        self.execute_one_with_event(query, event).await
    }

    async fn set_user_status(
        &self,
        app: AppId,
        user: UserId,
        status: UserStatus,
        as_of: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let changed = sqlx::query(
            // At the same instant as the last change, only a suspension wins: the restrictive
            // change holds whatever order two events of one second arrive in.
            "UPDATE app_users SET status = $1, status_as_of = $2 \
             WHERE app_id = $3 AND id = $4 \
             AND (status_as_of IS NULL OR status_as_of < $2 \
                  OR (status_as_of = $2 AND $1 = 'suspended'))",
        )
        .bind(status.as_str())
        .bind(as_of.micros())
        .bind(app.to_string())
        .bind(user.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if changed != 1 {
            return Ok(false);
        }
        if status != UserStatus::Active {
            sqlx::query(
                "UPDATE browser_sessions SET revoked_at = $1 \
                 WHERE kind = 'wallet' AND app_id = $2 AND subject = $3 AND revoked_at IS NULL",
            )
            .bind(event.at.micros())
            .bind(app.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn change_membership(
        &self,
        app: AppId,
        user: UserId,
        group: &str,
        member: bool,
        as_of: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        // Compare-and-set on the stored groups: a sign-in writing them meanwhile is not lost.
        for _ in 0..8 {
            let row = sqlx::query(
                "SELECT group_ids, membership_floor FROM app_users WHERE app_id = $1 AND id = $2",
            )
            .bind(app.to_string())
            .bind(user.to_string())
            .fetch_optional(&self.write)
            .await
            .map_err(db_error)?;
            let Some(row) = row else {
                return Ok(false);
            };
            let stored: String = get(&row, "group_ids")?;
            // At the same instant as the last change, only a removal wins (the restrictive
            // change holds whatever order two events of one second arrive in).
            if opt_time(&row, "membership_floor")?
                .is_some_and(|floor| floor > as_of || (floor == as_of && member))
            {
                return Ok(false);
            }
            let mut groups: Vec<String> = serde_json::from_str(&stored)
                .map_err(|e| alter_core::ports::StoreError::Corrupt(e.to_string()))?;
            let present = groups.iter().any(|g| g == group);
            match (member, present) {
                (true, false) => groups.push(group.to_owned()),
                (false, true) => groups.retain(|g| g != group),
                _ => {}
            }
            let groups = serde_json::to_string(&groups)
                .map_err(|e| alter_core::ports::StoreError::Corrupt(e.to_string()))?;
            let mut tx = self.write.begin().await.map_err(db_error)?;
            let changed = sqlx::query(
                "UPDATE app_users SET group_ids = $1, membership_floor = $2 \
                 WHERE app_id = $3 AND id = $4 AND group_ids = $5 \
                 AND (membership_floor IS NULL OR membership_floor < $2 \
                      OR (membership_floor = $2 AND $6 = 0))",
            )
            .bind(groups)
            .bind(as_of.micros())
            .bind(app.to_string())
            .bind(user.to_string())
            .bind(stored)
            .bind(i64::from(member))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            if changed == 1 {
                append(&mut tx, &self.chain, event).await?;
                tx.commit().await.map_err(db_error)?;
                return Ok(true);
            }
        }
        Err(alter_core::ports::StoreError::Conflict(
            "membership changed concurrently".into(),
        ))
    }

    async fn grants_of_user(&self, app: AppId, user: UserId) -> StoreResult<Vec<Grant>> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM grants g WHERE g.app_id = $1 AND g.status = 'active' \
             AND ((g.principal_type = 'user' AND g.app_user_id = $2) OR g.delegated_by = $2) \
             ORDER BY g.seq"
        );
        let query = sqlx::query(&sql)
            .bind(app.to_string())
            .bind(user.to_string());
        fetch_all(&self.read, query, grant).await
    }

    async fn prune_idp_event_receipts(&self, before: Timestamp) -> StoreResult<u64> {
        Ok(
            sqlx::query("DELETE FROM idp_event_receipts WHERE received_at < $1")
                .bind(before.micros())
                .execute(&self.write)
                .await
                .map_err(db_error)?
                .rows_affected(),
        )
    }
}
