//! The storage conformance suite: every test runs on SQLite and, when
//! `ALTER_TEST_DATABASE_URL` is set, on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use alter_core::agents::{Agent, AgentStatus};
use alter_core::apps::App;
use alter_core::audit::{Actor, AuditEvent, ChainKey, GENESIS_HASH, HASH_KEYED_V1, Target};
use alter_core::caller::NonceClaim;
use alter_core::credentials::CredentialRef;
use alter_core::grants::{CreatedBy, Grant, GrantLifetime, GrantStatus, Principal};
use alter_core::identity::{
    AppUser, ClaimMapping, IdentityProvider, JwksSource, JwtAlgorithm, UserStatus,
};
use alter_core::ids::{AgentId, AppId, AuthSessionId, GrantId, IdpId, KeyId, SecretId, UserId};
use alter_core::keys::{ApiKey, KeyType};
use alter_core::ports::{
    AgentStore, AppStore, AuditStore, ConnectStore, ConnectionStore, GrantStore, HealthStore,
    IdentitySigningKey, IdentityStore, KeyStore, KeyringStore, NonceStore, ProviderStore,
    ReleaseStore, SealedColumn, SecretStore, SignInStore, StoreError, WrappedKek,
};
use alter_core::release::{ReleaseCommit, ReleaseCondition};
use alter_core::scope::{Scope, ScopeSet};
use alter_core::secrets::{ManagedSecret, SecretType};
use alter_core::signin::{AuthSession, AuthSessionStatus, SignInClient};
use alter_core::time::Timestamp;
use alter_crypto::MasterKey;
use alter_store::scratch::ScratchDatabase;
use alter_store::{Engine, SqlStore, StoreOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor, Row};

/// A migrated store, and a raw connection pool to the same database for inspecting (and
/// tampering with) what the store wrote.
struct Fixture {
    store: SqlStore,
    raw: AnyPool,
}

/// Runs `test` against a migrated store on every configured engine.
async fn on_every_engine<F, Fut>(test: F)
where
    F: Fn(Fixture) -> Fut,
    Fut: Future<Output = ()>,
{
    on_every_engine_with(StoreOptions::default(), test).await;
}

/// [`on_every_engine`] with a store connected with `options`.
async fn on_every_engine_with<F, Fut>(options: StoreOptions, test: F)
where
    F: Fn(Fixture) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut databases = vec![ScratchDatabase::sqlite().unwrap()];
    if let Some(pg) = ScratchDatabase::postgres()
        .await
        .expect("ALTER_TEST_DATABASE_URL is set but PostgreSQL is unreachable")
    {
        databases.push(pg);
    }
    for db in databases {
        let store = SqlStore::connect(db.url(), &options, chain_key())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let raw = AnyPool::connect(db.url()).await.unwrap();
        test(Fixture {
            store: store.clone(),
            raw: raw.clone(),
        })
        .await;
        raw.close().await;
        store.close().await;
        db.drop_now().await.unwrap();
    }
}

/// The chain key of the suite's (fixed) master key.
fn chain_key() -> ChainKey {
    let master = MasterKey::from_encoded("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    ChainKey::derive(&master)
}

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000 + seconds)
}

fn event(app: AppId, action: &str) -> AuditEvent {
    AuditEvent::allow(
        app,
        t(0),
        action,
        Actor::operator(),
        Target {
            kind: "test".into(),
            id: "x".into(),
        },
    )
}

async fn new_app(store: &SqlStore, name: &str) -> App {
    let app = App {
        id: AppId::new(),
        name: name.into(),
        created_at: t(0),
    };
    store
        .insert_app(&app, &event(app.id, "app.created"))
        .await
        .unwrap();
    app
}

fn key(app: AppId, key_type: KeyType, parent: Option<KeyId>) -> ApiKey {
    let id = KeyId::new();
    ApiKey {
        id,
        app_id: app,
        agent_id: None,
        key_type,
        agent_typed: key_type == KeyType::Agent,
        legacy_format: false,
        name: format!("key-{id}"),
        prefix: "alter_rk_abcdefgh".into(),
        lookup_hash: *id.uuid().as_bytes().repeat(2).first_chunk::<32>().unwrap(),
        sealed_signing_key: vec![1, 2, 3],
        scopes: ScopeSet::new([Scope::parse("keys:admin").unwrap()]),
        scope_version: 1,
        cidr_allowlist: Some(vec!["10.0.0.0/8".parse().unwrap()]),
        rate_limit_rpm: Some(60),
        expires_at: Some(t(3600)),
        deprecated_at: None,
        grace_expires_at: None,
        revoked_at: None,
        parent_key_id: parent,
        metadata: Some(serde_json::json!({"purpose": "test"})),
        created_at: t(0),
        last_used_at: None,
    }
}

async fn insert(store: &SqlStore, key: &ApiKey) {
    store
        .insert_key(key, &event(key.app_id, "key.minted"))
        .await
        .unwrap();
}

/// Reads an app's chain back and checks every link (keyed).
async fn assert_chain_intact(raw: &AnyPool, app: AppId, expected_len: i64) {
    let key = chain_key();
    let rows = sqlx::query(
        "SELECT seq, body, prev_hash, hash, hash_version FROM audit_events WHERE app_id = $1 \
         ORDER BY seq",
    )
    .bind(app.to_string())
    .fetch_all(raw)
    .await
    .unwrap();
    assert_eq!(rows.len() as i64, expected_len);
    let mut prev = GENESIS_HASH;
    for (i, row) in rows.iter().enumerate() {
        let seq: i64 = row.get("seq");
        let body: String = row.get("body");
        let prev_hash: Vec<u8> = row.get("prev_hash");
        let hash: Vec<u8> = row.get("hash");
        assert_eq!(seq, i as i64 + 1);
        assert_eq!(prev_hash, prev.to_vec());
        assert_eq!(row.get::<i64, _>("hash_version"), HASH_KEYED_V1);
        let expected = key.hash(&prev, seq, &body);
        assert_eq!(hash, expected.to_vec());
        prev = expected;
    }
}

#[tokio::test]
async fn migrations_leave_the_store_ready() {
    on_every_engine(|Fixture { store, .. }| async move {
        store.ready().await.unwrap();
        // Running them again changes nothing.
        store.migrate().await.unwrap();
        store.ready().await.unwrap();
    })
    .await;
}

/// A read replica is a PostgreSQL standby: named beside SQLite, or as anything but a
/// `postgres://` URL, the store refuses to open rather than ignore it.
#[tokio::test]
async fn a_replica_is_refused_unless_both_are_postgres() {
    let sqlite = ScratchDatabase::sqlite().unwrap();
    let options = StoreOptions {
        replica_url: Some("postgres://postgres@127.0.0.1:5432/test".into()),
        ..StoreOptions::default()
    };
    let refused = SqlStore::connect(sqlite.url(), &options, chain_key()).await;
    assert!(refused.is_err());
    if let Some(pg) = ScratchDatabase::postgres().await.unwrap() {
        let options = StoreOptions {
            replica_url: Some(sqlite.url().to_owned()),
            ..StoreOptions::default()
        };
        assert!(
            SqlStore::connect(pg.url(), &options, chain_key())
                .await
                .is_err()
        );
    }
}

/// Inserts a key row as the schema before migration 0007 has it: no `agent_typed` column.
async fn insert_pre_0007_key(
    raw: &AnyPool,
    app: AppId,
    key_type: &str,
    agent: Option<AgentId>,
    parent: Option<KeyId>,
) -> KeyId {
    let id = KeyId::new();
    sqlx::query(
        "INSERT INTO api_keys (id, app_id, agent_id, key_type, legacy_format, name, prefix, \
         lookup_hash, sealed_signing_key, scopes, scope_version, parent_key_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(id.to_string())
    .bind(app.to_string())
    .bind(agent.map(|a| a.to_string()))
    .bind(key_type.to_owned())
    .bind(i64::from(agent.is_some()))
    .bind(format!("key-{id}"))
    .bind("alter_xx_abcdefgh")
    .bind(id.uuid().as_bytes().repeat(2))
    .bind(vec![1_u8, 2, 3])
    .bind("[]")
    .bind(1_i64)
    .bind(parent.map(|p| p.to_string()))
    .bind(t(0).micros())
    .execute(raw)
    .await
    .unwrap();
    id
}

/// Migrates `raw` to the schema as it was before migration `version`.
async fn migrate_before(raw: &AnyPool, engine: Engine, version: i64) {
    let dir = match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    };
    let mut before = Migrator::new(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dir),
    )
    .await
    .unwrap();
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(raw).await.unwrap();
}

