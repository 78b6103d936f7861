//! Operator accounts of the portal: created, listed, re-passworded and removed through the
//! admin API; signed in with Argon2id verification, one answer for a wrong password and an
//! unknown username, and a failed-attempt throttle shared by every node.

use alter_core::operators::{
    ADMIN_TOKEN_OPERATOR, CONCURRENT_PASSWORD_CHECKS, FAILURE_EVENT_INTERVAL_SECONDS,
    LOCKOUT_SECONDS, MAX_FAILED_SIGN_INS, MAX_FAILED_SIGN_INS_PER_ADDRESS, SignInOutcome,
    UNKNOWN_OPERATOR, operator_action,
};
use alter_core::vault::Vault;
use alter_testkit::{TestServer, on_every_engine};

const PASSWORD: &str = "correct horse battery staple";

/// One portal sign-in of `username` with `password` from `peer`, through the vault.
async fn sign_in(
    vault: &Vault,
    username: &str,
    password: &str,
    peer: Option<&str>,
) -> SignInOutcome {
    vault
        .operator_sign_in(username, password, peer)
        .await
        .unwrap()
}

/// Whether that sign-in signs in.
async fn signs_in(vault: &Vault, username: &str, password: &str, peer: Option<&str>) -> bool {
    matches!(
        sign_in(vault, username, password, peer).await,
        SignInOutcome::SignedIn(_)
    )
}

/// `times` wrong passwords for `username` from `peer`, each refused (not yet throttled).
async fn guess_wrong(vault: &Vault, username: &str, peer: Option<&str>, times: i64) {
    for _ in 0..times {
        assert_eq!(
            sign_in(vault, username, "not the password", peer).await,
            SignInOutcome::Refused,
            "{username}"
        );
    }
}

