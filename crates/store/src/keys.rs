//! API keys.

use alter_core::audit::AuditEvent;
use alter_core::ids::{AgentId, AppId, KeyId};
use alter_core::keys::{ApiKey, KeyType};
use alter_core::ports::{KeyStore, StoreResult};
use alter_core::time::Timestamp;
use async_trait::async_trait;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::rows::{
    AnyQuery, execute, fetch_all, fetch_optional, flag, get, hash32, id, json, micros, opt_id,
    opt_json, opt_time, parsed, time, to_json,
};
use crate::{SqlStore, chain, db_error};

const COLUMNS: &str = "id, app_id, agent_id, key_type, legacy_format, name, prefix, lookup_hash, \
    sealed_signing_key, scopes, scope_version, cidr_allowlist, rate_limit_rpm, expires_at, \
    deprecated_at, grace_expires_at, revoked_at, parent_key_id, metadata, created_at, last_used_at, \
    agent_typed";

/// A statement about key `$1` of app `$2` at time `$3`.
fn key_query(sql: &str, key: KeyId, app: AppId, at: Timestamp) -> AnyQuery<'_> {
    sqlx::query(sql)
        .bind(key.to_string())
        .bind(app.to_string())
        .bind(at.micros())
}

/// The keys derived from key `$1` of app `$2`, transitively (only `dk` children, so a
/// rotation successor is not one of them), as the CTE `derived (id)`.
const DERIVED_FROM: &str = "WITH RECURSIVE derived (id) AS ( \
        SELECT id FROM api_keys WHERE parent_key_id = $1 AND app_id = $2 AND key_type = 'dk' \
        UNION ALL \
        SELECT k.id FROM api_keys k JOIN derived d ON k.parent_key_id = d.id \
        WHERE k.key_type = 'dk' \
    )";

fn api_key(row: &AnyRow) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: id(row, "id")?,
        app_id: id(row, "app_id")?,
        agent_id: opt_id(row, "agent_id")?,
        key_type: parsed(row, "key_type", KeyType::parse)?,
        agent_typed: flag(row, "agent_typed")?,
        legacy_format: flag(row, "legacy_format")?,
        name: get(row, "name")?,
        prefix: get(row, "prefix")?,
        lookup_hash: hash32(row, "lookup_hash")?,
        sealed_signing_key: get(row, "sealed_signing_key")?,
        scopes: json(row, "scopes")?,
        scope_version: get(row, "scope_version")?,
        cidr_allowlist: opt_json(row, "cidr_allowlist")?,
        rate_limit_rpm: get(row, "rate_limit_rpm")?,
        expires_at: opt_time(row, "expires_at")?,
        deprecated_at: opt_time(row, "deprecated_at")?,
        grace_expires_at: opt_time(row, "grace_expires_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
        parent_key_id: opt_id(row, "parent_key_id")?,
        metadata: opt_json(row, "metadata")?,
        created_at: time(row, "created_at")?,
        last_used_at: opt_time(row, "last_used_at")?,
    })
}

/// Inserts a key row (inside the caller's transaction).
pub(crate) async fn insert(conn: &mut AnyConnection, key: &ApiKey) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO api_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"
    ))
    .bind(key.id.to_string())
    .bind(key.app_id.to_string())
    .bind(key.agent_id.map(|a| a.to_string()))
    .bind(key.key_type.as_str())
    .bind(i64::from(key.legacy_format))
    .bind(&key.name)
    .bind(&key.prefix)
    .bind(key.lookup_hash.to_vec())
    .bind(key.sealed_signing_key.clone())
    .bind(to_json(&key.scopes)?)
    .bind(key.scope_version)
    .bind(key.cidr_allowlist.as_ref().map(to_json).transpose()?)
    .bind(key.rate_limit_rpm)
    .bind(micros(key.expires_at))
    .bind(micros(key.deprecated_at))
    .bind(micros(key.grace_expires_at))
    .bind(micros(key.revoked_at))
    .bind(key.parent_key_id.map(|k| k.to_string()))
    .bind(key.metadata.as_ref().map(to_json).transpose()?)
    .bind(key.created_at.micros())
    .bind(micros(key.last_used_at))
    .bind(i64::from(key.agent_typed))
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

