//! End-user identity: each app may configure one identity provider (IdP) whose JWTs identify
//! its users. A verified token becomes an app user with a stable `app_user_id` distinct from the
//! IdP subject; the groups claim decides group membership each time a token is presented.

use async_trait::async_trait;

use crate::ids::{AppId, IdpId};
use crate::time::Timestamp;

/// Signature algorithms an IdP's tokens may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl JwtAlgorithm {
    /// Parses `RS256`, `ES256` or `EdDSA`.
    pub fn parse(text: &str) -> Option<JwtAlgorithm> {
        match text {
            "RS256" => Some(JwtAlgorithm::RS256),
            "ES256" => Some(JwtAlgorithm::ES256),
            "EdDSA" => Some(JwtAlgorithm::EdDSA),
            _ => None,
        }
    }

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::EdDSA => "EdDSA",
        }
    }
}

/// Where an IdP's signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JwksSource {
    /// Fetched from this URL (https, or http to loopback), cached, refreshed on an unknown
    /// `kid`.
    Url(String),
    /// A JWKS document given by the operator (inline or from a file).
    Inline(String),
}

/// Which claims carry what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClaimMapping {
    /// The stable user id (default `sub`).
    pub subject: String,
    /// Group ids: an array of strings or one string (none by default).
    pub groups: Option<String>,
    /// E-mail address (default `email`).
    pub email: Option<String>,
    /// Display name (default `name`).
    pub name: Option<String>,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            subject: "sub".into(),
            groups: None,
            email: Some("email".into()),
            name: Some("name".into()),
        }
    }
}

/// An app's identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProvider {
    /// Id (the `idp_id` group principals name).
    pub id: IdpId,
    /// The app.
    pub app_id: AppId,
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted `aud` values (any one must match).
    pub audiences: Vec<String>,
    /// Signing keys.
    pub jwks: JwksSource,
    /// Accepted algorithms.
    pub algorithms: Vec<JwtAlgorithm>,
    /// Claim names.
    pub claims: ClaimMapping,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_seconds: i64,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// What a verified token says about its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The subject claim.
    pub subject: String,
    /// Group ids from the groups claim (empty without one).
    pub groups: Vec<String>,
    /// E-mail, if mapped and present.
    pub email: Option<String>,
    /// Display name, if mapped and present.
    pub name: Option<String>,
    /// The token's `exp`.
    pub expires_at: Timestamp,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Bad signature, issuer, audience, expiry, algorithm, malformed token or claims. The
    /// reason is for logs; clients see one `jwt_validation_error`.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The signing keys could not be fetched (a transient failure, not the user's fault).
    #[error("identity provider keys unavailable: {0}")]
    KeysUnavailable(String),
}

/// Verifies end-user JWTs against an IdP (implemented in `alter-upstream`, which fetches and
/// caches JWKS).
#[async_trait]
pub trait TokenVerifier: Send + Sync + std::fmt::Debug {
    /// Checks signature (with a key of the IdP's JWKS, refreshed once on an unknown `kid`),
    /// algorithm (one of the IdP's), `iss`, `aud`, `exp` and `nbf` (with the IdP's leeway,
    /// against `now`), then reads the mapped claims.
    async fn verify(
        &self,
        idp: &IdentityProvider,
        token: &str,
        now: Timestamp,
    ) -> Result<VerifiedToken, TokenError>;
}
