//! API keys: minting (operator), deriving, rotating and revoking (SDK `keys` namespace).
//!
//! A key is stored as its lookup hash and its sealed HMAC signing key; the plaintext is returned
//! once by the call that mints it.

use alter_crypto::keys::{KeyShape, MintedApiKey};
use alter_crypto::{Binding, SecretString, Zeroizing};
use ipnet::IpNet;
use serde_json::{Value, json};

pub use alter_crypto::keys::KeyType;

use crate::agents::{Agent, AgentStatus};
use crate::audit::{Actor, AuditEvent, Target, action};
use crate::caller::Caller;
use crate::error::{Entity, Error, Result, ensure};
use crate::ids::{AgentId, AppId, KeyId};
use crate::scope::{SCOPE_VERSION, Scope, ScopeSet};
use crate::subject::Subject;
use crate::time::Timestamp;
use crate::validate;
use crate::vault::Vault;

/// Longest lifetime an operator may give a key: ten years.
const MAX_KEY_LIFETIME_SECONDS: i64 = 10 * 365 * 24 * 3600;
/// Longest overlap of a rotation: thirty days.
const MAX_OVERLAP_SECONDS: i64 = 30 * 24 * 3600;
/// Largest serialized metadata object of a derived key.
const MAX_METADATA_BYTES: usize = 4096;
/// The kind bound into a sealed signing key.
pub(crate) const SIGNING_KEY_KIND: &str = "api_key.signing";

/// An API key as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    /// Id.
    pub id: KeyId,
    /// Owning app.
    pub app_id: AppId,
    /// The managed agent the key authenticates as, if any.
    pub agent_id: Option<AgentId>,
    /// `rk`, `ak`, `dk` or `pk`.
    pub key_type: KeyType,
    /// True for an agent's key: an `ak`, a managed agent's key, or a key derived from either.
    /// Such a key never acts as an agent it is not bound to.
    pub agent_typed: bool,
    /// True for `alter_key_…` keys.
    pub legacy_format: bool,
    /// Name.
    pub name: String,
    /// Display prefix.
    pub prefix: String,
    /// Hash the key is found under.
    pub lookup_hash: [u8; 32],
    /// The HMAC signing key, sealed to this key's id.
    pub sealed_signing_key: Vec<u8>,
    /// Scopes held.
    pub scopes: ScopeSet,
    /// Catalogue version the scopes were checked against.
    pub scope_version: i64,
    /// Networks the key may be used from.
    pub cidr_allowlist: Option<Vec<IpNet>>,
    /// Per-key rate limit.
    pub rate_limit_rpm: Option<i64>,
    /// End of lifetime.
    pub expires_at: Option<Timestamp>,
    /// When it was deprecated or rotated.
    pub deprecated_at: Option<Timestamp>,
    /// End of the overlap after a rotation.
    pub grace_expires_at: Option<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// The key it was derived from.
    pub parent_key_id: Option<KeyId>,
    /// Free-form metadata of derived keys.
    pub metadata: Option<Value>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last authenticated use (lazily updated).
    pub last_used_at: Option<Timestamp>,
}

/// Lifecycle state, derived from the timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Works.
    Active,
    /// Works, but deprecated or rotated: responses say so.
    Deprecated,
    /// Rotated and past its overlap, or past its lifetime.
    Expired,
    /// Revoked.
    Revoked,
}

impl ApiKey {
    /// The state at `now`.
    pub fn status(&self, now: Timestamp) -> KeyStatus {
        match self.check_usable(now) {
            Err(Error::KeyRevoked) => KeyStatus::Revoked,
            Err(_) => KeyStatus::Expired,
            Ok(()) if self.deprecated_at.is_some() => KeyStatus::Deprecated,
            Ok(()) => KeyStatus::Active,
        }
    }

    /// Fails with the reason the key cannot be used at `now`.
    pub fn check_usable(&self, now: Timestamp) -> Result<()> {
        if self.revoked_at.is_some() {
            return Err(Error::KeyRevoked);
        }
        if self.grace_expires_at.is_some_and(|end| end <= now) {
            return Err(Error::KeyRotationExpired);
        }
        if self.expires_at.is_some_and(|end| end <= now) {
            return Err(Error::KeyExpired);
        }
        Ok(())
    }

