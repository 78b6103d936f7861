//! Approvals: a proxied call an agent's setting holds answers 202, waits for a person, and is
//! made exactly once when approved (on any node), never when denied or expired; its result
//! comes back through `await_approval`. Against a real local upstream that counts its hits.

use std::time::{Duration, Instant};

use alter_proto::admin::{AuditQuery, CreateSecretRequest, SecretInfo};
use alter_proto::approvals::DecideApprovalRequest;
use alter_proto::policies::{CreateRuleRequest, RuleTargetBody};
use alter_sdk::{Agent, ApprovalState, CreateAgent, Error, ProviderRequest, ProxyOutcome};
use alter_testkit::upstream::Upstream;
use alter_testkit::{Engine, RawResponse, TestServer, World, on_every_engine};
use serde_json::json;

const VALUE: &str = "sk_live_approvalSecret0123456789";

/// An app with a bearer secret for the local upstream, and an agent whose calls need approval
/// holding its own grant of it.
struct Held {
    world: World,
    secret: SecretInfo,
    agent_key: String,
    agent_id: String,
    grant: String,
}

async fn setup(server: &TestServer, upstream: &Upstream, name: &str) -> Held {
    let world = server.world(name).await;
    let secret = server
        .admin()
        .create_secret(
            &world.app.info.id,
            &CreateSecretRequest {
                name: "Payments".into(),
                secret_type: "bearer".into(),
                value: VALUE.into(),
                allowed_hosts: vec!["127.0.0.1".into()],
                principals: ["user", "group", "system", "agent"]
                    .map(String::from)
                    .to_vec(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let app = server.app(&world.app.key.api_key);
    let careful = app
        .agents()
        .create(CreateAgent {
            policy: Some(json!({"requires_approval": true})),
            ..CreateAgent::new("careful", json!({"managed_secret_slugs": [secret.slug]}))
        })
        .await
        .unwrap();
    let agent_key = careful.api_key.clone().unwrap();
    let grant = server
        .agent(&agent_key)
        .create_managed_secret_grant(&secret.id, None, None)
        .await
        .unwrap()
        .grant_id;
    let _ = upstream;
    Held {
        world,
        secret,
        agent_key,
        agent_id: careful.agent.id,
        grant,
    }
}

/// `POST /sdk/proxy` signed with `key`, as the official client sends it.
async fn proxy(
    server: &TestServer,
    key: &str,
    grant: &str,
    url: &str,
    reason: Option<&str>,
) -> RawResponse {
    let mut body = json!({
        "method": "POST",
        "url": url,
        "grant_id": grant,
        "body": {"amount": 4200, "currency": "eur"},
    });
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    server
        .raw(key, "POST", "/sdk/proxy")
        .body(body.to_string())
        .send()
        .await
}

/// A held call, made through the Rust SDK: its `PendingApproval` checked, its id returned.
async fn hold(server: &TestServer, held: &Held, upstream: &Upstream) -> String {
    let outcome = server
        .agent(&held.agent_key)
        .proxy_request(
            ProviderRequest::post(format!("{}/v1/refunds", upstream.url()))
                .grant_id(&held.grant)
                .json(json!({"amount": 4200, "currency": "eur"}))
                .reason("refund order 1042"),
        )
        .await
        .unwrap();
    let ProxyOutcome::Pending(pending) = outcome else {
        panic!("the call was not held: {outcome:?}");
    };
    assert_eq!(pending.status, "pending");
    let id = pending.approval_id.clone();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert!(uuid::Uuid::parse_str(&pending.approval_group_id).is_ok());
    assert_eq!(
        pending.approval_url,
        format!(
            "{}/wallet/{}/approvals/{id}",
            server.base_url(),
            held.world.app.info.id
        )
    );
    assert_eq!(pending.expires_in, 900);
    assert_eq!(pending.gates.len(), 1);
    assert_eq!(pending.gates[0].approval_id, id);
    id
}

fn decision(reason: &str) -> DecideApprovalRequest {
    DecideApprovalRequest {
        reason: Some(reason.into()),
        decided_by: Some("ops@example.com".into()),
    }
}

async fn actions(server: &TestServer, app: &str, action: &str) -> usize {
    server
        .admin()
        .audit_events(
            app,
            &AuditQuery {
                action: Some(action.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items
        .len()
}

fn agent(server: &TestServer, held: &Held) -> Agent {
    server.agent(&held.agent_key)
}

const FAST: Duration = Duration::from_millis(50);

#[tokio::test]
async fn an_approved_call_is_made_once_and_its_result_collected() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let upstream = Upstream::start().await;
        upstream.answer(201, &[("x-refund", "r_1")], r#"{"refunded":true}"#);
        let held = setup(&server, &upstream, "a").await;
        let app_id = held.world.app.info.id.clone();

        // Without a reason the call cannot be held.
        let refused = proxy(
            &server,
            &held.agent_key,
            &held.grant,
            &format!("{}/v1/refunds", upstream.url()),
            None,
        )
        .await;
        assert_eq!(refused.status, 400);
        assert_eq!(refused.code(), Some("approval_reason_required"));

        let id = hold(&server, &held, &upstream).await;
        assert!(
            upstream.received().is_empty(),
            "nothing is sent while pending"
        );
        let client = agent(&server, &held);
        let status = client
            .get_approval_status(&id, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(status.status, ApprovalState::Pending);
        assert!(!status.has_result);
        assert_eq!(status.gates[0].status, "pending");
        // The result is not ready; wait above 25 s is refused.
        let e = client.get_approval_result(&id).await.unwrap_err();
        assert_eq!(e.code(), Some("approval_not_ready"), "{e}");
        let e = client
            .get_approval_status(&id, Duration::from_secs(26))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::AlterValue(_)), "{e}");
        let raw = server
            .raw(
                &held.agent_key,
                "GET",
                &format!("/sdk/approvals/{id}?wait=26"),
            )
            .send()
            .await;
        assert_eq!(raw.status, 422);

        // The operator sees it, with the caller's reason and no query values or secrets.
        let listed = server
            .admin()
            .list_approvals(&app_id, Some("pending"))
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].reason, "refund order 1042");
        assert_eq!(listed[0].agent_id.as_deref(), Some(held.agent_id.as_str()));
        assert!(!serde_json::to_string(&listed).unwrap().contains(VALUE));

        let approved = server
            .admin()
            .approve(&app_id, &id, &decision("fine"))
            .await
            .unwrap();
        assert_ne!(approved.status, "pending");
        let result = client
            .await_approval(&id, Duration::from_secs(60), FAST)
            .await
            .unwrap();
        assert_eq!(result.status_code, 201);
        assert_eq!(result.approval_id.as_deref(), Some(id.as_str()));
        assert_eq!(result.body_text(), r#"{"refunded":true}"#);
        assert_eq!(
            result.headers.get("x-refund").map(String::as_str),
            Some("r_1")
        );

        // Exactly the held request reached the provider, once, with the credential.
        let hits = upstream.received();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].method, "POST");
        assert_eq!(hits[0].path, "/v1/refunds");
        assert_eq!(
            hits[0].header("authorization"),
            Some(format!("Bearer {VALUE}").as_str())
        );
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&hits[0].body).unwrap(),
            json!({"amount": 4200, "currency": "eur"})
        );

        let status = client
            .get_approval_status(&id, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(status.status, ApprovalState::Executed);
        assert!(status.has_result);
        assert_eq!(status.decision_reason.as_deref(), Some("fine"));
        assert!(status.decided_at.is_some() && status.executed_at.is_some());
        assert_eq!(status.gates[0].status, "approved");
        // Approving again changes nothing and calls nobody.
        server
            .admin()
            .approve(&app_id, &id, &decision("again"))
            .await
            .unwrap();
        let e = server
            .admin()
            .deny(&app_id, &id, &decision("late"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("approval_already_decided"), "{e}");
        assert_eq!(upstream.received().len(), 1);

        for action in [
            "approval.requested",
            "approval.approved",
            "approval.executed",
        ] {
            assert_eq!(actions(&server, &app_id, action).await, 1, "{action}");
        }
        // Held requests and their results re-wrap.
        crate::crypto::every_sealed_value_rewraps_under_a_new_kek(&server).await;
    })
    .await;
}

