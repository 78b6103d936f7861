//! Unit tests of the engine over constructed facts: every kind allowed and refused, targets,
//! shadow mode, retrieve mode, the fail-closed list, request rules and replay.

use alter_core::ids::{AgentId, AppId, EventId, GrantId, KeyId, RuleId};
use alter_core::request_rule::RequestRule;
use alter_core::rules::{
    BodyFacts, CallMode, DecisionFacts, Effect, FACTS_VERSION, Outcome, PastDecision, Rule,
    RuleEngine, RuleMode, RuleTarget, TargetFacts,
};
use alter_core::time::Timestamp;
use serde_json::{Value, json};

use crate::Engine;

struct World {
    app: AppId,
    agent: AgentId,
    grant: GrantId,
    key: KeyId,
}

fn world() -> World {
    World {
        app: AppId::new(),
        agent: AgentId::new(),
        grant: GrantId::new(),
        key: KeyId::new(),
    }
}

impl World {
    /// A proxied `POST https://api.github.com/repos/acme/x/issues` on Monday 2026-12-07 10:00 UTC.
    fn facts(&self) -> DecisionFacts {
        DecisionFacts {
            version: FACTS_VERSION,
            at: Timestamp::parse_rfc3339("2026-12-07T10:00:00Z").unwrap(),
            app_id: self.app,
            mode: CallMode::Proxy,
            key_id: self.key,
            key_type: "ak".into(),
            root_key_id: None,
            agent_typed: false,
            agent_id: Some(self.agent),
            source_ip: Some("203.0.113.7".parse().unwrap()),
            grants: vec![self.grant],
            provider_id: "github".into(),
            credential_kind: "oauth".into(),
            user_id: None,
            groups: vec!["grp_eng".into()],
            target: TargetFacts {
                method: "POST".into(),
                scheme: "https".into(),
                host: "api.github.com".into(),
                port: 443,
                path: "/repos/acme/x/issues".into(),
                query: vec![("per_page".into(), "50".into())],
                body: Some(body(json!({"title": "bug", "amount": 40, "labels": ["a"]}))),
            },
            reason: None,
        }
    }

    fn rule(&self, kind: &str, effect: Effect, body: Value) -> Rule {
        self.rule_on(RuleTarget::App, kind, effect, body)
    }

    fn rule_on(&self, target: RuleTarget, kind: &str, effect: Effect, body: Value) -> Rule {
        Rule {
            id: RuleId::new(),
            app_id: self.app,
            version: 1,
            target,
            kind: kind.into(),
            effect,
            mode: RuleMode::Enforce,
            body,
            description: None,
            created_at: Timestamp::from_unix_seconds(0),
        }
    }
}

fn body(v: Value) -> BodyFacts {
    BodyFacts {
        json: Some(v),
        truncated: false,
        len: 10,
        sha256: "00".into(),
    }
}

/// Validates (as the store would) then evaluates one rule.
fn decide(engine: &Engine, rule: &Rule, facts: &DecisionFacts) -> (Outcome, Vec<String>) {
    let mut stored = rule.clone();
    stored.body = engine.validate(rule).expect("valid rule");
    let d = engine.evaluate(&[stored], facts);
    (
        d.outcome,
        d.matched.iter().map(|m| m.code.clone()).collect(),
    )
}

fn denied_with(engine: &Engine, rule: &Rule, facts: &DecisionFacts, code: &str) {
    let (outcome, codes) = decide(engine, rule, facts);
    assert_eq!(outcome, Outcome::Deny, "{}", rule.kind);
    assert_eq!(codes, vec![code.to_owned()], "{}", rule.kind);
}

fn allowed(engine: &Engine, rule: &Rule, facts: &DecisionFacts) {
    let (outcome, codes) = decide(engine, rule, facts);
    assert_eq!(outcome, Outcome::Allow, "{}: {codes:?}", rule.kind);
    assert!(codes.is_empty());
}

#[test]
fn ip_allowlist_allows_listed_networks_and_refuses_others() {
    let (e, w) = (Engine::new(), world());
    let rule = w.rule(
        "ip_allowlist",
        Effect::Deny,
        json!({"cidrs": ["203.0.113.0/24", "2001:db8::/32"]}),
    );
    let mut f = w.facts();
    allowed(&e, &rule, &f);
    f.source_ip = Some("2001:db8::1".parse().unwrap());
    allowed(&e, &rule, &f);
    // An IPv4-mapped address is judged as the IPv4 address it carries.
    f.source_ip = Some("::ffff:203.0.113.9".parse().unwrap());
    allowed(&e, &rule, &f);
    f.source_ip = Some("198.51.100.1".parse().unwrap());
    denied_with(&e, &rule, &f, "ip_not_allowed");
    f.source_ip = None;
    denied_with(&e, &rule, &f, "ip_not_allowed");
}

#[test]
fn ip_allowlist_bodies_are_checked_and_normalised() {
    let (e, w) = (Engine::new(), world());
    let normal = e
        .validate(&w.rule(
            "ip_allowlist",
            Effect::Deny,
            json!({"cidrs": ["203.0.113.9/24", "::ffff:10.0.0.0/104", "192.0.2.1"]}),
        ))
        .unwrap();
    assert_eq!(
        normal,
        json!({"cidrs": ["203.0.113.0/24", "10.0.0.0/8", "192.0.2.1/32"]})
    );
    for bad in [
        json!({"cidrs": ["0.0.0.0/0"]}),
        json!({"cidrs": ["::/0"]}),
        json!({"cidrs": ["10.0.0.0/33"]}),
        json!({"cidrs": ["nope"]}),
        json!({"cidrs": []}),
        json!({"cidrs": ["10.0.0.0/8"], "extra": 1}),
        json!({"cidr": ["10.0.0.0/8"]}),
    ] {
        assert!(
            e.validate(&w.rule("ip_allowlist", Effect::Deny, bad.clone()))
                .is_err(),
            "{bad}"
        );
    }
    let many: Vec<String> = (0..201).map(|i| format!("10.0.{}.0/24", i % 256)).collect();
    assert!(
        e.validate(&w.rule("ip_allowlist", Effect::Deny, json!({"cidrs": many})))
            .is_err()
    );
}

