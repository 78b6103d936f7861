//! End-user sign-in and identity export through the Rust SDK: a session started by the app, the
//! user's login at a real OpenID Connect server (the OAuth peer), the poll that returns the
//! token, which then works as a user principal; `verify_user_token`; identities resolved by an
//! app and an agent; assertions verified offline against the published JWKS, and every kind of
//! tampering refused.

use std::time::Duration;

use alter_proto::admin::{MintKeyRequest, SecretInfo};
use alter_sdk::{
    AssertIdentity, AuthenticateOptions, CreateAgent, Error, GrantItem, ListGrants, Principal,
    ResolveIdentity, TrustedIssuer, verify_identity_assertion,
};
use alter_testkit::oauth_peer::{OAuthPeer, Pages};
use alter_testkit::{TestApp, TestServer, on_every_engine};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// An app whose IdP is the OAuth peer, with sign-in configured, and a managed secret.
async fn signin_world(server: &TestServer) -> (OAuthPeer, TestApp, SecretInfo) {
    super::signin::signin_world(server, "sdk-signin").await
}

/// The browser following the IdP's redirect back to the vault's callback.
async fn follow(url: Url) -> String {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

#[tokio::test]
async fn a_user_signs_in_through_the_sdk_and_the_token_is_a_user_principal() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let (peer, world, secret) = signin_world(&server).await;
        let app = server.app(&world.key.api_key);

        let session = app.create_auth_session().await.unwrap();
        assert!(session.auth_url.starts_with(peer.issuer()));
        assert!(session.session_token.starts_with("alter_as_"));
        assert!(session.expires_in > 0 && !session.expires_at.is_empty());
        assert!(!format!("{session:?}").contains(&session.session_token));

        // The poll is held while the user signs in, and returns when the callback completes.
        let polling = {
            let app = app.clone();
            let token = session.session_token.clone();
            tokio::spawn(async move {
                app.poll_auth_session(&token, Duration::from_secs(60), POLL_INTERVAL)
                    .await
            })
        };
        let browser = peer.browser();
        let auth_url = Url::parse(&session.auth_url).unwrap();
        let callback = peer
            .authorize(&browser, auth_url, Pages::LoginAndConsent)
            .await
            .redirect;
        assert!(follow(callback).await.contains("You are signed in"));
        let signed_in = polling.await.unwrap().unwrap();
        assert_eq!(signed_in.user_info.sub, "alice");
        assert!(!format!("{signed_in:?}").contains(&signed_in.user_token));
        let user_token = signed_in.user_token;

        // Handed out once.
        let again = app
            .poll_auth_session(
                &session.session_token,
                Duration::from_secs(1),
                POLL_INTERVAL,
            )
            .await
            .unwrap_err();
        assert_eq!(again.exception_name(), "AlterSDKError");
        assert_eq!(again.info().message, "Authentication session expired");

        // The token is alice's: a user principal and a user-scoped listing.
        let grant = app
            .create_managed_secret_grant(
                &secret.id,
                Principal::user(user_token.clone(), "alice's"),
                None,
            )
            .await
            .unwrap();
        let mine = app
            .list_grants(ListGrants::new().end_user_token(user_token.clone()))
            .await
            .unwrap();
        assert_eq!(mine.total, 1);
        let GrantItem::ManagedSecret(item) = &mine.grants[0] else {
            panic!("a managed-secret grant");
        };
        assert_eq!(item.grant_id, grant.grant_id);

        // verify_user_token: the subject, or None for anything it cannot trust.
        assert_eq!(
            app.verify_user_token(&user_token).await.as_deref(),
            Some("alice")
        );
        assert_eq!(app.verify_user_token("not.a.jwt").await, None);
        assert_eq!(app.verify_user_token("  ").await, None);
        let mut tampered = user_token.clone();
        tampered.pop();
        tampered.push(if user_token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(app.verify_user_token(&tampered).await, None);
        let no_idp = server.new_app("no-idp").await;
        let no_idp = server.app(&no_idp.key.api_key);
        assert_eq!(no_idp.verify_user_token(&user_token).await, None);

        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn sign_in_failures_are_the_official_clients_errors() {
    let server = TestServer::start(alter_testkit::Engine::Sqlite).await;
    let (peer, world, _) = signin_world(&server).await;
    let app = server.app(&world.key.api_key);

    // The user refuses at the IdP: the poll says why.
    let session = app.create_auth_session().await.unwrap();
    let refusal = peer
        .deny(&peer.browser(), Url::parse(&session.auth_url).unwrap())
        .await;
    let _ = reqwest::get(refusal).await.unwrap();
    let failed = app
        .poll_auth_session(
            &session.session_token,
            Duration::from_secs(10),
            POLL_INTERVAL,
        )
        .await
        .unwrap_err();
    assert_eq!(failed.exception_name(), "AlterSDKError");
    assert!(
        failed.info().message.starts_with("Authentication failed: "),
        "{failed}"
    );

    // Nobody signs in: the deadline, after a held poll.
    let pending = app.create_auth_session().await.unwrap();
    let started = std::time::Instant::now();
    let timed_out = app
        .poll_auth_session(
            &pending.session_token,
            Duration::from_secs(1),
            POLL_INTERVAL,
        )
        .await
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(timed_out.exception_name(), "ConnectTimeoutError");
    assert_eq!(
        timed_out.info().str_field("reason"),
        Some("poll_deadline_elapsed")
    );

    // Unknown and foreign sessions look expired; bad input never reaches the server.
    let unknown = app
        .poll_auth_session("alter_as_unknown", Duration::from_secs(1), POLL_INTERVAL)
        .await
        .unwrap_err();
    assert_eq!(unknown.info().message, "Authentication session expired");
    let other = server.new_app("other").await;
    let foreign = server
        .app(&other.key.api_key)
        .poll_auth_session(
            &pending.session_token,
            Duration::from_secs(1),
            POLL_INTERVAL,
        )
        .await
        .unwrap_err();
    assert_eq!(foreign.info().message, "Authentication session expired");
    for (token, timeout, interval) in [
        (" ", Duration::from_secs(1), POLL_INTERVAL),
        ("alter_as_x", Duration::ZERO, POLL_INTERVAL),
        ("alter_as_x", Duration::MAX, POLL_INTERVAL),
        ("alter_as_x", Duration::from_secs(1), Duration::ZERO),
    ] {
        let refused = app
            .poll_auth_session(token, timeout, interval)
            .await
            .unwrap_err();
        assert_eq!(refused.exception_name(), "AlterValueError");
    }

    // A key without idp_users:write cannot start one; an app without sign-in or without an
    // IdP gets the configuration errors.
    let reader = server
        .mint_key(
            &world,
            MintKeyRequest {
                scopes: Some(vec!["idp_users:read".into()]),
                ..Default::default()
            },
        )
        .await;
    let narrow = server
        .app(&reader.api_key)
        .create_auth_session()
        .await
        .unwrap_err();
    assert_eq!(narrow.exception_name(), "InsufficientScopeError");
    let idp_only = server.world("idp-only").await;
    let unconfigured = server
        .app(&idp_only.app.key.api_key)
        .create_auth_session()
        .await
        .unwrap_err();
    assert_eq!(unconfigured.exception_name(), "ConnectConfigError");
    assert_eq!(unconfigured.code(), Some("idp_signin_not_configured"));
    let bare = server
        .app(&other.key.api_key)
        .create_auth_session()
        .await
        .unwrap_err();
    assert_eq!(
        (bare.exception_name(), bare.code()),
        ("BackendError", Some("idp_not_configured"))
    );
    server.stop().await;
}

/// `token` with one segment replaced.
fn with_segment(token: &str, index: usize, segment: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[index] = segment;
    parts.join(".")
}

/// `token` with its claims changed by `edit` (the signature left as it was).
fn with_claims(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    edit(&mut claims);
    let encoded = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    with_segment(token, 1, &encoded)
}

fn reason(error: &Error) -> &str {
    assert_eq!(error.exception_name(), "MemoryIsolationError", "{error}");
    assert_eq!(error.code(), Some("memory_assertion_invalid"));
    error.info().str_field("reason").unwrap()
}

#[tokio::test]
async fn identities_resolve_and_assertions_verify_through_the_sdk() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("sdk-id").await;
        let app_id = world.app.info.id.clone();
        let app = server.app(&world.app.key.api_key);
        let alice = world.idp.token(
            "alice",
            json!({"groups": ["eng"], "email": "alice@example.test", "name": "Alice"}),
        );
        let as_alice = |include_profile| ResolveIdentity {
            include_profile,
            user_token: Some(alice.clone()),
            app_user_id: None,
        };

        // The app: headless, and alice by her token.
        let headless = app
            .resolve_identity(ResolveIdentity::default())
            .await
            .unwrap();
        assert_eq!(headless.app_id, app_id);
        assert_eq!(headless.app_user_id, None);
        let resolved = app.resolve_identity(as_alice(true)).await.unwrap();
        let user_id = resolved.app_user_id.clone().unwrap();
        assert_eq!(resolved.external_subject_id.as_deref(), Some("alice"));
        assert_eq!(resolved.idp_id.as_deref(), Some(world.idp_id.as_str()));
        assert_eq!(resolved.group_ids, ["eng"]);
        assert_eq!(resolved.email.as_deref(), Some("alice@example.test"));
        assert_eq!(resolved.agent_id, None);
        let private = app.resolve_identity(as_alice(false)).await.unwrap();
        assert_eq!(private.email, None);
        let bad = app
            .resolve_identity(ResolveIdentity {
                user_token: Some("x.y.z".into()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(bad.exception_name(), "ReAuthRequiredError");
        let by_id = app
            .resolve_identity(ResolveIdentity {
                app_user_id: Some(user_id.clone()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(by_id.exception_name(), "AlterValueError");

        // An assertion for alice, verified offline against the published keys.
        let jwks: Value = reqwest::get(format!(
            "{}/.well-known/alter-identity-jwks.json",
            server.base_url()
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let trusted = TrustedIssuer {
            issuer: server.base_url(),
            audience: "https://api.example.com",
            jwks: &jwks,
            expected_app_id: &app_id,
            expected_agent_id: None,
        };
        let asserted = app
            .assert_identity(AssertIdentity {
                audience: "https://api.example.com".into(),
                ttl_seconds: Some(60),
                subject: as_alice(false),
            })
            .await
            .unwrap();
        assert!(!format!("{asserted:?}").contains(&asserted.token));
        assert_eq!(
            asserted.identity.app_user_id.as_deref(),
            Some(user_id.as_str())
        );
        let verified = verify_identity_assertion(&asserted.token, &trusted).unwrap();
        assert_eq!(verified.app_id, app_id);
        assert_eq!(verified.app_user_id.as_deref(), Some(user_id.as_str()));
        assert_eq!(verified.agent_id, None);
        assert!(!verified.jti.is_empty());
        let token = asserted.token;

        // Tampering, and a relying party that expects something else.
        let refused = |token: &str, trusted: &TrustedIssuer<'_>| {
            reason(&verify_identity_assertion(token, trusted).unwrap_err()).to_owned()
        };
        let sub_changed = with_claims(&token, |c| c["sub"] = json!("alter:user:someone-else"));
        assert_eq!(refused(&sub_changed, &trusted), "signature");
        let signature = token.split('.').nth(2).unwrap();
        let flipped = format!(
            "{}{}",
            if signature.starts_with('A') { "B" } else { "A" },
            &signature[1..]
        );
        assert_eq!(
            refused(&with_segment(&token, 2, &flipped), &trusted),
            "signature"
        );
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"alter-identity+jwt"}"#);
        assert_eq!(
            refused(&with_segment(&token, 0, &none_header), &trusted),
            "header"
        );
        assert_eq!(refused("a.b", &trusted), "malformed");
        let elsewhere = TrustedIssuer {
            audience: "https://other.example.com",
            ..trusted.clone()
        };
        assert_eq!(refused(&token, &elsewhere), "claims");
        let other_issuer = TrustedIssuer {
            issuer: "https://vault.example.com",
            ..trusted.clone()
        };
        assert_eq!(refused(&token, &other_issuer), "claims");
        let other_app = TrustedIssuer {
            expected_app_id: "another-app",
            ..trusted.clone()
        };
        assert_eq!(refused(&token, &other_app), "binding");
        let wants_agent = TrustedIssuer {
            expected_agent_id: Some("some-agent"),
            ..trusted.clone()
        };
        assert_eq!(refused(&token, &wants_agent), "binding");
        let mut rekeyed = jwks.clone();
        rekeyed["keys"][0]["kid"] = json!("another-kid");
        let unknown_kid = TrustedIssuer {
            jwks: &rekeyed,
            ..trusted.clone()
        };
        assert_eq!(refused(&token, &unknown_kid), "key");
        let mut private = jwks.clone();
        private["keys"][0]["d"] = json!("AAAA");
        let with_private = TrustedIssuer {
            jwks: &private,
            ..trusted.clone()
        };
        assert_eq!(refused(&token, &with_private), "key");
        let not_a_set = TrustedIssuer {
            jwks: &json!({}),
            ..trusted.clone()
        };
        let error = verify_identity_assertion(&token, &not_a_set).unwrap_err();
        assert_eq!(error.exception_name(), "AlterValueError");

        // The app's own identity, and the audience rules.
        let own = app
            .assert_identity(AssertIdentity::new("urn:example:api"))
            .await
            .unwrap();
        let urn = TrustedIssuer {
            audience: "urn:example:api",
            ..trusted.clone()
        };
        let verified = verify_identity_assertion(&own.token, &urn).unwrap();
        assert_eq!(verified.app_user_id, None);
        for (audience, ttl, name) in [
            ("api.example.com", None, "AlterValueError"),
            ("https://a.example", Some(5), "AlterValueError"),
            ("https://a.example", Some(301), "AlterValueError"),
            (server.base_url(), None, "BackendError"),
        ] {
            let error = app
                .assert_identity(AssertIdentity {
                    audience: audience.into(),
                    ttl_seconds: ttl,
                    subject: ResolveIdentity::default(),
                })
                .await
                .unwrap_err();
            assert_eq!(error.exception_name(), name, "{audience} {ttl:?}");
        }

        // An agent names alice by app_user_id only once she delegated to it.
        let made = app
            .agents()
            .create(CreateAgent::new(
                "helper",
                json!({"managed_secret_slugs": [world.secret.slug]}),
            ))
            .await
            .unwrap();
        let agent_id = made.agent.id.clone();
        let agent = server.agent(&made.api_key.unwrap());
        let by_id = ResolveIdentity {
            app_user_id: Some(user_id.clone()),
            ..Default::default()
        };
        let missing = agent.resolve_identity(by_id.clone()).await.unwrap_err();
        assert_eq!(missing.exception_name(), "GrantNotFoundError");
        let grant = app
            .create_managed_secret_grant(
                &world.secret.id,
                Principal::user(alice.clone(), "a"),
                None,
            )
            .await
            .unwrap();
        let consent = server
            .user(&app_id, &alice)
            .post(
                &format!("/grants/{}/delegations", grant.grant_id),
                json!({"agent_id": agent_id}),
            )
            .await;
        assert_eq!(consent.status, 201, "{}", consent.json);
        let consented = agent.resolve_identity(by_id.clone()).await.unwrap();
        assert_eq!(consented.app_user_id.as_deref(), Some(user_id.as_str()));
        assert_eq!(consented.agent_id.as_deref(), Some(agent_id.as_str()));
        let by_agent = agent
            .assert_identity(AssertIdentity {
                subject: by_id,
                ..AssertIdentity::new("https://api.example.com")
            })
            .await
            .unwrap();
        let for_agent = TrustedIssuer {
            expected_agent_id: Some(&agent_id),
            ..trusted.clone()
        };
        let verified = verify_identity_assertion(&by_agent.token, &for_agent).unwrap();
        assert_eq!(verified.agent_id.as_deref(), Some(agent_id.as_str()));
        assert_eq!(verified.app_user_id.as_deref(), Some(user_id.as_str()));
        assert_eq!(refused(&by_agent.token, &wants_agent), "binding");

        // The app acting as the agent asserts the agent too.
        let acting = app.get_agent(&agent_id).unwrap();
        let acted = acting
            .assert_identity(AssertIdentity::new("https://api.example.com"))
            .await
            .unwrap();
        let verified = verify_identity_assertion(&acted.token, &for_agent).unwrap();
        assert_eq!(verified.agent_id.as_deref(), Some(agent_id.as_str()));

        // Lifetimes: minted by a vault whose clock runs ahead, or long expired.
        server.advance(3_600);
        let ahead = app
            .assert_identity(AssertIdentity::new("https://api.example.com"))
            .await
            .unwrap();
        assert_eq!(refused(&ahead.token, &trusted), "lifetime");
        server.advance(-7_200);
        let stale = app
            .assert_identity(AssertIdentity::new("https://api.example.com"))
            .await
            .unwrap();
        assert_eq!(refused(&stale.token, &trusted), "lifetime");
        server.advance(3_600);
        server.stop().await;
    })
    .await;
}

/// The client's side of the protocol against a scripted backend (a real local HTTP server):
/// transient poll failures are retried with a held request, permanent ones are not, and
/// `verify_user_token` turns anything but a good `sub` into `None`.
#[tokio::test]
async fn the_client_retries_what_is_transient_and_trusts_only_a_verified_subject() {
    let server = TestServer::start(alter_testkit::Engine::Sqlite).await;
    let key = server.new_app("scripted").await.key.api_key;
    let backend = alter_testkit::upstream::Upstream::start().await;
    let app = alter_sdk::App::builder(key)
        .base_url(backend.url())
        .build_app()
        .unwrap();

    backend.answer(503, &[], r#"{"error":"service_unavailable"}"#);
    let polling = {
        let app = app.clone();
        tokio::spawn(async move {
            app.poll_auth_session("alter_as_scripted", Duration::from_secs(5), POLL_INTERVAL)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(350)).await;
    backend.answer(201, &[], r#"{"status":"completed","user_token":"early"}"#);
    tokio::time::sleep(Duration::from_millis(250)).await;
    backend.answer(
        200,
        &[],
        r#"{"status":"completed","user_token":"eyJ.scripted.jwt","user_info":{"sub":"bob","email":"b@example.test"}}"#,
    );
    let signed_in = polling.await.unwrap().unwrap();
    assert_eq!(signed_in.user_token, "eyJ.scripted.jwt");
    assert_eq!(signed_in.user_info.email.as_deref(), Some("b@example.test"));
    let polls = backend.received();
    assert!(polls.len() >= 3, "retried: {}", polls.len());
    for poll in &polls {
        assert_eq!(poll.path, "/sdk/auth/poll");
        let body: Value = serde_json::from_slice(&poll.body).unwrap();
        assert_eq!(body["session_token"], "alter_as_scripted");
        let wait = body["wait_ms"].as_i64().unwrap();
        assert!(wait > 0 && wait <= 5_000, "min(remaining, 25 s): {wait}");
    }

    backend.answer(404, &[], r#"{"error":"not_found"}"#);
    let before = backend.received().len();
    let gone = app
        .poll_auth_session("alter_as_scripted", Duration::from_secs(5), POLL_INTERVAL)
        .await
        .unwrap_err();
    assert_eq!(gone.exception_name(), "GrantNotFoundError");
    assert_eq!(backend.received().len(), before + 1, "not retried");
    backend.answer(200, &[], r#"{"state":"pending"}"#);
    let malformed = app
        .poll_auth_session("alter_as_scripted", Duration::from_secs(5), POLL_INTERVAL)
        .await
        .unwrap_err();
    assert_eq!(malformed.exception_name(), "BackendError");

    backend.answer(
        200,
        &[],
        r#"{"auth_url":"https://idp/a","session_token":"alter_as_x","expires_in":600,"expires_at":"2030-01-01T00:00:00Z"}"#,
    );
    let not_created = app.create_auth_session().await.unwrap_err();
    assert_eq!(not_created.exception_name(), "AlterSDKError");

    for (status, body, expected) in [
        (200, r#"{"sub":"bob"}"#, Some("bob")),
        (200, r#"{"sub":" "}"#, None),
        (200, r#"{"sub":7}"#, None),
        (200, "not json", None),
        (201, r#"{"sub":"bob"}"#, None),
        (401, r#"{"error":"jwt_validation_error"}"#, None),
        (400, r#"{"error":"idp_not_configured"}"#, None),
        (500, r#"{"sub":"bob"}"#, None),
    ] {
        backend.answer(status, &[], body);
        assert_eq!(
            app.verify_user_token("eyJ.a.b").await.as_deref(),
            expected,
            "{status} {body}"
        );
    }
    // authenticate: creates, prints the URL (no browser here) and polls to the token; a
    // session whose URL is not a web page is refused before anything is opened or printed.
    backend.answer(
        201,
        &[],
        r#"{"auth_url":"javascript:alert(1)","session_token":"alter_as_x","expires_in":600,"expires_at":"2030-01-01T00:00:00Z"}"#,
    );
    let no_browser = AuthenticateOptions {
        timeout: Duration::from_secs(5),
        open_browser: false,
    };
    let refused = app.authenticate(no_browser.clone()).await.unwrap_err();
    assert_eq!(refused.exception_name(), "BackendError");
    backend.answer(
        201,
        &[],
        r#"{"auth_url":"https://idp.example.test/authorize?state=s","session_token":"alter_as_x","expires_in":600,"expires_at":"2030-01-01T00:00:00Z"}"#,
    );
    let before = backend.received().len();
    let interactive = {
        let app = app.clone();
        tokio::spawn(async move { app.authenticate(no_browser).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    backend.answer(
        200,
        &[],
        r#"{"status":"completed","user_token":"eyJ.interactive.jwt","user_info":{"sub":"carol"}}"#,
    );
    let signed_in = interactive.await.unwrap().unwrap();
    assert_eq!(signed_in.user_info.sub, "carol");
    let calls = backend.received();
    assert_eq!(calls[before].path, "/sdk/auth/session");
    assert_eq!(calls[before].body, b"{}");
    assert!(
        calls[before + 1..]
            .iter()
            .all(|c| c.path == "/sdk/auth/poll")
    );

    let verified = calls
        .iter()
        .rev()
        .find(|c| c.path == "/sdk/auth/verify-token")
        .unwrap()
        .clone();
    assert_eq!(verified.path, "/sdk/auth/verify-token");
    assert_eq!(verified.body, br#"{"token":"eyJ.a.b"}"#);
    drop(backend);
    assert_eq!(app.verify_user_token("eyJ.a.b").await, None, "unreachable");
    server.stop().await;
}
