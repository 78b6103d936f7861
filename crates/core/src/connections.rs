//! OAuth connections: the token pair one account at one provider authorized, sealed. Many
//! nodes may want to refresh a connection's access token at the same moment; exactly one may
//! call the provider. It takes a **refresh lease** (a row update that also bumps a fencing
//! number), and its result is stored only if the fence has not moved since — a refresher whose
//! lease ran out and was taken over can never overwrite the newer tokens.
//!
//! This module holds the model and the lease's rules; the Connect flow and the refresh inside
//! a release build on it (issue 9).

use crate::ids::{AppId, ConnectionId};
use crate::time::Timestamp;

/// What a connection is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// Usable (its access token may need a refresh).
    Active,
    /// The provider refused the refresh token (`invalid_grant`): the user must connect again.
    ReauthRequired,
    /// Revoked; its token material is destroyed.
    Revoked,
}

impl ConnectionStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Active => "active",
            ConnectionStatus::ReauthRequired => "reauth_required",
            ConnectionStatus::Revoked => "revoked",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<ConnectionStatus> {
        match text {
            "active" => Some(ConnectionStatus::Active),
            "reauth_required" => Some(ConnectionStatus::ReauthRequired),
            "revoked" => Some(ConnectionStatus::Revoked),
            _ => None,
        }
    }
}

/// An OAuth connection as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// Id.
    pub id: ConnectionId,
    /// The app.
    pub app_id: AppId,
    /// The app's provider it was made with.
    pub provider_id: String,
    /// The account at the provider (an e-mail, a login, a workspace id), when known.
    pub account_identifier: Option<String>,
    /// Scopes the provider granted.
    pub scopes: Vec<String>,
    /// The access and refresh tokens, sealed together to this connection and `token_version`.
    pub sealed_tokens: Vec<u8>,
    /// Bumped each time the tokens change (a refresh, a reconnect).
    pub token_version: i64,
    /// When the access token expires, if the provider said.
    pub access_expires_at: Option<Timestamp>,
    /// Status.
    pub status: ConnectionStatus,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl Connection {
    /// True when the access token is expired at `now`, or will be within `buffer_seconds`.
    pub fn needs_refresh(&self, now: Timestamp, buffer_seconds: i64) -> bool {
        self.access_expires_at
            .is_some_and(|end| end <= now.plus_seconds(buffer_seconds))
    }
}

/// A refresh lease one caller holds: until `until`, no one else may take it. `fence` is the
/// number the refresh's result must still find in the row to be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshLease {
    /// The fencing number this lease was granted under.
    pub fence: i64,
    /// The token version the lease saw: the tokens to refresh.
    pub token_version: i64,
    /// When the lease runs out.
    pub until: Timestamp,
}

/// The tokens a refresh produced, to store under a lease.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshedTokens {
    /// The new tokens, sealed to the connection and `token_version`.
    pub sealed_tokens: Vec<u8>,
    /// The new version (the lease's `token_version` + 1).
    pub token_version: i64,
    /// When the new access token expires.
    pub access_expires_at: Option<Timestamp>,
    /// Scopes, when the provider changed them.
    pub scopes: Option<Vec<String>>,
    /// When.
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_needs_refresh_within_the_buffer() {
        let now = Timestamp::from_unix_seconds(1_000);
        let connection = Connection {
            id: ConnectionId::new(),
            app_id: AppId::new(),
            provider_id: "google".into(),
            account_identifier: None,
            scopes: Vec::new(),
            sealed_tokens: Vec::new(),
            token_version: 1,
            access_expires_at: Some(now.plus_seconds(60)),
            status: ConnectionStatus::Active,
            created_at: now,
            updated_at: now,
        };
        assert!(!connection.needs_refresh(now, 30));
        assert!(connection.needs_refresh(now, 60));
        assert!(connection.needs_refresh(now.plus_seconds(61), 0));
        let forever = Connection {
            access_expires_at: None,
            ..connection
        };
        assert!(!forever.needs_refresh(now.plus_seconds(1_000_000), 60));
        for status in [
            ConnectionStatus::Active,
            ConnectionStatus::ReauthRequired,
            ConnectionStatus::Revoked,
        ] {
            assert_eq!(ConnectionStatus::parse(status.as_str()), Some(status));
        }
    }
}