#[test]
fn time_window_allows_inside_and_refuses_outside() {
    let (e, w) = (Engine::new(), world());
    let rule = w.rule(
        "time_window",
        Effect::Deny,
        json!({"timezone": "America/New_York",
               "windows": [{"days": ["mon","tue","wed","thu","fri"], "start": "09:00", "end": "17:00"}]}),
    );
    let mut f = w.facts();
    // 10:00 UTC is 05:00 in New York.
    denied_with(&e, &rule, &f, "outside_time_window");
    f.at = Timestamp::parse_rfc3339("2026-12-07T15:00:00Z").unwrap();
    allowed(&e, &rule, &f);
    assert!(
        e.validate(&w.rule(
            "time_window",
            Effect::Deny,
            json!({"timezone": "Nowhere/Land", "windows": [{"days": ["mon"], "start": "09:00", "end": "17:00"}]})
        ))
        .is_err()
    );
}

#[test]
fn url_allowlist_checks_host_path_and_method() {
    let (e, w) = (Engine::new(), world());
    let rule = w.rule(
        "url",
        Effect::Deny,
        json!({"allow": [
            {"host": "api.github.com", "path": "/repos/acme/*/issues", "methods": ["get", "POST"]},
            {"host": "*.example.com"}
        ]}),
    );
    let mut f = w.facts();
    allowed(&e, &rule, &f);
    f.target.path = "/repos/acme/x/y/issues".into();
    denied_with(&e, &rule, &f, "url_not_allowed");
    f.target.path = "/repos/acme/x/issues".into();
    f.target.method = "DELETE".into();
    denied_with(&e, &rule, &f, "url_not_allowed");
    f.target.host = "api.example.com".into();
    f.target.path = "/anything/at/all".into();
    allowed(&e, &rule, &f);
    f.target.host = "example.com".into();
    denied_with(&e, &rule, &f, "url_not_allowed");
    let normal = e.validate(&rule).unwrap();
    assert_eq!(normal["allow"][0]["methods"], json!(["GET", "POST"]));
    assert_eq!(normal["allow"][1]["path"], json!("/**"));
}

#[test]
fn method_allowlist() {
    let (e, w) = (Engine::new(), world());
    let rule = w.rule("method", Effect::Deny, json!({"allow": ["GET", "post"]}));
    let mut f = w.facts();
    allowed(&e, &rule, &f);
    f.target.method = "DELETE".into();
    denied_with(&e, &rule, &f, "method_not_allowed");
    assert!(
        e.validate(&w.rule("method", Effect::Deny, json!({"allow": ["G ET"]})))
            .is_err()
    );
}

#[test]
fn params_constraints_on_body_and_query() {
    let (e, w) = (Engine::new(), world());
    let rule = w.rule(
        "params",
        Effect::Deny,
        json!({"constraints": [
            {"in": "body", "field": "/amount", "op": "max", "value": 100},
            {"in": "body", "field": "/title", "op": "pattern", "value": "[a-z]+"},
            {"in": "body", "field": "/admin", "op": "forbidden"},
            {"in": "query", "field": "per_page", "op": "one_of", "value": [10, 50]}
        ]}),
    );
    let mut f = w.facts();
    allowed(&e, &rule, &f);
    let cases = [
        json!({"title": "bug", "amount": 101}),
        json!({"title": "bug!", "amount": 1}),
        json!({"title": "bug", "amount": 1, "admin": true}),
        json!({"title": "bug"}),
        json!({"title": "bug", "amount": "1"}),
    ];
    for case in cases {
        f.target.body = Some(body(case.clone()));
        denied_with(&e, &rule, &f, "parameter_not_allowed");
    }
    f.target.body = Some(body(json!({"title": "bug", "amount": 1})));
    f.target.query = vec![("per_page".into(), "20".into())];
    denied_with(&e, &rule, &f, "parameter_not_allowed");
    f.target.query = vec![
        ("per_page".into(), "10".into()),
        ("per_page".into(), "11".into()),
    ];
    denied_with(&e, &rule, &f, "parameter_not_allowed");
    f.target.query = vec![];
    denied_with(&e, &rule, &f, "parameter_not_allowed");
}

#[test]
fn values_the_log_redacted_are_unknown_to_a_replay() {
    let (e, w) = (Engine::new(), world());
    let rule = w.rule(
        "params",
        Effect::Deny,
        json!({"constraints": [{"in": "body", "field": "/api_key", "op": "equals", "value": "x"}]}),
    );
    let mut f = w.facts();
    f.target.body = Some(BodyFacts {
        json: Some(json!({"api_key": alter_core::rules::REDACTED})),
        truncated: false,
        len: 10,
        sha256: "00".into(),
    });
    let past = [PastDecision {
        event_id: alter_core::ids::EventId::new(),
        recorded: Outcome::Allow,
        facts: Some(f),
    }];
    let report = e.replay(std::slice::from_ref(&rule), &past);
    assert_eq!((report.total, report.indeterminate), (1, 1));
}