#[tokio::test]
async fn accounts_are_managed_with_the_admin_token_and_never_show_a_password() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let admin = server.admin();
        let added = admin.add_operator("alice", PASSWORD).await.unwrap();
        assert_eq!(added.username, "alice");
        let listed = admin.list_operators().await.unwrap();
        assert_eq!(listed, vec![added.clone()]);

        let duplicate = admin.add_operator("alice", PASSWORD).await.unwrap_err();
        assert_eq!(duplicate.code(), Some("conflict"), "{duplicate:?}");
        // Names starting with "admin" would read like the admin token's holder in events.
        for (username, password) in [
            ("Alice", PASSWORD),
            ("bob", "too short"),
            ("admin-token", PASSWORD),
            ("administrator", PASSWORD),
        ] {
            let refused = admin.add_operator(username, password).await.unwrap_err();
            assert_eq!(refused.code(), Some("invalid_request"), "{refused:?}");
        }
        assert_eq!(
            admin.list_operators().await.unwrap().len(),
            1,
            "nothing changed"
        );

        let raw = reqwest::Client::new()
            .get(format!("{}/admin/v1/operators", server.base_url()))
            .bearer_auth(server.admin_token())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!raw.contains("argon2") && !raw.contains(PASSWORD), "{raw}");
        let unauthenticated = reqwest::Client::new()
            .get(format!("{}/admin/v1/operators", server.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(unauthenticated.status(), 401);

        let vault = server.vault();
        server.advance(5);
        admin
            .set_operator_password("alice", "a brand new passphrase")
            .await
            .unwrap();
        assert_eq!(
            sign_in(vault, "alice", PASSWORD, None).await,
            SignInOutcome::Refused
        );
        let SignInOutcome::SignedIn(alice) =
            sign_in(vault, "alice", "a brand new passphrase", None).await
        else {
            panic!("the new password signs in");
        };
        assert!(alice.password_changed_at > alice.created_at);

        admin.remove_operator("alice").await.unwrap();
        assert!(admin.list_operators().await.unwrap().is_empty());
        let gone = admin.remove_operator("alice").await.unwrap_err();
        assert_eq!(gone.code(), Some("operator_not_found"));
        assert_eq!(
            sign_in(vault, "alice", "a brand new passphrase", None).await,
            SignInOutcome::Refused
        );

        let actions: Vec<String> = vault
            .operator_events(100)
            .await
            .unwrap()
            .into_iter()
            .rev()
            .map(|e| e.action)
            .collect();
        assert_eq!(
            actions,
            [
                operator_action::ADDED,
                operator_action::PASSWORD_CHANGED,
                operator_action::SIGN_IN_FAILED,
                operator_action::SIGNED_IN,
                operator_action::REMOVED,
                operator_action::SIGN_IN_FAILED,
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_username_are_refused_alike_and_throttled() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let vault = server.vault();
        vault.add_operator("carol", PASSWORD, "test").await.unwrap();

        // Both cost one Argon2 verification and get the same answer and event.
        for username in ["carol", "nobody"] {
            assert_eq!(
                sign_in(vault, username, "wrong password!", Some("203.0.113.9")).await,
                SignInOutcome::Refused
            );
        }
        let events = vault.operator_events(2).await.unwrap();
        for event in &events {
            assert_eq!(event.action, operator_action::SIGN_IN_FAILED);
            assert_eq!(event.reason.as_deref(), Some("invalid_credentials"));
            assert_eq!(event.peer.as_deref(), Some("203.0.113.9"));
        }
        // An unknown name is not recorded as typed (it may be a password in the wrong field).
        let named: Vec<&str> = events.iter().map(|e| e.operator.as_str()).collect();
        assert_eq!(named, [UNKNOWN_OPERATOR, "carol"]);

        // A success forgets the failures before it.
        assert!(signs_in(vault, "carol", PASSWORD, None).await);
        guess_wrong(vault, "Carol ", None, MAX_FAILED_SIGN_INS).await;
        // Locked: even the right password waits, and an unknown name throttles the same way.
        assert_eq!(
            sign_in(vault, "carol", PASSWORD, None).await,
            SignInOutcome::Throttled
        );
        guess_wrong(vault, "nobody", None, MAX_FAILED_SIGN_INS).await;
        assert_eq!(
            sign_in(vault, "nobody", "x", None).await,
            SignInOutcome::Throttled
        );
        // The lock holds on another node too (it lives in the database).
        let other = server.second_node().await;
        assert_eq!(
            sign_in(other.vault(), "carol", PASSWORD, None).await,
            SignInOutcome::Throttled
        );
        server.advance(LOCKOUT_SECONDS);
        assert!(signs_in(vault, "carol", PASSWORD, None).await);
    })
    .await;
}

#[tokio::test]
async fn concurrent_guesses_do_not_slip_past_the_throttle() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let vault = server.vault();
        vault.add_operator("dave", PASSWORD, "test").await.unwrap();
        // Rounds of concurrent guesses (some answered busy, which counts nothing) until the
        // throttle answers: exactly MAX_FAILED_SIGN_INS were ever checked.
        let mut checked = 0;
        for round in 0..20 {
            let mut guesses = tokio::task::JoinSet::new();
            for i in 0..3 * MAX_FAILED_SIGN_INS {
                let vault = vault.clone();
                guesses.spawn(async move {
                    vault
                        .operator_sign_in("dave", &format!("guess {round} {i}"), None)
                        .await
                        .unwrap()
                });
            }
            let outcomes = guesses.join_all().await;
            checked += outcomes
                .iter()
                .filter(|o| **o == SignInOutcome::Refused)
                .count() as i64;
            if outcomes.contains(&SignInOutcome::Throttled) {
                break;
            }
        }
        assert_eq!(checked, MAX_FAILED_SIGN_INS);
        assert_eq!(
            sign_in(vault, "dave", PASSWORD, None).await,
            SignInOutcome::Throttled
        );
    })
    .await;
}

#[tokio::test]
async fn password_checks_beyond_the_cap_are_answered_busy_at_once_and_change_nothing() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let vault = server.vault();
        vault.add_operator("erin", PASSWORD, "test").await.unwrap();
        let before = vault.operator_events(1000).await.unwrap().len();
        let mut guesses = tokio::task::JoinSet::new();
        for i in 0..4 * CONCURRENT_PASSWORD_CHECKS {
            let vault = vault.clone();
            guesses.spawn(async move {
                vault
                    .operator_sign_in("erin", &format!("guess number {i}"), Some("192.0.2.1"))
                    .await
                    .unwrap()
            });
        }
        let outcomes = guesses.join_all().await;
        let busy = outcomes
            .iter()
            .filter(|o| **o == SignInOutcome::Busy)
            .count();
        let refused = outcomes.len() - busy;
        assert!(
            busy > 0 && refused <= CONCURRENT_PASSWORD_CHECKS,
            "{outcomes:?}"
        );
        // A busy answer counted no failure: the right password still signs in after the
        // checked ones (fewer than the lockout).
        assert!(signs_in(vault, "erin", PASSWORD, Some("192.0.2.1")).await);
        // One failure event (the first refusal; the others wait, counted) and the sign-in.
        let events = vault.operator_events(1000).await.unwrap();
        assert_eq!(events.len() - before, 2, "{events:?}");
    })
    .await;
}

