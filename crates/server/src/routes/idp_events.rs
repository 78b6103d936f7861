//! Inbound identity-provider lifecycle events: `POST /idp/v1/apps/{app}/events`, authenticated
//! only by its Standard Webhooks signature (docs/idp-events.md); and the operator's
//! `POST /admin/v1/apps/{app}/idp/events-secret`, which generates or rotates the secret, and
//! `DELETE /admin/v1/apps/{app}/idp/events-secret/previous`, which ends the previous one now.

use alter_core::Error;
use alter_core::idp_events::{Delivery, MAX_BODY_BYTES, SecretRotation};
use alter_crypto::ExposeSecret;
use alter_proto::idp_events::{
    IdpEventReceipt, IdpEventSecretInfo, IdpEventSecretState, RotateIdpEventSecretRequest,
};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::id;
use crate::auth::Operator;
use crate::error::ApiResult;
use crate::json::Json;
use crate::state::AppState;

/// `POST /idp/v1/apps/{app}/events`.
pub async fn receive(
    State(state): State<AppState>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<IdpEventReceipt>> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    if body.len() > MAX_BODY_BYTES {
        return Err(
            Error::Invalid(format!("the body is larger than {MAX_BODY_BYTES} bytes")).into(),
        );
    }
    let delivery = Delivery {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: &body,
    };
    let receipt = state.vault.receive_idp_event(&app, delivery).await?;
    Ok(axum::Json(IdpEventReceipt {
        status: receipt.as_str().to_owned(),
    }))
}

/// `POST /admin/v1/apps/{app}/idp/events-secret`: shown once.
pub async fn rotate_secret(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
    Json(body): Json<RotateIdpEventSecretRequest>,
) -> ApiResult<(StatusCode, axum::Json<IdpEventSecretInfo>)> {
    let rotation = SecretRotation {
        grace_seconds: body.grace_seconds,
        expected_version: body.expected_version,
    };
    let new = state
        .vault
        .rotate_idp_event_secret(id(&app)?, rotation)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(IdpEventSecretInfo {
            secret: new.secret.expose_secret().to_owned(),
            version: new.version,
            previous_valid_until: new.previous_valid_until.map(|t| t.to_rfc3339()),
        }),
    ))
}

/// `DELETE /admin/v1/apps/{app}/idp/events-secret/previous`: only the current secret verifies
/// from now on.
pub async fn end_previous_secret(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
) -> ApiResult<axum::Json<IdpEventSecretState>> {
    let ended = state.vault.end_previous_idp_event_secret(id(&app)?).await?;
    Ok(axum::Json(IdpEventSecretState {
        version: ended.version,
        previous_valid_until: ended.previous_valid_until.map(|t| t.to_rfc3339()),
    }))
}
