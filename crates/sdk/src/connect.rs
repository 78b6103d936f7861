//! Connect sessions (protocol part 2 §6.1–6.4): `create_connect_session`,
//! `poll_connect_session`, `connect` and `create_connect_session_for_error`, with the official
//! client's local checks, body order and poll loop.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use alter_proto::connect::{
    ConnectSessionRequest, ConnectedGrantBody, DeclinedProvider, PollError, PollRequest,
    RequestedGrant,
};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::error::{Error, ErrorInfo};
use crate::grants::{GrantPolicy, canonical_uuid, label_ok};
use crate::transport::{Mapper, Transport, decode};

pub use alter_proto::connect::{
    ConnectDelegation, ConnectFailedGrant, ConnectSessionResponse as ConnectSession,
    ConnectedGrantPolicy,
};

const SESSION_PATH: &str = "/sdk/oauth/connect/session";
const POLL_PATH: &str = "/sdk/oauth/connect/session/poll";

/// Poll error codes that mean the app's or provider's configuration is wrong.
const CONFIG_CODES: &[&str] = &[
    "connect_config_error",
    "invalid_redirect_uri",
    "invalid_client",
    "unauthorized_client",
    "provider_configuration_unavailable",
    "shared_dev_credential_unavailable",
    "managed_oauth_scope_approval_required",
];

/// What a Connect session offers and what the grant it makes looks like; every setting is
/// optional.
///
/// ```
/// use alter_sdk::{ConnectSessionOptions, GrantPolicy};
/// let options = ConnectSessionOptions::new()
///     .allowed_providers(["google"])
///     .return_url("https://app.example.com/connected")
///     .grant_policy(GrantPolicy::new().max_ttl_seconds(86_400));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectSessionOptions {
    request: ConnectSessionRequest,
    grant_policy: Option<GrantPolicy>,
}

impl ConnectSessionOptions {
    /// Every configured provider, no other setting.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only these providers (matched case-insensitively after trimming; must not be empty).
    pub fn allowed_providers<I, S>(mut self, providers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.request.allowed_providers = Some(providers.into_iter().map(Into::into).collect());
        self
    }

    /// Where the browser returns when the flow ends.
    pub fn return_url(mut self, url: impl Into<String>) -> Self {
        self.request.return_url = Some(url.into());
        self
    }

    /// The embedding page's origin, for `postMessage`.
    pub fn allowed_origin(mut self, origin: impl Into<String>) -> Self {
        self.request.allowed_origin = Some(origin.into());
        self
    }

    /// The end user's IP address, for the audit log.
    pub fn ip_address(self, ip: impl Into<String>) -> Self {
        self.metadata("ip_address", ip.into())
    }

    /// The end user's user agent, for the audit log.
    pub fn user_agent(self, agent: impl Into<String>) -> Self {
        self.metadata("user_agent", agent.into())
    }

