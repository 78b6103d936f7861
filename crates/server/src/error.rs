//! The one place errors become HTTP: every domain error and every request rejection is mapped
//! here to a status and a stable wire code, in the flat envelope the official client parses
//! (protocol part 1 §4). 5xx bodies are generic; their cause goes to the log.

use alter_core::Entity;
use alter_core::approvals::ApprovalError;
use alter_core::error::{Error, Limit};
use alter_core::ports::StoreError;
use alter_core::proxy::ForwardError;
use alter_core::release::policy::PolicyCode;
use alter_core::release::{Denial, ProxyReason};
use alter_core::scope::SCOPE_VERSION;
use alter_crypto::CryptoError;
use alter_proto::{ErrorBody, codes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer: status, envelope and, for 503s, a `Retry-After`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Box<ErrorBody>,
    retry_after: Option<u32>,
}

impl ApiError {
    /// An answer with a status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: Box::new(ErrorBody::new(code, message)),
            retry_after: None,
        }
    }

    /// 413: the body exceeds the configured limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::PAYLOAD_TOO_LARGE,
            format!("request body exceeds the limit of {limit} bytes"),
        )
    }

    /// 408: the body did not arrive within the body deadline.
    pub fn body_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            codes::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        )
    }

    /// 400: the raw path escapes `/`, `?` or `#`.
    pub fn ambiguous_path() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_PATH,
            "the path must not contain %2F, %3F or %23",
        )
    }

    /// 503: too many requests in progress.
    pub fn server_busy() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::SERVER_BUSY,
            "the server is busy; retry shortly",
        );
        e.retry_after = Some(1);
        e
    }

    /// 422: the body or a parameter is malformed.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::INVALID_REQUEST,
            message,
        )
    }

    /// 401 on the admin API.
    pub fn invalid_admin_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            codes::INVALID_ADMIN_TOKEN,
            "missing or invalid admin token (Authorization: Bearer …)",
        )
    }

    /// 405: the route exists, not with this method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::METHOD_NOT_ALLOWED,
            "this route does not take that method",
        )
    }

    /// 404 for an unknown route.
    pub fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, "no such route")
    }

    /// 500 with a generic body; `cause` goes to the log only.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL_ERROR,
            "internal error",
        )
    }

    fn with(mut self, f: impl FnOnce(ErrorBody) -> ErrorBody) -> Self {
        self.body = Box::new(f(*self.body));
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The envelope.
    pub fn body(&self) -> &ErrorBody {
        &self.body
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        use StatusCode as S;
        let message = error.to_string();
        match error {
            Error::Invalid(_) => ApiError::invalid(message),
            Error::NotFound(entity) => ApiError::new(S::NOT_FOUND, not_found_code(entity), message),
            Error::Unauthenticated => ApiError::new(S::UNAUTHORIZED, codes::INVALID_KEY, message)
                .with(|b| b.with_hint("check the API key and that the client clock is right")),
            Error::KeyRevoked => ApiError::new(S::UNAUTHORIZED, codes::KEY_REVOKED, message),
            Error::KeyExpired => ApiError::new(S::UNAUTHORIZED, codes::KEY_EXPIRED, message),
            Error::KeyRotationExpired => {
                ApiError::new(S::UNAUTHORIZED, codes::KEY_ROTATED_GRACE_EXPIRED, message)
                    .with(|b| b.with_hint("use the key that replaced this one"))
            }
            Error::IpNotAllowed => ApiError::new(S::FORBIDDEN, codes::IP_NOT_ALLOWED, message),
            Error::InsufficientScope {
                required,
                granted,
                any_of,
            } => {
                let required: Vec<String> = required.iter().map(ToString::to_string).collect();
                ApiError::new(S::FORBIDDEN, codes::INSUFFICIENT_SCOPE, message).with(|b| {
                    let b = b
                        .with_field("required", json!(required))
                        .with_field("granted", json!(granted))
                        .with_field("missing", json!(required))
                        .with_field("scope_version", SCOPE_VERSION);
                    if any_of {
                        b.with_field("required_any_of", true)
                    } else {
                        b
                    }
                })
            }
            Error::ConstraintNotNarrowing(_) => {
                ApiError::new(S::BAD_REQUEST, codes::CONSTRAINT_NOT_NARROWING, message)
            }
            Error::InvalidAttenuation(_) => {
                ApiError::new(S::BAD_REQUEST, codes::INVALID_ATTENUATION, message)
            }
            Error::InvalidScopeForDerivedKey(_) => ApiError::new(
                S::BAD_REQUEST,
                codes::INVALID_SCOPE_FOR_DERIVED_KEY,
                message,
            ),
            Error::DerivedKeyNotRotatable => {
                ApiError::new(S::BAD_REQUEST, codes::DERIVED_KEY_NOT_ROTATABLE, message)
            }
            Error::RotationRefused(_) => {
                ApiError::new(S::FORBIDDEN, codes::KEY_ROTATION_REFUSED, message)
            }
            Error::KeyAlreadyRevoked => {
                ApiError::new(S::CONFLICT, codes::KEY_ALREADY_REVOKED, message)
            }
            Error::MeRequiresAgentKey => {
                ApiError::new(S::FORBIDDEN, codes::ME_REQUIRES_AGENT_KEY, message)
            }
            Error::AgentKeyRequired => {
                ApiError::new(S::FORBIDDEN, codes::AGENT_KEY_REQUIRED, message)
            }
            Error::UseSelfRevokePath => ApiError::new(
                S::FORBIDDEN,
                codes::USE_SELF_REVOKE_PATH,
                "agents revoke their own delegations with the self path (/delegations/me)",
            ),
            Error::AgentCannotMintSubagents => {
                ApiError::new(S::FORBIDDEN, codes::AGENT_CANNOT_MINT_SUBAGENTS, message)
            }
            Error::AgentsCannotMint => {
                ApiError::new(S::FORBIDDEN, codes::AGENTS_CANNOT_MINT, message)
            }
            Error::AgentsCannotCreateGrants => ApiError::new(
                S::FORBIDDEN,
                codes::AGENTS_CANNOT_CREATE_GRANTS,
                "agents cannot create grants here; an agent binds a managed secret to itself with POST /sdk/agents/me/managed-secrets/{id}/grants",
            ),
            Error::AgentInactive => ApiError::new(S::UNAUTHORIZED, codes::AGENT_INACTIVE, message)
                .with(|b| b.with_hint("an operator paused this agent; resume it to continue")),
            Error::AgentRevoked => ApiError::new(S::UNAUTHORIZED, codes::AGENT_REVOKED, message),
            Error::CallerAgentUnresolved => {
                ApiError::new(S::NOT_FOUND, codes::CALLER_AGENT_UNRESOLVED, message)
            }
            Error::CallerAgentMismatch => {
                ApiError::new(S::BAD_REQUEST, codes::CALLER_AGENT_MISMATCH, message)
            }
            Error::AgentNameExists => ApiError::new(S::CONFLICT, codes::AGENT_NAME_EXISTS, message),
            Error::AgentConcurrentUpdate => {
                ApiError::new(S::CONFLICT, codes::AGENT_CONCURRENT_UPDATE, message)
            }
            Error::AgentKeyLimit => {
                ApiError::new(S::CONFLICT, codes::AGENT_KEY_LIMIT_REACHED, message)
            }
            Error::LastActiveKey => ApiError::new(S::CONFLICT, codes::LAST_ACTIVE_KEY, message)
                .with(|b| b.with_hint("mint another key first, or revoke with force=true")),
            Error::IdempotencyBodyMismatch => {
                ApiError::new(S::CONFLICT, codes::IDEMPOTENCY_KEY_BODY_MISMATCH, message)
            }
            Error::IdempotencyAgentRevoked => {
                ApiError::new(S::CONFLICT, codes::IDEMPOTENCY_KEY_AGENT_REVOKED, message)
            }
            Error::IdempotencyAgentInactive => {
                ApiError::new(S::CONFLICT, codes::IDEMPOTENCY_KEY_AGENT_INACTIVE, message)
            }
            Error::LegacyManagedSecretNameRejected => ApiError::new(
                S::UNPROCESSABLE_ENTITY,
                codes::LEGACY_MANAGED_SECRET_NAME_REJECTED,
                message,
            ),
            Error::InvalidUserToken => {
                ApiError::new(S::UNAUTHORIZED, codes::JWT_VALIDATION_ERROR, message)
            }
            Error::NoIdentityProvider => {
                ApiError::new(S::BAD_REQUEST, codes::IDP_NOT_CONFIGURED, message)
            }
            Error::IdentityUnavailable(cause) => {
                tracing::warn!(reason = %cause, "identity provider keys unavailable");
                let mut e =
                    ApiError::new(S::SERVICE_UNAVAILABLE, codes::SERVICE_UNAVAILABLE, message);
                e.retry_after = Some(5);
                e
            }
            Error::UserSuspended => ApiError::new(S::FORBIDDEN, codes::USER_SUSPENDED, message),
            Error::IdpEventUnauthorized => {
                ApiError::new(S::UNAUTHORIZED, codes::IDP_EVENT_UNAUTHORIZED, message)
            }
            Error::IdpIssuerInUse(_) => {
                ApiError::new(S::CONFLICT, codes::IDP_ISSUER_IN_USE, message)
            }
            Error::SecretVersionConflict => {
                ApiError::new(S::CONFLICT, codes::SECRET_VERSION_CONFLICT, message)
            }
            Error::AgentsCannotSignIn => {
                ApiError::new(S::FORBIDDEN, codes::AGENTS_CANNOT_SIGN_IN, message)
            }
            Error::SignInNotConfigured(gap) => {
                ApiError::new(S::CONFLICT, codes::IDP_SIGNIN_NOT_CONFIGURED, message)
                    .with(|b| b.with_details(json!({ "reason": gap.as_str() })))
            }
            Error::AppUserIdRequiresAgent => {
                ApiError::new(S::BAD_REQUEST, codes::APP_USER_ID_REQUIRES_AGENT, message)
            }
            Error::InvalidAudience => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, codes::INVALID_AUDIENCE, message)
            }
            Error::LimitViolation(limit) => ApiError::new(S::FORBIDDEN, limit_code(limit), message),
            Error::InvalidGrantLifetime(_) => ApiError::new(
                S::UNPROCESSABLE_ENTITY,
                codes::INVALID_GRANT_POLICY,
                message,
            ),
            Error::InvalidScopeConstraint(_) => ApiError::new(
                S::UNPROCESSABLE_ENTITY,
                codes::INVALID_SCOPE_CONSTRAINT,
                message,
            ),
            Error::GrantRevoked(grant) => {
                ApiError::new(S::BAD_REQUEST, codes::GRANT_REVOKED, message)
                    .with(|b| b.with_field("grant_id", grant.to_string()))
            }
            Error::SiblingLabelConflict(label) => {
                ApiError::new(S::CONFLICT, codes::SIBLING_LABEL_CONFLICT, message)
                    .with(|b| b.with_field("label", label))
            }
            Error::GrantNotDelegable(reason) => {
                ApiError::new(S::FORBIDDEN, codes::GRANT_NOT_DELEGABLE, message)
                    .with(|b| b.with_field("detail_reason", reason.as_str()))
            }
            Error::DelegationInvalid(_) => {
                ApiError::new(S::FORBIDDEN, codes::DELEGATION_INVALID, message)
            }
            Error::CredentialRevoked {
                grant_id,
                provider_id,
            } => ApiError::new(S::FORBIDDEN, codes::CREDENTIAL_REVOKED, message).with(|b| {
                b.with_field("grant_id", grant_id.to_string())
                    .with_field("provider_id", provider_id)
            }),
            Error::TokenRefreshInProgress(grant) => {
                let mut e = ApiError::new(S::CONFLICT, codes::TOKEN_REFRESH_IN_PROGRESS, message)
                    .with(|b| b.with_field("grant_id", grant.to_string()));
                e.retry_after = Some(1);
                e
            }
            Error::ProviderUnavailable(cause) => {
                tracing::warn!(reason = %cause, "provider unavailable for a refresh");
                let mut e = ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    codes::PROVIDER_UNAVAILABLE,
                    "the provider is unavailable; retry shortly",
                );
                e.retry_after = Some(5);
                e
            }
            Error::AgentRequiresUserToken => {
                ApiError::new(S::BAD_REQUEST, codes::AGENT_REQUIRES_USER_TOKEN, message)
            }
            Error::ScopeNotAllowed {
                provider_id,
                scopes,
            } => ApiError::new(S::BAD_REQUEST, codes::SCOPE_NOT_ALLOWED, message).with(|b| {
                b.with_field("provider_id", provider_id)
                    .with_field("scopes", json!(scopes))
            }),
            Error::AgentCannotDelegateToOtherAgent => ApiError::new(
                S::BAD_REQUEST,
                codes::AGENT_CANNOT_DELEGATE_TO_OTHER_AGENT,
                message,
            ),
            Error::ConnectSessionOver(_) => {
                ApiError::new(S::NOT_FOUND, codes::CONNECT_SESSION_NOT_FOUND, message)
            }
            Error::Conflict(_) => ApiError::new(S::CONFLICT, codes::CONFLICT, message),
            Error::ForbiddenHeader(_) => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, codes::FORBIDDEN_HEADER, message)
            }
            Error::QueryTooLong => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, codes::QUERY_TOO_LONG, message)
            }
            Error::HoldNotDischarged => {
                ApiError::new(S::FORBIDDEN, codes::APPROVAL_REQUIRED, message)
            }
            Error::Forward(ForwardError::BlockedDestination) => ApiError::new(
                S::UNPROCESSABLE_ENTITY,
                codes::BLOCKED_DESTINATION,
                "the destination is not allowed: it is not a public address",
            ),
            Error::Forward(ForwardError::InvalidUrl(why)) => ApiError::invalid(why),
            Error::Forward(ForwardError::Timeout) => ApiError::new(
                S::GATEWAY_TIMEOUT,
                codes::UPSTREAM_TIMEOUT,
                "the provider did not answer in time",
            ),
            Error::Forward(ForwardError::Connect(cause)) => {
                tracing::warn!(reason = %cause, "a proxied call could not reach the provider");
                ApiError::new(
                    S::BAD_GATEWAY,
                    codes::UPSTREAM_UNREACHABLE,
                    "the provider could not be reached",
                )
            }
            Error::ReleaseDenied(denial) => {
                let (status, code) = denial_answer(denial);
                let mut e = ApiError::new(status, code, message);
                match denial {
                    Denial::Policy {
                        rule_id: Some(rule_id),
                        ..
                    } => e = e.with(|b| b.with_field("details", json!({ "rule_id": rule_id }))),
                    Denial::RateLimited {
                        retry_after_seconds,
                        per_minute,
                        rule_id,
                    } => {
                        let seconds = u32::try_from(retry_after_seconds.max(1)).unwrap_or(u32::MAX);
                        e.retry_after = Some(seconds);
                        e = e.with(|b| {
                            b.with_field("retry_after", seconds)
                                .with_field("limit", per_minute)
                                .with_field("window_seconds", 60)
                                .with_field("details", json!({ "rule_id": rule_id }))
                        });
                    }
                    Denial::PolicyUnavailable => e.retry_after = Some(1),
                    _ => {}
                }
                e
            }
            Error::AmbiguousGrant {
                provider_id,
                candidates,
                truncated,
            } => ApiError::new(S::CONFLICT, codes::AMBIGUOUS_GRANT, message).with(|b| {
                let ids: Vec<String> = candidates.iter().map(|(id, _)| id.to_string()).collect();
                let listed: Vec<serde_json::Value> = candidates
                    .iter()
                    .map(|(id, label)| match label {
                        Some(label) => json!({ "grant_id": id.to_string(), "label": label }),
                        None => json!({ "grant_id": id.to_string() }),
                    })
                    .collect();
                let b = b
                    .with_field("provider_id", provider_id)
                    .with_field("grant_ids", json!(ids))
                    .with_field("candidates", json!(listed));
                if truncated {
                    b.with_field("candidates_truncated", true)
                } else {
                    b
                }
            }),
            Error::NoDelegatedGrant {
                provider_id,
                agent_id,
                app_user_id,
            } => ApiError::new(S::NOT_FOUND, codes::NO_DELEGATED_GRANT, message).with(|b| {
                let b = b
                    .with_field("provider_id", provider_id)
                    .with_field("agent_id", agent_id);
                match app_user_id {
                    Some(user) => b.with_field("app_user_id", user),
                    None => b,
                }
            }),
            Error::GrantNotFoundFor {
                provider_id,
                agent_id,
                app_user_id,
            } => ApiError::new(S::NOT_FOUND, codes::GRANT_NOT_FOUND, message).with(|b| {
                [
                    ("provider_id", provider_id),
                    ("agent_id", agent_id),
                    ("app_user_id", app_user_id),
                ]
                .into_iter()
                .fold(b, |b, (name, value)| match value {
                    Some(v) => b.with_field(name, v),
                    None => b,
                })
            }),
            Error::Storage(StoreError::Unavailable(cause)) => {
                tracing::error!(error = %cause, "database unavailable");
                let mut e = ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    codes::SERVICE_UNAVAILABLE,
                    "the database is unavailable; retry shortly",
                );
                e.retry_after = Some(1);
                e
            }
            Error::Storage(cause) => ApiError::internal(&cause),
            // A value sealed under a KEK version this node loads within a second.
            Error::Crypto(CryptoError::UnknownKekVersion(_)) => {
                let mut e = ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    codes::SERVICE_UNAVAILABLE,
                    "this node is loading a new key version; retry shortly",
                );
                e.retry_after = Some(1);
                e
            }
            Error::Crypto(cause) => ApiError::internal(&cause),
            Error::KeyHolder(cause) => ApiError::internal(&cause),
            Error::Approval(refusal) => approval_answer(&refusal, message),
        }
    }
}

