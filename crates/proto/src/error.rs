//! The error envelope and the stable error codes (protocol part 1 §4).
//!
//! Every non-2xx answer of Alter is a flat JSON object `{"error": code, "message": text, ...}`.
//! Typed fields the official client reads (`required`, `grant_id`, `hint`, …) sit at the top
//! level beside `error`; a nested `details` object carries the rest.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The flat error envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code (see [`codes`]).
    pub error: String,
    /// Human-readable text; never contains secrets.
    pub message: String,
    /// A hint on how to fix the problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Nested details (merged into the client's exception details).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// Typed top-level fields such as `required`, `grant_id` or `provider_id`.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl ErrorBody {
    /// An envelope with just a code and a message.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ErrorBody {
            error: code.to_owned(),
            message: message.into(),
            hint: None,
            details: None,
            fields: Map::new(),
        }
    }

    /// Adds a typed top-level field.
    pub fn with_field(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(name.to_owned(), value.into());
        self
    }

    /// Sets the hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Sets the nested details object.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}

/// Stable error codes. The status each goes with is decided in one place on the server
/// (`server/src/error.rs`); the exception the official client raises for a status and code is
/// in protocol part 1 §4.2.
pub mod codes {
    // Authentication (401).
    /// Every authentication failure: malformed, unknown, bad signature, stale, replayed.
    pub const INVALID_KEY: &str = "invalid_key";
    /// The key was revoked.
    pub const KEY_REVOKED: &str = "key_revoked";
    /// The key's lifetime ended.
    pub const KEY_EXPIRED: &str = "key_expired";
    /// The key was rotated and its overlap period is over.
    pub const KEY_ROTATED_GRACE_EXPIRED: &str = "key_rotated_grace_expired";
    /// The agent behind the key is paused.
    pub const AGENT_INACTIVE: &str = "agent_inactive";
    /// The agent behind the key was deleted.
    pub const AGENT_REVOKED: &str = "agent_revoked";
    /// A supplied end-user JWT failed verification.
    pub const JWT_VALIDATION_ERROR: &str = "jwt_validation_error";
    /// The operator admin token is missing or wrong.
    pub const INVALID_ADMIN_TOKEN: &str = "invalid_admin_token";

