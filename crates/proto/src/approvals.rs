//! Approvals of held proxy calls (protocol part 1 §6.2–6.5): the 202 `PendingApproval`,
//! `GET /sdk/approvals/{id}` (`ApprovalStatus`), `GET /sdk/approvals/{id}/result`
//! (`ApprovalResult`) and the operator's `/admin/v1/apps/{app}/approvals*`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One gate of a held call in the 202 answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// The provider's answer to a proxied call (`200` from `/sdk/proxy` and from `/result`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalResult {
    /// The approval, on `/result`; null on the synchronous path.
    #[serde(default)]
    pub approval_id: Option<String>,
    /// The provider's status.
    pub status_code: u16,
    /// Its headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Its body, standard base64 with padding.
    #[serde(default)]
    pub body_b64: String,
    /// The body was cut at the cap.
    #[serde(default)]
    pub body_truncated: bool,
    /// How long the provider took.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// On a provider 401/403: how the credential should have been sent.
    #[serde(default)]
    pub credential_hint: Option<String>,
}

impl std::fmt::Debug for ApprovalResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The provider's body and headers are the caller's data: not for logs.
        f.debug_struct("ApprovalResult")
            .field("approval_id", &self.approval_id)
            .field("status_code", &self.status_code)
            .field("body_len", &self.body_b64.len())
            .field("body_truncated", &self.body_truncated)
            .finish_non_exhaustive()
    }
}

/// An approval as the operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

/// `POST /admin/v1/apps/{app}/approvals/{id}/approve|deny`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideApprovalRequest {
    /// The approver's note (shown to the caller).
    #[serde(default)]
    pub reason: Option<String>,
    /// Who decides.
    #[serde(default)]
    pub decided_by: Option<String>,
}
