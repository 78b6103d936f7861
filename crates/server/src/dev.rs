//! `alter dev`: the one-command start. Embedded SQLite and a generated master key in a data
//! directory, a dev app with one key, and an admin token — all kept across restarts, so the
//! same credentials are printed every time. The credentials are saved sealed under the master
//! key, never in plaintext.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alter_core::Settings;
use alter_core::keys::MintKey;
use alter_core::time::SystemClock;
use alter_crypto::{ExposeSecret, MasterKey};
use alter_proto::REDACTED;
use alter_store::StoreOptions;
use serde::{Deserialize, Serialize};

use crate::key_files::{read_master_key, write_private};
use crate::{HttpLimits, Server, ServerSettings, StartupError};

const MASTER_KEY_FILE: &str = "master.key";
const DATABASE_FILE: &str = "alter.db";
const CREDENTIALS_FILE: &str = "dev-credentials.sealed";
const CREDENTIALS_PURPOSE: &str = "dev-credentials";

/// What `alter dev` prints as its first line.
#[derive(Clone, Serialize, Deserialize)]
pub struct DevCredentials {
    /// Where the server listens.
    pub base_url: String,
    /// The dev app.
    pub app_id: String,
    /// A key of the dev app with every scope.
    pub api_key: String,
    /// The operator admin token.
    pub admin_token: String,
    /// The data directory.
    pub data_dir: String,
}

impl std::fmt::Debug for DevCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCredentials")
            .field("base_url", &self.base_url)
            .field("app_id", &self.app_id)
            .field("api_key", &REDACTED)
            .field("admin_token", &REDACTED)
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Saved {
    app_id: String,
    api_key: String,
    admin_token: String,
}

/// Prepares the data directory and a server; returns it with the credentials to print. The
/// database is SQLite in the data directory unless `database_url` names another; spans are
/// exported to `otlp_endpoint` as `alter server` does (`ALTER_OTLP_ENDPOINT`).
pub async fn prepare(
    listen: SocketAddr,
    data_dir: &Path,
    database_url: Option<&str>,
    otlp_endpoint: Option<&str>,
) -> Result<(Server, DevCredentials), StartupError> {
    let fail = |what: &str, e: std::io::Error| {
        StartupError::Files(format!("{what} {}: {e}", data_dir.display()))
    };
    create_private_dir(data_dir).map_err(|e| fail("cannot create", e))?;
    let data_dir = data_dir
        .canonicalize()
        .map_err(|e| fail("cannot resolve", e))?;
    let master = Arc::new(master_key(&master_key_file(&data_dir))?);
    let credentials_path = data_dir.join(CREDENTIALS_FILE);
    let saved = read_saved(&master, &credentials_path)?;
    let admin_token = match &saved {
        Some(saved) => saved.admin_token.clone(),
        None => alter_crypto::keys::mint_token("alter_admin_")?
            .expose_secret()
            .to_owned(),
    };
    let server = Server::build(ServerSettings {
        listen,
        database_url: database_url.map_or_else(|| self::database_url(&data_dir), str::to_owned),
        store_options: StoreOptions::default(),
        key_holder: master.clone(),
        admin_token_hash: alter_crypto::keys::token_hash(&admin_token),
        base_path: String::new(),
        public_url: None,
        max_body_bytes: 1024 * 1024,
        http: HttpLimits::default(),
        vault: Settings::default(),
        clock: Arc::new(SystemClock),
        audit_checkpoint_interval: Some(Duration::from_secs(3600)),
        // Local upstreams are what a developer proxies to.
        allowed_networks: alter_upstream::AllowedNetworks::loopback(),
        otlp_endpoint: crate::telemetry::otlp_endpoint(otlp_endpoint),
    })
    .await?;
    let saved = match saved {
        Some(saved) if app_exists(&server, &saved.app_id).await => saved,
        _ => {
            let saved = bootstrap(&server, admin_token).await?;
            let json =
                serde_json::to_vec(&saved).map_err(|e| StartupError::Files(e.to_string()))?;
            let sealed = master.seal_file(CREDENTIALS_PURPOSE, &json)?;
            let _ = std::fs::remove_file(&credentials_path);
            write_private(&credentials_path, &sealed)
                .map_err(|e| fail("cannot write credentials in", e))?;
            saved
        }
    };
    let addr = server
        .local_addr()
        .map_err(|e| fail("cannot read the listen address for", e))?;
    let credentials = DevCredentials {
        base_url: format!("http://{addr}"),
        app_id: saved.app_id,
        api_key: saved.api_key,
        admin_token: saved.admin_token,
        data_dir: data_dir.display().to_string(),
    };
    Ok((server, credentials))
}

/// The database URL of `alter dev` in `data_dir` (without `--database-url`).
pub fn database_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join(DATABASE_FILE).display())
}

/// The master key file of `alter dev` in `data_dir`.
pub fn master_key_file(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join(MASTER_KEY_FILE)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn master_key(path: &Path) -> Result<MasterKey, StartupError> {
    if path.exists() {
        return read_master_key(path);
    }
    let key = MasterKey::generate()?;
    write_private(path, key.encode().expose_secret().as_bytes())
        .map_err(|e| StartupError::Files(format!("cannot write {}: {e}", path.display())))?;
    Ok(key)
}

fn read_saved(master: &MasterKey, path: &Path) -> Result<Option<Saved>, StartupError> {
    let Ok(sealed) = std::fs::read(path) else {
        return Ok(None);
    };
    let plain = master
        .open_file(CREDENTIALS_PURPOSE, &sealed)
        .map_err(|_| {
            StartupError::MasterKey(format!(
                "{} cannot be opened with this data directory's master key",
                path.display()
            ))
        })?;
    serde_json::from_slice(&plain)
        .map(Some)
        .map_err(|e| StartupError::Files(format!("{}: {e}", path.display())))
}

async fn app_exists(server: &Server, app_id: &str) -> bool {
    match alter_core::ids::AppId::parse(app_id) {
        Some(id) => server.vault().get_app(id).await.is_ok(),
        None => false,
    }
}

async fn bootstrap(server: &Server, admin_token: String) -> Result<Saved, StartupError> {
    let fail = |e: alter_core::Error| StartupError::Database(e.to_string());
    let app = server.vault().create_app("dev").await.map_err(fail)?;
    let key = server
        .vault()
        .mint_app_key(
            app.id,
            MintKey {
                name: Some("dev".into()),
                ..MintKey::default()
            },
        )
        .await
        .map_err(fail)?;
    Ok(Saved {
        app_id: app.id.to_string(),
        api_key: key.plaintext.expose_secret().to_owned(),
        admin_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key_and_the_admin_token() {
        let credentials = DevCredentials {
            base_url: "http://127.0.0.1:8080".into(),
            app_id: "app".into(),
            api_key: "alter_rk_devKeySecret".into(),
            admin_token: "alter_admin_devTokenSecret".into(),
            data_dir: ".alter".into(),
        };
        let shown = format!("{credentials:?}");
        assert!(
            !shown.contains("devKeySecret") && !shown.contains("devTokenSecret"),
            "{shown}"
        );
        assert!(shown.contains("127.0.0.1:8080"));
    }
}
