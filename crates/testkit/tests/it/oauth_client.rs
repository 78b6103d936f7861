//! Alter's upstream OAuth client (`alter_upstream::oauth`) against the real OAuth peer: the
//! authorization URL it builds is accepted, and code exchange, refresh (with and without
//! rotation), revocation and the account identifier behave as the provider does, with its
//! refusals mapped to the right error.

use std::collections::BTreeMap;

use alter_core::oauth::OAuthUpstream as _;
use alter_core::providers::{AccountSource, ProviderEndpoints, RefreshBehaviour};
use alter_crypto::{ExposeSecret, SecretString};
use alter_testkit::oauth_peer::{OAuthPeer, Pages, PeerOptions, PeerStats, TokenRequests};
use alter_upstream::oauth::{
    OAuthClient, OAuthError, Pkce, TokenSet, TokenTypeHint, authorization_url,
};
use reqwest::{Client, StatusCode};
use serde_json::Value;

/// Never contacted: the browser stops at the redirect and the test reads it.
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// The peer as a provider, described the way the catalogue describes one.
fn endpoints(peer: &OAuthPeer) -> ProviderEndpoints {
    ProviderEndpoints {
        issuer: Some(peer.issuer().to_owned()),
        authorize_url: peer.url("/auth"),
        token_url: peer.url("/token"),
        refresh_url: None,
        revoke_url: Some(peer.url("/token/revocation")),
        pkce: true,
        scope_separator: " ".to_owned(),
        refresh: if peer.options().rotate_refresh {
            RefreshBehaviour::Rotating
        } else {
            RefreshBehaviour::NonRotating
        },
        extra_authorize_params: BTreeMap::from([("prompt".to_owned(), "consent".to_owned())]),
        account: AccountSource::IdToken {
            claim: "sub".to_owned(),
        },
        api_base_url: None,
        api_headers: BTreeMap::new(),
    }
}

/// Authorizes in `browser` with Alter's authorization URL and returns the code and its PKCE.
async fn authorize(peer: &OAuthPeer, browser: &Client, pages: Pages) -> (String, Pkce) {
    let pkce = Pkce::new().unwrap();
    let state = "state-1";
    let url = authorization_url(
        &endpoints(peer),
        peer.client_id(),
        REDIRECT_URI,
        &["openid", "files.read"],
        state,
        Some(&pkce),
    )
    .unwrap();
    let authorization = peer.authorize(browser, url, pages).await;
    assert!(
        authorization.redirect.as_str().starts_with(REDIRECT_URI),
        "{}",
        authorization.redirect
    );
    assert_eq!(authorization.param("state").as_deref(), Some(state));
    assert_eq!(authorization.param("iss").as_deref(), Some(peer.issuer()));
    let code = authorization
        .param("code")
        .unwrap_or_else(|| panic!("no code in {}", authorization.redirect));
    (code, pkce)
}

