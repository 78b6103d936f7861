//! Delegations: by end-user consent, by the operator, onward by agents; revocation on every
//! path; validity re-checked on every use.

use alter_proto::admin::{CreateDelegationRequest, CreateSecretRequest};
use alter_proto::agents::UpdateAgentRequest;
use alter_sdk::{
    CreateAgent, DelegateOptions, Error, GrantItem, ListGrants, Principal, UpdateAgent,
};
use alter_testkit::{TestServer, World, on_every_engine};
use serde_json::json;

struct Setup {
    world: World,
    agent_id: String,
    agent_key: String,
    grant_id: String,
    alice: String,
}

/// An app whose user alice holds a grant, and an agent she can delegate it to.
async fn setup(server: &TestServer) -> Setup {
    let world = server.world("a").await;
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
    let agent = app
        .agents()
        .create(CreateAgent::new(
            "assistant",
            json!({"managed_secret_slugs": ["stripe-production"]}),
        ))
        .await
        .unwrap();
    Setup {
        agent_id: agent.agent.id,
        agent_key: agent.api_key.unwrap(),
        grant_id: grant.grant_id,
        alice,
        world,
    }
}

fn ids(page: &alter_sdk::GrantList) -> Vec<String> {
    page.grants
        .iter()
        .map(|g| match g {
            GrantItem::ManagedSecret(g) => g.grant_id.clone(),
            GrantItem::OAuth(g) => g.grant_id.clone(),
        })
        .collect()
}