#[tokio::test]
async fn denied_and_expired_calls_are_never_made() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let upstream = Upstream::start().await;
        let held = setup(&server, &upstream, "a").await;
        let app_id = held.world.app.info.id.clone();
        let client = agent(&server, &held);

        let denied = hold(&server, &held, &upstream).await;
        server
            .admin()
            .deny(&app_id, &denied, &decision("not this one"))
            .await
            .unwrap();
        let e = client
            .await_approval(&denied, Duration::from_secs(30), FAST)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::ApprovalDenied(_)), "{e}");
        assert_eq!(e.info().message, "not this one");
        let e = client.get_approval_result(&denied).await.unwrap_err();
        assert!(matches!(e, Error::ApprovalDenied(_)), "{e}");
        let e = server
            .admin()
            .approve(&app_id, &denied, &decision(""))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("approval_already_decided"), "{e}");

        let expiring = hold(&server, &held, &upstream).await;
        // 15 minutes pass, in steps the signing window allows.
        for _ in 0..4 {
            server.advance(240);
        }
        let status = client
            .get_approval_status(&expiring, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(status.status, ApprovalState::Expired);
        assert_eq!(status.gates[0].status, "expired");
        let e = client
            .await_approval(&expiring, Duration::from_secs(30), FAST)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::ApprovalExpired(_)), "{e}");
        let e = client.get_approval_result(&expiring).await.unwrap_err();
        assert!(matches!(e, Error::ApprovalExpired(_)), "{e}");
        let e = server
            .admin()
            .approve(&app_id, &expiring, &decision("too late"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("approval_expired"), "{e}");

        assert!(upstream.received().is_empty());
        assert_eq!(actions(&server, &app_id, "approval.denied").await, 1);
        assert_eq!(actions(&server, &app_id, "approval.expired").await, 1);
        assert_eq!(actions(&server, &app_id, "approval.executed").await, 0);
    })
    .await;
}

