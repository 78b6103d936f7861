//! The domain's errors. `server/src/error.rs` decides the status and wire code of each; nothing
//! here knows HTTP.

use alter_crypto::CryptoError;

use crate::grants::PrincipalType;
use crate::ports::StoreError;
use crate::scope::Scope;

/// What kind of thing was not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// An app.
    App,
    /// An API key.
    Key,
    /// A managed agent.
    Agent,
    /// A grant or delegation.
    Grant,
    /// A managed secret.
    Secret,
    /// An identity provider.
    Idp,
    /// An app user.
    User,
    /// An OAuth provider of an app.
    Provider,
    /// A Connect session.
    ConnectSession,
    /// A provider's spec.
    ProviderSpec,
    /// An operation of a provider's spec.
    Operation,
    /// A policy rule.
    Rule,
    /// A held proxy call.
    Approval,
    /// An operator account.
    Operator,
    /// An outbound webhook endpoint.
    Webhook,
    /// A webhook delivery.
    WebhookDelivery,
}

impl Entity {
    /// Lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Entity::App => "app",
            Entity::Key => "key",
            Entity::Agent => "agent",
            Entity::Grant => "grant",
            Entity::Secret => "managed secret",
            Entity::Idp => "identity provider",
            Entity::User => "user",
            Entity::Provider => "OAuth provider",
            Entity::ConnectSession => "Connect session",
            Entity::ProviderSpec => "provider spec",
            Entity::Operation => "operation",
            Entity::Rule => "rule",
            Entity::Approval => "approval",
            Entity::Operator => "operator",
            Entity::Webhook => "webhook",
            Entity::WebhookDelivery => "webhook delivery",
        }
    }
}

