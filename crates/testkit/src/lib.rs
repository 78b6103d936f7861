// A test harness fails loudly: a broken fixture is a failed test, not an error to handle.
#![allow(clippy::expect_used)]
//! Test harness: starts the real Alter server in-process on `127.0.0.1:0`, on SQLite or on
//! PostgreSQL (a fresh schema in `ALTER_TEST_DATABASE_URL`), with a manual clock, and hands out
//! clients. Every black-box Rust test of Alter lives in this crate's `tests/`.

pub mod idp;
pub mod leaks;
pub mod oauth_peer;
mod raw;
pub mod upstream;
pub mod webhooks;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alter_core::Settings;
use alter_core::ports::Clock;
use alter_core::time::{ManualClock, SystemClock, Timestamp};
use alter_crypto::{ExposeSecret, MasterKey};
use alter_proto::admin::{AppInfo, MintKeyRequest};
use alter_proto::keys::MintedKey;
use alter_sdk::admin::AdminClient;
use alter_sdk::{Agent, App};
use alter_server::{HttpLimits, Server, ServerSettings, StartupError};
use alter_store::StoreOptions;
use alter_store::scratch::ScratchDatabase;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use raw::{RawRequest, RawResponse, UserClient};

/// A database engine to test on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A temporary SQLite file.
    Sqlite,
    /// A fresh schema in the PostgreSQL of `ALTER_TEST_DATABASE_URL`.
    Postgres,
}

/// The engines this run tests on: SQLite always, PostgreSQL when `ALTER_TEST_DATABASE_URL` is
/// set (and then an unreachable server fails the test instead of skipping it).
pub fn engines() -> Vec<Engine> {
    let mut engines = vec![Engine::Sqlite];
    if std::env::var(alter_store::scratch::TEST_DATABASE_URL_VAR).is_ok() {
        engines.push(Engine::Postgres);
    }
    engines
}

/// Runs `test` once per engine of [`engines`].
pub async fn on_every_engine<F, Fut>(test: F)
where
    F: Fn(Engine) -> Fut,
    Fut: Future<Output = ()>,
{
    for engine in engines() {
        test(engine).await;
    }
}

/// Settings a test may change.
#[derive(Debug, Clone)]
pub struct Options {
    /// Path prefix the server is mounted under.
    pub base_path: String,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// The loopback address to listen on: `127.0.0.1`, or `::ffff:127.0.0.1` for an IPv6
    /// socket that sees IPv4 peers in their IPv4-mapped form, as a dual-stack listener does.
    pub listen_ip: IpAddr,
    /// Timeouts and caps on client connections and requests.
    pub http: HttpLimits,
    /// Networks proxied calls may reach despite the SSRF guard: loopback by default, so that
    /// the local upstreams tests start are reachable.
    pub allowed_networks: alter_upstream::AllowedNetworks,
    /// `audit_retention_days` (off by default).
    pub audit_retention_days: Option<i64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            base_path: String::new(),
            max_body_bytes: 64 * 1024,
            listen_ip: IpAddr::from([127, 0, 0, 1]),
            http: HttpLimits::default(),
            allowed_networks: alter_upstream::AllowedNetworks::loopback(),
            audit_retention_days: None,
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct TestServer {
    engine: Engine,
    /// What it was started with; a restart or a second node keeps them.
    options: Options,
    base_url: String,
    admin_token: String,
    clock: Arc<ManualClock>,
    master_key: Arc<MasterKey>,
    database: Option<ScratchDatabase>,
    database_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    /// The URL browsers and providers reach this node at, when not its own address (a node
    /// behind the same load balancer as another).
    public_url: Option<String>,
    /// The running node's domain services, for tests of operations no route reaches yet.
    vault: Option<alter_core::vault::Vault>,
}

/// An app with an identity provider (a real [`TestIdp`](idp::TestIdp) whose JWKS the server
/// fetches) and one bearer managed secret.
#[derive(Debug)]
pub struct World {
    /// The app and its full-scope key.
    pub app: TestApp,
    /// The identity provider users' tokens come from.
    pub idp: idp::TestIdp,
    /// Its id at Alter (the `idp_id` of group principals).
    pub idp_id: String,
    /// A managed secret.
    pub secret: alter_proto::admin::SecretInfo,
}

/// The value of [`World::secret`].
pub const WORLD_SECRET_VALUE: &str = "sk_live_51HworldSecretValue0123456789";

/// A new app with one full-scope key.
#[derive(Debug, Clone)]
pub struct TestApp {
    /// The app.
    pub info: AppInfo,
    /// Its key.
    pub key: MintedKey,
}

impl TestServer {
    /// Starts a server on a fresh database of `engine`.
    pub async fn start(engine: Engine) -> TestServer {
        Self::start_with(engine, Options::default()).await
    }