#[tokio::test]
async fn a_grant_revoked_while_pending_fails_the_approved_call() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let upstream = Upstream::start().await;
        let held = setup(&server, &upstream, "a").await;
        let app_id = held.world.app.info.id.clone();
        let client = agent(&server, &held);
        let id = hold(&server, &held, &upstream).await;

        server
            .app(&held.world.app.key.api_key)
            .revoke_grant(&held.grant, None)
            .await
            .unwrap();
        server
            .admin()
            .approve(&app_id, &id, &decision("ok"))
            .await
            .unwrap();
        let e = client
            .await_approval(&id, Duration::from_secs(30), FAST)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::ApprovalExecutionFailed(_)), "{e}");
        assert!(e.info().message.contains("revoked"), "{e}");
        let status = client
            .get_approval_status(&id, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(status.status, ApprovalState::Failed);
        assert!(!status.has_result);
        let e = client.get_approval_result(&id).await.unwrap_err();
        assert!(matches!(e, Error::ApprovalExecutionFailed(_)), "{e}");
        assert!(
            upstream.received().is_empty(),
            "the provider is never called"
        );
        assert_eq!(actions(&server, &app_id, "approval.failed").await, 1);
        let _ = &held.secret;
    })
    .await;
}

#[tokio::test]
async fn only_the_app_and_its_agent_see_an_approval() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let upstream = Upstream::start().await;
        let held = setup(&server, &upstream, "a").await;
        let id = hold(&server, &held, &upstream).await;

        // The app's own key sees it.
        let app = server.app(&held.world.app.key.api_key);
        assert_eq!(
            app.get_approval_status(&id, Duration::ZERO)
                .await
                .unwrap()
                .status,
            ApprovalState::Pending
        );
        // Another agent of the same app, and another app, see nothing: 404, as the client
        // reports any non-200 of this route, a plain BackendError.
        let other_agent = app
            .agents()
            .create(CreateAgent::new(
                "other",
                json!({"managed_secret_slugs": [held.secret.slug]}),
            ))
            .await
            .unwrap();
        let other_agent = server.agent(other_agent.api_key.as_deref().unwrap());
        let other_app = server.new_app("b").await;
        let other_app = server.app(&other_app.key.api_key);
        for e in [
            other_agent
                .get_approval_status(&id, Duration::ZERO)
                .await
                .unwrap_err(),
            other_app
                .get_approval_status(&id, Duration::ZERO)
                .await
                .unwrap_err(),
        ] {
            assert!(matches!(e, Error::Backend(_)), "{e}");
            assert_eq!(e.status(), 404, "{e}");
            assert!(
                e.info().message.starts_with(&format!(
                    "GET /sdk/approvals/{id} returned 404 (approval_not_found: "
                )),
                "{e}"
            );
        }
        for e in [
            other_agent.get_approval_result(&id).await.unwrap_err(),
            other_app.get_approval_result(&id).await.unwrap_err(),
            app.get_approval_status("not-a-uuid", Duration::ZERO)
                .await
                .unwrap_err(),
        ] {
            assert_eq!(e.status(), 404, "{e}");
        }
        // Nor can the other app's operator path reach it.
        let e = server
            .admin()
            .approve(&other_app_id(&server).await, &id, &decision("x"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("approval_not_found"), "{e}");
        // A key with neither approvals:read nor proxy:execute is refused, naming both.
        let narrow = server
            .mint_key(
                &held.world.app,
                alter_proto::admin::MintKeyRequest {
                    scopes: Some(vec!["grants:read".into()]),
                    ..Default::default()
                },
            )
            .await;
        let raw = server
            .raw(&narrow.api_key, "GET", &format!("/sdk/approvals/{id}"))
            .send()
            .await;
        assert_eq!(raw.status, 403);
        assert_eq!(raw.json["required_any_of"], true);
        assert!(upstream.received().is_empty());
    })
    .await;
}

