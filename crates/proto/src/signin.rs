//! End-user sign-in and identity (protocol part 2 §7): `/sdk/auth/*`, `/sdk/identity/*`, the
//! assertion JWKS, and the operator's sign-in configuration
//! (`/admin/v1/apps/{app}/idp/sign-in`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{REDACTED, redact_option};

/// `POST /sdk/auth/session`: the body is exactly `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAuthSessionRequest {}

/// The `201` answer of `POST /sdk/auth/session`.
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuthSession {
    /// The IdP login URL to open in the user's browser.
    pub auth_url: String,
    /// The handle to poll with (shown once).
    pub session_token: String,
    /// Seconds until the session expires.
    pub expires_in: i64,
    /// When it expires (RFC 3339).
    pub expires_at: String,
}

impl fmt::Debug for AuthSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSession")
            .field("auth_url", &self.auth_url)
            .field("session_token", &REDACTED)
            .field("expires_in", &self.expires_in)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// `POST /sdk/auth/poll`.
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollAuthSessionRequest {
    /// The session token.
    pub session_token: String,
    /// How long to hold the request for a change, in ms (server cap 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<i64>,
}

impl fmt::Debug for PollAuthSessionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollAuthSessionRequest")
            .field("session_token", &REDACTED)
            .field("wait_ms", &self.wait_ms)
            .finish()
    }
}

/// The `200` answer of `POST /sdk/auth/poll`: `status` is `pending`, `completed`, `error` or
/// `expired`; the other members belong to one of them.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuthPollResult {
    /// Where the session is.
    pub status: String,
    /// The user's ID token (`completed`, handed out once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_token: Option<String>,
    /// Who signed in (`completed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_info: Option<UserInfo>,
    /// Why it failed (`error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Why it failed, for people (`error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

impl fmt::Debug for AuthPollResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthPollResult")
            .field("status", &self.status)
            .field("user_token", &redact_option(self.user_token.as_ref()))
            .field("user_info", &self.user_info)
            .field("error_code", &self.error_code)
            .field("error_message", &self.error_message)
            .finish()
    }
}

/// The signed-in user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UserInfo {
    /// The IdP subject.
    pub sub: String,
    /// E-mail, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Display name, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `POST /sdk/auth/verify-token`.
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyTokenRequest {
    /// The user's IdP JWT.
    pub token: String,
}

impl fmt::Debug for VerifyTokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyTokenRequest")
            .field("token", &REDACTED)
            .finish()
    }
}

/// The `200` answer of `POST /sdk/auth/verify-token`: the subject only, never other claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VerifiedSubject {
    /// The verified `sub`.
    pub sub: String,
}

/// `POST /sdk/identity/resolve` and, with `audience` and `ttl_seconds`,
/// `POST /sdk/identity/assert`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityRequest {
    /// Include `email` and `display_name`.
    #[serde(default)]
    pub include_profile: bool,
    /// An end user's JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_token: Option<String>,
    /// An app user id (agents only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_user_id: Option<String>,
    /// The assertion's audience (assert only; required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The assertion's lifetime, 10–300 s (assert only; 120 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
}

impl fmt::Debug for IdentityRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityRequest")
            .field("include_profile", &self.include_profile)
            .field("user_token", &redact_option(self.user_token.as_ref()))
            .field("app_user_id", &self.app_user_id)
            .field("audience", &self.audience)
            .field("ttl_seconds", &self.ttl_seconds)
            .finish()
    }
}

/// Who a call acts for (`IdentityContext`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdentityContext {
    /// The app.
    pub app_id: String,
    /// The end user's canonical id.
    pub app_user_id: Option<String>,
    /// The IdP subject.
    pub external_subject_id: Option<String>,
    /// The IdP.
    pub idp_id: Option<String>,
    /// `active` or `suspended`.
    pub user_status: Option<String>,
    /// The user's group ids.
    pub group_ids: Vec<String>,
    /// The acting agent.
    pub agent_id: Option<String>,
    /// An audit label of the actor.
    pub actor_id: Option<String>,
    /// The ambient run and thread (`X-Alter-Context`).
    pub trace: Option<Trace>,
    /// E-mail (with `include_profile`).
    pub email: Option<String>,
    /// Display name (with `include_profile`).
    pub display_name: Option<String>,
}

/// The ambient trace of a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Trace {
    /// Run id.
    pub run_id: Option<String>,
    /// Thread id.
    pub thread_id: Option<String>,
}

/// The answer of `POST /sdk/identity/assert`.
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdentityAssertion {
    /// The compact ES256 JWS.
    pub token: String,
    /// Its expiry (RFC 3339).
    pub expires_at: String,
    /// Whom it names.
    pub identity: IdentityContext,
}

impl fmt::Debug for IdentityAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityAssertion")
            .field("token", &REDACTED)
            .field("expires_at", &self.expires_at)
            .field("identity", &self.identity)
            .finish()
    }
}

/// `GET /.well-known/alter-identity-jwks.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Jwks {
    /// The public keys.
    pub keys: Vec<Jwk>,
}

/// One EC P-256 public key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Jwk {
    /// `EC`.
    pub kty: String,
    /// `P-256`.
    pub crv: String,
    /// x coordinate.
    pub x: String,
    /// y coordinate.
    pub y: String,
    /// Key id.
    pub kid: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// `ES256`.
    pub alg: String,
}

/// `PUT /admin/v1/apps/{app}/idp/sign-in`: the OAuth client the vault signs the app's users in
/// with. Endpoints are discovered from the IdP's issuer unless both are given.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    /// The client id (one of the IdP's audiences).
    pub client_id: String,
    /// The client secret; kept from the stored configuration when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Scopes (`openid email profile` by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    /// The token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
}

impl fmt::Debug for SignInRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignInRequest")
            .field("client_id", &self.client_id)
            .field("client_secret", &redact_option(self.client_secret.as_ref()))
            .field("scopes", &self.scopes)
            .field("authorize_url", &self.authorize_url)
            .field("token_url", &self.token_url)
            .finish()
    }
}

/// The sign-in configuration as shown (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SignInInfo {
    /// The client id.
    pub client_id: String,
    /// Whether a client secret is stored.
    pub has_client_secret: bool,
    /// Scopes.
    pub scopes: Vec<String>,
    /// The authorization endpoint.
    pub authorize_url: Option<String>,
    /// The token endpoint.
    pub token_url: Option<String>,
    /// The redirect URI to register at the IdP.
    pub redirect_uri: String,
    /// What keeps sign-in from working (`missing_client_secret`, `issuer_cannot_sign_in`), or
    /// null when ready.
    pub not_ready: Option<String>,
    /// Bumped by every change.
    pub version: i64,
    /// Last change.
    pub updated_at: String,
}
