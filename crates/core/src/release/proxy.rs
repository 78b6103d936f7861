//! *Deliver* in proxy mode: the vault makes the call. The request is checked and its final
//! URL built first; then the shared stages run on exactly what will be sent (mode `proxy`), the
//! release commits conditionally like any release, and only then is the credential injected
//! (crate `alter-inject`, the same code the Rust SDK uses) and the call sent through the
//! [`Forwarder`](crate::proxy::Forwarder) port. A second audit event records what came of the
//! call: status, timing and sizes, never a body, a header value or the credential.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use alter_crypto::ExposeSecret;
use serde_json::json;

use crate::audit::{AuditEvent, RequestSummary, Target, action};
use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::grants::{Grant, principal_json};
use crate::proxy::{
    ForwardError, HeldCall, OutgoingRequest, ProxyOutcome, ProxyRequest, ProxyResult,
};
use crate::rules::MatchedRule;
use crate::vault::Vault;

use super::materialise::{CredentialInjection, ExtraTarget};
use super::{Delivery, Ran, ReleaseRequest, host_of, validate};

/// The methods the vault sends.
const PROXY_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The longest final URL, query (and any query credential) included (protocol part 1 §6.1).
pub const MAX_URL_LEN: usize = 65_536;

/// A proxied call, checked and built: what the rules see is what is sent.
#[derive(Debug)]
struct Prepared {
    release: ReleaseRequest,
    host: String,
    url: url::Url,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Vault {
    /// `POST /sdk/proxy`: makes the call with the grant's credential, which never leaves the
    /// vault. A call rules hold is returned as [`ProxyOutcome::Held`], nothing sent. A
    /// provider's 4xx or 5xx is a normal result.
    pub async fn proxy(&self, caller: &Caller, request: ProxyRequest) -> Result<ProxyOutcome> {
        self.run_proxy(caller, &request, None).await
    }

    /// Executes a call a human approved: the same pipeline evaluated again, now, where a hold
    /// whose rules are all in `discharged` (same id and version) counts as allowed. Any other
    /// hold refuses (`Error::HoldNotDischarged`), and so does any denial: a revocation or pause
    /// since the approval wins.
    pub async fn proxy_approved(
        &self,
        caller: &Caller,
        request: &ProxyRequest,
        discharged: &[MatchedRule],
    ) -> Result<ProxyResult> {
        match self.run_proxy(caller, request, Some(discharged)).await? {
            ProxyOutcome::Completed(result) => Ok(result),
            ProxyOutcome::Held(_) => Err(Error::HoldNotDischarged),
        }
    }

    async fn run_proxy(
        &self,
        caller: &Caller,
        request: &ProxyRequest,
        discharged: Option<&[MatchedRule]>,
    ) -> Result<ProxyOutcome> {
        let prepared = prepare(request)?;
        let ran = self
            .run_pipeline(
                caller,
                &prepared.release,
                &prepared.host,
                Delivery::Proxy {
                    discharged,
                    body: &prepared.body,
                },
            )
            .await?;
        let release = match ran {
            Ran::Released(release) => *release,
            Ran::Held {
                holds,
                facts,
                recheck,
            } => {
                return Ok(ProxyOutcome::Held(Box::new(HeldCall {
                    grant_id: recheck.resolved.grant.id,
                    holds,
                    facts: *facts,
                    recheck,
                })));
            }
        };
        let Prepared {
            release: asked,
            mut url,
            mut headers,
            body,
            ..
        } = prepared;
        let now = SystemTime::UNIX_EPOCH
            + Duration::from_micros(u64::try_from(self.now().micros()).unwrap_or(0));
        let injected = inject(
            &release.injection,
            &asked.method,
            &mut url,
            &mut headers,
            &body,
            now,
        );
        let outcome = match injected {
            Err(error) => Err(error),
            Ok(()) if url.as_str().len() > MAX_URL_LEN => Err(Error::QueryTooLong),
            Ok(()) => {
                let outgoing = OutgoingRequest {
                    method: asked.method.clone(),
                    url: url.into(),
                    headers,
                    body,
                };
                let request_bytes = outgoing.body.len();
                self.forwarder()
                    .send(outgoing, self.settings().proxy_max_response_bytes)
                    .await
                    .map(|response| (response, request_bytes))
                    .map_err(Error::Forward)
            }
        };
        let summary = RequestSummary::new(&asked.method, &asked.url);
        let event = outcome_event(
            self,
            caller,
            &release.grant,
            summary,
            release.release_id,
            &outcome,
        );
        // The release — the decision — is durable already; what the call came to is recorded
        // without holding its answer (a crash in between can lose this record, never the
        // release's), and a provider's answer is never withheld for it: the call was made.
        if let Err(error) = self.store().record_release_later(event).await {
            tracing::error!(%error, "the outcome of a proxied call could not be queued");
        }
        let (response, _) = outcome?;
        let credential_hint =
            credential_hint(response.status, &response.headers, &release.injection);
        Ok(ProxyOutcome::Completed(ProxyResult {
            status: response.status,
            headers: response.headers,
            body: response.body,
            truncated: response.truncated,
            duration_ms: response.duration_ms,
            credential_hint,
            release_id: release.release_id,
        }))
    }
}

/// Checks a proxied call and builds its final URL and body. Nothing is recorded for a call
/// that does not parse, as for `/sdk/token`.
fn prepare(request: &ProxyRequest) -> Result<Prepared> {
    let invalid = |m: &str| Err(Error::Invalid(m.to_owned()));
    // No TRACE (an echoing upstream would hand the injected credential back) nor CONNECT.
    if !PROXY_METHODS.contains(&request.method.as_str()) {
        return invalid("method must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    }
    if host_of(&request.url).is_none() {
        return invalid(
            "request.url must be an http(s) URL with a host, without userinfo, backslashes or whitespace",
        );
    }
    let mut url = url::Url::parse(&request.url).map_err(|_| Error::Invalid("bad URL".into()))?;
    url.set_fragment(None);
    if !request.query_params.is_empty() {
        url.query_pairs_mut().extend_pairs(&request.query_params);
    }
    if url.as_str().len() > MAX_URL_LEN {
        return Err(Error::QueryTooLong);
    }
    let mut headers = Vec::with_capacity(request.headers.len() + 1);
    for (name, value) in &request.headers {
        if alter_proto::proxy::forbidden_proxy_header(name) {
            return Err(Error::ForbiddenHeader(name.chars().take(100).collect()));
        }
        if !is_token(name) {
            return invalid("header names must be RFC 9110 tokens");
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return invalid("header values must not contain CR, LF or NUL");
        }
        headers.push((name.clone(), value.clone()));
    }
    let body = match &request.body {
        Some(json) => {
            if !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                headers.push(("Content-Type".into(), "application/json".into()));
            }
            serde_json::to_vec(json).map_err(|e| Error::Invalid(e.to_string()))?
        }
        None => Vec::new(),
    };
    let release = ReleaseRequest {
        grant_id: request.grant_id.clone(),
        provider_id: request.provider_id.clone(),
        reason: request.reason.clone(),
        method: request.method.clone(),
        url: url.to_string(),
        user_token: request.user_token.clone(),
        app_user_id: request.app_user_id.clone(),
        account: request.account.clone(),
        label: request.label.clone(),
    };
    let host = validate(&release)?;
    Ok(Prepared {
        release,
        host,
        url,
        headers,
        body,
    })
}

/// An RFC 9110 token (`tchar`s, at least one).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Applies the released credential exactly as the SDK would.
fn inject(
    injection: &CredentialInjection,
    method: &str,
    url: &mut url::Url,
    headers: &mut Vec<(String, String)>,
    body: &[u8],
    now: SystemTime,
) -> Result<()> {
    let values: Option<BTreeMap<&str, &str>> = injection.extra_values.as_ref().map(|values| {
        values
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose_secret()))
            .collect()
    });
    let credential = alter_inject::Credential {
        header: &injection.header,
        format: &injection.format,
        token: injection.token.expose_secret(),
        values,
        extras: injection
            .extra_injections
            .iter()
            .map(|extra| alter_inject::Extra {
                target: match extra.target {
                    ExtraTarget::Header => alter_inject::Target::Header,
                    ExtraTarget::Query => alter_inject::Target::Query,
                },
                key: &extra.key,
                field: Some(&extra.field),
            })
            .collect(),
    };
    alter_inject::apply(
        alter_inject::Call {
            method,
            url,
            headers,
            body,
        },
        &credential,
        now,
    )
    // The message names the failure (missing region…), never a value.
    .map_err(|e| Error::Invalid(format!("the credential cannot be applied: {e}")))
}

