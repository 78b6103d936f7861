//! Traces: a call carrying a W3C `traceparent` is recorded with its trace id, and the operator
//! sees the trace's audit events beside the spans the caller reported (`POST /sdk/spans`),
//! each app only its own.

use alter_proto::admin::AuditQuery;
use alter_sdk::Principal;
use alter_testkit::{TestServer, on_every_engine};
use serde_json::json;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn spans(ids: &[&str]) -> String {
    let items: Vec<_> = ids
        .iter()
        .map(|id| {
            json!({
                "trace_id": TRACE, "name": format!("step {id}"), "span_id": id,
                "start_time": "2026-12-07T10:00:00Z", "attributes": {},
            })
        })
        .collect();
    json!({ "spans": items }).to_string()
}

#[tokio::test]
async fn a_traces_records_and_spans_are_shown_together_per_app() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let a = server.world("a").await;
        let b = server.world("b").await;
        let grant = server
            .app(&a.app.key.api_key)
            .create_managed_secret_grant(&a.secret.id, Principal::system(), None)
            .await
            .unwrap()
            .grant_id;
        let release = |traceparent: &str| {
            server
                .raw(&a.app.key.api_key, "POST", "/sdk/token")
                .header("traceparent", traceparent)
                .body(
                    json!({
                        "grant_id": grant,
                        "request": {"method": "GET", "url": "https://api.stripe.com/v1/charges"},
                    })
                    .to_string(),
                )
                .send()
        };
        let traced = format!("00-{TRACE}-00f067aa0ba902b7-01");
        assert_eq!(release(&traced).await.status, 200);
        // Malformed or all-zero parents are ignored, never refused: the header is unsigned.
        for ignored in [
            "00-xyz-00f067aa0ba902b7-01".to_owned(),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("01-{TRACE}-00f067aa0ba902b7"),
        ] {
            assert_eq!(release(&ignored).await.status, 200);
        }
        let emit =
            |key: &str, body: String| server.raw(key, "POST", "/sdk/spans").body(body).send();
        let stored = emit(&a.app.key.api_key, spans(&["s1", "s2"])).await;
        assert_eq!(stored.json, json!({"accepted": 2}));
        // The same ids in another app are that app's own spans.
        let other = emit(&b.app.key.api_key, spans(&["s1", "s3"])).await;
        assert_eq!(other.json, json!({"accepted": 2}));
        let again = emit(&a.app.key.api_key, spans(&["s2", "s3"])).await;
        assert_eq!(again.json, json!({"accepted": 1}));
        // Bad input: a stable code, nothing stored.
        let too_many: Vec<String> = (0..51).map(|i| format!("x{i}")).collect();
        let refused = emit(
            &a.app.key.api_key,
            spans(&too_many.iter().map(String::as_str).collect::<Vec<_>>()),
        )
        .await;
        assert_eq!(refused.status, 422, "{:?}", refused.json);
        assert_eq!(refused.code(), Some("invalid_request"));

        let admin = server.admin();
        let view = admin.trace(&a.app.info.id, TRACE).await.unwrap();
        let ids: Vec<&str> = view.spans.iter().map(|s| s.span_id.as_str()).collect();
        assert_eq!(ids, ["s1", "s2", "s3"]);
        assert_eq!(view.events.len(), 1, "one call carried the trace");
        assert_eq!(view.events[0].event["action"], "credential.released");
        assert_eq!(view.events[0].event["trace_id"], TRACE);
        let seen_by_b = admin.trace(&b.app.info.id, TRACE).await.unwrap();
        assert_eq!(seen_by_b.spans.len(), 2);
        assert!(seen_by_b.events.is_empty());
        // The audit listing filters by trace too, and the chain still verifies.
        let listed = admin
            .audit_events(
                &a.app.info.id,
                &AuditQuery {
                    trace: Some(TRACE.into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 1);
        assert!(admin.verify_audit(&a.app.info.id).await.unwrap().ok);
        server.stop().await;
    })
    .await;
}
