//! A real server on a fresh database, with one app, one key and one managed secret.

use std::net::SocketAddr;
use std::sync::Arc;

use alter_core::audit::ChainKey;
use alter_core::keys::MintKey;
use alter_core::secrets::{NewSecret, SecretLimits};
use alter_core::time::SystemClock;
use alter_crypto::{ExposeSecret, MasterKey, SecretString};
use alter_server::{HttpLimits, Server, ServerSettings};
use alter_store::scratch::ScratchDatabase;
use alter_store::{SqlStore, StoreOptions};
use tokio::sync::oneshot;

use crate::Engine;

/// What a benchmark works against.
#[derive(Debug)]
pub struct Bench {
    /// The server's base URL.
    pub base_url: String,
    /// A full-scope app key.
    pub api_key: String,
    /// The app.
    pub app_id: alter_core::ids::AppId,
    /// A managed secret of the app.
    pub secret_id: alter_core::ids::SecretId,
    /// The same database, for bulk fixtures.
    pub store: SqlStore,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    database: ScratchDatabase,
}

impl Bench {
    /// Stops the server and drops the scratch database (a PostgreSQL schema would outlive the
    /// process otherwise).
    pub async fn finish(self) -> Result<(), BoxError> {
        let _ = self.stop.send(());
        self.server.await??;
        self.store.close().await;
        self.database.drop_now().await?;
        Ok(())
    }
}

type BoxError = Box<dyn std::error::Error>;

/// Starts the server and prepares the app.
pub async fn start(engine: Engine) -> Result<Bench, BoxError> {
    let database = match engine {
        Engine::Sqlite => ScratchDatabase::sqlite()?,
        Engine::Postgres => ScratchDatabase::postgres()
            .await?
            .ok_or("set ALTER_TEST_DATABASE_URL to benchmark PostgreSQL")?,
    };
    let admin_token = alter_crypto::keys::mint_token("alter_admin_")?;
    let master_key = Arc::new(MasterKey::generate()?);
    let server = Server::build(ServerSettings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: database.url().to_owned(),
        store_options: StoreOptions::default(),
        key_holder: master_key.clone(),
        admin_token_hash: alter_crypto::keys::token_hash(admin_token.expose_secret()),
        base_path: String::new(),
        public_url: None,
        max_body_bytes: 1024 * 1024,
        http: HttpLimits::default(),
        vault: alter_core::Settings::default(),
        clock: Arc::new(SystemClock),
        audit_checkpoint_interval: None,
        allowed_networks: alter_server::AllowedNetworks::loopback(),
        otlp_endpoint: None,
    })
    .await?;
    let vault = server.vault().clone();
    let app = vault.create_app("bench").await?;
    let key = vault.mint_app_key(app.id, MintKey::default()).await?;
    let secret = vault
        .create_secret(
            app.id,
            NewSecret {
                name: "Bench API".into(),
                secret_type: "bearer".into(),
                header: None,
                param: None,
                rules: Vec::new(),
                // The proxy benchmark calls an upstream on loopback.
                allowed_hosts: vec!["api.example.com".into(), "127.0.0.1".into()],
                limits: SecretLimits::default(),
                value: SecretString::from("bench-secret-value".to_owned()),
            },
        )
        .await?;
    let base_url = format!("http://{}", server.local_addr()?);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(server.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let chain = ChainKey::derive(&master_key);
    let store = SqlStore::connect(database.url(), &StoreOptions::default(), chain).await?;
    Ok(Bench {
        base_url,
        api_key: key.plaintext.expose_secret().to_owned(),
        app_id: app.id,
        secret_id: secret.id,
        store,
        stop,
        server,
        database,
    })
}
