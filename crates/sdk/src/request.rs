//! `request()` in retrieve mode, with the official client's semantics (protocol part 1 §5):
//! fetch the credential with `POST /sdk/token`, inject it into the outgoing call (a separate
//! HTTP client that never sees the API key), make the call, report its outcome to the audit
//! endpoint in the background, and map provider refusals to typed errors. The credential
//! never reaches the caller's code.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Instant, SystemTime};

use alter_proto::redact_option;
use alter_proto::token::{
    ApiCallAudit, ScopeMismatchReport, TokenRequest, TokenResponse, TokenTarget,
};
use reqwest::{Method, Url};
use serde_json::Value;

use crate::error::{Error, ErrorInfo};
use crate::grants::canonical_uuid;
use crate::transport::{Mapper, Transport, USER_AGENT, decode, is_loopback_host};

/// Longest provider URL (with its query) the client accepts.
const MAX_URL_LEN: usize = 65_536;
/// Bodies kept in audit reports and errors, at most.
const MAX_BODY_REPORT: usize = 10_000;

/// Headers never copied into an audit report.
const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
];

/// Which grant a call uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Grant(String),
    Provider(String),
}

/// An outgoing provider call.
///
/// ```no_run
/// # async fn run(app: alter_sdk::App) -> Result<(), alter_sdk::Error> {
/// use alter_sdk::ProviderRequest;
/// let response = app
///     .request(
///         ProviderRequest::get("https://api.stripe.com/v1/charges/{id}")
///             .provider("stripe-production")
///             .path_param("id", "ch_123")
///             .query_param("expand[]", "customer")
///             .reason("refund review"),
///     )
///     .await?;
/// println!("{}", response.status());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ProviderRequest {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) target: Option<Target>,
    pub(crate) account: Option<String>,
    pub(crate) label: Option<String>,
    pub(crate) app_user_id: Option<String>,
    pub(crate) user_token: Option<String>,
    pub(crate) json: Option<Value>,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) query_params: Vec<(String, String)>,
    pub(crate) path_params: BTreeMap<String, String>,
    pub(crate) reason: Option<String>,
}

/// Shows the call's shape, never the user's JWT nor header values, query values and bodies
/// (the caller's own credentials may travel in them).
impl fmt::Debug for ProviderRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |pairs: &[(String, String)]| -> Vec<String> {
            pairs.iter().map(|(name, _)| name.clone()).collect()
        };
        f.debug_struct("ProviderRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("target", &self.target)
            .field("account", &self.account)
            .field("label", &self.label)
            .field("app_user_id", &self.app_user_id)
            .field("user_token", &redact_option(self.user_token.as_ref()))
            .field("header_names", &names(&self.headers))
            .field("has_body", &(self.json.is_some() || self.body.is_some()))
            .field("query_param_names", &names(&self.query_params))
            .field("path_params", &self.path_params)
            .field("reason", &self.reason)
            .finish()
    }
}

impl ProviderRequest {
    /// A call with `method` to `url` (which may hold `{name}` placeholders).
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        ProviderRequest {
            method,
            url: url.into(),
            target: None,
            account: None,
            label: None,
            app_user_id: None,
            user_token: None,
            json: None,
            body: None,
            headers: Vec::new(),
            query_params: Vec::new(),
            path_params: BTreeMap::new(),
            reason: None,
        }
    }

    /// A GET.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::GET, url)
    }

    /// A POST.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::POST, url)
    }

    /// Uses this grant.
    pub fn grant_id(mut self, grant_id: impl Into<String>) -> Self {
        self.target = Some(Target::Grant(grant_id.into()));
        self
    }

    /// Uses the caller's grant of this provider (managed-secret slug or OAuth provider id).
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.target = Some(Target::Provider(provider.into()));
        self
    }

    /// With `provider`: the account.
    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    /// With `provider`: the sibling label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// With `provider`: the user whose delegation an agent uses.
    pub fn app_user_id(mut self, app_user_id: impl Into<String>) -> Self {
        self.app_user_id = Some(app_user_id.into());
        self
    }

    /// The end user the grant must belong to (their IdP JWT).
    pub fn user_token(mut self, token: impl Into<String>) -> Self {
        self.user_token = Some(token.into());
        self
    }

    /// A JSON body.
    pub fn json(mut self, json: Value) -> Self {
        self.json = Some(json);
        self
    }

    /// A raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// A header of the call (the credential's header overrides one of the same name).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A query parameter, added to the URL.
    pub fn query_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query_params.push((name.into(), value.into()));
        self
    }

    /// A value for a `{name}` placeholder of the URL (percent-encoded, `/` included).
    pub fn path_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.path_params.insert(name.into(), value.into());
        self
    }

    /// Why (kept in the audit log).
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// Mirrors the official client's local checks, returning the templated URL.
fn prepare(request: &ProviderRequest) -> Result<String, Error> {
    match &request.target {
        None => return Err(Error::sdk("give exactly one of grant_id and provider")),
        Some(Target::Grant(_))
            if request.account.is_some()
                || request.label.is_some()
                || request.app_user_id.is_some() =>
        {
            return Err(Error::sdk(
                "account, label and app_user_id go with provider",
            ));
        }
        Some(Target::Grant(id) | Target::Provider(id)) if id.is_empty() => {
            return Err(Error::sdk("grant_id and provider must not be empty"));
        }
        _ => {}
    }
    for value in [&request.user_token, &request.app_user_id, &request.label] {
        if value.as_deref().is_some_and(str::is_empty) {
            return Err(Error::sdk(
                "user_token, app_user_id and label must not be empty",
            ));
        }
    }
    if request.json.is_some() && request.body.is_some() {
        return Err(Error::sdk("give json or body, not both"));
    }
    let url = template(&request.url, &request.path_params)?;
    let parsed = Url::parse(&url).map_err(|_| Error::sdk(format!("not a URL: {url}")))?;
    match parsed.scheme() {
        "https" => {}
        "http" if parsed.host_str().is_some_and(is_loopback_host) => {}
        _ => {
            return Err(Error::sdk(
                "provider URLs must be https (or http to localhost)",
            ));
        }
    }
    Ok(url)
}

