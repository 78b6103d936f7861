//! Proxy mode: the vault makes the call. Every injection format against a real local
//! provider, the SSRF guard, redirects, forbidden headers, the body cap, who may proxy what,
//! and the audit trail a proxied call leaves.

use std::time::{Duration, UNIX_EPOCH};

use alter_proto::admin::{
    AuditQuery, CreateSecretRequest, InjectionRuleBody, MintKeyRequest, SecretInfo,
};
use alter_proto::policies::{CreateRuleRequest, RuleTargetBody};
use alter_sdk::sigv4::{self, AwsCredentials};
use alter_sdk::{CreateAgent, DeriveKeyRequest, Error, Principal, ProviderRequest, ProxyOutcome};
use alter_testkit::upstream::Upstream;
use alter_testkit::{Options, TestServer, World, on_every_engine};
use base64::Engine as _;
use serde_json::json;

const BEARER: &str = "sk_live_proxyBearer0123456789";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

async fn secret(
    server: &TestServer,
    world: &World,
    hosts: &[&str],
    request: CreateSecretRequest,
) -> SecretInfo {
    server
        .admin()
        .create_secret(
            &world.app.info.id,
            &CreateSecretRequest {
                allowed_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
                ..request
            },
        )
        .await
        .expect("create secret")
}

