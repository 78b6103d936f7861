//! Audit events: what is recorded for every decision and lifecycle change, and the hash chain
//! that makes the log tamper-evident. Stores append an event in the same transaction as the
//! change it describes.

use std::collections::BTreeMap;

use alter_crypto::{MacKey, MacRoot, MasterKey};
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
    /// The IdP's sign-in client was configured.
    pub const IDP_SIGN_IN_CONFIGURED: &str = "idp.sign_in_configured";
    /// An end user was seen for the first time.
    pub const USER_CREATED: &str = "user.created";
    /// An end user completed a link-based sign-in.
    pub const USER_SIGNED_IN: &str = "user.signed_in";
    /// The IdP deactivated a user (an inbound IdP event).
    pub const USER_DEACTIVATED: &str = "user.deactivated";
    /// The IdP reactivated a user (an inbound IdP event).
    pub const USER_REACTIVATED: &str = "user.reactivated";
    /// The IdP removed a user from a group (an inbound IdP event).
    pub const USER_GROUP_REMOVED: &str = "user.group_removed";
    /// The IdP added a user to a group (an inbound IdP event).
    pub const USER_GROUP_ADDED: &str = "user.group_added";
    /// An inbound IdP event was received and verified.
    pub const IDP_EVENT_RECEIVED: &str = "idp.event_received";
    /// The app's inbound IdP event secret was generated or rotated.
    pub const IDP_EVENT_SECRET_ROTATED: &str = "idp.event_secret_rotated";
    /// The previous inbound IdP event secret was ended before its grace ran out.
    pub const IDP_EVENT_SECRET_PREVIOUS_ENDED: &str = "idp.event_secret_previous_ended";
    /// An identity assertion was signed.
    pub const IDENTITY_ASSERTED: &str = "identity.asserted";
    /// A completed sign-in's user token was handed to the key that polled for it (once).
    pub const USER_TOKEN_COLLECTED: &str = "user.token_collected";
    /// A managed secret was created.
    pub const SECRET_CREATED: &str = "secret.created";
    /// A managed secret's value was replaced.
    pub const SECRET_ROTATED: &str = "secret.rotated";
    /// A managed secret's allowed hosts were replaced.
    pub const SECRET_HOSTS_CHANGED: &str = "secret.hosts_changed";
    /// A managed secret was deleted (its grants revoked).
    pub const SECRET_DELETED: &str = "secret.deleted";
    /// An OAuth provider was configured or reconfigured.
    pub const PROVIDER_CONFIGURED: &str = "provider.configured";
    /// An OAuth provider was removed.
    pub const PROVIDER_DELETED: &str = "provider.deleted";
    /// An operator imported a provider's spec.
    pub const PROVIDER_SPEC_IMPORTED: &str = "provider_spec.imported";
    /// An operator removed a provider's spec.
    pub const PROVIDER_SPEC_DELETED: &str = "provider_spec.deleted";
    /// A grant was created.
    pub const GRANT_CREATED: &str = "grant.created";
    /// A sibling grant was minted from another.
    pub const GRANT_MINTED: &str = "grant.minted";
    /// A grant was revoked.
    pub const GRANT_REVOKED: &str = "grant.revoked";
    /// An end user extended a grant's lifetime (Wallet).
    pub const GRANT_EXTENDED: &str = "grant.extended";
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
    /// A credential was released to a signed caller (retrieve mode).
    pub const CREDENTIAL_RELEASED: &str = "credential.released";
    /// A credential release was refused.
    pub const CREDENTIAL_DENIED: &str = "credential.denied";
    /// The client reported the outcome of a provider call made with a released credential.
    pub const CREDENTIAL_USED: &str = "credential.used";
    /// The client reported that a provider refused a grant's scopes.
    pub const GRANT_SCOPE_MISMATCH: &str = "grant.scope_mismatch";
    /// An operator cleared a grant's scope-mismatch flag.
    pub const GRANT_SCOPE_MISMATCH_CLEARED: &str = "grant.scope_mismatch_cleared";
    /// An OAuth connection was made (the callback of a Connect session).
    pub const CONNECTION_CREATED: &str = "connection.created";
    /// An OAuth connection was reconnected: new tokens, same grant.
    pub const CONNECTION_RECONNECTED: &str = "connection.reconnected";
    /// The provider refused a connection's refresh token: the user must connect again.
    pub const CONNECTION_REAUTH_REQUIRED: &str = "connection.reauth_required";
    /// A connection was revoked with its last grant; its tokens go to upstream revocation.
    pub const CONNECTION_REVOKED: &str = "connection.revoked";
    /// The provider confirmed the revocation of a connection's tokens (RFC 7009).
    pub const CONNECTION_REVOKED_UPSTREAM: &str = "connection.revoked_upstream";
    /// A proxied call was held for a human's approval.
    pub const APPROVAL_REQUESTED: &str = "approval.requested";
    /// A person approved a held call.
    pub const APPROVAL_APPROVED: &str = "approval.approved";
    /// A person denied a held call.
    pub const APPROVAL_DENIED: &str = "approval.denied";
    /// Nobody decided on a held call in time.
    pub const APPROVAL_EXPIRED: &str = "approval.expired";
    /// An approved call was made.
    pub const APPROVAL_EXECUTED: &str = "approval.executed";
    /// An approved call could not be made.
    pub const APPROVAL_FAILED: &str = "approval.failed";
    /// A Connect session was created.
    pub const CONNECT_SESSION_CREATED: &str = "connect_session.created";
    /// A Connect session ended in an error (denied consent, failed exchange…).
    pub const CONNECT_SESSION_FAILED: &str = "connect_session.failed";
    /// The first keyed event of a chain whose earlier events carry plain SHA-256 hashes: its
    /// keyed hash vouches for all of them.
    pub const AUDIT_CHAIN_KEYED: &str = "audit.chain_keyed";
    /// An operator added a policy rule.
    pub const POLICY_RULE_ADDED: &str = "policy.rule_added";
    /// An operator changed a policy rule (a new version).
    pub const POLICY_RULE_UPDATED: &str = "policy.rule_updated";
    /// An operator removed a policy rule.
    pub const POLICY_RULE_REMOVED: &str = "policy.rule_removed";
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

