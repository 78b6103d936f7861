//! The `keys` namespace: derive, rotate, revoke (protocol part 1 §7.1).

use alter_proto::admin::MintKeyRequest;
use alter_sdk::{DeriveKeyRequest, Error};
use alter_testkit::{TestServer, on_every_engine};

fn derive(scopes: &[&str], expires_in: i64) -> DeriveKeyRequest {
    DeriveKeyRequest {
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        expires_in,
        cidr_allowlist: None,
        name: None,
        metadata: None,
    }
}

#[tokio::test]
async fn derived_keys_hold_a_subset_and_expire() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        let parent = server.app(&app.key.api_key);
        let derived = parent
            .keys()
            .derive(DeriveKeyRequest {
                metadata: Some(serde_json::json!({"ticket": "T-1"})),
                ..derive(&["keys:read", "grants:read:abc"], 600)
            })
            .await
            .unwrap();
        assert_eq!(derived.info.key_type, "dk");
        assert!(derived.api_key.starts_with("alter_dk_"));
        assert_eq!(derived.info.scopes, vec!["keys:read", "grants:read:abc"]);
        assert_eq!(
            derived.info.parent_key_id.as_deref(),
            Some(app.key.info.id.as_str())
        );
        assert!(derived.info.name.starts_with("derived-"));
        assert!(derived.info.expires_at.is_some());

        let child = server.app(&derived.api_key);
        child.scopes().list().await.unwrap();
        let cannot = child
            .keys()
            .derive(derive(&["keys:read"], 60))
            .await
            .unwrap_err();
        assert!(matches!(cannot, Error::InsufficientScope(_)), "{cannot}");
        server.advance(601);
        let expired = child.scopes().list().await.unwrap_err();
        assert!(matches!(expired, Error::KeyExpired(_)), "{expired}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn derivation_rules_are_enforced() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        let narrow = server
            .mint_key(
                &app,
                MintKeyRequest {
                    scopes: Some(vec!["keys:derive".into(), "keys:read".into()]),
                    cidr_allowlist: Some(vec!["127.0.0.0/8".into(), "::1/128".into()]),
                    expires_in: Some(3600),
                    ..Default::default()
                },
            )
            .await;
        let raw = |body: &str| {
            server
                .raw(&narrow.api_key, "POST", "/sdk/keys/derive")
                .body(body.as_bytes().to_vec())
                .send()
        };
        let cases = [
            (
                r#"{"scopes":["keys:admin"],"expires_in":60}"#,
                400,
                "invalid_scope_for_derived_key",
            ),
            (
                r#"{"scopes":["keys:derive"],"expires_in":60}"#,
                400,
                "invalid_scope_for_derived_key",
            ),
            (
                r#"{"scopes":[],"expires_in":60}"#,
                400,
                "invalid_scope_for_derived_key",
            ),
            (
                r#"{"scopes":["nope:read"],"expires_in":60}"#,
                422,
                "invalid_request",
            ),
            (
                r#"{"scopes":["keys:read"],"expires_in":0}"#,
                422,
                "invalid_request",
            ),
            (
                r#"{"scopes":["keys:read"],"expires_in":86401}"#,
                422,
                "invalid_request",
            ),
            (
                r#"{"scopes":["keys:read"],"expires_in":3601}"#,
                422,
                "invalid_request",
            ),
            (
                r#"{"scopes":["keys:read"],"expires_in":60,"cidr_allowlist":["10.0.0.0/8"]}"#,
                422,
                "invalid_request",
            ),
            (
                r#"{"scopes":["keys:read"],"expires_in":60,"unknown":1}"#,
                422,
                "invalid_request",
            ),
            (
                r#"{"scopes":"keys:read","expires_in":60}"#,
                422,
                "invalid_request",
            ),
            (
                r#"{"scopes":["keys:read"],"expires_in":60,"metadata":[1]}"#,
                422,
                "invalid_request",
            ),
        ];
        let before = server.admin().list_keys(&app.info.id).await.unwrap().len();
        for (body, status, code) in cases {
            let response = raw(body).await;
            assert_eq!(response.status, status, "{body}: {:?}", response.json);
            assert_eq!(response.code(), Some(code), "{body}");
        }
        assert_eq!(
            server.admin().list_keys(&app.info.id).await.unwrap().len(),
            before,
            "refused derivations change nothing"
        );
        let inside =
            raw(r#"{"scopes":["keys:read"],"expires_in":60,"cidr_allowlist":["127.0.0.1/32"]}"#)
                .await;
        assert_eq!(inside.status, 201, "{:?}", inside.json);
        assert_eq!(
            inside.json["cidr_allowlist"],
            serde_json::json!(["127.0.0.1/32"])
        );
        let inherited = raw(r#"{"scopes":["keys:read"],"expires_in":60}"#).await;
        assert_eq!(
            inherited.json["cidr_allowlist"],
            serde_json::json!(["127.0.0.0/8", "::1/128"])
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn revoking_a_key_revokes_what_was_derived_from_it() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        let parent = server.mint_key(&app, MintKeyRequest::default()).await;
        let parent_client = server.app(&parent.api_key);
        let child = parent_client
            .keys()
            .derive(derive(&["keys:read"], 600))
            .await
            .unwrap();
        let operator = server.app(&app.key.api_key);
        let revoked = operator
            .keys()
            .revoke(&parent.info.id, false)
            .await
            .unwrap();
        assert!(revoked.revoked_at.is_some());
        for key in [&parent.api_key, &child.api_key] {
            let e = server.app(key).scopes().list().await.unwrap_err();
            assert!(matches!(e, Error::KeyRevoked(_)), "{e}");
        }
        // Idempotent: the same revoked key comes back.
        let again = operator
            .keys()
            .revoke(&parent.info.id, false)
            .await
            .unwrap();
        assert_eq!(again.revoked_at, revoked.revoked_at);
        // Rotating a revoked key or a derived key is refused.
        let e = operator
            .keys()
            .rotate(&parent.info.id, 0)
            .await
            .unwrap_err();
        assert_eq!(e.status(), 409, "{e}");
        let live_child = server
            .app(&app.key.api_key)
            .keys()
            .derive(derive(&["keys:read"], 600))
            .await
            .unwrap();
        let e = operator
            .keys()
            .rotate(&live_child.info.id, 0)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("derived_key_not_rotatable"), "{e}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn another_apps_keys_look_not_found() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let a = server.new_app("a").await;
        let b = server.new_app("b").await;
        let client_b = server.app(&b.key.api_key);
        for e in [
            client_b
                .keys()
                .revoke(&a.key.info.id, false)
                .await
                .unwrap_err(),
            client_b.keys().rotate(&a.key.info.id, 0).await.unwrap_err(),
            client_b
                .keys()
                .revoke("not-a-uuid", false)
                .await
                .unwrap_err(),
            client_b
                .keys()
                .revoke(&uuid::Uuid::new_v4().to_string(), false)
                .await
                .unwrap_err(),
        ] {
            assert_eq!(e.status(), 404, "{e}");
            assert_eq!(e.code(), Some("key_not_found"));
        }
        server.app(&a.key.api_key).scopes().list().await.unwrap();
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn sdk_side_validation_mirrors_the_official_client() {
    let server = TestServer::start(alter_testkit::Engine::Sqlite).await;
    let app = server.new_app("a").await;
    let keys = server.app(&app.key.api_key);
    for e in [
        keys.keys().derive(derive(&[], 60)).await.unwrap_err(),
        keys.keys()
            .derive(derive(&["keys:derive"], 60))
            .await
            .unwrap_err(),
        keys.keys()
            .derive(derive(&["keys:read"], 0))
            .await
            .unwrap_err(),
        keys.keys().rotate("", 1).await.unwrap_err(),
        keys.keys().rotate("x", 31).await.unwrap_err(),
        keys.keys().revoke(" ", false).await.unwrap_err(),
    ] {
        assert!(matches!(e, Error::AlterValue(_)), "{e}");
    }
    server.stop().await;
}

#[tokio::test]
async fn derives_racing_a_revoke_of_their_parent_leave_no_usable_key() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        let parent = server.mint_key(&app, MintKeyRequest::default()).await;
        let operator = server.app(&app.key.api_key);
        let mut derives = Vec::new();
        for _ in 0..40 {
            let parent_client = server.app(&parent.api_key);
            derives.push(tokio::spawn(async move {
                parent_client
                    .keys()
                    .derive(derive(&["keys:read"], 600))
                    .await
            }));
        }
        let revoked = operator
            .keys()
            .revoke(&parent.info.id, false)
            .await
            .unwrap();
        assert!(revoked.revoked_at.is_some());
        let mut derived = Vec::new();
        for task in derives {
            // A derive that lost the race is refused; one that won was revoked with its parent.
            if let Ok(child) = task.await.unwrap() {
                derived.push(child);
            }
        }
        for child in &derived {
            let e = server
                .app(&child.api_key)
                .scopes()
                .list()
                .await
                .unwrap_err();
            assert!(matches!(e, Error::KeyRevoked(_)), "{e}");
        }
        let live_children: Vec<_> = server
            .admin()
            .list_keys(&app.info.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k.parent_key_id.as_deref() == Some(parent.info.id.as_str()))
            .filter(|k| k.revoked_at.is_none())
            .collect();
        assert!(live_children.is_empty(), "{live_children:?}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn rotating_a_key_ends_its_derived_keys_with_the_overlap() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        let operator = server.app(&app.key.api_key);
        let parent = server.mint_key(&app, MintKeyRequest::default()).await;
        let parent_client = server.app(&parent.api_key);
        let child = parent_client
            .keys()
            .derive(derive(&["keys:read"], 7200))
            .await
            .unwrap();
        operator.keys().rotate(&parent.info.id, 0).await.unwrap();
        let e = server
            .app(&child.api_key)
            .scopes()
            .list()
            .await
            .unwrap_err();
        assert!(matches!(e, Error::KeyExpired(_)), "{e}");

        // With an overlap, the derived key lasts as long as its parent's overlap.
        let parent = server.mint_key(&app, MintKeyRequest::default()).await;
        let child = server
            .app(&parent.api_key)
            .keys()
            .derive(derive(&["keys:read"], 7200))
            .await
            .unwrap();
        server
            .admin()
            .rotate_key(&app.info.id, &parent.info.id, Some(3600))
            .await
            .unwrap();
        server.app(&child.api_key).scopes().list().await.unwrap();
        server.advance(3600);
        let e = server
            .app(&child.api_key)
            .scopes()
            .list()
            .await
            .unwrap_err();
        assert!(matches!(e, Error::KeyExpired(_)), "{e}");
        server.stop().await;
    })
    .await;
}
