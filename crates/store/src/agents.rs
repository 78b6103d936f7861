//! Agents.

use alter_core::agents::{Agent, AgentStatus};
use alter_core::audit::AuditEvent;
use alter_core::ids::{AgentId, AppId, KeyId};
use alter_core::keys::ApiKey;
use alter_core::ports::{AgentStore, StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::rows::{
    AnyQuery, fetch_all, fetch_optional, get, id, json, micros, opt_json, opt_time, parsed, time,
    to_json,
};
use crate::{SqlStore, chain, db_error, grants, keys};

/// Every column: first those set once, then those [`write`] changes (bound by [`bind_changing`]).
const COLUMNS: &str = "id, app_id, name, agent_type, rate_limit_per_minute, created_at, last_used_at, \
    display_name, status, scopes, scopes_pending, scopes_applies_at, policy, metadata, version, \
    updated_at, revoked_at";

fn agent(row: &AnyRow) -> StoreResult<Agent> {
    Ok(Agent {
        id: id(row, "id")?,
        app_id: id(row, "app_id")?,
        name: get(row, "name")?,
        display_name: get(row, "display_name")?,
        agent_type: get(row, "agent_type")?,
        status: parsed(row, "status", AgentStatus::parse)?,
        allowlist: json(row, "scopes")?,
        allowlist_pending: opt_json(row, "scopes_pending")?,
        allowlist_applies_at: opt_time(row, "scopes_applies_at")?,
        approval: json(row, "policy")?,
        metadata: json(row, "metadata")?,
        rate_limit_per_minute: get(row, "rate_limit_per_minute")?,
        version: get(row, "version")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
        last_used_at: opt_time(row, "last_used_at")?,
    })
}

/// Binds the columns an agent's changes write, in [`COLUMNS`] order: `display_name` to
/// `revoked_at`.
fn bind_changing<'q>(query: AnyQuery<'q>, value: &Agent) -> StoreResult<AnyQuery<'q>> {
    Ok(query
        .bind(value.display_name.clone())
        .bind(value.status.as_str())
        .bind(to_json(&value.allowlist)?)
        .bind(value.allowlist_pending.as_ref().map(to_json).transpose()?)
        .bind(micros(value.allowlist_applies_at))
        .bind(to_json(&value.approval)?)
        .bind(to_json(&value.metadata)?)
        .bind(value.version)
        .bind(value.updated_at.micros())
        .bind(micros(value.revoked_at)))
}

/// Writes every changing column of an agent whose stored version is `expected`; false if it
/// changed.
async fn write(conn: &mut AnyConnection, value: &Agent, expected: i64) -> StoreResult<bool> {
    let query = sqlx::query(
        "UPDATE agents SET display_name = $1, status = $2, scopes = $3, scopes_pending = $4, \
         scopes_applies_at = $5, policy = $6, metadata = $7, version = $8, updated_at = $9, \
         revoked_at = $10 WHERE app_id = $11 AND id = $12 AND version = $13",
    );
    let updated = bind_changing(query, value)?
        .bind(value.app_id.to_string())
        .bind(value.id.to_string())
        .bind(expected)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?
        .rows_affected();
    Ok(updated == 1)
}

/// A unique violation of one statement, named for the caller.
fn conflict_as(name: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match db_error(e) {
        StoreError::Conflict(_) => StoreError::Conflict(name.into()),
        other => other,
    }
}

