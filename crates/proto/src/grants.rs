//! Grant DTOs: listing, managed-secret grant creation, mint, revoke and delegations (protocol
//! part 2 §1–§5). Fields the official client rejects as `null` are omitted instead.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{REDACTED, redact_option};

/// `POST /sdk/grants/list`. Its `Default` is the first page of 100, as an empty body is.
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListGrantsRequest {
    /// 1–1000 (default 100).
    #[serde(default = "default_limit")]
    pub limit: i64,
    /// ≥ 0.
    #[serde(default)]
    pub offset: i64,
    /// OAuth provider id or managed-secret slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// `active`, `expired` or `revoked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Account identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Sibling label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// An end user's JWT: narrows to that user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_token: Option<String>,
}

impl fmt::Debug for ListGrantsRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListGrantsRequest")
            .field("limit", &self.limit)
            .field("offset", &self.offset)
            .field("provider_id", &self.provider_id)
            .field("status", &self.status)
            .field("account", &self.account)
            .field("label", &self.label)
            .field("user_token", &redact_option(self.user_token.as_ref()))
            .finish()
    }
}

impl Default for ListGrantsRequest {
    fn default() -> Self {
        ListGrantsRequest {
            limit: default_limit(),
            offset: 0,
            provider_id: None,
            status: None,
            account: None,
            label: None,
            user_token: None,
        }
    }
}

fn default_limit() -> i64 {
    100
}

/// `UnifiedGrantListResult`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GrantList {
    /// The page.
    pub grants: Vec<GrantItem>,
    /// Matches in all.
    pub total: i64,
    /// Page size.
    pub limit: i64,
    /// Offset.
    pub offset: i64,
    /// True when more pages follow.
    pub has_more: bool,
}

/// One grant of a listing, discriminated on `grant_kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "grant_kind", rename_all = "snake_case")]
pub enum GrantItem {
    /// An OAuth grant.
    #[serde(rename = "oauth")]
    OAuth(OAuthGrantItem),
    /// A managed-secret grant.
    ManagedSecret(ManagedSecretGrantItem),
}

impl GrantItem {
    /// What the two kinds of item have in common.
    pub fn common(&self) -> &GrantItemCommon {
        match self {
            GrantItem::OAuth(item) => &item.common,
            GrantItem::ManagedSecret(item) => &item.common,
        }
    }
}

/// The keys every grant item carries, whatever its kind (flattened into each: on the wire they
/// are the item's own keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GrantItemCommon {
    /// Grant id (for an agent: its delegation's id).
    pub grant_id: String,
    /// Sibling label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
    /// Grant expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_expires_at: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    /// `user`, `system` or `agent`; `group` too for managed secrets.
    pub principal_type: String,
    /// `ownership`, or `oauth_delegation` / `ms_delegation` for a delegation.
    pub access_via: String,
    /// The grant delegated from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_grant_id: Option<String>,
    /// Hops from the root.
    #[serde(default)]
    pub depth: i64,
    /// May be delegated onward.
    #[serde(default)]
    pub delegable: bool,
}

/// `OAuthGrantItem`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OAuthGrantItem {
    /// The keys of every grant item.
    #[serde(flatten)]
    pub common: GrantItemCommon,
    /// Provider id.
    pub provider_id: String,
    /// Granted OAuth scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Account at the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_identifier: Option<String>,
    /// Provider token expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Agents the grant is delegated to.
    #[serde(default)]
    pub delegated_agent_ids: Vec<String>,
    /// A provider reported the scopes too narrow.
    #[serde(default)]
    pub scope_mismatch: bool,
    /// The provider refused the refresh token: the user must connect again.
    #[serde(default)]
    pub needs_reconnect: bool,
    /// The grant's lifetime and who set it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_policy: Option<Value>,
    /// When the delegation was made (delegations only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegated_at: Option<String>,
    /// The connection served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
}

/// The common keys read as the item's own (`item.grant_id`), as they are on the wire and on
/// the official client's reference page.
impl std::ops::Deref for OAuthGrantItem {
    type Target = GrantItemCommon;

    fn deref(&self) -> &GrantItemCommon {
        &self.common
    }
}

