//! Policy rules on the admin API: added, shown, changed under optimistic versions and removed,
//! each write audited; invisible across apps; bad rules refused with nothing saved; and the
//! what-if replay over the app's recorded credential decisions.

use alter_proto::admin::{AuditQuery, CreateSecretRequest, SecretInfo};
use alter_sdk::admin::{
    AdminClient, CreateRuleRequest, DraftRuleBody, RuleTargetBody, UpdateRuleRequest, WhatIfRequest,
};
use alter_sdk::{CreateAgent, Principal, ProviderRequest};
use alter_testkit::upstream::Upstream;
use alter_testkit::{TestServer, World, on_every_engine};
use serde_json::json;

fn target(kind: &str, id: Option<&str>) -> RuleTargetBody {
    RuleTargetBody {
        kind: kind.into(),
        id: id.map(str::to_owned),
    }
}

fn ip_rule(target: RuleTargetBody, cidrs: &[&str]) -> CreateRuleRequest {
    CreateRuleRequest {
        target,
        kind: "ip_allowlist".into(),
        effect: None,
        mode: None,
        body: json!({ "cidrs": cidrs }),
        description: Some("office networks".into()),
    }
}

/// The policy events of an app, oldest first: (action, rule id, version).
async fn policy_events(admin: &AdminClient, app: &str) -> Vec<(String, String, i64)> {
    let page = admin
        .audit_events(app, &AuditQuery::default())
        .await
        .unwrap();
    page.items
        .iter()
        .map(|i| &i.event)
        .filter(|e| {
            e["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("policy."))
        })
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["target"]["id"].as_str().unwrap().to_owned(),
                e["details"]["version"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn rules_are_added_shown_changed_and_removed_with_versions_and_audit() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let admin = server.admin();
        let app = server.new_app("a").await.info.id;

        let added = admin
            .add_rule(&app, &ip_rule(target("app", None), &["10.0.0.0/8"]))
            .await
            .unwrap();
        assert_eq!(added.version, 1);
        assert_eq!(added.app_id, app);
        assert_eq!(added.target, target("app", None));
        assert_eq!(added.kind, "ip_allowlist");
        assert_eq!(
            (added.effect.as_str(), added.mode.as_str()),
            ("deny", "enforce")
        );
        assert_eq!(added.description.as_deref(), Some("office networks"));
        assert_eq!(admin.get_rule(&app, &added.id).await.unwrap(), added);
        assert_eq!(admin.list_rules(&app).await.unwrap(), vec![added.clone()]);

        let change = UpdateRuleRequest {
            body: Some(json!({"cidrs": ["192.0.2.0/24"]})),
            mode: Some("shadow".into()),
            description: Some(String::new()),
            expected_version: Some(1),
            ..Default::default()
        };
        let changed = admin.update_rule(&app, &added.id, &change).await.unwrap();
        assert_eq!(changed.version, 2);
        assert_eq!(changed.mode, "shadow");
        assert_eq!(changed.description, None, "an empty description clears it");
        assert_eq!(changed.body["cidrs"][0], "192.0.2.0/24");
        assert_eq!(changed.kind, added.kind);
        // The version read is stale now.
        let stale = admin
            .update_rule(&app, &added.id, &change)
            .await
            .unwrap_err();
        assert_eq!((stale.status(), stale.code()), (409, Some("conflict")));
        assert_eq!(admin.get_rule(&app, &added.id).await.unwrap(), changed);

        let removed = admin.remove_rule(&app, &added.id).await.unwrap();
        assert_eq!(removed, changed);
        for e in [
            admin.get_rule(&app, &added.id).await.unwrap_err(),
            admin.remove_rule(&app, &added.id).await.unwrap_err(),
            admin
                .update_rule(&app, &added.id, &UpdateRuleRequest::default())
                .await
                .unwrap_err(),
        ] {
            assert_eq!((e.status(), e.code()), (404, Some("rule_not_found")));
        }
        assert!(admin.list_rules(&app).await.unwrap().is_empty());

        assert_eq!(
            policy_events(&admin, &app).await,
            vec![
                ("policy.rule_added".into(), added.id.clone(), 1),
                ("policy.rule_updated".into(), added.id.clone(), 2),
                ("policy.rule_removed".into(), added.id.clone(), 2),
            ]
        );
    })
    .await;
}

