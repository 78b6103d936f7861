//! The OAuth 2.0 client side of a connection (RFC 6749, PKCE RFC 7636, revocation RFC 7009):
//! pure functions over a provider's [`ProviderEndpoints`], with no storage and no routes.
//! [`authorization_url`] builds the URL the user's browser opens; [`OAuthClient`] exchanges the
//! code, refreshes and revokes over the hardened client (no redirects, timeouts, bounded bodies),
//! authenticating with `client_secret_basic`; [`OAuthClient::account_identifier`] finds the label
//! of the connected account.
//!
//! No error message ever holds a token, a code, a verifier or the client secret.

use alter_core::oauth::OAuthUpstream;
pub use alter_core::oauth::{OAuthError, Pkce, TokenSet, TokenTypeHint, authorization_url};
use alter_core::providers::{AccountSource, ProviderEndpoints};
use alter_crypto::{ExposeSecret, SecretString};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Map, Value};
use url::Url;
use url::form_urlencoded::{Serializer, byte_serialize};

use crate::Error;
use crate::http::{client, outbound_url, read_bounded, request_error};

/// Largest token, revocation or userinfo answer read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Longest provider `error_description` kept in an error.
const MAX_DESCRIPTION_CHARS: usize = 200;

/// Talks to providers' token, revocation and userinfo endpoints over the hardened client. Share
/// one per process.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
}

impl OAuthClient {
    /// A client on the hardened HTTP client.
    pub fn new() -> Result<OAuthClient, Error> {
        Ok(OAuthClient { http: client()? })
    }

    /// Sends `request` with the access token as a bearer token and parses the 2xx JSON answer.
    async fn fetch_json(
        &self,
        request: reqwest::RequestBuilder,
        tokens: &TokenSet,
    ) -> Result<Value, OAuthError> {
        let mut bearer = header_value(&format!("Bearer {}", tokens.access_token.expose_secret()))?;
        bearer.set_sensitive(true);
        let (status, body) = send(request.header(AUTHORIZATION, bearer)).await?;
        if is_transient(status) {
            return Err(OAuthError::Transient(format!("HTTP {}", status.as_u16())));
        }
        if !status.is_success() {
            return Err(OAuthError::Protocol(format!(
                "the account lookup answered HTTP {}",
                status.as_u16()
            )));
        }
        serde_json::from_slice(&body)
            .map_err(|_| OAuthError::Protocol("the account lookup answer is not JSON".into()))
    }

    /// POSTs a token request to `url` and reads the answer.
    async fn token_request(
        &self,
        endpoints: &ProviderEndpoints,
        url: &str,
        client_id: &str,
        client_secret: &SecretString,
        form: String,
    ) -> Result<TokenSet, OAuthError> {
        let (status, body) = self
            .post_form(url, "token", client_id, client_secret, form)
            .await?;
        token_answer(endpoints, status, &body)
            .map_err(|error| error.scrubbed(&[client_secret.expose_secret()]))
    }

    /// POSTs a form to `url` with `client_secret_basic` and returns the status and the bounded
    /// body. `what` names the endpoint in errors.
    async fn post_form(
        &self,
        url: &str,
        what: &str,
        client_id: &str,
        client_secret: &SecretString,
        form: String,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), OAuthError> {
        let request = self
            .http
            .post(checked(url, what)?)
            .header(AUTHORIZATION, basic_auth(client_id, client_secret)?)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form);
        send(request).await
    }
}