#[tokio::test]
async fn upgrading_keeps_agent_keys_and_their_derived_keys_agent_typed() {
    let mut databases = vec![ScratchDatabase::sqlite().unwrap()];
    if let Some(pg) = ScratchDatabase::postgres().await.unwrap() {
        databases.push(pg);
    }
    for db in databases {
        let store = SqlStore::connect(db.url(), &StoreOptions::default(), chain_key())
            .await
            .unwrap();
        let raw = AnyPool::connect(db.url()).await.unwrap();
        migrate_before(&raw, store.engine(), 7).await;
        // Written as that schema holds it (the store of today writes columns it lacks).
        let app = App {
            id: AppId::new(),
            name: "a".into(),
            created_at: t(0),
        };
        sqlx::query("INSERT INTO apps (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(app.id.to_string())
            .bind(&app.name)
            .bind(app.created_at.micros())
            .execute(&raw)
            .await
            .unwrap();
        let ak = insert_pre_0007_key(&raw, app.id, "ak", None, None).await;
        let agent_key = insert_pre_0007_key(&raw, app.id, "ak", Some(AgentId::new()), None).await;
        let rk = insert_pre_0007_key(&raw, app.id, "rk", None, None).await;
        let from_ak = insert_pre_0007_key(&raw, app.id, "dk", None, Some(ak)).await;
        let from_agent_key = insert_pre_0007_key(&raw, app.id, "dk", None, Some(agent_key)).await;
        let from_rk = insert_pre_0007_key(&raw, app.id, "dk", None, Some(rk)).await;

        store.migrate().await.unwrap();
        for (id, agent_typed) in [
            (ak, true),
            (agent_key, true),
            (rk, false),
            (from_ak, true),
            (from_agent_key, true),
            (from_rk, false),
        ] {
            let key = store.get_key(app.id, id).await.unwrap().unwrap();
            assert_eq!(
                key.agent_typed,
                agent_typed,
                "{} {id}",
                key.key_type.as_str()
            );
        }
        raw.close().await;
        store.close().await;
        db.drop_now().await.unwrap();
    }
}

#[tokio::test]
async fn upgrading_to_time_partitions_keeps_audit_chains_and_refuses_old_nonces() {
    let mut databases = vec![ScratchDatabase::sqlite().unwrap()];
    if let Some(pg) = ScratchDatabase::postgres().await.unwrap() {
        databases.push(pg);
    }
    for db in databases {
        let store = SqlStore::connect(db.url(), &StoreOptions::default(), chain_key())
            .await
            .unwrap();
        let raw = AnyPool::connect(db.url()).await.unwrap();
        migrate_before(&raw, store.engine(), 28).await;
        let app = App {
            id: AppId::new(),
            name: "a".into(),
            created_at: t(0),
        };
        store
            .insert_app(&app, &event(app.id, "app.created"))
            .await
            .unwrap();
        // Events of two months: on PostgreSQL they land in two partitions.
        for at in [t(-40 * 86_400), t(0)] {
            let event = AuditEvent {
                at,
                ..event(app.id, "key.minted")
            };
            store.append_event(&event).await.unwrap();
        }
        let key = KeyId::new();
        sqlx::query("INSERT INTO request_nonces (key_id, nonce, seen_at) VALUES ($1, 'old', $2)")
            .bind(key.to_string())
            .bind(t(0).micros())
            .execute(&raw)
            .await
            .unwrap();

        store.migrate().await.unwrap();
        assert_chain_intact(&raw, app.id, 3).await;
        // The nonce kept its claim time, not the request's signed timestamp: its replay is
        // refused whatever timestamp it carries.
        for signed in [t(-300), t(0), t(300)] {
            assert!(!store.claim_nonce(key, "old", signed).await.unwrap());
        }
        store
            .append_event(&event(app.id, "key.minted"))
            .await
            .unwrap();
        assert_chain_intact(&raw, app.id, 4).await;
        raw.close().await;
        store.close().await;
        db.drop_now().await.unwrap();
    }
}

#[tokio::test]
async fn an_old_kek_retires_only_when_no_sealed_value_names_it() {
    on_every_engine(|Fixture { store, .. }| async move {
        for version in [1, 2] {
            let kek = WrappedKek {
                version,
                wrapped: vec![9; 60],
            };
            store.insert_kek(&kek, Some(&[7; 32]), t(0)).await.unwrap();
        }
        // A blob's header: format, KEK version (big-endian), then the wrapped data key.
        let blob = |version: u32| {
            let mut blob = vec![1];
            blob.extend_from_slice(&version.to_be_bytes());
            blob.extend_from_slice(&[5; 80]);
            blob
        };
        let key = IdentitySigningKey {
            kid: "k1".into(),
            sealed_private_key: blob(1),
            public_x: "x".into(),
            public_y: "y".into(),
            created_at: t(0),
        };
        store.insert_identity_signing_key(&key).await.unwrap();
        let column = SealedColumn::IdentitySigningKey;
        let page = store.sealed_page(column, "", 10).await.unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!((page[0].key.as_str(), page[0].app_id.as_str()), ("k1", ""));
        assert_eq!(page[0].blob, blob(1));
        assert!(
            store
                .sealed_page(column, "k1", 10)
                .await
                .unwrap()
                .is_empty()
        );

        let refused = store.retire_keks_below(2).await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(_))),
            "{refused:?}"
        );
        assert_eq!(store.load_keks().await.unwrap().len(), 2, "nothing deleted");

        // The replacement holds only over the value read.
        assert!(
            !store
                .replace_sealed(column, "k1", &blob(3), &blob(2))
                .await
                .unwrap()
        );
        assert!(
            store
                .replace_sealed(column, "k1", &blob(1), &blob(2))
                .await
                .unwrap()
        );
        assert_eq!(store.retire_keks_below(2).await.unwrap(), 1);
        let left: Vec<u32> = store
            .kek_records()
            .await
            .unwrap()
            .iter()
            .map(|r| r.version)
            .collect();
        assert_eq!(left, [2]);
        // Every column's queries run on this engine.
        for column in SealedColumn::ALL {
            store.sealed_page(column, "", 1).await.unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn keks_are_stored_once_per_version() {
    on_every_engine(|Fixture { store, .. }| async move {
        assert!(store.load_keks().await.unwrap().is_empty());
        let kek = WrappedKek {
            version: 1,
            wrapped: vec![9; 60],
        };
        store.insert_kek(&kek, None, t(0)).await.unwrap();
        assert!(matches!(
            store.insert_kek(&kek, None, t(1)).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.load_keks().await.unwrap(), vec![kek]);
    })
    .await;
}

#[tokio::test]
async fn apps_are_created_listed_and_found() {
    on_every_engine(|Fixture { store, raw }| async move {
        let a = new_app(&store, "first").await;
        let b = new_app(&store, "second").await;
        assert_eq!(store.get_app(a.id).await.unwrap(), Some(a.clone()));
        assert_eq!(store.get_app(AppId::new()).await.unwrap(), None);
        let listed = store.list_apps().await.unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.contains(&a) && listed.contains(&b));
        assert_chain_intact(&raw, a.id, 1).await;
    })
    .await;
}

#[tokio::test]
async fn keys_round_trip_and_stay_inside_their_app() {
    on_every_engine(|Fixture { store, raw }| async move {
        let app = new_app(&store, "a").await;
        let other = new_app(&store, "b").await;
        let k = key(app.id, KeyType::Runtime, None);
        insert(&store, &k).await;
        assert_eq!(store.get_key(app.id, k.id).await.unwrap(), Some(k.clone()));
        assert_eq!(store.get_key(other.id, k.id).await.unwrap(), None);
        assert_eq!(
            store.find_key_by_hash(&k.lookup_hash).await.unwrap(),
            Some(k.clone())
        );
        assert_eq!(store.find_key_by_hash(&[7; 32]).await.unwrap(), None);
        assert_eq!(store.list_keys(app.id).await.unwrap(), vec![k.clone()]);
        assert!(store.list_keys(other.id).await.unwrap().is_empty());
        // The lookup hash is unique.
        let mut twin = key(app.id, KeyType::Runtime, None);
        twin.lookup_hash = k.lookup_hash;
        assert!(matches!(
            store.insert_key(&twin, &event(app.id, "key.minted")).await,
            Err(StoreError::Conflict(_))
        ));
        assert_chain_intact(&raw, app.id, 2).await;
    })
    .await;
}

#[tokio::test]
async fn revoking_cascades_to_derived_keys_only() {
    on_every_engine(|Fixture { store, raw }| async move {
        let app = new_app(&store, "a").await;
        let root = key(app.id, KeyType::Runtime, None);
        let child = key(app.id, KeyType::Derived, Some(root.id));
        let grandchild = key(app.id, KeyType::Derived, Some(child.id));
        let unrelated = key(app.id, KeyType::Runtime, None);
        for k in [&root, &child, &grandchild, &unrelated] {
            insert(&store, k).await;
        }
        let mut revoked = store
            .revoke_key(app.id, root.id, t(10), &event(app.id, "key.revoked"))
            .await
            .unwrap();
        revoked.sort();
        let mut expected = vec![root.id, child.id, grandchild.id];
        expected.sort();
        assert_eq!(revoked, expected);
        for id in expected {
            let k = store.get_key(app.id, id).await.unwrap().unwrap();
            assert_eq!(k.revoked_at, Some(t(10)));
        }
        let u = store.get_key(app.id, unrelated.id).await.unwrap().unwrap();
        assert_eq!(u.revoked_at, None);
        // Again: nothing left to revoke, and no second event.
        let again = store
            .revoke_key(app.id, root.id, t(11), &event(app.id, "key.revoked"))
            .await
            .unwrap();
        assert!(again.is_empty());
        // Another app cannot revoke it.
        let other = new_app(&store, "b").await;
        assert!(
            store
                .revoke_key(
                    other.id,
                    unrelated.id,
                    t(12),
                    &event(other.id, "key.revoked")
                )
                .await
                .unwrap()
                .is_empty()
        );
        assert_chain_intact(&raw, app.id, 1 + 4 + 1).await;
        assert_chain_intact(&raw, other.id, 1).await;
    })
    .await;
}

/// A derived key of `parent`, ending at `end`.
fn derived(parent: &ApiKey, end: Timestamp) -> ApiKey {
    ApiKey {
        expires_at: Some(end),
        ..key(parent.app_id, KeyType::Derived, Some(parent.id))
    }
}

async fn is_stored(store: &SqlStore, key: &ApiKey) -> bool {
    store.get_key(key.app_id, key.id).await.unwrap().is_some()
}

#[tokio::test]
async fn a_derived_key_is_stored_only_while_its_parent_is_usable() {
    on_every_engine(|Fixture { store, raw }| async move {
        let app = new_app(&store, "a").await;
        let other = new_app(&store, "b").await;
        let derive = |k: ApiKey, at: Timestamp| {
            let store = store.clone();
            async move {
                store
                    .insert_derived_key(&k, at, &event(k.app_id, "key.derived"))
                    .await
                    .unwrap()
            }
        };
        // The parent ends at t(3600).
        let parent = key(app.id, KeyType::Runtime, None);
        insert(&store, &parent).await;
        let child = derived(&parent, t(3600));
        assert!(derive(child.clone(), t(10)).await);
        assert!(is_stored(&store, &child).await);

        let refused = [
            // Outliving the parent.
            (derived(&parent, t(3601)), t(10)),
            // After the parent's end.
            (derived(&parent, t(3700)), t(3600)),
            // Under another app.
            (
                ApiKey {
                    app_id: other.id,
                    ..derived(&parent, t(60))
                },
                t(10),
            ),
            // Without a parent.
            (key(app.id, KeyType::Derived, None), t(10)),
        ];
        for (k, at) in refused {
            assert!(!derive(k.clone(), at).await, "{k:?}");
            assert!(!is_stored(&store, &k).await);
        }

        // A rotated parent: only until the end of its overlap.
        let successor = key(app.id, KeyType::Runtime, None);
        assert!(
            store
                .rotate_key(
                    app.id,
                    parent.id,
                    t(20),
                    t(80),
                    &successor,
                    &event(app.id, "key.rotated")
                )
                .await
                .unwrap()
        );
        assert!(derive(derived(&parent, t(80)), t(30)).await);
        assert!(!derive(derived(&parent, t(81)), t(30)).await);
        assert!(!derive(derived(&parent, t(90)), t(80)).await);

        // A revoked parent: never.
        store
            .revoke_key(app.id, successor.id, t(40), &event(app.id, "key.revoked"))
            .await
            .unwrap();
        assert!(!derive(derived(&successor, t(60)), t(50)).await);

        // A parent without an end may have children with or without one.
        let forever = ApiKey {
            expires_at: None,
            ..key(app.id, KeyType::Runtime, None)
        };
        insert(&store, &forever).await;
        assert!(derive(derived(&forever, t(100_000)), t(50)).await);
        let endless = ApiKey {
            expires_at: None,
            ..derived(&forever, t(0))
        };
        assert!(derive(endless.clone(), t(50)).await);
        assert!(
            !derive(
                ApiKey {
                    expires_at: None,
                    ..derived(&parent, t(0))
                },
                t(10)
            )
            .await
        );

        // Created; then mint, derive, rotate, derive, revoke, mint, derive, derive.
        assert_chain_intact(&raw, app.id, 1 + 8).await;
        assert_chain_intact(&raw, other.id, 1).await;
    })
    .await;
}

#[tokio::test]
async fn derives_racing_a_revoke_of_their_parent_leave_no_live_child() {
    on_every_engine(|Fixture { store, raw }| async move {
        let app = new_app(&store, "a").await;
        let parent = key(app.id, KeyType::Runtime, None);
        insert(&store, &parent).await;
        let mut tasks = Vec::new();
        for i in 0..60 {
            let store = store.clone();
            let parent = parent.clone();
            tasks.push(tokio::spawn(async move {
                if i == 20 {
                    store
                        .revoke_key(app.id, parent.id, t(5), &event(app.id, "key.revoked"))
                        .await
                        .unwrap();
                    return false;
                }
                store
                    .insert_derived_key(
                        &derived(&parent, t(600)),
                        t(1),
                        &event(app.id, "key.derived"),
                    )
                    .await
                    .unwrap()
            }));
        }
        let mut stored: i64 = 0;
        for task in tasks {
            stored += i64::from(task.await.unwrap());
        }
        let children: Vec<ApiKey> = store
            .list_keys(app.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k.parent_key_id == Some(parent.id))
            .collect();
        assert_eq!(i64::try_from(children.len()).unwrap(), stored);
        let live: Vec<_> = children.iter().filter(|k| k.revoked_at.is_none()).collect();
        assert!(
            live.is_empty(),
            "{} of {stored} children outlived the revoke",
            live.len()
        );
        assert_chain_intact(&raw, app.id, 1 + 1 + stored + 1).await;
    })
    .await;
}

#[tokio::test]
async fn rotation_ends_derived_keys_with_the_overlap() {
    on_every_engine(|Fixture { store, .. }| async move {
        let app = new_app(&store, "a").await;
        let old = key(app.id, KeyType::Runtime, None);
        insert(&store, &old).await;
        let long = derived(&old, t(3000));
        let short = derived(&old, t(50));
        let revoked = derived(&old, t(3000));
        for k in [&long, &short, &revoked] {
            insert(&store, k).await;
        }
        store
            .revoke_key(app.id, revoked.id, t(2), &event(app.id, "key.revoked"))
            .await
            .unwrap();
        let successor = key(app.id, KeyType::Runtime, None);
        assert!(
            store
                .rotate_key(
                    app.id,
                    old.id,
                    t(5),
                    t(65),
                    &successor,
                    &event(app.id, "key.rotated")
                )
                .await
                .unwrap()
        );
        let end = |k: ApiKey| {
            let store = store.clone();
            async move {
                store
                    .get_key(k.app_id, k.id)
                    .await
                    .unwrap()
                    .unwrap()
                    .expires_at
            }
        };
        assert_eq!(end(long).await, Some(t(65)));
        assert_eq!(end(short).await, Some(t(50)));
        assert_eq!(end(revoked).await, Some(t(3000)));
        assert_eq!(end(successor.clone()).await, successor.expires_at);
        assert_eq!(end(old.clone()).await, old.expires_at);
    })
    .await;
}

#[tokio::test]
async fn rotation_is_atomic_and_happens_once() {
    on_every_engine(|Fixture { store, raw }| async move {
        let app = new_app(&store, "a").await;
        let old = key(app.id, KeyType::Runtime, None);
        insert(&store, &old).await;
        let successor = key(app.id, KeyType::Runtime, None);
        assert!(
            store
                .rotate_key(
                    app.id,
                    old.id,
                    t(5),
                    t(65),
                    &successor,
                    &event(app.id, "key.rotated")
                )
                .await
                .unwrap()
        );
        let stored = store.get_key(app.id, old.id).await.unwrap().unwrap();
        assert_eq!(stored.deprecated_at, Some(t(5)));
        assert_eq!(stored.grace_expires_at, Some(t(65)));
        assert!(store.get_key(app.id, successor.id).await.unwrap().is_some());
        let second = key(app.id, KeyType::Runtime, None);
        assert!(
            !store
                .rotate_key(
                    app.id,
                    old.id,
                    t(6),
                    t(66),
                    &second,
                    &event(app.id, "key.rotated")
                )
                .await
                .unwrap()
        );
        assert!(store.get_key(app.id, second.id).await.unwrap().is_none());
        assert_chain_intact(&raw, app.id, 3).await;
    })
    .await;
}

#[tokio::test]
async fn last_use_is_recorded_lazily() {
    on_every_engine(|Fixture { store, .. }| async move {
        let app = new_app(&store, "a").await;
        let k = key(app.id, KeyType::Runtime, None);
        insert(&store, &k).await;
        store.touch_key(k.id, t(100), t(40)).await.unwrap();
        let read = |store: SqlStore| async move {
            store
                .get_key(app.id, k.id)
                .await
                .unwrap()
                .unwrap()
                .last_used_at
        };
        assert_eq!(read(store.clone()).await, Some(t(100)));
        // Fresh enough: not rewritten.
        store.touch_key(k.id, t(120), t(60)).await.unwrap();
        assert_eq!(read(store.clone()).await, Some(t(100)));
        store.touch_key(k.id, t(200), t(140)).await.unwrap();
        assert_eq!(read(store.clone()).await, Some(t(200)));
    })
    .await;
}

#[tokio::test]
async fn nonces_are_claimed_once_and_pruned() {
    on_every_engine(|Fixture { store, .. }| async move {
        let a = KeyId::new();
        let b = KeyId::new();
        assert!(store.claim_nonce(a, "n1", t(0)).await.unwrap());
        // A replay carries the same signed timestamp.
        assert!(!store.claim_nonce(a, "n1", t(0)).await.unwrap());
        assert!(store.claim_nonce(b, "n1", t(1)).await.unwrap());
        assert!(store.claim_nonce(a, "n2", t(100)).await.unwrap());
        assert_eq!(store.prune_nonces(t(50)).await.unwrap(), 2);
        assert!(store.claim_nonce(a, "n1", t(0)).await.unwrap());
        assert!(!store.claim_nonce(a, "n2", t(100)).await.unwrap());
        // Another signed timestamp makes another signed message: PostgreSQL keys nonces by it
        // too (its partition key), SQLite by (key, nonce) only.
        let other = store.claim_nonce(a, "n2", t(101)).await.unwrap();
        assert_eq!(other, store.engine() == Engine::Postgres);
    })
    .await;
}

#[tokio::test]
async fn nonces_stored_before_partitioning_still_refuse_their_replays() {
    on_every_engine(|Fixture { store, raw }| async move {
        if store.engine() != Engine::Postgres {
            return;
        }
        // A nonce claimed before migration 0028 kept its claim time, not its signed
        // timestamp: its replay must be refused whatever timestamp it carries.
        let key = KeyId::new();
        sqlx::query(
            "INSERT INTO request_nonces_legacy (key_id, nonce, seen_at) VALUES ($1, 'old', $2)",
        )
        .bind(key.to_string())
        .bind(t(0).micros())
        .execute(&raw)
        .await
        .unwrap();
        for signed in [t(-300), t(0), t(300)] {
            assert!(!store.claim_nonce(key, "old", signed).await.unwrap());
        }
        assert!(store.claim_nonce(key, "new", t(5)).await.unwrap());
        // Pruned on the same horizon as before; once none is left, the table and its
        // trigger go.
        assert_eq!(store.prune_nonces(t(0)).await.unwrap(), 0);
        assert!(!store.claim_nonce(key, "old", t(1)).await.unwrap());
        assert_eq!(store.prune_nonces(t(1)).await.unwrap(), 1);
        let gone: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('request_nonces_legacy')::text")
                .fetch_one(&raw)
                .await
                .unwrap();
        assert_eq!(gone, None);
        assert!(store.claim_nonce(key, "old", t(2)).await.unwrap());
        assert!(!store.claim_nonce(key, "old", t(2)).await.unwrap());
    })
    .await;
}

/// Far beyond every timeout the tests below set: reaching it means a wait had no bound.
const GENEROUS: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_stuck_group_commit_answers_unavailable_after_the_wait_timeout() {
    let options = StoreOptions {
        commit_wait_timeout: Duration::from_secs(1),
        ..StoreOptions::default()
    };
    on_every_engine_with(options, |Fixture { store, raw }| async move {
        // Another writer holds the lock the group commit needs.
        let mut blocker = raw.acquire().await.unwrap();
        let lock = match store.engine() {
            Engine::Sqlite => "BEGIN IMMEDIATE",
            Engine::Postgres => "BEGIN; LOCK TABLE request_nonces IN EXCLUSIVE MODE",
        };
        blocker.execute(lock).await.unwrap();
        let claimed = tokio::time::timeout(GENEROUS, store.claim_nonce(KeyId::new(), "n", t(0)))
            .await
            .expect("the wait for the group commit has no bound");
        assert!(
            matches!(claimed, Err(StoreError::Unavailable(_))),
            "{claimed:?}"
        );
        blocker.execute("ROLLBACK").await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn postgres_statements_time_out() {
    let options = StoreOptions {
        statement_timeout: Duration::from_secs(1),
        ..StoreOptions::default()
    };
    on_every_engine_with(options, |Fixture { store, raw }| async move {
        if store.engine() == Engine::Sqlite {
            return; // `statement_timeout` is PostgreSQL's; SQLite has its busy timeout.
        }
        let mut blocker = raw.acquire().await.unwrap();
        blocker
            .execute("BEGIN; LOCK TABLE apps IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let listed = tokio::time::timeout(GENEROUS, store.list_apps())
            .await
            .expect("a statement blocked on a lock runs without a bound");
        assert!(
            matches!(listed, Err(StoreError::Unavailable(_))),
            "{listed:?}"
        );
        blocker.execute("ROLLBACK").await.unwrap();
        // Migrations are exempt (and still run), and the pool's connections stay usable.
        store.migrate().await.unwrap();
        store.list_apps().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_audit_log_refuses_updates_and_deletes() {
    on_every_engine(|Fixture { store, raw }| async move {
        let app = new_app(&store, "a").await;
        assert!(
            sqlx::query("UPDATE audit_events SET action = 'forged' WHERE app_id = $1")
                .bind(app.id.to_string())
                .execute(&raw)
                .await
                .is_err()
        );
        assert!(
            sqlx::query("DELETE FROM audit_events WHERE app_id = $1")
                .bind(app.id.to_string())
                .execute(&raw)
                .await
                .is_err()
        );
        assert_chain_intact(&raw, app.id, 1).await;
    })
    .await;
}

#[tokio::test]
async fn a_chain_head_only_moves_forward() {
    on_every_engine(|Fixture { store, raw }| async move {
        let app = new_app(&store, "a").await;
        insert(&store, &key(app.id, KeyType::Runtime, None)).await;
        let refused = |sql: &'static str| {
            let raw = raw.clone();
            async move {
                sqlx::query(sql)
                    .bind(app.id.to_string())
                    .execute(&raw)
                    .await
                    .is_err()
            }
        };
        assert!(refused("UPDATE audit_heads SET seq = 1 WHERE app_id = $1").await);
        assert!(refused("DELETE FROM audit_heads WHERE app_id = $1").await);
        // TRUNCATE skips row triggers; PostgreSQL refuses it with a statement trigger.
        if store.engine() == Engine::Postgres {
            for table in ["audit_events", "audit_heads"] {
                let truncate = format!("TRUNCATE {table} CASCADE");
                assert!(
                    sqlx::query(&truncate).execute(&raw).await.is_err(),
                    "{table}"
                );
            }
        }
        assert_eq!(store.chain_head(app.id).await.unwrap().unwrap().0, 2);
        assert_chain_intact(&raw, app.id, 2).await;
    })
    .await;
}

#[tokio::test]
async fn concurrent_writers_keep_one_unbroken_chain() {
    on_every_engine(|Fixture { store, raw }| async move {
        let app = new_app(&store, "a").await;
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let k = key(app.id, KeyType::Runtime, None);
                store
                    .insert_key(&k, &event(app.id, "key.minted"))
                    .await
                    .unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_chain_intact(&raw, app.id, 41).await;
    })
    .await;
}

#[tokio::test]
async fn batched_writes_claim_each_nonce_once_and_keep_every_chain_intact() {
    on_every_engine(|Fixture { store, raw }| async move {
        let apps = [new_app(&store, "a").await.id, new_app(&store, "b").await.id];
        let sender = KeyId::new();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let store = store.clone();
            let app = apps[i % 2];
            tasks.push(tokio::spawn(async move {
                // Requests i and i + 1 send the same nonce at the same moment.
                let claimed = store
                    .claim_nonce(sender, &format!("nonce-{}", i / 2), t(0))
                    .await
                    .unwrap();
                // Most events go through the group-commit writer, some through their own
                // transaction, onto the same two chains.
                if i % 5 == 0 {
                    insert(&store, &key(app, KeyType::Runtime, None)).await;
                } else {
                    store
                        .record_release(event(app, "credential.released"), None)
                        .await
                        .unwrap();
                }
                claimed
            }));
        }
        let mut claimed = 0;
        for task in tasks {
            claimed += usize::from(task.await.unwrap());
        }
        assert_eq!(claimed, 100, "each nonce is new exactly once");
        for app in apps {
            assert_chain_intact(&raw, app, 101).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_users_groups_change_only_to_newer_membership() {
    on_every_engine(|f| async move {
        let app = new_app(&f.store, "a").await;
        let idp = IdentityProvider {
            id: IdpId::new(),
            app_id: app.id,
            issuer: "https://idp.example.com/".into(),
            audiences: vec!["alter".into()],
            jwks: JwksSource::Inline("{\"keys\":[]}".into()),
            algorithms: vec![JwtAlgorithm::ES256],
            claims: ClaimMapping::default(),
            leeway_seconds: 60,
            created_at: t(0),
            updated_at: t(0),
        };
        f.store
            .put_idp(&idp, &event(app.id, "idp.configured"))
            .await
            .unwrap();
        let user = AppUser {
            id: UserId::new(),
            app_id: app.id,
            idp_id: idp.id,
            subject: "alice".into(),
            email: None,
            display_name: None,
            groups: vec!["eng".into()],
            groups_as_of: Some(t(100)),
            membership_floor: None,
            status: UserStatus::Active,
            created_at: t(100),
            last_seen_at: t(100),
        };
        f.store
            .insert_user(&user, &event(app.id, "user.created"))
            .await
            .unwrap();
        let stored = || async { f.store.get_user(app.id, user.id).await.unwrap().unwrap() };
        let membership = |u: AppUser| (u.groups, u.groups_as_of);

        // An older token's groups, or an undated token's, do not replace newer ones; the
        // profile is refreshed all the same.
        for (groups_as_of, seen) in [(Some(t(50)), t(200)), (None, t(300))] {
            f.store
                .update_user(&AppUser {
                    groups: vec![],
                    groups_as_of,
                    email: Some("alice@example.com".into()),
                    last_seen_at: seen,
                    ..user.clone()
                })
                .await
                .unwrap();
            let now = stored().await;
            assert_eq!(
                (now.email.as_deref(), now.last_seen_at),
                (Some("alice@example.com"), seen)
            );
            assert_eq!(membership(now), (vec!["eng".to_string()], Some(t(100))));
        }
        // A newer token's do.
        f.store
            .update_user(&AppUser {
                groups: vec![],
                groups_as_of: Some(t(150)),
                ..user.clone()
            })
            .await
            .unwrap();
        assert_eq!(membership(stored().await), (vec![], Some(t(150))));
        // A token of the same second too: the IdP may change groups within a second.
        f.store
            .update_user(&AppUser {
                groups: vec!["sales".into()],
                groups_as_of: Some(t(150)),
                ..user.clone()
            })
            .await
            .unwrap();
        assert_eq!(
            membership(stored().await),
            (vec!["sales".to_string()], Some(t(150)))
        );

        // Undated membership (a user recorded before membership was dated) gives way to any.
        sqlx::query("UPDATE app_users SET groups_as_of = NULL WHERE id = $1")
            .bind(user.id.to_string())
            .execute(&f.raw)
            .await
            .unwrap();
        assert_eq!(
            membership(stored().await),
            (vec!["sales".to_string()], None)
        );
        f.store
            .update_user(&AppUser {
                groups: vec!["ops".into()],
                groups_as_of: None,
                ..user.clone()
            })
            .await
            .unwrap();
        assert_eq!(membership(stored().await), (vec!["ops".to_string()], None));
    })
    .await;
}

fn agent(app: AppId, name: &str) -> Agent {
    Agent {
        id: AgentId::new(),
        app_id: app,
        name: name.into(),
        display_name: None,
        agent_type: "agent".into(),
        status: AgentStatus::Active,
        allowlist: Default::default(),
        allowlist_pending: None,
        allowlist_applies_at: None,
        approval: Default::default(),
        metadata: serde_json::Map::new(),
        rate_limit_per_minute: None,
        version: 1,
        created_at: t(0),
        updated_at: t(0),
        revoked_at: None,
        last_used_at: None,
    }
}

async fn insert_agent(store: &SqlStore, agent: &Agent) {
    let mut first_key = key(agent.app_id, KeyType::Agent, None);
    first_key.agent_id = Some(agent.id);
    store
        .insert_agent(
            agent,
            &first_key,
            None,
            &event(agent.app_id, "agent.created"),
        )
        .await
        .unwrap();
}

/// A grant of the app itself to a new managed secret, stored (with its secret).
async fn root_grant(store: &SqlStore, app: AppId) -> Grant {
    let secret = ManagedSecret {
        id: SecretId::new(),
        app_id: app,
        name: "Stripe".into(),
        slug: format!("stripe-{}", SecretId::new()),
        secret_type: SecretType::Bearer,
        injection: Default::default(),
        allowed_hosts: Vec::new(),
        limits: Default::default(),
        sealed_value: vec![1, 2, 3],
        value_version: 1,
        created_at: t(0),
        rotated_at: None,
        deleted_at: None,
    };
    store
        .insert_secret(&secret, &event(app, "secret.created"))
        .await
        .unwrap();
    grant(app, CredentialRef::ManagedSecret(secret.id), None, None)
}

/// A grant of the app itself, or (with `parent`) its delegation to `agent`.
fn grant(
    app: AppId,
    credential: CredentialRef,
    parent: Option<&Grant>,
    agent: Option<AgentId>,
) -> Grant {
    Grant {
        id: GrantId::new(),
        app_id: app,
        seq: 0,
        credential,
        principal: agent.map_or(Principal::System, Principal::Agent),
        label: None,
        status: GrantStatus::Active,
        lifetime: GrantLifetime::default(),
        expires_at: None,
        parent_grant_id: parent.map(|p| p.id),
        depth: parent.map_or(0, |p| p.depth + 1),
        delegable: false,
        delegated_by: None,
        created_by: CreatedBy::Developer,
        created_at: t(0),
        revoked_at: None,
        revoke_reason: None,
        last_used_at: None,
        scope_mismatch: false,
    }
}

async fn count(raw: &AnyPool, sql: &str, value: String) -> i64 {
    sqlx::query_scalar(sql)
        .bind(value)
        .fetch_one(raw)
        .await
        .unwrap()
}

/// A release job whose grant, chain link, agent or key stopped being active after the release
/// read them is refused at commit, and writes nothing.
#[tokio::test]
async fn a_release_commits_only_while_its_grant_chain_agent_and_key_are_active() {
    on_every_engine(|Fixture { store, raw }| async move {
        let app = new_app(&store, "a").await.id;
        let signer = key(app, KeyType::Runtime, None);
        insert(&store, &signer).await;
        let bot = agent(app, "bot");
        insert_agent(&store, &bot).await;
        let root = root_grant(&store, app).await;
        store
            .insert_grant(&root, &event(app, "grant.created"))
            .await
            .unwrap();
        let child = Grant {
            expires_at: Some(t(1000)),
            ..grant(app, root.credential, Some(&root), Some(bot.id))
        };
        store
            .put_delegation(&child, &event(app, "delegation.created"))
            .await
            .unwrap();
        let condition = |at: Timestamp, key: KeyId| ReleaseCondition {
            grants: vec![child.id, root.id],
            agents: vec![bot.id],
            key,
            at,
            rules: None,
        };
        // Each release touches the delegation's last use at its time: only those that
        // commit leave it.
        let release = |at: Timestamp, key: KeyId| {
            let store = store.clone();
            let condition = condition(at, key);
            async move {
                store
                    .commit_release(
                        event(app, "credential.released"),
                        Some((condition.grants[0], at)),
                        condition,
                        None,
                    )
                    .await
                    .unwrap()
                    == ReleaseCommit::Committed
            }
        };
        assert!(release(t(10), signer.id).await);
        // The delegation expired.
        assert!(!release(t(1000), signer.id).await);
        // A rotated key works during its overlap only.
        let successor = key(app, KeyType::Runtime, None);
        assert!(
            store
                .rotate_key(app, signer.id, t(20), t(100), &successor, &event(app, "key.rotated"))
                .await
                .unwrap()
        );
        assert!(release(t(50), signer.id).await);
        assert!(!release(t(100), signer.id).await);
        // The agent is paused, then resumed.
        let paused = Agent {
            status: AgentStatus::Inactive,
            version: 2,
            ..bot.clone()
        };
        assert!(store.update_agent(&paused, 1, &[]).await.unwrap());
        assert!(!release(t(60), successor.id).await);
        let resumed = Agent {
            version: 3,
            ..bot.clone()
        };
        assert!(store.update_agent(&resumed, 2, &[]).await.unwrap());
        assert!(release(t(60), successor.id).await);
        // The key is revoked.
        store
            .revoke_key(app, successor.id, t(70), &event(app, "key.revoked"))
            .await
            .unwrap();
        assert!(!release(t(70), successor.id).await);
        // The root grant is revoked (and its delegation with it).
        let other = key(app, KeyType::Runtime, None);
        insert(&store, &other).await;
        assert!(release(t(75), other.id).await);
        store
            .revoke_grants(app, root.id, t(80), None, &event(app, "grant.revoked"))
            .await
            .unwrap();
        assert!(!release(t(90), other.id).await);

        let released = "SELECT COUNT(*) FROM audit_events WHERE app_id = $1 AND action = 'credential.released'";
        assert_eq!(count(&raw, released, app.to_string()).await, 4);
        let last_use = "SELECT last_used_at FROM grants WHERE id = $1";
        assert_eq!(count(&raw, last_use, child.id.to_string()).await, t(75).micros());
        // 14 events, and the one that created the root grant's secret.
        assert_chain_intact(&raw, app, 15).await;
    })
    .await;
}

/// An app, a key, and two grants of it: one live, one revoked.
async fn signer_and_two_grants(store: &SqlStore) -> (AppId, ApiKey, Grant, Grant) {
    let app = new_app(store, "a").await.id;
    let signer = key(app, KeyType::Runtime, None);
    insert(store, &signer).await;
    let [live, revoked] = [root_grant(store, app).await, root_grant(store, app).await];
    for g in [&live, &revoked] {
        store
            .insert_grant(g, &event(app, "grant.created"))
            .await
            .unwrap();
    }
    store
        .revoke_grants(app, revoked.id, t(1), None, &event(app, "grant.revoked"))
        .await
        .unwrap();
    (app, signer, live, revoked)
}

/// A release claims its request's nonce in its own commit: of twenty concurrent commits with
/// one nonce exactly one is written, the others are replays that write nothing; a release
/// refused by its condition still uses up its nonce; a denial carries its nonce the same way.
#[tokio::test]
async fn a_release_claims_its_nonce_in_its_own_commit() {
    on_every_engine(|Fixture { store, raw }| async move {
        let (app, signer, live, revoked) = signer_and_two_grants(&store).await;
        let claim = |nonce: &str| {
            Some(NonceClaim {
                key: signer.id,
                nonce: nonce.to_owned(),
                at: t(10),
            })
        };
        let condition = |grant: GrantId| ReleaseCondition {
            grants: vec![grant],
            agents: vec![],
            key: signer.id,
            at: t(10),
            rules: None,
        };
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (store, nonce, condition) = (store.clone(), claim("n-shared"), condition(live.id));
            tasks.push(tokio::spawn(async move {
                store
                    .commit_release(event(app, "credential.released"), None, condition, nonce)
                    .await
                    .unwrap()
            }));
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        let committed = outcomes
            .iter()
            .filter(|o| **o == ReleaseCommit::Committed)
            .count();
        assert_eq!(committed, 1, "{outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, ReleaseCommit::Committed | ReleaseCommit::Replayed))
        );
        let released = "SELECT COUNT(*) FROM audit_events WHERE app_id = $1 AND action = 'credential.released'";
        assert_eq!(count(&raw, released, app.to_string()).await, 1);

        // Refused by its condition: nothing written but the nonce, which a retry cannot reuse.
        let refused = store
            .commit_release(
                event(app, "credential.released"),
                None,
                condition(revoked.id),
                claim("n-refused"),
            )
            .await
            .unwrap();
        assert_eq!(refused, ReleaseCommit::Refused);
        for nonce in ["n-refused", "n-shared"] {
            let replayed = store
                .record_release(event(app, "credential.denied"), claim(nonce))
                .await
                .unwrap();
            assert!(!replayed, "{nonce} was used");
        }
        assert!(
            store
                .record_release(event(app, "credential.denied"), claim("n-denied"))
                .await
                .unwrap()
        );
        assert!(!store.claim_nonce(signer.id, "n-denied", t(10)).await.unwrap());
        let denied = "SELECT COUNT(*) FROM audit_events WHERE app_id = $1 AND action = 'credential.denied'";
        assert_eq!(count(&raw, denied, app.to_string()).await, 1);
        assert_eq!(count(&raw, released, app.to_string()).await, 1);
        // A release and a denial, beside the fixtures' seven.
        assert_chain_intact(&raw, app, 9).await;
    })
    .await;
}

/// Refused releases leave the rest of the group commit's batch to commit.
#[tokio::test]
async fn a_refused_release_fails_alone_in_its_batch() {
    on_every_engine(|Fixture { store, raw }| async move {
        let (app, signer, live, revoked) = signer_and_two_grants(&store).await;
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = store.clone();
            let grant = if i % 2 == 0 { live.id } else { revoked.id };
            tasks.push(tokio::spawn(async move {
                let condition = ReleaseCondition {
                    grants: vec![grant],
                    agents: vec![],
                    key: signer.id,
                    at: t(10),
                    rules: None,
                };
                let event = event(app, "credential.released");
                let committed = store
                    .commit_release(event, Some((grant, t(10))), condition, None)
                    .await
                    .unwrap()
                    == ReleaseCommit::Committed;
                (grant, committed)
            }));
        }
        for task in tasks {
            let (grant, committed) = task.await.unwrap();
            assert_eq!(committed, grant == live.id);
        }
        let released = "SELECT COUNT(*) FROM audit_events WHERE app_id = $1 AND action = 'credential.released'";
        assert_eq!(count(&raw, released, app.to_string()).await, 20);
        let touched = "SELECT COUNT(*) FROM grants WHERE app_id = $1 AND last_used_at IS NOT NULL";
        assert_eq!(count(&raw, touched, app.to_string()).await, 1);
        // 25 events, and the two that created the grants' secrets.
        assert_chain_intact(&raw, app, 27).await;
    })
    .await;
}

/// On PostgreSQL a revocation still in flight (its row lock held, not committed) makes the
/// release's commit wait for it, and then refuses it: the check cannot read the row as it was
/// before the revocation. (SQLite has a single writer: nothing commits in between.)
#[tokio::test]
async fn a_release_waits_for_a_revocation_in_flight_and_is_refused() {
    on_every_engine(|Fixture { store, raw }| async move {
        if store.engine() != Engine::Postgres {
            return;
        }
        let app = new_app(&store, "a").await.id;
        let signer = key(app, KeyType::Runtime, None);
        insert(&store, &signer).await;
        let target = root_grant(&store, app).await;
        store
            .insert_grant(&target, &event(app, "grant.created"))
            .await
            .unwrap();
        let mut revocation = raw.begin().await.unwrap();
        sqlx::query("UPDATE grants SET status = 'revoked' WHERE id = $1")
            .bind(target.id.to_string())
            .execute(&mut *revocation)
            .await
            .unwrap();
        let release = tokio::spawn({
            let store = store.clone();
            async move {
                let condition = ReleaseCondition {
                    grants: vec![target.id],
                    agents: vec![],
                    key: signer.id,
                    at: t(10),
                    rules: None,
                };
                store
                    .commit_release(event(app, "credential.released"), None, condition, None)
                    .await
                    .unwrap()
                    == ReleaseCommit::Committed
            }
        });
        // Let the release's transaction reach the revocation's row lock and wait on it (or,
        // were the row not locked, finish).
        let waiting = || {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND datname = current_database()",
            )
            .fetch_one(&raw)
        };
        while !release.is_finished() && waiting().await.unwrap() == 0 {
            tokio::task::yield_now().await;
        }
        revocation.commit().await.unwrap();
        assert!(!release.await.unwrap());
        let released = "SELECT COUNT(*) FROM audit_events WHERE app_id = $1 AND action = 'credential.released'";
        assert_eq!(count(&raw, released, app.to_string()).await, 0);
    })
    .await;
}

#[tokio::test]
async fn a_grant_has_one_active_delegation_per_agent() {
    on_every_engine(|Fixture { store, raw }| async move {
        let app = new_app(&store, "a").await.id;
        let bot = agent(app, "bot");
        insert_agent(&store, &bot).await;
        let root = root_grant(&store, app).await;
        store
            .insert_grant(&root, &event(app, "grant.created"))
            .await
            .unwrap();
        let first = grant(app, root.credential, Some(&root), Some(bot.id));
        let made = || event(app, "delegation.created");
        store.put_delegation(&first, &made()).await.unwrap();
        // A second one for the same agent is refused; renewing the first is fine.
        let second = grant(app, root.credential, Some(&root), Some(bot.id));
        assert!(matches!(
            store.put_delegation(&second, &made()).await,
            Err(StoreError::Conflict(what)) if what == "active_delegation"
        ));
        let renewed = Grant {
            expires_at: Some(t(500)),
            ..first.clone()
        };
        store.put_delegation(&renewed, &made()).await.unwrap();
        let found = store.active_child(app, root.id, bot.id).await.unwrap();
        assert_eq!(
            found.map(|g| (g.id, g.expires_at)),
            Some((first.id, Some(t(500))))
        );
        // Revoking the pair revokes it and what was passed on from it.
        let onward_agent = agent(app, "helper");
        insert_agent(&store, &onward_agent).await;
        let onward = grant(app, first.credential, Some(&first), Some(onward_agent.id));
        store.put_delegation(&onward, &made()).await.unwrap();
        let revoked = store
            .revoke_delegations(
                app,
                root.id,
                bot.id,
                t(5),
                Some("gone"),
                &event(app, "delegation.revoked"),
            )
            .await
            .unwrap();
        assert_eq!(revoked, vec![first.id, onward.id]);
        assert!(
            store
                .active_child(app, root.id, bot.id)
                .await
                .unwrap()
                .is_none()
        );
        // Once revoked, the agent may be delegated the grant anew; a renewal of the revoked
        // one is refused.
        store.put_delegation(&second, &made()).await.unwrap();
        assert!(matches!(
            store.put_delegation(&renewed, &made()).await,
            Err(StoreError::Conflict(what)) if what == "active_delegation"
        ));
        let active = "SELECT COUNT(*) FROM grants WHERE parent_grant_id = $1 AND status = 'active'";
        assert_eq!(count(&raw, active, root.id.to_string()).await, 1);
    })
    .await;
}

/// Migration 0005 finds the duplicate active delegations concurrent calls could leave, keeps
/// the newest of each (grant, agent), revokes the others with what was passed on from them,
/// and from then on the database refuses a second one.
#[tokio::test]
async fn upgrading_keeps_the_newest_of_duplicate_delegations() {
    let mut databases = vec![ScratchDatabase::sqlite().unwrap()];
    if let Some(pg) = ScratchDatabase::postgres()
        .await
        .expect("ALTER_TEST_DATABASE_URL is set but PostgreSQL is unreachable")
    {
        databases.push(pg);
    }
    for db in databases {
        let store = SqlStore::connect(db.url(), &StoreOptions::default(), chain_key())
            .await
            .unwrap();
        // Today's schema without the index, so today's store can write the duplicates that
        // concurrent delegations could leave before 0005; then 0005 runs again over them.
        store.migrate().await.unwrap();
        let raw = AnyPool::connect(db.url()).await.unwrap();
        raw.execute("DROP INDEX grants_active_delegation")
            .await
            .unwrap();
        let every = match store.engine() {
            Engine::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Engine::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        let migration_0005 = every
            .migrations
            .iter()
            .find(|m| m.version == 5)
            .unwrap()
            .sql
            .to_string();

        let app = new_app(&store, "a").await.id;
        let [bot, helper] = [agent(app, "bot"), agent(app, "helper")];
        insert_agent(&store, &bot).await;
        insert_agent(&store, &helper).await;
        let root = root_grant(&store, app).await;
        store
            .insert_grant(&root, &event(app, "grant.created"))
            .await
            .unwrap();
        let delegate = |parent: &Grant, to: AgentId| {
            let (store, child) = (
                store.clone(),
                grant(app, parent.credential, Some(parent), Some(to)),
            );
            async move {
                store
                    .put_delegation(&child, &event(app, "delegation.created"))
                    .await
                    .unwrap();
                child
            }
        };
        let oldest = delegate(&root, bot.id).await;
        let onward = delegate(&oldest, helper.id).await;
        let middle = delegate(&root, bot.id).await;
        let newest = delegate(&root, bot.id).await;
        let to_helper = delegate(&root, helper.id).await;

        sqlx::raw_sql(&migration_0005).execute(&raw).await.unwrap();
        let status = |g: &Grant| {
            let (raw, id) = (raw.clone(), g.id.to_string());
            async move {
                let row = sqlx::query("SELECT status, revoke_reason FROM grants WHERE id = $1")
                    .bind(id)
                    .fetch_one(&raw)
                    .await
                    .unwrap();
                let status: String = row.get("status");
                let reason: Option<String> = row.get("revoke_reason");
                (status, reason)
            }
        };
        let revoked = (
            "revoked".to_owned(),
            Some("duplicate delegation".to_owned()),
        );
        let active = ("active".to_owned(), None);
        assert_eq!(status(&oldest).await, revoked);
        assert_eq!(status(&onward).await, revoked);
        assert_eq!(status(&middle).await, revoked);
        assert_eq!(status(&newest).await, active);
        assert_eq!(status(&to_helper).await, active);
        assert_eq!(status(&root).await, active);
        let found = store.active_child(app, root.id, bot.id).await.unwrap();
        assert_eq!(found.map(|g| g.id), Some(newest.id));
        let again = grant(app, root.credential, Some(&root), Some(bot.id));
        assert!(matches!(
            store.put_delegation(&again, &event(app, "delegation.created")).await,
            Err(StoreError::Conflict(what)) if what == "active_delegation"
        ));
        raw.close().await;
        store.close().await;
        db.drop_now().await.unwrap();
    }
}

/// A provider configuration is stored once per app and id, changes only from the version it
/// was read at, stays within its app, and is removed with its event.
#[tokio::test]
async fn providers_are_configured_per_app_under_optimistic_versions() {
    use alter_core::providers::{
        AccountSource, OAuthProvider, ProviderEndpoints, ProviderSource, RefreshBehaviour,
    };
    on_every_engine(|Fixture { store, raw }| async move {
        let app = new_app(&store, "a").await.id;
        let other = new_app(&store, "b").await.id;
        let acme = OAuthProvider {
            app_id: app,
            id: "acme".into(),
            display_name: "Acme".into(),
            source: ProviderSource::Custom,
            endpoints: ProviderEndpoints {
                issuer: Some("https://id.acme.example".into()),
                authorize_url: "https://id.acme.example/authorize".into(),
                token_url: "https://id.acme.example/token".into(),
                refresh_url: None,
                revoke_url: Some("https://id.acme.example/revoke".into()),
                pkce: true,
                scope_separator: " ".into(),
                refresh: RefreshBehaviour::NonRotating,
                extra_authorize_params: [("access_type".to_string(), "offline".to_string())].into(),
                account: AccountSource::IdToken {
                    claim: "email".into(),
                },
                api_base_url: None,
                api_headers: [("X-Api-Version".to_string(), "2".to_string())].into(),
            },
            client_id: "client-1".into(),
            sealed_client_secret: vec![9, 9, 9],
            scopes: vec!["openid".into(), "files.read".into()],
            version: 1,
            created_at: t(0),
            updated_at: t(0),
        };
        let configured = || event(app, "provider.configured");
        assert!(
            store
                .put_provider(&acme, None, &configured())
                .await
                .unwrap()
        );
        assert!(matches!(
            store.put_provider(&acme, None, &configured()).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            store.get_provider(app, "acme").await.unwrap(),
            Some(acme.clone())
        );
        assert_eq!(store.get_provider(other, "acme").await.unwrap(), None);

        let changed = OAuthProvider {
            client_id: "client-2".into(),
            version: 2,
            updated_at: t(5),
            ..acme.clone()
        };
        assert!(
            !store
                .put_provider(&changed, Some(7), &configured())
                .await
                .unwrap()
        );
        assert!(
            store
                .put_provider(&changed, Some(1), &configured())
                .await
                .unwrap()
        );
        assert!(
            !store
                .put_provider(&changed, Some(1), &configured())
                .await
                .unwrap()
        );
        assert_eq!(
            store.list_providers(app).await.unwrap(),
            vec![changed.clone()]
        );
        assert!(store.list_providers(other).await.unwrap().is_empty());

        let deleted = || event(app, "provider.deleted");
        assert!(
            !store
                .delete_provider(other, "acme", &deleted())
                .await
                .unwrap()
        );
        // A live connection made with it keeps it; a revoked one does not.
        let connection = new_connection(app);
        store
            .insert_connection(&connection, &event(app, "connection.created"))
            .await
            .unwrap();
        assert!(
            !store
                .delete_provider(app, "acme", &deleted())
                .await
                .unwrap()
        );
        store
            .retire_connection(app, connection.id, t(6), &event(app, "connection.revoked"))
            .await
            .unwrap();
        assert!(
            store
                .delete_provider(app, "acme", &deleted())
                .await
                .unwrap()
        );
        assert_eq!(store.get_provider(app, "acme").await.unwrap(), None);
        // Created, two configurations, a connection made and revoked, one removal; the
        // refused writes wrote nothing.
        assert_chain_intact(&raw, app, 6).await;
    })
    .await;
}

/// Exactly one of many concurrent callers takes a connection's refresh lease; a refresh is
/// stored only under the fence it was granted, so a holder whose lease ran out and was taken
/// over cannot overwrite the newer tokens; a revoked connection keeps no token material and
/// cannot be leased.
#[tokio::test]
async fn one_refresh_lease_at_a_time_and_a_lost_lease_never_overwrites() {
    use alter_core::connections::{Connection, ConnectionStatus, RefreshedTokens};
    on_every_engine(|Fixture { store, raw }| async move {
        let app = new_app(&store, "a").await.id;
        let connection = Connection {
            account_identifier: Some("alice@example.com".into()),
            scopes: vec!["openid".into()],
            access_expires_at: Some(t(60)),
            ..new_connection(app)
        };
        store
            .insert_connection(&connection, &event(app, "connection.created"))
            .await
            .unwrap();
        assert_eq!(
            store.get_connection(app, connection.id).await.unwrap(),
            Some(connection.clone())
        );
        let other = new_app(&store, "b").await.id;
        assert_eq!(
            store.get_connection(other, connection.id).await.unwrap(),
            None
        );

        // Twenty callers at once: one lease.
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .acquire_refresh_lease(app, connection.id, t(70), t(100))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut leases = Vec::new();
        for task in tasks {
            leases.extend(task.await.unwrap());
        }
        assert_eq!(leases.len(), 1, "{leases:?}");
        let first = leases[0];
        assert_eq!(first.token_version, 1);

        // The first holder stalls past its lease; a second takes over and stores its refresh.
        let second = store
            .acquire_refresh_lease(app, connection.id, t(100), t(130))
            .await
            .unwrap()
            .unwrap();
        assert!(second.fence > first.fence);
        let tokens = |bytes: u8, at: i64| RefreshedTokens {
            sealed_tokens: vec![bytes; 16],
            token_version: 2,
            access_expires_at: Some(t(at + 3600)),
            scopes: None,
            at: t(at),
        };
        assert!(
            store
                .complete_refresh(app, connection.id, &second, &tokens(2, 105))
                .await
                .unwrap()
        );
        assert!(
            !store
                .complete_refresh(app, connection.id, &first, &tokens(3, 110))
                .await
                .unwrap(),
            "a lost lease never overwrites"
        );
        assert!(
            !store
                .release_refresh_lease(app, connection.id, &first)
                .await
                .unwrap()
        );
        let stored = store
            .get_connection(app, connection.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (stored.sealed_tokens, stored.token_version),
            (vec![2; 16], 2)
        );
        // The lease was freed by the completed refresh: the next one can be taken at once.
        let third = store
            .acquire_refresh_lease(app, connection.id, t(106), t(136))
            .await
            .unwrap()
            .unwrap();
        assert!(
            store
                .release_refresh_lease(app, connection.id, &third)
                .await
                .unwrap()
        );

        // Revoked: no token material, no lease, and an in-flight refresh stores nothing.
        let in_flight = store
            .acquire_refresh_lease(app, connection.id, t(107), t(137))
            .await
            .unwrap()
            .unwrap();
        assert!(
            store
                .retire_connection(
                    app,
                    connection.id,
                    t(108),
                    &event(app, "connection.revoked")
                )
                .await
                .unwrap()
        );
        assert!(
            !store
                .complete_refresh(app, connection.id, &in_flight, &tokens(4, 109))
                .await
                .unwrap()
        );
        let revoked = store
            .get_connection(app, connection.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(revoked.status, ConnectionStatus::Revoked);
        assert!(revoked.sealed_tokens.is_empty());
        assert_eq!(
            store
                .acquire_refresh_lease(app, connection.id, t(200), t(230))
                .await
                .unwrap(),
            None
        );
        assert!(
            !store
                .retire_connection(
                    app,
                    connection.id,
                    t(201),
                    &event(app, "connection.revoked")
                )
                .await
                .unwrap()
        );
        // Created, revoked once; the refused second revocation wrote nothing.
        assert_chain_intact(&raw, app, 3).await;
    })
    .await;
}

/// Under its own, current lease a refresher that met `invalid_grant` marks the connection as
/// needing the user again; it can then no longer be leased.
#[tokio::test]
async fn a_refused_refresh_marks_the_connection_under_its_lease() {
    use alter_core::connections::{Connection, ConnectionStatus};
    on_every_engine(|Fixture { store, .. }| async move {
        let app = new_app(&store, "a").await.id;
        let connection = Connection {
            access_expires_at: Some(t(10)),
            ..new_connection(app)
        };
        store
            .insert_connection(&connection, &event(app, "connection.created"))
            .await
            .unwrap();
        let lease = store
            .acquire_refresh_lease(app, connection.id, t(20), t(50))
            .await
            .unwrap()
            .unwrap();
        assert!(
            store
                .mark_reauth_required(
                    app,
                    connection.id,
                    &lease,
                    t(21),
                    &event(app, "connection.reauth_required"),
                )
                .await
                .unwrap()
        );
        let stored = store
            .get_connection(app, connection.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, ConnectionStatus::ReauthRequired);
        assert_eq!(
            store
                .acquire_refresh_lease(app, connection.id, t(60), t(90))
                .await
                .unwrap(),
            None
        );
    })
    .await;
}

/// An active connection of `app` at a provider, with a token version of 1 and no expiry.
fn new_connection(app: AppId) -> alter_core::connections::Connection {
    alter_core::connections::Connection {
        id: alter_core::ids::ConnectionId::new(),
        app_id: app,
        provider_id: "acme".into(),
        account_identifier: None,
        scopes: Vec::new(),
        sealed_tokens: vec![1; 16],
        token_version: 1,
        tokens_at: t(0),
        access_expires_at: None,
        status: alter_core::connections::ConnectionStatus::Active,
        created_at: t(0),
        updated_at: t(0),
    }
}

/// An OAuth grant is stored with its connection in one step; the account finds it again; a
/// reconnect gives the connection new tokens and moves the fence, so a refresh leased before
/// it cannot store its result.
#[tokio::test]
async fn oauth_grants_are_found_by_account_and_reconnected_under_a_new_fence() {
    use alter_core::connections::{Connection, RefreshedTokens};
    on_every_engine(|Fixture { store, .. }| async move {
        let app = new_app(&store, "a").await.id;
        let connection = Connection {
            account_identifier: Some("ada@example.com".into()),
            ..new_connection(app)
        };
        let root = grant(app, CredentialRef::Connection(connection.id), None, None);
        store
            .insert_connection_grant(&connection, &root, &[event(app, "connection.created")])
            .await
            .unwrap();
        let found = store
            .find_connection_grant(app, &Principal::System, "acme", "ada@example.com", t(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, root.id);
        assert_eq!(found.credential, CredentialRef::Connection(connection.id));
        for (provider, account) in [("acme", "bob@example.com"), ("other", "ada@example.com")] {
            assert!(
                store
                    .find_connection_grant(app, &Principal::System, provider, account, t(1))
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        let other_app = new_app(&store, "b").await.id;
        assert!(
            store
                .find_connection_grant(
                    other_app,
                    &Principal::System,
                    "acme",
                    "ada@example.com",
                    t(1)
                )
                .await
                .unwrap()
                .is_none()
        );

        let lease = store
            .acquire_refresh_lease(app, connection.id, t(2), t(30))
            .await
            .unwrap()
            .unwrap();
        let renewed = Connection {
            sealed_tokens: vec![9; 16],
            token_version: 2,
            tokens_at: t(3),
            updated_at: t(3),
            ..connection.clone()
        };
        assert!(
            store
                .reconnect(&renewed, &event(app, "connection.reconnected"))
                .await
                .unwrap()
        );
        let refreshed = RefreshedTokens {
            sealed_tokens: vec![7; 16],
            token_version: 2,
            access_expires_at: None,
            scopes: None,
            at: t(4),
        };
        assert!(
            !store
                .complete_refresh(app, connection.id, &lease, &refreshed)
                .await
                .unwrap(),
            "a refresh leased before the reconnect must not store its tokens"
        );
        let stored = store
            .get_connection(app, connection.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.sealed_tokens, vec![9; 16]);
        assert_eq!(stored.tokens_at, t(3));
    })
    .await;
}

/// Revoking a connection's last root grant revokes the connection in the same transaction and
/// moves its tokens to the upstream-revocation queue; a sibling keeps the connection alive.
/// A queued revocation is claimed by one caller at a time and ends with its tokens destroyed.
#[tokio::test]
async fn revoking_the_last_oauth_grant_queues_its_tokens_for_the_provider() {
    use alter_core::connections::{Connection, ConnectionStatus};
    on_every_engine(|Fixture { store, raw }| async move {
        let app = new_app(&store, "a").await.id;
        let connection = Connection {
            sealed_tokens: vec![5; 16],
            ..new_connection(app)
        };
        let first = grant(app, CredentialRef::Connection(connection.id), None, None);
        store
            .insert_connection_grant(&connection, &first, &[event(app, "connection.created")])
            .await
            .unwrap();
        let sibling = Grant {
            label: Some("second".into()),
            ..grant(app, CredentialRef::Connection(connection.id), None, None)
        };
        store
            .insert_grant(&sibling, &event(app, "grant.minted"))
            .await
            .unwrap();
        let revoke = |root: GrantId| {
            let store = store.clone();
            async move {
                store
                    .revoke_connection_grant(
                        app,
                        root,
                        connection.id,
                        t(10),
                        None,
                        &event(app, "grant.revoked"),
                        &event(app, "connection.revoked"),
                    )
                    .await
                    .unwrap()
            }
        };
        let (revoked, gone) = revoke(first.id).await;
        assert_eq!(revoked, vec![first.id]);
        assert!(!gone, "a sibling still uses the connection");
        let (revoked, gone) = revoke(sibling.id).await;
        assert_eq!(revoked, vec![sibling.id]);
        assert!(gone);
        let stored = store.get_connection(app, connection.id).await.unwrap().unwrap();
        assert_eq!(stored.status, ConnectionStatus::Revoked);
        assert!(stored.sealed_tokens.is_empty());

        let claimed = store
            .claim_revocations(t(10), t(100), 10, None)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].sealed_tokens, vec![5; 16]);
        assert!(
            store
                .claim_revocations(t(11), t(100), 10, None)
                .await
                .unwrap()
                .is_empty(),
            "a claimed revocation is not handed out twice"
        );
        store
            .retry_revocation(connection.id, 1, t(20), "HTTP 503")
            .await
            .unwrap();
        assert!(store.claim_revocations(t(19), t(100), 10, None).await.unwrap().is_empty());
        let again = store
            .claim_revocations(t(20), t(100), 10, Some(connection.id))
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 1);
        store
            .finish_revocation(connection.id, t(21), &event(app, "connection.revoked_upstream"))
            .await
            .unwrap();
        let left = count(
            &raw,
            "SELECT COUNT(*) FROM oauth_revocations WHERE connection_id = $1 AND done_at IS NOT NULL",
            connection.id.to_string(),
        )
        .await;
        assert_eq!(left, 1);
        assert!(store.claim_revocations(t(1_000_000), t(1_000_100), 10, None).await.unwrap().is_empty());
    })
    .await;
}

/// A connection whose grants all expired is found unused and retired: its tokens move to the
/// upstream-revocation queue, once; a live grant keeps it.
#[tokio::test]
async fn connections_no_live_grant_uses_are_retired_once() {
    use alter_core::connections::{Connection, ConnectionStatus};
    on_every_engine(|Fixture { store, .. }| async move {
        let app = new_app(&store, "a").await.id;
        let connection = Connection {
            sealed_tokens: vec![4; 16],
            ..new_connection(app)
        };
        let expiring = Grant {
            expires_at: Some(t(50)),
            ..grant(app, CredentialRef::Connection(connection.id), None, None)
        };
        store
            .insert_connection_grant(&connection, &expiring, &[event(app, "connection.created")])
            .await
            .unwrap();
        assert!(
            store
                .unused_connections(t(40), 10)
                .await
                .unwrap()
                .is_empty()
        );
        let retired_event = event(app, "connection.revoked");
        let retire = || store.retire_connection(app, connection.id, t(60), &retired_event);
        assert!(
            !store
                .retire_connection(app, connection.id, t(40), &event(app, "x"))
                .await
                .unwrap()
        );
        assert_eq!(
            store.unused_connections(t(60), 10).await.unwrap(),
            vec![(app, connection.id)]
        );
        assert!(retire().await.unwrap());
        assert!(!retire().await.unwrap(), "retired once");
        let stored = store
            .get_connection(app, connection.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status, ConnectionStatus::Revoked);
        assert!(stored.sealed_tokens.is_empty());
        let queued = store
            .claim_revocations(t(60), t(100), 10, None)
            .await
            .unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].sealed_tokens, vec![4; 16]);
        assert!(
            store
                .unused_connections(t(60), 10)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

/// A Connect attempt's state is claimed once: the second callback with it finds nothing. A
/// session ends once.
#[tokio::test]
async fn a_connect_state_is_claimed_once_and_a_session_ends_once() {
    use alter_core::connect::{ConnectOutcome, ConnectSession, ConnectSettings, SessionStatus};
    on_every_engine(|Fixture { store, .. }| async move {
        let app = new_app(&store, "a").await.id;
        let session = ConnectSession {
            id: alter_core::ids::ConnectSessionId::new(),
            app_id: app,
            settings: ConnectSettings {
                providers: vec!["acme".into()],
                return_url: None,
                allowed_origin: None,
                lifetime: GrantLifetime::default(),
                required_scopes: Default::default(),
                label: None,
                // Restrictions ride in the settings' JSON (no column of their own).
                restrictions: Some(alter_core::connect::GrantRestrictions {
                    allowed_methods: Some(vec!["GET".into()]),
                    allowed_endpoints: None,
                }),
                repair_grant_id: None,
                agent_id: None,
                delegable: false,
                user_id: None,
                direct: false,
                switch_account: false,
                managed: None,
            },
            status: SessionStatus::Pending,
            declined: Vec::new(),
            outcome: None,
            verified_at: None,
            created_at: t(0),
            expires_at: t(600),
        };
        store
            .insert_connect_session(
                &session,
                &[1; 32],
                &[2; 32],
                &event(app, "connect_session.created"),
            )
            .await
            .unwrap();
        assert_eq!(
            store.connect_session_by_poll_hash(&[1; 32]).await.unwrap(),
            Some(session.clone())
        );
        assert_eq!(
            store.connect_session_by_page_hash(&[2; 32]).await.unwrap(),
            Some(session.clone())
        );
        assert!(
            store
                .connect_session_by_poll_hash(&[2; 32])
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .start_connect_attempt(session.id, &[3; 32], &[9; 32], "acme", b"sealed", t(1))
                .await
                .unwrap()
        );
        assert!(
            store
                .claim_connect_attempt(&[3; 32], &[8; 32], t(2))
                .await
                .unwrap()
                .is_none(),
            "another browser's callback claims nothing"
        );
        let claimed = store
            .claim_connect_attempt(&[3; 32], &[9; 32], t(2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.session.status, SessionStatus::Exchanging);
        assert_eq!(claimed.provider_id, "acme");
        assert_eq!(claimed.sealed_verifier, b"sealed".to_vec());
        assert_eq!(claimed.started_at, t(1));
        assert!(
            store
                .claim_connect_attempt(&[3; 32], &[9; 32], t(3))
                .await
                .unwrap()
                .is_none()
        );
        let outcome = ConnectOutcome::Failed {
            code: "connect_denied".into(),
            message: "no".into(),
        };
        assert!(
            store
                .finish_connect_session(session.id, SessionStatus::Failed, &outcome, t(4))
                .await
                .unwrap()
        );
        assert!(
            !store
                .finish_connect_session(session.id, SessionStatus::Completed, &outcome, t(5))
                .await
                .unwrap()
        );
        assert!(
            !store
                .start_connect_attempt(session.id, &[4; 32], &[9; 32], "acme", b"sealed", t(6))
                .await
                .unwrap(),
            "an ended session starts no attempt"
        );
        assert_eq!(store.prune_connect_sessions(t(600)).await.unwrap(), 0);
        assert_eq!(store.prune_connect_sessions(t(601)).await.unwrap(), 1);
        assert!(
            store
                .connect_session_by_poll_hash(&[1; 32])
                .await
                .unwrap()
                .is_none()
        );
    })
    .await;
}

#[tokio::test]
async fn provider_specs_are_kept_per_app_and_their_operations_paged_and_searched() {
    use alter_core::ports::SpecStore;
    use alter_core::provider_specs::{Operation, ProviderSpec, PutSpec, SpecKind};
    use serde_json::json;
    on_every_engine(|Fixture { store, raw }| async move {
        let app = new_app(&store, "a").await.id;
        let other = new_app(&store, "b").await.id;
        let op = |i: usize, summary: &str| Operation {
            operation_id: format!("Op{i}"),
            method: "GET".into(),
            path_template: format!("/v1/things/{i}"),
            summary: Some(summary.into()),
            params_schema: Some(vec![json!({"name": "id", "in": "path"})]),
            request_schema: None,
            response_schema: Some(json!({"type": "object", "properties": {"n": {"type": "integer"}}})),
        };
        // More than one INSERT's worth, so the chunking is exercised.
        let mut operations: Vec<Operation> = (0..450).map(|i| op(i, "List things")).collect();
        operations[7].summary = Some("Refund 100% of a Charge".into());
        operations[8].summary = Some("under_score".into());
        let spec = ProviderSpec {
            app_id: app,
            kind: SpecKind::OAuth,
            provider_id: "acme".into(),
            version: 1,
            provenance: "import".into(),
            source_url: Some("https://acme.example/openapi.json".into()),
            content_hash: "aa".repeat(32),
            title: Some("Acme".into()),
            spec_version: Some("1.0".into()),
            operation_count: 450,
            fetched_at: t(10),
            changed_at: t(10),
        };
        fn put<'a>(
            spec: &'a ProviderSpec,
            operations: Option<&'a [Operation]>,
            expected_version: Option<i64>,
        ) -> PutSpec<'a> {
            PutSpec {
                spec,
                document: operations.map(|_| b"{}".as_slice()),
                operations,
                expected_version,
            }
        }
        let spec = &spec;
        let operations = operations.as_slice();
        let imported = || event(app, "provider_spec.imported");
        assert!(store.put_provider_spec(&put(spec, Some(operations), None), &imported()).await.unwrap());
        assert!(
            !store.put_provider_spec(&put(spec, Some(operations), None), &imported()).await.unwrap(),
            "a second first import loses"
        );
        assert_eq!(
            store.get_provider_spec(app, SpecKind::OAuth, "acme").await.unwrap().as_ref(),
            Some(spec)
        );
        assert_eq!(store.get_provider_spec(app, SpecKind::Managed, "acme").await.unwrap(), None);
        assert_eq!(store.get_provider_spec(other, SpecKind::OAuth, "acme").await.unwrap(), None);
        assert!(store.list_provider_specs(other, None).await.unwrap().is_empty());
        assert_eq!(store.list_provider_specs(app, None).await.unwrap(), vec![spec.clone()]);
        assert!(store.list_provider_specs(app, Some(SpecKind::Managed)).await.unwrap().is_empty());

        let (page, total) = store
            .list_spec_operations(app, SpecKind::OAuth, "acme", None, 100, 400)
            .await
            .unwrap();
        assert_eq!(total, 450);
        assert_eq!(page.len(), 50);
        assert_eq!(page[0].operation_id, "Op400", "document order");
        let search = |text: &'static str| {
            let store = store.clone();
            async move {
                store
                    .list_spec_operations(app, SpecKind::OAuth, "acme", Some(text), 10, 0)
                    .await
                    .unwrap()
            }
        };
        let (found, total) = search("refund 100%").await;
        assert_eq!((found.len(), total), (1, 1));
        assert_eq!(found[0].operation_id, "Op7");
        assert_eq!(search("100%").await.1, 1, "% is matched literally");
        assert_eq!(search("_").await.1, 1, "_ is matched literally");
        assert_eq!(search("op44").await.1, 11, "ids are searched (op44, op440…op449)");
        assert_eq!(search("/v1/things/449").await.1, 1, "paths are searched");
        assert_eq!(search("nothing like it").await.1, 0);
        assert_eq!(
            store.list_spec_operations(other, SpecKind::OAuth, "acme", None, 10, 0).await.unwrap().1,
            0
        );

        let detail = store
            .get_spec_operation(app, SpecKind::OAuth, "acme", "Op3")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(detail, operations[3]);
        assert_eq!(store.get_spec_operation(app, SpecKind::OAuth, "acme", "op3").await.unwrap(), None);
        assert_eq!(store.get_spec_operation(other, SpecKind::OAuth, "acme", "Op3").await.unwrap(), None);

        // The same content again: only fetched_at and source_url move.
        let touched = &ProviderSpec {
            fetched_at: t(20),
            source_url: None,
            ..spec.clone()
        };
        assert!(store.put_provider_spec(&put(touched, None, Some(1)), &imported()).await.unwrap());
        assert_eq!(
            store.get_provider_spec(app, SpecKind::OAuth, "acme").await.unwrap().as_ref(),
            Some(touched)
        );
        // New content replaces the operations, from the version read only.
        let changed = &ProviderSpec {
            version: 2,
            content_hash: "bb".repeat(32),
            operation_count: 1,
            changed_at: t(30),
            fetched_at: t(30),
            ..spec.clone()
        };
        let fewer = &[op(1000, "New")][..];
        assert!(!store.put_provider_spec(&put(changed, Some(fewer), Some(7)), &imported()).await.unwrap());
        assert_eq!(store.list_spec_operations(app, SpecKind::OAuth, "acme", None, 500, 0).await.unwrap().1, 450);
        assert!(store.put_provider_spec(&put(changed, Some(fewer), Some(1)), &imported()).await.unwrap());
        let (all, total) = store
            .list_spec_operations(app, SpecKind::OAuth, "acme", None, 500, 0)
            .await
            .unwrap();
        assert_eq!((total, all[0].operation_id.as_str()), (1, "Op1000"));

        let deleted = || event(app, "provider_spec.deleted");
        assert!(!store.delete_provider_spec(other, SpecKind::OAuth, "acme", &deleted()).await.unwrap());
        assert!(store.delete_provider_spec(app, SpecKind::OAuth, "acme", &deleted()).await.unwrap());
        assert!(!store.delete_provider_spec(app, SpecKind::OAuth, "acme", &deleted()).await.unwrap());
        assert_eq!(
            count(&raw, "SELECT COUNT(*) FROM provider_spec_operations WHERE app_id = $1", app.to_string()).await,
            0
        );
        // The import, the touch, the change and the delete were recorded; refused writes not.
        assert_eq!(
            count(
                &raw,
                "SELECT COUNT(*) FROM audit_events WHERE app_id = $1 AND action LIKE 'provider_spec.%'",
                app.to_string()
            )
            .await,
            4
        );
    })
    .await;
}

fn auth_session(app: AppId, n: u8) -> AuthSession {
    AuthSession {
        id: AuthSessionId::new(),
        app_id: app,
        token_hash: [n; 32],
        state_hash: [n.wrapping_add(100); 32],
        nonce: format!("nonce-{n}"),
        sealed_verifier: vec![n, 1, 2],
        status: AuthSessionStatus::Pending,
        sealed_user_token: None,
        user_id: None,
        error_code: None,
        error_message: None,
        expires_at: t(600),
        created_at: t(0),
        updated_at: t(0),
    }
}

#[tokio::test]
async fn a_sign_in_session_is_claimed_once_and_its_token_collected_once() {
    on_every_engine(|f| async move {
        let store = &f.store;
        let app = new_app(store, "a").await;
        let other = new_app(store, "b").await;
        let session = auth_session(app.id, 1);
        store.insert_auth_session(&session).await.unwrap();
        let late = auth_session(app.id, 2);
        store.insert_auth_session(&late).await.unwrap();

        // Found by the token's hash, in its own app only.
        let found = store.find_auth_session(app.id, &[1; 32]).await.unwrap();
        assert_eq!(found.as_ref(), Some(&session));
        assert!(
            store
                .find_auth_session(other.id, &[1; 32])
                .await
                .unwrap()
                .is_none()
        );

        // Finishing needs a claim first; a claim needs the state, a pending session, time left.
        assert!(!store.finish_auth_session(&session).await.unwrap());
        assert!(
            store
                .claim_auth_session(&[9; 32], t(1))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .claim_auth_session(&[102; 32], t(600))
                .await
                .unwrap()
                .is_none(),
            "expired"
        );
        let claimed = store
            .claim_auth_session(&[101; 32], t(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.status, AuthSessionStatus::Exchanging);
        assert!(
            store
                .claim_auth_session(&[101; 32], t(2))
                .await
                .unwrap()
                .is_none(),
            "once"
        );

        let user = UserId::new();
        let completed = AuthSession {
            status: AuthSessionStatus::Completed,
            sealed_user_token: Some(vec![7, 7, 7]),
            user_id: Some(user),
            updated_at: t(3),
            ..claimed.clone()
        };
        assert!(store.finish_auth_session(&completed).await.unwrap());
        assert!(
            !store.finish_auth_session(&completed).await.unwrap(),
            "finished once"
        );
        let stored = store
            .find_auth_session(app.id, &[1; 32])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored, completed);

        assert!(
            store
                .collect_auth_session(session.id, t(4), &event(app.id, "user.token_collected"))
                .await
                .unwrap()
        );
        assert!(
            !store
                .collect_auth_session(session.id, t(5), &event(app.id, "user.token_collected"))
                .await
                .unwrap(),
            "collected once"
        );
        let collected = store
            .find_auth_session(app.id, &[1; 32])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(collected.status, AuthSessionStatus::Collected);
        assert_eq!(collected.sealed_user_token, None, "the token is erased");

        assert_eq!(store.prune_auth_sessions(t(600)).await.unwrap(), 0);
        assert_eq!(store.prune_auth_sessions(t(601)).await.unwrap(), 2);
    })
    .await;
}

#[tokio::test]
async fn the_sign_in_client_is_versioned_and_signing_keys_listed_oldest_first() {
    on_every_engine(|f| async move {
        let store = &f.store;
        let app = new_app(store, "a").await;
        let client = SignInClient {
            app_id: app.id,
            client_id: "c".into(),
            sealed_client_secret: None,
            scopes: vec!["openid".into()],
            authorize_url: None,
            token_url: None,
            version: 1,
            created_at: t(0),
            updated_at: t(0),
        };
        let configured = event(app.id, "idp.sign_in_configured");
        assert!(
            store
                .put_sign_in_client(&client, None, &configured)
                .await
                .unwrap()
        );
        assert!(
            !store
                .put_sign_in_client(&client, None, &event(app.id, "x"))
                .await
                .unwrap()
        );
        let changed = SignInClient {
            sealed_client_secret: Some(vec![1, 2]),
            token_url: Some("https://idp.example/token".into()),
            version: 2,
            updated_at: t(5),
            ..client.clone()
        };
        assert!(
            !store
                .put_sign_in_client(&changed, Some(7), &event(app.id, "x"))
                .await
                .unwrap()
        );
        assert!(
            store
                .put_sign_in_client(&changed, Some(1), &event(app.id, "y"))
                .await
                .unwrap()
        );
        assert_eq!(
            store.get_sign_in_client(app.id).await.unwrap(),
            Some(changed)
        );

        assert!(store.identity_signing_keys().await.unwrap().is_empty());
        let key = |kid: &str, at: i64| IdentitySigningKey {
            kid: kid.into(),
            sealed_private_key: vec![1],
            public_x: "x".into(),
            public_y: "y".into(),
            created_at: t(at),
        };
        store
            .insert_identity_signing_key(&key("b", 5))
            .await
            .unwrap();
        store
            .insert_identity_signing_key(&key("a", 9))
            .await
            .unwrap();
        let again = store.insert_identity_signing_key(&key("b", 1)).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
        let kids: Vec<String> = store
            .identity_signing_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert_eq!(kids, ["b", "a"]);
    })
    .await;
}

fn rule(app: AppId, target: alter_core::rules::RuleTarget, at: i64) -> alter_core::rules::Rule {
    alter_core::rules::Rule {
        id: alter_core::ids::RuleId::new(),
        app_id: app,
        version: 1,
        target,
        kind: "ip_allowlist".into(),
        effect: alter_core::rules::Effect::Deny,
        mode: alter_core::rules::RuleMode::Enforce,
        body: serde_json::json!({"cidrs": ["10.0.0.0/8"]}),
        description: Some("office only".into()),
        created_at: t(at),
    }
}

/// Rules are stored per app with every version kept (a removal as a tombstone); each write
/// bumps the app's rules version and appends its event in the same transaction; an update
/// under a stale version, and any write or read through another app, changes and shows nothing.
#[tokio::test]
async fn policy_rules_are_versioned_per_app_under_optimistic_versions() {
    use alter_core::ports::RuleStore;
    use alter_core::rules::{RuleMode, RuleTarget};
    on_every_engine(|Fixture { store, raw }| async move {
        let app = new_app(&store, "a").await.id;
        let other = new_app(&store, "b").await.id;
        assert_eq!(store.rules_version(app).await.unwrap(), Some(0));
        assert_eq!(store.rules_version(AppId::new()).await.unwrap(), None);

        let first = rule(app, RuleTarget::App, 1);
        let second = rule(app, RuleTarget::Provider("github".into()), 2);
        let third = rule(app, RuleTarget::Agent(AgentId::new()), 3);
        let fourth = rule(app, RuleTarget::Grant(GrantId::new()), 4);
        for r in [&first, &second, &third, &fourth] {
            store
                .insert_rule(r, &event(app, "policy.rule_added"))
                .await
                .unwrap();
        }
        assert!(matches!(
            store
                .insert_rule(&first, &event(app, "policy.rule_added"))
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.rules_version(app).await.unwrap(), Some(4));
        assert_eq!(store.rules_version(other).await.unwrap(), Some(0));
        assert_eq!(
            store.list_rules(app).await.unwrap(),
            vec![first.clone(), second.clone(), third.clone(), fourth.clone()]
        );
        assert_eq!(
            store.get_rule(app, first.id).await.unwrap(),
            Some(first.clone())
        );

        // Another app sees, changes and removes nothing.
        assert_eq!(store.get_rule(other, first.id).await.unwrap(), None);
        assert!(store.list_rules(other).await.unwrap().is_empty());
        let hijack = alter_core::rules::Rule {
            app_id: other,
            version: 2,
            ..first.clone()
        };
        assert!(
            !store
                .update_rule(&hijack, 1, &event(other, "policy.rule_updated"))
                .await
                .unwrap()
        );
        assert!(
            !store
                .delete_rule(other, first.id, &event(other, "policy.rule_removed"))
                .await
                .unwrap()
        );
        assert!(
            store
                .rule_versions(other, first.id)
                .await
                .unwrap()
                .is_empty()
        );

        // An update moves the version; a stale one is refused.
        let changed = alter_core::rules::Rule {
            version: 2,
            mode: RuleMode::Shadow,
            body: serde_json::json!({"cidrs": ["192.0.2.0/24"]}),
            description: None,
            created_at: t(10),
            ..first.clone()
        };
        assert!(
            store
                .update_rule(&changed, 1, &event(app, "policy.rule_updated"))
                .await
                .unwrap()
        );
        assert!(
            !store
                .update_rule(&changed, 1, &event(app, "policy.rule_updated"))
                .await
                .unwrap()
        );
        assert_eq!(
            store.get_rule(app, first.id).await.unwrap(),
            Some(changed.clone())
        );
        assert_eq!(store.rules_version(app).await.unwrap(), Some(5));

        assert!(
            store
                .delete_rule(app, first.id, &event(app, "policy.rule_removed"))
                .await
                .unwrap()
        );
        assert!(
            !store
                .delete_rule(app, first.id, &event(app, "policy.rule_removed"))
                .await
                .unwrap()
        );
        assert_eq!(store.get_rule(app, first.id).await.unwrap(), None);
        assert_eq!(store.list_rules(app).await.unwrap().len(), 3);
        assert_eq!(store.rules_version(app).await.unwrap(), Some(6));
        let versions = store.rule_versions(app, first.id).await.unwrap();
        assert_eq!(
            versions
                .iter()
                .map(|v| (v.rule.version, v.removed))
                .collect::<Vec<_>>(),
            vec![(1, false), (2, false), (3, true)]
        );
        assert_eq!(versions[0].rule, first);
        assert_eq!(versions[1].rule, changed);
        assert_eq!(versions[2].rule.body, changed.body);
        // Created, four added, one update, one removal; the refused writes wrote nothing.
        assert_chain_intact(&raw, app, 7).await;
        assert_chain_intact(&raw, other, 1).await;
    })
    .await;
}

/// GCRA (policy-design §5): with 3 a minute and a burst of 3, three calls pass at once, the
/// fourth is refused with the wait until the next token and consumes nothing, and one more
/// passes an emission interval (20 s) later; buckets are independent and pruned when full.
#[tokio::test]
async fn rate_tokens_follow_gcra() {
    use alter_core::ports::{RateLimitStore, RateTaken};
    on_every_engine(|Fixture { store, .. }| async move {
        let (interval, tolerance) = (20_000, 40_000);
        let now = 1_800_000_000_000_i64;
        let take = |at: i64| {
            let store = store.clone();
            async move {
                store
                    .take_rate_token("r1:grant:g1", at, interval, tolerance)
                    .await
                    .unwrap()
            }
        };
        let allowed = |remaining| RateTaken {
            allowed: true,
            retry_after_ms: 0,
            remaining,
        };
        assert_eq!(take(now).await, allowed(2));
        assert_eq!(take(now).await, allowed(1));
        assert_eq!(take(now + 1).await, allowed(0));
        let refused = take(now + 1).await;
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_ms, 19_999);
        // The refusal consumed nothing: the next token is free at exactly now + 20 s.
        assert!(!take(now + 19_999).await.allowed);
        assert_eq!(take(now + 20_000).await, allowed(0));
        assert!(!take(now + 20_000).await.allowed);
        // Another bucket is full.
        assert!(
            store
                .take_rate_token("r1:grant:g2", now, interval, tolerance)
                .await
                .unwrap()
                .allowed
        );
        // Idle for long enough, the bucket is full again (burst, not more).
        let later = now + 600_000;
        assert_eq!(take(later).await, allowed(2));
        assert_eq!(store.prune_rate_buckets(now + 100_000).await.unwrap(), 1);
        assert_eq!(store.prune_rate_buckets(later + 100_000).await.unwrap(), 1);
    })
    .await;
}

/// Twenty concurrent takes on one empty bucket with a burst of 5 admit exactly five.
#[tokio::test]
async fn concurrent_rate_takes_admit_exactly_the_burst() {
    use alter_core::ports::RateLimitStore;
    on_every_engine(|Fixture { store, .. }| async move {
        let now = 1_800_000_000_000_i64;
        // 5 a minute, burst 5: T = 12 s, tau = 48 s.
        let takes = (0..20).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .take_rate_token("r2:agent:a1", now, 12_000, 48_000)
                    .await
                    .unwrap()
                    .allowed
            })
        });
        let mut admitted = 0;
        for take in takes.collect::<Vec<_>>() {
            admitted += usize::from(take.await.unwrap());
        }
        assert_eq!(admitted, 5);
    })
    .await;
}

// Approvals (held proxy calls).

fn approval(app: AppId, n: i64) -> alter_core::approvals::Approval {
    use alter_core::approvals::{Approval, ApprovalStatus};
    use alter_core::ids::ApprovalId;
    Approval {
        id: ApprovalId::new(),
        group_id: ApprovalId::new(),
        app_id: app,
        status: ApprovalStatus::Pending,
        grant_id: GrantId::new(),
        key_id: KeyId::new(),
        agent_id: Some(AgentId::new()),
        sealed_request: vec![7; 40],
        method: "POST".into(),
        url: "https://api.example.com/v1/charges?amount".into(),
        holds: vec![alter_core::rules::MatchedRule {
            rule_id: alter_core::ids::RuleId::new(),
            version: 1,
            kind: "agent_requires_approval".into(),
            effect: alter_core::rules::Effect::Hold,
            mode: alter_core::rules::RuleMode::Enforce,
            code: "approval_required".into(),
            detail: "held".into(),
            // The terms round-trip with the holds.
            approval: Some(alter_core::rules::ApprovalTerms {
                ttl_seconds: Some(900),
                approvers: vec!["alice".into()],
            }),
        }],
        reason: format!("refund {n}"),
        created_at: t(n),
        expires_at: t(n + 900),
        decided_at: None,
        decided_by: None,
        decision_reason: None,
        claimed_at: None,
        executed_at: None,
        execution_error: None,
        sealed_result: None,
        version: 1,
    }
}

/// Parks `held` under the cap `max`, its condition holding (its app's key, grant and agent
/// exist and are active): whether it was parked.
async fn park(store: &SqlStore, held: &alter_core::approvals::Approval, max: i64) -> bool {
    use alter_core::ports::{ApprovalStore, Parked};
    let holds = active_condition(store, held.app_id).await;
    let parked = store
        .insert_approval(held, max, &event(held.app_id, "approval.requested"), &holds)
        .await
        .unwrap();
    parked == Parked::Parked
}

/// The condition of a call by a new active key of `app`, through a new active agent's use of a
/// new active grant.
async fn active_condition(store: &SqlStore, app: AppId) -> ReleaseCondition {
    let signer = key(app, KeyType::Runtime, None);
    insert(store, &signer).await;
    let bot = agent(app, &format!("bot-{}", uuid::Uuid::new_v4().simple()));
    insert_agent(store, &bot).await;
    let root = root_grant(store, app).await;
    store
        .insert_grant(&root, &event(app, "grant.created"))
        .await
        .unwrap();
    ReleaseCondition {
        grants: vec![root.id],
        agents: vec![bot.id],
        key: signer.id,
        at: t(0),
        rules: None,
    }
}

/// A held call is parked only while what it was decided under holds: a key revoked (or a
/// grant revoked, an agent paused) in between refuses it and writes nothing.
#[tokio::test]
async fn a_held_call_is_parked_only_while_its_condition_holds() {
    use alter_core::ports::{ApprovalStore, Parked};
    on_every_engine(|f| async move {
        let store = &f.store;
        let app = new_app(store, "a").await;
        let holds = active_condition(store, app.id).await;
        let revoked = ReleaseCondition {
            key: {
                let gone = key(app.id, KeyType::Runtime, None);
                insert(store, &gone).await;
                sqlx::query("UPDATE api_keys SET revoked_at = 1 WHERE id = $1")
                    .bind(gone.id.to_string())
                    .execute(&f.raw)
                    .await
                    .unwrap();
                gone.id
            },
            ..holds.clone()
        };
        let paused = ReleaseCondition {
            agents: vec![{
                let bot = agent(app.id, "paused");
                insert_agent(store, &bot).await;
                sqlx::query("UPDATE agents SET status = 'inactive' WHERE id = $1")
                    .bind(bot.id.to_string())
                    .execute(&f.raw)
                    .await
                    .unwrap();
                bot.id
            }],
            ..holds.clone()
        };
        let events_before = count(
            &f.raw,
            "SELECT COUNT(*) FROM audit_events WHERE app_id = $1",
            app.id.to_string(),
        )
        .await;
        for condition in [&revoked, &paused] {
            let held = approval(app.id, 0);
            let parked = store
                .insert_approval(&held, 10, &event(app.id, "approval.requested"), condition)
                .await
                .unwrap();
            assert_eq!(parked, Parked::Refused);
            assert!(store.get_approval(app.id, held.id).await.unwrap().is_none());
        }
        assert_eq!(
            count(
                &f.raw,
                "SELECT COUNT(*) FROM audit_events WHERE app_id = $1",
                app.id.to_string(),
            )
            .await,
            events_before,
            "a refused park writes no event"
        );
        // The same call under the holding condition parks, and the connection it used is
        // clean (the refusals rolled back).
        let held = approval(app.id, 0);
        let parked = store
            .insert_approval(&held, 10, &event(app.id, "approval.requested"), &holds)
            .await
            .unwrap();
        assert_eq!(parked, Parked::Parked);
        assert!(store.get_approval(app.id, held.id).await.unwrap().is_some());
    })
    .await;
}

fn decision(approve: bool, at: i64) -> alter_core::approvals::ApprovalDecision {
    alter_core::approvals::ApprovalDecision {
        approve,
        at: t(at),
        decided_by: "ops@example.com".into(),
        reason: Some("looks right".into()),
    }
}

/// An approval moves pending → approved → executing → executed (or failed) once per step,
/// each step with its event; denial and expiry end it; other apps see nothing.
#[tokio::test]
async fn approvals_move_through_their_states_once() {
    use alter_core::approvals::{ApprovalFinish, ApprovalStatus};
    use alter_core::ports::ApprovalStore;
    on_every_engine(|f| async move {
        let store = &f.store;
        let app = new_app(store, "a").await;
        let other = new_app(store, "b").await;
        let held = approval(app.id, 0);
        assert!(park(store, &held, 10).await);
        assert_eq!(
            store.get_approval(app.id, held.id).await.unwrap().as_ref(),
            Some(&held)
        );
        assert!(
            store
                .get_approval(other.id, held.id)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .list_approvals(other.id, None, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // Nothing to claim or finish while pending.
        assert!(!store.claim_approval(app.id, held.id, t(1)).await.unwrap());
        let done = ApprovalFinish {
            executed: true,
            at: t(3),
            error: None,
            sealed_result: Some(vec![9; 20]),
        };
        assert!(
            !store
                .finish_approval(app.id, held.id, &done, &event(app.id, "approval.executed"))
                .await
                .unwrap()
        );
        // Another app cannot decide it; a decision at or after expiry changes nothing.
        assert!(
            !store
                .decide_approval(other.id, held.id, &decision(true, 1), &event(other.id, "x"))
                .await
                .unwrap()
        );
        assert!(
            !store
                .decide_approval(app.id, held.id, &decision(true, 900), &event(app.id, "x"))
                .await
                .unwrap()
        );
        let events = count(
            &f.raw,
            "SELECT COUNT(*) FROM audit_events WHERE app_id = $1",
            app.id.to_string(),
        )
        .await;

        assert!(
            store
                .decide_approval(
                    app.id,
                    held.id,
                    &decision(true, 1),
                    &event(app.id, "approval.approved")
                )
                .await
                .unwrap()
        );
        // Decided once: neither decision goes through again.
        for approve in [true, false] {
            assert!(
                !store
                    .decide_approval(app.id, held.id, &decision(approve, 2), &event(app.id, "x"))
                    .await
                    .unwrap()
            );
        }
        assert_eq!(
            store.unclaimed_approvals(10).await.unwrap(),
            vec![(app.id, held.id)]
        );
        assert!(store.claim_approval(app.id, held.id, t(2)).await.unwrap());
        assert!(!store.claim_approval(app.id, held.id, t(2)).await.unwrap());
        assert!(store.unclaimed_approvals(10).await.unwrap().is_empty());
        assert!(
            store
                .finish_approval(app.id, held.id, &done, &event(app.id, "approval.executed"))
                .await
                .unwrap()
        );
        assert!(
            !store
                .finish_approval(app.id, held.id, &done, &event(app.id, "approval.executed"))
                .await
                .unwrap()
        );
        let read = store.get_approval(app.id, held.id).await.unwrap().unwrap();
        assert_eq!(read.status, ApprovalStatus::Executed);
        assert_eq!(read.decided_at, Some(t(1)));
        assert_eq!(read.decided_by.as_deref(), Some("ops@example.com"));
        assert_eq!(read.decision_reason.as_deref(), Some("looks right"));
        assert_eq!(read.claimed_at, Some(t(2)));
        assert_eq!(read.executed_at, Some(t(3)));
        assert_eq!(read.sealed_result, Some(vec![9; 20]));
        assert_eq!(read.version, 4);
        assert_eq!(
            count(
                &f.raw,
                "SELECT COUNT(*) FROM audit_events WHERE app_id = $1",
                app.id.to_string(),
            )
            .await,
            events + 2,
            "approved and executed: one event each"
        );

        // Denied ends it; a failed execution keeps its error.
        let denied = approval(app.id, 10);
        assert!(park(store, &denied, 10).await);
        assert!(
            store
                .decide_approval(
                    app.id,
                    denied.id,
                    &decision(false, 11),
                    &event(app.id, "approval.denied")
                )
                .await
                .unwrap()
        );
        assert!(
            !store
                .claim_approval(app.id, denied.id, t(12))
                .await
                .unwrap()
        );
        let failing = approval(app.id, 20);
        assert!(park(store, &failing, 10).await);
        store
            .decide_approval(app.id, failing.id, &decision(true, 21), &event(app.id, "a"))
            .await
            .unwrap();
        assert!(
            store
                .claim_approval(app.id, failing.id, t(22))
                .await
                .unwrap()
        );
        let failed = ApprovalFinish {
            executed: false,
            at: t(23),
            error: Some("grant revoked".into()),
            sealed_result: None,
        };
        assert!(
            store
                .finish_approval(
                    app.id,
                    failing.id,
                    &failed,
                    &event(app.id, "approval.failed")
                )
                .await
                .unwrap()
        );
        let read = store
            .get_approval(app.id, failing.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.status, ApprovalStatus::Failed);
        assert_eq!(read.execution_error.as_deref(), Some("grant revoked"));

        // Listing: newest first, by status.
        let all = store.list_approvals(app.id, None, 10).await.unwrap();
        assert_eq!(
            all.iter().map(|a| a.id).collect::<Vec<_>>(),
            vec![failing.id, denied.id, held.id]
        );
        let only = store
            .list_approvals(app.id, Some(ApprovalStatus::Denied), 10)
            .await
            .unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].id, denied.id);
        assert_eq!(
            store.list_approvals(app.id, None, 1).await.unwrap().len(),
            1
        );
    })
    .await;
}

/// Pending approvals past their expiry expire in a batch (one event each, in their own app's
/// chain) and never again; the per-app cap counts only pending ones; a stale execution fails.
#[tokio::test]
async fn approvals_expire_in_batches_and_are_capped_per_app() {
    use alter_core::approvals::ApprovalStatus;
    use alter_core::ports::ApprovalStore;
    on_every_engine(|f| async move {
        let store = &f.store;
        let app = new_app(store, "a").await;
        let other = new_app(store, "b").await;
        let early = approval(app.id, 0);
        let late = approval(app.id, 500);
        let elsewhere = approval(other.id, 0);
        for a in [&early, &late, &elsewhere] {
            assert!(
                park(store, a, 2).await
            );
        }
        // The cap: two pending already.
        let third = approval(app.id, 1);
        assert!(
            !park(store, &third, 2).await
        );
        assert!(store.get_approval(app.id, third.id).await.unwrap().is_none());

        let template = event(app.id, "approval.expired");
        assert!(store.expire_approvals(t(899), 10, &template).await.unwrap().is_empty());
        let mut expired = store.expire_approvals(t(900), 10, &template).await.unwrap();
        expired.sort_by_key(|(app, _)| app.to_string());
        let mut want = vec![(app.id, early.id), (other.id, elsewhere.id)];
        want.sort_by_key(|(app, _)| app.to_string());
        assert_eq!(expired, want);
        assert!(store.expire_approvals(t(900), 10, &template).await.unwrap().is_empty());
        assert_eq!(
            count(
                &f.raw,
                "SELECT COUNT(*) FROM audit_events WHERE app_id = $1 AND action = 'approval.expired'",
                other.id.to_string(),
            )
            .await,
            1
        );
        let read = store.get_approval(app.id, early.id).await.unwrap().unwrap();
        assert_eq!(read.status, ApprovalStatus::Expired);
        // Expired: it cannot be decided any more, and the cap has room again.
        assert!(
            !store
                .decide_approval(app.id, early.id, &decision(true, 10), &event(app.id, "x"))
                .await
                .unwrap()
        );
        assert!(
            park(store, &third, 2).await
        );

        // An execution claimed long ago and never finished fails, once.
        store
            .decide_approval(app.id, late.id, &decision(true, 501), &event(app.id, "a"))
            .await
            .unwrap();
        assert!(store.claim_approval(app.id, late.id, t(502)).await.unwrap());
        let failed_template = event(app.id, "approval.failed");
        assert!(
            store
                .fail_stale_executions(t(502), t(2000), "interrupted", &failed_template)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .fail_stale_executions(t(503), t(2000), "interrupted", &failed_template)
                .await
                .unwrap(),
            vec![(app.id, late.id)]
        );
        let read = store.get_approval(app.id, late.id).await.unwrap().unwrap();
        assert_eq!(read.status, ApprovalStatus::Failed);
        assert_eq!(read.execution_error.as_deref(), Some("interrupted"));
        assert!(!store.claim_approval(app.id, late.id, t(2001)).await.unwrap());
    })
    .await;
}

/// Many concurrent decisions and claims of one approval (two nodes, a double click): exactly
/// one of each wins.
#[tokio::test]
async fn concurrent_claims_of_an_approval_have_one_winner() {
    use alter_core::ports::ApprovalStore;
    on_every_engine(|f| async move {
        let store = &f.store;
        let app = new_app(store, "a").await;
        let held = approval(app.id, 0);
        assert!(park(store, &held, 10).await);
        let mut decisions = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let store = store.clone();
            decisions.spawn(async move {
                store
                    .decide_approval(app.id, held.id, &decision(true, 1), &event(app.id, "d"))
                    .await
                    .unwrap()
            });
        }
        let decided = decisions.join_all().await;
        assert_eq!(decided.iter().filter(|won| **won).count(), 1);
        let mut claims = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let store = store.clone();
            claims.spawn(async move { store.claim_approval(app.id, held.id, t(2)).await.unwrap() });
        }
        let won = claims.join_all().await;
        assert_eq!(won.iter().filter(|won| **won).count(), 1);
    })
    .await;
}

/// A release commits only under the rules it was decided with: once a rule of its app is
/// written, a release decided under the previous rules version is refused.
#[tokio::test]
async fn a_release_decided_under_older_rules_does_not_commit() {
    use alter_core::ports::RuleStore;
    use alter_core::rules::RuleTarget;
    on_every_engine(|Fixture { store, .. }| async move {
        let app = new_app(&store, "a").await.id;
        let signer = key(app, KeyType::Runtime, None);
        store
            .insert_key(&signer, &event(app, "key.created"))
            .await
            .unwrap();
        let root = root_grant(&store, app).await;
        store
            .insert_grant(&root, &event(app, "grant.created"))
            .await
            .unwrap();
        let release = |version: i64| {
            let store = store.clone();
            async move {
                let condition = ReleaseCondition {
                    grants: vec![root.id],
                    agents: vec![],
                    key: signer.id,
                    at: t(10),
                    rules: Some((app, version)),
                };
                store
                    .commit_release(event(app, "credential.released"), None, condition, None)
                    .await
                    .unwrap()
                    == ReleaseCommit::Committed
            }
        };
        assert!(release(0).await);
        store
            .insert_rule(
                &rule(app, RuleTarget::App, 1),
                &event(app, "policy.rule_added"),
            )
            .await
            .unwrap();
        assert!(
            !release(0).await,
            "decided under the rules before the new one"
        );
        assert!(release(1).await);
    })
    .await;
}

#[tokio::test]
async fn a_browser_session_is_found_by_its_hash_and_signed_out_once() {
    use alter_core::browser_sessions::{BrowserSession, BrowserSessionKind, BrowserSessionStore};
    on_every_engine(|f| async move {
        let store = &f.store;
        let app = new_app(store, "a").await;
        let wallet = BrowserSession {
            token_hash: [3; 32],
            kind: BrowserSessionKind::Wallet,
            app_id: Some(app.id),
            subject: UserId::new().to_string(),
            created_at: t(0),
            expires_at: t(3600),
            revoked_at: None,
        };
        let portal = BrowserSession {
            token_hash: [4; 32],
            kind: BrowserSessionKind::Portal,
            app_id: None,
            subject: "admin".into(),
            expires_at: t(10),
            ..wallet.clone()
        };
        store.insert_browser_session(&wallet).await.unwrap();
        store.insert_browser_session(&portal).await.unwrap();
        assert!(
            store.insert_browser_session(&wallet).await.is_err(),
            "one row per token"
        );
        assert_eq!(
            store.find_browser_session(&[3; 32]).await.unwrap().as_ref(),
            Some(&wallet)
        );
        assert_eq!(
            store.find_browser_session(&[4; 32]).await.unwrap().as_ref(),
            Some(&portal)
        );
        assert!(
            store
                .find_browser_session(&[5; 32])
                .await
                .unwrap()
                .is_none()
        );

        assert!(store.revoke_browser_session(&[3; 32], t(5)).await.unwrap());
        assert!(
            !store.revoke_browser_session(&[3; 32], t(6)).await.unwrap(),
            "signed out once"
        );
        let revoked = store.find_browser_session(&[3; 32]).await.unwrap().unwrap();
        assert_eq!(revoked.revoked_at, Some(t(5)));
        assert!(!revoked.is_live(t(6)));

        // Pruning forgets what ended before the cut, nothing else.
        assert_eq!(store.prune_browser_sessions(t(11)).await.unwrap(), 1);
        assert!(
            store
                .find_browser_session(&[4; 32])
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .find_browser_session(&[3; 32])
                .await
                .unwrap()
                .is_some()
        );
    })
    .await;
}

#[tokio::test]
async fn operator_accounts_their_throttle_and_the_dashboard_counts() {
    use alter_core::operators::{
        OperatorEvent, OperatorStore, PasswordHashText, StoredOperator, operator_action,
    };

    on_every_engine(|f| async move {
        let store = &f.store;
        let operator = alter_core::operators::Operator {
            id: alter_core::operators::OperatorId::new(),
            username: "alice".into(),
            created_at: t(0),
            password_changed_at: t(0),
        };
        let stored = StoredOperator {
            operator: operator.clone(),
            password_hash: PasswordHashText("$argon2id$v=19$stub".into()),
        };
        let added = OperatorEvent {
            id: alter_core::ids::EventId::new(),
            at: t(0),
            action: operator_action::ADDED.into(),
            decision: alter_core::audit::Decision::Allow,
            operator: "alice".into(),
            reason: Some("by test".into()),
            peer: None,
        };
        store.insert_operator(&stored, &added).await.unwrap();
        let again = StoredOperator {
            operator: alter_core::operators::Operator {
                id: alter_core::operators::OperatorId::new(),
                ..operator.clone()
            },
            ..stored.clone()
        };
        let duplicate = OperatorEvent {
            id: alter_core::ids::EventId::new(),
            ..added.clone()
        };
        assert!(matches!(
            store.insert_operator(&again, &duplicate).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.find_operator("alice").await.unwrap(), Some(stored));
        assert_eq!(
            store.get_operator(operator.id).await.unwrap(),
            Some(operator.clone())
        );
        assert_eq!(store.list_operators().await.unwrap(), vec![operator]);
        // One event: the refused duplicate left none.
        assert_eq!(store.list_operator_events(10).await.unwrap(), vec![added]);
        let tamper = f.raw.execute("DELETE FROM operator_events").await;
        assert!(tamper.is_err(), "operator events are append-only");

        // The throttle: the third attempt locks until t(60); none passes before.
        for _ in 0..3 {
            assert!(
                store
                    .claim_sign_in_attempt("bob", t(1), 3, t(60))
                    .await
                    .unwrap()
            );
        }
        assert!(
            !store
                .claim_sign_in_attempt("bob", t(59), 3, t(119))
                .await
                .unwrap()
        );
        assert!(
            store
                .claim_sign_in_attempt("bob", t(60), 3, t(120))
                .await
                .unwrap()
        );
        assert!(
            !store
                .claim_sign_in_attempt("bob", t(61), 3, t(121))
                .await
                .unwrap()
        );
        store.clear_sign_in_failures("bob").await.unwrap();
        assert!(
            store
                .claim_sign_in_attempt("bob", t(62), 3, t(122))
                .await
                .unwrap()
        );
        // Pruning forgets keys last tried (and unlocked) before its cut-off only.
        assert!(
            store
                .claim_sign_in_attempt("carol", t(200), 3, t(260))
                .await
                .unwrap()
        );
        assert_eq!(
            store.prune_sign_in_throttle(t(100)).await.unwrap(),
            1,
            "bob's"
        );
        assert!(
            store
                .claim_sign_in_attempt("carol", t(201), 3, t(261))
                .await
                .unwrap()
        );
        assert!(
            store
                .claim_sign_in_attempt("carol", t(202), 3, t(262))
                .await
                .unwrap()
        );
        assert_eq!(
            store.prune_sign_in_throttle(t(250)).await.unwrap(),
            0,
            "still locked"
        );
        assert!(
            !store
                .claim_sign_in_attempt("carol", t(250), 3, t(310))
                .await
                .unwrap()
        );
        assert_eq!(store.prune_sign_in_throttle(t(263)).await.unwrap(), 1);
        assert!(
            store
                .claim_sign_in_attempt("carol", t(264), 3, t(324))
                .await
                .unwrap()
        );

        // Dashboard counts: per hour and action, across apps, from `since` on.
        let (one, two) = (new_app(store, "one").await, new_app(store, "two").await);
        let hour = 3_600;
        for (app, action, at) in [
            (one.id, "credential.released", t(10)),
            (two.id, "credential.released", t(20)),
            (one.id, "credential.denied", t(hour + 5)),
            (two.id, "approval.requested", t(hour + 6)),
            (one.id, "key.minted", t(hour + 7)),
            (one.id, "credential.released", t(-hour)),
        ] {
            let mut e = event(app, action);
            e.at = at;
            store.append_event(&e).await.unwrap();
        }
        let mut counts = store
            .count_events_by_hour(
                t(0),
                &[
                    "credential.released",
                    "credential.denied",
                    "approval.requested",
                ],
            )
            .await
            .unwrap();
        counts.sort();
        let first = t(10).micros() / 3_600_000_000;
        let second = t(hour + 5).micros() / 3_600_000_000;
        let mut expected = vec![
            (first, "credential.released".to_owned(), 2),
            (second, "approval.requested".to_owned(), 1),
            (second, "credential.denied".to_owned(), 1),
        ];
        expected.sort();
        assert_eq!(counts, expected);
    })
    .await;
}

// The Wallet.

/// An extension moves a grant's end only while that end has not passed: an expired grant is
/// never revived, whatever end the caller read.
#[tokio::test]
async fn an_extension_never_revives_an_expired_grant() {
    use alter_core::wallet::WalletStore;
    on_every_engine(|f| async move {
        let store = &f.store;
        let app = new_app(store, "a").await;
        let root = Grant {
            expires_at: Some(t(100)),
            ..root_grant(store, app.id).await
        };
        store
            .insert_grant(&root, &event(app.id, "grant.created"))
            .await
            .unwrap();
        let end = |store: &SqlStore| {
            let store = store.clone();
            async move {
                store
                    .get_grant(app.id, root.id)
                    .await
                    .unwrap()
                    .unwrap()
                    .expires_at
            }
        };
        let extended = event(app.id, "grant.extended");
        // Expired at t(100): read at t(150), nothing changes and no event is written.
        assert!(
            !store
                .extend_grant(app.id, root.id, t(100), t(200), t(150), &extended)
                .await
                .unwrap()
        );
        assert!(
            !store
                .extend_grant(app.id, root.id, t(100), t(200), t(100), &extended)
                .await
                .unwrap(),
            "an end that is now has passed"
        );
        assert_eq!(end(store).await, Some(t(100)));
        // Still live at t(50): extended once; the stale end read before loses.
        assert!(
            store
                .extend_grant(app.id, root.id, t(100), t(200), t(50), &extended)
                .await
                .unwrap()
        );
        assert!(
            !store
                .extend_grant(app.id, root.id, t(100), t(300), t(50), &extended)
                .await
                .unwrap()
        );
        assert_eq!(end(store).await, Some(t(200)));
    })
    .await;
}

/// A user's activity is read newest first, only the asked actions, narrowed in the query by
/// decision and dates, and at most `limit`; another user's events never show.
#[tokio::test]
async fn a_users_activity_is_read_newest_first_and_filtered_in_the_query() {
    use alter_core::audit::{Decision, EventFilter};
    use alter_core::wallet::WalletStore;
    on_every_engine(|f| async move {
        let store = &f.store;
        let app = new_app(store, "a").await;
        let (alice, bob) = (UserId::new(), UserId::new());
        let by = |user: UserId| Actor {
            app_user_id: Some(user.to_string()),
            ..Actor::operator()
        };
        let target = || Target {
            kind: "grant".into(),
            id: GrantId::new().to_string(),
        };
        let mut events = Vec::new();
        for (n, action) in [
            "credential.released",
            "grant.created",
            "credential.released",
            "credential.released",
        ]
        .into_iter()
        .enumerate()
        {
            let at = t(10 * (n as i64 + 1));
            events.push(AuditEvent::allow(app.id, at, action, by(alice), target()));
        }
        events.push(AuditEvent::deny(
            app.id,
            t(50),
            "credential.denied",
            by(alice),
            "agent_not_allowlisted",
        ));
        events.push(AuditEvent::allow(
            app.id,
            t(60),
            "credential.released",
            by(bob),
            target(),
        ));
        for e in &events {
            store.append_event(e).await.unwrap();
        }
        let calls = ["credential.released", "credential.denied"];
        let read = |filter: EventFilter, limit: i64| {
            let store = store.clone();
            async move {
                store
                    .user_activity(app.id, alice, &calls, &filter, limit)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| (e.event.at, e.event.action))
                    .collect::<Vec<_>>()
            }
        };
        let released = "credential.released".to_owned();
        assert_eq!(
            read(EventFilter::default(), 100).await,
            vec![
                (t(50), "credential.denied".to_owned()),
                (t(40), released.clone()),
                (t(30), released.clone()),
                (t(10), released.clone()),
            ]
        );
        assert_eq!(
            read(EventFilter::default(), 2).await,
            vec![
                (t(50), "credential.denied".to_owned()),
                (t(40), released.clone())
            ],
            "the newest, not the oldest"
        );
        let allowed_between = EventFilter {
            decision: Some(Decision::Allow),
            since: Some(t(20)),
            until: Some(t(40)),
            ..EventFilter::default()
        };
        assert_eq!(
            read(allowed_between, 100).await,
            vec![(t(30), released.clone())]
        );
        assert!(
            store
                .user_activity(app.id, alice, &[], &EventFilter::default(), 100)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

/// Only an app's pending, unexpired sign-ins count against its Wallet sign-in cap.
#[tokio::test]
async fn pending_sign_ins_are_counted_per_app() {
    use alter_core::wallet::WalletStore;
    on_every_engine(|f| async move {
        let store = &f.store;
        let app = new_app(store, "a").await;
        let other = new_app(store, "b").await;
        store
            .insert_auth_session(&auth_session(app.id, 1))
            .await
            .unwrap();
        store
            .insert_auth_session(&AuthSession {
                expires_at: t(900),
                ..auth_session(app.id, 2)
            })
            .await
            .unwrap();
        store
            .insert_auth_session(&AuthSession {
                status: AuthSessionStatus::Error,
                expires_at: t(900),
                ..auth_session(app.id, 3)
            })
            .await
            .unwrap();
        store
            .insert_auth_session(&auth_session(other.id, 4))
            .await
            .unwrap();
        assert_eq!(store.pending_sign_ins(app.id, t(1)).await.unwrap(), 2);
        assert_eq!(store.pending_sign_ins(app.id, t(600)).await.unwrap(), 1);
        assert_eq!(store.pending_sign_ins(other.id, t(1)).await.unwrap(), 1);
    })
    .await;
}

#[tokio::test]
async fn refused_sign_ins_are_recorded_once_an_interval_with_their_count() {
    use alter_core::operators::OperatorStore;

    on_every_engine(|f| async move {
        let store = &f.store;
        // The first refusal of a name is recorded; those within the interval wait, counted.
        assert_eq!(
            store
                .count_sign_in_failure("bob", t(100), t(40))
                .await
                .unwrap(),
            Some(1)
        );
        for at in [101, 130, 159] {
            assert_eq!(
                store
                    .count_sign_in_failure("bob", t(at), t(at - 60))
                    .await
                    .unwrap(),
                None,
                "at {at}"
            );
        }
        // Another name has its own interval.
        assert_eq!(
            store
                .count_sign_in_failure("carol", t(120), t(60))
                .await
                .unwrap(),
            Some(1)
        );
        // An interval after the last recorded one, the next is recorded with the three it
        // stood for, and a new interval starts.
        assert_eq!(
            store
                .count_sign_in_failure("bob", t(160), t(100))
                .await
                .unwrap(),
            Some(4)
        );
        assert_eq!(
            store
                .count_sign_in_failure("bob", t(161), t(101))
                .await
                .unwrap(),
            None
        );

        // Concurrent refusals: one of them is recorded, every one is counted.
        let mut refusals = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let store = store.clone();
            refusals.spawn(async move {
                store
                    .count_sign_in_failure("dave", t(500), t(440))
                    .await
                    .unwrap()
            });
        }
        let recorded: Vec<i64> = refusals.join_all().await.into_iter().flatten().collect();
        assert_eq!(recorded, [1]);
        assert_eq!(
            store
                .count_sign_in_failure("dave", t(560), t(500))
                .await
                .unwrap(),
            Some(8)
        );
    })
    .await;
}

/// A job's lease has one holder at a time: of many nodes asking at once one takes it; its
/// holder renews it; others take it only once it ran out or was given up.
#[tokio::test]
async fn a_job_lease_has_one_holder_at_a_time() {
    use alter_core::ports::LeaseStore;
    on_every_engine(|f| async move {
        let store = &f.store;
        let mut asks = tokio::task::JoinSet::new();
        for node in 0..8 {
            let store = store.clone();
            asks.spawn(async move {
                let holder = format!("node-{node}");
                let took = store
                    .take_lease("sweep", &holder, t(0), t(15))
                    .await
                    .unwrap();
                took.then_some(holder)
            });
        }
        let holders: Vec<String> = asks.join_all().await.into_iter().flatten().collect();
        assert_eq!(holders.len(), 1, "{holders:?}");
        let holder = &holders[0];
        let other = if holder == "node-0" {
            "node-1"
        } else {
            "node-0"
        };
        // Another job's lease is its own.
        assert!(store.take_lease("prune", other, t(0), t(15)).await.unwrap());
        // The holder renews; the others wait for the lease to run out.
        assert!(
            store
                .take_lease("sweep", holder, t(5), t(20))
                .await
                .unwrap()
        );
        assert!(
            !store
                .take_lease("sweep", other, t(19), t(34))
                .await
                .unwrap()
        );
        assert!(
            store
                .take_lease("sweep", other, t(20), t(35))
                .await
                .unwrap()
        );
        assert!(
            !store
                .take_lease("sweep", holder, t(21), t(36))
                .await
                .unwrap()
        );
        // Given up, it is free at once; giving up another's lease changes nothing.
        store.release_lease("sweep", holder).await.unwrap();
        assert!(
            !store
                .take_lease("sweep", holder, t(22), t(37))
                .await
                .unwrap()
        );
        store.release_lease("sweep", other).await.unwrap();
        assert!(
            store
                .take_lease("sweep", holder, t(22), t(37))
                .await
                .unwrap()
        );
    })
    .await;
}

/// Spans are stored once per (app, trace, span): a resent one is absorbed and not counted,
/// another app's span of the same ids is its own; they are read by trace and pruned after
/// their retention.
#[tokio::test]
async fn spans_are_stored_once_per_app_trace_and_span() {
    use alter_core::ports::SpanStore;
    use alter_core::spans::Span;
    on_every_engine(|f| async move {
        let store = &f.store;
        let a = new_app(store, "a").await.id;
        let b = new_app(store, "b").await.id;
        let span = |app: AppId, id: &str, at: i64| Span {
            app_id: app,
            trace_id: "t1".into(),
            span_id: id.into(),
            parent_span_id: (id != "s1").then(|| "s1".into()),
            name: format!("step {id}"),
            start_time: t(at),
            end_time: Some(t(at + 1)),
            attributes: [("k".to_owned(), "v".to_owned())].into(),
            key_id: KeyId::new(),
            agent_id: None,
            received_at: t(0),
            expires_at: t(100),
        };
        let first = [span(a, "s2", 2), span(a, "s1", 1), span(a, "s1", 1)];
        assert_eq!(store.insert_spans(&first).await.unwrap(), 2);
        assert_eq!(store.insert_spans(&first[..2]).await.unwrap(), 0);
        assert_eq!(store.insert_spans(&[span(b, "s1", 1)]).await.unwrap(), 1);
        let read = store.trace_spans(a, "t1", 10).await.unwrap();
        assert_eq!(read, vec![first[1].clone(), first[0].clone()]);
        assert_eq!(store.trace_spans(b, "t1", 10).await.unwrap().len(), 1);
        assert_eq!(store.prune_spans(t(100)).await.unwrap(), 0);
        assert_eq!(store.prune_spans(t(101)).await.unwrap(), 3);
    })
    .await;
}

/// IdP event receipts go by age (the domain prunes them only once replays are stale anyway).
#[tokio::test]
async fn idp_event_receipts_are_pruned_by_age() {
    use alter_core::idp_events::IdpEventStore;
    on_every_engine(|fx| async move {
        let store = &fx.store;
        let app = new_app(store, "idp").await;
        for (id, at) in [("msg_1", 10), ("msg_2", 20)] {
            assert!(
                store
                    .record_idp_event(
                        app.id,
                        id,
                        "user.deactivated",
                        t(at),
                        &event(app.id, "idp.event_received")
                    )
                    .await
                    .unwrap()
            );
        }
        assert_eq!(store.prune_idp_event_receipts(t(10)).await.unwrap(), 0);
        assert_eq!(store.prune_idp_event_receipts(t(11)).await.unwrap(), 1);
        assert!(!store.idp_event_received(app.id, "msg_1").await.unwrap());
        assert!(store.idp_event_received(app.id, "msg_2").await.unwrap());
    })
    .await;
}

/// Webhooks: endpoints stay inside their app; the cursor moves only from where it was, with
/// the deliveries it adds (each once); attempts are recorded only on the attempt they follow;
/// a replay starts a delivery over; removing an endpoint removes its deliveries.
#[tokio::test]
async fn webhook_cursors_deliveries_and_attempts() {
    use alter_core::ids::WebhookId;
    use alter_core::webhooks::{
        AttemptRecord, Delivery, DeliveryStatus, WebhookEndpoint, WebhookStore,
    };
    on_every_engine(|fx| async move {
        let store = &fx.store;
        let app = new_app(store, "hooks").await;
        let other = new_app(store, "other").await;
        let endpoint = WebhookEndpoint {
            id: WebhookId::new(),
            app_id: app.id,
            url: "https://hooks.example.com/a".into(),
            events: vec!["*".into()],
            description: None,
            sealed_secret: vec![1, 2, 3],
            secret_version: 1,
            previous: None,
            cursor_seq: 1,
            created_at: t(0),
            rotated_at: None,
            url_bound_from: Some(1),
        };
        store
            .insert_webhook(&endpoint, &event(app.id, "webhook.created"))
            .await
            .unwrap();
        assert_eq!(
            store.get_webhook(app.id, endpoint.id).await.unwrap(),
            Some(endpoint.clone())
        );
        assert_eq!(
            store.get_webhook(other.id, endpoint.id).await.unwrap(),
            None
        );
        for _ in 0..3 {
            store
                .append_event(&event(app.id, "key.minted"))
                .await
                .unwrap();
        }
        // seq 1 app.created, 2 webhook.created, 3..=5 key.minted.
        let scanned = store.scan_events(app.id, 1, 100).await.unwrap();
        assert_eq!(
            scanned.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [2, 3, 4, 5]
        );
        let deliveries: Vec<Delivery> = scanned
            .iter()
            .map(|e| Delivery {
                endpoint_id: endpoint.id,
                event_id: e.id.clone(),
                app_id: app.id,
                seq: e.seq,
                event_type: e.action.clone(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                next_attempt_at: t(10),
                last_attempt_at: None,
                last_status: None,
                last_error: None,
                created_at: t(10),
                delivered_at: None,
            })
            .collect();
        assert!(
            store
                .enqueue_deliveries(endpoint.id, 1, 5, &deliveries)
                .await
                .unwrap()
        );
        // A second scanner from the old cursor changes nothing.
        assert!(
            !store
                .enqueue_deliveries(endpoint.id, 1, 5, &deliveries)
                .await
                .unwrap()
        );
        assert_eq!(
            store
                .get_webhook(app.id, endpoint.id)
                .await
                .unwrap()
                .unwrap()
                .cursor_seq,
            5
        );
        assert!(store.due_deliveries(t(9), 100).await.unwrap().is_empty());
        // One due delivery per endpoint at a time, its oldest, so a slow receiver holds up
        // only its own.
        let due = store.due_deliveries(t(10), 100).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].seq, 2);
        let first = &due[0];
        assert!(
            store
                .event_body(app.id, first.seq)
                .await
                .unwrap()
                .unwrap()
                .contains(&first.event_id)
        );
        let failed = AttemptRecord {
            status: DeliveryStatus::Pending,
            attempts: 1,
            next_attempt_at: t(20),
            at: t(10),
            http_status: Some(500),
            error: Some("the receiver answered HTTP 500".into()),
        };
        assert!(
            store
                .record_attempt(endpoint.id, &first.event_id, 0, &failed)
                .await
                .unwrap()
        );
        // Recorded once: the same attempt again (another node's) is refused.
        assert!(
            !store
                .record_attempt(endpoint.id, &first.event_id, 0, &failed)
                .await
                .unwrap()
        );
        let delivered = AttemptRecord {
            status: DeliveryStatus::Delivered,
            attempts: 2,
            next_attempt_at: t(30),
            at: t(20),
            http_status: Some(200),
            error: None,
        };
        assert!(
            store
                .record_attempt(endpoint.id, &first.event_id, 1, &delivered)
                .await
                .unwrap()
        );
        let done = store
            .list_deliveries(app.id, endpoint.id, Some(DeliveryStatus::Delivered), 10)
            .await
            .unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(
            (done[0].attempts, done[0].last_status, done[0].delivered_at),
            (2, Some(200), Some(t(20)))
        );
        assert_eq!(
            store
                .list_deliveries(app.id, endpoint.id, None, 10)
                .await
                .unwrap()
                .len(),
            4
        );
        assert!(
            store
                .list_deliveries(other.id, endpoint.id, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let replayed = store
            .replay_delivery(
                app.id,
                endpoint.id,
                &first.event_id,
                t(40),
                &event(app.id, "webhook.replayed"),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (replayed.status, replayed.attempts, replayed.next_attempt_at),
            (DeliveryStatus::Pending, 0, t(40))
        );
        assert!(
            store
                .replay_delivery(
                    other.id,
                    endpoint.id,
                    &first.event_id,
                    t(40),
                    &event(other.id, "webhook.replayed")
                )
                .await
                .unwrap()
                .is_none()
        );
        // Retention: settled deliveries (delivered, given up) go once settled long enough;
        // pending ones stay, and a pruned one is gone for a replay too.
        let settled = |status, at, http_status| AttemptRecord {
            status,
            attempts: 1,
            next_attempt_at: t(at),
            at: t(at),
            http_status: Some(http_status),
            error: None,
        };
        assert!(
            store
                .record_attempt(
                    endpoint.id,
                    &first.event_id,
                    0,
                    &settled(DeliveryStatus::Delivered, 50, 200)
                )
                .await
                .unwrap()
        );
        assert!(
            store
                .record_attempt(
                    endpoint.id,
                    &deliveries[1].event_id,
                    0,
                    &settled(DeliveryStatus::Failed, 60, 500)
                )
                .await
                .unwrap()
        );
        assert_eq!(store.prune_deliveries(t(50)).await.unwrap(), 0);
        assert_eq!(store.prune_deliveries(t(61)).await.unwrap(), 2);
        let left = store
            .list_deliveries(app.id, endpoint.id, None, 10)
            .await
            .unwrap();
        assert_eq!(left.len(), 2);
        assert!(left.iter().all(|d| d.status == DeliveryStatus::Pending));
        assert!(
            store
                .replay_delivery(
                    app.id,
                    endpoint.id,
                    &first.event_id,
                    t(70),
                    &event(app.id, "webhook.replayed")
                )
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            !store
                .delete_webhook(other.id, endpoint.id, &event(other.id, "webhook.removed"))
                .await
                .unwrap()
        );
        assert!(
            store
                .delete_webhook(app.id, endpoint.id, &event(app.id, "webhook.removed"))
                .await
                .unwrap()
        );
        assert!(store.due_deliveries(t(100), 100).await.unwrap().is_empty());

        // The re-wrap reads each secret's revision as the domain sealed it: bound to the URL
        // from `url_bound_from` on, the version alone before (endpoints added earlier, and
        // the previous secret of their first rotation).
        use alter_core::ports::{KeyringStore, SealedColumn};
        use alter_core::webhooks::{PreviousSecret, secret_revision};
        let legacy = WebhookEndpoint {
            id: WebhookId::new(),
            url: "https://hooks.example.com/b?c=d".into(),
            url_bound_from: None,
            ..endpoint.clone()
        };
        store
            .insert_webhook(&legacy, &event(app.id, "webhook.created"))
            .await
            .unwrap();
        let legacy_key = legacy.id.to_string();
        let revision = |column| {
            let key = legacy_key.clone();
            async move {
                store
                    .sealed_page(column, "", 100)
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|r| r.record_id == key)
                    .and_then(|r| r.revision)
            }
        };
        assert_eq!(
            revision(SealedColumn::WebhookSecret).await.as_deref(),
            Some("1")
        );
        let rotated = WebhookEndpoint {
            sealed_secret: vec![4, 5, 6],
            secret_version: 2,
            previous: Some(PreviousSecret {
                sealed: legacy.sealed_secret.clone(),
                version: 1,
                until: t(200),
            }),
            url_bound_from: Some(2),
            ..legacy.clone()
        };
        assert!(
            store
                .rotate_webhook_secret(&rotated, 1, &event(app.id, "webhook.secret_rotated"))
                .await
                .unwrap()
        );
        assert_eq!(
            store.get_webhook(app.id, legacy.id).await.unwrap(),
            Some(rotated.clone())
        );
        assert_eq!(
            revision(SealedColumn::WebhookSecret).await,
            Some(secret_revision(2, &legacy.url, Some(2)))
        );
        assert_eq!(
            secret_revision(2, &legacy.url, Some(2)),
            "2 https://hooks.example.com/b?c=d"
        );
        assert_eq!(
            revision(SealedColumn::WebhookPreviousSecret)
                .await
                .as_deref(),
            Some("1")
        );
        // A previous secret past its grace is forgotten.
        assert_eq!(
            store.clear_expired_previous_secrets(t(199)).await.unwrap(),
            0
        );
        assert_eq!(
            store.clear_expired_previous_secrets(t(200)).await.unwrap(),
            1
        );
        assert_eq!(
            store
                .get_webhook(app.id, legacy.id)
                .await
                .unwrap()
                .unwrap()
                .previous,
            None
        );
        assert!(
            store
                .delete_webhook(app.id, legacy.id, &event(app.id, "webhook.removed"))
                .await
                .unwrap()
        );
        assert!(store.all_webhooks().await.unwrap().is_empty());
    })
    .await;
}
