//! [`Vault`]: the services of Alter over one store, keyring and clock. Each resource module
//! (`apps`, `keys`, `caller`, …) adds its operations to it.

use std::sync::{Arc, PoisonError, RwLock};

use alter_crypto::{CryptoError, Kek, Keyring, MacRoot, MasterKey, WrappedKek, Zeroizing, ct_eq};
use async_trait::async_trait;

use crate::audit::{ChainKey, CheckpointKey};
use crate::caller::VerifiedKeys;
use crate::error::Result;
use crate::metrics::Counters;
use crate::oauth::OAuthUpstream;
use crate::ports::{
    Authorizer, Clock, KeyHolder, KeyHolderError, KeyringStore, Store, StoreError, StoredMacRoot,
    TokenVerifier,
};
use crate::proxy::Forwarder;
use crate::release::BuiltinRules;
use crate::release::policy::RulesCache;
use crate::rules::RuleEngine;
use crate::time::Timestamp;

/// Tunables of the services.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Accepted distance between a request's timestamp and now.
    pub timestamp_window_seconds: i64,
    /// Longest lifetime of a derived key.
    pub max_derived_key_ttl_seconds: i64,
    /// How old (since its token's `iat`) a user's stored group membership may be and still
    /// count without a fresh token (a group delegation used by an agent).
    pub group_membership_max_age_seconds: i64,
    /// An OAuth access token is refreshed when it expires within this many seconds.
    pub refresh_buffer_seconds: i64,
    /// How long a refresh lease lasts: a refresher that died holds it no longer.
    pub refresh_lease_seconds: i64,
    /// How long a release waits for another caller's refresh before answering
    /// `token_refresh_in_progress`.
    pub refresh_wait_ms: u64,
    /// The most of a provider's answer a proxied call reads and returns; the rest is cut
    /// (`body_truncated`).
    pub proxy_max_response_bytes: usize,
    /// How far ahead of now an end user may extend a grant's end in the Wallet (never past
    /// the grant's own `max_ttl_seconds` or its secret's cap).
    pub max_grant_extension_seconds: i64,
    /// Whether webhook endpoints may be `http://` URLs to any host (not only loopback).
    pub webhooks_allow_http: bool,
    /// Audit events older than this many days are removed by the prune job, behind a signed
    /// anchor ([`Vault::prune_audit_events`]); `None` keeps them for ever.
    pub audit_retention_days: Option<i64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timestamp_window_seconds: 300,
            max_derived_key_ttl_seconds: 24 * 3600,
            group_membership_max_age_seconds: 24 * 3600,
            refresh_buffer_seconds: 60,
            refresh_lease_seconds: 30,
            refresh_wait_ms: 5_000,
            proxy_max_response_bytes: 10 * 1024 * 1024,
            max_grant_extension_seconds: 90 * 24 * 3600,
            webhooks_allow_http: false,
            audit_retention_days: None,
        }
    }
}