    /// When the key stops working by itself (its lifetime or its overlap after a rotation,
    /// whichever ends first); `None` if never.
    pub fn end_of_life(&self) -> Option<Timestamp> {
        self.expires_at
            .into_iter()
            .chain(self.grace_expires_at)
            .min()
    }

    fn binding(&self) -> (String, String) {
        (self.app_id.to_string(), self.id.to_string())
    }
}

/// What an operator asks for when minting an app key.
#[derive(Debug, Clone, Default)]
pub struct MintKey {
    /// Name; defaults to `key-YYYYMMDD-HHMMSS`.
    pub name: Option<String>,
    /// `rk` (default), `ak` or `pk`.
    pub key_type: Option<String>,
    /// Scopes; every scope by default (`pk`: `connect:initiate` and `providers:read`).
    pub scopes: Option<Vec<String>>,
    /// Networks the key may be used from.
    pub cidr_allowlist: Option<Vec<String>>,
    /// Lifetime in seconds.
    pub expires_in: Option<i64>,
}

/// What a key asks for when deriving a short-lived key.
#[derive(Debug, Clone, Default)]
pub struct DeriveKey {
    /// Scopes, each held by the caller; never `keys:derive`.
    pub scopes: Vec<String>,
    /// Lifetime in seconds.
    pub expires_in: i64,
    /// Networks, each inside one of the caller's; inherited when omitted.
    pub cidr_allowlist: Option<Vec<String>>,
    /// Name; defaults to `derived-YYYYMMDD-HHMMSS`.
    pub name: Option<String>,
    /// Free-form metadata (a JSON object of at most 4 KiB).
    pub metadata: Option<Value>,
}

/// A new key and its plaintext, which exists only in this value.
#[derive(Debug)]
pub struct NewKey {
    /// The key as stored.
    pub key: ApiKey,
    /// The plaintext for the answer.
    pub plaintext: SecretString,
}

/// How long a rotated key keeps working beside its successor, as each API spells it.
#[derive(Debug, Clone, Copy)]
pub enum Overlap {
    /// The operator's `grace_seconds` (0–30 days, default 0).
    Seconds(Option<i64>),
    /// The SDK's `overlap_days` (0–30).
    Days(i64),
}

impl Overlap {
    /// The overlap in seconds, within its bounds.
    fn seconds(self) -> Result<i64> {
        match self {
            Overlap::Seconds(seconds) => validate::int_in_range(
                "grace_seconds",
                seconds.unwrap_or(0),
                0,
                MAX_OVERLAP_SECONDS,
            ),
            Overlap::Days(days) => {
                validate::int_in_range("overlap_days", days, 0, 30).map(|d| d * 24 * 3600)
            }
        }
    }
}

/// Everything that decides a new key, before it has material.
pub(crate) struct KeySpec {
    pub(crate) app_id: AppId,
    pub(crate) agent_id: Option<AgentId>,
    pub(crate) agent_typed: bool,
    pub(crate) shape: KeyShape,
    pub(crate) name: String,
    pub(crate) scopes: ScopeSet,
    pub(crate) cidr_allowlist: Option<Vec<IpNet>>,
    pub(crate) rate_limit_rpm: Option<i64>,
    pub(crate) expires_at: Option<Timestamp>,
    pub(crate) parent_key_id: Option<KeyId>,
    pub(crate) metadata: Option<Value>,
}

