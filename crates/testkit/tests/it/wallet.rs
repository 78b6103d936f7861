//! Browser sessions and the Wallet's forms: a session signs in its own kind and app only,
//! until it expires or is signed out; a form without the session's CSRF token, or posted
//! cross-site, is refused and changes nothing.

use alter_core::Error;
use alter_core::approvals::ApprovalStatus;
use alter_core::browser_sessions::{BrowserSessionKind, csrf_token};
use alter_core::delegations::DelegateOptions;
use alter_core::ids::{AgentId, AppId, ApprovalId, GrantId};
use alter_core::subject::Subject;
use alter_core::wallet::{
    Extension, MAX_PENDING_SIGN_INS, SIGN_IN_BURST_PER_ADDRESS, SignInAdmission,
};
use alter_crypto::ExposeSecret;
use alter_proto::admin::CreateSecretRequest;
use alter_proto::policies::{CreateRuleRequest, RuleTargetBody};
use alter_sdk::{CreateAgent, GrantPolicy, Principal, ProviderRequest, ProxyOutcome};
use alter_testkit::upstream::Upstream;
use alter_testkit::{TestServer, on_every_engine};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};
use serde_json::json;

#[tokio::test]
async fn a_wallet_session_signs_in_its_own_app_until_it_ends() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("wallet").await;
        let other = server.world("other").await;
        let app = AppId::parse(&world.app.info.id).unwrap();
        let other_app = AppId::parse(&other.app.info.id).unwrap();
        let vault = server.vault();
        let alice = vault
            .sign_in(app, &world.idp.token("alice", json!({})))
            .await
            .unwrap();
        let subject = alice.user.id.to_string();
        let opened = vault
            .open_browser_session(BrowserSessionKind::Wallet, Some(app), &subject, 3600)
            .await
            .unwrap();
        let token = opened.token.expose_secret().to_owned();
        assert!(
            !format!("{opened:?}").contains(&token),
            "Debug shows no token"
        );

        let session = vault
            .browser_session(BrowserSessionKind::Wallet, &token)
            .await
            .unwrap()
            .expect("live");
        let user = vault.wallet_user(&session, app).await.unwrap().unwrap();
        assert_eq!(user.user.id, alice.user.id);
        assert!(
            vault
                .wallet_user(&session, other_app)
                .await
                .unwrap()
                .is_none()
        );
        for (kind, presented) in [
            (BrowserSessionKind::Portal, token.as_str()),
            (BrowserSessionKind::Wallet, "alter_bs_forged"),
            (BrowserSessionKind::Wallet, ""),
        ] {
            assert!(
                vault
                    .browser_session(kind, presented)
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        assert!(
            vault
                .open_browser_session(BrowserSessionKind::Wallet, None, &subject, 3600)
                .await
                .is_err(),
            "a wallet session belongs to an app"
        );
        assert!(
            vault
                .open_browser_session(BrowserSessionKind::Portal, None, "admin", 10)
                .await
                .is_err(),
            "too short"
        );

        // Over HTTP: the cookie opens its app's wallet, and only there.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let base = server.base_url();
        let cookie = format!("alter_wallet={token}");
        let home = http
            .get(format!("{base}/wallet/{app}"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(home.status(), StatusCode::OK);
        let page = home.text().await.unwrap();
        let csrf = csrf_token(&token);
        assert!(page.contains(&csrf));
        let elsewhere = http
            .get(format!("{base}/wallet/{other_app}"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(elsewhere.status(), StatusCode::SEE_OTHER);
        assert!(
            elsewhere.headers()[LOCATION]
                .to_str()
                .unwrap()
                .contains(&format!("/wallet/{other_app}/sign-in"))
        );

        // Sign-out is a form like any other: refused without the token or cross-site.
        let sign_out = format!("{base}/wallet/{app}/sign-out");
        let post = |form: Vec<(&'static str, String)>, site: &'static str| {
            http.post(&sign_out)
                .header(COOKIE, &cookie)
                .header("sec-fetch-site", site)
                .form(&form)
                .send()
        };
        for (form, site) in [
            (vec![], "same-origin"),
            (vec![("csrf", "0".repeat(64))], "same-origin"),
            (vec![("csrf", csrf_token("alter_bs_other"))], "same-origin"),
            (vec![("csrf", csrf.clone())], "cross-site"),
            (
                vec![("csrf", csrf.clone()), ("csrf", csrf.clone())],
                "same-origin",
            ),
        ] {
            let refused = post(form, site).await.unwrap();
            assert_eq!(refused.status(), StatusCode::FORBIDDEN);
            assert!(
                vault
                    .browser_session(BrowserSessionKind::Wallet, &token)
                    .await
                    .unwrap()
                    .is_some(),
                "a refused form changes nothing"
            );
        }
        let done = post(vec![("csrf", csrf.clone())], "same-origin")
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::OK);
        assert!(
            vault
                .browser_session(BrowserSessionKind::Wallet, &token)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            !vault
                .close_browser_session(BrowserSessionKind::Wallet, &token)
                .await
                .unwrap(),
            "signed out once"
        );

        // A session ends at its expiry, whatever happens.
        let short = vault
            .open_browser_session(BrowserSessionKind::Wallet, Some(app), &subject, 60)
            .await
            .unwrap();
        let short = short.token.expose_secret().to_owned();
        server.advance(61);
        assert!(
            vault
                .browser_session(BrowserSessionKind::Wallet, &short)
                .await
                .unwrap()
                .is_none()
        );
    })
    .await;
}

/// Alice, signed in to `world`'s app, holding a grant of its secret that ends in a day
/// ("work") and a sibling minted from it with no end of its own ("personal"): alice, and the
/// two grants.
async fn a_grant_and_its_minted_sibling(
    server: &TestServer,
    world: &alter_testkit::World,
) -> (alter_core::identity::SignedInUser, GrantId, GrantId) {
    let app_id = AppId::parse(&world.app.info.id).unwrap();
    let token = world.idp.token("alice", json!({}));
    let alice = server.vault().sign_in(app_id, &token).await.unwrap();
    let app = server.app(&world.app.key.api_key);
    let source = app
        .create_managed_secret_grant(
            &world.secret.id,
            Principal::user(&token, "work"),
            Some(GrantPolicy::new().default_ttl_seconds(24 * 3600)),
        )
        .await
        .unwrap();
    let minted = app
        .mint_grant(&source.grant_id, "personal", None)
        .await
        .unwrap();
    let id = |text: &str| GrantId::parse(text).unwrap();
    (alice, id(&source.grant_id), id(&minted.grant_id))
}

/// A grant's extension stops at an absolute end: extending again and again never goes past its
/// creation plus the operator's maximum, and a minted sibling never outlives its source.
#[tokio::test]
async fn an_extension_stops_at_an_absolute_end() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("extend").await;
        let vault = server.vault();
        let (alice, source_id, sibling_id) = a_grant_and_its_minted_sibling(&server, &world).await;
        let subject = Subject::User {
            app: alice.user.app_id,
            user: &alice,
        };
        let day = 24 * 3600;
        let grant = vault.user_grant(&subject, source_id).await.unwrap();
        let max = grant
            .created_at
            .plus_seconds(vault.settings().max_grant_extension_seconds);
        assert_eq!(
            vault.grant_extension(&alice, &grant).await.unwrap(),
            Extension::UpTo(max)
        );

        // A minted sibling with no end of its own ends with its source, and no later.
        let sibling = vault.user_grant(&subject, sibling_id).await.unwrap();
        assert_eq!(sibling.expires_at, grant.expires_at);
        assert_eq!(
            vault.grant_extension(&alice, &sibling).await.unwrap(),
            Extension::No
        );
        let past_source = grant.expires_at.unwrap().plus_seconds(3600);
        assert!(matches!(
            vault.extend_grant(&subject, sibling_id, past_source).await,
            Err(Error::InvalidGrantLifetime(_))
        ));
        // Once the source lasts longer, the sibling may follow it up to its end.
        let source_end = grant.expires_at.unwrap().plus_seconds(2 * day);
        vault
            .extend_grant(&subject, source_id, source_end)
            .await
            .unwrap();
        assert_eq!(
            vault.grant_extension(&alice, &sibling).await.unwrap(),
            Extension::UpTo(source_end)
        );

        // At its maximum, and 89 days later still: extending again gains nothing.
        vault.extend_grant(&subject, source_id, max).await.unwrap();
        server.advance(89 * day);
        let grant = vault.user_grant(&subject, source_id).await.unwrap();
        assert_eq!(grant.expires_at, Some(max));
        assert_eq!(
            vault.grant_extension(&alice, &grant).await.unwrap(),
            Extension::No
        );
        let later = server.now().plus_seconds(30 * day);
        assert!(matches!(
            vault.extend_grant(&subject, source_id, later).await,
            Err(Error::InvalidGrantLifetime(_))
        ));
        assert_eq!(
            vault
                .user_grant(&subject, source_id)
                .await
                .unwrap()
                .expires_at,
            Some(max),
            "a refused extension changes nothing"
        );
        server.stop().await;
    })
    .await;
}