/// Replaces `{name}` placeholders, percent-encoding each value with nothing kept safe.
pub(crate) fn template(url: &str, params: &BTreeMap<String, String>) -> Result<String, Error> {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| Error::sdk("unbalanced { in the URL"))?;
        let name = &after[..end];
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Error::sdk(format!("bad URL placeholder {{{name}}}")));
        }
        let value = params
            .get(name)
            .ok_or_else(|| Error::sdk(format!("no value for the URL placeholder {{{name}}}")))?;
        out.push_str(&alter_proto::signing::encode_path_segment(value));
        rest = &after[end + 1..];
    }
    if rest.contains('}') {
        return Err(Error::sdk("unbalanced } in the URL"));
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks the token answer as strictly as the official client; a violation aborts the call.
fn check(token: &TokenResponse) -> Result<(), Error> {
    let bad = |what: &str| {
        Err(Error::Backend(ErrorInfo {
            status: 200,
            message: format!("Backend returned an invalid token response: {what}"),
            ..Default::default()
        }))
    };
    let clean = |v: &str| !v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
    if token.access_token.is_empty() || !clean(&token.access_token) {
        return bad("access_token");
    }
    if canonical_uuid("grant_id", &token.grant_id).ok().as_deref() != Some(&token.grant_id) {
        return bad("grant_id");
    }
    let header_ok = alter_proto::token::injectable_header;
    if !header_ok(&token.injection_header) {
        return bad("injection_header");
    }
    let aws = token.injection_format.starts_with("AWS4-HMAC-SHA256");
    if !aws && !token.injection_format.contains("{token}") || !clean(&token.injection_format) {
        return bad("injection_format");
    }
    for injection in token.additional_injections.iter().flatten() {
        let source_ok = injection.value_source == "token"
            || injection
                .value_source
                .strip_prefix("additional_credentials.")
                .is_some_and(|f| {
                    f.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                        && f.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                });
        let key_ok = match injection.target.as_str() {
            "header" => header_ok(&injection.key),
            "query_param" => !injection.key.is_empty() && injection.key.len() <= 100,
            _ => false,
        };
        if !source_ok || !key_ok {
            return bad("additional_injections");
        }
    }
    Ok(())
}

/// The credential of a token answer, as [`alter_inject`] applies it.
fn credential_of(token: &TokenResponse) -> alter_inject::Credential<'_> {
    alter_inject::Credential {
        header: &token.injection_header,
        format: &token.injection_format,
        token: &token.access_token,
        values: token.additional_credentials.as_ref().map(|values| {
            values
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        }),
        extras: token
            .additional_injections
            .iter()
            .flatten()
            .map(|i| alter_inject::Extra {
                target: if i.target == "header" {
                    alter_inject::Target::Header
                } else {
                    alter_inject::Target::Query
                },
                key: &i.key,
                field: i.value_source.strip_prefix("additional_credentials."),
            })
            .collect(),
    }
}

