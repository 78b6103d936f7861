//! Managed-secret Connect sessions against the real identity provider: the page signs its user
//! in before it takes anything; the user's own key becomes their grant (and is used as the
//! operator's secret says), a repair replaces it in place, a user who already has access shares
//! it with an agent in one click — and a page without its signed-in user takes nothing.

use alter_testkit::oauth_peer::{OAuthPeer, Pages};
use alter_testkit::{RawResponse, TestApp, TestServer, on_every_engine};
use reqwest::header::LOCATION;
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

use super::signin::{signin_world, user_token_by_sign_in};

struct World {
    server: TestServer,
    peer: OAuthPeer,
    app: TestApp,
    slug: String,
    alice: String,
}

async fn world(server: TestServer) -> World {
    let (peer, app, secret) = signin_world(&server, "managed").await;
    let alice = user_token_by_sign_in(&server, &peer, &app.key.api_key).await;
    World {
        server,
        peer,
        app,
        slug: secret.slug,
        alice,
    }
}

impl World {
    async fn create(&self, key: &str, extra: Value) -> RawResponse {
        let mut body = json!({ "provider": self.slug, "user_token": self.alice });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.server
            .raw(key, "POST", "/sdk/managed-secrets/connect/session")
            .body(body.to_string())
            .send()
            .await
    }

