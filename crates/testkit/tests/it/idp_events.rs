//! The identity namespace of an app's IdP: an issuer change cannot hand one issuer's users to
//! another's; inbound IdP lifecycle events (user deactivated, group membership changed) take
//! effect at once.

use alter_proto::admin::IdpRequest;
use alter_sdk::{CreateAgent, Principal};
use alter_testkit::idp::TestIdp;
use alter_testkit::{TestServer, on_every_engine};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

fn idp_request(idp: &TestIdp) -> IdpRequest {
    IdpRequest {
        issuer: idp.issuer().to_owned(),
        audiences: vec![idp.audience().to_owned()],
        jwks_url: Some(idp.jwks_url()),
        groups_claim: Some("groups".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_new_issuer_cannot_take_over_the_users_of_the_old_one() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let app_id = world.app.info.id.clone();
        let app = server.app(&world.app.key.api_key);
        let alice = world.idp.token("alice", json!({"groups": ["eng"]}));
        let grant = app
            .create_managed_secret_grant(
                &world.secret.id,
                Principal::user(&alice, "alice-stripe"),
                None,
            )
            .await
            .unwrap();
        let before = server.user(&app_id, &alice).get("/grants").await;
        assert_eq!(before.status, 200, "{:?}", before.json);

        // Another issuer whose user is also called "alice".
        let other = TestIdp::start().await;
        let refused = server
            .admin()
            .set_idp(&app_id, &idp_request(&other))
            .await
            .unwrap_err();
        assert_eq!(
            (refused.status(), refused.code()),
            (409, Some("idp_issuer_in_use"))
        );
        let idp = server.admin().get_idp(&app_id).await.unwrap();
        assert_eq!(idp.issuer, world.idp.issuer(), "nothing changed");
        assert_eq!(idp.id, world.idp_id);

        // The other issuer's alice is nobody here: none of alice's grants.
        let impostor = other.token("alice", json!({"groups": ["eng"]}));
        let seen = server.user(&app_id, &impostor).get("/grants").await;
        assert_eq!(seen.status, 401, "{:?}", seen.json);
        assert!(!seen.json.to_string().contains(&grant.grant_id));
        // The real alice still is.
        let mine = server.user(&app_id, &alice).get("/grants").await;
        assert!(mine.json.to_string().contains(&grant.grant_id));

        // Changing anything but the issuer is fine.
        let mut same = idp_request(&world.idp);
        same.leeway_seconds = Some(30);
        let kept = server.admin().set_idp(&app_id, &same).await.unwrap();
        assert_eq!(kept.id, world.idp_id);

        // Approvers named by bare subject belong to the issuer too, signed in or not.
        let fresh = server.new_app("b").await;
        server
            .admin()
            .set_idp(&fresh.info.id, &idp_request(&world.idp))
            .await
            .unwrap();
        server
            .app(&fresh.key.api_key)
            .agents()
            .create(CreateAgent {
                policy: Some(json!({"requires_approval": true, "approvers": ["alice"]})),
                ..CreateAgent::new("bot", json!({"google": ["gmail.readonly"]}))
            })
            .await
            .unwrap();
        let refused = server
            .admin()
            .set_idp(&fresh.info.id, &idp_request(&other))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Some("idp_issuer_in_use"));
        assert!(refused.to_string().contains("approvers"), "{refused}");

        // With nothing naming the old issuer, the issuer may change.
        let empty = server.new_app("c").await;
        server
            .admin()
            .set_idp(&empty.info.id, &idp_request(&world.idp))
            .await
            .unwrap();
        let moved = server
            .admin()
            .set_idp(&empty.info.id, &idp_request(&other))
            .await
            .unwrap();
        assert_eq!(moved.issuer, other.issuer());
        server.stop().await;
    })
    .await;
}

/// Sends signed inbound IdP events to one app, as a real IdP would (Standard Webhooks).
struct Events {
    url: String,
    key: Vec<u8>,
}

struct Answer {
    status: u16,
    json: serde_json::Value,
}

impl Answer {
    fn code(&self) -> Option<&str> {
        self.json["error"].as_str()
    }
}

