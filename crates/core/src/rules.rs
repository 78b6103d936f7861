//! Policy rules: what an operator attaches to an app, a provider or managed secret, an agent or
//! a grant to restrict how credentials are used, and the facts a decision is taken on. Rules
//! only restrict: they run after the default-deny base (owner or delegate, scope, grant valid)
//! has allowed the use, and each can only deny the call or hold it for a human's approval.
//!
//! Core knows a rule as a stored row with a kind and a JSON body; the [`RuleEngine`] port
//! (implemented by the `alter-policy` crate) validates bodies when they are saved and evaluates
//! them. The evaluation is a pure function of the rules and a [`DecisionFacts`] record, which the
//! audit log keeps, so a draft rule set can be replayed over past traffic ([`RuleEngine::replay`]).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{AgentId, AppId, EventId, GrantId, KeyId, RuleId, UserId};
use crate::time::Timestamp;

/// What a rule is attached to. A rule applies to a call when its target is the call's app, the
/// provider or managed secret of the credential used, the agent acting, or the grant used (or,
/// for a delegation, any grant of its chain).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum RuleTarget {
    /// Every credential use of the app.
    App,
    /// Uses of one OAuth provider's connections (its id) or one managed secret (its slug).
    Provider(String),
    /// Calls made by (or as) one agent.
    Agent(AgentId),
    /// Uses of one grant, and of every delegation made from it.
    Grant(GrantId),
}

/// What a rule does to a call it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Refuse the call.
    Deny,
    /// Hold the call until a human approves it (proxy mode only; in retrieve mode a rule that
    /// may hold makes the grant proxy-only).
    Hold,
}

/// Whether a rule is enforced or only observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleMode {
    /// Matches deny or hold.
    #[default]
    Enforce,
    /// Matches are evaluated and audited, never enforced.
    Shadow,
}

/// A stored rule (one version of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Its id (kept across versions).
    pub id: RuleId,
    /// The app it belongs to.
    pub app_id: AppId,
    /// Starts at 1; every change stores a new version.
    pub version: i64,
    /// What it is attached to.
    pub target: RuleTarget,
    /// The kind (`ip_allowlist`, `time_window`, `rate_limit`, `url`, `method`, `params`,
    /// `group`, `require_approval`, `custom`); the engine knows which exist.
    pub kind: String,
    /// Deny or hold when it matches (`require_approval` always holds; `rate_limit` always denies).
    pub effect: Effect,
    /// Enforced or shadow.
    pub mode: RuleMode,
    /// The kind's parameters, as the engine validated them when the rule was saved.
    pub body: Value,
    /// The operator's note.
    pub description: Option<String>,
    /// When this version was saved.
    pub created_at: Timestamp,
}

/// Which stage asks: retrieve mode hands the credential to the caller, proxy mode makes the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallMode {
    /// `/sdk/token`: the call's method and URL are the caller's claim; its body is not seen.
    Retrieve,
    /// `/sdk/proxy` (or an approved call): what is evaluated is exactly what will be sent.
    Proxy,
}

/// What the audit log keeps instead of a body field's or query parameter's value that looks
/// like a credential (a replay reads such a value as unknown: indeterminate).
pub const REDACTED: &str = "[redacted]";

/// The version of [`DecisionFacts`] this build writes.
pub const FACTS_VERSION: u32 = 1;

/// Everything a decision is taken on, as the audit log keeps it. Never a credential: it is
/// captured before anything is injected, and caller-supplied headers are not part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionFacts {
    /// [`FACTS_VERSION`] when written.
    pub version: u32,
    /// The decision's instant.
    pub at: Timestamp,
    /// The app.
    pub app_id: AppId,
    /// Retrieve or proxy.
    pub mode: CallMode,
    /// The key that signed.
    pub key_id: KeyId,
    /// Its type (`rk`, `ak`, `dk`, `pk`).
    pub key_type: String,
    /// The key a derived key was derived from (absent for any other key): per-key limits
    /// count it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_key_id: Option<KeyId>,
    /// The key is agent-typed (an `ak` key, or one derived from it).
    #[serde(default)]
    pub agent_typed: bool,
    /// The agent acting, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    /// The caller's address, canonical (an IPv4-mapped IPv6 address as IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<IpAddr>,
    /// The grant used and, for a delegation, its chain up to the root (first the grant itself).
    pub grants: Vec<GrantId>,
    /// The provider or managed secret the credential goes by (`provider_id`).
    pub provider_id: String,
    /// `oauth`, `managed_secret` or `user_secret`.
    pub credential_kind: String,
    /// The end user the call acts for (the grant's owner or the delegating user), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// The groups the acting principal and the end user belonged to at the decision (ids as
    /// the identity provider names them).
    #[serde(default)]
    pub groups: Vec<String>,
    /// The outgoing call.
    pub target: TargetFacts,
    /// The caller's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The outgoing call, normalised as it will be sent (proxy) or as claimed (retrieve).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFacts {
    /// Upper-case method.
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// Lower-case host (IP addresses in their canonical text).
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
    /// The path, percent-decoding of unreserved characters and dot segments already resolved by
    /// the URL parser.
    pub path: String,
    /// The query's pairs as sent by the caller (before any credential is added).
    #[serde(default)]
    pub query: Vec<(String, String)>,
    /// The JSON body (proxy mode), when it is JSON and within the audit cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyFacts>,
}