/// A refused approval operation. `approval_denied`, `approval_expired` and
/// `approval_execution_failed` are what `/result` (and `await_approval`) turn into typed
/// exceptions, whatever the status (protocol part 1 §4.3).
fn approval_answer(refusal: &ApprovalError, message: String) -> ApiError {
    use StatusCode as S;
    let (status, code) = match refusal {
        ApprovalError::ReasonRequired => (S::BAD_REQUEST, codes::APPROVAL_REASON_REQUIRED),
        ApprovalError::TooManyPending => (S::TOO_MANY_REQUESTS, codes::TOO_MANY_PENDING_APPROVALS),
        ApprovalError::WaitTooLong => (S::UNPROCESSABLE_ENTITY, codes::INVALID_REQUEST),
        ApprovalError::Denied(_) => (S::FORBIDDEN, codes::APPROVAL_DENIED),
        ApprovalError::Expired => (S::GONE, codes::APPROVAL_EXPIRED),
        ApprovalError::ExecutionFailed(_) => (S::CONFLICT, codes::APPROVAL_EXECUTION_FAILED),
        ApprovalError::NotReady(_) => (S::CONFLICT, codes::APPROVAL_NOT_READY),
        ApprovalError::AlreadyDecided(_) => (S::CONFLICT, codes::APPROVAL_ALREADY_DECIDED),
    };
    let mut error = ApiError::new(status, code, message);
    if status == S::TOO_MANY_REQUESTS {
        error.retry_after = Some(60);
    }
    error
}

