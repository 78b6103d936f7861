//! Agents and their keys (protocol part 2 §8) through the Rust SDK.

use alter_sdk::agents::UpdateAgent;
use alter_sdk::{CreateAgent, Error, ListGrants};
use alter_testkit::{TestServer, on_every_engine};
use serde_json::json;

#[tokio::test]
async fn agents_are_created_listed_updated_and_deleted() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.new_app("a").await;
        let app = server.app(&world.key.api_key);
        let agents = app.agents();
        let created = agents
            .create(CreateAgent {
                display_name: Some("Research bot".into()),
                metadata: json!({"team": "research"}),
                policy: Some(json!({"requires_approval": true, "approvers": ["ops@example.com"]})),
                ..CreateAgent::new("research-bot", json!({"google": ["gmail.readonly"]}))
            })
            .await
            .unwrap();
        let key = created.api_key.clone().unwrap();
        assert!(
            key.starts_with("alter_key_"),
            "managed-agent keys use the legacy form"
        );
        assert_eq!(created.agent.name, "research-bot");
        assert_eq!(created.agent.status, "active");
        assert_eq!(created.agent.version, 1);
        assert_eq!(
            created.agent.policy["approvers_count"], 1,
            "approvers are redacted to a count"
        );
        assert!(created.agent.policy.get("approvers").is_none());

        let me = server.agent(&key).me().await.unwrap();
        assert_eq!(me.id, created.agent.id);
        let got = agents.get(&created.agent.id).await.unwrap();
        assert_eq!(got, created.agent);
        assert_eq!(
            agents
                .get_by_name("research-bot")
                .await
                .unwrap()
                .unwrap()
                .id,
            created.agent.id
        );
        assert!(agents.get_by_name("nobody").await.unwrap().is_none());
        let dup = agents
            .create(CreateAgent::new("research-bot", json!({})))
            .await
            .unwrap_err();
        assert!(matches!(dup, Error::AgentNameExists(_)), "{dup}");

        // Broadening applies at once; narrowing is staged.
        let broader = agents
            .update(
                &created.agent.id,
                UpdateAgent {
                    changes: alter_proto::agents::UpdateAgentRequest {
                        scopes: Some(json!({"google": ["gmail.readonly", "calendar"]})),
                        ..Default::default()
                    },
                    expected_version: Some(1),
                    grace_seconds: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(broader.version, 2);
        assert_eq!(
            broader.scopes["google"],
            json!(["gmail.readonly", "calendar"])
        );
        assert!(broader.scopes_pending.is_none());
        let stale = agents
            .update(
                &created.agent.id,
                UpdateAgent {
                    changes: alter_proto::agents::UpdateAgentRequest {
                        scopes: Some(json!({})),
                        ..Default::default()
                    },
                    expected_version: Some(1),
                    grace_seconds: None,
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(stale, Error::AgentConcurrentUpdate(_)), "{stale}");
        let narrowed = agents
            .update(
                &created.agent.id,
                UpdateAgent {
                    changes: alter_proto::agents::UpdateAgentRequest {
                        scopes: Some(json!({"google": ["calendar"]})),
                        ..Default::default()
                    },
                    expected_version: Some(2),
                    grace_seconds: Some(3600),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            narrowed.scopes_pending.as_ref().unwrap()["google"],
            json!(["calendar"])
        );
        assert!(narrowed.scopes_applies_at.is_some());
        server.advance(3601);
        let applied = agents.get(&created.agent.id).await.unwrap();
        assert_eq!(applied.scopes["google"], json!(["calendar"]));
        assert!(applied.scopes_pending.is_none());
        let unchanged = agents
            .update(&created.agent.id, UpdateAgent::default())
            .await
            .unwrap();
        assert_eq!(
            unchanged.version, narrowed.version,
            "an empty update changes nothing"
        );
        let legacy = agents
            .update(
                &created.agent.id,
                UpdateAgent {
                    changes: alter_proto::agents::UpdateAgentRequest {
                        scopes: Some(json!({"managed_secrets": ["Stripe"]})),
                        ..Default::default()
                    },
                    expected_version: Some(narrowed.version),
                    grace_seconds: None,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(legacy.code(), Some("legacy_managed_secret_name_rejected"));

        let listed = agents.list(false, 100, 0).await.unwrap();
        assert_eq!(listed.total, 1);
        let deleted = agents.delete(&created.agent.id).await.unwrap();
        assert_eq!(deleted.status, "revoked");
        assert_eq!(
            agents.delete(&created.agent.id).await.unwrap().status,
            "revoked",
            "idempotent"
        );
        let e = server.agent(&key).me().await.unwrap_err();
        assert!(matches!(e, Error::KeyRevoked(_)), "{e}");
        assert_eq!(agents.list(false, 100, 0).await.unwrap().total, 0);
        assert_eq!(agents.list(true, 100, 0).await.unwrap().total, 1);
        // The name is free again.
        agents
            .create(CreateAgent::new("research-bot", json!({})))
            .await
            .unwrap();
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_paused_agent_only_answers_to_me() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.new_app("a").await;
        let app = server.app(&world.key.api_key);
        let created = app
            .agents()
            .create(CreateAgent::new("bot", json!({})))
            .await
            .unwrap();
        let agent = server.agent(created.api_key.as_deref().unwrap());
        agent.list_grants(ListGrants::new()).await.unwrap();
        let paused = app.agents().suspend(&created.agent.id).await.unwrap();
        assert_eq!(paused.status, "inactive");
        let e = agent.list_grants(ListGrants::new()).await.unwrap_err();
        assert!(matches!(e, Error::AgentInactive(_)), "{e}");
        assert_eq!(agent.me().await.unwrap().status, "inactive");
        // Acting as a paused agent is refused too.
        let acting = app.get_agent(&created.agent.id).unwrap();
        let e = acting.list_grants(ListGrants::new()).await.unwrap_err();
        assert!(matches!(e, Error::AgentNotFound(_)), "{e}");
        assert_eq!(e.code(), Some("caller_agent_unresolved"));
        app.agents().resume(&created.agent.id).await.unwrap();
        agent.list_grants(ListGrants::new()).await.unwrap();
        acting.list_grants(ListGrants::new()).await.unwrap();
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn agent_keys_are_minted_deprecated_and_revoked() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.new_app("a").await;
        let app = server.app(&world.key.api_key);
        let agents = app.agents();
        let created = agents
            .create(CreateAgent::new("bot", json!({})))
            .await
            .unwrap();
        let id = created.agent.id.as_str();
        let second = agents.mint_key(id).await.unwrap();
        assert_eq!(second.key.name, "bot-2");
        let keys = agents.list_keys(id).await.unwrap();
        assert_eq!(keys.items.len(), 2);
        assert_eq!(keys.items[0].key_id, created.key_id, "oldest first");

        let deprecated = agents.deprecate_key(id, &created.key_id).await.unwrap();
        assert!(deprecated.deprecated_at.is_some());
        let again = agents.deprecate_key(id, &created.key_id).await.unwrap();
        assert_eq!(
            again.deprecated_at, deprecated.deprecated_at,
            "idempotent, time kept"
        );
        let answer = server
            .raw(created.api_key.as_deref().unwrap(), "GET", "/sdk/agents/me")
            .send()
            .await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.headers.get("x-alter-key-deprecated").unwrap(),
            "true"
        );
        let lifted = agents.undeprecate_key(id, &created.key_id).await.unwrap();
        assert!(lifted.deprecated_at.is_none());

        agents.revoke_key(id, &created.key_id, false).await.unwrap();
        let last = agents
            .revoke_key(id, &second.key.key_id, false)
            .await
            .unwrap_err();
        assert!(matches!(last, Error::LastActiveKey(_)), "{last}");
        assert!(last.info().str_field("hint").is_some());
        let forced = agents
            .revoke_key(id, &second.key.key_id, true)
            .await
            .unwrap();
        assert!(forced.revoked_at.is_some());
        let e = agents
            .deprecate_key(id, &second.key.key_id)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::KeyAlreadyRevoked(_)), "{e}");
        let other = agents
            .create(CreateAgent::new("other", json!({})))
            .await
            .unwrap();
        let e = agents
            .deprecate_key(&other.agent.id, &second.key.key_id)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::KeyNotFound(_)), "{e}");
        // The per-agent key cap.
        for _ in 0..9 {
            agents.mint_key(&other.agent.id).await.unwrap();
        }
        let e = agents.mint_key(&other.agent.id).await.unwrap_err();
        assert!(matches!(e, Error::AgentKeyLimit(_)), "{e}");
        // The last-key guard also holds on the keys namespace, agent on its own keys.
        let solo = agents
            .create(CreateAgent::new("solo", json!({})))
            .await
            .unwrap();
        let solo_agent = server.agent(solo.api_key.as_deref().unwrap());
        let e = solo_agent
            .keys()
            .revoke(&solo.key_id, false)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("last_active_key"), "{e}");
        let e = solo_agent
            .keys()
            .revoke(&world.key.info.id, false)
            .await
            .unwrap_err();
        assert_eq!(
            e.code(),
            Some("key_not_found"),
            "an agent manages only its own keys"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn agents_cannot_manage_agents_and_idempotency_holds() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.new_app("a").await;
        let app = server.app(&world.key.api_key);
        let request = CreateAgent {
            idempotency_key: Some("create-bot-1".into()),
            ..CreateAgent::new("bot", json!({}))
        };
        let first = app.agents().create(request.clone()).await.unwrap();
        let replay = app.agents().create(request.clone()).await.unwrap();
        assert_eq!(replay.agent.id, first.agent.id);
        assert_eq!(replay.key_id, first.key_id);
        assert_eq!(replay.api_key, None, "the plaintext is shown once");
        let changed = app
            .agents()
            .create(CreateAgent {
                display_name: Some("changed".into()),
                ..request.clone()
            })
            .await
            .unwrap_err();
        assert!(
            matches!(changed, Error::IdempotencyKeyBodyMismatch(_)),
            "{changed}"
        );
        app.agents().suspend(&first.agent.id).await.unwrap();
        let e = app.agents().create(request).await.unwrap_err();
        assert!(matches!(e, Error::IdempotencyKeyAgentInactive(_)), "{e}");

        let agent_key = first.api_key.unwrap();
        app.agents().resume(&first.agent.id).await.unwrap();
        let as_agent = server
            .raw(&agent_key, "POST", "/sdk/agents")
            .body(br#"{"name":"sub","scopes":{}}"#.to_vec())
            .send()
            .await;
        assert_eq!(
            (as_agent.status, as_agent.code()),
            (403, Some("agent_cannot_mint_subagents"))
        );
        let via_app = app.get_agent(&first.agent.id).unwrap();
        let e = server
            .raw(&world.key.api_key, "GET", "/sdk/agents")
            .signed_header(alter_proto::signing::headers::CALLER, &first.agent.id)
            .signed_header(alter_proto::signing::headers::CALLER_TYPE, "agent")
            .send()
            .await;
        assert_eq!(e.code(), Some("agent_cannot_mint_subagents"));
        assert_eq!(via_app.me().await.unwrap().id, first.agent.id);
        let e = app_me(&server, &world.key.api_key).await;
        assert_eq!(e, Some("me_requires_agent_key".into()));
        let bad_names = [
            r#"{"name":"Bot","scopes":{}}"#,
            r#"{"name":"","scopes":{}}"#,
            r#"{"name":"b","scopes":[]}"#,
            r#"{"name":"b","scopes":{},"type":"robot"}"#,
        ];
        for body in bad_names {
            let r = server
                .raw(&world.key.api_key, "POST", "/sdk/agents")
                .body(body.as_bytes().to_vec())
                .send()
                .await;
            assert_eq!(r.status, 422, "{body}: {:?}", r.json);
        }
        assert_eq!(
            app.agents().list(true, 100, 0).await.unwrap().total,
            1,
            "refusals created nothing"
        );
        server.stop().await;
    })
    .await;
}

async fn app_me(server: &TestServer, key: &str) -> Option<String> {
    let r = server.raw(key, "GET", "/sdk/agents/me").send().await;
    r.code().map(str::to_owned)
}
