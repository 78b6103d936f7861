//! What every handler can reach.

use std::sync::Arc;
use std::time::Duration;

use alter_core::Vault;
use tokio::sync::Semaphore;

/// Shared state of the HTTP layer.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The domain services.
    pub vault: Vault,
    /// SHA-256 of the operator admin token.
    pub admin_token_hash: [u8; 32],
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Longest wait for a request's body once its headers arrived.
    pub body_read_timeout: Duration,
    /// One permit per request being handled (its body read): `max_concurrent_requests`.
    pub in_progress: Arc<Semaphore>,
    /// The URL the server is reached at, path prefix included, without a trailing slash.
    pub public_url: String,
    /// Reads OAuth providers' discovery documents.
    pub discovery: alter_upstream::OidcDiscovery,
    /// What this node measures (`GET /metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppState {
    /// The redirect URI to register at every OAuth provider.
    pub fn oauth_redirect_uri(&self) -> String {
        format!("{}/oauth/callback", self.public_url)
    }

    /// The redirect URI to register at the app's identity provider for end-user sign-in.
    pub fn sign_in_redirect_uri(&self) -> String {
        format!("{}/auth/callback", self.public_url)
    }
}