#[async_trait]
impl AgentStore for SqlStore {
    async fn insert_agent(
        &self,
        value: &Agent,
        key: &ApiKey,
        idempotency: Option<(&str, &[u8])>,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let sql = format!(
            "INSERT INTO agents ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        );
        let query = sqlx::query(&sql)
            .bind(value.id.to_string())
            .bind(value.app_id.to_string())
            .bind(&value.name)
            .bind(&value.agent_type)
            .bind(value.rate_limit_per_minute)
            .bind(value.created_at.micros())
            .bind(micros(value.last_used_at));
        bind_changing(query, value)?
            .execute(&mut *tx)
            .await
            .map_err(conflict_as("agent_name"))?;
        keys::insert(&mut tx, key).await?;
        if let Some((idem_key, fingerprint)) = idempotency {
            sqlx::query(
                "INSERT INTO agent_idempotency (app_id, idem_key, request_hash, agent_id, key_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(value.app_id.to_string())
            .bind(idem_key)
            .bind(fingerprint.to_vec())
            .bind(value.id.to_string())
            .bind(key.id.to_string())
            .bind(value.created_at.micros())
            .execute(&mut *tx)
            .await
            .map_err(conflict_as("idempotency_key"))?;
        }
        chain::append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn find_idempotent_agent(
        &self,
        app: AppId,
        key: &str,
    ) -> StoreResult<Option<(AgentId, KeyId, Vec<u8>)>> {
        let query = sqlx::query(
            "SELECT agent_id, key_id, request_hash FROM agent_idempotency WHERE app_id = $1 AND idem_key = $2",
        )
        .bind(app.to_string())
        .bind(key);
        fetch_optional(&self.read, query, |row| {
            Ok((
                id(row, "agent_id")?,
                id(row, "key_id")?,
                get(row, "request_hash")?,
            ))
        })
        .await
    }

    async fn list_agents(
        &self,
        app: AppId,
        include_revoked: bool,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<Agent>, i64)> {
        let live = if include_revoked {
            ""
        } else {
            " AND status <> 'revoked'"
        };
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM agents WHERE app_id = $1{live}"
        ))
        .bind(app.to_string())
        .fetch_one(&self.read)
        .await
        .map_err(db_error)?;
        let sql = format!(
            "SELECT {COLUMNS} FROM agents WHERE app_id = $1{live} ORDER BY created_at, id LIMIT $2 OFFSET $3"
        );
        let query = sqlx::query(&sql)
            .bind(app.to_string())
            .bind(limit)
            .bind(offset);
        Ok((fetch_all(&self.read, query, agent).await?, total))
    }

    async fn find_agent_by_name(&self, app: AppId, name: &str) -> StoreResult<Option<Agent>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM agents WHERE app_id = $1 AND name = $2 AND status <> 'revoked'"
        );
        let query = sqlx::query(&sql).bind(app.to_string()).bind(name);
        fetch_optional(&self.read, query, agent).await
    }

    async fn get_agent(&self, app: AppId, id: AgentId) -> StoreResult<Option<Agent>> {
        let sql = format!("SELECT {COLUMNS} FROM agents WHERE app_id = $1 AND id = $2");
        let query = sqlx::query(&sql).bind(app.to_string()).bind(id.to_string());
        fetch_optional(&self.read, query, agent).await
    }

    async fn update_agent(
        &self,
        value: &Agent,
        expected_version: i64,
        events: &[AuditEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        if !write(&mut tx, value, expected_version).await? {
            return Ok(false);
        }
        for event in events {
            chain::append(&mut tx, &self.chain, event).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn delete_agent(
        &self,
        value: &Agent,
        expected_version: i64,
        event: &AuditEvent,
        template: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let agent = ("agent_id", value.id.to_string());
        grants::lock_subtree(&mut tx, value.app_id, (agent.0, &agent.1)).await?;
        if !write(&mut tx, value, expected_version).await? {
            return Ok(false);
        }
        let at = value.revoked_at.unwrap_or(value.updated_at);
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE app_id = $2 AND agent_id = $3 AND revoked_at IS NULL")
            .bind(at.micros())
            .bind(value.app_id.to_string())
            .bind(value.id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        chain::append(&mut tx, &self.chain, event).await?;
        grants::revoke_subtree(
            &mut tx,
            &self.chain,
            value.app_id,
            (agent.0, &agent.1),
            at,
            Some("agent deleted"),
            template,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }
}
