//! A second app's key sees nothing of the first app: every route answers "not found" or an
//! empty list.

use alter_sdk::agents::UpdateAgent;
use alter_sdk::{CreateAgent, DelegateOptions, ListGrants, Principal};
use alter_testkit::{TestServer, on_every_engine};
use serde_json::json;

#[tokio::test]
async fn another_apps_objects_look_not_found_on_every_route() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let a = server.world("a").await;
        let b = server.world("b").await;
        let app_a = server.app(&a.app.key.api_key);
        let alice = a.idp.token("alice", json!({}));
        let grant = app_a
            .create_managed_secret_grant(&a.secret.id, Principal::user(&alice, "l"), None)
            .await
            .unwrap();
        let agent = app_a
            .agents()
            .create(CreateAgent::new("bot", json!({})))
            .await
            .unwrap();
        server
            .user(&a.app.info.id, &alice)
            .post(
                &format!("/grants/{}/delegations", grant.grant_id),
                json!({"agent_id": agent.agent.id}),
            )
            .await;

        let intruder = server.app(&b.app.key.api_key);
        assert_eq!(
            intruder.list_grants(ListGrants::new()).await.unwrap().total,
            0
        );
        let not_found = |e: alter_sdk::Error| {
            assert_eq!(e.status(), 404, "{e}");
        };
        not_found(
            intruder
                .revoke_grant(&grant.grant_id, None)
                .await
                .unwrap_err(),
        );
        not_found(
            intruder
                .mint_grant(&grant.grant_id, "x", None)
                .await
                .unwrap_err(),
        );
        not_found(
            intruder
                .create_managed_secret_grant(&a.secret.id, Principal::system(), None)
                .await
                .unwrap_err(),
        );
        not_found(intruder.agents().get(&agent.agent.id).await.unwrap_err());
        not_found(
            intruder
                .agents()
                .update(&agent.agent.id, UpdateAgent::default())
                .await
                .unwrap_err(),
        );
        not_found(intruder.agents().delete(&agent.agent.id).await.unwrap_err());
        not_found(
            intruder
                .agents()
                .mint_key(&agent.agent.id)
                .await
                .unwrap_err(),
        );
        not_found(
            intruder
                .agents()
                .list_keys(&agent.agent.id)
                .await
                .unwrap_err(),
        );
        not_found(
            intruder
                .agents()
                .suspend(&agent.agent.id)
                .await
                .unwrap_err(),
        );
        not_found(
            intruder
                .agents()
                .revoke_key(&agent.agent.id, &agent.key_id, true)
                .await
                .unwrap_err(),
        );
        not_found(
            intruder
                .keys()
                .revoke(&agent.key_id, true)
                .await
                .unwrap_err(),
        );
        not_found(
            intruder
                .keys()
                .rotate(&a.app.key.info.id, 1)
                .await
                .unwrap_err(),
        );
        assert!(
            intruder
                .agents()
                .get_by_name("bot")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(intruder.agents().list(true, 100, 0).await.unwrap().total, 0);
        // Revoking a delegation of another app is a no-op, never a change.
        intruder
            .revoke_delegation(&grant.grant_id, &agent.agent.id)
            .await
            .unwrap();
        let acting = intruder.get_agent(&agent.agent.id).unwrap();
        let e = acting.list_grants(ListGrants::new()).await.unwrap_err();
        assert_eq!(e.code(), Some("caller_agent_unresolved"));
        let b_agent = intruder
            .agents()
            .create(CreateAgent::new("thief", json!({})))
            .await
            .unwrap();
        let thief = server.agent(b_agent.api_key.as_deref().unwrap());
        not_found(
            thief
                .delegate(
                    &grant.grant_id,
                    &b_agent.agent.id,
                    DelegateOptions::default(),
                )
                .await
                .unwrap_err(),
        );
        thief.revoke_delegation(&grant.grant_id).await.unwrap();
        // The user API of app B does not know app A's grants, even with a valid app-A token.
        let cross = server.user(&b.app.info.id, &alice).get("/grants").await;
        assert_eq!(
            cross.status, 401,
            "app B's IdP does not vouch for app A's users"
        );
        // Admin API: app B's scope does not reach app A's objects.
        let admin = server.admin();
        for e in [
            admin
                .get_secret(&b.app.info.id, &a.secret.id)
                .await
                .unwrap_err(),
            admin
                .get_agent(&b.app.info.id, &agent.agent.id)
                .await
                .unwrap_err(),
            admin
                .revoke_grant(&b.app.info.id, &grant.grant_id, None)
                .await
                .unwrap_err(),
        ] {
            assert_eq!(e.status(), 404, "{e}");
        }
        // Nothing of app A changed.
        let seen = server
            .agent(&agent.api_key.clone().unwrap())
            .list_grants(ListGrants::new().status("active"))
            .await
            .unwrap();
        assert_eq!(seen.total, 1);
        assert_eq!(
            app_a
                .list_grants(ListGrants::new().status("active"))
                .await
                .unwrap()
                .total,
            2
        );
        server.stop().await;
    })
    .await;
}
