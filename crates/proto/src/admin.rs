//! The operator admin API under `/admin/v1/` (Bearer admin token). Alter's own protocol: the
//! official client never calls it; the `alter` CLI and the Rust SDK's admin client do.

use serde::{Deserialize, Serialize};

/// An app (tenant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppInfo {
    /// App UUID.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: String,
}

/// `POST /admin/v1/apps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAppRequest {
    /// Display name, 1–100 characters.
    pub name: String,
}

/// `POST /admin/v1/apps/{app}/keys`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintKeyRequest {
    /// Name; defaults to `key-YYYYMMDD-HHMMSS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `rk` (default), `ak` or `pk`. Derived keys come from `/sdk/keys/derive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    /// Scopes; defaults to every scope of the catalogue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Networks the key may be used from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_allowlist: Option<Vec<String>>,
    /// Lifetime in seconds; `None` = no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
}

/// `POST /admin/v1/apps/{app}/keys/{key}/rotate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateAppKeyRequest {
    /// Seconds the old key keeps working (0–30 days, default 0: it stops at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<i64>,
}

/// A list answer of the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemList<T> {
    /// The items.
    pub items: Vec<T>,
}