/// `ManagedSecretGrantItem`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ManagedSecretGrantItem {
    /// The keys of every grant item.
    #[serde(flatten)]
    pub common: GrantItemCommon,
    /// The managed secret's id.
    pub managed_secret_id: String,
    /// Its slug.
    pub managed_secret_slug: String,
    /// Its display name.
    pub managed_secret_name: String,
    /// The agent, for agent principals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The grant's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_policy: Option<Value>,
    /// When the delegation was made (delegations only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegated_at: Option<String>,
    /// The credential served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// `developer` (operator-provisioned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_kind: Option<String>,
    /// The app user, for user principals and user-consented delegations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_user_id: Option<String>,
    /// Group principals: the IdP and the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_group_id: Option<String>,
}

/// The common keys read as the item's own, as for [`OAuthGrantItem`].
impl std::ops::Deref for ManagedSecretGrantItem {
    type Target = GrantItemCommon;

    fn deref(&self) -> &GrantItemCommon {
        &self.common
    }
}

/// The `principal` of a managed-secret grant, discriminated on `type`: who the grant is for.
/// The Rust SDK takes it as `alter_sdk::Principal`.
///
/// ```
/// use alter_proto::grants::PrincipalBody;
/// let alice = PrincipalBody::user("eyJhbGciOi…", "alice-prod-stripe");
/// let system = PrincipalBody::system().with_label("nightly-sync");
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PrincipalBody {
    /// An end user, identified by their IdP JWT.
    User {
        /// The user's JWT.
        user_token: String,
        /// Label (1–255 characters).
        label: String,
    },
    /// An IdP group; membership is decided from the user's token each time the grant is used.
    Group {
        /// The group's id at the IdP.
        external_group_id: String,
        /// The app's identity-provider id.
        idp_id: String,
        /// Label (1–255 characters).
        label: String,
    },
    /// The app itself.
    System {
        /// Optional label.
        #[serde(default)]
        label: Option<String>,
    },
    /// `AgentPrincipal()`, as the official client has it: refused (422) on
    /// `POST /sdk/managed-secrets/{id}/grants`, which never takes the agent from the calling
    /// key; an agent binds a secret to itself with [`AgentSelfGrantRequest`] (the SDK's
    /// `Agent::create_managed_secret_grant`).
    Agent {
        /// Optional label.
        #[serde(default)]
        label: Option<String>,
    },
}

impl PrincipalBody {
    /// `UserPrincipal(user_token=…, label=…)`.
    pub fn user(user_token: impl Into<String>, label: impl Into<String>) -> PrincipalBody {
        PrincipalBody::User {
            user_token: user_token.into(),
            label: label.into(),
        }
    }

    /// `GroupPrincipal(external_group_id=…, idp_id=…, label=…)`.
    pub fn group(
        external_group_id: impl Into<String>,
        idp_id: impl Into<String>,
        label: impl Into<String>,
    ) -> PrincipalBody {
        PrincipalBody::Group {
            external_group_id: external_group_id.into(),
            idp_id: idp_id.into(),
            label: label.into(),
        }
    }

    /// `SystemPrincipal()`.
    pub fn system() -> PrincipalBody {
        PrincipalBody::System { label: None }
    }

    /// `AgentPrincipal()`: the calling agent.
    pub fn agent() -> PrincipalBody {
        PrincipalBody::Agent { label: None }
    }

    /// Sets the label of a system or agent principal (user and group principals take theirs
    /// at construction).
    pub fn with_label(self, label: impl Into<String>) -> PrincipalBody {
        match self {
            PrincipalBody::System { .. } => PrincipalBody::System {
                label: Some(label.into()),
            },
            PrincipalBody::Agent { .. } => PrincipalBody::Agent {
                label: Some(label.into()),
            },
            other => other,
        }
    }
}

impl fmt::Debug for PrincipalBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrincipalBody::User { label, .. } => f
                .debug_struct("User")
                .field("user_token", &REDACTED)
                .field("label", label)
                .finish(),
            PrincipalBody::Group {
                external_group_id,
                idp_id,
                label,
            } => f
                .debug_struct("Group")
                .field("external_group_id", external_group_id)
                .field("idp_id", idp_id)
                .field("label", label)
                .finish(),
            PrincipalBody::System { label } => {
                f.debug_struct("System").field("label", label).finish()
            }
            PrincipalBody::Agent { label } => {
                f.debug_struct("Agent").field("label", label).finish()
            }
        }
    }
}