fn secret_request(name: &str, kind: &str, value: &str) -> CreateSecretRequest {
    CreateSecretRequest {
        name: name.into(),
        secret_type: kind.into(),
        value: value.into(),
        principals: ["user", "group", "system", "agent"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    }
}

async fn system_grant(server: &TestServer, world: &World, secret: &SecretInfo) -> String {
    server
        .app(&world.app.key.api_key)
        .create_managed_secret_grant(&secret.id, Principal::system(), None)
        .await
        .expect("grant")
        .grant_id
}

/// The audit events of `action` on `grant`, newest first.
async fn audit(
    server: &TestServer,
    world: &World,
    action: &str,
    grant: &str,
) -> Vec<serde_json::Value> {
    server
        .admin()
        .audit_events(
            &world.app.info.id,
            &AuditQuery {
                action: Some(action.into()),
                grant: Some(grant.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|item| item.event)
        .collect()
}

/// The `credential.used` events of `grant` once there are `count`: what a proxied call came to
/// is recorded just after its answer, not before.
pub(crate) async fn outcomes(
    server: &TestServer,
    world: &World,
    grant: &str,
    count: usize,
) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let used = audit(server, world, "credential.used", grant).await;
        if used.len() >= count {
            return used;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    audit(server, world, "credential.used", grant).await
}

#[tokio::test]
async fn every_injection_format_is_applied_by_the_vault() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let upstream = Upstream::start().await;
        upstream.answer(
            201,
            &[("x-provider", "p1"), ("set-cookie", "session=vault-cookie")],
            r#"{"ok":true}"#,
        );
        let app = server.app(&world.app.key.api_key);
        let hosts = ["127.0.0.1"];
        let call = |grant: String| {
            ProviderRequest::post(format!("{}/v1/items/{{id}}?existing=1", upstream.url()))
                .grant_id(grant)
                .path_param("id", "a b/c")
                .query_param("extra", "x y")
                .header("X-Caller", "kept")
                .json(json!({"amount": 5}))
                .reason("testing proxy injection")
        };

        let bearer = secret(
            &server,
            &world,
            &hosts,
            secret_request("Bearer", "bearer", BEARER),
        )
        .await;
        let bearer_grant = system_grant(&server, &world, &bearer).await;
        let result = app
            .proxy_request(call(bearer_grant.clone()))
            .await
            .and_then(ProxyOutcome::completed)
            .unwrap();
        assert_eq!(result.status_code, 201);
        assert_eq!(
            result.json::<serde_json::Value>().unwrap(),
            json!({"ok": true})
        );
        assert_eq!(
            result.headers.get("x-provider").map(String::as_str),
            Some("p1")
        );
        assert!(
            !result.headers.contains_key("set-cookie"),
            "{:?}",
            result.headers
        );
        assert!(!result.body_truncated);
        let got = upstream.last();
        assert_eq!(got.method, "POST");
        assert_eq!(
            got.header("authorization"),
            Some(format!("Bearer {BEARER}").as_str())
        );
        assert_eq!(got.path, "/v1/items/a%20b%2Fc");
        assert_eq!(
            got.query_pairs(),
            vec![
                ("existing".into(), "1".into()),
                ("extra".into(), "x y".into())
            ]
        );
        assert_eq!(got.header("x-caller"), Some("kept"));
        assert_eq!(got.header("content-type"), Some("application/json"));
        assert!(
            got.headers
                .iter()
                .all(|(n, _)| !n.starts_with("x-alter-") && n != "x-api-key"),
            "nothing of the vault's own protocol reaches the provider: {:?}",
            got.headers
        );
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&got.body).unwrap(),
            json!({"amount": 5})
        );

        let header = secret(
            &server,
            &world,
            &hosts,
            CreateSecretRequest {
                header: Some("X-Api-Key".into()),
                ..secret_request("Header", "header", "hdr-value-123")
            },
        )
        .await;
        app.proxy_request(call(system_grant(&server, &world, &header).await))
            .await
            .unwrap();
        assert_eq!(upstream.last().header("x-api-key"), Some("hdr-value-123"));

        let basic = secret(
            &server,
            &world,
            &hosts,
            secret_request("Basic", "basic", "alice:pa:ss"),
        )
        .await;
        app.proxy_request(call(system_grant(&server, &world, &basic).await))
            .await
            .unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode("alice:pa:ss");
        assert_eq!(
            upstream.last().header("authorization"),
            Some(format!("Basic {expected}").as_str())
        );

        let query = secret(
            &server,
            &world,
            &hosts,
            CreateSecretRequest {
                param: Some("api_key".into()),
                ..secret_request("Query", "query", "query-secret-456")
            },
        )
        .await;
        app.proxy_request(call(system_grant(&server, &world, &query).await))
            .await
            .unwrap();
        let got = upstream.last();
        assert!(
            got.query_pairs()
                .contains(&("api_key".into(), "query-secret-456".into()))
        );
        assert!(
            got.headers
                .iter()
                .all(|(_, v)| !v.contains("query-secret-456"))
        );

        let multi = secret(
            &server,
            &world,
            &hosts,
            CreateSecretRequest {
                rules: vec![
                    InjectionRuleBody {
                        target: "header".into(),
                        name: "DD-API-KEY".into(),
                        field: "api_key".into(),
                    },
                    InjectionRuleBody {
                        target: "query".into(),
                        name: "sig".into(),
                        field: "signature".into(),
                    },
                ],
                ..secret_request(
                    "Datadog",
                    "multi",
                    r#"{"api_key":"dd-api-1","signature":"sig-3","spare":"dd-spare-4"}"#,
                )
            },
        )
        .await;
        app.proxy_request(call(system_grant(&server, &world, &multi).await))
            .await
            .unwrap();
        let got = upstream.last();
        assert_eq!(got.header("dd-api-key"), Some("dd-api-1"));
        assert!(got.query_pairs().contains(&("sig".into(), "sig-3".into())));
        assert!(got.headers.iter().all(|(_, v)| !v.contains("dd-spare-4")));

        let aws_value = json!({
            "access_key_id": "AKIDEXAMPLE12345",
            "secret_access_key": AWS_SECRET,
            "region": "eu-west-3",
            "service": "execute-api",
        })
        .to_string();
        let aws = secret(
            &server,
            &world,
            &hosts,
            secret_request("AWS", "aws_sigv4", &aws_value),
        )
        .await;
        app.proxy_request(call(system_grant(&server, &world, &aws).await))
            .await
            .unwrap();
        let got = upstream.last();
        let authorization = got.header("authorization").unwrap().to_owned();
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE12345/")
                && authorization.contains("/eu-west-3/execute-api/aws4_request"),
            "{authorization}"
        );
        // The provider recomputes the signature over what arrived, at the time it claims.
        let date = got.header("x-amz-date").unwrap();
        let at = time::PrimitiveDateTime::parse(
            date,
            time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
        )
        .unwrap()
        .assume_utc();
        let now = UNIX_EPOCH + Duration::from_secs(u64::try_from(at.unix_timestamp()).unwrap());
        let url = reqwest::Url::parse(&format!(
            "{}{}?{}",
            upstream.url(),
            got.path,
            got.query.clone().unwrap_or_default()
        ))
        .unwrap();
        let recomputed = sigv4::sign(
            "POST",
            &url,
            &[],
            &got.body,
            &AwsCredentials {
                access_key_id: "AKIDEXAMPLE12345".into(),
                secret_access_key: AWS_SECRET.into(),
                session_token: None,
                region: Some("eu-west-3".into()),
                service: Some("execute-api".into()),
            },
            now,
        )
        .unwrap();
        assert_eq!(recomputed[0].1, authorization, "a valid SigV4 signature");
        assert!(got.headers.iter().all(|(_, v)| !v.contains(AWS_SECRET)));

        // The audit log: the release (mode proxy), then what came of the call; no secret.
        let released = audit(&server, &world, "credential.released", &bearer_grant).await;
        assert_eq!(released.len(), 1);
        assert_eq!(released[0]["details"]["mode"], "proxy");
        assert_eq!(released[0]["reason"], "testing proxy injection");
        let used = outcomes(&server, &world, &bearer_grant, 1).await;
        assert_eq!(used.len(), 1);
        let outcome = &used[0]["outcome"];
        assert_eq!(outcome["response_status"], 201);
        assert_eq!(outcome["request_bytes"], 12);
        assert_eq!(outcome["response_bytes"], 11);
        assert_eq!(used[0]["details"]["release_id"], released[0]["id"]);
        // The decision's facts keep the caller's JSON body (for what-if replays), never a
        // credential; the outcome keeps no body.
        let facts = &released[0]["details"]["decision_facts"];
        assert_eq!(
            facts["target"]["body"]["json"],
            serde_json::json!({"amount": 5})
        );
        assert!(!serde_json::to_string(&used).unwrap().contains("amount"));
        let text = serde_json::to_string(&(released, used)).unwrap();
        assert!(!text.contains(BEARER), "{text}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn destinations_the_vault_must_not_reach_are_refused() {
    let options = Options {
        allowed_networks: alter_upstream::AllowedNetworks::default(),
        ..Options::default()
    };
    let server = TestServer::start_with(alter_testkit::Engine::Sqlite, options).await;
    let world = server.world("a").await;
    let upstream = Upstream::start().await;
    let port = upstream.url().rsplit(':').next().unwrap().to_owned();
    // The credential may go to each of these hosts (IPv6 literals cannot be allowed hosts):
    // what refuses them is the guard on the addresses they are, or resolve to. The guard's
    // IPv6 forms are checked in `upstream`'s destination tests.
    let any_host = secret(
        &server,
        &world,
        &[
            "127.0.0.1",
            "localhost",
            "api.localhost",
            "169.254.169.254",
            "10.0.0.1",
            "192.168.1.1",
            "0.0.0.0",
        ],
        secret_request("Anywhere", "bearer", BEARER),
    )
    .await;
    let grant = system_grant(&server, &world, &any_host).await;
    let app = server.app(&world.app.key.api_key);
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0177.0.0.1:{port}/"),
        format!("http://0x7f.0.0.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://api.localhost:{port}/"),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://[::ffff:169.254.169.254]/".into(),
        "http://10.0.0.1/".into(),
        "http://192.168.1.1/".into(),
        "http://0.0.0.0/".into(),
        "http://[fd00::1]/".into(),
    ] {
        let e = app
            .proxy_request(ProviderRequest::get(&url).grant_id(&grant))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::BlockedDestination(_)), "{url}: {e}");
        assert_eq!(e.status(), 422, "{url}");
    }
    assert!(
        upstream.received().is_empty(),
        "nothing reached the provider"
    );
    // The refusals are in the audit log beside the releases they follow.
    let used = outcomes(&server, &world, &grant, 11).await;
    assert_eq!(
        used.len(),
        11,
        "every IPv4 and named destination reached the guard"
    );
    assert!(
        used.iter()
            .all(|e| e["outcome"]["error"] == "blocked_destination")
    );
    server.stop().await;
}

