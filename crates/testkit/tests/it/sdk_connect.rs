//! The Rust SDK's Connect calls against the real server and the real OAuth peer: the user is
//! played over HTTP while the SDK polls, as an application waiting on its user would.

use std::time::Duration;

use alter_sdk::{
    App, ConnectResult, ConnectSessionOptions, CreateAgent, Error, GrantPolicy, ProviderRequest,
};
use alter_testkit::oauth_peer::{OAuthPeer, Pages, PeerOptions};
use alter_testkit::{TestServer, on_every_engine};
use reqwest::StatusCode;
use serde_json::json;

use crate::connect::{PROVIDER, Setup, configure, revoke_refresh_token_at_peer, setup};

const WAIT: Duration = Duration::from_secs(30);
const INTERVAL: Duration = Duration::from_millis(50);

/// What the user does on the provider's pages.
#[derive(Clone, Copy, PartialEq)]
enum User {
    Consents,
    Denies,
}

/// The user at the Connect page and the provider's pages, back at the callback.
async fn play(s: &Setup, connect_url: &str, user: User) {
    let browser = s.peer.browser();
    let (authorize, ours) = s.pick(connect_url).await;
    let redirect = match user {
        User::Consents => {
            s.peer
                .authorize(&browser, authorize, Pages::LoginAndConsent)
                .await
                .redirect
        }
        User::Denies => s.peer.deny(&browser, authorize).await,
    };
    let landed = ours.get(redirect.as_str()).send().await.unwrap();
    assert_eq!(landed.status(), StatusCode::OK);
}

/// A session made with `options`, the user playing `user` while the SDK polls.
async fn connect_as(
    s: &Setup,
    app: &App,
    options: ConnectSessionOptions,
    user: User,
) -> Result<Vec<ConnectResult>, Error> {
    let session = app.create_connect_session(options).await.unwrap();
    assert!(session.single_provider);
    let (polled, ()) = tokio::join!(
        app.poll_connect_session(&session.session_token, WAIT, INTERVAL),
        play(s, &session.connect_url, user),
    );
    polled
}

fn acme() -> ConnectSessionOptions {
    ConnectSessionOptions::new().allowed_providers([PROVIDER])
}

#[tokio::test]
async fn the_sdk_creates_a_session_and_polls_it_to_the_grant() {
    on_every_engine(|engine| async move {
        let s = setup(TestServer::start(engine).await, true).await;
        let app = s.server.app(&s.app.key.api_key);
        let options = acme().grant_policy(GrantPolicy::new().max_ttl_seconds(86_400));
        let results = connect_as(&s, &app, options, User::Consents).await.unwrap();
        let [grant] = results.as_slice() else {
            panic!("one grant: {results:?}");
        };
        assert_eq!(grant.provider_id, PROVIDER);
        assert_eq!(grant.account_identifier.as_deref(), Some("alice"));
        assert_eq!(grant.operation, "creation");
        assert_eq!(grant.scopes, ["files.read", "openid"]);
        assert!(grant.failed_grants.is_empty() && grant.delegation.is_none());
        assert!(grant.grant_policy.as_ref().unwrap().created_at.is_some());

        // The grant works: the SDK calls the provider with it.
        let called = app
            .request(ProviderRequest::get(s.peer.url("/_peer/resource")).grant_id(&grant.grant_id))
            .await
            .unwrap();
        assert_eq!(called.status(), StatusCode::OK);

        // The listing shows the one grant.
        let listed = app
            .list_grants(alter_sdk::ListGrants::new().provider_id(PROVIDER))
            .await
            .unwrap();
        assert_eq!(listed.total, 1);
    })
    .await;
}

#[tokio::test]
async fn a_denied_unknown_or_abandoned_session_is_a_typed_error() {
    on_every_engine(|engine| async move {
        let s = setup(TestServer::start(engine).await, true).await;
        let app = s.server.app(&s.app.key.api_key);

        let denied = connect_as(&s, &app, acme(), User::Denies)
            .await
            .unwrap_err();
        assert_eq!(denied.exception_name(), "ConnectDeniedError", "{denied}");
        assert!(matches!(denied, Error::ConnectDenied(_)) && denied.is_connect_flow());
        assert_eq!(denied.code(), Some("connect_denied"));

        // An unknown token (or another app's) is expired from the first poll: a flow error.
        let unknown = app
            .poll_connect_session("alter_cs_unknown", WAIT, INTERVAL)
            .await
            .unwrap_err();
        assert!(matches!(unknown, Error::ConnectFlow(_)), "{unknown}");
        let other = s.server.new_app("b").await;
        let mine = app.create_connect_session(acme()).await.unwrap();
        let foreign = s
            .server
            .app(&other.key.api_key)
            .poll_connect_session(&mine.session_token, WAIT, INTERVAL)
            .await
            .unwrap_err();
        assert!(matches!(foreign, Error::ConnectFlow(_)), "{foreign}");

        // Nobody comes: the deadline passes.
        let started = std::time::Instant::now();
        let waited = app
            .poll_connect_session(
                &mine.session_token,
                Duration::from_millis(300),
                Duration::from_millis(100),
            )
            .await
            .unwrap_err();
        assert!(matches!(waited, Error::ConnectTimeout(_)), "{waited}");
        assert_eq!(
            waited.info().str_field("reason"),
            Some("poll_deadline_elapsed")
        );
        assert!(started.elapsed() < Duration::from_secs(5));

        // The session expires while the SDK waits.
        let (expired, ()) = tokio::join!(
            app.poll_connect_session(&mine.session_token, WAIT, INTERVAL),
            async {
                // In steps shorter than the signing window: a poll signed just before a step
                // still arrives within it.
                for _ in 0..3 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    s.server.advance(250);
                }
            },
        );
        let expired = expired.unwrap_err();
        assert!(matches!(expired, Error::ConnectTimeout(_)), "{expired}");
        assert_eq!(expired.info().str_field("reason"), Some("session_expired"));

        // Bad input is refused before any request.
        for bad in [
            app.poll_connect_session(" ", WAIT, INTERVAL).await,
            app.poll_connect_session("t", Duration::ZERO, INTERVAL)
                .await,
        ] {
            assert!(matches!(bad, Err(Error::AlterValue(_))), "{bad:?}");
        }
        let bad = app
            .create_connect_session(acme().repair_grant_id("not-a-uuid"))
            .await
            .unwrap_err();
        assert!(matches!(bad, Error::AlterValue(_)), "{bad}");
    })
    .await;
}

