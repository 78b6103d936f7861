//! The storage conformance suite: every test runs on SQLite and, when
//! `ALTER_TEST_DATABASE_URL` is set, on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::time::Duration;

use alter_core::apps::App;
use alter_core::audit::{Actor, AuditEvent, GENESIS_HASH, Target, chain_hash};
use alter_core::ids::{AppId, KeyId};
use alter_core::keys::{ApiKey, KeyType};
use alter_core::ports::{
    AppStore, AuditStore, HealthStore, KeyStore, KeyringStore, NonceStore, StoreError, WrappedKek,
};
use alter_core::scope::{Scope, ScopeSet};
use alter_core::time::Timestamp;
use alter_store::scratch::ScratchDatabase;
use alter_store::{Engine, SqlStore, StoreOptions};
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
        let store = SqlStore::connect(db.url(), &options).await.unwrap();
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

/// Reads an app's chain back and checks every link.
async fn assert_chain_intact(raw: &AnyPool, app: AppId, expected_len: i64) {
    let rows = sqlx::query(
        "SELECT seq, body, prev_hash, hash FROM audit_events WHERE app_id = $1 ORDER BY seq",
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
        let expected = chain_hash(&prev, seq, &body);
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

#[tokio::test]
async fn keks_are_stored_once_per_version() {
    on_every_engine(|Fixture { store, .. }| async move {
        assert!(store.load_keks().await.unwrap().is_empty());
        let kek = WrappedKek {
            version: 1,
            wrapped: vec![9; 60],
        };
        store.insert_kek(&kek, t(0)).await.unwrap();
        assert!(matches!(
            store.insert_kek(&kek, t(1)).await,
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
        assert!(!store.claim_nonce(a, "n1", t(1)).await.unwrap());
        assert!(store.claim_nonce(b, "n1", t(1)).await.unwrap());
        assert!(store.claim_nonce(a, "n2", t(100)).await.unwrap());
        assert_eq!(store.prune_nonces(t(50)).await.unwrap(), 2);
        assert!(store.claim_nonce(a, "n1", t(101)).await.unwrap());
        assert!(!store.claim_nonce(a, "n2", t(101)).await.unwrap());
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
