//! `/admin/v1/operators`: operator accounts for the portal (`alter operator …`).

use alter_core::operators::{ADMIN_TOKEN_OPERATOR, Operator as OperatorAccount};
use alter_proto::admin::ItemList;
use alter_proto::operators::{AddOperatorRequest, OperatorInfo, SetOperatorPasswordRequest};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};

use crate::auth::Operator;
use crate::error::ApiResult;
use crate::json::Json;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/operators", get(list).post(add))
        .route("/operators/{username}", axum::routing::delete(remove))
        .route("/operators/{username}/password", put(set_password))
}

pub(crate) fn operator_info(operator: &OperatorAccount) -> OperatorInfo {
    OperatorInfo {
        id: operator.id.to_string(),
        username: operator.username.clone(),
        created_at: operator.created_at.to_rfc3339(),
        password_changed_at: operator.password_changed_at.to_rfc3339(),
    }
}

async fn add(
    _: Operator,
    State(state): State<AppState>,
    Json(body): Json<AddOperatorRequest>,
) -> ApiResult<(StatusCode, axum::Json<OperatorInfo>)> {
    let operator = state
        .vault
        .add_operator(&body.username, &body.password, ADMIN_TOKEN_OPERATOR)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(operator_info(&operator))))
}

async fn list(
    _: Operator,
    State(state): State<AppState>,
) -> ApiResult<axum::Json<ItemList<OperatorInfo>>> {
    let items = state.vault.list_operators().await?;
    Ok(axum::Json(ItemList {
        items: items.iter().map(operator_info).collect(),
    }))
}

async fn remove(
    _: Operator,
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    state
        .vault
        .remove_operator(&username, ADMIN_TOKEN_OPERATOR)
        .await?;
    Ok(axum::Json(
        serde_json::json!({ "username": username, "removed": true }),
    ))
}

async fn set_password(
    _: Operator,
    State(state): State<AppState>,
    Path(username): Path<String>,
    Json(body): Json<SetOperatorPasswordRequest>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    state
        .vault
        .set_operator_password(&username, &body.password, ADMIN_TOKEN_OPERATOR)
        .await?;
    Ok(axum::Json(
        serde_json::json!({ "username": username, "password_changed": true }),
    ))
}