impl Vault {
    /// Mints an app key (operator).
    pub async fn mint_app_key(&self, app_id: AppId, request: MintKey) -> Result<NewKey> {
        self.get_app(app_id).await?;
        let now = self.now();
        let key_type = match request.key_type.as_deref() {
            None | Some("rk") => KeyType::Runtime,
            Some("ak") => KeyType::Agent,
            Some("pk") => KeyType::Publishable,
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "key_type must be rk, ak or pk, not {other:?} (derived keys come from keys.derive)"
                )));
            }
        };
        let scopes = match &request.scopes {
            Some(texts) => parse_scopes(texts)?,
            None if key_type == KeyType::Publishable => ScopeSet::new([
                Scope::Action("connect:initiate"),
                Scope::resource("providers", crate::scope::Verb::Read),
            ]),
            None if key_type == KeyType::Agent => agent_key_scopes(),
            None => ScopeSet::new(Scope::all()),
        };
        let name = match &request.name {
            Some(name) => validate::display_name("name", name)?.to_owned(),
            None => format!("key-{}", now.compact()),
        };
        let cidr_allowlist = request
            .cidr_allowlist
            .as_deref()
            .map(|nets| validate::cidr_allowlist("cidr_allowlist", nets))
            .transpose()?;
        let expires_at = request
            .expires_in
            .map(|s| validate::int_in_range("expires_in", s, 1, MAX_KEY_LIFETIME_SECONDS))
            .transpose()?
            .map(|s| now.plus_seconds(s));
        let new = self.new_key(KeySpec {
            app_id,
            agent_id: None,
            agent_typed: key_type == KeyType::Agent,
            shape: KeyShape::Scoped(key_type),
            name,
            scopes,
            cidr_allowlist,
            rate_limit_rpm: None,
            expires_at,
            parent_key_id: None,
            metadata: None,
        })?;
        let event = key_event(&new.key, action::KEY_MINTED, Actor::operator(), now);
        self.store().insert_key(&new.key, &event).await?;
        Ok(new)
    }

    /// Every key of an app (operator).
    pub async fn list_app_keys(&self, app_id: AppId) -> Result<Vec<ApiKey>> {
        self.get_app(app_id).await?;
        Ok(self.store().list_keys(app_id).await?)
    }

    /// `keys.derive`: a short-lived key with a subset of the caller's scopes.
    pub async fn derive_key(&self, caller: &Caller, request: DeriveKey) -> Result<NewKey> {
        let now = self.now();
        let parent = self.caller_key(caller).await?;
        ensure_derivable(caller, &request.scopes)?;
        let scopes = parse_scopes(&request.scopes)?;
        let not_held = caller.scopes.missing_from(&scopes);
        if !not_held.is_empty() {
            return Err(Error::InvalidScopeForDerivedKey(format!(
                "a derived key may only hold scopes of its parent; not held: {}",
                join(&not_held)
            )));
        }
        let max_ttl = self.settings().max_derived_key_ttl_seconds;
        let mut ttl = validate::int_in_range("expires_in", request.expires_in, 1, max_ttl)?;
        if let Some(end) = parent.end_of_life() {
            let remaining = now.seconds_until(end);
            ensure(ttl <= remaining, || {
                format!(
                    "expires_in must not exceed the parent key's remaining lifetime ({remaining} s)"
                )
            })?;
            ttl = ttl.min(remaining);
        }
        let cidr_allowlist = match &request.cidr_allowlist {
            None => parent.cidr_allowlist.clone(),
            Some(texts) => {
                let nets = validate::cidr_allowlist("cidr_allowlist", texts)?;
                ensure(
                    networks_within(Some(&nets), parent.cidr_allowlist.as_deref()),
                    || "cidr_allowlist must lie inside the parent key's allowlist".into(),
                )?;
                Some(nets)
            }
        };
        let name = match &request.name {
            Some(name) => validate::display_name("name", name)?.to_owned(),
            None => format!("derived-{}", now.compact()),
        };
        if let Some(metadata) = &request.metadata {
            ensure(metadata.is_object(), || {
                "metadata must be a JSON object".into()
            })?;
            ensure(metadata.to_string().len() <= MAX_METADATA_BYTES, || {
                format!("metadata must serialize to at most {MAX_METADATA_BYTES} bytes")
            })?;
        }
        let new = self.new_key(KeySpec {
            app_id: caller.app_id,
            agent_id: parent.agent_id,
            agent_typed: parent.agent_typed,
            shape: KeyShape::Scoped(KeyType::Derived),
            name,
            scopes,
            cidr_allowlist,
            rate_limit_rpm: parent.rate_limit_rpm,
            expires_at: Some(now.plus_seconds(ttl)),
            parent_key_id: Some(parent.id),
            metadata: request.metadata,
        })?;
        let event = key_event(&new.key, action::KEY_DERIVED, caller.actor(), now);
        // The parent is checked again in the insert's transaction: it may have been revoked,
        // or rotated with a shorter overlap, since it was read above.
        if !self
            .store()
            .insert_derived_key(&new.key, now, &event)
            .await?
        {
            self.caller_key(caller).await?.check_usable(now)?;
            return Err(Error::Invalid(
                "expires_in must not exceed the parent key's remaining lifetime".into(),
            ));
        }
        Ok(new)
    }

    /// Rotates a key the subject may manage: a successor with the same name, scopes and
    /// limits; the old key keeps working for the overlap. An SDK caller (`keys.rotate`) must
    /// not be a derived key, and may only rotate keys it could hold itself.
    pub async fn rotate_key(
        &self,
        subject: &Subject<'_>,
        key_id: KeyId,
        overlap: Overlap,
    ) -> Result<NewKey> {
        let grace = overlap.seconds()?;
        if let Subject::Caller(caller) = subject
            && caller.key_type == KeyType::Derived
        {
            return Err(Error::RotationRefused(
                "a derived key cannot rotate keys; rotate with its parent key".into(),
            ));
        }
        let key = self.managed_key(subject, key_id).await?;
        if let Subject::Caller(caller) = subject {
            let own = self.caller_key(caller).await?;
            ensure_rotation_within_caller(caller, &own, &key)?;
        }
        self.rotate(key, grace, subject.actor()).await
    }

    /// Revokes a key the subject may manage and its derived keys; revoking a revoked key
    /// returns it unchanged. A managed agent's last key only with `force`.
    pub async fn revoke_key(
        &self,
        subject: &Subject<'_>,
        key_id: KeyId,
        force: bool,
    ) -> Result<ApiKey> {
        let key = self.managed_key(subject, key_id).await?;
        self.revoke_key_checked(key, force, subject.actor()).await
    }

    /// The key the caller signed with, as stored now.
    async fn caller_key(&self, caller: &Caller) -> Result<ApiKey> {
        self.app_key(caller.app_id, caller.key_id).await
    }

    pub(crate) async fn app_key(&self, app_id: AppId, key_id: KeyId) -> Result<ApiKey> {
        self.store()
            .get_key(app_id, key_id)
            .await?
            .ok_or(Error::NotFound(Entity::Key))
    }

    /// A key of the subject's app the subject may manage ([`Subject::manages_key`]);
    /// everything else looks "not found".
    async fn managed_key(&self, subject: &Subject<'_>, key_id: KeyId) -> Result<ApiKey> {
        let key = self.app_key(subject.app_id(), key_id).await?;
        if !subject.manages_key(&key) {
            return Err(Error::NotFound(Entity::Key));
        }
        Ok(key)
    }

    pub(crate) async fn revoke_key_row(&self, key: ApiKey, actor: Actor) -> Result<ApiKey> {
        if key.revoked_at.is_some() {
            return Ok(key);
        }
        let now = self.now();
        let event = key_event(&key, action::KEY_REVOKED, actor, now);
        let revoked = self
            .store()
            .revoke_key(key.app_id, key.id, now, &event)
            .await?;
        self.verified_keys().clear();
        tracing::info!(key = %key.id, cascaded = revoked.len().saturating_sub(1), "key revoked");
        self.app_key(key.app_id, key.id).await
    }

    async fn rotate(&self, key: ApiKey, grace_seconds: i64, actor: Actor) -> Result<NewKey> {
        if key.key_type == KeyType::Derived {
            return Err(Error::DerivedKeyNotRotatable);
        }
        let now = self.now();
        key.check_usable(now).map_err(|e| match e {
            Error::KeyRevoked => Error::KeyAlreadyRevoked,
            other => other,
        })?;
        let new = self.new_key(KeySpec {
            app_id: key.app_id,
            agent_id: key.agent_id,
            agent_typed: key.agent_typed,
            shape: if key.legacy_format {
                KeyShape::Legacy
            } else {
                KeyShape::Scoped(key.key_type)
            },
            name: key.name.clone(),
            scopes: key.scopes.clone(),
            cidr_allowlist: key.cidr_allowlist.clone(),
            rate_limit_rpm: key.rate_limit_rpm,
            expires_at: key.expires_at,
            parent_key_id: None,
            metadata: None,
        })?;
        let grace_until = now.plus_seconds(grace_seconds);
        let event = key_event(&key, action::KEY_ROTATED, actor, now).with_details(json!({
            "successor_key_id": new.key.id,
            "successor_key_prefix": new.key.prefix,
            "grace_until": grace_until,
        }));
        let rotated = self
            .store()
            .rotate_key(key.app_id, key.id, now, grace_until, &new.key, &event)
            .await?;
        self.verified_keys().clear();
        if !rotated {
            return Err(Error::KeyAlreadyRevoked);
        }
        Ok(new)
    }

    pub(crate) fn new_key(&self, spec: KeySpec) -> Result<NewKey> {
        let MintedApiKey {
            plaintext,
            lookup_hash,
            signing_key,
            prefix,
        } = alter_crypto::keys::mint(spec.shape)?;
        let mut key = ApiKey {
            id: KeyId::new(),
            app_id: spec.app_id,
            agent_id: spec.agent_id,
            agent_typed: spec.agent_typed,
            key_type: match spec.shape {
                KeyShape::Scoped(kind) => kind,
                KeyShape::Legacy => KeyType::Agent,
            },
            legacy_format: spec.shape == KeyShape::Legacy,
            name: spec.name,
            prefix,
            lookup_hash,
            sealed_signing_key: Vec::new(),
            scopes: spec.scopes,
            scope_version: SCOPE_VERSION,
            cidr_allowlist: spec.cidr_allowlist,
            rate_limit_rpm: spec.rate_limit_rpm,
            expires_at: spec.expires_at,
            deprecated_at: None,
            grace_expires_at: None,
            revoked_at: None,
            parent_key_id: spec.parent_key_id,
            metadata: spec.metadata,
            created_at: self.now(),
            last_used_at: None,
        };
        let (app, record) = key.binding();
        key.sealed_signing_key = self.keyring().seal(
            Binding {
                kind: SIGNING_KEY_KIND,
                app_id: &app,
                record_id: &record,
            },
            signing_key.as_slice(),
        )?;
        Ok(NewKey { key, plaintext })
    }

    /// Opens the HMAC signing key of a stored key.
    pub(crate) fn signing_key(&self, key: &ApiKey) -> Result<Zeroizing<[u8; 32]>> {
        let (app, record) = key.binding();
        let opened = self.keyring().open(
            Binding {
                kind: SIGNING_KEY_KIND,
                app_id: &app,
                record_id: &record,
            },
            &key.sealed_signing_key,
        )?;
        let bytes: [u8; 32] = opened
            .as_slice()
            .try_into()
            .map_err(|_| Error::Crypto(alter_crypto::CryptoError::CannotOpen))?;
        Ok(Zeroizing::new(bytes))
    }
}

