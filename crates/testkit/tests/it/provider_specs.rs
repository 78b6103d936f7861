//! Provider specs: an operator imports an OpenAPI document for an OAuth provider or a managed
//! secret; keys with `providers:read` list, page, search and read its operations through the
//! SDK routes (protocol part 1 §7.7); other apps never see it.

use alter_proto::admin::{AuditQuery, CreateSecretRequest, MintKeyRequest};
use alter_sdk::admin::{
    AccountSourceBody, ConfigureProviderRequest, EndpointsBody, ImportQuery, SpecListQuery,
};
use alter_sdk::{CreateAgent, DeriveKeyRequest};
use alter_testkit::{TestApp, TestServer, on_every_engine};
use serde_json::json;

/// A trimmed Stripe-like payments API (9 operations), shared with the compat test.
const PAYMENTS: &str = include_str!("../../../../tests/compat/fixtures/payments.openapi.yaml");

async fn configure_acme(server: &TestServer, app: &TestApp) {
    let request = ConfigureProviderRequest {
        display_name: Some("Acme".into()),
        client_id: "alter-client".into(),
        client_secret: Some("acme-client-secret-77a1c3".into()),
        scopes: Some(vec!["payments".into()]),
        endpoints: Some(EndpointsBody {
            authorize_url: Some("https://id.acme.example/authorize".into()),
            token_url: Some("https://id.acme.example/token".into()),
            account: Some(AccountSourceBody::Unknown),
            ..EndpointsBody::default()
        }),
        params: None,
        expected_version: None,
    };
    server
        .admin()
        .configure_provider(&app.info.id, "acme", &request)
        .await
        .unwrap();
}

async fn import(
    server: &TestServer,
    app: &TestApp,
    kind: &str,
    provider: &str,
    document: &str,
    content_type: &str,
) -> Result<alter_sdk::admin::ImportedSpec, alter_sdk::Error> {
    server
        .admin()
        .import_provider_spec(
            &app.info.id,
            kind,
            provider,
            document.as_bytes().to_vec(),
            content_type,
            &ImportQuery {
                source_url: Some("https://docs.acme.example/openapi.yaml".into()),
            },
        )
        .await
}

