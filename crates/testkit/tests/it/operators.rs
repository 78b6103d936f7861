//! Operator accounts of the portal: created, listed, re-passworded and removed through the
//! admin API; signed in with Argon2id verification, one answer for a wrong password and an
//! unknown username, and a failed-attempt throttle shared by every node.

use alter_core::operators::{LOCKOUT_SECONDS, MAX_FAILED_SIGN_INS, SignInOutcome, operator_action};
use alter_testkit::{TestServer, on_every_engine};

const PASSWORD: &str = "correct horse battery staple";

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
        for (username, password) in [("Alice", PASSWORD), ("bob", "too short")] {
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
            vault
                .operator_sign_in("alice", PASSWORD, None)
                .await
                .unwrap(),
            SignInOutcome::Refused
        );
        let SignInOutcome::SignedIn(alice) = vault
            .operator_sign_in("alice", "a brand new passphrase", None)
            .await
            .unwrap()
        else {
            panic!("the new password signs in");
        };
        assert!(alice.password_changed_at > alice.created_at);

        admin.remove_operator("alice").await.unwrap();
        assert!(admin.list_operators().await.unwrap().is_empty());
        let gone = admin.remove_operator("alice").await.unwrap_err();
        assert_eq!(gone.code(), Some("operator_not_found"));
        assert_eq!(
            vault
                .operator_sign_in("alice", "a brand new passphrase", None)
                .await
                .unwrap(),
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
                vault
                    .operator_sign_in(username, "wrong password!", Some("203.0.113.9"))
                    .await
                    .unwrap(),
                SignInOutcome::Refused
            );
        }
        let events = vault.operator_events(2).await.unwrap();
        for event in &events {
            assert_eq!(event.action, operator_action::SIGN_IN_FAILED);
            assert_eq!(event.reason.as_deref(), Some("invalid_credentials"));
            assert_eq!(event.peer.as_deref(), Some("203.0.113.9"));
        }

        // A success forgets the failures before it.
        assert!(matches!(
            vault
                .operator_sign_in("carol", PASSWORD, None)
                .await
                .unwrap(),
            SignInOutcome::SignedIn(_)
        ));
        for _ in 0..MAX_FAILED_SIGN_INS {
            assert_eq!(
                vault
                    .operator_sign_in("Carol ", "wrong password!", None)
                    .await
                    .unwrap(),
                SignInOutcome::Refused
            );
        }
        // Locked: even the right password waits, and an unknown name throttles the same way.
        assert_eq!(
            vault
                .operator_sign_in("carol", PASSWORD, None)
                .await
                .unwrap(),
            SignInOutcome::Throttled
        );
        for _ in 0..MAX_FAILED_SIGN_INS {
            vault.operator_sign_in("nobody", "x", None).await.unwrap();
        }
        assert_eq!(
            vault.operator_sign_in("nobody", "x", None).await.unwrap(),
            SignInOutcome::Throttled
        );
        // The lock holds on another node too (it lives in the database).
        let other = server.second_node().await;
        assert_eq!(
            other
                .vault()
                .operator_sign_in("carol", PASSWORD, None)
                .await
                .unwrap(),
            SignInOutcome::Throttled
        );
        server.advance(LOCKOUT_SECONDS);
        assert!(matches!(
            vault
                .operator_sign_in("carol", PASSWORD, None)
                .await
                .unwrap(),
            SignInOutcome::SignedIn(_)
        ));
    })
    .await;
}

#[tokio::test]
async fn concurrent_guesses_do_not_slip_past_the_throttle() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let vault = server.vault();
        vault.add_operator("dave", PASSWORD, "test").await.unwrap();
        let mut guesses = tokio::task::JoinSet::new();
        for i in 0..3 * MAX_FAILED_SIGN_INS {
            let vault = vault.clone();
            guesses.spawn(async move {
                vault
                    .operator_sign_in("dave", &format!("guess number {i}"), None)
                    .await
                    .unwrap()
            });
        }
        let outcomes = guesses.join_all().await;
        let verified = outcomes
            .iter()
            .filter(|o| **o == SignInOutcome::Refused)
            .count();
        assert_eq!(verified as i64, MAX_FAILED_SIGN_INS, "{outcomes:?}");
    })
    .await;
}
