//! Outbound webhooks: endpoints managed on the admin API (secret shown once, never listed,
//! invisible across apps), events posted to a real local receiver in the Standard Webhooks
//! format and verified here independently, retried after a 500, replayed with the same id, and
//! signed by both secrets during a rotation's grace period.

use std::time::Duration;

use alter_proto::admin::MintKeyRequest;
use alter_sdk::Principal;
use alter_sdk::admin::{
    AdminClient, CreateWebhookRequest, DeliveryListQuery, RotateWebhookSecretRequest,
    WebhookWithSecretInfo,
};
use alter_testkit::webhooks::{Received, Receiver, signatures_by, signed_by};
use alter_testkit::{TestServer, on_every_engine};

const WAIT: Duration = Duration::from_secs(20);

fn of_type<'a>(received: &'a [Received], kind: &str) -> Vec<&'a Received> {
    received
        .iter()
        .filter(|r| r.json()["type"] == kind)
        .collect()
}

/// A new endpoint of `app_id` for every event, at `url`.
async fn every_event_to(admin: &AdminClient, app_id: &str, url: String) -> WebhookWithSecretInfo {
    admin
        .add_webhook(
            app_id,
            &CreateWebhookRequest {
                url,
                events: vec!["*".into()],
                description: None,
            },
        )
        .await
        .unwrap()
}

