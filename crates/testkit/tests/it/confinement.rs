//! Agents stay in their lane: an agent binds a managed secret only to itself, on its own
//! route, where the operator opted agents in; an agent-typed key bound to no agent (`ak`), and
//! every key derived from one, reaches nothing a named agent holds and acts as no agent.

use alter_proto::admin::{CreateSecretRequest, MintKeyRequest};
use alter_sdk::{
    CreateAgent, DeriveKeyRequest, Error, GrantItem, ListGrants, Principal, ProviderRequest,
};
use alter_testkit::upstream::Upstream;
use alter_testkit::{TestServer, on_every_engine};
use serde_json::json;

/// Every scope of the catalogue: the refusals below come from the key's type, not its scopes.
const EVERY_SCOPE: &[&str] = &[
    "agents:admin",
    "approvals:admin",
    "audit_logs:admin",
    "grants:admin",
    "idp_users:admin",
    "keys:admin",
    "providers:admin",
    "secrets:admin",
    "usage:admin",
    "tokens:retrieve",
    "proxy:execute",
    "connect:initiate",
    "keys:derive",
    "audit:emit",
    "spans:emit",
];

fn grant_ids(page: &alter_sdk::GrantList) -> Vec<String> {
    page.grants
        .iter()
        .map(|g| match g {
            GrantItem::ManagedSecret(g) => g.grant_id.clone(),
            GrantItem::OAuth(g) => g.grant_id.clone(),
        })
        .collect()
}

fn derive(scopes: &[&str]) -> DeriveKeyRequest {
    DeriveKeyRequest {
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        expires_in: 600,
        cidr_allowlist: None,
        name: None,
        metadata: None,
    }
}

#[tokio::test]
async fn an_agent_binds_a_secret_to_itself_only_where_the_operator_opted_in() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let app = server.app(&world.app.key.api_key);
        let opened = server
            .admin()
            .create_secret(
                &world.app.info.id,
                &CreateSecretRequest {
                    name: "Agent Owned".into(),
                    secret_type: "bearer".into(),
                    value: "agent-owned-value".into(),
                    principals: vec!["system".into(), "agent".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let created = app
            .agents()
            .create(CreateAgent::new(
                "billing-bot",
                json!({"managed_secret_slugs": [world.secret.slug, opened.slug]}),
            ))
            .await
            .unwrap();
        let agent_key = created.api_key.clone().unwrap();
        let agent = server.agent(&agent_key);

        // The world's secret lists no principal types: every type but `agent`.
        let e = agent
            .create_managed_secret_grant(&world.secret.id, Some("bot-own"), None)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("principal_not_allowed"), "{e}");
        // Opted in and on the allowlist: the agent's own grant, by its key or acting as it.
        let own = agent
            .create_managed_secret_grant(&opened.id, Some("bot-own"), None)
            .await
            .unwrap();
        assert_eq!(own.principal_type, "agent");
        let acting = app.get_agent(&created.agent.id).unwrap();
        let via_app = acting
            .create_managed_secret_grant(&opened.id, Some("via-app"), None)
            .await
            .unwrap();
        let mine = agent.list_grants(ListGrants::new()).await.unwrap();
        assert_eq!(grant_ids(&mine), vec![own.grant_id, via_app.grant_id]);

        // Not on its allowlist, paused, or no agent behind the request: refused.
        let stranger = app
            .agents()
            .create(CreateAgent::new("stranger", json!({})))
            .await
            .unwrap();
        let e = server
            .agent(stranger.api_key.as_deref().unwrap())
            .create_managed_secret_grant(&opened.id, None, None)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("agent_not_allowlisted"), "{e}");
        app.agents().suspend(&created.agent.id).await.unwrap();
        let e = agent
            .create_managed_secret_grant(&opened.id, Some("paused"), None)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::AgentInactive(_)), "{e}");
        app.agents().resume(&created.agent.id).await.unwrap();
        let ak = server
            .mint_key(
                &world.app,
                MintKeyRequest {
                    key_type: Some("ak".into()),
                    ..Default::default()
                },
            )
            .await;
        for key in [&world.app.key.api_key, &ak.api_key] {
            let e = server
                .agent(key)
                .create_managed_secret_grant(&opened.id, None, None)
                .await
                .unwrap_err();
            assert_eq!(e.code(), Some("agent_key_required"), "{e}");
        }

        // The public route never takes the agent from the key, and an agent's key creates no
        // grant there at all (no second system grant to make provider lookups ambiguous).
        for key in [&world.app.key.api_key, &agent_key, &ak.api_key] {
            let e = server
                .app(key)
                .create_managed_secret_grant(&opened.id, Principal::agent(), None)
                .await
                .unwrap_err();
            assert_eq!(e.status(), 422, "{e}");
        }
        for key in [&agent_key, &ak.api_key] {
            let e = server
                .app(key)
                .create_managed_secret_grant(&opened.id, Principal::system(), None)
                .await
                .unwrap_err();
            assert_eq!(e.code(), Some("agents_cannot_create_grants"), "{e}");
        }
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
async fn an_unbound_agent_key_and_its_derived_keys_reach_no_named_agent() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let app = server.app(&world.app.key.api_key);
        let bot = app
            .agents()
            .create(CreateAgent::new(
                "bot",
                json!({"managed_secret_slugs": [world.secret.slug]}),
            ))
            .await
            .unwrap();
        let system = app
            .create_managed_secret_grant(&world.secret.id, Principal::system(), None)
            .await
            .unwrap();
        let delegation = server
            .delegate_as_operator(&world.app.info.id, &system.grant_id, &bot.agent.id)
            .await;
        let ak = server
            .mint_key(
                &world.app,
                MintKeyRequest {
                    key_type: Some("ak".into()),
                    scopes: Some(EVERY_SCOPE.iter().map(|s| (*s).to_owned()).collect()),
                    ..Default::default()
                },
            )
            .await;
        let derived = server
            .app(&ak.api_key)
            .keys()
            .derive(derive(&["grants:admin", "tokens:retrieve", "agents:admin"]))
            .await
            .unwrap();

        for key in [&ak.api_key, &derived.api_key] {
            let unbound = server.app(key);
            // It sees the app's grant, never the delegation to the named agent.
            let listed = unbound.list_grants(ListGrants::new()).await.unwrap();
            assert_eq!(grant_ids(&listed), vec![system.grant_id.clone()]);
            let e = unbound
                .request(ProviderRequest::get("https://api.stripe.com/v1/x").grant_id(&delegation))
                .await
                .unwrap_err();
            assert!(e.is_grant_not_found(), "{e}");
            let e = unbound.revoke_grant(&delegation, None).await.unwrap_err();
            assert!(e.is_grant_not_found(), "{e}");
            unbound
                .revoke_delegation(&system.grant_id, &bot.agent.id)
                .await
                .unwrap();
            // It cannot act as the agent, nor manage agents.
            let e = unbound
                .get_agent(&bot.agent.id)
                .unwrap()
                .list_grants(ListGrants::new())
                .await
                .unwrap_err();
            assert!(matches!(e, Error::CallerAgentMismatch(_)), "{e}");
            let e = unbound.agents().get(&bot.agent.id).await.unwrap_err();
            assert!(matches!(e, Error::AgentCannotMintSubagents(_)), "{e}");
        }
        let e = server
            .app(&ak.api_key)
            .keys()
            .revoke(&bot.key_id, true)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("key_not_found"), "{e}");

        // The delegation is untouched, and the agent still uses it.
        let agent = server.agent(bot.api_key.as_deref().unwrap());
        let held = agent
            .list_grants(ListGrants::new().status("active"))
            .await
            .unwrap();
        assert_eq!(grant_ids(&held), vec![delegation]);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_key_derived_from_an_agent_key_acts_as_that_agent_only() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let app = server.app(&world.app.key.api_key);
        let bot = app
            .agents()
            .create(CreateAgent::new("bot", json!({})))
            .await
            .unwrap();
        let other = app
            .agents()
            .create(CreateAgent::new("other", json!({})))
            .await
            .unwrap();
        let system = app
            .create_managed_secret_grant(&world.secret.id, Principal::system(), None)
            .await
            .unwrap();
        let to_other = server
            .delegate_as_operator(&world.app.info.id, &system.grant_id, &other.agent.id)
            .await;
        let derived = server
            .agent(bot.api_key.as_deref().unwrap())
            .keys()
            .derive(derive(&["grants:write"]))
            .await
            .unwrap();
        let as_derived = server.app(&derived.api_key);
        // It is the bot: the other agent's delegation is out of reach, so is acting as it.
        assert_eq!(
            as_derived
                .list_grants(ListGrants::new())
                .await
                .unwrap()
                .total,
            0
        );
        let e = as_derived.revoke_grant(&to_other, None).await.unwrap_err();
        assert!(e.is_grant_not_found(), "{e}");
        let e = as_derived
            .get_agent(&other.agent.id)
            .unwrap()
            .list_grants(ListGrants::new())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::CallerAgentMismatch(_)), "{e}");
        let e = as_derived.agents().list(false, 10, 0).await.unwrap_err();
        assert!(matches!(e, Error::AgentCannotMintSubagents(_)), "{e}");
        server.stop().await;
    })
    .await;
}