#[test]
fn params_fail_closed_on_unreadable_bodies() {
    let (e, w) = (Engine::new(), world());
    let rule = w.rule(
        "params",
        Effect::Deny,
        json!({"constraints": [{"in": "body", "field": "/admin", "op": "forbidden"}]}),
    );
    let mut f = w.facts();
    allowed(&e, &rule, &f);
    f.target.body = None;
    allowed(&e, &rule, &f);
    // Not JSON, or over the cap: a forbidden field could be hiding there.
    f.target.body = Some(BodyFacts {
        json: None,
        truncated: false,
        len: 3,
        sha256: "00".into(),
    });
    denied_with(&e, &rule, &f, "parameter_not_allowed");
    f.target.body = Some(BodyFacts {
        json: None,
        truncated: true,
        len: 1 << 20,
        sha256: "00".into(),
    });
    denied_with(&e, &rule, &f, "parameter_not_allowed");
}

#[test]
fn params_bodies_are_validated() {
    let (e, w) = (Engine::new(), world());
    for bad in [
        json!({"constraints": [{"in": "body", "field": "amount", "op": "max", "value": 1}]}),
        json!({"constraints": [{"in": "body", "field": "/a", "op": "max", "value": "x"}]}),
        json!({"constraints": [{"in": "body", "field": "/a", "op": "forbidden", "value": 1}]}),
        json!({"constraints": [{"in": "body", "field": "/a", "op": "pattern", "value": "("}]}),
        json!({"constraints": [{"in": "body", "field": "/a", "op": "pattern", "value": "a{1000}{1000}"}]}),
        json!({"constraints": [{"in": "body", "field": "/a", "op": "one_of", "value": []}]}),
        json!({"constraints": [{"in": "header", "field": "a", "op": "required"}]}),
        json!({"constraints": []}),
    ] {
        assert!(
            e.validate(&w.rule("params", Effect::Deny, bad.clone()))
                .is_err(),
            "{bad}"
        );
    }
}

#[test]
fn group_membership() {
    let (e, w) = (Engine::new(), world());
    let rule = w.rule(
        "group",
        Effect::Deny,
        json!({"any_of": ["grp_fin", "grp_eng"]}),
    );
    let mut f = w.facts();
    allowed(&e, &rule, &f);
    f.groups = vec!["grp_sales".into()];
    denied_with(&e, &rule, &f, "policy_denied");
}

#[test]
fn require_approval_holds_and_filters_apply() {
    let (e, w) = (Engine::new(), world());
    let rule = w.rule(
        "require_approval",
        Effect::Hold,
        json!({"approvers": ["usr_1"], "ttl_seconds": 600, "applies_to": {"methods": ["POST"]}}),
    );
    let mut f = w.facts();
    let (outcome, codes) = decide(&e, &rule, &f);
    assert_eq!(outcome, Outcome::Hold);
    assert_eq!(codes, vec!["approval_required"]);
    // The hold carries the rule's terms to the approval it creates.
    let decision = e.evaluate(std::slice::from_ref(&rule), &f);
    assert_eq!(
        decision.matched[0].approval,
        Some(alter_core::rules::ApprovalTerms {
            ttl_seconds: Some(600),
            approvers: vec!["usr_1".into()],
        })
    );
    f.target.method = "GET".into();
    allowed(&e, &rule, &f);
    assert!(
        e.validate(&w.rule("require_approval", Effect::Deny, json!({})))
            .is_err()
    );
    assert!(
        e.validate(&w.rule("require_approval", Effect::Hold, json!({"ttl_seconds": 5})))
            .is_err()
    );
    let terms = crate::approval_terms(&rule).unwrap();
    assert_eq!(terms.approvers, vec!["usr_1"]);
    assert_eq!(terms.ttl_seconds, Some(600));
}

#[test]
fn no_spelling_of_a_path_or_host_dodges_a_filter() {
    let (e, w) = (Engine::new(), world());
    let rule = w.rule(
        "require_approval",
        Effect::Hold,
        json!({"applies_to": {"methods": ["POST"], "paths": ["/v1/transfers"], "hosts": ["api.stripe.com"]}}),
    );
    let mut f = w.facts();
    f.target.method = "POST".into();
    f.target.host = "api.stripe.com".into();
    for path in [
        "/v1/transfers",
        "/v1/%74ransfers",
        "/v1//transfers",
        "/v1/transfers/",
        "/V1/Transfers",
        "/v1%2Ftransfers",
    ] {
        f.target.path = path.into();
        assert_eq!(decide(&e, &rule, &f).0, Outcome::Hold, "{path}");
    }
    f.target.path = "/v1/transfers".into();
    f.target.host = "api.stripe.com.".into();
    assert_eq!(decide(&e, &rule, &f).0, Outcome::Hold, "trailing dot");
    f.target.host = "api.stripe.com".into();
    f.target.path = "/v1/charges".into();
    allowed(&e, &rule, &f);
}

