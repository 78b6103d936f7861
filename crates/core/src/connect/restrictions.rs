//! `requested_grant.restrictions` of a Connect session: the methods and endpoints the new
//! grant may be used for. They are checked when the session is made and become two policy
//! rules on the grant (`method`, `url`) when the session creates it. Both kinds need to see
//! the call, so a restricted grant is proxy-only (retrieve mode answers
//! `restricted_grant_requires_proxy`); a rule on a grant binds every delegation made from it.
//!
//! Endpoint grammar: `scheme://host[:port][path-glob]` where `scheme` is `https` or `http`,
//! `host` a host name or IP address, or `*.suffix` (any sub-domain of `suffix`), `port` the
//! port (default: the scheme's), and the path glob starts with `/` (`*` stays inside one
//! segment, `**` crosses `/`; no path at all means every path). No user info, query or
//! fragment. Example: `https://api.github.com/repos/**`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::audit::{Actor, AuditEvent, action};
use crate::error::{Error, Result, ensure};
use crate::ids::{ConnectSessionId, GrantId, RuleId};
use crate::policies::rule_event;
use crate::ports::StoreError;
use crate::rules::{Effect, Rule, RuleMode, RuleTarget};
use crate::time::Timestamp;
use crate::vault::Vault;

/// Most methods a session may allow.
pub const MAX_METHODS: usize = 50;
/// Most endpoint patterns a session may allow.
pub const MAX_ENDPOINTS: usize = 200;
/// Longest endpoint pattern.
const MAX_ENDPOINT_LEN: usize = 2048;
/// Longest method name.
const MAX_METHOD_LEN: usize = 32;

/// What the caller sent (`None`: the list was not given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestrictionsInput {
    /// `allowed_methods`.
    pub allowed_methods: Option<Vec<String>>,
    /// `allowed_endpoints`.
    pub allowed_endpoints: Option<Vec<String>>,
}

/// Restrictions as a session stores them: normalised, each present list non-empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRestrictions {
    /// Upper-case methods, no duplicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_methods: Option<Vec<String>>,
    /// The `url` rule's allow entries (`host`, `path`, `scheme`, `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_endpoints: Option<Vec<Value>>,
}

impl GrantRestrictions {
    /// Checks and normalises what the caller sent. An empty list, or neither list, is refused:
    /// restrictions that restrict nothing (or everything) are a mistake to report, not guess.
    pub fn parse(input: RestrictionsInput) -> Result<GrantRestrictions> {
        ensure(
            input.allowed_methods.is_some() || input.allowed_endpoints.is_some(),
            || "requested_grant.restrictions needs allowed_methods or allowed_endpoints".into(),
        )?;
        let allowed_methods = input.allowed_methods.map(methods).transpose()?;
        let allowed_endpoints = input
            .allowed_endpoints
            .map(|list| {
                ensure(!list.is_empty() && list.len() <= MAX_ENDPOINTS, || {
                    format!("allowed_endpoints needs between 1 and {MAX_ENDPOINTS} patterns")
                })?;
                let mut out: Vec<Value> = Vec::with_capacity(list.len());
                for text in &list {
                    let entry = endpoint(text)?;
                    if !out.contains(&entry) {
                        out.push(entry);
                    }
                }
                Ok::<_, Error>(out)
            })
            .transpose()?;
        Ok(GrantRestrictions {
            allowed_methods,
            allowed_endpoints,
        })
    }

    /// The rules they make on `grant` (method first, then url), not yet validated.
    fn rules(
        &self,
        app: &crate::ids::AppId,
        grant: GrantId,
        session: ConnectSessionId,
        at: Timestamp,
    ) -> Vec<Rule> {
        let rule = |kind: &str, body: Value| Rule {
            id: RuleId::new(),
            app_id: *app,
            version: 1,
            target: RuleTarget::Grant(grant),
            kind: kind.to_owned(),
            effect: Effect::Deny,
            mode: RuleMode::Enforce,
            body,
            description: Some(format!(
                "requested_grant.restrictions of Connect session {session}"
            )),
            created_at: at,
        };
        let mut out = Vec::new();
        if let Some(m) = &self.allowed_methods {
            out.push(rule("method", json!({ "allow": m })));
        }
        if let Some(e) = &self.allowed_endpoints {
            out.push(rule("url", json!({ "allow": e })));
        }
        out
    }
}

