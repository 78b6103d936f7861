//! Ports: what the domain needs from the outside world. Storage is split by capability; every
//! method that changes state takes the audit event(s) describing the change and writes them in
//! the same transaction.

use async_trait::async_trait;

pub use alter_crypto::WrappedKek;

use crate::apps::App;
use crate::audit::AuditEvent;
use crate::ids::{AppId, KeyId};
use crate::keys::ApiKey;
use crate::time::Timestamp;

/// Why storage failed. Messages are for logs, never for clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or timed out.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was violated (names the rule).
    #[error("conflict on {0}")]
    Conflict(String),
    /// Stored data is not what this version expects.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Anything else.
    #[error("database error: {0}")]
    Other(String),
}

/// Shorthand for storage results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Key-encryption keys, wrapped by the master key.
#[async_trait]
pub trait KeyringStore: Send + Sync {
    /// Every stored KEK.
    async fn load_keks(&self) -> StoreResult<Vec<WrappedKek>>;
    /// Stores a new KEK; fails with [`StoreError::Conflict`] if the version exists.
    async fn insert_kek(&self, kek: &WrappedKek, at: Timestamp) -> StoreResult<()>;
}

/// Apps (tenants).
#[async_trait]
pub trait AppStore: Send + Sync {
    /// Creates an app and starts its audit chain with `event`.
    async fn insert_app(&self, app: &App, event: &AuditEvent) -> StoreResult<()>;
    /// One app.
    async fn get_app(&self, id: AppId) -> StoreResult<Option<App>>;
    /// Every app, oldest first.
    async fn list_apps(&self) -> StoreResult<Vec<App>>;
}

/// API keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key.
    async fn insert_key(&self, key: &ApiKey, event: &AuditEvent) -> StoreResult<()>;
    /// The key with this lookup hash, in any state.
    async fn find_key_by_hash(&self, lookup_hash: &[u8; 32]) -> StoreResult<Option<ApiKey>>;
    /// One key of an app.
    async fn get_key(&self, app: AppId, id: KeyId) -> StoreResult<Option<ApiKey>>;
    /// Every key of an app, oldest first.
    async fn list_keys(&self, app: AppId) -> StoreResult<Vec<ApiKey>>;
    /// Revokes the key and every key derived from it (transitively) that is not revoked yet;
    /// returns the ids revoked now (empty if the key was already revoked).
    async fn revoke_key(
        &self,
        app: AppId,
        id: KeyId,
        at: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<Vec<KeyId>>;
    /// Marks `old` deprecated with an end of overlap and stores its successor, atomically.
    /// Returns false (and changes nothing) if `old` is revoked or already rotated.
    async fn rotate_key(
        &self,
        app: AppId,
        old: KeyId,
        at: Timestamp,
        grace_until: Timestamp,
        successor: &ApiKey,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Records a use of the key if the stored `last_used_at` is older than `stale_before`.
    async fn touch_key(&self, id: KeyId, at: Timestamp, stale_before: Timestamp)
    -> StoreResult<()>;
}

/// Request nonces, kept in the database so replay protection holds across server nodes.
#[async_trait]
pub trait NonceStore: Send + Sync {
    /// Records the nonce; false if this key used it before.
    async fn claim_nonce(&self, key: KeyId, nonce: &str, at: Timestamp) -> StoreResult<bool>;
    /// Forgets nonces seen before `before`; returns how many.
    async fn prune_nonces(&self, before: Timestamp) -> StoreResult<u64>;
}

/// Readiness of the database.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Ok if the database answers and every migration of this version is applied.
    async fn ready(&self) -> StoreResult<()>;
}

/// Everything the services need from storage.
pub trait Store: KeyringStore + AppStore + KeyStore + NonceStore + HealthStore {}

impl<T: KeyringStore + AppStore + KeyStore + NonceStore + HealthStore> Store for T {}
