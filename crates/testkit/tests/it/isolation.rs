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

/// A small deterministic generator (xorshift64*), so a failing sequence is replayed from its
/// seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// What one app owns, as the test's model sees it.
#[derive(Default)]
struct Owned {
    grants: Vec<String>,
    agents: Vec<String>,
    revoked: std::collections::HashSet<String>,
}

/// Random sequences of operations by two apps, each aimed at an id of either app: whatever
/// the sequence, an app reaches only its own objects — another app's id is "not found" and
/// changes nothing, a release through it never yields the other app's secret, and listings
/// and the audit log hold only the app's own ids. `ALTER_ISOLATION_SEQUENCES` (default 3)
/// and `ALTER_ISOLATION_STEPS` (default 40) make the run longer.
#[tokio::test]
async fn no_sequence_of_operations_lets_an_app_reach_anothers_objects() {
    use alter_proto::admin::{AuditQuery, CreateSecretRequest};
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let sequences = number("ALTER_ISOLATION_SEQUENCES", 3);
    let steps = number("ALTER_ISOLATION_STEPS", 40);
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let worlds = [server.world("a").await, server.world("b").await];
        let values = ["sk_live_isolationValueOfAppA0001", "sk_live_isolationValueOfAppB0002"];
        let mut secrets = Vec::new();
        for (world, value) in worlds.iter().zip(values) {
            let secret = server
                .admin()
                .create_secret(
                    &world.app.info.id,
                    &CreateSecretRequest {
                        name: format!("Isolated {}", value.len() + secrets.len()),
                        secret_type: "bearer".into(),
                        allowed_hosts: vec!["api.example.com".into()],
                        value: value.into(),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            secrets.push(secret.id);
        }
        let apps = [
            server.app(&worlds[0].app.key.api_key),
            server.app(&worlds[1].app.key.api_key),
        ];
        let mut owned = [Owned::default(), Owned::default()];
        let mut made = 0;
        for seed in 1..=sequences {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            for step in 0..steps {
                let actor = rng.below(2);
                let target = rng.below(2);
                let context = format!("seed {seed} step {step}: app {actor} on app {target}");
                let app = &apps[actor];
                let not_found = |e: alter_sdk::Error, what: &str| {
                    assert_eq!(e.status(), 404, "{context}: {what}: {e}");
                };
                let pick = |ids: &Vec<String>, rng: &mut Rng| {
                    (!ids.is_empty()).then(|| ids[rng.below(ids.len())].clone())
                };
                match rng.below(7) {
                    0 => {
                        let made_grant = app
                            .create_managed_secret_grant(&secrets[target], Principal::system(), None)
                            .await;
                        match made_grant {
                            Ok(g) if actor == target => owned[actor].grants.push(g.grant_id),
                            Ok(g) => panic!("{context}: granted another app's secret: {}", g.grant_id),
                            Err(e) if actor == target => panic!("{context}: {e}"),
                            Err(e) => not_found(e, "grant of another app's secret"),
                        }
                    }
                    1 => {
                        made += 1;
                        let agent = app
                            .agents()
                            .create(CreateAgent::new(format!("agent-{made}"), json!({})))
                            .await
                            .unwrap();
                        owned[actor].agents.push(agent.agent.id);
                    }
                    2 => {
                        let Some(grant) = pick(&owned[target].grants, &mut rng) else { continue };
                        let answer = server
                            .raw(&worlds[actor].app.key.api_key, "POST", "/sdk/token")
                            .body(
                                json!({
                                    "grant_id": grant,
                                    "request": {"method": "GET", "url": "https://api.example.com/v1/x"},
                                })
                                .to_string(),
                            )
                            .send()
                            .await;
                        let text = String::from_utf8_lossy(&answer.bytes).into_owned();
                        assert!(
                            !text.contains(values[1 - actor]),
                            "{context}: another app's secret was released"
                        );
                        if actor != target {
                            assert_eq!(answer.status, 404, "{context}: {:?}", answer.json);
                        } else if !owned[actor].revoked.contains(&grant) {
                            assert_eq!(answer.status, 200, "{context}: {:?}", answer.json);
                            assert!(text.contains(values[actor]), "{context}");
                        }
                    }
                    3 => {
                        let Some(grant) = pick(&owned[target].grants, &mut rng) else { continue };
                        match app.revoke_grant(&grant, None).await {
                            Ok(_) if actor == target => {
                                owned[actor].revoked.insert(grant);
                            }
                            Ok(_) => panic!("{context}: revoked another app's grant"),
                            Err(e) if actor == target => {
                                assert!(owned[actor].revoked.contains(&grant), "{context}: {e}")
                            }
                            Err(e) => not_found(e, "revoke"),
                        }
                    }
                    4 => {
                        let Some(agent) = pick(&owned[target].agents, &mut rng) else { continue };
                        match app.agents().get(&agent).await {
                            Ok(_) if actor == target => {}
                            Ok(_) => panic!("{context}: read another app's agent"),
                            Err(e) if actor == target => panic!("{context}: {e}"),
                            Err(e) => not_found(e, "agent"),
                        }
                    }
                    5 => {
                        let Some(grant) = pick(&owned[target].grants, &mut rng) else { continue };
                        made += 1;
                        let minted = app.mint_grant(&grant, &format!("minted-{made}"), None).await;
                        match minted {
                            Ok(g) if actor == target => owned[actor].grants.push(g.grant_id),
                            Ok(_) => panic!("{context}: minted from another app's grant"),
                            // Minting from a revoked grant is refused.
                            Err(_) if actor == target && owned[actor].revoked.contains(&grant) => {}
                            Err(e) if actor == target => panic!("{context}: {e}"),
                            Err(e) => not_found(e, "mint"),
                        }
                    }
                    _ => {
                        let listed = app.list_grants(ListGrants::new().limit(100)).await.unwrap();
                        for grant in &listed.grants {
                            assert!(
                                !owned[1 - actor].grants.contains(&grant.common().grant_id),
                                "{context}: another app's grant is listed"
                            );
                        }
                    }
                }
            }
        }
        // Each app's audit log names only its own grants and agents, and holds no secret.
        for (i, world) in worlds.iter().enumerate() {
            let page = server
                .admin()
                .audit_events(
                    &world.app.info.id,
                    &AuditQuery {
                        limit: Some(1000),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            // A refusal records the id the app asked for (which it knew already); nothing the
            // app was allowed to do names the other app's objects.
            let allowed: Vec<&serde_json::Value> = page
                .items
                .iter()
                .map(|e| &e.event)
                .filter(|e| e["decision"] == "allow")
                .collect();
            let text = serde_json::to_string(&allowed).unwrap();
            for id in owned[1 - i].grants.iter().chain(&owned[1 - i].agents) {
                assert!(!text.contains(id.as_str()), "app {i}'s audit log names {id}");
            }
            assert!(!text.contains(values[1 - i]));
        }
        server.stop().await;
    })
    .await;
}
