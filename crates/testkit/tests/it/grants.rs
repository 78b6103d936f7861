//! Managed-secret grants through the Rust SDK: every principal, listing, revoking, minting.

use alter_proto::admin::{CreateSecretRequest, MintKeyRequest};
use alter_sdk::{Error, GrantItem, GrantPolicy, ListGrants, ManagedSecretGrantItem, Principal};
use alter_testkit::{TestServer, on_every_engine};
use serde_json::json;

fn ms(item: &GrantItem) -> &ManagedSecretGrantItem {
    match item {
        GrantItem::ManagedSecret(item) => item,
        GrantItem::OAuth(_) => panic!("expected a managed-secret grant"),
    }
}

#[tokio::test]
async fn grants_for_users_groups_and_the_system() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let app = server.app(&world.app.key.api_key);
        let alice = world.idp.token(
            "alice",
            json!({"email": "alice@example.com", "groups": ["eng"]}),
        );

        let user = app
            .create_managed_secret_grant(
                &world.secret.id,
                Principal::user(&alice, "alice-prod-stripe"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(user.principal_type, "user");
        assert_eq!(user.label.as_deref(), Some("alice-prod-stripe"));
        assert_eq!(
            user.credential_id.as_deref(),
            Some(world.secret.id.as_str())
        );
        assert!(uuid::Uuid::try_parse(&user.grant_id).is_ok());

        let group = app
            .create_managed_secret_grant(
                &world.secret.slug,
                Principal::group("eng", &world.idp_id, "eng-stripe"),
                Some(
                    GrantPolicy::new()
                        .max_ttl_seconds(7200)
                        .default_ttl_seconds(3600),
                ),
            )
            .await
            .unwrap();
        assert_eq!(group.principal_type, "group");
        let system = app
            .create_managed_secret_grant(&world.secret.id, Principal::system(), None)
            .await
            .unwrap();
        assert_eq!(system.label, None);

        let page = app.list_grants(ListGrants::new()).await.unwrap();
        assert_eq!(
            (page.total, page.limit, page.offset, page.has_more),
            (3, 100, 0, false)
        );
        let items: Vec<&ManagedSecretGrantItem> = page.grants.iter().map(ms).collect();
        assert_eq!(items[0].grant_id, user.grant_id, "creation order");
        assert_eq!(items[0].managed_secret_slug, "stripe-production");
        assert_eq!(items[0].managed_secret_name, "Stripe Production");
        assert_eq!(items[0].access_via, "ownership");
        assert_eq!(items[0].status, "active");
        assert!(items[0].app_user_id.is_some());
        assert_eq!(items[1].principal_type, "group");
        assert!(
            items[1].grant_expires_at.is_some(),
            "default_ttl_seconds sets the end"
        );
        assert_eq!(
            items[1].grant_policy.as_ref().unwrap()["max_ttl_seconds"],
            7200
        );
        assert_eq!(items[2].principal_type, "system");
        // The raw page carries `grant_kind` on every item and no nulls the client rejects.
        let raw = server
            .raw(&world.app.key.api_key, "POST", "/sdk/grants/list")
            .body(br#"{"limit":100,"offset":0}"#.to_vec())
            .send()
            .await;
        for item in raw.json["grants"].as_array().unwrap() {
            assert_eq!(item["grant_kind"], "managed_secret");
            for field in [
                "scope_mismatch",
                "access_via",
                "delegated_agent_ids",
                "scopes",
            ] {
                assert!(
                    !item.get(field).is_some_and(|v| v.is_null()),
                    "{field} is never null"
                );
            }
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn listing_filters_and_pages() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let other = server
            .admin()
            .create_secret(
                &world.app.info.id,
                &CreateSecretRequest {
                    name: "OpenAI".into(),
                    secret_type: "header".into(),
                    header: Some("X-Api-Key".into()),
                    value: "sk-openai".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let app = server.app(&world.app.key.api_key);
        for i in 0..5 {
            app.create_managed_secret_grant(
                &world.secret.id,
                Principal::system().with_label(format!("s{i}")),
                None,
            )
            .await
            .unwrap();
        }
        let short = app
            .create_managed_secret_grant(
                &other.id,
                Principal::system(),
                Some(GrantPolicy::new().max_ttl_seconds(60)),
            )
            .await
            .unwrap();
        let page = app
            .list_grants(
                ListGrants::new()
                    .provider_id("stripe-production")
                    .limit(2)
                    .offset(2),
            )
            .await
            .unwrap();
        assert_eq!((page.total, page.grants.len(), page.has_more), (5, 2, true));
        assert_eq!(ms(&page.grants[0]).label.as_deref(), Some("s2"));
        let by_label = app
            .list_grants(ListGrants::new().label("s4"))
            .await
            .unwrap();
        assert_eq!(by_label.total, 1);

        // Past its TTL a grant reads expired before anything flips it.
        server.advance(61);
        let expired = app
            .list_grants(ListGrants::new().status("expired"))
            .await
            .unwrap();
        assert_eq!(expired.total, 1);
        assert_eq!(ms(&expired.grants[0]).grant_id, short.grant_id);
        assert_eq!(ms(&expired.grants[0]).status, "expired");
        let active = app
            .list_grants(ListGrants::new().status("active"))
            .await
            .unwrap();
        assert_eq!(active.total, 5);
        let all = app
            .list_grants(ListGrants::new().limit(1000))
            .await
            .unwrap();
        assert_eq!(all.total, 6);
        let bad = server
            .raw(&world.app.key.api_key, "POST", "/sdk/grants/list")
            .body(br#"{"limit":100,"offset":0,"status":"sleeping"}"#.to_vec())
            .send()
            .await;
        assert_eq!((bad.status, bad.code()), (422, Some("invalid_request")));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn revoking_is_final_and_named_errors_reach_the_caller() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let app = server.app(&world.app.key.api_key);
        let grant = app
            .create_managed_secret_grant(&world.secret.id, Principal::system(), None)
            .await
            .unwrap();
        let revoked = app
            .revoke_grant(&grant.grant_id, Some("user offboarded"))
            .await
            .unwrap();
        assert!(revoked.success);
        assert_eq!(revoked.grant_id, grant.grant_id);
        assert!(alter_core::time::Timestamp::parse_rfc3339(&revoked.revoked_at).is_some());
        let again = app.revoke_grant(&grant.grant_id, None).await.unwrap_err();
        assert!(matches!(again, Error::GrantRevoked(_)), "{again}");
        let unknown = app
            .revoke_grant(&uuid::Uuid::new_v4().to_string(), None)
            .await
            .unwrap_err();
        assert!(matches!(unknown, Error::GrantNotFound(_)), "{unknown}");
        let listed = app
            .list_grants(ListGrants::new().status("revoked"))
            .await
            .unwrap();
        assert_eq!(listed.total, 1);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn policies_the_secret_forbids_are_policy_violations() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let capped = server
            .admin()
            .create_secret(
                &world.app.info.id,
                &CreateSecretRequest {
                    name: "Capped".into(),
                    secret_type: "basic".into(),
                    value: "user:pass".into(),
                    max_grant_ttl_seconds: Some(3600),
                    principals: vec!["system".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let app = server.app(&world.app.key.api_key);
        let too_long = app
            .create_managed_secret_grant(
                &capped.id,
                Principal::system(),
                Some(GrantPolicy::new().max_ttl_seconds(7200)),
            )
            .await
            .unwrap_err();
        assert!(matches!(too_long, Error::PolicyViolation(_)), "{too_long}");
        assert_eq!(too_long.code(), Some("secret_limit_exceeded"));
        let alice = world.idp.token("alice", json!({}));
        let wrong_principal = app
            .create_managed_secret_grant(&capped.id, Principal::user(&alice, "a"), None)
            .await
            .unwrap_err();
        assert_eq!(wrong_principal.code(), Some("principal_not_allowed"));
        // With no lifetime asked, the cap applies.
        let capped_grant = app
            .create_managed_secret_grant(&capped.id, Principal::system(), None)
            .await
            .unwrap();
        let page = app
            .list_grants(ListGrants::new().provider_id(&capped.slug))
            .await
            .unwrap();
        assert_eq!(page.total, 1);
        assert_eq!(ms(&page.grants[0]).grant_id, capped_grant.grant_id);
        assert!(ms(&page.grants[0]).grant_expires_at.is_some());

        let local = app
            .create_managed_secret_grant(
                &capped.id,
                Principal::system(),
                Some(GrantPolicy::new().max_ttl_seconds(-5)),
            )
            .await
            .unwrap_err();
        assert!(matches!(local, Error::AlterValue(_)), "{local}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn sibling_grants_are_minted_with_their_own_labels() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let app = server.app(&world.app.key.api_key);
        let alice = world.idp.token("alice", json!({}));
        let source = app
            .create_managed_secret_grant(&world.secret.id, Principal::user(&alice, "work"), None)
            .await
            .unwrap();
        let sibling = app
            .mint_grant(
                &source.grant_id,
                "personal",
                Some(GrantPolicy::new().max_ttl_seconds(600)),
            )
            .await
            .unwrap();
        assert_eq!(sibling.provider_id, "stripe-production");
        assert_eq!(sibling.principal_type, "user");
        assert_eq!(sibling.label.as_deref(), Some("personal"));
        assert!(sibling.expires_at.is_some());
        let taken = app
            .mint_grant(&source.grant_id, "work", None)
            .await
            .unwrap_err();
        assert!(matches!(taken, Error::SiblingLabelConflict(_)), "{taken}");
        assert_eq!(taken.info().str_field("label"), Some("work"));
        let dup = app
            .create_managed_secret_grant(
                &world.secret.id,
                Principal::user(&alice, "personal"),
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(dup, Error::SiblingLabelConflict(_)), "{dup}");
        let raw = server
            .raw(
                &world.app.key.api_key,
                "POST",
                &format!("/sdk/grants/{}/mint", source.grant_id),
            )
            .body(br#"{"label":"x","grant_policy":{"default_ttl_seconds":5}}"#.to_vec())
            .send()
            .await;
        assert_eq!(
            (raw.status, raw.code()),
            (422, Some("invalid_grant_policy"))
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn user_tokens_are_verified_and_users_get_stable_ids() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let app = server.app(&world.app.key.api_key);
        let first = app
            .create_managed_secret_grant(
                &world.secret.id,
                Principal::user(world.idp.token("alice", json!({})), "one"),
                None,
            )
            .await
            .unwrap();
        let second = app
            .create_managed_secret_grant(
                &world.secret.id,
                Principal::user(world.idp.token("alice", json!({})), "two"),
                None,
            )
            .await
            .unwrap();
        let page = app.list_grants(ListGrants::new()).await.unwrap();
        let users: Vec<_> = page
            .grants
            .iter()
            .map(|g| ms(g).app_user_id.clone().unwrap())
            .collect();
        assert_eq!(users[0], users[1], "one user, one app_user_id");
        assert_ne!(users[0], "alice", "app_user_id is not the IdP subject");
        assert_ne!(first.grant_id, second.grant_id);

        for bad in [
            world.idp.expired_token("alice"),
            world.idp.wrong_audience_token("alice"),
            "not.a.jwt".to_owned(),
            alter_testkit::idp::unsigned_token(&world.idp.claims("alice", json!({}))),
        ] {
            let e = app
                .create_managed_secret_grant(&world.secret.id, Principal::user(bad, "x"), None)
                .await
                .unwrap_err();
            assert!(matches!(e, Error::ReAuthRequired(_)), "{e}");
            assert_eq!(e.code(), Some("jwt_validation_error"));
        }
        let alice_only = app
            .list_grants(ListGrants::new().end_user_token(world.idp.token("alice", json!({}))))
            .await
            .unwrap();
        assert_eq!(alice_only.total, 2);
        let bob_only = app
            .list_grants(ListGrants::new().end_user_token(world.idp.token("bob", json!({}))))
            .await
            .unwrap();
        assert_eq!(bob_only.total, 0);
        assert_eq!(
            app.list_grants(ListGrants::new()).await.unwrap().total,
            2,
            "nothing was added by refusals"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_key_without_secrets_write_creates_no_grant() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let narrow = server
            .mint_key(
                &world.app,
                MintKeyRequest {
                    scopes: Some(vec!["grants:read".into()]),
                    ..Default::default()
                },
            )
            .await;
        let e = server
            .app(&narrow.api_key)
            .create_managed_secret_grant(&world.secret.id, Principal::system(), None)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InsufficientScope(_)), "{e}");
        server.stop().await;
    })
    .await;
}
