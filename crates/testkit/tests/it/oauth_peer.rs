//! The OAuth peer itself, driven over plain HTTP with a cookie jar as a browser would: sign-in
//! with a real password check, consent, code + PKCE, token, introspection, refresh with and
//! without rotation, revocation, and the request counters tests rely on.

use std::time::Instant;

use alter_testkit::oauth_peer::{OAuthPeer, Pages, PeerOptions, PeerStats, TokenRequests};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Client, StatusCode, Url};
use serde_json::Value;

/// Never contacted: the browser stops at the redirect and the test reads `Location`.
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

#[tokio::test]
async fn oauth_peer_flow_with_rotating_refresh_tokens() {
    peer_flow(true).await;
}

#[tokio::test]
async fn oauth_peer_flow_with_reusable_refresh_tokens() {
    peer_flow(false).await;
}

async fn peer_flow(rotate: bool) {
    let started = Instant::now();
    let peer = OAuthPeer::start(PeerOptions {
        rotate_refresh: rotate,
        ..PeerOptions::new(REDIRECT_URI)
    })
    .await;
    let browser = peer.browser();
    let backend = Client::new();

    let code = sign_in(&peer, &browser, Pages::LoginAndConsent).await;
    // A wrong client secret is refused before the code is looked at, so the code stays usable.
    let refused = backend
        .post(peer.url("/token"))
        .basic_auth(peer.client_id(), Some("not-the-secret"))
        .form(&code.exchange())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let first = token(&peer, &backend, &code.exchange()).await;
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(
        first["scope"], "openid files.read",
        "unknown scopes are dropped"
    );
    assert_eq!(first["expires_in"], 60);
    let introspected = introspect(&peer, &backend, str_of(&first, "access_token")).await;
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["sub"], "alice");
    assert_eq!(introspected["client_id"], peer.client_id());
    assert_eq!(introspected["iss"], peer.issuer());

    let old_refresh = str_of(&first, "refresh_token");
    let refreshed = token(&peer, &backend, &refresh_form(old_refresh)).await;
    assert!(introspect_active(&peer, &backend, &refreshed).await);
    let current = if rotate {
        assert_ne!(str_of(&refreshed, "refresh_token"), old_refresh);
        // Reusing a rotated refresh token is refused and revokes the whole grant.
        let reused = refresh_error(&peer, &backend, old_refresh).await;
        assert_eq!(reused, "invalid_grant");
        assert!(!introspect_active(&peer, &backend, &refreshed).await);
        // The browser's session skips the login; consent is asked again, since the reuse
        // destroyed the grant.
        let again = sign_in(&peer, &browser, Pages::Consent).await;
        token(&peer, &backend, &again.exchange()).await
    } else {
        assert_eq!(str_of(&refreshed, "refresh_token"), old_refresh);
        let again = token(&peer, &backend, &refresh_form(old_refresh)).await;
        assert!(introspect_active(&peer, &backend, &again).await);
        again
    };

    let revoked = backend
        .post(peer.url("/token/revocation"))
        .basic_auth(peer.client_id(), Some(peer.client_secret()))
        .form(&[
            ("token", str_of(&current, "refresh_token")),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert!(!introspect_active(&peer, &backend, &current).await);
    let after = refresh_error(&peer, &backend, str_of(&current, "refresh_token")).await;
    assert_eq!(after, "invalid_grant");

    // Counted as they arrived, refused ones included: the code exchanges (one with a wrong
    // secret), three refreshes, one revocation, four introspections.
    let code_grants = if rotate { 3 } else { 2 };
    assert_eq!(
        peer.stats().await,
        PeerStats {
            token_requests: TokenRequests {
                authorization_code: code_grants,
                refresh_token: 3,
                other: 0,
            },
            revocations: 1,
            introspections: 4,
            resource_calls: 0,
        }
    );
    eprintln!(
        "OAuth peer flow (rotation {}) took {:?}",
        if rotate { "on" } else { "off" },
        started.elapsed()
    );
}

/// An authorization code and the PKCE verifier it was requested with.
struct Code {
    code: String,
    verifier: String,
}

impl Code {
    fn exchange(&self) -> [(&'static str, &str); 4] {
        [
            ("grant_type", "authorization_code"),
            ("code", &self.code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &self.verifier),
        ]
    }
}

/// Authorizes with code + PKCE S256 + state through `pages` and returns the code.
async fn sign_in(peer: &OAuthPeer, browser: &Client, pages: Pages) -> Code {
    let verifier = random_token();
    let challenge = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()));
    let state = random_token();
    let mut authorize = Url::parse(&peer.url("/auth")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", peer.client_id())
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", "openid files.read no.such.scope")
        .append_pair("state", &state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let authorization = peer.authorize(browser, authorize, pages).await;
    let page = &authorization.consent_page;
    assert!(page.contains(">files.read<"), "{page}");
    let location = authorization.redirect.as_str();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    let param = |name: &str| {
        authorization
            .param(name)
            .unwrap_or_else(|| panic!("no {name} in {location}"))
    };
    assert_eq!(param("state"), state);
    assert_eq!(param("iss"), peer.issuer());
    Code {
        code: param("code"),
        verifier,
    }
}

/// A successful token response.
async fn token(peer: &OAuthPeer, backend: &Client, form: &[(&str, &str)]) -> Value {
    let response = backend
        .post(peer.url("/token"))
        .basic_auth(peer.client_id(), Some(peer.client_secret()))
        .form(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn refresh_form(refresh_token: &str) -> [(&'static str, &str); 2] {
    [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ]
}

/// The `error` of a refused refresh.
async fn refresh_error(peer: &OAuthPeer, backend: &Client, refresh_token: &str) -> String {
    let response = backend
        .post(peer.url("/token"))
        .basic_auth(peer.client_id(), Some(peer.client_secret()))
        .form(&refresh_form(refresh_token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    body["error"].as_str().unwrap().to_owned()
}

async fn introspect(peer: &OAuthPeer, backend: &Client, token: &str) -> Value {
    let response = backend
        .post(peer.url("/token/introspection"))
        .basic_auth(peer.client_id(), Some(peer.client_secret()))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Whether the access token of a token response introspects as active.
async fn introspect_active(peer: &OAuthPeer, backend: &Client, tokens: &Value) -> bool {
    let introspected = introspect(peer, backend, str_of(tokens, "access_token")).await;
    introspected["active"].as_bool().unwrap()
}

fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {value}"))
}

/// 32 random bytes, base64url: 43 characters, a valid PKCE verifier.
fn random_token() -> String {
    let mut bytes = [0; 32];
    SystemRandom::new().fill(&mut bytes).unwrap();
    URL_SAFE_NO_PAD.encode(bytes)
}
