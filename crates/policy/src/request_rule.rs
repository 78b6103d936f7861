//! The caller's own rule (`X-Alter-Request-Rule`). It is untrusted input that may only narrow:
//! whatever cannot be evaluated counts as met, so a rule that cannot be understood refuses
//! rather than lets through. In retrieve mode the method is only claimed (conditions on it count
//! as met) and the body is never seen (a rule that needs it refuses with
//! `restricted_grant_requires_proxy`).

use alter_core::ids::RuleId;
use alter_core::request_rule::RequestRule;
use alter_core::rules::{CallMode, DecisionFacts, Effect, MatchedRule, RuleMode, TargetFacts};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::RESTRICTED_REQUIRES_PROXY;
use crate::glob::{HostPattern, PathGlob, wildcard_matches};
use crate::params::{number, same, same_text};
use crate::windows::{WindowSpec, Windows};

/// The code of a refusal by the caller's deny rule.
pub const REQUEST_RULE_DENIED: &str = "request_rule_denied";

fn matched(kind: &str, code: &str, detail: &str) -> MatchedRule {
    MatchedRule {
        // The caller's rule is not stored: it has the nil id and version 0.
        rule_id: RuleId::from_uuid(uuid::Uuid::nil()),
        version: 0,
        kind: kind.to_owned(),
        effect: Effect::Deny,
        mode: RuleMode::Enforce,
        code: code.to_owned(),
        detail: detail.to_owned(),
        approval: None,
    }
}

/// The refusal when evaluation itself failed.
pub fn failed() -> MatchedRule {
    matched(
        "request_rule",
        REQUEST_RULE_DENIED,
        "the request rule could not be evaluated",
    )
}

/// Evaluates the caller's rule: `Some` when it refuses the call.
pub fn evaluate(rule: &RequestRule, facts: &DecisionFacts) -> Option<MatchedRule> {
    match rule {
        RequestRule::JsonMatch { when, denies } => {
            if !denies {
                return None;
            }
            json_match(when.as_ref(), facts)
        }
        RequestRule::Content { kind, body } if kind == "content_match" => {
            content_match(body, facts)
        }
        RequestRule::Content { kind, .. } => Some(matched(
            kind,
            REQUEST_RULE_DENIED,
            "unknown request rule type",
        )),
    }
}

/// One or several strings.
fn strings(v: &Value) -> Option<Vec<&str>> {
    match v {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(items) => items.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

/// A named parameter of the call: a body field (JSON pointer, or a top-level key), else the query
/// values of that name. `Err` when the body is there but cannot be read.
fn lookup<'a>(target: &'a TargetFacts, name: &str) -> Result<Vec<ParamValue<'a>>, ()> {
    if let Some(body) = &target.body {
        match &body.json {
            Some(json) => {
                let found = if name.starts_with('/') {
                    json.pointer(name)
                } else {
                    json.get(name)
                };
                if let Some(v) = found {
                    return Ok(vec![ParamValue::Json(v)]);
                }
            }
            None => return Err(()),
        }
    }
    Ok(target
        .query
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| ParamValue::Text(v))
        .collect())
}

enum ParamValue<'a> {
    Json(&'a Value),
    Text(&'a str),
}

impl ParamValue<'_> {
    fn equals(&self, expected: &Value) -> bool {
        match self {
            ParamValue::Json(v) => same(expected, v),
            ParamValue::Text(t) => same_text(expected, t),
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            ParamValue::Json(v) => v.as_f64(),
            ParamValue::Text(t) => number(t),
        }
    }

    /// The value as a list of strings (scalars as text); `None` for objects.
    fn texts(&self) -> Option<Vec<String>> {
        fn text(v: &Value) -> Option<String> {
            match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        }
        match self {
            ParamValue::Text(t) => Some(vec![(*t).to_owned()]),
            ParamValue::Json(Value::Array(items)) => items.iter().map(text).collect(),
            ParamValue::Json(v) => text(v).map(|t| vec![t]),
        }
    }
}