async fn secret(server: &TestServer, world: &World, name: &str) -> SecretInfo {
    server
        .admin()
        .create_secret(
            &world.app.info.id,
            &CreateSecretRequest {
                name: name.into(),
                secret_type: "bearer".into(),
                value: "sk_live_policyTestValue0123456789".into(),
                allowed_hosts: vec!["127.0.0.1".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn rules_and_their_targets_stay_within_their_app() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let admin = server.admin();
        let a = server.world("a").await;
        let b = server.world("b").await;
        let (app_a, app_b) = (a.app.info.id.clone(), b.app.info.id.clone());

        // B's agent, grant and a managed secret only B has (both worlds hold one slug).
        let only_b = secret(&server, &b, "Only In B").await;
        let agent_b = server
            .app(&b.app.key.api_key)
            .agents()
            .create(CreateAgent::new("bot", json!({})))
            .await
            .unwrap()
            .agent
            .id;
        let grant_b = server
            .app(&b.app.key.api_key)
            .create_managed_secret_grant(&b.secret.id, Principal::system(), None)
            .await
            .unwrap()
            .grant_id;
        for (kind, id, code) in [
            ("agent", agent_b.as_str(), "agent_not_found"),
            ("grant", grant_b.as_str(), "grant_not_found"),
            ("provider", only_b.slug.as_str(), "provider_not_found"),
            ("agent", "not-an-id", "agent_not_found"),
        ] {
            let e = admin
                .add_rule(&app_a, &ip_rule(target(kind, Some(id)), &["10.0.0.0/8"]))
                .await
                .unwrap_err();
            assert_eq!((e.status(), e.code()), (404, Some(code)), "{kind} {id}");
        }
        // Its own are fine: B's, in B.
        for (kind, id) in [
            ("agent", agent_b.as_str()),
            ("grant", grant_b.as_str()),
            ("provider", only_b.slug.as_str()),
        ] {
            let rule = admin
                .add_rule(&app_b, &ip_rule(target(kind, Some(id)), &["10.0.0.0/8"]))
                .await
                .unwrap();
            assert_eq!(rule.target, target(kind, Some(id)));
        }
        assert!(admin.list_rules(&app_a).await.unwrap().is_empty());

        // A's rule, through B: not found, and untouched.
        let rule = admin
            .add_rule(&app_a, &ip_rule(target("app", None), &["10.0.0.0/8"]))
            .await
            .unwrap();
        let change = UpdateRuleRequest {
            mode: Some("shadow".into()),
            ..Default::default()
        };
        for e in [
            admin.get_rule(&app_b, &rule.id).await.unwrap_err(),
            admin
                .update_rule(&app_b, &rule.id, &change)
                .await
                .unwrap_err(),
            admin.remove_rule(&app_b, &rule.id).await.unwrap_err(),
        ] {
            assert_eq!((e.status(), e.code()), (404, Some("rule_not_found")));
        }
        assert_eq!(admin.list_rules(&app_b).await.unwrap().len(), 3);
        assert_eq!(admin.get_rule(&app_a, &rule.id).await.unwrap(), rule);
    })
    .await;
}

#[tokio::test]
async fn bad_rules_are_refused_and_nothing_is_saved() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let admin = server.admin();
        let app = server.new_app("a").await.info.id;
        let good = ip_rule(target("app", None), &["10.0.0.0/8"]);
        let bad = [
            CreateRuleRequest {
                kind: "no_such_kind".into(),
                ..good.clone()
            },
            CreateRuleRequest {
                body: json!({"cidrs": ["10.0.0.0/33"]}),
                ..good.clone()
            },
            CreateRuleRequest {
                body: json!({"networks": ["10.0.0.0/8"]}),
                ..good.clone()
            },
            CreateRuleRequest {
                effect: Some("allow".into()),
                ..good.clone()
            },
            CreateRuleRequest {
                mode: Some("loud".into()),
                ..good.clone()
            },
            CreateRuleRequest {
                target: target("user", Some("u1")),
                ..good.clone()
            },
            CreateRuleRequest {
                target: target("agent", None),
                ..good.clone()
            },
            CreateRuleRequest {
                description: Some("x".repeat(1001)),
                ..good.clone()
            },
        ];
        for request in &bad {
            let e = admin.add_rule(&app, request).await.unwrap_err();
            assert_eq!(
                (e.status(), e.code()),
                (422, Some("invalid_request")),
                "{request:?}"
            );
        }
        assert!(admin.list_rules(&app).await.unwrap().is_empty());
        assert!(policy_events(&admin, &app).await.is_empty());

        // A bad change leaves the rule as it was.
        let rule = admin.add_rule(&app, &good).await.unwrap();
        for change in [
            UpdateRuleRequest {
                body: Some(json!({"cidrs": ["not a network"]})),
                ..Default::default()
            },
            UpdateRuleRequest {
                effect: Some("allow".into()),
                ..Default::default()
            },
        ] {
            let e = admin
                .update_rule(&app, &rule.id, &change)
                .await
                .unwrap_err();
            assert_eq!(e.status(), 422, "{change:?}");
        }
        assert_eq!(admin.get_rule(&app, &rule.id).await.unwrap(), rule);
        assert_eq!(policy_events(&admin, &app).await.len(), 1);
    })
    .await;
}