async fn introspect_active(peer: &OAuthPeer, token: &SecretString) -> bool {
    let response = Client::new()
        .post(peer.url("/token/introspection"))
        .basic_auth(peer.client_id(), Some(peer.client_secret()))
        .form(&[("token", token.expose_secret())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["active"].as_bool().unwrap()
}

fn refresh_token(tokens: &TokenSet) -> &SecretString {
    tokens.refresh_token.as_ref().expect("a refresh token")
}

/// Alter's side of the peer's client: its endpoints, id and secret, and the OAuth client.
struct App<'a> {
    peer: &'a OAuthPeer,
    provider: ProviderEndpoints,
    client: OAuthClient,
    secret: SecretString,
}

impl<'a> App<'a> {
    fn new(peer: &'a OAuthPeer) -> App<'a> {
        App {
            peer,
            provider: endpoints(peer),
            client: OAuthClient::new().unwrap(),
            secret: SecretString::from(peer.client_secret()),
        }
    }

    async fn exchange(&self, code: &str, verifier: &str) -> Result<TokenSet, OAuthError> {
        self.exchange_with(&self.secret, code, verifier).await
    }

    async fn exchange_with(
        &self,
        secret: &SecretString,
        code: &str,
        verifier: &str,
    ) -> Result<TokenSet, OAuthError> {
        self.client
            .exchange_code(
                &self.provider,
                self.peer.client_id(),
                secret,
                REDIRECT_URI,
                code,
                Some(verifier),
            )
            .await
    }

    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, OAuthError> {
        self.refresh_at(&self.provider, tokens).await
    }

    async fn refresh_at(
        &self,
        provider: &ProviderEndpoints,
        tokens: &TokenSet,
    ) -> Result<TokenSet, OAuthError> {
        self.client
            .refresh(
                provider,
                self.peer.client_id(),
                &self.secret,
                refresh_token(tokens),
            )
            .await
    }

    async fn revoke_at(
        &self,
        provider: &ProviderEndpoints,
        token: &SecretString,
        hint: Option<TokenTypeHint>,
    ) -> bool {
        self.client
            .revoke(provider, self.peer.client_id(), &self.secret, token, hint)
            .await
            .unwrap()
    }

    async fn account(&self, provider: &ProviderEndpoints, tokens: &TokenSet) -> Option<String> {
        self.client
            .account_identifier(provider, tokens)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn oauth_client_exchanges_refreshes_with_rotation_and_revokes() {
    let peer = OAuthPeer::start(PeerOptions::new(REDIRECT_URI)).await;
    let app = App::new(&peer);
    let browser = peer.browser();
    let (code, pkce) = authorize(&peer, &browser, Pages::LoginAndConsent).await;

    // Refusals that leave the code usable: a wrong secret, then a wrong verifier.
    let wrong_secret = app
        .exchange_with(
            &SecretString::from("not-the-secret"),
            &code,
            pkce.verifier(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(wrong_secret, OAuthError::InvalidClient(_)),
        "{wrong_secret:?}"
    );
    assert!(!wrong_secret.to_string().contains("not-the-secret"));
    let other = Pkce::new().unwrap();
    let wrong_verifier = app.exchange(&code, other.verifier()).await.unwrap_err();
    assert_eq!(wrong_verifier, OAuthError::InvalidGrant);

    let tokens = app.exchange(&code, pkce.verifier()).await.unwrap();
    assert_eq!(tokens.token_type.as_deref(), Some("Bearer"));
    assert_eq!(tokens.expires_in, Some(60));
    assert_eq!(
        tokens.scope.as_deref().unwrap(),
        ["openid".to_owned(), "files.read".to_owned()]
    );
    assert!(tokens.id_token.is_some());
    assert!(introspect_active(&peer, &tokens.access_token).await);

    // The account identifier: the ID token's claim, and userinfo (`/me`) at a pointer.
    assert_eq!(
        app.account(&app.provider, &tokens).await.as_deref(),
        Some("alice")
    );
    let userinfo = ProviderEndpoints {
        account: AccountSource::Userinfo {
            url: peer.url("/me"),
            pointer: "/sub".to_owned(),
        },
        ..app.provider.clone()
    };
    assert_eq!(
        app.account(&userinfo, &tokens).await.as_deref(),
        Some("alice")
    );

    // Rotation: a new refresh token, and the old one is dead.
    let refreshed = app.refresh(&tokens).await.unwrap();
    assert_ne!(
        refresh_token(&refreshed).expose_secret(),
        refresh_token(&tokens).expose_secret()
    );
    assert!(introspect_active(&peer, &refreshed.access_token).await);
    assert_eq!(
        app.refresh(&tokens).await.unwrap_err(),
        OAuthError::InvalidGrant
    );

    // The reuse revoked the grant; connect again (signed in already) and revoke that one.
    let (code, pkce) = authorize(&peer, &browser, Pages::Consent).await;
    let current = app.exchange(&code, pkce.verifier()).await.unwrap();
    let revoked = app
        .revoke_at(
            &app.provider,
            refresh_token(&current),
            Some(TokenTypeHint::RefreshToken),
        )
        .await;
    assert!(revoked);
    assert!(!introspect_active(&peer, &current.access_token).await);
    assert_eq!(
        app.refresh(&current).await.unwrap_err(),
        OAuthError::InvalidGrant
    );

    // No revocation endpoint: nothing is sent.
    let without = ProviderEndpoints {
        revoke_url: None,
        ..app.provider.clone()
    };
    assert!(!app.revoke_at(&without, &current.access_token, None).await);

    // One token request per call, refused ones included.
    assert_eq!(
        peer.stats().await,
        PeerStats {
            token_requests: TokenRequests {
                authorization_code: 4,
                refresh_token: 3,
                other: 0,
            },
            revocations: 1,
            introspections: 3,
            resource_calls: 0,
        }
    );
}

#[tokio::test]
async fn oauth_client_refreshes_a_reusable_refresh_token() {
    let peer = OAuthPeer::start(PeerOptions {
        rotate_refresh: false,
        ..PeerOptions::new(REDIRECT_URI)
    })
    .await;
    let app = App::new(&peer);
    let (code, pkce) = authorize(&peer, &peer.browser(), Pages::LoginAndConsent).await;
    let tokens = app.exchange(&code, pkce.verifier()).await.unwrap();
    for _ in 0..2 {
        let refreshed = app.refresh(&tokens).await.unwrap();
        // The provider may repeat the refresh token or leave it out; never a new one.
        if let Some(again) = &refreshed.refresh_token {
            assert_eq!(
                again.expose_secret(),
                refresh_token(&tokens).expose_secret()
            );
        }
        assert!(introspect_active(&peer, &refreshed.access_token).await);
    }
    assert_eq!(peer.stats().await.token_requests.refresh_token, 2);

    // A provider that cannot be reached is a transient failure.
    let unreachable = ProviderEndpoints {
        token_url: "http://127.0.0.1:9/token".to_owned(),
        ..app.provider.clone()
    };
    let error = app.refresh_at(&unreachable, &tokens).await.unwrap_err();
    assert!(matches!(error, OAuthError::Transient(_)), "{error:?}");
}