#[tokio::test]
async fn a_user_delegates_and_the_agent_sees_only_its_delegation() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let s = setup(&server).await;
        let user = server.user(&s.world.app.info.id, &s.alice);
        let me = user.get("/me").await;
        assert_eq!(me.status, 200, "{:?}", me.json);
        assert_eq!(me.json["subject"], "alice");
        assert_eq!(me.json["groups"], json!(["eng"]));
        let choices = user.get("/agents").await;
        assert_eq!(choices.json[0]["name"], "assistant");

        let made = user
            .post(
                &format!("/grants/{}/delegations", s.grant_id),
                json!({"agent_id": s.agent_id, "ttl_seconds": 3600}),
            )
            .await;
        assert_eq!(made.status, 201, "{:?}", made.json);
        assert_eq!(made.json["parent_grant_id"], s.grant_id.as_str());
        assert_eq!(made.json["depth"], 1);
        assert_eq!(made.json["delegable"], false);
        assert_eq!(made.json["grant_kind"], "managed_secret");
        let child = made.json["grant_id"].as_str().unwrap().to_owned();

        let agent = server.agent(&s.agent_key);
        let seen = agent.list_grants(ListGrants::new()).await.unwrap();
        assert_eq!(
            ids(&seen),
            vec![child.clone()],
            "the agent sees its delegation only"
        );
        let GrantItem::ManagedSecret(item) = &seen.grants[0] else {
            panic!()
        };
        assert_eq!(item.access_via, "ms_delegation");
        assert!(item.delegated_at.is_some());
        assert_eq!(item.parent_grant_id.as_deref(), Some(s.grant_id.as_str()));
        let by_alice = agent
            .list_grants(ListGrants::new().end_user_token(&s.alice))
            .await
            .unwrap();
        assert_eq!(by_alice.total, 1);
        let bob = s.world.idp.token("bob", json!({}));
        let by_bob = agent
            .list_grants(ListGrants::new().end_user_token(&bob))
            .await
            .unwrap();
        assert_eq!(by_bob.total, 0);

        let mine = user.get("/delegations").await;
        assert_eq!(mine.json["total"], 1);
        let app = server.app(&s.world.app.key.api_key);
        assert_eq!(
            app.list_grants(ListGrants::new()).await.unwrap().total,
            2,
            "the app sees both"
        );

        // Renewing is an upsert of the same child.
        let renewed = user
            .post(
                &format!("/grants/{}/delegations", s.grant_id),
                json!({"agent_id": s.agent_id, "ttl_seconds": 60}),
            )
            .await;
        assert_eq!(renewed.json["grant_id"], child.as_str());

        // Bob cannot delegate alice's grant, nor revoke her delegation.
        let bob_user = server.user(&s.world.app.info.id, &bob);
        let e = bob_user
            .post(
                &format!("/grants/{}/delegations", s.grant_id),
                json!({"agent_id": s.agent_id}),
            )
            .await;
        assert_eq!(e.status, 404);
        assert_eq!(
            bob_user
                .delete(&format!("/delegations/{child}"))
                .await
                .status,
            404
        );
        let revoked = user.delete(&format!("/delegations/{child}")).await;
        assert_eq!(revoked.json["status"], "revoked");
        assert_eq!(
            agent
                .list_grants(ListGrants::new().status("active"))
                .await
                .unwrap()
                .total,
            0
        );
        // A bad token gets the same refusal as an unknown app.
        let bad = server
            .user(&s.world.app.info.id, "nope")
            .get("/grants")
            .await;
        assert_eq!(
            (bad.status, bad.code()),
            (401, Some("jwt_validation_error"))
        );
        let elsewhere = server
            .user(&uuid::Uuid::new_v4().to_string(), &s.alice)
            .get("/grants")
            .await;
        assert_eq!(
            (elsewhere.status, elsewhere.code()),
            (401, Some("jwt_validation_error"))
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn revoking_on_every_path() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let s = setup(&server).await;
        let user = server.user(&s.world.app.info.id, &s.alice);
        let delegate = |grant: String| {
            let user = user.clone();
            let agent = s.agent_id.clone();
            async move {
                let r = user
                    .post(
                        &format!("/grants/{grant}/delegations"),
                        json!({"agent_id": agent}),
                    )
                    .await;
                assert_eq!(r.status, 201, "{:?}", r.json);
                r.json["grant_id"].as_str().unwrap().to_owned()
            }
        };
        let app = server.app(&s.world.app.key.api_key);
        let agent = server.agent(&s.agent_key);

        // Operator path, by the parent grant's id: the parent stays.
        delegate(s.grant_id.clone()).await;
        app.revoke_delegation(&s.grant_id, &s.agent_id)
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
        let parent = app
            .list_grants(ListGrants::new().status("active"))
            .await
            .unwrap();
        assert_eq!(ids(&parent), vec![s.grant_id.clone()]);
        // Idempotent: nothing left, still fine; unknown ids too.
        app.revoke_delegation(&s.grant_id, &s.agent_id)
            .await
            .unwrap();
        app.revoke_delegation(&uuid::Uuid::new_v4().to_string(), &s.agent_id)
            .await
            .unwrap();

        // Self path.
        delegate(s.grant_id.clone()).await;
        agent.revoke_delegation(&s.grant_id).await.unwrap();
        assert_eq!(
            agent
                .list_grants(ListGrants::new().status("active"))
                .await
                .unwrap()
                .total,
            0
        );

        // An agent on the operator path, an app on the self path.
        let e = agent.keys(); // keeps the agent client alive in this scope
        let _ = e;
        let op = server
            .raw(
                &s.agent_key,
                "DELETE",
                &format!("/sdk/grants/{}/delegations/{}", s.grant_id, s.agent_id),
            )
            .send()
            .await;
        assert_eq!((op.status, op.code()), (403, Some("use_self_revoke_path")));
        let me = app.get_agent(&s.agent_id).unwrap();
        me.revoke_delegation(&s.grant_id).await.unwrap();
        let app_me = server
            .raw(
                &s.world.app.key.api_key,
                "DELETE",
                &format!("/sdk/grants/{}/delegations/me", s.grant_id),
            )
            .send()
            .await;
        assert_eq!(
            (app_me.status, app_me.code()),
            (403, Some("agent_key_required"))
        );

        // Revoking the parent revokes its children in the same transaction.
        let child = delegate(s.grant_id.clone()).await;
        app.revoke_grant(&s.grant_id, Some("offboarded"))
            .await
            .unwrap();
        let revoked = app
            .list_grants(ListGrants::new().status("revoked"))
            .await
            .unwrap();
        assert!(ids(&revoked).contains(&child));
        assert!(ids(&revoked).contains(&s.grant_id));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn onward_delegation_follows_the_holders_consent() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let s = setup(&server).await;
        let app = server.app(&s.world.app.key.api_key);
        let second = app
            .agents()
            .create(CreateAgent::new("helper", json!({})))
            .await
            .unwrap();
        let user = server.user(&s.world.app.info.id, &s.alice);
        let leaf = user
            .post(
                &format!("/grants/{}/delegations", s.grant_id),
                json!({"agent_id": s.agent_id}),
            )
            .await
            .json["grant_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let agent = server.agent(&s.agent_key);
        let e = agent
            .delegate(&leaf, &second.agent.id, DelegateOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::GrantNotDelegable(_)), "{e}");
        assert_eq!(
            e.info().str_field("detail_reason"),
            Some("holder_not_delegable")
        );

        let delegable = user
            .post(
                &format!("/grants/{}/delegations", s.grant_id),
                json!({"agent_id": s.agent_id, "delegable": true}),
            )
            .await
            .json["grant_id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(delegable, leaf, "the same child, now delegable");
        let hop = agent
            .delegate(
                &leaf,
                &second.agent.id,
                DelegateOptions {
                    ttl_seconds: Some(600),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(hop.depth, 2);
        assert_eq!(hop.parent_grant_id, leaf);
        assert!(!hop.delegable);
        let helper = server.agent(second.api_key.as_deref().unwrap());
        assert_eq!(
            ids(&helper.list_grants(ListGrants::new()).await.unwrap()),
            vec![hop.grant_id.clone()]
        );
        let unknown = agent
            .delegate(
                &leaf,
                &uuid::Uuid::new_v4().to_string(),
                DelegateOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(unknown, Error::AgentNotFound(_)), "{unknown}");
        let not_held = agent
            .delegate(&s.grant_id, &second.agent.id, DelegateOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(not_held, Error::GrantNotFound(_)), "{not_held}");
        // The user revokes her delegation: the onward hop goes with it.
        user.delete(&format!("/delegations/{leaf}")).await;
        assert_eq!(
            helper
                .list_grants(ListGrants::new().status("active"))
                .await
                .unwrap()
                .total,
            0
        );

        // Agent-owned grants (of a secret the operator opened to agents) have no consenting
        // user.
        let opened = server
            .admin()
            .create_secret(
                &s.world.app.info.id,
                &CreateSecretRequest {
                    name: "Agent Owned".into(),
                    secret_type: "bearer".into(),
                    value: "agent-owned-value".into(),
                    principals: vec!["agent".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let allowlist = json!({"managed_secret_slugs": ["stripe-production", opened.slug]});
        app.agents()
            .update(
                &s.agent_id,
                UpdateAgent {
                    changes: UpdateAgentRequest {
                        scopes: Some(allowlist),
                        ..Default::default()
                    },
                    expected_version: Some(1),
                    grace_seconds: None,
                },
            )
            .await
            .unwrap();
        let own = agent
            .create_managed_secret_grant(&opened.id, None, None)
            .await
            .unwrap();
        let e = agent
            .delegate(&own.grant_id, &second.agent.id, DelegateOptions::default())
            .await
            .unwrap_err();
        assert_eq!(
            e.info().str_field("detail_reason"),
            Some("no_consenting_user")
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_operator_delegates_grants_the_app_owns() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let s = setup(&server).await;
        let app = server.app(&s.world.app.key.api_key);
        let system = app
            .create_managed_secret_grant(&s.world.secret.id, Principal::system(), None)
            .await
            .unwrap();
        let admin = server.admin();
        let made = admin
            .delegate_grant(
                &s.world.app.info.id,
                &system.grant_id,
                &CreateDelegationRequest {
                    agent_id: s.agent_id.clone(),
                    ttl_seconds: Some(60),
                    delegable: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(made.parent_grant_id, system.grant_id);
        assert!(made.expires_at.is_some());
        let agent = server.agent(&s.agent_key);
        assert_eq!(agent.list_grants(ListGrants::new()).await.unwrap().total, 1);
        // A user's grant is the user's to delegate, not the operator's.
        let e = admin
            .delegate_grant(
                &s.world.app.info.id,
                &s.grant_id,
                &CreateDelegationRequest {
                    agent_id: s.agent_id.clone(),
                    ttl_seconds: None,
                    delegable: None,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.status(), 422, "{e}");
        server.advance(61);
        assert_eq!(
            agent
                .list_grants(ListGrants::new().status("expired"))
                .await
                .unwrap()
                .total,
            1
        );
        // The operator revokes it; the answer describes the grant as a listing would.
        let revoked = admin
            .revoke_grant(&s.world.app.info.id, &system.grant_id, Some("done".into()))
            .await
            .unwrap();
        match &revoked.grants[..] {
            [GrantItem::ManagedSecret(item)] => {
                assert_eq!(item.grant_id, system.grant_id);
                assert_eq!(item.status, "revoked");
                assert_eq!(item.managed_secret_id, s.world.secret.id);
                assert_eq!(item.managed_secret_slug, s.world.secret.slug);
                assert_eq!(
                    item.credential_id.as_deref(),
                    Some(s.world.secret.id.as_str())
                );
            }
            other => panic!("{other:?}"),
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn group_grants_follow_membership_in_the_token() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let s = setup(&server).await;
        let app = server.app(&s.world.app.key.api_key);
        let group = app
            .create_managed_secret_grant(
                &s.world.secret.id,
                Principal::group("eng", &s.world.idp_id, "eng-stripe"),
                None,
            )
            .await
            .unwrap();
        let member = server.user(&s.world.app.info.id, &s.alice);
        let holds = member.get("/grants").await;
        let held: Vec<&str> = holds.json["grants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["grant_id"].as_str().unwrap())
            .collect();
        assert!(held.contains(&group.grant_id.as_str()), "{held:?}");
        let outsider = server.user(
            &s.world.app.info.id,
            &s.world.idp.token("carol", json!({"groups": ["sales"]})),
        );
        let e = outsider
            .post(
                &format!("/grants/{}/delegations", group.grant_id),
                json!({"agent_id": s.agent_id}),
            )
            .await;
        assert_eq!(e.status, 404);
        let made = member
            .post(
                &format!("/grants/{}/delegations", group.grant_id),
                json!({"agent_id": s.agent_id}),
            )
            .await;
        assert_eq!(made.status, 201, "{:?}", made.json);
        let bad_idp = app
            .create_managed_secret_grant(
                &s.world.secret.id,
                Principal::group("eng", uuid::Uuid::new_v4().to_string(), "x"),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(bad_idp.status(), 422, "{bad_idp}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn group_membership_is_the_newest_token_and_goes_stale_without_one() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let s = setup(&server).await;
        let app = server.app(&s.world.app.key.api_key);
        let group = app
            .create_managed_secret_grant(
                &s.world.secret.id,
                Principal::group("eng", &s.world.idp_id, "eng-stripe"),
                None,
            )
            .await
            .unwrap();
        // Later than the token `setup` signed alice in with.
        server.advance(900);
        let now = server.now().unix_seconds();
        let token = |issued_ago: i64, groups: serde_json::Value| {
            s.world.idp.token(
                "alice",
                json!({"iat": now - issued_ago, "exp": now + 3600, "groups": groups}),
            )
        };
        let in_eng = token(300, json!(["eng"]));
        let member = server.user(&s.world.app.info.id, &in_eng);
        let made = member
            .post(
                &format!("/grants/{}/delegations", group.grant_id),
                json!({"agent_id": s.agent_id}),
            )
            .await;
        assert_eq!(made.status, 201, "{:?}", made.json);
        let child = made.json["grant_id"].as_str().unwrap().to_owned();
        // The agent uses the delegation with no user token: only the stored membership counts.
        let release = || async {
            let r = server
                .raw(&s.agent_key, "POST", "/sdk/token")
                .body(
                    json!({"grant_id": child, "reason": null,
                           "request": {"method": "GET", "url": "https://api.stripe.com/v1/charges"}})
                    .to_string()
                    .into_bytes(),
                )
                .send()
                .await;
            match r.status {
                200 => Ok(()),
                _ => Err(r.code().map(str::to_owned)),
            }
        };
        assert_eq!(release().await, Ok(()));

        // The IdP removes alice from eng; her next token says so.
        let removed = server.user(&s.world.app.info.id, &token(60, json!([])));
        assert_eq!(removed.get("/me").await.json["groups"], json!([]));
        assert_eq!(release().await, Err(Some("delegation_invalid".into())));

        // Replaying the older token does not roll the membership back, anywhere.
        let me = member.get("/me").await;
        assert_eq!(me.status, 200, "{:?}", me.json);
        assert_eq!(me.json["groups"], json!([]), "the newest membership wins");
        let held = member.get("/grants").await;
        assert!(
            held.json["grants"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["grant_id"] != group.grant_id.as_str()),
            "{:?}",
            held.json
        );
        let again = member
            .post(
                &format!("/grants/{}/delegations", group.grant_id),
                json!({"agent_id": s.agent_id}),
            )
            .await;
        assert_eq!(again.status, 404, "{:?}", again.json);
        assert_eq!(release().await, Err(Some("delegation_invalid".into())));

        // Back in eng by a newer token; that membership counts for a day without a new one.
        let back = server.user(&s.world.app.info.id, &token(0, json!(["eng"])));
        assert_eq!(back.get("/me").await.json["groups"], json!(["eng"]));
        assert_eq!(release().await, Ok(()));
        server.advance(24 * 3600 - 1);
        assert_eq!(release().await, Ok(()));
        server.advance(2);
        assert_eq!(release().await, Err(Some("delegation_invalid".into())));
        server.stop().await;
    })
    .await;
}