/// Two operators change the same version at once: one wins, the other is told to read again;
/// two removals at once remove once.
#[tokio::test]
async fn concurrent_changes_of_one_version_commit_once() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let admin = server.admin();
        let app = server.new_app("a").await.info.id;
        let rule = admin
            .add_rule(&app, &ip_rule(target("app", None), &["10.0.0.0/8"]))
            .await
            .unwrap();
        let change = |cidr: &str| UpdateRuleRequest {
            body: Some(json!({ "cidrs": [cidr] })),
            expected_version: Some(1),
            ..Default::default()
        };
        let (first, second) = (change("192.0.2.0/24"), change("198.51.100.0/24"));
        let (one, two) = tokio::join!(
            admin.update_rule(&app, &rule.id, &first),
            admin.update_rule(&app, &rule.id, &second),
        );
        let won = usize::from(one.is_ok()) + usize::from(two.is_ok());
        assert_eq!(won, 1, "{one:?} {two:?}");
        let lost = [one, two].into_iter().find_map(Result::err).unwrap();
        assert_eq!(lost.status(), 409);
        assert_eq!(admin.get_rule(&app, &rule.id).await.unwrap().version, 2);
        assert_eq!(policy_events(&admin, &app).await.len(), 2);

        // A double-clicked removal removes once; the second finds nothing.
        let (one, two) = tokio::join!(
            admin.remove_rule(&app, &rule.id),
            admin.remove_rule(&app, &rule.id),
        );
        assert_eq!(usize::from(one.is_ok()) + usize::from(two.is_ok()), 1);
        let lost = [one, two].into_iter().find_map(Result::err).unwrap();
        assert_eq!((lost.status(), lost.code()), (404, Some("rule_not_found")));
        let events = policy_events(&admin, &app).await;
        assert_eq!(events.len(), 3);
        assert_eq!(events[2].0, "policy.rule_removed");
    })
    .await;
}

fn draft(cidrs: &[&str]) -> DraftRuleBody {
    DraftRuleBody {
        id: None,
        target: target("app", None),
        kind: "ip_allowlist".into(),
        effect: None,
        mode: None,
        body: json!({ "cidrs": cidrs }),
        description: None,
    }
}

fn what_if(
    rules: Vec<DraftRuleBody>,
    since: Option<String>,
    until: Option<String>,
) -> WhatIfRequest {
    WhatIfRequest {
        rules,
        since,
        until,
        limit: None,
    }
}

