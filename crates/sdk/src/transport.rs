//! Signed HTTP transport: every request carries the API key and an HMAC signature computed
//! exactly as the official client computes it (shared with the server through `alter-proto`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alter_proto::signing::{self, SigningInput, SigningKey, headers};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorInfo};

/// Environment variable holding the server's base URL.
pub const BASE_URL_VAR: &str = "ALTER_BASE_URL";
/// Where `alter dev` listens by default.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080";
/// Default per-request timeout, as the official client's `App` and `Agent`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The `User-Agent` of every request the SDK makes, to Alter and to providers.
pub(crate) const USER_AGENT: &str = concat!("alter-sdk-rust/", env!("CARGO_PKG_VERSION"));

/// Which error mapper turns an error answer into an [`Error`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mapper {
    /// Protocol part 1 §4.2.
    Main,
    /// Protocol part 2 §8.10 (`/sdk/agents*`).
    Agents,
    /// Protocol part 1 §4.3: `/sdk/proxy` and `/sdk/approvals/{id}/result`.
    Proxy,
    /// Protocol part 1 §4.3: `GET /sdk/approvals/{id}`, every error a plain `BackendError`.
    ApprovalStatus,
}

impl Mapper {
    /// The [`Error`] of an error answer (status ≥ 400).
    fn map(self, status: u16, body: &[u8]) -> Error {
        match self {
            Mapper::Main => crate::error::from_response(status, body),
            Mapper::Agents => crate::error::from_agents_response(status, body),
            Mapper::Proxy => crate::error::from_proxy_response(status, body),
            Mapper::ApprovalStatus => {
                crate::error::from_approval_status_response("/sdk/approvals", status, body)
            }
        }
    }
}

/// Where the signing timestamp comes from.
pub(crate) type TimeSource = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Identity headers bound into the signature.
#[derive(Debug, Clone, Default)]
pub(crate) struct Identity {
    pub caller: Option<String>,
    pub caller_type: Option<String>,
}

/// A configured, signing HTTP client.
#[derive(Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    /// The client of provider calls (`request()`): it never sees the API key.
    provider: reqwest::Client,
    base_url: String,
    api_key: String,
    signing_key: SigningKey,
    identity: Identity,
    now: TimeSource,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("base_url", &self.base_url)
            .field("key", &alter_proto::keyfmt::display_prefix(&self.api_key))
            .finish_non_exhaustive()
    }
}

/// A successful answer: status, response headers and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Transport {
    pub fn new(
        api_key: String,
        base_url: Option<String>,
        timeout: Duration,
        identity: Identity,
        now: TimeSource,
    ) -> Result<Transport, Error> {
        alter_proto::keyfmt::parse(&api_key)
            .map_err(|_| Error::value("api_key is not a valid Alter API key"))?;
        let base_url = match base_url {
            Some(url) => url,
            None => std::env::var(BASE_URL_VAR).unwrap_or_else(|_| DEFAULT_BASE_URL.to_owned()),
        };
        let base_url = validate_base_url(&base_url)?;
        Ok(Transport {
            http: http_client(timeout)?,
            provider: http_client(timeout)?,
            signing_key: signing::signing_key(&api_key),
            api_key,
            base_url,
            identity,
            now,
        })
    }

    /// The same transport signing other identity headers (an app key acting as an agent).
    pub fn with_identity(&self, identity: Identity) -> Transport {
        Transport {
            identity,
            ..self.clone()
        }
    }

    /// The HTTP client of provider calls: same timeout, no redirects, never the API key.
    pub fn provider_http(&self) -> &reqwest::Client {
        &self.provider
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends a signed request to `path_and_query` (already percent-encoded, starting with
    /// `/sdk/`) and returns the answer, or the mapped error for a status ≥ 400.
    pub async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&B>,
        mapper: Mapper,
    ) -> Result<Answer, Error> {
        self.send_with(method, path_and_query, body, &[], mapper)
            .await
    }

    /// [`Self::send`] with extra unsigned headers (such as `Idempotency-Key`).
    pub async fn send_with<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&B>,
        extra_headers: &[(&str, &str)],
        mapper: Mapper,
    ) -> Result<Answer, Error> {
        self.send_timed(method, path_and_query, body, extra_headers, None, mapper)
            .await
    }

    /// [`Self::send_with`] with this request's own timeout in place of the client's (a long
    /// poll the server holds open).
    pub async fn send_timed<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&B>,
        extra_headers: &[(&str, &str)],
        timeout: Option<Duration>,
        mapper: Mapper,
    ) -> Result<Answer, Error> {
        let body = match body {
            Some(b) => serde_json::to_vec(b)
                .map_err(|e| Error::value(format!("cannot encode the request: {e}")))?,
            None => Vec::new(),
        };
        let timestamp = (self.now)()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
            .to_string();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let content_sha256 = signing::content_sha256(&body);
        let canonical_target = signing::canonical_target(path_and_query);
        let input = SigningInput {
            method: method.as_str(),
            canonical_target: &canonical_target,
            timestamp: &timestamp,
            nonce: &nonce,
            content_sha256: &content_sha256,
            caller: self.identity.caller.as_deref(),
            caller_type: self.identity.caller_type.as_deref(),
            ..Default::default()
        };
        let signature = input.sign(&self.signing_key);
        let url = format!("{}{path_and_query}", self.base_url);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .header(headers::API_KEY, &self.api_key)
            .header(headers::TIMESTAMP, &timestamp)
            .header(headers::NONCE, &nonce)
            .header(headers::CONTENT_SHA256, &content_sha256)
            .header(headers::SIGNATURE, &signature);
        if input.has_identity() {
            request = request.header(headers::SIGNATURE_V2, &signature);
        }
        if let Some(caller) = &self.identity.caller {
            request = request.header(headers::CALLER, caller);
        }
        if let Some(kind) = &self.identity.caller_type {
            request = request.header(headers::CALLER_TYPE, kind);
        }
        for (name, value) in extra_headers {
            request = request.header(*name, *value);
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        if !body.is_empty() {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        execute(request, mapper).await
    }

    /// Sends a signed request and decodes the JSON answer.
    pub async fn json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&B>,
        mapper: Mapper,
    ) -> Result<T, Error> {
        let answer = self.send(method, path_and_query, body, mapper).await?;
        decode(&answer)
    }
}