/// Normalises a method list: upper case, letters only, no duplicates, 1 to [`MAX_METHODS`].
fn methods(list: Vec<String>) -> Result<Vec<String>> {
    ensure(!list.is_empty() && list.len() <= MAX_METHODS, || {
        format!("allowed_methods needs between 1 and {MAX_METHODS} methods")
    })?;
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for m in list {
        let up = m.trim().to_ascii_uppercase();
        ensure(
            !up.is_empty()
                && up.len() <= MAX_METHOD_LEN
                && up.chars().all(|c| c.is_ascii_uppercase()),
            || format!("allowed_methods: {m:?} is not an HTTP method"),
        )?;
        if !out.contains(&up) {
            out.push(up);
        }
    }
    Ok(out)
}

/// Parses one endpoint pattern (see the module's grammar) into a `url` allow entry.
fn endpoint(text: &str) -> Result<Value> {
    let bad = |why: &str| Error::Invalid(format!("allowed_endpoints: {text:?} {why}"));
    if text.len() > MAX_ENDPOINT_LEN {
        return Err(bad("is too long"));
    }
    if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '@' | '\\'))
    {
        return Err(bad(
            "must not hold spaces, control characters, `?`, `#`, `@` or `\\`",
        ));
    }
    let lower = text.to_ascii_lowercase();
    let (scheme, default_port, rest) = if lower.starts_with("https://") {
        ("https", 443, &text["https://".len()..])
    } else if lower.starts_with("http://") {
        ("http", 80, &text["http://".len()..])
    } else {
        return Err(bad("must start with https:// or http://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/**"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => {
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p != 0 && !port.starts_with('+'))
                .ok_or_else(|| bad("has an invalid port"))?;
            (host, port)
        }
        None => (authority, default_port),
    };
    let host = host.to_ascii_lowercase();
    let plain = host.strip_prefix("*.").unwrap_or(&host);
    if plain.is_empty()
        || host.len() > 253
        || plain.starts_with('.')
        || plain.ends_with('.')
        || plain.contains("..")
        || !plain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(bad(
            "needs a host name, IPv4 address or `*.suffix` (letters, digits, `.`, `-`)",
        ));
    }
    if path.contains("***") {
        return Err(bad("has `***` in its path"));
    }
    Ok(json!({ "host": host, "path": path, "scheme": scheme, "port": port }))
}

impl Vault {
    /// Checks that the engine accepts the rules `restrictions` make (on a grant yet to be).
    pub(super) fn check_restrictions(
        &self,
        app: crate::ids::AppId,
        session: ConnectSessionId,
        restrictions: &GrantRestrictions,
    ) -> Result<()> {
        let rules = restrictions.rules(&app, GrantId::new(), session, self.now());
        for rule in &rules {
            self.rules()
                .validate(rule)
                .map_err(|m| Error::Invalid(format!("requested_grant.restrictions: {m}")))?;
        }
        Ok(())
    }

    /// Stores the rules of `restrictions` on `grant`, each audited with the session as their
    /// source. Called before the grant is stored: a grant is never usable without them (rules
    /// of a grant that never came to be restrict nothing, and [`Self::drop_restrictions`]
    /// removes them). Returns the rules stored.
    pub(super) async fn attach_restrictions(
        &self,
        app: crate::ids::AppId,
        session: ConnectSessionId,
        grant: GrantId,
        restrictions: &GrantRestrictions,
    ) -> Result<Vec<Rule>> {
        let mut stored = Vec::new();
        for mut rule in restrictions.rules(&app, grant, session, self.now()) {
            rule.body = self.rules().validate(&rule).map_err(Error::Invalid)?;
            let event = from_session(
                rule_event(&rule, action::POLICY_RULE_ADDED, Actor::system()),
                session,
            );
            match self.store().insert_rule(&rule, &event).await {
                Ok(()) => stored.push(rule),
                Err(e) => {
                    self.drop_restrictions(app, session, &stored).await;
                    return Err(match e {
                        StoreError::Conflict(_) => {
                            Error::Conflict("a rule with this id exists; try again".into())
                        }
                        other => other.into(),
                    });
                }
            }
        }
        Ok(stored)
    }