#[tokio::test]
async fn failures_from_one_address_lock_only_that_address() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let vault = server.vault();
        vault.add_operator("frank", PASSWORD, "test").await.unwrap();
        let attacker = Some("198.51.100.7");
        guess_wrong(vault, "frank", attacker, MAX_FAILED_SIGN_INS).await;
        assert_eq!(
            sign_in(vault, "frank", PASSWORD, attacker).await,
            SignInOutcome::Throttled
        );
        // Frank, from his own address, is not locked out by someone else's guesses.
        assert!(signs_in(vault, "frank", PASSWORD, Some("203.0.113.20")).await);
    })
    .await;
}

/// One address guessing a few passwords each at many names (or the admin token) is locked
/// after `MAX_FAILED_SIGN_INS_PER_ADDRESS` failures in all, whatever the names; other
/// addresses are not, and the lock passes.
#[tokio::test]
async fn failures_at_many_names_from_one_address_lock_that_address() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let vault = server.vault();
        vault.add_operator("heidi", PASSWORD, "test").await.unwrap();
        let sprayer = Some("198.51.100.8");
        let per_name = MAX_FAILED_SIGN_INS - 1;
        let names = MAX_FAILED_SIGN_INS_PER_ADDRESS / per_name;
        for n in 0..names {
            guess_wrong(vault, &format!("name{n}"), sprayer, per_name).await;
        }
        let left = MAX_FAILED_SIGN_INS_PER_ADDRESS - names * per_name;
        guess_wrong(vault, "heidi", sprayer, left).await;
        // Locked at every name from there, even with the right password or the admin token.
        for (name, password) in [("heidi", PASSWORD), ("name999", "x")] {
            assert_eq!(
                sign_in(vault, name, password, sprayer).await,
                SignInOutcome::Throttled
            );
        }
        let token = server.admin_token().to_owned();
        assert_eq!(
            vault
                .admin_token_sign_in(|| token == server.admin_token(), sprayer)
                .await
                .unwrap(),
            SignInOutcome::Throttled
        );
        // Heidi from her own address is not locked out, nor is that name anywhere.
        assert!(signs_in(vault, "heidi", PASSWORD, Some("203.0.113.21")).await);
        server.advance(LOCKOUT_SECONDS);
        assert!(signs_in(vault, "heidi", PASSWORD, sprayer).await);
    })
    .await;
}

#[tokio::test]
async fn a_flood_of_refusals_records_one_event_a_minute_with_a_count() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let vault = server.vault();
        vault.add_operator("grace", PASSWORD, "test").await.unwrap();
        let before = vault.operator_events(1000).await.unwrap().len();
        // Four addresses, two guesses each: eight refusals of grace, eight of unknown names.
        for address in 0..4 {
            let peer = format!("192.0.2.{address}");
            for _ in 0..2 {
                vault
                    .operator_sign_in("grace", "wrong password", Some(&peer))
                    .await
                    .unwrap();
                vault
                    .operator_sign_in(&format!("guess{address}"), "x", Some(&peer))
                    .await
                    .unwrap();
            }
        }
        let events = vault.operator_events(1000).await.unwrap();
        assert_eq!(
            events.len() - before,
            2,
            "one for grace, one for unknown users: {events:?}"
        );
        server.advance(FAILURE_EVENT_INTERVAL_SECONDS);
        vault
            .operator_sign_in("grace", "wrong password", Some("192.0.2.99"))
            .await
            .unwrap();
        let newest = &vault.operator_events(1).await.unwrap()[0];
        assert_eq!(newest.operator, "grace");
        assert_eq!(
            newest.reason.as_deref(),
            Some("invalid_credentials (8 refusals since the last recorded)")
        );
    })
    .await;
}

/// Signs in to the portal with `fields` as a browser on this site would; the answer.
async fn portal_sign_in(server: &TestServer, fields: &[(&str, &str)]) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/portal/sign-in", server.base_url()))
        .header("Origin", server.base_url())
        .form(fields)
        .send()
        .await
        .unwrap()
}

/// The portal session cookie an answer sets (`name=value`), and its attributes.
fn portal_cookie(response: &reqwest::Response) -> (String, String) {
    let set = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("alter_portal="))
        .expect("a portal cookie");
    let (pair, attributes) = set.split_once(';').unwrap();
    (pair.to_owned(), attributes.to_owned())
}

