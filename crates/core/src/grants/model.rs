//! What a grant is: its principal, state, lifetime, and how listings see grants.

use serde::{Deserialize, Serialize};

use crate::credentials::{CredentialRef, CredentialSummary};
use crate::ids::{AgentId, AppId, GrantId, IdpId, UserId};
use crate::time::Timestamp;

/// Largest page of a listing.
pub const MAX_PAGE: i64 = 1000;
/// Longest lifetime a grant may name: 100 years.
pub const MAX_TTL_SECONDS: i64 = 100 * 365 * 24 * 3600;

/// Who a grant belongs to, as a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalType {
    /// An end user.
    User,
    /// An IdP group.
    Group,
    /// The app itself.
    System,
    /// A named agent.
    Agent,
}

impl PrincipalType {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalType::User => "user",
            PrincipalType::Group => "group",
            PrincipalType::System => "system",
            PrincipalType::Agent => "agent",
        }
    }

    /// Parses the wire form.
    pub fn parse(text: &str) -> Option<PrincipalType> {
        match text {
            "user" => Some(PrincipalType::User),
            "group" => Some(PrincipalType::Group),
            "system" => Some(PrincipalType::System),
            "agent" => Some(PrincipalType::Agent),
            _ => None,
        }
    }
}

/// Who a grant belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An end user.
    User(UserId),
    /// Members of an IdP group, decided from the user's token each time.
    Group {
        /// The app's IdP.
        idp_id: IdpId,
        /// The group's id at the IdP.
        external_group_id: String,
    },
    /// The app itself.
    System,
    /// An agent (its own grant, or a delegation to it).
    Agent(AgentId),
}

impl Principal {
    /// The type.
    pub fn kind(&self) -> PrincipalType {
        match self {
            Principal::User(_) => PrincipalType::User,
            Principal::Group { .. } => PrincipalType::Group,
            Principal::System => PrincipalType::System,
            Principal::Agent(_) => PrincipalType::Agent,
        }
    }
}

/// Stored status; expiry is derived from the time (see [`Grant::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantStatus {
    /// Not revoked.
    Active,
    /// Revoked.
    Revoked,
}

impl GrantStatus {
    /// The stored form: `active` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Active => "active",
            GrantStatus::Revoked => "revoked",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<GrantStatus> {
        match text {
            "active" => Some(GrantStatus::Active),
            "revoked" => Some(GrantStatus::Revoked),
            _ => None,
        }
    }
}

/// What a grant is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantState {
    /// Usable.
    Active,
    /// Past its lifetime (even before anything flips it).
    Expired,
    /// Revoked.
    Revoked,
}

impl GrantState {
    /// `active`, `expired` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Active => "active",
            GrantState::Expired => "expired",
            GrantState::Revoked => "revoked",
        }
    }
}

/// Who set up a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreatedBy {
    /// The app, through an app key or the operator.
    Developer,
    /// The end user (delegations they consented to).
    EndUser,
}

impl CreatedBy {
    /// The wire and stored form: `developer` or `end_user`.
    pub fn as_str(self) -> &'static str {
        match self {
            CreatedBy::Developer => "developer",
            CreatedBy::EndUser => "end_user",
        }
    }

    /// Parses the wire and stored form.
    pub fn parse(text: &str) -> Option<CreatedBy> {
        match text {
            "developer" => Some(CreatedBy::Developer),
            "end_user" => Some(CreatedBy::EndUser),
            _ => None,
        }
    }
}

/// A grant's lifetime as its creator set it (`grant_policy` on the wire; not a policy: the
/// rule engine is the only thing called that).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GrantLifetime {
    /// Absolute end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Longest lifetime (extensions may not pass it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl_seconds: Option<i64>,
    /// Lifetime given at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl_seconds: Option<i64>,
    /// Free-form tags (minted siblings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// A grant as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// Id.
    pub id: GrantId,
    /// The app.
    pub app_id: AppId,
    /// Position among the app's grants (creation order, from 1).
    pub seq: i64,
    /// The credential.
    pub credential: CredentialRef,
    /// Who it belongs to.
    pub principal: Principal,
    /// Sibling label.
    pub label: Option<String>,
    /// Stored status.
    pub status: GrantStatus,
    /// Lifetime as set.
    pub lifetime: GrantLifetime,
    /// Effective end of the grant (from its lifetime, the credential's limits and parent).
    pub expires_at: Option<Timestamp>,
    /// The grant this one was delegated from.
    pub parent_grant_id: Option<GrantId>,
    /// Hops from the root (0 for roots).
    pub depth: i64,
    /// Whether the holder may delegate it onward.
    pub delegable: bool,
    /// The end user who consented to this delegation.
    pub delegated_by: Option<UserId>,
    /// Who set it up.
    pub created_by: CreatedBy,
    /// Creation time.
    pub created_at: Timestamp,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
    /// Why it was revoked.
    pub revoke_reason: Option<String>,
    /// Last use.
    pub last_used_at: Option<Timestamp>,
    /// A provider reported the grant's scopes too narrow.
    pub scope_mismatch: bool,
}