/// The migration's backfill of `grants.minted_from` from the `grant.minted` events (0021).
fn minted_from_backfill(engine: alter_testkit::Engine) -> &'static str {
    let migration = match engine {
        alter_testkit::Engine::Sqlite => {
            include_str!("../../../store/migrations/sqlite/0021_minted_from.sql")
        }
        alter_testkit::Engine::Postgres => {
            include_str!("../../../store/migrations/postgres/0021_minted_from.sql")
        }
    };
    let start = migration.find("UPDATE grants").expect("the backfill");
    migration[start..].trim().trim_end_matches(';')
}

/// A minted grant's source is kept in its row (`minted_from`, written with it), and its
/// lifetime follows that source: extended, it never passes the source's end; the source
/// revoked, it is extended no more. The migration fills the column for grants minted before.
#[tokio::test]
async fn a_minted_grant_follows_the_source_its_row_names() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("minted").await;
        let vault = server.vault();
        let (alice, source_id, minted_id) = a_grant_and_its_minted_sibling(&server, &world).await;
        let subject = Subject::User {
            app: alice.user.app_id,
            user: &alice,
        };
        let day = 24 * 3600;
        let source_end = server.now().plus_seconds(3 * day);
        vault
            .extend_grant(&subject, source_id, source_end)
            .await
            .unwrap();
        let grant = vault.user_grant(&subject, minted_id).await.unwrap();
        assert_eq!(
            vault.grant_extension(&alice, &grant).await.unwrap(),
            Extension::UpTo(source_end)
        );
        assert!(matches!(
            vault
                .extend_grant(&subject, minted_id, source_end.plus_seconds(1))
                .await,
            Err(Error::InvalidGrantLifetime(_))
        ));

        // The row is what is read: without it the grant is bounded by its own limits only;
        // the migration's backfill finds the source again from the `grant.minted` event.
        let db = server.database();
        let cleared = db
            .execute(
                "UPDATE grants SET minted_from = NULL WHERE id = $1",
                &[&minted_id.to_string()],
            )
            .await
            .unwrap();
        assert_eq!(cleared, 1);
        let max = grant
            .created_at
            .plus_seconds(vault.settings().max_grant_extension_seconds);
        assert_eq!(
            vault.grant_extension(&alice, &grant).await.unwrap(),
            Extension::UpTo(max)
        );
        let filled = db.execute(minted_from_backfill(engine), &[]).await.unwrap();
        assert!(filled >= 1, "{filled}");
        assert_eq!(
            vault.grant_extension(&alice, &grant).await.unwrap(),
            Extension::UpTo(source_end)
        );
        vault
            .extend_grant(&subject, minted_id, source_end)
            .await
            .unwrap();

        // The source revoked: the minted grant keeps its end, and is extended no more.
        vault
            .revoke_grant(&subject, source_id, None, None)
            .await
            .unwrap();
        let grant = vault.user_grant(&subject, minted_id).await.unwrap();
        assert_eq!(grant.expires_at, Some(source_end));
        assert_eq!(
            vault.grant_extension(&alice, &grant).await.unwrap(),
            Extension::No
        );
        assert!(matches!(
            vault
                .extend_grant(&subject, minted_id, source_end.plus_seconds(60))
                .await,
            Err(Error::InvalidGrantLifetime(_))
        ));
        server.stop().await;
    })
    .await;
}

