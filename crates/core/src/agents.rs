//! Agents: named workload identities of an app, each with its own keys, audit trail and the
//! access it owns or was delegated (protocol part 2 §8). Agents cannot manage agents.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::audit::{Actor, AuditEvent, Target, action};
use crate::caller::Caller;
use crate::error::{Entity, Error, Result, ensure};
use crate::ids::{AgentId, AppId, KeyId};
use crate::keys::{ApiKey, KeySpec, KeyStatus, NewKey};
use crate::scope::{Scope, ScopeSet};
use crate::subject::Subject;
use crate::time::Timestamp;
use crate::validate;
use crate::vault::Vault;

/// Most keys an agent may hold that are not revoked.
pub const MAX_AGENT_KEYS: usize = 10;
/// Largest `scopes` object, serialized.
const MAX_SCOPES_BYTES: usize = 12 * 1024;
/// Largest `metadata` or `policy` object, serialized.
const MAX_OBJECT_BYTES: usize = 16 * 1024;
/// Default staging period of a scope narrowing.
const DEFAULT_GRACE_SECONDS: i64 = 24 * 3600;
/// Longest staging period of a scope narrowing.
const MAX_GRACE_SECONDS: i64 = 7 * 24 * 3600;

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

/// Lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    /// Works.
    Active,
    /// Paused: every call but `me()` and telemetry is refused.
    Inactive,
    /// Deleted (terminal); its keys are revoked.
    Revoked,
}

impl AgentStatus {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Active => "active",
            AgentStatus::Inactive => "inactive",
            AgentStatus::Revoked => "revoked",
        }
    }

    /// Parses the wire form.
    pub fn parse(text: &str) -> Option<AgentStatus> {
        match text {
            "active" => Some(AgentStatus::Active),
            "inactive" => Some(AgentStatus::Inactive),
            "revoked" => Some(AgentStatus::Revoked),
            _ => None,
        }
    }
}

/// An agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// Id.
    pub id: AgentId,
    /// The app.
    pub app_id: AppId,
    /// Immutable name, unique among the app's live agents.
    pub name: String,
    /// Display name.
    pub display_name: Option<String>,
    /// `agent` or `service`.
    pub agent_type: String,
    /// Lifecycle.
    pub status: AgentStatus,
    /// What it may use (`scopes` on the wire).
    pub allowlist: AgentAllowlist,
    /// A staged narrowing of `allowlist`.
    pub allowlist_pending: Option<AgentAllowlist>,
    /// When the staged narrowing applies.
    pub allowlist_applies_at: Option<Timestamp>,
    /// Approval settings (`policy` on the wire).
    pub approval: ApprovalSettings,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// Requests per minute, if limited.
    pub rate_limit_per_minute: Option<i64>,
    /// Bumped by every change.
    pub version: i64,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Deletion time.
    pub revoked_at: Option<Timestamp>,
    /// Last authenticated use.
    pub last_used_at: Option<Timestamp>,
}

/// What an agent may use: OAuth providers with the scopes allowed at each, and managed
/// secrets by slug (`{provider: [scope, …], "managed_secret_slugs": [slug, …]}` on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AgentAllowlist {
    /// Managed secrets, by slug.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_secret_slugs: Vec<String>,
    /// OAuth providers and their allowed scopes.
    #[serde(flatten)]
    pub providers: BTreeMap<String, Vec<String>>,
}

/// The wire key of the managed-secret part of an allowlist.
const MANAGED_SECRET_SLUGS: &str = "managed_secret_slugs";

impl AgentAllowlist {
    /// True if it names the managed secret `slug`.
    pub fn names_secret(&self, slug: &str) -> bool {
        self.managed_secret_slugs.iter().any(|s| s == slug)
    }

    /// Every entry, the managed secrets under their wire key.
    fn entries(&self) -> impl Iterator<Item = (&str, &Vec<String>)> {
        let slugs = (!self.managed_secret_slugs.is_empty())
            .then_some((MANAGED_SECRET_SLUGS, &self.managed_secret_slugs));
        slugs
            .into_iter()
            .chain(self.providers.iter().map(|(k, v)| (k.as_str(), v)))
    }

