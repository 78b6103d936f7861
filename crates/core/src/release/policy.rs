//! The rules step of *authorize*: the facts a decision is taken on, the operator's rules and the
//! caller's request rule evaluated over them by the [`RuleEngine`](crate::rules::RuleEngine),
//! then the rate-limit tokens the matching rules ask for. Everything fails closed: a rule that
//! cannot be loaded, evaluated or counted refuses the call.

use sha2::{Digest, Sha256};

use crate::caller::Caller;
use crate::grants::{Grant, Principal};
use crate::identity::SignedInUser;
use crate::ids::UserId;
use crate::rules::{
    BodyFacts, CallMode, DecisionFacts, Effect, FACTS_VERSION, MatchedRule, Outcome, RuleMode,
    TargetFacts,
};
use crate::time::Timestamp;

use super::authorize::{Denial, ProxyReason};
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

/// The facts as the audit log keeps them: a body too large for the log loses its JSON (its
/// length and hash stay), so replays of rules on it are indeterminate.
pub fn audited_facts(mut facts: DecisionFacts) -> DecisionFacts {
    if let Some(body) = facts.target.body.as_mut() {
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
    facts
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
    fn large_bodies_are_truncated_for_rules_and_the_log() {
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_RULE_BODY_BYTES));
        let t = target_facts("POST", "https://x/", Some(big.as_bytes()))
            .unwrap_or_else(|| unreachable!());
        let body = t.body.unwrap_or_else(|| unreachable!());
        assert!(body.truncated && body.json.is_none());
        assert_eq!(body.len as usize, big.len());
    }
}
