//! Configuration of `alter server`: defaults < TOML file < `ALTER_*` environment. Unknown keys
//! in the file are an error; secrets come from files (`*_file`) or the environment, never from
//! the TOML itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use alter_core::vault::Settings;
use serde::Deserialize;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Database tuning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Pool size (PostgreSQL) or reader connections (SQLite).
    pub max_connections: u32,
    /// SQLite `synchronous`: `FULL` or `NORMAL`.
    pub sqlite_synchronous: String,
    /// PostgreSQL `statement_timeout` of every pooled connection.
    pub statement_timeout_seconds: u64,
    /// Longest wait of a request for the group commit of its writes (answered 503).
    pub commit_wait_timeout_seconds: u64,
    /// Longest wait for a database connection, e.g. while the database restarts (answered
    /// 503).
    pub acquire_timeout_seconds: u64,
    /// PostgreSQL: a read replica (a hot standby's `postgres://…` URL) for the listings that
    /// may lag — audit queries, traces, the operator's grant pages. Unset: the primary.
    pub replica_url: Option<String>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            max_connections: 16,
            sqlite_synchronous: "FULL".into(),
            statement_timeout_seconds: 30,
            commit_wait_timeout_seconds: 30,
            acquire_timeout_seconds: 10,
            replica_url: None,
        }
    }
}

/// Limits on client connections and requests (see [`crate::HttpLimits`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Longest wait for a request's headers, and for the next request on an idle connection.
    pub header_read_timeout_seconds: u64,
    /// Longest wait for a request's body once its headers arrived (answered 408).
    pub body_read_timeout_seconds: u64,
    /// Most open client connections; further ones wait to be accepted.
    pub max_connections: usize,
    /// Most requests in progress; further ones are answered 503.
    pub max_concurrent_requests: usize,
    /// CIDRs of the reverse proxies in front of the server, whose `X-Forwarded-For` names
    /// the client. Empty: none, the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let limits = crate::HttpLimits::default();
        HttpConfig {
            header_read_timeout_seconds: limits.header_read_timeout.as_secs(),
            body_read_timeout_seconds: limits.body_read_timeout.as_secs(),
            max_connections: limits.max_connections,
            max_concurrent_requests: limits.max_concurrent_requests,
            trusted_proxies: Vec::new(),
        }
    }
}

impl HttpConfig {
    /// The trusted proxies, parsed.
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .map(|text| {
                text.trim().parse().map_err(|_| {
                    ConfigError(format!("http.trusted_proxies: {text:?} is not a CIDR"))
                })
            })
            .collect()
    }
}

/// What leaves the process: proxied calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// Networks (CIDRs) proxied calls may reach although the SSRF guard refuses them
    /// (loopback, private, link-local…): an internal API the vault should call. Empty: none.
    pub allowed_networks: Vec<String>,
    /// The most of a provider's answer a proxied call returns; the rest is cut.
    pub proxy_max_response_bytes: usize,
    /// Whether webhook endpoints may be plain `http://` URLs to any host (by default only
    /// `https://`, or `http://` to loopback).
    pub webhooks_allow_http: bool,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            allowed_networks: Vec::new(),
            proxy_max_response_bytes: Settings::default().proxy_max_response_bytes,
            webhooks_allow_http: false,
        }
    }
}

