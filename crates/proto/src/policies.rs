//! Policy rules on the operator admin API (`/admin/v1/apps/{app}/policies/*`) and the what-if
//! replay. Alter's own protocol: the official client never calls it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a rule is attached to: `{"type": "app"}`, or `{"type": "provider" | "agent" |
/// "grant", "id": …}` (a provider's id or a managed secret's slug, an agent id, a grant id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleTargetBody {
    /// `app`, `provider`, `agent` or `grant`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The provider, agent or grant (absent for `app`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// `POST /admin/v1/apps/{app}/policies/rules`: a new rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRuleRequest {
    /// What it is attached to.
    pub target: RuleTargetBody,
    /// The kind (`ip_allowlist`, `time_window`, `rate_limit`, …).
    pub kind: String,
    /// `deny` or `hold` (default: `hold` for `require_approval`, `deny` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// `enforce` (default) or `shadow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The kind's parameters.
    pub body: Value,
    /// A note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `PATCH /admin/v1/apps/{app}/policies/rules/{rule}`: what changes (absent: kept). The kind
/// never changes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRuleRequest {
    /// A new target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<RuleTargetBody>,
    /// `deny` or `hold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// `enforce` or `shadow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// New parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// A new note; an empty one clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The version read: the change is refused (409) if the rule moved since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
}

/// A rule as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RuleInfo {
    /// Its id.
    pub id: String,
    /// The app.
    pub app_id: String,
    /// Its version (from 1; every change adds one).
    pub version: i64,
    /// What it is attached to.
    pub target: RuleTargetBody,
    /// The kind.
    pub kind: String,
    /// `deny` or `hold`.
    pub effect: String,
    /// `enforce` or `shadow`.
    pub mode: String,
    /// The parameters, as the engine normalised them.
    pub body: Value,
    /// The note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When this version was saved (RFC 3339).
    pub updated_at: String,
}

/// A draft rule of a what-if: a rule as created, and optionally the id of the stored rule it
/// stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftRuleBody {
    /// The stored rule it stands for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What it is attached to.
    pub target: RuleTargetBody,
    /// The kind.
    pub kind: String,
    /// `deny` or `hold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// `enforce` or `shadow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The parameters.
    pub body: Value,
    /// A note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `POST /admin/v1/apps/{app}/policies/what-if`: a draft rule set and the records to replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhatIfRequest {
    /// The draft rules.
    pub rules: Vec<DraftRuleBody>,
    /// From this instant (RFC 3339), inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Until this instant (RFC 3339), exclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// At most this many records (the oldest first; the server caps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// What a draft would have done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WhatIfView {
    /// Records replayed.
    pub total: u64,
    /// Records without enough facts to decide.
    pub indeterminate: u64,
    /// Would be allowed.
    pub allow: u64,
    /// Would be held.
    pub hold: u64,
    /// Would be denied.
    pub deny: u64,
    /// Per draft rule.
    pub rules: Vec<WhatIfRuleView>,
}

/// One draft rule's effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WhatIfRuleView {
    /// The draft rule's id.
    pub rule_id: String,
    /// Its kind.
    pub kind: String,
    /// Calls it would have denied.
    pub denied: u64,
    /// Calls it would have held.
    pub held: u64,
    /// Calls it could not decide.
    pub indeterminate: u64,
    /// Audit event ids of examples.
    pub examples: Vec<String>,
}