async fn deliveries(
    admin: &AdminClient,
    app: &str,
    webhook: &str,
) -> Vec<alter_sdk::admin::WebhookDeliveryInfo> {
    admin
        .webhook_deliveries(app, webhook, &DeliveryListQuery::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn endpoints_are_managed_on_the_admin_api_with_the_secret_shown_once() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let admin = server.admin();
        let app = server.new_app("hooks").await;
        let other = server.new_app("other").await;
        let (app_id, other_id) = (app.info.id.as_str(), other.info.id.as_str());

        let created = admin
            .add_webhook(
                app_id,
                &CreateWebhookRequest {
                    url: "https://hooks.example.com/alter".into(),
                    events: vec!["grant.revoked".into(), "approval.requested".into()],
                    description: Some("billing".into()),
                },
            )
            .await
            .unwrap();
        alter_testkit::leaks::watch(&created.secret);
        let secret = created.secret.strip_prefix("whsec_").unwrap();
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(secret)
            .unwrap();
        assert_eq!(bytes.len(), 32);
        let id = created.webhook.id.clone();
        assert_eq!(created.webhook.secret_version, 1);

        // Listed and shown, never with a secret.
        let listed = admin.list_webhooks(app_id).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0], created.webhook);
        let text = serde_json::to_string(&listed).unwrap();
        assert!(!text.contains("whsec_") && !text.contains(secret));
        let shown = admin.get_webhook(app_id, &id).await.unwrap();
        assert!(!serde_json::to_string(&shown).unwrap().contains("whsec_"));

        // Another app's endpoint looks like none at all.
        for e in [
            admin.get_webhook(other_id, &id).await.unwrap_err(),
            admin.remove_webhook(other_id, &id).await.unwrap_err(),
            admin
                .rotate_webhook_secret(other_id, &id, None)
                .await
                .unwrap_err(),
            admin
                .webhook_deliveries(other_id, &id, &DeliveryListQuery::default())
                .await
                .unwrap_err(),
            admin.get_webhook(app_id, "not-an-id").await.unwrap_err(),
        ] {
            assert_eq!(e.status(), 404);
            assert_eq!(e.code(), Some("webhook_not_found"));
        }
        assert!(admin.list_webhooks(other_id).await.unwrap().is_empty());

        // Bad input is refused and stores nothing.
        for (url, events) in [
            ("http://hooks.example.com/alter", vec!["*"]),
            ("https://user:pw@hooks.example.com/alter", vec!["*"]),
            ("https://hooks.example.com/alter", vec!["grant.created"]),
            ("https://hooks.example.com/alter", vec![]),
        ] {
            let e = admin
                .add_webhook(
                    app_id,
                    &CreateWebhookRequest {
                        url: url.into(),
                        events: events.into_iter().map(str::to_owned).collect(),
                        description: None,
                    },
                )
                .await
                .unwrap_err();
            assert_eq!(e.status(), 422, "{url}");
        }
        assert_eq!(admin.list_webhooks(app_id).await.unwrap().len(), 1);

        // A rotation shows the new secret once and keeps the old one signing for a while.
        let rotated = admin
            .rotate_webhook_secret(app_id, &id, Some(3600))
            .await
            .unwrap();
        alter_testkit::leaks::watch(&rotated.secret);
        assert_ne!(rotated.secret, created.secret);
        assert_eq!(rotated.webhook.secret_version, 2);
        assert!(rotated.webhook.previous_secret_until.is_some());
        let listed = admin.list_webhooks(app_id).await.unwrap();
        assert!(!serde_json::to_string(&listed).unwrap().contains("whsec_"));

        // Two rotations from the same version: exactly one wins, the other is refused with a
        // stable code and changes nothing.
        let from_v2 = RotateWebhookSecretRequest {
            grace_seconds: Some(0),
            expected_version: Some(2),
        };
        let (a, b) = tokio::join!(
            admin.rotate_webhook_secret_with(app_id, &id, &from_v2),
            admin.rotate_webhook_secret_with(app_id, &id, &from_v2),
        );
        let (won, lost) = match (a, b) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
            other => panic!("exactly one rotation must win: {other:?}"),
        };
        alter_testkit::leaks::watch(&won.secret);
        assert_eq!(won.webhook.secret_version, 3);
        assert_eq!(won.webhook.previous_secret_until, None);
        assert_eq!(
            (lost.status(), lost.code()),
            (409, Some("secret_version_conflict"))
        );
        assert_eq!(
            admin.get_webhook(app_id, &id).await.unwrap().secret_version,
            3
        );

        // Removed: gone, and audited like every change.
        let removed = admin.remove_webhook(app_id, &id).await.unwrap();
        assert_eq!(removed.id, id);
        assert!(admin.list_webhooks(app_id).await.unwrap().is_empty());
        assert_eq!(
            admin.get_webhook(app_id, &id).await.unwrap_err().status(),
            404
        );
        let audit = admin
            .audit_events(app_id, &Default::default())
            .await
            .unwrap();
        let actions: Vec<&str> = audit
            .items
            .iter()
            .filter_map(|i| i.event["action"].as_str())
            .filter(|a| a.starts_with("webhook."))
            .collect();
        assert_eq!(
            actions,
            [
                "webhook.created",
                "webhook.secret_rotated",
                "webhook.secret_rotated",
                "webhook.removed"
            ]
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn events_reach_a_receiver_signed_retried_and_replayed_with_the_same_id() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let admin = server.admin();
        let world = server.world("hooks").await;
        let app_id = world.app.info.id.clone();
        let receiver = Receiver::start().await;
        let every = admin
            .add_webhook(
                &app_id,
                &CreateWebhookRequest {
                    url: receiver.url(),
                    events: vec!["*".into()],
                    description: None,
                },
            )
            .await
            .unwrap();
        let named = Receiver::start().await;
        let revocations = admin
            .add_webhook(
                &app_id,
                &CreateWebhookRequest {
                    url: named.url(),
                    events: vec!["grant.revoked".into()],
                    description: None,
                },
            )
            .await
            .unwrap();

        // The endpoint receives the events from its own creation on.
        let created = receiver
            .wait_for(WAIT, |r| of_type(r, "webhook.created").len() >= 2)
            .await;
        assert_eq!(of_type(&created, "webhook.created").len(), 2);

        // The first attempt is answered 500: it is retried, with the same id.
        receiver.answer_next(&[500]);
        admin
            .mint_key(&app_id, &MintKeyRequest::default())
            .await
            .unwrap();
        let received = receiver
            .wait_for(WAIT, |r| !of_type(r, "key.minted").is_empty())
            .await;
        let first = of_type(&received, "key.minted")[0].clone();
        let minted = deliveries(&admin, &app_id, &every.webhook.id).await;
        let delivery = minted
            .iter()
            .find(|d| d.event_type == "key.minted")
            .unwrap();
        assert_eq!(delivery.event_id, first.id);
        // Give the job a moment to record the failed attempt.
        for _ in 0..50 {
            let d = deliveries(&admin, &app_id, &every.webhook.id).await;
            if d.iter().any(|d| d.event_id == first.id && d.attempts == 1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let failed = deliveries(&admin, &app_id, &every.webhook.id).await;
        let failed = failed.iter().find(|d| d.event_id == first.id).unwrap();
        assert_eq!(
            (failed.status.as_str(), failed.attempts, failed.last_status),
            ("pending", 1, Some(500))
        );
        assert!(failed.next_attempt_at.is_some());
        // The retry is due within the first backoff step (5 s at most).
        server.advance(6);
        let received = receiver
            .wait_for(WAIT, |r| of_type(r, "key.minted").len() >= 2)
            .await;
        let again = of_type(&received, "key.minted");
        assert_eq!(again.len(), 2);
        assert_eq!(again[1].id, first.id);
        for _ in 0..50 {
            let d = deliveries(&admin, &app_id, &every.webhook.id).await;
            if d.iter()
                .any(|d| d.event_id == first.id && d.status == "delivered")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let done = deliveries(&admin, &app_id, &every.webhook.id).await;
        let done = done.iter().find(|d| d.event_id == first.id).unwrap();
        assert_eq!(
            (done.status.as_str(), done.attempts, done.last_status),
            ("delivered", 2, Some(200))
        );

        // Every request is signed with the endpoint's secret, by the standard algorithm; the
        // body is {type, timestamp, data} with the audit event as data.
        for r in &received {
            assert!(signed_by(&every.secret, r), "{r:?}");
            assert!(!signed_by(&revocations.secret, r));
            let body = r.json();
            assert_eq!(body["data"]["id"], r.id.as_str());
            assert_eq!(body["data"]["action"], body["type"]);
            assert_eq!(body["timestamp"], body["data"]["at"]);
            let sent: i64 = r.timestamp.parse().unwrap();
            assert!((sent - server.now().unix_seconds()).abs() < 120);
        }
        // A request whose body was changed does not verify.
        let mut tampered = first.clone();
        tampered.body.push(b' ');
        assert!(!signed_by(&every.secret, &tampered));

        // A grant revoked reaches both endpoints; the named one gets nothing else.
        let app = server.app(&world.app.key.api_key);
        let grant = app
            .create_managed_secret_grant(&world.secret.id, Principal::system(), None)
            .await
            .unwrap();
        app.revoke_grant(&grant.grant_id, Some("offboarded"))
            .await
            .unwrap();
        let got = named
            .wait_for(WAIT, |r| !of_type(r, "grant.revoked").is_empty())
            .await;
        assert_eq!(got.len(), 1, "only the selected type");
        assert!(signed_by(&revocations.secret, &got[0]));
        assert_eq!(
            got[0].json()["data"]["target"]["id"],
            grant.grant_id.as_str()
        );
        assert_eq!(got[0].json()["data"]["reason"], "offboarded");
        receiver
            .wait_for(WAIT, |r| !of_type(r, "grant.revoked").is_empty())
            .await;
        let revoked = of_type(&receiver.received(), "grant.revoked")[0].clone();
        assert_eq!(
            revoked.id, got[0].id,
            "one event, one id, on every endpoint"
        );

        // A replay sends the delivered event again, with the same id.
        let reset = admin
            .replay_webhook_delivery(&app_id, &revocations.webhook.id, &got[0].id)
            .await
            .unwrap();
        assert_eq!((reset.status.as_str(), reset.attempts), ("pending", 0));
        let replayed = named.wait_for(WAIT, |r| r.len() >= 2).await;
        assert_eq!(replayed.len(), 2);
        assert_eq!(replayed[1].id, got[0].id);
        assert!(signed_by(&revocations.secret, &replayed[1]));
        let e = admin
            .replay_webhook_delivery(&app_id, &revocations.webhook.id, "no-such-event")
            .await
            .unwrap_err();
        assert_eq!(e.status(), 404);

        // During a rotation's grace period, both secrets sign; after it, only the new one.
        let rotated = admin
            .rotate_webhook_secret(&app_id, &revocations.webhook.id, Some(600))
            .await
            .unwrap();
        let grant = app
            .create_managed_secret_grant(&world.secret.id, Principal::system(), None)
            .await
            .unwrap();
        app.revoke_grant(&grant.grant_id, None).await.unwrap();
        let during = named.wait_for(WAIT, |r| r.len() >= 3).await;
        let during = &during[2];
        assert_eq!(during.signature.split(' ').count(), 2);
        assert_eq!(signatures_by(&rotated.secret, during), 1);
        assert_eq!(signatures_by(&revocations.secret, during), 1);
        server.advance(601);
        let grant = app
            .create_managed_secret_grant(&world.secret.id, Principal::system(), None)
            .await
            .unwrap();
        app.revoke_grant(&grant.grant_id, None).await.unwrap();
        let after = named.wait_for(WAIT, |r| r.len() >= 4).await;
        let after = &after[3];
        assert_eq!(after.signature.split(' ').count(), 1);
        assert!(signed_by(&rotated.secret, after));
        assert!(!signed_by(&revocations.secret, after));

        // The secrets (current and previous) re-wrap under a new KEK and still sign after the
        // old KEK is retired.
        crate::crypto::every_sealed_value_rewraps_under_a_new_kek(&server).await;
        let grant = app
            .create_managed_secret_grant(&world.secret.id, Principal::system(), None)
            .await
            .unwrap();
        app.revoke_grant(&grant.grant_id, None).await.unwrap();
        let rewrapped = named.wait_for(WAIT, |r| r.len() >= 5).await;
        assert!(signed_by(&rotated.secret, &rewrapped[4]));

        // Retention: nothing settled is pruned early; 30 days after it settled a delivery
        // leaves the log, and a replay of it is a clear "not found".
        assert_eq!(server.vault().prune_webhook_deliveries().await.unwrap(), 0);
        server.advance(alter_core::webhooks::DELIVERY_RETENTION_SECONDS + 1);
        assert!(server.vault().prune_webhook_deliveries().await.unwrap() >= 4);
        assert!(
            !deliveries(&admin, &app_id, &revocations.webhook.id)
                .await
                .iter()
                .any(|d| d.event_id == got[0].id)
        );
        let e = admin
            .replay_webhook_delivery(&app_id, &revocations.webhook.id, &got[0].id)
            .await
            .unwrap_err();
        assert_eq!((e.status(), e.code()), (404, Some("webhook_not_found")));
        server.stop().await;
    })
    .await;
}

/// A receiver URL with a capability in its path and query (Slack-style): the audit log keeps
/// only its scheme, host and port, and neither logs, delivery records nor error answers show
/// the rest, even while deliveries to it fail.
#[tokio::test]
async fn a_capability_in_a_webhook_url_stays_out_of_the_audit_log_logs_and_errors() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let admin = server.admin();
        let app = server.new_app("hooks").await;
        let app_id = app.info.id.as_str();
        let receiver = Receiver::start().await;
        let (path_cap, query_cap) = ("Bk7pathCapability93", "q5QueryCapability41");
        let base = receiver.url();
        let origin = base.trim_end_matches("/hook").to_owned();
        let url = format!("{base}/services/T01/B02/{path_cap}?token={query_cap}");
        let created = every_event_to(&admin, app_id, url.clone()).await;
        alter_testkit::leaks::watch(&created.secret);
        let id = created.webhook.id.clone();
        // The endpoint's own settings keep the URL: the operator set it.
        assert_eq!(created.webhook.url, url);

        // Refused variants do not echo it.
        for bad in [
            format!("ftp://127.0.0.1/services/{path_cap}?token={query_cap}"),
            format!("https://user:pw@hooks.example.com/{path_cap}?token={query_cap}"),
            format!("https://hooks.example.com/{path_cap}?token={query_cap}#x"),
        ] {
            let e = admin
                .add_webhook(
                    app_id,
                    &CreateWebhookRequest {
                        url: bad,
                        events: vec!["*".into()],
                        description: None,
                    },
                )
                .await
                .unwrap_err();
            assert_eq!(e.status(), 422);
        }

        // Deliveries to it fail (the receiver answers 404 off its path) and are recorded.
        let mut failed = Vec::new();
        for _ in 0..100 {
            failed = deliveries(&admin, app_id, &id).await;
            if failed.iter().any(|d| d.attempts >= 1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            failed.iter().any(|d| d.last_status == Some(404)),
            "{failed:?}"
        );
        let rotated = admin
            .rotate_webhook_secret(app_id, &id, Some(0))
            .await
            .unwrap();
        alter_testkit::leaks::watch(&rotated.secret);
        admin.remove_webhook(app_id, &id).await.unwrap();

        let audit = admin
            .audit_events(app_id, &Default::default())
            .await
            .unwrap();
        let created_event = audit
            .items
            .iter()
            .find(|i| i.event["action"] == "webhook.created")
            .unwrap();
        assert_eq!(created_event.event["details"]["url"], origin.as_str());
        let text = serde_json::to_string(&audit).unwrap();
        let records = serde_json::to_string(&failed).unwrap();
        for cap in [path_cap, query_cap, "/services/T01"] {
            assert!(!text.contains(cap), "the audit log shows {cap}");
            assert!(!records.contains(cap), "a delivery record shows {cap}");
            assert_eq!(
                alter_testkit::leaks::findings_outside_the_database(cap),
                Vec::<String>::new()
            );
        }
        server.stop().await;
    })
    .await;
}