#[test]
fn rate_limit_asks_for_a_bucket_per_grant_agent_or_key() {
    let (e, w) = (Engine::new(), world());
    let f = w.facts();
    for (per, expect) in [
        ("grant", format!("grant:{}", w.grant)),
        ("agent", format!("agent:{}", w.agent)),
        ("key", format!("key:{}", w.key)),
    ] {
        let rule = w.rule(
            "rate_limit",
            Effect::Deny,
            json!({"per_minute": 60, "per": per}),
        );
        let stored = Rule {
            body: e.validate(&rule).unwrap(),
            ..rule.clone()
        };
        assert_eq!(stored.body["burst"], json!(60));
        let d = e.evaluate(&[stored], &f);
        assert_eq!(d.outcome, Outcome::Allow);
        assert_eq!(d.rate_limits.len(), 1);
        assert_eq!(d.rate_limits[0].bucket, format!("{}:{expect}", rule.id));
        assert_eq!(d.rate_limits[0].per_minute, 60);
    }
    // Without an agent, a per-agent limit does not count the call.
    let mut no_agent = w.facts();
    no_agent.agent_id = None;
    let rule = w.rule(
        "rate_limit",
        Effect::Deny,
        json!({"per_minute": 5, "burst": 2, "per": "agent"}),
    );
    assert!(
        e.evaluate(std::slice::from_ref(&rule), &no_agent)
            .rate_limits
            .is_empty()
    );
    // An agent key bound to no managed agent, and any key derived from it, count as one agent:
    // the key they come from.
    let root = KeyId::new();
    let mut derived = no_agent.clone();
    derived.agent_typed = true;
    derived.key_type = "dk".into();
    derived.root_key_id = Some(root);
    let demands = e
        .evaluate(std::slice::from_ref(&rule), &derived)
        .rate_limits;
    assert_eq!(demands[0].bucket, format!("{}:agent-key:{root}", rule.id));
    // A per-key limit counts a derived key against its parent: deriving does not reset it.
    let per_key = w.rule(
        "rate_limit",
        Effect::Deny,
        json!({"per_minute": 5, "per": "key"}),
    );
    let demands = e
        .evaluate(std::slice::from_ref(&per_key), &derived)
        .rate_limits;
    assert_eq!(demands[0].bucket, format!("{}:key:{root}", per_key.id));
    assert!(
        e.validate(&w.rule(
            "rate_limit",
            Effect::Hold,
            json!({"per_minute": 5, "per": "key"})
        ))
        .is_err()
    );
    assert!(
        e.validate(&w.rule(
            "rate_limit",
            Effect::Deny,
            json!({"per_minute": 0, "per": "key"})
        ))
        .is_err()
    );
}

#[test]
fn only_rules_whose_target_the_call_touches_apply() {
    let (e, w) = (Engine::new(), world());
    let deny_all = json!({"allow": ["HEAD"]});
    let f = w.facts();
    let other = world();
    let not_ours = [
        w.rule_on(
            RuleTarget::Provider("stripe".into()),
            "method",
            Effect::Deny,
            deny_all.clone(),
        ),
        w.rule_on(
            RuleTarget::Agent(AgentId::new()),
            "method",
            Effect::Deny,
            deny_all.clone(),
        ),
        w.rule_on(
            RuleTarget::Grant(GrantId::new()),
            "method",
            Effect::Deny,
            deny_all.clone(),
        ),
        // Another app's app-wide rule.
        other.rule("method", Effect::Deny, deny_all.clone()),
    ];
    let d = e.evaluate(&not_ours, &f);
    assert_eq!(d.outcome, Outcome::Allow);
    assert!(d.matched.is_empty());
    for target in [
        RuleTarget::App,
        RuleTarget::Provider("github".into()),
        RuleTarget::Agent(w.agent),
        RuleTarget::Grant(w.grant),
    ] {
        let d = e.evaluate(
            &[w.rule_on(target.clone(), "method", Effect::Deny, deny_all.clone())],
            &f,
        );
        assert_eq!(d.outcome, Outcome::Deny, "{target:?}");
    }
    // A delegation's chain: a rule on the root grant applies to calls through the delegation.
    let mut delegated = w.facts();
    delegated.grants = vec![GrantId::new(), w.grant];
    let d = e.evaluate(
        &[w.rule_on(RuleTarget::Grant(w.grant), "method", Effect::Deny, deny_all)],
        &delegated,
    );
    assert_eq!(d.outcome, Outcome::Deny);
}

#[test]
fn every_rule_is_evaluated_and_deny_beats_hold() {
    let (e, w) = (Engine::new(), world());
    let mut f = w.facts();
    f.source_ip = Some("198.51.100.1".parse().unwrap());
    let rules = [
        w.rule("require_approval", Effect::Hold, json!({})),
        w.rule(
            "ip_allowlist",
            Effect::Deny,
            json!({"cidrs": ["10.0.0.0/8"]}),
        ),
        w.rule("method", Effect::Deny, json!({"allow": ["GET"]})),
        w.rule("group", Effect::Deny, json!({"any_of": ["grp_eng"]})),
    ];
    let d = e.evaluate(&rules, &f);
    assert_eq!(d.outcome, Outcome::Deny);
    let codes: Vec<&str> = d.matched.iter().map(|m| m.code.as_str()).collect();
    assert_eq!(
        codes,
        ["approval_required", "ip_not_allowed", "method_not_allowed"]
    );
    // Without the denials, the hold stands.
    let d = e.evaluate(&rules[..1], &f);
    assert_eq!(d.outcome, Outcome::Hold);
    // A typed kind with effect hold holds instead of denying.
    let d = e.evaluate(
        &[w.rule("method", Effect::Hold, json!({"allow": ["GET"]}))],
        &f,
    );
    assert_eq!(d.outcome, Outcome::Hold);
    assert_eq!(d.matched[0].code, "approval_required");
}

#[test]
fn shadow_rules_match_without_effect() {
    let (e, w) = (Engine::new(), world());
    let mut rule = w.rule("method", Effect::Deny, json!({"allow": ["GET"]}));
    rule.mode = RuleMode::Shadow;
    let mut hold = w.rule("require_approval", Effect::Hold, json!({}));
    hold.mode = RuleMode::Shadow;
    let mut rate = w.rule(
        "rate_limit",
        Effect::Deny,
        json!({"per_minute": 1, "per": "key"}),
    );
    rate.mode = RuleMode::Shadow;
    let d = e.evaluate(&[rule, hold, rate], &w.facts());
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(d.matched.len(), 2);
    assert!(d.matched.iter().all(|m| m.mode == RuleMode::Shadow));
    assert!(d.rate_limits.is_empty());
}

