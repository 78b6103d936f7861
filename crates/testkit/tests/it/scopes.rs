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
            let path = route.path.replace("{id}", &some_id);
            let response = server
                .raw(&unrelated.api_key, route.method, &path)
                .body(b"{}".to_vec())
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
                    assert_eq!(
                        response.json["required"],
                        serde_json::json!([scope]),
                        "{path}"
                    );
                    assert_eq!(response.json["granted"], serde_json::json!(["usage:read"]));
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
                        .body(b"{}".to_vec())
                        .send()
                        .await;
                    assert_ne!(
                        allowed.code(),
                        Some("insufficient_scope"),
                        "{path} with {scope}"
                    );
                }
                None => assert_eq!(response.status, 200, "{path}"),
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