/// Makes the call with a released credential. `agent_path` turns "not found" into
/// `AgentDelegationMissingError`, as the official `Agent` does.
pub(crate) async fn request(
    transport: &Transport,
    request: ProviderRequest,
    agent_path: bool,
) -> Result<reqwest::Response, Error> {
    let url = prepare(&request)?;
    let (grant_id, provider_id) = match &request.target {
        Some(Target::Grant(id)) => (Some(id.clone()), None),
        Some(Target::Provider(p)) => (None, Some(p.clone())),
        None => (None, None),
    };
    let body = TokenRequest {
        grant_id,
        provider_id,
        reason: request.reason.clone(),
        request: TokenTarget {
            method: request.method.as_str().to_owned(),
            url: url.clone(),
        },
        user_token: request.user_token.clone(),
        app_user_id: request.app_user_id.clone(),
        account: request.account.clone().filter(|a| !a.is_empty()),
        label: request.label.clone(),
    };
    let token: TokenResponse = match transport
        .send(Method::POST, "/sdk/token", Some(&body), Mapper::Main)
        .await
    {
        Ok(answer) => decode(&answer)?,
        Err(Error::GrantNotFound(info)) if agent_path => {
            return Err(Error::AgentDelegationMissing(info));
        }
        Err(e) => return Err(e),
    };
    check(&token)?;

    let mut target = Url::parse(&url).map_err(|_| Error::sdk("not a URL"))?;
    if !request.query_params.is_empty() {
        target.query_pairs_mut().extend_pairs(&request.query_params);
    }
    if target.as_str().len() > MAX_URL_LEN {
        return Err(Error::sdk("the provider URL is too long"));
    }
    let mut headers: Vec<(String, String)> = request.headers.clone();
    let payload: Vec<u8> = match (&request.json, &request.body) {
        (Some(json), _) => {
            if !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                headers.push(("Content-Type".into(), "application/json".into()));
            }
            serde_json::to_vec(json).map_err(|e| Error::value(e.to_string()))?
        }
        (None, Some(body)) => body.clone(),
        (None, None) => Vec::new(),
    };
    let credential = credential_of(&token);
    alter_inject::apply(
        alter_inject::Call {
            method: request.method.as_str(),
            url: &mut target,
            headers: &mut headers,
            body: &payload,
        },
        &credential,
        SystemTime::now(),
    )
    .map_err(|e| match e {
        alter_inject::InjectError::MissingSecretKey => Error::Backend(ErrorInfo {
            status: 200,
            message: e.to_string(),
            ..Default::default()
        }),
        alter_inject::InjectError::SigV4(e) => Error::sdk(e.to_string()),
    })?;
    // The provider client sends this user agent anyway; it is set here so that the audit
    // report lists the header as sent.
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("user-agent"))
    {
        headers.push(("User-Agent".into(), USER_AGENT.into()));
    }

    let injected = credential.header_names();
    let mut audit = ApiCallAudit {
        grant_id: token.grant_id.clone(),
        provider_id: Some(token.provider_id.clone()),
        token_generation: token.token_generation.clone(),
        method: request.method.as_str().to_owned(),
        url: url.clone(),
        request_headers: Some(report_headers(
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            &injected,
        )),
        request_body: request.json.clone(),
        response_status: 0,
        response_headers: None,
        response_body: None,
        latency_ms: 0,
        reason: request.reason.clone(),
        context: None,
    };
    let mut call = transport
        .provider_http()
        .request(request.method.clone(), target);
    for (name, value) in &headers {
        call = call.header(name, value);
    }
    if !payload.is_empty() {
        call = call.body(payload);
    }
    let started = Instant::now();
    let response = call.send().await;
    audit.latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let response = match response {
        Ok(response) => response,
        Err(e) => {
            audit.response_body = Some(Value::from(if e.is_timeout() {
                format!("<transport error: timeout after {}ms>", audit.latency_ms)
            } else {
                "<transport error: network>".into()
            }));
            report(transport, audit);
            let info = ErrorInfo {
                message: "the provider could not be reached".into(),
                ..Default::default()
            };
            return Err(if e.is_timeout() {
                Error::Timeout(info)
            } else {
                Error::Network(info)
            });
        }
    };
    let status = response.status().as_u16();
    audit.response_status = i64::from(status);
    audit.response_headers = Some(report_headers(
        response
            .headers()
            .iter()
            .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v))),
        &[],
    ));
    if status < 400 {
        report(transport, audit);
        return Ok(response);
    }
    let challenge = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap_or_default();
    audit.response_body = Some(Value::from(truncate(&text)));
    report(transport, audit);
    let info = ErrorInfo {
        status,
        code: None,
        message: format!("the provider answered {status}"),
        fields: serde_json::Map::from_iter([("body".into(), Value::from(truncate(&text)))]),
    };
    let insufficient = challenge
        .as_deref()
        .is_some_and(|c| c.contains("insufficient_scope"));
    Err(match status {
        403 if insufficient => {
            report_scope_mismatch(transport, &token.grant_id, challenge, &url);
            Error::ScopeReauthRequired(info)
        }
        403 if token.scope_mismatch => Error::ScopeReauthRequired(info),
        401 => Error::ProviderUnauthorized(info),
        _ => Error::ProviderApi(info),
    })
}