/// On a provider 401/403, a hint when the provider asks for another authentication scheme
/// than the one the credential was sent with (read from `WWW-Authenticate`); else `None`.
fn credential_hint(
    status: u16,
    headers: &[(String, String)],
    injection: &CredentialInjection,
) -> Option<String> {
    if !matches!(status, 401 | 403) {
        return None;
    }
    let challenge = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))?;
    let asked = challenge.1.split_whitespace().next()?.trim_end_matches(',');
    let sent_in_authorization = injection.header.eq_ignore_ascii_case("authorization");
    let sent_scheme = injection.format.split_whitespace().next().unwrap_or("");
    if sent_in_authorization && sent_scheme.eq_ignore_ascii_case(asked) {
        return None;
    }
    let sent = if sent_in_authorization {
        format!("as {sent_scheme} in Authorization")
    } else {
        format!("in the {} header", injection.header)
    };
    Some(format!(
        "the provider asks for {asked} authentication; the credential was sent {sent}"
    ))
}

/// The event recording what came of a proxied call: status, timing and sizes only.
fn outcome_event(
    vault: &Vault,
    caller: &Caller,
    grant: &Grant,
    summary: RequestSummary,
    release_id: crate::ids::EventId,
    outcome: &Result<(crate::proxy::UpstreamResponse, usize)>,
) -> AuditEvent {
    let recorded = match outcome {
        Ok((response, request_bytes)) => json!({
            "response_status": response.status,
            "latency_ms": response.duration_ms,
            "request_bytes": request_bytes,
            "response_bytes": response.body.len(),
            "truncated": response.truncated,
        }),
        Err(error) => json!({
            "response_status": 0,
            "error": match error {
                Error::Forward(ForwardError::BlockedDestination) => "blocked_destination",
                Error::Forward(ForwardError::Timeout) => "timeout",
                Error::Forward(ForwardError::Connect(_)) => "network",
                Error::Forward(ForwardError::InvalidUrl(_)) => "invalid_url",
                Error::QueryTooLong => "query_too_long",
                _ => "not_sent",
            },
        }),
    };
    AuditEvent {
        principal: Some(principal_json(grant)),
        request: Some(summary),
        context: caller.context.clone(),
        trace_id: caller.trace_id.clone(),
        outcome: Some(recorded),
        ..AuditEvent::allow(
            caller.app_id,
            vault.now(),
            action::CREDENTIAL_USED,
            caller.actor(),
            Target {
                kind: "grant".into(),
                id: grant.id.to_string(),
            },
        )
    }
    .with_details(json!({ "release_id": release_id.to_string(), "mode": "proxy" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(url: &str) -> ProxyRequest {
        ProxyRequest {
            grant_id: Some("g".into()),
            method: "GET".into(),
            url: url.into(),
            ..ProxyRequest::default()
        }
    }

    #[test]
    fn only_plain_methods_are_sent() {
        for method in ["TRACE", "CONNECT", "TRACK", "PROPFIND"] {
            let request = ProxyRequest {
                method: method.into(),
                ..call("https://api.example.com/")
            };
            assert!(prepare(&request).is_err(), "{method}");
        }
        assert!(prepare(&call("https://api.example.com/")).is_ok());
    }

    #[test]
    fn forbidden_headers_are_refused_whatever_their_case() {
        for name in [
            "Authorization",
            " cookie",
            "X-HTTP-Method-Override",
            "Host",
            "Transfer-Encoding",
        ] {
            let request = ProxyRequest {
                headers: vec![(name.into(), "v".into())],
                ..call("https://api.example.com/")
            };
            assert!(
                matches!(prepare(&request), Err(Error::ForbiddenHeader(_))),
                "{name}"
            );
        }
        let bad_value = ProxyRequest {
            headers: vec![("X-Ok".into(), "a\r\nb".into())],
            ..call("https://api.example.com/")
        };
        assert!(matches!(prepare(&bad_value), Err(Error::Invalid(_))));
    }

    #[test]
    fn query_params_are_merged_and_the_length_capped() {
        let request = ProxyRequest {
            query_params: vec![("a b".into(), "c&d".into())],
            body: Some(json!({"x": 1})),
            ..call("https://api.example.com/p?z=1#frag")
        };
        let prepared = prepare(&request).unwrap();
        assert_eq!(
            prepared.url.as_str(),
            "https://api.example.com/p?z=1&a+b=c%26d"
        );
        assert_eq!(prepared.release.url, prepared.url.as_str());
        assert_eq!(prepared.body, br#"{"x":1}"#);
        let long = ProxyRequest {
            query_params: vec![("q".into(), "x".repeat(MAX_URL_LEN))],
            ..call("https://api.example.com/")
        };
        assert!(matches!(prepare(&long), Err(Error::QueryTooLong)));
        assert!(matches!(prepare(&call("ftp://x/")), Err(Error::Invalid(_))));
        assert!(matches!(
            prepare(&call("http://u:p@x/")),
            Err(Error::Invalid(_))
        ));
    }
}
