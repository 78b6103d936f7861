//! The lazy refresh a release runs when a connection's access token is expired or about to be.
//!
//! Exactly one caller across every node calls the provider for one expiry: it takes the
//! connection's refresh lease (a conditional update that bumps a fencing number) and stores the
//! result only if the fence has not moved. The others do not queue behind the provider: while
//! the current access token is still valid they use it; once it has expired they re-read the
//! row until the winner's tokens appear, and answer `token_refresh_in_progress` if they do not
//! within [`Settings::refresh_wait_ms`](crate::Settings).

use std::time::Duration;

use crate::audit::{Actor, AuditEvent, Target, action};
use crate::error::{Error, Result};
use crate::grants::Grant;
use crate::metrics::RefreshOutcome;
use crate::oauth::OAuthError;
use crate::time::Timestamp;
use crate::vault::Vault;

use super::{
    Connection, ConnectionStatus, RefreshLease, RefreshedTokens, TokenPair, TokenSlot,
    normalized_scopes,
};

/// How often a caller waiting for another's refresh re-reads the connection.
const WAIT_STEP: Duration = Duration::from_millis(50);

/// A connection's usable tokens.
#[derive(Debug)]
pub struct FreshTokens {
    /// The connection as it is now.
    pub connection: Connection,
    /// Its tokens, opened.
    pub tokens: TokenPair,
    /// This call refreshed them.
    pub refreshed: bool,
}

impl Vault {
    /// The tokens of the connection `grant` points at, refreshed first when its access token
    /// expires within the buffer.
    pub(crate) async fn fresh_tokens(
        &self,
        grant: &Grant,
        connection: Connection,
    ) -> Result<FreshTokens> {
        let deadline = deadline_in(self.settings().refresh_wait_ms);
        let mut current = connection;
        loop {
            let now = self.now();
            if current.status != ConnectionStatus::Active {
                return Err(revoked(grant, &current));
            }
            let buffer = refresh_buffer(&current, self.settings().refresh_buffer_seconds);
            if !current.needs_refresh(now, buffer) {
                return self.opened(current, false);
            }
            let until = now.plus_seconds(self.settings().refresh_lease_seconds);
            let lease = self
                .store()
                .acquire_refresh_lease(current.app_id, current.id, now, until)
                .await?;
            match lease {
                Some(lease) if lease.token_version == current.token_version => {
                    return self.refresh_under(grant, current, lease).await;
                }
                // Refreshed since it was read: free the lease and use what is stored.
                Some(lease) => {
                    self.store()
                        .release_refresh_lease(current.app_id, current.id, &lease)
                        .await?;
                }
                // Someone else refreshes: a token that is still valid serves meanwhile.
                None if !is_expired(&current, now) => {
                    let reread = self.reread(grant, &current).await?;
                    if reread.status != ConnectionStatus::Active {
                        return Err(revoked(grant, &reread));
                    }
                    if reread.token_version == current.token_version {
                        return self.opened(reread, false);
                    }
                }
                None if std::time::Instant::now() >= deadline => {
                    return Err(Error::TokenRefreshInProgress(grant.id));
                }
                None => tokio::time::sleep(WAIT_STEP).await,
            }
            current = self.reread(grant, &current).await?;
        }
    }