impl UpstreamConfig {
    /// The allowed networks, parsed.
    pub fn networks(&self) -> Result<alter_upstream::AllowedNetworks, ConfigError> {
        self.allowed_networks
            .iter()
            .map(|text| {
                alter_upstream::destination::parse_network(text.trim())
                    .map_err(|e| ConfigError(format!("upstream.allowed_networks: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(alter_upstream::AllowedNetworks::new)
    }
}

/// The configuration file (and environment).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// `sqlite://PATH` or `postgres://…`.
    pub database_url: String,
    /// File holding the base64 master key (mode 0600). `ALTER_MASTER_KEY` may give it directly.
    #[serde(default)]
    pub master_key_file: Option<PathBuf>,
    /// File holding the operator admin token. `ALTER_ADMIN_TOKEN` may give it directly.
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    /// `text` or `json`.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Where to export one OpenTelemetry span per request, over OTLP/HTTP with JSON (the
    /// collector's traces URL, e.g. `http://127.0.0.1:4318/v1/traces`); unset: no export.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// Path prefix the server is mounted under (e.g. `/api`), or empty.
    #[serde(default)]
    pub base_path: String,
    /// The URL clients and browsers reach the server at, path prefix included (e.g.
    /// `https://vault.example.com/api`), when it differs from the listen address (behind a
    /// proxy). OAuth redirect URIs are built from it: `{public_url}/oauth/callback`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Largest accepted request body.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Accepted clock skew of signed requests.
    #[serde(default = "default_timestamp_window")]
    pub timestamp_window_seconds: i64,
    /// Longest lifetime of a derived key.
    #[serde(default = "default_derived_ttl_hours")]
    pub max_derived_key_ttl_hours: i64,
    /// How old a user's group membership (since the `iat` of the token that named it) may be
    /// and still count when no fresh token comes with the request.
    #[serde(default = "default_group_membership_max_age")]
    pub group_membership_max_age_seconds: i64,
    /// An OAuth access token is refreshed when it expires within this many seconds.
    #[serde(default = "default_refresh_buffer")]
    pub oauth_refresh_buffer_seconds: i64,
    /// How far ahead an end user may extend a grant in the Wallet (days; never past the
    /// grant's own maximum or its secret's cap).
    #[serde(default = "default_max_grant_extension_days")]
    pub max_grant_extension_days: i64,
    /// How often every app's signed audit checkpoint is logged; 0 turns it off.
    #[serde(default = "default_audit_checkpoint_interval")]
    pub audit_checkpoint_interval_seconds: u64,
    /// Audit events older than this many days are removed by the prune job, behind a signed
    /// anchor; 0 (the default) keeps them for ever.
    #[serde(default)]
    pub audit_retention_days: u64,
    /// Database tuning.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Client connection limits.
    #[serde(default)]
    pub http: HttpConfig,
    /// Proxied calls.
    #[serde(default)]
    pub upstream: UpstreamConfig,
    /// Who holds the key that wraps the database's keys: the local master key (default) or
    /// an external service.
    #[serde(default)]
    pub key_holder: KeyHolderConfig,
}

/// `[key_holder]`: without a `transit` table the local master key (`master_key_file` /
/// `ALTER_MASTER_KEY`) holds the keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyHolderConfig {
    /// `[key_holder.transit]`: OpenBao / HashiCorp Vault Transit.
    #[serde(default)]
    pub transit: Option<TransitConfig>,
}

/// `[key_holder.transit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitConfig {
    /// The server, e.g. `https://bao.example.com:8200`.
    pub address: String,
    /// The Transit engine's mount.
    #[serde(default = "default_transit_mount")]
    pub mount: String,
    /// The key's name.
    pub key: String,
    /// File holding a token allowed to encrypt and decrypt with the key (mode 0600).
    /// `ALTER_KEY_HOLDER_TRANSIT_TOKEN` may give it directly.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

fn default_transit_mount() -> String {
    "transit".into()
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}

fn default_timestamp_window() -> i64 {
    300
}

fn default_derived_ttl_hours() -> i64 {
    24
}

fn default_group_membership_max_age() -> i64 {
    24 * 3600
}

fn default_max_grant_extension_days() -> i64 {
    90
}

fn default_refresh_buffer() -> i64 {
    60
}

fn default_audit_checkpoint_interval() -> u64 {
    3600
}

/// A configuration that cannot be used; the message says what to fix.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// `ALTER_*` variables and the key each overrides (`table.key` inside a table), with how to
/// read its value.
const ENV_KEYS: &[(&str, &str, EnvKind)] = &[
    ("ALTER_LISTEN", "listen", EnvKind::Text),
    ("ALTER_DATABASE_URL", "database_url", EnvKind::Text),
    ("ALTER_MASTER_KEY_FILE", "master_key_file", EnvKind::Text),
    ("ALTER_ADMIN_TOKEN_FILE", "admin_token_file", EnvKind::Text),
    ("ALTER_LOG_FORMAT", "log_format", EnvKind::Text),
    ("ALTER_OTLP_ENDPOINT", "otlp_endpoint", EnvKind::Text),
    ("ALTER_PUBLIC_URL", "public_url", EnvKind::Text),
    ("ALTER_BASE_PATH", "base_path", EnvKind::Text),
    ("ALTER_MAX_BODY_BYTES", "max_body_bytes", EnvKind::Integer),
    (
        "ALTER_TIMESTAMP_WINDOW_SECONDS",
        "timestamp_window_seconds",
        EnvKind::Integer,
    ),
    (
        "ALTER_MAX_DERIVED_KEY_TTL_HOURS",
        "max_derived_key_ttl_hours",
        EnvKind::Integer,
    ),
    (
        "ALTER_GROUP_MEMBERSHIP_MAX_AGE_SECONDS",
        "group_membership_max_age_seconds",
        EnvKind::Integer,
    ),
    (
        "ALTER_OAUTH_REFRESH_BUFFER_SECONDS",
        "oauth_refresh_buffer_seconds",
        EnvKind::Integer,
    ),
    (
        "ALTER_MAX_GRANT_EXTENSION_DAYS",
        "max_grant_extension_days",
        EnvKind::Integer,
    ),
    (
        "ALTER_AUDIT_CHECKPOINT_INTERVAL_SECONDS",
        "audit_checkpoint_interval_seconds",
        EnvKind::Integer,
    ),
    (
        "ALTER_DATABASE_REPLICA_URL",
        "database.replica_url",
        EnvKind::Text,
    ),
    (
        "ALTER_AUDIT_RETENTION_DAYS",
        "audit_retention_days",
        EnvKind::Integer,
    ),
    (
        "ALTER_DATABASE_STATEMENT_TIMEOUT_SECONDS",
        "database.statement_timeout_seconds",
        EnvKind::Integer,
    ),
    (
        "ALTER_DATABASE_COMMIT_WAIT_TIMEOUT_SECONDS",
        "database.commit_wait_timeout_seconds",
        EnvKind::Integer,
    ),
    (
        "ALTER_DATABASE_ACQUIRE_TIMEOUT_SECONDS",
        "database.acquire_timeout_seconds",
        EnvKind::Integer,
    ),
    (
        "ALTER_HTTP_HEADER_READ_TIMEOUT_SECONDS",
        "http.header_read_timeout_seconds",
        EnvKind::Integer,
    ),
    (
        "ALTER_HTTP_BODY_READ_TIMEOUT_SECONDS",
        "http.body_read_timeout_seconds",
        EnvKind::Integer,
    ),
    (
        "ALTER_HTTP_MAX_CONNECTIONS",
        "http.max_connections",
        EnvKind::Integer,
    ),
    (
        "ALTER_HTTP_MAX_CONCURRENT_REQUESTS",
        "http.max_concurrent_requests",
        EnvKind::Integer,
    ),
    (
        "ALTER_HTTP_TRUSTED_PROXIES",
        "http.trusted_proxies",
        EnvKind::List,
    ),
    (
        "ALTER_UPSTREAM_ALLOWED_NETWORKS",
        "upstream.allowed_networks",
        EnvKind::List,
    ),
    (
        "ALTER_KEY_HOLDER_TRANSIT_ADDRESS",
        "key_holder.transit.address",
        EnvKind::Text,
    ),
    (
        "ALTER_KEY_HOLDER_TRANSIT_MOUNT",
        "key_holder.transit.mount",
        EnvKind::Text,
    ),
    (
        "ALTER_KEY_HOLDER_TRANSIT_KEY",
        "key_holder.transit.key",
        EnvKind::Text,
    ),
    (
        "ALTER_KEY_HOLDER_TRANSIT_TOKEN_FILE",
        "key_holder.transit.token_file",
        EnvKind::Text,
    ),
];

/// An absolute `http(s)` URL without userinfo, query, fragment or trailing slash.
fn public_url_ok(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.host().is_some()
            && url.username().is_empty()
            && url.password().is_none()
            && url.query().is_none()
            && url.fragment().is_none()
            && !text.ends_with('/')
    })
}

#[derive(Debug, Clone, Copy)]
enum EnvKind {
    Text,
    Integer,
    /// Comma-separated; empty means an empty list.
    List,
}

impl Config {
    /// Reads the file (if any) and overlays the environment.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str::<toml::Table>(&text)
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        for (var, key, kind) in ENV_KEYS {
            if let Some(value) = env(var) {
                let value = match kind {
                    EnvKind::Text => toml::Value::String(value),
                    EnvKind::Integer => toml::Value::Integer(
                        value
                            .trim()
                            .parse()
                            .map_err(|_| ConfigError(format!("{var} must be an integer")))?,
                    ),
                    EnvKind::List => toml::Value::Array(
                        value
                            .split(',')
                            .map(str::trim)
                            .filter(|item| !item.is_empty())
                            .map(|item| toml::Value::String(item.to_owned()))
                            .collect(),
                    ),
                };
                insert_at(&mut table, key, value)?;
            }
        }
        let config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError(e.message().to_owned()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let base = &self.base_path;
        if !base.is_empty() && (!base.starts_with('/') || base.ends_with('/')) {
            return Err(ConfigError(
                "base_path must start with / and not end with / (e.g. /api)".into(),
            ));
        }
        if let Some(url) = &self.public_url
            && !public_url_ok(url)
        {
            return Err(ConfigError(
                "public_url must be an absolute http(s) URL without query, fragment or trailing / (e.g. https://vault.example.com)".into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError("max_body_bytes must be at least 1024".into()));
        }
        in_range(
            "timestamp_window_seconds",
            self.timestamp_window_seconds,
            30..=3600,
        )?;
        in_range(
            "max_derived_key_ttl_hours",
            self.max_derived_key_ttl_hours,
            1..=24 * 30,
        )?;
        in_range(
            "group_membership_max_age_seconds",
            self.group_membership_max_age_seconds,
            0..=30 * 24 * 3600,
        )?;
        in_range(
            "max_grant_extension_days",
            self.max_grant_extension_days,
            1..=36_500,
        )?;
        in_range(
            "oauth_refresh_buffer_seconds",
            self.oauth_refresh_buffer_seconds,
            0..=3600,
        )?;
        if self.audit_retention_days > 36_500 {
            return Err(ConfigError(
                "audit_retention_days must be at most 36500 (0 keeps events for ever)".into(),
            ));
        }
        for (key, value) in [
            (
                "database.statement_timeout_seconds",
                self.database.statement_timeout_seconds,
            ),
            (
                "database.commit_wait_timeout_seconds",
                self.database.commit_wait_timeout_seconds,
            ),
            (
                "database.acquire_timeout_seconds",
                self.database.acquire_timeout_seconds,
            ),
            (
                "http.header_read_timeout_seconds",
                self.http.header_read_timeout_seconds,
            ),
            (
                "http.body_read_timeout_seconds",
                self.http.body_read_timeout_seconds,
            ),
        ] {
            in_range(key, value, 1..=3600)?;
        }
        self.upstream.networks()?;
        self.http.trusted_proxies()?;
        if self.upstream.proxy_max_response_bytes == 0 {
            return Err(ConfigError(
                "upstream.proxy_max_response_bytes must be at least 1".into(),
            ));
        }
        if self.http.max_connections == 0 || self.http.max_concurrent_requests == 0 {
            return Err(ConfigError(
                "http.max_connections and http.max_concurrent_requests must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Fails unless `value` of setting `key` lies in `range`.
fn in_range<T>(key: &str, value: T, range: std::ops::RangeInclusive<T>) -> Result<(), ConfigError>
where
    T: PartialOrd + std::fmt::Display,
{
    if range.contains(&value) {
        return Ok(());
    }
    Err(ConfigError(format!(
        "{key} must be between {} and {}",
        range.start(),
        range.end()
    )))
}

/// Sets `path` (`key`, or `table.key`) in `table`, creating the inner table if needed.
fn insert_at(table: &mut toml::Table, path: &str, value: toml::Value) -> Result<(), ConfigError> {
    match path.split_once('.') {
        None => {
            table.insert(path.to_owned(), value);
            Ok(())
        }
        Some((inner, key)) => match table
            .entry(inner)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        {
            toml::Value::Table(inner) => insert_at(inner, key, value),
            _ => Err(ConfigError(format!("{inner} must be a table"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn file_then_environment() {
        let f = file(
            "database_url = \"sqlite:///tmp/a.db\"\nlisten = \"0.0.0.0:9000\"\n[database]\nmax_connections = 4\n",
        );
        let c = Config::load(Some(f.path()), env(&[("ALTER_LISTEN", "127.0.0.1:7000")])).unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.database_url, "sqlite:///tmp/a.db");
        assert_eq!(c.database.max_connections, 4);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.max_body_bytes, 1024 * 1024);
        assert_eq!(c.group_membership_max_age_seconds, 24 * 3600);
        assert_eq!(c.http.max_concurrent_requests, 256);
        assert_eq!(c.audit_checkpoint_interval_seconds, 3600);
        let off = env(&[
            ("ALTER_DATABASE_URL", "sqlite://x"),
            ("ALTER_AUDIT_CHECKPOINT_INTERVAL_SECONDS", "0"),
        ]);
        assert_eq!(
            Config::load(None, off)
                .unwrap()
                .audit_checkpoint_interval_seconds,
            0
        );
    }

    #[test]
    fn group_membership_max_age_from_file_or_environment() {
        let f =
            file("database_url = \"sqlite:///tmp/a.db\"\ngroup_membership_max_age_seconds = 600\n");
        let c = Config::load(Some(f.path()), env(&[])).unwrap();
        assert_eq!(c.group_membership_max_age_seconds, 600);
        let c = Config::load(
            Some(f.path()),
            env(&[("ALTER_GROUP_MEMBERSHIP_MAX_AGE_SECONDS", "0")]),
        )
        .unwrap();
        assert_eq!(c.group_membership_max_age_seconds, 0);
        for bad in ["-1", "2592001"] {
            let vars = [("ALTER_GROUP_MEMBERSHIP_MAX_AGE_SECONDS", bad)];
            assert!(Config::load(Some(f.path()), env(&vars)).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_come_from_tables_and_their_environment_variables() {
        let f = file(
            "database_url = \"sqlite:///tmp/a.db\"\n[database]\nmax_connections = 4\n[http]\nheader_read_timeout_seconds = 5\n",
        );
        let c = Config::load(
            Some(f.path()),
            env(&[
                ("ALTER_DATABASE_STATEMENT_TIMEOUT_SECONDS", "7"),
                ("ALTER_HTTP_MAX_CONCURRENT_REQUESTS", "8"),
            ]),
        )
        .unwrap();
        assert_eq!(c.database.max_connections, 4, "the file's table is kept");
        assert_eq!(c.database.statement_timeout_seconds, 7);
        assert_eq!(c.http.header_read_timeout_seconds, 5);
        assert_eq!(c.http.max_concurrent_requests, 8);
        assert_eq!(c.http.body_read_timeout_seconds, 30);

        let unknown = file("database_url = \"sqlite:///tmp/a.db\"\n[http]\nheader_timeout = 5\n");
        assert!(Config::load(Some(unknown.path()), env(&[])).is_err());
        for (var, value) in [
            ("ALTER_HTTP_BODY_READ_TIMEOUT_SECONDS", "0"),
            ("ALTER_DATABASE_COMMIT_WAIT_TIMEOUT_SECONDS", "0"),
            ("ALTER_HTTP_MAX_CONNECTIONS", "0"),
        ] {
            let e = Config::load(
                None,
                env(&[("ALTER_DATABASE_URL", "sqlite://x"), (var, value)]),
            )
            .unwrap_err();
            assert!(e.to_string().contains("at"), "{var}: {e}");
        }
    }

    #[test]
    fn allowed_networks_from_file_or_environment() {
        let f = file(
            "database_url = \"sqlite://x\"\n[upstream]\nallowed_networks = [\"10.0.0.0/8\"]\n",
        );
        let c = Config::load(Some(f.path()), env(&[])).unwrap();
        assert_eq!(c.upstream.networks().unwrap().networks().len(), 1);
        let c = Config::load(
            Some(f.path()),
            env(&[(
                "ALTER_UPSTREAM_ALLOWED_NETWORKS",
                " 192.168.0.0/16, fd00::/8 ",
            )]),
        )
        .unwrap();
        assert_eq!(c.upstream.allowed_networks, ["192.168.0.0/16", "fd00::/8"]);
        let c = Config::load(
            Some(f.path()),
            env(&[("ALTER_UPSTREAM_ALLOWED_NETWORKS", "")]),
        )
        .unwrap();
        assert!(c.upstream.networks().unwrap().networks().is_empty());
        for bad in ["intranet", "10.0.0.0/40"] {
            let vars = [("ALTER_UPSTREAM_ALLOWED_NETWORKS", bad)];
            assert!(Config::load(Some(f.path()), env(&vars)).is_err(), "{bad}");
        }
        let unknown = file("database_url = \"sqlite://x\"\n[upstream]\nallow = []\n");
        assert!(Config::load(Some(unknown.path()), env(&[])).is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let f = file("database_url = \"sqlite:///tmp/a.db\"\nlisten_addr = \"x\"\n");
        let e = Config::load(Some(f.path()), env(&[])).unwrap_err();
        assert!(e.to_string().contains("listen_addr"), "{e}");
        let f = file("database_url = \"sqlite:///tmp/a.db\"\n[database]\npool = 3\n");
        assert!(Config::load(Some(f.path()), env(&[])).is_err());
        assert!(
            Config::load(None, env(&[])).is_err(),
            "database_url is required"
        );
        assert!(
            Config::load(
                None,
                env(&[
                    ("ALTER_DATABASE_URL", "sqlite://x"),
                    ("ALTER_MAX_BODY_BYTES", "lots")
                ])
            )
            .is_err()
        );
        assert!(
            Config::load(
                None,
                env(&[
                    ("ALTER_DATABASE_URL", "sqlite://x"),
                    ("ALTER_BASE_PATH", "api/")
                ])
            )
            .is_err()
        );
    }
}
