//! End-user sign-in against a real OpenID Connect server (the OAuth peer): a session started by
//! the app, the user's login and consent driven over HTTP with a cookie jar, the browser's
//! callback, the poll that hands the ID token out once, and that token used as a user principal.
//! Then every way a callback can go wrong, and identity resolution and assertions verified
//! against the published JWKS.

use std::time::{Duration, Instant};

use alter_proto::admin::{AuditQuery, CreateSecretRequest, IdpRequest, SecretInfo};
use alter_proto::signin::SignInRequest;
use alter_sdk::{CreateAgent, GrantItem, ListGrants, Principal};
use alter_testkit::oauth_peer::{OAuthPeer, Pages, PeerOptions};

use alter_testkit::{RawResponse, TestApp, TestServer, on_every_engine};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::LOCATION;
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

/// A server, an app whose IdP is the peer with sign-in configured, and a managed secret.
struct SignInWorld {
    server: TestServer,
    peer: OAuthPeer,
    app: TestApp,
    secret: SecretInfo,
}

/// An app named `name` whose IdP is a fresh OAuth peer, with sign-in configured (and checked),
/// and a managed secret; the peer, the app and the secret.
pub(crate) async fn signin_world(
    server: &TestServer,
    name: &str,
) -> (OAuthPeer, TestApp, SecretInfo) {
    // Sign-in comes back to /auth/callback; a managed-secret Connect page's sign-in to
    // /oauth/callback.
    let peer = OAuthPeer::start(PeerOptions {
        redirect_uris: vec![
            format!("{}/auth/callback", server.base_url()),
            format!("{}/oauth/callback", server.base_url()),
        ],
        ..PeerOptions::new(format!("{}/auth/callback", server.base_url()))
    })
    .await;
    let app = server.new_app(name).await;
    let admin = server.admin();
    let discovery: Value = reqwest::get(peer.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    admin
        .set_idp(
            &app.info.id,
            &IdpRequest {
                issuer: peer.issuer().to_owned(),
                audiences: vec![peer.client_id().to_owned()],
                jwks_url: Some(discovery["jwks_uri"].as_str().unwrap().to_owned()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let info = admin
        .set_sign_in(
            &app.info.id,
            &SignInRequest {
                client_id: peer.client_id().to_owned(),
                client_secret: Some(peer.client_secret().to_owned()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(info.not_ready, None, "discovered from the issuer");
    assert_eq!(info.scopes, ["openid", "email", "profile"]);
    assert_eq!(
        info.redirect_uri,
        format!("{}/auth/callback", server.base_url())
    );
    assert!(info.has_client_secret);
    let secret = admin
        .create_secret(
            &app.info.id,
            &CreateSecretRequest {
                name: "Stripe".into(),
                secret_type: "bearer".into(),
                allowed_hosts: vec!["api.stripe.com".into()],
                value: format!("sk_live_{name}_0123456789"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    (peer, app, secret)
}

impl SignInWorld {
    async fn start(server: TestServer) -> SignInWorld {
        let (peer, app, secret) = signin_world(&server, "signin").await;
        SignInWorld {
            server,
            peer,
            app,
            secret,
        }
    }

    async fn post(&self, path: &str, body: Value) -> RawResponse {
        post(&self.server, &self.app.key.api_key, path, body).await
    }

    /// Starts a session: the auth URL and the session token.
    async fn session(&self) -> (Url, String) {
        let created = self.post("/sdk/auth/session", json!({})).await;
        assert_eq!(created.status, 201, "{}", created.json);
        let url = Url::parse(created.json["auth_url"].as_str().unwrap()).unwrap();
        (
            url,
            created.json["session_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn poll(&self, token: &str, wait_ms: Option<i64>) -> Value {
        let mut body = json!({ "session_token": token });
        if let Some(wait) = wait_ms {
            body["wait_ms"] = json!(wait);
        }
        let polled = self.post("/sdk/auth/poll", body).await;
        assert_eq!(polled.status, 200, "{}", polled.json);
        polled.json
    }

    /// Plays the user at the IdP: the redirect back to the vault's callback.
    async fn sign_in_at_idp(&self, auth_url: Url) -> Url {
        let browser = self.peer.browser();
        self.peer
            .authorize(&browser, auth_url, Pages::LoginAndConsent)
            .await
            .redirect
    }
}

/// A user token of `alice` for the app of `key`, from a whole sign-in at the peer.
pub(crate) async fn user_token_by_sign_in(
    server: &TestServer,
    peer: &OAuthPeer,
    key: &str,
) -> String {
    let created = post(server, key, "/sdk/auth/session", json!({})).await;
    assert_eq!(created.status, 201, "{}", created.json);
    let auth_url = Url::parse(created.json["auth_url"].as_str().unwrap()).unwrap();
    let browser = peer.browser();
    let back = peer
        .authorize(&browser, auth_url, Pages::LoginAndConsent)
        .await
        .redirect;
    assert_eq!(follow(&back).await.0, StatusCode::OK);
    let polled = post(
        server,
        key,
        "/sdk/auth/poll",
        json!({ "session_token": created.json["session_token"] }),
    )
    .await;
    assert_eq!(polled.json["status"], "completed", "{}", polled.json);
    polled.json["user_token"].as_str().unwrap().to_owned()
}

async fn post(server: &TestServer, key: &str, path: &str, body: Value) -> RawResponse {
    server
        .raw(key, "POST", path)
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
}

/// The browser following the IdP's redirect to the vault: status, headers, page.
async fn follow(url: &Url) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let response = reqwest::get(url.clone()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn with_param(url: &Url, name: &str, value: &str) -> Url {
    let mut changed = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    changed.query_pairs_mut().clear().extend_pairs(pairs);
    changed
}

#[tokio::test]
async fn a_user_signs_in_and_the_app_gets_a_token_it_can_use_once() {
    on_every_engine(|engine| async move {
        let world = SignInWorld::start(TestServer::start(engine).await).await;
        let (auth_url, session_token) = world.session().await;

        // The authorization request: code + PKCE S256, nonce, state that is not the session
        // token, back to the vault's callback.
        assert!(auth_url.as_str().starts_with(world.peer.issuer()));
        assert_eq!(param(&auth_url, "response_type").as_deref(), Some("code"));
        assert_eq!(
            param(&auth_url, "code_challenge_method").as_deref(),
            Some("S256")
        );
        assert_eq!(
            param(&auth_url, "scope").as_deref(),
            Some("openid email profile")
        );
        assert_eq!(
            param(&auth_url, "redirect_uri"),
            Some(format!("{}/auth/callback", world.server.base_url()))
        );
        assert!(param(&auth_url, "nonce").is_some_and(|n| n.len() >= 32));
        let state = param(&auth_url, "state").unwrap();
        assert!(state.len() >= 43);
        assert!(!auth_url.as_str().contains(&session_token));
        assert!(session_token.starts_with("alter_as_"));

        assert_eq!(world.poll(&session_token, None).await["status"], "pending");

        // A poll held open sees the callback (made through another connection) complete it.
        let held = {
            let server_key = world.app.key.api_key.clone();
            let base = world
                .server
                .raw(&server_key, "POST", "/sdk/auth/poll")
                .body(
                    serde_json::to_vec(&json!({"session_token": session_token, "wait_ms": 20000}))
                        .unwrap(),
                );
            tokio::spawn(async move {
                let started = Instant::now();
                (base.send().await, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let callback = world.sign_in_at_idp(auth_url).await;
        assert_eq!(
            param(&callback, "iss").as_deref(),
            Some(world.peer.issuer())
        );
        let (status, headers, page) = follow(&callback).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("You are signed in"), "{page}");
        assert_eq!(headers["x-frame-options"], "DENY");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"));
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );

        let (held, waited) = held.await.unwrap();
        assert_eq!(held.status, 200, "{}", held.json);
        assert!(
            waited < Duration::from_secs(15),
            "answered when it completed"
        );
        assert_eq!(held.json["status"], "completed", "{}", held.json);
        let user_token = held.json["user_token"].as_str().unwrap().to_owned();
        assert_eq!(held.json["user_info"]["sub"], "alice");
        assert!(held.json.get("error_code").is_none());

        // Handed out once.
        assert_eq!(world.poll(&session_token, None).await["status"], "expired");
        // The callback cannot be replayed.
        let (status, _, page) = follow(&callback).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("already used"), "{page}");
        assert_eq!(world.poll(&session_token, None).await["status"], "expired");

        // The token is the user's: a user principal, a user-scoped listing, verify-token.
        let app = world.server.app(&world.app.key.api_key);
        let grant = app
            .create_managed_secret_grant(
                &world.secret.id,
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
        match &mine.grants[0] {
            GrantItem::ManagedSecret(item) => assert_eq!(item.grant_id, grant.grant_id),
            GrantItem::OAuth(_) => panic!("a managed-secret grant"),
        }
        let verified = world
            .post("/sdk/auth/verify-token", json!({"token": user_token}))
            .await;
        assert_eq!(verified.status, 200);
        assert_eq!(verified.json, json!({"sub": "alice"}), "the subject only");
        let refused = world
            .post("/sdk/auth/verify-token", json!({"token": "not.a.jwt"}))
            .await;
        assert_eq!(refused.status, 401);
        assert_eq!(refused.code(), Some("jwt_validation_error"));

        let signed_in = world
            .server
            .admin()
            .audit_events(
                &world.app.info.id,
                &AuditQuery {
                    action: Some("user.signed_in".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(signed_in.items.len(), 1);
        assert!(!signed_in.items[0].event.to_string().contains(&user_token));
        // The hand-out is recorded with the key that collected the token, once.
        let collected = world
            .server
            .admin()
            .audit_events(
                &world.app.info.id,
                &AuditQuery {
                    action: Some("user.token_collected".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(collected.items.len(), 1);
        let recorded = collected.items[0].event.to_string();
        assert!(recorded.contains(&world.app.key.info.id), "{recorded}");
        assert!(!recorded.contains(&user_token));

        // Unknown tokens are expired, not errors.
        assert_eq!(
            world.poll("alter_as_unknown", Some(100)).await["status"],
            "expired"
        );
        // Sign-in client secret, sessions' verifiers and ID tokens re-wrap.
        crate::crypto::every_sealed_value_rewraps_under_a_new_kek(&world.server).await;
        world.server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn forged_replayed_foreign_denied_and_late_callbacks_complete_nothing() {
    let world = SignInWorld::start(TestServer::start(alter_testkit::Engine::Sqlite).await).await;

    // A forged state.
    let forged = Url::parse(&format!(
        "{}/auth/callback?state=forged&code=whatever",
        world.server.base_url()
    ))
    .unwrap();
    let (status, headers, _) = follow(&forged).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["x-frame-options"], "DENY");
    let no_state = Url::parse(&format!("{}/auth/callback", world.server.base_url())).unwrap();
    assert_eq!(follow(&no_state).await.0, StatusCode::BAD_REQUEST);

    // Another issuer (RFC 9207 mix-up): the session fails, the real callback finds nothing.
    let (auth_url, token) = world.session().await;
    let callback = world.sign_in_at_idp(auth_url).await;
    let mixed_up = with_param(&callback, "iss", "https://idp.attacker.example");
    let (status, _, page) = follow(&mixed_up).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("another identity provider"), "{page}");
    let polled = world.poll(&token, None).await;
    assert_eq!(polled["status"], "error");
    assert_eq!(polled["error_code"], "issuer_mismatch");
    assert_eq!(follow(&callback).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(world.poll(&token, None).await["status"], "error");

    // The user cancels at the IdP.
    let (auth_url, token) = world.session().await;
    let browser = world.peer.browser();
    let login = browser.get(auth_url).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let abort = browser
        .get(format!("{}/abort", login.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(abort.status(), StatusCode::SEE_OTHER);
    let denied = Url::parse(abort.headers()[LOCATION].to_str().unwrap()).unwrap();
    assert_eq!(param(&denied, "error").as_deref(), Some("access_denied"));
    let (status, _, page) = follow(&denied).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("cancelled"), "{page}");
    let polled = world.poll(&token, None).await;
    assert_eq!(polled["status"], "error");
    assert_eq!(polled["error_code"], "access_denied");
    assert!(polled.get("user_token").is_none());

    // Another session's code under this session's state: this session's PKCE verifier does
    // not match it, the IdP refuses the exchange, and the session fails.
    let (first_url, first_token) = world.session().await;
    let (second_url, _) = world.session().await;
    let first = world.sign_in_at_idp(first_url).await;
    let second = world.sign_in_at_idp(second_url).await;
    let swapped = with_param(&first, "code", &param(&second, "code").unwrap());
    let (status, _, _) = follow(&swapped).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let polled = world.poll(&first_token, None).await;
    assert_eq!(polled["status"], "error");
    assert_eq!(polled["error_code"], "code_exchange_failed");

    // Too late: the session expired while the user was at the IdP.
    let (auth_url, token) = world.session().await;
    let callback = world.sign_in_at_idp(auth_url).await;
    world.server.advance(601);
    let (status, _, page) = follow(&callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("expired"), "{page}");
    assert_eq!(world.poll(&token, None).await["status"], "expired");

    world.server.stop().await;
}

#[tokio::test]
async fn sign_in_says_what_is_missing_and_only_app_keys_start_it() {
    let server = TestServer::start(alter_testkit::Engine::Sqlite).await;
    let admin = server.admin();
    let bare = server.new_app("bare").await;
    let start = |key: String| {
        let server = &server;
        async move { post(server, &key, "/sdk/auth/session", json!({})).await }
    };
    let refused = start(bare.key.api_key.clone()).await;
    assert_eq!(
        (refused.status, refused.code()),
        (400, Some("idp_not_configured"))
    );

    let world = server.world("w").await;
    let key = world.app.key.api_key.clone();
    let gap = |answer: RawResponse| {
        assert_eq!(answer.status, 409, "{}", answer.json);
        assert_eq!(answer.code(), Some("idp_signin_not_configured"));
        answer.json["details"]["reason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(gap(start(key.clone()).await), "missing_client_id");
    let no_secret = admin
        .set_sign_in(
            &world.app.info.id,
            &SignInRequest {
                client_id: world.idp.audience().to_owned(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // The test IdP publishes keys but no discovery document.
    assert_eq!(
        no_secret.not_ready.as_deref(),
        Some("missing_client_secret")
    );
    assert_eq!(gap(start(key.clone()).await), "missing_client_secret");
    let undiscovered = admin
        .set_sign_in(
            &world.app.info.id,
            &SignInRequest {
                client_id: world.idp.audience().to_owned(),
                client_secret: Some("s3cret".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        undiscovered.not_ready.as_deref(),
        Some("issuer_cannot_sign_in")
    );
    assert_eq!(undiscovered.authorize_url, None);
    assert_eq!(gap(start(key.clone()).await), "issuer_cannot_sign_in");
    let shown = admin.get_sign_in(&world.app.info.id).await.unwrap();
    assert_eq!(shown, undiscovered);
    assert!(!serde_json::to_string(&shown).unwrap().contains("s3cret"));

    // Bad configurations change nothing.
    for bad in [
        SignInRequest {
            client_id: "not-an-audience".into(),
            client_secret: Some("x".into()),
            ..Default::default()
        },
        SignInRequest {
            client_id: world.idp.audience().to_owned(),
            authorize_url: Some("https://idp.example/authorize".into()),
            ..Default::default()
        },
        SignInRequest {
            client_id: world.idp.audience().to_owned(),
            scopes: vec!["email".into()],
            ..Default::default()
        },
        SignInRequest {
            client_id: world.idp.audience().to_owned(),
            authorize_url: Some("https://idp.example/authorize".into()),
            token_url: Some("http://idp.example/token".into()),
            ..Default::default()
        },
        SignInRequest {
            client_id: world.idp.audience().to_owned(),
            authorize_url: Some("https://idp.example/authorize".into()),
            token_url: Some("https://10.0.0.1/token".into()),
            ..Default::default()
        },
    ] {
        let e = admin
            .set_sign_in(&world.app.info.id, &bad)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("invalid_request"), "{e}");
    }
    assert_eq!(
        admin.get_sign_in(&world.app.info.id).await.unwrap(),
        undiscovered
    );

    // Explicit endpoints; the kept secret goes to the same token endpoint only.
    let explicit = admin
        .set_sign_in(
            &world.app.info.id,
            &SignInRequest {
                client_id: world.idp.audience().to_owned(),
                client_secret: Some("s3cret".into()),
                authorize_url: Some("https://idp.example/authorize".into()),
                token_url: Some("https://idp.example/token".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(explicit.not_ready, None);
    let moved = admin
        .set_sign_in(
            &world.app.info.id,
            &SignInRequest {
                client_id: world.idp.audience().to_owned(),
                authorize_url: Some("https://idp.example/authorize".into()),
                token_url: Some("https://elsewhere.example/token".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(moved.code(), Some("invalid_request"));
    let created = start(key.clone()).await;
    assert_eq!(created.status, 201, "{}", created.json);
    assert_eq!(created.json["expires_in"], 600);
    assert!(
        created.json["auth_url"]
            .as_str()
            .unwrap()
            .starts_with("https://idp.example/authorize?")
    );

    // The body is exactly `{}`; agents and keys without idp_users:write are refused.
    let extra = post(&server, &key, "/sdk/auth/session", json!({"x": 1})).await;
    assert_eq!(extra.status, 422);
    let app = server.app(&key);
    let made = app
        .agents()
        .create(CreateAgent::new("bot", json!({})))
        .await
        .unwrap();
    let by_agent = start(made.api_key.unwrap()).await;
    assert_eq!(by_agent.status, 403, "{}", by_agent.json);
    // The app's own key acting as the agent holds the scope, and is refused for being an agent.
    let impersonating = server
        .raw(&key, "POST", "/sdk/auth/session")
        .signed_header(alter_proto::signing::headers::CALLER, &made.agent.id)
        .signed_header(alter_proto::signing::headers::CALLER_TYPE, "agent")
        .body(b"{}".to_vec())
        .send()
        .await;
    assert_eq!(
        (impersonating.status, impersonating.code()),
        (403, Some("agents_cannot_sign_in")),
        "{}",
        impersonating.json
    );
    let reader = server
        .mint_key(
            &world.app,
            alter_proto::admin::MintKeyRequest {
                scopes: Some(vec!["idp_users:read".into()]),
                ..Default::default()
            },
        )
        .await;
    let narrow = start(reader.api_key.clone()).await;
    assert_eq!(
        (narrow.status, narrow.code()),
        (403, Some("insufficient_scope"))
    );
    let polled = post(
        &server,
        &reader.api_key,
        "/sdk/auth/poll",
        json!({"session_token": created.json["session_token"]}),
    )
    .await;
    assert_eq!(polled.json["status"], "pending");
    // Another app's key finds no such session.
    let other = server.new_app("other").await;
    let foreign = post(
        &server,
        &other.key.api_key,
        "/sdk/auth/poll",
        json!({"session_token": created.json["session_token"]}),
    )
    .await;
    assert_eq!(foreign.json["status"], "expired");
    server.stop().await;
}

/// Verifies an assertion against a JWKS as a relying party would: ES256 by the key its `kid`
/// names. Returns header and claims.
fn verify_assertion(token: &str, jwks: &Value) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let decode = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let header = decode(parts[0]);
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the kid is published");
    assert_eq!(
        (&key["kty"], &key["crv"], &key["alg"]),
        (&json!("EC"), &json!("P-256"), &json!("ES256"))
    );
    assert!(key.get("d").is_none());
    let mut point = vec![4u8];
    point.extend(URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap());
    point.extend(URL_SAFE_NO_PAD.decode(key["y"].as_str().unwrap()).unwrap());
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the signature verifies");
    // RFC 7638 thumbprint.
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        key["x"].as_str().unwrap(),
        key["y"].as_str().unwrap()
    );
    let thumbprint = URL_SAFE_NO_PAD.encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref(),
    );
    assert_eq!(header["kid"], thumbprint);
    (header, decode(parts[1]))
}

#[tokio::test]
async fn identities_resolve_and_assertions_verify_against_the_published_keys() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("id").await;
        let key = world.app.key.api_key.clone();
        let app_id = world.app.info.id.clone();
        let alice = world.idp.token(
            "alice",
            json!({"groups": ["eng"], "email": "alice@example.test", "name": "Alice"}),
        );

        let headless = post(&server, &key, "/sdk/identity/resolve", json!({"include_profile": false})).await;
        assert_eq!(headless.status, 200, "{}", headless.json);
        assert_eq!(headless.json["app_id"], app_id);
        assert_eq!(headless.json["app_user_id"], Value::Null);
        assert_eq!(headless.json["group_ids"], json!([]));

        let resolved = post(
            &server,
            &key,
            "/sdk/identity/resolve",
            json!({"include_profile": true, "user_token": alice}),
        )
        .await;
        assert_eq!(resolved.status, 200, "{}", resolved.json);
        let user_id = resolved.json["app_user_id"].as_str().unwrap().to_owned();
        assert_ne!(user_id, "alice");
        assert_eq!(resolved.json["external_subject_id"], "alice");
        assert_eq!(resolved.json["idp_id"], world.idp_id);
        assert_eq!(resolved.json["user_status"], "active");
        assert_eq!(resolved.json["group_ids"], json!(["eng"]));
        assert_eq!(resolved.json["email"], "alice@example.test");
        assert_eq!(resolved.json["agent_id"], Value::Null);
        let private = post(
            &server,
            &key,
            "/sdk/identity/resolve",
            json!({"include_profile": false, "user_token": alice}),
        )
        .await;
        assert_eq!(private.json["email"], Value::Null);
        assert_eq!(private.json["app_user_id"], user_id);
        let bad = post(&server, &key, "/sdk/identity/resolve", json!({"include_profile": false, "user_token": "x.y.z"})).await;
        assert_eq!((bad.status, bad.code()), (401, Some("jwt_validation_error")));
        let gated = post(&server, &key, "/sdk/identity/resolve", json!({"include_profile": false, "app_user_id": user_id})).await;
        assert_eq!((gated.status, gated.code()), (400, Some("app_user_id_requires_agent")));

        // An assertion for alice, verified with the published keys.
        let jwks_url = format!("{}/.well-known/alter-identity-jwks.json", server.base_url());
        let asserted = post(
            &server,
            &key,
            "/sdk/identity/assert",
            json!({"include_profile": false, "user_token": alice, "audience": "https://api.example.com", "ttl_seconds": 60}),
        )
        .await;
        assert_eq!(asserted.status, 200, "{}", asserted.json);
        let jwks: Value = reqwest::get(&jwks_url).await.unwrap().json().await.unwrap();
        let (header, claims) = verify_assertion(asserted.json["token"].as_str().unwrap(), &jwks);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["typ"], "alter-identity+jwt");
        assert_eq!(claims["iss"], server.base_url());
        assert_eq!(claims["aud"], "https://api.example.com");
        assert_eq!(claims["sub"], format!("alter:user:{user_id}"));
        assert_eq!(claims["azp"], app_id);
        assert_eq!(claims["alter"]["app_id"], app_id);
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 60);
        assert!(claims.get("act").is_none());
        assert_eq!(asserted.json["identity"]["app_user_id"], user_id);
        let expires = asserted.json["expires_at"].as_str().unwrap();
        assert!(expires.ends_with('Z') || expires.contains('+'), "{expires}");

        let recorded = server
            .admin()
            .audit_events(
                &app_id,
                &AuditQuery {
                    action: Some("identity.asserted".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(recorded.items.len(), 1);
        assert_eq!(recorded.items[0].event["target"]["id"], claims["jti"]);
        assert_eq!(recorded.items[0].event["details"]["audience"], "https://api.example.com");

        let headless = post(&server, &key, "/sdk/identity/assert", json!({"include_profile": false, "audience": "urn:example:api"})).await;
        let (_, claims) = verify_assertion(headless.json["token"].as_str().unwrap(), &jwks);
        assert_eq!(claims["sub"], format!("alter:app:{app_id}"));
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 120);

        for (body, code) in [
            (json!({"include_profile": false, "audience": "api.example.com"}), "invalid_request"),
            (json!({"include_profile": false, "audience": "https://a.example", "ttl_seconds": 5}), "invalid_request"),
            (json!({"include_profile": false, "audience": "https://a.example", "ttl_seconds": 301}), "invalid_request"),
            (json!({"include_profile": false, "audience": server.base_url()}), "invalid_audience"),
        ] {
            let refused = post(&server, &key, "/sdk/identity/assert", body.clone()).await;
            assert_eq!((refused.status, refused.code()), (422, Some(code)), "{body}");
        }

        // An agent names alice by app_user_id only once she delegated to it.
        let app = server.app(&key);
        let made = app
            .agents()
            .create(CreateAgent::new("helper", json!({"managed_secret_slugs": [world.secret.slug]})))
            .await
            .unwrap();
        let agent_key = made.api_key.unwrap();
        let agent_id = made.agent.id.clone();
        let ask = json!({"include_profile": false, "app_user_id": user_id});
        let missing = post(&server, &agent_key, "/sdk/identity/resolve", ask.clone()).await;
        assert_eq!(missing.status, 404, "{}", missing.json);
        let stranger = post(&server, &agent_key, "/sdk/identity/resolve", json!({"include_profile": false, "app_user_id": "00000000-0000-4000-8000-000000000000"})).await;
        assert_eq!(stranger.status, 404);
        assert_eq!(stranger.json, missing.json, "an unknown user and a user without consent look alike");
        let grant = app
            .create_managed_secret_grant(&world.secret.id, Principal::user(alice.clone(), "a"), None)
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
        let consented = post(&server, &agent_key, "/sdk/identity/resolve", ask.clone()).await;
        assert_eq!(consented.status, 200, "{}", consented.json);
        assert_eq!(consented.json["app_user_id"], user_id);
        assert_eq!(consented.json["agent_id"], agent_id);
        let mut assert_body = ask.clone();
        assert_body["audience"] = json!("https://api.example.com");
        let by_agent = post(&server, &agent_key, "/sdk/identity/assert", assert_body).await;
        assert_eq!(by_agent.status, 200, "{}", by_agent.json);
        let (_, claims) = verify_assertion(by_agent.json["token"].as_str().unwrap(), &jwks);
        assert_eq!(claims["act"]["sub"], format!("alter:agent:{agent_id}"));
        assert_eq!(claims["alter"]["agent_auth"], "agent_key");
        assert_eq!(claims["sub"], format!("alter:user:{user_id}"));
        let other = server.new_app("other").await;
        let foreign = post(&server, &other.key.api_key, "/sdk/identity/resolve", json!({"include_profile": false, "user_token": alice})).await;
        assert_eq!(foreign.status, 400, "another app has no IdP: {}", foreign.json);

        // Every node signs with the same key.
        let second = server.second_node().await;
        let elsewhere = post(&second, &key, "/sdk/identity/assert", json!({"include_profile": false, "audience": "urn:x"})).await;
        let (header, _) = verify_assertion(elsewhere.json["token"].as_str().unwrap(), &jwks);
        let second_jwks: Value = reqwest::get(format!("{}/.well-known/alter-identity-jwks.json", second.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(second_jwks, jwks);
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
        assert!(header["kid"].is_string());
        second.stop().await;
        // The identity-assertion signing key re-wraps.
        crate::crypto::every_sealed_value_rewraps_under_a_new_kek(&server).await;
        server.stop().await;
    })
    .await;
}