    /// The list of one entry.
    fn entry(&self, key: &str) -> Option<&Vec<String>> {
        match key {
            MANAGED_SECRET_SLUGS => {
                (!self.managed_secret_slugs.is_empty()).then_some(&self.managed_secret_slugs)
            }
            _ => self.providers.get(key),
        }
    }

    /// True if `wanted` drops a provider, a secret or a scope that this allowlist holds.
    fn narrowed_by(&self, wanted: &AgentAllowlist) -> bool {
        self.entries().any(|(key, held)| match wanted.entry(key) {
            None => true,
            Some(kept) => held.iter().any(|s| !kept.contains(s)),
        })
    }

    /// Everything either allowlist holds.
    fn union(&self, other: &AgentAllowlist) -> AgentAllowlist {
        let mut out = self.clone();
        let merge = |into: &mut Vec<String>, more: &[String]| {
            for s in more {
                if !into.contains(s) {
                    into.push(s.clone());
                }
            }
        };
        merge(&mut out.managed_secret_slugs, &other.managed_secret_slugs);
        for (provider, scopes) in &other.providers {
            merge(out.providers.entry(provider.clone()).or_default(), scopes);
        }
        out
    }
}

/// Whether an agent's credential use waits for a human (`policy` on the wire). Each field keeps
/// whether it was given, so the settings read back as they were written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSettings {
    /// Every credential use waits for an approval (so only the proxy can carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_approval: Option<bool>,
    /// Who may approve (never shown back, only counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<Vec<String>>,
    /// How long an approval request stays open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_ttl_seconds: Option<i64>,
}

impl ApprovalSettings {
    /// True if every credential use waits for an approval.
    pub fn requires_approval(&self) -> bool {
        self.requires_approval == Some(true)
    }
}

impl Agent {
    /// The allowlist in force at `now` (a staged narrowing applies once its time comes).
    pub fn allowlist(&self, now: Timestamp) -> &AgentAllowlist {
        match (&self.allowlist_pending, self.allowlist_applies_at) {
            (Some(pending), Some(at)) if at <= now => pending,
            _ => &self.allowlist,
        }
    }

    /// The same agent with a due narrowing folded in.
    fn settled(mut self, now: Timestamp) -> Agent {
        if let (Some(pending), Some(at)) = (&self.allowlist_pending, self.allowlist_applies_at)
            && at <= now
        {
            self.allowlist = pending.clone();
            self.allowlist_pending = None;
            self.allowlist_applies_at = None;
        }
        self
    }
}

/// What `agents.create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewAgent {
    /// Lower-case name.
    pub name: String,
    /// `agent` (default) or `service`.
    pub agent_type: Option<String>,
    /// Provider allowlist.
    pub scopes: Value,
    /// Metadata object.
    pub metadata: Option<Value>,
    /// Display name.
    pub display_name: Option<String>,
    /// Approval settings.
    pub policy: Option<Value>,
    /// `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

/// A created agent, with its first key (absent on an idempotent replay).
#[derive(Debug)]
pub struct AgentCreated {
    /// The agent.
    pub agent: Agent,
    /// The first key's id.
    pub key_id: KeyId,
    /// The first key, with its plaintext, unless this was a replay.
    pub key: Option<NewKey>,
}

/// What `agents.update` changes; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct AgentUpdate {
    /// New display name (`Some(None)` clears it).
    pub display_name: Option<Option<String>>,
    /// New metadata.
    pub metadata: Option<Value>,
    /// New full allowlist (needs `expected_version`).
    pub scopes: Option<Value>,
    /// New approval settings (replaced whole).
    pub policy: Option<Value>,
    /// `active` or `inactive`.
    pub status: Option<String>,
    /// Optimistic concurrency.
    pub expected_version: Option<i64>,
    /// How long a narrowing is staged (0 = at once; default 24 h).
    pub grace_seconds: Option<i64>,
}

