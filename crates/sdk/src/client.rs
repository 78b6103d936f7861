//! [`App`] and [`Agent`]: the two clients of the official SDK, with the same construction rules.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::agents::{self, AgentInfo, Agents};
use crate::connect::{self, ConnectOptions, ConnectResult, ConnectSession, ConnectSessionOptions};
use crate::error::Error;
use crate::grants::{
    self, CreateGrantResult, DelegateOptions, DelegationResult, GrantInfo, GrantList, GrantPolicy,
    ListGrants, Principal, RevokeGrantResult,
};
use crate::namespaces::{Keys, ProviderSpecs, Scopes};
use crate::request::{self, ProviderRequest};
use crate::transport::{DEFAULT_TIMEOUT, Identity, TimeSource, Transport};

/// Builds an [`App`] or an [`Agent`].
#[derive(Clone)]
pub struct ClientBuilder {
    api_key: String,
    base_url: Option<String>,
    timeout: Duration,
    caller: Option<String>,
    now: TimeSource,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    fn new(api_key: impl Into<String>) -> Self {
        ClientBuilder {
            api_key: api_key.into(),
            base_url: None,
            timeout: DEFAULT_TIMEOUT,
            caller: None,
            now: Arc::new(SystemTime::now),
        }
    }

    /// The server's base URL. Defaults to `ALTER_BASE_URL`, else `http://127.0.0.1:8080`
    /// (where `alter dev` listens). Plain http is only allowed to loopback.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Per-request timeout (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Free-form audit attribution sent (and signed) with every request: 1–255 printable
    /// ASCII characters.
    pub fn caller(mut self, caller: impl Into<String>) -> Self {
        self.caller = Some(caller.into());
        self
    }

    /// Where request timestamps come from (the system clock by default). For tests that move
    /// the server's clock.
    pub fn clock(mut self, now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.now = Arc::new(now);
        self
    }

    fn transport(self, caller_type: &str) -> Result<Transport, Error> {
        if let Some(caller) = &self.caller
            && (caller.is_empty()
                || caller.len() > 255
                || !caller.bytes().all(|b| (0x20..0x7f).contains(&b)))
        {
            return Err(Error::value(
                "caller must be 1-255 printable ASCII characters",
            ));
        }
        let identity = Identity {
            caller_type: self.caller.as_ref().map(|_| caller_type.to_owned()),
            caller: self.caller,
        };
        Transport::new(
            self.api_key,
            self.base_url,
            self.timeout,
            identity,
            self.now,
        )
    }

    /// An [`App`] (caller type `service`).
    pub fn build_app(self) -> Result<App, Error> {
        Ok(App {
            transport: self.transport("service")?,
        })
    }

    /// An [`Agent`] (caller type `agent`).
    pub fn build_agent(self) -> Result<Agent, Error> {
        Ok(Agent {
            transport: self.transport("agent")?,
        })
    }
}

/// The application's client, authenticated by an app key (`alter_rk_…`).
///
/// ```no_run
/// # async fn run() -> Result<(), alter_sdk::Error> {
/// // ALTER_BASE_URL=http://127.0.0.1:8080
/// let app = alter_sdk::App::new("alter_rk_…")?;
/// let catalogue = app.scopes().list().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct App {
    pub(crate) transport: Transport,
}

impl App {
    /// Binds a managed secret to a principal (any of the four).
    ///
    /// ```no_run
    /// # async fn run(app: alter_sdk::App, alice_jwt: String) -> Result<(), alter_sdk::Error> {
    /// use alter_sdk::Principal;
    /// let result = app
    ///     .create_managed_secret_grant(
    ///         "ms_abc123",
    ///         Principal::user(alice_jwt, "alice-prod-stripe"),
    ///         None,
    ///     )
    ///     .await?;
    /// println!("{}", result.grant_id);
    /// # Ok(()) }
    /// ```
    ///
    /// Errors: [`Error::PolicyViolation`] (the secret's limits forbid the policy),
    /// [`Error::AlterValue`] (bad input, caught locally).
    pub async fn create_managed_secret_grant(
        &self,
        managed_secret_id: &str,
        principal: Principal,
        grant_policy: Option<GrantPolicy>,
    ) -> Result<CreateGrantResult, Error> {
        grants::create_managed_secret_grant(
            &self.transport,
            managed_secret_id,
            principal,
            grant_policy,
        )
        .await
    }

