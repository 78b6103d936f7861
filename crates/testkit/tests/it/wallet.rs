//! Browser sessions and the Wallet's forms: a session signs in its own kind and app only,
//! until it expires or is signed out; a form without the session's CSRF token, or posted
//! cross-site, is refused and changes nothing.

use alter_core::browser_sessions::{BrowserSessionKind, csrf_token};
use alter_core::ids::AppId;
use alter_crypto::ExposeSecret;
use alter_testkit::{TestServer, on_every_engine};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};
use serde_json::json;

#[tokio::test]
async fn a_wallet_session_signs_in_its_own_app_until_it_ends() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("wallet").await;
        let other = server.world("other").await;
        let app = AppId::parse(&world.app.info.id).unwrap();
        let other_app = AppId::parse(&other.app.info.id).unwrap();
        let vault = server.vault();
        let alice = vault
            .sign_in(app, &world.idp.token("alice", json!({})))
            .await
            .unwrap();
        let subject = alice.user.id.to_string();
        let opened = vault
            .open_browser_session(BrowserSessionKind::Wallet, Some(app), &subject, 3600)
            .await
            .unwrap();
        let token = opened.token.expose_secret().to_owned();
        assert!(
            !format!("{opened:?}").contains(&token),
            "Debug shows no token"
        );

        let session = vault
            .browser_session(BrowserSessionKind::Wallet, &token)
            .await
            .unwrap()
            .expect("live");
        let user = vault.wallet_user(&session, app).await.unwrap().unwrap();
        assert_eq!(user.user.id, alice.user.id);
        assert!(
            vault
                .wallet_user(&session, other_app)
                .await
                .unwrap()
                .is_none()
        );
        for (kind, presented) in [
            (BrowserSessionKind::Portal, token.as_str()),
            (BrowserSessionKind::Wallet, "alter_bs_forged"),
            (BrowserSessionKind::Wallet, ""),
        ] {
            assert!(
                vault
                    .browser_session(kind, presented)
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        assert!(
            vault
                .open_browser_session(BrowserSessionKind::Wallet, None, &subject, 3600)
                .await
                .is_err(),
            "a wallet session belongs to an app"
        );
        assert!(
            vault
                .open_browser_session(BrowserSessionKind::Portal, None, "admin", 10)
                .await
                .is_err(),
            "too short"
        );

        // Over HTTP: the cookie opens its app's wallet, and only there.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let base = server.base_url();
        let cookie = format!("alter_wallet={token}");
        let home = http
            .get(format!("{base}/wallet/{app}"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(home.status(), StatusCode::OK);
        let page = home.text().await.unwrap();
        let csrf = csrf_token(&token);
        assert!(page.contains(&csrf));
        let elsewhere = http
            .get(format!("{base}/wallet/{other_app}"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(elsewhere.status(), StatusCode::SEE_OTHER);
        assert!(
            elsewhere.headers()[LOCATION]
                .to_str()
                .unwrap()
                .contains(&format!("/wallet/{other_app}/sign-in"))
        );

        // Sign-out is a form like any other: refused without the token or cross-site.
        let sign_out = format!("{base}/wallet/{app}/sign-out");
        let post = |form: Vec<(&'static str, String)>, site: &'static str| {
            http.post(&sign_out)
                .header(COOKIE, &cookie)
                .header("sec-fetch-site", site)
                .form(&form)
                .send()
        };
        for (form, site) in [
            (vec![], "same-origin"),
            (vec![("csrf", "0".repeat(64))], "same-origin"),
            (vec![("csrf", csrf_token("alter_bs_other"))], "same-origin"),
            (vec![("csrf", csrf.clone())], "cross-site"),
            (
                vec![("csrf", csrf.clone()), ("csrf", csrf.clone())],
                "same-origin",
            ),
        ] {
            let refused = post(form, site).await.unwrap();
            assert_eq!(refused.status(), StatusCode::FORBIDDEN);
            assert!(
                vault
                    .browser_session(BrowserSessionKind::Wallet, &token)
                    .await
                    .unwrap()
                    .is_some(),
                "a refused form changes nothing"
            );
        }
        let done = post(vec![("csrf", csrf.clone())], "same-origin")
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::OK);
        assert!(
            vault
                .browser_session(BrowserSessionKind::Wallet, &token)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            !vault
                .close_browser_session(BrowserSessionKind::Wallet, &token)
                .await
                .unwrap(),
            "signed out once"
        );

        // A session ends at its expiry, whatever happens.
        let short = vault
            .open_browser_session(BrowserSessionKind::Wallet, Some(app), &subject, 60)
            .await
            .unwrap();
        let short = short.token.expose_secret().to_owned();
        server.advance(61);
        assert!(
            vault
                .browser_session(BrowserSessionKind::Wallet, &short)
                .await
                .unwrap()
                .is_none()
        );
    })
    .await;
}