#[tokio::test]
async fn a_revoked_credential_is_repaired_from_its_error() {
    on_every_engine(|engine| async move {
        let s = setup(TestServer::start(engine).await, false).await;
        let app = s.server.app(&s.app.key.api_key);
        let results = connect_as(&s, &app, acme(), User::Consents).await.unwrap();
        let grant_id = results[0].grant_id.clone();

        revoke_refresh_token_at_peer(&s).await;
        s.server.advance(3600);
        let call =
            || app.request(ProviderRequest::get(s.peer.url("/_peer/resource")).provider(PROVIDER));
        let refused = call().await.unwrap_err();
        assert!(matches!(refused, Error::CredentialRevoked(_)), "{refused}");

        let session = app
            .create_connect_session_for_error(&refused, ConnectSessionOptions::new())
            .await
            .unwrap();
        let (polled, ()) = tokio::join!(
            app.poll_connect_session(&session.session_token, WAIT, INTERVAL),
            play(&s, &session.connect_url, User::Consents),
        );
        let repaired = polled.unwrap();
        assert_eq!(repaired[0].grant_id, grant_id);
        assert_eq!(repaired[0].operation, "reauth");
        assert_eq!(call().await.unwrap().status(), StatusCode::OK);

        // An error that names no provider, or that no Connect session fixes, is refused.
        let not_found = app
            .request(
                ProviderRequest::get(s.peer.url("/_peer/resource"))
                    .grant_id(uuid::Uuid::new_v4().to_string()),
            )
            .await
            .unwrap_err();
        assert!(not_found.is_grant_not_found(), "{not_found}");
        for error in [not_found, Error::value("x")] {
            let refused = app
                .create_connect_session_for_error(&error, ConnectSessionOptions::new())
                .await
                .unwrap_err();
            assert!(matches!(refused, Error::AlterValue(_)), "{refused}");
        }
    })
    .await;
}

#[tokio::test]
async fn an_agent_without_a_delegation_gets_one_through_a_session_made_from_its_error() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let peer = OAuthPeer::start(PeerOptions::new(format!(
            "{}/oauth/callback",
            server.base_url()
        )))
        .await;
        configure(&server, &world.app, &peer).await;
        let s = Setup {
            server,
            app: world.app.clone(),
            peer,
        };
        let app = s.server.app(&s.app.key.api_key);
        let alice = world.idp.token("alice", json!({}));
        let created = app
            .agents()
            .create(CreateAgent::new("assistant", json!({})))
            .await
            .unwrap();
        let agent_id = created.agent.id;
        let agent = s.server.agent(&created.api_key.unwrap());
        let resource = || {
            ProviderRequest::get(s.peer.url("/_peer/resource"))
                .provider(PROVIDER)
                .user_token(&alice)
        };

        // The app's own miss names the provider: a plain session for it.
        let missing = app.request(resource()).await.unwrap_err();
        assert!(missing.is_grant_not_found(), "{missing}");
        let session = app
            .create_connect_session_for_error(&missing, ConnectSessionOptions::new())
            .await
            .unwrap();
        assert!(session.single_provider);

        // The agent's miss names the agent too: the session delegates to it.
        let missing = agent.request(resource()).await.unwrap_err();
        assert!(matches!(missing, Error::NoDelegatedGrant(_)), "{missing}");
        assert_eq!(
            missing.info().str_field("agent_id"),
            Some(agent_id.as_str())
        );
        let session = agent
            .create_connect_session_for_error(
                &missing,
                ConnectSessionOptions::new().user_token(&alice),
            )
            .await
            .unwrap();
        let (polled, ()) = tokio::join!(
            agent.poll_connect_session(&session.session_token, WAIT, INTERVAL),
            play(&s, &session.connect_url, User::Consents),
        );
        let grants = polled.unwrap();
        let delegation = grants[0].delegation.as_ref().expect("a delegation");
        assert_eq!(delegation.agent_id, agent_id);
        let listed = agent
            .list_grants(alter_sdk::ListGrants::new().provider_id(PROVIDER))
            .await
            .unwrap();
        assert_eq!(listed.total, 1, "{listed:?}");

        // A NoDelegatedGrantError without its agent cannot be turned into a session.
        let mut info = missing.info().clone();
        info.fields.remove("agent_id");
        let refused = agent
            .create_connect_session_for_error(
                &Error::NoDelegatedGrant(info),
                ConnectSessionOptions::new(),
            )
            .await
            .unwrap_err();
        assert!(matches!(refused, Error::AlterValue(_)), "{refused}");
    })
    .await;
}