    /// Revokes a grant and every delegation of it.
    ///
    /// ```no_run
    /// # async fn run(app: alter_sdk::App, grant_id: &str) -> Result<(), alter_sdk::Error> {
    /// let result = app.revoke_grant(grant_id, Some("user offboarded")).await?;
    /// println!("{}", result.revoked_at);
    /// # Ok(()) }
    /// ```
    ///
    /// Errors: [`Error::GrantNotFound`], [`Error::GrantRevoked`] (already revoked),
    /// [`Error::PolicyViolation`].
    pub async fn revoke_grant(
        &self,
        grant_id: &str,
        reason: Option<&str>,
    ) -> Result<RevokeGrantResult, Error> {
        grants::revoke_grant(&self.transport, grant_id, reason).await
    }

    /// Removes one agent's access path on a grant (operator path); the grant stays.
    ///
    /// ```no_run
    /// # async fn run(app: alter_sdk::App, grant_id: &str, agent_id: &str) -> Result<(), alter_sdk::Error> {
    /// app.revoke_delegation(grant_id, agent_id).await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke_delegation(&self, grant_id: &str, agent_id: &str) -> Result<(), Error> {
        grants::revoke_delegation(&self.transport, grant_id, Some(agent_id)).await
    }

    /// A sibling grant on the same credential and principal, with another label and a
    /// policy that may only tighten.
    pub async fn mint_grant(
        &self,
        source_grant_id: &str,
        label: &str,
        grant_policy: Option<GrantPolicy>,
    ) -> Result<GrantInfo, Error> {
        grants::mint_grant(&self.transport, source_grant_id, label, grant_policy).await
    }

    /// The agents namespace.
    pub fn agents(&self) -> Agents<'_> {
        Agents {
            transport: &self.transport,
        }
    }

    /// An [`Agent`] that signs with this app's key and acts as the managed agent `agent_id`
    /// (for audit attribution and agent-scoped calls). No request is made until it is used.
    pub fn get_agent(&self, agent_id: &str) -> Result<Agent, Error> {
        let identity = Identity {
            caller: Some(grants::canonical_uuid("agent_id", agent_id)?),
            caller_type: Some("agent".into()),
        };
        Ok(Agent {
            transport: self.transport.with_identity(identity),
        })
    }
}

/// An agent's client: authenticated by the agent's own key, or obtained from
/// `App::get_agent` to act as an agent with the app key.
#[derive(Debug, Clone)]
pub struct Agent {
    pub(crate) transport: Transport,
}

impl Agent {
    /// Binds a managed secret to this agent itself (self only), on the agent self-grant route.
    /// The server allows it only where the operator opted the `agent` principal type in for
    /// that secret, for an active agent whose allowlist names the secret.
    pub async fn create_managed_secret_grant(
        &self,
        managed_secret_id: &str,
        label: Option<&str>,
        grant_policy: Option<GrantPolicy>,
    ) -> Result<CreateGrantResult, Error> {
        grants::create_agent_self_grant(&self.transport, managed_secret_id, label, grant_policy)
            .await
    }