    // Authorization (403).
    /// The key lacks the scope a route needs.
    pub const INSUFFICIENT_SCOPE: &str = "insufficient_scope";
    /// The peer address is outside the key's CIDR allowlist, or an `ip_allowlist` rule's.
    pub const IP_NOT_ALLOWED: &str = "ip_not_allowed";
    /// The caller may not rotate that key (a derived caller, or a key wider than the caller's).
    pub const KEY_ROTATION_REFUSED: &str = "key_rotation_refused";
    /// An agent key on the operator delegation-revoke path.
    pub const USE_SELF_REVOKE_PATH: &str = "use_self_revoke_path";
    /// An app key (not acting as an agent) on an agent-only route.
    pub const AGENT_KEY_REQUIRED: &str = "agent_key_required";
    /// `GET /sdk/agents/me` without an agent identity.
    pub const ME_REQUIRES_AGENT_KEY: &str = "me_requires_agent_key";
    /// Agents cannot manage agents.
    pub const AGENT_CANNOT_MINT_SUBAGENTS: &str = "agent_cannot_mint_subagents";
    /// Agents cannot mint sibling grants.
    pub const AGENTS_CANNOT_MINT: &str = "agents_cannot_mint";
    /// An agent (or an agent-typed key) on the public grant-creation route.
    pub const AGENTS_CANNOT_CREATE_GRANTS: &str = "agents_cannot_create_grants";
    /// The grant cannot be delegated (see `detail_reason`).
    pub const GRANT_NOT_DELEGABLE: &str = "grant_not_delegable";
    /// The grant expired.
    pub const GRANT_EXPIRED: &str = "grant_expired";
    /// The grant was revoked (403 on use, 400/403 on a second revoke).
    pub const GRANT_REVOKED: &str = "grant_revoked";
    /// The target host is not allowed for the credential (422).
    pub const BLOCKED_DESTINATION: &str = "blocked_destination";
    /// The grant's managed secret was deleted (410).
    pub const GRANT_DELETED: &str = "grant_deleted";
    /// The agent's allowlist does not name the managed secret.
    pub const AGENT_NOT_ALLOWLISTED: &str = "agent_not_allowlisted";
    /// The managed secret does not admit grants of that principal type.
    pub const PRINCIPAL_NOT_ALLOWED: &str = "principal_not_allowed";
    /// A grant lifetime longer than the managed secret allows.
    pub const SECRET_LIMIT_EXCEEDED: &str = "secret_limit_exceeded";
    /// The caller's request rule forbids the call.
    pub const REQUEST_RULE_DENIED: &str = "request_rule_denied";
    /// The agent's calls need a human approval: only the proxy can carry them (400).
    pub const HITL_GRANT_REQUIRES_PROXY: &str = "hitl_grant_requires_proxy";
    /// A proxied call sets a header callers may not set (422).
    pub const FORBIDDEN_HEADER: &str = "forbidden_header";
    /// A proxied call's final URL is longer than 65 536 characters (422).
    pub const QUERY_TOO_LONG: &str = "query_too_long";
    /// An approved call is held by a rule its approval did not cover (403).
    pub const APPROVAL_REQUIRED: &str = "approval_required";
    /// The provider did not answer a proxied call in time (504).
    pub const UPSTREAM_TIMEOUT: &str = "upstream_timeout";
    /// The provider of a proxied call could not be reached (502).
    pub const UPSTREAM_UNREACHABLE: &str = "upstream_unreachable";
    /// The caller's request rule looks at the content: only the proxy can enforce it (400).
    pub const RESTRICTED_GRANT_REQUIRES_PROXY: &str = "restricted_grant_requires_proxy";
    /// A `time_window` rule refused the call at this time (403).
    pub const OUTSIDE_TIME_WINDOW: &str = "outside_time_window";
    /// A `url` rule refused the destination (403).
    pub const URL_NOT_ALLOWED: &str = "url_not_allowed";
    /// A `params` rule refused a body field or query parameter (403).
    pub const PARAMETER_NOT_ALLOWED: &str = "parameter_not_allowed";
    /// A `group` or `custom` rule refused (403).
    pub const POLICY_DENIED: &str = "policy_denied";
    /// A rule could not be evaluated: refused (403).
    pub const POLICY_EVALUATION_FAILED: &str = "policy_evaluation_failed";
    /// The caller's request rule asks for a fresher sign-in (403).
    pub const STEP_UP_REQUIRED: &str = "step_up_required";
    /// The caller's request rule asks for a redaction the vault cannot make (403).
    pub const REDACT_DISCHARGE_FAILED: &str = "redact_discharge_failed";
    /// A `rate_limit` rule's bucket is empty (429, `Retry-After`).
    pub const RATE_LIMIT_EXCEEDED: &str = "rate_limit_exceeded";
    /// The rules or the rate limiter could not be read (503, `Retry-After`).
    pub const POLICY_UNAVAILABLE: &str = "policy_unavailable";

    // Not found (404).
    /// Unknown grant, or a grant of another app, or one the caller may not see.
    pub const GRANT_NOT_FOUND: &str = "grant_not_found";
    /// Unknown app (admin API).
    pub const APP_NOT_FOUND: &str = "app_not_found";
    /// Unknown key.
    pub const KEY_NOT_FOUND: &str = "key_not_found";
    /// Unknown agent.
    pub const AGENT_NOT_FOUND: &str = "agent_not_found";
    /// `X-Alter-Caller` names no active agent of the app.
    pub const CALLER_AGENT_UNRESOLVED: &str = "caller_agent_unresolved";
    /// Unknown managed secret (admin API).
    pub const SECRET_NOT_FOUND: &str = "secret_not_found";
    /// An agent has no grant for the provider.
    pub const NO_DELEGATED_GRANT: &str = "no_delegated_grant";
    /// Unknown route.
    pub const NOT_FOUND: &str = "not_found";
    /// The route does not take that method (405); a `method` rule refused it (403).
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// Unknown identity provider.
    pub const IDP_NOT_FOUND: &str = "idp_not_found";
    /// Unknown OAuth provider of the app (admin API).
    pub const PROVIDER_NOT_FOUND: &str = "provider_not_found";
    /// 404: no spec for that provider (the client raises `GrantNotFoundError`).
    pub const PROVIDER_SPEC_NOT_FOUND: &str = "provider_spec_not_found";
    /// 404: the spec lists no such operation (the client raises `GrantNotFoundError`).
    pub const OPERATION_NOT_FOUND: &str = "operation_not_found";
    /// 404: the app has no such policy rule.
    pub const RULE_NOT_FOUND: &str = "rule_not_found";
    /// No such webhook endpoint or delivery (or it belongs to another app).
    pub const WEBHOOK_NOT_FOUND: &str = "webhook_not_found";