    fn metadata(mut self, key: &str, value: String) -> Self {
        self.request
            .metadata
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), Value::String(value));
        self
    }

    /// Skip the consent screens: the grant is made exactly as asked. Needs exactly one provider.
    pub fn direct(mut self, direct: bool) -> Self {
        self.request.direct = direct.then_some(true);
        self
    }

    /// Make the user go through the provider's full sign-in, to connect another account.
    pub fn switch_account(mut self, switch: bool) -> Self {
        self.request.switch_account = switch.then_some(true);
        self
    }

    /// Whether the user may add narrowing policy rules during the flow (default true).
    pub fn allow_user_policy_rules(mut self, allow: bool) -> Self {
        self.request.allow_user_policy_rules = (!allow).then_some(false);
        self
    }

    /// Lifetime bounds of the grant (`max_ttl_seconds`, `default_ttl_seconds`; no `expires_at`).
    pub fn grant_policy(mut self, policy: GrantPolicy) -> Self {
        self.grant_policy = Some(policy);
        self
    }

    /// Ask only for these scopes of `provider` (within the app's allowlist).
    pub fn required_scopes<I, S>(mut self, provider: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.request
            .required_scopes
            .get_or_insert_with(BTreeMap::new)
            .insert(
                provider.into(),
                scopes.into_iter().map(Into::into).collect(),
            );
        self
    }

    /// Make a sibling grant with this label (1–255 characters).
    pub fn requested_grant(mut self, label: impl Into<String>) -> Self {
        self.request.requested_grant = Some(RequestedGrant {
            label: label.into(),
            restrictions: None,
        });
        self
    }

    /// Reconnect this grant in place (a UUID; needs exactly one provider; not with `agent`,
    /// `requested_grant` or `switch_account`).
    pub fn repair_grant_id(mut self, grant_id: impl Into<String>) -> Self {
        self.request.repair_grant_id = Some(grant_id.into());
        self
    }

    /// Delegate the grant to this managed agent (UUID or name); needs a user token.
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.request.agent = Some(agent.into());
        self
    }

    /// Ask that the agent may delegate onward (the user decides).
    pub fn delegable(mut self, delegable: bool) -> Self {
        self.request.delegable = Some(delegable);
        self
    }

    /// The end user's IdP token: the grant is theirs. Without it the grant is the app's.
    pub fn user_token(mut self, token: impl Into<String>) -> Self {
        self.request.user_token = Some(token.into());
        self
    }

    /// The request body, checked as the official client checks it before sending.
    fn checked(self) -> Result<ConnectSessionRequest, Error> {
        let mut r = self.request;
        let mut distinct = 0;
        if let Some(providers) = &r.allowed_providers {
            if providers.is_empty() {
                return Err(Error::value(
                    "allowed_providers cannot be empty; omit it to offer every configured provider",
                ));
            }
            if providers.iter().any(|p| p.trim().is_empty()) {
                return Err(Error::value(
                    "allowed_providers entries must be non-empty provider ids",
                ));
            }
            distinct = providers
                .iter()
                .map(|p| p.trim().to_lowercase())
                .collect::<BTreeSet<_>>()
                .len();
        }
        if r.direct.is_some() && distinct != 1 {
            return Err(Error::value("direct requires exactly one provider"));
        }
        r.grant_policy = self
            .grant_policy
            .map(GrantPolicy::session_policy)
            .transpose()?;
        if let Some(grant) = &r.requested_grant
            && !label_ok(&grant.label)
        {
            return Err(Error::value(
                "requested_grant label must be 1 to 255 characters",
            ));
        }
        if let Some(repair) = r.repair_grant_id.take() {
            if distinct != 1 {
                return Err(Error::value(
                    "repair_grant_id requires exactly one allowed_providers entry",
                ));
            }
            for (set, what) in [
                (r.requested_grant.is_some(), "requested_grant"),
                (r.agent.is_some(), "agent"),
                (r.switch_account.is_some(), "switch_account"),
            ] {
                if set {
                    return Err(Error::value(format!(
                        "repair_grant_id cannot be combined with {what}"
                    )));
                }
            }
            r.repair_grant_id = Some(canonical_uuid("repair_grant_id", &repair)?);
        }
        if r.agent.as_deref().is_some_and(str::is_empty) {
            return Err(Error::value(
                "agent must be a non-empty string (UUID or managed-agent name)",
            ));
        }
        if r.user_token.as_deref().is_some_and(str::is_empty) {
            return Err(Error::value("user_token must be a non-empty string"));
        }
        Ok(r)
    }
}

/// Settings of `connect`: how long to wait, how often to ask, whether to open a browser, and
/// the session's other options (its providers are `connect`'s).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectOptions {
    /// How long to wait for the user (default 300 s).
    pub timeout: Duration,
    /// Time between polls (default 2 s).
    pub poll_interval: Duration,
    /// Open the Connect page with the system browser (default true); the URL is printed to
    /// stderr when not, or when that fails.
    pub open_browser: bool,
    /// The session's other settings.
    pub session: ConnectSessionOptions,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            timeout: Duration::from_secs(300),
            poll_interval: Duration::from_secs(2),
            open_browser: true,
            session: ConnectSessionOptions::default(),
        }
    }
}