/// The what-if replays exactly the app's credential decisions in the range asked (releases and
/// refusals, not other events), and refuses a bad draft or range.
#[tokio::test]
async fn what_if_replays_the_recorded_decisions_in_the_range() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let admin = server.admin();
        let world = server.world("a").await;
        let other = server.world("b").await;
        let app = world.app.info.id.clone();
        let upstream = Upstream::start().await;
        let client = server.app(&world.app.key.api_key);
        let bearer = secret(&server, &world, "Upstream").await;
        let grant = client
            .create_managed_secret_grant(&bearer.id, Principal::system(), None)
            .await
            .unwrap()
            .grant_id;
        let call = || ProviderRequest::get(format!("{}/v1/items", upstream.url())).grant_id(&grant);

        for _ in 0..3 {
            client.request(call()).await.unwrap();
        }
        let refused = client
            .request(
                ProviderRequest::get(format!("{}/v1/items", upstream.url()))
                    .grant_id("00000000-0000-7000-8000-000000000000"),
            )
            .await;
        assert!(refused.is_err());
        server.advance(3600);
        let midpoint = server.now().to_rfc3339();
        server.advance(60);
        for _ in 0..2 {
            client.request(call()).await.unwrap();
        }
        // Traffic in another app is not this app's past.
        let other_client = server.app(&other.app.key.api_key);
        let other_grant = other_client
            .create_managed_secret_grant(&other.secret.id, Principal::system(), None)
            .await
            .unwrap()
            .grant_id;
        let _ = other_client
            .request(
                ProviderRequest::get(format!("{}/v1/items", upstream.url())).grant_id(&other_grant),
            )
            .await;

        let decisions = |page: alter_sdk::admin::AuditPage| {
            page.items
                .iter()
                .filter(|i| {
                    matches!(
                        i.event["action"].as_str(),
                        Some("credential.released" | "credential.denied")
                    )
                })
                .count() as u64
        };
        let recorded = decisions(
            admin
                .audit_events(&app, &AuditQuery::default())
                .await
                .unwrap(),
        );
        assert!(recorded >= 5, "{recorded}");

        let all = admin
            .what_if(&app, &what_if(vec![draft(&["10.0.0.0/8"])], None, None))
            .await
            .unwrap();
        assert_eq!(all.total, recorded);
        assert_eq!(
            all.allow + all.hold + all.deny + all.indeterminate,
            all.total
        );
        assert_eq!(all.rules.len(), 1);
        assert_eq!(all.rules[0].kind, "ip_allowlist");

        let later = admin
            .what_if(
                &app,
                &what_if(vec![draft(&["10.0.0.0/8"])], Some(midpoint.clone()), None),
            )
            .await
            .unwrap();
        assert_eq!(later.total, 2);
        let earlier = admin
            .what_if(&app, &what_if(vec![], None, Some(midpoint.clone())))
            .await
            .unwrap();
        assert_eq!(earlier.total, recorded - 2);
        // An age counts back from the server's clock.
        let last_half_hour = admin
            .what_if(&app, &what_if(vec![], Some("30m".into()), None))
            .await
            .unwrap();
        assert_eq!(last_half_hour.total, 2);
        let capped = admin
            .what_if(
                &app,
                &WhatIfRequest {
                    limit: Some(1),
                    ..what_if(vec![], None, None)
                },
            )
            .await
            .unwrap();
        assert_eq!(capped.total, 1);

        for (request, why) in [
            (
                what_if(vec![draft(&["10.0.0.0/33"])], None, None),
                "bad draft",
            ),
            (
                what_if(vec![], Some(midpoint.clone()), Some(midpoint.clone())),
                "empty range",
            ),
            (what_if(vec![], Some("yesterday".into()), None), "bad time"),
        ] {
            let e = admin.what_if(&app, &request).await.unwrap_err();
            assert_eq!(
                (e.status(), e.code()),
                (422, Some("invalid_request")),
                "{why}"
            );
        }
        // A what-if saves nothing.
        assert!(admin.list_rules(&app).await.unwrap().is_empty());
        let e = admin
            .what_if(
                "00000000-0000-7000-8000-000000000000",
                &what_if(vec![], None, None),
            )
            .await
            .unwrap_err();
        assert_eq!(e.status(), 404);
    })
    .await;
}

/// A decision's facts as the release path records them: a retrieve-mode call from `ip`.
fn facts(
    app: alter_core::ids::AppId,
    at: alter_core::time::Timestamp,
    ip: &str,
) -> serde_json::Value {
    use alter_core::rules::{CallMode, DecisionFacts, FACTS_VERSION, TargetFacts};
    serde_json::to_value(DecisionFacts {
        version: FACTS_VERSION,
        at,
        app_id: app,
        mode: CallMode::Retrieve,
        key_id: alter_core::ids::KeyId::new(),
        key_type: "rk".into(),
        root_key_id: None,
        agent_typed: false,
        agent_id: None,
        source_ip: Some(ip.parse().unwrap()),
        grants: vec![alter_core::ids::GrantId::new()],
        provider_id: "stripe-production".into(),
        credential_kind: "managed_secret".into(),
        user_id: None,
        groups: Vec::new(),
        target: TargetFacts {
            method: "GET".into(),
            scheme: "https".into(),
            host: "api.stripe.com".into(),
            port: 443,
            path: "/v1/charges".into(),
            query: Vec::new(),
            body: None,
        },
        reason: None,
    })
    .unwrap()
}