impl Decision {
    /// `allow` or `deny`, as stored and as filters name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }

    /// The inverse of [`Self::as_str`].
    pub fn parse(text: &str) -> Option<Decision> {
        [Decision::Allow, Decision::Deny]
            .into_iter()
            .find(|d| d.as_str() == text)
    }
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
    /// Which operator, when one signed in to the portal acted: an operator account's
    /// username, or [`crate::operators::ADMIN_TOKEN_OPERATOR`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

impl Actor {
    /// The operator; named when the action runs inside
    /// [`crate::operators::acting_as`] (a portal request).
    pub fn operator() -> Self {
        Actor {
            operator: crate::operators::acting_operator(),
            ..Actor::of_kind(ActorKind::Operator)
        }
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
            operator: None,
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
    /// Whose credential it was: `{"type": "user", "app_user_id": …}` and the like.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Value>,
    /// The outgoing call a credential was released for: method and URL without query values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestSummary>,
    /// What came of it (the client's report of the provider call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Value>,
    /// The W3C trace the call belonged to (its `traceparent`'s trace id), so the trace's
    /// records and the caller's spans are shown together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// An outgoing call as the audit log keeps it: no query values, no headers, no body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSummary {
    /// Upper-case method.
    pub method: String,
    /// `scheme://host[:port]/path`, then `?` and the query's parameter names only.
    pub url: String,
}

impl RequestSummary {
    /// Summarizes a URL, dropping query values, user info and the fragment. A URL that does
    /// not parse is kept as `<invalid url>`.
    pub fn new(method: &str, url: &str) -> Self {
        RequestSummary {
            method: method.to_owned(),
            url: redact_url(url),
        }
    }
}

/// `https://user:pw@host/p?a=1&b=2#f` → `https://host/p?a&b`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<invalid url>".into();
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority_path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = match authority_path.find('/') {
        Some(i) => authority_path.split_at(i),
        None => (authority_path, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or_default();
    let mut out = format!("{scheme}://{host}{path}");
    let names: Vec<&str> = query
        .split('&')
        .filter(|f| !f.is_empty())
        .map(|f| f.split('=').next().unwrap_or_default())
        .collect();
    if !names.is_empty() {
        out.push('?');
        out.push_str(&names.join("&"));
    }
    out
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
            principal: None,
            request: None,
            outcome: None,
            trace_id: None,
        }
    }

    /// A refused action.
    pub fn deny(app_id: AppId, at: Timestamp, action: &str, actor: Actor, reason: &str) -> Self {
        AuditEvent {
            decision: Decision::Deny,
            reason: Some(reason.to_owned()),
            target: None,
            ..AuditEvent::allow(
                app_id,
                at,
                action,
                actor,
                Target {
                    kind: String::new(),
                    id: String::new(),
                },
            )
        }
    }

