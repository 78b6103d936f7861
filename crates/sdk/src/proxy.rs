//! `proxy_request()`: the vault makes the provider call itself (protocol part 1 §6), so the
//! credential never reaches this process. The provider's answer comes back whatever its
//! status, as a [`ProxyResult`]; a provider 4xx or 5xx is not an error here.

use std::collections::BTreeMap;
use std::fmt;

use alter_proto::proxy::{ProxyAnswer, ProxyCall, forbidden_proxy_header};
use base64::Engine as _;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::approvals::PendingApproval;
use crate::error::{Error, ErrorInfo};
use crate::request::{ProviderRequest, Target, template};
use crate::transport::{Mapper, Transport, decode};

/// A provider's answer to a proxied call.
#[derive(Clone, PartialEq)]
pub struct ProxyResult {
    /// The provider's status.
    pub status_code: u16,
    /// The provider's headers (hop-by-hop headers and `Set-Cookie` dropped by the vault).
    pub headers: BTreeMap<String, String>,
    /// The body was longer than the vault's cap and was cut.
    pub body_truncated: bool,
    /// How long the provider took.
    pub duration_ms: Option<u64>,
    /// On a provider 401/403: the credential was sent in a form the API does not take.
    pub credential_hint: Option<String>,
    /// The approval the call went through, if it was held.
    pub approval_id: Option<String>,
    body: Vec<u8>,
}

/// Shows no body: it is the provider's data.
impl fmt::Debug for ProxyResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyResult")
            .field("status_code", &self.status_code)
            .field("body_len", &self.body.len())
            .field("body_truncated", &self.body_truncated)
            .field("duration_ms", &self.duration_ms)
            .field("credential_hint", &self.credential_hint)
            .finish_non_exhaustive()
    }
}

impl ProxyResult {
    /// The body's bytes.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::value(format!("the provider's body is not that JSON: {e}")))
    }

    /// Whether the provider answered 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status_code)
    }
}

/// The official client's local checks for a proxied call, then its wire body.
fn call_of(request: ProviderRequest) -> Result<ProxyCall, Error> {
    let (grant_id, provider_id) = match request.target {
        Some(Target::Grant(id)) if !id.is_empty() => {
            if request.account.is_some() || request.label.is_some() || request.app_user_id.is_some()
            {
                return Err(Error::sdk(
                    "account, label and app_user_id go with provider",
                ));
            }
            (Some(id), None)
        }
        Some(Target::Provider(id)) if !id.is_empty() => (None, Some(id)),
        Some(_) => return Err(Error::sdk("grant_id and provider must not be empty")),
        None => return Err(Error::sdk("give exactly one of grant_id and provider")),
    };
    if request.body.is_some() {
        return Err(Error::sdk("a proxied call carries a JSON body: use json()"));
    }
    if request.url.is_empty() {
        return Err(Error::sdk("the URL must not be empty"));
    }
    for (name, _) in &request.headers {
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(Error::sdk(format!("{name:?} is not a valid header name")));
        }
        if forbidden_proxy_header(name) {
            return Err(Error::sdk(format!(
                "the header {name:?} may not be set on a proxied call"
            )));
        }
    }
    let mut query: BTreeMap<String, Value> = BTreeMap::new();
    for (name, value) in request.query_params {
        match query.get_mut(&name) {
            Some(Value::Array(values)) => values.push(Value::String(value)),
            Some(first) => *first = Value::Array(vec![first.take(), Value::String(value)]),
            None => {
                query.insert(name, Value::String(value));
            }
        }
    }
    Ok(ProxyCall {
        method: request.method.as_str().to_owned(),
        url: template(&request.url, &request.path_params)?,
        grant_id,
        provider_id,
        account: request.account.filter(|a| !a.is_empty()),
        label: request.label,
        user_token: request.user_token,
        app_user_id: request.app_user_id,
        body: request.json,
        headers: (!request.headers.is_empty()).then(|| request.headers.into_iter().collect()),
        query_params: (!query.is_empty()).then_some(query),
        reason: request.reason,
    })
}

