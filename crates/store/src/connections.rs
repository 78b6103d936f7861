//! OAuth connections and their refresh lease. Taking the lease and storing a refresh's result
//! are each one conditional `UPDATE`, so they hold across server nodes on either engine
//! without a lock held across the provider call.

use alter_core::audit::AuditEvent;
use alter_core::connections::{Connection, ConnectionStatus, RefreshLease, RefreshedTokens};
use alter_core::ids::{AppId, ConnectionId};
use alter_core::ports::{ConnectionStore, StoreResult};
use alter_core::time::Timestamp;
use async_trait::async_trait;
use sqlx::any::AnyRow;

use crate::rows::{fetch_optional, get, id, json, micros, opt_time, parsed, time, to_json};
use crate::{SqlStore, db_error};

const COLUMNS: &str = "id, app_id, provider_id, account_identifier, scopes, sealed_tokens, \
    token_version, access_expires_at, status, created_at, updated_at";

fn connection(row: &AnyRow) -> StoreResult<Connection> {
    Ok(Connection {
        id: id(row, "id")?,
        app_id: id(row, "app_id")?,
        provider_id: get(row, "provider_id")?,
        account_identifier: get(row, "account_identifier")?,
        scopes: json(row, "scopes")?,
        sealed_tokens: get(row, "sealed_tokens")?,
        token_version: get(row, "token_version")?,
        access_expires_at: opt_time(row, "access_expires_at")?,
        status: parsed(row, "status", ConnectionStatus::parse)?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

#[async_trait]
impl ConnectionStore for SqlStore {
    async fn insert_connection(&self, value: &Connection, event: &AuditEvent) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO oauth_connections ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        let query = sqlx::query(&sql)
            .bind(value.id.to_string())
            .bind(value.app_id.to_string())
            .bind(&value.provider_id)
            .bind(value.account_identifier.clone())
            .bind(to_json(&value.scopes)?)
            .bind(value.sealed_tokens.clone())
            .bind(value.token_version)
            .bind(micros(value.access_expires_at))
            .bind(value.status.as_str())
            .bind(value.created_at.micros())
            .bind(value.updated_at.micros());
        self.execute_with_event(query, event).await
    }

    async fn get_connection(
        &self,
        app: AppId,
        id: ConnectionId,
    ) -> StoreResult<Option<Connection>> {
        let sql = format!("SELECT {COLUMNS} FROM oauth_connections WHERE app_id = $1 AND id = $2");
        let query = sqlx::query(&sql).bind(app.to_string()).bind(id.to_string());
        fetch_optional(&self.read, query, connection).await
    }

    async fn acquire_refresh_lease(
        &self,
        app: AppId,
        id: ConnectionId,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Option<RefreshLease>> {
        let row = sqlx::query(
            "UPDATE oauth_connections SET refresh_fence = refresh_fence + 1, \
             refresh_lease_until = $1 WHERE app_id = $2 AND id = $3 AND status = 'active' \
             AND (refresh_lease_until IS NULL OR refresh_lease_until <= $4) \
             RETURNING refresh_fence, token_version",
        )
        .bind(until.micros())
        .bind(app.to_string())
        .bind(id.to_string())
        .bind(now.micros())
        .fetch_optional(&self.write)
        .await
        .map_err(db_error)?;
        row.map(|row| {
            Ok(RefreshLease {
                fence: get(&row, "refresh_fence")?,
                token_version: get(&row, "token_version")?,
                until,
            })
        })
        .transpose()
    }

    async fn complete_refresh(
        &self,
        app: AppId,
        id: ConnectionId,
        lease: &RefreshLease,
        tokens: &RefreshedTokens,
    ) -> StoreResult<bool> {
        let scopes = tokens.scopes.as_ref().map(to_json).transpose()?;
        let done = sqlx::query(
            "UPDATE oauth_connections SET sealed_tokens = $1, token_version = $2, \
             access_expires_at = $3, scopes = COALESCE($4, scopes), updated_at = $5, \
             refresh_lease_until = NULL WHERE app_id = $6 AND id = $7 AND refresh_fence = $8 \
             AND token_version = $9 AND status = 'active'",
        )
        .bind(tokens.sealed_tokens.clone())
        .bind(tokens.token_version)
        .bind(micros(tokens.access_expires_at))
        .bind(scopes)
        .bind(tokens.at.micros())
        .bind(app.to_string())
        .bind(id.to_string())
        .bind(lease.fence)
        .bind(lease.token_version)
        .execute(&self.write)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(done == 1)
    }

    async fn release_refresh_lease(
        &self,
        app: AppId,
        id: ConnectionId,
        lease: &RefreshLease,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE oauth_connections SET refresh_lease_until = NULL \
             WHERE app_id = $1 AND id = $2 AND refresh_fence = $3",
        )
        .bind(app.to_string())
        .bind(id.to_string())
        .bind(lease.fence)
        .execute(&self.write)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(done == 1)
    }

    async fn mark_reauth_required(
        &self,
        app: AppId,
        id: ConnectionId,
        lease: &RefreshLease,
        at: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let query = sqlx::query(
            "UPDATE oauth_connections SET status = 'reauth_required', updated_at = $1, \
             refresh_lease_until = NULL WHERE app_id = $2 AND id = $3 AND refresh_fence = $4 \
             AND token_version = $5 AND status = 'active'",
        )
        .bind(at.micros())
        .bind(app.to_string())
        .bind(id.to_string())
        .bind(lease.fence)
        .bind(lease.token_version);
        self.execute_one_with_event(query, event).await
    }

    async fn revoke_connection(
        &self,
        app: AppId,
        id: ConnectionId,
        at: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        // The fence moves so a refresh in flight cannot store tokens after this.
        let query = sqlx::query(
            "UPDATE oauth_connections SET status = 'revoked', updated_at = $1, \
             refresh_fence = refresh_fence + 1, refresh_lease_until = NULL, sealed_tokens = $2 \
             WHERE app_id = $3 AND id = $4 AND status <> 'revoked'",
        )
        .bind(at.micros())
        .bind(Vec::<u8>::new())
        .bind(app.to_string())
        .bind(id.to_string());
        self.execute_one_with_event(query, event).await
    }
}