#[tokio::test]
async fn an_imported_spec_is_listed_paged_searched_and_read() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        configure_acme(&server, &app).await;
        let imported = import(&server, &app, "oauth", "acme", PAYMENTS, "application/yaml")
            .await
            .unwrap();
        assert!(imported.changed);
        let spec = imported.spec;
        assert_eq!(
            (spec.provider_kind.as_str(), spec.provider_id.as_str()),
            ("oauth", "acme")
        );
        assert_eq!((spec.version, spec.operation_count), (1, 9));
        assert_eq!(spec.provenance, "import");
        assert_eq!(spec.title.as_deref(), Some("Acme Payments API"));
        assert_eq!(spec.spec_version.as_deref(), Some("2024-06-20"));
        assert_eq!(spec.content_hash.len(), 64);
        assert_eq!(spec.fetched_at, spec.changed_at);

        let client = server.app(&app.key.api_key);
        let specs = client.provider_specs();
        assert_eq!(specs.list(None).await.unwrap(), vec![spec.clone()]);
        assert_eq!(specs.list(Some("oauth")).await.unwrap(), vec![spec.clone()]);
        assert!(specs.list(Some("managed")).await.unwrap().is_empty());
        assert_eq!(specs.get("oauth", "acme").await.unwrap(), spec);

        // Paging, in document order.
        let first = specs
            .list_operations("oauth", "acme", None, 4, 0)
            .await
            .unwrap();
        assert_eq!((first.total, first.limit, first.offset), (9, 4, 0));
        assert!(first.has_more);
        assert_eq!(first.spec, spec);
        let ids: Vec<&str> = first
            .items
            .iter()
            .map(|o| o.operation_id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "GetCharges",
                "PostCharges",
                "GetChargesCharge",
                "PostChargesCharge"
            ]
        );
        assert_eq!(first.items[0].method, "GET");
        assert_eq!(first.items[0].path_template, "/v1/charges");
        assert_eq!(first.items[0].summary.as_deref(), Some("List all charges"));
        let last = specs
            .list_operations("oauth", "acme", None, 4, 8)
            .await
            .unwrap();
        assert_eq!(last.items.len(), 1);
        assert!(!last.has_more);
        let past = specs
            .list_operations("oauth", "acme", None, 4, 50)
            .await
            .unwrap();
        assert!(past.items.is_empty() && !past.has_more);

        // Search: id, path and summary, ignoring case, wildcards taken literally.
        let search = |text: &'static str| {
            let client = server.app(&app.key.api_key);
            async move {
                client
                    .provider_specs()
                    .list_operations("oauth", "acme", Some(text), 100, 0)
                    .await
                    .unwrap()
            }
        };
        let customers = search("CUSTOMER").await;
        assert_eq!(customers.total, 3, "{:?}", customers.items);
        assert_eq!(search("100%").await.items[0].operation_id, "PostRefunds");
        assert_eq!(search("/capture").await.total, 1);
        assert_eq!(
            search("%").await.total,
            1,
            "only the refund's summary has a %"
        );
        assert_eq!(search("no such thing").await.total, 0);

        // An operation without an operationId has a derived one.
        let capture = &search("capture").await.items[0];
        assert_eq!(capture.operation_id, "post /v1/charges/{charge}/capture");
        let detail = specs
            .get_operation("oauth", "acme", &capture.operation_id)
            .await
            .unwrap();
        assert_eq!(detail.method, "POST");
        assert_eq!(detail.params_schema.as_ref().unwrap()[0]["name"], "charge");

        // Schemas come with their references resolved; the cycle is cut.
        let get = specs
            .get_operation("oauth", "acme", "GetChargesCharge")
            .await
            .unwrap();
        let params = get.params_schema.unwrap();
        let names: Vec<&str> = params.iter().filter_map(|p| p["name"].as_str()).collect();
        assert_eq!(names, ["charge", "expand"], "path-level parameters first");
        let charge = get.response_schema.unwrap();
        assert_eq!(charge["properties"]["amount"]["type"], "integer");
        let customer = &charge["properties"]["customer"]["allOf"][0];
        assert_eq!(customer["properties"]["email"]["type"], "string");
        assert_eq!(
            customer["properties"]["latest_charge"]["allOf"][0],
            json!({"$ref": "#/components/schemas/Charge"})
        );
        let create = specs
            .get_operation("oauth", "acme", "PostCharges")
            .await
            .unwrap();
        assert_eq!(
            create.request_schema.unwrap()["required"],
            json!(["amount", "currency"])
        );
        assert_eq!(create.spec, spec);

        // Missing specs and operations are 404s with their own codes.
        let missing = specs.get("oauth", "nope").await.unwrap_err();
        assert!(missing.is_grant_not_found());
        assert_eq!(missing.code(), Some("provider_spec_not_found"));
        let missing = specs.get("managed", "acme").await.unwrap_err();
        assert_eq!(missing.code(), Some("provider_spec_not_found"));
        let missing = specs
            .get_operation("oauth", "acme", "getcharges")
            .await
            .unwrap_err();
        assert!(missing.is_grant_not_found());
        assert_eq!(missing.code(), Some("operation_not_found"));
        let missing = specs
            .list_operations("oauth", "nope", None, 10, 0)
            .await
            .unwrap_err();
        assert_eq!(missing.code(), Some("provider_spec_not_found"));
    })
    .await;
}

#[tokio::test]
async fn bad_queries_are_refused_with_stable_codes() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        configure_acme(&server, &app).await;
        import(&server, &app, "oauth", "acme", PAYMENTS, "application/yaml")
            .await
            .unwrap();
        let long = format!("search={}", "a".repeat(201));
        let long_id = format!("operation_id={}", "a".repeat(513));
        for (path, code) in [
            ("/operations?limit=0", "invalid_request"),
            ("/operations?limit=501", "invalid_request"),
            ("/operations?limit=x", "invalid_request"),
            ("/operations?offset=-1", "invalid_request"),
            ("/operations?search=", "invalid_request"),
            (long.as_str(), "invalid_request"),
            ("/operations?colour=red", "invalid_request"),
            ("/operation", "invalid_request"),
            ("/operation?operation_id=a%01b", "invalid_request"),
            ("/operation?operation_id=+", "invalid_request"),
        ] {
            let path = if path.starts_with('/') {
                format!("/sdk/provider-specs/oauth/acme{path}")
            } else if path.starts_with("search") {
                format!("/sdk/provider-specs/oauth/acme/operations?{path}")
            } else {
                format!("/sdk/provider-specs/oauth/acme/operation?{path}")
            };
            let response = server.raw(&app.key.api_key, "GET", &path).send().await;
            assert_eq!(response.status, 422, "{path}: {:?}", response.json);
            assert_eq!(response.code(), Some(code), "{path}");
        }
        let long_id_path = format!("/sdk/provider-specs/oauth/acme/operation?{long_id}");
        let response = server
            .raw(&app.key.api_key, "GET", &long_id_path)
            .send()
            .await;
        assert_eq!(response.status, 422);
        for path in [
            "/sdk/provider-specs?kind=graphql",
            "/sdk/provider-specs/graphql/acme",
        ] {
            let response = server.raw(&app.key.api_key, "GET", path).send().await;
            assert_eq!(response.status, 422, "{path}");
            assert_eq!(response.code(), Some("invalid_request"));
        }
    })
    .await;
}