/// An agent's key as `agents.list_keys` shows it.
pub type AgentKey = ApiKey;

impl Vault {
    /// `agents.create` (app callers only).
    pub async fn create_agent(&self, caller: &Caller, new: NewAgent) -> Result<AgentCreated> {
        Subject::Caller(caller).manage_agents()?;
        let name = validate_name(&new.name)?;
        let agent_type = match new.agent_type.as_deref() {
            None | Some("agent") => "agent",
            Some("service") => "service",
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "type {other:?}: use agent or service"
                )));
            }
        };
        let allowlist = validate_allowlist(&new.scopes)?;
        let metadata = object("metadata", new.metadata.as_ref())?;
        let approval = validate_approval(new.policy.as_ref())?;
        let display_name = new
            .display_name
            .as_deref()
            .map(|d| validate::bounded_text("display_name", d, 255).map(str::to_owned))
            .transpose()?;
        let fingerprint = request_fingerprint(&json!({
            "name": name, "type": agent_type, "scopes": allowlist, "metadata": metadata,
            "display_name": display_name, "policy": approval,
        }));
        let idempotency = match new.idempotency_key.as_deref() {
            Some(key) => {
                ensure(!key.is_empty() && key.len() <= 255, || {
                    "Idempotency-Key must be 1-255 characters".into()
                })?;
                if let Some(replay) = self
                    .replay_agent_creation(caller.app_id, key, &fingerprint)
                    .await?
                {
                    return Ok(replay);
                }
                Some(key.to_owned())
            }
            None => None,
        };
        let now = self.now();
        let agent = Agent {
            id: AgentId::new(),
            app_id: caller.app_id,
            name: name.to_owned(),
            display_name,
            agent_type: agent_type.to_owned(),
            status: AgentStatus::Active,
            allowlist,
            allowlist_pending: None,
            allowlist_applies_at: None,
            approval,
            metadata,
            rate_limit_per_minute: None,
            version: 1,
            created_at: now,
            updated_at: now,
            revoked_at: None,
            last_used_at: None,
        };
        let key = self.new_agent_key(&agent, 1)?;
        let event = agent_event(&agent, action::AGENT_CREATED, caller.actor()).with_details(
            json!({ "name": agent.name, "type": agent.agent_type, "key_id": key.key.id }),
        );
        let stored = self
            .store()
            .insert_agent(
                &agent,
                &key.key,
                idempotency.as_deref().map(|k| (k, fingerprint.as_slice())),
                &event,
            )
            .await;
        match stored {
            Ok(()) => Ok(AgentCreated {
                key_id: key.key.id,
                agent,
                key: Some(key),
            }),
            Err(crate::ports::StoreError::Conflict(what)) if what == "agent_name" => {
                Err(Error::AgentNameExists)
            }
            // The same idempotency key raced us: answer as its replay.
            Err(crate::ports::StoreError::Conflict(what)) if what == "idempotency_key" => {
                let key = idempotency.unwrap_or_default();
                self.replay_agent_creation(caller.app_id, &key, &fingerprint)
                    .await?
                    .ok_or(Error::AgentNameExists)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn replay_agent_creation(
        &self,
        app_id: AppId,
        key: &str,
        fingerprint: &[u8; 32],
    ) -> Result<Option<AgentCreated>> {
        let Some((agent_id, key_id, stored)) =
            self.store().find_idempotent_agent(app_id, key).await?
        else {
            return Ok(None);
        };
        if !alter_crypto::ct_eq(&stored, fingerprint) {
            return Err(Error::IdempotencyBodyMismatch);
        }
        let agent = self.agent(app_id, agent_id).await?;
        match agent.status {
            AgentStatus::Revoked => Err(Error::IdempotencyAgentRevoked),
            AgentStatus::Inactive => Err(Error::IdempotencyAgentInactive),
            AgentStatus::Active => Ok(Some(AgentCreated {
                agent,
                key_id,
                key: None,
            })),
        }
    }

    /// A page of the app's agents (deleted ones only with `include_revoked`): `agents.list`
    /// for app callers, the operator's listing, the agents an end user may delegate to.
    pub async fn list_agents(
        &self,
        subject: &Subject<'_>,
        include_revoked: bool,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Agent>, i64)> {
        if let Subject::Caller(_) = subject {
            subject.manage_agents()?;
        }
        let limit = validate::int_in_range("limit", limit, 1, 1000)?;
        let offset = validate::int_in_range("offset", offset, 0, i64::MAX)?;
        let now = self.now();
        let (agents, total) = self
            .store()
            .list_agents(subject.app_id(), include_revoked, limit, offset)
            .await?;
        Ok((agents.into_iter().map(|a| a.settled(now)).collect(), total))
    }

    /// `agents.get_by_name`: the live agent of that name, if any.
    pub async fn agent_by_name(&self, caller: &Caller, name: &str) -> Result<Option<Agent>> {
        Subject::Caller(caller).manage_agents()?;
        let now = self.now();
        Ok(self
            .store()
            .find_agent_by_name(caller.app_id, name)
            .await?
            .map(|a| a.settled(now)))
    }

    /// `agents.get`, and the operator's look at one agent.
    pub async fn get_agent(&self, subject: &Subject<'_>, agent_id: AgentId) -> Result<Agent> {
        subject.manage_agents()?;
        self.agent(subject.app_id(), agent_id).await
    }

    /// An agent of the app.
    pub async fn agent(&self, app_id: AppId, id: AgentId) -> Result<Agent> {
        let now = self.now();
        self.store()
            .get_agent(app_id, id)
            .await?
            .map(|a| a.settled(now))
            .ok_or(Error::NotFound(Entity::Agent))
    }

    /// `Agent.me()`: the calling agent, whatever its status.
    pub async fn me(&self, caller: &Caller) -> Result<Agent> {
        caller
            .agent
            .as_deref()
            .cloned()
            .ok_or(Error::MeRequiresAgentKey)
    }

    /// `agents.update` / `suspend` / `resume`, and the operator's pause and resume.
    pub async fn update_agent(
        &self,
        subject: &Subject<'_>,
        agent_id: AgentId,
        update: AgentUpdate,
    ) -> Result<Agent> {
        let agent = self.get_agent(subject, agent_id).await?;
        self.apply_agent_update(agent, update, subject.actor())
            .await
    }

    async fn apply_agent_update(
        &self,
        agent: Agent,
        update: AgentUpdate,
        actor: Actor,
    ) -> Result<Agent> {
        let now = self.now();
        if update.scopes.is_some() && update.expected_version.is_none() {
            return Err(Error::Invalid(
                "expected_version is required when scopes change".into(),
            ));
        }
        if update.grace_seconds.is_some() && update.scopes.is_none() {
            return Err(Error::Invalid(
                "grace_seconds is only allowed with scopes".into(),
            ));
        }
        if let Some(expected) = update.expected_version {
            validate::int_in_range("expected_version", expected, 1, i64::MAX)?;
            if expected != agent.version {
                return Err(Error::AgentConcurrentUpdate);
            }
        }
        if agent.status == AgentStatus::Revoked {
            return Err(Error::Conflict("this agent was deleted".into()));
        }
        let mut next = agent.clone();
        let mut actions = Vec::new();
        if let Some(display_name) = update.display_name {
            next.display_name = display_name
                .map(|d| validate::bounded_text("display_name", &d, 255).map(str::to_owned))
                .transpose()?;
        }
        if let Some(metadata) = &update.metadata {
            next.metadata = object("metadata", Some(metadata))?;
        }
        if let Some(policy) = &update.policy {
            next.approval = validate_approval(Some(policy))?;
        }
        if let Some(scopes) = &update.scopes {
            let wanted = validate_allowlist(scopes)?;
            let grace = validate::int_in_range(
                "grace_seconds",
                update.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS),
                0,
                MAX_GRACE_SECONDS,
            )?;
            let current = agent.allowlist(now).clone();
            if current.narrowed_by(&wanted) && grace > 0 {
                next.allowlist = current.union(&wanted);
                next.allowlist_pending = Some(wanted);
                next.allowlist_applies_at = Some(now.plus_seconds(grace));
            } else {
                next.allowlist = wanted;
                next.allowlist_pending = None;
                next.allowlist_applies_at = None;
            }
        }
        if let Some(status) = &update.status {
            let status = match status.as_str() {
                "active" => AgentStatus::Active,
                "inactive" => AgentStatus::Inactive,
                other => {
                    return Err(Error::Invalid(format!(
                        "status {other:?}: use active or inactive (delete revokes)"
                    )));
                }
            };
            if status != agent.status {
                actions.push(if status == AgentStatus::Inactive {
                    action::AGENT_SUSPENDED
                } else {
                    action::AGENT_RESUMED
                });
            }
            next.status = status;
        }
        if next == agent {
            return Ok(agent);
        }
        if actions.is_empty()
            || next.allowlist != agent.allowlist
            || next.metadata != agent.metadata
        {
            actions.push(action::AGENT_UPDATED);
        }
        next.version = agent.version + 1;
        next.updated_at = now;
        let events: Vec<AuditEvent> = actions
            .iter()
            .map(|a| {
                agent_event(&next, a, actor.clone()).with_details(
                    json!({ "version": next.version, "scopes_applies_at": next.allowlist_applies_at }),
                )
            })
            .collect();
        if !self
            .store()
            .update_agent(&next, agent.version, &events)
            .await?
        {
            return Err(Error::AgentConcurrentUpdate);
        }
        Ok(next)
    }

    /// `agents.delete`: terminal; every key and every delegation to the agent is revoked in
    /// the same transaction. Deleting a deleted agent changes nothing.
    pub async fn delete_agent(&self, subject: &Subject<'_>, agent_id: AgentId) -> Result<Agent> {
        let agent = self.get_agent(subject, agent_id).await?;
        self.remove_agent(agent, subject.actor()).await
    }

    async fn remove_agent(&self, agent: Agent, actor: Actor) -> Result<Agent> {
        if agent.status == AgentStatus::Revoked {
            return Ok(agent);
        }
        let now = self.now();
        let deleted = Agent {
            status: AgentStatus::Revoked,
            revoked_at: Some(now),
            updated_at: now,
            version: agent.version + 1,
            ..agent.clone()
        };
        let event = agent_event(&deleted, action::AGENT_DELETED, actor.clone());
        let grants = crate::grants::revocation_event(agent.app_id, now, actor, "agent_deleted");
        if !self
            .store()
            .delete_agent(&deleted, agent.version, &event, &grants)
            .await?
        {
            return Err(Error::AgentConcurrentUpdate);
        }
        Ok(deleted)
    }

    /// `agents.mint_key`: another key for a live agent.
    pub async fn mint_agent_key(&self, caller: &Caller, agent_id: AgentId) -> Result<NewKey> {
        let agent = self.get_agent(&Subject::Caller(caller), agent_id).await?;
        if agent.status == AgentStatus::Revoked {
            return Err(Error::NotFound(Entity::Agent));
        }
        let keys = self.store().agent_keys(agent.app_id, agent.id).await?;
        let live = keys.iter().filter(|k| k.revoked_at.is_none()).count();
        if live >= MAX_AGENT_KEYS {
            return Err(Error::AgentKeyLimit);
        }
        let key = self.new_agent_key(&agent, keys.len() + 1)?;
        let event = agent_event(&agent, action::AGENT_KEY_MINTED, caller.actor())
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
        let key = self.agent_key(caller, agent_id, key_id).await?;
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
        self.agent_key(caller, agent_id, key_id).await
    }

    /// `agents.revoke_key`: terminal and idempotent; refuses to leave the agent without a key
    /// unless `force`.
    pub async fn revoke_agent_key(
        &self,
        caller: &Caller,
        agent_id: AgentId,
        key_id: KeyId,
        force: bool,
    ) -> Result<AgentKey> {
        let key = self.agent_key(caller, agent_id, key_id).await?;
        self.revoke_key_checked(key, force, caller.actor()).await
    }

    /// A key of one of the app's agents, for an app caller.
    async fn agent_key(
        &self,
        caller: &Caller,
        agent_id: AgentId,
        key_id: KeyId,
    ) -> Result<AgentKey> {
        let agent = self.get_agent(&Subject::Caller(caller), agent_id).await?;
        self.store()
            .get_key(caller.app_id, key_id)
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

    fn new_agent_key(&self, agent: &Agent, number: usize) -> Result<NewKey> {
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

fn agent_event(agent: &Agent, action: &str, actor: Actor) -> AuditEvent {
    AuditEvent::allow(
        agent.app_id,
        agent.updated_at,
        action,
        actor,
        Target {
            kind: "agent".into(),
            id: agent.id.to_string(),
        },
    )
}

fn key_target_event(key: &ApiKey, action: &str, actor: Actor, at: Timestamp) -> AuditEvent {
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
    .with_details(json!({ "agent_id": key.agent_id, "key_prefix": key.prefix }))
}

/// Lower-case letters, digits, `-` and `_`, starting with a letter or digit, at most 64.
fn validate_name(name: &str) -> Result<&str> {
    let mut bytes = name.bytes();
    let ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.len() <= 64;
    ensure(ok, || {
        format!(
            "name {name:?} must be 1-64 lower-case letters, digits, - or _ (starting with a letter or digit)"
        )
    })?;
    Ok(name)
}

/// `{provider: [scope, …]}` (with `managed_secret_slugs` naming secrets): non-empty keys and
/// lists of non-empty strings, without edge whitespace, at most 12 KiB. The legacy
/// `managed_secrets` key accepts no new names.
fn validate_allowlist(scopes: &Value) -> Result<AgentAllowlist> {
    let map = scopes
        .as_object()
        .ok_or_else(|| Error::Invalid("scopes must be an object of provider → scopes".into()))?;
    ensure(scopes.to_string().len() <= MAX_SCOPES_BYTES, || {
        "scopes must serialize to at most 12 KiB".into()
    })?;
    let clean = |s: &str| !s.is_empty() && s.trim() == s;
    let mut allowlist = AgentAllowlist::default();
    for (key, value) in map {
        ensure(clean(key), || {
            format!("scopes key {key:?} must be non-empty without edge whitespace")
        })?;
        if key == "managed_secrets" {
            return Err(Error::LegacyManagedSecretNameRejected);
        }
        let list = value.as_array().filter(|l| !l.is_empty()).ok_or_else(|| {
            Error::Invalid(format!("scopes.{key} must be a non-empty list of strings"))
        })?;
        let list = list
            .iter()
            .map(|v| v.as_str().filter(|s| clean(s)).map(str::to_owned))
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "scopes.{key} must hold non-empty strings without edge whitespace"
                ))
            })?;
        match key.as_str() {
            MANAGED_SECRET_SLUGS => allowlist.managed_secret_slugs = list,
            _ => {
                allowlist.providers.insert(key.clone(), list);
            }
        }
    }
    Ok(allowlist)
}

