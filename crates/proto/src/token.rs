//! Credential use: `POST /sdk/token` (protocol part 1 §5.2–5.3) and the client's reports,
//! `POST /sdk/oauth/audit/api-call` (§5.7) and `POST /sdk/grants/{id}/report-scope-mismatch`
//! (§5.6).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{REDACTED, redact_option};

/// Header names a credential may never be injected into (protocol part 1 §5.3): the client
/// refuses a release naming one, and the server refuses to store a secret that would.
pub const FORBIDDEN_INJECTION_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "cookie",
    "set-cookie",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "x-http-method-override",
    "x-method-override",
    "www-authenticate",
    "strict-transport-security",
    "content-security-policy",
];

/// A header a credential may be injected into: `[A-Za-z][A-Za-z0-9-]*`, at most 60
/// characters, not one of [`FORBIDDEN_INJECTION_HEADERS`] (in any case).
pub fn injectable_header(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && name.len() <= 60
        && !FORBIDDEN_INJECTION_HEADERS.contains(&name.to_ascii_lowercase().as_str())
}

/// The outgoing call a credential is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenTarget {
    /// Upper-case method.
    pub method: String,
    /// The URL as called (without the separate `query_params`).
    pub url: String,
}

/// `POST /sdk/token`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Direct mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// Provider mode: OAuth provider id or managed-secret slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// Why (always sent, may be null).
    #[serde(default)]
    pub reason: Option<String>,
    /// The outgoing call.
    pub request: TokenTarget,
    /// An end user's JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_token: Option<String>,
    /// Provider mode: the user whose delegation an agent uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_user_id: Option<String>,
    /// Provider mode: the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Provider mode: the sibling label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("grant_id", &self.grant_id)
            .field("provider_id", &self.provider_id)
            .field("reason", &self.reason)
            .field("request", &self.request)
            .field("user_token", &redact_option(self.user_token.as_ref()))
            .field("app_user_id", &self.app_user_id)
            .field("account", &self.account)
            .field("label", &self.label)
            .finish()
    }
}

/// One entry of `additional_injections`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdditionalInjection {
    /// `header` or `query_param`.
    pub target: String,
    /// Header or parameter name.
    pub key: String,
    /// `token` or `additional_credentials.<field>`.
    pub value_source: String,
}

/// The answer to `POST /sdk/token`, honouring every strict rule of §5.3.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TokenResponse {
    /// The credential.
    pub access_token: String,
    /// Informational.
    pub token_type: String,
    /// Seconds until the grant ends (JSON integer), or null.
    pub expires_in: Option<i64>,
    /// Provider-token expiry: none for managed secrets.
    pub expires_at: Option<String>,
    /// Always a list.
    pub scopes: Vec<String>,
    /// The grant used (canonical lower-case UUID).
    pub grant_id: String,
    /// The provider (managed-secret slug).
    pub provider_id: String,
    /// The release's id (canonical lower-case UUID), echoed by the client's reports.
    pub token_generation: Option<String>,
    /// A provider reported the grant's scopes too narrow.
    pub scope_mismatch: bool,
    /// The header the credential goes into.
    pub injection_header: String,
    /// Its format (`{token}` is replaced).
    pub injection_format: String,
    /// Further named values (basic, query, multi, SigV4).
    pub additional_credentials: Option<BTreeMap<String, String>>,
    /// Further injections.
    pub additional_injections: Option<Vec<AdditionalInjection>>,
    /// The grant's own end (extra field; the client ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_expires_at: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credential_names = self
            .additional_credentials
            .as_ref()
            .map(|values| values.keys().collect::<Vec<_>>());
        f.debug_struct("TokenResponse")
            .field("access_token", &REDACTED)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .field("grant_id", &self.grant_id)
            .field("provider_id", &self.provider_id)
            .field("token_generation", &self.token_generation)
            .field("scope_mismatch", &self.scope_mismatch)
            .field("injection_header", &self.injection_header)
            .field("injection_format", &self.injection_format)
            .field("additional_credentials (names)", &credential_names)
            .field("additional_injections", &self.additional_injections)
            .field("grant_expires_at", &self.grant_expires_at)
            .finish()
    }
}

/// `POST /sdk/oauth/audit/api-call`: every key is always sent, values may be null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApiCallAudit {
    /// The grant used.
    pub grant_id: String,
    /// Provider.
    #[serde(default)]
    pub provider_id: Option<String>,
    /// The release (`token_generation` of the token answer).
    #[serde(default)]
    pub token_generation: Option<String>,
    /// Method.
    pub method: String,
    /// URL without `query_params`.
    pub url: String,
    /// Sanitized request headers (not stored).
    #[serde(default)]
    pub request_headers: Option<Value>,
    /// Request body (not stored).
    #[serde(default)]
    pub request_body: Option<Value>,
    /// Provider status; 0 on a transport error.
    pub response_status: i64,
    /// Response headers (not stored).
    #[serde(default)]
    pub response_headers: Option<Value>,
    /// Response body (not stored).
    #[serde(default)]
    pub response_body: Option<Value>,
    /// Latency.
    #[serde(default)]
    pub latency_ms: i64,
    /// Reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// Audit context.
    #[serde(default)]
    pub context: Option<Value>,
}

/// `POST /sdk/grants/{id}/report-scope-mismatch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScopeMismatchReport {
    /// 403.
    #[serde(default)]
    pub provider_status_code: Option<i64>,
    /// `insufficient_scope`.
    #[serde(default)]
    pub provider_error_code: Option<String>,
    /// Scopes the provider asked for.
    #[serde(default)]
    pub missing_scopes: Option<Vec<String>>,
    /// The provider's challenge (not stored).
    #[serde(default)]
    pub raw_www_authenticate: Option<String>,
    /// The endpoint (host and first path segment kept).
    #[serde(default)]
    pub api_endpoint: Option<String>,
    /// `www_authenticate_rfc6750`.
    #[serde(default)]
    pub detection_source: Option<String>,
    /// The client's correlation id.
    #[serde(default)]
    pub sdk_correlation_id: Option<String>,
}
