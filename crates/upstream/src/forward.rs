//! The [`Forwarder`] of proxied calls, on reqwest: redirects are never followed (the 3xx is
//! the answer), no system proxy is used (it would connect elsewhere than what was checked),
//! every destination passes the guard of [`destination`](crate::destination) — IP literals
//! here, names in the resolver, which pins the connection to the checked addresses — and the
//! answer is read as a stream up to a cap, then left. Hop-by-hop headers and `Set-Cookie`
//! are not passed on: the caller is not the provider's client, and cookies set for the vault
//! would be another credential.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alter_core::proxy::{ForwardError, Forwarder, OutgoingRequest, UpstreamResponse};
use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::redirect::Policy;
use reqwest::{Method, Url};

use crate::Error;
use crate::destination::{AllowedNetworks, Blocked, GuardedResolver};

/// Longest wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a whole call may take, answer included.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Response headers never passed on.
const DROPPED_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "set-cookie",
    "set-cookie2",
];

/// Sends proxied calls.
#[derive(Debug, Clone)]
pub struct HttpForwarder {
    client: reqwest::Client,
    allowed: Arc<AllowedNetworks>,
}

impl HttpForwarder {
    /// A forwarder that reaches public addresses and `allowed`.
    pub fn new(allowed: AllowedNetworks) -> Result<Self, Error> {
        let allowed = Arc::new(allowed);
        let client = reqwest::Client::builder()
            .redirect(Policy::none())
            .no_proxy()
            .dns_resolver(GuardedResolver::new(Arc::clone(&allowed)))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            // Some APIs refuse calls without one; a caller's own User-Agent wins.
            .user_agent(concat!("alter/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::HttpClient)?;
        Ok(HttpForwarder { client, allowed })
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), ForwardError> {
        if self.allowed.permits(ip) {
            Ok(())
        } else {
            Err(ForwardError::BlockedDestination)
        }
    }

    fn build(&self, request: &OutgoingRequest) -> Result<reqwest::Request, ForwardError> {
        let url = Url::parse(&request.url).map_err(|_| ForwardError::InvalidUrl("not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ForwardError::InvalidUrl("only http and https are sent"));
        }
        // The URL parser has already read every IPv4 spelling (`127.1`, `2130706433`,
        // `0177.0.0.1`, `0x7f.0.0.1`) as the address it means; reqwest connects to a literal
        // without asking the resolver, so literals are checked here.
        match url.host() {
            None => return Err(ForwardError::InvalidUrl("no host")),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(url::Host::Domain(_)) => {}
        }
        let method = Method::from_bytes(request.method.as_bytes())
            .map_err(|_| ForwardError::InvalidUrl("not an HTTP method"))?;
        let mut built = reqwest::Request::new(method, url);
        let headers = built.headers_mut();
        for (name, value) in &request.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ForwardError::InvalidUrl("a header name cannot be sent"))?;
            let value = HeaderValue::from_bytes(value.as_bytes())
                .map_err(|_| ForwardError::InvalidUrl("a header value cannot be sent"))?;
            headers.append(name, value);
        }
        if !request.body.is_empty() {
            *built.body_mut() = Some(request.body.clone().into());
        }
        Ok(built)
    }
}

#[async_trait]
impl Forwarder for HttpForwarder {
    async fn send(
        &self,
        request: OutgoingRequest,
        max_body: usize,
    ) -> Result<UpstreamResponse, ForwardError> {
        let built = self.build(&request)?;
        let started = Instant::now();
        let mut response = self.client.execute(built).await.map_err(forward_error)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter(|(name, _)| !DROPPED_HEADERS.contains(&name.as_str()))
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(forward_error)? {
            let room = max_body - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        // Dropping the response closes the connection: what follows the cap is not read.
        drop(response);
        Ok(UpstreamResponse {
            status,
            headers,
            body,
            truncated,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// A reqwest error as the port names it; the text carries no URL.
fn forward_error(error: reqwest::Error) -> ForwardError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        if cause.downcast_ref::<Blocked>().is_some() {
            return ForwardError::BlockedDestination;
        }
        source = cause.source();
    }
    if error.is_timeout() {
        return ForwardError::Timeout;
    }
    let kind = if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "the answer broke off"
    } else {
        "the request failed"
    };
    ForwardError::Connect(kind.to_owned())
}
