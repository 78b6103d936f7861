//! Outbound webhook endpoints: `/admin/v1/apps/{app}/webhooks[/{webhook}]`, their secret's
//! rotation and their delivery log with replay. Secrets appear in the answers of creation and
//! rotation only.

use alter_core::Error;
use alter_core::ids::{Id, WebhookId};
use alter_core::time::Timestamp;
use alter_core::webhooks::{
    Delivery, DeliveryStatus, NewWebhook, WebhookEndpoint, WebhookWithSecret,
};
use alter_crypto::ExposeSecret;
use alter_proto::admin::ItemList;
use alter_proto::webhooks::{
    CreateWebhookRequest, DeliveryListQuery, RotateWebhookSecretRequest, WebhookDeliveryInfo,
    WebhookInfo, WebhookWithSecretInfo,
};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

use super::admin::app_id;
use crate::auth::Operator;
use crate::error::{ApiError, ApiResult};
use crate::json::{Json, Query};
use crate::state::AppState;

/// The routes, relative to `/admin/v1`.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{app}/webhooks", post(create).get(list))
        .route("/apps/{app}/webhooks/{webhook}", get(show).delete(remove))
        .route("/apps/{app}/webhooks/{webhook}/rotate-secret", post(rotate))
        .route("/apps/{app}/webhooks/{webhook}/deliveries", get(deliveries))
        .route(
            "/apps/{app}/webhooks/{webhook}/deliveries/{event}/replay",
            post(replay),
        )
}

fn webhook_id(text: &str) -> Result<WebhookId, Error> {
    Id::parse_lenient(text).ok_or(Error::NotFound(alter_core::Entity::Webhook))
}

fn rfc3339(t: Option<Timestamp>) -> Option<String> {
    t.map(Timestamp::to_rfc3339)
}

fn info(e: &WebhookEndpoint) -> WebhookInfo {
    WebhookInfo {
        id: e.id.to_string(),
        app_id: e.app_id.to_string(),
        url: e.url.clone(),
        events: e.events.clone(),
        description: e.description.clone(),
        secret_version: e.secret_version,
        previous_secret_until: rfc3339(e.previous.as_ref().map(|p| p.until)),
        created_at: e.created_at.to_rfc3339(),
        rotated_at: rfc3339(e.rotated_at),
    }
}

fn with_secret(w: &WebhookWithSecret) -> WebhookWithSecretInfo {
    WebhookWithSecretInfo {
        webhook: info(&w.endpoint),
        secret: w.secret.expose_secret().to_owned(),
    }
}

fn delivery_info(d: &Delivery) -> WebhookDeliveryInfo {
    WebhookDeliveryInfo {
        event_id: d.event_id.clone(),
        event_type: d.event_type.clone(),
        seq: d.seq,
        status: d.status.as_str().to_owned(),
        attempts: d.attempts,
        next_attempt_at: (d.status == DeliveryStatus::Pending)
            .then(|| d.next_attempt_at.to_rfc3339()),
        last_attempt_at: rfc3339(d.last_attempt_at),
        last_status: d.last_status,
        last_error: d.last_error.clone(),
        created_at: d.created_at.to_rfc3339(),
        delivered_at: rfc3339(d.delivered_at),
    }
}

async fn create(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
    Json(body): Json<CreateWebhookRequest>,
) -> ApiResult<(StatusCode, axum::Json<WebhookWithSecretInfo>)> {
    let created = state
        .vault
        .create_webhook(
            app_id(&app)?,
            NewWebhook {
                url: body.url,
                events: body.events,
                description: body.description,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(with_secret(&created))))
}

async fn list(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
) -> ApiResult<axum::Json<ItemList<WebhookInfo>>> {
    let endpoints = state.vault.list_webhooks(app_id(&app)?).await?;
    Ok(axum::Json(ItemList {
        items: endpoints.iter().map(info).collect(),
    }))
}

async fn show(
    State(state): State<AppState>,
    _: Operator,
    Path((app, webhook)): Path<(String, String)>,
) -> ApiResult<axum::Json<WebhookInfo>> {
    let endpoint = state
        .vault
        .get_webhook(app_id(&app)?, webhook_id(&webhook)?)
        .await?;
    Ok(axum::Json(info(&endpoint)))
}

async fn remove(
    State(state): State<AppState>,
    _: Operator,
    Path((app, webhook)): Path<(String, String)>,
) -> ApiResult<axum::Json<WebhookInfo>> {
    let endpoint = state
        .vault
        .remove_webhook(app_id(&app)?, webhook_id(&webhook)?)
        .await?;
    Ok(axum::Json(info(&endpoint)))
}

async fn rotate(
    State(state): State<AppState>,
    _: Operator,
    Path((app, webhook)): Path<(String, String)>,
    Json(body): Json<RotateWebhookSecretRequest>,
) -> ApiResult<axum::Json<WebhookWithSecretInfo>> {
    let rotated = state
        .vault
        .rotate_webhook_secret(
            app_id(&app)?,
            webhook_id(&webhook)?,
            body.grace_seconds,
            body.expected_version,
        )
        .await?;
    Ok(axum::Json(with_secret(&rotated)))
}

async fn deliveries(
    State(state): State<AppState>,
    _: Operator,
    Path((app, webhook)): Path<(String, String)>,
    Query(query): Query<DeliveryListQuery>,
) -> ApiResult<axum::Json<ItemList<WebhookDeliveryInfo>>> {
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(text) => Some(DeliveryStatus::parse(text).ok_or_else(|| {
            ApiError::invalid("status must be one of pending, delivered, failed")
        })?),
    };
    let items = state
        .vault
        .webhook_deliveries(
            app_id(&app)?,
            webhook_id(&webhook)?,
            status,
            query.limit.unwrap_or_else(super::default_page_limit),
        )
        .await?;
    Ok(axum::Json(ItemList {
        items: items.iter().map(delivery_info).collect(),
    }))
}

async fn replay(
    State(state): State<AppState>,
    _: Operator,
    Path((app, webhook, event)): Path<(String, String, String)>,
) -> ApiResult<axum::Json<WebhookDeliveryInfo>> {
    let reset = state
        .vault
        .replay_webhook_delivery(app_id(&app)?, webhook_id(&webhook)?, &event)
        .await?;
    Ok(axum::Json(delivery_info(&reset)))
}