impl Grant {
    /// What the grant is at `now`.
    pub fn state(&self, now: Timestamp) -> GrantState {
        match (self.status, self.expires_at) {
            (GrantStatus::Revoked, _) => GrantState::Revoked,
            (GrantStatus::Active, Some(end)) if end <= now => GrantState::Expired,
            (GrantStatus::Active, _) => GrantState::Active,
        }
    }

    /// The agent a delegation or agent-owned grant is for.
    pub fn agent_id(&self) -> Option<AgentId> {
        match self.principal {
            Principal::Agent(agent) => Some(agent),
            _ => None,
        }
    }
}

/// A grant with what a listing shows of its credential.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantView {
    /// The grant.
    pub grant: Grant,
    /// Its credential (absent only if the credential's row is gone).
    pub credential: Option<CredentialSummary>,
    /// Agents holding an active delegation of it (listings by the app or a user only).
    pub delegated_agents: Vec<AgentId>,
}

/// Who is looking: decides which grants a listing holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// The app: every grant, delegations included.
    App,
    /// An end user: their grants, the grants of their groups, their delegations.
    User {
        /// The user.
        user: UserId,
        /// Their IdP.
        idp: IdpId,
        /// Their groups now.
        groups: Vec<String>,
    },
    /// An agent: what it owns and what was delegated to it (optionally by one user only).
    Agent {
        /// The agent.
        agent: AgentId,
        /// Only delegations this user consented to.
        delegated_by: Option<UserId>,
    },
}

/// Filters of a listing; all narrow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantFilter {
    /// Managed-secret slug (or OAuth provider id).
    pub provider: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub state: Option<GrantStateFilter>,
    /// Account identifier.
    pub account: Option<String>,
    /// Sibling label.
    pub label: Option<String>,
    /// Only these grant ids (instance-scoped keys).
    pub ids: Option<Vec<String>>,
    /// Only delegations (`true`) or only roots (`false`).
    pub delegations: Option<bool>,
    /// Leave out grants bound or delegated to a named agent (for keys confined away from
    /// them).
    pub hide_agent_grants: bool,
}

/// A status filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantStateFilter {
    /// Usable now.
    Active,
    /// Past their lifetime, not revoked.
    Expired,
    /// Revoked.
    Revoked,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantPage {
    /// The grants, in creation order.
    pub grants: Vec<GrantView>,
    /// How many match in all.
    pub total: i64,
    /// Page size asked for.
    pub limit: i64,
    /// Offset asked for.
    pub offset: i64,
}

impl GrantPage {
    /// True when more pages follow.
    pub fn has_more(&self) -> bool {
        self.offset + (self.grants.len() as i64) < self.total
    }
}

/// The principal of a new managed-secret grant, as the caller names it.
#[derive(Debug, Clone)]
pub enum NewPrincipal {
    /// The user a JWT identifies.
    User {
        /// The user's IdP JWT.
        user_token: String,
        /// Label (required).
        label: String,
    },
    /// An IdP group.
    Group {
        /// The group's id at the IdP.
        external_group_id: String,
        /// The app's IdP id.
        idp_id: String,
        /// Label (required).
        label: String,
    },
    /// The app itself.
    System {
        /// Optional label.
        label: Option<String>,
    },
}

/// A grant lifetime as the caller gives it.
#[derive(Debug, Clone, Default)]
pub struct LifetimeInput {
    /// ISO-8601 end, in the future.
    pub expires_at: Option<String>,
    /// Positive.
    pub max_ttl_seconds: Option<i64>,
    /// Positive, at most `max_ttl_seconds`.
    pub default_ttl_seconds: Option<i64>,
}

/// A listing request.
#[derive(Debug, Clone, Default)]
pub struct ListGrants {
    /// 1–1000.
    pub limit: i64,
    /// ≥ 0.
    pub offset: i64,
    /// Filters.
    pub filter: GrantFilter,
    /// Narrow to the user this JWT identifies.
    pub user_token: Option<String>,
}