fn object(field: &str, value: Option<&Value>) -> Result<Map<String, Value>> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => {
            ensure(
                value.map(|v| v.to_string().len()).unwrap_or(0) <= MAX_OBJECT_BYTES,
                || format!("{field} must serialize to at most 16 KiB"),
            )?;
            Ok(map.clone())
        }
        Some(_) => Err(Error::Invalid(format!("{field} must be an object"))),
    }
}

/// Approval settings: `requires_approval` (bool), `approvers` (list of non-empty strings),
/// `approval_ttl_seconds` (positive integer), nothing else.
fn validate_approval(policy: Option<&Value>) -> Result<ApprovalSettings> {
    let map = object("policy", policy)?;
    let invalid = || {
        Error::Invalid(
            "policy: expected requires_approval (bool), approvers (list of non-empty strings) or approval_ttl_seconds (positive integer)".into(),
        )
    };
    let settings: ApprovalSettings =
        serde_json::from_value(Value::Object(map)).map_err(|_| invalid())?;
    let approvers_ok = settings.approvers.iter().flatten().all(|a| !a.is_empty());
    let ttl_ok = settings.approval_ttl_seconds.is_none_or(|t| t > 0);
    ensure(approvers_ok && ttl_ok, || invalid().to_string())?;
    Ok(settings)
}

