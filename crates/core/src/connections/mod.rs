//! OAuth connections: the token pair one account at one provider authorized, sealed. Many
//! nodes may want to refresh a connection's access token at the same moment; exactly one may
//! call the provider. It takes a **refresh lease** (a row update that also bumps a fencing
//! number), and its result is stored only if the fence has not moved since — a refresher whose
//! lease ran out and was taken over can never overwrite the newer tokens.
//!
//! This module holds the model and the sealing of the token pair; [`refresh`] is the lazy
//! refresh a release runs, [`revocation`] the upstream revocation of a revoked connection.

pub mod refresh;
pub mod revocation;

use alter_crypto::Zeroizing;
use alter_crypto::{Binding, ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{AppId, ConnectionId};
use crate::time::Timestamp;
use crate::vault::Vault;

/// The kind bound into a connection's sealed tokens.
pub(crate) const TOKENS_KIND: &str = "oauth_tokens";

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
    /// When the current tokens were sealed (bound into the seal with `token_version`).
    pub tokens_at: Timestamp,
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

/// Scopes as a connection keeps them: sorted, each once (providers answer in any order).
pub(crate) fn normalized_scopes(mut scopes: Vec<String>) -> Vec<String> {
    scopes.sort();
    scopes.dedup();
    scopes
}

/// A connection's access and refresh tokens, opened for one use.
pub struct TokenPair {
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token, if the provider issued one.
    pub refresh_token: Option<SecretString>,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair").finish_non_exhaustive()
    }
}

/// The sealed form of a [`TokenPair`].
#[derive(Serialize, Deserialize)]
struct SealedPair {
    access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// Where a token pair is sealed: its connection, version and sealing time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenSlot {
    pub(crate) app_id: AppId,
    pub(crate) connection_id: ConnectionId,
    pub(crate) version: i64,
    pub(crate) at: Timestamp,
}

impl TokenSlot {
    /// The slot of the tokens `connection` holds now.
    pub(crate) fn of(connection: &Connection) -> TokenSlot {
        TokenSlot {
            app_id: connection.app_id,
            connection_id: connection.id,
            version: connection.token_version,
            at: connection.tokens_at,
        }
    }

    fn revision(&self) -> String {
        format!("{}@{}", self.version, self.at.micros())
    }
}

impl Vault {
    /// Seals a token pair into `slot`: an earlier pair copied back into the row, or a pair
    /// moved to another connection, fails to open.
    pub(crate) fn seal_tokens(&self, slot: TokenSlot, pair: &TokenPair) -> Result<Vec<u8>> {
        let plain = Zeroizing::new(
            serde_json::to_vec(&SealedPair {
                access_token: pair.access_token.expose_secret().to_owned(),
                refresh_token: pair
                    .refresh_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned()),
            })
            .map_err(|_| Error::Crypto(alter_crypto::CryptoError::CannotOpen))?,
        );
        let (app, record) = (slot.app_id.to_string(), slot.connection_id.to_string());
        Ok(self.keyring().seal_versioned(
            tokens_binding(&app, &record),
            &slot.revision(),
            &plain,
        )?)
    }

    /// Opens the token pair sealed into `slot`.
    pub(crate) fn open_tokens(&self, slot: TokenSlot, sealed: &[u8]) -> Result<TokenPair> {
        let (app, record) = (slot.app_id.to_string(), slot.connection_id.to_string());
        let plain = self.keyring().open_versioned(
            tokens_binding(&app, &record),
            &slot.revision(),
            sealed,
        )?;
        let pair: SealedPair = serde_json::from_slice(&plain)
            .map_err(|_| Error::Crypto(alter_crypto::CryptoError::CannotOpen))?;
        Ok(TokenPair {
            access_token: SecretString::from(pair.access_token),
            refresh_token: pair.refresh_token.map(SecretString::from),
        })
    }
}

fn tokens_binding<'a>(app: &'a str, record: &'a str) -> Binding<'a> {
    Binding {
        kind: TOKENS_KIND,
        app_id: app,
        record_id: record,
    }
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
            tokens_at: now,
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