#[test]
fn retrieve_mode_refuses_rules_only_the_proxy_can_enforce() {
    let (e, w) = (Engine::new(), world());
    let mut f = w.facts();
    f.mode = CallMode::Retrieve;
    f.target.body = None;
    for (rule, code) in [
        (
            w.rule(
                "url",
                Effect::Deny,
                json!({"allow": [{"host": "api.github.com"}]}),
            ),
            "restricted_grant_requires_proxy",
        ),
        (
            w.rule("method", Effect::Deny, json!({"allow": ["POST"]})),
            "restricted_grant_requires_proxy",
        ),
        (
            w.rule(
                "params",
                Effect::Deny,
                json!({"constraints": [{"in": "query", "field": "a", "op": "forbidden"}]}),
            ),
            "restricted_grant_requires_proxy",
        ),
        (
            w.rule("require_approval", Effect::Hold, json!({})),
            "hitl_grant_requires_proxy",
        ),
        (
            w.rule("method", Effect::Hold, json!({"allow": ["POST"]})),
            "hitl_grant_requires_proxy",
        ),
        // A claimed method cannot dodge a filter: in retrieve mode it counts as met.
        (
            w.rule(
                "require_approval",
                Effect::Hold,
                json!({"applies_to": {"methods": ["DELETE"]}}),
            ),
            "hitl_grant_requires_proxy",
        ),
        // A hold rule of a stateless kind that fires cannot wait in retrieve mode.
        (
            w.rule("group", Effect::Hold, json!({"any_of": ["grp_x"]})),
            "hitl_grant_requires_proxy",
        ),
        // An operator marks a grant (or a provider, an agent, the app) restricted.
        (
            w.rule("proxy_only", Effect::Deny, json!({})),
            "restricted_grant_requires_proxy",
        ),
    ] {
        denied_with(&e, &rule, &f, code);
    }
    // Kinds that need nothing from the call still work in retrieve mode.
    allowed(
        &e,
        &w.rule(
            "ip_allowlist",
            Effect::Deny,
            json!({"cidrs": ["203.0.113.0/24"]}),
        ),
        &f,
    );
    allowed(
        &e,
        &w.rule("group", Effect::Hold, json!({"any_of": ["grp_eng"]})),
        &f,
    );
    // A restricted grant is used through the proxy as any other.
    let mut proxied = f.clone();
    proxied.mode = CallMode::Proxy;
    allowed(&e, &w.rule("proxy_only", Effect::Deny, json!({})), &proxied);
    // A filter on the mode is the operator's explicit choice.
    allowed(
        &e,
        &w.rule(
            "url",
            Effect::Deny,
            json!({"allow": [{"host": "x.com"}], "applies_to": {"modes": ["proxy"]}}),
        ),
        &f,
    );
}

#[test]
fn broken_rules_deny() {
    let (e, w) = (Engine::new(), world());
    let f = w.facts();
    for rule in [
        w.rule("teleport", Effect::Deny, json!({})),
        w.rule("method", Effect::Deny, json!({"allow": "GET"})),
        w.rule(
            "rate_limit",
            Effect::Hold,
            json!({"per_minute": 1, "per": "key"}),
        ),
    ] {
        assert!(e.validate(&rule).is_err());
        let d = e.evaluate(&[rule], &f);
        assert_eq!(d.outcome, Outcome::Deny);
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.matched[0].code, "policy_evaluation_failed");
    }
    // A broken shadow rule still denies: an error is never silently passed over.
    let mut shadow = w.rule("teleport", Effect::Deny, json!({}));
    shadow.mode = RuleMode::Shadow;
    assert_eq!(e.evaluate(&[shadow], &f).outcome, Outcome::Deny);
    // A per-grant limit on a call without a grant cannot count it.
    let mut no_grant = w.facts();
    no_grant.grants.clear();
    let d = e.evaluate(
        &[w.rule(
            "rate_limit",
            Effect::Deny,
            json!({"per_minute": 1, "per": "grant"}),
        )],
        &no_grant,
    );
    assert_eq!(d.outcome, Outcome::Deny);
}

#[test]
fn the_cache_follows_the_body_not_only_the_version() {
    let (e, w) = (Engine::new(), world());
    let mut f = w.facts();
    f.target.method = "GET".into();
    let rule = w.rule("method", Effect::Deny, json!({"allow": ["GET"]}));
    assert_eq!(
        e.evaluate(std::slice::from_ref(&rule), &f).outcome,
        Outcome::Allow
    );
    let changed = Rule {
        body: json!({"allow": ["POST"]}),
        ..rule
    };
    assert_eq!(e.evaluate(&[changed], &f).outcome, Outcome::Deny);
}

fn request_rule(kind: &str, body: Value) -> RequestRule {
    RequestRule::parse(kind, body.as_object().cloned().unwrap())
}

