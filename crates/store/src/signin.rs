//! End-user sign-in: the IdP's sign-in client, sign-in sessions and the identity-assertion
//! signing keys.

use alter_core::audit::AuditEvent;
use alter_core::ids::{AppId, AuthSessionId};
use alter_core::ports::{IdentitySigningKey, SignInStore, StoreResult};
use alter_core::signin::{AuthSession, AuthSessionStatus, SignInClient};
use alter_core::time::Timestamp;
use async_trait::async_trait;
use sqlx::any::AnyRow;

use crate::rows::{
    fetch_all, fetch_optional, get, hash32, id, json, opt_id, parsed, time, to_json,
};
use crate::{SqlStore, db_error};

const CLIENT_COLUMNS: &str = "client_id, sealed_client_secret, scopes, authorize_url, token_url, \
    version, updated_at, app_id, created_at";
const SESSION_COLUMNS: &str = "id, app_id, token_hash, state_hash, nonce, sealed_verifier, status, \
    sealed_user_token, user_id, error_code, error_message, expires_at, created_at, updated_at";

fn client(row: &AnyRow) -> StoreResult<SignInClient> {
    Ok(SignInClient {
        app_id: id(row, "app_id")?,
        client_id: get(row, "client_id")?,
        sealed_client_secret: get(row, "sealed_client_secret")?,
        scopes: json(row, "scopes")?,
        authorize_url: get(row, "authorize_url")?,
        token_url: get(row, "token_url")?,
        version: get(row, "version")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn session(row: &AnyRow) -> StoreResult<AuthSession> {
    Ok(AuthSession {
        id: id(row, "id")?,
        app_id: id(row, "app_id")?,
        token_hash: hash32(row, "token_hash")?,
        state_hash: hash32(row, "state_hash")?,
        nonce: get(row, "nonce")?,
        sealed_verifier: get(row, "sealed_verifier")?,
        status: parsed(row, "status", AuthSessionStatus::parse)?,
        sealed_user_token: get(row, "sealed_user_token")?,
        user_id: opt_id(row, "user_id")?,
        error_code: get(row, "error_code")?,
        error_message: get(row, "error_message")?,
        expires_at: time(row, "expires_at")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn signing_key(row: &AnyRow) -> StoreResult<IdentitySigningKey> {
    Ok(IdentitySigningKey {
        kid: get(row, "kid")?,
        sealed_private_key: get(row, "sealed_private_key")?,
        public_x: get(row, "public_x")?,
        public_y: get(row, "public_y")?,
        created_at: time(row, "created_at")?,
    })
}

#[async_trait]
impl SignInStore for SqlStore {
    async fn get_sign_in_client(&self, app: AppId) -> StoreResult<Option<SignInClient>> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM idp_sign_in_clients WHERE app_id = $1");
        fetch_optional(&self.read, sqlx::query(&sql).bind(app.to_string()), client).await
    }

    async fn put_sign_in_client(
        &self,
        value: &SignInClient,
        expected: Option<i64>,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let sql = match expected {
            None => format!(
                "INSERT INTO idp_sign_in_clients ({CLIENT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            Some(_) => "UPDATE idp_sign_in_clients SET client_id = $1, sealed_client_secret = $2, \
                 scopes = $3, authorize_url = $4, token_url = $5, version = $6, updated_at = $7 \
                 WHERE app_id = $8 AND version = $9"
                .to_owned(),
        };
        let query = sqlx::query(&sql)
            .bind(&value.client_id)
            .bind(value.sealed_client_secret.clone())
            .bind(to_json(&value.scopes)?)
            .bind(value.authorize_url.clone())
            .bind(value.token_url.clone())
            .bind(value.version)
            .bind(value.updated_at.micros())
            .bind(value.app_id.to_string());
        let query = match expected {
            None => query.bind(value.created_at.micros()),
            Some(version) => query.bind(version),
        };
        match self.execute_one_with_event(query, event).await {
            Err(alter_core::ports::StoreError::Conflict(_)) => Ok(false),
            other => other,
        }
    }

    async fn insert_auth_session(&self, value: &AuthSession) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO auth_sessions ({SESSION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        );
        sqlx::query(&sql)
            .bind(value.id.to_string())
            .bind(value.app_id.to_string())
            .bind(value.token_hash.to_vec())
            .bind(value.state_hash.to_vec())
            .bind(&value.nonce)
            .bind(value.sealed_verifier.clone())
            .bind(value.status.as_str())
            .bind(value.sealed_user_token.clone())
            .bind(value.user_id.map(|u| u.to_string()))
            .bind(value.error_code.clone())
            .bind(value.error_message.clone())
            .bind(value.expires_at.micros())
            .bind(value.created_at.micros())
            .bind(value.updated_at.micros())
            .execute(&self.write)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn find_auth_session(
        &self,
        app: AppId,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<AuthSession>> {
        // The writer: a poll must see the callback's commit from another connection at once.
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM auth_sessions WHERE app_id = $1 AND token_hash = $2"
        );
        let query = sqlx::query(&sql)
            .bind(app.to_string())
            .bind(token_hash.to_vec());
        fetch_optional(&self.write, query, session).await
    }

    async fn claim_auth_session(
        &self,
        state_hash: &[u8; 32],
        now: Timestamp,
    ) -> StoreResult<Option<AuthSession>> {
        let claimed = sqlx::query(
            "UPDATE auth_sessions SET status = 'exchanging', updated_at = $1 \
             WHERE state_hash = $2 AND status = 'pending' AND expires_at > $1",
        )
        .bind(now.micros())
        .bind(state_hash.to_vec())
        .execute(&self.write)
        .await
        .map_err(db_error)?
        .rows_affected();
        if claimed != 1 {
            return Ok(None);
        }
        let sql = format!("SELECT {SESSION_COLUMNS} FROM auth_sessions WHERE state_hash = $1");
        fetch_optional(
            &self.write,
            sqlx::query(&sql).bind(state_hash.to_vec()),
            session,
        )
        .await
    }

    async fn finish_auth_session(&self, value: &AuthSession) -> StoreResult<bool> {
        let changed = sqlx::query(
            "UPDATE auth_sessions SET status = $1, sealed_user_token = $2, user_id = $3, \
             error_code = $4, error_message = $5, updated_at = $6 \
             WHERE id = $7 AND status = 'exchanging'",
        )
        .bind(value.status.as_str())
        .bind(value.sealed_user_token.clone())
        .bind(value.user_id.map(|u| u.to_string()))
        .bind(value.error_code.clone())
        .bind(value.error_message.clone())
        .bind(value.updated_at.micros())
        .bind(value.id.to_string())
        .execute(&self.write)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn collect_auth_session(
        &self,
        id: AuthSessionId,
        at: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        let query = sqlx::query(
            "UPDATE auth_sessions SET status = 'collected', sealed_user_token = NULL, \
             updated_at = $1 WHERE id = $2 AND status = 'completed'",
        )
        .bind(at.micros())
        .bind(id.to_string());
        self.execute_one_with_event(query, event).await
    }

    async fn prune_auth_sessions(&self, before: Timestamp) -> StoreResult<u64> {
        Ok(
            sqlx::query("DELETE FROM auth_sessions WHERE expires_at < $1")
                .bind(before.micros())
                .execute(&self.write)
                .await
                .map_err(db_error)?
                .rows_affected(),
        )
    }

    async fn identity_signing_keys(&self) -> StoreResult<Vec<IdentitySigningKey>> {
        fetch_all(
            &self.write,
            sqlx::query(
                "SELECT kid, sealed_private_key, public_x, public_y, created_at \
                 FROM identity_signing_keys ORDER BY created_at, kid",
            ),
            signing_key,
        )
        .await
    }

    async fn insert_identity_signing_key(&self, key: &IdentitySigningKey) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_signing_keys (kid, sealed_private_key, public_x, public_y, \
             created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.kid)
        .bind(key.sealed_private_key.clone())
        .bind(&key.public_x)
        .bind(&key.public_y)
        .bind(key.created_at.micros())
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        Ok(())
    }
}
