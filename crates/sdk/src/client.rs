//! [`App`] and [`Agent`]: the two clients of the official SDK, with the same construction rules.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::namespaces::{Keys, Scopes};
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
    /// An app client for `api_key`, with the base URL from `ALTER_BASE_URL`.
    pub fn new(api_key: impl Into<String>) -> Result<App, Error> {
        ClientBuilder::new(api_key).build_app()
    }
}

/// An agent's client: authenticated by the agent's own key, or obtained from
/// `App::get_agent` to act as an agent with the app key.
#[derive(Debug, Clone)]
pub struct Agent {
    pub(crate) transport: Transport,
}

impl Agent {
    /// An agent client for `api_key`, with the base URL from `ALTER_BASE_URL`.
    pub fn new(api_key: impl Into<String>) -> Result<Agent, Error> {
        ClientBuilder::new(api_key).build_agent()
    }
}

/// What `App` and `Agent` share.
macro_rules! shared_surface {
    ($($client:ident),*) => {$(
        impl $client {
            /// A builder for more settings.
            pub fn builder(api_key: impl Into<String>) -> ClientBuilder {
                ClientBuilder::new(api_key)
            }

            /// The server's base URL.
            pub fn base_url(&self) -> &str {
                self.transport.base_url()
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
        }
    )*};
}

shared_surface!(App, Agent);
