//! Approvals of held proxy calls (protocol part 1 §6.2–6.5): the 202 `PendingApproval`,
//! `GET /sdk/approvals/{id}` (`ApprovalStatus`), `GET /sdk/approvals/{id}/result`
//! (`ApprovalResult`: [`crate::proxy::ProxyAnswer`]) and the operator's `/admin/v1/apps/{app}/approvals*`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One gate of a held call in the 202 answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PendingGate {
    /// The gate's id.
    pub approval_id: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// Seconds until then.
    pub expires_in: i64,
    /// Where its approver decides.
    pub approval_url: String,
}

/// `202` from `/sdk/proxy`: the call waits for a human.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PendingApproval {
    /// The executor gate's id: the one to poll.
    pub approval_id: String,
    /// The group of gates.
    pub approval_group_id: String,
    /// Always `pending`.
    pub status: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// Seconds until then.
    pub expires_in: i64,
    /// Where the approver decides.
    pub approval_url: String,
    /// Every gate (at least one).
    pub gates: Vec<PendingGate>,
}

/// One gate in a status answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GateStatus {
    /// The gate's id.
    pub approval_id: String,
    /// `pending`, `approved`, `denied` or `expired`.
    pub status: String,
    /// When it expires.
    pub expires_at: String,
    /// When it was decided.
    #[serde(default)]
    pub decided_at: Option<String>,
}

/// `GET /sdk/approvals/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApprovalStatus {
    /// The approval's id.
    pub approval_id: String,
    /// The group's status: `pending`, `approved`, `executing`, `denied`, `expired`,
    /// `executed` or `failed`.
    pub status: String,
    /// The group.
    pub approval_group_id: String,
    /// Its gates.
    pub gates: Vec<GateStatus>,
    /// When it expires.
    pub expires_at: String,
    /// When it was decided.
    #[serde(default)]
    pub decided_at: Option<String>,
    /// When the call was made (or failed).
    #[serde(default)]
    pub executed_at: Option<String>,
    /// The approver's note.
    #[serde(default)]
    pub decision_reason: Option<String>,
    /// Why the call failed.
    #[serde(default)]
    pub execution_error: Option<String>,
    /// `/result` has the provider's answer.
    pub has_result: bool,
}

/// An approval as the operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApprovalInfo {
    /// Id (the gate's).
    pub id: String,
    /// Group.
    pub group_id: String,
    /// Status.
    pub status: String,
    /// The grant the call uses.
    pub grant_id: String,
    /// The key that made it.
    pub key_id: String,
    /// The agent it acted as.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Method.
    pub method: String,
    /// URL, without query values.
    pub url: String,
    /// The caller's reason.
    pub reason: String,
    /// The rules that held it.
    pub holds: Value,
    /// Who may approve: the union of the approvers its hold rules name (empty: any operator).
    #[serde(default)]
    pub approvers: Vec<String>,
    /// When it was held.
    pub created_at: String,
    /// When it expires.
    pub expires_at: String,
    /// When it was decided.
    #[serde(default)]
    pub decided_at: Option<String>,
    /// Who decided.
    #[serde(default)]
    pub decided_by: Option<String>,
    /// Their note.
    #[serde(default)]
    pub decision_reason: Option<String>,
    /// When the call was made (or failed).
    #[serde(default)]
    pub executed_at: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub execution_error: Option<String>,
    /// The provider's answer is stored.
    pub has_result: bool,
    /// The exact request it would execute (one approval's view only, not in lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeldRequestView>,
}

/// A held call's exact request, as its approver sees it (never the credential nor the end
/// user's token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HeldRequestView {
    /// Method.
    pub method: String,
    /// The final URL, query values included.
    pub url: String,
    /// The caller's headers, values included.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    #[serde(default)]
    pub body: Option<Value>,
    /// Hex SHA-256 of the stored request; the decision event records it.
    pub sha256: String,
}

/// `POST /admin/v1/apps/{app}/approvals/{id}/approve|deny`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideApprovalRequest {
    /// The approver's note (shown to the caller).
    #[serde(default)]
    pub reason: Option<String>,
    /// Who decides.
    #[serde(default)]
    pub decided_by: Option<String>,
}
