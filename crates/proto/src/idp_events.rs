//! Inbound identity-provider lifecycle events (`POST /idp/v1/apps/{app}/events`) and their
//! secret (`POST /admin/v1/apps/{app}/idp/events-secret`, and
//! `DELETE /admin/v1/apps/{app}/idp/events-secret/previous`).

use serde::{Deserialize, Serialize};

/// A newly generated (or rotated) event secret: shown once.
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdpEventSecretInfo {
    /// `whsec_` and the base64 of 32 random bytes (Standard Webhooks); never shown again.
    pub secret: String,
    /// Its version (1, then one more per rotation).
    pub version: i64,
    /// After a rotation, until when (RFC 3339) the previous secret still verifies deliveries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<String>,
}

impl std::fmt::Debug for IdpEventSecretInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpEventSecretInfo")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// `POST /admin/v1/apps/{app}/idp/events-secret` (an empty body reads as `{}`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateIdpEventSecretRequest {
    /// How long the previous secret keeps verifying deliveries (default 86400, at most
    /// 604800; 0 ends it at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<i64>,
    /// The version you last saw (0 before the first secret): refused with 409
    /// `secret_version_conflict` if the secret changed since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
}

/// The event secret's state (never the secret): the answer of
/// `DELETE /admin/v1/apps/{app}/idp/events-secret/previous`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdpEventSecretState {
    /// The current version.
    pub version: i64,
    /// Until when (RFC 3339) the previous secret still verifies deliveries, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<String>,
}

/// An inbound event (documentation of the body; the server parses it strictly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdpEvent {
    /// `user.deactivated`, `user.reactivated`, `group.member_removed` or `group.member_added`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened at the IdP (RFC 3339); the delivery's `webhook-timestamp` if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Whom it is about.
    pub data: IdpEventData,
}

/// Whom an event is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdpEventData {
    /// The user's subject at the app's IdP (the value of its subject claim).
    pub subject: String,
    /// The group id (as the groups claim names it), for group events only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdpEventReceipt {
    /// `applied`; `ignored` (older than what the vault knows, or about no one it knows);
    /// `duplicate` (this `webhook-id` was applied before).
    pub status: String,
}
