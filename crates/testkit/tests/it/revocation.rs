//! Revocation is serialised with release: once a revocation (of the grant, a delegation, the
//! agent by pausing it, or the signing key) has answered, no release in flight still gets the
//! credential. Every release answered with it was recorded before the revocation; the others
//! answer as a request made after it would.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use alter_proto::admin::{AuditEventView, AuditQuery, MintKeyRequest};
use alter_sdk::{CreateAgent, Principal};
use alter_testkit::{RawRequest, TestServer, World, on_every_engine};
use serde_json::json;

/// Releases kept in flight at once.
const RELEASERS: usize = 12;
/// Releases answered with the credential before the revocation starts.
const WARM_UP: usize = 24;

/// What one release answered: the release's event id, or the error code.
type Answer = Result<String, Option<String>>;

/// Releases `grant` with `key` from many tasks at once until `revoke` has answered, then
/// checks that every release answered with the credential (and every one recorded) precedes
/// the revocation's `revocation` event in the chain, and that every refusal is one of
/// `refused`.
async fn race(
    server: &TestServer,
    world: &World,
    (key, grant): (&str, &str),
    revoke: impl Future<Output = ()>,
    (revocation, refused): (&str, &[&str]),
) {
    let body = json!({
        "grant_id": grant,
        "reason": null,
        "request": {"method": "GET", "url": "https://api.stripe.com/v1/charges"},
    })
    .to_string();
    let template = server
        .raw(key, "POST", "/sdk/token")
        .body(body.into_bytes());
    let revoked = Arc::new(AtomicBool::new(false));
    let released = Arc::new(AtomicUsize::new(0));
    let mut releasers = Vec::new();
    for _ in 0..RELEASERS {
        let (template, revoked, released) = (template.clone(), revoked.clone(), released.clone());
        releasers.push(tokio::spawn(async move {
            release_until(template, &revoked, &released).await
        }));
    }
    while released.load(Ordering::SeqCst) < WARM_UP {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    revoke.await;
    revoked.store(true, Ordering::SeqCst);
    let mut answers = Vec::new();
    for releaser in releasers {
        answers.extend(releaser.await.unwrap());
    }

    let events = all_events(server, &world.app.info.id).await;
    let action = |e: &AuditEventView| e.event["action"].as_str().unwrap_or_default().to_owned();
    let revoked_at = events
        .iter()
        .find(|e| action(e) == revocation)
        .unwrap_or_else(|| panic!("no {revocation} event"))
        .seq;
    let released_before: HashSet<String> = events
        .iter()
        .filter(|e| action(e) == "credential.released" && e.event["target"]["id"] == grant)
        .map(|e| {
            assert!(
                e.seq < revoked_at,
                "a release was recorded after the {revocation} (seq {} > {revoked_at})",
                e.seq
            );
            e.event["id"].as_str().unwrap().to_owned()
        })
        .collect();
    for answer in &answers {
        match answer {
            Ok(release) => assert!(
                released_before.contains(release),
                "release {release} answered with the credential but was not recorded before the {revocation}"
            ),
            Err(code) => assert!(
                code.as_deref().is_some_and(|code| refused.contains(&code)),
                "{answers:?}"
            ),
        }
    }
    assert!(
        answers.iter().any(Result::is_err),
        "releases went on after the {revocation} answered"
    );
}

/// Releases in a loop until `revoked` is set (checked after each answer, so each task makes
/// at least one release after the revocation answered).
async fn release_until(
    template: RawRequest,
    revoked: &AtomicBool,
    released: &AtomicUsize,
) -> Vec<Answer> {
    let mut answers = Vec::new();
    loop {
        let done = revoked.load(Ordering::SeqCst);
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let r = template.clone().nonce(&nonce).send().await;
        if r.status == 200 {
            released.fetch_add(1, Ordering::SeqCst);
            let release = r.json["token_generation"].as_str().unwrap().to_owned();
            answers.push(Ok(release));
        } else {
            answers.push(Err(r.code().map(str::to_owned)));
        }
        if done {
            return answers;
        }
    }
}

async fn all_events(server: &TestServer, app_id: &str) -> Vec<AuditEventView> {
    let admin = server.admin();
    let mut events = Vec::new();
    let mut cursor = None;
    loop {
        let page = admin
            .audit_events(
                app_id,
                &AuditQuery {
                    cursor,
                    limit: Some(1000),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        events.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return events,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_release_outlives_a_revocation_that_answered() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let app = server.app(&world.app.key.api_key);
        let admin = server.admin();
        let system_grant = || async {
            app.create_managed_secret_grant(&world.secret.id, Principal::system(), None)
                .await
                .unwrap()
                .grant_id
        };
        let (app_ref, slug) = (&app, &world.secret.slug);
        let new_agent = |name: &'static str| async move {
            let made = app_ref
                .agents()
                .create(CreateAgent::new(
                    name,
                    json!({"managed_secret_slugs": [slug]}),
                ))
                .await
                .unwrap();
            (made.agent.id, made.api_key.unwrap())
        };

        // The grant.
        let grant = system_grant().await;
        let key = &world.app.key.api_key;
        let revoke = async {
            app.revoke_grant(&grant, None).await.unwrap();
        };
        race(
            &server,
            &world,
            (key, &grant),
            revoke,
            ("grant.revoked", &["grant_revoked"]),
        )
        .await;

        // A delegation, released by its agent, revoked by the operator by the parent's id.
        let parent = system_grant().await;
        let (agent, agent_key) = new_agent("delegate").await;
        let child = server
            .delegate_as_operator(&world.app.info.id, &parent, &agent)
            .await;
        let revoke = async {
            app.revoke_delegation(&parent, &agent).await.unwrap();
        };
        let revocation: (&str, &[&str]) = ("delegation.revoked", &["grant_revoked"]);
        race(&server, &world, (&agent_key, &child), revoke, revocation).await;

        // The agent is paused.
        let parent = system_grant().await;
        let (agent, agent_key) = new_agent("paused").await;
        let child = server
            .delegate_as_operator(&world.app.info.id, &parent, &agent)
            .await;
        let revoke = async {
            app.agents().suspend(&agent).await.unwrap();
        };
        let revocation: (&str, &[&str]) = ("agent.suspended", &["agent_inactive"]);
        race(&server, &world, (&agent_key, &child), revoke, revocation).await;

        // The agent is deleted, its keys and delegations with it. A release admitted before
        // the deletion finds the agent or its delegation gone; one after, its key revoked.
        let parent = system_grant().await;
        let (agent, agent_key) = new_agent("deleted").await;
        let child = server
            .delegate_as_operator(&world.app.info.id, &parent, &agent)
            .await;
        let revoke = async {
            app.agents().delete(&agent).await.unwrap();
        };
        let revocation: (&str, &[&str]) = (
            "agent.deleted",
            &["key_revoked", "agent_revoked", "grant_revoked"],
        );
        race(&server, &world, (&agent_key, &child), revoke, revocation).await;

        // The signing key is revoked.
        let grant = system_grant().await;
        let minted = server.mint_key(&world.app, MintKeyRequest::default()).await;
        let revoke = async {
            admin
                .revoke_key(&world.app.info.id, &minted.info.id)
                .await
                .unwrap();
        };
        let revocation: (&str, &[&str]) = ("key.revoked", &["key_revoked"]);
        race(
            &server,
            &world,
            (&minted.api_key, &grant),
            revoke,
            revocation,
        )
        .await;
        server.stop().await;
    })
    .await;
}

/// A node that verified a key a moment ago (and may keep it, see `VerifiedKeys`) releases
/// nothing more with it once another node revoked it: the release's commit checks the key
/// again, in retrieve and in proxy mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_revoked_on_another_node_releases_nothing_more() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let node2 = server.second_node().await;
        let world = server.world("a").await;
        let app = server.app(&world.app.key.api_key);
        let grant = app
            .create_managed_secret_grant(&world.secret.id, Principal::system(), None)
            .await
            .unwrap()
            .grant_id;
        let minted = server.mint_key(&world.app, MintKeyRequest::default()).await;
        let token = json!({
            "grant_id": grant,
            "request": {"method": "GET", "url": "https://api.stripe.com/v1/charges"},
        });
        // Refused at the commit, before any call is made.
        let proxy =
            json!({"grant_id": grant, "method": "GET", "url": "https://api.stripe.com/v1/charges"});
        let send = |node: &TestServer, path: &str, body: &serde_json::Value| {
            node.raw(&minted.api_key, "POST", path)
                .body(body.to_string().into_bytes())
                .send()
        };
        for _ in 0..3 {
            assert_eq!(send(&server, "/sdk/token", &token).await.status, 200);
        }
        node2
            .admin()
            .revoke_key(&world.app.info.id, &minted.info.id)
            .await
            .unwrap();
        let refused = send(&server, "/sdk/token", &token).await;
        assert_eq!(refused.code(), Some("key_revoked"), "{:?}", refused.json);
        let refused = send(&server, "/sdk/proxy", &proxy).await;
        assert_eq!(refused.code(), Some("key_revoked"), "{:?}", refused.json);
        node2.stop().await;
        server.stop().await;
    })
    .await;
}