#[test]
fn json_match_request_rules() {
    let (e, w) = (Engine::new(), world());
    let mut f = w.facts();
    let deny_post = request_rule(
        "json_match",
        json!({"when": {"method": "POST"}, "effect": "deny"}),
    );
    assert_eq!(
        e.evaluate_request_rule(&deny_post, &f).unwrap().code,
        "request_rule_denied"
    );
    f.target.method = "GET".into();
    assert!(e.evaluate_request_rule(&deny_post, &f).is_none());
    // In retrieve mode the method is only claimed: the condition counts as met.
    f.mode = CallMode::Retrieve;
    assert!(e.evaluate_request_rule(&deny_post, &f).is_some());
    let describe = request_rule(
        "json_match",
        json!({"when": {"method": "POST"}, "effect": "allow"}),
    );
    assert!(e.evaluate_request_rule(&describe, &f).is_none());
    // Body conditions need the proxy.
    let body_rule = request_rule(
        "json_match",
        json!({"when": {"host": "api.github.com", "body": {"/amount": 40}}, "effect": "deny"}),
    );
    assert_eq!(
        e.evaluate_request_rule(&body_rule, &f).unwrap().code,
        "restricted_grant_requires_proxy"
    );
    f.mode = CallMode::Proxy;
    assert!(e.evaluate_request_rule(&body_rule, &f).is_some());
    f.target.body = Some(body(json!({"amount": 41})));
    assert!(e.evaluate_request_rule(&body_rule, &f).is_none());
    f.target.host = "example.com".into();
    f.target.body = Some(body(json!({"amount": 40})));
    assert!(e.evaluate_request_rule(&body_rule, &f).is_none());
}

#[test]
fn content_match_request_rules() {
    let (e, w) = (Engine::new(), world());
    let mut f = w.facts();
    let rule = |effect: &str, params: Value| {
        request_rule(
            "content_match",
            json!({"match": {"families": ["payment"]}, "params": params, "effect": effect}),
        )
    };
    let big = rule("deny", json!([{"name": "amount", "op": "gt", "value": 30}]));
    assert_eq!(
        e.evaluate_request_rule(&big, &f).unwrap().code,
        "request_rule_denied"
    );
    let small = rule(
        "step_up",
        json!([{"name": "amount", "op": "gt", "value": 50}]),
    );
    assert!(e.evaluate_request_rule(&small, &f).is_none());
    let step = rule(
        "step_up",
        json!([{"name": "amount", "op": "lte", "value": 50}]),
    );
    assert_eq!(
        e.evaluate_request_rule(&step, &f).unwrap().code,
        "step_up_required"
    );
    let redact = rule(
        "redact",
        json!([{"name": "title", "op": "any_in", "value": ["b*"]}]),
    );
    assert_eq!(
        e.evaluate_request_rule(&redact, &f).unwrap().code,
        "redact_discharge_failed"
    );
    let subset = rule(
        "deny",
        json!([{"name": "labels", "op": "not_subset_of", "value": ["a", "b"]}]),
    );
    assert!(e.evaluate_request_rule(&subset, &f).is_none());
    f.target.body = Some(body(json!({"labels": ["a", "zzz"]})));
    assert!(e.evaluate_request_rule(&subset, &f).is_some());
    // Monday 10:00 UTC is inside Mon–Fri 09:00–17:00 UTC.
    let windows = json!({"windows": [{"days": ["mon","tue","wed","thu","fri"], "start": "09:00", "end": "17:00"}], "timezone": "UTC"});
    let after_hours = rule(
        "deny",
        json!([{"name": "time", "op": "outside_windows", "value": windows}]),
    );
    assert!(e.evaluate_request_rule(&after_hours, &f).is_none());
    f.at = Timestamp::parse_rfc3339("2026-12-07T20:00:00Z").unwrap();
    assert!(e.evaluate_request_rule(&after_hours, &f).is_some());
    // Retrieve mode: time-only rules are evaluated, content rules need the proxy.
    f.mode = CallMode::Retrieve;
    assert_eq!(
        e.evaluate_request_rule(&after_hours, &f).unwrap().code,
        "request_rule_denied"
    );
    assert_eq!(
        e.evaluate_request_rule(&big, &f).unwrap().code,
        "restricted_grant_requires_proxy"
    );
    // Unknown types and unreadable bodies refuse.
    assert!(
        e.evaluate_request_rule(&request_rule("regex_match", json!({})), &f)
            .is_some()
    );
    assert!(
        e.evaluate_request_rule(&request_rule("content_match", json!({"x": 1})), &f)
            .is_some()
    );
}

#[test]
fn replay_counts_exactly() {
    let (e, w) = (Engine::new(), world());
    let start = Timestamp::parse_rfc3339("2026-12-07T10:00:00Z").unwrap();
    let mut past = Vec::new();
    let mut ids = Vec::new();
    // 0..6: POSTs 10 s apart; 6: a GET; 7: no facts; 8: older facts; 9: truncated body.
    for i in 0..10 {
        let mut f = w.facts();
        f.at = start.plus_seconds(10 * i);
        if i == 6 {
            f.target.method = "GET".into();
        }
        if i == 8 {
            f.version = FACTS_VERSION - 1;
        }
        if i == 9 {
            f.target.body = Some(BodyFacts {
                json: None,
                truncated: true,
                len: 1 << 20,
                sha256: "00".into(),
            });
        }
        let id = EventId::new();
        ids.push(id);
        past.push(PastDecision {
            event_id: id,
            recorded: Outcome::Allow,
            facts: (i != 7).then_some(f),
        });
    }
    let hold_gets = w.rule(
        "require_approval",
        Effect::Hold,
        json!({"applies_to": {"methods": ["GET"]}}),
    );
    let params = w.rule(
        "params",
        Effect::Deny,
        json!({"constraints": [{"in": "body", "field": "/amount", "op": "max", "value": 100}]}),
    );
    // 3 per minute, burst 2: one token every 20 s.
    let rate = w.rule(
        "rate_limit",
        Effect::Deny,
        json!({"per_minute": 3, "burst": 2, "per": "key"}),
    );
    let report = e.replay(&[hold_gets.clone(), params.clone(), rate.clone()], &past);
    assert_eq!(report.total, 10);
    // Indeterminate: no facts (7), older facts (8), truncated body under params (9).
    assert_eq!(report.indeterminate, 3);
    // T = 20 s, tau = 20 s. Tokens at t=0 (tat 20), 10 (tat 40), 20 (tat 60); 30 refused
    // (60-30 > 20); 40 taken (tat 80); 50 refused; the GET at 60 is held and takes one.
    assert_eq!(report.deny, 2);
    assert_eq!(report.hold, 1);
    assert_eq!(report.allow, 4);
    assert_eq!(report.rules[0].held, 1);
    assert_eq!(report.rules[0].examples, vec![ids[6]]);
    assert_eq!(report.rules[1].denied, 0);
    assert_eq!(report.rules[1].indeterminate, 3);
    assert_eq!(report.rules[2].denied, 2);
    assert_eq!(report.rules[2].indeterminate, 2);
    assert_eq!(report.rules[2].examples, vec![ids[3], ids[5]]);
}