async fn other_app_id(server: &TestServer) -> String {
    server.new_app("c").await.info.id
}

#[tokio::test]
async fn a_held_long_poll_returns_on_the_decision() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let upstream = Upstream::start().await;
        let held = setup(&server, &upstream, "a").await;
        let app_id = held.world.app.info.id.clone();
        let id = hold(&server, &held, &upstream).await;
        let client = agent(&server, &held);
        let started = Instant::now();
        let poll = {
            let id = id.clone();
            tokio::spawn(async move {
                client
                    .get_approval_status(&id, Duration::from_secs(25))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        server
            .admin()
            .deny(&app_id, &id, &decision("no"))
            .await
            .unwrap();
        let status = poll.await.unwrap().unwrap();
        assert_eq!(status.status, ApprovalState::Denied);
        // It answered on the decision, not at the end of the wait.
        assert!(started.elapsed() < Duration::from_secs(20));
    })
    .await;
}

/// Approvers click at once — on two nodes of one PostgreSQL database (SQLite is one node's
/// engine: there, on one node) — and every sweep races them: the call is made once.
#[tokio::test]
async fn concurrent_approvals_on_two_nodes_make_the_call_once() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let second = match engine {
            Engine::Postgres => Some(server.second_node().await),
            Engine::Sqlite => None,
        };
        let second = second.as_ref().unwrap_or(&server);
        let upstream = Upstream::start().await;
        let held = setup(&server, &upstream, "a").await;
        let app_id = held.world.app.info.id.clone();
        for round in 0..3 {
            let id = hold(&server, &held, &upstream).await;
            let (a, b, c, d) = (
                server.admin(),
                second.admin(),
                server.admin(),
                second.admin(),
            );
            let yes = decision("yes");
            let (ra, rb, rc, rd) = tokio::join!(
                a.approve(&app_id, &id, &yes),
                b.approve(&app_id, &id, &yes),
                c.approve(&app_id, &id, &yes),
                d.approve(&app_id, &id, &yes),
            );
            for r in [ra, rb, rc, rd] {
                r.unwrap();
            }
            let result = agent(second, &held)
                .await_approval(&id, Duration::from_secs(60), FAST)
                .await
                .unwrap();
            assert_eq!(result.status_code, 200);
            assert_eq!(upstream.received().len(), round + 1, "round {round}");
        }
        assert_eq!(actions(&server, &app_id, "approval.approved").await, 3);
        assert_eq!(actions(&server, &app_id, "approval.executed").await, 3);
    })
    .await;
}