/// Headers as an audit report keeps them: without the credential's headers and sensitive ones.
fn report_headers<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    injected: &[String],
) -> Value {
    Value::Object(
        headers
            .filter(|(name, _)| {
                let lower = name.to_ascii_lowercase();
                !SENSITIVE_HEADERS.contains(&lower.as_str()) && !injected.contains(&lower)
            })
            .map(|(n, v)| (n.to_owned(), Value::from(v)))
            .collect(),
    )
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_BODY_REPORT {
        text.to_owned()
    } else {
        format!("<response too large: {} bytes>", text.len())
    }
}

/// Sends the audit report in the background; never fails the call.
fn report(transport: &Transport, audit: ApiCallAudit) {
    let transport = transport.clone();
    tokio::spawn(async move {
        if let Err(e) = transport
            .send(
                Method::POST,
                "/sdk/oauth/audit/api-call",
                Some(&audit),
                Mapper::Main,
            )
            .await
        {
            eprintln!("alter-sdk: the audit report was not accepted: {e}");
        }
    });
}

fn report_scope_mismatch(
    transport: &Transport,
    grant_id: &str,
    challenge: Option<String>,
    url: &str,
) {
    let transport = transport.clone();
    let path = format!(
        "/sdk/grants/{}/report-scope-mismatch",
        alter_proto::signing::encode_path_segment(grant_id)
    );
    let missing = challenge.as_deref().and_then(|c| {
        let start = c.find("scope=\"")? + 7;
        let end = c[start..].find('"')? + start;
        Some(
            c[start..end]
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        )
    });
    let body = ScopeMismatchReport {
        provider_status_code: Some(403),
        provider_error_code: Some("insufficient_scope".into()),
        missing_scopes: missing,
        raw_www_authenticate: challenge,
        api_endpoint: Some(url.chars().take(2048).collect()),
        detection_source: Some("www_authenticate_rfc6750".into()),
        sdk_correlation_id: Some(uuid::Uuid::new_v4().simple().to_string()),
    };
    tokio::spawn(async move {
        let _ = transport
            .send(Method::POST, &path, Some(&body), Mapper::Main)
            .await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_tokens_header_values_and_bodies() {
        let request = ProviderRequest::post("https://api.example.com/v1")
            .user_token("eyJ.user-jwt-secret")
            .header("X-Own-Key", "own-header-secret")
            .query_param("api_key", "own-query-secret")
            .json(serde_json::json!({ "card": "body-secret" }));
        let shown = format!("{request:?}");
        for secret in [
            "user-jwt-secret",
            "own-header-secret",
            "own-query-secret",
            "body-secret",
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("X-Own-Key") && shown.contains("api.example.com"));
    }

    #[test]
    fn templates_encode_values_and_refuse_leftovers() {
        let params = BTreeMap::from([("id".to_owned(), "a b/c".to_owned())]);
        assert_eq!(
            template("https://x/{id}/y", &params).unwrap(),
            "https://x/a%20b%2Fc/y"
        );
        assert!(template("https://x/{missing}", &params).is_err());
        assert!(template("https://x/{1bad}", &params).is_err());
        assert!(template("https://x/}", &params).is_err());
        assert!(template("https://x/{id", &params).is_err());
    }

    #[test]
    fn local_checks() {
        assert!(
            prepare(&ProviderRequest::get("https://x.example/")).is_err(),
            "no target"
        );
        assert!(prepare(&ProviderRequest::get("https://x.example/").grant_id("g")).is_ok());
        assert!(prepare(&ProviderRequest::get("http://x.example/").grant_id("g")).is_err());
        assert!(prepare(&ProviderRequest::get("http://127.0.0.1:9/").grant_id("g")).is_ok());
        assert!(prepare(&ProviderRequest::get("https://x/").grant_id("g").label("l")).is_err());
        assert!(
            prepare(
                &ProviderRequest::post("https://x/")
                    .grant_id("g")
                    .json(Value::Null)
                    .body(vec![1])
            )
            .is_err()
        );
    }

    #[test]
    fn reports_drop_credentials() {
        let headers = [
            ("Authorization", "Bearer s"),
            ("X-Api-Key", "k"),
            ("X-Custom", "c"),
            ("Accept", "a"),
        ];
        let kept = report_headers(headers.into_iter(), &["x-custom".into()]);
        assert_eq!(kept, serde_json::json!({"Accept": "a"}));
    }
}