    /// Gives up this agent's delegation of a grant (named by the grant it was delegated from).
    ///
    /// ```no_run
    /// # async fn run(agent: alter_sdk::Agent, grant_id: &str) -> Result<(), alter_sdk::Error> {
    /// agent.revoke_delegation(grant_id).await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke_delegation(&self, grant_id: &str) -> Result<(), Error> {
        grants::revoke_delegation(&self.transport, grant_id, None).await
    }

    /// Passes a delegation this agent holds on to another agent.
    pub async fn delegate(
        &self,
        grant_id: &str,
        to_agent_id: &str,
        options: DelegateOptions,
    ) -> Result<DelegationResult, Error> {
        grants::delegate(&self.transport, grant_id, to_agent_id, options).await
    }

    /// This agent, whatever its status.
    pub async fn me(&self) -> Result<AgentInfo, Error> {
        agents::me(&self.transport).await
    }
}

/// What `App` and `Agent` share: how they are built, the grants they see, the provider calls
/// they make, and the `keys` and `scopes` namespaces. `$build` is the builder's method,
/// `$agent` whether the client acts as an agent.
macro_rules! shared_surface {
    ($($client:ident: $build:ident, $agent:literal;)*) => {$(
        impl $client {
            #[doc = concat!("An [`", stringify!($client), "`] for `api_key`, with the base URL from `ALTER_BASE_URL`.")]
            pub fn new(api_key: impl Into<String>) -> Result<$client, Error> {
                ClientBuilder::new(api_key).$build()
            }

            /// A builder for more settings.
            pub fn builder(api_key: impl Into<String>) -> ClientBuilder {
                ClientBuilder::new(api_key)
            }

            /// The server's base URL.
            pub fn base_url(&self) -> &str {
                self.transport.base_url()
            }

            /// A page of the grants this client can act on, optionally filtered. An app sees
            /// all of its grants (delegations included); an agent its own and those delegated
            /// to it, each with the delegation's own `grant_id`, which is what the agent passes
            /// when using it.
            ///
            /// ```no_run
            #[doc = concat!("# async fn run(client: alter_sdk::", stringify!($client), ") -> Result<(), alter_sdk::Error> {")]
            /// use alter_sdk::{GrantItem, ListGrants};
            /// let page = client.list_grants(ListGrants::new().provider_id("google").limit(50)).await?;
            /// for grant in &page.grants {
            ///     if let GrantItem::OAuth(grant) = grant {
            ///         println!("{} {:?} {:?}", grant.grant_id, grant.account_identifier, grant.scopes);
            ///     }
            /// }
            /// # Ok(()) }
            /// ```
            pub async fn list_grants(&self, query: ListGrants) -> Result<GrantList, Error> {
                grants::list_grants(&self.transport, query).await
            }

            /// Calls a provider with a released credential (retrieve mode): the credential is
            /// fetched, injected into the call and never handed to the caller; the outcome is
            /// reported to the audit log. For an agent, a grant it cannot reach is
            /// [`Error::AgentDelegationMissing`].
            pub async fn request(
                &self,
                request: ProviderRequest,
            ) -> Result<reqwest::Response, Error> {
                request::request(&self.transport, request, $agent).await
            }

            /// Calls a provider through the vault (proxy mode): the vault injects the
            /// credential and makes the call, so the credential never reaches this process.
            /// The provider's answer comes back whatever its status. Needs `proxy:execute`.
            /// A destination the vault may not reach is [`Error::BlockedDestination`]; for an
            /// agent, a grant it cannot reach is [`Error::AgentDelegationMissing`].
            pub async fn proxy_request(
                &self,
                request: ProviderRequest,
            ) -> Result<crate::proxy::ProxyOutcome, Error> {
                crate::proxy::proxy_request(&self.transport, request, $agent).await
            }

            /// Starts a Connect session: a page where the user connects an account at a
            /// provider. Give the user `connect_url`, then wait with
            #[doc = concat!("[`", stringify!($client), "::poll_connect_session`].")]
            ///
            /// ```no_run
            #[doc = concat!("# async fn run(client: alter_sdk::", stringify!($client), ") -> Result<(), alter_sdk::Error> {")]
            /// use alter_sdk::ConnectSessionOptions;
            /// let session = client
            ///     .create_connect_session(ConnectSessionOptions::new().allowed_providers(["google"]))
            ///     .await?;
            /// println!("{}", session.connect_url);
            /// # Ok(()) }
            /// ```
            ///
            /// Errors: [`Error::AlterValue`] (bad options, caught locally),
            /// [`Error::ConnectConfig`], [`Error::AgentNotFound`], [`Error::Backend`].
            pub async fn create_connect_session(
                &self,
                options: ConnectSessionOptions,
            ) -> Result<ConnectSession, Error> {
                connect::create_connect_session(&self.transport, options).await
            }

            /// Waits for a Connect session to end: polls at once, then every `poll_interval`,
            /// until the user is done or `timeout` passes.
            ///
            /// Errors: [`Error::ConnectDenied`] (the user said no), [`Error::ConnectConfig`]
            /// (the provider refused the app's configuration), [`Error::ConnectTimeout`]
            /// (`timeout` passed, or the session expired while waiting),
            /// [`Error::ConnectFlow`] (any other failure, an unknown or expired token).
            pub async fn poll_connect_session(
                &self,
                session_token: &str,
                timeout: std::time::Duration,
                poll_interval: std::time::Duration,
            ) -> Result<Vec<ConnectResult>, Error> {
                connect::poll_connect_session(&self.transport, session_token, timeout, poll_interval)
                    .await
            }

            /// The whole Connect flow: creates a session for `providers` (all, when empty),
            /// opens its page in the system browser (or prints its URL to stderr), and waits.
            ///
            /// ```no_run
            #[doc = concat!("# async fn run(client: alter_sdk::", stringify!($client), ") -> Result<(), alter_sdk::Error> {")]
            /// let grants = client.connect(&["google"], alter_sdk::ConnectOptions::default()).await?;
            /// println!("{} {:?}", grants[0].grant_id, grants[0].account_identifier);
            /// # Ok(()) }
            /// ```
            pub async fn connect(
                &self,
                providers: &[&str],
                options: ConnectOptions,
            ) -> Result<Vec<ConnectResult>, Error> {
                connect::connect(&self.transport, providers, options).await
            }

            /// A managed-secret Connect session (`create_managed_secret_connect_session`): the
            /// user the options' token names signs in on the vault's page, then enters their
            /// own key for the secret, replaces it, or shares the access they hold with the
            /// agent. An agent's own key is told neither the path nor the grant it uses.
            pub async fn create_managed_secret_connect_session(
                &self,
                options: crate::managed_connect::ManagedConnectOptions,
            ) -> Result<crate::managed_connect::ManagedConnectSession, Error> {
                crate::managed_connect::create_managed_connect_session(&self.transport, options)
                    .await
            }

            /// A Connect session that fixes what `error` reported: a
            /// [`Error::CredentialRevoked`] repairs its grant in place (or reconnects, when
            /// the grant cannot be repaired), a [`Error::NoDelegatedGrant`] or
            /// [`Error::GrantNotFound`] connects its provider again (for its agent, when it
            /// names one). `options` gives the rest (return URL, user token, …).
            ///
            /// Errors: [`Error::AlterValue`] when `error` is another error or names no
            /// provider, and whatever `create_connect_session` returns.
            pub async fn create_connect_session_for_error(
                &self,
                error: &Error,
                options: ConnectSessionOptions,
            ) -> Result<ConnectSession, Error> {
                connect::create_connect_session_for_error(&self.transport, error, options).await
            }

            /// Key lifecycle: derive, rotate, revoke.
            pub fn keys(&self) -> Keys<'_> {
                Keys {
                    transport: &self.transport,
                }
            }

            /// The scope catalogue.
            pub fn scopes(&self) -> Scopes<'_> {
                Scopes {
                    transport: &self.transport,
                }
            }

            /// The app's provider specs (OpenAPI operations of its providers).
            pub fn provider_specs(&self) -> ProviderSpecs<'_> {
                ProviderSpecs {
                    transport: &self.transport,
                }
            }
        }
    )*};
}

shared_surface! {
    App: build_app, false;
    Agent: build_agent, true;
}