/// The domain services.
#[derive(Clone)]
pub struct Vault {
    store: Arc<dyn Store>,
    /// Replaced whole when a new KEK version is loaded ([`Vault::refresh_keyring`]).
    keyring: Arc<RwLock<Arc<Keyring>>>,
    key_holder: Arc<dyn KeyHolder>,
    chain_key: ChainKey,
    checkpoint_key: CheckpointKey,
    /// Signs retention anchors (purpose `audit-anchor/v1`).
    anchor_key: CheckpointKey,
    clock: Arc<dyn Clock>,
    verifier: Arc<dyn TokenVerifier>,
    authorizer: Arc<dyn Authorizer>,
    rules: Arc<dyn RuleEngine>,
    oauth: Arc<dyn OAuthUpstream>,
    forwarder: Arc<dyn Forwarder>,
    rules_cache: Arc<RulesCache>,
    verified_keys: Arc<VerifiedKeys>,
    counters: Arc<Counters>,
    settings: Settings,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("keyring", &self.keyring)
            .field("clock", &self.clock)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Opens the vault: unwraps every stored key-encryption key and the MAC root with
    /// `holder` (creating them on a new database). A holder whose key does not open them fails
    /// with [`KeyHolderError::NotThisDatabase`].
    #[allow(
        clippy::too_many_arguments,
        reason = "every port is injected here, once"
    )]
    pub async fn open(
        store: Arc<dyn Store>,
        holder: Arc<dyn KeyHolder>,
        clock: Arc<dyn Clock>,
        verifier: Arc<dyn TokenVerifier>,
        oauth: Arc<dyn OAuthUpstream>,
        rules: Arc<dyn RuleEngine>,
        forwarder: Arc<dyn Forwarder>,
        settings: Settings,
    ) -> Result<Vault> {
        let keys = open_keys(store.as_ref(), holder.as_ref(), clock.now()).await?;
        let vault = Vault {
            store,
            keyring: Arc::new(RwLock::new(Arc::new(keys.keyring))),
            key_holder: holder,
            chain_key: ChainKey::from_root(&keys.mac_root),
            checkpoint_key: CheckpointKey::from_root(&keys.mac_root),
            anchor_key: CheckpointKey::anchors_from_root(&keys.mac_root),
            clock,
            verifier,
            authorizer: Arc::new(BuiltinRules),
            rules,
            oauth,
            forwarder,
            rules_cache: Arc::default(),
            verified_keys: Arc::default(),
            counters: Arc::default(),
            settings,
        };
        // Another node may be creating the same partitions: a failure here is retried by the
        // prune job, and the DEFAULT partitions take the rows meanwhile.
        if let Err(e) = vault.maintain_time_partitions().await {
            tracing::warn!(error = %e, "creating time partitions ahead failed");
        }
        vault.key_legacy_audit_chains().await?;
        Ok(vault)
    }

    pub(crate) fn rules_cache(&self) -> &RulesCache {
        &self.rules_cache
    }

    pub(crate) fn verified_keys(&self) -> &VerifiedKeys {
        &self.verified_keys
    }

    /// What this node counted of releases, denials, holds and refreshes (for metrics).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The current instant of the injected clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Ok if the database answers and every migration of this version is applied.
    pub async fn ready(&self) -> Result<()> {
        Ok(self.store.ready().await?)
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub(crate) fn authorizer(&self) -> &dyn Authorizer {
        self.authorizer.as_ref()
    }

    /// The policy engine.
    pub(crate) fn rules(&self) -> &dyn RuleEngine {
        self.rules.as_ref()
    }

    pub(crate) fn oauth(&self) -> &dyn OAuthUpstream {
        self.oauth.as_ref()
    }

    /// Sends proxied calls.
    pub(crate) fn forwarder(&self) -> &dyn Forwarder {
        self.forwarder.as_ref()
    }

    pub(crate) fn verifier(&self) -> &dyn TokenVerifier {
        self.verifier.as_ref()
    }

    /// The KEKs this node holds now.
    pub(crate) fn keyring(&self) -> Arc<Keyring> {
        self.keyring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn replace_keyring(&self, keyring: Keyring) {
        *self.keyring.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keyring);
    }

    /// The KEK version this node seals new values under.
    pub fn kek_version(&self) -> u32 {
        self.keyring().current_version()
    }

    /// The KEK version a value met lacked, if this node met one since its keyring loaded.
    pub fn keyring_missing_version(&self) -> Option<u32> {
        self.keyring().missing_version()
    }

    pub(crate) fn key_holder(&self) -> &dyn KeyHolder {
        self.key_holder.as_ref()
    }

    pub(crate) fn chain_key(&self) -> &ChainKey {
        &self.chain_key
    }

    pub(crate) fn checkpoint_key(&self) -> &CheckpointKey {
        &self.checkpoint_key
    }

    pub(crate) fn anchor_key(&self) -> &CheckpointKey {
        &self.anchor_key
    }
}

