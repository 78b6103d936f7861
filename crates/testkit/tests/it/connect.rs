//! OAuth connections end to end against the real OAuth peer: a Connect session, the user at
//! the provider's pages, the callback, the grant; releases that inject the access token, lazy
//! refresh done once per expiry, rotation, `invalid_grant`, reconnecting, upstream revocation —
//! and every way the flow can be abused failing with nothing created.

use std::time::Duration;

use alter_sdk::admin::{AccountSourceBody, ConfigureProviderRequest, EndpointsBody};
use alter_testkit::oauth_peer::{OAuthPeer, Pages, PeerOptions};
use alter_testkit::{TestApp, TestServer, on_every_engine};
use reqwest::StatusCode;
use reqwest::Url;
use reqwest::header::LOCATION;
use serde_json::{Value, json};

/// The provider id the peer is configured under.
pub(crate) const PROVIDER: &str = "acme";

/// A server, an app with the peer configured as `acme`, and the peer.
pub(crate) struct Setup {
    pub(crate) server: TestServer,
    pub(crate) app: TestApp,
    pub(crate) peer: OAuthPeer,
}

pub(crate) async fn setup(server: TestServer, rotate: bool) -> Setup {
    let app = server.new_app("a").await;
    let peer = OAuthPeer::start(PeerOptions {
        rotate_refresh: rotate,
        access_ttl: Duration::from_secs(3600),
        ..PeerOptions::new(format!("{}/oauth/callback", server.base_url()))
    })
    .await;
    configure(&server, &app, &peer).await;
    Setup { server, app, peer }
}

/// The admin request that configures the peer as `acme`.
fn provider_config(peer: &OAuthPeer) -> ConfigureProviderRequest {
    ConfigureProviderRequest {
        display_name: Some("Acme Files".into()),
        client_id: peer.client_id().into(),
        client_secret: Some(peer.client_secret().into()),
        scopes: Some(vec!["openid".into(), "files.read".into()]),
        endpoints: Some(EndpointsBody {
            issuer: Some(peer.issuer().into()),
            authorize_url: Some(peer.url("/auth")),
            token_url: Some(peer.url("/token")),
            revoke_url: Some(peer.url("/token/revocation")),
            refresh: Some(
                if peer.options().rotate_refresh {
                    "rotating"
                } else {
                    "non_rotating"
                }
                .into(),
            ),
            account: Some(AccountSourceBody::IdToken {
                claim: "sub".into(),
            }),
            api_headers: Some([("X-Acme-Version".to_owned(), "2026-01".to_owned())].into()),
            // Where the vault may send its tokens itself (proxy mode).
            api_base_url: Some(peer.url("/")),
            ..EndpointsBody::default()
        }),
        params: None,
        expected_version: None,
    }
}

pub(crate) async fn configure(server: &TestServer, app: &TestApp, peer: &OAuthPeer) {
    server
        .admin()
        .configure_provider(&app.info.id, PROVIDER, &provider_config(peer))
        .await
        .unwrap();
}

/// `body` with the four keys the official client always sends (`null` unless given).
fn session_body(mut body: Value) -> Value {
    for key in [
        "allowed_providers",
        "return_url",
        "allowed_origin",
        "metadata",
    ] {
        body.as_object_mut()
            .unwrap()
            .entry(key)
            .or_insert(Value::Null);
    }
    body
}

impl Setup {
    /// `POST /sdk/oauth/connect/session` with `body` signed by `key`.
    async fn try_session(&self, key: &str, body: Value) -> alter_testkit::RawResponse {
        self.server
            .raw(key, "POST", "/sdk/oauth/connect/session")
            .body(session_body(body).to_string())
            .send()
            .await
    }

    /// A session the app creates with `body`.
    async fn create_session(&self, body: Value) -> Value {
        let response = self.try_session(&self.app.key.api_key, body).await;
        assert_eq!(response.status, 201, "{}", response.json);
        response.json
    }

    async fn poll(&self, session_token: &str) -> Value {
        let response = self
            .server
            .raw(
                &self.app.key.api_key,
                "POST",
                "/sdk/oauth/connect/session/poll",
            )
            .body(json!({ "session_token": session_token }).to_string())
            .send()
            .await;
        assert_eq!(response.status, 200, "{}", response.json);
        response.json
    }

