//! The rules step of *authorize*: the facts a decision is taken on, the operator's rules and the
//! caller's request rule evaluated over them by the [`RuleEngine`](crate::rules::RuleEngine),
//! then the rate-limit tokens the matching rules ask for. Everything fails closed: a rule that
//! cannot be loaded, evaluated or counted refuses the call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::audit::AuditEvent;
use crate::error::Result;
use crate::ports::StoreError;
use crate::vault::Vault;

use crate::caller::Caller;
use crate::grants::{Grant, Principal};
use crate::identity::SignedInUser;
use crate::ids::{AppId, UserId};
use crate::rules::{
    BodyFacts, CallMode, DecisionFacts, Effect, FACTS_VERSION, MatchedRule, Outcome, REDACTED,
    Rule, RuleMode, TargetFacts,
};
use crate::time::Timestamp;

use super::authorize::{Denial, ProxyReason, Verdict};
use super::resolve::Resolved;

/// Largest body rules read: a bigger one is seen as truncated, and rules on its fields refuse.
pub const MAX_RULE_BODY_BYTES: usize = 64 * 1024;
/// Largest JSON body the audit log keeps with a decision's facts (replays of rules on bodies
/// beyond it are indeterminate).
pub const MAX_AUDITED_BODY_BYTES: usize = 10 * 1024;

/// Why a rule refused, as the caller's error names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyCode {
    /// `ip_allowlist`.
    IpNotAllowed,
    /// `time_window`.
    OutsideTimeWindow,
    /// `url`.
    UrlNotAllowed,
    /// `method`.
    MethodNotAllowed,
    /// `params`.
    ParameterNotAllowed,
    /// `group`, `custom` and any other deny.
    PolicyDenied,
    /// A rule could not be evaluated.
    EvaluationFailed,
    /// The caller's own request rule.
    RequestRuleDenied,
    /// The caller's request rule asks for a fresher sign-in.
    StepUpRequired,
    /// The caller's request rule asks for a redaction the vault cannot make.
    RedactDischargeFailed,
}

impl PolicyCode {
    /// The code of a matched rule (an unknown one is an evaluation failure: fail closed).
    pub fn from_code(code: &str) -> PolicyCode {
        match code {
            "ip_not_allowed" => PolicyCode::IpNotAllowed,
            "outside_time_window" => PolicyCode::OutsideTimeWindow,
            "url_not_allowed" => PolicyCode::UrlNotAllowed,
            "method_not_allowed" => PolicyCode::MethodNotAllowed,
            "parameter_not_allowed" => PolicyCode::ParameterNotAllowed,
            "policy_denied" => PolicyCode::PolicyDenied,
            "request_rule_denied" => PolicyCode::RequestRuleDenied,
            "step_up_required" => PolicyCode::StepUpRequired,
            "redact_discharge_failed" => PolicyCode::RedactDischargeFailed,
            _ => PolicyCode::EvaluationFailed,
        }
    }

    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyCode::IpNotAllowed => "ip_not_allowed",
            PolicyCode::OutsideTimeWindow => "outside_time_window",
            PolicyCode::UrlNotAllowed => "url_not_allowed",
            PolicyCode::MethodNotAllowed => "method_not_allowed",
            PolicyCode::ParameterNotAllowed => "parameter_not_allowed",
            PolicyCode::PolicyDenied => "policy_denied",
            PolicyCode::EvaluationFailed => "policy_evaluation_failed",
            PolicyCode::RequestRuleDenied => "request_rule_denied",
            PolicyCode::StepUpRequired => "step_up_required",
            PolicyCode::RedactDischargeFailed => "redact_discharge_failed",
        }
    }
}

/// The outgoing call as rules see it: the method, the URL actually sent (retrieve mode: as
/// claimed) and, in proxy mode, the body.
#[derive(Debug, Clone, Copy)]
pub struct CallFacts<'a> {
    /// Retrieve or proxy.
    pub mode: CallMode,
    /// Upper-case method.
    pub method: &'a str,
    /// The URL, query included, before any credential is added.
    pub url: &'a str,
    /// The exact body bytes (proxy mode).
    pub body: Option<&'a [u8]>,
    /// The caller's reason.
    pub reason: Option<&'a str>,
}