#[tokio::test]
async fn reimports_move_the_version_only_when_the_content_changes() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        configure_acme(&server, &app).await;
        let first = import(&server, &app, "oauth", "acme", PAYMENTS, "application/yaml")
            .await
            .unwrap();
        server.advance(60);
        let again = import(&server, &app, "oauth", "acme", PAYMENTS, "text/yaml")
            .await
            .unwrap();
        assert!(!again.changed);
        assert_eq!(again.spec.version, 1);
        assert_eq!(again.spec.content_hash, first.spec.content_hash);
        assert_eq!(again.spec.changed_at, first.spec.changed_at);
        assert!(again.spec.fetched_at > first.spec.fetched_at);

        server.advance(60);
        let smaller = json!({
            "openapi": "3.1.0",
            "info": {"title": "Acme Payments API", "version": "2025-01-01"},
            "paths": {"/v1/balance": {"get": {"operationId": "GetBalance", "summary": "Balance"}}}
        })
        .to_string();
        let changed = import(&server, &app, "oauth", "acme", &smaller, "application/json")
            .await
            .unwrap();
        assert!(changed.changed);
        assert_eq!((changed.spec.version, changed.spec.operation_count), (2, 1));
        assert_ne!(changed.spec.content_hash, first.spec.content_hash);
        assert!(changed.spec.changed_at > first.spec.changed_at);
        let page = server
            .app(&app.key.api_key)
            .provider_specs()
            .list_operations("oauth", "acme", None, 100, 0)
            .await
            .unwrap();
        let ids: Vec<&str> = page.items.iter().map(|o| o.operation_id.as_str()).collect();
        assert_eq!(ids, ["GetBalance"], "the old operations are gone");

        // Bad documents and unknown providers change nothing.
        for (kind, provider, document, content_type, status) in [
            (
                "oauth",
                "acme",
                "{\"swagger\": \"2.0\"}",
                "application/json",
                422,
            ),
            ("oauth", "acme", "not: [valid", "application/yaml", 422),
            ("oauth", "acme", PAYMENTS, "text/plain", 422),
            ("oauth", "nope", PAYMENTS, "application/yaml", 404),
            ("managed", "acme", PAYMENTS, "application/yaml", 404),
            ("soap", "acme", PAYMENTS, "application/yaml", 422),
        ] {
            let refused = import(&server, &app, kind, provider, document, content_type)
                .await
                .unwrap_err();
            assert_eq!(refused.status(), status, "{kind}/{provider} {content_type}");
        }
        let spec = server
            .admin()
            .get_provider_spec(&app.info.id, "oauth", "acme")
            .await
            .unwrap();
        assert_eq!(spec, changed.spec);

        // Imports and the delete are audited.
        let removed = server
            .admin()
            .delete_provider_spec(&app.info.id, "oauth", "acme")
            .await
            .unwrap();
        assert_eq!(removed, changed.spec);
        let gone = server
            .admin()
            .get_provider_spec(&app.info.id, "oauth", "acme")
            .await
            .unwrap_err();
        assert_eq!(gone.code(), Some("provider_spec_not_found"));
        let events = server
            .admin()
            .audit_events(&app.info.id, &AuditQuery::default())
            .await
            .unwrap();
        let actions: Vec<&str> = events
            .items
            .iter()
            .filter_map(|e| e.event["action"].as_str())
            .filter(|a| a.starts_with("provider_spec."))
            .collect();
        assert_eq!(
            actions.len(),
            4,
            "three imports and the delete: {actions:?}"
        );
        assert!(actions.contains(&"provider_spec.deleted"));
    })
    .await;
}

