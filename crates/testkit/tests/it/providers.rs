//! OAuth providers on the admin API: configured per app, the client secret sealed and never
//! shown, reconfigured from the version read, removed with an audit trail.

use alter_sdk::admin::{AccountSourceBody, AuditQuery, ConfigureProviderRequest, EndpointsBody};
use alter_testkit::{TestServer, on_every_engine};

/// Long enough for the leak watch, which then proves it never leaves the vault.
const CLIENT_SECRET: &str = "acme-client-secret-3f9c2a7e1b";

fn custom(client_secret: Option<&str>) -> ConfigureProviderRequest {
    ConfigureProviderRequest {
        display_name: Some("Acme".into()),
        client_id: "alter-client".into(),
        client_secret: client_secret.map(str::to_owned),
        scopes: Some(vec!["openid".into(), "files.read".into(), "openid".into()]),
        endpoints: Some(EndpointsBody {
            issuer: Some("https://id.acme.example".into()),
            authorize_url: Some("https://id.acme.example/authorize".into()),
            token_url: Some("https://id.acme.example/token".into()),
            revoke_url: Some("https://id.acme.example/revoke".into()),
            refresh: Some("non_rotating".into()),
            account: Some(AccountSourceBody::IdToken {
                claim: "email".into(),
            }),
            ..EndpointsBody::default()
        }),
        params: None,
        expected_version: None,
    }
}

