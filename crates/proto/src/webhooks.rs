//! Outbound webhook endpoints on the operator admin API (`/admin/v1/apps/{app}/webhooks/*`).
//! Alter's own protocol: the official client never calls it.

use serde::{Deserialize, Serialize};

/// `POST /admin/v1/apps/{app}/webhooks`: a new endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// `https://…` (`http://` only to loopback, or where the operator allows it).
    pub url: String,
    /// Event types (`connection.created`, `grant.revoked`, …) or `["*"]` for every audit event.
    pub events: Vec<String>,
    /// A note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `POST /admin/v1/apps/{app}/webhooks/{webhook}/rotate-secret`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateWebhookSecretRequest {
    /// How long deliveries also carry the old secret's signature (default 86400; 0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<i64>,
    /// The secret version you last saw: refused with 409 `secret_version_conflict` if the
    /// secret changed since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
}

/// An endpoint, as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookInfo {
    /// Its id.
    pub id: String,
    /// Its app.
    pub app_id: String,
    /// Where events are posted.
    pub url: String,
    /// Selected event types, or `["*"]`.
    pub events: Vec<String>,
    /// The operator's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Bumped by every secret rotation.
    pub secret_version: i64,
    /// Until when deliveries also carry the previous secret's signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_until: Option<String>,
    /// When it was added (RFC 3339).
    pub created_at: String,
    /// When its secret was last rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<String>,
}

/// An endpoint with its signing secret: the answer of a creation or a rotation, the only time
/// the secret is shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookWithSecretInfo {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: WebhookInfo,
    /// `whsec_…`: the base64 after the prefix is the HMAC-SHA256 key. Shown once.
    pub secret: String,
}

/// `GET /admin/v1/apps/{app}/webhooks/{webhook}/deliveries`: filters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryListQuery {
    /// Only this status: `pending`, `delivered` or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// At most this many (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookDeliveryInfo {
    /// The audit event's id, sent as `webhook-id`.
    pub event_id: String,
    /// The event's type (its audit action).
    pub event_type: String,
    /// The event's place in the app's audit chain.
    pub seq: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (pending deliveries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// When the last attempt was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    /// The HTTP status of the last answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<i64>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the event was picked up.
    pub created_at: String,
    /// When the receiver accepted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
}

impl std::fmt::Debug for WebhookWithSecretInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookWithSecretInfo")
            .field("webhook", &self.webhook)
            .field("secret", &crate::REDACTED)
            .finish()
    }
}