    /// The end user the event concerns: the principal's, else the acting user's.
    pub fn subject_user(&self) -> Option<String> {
        self.principal
            .as_ref()
            .and_then(|p| p.get("app_user_id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| self.actor.app_user_id.clone())
    }

    /// The grant the event concerns.
    pub fn grant_id(&self) -> Option<&str> {
        self.target
            .as_ref()
            .filter(|t| t.kind == "grant")
            .map(|t| t.id.as_str())
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

/// `hash_version` of events written before chains were keyed: plain SHA-256.
pub const HASH_PLAIN_SHA256: i64 = 0;
/// `hash_version` of keyed events: HMAC-SHA256 under [`ChainKey`] (purpose `audit-chain/v1`).
pub const HASH_KEYED_V1: i64 = 1;

/// The key of the audit chain, derived from the MAC root and never stored: whoever holds
/// only the database cannot compute a valid hash for an event they add or alter.
#[derive(Debug, Clone)]
pub struct ChainKey(MacKey);

impl ChainKey {
    /// The chain key of the vault whose master key is `master`.
    pub fn derive(master: &MasterKey) -> Self {
        Self::from_root(&master.legacy_mac_root())
    }

    /// The chain key derived from the database's MAC root.
    pub fn from_root(root: &MacRoot) -> Self {
        ChainKey(root.derive_mac_key("audit-chain/v1"))
    }

    /// `HMAC-SHA256(key, "alter/audit/v2" ‖ prev_hash ‖ seq ‖ body)`: each event's hash covers
    /// its content, its position and its predecessor's hash (version [`HASH_KEYED_V1`]).
    pub fn hash(&self, prev_hash: &[u8; 32], seq: i64, body: &str) -> [u8; 32] {
        self.0.tag(&[
            b"alter/audit/v2\0",
            prev_hash,
            &seq.to_be_bytes(),
            body.as_bytes(),
        ])
    }
}

/// `SHA-256("alter/audit/v1" ‖ prev_hash ‖ seq ‖ body)`: the unkeyed hash of events written
/// before chains were keyed (version [`HASH_PLAIN_SHA256`]); only checked, never written.
pub fn plain_chain_hash(prev_hash: &[u8; 32], seq: i64, body: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"alter/audit/v1\0");
    hasher.update(prev_hash);
    hasher.update(seq.to_be_bytes());
    hasher.update(body.as_bytes());
    hasher.finalize().into()
}

/// A signed statement "app's chain had reached `seq` with hash `hash` at `at`", kept outside
/// the database so that a database writer cannot silently cut the log back behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The app.
    pub app_id: AppId,
    /// Sequence number of the chain head.
    pub seq: i64,
    /// Hash of the event at `seq` (the genesis hash for an empty chain).
    pub hash: [u8; 32],
    /// When it was taken.
    pub at: Timestamp,
    /// HMAC-SHA256 of the above under [`CheckpointKey`].
    pub tag: [u8; 32],
}

/// The key checkpoints are signed with, derived from the MAC root and never stored: only
/// whoever can unwrap the root (the key holder) can issue or check one. Retention anchors
/// (the last event retention removed, kept in the database) are signed the same way under a
/// key of their own ([`CheckpointKey::anchors_from_root`]), so a checkpoint handed out (or
/// logged) can never be planted as an anchor.
#[derive(Debug, Clone)]
pub struct CheckpointKey {
    key: MacKey,
    /// The first part of every signed message: the purpose, spelt out.
    label: &'static [u8],
}

impl CheckpointKey {
    /// The checkpoint key of the vault whose master key is `master`.
    pub fn derive(master: &MasterKey) -> Self {
        Self::from_root(&master.legacy_mac_root())
    }

    /// The checkpoint key derived from the database's MAC root.
    pub fn from_root(root: &MacRoot) -> Self {
        CheckpointKey {
            key: root.derive_mac_key("audit-checkpoint/v1"),
            label: b"alter/audit-checkpoint/v1\0",
        }
    }

    /// The key of retention anchors, derived from the database's MAC root.
    pub fn anchors_from_root(root: &MacRoot) -> Self {
        CheckpointKey {
            key: root.derive_mac_key("audit-anchor/v1"),
            label: b"alter/audit-anchor/v1\0",
        }
    }

    /// A signed checkpoint.
    pub fn sign(&self, app_id: AppId, seq: i64, hash: [u8; 32], at: Timestamp) -> Checkpoint {
        let tag = self.key.tag(
            &self
                .parts(app_id, seq, &hash, at)
                .each_ref()
                .map(Vec::as_slice),
        );
        Checkpoint {
            app_id,
            seq,
            hash,
            at,
            tag,
        }
    }

    /// Whether `checkpoint` was signed with this key, unchanged (constant time).
    pub fn verifies(&self, checkpoint: &Checkpoint) -> bool {
        let parts = self.parts(
            checkpoint.app_id,
            checkpoint.seq,
            &checkpoint.hash,
            checkpoint.at,
        );
        self.key
            .verify(&parts.each_ref().map(Vec::as_slice), &checkpoint.tag)
    }

    fn parts(&self, app_id: AppId, seq: i64, hash: &[u8; 32], at: Timestamp) -> [Vec<u8>; 5] {
        let app = app_id.to_string().into_bytes();
        [
            self.label.to_vec(),
            [(app.len() as u32).to_be_bytes().as_slice(), &app].concat(),
            seq.to_be_bytes().to_vec(),
            hash.to_vec(),
            at.micros().to_be_bytes().to_vec(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey::from_encoded("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap()
    }

    #[test]
    fn the_hash_covers_content_position_predecessor_and_key() {
        let key = ChainKey::derive(&master());
        let h = key.hash(&GENESIS_HASH, 1, "{}");
        assert_ne!(h, key.hash(&GENESIS_HASH, 2, "{}"));
        assert_ne!(h, key.hash(&GENESIS_HASH, 1, "{ }"));
        assert_ne!(h, key.hash(&[1; 32], 1, "{}"));
        assert_ne!(h, plain_chain_hash(&GENESIS_HASH, 1, "{}"));
        let other = ChainKey::derive(&MasterKey::generate().unwrap());
        assert_ne!(h, other.hash(&GENESIS_HASH, 1, "{}"));
    }

    #[test]
    fn checkpoints_verify_only_unchanged_and_under_their_key() {
        let key = CheckpointKey::derive(&master());
        let checkpoint = key.sign(AppId::new(), 7, [3; 32], Timestamp::from_unix_seconds(9));
        assert!(key.verifies(&checkpoint));
        for changed in [
            Checkpoint {
                app_id: AppId::new(),
                ..checkpoint.clone()
            },
            Checkpoint {
                seq: 8,
                ..checkpoint.clone()
            },
            Checkpoint {
                hash: [4; 32],
                ..checkpoint.clone()
            },
            Checkpoint {
                at: Timestamp::from_unix_seconds(10),
                ..checkpoint.clone()
            },
        ] {
            assert!(!key.verifies(&changed));
        }
        let other = CheckpointKey::derive(&MasterKey::generate().unwrap());
        assert!(!other.verifies(&checkpoint));
    }

    #[test]
    fn a_checkpoint_is_no_anchor_and_an_anchor_no_checkpoint() {
        let root = master().legacy_mac_root();
        let (checkpoints, anchors) = (
            CheckpointKey::from_root(&root),
            CheckpointKey::anchors_from_root(&root),
        );
        let at = Timestamp::from_unix_seconds(9);
        let checkpoint = checkpoints.sign(AppId::new(), 7, [3; 32], at);
        let anchor = anchors.sign(checkpoint.app_id, 7, [3; 32], at);
        assert!(anchors.verifies(&anchor));
        assert!(!anchors.verifies(&checkpoint));
        assert!(!checkpoints.verifies(&anchor));
    }

    /// Rows of a chain of `versions.len()` events, each hashed the way its version says.
    fn rows(key: &ChainKey, app: AppId, versions: &[i64]) -> Vec<ChainRow> {
        let mut prev = GENESIS_HASH;
        let mut out = Vec::new();
        for (seq, version) in (1..).zip(versions) {
            let event = AuditEvent::allow(
                app,
                Timestamp::from_unix_seconds(seq),
                action::KEY_MINTED,
                Actor::operator(),
                Target {
                    kind: "key".into(),
                    id: format!("k{seq}"),
                },
            );
            let body = event.canonical_body().unwrap();
            let hash = match *version {
                HASH_KEYED_V1 => key.hash(&prev, seq, &body),
                _ => plain_chain_hash(&prev, seq, &body),
            };
            out.push(ChainRow {
                seq,
                id: event.id.to_string(),
                at: event.at.micros(),
                action: event.action.clone(),
                decision: "allow".into(),
                actor_key_id: None,
                agent_id: None,
                grant_id: None,
                app_user_id: None,
                target_id: Some(format!("k{seq}")),
                body,
                hash_version: *version,
                prev_hash: prev.to_vec(),
                hash: hash.to_vec(),
            });
            prev = hash;
        }
        out
    }

    fn walk(key: &ChainKey, rows: &[ChainRow]) -> Option<ChainProblem> {
        let mut cursor = ChainCursor::START;
        check_chain_rows(rows, key, &mut cursor).or_else(|| unvouched_plain_events(&cursor))
    }

    #[test]
    fn unkeyed_events_verify_only_as_a_prefix_a_keyed_event_vouches_for() {
        let key = ChainKey::derive(&master());
        let app = AppId::new();
        let (plain, keyed) = (HASH_PLAIN_SHA256, HASH_KEYED_V1);
        assert_eq!(walk(&key, &rows(&key, app, &[keyed, keyed])), None);
        assert_eq!(walk(&key, &rows(&key, app, &[plain, plain, keyed])), None);
        let unvouched = walk(&key, &rows(&key, app, &[plain, plain])).unwrap();
        assert!(unvouched.problem.contains("events 1 to 2"), "{unvouched:?}");
        let downgraded = walk(&key, &rows(&key, app, &[keyed, plain, keyed])).unwrap();
        assert_eq!(downgraded.seq, 2);
        // Keyed hashes computed with another master key do not verify.
        let other = ChainKey::derive(&MasterKey::generate().unwrap());
        assert_eq!(walk(&key, &rows(&other, app, &[keyed])).unwrap().seq, 1);
    }

    #[test]
    fn urls_lose_query_values_credentials_and_fragments() {
        assert_eq!(
            redact_url("https://u:p@api.stripe.com/v1/charges?limit=5&key=sk_live&x#frag"),
            "https://api.stripe.com/v1/charges?limit&key&x"
        );
        assert_eq!(redact_url("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(redact_url("nope"), "<invalid url>");
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

/// Which events a listing holds; every filter narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Events about this grant.
    pub grant_id: Option<String>,
    /// Events by or about this agent.
    pub agent_id: Option<String>,
    /// Events concerning this end user.
    pub app_user_id: Option<String>,
    /// This action.
    pub action: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<Decision>,
    /// At or after.
    pub since: Option<Timestamp>,
    /// Before.
    pub until: Option<Timestamp>,
    /// Of this W3C trace.
    pub trace_id: Option<String>,
}

/// A stored event and its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Position in the app's chain (from 1).
    pub seq: i64,
    /// The event.
    pub event: AuditEvent,
    /// Its chain hash.
    pub hash: [u8; 32],
}

/// A stored chain row, as read for verification: what the columns say, unparsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRow {
    /// Position.
    pub seq: i64,
    /// Event id column.
    pub id: String,
    /// Time column.
    pub at: i64,
    /// Action column.
    pub action: String,
    /// Decision column.
    pub decision: String,
    /// Actor key column.
    pub actor_key_id: Option<String>,
    /// Agent column.
    pub agent_id: Option<String>,
    /// Grant column.
    pub grant_id: Option<String>,
    /// User column.
    pub app_user_id: Option<String>,
    /// Target column.
    pub target_id: Option<String>,
    /// The hashed body.
    pub body: String,
    /// How the hash was computed ([`HASH_PLAIN_SHA256`] or [`HASH_KEYED_V1`]).
    pub hash_version: i64,
    /// Stored predecessor hash.
    pub prev_hash: Vec<u8>,
    /// Stored hash.
    pub hash: Vec<u8>,
}

/// The first thing wrong with a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainProblem {
    /// The position where it shows.
    pub seq: i64,
    /// The event there, if one is.
    pub event_id: Option<String>,
    /// What is wrong.
    pub problem: String,
}

/// The outcome of walking a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Events checked.
    pub events: i64,
    /// The first problem; none when the chain verifies.
    pub first_problem: Option<ChainProblem>,
    /// The sequence number of the checkpoint the chain was checked against, if one was given.
    pub checkpoint_seq: Option<i64>,
    /// The last event retention removed, when the walk started from its anchor.
    pub anchor_seq: Option<i64>,
}

/// How far a chain walk got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainCursor {
    /// The last event checked (0 before the first).
    pub seq: i64,
    /// Its hash.
    pub hash: [u8; 32],
    /// Whether a keyed event was seen: plain SHA-256 events may only precede the first one.
    pub keyed: bool,
}

impl ChainCursor {
    /// Before the first event.
    pub const START: ChainCursor = ChainCursor {
        seq: 0,
        hash: GENESIS_HASH,
        keyed: false,
    };
}

/// Walks chain rows (in seq order, continuing from `cursor`) and returns the first problem.
///
/// Plain SHA-256 events (written before chains were keyed) are accepted only before the first
/// keyed event, whose keyed hash covers theirs; a chain that ends in plain events has nothing
/// vouching for them, and [`unvouched_plain_events`] reports it.
pub fn check_chain_rows(
    rows: &[ChainRow],
    key: &ChainKey,
    cursor: &mut ChainCursor,
) -> Option<ChainProblem> {
    for row in rows {
        let prev = (cursor.seq, cursor.hash);
        let problem = |what: &str| {
            Some(ChainProblem {
                seq: row.seq,
                event_id: Some(row.id.clone()),
                problem: what.to_owned(),
            })
        };
        if row.seq != prev.0 + 1 {
            return Some(ChainProblem {
                seq: prev.0 + 1,
                event_id: None,
                problem: format!("events {} to {} are missing", prev.0 + 1, row.seq - 1),
            });
        }
        if row.prev_hash.as_slice() != prev.1 {
            return problem(
                "does not follow its predecessor (reordered, or an event before it was removed or altered)",
            );
        }
        let expected = match row.hash_version {
            HASH_KEYED_V1 => key.hash(&prev.1, row.seq, &row.body),
            HASH_PLAIN_SHA256 if !cursor.keyed => plain_chain_hash(&prev.1, row.seq, &row.body),
            HASH_PLAIN_SHA256 => {
                return problem("altered: an unkeyed hash after the chain was keyed");
            }
            _ => return problem("altered: unknown hash version"),
        };
        if !alter_crypto::ct_eq(&row.hash, &expected) {
            return problem("altered: its content no longer matches its hash");
        }
        let Ok(event) = serde_json::from_str::<AuditEvent>(&row.body) else {
            return problem("altered: its body is not an event");
        };
        let decision = event.decision.as_str();
        let columns_match = row.id == event.id.to_string()
            && row.at == event.at.micros()
            && row.action == event.action
            && row.decision == decision
            && row.actor_key_id == event.actor.key_id.map(|k| k.to_string())
            && row.agent_id == event.actor.agent_id.map(|a| a.to_string())
            && row.grant_id.as_deref() == event.grant_id().filter(|g| !g.is_empty())
            && row.app_user_id == event.subject_user()
            && row.target_id.as_deref()
                == event
                    .target
                    .as_ref()
                    .map(|t| t.id.as_str())
                    .filter(|t| !t.is_empty());
        if !columns_match {
            return problem("altered: a column differs from the hashed content");
        }
        *cursor = ChainCursor {
            seq: row.seq,
            hash: expected,
            keyed: row.hash_version == HASH_KEYED_V1,
        };
    }
    None
}

/// The problem of a walk that ended on plain SHA-256 events: no keyed event vouches for them,
/// so anyone with the database could have written them.
pub fn unvouched_plain_events(cursor: &ChainCursor) -> Option<ChainProblem> {
    (cursor.seq > 0 && !cursor.keyed).then(|| ChainProblem {
        seq: 1,
        event_id: None,
        problem: format!(
            "events 1 to {} carry unkeyed hashes and no keyed event follows them \
             (the {} event is missing)",
            cursor.seq,
            action::AUDIT_CHAIN_KEYED
        ),
    })
}

/// Rows read per page when verifying.
const VERIFY_PAGE: i64 = 5_000;

impl crate::vault::Vault {
    /// A page of an app's audit events (operator), oldest first, after the cursor `after_seq`.
    pub async fn audit_events(
        &self,
        app_id: AppId,
        filter: EventFilter,
        after_seq: i64,
        limit: i64,
    ) -> crate::error::Result<Vec<StoredEvent>> {
        self.get_app(app_id).await?;
        let limit = crate::validate::int_in_range("limit", limit, 1, 1000)?;
        Ok(self
            .store()
            .list_events(app_id, &filter, after_seq.max(0), limit)
            .await?)
    }

    /// Walks an app's whole chain and names the first event that was altered, removed or
    /// reordered (operator). The head is read first: events appended while the walk runs are
    /// after it and are left for the next verification. With a `checkpoint`, the chain must
    /// also still reach it: the event at its position must carry its hash. When retention
    /// removed the oldest events, the walk starts from the app's anchor, whose signature must
    /// verify: the first event kept must follow the anchor's hash.
    pub async fn verify_audit_chain(
        &self,
        app_id: AppId,
        checkpoint: Option<&Checkpoint>,
    ) -> crate::error::Result<ChainReport> {
        let report = self.walk_audit_chain(app_id, checkpoint).await?;
        // Retention may have moved the anchor and removed the events before it while the walk
        // ran, which looks like a gap: then the walk runs again, once, from the new anchor.
        if report.first_problem.is_some() {
            let anchor = self.store().audit_anchor(app_id).await?;
            if anchor.map(|a| a.seq) != report.anchor_seq {
                return self.walk_audit_chain(app_id, checkpoint).await;
            }
        }
        Ok(report)
    }

    /// One walk of [`Vault::verify_audit_chain`].
    async fn walk_audit_chain(
        &self,
        app_id: AppId,
        checkpoint: Option<&Checkpoint>,
    ) -> crate::error::Result<ChainReport> {
        self.get_app(app_id).await?;
        let anchor = self.store().audit_anchor(app_id).await?;
        let from = anchor.as_ref().map_or(0, |a| a.seq);
        let report = |last_seq: i64, first_problem: Option<ChainProblem>| ChainReport {
            events: (last_seq - from).max(0),
            first_problem,
            checkpoint_seq: checkpoint.map(|c| c.seq),
            anchor_seq: anchor.as_ref().map(|a| a.seq),
        };
        if let Some(problem) = checkpoint.and_then(|c| self.unusable_checkpoint(app_id, c)) {
            return Ok(report(from, Some(problem)));
        }
        let mut cursor = match self.walk_start(app_id, anchor.as_ref()) {
            Ok(cursor) => cursor,
            Err(problem) => return Ok(report(from, Some(problem))),
        };
        let (head_seq, head_hash) = self.store().chain_head(app_id).await?.unwrap_or_default();
        // The hash of the checkpoint's event as the walk met it (or as the anchor vouches).
        let mut at_checkpoint = checkpoint
            .filter(|c| c.seq == cursor.seq)
            .map(|_| cursor.hash);
        while cursor.seq < head_seq {
            let mut rows = self
                .store()
                .chain_rows(app_id, cursor.seq, VERIFY_PAGE)
                .await?;
            rows.retain(|row| row.seq <= head_seq);
            let problem = check_chain_rows(&rows, self.chain_key(), &mut cursor);
            let met = checkpoint.and_then(|c| rows.iter().find(|r| r.seq == c.seq));
            if let Some(row) = met.filter(|r| r.seq <= cursor.seq) {
                at_checkpoint = row.hash.as_slice().try_into().ok();
            }
            if let Some(problem) = problem {
                return Ok(report(problem.seq - 1, Some(problem)));
            }
            if rows.is_empty() {
                break;
            }
        }
        let first_problem = if cursor.seq < head_seq {
            Some(ChainProblem {
                seq: cursor.seq + 1,
                event_id: None,
                problem: format!("events {} to {head_seq} are missing", cursor.seq + 1),
            })
        } else if head_hash.as_slice() != cursor.hash && head_seq > 0 {
            Some(ChainProblem {
                seq: cursor.seq,
                event_id: None,
                problem: "the chain head does not match its last event".into(),
            })
        } else if let Some(problem) = unvouched_plain_events(&cursor) {
            Some(problem)
        } else {
            // A checkpoint before the anchor: retention removed its event, and the anchor's
            // signature vouches that the chain went on past it.
            checkpoint
                .filter(|c| c.seq >= from)
                .and_then(|c| missed_checkpoint(c, cursor.seq, at_checkpoint))
        };
        Ok(report(cursor.seq, first_problem))
    }

    /// Where a walk of an app's chain starts: right after its retention anchor, whose
    /// signature must verify, or before the first event when retention removed none.
    fn walk_start(
        &self,
        app_id: AppId,
        anchor: Option<&Checkpoint>,
    ) -> std::result::Result<ChainCursor, ChainProblem> {
        match anchor {
            None => Ok(ChainCursor::START),
            Some(anchor) => match self.unusable_anchor(app_id, anchor) {
                Some(problem) => Err(problem),
                None => Ok(ChainCursor {
                    seq: anchor.seq,
                    hash: anchor.hash,
                    // Its signature vouches for what came before, as a keyed event's would.
                    keyed: true,
                }),
            },
        }
    }

    /// Why an app's retention anchor cannot be trusted, if it cannot.
    fn unusable_anchor(&self, app_id: AppId, anchor: &Checkpoint) -> Option<ChainProblem> {
        (anchor.app_id != app_id || !self.anchor_key().verifies(anchor)).then(|| ChainProblem {
            seq: anchor.seq,
            event_id: None,
            problem: format!(
                "the retention anchor (events 1 to {} removed) does not verify: altered or forged",
                anchor.seq
            ),
        })
    }

    /// Removes the audit events older than the configured retention
    /// ([`crate::vault::Settings::audit_retention_days`]; nothing when unset). Per app, the
    /// chain is verified up to the last event to remove and an anchor signed for it first, so
    /// verification can start there; a chain that does not verify keeps its events (and the
    /// problem is logged), so retention never erases the evidence of tampering. Returns the
    /// rows deleted plus the partitions dropped.
    pub async fn prune_audit_events(&self) -> crate::error::Result<u64> {
        let Some(days) = self.settings().audit_retention_days.filter(|d| *d > 0) else {
            return Ok(0);
        };
        let cutoff = self.now().plus_seconds(-days.saturating_mul(24 * 3600));
        let bound = self.store().audit_retention_bound(cutoff);
        for (app_id, seq, hash) in self.store().audit_cuts(bound).await? {
            match self.chain_hash_through(app_id, seq, &hash).await? {
                Ok(hash) => {
                    let anchor = self.anchor_key().sign(app_id, seq, hash, self.now());
                    self.store().record_audit_anchor(&anchor).await?;
                }
                Err(problem) => tracing::warn!(
                    app = %app_id,
                    seq = problem.seq,
                    problem = %problem.problem,
                    "the audit chain does not verify: its old events are kept"
                ),
            }
        }
        // The removal trusts the anchors' rows: one that does not verify (written by someone
        // without the key) stops it for every app until it is dealt with.
        let anchors = self.store().audit_anchors().await?;
        if let Some(forged) = anchors
            .iter()
            .find(|a| self.unusable_anchor(a.app_id, a).is_some())
        {
            tracing::warn!(
                app = %forged.app_id,
                "an audit retention anchor does not verify: no audit event is removed"
            );
            return Ok(0);
        }
        Ok(self.store().remove_audit_events(bound).await?)
    }

    /// Creates the time partitions of nonces and audit events ahead of now (PostgreSQL; see
    /// docs/scale.md): at start-up and in the prune job.
    pub async fn maintain_time_partitions(&self) -> crate::error::Result<()> {
        Ok(self.store().maintain_time_partitions(self.now()).await?)
    }

    /// Walks an app's chain from its anchor (or its start) through `through`, whose stored
    /// hash is `stored`: the verified hash there, or the first problem.
    async fn chain_hash_through(
        &self,
        app_id: AppId,
        through: i64,
        stored: &[u8],
    ) -> crate::error::Result<std::result::Result<[u8; 32], ChainProblem>> {
        let anchor = self.store().audit_anchor(app_id).await?;
        let mut cursor = match self.walk_start(app_id, anchor.as_ref()) {
            Ok(cursor) => cursor,
            Err(problem) => return Ok(Err(problem)),
        };
        while cursor.seq < through {
            let limit = VERIFY_PAGE.min(through - cursor.seq);
            let rows = self.store().chain_rows(app_id, cursor.seq, limit).await?;
            if let Some(problem) = check_chain_rows(&rows, self.chain_key(), &mut cursor) {
                return Ok(Err(problem));
            }
            if rows.is_empty() {
                break;
            }
        }
        Ok(if cursor.seq < through {
            Err(ChainProblem {
                seq: cursor.seq + 1,
                event_id: None,
                problem: format!("events {} to {through} are missing", cursor.seq + 1),
            })
        } else if !cursor.keyed {
            // An anchor vouches for a keyed chain; plain SHA-256 events (from before chains
            // were keyed) wait until the cut passes the first keyed one.
            Err(ChainProblem {
                seq: through,
                event_id: None,
                problem: "the cut falls before the chain's first keyed event".into(),
            })
        } else if !alter_crypto::ct_eq(stored, &cursor.hash) {
            // Changed since the cut was read: left for the next run.
            Err(ChainProblem {
                seq: through,
                event_id: None,
                problem: "the event's hash changed while it was checked".into(),
            })
        } else {
            Ok(cursor.hash)
        })
    }

    /// Why a checkpoint cannot be verified against this app's chain, if it cannot.
    fn unusable_checkpoint(&self, app_id: AppId, checkpoint: &Checkpoint) -> Option<ChainProblem> {
        let problem = if !self.checkpoint_key().verifies(checkpoint) {
            "the checkpoint's signature does not verify (altered, forged, or from another vault)"
                .to_owned()
        } else if checkpoint.app_id != app_id {
            format!(
                "the checkpoint is of app {}, not of app {app_id}",
                checkpoint.app_id
            )
        } else {
            return None;
        };
        Some(ChainProblem {
            seq: checkpoint.seq,
            event_id: None,
            problem,
        })
    }

    /// A signed checkpoint of an app's chain head (operator), to keep outside the database.
    /// Only a head whose event verifies under the chain key is signed.
    pub async fn audit_checkpoint(&self, app_id: AppId) -> crate::error::Result<Checkpoint> {
        self.get_app(app_id).await?;
        let (head_seq, head_hash) = self.store().chain_head(app_id).await?.unwrap_or_default();
        let anchor = self.store().audit_anchor(app_id).await?;
        let hash = if head_seq == 0 {
            GENESIS_HASH
        } else if let Some(anchor) = anchor.filter(|a| {
            a.seq == head_seq
                && a.hash.as_slice() == head_hash
                && self.unusable_anchor(app_id, a).is_none()
        }) {
            // Retention removed the head's event; its anchor vouches for the hash.
            anchor.hash
        } else {
            let rows = self.store().chain_rows(app_id, head_seq - 1, 1).await?;
            let head_event = rows
                .into_iter()
                .next()
                .filter(|row| row.seq == head_seq && row.hash == head_hash)
                .filter(|row| row.hash_version == HASH_KEYED_V1)
                .and_then(|row| {
                    let prev: [u8; 32] = row.prev_hash.as_slice().try_into().ok()?;
                    let hash = self.chain_key().hash(&prev, row.seq, &row.body);
                    alter_crypto::ct_eq(&row.hash, &hash).then_some(hash)
                });
            head_event.ok_or_else(|| {
                crate::error::Error::Conflict(
                    "the audit chain's head does not verify: run `alter audit verify`".into(),
                )
            })?
        };
        Ok(self
            .checkpoint_key()
            .sign(app_id, head_seq, hash, self.now()))
    }

    /// Appends an `audit.chain_keyed` event to every chain that ends on an unkeyed event, so
    /// that its keyed hash vouches for the events written before chains were keyed. Run when
    /// the vault opens, before it serves.
    pub(crate) async fn key_legacy_audit_chains(&self) -> crate::error::Result<()> {
        for app_id in self.store().unkeyed_audit_chains().await? {
            let event = AuditEvent::allow(
                app_id,
                self.now(),
                action::AUDIT_CHAIN_KEYED,
                Actor::system(),
                Target {
                    kind: "app".into(),
                    id: app_id.to_string(),
                },
            );
            self.store().append_event(&event).await?;
        }
        Ok(())
    }
}

/// The problem of a chain that no longer reaches `checkpoint`: its walk ended at `last_seq`
/// and met `at_checkpoint` at the checkpoint's position.
fn missed_checkpoint(
    checkpoint: &Checkpoint,
    last_seq: i64,
    at_checkpoint: Option<[u8; 32]>,
) -> Option<ChainProblem> {
    if last_seq < checkpoint.seq {
        return Some(ChainProblem {
            seq: last_seq + 1,
            event_id: None,
            problem: format!(
                "events {} to {} are missing: the log no longer reaches the checkpoint \
                 (event {}, {} at {})",
                last_seq + 1,
                checkpoint.seq,
                checkpoint.seq,
                hex::encode(checkpoint.hash),
                checkpoint.at.to_rfc3339(),
            ),
        });
    }
    match at_checkpoint {
        Some(hash) if alter_crypto::ct_eq(&hash, &checkpoint.hash) => None,
        found => Some(ChainProblem {
            seq: checkpoint.seq,
            event_id: None,
            problem: format!(
                "the event at the checkpoint has hash {}, the checkpoint says {}",
                found.map(hex::encode).unwrap_or_else(|| "none".into()),
                hex::encode(checkpoint.hash)
            ),
        }),
    }
}
