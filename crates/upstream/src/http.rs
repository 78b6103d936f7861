//! The hardened HTTP client every outgoing request goes through: no redirects (a redirect could
//! carry the request to a host nobody configured), short timeouts, bounded response bodies, and
//! only `https://` URLs or plain `http://` to the loopback interface.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::Url;
use reqwest::redirect::Policy;

use crate::Error;

/// Whole-request timeout.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the client.
pub(crate) fn client() -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .user_agent(concat!("alter/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(Error::HttpClient)
}

/// Parses `url` and refuses anything but `https://`, or `http://` to a loopback host (a local
/// IdP in development and tests). The reason is for logs.
pub(crate) fn outbound_url(url: &str) -> Result<Url, &'static str> {
    let parsed = Url::parse(url).map_err(|_| "not a valid URL")?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback(&parsed) => Ok(parsed),
        "http" => Err("must be https (plain http only to a loopback host)"),
        _ => Err("must be https"),
    }
}

fn is_loopback(url: &Url) -> bool {
    // The URL parser lower-cases domain names and keeps IPv6 literals in brackets.
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// GETs `url` (already checked by [`outbound_url`]) and returns the body of a 2xx response of at
/// most `max_bytes`. The error is a short reason for logs, without the URL.
pub(crate) async fn get_bounded(
    client: &reqwest::Client,
    url: Url,
    max_bytes: usize,
) -> Result<Vec<u8>, String> {
    let response = client.get(url).send().await.map_err(request_error)?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    read_bounded(response, max_bytes).await
}

/// The body of `response` if it is at most `max_bytes`, whatever its status. The error is a
/// short reason for logs.
pub(crate) async fn read_bounded(
    mut response: reqwest::Response,
    max_bytes: usize,
) -> Result<Vec<u8>, String> {
    let too_large = || format!("response larger than {max_bytes} bytes");
    if response
        .content_length()
        .is_some_and(|length| length > max_bytes as u64)
    {
        return Err(too_large());
    }
    // Content-Length may be absent or wrong (chunked encoding): count as the body arrives.
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(request_error)? {
        if body.len() + chunk.len() > max_bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A short reason for a failed request, without the URL.
pub(crate) fn request_error(error: reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "connection failed".into()
    } else {
        // Without the URL: the caller decides what to log next to the reason.
        error.without_url().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        for ok in [
            "https://idp.example.com/.well-known/jwks.json",
            "https://10.0.0.1/keys",
            "http://localhost:8080/jwks",
            "http://LOCALHOST/jwks",
            "http://127.0.0.1:9000/jwks",
            "http://[::1]:9000/jwks",
        ] {
            assert!(outbound_url(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://idp.example.com/jwks",
            "http://10.0.0.1/jwks",
            "http://169.254.169.254/latest",
            "http://localhost.example.com/jwks",
            "ftp://localhost/jwks",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(outbound_url(refused).is_err(), "{refused}");
        }
    }
}