/// The status and wire code of a refused credential use.
fn denial_answer(denial: Denial) -> (StatusCode, &'static str) {
    use StatusCode as S;
    match denial {
        Denial::Revoked => (S::FORBIDDEN, codes::GRANT_REVOKED),
        Denial::Expired => (S::FORBIDDEN, codes::GRANT_EXPIRED),
        Denial::Deleted => (S::GONE, codes::GRANT_DELETED),
        Denial::DelegationInvalid(_) => (S::FORBIDDEN, codes::DELEGATION_INVALID),
        Denial::BlockedDestination => (S::UNPROCESSABLE_ENTITY, codes::BLOCKED_DESTINATION),
        Denial::AgentNotAllowlisted => (S::FORBIDDEN, codes::AGENT_NOT_ALLOWLISTED),
        Denial::PrincipalNotAllowed => (S::FORBIDDEN, codes::PRINCIPAL_NOT_ALLOWED),
        Denial::RequiresProxy(ProxyReason::ApprovalRequired) => {
            (S::BAD_REQUEST, codes::HITL_GRANT_REQUIRES_PROXY)
        }
        Denial::RequiresProxy(ProxyReason::ContentRule) => {
            (S::BAD_REQUEST, codes::RESTRICTED_GRANT_REQUIRES_PROXY)
        }
        Denial::Policy { code, .. } => (S::FORBIDDEN, policy_code(code)),
        Denial::RateLimited { .. } => (S::TOO_MANY_REQUESTS, codes::RATE_LIMIT_EXCEEDED),
        Denial::PolicyUnavailable => (S::SERVICE_UNAVAILABLE, codes::POLICY_UNAVAILABLE),
    }
}