/// `GrantPolicyInput`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantPolicyBody {
    /// ISO-8601 end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Longest lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl_seconds: Option<i64>,
    /// Lifetime given at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl_seconds: Option<i64>,
}

/// `POST /sdk/managed-secrets/{id}/grants`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGrantRequest {
    /// Who the grant is for.
    pub principal: PrincipalBody,
    /// Its policy.
    #[serde(default)]
    pub grant_policy: GrantPolicyBody,
    /// The credential to serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
}

/// `POST /sdk/agents/me/managed-secrets/{id}/grants`: the agent the request acts as binds a
/// managed secret to itself (the Rust SDK's `Agent::create_managed_secret_grant`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSelfGrantRequest {
    /// Label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Its policy.
    #[serde(default)]
    pub grant_policy: GrantPolicyBody,
}

/// `CreateGrantResult`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreateGrantResult {
    /// The new grant.
    pub grant_id: String,
    /// `user`, `group`, `system` or `agent`.
    pub principal_type: String,
    /// Label (always present, may be null).
    pub label: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// The credential served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
}

/// `POST /sdk/oauth/grants/{id}/revoke`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeGrantRequest {
    /// Kept in the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Narrows to that user's grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_token: Option<String>,
}

impl fmt::Debug for RevokeGrantRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevokeGrantRequest")
            .field("reason", &self.reason)
            .field("user_token", &redact_option(self.user_token.as_ref()))
            .finish()
    }
}

/// `RevokeGrantResult`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RevokeGrantResult {
    /// Always true.
    pub success: bool,
    /// What happened.
    pub message: String,
    /// The revoked grant.
    pub grant_id: String,
    /// When.
    pub revoked_at: String,
}

/// `POST /sdk/grants/{id}/mint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MintGrantRequest {
    /// The sibling's label.
    pub label: String,
    /// Tightening policy (`expires_at`, `max_ttl_seconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_policy: Option<Value>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_tags: Option<Vec<String>>,
}

/// Legacy `GrantInfo`: the answer of `mint_grant`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GrantInfo {
    /// The new grant.
    pub grant_id: String,
    /// Provider id or managed-secret slug.
    pub provider_id: String,
    /// OAuth scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
    /// Grant expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// `user`, `group`, `system` or `agent`.
    pub principal_type: String,
    /// Label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// Policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_policy: Option<Value>,
}

/// `POST /sdk/grants/{id}/delegate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegateRequest {
    /// The agent to delegate to.
    pub to_agent_id: String,
    /// Whether it may delegate onward (omitted: keep / leaf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegable: Option<bool>,
    /// OAuth scope narrowing (not for managed secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_constraint: Option<Vec<String>>,
    /// Lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
}