/// Every way a domain operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that fails validation; nothing was changed.
    #[error("{0}")]
    Invalid(String),
    /// The thing does not exist, or belongs to another app, or the caller may not see it.
    #[error("{} not found", .0.name())]
    NotFound(Entity),
    /// The request could not be authenticated (every cause looks the same).
    #[error("invalid API key or signature")]
    Unauthenticated,
    /// The key was revoked.
    #[error("this API key was revoked")]
    KeyRevoked,
    /// The key's lifetime ended.
    #[error("this API key expired")]
    KeyExpired,
    /// The key was rotated and its overlap period ended.
    #[error("this API key was rotated and its overlap period is over")]
    KeyRotationExpired,
    /// The peer address is outside the key's CIDR allowlist.
    #[error("requests with this key are not allowed from this address")]
    IpNotAllowed,
    /// The key (after attenuation) lacks a scope.
    #[error("this API key lacks the scope {}", display_scopes(.required))]
    InsufficientScope {
        /// What the route needs (all of them, or any one with `any_of`).
        required: Vec<Scope>,
        /// What the request holds.
        granted: Vec<String>,
        /// True when any one of `required` would do.
        any_of: bool,
    },
    /// A scope constraint names a scope the key does not hold.
    #[error("scope constraints may only narrow the key's scopes; not held: {}", .0.join(", "))]
    ConstraintNotNarrowing(Vec<String>),
    /// A malformed attenuation header.
    #[error("{0}")]
    InvalidAttenuation(String),
    /// Derived keys cannot hold this set of scopes.
    #[error("{0}")]
    InvalidScopeForDerivedKey(String),
    /// Derived keys cannot be rotated.
    #[error("derived keys cannot be rotated; derive a new one")]
    DerivedKeyNotRotatable,
    /// The caller may not rotate this key: it is a derived key, or the key would give it more
    /// than it holds (networks, lifetime).
    #[error("{0}")]
    RotationRefused(String),
    /// The key is already revoked (state transition refused).
    #[error("this key is already revoked")]
    KeyAlreadyRevoked,
    /// The key is not agent-bound where an agent is needed (`Agent.me()`).
    #[error("me() needs an agent key, or an app key acting as an agent")]
    MeRequiresAgentKey,
    /// An agent-only route called without an agent identity.
    #[error("this call needs an agent key, or an app key acting as an agent")]
    AgentKeyRequired,
    /// An agent on the operator's delegation-revoke path.
    #[error("agents revoke their own delegations on the route for their own delegations")]
    UseSelfRevokePath,
    /// Agents cannot manage agents.
    #[error("agents cannot create or manage agents")]
    AgentCannotMintSubagents,
    /// Agents cannot mint sibling grants.
    #[error("agents cannot mint grants")]
    AgentsCannotMint,
    /// Agents bind secrets to themselves only, on the agent self-grant route.
    #[error(
        "agents cannot create grants here; an agent binds a managed secret to itself on the route for its own grants"
    )]
    AgentsCannotCreateGrants,
    /// The agent behind the request is paused.
    #[error("this agent is paused")]
    AgentInactive,
    /// The agent behind the request was deleted.
    #[error("this agent was deleted")]
    AgentRevoked,
    /// `X-Alter-Caller` names no active agent of the app.
    #[error("the caller header names no active agent of this app")]
    CallerAgentUnresolved,
    /// `X-Alter-Caller` names another agent than the key's.
    #[error("the caller header names another agent than the key's")]
    CallerAgentMismatch,
    /// An agent of that name exists.
    #[error("an agent with this name exists")]
    AgentNameExists,
    /// `expected_version` is stale.
    #[error("the agent changed since the version you read; read it again")]
    AgentConcurrentUpdate,
    /// Too many live keys on one agent.
    #[error("this agent holds the most keys allowed; revoke one first")]
    AgentKeyLimit,
    /// Revoking the agent's last key needs `force`.
    #[error("this is the agent's last active key")]
    LastActiveKey,
    /// Same idempotency key, different request.
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyBodyMismatch,
    /// Idempotent replay of a deleted agent.
    #[error("the agent created with this Idempotency-Key was deleted")]
    IdempotencyAgentRevoked,
    /// Idempotent replay of a paused agent.
    #[error("the agent created with this Idempotency-Key is paused")]
    IdempotencyAgentInactive,
    /// The legacy `managed_secrets` scope key accepts no new names.
    #[error("scopes.managed_secrets accepts no new names; use managed_secret_slugs")]
    LegacyManagedSecretNameRejected,
    /// A bad end-user JWT.
    #[error("the user token is not valid for this app")]
    InvalidUserToken,
    /// The app has no identity provider for user tokens.
    #[error("this app has no identity provider configured")]
    NoIdentityProvider,
    /// The IdP's keys cannot be fetched.
    #[error("the identity provider cannot be reached")]
    IdentityUnavailable(String),
    /// The end user is suspended.
    #[error("this user is suspended")]
    UserSuspended,
    /// The IdP's issuer cannot change while users, group grants or approvers of the current
    /// issuer exist (a new issuer is a new identity namespace).
    #[error(
        "the identity provider's issuer cannot change while {0} of the current issuer exist; a new issuer is a new set of users: configure it on a new app"
    )]
    IdpIssuerInUse(&'static str),
    /// A signing secret's rotation (or cut-off) raced another, or named a version that is no
    /// longer the current one: nothing changed.
    #[error("the signing secret changed meanwhile (another rotation); read it again and retry")]
    SecretVersionConflict,
    /// An inbound IdP event whose app is unknown, has no event secret, or whose signature is
    /// missing, stale or wrong: all alike.
    #[error("the event's signature is missing, stale or invalid")]
    IdpEventUnauthorized,
    /// Agents do not start end-user sign-ins.
    #[error("agents cannot start end-user sign-ins; use an app key")]
    AgentsCannotSignIn,
    /// The app's IdP cannot sign users in yet.
    #[error("sign-in with the identity provider is not configured ({})", .0.as_str())]
    SignInNotConfigured(crate::signin::SignInGap),
    /// `app_user_id` names a user on an agent's behalf only.
    #[error(
        "app_user_id is accepted from agent callers only; an app names its user with user_token"
    )]
    AppUserIdRequiresAgent,
    /// An assertion audience the vault refuses (its own issuer).
    #[error("the audience must not be this vault itself")]
    InvalidAudience,
    /// A limit the operator set refused the request.
    #[error("{}", .0.message())]
    LimitViolation(Limit),
    /// A malformed or inconsistent grant lifetime.
    #[error("{0}")]
    InvalidGrantLifetime(String),
    /// A scope constraint that cannot apply.
    #[error("{0}")]
    InvalidScopeConstraint(String),
    /// The grant is already revoked.
    #[error("this grant is already revoked")]
    GrantRevoked(crate::ids::GrantId),
    /// Another active sibling uses the label.
    #[error("the label {0:?} is in use by a sibling grant")]
    SiblingLabelConflict(String),
    /// The grant cannot be delegated (`detail_reason`).
    #[error("this grant cannot be delegated ({})", .0.as_str())]
    GrantNotDelegable(crate::delegations::NotDelegable),
    /// A link of a delegation chain is broken.
    #[error("{0}")]
    DelegationInvalid(&'static str),
    /// A credential release was refused by a rule.
    #[error("{}", denial_message(.0))]
    ReleaseDenied(crate::release::Denial),
    /// Several grants match a provider lookup.
    #[error("several grants match; name one with grant_id, label or account")]
    AmbiguousGrant {
        /// The provider asked for.
        provider_id: String,
        /// Matching grants the caller may see: id and label.
        candidates: Vec<(crate::ids::GrantId, Option<String>)>,
        /// More matched than listed.
        truncated: bool,
    },
    /// An agent holds no grant for the provider.
    #[error("this agent holds no grant for {provider_id}")]
    NoDelegatedGrant {
        /// The provider.
        provider_id: String,
        /// The agent.
        agent_id: String,
        /// The user asked for.
        app_user_id: Option<String>,
    },
    /// No grant matches a release request (with what was asked, so clients can recover).
    #[error("no grant matches")]
    GrantNotFoundFor {
        /// The provider asked for.
        provider_id: Option<String>,
        /// The agent acting.
        agent_id: Option<String>,
        /// The user asked for.
        app_user_id: Option<String>,
    },
    /// The provider refused the connection's refresh token, or the connection was revoked:
    /// the user must connect again (a Connect session repairs the grant).
    #[error("the credential behind this grant was revoked at the provider; reconnect to repair it")]
    CredentialRevoked {
        /// The grant.
        grant_id: crate::ids::GrantId,
        /// Its provider.
        provider_id: String,
    },
    /// Another caller is refreshing the grant's access token; retry shortly.
    #[error("the access token is being refreshed; retry shortly")]
    TokenRefreshInProgress(crate::ids::GrantId),
    /// The provider cannot be reached and the access token has expired.
    #[error("the provider is unavailable: {0}")]
    ProviderUnavailable(String),
    /// A Connect session names an agent but no user consents for it.
    #[error(
        "a session that delegates to an agent needs the user's token: the user consents to the delegation"
    )]
    AgentRequiresUserToken,
    /// Scopes a Connect session may not ask for.
    #[error(
        "required_scopes asks for scopes the provider's configuration (or the agent's allowlist) does not allow"
    )]
    ScopeNotAllowed {
        /// The provider.
        provider_id: String,
        /// The scopes refused.
        scopes: Vec<String>,
    },
    /// An agent key named another agent.
    #[error("an agent key can only name itself")]
    AgentCannotDelegateToOtherAgent,
    /// The Connect session is no longer pending (completed, failed or expired).
    #[error("this Connect session is over")]
    ConnectSessionOver(crate::connect::SessionStatus),
    /// A proxied call names a header the caller may not set (credentials, host, method
    /// overrides, hop-by-hop headers); the name is the caller's own.
    #[error("the header {0:?} may not be set on a proxied call")]
    ForbiddenHeader(String),
    /// A proxied call's final URL is longer than 65 536 characters.
    #[error("the URL with its query parameters is longer than 65536 characters")]
    QueryTooLong,
    /// An approved call is now held by a rule its approval did not cover.
    #[error("the call is held by a rule its approval does not cover; ask for a new approval")]
    HoldNotDischarged,
    /// A proxied call got no answer from the provider.
    #[error("{0}")]
    Forward(crate::proxy::ForwardError),
    /// A state conflict.
    #[error("{0}")]
    Conflict(String),
    /// An approval operation was refused.
    #[error("{0}")]
    Approval(#[from] crate::approvals::ApprovalError),
    /// The storage backend failed.
    #[error("storage failure")]
    Storage(#[from] StoreError),
    /// A cryptographic operation failed.
    #[error("cryptographic failure")]
    Crypto(#[from] CryptoError),
    /// The key holder (master key, Transit) failed or does not open this database's keys.
    #[error("key holder: {0}")]
    KeyHolder(#[from] crate::ports::KeyHolderError),
}

/// A limit an operator set on a credential or an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The agent's allowlist does not name the managed secret.
    AgentNotAllowlisted,
    /// The credential may not be granted to principals of this type.
    PrincipalNotAllowed(PrincipalType),
    /// Grants of the credential may last at most this long.
    GrantTooLong {
        /// The longest lifetime, in seconds.
        max_seconds: i64,
    },
}

impl Limit {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::AgentNotAllowlisted => "agent_not_allowlisted",
            Limit::PrincipalNotAllowed(_) => "principal_not_allowed",
            Limit::GrantTooLong { .. } => "secret_limit_exceeded",
        }
    }

    fn message(self) -> String {
        match self {
            Limit::AgentNotAllowlisted => {
                "this agent's allowlist does not name this managed secret".into()
            }
            Limit::PrincipalNotAllowed(kind) => format!(
                "this managed secret may not be granted to {} principals",
                kind.as_str()
            ),
            Limit::GrantTooLong { max_seconds } => {
                format!("this managed secret's grants may last at most {max_seconds} seconds")
            }
        }
    }
}