/// The background sweep (run here by hand) expires what nobody decided, and an approval that
/// was executed is never claimed again, whoever asks.
#[tokio::test]
async fn the_sweep_expires_undecided_calls_and_never_runs_one_twice() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let upstream = Upstream::start().await;
        let held = setup(&server, &upstream, "a").await;
        let app_id = held.world.app.info.id.clone();
        let app = alter_core::ids::AppId::parse_lenient(&app_id).unwrap();
        let vault = server.vault();

        let done = hold(&server, &held, &upstream).await;
        server
            .admin()
            .approve(&app_id, &done, &decision("ok"))
            .await
            .unwrap();
        agent(&server, &held)
            .await_approval(&done, Duration::from_secs(60), FAST)
            .await
            .unwrap();
        let done_id = alter_core::ids::ApprovalId::parse_lenient(&done).unwrap();
        assert!(!vault.execute_approval(app, done_id).await.unwrap());
        assert_eq!(vault.sweep_approvals().await.unwrap(), 0);
        assert_eq!(upstream.received().len(), 1);

        let undecided = hold(&server, &held, &upstream).await;
        for _ in 0..4 {
            server.advance(240);
        }
        // (The server's own sweep may have got there first: either way, once.)
        assert!(vault.sweep_approvals().await.unwrap() <= 1);
        assert_eq!(vault.sweep_approvals().await.unwrap(), 0);
        let shown = server
            .admin()
            .get_approval(&app_id, &undecided)
            .await
            .unwrap();
        assert_eq!(shown.status, "expired");
        assert_eq!(actions(&server, &app_id, "approval.expired").await, 1);
        assert_eq!(upstream.received().len(), 1);
    })
    .await;
}

/// A `require_approval` rule's terms set the approval: the shortest ttl among the holds (the
/// agent's setting says none, so the rule's 120 s, not the 15-minute default) and the union of
/// the approvers, shown to the operator; the call expires once the ttl passes.
#[tokio::test]
async fn a_rules_ttl_and_approvers_set_the_approval() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let upstream = Upstream::start().await;
        let held = setup(&server, &upstream, "a").await;
        let app_id = held.world.app.info.id.clone();
        for (ttl, approvers) in [
            (120, json!(["alice@example.com", "finance"])),
            (600, json!(["finance", "bob"])),
        ] {
            server
                .admin()
                .add_rule(
                    &app_id,
                    &CreateRuleRequest {
                        target: RuleTargetBody {
                            kind: "app".into(),
                            id: None,
                        },
                        kind: "require_approval".into(),
                        effect: None,
                        mode: None,
                        body: json!({"ttl_seconds": ttl, "approvers": approvers}),
                        description: None,
                    },
                )
                .await
                .unwrap();
        }
        let outcome = agent(&server, &held)
            .proxy_request(
                ProviderRequest::post(format!("{}/v1/refunds", upstream.url()))
                    .grant_id(&held.grant)
                    .json(json!({"amount": 1}))
                    .reason("refund order 7"),
            )
            .await
            .unwrap();
        let ProxyOutcome::Pending(pending) = outcome else {
            panic!("the call was not held: {outcome:?}");
        };
        assert_eq!(pending.expires_in, 120);
        assert_eq!(pending.gates.len(), 1);
        let id = pending.approval_id.clone();

        let info = server.admin().get_approval(&app_id, &id).await.unwrap();
        assert_eq!(info.approvers, ["alice@example.com", "finance", "bob"]);
        let holds = info.holds.as_array().unwrap();
        assert_eq!(holds.len(), 3, "{holds:?}");
        assert!(
            holds.iter().any(|h| h["approval"]
                == json!({"ttl_seconds": 120, "approvers": ["alice@example.com", "finance"]})),
            "{holds:?}"
        );
        let listed = server.admin().list_approvals(&app_id, None).await.unwrap();
        assert_eq!(listed[0].approvers, info.approvers);

        server.advance(119);
        let status = agent(&server, &held)
            .get_approval_status(&id, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(status.status, ApprovalState::Pending);
        server.advance(1);
        let status = agent(&server, &held)
            .get_approval_status(&id, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(status.status, ApprovalState::Expired);
        let e = server
            .admin()
            .approve(&app_id, &id, &decision("too late"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("approval_expired"), "{e}");
        assert!(upstream.received().is_empty());
    })
    .await;
}

