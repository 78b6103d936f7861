//! Audit events: what is recorded for every decision and lifecycle change, and the hash chain
//! that makes the log tamper-evident. Stores append an event in the same transaction as the
//! change it describes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ids::{AgentId, AppId, EventId, KeyId};
use crate::time::Timestamp;

/// Names of recorded actions.
pub mod action {
    /// An app was created.
    pub const APP_CREATED: &str = "app.created";
    /// An operator minted an API key.
    pub const KEY_MINTED: &str = "key.minted";
    /// A key derived a short-lived key.
    pub const KEY_DERIVED: &str = "key.derived";
    /// A key was rotated.
    pub const KEY_ROTATED: &str = "key.rotated";
    /// A key (and its derived keys) was revoked.
    pub const KEY_REVOKED: &str = "key.revoked";
    /// The app's identity provider was configured.
    pub const IDP_CONFIGURED: &str = "idp.configured";
    /// An end user was seen for the first time.
    pub const USER_CREATED: &str = "user.created";
    /// A managed secret was created.
    pub const SECRET_CREATED: &str = "secret.created";
    /// A managed secret's value was replaced.
    pub const SECRET_ROTATED: &str = "secret.rotated";
    /// A managed secret was deleted (its grants revoked).
    pub const SECRET_DELETED: &str = "secret.deleted";
    /// A grant was created.
    pub const GRANT_CREATED: &str = "grant.created";
    /// A sibling grant was minted from another.
    pub const GRANT_MINTED: &str = "grant.minted";
    /// A grant was revoked.
    pub const GRANT_REVOKED: &str = "grant.revoked";
    /// A delegation was created or renewed.
    pub const DELEGATION_CREATED: &str = "delegation.created";
    /// A delegation was revoked.
    pub const DELEGATION_REVOKED: &str = "delegation.revoked";
    /// An agent was created.
    pub const AGENT_CREATED: &str = "agent.created";
    /// An agent was changed.
    pub const AGENT_UPDATED: &str = "agent.updated";
    /// An agent was paused.
    pub const AGENT_SUSPENDED: &str = "agent.suspended";
    /// An agent was resumed.
    pub const AGENT_RESUMED: &str = "agent.resumed";
    /// An agent was deleted (its keys and delegations revoked).
    pub const AGENT_DELETED: &str = "agent.deleted";
    /// An agent got a new key.
    pub const AGENT_KEY_MINTED: &str = "agent_key.minted";
    /// An agent key was deprecated.
    pub const AGENT_KEY_DEPRECATED: &str = "agent_key.deprecated";
    /// An agent key's deprecation was lifted.
    pub const AGENT_KEY_UNDEPRECATED: &str = "agent_key.undeprecated";
}

/// Allowed or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The action happened.
    Allow,
    /// The action was refused.
    Deny,
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// The operator, through the admin API or CLI.
    Operator,
    /// A signed SDK request.
    ApiKey,
    /// An end user, through the end-user API.
    User,
    /// Alter itself (expiry sweeps, cascades).
    System,
}

/// The acting party, as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Kind of actor.
    pub kind: ActorKind,
    /// The key that signed the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeyId>,
    /// Its display prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// The agent the request acted as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    /// `X-Alter-Caller` as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// `X-Alter-Caller-Type` as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_type: Option<String>,
    /// The end user, for user actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_user_id: Option<String>,
}

impl Actor {
    /// The operator.
    pub fn operator() -> Self {
        Actor::of_kind(ActorKind::Operator)
    }

    /// Alter itself.
    pub fn system() -> Self {
        Actor::of_kind(ActorKind::System)
    }

    pub(crate) fn of_kind(kind: ActorKind) -> Self {
        Actor {
            kind,
            key_id: None,
            key_prefix: None,
            agent_id: None,
            caller: None,
            caller_type: None,
            app_user_id: None,
        }
    }
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// `app`, `key`, `agent`, `grant`, `secret`, …
    pub kind: String,
    /// Its id.
    pub id: String,
}

/// One audit event. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Event id (time-ordered).
    pub id: EventId,
    /// The app whose chain the event belongs to.
    pub app_id: AppId,
    /// When it happened.
    pub at: Timestamp,
    /// What happened (see [`action`]).
    pub action: String,
    /// Allowed or refused.
    pub decision: Decision,
    /// Why (a refusal code, or the operator's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who acted.
    pub actor: Actor,
    /// What it was about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// The audit context the caller sent (run id, thread id, tool, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<BTreeMap<String, String>>,
    /// Further facts, specific to the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl AuditEvent {
    /// An allowed action by `actor` on `target`, now.
    pub fn allow(app_id: AppId, at: Timestamp, action: &str, actor: Actor, target: Target) -> Self {
        AuditEvent {
            id: EventId::new(),
            app_id,
            at,
            action: action.to_owned(),
            decision: Decision::Allow,
            reason: None,
            actor,
            target: Some(target),
            context: None,
            details: None,
        }
    }

    /// Adds action-specific facts.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Sets the reason.
    pub fn with_reason(mut self, reason: Option<String>) -> Self {
        self.reason = reason;
        self
    }

    /// The exact bytes the chain hash covers.
    pub fn canonical_body(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// The `prev_hash` of the first event of a chain.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// `SHA-256("alter/audit/v1" ‖ prev_hash ‖ seq ‖ body)`: each event's hash covers its content,
/// its position and its predecessor's hash.
pub fn chain_hash(prev_hash: &[u8; 32], seq: i64, body: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"alter/audit/v1\0");
    hasher.update(prev_hash);
    hasher.update(seq.to_be_bytes());
    hasher.update(body.as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_content_position_and_predecessor() {
        let h = chain_hash(&GENESIS_HASH, 1, "{}");
        assert_ne!(h, chain_hash(&GENESIS_HASH, 2, "{}"));
        assert_ne!(h, chain_hash(&GENESIS_HASH, 1, "{ }"));
        assert_ne!(h, chain_hash(&[1; 32], 1, "{}"));
    }

    #[test]
    fn events_round_trip_through_their_body() {
        let event = AuditEvent::allow(
            AppId::new(),
            Timestamp::from_unix_seconds(1),
            action::KEY_MINTED,
            Actor::operator(),
            Target {
                kind: "key".into(),
                id: "k".into(),
            },
        );
        let body = event.canonical_body().unwrap();
        let back: AuditEvent = serde_json::from_str(&body).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.canonical_body().unwrap(), body);
    }
}
