//! Managed secrets.

use alter_core::audit::AuditEvent;
use alter_core::ids::{AppId, SecretId};
use alter_core::ports::{SecretStore, StoreResult};
use alter_core::secrets::{ManagedSecret, SecretType};
use alter_core::time::Timestamp;
use async_trait::async_trait;
use sqlx::any::AnyRow;

use crate::rows::{
    fetch_all, fetch_optional, get, id, json, micros, opt_time, parsed, time, to_json,
};
use crate::{SqlStore, chain, db_error, grants};

pub(crate) const COLUMNS: &str = "id, app_id, name, slug, secret_type, injection, allowed_hosts, limits, \
    sealed_value, value_version, created_at, rotated_at, deleted_at";

pub(crate) fn secret(row: &AnyRow) -> StoreResult<ManagedSecret> {
    secret_named(row, "")
}

/// The prefix of a managed secret's columns where a read joins them to another row.
const JOINED: &str = "s_";

/// A managed secret's columns read from `s` (an alias of `managed_secrets`), each named
/// after [`JOINED`], for a read that joins a secret to another table's row.
pub(crate) fn joined_columns() -> String {
    COLUMNS
        .split(", ")
        .map(|column| format!("s.{column} AS {JOINED}{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The managed secret joined to `row` ([`joined_columns`]), if one was found.
pub(crate) fn joined_secret(row: &AnyRow) -> StoreResult<Option<ManagedSecret>> {
    if get::<Option<String>>(row, &format!("{JOINED}id"))?.is_none() {
        return Ok(None);
    }
    secret_named(row, JOINED).map(Some)
}

/// The managed secret in `row`, its columns' names starting with `prefix`.
fn secret_named(row: &AnyRow, prefix: &str) -> StoreResult<ManagedSecret> {
    let c = |column: &str| format!("{prefix}{column}");
    Ok(ManagedSecret {
        id: id(row, &c("id"))?,
        app_id: id(row, &c("app_id"))?,
        name: get(row, &c("name"))?,
        slug: get(row, &c("slug"))?,
        secret_type: parsed(row, &c("secret_type"), SecretType::parse)?,
        injection: json(row, &c("injection"))?,
        allowed_hosts: json(row, &c("allowed_hosts"))?,
        limits: json(row, &c("limits"))?,
        sealed_value: get(row, &c("sealed_value"))?,
        value_version: get(row, &c("value_version"))?,
        created_at: time(row, &c("created_at"))?,
        rotated_at: opt_time(row, &c("rotated_at"))?,
        deleted_at: opt_time(row, &c("deleted_at"))?,
    })
}

#[async_trait]
impl SecretStore for SqlStore {
    async fn slugs_with_prefix(&self, app: AppId, base: &str) -> StoreResult<Vec<String>> {
        // Slugs hold only a-z, 0-9 and '-', so LIKE has no wildcard to escape.
        let rows = sqlx::query(
            "SELECT slug FROM managed_secrets WHERE app_id = $1 AND (slug = $2 OR slug LIKE $3)",
        )
        .bind(app.to_string())
        .bind(base)
        .bind(format!("{base}-%"))
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?;
        rows.iter().map(|row| get(row, "slug")).collect()
    }

    async fn insert_secret(&self, value: &ManagedSecret, event: &AuditEvent) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO managed_secrets ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        );
        let query = sqlx::query(&sql)
            .bind(value.id.to_string())
            .bind(value.app_id.to_string())
            .bind(&value.name)
            .bind(&value.slug)
            .bind(value.secret_type.as_str())
            .bind(to_json(&value.injection)?)
            .bind(to_json(&value.allowed_hosts)?)
            .bind(to_json(&value.limits)?)
            .bind(value.sealed_value.clone())
            .bind(value.value_version)
            .bind(value.created_at.micros())
            .bind(micros(value.rotated_at))
            .bind(micros(value.deleted_at));
        self.execute_with_event(query, event).await
    }

    async fn list_secrets(&self, app: AppId) -> StoreResult<Vec<ManagedSecret>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM managed_secrets WHERE app_id = $1 AND deleted_at IS NULL ORDER BY created_at, id"
        );
        fetch_all(&self.read, sqlx::query(&sql).bind(app.to_string()), secret).await
    }

    async fn get_secret(&self, app: AppId, id: SecretId) -> StoreResult<Option<ManagedSecret>> {
        let sql = format!("SELECT {COLUMNS} FROM managed_secrets WHERE app_id = $1 AND id = $2");
        let query = sqlx::query(&sql).bind(app.to_string()).bind(id.to_string());
        fetch_optional(&self.read, query, secret).await
    }

    async fn get_secret_by_slug(
        &self,
        app: AppId,
        slug: &str,
    ) -> StoreResult<Option<ManagedSecret>> {
        let sql = format!("SELECT {COLUMNS} FROM managed_secrets WHERE app_id = $1 AND slug = $2");
        let query = sqlx::query(&sql).bind(app.to_string()).bind(slug);
        fetch_optional(&self.read, query, secret).await
    }

    async fn rotate_secret(&self, value: &ManagedSecret, event: &AuditEvent) -> StoreResult<bool> {
        let query = sqlx::query(
            "UPDATE managed_secrets SET sealed_value = $1, value_version = $2, rotated_at = $3 \
             WHERE app_id = $4 AND id = $5 AND deleted_at IS NULL AND value_version = $6",
        )
        .bind(value.sealed_value.clone())
        .bind(value.value_version)
        .bind(micros(value.rotated_at))
        .bind(value.app_id.to_string())
        .bind(value.id.to_string())
        .bind(value.value_version - 1);
        self.execute_one_with_event(query, event).await
    }

    async fn set_secret_hosts(
        &self,
        value: &ManagedSecret,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let changed = sqlx::query(
            "UPDATE managed_secrets SET allowed_hosts = $1 \
             WHERE app_id = $2 AND id = $3 AND deleted_at IS NULL",
        )
        .bind(to_json(&value.allowed_hosts)?)
        .bind(value.app_id.to_string())
        .bind(value.id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if changed != 1 {
            return Ok(false);
        }
        // A release decided under the old hosts is refused at its commit, which checks the
        // app's rules version: narrowing the hosts takes effect on every node at once.
        crate::policies::bump_rules_version(&mut tx, value.app_id).await?;
        chain::append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn delete_secret(
        &self,
        app: AppId,
        id: SecretId,
        at: Timestamp,
        event: &AuditEvent,
        template: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        sqlx::query("UPDATE managed_secrets SET deleted_at = $1 WHERE app_id = $2 AND id = $3 AND deleted_at IS NULL")
            .bind(at.micros())
            .bind(app.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        chain::append(&mut tx, &self.chain, event).await?;
        let query = sqlx::query(
            "UPDATE grants SET status = 'revoked', revoked_at = $1, revoke_reason = $2 \
             WHERE app_id = $3 AND secret_id = $4 AND status = 'active' RETURNING id",
        )
        .bind(at.micros())
        .bind("managed secret deleted")
        .bind(app.to_string())
        .bind(id.to_string());
        grants::record_revocations(&mut tx, &self.chain, query, template).await?;
        tx.commit().await.map_err(db_error)
    }
}