/// `ConnectResult`: a grant a Connect session made or repaired (no tokens: use its `grant_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResult {
    /// The grant.
    pub grant_id: String,
    /// Its provider.
    pub provider_id: String,
    /// The account at the provider.
    pub account_identifier: Option<String>,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// The connection's API origin, when the provider has several.
    pub api_base_url: Option<String>,
    /// `creation` (a new grant) or `reauth` (an existing grant reconnected).
    pub operation: String,
    /// The grant's lifetime.
    pub grant_policy: Option<ConnectedGrantPolicy>,
    /// The delegation made, when the session delegated to an agent.
    pub delegation: Option<ConnectDelegation>,
    /// Providers of the session that kept no grant (the same list on every result).
    pub failed_grants: Vec<ConnectFailedGrant>,
}

/// A poll answer, as far as the client reads it.
#[derive(Debug, Deserialize)]
struct PollAnswer {
    status: String,
    #[serde(default)]
    grants: Option<Vec<ConnectedGrantBody>>,
    #[serde(default)]
    failed_grants: Option<Vec<ConnectFailedGrant>>,
    #[serde(default)]
    error: Option<PollError>,
    #[serde(default)]
    declined_providers: Option<Value>,
}

/// An error raised by the client itself, with its details.
fn flow_error(
    make: fn(ErrorInfo) -> Error,
    status: u16,
    message: impl Into<String>,
    details: Map<String, Value>,
) -> Error {
    make(ErrorInfo {
        status,
        code: details
            .get("error_code")
            .and_then(Value::as_str)
            .map(str::to_owned),
        message: message.into(),
        fields: details,
    })
}

fn malformed(field: &str) -> Error {
    flow_error(
        Error::Backend,
        200,
        "Backend returned a malformed Connect poll response",
        Map::from_iter([("field".to_owned(), Value::from(field))]),
    )
}

pub(crate) async fn create_connect_session(
    transport: &Transport,
    options: ConnectSessionOptions,
) -> Result<ConnectSession, Error> {
    let body = options.checked()?;
    let session: ConnectSession = transport
        .json(Method::POST, SESSION_PATH, Some(&body), Mapper::Main)
        .await?;
    if session.session_token.is_empty()
        || session.connect_url.is_empty()
        || session.expires_at.is_empty()
        || session.expires_in < 0
    {
        return Err(flow_error(
            Error::Backend,
            0,
            "Backend returned a malformed Connect-session response",
            Map::new(),
        ));
    }
    Ok(session)
}

