//! Every example of the reference page (`crates/sdk/examples/`) run, as written, against a
//! real server.

#[path = "../../../sdk/examples/create_managed_secret_grant.rs"]
mod create_managed_secret_grant;
#[path = "../../../sdk/examples/list_grants.rs"]
mod list_grants;
#[path = "../../../sdk/examples/revoke_delegation.rs"]
mod revoke_delegation;
#[path = "../../../sdk/examples/revoke_grant.rs"]
mod revoke_grant;

use alter_sdk::{CreateAgent, GrantItem, ListGrants};
use alter_testkit::{TestServer, on_every_engine};
use serde_json::json;

#[tokio::test]
async fn the_reference_page_runs() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let app = server.app(&world.app.key.api_key);
        let alice_jwt = world.idp.token("alice", json!({}));

        let created = create_managed_secret_grant::example(&app, &world.secret.id, &alice_jwt)
            .await
            .unwrap();
        assert_eq!(created.principal_type, "user");
        assert_eq!(created.label.as_deref(), Some("alice-prod-stripe"));

        let google = list_grants::example(&app, "google").await.unwrap();
        assert_eq!(
            (google.total, google.grants.len(), google.limit),
            (0, 0, 50)
        );
        let stripe = list_grants::example(&app, &world.secret.slug)
            .await
            .unwrap();
        assert_eq!(stripe.total, 1);
        let GrantItem::ManagedSecret(item) = &stripe.grants[0] else {
            panic!("a managed-secret grant")
        };
        assert_eq!(item.grant_id, created.grant_id);

        // Two delegations of alice's grant: one the operator removes, one the agent gives up.
        let agents = app.agents();
        let research = agents
            .create(CreateAgent::new("agent-research-bot", json!({})))
            .await
            .unwrap();
        let agent_key = research.api_key.clone().unwrap();
        let agent = server.agent(&agent_key);
        let second = app
            .create_managed_secret_grant(
                &world.secret.id,
                alter_sdk::Principal::user(&alice_jwt, "second"),
                None,
            )
            .await
            .unwrap();
        let user = server.user(&world.app.info.id, &alice_jwt);
        for grant in [&created.grant_id, &second.grant_id] {
            let r = user
                .post(
                    &format!("/grants/{grant}/delegations"),
                    json!({"agent_id": research.agent.id}),
                )
                .await;
            assert_eq!(r.status, 201, "{:?}", r.json);
        }
        assert_eq!(
            agent
                .list_grants(ListGrants::new().status("active"))
                .await
                .unwrap()
                .total,
            2
        );
        revoke_delegation::example(
            &app,
            &agent,
            &created.grant_id,
            &research.agent.id,
            &second.grant_id,
        )
        .await
        .unwrap();
        assert_eq!(
            agent
                .list_grants(ListGrants::new().status("active"))
                .await
                .unwrap()
                .total,
            0
        );
        assert_eq!(
            app.list_grants(ListGrants::new().status("active"))
                .await
                .unwrap()
                .total,
            2,
            "the grants stay"
        );

        let revoked = revoke_grant::example(&app, &created.grant_id)
            .await
            .unwrap();
        assert!(revoked.success);
        assert_eq!(revoked.grant_id, created.grant_id);
        server.stop().await;
    })
    .await;
}
