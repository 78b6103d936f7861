//! Connect sessions (protocol part 2 §6.1–6.2).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{REDACTED, redact_option};

/// `grant_policy` of a Connect session: lengths only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionGrantPolicy {
    /// Longest lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl_seconds: Option<i64>,
    /// Lifetime given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl_seconds: Option<i64>,
}

/// `requested_grant`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedGrant {
    /// The new grant's label.
    pub label: String,
    /// Method and endpoint restrictions: the vault attaches them to the grant as rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restrictions: Option<GrantRestrictions>,
}

/// `requested_grant.restrictions`: what the new grant may be used for (proxy only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRestrictions {
    /// HTTP methods allowed (`GET`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_methods: Option<Vec<String>>,
    /// URL patterns allowed (`https://api.github.com/repos/**`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_endpoints: Option<Vec<String>>,
}

/// `POST /sdk/oauth/connect/session`. The first four keys are always sent (possibly `null`),
/// the others only when set, in the official client's order.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<bool>,
    /// Let the user pick another account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch_account: Option<bool>,
    /// Opt-out of user policy rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_user_policy_rules: Option<bool>,
    /// The grant's lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_policy: Option<SessionGrantPolicy>,
    /// Scopes per provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_scopes: Option<BTreeMap<String, Vec<String>>>,
    /// The new grant's label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_grant: Option<RequestedGrant>,
    /// The grant to repair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair_grant_id: Option<String>,
    /// The agent to delegate to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Whether the delegation is delegable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegable: Option<bool>,
    /// Scopes the delegation keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_constraint: Option<Vec<String>>,
    /// The user's IdP token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_token: Option<String>,
}

impl fmt::Debug for ConnectSessionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectSessionRequest")
            .field("allowed_providers", &self.allowed_providers)
            .field("return_url", &self.return_url)
            .field("allowed_origin", &self.allowed_origin)
            .field("metadata", &self.metadata)
            .field("direct", &self.direct)
            .field("switch_account", &self.switch_account)
            .field("allow_user_policy_rules", &self.allow_user_policy_rules)
            .field("grant_policy", &self.grant_policy)
            .field("required_scopes", &self.required_scopes)
            .field("requested_grant", &self.requested_grant)
            .field("repair_grant_id", &self.repair_grant_id)
            .field("agent", &self.agent)
            .field("delegable", &self.delegable)
            .field("scope_constraint", &self.scope_constraint)
            .field("user_token", &redact_option(self.user_token.as_ref()))
            .finish()
    }
}

/// `ConnectSession`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    #[serde(default)]
    pub scope_constraint_warnings: Vec<String>,
    /// It offers one provider.
    #[serde(default)]
    pub single_provider: bool,
    /// It skips the provider list.
    #[serde(default)]
    pub direct: bool,
}

/// `POST /sdk/oauth/connect/session/poll`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollRequest {
    /// The poll handle.
    pub session_token: String,
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

/// A completed poll's `grants[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConnectedGrantBody {
    /// The grant.
    pub grant_id: String,
    /// Its provider.
    pub provider_id: String,
    /// Scopes granted.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The account at the provider.
    #[serde(default)]
    pub account_identifier: Option<String>,
    /// The connection's API origin, when the provider has several.
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// `creation` or `reauth` (absent: `creation`).
    #[serde(default)]
    pub operation: Option<String>,
    /// The grant's lifetime.
    #[serde(default)]
    pub grant_policy: Option<ConnectedGrantPolicy>,
    /// The delegation made, when the session delegated to an agent.
    #[serde(default)]
    pub delegation: Option<ConnectDelegation>,
}

/// The `grant_policy` of a connected grant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConnectedGrantPolicy {
    /// When the grant ends.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// `developer` or `end_user`.
    #[serde(default)]
    pub created_by: Option<String>,
    /// When the grant was made.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// `ConnectDelegation`: the delegation a session made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConnectDelegation {
    /// The agent delegated to.
    pub agent_id: String,
    /// Its stored onward-sharing setting.
    pub delegable: bool,
    /// The provider's agent-sharing policy refused the user's choice.
    #[serde(default)]
    pub policy_refused: bool,
}