    /// Refreshes under `lease` and stores the result, unless the lease was lost meanwhile.
    async fn refresh_under(
        &self,
        grant: &Grant,
        current: Connection,
        lease: RefreshLease,
    ) -> Result<FreshTokens> {
        let tokens = self.open_tokens(TokenSlot::of(&current), &current.sealed_tokens)?;
        let Some(refresh_token) = tokens.refresh_token.clone() else {
            // Nothing to refresh with: usable until it expires, then the user must reconnect.
            if !is_expired(&current, self.now()) {
                self.store()
                    .release_refresh_lease(current.app_id, current.id, &lease)
                    .await?;
                return Ok(FreshTokens {
                    connection: current,
                    tokens,
                    refreshed: false,
                });
            }
            return self
                .needs_user_again(grant, &current, &lease, "no_refresh_token")
                .await;
        };
        let outcome = match self
            .store()
            .get_provider(current.app_id, &current.provider_id)
            .await?
        {
            Some(provider) => {
                let client_secret = self.open_client_secret(&provider)?;
                let client_secret = alter_crypto::SecretString::from(
                    String::from_utf8_lossy(&client_secret).into_owned(),
                );
                self.oauth()
                    .refresh(
                        &provider.endpoints,
                        &provider.client_id,
                        &client_secret,
                        &refresh_token,
                    )
                    .await
            }
            None => Err(OAuthError::Config(
                "the provider is no longer configured".into(),
            )),
        };
        self.counters().refreshed(match &outcome {
            Ok(_) => RefreshOutcome::Refreshed,
            Err(OAuthError::InvalidGrant) => RefreshOutcome::InvalidGrant,
            Err(_) => RefreshOutcome::Failed,
        });
        let answer = match outcome {
            Ok(answer) => answer,
            Err(OAuthError::InvalidGrant) => {
                return self
                    .needs_user_again(grant, &current, &lease, "invalid_grant")
                    .await;
            }
            Err(other) => {
                self.store()
                    .release_refresh_lease(current.app_id, current.id, &lease)
                    .await?;
                tracing::warn!(
                    connection = %current.id,
                    provider = %current.provider_id,
                    error = %other,
                    "refreshing an OAuth access token failed"
                );
                if !is_expired(&current, self.now()) {
                    return self.opened(current, false);
                }
                return Err(Error::ProviderUnavailable(other.to_string()));
            }
        };
        let at = self.now();
        let fresh = TokenPair {
            access_token: answer.access_token,
            // A provider that does not rotate answers without one: the old one stays valid.
            refresh_token: answer.refresh_token.or(Some(refresh_token)),
        };
        let slot = TokenSlot {
            version: lease.token_version + 1,
            at,
            ..TokenSlot::of(&current)
        };
        let stored = RefreshedTokens {
            sealed_tokens: self.seal_tokens(slot, &fresh)?,
            token_version: slot.version,
            access_expires_at: answer.expires_in.map(|s| at.plus_seconds(s.max(0))),
            scopes: answer.scope.map(normalized_scopes),
            at,
        };
        if self
            .store()
            .complete_refresh(current.app_id, current.id, &lease, &stored)
            .await?
        {
            let connection = Connection {
                sealed_tokens: stored.sealed_tokens,
                token_version: stored.token_version,
                tokens_at: at,
                access_expires_at: stored.access_expires_at,
                scopes: stored.scopes.unwrap_or(current.scopes),
                updated_at: at,
                ..current
            };
            return Ok(FreshTokens {
                connection,
                tokens: fresh,
                refreshed: true,
            });
        }
        // The lease was lost (it ran out and someone else refreshed, or the connection was
        // revoked): what is stored wins.
        let reread = self.reread(grant, &current).await?;
        if reread.status != ConnectionStatus::Active {
            return Err(revoked(grant, &reread));
        }
        self.opened(reread, false)
    }

    /// Marks the connection as needing the user again, audited, and refuses the release.
    async fn needs_user_again(
        &self,
        grant: &Grant,
        current: &Connection,
        lease: &RefreshLease,
        reason: &str,
    ) -> Result<FreshTokens> {
        let at = self.now();
        let event = AuditEvent::deny(
            current.app_id,
            at,
            action::CONNECTION_REAUTH_REQUIRED,
            Actor::system(),
            reason,
        );
        let event = AuditEvent {
            target: Some(Target {
                kind: "connection".into(),
                id: current.id.to_string(),
            }),
            ..event
        }
        .with_details(serde_json::json!({
            "provider_id": current.provider_id,
            "grant_id": grant.id,
        }));
        self.store()
            .mark_reauth_required(current.app_id, current.id, lease, at, &event)
            .await?;
        Err(revoked(grant, current))
    }

    async fn reread(&self, grant: &Grant, current: &Connection) -> Result<Connection> {
        self.store()
            .get_connection(current.app_id, current.id)
            .await?
            .ok_or_else(|| revoked(grant, current))
    }

    fn opened(&self, connection: Connection, refreshed: bool) -> Result<FreshTokens> {
        let tokens = self.open_tokens(TokenSlot::of(&connection), &connection.sealed_tokens)?;
        Ok(FreshTokens {
            connection,
            tokens,
            refreshed,
        })
    }
}

fn deadline_in(wait_ms: u64) -> std::time::Instant {
    std::time::Instant::now() + Duration::from_millis(wait_ms)
}

/// The buffer for `connection`: the configured one, at most half its token's lifetime, so a
/// provider issuing tokens shorter than the buffer is not asked for one at every release.
fn refresh_buffer(connection: &Connection, configured: i64) -> i64 {
    match connection.access_expires_at {
        Some(end) => configured.min(connection.tokens_at.seconds_until(end).max(0) / 2),
        None => configured,
    }
}

fn is_expired(connection: &Connection, now: Timestamp) -> bool {
    connection.needs_refresh(now, 0)
}

fn revoked(grant: &Grant, connection: &Connection) -> Error {
    Error::CredentialRevoked {
        grant_id: grant.id,
        provider_id: connection.provider_id.clone(),
    }
}