/// The wire code of a rule's refusal.
fn policy_code(code: PolicyCode) -> &'static str {
    match code {
        PolicyCode::IpNotAllowed => codes::IP_NOT_ALLOWED,
        PolicyCode::OutsideTimeWindow => codes::OUTSIDE_TIME_WINDOW,
        PolicyCode::UrlNotAllowed => codes::URL_NOT_ALLOWED,
        PolicyCode::MethodNotAllowed => codes::METHOD_NOT_ALLOWED,
        PolicyCode::ParameterNotAllowed => codes::PARAMETER_NOT_ALLOWED,
        PolicyCode::PolicyDenied => codes::POLICY_DENIED,
        PolicyCode::EvaluationFailed => codes::POLICY_EVALUATION_FAILED,
        PolicyCode::RequestRuleDenied => codes::REQUEST_RULE_DENIED,
        PolicyCode::StepUpRequired => codes::STEP_UP_REQUIRED,
        PolicyCode::RedactDischargeFailed => codes::REDACT_DISCHARGE_FAILED,
    }
}

/// The wire code of a limit an operator set.
fn limit_code(limit: Limit) -> &'static str {
    match limit {
        Limit::AgentNotAllowlisted => codes::AGENT_NOT_ALLOWLISTED,
        Limit::PrincipalNotAllowed(_) => codes::PRINCIPAL_NOT_ALLOWED,
        Limit::GrantTooLong { .. } => codes::SECRET_LIMIT_EXCEEDED,
    }
}