/// A pending delivery whose audit event is gone (retention) is given up with the reason, and
/// the endpoint's later events still go out.
#[tokio::test]
async fn a_delivery_whose_event_is_gone_is_given_up_not_left_pending() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let admin = server.admin();
        let app = server.new_app("hooks").await;
        let app_id = app.info.id.as_str();
        let receiver = Receiver::start().await;
        receiver.answer_next(&[500]);
        let hook = every_event_to(&admin, app_id, receiver.url()).await;
        alter_testkit::leaks::watch(&hook.secret);
        let id = hook.webhook.id.clone();
        let first = receiver.wait_for(WAIT, |r| !r.is_empty()).await[0].clone();
        for _ in 0..100 {
            let d = deliveries(&admin, app_id, &id).await;
            if d.iter().any(|d| d.event_id == first.id && d.attempts == 1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The event the pending delivery carries disappears.
        let moved = server
            .database()
            .execute(
                "UPDATE webhook_deliveries SET seq = 999999999 WHERE event_id = $1",
                &[&first.id],
            )
            .await
            .unwrap();
        assert_eq!(moved, 1);
        server.advance(6);
        let mut given_up = None;
        for _ in 0..100 {
            let d = deliveries(&admin, app_id, &id).await;
            given_up = d
                .into_iter()
                .find(|d| d.event_id == first.id && d.status == "failed");
            if given_up.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let given_up = given_up.expect("the delivery is given up");
        assert_eq!(
            given_up.last_error.as_deref(),
            Some(alter_core::webhooks::EVENT_GONE)
        );
        assert_eq!(receiver.received().len(), 1, "nothing more was sent for it");

        // The endpoint's queue goes on.
        admin
            .mint_key(app_id, &alter_proto::admin::MintKeyRequest::default())
            .await
            .unwrap();
        let received = receiver
            .wait_for(WAIT, |r| !of_type(r, "key.minted").is_empty())
            .await;
        assert!(signed_by(&hook.secret, of_type(&received, "key.minted")[0]));
        server.stop().await;
    })
    .await;
}

