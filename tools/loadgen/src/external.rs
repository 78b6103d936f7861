//! A release-built `alter server` in its own process on a fresh database (a temporary SQLite
//! file, or a fresh PostgreSQL database created for the run and dropped after), configured the
//! way an operator does: `alter server init` for the key files, `ALTER_*` variables, then apps,
//! keys and secrets through the admin API.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alter_core::audit::ChainKey;
use alter_core::ids::{AppId, SecretId};
use alter_crypto::MasterKey;
use alter_sdk::{App, Principal};
use alter_store::{SqlStore, StoreOptions};

use crate::Engine;

pub type BoxError = Box<dyn std::error::Error>;

/// One app of the running server: its full-scope key, a bearer secret and a system grant.
#[derive(Clone)]
pub struct BenchApp {
    pub app_id: AppId,
    pub api_key: String,
    pub secret_id: SecretId,
    pub grant_id: String,
}

impl std::fmt::Debug for BenchApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchApp")
            .field("app_id", &self.app_id)
            .field("grant_id", &self.grant_id)
            .finish_non_exhaustive()
    }
}

/// The `alter server` process.
pub struct AlterProcess {
    pub base_url: String,
    pub database_url: String,
    binary: PathBuf,
    dir: PathBuf,
    listen: String,
    admin_token: String,
    pg_database: Option<(String, String)>,
    child: Option<Child>,
    http: reqwest::Client,
}

impl std::fmt::Debug for AlterProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlterProcess")
            .field("base_url", &self.base_url)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The `alter` binary beside this one (both come from the same `cargo build --release`).
pub fn default_alter_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("alter")))
        .unwrap_or_else(|| PathBuf::from("alter"))
}

/// `psql -c` against `url`.
pub fn psql(url: &str, sql: &str) -> Result<(), BoxError> {
    let status = Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .status()?;
    if !status.success() {
        return Err(format!("psql failed: {sql}").into());
    }
    Ok(())
}

/// Splits `postgres://…/db` into (server url ending in `/`, db).
fn pg_base(url: &str) -> Result<String, BoxError> {
    let without_query = url.split('?').next().unwrap_or(url);
    let cut = without_query
        .rfind('/')
        .filter(|&i| i > "postgres://".len())
        .ok_or("ALTER_TEST_DATABASE_URL has no database name")?;
    Ok(without_query[..=cut].to_owned())
}

/// The PostgreSQL server of `ALTER_TEST_DATABASE_URL` (a fresh database is created on it).
pub fn pg_server() -> Result<String, BoxError> {
    let url = std::env::var("ALTER_TEST_DATABASE_URL")
        .map_err(|_| "set ALTER_TEST_DATABASE_URL to benchmark PostgreSQL")?;
    pg_base(&url)
}

