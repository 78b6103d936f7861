//! Upstream revocation (RFC 7009) of revoked connections. Revoking a connection's last grant
//! revokes it locally at once — its tokens leave the connection's row in the same transaction
//! — and queues its sealed tokens for the provider. The provider is then asked to revoke them,
//! right away and again with backoff until it confirms; a confirmed (or abandoned) revocation
//! destroys the queued tokens. The local revocation never waits for the provider.

use alter_crypto::SecretString;
use serde_json::json;

use crate::audit::{Actor, AuditEvent, Target, action};
use crate::error::Result;
use crate::grants::Grant;
use crate::ids::{AppId, ConnectionId};
use crate::oauth::TokenTypeHint;
use crate::time::Timestamp;
use crate::vault::Vault;

use super::TokenSlot;

/// Attempts before a revocation is abandoned (its tokens destroyed unconfirmed).
const MAX_ATTEMPTS: i64 = 12;
/// First retry delay; it doubles up to [`MAX_DELAY_SECONDS`].
const FIRST_DELAY_SECONDS: i64 = 30;
/// Longest retry delay: six hours.
const MAX_DELAY_SECONDS: i64 = 6 * 3600;
/// How long one node holds a claimed revocation before another may retry it.
const CLAIM_SECONDS: i64 = 120;
/// Most revocations one run sends.
const BATCH: i64 = 50;

/// A connection's tokens waiting to be revoked at the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRevocation {
    /// The connection.
    pub connection_id: ConnectionId,
    /// The app.
    pub app_id: AppId,
    /// The app's provider.
    pub provider_id: String,
    /// The tokens, sealed as they were in the connection.
    pub sealed_tokens: Vec<u8>,
    /// Their version.
    pub token_version: i64,
    /// When they were sealed.
    pub tokens_at: Timestamp,
    /// Attempts made so far.
    pub attempts: i64,
}

/// The delay before attempt `attempts + 1`.
fn backoff_seconds(attempts: i64) -> i64 {
    let doublings = attempts.clamp(0, 20) as u32;
    FIRST_DELAY_SECONDS
        .saturating_mul(1_i64 << doublings)
        .min(MAX_DELAY_SECONDS)
}

impl Vault {
    /// Sends a just-revoked connection's revocation to its provider in the background; the
    /// periodic run retries it if this attempt fails or the process stops first.
    pub(crate) fn spawn_upstream_revocation(&self, connection: ConnectionId) {
        let vault = self.clone();
        tokio::spawn(async move {
            if let Err(error) = vault.run_upstream_revocations(Some(connection)).await {
                tracing::warn!(%connection, %error, "upstream revocation could not run; will retry");
            }
        });
    }

    /// Retires the connections no live grant uses any more (their grants expired, or were
    /// revoked while a sibling still lived): their tokens leave the database for the
    /// upstream-revocation queue. Returns how many.
    pub async fn retire_unused_connections(&self) -> Result<usize> {
        let now = self.now();
        let mut retired = 0;
        for (app, connection) in self.store().unused_connections(now, BATCH).await? {
            let event = AuditEvent::allow(
                app,
                now,
                action::CONNECTION_REVOKED,
                Actor::system(),
                Target {
                    kind: "connection".into(),
                    id: connection.to_string(),
                },
            )
            .with_details(json!({ "reason": "no live grant uses it" }));
            if self
                .store()
                .retire_connection(app, connection, now, &event)
                .await?
            {
                retired += 1;
            }
        }
        Ok(retired)
    }