fn json_match(when: Option<&Value>, facts: &DecisionFacts) -> Option<MatchedRule> {
    let deny = || {
        Some(matched(
            "json_match",
            REQUEST_RULE_DENIED,
            "the request rule denies this call",
        ))
    };
    let Some(when) = when else { return deny() };
    let Some(conditions) = when.as_object() else {
        return deny();
    };
    let target = &facts.target;
    let proxy = facts.mode == CallMode::Proxy;
    let mut needs_body = false;
    for (key, cond) in conditions {
        let met = match key.as_str() {
            "method" => {
                !proxy
                    || strings(cond)
                        .is_none_or(|ms| ms.iter().any(|m| m.eq_ignore_ascii_case(&target.method)))
            }
            "host" => strings(cond).is_none_or(|hs| {
                hs.iter()
                    .any(|h| HostPattern::parse(h).map_or(true, |p| p.matches(&target.host)))
            }),
            "path" => strings(cond).is_none_or(|ps| {
                ps.iter()
                    .any(|p| PathGlob::parse(p).map_or(true, |g| g.matches(&target.path)))
            }),
            "query" => match cond.as_object() {
                Some(pairs) => pairs.iter().all(|(name, expected)| {
                    let values: Vec<&String> = target
                        .query
                        .iter()
                        .filter(|(k, _)| k == name)
                        .map(|(_, v)| v)
                        .collect();
                    values.is_empty() || values.iter().any(|v| same_text(expected, v))
                }),
                None => true,
            },
            "body" => {
                needs_body = true;
                true
            }
            // A condition this server does not know cannot be shown false.
            _ => true,
        };
        if !met {
            return None;
        }
    }
    if needs_body {
        if !proxy {
            return Some(matched(
                "json_match",
                RESTRICTED_REQUIRES_PROXY,
                "the request rule reads the body: use the proxy",
            ));
        }
        if let Some(Value::Object(fields)) = conditions.get("body") {
            for (name, expected) in fields {
                match lookup(target, name) {
                    Err(()) => {}
                    Ok(values) if values.is_empty() => {}
                    Ok(values) => {
                        if !values.iter().any(|v| v.equals(expected)) {
                            return None;
                        }
                    }
                }
            }
        }
    }
    deny()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContentMatch {
    #[serde(rename = "match", default)]
    _match: Option<Value>,
    #[serde(default)]
    params: Vec<ContentParam>,
    effect: String,
    #[serde(default)]
    redact: Option<Value>,
    #[serde(default)]
    step_up: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContentParam {
    name: String,
    op: String,
    #[serde(default)]
    value: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutsideWindows {
    windows: Vec<WindowSpec>,
    timezone: String,
}

/// Whether one `content_match` condition holds (a condition that cannot be evaluated holds).
fn condition(p: &ContentParam, facts: &DecisionFacts) -> bool {
    if p.op == "outside_windows" {
        return match serde_json::from_value::<OutsideWindows>(p.value.clone())
            .ok()
            .and_then(|w| Windows::compile(&w.timezone, &w.windows).ok())
        {
            Some((w, _, _)) => !w.contains(facts.at),
            None => true,
        };
    }
    let values = match lookup(&facts.target, &p.name) {
        Ok(v) if !v.is_empty() => v,
        _ => return true,
    };
    let bound = p.value.as_f64();
    let cmp = |f: fn(f64, f64) -> bool| {
        values.iter().any(|v| match (v.number(), bound) {
            (Some(x), Some(b)) => f(x, b),
            _ => true,
        })
    };
    match p.op.as_str() {
        "equals" => values.iter().any(|v| v.equals(&p.value)),
        "gt" => cmp(|x, b| x > b),
        "gte" => cmp(|x, b| x >= b),
        "lt" => cmp(|x, b| x < b),
        "lte" => cmp(|x, b| x <= b),
        "any_in" | "not_subset_of" => {
            let Some(patterns) = strings(&p.value) else {
                return true;
            };
            let texts: Option<Vec<String>> = values
                .iter()
                .map(ParamValue::texts)
                .collect::<Option<Vec<_>>>()
                .map(|v| v.concat());
            let Some(texts) = texts else { return true };
            let hit = |t: &String| patterns.iter().any(|p| wildcard_matches(p, t));
            if p.op == "any_in" {
                texts.iter().any(hit)
            } else {
                !texts.iter().all(hit)
            }
        }
        _ => true,
    }
}

fn content_match(body: &Map<String, Value>, facts: &DecisionFacts) -> Option<MatchedRule> {
    let kind = "content_match";
    let Ok(rule) = serde_json::from_value::<ContentMatch>(Value::Object(body.clone())) else {
        return Some(matched(
            kind,
            REQUEST_RULE_DENIED,
            "the request rule could not be read",
        ));
    };
    let _ = (&rule.redact, &rule.step_up);
    let needs_content = rule.params.iter().any(|p| p.op != "outside_windows");
    if needs_content && facts.mode == CallMode::Retrieve {
        // The conditions on the content cannot be known: the rule may fire, so only the proxy
        // can enforce it.
        let outside_any_window = rule
            .params
            .iter()
            .filter(|p| p.op == "outside_windows")
            .all(|p| condition(p, facts));
        return outside_any_window.then(|| {
            matched(
                kind,
                RESTRICTED_REQUIRES_PROXY,
                "the request rule reads the call's content: use the proxy",
            )
        });
    }
    if !rule.params.iter().all(|p| condition(p, facts)) {
        return None;
    }
    let (code, detail) = match rule.effect.as_str() {
        "step_up" => (
            "step_up_required",
            "the request rule requires a recent sign-in",
        ),
        "redact" => (
            "redact_discharge_failed",
            "the request rule's redaction cannot be applied",
        ),
        _ => (REQUEST_RULE_DENIED, "the request rule denies this call"),
    };
    Some(matched(kind, code, detail))
}
