//! Approvals: proxied calls a rule held for a human (issue 10, item 4). The exact request is
//! parked sealed with a snapshot of its caller; once a person approves it, the vault runs the
//! whole pipeline again as that caller (so a revoked grant, a paused agent or a changed rule
//! still refuses it) and makes the call exactly once, whatever number of nodes race to do it.
//!
//! States: pending → approved → executing → executed | failed, or pending → denied | expired.
//! Every transition is one conditional update in the store ([`ApprovalStore`]).
//!
//! [`ApprovalStore`]: crate::ports::ApprovalStore

pub(crate) mod service;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Digest as _;

use crate::ids::{AgentId, AppId, ApprovalId, EventId, GrantId, KeyId};
use crate::proxy::{ProxyRequest, ProxyResult};
use crate::request_rule::RequestRule;
use crate::rules::MatchedRule;
use crate::scope::ScopeSet;
use crate::time::Timestamp;

pub use service::{
    DEFAULT_TTL_SECONDS, MAX_PENDING_PER_APP, MAX_WAIT_SECONDS, STALE_EXECUTION_SECONDS,
};

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for a person.
    Pending,
    /// Approved; not yet picked up for execution.
    Approved,
    /// One node is making the call.
    Executing,
    /// The call was made; its result is stored.
    Executed,
    /// Approved, but the call could not be made (rules, grant, key or agent changed, or the
    /// node making it died).
    Failed,
    /// A person refused it.
    Denied,
    /// Nobody decided in time.
    Expired,
}

impl ApprovalStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [ApprovalStatus; 7] = [
        ApprovalStatus::Pending,
        ApprovalStatus::Approved,
        ApprovalStatus::Executing,
        ApprovalStatus::Executed,
        ApprovalStatus::Failed,
        ApprovalStatus::Denied,
        ApprovalStatus::Expired,
    ];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Executing => "executing",
            ApprovalStatus::Executed => "executed",
            ApprovalStatus::Failed => "failed",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Expired => "expired",
        }
    }

    /// The status named `text`.
    pub fn parse(text: &str) -> Option<ApprovalStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Nothing more happens to an approval in this status.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ApprovalStatus::Executed
                | ApprovalStatus::Failed
                | ApprovalStatus::Denied
                | ApprovalStatus::Expired
        )
    }
}

/// A held call as stored. The request and the caller's snapshot are sealed to the row.
#[derive(Clone, PartialEq)]
pub struct Approval {
    /// The approval's id (its one gate's id: the id clients poll).
    pub id: ApprovalId,
    /// The group of gates (today one gate per group).
    pub group_id: ApprovalId,
    /// The app.
    pub app_id: AppId,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// The grant the call would use.
    pub grant_id: GrantId,
    /// The key that made the call.
    pub key_id: KeyId,
    /// The agent it acted as.
    pub agent_id: Option<AgentId>,
    /// The request and caller snapshot ([`HeldPayload`]), sealed to this approval.
    pub sealed_request: Vec<u8>,
    /// The method, for listings.
    pub method: String,
    /// The URL without query values or credentials, for listings.
    pub url: String,
    /// The hold rules that matched.
    pub holds: Vec<MatchedRule>,
    /// The caller's reason, shown to the approver.
    pub reason: String,
    /// When it was held.
    pub created_at: Timestamp,
    /// When it expires if nobody decides.
    pub expires_at: Timestamp,
    /// When a person decided.
    pub decided_at: Option<Timestamp>,
    /// Who decided (as the approver named themself).
    pub decided_by: Option<String>,
    /// The approver's note.
    pub decision_reason: Option<String>,
    /// When a node claimed it for execution.
    pub claimed_at: Option<Timestamp>,
    /// When the execution finished (executed or failed).
    pub executed_at: Option<Timestamp>,
    /// Why it failed.
    pub execution_error: Option<String>,
    /// The provider's answer ([`StoredResult`]), sealed to this approval.
    pub sealed_result: Option<Vec<u8>>,
    /// Bumped on every transition.
    pub version: i64,
}

impl fmt::Debug for Approval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Approval")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("status", &self.status)
            .field("grant_id", &self.grant_id)
            .field("method", &self.method)
            .field("url", &self.url)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Approval {
    /// Who may approve: the union of the approvers its hold rules name, in order, each once
    /// (empty: any operator).
    pub fn approvers(&self) -> Vec<String> {
        approvers_of(&self.holds)
    }

    /// True once `/result` has something to return.
    pub fn has_result(&self) -> bool {
        self.status == ApprovalStatus::Executed && self.sealed_result.is_some()
    }
}

