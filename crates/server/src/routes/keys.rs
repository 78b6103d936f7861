//! `/sdk/keys/*`: derive, rotate and revoke keys (protocol part 1 §7.1).

use alter_core::keys::{ApiKey, DeriveKey, NewKey, Overlap};
use alter_core::subject::Subject;
use alter_core::time::Timestamp;
use alter_crypto::ExposeSecret;
use alter_proto::keys::{ApiKeyInfo, DeriveKeyRequest, MintedKey, RotateKeyRequest};
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::agents::ForceQuery;
use crate::auth::{Authed, need};
use crate::error::ApiResult;
use crate::json::{Json, Query};
use crate::state::AppState;

/// The wire form of a stored key.
pub fn key_info(key: &ApiKey) -> ApiKeyInfo {
    let time = |t: Option<Timestamp>| t.map(|t| t.to_rfc3339());
    ApiKeyInfo {
        id: key.id.to_string(),
        name: key.name.clone(),
        key_prefix: key.prefix.clone(),
        key_type: key.key_type.as_str().to_owned(),
        scopes: key.scopes.to_strings(),
        scope_version: key.scope_version,
        cidr_allowlist: key
            .cidr_allowlist
            .as_ref()
            .map(|nets| nets.iter().map(ToString::to_string).collect()),
        rate_limit_rpm: key.rate_limit_rpm,
        effective_rate_limit_rpm: None,
        rate_limit_source: None,
        expires_at: time(key.expires_at),
        deprecated_at: time(key.deprecated_at),
        revoked_at: time(key.revoked_at),
        parent_key_id: key.parent_key_id.map(|k| k.to_string()),
        created_at: key.created_at.to_rfc3339(),
        last_used_at: time(key.last_used_at),
    }
}

/// The wire form of a new key, with its plaintext.
pub fn minted(new: &NewKey) -> MintedKey {
    MintedKey {
        info: key_info(&new.key),
        api_key: new.plaintext.expose_secret().to_owned(),
    }
}

pub async fn derive(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::KeysDerive>,
    Json(body): Json<DeriveKeyRequest>,
) -> ApiResult<(StatusCode, axum::Json<MintedKey>)> {
    let new = state
        .vault
        .derive_key(
            &caller,
            DeriveKey {
                scopes: body.scopes,
                expires_in: body.expires_in,
                cidr_allowlist: body.cidr_allowlist,
                name: body.name,
                metadata: body.metadata,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(minted(&new))))
}

pub async fn rotate(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::KeysAdmin>,
    Path(id): Path<String>,
    Json(body): Json<RotateKeyRequest>,
) -> ApiResult<(StatusCode, axum::Json<MintedKey>)> {
    let new = state
        .vault
        .rotate_key(
            &Subject::Caller(&caller),
            super::id(&id)?,
            Overlap::Days(body.overlap_days),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(minted(&new))))
}

pub async fn revoke(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::KeysAdmin>,
    Path(id): Path<String>,
    Query(query): Query<ForceQuery>,
) -> ApiResult<axum::Json<ApiKeyInfo>> {
    let key = state
        .vault
        .revoke_key(
            &Subject::Caller(&caller),
            super::id(&id)?,
            query.force.unwrap_or(false),
        )
        .await?;
    Ok(axum::Json(key_info(&key)))
}