#[tokio::test]
async fn redirects_come_back_as_the_answer_and_are_not_followed() {
    let server = TestServer::start(alter_testkit::Engine::Sqlite).await;
    let world = server.world("a").await;
    let upstream = Upstream::start().await;
    let elsewhere = Upstream::start().await;
    let location = format!("{}/stolen", elsewhere.url());
    upstream.answer(302, &[("location", location.as_str())], "");
    let bearer = secret(
        &server,
        &world,
        &["127.0.0.1"],
        secret_request("Bearer", "bearer", BEARER),
    )
    .await;
    let grant = system_grant(&server, &world, &bearer).await;
    let result = server
        .app(&world.app.key.api_key)
        .proxy_request(ProviderRequest::get(format!("{}/go", upstream.url())).grant_id(&grant))
        .await
        .and_then(ProxyOutcome::completed)
        .unwrap();
    assert_eq!(result.status_code, 302);
    assert_eq!(result.headers.get("location"), Some(&location));
    assert_eq!(upstream.received().len(), 1);
    assert!(
        elsewhere.received().is_empty(),
        "the redirect was not followed"
    );
    server.stop().await;
}

#[tokio::test]
async fn forbidden_headers_and_long_urls_are_refused_before_anything_is_sent() {
    let server = TestServer::start(alter_testkit::Engine::Sqlite).await;
    let world = server.world("a").await;
    let upstream = Upstream::start().await;
    let bearer = secret(
        &server,
        &world,
        &["127.0.0.1"],
        secret_request("Bearer", "bearer", BEARER),
    )
    .await;
    let grant = system_grant(&server, &world, &bearer).await;
    let url = format!("{}/v1", upstream.url());
    for name in [
        "Authorization",
        "cookie",
        "X-Amz-Date",
        "x-http-method-override",
        "Host",
        "Transfer-Encoding",
    ] {
        let body = json!({"method": "GET", "url": url, "grant_id": grant, "headers": {name: "x"}});
        let r = server
            .raw(&world.app.key.api_key, "POST", "/sdk/proxy")
            .body(body.to_string().into_bytes())
            .send()
            .await;
        assert_eq!(
            (r.status, r.code()),
            (422, Some("forbidden_header")),
            "{name}"
        );
        // The official client's own check, mirrored by the Rust SDK.
        let local = server
            .app(&world.app.key.api_key)
            .proxy_request(
                ProviderRequest::get(&url)
                    .grant_id(&grant)
                    .header(name, "x"),
            )
            .await;
        assert!(local.is_err(), "{name}");
    }
    let body = json!({"method": "GET", "url": url, "grant_id": grant, "query_params": {"q": "&".repeat(22_000)}});
    let r = server
        .raw(&world.app.key.api_key, "POST", "/sdk/proxy")
        .body(body.to_string().into_bytes())
        .send()
        .await;
    assert_eq!((r.status, r.code()), (422, Some("query_too_long")));
    assert!(upstream.received().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn long_answers_are_cut_at_the_cap() {
    let server = TestServer::start(alter_testkit::Engine::Sqlite).await;
    let world = server.world("a").await;
    let upstream = Upstream::start().await;
    let cap = alter_core::vault::Settings::default().proxy_max_response_bytes;
    upstream.answer(200, &[], &"y".repeat(cap + 4096));
    let bearer = secret(
        &server,
        &world,
        &["127.0.0.1"],
        secret_request("Bearer", "bearer", BEARER),
    )
    .await;
    let grant = system_grant(&server, &world, &bearer).await;
    let app = server.app(&world.app.key.api_key);
    let result = app
        .proxy_request(ProviderRequest::get(format!("{}/big", upstream.url())).grant_id(&grant))
        .await
        .and_then(ProxyOutcome::completed)
        .unwrap();
    assert!(result.body_truncated);
    assert_eq!(result.body_bytes().len(), cap);
    upstream.answer(200, &[], &"y".repeat(cap));
    let exact = app
        .proxy_request(ProviderRequest::get(format!("{}/big", upstream.url())).grant_id(&grant))
        .await
        .and_then(ProxyOutcome::completed)
        .unwrap();
    assert!(!exact.body_truncated);
    assert_eq!(exact.body_bytes().len(), cap);
    server.stop().await;
}

#[tokio::test]
async fn keys_and_agents_reach_only_what_they_may() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let other = server.world("b").await;
        let upstream = Upstream::start().await;
        let url = format!("{}/v1/x", upstream.url());
        let app = server.app(&world.app.key.api_key);
        let bearer = secret(
            &server,
            &world,
            &["127.0.0.1"],
            secret_request("Bearer", "bearer", BEARER),
        )
        .await;
        let live = system_grant(&server, &world, &bearer).await;

        // Another app's grant id is "not found", and nothing is sent.
        let foreign_secret = secret(
            &server,
            &other,
            &["127.0.0.1"],
            secret_request("Theirs", "bearer", "their-value"),
        )
        .await;
        let foreign = system_grant(&server, &other, &foreign_secret).await;
        let e = app
            .proxy_request(ProviderRequest::get(&url).grant_id(&foreign))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::GrantNotFound(_)), "{e}");

        // A revoked grant is refused and the provider never hit.
        let revoked = system_grant(&server, &world, &bearer).await;
        app.revoke_grant(&revoked, None).await.unwrap();
        let e = app
            .proxy_request(ProviderRequest::get(&url).grant_id(&revoked))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::GrantRevoked(_)), "{e}");
        assert!(upstream.received().is_empty());
        let denied = audit(&server, &world, "credential.denied", &revoked).await;
        assert_eq!(denied.len(), 1);
        assert_eq!(denied[0]["reason"], "grant_revoked");
        assert_eq!(denied[0]["details"]["mode"], "proxy");

        // A key without proxy:execute may not proxy; a derived key with it may.
        let narrow = server
            .mint_key(
                &world.app,
                MintKeyRequest {
                    scopes: Some(vec!["tokens:retrieve".into()]),
                    ..Default::default()
                },
            )
            .await;
        let e = server
            .app(&narrow.api_key)
            .proxy_request(ProviderRequest::get(&url).grant_id(&live))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InsufficientScope(_)), "{e}");
        assert_eq!(e.info().str_list("required"), vec!["proxy:execute"]);
        let derived = app
            .keys()
            .derive(DeriveKeyRequest {
                scopes: vec!["proxy:execute".into()],
                expires_in: 600,
                cidr_allowlist: None,
                name: None,
                metadata: None,
            })
            .await
            .unwrap();
        let result = server
            .app(&derived.api_key)
            .proxy_request(ProviderRequest::get(&url).grant_id(&live))
            .await
            .and_then(ProxyOutcome::completed)
            .unwrap();
        assert_eq!(result.status_code, 200);
        assert_eq!(upstream.received().len(), 1);

        // An agent: its own grant works; the app's grant is not its to use.
        let agents = app.agents();
        let helper = agents
            .create(CreateAgent::new(
                "helper",
                json!({"managed_secret_slugs": [bearer.slug]}),
            ))
            .await
            .unwrap();
        let helper_agent = server.agent(helper.api_key.as_deref().unwrap());
        let own = helper_agent
            .create_managed_secret_grant(&bearer.id, None, None)
            .await
            .unwrap();
        let result = helper_agent
            .proxy_request(ProviderRequest::get(&url).grant_id(&own.grant_id))
            .await
            .and_then(ProxyOutcome::completed)
            .unwrap();
        assert_eq!(result.status_code, 200);
        let e = helper_agent
            .proxy_request(ProviderRequest::get(&url).grant_id(&live))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::AgentDelegationMissing(_)), "{e}");

        // An agent whose calls need approval: held, nothing sent (the 202 comes with approvals).
        let careful = agents
            .create(CreateAgent {
                policy: Some(json!({"requires_approval": true})),
                ..CreateAgent::new("careful", json!({"managed_secret_slugs": [bearer.slug]}))
            })
            .await
            .unwrap();
        let careful_agent = server.agent(careful.api_key.as_deref().unwrap());
        let held = careful_agent
            .create_managed_secret_grant(&bearer.id, None, None)
            .await
            .unwrap();
        let before = upstream.received().len();
        let e = careful_agent
            .proxy_request(ProviderRequest::get(&url).grant_id(&held.grant_id))
            .await
            .unwrap_err();
        // A held call must say why (the approver reads it); with a reason it waits.
        assert_eq!(e.code(), Some("approval_reason_required"), "{e}");
        let pending = careful_agent
            .proxy_request(
                ProviderRequest::get(&url)
                    .grant_id(&held.grant_id)
                    .reason("needs a person"),
            )
            .await
            .unwrap();
        assert!(matches!(pending, ProxyOutcome::Pending(_)), "{pending:?}");
        assert_eq!(upstream.received().len(), before, "a held call is not sent");

        // An `ak` key (agent-typed, bound to no managed agent) proxies with the app's grants
        // it may reach.
        let ak = server
            .mint_key(
                &world.app,
                MintKeyRequest {
                    key_type: Some("ak".into()),
                    ..Default::default()
                },
            )
            .await;
        let r = server
            .agent(&ak.api_key)
            .proxy_request(ProviderRequest::get(&url).grant_id(&foreign))
            .await
            .unwrap_err();
        assert!(r.is_grant_not_found(), "{r}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn provider_errors_are_results_with_a_hint_when_the_scheme_is_wrong() {
    let server = TestServer::start(alter_testkit::Engine::Sqlite).await;
    let world = server.world("a").await;
    let upstream = Upstream::start().await;
    upstream.answer(401, &[("www-authenticate", "Basic realm=\"api\"")], "no");
    let bearer = secret(
        &server,
        &world,
        &["127.0.0.1"],
        secret_request("Bearer", "bearer", BEARER),
    )
    .await;
    let grant = system_grant(&server, &world, &bearer).await;
    let app = server.app(&world.app.key.api_key);
    let result = app
        .proxy_request(ProviderRequest::get(format!("{}/v1", upstream.url())).grant_id(&grant))
        .await
        .and_then(ProxyOutcome::completed)
        .unwrap();
    assert_eq!(result.status_code, 401);
    assert_eq!(result.body_text(), "no");
    let hint = result.credential_hint.clone().unwrap();
    assert!(hint.contains("Basic") && !hint.contains(BEARER), "{hint}");
    upstream.answer(500, &[], "boom");
    let result = app
        .proxy_request(ProviderRequest::get(format!("{}/v1", upstream.url())).grant_id(&grant))
        .await
        .and_then(ProxyOutcome::completed)
        .unwrap();
    assert_eq!(
        (result.status_code, result.credential_hint.clone()),
        (500, None)
    );
    server.stop().await;
}

