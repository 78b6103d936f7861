//! Connect sessions: an app (or an agent) asks a user to connect accounts at OAuth providers.
//! The client polls with the **session token**; the user's browser opens the **page token**'s
//! URL, picks a provider, and is sent to it with PKCE (S256) and a single-use `state`. The
//! callback exchanges the code, seals the token pair into a connection and creates the grant
//! for the user (or the app) — or, reconnecting the same account, gives the grant it already
//! has new tokens (`operation: reauth`). Only hashes of the two tokens and the state are
//! stored; a state is claimed by one conditional update, so a replayed callback finds nothing.

mod callback;
mod managed;
mod restrictions;
pub(crate) mod service;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::grants::GrantLifetime;
use crate::ids::{AgentId, AppId, ConnectSessionId, GrantId, UserId};
use crate::time::Timestamp;

pub use callback::{CallbackParams, CallbackResult};
pub use managed::{CreatedManaged, ManagedOutcome, NewManagedConnect, ResumeView, SIGN_IN_ATTEMPT};
pub use restrictions::{GrantRestrictions, MAX_ENDPOINTS, MAX_METHODS, RestrictionsInput};
pub use service::{
    CreatedSession, NewConnectSession, PageView, SESSION_TTL_SECONDS, StartedAttempt,
};

/// What a session was created with: it decides what the callback creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectSettings {
    /// The providers the user may pick from (configured when the session was made).
    pub providers: Vec<String>,
    /// Where the browser goes when the flow ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    /// The origin of the page embedding the flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_origin: Option<String>,
    /// The lifetime of the grant it creates.
    #[serde(default)]
    pub lifetime: GrantLifetime,
    /// Scopes the grant must have, per provider, beyond the provider's defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub required_scopes: BTreeMap<String, Vec<String>>,
    /// The sibling label of the grant it creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// What the grant it creates may be used for (rules on the grant; proxy only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restrictions: Option<GrantRestrictions>,
    /// The grant whose connection gets the new tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair_grant_id: Option<GrantId>,
    /// The agent the new grant is delegated to on consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    /// Whether that delegation may be passed on.
    #[serde(default)]
    pub delegable: bool,
    /// The user the grant is for (from the user token); `None`: the app's own grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// Skip the provider list (one provider).
    #[serde(default)]
    pub direct: bool,
    /// Ask the provider to let the user pick another account.
    #[serde(default)]
    pub switch_account: bool,
    /// A managed-secret session: the user's own key, or access they hold, for one secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedConnect>,
}

/// What a managed-secret session does for its user, decided when it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManagedPath {
    /// The user already holds a usable grant: the page only confirms (and delegates it).
    FastPath,
    /// The user enters their own key: a new key and grant.
    KeyEntry,
    /// The user replaces their own key in place.
    Repair,
}

/// A managed-secret session's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedConnect {
    /// The operator's managed secret.
    pub secret_id: crate::ids::SecretId,
    /// What the page does.
    pub path: ManagedPath,
    /// The grant the path uses (fast path, repair).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_grant_id: Option<GrantId>,
    /// Lifetime of the delegation, when the session names an agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation_ttl_seconds: Option<i64>,
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Waiting for the user.
    Pending,
    /// The provider sent the user back; the code is being exchanged.
    Exchanging,
    /// A grant was made or repaired.
    Completed,
    /// It ended in an error.
    Failed,
}

impl SessionStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Pending => "pending",
            SessionStatus::Exchanging => "exchanging",
            SessionStatus::Completed => "completed",
            SessionStatus::Failed => "error",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<SessionStatus> {
        match text {
            "pending" => Some(SessionStatus::Pending),
            "exchanging" => Some(SessionStatus::Exchanging),
            "completed" => Some(SessionStatus::Completed),
            "error" => Some(SessionStatus::Failed),
            _ => None,
        }
    }
}

/// A provider the user declined at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declined {
    /// The provider.
    pub provider_id: String,
    /// Why (`connect_denied`).
    pub error_code: String,
    /// When.
    pub declined_at: Timestamp,
}

/// Whether a grant was made or repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectOperation {
    /// A new grant.
    Creation,
    /// An existing grant got new tokens.
    Reauth,
}

/// A grant a session made or repaired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectedGrant {
    /// The grant.
    pub grant_id: GrantId,
    /// Its provider.
    pub provider_id: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// The account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_identifier: Option<String>,
    /// Made or repaired.
    pub operation: ConnectOperation,
    /// When the grant ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// When the grant was made.
    pub created_at: Timestamp,
    /// The delegation made on consent, if the session named an agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<ConnectedDelegation>,
}

/// The delegation a session made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectedDelegation {
    /// The agent.
    pub agent_id: AgentId,
    /// Whether it may pass it on.
    pub delegable: bool,
    /// The delegation was refused by a limit (the grant was still made).
    pub policy_refused: bool,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectOutcome {
    /// Grants were made or repaired.
    Completed {
        /// They.
        grants: Vec<ConnectedGrant>,
    },
    /// An error; nothing was made.
    Failed {
        /// Stable code (`connect_denied`, `invalid_client`, `connect_flow_error`…).
        code: String,
        /// For people.
        message: String,
    },
}

/// A Connect session as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectSession {
    /// Id.
    pub id: ConnectSessionId,
    /// The app.
    pub app_id: AppId,
    /// What it was created with.
    pub settings: ConnectSettings,
    /// Where it is.
    pub status: SessionStatus,
    /// Providers the user declined at.
    pub declined: Vec<Declined>,
    /// How it ended.
    pub outcome: Option<ConnectOutcome>,
    /// When the user proved at the page who they are (managed-secret sessions).
    pub verified_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// End of its life.
    pub expires_at: Timestamp,
}

impl ConnectSession {
    /// True once its life is over.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at <= now
    }
}

/// An authorization in flight, claimed by the callback through its state.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedAttempt {
    /// The session.
    pub session: ConnectSession,
    /// The provider the user picked.
    pub provider_id: String,
    /// The PKCE verifier, sealed to the session.
    pub sealed_verifier: Vec<u8>,
    /// When the attempt started.
    pub started_at: Timestamp,
}

/// What a poll answers.
#[derive(Debug, Clone, PartialEq)]
pub enum PollAnswer {
    /// Waiting; with the providers the user declined at.
    Pending(Vec<Declined>),
    /// Done.
    Completed(Vec<ConnectedGrant>),
    /// Failed.
    Failed {
        /// Code.
        code: String,
        /// Message.
        message: String,
    },
    /// Over, or never existed.
    Expired,
}
