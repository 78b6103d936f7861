//! Latency of one policy decision (release: `cargo bench -p alter-policy`): 10 typed rules, and
//! the same with one Cedar `custom` rule added. Times each decision and prints p50/p99/p999.

use std::hint::black_box;
use std::time::Instant;

use alter_core::ids::{AgentId, AppId, GrantId, KeyId, RuleId};
use alter_core::rules::{
    BodyFacts, CallMode, DecisionFacts, Effect, FACTS_VERSION, Outcome, Rule, RuleEngine, RuleMode,
    RuleTarget, TargetFacts,
};
use alter_core::time::Timestamp;
use alter_policy::Engine;
use serde_json::{Value, json};

const WARMUP: usize = 2_000;
const ITERATIONS: usize = 100_000;

fn rule(app: AppId, target: RuleTarget, kind: &str, effect: Effect, body: Value) -> Rule {
    Rule {
        id: RuleId::new(),
        app_id: app,
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

fn fail(why: &str) -> ! {
    eprintln!("{why}");
    std::process::exit(1)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn run(name: &str, engine: &Engine, rules: &[Rule], facts: &DecisionFacts) {
    let d = engine.evaluate(rules, facts);
    if d.outcome != Outcome::Allow {
        fail(&format!(
            "{name}: the benchmark call should be allowed: {d:?}"
        ));
    }
    for _ in 0..WARMUP {
        black_box(engine.evaluate(black_box(rules), black_box(facts)));
    }
    let mut times = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let start = Instant::now();
        black_box(engine.evaluate(black_box(rules), black_box(facts)));
        times.push(start.elapsed().as_nanos() as u64);
    }
    times.sort_unstable();
    println!(
        "{name}: {ITERATIONS} decisions, p50 {:.2} µs, p99 {:.2} µs, p999 {:.2} µs",
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        percentile(&times, 0.999)
    );
}

fn main() {
    let (app, agent, grant) = (AppId::new(), AgentId::new(), GrantId::new());
    let facts = DecisionFacts {
        version: FACTS_VERSION,
        at: Timestamp::parse_rfc3339("2026-12-07T10:00:00Z").unwrap_or(Timestamp::from_micros(0)),
        app_id: app,
        mode: CallMode::Proxy,
        key_id: KeyId::new(),
        key_type: "ak".into(),
        root_key_id: None,
        agent_typed: false,
        agent_id: Some(agent),
        source_ip: "203.0.113.7".parse().ok(),
        grants: vec![grant],
        provider_id: "github".into(),
        credential_kind: "oauth".into(),
        user_id: None,
        groups: vec!["grp_eng".into()],
        target: TargetFacts {
            method: "POST".into(),
            scheme: "https".into(),
            host: "api.github.com".into(),
            port: 443,
            path: "/repos/acme/widgets/issues".into(),
            query: vec![("per_page".into(), "50".into())],
            body: Some(BodyFacts {
                json: Some(json!({"title": "bug", "amount": 40, "labels": ["triage"]})),
                truncated: false,
                len: 52,
                sha256: "00".into(),
            }),
        },
        reason: None,
    };
    let typed = vec![
        rule(
            app,
            RuleTarget::App,
            "ip_allowlist",
            Effect::Deny,
            json!({"cidrs": ["203.0.113.0/24", "198.51.100.0/24", "2001:db8::/32"]}),
        ),
        rule(
            app,
            RuleTarget::App,
            "time_window",
            Effect::Deny,
            json!({"timezone": "Europe/Paris", "windows": [{"days": ["mon","tue","wed","thu","fri"], "start": "08:00", "end": "20:00"}]}),
        ),
        rule(
            app,
            RuleTarget::Provider("github".into()),
            "url",
            Effect::Deny,
            json!({"allow": [{"host": "api.github.com", "path": "/repos/acme/*/issues", "methods": ["GET", "POST"]}, {"host": "*.githubusercontent.com"}]}),
        ),
        rule(
            app,
            RuleTarget::Provider("github".into()),
            "method",
            Effect::Deny,
            json!({"allow": ["GET", "POST", "PATCH"]}),
        ),
        rule(
            app,
            RuleTarget::Grant(grant),
            "params",
            Effect::Deny,
            json!({"constraints": [
                {"in": "body", "field": "/amount", "op": "max", "value": 100},
                {"in": "body", "field": "/title", "op": "pattern", "value": "[a-z ]{1,80}"},
                {"in": "body", "field": "/admin", "op": "forbidden"},
                {"in": "query", "field": "per_page", "op": "one_of", "value": [10, 50, 100]}
            ]}),
        ),
        rule(
            app,
            RuleTarget::Agent(agent),
            "group",
            Effect::Deny,
            json!({"any_of": ["grp_fin", "grp_eng"]}),
        ),
        rule(
            app,
            RuleTarget::Agent(agent),
            "require_approval",
            Effect::Hold,
            json!({"applies_to": {"methods": ["DELETE"]}}),
        ),
        rule(
            app,
            RuleTarget::Grant(grant),
            "rate_limit",
            Effect::Deny,
            json!({"per_minute": 600, "per": "grant"}),
        ),
        rule(
            app,
            RuleTarget::Agent(agent),
            "ip_allowlist",
            Effect::Deny,
            json!({"cidrs": ["203.0.113.0/28"]}),
        ),
        rule(
            app,
            RuleTarget::App,
            "url",
            Effect::Deny,
            json!({"allow": [{"host": "*.github.com", "path": "/**"}], "applies_to": {"modes": ["proxy"]}}),
        ),
    ];
    let engine = Engine::new();
    let mut stored = Vec::new();
    for r in &typed {
        match engine.validate(r) {
            Ok(body) => stored.push(Rule { body, ..r.clone() }),
            Err(e) => fail(&format!("bench rule {}: {e}", r.kind)),
        }
    }
    run("10 typed rules", &engine, &stored, &facts);
    let custom = rule(
        app,
        RuleTarget::App,
        "custom",
        Effect::Deny,
        json!({"when":
        "context.key_type == \"dk\" || (context.target.method == \"DELETE\" && !context.groups.contains(\"grp_admin\")) || (context has source_ip && context.source_ip.isInRange(ip(\"10.0.0.0/8\")))"}),
    );
    match engine.validate(&custom) {
        Ok(body) => stored.push(Rule { body, ..custom }),
        Err(e) => fail(&format!("bench custom rule: {e}")),
    }
    run(
        "10 typed rules + 1 Cedar custom rule",
        &engine,
        &stored,
        &facts,
    );
}