#[async_trait]
impl OAuthUpstream for OAuthClient {
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
    ) -> Result<TokenSet, OAuthError> {
        // The serializer is not `Send`: finish it before awaiting.
        let form = {
            let mut form = Serializer::new(String::new());
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", redirect_uri);
            if let Some(verifier) = pkce_verifier {
                form.append_pair("code_verifier", verifier);
            }
            form.finish()
        };
        self.token_request(
            endpoints,
            &endpoints.token_url,
            client_id,
            client_secret,
            form,
        )
        .await
        .map_err(|error| error.scrubbed(&[code, pkce_verifier.unwrap_or_default()]))
    }

    /// Refreshes (RFC 6749 §6) at the provider's refresh URL, or its token URL. A provider that
    /// does not rotate answers without a refresh token: keep the old one.
    async fn refresh(
        &self,
        endpoints: &ProviderEndpoints,
        client_id: &str,
        client_secret: &SecretString,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, OAuthError> {
        let form = Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token.expose_secret())
            .finish();
        let url = endpoints
            .refresh_url
            .as_deref()
            .unwrap_or(&endpoints.token_url);
        self.token_request(endpoints, url, client_id, client_secret, form)
            .await
            .map_err(|error| error.scrubbed(&[refresh_token.expose_secret()]))
    }

    /// Revokes `token` (RFC 7009). `Ok(false)` when the provider has no revocation endpoint;
    /// `Ok(true)` when it answered 200 (which it also does for a token it does not know).
    async fn revoke(
        &self,
        endpoints: &ProviderEndpoints,
        client_id: &str,
        client_secret: &SecretString,
        token: &SecretString,
        hint: Option<TokenTypeHint>,
    ) -> Result<bool, OAuthError> {
        let Some(url) = endpoints.revoke_url.as_deref() else {
            return Ok(false);
        };
        let form = {
            let mut form = Serializer::new(String::new());
            form.append_pair("token", token.expose_secret());
            if let Some(hint) = hint {
                form.append_pair("token_type_hint", hint.as_str());
            }
            form.finish()
        };
        let (status, body) = self
            .post_form(url, "revocation", client_id, client_secret, form)
            .await?;
        if status.is_success() {
            return Ok(true);
        }
        Err(error_answer(status, &body).scrubbed(&[token.expose_secret()]))
    }

    /// The label of the connected account, from where `endpoints.account` says. `Ok(None)` when
    /// the provider names no source or the answer has no such member. An ID token's claim is
    /// read WITHOUT verifying its signature: the identifier is only a display label, never
    /// used to decide access.
    async fn account_identifier(
        &self,
        endpoints: &ProviderEndpoints,
        tokens: &TokenSet,
    ) -> Result<Option<String>, OAuthError> {
        match &endpoints.account {
            AccountSource::Unknown => Ok(None),
            AccountSource::IdToken { claim } => {
                let Some(id_token) = tokens.id_token.as_deref() else {
                    return Ok(None);
                };
                let claims = unverified_claims(id_token)?;
                Ok(claims.get(claim).and_then(identifier))
            }
            AccountSource::TokenResponse { pointer } => {
                Ok(tokens.extra.pointer(pointer).and_then(identifier))
            }
            AccountSource::Userinfo { url, pointer } => {
                let request = self.http.get(checked(url, "userinfo")?);
                let answer = self.fetch_json(request, tokens).await?;
                Ok(answer.pointer(pointer).and_then(identifier))
            }
            AccountSource::Graphql {
                url,
                query,
                pointer,
            } => {
                let request = self
                    .http
                    .post(checked(url, "GraphQL")?)
                    .json(&serde_json::json!({ "query": query }));
                let answer = self.fetch_json(request, tokens).await?;
                Ok(answer.pointer(pointer).and_then(identifier))
            }
        }
    }
}

/// Sends `request` asking for JSON and returns the status and the bounded body; a network
/// failure, a timeout or an oversized body is transient.
async fn send(
    request: reqwest::RequestBuilder,
) -> Result<(reqwest::StatusCode, Vec<u8>), OAuthError> {
    let response = request
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| OAuthError::Transient(request_error(e)))?;
    let status = response.status();
    let body = read_bounded(response, MAX_RESPONSE_BYTES)
        .await
        .map_err(OAuthError::Transient)?;
    Ok((status, body))
}

/// `url` checked by the hardened client's rules.
fn checked(url: &str, what: &str) -> Result<Url, OAuthError> {
    outbound_url(url).map_err(|why| OAuthError::Config(format!("the {what} endpoint {why}")))
}

fn header_value(text: &str) -> Result<HeaderValue, OAuthError> {
    // Without the text: it holds a credential.
    HeaderValue::from_str(text)
        .map_err(|_| OAuthError::Config("a credential is not a valid header value".into()))
}

