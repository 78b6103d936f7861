//! Every `/sdk/*` route checks the scope it needs.

use alter_proto::admin::MintKeyRequest;
use alter_server::routes::SDK_ROUTES;
use alter_testkit::{TestServer, on_every_engine};

#[tokio::test]
async fn every_route_enforces_its_scope() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        let unrelated = server
            .mint_key(
                &app,
                MintKeyRequest {
                    scopes: Some(vec!["usage:read".into()]),
                    ..Default::default()
                },
            )
            .await;
        let some_id = uuid::Uuid::new_v4().to_string();
        for route in SDK_ROUTES {
            let path = route
                .path
                .replace("{id}", &some_id)
                .replace("{agent}", &some_id)
                .replace("{key}", &some_id);
            let response = server
                .raw(&unrelated.api_key, route.method, &path)
                .body(body_for(route.path))
                .send()
                .await;
            match route.scope {
                Some(scope) => {
                    assert_eq!(
                        response.status, 403,
                        "{} {path}: {:?}",
                        route.method, response.json
                    );
                    assert_eq!(response.code(), Some("insufficient_scope"));
                    let mut any_of = vec![scope];
                    any_of.extend(route.alternatives);
                    assert_eq!(
                        response.json["required"],
                        serde_json::json!(any_of),
                        "{path}"
                    );
                    assert_eq!(response.json["granted"], serde_json::json!(["usage:read"]));
                    for scope in any_of {
                        let holder = server
                            .mint_key(
                                &app,
                                MintKeyRequest {
                                    scopes: Some(vec![scope.into()]),
                                    ..Default::default()
                                },
                            )
                            .await;
                        let allowed = server
                            .raw(&holder.api_key, route.method, &path)
                            .body(body_for(route.path))
                            .send()
                            .await;
                        assert_ne!(
                            allowed.code(),
                            Some("insufficient_scope"),
                            "{path} with {scope}"
                        );
                    }
                }
                // Past authentication, and no scope asked of the caller (the route may still
                // refuse for other reasons: `agents/me` wants an agent's key).
                None => {
                    assert_ne!(response.status, 401, "{path}: {:?}", response.json);
                    assert_ne!(response.code(), Some("insufficient_scope"), "{path}");
                    if route.path == "/sdk/scopes" {
                        assert_eq!(response.status, 200, "{path}");
                    }
                }
            }
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_catalogue_lists_every_resource_and_action() {
    let server = TestServer::start(alter_testkit::Engine::Sqlite).await;
    let app = server.new_app("a").await;
    let catalogue = server.app(&app.key.api_key).scopes().list().await.unwrap();
    assert_eq!(catalogue.scope_version, 1);
    for resource in ["grants", "keys", "agents", "secrets", "audit_logs"] {
        assert_eq!(
            catalogue.resources[resource].verbs,
            vec!["read", "write", "admin"]
        );
    }
    for action in [
        "tokens:retrieve",
        "proxy:execute",
        "keys:derive",
        "audit:emit",
    ] {
        assert!(
            catalogue.action_verbs.iter().any(|a| a == action),
            "{action}"
        );
    }
    server.stop().await;
}

/// A body the route parses, so the scope check (which some services make after parsing) is
/// what answers.
fn body_for(path: &str) -> Vec<u8> {
    let grant = uuid::Uuid::new_v4().to_string();
    let body = match path {
        "/sdk/token" => serde_json::json!({
            "grant_id": grant, "reason": null,
            "request": {"method": "GET", "url": "https://api.example.com/"},
        }),
        "/sdk/proxy" => serde_json::json!({
            "method": "GET", "url": "https://api.example.com/", "grant_id": grant,
        }),
        "/sdk/oauth/audit/api-call" => serde_json::json!({
            "grant_id": grant, "provider_id": "", "method": "GET",
            "url": "https://api.example.com/", "request_headers": {}, "request_body": null,
            "response_status": 200, "response_headers": {}, "response_body": null,
            "latency_ms": 1, "reason": null, "token_generation": null,
        }),
        "/sdk/spans" => serde_json::json!({
            "spans": [{"trace_id": "t", "name": "n", "start_time": "2026-12-07T10:00:00Z", "attributes": {}}],
        }),
        _ => serde_json::json!({}),
    };
    body.to_string().into_bytes()
}