/// A database's keys, unwrapped.
#[derive(Debug)]
pub struct OpenedKeys {
    /// Every KEK.
    pub keyring: Keyring,
    /// The root of the audit chain's and checkpoints' MAC keys.
    pub mac_root: MacRoot,
}

/// Unwraps the database's KEKs and MAC root with `holder`, creating them first on a new
/// database (a holder without a legacy root, such as Transit, stores a random root wrapped).
pub async fn open_keys(
    store: &dyn KeyringStore,
    holder: &dyn KeyHolder,
    now: Timestamp,
) -> Result<OpenedKeys> {
    if store.load_keks().await?.is_empty() {
        if holder.legacy_mac_root().is_none() {
            let root = MacRoot::generate()?;
            let stored = StoredMacRoot {
                wrapped: holder.wrap(MacRoot::CONTEXT, root.expose_bytes()).await?,
                key_holder: holder.identity(),
            };
            match store.insert_mac_root(&stored, now).await {
                // Another node created it at the same moment: use theirs.
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let material = Kek::new_material()?;
        let first = WrappedKek {
            version: 1,
            wrapped: holder.wrap(&Kek::context(1), material.as_slice()).await?,
        };
        match store.insert_kek(&first, None, now).await {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let unwrapped = unwrap_keys(store, holder).await?;
    let keks = unwrapped
        .keks
        .iter()
        .map(|(stored, material)| Kek::from_material(stored.version, material))
        .collect::<std::result::Result<Vec<_>, CryptoError>>()?;
    Ok(OpenedKeys {
        keyring: Keyring::new(keks)?,
        mac_root: unwrapped.mac_root,
    })
}

/// What a rotation re-wrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// KEK versions re-wrapped.
    pub kek_versions: Vec<u32>,
    /// The new holder's identity.
    pub key_holder: String,
}

/// Re-wraps every KEK and the MAC root under `to`, in one transaction, after checking that
/// `to` unwraps each of them again to the same bytes. The KEKs themselves (and so every data
/// key under them) are unchanged, so running nodes, which hold them unwrapped, keep serving;
/// afterwards only `to` opens the database.
pub async fn rotate_key_holder(
    store: &dyn KeyringStore,
    from: &dyn KeyHolder,
    to: &dyn KeyHolder,
    now: Timestamp,
) -> Result<Rotated> {
    let current = unwrap_keys(store, from).await?;
    if current.keks.is_empty() {
        return Err(KeyHolderError::NotThisDatabase(
            "this database has no keys yet: start `alter server` on it once before rotating".into(),
        )
        .into());
    }
    let mut keks = Vec::with_capacity(current.keks.len());
    for (stored, material) in &current.keks {
        let context = Kek::context(stored.version);
        keks.push(WrappedKek {
            version: stored.version,
            wrapped: wrap_checked(to, &context, material).await?,
        });
    }
    let root = StoredMacRoot {
        wrapped: wrap_checked(to, MacRoot::CONTEXT, current.mac_root.expose_bytes()).await?,
        key_holder: to.identity(),
    };
    let expected: Vec<WrappedKek> = current.keks.iter().map(|(k, _)| k.clone()).collect();
    store
        .rewrap_keys(
            &expected,
            current.stored_root.as_ref().map(|r| r.wrapped.as_slice()),
            &keks,
            &root,
            now,
        )
        .await?;
    Ok(Rotated {
        kek_versions: keks.iter().map(|k| k.version).collect(),
        key_holder: root.key_holder,
    })
}

/// Wraps `secret` under `holder` and unwraps it again: what is stored must open.
pub(crate) async fn wrap_checked(
    holder: &dyn KeyHolder,
    context: &str,
    secret: &[u8],
) -> Result<Vec<u8>> {
    let wrapped = holder.wrap(context, secret).await?;
    let again = holder.unwrap(context, &wrapped).await?;
    if !ct_eq(&again, secret) {
        return Err(KeyHolderError::Refused(format!(
            "{} returned a different secret when unwrapping what it had just wrapped",
            holder.identity()
        ))
        .into());
    }
    Ok(wrapped)
}

pub(crate) struct UnwrappedKeys {
    pub(crate) keks: Vec<(WrappedKek, Zeroizing<Vec<u8>>)>,
    stored_root: Option<StoredMacRoot>,
    pub(crate) mac_root: MacRoot,
}

/// Unwraps every stored KEK and the MAC root; a key that does not open them gets an error
/// saying so and pointing at a rotation.
/// Every KEK after the first must carry a valid endorsement ([`crate::kek_versions`]).
pub(crate) async fn unwrap_keys(
    store: &dyn KeyringStore,
    holder: &dyn KeyHolder,
) -> Result<UnwrappedKeys> {
    let stored_root = store.load_mac_root().await?;
    let not_this_database = || {
        let held_by = stored_root.as_ref().map_or(
            "the local master key this database was created with".to_owned(),
            |r| r.key_holder.clone(),
        );
        KeyHolderError::NotThisDatabase(format!(
            "{} does not open this database's key-encryption keys (last wrapped by {held_by}): \
             the key is wrong, or the database's keys were rotated to another key holder \
             (`alter keys rotate`); start with the key holder they were rotated to",
            holder.identity()
        ))
    };
    let opened = |e: KeyHolderError| match e {
        KeyHolderError::WrongKey => not_this_database(),
        other => other,
    };
    let mut keks = Vec::new();
    for stored in store.load_keks().await? {
        let material = holder
            .unwrap(&Kek::context(stored.version), &stored.wrapped)
            .await
            .map_err(opened)?;
        keks.push((stored, material));
    }
    let mac_root = match &stored_root {
        Some(root) => {
            let bytes = holder
                .unwrap(MacRoot::CONTEXT, &root.wrapped)
                .await
                .map_err(opened)?;
            MacRoot::from_bytes(&bytes).map_err(|_| not_this_database())?
        }
        None => holder.legacy_mac_root().ok_or_else(|| {
            KeyHolderError::NotThisDatabase(format!(
                "this database's audit MAC root is the local master key it was created with, \
                 which {} cannot stand in for: move the database to it with `alter keys rotate` \
                 run with the local master key configured",
                holder.identity()
            ))
        })?,
    };
    let records = store.kek_records().await?;
    // A database's first KEK went unendorsed until a second was added; from then on every
    // KEK must be endorsed, so an unendorsed one cannot be slipped back in.
    let any_endorsed = records.iter().any(|r| r.endorsement.is_some());
    for (stored, material) in &keks {
        let tag = records
            .iter()
            .find(|r| r.version == stored.version)
            .and_then(|r| r.endorsement.as_deref());
        let endorsed = tag.is_some_and(|tag| {
            crate::kek_versions::endorsed(&mac_root, stored.version, material, tag)
        });
        if (stored.version != 1 || any_endorsed) && !endorsed {
            return Err(CryptoError::UnexpectedKekVersion(stored.version).into());
        }
    }
    Ok(UnwrappedKeys {
        keks,
        stored_root,
        mac_root,
    })
}

/// The local master key as a key holder: what every database used before key holders, and
/// byte-compatible with it (the KEK context is the AES-GCM associated data it always was).
#[async_trait]
impl KeyHolder for MasterKey {
    fn identity(&self) -> String {
        format!("the local master key {}", self.fingerprint())
    }

    async fn wrap(
        &self,
        context: &str,
        plaintext: &[u8],
    ) -> std::result::Result<Vec<u8>, KeyHolderError> {
        MasterKey::wrap(self, context, plaintext)
            .map_err(|e| KeyHolderError::Refused(format!("the local master key: {e}")))
    }

    async fn unwrap(
        &self,
        context: &str,
        wrapped: &[u8],
    ) -> std::result::Result<Zeroizing<Vec<u8>>, KeyHolderError> {
        MasterKey::unwrap(self, context, wrapped).map_err(|_| KeyHolderError::WrongKey)
    }

    fn legacy_mac_root(&self) -> Option<MacRoot> {
        Some(MasterKey::legacy_mac_root(self))
    }
}