    /// The user at the page: signs in at the IdP, lands on the form, and submits `value`
    /// (`None`: confirms). Returns the final page.
    async fn complete(&self, connect_url: &str, value: Option<&str>) -> String {
        let ours = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = ours
            .get(connect_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("Sign in to continue"), "{page}");
        // Nothing is taken before the sign-in.
        let early = ours
            .post(self.url("/connect/resume"))
            .form(&[("value", "planted")])
            .send()
            .await
            .unwrap();
        assert_eq!(early.status(), StatusCode::NOT_FOUND);
        let started = ours
            .post(connect_url)
            .form(&[("provider", "alter:sign-in")])
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), StatusCode::SEE_OTHER);
        let authorize = Url::parse(started.headers()[LOCATION].to_str().unwrap()).unwrap();
        let browser = self.peer.browser();
        let back = self
            .peer
            .authorize(&browser, authorize, Pages::LoginAndConsent)
            .await
            .redirect;
        let landed = ours.get(back.as_str()).send().await.unwrap();
        assert_eq!(landed.status(), StatusCode::SEE_OTHER);
        assert_eq!(landed.headers()[LOCATION], self.url("/connect/resume"));
        let form = ours
            .get(self.url("/connect/resume"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let submitted = match value {
            Some(value) => {
                assert!(form.contains(r#"type="password""#), "{form}");
                ours.post(self.url("/connect/resume"))
                    .form(&[("value", value)])
                    .send()
                    .await
                    .unwrap()
            }
            None => {
                assert!(form.contains("Confirm"), "{form}");
                ours.post(self.url("/connect/resume"))
                    .form::<[(&str, &str); 0]>(&[])
                    .send()
                    .await
                    .unwrap()
            }
        };
        assert_eq!(submitted.status(), StatusCode::OK);
        submitted.text().await.unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    /// `POST /sdk/token` for the secret by slug, as `key`, for alice.
    async fn release(&self, key: &str) -> RawResponse {
        self.server
            .raw(key, "POST", "/sdk/token")
            .body(
                json!({
                    "provider_id": self.slug,
                    "reason": null,
                    "request": { "method": "GET", "url": "https://api.stripe.com/v1/charges" },
                    "user_token": self.alice,
                })
                .to_string(),
            )
            .send()
            .await
    }
}

#[tokio::test]
async fn a_signed_in_user_enters_their_key_repairs_it_and_shares_it_with_an_agent() {
    on_every_engine(|engine| async move {
        let w = world(TestServer::start(engine).await).await;
        let key = w.app.key.api_key.clone();

        // No grant yet: the user enters their own key.
        let created = w.create(&key, json!({})).await;
        assert_eq!(created.status, 201, "{}", created.json);
        assert_eq!(created.json["path"], "key_entry");
        assert_eq!(created.json["delegable_requested"], false);
        assert_eq!(created.json["secret_slug"], w.slug);
        let done = w
            .complete(
                created.json["connect_url"].as_str().unwrap(),
                Some("sk_live_alices_own_1"),
            )
            .await;
        assert!(done.contains("saved"), "{done}");
        let released = w.release(&key).await;
        assert_eq!(released.status, 200, "{}", released.json);
        assert_eq!(released.json["access_token"], "sk_live_alices_own_1");
        let grant_id = released.json["grant_id"].as_str().unwrap().to_owned();
        let listed = w
            .server
            .raw(&key, "POST", "/sdk/grants/list")
            .body(json!({ "limit": 10, "offset": 0 }).to_string())
            .send()
            .await;
        let item = &listed.json["grants"][0];
        assert_eq!(item["grant_id"], grant_id);
        assert_eq!(item["credential_kind"], "end_user");
        assert_eq!(item["principal_type"], "user");

        // A second session finds the access: the fast path. A repair replaces the key in place.
        // (Through the Rust SDK, which checks the answer as the official client does.)
        let again = w
            .server
            .app(&key)
            .create_managed_secret_connect_session(alter_sdk::ManagedConnectOptions::new(
                w.slug.clone(),
                w.alice.clone(),
            ))
            .await
            .unwrap();
        assert_eq!(again.path.as_deref(), Some("fast_path"));
        assert_eq!(again.existing_grant_id.as_deref(), Some(grant_id.as_str()));
        assert_eq!(again.secret_slug.as_deref(), Some(w.slug.as_str()));
        let refused = w
            .server
            .app(&key)
            .create_managed_secret_connect_session(alter_sdk::ManagedConnectOptions::new(
                "Not A Slug",
                w.alice.clone(),
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.exception_name(), "AlterValueError");
        let repair = w.create(&key, json!({ "repair_grant_id": grant_id })).await;
        assert_eq!(repair.json["path"], "repair", "{}", repair.json);
        assert_eq!(repair.json["direct"], true);
        w.complete(
            repair.json["connect_url"].as_str().unwrap(),
            Some("sk_live_alices_own_2"),
        )
        .await;
        let released = w.release(&key).await;
        assert_eq!(released.json["access_token"], "sk_live_alices_own_2");
        assert_eq!(released.json["grant_id"], grant_id);

        // The user shares it with an agent in one click (the fast path); the agent uses it.
        let app = w.server.app(&key);
        let agent = app
            .agents()
            .create(alter_sdk::CreateAgent::new(
                "assistant",
                json!({ "managed_secret_slugs": [w.slug] }),
            ))
            .await
            .unwrap();
        let shared = w
            .create(&key, json!({ "agent": "assistant", "delegable": true }))
            .await;
        assert_eq!(shared.json["path"], "fast_path");
        assert_eq!(shared.json["delegable_requested"], true);
        assert_eq!(
            shared.json["direct"], false,
            "a delegable session is never direct"
        );
        assert_eq!(shared.json["agent_id"], agent.agent.id);
        w.complete(shared.json["connect_url"].as_str().unwrap(), None)
            .await;
        let agent_key = agent.api_key.unwrap();
        let used = w.release(&agent_key).await;
        assert_eq!(used.status, 200, "{}", used.json);
        assert_eq!(used.json["access_token"], "sk_live_alices_own_2");
        assert_ne!(
            used.json["grant_id"], grant_id,
            "the agent's own delegation"
        );

        // What the caller may not ask for is refused before anything is stored.
        for (extra, status, code) in [
            (
                json!({ "provider": "no-such-secret" }),
                404,
                "secret_not_found",
            ),
            (
                json!({ "user_token": "not-a-jwt" }),
                401,
                "jwt_validation_error",
            ),
            (
                json!({ "repair_grant_id": agent.agent.id }),
                404,
                "grant_not_found",
            ),
            (json!({ "surprise": 1 }), 422, "invalid_request"),
        ] {
            let refused = w.create(&key, extra.clone()).await;
            assert_eq!(
                (refused.status, refused.code()),
                (status, Some(code)),
                "{extra}: {}",
                refused.json
            );
        }
        // An agent's own key learns nothing of what the user holds.
        let own = w.create(&agent_key, json!({})).await;
        assert_eq!(own.status, 201, "{}", own.json);
        assert_eq!(own.json["path"], Value::Null);
        assert_eq!(own.json["existing_grant_id"], Value::Null);
        assert_eq!(own.json["agent_id"], agent.agent.id);
        // Users' own keys re-wrap.
        crate::crypto::every_sealed_value_rewraps_under_a_new_kek(&w.server).await;
    })
    .await;
}
