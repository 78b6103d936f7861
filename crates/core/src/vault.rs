//! [`Vault`]: the services of Alter over one store, keyring and clock. Each resource module
//! (`apps`, `keys`, `caller`, …) adds its operations to it.

use std::sync::Arc;

use alter_crypto::{Keyring, MasterKey};

use crate::audit::{ChainKey, CheckpointKey};
use crate::caller::VerifiedKeys;
use crate::error::Result;
use crate::metrics::Counters;
use crate::oauth::OAuthUpstream;
use crate::ports::{Authorizer, Clock, Store, StoreError, TokenVerifier};
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
        }
    }
}

/// The domain services.
#[derive(Clone)]
pub struct Vault {
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
    chain_key: ChainKey,
    checkpoint_key: CheckpointKey,
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
    /// Opens the vault: unwraps every stored key-encryption key with `master` (creating the
    /// first one on a new database). A master key that does not match the database fails with
    /// `CryptoError::WrongMasterKey`.
    #[allow(
        clippy::too_many_arguments,
        reason = "every port is injected here, once"
    )]
    pub async fn open(
        store: Arc<dyn Store>,
        master: &MasterKey,
        clock: Arc<dyn Clock>,
        verifier: Arc<dyn TokenVerifier>,
        oauth: Arc<dyn OAuthUpstream>,
        rules: Arc<dyn RuleEngine>,
        forwarder: Arc<dyn Forwarder>,
        settings: Settings,
    ) -> Result<Vault> {
        let mut wrapped = store.load_keks().await?;
        if wrapped.is_empty() {
            let (_, first) = master.new_kek(1)?;
            match store.insert_kek(&first, clock.now()).await {
                // Another node created it at the same moment: use theirs.
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            wrapped = store.load_keks().await?;
        }
        let keks = wrapped
            .iter()
            .map(|w| master.unwrap_kek(w))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let vault = Vault {
            store,
            keyring: Arc::new(Keyring::new(keks)?),
            chain_key: ChainKey::derive(master),
            checkpoint_key: CheckpointKey::derive(master),
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

    pub(crate) fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub(crate) fn chain_key(&self) -> &ChainKey {
        &self.chain_key
    }

    pub(crate) fn checkpoint_key(&self) -> &CheckpointKey {
        &self.checkpoint_key
    }
}