/// An agent's `approval_ttl_seconds` sets how long its held calls wait.
#[tokio::test]
async fn an_agents_approval_ttl_sets_the_expiry() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let upstream = Upstream::start().await;
        let held = setup(&server, &upstream, "a").await;
        let brief = server
            .app(&held.world.app.key.api_key)
            .agents()
            .create(CreateAgent {
                policy: Some(json!({"requires_approval": true, "approval_ttl_seconds": 300})),
                ..CreateAgent::new("brief", json!({"managed_secret_slugs": [held.secret.slug]}))
            })
            .await
            .unwrap();
        let key = brief.api_key.unwrap();
        let grant = server
            .agent(&key)
            .create_managed_secret_grant(&held.secret.id, None, None)
            .await
            .unwrap()
            .grant_id;
        let outcome = server
            .agent(&key)
            .proxy_request(
                ProviderRequest::post(format!("{}/v1/refunds", upstream.url()))
                    .grant_id(&grant)
                    .json(json!({"amount": 1}))
                    .reason("refund order 8"),
            )
            .await
            .unwrap();
        let ProxyOutcome::Pending(pending) = outcome else {
            panic!("the call was not held: {outcome:?}");
        };
        assert_eq!(pending.expires_in, 300);
        let info = server
            .admin()
            .get_approval(&held.world.app.info.id, &pending.approval_id)
            .await
            .unwrap();
        // The agent's approvers are never shown back.
        assert!(info.approvers.is_empty());
    })
    .await;
}

/// A node that verified a key a moment ago (and may keep it, see `VerifiedKeys`) parks no
/// call with it once another node revoked it: parking checks the key, the agent and the grant
/// again in its own transaction, as a release's commit does. The refusal is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_revoked_on_another_node_parks_no_call() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let node2 = server.second_node().await;
        let upstream = Upstream::start().await;
        let held = setup(&server, &upstream, "a").await;
        let app_id = held.world.app.info.id.clone();
        // Verified (and kept) by the first node.
        hold(&server, &held, &upstream).await;
        let key = server
            .admin()
            .list_keys(&app_id)
            .await
            .unwrap()
            .into_iter()
            .find(|k| held.agent_key.starts_with(&k.key_prefix))
            .expect("the agent's key is listed");
        node2.admin().revoke_key(&app_id, &key.id).await.unwrap();
        let url = format!("{}/v1/refunds", upstream.url());
        let refused = proxy(&server, &held.agent_key, &held.grant, &url, Some("again")).await;
        assert_eq!(refused.code(), Some("key_revoked"), "{:?}", refused.json);
        assert_eq!(actions(&server, &app_id, "approval.requested").await, 1);
        assert_eq!(actions(&server, &app_id, "credential.denied").await, 1);
        assert!(upstream.received().is_empty());
        node2.stop().await;
        server.stop().await;
    })
    .await;
}
