//! Alter's HTTP server: configuration, startup ([`Server::build`] → [`Server::local_addr`] →
//! [`Server::run_until_stopped`]), authentication, routes, and the one place errors become HTTP.

pub mod auth;
pub mod backup;
mod checkpoints;
pub mod config;
pub mod dev;
pub mod error;
mod json;
pub mod key_files;
pub mod keys;
pub mod metrics;
mod pages;
pub mod routes;
mod serve;
mod shares;
pub mod state;
pub mod telemetry;
pub mod ui;
mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alter_core::audit::ChainKey;
use alter_core::ports::Clock;
use alter_core::ports::{KeyHolder, KeyHolderError};
use alter_core::time::SystemClock;
use alter_core::vault::OpenedKeys;
use alter_core::{Settings, Vault};
use alter_crypto::{ExposeSecret, MasterKey};
use alter_store::{SqlStore, StoreOptions};
use alter_upstream::otlp::OtlpExporter;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

pub use alter_upstream::AllowedNetworks;
pub use config::Config;
pub use serve::HttpLimits;
pub use state::AppState;

/// How often expired nonces are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// How often due upstream revocations (RFC 7009) of revoked connections are retried.
const REVOCATION_INTERVAL: Duration = Duration::from_secs(30);

/// Why the server could not start. Messages say what to fix and never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The database cannot be reached or migrated.
    #[error("database: {0}")]
    Database(String),
    /// The master key (or the key holder's key) does not open this database, or is malformed.
    #[error("master key: {0}")]
    MasterKey(String),
    /// The key holder cannot be reached, refuses, or is misconfigured.
    #[error("key holder: {0}")]
    KeyHolder(String),
    /// No usable admin token.
    #[error("admin token: {0}")]
    AdminToken(String),
    /// A file or directory Alter keeps (data directory, secret files) cannot be used.
    #[error("{0}")]
    Files(String),
    /// The outbound HTTP client cannot be built.
    #[error("HTTP client: {0}")]
    HttpClient(String),
    /// A cryptographic failure at start-up.
    #[error("crypto: {0}")]
    Crypto(#[from] alter_crypto::CryptoError),
    /// The built-in provider catalogue does not load (a build defect).
    #[error("the OAuth provider catalogue: {0}")]
    Catalog(String),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Everything needed to start a server.
#[derive(Debug)]
pub struct ServerSettings {
    /// Address to bind (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// Database tuning.
    pub store_options: StoreOptions,
    /// Who holds the key wrapping the database's keys: the local master key or Transit.
    pub key_holder: Arc<dyn KeyHolder>,
    /// SHA-256 of the operator admin token.
    pub admin_token_hash: [u8; 32],
    /// Path prefix, or empty.
    pub base_path: String,
    /// The URL the server is reached at, path prefix included; `None`: the listen address.
    pub public_url: Option<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Timeouts and caps on client connections and requests.
    pub http: HttpLimits,
    /// Service tunables.
    pub vault: Settings,
    /// The clock (a manual one in tests).
    pub clock: Arc<dyn Clock>,
    /// How often to log a signed checkpoint of every app's audit chain; `None`: never.
    pub audit_checkpoint_interval: Option<Duration>,
    /// Networks proxied calls may reach although the SSRF guard refuses them.
    pub allowed_networks: alter_upstream::AllowedNetworks,
    /// Where to export a span per request (OTLP/HTTP, JSON); `None`: no export.
    pub otlp_endpoint: Option<String>,
}

impl ServerSettings {
    /// Settings of `alter server` from its configuration; the key holder (master key or
    /// Transit) and admin token come from the environment or from their files.
    pub fn from_config(
        config: &Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ServerSettings, StartupError> {
        let key_holder = keys::key_holder(config, &env)?;
        let admin_token = match (env("ALTER_ADMIN_TOKEN"), &config.admin_token_file) {
            (Some(token), _) => key_files::admin_token(&token, "ALTER_ADMIN_TOKEN")?,
            (None, Some(path)) => key_files::read_admin_token(path)?,
            (None, None) => {
                return Err(StartupError::AdminToken(
                    "set admin_token_file or ALTER_ADMIN_TOKEN (`alter server init --dir DIR` creates one)"
                        .into(),
                ));
            }
        };
        Ok(ServerSettings {
            listen: config.listen,
            database_url: config.database_url.clone(),
            store_options: StoreOptions {
                max_connections: config.database.max_connections,
                sqlite_synchronous: config.database.sqlite_synchronous.clone(),
                statement_timeout: Duration::from_secs(config.database.statement_timeout_seconds),
                commit_wait_timeout: Duration::from_secs(
                    config.database.commit_wait_timeout_seconds,
                ),
                acquire_timeout: Duration::from_secs(config.database.acquire_timeout_seconds),
                replica_url: config.database.replica_url.clone(),
            },
            key_holder,
            admin_token_hash: alter_crypto::keys::token_hash(admin_token.expose_secret()),
            base_path: config.base_path.clone(),
            public_url: config.public_url.clone(),
            max_body_bytes: config.max_body_bytes,
            http: HttpLimits {
                header_read_timeout: Duration::from_secs(config.http.header_read_timeout_seconds),
                body_read_timeout: Duration::from_secs(config.http.body_read_timeout_seconds),
                max_connections: config.http.max_connections,
                max_concurrent_requests: config.http.max_concurrent_requests,
                trusted_proxies: config.http.trusted_proxies()?,
            },
            vault: Settings {
                timestamp_window_seconds: config.timestamp_window_seconds,
                max_derived_key_ttl_seconds: config.max_derived_key_ttl_hours * 3600,
                group_membership_max_age_seconds: config.group_membership_max_age_seconds,
                refresh_buffer_seconds: config.oauth_refresh_buffer_seconds,
                proxy_max_response_bytes: config.upstream.proxy_max_response_bytes,
                max_grant_extension_seconds: config.max_grant_extension_days * 24 * 3600,
                webhooks_allow_http: config.upstream.webhooks_allow_http,
                audit_retention_days: (config.audit_retention_days > 0)
                    .then(|| i64::try_from(config.audit_retention_days).unwrap_or(i64::MAX)),
                ..Settings::default()
            },
            clock: Arc::new(SystemClock),
            audit_checkpoint_interval: (config.audit_checkpoint_interval_seconds > 0)
                .then(|| Duration::from_secs(config.audit_checkpoint_interval_seconds)),
            allowed_networks: config.upstream.networks().map_err(StartupError::Config)?,
            otlp_endpoint: config.otlp_endpoint.clone().filter(|e| !e.is_empty()),
        })
    }
}

/// The master key of a configuration: `ALTER_MASTER_KEY`, else the `master_key_file`.
pub fn master_key(
    config: &Config,
    env: impl Fn(&str) -> Option<String>,
) -> Result<MasterKey, StartupError> {
    match (env("ALTER_MASTER_KEY"), &config.master_key_file) {
        (Some(text), _) => MasterKey::from_encoded(&text)
            .map_err(|e| StartupError::MasterKey(format!("ALTER_MASTER_KEY: {e}"))),
        (None, Some(path)) => key_files::read_master_key(path),
        (None, None) => Err(StartupError::MasterKey(
            "set master_key_file or ALTER_MASTER_KEY (`alter server init --dir DIR` creates one)"
                .into(),
        )),
    }
}

/// A built server: listening, migrated, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
    store: SqlStore,
    base_path: String,
    audit_checkpoint_interval: Option<Duration>,
    http: HttpLimits,
    /// Names this node in job leases and exported spans.
    node: Arc<str>,
    /// Where webhooks may go beside public addresses (`upstream.allowed_networks`).
    allowed_networks: alter_upstream::AllowedNetworks,
    otlp: Option<(OtlpExporter, JoinHandle<()>)>,
}

impl Server {
    /// Applies the database migrations and returns, without opening the vault or listening
    /// (`alter server migrate`, which may run beside a serving node).
    pub async fn migrate(settings: &ServerSettings) -> Result<(), StartupError> {
        migrated_store(settings).await?.close().await;
        Ok(())
    }

    /// Connects and migrates the database, opens the vault with the key holder and binds the
    /// listener.
    pub async fn build(settings: ServerSettings) -> Result<Server, StartupError> {
        let store = keyed_store(&settings).await?;
        let vault = open_vault(
            &store,
            settings.key_holder.clone(),
            settings.clock,
            settings.allowed_networks.clone(),
            settings.vault,
        )
        .await?;
        let node: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
        let otlp = settings
            .otlp_endpoint
            .as_deref()
            .map(|endpoint| OtlpExporter::start(endpoint, &node))
            .transpose()
            .map_err(|e| StartupError::Config(config::ConfigError(e)))?;
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartupError::Listen {
                    addr: settings.listen,
                    source,
                })?;
        let discovery = alter_upstream::OidcDiscovery::new()
            .map_err(|e| StartupError::HttpClient(e.to_string()))?;
        alter_upstream::catalog::load().map_err(|e| StartupError::Catalog(e.to_string()))?;
        let public_url = match settings.public_url {
            Some(url) => url,
            None => {
                let addr = listener
                    .local_addr()
                    .map_err(|source| StartupError::Listen {
                        addr: settings.listen,
                        source,
                    })?;
                format!("http://{addr}{}", settings.base_path)
            }
        };
        Ok(Server {
            listener,
            state: AppState {
                vault,
                admin_token_hash: settings.admin_token_hash,
                max_body_bytes: settings.max_body_bytes,
                body_read_timeout: settings.http.body_read_timeout,
                in_progress: Arc::new(Semaphore::new(settings.http.max_concurrent_requests)),
                public_url,
                discovery,
                metrics: Arc::new(metrics::Metrics::new(store.clone())),
            },
            store,
            base_path: settings.base_path,
            audit_checkpoint_interval: settings.audit_checkpoint_interval,
            http: settings.http,
            node,
            allowed_networks: settings.allowed_networks,
            otlp,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The domain services, e.g. to bootstrap a dev app before serving.
    pub fn vault(&self) -> &Vault {
        &self.state.vault
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish and closes the
    /// database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.run_wrapped_until_stopped(shutdown, |router| router)
            .await
    }

    /// [`Self::run_until_stopped`] with `wrap` applied around the whole router, for an embedder
    /// or a test harness adding its own outermost layer (the test kit's leak watch).
    pub async fn run_wrapped_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
        wrap: impl FnOnce(axum::Router) -> axum::Router,
    ) -> std::io::Result<()> {
        let exporter = self.otlp.as_ref().map(|(exporter, _)| exporter.clone());
        let app = wrap(
            routes::router(self.state.clone(), &self.base_path)
                .layer(telemetry::http_trace_layer())
                .layer(axum::middleware::from_fn_with_state(
                    exporter,
                    telemetry::export_span,
                ))
                .layer(axum::middleware::from_fn(telemetry::request_id)),
        );
        let node = self.node.clone();
        let background = background_tasks(
            &self.state,
            &node,
            self.audit_checkpoint_interval,
            &self.allowed_networks,
        );
        serve::serve(self.listener, app, &self.http, shutdown).await;
        for task in background {
            task.abort();
        }
        release_job_leases(&self.state.vault, &node).await;
        if let Some((_, task)) = self.otlp {
            task.abort();
        }
        self.store.close().await;
        Ok(())
    }
}

/// The background jobs that run under a lease of their own name (one node at a time runs
/// each). The audit checkpoint log is not one of them: it guards against whoever can write
/// the database, so it must not depend on the database letting a node log — every node logs
/// its own.
mod job {
    pub const PRUNE: &str = "prune-expired";
    pub const UPSTREAM_REVOCATIONS: &str = "upstream-revocations";
    pub const APPROVAL_SWEEP: &str = "approval-sweep";
    pub const KEK_REWRAP: &str = "kek-rewrap";
    pub const ALL: [&str; 5] = [
        PRUNE,
        UPSTREAM_REVOCATIONS,
        APPROVAL_SWEEP,
        KEK_REWRAP,
        crate::webhooks::JOB,
    ];
}

/// A node's turn at a background job: a lease on `job` in the database, taken or renewed for
/// three of its intervals, so that when its node dies another takes the job within three
/// intervals. Running nodes may differ only in who does the work: every job's steps are
/// conditional writes.
#[derive(Debug, Clone)]
pub(crate) struct JobTurn {
    vault: Vault,
    node: Arc<str>,
    job: &'static str,
    every: Duration,
}

impl JobTurn {
    /// Waits for the next run; true when this node holds the job's lease for it.
    pub(crate) async fn mine(&self, tick: &mut tokio::time::Interval) -> bool {
        tick.tick().await;
        match self
            .vault
            .hold_job_lease(self.job, &self.node, self.every * 3)
            .await
        {
            Ok(held) => {
                if held {
                    tracing::debug!(target: "alter::jobs", job = self.job, "running the job");
                }
                held
            }
            Err(e) => {
                tracing::warn!(job = self.job, error = %e, "taking the job's lease failed");
                false
            }
        }
    }
}

/// Starts the jobs that run beside the request handlers for as long as the server serves;
/// they are aborted when it stops. `node` names this node in the jobs' leases.
fn background_tasks(
    state: &AppState,
    node: &Arc<str>,
    audit_checkpoint_interval: Option<Duration>,
    allowed_networks: &alter_upstream::AllowedNetworks,
) -> Vec<JoinHandle<()>> {
    let turn = |job: &'static str, every: Duration| JobTurn {
        vault: state.vault.clone(),
        node: node.clone(),
        job,
        every,
    };
    let mut tasks = vec![
        tokio::spawn(prune_expired(turn(job::PRUNE, PRUNE_INTERVAL))),
        tokio::spawn(upstream_revocations(turn(
            job::UPSTREAM_REVOCATIONS,
            REVOCATION_INTERVAL,
        ))),
        tokio::spawn(sweep_approvals(turn(
            job::APPROVAL_SWEEP,
            APPROVAL_SWEEP_INTERVAL,
        ))),
        tokio::spawn(rewrap_data_keys(turn(job::KEK_REWRAP, REWRAP_INTERVAL))),
        // Every node keeps its own keyring current; not a leased job.
        tokio::spawn(refresh_keyring(state.vault.clone(), node.clone())),
        tokio::spawn(webhooks::deliver(
            state.vault.clone(),
            node.clone(),
            allowed_networks.clone(),
        )),
    ];
    if let Some(every) = audit_checkpoint_interval {
        tasks.push(tokio::spawn(checkpoints::log_audit_checkpoints(
            state.vault.clone(),
            every,
        )));
    }
    tasks
}

/// Gives up the leases `node` holds, so the other nodes take its jobs at once.
async fn release_job_leases(vault: &Vault, node: &str) {
    for job in job::ALL {
        if let Err(e) = vault.release_job_lease(job, node).await {
            tracing::warn!(job, error = %e, "giving up the job's lease failed");
        }
    }
}

/// The migrated store, connected with a throwaway chain key: for what appends no audit event
/// (migrating, reading the keys).
async fn migrated_store(settings: &ServerSettings) -> Result<SqlStore, StartupError> {
    let chain = ChainKey::derive(&MasterKey::generate()?);
    let store = SqlStore::connect(&settings.database_url, &settings.store_options, chain)
        .await
        .map_err(|e| StartupError::Database(e.to_string()))?;
    store
        .migrate()
        .await
        .map_err(|e| StartupError::Database(e.to_string()))?;
    Ok(store)
}

/// The migrated store whose audit chain key is derived from the database's MAC root, which
/// the key holder unwraps first (creating the keys of a new database).
async fn keyed_store(settings: &ServerSettings) -> Result<SqlStore, StartupError> {
    let bootstrap = migrated_store(settings).await?;
    let keys = open_keys(&bootstrap, settings.key_holder.as_ref(), &settings.clock).await;
    bootstrap.close().await;
    let chain = ChainKey::from_root(&keys?.mac_root);
    SqlStore::connect(&settings.database_url, &settings.store_options, chain)
        .await
        .map_err(|e| StartupError::Database(e.to_string()))
}

/// Unwraps the database's keys with `holder` (creating them on a new database).
pub(crate) async fn open_keys(
    store: &SqlStore,
    holder: &dyn KeyHolder,
    clock: &Arc<dyn Clock>,
) -> Result<OpenedKeys, StartupError> {
    alter_core::vault::open_keys(store, holder, clock.now())
        .await
        .map_err(opening_failed)
}

/// The start-up error of a failure to open the database's keys.
pub(crate) fn opening_failed(e: alter_core::Error) -> StartupError {
    match e {
        alter_core::Error::Crypto(c) => StartupError::MasterKey(c.to_string()),
        alter_core::Error::KeyHolder(
            e @ (KeyHolderError::WrongKey | KeyHolderError::NotThisDatabase(_)),
        ) => StartupError::MasterKey(e.to_string()),
        alter_core::Error::KeyHolder(e) => StartupError::KeyHolder(e.to_string()),
        other => StartupError::Database(format!("{other}: {}", source_text(&other))),
    }
}

/// Opens the vault on a migrated store: a key holder whose key does not open the database's
/// key-encryption keys fails with [`StartupError::MasterKey`].
async fn open_vault(
    store: &SqlStore,
    holder: Arc<dyn KeyHolder>,
    clock: Arc<dyn Clock>,
    allowed_networks: AllowedNetworks,
    settings: Settings,
) -> Result<Vault, StartupError> {
    let verifier =
        alter_upstream::JwtVerifier::new().map_err(|e| StartupError::HttpClient(e.to_string()))?;
    let oauth = alter_upstream::oauth::OAuthClient::new()
        .map_err(|e| StartupError::HttpClient(e.to_string()))?;
    let forwarder = alter_upstream::HttpForwarder::new(allowed_networks)
        .map_err(|e| StartupError::HttpClient(e.to_string()))?;
    Vault::open(
        Arc::new(store.clone()),
        holder,
        clock,
        Arc::new(verifier),
        Arc::new(oauth),
        Arc::new(alter_policy::Engine::new()),
        Arc::new(forwarder),
        settings,
    )
    .await
    .map_err(opening_failed)
}

/// Forgets request nonces, sign-in and browser sessions, and the like past their use.
async fn prune_expired(turn: JobTurn) {
    let vault = &turn.vault;
    let mut tick = tokio::time::interval(turn.every);
    loop {
        if !turn.mine(&mut tick).await {
            continue;
        }
        // Partitions ahead first, so that what follows never lands in a DEFAULT partition.
        if let Err(e) = vault.maintain_time_partitions().await {
            tracing::warn!(error = %e, "creating time partitions ahead failed");
        }
        for (what, pruned) in [
            ("request nonces", vault.prune_nonces().await),
            (
                "audit events past retention",
                vault.prune_audit_events().await,
            ),
            ("sign-in sessions", vault.prune_auth_sessions().await),
            ("Connect sessions", vault.prune_connect_sessions().await),
            ("rate-limit buckets", vault.prune_rate_buckets().await),
            ("trace spans", vault.prune_spans().await),
            ("browser sessions", vault.prune_browser_sessions().await),
            (
                "operator sign-in failures",
                vault.prune_sign_in_throttle().await,
            ),
            ("webhook deliveries", vault.prune_webhook_deliveries().await),
            ("IdP event receipts", vault.prune_idp_event_receipts().await),
            (
                "expired previous signing secrets",
                vault.prune_previous_secrets().await,
            ),
        ] {
            match pruned {
                Ok(n) if n > 0 => tracing::debug!(pruned = n, "pruned {what}"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning {what} failed"),
            }
        }
    }
}

/// Retires connections no live grant uses, then sends (and retries) the due upstream
/// revocations.
async fn upstream_revocations(turn: JobTurn) {
    let vault = &turn.vault;
    let mut tick = tokio::time::interval(turn.every);
    loop {
        if !turn.mine(&mut tick).await {
            continue;
        }
        match vault.retire_unused_connections().await {
            Ok(n) if n > 0 => tracing::info!(retired = n, "retired connections no grant uses"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retiring unused connections failed"),
        }
        match vault.run_upstream_revocations(None).await {
            Ok(n) if n > 0 => tracing::info!(confirmed = n, "upstream revocations confirmed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "running upstream revocations failed"),
        }
    }
}

/// How often held calls are swept: expired when undecided, executed when approved but not
/// picked up, failed when their execution's node died. Every step is a conditional update, so
/// a second node sweeping at once would change nothing wrongly.
const APPROVAL_SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Sweeps approvals every [`APPROVAL_SWEEP_INTERVAL`].
async fn sweep_approvals(turn: JobTurn) {
    let vault = &turn.vault;
    let mut tick = tokio::time::interval(turn.every);
    loop {
        if !turn.mine(&mut tick).await {
            continue;
        }
        match vault.sweep_approvals().await {
            Ok(n) if n > 0 => tracing::info!(moved = n, "approvals swept"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweeping approvals failed"),
        }
    }
}

/// How often the re-wrap job looks for data keys under an older KEK (it walks them in pages,
/// a few per run, so it never holds the database for long).
const REWRAP_INTERVAL: Duration = Duration::from_secs(5);

/// Pages of sealed values (500 each) the re-wrap job walks per run.
const REWRAP_PAGES_PER_RUN: u32 = 20;

/// Re-wraps data keys under the newest KEK, once one was added (`alter keys rotate-kek`).
async fn rewrap_data_keys(turn: JobTurn) {
    let vault = &turn.vault;
    let mut tick = tokio::time::interval(turn.every);
    let mut reported = None;
    loop {
        if !turn.mine(&mut tick).await {
            continue;
        }
        match vault.rewrap_data_keys(REWRAP_PAGES_PER_RUN).await {
            Ok(done) => {
                if done.rewrapped > 0 {
                    tracing::info!(
                        rewrapped = done.rewrapped,
                        "data keys re-wrapped under the newest KEK"
                    );
                }
                if done.finished && reported != Some(done) {
                    if done.failed > 0 {
                        tracing::error!(
                            failed = done.failed,
                            "re-wrap finished, but some values could not be re-wrapped"
                        );
                    }
                    reported = Some(done);
                }
            }
            Err(e) => tracing::warn!(error = %e, "re-wrapping data keys failed"),
        }
    }
}

/// Loads a new KEK version every [`alter_core::kek_versions::KEYRING_REFRESH`], and within a
/// second of meeting a value sealed under a version this node lacks. After a failure (a key
/// holder that no longer opens the keys) it waits a whole interval before trying again.
async fn refresh_keyring(vault: Vault, node: Arc<str>) {
    let every = alter_core::kek_versions::KEYRING_REFRESH;
    let soon = Duration::from_secs(1);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last = tokio::time::Instant::now();
    let mut failing = false;
    loop {
        tick.tick().await;
        let wanted = vault.keyring_missing_version().is_some() && !failing;
        let due = last.elapsed() >= every;
        if !(wanted && last.elapsed() >= soon || due) {
            continue;
        }
        last = tokio::time::Instant::now();
        if due && let Err(e) = vault.report_keyring(&node).await {
            tracing::warn!(error = %e, "reporting this node's KEK version failed");
        }
        match vault.refresh_keyring().await {
            Ok(loaded) => {
                if loaded {
                    tracing::info!(
                        version = vault.kek_version(),
                        "loaded a new key-encryption key version"
                    );
                }
                failing = false;
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "loading the key-encryption keys failed: values sealed under a new version \
                     cannot be opened on this node (is it running with the current key holder?)"
                );
                failing = true;
            }
        }
    }
}

fn source_text(e: &dyn std::error::Error) -> String {
    e.source().map(ToString::to_string).unwrap_or_default()
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