    /// Opens the Connect page, picks the provider, and returns the provider's authorization
    /// URL the page sent the browser to, with the client that keeps the page's cookie (the
    /// callback must come from it).
    pub(crate) async fn pick(&self, connect_url: &str) -> (Url, reqwest::Client) {
        let ours = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = ours.get(connect_url).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let headers = page.headers().clone();
        let html = page.text().await.unwrap();
        assert!(html.contains("Connect Acme Files"), "{html}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(headers["x-frame-options"], "DENY");
        let started = ours
            .post(connect_url)
            .form(&[("provider", PROVIDER)])
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), StatusCode::SEE_OTHER);
        let cookie = started.headers()["set-cookie"].to_str().unwrap();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        let location = Url::parse(started.headers()[LOCATION].to_str().unwrap()).unwrap();
        assert!(
            location.as_str().starts_with(&self.peer.url("/auth")),
            "{location}"
        );
        let query: std::collections::HashMap<_, _> = location.query_pairs().collect();
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(query["scope"], "openid files.read");
        (location, ours)
    }

    /// A whole Connect flow for `body`: page, provider, login and consent, callback. Returns
    /// the completed poll's first grant.
    pub(crate) async fn connect(&self, body: Value) -> Value {
        let session = self.create_session(body).await;
        let browser = self.peer.browser();
        let (authorize, ours) = self.pick(session["connect_url"].as_str().unwrap()).await;
        let authorization = self
            .peer
            .authorize(&browser, authorize, Pages::LoginAndConsent)
            .await;
        let landed = ours
            .get(authorization.redirect.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(landed.status(), StatusCode::OK);
        assert!(landed.text().await.unwrap().contains("is connected"));
        let polled = self.poll(session["session_token"].as_str().unwrap()).await;
        assert_eq!(polled["status"], "completed", "{polled}");
        polled["grants"][0].clone()
    }

    /// `POST /sdk/token` in provider mode for a call to the peer's resource endpoint.
    pub(crate) async fn release(&self) -> alter_testkit::RawResponse {
        release_request(&self.server, &self.app.key.api_key, self)
            .send()
            .await
    }

    /// The released access token, checked at the peer's resource endpoint.
    async fn released_token_works(&self) -> String {
        let released = self.release().await;
        assert_eq!(released.status, 200, "{}", released.json);
        let token = released.json["access_token"].as_str().unwrap().to_owned();
        assert_eq!(released.json["injection_header"], "Authorization");
        assert_eq!(released.json["injection_format"], "Bearer {token}");
        assert_eq!(released.json["provider_id"], PROVIDER);
        assert_eq!(released.json["scopes"], json!(["files.read", "openid"]));
        assert!(released.json["expires_at"].is_string());
        // The provider's fixed API headers go along as extra injections.
        assert_eq!(
            released.json["additional_injections"],
            json!([{ "target": "header", "key": "X-Acme-Version",
                     "value_source": "additional_credentials.header_0" }])
        );
        assert_eq!(
            released.json["additional_credentials"],
            json!({ "header_0": "2026-01" })
        );
        assert_eq!(resource(&self.peer, &token).await, StatusCode::OK);
        token
    }
}

/// The signed `/sdk/token` request of [`Setup::release`] with `key`, to `server` (a node).
fn release_request(server: &TestServer, key: &str, s: &Setup) -> alter_testkit::RawRequest {
    server.raw(key, "POST", "/sdk/token").body(
        json!({
            "provider_id": PROVIDER,
            "reason": null,
            "request": { "method": "GET", "url": s.peer.url("/_peer/resource") },
        })
        .to_string(),
    )
}

