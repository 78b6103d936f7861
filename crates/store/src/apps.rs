//! Apps.

use alter_core::apps::App;
use alter_core::audit::{AuditEvent, GENESIS_HASH};
use alter_core::ids::AppId;
use alter_core::ports::{AppStore, StoreResult};
use async_trait::async_trait;
use sqlx::any::AnyRow;

use crate::rows::{fetch_all, fetch_optional, get, id, time};
use crate::{SqlStore, chain, db_error};

fn app(row: &AnyRow) -> StoreResult<App> {
    Ok(App {
        id: id(row, "id")?,
        name: get(row, "name")?,
        created_at: time(row, "created_at")?,
    })
}

#[async_trait]
impl AppStore for SqlStore {
    async fn insert_app(&self, app: &App, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        sqlx::query("INSERT INTO apps (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(app.id.to_string())
            .bind(&app.name)
            .bind(app.created_at.micros())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("INSERT INTO app_counters (app_id, grants) VALUES ($1, 0)")
            .bind(app.id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("INSERT INTO audit_heads (app_id, seq, hash) VALUES ($1, 0, $2)")
            .bind(app.id.to_string())
            .bind(GENESIS_HASH.to_vec())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        chain::append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn get_app(&self, id: AppId) -> StoreResult<Option<App>> {
        let query =
            sqlx::query("SELECT id, name, created_at FROM apps WHERE id = $1").bind(id.to_string());
        fetch_optional(&self.read, query, app).await
    }

    async fn list_apps(&self) -> StoreResult<Vec<App>> {
        let query = sqlx::query("SELECT id, name, created_at FROM apps ORDER BY created_at, id");
        fetch_all(&self.read, query, app).await
    }
}