/// `Authorization: Basic` for `client_secret_basic` (RFC 6749 §2.3.1): the id and the secret
/// are each form-urlencoded before they are joined and base64-encoded.
fn basic_auth(client_id: &str, client_secret: &SecretString) -> Result<HeaderValue, OAuthError> {
    let id = byte_serialize(client_id.as_bytes()).collect::<String>();
    let secret = byte_serialize(client_secret.expose_secret().as_bytes()).collect::<String>();
    let mut value = header_value(&format!(
        "Basic {}",
        STANDARD.encode(format!("{id}:{secret}"))
    ))?;
    value.set_sensitive(true);
    Ok(value)
}

fn is_transient(status: reqwest::StatusCode) -> bool {
    status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS
}

/// A token endpoint's answer as a [`TokenSet`] or an error. Some providers answer 200 with an
/// `error` member, so that is looked for first.
fn token_answer(
    endpoints: &ProviderEndpoints,
    status: reqwest::StatusCode,
    body: &[u8],
) -> Result<TokenSet, OAuthError> {
    if !status.is_success() {
        return Err(error_answer(status, body));
    }
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(body) else {
        return Err(OAuthError::Protocol(
            "the token answer is not a JSON object".into(),
        ));
    };
    if let Some(error) = answer.get("error").and_then(Value::as_str) {
        return Err(map_error(error, answer.get("error_description")));
    }
    parse_token_set(endpoints, answer)
}

fn parse_token_set(
    endpoints: &ProviderEndpoints,
    mut answer: Map<String, Value>,
) -> Result<TokenSet, OAuthError> {
    let mut take_string = |name: &str| match answer.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if !text.is_empty() => Ok(Some(text)),
        Some(_) => Err(OAuthError::Protocol(format!("{name} is not a string"))),
    };
    let access_token = take_string("access_token")?
        .map(SecretString::from)
        .ok_or_else(|| OAuthError::Protocol("the token answer has no access_token".into()))?;
    let refresh_token = take_string("refresh_token")?.map(SecretString::from);
    let id_token = take_string("id_token")?;
    let expires_in = match answer.get("expires_in") {
        None | Some(Value::Null) => None,
        // Some providers send the number as a string.
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(text)) => text.trim().parse().ok(),
        Some(_) => None,
    };
    let scope = match answer.get("scope") {
        Some(Value::String(text)) => Some(split_scopes(text, &endpoints.scope_separator)),
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    };
    let token_type = answer
        .get("token_type")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(TokenSet {
        access_token,
        refresh_token,
        expires_in,
        scope,
        id_token,
        token_type,
        extra: Value::Object(answer),
    })
}

/// Scopes as granted: split on the provider's separator and on white space (RFC 6749 §3.3).
fn split_scopes(text: &str, separator: &str) -> Vec<String> {
    text.split(separator)
        .flat_map(str::split_whitespace)
        .map(str::to_owned)
        .collect()
}

/// The error of a non-2xx answer: the RFC 6749 §5.2 code when there is one, else by status.
fn error_answer(status: reqwest::StatusCode, body: &[u8]) -> OAuthError {
    if is_transient(status) {
        return OAuthError::Transient(format!("HTTP {}", status.as_u16()));
    }
    let parsed = serde_json::from_slice::<Value>(body).ok();
    if let Some(error) = parsed
        .as_ref()
        .and_then(|answer| answer.get("error"))
        .and_then(Value::as_str)
    {
        return map_error(
            error,
            parsed
                .as_ref()
                .and_then(|answer| answer.get("error_description")),
        );
    }
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return OAuthError::InvalidClient("HTTP 401".into());
    }
    OAuthError::Protocol(format!("HTTP {} without an error code", status.as_u16()))
}

/// Maps an RFC 6749 §5.2 `error` code (and RFC 6749 §4.1.2.1's retryable ones, which some
/// token endpoints send too).
fn map_error(error: &str, description: Option<&Value>) -> OAuthError {
    match error {
        "invalid_grant" => OAuthError::InvalidGrant,
        "invalid_client" | "unauthorized_client" => OAuthError::InvalidClient(short(error)),
        "temporarily_unavailable" | "server_error" | "slow_down" => {
            OAuthError::Transient(short(error))
        }
        _ => OAuthError::Rejected {
            error: short(error),
            description: description.and_then(Value::as_str).map(short),
        },
    }
}

/// Provider text shortened and stripped of control characters, for an error message.
fn short(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_DESCRIPTION_CHARS)
        .collect()
}