/// An agent's own grant of a secret that no longer admits agents — bound before the `agent`
/// principal type was opt-in, when any agent could grant itself an allowlisted secret — is
/// not released: release checks the root grant's principal type against the secret's limits.
#[tokio::test]
async fn an_agents_own_grant_the_secret_does_not_admit_is_not_released() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let upstream = Upstream::start().await;
        let secret = server
            .admin()
            .create_secret(
                &world.app.info.id,
                &CreateSecretRequest {
                    name: "Self Bound".into(),
                    secret_type: "bearer".into(),
                    value: "self-bound-value".into(),
                    allowed_hosts: vec!["127.0.0.1".into()],
                    principals: vec!["agent".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let app = server.app(&world.app.key.api_key);
        let created = app
            .agents()
            .create(CreateAgent::new(
                "self-binder",
                json!({"managed_secret_slugs": [secret.slug]}),
            ))
            .await
            .unwrap();
        let agent = server.agent(created.api_key.as_deref().unwrap());
        let own = agent
            .create_managed_secret_grant(&secret.id, Some("own"), None)
            .await
            .unwrap();
        let call = || {
            ProviderRequest::get(format!("{}/v1/x", upstream.url())).grant_id(own.grant_id.clone())
        };
        assert_eq!(agent.request(call()).await.unwrap().status(), 200);

        // The secret as an older server left it: no principal types listed, which no longer
        // admits agents.
        let edited = server
            .database()
            .execute(
                "UPDATE managed_secrets SET limits = '{\"delegation\":true}' WHERE id = $1",
                &[&secret.id],
            )
            .await
            .unwrap();
        assert_eq!(edited, 1);
        let before = upstream.received().len();
        let e = agent.request(call()).await.unwrap_err();
        assert_eq!(e.code(), Some("principal_not_allowed"), "{e}");
        assert_eq!(
            upstream.received().len(),
            before,
            "nothing reached the provider"
        );
        server.stop().await;
    })
    .await;
}
