//! `/admin/v1/*`: the operator API (Bearer admin token). Apps and their keys.

use alter_core::apps::App;
use alter_core::ids::{AppId, KeyId};
use alter_core::keys::MintKey;
use alter_core::{Entity, Error};
use alter_proto::admin::{
    AppInfo, CreateAppRequest, ItemList, MintKeyRequest, RotateAppKeyRequest,
};
use alter_proto::keys::{ApiKeyInfo, MintedKey};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};

use super::keys::{key_info, minted};
use crate::auth::Operator;
use crate::error::ApiResult;
use crate::json::Json;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps", post(create_app).get(list_apps))
        .route("/apps/{app}", get(get_app))
        .route("/apps/{app}/keys", post(mint_key).get(list_keys))
        .route("/apps/{app}/keys/{key}", delete(revoke_key))
        .route("/apps/{app}/keys/{key}/rotate", post(rotate_key))
}

fn app_info(app: &App) -> AppInfo {
    AppInfo {
        id: app.id.to_string(),
        name: app.name.clone(),
        created_at: app.created_at.to_rfc3339(),
    }
}

/// An app id from the path; anything else is an unknown app.
fn app_id(text: &str) -> Result<AppId, Error> {
    AppId::parse_lenient(text).ok_or(Error::NotFound(Entity::App))
}

fn key_id(text: &str) -> Result<KeyId, Error> {
    KeyId::parse_lenient(text).ok_or(Error::NotFound(Entity::Key))
}

async fn create_app(
    State(state): State<AppState>,
    _: Operator,
    Json(body): Json<CreateAppRequest>,
) -> ApiResult<(StatusCode, axum::Json<AppInfo>)> {
    let app = state.vault.create_app(&body.name).await?;
    Ok((StatusCode::CREATED, axum::Json(app_info(&app))))
}

async fn list_apps(
    State(state): State<AppState>,
    _: Operator,
) -> ApiResult<axum::Json<ItemList<AppInfo>>> {
    let apps = state.vault.list_apps().await?;
    Ok(axum::Json(ItemList {
        items: apps.iter().map(app_info).collect(),
    }))
}

async fn get_app(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
) -> ApiResult<axum::Json<AppInfo>> {
    let app = state.vault.get_app(app_id(&app)?).await?;
    Ok(axum::Json(app_info(&app)))
}

async fn mint_key(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
    Json(body): Json<MintKeyRequest>,
) -> ApiResult<(StatusCode, axum::Json<MintedKey>)> {
    let new = state
        .vault
        .mint_app_key(
            app_id(&app)?,
            MintKey {
                name: body.name,
                key_type: body.key_type,
                scopes: body.scopes,
                cidr_allowlist: body.cidr_allowlist,
                expires_in: body.expires_in,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(minted(&new))))
}

async fn list_keys(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
) -> ApiResult<axum::Json<ItemList<ApiKeyInfo>>> {
    let keys = state.vault.list_app_keys(app_id(&app)?).await?;
    Ok(axum::Json(ItemList {
        items: keys.iter().map(key_info).collect(),
    }))
}

async fn revoke_key(
    State(state): State<AppState>,
    _: Operator,
    Path((app, key)): Path<(String, String)>,
) -> ApiResult<axum::Json<ApiKeyInfo>> {
    let key = state
        .vault
        .revoke_app_key(app_id(&app)?, key_id(&key)?)
        .await?;
    Ok(axum::Json(key_info(&key)))
}

async fn rotate_key(
    State(state): State<AppState>,
    _: Operator,
    Path((app, key)): Path<(String, String)>,
    Json(body): Json<RotateAppKeyRequest>,
) -> ApiResult<(StatusCode, axum::Json<MintedKey>)> {
    let new = state
        .vault
        .rotate_app_key(app_id(&app)?, key_id(&key)?, body.grace_seconds)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(minted(&new))))
}
