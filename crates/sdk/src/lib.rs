//! The native Rust client of Alter, with the API of the official Python client
//! (`alter-sdk==0.29.0`): [`App`] for applications, [`Agent`] for agents, typed results, and an
//! [`Error`] whose variants mirror the official exception names.
//!
//! ```no_run
//! # async fn run() -> Result<(), alter_sdk::Error> {
//! // ALTER_BASE_URL=http://127.0.0.1:8080, as printed by `alter dev`.
//! let app = alter_sdk::App::new(std::env::var("ALTER_API_KEY").unwrap_or_default())?;
//! let catalogue = app.scopes().list().await?;
//! println!("scope catalogue v{}", catalogue.scope_version);
//! # Ok(()) }
//! ```

pub mod admin;
pub mod agents;
pub mod approvals;
mod client;
pub mod connect;
pub mod error;
pub mod grants;
pub mod identity;
pub mod managed_connect;
mod namespaces;
pub mod proxy;
mod request;
pub mod signin;
mod transport;

pub use agents::{AgentInfo, Agents, CreateAgent, UpdateAgent};
pub use alter_inject::sigv4;
pub use alter_proto::keys::{ApiKeyInfo, DeriveKeyRequest, MintedKey};
pub use alter_proto::scopes::ScopeCatalog;
pub use approvals::{ApprovalState, ApprovalStatus, PendingApproval};
pub use client::{Agent, App, ClientBuilder};
pub use connect::{
    ConnectDelegation, ConnectFailedGrant, ConnectOptions, ConnectResult, ConnectSession,
    ConnectSessionOptions, ConnectedGrantPolicy,
};
pub use error::{Error, ErrorInfo};
pub use grants::{
    CreateGrantResult, DelegateOptions, DelegationResult, GrantInfo, GrantItem, GrantItemCommon,
    GrantList, GrantPolicy, ListGrants, ManagedSecretGrantItem, OAuthGrantItem, Principal,
    RevokeGrantResult, UnifiedGrantListResult,
};
pub use identity::{
    AssertIdentity, IdentityAssertion, IdentityContext, ResolveIdentity, TrustedIssuer,
    VerifiedIdentity, verify_identity_assertion,
};
pub use managed_connect::{ManagedConnectOptions, ManagedConnectSession};
pub use namespaces::{Keys, ProviderSpecs, Scopes};
pub use proxy::{ProxyOutcome, ProxyResult};
pub use request::ProviderRequest;
pub use signin::{AuthResult, AuthSession, AuthenticateOptions};
pub use transport::{BASE_URL_VAR, DEFAULT_BASE_URL};