/// The claims of a JWT, read without checking its signature (for a display label only).
fn unverified_claims(jwt: &str) -> Result<Map<String, Value>, OAuthError> {
    let malformed = || OAuthError::Protocol("the ID token is not a JWT".into());
    let payload = jwt.split('.').nth(1).ok_or_else(malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| malformed())?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(claims)) => Ok(claims),
        _ => Err(malformed()),
    }
}

/// A string or number as an identifier; anything else (or an empty string) is none.
fn identifier(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use alter_core::providers::RefreshBehaviour;

    use super::*;

    fn endpoints(separator: &str) -> ProviderEndpoints {
        ProviderEndpoints {
            issuer: None,
            authorize_url: "https://id.example.com/authorize?tenant=t1".into(),
            token_url: "https://id.example.com/token".into(),
            refresh_url: None,
            revoke_url: None,
            pkce: true,
            scope_separator: separator.into(),
            refresh: RefreshBehaviour::Rotating,
            extra_authorize_params: BTreeMap::from([
                ("access_type".to_owned(), "offline".to_owned()),
                ("state".to_owned(), "hijacked".to_owned()),
                ("response_type".to_owned(), "token".to_owned()),
            ]),
            account: AccountSource::Unknown,
            api_base_url: None,
            api_headers: BTreeMap::new(),
        }
    }

    fn params(url: &Url) -> Vec<(String, String)> {
        url.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn pkce_is_a_43_char_unreserved_verifier_and_its_s256_challenge() {
        let pkce = Pkce::new().unwrap();
        assert_eq!(pkce.verifier().len(), 43);
        assert!(
            pkce.verifier()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        );
        assert_ne!(Pkce::new().unwrap().verifier(), pkce.verifier());
        // RFC 7636 appendix B.
        let known = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into());
        assert_eq!(
            known.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(!format!("{known:?}").contains("dBjftJeZ"));
    }

    #[test]
    fn the_authorization_url_carries_the_request_and_extras_never_override_it() {
        let pkce = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into());
        let url = authorization_url(
            &endpoints(","),
            "client 1",
            "https://vault.example.com/oauth/callback",
            &["files.read", "files.write"],
            "st&te",
            Some(&pkce),
        )
        .unwrap();
        assert_eq!(url.path(), "/authorize");
        assert_eq!(
            params(&url),
            [
                ("tenant", "t1"),
                ("response_type", "code"),
                ("client_id", "client 1"),
                ("redirect_uri", "https://vault.example.com/oauth/callback"),
                ("scope", "files.read,files.write"),
                ("state", "st&te"),
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
                ),
                ("code_challenge_method", "S256"),
                ("access_type", "offline"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );

        let plain = authorization_url(&endpoints(" "), "c", "https://r", &[] as &[&str], "s", None)
            .unwrap();
        let names: Vec<_> = params(&plain).into_iter().map(|(k, _)| k).collect();
        assert!(!names.iter().any(|n| n == "scope" || n.starts_with("code_")));
        let spaced =
            authorization_url(&endpoints(" "), "c", "https://r", &["a", "b"], "s", None).unwrap();
        assert!(spaced.as_str().contains("scope=a+b"), "{spaced}");
    }

    #[test]
    fn client_secret_basic_form_encodes_id_and_secret_first() {
        let header = basic_auth("my client:1", &SecretString::from("p@ss:wörd/+")).unwrap();
        assert!(header.is_sensitive());
        let encoded = header.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
        assert_eq!(decoded, "my+client%3A1:p%40ss%3Aw%C3%B6rd%2F%2B");
    }

    #[test]
    fn errors_map_from_rfc_6749_codes_and_statuses() {
        let bad = reqwest::StatusCode::BAD_REQUEST;
        let answer = |json: &str| error_answer(bad, json.as_bytes());
        assert_eq!(
            answer(r#"{"error":"invalid_grant","error_description":"grant request is invalid"}"#),
            OAuthError::InvalidGrant
        );
        assert!(matches!(
            error_answer(
                reqwest::StatusCode::UNAUTHORIZED,
                br#"{"error":"invalid_client"}"#
            ),
            OAuthError::InvalidClient(_)
        ));
        assert!(matches!(
            answer(r#"{"error":"unauthorized_client"}"#),
            OAuthError::InvalidClient(_)
        ));
        assert_eq!(
            answer(r#"{"error":"invalid_scope","error_description":"wider\nscope"}"#),
            OAuthError::Rejected {
                error: "invalid_scope".into(),
                description: Some("widerscope".into())
            }
        );
        assert!(matches!(
            answer(r#"{"error":"temporarily_unavailable"}"#),
            OAuthError::Transient(_)
        ));
        assert!(matches!(
            error_answer(reqwest::StatusCode::BAD_GATEWAY, b"<html>"),
            OAuthError::Transient(_)
        ));
        assert!(matches!(
            error_answer(reqwest::StatusCode::TOO_MANY_REQUESTS, b""),
            OAuthError::Transient(_)
        ));
        assert!(matches!(
            error_answer(reqwest::StatusCode::UNAUTHORIZED, b"nope"),
            OAuthError::InvalidClient(_)
        ));
        assert!(matches!(answer("<html>"), OAuthError::Protocol(_)));
        // A provider that echoes what it was sent does not get it into the message.
        let echoed = answer(r#"{"error":"invalid_request","error_description":"bad RT-123"}"#)
            .scrubbed(&["RT-123", ""]);
        assert_eq!(
            echoed.to_string(),
            "the provider refused the request (invalid_request: [REDACTED])"
        );
        // A 200 carrying an error (GitHub does this).
        assert_eq!(
            token_answer(
                &endpoints(" "),
                reqwest::StatusCode::OK,
                br#"{"error":"invalid_grant"}"#
            )
            .unwrap_err(),
            OAuthError::InvalidGrant
        );
        assert!(matches!(
            token_answer(&endpoints(" "), reqwest::StatusCode::OK, b"{}").unwrap_err(),
            OAuthError::Protocol(_)
        ));
    }

    #[test]
    fn a_token_set_parses_the_answer_and_never_prints_a_token() {
        let body =
            br#"{"access_token":"AT-secret","refresh_token":"RT-secret","id_token":"ID-secret",
            "expires_in":"3600","scope":"files.read,files.write openid","token_type":"Bearer",
            "team":{"id":"T1"},"authed_user":{"access_token":"nested-secret"}}"#;
        let tokens = token_answer(&endpoints(","), reqwest::StatusCode::OK, body).unwrap();
        assert_eq!(tokens.access_token.expose_secret(), "AT-secret");
        assert_eq!(
            tokens.refresh_token.as_ref().unwrap().expose_secret(),
            "RT-secret"
        );
        assert_eq!(tokens.expires_in, Some(3600));
        assert_eq!(
            tokens.scope.as_deref().unwrap(),
            ["files.read", "files.write", "openid"]
        );
        assert_eq!(tokens.token_type.as_deref(), Some("Bearer"));
        assert_eq!(tokens.extra["team"]["id"], "T1");
        assert!(tokens.extra.get("access_token").is_none());
        // Only the names of the other members: some providers nest more tokens there.
        let printed = format!("{tokens:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(
            printed.contains("team") && printed.contains("authed_user"),
            "{printed}"
        );
    }

    #[tokio::test]
    async fn the_account_identifier_comes_from_the_token_answer_or_the_id_token() {
        let client = OAuthClient::new().unwrap();
        let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"alice","n":7}"#);
        let body =
            format!(r#"{{"access_token":"a","id_token":"h.{payload}.s","user":{{"login":"al"}}}}"#);
        let tokens =
            token_answer(&endpoints(" "), reqwest::StatusCode::OK, body.as_bytes()).unwrap();
        let mut provider = endpoints(" ");
        for (source, expected) in [
            (AccountSource::Unknown, None),
            (
                AccountSource::TokenResponse {
                    pointer: "/user/login".into(),
                },
                Some("al"),
            ),
            (
                AccountSource::IdToken {
                    claim: "sub".into(),
                },
                Some("alice"),
            ),
            (AccountSource::IdToken { claim: "n".into() }, Some("7")),
            (
                AccountSource::IdToken {
                    claim: "email".into(),
                },
                None,
            ),
        ] {
            provider.account = source;
            assert_eq!(
                client
                    .account_identifier(&provider, &tokens)
                    .await
                    .unwrap()
                    .as_deref(),
                expected
            );
        }
    }
}
