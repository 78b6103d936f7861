//! The identity namespace of an app's IdP: an issuer change cannot hand one issuer's users to
//! another's; inbound IdP lifecycle events (user deactivated, group membership changed) take
//! effect at once.

use alter_proto::admin::IdpRequest;
use alter_sdk::{CreateAgent, Principal};
use alter_testkit::idp::TestIdp;
use alter_testkit::{TestServer, on_every_engine};
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