    /// Starts a server with `options`.
    pub async fn start_with(engine: Engine, options: Options) -> TestServer {
        leaks::capture_logs();
        let database = match engine {
            Engine::Sqlite => ScratchDatabase::sqlite().expect("temporary SQLite database"),
            Engine::Postgres => ScratchDatabase::postgres()
                .await
                .expect("ALTER_TEST_DATABASE_URL is set but PostgreSQL is unreachable")
                .expect("ALTER_TEST_DATABASE_URL is not set"),
        };
        let master_key = Arc::new(MasterKey::generate().expect("master key"));
        let clock = Arc::new(ManualClock::starting_at(SystemClock.now()));
        let mut server = TestServer {
            engine,
            options,
            base_url: String::new(),
            admin_token: alter_crypto::keys::mint_token("alter_admin_")
                .expect("admin token")
                .expose_secret()
                .to_owned(),
            clock,
            master_key,
            database_url: database.url().to_owned(),
            database: Some(database),
            stop: None,
            task: None,
            vault: None,
            public_url: None,
        };
        server.boot().await.expect("server starts");
        server
    }

    /// Builds and spawns the server on the current database and master key.
    async fn boot(&mut self) -> Result<(), StartupError> {
        let server = Server::build(self.settings(self.master_key.clone())).await?;
        let addr = server.local_addr().expect("bound address");
        // Clients connect over IPv4, also to an IPv6 socket on an IPv4-mapped address.
        let addr = match addr.ip() {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(addr, |v4| SocketAddr::new(v4.into(), addr.port())),
            IpAddr::V4(_) => addr,
        };
        self.base_url = format!("http://{addr}{}", self.options.base_path);
        self.vault = Some(server.vault().clone());
        let (stop, stopped) = oneshot::channel();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(server.run_wrapped_until_stopped(
            async {
                let _ = stopped.await;
            },
            leaks::tap,
        )));
        Ok(())
    }

    fn settings(&self, master_key: Arc<MasterKey>) -> ServerSettings {
        ServerSettings {
            listen: SocketAddr::new(self.options.listen_ip, 0),
            database_url: self.database_url.clone(),
            store_options: StoreOptions {
                max_connections: 4,
                ..StoreOptions::default()
            },
            key_holder: master_key,
            admin_token_hash: alter_crypto::keys::token_hash(&self.admin_token),
            base_path: self.options.base_path.clone(),
            public_url: self.public_url.clone(),
            max_body_bytes: self.options.max_body_bytes,
            http: self.options.http.clone(),
            vault: Settings {
                audit_retention_days: self.options.audit_retention_days,
                ..Settings::default()
            },
            clock: self.clock.clone(),
            audit_checkpoint_interval: None,
            otlp_endpoint: None,
            allowed_networks: self.options.allowed_networks.clone(),
        }
    }

    /// Starts a second server node on this server's database (same master key and admin
    /// token), as a scaled-out deployment would.
    pub async fn second_node(&self) -> TestServer {
        self.node_with_clock(self.clock.clone()).await
    }

    /// [`Self::second_node`] whose clock runs `seconds` ahead of this one's (behind, when
    /// negative): clocks of two machines disagreeing. It is moved on its own
    /// ([`Self::advance`] on it).
    pub async fn second_node_with_clock_ahead(&self, seconds: i64) -> TestServer {
        let clock = ManualClock::starting_at(self.clock.now().plus_seconds(seconds));
        self.node_with_clock(Arc::new(clock)).await
    }

    async fn node_with_clock(&self, clock: Arc<ManualClock>) -> TestServer {
        let mut node = TestServer {
            engine: self.engine,
            options: self.options.clone(),
            base_url: String::new(),
            admin_token: self.admin_token.clone(),
            clock,
            master_key: self.master_key.clone(),
            database: None,
            database_url: self.database_url.clone(),
            stop: None,
            task: None,
            vault: None,
            // Both nodes serve one public URL, as behind a load balancer: OAuth redirects
            // registered for it reach either.
            public_url: Some(self.base_url.clone()),
        };
        node.boot().await.expect("second node starts");
        node
    }

    /// Tries to start a second server on this server's database with another master key.
    pub async fn start_with_master_key(&self, master_key: MasterKey) -> Result<(), StartupError> {
        Server::build(self.settings(Arc::new(master_key)))
            .await
            .map(drop)
    }

    /// The server's master key (for tests that play someone holding it).
    pub fn master_key(&self) -> &MasterKey {
        &self.master_key
    }

    /// The running node's domain services (for operations no route reaches yet).
    pub fn vault(&self) -> &alter_core::vault::Vault {
        self.vault.as_ref().expect("the server is running")
    }

    /// Stops the server (in-flight requests finish) and starts it again on the same database.
    pub async fn restart(&mut self) {
        self.shutdown().await;
        self.boot().await.expect("server restarts");
    }

