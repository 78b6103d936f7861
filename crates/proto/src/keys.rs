//! Key lifecycle DTOs: `/sdk/keys/*` (protocol part 1 §7.1) and the operator key routes.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::REDACTED;

/// `APIKeyInfo`: an API key as listed, never its plaintext.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApiKeyInfo {
    /// Key UUID.
    pub id: String,
    /// Operator-chosen name.
    pub name: String,
    /// Display prefix (`alter_rk_abcdefgh`), not enough to use the key.
    pub key_prefix: String,
    /// `rk`, `ak`, `dk` or `pk`.
    pub key_type: String,
    /// Scopes the key holds.
    pub scopes: Vec<String>,
    /// Version of the scope catalogue the scopes were checked against.
    pub scope_version: i64,
    /// Networks the key may be used from; `None` = anywhere.
    pub cidr_allowlist: Option<Vec<String>>,
    /// Per-key rate limit, if set.
    pub rate_limit_rpm: Option<i64>,
    /// Rate limit in force (present together with `rate_limit_source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_rate_limit_rpm: Option<i64>,
    /// Where the effective limit comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_source: Option<String>,
    /// End of the key's lifetime.
    pub expires_at: Option<String>,
    /// When the key was deprecated or rotated.
    pub deprecated_at: Option<String>,
    /// When the key was revoked.
    pub revoked_at: Option<String>,
    /// The key a derived key was derived from.
    pub parent_key_id: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last authenticated use (updated lazily).
    pub last_used_at: Option<String>,
}

/// `MintedKey`: an [`ApiKeyInfo`] plus the plaintext, shown exactly once.
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MintedKey {
    /// The key as listed.
    #[serde(flatten)]
    pub info: ApiKeyInfo,
    /// The plaintext API key. Store it now: it is never shown again.
    pub api_key: String,
}

impl fmt::Debug for MintedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedKey")
            .field("info", &self.info)
            .field("api_key", &REDACTED)
            .finish()
    }
}

/// `POST /sdk/keys/derive`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeriveKeyRequest {
    /// Scopes of the derived key, a subset of the caller's.
    pub scopes: Vec<String>,
    /// Lifetime in seconds.
    pub expires_in: i64,
    /// Networks, each inside one of the caller's; inherited when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_allowlist: Option<Vec<String>>,
    /// Name; defaults to `derived-YYYYMMDD-HHMMSS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// `POST /sdk/keys/{id}/rotate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// Days the old key keeps working (0–30, default 7).
    #[serde(default = "default_overlap_days")]
    pub overlap_days: i64,
}

fn default_overlap_days() -> i64 {
    7
}