/// How many sign-in sessions the app has stored (counted by an update that changes nothing).
async fn stored_sign_ins(server: &TestServer, app: AppId) -> u64 {
    server
        .database()
        .execute(
            "UPDATE auth_sessions SET status = status WHERE app_id = $1",
            &[&app.to_string()],
        )
        .await
        .unwrap()
}

/// One client address may start `SIGN_IN_BURST_PER_ADDRESS` Wallet sign-ins at once, and
/// reach the sign-in callback as often; past that, `429` with `Retry-After`, and nothing is
/// stored nor claimed, until the address's share comes back.
#[tokio::test]
async fn sign_ins_from_one_address_are_throttled() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let (_peer, app, _) = crate::signin::signin_world(&server, "throttled").await;
        let app_id = AppId::parse(&app.info.id).unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let base = server.base_url().to_owned();
        let start = || {
            http.post(format!("{base}/wallet/{app_id}/sign-in"))
                .header("sec-fetch-site", "same-origin")
                .form(&[("next", "")])
                .send()
        };
        let callback = |query: String| http.get(format!("{base}/auth/callback?{query}")).send();
        let retry_after = |r: &reqwest::Response| -> u64 {
            r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap()
        };

        // A real sign-in under way, and its state.
        let started = start().await.unwrap();
        assert_eq!(started.status(), StatusCode::SEE_OTHER);
        let auth_url = reqwest::Url::parse(started.headers()[LOCATION].to_str().unwrap()).unwrap();
        let state = auth_url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .unwrap();

        // Callbacks: forged ones, each refused, use up the address's share.
        for _ in 0..SIGN_IN_BURST_PER_ADDRESS {
            let forged = callback("state=forged&code=x".into()).await.unwrap();
            assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
        }
        let throttled = callback(format!("state={state}&code=bogus")).await.unwrap();
        assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!((1..=60).contains(&retry_after(&throttled)));
        assert!(
            throttled
                .text()
                .await
                .unwrap()
                .contains("Too many sign-ins")
        );

        // Starts: the rest of the share, then refused, storing nothing.
        for _ in 1..SIGN_IN_BURST_PER_ADDRESS {
            assert_eq!(start().await.unwrap().status(), StatusCode::SEE_OTHER);
        }
        let stored = stored_sign_ins(&server, app_id).await;
        assert_eq!(stored, u64::from(SIGN_IN_BURST_PER_ADDRESS));
        let refused = start().await.unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.headers().get(LOCATION).is_none());
        assert!(refused.headers().get("set-cookie").is_none());
        let wait = retry_after(&refused);
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(refused.text().await.unwrap().contains("Too many sign-ins"));
        assert_eq!(stored_sign_ins(&server, app_id).await, stored);

        // Once the share comes back: the throttled callback had claimed nothing, so its
        // state is still good (the made-up code then fails at the IdP), and starts start.
        server.advance(wait as i64);
        let later = callback(format!("state={state}&code=bogus")).await.unwrap();
        assert_eq!(later.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(start().await.unwrap().status(), StatusCode::SEE_OTHER);
        server.stop().await;
    })
    .await;
}