#[async_trait]
impl KeyStore for SqlStore {
    async fn insert_key(&self, key: &ApiKey, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        insert(&mut tx, key).await?;
        chain::append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn insert_derived_key(
        &self,
        key: &ApiKey,
        at: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let Some(parent) = key.parent_key_id else {
            return Ok(false);
        };
        // A key without an end needs a parent without one.
        let until = key.expires_at.map_or(i64::MAX, |end| end.micros());
        let mut tx = self.write.begin().await.map_err(db_error)?;
        // A no-op write, so that checking the parent also takes its row lock (PostgreSQL) or
        // the database's write lock (SQLite) until commit: `revoke_key` writes the same row
        // first, so it either waits for this insert and then sees the new key, or wins and
        // makes this check fail.
        let usable_parent = key_query(
            "UPDATE api_keys SET revoked_at = revoked_at \
             WHERE id = $1 AND app_id = $2 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR (expires_at > $3 AND expires_at >= $4)) \
             AND (grace_expires_at IS NULL OR (grace_expires_at > $3 AND grace_expires_at >= $4))",
            parent,
            key.app_id,
            at,
        )
        .bind(until);
        if execute(&mut *tx, usable_parent).await? != 1 {
            return Ok(false);
        }
        insert(&mut tx, key).await?;
        chain::append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn find_key_by_hash(&self, lookup_hash: &[u8; 32]) -> StoreResult<Option<ApiKey>> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE lookup_hash = $1");
        let query = sqlx::query(&sql).bind(lookup_hash.to_vec());
        fetch_optional(&self.read, query, api_key).await
    }

    async fn get_key(&self, app: AppId, id: KeyId) -> StoreResult<Option<ApiKey>> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1 AND app_id = $2");
        let query = sqlx::query(&sql).bind(id.to_string()).bind(app.to_string());
        fetch_optional(&self.read, query, api_key).await
    }

    async fn list_keys(&self, app: AppId) -> StoreResult<Vec<ApiKey>> {
        let sql =
            format!("SELECT {COLUMNS} FROM api_keys WHERE app_id = $1 ORDER BY created_at, id");
        let query = sqlx::query(&sql).bind(app.to_string());
        fetch_all(&self.read, query, api_key).await
    }

    async fn revoke_key(
        &self,
        app: AppId,
        id: KeyId,
        at: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<Vec<KeyId>> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        // The key first, on its own: this waits for a derive holding the key's row, and the
        // cascade's statement below then starts after that derive committed, so it sees (and
        // revokes) the derived key (see `insert_derived_key`).
        let revoke = key_query(
            "UPDATE api_keys SET revoked_at = $3 \
             WHERE id = $1 AND app_id = $2 AND revoked_at IS NULL",
            id,
            app,
            at,
        );
        let revoked_key = execute(&mut *tx, revoke).await? == 1;
        let cascade = format!(
            "{DERIVED_FROM} UPDATE api_keys SET revoked_at = $3 \
             WHERE id IN (SELECT id FROM derived) AND revoked_at IS NULL RETURNING id"
        );
        let mut revoked: Vec<KeyId> =
            fetch_all(&mut *tx, key_query(&cascade, id, app, at), |row| {
                crate::rows::id(row, "id")
            })
            .await?;
        if revoked_key {
            revoked.insert(0, id);
            chain::append(&mut tx, &self.chain, event).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(revoked)
    }

    async fn rotate_key(
        &self,
        app: AppId,
        old: KeyId,
        at: Timestamp,
        grace_until: Timestamp,
        successor: &ApiKey,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let deprecate = key_query(
            "UPDATE api_keys SET deprecated_at = $3, grace_expires_at = $4 \
             WHERE id = $1 AND app_id = $2 AND revoked_at IS NULL AND grace_expires_at IS NULL",
            old,
            app,
            at,
        )
        .bind(grace_until.micros());
        if execute(&mut *tx, deprecate).await? != 1 {
            return Ok(false);
        }
        let end_derived = format!(
            "{DERIVED_FROM} UPDATE api_keys SET expires_at = $3 \
             WHERE id IN (SELECT id FROM derived) AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $3)"
        );
        execute(&mut *tx, key_query(&end_derived, old, app, grace_until)).await?;
        insert(&mut tx, successor).await?;
        chain::append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn set_key_deprecated(
        &self,
        app: AppId,
        id: KeyId,
        at: Option<Timestamp>,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let query = sqlx::query(
            "UPDATE api_keys SET deprecated_at = $1 WHERE app_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(micros(at))
        .bind(app.to_string())
        .bind(id.to_string());
        self.execute_with_event(query, event).await
    }

    async fn agent_keys(&self, app: AppId, agent: AgentId) -> StoreResult<Vec<ApiKey>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM api_keys WHERE app_id = $1 AND agent_id = $2 ORDER BY created_at, id"
        );
        let query = sqlx::query(&sql)
            .bind(app.to_string())
            .bind(agent.to_string());
        fetch_all(&self.read, query, api_key).await
    }

    async fn touch_key(
        &self,
        id: KeyId,
        at: Timestamp,
        stale_before: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 \
             WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(at.micros())
        .bind(id.to_string())
        .bind(stale_before.micros())
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        Ok(())
    }
}