impl AlterProcess {
    /// Creates the data directory (and database), the key files, and starts the server.
    pub async fn start(binary: &Path, engine: Engine, tag: &str) -> Result<Self, BoxError> {
        let dir = std::env::temp_dir().join(format!("alter-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let status = Command::new(binary)
            .args(["server", "init", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            return Err("alter server init failed".into());
        }
        let admin_token = std::fs::read_to_string(dir.join("admin.token"))?
            .trim()
            .to_owned();
        let (database_url, pg_database) = match engine {
            Engine::Sqlite => (format!("sqlite://{}", dir.join("alter.db").display()), None),
            Engine::Postgres => {
                let base = pg_server()?;
                let name = format!("alter_bench_{tag}_{}", std::process::id());
                psql(
                    &format!("{base}postgres"),
                    &format!("CREATE DATABASE {name}"),
                )?;
                // Without TLS, as OpenBao's connection (openbao.sh): on loopback TLS only
                // adds its cost to one side of the comparison.
                (format!("{base}{name}?sslmode=disable"), Some((base, name)))
            }
        };
        let listen = format!("127.0.0.1:{}", free_port()?);
        let mut process = AlterProcess {
            base_url: format!("http://{listen}"),
            database_url,
            binary: binary.to_owned(),
            dir,
            listen,
            admin_token,
            pg_database,
            child: None,
            http: reqwest::Client::new(),
        };
        process.spawn().await?;
        Ok(process)
    }

    async fn spawn(&mut self) -> Result<(), BoxError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))?;
        let child = Command::new(&self.binary)
            .arg("server")
            .env("ALTER_LISTEN", &self.listen)
            .env("ALTER_DATABASE_URL", &self.database_url)
            .env("ALTER_MASTER_KEY_FILE", self.dir.join("master.key"))
            .env("ALTER_ADMIN_TOKEN_FILE", self.dir.join("admin.token"))
            .env("ALTER_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self
                .http
                .get(format!("{}/readyz", self.base_url))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(format!(
                    "alter server exited ({status}); see {}",
                    self.dir.join("server.log").display()
                )
                .into());
            }
            if Instant::now() > deadline {
                return Err("alter server did not become ready".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process and starts it again on the same data (to measure a fresh process).
    pub async fn restart(&mut self) -> Result<(), BoxError> {
        self.kill();
        self.spawn().await
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `VmRSS` and `VmHWM` of the server process, in KiB.
    pub fn memory_kib(&self) -> Result<(u64, u64), BoxError> {
        let pid = self.pid().ok_or("server not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    async fn admin(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, BoxError> {
        let response = self
            .http
            .post(format!("{}/admin/v1{path}", self.base_url))
            .bearer_auth(&self.admin_token)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let value: serde_json::Value = response.json().await?;
        if !status.is_success() {
            return Err(format!("admin {path}: {status} {}", value["error"]).into());
        }
        Ok(value)
    }

    /// Creates an app with a full-scope key, a bearer secret and a system grant of it.
    pub async fn add_app(&self, name: &str) -> Result<BenchApp, BoxError> {
        let app = self
            .admin("/apps", serde_json::json!({ "name": name }))
            .await?;
        let app_id = app["id"].as_str().ok_or("no app id")?.to_owned();
        let key = self
            .admin(&format!("/apps/{app_id}/keys"), serde_json::json!({}))
            .await?;
        let api_key = key["api_key"].as_str().ok_or("no api key")?.to_owned();
        let secret = self
            .admin(
                &format!("/apps/{app_id}/secrets"),
                serde_json::json!({
                    "name": "Bench API",
                    "type": "bearer",
                    "allowed_hosts": ["api.example.com"],
                    "value": "bench-secret-value",
                }),
            )
            .await?;
        let secret_id = secret["id"].as_str().ok_or("no secret id")?.to_owned();
        let sdk = App::builder(api_key.as_str())
            .base_url(&self.base_url)
            .build_app()?;
        let grant = sdk
            .create_managed_secret_grant(&secret_id, Principal::system(), None)
            .await?;
        Ok(BenchApp {
            app_id: AppId::parse(&app_id).ok_or("bad app id")?,
            api_key,
            secret_id: SecretId::parse(&secret_id).ok_or("bad secret id")?,
            grant_id: grant.grant_id,
        })
    }

    /// A store on the same database, for bulk fixtures (it appends no audit event, so the
    /// chain key is a throwaway one).
    pub async fn store(&self) -> Result<SqlStore, BoxError> {
        let chain = ChainKey::derive(&MasterKey::generate()?);
        Ok(SqlStore::connect(&self.database_url, &StoreOptions::default(), chain).await?)
    }

    /// Stops the server and removes its data (directory and PostgreSQL database).
    pub fn finish(mut self) -> Result<(), BoxError> {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((base, name)) = self.pg_database.take() {
            psql(
                &format!("{base}postgres"),
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )?;
        }
        Ok(())
    }
}

impl Drop for AlterProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Counters of a PostgreSQL database, read with `psql`: the server's WAL position (bytes, for
/// the whole server: other users of it are counted too), `pg_stat_wal` (syncs, records, whole
/// server), this database's commits, and rows in the hot tables.
pub fn pg_counters(url: &str) -> Result<std::collections::BTreeMap<String, f64>, BoxError> {
    let sql = "SELECT 'wal_bytes', pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 \
        UNION ALL SELECT 'wal_sync', wal_sync::float8 FROM pg_stat_wal \
        UNION ALL SELECT 'wal_records', wal_records::float8 FROM pg_stat_wal \
        UNION ALL SELECT 'xact_commit', xact_commit::float8 FROM pg_stat_database WHERE datname = current_database() \
        UNION ALL SELECT 'audit_events', count(*)::float8 FROM audit_events \
        UNION ALL SELECT 'request_nonces', count(*)::float8 FROM request_nonces \
        UNION ALL SELECT 'grants_upd', coalesce(sum(n_tup_upd), 0)::float8 FROM pg_stat_user_tables WHERE relname = 'grants' \
        UNION ALL SELECT 'audit_heads_upd', coalesce(sum(n_tup_upd), 0)::float8 FROM pg_stat_user_tables WHERE relname = 'audit_heads'";
    let out = Command::new("psql")
        .args(["-At", url, "-c", sql])
        .output()?;
    if !out.status.success() {
        return Err(format!("psql: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let mut map = std::collections::BTreeMap::new();
    for line in String::from_utf8(out.stdout)?.lines() {
        if let Some((name, value)) = line.split_once('|') {
            map.insert(name.to_owned(), value.trim().parse::<f64>().unwrap_or(0.0));
        }
    }
    Ok(map)
}

/// `| table | rows | heap MiB | indexes MiB | bytes per row (all) |` for the hot tables.
pub fn pg_sizes(url: &str) -> Result<String, BoxError> {
    let sql = "SELECT c.relname, c.reltuples::bigint, \
        round(pg_relation_size(c.oid) / 1048576.0, 1), \
        round(pg_indexes_size(c.oid) / 1048576.0, 1), \
        CASE WHEN c.reltuples > 0 THEN round(pg_total_relation_size(c.oid) / c.reltuples) END \
        FROM pg_class c WHERE c.relname IN ('grants', 'audit_events', 'request_nonces') ORDER BY 1";
    let analyze = Command::new("psql")
        .args([
            "-q",
            url,
            "-c",
            "ANALYZE grants, audit_events, request_nonces",
        ])
        .status()?;
    if !analyze.success() {
        return Err("psql ANALYZE failed".into());
    }
    let out = Command::new("psql")
        .args(["-At", url, "-c", sql])
        .output()?;
    if !out.status.success() {
        return Err(format!("psql: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let mut table = String::from(
        "| table | rows (estimate) | heap MiB | indexes MiB | bytes per row, all |\n|---|---|---|---|---|\n",
    );
    for line in String::from_utf8(out.stdout)?.lines() {
        table.push_str(&format!("| {} |\n", line.replace('|', " | ")));
    }
    Ok(table)
}
