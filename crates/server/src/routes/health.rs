//! `/healthz` (the process is up) and `/readyz` (the database answers and is migrated).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::state::AppState;

pub async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn ready(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.vault.ready().await.map_err(|e| {
        alter_core::Error::Storage(alter_core::ports::StoreError::Unavailable(e.to_string()))
    })?;
    Ok(Json(json!({ "status": "ready" })))
}