pub(crate) async fn poll_connect_session(
    transport: &Transport,
    session_token: &str,
    timeout: Duration,
    poll_interval: Duration,
) -> Result<Vec<ConnectResult>, Error> {
    if session_token.trim().is_empty() {
        return Err(Error::value("session_token must be a non-empty string"));
    }
    if timeout.is_zero() || poll_interval.is_zero() {
        return Err(Error::value(
            "timeout and poll_interval must be greater than 0",
        ));
    }
    let deadline = Instant::now() + timeout;
    let mut saw_pending = false;
    let mut declined = BTreeSet::new();
    let timeout_details = |reason: &str, declined: &BTreeSet<String>| {
        let mut details = Map::from_iter([
            ("timeout".to_owned(), Value::from(timeout.as_secs_f64())),
            ("reason".to_owned(), Value::from(reason)),
        ]);
        if !declined.is_empty() {
            details.insert(
                "declined_providers".to_owned(),
                Value::from(declined.iter().cloned().collect::<Vec<_>>()),
            );
        }
        details
    };
    let body = PollRequest {
        session_token: session_token.to_owned(),
    };
    loop {
        let answer = match transport
            .send(Method::POST, POLL_PATH, Some(&body), Mapper::Main)
            .await
        {
            Ok(answer) => answer,
            Err(Error::RateLimit(info)) => {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    return Err(flow_error(
                        Error::ConnectTimeout,
                        0,
                        "The Connect flow did not complete in time: polling was rate-limited \
                         for the rest of the budget",
                        timeout_details("rate_limited", &declined),
                    ));
                }
                let retry_after = ["retry_after", "retry_after_seconds"]
                    .iter()
                    .find_map(|k| info.fields.get(*k).and_then(Value::as_f64))
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(Duration::from_secs_f64)
                    .unwrap_or_default();
                tokio::time::sleep(retry_after.max(poll_interval).min(remaining)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let poll: PollAnswer = decode(&answer)?;
        match poll.status.as_str() {
            "completed" => return completed(poll),
            "error" => return Err(poll_error(poll.error.ok_or_else(|| malformed("error"))?)),
            "expired" if saw_pending => {
                return Err(flow_error(
                    Error::ConnectTimeout,
                    0,
                    "The Connect session expired before the authorization came back",
                    timeout_details("session_expired", &declined),
                ));
            }
            "expired" => {
                return Err(flow_error(
                    Error::ConnectFlow,
                    0,
                    "Connect session expired or was not found before polling began",
                    Map::new(),
                ));
            }
            "pending" => {}
            other => {
                return Err(flow_error(
                    Error::ConnectFlow,
                    0,
                    format!("Unexpected poll status from server: {other}"),
                    Map::from_iter([("status".to_owned(), Value::from(other))]),
                ));
            }
        }
        if let Some(Value::Array(entries)) = poll.declined_providers {
            declined.extend(
                entries
                    .into_iter()
                    .filter_map(|e| serde_json::from_value::<DeclinedProvider>(e).ok())
                    .filter(|d| !d.provider_id.is_empty() && !d.error_code.is_empty())
                    .map(|d| d.provider_id),
            );
        }
        saw_pending = true;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(flow_error(
                Error::ConnectTimeout,
                0,
                format!("The Connect flow did not complete within {timeout:?}"),
                timeout_details("poll_deadline_elapsed", &declined),
            ));
        }
        tokio::time::sleep(poll_interval.min(remaining)).await;
    }
}

/// The results of a completed poll, or the flow error of a session that kept no grant.
fn completed(poll: PollAnswer) -> Result<Vec<ConnectResult>, Error> {
    let failed_grants = poll.failed_grants.unwrap_or_default();
    if failed_grants
        .iter()
        .any(|f| f.provider_id.is_empty() || f.reason.is_empty() || f.message.is_empty())
    {
        return Err(malformed("failed_grants"));
    }
    let results = poll
        .grants
        .unwrap_or_default()
        .into_iter()
        .map(|g| {
            let operation = g.operation.unwrap_or_else(|| "creation".to_owned());
            if !matches!(operation.as_str(), "creation" | "reauth") {
                return Err(malformed("operation"));
            }
            Ok(ConnectResult {
                grant_id: g.grant_id,
                provider_id: g.provider_id,
                account_identifier: g.account_identifier,
                scopes: g.scopes,
                api_base_url: g.api_base_url,
                operation,
                grant_policy: g.grant_policy,
                delegation: g.delegation,
                failed_grants: failed_grants.clone(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if results.is_empty() && !failed_grants.is_empty() {
        let providers = failed_grants
            .iter()
            .map(|f| f.provider_id.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let (code, message) = if failed_grants
            .iter()
            .all(|f| matches!(f.reason.as_str(), "activation_failed" | "not_selected"))
        {
            (
                "grant_activation_failed",
                format!(
                    "The connection could not be completed ({providers}). Start the connection again."
                ),
            )
        } else {
            (
                "grant_policy_application_failed",
                format!(
                    "The connection was not completed: the usage limits set during authorization could not be applied ({providers})."
                ),
            )
        };
        return Err(flow_error(
            Error::ConnectFlow,
            0,
            message,
            Map::from_iter([
                ("error_code".to_owned(), Value::from(code)),
                (
                    "failed_grants".to_owned(),
                    serde_json::to_value(&failed_grants).unwrap_or_default(),
                ),
            ]),
        ));
    }
    Ok(results)
}

/// The error of an `error` poll, by its code.
fn poll_error(error: PollError) -> Error {
    if error.error_code.trim().is_empty() {
        return malformed("error.error_code");
    }
    if error.error_message.trim().is_empty() {
        return malformed("error.error_message");
    }
    let mut details = Map::from_iter([(
        "error_code".to_owned(),
        Value::from(error.error_code.clone()),
    )]);
    if let Some(retry) = error.retry_after_seconds {
        details.insert("retry_after_seconds".to_owned(), Value::from(retry));
    }
    let (make, status): (fn(ErrorInfo) -> Error, u16) = match error.error_code.as_str() {
        "connect_denied" => (Error::ConnectDenied, 0),
        code if CONFIG_CODES.contains(&code) => (Error::ConnectConfig, 0),
        "service_unavailable" => (Error::Backend, 503),
        "identity_provider_inactive" | "identity_group_name_ambiguous" => (Error::Backend, 409),
        _ => (Error::ConnectFlow, 0),
    };
    flow_error(make, status, error.error_message, details)
}

pub(crate) async fn connect(
    transport: &Transport,
    providers: &[&str],
    options: ConnectOptions,
) -> Result<Vec<ConnectResult>, Error> {
    let mut session_options = options.session;
    if !providers.is_empty() {
        session_options = session_options.allowed_providers(providers.iter().copied());
    }
    let session = create_connect_session(transport, session_options).await?;
    if !(options.open_browser && open_browser(&session.connect_url).await) {
        eprintln!("Open this URL to authorize: {}", session.connect_url);
    }
    poll_connect_session(
        transport,
        &session.session_token,
        options.timeout,
        options.poll_interval,
    )
    .await
}

/// Opens `url` with the system's opener (`open` on macOS, `xdg-open` elsewhere); whether it
/// succeeded. Only an http(s) URL is opened, as one argument never seen by a shell.
async fn open_browser(url: &str) -> bool {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return false;
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(opener)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    })
    .await
    .unwrap_or(false)
}

pub(crate) async fn create_connect_session_for_error(
    transport: &Transport,
    error: &Error,
    options: ConnectSessionOptions,
) -> Result<ConnectSession, Error> {
    if !matches!(
        error,
        Error::NoDelegatedGrant(_)
            | Error::GrantNotFound(_)
            | Error::AgentDelegationMissing(_)
            | Error::CredentialRevoked(_)
    ) {
        return Err(Error::value(format!(
            "cannot make a recovery Connect session from a {}",
            error.exception_name()
        )));
    }
    let info = error.info();
    let provider = info.str_field("provider_id").ok_or_else(|| {
        Error::value(
            "cannot make a recovery Connect session: the error names no provider_id; \
             call create_connect_session with the providers to reconnect",
        )
    })?;
    let agent = info.str_field("agent_id");
    if matches!(error, Error::NoDelegatedGrant(_)) && agent.is_none() {
        return Err(Error::value(
            "cannot make a delegated recovery Connect session: the NoDelegatedGrantError names \
             no agent_id; call create_connect_session with agent",
        ));
    }
    let mut options = options.allowed_providers([provider]);
    if let Some(agent) = agent {
        options = options.agent(agent);
    }
    let repair = match error {
        Error::CredentialRevoked(_) => info.str_field("grant_id"),
        _ => None,
    };
    let Some(repair) = repair else {
        return create_connect_session(transport, options).await;
    };
    match create_connect_session(transport, options.clone().repair_grant_id(repair)).await {
        // Repairing in place is an optimisation over an ordinary reconnect, not a condition.
        Err(e) if e.is_grant_not_found() => create_connect_session(transport, options).await,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(options: ConnectSessionOptions) -> Result<String, Error> {
        options
            .checked()
            .map(|r| serde_json::to_string(&r).unwrap())
    }

    #[test]
    fn the_body_has_the_official_order_and_presence() {
        assert_eq!(
            body(ConnectSessionOptions::new()).unwrap(),
            r#"{"allowed_providers":null,"return_url":null,"allowed_origin":null,"metadata":null}"#
        );
        let full = ConnectSessionOptions::new()
            .allowed_providers(["Acme"])
            .direct(true)
            .allow_user_policy_rules(false)
            .grant_policy(GrantPolicy::new().max_ttl_seconds(60))
            .user_agent("ua")
            .repair_grant_id("6F9619FF-8B86-D011-B42D-00C04FC964FF")
            .user_token("jwt");
        assert_eq!(
            body(full).unwrap(),
            r#"{"allowed_providers":["Acme"],"return_url":null,"allowed_origin":null,"metadata":{"user_agent":"ua"},"direct":true,"allow_user_policy_rules":false,"grant_policy":{"max_ttl_seconds":60},"repair_grant_id":"6f9619ff-8b86-d011-b42d-00c04fc964ff","user_token":"jwt"}"#
        );
    }

    #[test]
    fn local_checks_refuse_before_sending() {
        let one = || ConnectSessionOptions::new().allowed_providers(["acme"]);
        let uuid = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
        for bad in [
            ConnectSessionOptions::new().allowed_providers(Vec::<String>::new()),
            ConnectSessionOptions::new().allowed_providers(["acme", " "]),
            ConnectSessionOptions::new().direct(true),
            ConnectSessionOptions::new()
                .allowed_providers(["a", "b"])
                .direct(true),
            ConnectSessionOptions::new().repair_grant_id(uuid),
            one().repair_grant_id("not-a-uuid"),
            one().repair_grant_id(uuid).agent("bot"),
            one().repair_grant_id(uuid).requested_grant("x"),
            one().repair_grant_id(uuid).switch_account(true),
            one().requested_grant(""),
            one().agent(""),
            one().user_token(""),
            one().grant_policy(GrantPolicy::new().expires_at("2030-01-01T00:00:00Z")),
            one().grant_policy(GrantPolicy::new().default_ttl_seconds(0)),
        ] {
            let shown = format!("{bad:?}");
            let Err(Error::AlterValue(_)) = bad.checked() else {
                panic!("accepted {shown}");
            };
        }
        // The same provider twice, in other cases, is one provider.
        assert!(
            ConnectSessionOptions::new()
                .allowed_providers(["Acme", " acme"])
                .direct(true)
                .checked()
                .is_ok()
        );
    }

    #[test]
    fn debug_hides_the_user_token() {
        let shown = format!("{:?}", ConnectSessionOptions::new().user_token("eyJsecret"));
        assert!(!shown.contains("eyJsecret"), "{shown}");
    }

    #[test]
    fn poll_errors_map_to_the_official_classes() {
        let name = |code: &str| {
            poll_error(PollError {
                error_code: code.into(),
                error_message: "m".into(),
                retry_after_seconds: None,
            })
            .exception_name()
        };
        assert_eq!(name("connect_denied"), "ConnectDeniedError");
        assert_eq!(name("invalid_client"), "ConnectConfigError");
        assert_eq!(name("token_exchange_failed"), "ConnectFlowError");
        assert_eq!(name("service_unavailable"), "BackendError");
        assert_eq!(name(" "), "BackendError");
    }

    #[test]
    fn a_session_that_kept_no_grant_is_a_flow_error() {
        let poll = |reason: &str| PollAnswer {
            status: "completed".into(),
            grants: Some(Vec::new()),
            failed_grants: Some(vec![ConnectFailedGrant {
                provider_id: "acme".into(),
                reason: reason.into(),
                message: "m".into(),
            }]),
            error: None,
            declined_providers: None,
        };
        let e = completed(poll("not_selected")).unwrap_err();
        assert_eq!(e.exception_name(), "ConnectFlowError");
        assert_eq!(e.code(), Some("grant_activation_failed"));
        let e = completed(poll("daily_limit")).unwrap_err();
        assert_eq!(e.code(), Some("grant_policy_application_failed"));
    }
}
