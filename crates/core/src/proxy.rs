//! Proxy mode: the vault makes the outgoing call itself, so the credential never leaves it.
//! The call runs the release pipeline (*resolve*, *authorize*, *materialise*) and is then
//! *delivered* by sending it through the [`Forwarder`] port (implemented in `alter-upstream`:
//! no redirects, destinations checked after DNS resolution and the connection pinned to the
//! checked address). A call a rule holds is parked as an approval instead.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{EventId, GrantId};
use crate::rules::{DecisionFacts, MatchedRule};

/// A proxied call as the caller asked for it (`POST /sdk/proxy`). Kept, sealed, with a held
/// call so the exact request is executed once approved.
#[derive(Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ProxyRequest {
    /// Direct mode: this grant.
    pub grant_id: Option<String>,
    /// Provider mode: this managed secret (slug) or OAuth provider.
    pub provider_id: Option<String>,
    /// Provider mode: the account.
    pub account: Option<String>,
    /// Provider mode: the sibling label.
    pub label: Option<String>,
    /// Provider mode: the user whose delegation an agent uses.
    pub app_user_id: Option<String>,
    /// An end user's JWT: the grant must be theirs (or, for agents, delegated by them).
    pub user_token: Option<String>,
    /// Upper-case method.
    pub method: String,
    /// The URL (its `{placeholders}` already filled by `path_params`).
    pub url: String,
    /// Query parameters merged into the URL.
    pub query_params: Vec<(String, String)>,
    /// Extra request headers (never credential headers: those are refused).
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Option<Value>,
    /// Why (required for a call that may be held; kept in the audit log).
    pub reason: Option<String>,
}

impl fmt::Debug for ProxyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The user's token, header values and body are the caller's data: not for logs.
        f.debug_struct("ProxyRequest")
            .field("grant_id", &self.grant_id)
            .field("provider_id", &self.provider_id)
            .field("method", &self.method)
            .field("url", &crate::audit::redact_url(&self.url))
            .finish_non_exhaustive()
    }
}

/// What a proxied call came to.
#[derive(Debug)]
pub enum ProxyOutcome {
    /// The call was made.
    Completed(ProxyResult),
    /// A rule held it: it waits for a human's approval.
    Held(Box<HeldCall>),
}

/// The provider's answer to a proxied call.
#[derive(Clone, PartialEq)]
pub struct ProxyResult {
    /// The provider's status.
    pub status: u16,
    /// Its headers (hop-by-hop headers and `Set-Cookie` dropped).
    pub headers: Vec<(String, String)>,
    /// Its body, up to the cap.
    pub body: Vec<u8>,
    /// The body was longer than the cap and was cut.
    pub truncated: bool,
    /// How long the provider took.
    pub duration_ms: u64,
    /// On a provider 401/403 when the credential was sent in a form the API does not take.
    pub credential_hint: Option<String>,
    /// The audit event of the release the call made.
    pub release_id: EventId,
}

impl fmt::Debug for ProxyResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyResult")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .field("truncated", &self.truncated)
            .field("duration_ms", &self.duration_ms)
            .finish_non_exhaustive()
    }
}

/// A call a rule held.
#[derive(Debug, Clone)]
pub struct HeldCall {
    /// The grant the call would use.
    pub grant_id: GrantId,
    /// The hold rules that matched (an agent's "requires approval" setting counts as a rule
    /// of kind `agent_requires_approval` whose id is the agent's).
    pub holds: Vec<MatchedRule>,
    /// The facts the decision was taken on.
    pub facts: DecisionFacts,
    /// What parking the call checks again.
    pub recheck: Box<crate::release::HoldRecheck>,
}

/// A request as it leaves the vault, credential included. Its `Debug` shows no header value
/// and no body.
#[derive(Clone)]
pub struct OutgoingRequest {
    /// Upper-case method.
    pub method: String,
    /// The final URL, query (and any query credential) included.
    pub url: String,
    /// Every header, the injected ones included.
    pub headers: Vec<(String, String)>,
    /// The exact body bytes.
    pub body: Vec<u8>,
}

impl fmt::Debug for OutgoingRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("OutgoingRequest")
            .field("method", &self.method)
            .field("url", &crate::audit::redact_url(&self.url))
            .field("headers", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The provider's answer as the forwarder read it.
#[derive(Clone)]
pub struct UpstreamResponse {
    /// Status.
    pub status: u16,
    /// Headers as received.
    pub headers: Vec<(String, String)>,
    /// Body, up to the cap asked for.
    pub body: Vec<u8>,
    /// More body followed than the cap (it was not read).
    pub truncated: bool,
    /// Time from sending to the end of the body read.
    pub duration_ms: u64,
}

impl fmt::Debug for UpstreamResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .field("truncated", &self.truncated)
            .finish_non_exhaustive()
    }
}

/// Why the forwarder did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// The destination resolves to an address the vault must not reach (loopback, private,
    /// link-local, metadata…) and no allowed network covers it.
    #[error("the destination is not allowed")]
    BlockedDestination,
    /// The URL cannot be sent (scheme, host).
    #[error("the URL cannot be sent: {0}")]
    InvalidUrl(&'static str),
    /// No answer in time.
    #[error("the provider did not answer in time")]
    Timeout,
    /// The connection failed (DNS, TCP, TLS); the text is for logs, without the URL.
    #[error("the connection to the provider failed: {0}")]
    Connect(String),
}

/// Sends proxied calls (implemented in `alter-upstream`).
#[async_trait]
pub trait Forwarder: Send + Sync + fmt::Debug {
    /// Sends `request` without following redirects, to an address that passed the destination
    /// check (the connection is made to exactly the checked address), and reads at most
    /// `max_body` bytes of the answer.
    async fn send(
        &self,
        request: OutgoingRequest,
        max_body: usize,
    ) -> Result<UpstreamResponse, ForwardError>;
}