impl Events {
    /// Generates the app's secret through the admin API.
    async fn configure(server: &TestServer, app_id: &str) -> Events {
        let answer = reqwest::Client::new()
            .post(format!(
                "{}/admin/v1/apps/{app_id}/idp/events-secret",
                server.base_url()
            ))
            .bearer_auth(server.admin_token())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 201);
        let body: serde_json::Value = answer.json().await.unwrap();
        let secret = body["secret"].as_str().unwrap();
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
            .unwrap();
        assert_eq!(key.len(), 32);
        Events {
            url: format!("{}/idp/v1/apps/{app_id}/events", server.base_url()),
            key,
        }
    }

    fn signature(key: &[u8], id: &str, ts: i64, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key);
        let mut signed = format!("{id}.{ts}.").into_bytes();
        signed.extend_from_slice(body);
        format!("v1,{}", STANDARD.encode(hmac::sign(&key, &signed).as_ref()))
    }

    async fn post(url: &str, headers: &[(&str, String)], body: Vec<u8>) -> Answer {
        let mut request = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let answer = request.body(body).send().await.unwrap();
        let status = answer.status().as_u16();
        let json = answer.json().await.unwrap_or(serde_json::Value::Null);
        Answer { status, json }
    }

    /// `event` signed with the app's secret at `ts`, under `id`.
    async fn send_as(&self, id: &str, ts: i64, event: &serde_json::Value) -> Answer {
        let body = event.to_string().into_bytes();
        let signature = Self::signature(&self.key, id, ts, &body);
        let headers = [
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", signature),
        ];
        Self::post(&self.url, &headers, body).await
    }
}

/// A release by `agent_key` of `grant`: Ok, or the error code.
async fn release(server: &TestServer, agent_key: &str, grant: &str) -> Result<(), Option<String>> {
    let r = server
        .raw(agent_key, "POST", "/sdk/token")
        .body(
            json!({"grant_id": grant, "reason": null,
                   "request": {"method": "GET", "url": "https://api.stripe.com/v1/charges"}})
            .to_string()
            .into_bytes(),
        )
        .send()
        .await;
    match r.status {
        200 => Ok(()),
        _ => Err(r.code().map(str::to_owned)),
    }
}

async fn agent(server: &TestServer, api_key: &str) -> (String, String) {
    let agent = server
        .app(api_key)
        .agents()
        .create(CreateAgent::new(
            "assistant",
            json!({"managed_secret_slugs": ["stripe-production"]}),
        ))
        .await
        .unwrap();
    (agent.agent.id, agent.api_key.unwrap())
}