#[tokio::test]
async fn a_custom_provider_is_configured_shown_without_its_secret_and_removed() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let admin = server.admin();
        let app = server.new_app("a").await;
        let other = server.new_app("b").await;

        let missing = admin
            .configure_provider(&app.info.id, "acme", &custom(None))
            .await
            .unwrap_err();
        assert_eq!(
            missing.status(),
            422,
            "the first configuration needs a secret"
        );

        let shown = admin
            .configure_provider(&app.info.id, "acme", &custom(Some(CLIENT_SECRET)))
            .await
            .unwrap();
        assert_eq!(shown.source, "custom");
        assert_eq!(shown.version, 1);
        assert_eq!(
            shown.scopes,
            vec!["openid".to_string(), "files.read".into()]
        );
        assert_eq!(
            shown.redirect_uri,
            format!("{}/oauth/callback", server.base_url())
        );
        assert_eq!(
            shown.endpoints.pkce,
            Some(true),
            "PKCE is on unless said otherwise"
        );
        assert_eq!(shown.endpoints.refresh.as_deref(), Some("non_rotating"));
        assert_eq!(
            admin.get_provider(&app.info.id, "acme").await.unwrap(),
            shown
        );
        assert_eq!(
            admin.list_providers(&app.info.id).await.unwrap(),
            vec![shown.clone()]
        );

        // Reconfiguring without a secret keeps the stored one (sealed again to the new
        // revision) — as long as it goes where it went before.
        let renamed = admin
            .configure_provider(
                &app.info.id,
                "acme",
                &ConfigureProviderRequest {
                    display_name: Some("Acme Files".into()),
                    ..custom(None)
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (renamed.version, renamed.display_name.as_str()),
            (2, "Acme Files")
        );
        let elsewhere = |f: fn(&mut ConfigureProviderRequest)| {
            let mut request = custom(None);
            f(&mut request);
            request
        };
        for moved in [
            elsewhere(|r| r.client_id = "alter-client-2".into()),
            elsewhere(|r| {
                if let Some(e) = r.endpoints.as_mut() {
                    e.token_url = Some("https://collector.example/token".into());
                }
            }),
            elsewhere(|r| {
                if let Some(e) = r.endpoints.as_mut() {
                    e.revoke_url = Some("https://collector.example/revoke".into());
                }
            }),
        ] {
            let refused = admin
                .configure_provider(&app.info.id, "acme", &moved)
                .await
                .unwrap_err();
            assert_eq!(
                refused.status(),
                422,
                "a kept secret goes nowhere new: {refused}"
            );
        }
        let changed = admin
            .configure_provider(
                &app.info.id,
                "acme",
                &ConfigureProviderRequest {
                    client_id: "alter-client-2".into(),
                    ..custom(Some(CLIENT_SECRET))
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (changed.version, changed.client_id.as_str()),
            (3, "alter-client-2")
        );
        // A change made from a stale read is refused.
        let stale = admin
            .configure_provider(
                &app.info.id,
                "acme",
                &ConfigureProviderRequest {
                    expected_version: Some(2),
                    client_id: "alter-client-2".into(),
                    ..custom(None)
                },
            )
            .await
            .unwrap_err();
        assert_eq!(stale.status(), 409);
        let again = admin
            .configure_provider(
                &app.info.id,
                "acme",
                &ConfigureProviderRequest {
                    expected_version: Some(3),
                    client_id: "alter-client-2".into(),
                    ..custom(None)
                },
            )
            .await
            .unwrap();
        assert_eq!(again.version, 4);

        // Another app sees nothing of it.
        let hidden = admin
            .get_provider(&other.info.id, "acme")
            .await
            .unwrap_err();
        assert_eq!(
            (hidden.status(), hidden.code()),
            (404, Some("provider_not_found"))
        );
        assert!(
            admin
                .list_providers(&other.info.id)
                .await
                .unwrap()
                .is_empty()
        );

        let removed = admin.delete_provider(&app.info.id, "acme").await.unwrap();
        assert_eq!(removed.version, 4);
        let gone = admin.get_provider(&app.info.id, "acme").await.unwrap_err();
        assert_eq!(gone.status(), 404);
        let page = admin
            .audit_events(&app.info.id, &AuditQuery::default())
            .await
            .unwrap();
        let actions: Vec<&str> = page
            .items
            .iter()
            .filter_map(|e| e.event["action"].as_str())
            .collect();
        let configured = actions
            .iter()
            .filter(|a| **a == "provider.configured")
            .count();
        assert_eq!(configured, 4, "{actions:?}");
        assert!(actions.contains(&"provider.deleted"), "{actions:?}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bad_provider_configurations_are_refused_and_change_nothing() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let admin = server.admin();
        let app = server.new_app("a").await;
        let with_endpoints = |f: fn(&mut EndpointsBody)| {
            let mut request = custom(Some(CLIENT_SECRET));
            if let Some(endpoints) = request.endpoints.as_mut() {
                f(endpoints);
            }
            request
        };
        let refused = [
            ("Acme", custom(Some(CLIENT_SECRET))),
            (
                "acme",
                with_endpoints(|e| {
                    e.authorize_url = Some("http://id.acme.example/authorize".into())
                }),
            ),
            ("acme", with_endpoints(|e| e.token_url = None)),
            (
                "acme",
                with_endpoints(|e| e.refresh = Some("sometimes".into())),
            ),
            (
                "acme",
                ConfigureProviderRequest {
                    endpoints: None,
                    ..custom(Some(CLIENT_SECRET))
                },
            ),
            (
                "acme",
                ConfigureProviderRequest {
                    scopes: Some(vec!["files read".into()]),
                    ..custom(Some(CLIENT_SECRET))
                },
            ),
        ];
        for (id, request) in refused {
            let e = admin
                .configure_provider(&app.info.id, id, &request)
                .await
                .unwrap_err();
            assert_eq!(e.status(), 422, "{id} {request:?}: {e}");
        }
        assert!(admin.list_providers(&app.info.id).await.unwrap().is_empty());
        let unknown_app = admin
            .configure_provider(
                "00000000-0000-4000-8000-000000000000",
                "acme",
                &custom(Some(CLIENT_SECRET)),
            )
            .await
            .unwrap_err();
        assert_eq!(unknown_app.status(), 404);
        // A loopback authorization server (the tests' own) may use plain http.
        let local = with_endpoints(|e| {
            e.issuer = Some("http://127.0.0.1:9".into());
            e.authorize_url = Some("http://127.0.0.1:9/authorize".into());
            e.token_url = Some("http://127.0.0.1:9/token".into());
            e.revoke_url = None;
        });
        // …but a remote provider may not point one endpoint at this machine, nor at an
        // internal network.
        for (field, url) in [
            ("token", "http://127.0.0.1:6379/"),
            ("token", "https://169.254.169.254/latest/meta-data"),
            ("authorize", "https://10.1.2.3/authorize"),
        ] {
            let mut request = custom(Some(CLIENT_SECRET));
            if let Some(e) = request.endpoints.as_mut() {
                match field {
                    "token" => e.token_url = Some(url.into()),
                    _ => e.authorize_url = Some(url.into()),
                }
            }
            let refused = admin
                .configure_provider(&app.info.id, "acme", &request)
                .await
                .unwrap_err();
            assert_eq!(refused.status(), 422, "{url}");
        }
        admin
            .configure_provider(&app.info.id, "local", &local)
            .await
            .unwrap();
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_catalogue_provider_is_configured_by_its_id_with_its_placeholders() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let admin = server.admin();
        let app = server.new_app("a").await;
        let app = &app.info.id;
        let catalogue = admin.builtin_providers().await.unwrap();
        assert!(catalogue.len() >= 30, "{}", catalogue.len());
        let shopify = catalogue.iter().find(|p| p.id == "shopify").unwrap();
        assert_eq!(shopify.placeholders, vec!["shop".to_string()]);

        let by_id = |client_secret: Option<&str>| ConfigureProviderRequest {
            display_name: None,
            client_id: "alter-client".into(),
            client_secret: client_secret.map(str::to_owned),
            scopes: None,
            endpoints: None,
            params: None,
            expected_version: None,
        };
        let google = admin
            .configure_provider(app, "google", &by_id(Some(CLIENT_SECRET)))
            .await
            .unwrap();
        assert_eq!(
            (google.source.as_str(), google.display_name.as_str()),
            ("catalog", "Google")
        );
        assert_eq!(google.scopes, vec!["openid".to_string(), "email".into()]);
        assert_eq!(
            google.endpoints.authorize_url.as_deref(),
            Some("https://accounts.google.com/o/oauth2/v2/auth")
        );
        let offline = google.endpoints.extra_authorize_params.unwrap_or_default();
        assert_eq!(
            offline.get("access_type").map(String::as_str),
            Some("offline")
        );

        // A placeholder without a default must be given, and may only be a host-like label.
        let no_shop = admin
            .configure_provider(app, "shopify", &by_id(Some(CLIENT_SECRET)))
            .await
            .unwrap_err();
        assert_eq!(no_shop.status(), 422);
        for bad in ["evil.example/x", "a@b", "..", ""] {
            let request = ConfigureProviderRequest {
                params: Some([("shop".to_string(), bad.to_string())].into()),
                ..by_id(Some(CLIENT_SECRET))
            };
            let e = admin
                .configure_provider(app, "shopify", &request)
                .await
                .unwrap_err();
            assert_eq!(e.status(), 422, "{bad:?}");
        }
        let shop = ConfigureProviderRequest {
            params: Some([("shop".to_string(), "acme".to_string())].into()),
            ..by_id(Some(CLIENT_SECRET))
        };
        let shopify = admin
            .configure_provider(app, "shopify", &shop)
            .await
            .unwrap();
        let authorize = shopify.endpoints.authorize_url.unwrap_or_default();
        assert!(authorize.starts_with("https://acme."), "{authorize}");
        // Microsoft's tenant has a default.
        let microsoft = admin
            .configure_provider(app, "microsoft", &by_id(Some(CLIENT_SECRET)))
            .await
            .unwrap();
        let authorize = microsoft.endpoints.authorize_url.unwrap_or_default();
        assert!(authorize.contains("/common/"), "{authorize}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_custom_provider_is_discovered_from_its_issuer() {
    use alter_testkit::oauth_peer::{OAuthPeer, PeerOptions};
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let redirect = format!("{}/oauth/callback", server.base_url());
        let peer = OAuthPeer::start(PeerOptions::new(redirect)).await;
        let admin = server.admin();
        let app = server.new_app("a").await;
        let request = |issuer: String| ConfigureProviderRequest {
            display_name: None,
            client_id: peer.client_id().into(),
            client_secret: Some(peer.client_secret().into()),
            scopes: Some(vec!["openid".into(), "files.read".into()]),
            endpoints: Some(EndpointsBody {
                issuer: Some(issuer),
                ..EndpointsBody::default()
            }),
            params: None,
            expected_version: None,
        };
        let found = admin
            .configure_provider(&app.info.id, "peer", &request(peer.issuer().into()))
            .await
            .unwrap();
        let endpoints = &found.endpoints;
        assert_eq!(endpoints.issuer.as_deref(), Some(peer.issuer()));
        assert_eq!(
            endpoints.authorize_url.as_deref(),
            Some(peer.url("/auth").as_str())
        );
        assert_eq!(
            endpoints.token_url.as_deref(),
            Some(peer.url("/token").as_str())
        );
        assert_eq!(
            endpoints.revoke_url.as_deref(),
            Some(peer.url("/token/revocation").as_str())
        );
        assert_eq!(endpoints.pkce, Some(true));
        // A document that answers for another issuer, or none at all, configures nothing.
        for wrong in [peer.url("/nowhere"), "http://127.0.0.1:9".to_string()] {
            let e = admin
                .configure_provider(&app.info.id, "other", &request(wrong.clone()))
                .await
                .unwrap_err();
            assert_eq!(e.status(), 422, "{wrong}: {e}");
        }
        assert_eq!(admin.list_providers(&app.info.id).await.unwrap().len(), 1);
        server.stop().await;
    })
    .await;
}
