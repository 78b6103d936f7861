//! Using a grant: the Rust SDK's `request()` in retrieve mode against a real local provider,
//! every injection format, every release rule, and the audit trail each leaves.

use std::time::{Duration, UNIX_EPOCH};

use alter_proto::admin::{
    AuditQuery, CreateSecretRequest, InjectionRuleBody, MintKeyRequest, SecretInfo,
};
use alter_sdk::sigv4::{self, AwsCredentials};
use alter_sdk::{
    CreateAgent, Error, GrantItem, ListGrants, Principal, ProviderRequest, UpdateAgent,
};
use alter_testkit::upstream::Upstream;
use alter_testkit::{TestServer, World, on_every_engine};
use base64::Engine as _;
use serde_json::json;

const BEARER: &str = "sk_live_bearerValue0123456789";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const AWS_TOKEN: &str = "FwoGZXIvYXdzEXAMPLEsessiontoken";

async fn secret(server: &TestServer, world: &World, request: CreateSecretRequest) -> SecretInfo {
    server
        .admin()
        .create_secret(
            &world.app.info.id,
            &CreateSecretRequest {
                allowed_hosts: vec!["127.0.0.1".into()],
                ..request
            },
        )
        .await
        .expect("create secret")
}

async fn system_grant(server: &TestServer, world: &World, secret: &SecretInfo) -> String {
    server
        .app(&world.app.key.api_key)
        .create_managed_secret_grant(&secret.id, Principal::system(), None)
        .await
        .expect("grant")
        .grant_id
}