#[test]
fn custom_rules_validate_and_deny() {
    let (e, w) = (Engine::new(), world());
    let rule = w.rule(
        "custom",
        Effect::Deny,
        json!({"when": "context.key_type == \"dk\" || context.groups.contains(\"grp_frozen\")"}),
    );
    let mut f = w.facts();
    allowed(&e, &rule, &f);
    f.groups.push("grp_frozen".into());
    denied_with(&e, &rule, &f, "policy_denied");
    // `unless`, with an IP range and the decision time.
    let rule = w.rule(
        "custom",
        Effect::Deny,
        json!({"unless": "context has source_ip && context.source_ip.isInRange(ip(\"203.0.113.0/24\")) && context.now < datetime(\"2027-01-01\")"}),
    );
    let mut f = w.facts();
    allowed(&e, &rule, &f);
    f.source_ip = Some("::ffff:198.51.100.4".parse().unwrap());
    denied_with(&e, &rule, &f, "policy_denied");
    // Hold effect.
    let hold = w.rule(
        "custom",
        Effect::Hold,
        json!({"when": "context.target.method == \"POST\""}),
    );
    let (outcome, codes) = decide(&e, &hold, &w.facts());
    assert_eq!(
        (outcome, codes),
        (Outcome::Hold, vec!["approval_required".to_owned()])
    );
}

#[test]
fn custom_rules_are_checked_when_saved() {
    let (e, w) = (Engine::new(), world());
    for bad in [
        // Not Cedar, wrong types, unknown attributes, unguarded optional attributes.
        json!({"when": "context.key_type =="}),
        json!({"when": "context.target.port == \"443\""}),
        json!({"when": "context.nope == 1"}),
        json!({"when": "context.source_ip.isLoopback()"}),
        json!({"when": "principal in Alter::Group::\"g\""}),
        // Escaping the generated policy: a second policy, a permit, a wider scope.
        json!({"when": "true }; permit (principal, action, resource) when { true"}),
        json!({"when": "true }; forbid (principal, action, resource) when { true"}),
        json!({"when": "true", "unless": "false"}),
        json!({}),
        json!({"when": ""}),
        json!({"when": "true", "effect": "permit"}),
    ] {
        assert!(
            e.validate(&w.rule("custom", Effect::Deny, bad.clone()))
                .is_err(),
            "{bad}"
        );
    }
    // Comments cannot swallow the generated end of the policy.
    assert!(
        e.validate(&w.rule("custom", Effect::Deny, json!({"when": "true // };"})))
            .is_ok()
    );
}

#[test]
fn an_erroring_custom_rule_denies() {
    let (e, w) = (Engine::new(), world());
    // Validates, but overflows at run time: Cedar would skip it; the engine denies.
    let rule = w.rule(
        "custom",
        Effect::Deny,
        json!({"when": "context.target.port * 9223372036854775807 > 0 && false"}),
    );
    let mut stored = rule.clone();
    stored.body = e.validate(&rule).unwrap();
    let d = e.evaluate(&[stored], &w.facts());
    assert_eq!(d.outcome, Outcome::Deny);
    assert_eq!(d.errors.len(), 1);
    assert_eq!(d.matched[0].code, "policy_evaluation_failed");
}