fn ensure_derivable(caller: &Caller, requested: &[String]) -> Result<()> {
    if caller.key_type == KeyType::Derived {
        return Err(Error::InvalidScopeForDerivedKey(
            "a derived key cannot derive further keys".into(),
        ));
    }
    if requested.is_empty() {
        return Err(Error::InvalidScopeForDerivedKey(
            "scopes must list at least one scope".into(),
        ));
    }
    if requested.iter().any(|s| s == "keys:derive") {
        return Err(Error::InvalidScopeForDerivedKey(
            "derived keys cannot hold keys:derive".into(),
        ));
    }
    Ok(())
}

/// A rotation hands the caller a fresh plaintext of the target, so the target may hold no
/// more than the caller could use itself: scopes the request holds (after attenuation), no
/// network outside the caller key's allowlist, no life beyond the caller key's.
fn ensure_rotation_within_caller(caller: &Caller, own: &ApiKey, target: &ApiKey) -> Result<()> {
    let not_held = caller.scopes.missing_from(&target.scopes);
    if !not_held.is_empty() {
        return Err(Error::InsufficientScope {
            required: not_held,
            granted: caller.scopes.to_strings(),
            any_of: false,
        });
    }
    if !networks_within(
        target.cidr_allowlist.as_deref(),
        own.cidr_allowlist.as_deref(),
    ) {
        return Err(Error::RotationRefused(
            "the key is usable from networks outside the calling key's cidr_allowlist".into(),
        ));
    }
    let outlives_caller = match (target.expires_at, own.end_of_life()) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(target_end), Some(own_end)) => target_end > own_end,
    };
    if outlives_caller {
        return Err(Error::RotationRefused(
            "the key outlives the calling key".into(),
        ));
    }
    Ok(())
}