/// Anyone may start a Wallet sign-in, and each start stores a sign-in session: past
/// `MAX_PENDING_SIGN_INS` pending in an app, a start is refused (429) and stores nothing, until
/// some end.
#[tokio::test]
async fn wallet_sign_ins_under_way_are_capped_per_app() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let (_peer, app, _) = crate::signin::signin_world(&server, "capped").await;
        let app_id = AppId::parse(&app.info.id).unwrap();
        let vault = server.vault();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let start = || {
            http.post(format!("{}/wallet/{app_id}/sign-in", server.base_url()))
                .header("sec-fetch-site", "same-origin")
                .form(&[("next", "")])
                .send()
        };
        assert_eq!(start().await.unwrap().status(), StatusCode::SEE_OTHER);
        for _ in 1..MAX_PENDING_SIGN_INS {
            vault.start_sign_in(app_id, "verifier").await.unwrap();
        }
        let refused = start().await.unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.headers().get(LOCATION).is_none());
        assert_eq!(
            vault.wallet_sign_in_allowed(app_id, None).await.unwrap(),
            SignInAdmission::TooManyUnderWay
        );
        // Once they expire, sign-ins start again.
        server.advance(alter_core::signin::SESSION_LIFETIME_SECONDS + 1);
        assert_eq!(start().await.unwrap().status(), StatusCode::SEE_OTHER);
        server.stop().await;
    })
    .await;
}

