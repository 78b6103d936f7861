//! The operator admin API under `/admin/v1/` (Bearer admin token). Alter's own protocol: the
//! official client never calls it; the `alter` CLI and the Rust SDK's admin client do.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::REDACTED;

/// An app (tenant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AppInfo {
    /// App UUID.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: String,
}

/// `POST /admin/v1/apps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAppRequest {
    /// Display name, 1–100 characters.
    pub name: String,
}

/// `POST /admin/v1/apps/{app}/keys`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateAppKeyRequest {
    /// Seconds the old key keeps working (0–30 days, default 0: it stops at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<i64>,
}

/// A list answer of the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "ItemListOf{T}")]
pub struct ItemList<T> {
    /// The items.
    pub items: Vec<T>,
}

/// `PUT /admin/v1/apps/{app}/idp`: the app's identity provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdpRequest {
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// JWKS URL (exclusive with `jwks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Inline JWKS document (exclusive with `jwks_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// Accepted algorithms (RS256, ES256, EdDSA); all by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<String>,
    /// Subject claim (default `sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_claim: Option<String>,
    /// Groups claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
    /// E-mail claim (default `email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_claim: Option<String>,
    /// Name claim (default `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_claim: Option<String>,
    /// Clock skew tolerance (0–300 s, default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leeway_seconds: Option<i64>,
}

/// An identity provider as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdpInfo {
    /// Id: the `idp_id` group principals name.
    pub id: String,
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// JWKS URL, if keys are fetched.
    pub jwks_url: Option<String>,
    /// True when the JWKS was given inline.
    pub jwks_inline: bool,
    /// Accepted algorithms.
    pub algorithms: Vec<String>,
    /// Subject claim.
    pub subject_claim: String,
    /// Groups claim.
    pub groups_claim: Option<String>,
    /// E-mail claim.
    pub email_claim: Option<String>,
    /// Name claim.
    pub name_claim: Option<String>,
    /// Clock skew tolerance.
    pub leeway_seconds: i64,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// `POST /admin/v1/apps/{app}/secrets`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSecretRequest {
    /// Display name; the slug derives from it.
    pub name: String,
    /// `bearer`, `header`, `basic`, `query` or `aws_sigv4`.
    #[serde(rename = "type")]
    pub secret_type: String,
    /// Header name (`header`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Query parameter name (`query`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// Injection rules (`multi`): each puts one field of the value into a header or query
    /// parameter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<InjectionRuleBody>,
    /// Hosts the secret may be sent to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// The value (write-only).
    pub value: String,
    /// Longest grant lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_grant_ttl_seconds: Option<i64>,
    /// Principal types grants may name (all but `agent` by default: an agent may bind the
    /// secret to itself only when `agent` is listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Whether grants may be delegated to agents (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<bool>,
    /// Longest delegation lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delegation_ttl_seconds: Option<i64>,
}

impl fmt::Debug for CreateSecretRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateSecretRequest")
            .field("name", &self.name)
            .field("secret_type", &self.secret_type)
            .field("value", &REDACTED)
            .finish_non_exhaustive()
    }
}

/// A managed secret as shown: never its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SecretInfo {
    /// Id (`managed_secret_id`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Slug.
    pub slug: String,
    /// Injection type.
    #[serde(rename = "type")]
    pub secret_type: String,
    /// Header name.
    pub header: Option<String>,
    /// Parameter name.
    pub param: Option<String>,
    /// Injection rules (`multi`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<InjectionRuleBody>,
    /// Allowed hosts (empty: any).
    pub allowed_hosts: Vec<String>,
    /// Longest grant lifetime.
    pub max_grant_ttl_seconds: Option<i64>,
    /// Principal types grants may name (empty: all but `agent`).
    pub principals: Vec<String>,
    /// Whether grants may be delegated.
    pub delegation: bool,
    /// Longest delegation lifetime.
    pub max_delegation_ttl_seconds: Option<i64>,
    /// Bumped by every rotation.
    pub value_version: i64,
    /// Creation time.
    pub created_at: String,
    /// Last rotation.
    pub rotated_at: Option<String>,
    /// Deletion time.
    pub deleted_at: Option<String>,
}