    // Conflicts (409).
    /// A revoked key cannot change state.
    pub const KEY_ALREADY_REVOKED: &str = "key_revoked";
    /// Revoking a managed agent's last active key needs `force`.
    pub const LAST_ACTIVE_KEY: &str = "last_active_key";
    /// An agent of that name exists.
    pub const AGENT_NAME_EXISTS: &str = "agent_name_exists";
    /// `expected_version` is stale.
    pub const AGENT_CONCURRENT_UPDATE: &str = "agent_concurrent_update";
    /// Too many active keys on one agent.
    pub const AGENT_KEY_LIMIT_REACHED: &str = "agent_key_limit_reached";
    /// Same idempotency key, different body.
    pub const IDEMPOTENCY_KEY_BODY_MISMATCH: &str = "idempotency_key_body_mismatch";
    /// Idempotent replay of an agent that was deleted since.
    pub const IDEMPOTENCY_KEY_AGENT_REVOKED: &str = "idempotency_key_agent_revoked";
    /// Idempotent replay of an agent that is paused.
    pub const IDEMPOTENCY_KEY_AGENT_INACTIVE: &str = "idempotency_key_agent_inactive";
    /// Another active sibling grant already uses the label.
    pub const SIBLING_LABEL_CONFLICT: &str = "sibling_label_conflict";
    /// Several grants match a provider lookup.
    pub const AMBIGUOUS_GRANT: &str = "ambiguous_grant";
    /// Generic state conflict.
    pub const CONFLICT: &str = "conflict";
    /// No operator account of that username (404).
    pub const OPERATOR_NOT_FOUND: &str = "operator_not_found";

    // Approvals of held proxy calls (protocol part 1 §4.3, §6).
    /// No such approval, or not the caller's (404).
    pub const APPROVAL_NOT_FOUND: &str = "approval_not_found";
    /// A held call must carry a reason (400).
    pub const APPROVAL_REASON_REQUIRED: &str = "approval_reason_required";
    /// The app holds too many pending approvals (429).
    pub const TOO_MANY_PENDING_APPROVALS: &str = "too_many_pending_approvals";
    /// A person denied the call (`ApprovalDeniedError`).
    pub const APPROVAL_DENIED: &str = "approval_denied";
    /// Nobody decided in time (`ApprovalExpiredError`).
    pub const APPROVAL_EXPIRED: &str = "approval_expired";
    /// Approved, but the call could not be made (`ApprovalExecutionFailedError`).
    pub const APPROVAL_EXECUTION_FAILED: &str = "approval_execution_failed";
    /// The approved call has not been made yet (409).
    pub const APPROVAL_NOT_READY: &str = "approval_not_ready";
    /// The approval was already decided otherwise (409).
    pub const APPROVAL_ALREADY_DECIDED: &str = "approval_already_decided";

