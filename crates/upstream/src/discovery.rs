//! OpenID Connect discovery (OpenID Connect Discovery 1.0 §4; RFC 8414 for the field names): an
//! operator names a custom provider by its issuer, and the vault reads the endpoints from
//! `{issuer}/.well-known/openid-configuration` — over the hardened client, and only if the
//! document names the same issuer (§4.3), so a document cannot move the provider elsewhere.

use serde::Deserialize;

use crate::Error;
use crate::http::{client, get_bounded, outbound_url};

/// Largest discovery document read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// What discovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The issuer (as the document states it, equal to the one asked for).
    pub issuer: String,
    /// Authorization endpoint.
    pub authorization_endpoint: String,
    /// Token endpoint.
    pub token_endpoint: String,
    /// Revocation endpoint (RFC 7009), if it has one.
    pub revocation_endpoint: Option<String>,
    /// Userinfo endpoint, if it has one.
    pub userinfo_endpoint: Option<String>,
    /// It accepts PKCE with S256.
    pub pkce_s256: bool,
}

#[derive(Deserialize)]
struct Document {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    revocation_endpoint: Option<String>,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    code_challenge_methods_supported: Vec<String>,
}

/// Reads providers' discovery documents.
#[derive(Debug, Clone)]
pub struct OidcDiscovery {
    http: reqwest::Client,
}

impl OidcDiscovery {
    /// A discoverer on the hardened HTTP client.
    pub fn new() -> Result<OidcDiscovery, Error> {
        Ok(OidcDiscovery { http: client()? })
    }

    /// The endpoints `issuer` publishes. The error is a reason for the operator.
    pub async fn discover(&self, issuer: &str) -> Result<Discovered, String> {
        let issuer = issuer.trim_end_matches('/');
        let url = outbound_url(&format!("{issuer}/.well-known/openid-configuration"))
            .map_err(|why| format!("the issuer {why}"))?;
        let body = get_bounded(&self.http, url, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|why| format!("cannot read the discovery document: {why}"))?;
        let document: Document = serde_json::from_slice(&body)
            .map_err(|e| format!("the discovery document is not valid: {e}"))?;
        parse(issuer, document)
    }
}

fn parse(issuer: &str, document: Document) -> Result<Discovered, String> {
    if document.issuer.trim_end_matches('/') != issuer {
        return Err(format!(
            "the discovery document names another issuer ({:?})",
            document.issuer
        ));
    }
    for endpoint in [
        Some(&document.authorization_endpoint),
        Some(&document.token_endpoint),
        document.revocation_endpoint.as_ref(),
        document.userinfo_endpoint.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        outbound_url(endpoint).map_err(|why| format!("endpoint {endpoint:?} {why}"))?;
    }
    Ok(Discovered {
        pkce_s256: document
            .code_challenge_methods_supported
            .iter()
            .any(|m| m == "S256"),
        issuer: document.issuer,
        authorization_endpoint: document.authorization_endpoint,
        token_endpoint: document.token_endpoint,
        revocation_endpoint: document.revocation_endpoint,
        userinfo_endpoint: document.userinfo_endpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(issuer: &str, authorize: &str) -> Document {
        Document {
            issuer: issuer.into(),
            authorization_endpoint: authorize.into(),
            token_endpoint: "https://id.example.com/token".into(),
            revocation_endpoint: None,
            userinfo_endpoint: Some("https://id.example.com/me".into()),
            code_challenge_methods_supported: vec!["S256".into()],
        }
    }

    #[test]
    fn the_document_must_name_the_issuer_asked_for_and_safe_endpoints() {
        let found = parse(
            "https://id.example.com",
            document("https://id.example.com/", "https://id.example.com/auth"),
        )
        .unwrap();
        assert!(found.pkce_s256);
        assert!(
            parse(
                "https://id.example.com",
                document("https://evil.example.com", "https://id.example.com/auth")
            )
            .is_err()
        );
        assert!(
            parse(
                "https://id.example.com",
                document("https://id.example.com", "http://evil.example.com/auth")
            )
            .is_err()
        );
    }
}