/// The union of the approvers `holds` name, in order, each once.
pub fn approvers_of(holds: &[MatchedRule]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in holds
        .iter()
        .filter_map(|h| h.approval.as_ref())
        .flat_map(|t| &t.approvers)
    {
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// How long an approval of `holds` waits: the shortest ttl any of them sets (the strictest
/// rule wins), [`DEFAULT_TTL_SECONDS`] when none sets one.
pub fn ttl_of(holds: &[MatchedRule]) -> i64 {
    holds
        .iter()
        .filter_map(|h| h.approval.as_ref()?.ttl_seconds)
        .map(|t| i64::try_from(t).unwrap_or(i64::MAX))
        .min()
        .unwrap_or(DEFAULT_TTL_SECONDS)
}

/// A person's decision, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalDecision {
    /// Approved (true) or denied.
    pub approve: bool,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub decided_by: String,
    /// Their note.
    pub reason: Option<String>,
}

/// How an execution ended, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalFinish {
    /// Executed (true) or failed.
    pub executed: bool,
    /// When.
    pub at: Timestamp,
    /// Why it failed.
    pub error: Option<String>,
    /// The sealed result of an executed call.
    pub sealed_result: Option<Vec<u8>>,
}

/// A held call's request as its approver sees it: exactly what will be sent (before the
/// credential is added), never the end user's token.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldRequest {
    /// Method.
    pub method: String,
    /// The final URL, query values included.
    pub url: String,
    /// The caller's headers, values included (credential headers are refused on entry).
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Option<serde_json::Value>,
    /// Hex SHA-256 of the sealed request: the decision event names what was approved.
    pub sha256: String,
}

impl HeldRequest {
    pub(crate) fn of(request: crate::proxy::ProxyRequest, sealed_plain: &[u8]) -> HeldRequest {
        let mut url = url::Url::parse(&request.url).ok();
        if let Some(url) = url.as_mut()
            && !request.query_params.is_empty()
        {
            url.query_pairs_mut().extend_pairs(&request.query_params);
        }
        HeldRequest {
            url: url.map_or(request.url.clone(), String::from),
            method: request.method,
            headers: request.headers,
            body: request.body,
            sha256: hex::encode(sha2::Sha256::digest(sealed_plain)),
        }
    }
}

/// What is sealed with a held call: the request and what is needed to act as its caller again.
#[derive(Serialize, Deserialize)]
pub(crate) struct HeldPayload {
    pub request: ProxyRequest,
    pub caller: CallerSnapshot,
}

/// The parts of a [`Caller`](crate::caller::Caller) that came with the request rather than from
/// the stored key and agent (those are read again, and must still be usable, at execution).
#[derive(Serialize, Deserialize)]
pub(crate) struct CallerSnapshot {
    pub key_id: KeyId,
    pub agent_id: Option<AgentId>,
    pub impersonating: bool,
    pub scopes: ScopeSet,
    pub caller: Option<String>,
    pub caller_type: Option<String>,
    pub context: Option<BTreeMap<String, String>>,
    pub request_rule: Option<RuleSnapshot>,
    /// The requester's address, which `ip_allowlist` rules judge again at execution.
    #[serde(default)]
    pub peer: Option<std::net::IpAddr>,
    /// The W3C trace of the held call (none in snapshots sealed before traces were kept).
    #[serde(default)]
    pub trace_id: Option<String>,
}

/// A request rule as the client sent it (kind and body), so it parses back to the same rule.
#[derive(Serialize, Deserialize)]
pub(crate) struct RuleSnapshot {
    pub rule_type: String,
    pub rule_body: Map<String, Value>,
}

impl RuleSnapshot {
    pub(crate) fn of(rule: &RequestRule) -> RuleSnapshot {
        match rule {
            RequestRule::JsonMatch { when, denies } => {
                let mut body = Map::new();
                if let Some(when) = when {
                    body.insert("when".into(), when.clone());
                }
                if *denies {
                    body.insert("effect".into(), Value::from("deny"));
                }
                RuleSnapshot {
                    rule_type: "json_match".into(),
                    rule_body: body,
                }
            }
            RequestRule::Content { kind, body } => RuleSnapshot {
                rule_type: kind.clone(),
                rule_body: body.clone(),
            },
        }
    }

    pub(crate) fn rule(self) -> RequestRule {
        RequestRule::parse(&self.rule_type, self.rule_body)
    }
}