/// One injection rule of a `multi` secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InjectionRuleBody {
    /// `header` or `query`.
    pub target: String,
    /// Header or parameter name.
    pub name: String,
    /// The field of the (JSON object) value.
    pub field: String,
}

/// `POST /admin/v1/apps/{app}/secrets/{secret}/rotate`.
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretRequest {
    /// The new value.
    pub value: String,
}

impl fmt::Debug for RotateSecretRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotateSecretRequest")
            .field("value", &REDACTED)
            .finish()
    }
}

/// `PUT /admin/v1/apps/{app}/secrets/{secret}/hosts`: the secret's new allowed hosts (empty:
/// any host).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretHostsRequest {
    /// The hosts the secret may be sent to (`api.example.com`, `*.example.com`).
    pub allowed_hosts: Vec<String>,
}

/// `POST /admin/v1/apps/{app}/grants/{grant}/revoke`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Kept in the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST …/grants/{grant}/delegations` (operator and end user).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDelegationRequest {
    /// The agent.
    pub agent_id: String,
    /// Lifetime (at most the grant's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
    /// Whether the agent may delegate onward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegable: Option<bool>,
}

/// Query of `GET /admin/v1/apps/{app}/agents`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentListQuery {
    /// Include deleted agents (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_revoked: Option<bool>,
    /// Page size (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Offset (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

/// Query of `GET /admin/v1/apps/{app}/grants`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantListQuery {
    /// OAuth provider id or managed-secret slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// `active`, `expired` or `revoked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Sibling label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Page size (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Offset (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

/// The signed-in end user (`GET /user/v1/apps/{app}/me`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "AppUserInfo")]
pub struct UserInfo {
    /// Alter's id of the user.
    pub app_user_id: String,
    /// The IdP subject.
    pub subject: String,
    /// E-mail.
    pub email: Option<String>,
    /// Name.
    pub display_name: Option<String>,
    /// Groups of the presented token.
    pub groups: Vec<String>,
}

/// An agent a user may delegate to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentSummary {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Display name.
    pub display_name: Option<String>,
}

/// `GET /admin/v1/apps/{app}/audit`: filters (all narrow) and the cursor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Events about this grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// Events by or about this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Events concerning this end user (`app_user_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// This action (`credential.released`, `grant.revoked`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// `allow` or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// RFC 3339: at or after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// RFC 3339: before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Events of calls that carried this W3C trace id (`traceparent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// One audit event as listed: its place in the chain, its hash, and its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEventView {
    /// Position in the app's chain.
    pub seq: i64,
    /// Chain hash (hex).
    pub hash: String,
    /// The event (id, at, action, decision, reason, actor, target, principal, request,
    /// context, outcome, details).
    pub event: serde_json::Value,
}

/// A page of audit events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditPage {
    /// Oldest first.
    pub items: Vec<AuditEventView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A signed head of an app's audit chain (`GET /admin/v1/apps/{app}/audit/checkpoint`), to
/// keep outside the database and verify the log against later. Only the server holding the
/// master key can issue or check one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditCheckpointView {
    /// The app.
    pub app_id: String,
    /// Sequence number of the chain head.
    pub seq: i64,
    /// Hash of the event at `seq` (hex).
    pub hash: String,
    /// When it was taken (RFC 3339, microseconds).
    pub at: String,
    /// HMAC-SHA256 over the fields above under a key derived from the master key (hex).
    pub tag: String,
}

/// `POST /admin/v1/apps/{app}/audit/verify`: an empty body walks the chain; with a checkpoint
/// the chain must also still reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyAuditRequest {
    /// A checkpoint from `alter audit checkpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<AuditCheckpointView>,
}

/// `POST /admin/v1/apps/{app}/audit/verify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChainReportView {
    /// True when every event verifies and none is missing.
    pub ok: bool,
    /// Events checked before the first problem (or in all).
    pub events: i64,
    /// The first problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_problem: Option<ChainProblemView>,
    /// Position of the checkpoint the chain was checked against, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_seq: Option<i64>,
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChainProblemView {
    /// Position.
    pub seq: i64,
    /// The event there, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// What is wrong.
    pub problem: String,
}
