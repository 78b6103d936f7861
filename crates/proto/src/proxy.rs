//! Proxy mode: `POST /sdk/proxy` (protocol part 1 §6.1) and its synchronous answer, the
//! `ApprovalResult` envelope (§6.2).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::redact_option;

/// Headers a caller may not set on a proxied call (checked trimmed, in any case): the ones
/// the official client refuses (protocol part 1 §6.1) — credentials, the host, method
/// overrides — and hop-by-hop or framing headers, which the vault's HTTP client sets itself.
pub const FORBIDDEN_PROXY_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "proxy-authorization",
    "authentication",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
    "x-amz-security-token",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-goog-authorization",
    "x-goog-iam-authorization-token",
    "x-stripe-account",
    "x-shopify-access-token",
    "x-http-method",
    "x-http-method-override",
    "x-method-override",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// Whether a caller may set header `name` on a proxied call.
pub fn forbidden_proxy_header(name: &str) -> bool {
    FORBIDDEN_PROXY_HEADERS.contains(&name.trim().to_ascii_lowercase().as_str())
}

/// `POST /sdk/proxy`.
#[derive(Clone, PartialEq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyCall {
    /// Upper-case method.
    pub method: String,
    /// The templated URL.
    pub url: String,
    /// Direct mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// Provider mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// Provider mode: the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Provider mode: the sibling label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The end user's JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_token: Option<String>,
    /// Provider mode: the user whose delegation an agent uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_user_id: Option<String>,
    /// The JSON body (never sent as null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Query parameters merged into the URL; the client sends strings, numbers or booleans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_params: Option<BTreeMap<String, Value>>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Shows the call's shape, never the user's token, header values or the body.
impl fmt::Debug for ProxyCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyCall")
            .field("method", &self.method)
            .field("grant_id", &self.grant_id)
            .field("provider_id", &self.provider_id)
            .field("user_token", &redact_option(self.user_token.as_ref()))
            .field(
                "header_names",
                &self.headers.as_ref().map(|h| h.keys().collect::<Vec<_>>()),
            )
            .field("has_body", &self.body.is_some())
            .finish_non_exhaustive()
    }
}

/// The 200 answer: the provider's response (`ApprovalResult`).
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProxyAnswer {
    /// Null on the synchronous path.
    pub approval_id: Option<String>,
    /// The provider's status (a provider 4xx/5xx is still a 200 envelope).
    pub status_code: u16,
    /// The provider's headers (several values of one name joined with `, `).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body, standard base64 with padding.
    #[serde(default)]
    pub body_b64: String,
    /// The body was longer than the vault's cap and was cut.
    #[serde(default)]
    pub body_truncated: bool,
    /// How long the provider took.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// On a provider 401/403: the credential was sent in a form the API does not take.
    #[serde(default)]
    pub credential_hint: Option<String>,
}

/// Shows no body (it is the provider's data).
impl fmt::Debug for ProxyAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyAnswer")
            .field("approval_id", &self.approval_id)
            .field("status_code", &self.status_code)
            .field("body_b64_len", &self.body_b64.len())
            .field("body_truncated", &self.body_truncated)
            .field("duration_ms", &self.duration_ms)
            .finish_non_exhaustive()
    }
}
