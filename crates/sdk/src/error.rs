//! Errors, mirroring the exceptions of the official client (`alter_sdk.exceptions`) and the way
//! it maps a status and an `error` code to one of them (protocol part 1 §4.2, part 2 §8.10).

use std::fmt;

use serde_json::{Map, Value};

/// What an error answer carried: status, code, message and every other field of the body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ErrorInfo {
    /// HTTP status (0 for errors raised before any request).
    pub status: u16,
    /// The `error` code, if the body had one.
    pub code: Option<String>,
    /// Human-readable message.
    pub message: String,
    /// The body's other fields (typed fields such as `grant_id`, `hint`, `required`, …).
    pub fields: Map<String, Value>,
}

impl ErrorInfo {
    fn local(message: impl Into<String>) -> Self {
        ErrorInfo {
            message: message.into(),
            ..Default::default()
        }
    }

    /// A string field of the body (`hint`, `grant_id`, `provider_id`, …).
    pub fn str_field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    /// A list-of-strings field of the body (`required`, `granted`, `missing`, …).
    pub fn str_list(&self, name: &str) -> Vec<String> {
        self.fields
            .get(name)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

macro_rules! errors {
    ($($(#[$doc:meta])* $variant:ident => $python:literal,)*) => {
        /// Every error the SDK returns. Each variant mirrors the official client's exception of
        /// the same name (plus the `Error` suffix), which [`Error::exception_name`] returns.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum Error {
            $($(#[$doc])* #[doc = concat!("`", $python, "`")] $variant(ErrorInfo),)*
        }

        impl Error {
            /// The official client's exception name for this error.
            pub fn exception_name(&self) -> &'static str {
                match self {
                    $(Error::$variant(_) => $python,)*
                }
            }

            /// What the error answer carried.
            pub fn info(&self) -> &ErrorInfo {
                match self {
                    $(Error::$variant(info) => info,)*
                }
            }
        }
    };
}

errors! {
    /// Bad input, caught before any request.
    AlterValue => "AlterValueError",
    /// Misconfiguration of the SDK (e.g. the base URL).
    AlterSdk => "AlterSDKError",
    /// Any backend error without a more specific type.
    Backend => "BackendError",
    /// The key lacks a scope the call needs.
    InsufficientScope => "InsufficientScopeError",
    /// The grant expired.
    GrantExpired => "GrantExpiredError",
    /// The grant was revoked.
    GrantRevoked => "GrantRevokedError",
    /// The underlying credential was revoked.
    CredentialRevoked => "CredentialRevokedError",
    /// The grant may only be used through the proxy.
    RestrictedGrantRequiresProxy => "RestrictedGrantRequiresProxyError",
    /// The grant cannot be delegated (`detail_reason`).
    GrantNotDelegable => "GrantNotDelegableError",
    /// The provider needs scopes the grant lacks.
    ScopeReauthRequired => "ScopeReauthRequiredError",
    /// A recent sign-in is required.
    StepUpRequired => "StepUpRequiredError",
    /// A redaction rule could not be applied.
    RedactDischargeFailed => "RedactDischargeFailedError",
    /// A policy refused the call (`policy_error`).
    PolicyViolation => "PolicyViolationError",
    /// The app's Connect configuration is incomplete.
    ConnectConfig => "ConnectConfigError",
    /// A Connect flow failed (the parent of the other `Connect…` errors).
    ConnectFlow => "ConnectFlowError",
    /// The user denied authorization during a Connect flow.
    ConnectDenied => "ConnectDeniedError",
    /// A Connect flow did not complete in time (`details.reason`).
    ConnectTimeout => "ConnectTimeoutError",
    /// A token refresh is running; retry.
    TokenRefreshInProgress => "TokenRefreshInProgressError",
    /// Several grants match; pass `account`, `label` or `grant_id`.
    AmbiguousGrant => "AmbiguousGrantError",
    /// The label is taken by a sibling grant.
    SiblingLabelConflict => "SiblingLabelConflictError",
    /// Several developer credentials; pass `credential_id`.
    CredentialIdRequired => "CredentialIdRequiredError",
    /// An end user's own credential cannot be assigned.
    EndUserCredentialNotAssignable => "EndUserCredentialNotAssignableError",
    /// The agent has no grant for the provider.
    NoDelegatedGrant => "NoDelegatedGrantError",
    /// The grant was deleted.
    GrantDeleted => "GrantDeletedError",
    /// No such agent.
    AgentNotFound => "AgentNotFoundError",
    /// No such grant, or not visible to the caller.
    GrantNotFound => "GrantNotFoundError",
    /// An agent asked for a grant it holds no delegation of.
    AgentDelegationMissing => "AgentDelegationMissingError",
    /// The caller header names another agent than the key's.
    CallerAgentMismatch => "CallerAgentMismatchError",
    /// The end user must sign in again (bad or expired JWT).
    ReAuthRequired => "ReAuthRequiredError",
    /// Invalid API key or signature.
    InvalidKey => "InvalidKeyError",
    /// The key was revoked.
    KeyRevoked => "KeyRevokedError",
    /// The key expired.
    KeyExpired => "KeyExpiredError",
    /// The key was rotated and its overlap is over.
    KeyRotationExpired => "KeyRotationExpiredError",
    /// The key is not active.
    KeyInactive => "KeyInactiveError",
    /// The agent is paused.
    AgentInactive => "AgentInactiveError",
    /// The agent was deleted.
    AgentRevoked => "AgentRevokedError",
    /// Too many requests.
    RateLimit => "RateLimitError",
    /// A quota is used up.
    QuotaExceeded => "QuotaExceededError",
    /// Resolving the caller agent failed transiently.
    CallerAgentResolution => "CallerAgentResolutionError",
    /// The key's app is gone.
    KeyAppNotFound => "KeyAppNotFoundError",
    /// The destination is not allowed for the credential.
    BlockedDestination => "BlockedDestinationError",
    /// An agent of that name exists.
    AgentNameExists => "AgentNameExistsError",
    /// `Agent::me` needs an agent identity.
    MeRequiresAgentKey => "MeRequiresAgentKeyError",
    /// The key is already revoked.
    KeyAlreadyRevoked => "KeyAlreadyRevokedError",
    /// No such key.
    KeyNotFound => "KeyNotFoundError",
    /// Revoking the agent's last active key needs `force`.
    LastActiveKey => "LastActiveKeyError",
    /// The agent has too many active keys.
    AgentKeyLimit => "AgentKeyLimitError",
    /// `expected_version` is stale.
    AgentConcurrentUpdate => "AgentConcurrentUpdateError",
    /// Agents cannot manage agents.
    AgentCannotMintSubagents => "AgentCannotMintSubagentsError",
    /// Same idempotency key, different body.
    IdempotencyKeyBodyMismatch => "IdempotencyKeyBodyMismatchError",
    /// Idempotent replay of a deleted agent.
    IdempotencyKeyAgentRevoked => "IdempotencyKeyAgentRevokedError",
    /// Idempotent replay of a paused agent.
    IdempotencyKeyAgentInactive => "IdempotencyKeyAgentInactiveError",
    /// The provider refused the call (status ≥ 400, not 401).
    ProviderApi => "ProviderAPIError",
    /// The provider refused the credential (401).
    ProviderUnauthorized => "ProviderUnauthorizedError",
    /// The backend could not be reached.
    Network => "NetworkError",
    /// The backend did not answer in time.
    Timeout => "TimeoutError",
    /// A person denied the held call (`decision_reason` in the message).
    ApprovalDenied => "ApprovalDeniedError",
    /// Nobody decided on the held call in time.
    ApprovalExpired => "ApprovalExpiredError",
    /// The held call was approved but could not be made.
    ApprovalExecutionFailed => "ApprovalExecutionFailedError",
    /// `await_approval` gave up before the approval ended.
    ApprovalTimeout => "ApprovalTimeoutError",
    /// An identity assertion failed verification (`code` `memory_assertion_invalid`, the
    /// failing category in the `reason` field; never token, claim or key material).
    MemoryIsolation => "MemoryIsolationError",
}

impl Error {
    /// Local validation failure.
    pub fn value(message: impl Into<String>) -> Self {
        Error::AlterValue(ErrorInfo::local(message))
    }

    /// Local configuration failure.
    pub fn sdk(message: impl Into<String>) -> Self {
        Error::AlterSdk(ErrorInfo::local(message))
    }

    /// The HTTP status (0 for local errors).
    pub fn status(&self) -> u16 {
        self.info().status
    }

    /// The wire error code.
    pub fn code(&self) -> Option<&str> {
        self.info().code.as_deref()
    }

    /// True for the "sign in again" family (`ReAuthRequiredError` and its subclasses).
    pub fn is_reauth_required(&self) -> bool {
        matches!(
            self,
            Error::ReAuthRequired(_)
                | Error::GrantExpired(_)
                | Error::GrantRevoked(_)
                | Error::CredentialRevoked(_)
                | Error::GrantDeleted(_)
        )
    }

    /// True for `PolicyViolationError` and its subclasses.
    pub fn is_policy_violation(&self) -> bool {
        matches!(
            self,
            Error::PolicyViolation(_) | Error::StepUpRequired(_) | Error::RedactDischargeFailed(_)
        )
    }

    /// True for `ConnectFlowError` and its subclasses (`ConnectDeniedError`,
    /// `ConnectConfigError`, `ConnectTimeoutError`).
    pub fn is_connect_flow(&self) -> bool {
        matches!(
            self,
            Error::ConnectFlow(_)
                | Error::ConnectDenied(_)
                | Error::ConnectConfig(_)
                | Error::ConnectTimeout(_)
        )
    }

    /// True for `GrantNotFoundError` and its subclass `AgentDelegationMissingError`.
    pub fn is_grant_not_found(&self) -> bool {
        matches!(
            self,
            Error::GrantNotFound(_) | Error::AgentDelegationMissing(_)
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.info();
        write!(f, "{}: {}", self.exception_name(), info.message)?;
        if let Some(code) = &info.code {
            write!(f, " ({code}, HTTP {})", info.status)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Reads an error answer into the fields the mappers need, and tells whether the body was JSON
/// at all (a non-JSON 429 is a rate limit whatever it says).
fn parse_body(status: u16, body: &[u8]) -> (ErrorInfo, bool) {
    let parsed = serde_json::from_slice::<Value>(body);
    let json = parsed.is_ok();
    let mut fields = match parsed {
        Ok(Value::Object(map)) => map,
        Ok(_) => Map::from_iter([("message".to_owned(), Value::from("Unknown error"))]),
        Err(_) => Map::from_iter([(
            "message".to_owned(),
            Value::from(format!("Backend returned a non-JSON error (HTTP {status})")),
        )]),
    };
    if let Some(Value::Object(detail)) = fields.get("detail").cloned() {
        fields = detail;
    }
    let code = fields
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let message = fields
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("Backend error {status}"));
    let info = ErrorInfo {
        status,
        code,
        message,
        fields,
    };
    (info, json)
}

/// The main mapper (protocol part 1 §4.2): status first, then code, first match wins.
pub fn from_response(status: u16, body: &[u8]) -> Error {
    let (info, json) = parse_body(status, body);
    let code = info.code.clone().unwrap_or_default();
    match (status, code.as_str()) {
        (403, "insufficient_scope") => Error::InsufficientScope(info),
        (403, "grant_expired") => Error::GrantExpired(info),
        (403, "grant_revoked") => Error::GrantRevoked(info),
        (403, "credential_revoked") => Error::CredentialRevoked(info),
        (403, "restricted_grant_requires_proxy") => Error::RestrictedGrantRequiresProxy(info),
        (403, "grant_not_delegable") => Error::GrantNotDelegable(info),
        (403, "scope_mismatch") => Error::ScopeReauthRequired(info),
        (403, "step_up_required") => Error::StepUpRequired(info),
        (403, "redact_discharge_failed") => Error::RedactDischargeFailed(info),
        (403, _) => Error::PolicyViolation(info),
        (
            409,
            "managed_oauth_scope_approval_required"
            | "idp_signin_not_configured"
            | "no_eligible_grants"
            | "binding_hosts_required"
            | "provider_contract_repair_required",
        ) => Error::ConnectConfig(info),
        (409, "token_refresh_in_progress") => Error::TokenRefreshInProgress(info),
        (409, "ambiguous_grant") => Error::AmbiguousGrant(info),
        (409, "sibling_label_conflict") => Error::SiblingLabelConflict(info),
        (409, "credential_id_required") => Error::CredentialIdRequired(info),
        (409, "end_user_credential_not_assignable") => Error::EndUserCredentialNotAssignable(info),
        (409 | 404, "no_delegated_grant") => Error::NoDelegatedGrant(info),
        (409, _) => Error::Backend(info),
        (410, _) => Error::GrantDeleted(info),
        (404, "caller_agent_unresolved" | "agent_not_found") => Error::AgentNotFound(info),
        (404, "secret_not_found") => Error::ConnectConfig(info),
        (404, _) => Error::GrantNotFound(info),
        (400 | 502, "caller_agent_mismatch") => Error::CallerAgentMismatch(info),
        (400 | 502, "grant_revoked") => Error::GrantRevoked(info),
        (400 | 502, "credential_revoked") => Error::CredentialRevoked(info),
        (
            400 | 502,
            "restricted_grant_requires_proxy"
            | "delegated_grant_requires_proxy"
            | "hitl_grant_requires_proxy"
            | "user_limits_require_proxy",
        ) => Error::RestrictedGrantRequiresProxy(info),
        (400 | 502, _) => Error::Backend(info),
        (401, "jwt_validation_error") => Error::ReAuthRequired(info),
        (401, "invalid_key") => Error::InvalidKey(info),
        (401, "key_revoked") => Error::KeyRevoked(info),
        (401, "key_expired") => Error::KeyExpired(info),
        (401, "key_rotated_grace_expired") => Error::KeyRotationExpired(info),
        (401, "key_not_active") => Error::KeyInactive(info),
        (401, "agent_inactive") => Error::AgentInactive(info),
        (401, "agent_revoked") => Error::AgentRevoked(info),
        (401, _) => Error::Backend(info),
        (429, _) if !json => Error::RateLimit(info),
        (429, "quota_exceeded") => Error::QuotaExceeded(info),
        (429, "rate_limit_exceeded") => Error::RateLimit(info),
        (500 | 503, "caller_agent_resolution_error") => Error::CallerAgentResolution(info),
        (500 | 503, "app_not_found_for_key") => Error::KeyAppNotFound(info),
        (_, "secret_template_mismatch") if status >= 400 => Error::ConnectConfig(info),
        (_, "blocked_destination") if status >= 400 => Error::BlockedDestination(info),
        _ => Error::Backend(info),
    }
}

/// The mapper of `/sdk/proxy` and `/sdk/approvals/{id}/result` (protocol part 1 §4.3): the
/// approval codes first, whatever the status; then the main mapper.
pub fn from_proxy_response(status: u16, body: &[u8]) -> Error {
    let (info, _) = parse_body(status, body);
    match info.code.as_deref() {
        Some("approval_denied") => Error::ApprovalDenied(info),
        Some("approval_expired") => Error::ApprovalExpired(info),
        Some("approval_execution_failed") => Error::ApprovalExecutionFailed(info),
        _ => from_response(status, body),
    }
}

/// The mapper of `GET /sdk/approvals/{id}` (protocol part 1 §4.3): every error is a plain
/// `BackendError` saying `GET <path> returned <status> (<error>: <message>)`.
pub fn from_approval_status_response(path: &str, status: u16, body: &[u8]) -> Error {
    let (mut info, _) = parse_body(status, body);
    info.message = format!(
        "GET {path} returned {status} ({}: {})",
        info.code.as_deref().unwrap_or(""),
        info.message
    );
    info.fields = Default::default();
    Error::Backend(info)
}

/// The agents-namespace mapper (protocol part 2 §8.10): by code, whatever the status.
pub fn from_agents_response(status: u16, body: &[u8]) -> Error {
    let (info, json) = parse_body(status, body);
    let code = info.code.clone().unwrap_or_default();
    match (status, code.as_str()) {
        (_, "insufficient_scope") => Error::InsufficientScope(info),
        (429, _) if !json => Error::RateLimit(info),
        (_, "rate_limit_exceeded") => Error::RateLimit(info),
        (409, "agent_concurrent_update") => Error::AgentConcurrentUpdate(info),
        (409, "key_revoked") => Error::KeyAlreadyRevoked(info),
        (_, "invalid_key") => Error::InvalidKey(info),
        (_, "agent_not_found" | "caller_agent_unresolved") => Error::AgentNotFound(info),
        (_, "caller_agent_mismatch") => Error::CallerAgentMismatch(info),
        (_, "caller_agent_resolution_error") => Error::CallerAgentResolution(info),
        (_, "agent_name_exists") => Error::AgentNameExists(info),
        (_, "me_requires_agent_key") => Error::MeRequiresAgentKey(info),
        (_, "key_revoked") => Error::KeyRevoked(info),
        (_, "key_expired") => Error::KeyExpired(info),
        (_, "key_rotated_grace_expired") => Error::KeyRotationExpired(info),
        (_, "key_not_active") => Error::KeyInactive(info),
        (_, "app_not_found_for_key") => Error::KeyAppNotFound(info),
        (_, "key_not_found") => Error::KeyNotFound(info),
        (_, "last_active_key") => Error::LastActiveKey(info),
        (_, "agent_key_limit_reached") => Error::AgentKeyLimit(info),
        (_, "agent_inactive") => Error::AgentInactive(info),
        (_, "agent_revoked") => Error::AgentRevoked(info),
        (_, "idempotency_key_body_mismatch") => Error::IdempotencyKeyBodyMismatch(info),
        (_, "idempotency_key_agent_revoked") => Error::IdempotencyKeyAgentRevoked(info),
        (_, "idempotency_key_agent_inactive") => Error::IdempotencyKeyAgentInactive(info),
        (_, "agent_cannot_mint_subagents") => Error::AgentCannotMintSubagents(info),
        _ => Error::Backend(info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(status: u16, body: &str) -> &'static str {
        from_response(status, body.as_bytes()).exception_name()
    }

    #[test]
    fn table_order_matters() {
        assert_eq!(
            map(403, r#"{"error":"insufficient_scope"}"#),
            "InsufficientScopeError"
        );
        assert_eq!(
            map(400, r#"{"error":"insufficient_scope"}"#),
            "BackendError"
        );
        assert_eq!(map(403, r#"{"error":"anything"}"#), "PolicyViolationError");
        assert_eq!(
            map(422, r#"{"error":"blocked_destination"}"#),
            "BlockedDestinationError"
        );
        assert_eq!(
            map(403, r#"{"error":"blocked_destination"}"#),
            "PolicyViolationError"
        );
        assert_eq!(
            map(404, r#"{"error":"key_not_found"}"#),
            "GrantNotFoundError"
        );
        assert_eq!(
            map(404, r#"{"detail":{"error":"agent_not_found"}}"#),
            "AgentNotFoundError"
        );
        assert_eq!(map(401, r#"{"error":"invalid_key"}"#), "InvalidKeyError");
        assert_eq!(map(401, "not json"), "BackendError");
        assert_eq!(map(429, "not json"), "RateLimitError");
        assert_eq!(
            map(429, r#"{"error":"too_many_pending_approvals"}"#),
            "BackendError"
        );
        assert_eq!(map(410, "{}"), "GrantDeletedError");
        assert_eq!(map(504, r#"{"error":"timeout"}"#), "BackendError");
    }

    #[test]
    fn fields_are_kept() {
        let e = from_response(
            403,
            br#"{"error":"insufficient_scope","message":"no","required":["keys:admin"]}"#,
        );
        assert_eq!(e.info().str_list("required"), vec!["keys:admin"]);
        assert_eq!(e.info().message, "no");
        assert_eq!(e.code(), Some("insufficient_scope"));
        assert_eq!(e.status(), 403);
    }

    #[test]
    fn the_agents_mapper_goes_by_code() {
        let m = |status, body: &str| from_agents_response(status, body.as_bytes()).exception_name();
        assert_eq!(
            m(409, r#"{"error":"key_revoked"}"#),
            "KeyAlreadyRevokedError"
        );
        assert_eq!(m(401, r#"{"error":"key_revoked"}"#), "KeyRevokedError");
        assert_eq!(
            m(422, r#"{"error":"agent_concurrent_update"}"#),
            "BackendError"
        );
        assert_eq!(
            m(409, r#"{"error":"agent_concurrent_update"}"#),
            "AgentConcurrentUpdateError"
        );
    }
}