    /// Sends the due upstream revocations (only `only`'s, when given); returns how many the
    /// providers confirmed.
    pub async fn run_upstream_revocations(&self, only: Option<ConnectionId>) -> Result<usize> {
        let now = self.now();
        let due = self
            .store()
            .claim_revocations(now, now.plus_seconds(CLAIM_SECONDS), BATCH, only)
            .await?;
        let mut confirmed = 0;
        for job in due {
            match self.revoke_upstream(&job).await {
                Ok(supported) => {
                    let event = revocation_event(&job, self.now(), None, supported);
                    self.store()
                        .finish_revocation(job.connection_id, self.now(), &event)
                        .await?;
                    confirmed += 1;
                }
                Err(why) if job.attempts + 1 >= MAX_ATTEMPTS => {
                    let event = revocation_event(&job, self.now(), Some(&why), true);
                    self.store()
                        .finish_revocation(job.connection_id, self.now(), &event)
                        .await?;
                }
                Err(why) => {
                    tracing::warn!(
                        connection = %job.connection_id,
                        provider = %job.provider_id,
                        error = %why,
                        "revoking a connection's tokens at the provider failed; will retry"
                    );
                    let attempts = job.attempts + 1;
                    let next = self.now().plus_seconds(backoff_seconds(attempts));
                    self.store()
                        .retry_revocation(job.connection_id, attempts, next, &why)
                        .await?;
                }
            }
        }
        Ok(confirmed)
    }

    /// Asks the provider to revoke the refresh token and the access token; `Ok(false)` when it
    /// has no revocation endpoint. `Err`: why not (for the log and the retry row; never token
    /// material).
    async fn revoke_upstream(&self, job: &PendingRevocation) -> std::result::Result<bool, String> {
        let provider = self
            .store()
            .get_provider(job.app_id, &job.provider_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the provider is no longer configured")?;
        let slot = TokenSlot {
            app_id: job.app_id,
            connection_id: job.connection_id,
            version: job.token_version,
            at: job.tokens_at,
        };
        let tokens = self
            .open_tokens(slot, &job.sealed_tokens)
            .map_err(|e| e.to_string())?;
        let secret = self
            .open_client_secret(&provider)
            .map_err(|e| e.to_string())?;
        let secret = SecretString::from(String::from_utf8_lossy(&secret).into_owned());
        let mut pending = vec![(tokens.access_token, TokenTypeHint::AccessToken)];
        if let Some(refresh) = tokens.refresh_token {
            pending.insert(0, (refresh, TokenTypeHint::RefreshToken));
        }
        for (token, hint) in pending {
            let supported = self
                .oauth()
                .revoke(
                    &provider.endpoints,
                    &provider.client_id,
                    &secret,
                    &token,
                    Some(hint),
                )
                .await
                .map_err(|e| e.to_string())?;
            if !supported {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The event of a connection revoked with its last grant.
pub(crate) fn connection_revoked_event(
    app: AppId,
    connection: ConnectionId,
    at: Timestamp,
    grant: &Grant,
) -> AuditEvent {
    AuditEvent::allow(
        app,
        at,
        action::CONNECTION_REVOKED,
        Actor::system(),
        Target {
            kind: "connection".into(),
            id: connection.to_string(),
        },
    )
    .with_details(json!({ "grant_id": grant.id }))
}

/// The event a finished revocation records: confirmed, not possible (the provider has no
/// revocation endpoint), or abandoned with the last error.
fn revocation_event(
    job: &PendingRevocation,
    at: Timestamp,
    failed: Option<&str>,
    supported: bool,
) -> AuditEvent {
    let target = Target {
        kind: "connection".into(),
        id: job.connection_id.to_string(),
    };
    let event = match failed {
        None => AuditEvent::allow(
            job.app_id,
            at,
            action::CONNECTION_REVOKED_UPSTREAM,
            Actor::system(),
            target,
        ),
        Some(_) => AuditEvent {
            target: Some(target),
            ..AuditEvent::deny(
                job.app_id,
                at,
                action::CONNECTION_REVOKED_UPSTREAM,
                Actor::system(),
                "upstream_revocation_abandoned",
            )
        },
    };
    event.with_details(json!({
        "provider_id": job.provider_id,
        "attempts": job.attempts + 1,
        "revoked_at_provider": failed.is_none() && supported,
        "provider_supports_revocation": supported,
        "last_error": failed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_ceiling() {
        assert_eq!(backoff_seconds(0), 30);
        assert_eq!(backoff_seconds(1), 60);
        assert_eq!(backoff_seconds(5), 960);
        assert_eq!(backoff_seconds(12), MAX_DELAY_SECONDS);
        assert_eq!(backoff_seconds(1_000), MAX_DELAY_SECONDS);
    }
}