    /// Restarts the server with a new admin token (an operator rotating it).
    pub async fn restart_with_new_admin_token(&mut self) {
        self.admin_token = alter_crypto::keys::mint_token("alter_admin_")
            .expect("admin token")
            .expose_secret()
            .to_owned();
        self.restart().await;
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops the server, checks that no stored secret value leaked (into an error answer, the
    /// log or the SQLite files; see [`leaks`]) and drops its database.
    pub async fn stop(mut self) {
        self.shutdown().await;
        let files = self
            .database
            .as_ref()
            .map(ScratchDatabase::sqlite_files)
            .unwrap_or_default();
        let found = leaks::findings(&files);
        assert!(
            found.is_empty(),
            "stored secret values leaked into: {found:#?}"
        );
        if let Some(db) = self.database.take() {
            db.drop_now().await.expect("drop test database");
        }
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Base URL (with the base path).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The server's manual clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// The server's current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Moves the server's clock (and the clients' signing clock) forward.
    pub fn advance(&self, seconds: i64) {
        self.clock.advance_seconds(seconds);
    }

    /// The database under the server (only the first node owns it).
    pub fn database(&self) -> &ScratchDatabase {
        self.database
            .as_ref()
            .expect("the first node owns the database")
    }

    /// The operator admin token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// An admin API client.
    pub fn admin(&self) -> AdminClient {
        AdminClient::new(&self.base_url, self.admin_token.clone()).expect("admin client")
    }

    /// The operator delegates `grant` (an app-owned grant of `app_id`) to `agent_id`, with
    /// no TTL and not delegable; the delegation's grant id.
    pub async fn delegate_as_operator(&self, app_id: &str, grant: &str, agent_id: &str) -> String {
        let request = alter_proto::admin::CreateDelegationRequest {
            agent_id: agent_id.to_owned(),
            ttl_seconds: None,
            delegable: None,
        };
        self.admin()
            .delegate_grant(app_id, grant, &request)
            .await
            .expect("delegate")
            .grant_id
    }

    /// Creates an app with one full-scope runtime key.
    pub async fn new_app(&self, name: &str) -> TestApp {
        let admin = self.admin();
        let info = admin.create_app(name).await.expect("create app");
        let key = admin
            .mint_key(&info.id, &MintKeyRequest::default())
            .await
            .expect("mint key");
        TestApp { info, key }
    }

    /// A new app with an identity provider (groups claim `groups`) and a managed secret.
    pub async fn world(&self, name: &str) -> World {
        let app = self.new_app(name).await;
        let idp = idp::TestIdp::start().await;
        let admin = self.admin();
        let idp_info = admin
            .set_idp(
                &app.info.id,
                &alter_proto::admin::IdpRequest {
                    issuer: idp.issuer().to_owned(),
                    audiences: vec![idp.audience().to_owned()],
                    jwks_url: Some(idp.jwks_url()),
                    groups_claim: Some("groups".into()),
                    ..Default::default()
                },
            )
            .await
            .expect("set the identity provider");
        let secret = admin
            .create_secret(
                &app.info.id,
                &alter_proto::admin::CreateSecretRequest {
                    name: "Stripe Production".into(),
                    secret_type: "bearer".into(),
                    allowed_hosts: vec!["api.stripe.com".into()],
                    value: WORLD_SECRET_VALUE.into(),
                    ..Default::default()
                },
            )
            .await
            .expect("create a managed secret");
        World {
            app,
            idp,
            idp_id: idp_info.id,
            secret,
        }
    }

    /// A client of the end-user API for `app_id`, authenticated by `user_token`.
    pub fn user(&self, app_id: &str, user_token: &str) -> UserClient {
        UserClient::new(&self.base_url, app_id, user_token)
    }

    /// Mints another key of `app`.
    pub async fn mint_key(&self, app: &TestApp, request: MintKeyRequest) -> MintedKey {
        self.admin()
            .mint_key(&app.info.id, &request)
            .await
            .expect("mint key")
    }

    fn client_clock(&self) -> impl Fn() -> SystemTime + Send + Sync + 'static {
        let clock = self.clock.clone();
        move || system_time(clock.now())
    }

    /// An `App` client signing with the server's clock.
    pub fn app(&self, api_key: &str) -> App {
        App::builder(api_key)
            .base_url(&self.base_url)
            .clock(self.client_clock())
            .build_app()
            .expect("app client")
    }

    /// An `Agent` client signing with the server's clock.
    pub fn agent(&self, api_key: &str) -> Agent {
        Agent::builder(api_key)
            .base_url(&self.base_url)
            .clock(self.client_clock())
            .build_agent()
            .expect("agent client")
    }

    /// A hand-built signed request, for tests that tamper with the wire.
    pub fn raw(&self, api_key: &str, method: &str, path: &str) -> RawRequest {
        RawRequest::new(
            &self.base_url,
            api_key,
            method,
            path,
            self.clock.now().unix_seconds(),
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn system_time(t: Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u64::try_from(t.micros()).unwrap_or(0))
}
