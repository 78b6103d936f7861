//! The OAuth 2.0 client side as the services need it: the tokens a provider answers, why an
//! exchange failed, and the [`OAuthUpstream`] port that talks to providers (implemented in
//! `alter-upstream` over its hardened HTTP client). The Connect flow, refresh and upstream
//! revocation are written against this port.

use std::fmt;

use alter_crypto::SecretString;
use async_trait::async_trait;
use serde_json::Value;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use url::Url;

use crate::providers::{ProviderEndpoints, RESERVED_AUTHORIZE_PARAMS};

/// Why an OAuth exchange failed. Messages never include token material or the client secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The code or refresh token is dead (used, expired, revoked, or the PKCE verifier or
    /// redirect URI does not match): the grant needs the user again.
    #[error("the provider refused the grant (invalid_grant)")]
    InvalidGrant,
    /// The provider does not accept the client id and secret, or this client for this grant type.
    #[error("the provider refused the client credentials ({0})")]
    InvalidClient(String),
    /// Another RFC 6749 §5.2 refusal (`invalid_request`, `invalid_scope`,
    /// `unsupported_grant_type`…): retrying the same request will not help.
    #[error("the provider refused the request ({error}{})", description_suffix(.description))]
    Rejected {
        /// The `error` code.
        error: String,
        /// The provider's `error_description`, shortened.
        description: Option<String>,
    },
    /// Network failure, timeout, HTTP 5xx or 429: worth retrying later.
    #[error("the provider is unavailable: {0}")]
    Transient(String),
    /// The answer is not what the protocol says.
    #[error("the provider's answer is malformed: {0}")]
    Protocol(String),
    /// The provider's endpoints cannot be used (not https, not a URL).
    #[error("the provider is misconfigured: {0}")]
    Config(String),
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
}

impl OAuthError {
    /// The error with any text that contains one of `secrets` (what the request sent: a code, a
    /// verifier, a token, the client secret) replaced, in case the provider echoed it back.
    pub fn scrubbed(self, secrets: &[&str]) -> OAuthError {
        let scrub = |text: String| {
            if secrets
                .iter()
                .any(|secret| !secret.is_empty() && text.contains(secret))
            {
                "[REDACTED]".to_owned()
            } else {
                text
            }
        };
        match self {
            OAuthError::InvalidClient(text) => OAuthError::InvalidClient(scrub(text)),
            OAuthError::Rejected { error, description } => OAuthError::Rejected {
                error: scrub(error),
                description: description.map(scrub),
            },
            OAuthError::Transient(text) => OAuthError::Transient(scrub(text)),
            OAuthError::Protocol(text) => OAuthError::Protocol(scrub(text)),
            other => other,
        }
    }
}

fn description_suffix(description: &Option<String>) -> String {
    description
        .as_deref()
        .map(|text| format!(": {text}"))
        .unwrap_or_default()
}

/// What the token endpoint answered.
#[derive(Clone)]
pub struct TokenSet {
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token, when one was issued (or rotated).
    pub refresh_token: Option<SecretString>,
    /// Seconds until the access token expires, when the provider says.
    pub expires_in: Option<i64>,
    /// The scopes granted, when the provider says (when it does not, RFC 6749 §5.1 means those
    /// requested).
    pub scope: Option<Vec<String>>,
    /// The OpenID Connect ID token, when one was issued.
    pub id_token: Option<String>,
    /// The token type (`Bearer`).
    pub token_type: Option<String>,
    /// The whole answer minus `access_token`, `refresh_token` and `id_token`: where
    /// [`AccountSource::TokenResponse`] points.
    pub extra: Value,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |present: bool| if present { "[REDACTED]" } else { "None" };
        f.debug_struct("TokenSet")
            .field("access_token", &"[REDACTED]")
            .field("refresh_token", &redacted(self.refresh_token.is_some()))
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("id_token", &redacted(self.id_token.is_some()))
            .field("token_type", &self.token_type)
            // Only the names: some providers nest more tokens in their answer.
            .field(
                "extra",
                &self
                    .extra
                    .as_object()
                    .map(|map| map.keys().collect::<Vec<_>>()),
            )
            .finish()
    }
}