fn request_fingerprint(value: &Value) -> [u8; 32] {
    Sha256::digest(value.to_string().as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowlist(v: Value) -> AgentAllowlist {
        validate_allowlist(&v).unwrap()
    }

    #[test]
    fn names() {
        for ok in ["research-bot", "a", "bot_2", "0x"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Bot", "-bot", "bot name", "bot.x", &"a".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_shape() {
        assert!(validate_allowlist(&json!({})).is_ok());
        assert!(
            validate_allowlist(
                &json!({"google": ["gmail.readonly"], "managed_secret_slugs": ["stripe"]})
            )
            .is_ok()
        );
        for bad in [
            json!([]),
            json!({"google": []}),
            json!({"google": [""]}),
            json!({" google": ["x"]}),
            json!({"google": "x"}),
            json!({"google": [" x"]}),
        ] {
            assert!(
                matches!(validate_allowlist(&bad), Err(Error::Invalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            validate_allowlist(&json!({"managed_secrets": ["Stripe"]})),
            Err(Error::LegacyManagedSecretNameRejected)
        ));
    }

    #[test]
    fn narrowing_is_detected_and_staged_as_a_union() {
        let current = allowlist(
            json!({"google": ["a", "b"], "slack": ["x"], "managed_secret_slugs": ["stripe"]}),
        );
        assert!(!current.narrowed_by(&allowlist(json!({
            "google": ["a", "b", "c"], "slack": ["x"], "managed_secret_slugs": ["stripe", "gh"]
        }))));
        assert!(current.narrowed_by(&allowlist(
            json!({"google": ["a"], "slack": ["x"], "managed_secret_slugs": ["stripe"]})
        )));
        assert!(current.narrowed_by(&allowlist(
            json!({"google": ["a", "b"], "managed_secret_slugs": ["stripe"]})
        )));
        assert!(current.narrowed_by(&allowlist(json!({"google": ["a", "b"], "slack": ["x"]}))));
        let merged = current.union(&allowlist(
            json!({"google": ["c"], "github": ["repo"], "managed_secret_slugs": ["gh"]}),
        ));
        assert_eq!(
            merged,
            allowlist(json!({
                "google": ["a", "b", "c"], "slack": ["x"], "github": ["repo"],
                "managed_secret_slugs": ["stripe", "gh"]
            }))
        );
        assert!(merged.names_secret("gh") && !merged.names_secret("other"));
    }

    #[test]
    fn allowlists_read_back_as_written() {
        let written = json!({"google": ["a"], "managed_secret_slugs": ["stripe"]});
        assert_eq!(
            serde_json::to_value(allowlist(written.clone())).unwrap(),
            written
        );
        let settings = json!({"requires_approval": false, "approvers": ["ops"]});
        let parsed = validate_approval(Some(&settings)).unwrap();
        assert!(!parsed.requires_approval());
        assert_eq!(serde_json::to_value(parsed).unwrap(), settings);
    }

    #[test]
    fn policies() {
        assert!(
            validate_approval(Some(
                &json!({"requires_approval": true, "approvers": ["ops"]})
            ))
            .is_ok()
        );
        assert!(validate_approval(Some(&json!({"requires_approval": "yes"}))).is_err());
        assert!(validate_approval(Some(&json!({"unknown": 1}))).is_err());
        assert!(validate_approval(Some(&json!([]))).is_err());
    }
}
