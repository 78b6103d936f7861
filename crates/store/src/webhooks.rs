//! Outbound webhook endpoints, their cursors over the audit log, and their deliveries.

use alter_core::audit::AuditEvent;
use alter_core::ids::{AppId, WebhookId};
use alter_core::ports::StoreResult;
use alter_core::time::Timestamp;
use alter_core::webhooks::{
    AttemptRecord, Delivery, DeliveryStatus, PreviousSecret, ScannedEvent, WebhookEndpoint,
    WebhookStore,
};
use async_trait::async_trait;
use sqlx::any::AnyRow;

use crate::rows::{fetch_all, fetch_optional, get, id, json, opt_time, parsed, time, to_json};
use crate::{SqlStore, chain, db_error};

const ENDPOINT_COLUMNS: &str = "id, app_id, url, events, description, sealed_secret, \
    secret_version, previous_sealed_secret, previous_secret_version, previous_secret_until, \
    cursor_seq, created_at, rotated_at, url_bound_from";

const DELIVERY_COLUMNS: &str = "endpoint_id, event_id, app_id, seq, event_type, status, \
    attempts, next_attempt_at, last_attempt_at, last_status, last_error, created_at, delivered_at";

fn endpoint(row: &AnyRow) -> StoreResult<WebhookEndpoint> {
    let previous_sealed: Option<Vec<u8>> = get(row, "previous_sealed_secret")?;
    let previous_version: Option<i64> = get(row, "previous_secret_version")?;
    let previous_until = opt_time(row, "previous_secret_until")?;
    let previous = match (previous_sealed, previous_version, previous_until) {
        (Some(sealed), Some(version), Some(until)) => Some(PreviousSecret {
            sealed,
            version,
            until,
        }),
        _ => None,
    };
    Ok(WebhookEndpoint {
        id: id(row, "id")?,
        app_id: id(row, "app_id")?,
        url: get(row, "url")?,
        events: json(row, "events")?,
        description: get(row, "description")?,
        sealed_secret: get(row, "sealed_secret")?,
        secret_version: get(row, "secret_version")?,
        previous,
        cursor_seq: get(row, "cursor_seq")?,
        created_at: time(row, "created_at")?,
        rotated_at: opt_time(row, "rotated_at")?,
        url_bound_from: get(row, "url_bound_from")?,
    })
}

fn delivery(row: &AnyRow) -> StoreResult<Delivery> {
    Ok(Delivery {
        endpoint_id: id(row, "endpoint_id")?,
        event_id: get(row, "event_id")?,
        app_id: id(row, "app_id")?,
        seq: get(row, "seq")?,
        event_type: get(row, "event_type")?,
        status: parsed(row, "status", DeliveryStatus::parse)?,
        attempts: get(row, "attempts")?,
        next_attempt_at: time(row, "next_attempt_at")?,
        last_attempt_at: opt_time(row, "last_attempt_at")?,
        last_status: get(row, "last_status")?,
        last_error: get(row, "last_error")?,
        created_at: time(row, "created_at")?,
        delivered_at: opt_time(row, "delivered_at")?,
    })
}

#[async_trait]
impl WebhookStore for SqlStore {
    async fn insert_webhook(
        &self,
        endpoint: &WebhookEndpoint,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        sqlx::query(&format!(
            "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(endpoint.id.to_string())
        .bind(endpoint.app_id.to_string())
        .bind(endpoint.url.as_str())
        .bind(to_json(&endpoint.events)?)
        .bind(endpoint.description.clone())
        .bind(endpoint.sealed_secret.clone())
        .bind(endpoint.secret_version)
        .bind(endpoint.previous.as_ref().map(|p| p.sealed.clone()))
        .bind(endpoint.previous.as_ref().map(|p| p.version))
        .bind(endpoint.previous.as_ref().map(|p| p.until.micros()))
        .bind(endpoint.cursor_seq)
        .bind(endpoint.created_at.micros())
        .bind(endpoint.rotated_at.map(Timestamp::micros))
        .bind(endpoint.url_bound_from)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        chain::append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn list_webhooks(&self, app: AppId) -> StoreResult<Vec<WebhookEndpoint>> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE app_id = $1 \
             ORDER BY created_at, id"
        );
        fetch_all(
            &self.read,
            sqlx::query(&sql).bind(app.to_string()),
            endpoint,
        )
        .await
    }

    async fn all_webhooks(&self) -> StoreResult<Vec<WebhookEndpoint>> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id");
        fetch_all(&self.write, sqlx::query(&sql), endpoint).await
    }

