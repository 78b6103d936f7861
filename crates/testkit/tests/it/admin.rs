//! The operator admin API.

use alter_proto::admin::MintKeyRequest;
use alter_testkit::{TestServer, on_every_engine};

#[tokio::test]
async fn apps_and_keys_are_managed_with_the_admin_token() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let admin = server.admin();
        let app = admin.create_app("payments").await.unwrap();
        assert_eq!(app.name, "payments");
        assert_eq!(admin.get_app(&app.id).await.unwrap(), app);
        assert!(admin.list_apps().await.unwrap().contains(&app));

        let minted = admin
            .mint_key(
                &app.id,
                &MintKeyRequest {
                    name: Some("ci".into()),
                    scopes: Some(vec!["keys:read".into(), "tokens:retrieve".into()]),
                    expires_in: Some(3600),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(minted.api_key.starts_with("alter_rk_"));
        assert!(minted.api_key.starts_with(&minted.info.key_prefix));
        assert_eq!(minted.info.name, "ci");
        let listed = admin.list_keys(&app.id).await.unwrap();
        assert_eq!(listed, vec![minted.info.clone()]);
        let raw_list = reqwest::Client::new()
            .get(format!(
                "{}/admin/v1/apps/{}/keys",
                server.base_url(),
                app.id
            ))
            .bearer_auth(server.admin_token())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !raw_list.contains(&minted.api_key),
            "a key's plaintext is shown once"
        );

        let publishable = admin
            .mint_key(
                &app.id,
                &MintKeyRequest {
                    key_type: Some("pk".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(publishable.info.key_type, "pk");
        assert_eq!(
            publishable.info.scopes,
            vec!["connect:initiate", "providers:read"]
        );

        let rotated = admin
            .rotate_key(&app.id, &minted.info.id, Some(60))
            .await
            .unwrap();
        server.app(&minted.api_key).scopes().list().await.unwrap();
        server.app(&rotated.api_key).scopes().list().await.unwrap();
        let revoked = admin.revoke_key(&app.id, &rotated.info.id).await.unwrap();
        assert!(revoked.revoked_at.is_some());
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_admin_api_refuses_without_the_token_and_validates_input() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let http = reqwest::Client::new();
        let url = format!("{}/admin/v1/apps", server.base_url());
        for auth in [None, Some("Bearer wrong"), Some("Basic abc")] {
            let mut request = http.get(&url);
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{auth:?}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"], "invalid_admin_token");
        }

        let admin = server.admin();
        let app = admin.create_app("a").await.unwrap();
        let post = |path: String, body: &'static str| {
            http.post(format!("{}/admin/v1{path}", server.base_url()))
                .bearer_auth(server.admin_token())
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        for body in [
            r#"{"name":""}"#,
            r#"{"name":"x\u0000y"}"#,
            r#"{"nom":"x"}"#,
            r#"{"name":5}"#,
            "not json",
        ] {
            let response = post("/apps".into(), body).await.unwrap();
            assert_eq!(response.status(), 422, "{body}");
        }
        let keys = format!("/apps/{}/keys", app.id);
        for body in [
            r#"{"key_type":"dk"}"#,
            r#"{"key_type":"xx"}"#,
            r#"{"scopes":["everything"]}"#,
            r#"{"cidr_allowlist":["0.0.0.0/0"]}"#,
            r#"{"cidr_allowlist":["not-a-net"]}"#,
            r#"{"expires_in":-1}"#,
            r#"{"name":"   "}"#,
        ] {
            let response = post(keys.clone(), body).await.unwrap();
            assert_eq!(response.status(), 422, "{body}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"], "invalid_request");
        }
        assert!(
            admin.list_keys(&app.id).await.unwrap().is_empty(),
            "nothing was minted"
        );
        assert_eq!(
            admin.list_apps().await.unwrap().len(),
            1,
            "nothing else was created"
        );

        for missing in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
            let e = admin.list_keys(&missing).await.unwrap_err();
            assert_eq!((e.status(), e.code()), (404, Some("app_not_found")));
        }
        let e = admin
            .revoke_key(&app.id, &uuid::Uuid::new_v4().to_string())
            .await
            .unwrap_err();
        assert_eq!((e.status(), e.code()), (404, Some("key_not_found")));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn one_apps_keys_are_not_reachable_through_another_app() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let a = server.new_app("a").await;
        let b = server.new_app("b").await;
        let admin = server.admin();
        let e = admin
            .revoke_key(&b.info.id, &a.key.info.id)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("key_not_found"));
        let e = admin
            .rotate_key(&b.info.id, &a.key.info.id, None)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("key_not_found"));
        assert!(
            !admin
                .list_keys(&b.info.id)
                .await
                .unwrap()
                .iter()
                .any(|k| k.id == a.key.info.id)
        );
        server.stop().await;
    })
    .await;
}