/// The provider's answer to an approved call, as sealed in the approval.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredResult {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    #[serde(with = "b64")]
    pub body: Vec<u8>,
    pub truncated: bool,
    pub duration_ms: u64,
    pub credential_hint: Option<String>,
    pub release_id: EventId,
}

impl StoredResult {
    pub(crate) fn of(result: &ProxyResult) -> StoredResult {
        StoredResult {
            status: result.status,
            headers: result.headers.clone(),
            body: result.body.clone(),
            truncated: result.truncated,
            duration_ms: result.duration_ms,
            credential_hint: result.credential_hint.clone(),
            release_id: result.release_id,
        }
    }

    pub(crate) fn into_result(self) -> ProxyResult {
        ProxyResult {
            status: self.status,
            headers: self.headers,
            body: self.body,
            truncated: self.truncated,
            duration_ms: self.duration_ms,
            credential_hint: self.credential_hint,
            release_id: self.release_id,
        }
    }
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Why an approval operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// A call that is held must say why (the approver reads it).
    #[error("this call needs a human's approval: say why with a reason")]
    ReasonRequired,
    /// The app holds the most pending approvals allowed.
    #[error("this app holds too many pending approvals; decide some first")]
    TooManyPending,
    /// `wait` above the cap.
    #[error("wait may be at most {MAX_WAIT_SECONDS} seconds")]
    WaitTooLong,
    /// A person denied the call.
    #[error("{}", .0.as_deref().unwrap_or("the approval was denied"))]
    Denied(Option<String>),
    /// Nobody decided in time.
    #[error("the approval expired before anyone decided")]
    Expired,
    /// Approved, but the call could not be made.
    #[error("{}", .0.as_deref().unwrap_or("the approved call could not be made"))]
    ExecutionFailed(Option<String>),
    /// The call has not been made yet.
    #[error("the approval is {}: its result is not ready", .0.as_str())]
    NotReady(ApprovalStatus),
    /// Someone decided otherwise already.
    #[error("the approval is already {}", .0.as_str())]
    AlreadyDecided(ApprovalStatus),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_round_trip() {
        for s in ApprovalStatus::ALL {
            assert_eq!(ApprovalStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ApprovalStatus::parse("done"), None);
        assert!(!ApprovalStatus::Approved.is_terminal());
        assert!(!ApprovalStatus::Executing.is_terminal());
        assert!(ApprovalStatus::Expired.is_terminal());
    }

    fn hold(terms: Option<(Option<u64>, &[&str])>) -> MatchedRule {
        MatchedRule {
            rule_id: crate::ids::RuleId::new(),
            version: 1,
            kind: "require_approval".into(),
            effect: crate::rules::Effect::Hold,
            mode: crate::rules::RuleMode::Enforce,
            code: "approval_required".into(),
            detail: "held".into(),
            approval: terms.map(|(ttl_seconds, names)| crate::rules::ApprovalTerms {
                ttl_seconds,
                approvers: names.iter().map(|n| (*n).to_owned()).collect(),
            }),
        }
    }

    #[test]
    fn the_shortest_ttl_and_the_union_of_approvers_apply() {
        assert_eq!(ttl_of(&[]), DEFAULT_TTL_SECONDS);
        assert_eq!(
            ttl_of(&[hold(None), hold(Some((None, &["a"])))]),
            DEFAULT_TTL_SECONDS
        );
        let holds = [
            hold(Some((Some(600), &["a", "b"]))),
            hold(None),
            hold(Some((Some(120), &["b", "c"]))),
            hold(Some((None, &["a", "d"]))),
        ];
        assert_eq!(ttl_of(&holds), 120);
        assert_eq!(approvers_of(&holds), ["a", "b", "c", "d"]);
        assert!(approvers_of(&[hold(None)]).is_empty());
    }

    #[test]
    fn request_rules_survive_the_snapshot() {
        for (kind, body) in [
            (
                "json_match",
                json!({"when": {"method": "POST"}, "effect": "deny"}),
            ),
            ("json_match", json!({})),
            ("content_match", json!({"field": "x"})),
        ] {
            let rule = RequestRule::parse(kind, body.as_object().cloned().unwrap());
            let snapshot = serde_json::to_string(&RuleSnapshot::of(&rule)).unwrap();
            let back: RuleSnapshot = serde_json::from_str(&snapshot).unwrap();
            assert_eq!(back.rule(), rule);
        }
    }
}
