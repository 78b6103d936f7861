//! Identity providers and app users.

use alter_core::audit::AuditEvent;
use alter_core::identity::{AppUser, IdentityProvider, UserStatus};
use alter_core::ids::{AppId, IdpId, UserId};
use alter_core::ports::{IdentityStore, StoreResult};
use async_trait::async_trait;
use sqlx::any::AnyRow;

use crate::rows::{fetch_optional, get, id, json, micros, opt_time, parsed, time, to_json};
use crate::{SqlStore, db_error};

const IDP_COLUMNS: &str = "id, app_id, issuer, audiences, jwks, algorithms, claims, \
    leeway_seconds, created_at, updated_at";
const USER_COLUMNS: &str = "id, app_id, idp_id, subject, email, display_name, group_ids, status, \
    created_at, last_seen_at, groups_as_of, membership_floor";

fn idp(row: &AnyRow) -> StoreResult<IdentityProvider> {
    Ok(IdentityProvider {
        id: id(row, "id")?,
        app_id: id(row, "app_id")?,
        issuer: get(row, "issuer")?,
        audiences: json(row, "audiences")?,
        jwks: json(row, "jwks")?,
        algorithms: json(row, "algorithms")?,
        claims: json(row, "claims")?,
        leeway_seconds: get(row, "leeway_seconds")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn user(row: &AnyRow) -> StoreResult<AppUser> {
    Ok(AppUser {
        id: id(row, "id")?,
        app_id: id(row, "app_id")?,
        idp_id: id(row, "idp_id")?,
        subject: get(row, "subject")?,
        email: get(row, "email")?,
        display_name: get(row, "display_name")?,
        groups: json(row, "group_ids")?,
        status: parsed(row, "status", UserStatus::parse)?,
        created_at: time(row, "created_at")?,
        last_seen_at: time(row, "last_seen_at")?,
        groups_as_of: opt_time(row, "groups_as_of")?,
        membership_floor: opt_time(row, "membership_floor")?,
    })
}

#[async_trait]
impl IdentityStore for SqlStore {
    async fn get_idp(&self, app: AppId) -> StoreResult<Option<IdentityProvider>> {
        let sql = format!("SELECT {IDP_COLUMNS} FROM identity_providers WHERE app_id = $1");
        fetch_optional(&self.read, sqlx::query(&sql).bind(app.to_string()), idp).await
    }

    async fn put_idp(&self, value: &IdentityProvider, event: &AuditEvent) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO identity_providers ({IDP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (app_id) DO UPDATE SET issuer = $3, audiences = $4, jwks = $5, \
             algorithms = $6, claims = $7, leeway_seconds = $8, updated_at = $10"
        );
        let query = sqlx::query(&sql)
            .bind(value.id.to_string())
            .bind(value.app_id.to_string())
            .bind(&value.issuer)
            .bind(to_json(&value.audiences)?)
            .bind(to_json(&value.jwks)?)
            .bind(to_json(&value.algorithms)?)
            .bind(to_json(&value.claims)?)
            .bind(value.leeway_seconds)
            .bind(value.created_at.micros())
            .bind(value.updated_at.micros());
        self.execute_with_event(query, event).await
    }

    async fn find_user(
        &self,
        app: AppId,
        idp: IdpId,
        subject: &str,
    ) -> StoreResult<Option<AppUser>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM app_users WHERE app_id = $1 AND idp_id = $2 AND subject = $3"
        );
        let query = sqlx::query(&sql)
            .bind(app.to_string())
            .bind(idp.to_string())
            .bind(subject);
        fetch_optional(&self.read, query, user).await
    }

    async fn get_user(&self, app: AppId, id: UserId) -> StoreResult<Option<AppUser>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM app_users WHERE app_id = $1 AND id = $2");
        let query = sqlx::query(&sql).bind(app.to_string()).bind(id.to_string());
        fetch_optional(&self.read, query, user).await
    }

    async fn insert_user(&self, value: &AppUser, event: &AuditEvent) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO app_users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        let query = sqlx::query(&sql)
            .bind(value.id.to_string())
            .bind(value.app_id.to_string())
            .bind(value.idp_id.to_string())
            .bind(&value.subject)
            .bind(value.email.clone())
            .bind(value.display_name.clone())
            .bind(to_json(&value.groups)?)
            .bind(value.status.as_str())
            .bind(value.created_at.micros())
            .bind(value.last_seen_at.micros())
            .bind(micros(value.groups_as_of))
            .bind(micros(value.membership_floor));
        self.execute_with_event(query, event).await
    }

    async fn update_user(&self, value: &AppUser) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        // Never the status: only `set_user_status` writes it, so a sign-in that read the user
        // before a deactivation cannot write `active` back over it.
        sqlx::query(
            "UPDATE app_users SET email = $1, display_name = $2, last_seen_at = $3 \
             WHERE id = $4 AND app_id = $5",
        )
        .bind(value.email.clone())
        .bind(value.display_name.clone())
        .bind(value.last_seen_at.micros())
        .bind(value.id.to_string())
        .bind(value.app_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        // Undated membership is the oldest: it replaces only undated membership. Nothing
        // issued at or before an IdP event's membership change replaces it.
        sqlx::query(
            "UPDATE app_users SET group_ids = $1, groups_as_of = $2 \
             WHERE id = $3 AND app_id = $4 AND (groups_as_of IS NULL OR groups_as_of <= $2) \
             AND (membership_floor IS NULL OR membership_floor < $2)",
        )
        .bind(to_json(&value.groups)?)
        .bind(micros(value.groups_as_of))
        .bind(value.id.to_string())
        .bind(value.app_id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn idp_references(&self, app: AppId, idp: IdpId) -> StoreResult<Option<&'static str>> {
        let users: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM app_users WHERE app_id = $1 AND idp_id = $2 LIMIT 1) u",
        )
        .bind(app.to_string())
        .bind(idp.to_string())
        .fetch_one(&self.read)
        .await
        .map_err(db_error)?;
        if users > 0 {
            return Ok(Some("users"));
        }
        let grants: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM grants WHERE app_id = $1 AND idp_id = $2 \
             AND status = 'active' LIMIT 1) g",
        )
        .bind(app.to_string())
        .bind(idp.to_string())
        .fetch_one(&self.read)
        .await
        .map_err(db_error)?;
        if grants > 0 {
            return Ok(Some("group grants"));
        }
        // A pending approval keeps its own copy of the approvers it was held for.
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM approvals WHERE app_id = $1 \
             AND status = 'pending' LIMIT 1) a",
        )
        .bind(app.to_string())
        .fetch_one(&self.read)
        .await
        .map_err(db_error)?;
        Ok((pending > 0).then_some("pending approvals"))
    }
}