/// The HTTP client of every connection the SDK makes: `timeout` per request, no redirects, the
/// SDK's user agent.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| Error::sdk(format!("cannot build the HTTP client: {e}")))
}

/// Sends a built request and reads the answer: a timeout is [`Error::Timeout`], any other
/// transport failure [`Error::Network`], a status ≥ 400 the error `mapper` names.
pub(crate) async fn execute(
    request: reqwest::RequestBuilder,
    mapper: Mapper,
) -> Result<Answer, Error> {
    let response = request.send().await.map_err(transport_error)?;
    let status = response.status();
    let body = response.bytes().await.map_err(transport_error)?.to_vec();
    if status.as_u16() >= 400 {
        return Err(mapper.map(status.as_u16(), &body));
    }
    Ok(Answer { status, body })
}

/// Decodes a JSON answer, as a `BackendError` if it has the wrong shape. The error names the
/// kind and place of the problem, never serde's message: that quotes the offending value,
/// which may be a credential.
pub(crate) fn decode<T: DeserializeOwned>(answer: &Answer) -> Result<T, Error> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        Error::Backend(ErrorInfo {
            status: answer.status.as_u16(),
            code: None,
            message: format!(
                "Backend returned an unexpected response ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
            fields: Default::default(),
        })
    })
}

fn transport_error(e: reqwest::Error) -> Error {
    let info = ErrorInfo {
        message: e.to_string(),
        ..Default::default()
    };
    if e.is_timeout() {
        Error::Timeout(info)
    } else {
        Error::Network(info)
    }
}

/// The hosts plain http is allowed to, for the base URL and for provider calls alike:
/// `localhost`, `127.0.0.1` and `::1` (bracketed or not), in any case.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    ["localhost", "127.0.0.1", "[::1]", "::1"]
        .iter()
        .any(|loopback| host.eq_ignore_ascii_case(loopback))
}

/// The official client's base URL rules: http(s) only, a host, no userinfo, query or fragment,
/// plain http only to loopback; trailing slashes dropped.
pub(crate) fn validate_base_url(text: &str) -> Result<String, Error> {
    let trimmed = text.trim_end_matches('/');
    let invalid = |why: &str| Error::sdk(format!("invalid base URL {trimmed:?}: {why}"));
    if trimmed.is_empty() {
        return Err(invalid("empty"));
    }
    let url = Url::parse(trimmed).map_err(|_| invalid("not a URL"))?;
    let host = url.host_str().ok_or_else(|| invalid("no host"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("user info is not allowed"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("query and fragment are not allowed"));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(host) => {}
        "http" => return Err(invalid("plain http is only allowed to localhost")),
        _ => return Err(invalid("the scheme must be http or https")),
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_do_not_echo_values() {
        let credential = "sk_live_51HdecodeSecret0123456789";
        // A token answer whose `access_token` has the wrong type, or a field of the wrong type
        // next to it: serde's own message would quote the value.
        for body in [
            format!(r#"{{"access_token": ["{credential}"]}}"#),
            format!(r#"{{"access_token": "{credential}", "expires_in": "{credential}"}}"#),
        ] {
            let answer = Answer {
                status: StatusCode::OK,
                body: body.into_bytes(),
            };
            let Err(Error::Backend(info)) = decode::<alter_proto::token::TokenResponse>(&answer)
            else {
                panic!("a malformed answer must be a backend error");
            };
            assert!(!info.message.contains(credential), "{}", info.message);
            assert!(!format!("{info:?}").contains("sk_live"));
        }
    }

    #[test]
    fn base_url_rules() {
        assert_eq!(
            validate_base_url("http://127.0.0.1:8080/api//").unwrap(),
            "http://127.0.0.1:8080/api"
        );
        assert!(validate_base_url("https://vault.example.com").is_ok());
        assert!(validate_base_url("http://[::1]:9").is_ok());
        assert!(validate_base_url("http://LOCALHOST").is_ok());
        for bad in [
            "",
            "vault.example.com",
            "http://vault.example.com",
            "ftp://localhost",
            "https://u:p@vault.example.com",
            "https://vault.example.com?x=1",
            "https://vault.example.com#f",
        ] {
            assert!(validate_base_url(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_silent_server_is_a_timeout_and_a_closed_port_a_network_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = format!("http://{}/", listener.local_addr().unwrap());
        let http = http_client(Duration::from_millis(200)).unwrap();
        let error = execute(http.get(&silent), Mapper::Main).await.unwrap_err();
        assert!(matches!(error, Error::Timeout(_)), "{error:?}");
        drop(listener);
        let error = execute(http.get(&silent), Mapper::Main).await.unwrap_err();
        assert!(matches!(error, Error::Network(_)), "{error:?}");
    }
}