/// The call's target, normalised by the WHATWG URL parser (dot segments resolved, host
/// lower-cased, default port filled in). `None` when the URL is not an http(s) URL with a host.
pub fn target_facts(method: &str, url: &str, body: Option<&[u8]>) -> Option<TargetFacts> {
    let parsed = url::Url::parse(url).ok()?;
    let host = match parsed.host()? {
        url::Host::Domain(domain) => domain.to_owned(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    };
    Some(TargetFacts {
        method: method.to_owned(),
        scheme: parsed.scheme().to_owned(),
        host,
        port: parsed.port_or_known_default()?,
        path: parsed.path().to_owned(),
        query: parsed
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        body: body.map(body_facts),
    })
}

/// A body as rules see it: parsed when it is JSON within [`MAX_RULE_BODY_BYTES`].
fn body_facts(bytes: &[u8]) -> BodyFacts {
    let truncated = bytes.len() > MAX_RULE_BODY_BYTES;
    BodyFacts {
        json: if truncated {
            None
        } else {
            serde_json::from_slice(bytes).ok()
        },
        truncated,
        len: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
    }
}

/// The end user a call acts for: the grant's owner, or the user who delegated it.
fn acting_user(chain: &[Grant]) -> Option<UserId> {
    chain.iter().find_map(|link| match &link.principal {
        Principal::User(user) => Some(*user),
        _ => link.delegated_by,
    })
}

/// The facts of one decision. `None` when the URL cannot be read (the request was validated
/// before, so this does not happen for a well-formed call; it refuses if it does).
pub fn decision_facts(
    caller: &Caller,
    user: Option<&SignedInUser>,
    resolved: &Resolved,
    chain: &[Grant],
    call: CallFacts<'_>,
    at: Timestamp,
) -> Option<DecisionFacts> {
    let mut groups: Vec<String> = user.map(|u| u.groups.clone()).unwrap_or_default();
    for link in chain {
        if let Principal::Group {
            external_group_id, ..
        } = &link.principal
        {
            groups.push(external_group_id.clone());
        }
    }
    groups.sort();
    groups.dedup();
    Some(DecisionFacts {
        version: FACTS_VERSION,
        at,
        app_id: caller.app_id,
        mode: call.mode,
        key_id: caller.key_id,
        key_type: caller.key_type.as_str().to_owned(),
        root_key_id: (caller.root_key_id != caller.key_id).then_some(caller.root_key_id),
        agent_typed: caller.agent_typed,
        agent_id: caller.agent_id(),
        source_ip: caller.peer,
        grants: chain.iter().map(|link| link.id).collect(),
        provider_id: resolved.credential.provider_id().to_owned(),
        credential_kind: resolved.credential.kind_name().to_owned(),
        user_id: user.map(|u| u.user.id).or_else(|| acting_user(chain)),
        groups,
        target: target_facts(call.method, call.url, call.body)?,
        reason: call.reason.map(str::to_owned),
    })
}

/// Parts of a body field's or query parameter's name that mark its value as one the audit log
/// never keeps, matched in the name lower-cased without separators (`accessToken`,
/// `api-key`, `card_number` all match). Redacting too much only makes a replay indeterminate.
const REDACTED_NAME_PARTS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "key",
    "auth",
    "cookie",
    "session",
    "credential",
    "signature",
    "private",
    "card",
    "cvv",
    "cvc",
    "iban",
    "ssn",
    "otp",
];

