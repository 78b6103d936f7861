//! Agent DTOs: `/sdk/agents*` (protocol part 2 §8).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::redact_option;

/// `AgentInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentInfo {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `agent` or `service`.
    #[serde(rename = "type")]
    pub agent_type: String,
    /// `active`, `inactive` or `revoked`.
    pub status: String,
    /// Provider allowlist.
    #[serde(default)]
    pub scopes: Map<String, Value>,
    /// Staged narrowing.
    #[serde(default)]
    pub scopes_pending: Option<Map<String, Value>>,
    /// When the narrowing applies.
    #[serde(default)]
    pub scopes_applies_at: Option<String>,
    /// Approval settings (approvers redacted to a count).
    #[serde(default)]
    pub policy: Map<String, Value>,
    /// Metadata.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Rate limit.
    #[serde(default)]
    pub rate_limit_per_minute: Option<i64>,
    /// Version for optimistic concurrency.
    pub version: i64,
    /// Creation time.
    pub created_at: String,
    /// Last use.
    #[serde(default)]
    pub last_used_at: Option<String>,
    /// Always null.
    #[serde(default)]
    pub parent_agent_id: Option<String>,
    /// Always empty.
    #[serde(default)]
    pub stored_legacy_managed_secret_names: Vec<String>,
}

/// `AgentCreateResult`.
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentCreateResult {
    /// The agent.
    #[serde(flatten)]
    pub agent: AgentInfo,
    /// The first key's plaintext (null on an idempotent replay).
    pub api_key: Option<String>,
    /// The first key's id.
    pub key_id: String,
}

impl fmt::Debug for AgentCreateResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentCreateResult")
            .field("agent", &self.agent)
            .field("api_key", &redact_option(self.api_key.as_ref()))
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// `POST /sdk/agents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentRequest {
    /// Name.
    pub name: String,
    /// `agent` or `service`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub agent_type: Option<String>,
    /// Provider allowlist.
    pub scopes: Value,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Approval settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Value>,
}

/// `PATCH /sdk/agents/{id}`: every field optional; `display_name: null` clears it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgentRequest {
    /// Display name.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    #[schemars(with = "Option<String>")]
    pub display_name: Option<Option<String>>,
    /// Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Full allowlist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Value>,
    /// Approval settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Value>,
    /// `active` or `inactive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A page of agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentList {
    /// The page.
    pub items: Vec<AgentInfo>,
    /// Total.
    pub total: i64,
    /// Page size.
    pub limit: i64,
    /// Offset.
    pub offset: i64,
    /// More pages follow.
    pub has_more: bool,
}

/// `AgentKey`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentKeyInfo {
    /// Key id.
    pub key_id: String,
    /// Display prefix.
    pub key_prefix: String,
    /// `{agent}-{n}`.
    pub name: String,
    /// Creation time.
    pub created_at: String,
    /// Deprecation time.
    #[serde(default)]
    pub deprecated_at: Option<String>,
    /// Revocation time.
    #[serde(default)]
    pub revoked_at: Option<String>,
    /// Last use.
    #[serde(default)]
    pub last_used_at: Option<String>,
}

/// `AgentKeyMintResult`.
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentKeyMintResult {
    /// The key.
    #[serde(flatten)]
    pub key: AgentKeyInfo,
    /// Plaintext, shown once.
    pub api_key: Option<String>,
}

impl fmt::Debug for AgentKeyMintResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentKeyMintResult")
            .field("key", &self.key)
            .field("api_key", &redact_option(self.api_key.as_ref()))
            .finish()
    }
}

/// `{items: [AgentKey]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentKeyList {
    /// Oldest first.
    pub items: Vec<AgentKeyInfo>,
}

/// Distinguishes an absent field from an explicit `null`.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(
        value: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}
