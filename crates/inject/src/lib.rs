//! Credential injection, pure and shared: the one way a released credential is applied to an
//! outgoing call, used by the Rust SDK's `request()` (retrieve mode) and by the server's proxy,
//! so the two cannot drift apart. It follows the official client (protocol part 1 §5.4):
//!
//! 1. the main header, `format` with its first `{token}` replaced, overriding a caller header
//!    of the same name — unless the credential is AWS-signed;
//! 2. additional injections into headers or query parameters, each from the token or a named
//!    value; a missing or empty value skips the injection;
//! 3. an AWS credential (`format` starting with `AWS4-HMAC-SHA256` and named values present)
//!    is signed with SigV4 ([`sigv4`]) instead of steps 1 and 2.
//!
//! No clock, no network: the caller passes the time.

pub mod sigv4;

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

pub use sigv4::{AwsCredentials, SigV4Error};

/// The main-header format of an AWS-signed credential.
pub const AWS_FORMAT: &str = "AWS4-HMAC-SHA256";

/// Where an additional value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A request header (set or overridden).
    Header,
    /// A query parameter (set or overridden).
    Query,
}

/// One additional injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extra<'a> {
    /// Header or query parameter.
    pub target: Target,
    /// Its name.
    pub key: &'a str,
    /// The named value it takes (`additional_credentials.<field>`); `None` for the token.
    pub field: Option<&'a str>,
}

/// A released credential, as the call carries it. Borrowed: the value lives with its owner
/// for one request.
#[derive(Clone, Default)]
pub struct Credential<'a> {
    /// The main header's name.
    pub header: &'a str,
    /// The main header's value, `{token}` standing for the token.
    pub format: &'a str,
    /// The token (an AWS credential's access key id).
    pub token: &'a str,
    /// Named values (`additional_credentials`); `None` when the credential has none.
    pub values: Option<BTreeMap<&'a str, &'a str>>,
    /// Additional injections.
    pub extras: Vec<Extra<'a>>,
}

/// Shows the shape only: never the token nor a value.
impl fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("header", &self.header)
            .field("format", &self.format)
            .field(
                "values",
                &self.values.as_ref().map(|v| v.keys().collect::<Vec<_>>()),
            )
            .field("extras", &self.extras)
            .finish_non_exhaustive()
    }
}

impl Credential<'_> {
    /// Whether the call is signed with SigV4 rather than given headers.
    pub fn is_aws_signed(&self) -> bool {
        self.format.starts_with(AWS_FORMAT) && self.values.is_some()
    }

    /// The lower-case names of the headers the credential sets (which an audit report leaves
    /// out).
    pub fn header_names(&self) -> Vec<String> {
        std::iter::once(self.header.to_ascii_lowercase())
            .chain(
                self.extras
                    .iter()
                    .filter(|e| e.target == Target::Header)
                    .map(|e| e.key.to_ascii_lowercase()),
            )
            .collect()
    }

    fn value(&self, field: Option<&str>) -> Option<&str> {
        match field {
            None => Some(self.token),
            Some(field) => self.values.as_ref().and_then(|v| v.get(field).copied()),
        }
        .filter(|v| !v.is_empty())
    }
}

/// Why a credential could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    /// An AWS credential without its secret key.
    #[error("the AWS credential has no secret key")]
    MissingSecretKey,
    /// The request could not be signed.
    #[error(transparent)]
    SigV4(#[from] SigV4Error),
}

/// The outgoing call a credential is applied to.
#[derive(Debug)]
pub struct Call<'a> {
    /// Upper-case method.
    pub method: &'a str,
    /// The final URL, caller query parameters merged.
    pub url: &'a mut url::Url,
    /// The caller's headers; the credential's are set among them.
    pub headers: &'a mut Vec<(String, String)>,
    /// The exact body bytes sent.
    pub body: &'a [u8],
}

