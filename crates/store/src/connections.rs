//! OAuth connections and their refresh lease. Taking the lease and storing a refresh's result
//! are each one conditional `UPDATE`, so they hold across server nodes on either engine
//! without a lock held across the provider call.

use alter_core::audit::{AuditEvent, ChainKey};
use alter_core::connections::revocation::PendingRevocation;
use alter_core::connections::{Connection, ConnectionStatus, RefreshLease, RefreshedTokens};
use alter_core::grants::{Grant, Principal};
use alter_core::ids::{AppId, ConnectionId, GrantId};
use alter_core::ports::{ConnectionStore, StoreResult};
use alter_core::time::Timestamp;
use async_trait::async_trait;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::grants::{self, COLUMNS as GRANT_COLUMNS};
use crate::rows::{fetch_optional, get, id, json, micros, opt_time, parsed, time, to_json};
use crate::{SqlStore, chain, db_error};

const COLUMNS: &str = "id, app_id, provider_id, account_identifier, scopes, sealed_tokens, \
    token_version, access_expires_at, status, created_at, updated_at, tokens_at";

fn connection(row: &AnyRow) -> StoreResult<Connection> {
    Ok(Connection {
        id: id(row, "id")?,
        app_id: id(row, "app_id")?,
        provider_id: get(row, "provider_id")?,
        account_identifier: get(row, "account_identifier")?,
        scopes: json(row, "scopes")?,
        sealed_tokens: get(row, "sealed_tokens")?,
        token_version: get(row, "token_version")?,
        tokens_at: time(row, "tokens_at")?,
        access_expires_at: opt_time(row, "access_expires_at")?,
        status: parsed(row, "status", ConnectionStatus::parse)?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// Retires a connection no live root grant uses any more (none active and unexpired at `at`):
/// its tokens move to the upstream-revocation queue, the row keeps none, and `event` is
/// written. False, changing nothing, if a live grant still uses it or it is revoked already.
async fn retire(
    conn: &mut AnyConnection,
    chain: &ChainKey,
    app: AppId,
    connection: ConnectionId,
    at: Timestamp,
    event: &AuditEvent,
) -> StoreResult<bool> {
    // Moving the fence first locks the row and stops any refresh from storing newer tokens:
    // the queue gets the tokens that are current, then the row keeps none.
    let current = sqlx::query(
        "UPDATE oauth_connections SET refresh_fence = refresh_fence + 1, \
         refresh_lease_until = NULL WHERE app_id = $1 AND id = $2 AND status <> 'revoked' \
         AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.app_id = $1 AND g.connection_id = $2 \
         AND g.parent_grant_id IS NULL AND g.status = 'active' \
         AND (g.expires_at IS NULL OR g.expires_at > $3)) \
         RETURNING provider_id, sealed_tokens, token_version, tokens_at",
    )
    .bind(app.to_string())
    .bind(connection.to_string())
    .bind(at.micros())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    let Some(row) = current else {
        return Ok(false);
    };
    sqlx::query(
        "INSERT INTO oauth_revocations (connection_id, app_id, provider_id, sealed_tokens, \
         token_version, tokens_at, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)",
    )
    .bind(connection.to_string())
    .bind(app.to_string())
    .bind(get::<String>(&row, "provider_id")?)
    .bind(get::<Vec<u8>>(&row, "sealed_tokens")?)
    .bind(get::<i64>(&row, "token_version")?)
    .bind(get::<i64>(&row, "tokens_at")?)
    .bind(at.micros())
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    sqlx::query(
        "UPDATE oauth_connections SET status = 'revoked', updated_at = $1, sealed_tokens = $2 \
         WHERE app_id = $3 AND id = $4",
    )
    .bind(at.micros())
    .bind(Vec::<u8>::new())
    .bind(app.to_string())
    .bind(connection.to_string())
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    chain::append(&mut *conn, chain, event).await?;
    Ok(true)
}

/// Inserts a connection row.
async fn insert(conn: &mut AnyConnection, value: &Connection) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO oauth_connections ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    );
    sqlx::query(&sql)
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
        .bind(value.updated_at.micros())
        .bind(value.tokens_at.micros())
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

#[async_trait]
impl ConnectionStore for SqlStore {
    async fn insert_connection(&self, value: &Connection, event: &AuditEvent) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        insert(&mut tx, value).await?;
        chain::append(&mut tx, &self.chain, event).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn insert_connection_grant(
        &self,
        connection: &Connection,
        grant: &Grant,
        events: &[AuditEvent],
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        insert(&mut tx, connection).await?;
        let events: Vec<&AuditEvent> = events.iter().collect();
        grants::insert_numbered(&mut tx, &self.chain, grant, &events).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn reconnect(&self, value: &Connection, event: &AuditEvent) -> StoreResult<bool> {
        // The fence moves so a refresh in flight cannot store its tokens over these.
        let query = sqlx::query(
            "UPDATE oauth_connections SET sealed_tokens = $1, token_version = $2, tokens_at = $3, \
             access_expires_at = $4, scopes = $5, account_identifier = $6, status = 'active', \
             updated_at = $7, refresh_fence = refresh_fence + 1, refresh_lease_until = NULL \
             WHERE app_id = $8 AND id = $9 AND status <> 'revoked'",
        )
        .bind(value.sealed_tokens.clone())
        .bind(value.token_version)
        .bind(value.tokens_at.micros())
        .bind(micros(value.access_expires_at))
        .bind(to_json(&value.scopes)?)
        .bind(value.account_identifier.clone())
        .bind(value.updated_at.micros())
        .bind(value.app_id.to_string())
        .bind(value.id.to_string());
        self.execute_one_with_event(query, event).await
    }

    async fn find_connection_grant(
        &self,
        app: AppId,
        principal: &Principal,
        provider: &str,
        account: &str,
        now: Timestamp,
    ) -> StoreResult<Option<Grant>> {
        let (owner, user) = match principal {
            Principal::User(user) => (
                "g.principal_type = 'user' AND g.app_user_id = $5",
                Some(user.to_string()),
            ),
            Principal::System => ("g.principal_type = 'system'", None),
            // Connect sessions make user and app grants only.
            _ => return Ok(None),
        };
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM grants g JOIN oauth_connections c ON c.id = g.connection_id \
             WHERE g.app_id = $1 AND c.provider_id = $2 AND c.account_identifier = $3 \
             AND c.status <> 'revoked' AND g.parent_grant_id IS NULL AND g.label IS NULL \
             AND g.status = 'active' AND (g.expires_at IS NULL OR g.expires_at > $4) AND {owner} \
             ORDER BY g.seq DESC LIMIT 1"
        );
        let mut query = sqlx::query(&sql)
            .bind(app.to_string())
            .bind(provider.to_owned())
            .bind(account.to_owned())
            .bind(now.micros());
        if let Some(user) = user {
            query = query.bind(user);
        }
        fetch_optional(&self.read, query, grants::grant).await
    }

    async fn revoke_connection_grant(
        &self,
        app: AppId,
        root: GrantId,
        connection: ConnectionId,
        at: Timestamp,
        reason: Option<&str>,
        template: &AuditEvent,
        connection_event: &AuditEvent,
    ) -> StoreResult<(Vec<GrantId>, bool)> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let revoked = grants::revoke_subtree(
            &mut tx,
            &self.chain,
            app,
            ("id", &root.to_string()),
            at,
            reason,
            template,
        )
        .await?;
        let connection_revoked =
            retire(&mut tx, &self.chain, app, connection, at, connection_event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok((revoked, connection_revoked))
    }

    async fn unused_connections(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<(AppId, ConnectionId)>> {
        let rows = sqlx::query(
            "SELECT c.app_id, c.id FROM oauth_connections c WHERE c.status <> 'revoked' \
             AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.app_id = c.app_id \
             AND g.connection_id = c.id AND g.parent_grant_id IS NULL AND g.status = 'active' \
             AND (g.expires_at IS NULL OR g.expires_at > $1)) ORDER BY c.updated_at LIMIT $2",
        )
        .bind(now.micros())
        .bind(limit)
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| Ok((id(row, "app_id")?, id(row, "id")?)))
            .collect()
    }

    async fn retire_connection(
        &self,
        app: AppId,
        connection: ConnectionId,
        at: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        let retired = retire(&mut tx, &self.chain, app, connection, at, event).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(retired)
    }

    async fn claim_revocations(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: i64,
        only: Option<ConnectionId>,
    ) -> StoreResult<Vec<PendingRevocation>> {
        let only_clause = if only.is_some() {
            "AND connection_id = $4"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE oauth_revocations SET next_attempt_at = $1 WHERE connection_id IN ( \
             SELECT connection_id FROM oauth_revocations WHERE done_at IS NULL \
             AND next_attempt_at <= $2 {only_clause} ORDER BY next_attempt_at LIMIT $3) \
             AND done_at IS NULL AND next_attempt_at <= $2 \
             RETURNING connection_id, app_id, provider_id, sealed_tokens, token_version, \
             tokens_at, attempts"
        );
        let mut query = sqlx::query(&sql)
            .bind(until.micros())
            .bind(now.micros())
            .bind(limit);
        if let Some(id) = only {
            query = query.bind(id.to_string());
        }
        let rows = query.fetch_all(&self.write).await.map_err(db_error)?;
        rows.iter()
            .map(|row| {
                Ok(PendingRevocation {
                    connection_id: id(row, "connection_id")?,
                    app_id: id(row, "app_id")?,
                    provider_id: get(row, "provider_id")?,
                    sealed_tokens: get(row, "sealed_tokens")?,
                    token_version: get(row, "token_version")?,
                    tokens_at: time(row, "tokens_at")?,
                    attempts: get(row, "attempts")?,
                })
            })
            .collect()
    }

    async fn finish_revocation(
        &self,
        connection: ConnectionId,
        at: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let query = sqlx::query(
            "UPDATE oauth_revocations SET done_at = $1, sealed_tokens = $2, \
             attempts = attempts + 1 WHERE connection_id = $3 AND done_at IS NULL",
        )
        .bind(at.micros())
        .bind(Vec::<u8>::new())
        .bind(connection.to_string());
        self.execute_one_with_event(query, event).await.map(drop)
    }

    async fn retry_revocation(
        &self,
        connection: ConnectionId,
        attempts: i64,
        next_at: Timestamp,
        error: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE oauth_revocations SET attempts = $1, next_attempt_at = $2, last_error = $3 \
             WHERE connection_id = $4 AND done_at IS NULL",
        )
        .bind(attempts)
        .bind(next_at.micros())
        .bind(error.chars().take(500).collect::<String>())
        .bind(connection.to_string())
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        Ok(())
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
             refresh_lease_until = NULL, tokens_at = $5 WHERE app_id = $6 AND id = $7 \
             AND refresh_fence = $8 AND token_version = $9 AND status = 'active'",
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
}