    async fn get_webhook(
        &self,
        app: AppId,
        webhook: WebhookId,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE app_id = $1 AND id = $2"
        );
        let query = sqlx::query(&sql)
            .bind(app.to_string())
            .bind(webhook.to_string());
        fetch_optional(&self.write, query, endpoint).await
    }

    async fn delete_webhook(
        &self,
        app: AppId,
        webhook: WebhookId,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        sqlx::query(
            "DELETE FROM webhook_deliveries WHERE endpoint_id = $1 AND endpoint_id IN \
             (SELECT id FROM webhook_endpoints WHERE app_id = $2)",
        )
        .bind(webhook.to_string())
        .bind(app.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let removed = sqlx::query("DELETE FROM webhook_endpoints WHERE app_id = $1 AND id = $2")
            .bind(app.to_string())
            .bind(webhook.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        if removed != 1 {
            return Ok(false);
        }
        chain::append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn rotate_webhook_secret(
        &self,
        endpoint: &WebhookEndpoint,
        expected_version: i64,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let changed = sqlx::query(
            "UPDATE webhook_endpoints SET sealed_secret = $1, secret_version = $2, \
             previous_sealed_secret = $3, previous_secret_version = $4, \
             previous_secret_until = $5, rotated_at = $6, url_bound_from = $10 \
             WHERE app_id = $7 AND id = $8 AND secret_version = $9",
        )
        .bind(endpoint.sealed_secret.clone())
        .bind(endpoint.secret_version)
        .bind(endpoint.previous.as_ref().map(|p| p.sealed.clone()))
        .bind(endpoint.previous.as_ref().map(|p| p.version))
        .bind(endpoint.previous.as_ref().map(|p| p.until.micros()))
        .bind(endpoint.rotated_at.map(Timestamp::micros))
        .bind(endpoint.app_id.to_string())
        .bind(endpoint.id.to_string())
        .bind(expected_version)
        .bind(endpoint.url_bound_from)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if changed != 1 {
            return Ok(false);
        }
        chain::append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn scan_events(
        &self,
        app: AppId,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<ScannedEvent>> {
        // Read on the write pool: the primary, whose commits are what the cursor follows.
        let query = sqlx::query(
            "SELECT seq, id, action FROM audit_events WHERE app_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(app.to_string())
        .bind(after_seq)
        .bind(limit);
        fetch_all(&self.write, query, |row| {
            Ok(ScannedEvent {
                seq: get(row, "seq")?,
                id: get(row, "id")?,
                action: get(row, "action")?,
            })
        })
        .await
    }

    async fn enqueue_deliveries(
        &self,
        endpoint: WebhookId,
        from: i64,
        to: i64,
        deliveries: &[Delivery],
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let moved = sqlx::query(
            "UPDATE webhook_endpoints SET cursor_seq = $1 WHERE id = $2 AND cursor_seq = $3",
        )
        .bind(to)
        .bind(endpoint.to_string())
        .bind(from)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if moved != 1 {
            return Ok(false);
        }
        for d in deliveries {
            sqlx::query(&format!(
                "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (endpoint_id, event_id) DO NOTHING"
            ))
            .bind(d.endpoint_id.to_string())
            .bind(d.event_id.as_str())
            .bind(d.app_id.to_string())
            .bind(d.seq)
            .bind(d.event_type.as_str())
            .bind(d.status.as_str())
            .bind(d.attempts)
            .bind(d.next_attempt_at.micros())
            .bind(d.last_attempt_at.map(Timestamp::micros))
            .bind(d.last_status)
            .bind(d.last_error.clone())
            .bind(d.created_at.micros())
            .bind(d.delivered_at.map(Timestamp::micros))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn due_deliveries(&self, now: Timestamp, limit: i64) -> StoreResult<Vec<Delivery>> {
        let sql = format!(
            // The oldest due delivery of each endpoint, so one slow or dead receiver holds up
            // only its own deliveries, never another endpoint's (or app's).
            "SELECT {DELIVERY_COLUMNS} FROM ( \
                 SELECT *, ROW_NUMBER() OVER ( \
                     PARTITION BY endpoint_id ORDER BY next_attempt_at, seq) AS nth \
                 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
             ) due WHERE nth = 1 ORDER BY next_attempt_at, seq LIMIT $2"
        );
        fetch_all(
            &self.write,
            sqlx::query(&sql).bind(now.micros()).bind(limit),
            delivery,
        )
        .await
    }

    async fn event_body(&self, app: AppId, seq: i64) -> StoreResult<Option<String>> {
        let query = sqlx::query("SELECT body FROM audit_events WHERE app_id = $1 AND seq = $2")
            .bind(app.to_string())
            .bind(seq);
        fetch_optional(&self.write, query, |row| get(row, "body")).await
    }

    async fn record_attempt(
        &self,
        endpoint: WebhookId,
        event_id: &str,
        expected_attempts: i64,
        record: &AttemptRecord,
    ) -> StoreResult<bool> {
        let delivered_at = (record.status == DeliveryStatus::Delivered).then_some(record.at);
        let changed = sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, \
             last_attempt_at = $4, last_status = $5, last_error = $6, delivered_at = $7 \
             WHERE endpoint_id = $8 AND event_id = $9 AND status = 'pending' AND attempts = $10",
        )
        .bind(record.status.as_str())
        .bind(record.attempts)
        .bind(record.next_attempt_at.micros())
        .bind(record.at.micros())
        .bind(record.http_status)
        .bind(record.error.clone())
        .bind(delivered_at.map(Timestamp::micros))
        .bind(endpoint.to_string())
        .bind(event_id)
        .bind(expected_attempts)
        .execute(&self.write)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn list_deliveries(
        &self,
        app: AppId,
        endpoint: WebhookId,
        status: Option<DeliveryStatus>,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
             WHERE app_id = $1 AND endpoint_id = $2 AND ($3 = '' OR status = $3) \
             ORDER BY seq DESC LIMIT $4"
        );
        let query = sqlx::query(&sql)
            .bind(app.to_string())
            .bind(endpoint.to_string())
            .bind(status.map_or("", DeliveryStatus::as_str))
            .bind(limit);
        fetch_all(&self.read, query, delivery).await
    }

    async fn replay_delivery(
        &self,
        app: AppId,
        endpoint: WebhookId,
        event_id: &str,
        now: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<Option<Delivery>> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let sql = format!(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, \
             next_attempt_at = $1, last_error = NULL, delivered_at = NULL \
             WHERE app_id = $2 AND endpoint_id = $3 AND event_id = $4 \
             RETURNING {DELIVERY_COLUMNS}"
        );
        let query = sqlx::query(&sql)
            .bind(now.micros())
            .bind(app.to_string())
            .bind(endpoint.to_string())
            .bind(event_id);
        let Some(reset) = fetch_optional(&mut *tx, query, delivery).await? else {
            return Ok(None);
        };
        chain::append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(reset))
    }

    async fn clear_expired_previous_secrets(&self, now: Timestamp) -> StoreResult<u64> {
        Ok(sqlx::query(
            "UPDATE webhook_endpoints SET previous_sealed_secret = NULL, \
             previous_secret_version = NULL, previous_secret_until = NULL \
             WHERE previous_sealed_secret IS NOT NULL AND previous_secret_until <= $1",
        )
        .bind(now.micros())
        .execute(&self.write)
        .await
        .map_err(db_error)?
        .rows_affected())
    }

    async fn prune_deliveries(&self, before: Timestamp) -> StoreResult<u64> {
        // Settled at its last attempt (a delivery settles on one); pending ones stay.
        Ok(sqlx::query(
            "DELETE FROM webhook_deliveries WHERE status <> 'pending' \
             AND COALESCE(delivered_at, last_attempt_at, created_at) < $1",
        )
        .bind(before.micros())
        .execute(&self.write)
        .await
        .map_err(db_error)?
        .rows_affected())
    }
}