#[tokio::test]
async fn concurrent_calls_racing_a_revocation_send_only_what_was_released() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let upstream = Upstream::start().await;
        let bearer = secret(
            &server,
            &world,
            &["127.0.0.1"],
            secret_request("Bearer", "bearer", BEARER),
        )
        .await;
        let grant = system_grant(&server, &world, &bearer).await;
        let app = server.app(&world.app.key.api_key);
        let url = format!("{}/v1/x", upstream.url());
        let calls = (0..12).map(|_| {
            let app = app.clone();
            let request = ProviderRequest::get(&url).grant_id(&grant);
            tokio::spawn(async move {
                app.proxy_request(request)
                    .await
                    .and_then(ProxyOutcome::completed)
            })
        });
        let calls: Vec<_> = calls.collect();
        app.revoke_grant(&grant, None).await.unwrap();
        let mut sent = 0;
        for call in calls {
            match call.await.unwrap() {
                Ok(result) => {
                    assert_eq!(result.status_code, 200);
                    sent += 1;
                }
                Err(e) => assert!(matches!(e, Error::GrantRevoked(_)), "{e}"),
            }
        }
        // Every call that reached the provider committed its release first, and none was
        // sent after a refusal.
        assert_eq!(upstream.received().len(), sent);
        assert_eq!(
            audit(&server, &world, "credential.released", &grant)
                .await
                .len(),
            sent
        );
        assert_eq!(outcomes(&server, &world, &grant, sent).await.len(), sent);
        let after = app
            .proxy_request(ProviderRequest::get(&url).grant_id(&grant))
            .await;
        assert!(matches!(after, Err(Error::GrantRevoked(_))));
        assert_eq!(upstream.received().len(), sent);
        server.stop().await;
    })
    .await;
}

