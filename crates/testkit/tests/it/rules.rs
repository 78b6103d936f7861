//! The rules step fails closed: when the rules or the shared rate-limit buckets cannot be read
//! (a real database fault, injected with a trigger or a renamed table), a credential use is
//! refused with 503 `policy_unavailable` and a `Retry-After`, nothing is released or sent, and
//! the refusal is audited; once the database is back, calls pass again.

use alter_proto::admin::{AuditQuery, CreateSecretRequest};
use alter_proto::policies::{CreateRuleRequest, RuleTargetBody};
use alter_sdk::{Principal, ProviderRequest};
use alter_testkit::upstream::Upstream;
use alter_testkit::{Engine, TestServer, on_every_engine};
use serde_json::json;

const BEARER: &str = "sk_live_rulesFault0123456789";

/// SQL that makes every write to the rate-limit buckets fail, and SQL that undoes it.
fn refuse_bucket_writes(engine: Engine) -> (&'static [&'static str], &'static [&'static str]) {
    match engine {
        Engine::Sqlite => (
            &[
                "CREATE TRIGGER refuse_bucket_insert BEFORE INSERT ON rate_buckets \
                 BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
                "CREATE TRIGGER refuse_bucket_update BEFORE UPDATE ON rate_buckets \
                 BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
            ],
            &[
                "DROP TRIGGER refuse_bucket_insert",
                "DROP TRIGGER refuse_bucket_update",
            ],
        ),
        Engine::Postgres => (
            &[
                "CREATE FUNCTION refuse_buckets() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN RAISE EXCEPTION 'could not write to file'; END $$",
                "CREATE TRIGGER refuse_buckets BEFORE INSERT OR UPDATE ON rate_buckets \
                 FOR EACH ROW EXECUTE FUNCTION refuse_buckets()",
            ],
            &[
                "DROP TRIGGER refuse_buckets ON rate_buckets",
                "DROP FUNCTION refuse_buckets()",
            ],
        ),
    }
}

async fn refused_unavailable(server: &TestServer, key: &str, grant: &str, upstream: &Upstream) {
    let app = server.app(key);
    let e = app
        .request(ProviderRequest::get(format!("{}/v1/x", upstream.url())).grant_id(grant))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (503, Some("policy_unavailable")),
        "{e:?}"
    );
    let e = app
        .proxy_request(ProviderRequest::get(format!("{}/v1/x", upstream.url())).grant_id(grant))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (503, Some("policy_unavailable")),
        "{e:?}"
    );
    let raw = server
        .raw(key, "POST", "/sdk/token")
        .body(
            json!({"grant_id": grant, "request": {"method": "GET", "url": format!("{}/v1/x", upstream.url())}})
                .to_string()
                .into_bytes(),
        )
        .send()
        .await;
    assert_eq!(raw.status, 503);
    assert_eq!(
        raw.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert!(!String::from_utf8_lossy(&raw.bytes).contains(BEARER));
}

#[tokio::test]
async fn rules_or_rate_limits_that_cannot_be_read_refuse_the_call() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("rules-fault").await;
        let upstream = Upstream::start().await;
        let secret = server
            .admin()
            .create_secret(
                &world.app.info.id,
                &CreateSecretRequest {
                    name: "Fault".into(),
                    secret_type: "bearer".into(),
                    value: BEARER.into(),
                    allowed_hosts: vec!["127.0.0.1".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let key = world.app.key.api_key.clone();
        let grant = server
            .app(&key)
            .create_managed_secret_grant(&secret.id, Principal::system(), None)
            .await
            .unwrap()
            .grant_id;
        server
            .admin()
            .add_rule(
                &world.app.info.id,
                &CreateRuleRequest {
                    target: RuleTargetBody {
                        kind: "grant".into(),
                        id: Some(grant.clone()),
                    },
                    kind: "rate_limit".into(),
                    effect: None,
                    mode: None,
                    body: json!({"per_minute": 1000, "per": "grant"}),
                    description: None,
                },
            )
            .await
            .unwrap();
        let call = || ProviderRequest::get(format!("{}/v1/x", upstream.url())).grant_id(&grant);
        server.app(&key).proxy_request(call()).await.unwrap();
        assert_eq!(upstream.received().len(), 1);

        // The rate limiter's table refuses writes: refused, nothing sent, audited.
        let db = server.database();
        let (refuse, allow) = refuse_bucket_writes(server.engine());
        for sql in refuse {
            db.execute(sql, &[]).await.unwrap();
        }
        refused_unavailable(&server, &key, &grant, &upstream).await;
        assert_eq!(upstream.received().len(), 1, "nothing reached the provider");
        for sql in allow {
            db.execute(sql, &[]).await.unwrap();
        }
        server.app(&key).proxy_request(call()).await.unwrap();
        assert_eq!(upstream.received().len(), 2);

        // The rules themselves cannot be read. A node reads them again only when the app's
        // rules version moved (every rule write bumps it): until then its copy is current and
        // still enforced (the rate limit above counts on).
        db.execute("ALTER TABLE policy_rules RENAME TO policy_rules_away", &[])
            .await
            .unwrap();
        server.app(&key).proxy_request(call()).await.unwrap();
        assert_eq!(upstream.received().len(), 3);
        db.execute(
            "UPDATE apps SET rules_version = rules_version + 1 WHERE id = $1",
            &[&world.app.info.id],
        )
        .await
        .unwrap();
        refused_unavailable(&server, &key, &grant, &upstream).await;
        db.execute("ALTER TABLE policy_rules_away RENAME TO policy_rules", &[])
            .await
            .unwrap();
        server.app(&key).request(call()).await.unwrap();
        assert_eq!(upstream.received().len(), 4);

        let denied = server
            .admin()
            .audit_events(
                &world.app.info.id,
                &AuditQuery {
                    action: Some("credential.denied".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let unavailable = denied
            .items
            .iter()
            .filter(|item| item.event["reason"] == "policy_unavailable")
            .count();
        assert_eq!(unavailable, 6, "every refusal is audited");
        server.stop().await;
    })
    .await;
}