/// Sends every request at once; their answers in order.
async fn all_at_once(requests: Vec<alter_testkit::RawRequest>) -> Vec<alter_testkit::RawResponse> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| tokio::spawn(request.send()))
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// The peer's resource endpoint's answer to `token`.
async fn resource(peer: &OAuthPeer, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(peer.url("/_peer/resource"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_connected_account_is_released_refreshed_once_per_expiry_and_revoked_upstream() {
    on_every_engine(|engine| async move {
        let s = setup(TestServer::start(engine).await, true).await;
        let grant = s.connect(json!({ "allowed_providers": [PROVIDER] })).await;
        assert_eq!(grant["provider_id"], PROVIDER);
        assert_eq!(grant["account_identifier"], "alice");
        assert_eq!(grant["operation"], "creation");
        assert_eq!(grant["scopes"], json!(["files.read", "openid"]));
        let grant_id = grant["grant_id"].as_str().unwrap().to_owned();

        let first = s.released_token_works().await;
        assert_eq!(s.peer.stats().await.token_requests.refresh_token, 0);

        // The listing shows the OAuth grant.
        let listed = s
            .server
            .raw(&s.app.key.api_key, "POST", "/sdk/grants/list")
            .body(json!({ "limit": 10, "offset": 0, "provider_id": PROVIDER }).to_string())
            .send()
            .await;
        assert_eq!(listed.status, 200, "{}", listed.json);
        let item = &listed.json["grants"][0];
        assert_eq!(item["grant_kind"], "oauth");
        assert_eq!(item["grant_id"], grant_id);
        assert_eq!(item["account_identifier"], "alice");
        assert_eq!(item["principal_type"], "system");
        assert_eq!(listed.json["total"], 1);

        // An operator who now requires more scopes than the grant holds: the release says so.
        assert_eq!(s.release().await.json["scope_mismatch"], false);
        let mut widened = provider_config(&s.peer);
        widened.scopes = Some(vec![
            "openid".into(),
            "files.read".into(),
            "files.write".into(),
        ]);
        widened.client_secret = None;
        s.server
            .admin()
            .configure_provider(&s.app.info.id, PROVIDER, &widened)
            .await
            .unwrap();
        assert_eq!(s.release().await.json["scope_mismatch"], true);
        configure(&s.server, &s.app, &s.peer).await;
        assert_eq!(s.release().await.json["scope_mismatch"], false);

        // Past the access token's expiry (as the vault reads the time), the next release
        // refreshes, once; the one after uses the stored result.
        s.server.advance(3600);
        let second = s.released_token_works().await;
        assert_ne!(second, first);
        s.released_token_works().await;
        assert_eq!(s.peer.stats().await.token_requests.refresh_token, 1);
        // A second expiry refreshes with the rotated refresh token: had the vault kept the
        // first one, the peer would see its reuse and revoke the whole grant.
        s.server.advance(3600);
        let third = s.released_token_works().await;
        assert_ne!(third, second);
        assert_eq!(s.peer.stats().await.token_requests.refresh_token, 2);

        // Revoking the grant revokes the tokens at the provider, without waiting for it.
        let revoked = s
            .server
            .raw(
                &s.app.key.api_key,
                "POST",
                &format!("/sdk/oauth/grants/{grant_id}/revoke"),
            )
            .body("{}")
            .send()
            .await;
        assert_eq!(revoked.status, 200, "{}", revoked.json);
        let refused = s.release().await;
        assert_eq!(refused.status, 404, "{}", refused.json);
        let mut inactive = false;
        for _ in 0..100 {
            if resource(&s.peer, &third).await == StatusCode::UNAUTHORIZED {
                inactive = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            inactive,
            "the provider still accepts the revoked grant's token"
        );
        assert!(s.peer.stats().await.revocations >= 1);
        // And its introspection endpoint (RFC 7662) says so.
        let introspected: Value = reqwest::Client::new()
            .post(s.peer.url("/token/introspection"))
            .basic_auth(s.peer.client_id(), Some(s.peer.client_secret()))
            .form(&[("token", third.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(introspected["active"], false, "{introspected}");
        // OAuth client secrets, connections' tokens and Connect verifiers re-wrap.
        crate::crypto::every_sealed_value_rewraps_under_a_new_kek(&s.server).await;
    })
    .await;
}

#[tokio::test]
async fn fifty_concurrent_releases_of_an_expired_token_refresh_it_once() {
    on_every_engine(|engine| async move {
        let s = setup(TestServer::start(engine).await, true).await;
        s.connect(json!({ "allowed_providers": [PROVIDER] })).await;
        s.server.advance(3600);
        let answers = all_at_once(
            (0..50)
                .map(|_| release_request(&s.server, &s.app.key.api_key, &s))
                .collect(),
        )
        .await;
        let mut tokens = std::collections::BTreeSet::new();
        for answer in &answers {
            assert_eq!(answer.status, 200, "{}", answer.json);
            tokens.insert(answer.json["access_token"].as_str().unwrap().to_owned());
        }
        assert_eq!(s.peer.stats().await.token_requests.refresh_token, 1);
        assert_eq!(tokens.len(), 1, "every caller got the one refreshed token");
        let token = tokens.into_iter().next().unwrap();
        assert_eq!(resource(&s.peer, &token).await, StatusCode::OK);
    })
    .await;
}

#[tokio::test]
async fn two_nodes_connect_and_refresh_an_expired_token_once() {
    let Some(engine) = alter_testkit::engines()
        .into_iter()
        .find(|e| *e == alter_testkit::Engine::Postgres)
    else {
        return;
    };
    let s = setup(TestServer::start(engine).await, true).await;
    let second = s.server.second_node().await;
    // The flow starts on one node and the provider's redirect lands on the other (behind a
    // load balancer): the state, the verifier and the browser binding are in the database.
    let session = s
        .create_session(json!({ "allowed_providers": [PROVIDER] }))
        .await;
    let browser = s.peer.browser();
    let (authorize, ours) = s.pick(session["connect_url"].as_str().unwrap()).await;
    let authorization = s
        .peer
        .authorize(&browser, authorize, Pages::LoginAndConsent)
        .await;
    let mut on_second = authorization.redirect.clone();
    let second_url = Url::parse(second.base_url()).unwrap();
    on_second.set_port(second_url.port()).unwrap();
    let landed = ours.get(on_second.as_str()).send().await.unwrap();
    assert_eq!(landed.status(), StatusCode::OK);
    assert_eq!(
        s.poll(session["session_token"].as_str().unwrap()).await["status"],
        "completed"
    );
    s.server.advance(3600);
    second.advance(3600);
    let requests = (0..50)
        .map(|i| {
            let node = if i % 2 == 0 { &s.server } else { &second };
            release_request(node, &s.app.key.api_key, &s)
        })
        .collect();
    let answers = all_at_once(requests).await;
    for answer in &answers {
        assert_eq!(answer.status, 200, "{}", answer.json);
    }
    assert_eq!(s.peer.stats().await.token_requests.refresh_token, 1);
}

#[tokio::test]
async fn a_refused_refresh_token_asks_for_a_reconnect_that_keeps_the_grant() {
    on_every_engine(|engine| async move {
        let s = setup(TestServer::start(engine).await, false).await;
        let grant = s.connect(json!({ "allowed_providers": [PROVIDER] })).await;
        let grant_id = grant["grant_id"].as_str().unwrap().to_owned();
        // The user revokes the app at the provider: the refresh token dies there.
        revoke_refresh_token_at_peer(&s).await;
        s.server.advance(3600);
        let refused = s.release().await;
        assert_eq!(refused.status, 403, "{}", refused.json);
        assert_eq!(refused.code(), Some("credential_revoked"));
        assert_eq!(refused.json["grant_id"], grant_id);
        assert_eq!(refused.json["provider_id"], PROVIDER);
        // It stays refused without asking the provider again.
        let refreshes = s.peer.stats().await.token_requests.refresh_token;
        assert_eq!(s.release().await.code(), Some("credential_revoked"));
        assert_eq!(s.peer.stats().await.token_requests.refresh_token, refreshes);
        let listed = s
            .server
            .raw(&s.app.key.api_key, "POST", "/sdk/grants/list")
            .body(json!({ "limit": 10, "offset": 0 }).to_string())
            .send()
            .await;
        assert_eq!(listed.json["grants"][0]["needs_reconnect"], true);

        // Repairing it connects the same account again: same grant, new tokens.
        let repaired = s
            .connect(json!({ "allowed_providers": [PROVIDER], "repair_grant_id": grant_id }))
            .await;
        assert_eq!(repaired["grant_id"], grant_id);
        assert_eq!(repaired["operation"], "reauth");
        s.released_token_works().await;
        // Connecting the same account again without naming the grant also keeps it.
        let again = s.connect(json!({ "allowed_providers": [PROVIDER] })).await;
        assert_eq!(again["grant_id"], grant_id);
        assert_eq!(again["operation"], "reauth");
    })
    .await;
}

/// The user revokes the app at the provider: the newest refresh token dies there.
pub(crate) async fn revoke_refresh_token_at_peer(s: &Setup) {
    let refresh_token = peer_refresh_token(s).await;
    let revoked = reqwest::Client::new()
        .post(s.peer.url("/token/revocation"))
        .basic_auth(s.peer.client_id(), Some(s.peer.client_secret()))
        .form(&[
            ("token", refresh_token.as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
}

/// The newest live refresh token at the peer (the one the vault holds: the vault never hands
/// its tokens out, so the test asks the provider).
async fn peer_refresh_token(s: &Setup) -> String {
    let response = reqwest::get(s.peer.url("/_peer/refresh-tokens"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Vec<String> = response.json().await.unwrap();
    tokens
        .last()
        .cloned()
        .expect("the peer holds a refresh token")
}

#[tokio::test]
async fn abused_or_failed_flows_fail_clearly_and_create_nothing() {
    on_every_engine(|engine| async move {
        let s = setup(TestServer::start(engine).await, true).await;
        let s = &s;
        let grants_made = |expected: u64| async move {
            let listed = s
                .server
                .raw(&s.app.key.api_key, "POST", "/sdk/grants/list")
                .body(json!({ "limit": 10, "offset": 0 }).to_string())
                .send()
                .await;
            assert_eq!(listed.json["total"], expected, "{}", listed.json);
        };

        // A forged state names nothing.
        let forged = reqwest::get(format!(
            "{}/oauth/callback?state=forged&code=abc",
            s.server.base_url()
        ))
        .await
        .unwrap();
        assert_eq!(forged.status(), StatusCode::BAD_REQUEST);

        // Denied consent ends the single-provider session with connect_denied.
        let session = s
            .create_session(json!({ "allowed_providers": [PROVIDER] }))
            .await;
        let browser = s.peer.browser();
        let (authorize, ours) = s.pick(session["connect_url"].as_str().unwrap()).await;
        let denied = s.peer.deny(&browser, authorize).await;
        assert_eq!(
            denied.query_pairs().find(|(k, _)| k == "error").unwrap().1,
            "access_denied"
        );
        let landed = ours.get(denied.as_str()).send().await.unwrap();
        assert_eq!(landed.status(), StatusCode::OK);
        let polled = s.poll(session["session_token"].as_str().unwrap()).await;
        assert_eq!(polled["status"], "error", "{polled}");
        assert_eq!(polled["error"]["error_code"], "connect_denied");
        grants_made(0).await;

        // A wrong issuer (a mix-up attack) is refused; replaying the callback finds nothing.
        let session = s
            .create_session(json!({ "allowed_providers": [PROVIDER] }))
            .await;
        let browser = s.peer.browser();
        let (authorize, ours) = s.pick(session["connect_url"].as_str().unwrap()).await;
        let authorization = s
            .peer
            .authorize(&browser, authorize, Pages::LoginAndConsent)
            .await;
        // Carried to another browser (a leaked URL), the callback completes nothing and does
        // not spend the state.
        let elsewhere = reqwest::get(authorization.redirect.as_str()).await.unwrap();
        assert_eq!(elsewhere.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            s.poll(session["session_token"].as_str().unwrap()).await["status"],
            "pending"
        );
        let mut mixed_up = authorization.redirect.clone();
        let pairs: Vec<(String, String)> = mixed_up
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "iss" {
                    "https://evil.example".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        mixed_up.query_pairs_mut().clear().extend_pairs(pairs);
        let refused = ours.get(mixed_up.as_str()).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let polled = s.poll(session["session_token"].as_str().unwrap()).await;
        assert_eq!(polled["status"], "error", "{polled}");
        assert_eq!(polled["error"]["error_code"], "connect_flow_error");
        let replayed = ours.get(authorization.redirect.as_str()).send().await.unwrap();
        assert_eq!(replayed.status(), StatusCode::BAD_REQUEST);
        grants_made(0).await;

        // A completed session's callback cannot be replayed to connect twice.
        let session = s
            .create_session(json!({ "allowed_providers": [PROVIDER] }))
            .await;
        let browser = s.peer.browser();
        let (authorize, ours) = s.pick(session["connect_url"].as_str().unwrap()).await;
        let authorization = s
            .peer
            .authorize(&browser, authorize, Pages::LoginAndConsent)
            .await;
        assert_eq!(
            ours.get(authorization.redirect.as_str()).send().await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            ours.get(authorization.redirect.as_str()).send().await
                .unwrap()
                .status(),
            StatusCode::BAD_REQUEST
        );
        let page = reqwest::get(session["connect_url"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(
            page.status(),
            StatusCode::NOT_FOUND,
            "a used session's page is gone"
        );

        // An expired session: its page is gone and polling says expired.
        let session = s
            .create_session(json!({ "allowed_providers": [PROVIDER] }))
            .await;
        s.server.advance(601);
        let page = reqwest::get(session["connect_url"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::NOT_FOUND);
        let polled = s.poll(session["session_token"].as_str().unwrap()).await;
        assert_eq!(polled["status"], "expired");
        // An unknown token is "expired" too, and so is another app's.
        assert_eq!(s.poll("alter_cs_unknown").await["status"], "expired");
        let other = s.server.new_app("b").await;
        let fresh = s
            .create_session(json!({ "allowed_providers": [PROVIDER] }))
            .await;
        let foreign = s
            .server
            .raw(
                &other.key.api_key,
                "POST",
                "/sdk/oauth/connect/session/poll",
            )
            .body(json!({ "session_token": fresh["session_token"] }).to_string())
            .send()
            .await;
        assert_eq!(foreign.json["status"], "expired");

        // Bad input is refused before anything is stored.
        for (body, code) in [
            (json!({ "allowed_providers": ["nope"] }), "invalid_request"),
            (json!({ "allowed_providers": [] }), "invalid_request"),
            (
                json!({ "return_url": "javascript:alert(1)" }),
                "invalid_request",
            ),
            (json!({ "agent": "helper" }), "agent_requires_user_token"),
            (
                json!({ "allowed_providers": [PROVIDER], "required_scopes": { PROVIDER: ["files.write"] } }),
                "scope_not_allowed",
            ),
            (json!({ "scope_constraint": ["files.read"] }), "invalid_scope_constraint"),
            (json!({ "surprise": true }), "invalid_request"),
        ] {
            let refused = s.try_session(&s.app.key.api_key, body.clone()).await;
            assert_eq!(refused.code(), Some(code), "{body}: {}", refused.json);
        }
        grants_made(1).await;
    })
    .await;
}

/// A user connects with a session that names an agent: the grant is the user's and the agent
/// holds a delegation of it by the user's consent. The agent uses it (its allowlist names the
/// provider), the app's listing shows who holds it, and an agent without the provider in its
/// allowlist is refused.
#[tokio::test]
async fn a_session_naming_an_agent_delegates_the_users_new_grant_to_it() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let peer = OAuthPeer::start(PeerOptions {
            access_ttl: Duration::from_secs(3600),
            ..PeerOptions::new(format!("{}/oauth/callback", server.base_url()))
        })
        .await;
        configure(&server, &world.app, &peer).await;
        let s = Setup {
            server,
            app: world.app.clone(),
            peer,
        };
        let app = s.server.app(&s.app.key.api_key);
        let assistant = app
            .agents()
            .create(alter_sdk::CreateAgent::new(
                "assistant",
                json!({ PROVIDER: ["files.read"] }),
            ))
            .await
            .unwrap();
        let alice = world.idp.token("alice", json!({}));

        // An agent without a user to consent is refused before anything is stored.
        let refused = s
            .try_session(
                &s.app.key.api_key,
                json!({ "allowed_providers": [PROVIDER], "agent": "assistant" }),
            )
            .await;
        assert_eq!(refused.code(), Some("agent_requires_user_token"));

        let grant = s
            .connect(json!({
                "allowed_providers": [PROVIDER],
                "agent": "assistant",
                "delegable": false,
                "user_token": alice,
            }))
            .await;
        assert_eq!(grant["delegation"]["agent_id"], assistant.agent.id);
        assert_eq!(grant["delegation"]["policy_refused"], false);
        let grant_id = grant["grant_id"].as_str().unwrap();

        let listed = s
            .server
            .raw(&s.app.key.api_key, "POST", "/sdk/grants/list")
            .body(json!({ "limit": 10, "offset": 0 }).to_string())
            .send()
            .await;
        let root = listed.json["grants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["grant_id"] == grant_id)
            .unwrap()
            .clone();
        assert_eq!(root["principal_type"], "user");
        assert_eq!(root["delegated_agent_ids"], json!([assistant.agent.id]));

        // The agent releases through its delegation; the app without the user's token does
        // not find the user's grant.
        let as_agent = |key: &str| release_request(&s.server, key, &s).send();
        let agent_key = assistant.api_key.clone().unwrap();
        let released = as_agent(&agent_key).await;
        assert_eq!(released.status, 200, "{}", released.json);
        assert_ne!(
            released.json["grant_id"], grant_id,
            "the delegation's own id"
        );
        let token = released.json["access_token"].as_str().unwrap();
        assert_eq!(resource(&s.peer, token).await, StatusCode::OK);
        assert_eq!(s.release().await.status, 404);

        // Reconnecting the same account for another agent keeps the user's grant and delegates
        // it to that agent too; an agent whose allowlist does not name the provider is refused
        // at use, delegation or not.
        let stranger = app
            .agents()
            .create(alter_sdk::CreateAgent::new("stranger", json!({})))
            .await
            .unwrap();
        let again = s
            .connect(json!({
                "allowed_providers": [PROVIDER],
                "agent": "stranger",
                "user_token": alice,
            }))
            .await;
        assert_eq!(again["grant_id"], grant_id);
        assert_eq!(again["operation"], "reauth");
        let refused = as_agent(stranger.api_key.as_deref().unwrap()).await;
        assert_eq!(refused.status, 403, "{}", refused.json);
        assert_eq!(refused.code(), Some("agent_not_allowlisted"));

        // An allowlist that names the provider but not the grant's API scopes refuses too
        // (the sign-in scope `openid` grants no API access and is not counted).
        let narrow = app
            .agents()
            .create(alter_sdk::CreateAgent::new(
                "narrow",
                json!({ PROVIDER: ["files.write"] }),
            ))
            .await
            .unwrap();
        s.connect(json!({
            "allowed_providers": [PROVIDER],
            "agent": "narrow",
            "user_token": alice,
        }))
        .await;
        let refused = as_agent(narrow.api_key.as_deref().unwrap()).await;
        assert_eq!(
            refused.code(),
            Some("agent_not_allowlisted"),
            "{}",
            refused.json
        );

        // An agent cannot choose where the vault sends users, nor ask for scopes beyond its
        // allowlist.
        for (body, code) in [
            (
                json!({ "return_url": "https://phish.example/after" }),
                "invalid_request",
            ),
            (
                json!({ "required_scopes": { PROVIDER: ["files.write"] } }),
                "scope_not_allowed",
            ),
        ] {
            let mut full = json!({ "allowed_providers": [PROVIDER], "user_token": alice });
            for (k, v) in body.as_object().unwrap() {
                full[k] = v.clone();
            }
            let refused = s.try_session(&agent_key, full).await;
            assert_eq!(refused.code(), Some(code), "{body}: {}", refused.json);
        }
    })
    .await;
}

#[tokio::test]
async fn a_sessions_restrictions_become_rules_on_its_grant_which_is_proxy_only() {
    use alter_sdk::{ProviderRequest, ProxyOutcome};
    on_every_engine(|engine| async move {
        let s = setup(TestServer::start(engine).await, false).await;
        let admin = s.server.admin();
        let app_id = s.app.info.id.clone();
        let resource = s.peer.url("/_peer/resource");

        // Bad restrictions are refused when the session is made, and nothing is stored.
        let many_methods: Vec<String> = (0..51).map(|i| format!("M{}", "X".repeat(i))).collect();
        let many_endpoints: Vec<String> =
            (0..201).map(|i| format!("https://h{i}.example/")).collect();
        for restrictions in [
            json!({}),
            json!({ "allowed_methods": [] }),
            json!({ "allowed_endpoints": [] }),
            json!({ "allowed_methods": ["GE T"] }),
            json!({ "allowed_methods": many_methods }),
            json!({ "allowed_endpoints": many_endpoints }),
            json!({ "allowed_endpoints": ["ftp://files.example/"] }),
            json!({ "allowed_endpoints": ["api.example.com/repos/**"] }),
            json!({ "allowed_endpoints": ["https://user@api.example.com/"] }),
            json!({ "allowed_endpoints": ["https://api.example.com/a?b=1"] }),
            json!({ "allowed_endpoints": ["https://api.example.com:0/"] }),
            json!({ "allowed_endpoints": ["https://api.example.com/***"] }),
            json!({ "allowed_hosts": ["api.example.com"] }),
        ] {
            let refused = s
                .try_session(
                    &s.app.key.api_key,
                    json!({
                        "allowed_providers": [PROVIDER],
                        "requested_grant": { "label": "work", "restrictions": restrictions },
                    }),
                )
                .await;
            assert_eq!(refused.status, 422, "{restrictions}: {}", refused.json);
            assert_eq!(
                refused.code(),
                Some("invalid_request"),
                "{restrictions}: {}",
                refused.json
            );
        }
        assert!(admin.list_rules(&app_id).await.unwrap().is_empty());

        // A restricted session completes; its grant carries a method and a url rule.
        let grant = s
            .connect(json!({
                "allowed_providers": [PROVIDER],
                "requested_grant": {
                    "label": "work",
                    "restrictions": {
                        "allowed_methods": ["get"],
                        "allowed_endpoints": [resource.clone()],
                    },
                },
            }))
            .await;
        let grant_id = grant["grant_id"].as_str().unwrap().to_owned();
        let rules = admin.list_rules(&app_id).await.unwrap();
        assert_eq!(rules.len(), 2, "{rules:?}");
        for rule in &rules {
            assert_eq!(rule.target.kind, "grant");
            assert_eq!(rule.target.id.as_deref(), Some(grant_id.as_str()));
            assert_eq!(
                (rule.effect.as_str(), rule.mode.as_str()),
                ("deny", "enforce")
            );
        }
        let port = Url::parse(&resource).unwrap().port().unwrap();
        assert_eq!(rules[0].kind, "method");
        assert_eq!(rules[0].body, json!({ "allow": ["GET"] }));
        assert_eq!(rules[1].kind, "url");
        assert_eq!(
            rules[1].body["allow"],
            json!([{ "host": "127.0.0.1", "path": "/_peer/resource",
                     "scheme": "http", "port": port }])
        );

        // Retrieve mode would hand the token out unrestricted: refused.
        let released = s.release().await;
        assert_eq!(
            released.code(),
            Some("restricted_grant_requires_proxy"),
            "{}",
            released.json
        );

        // Through the proxy, the allowed method on the allowed endpoint goes; nothing else.
        let app = s.server.app(&s.app.key.api_key);
        let allowed = app
            .proxy_request(ProviderRequest::get(&resource).grant_id(&grant_id))
            .await
            .and_then(ProxyOutcome::completed)
            .unwrap();
        assert_eq!(allowed.status_code, 200, "{}", allowed.body_text());
        for (request, code) in [
            (
                ProviderRequest::get(s.peer.url("/_peer/other")),
                "url_not_allowed",
            ),
            (ProviderRequest::post(&resource), "method_not_allowed"),
        ] {
            let refused = app
                .proxy_request(request.grant_id(&grant_id))
                .await
                .and_then(ProxyOutcome::completed)
                .unwrap_err();
            assert_eq!(refused.code(), Some(code), "{refused}");
        }

        // A second restricted session whose grant cannot be stored (its label is taken) fails
        // and leaves no rule behind.
        let session = s
            .create_session(json!({
                "allowed_providers": [PROVIDER],
                "requested_grant": {
                    "label": "work",
                    "restrictions": { "allowed_methods": ["DELETE"] },
                },
            }))
            .await;
        let browser = s.peer.browser();
        let (authorize, ours) = s.pick(session["connect_url"].as_str().unwrap()).await;
        let authorization = s
            .peer
            .authorize(&browser, authorize, Pages::LoginAndConsent)
            .await;
        ours.get(authorization.redirect.as_str())
            .send()
            .await
            .unwrap();
        let polled = s.poll(session["session_token"].as_str().unwrap()).await;
        assert_eq!(polled["status"], "error", "{polled}");
        assert!(
            polled["error"]["error_message"]
                .as_str()
                .unwrap()
                .contains("is in use by another grant"),
            "{polled}"
        );
        assert_eq!(admin.list_rules(&app_id).await.unwrap(), rules);
        s.server.stop().await;
    })
    .await;
}