/// The facts as the audit log keeps them: values under credential-like keys redacted, and a
/// body too large for the log without its JSON (its length and hash stay), so replays of
/// rules on it are indeterminate.
pub fn audited_facts(mut facts: DecisionFacts) -> DecisionFacts {
    if let Some(body) = facts.target.body.as_mut() {
        if let Some(json) = body.json.as_mut() {
            redact(json);
        }
        let large = body
            .json
            .as_ref()
            .and_then(|json| serde_json::to_vec(json).ok())
            .is_none_or(|bytes| bytes.len() > MAX_AUDITED_BODY_BYTES);
        if large {
            body.json = None;
            body.truncated = true;
        }
    }
    for (name, value) in &mut facts.target.query {
        if is_redacted(name) {
            *value = REDACTED.into();
        }
    }
    facts
}

fn is_redacted(name: &str) -> bool {
    let name: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    REDACTED_NAME_PARTS.iter().any(|part| name.contains(part))
}

fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if is_redacted(key) {
                    *inner = Value::from(REDACTED);
                } else {
                    redact(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The enforced matches of `effect`, shadow rules left out.
pub fn enforced(matched: &[MatchedRule], effect: Effect) -> impl Iterator<Item = &MatchedRule> {
    matched
        .iter()
        .filter(move |m| m.mode == RuleMode::Enforce && m.effect == effect)
}

/// The refusal a denying decision answers with: the first enforced deny's code and rule. A
/// rule that cannot be enforced on a token handed out refuses retrieve mode with the
/// `*_requires_proxy` codes the client knows.
pub fn denial_of(matched: &[MatchedRule], outcome: Outcome) -> Option<Denial> {
    if outcome != Outcome::Deny {
        return None;
    }
    let Some(rule) = enforced(matched, Effect::Deny).next() else {
        // A denial without a matching rule: evaluation failed.
        return Some(Denial::Policy {
            code: PolicyCode::EvaluationFailed,
            rule_id: None,
        });
    };
    Some(match rule.code.as_str() {
        "hitl_grant_requires_proxy" => Denial::RequiresProxy(ProxyReason::ApprovalRequired),
        "restricted_grant_requires_proxy" => Denial::RequiresProxy(ProxyReason::ContentRule),
        code => Denial::Policy {
            code: PolicyCode::from_code(code),
            rule_id: Some(rule.rule_id),
        },
    })
}

/// What a decision by rules leaves in the audit log: the facts it was taken on and every rule
/// that matched (shadow ones included).
#[derive(Debug, Clone)]
pub(crate) struct PolicyRecord {
    pub facts: DecisionFacts,
    pub matched: Vec<MatchedRule>,
}

impl PolicyRecord {
    /// Adds the record to an event's details (`decision_facts`, and `rules` when any matched).
    pub(crate) fn annotate(&self, event: &mut AuditEvent) {
        let mut details = match event.details.take() {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        if let Ok(facts) = serde_json::to_value(audited_facts(self.facts.clone())) {
            details.insert("decision_facts".into(), facts);
        }
        if let (false, Ok(matched)) = (self.matched.is_empty(), serde_json::to_value(&self.matched))
        {
            details.insert("rules".into(), matched);
        }
        event.details = Some(Value::Object(details));
    }
}

/// GCRA's emission interval and tolerance, in ms, for `per_minute` calls with bursts of `burst`.
fn gcra(per_minute: u32, burst: u32) -> (i64, i64) {
    let interval = 60_000 / i64::from(per_minute.max(1));
    (interval, interval * i64::from(burst.max(1) - 1))
}

/// What the rules step decided, with every rule that matched (for the audit log).
#[derive(Debug)]
pub(super) struct RulesVerdict {
    pub(super) verdict: Verdict,
    pub(super) matched: Vec<MatchedRule>,
    /// The app's rules version the rules were read at (the release commits only if it holds).
    pub(super) version: i64,
}

impl Vault {
    /// Forgets rate-limit buckets that are full again (their arrival time passed over a minute
    /// ago: a missing row is a full bucket, so nothing is lost).
    pub async fn prune_rate_buckets(&self) -> crate::error::Result<u64> {
        let before_ms = self.now().micros() / 1000 - 60_000;
        Ok(self.store().prune_rate_buckets(before_ms).await?)
    }

    /// Evaluates the app's rules and the caller's request rule over `facts`, then (unless the
    /// call is the execution of an approved hold, whose tokens were taken when it was held)
    /// takes the rate-limit tokens the matching rules ask for. Fails closed. `version` is the
    /// app's rules version as the release read it.
    pub(super) async fn check_rules(
        &self,
        facts: &DecisionFacts,
        caller: &Caller,
        take_tokens: bool,
        version: std::result::Result<Option<i64>, StoreError>,
    ) -> Result<RulesVerdict> {
        let request_rule = caller.request_rule.as_ref();
        let (version, rules) = match self.current_rules(facts.app_id, version).await {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(%error, "policy rules could not be read");
                return Ok(RulesVerdict {
                    verdict: Verdict::Deny(Denial::PolicyUnavailable),
                    matched: Vec::new(),
                    version: 0,
                });
            }
        };
        let deny = |denial, matched| {
            Ok(RulesVerdict {
                verdict: Verdict::Deny(denial),
                matched,
                version,
            })
        };
        let mut decision = self.rules().evaluate(&rules, facts);
        if let Some(refusal) =
            request_rule.and_then(|rule| self.rules().evaluate_request_rule(rule, facts))
        {
            decision.matched.push(refusal);
            decision.outcome = Outcome::Deny;
        }
        if let Some(denial) = denial_of(&decision.matched, decision.outcome) {
            return deny(denial, decision.matched);
        }
        if take_tokens && !decision.rate_limits.is_empty() {
            // Taking a token is a write a replay must not make: the nonce first.
            self.settle_nonce(&caller.pending_nonce).await?;
            for demand in &decision.rate_limits {
                let (interval, tolerance) = gcra(demand.per_minute, demand.burst);
                let taken = self
                    .store()
                    .take_rate_token(
                        &demand.bucket,
                        facts.at.micros() / 1000,
                        interval,
                        tolerance,
                    )
                    .await;
                match taken {
                    Ok(taken) if taken.allowed => {}
                    Ok(taken) => {
                        let denial = Denial::RateLimited {
                            retry_after_seconds: (taken.retry_after_ms.max(0) as u64)
                                .div_ceil(1000),
                            per_minute: demand.per_minute,
                            rule_id: demand.rule_id,
                        };
                        return deny(denial, decision.matched);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "a rate limit could not be counted");
                        return deny(Denial::PolicyUnavailable, decision.matched);
                    }
                }
            }
        }
        let holds: Vec<MatchedRule> = enforced(&decision.matched, Effect::Hold).cloned().collect();
        Ok(RulesVerdict {
            verdict: if holds.is_empty() {
                Verdict::Allow
            } else {
                Verdict::Hold(holds)
            },
            matched: decision.matched,
            version,
        })
    }

    /// The app's rules and the rules version they are, the rules read only when the version
    /// (read by every release, before this) moved since this node last read them: a rule
    /// written meanwhile makes the release's commit refuse (it checks the version again),
    /// never pass under stale rules — on any node.
    async fn current_rules(
        &self,
        app: AppId,
        version: std::result::Result<Option<i64>, StoreError>,
    ) -> std::result::Result<(i64, Arc<Vec<Rule>>), StoreError> {
        let version = version?.unwrap_or_default();
        if let Some(rules) = self.rules_cache().get(app, version) {
            return Ok((version, rules));
        }
        let rules = Arc::new(self.store().list_rules(app).await?);
        self.rules_cache().put(app, version, rules.clone());
        Ok((version, rules))
    }
}

/// Each app's rules as this node last read them, by rules version (`apps.rules_version`, which
/// every rule write bumps), for at most [`RULES_MAX_AGE`]: rules changed behind the vault's back
/// (by hand in SQL, or a restored backup that repeats a version number) are read again within
/// it.
#[derive(Debug, Default)]
pub(crate) struct RulesCache(Mutex<HashMap<AppId, RulesRead>>);

/// An app's rules, the rules version they were read at, and when.
type RulesRead = (i64, Arc<Vec<Rule>>, Instant);

/// How long a node trusts its copy of an app's rules without reading them again.
const RULES_MAX_AGE: Duration = Duration::from_secs(60);

/// Apps whose rules a node keeps; past it the cache starts over.
const MAX_CACHED_APPS: usize = 10_000;

impl RulesCache {
    fn get(&self, app: AppId, version: i64) -> Option<Arc<Vec<Rule>>> {
        let cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match cached.get(&app) {
            Some((read, rules, at)) if *read == version && at.elapsed() < RULES_MAX_AGE => {
                Some(rules.clone())
            }
            _ => None,
        }
    }

    fn put(&self, app: AppId, version: i64, rules: Arc<Vec<Rule>>) {
        let mut cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if cached.len() >= MAX_CACHED_APPS && !cached.contains_key(&app) {
            cached.clear();
        }
        // Never replace newer rules with older ones (two reads racing a rule write).
        if cached.get(&app).is_none_or(|(read, ..)| *read <= version) {
            cached.insert(app, (version, rules, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_normalised() {
        let t = target_facts("GET", "HTTPS://API.Example.com/a/./b/../c?x=1&y=%20z", None)
            .unwrap_or_else(|| unreachable!());
        assert_eq!(t.scheme, "https");
        assert_eq!(t.host, "api.example.com");
        assert_eq!(t.port, 443);
        assert_eq!(t.path, "/a/c");
        assert_eq!(
            t.query,
            vec![("x".into(), "1".into()), ("y".into(), " z".into())]
        );
        let ip = target_facts("POST", "http://0x7f.1:8080/", Some(b"{\"a\":1}"))
            .unwrap_or_else(|| unreachable!());
        assert_eq!(ip.host, "127.0.0.1");
        assert_eq!(ip.port, 8080);
        let body = ip.body.unwrap_or_else(|| unreachable!());
        assert_eq!(body.json, Some(serde_json::json!({"a": 1})));
        assert!(!body.truncated);
        assert!(target_facts("GET", "mailto:x@y", None).is_none());
    }

    #[test]
    fn the_log_keeps_no_credential_like_value() {
        let body = br#"{"user": {"password": "hunter2", "name": "a"}, "items": [{"token": "t"}],
            "accessToken": "t-1", "api-key": "ak-1", "card_number": "4111"}"#;
        let mut facts = decision_facts_for_test(
            target_facts("POST", "https://x/?api_key=k&page=2", Some(body))
                .unwrap_or_else(|| unreachable!()),
        );
        facts = audited_facts(facts);
        let text = serde_json::to_string(&facts).unwrap_or_default();
        for kept in ["hunter2", "\"t\"", "t-1", "ak-1", "4111", "\"k\""] {
            assert!(!text.contains(kept), "{kept} in {text}");
        }
        assert!(
            text.contains("\"name\":\"a\"") && text.contains("\"2\""),
            "{text}"
        );
    }

    fn decision_facts_for_test(target: TargetFacts) -> DecisionFacts {
        DecisionFacts {
            version: FACTS_VERSION,
            at: Timestamp::from_unix_seconds(0),
            app_id: crate::ids::AppId::new(),
            mode: CallMode::Proxy,
            key_id: crate::ids::KeyId::new(),
            key_type: "rk".into(),
            root_key_id: None,
            agent_typed: false,
            agent_id: None,
            source_ip: None,
            grants: Vec::new(),
            provider_id: "p".into(),
            credential_kind: "managed_secret".into(),
            user_id: None,
            groups: Vec::new(),
            target,
            reason: None,
        }
    }

    #[test]
    fn large_bodies_are_truncated_for_rules_and_the_log() {
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_RULE_BODY_BYTES));
        let t = target_facts("POST", "https://x/", Some(big.as_bytes()))
            .unwrap_or_else(|| unreachable!());
        let body = t.body.unwrap_or_else(|| unreachable!());
        assert!(body.truncated && body.json.is_none());
        assert_eq!(body.len as usize, big.len());
    }
}
