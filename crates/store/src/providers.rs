//! OAuth providers of apps.

use alter_core::audit::AuditEvent;
use alter_core::ids::AppId;
use alter_core::ports::{ProviderStore, StoreResult};
use alter_core::providers::{OAuthProvider, ProviderSource};
use async_trait::async_trait;
use sqlx::any::AnyRow;

use crate::rows::{AnyQuery, fetch_all, fetch_optional, get, id, json, parsed, time, to_json};
use crate::{SqlStore, db_error};

/// The columns a configuration changes first (in [`bind_configuration`]'s order), then the row's
/// identity.
const COLUMNS: &str = "display_name, source, endpoints, client_id, sealed_client_secret, \
    scopes, version, updated_at, app_id, provider_id, created_at";

fn provider(row: &AnyRow) -> StoreResult<OAuthProvider> {
    Ok(OAuthProvider {
        app_id: id(row, "app_id")?,
        id: get(row, "provider_id")?,
        display_name: get(row, "display_name")?,
        source: parsed(row, "source", ProviderSource::parse)?,
        endpoints: json(row, "endpoints")?,
        client_id: get(row, "client_id")?,
        sealed_client_secret: get(row, "sealed_client_secret")?,
        scopes: json(row, "scopes")?,
        version: get(row, "version")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// Binds what a configuration sets, in [`COLUMNS`]' order.
fn bind_configuration<'q>(
    query: AnyQuery<'q>,
    value: &'q OAuthProvider,
) -> StoreResult<AnyQuery<'q>> {
    Ok(query
        .bind(&value.display_name)
        .bind(value.source.as_str())
        .bind(to_json(&value.endpoints)?)
        .bind(&value.client_id)
        .bind(value.sealed_client_secret.clone())
        .bind(to_json(&value.scopes)?)
        .bind(value.version)
        .bind(value.updated_at.micros()))
}

#[async_trait]
impl ProviderStore for SqlStore {
    async fn put_provider(
        &self,
        value: &OAuthProvider,
        expected: Option<i64>,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        match expected {
            None => {
                let sql = format!(
                    "INSERT INTO oauth_providers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                );
                let query = bind_configuration(sqlx::query(&sql), value)?
                    .bind(value.app_id.to_string())
                    .bind(&value.id)
                    .bind(value.created_at.micros());
                self.execute_with_event(query, event).await.map(|()| true)
            }
            Some(version) => {
                let query = sqlx::query(
                    "UPDATE oauth_providers SET display_name = $1, source = $2, endpoints = $3, \
                     client_id = $4, sealed_client_secret = $5, scopes = $6, version = $7, \
                     updated_at = $8 WHERE app_id = $9 AND provider_id = $10 AND version = $11",
                );
                let query = bind_configuration(query, value)?
                    .bind(value.app_id.to_string())
                    .bind(&value.id)
                    .bind(version);
                self.execute_one_with_event(query, event).await
            }
        }
    }

    async fn get_provider(&self, app: AppId, id: &str) -> StoreResult<Option<OAuthProvider>> {
        let sql =
            format!("SELECT {COLUMNS} FROM oauth_providers WHERE app_id = $1 AND provider_id = $2");
        let query = sqlx::query(&sql).bind(app.to_string()).bind(id);
        fetch_optional(&self.read, query, provider).await
    }

    async fn list_providers(&self, app: AppId) -> StoreResult<Vec<OAuthProvider>> {
        let sql =
            format!("SELECT {COLUMNS} FROM oauth_providers WHERE app_id = $1 ORDER BY provider_id");
        fetch_all(
            &self.read,
            sqlx::query(&sql).bind(app.to_string()),
            provider,
        )
        .await
    }

    async fn delete_provider(&self, app: AppId, id: &str, event: &AuditEvent) -> StoreResult<bool> {
        // Checked in the same statement: a connection made while the delete runs either
        // commits first and keeps the provider, or comes after it and finds none.
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let deleted = sqlx::query(
            "DELETE FROM oauth_providers WHERE app_id = $1 AND provider_id = $2 \
             AND NOT EXISTS (SELECT 1 FROM oauth_connections c WHERE c.app_id = $1 \
             AND c.provider_id = $2 AND c.status <> 'revoked')",
        )
        .bind(app.to_string())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if deleted != 1 {
            return Ok(false);
        }
        // Revocations still queued for it are abandoned, their tokens destroyed: a provider
        // configured again under this id must never receive them.
        sqlx::query(
            "UPDATE oauth_revocations SET done_at = $1, sealed_tokens = $2, \
             last_error = 'the provider was removed' \
             WHERE app_id = $3 AND provider_id = $4 AND done_at IS NULL",
        )
        .bind(event.at.micros())
        .bind(Vec::<u8>::new())
        .bind(app.to_string())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        crate::chain::append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }
}