fn secret_request(name: &str, kind: &str, value: &str) -> CreateSecretRequest {
    CreateSecretRequest {
        name: name.into(),
        secret_type: kind.into(),
        value: value.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_injection_format_reaches_the_provider() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let upstream = Upstream::start().await;
        let app = server.app(&world.app.key.api_key);
        let call = |grant: String| {
            ProviderRequest::post(format!("{}/v1/items/{{id}}?existing=1", upstream.url()))
                .grant_id(grant)
                .path_param("id", "a b/c")
                .query_param("extra", "x y")
                .header("X-Caller", "kept")
                .json(json!({"amount": 5}))
                .reason("testing injection")
        };

        let bearer = secret(&server, &world, secret_request("Bearer", "bearer", BEARER)).await;
        let response = app
            .request(call(system_grant(&server, &world, &bearer).await))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let got = upstream.last();
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
        assert_eq!(
            got.header("x-api-key"),
            None,
            "the API key never reaches the provider"
        );
        assert!(
            got.headers.iter().all(|(n, _)| !n.starts_with("x-alter-")),
            "{:?}",
            got.headers
        );
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&got.body).unwrap(),
            json!({"amount": 5})
        );

        let header = secret(
            &server,
            &world,
            CreateSecretRequest {
                header: Some("X-Api-Key".into()),
                ..secret_request("Header", "header", "hdr-value-123")
            },
        )
        .await;
        app.request(call(system_grant(&server, &world, &header).await))
            .await
            .unwrap();
        assert_eq!(upstream.last().header("x-api-key"), Some("hdr-value-123"));

        let basic = secret(
            &server,
            &world,
            secret_request("Basic", "basic", "alice:pa:ss"),
        )
        .await;
        app.request(call(system_grant(&server, &world, &basic).await))
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
            CreateSecretRequest {
                param: Some("api_key".into()),
                ..secret_request("Query", "query", "query-secret-456")
            },
        )
        .await;
        app.request(call(system_grant(&server, &world, &query).await))
            .await
            .unwrap();
        let got = upstream.last();
        assert!(
            got.query_pairs()
                .contains(&("api_key".into(), "query-secret-456".into()))
        );
        assert_eq!(got.header("x-alter-credential"), Some("query-parameter"));
        assert!(
            got.headers
                .iter()
                .all(|(_, v)| !v.contains("query-secret-456"))
        );

        let multi = secret(
            &server,
            &world,
            CreateSecretRequest {
                rules: vec![
                    InjectionRuleBody {
                        target: "header".into(),
                        name: "DD-API-KEY".into(),
                        field: "api_key".into(),
                    },
                    InjectionRuleBody {
                        target: "header".into(),
                        name: "DD-APPLICATION-KEY".into(),
                        field: "app_key".into(),
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
                    r#"{"api_key":"dd-api-1","app_key":"dd-app-2","signature":"sig-3","spare":"dd-spare-4"}"#,
                )
            },
        )
        .await;
        let multi_grant = system_grant(&server, &world, &multi).await;
        app.request(call(multi_grant.clone())).await.unwrap();
        let got = upstream.last();
        assert_eq!(got.header("dd-api-key"), Some("dd-api-1"));
        assert_eq!(got.header("dd-application-key"), Some("dd-app-2"));
        assert!(got.query_pairs().contains(&("sig".into(), "sig-3".into())));
        // A field no rule injects never leaves the vault.
        let released = server
            .raw(&world.app.key.api_key, "POST", "/sdk/token")
            .body(
                json!({"grant_id": multi_grant, "reason": null, "request": {"method": "GET", "url": format!("{}/v1/x", upstream.url())}})
                    .to_string()
                    .into_bytes(),
            )
            .send()
            .await;
        assert_eq!(released.status, 200);
        let fields = released.json["additional_credentials"].as_object().unwrap();
        assert_eq!(
            fields.keys().collect::<Vec<_>>(),
            ["api_key", "app_key", "signature"]
        );
        assert!(!String::from_utf8_lossy(&released.bytes).contains("dd-spare-4"));

        let aws_value = json!({
            "access_key_id": "AKIDEXAMPLE12345",
            "secret_access_key": AWS_SECRET,
            "session_token": AWS_TOKEN,
            "region": "eu-west-3",
            "service": "execute-api",
        })
        .to_string();
        let aws = secret(
            &server,
            &world,
            secret_request("AWS", "aws_sigv4", &aws_value),
        )
        .await;
        app.request(call(system_grant(&server, &world, &aws).await))
            .await
            .unwrap();
        let got = upstream.last();
        let authorization = got.header("authorization").unwrap().to_owned();
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE12345/")
                && authorization.contains("/eu-west-3/execute-api/aws4_request"),
            "{authorization}"
        );
        assert_eq!(got.header("x-amz-security-token"), Some(AWS_TOKEN));
        // Recompute the signature over what arrived, at the time it claims.
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
        let sent: Vec<(String, String)> = got
            .headers
            .iter()
            .filter(|(n, _)| !n.starts_with("x-amz-") && n != "authorization")
            .cloned()
            .collect();
        let recomputed = sigv4::sign(
            "POST",
            &url,
            &sent,
            &got.body,
            &AwsCredentials {
                access_key_id: "AKIDEXAMPLE12345".into(),
                secret_access_key: AWS_SECRET.into(),
                session_token: Some(AWS_TOKEN.into()),
                region: Some("eu-west-3".into()),
                service: Some("execute-api".into()),
            },
            now,
        )
        .unwrap();
        let expected = recomputed
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .unwrap();
        assert_eq!(
            expected.1, authorization,
            "a valid SigV4 signature over the call as received"
        );
        assert!(got.headers.iter().all(|(_, v)| !v.contains(AWS_SECRET)));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn releases_and_refusals_are_in_the_audit_log_before_the_answer() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let upstream = Upstream::start().await;
        let bearer = secret(&server, &world, secret_request("Bearer", "bearer", BEARER)).await;
        let grant = system_grant(&server, &world, &bearer).await;
        let app = server.app(&world.app.key.api_key);
        app.request(
            ProviderRequest::get(format!(
                "{}/v1/charges?limit=5&key=query-value",
                upstream.url()
            ))
            .grant_id(&grant)
            .reason("nightly sync"),
        )
        .await
        .unwrap();
        let admin = server.admin();
        let released = admin
            .audit_events(
                &world.app.info.id,
                &AuditQuery {
                    action: Some("credential.released".into()),
                    grant: Some(grant.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(released.items.len(), 1, "committed before the answer");
        let event = &released.items[0].event;
        assert_eq!(event["decision"], "allow");
        assert_eq!(event["reason"], "nightly sync");
        assert_eq!(event["request"]["method"], "GET");
        assert_eq!(
            event["request"]["url"],
            format!("{}/v1/charges?limit&key", upstream.url()),
            "no query values"
        );
        assert_eq!(
            event["actor"]["key_prefix"],
            world.app.key.info.key_prefix.as_str()
        );
        assert_eq!(event["principal"]["type"], "system");
        // The client's report arrives in the background.
        let mut used = Vec::new();
        for _ in 0..100 {
            used = admin
                .audit_events(
                    &world.app.info.id,
                    &AuditQuery {
                        action: Some("credential.used".into()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
                .items;
            if !used.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(used.len(), 1, "the outcome report is recorded");
        assert_eq!(used[0].event["outcome"]["response_status"], 200);
        assert_eq!(used[0].event["details"]["release_id"], event["id"]);

        let refused = app
            .request(ProviderRequest::get("https://evil.example/x").grant_id(&grant))
            .await
            .unwrap_err();
        assert!(matches!(refused, Error::BlockedDestination(_)), "{refused}");
        let denied = admin
            .audit_events(
                &world.app.info.id,
                &AuditQuery {
                    decision: Some("deny".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(denied.items.len(), 1);
        assert_eq!(denied.items[0].event["reason"], "blocked_destination");
        assert_eq!(denied.items[0].event["action"], "credential.denied");

        // last_used_at moved.
        let page = app.list_grants(ListGrants::new()).await.unwrap();
        let GrantItem::ManagedSecret(item) = &page.grants[0] else {
            panic!()
        };
        assert!(item.last_used_at.is_some());

        let report = admin.verify_audit(&world.app.info.id).await.unwrap();
        assert!(report.ok, "{report:?}");
        assert!(report.events >= 5);
        // The whole log is exported without any secret value in it.
        let all = admin
            .audit_events(
                &world.app.info.id,
                &AuditQuery {
                    limit: Some(1000),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let text = serde_json::to_string(&all).unwrap();
        for secret in [
            BEARER,
            alter_testkit::WORLD_SECRET_VALUE,
            &world.app.key.api_key,
        ] {
            assert!(!text.contains(secret), "a secret in the audit log");
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn every_release_rule_refuses_with_its_named_error() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let upstream = Upstream::start().await;
        let app = server.app(&world.app.key.api_key);
        let url = format!("{}/v1/x", upstream.url());
        // Agents may hold grants of this secret of their own (opted in by the operator).
        let every_principal = ["user", "group", "system", "agent"].map(String::from).to_vec();
        let bearer = secret(&server, &world, CreateSecretRequest { principals: every_principal, ..secret_request("Bearer", "bearer", BEARER) }).await;
        let mut errors = Vec::new();
        let mut refused = |e: Error| {
            errors.push(e.to_string());
            e
        };

        let revoked = system_grant(&server, &world, &bearer).await;
        app.revoke_grant(&revoked, None).await.unwrap();
        let e = refused(app.request(ProviderRequest::get(&url).grant_id(&revoked)).await.unwrap_err());
        assert!(matches!(e, Error::GrantRevoked(_)), "{e}");

        let short = app
            .create_managed_secret_grant(&bearer.id, Principal::system().with_label("short"), Some(alter_sdk::GrantPolicy::new().max_ttl_seconds(60)))
            .await
            .unwrap();
        server.advance(61);
        let e = refused(app.request(ProviderRequest::get(&url).grant_id(&short.grant_id)).await.unwrap_err());
        assert!(matches!(e, Error::GrantExpired(_)), "{e}");

        let doomed = secret(&server, &world, secret_request("Doomed", "bearer", "doomed-value")).await;
        let orphan = system_grant(&server, &world, &doomed).await;
        server.admin().delete_secret(&world.app.info.id, &doomed.id, &doomed.slug).await.unwrap();
        let e = refused(app.request(ProviderRequest::get(&url).grant_id(&orphan)).await.unwrap_err());
        assert!(matches!(e, Error::GrantDeleted(_)), "{e}");

        let live = system_grant(&server, &world, &bearer).await;
        let e = refused(app.request(ProviderRequest::get("https://api.stripe.com/v1").grant_id(&live)).await.unwrap_err());
        assert!(matches!(e, Error::BlockedDestination(_)), "{e}");

        let narrow = server.mint_key(&world.app, MintKeyRequest { scopes: Some(vec!["grants:read".into()]), ..Default::default() }).await;
        let e = refused(server.app(&narrow.api_key).request(ProviderRequest::get(&url).grant_id(&live)).await.unwrap_err());
        assert!(matches!(e, Error::InsufficientScope(_)), "{e}");
        assert_eq!(e.info().str_list("required"), vec!["tokens:retrieve"]);

        let e = refused(app.request(ProviderRequest::get(&url).grant_id(uuid::Uuid::new_v4().to_string())).await.unwrap_err());
        assert!(matches!(e, Error::GrantNotFound(_)), "{e}");
        // Two live system grants of one secret: a provider lookup is ambiguous.
        system_grant(&server, &world, &bearer).await;
        let e = refused(app.request(ProviderRequest::get(&url).provider(&bearer.slug)).await.unwrap_err());
        assert!(matches!(e, Error::AmbiguousGrant(_)), "{e}");
        assert!(e.info().fields["candidates"].as_array().unwrap().len() >= 2);

        // Agents: allowlist, approval policy, pause, delegation chain.
        let agents = app.agents();
        let unlisted = agents.create(CreateAgent::new("unlisted", json!({"managed_secret_slugs": [bearer.slug]}))).await.unwrap();
        let unlisted_agent = server.agent(unlisted.api_key.as_deref().unwrap());
        let own = unlisted_agent.create_managed_secret_grant(&bearer.id, None, None).await.unwrap();
        // The operator takes the secret off its allowlist: its own grant stops working.
        let dropped = UpdateAgent {
            changes: alter_proto::agents::UpdateAgentRequest { scopes: Some(json!({})), ..Default::default() },
            expected_version: Some(unlisted.agent.version),
            grace_seconds: Some(0),
        };
        agents.update(&unlisted.agent.id, dropped).await.unwrap();
        let e = refused(unlisted_agent.request(ProviderRequest::get(&url).grant_id(&own.grant_id)).await.unwrap_err());
        assert_eq!(e.code(), Some("agent_not_allowlisted"), "{e}");
        assert!(matches!(e, Error::PolicyViolation(_)));
        let e = refused(unlisted_agent.request(ProviderRequest::get(&url).grant_id(&live)).await.unwrap_err());
        assert!(matches!(e, Error::AgentDelegationMissing(_)), "{e}");
        let e = refused(unlisted_agent.request(ProviderRequest::get(&url).provider("stripe-production")).await.unwrap_err());
        assert!(matches!(e, Error::NoDelegatedGrant(_)), "{e}");

        let careful = agents
            .create(CreateAgent {
                policy: Some(json!({"requires_approval": true})),
                ..CreateAgent::new("careful", json!({"managed_secret_slugs": [bearer.slug]}))
            })
            .await
            .unwrap();
        let careful_agent = server.agent(careful.api_key.as_deref().unwrap());
        let held = careful_agent.create_managed_secret_grant(&bearer.id, None, None).await.unwrap();
        let e = refused(careful_agent.request(ProviderRequest::get(&url).grant_id(&held.grant_id)).await.unwrap_err());
        assert!(matches!(e, Error::RestrictedGrantRequiresProxy(_)), "{e}");
        assert_eq!(e.code(), Some("hitl_grant_requires_proxy"));

        let helper = agents
            .create(CreateAgent::new("helper", json!({"managed_secret_slugs": [bearer.slug]})))
            .await
            .unwrap();
        let helper_agent = server.agent(helper.api_key.as_deref().unwrap());
        // Alice's tokens, each issued a second after the one before.
        let issued = server.now().unix_seconds();
        let alice_token = |later: i64, groups: serde_json::Value| {
            world.idp.token("alice", json!({"iat": issued + later, "exp": issued + 3600, "groups": groups}))
        };
        let alice = alice_token(0, json!(["eng"]));
        let group = app
            .create_managed_secret_grant(&bearer.id, Principal::group("eng", &world.idp_id, "eng"), None)
            .await
            .unwrap();
        let user = server.user(&world.app.info.id, &alice);
        let child = user
            .post(&format!("/grants/{}/delegations", group.grant_id), json!({"agent_id": helper.agent.id}))
            .await
            .json["grant_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let ok = helper_agent.request(ProviderRequest::get(&url).provider(&bearer.slug)).await.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(upstream.last().header("authorization"), Some(format!("Bearer {BEARER}").as_str()));
        // Alice leaves the group: her next token says so, and the delegation stops working.
        server.user(&world.app.info.id, &alice_token(1, json!([]))).get("/me").await;
        let e = refused(helper_agent.request(ProviderRequest::get(&url).grant_id(&child)).await.unwrap_err());
        assert_eq!(e.code(), Some("delegation_invalid"), "{e}");
        // Replaying her older token does not bring the group back; a newer one does.
        server.user(&world.app.info.id, &alice).get("/me").await;
        let e = refused(helper_agent.request(ProviderRequest::get(&url).grant_id(&child)).await.unwrap_err());
        assert_eq!(e.code(), Some("delegation_invalid"), "{e}");
        server.user(&world.app.info.id, &alice_token(2, json!(["eng"]))).get("/me").await;
        helper_agent.request(ProviderRequest::get(&url).grant_id(&child)).await.unwrap();
        // The parent is revoked: the delegation goes with it.
        app.revoke_grant(&group.grant_id, None).await.unwrap();
        let e = refused(helper_agent.request(ProviderRequest::get(&url).grant_id(&child)).await.unwrap_err());
        assert!(matches!(e, Error::GrantRevoked(_)), "{e}");

        app.agents().suspend(&helper.agent.id).await.unwrap();
        let e = refused(helper_agent.request(ProviderRequest::get(&url).provider(&bearer.slug)).await.unwrap_err());
        assert!(matches!(e, Error::AgentInactive(_)), "{e}");

        // A request rule attached to the key denies the call.
        let rule = "eyJydWxlX3R5cGUiOiJqc29uX21hdGNoIiwicnVsZV9ib2R5Ijp7IndoZW4iOnsibWV0aG9kIjoiUE9TVCJ9LCJlZmZlY3QiOiJkZW55In19";
        let body = json!({"grant_id": live, "reason": null, "request": {"method": "GET", "url": url}}).to_string();
        let r = server
            .raw(&world.app.key.api_key, "POST", "/sdk/token")
            .body(body.into_bytes())
            .signed_header(alter_proto::signing::headers::REQUEST_RULE, rule)
            .send()
            .await;
        assert_eq!((r.status, r.code()), (403, Some("request_rule_denied")));
        errors.push(String::from_utf8_lossy(&r.bytes).into_owned());

        for text in &errors {
            for secret in [BEARER, alter_testkit::WORLD_SECRET_VALUE, "doomed-value"] {
                assert!(!text.contains(secret), "a secret in an error: {text}");
            }
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn provider_refusals_map_to_typed_errors_and_scope_drift_is_remembered() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let upstream = Upstream::start().await;
        let app = server.app(&world.app.key.api_key);
        let bearer = secret(&server, &world, secret_request("Bearer", "bearer", BEARER)).await;
        let grant = system_grant(&server, &world, &bearer).await;
        let call = || ProviderRequest::get(format!("{}/v1/x", upstream.url())).grant_id(&grant);
        upstream.answer(401, &[], r#"{"error":"bad key"}"#);
        assert!(matches!(app.request(call()).await.unwrap_err(), Error::ProviderUnauthorized(_)));
        upstream.answer(500, &[], "boom");
        let e = app.request(call()).await.unwrap_err();
        assert!(matches!(e, Error::ProviderApi(_)), "{e}");
        assert_eq!(e.status(), 500);
        upstream.answer(403, &[("www-authenticate", r#"Bearer error="insufficient_scope" scope="charges:write refunds""#)], "");
        assert!(matches!(app.request(call()).await.unwrap_err(), Error::ScopeReauthRequired(_)));
        // The report is background: once recorded, the next token answer says so.
        let mut flagged = false;
        for _ in 0..100 {
            let r = server
                .raw(&world.app.key.api_key, "POST", "/sdk/token")
                .body(json!({"grant_id": grant, "reason": null, "request": {"method": "GET", "url": format!("{}/v1/x", upstream.url())}}).to_string().into_bytes())
                .send()
                .await;
            if r.json["scope_mismatch"] == true {
                flagged = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(flagged, "the scope mismatch is remembered");
        upstream.answer(403, &[], "");
        assert!(matches!(app.request(call()).await.unwrap_err(), Error::ScopeReauthRequired(_)));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_app_finds_its_system_grant_among_many_user_grants() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let upstream = Upstream::start().await;
        let bearer = secret(&server, &world, secret_request("Bearer", "bearer", BEARER)).await;
        let app = server.app(&world.app.key.api_key);
        // More user grants, all older, than a provider lookup ever returns.
        for i in 0..30 {
            let user = world.idp.token(&format!("user-{i}"), json!({}));
            app.create_managed_secret_grant(&bearer.id, Principal::user(&user, "u"), None)
                .await
                .unwrap();
        }
        let system = system_grant(&server, &world, &bearer).await;
        let url = format!("{}/v1/x", upstream.url());
        app.request(ProviderRequest::get(&url).provider(&bearer.slug))
            .await
            .unwrap();
        let released = server
            .admin()
            .audit_events(
                &world.app.info.id,
                &AuditQuery {
                    action: Some("credential.released".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(released.items[0].event["target"]["id"], system.as_str());
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_release_whose_audit_event_cannot_be_written_fails_closed() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let upstream = Upstream::start().await;
        let bearer = secret(&server, &world, secret_request("Bearer", "bearer", BEARER)).await;
        let grant = system_grant(&server, &world, &bearer).await;
        let app = server.app(&world.app.key.api_key);
        let call = || ProviderRequest::get(format!("{}/v1/x", upstream.url())).grant_id(&grant);
        app.request(call()).await.unwrap();
        let sent = upstream.received().len();
        // Its outcome is recorded just after the answer: settled before the schema changes
        // under it (DDL and that write could deadlock).
        crate::proxy::outcomes(&server, &world, &grant, 1).await;

        // The database refuses release events from now on (a full disk, a broken replica…).
        let db = server.database();
        let (refuse, allow): (&[&str], &[&str]) = match server.engine() {
            alter_testkit::Engine::Sqlite => (
                &["CREATE TRIGGER refuse_releases BEFORE INSERT ON audit_events \
                   WHEN NEW.action = 'credential.released' \
                   BEGIN SELECT RAISE(ABORT, 'no space left on device'); END"],
                &["DROP TRIGGER refuse_releases"],
            ),
            alter_testkit::Engine::Postgres => (
                &[
                    "CREATE FUNCTION refuse_releases() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN IF NEW.action = 'credential.released' THEN \
                     RAISE EXCEPTION 'no space left on device'; END IF; RETURN NEW; END $$",
                    "CREATE TRIGGER refuse_releases BEFORE INSERT ON audit_events \
                     FOR EACH ROW EXECUTE FUNCTION refuse_releases()",
                ],
                &["DROP TRIGGER refuse_releases ON audit_events"],
            ),
        };
        for sql in refuse {
            db.execute(sql, &[]).await.unwrap();
        }
        let e = app.request(call()).await.unwrap_err();
        assert!(e.status() >= 500, "{e:?}");
        assert_eq!(upstream.received().len(), sent, "nothing reached the provider");
        let body = json!({"grant_id": grant, "reason": null, "request": {"method": "GET", "url": format!("{}/v1/x", upstream.url())}});
        let raw = server
            .raw(&world.app.key.api_key, "POST", "/sdk/token")
            .body(body.to_string().into_bytes())
            .send()
            .await;
        assert!(raw.status >= 500, "{}", raw.status);
        assert!(raw.json.get("access_token").is_none());
        assert!(!String::from_utf8_lossy(&raw.bytes).contains(BEARER));

        for sql in allow {
            db.execute(sql, &[]).await.unwrap();
        }
        app.request(call()).await.unwrap();
        assert_eq!(upstream.received().len(), sent + 1);
        assert!(server.admin().verify_audit(&world.app.info.id).await.unwrap().ok);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn tampering_with_the_audit_log_is_named() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let upstream = Upstream::start().await;
        let bearer = secret(&server, &world, secret_request("Bearer", "bearer", BEARER)).await;
        let grant = system_grant(&server, &world, &bearer).await;
        let app = server.app(&world.app.key.api_key);
        for _ in 0..3 {
            app.request(ProviderRequest::get(format!("{}/v1/x", upstream.url())).grant_id(&grant)).await.unwrap();
        }
        // The calls' outcomes are recorded just after their answers: settled before the
        // schema changes under them (DDL and those writes could deadlock).
        crate::proxy::outcomes(&server, &world, &grant, 3).await;
        let admin = server.admin();
        let app_id = world.app.info.id.clone();
        assert!(admin.verify_audit(&app_id).await.unwrap().ok);
        let db = server.database();
        // An attacker with the database drops the append-only guard first.
        let drop_guard = match server.engine() {
            alter_testkit::Engine::Sqlite => vec![
                "DROP TRIGGER audit_events_no_update",
                "DROP TRIGGER audit_events_no_delete",
            ],
            alter_testkit::Engine::Postgres => vec!["DROP TRIGGER audit_events_append_only ON audit_events"],
        };
        for sql in drop_guard {
            db.execute(sql, &[]).await.unwrap();
        }
        let events = admin.audit_events(&app_id, &AuditQuery::default()).await.unwrap().items;
        let victim = events.iter().find(|e| e.event["action"] == "credential.released").unwrap();
        let seq = victim.seq.to_string();
        db.execute(
            "UPDATE audit_events SET body = REPLACE(body, 'credential.released', 'credential.revoked') WHERE app_id = $1 AND seq = CAST($2 AS BIGINT)",
            &[&app_id, &seq],
        )
        .await
        .unwrap();
        let report = admin.verify_audit(&app_id).await.unwrap();
        assert!(!report.ok);
        let problem = report.first_problem.unwrap();
        assert_eq!(problem.seq, victim.seq, "names the altered event");
        assert_eq!(problem.event_id.as_deref(), victim.event["id"].as_str());
        assert!(problem.problem.contains("altered"), "{}", problem.problem);
        // A column changed without its body is caught too.
        db.execute(
            "UPDATE audit_events SET body = REPLACE(body, 'credential.revoked', 'credential.released') WHERE app_id = $1 AND seq = CAST($2 AS BIGINT)",
            &[&app_id, &seq],
        )
        .await
        .unwrap();
        assert!(admin.verify_audit(&app_id).await.unwrap().ok, "restored");
        db.execute(
            "UPDATE audit_events SET decision = 'deny' WHERE app_id = $1 AND seq = CAST($2 AS BIGINT)",
            &[&app_id, &seq],
        )
        .await
        .unwrap();
        assert_eq!(admin.verify_audit(&app_id).await.unwrap().first_problem.unwrap().seq, victim.seq);
        db.execute(
            "UPDATE audit_events SET decision = 'allow' WHERE app_id = $1 AND seq = CAST($2 AS BIGINT)",
            &[&app_id, &seq],
        )
        .await
        .unwrap();
        // A removed event.
        db.execute("DELETE FROM audit_events WHERE app_id = $1 AND seq = CAST($2 AS BIGINT)", &[&app_id, &seq]).await.unwrap();
        let problem = admin.verify_audit(&app_id).await.unwrap().first_problem.unwrap();
        assert_eq!(problem.seq, victim.seq);
        assert!(problem.problem.contains("missing"), "{}", problem.problem);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn no_secret_value_is_readable_in_the_sqlite_files() {
    let server = TestServer::start(alter_testkit::Engine::Sqlite).await;
    let world = server.world("a").await;
    let upstream = Upstream::start().await;
    let bearer = secret(&server, &world, secret_request("Bearer", "bearer", BEARER)).await;
    let grant = system_grant(&server, &world, &bearer).await;
    let app = server.app(&world.app.key.api_key);
    for _ in 0..5 {
        app.request(ProviderRequest::get(format!("{}/v1/x", upstream.url())).grant_id(&grant))
            .await
            .unwrap();
    }
    server
        .admin()
        .rotate_secret(
            &world.app.info.id,
            &bearer.id,
            "sk_live_rotatedValue987".into(),
        )
        .await
        .unwrap();
    app.request(ProviderRequest::get(format!("{}/v1/x", upstream.url())).grant_id(&grant))
        .await
        .unwrap();
    assert_eq!(
        upstream.last().header("authorization"),
        Some("Bearer sk_live_rotatedValue987"),
        "rotation keeps the grant id"
    );
    let mut scanned = 0;
    for file in server.database().sqlite_files() {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        scanned += bytes.len();
        for needle in [
            BEARER,
            "sk_live_rotatedValue987",
            alter_testkit::WORLD_SECRET_VALUE,
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} in {}",
                file.display()
            );
        }
    }
    assert!(scanned > 0);
    server.stop().await;
}

#[tokio::test]
async fn only_credential_users_flag_a_scope_mismatch_and_operators_clear_it() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let other = server.new_app("b").await;
        let bearer = secret(&server, &world, secret_request("Bearer", "bearer", BEARER)).await;
        let grant = system_grant(&server, &world, &bearer).await;
        let flagged = || async {
            let r = server
                .raw(&world.app.key.api_key, "POST", "/sdk/token")
                .body(
                    json!({"grant_id": grant, "reason": null, "request": {"method": "GET", "url": "http://127.0.0.1/v1/x"}})
                        .to_string()
                        .into_bytes(),
                )
                .send()
                .await;
            assert_eq!(r.status, 200, "{:?}", r.json);
            r.json["scope_mismatch"] == true
        };
        let report_path = format!("/sdk/grants/{grant}/report-scope-mismatch");
        let report = |key: &str| {
            server
                .raw(key, "POST", &report_path)
                .body(json!({"missing_scopes": ["charges:write"]}).to_string().into_bytes())
                .send()
        };

        // A publishable key knows nothing of credentials: refused, and nothing is marked.
        let publishable = server
            .mint_key(
                &world.app,
                MintKeyRequest {
                    key_type: Some("pk".into()),
                    ..Default::default()
                },
            )
            .await;
        let refused = report(&publishable.api_key).await;
        assert_eq!(
            (refused.status, refused.code()),
            (403, Some("insufficient_scope")),
            "{:?}",
            refused.json
        );
        assert!(!flagged().await);

        // A key that reports credential use may flag it.
        let reporter = server
            .mint_key(
                &world.app,
                MintKeyRequest {
                    scopes: Some(vec!["audit:emit".into()]),
                    ..Default::default()
                },
            )
            .await;
        assert_eq!(report(&reporter.api_key).await.status, 204);
        assert!(flagged().await);

        // The operator clears it (another app's id for the grant is "not found"), audited.
        let admin = server.admin();
        let elsewhere = admin
            .clear_scope_mismatch(&other.info.id, &grant)
            .await
            .unwrap_err();
        assert_eq!(elsewhere.status(), 404, "{elsewhere}");
        assert!(flagged().await);
        let cleared = admin
            .clear_scope_mismatch(&world.app.info.id, &grant)
            .await
            .unwrap();
        assert_eq!(cleared.grants.len(), 1);
        assert!(!flagged().await);
        let events = admin
            .audit_events(
                &world.app.info.id,
                &AuditQuery {
                    action: Some("grant.scope_mismatch_cleared".into()),
                    grant: Some(grant.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(events.items.len(), 1);
        assert_eq!(events.items[0].event["actor"]["kind"], "operator");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn urls_parsers_disagree_on_are_refused_before_anything_is_sent() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let upstream = Upstream::start().await;
        let app = server.app(&world.app.key.api_key);
        let grant = app
            .create_managed_secret_grant(&world.secret.id, Principal::system(), None)
            .await
            .unwrap()
            .grant_id;
        // The secret may go to api.stripe.com only. Read as a browser (and the SDK's reqwest)
        // reads it, the first URL goes to the local upstream, with the path `/@api.stripe.com…`.
        let authority = upstream.url().trim_start_matches("http://");
        for url in [
            format!("http://{authority}\\@api.stripe.com/v1/charges"),
            format!("http://api.stripe.com@{authority}/v1/charges"),
            format!("http://{authority}\\\\api.stripe.com/v1/charges"),
        ] {
            let e = app
                .request(ProviderRequest::get(&url).grant_id(&grant))
                .await
                .unwrap_err();
            assert_eq!(
                (e.status(), e.code()),
                (422, Some("invalid_request")),
                "{url}: {e}"
            );
            assert!(!e.to_string().contains(alter_testkit::WORLD_SECRET_VALUE));
        }
        assert!(
            upstream.received().is_empty(),
            "nothing reached the upstream"
        );
        let released = server
            .admin()
            .audit_events(
                &world.app.info.id,
                &AuditQuery {
                    action: Some("credential.released".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(released.items.is_empty());
        server.stop().await;
    })
    .await;
}