    /// Removes the rules [`Self::attach_restrictions`] stored for a grant that was not made
    /// after all (best effort: left behind, they name no grant and restrict nothing).
    pub(super) async fn drop_restrictions(
        &self,
        app: crate::ids::AppId,
        session: ConnectSessionId,
        rules: &[Rule],
    ) {
        for rule in rules {
            let event = from_session(
                AuditEvent {
                    at: self.now(),
                    ..rule_event(rule, action::POLICY_RULE_REMOVED, Actor::system())
                },
                session,
            );
            if let Err(error) = self.store().delete_rule(app, rule.id, &event).await {
                tracing::warn!(rule = %rule.id, %error, "an unused restriction rule was left behind");
            }
        }
    }
}

/// A rule event marked as the work of a Connect session's restrictions.
fn from_session(mut event: AuditEvent, session: ConnectSessionId) -> AuditEvent {
    if let Some(serde_json::Value::Object(details)) = event.details.as_mut() {
        details.insert("source".into(), "connect_session".into());
        details.insert("connect_session_id".into(), json!(session));
    }
    event
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(methods: Option<&[&str]>, endpoints: Option<&[&str]>) -> Result<GrantRestrictions> {
        GrantRestrictions::parse(RestrictionsInput {
            allowed_methods: methods.map(|l| l.iter().map(|s| (*s).to_owned()).collect()),
            allowed_endpoints: endpoints.map(|l| l.iter().map(|s| (*s).to_owned()).collect()),
        })
    }

    #[test]
    fn endpoints_parse_into_url_entries() {
        let r = parse(
            Some(&["get", "GET", " post "]),
            Some(&[
                "https://API.github.com/repos/**",
                "http://127.0.0.1:8080/v1/*",
                "https://*.example.com",
            ]),
        )
        .unwrap();
        assert_eq!(r.allowed_methods.unwrap(), vec!["GET", "POST"]);
        assert_eq!(
            r.allowed_endpoints.unwrap(),
            vec![
                json!({"host": "api.github.com", "path": "/repos/**", "scheme": "https", "port": 443}),
                json!({"host": "127.0.0.1", "path": "/v1/*", "scheme": "http", "port": 8080}),
                json!({"host": "*.example.com", "path": "/**", "scheme": "https", "port": 443}),
            ]
        );
    }

    #[test]
    fn bad_restrictions_are_refused() {
        for (methods, endpoints) in [
            (None, None),
            (Some(&[][..]), None),
            (None, Some(&[][..])),
            (Some(&["GE T"][..]), None),
            (Some(&["G3T"][..]), None),
            (None, Some(&["ftp://x.com/"][..])),
            (None, Some(&["api.github.com/repos"][..])),
            (None, Some(&["https://user@x.com/"][..])),
            (None, Some(&["https://x.com/a?b=1"][..])),
            (None, Some(&["https://x.com/a#b"][..])),
            (None, Some(&["https://x.com:0/"][..])),
            (None, Some(&["https://x.com:99999/"][..])),
            (None, Some(&["https:///path"][..])),
            (None, Some(&["https://x..com/"][..])),
            (None, Some(&["https://x.com/a/***"][..])),
            (None, Some(&["https://[::1]/"][..])),
        ] {
            assert!(
                matches!(parse(methods, endpoints), Err(Error::Invalid(_))),
                "{methods:?} {endpoints:?}"
            );
        }
        let many: Vec<String> = (0..51)
            .map(|i| format!("M{}", "A".repeat(i % 20)))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(parse(Some(&many), None).is_err());
        let hosts: Vec<String> = (0..201).map(|i| format!("https://h{i}.com/")).collect();
        let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
        assert!(parse(None, Some(&hosts)).is_err());
    }
}