/// The caller a signed request with `api_key` would be (the signature taken as checked).
async fn caller(server: &TestServer, api_key: &str) -> alter_core::caller::Caller {
    server
        .vault()
        .authenticate(
            api_key,
            || {
                Ok(alter_core::caller::RequestFacts {
                    timestamp: server.now().unix_seconds().to_string(),
                    nonce: uuid::Uuid::new_v4().simple().to_string(),
                    ..Default::default()
                })
            },
            |_| true,
            alter_core::caller::NonceTiming::AtAdmission,
        )
        .await
        .expect("caller")
}

#[tokio::test]
async fn an_approved_call_runs_again_and_only_its_discharged_holds_count() {
    use alter_core::proxy::{ProxyOutcome, ProxyRequest};
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let upstream = Upstream::start().await;
        let bearer = secret(
            &server,
            &world,
            &["127.0.0.1"],
            secret_request("Bearer", "bearer", BEARER),
        )
        .await;
        let app = server.app(&world.app.key.api_key);
        let careful = app
            .agents()
            .create(CreateAgent {
                policy: Some(json!({"requires_approval": true})),
                ..CreateAgent::new("careful", json!({"managed_secret_slugs": [bearer.slug]}))
            })
            .await
            .unwrap();
        let key = careful.api_key.clone().unwrap();
        let own = server
            .agent(&key)
            .create_managed_secret_grant(&bearer.id, None, None)
            .await
            .unwrap();
        let request = ProxyRequest {
            grant_id: Some(own.grant_id.clone()),
            method: "POST".into(),
            url: format!("{}/v1/pay", upstream.url()),
            body: Some(json!({"amount": 7})),
            reason: Some("pay the invoice".into()),
            ..ProxyRequest::default()
        };
        let vault = server.vault();
        let agent = caller(&server, &key).await;
        let ProxyOutcome::Held(held) = vault.proxy(&agent, request.clone()).await.unwrap() else {
            panic!("the agent's call is held");
        };
        assert_eq!(held.grant_id.to_string(), own.grant_id);
        assert_eq!(held.holds.len(), 1);
        assert_eq!(held.holds[0].kind, "agent_requires_approval");
        assert_eq!(held.facts.target.method, "POST");
        assert_eq!(
            held.facts.target.body.as_ref().unwrap().json,
            Some(json!({"amount": 7}))
        );
        assert!(upstream.received().is_empty(), "a held call is not sent");

        // Without the approval's rules discharged, it is still refused.
        let e = vault
            .proxy_approved(&agent, &request, &[])
            .await
            .unwrap_err();
        assert!(matches!(e, alter_core::Error::HoldNotDischarged), "{e}");
        assert!(upstream.received().is_empty());

        // Approved: the same pipeline runs again, now, and the call is made.
        let result = vault
            .proxy_approved(&agent, &request, &held.holds)
            .await
            .unwrap();
        assert_eq!(result.status, 200);
        assert_eq!(
            upstream.last().header("authorization"),
            Some(format!("Bearer {BEARER}").as_str())
        );
        let released = audit(&server, &world, "credential.released", &own.grant_id).await;
        assert_eq!(released.len(), 1);
        assert_eq!(released[0]["details"]["mode"], "proxy");

        // The agent's settings changed since the approval (a new version): it no longer covers.
        app.agents()
            .update(
                &careful.agent.id,
                alter_sdk::UpdateAgent {
                    changes: alter_proto::agents::UpdateAgentRequest {
                        display_name: Some(Some("Careful bot".into())),
                        ..Default::default()
                    },
                    expected_version: Some(careful.agent.version),
                    grace_seconds: None,
                },
            )
            .await
            .unwrap();
        let agent = caller(&server, &key).await;
        let e = vault
            .proxy_approved(&agent, &request, &held.holds)
            .await
            .unwrap_err();
        assert!(matches!(e, alter_core::Error::HoldNotDischarged), "{e}");

        // A revocation since the approval wins.
        app.revoke_grant(&own.grant_id, None).await.unwrap();
        let e = vault
            .proxy_approved(&agent, &request, &held.holds)
            .await
            .unwrap_err();
        assert!(matches!(e, alter_core::Error::ReleaseDenied(_)), "{e}");
        assert_eq!(upstream.received().len(), 1);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_oauth_connection_is_used_through_the_proxy() {
    use crate::connect::{PROVIDER, setup};
    let s = setup(
        TestServer::start(alter_testkit::Engine::Sqlite).await,
        false,
    )
    .await;
    let grant = s.connect(json!({ "allowed_providers": [PROVIDER] })).await;
    let grant_id = grant["grant_id"].as_str().unwrap().to_owned();
    let app = s.server.app(&s.app.key.api_key);
    // The peer's resource answers 200 only to a live access token it issued.
    let result = app
        .proxy_request(ProviderRequest::get(s.peer.url("/_peer/resource")).provider(PROVIDER))
        .await
        .and_then(ProxyOutcome::completed)
        .unwrap();
    assert_eq!(result.status_code, 200, "{}", result.body_text());
    let by_id = app
        .proxy_request(ProviderRequest::get(s.peer.url("/_peer/resource")).grant_id(&grant_id))
        .await
        .and_then(ProxyOutcome::completed)
        .unwrap();
    assert_eq!(by_id.status_code, 200);
    s.server.stop().await;
}

/// `/sdk/token` and `/sdk/proxy` claim the request's nonce in the transaction of their first
/// write (the release, or the record of its refusal) rather than in one of its own: a replay is
/// still refused before any answer — on either node, however many are sent at once — and
/// writes nothing: no second release, call, denial or held approval.
#[tokio::test]
async fn credential_uses_claim_their_nonce_with_their_first_write() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let node2 = server.second_node().await;
        let world = server.world("a").await;
        let upstream = Upstream::start().await;
        let bearer = secret(
            &server,
            &world,
            &["127.0.0.1"],
            secret_request("Replayed", "bearer", "replay-secret-value"),
        )
        .await;
        let grant = system_grant(&server, &world, &bearer).await;
        let key = world.app.key.api_key.as_str();
        let count = |action: &'static str| {
            let (server, world, grant) = (&server, &world, grant.clone());
            async move { audit(server, world, action, &grant).await.len() }
        };
        let url = format!("{}/v1/replay", upstream.url());
        let token_body = json!({"grant_id": grant, "request": {"method": "GET", "url": url}});
        let proxy_body = json!({"grant_id": grant, "method": "GET", "url": url});
        let send = |node: &TestServer, path: &str, body: &serde_json::Value, nonce: &str| {
            node.raw(key, "POST", path)
                .body(serde_json::to_vec(body).unwrap())
                .nonce(nonce)
                .send()
        };

        // A release, then its replay on either node.
        let nonce = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1";
        assert_eq!(send(&server, "/sdk/token", &token_body, nonce).await.status, 200);
        for node in [&server, &node2] {
            let replay = send(node, "/sdk/token", &token_body, nonce).await;
            assert_eq!(replay.status, 401, "{:?}", replay.json);
        }
        assert_eq!(count("credential.released").await, 1);

        // A refusal (a host the secret does not allow) is recorded once.
        let elsewhere = json!({"grant_id": grant, "request": {"method": "GET", "url": "https://elsewhere.example/"}});
        let nonce = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2";
        assert_eq!(send(&server, "/sdk/token", &elsewhere, nonce).await.status, 422);
        assert_eq!(send(&node2, "/sdk/token", &elsewhere, nonce).await.status, 401);
        assert_eq!(count("credential.denied").await, 1);

        // Eight copies of one proxied call at once, on two nodes: one call is made.
        let nonce = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa3";
        let copies: Vec<_> = (0..8)
            .map(|i| {
                let node = if i % 2 == 0 { &server } else { &node2 };
                let request = node
                    .raw(key, "POST", "/sdk/proxy")
                    .body(serde_json::to_vec(&proxy_body).unwrap())
                    .nonce(nonce);
                tokio::spawn(request.send())
            })
            .collect();
        let mut statuses = Vec::new();
        for copy in copies {
            statuses.push(copy.await.unwrap().status);
        }
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 7, "{statuses:?}");
        assert_eq!(upstream.received().len(), 1);
        assert_eq!(count("credential.released").await, 2);

        // Requests that end before any write — refused at admission (a caller type that does
        // not exist) or by the handler (a malformed request) — still use up their nonce.
        let nonce = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa5";
        let bad_caller = || {
            node2
                .raw(key, "POST", "/sdk/token")
                .body(serde_json::to_vec(&token_body).unwrap())
                .signed_header(alter_proto::signing::headers::CALLER, "svc")
                .signed_header(alter_proto::signing::headers::CALLER_TYPE, "robot")
                .nonce(nonce)
                .send()
        };
        assert_eq!(bad_caller().await.status, 422);
        assert_eq!(bad_caller().await.status, 401);
        let malformed = json!({"grant_id": grant, "request": {"method": "get", "url": url}});
        let nonce = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa6";
        let traced = json!({"grant_id": grant, "method": "TRACE", "url": url});
        assert_eq!(send(&server, "/sdk/proxy", &traced, nonce).await.status, 422);
        assert_eq!(send(&server, "/sdk/proxy", &traced, nonce).await.status, 401);
        let nonce = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa7";
        assert_eq!(send(&server, "/sdk/token", &malformed, nonce).await.status, 422);
        assert_eq!(send(&node2, "/sdk/token", &malformed, nonce).await.status, 401);

        // A held call is parked once.
        server
            .admin()
            .add_rule(
                &world.app.info.id,
                &CreateRuleRequest {
                    target: RuleTargetBody {
                        kind: "grant".into(),
                        id: Some(grant.clone()),
                    },
                    kind: "require_approval".into(),
                    effect: None,
                    mode: None,
                    body: json!({}),
                    description: None,
                },
            )
            .await
            .unwrap();
        let held = json!({"grant_id": grant, "method": "GET", "url": url, "reason": "needs a person"});
        let nonce = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa4";
        assert_eq!(send(&server, "/sdk/proxy", &held, nonce).await.status, 202);
        assert_eq!(send(&node2, "/sdk/proxy", &held, nonce).await.status, 401);
        let requested = server
            .admin()
            .audit_events(
                &world.app.info.id,
                &AuditQuery {
                    action: Some("approval.requested".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(requested.items.len(), 1);
        assert_eq!(upstream.received().len(), 1, "nothing more was sent");
        node2.stop().await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_operator_replaces_a_secrets_allowed_hosts() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let other = server.world("b").await;
        let upstream = Upstream::start().await;
        let app_id = world.app.info.id.clone();
        let made = secret(
            &server,
            &world,
            &["127.0.0.1"],
            secret_request("Hosted", "bearer", BEARER),
        )
        .await;
        let grant = system_grant(&server, &world, &made).await;
        let app = server.app(&world.app.key.api_key);
        let url = format!("{}/v1/x", upstream.url());
        let call = || app.proxy_request(ProviderRequest::get(&url).grant_id(&grant));
        call().await.unwrap();
        let admin = server.admin();

        // Bad input changes nothing.
        for hosts in [
            vec!["https://api.example.com".to_owned()],
            vec!["".to_owned()],
            vec!["a..b".to_owned()],
            vec!["x".to_owned(); 51],
        ] {
            let e = admin
                .set_secret_hosts(&app_id, &made.id, hosts.clone())
                .await
                .unwrap_err();
            assert_eq!(e.status(), 422, "{hosts:?}");
            assert_eq!(e.code(), Some("invalid_request"), "{hosts:?}");
        }
        assert_eq!(
            admin
                .get_secret(&app_id, &made.id)
                .await
                .unwrap()
                .allowed_hosts,
            vec!["127.0.0.1"]
        );

        // Another app's operator path: the secret does not exist there.
        let e = admin
            .set_secret_hosts(&other.app.info.id, &made.id, vec!["evil.example".into()])
            .await
            .unwrap_err();
        assert_eq!(e.status(), 404);
        let e = admin
            .set_secret_hosts(&other.app.info.id, &made.slug, vec!["evil.example".into()])
            .await
            .unwrap_err();
        assert_eq!(e.status(), 404);

        // Replaced (by slug, normalised as at creation): the next call to the removed host is
        // refused before anything is sent; the value and the grant stay.
        let changed = admin
            .set_secret_hosts(
                &app_id,
                &made.slug,
                vec!["API.Example.com".into(), "*.example.org".into()],
            )
            .await
            .unwrap();
        assert_eq!(
            changed.allowed_hosts,
            vec!["api.example.com", "*.example.org"]
        );
        assert_eq!(changed.value_version, made.value_version);
        let sent = upstream.received().len();
        let e = call().await.unwrap_err();
        assert_eq!(e.status(), 422, "{e}");
        assert_eq!(upstream.received().len(), sent, "nothing was sent");

        // Back to this host: the same grant works again.
        admin
            .set_secret_hosts(&app_id, &made.id, vec!["127.0.0.1".into()])
            .await
            .unwrap();
        call().await.unwrap();

        // Each change is one audit event naming the new hosts, by the operator.
        let events = admin
            .audit_events(
                &app_id,
                &AuditQuery {
                    action: Some("secret.hosts_changed".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .items;
        let hosts: Vec<_> = events
            .iter()
            .map(|e| e.event["details"]["allowed_hosts"].clone())
            .collect();
        assert_eq!(
            hosts,
            vec![
                json!(["api.example.com", "*.example.org"]),
                json!(["127.0.0.1"])
            ]
        );
        assert!(events.iter().all(|e| e.event["actor"]["kind"] == "operator"
            && e.event["target"]["id"] == made.id.as_str()));
        let other_events = admin
            .audit_events(
                &other.app.info.id,
                &AuditQuery {
                    action: Some("secret.hosts_changed".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .items;
        assert!(other_events.is_empty());

        // A deleted secret is not found.
        admin
            .delete_secret(&app_id, &made.id, &made.slug)
            .await
            .unwrap();
        let e = admin
            .set_secret_hosts(&app_id, &made.id, vec![])
            .await
            .unwrap_err();
        assert_eq!(e.status(), 404);
        server.stop().await;
    })
    .await;
}