/// `DelegationResult`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DelegationResult {
    /// The delegation.
    pub grant_id: String,
    /// `oauth` or `managed_secret`.
    pub grant_kind: String,
    /// The grant delegated from.
    pub parent_grant_id: String,
    /// Hops from the root.
    pub depth: i64,
    /// May be delegated onward.
    pub delegable: bool,
    /// `active`.
    pub status: String,
    /// End.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    /// `wire` read into `T` and written back is `wire` again, key for key: no key lost, added
    /// or renamed, and `null` stays `null` while an absent key stays absent.
    fn round_trips<T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(wire: &str) -> T {
        let expected: Value = serde_json::from_str(wire).unwrap();
        let value: T = serde_json::from_value(expected.clone()).unwrap();
        assert_eq!(serde_json::to_value(&value).unwrap(), expected, "{wire}");
        let again: T = serde_json::from_value(serde_json::to_value(&value).unwrap()).unwrap();
        assert_eq!(again, value);
        value
    }

    #[test]
    fn oauth_items_keep_their_wire_form() {
        round_trips::<GrantItem>(
            r#"{"grant_kind":"oauth","grant_id":"g1","provider_id":"google",
                "scopes":["email"],"account_identifier":"a@example.com","status":"active",
                "expires_at":"2027-01-01T00:00:00Z","grant_expires_at":"2027-02-01T00:00:00Z",
                "created_at":"2026-12-01T00:00:00Z","last_used_at":"2026-12-02T00:00:00Z",
                "principal_type":"agent","access_via":"oauth_delegation",
                "delegated_agent_ids":["a1"],"label":"l","parent_grant_id":"g0","depth":1,
                "delegable":true,"scope_mismatch":true,"needs_reconnect":false,
                "grant_policy":{"created_by":"end_user"},"delegated_at":"2026-12-01T00:00:00Z",
                "credential_id":"c1"}"#,
        );
        round_trips::<GrantItem>(
            r#"{"grant_kind":"oauth","grant_id":"g1","provider_id":"","scopes":[],
                "status":"revoked","created_at":"2026-12-01T00:00:00Z","principal_type":"user",
                "access_via":"ownership","delegated_agent_ids":[],"depth":0,"delegable":false,
                "scope_mismatch":false,"needs_reconnect":true}"#,
        );
    }

    #[test]
    fn managed_secret_items_keep_their_wire_form() {
        round_trips::<GrantItem>(
            r#"{"grant_kind":"managed_secret","grant_id":"g1","managed_secret_id":"s1",
                "managed_secret_slug":"stripe","managed_secret_name":"Stripe","agent_id":"a1",
                "label":"l","status":"active","grant_policy":{"max_ttl_seconds":60},
                "grant_expires_at":"2027-02-01T00:00:00Z","created_at":"2026-12-01T00:00:00Z",
                "last_used_at":"2026-12-02T00:00:00Z","principal_type":"agent",
                "access_via":"ms_delegation","delegated_at":"2026-12-01T00:00:00Z",
                "parent_grant_id":"g0","depth":2,"delegable":true,"credential_id":"s1",
                "credential_kind":"developer","app_user_id":"u1","external_group_id":"eg"}"#,
        );
        round_trips::<GrantItem>(
            r#"{"grant_kind":"managed_secret","grant_id":"g1","managed_secret_id":"",
                "managed_secret_slug":"","managed_secret_name":"","status":"expired",
                "created_at":"2026-12-01T00:00:00Z","principal_type":"system",
                "access_via":"ownership","depth":0,"delegable":false}"#,
        );
    }

    #[test]
    fn absent_defaults_are_filled_in_and_written() {
        let item = round_trips::<GrantList>(
            r#"{"grants":[{"grant_kind":"oauth","grant_id":"g","provider_id":"p","scopes":[],
                "status":"active","created_at":"t","principal_type":"user",
                "access_via":"ownership","delegated_agent_ids":[],"depth":0,
                "delegable":false,"scope_mismatch":false,"needs_reconnect":false}],
                "total":1,"limit":100,"offset":0,"has_more":false}"#,
        );
        let sparse: GrantItem = serde_json::from_str(
            r#"{"grant_kind":"oauth","grant_id":"g","provider_id":"p","status":"active",
                "created_at":"t","principal_type":"user","access_via":"ownership"}"#,
        )
        .unwrap();
        assert_eq!(item.grants, vec![sparse]);
    }

    #[test]
    fn principals_keep_their_wire_form() {
        round_trips::<PrincipalBody>(r#"{"type":"user","user_token":"jwt","label":"alice"}"#);
        round_trips::<PrincipalBody>(
            r#"{"type":"group","external_group_id":"eng","idp_id":"i","label":"l"}"#,
        );
        round_trips::<PrincipalBody>(r#"{"type":"system","label":null}"#);
        round_trips::<PrincipalBody>(r#"{"type":"agent","label":"bot"}"#);
    }

    #[test]
    fn grant_policies_keep_their_wire_form() {
        round_trips::<GrantPolicyBody>("{}");
        round_trips::<GrantPolicyBody>(
            r#"{"expires_at":"2027-01-01T00:00:00Z","max_ttl_seconds":60,
                "default_ttl_seconds":30}"#,
        );
        round_trips::<CreateGrantRequest>(
            r#"{"principal":{"type":"system","label":null},"grant_policy":{}}"#,
        );
    }

    #[test]
    fn the_default_list_request_is_an_empty_body() {
        let empty: ListGrantsRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, ListGrantsRequest::default());
        assert_eq!(empty.limit, 100);
    }
}