    // Bad requests (400 / 413 / 422).
    /// Body or parameters fail validation.
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// The body is larger than the configured limit.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// The body did not arrive within the body deadline (408).
    pub const REQUEST_TIMEOUT: &str = "request_timeout";
    /// The raw path escapes `/`, `?` or `#` (`%2F`, `%3F`, `%23`), which the signature cannot
    /// tell from the characters themselves.
    pub const INVALID_PATH: &str = "invalid_path";
    /// A scope constraint names a scope the key does not hold.
    pub const CONSTRAINT_NOT_NARROWING: &str = "constraint_not_narrowing";
    /// A malformed `X-Alter-Request-Rule` or scope constraint header.
    pub const INVALID_ATTENUATION: &str = "invalid_attenuation";
    /// `keys:derive` (or an empty list) asked for on a derived key.
    pub const INVALID_SCOPE_FOR_DERIVED_KEY: &str = "invalid_scope_for_derived_key";
    /// Derived keys cannot be rotated.
    pub const DERIVED_KEY_NOT_ROTATABLE: &str = "derived_key_not_rotatable";
    /// A grant policy that is malformed or inconsistent.
    pub const INVALID_GRANT_POLICY: &str = "invalid_grant_policy";
    /// The caller's agent conflicts with the key's agent.
    pub const CALLER_AGENT_MISMATCH: &str = "caller_agent_mismatch";

    /// The app has no identity provider to verify user tokens with.
    pub const IDP_NOT_CONFIGURED: &str = "idp_not_configured";
    /// The end user is suspended.
    pub const USER_SUSPENDED: &str = "user_suspended";
    /// The IdP's issuer cannot change while users, group grants or approvers of the current
    /// issuer exist: a new issuer is a new identity namespace (409).
    pub const IDP_ISSUER_IN_USE: &str = "idp_issuer_in_use";
    /// A signing secret's rotation lost to another, or named a stale version (409).
    pub const SECRET_VERSION_CONFLICT: &str = "secret_version_conflict";
    /// An inbound IdP event refused: unknown app, no secret, or a missing, stale or wrong
    /// signature, all alike (401).
    pub const IDP_EVENT_UNAUTHORIZED: &str = "idp_event_unauthorized";
    /// `scopes.managed_secrets` accepts no new names.
    pub const LEGACY_MANAGED_SECRET_NAME_REJECTED: &str = "legacy_managed_secret_name_rejected";
    /// A scope constraint that cannot apply.
    pub const INVALID_SCOPE_CONSTRAINT: &str = "invalid_scope_constraint";
    /// A link of a delegation chain is broken.
    pub const DELEGATION_INVALID: &str = "delegation_invalid";
    /// The app's IdP cannot sign users in yet (409; `details.reason` says what is missing).
    pub const IDP_SIGNIN_NOT_CONFIGURED: &str = "idp_signin_not_configured";
    /// Agents do not start end-user sign-ins (403).
    pub const AGENTS_CANNOT_SIGN_IN: &str = "agents_cannot_sign_in";
    /// `app_user_id` from a caller that is not an agent (400).
    pub const APP_USER_ID_REQUIRES_AGENT: &str = "app_user_id_requires_agent";
    /// An identity-assertion audience the vault refuses (422).
    pub const INVALID_AUDIENCE: &str = "invalid_audience";

    // Server side (5xx).
    /// Anything unexpected; details go to the log, never to the client.
    pub const INTERNAL_ERROR: &str = "internal_error";
    /// The database cannot be reached.
    pub const SERVICE_UNAVAILABLE: &str = "service_unavailable";
    /// The provider refused the grant's refresh token: reconnect (`CredentialRevokedError`).
    pub const CREDENTIAL_REVOKED: &str = "credential_revoked";
    /// Another caller is refreshing the token (`TokenRefreshInProgressError`).
    pub const TOKEN_REFRESH_IN_PROGRESS: &str = "token_refresh_in_progress";
    /// The provider cannot refresh an expired token now.
    pub const PROVIDER_UNAVAILABLE: &str = "provider_unavailable";
    /// A Connect session names an agent without a user token.
    pub const AGENT_REQUIRES_USER_TOKEN: &str = "agent_requires_user_token";
    /// A Connect session asked for scopes it may not (`required_scopes`).
    pub const SCOPE_NOT_ALLOWED: &str = "scope_not_allowed";
    /// An agent key named another agent.
    pub const AGENT_CANNOT_DELEGATE_TO_OTHER_AGENT: &str = "agent_cannot_delegate_to_other_agent";
    /// The Connect session does not exist or is over.
    pub const CONNECT_SESSION_NOT_FOUND: &str = "connect_session_not_found";
    /// Too many requests in progress; retry after `Retry-After` seconds (503).
    pub const SERVER_BUSY: &str = "server_busy";
}