#[tokio::test]
async fn managed_secret_specs_are_kept_under_the_slug() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        let secret = server
            .admin()
            .create_secret(
                &app.info.id,
                &CreateSecretRequest {
                    name: "Payments Prod".into(),
                    secret_type: "bearer".into(),
                    value: "sk-live-payments-9b7e".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        // Named by id, kept under the slug.
        let imported = import(
            &server,
            &app,
            "managed",
            &secret.id,
            PAYMENTS,
            "application/yaml",
        )
        .await
        .unwrap();
        assert_eq!(imported.spec.provider_id, secret.slug);
        assert_eq!(imported.spec.provider_kind, "managed");
        let listed = server
            .admin()
            .list_provider_specs(
                &app.info.id,
                &SpecListQuery {
                    kind: Some("managed".into()),
                },
            )
            .await
            .unwrap();
        assert_eq!(listed, vec![imported.spec.clone()]);
        let got = server
            .app(&app.key.api_key)
            .provider_specs()
            .get("managed", &secret.slug)
            .await
            .unwrap();
        assert_eq!(got, imported.spec);
    })
    .await;
}

#[tokio::test]
async fn specs_stay_inside_their_app_and_need_providers_read() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        let other = server.new_app("b").await;
        configure_acme(&server, &app).await;
        configure_acme(&server, &other).await;
        import(&server, &app, "oauth", "acme", PAYMENTS, "application/yaml")
            .await
            .unwrap();

        // Another app sees nothing, though it has a provider of the same id.
        let theirs = server.app(&other.key.api_key);
        assert!(theirs.provider_specs().list(None).await.unwrap().is_empty());
        let hidden = theirs
            .provider_specs()
            .get("oauth", "acme")
            .await
            .unwrap_err();
        assert_eq!(hidden.code(), Some("provider_spec_not_found"));
        let hidden = theirs
            .provider_specs()
            .get_operation("oauth", "acme", "GetCharges")
            .await
            .unwrap_err();
        assert_eq!(hidden.code(), Some("provider_spec_not_found"));
        let hidden = server
            .admin()
            .delete_provider_spec(&other.info.id, "oauth", "acme")
            .await
            .unwrap_err();
        assert_eq!(hidden.status(), 404);

        // A key holding providers:read reads; one without it is refused on every route.
        let reader = server
            .mint_key(
                &app,
                MintKeyRequest {
                    scopes: Some(vec!["providers:read".into()]),
                    ..Default::default()
                },
            )
            .await;
        let reader = server.app(&reader.api_key);
        assert_eq!(reader.provider_specs().list(None).await.unwrap().len(), 1);
        let outsider = server
            .mint_key(
                &app,
                MintKeyRequest {
                    scopes: Some(vec!["grants:read".into()]),
                    ..Default::default()
                },
            )
            .await;
        let outsider = server.app(&outsider.api_key);
        let specs = outsider.provider_specs();
        for refused in [
            specs.list(None).await.map(drop),
            specs.get("oauth", "acme").await.map(drop),
            specs
                .list_operations("oauth", "acme", None, 10, 0)
                .await
                .map(drop),
            specs
                .get_operation("oauth", "acme", "GetCharges")
                .await
                .map(drop),
        ] {
            let refused = refused.unwrap_err();
            assert_eq!(refused.code(), Some("insufficient_scope"));
            assert_eq!(refused.status(), 403);
        }

        // A derived key holds what it was given; an agent's keys hold providers:read.
        let app_client = server.app(&app.key.api_key);
        let derived = app_client
            .keys()
            .derive(DeriveKeyRequest {
                scopes: vec!["providers:read".into()],
                expires_in: 600,
                cidr_allowlist: None,
                name: None,
                metadata: None,
            })
            .await
            .unwrap();
        let derived = server.app(&derived.api_key);
        assert_eq!(
            derived
                .provider_specs()
                .list_operations("oauth", "acme", Some("charge"), 2, 0)
                .await
                .unwrap()
                .items
                .len(),
            2
        );
        let narrow = app_client
            .keys()
            .derive(DeriveKeyRequest {
                scopes: vec!["grants:read".into()],
                expires_in: 600,
                cidr_allowlist: None,
                name: None,
                metadata: None,
            })
            .await
            .unwrap();
        let refused = server
            .app(&narrow.api_key)
            .provider_specs()
            .list(None)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Some("insufficient_scope"));
        let agent = app_client
            .agents()
            .create(CreateAgent::new("spec-reader", json!({})))
            .await
            .unwrap();
        let agent = server.agent(&agent.api_key.unwrap());
        let detail = agent
            .provider_specs()
            .get_operation("oauth", "acme", "PostRefunds")
            .await
            .unwrap();
        assert_eq!(detail.path_template, "/v1/refunds");
    })
    .await;
}