/// True if every network of `inner` lies inside one of `outer` (`None`: everywhere).
fn networks_within(inner: Option<&[IpNet]>, outer: Option<&[IpNet]>) -> bool {
    match (inner, outer) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(inner), Some(outer)) => inner.iter().all(|n| outer.iter().any(|o| o.contains(n))),
    }
}

fn parse_scopes(texts: &[String]) -> Result<ScopeSet> {
    ensure(texts.len() <= 100, || "at most 100 scopes".into())?;
    ScopeSet::parse(texts).map_err(|e| Error::Invalid(format!("scopes: {e}")))
}

fn join(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An event about `key`, with what it is.
fn key_event(key: &ApiKey, action: &str, actor: Actor, at: Timestamp) -> AuditEvent {
    key_target(key, action, actor, at).with_details(json!({
        "name": key.name,
        "key_prefix": key.prefix,
        "key_type": key.key_type.as_str(),
        "scopes": key.scopes,
        "agent_id": key.agent_id,
        "parent_key_id": key.parent_key_id,
        "expires_at": key.expires_at,
    }))
}

// Agents' keys: minted, listed, deprecated and revoked through the agent they belong to.

/// Most keys an agent may hold that are not revoked.
pub const MAX_AGENT_KEYS: usize = 10;
/// Alter scopes an agent's keys hold: everything an agent does for itself, nothing that
/// manages other principals.
const AGENT_KEY_SCOPES: &[&str] = &[
    "tokens:retrieve",
    "proxy:execute",
    "connect:initiate",
    "keys:derive",
    "keys:admin",
    "audit:emit",
    "spans:emit",
    "grants:write",
    "secrets:write",
    "providers:read",
    "approvals:read",
    "idp_users:read",
];

/// An agent's key as `agents.list_keys` shows it.
pub type AgentKey = ApiKey;

impl Vault {
    /// `agents.mint_key` (or the operator's): another key for a live agent.
    pub async fn mint_agent_key(&self, subject: &Subject<'_>, agent_id: AgentId) -> Result<NewKey> {
        let agent = self.get_agent(subject, agent_id).await?;
        if agent.status == AgentStatus::Revoked {
            return Err(Error::NotFound(Entity::Agent));
        }
        let keys = self.store().agent_keys(agent.app_id, agent.id).await?;
        let live = keys.iter().filter(|k| k.revoked_at.is_none()).count();
        if live >= MAX_AGENT_KEYS {
            return Err(Error::AgentKeyLimit);
        }
        let key = self.new_agent_key(&agent, keys.len() + 1)?;
        let event = crate::agents::agent_event(&agent, action::AGENT_KEY_MINTED, subject.actor())
            .with_details(json!({ "key_id": key.key.id, "key_prefix": key.key.prefix }));
        self.store().insert_key(&key.key, &event).await?;
        Ok(key)
    }

    /// `agents.list_keys`, oldest first.
    pub async fn list_agent_keys(
        &self,
        caller: &Caller,
        agent_id: AgentId,
    ) -> Result<Vec<AgentKey>> {
        let agent = self.get_agent(&Subject::Caller(caller), agent_id).await?;
        Ok(self.store().agent_keys(agent.app_id, agent.id).await?)
    }

    /// `agents.deprecate_key` / `undeprecate_key`: idempotent; a deprecated key still works
    /// and every answer to it says so.
    pub async fn set_agent_key_deprecated(
        &self,
        caller: &Caller,
        agent_id: AgentId,
        key_id: KeyId,
        deprecated: bool,
    ) -> Result<AgentKey> {
        let key = self
            .agent_key(&Subject::Caller(caller), agent_id, key_id)
            .await?;
        if key.revoked_at.is_some() {
            return Err(Error::KeyAlreadyRevoked);
        }
        if key.grace_expires_at.is_some() || key.deprecated_at.is_some() == deprecated {
            return Ok(key);
        }
        let now = self.now();
        let (at, name) = if deprecated {
            (Some(now), action::AGENT_KEY_DEPRECATED)
        } else {
            (None, action::AGENT_KEY_UNDEPRECATED)
        };
        let event = key_target_event(&key, name, caller.actor(), now);
        self.store()
            .set_key_deprecated(key.app_id, key.id, at, &event)
            .await?;
        self.verified_keys().clear();
        self.agent_key(&Subject::Caller(caller), agent_id, key_id)
            .await
    }

    /// `agents.revoke_key` (or the operator's): terminal and idempotent; refuses to leave the
    /// agent without a key unless `force`.
    pub async fn revoke_agent_key(
        &self,
        subject: &Subject<'_>,
        agent_id: AgentId,
        key_id: KeyId,
        force: bool,
    ) -> Result<AgentKey> {
        let key = self.agent_key(subject, agent_id, key_id).await?;
        self.revoke_key_checked(key, force, subject.actor()).await
    }

    /// A key of one of the app's agents, for an app caller or the operator.
    async fn agent_key(
        &self,
        subject: &Subject<'_>,
        agent_id: AgentId,
        key_id: KeyId,
    ) -> Result<AgentKey> {
        let agent = self.get_agent(subject, agent_id).await?;
        self.store()
            .get_key(agent.app_id, key_id)
            .await?
            .filter(|k| k.agent_id == Some(agent.id))
            .ok_or(Error::NotFound(Entity::Key))
    }

    /// Revokes a key, refusing (without `force`) to revoke a managed agent's last key: what
    /// remains must hold a key outside the revoked key and its derived keys.
    pub(crate) async fn revoke_key_checked(
        &self,
        key: ApiKey,
        force: bool,
        actor: Actor,
    ) -> Result<ApiKey> {
        if key.revoked_at.is_some() {
            return Ok(key);
        }
        if let Some(agent) = key.agent_id
            && !force
        {
            let now = self.now();
            let remaining = self
                .store()
                .agent_keys(key.app_id, agent)
                .await?
                .into_iter()
                .filter(|k| k.id != key.id && k.parent_key_id != Some(key.id))
                .filter(|k| !matches!(k.status(now), KeyStatus::Revoked | KeyStatus::Expired))
                .count();
            if remaining == 0 {
                return Err(Error::LastActiveKey);
            }
        }
        self.revoke_key_row(key, actor).await
    }

    pub(crate) fn new_agent_key(&self, agent: &Agent, number: usize) -> Result<NewKey> {
        self.new_key(KeySpec {
            app_id: agent.app_id,
            agent_id: Some(agent.id),
            agent_typed: true,
            shape: alter_crypto::keys::KeyShape::Legacy,
            name: format!("{}-{number}", agent.name),
            scopes: agent_key_scopes(),
            cidr_allowlist: None,
            rate_limit_rpm: None,
            expires_at: None,
            parent_key_id: None,
            metadata: None,
        })
    }
}

/// The scopes an agent's keys hold (and an `ak` key by default).
pub(crate) fn agent_key_scopes() -> ScopeSet {
    ScopeSet::new(AGENT_KEY_SCOPES.iter().filter_map(|s| Scope::parse(s).ok()))
}

/// An event about an agent's key, naming its agent.
fn key_target_event(key: &ApiKey, action: &str, actor: Actor, at: Timestamp) -> AuditEvent {
    key_target(key, action, actor, at)
        .with_details(json!({ "agent_id": key.agent_id, "key_prefix": key.prefix }))
}

/// An event whose target is `key`.
fn key_target(key: &ApiKey, action: &str, actor: Actor, at: Timestamp) -> AuditEvent {
    AuditEvent::allow(
        key.app_id,
        at,
        action,
        actor,
        Target {
            kind: "key".into(),
            id: key.id.to_string(),
        },
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A runtime key of a new app, for unit tests.
    pub(crate) fn key(now: Timestamp) -> ApiKey {
        ApiKey {
            id: KeyId::new(),
            app_id: AppId::new(),
            agent_id: None,
            agent_typed: false,
            key_type: KeyType::Runtime,
            legacy_format: false,
            name: "k".into(),
            prefix: "alter_rk_abcdefgh".into(),
            lookup_hash: [0; 32],
            sealed_signing_key: vec![],
            scopes: ScopeSet::default(),
            scope_version: 1,
            cidr_allowlist: None,
            rate_limit_rpm: None,
            expires_at: None,
            deprecated_at: None,
            grace_expires_at: None,
            revoked_at: None,
            parent_key_id: None,
            metadata: None,
            created_at: now,
            last_used_at: None,
        }
    }

    #[test]
    fn lifecycle_states() {
        let now = Timestamp::from_unix_seconds(1000);
        let mut k = key(now);
        assert_eq!(k.status(now), KeyStatus::Active);
        k.deprecated_at = Some(now);
        k.grace_expires_at = Some(now.plus_seconds(10));
        assert_eq!(k.status(now), KeyStatus::Deprecated);
        assert!(matches!(
            k.check_usable(now.plus_seconds(10)),
            Err(Error::KeyRotationExpired)
        ));
        k.expires_at = Some(now.plus_seconds(5));
        assert!(matches!(
            k.check_usable(now.plus_seconds(5)),
            Err(Error::KeyExpired)
        ));
        k.revoked_at = Some(now);
        assert_eq!(k.status(now), KeyStatus::Revoked);
    }
}
