//! Envelope encryption, end to end: nothing readable at rest, ciphertexts bound to their row,
//! and a wrong master key stops start-up.

use alter_crypto::{ExposeSecret, MasterKey};
use alter_proto::admin::{CreateSecretRequest, MintKeyRequest};
use alter_sdk::{Principal, ProviderRequest};
use alter_server::StartupError;
use alter_testkit::upstream::Upstream;
use alter_testkit::{Engine, TestServer, on_every_engine};

#[tokio::test]
async fn no_key_material_is_readable_in_the_sqlite_files() {
    let server = TestServer::start(Engine::Sqlite).await;
    let app = server.new_app("a").await;
    let key = app.key.api_key.clone();
    let signing_key = alter_proto::signing::signing_key(&key);
    server.app(&key).scopes().list().await.unwrap();
    let files = server.database().sqlite_files();
    let mut scanned = 0;
    for file in &files {
        let Ok(bytes) = std::fs::read(file) else {
            continue;
        };
        scanned += bytes.len();
        for (what, needle) in [
            ("api key", key.as_bytes()),
            ("random part of the api key", &key.as_bytes()[9..31]),
            ("signing key", &signing_key[..]),
            ("admin token", server.admin_token().as_bytes()),
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{what} found in {}",
                file.display()
            );
        }
    }
    assert!(scanned > 0, "the database files were read: {files:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_fails_to_open() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        let victim = server.mint_key(&app, MintKeyRequest::default()).await;
        server.app(&victim.api_key).scopes().list().await.unwrap();
        let moved = server
            .database()
            .execute(
                "UPDATE api_keys SET sealed_signing_key = \
                 (SELECT sealed_signing_key FROM api_keys WHERE id = $1) WHERE id = $2",
                &[&app.key.info.id, &victim.info.id],
            )
            .await
            .unwrap();
        assert_eq!(moved, 1);
        let e = server
            .app(&victim.api_key)
            .scopes()
            .list()
            .await
            .unwrap_err();
        assert_eq!(e.status(), 500, "{e}");
        assert_eq!(e.code(), Some("internal_error"));
        assert!(!e.info().message.contains("seal"), "5xx bodies are generic");
        server.app(&app.key.api_key).scopes().list().await.unwrap();
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_earlier_secret_value_copied_back_into_its_row_fails_to_open() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let upstream = Upstream::start().await;
        let app_id = world.app.info.id.clone();
        let secret = server
            .admin()
            .create_secret(
                &app_id,
                &CreateSecretRequest {
                    name: "Rolled".into(),
                    secret_type: "bearer".into(),
                    value: "sk_live_beforeRotation1".into(),
                    allowed_hosts: vec!["127.0.0.1".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let app = server.app(&world.app.key.api_key);
        let grant = app
            .create_managed_secret_grant(&secret.id, Principal::system(), None)
            .await
            .unwrap()
            .grant_id;
        let call = || {
            app.request(ProviderRequest::get(format!("{}/v1/x", upstream.url())).grant_id(&grant))
        };
        call().await.unwrap();
        // A database writer keeps the sealed value of version 1 …
        let db = server.database();
        db.execute(
            "CREATE TABLE kept AS SELECT id, sealed_value, value_version FROM managed_secrets",
            &[],
        )
        .await
        .unwrap();
        server.advance(60);
        server
            .admin()
            .rotate_secret(&app_id, &secret.id, "sk_live_afterRotation2".into())
            .await
            .unwrap();
        call().await.unwrap();
        let calls = upstream.received().len();
        // … and copies it back over version 2, then also turns the version column back.
        for column in ["sealed_value", "value_version"] {
            let restore = format!(
                "UPDATE managed_secrets SET {column} = \
                 (SELECT {column} FROM kept WHERE kept.id = managed_secrets.id) WHERE id = $1"
            );
            assert_eq!(db.execute(&restore, &[&secret.id]).await.unwrap(), 1);
            let e = call().await.unwrap_err();
            assert_eq!(e.status(), 500, "{column}: {e}");
            assert_eq!(upstream.received().len(), calls, "nothing was sent");
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_wrong_master_key_stops_start_up_with_a_clear_message() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let e = server
            .start_with_master_key(MasterKey::generate().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(e, StartupError::MasterKey(_)), "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with("master key: the local master key ")
                && text.contains("does not open this database's key-encryption keys")
                && text.contains("`alter keys rotate`"),
            "{text}"
        );
        server.stop().await;
    })
    .await;
}

/// A KEK version Alter never creates (only version 1 exists; rotation re-wraps it) stops
/// start-up, even wrapped by the right key holder: someone able to wrap with a shared Transit
/// key and write the database must not get new secrets sealed under a KEK they know.
#[tokio::test]
async fn a_planted_kek_version_stops_start_up() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let material = alter_crypto::Kek::new_material().unwrap();
        let wrapped = server
            .master_key()
            .wrap(&alter_crypto::Kek::context(2), material.as_slice())
            .unwrap();
        let sql = "INSERT INTO keks (version, wrapped, created_at) VALUES (2, $1, 0)";
        let hex_wrapped: String = wrapped.iter().map(|b| format!("{b:02x}")).collect();
        let insert = match engine {
            Engine::Sqlite => sql.replace("$1", &format!("X'{hex_wrapped}'")),
            Engine::Postgres => sql.replace("$1", &format!("decode('{hex_wrapped}', 'hex')")),
        };
        assert_eq!(server.database().execute(&insert, &[]).await.unwrap(), 1);
        let key = MasterKey::from_encoded(alter_crypto::ExposeSecret::expose_secret(
            &server.master_key().encode(),
        ))
        .unwrap();
        let e = server.start_with_master_key(key).await.unwrap_err();
        assert!(
            e.to_string().contains("key-encryption key version 2"),
            "{e}"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn data_survives_a_restart() {
    on_every_engine(|engine| async move {
        let mut server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        server.restart().await;
        server.app(&app.key.api_key).scopes().list().await.unwrap();
        assert_eq!(server.admin().list_apps().await.unwrap().len(), 1);
        server.stop().await;
    })
    .await;
}

/// Adds a KEK version to `server`'s database, re-wraps every sealed value under it and retires
/// the old versions: every value the test stored (whatever its column) re-wraps with the
/// binding it was sealed with, or the walk counts a failure and the retirement refuses.
pub(crate) async fn every_sealed_value_rewraps_under_a_new_kek(server: &TestServer) {
    let vault = server.vault();
    let version = vault.add_kek_version().await.unwrap();
    assert!(vault.refresh_keyring().await.unwrap());
    let early = format!("{:?}", vault.retire_old_keks().await.unwrap_err());
    assert!(early.contains("not yet"), "{early}");
    // Past the switch time, and past every report the node made before it loaded the new
    // version (it reports the new one from now on).
    server.advance(
        alter_core::kek_versions::SWITCH_SECONDS.max(alter_core::kek_versions::NODE_SEEN_SECONDS)
            + 1,
    );
    let mut turns = 0;
    let done = loop {
        let turn = vault
            .rewrap_data_keys(4)
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        if turn.finished {
            break turn;
        }
        turns += 1;
        assert!(turns < 1_000, "the walk does not finish");
    };
    assert_eq!(done.failed, 0, "every value re-wraps");
    let retired = vault
        .retire_old_keks()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        (retired.kept, retired.deleted),
        (version, version as u64 - 1)
    );
}

#[tokio::test]
async fn a_kek_without_a_valid_endorsement_stops_start_up() {
    on_every_engine(|engine| async move {
        let mut server = TestServer::start(engine).await;
        server.new_app("a").await;
        // A KEK version the server added itself starts fine …
        server.vault().add_kek_version().await.unwrap();
        server.restart().await;
        // … one whose endorsement was altered does not.
        let tamper = "UPDATE keks SET endorsement = wrapped WHERE version = 2";
        assert_eq!(server.database().execute(tamper, &[]).await.unwrap(), 1);
        let e = server
            .start_with_master_key(
                MasterKey::from_encoded(server.master_key().encode().expose_secret()).unwrap(),
            )
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("key-encryption key version 2"),
            "{e}"
        );
    })
    .await;
}