fn not_found_code(entity: Entity) -> &'static str {
    match entity {
        Entity::App => codes::APP_NOT_FOUND,
        Entity::Key => codes::KEY_NOT_FOUND,
        Entity::Agent => codes::AGENT_NOT_FOUND,
        Entity::Grant => codes::GRANT_NOT_FOUND,
        Entity::Secret => codes::SECRET_NOT_FOUND,
        Entity::Idp => codes::IDP_NOT_FOUND,
        Entity::User => codes::GRANT_NOT_FOUND,
        Entity::Provider => codes::PROVIDER_NOT_FOUND,
        Entity::ConnectSession => codes::CONNECT_SESSION_NOT_FOUND,
        Entity::ProviderSpec => codes::PROVIDER_SPEC_NOT_FOUND,
        Entity::Operation => codes::OPERATION_NOT_FOUND,
        Entity::Rule => codes::RULE_NOT_FOUND,
        Entity::Approval => codes::APPROVAL_NOT_FOUND,
        Entity::Operator => codes::OPERATOR_NOT_FOUND,
        Entity::Webhook | Entity::WebhookDelivery => codes::WEBHOOK_NOT_FOUND,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(*self.body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    //! Every error reaches the client as the status and code that make the official client
    //! raise the intended exception. The table is also written to
    //! `tests/compat/fixtures/error_table.json`, where the compat suite feeds each row to the
    //! unmodified official client's own mappers. Run with `ALTER_BLESS=1` to rewrite it.

    use super::*;
    use alter_core::scope::Scope;
    use serde_json::Value;

    /// Which of the official client's mappers reads the answer.
    #[derive(Clone, Copy)]
    enum Mapper {
        Main,
        Agents,
        /// `/sdk/proxy` and `/sdk/approvals/{id}/result`.
        Proxy,
    }

    /// A grant id that is the same at every run, so the written table is stable.
    fn fixed_grant() -> alter_core::ids::GrantId {
        alter_core::ids::GrantId::parse_lenient("01a24ecb-2899-76ed-a212-b73ab8709ecf").unwrap()
    }

    fn cases() -> Vec<(&'static str, ApiError, Mapper, &'static str)> {
        use Mapper::{Agents, Main, Proxy};
        let scope = || Scope::parse("keys:admin").unwrap();
        vec![
            (
                "invalid input",
                Error::Invalid("name must not be empty".into()).into(),
                Main,
                "BackendError",
            ),
            (
                "unknown grant",
                Error::NotFound(Entity::Grant).into(),
                Main,
                "GrantNotFoundError",
            ),
            (
                "unknown key",
                Error::NotFound(Entity::Key).into(),
                Main,
                "GrantNotFoundError",
            ),
            (
                "unknown key (agents)",
                Error::NotFound(Entity::Key).into(),
                Agents,
                "KeyNotFoundError",
            ),
            (
                "unknown agent",
                Error::NotFound(Entity::Agent).into(),
                Main,
                "AgentNotFoundError",
            ),
            (
                "unknown agent (agents)",
                Error::NotFound(Entity::Agent).into(),
                Agents,
                "AgentNotFoundError",
            ),
            (
                "unknown app",
                Error::NotFound(Entity::App).into(),
                Main,
                "GrantNotFoundError",
            ),
            (
                "unknown policy rule",
                Error::NotFound(Entity::Rule).into(),
                Main,
                "GrantNotFoundError",
            ),
            (
                "unknown operator account",
                Error::NotFound(Entity::Operator).into(),
                Main,
                "GrantNotFoundError",
            ),
            (
                "authentication failure",
                Error::Unauthenticated.into(),
                Main,
                "InvalidKeyError",
            ),
            (
                "authentication failure (agents)",
                Error::Unauthenticated.into(),
                Agents,
                "InvalidKeyError",
            ),
            (
                "revoked key",
                Error::KeyRevoked.into(),
                Main,
                "KeyRevokedError",
            ),
            (
                "revoked key (agents)",
                Error::KeyRevoked.into(),
                Agents,
                "KeyRevokedError",
            ),
            (
                "expired key",
                Error::KeyExpired.into(),
                Main,
                "KeyExpiredError",
            ),
            (
                "rotated key past overlap",
                Error::KeyRotationExpired.into(),
                Main,
                "KeyRotationExpiredError",
            ),
            (
                "peer outside allowlist",
                Error::IpNotAllowed.into(),
                Main,
                "PolicyViolationError",
            ),
            (
                "missing scope",
                Error::InsufficientScope {
                    required: vec![scope()],
                    granted: vec!["keys:read".into()],
                    any_of: false,
                }
                .into(),
                Main,
                "InsufficientScopeError",
            ),
            (
                "missing any-of scope (agents)",
                Error::InsufficientScope {
                    required: vec![scope()],
                    granted: vec![],
                    any_of: true,
                }
                .into(),
                Agents,
                "InsufficientScopeError",
            ),
            (
                "widening constraint",
                Error::ConstraintNotNarrowing(vec!["keys:admin".into()]).into(),
                Main,
                "BackendError",
            ),
            (
                "malformed attenuation",
                Error::InvalidAttenuation("bad rule".into()).into(),
                Main,
                "BackendError",
            ),
            (
                "derived key scopes",
                Error::InvalidScopeForDerivedKey("no".into()).into(),
                Main,
                "BackendError",
            ),
            (
                "rotating a derived key",
                Error::DerivedKeyNotRotatable.into(),
                Main,
                "BackendError",
            ),
            (
                "rotation the caller may not make",
                Error::RotationRefused("no".into()).into(),
                Main,
                "PolicyViolationError",
            ),
            (
                "revoked key changes state",
                Error::KeyAlreadyRevoked.into(),
                Main,
                "BackendError",
            ),
            (
                "revoked key changes state (agents)",
                Error::KeyAlreadyRevoked.into(),
                Agents,
                "KeyAlreadyRevokedError",
            ),
            (
                "refresh token refused",
                Error::CredentialRevoked {
                    grant_id: fixed_grant(),
                    provider_id: "google".into(),
                }
                .into(),
                Main,
                "CredentialRevokedError",
            ),
            (
                "refresh in progress",
                Error::TokenRefreshInProgress(fixed_grant()).into(),
                Main,
                "TokenRefreshInProgressError",
            ),
            (
                "provider down during a refresh",
                Error::ProviderUnavailable("x".into()).into(),
                Main,
                "BackendError",
            ),
            (
                "session agent without a user",
                Error::AgentRequiresUserToken.into(),
                Main,
                "BackendError",
            ),
            (
                "forbidden header on a proxied call",
                Error::ForbiddenHeader("Authorization".into()).into(),
                Main,
                "BackendError",
            ),
            (
                "proxied URL too long",
                Error::QueryTooLong.into(),
                Main,
                "BackendError",
            ),
            (
                "approval does not cover the call",
                Error::HoldNotDischarged.into(),
                Main,
                "PolicyViolationError",
            ),
            (
                "proxied call to a private address",
                Error::Forward(ForwardError::BlockedDestination).into(),
                Main,
                "BlockedDestinationError",
            ),
            (
                "proxied call timed out",
                Error::Forward(ForwardError::Timeout).into(),
                Main,
                "BackendError",
            ),
            (
                "proxied call unreachable",
                Error::Forward(ForwardError::Connect("x".into())).into(),
                Main,
                "BackendError",
            ),
            (
                "database down",
                Error::Storage(StoreError::Unavailable("x".into())).into(),
                Main,
                "BackendError",
            ),
            (
                "database error",
                Error::Storage(StoreError::Other("x".into())).into(),
                Main,
                "BackendError",
            ),
            (
                "body too large",
                ApiError::payload_too_large(1024),
                Main,
                "BackendError",
            ),
            (
                "body too slow",
                ApiError::body_timeout(),
                Main,
                "BackendError",
            ),
            (
                "escaped separator in the path",
                ApiError::ambiguous_path(),
                Main,
                "BackendError",
            ),
            (
                "too many requests in progress",
                ApiError::server_busy(),
                Main,
                "BackendError",
            ),
            (
                "malformed body",
                ApiError::invalid("invalid JSON body"),
                Main,
                "BackendError",
            ),
            (
                "bad admin token",
                ApiError::invalid_admin_token(),
                Main,
                "BackendError",
            ),
            (
                "unknown route",
                ApiError::route_not_found(),
                Main,
                "GrantNotFoundError",
            ),
            (
                "held call without a reason",
                Error::Approval(ApprovalError::ReasonRequired).into(),
                Proxy,
                "BackendError",
            ),
            (
                "too many pending approvals",
                Error::Approval(ApprovalError::TooManyPending).into(),
                Proxy,
                "BackendError",
            ),
            (
                "approval wait above 25 s",
                Error::Approval(ApprovalError::WaitTooLong).into(),
                Main,
                "BackendError",
            ),
            (
                "unknown approval",
                Error::NotFound(Entity::Approval).into(),
                Main,
                "GrantNotFoundError",
            ),
            (
                "approval denied",
                Error::Approval(ApprovalError::Denied(Some("not today".into()))).into(),
                Proxy,
                "ApprovalDeniedError",
            ),
            (
                "approval expired",
                Error::Approval(ApprovalError::Expired).into(),
                Proxy,
                "ApprovalExpiredError",
            ),
            (
                "approved call failed",
                Error::Approval(ApprovalError::ExecutionFailed(Some("grant revoked".into())))
                    .into(),
                Proxy,
                "ApprovalExecutionFailedError",
            ),
            (
                "approval result not ready",
                Error::Approval(ApprovalError::NotReady(
                    alter_core::approvals::ApprovalStatus::Pending,
                ))
                .into(),
                Proxy,
                "BackendError",
            ),
            (
                "approval decided otherwise",
                Error::Approval(ApprovalError::AlreadyDecided(
                    alter_core::approvals::ApprovalStatus::Denied,
                ))
                .into(),
                Main,
                "BackendError",
            ),
        ]
    }

    #[test]
    fn every_error_reaches_the_client_as_the_intended_exception() {
        let mut rows = Vec::new();
        for (case, error, mapper, expected) in cases() {
            let status = error.status().as_u16();
            let body = serde_json::to_vec(error.body()).unwrap();
            let mapped = match mapper {
                Mapper::Main => alter_sdk::error::from_response(status, &body),
                Mapper::Agents => alter_sdk::error::from_agents_response(status, &body),
                Mapper::Proxy => alter_sdk::error::from_proxy_response(status, &body),
            };
            assert_eq!(mapped.exception_name(), expected, "{case}");
            if status >= 500 {
                assert!(
                    error.body().message.split_whitespace().count() <= 8,
                    "{case}: generic"
                );
            }
            rows.push(serde_json::json!({
                "case": case,
                "status": status,
                "body": serde_json::from_slice::<Value>(&body).unwrap(),
                "mapper": match mapper {
                    Mapper::Main => "main",
                    Mapper::Agents => "agents",
                    Mapper::Proxy => "proxy",
                },
                "exception": expected,
            }));
        }
        let table = serde_json::to_string_pretty(&rows).unwrap() + "\n";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/compat/fixtures/error_table.json");
        if std::env::var_os("ALTER_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &table).unwrap();
        }
        let golden = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            golden == table,
            "{} is out of date: rerun with ALTER_BLESS=1 and commit it",
            path.display()
        );
    }

    #[test]
    fn unavailable_databases_ask_to_retry() {
        let response =
            ApiError::from(Error::Storage(StoreError::Unavailable("down".into()))).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }
}