#[test]
fn a_custom_rule_neither_widens_nor_reaches_another_target() {
    let (e, w) = (Engine::new(), world());
    let f = w.facts();
    // An always-false custom rule does not undo a typed denial.
    let d = e.evaluate(
        &[
            w.rule("method", Effect::Deny, json!({"allow": ["GET"]})),
            w.rule("custom", Effect::Deny, json!({"when": "false"})),
        ],
        &f,
    );
    assert_eq!(d.outcome, Outcome::Deny);
    // An always-true rule attached to another agent, grant or provider does not touch this call,
    // even when the condition names this call's entities.
    let other_agent = AgentId::new();
    let cond = format!("resource in Alter::Grant::\"{}\" || true", w.grant);
    for target in [
        RuleTarget::Agent(other_agent),
        RuleTarget::Grant(GrantId::new()),
        RuleTarget::Provider("stripe".into()),
    ] {
        let rule = w.rule_on(
            target.clone(),
            "custom",
            Effect::Deny,
            json!({"when": cond}),
        );
        e.validate(&rule).unwrap();
        assert_eq!(
            e.evaluate(std::slice::from_ref(&rule), &f).outcome,
            Outcome::Allow,
            "{target:?}"
        );
        // Even handed to Cedar directly, the generated scope keeps it off this call.
        let compiled = crate::kinds::compile(&rule).unwrap();
        let crate::kinds::Kind::Custom(c) = &compiled.kind else {
            panic!("custom")
        };
        assert_eq!(crate::cedar::evaluate(&[(&rule, c)], &f), vec![Ok(false)]);
    }
    // Another app's app-wide rule neither.
    let other = world();
    let foreign = other.rule("custom", Effect::Deny, json!({"when": "true"}));
    assert_eq!(
        e.evaluate(std::slice::from_ref(&foreign), &f).outcome,
        Outcome::Allow
    );
    let compiled = crate::kinds::compile(&foreign).unwrap();
    let crate::kinds::Kind::Custom(c) = &compiled.kind else {
        panic!("custom")
    };
    assert_eq!(
        crate::cedar::evaluate(&[(&foreign, c)], &f),
        vec![Ok(false)]
    );
    // The same rule on this call's targets fires.
    for target in [
        RuleTarget::App,
        RuleTarget::Agent(w.agent),
        RuleTarget::Grant(w.grant),
        RuleTarget::Provider("github".into()),
    ] {
        let rule = w.rule_on(
            target.clone(),
            "custom",
            Effect::Deny,
            json!({"when": "true"}),
        );
        assert_eq!(e.evaluate(&[rule], &f).outcome, Outcome::Deny, "{target:?}");
    }
}

#[test]
fn custom_rules_that_read_the_call_need_the_proxy() {
    let (e, w) = (Engine::new(), world());
    let mut f = w.facts();
    f.mode = CallMode::Retrieve;
    let reads = w.rule(
        "custom",
        Effect::Deny,
        json!({"when": "context.target.host == \"evil.com\""}),
    );
    denied_with(&e, &reads, &f, "restricted_grant_requires_proxy");
    let has = w.rule(
        "custom",
        Effect::Deny,
        json!({"unless": "context has target.host"}),
    );
    denied_with(&e, &has, &f, "restricted_grant_requires_proxy");
    let blind = w.rule(
        "custom",
        Effect::Deny,
        json!({"when": "context.key_type == \"dk\""}),
    );
    allowed(&e, &blind, &f);
}

#[test]
#[allow(clippy::panic)]
fn a_panic_inside_the_engine_denies() {
    let d = crate::guarded(|| panic!("boom"), crate::panicked);
    assert_eq!(d.outcome, Outcome::Deny);
    assert_eq!(d.errors.len(), 1);
    let w = world();
    let report = crate::guarded(
        || panic!("boom"),
        || {
            crate::replay::all_indeterminate(
                &[w.rule("method", Effect::Deny, json!({"allow": ["GET"]}))],
                &[PastDecision {
                    event_id: EventId::new(),
                    recorded: Outcome::Allow,
                    facts: None,
                }],
            )
        },
    );
    assert_eq!((report.total, report.indeterminate), (1, 1));
    assert_eq!(report.rules[0].indeterminate, 1);
}

#[test]
fn replay_counts_shadow_rules_apart_and_errors_as_denials() {
    let (e, w) = (Engine::new(), world());
    let past: Vec<PastDecision> = (0..4)
        .map(|i| {
            let mut f = w.facts();
            if i % 2 == 0 {
                f.target.method = "GET".into();
            }
            PastDecision {
                event_id: EventId::new(),
                recorded: Outcome::Allow,
                facts: Some(f),
            }
        })
        .collect();
    let mut shadow = w.rule("method", Effect::Deny, json!({"allow": ["GET"]}));
    shadow.mode = RuleMode::Shadow;
    let report = e.replay(std::slice::from_ref(&shadow), &past);
    assert_eq!((report.allow, report.deny), (4, 0));
    assert_eq!(report.rules[0].denied, 2);
    assert_eq!(
        report.rules[0].examples,
        vec![past[1].event_id, past[3].event_id]
    );
    let broken = w.rule("teleport", Effect::Deny, json!({}));
    let report = e.replay(&[shadow, broken], &past);
    assert_eq!((report.allow, report.deny), (0, 4));
    assert_eq!(report.rules[1].denied, 4);
    // A draft over retrieve-mode traffic: proxy-only rules refuse it.
    let mut retrieve = w.facts();
    retrieve.mode = CallMode::Retrieve;
    let report = e.replay(
        &[w.rule(
            "url",
            Effect::Deny,
            json!({"allow": [{"host": "api.github.com"}]}),
        )],
        &[PastDecision {
            event_id: EventId::new(),
            recorded: Outcome::Allow,
            facts: Some(retrieve),
        }],
    );
    assert_eq!((report.deny, report.rules[0].denied), (1, 1));
}

#[test]
fn one_engine_decides_from_several_threads() {
    let (e, w) = (Engine::new(), world());
    let rules = vec![
        w.rule("method", Effect::Deny, json!({"allow": ["GET"]})),
        w.rule(
            "custom",
            Effect::Hold,
            json!({"when": "context.key_type == \"ak\""}),
        ),
        w.rule(
            "ip_allowlist",
            Effect::Deny,
            json!({"cidrs": ["203.0.113.0/24"]}),
        ),
    ];
    let post = w.facts();
    let mut get = w.facts();
    get.target.method = "GET".into();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (e, rules, f) = (&e, &rules, if i % 2 == 0 { &post } else { &get });
                s.spawn(move || {
                    (0..50)
                        .map(|_| e.evaluate(rules, f).outcome)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let expect = if i % 2 == 0 {
                Outcome::Deny
            } else {
                Outcome::Hold
            };
            assert!(h.join().unwrap().iter().all(|o| *o == expect));
        }
    });
}