/// Which kind of token a revocation names (RFC 7009 §2.1 `token_type_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypeHint {
    /// `access_token`.
    AccessToken,
    /// `refresh_token`.
    RefreshToken,
}

impl TokenTypeHint {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenTypeHint::AccessToken => "access_token",
            TokenTypeHint::RefreshToken => "refresh_token",
        }
    }
}

/// A PKCE (RFC 7636) verifier and its S256 challenge.
pub struct Pkce {
    verifier: String,
    challenge: String,
}

impl Pkce {
    /// A fresh verifier: 32 bytes from the system CSPRNG in base64url, 43 characters of the
    /// unreserved set.
    pub fn new() -> Result<Pkce, OAuthError> {
        let bytes = alter_crypto::random_bytes::<32>().map_err(|_| OAuthError::Random)?;
        Ok(Pkce::from_verifier(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The pair for a verifier kept from an earlier [`Pkce::new`] (a stored Connect session).
    pub fn from_verifier(verifier: String) -> Pkce {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }

    /// The verifier, sent with the code exchange and kept secret until then.
    pub fn verifier(&self) -> &str {
        &self.verifier
    }

    /// The S256 challenge, sent in the authorization URL.
    pub fn challenge(&self) -> &str {
        &self.challenge
    }
}

impl fmt::Debug for Pkce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkce")
            .field("verifier", &"[REDACTED]")
            .field("challenge", &self.challenge)
            .finish()
    }
}

/// The URL of the provider's authorization endpoint for a code grant: `response_type=code`, the
/// client, the redirect URI, the scopes joined by the provider's separator, `state`, the S256
/// challenge when `pkce` is given, then the provider's extra parameters (never one of those).
pub fn authorization_url<S: AsRef<str>>(
    endpoints: &ProviderEndpoints,
    client_id: &str,
    redirect_uri: &str,
    scopes: &[S],
    state: &str,
    pkce: Option<&Pkce>,
) -> Result<Url, OAuthError> {
    let mut url = Url::parse(&endpoints.authorize_url)
        .map_err(|_| OAuthError::Config("the authorization URL is not a valid URL".into()))?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri);
        if !scopes.is_empty() {
            let joined = scopes
                .iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(&endpoints.scope_separator);
            query.append_pair("scope", &joined);
        }
        query.append_pair("state", state);
        if let Some(pkce) = pkce {
            query
                .append_pair("code_challenge", pkce.challenge())
                .append_pair("code_challenge_method", "S256");
        }
        for (name, value) in &endpoints.extra_authorize_params {
            if !RESERVED_AUTHORIZE_PARAMS.contains(&name.as_str()) {
                query.append_pair(name, value);
            }
        }
    }
    Ok(url)
}

/// Talks to providers' token, revocation and account endpoints. No error ever holds a token, a
/// code, a verifier or the client secret.
#[async_trait]
pub trait OAuthUpstream: Send + Sync + fmt::Debug {
    /// Exchanges an authorization code (RFC 6749 §4.1.3), with the PKCE verifier when the
    /// authorization request carried a challenge.
    async fn exchange_code(
        &self,
        endpoints: &ProviderEndpoints,
        client_id: &str,
        client_secret: &SecretString,
        redirect_uri: &str,
        code: &str,
        pkce_verifier: Option<&str>,
    ) -> Result<TokenSet, OAuthError>;

    /// Refreshes (RFC 6749 §6). A provider that does not rotate answers without a refresh
    /// token: the caller keeps the old one.
    async fn refresh(
        &self,
        endpoints: &ProviderEndpoints,
        client_id: &str,
        client_secret: &SecretString,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, OAuthError>;

    /// Revokes `token` (RFC 7009). `Ok(false)` when the provider has no revocation endpoint.
    async fn revoke(
        &self,
        endpoints: &ProviderEndpoints,
        client_id: &str,
        client_secret: &SecretString,
        token: &SecretString,
        hint: Option<TokenTypeHint>,
    ) -> Result<bool, OAuthError>;

    /// The label of the connected account, from where `endpoints.account` says.
    async fn account_identifier(
        &self,
        endpoints: &ProviderEndpoints,
        tokens: &TokenSet,
    ) -> Result<Option<String>, OAuthError>;
}