#[tokio::test]
async fn the_admin_token_form_is_throttled_and_its_sessions_end_with_the_token() {
    on_every_engine(|engine| async move {
        let mut server = TestServer::start(engine).await;
        for _ in 0..MAX_FAILED_SIGN_INS {
            let refused = portal_sign_in(&server, &[("token", "alter_admin_guess")]).await;
            assert_eq!(refused.status(), 401);
        }
        let token = server.admin_token().to_owned();
        let throttled = portal_sign_in(&server, &[("token", &token)]).await;
        assert_eq!(throttled.status(), 429, "even the right token waits");
        let events = server.vault().operator_events(1000).await.unwrap();
        let failures: Vec<_> = events
            .iter()
            .filter(|e| e.operator == ADMIN_TOKEN_OPERATOR)
            .collect();
        assert_eq!(failures.len(), 1, "one event a minute: {failures:?}");

        server.advance(LOCKOUT_SECONDS);
        let signed_in = portal_sign_in(&server, &[("token", &token)]).await;
        assert_eq!(signed_in.status(), 303);
        let (cookie, attributes) = portal_cookie(&signed_in);
        assert!(attributes.contains("SameSite=Strict"), "{attributes}");
        let client = reqwest::Client::new();
        let page = |base: String, cookie: String| {
            let client = client.clone();
            async move {
                client
                    .get(format!("{base}/portal/apps"))
                    .header("Cookie", cookie)
                    .send()
                    .await
                    .unwrap()
            }
        };
        let seen = page(server.base_url().to_owned(), cookie.clone()).await;
        assert_eq!(seen.status(), 200);

        // A new admin token ends the sessions the old one signed in.
        server.restart_with_new_admin_token().await;
        let stale = page(server.base_url().to_owned(), cookie).await;
        assert_eq!(stale.status(), 403);
        assert!(stale.text().await.unwrap().contains("Sign in again"));
    })
    .await;
}

#[tokio::test]
async fn exports_are_same_origin_only_and_quote_every_cell() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("exported").await;
        let signed_in = portal_sign_in(&server, &[("token", server.admin_token())]).await;
        let (cookie, _) = portal_cookie(&signed_in);
        let url = format!(
            "{}/portal/apps/{}/audit/export?format=csv",
            server.base_url(),
            app.info.id
        );
        let client = reqwest::Client::new();
        // Another site's link or image, or a client that says nothing, gets nothing.
        for fetch_site in [None, Some("cross-site"), Some("same-site")] {
            let mut request = client.get(&url).header("Cookie", &cookie);
            if let Some(site) = fetch_site {
                request = request.header("Sec-Fetch-Site", site);
            }
            let refused = request.send().await.unwrap();
            assert_eq!(refused.status(), 403, "{fetch_site:?}");
        }
        let exported = client
            .get(&url)
            .header("Cookie", &cookie)
            .header("Sec-Fetch-Site", "same-origin")
            .send()
            .await
            .unwrap();
        assert_eq!(exported.status(), 200);
        let text = exported.text().await.unwrap();
        let first_row = text.lines().nth(1).expect("the app's creation, at least");
        assert!(first_row.starts_with("\"1\","), "{first_row}");
    })
    .await;
}

#[tokio::test]
async fn a_reported_call_names_an_upper_case_method_and_stays_bounded() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("reports").await;
        let report =
            |method: &str, url: String, reason: Option<String>, generation: Option<String>| {
                serde_json::json!({
                    "grant_id": uuid::Uuid::new_v4().to_string(), "provider_id": "",
                    "method": method, "url": url, "request_headers": {},
                    "request_body": null, "response_status": 200, "response_headers": {},
                    "response_body": null, "latency_ms": 1, "reason": reason,
                    "token_generation": generation,
                })
            };
        let url = || "https://api.example.com/".to_owned();
        let mut bodies: Vec<serde_json::Value> = ["get", "GET /evil", "=1+1", "", "\tPOST"]
            .into_iter()
            .map(|method| report(method, url(), None, None))
            .collect();
        // What goes into the audit log is bounded as a release's own fields are.
        bodies.push(report("GET", url(), Some("r".repeat(1001)), None));
        bodies.push(report("GET", url(), Some(String::new()), None));
        bodies.push(report("GET", url(), None, Some("g".repeat(101))));
        for body in bodies {
            let refused = server
                .raw(&app.key.api_key, "POST", "/sdk/oauth/audit/api-call")
                .body(body.to_string())
                .send()
                .await;
            assert_eq!(refused.status, 422, "{:?}", refused.json);
            assert_eq!(refused.code(), Some("invalid_request"));
        }
    })
    .await;
}