fn denial_message(denial: &crate::release::Denial) -> String {
    use crate::release::Denial;
    match denial {
        Denial::Revoked => "this grant was revoked".into(),
        Denial::Expired => "this grant expired".into(),
        Denial::Deleted => "this grant's managed secret was deleted".into(),
        Denial::DelegationInvalid(why) => format!("this delegation is no longer valid: {why}"),
        Denial::BlockedDestination => "this credential may not be sent to that host".into(),
        Denial::AgentNotAllowlisted => {
            "this agent's allowlist does not name this credential's provider or managed secret"
                .into()
        }
        Denial::RequiresProxy(_) => "this grant may only be used through the proxy".into(),
        Denial::PrincipalNotAllowed => {
            "the managed secret no longer admits grants of this principal type".into()
        }
        Denial::Policy { code, .. } => policy_message(*code).into(),
        Denial::RateLimited {
            retry_after_seconds,
            ..
        } => format!("a rate limit on this call is reached; retry in {retry_after_seconds} s"),
        Denial::PolicyUnavailable => "the policy rules cannot be checked right now".into(),
    }
}

fn policy_message(code: crate::release::policy::PolicyCode) -> &'static str {
    use crate::release::policy::PolicyCode as C;
    match code {
        C::IpNotAllowed => "a policy rule does not allow calls from this address",
        C::OutsideTimeWindow => "a policy rule does not allow this call at this time",
        C::UrlNotAllowed => "a policy rule does not allow calls to this URL",
        C::MethodNotAllowed => "a policy rule does not allow this method",
        C::ParameterNotAllowed => "a policy rule does not allow a parameter of this call",
        C::PolicyDenied => "a policy rule denies this call",
        C::EvaluationFailed => "a policy rule could not be evaluated; the call is refused",
        C::RequestRuleDenied => "the request rule attached to this key forbids the call",
        C::StepUpRequired => "the request rule attached to this key requires a fresher sign-in",
        C::RedactDischargeFailed => {
            "the request rule attached to this key asks for a redaction that cannot be made"
        }
    }
}

fn display_scopes(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Shorthand for domain results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Fails with [`Error::Invalid`] unless `ok`.
pub fn ensure(ok: bool, message: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(message()))
    }
}