#[tokio::test]
async fn an_inbound_group_removal_ends_the_group_delegation_on_the_next_call() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let app_id = world.app.info.id.clone();
        let app = server.app(&world.app.key.api_key);
        let group = app
            .create_managed_secret_grant(
                &world.secret.id,
                Principal::group("eng", &world.idp_id, "eng-stripe"),
                None,
            )
            .await
            .unwrap();
        let (agent_id, agent_key) = agent(&server, &world.app.key.api_key).await;
        let now = server.now().unix_seconds();
        let token = |iat: i64, groups: serde_json::Value| {
            world.idp.token(
                "alice",
                json!({"iat": iat, "exp": iat + 3600, "groups": groups}),
            )
        };
        let in_eng = token(now - 60, json!(["eng"]));
        let member = server.user(&app_id, &in_eng);
        let made = member
            .post(
                &format!("/grants/{}/delegations", group.grant_id),
                json!({"agent_id": agent_id}),
            )
            .await;
        assert_eq!(made.status, 201, "{:?}", made.json);
        let child = made.json["grant_id"].as_str().unwrap().to_owned();
        assert_eq!(release(&server, &agent_key, &child).await, Ok(()));

        let removal = json!({"type": "group.member_removed",
                             "data": {"subject": "alice", "group": "eng"}});
        // No secret configured yet, an unknown app, and bad signatures: all the same 401,
        // and nothing changes.
        let unknown_app = Events {
            url: format!(
                "{}/idp/v1/apps/{}/events",
                server.base_url(),
                uuid::Uuid::new_v4()
            ),
            key: vec![1; 32],
        };
        let unconfigured = Events {
            url: format!("{}/idp/v1/apps/{app_id}/events", server.base_url()),
            key: vec![1; 32],
        };
        let first = unconfigured.send_as("msg_0", now, &removal).await;
        assert_eq!(
            (first.status, first.code()),
            (401, Some("idp_event_unauthorized"))
        );
        let other = unknown_app.send_as("msg_0", now, &removal).await;
        assert_eq!(other.status, 401);
        assert_eq!(other.json["error"], first.json["error"]);
        assert_eq!(other.json["message"], first.json["message"]);

        let events = Events::configure(&server, &app_id).await;
        let wrong_key = Events {
            url: events.url.clone(),
            key: vec![2; 32],
        };
        let body = removal.to_string().into_bytes();
        let good = Events::signature(&events.key, "msg_1", now, &body);
        let refused = [
            wrong_key.send_as("msg_1", now, &removal).await,
            // Stale and future timestamps.
            events.send_as("msg_1", now - 301, &removal).await,
            events.send_as("msg_1", now + 301, &removal).await,
            // Missing headers.
            Events::post(&events.url, &[], body.clone()).await,
            Events::post(
                &events.url,
                &[
                    ("webhook-id", "msg_1".into()),
                    ("webhook-timestamp", now.to_string()),
                ],
                body.clone(),
            )
            .await,
            // A good signature over another id, or another body.
            Events::post(
                &events.url,
                &[
                    ("webhook-id", "msg_2".into()),
                    ("webhook-timestamp", now.to_string()),
                    ("webhook-signature", good.clone()),
                ],
                body.clone(),
            )
            .await,
            Events::post(
                &events.url,
                &[
                    ("webhook-id", "msg_1".into()),
                    ("webhook-timestamp", now.to_string()),
                    ("webhook-signature", good.clone()),
                ],
                br#"{"type":"group.member_removed","data":{"subject":"bob","group":"eng"}}"#
                    .to_vec(),
            )
            .await,
        ];
        for answer in refused {
            assert_eq!(
                (answer.status, answer.code()),
                (401, Some("idp_event_unauthorized")),
                "{:?}",
                answer.json
            );
        }
        assert_eq!(release(&server, &agent_key, &child).await, Ok(()));
        assert_eq!(member.get("/me").await.json["groups"], json!(["eng"]));

        // A valid removal (one of several signatures matching) applies at once.
        let applied = Events::post(
            &events.url,
            &[
                ("webhook-id", "msg_1".into()),
                ("webhook-timestamp", now.to_string()),
                ("webhook-signature", format!("v1,bm90IGl0 {good}")),
            ],
            body.clone(),
        )
        .await;
        assert_eq!(applied.status, 200, "{:?}", applied.json);
        assert_eq!(applied.json["status"], "applied");
        // The issue's "done means": the group-derived delegation fails on the next call.
        assert!(release(&server, &agent_key, &child).await.is_err());

        // A replay of the same delivery is a duplicate and changes nothing; nor does an
        // older "added" delivered late.
        let replay = events.send_as("msg_1", now, &removal).await;
        assert_eq!(
            (replay.status, &replay.json["status"]),
            (200, &json!("duplicate"))
        );
        let late = json!({"type": "group.member_added", "timestamp": "2020-01-01T00:00:00Z",
                          "data": {"subject": "alice", "group": "eng"}});
        let late = events.send_as("msg_late", now, &late).await;
        assert_eq!(
            (late.status, &late.json["status"]),
            (200, &json!("ignored"))
        );

        // Replaying the older ID token does not roll the removal back.
        let me = member.get("/me").await;
        assert_eq!(me.status, 200, "{:?}", me.json);
        assert_eq!(me.json["groups"], json!([]));
        let again = member
            .post(
                &format!("/grants/{}/delegations", group.grant_id),
                json!({"agent_id": agent_id}),
            )
            .await;
        assert_eq!(again.status, 404, "{:?}", again.json);
        assert!(release(&server, &agent_key, &child).await.is_err());

        // A token the IdP issues after the change counts again.
        server.advance(5);
        let fresh = token(server.now().unix_seconds(), json!(["eng"]));
        assert_eq!(
            server.user(&app_id, &fresh).get("/me").await.json["groups"],
            json!(["eng"])
        );

        // Strict bodies: a signed but malformed event is refused and changes nothing.
        let bad = events
            .send_as(
                "msg_bad",
                server.now().unix_seconds(),
                &json!({"type": "user.deleted", "data": {"subject": "alice"}}),
            )
            .await;
        assert_eq!(
            (bad.status, bad.code()),
            (422, Some("invalid_request")),
            "{:?}",
            bad.json
        );

        // Retention: receipts are kept while a replay could still verify; past the window
        // they go, and a replay of the first delivery is refused as stale, not applied again.
        assert_eq!(server.vault().prune_idp_event_receipts().await.unwrap(), 0);
        server.advance(alter_core::idp_events::RECEIPT_RETENTION_SECONDS + 1);
        assert!(server.vault().prune_idp_event_receipts().await.unwrap() >= 2);
        let replay = events.send_as("msg_1", now, &removal).await;
        assert_eq!(
            (replay.status, replay.code()),
            (401, Some("idp_event_unauthorized"))
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_deactivated_user_loses_grants_and_delegations_at_once_and_cannot_sign_in() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let app_id = world.app.info.id.clone();
        let app = server.app(&world.app.key.api_key);
        let alice = world.idp.token("alice", json!({}));
        let grant = app
            .create_managed_secret_grant(
                &world.secret.id,
                Principal::user(&alice, "alice-stripe"),
                None,
            )
            .await
            .unwrap();
        let (agent_id, agent_key) = agent(&server, &world.app.key.api_key).await;
        let user = server.user(&app_id, &alice);
        let made = user
            .post(
                &format!("/grants/{}/delegations", grant.grant_id),
                json!({"agent_id": agent_id}),
            )
            .await;
        assert_eq!(made.status, 201, "{:?}", made.json);
        let child = made.json["grant_id"].as_str().unwrap().to_owned();
        assert_eq!(release(&server, &agent_key, &child).await, Ok(()));

        let events = Events::configure(&server, &app_id).await;
        let now = server.now().unix_seconds();
        let deactivated = json!({"type": "user.deactivated", "data": {"subject": "alice"}});
        let answer = events.send_as("evt_1", now, &deactivated).await;
        assert_eq!(answer.json["status"], "applied", "{:?}", answer.json);

        // At once: the delegation she made no longer releases, her sign-in is refused.
        assert!(release(&server, &agent_key, &child).await.is_err());
        let me = user.get("/me").await;
        assert_eq!(
            (me.status, me.json["error"].as_str()),
            (403, Some("user_suspended"))
        );
        let resolve = server
            .raw(&world.app.key.api_key, "POST", "/sdk/identity/resolve")
            .body(json!({"user_token": alice}).to_string().into_bytes())
            .send()
            .await;
        assert_eq!(resolve.status, 403, "{:?}", resolve.json);
        assert_eq!(resolve.code(), Some("user_suspended"));

        // Audited like an operator's revocation.
        let audit = server
            .admin()
            .audit_events(
                &app_id,
                &alter_proto::admin::AuditQuery {
                    limit: Some(500),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let actions: Vec<&str> = audit
            .items
            .iter()
            .filter_map(|e| e.event["action"].as_str())
            .collect();
        assert!(actions.contains(&"user.deactivated"), "{actions:?}");
        assert!(actions.contains(&"idp.event_received"), "{actions:?}");
        let revoked = actions
            .iter()
            .filter(|a| **a == "grant.revoked" || **a == "delegation.revoked")
            .count();
        assert!(revoked >= 2, "{actions:?}");

        // A reactivation older than the deactivation changes nothing.
        let stale = json!({"type": "user.reactivated", "timestamp": "2020-01-01T00:00:00Z",
                           "data": {"subject": "alice"}});
        let answer = events.send_as("evt_2", now, &stale).await;
        assert_eq!(answer.json["status"], "ignored", "{:?}", answer.json);
        assert_eq!(user.get("/me").await.status, 403);

        // One at the very instant of the deactivation changes nothing either: on a tie the
        // restrictive change holds, whatever order the two arrive in.
        let same_instant = json!({"type": "user.reactivated",
            "timestamp": alter_core::time::Timestamp::from_unix_seconds(now).to_rfc3339(),
            "data": {"subject": "alice"}});
        let answer = events.send_as("evt_2b", now, &same_instant).await;
        assert_eq!(answer.json["status"], "ignored", "{:?}", answer.json);
        assert_eq!(user.get("/me").await.status, 403);

        // A newer reactivation restores sign-in, not the revoked grants.
        server.advance(10);
        let reactivated = json!({"type": "user.reactivated",
            "timestamp": server.now().to_rfc3339(), "data": {"subject": "alice"}});
        let answer = events
            .send_as("evt_3", server.now().unix_seconds(), &reactivated)
            .await;
        assert_eq!(answer.json["status"], "applied", "{:?}", answer.json);
        assert_eq!(user.get("/me").await.status, 200);
        assert!(release(&server, &agent_key, &child).await.is_err());
        let held = user.get("/grants").await;
        assert!(
            !held.json.to_string().contains(&grant.grant_id)
                || held.json["grants"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|g| g["grant_id"] != grant.grant_id.as_str() || g["status"] == "revoked"),
            "{:?}",
            held.json
        );

        // Someone the vault has never seen, deactivated first, cannot sign in later.
        let answer = events
            .send_as(
                "evt_4",
                server.now().unix_seconds(),
                &json!({"type": "user.deactivated", "data": {"subject": "bob"}}),
            )
            .await;
        assert_eq!(answer.json["status"], "applied", "{:?}", answer.json);
        let bob = world.idp.token("bob", json!({}));
        assert_eq!(server.user(&app_id, &bob).get("/me").await.status, 403);

        // A rotation: the new secret verifies at once, the previous one for a day more.
        let rotated = Events::configure(&server, &app_id).await;
        assert_ne!(rotated.key, events.key);
        let ping = |n: u32| json!({"type": "user.deactivated", "data": {"subject": format!("nobody-{n}")}});
        let now = server.now().unix_seconds();
        assert_eq!(rotated.send_as("rot_1", now, &ping(1)).await.status, 200);
        assert_eq!(events.send_as("rot_2", now, &ping(2)).await.status, 200);
        server.advance(24 * 3600 + 1);
        let now = server.now().unix_seconds();
        let old = events.send_as("rot_3", now, &ping(3)).await;
        assert_eq!((old.status, old.code()), (401, Some("idp_event_unauthorized")));
        assert_eq!(rotated.send_as("rot_4", now, &ping(4)).await.status, 200);
        // Both sealed secrets (the current and the previous) re-wrap under a new KEK, and the
        // current one still verifies afterwards.
        crate::crypto::every_sealed_value_rewraps_under_a_new_kek(&server).await;
        let now = server.now().unix_seconds();
        assert_eq!(rotated.send_as("rot_5", now, &ping(5)).await.status, 200);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_event_secret_rotates_one_at_a_time_and_the_previous_one_can_end_at_once() {
    use alter_sdk::admin::RotateIdpEventSecretRequest;
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let app_id = world.app.info.id.clone();
        let admin = server.admin();
        let first = Events::configure(&server, &app_id).await;
        let with_key = |secret: &str| Events {
            url: first.url.clone(),
            key: STANDARD
                .decode(secret.strip_prefix("whsec_").unwrap())
                .unwrap(),
        };
        let ping = |n: u32| json!({"type": "user.deactivated", "data": {"subject": format!("nobody-{n}")}});

        // Two rotations from version 1 at once: exactly one wins, the other is refused with a
        // stable code and changes nothing.
        let from_v1 = RotateIdpEventSecretRequest {
            grace_seconds: None,
            expected_version: Some(1),
        };
        let (a, b) = tokio::join!(
            admin.rotate_idp_event_secret_with(&app_id, &from_v1),
            admin.rotate_idp_event_secret_with(&app_id, &from_v1),
        );
        let (won, lost) = match (a, b) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
            other => panic!("exactly one rotation must win: {other:?}"),
        };
        alter_testkit::leaks::watch(&won.secret);
        assert_eq!(won.version, 2);
        assert!(won.previous_valid_until.is_some());
        assert_eq!(
            (lost.status(), lost.code()),
            (409, Some("secret_version_conflict"))
        );
        // Without an expected version, concurrent rotations still never both commit on the
        // same base: every winner got its own version, and the losers changed nothing.
        let plain = RotateIdpEventSecretRequest::default();
        let rotate = || admin.rotate_idp_event_secret_with(&app_id, &plain);
        let (r1, r2, r3, r4) = tokio::join!(rotate(), rotate(), rotate(), rotate());
        let results = [r1, r2, r3, r4];
        let mut versions = Vec::new();
        for result in results {
            match result {
                Ok(new) => versions.push(new.version),
                Err(e) => assert_eq!((e.status(), e.code()), (409, Some("secret_version_conflict"))),
            }
        }
        assert!(!versions.is_empty());
        versions.sort_unstable();
        versions.dedup();
        let state = admin.end_previous_idp_event_secret(&app_id).await.unwrap();
        assert_eq!(state.version, 2 + versions.len() as i64);
        assert_eq!(state.previous_valid_until, None);

        // Grace 0 ends the previous secret at once; so does ending it afterwards.
        let current = admin
            .rotate_idp_event_secret_with(
                &app_id,
                &RotateIdpEventSecretRequest {
                    grace_seconds: Some(0),
                    expected_version: Some(state.version),
                },
            )
            .await
            .unwrap();
        assert_eq!(current.previous_valid_until, None);
        let current = with_key(&current.secret);
        let now = server.now().unix_seconds();
        assert_eq!(current.send_as("g_1", now, &ping(1)).await.status, 200);
        let old = first.send_as("g_2", now, &ping(2)).await;
        assert_eq!((old.status, old.code()), (401, Some("idp_event_unauthorized")));

        let rotated = admin
            .rotate_idp_event_secret_with(
                &app_id,
                &RotateIdpEventSecretRequest {
                    grace_seconds: Some(600),
                    expected_version: None,
                },
            )
            .await
            .unwrap();
        let newest = with_key(&rotated.secret);
        assert_eq!(current.send_as("e_1", now, &ping(3)).await.status, 200);
        let ended = admin.end_previous_idp_event_secret(&app_id).await.unwrap();
        assert_eq!((ended.version, ended.previous_valid_until), (rotated.version, None));
        let cut = current.send_as("e_2", now, &ping(4)).await;
        assert_eq!((cut.status, cut.code()), (401, Some("idp_event_unauthorized")));
        assert_eq!(newest.send_as("e_3", now, &ping(5)).await.status, 200);

        // Bad input changes nothing.
        for grace in [-1, 7 * 24 * 3600 + 1] {
            let e = admin
                .rotate_idp_event_secret_with(
                    &app_id,
                    &RotateIdpEventSecretRequest {
                        grace_seconds: Some(grace),
                        expected_version: None,
                    },
                )
                .await
                .unwrap_err();
            assert_eq!(e.status(), 422, "{grace}");
        }
        let stale = admin
            .rotate_idp_event_secret_with(
                &app_id,
                &RotateIdpEventSecretRequest {
                    grace_seconds: None,
                    expected_version: Some(1),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Some("secret_version_conflict"));
        assert_eq!(newest.send_as("e_4", now, &ping(6)).await.status, 200);

        // A previous secret whose grace has passed is forgotten by the prune job.
        admin
            .rotate_idp_event_secret_with(
                &app_id,
                &RotateIdpEventSecretRequest {
                    grace_seconds: Some(60),
                    expected_version: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(server.vault().prune_previous_secrets().await.unwrap(), 0);
        server.advance(61);
        assert_eq!(server.vault().prune_previous_secrets().await.unwrap(), 1);
        assert_eq!(server.vault().prune_previous_secrets().await.unwrap(), 0);

        // Every change to the secret is audited.
        let audit = admin
            .audit_events(
                &app_id,
                &alter_proto::admin::AuditQuery {
                    limit: Some(500),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let count = |name: &str| {
            audit
                .items
                .iter()
                .filter(|e| e.event["action"] == name)
                .count()
        };
        assert_eq!(count("idp.event_secret_rotated"), 5 + versions.len());
        assert_eq!(count("idp.event_secret_previous_ended"), 2);
        server.stop().await;
    })
    .await;
}