/// A managed secret, a grant of it held by `user`, and an agent (with its approval `policy`)
/// holding the user's delegation of it: the agent's key and the delegation.
async fn delegated_to_an_agent(
    server: &TestServer,
    world: &alter_testkit::World,
    user: &alter_core::identity::SignedInUser,
    user_token: &str,
    agent: &str,
    policy: Option<serde_json::Value>,
) -> (String, GrantId) {
    let secret = server
        .admin()
        .create_secret(
            &world.app.info.id,
            &CreateSecretRequest {
                name: format!("Payments for {agent}"),
                secret_type: "bearer".into(),
                value: "sk_live_walletHoldSecret0123456789".into(),
                allowed_hosts: vec!["127.0.0.1".into()],
                principals: ["user", "agent"].map(String::from).to_vec(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let app = server.app(&world.app.key.api_key);
    let created = app
        .agents()
        .create(CreateAgent {
            policy,
            ..CreateAgent::new(agent, json!({"managed_secret_slugs": [secret.slug]}))
        })
        .await
        .unwrap();
    let grant = app
        .create_managed_secret_grant(&secret.id, Principal::user(user_token, "pay"), None)
        .await
        .unwrap()
        .grant_id;
    let subject = Subject::User {
        app: user.user.app_id,
        user,
    };
    // The user delegates their grant to the agent themselves: the delegation is theirs.
    let delegation = server
        .vault()
        .delegate(
            &subject,
            GrantId::parse(&grant).unwrap(),
            AgentId::parse(&created.agent.id).unwrap(),
            DelegateOptions {
                ttl_seconds: None,
                delegable: None,
                scope_constraint: None,
            },
        )
        .await
        .unwrap();
    assert!(
        server
            .vault()
            .user_grant(&subject, delegation.id)
            .await
            .is_ok()
    );
    (created.api_key.unwrap(), delegation.id)
}

/// The agent's proxied call with the delegation, which must be held: its approval.
async fn held_call(
    server: &TestServer,
    upstream: &Upstream,
    agent_key: &str,
    delegation: GrantId,
) -> ApprovalId {
    let outcome = server
        .agent(agent_key)
        .proxy_request(
            ProviderRequest::post(format!("{}/v1/refunds", upstream.url()))
                .grant_id(delegation.to_string())
                .json(json!({"amount": 1}))
                .reason("refund order 9"),
        )
        .await
        .unwrap();
    let ProxyOutcome::Pending(pending) = outcome else {
        panic!("the call was not held: {outcome:?}");
    };
    ApprovalId::parse(&pending.approval_id).unwrap()
}

/// Whether `user` sees the approval in the Wallet (listed and shown).
async fn sees(
    vault: &alter_core::vault::Vault,
    user: &alter_core::identity::SignedInUser,
    id: ApprovalId,
) -> bool {
    let app = user.user.app_id;
    let listed = vault
        .user_approvals(app, user, None)
        .await
        .unwrap()
        .iter()
        .any(|a| a.id == id);
    let shown = vault.user_approval(app, user, id).await;
    assert_eq!(listed, shown.is_ok(), "{shown:?}");
    listed
}

/// A call an operator's `require_approval` rule with no approvers held is the operators' to
/// decide (any operator), even on the user's own delegation: the Wallet neither lists it nor
/// lets the user decide it, and it stays pending.
#[tokio::test]
async fn an_operators_hold_is_not_the_users_to_decide() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let upstream = Upstream::start().await;
        let world = server.world("holds").await;
        let app_id = AppId::parse(&world.app.info.id).unwrap();
        let vault = server.vault();
        let token = world.idp.token("alice", json!({}));
        let alice = vault.sign_in(app_id, &token).await.unwrap();
        let subject = Subject::User {
            app: app_id,
            user: &alice,
        };
        let (key, delegation) =
            delegated_to_an_agent(&server, &world, &alice, &token, "helper", None).await;
        server
            .admin()
            .add_rule(
                &world.app.info.id,
                &CreateRuleRequest {
                    target: RuleTargetBody {
                        kind: "app".into(),
                        id: None,
                    },
                    kind: "require_approval".into(),
                    effect: None,
                    mode: None,
                    body: json!({"approvers": []}),
                    description: None,
                },
            )
            .await
            .unwrap();
        let id = held_call(&server, &upstream, &key, delegation).await;

        assert!(!sees(vault, &alice, id).await);
        assert!(matches!(
            vault.decide_user_approval(&subject, id, true, None).await,
            Err(Error::NotFound(_))
        ));
        assert_eq!(
            vault.get_approval(app_id, id).await.unwrap().status,
            ApprovalStatus::Pending
        );
        server.stop().await;
    })
    .await;
}

