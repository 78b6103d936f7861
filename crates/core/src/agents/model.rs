//! What an agent is: its lifecycle, allowlist and approval settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{AgentId, AppId, KeyId};
use crate::keys::NewKey;
use crate::time::Timestamp;

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
pub(super) const MANAGED_SECRET_SLUGS: &str = "managed_secret_slugs";

impl AgentAllowlist {
    /// True if it names the managed secret `slug`.
    pub fn names_secret(&self, slug: &str) -> bool {
        self.managed_secret_slugs.iter().any(|s| s == slug)
    }

    /// True if it names the OAuth provider `id` and every API scope of `scopes` (a grant's):
    /// an empty list allows any scope; the sign-in scopes of OpenID Connect grant no API
    /// access and are not counted.
    pub fn allows_scopes(&self, id: &str, scopes: &[String]) -> bool {
        const SIGN_IN_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];
        self.providers.get(id).is_some_and(|allowed| {
            allowed.is_empty()
                || scopes
                    .iter()
                    .all(|s| SIGN_IN_SCOPES.contains(&s.as_str()) || allowed.contains(s))
        })
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
    pub(super) fn narrowed_by(&self, wanted: &AgentAllowlist) -> bool {
        self.entries().any(|(key, held)| match wanted.entry(key) {
            None => true,
            Some(kept) => held.iter().any(|s| !kept.contains(s)),
        })
    }

    /// Everything either allowlist holds.
    pub(super) fn union(&self, other: &AgentAllowlist) -> AgentAllowlist {
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
    pub(super) fn settled(mut self, now: Timestamp) -> Agent {
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
    /// Allowlist as sent (`scopes`).
    pub allowlist: Value,
    /// Metadata object.
    pub metadata: Option<Value>,
    /// Display name.
    pub display_name: Option<String>,
    /// Approval settings as sent (`policy`).
    pub approval: Option<Value>,
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
    pub allowlist: Option<Value>,
    /// New approval settings (replaced whole).
    pub approval: Option<Value>,
    /// `active` or `inactive`.
    pub status: Option<String>,
    /// Optimistic concurrency.
    pub expected_version: Option<i64>,
    /// How long a narrowing is staged (0 = at once; default 24 h).
    pub grace_seconds: Option<i64>,
}