/// An endpoint's secret is sealed bound to its URL: pointed elsewhere in the database, the
/// secret does not open, so nothing is signed or sent there; put back, the delivery goes out.
/// The bound secrets (current and previous) re-wrap under a new KEK like every other.
#[tokio::test]
async fn an_endpoint_pointed_elsewhere_in_the_database_sends_nothing() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let admin = server.admin();
        let app = server.new_app("hooks").await;
        let app_id = app.info.id.as_str();
        let receiver = Receiver::start().await;
        let elsewhere = Receiver::start().await;
        let hook = every_event_to(&admin, app_id, receiver.url()).await;
        alter_testkit::leaks::watch(&hook.secret);
        let id = hook.webhook.id.clone();
        let mint_request = MintKeyRequest::default();
        let mint = || admin.mint_key(app_id, &mint_request);
        let minted = |r: &[Received]| of_type(r, "key.minted").len();
        mint().await.unwrap();
        receiver.wait_for(WAIT, |r| minted(r) >= 1).await;

        // A database writer points the endpoint at its own server.
        let point = |url: String| {
            let id = id.clone();
            let database = server.database();
            async move {
                database
                    .execute(
                        "UPDATE webhook_endpoints SET url = $1 WHERE id = $2",
                        &[&url, &id],
                    )
                    .await
                    .unwrap()
            }
        };
        assert_eq!(point(elsewhere.url()).await, 1);
        mint().await.unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(elsewhere.received().is_empty(), "nothing reaches it");
        assert_eq!(minted(&receiver.received()), 1);

        // Put back, the delivery waiting goes out, validly signed.
        assert_eq!(point(receiver.url()).await, 1);
        let received = receiver.wait_for(WAIT, |r| minted(r) >= 2).await;
        assert!(signed_by(&hook.secret, of_type(&received, "key.minted")[1]));
        assert!(elsewhere.received().is_empty());

        // Rotated (current and previous bound), re-wrapped under a new KEK: both still sign.
        let rotated = admin
            .rotate_webhook_secret(app_id, &id, Some(3600))
            .await
            .unwrap();
        alter_testkit::leaks::watch(&rotated.secret);
        crate::crypto::every_sealed_value_rewraps_under_a_new_kek(&server).await;
        mint().await.unwrap();
        let received = receiver.wait_for(WAIT, |r| minted(r) >= 3).await;
        let last = of_type(&received, "key.minted")[2];
        assert_eq!(signatures_by(&rotated.secret, last), 1);
        assert_eq!(signatures_by(&hook.secret, last), 1);
        server.stop().await;
    })
    .await;
}
