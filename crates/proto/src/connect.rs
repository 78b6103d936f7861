//! Connect sessions (protocol part 2 §6.1–6.2).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{REDACTED, redact_option};

/// `grant_policy` of a Connect session: lengths only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionGrantPolicy {
    /// Longest lifetime.
    #[serde(default)]
    pub max_ttl_seconds: Option<i64>,
    /// Lifetime given.
    #[serde(default)]
    pub default_ttl_seconds: Option<i64>,
}

/// `requested_grant`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedGrant {
    /// The new grant's label.
    pub label: String,
    /// Method and endpoint restrictions (kept for the policy layer).
    #[serde(default)]
    pub restrictions: Option<Value>,
}

/// `POST /sdk/oauth/connect/session`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectSessionRequest {
    /// Providers offered (null: all).
    #[serde(default)]
    pub allowed_providers: Option<Vec<String>>,
    /// Where the browser returns.
    #[serde(default)]
    pub return_url: Option<String>,
    /// The embedding page's origin.
    #[serde(default)]
    pub allowed_origin: Option<String>,
    /// `ip_address`, `user_agent`.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, Value>>,
    /// Skip the provider list.
    #[serde(default)]
    pub direct: Option<bool>,
    /// Let the user pick another account.
    #[serde(default)]
    pub switch_account: Option<bool>,
    /// Opt-out of user policy rules.
    #[serde(default)]
    pub allow_user_policy_rules: Option<bool>,
    /// The grant's lifetime.
    #[serde(default)]
    pub grant_policy: Option<SessionGrantPolicy>,
    /// Scopes per provider.
    #[serde(default)]
    pub required_scopes: Option<BTreeMap<String, Vec<String>>>,
    /// The new grant's label.
    #[serde(default)]
    pub requested_grant: Option<RequestedGrant>,
    /// The grant to repair.
    #[serde(default)]
    pub repair_grant_id: Option<String>,
    /// The agent to delegate to.
    #[serde(default)]
    pub agent: Option<String>,
    /// Whether the delegation is delegable.
    #[serde(default)]
    pub delegable: Option<bool>,
    /// Scopes the delegation keeps.
    #[serde(default)]
    pub scope_constraint: Option<Vec<String>>,
    /// The user's IdP token.
    #[serde(default)]
    pub user_token: Option<String>,
}

/// `ConnectSession`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectSessionResponse {
    /// The poll handle.
    pub session_token: String,
    /// The page to open.
    pub connect_url: String,
    /// Seconds it lives.
    pub expires_in: i64,
    /// When it ends.
    pub expires_at: String,
    /// Warnings about scope constraints.
    pub scope_constraint_warnings: Vec<String>,
    /// It offers one provider.
    pub single_provider: bool,
    /// It skips the provider list.
    pub direct: bool,
}

/// `POST /sdk/oauth/connect/session/poll`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollRequest {
    /// The poll handle.
    pub session_token: String,
}

impl fmt::Debug for ConnectSessionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectSessionRequest")
            .field("allowed_providers", &self.allowed_providers)
            .field("return_url", &self.return_url)
            .field("allowed_origin", &self.allowed_origin)
            .field("direct", &self.direct)
            .field("grant_policy", &self.grant_policy)
            .field("required_scopes", &self.required_scopes)
            .field("repair_grant_id", &self.repair_grant_id)
            .field("agent", &self.agent)
            .field("delegable", &self.delegable)
            .field("user_token", &redact_option(self.user_token.as_ref()))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ConnectSessionResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The poll token and the page's URL (which carries the page token) are bearer secrets.
        f.debug_struct("ConnectSessionResponse")
            .field("session_token", &REDACTED)
            .field("connect_url", &REDACTED)
            .field("expires_in", &self.expires_in)
            .field("expires_at", &self.expires_at)
            .field("single_provider", &self.single_provider)
            .field("direct", &self.direct)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for PollRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollRequest")
            .field("session_token", &REDACTED)
            .finish()
    }
}
