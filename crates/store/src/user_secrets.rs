//! Users' own keys for managed secrets, stored with the grant on them in one transaction.

use alter_core::audit::AuditEvent;
use alter_core::grants::Grant;
use alter_core::ids::{AppId, UserSecretId};
use alter_core::ports::{StoreResult, UserSecretStore};
use alter_core::user_secrets::UserSecret;
use async_trait::async_trait;
use sqlx::any::AnyRow;

use crate::rows::{fetch_optional, get, id, time};
use crate::{SqlStore, db_error, grants};

const COLUMNS: &str =
    "id, app_id, secret_id, user_id, sealed_value, value_version, set_at, created_at";

fn user_secret(row: &AnyRow) -> StoreResult<UserSecret> {
    Ok(UserSecret {
        id: id(row, "id")?,
        app_id: id(row, "app_id")?,
        secret_id: id(row, "secret_id")?,
        user_id: id(row, "user_id")?,
        sealed_value: get(row, "sealed_value")?,
        value_version: get(row, "value_version")?,
        set_at: time(row, "set_at")?,
        created_at: time(row, "created_at")?,
    })
}

#[async_trait]
impl UserSecretStore for SqlStore {
    async fn get_user_secret(
        &self,
        app: AppId,
        id: UserSecretId,
    ) -> StoreResult<Option<UserSecret>> {
        let sql = format!("SELECT {COLUMNS} FROM user_secrets WHERE app_id = $1 AND id = $2");
        let query = sqlx::query(&sql).bind(app.to_string()).bind(id.to_string());
        fetch_optional(&self.read, query, user_secret).await
    }

    async fn insert_user_secret_grant(
        &self,
        key: &UserSecret,
        grant: &Grant,
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let sql =
            format!("INSERT INTO user_secrets ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
        sqlx::query(&sql)
            .bind(key.id.to_string())
            .bind(key.app_id.to_string())
            .bind(key.secret_id.to_string())
            .bind(key.user_id.to_string())
            .bind(key.sealed_value.clone())
            .bind(key.value_version)
            .bind(key.set_at.micros())
            .bind(key.created_at.micros())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let events: Vec<&AuditEvent> = events.iter().collect();
        grants::insert_numbered(&mut tx, &self.chain, grant, &events).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn replace_user_secret(&self, key: &UserSecret, event: &AuditEvent) -> StoreResult<bool> {
        let query = sqlx::query(
            "UPDATE user_secrets SET sealed_value = $1, value_version = $2, set_at = $3 \
             WHERE app_id = $4 AND id = $5 AND value_version = $6",
        )
        .bind(key.sealed_value.clone())
        .bind(key.value_version)
        .bind(key.set_at.micros())
        .bind(key.app_id.to_string())
        .bind(key.id.to_string())
        .bind(key.value_version - 1);
        self.execute_one_with_event(query, event).await
    }
}
