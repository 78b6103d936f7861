//! Time partitions and retention: request nonces (partitioned by signed timestamp on
//! PostgreSQL) and audit events removed past `audit_retention_days` behind a signed anchor.

use alter_core::time::Timestamp;
use alter_proto::admin::{AuditEventView, AuditQuery, MintKeyRequest};
use alter_testkit::{Engine, Options, RawResponse, TestServer, on_every_engine};

fn assert_invalid_key(response: &RawResponse, what: &str) {
    assert_eq!(response.status, 401, "{what}: {:?}", response.json);
    assert_eq!(response.code(), Some("invalid_key"), "{what}");
}

/// How many of `table`'s partitions are named `name` (PostgreSQL).
async fn partitions_named(server: &TestServer, table: &str, name: &str) -> i64 {
    server
        .database()
        .count(
            "SELECT COUNT(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = to_regclass($1) AND c.relname = $2",
            &[table, name],
        )
        .await
        .unwrap()
}

/// Every audit event of an app (one page is enough here).
async fn events(server: &TestServer, app_id: &str) -> Vec<AuditEventView> {
    server
        .admin()
        .audit_events(app_id, &AuditQuery::default())
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn a_replay_is_refused_across_nonce_partitions() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        let key = app.key.api_key.as_str();
        // Just before a ten-minute partition boundary.
        let boundary = (server.now().unix_seconds() / 600 + 1) * 600;
        server
            .clock()
            .set(Timestamp::from_unix_seconds(boundary - 5));
        let send = |nonce: &str, timestamp: i64| {
            server
                .raw(key, "GET", "/sdk/scopes")
                .nonce(nonce)
                .timestamp(timestamp)
                .send()
        };
        let nonce = "0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d";
        assert_eq!(send(nonce, boundary - 1).await.status, 200);
        // The replay carries the same signed timestamp (the signature covers it), so it lands
        // in the same partition whenever it is claimed: after the boundary, after maintenance
        // created new partitions, after pruning, up to the window's last second.
        for (advance, when) in [(10, "after the boundary"), (290, "at the window's end")] {
            server.advance(advance);
            server.vault().maintain_time_partitions().await.unwrap();
            server.vault().prune_nonces().await.unwrap();
            assert_invalid_key(&send(nonce, boundary - 1).await, when);
        }
        // The same nonce with another timestamp is another signed message, which only the
        // key's holder can make: PostgreSQL keys nonces by (key, nonce, signed timestamp) and
        // takes it; SQLite keys them by (key, nonce) and still refuses it.
        let other = send(nonce, boundary + 1).await;
        assert_eq!(other.status == 200, engine == Engine::Postgres, "{other:?}");
        if engine == Engine::Postgres {
            let old = format!("request_nonces_p{}", boundary - 600);
            assert_eq!(partitions_named(&server, "request_nonces", &old).await, 1);
            // Once every timestamp it can hold is past the window (and the 2 × window + 60 s
            // horizon), the partition is dropped whole; the ones ahead are in place.
            server.advance(2 * 300 + 60);
            server.vault().maintain_time_partitions().await.unwrap();
            server.vault().prune_nonces().await.unwrap();
            assert_eq!(partitions_named(&server, "request_nonces", &old).await, 0);
            let now = server.now().unix_seconds() / 600 * 600;
            for ahead in [now, now + 1800] {
                let name = format!("request_nonces_p{ahead}");
                assert_eq!(partitions_named(&server, "request_nonces", &name).await, 1);
            }
            // A fresh request still goes through.
            let fresh = send(
                "0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e",
                server.now().unix_seconds(),
            );
            assert_eq!(fresh.await.status, 200);
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn retention_removes_old_audit_events_behind_a_signed_anchor() {
    on_every_engine(|engine| async move {
        let options = Options {
            audit_retention_days: Some(30),
            ..Options::default()
        };
        let server = TestServer::start_with(engine, options).await;
        let app = server.new_app("a").await;
        let app_id = app.info.id.as_str();
        let admin = server.admin();
        server.mint_key(&app, MintKeyRequest::default()).await;
        let old = events(&server, app_id).await;
        let old_month = server.now().to_rfc3339()[..7].replace('-', "");
        // Nothing is old enough yet.
        assert_eq!(server.vault().prune_audit_events().await.unwrap(), 0);
        assert_eq!(events(&server, app_id).await.len(), old.len());

        // 100 days on: past the 30 days, and on PostgreSQL past the whole month the old
        // events' partition holds.
        server.advance(100 * 24 * 3600);
        server.vault().maintain_time_partitions().await.unwrap();
        server.mint_key(&app, MintKeyRequest::default()).await;
        assert!(server.vault().prune_audit_events().await.unwrap() > 0);
        let kept = events(&server, app_id).await;
        assert_eq!(kept.len(), 1, "{kept:?}");
        let through = old.len() as i64;
        assert_eq!(kept[0].seq, through + 1);
        let report = admin.verify_audit(app_id).await.unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(report.events, 1);
        admin.audit_checkpoint(app_id).await.unwrap();

        // The events the anchor covers are gone, the ones after it cannot be deleted.
        let db = server.database();
        let refused = db
            .execute("DELETE FROM audit_events WHERE app_id = $1", &[app_id])
            .await;
        assert!(refused.is_err(), "a kept event was deleted");
        assert!(
            db.execute("UPDATE audit_events SET action = 'x' WHERE app_id = $1", &[app_id])
                .await
                .is_err()
        );
        assert_eq!(
            db.count(
                "SELECT COUNT(*) FROM audit_events WHERE app_id = $1",
                &[app_id]
            )
            .await
            .unwrap(),
            1
        );

        // An anchor altered by a database writer does not verify.
        let swap = "UPDATE audit_anchors SET through_hash = mac, mac = through_hash \
                    WHERE app_id = $1";
        db.execute(swap, &[app_id]).await.unwrap();
        let report = admin.verify_audit(app_id).await.unwrap();
        let problem = report.first_problem.expect("an altered anchor is reported");
        assert!(!report.ok);
        assert_eq!(problem.seq, through);
        assert!(problem.problem.contains("anchor"), "{problem:?}");
        db.execute(swap, &[app_id]).await.unwrap();
        assert!(admin.verify_audit(app_id).await.unwrap().ok);
        // Past the anchor, the first bad event is named as ever.
        let drop_trigger = match engine {
            Engine::Sqlite => "DROP TRIGGER audit_events_no_update",
            Engine::Postgres => "DROP TRIGGER audit_events_append_only ON audit_events",
        };
        db.execute(drop_trigger, &[]).await.unwrap();
        let first_kept = (through + 1).to_string();
        db.execute(
            "UPDATE audit_events SET body = replace(body, '{', '{ ') \
             WHERE app_id = $1 AND seq = CAST($2 AS BIGINT)",
            &[app_id, &first_kept],
        )
        .await
        .unwrap();
        let report = admin.verify_audit(app_id).await.unwrap();
        let problem = report.first_problem.expect("an altered event is reported");
        assert_eq!(problem.seq, through + 1);
        assert_eq!(problem.event_id.as_deref(), Some(kept[0].event["id"].as_str().unwrap()));
        db.execute(
            "UPDATE audit_anchors SET mac = through_hash WHERE app_id = $1",
            &[app_id],
        )
        .await
        .unwrap();
        assert!(!admin.verify_audit(app_id).await.unwrap().ok);
        // An anchor only moves forward.
        assert!(
            db.execute("DELETE FROM audit_anchors WHERE app_id = $1", &[app_id])
                .await
                .is_err()
        );
        assert!(
            db.execute(
                "UPDATE audit_anchors SET through_seq = 1 WHERE app_id = $1",
                &[app_id]
            )
            .await
            .is_err()
        );

        if engine == Engine::Postgres {
            let partitioned = db
                .count(
                    "SELECT COUNT(*) FROM pg_partitioned_table \
                     WHERE partrelid IN (to_regclass('audit_events'), to_regclass('request_nonces'))",
                    &[],
                )
                .await
                .unwrap();
            assert_eq!(partitioned, 2);
            let old_partition = format!("audit_events_p{old_month}");
            assert_eq!(partitions_named(&server, "audit_events", &old_partition).await, 0);
            let month = server.now().to_rfc3339()[..7].replace('-', "");
            let current = format!("audit_events_p{month}");
            assert_eq!(partitions_named(&server, "audit_events", &current).await, 1);
            // TRUNCATE skips row triggers, and a partitioned table's statement triggers do not
            // reach its partitions: each one refuses it itself.
            for table in [
                "audit_events",
                current.as_str(),
                "audit_events_default",
                "audit_anchors",
            ] {
                let truncated = db.execute(&format!("TRUNCATE {table}"), &[]).await;
                assert!(truncated.is_err(), "{table} was truncated");
            }
        }
        server.stop().await;
    })
    .await;
}

/// Retention removes only what signed anchors cover: an anchor row written without the key
/// (for any app) stops every removal, where the server would otherwise act on it.
#[tokio::test]
async fn a_forged_anchor_stops_retention_for_every_app() {
    on_every_engine(|engine| async move {
        let options = Options {
            audit_retention_days: Some(30),
            ..Options::default()
        };
        let server = TestServer::start_with(engine, options).await;
        let a = server.new_app("a").await;
        let b = server.new_app("b").await;
        server.mint_key(&a, MintKeyRequest::default()).await;
        let before = events(&server, a.info.id.as_str()).await.len();
        server.advance(100 * 24 * 3600);
        server.vault().maintain_time_partitions().await.unwrap();
        server.mint_key(&a, MintKeyRequest::default()).await;
        let bytes = match engine {
            Engine::Sqlite => "zeroblob(32)",
            Engine::Postgres => "decode(repeat('ab', 32), 'hex')",
        };
        server
            .database()
            .execute(
                &format!(
                    "INSERT INTO audit_anchors (app_id, through_seq, through_hash, at, mac) \
                     VALUES ($1, 1000000, {bytes}, 0, {bytes})"
                ),
                &[b.info.id.as_str()],
            )
            .await
            .unwrap();
        assert_eq!(server.vault().prune_audit_events().await.unwrap(), 0);
        assert_eq!(
            events(&server, a.info.id.as_str()).await.len(),
            before + 1,
            "nothing of app a was removed"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn audit_events_outside_every_partition_are_kept_in_default_and_pruned_there() {
    if !alter_testkit::engines().contains(&Engine::Postgres) {
        return;
    }
    let options = Options {
        audit_retention_days: Some(30),
        ..Options::default()
    };
    let server = TestServer::start_with(Engine::Postgres, options).await;
    let app = server.new_app("a").await;
    let app_id = app.info.id.as_str();
    let in_default = || async {
        server
            .database()
            .count(
                "SELECT COUNT(*) FROM audit_events_default WHERE app_id = $1",
                &[app_id],
            )
            .await
            .unwrap()
    };
    let month = |server: &TestServer| {
        format!(
            "audit_events_p{}",
            server.now().to_rfc3339()[..7].replace('-', "")
        )
    };
    // A year on, before any partition was made for it: the event still goes in.
    server.advance(400 * 24 * 3600);
    server.mint_key(&app, MintKeyRequest::default()).await;
    assert_eq!(in_default().await, 1);
    // No partition is made over rows the DEFAULT partition holds (PostgreSQL would refuse).
    let skipped = month(&server);
    server.vault().maintain_time_partitions().await.unwrap();
    assert_eq!(partitions_named(&server, "audit_events", &skipped).await, 0);

    server.advance(100 * 24 * 3600);
    server.vault().maintain_time_partitions().await.unwrap();
    server.mint_key(&app, MintKeyRequest::default()).await;
    assert_eq!(
        partitions_named(&server, "audit_events", &month(&server)).await,
        1
    );
    server.vault().prune_audit_events().await.unwrap();
    assert_eq!(in_default().await, 0, "rows behind the anchor are deleted");
    let kept = events(&server, app_id).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    let report = server.admin().verify_audit(app_id).await.unwrap();
    assert!(report.ok, "{report:?}");
    server.stop().await;
}