/// Sends the call through the vault. `agent_path` turns "not found" into
/// `AgentDelegationMissingError`, as the official `Agent` does.
pub(crate) async fn proxy_request(
    transport: &Transport,
    request: ProviderRequest,
    agent_path: bool,
) -> Result<ProxyOutcome, Error> {
    let call = call_of(request)?;
    let answer = match transport
        .send(Method::POST, "/sdk/proxy", Some(&call), Mapper::Proxy)
        .await
    {
        Ok(answer) => answer,
        Err(Error::GrantNotFound(info)) if agent_path => {
            return Err(Error::AgentDelegationMissing(info));
        }
        Err(e) => return Err(e),
    };
    match answer.status.as_u16() {
        200 => Ok(ProxyOutcome::Completed(result_of(decode(&answer)?)?)),
        202 => {
            let pending: PendingApproval = decode(&answer)?;
            // The client's checks (protocol part 1 §6.2): literally pending, at least one gate.
            if pending.status != "pending" || pending.gates.is_empty() {
                return Err(Error::Backend(ErrorInfo {
                    status: 202,
                    message: "Backend returned an invalid pending approval".into(),
                    ..Default::default()
                }));
            }
            Ok(ProxyOutcome::Pending(pending))
        }
        status => Err(Error::Backend(ErrorInfo {
            status,
            message: format!("unexpected answer to a proxied call (HTTP {status})"),
            ..Default::default()
        })),
    }
}

/// What a proxied call came to: the provider's answer, or an approval to wait for (with
/// `await_approval`).
#[derive(Debug, Clone, PartialEq)]
pub enum ProxyOutcome {
    /// The vault made the call.
    Completed(ProxyResult),
    /// A rule held the call for a person's approval.
    Pending(PendingApproval),
}

impl ProxyOutcome {
    /// The provider's answer; a held call is a `BackendError` naming its approval (for callers
    /// that expect no approval step).
    pub fn completed(self) -> Result<ProxyResult, Error> {
        match self {
            ProxyOutcome::Completed(result) => Ok(result),
            ProxyOutcome::Pending(pending) => Err(Error::Backend(ErrorInfo {
                status: 202,
                message: format!(
                    "the call waits for approval {}: see await_approval",
                    pending.approval_id
                ),
                ..Default::default()
            })),
        }
    }
}

/// The `ApprovalResult` envelope (of `/sdk/proxy` and of `/sdk/approvals/{id}/result`) read.
pub(crate) fn result_of(envelope: ProxyAnswer) -> Result<ProxyResult, Error> {
    let body = base64::engine::general_purpose::STANDARD
        .decode(&envelope.body_b64)
        .map_err(|_| {
            Error::Backend(ErrorInfo {
                status: 200,
                message: "Backend returned an invalid proxy response: body_b64".into(),
                ..Default::default()
            })
        })?;
    Ok(ProxyResult {
        status_code: envelope.status_code,
        headers: envelope.headers,
        body_truncated: envelope.body_truncated,
        duration_ms: envelope.duration_ms,
        credential_hint: envelope.credential_hint.filter(|h| !h.trim().is_empty()),
        approval_id: envelope.approval_id,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_checks_mirror_the_official_client() {
        let ok = ProviderRequest::get("https://api.example.com/{id}")
            .grant_id("g")
            .path_param("id", "a/b")
            .query_param("q", "1")
            .query_param("q", "2")
            .header("X-Trace", "t");
        let call = call_of(ok.clone()).unwrap();
        assert_eq!(call.url, "https://api.example.com/a%2Fb");
        assert_eq!(
            call.query_params.unwrap()["q"],
            serde_json::json!(["1", "2"])
        );
        for bad in [
            ok.clone().header("authorization", "x"),
            ok.clone().header(" Cookie", "x"),
            ok.clone().header("bad name", "x"),
            ok.clone().body(vec![1]),
            ok.clone().label("l"),
            ProviderRequest::get("https://x/"),
        ] {
            assert!(call_of(bad).is_err());
        }
    }
}