/// Applies `credential` to `call`; `now` is the signing time of an AWS credential.
pub fn apply(
    call: Call<'_>,
    credential: &Credential<'_>,
    now: SystemTime,
) -> Result<(), InjectError> {
    if let (true, Some(values)) = (credential.is_aws_signed(), &credential.values) {
        let secret = values
            .get("secret_key")
            .filter(|s| !s.is_empty())
            .ok_or(InjectError::MissingSecretKey)?;
        let owned = |name: &str| values.get(name).map(|v| (*v).to_owned());
        let aws = AwsCredentials {
            access_key_id: credential.token.to_owned(),
            secret_access_key: (*secret).to_owned(),
            session_token: owned("session_token"),
            region: owned("region"),
            service: owned("service"),
        };
        let signed = sigv4::sign(call.method, call.url, call.headers, call.body, &aws, now)?;
        for (name, value) in signed {
            set_header(call.headers, &name, value);
        }
        return Ok(());
    }
    let main = credential.format.replacen("{token}", credential.token, 1);
    set_header(call.headers, credential.header, main);
    for extra in &credential.extras {
        let Some(value) = credential.value(extra.field) else {
            continue;
        };
        match extra.target {
            Target::Header => set_header(call.headers, extra.key, value.to_owned()),
            Target::Query => set_query(call.url, extra.key, value),
        }
    }
    Ok(())
}

/// Sets `name` to `value`, replacing every header of that name (case-insensitive).
pub fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: String) {
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    headers.push((name.to_owned(), value));
}

/// Sets query parameter `key` to `value`, replacing any of that name.
fn set_query(url: &mut url::Url, key: &str, value: &str) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| *k != key)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(&kept)
        .append_pair(key, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        credential: &Credential<'_>,
        url: &str,
        headers: &[(&str, &str)],
    ) -> (String, Vec<(String, String)>) {
        let mut url = url::Url::parse(url).unwrap();
        let mut headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        apply(
            Call {
                method: "GET",
                url: &mut url,
                headers: &mut headers,
                body: b"",
            },
            credential,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        )
        .unwrap();
        (url.to_string(), headers)
    }

    #[test]
    fn the_main_header_overrides_the_callers() {
        let bearer = Credential {
            header: "Authorization",
            format: "Bearer {token}",
            token: "tok",
            ..Credential::default()
        };
        let (_, headers) = run(
            &bearer,
            "https://x/",
            &[("authorization", "mine"), ("Accept", "a")],
        );
        assert_eq!(
            headers,
            vec![
                ("Accept".to_owned(), "a".to_owned()),
                ("Authorization".to_owned(), "Bearer tok".to_owned())
            ]
        );
    }

    #[test]
    fn extras_go_to_headers_and_query_and_skip_empty_values() {
        let credential = Credential {
            header: "X-Alter-Credential",
            format: "{token}",
            token: "multi",
            values: Some(BTreeMap::from([
                ("id", "1"),
                ("key", "k&=1"),
                ("empty", ""),
            ])),
            extras: vec![
                Extra {
                    target: Target::Header,
                    key: "X-Id",
                    field: Some("id"),
                },
                Extra {
                    target: Target::Query,
                    key: "api_key",
                    field: Some("key"),
                },
                Extra {
                    target: Target::Header,
                    key: "X-Empty",
                    field: Some("empty"),
                },
                Extra {
                    target: Target::Header,
                    key: "X-Missing",
                    field: Some("missing"),
                },
            ],
        };
        let (url, headers) = run(&credential, "https://x/p?api_key=old&a=b", &[]);
        assert_eq!(url, "https://x/p?a=b&api_key=k%26%3D1");
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["X-Alter-Credential", "X-Id"]);
        assert_eq!(
            credential.header_names(),
            ["x-alter-credential", "x-id", "x-empty", "x-missing"]
        );
    }

    #[test]
    fn aws_credentials_are_signed_and_need_their_secret() {
        let aws = Credential {
            header: "Authorization",
            format: AWS_FORMAT,
            token: "AKIDEXAMPLE",
            values: Some(BTreeMap::from([("secret_key", "shh")])),
            extras: Vec::new(),
        };
        let (_, headers) = run(&aws, "https://s3.eu-west-1.amazonaws.com/b/k", &[]);
        let auth = &headers
            .iter()
            .find(|(n, _)| n == "Authorization")
            .unwrap()
            .1;
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-west-1/s3/"));
        assert!(!format!("{aws:?}").contains("shh"));
        let unsigned = Credential {
            values: Some(BTreeMap::new()),
            ..aws
        };
        let mut url = url::Url::parse("https://s3.amazonaws.com/").unwrap();
        let result = apply(
            Call {
                method: "GET",
                url: &mut url,
                headers: &mut Vec::new(),
                body: b"",
            },
            &unsigned,
            SystemTime::now(),
        );
        assert_eq!(result, Err(InjectError::MissingSecretKey));
    }
}