/// An agent's own approval setting decides who approves its held calls: with approvers named,
/// those (by IdP subject or app user id), whoever holds the grant — the grant's holder neither
/// sees nor decides them; with none named, the grant's holder, and nobody else.
#[tokio::test]
async fn an_agents_approvers_decide_its_held_calls() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let upstream = Upstream::start().await;
        let world = server.world("approvers").await;
        let app_id = AppId::parse(&world.app.info.id).unwrap();
        let vault = server.vault();
        let alice_token = world.idp.token("alice", json!({}));
        let alice = vault.sign_in(app_id, &alice_token).await.unwrap();
        let bob = vault
            .sign_in(app_id, &world.idp.token("bob", json!({})))
            .await
            .unwrap();
        let as_user = |user| Subject::User { app: app_id, user };

        // Bob is the named approver of the agent alice delegated to.
        let policy = json!({"requires_approval": true, "approvers": [bob.user.subject]});
        let (key, delegation) = delegated_to_an_agent(
            &server,
            &world,
            &alice,
            &alice_token,
            "guarded",
            Some(policy),
        )
        .await;
        let id = held_call(&server, &upstream, &key, delegation).await;
        assert!(!sees(vault, &alice, id).await, "alice is not its approver");
        assert!(matches!(
            vault
                .decide_user_approval(&as_user(&alice), id, true, None)
                .await,
            Err(Error::NotFound(_))
        ));
        assert_eq!(
            vault.get_approval(app_id, id).await.unwrap().status,
            ApprovalStatus::Pending,
            "alice's attempt changed nothing"
        );
        assert!(sees(vault, &bob, id).await, "bob does not hold the grant");
        let decided = vault
            .decide_user_approval(&as_user(&bob), id, false, Some("not now".into()))
            .await
            .unwrap();
        assert_eq!(decided.status, ApprovalStatus::Denied);
        assert_eq!(
            decided.decided_by.as_deref(),
            Some(bob.user.subject.as_str())
        );

        // Named by app user id, likewise.
        let policy = json!({"requires_approval": true, "approvers": [bob.user.id.to_string()]});
        let (key, delegation) =
            delegated_to_an_agent(&server, &world, &alice, &alice_token, "by-id", Some(policy))
                .await;
        let id = held_call(&server, &upstream, &key, delegation).await;
        assert!(!sees(vault, &alice, id).await);
        assert!(sees(vault, &bob, id).await);

        // An agent naming nobody: the grant's holder decides, and nobody else.
        let policy = json!({"requires_approval": true});
        let (key, delegation) =
            delegated_to_an_agent(&server, &world, &alice, &alice_token, "plain", Some(policy))
                .await;
        let id = held_call(&server, &upstream, &key, delegation).await;
        assert!(!sees(vault, &bob, id).await);
        assert!(matches!(
            vault
                .decide_user_approval(&as_user(&bob), id, true, None)
                .await,
            Err(Error::NotFound(_))
        ));
        assert!(sees(vault, &alice, id).await);
        let decided = vault
            .decide_user_approval(&as_user(&alice), id, false, None)
            .await
            .unwrap();
        assert_eq!(decided.status, ApprovalStatus::Denied);
        server.stop().await;
    })
    .await;
}