/// `ConnectFailedGrant`: a provider of a completed session that kept no grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConnectFailedGrant {
    /// The provider.
    pub provider_id: String,
    /// `not_selected`, `activation_failed`, or a usage-limit failure.
    pub reason: String,
    /// Operator-safe message.
    pub message: String,
}

/// A pending poll's `declined_providers[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeclinedProvider {
    /// The provider the user declined.
    pub provider_id: String,
    /// Why (e.g. `connect_denied`).
    pub error_code: String,
    /// When.
    #[serde(default)]
    pub declined_at: Option<String>,
}

/// An `error` poll's `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PollError {
    /// The code (`connect_denied`, `invalid_client`, …).
    pub error_code: String,
    /// What happened.
    pub error_message: String,
    /// When to retry, for `service_unavailable`.
    #[serde(default)]
    pub retry_after_seconds: Option<i64>,
}

/// `requested_grant` of a managed-secret session: only a label.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagedRequestedGrant {
    /// The new grant's label.
    pub label: String,
}

/// `POST /sdk/managed-secrets/connect/session` (protocol part 2 §6.5).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagedConnectSessionRequest {
    /// The managed secret's slug.
    #[serde(default)]
    pub provider: Option<String>,
    /// Deprecated: a template slug (a slug here).
    #[serde(default)]
    pub template_slug: Option<String>,
    /// The agent to share with (id or name).
    #[serde(default)]
    pub agent: Option<String>,
    /// Deprecated alias of `agent` (a UUID).
    #[serde(default)]
    pub delegated_agent_id: Option<String>,
    /// The user's IdP token.
    #[serde(default)]
    pub user_token: Option<String>,
    /// Lifetime of the agent's delegation.
    #[serde(default)]
    pub requested_ttl_seconds: Option<i64>,
    /// The embedding page's origin.
    #[serde(default)]
    pub allowed_origin: Option<String>,
    /// Where the browser returns.
    #[serde(default)]
    pub return_url: Option<String>,
    /// Opt-out of user policy rules.
    #[serde(default)]
    pub allow_user_policy_rules: Option<bool>,
    /// Whether the agent may share onward.
    #[serde(default)]
    pub delegable: Option<bool>,
    /// The new grant's label.
    #[serde(default)]
    pub requested_grant: Option<ManagedRequestedGrant>,
    /// The new grant's lifetime.
    #[serde(default)]
    pub grant_policy: Option<crate::grants::GrantPolicyBody>,
    /// Skip optional steps.
    #[serde(default)]
    pub direct: Option<bool>,
    /// The user's own key to replace.
    #[serde(default)]
    pub repair_grant_id: Option<String>,
}

impl fmt::Debug for ManagedConnectSessionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedConnectSessionRequest")
            .field("provider", &self.provider)
            .field("agent", &self.agent)
            .field("delegable", &self.delegable)
            .field("repair_grant_id", &self.repair_grant_id)
            .field("user_token", &redact_option(self.user_token.as_ref()))
            .finish_non_exhaustive()
    }
}

/// `ManagedSecretConnectSession`: `path` is always present (possibly `null`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ManagedConnectSessionResponse {
    /// The poll handle.
    pub session_token: String,
    /// The page to open.
    pub connect_url: String,
    /// Seconds it lives.
    pub expires_in: i64,
    /// When it ends.
    pub expires_at: String,
    /// `true` exactly when `delegable: true` was asked.
    pub delegable_requested: bool,
    /// `fast_path`, `key_entry`, `repair`, or `null` for an agent's own key.
    pub path: Option<String>,
    /// The grant the path uses.
    pub existing_grant_id: Option<String>,
    /// What the session stored.
    pub direct: bool,
    /// The slug asked for.
    pub secret_slug: Option<String>,
    /// The template slug (none: slugs name secrets here).
    pub template_slug: Option<String>,
    /// The agent shared with.
    pub agent_id: Option<String>,
}

impl fmt::Debug for ManagedConnectSessionResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedConnectSessionResponse")
            .field("session_token", &REDACTED)
            .field("connect_url", &REDACTED)
            .field("path", &self.path)
            .field("secret_slug", &self.secret_slug)
            .finish_non_exhaustive()
    }
}
