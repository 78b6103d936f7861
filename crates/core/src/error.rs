//! The domain's errors. `server/src/error.rs` decides the status and wire code of each; nothing
//! here knows HTTP.

use alter_crypto::CryptoError;

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
    /// The key is already revoked (state transition refused).
    #[error("this key is already revoked")]
    KeyAlreadyRevoked,
    /// The storage backend failed.
    #[error("storage failure")]
    Storage(#[from] StoreError),
    /// A cryptographic operation failed.
    #[error("cryptographic failure")]
    Crypto(#[from] CryptoError),
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