/// A request body as rules see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyFacts {
    /// The parsed JSON, if the body is JSON and no larger than the cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    /// The body was larger than the cap (then `json` is absent).
    pub truncated: bool,
    /// Its length in bytes.
    pub len: u64,
    /// Hex SHA-256 of the exact bytes.
    pub sha256: String,
}

/// The outcome of evaluating rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// No enforced rule matched.
    Allow,
    /// An enforced hold rule matched and no deny did.
    Hold,
    /// An enforced deny rule matched, or evaluation failed.
    Deny,
}

/// One rule that matched, as the audit log and the caller's error see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchedRule {
    /// The rule.
    pub rule_id: RuleId,
    /// Its version.
    pub version: i64,
    /// Its kind.
    pub kind: String,
    /// Deny or hold.
    pub effect: Effect,
    /// Shadow rules match without effect.
    pub mode: RuleMode,
    /// The stable wire code of a denial by this rule (`ip_not_allowed`, `outside_time_window`,
    /// `url_not_allowed`, `method_not_allowed`, `parameter_not_allowed`, `policy_denied`, …).
    pub code: String,
    /// Why it matched, for people (no secrets, no values beyond the facts).
    pub detail: String,
    /// The approval terms of a hold by a `require_approval` rule (or an agent's approval
    /// setting), carried with the match so the approval it creates honours them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalTerms>,
}

/// What a hold rule says of the approval it asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalTerms {
    /// How long the approval waits for a decision (`None`: the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// Who may approve (user or group ids as the app names them); empty: any operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
}

/// A rate-limit token a call must take once every stateless rule has passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateDemand {
    /// The rule asking.
    pub rule_id: RuleId,
    /// The bucket: `{rule_id}:grant:{id}`, `{rule_id}:agent:{id}` or `{rule_id}:key:{id}`.
    pub bucket: String,
    /// Calls per minute.
    pub per_minute: u32,
    /// How many may come at once (GCRA burst; at least 1).
    pub burst: u32,
}

/// What the engine decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Allow, hold or deny (before rate limits are taken).
    pub outcome: Outcome,
    /// Every rule that matched (enforced and shadow).
    pub matched: Vec<MatchedRule>,
    /// Evaluation errors (each denies); texts for the operator.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Rate-limit tokens to take if the outcome is not a denial.
    #[serde(default)]
    pub rate_limits: Vec<RateDemand>,
}

/// One past decision a what-if replays.
#[derive(Debug, Clone)]
pub struct PastDecision {
    /// The audit event that recorded it.
    pub event_id: EventId,
    /// What was decided then (allow, hold or deny), as recorded.
    pub recorded: Outcome,
    /// The facts, if the event kept them (older events did not: indeterminate).
    pub facts: Option<DecisionFacts>,
}

/// What a draft rule set would have done over past decisions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhatIfReport {
    /// Records replayed.
    pub total: u64,
    /// Records without enough facts to decide (no facts, older version, truncated body under a
    /// `params` rule, …).
    pub indeterminate: u64,
    /// How many the draft would allow, hold and deny.
    pub allow: u64,
    /// Would be held.
    pub hold: u64,
    /// Would be denied.
    pub deny: u64,
    /// Per draft rule.
    pub rules: Vec<WhatIfRule>,
}

/// One draft rule's effect over the replayed records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhatIfRule {
    /// The draft rule's id.
    pub rule_id: RuleId,
    /// Its kind.
    pub kind: String,
    /// Calls it would have denied.
    pub denied: u64,
    /// Calls it would have held.
    pub held: u64,
    /// Calls it could not decide.
    pub indeterminate: u64,
    /// Up to ten examples: event ids it would have denied or held.
    pub examples: Vec<EventId>,
}

/// The policy engine (implemented by `alter-policy`): pure, no I/O.
pub trait RuleEngine: Send + Sync + std::fmt::Debug {
    /// Checks a rule before it is saved: its kind exists, its body parses for that kind and is
    /// within limits, its effect fits the kind, a `custom` Cedar condition validates. Returns
    /// the body as it will be stored (normalised), or a message for the operator.
    fn validate(&self, rule: &Rule) -> Result<Value, String>;

    /// Evaluates `rules` over `facts`: only those whose target the call touches apply (the app,
    /// `facts.provider_id`, `facts.agent_id`, any of `facts.grants`), so the caller may pass the
    /// app's whole rule set. Enforced and shadow rules alike are evaluated; any error denies.
    /// Never panics.
    fn evaluate(&self, rules: &[Rule], facts: &DecisionFacts) -> Decision;

    /// Evaluates the rule the caller attached to its own request (`X-Alter-Request-Rule`:
    /// `json_match`, `content_match`) over `facts`; `Some` with the match when it refuses (its
    /// `code` is the wire code: `request_rule_denied`, `step_up_required`,
    /// `redact_discharge_failed`, …). In retrieve mode conditions on the method count as met and
    /// a rule that needs the body refuses with `restricted_grant_requires_proxy`.
    fn evaluate_request_rule(
        &self,
        rule: &crate::request_rule::RequestRule,
        facts: &DecisionFacts,
    ) -> Option<MatchedRule>;

    /// Replays `draft` over `past`, in order (rate limits simulated over the stream).
    fn replay(&self, draft: &[Rule], past: &[PastDecision]) -> WhatIfReport;
}