/// With decision facts on the recorded events (as the release path writes them), the what-if
/// gives exact counts: which calls a draft IP allowlist would have denied (and which ones, as
/// examples), which it would have let through, and which it cannot judge. Runs the vault on a
/// real store with the real engine; the events are appended to the app's real audit chain.
#[tokio::test]
async fn what_if_counts_exactly_what_a_draft_would_have_done() {
    use std::sync::Arc;

    use alter_core::audit::{Actor, AuditEvent, ChainKey, Decision, Target};
    use alter_core::policies::{DraftRule, NewRule};
    use alter_core::ports::AuditStore;
    use alter_core::rules::{RuleMode, RuleTarget};
    use alter_core::time::{ManualClock, Timestamp};
    use alter_core::vault::{Settings, Vault};
    use alter_crypto::MasterKey;
    use alter_store::scratch::ScratchDatabase;
    use alter_store::{SqlStore, StoreOptions};

    let mut databases = vec![ScratchDatabase::sqlite().unwrap()];
    if let Some(pg) = ScratchDatabase::postgres().await.unwrap() {
        databases.push(pg);
    }
    for db in databases {
        let master = MasterKey::generate().unwrap();
        let store = SqlStore::connect(
            db.url(),
            &StoreOptions::default(),
            ChainKey::derive(&master),
        )
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let start = Timestamp::from_unix_seconds(1_800_000_000);
        let clock = Arc::new(ManualClock::starting_at(start));
        let vault = Vault::open(
            Arc::new(store.clone()),
            Arc::new(master),
            clock.clone(),
            Arc::new(alter_upstream::JwtVerifier::new().unwrap()),
            Arc::new(alter_upstream::oauth::OAuthClient::new().unwrap()),
            Arc::new(alter_policy::Engine::new()),
            Arc::new(
                alter_upstream::HttpForwarder::new(alter_upstream::AllowedNetworks::default())
                    .unwrap(),
            ),
            Settings::default(),
        )
        .await
        .unwrap();
        let app = vault.create_app("a").await.unwrap().id;

        // (action, decision, source address; None: an event written without facts).
        let recorded = [
            ("credential.released", Decision::Allow, Some("10.1.2.3")),
            ("credential.released", Decision::Allow, Some("203.0.113.9")),
            ("grant.created", Decision::Allow, None),
            ("credential.released", Decision::Allow, Some("10.200.0.1")),
            ("credential.denied", Decision::Deny, Some("198.51.100.4")),
            ("credential.released", Decision::Allow, None),
            ("credential.released", Decision::Allow, Some("203.0.113.10")),
            ("credential.released", Decision::Allow, Some("10.9.9.9")),
        ];
        let mut outside = Vec::new();
        for (i, (action, decision, ip)) in recorded.into_iter().enumerate() {
            let at = start.plus_seconds(i as i64);
            let mut event = AuditEvent::allow(
                app,
                at,
                action,
                Actor::system(),
                Target {
                    kind: "grant".into(),
                    id: "g".into(),
                },
            );
            event.decision = decision;
            if let Some(ip) = ip {
                event = event.with_details(json!({ "decision_facts": facts(app, at, ip) }));
                if !ip.starts_with("10.") {
                    outside.push(event.id);
                }
            }
            store.append_event(&event).await.unwrap();
        }
        clock.advance_seconds(60);

        let draft = |mode| DraftRule {
            id: None,
            rule: NewRule {
                target: RuleTarget::App,
                kind: "ip_allowlist".into(),
                effect: None,
                mode,
                body: json!({"cidrs": ["10.0.0.0/8"]}),
                description: None,
            },
        };
        let report = vault
            .what_if(app, vec![draft(RuleMode::Enforce)], None, None, None)
            .await
            .unwrap();
        assert_eq!(report.total, 7, "the grant event is not a decision");
        assert_eq!(report.indeterminate, 1);
        assert_eq!((report.allow, report.hold, report.deny), (3, 0, 3));
        assert_eq!(report.rules.len(), 1);
        assert_eq!(report.rules[0].denied, 3);
        assert_eq!(report.rules[0].examples, outside);

        // A shadow draft matches the same calls but would have enforced nothing.
        let shadow = vault
            .what_if(app, vec![draft(RuleMode::Shadow)], None, None, None)
            .await
            .unwrap();
        assert_eq!(shadow.rules[0].denied, 3);
        // Only the recorded refusal may stay a denial (a draft cannot lift the base's).
        assert!(shadow.deny <= 1, "{shadow:?}");
        assert_eq!((shadow.allow + shadow.deny, shadow.hold), (6, 0));

        // The range and the limit narrow the records: the last four decisions, then the first
        // two.
        let tail = vault
            .what_if(
                app,
                vec![draft(RuleMode::Enforce)],
                Some(start.plus_seconds(4)),
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!((tail.total, tail.deny, tail.indeterminate), (4, 2, 1));
        let head = vault
            .what_if(app, vec![draft(RuleMode::Enforce)], None, None, Some(2))
            .await
            .unwrap();
        assert_eq!((head.total, head.allow, head.deny), (2, 1, 1));

        store.close().await;
        db.drop_now().await.unwrap();
    }
}
