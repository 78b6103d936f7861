//! The `alter` binary, black-box: `alter dev`, `alter server` and the operator commands, run as
//! real processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use alter_store::scratch::ScratchDatabase;
use serde_json::Value;

#[path = "cli/cluster.rs"]
mod cluster;
#[path = "cli/faults.rs"]
mod faults;
#[path = "cli/keys.rs"]
mod keys;
#[path = "cli/own_postgres.rs"]
mod own_postgres;
#[path = "cli/replica.rs"]
mod replica;
#[path = "cli/telemetry.rs"]
mod telemetry;
#[path = "cli/webhooks.rs"]
mod webhooks;

const ALTER: &str = env!("CARGO_BIN_EXE_alter");

/// A running `alter` process, killed when dropped.
struct Running {
    child: Child,
    first_line: Value,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn base_url(&self) -> String {
        self.first_line["base_url"].as_str().unwrap().to_owned()
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let (tx, rx) = mpsc::channel();
        let mut child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        std::thread::spawn(move || tx.send(child.wait().unwrap()));
        rx.recv_timeout(Duration::from_secs(20))
            .expect("exits after SIGTERM")
    }
}

/// Reads lines from `reader` until one satisfies `pick` (with a deadline).
fn wait_for_line(
    reader: impl std::io::Read + Send + 'static,
    pick: impl Fn(&str) -> Option<Value> + Send + 'static,
) -> Value {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Keep draining after the match, so the child never writes to a closed pipe.
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if let Some(value) = pick(&line) {
                let _ = tx.send(value);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the expected line was printed")
}

fn dev(data: &Path, extra: &[&str]) -> Running {
    dev_with_stderr(data, extra, Stdio::null())
}

fn dev_with_stderr(data: &Path, extra: &[&str], stderr: Stdio) -> Running {
    let mut child = Command::new(ALTER)
        .args(["dev", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .env_remove("ALTER_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first_line = wait_for_line(stdout, |line| {
        Some(serde_json::from_str(line).expect("first line is JSON"))
    });
    Running { child, first_line }
}

fn alter(args: &[&str], addr: &str, token: &str) -> Output {
    Command::new(ALTER)
        .args(args)
        .env("ALTER_ADDR", addr)
        .env("ALTER_ADMIN_TOKEN", token)
        .output()
        .unwrap()
}

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("--json prints JSON")
}

#[test]
fn alter_dev_prints_its_credentials_and_keeps_them_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = dev(&data, &[]);
    let line = first.first_line.clone();
    for field in ["base_url", "app_id", "api_key", "admin_token", "data_dir"] {
        assert!(
            line[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}: {line}"
        );
    }
    let base_url = first.base_url();
    assert!(base_url.starts_with("http://127.0.0.1:") && !base_url.ends_with(":0"));
    assert!(line["api_key"].as_str().unwrap().starts_with("alter_rk_"));
    let health = reqwest::blocking::get(format!("{base_url}/healthz")).unwrap();
    assert_eq!(health.status(), 200);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |f: &str| {
            std::fs::metadata(data.join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("master.key"), 0o600);
        assert_eq!(mode("alter.db"), 0o600);
        assert_eq!(mode("dev-credentials.sealed"), 0o600);
    }
    assert!(first.terminate().success(), "SIGTERM shuts down cleanly");

    let second = dev(&data, &[]);
    for field in ["app_id", "api_key", "admin_token"] {
        assert_eq!(second.first_line[field], line[field], "{field} is kept");
    }
    let keys = alter(
        &["key", "list", "--json"],
        &second.base_url(),
        line["admin_token"].as_str().unwrap(),
    );
    assert_eq!(stdout_json(&keys).as_array().unwrap().len(), 1);
}

#[test]
fn the_operator_cli_manages_apps_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev(&dir.path().join("data"), &[]);
    let addr = server.base_url();
    let token = server.first_line["admin_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = |args: &[&str]| alter(args, &addr, &token);

    // With one app, --app is not needed.
    let minted = stdout_json(&run(&[
        "key",
        "mint",
        "--name",
        "ci",
        "--scope",
        "keys:read",
        "--json",
    ]));
    assert!(minted["api_key"].as_str().unwrap().starts_with("alter_rk_"));
    assert_eq!(minted["scopes"], serde_json::json!(["keys:read"]));
    let key_id = minted["id"].as_str().unwrap().to_owned();

    let table = run(&["key", "list"]);
    assert!(table.status.success());
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.starts_with("ID "), "{text}");
    assert!(text.contains("ci") && text.contains("active"), "{text}");
    assert!(
        !text.contains(minted["api_key"].as_str().unwrap()),
        "plaintext shown once"
    );

    let revoked = stdout_json(&run(&["key", "revoke", &key_id, "--json"]));
    assert!(revoked["revoked_at"].is_string());
    let keys = stdout_json(&run(&["key", "list", "--json"]));
    let dev_key = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "dev")
        .unwrap();
    let rotated = stdout_json(&run(&[
        "key",
        "rotate",
        dev_key["id"].as_str().unwrap(),
        "--grace-seconds",
        "60",
        "--json",
    ]));
    assert_ne!(rotated["id"], dev_key["id"]);
    assert!(
        rotated["api_key"]
            .as_str()
            .unwrap()
            .starts_with("alter_rk_")
    );

    let created = stdout_json(&run(&["app", "create", "--name", "second", "--json"]));
    assert_eq!(created["name"], "second");
    let apps = stdout_json(&run(&["app", "list", "--json"]));
    assert_eq!(apps.as_array().unwrap().len(), 2);
    let ambiguous = run(&["key", "list"]);
    assert_eq!(ambiguous.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&ambiguous.stderr).contains("--app"));
    let second_keys = stdout_json(&run(&[
        "key",
        "list",
        "--app",
        created["id"].as_str().unwrap(),
        "--json",
    ]));
    assert!(second_keys.as_array().unwrap().is_empty());

    // Stable exit codes.
    let missing = run(&[
        "key",
        "revoke",
        &uuid::Uuid::new_v4().to_string(),
        "--app",
        created["id"].as_str().unwrap(),
    ]);
    assert_eq!(
        missing.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    let unauthorized = alter(&["app", "list"], &addr, "wrong-token");
    assert_eq!(unauthorized.status.code(), Some(3));
    let invalid = run(&["app", "create", "--name", " "]);
    assert_eq!(invalid.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("name"));
    let usage = run(&["key", "mint", "--type", "xx"]);
    assert_eq!(usage.status.code(), Some(2));
    let unreachable = alter(&["app", "list"], "http://127.0.0.1:9", &token);
    assert_eq!(unreachable.status.code(), Some(1));
}

/// Starts `alter server` with JSON logs and returns it once it logs its address.
fn server(config: &Path, env: &[(&str, &str)]) -> Running {
    let mut command = Command::new(ALTER);
    command.args(["server", "--config"]).arg(config);
    for (k, v) in env {
        command.env(k, v);
    }
    serve_logged(command)
}

/// Spawns `command` (an `alter server` logging JSON) and returns it once it logs its address.
fn serve_logged(mut command: Command) -> Running {
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let addr = wait_for_line(stderr, |line| {
        let value: Value = serde_json::from_str(line).ok()?;
        value["fields"]["addr"].as_str().map(Value::from)
    });
    Running {
        child,
        first_line: serde_json::json!({ "base_url": format!("http://{}", addr.as_str().unwrap()) }),
    }
}

/// `alter server init` in `dir/secrets` and a JSON-logging configuration on `database_url`;
/// the admin token and the configuration file.
fn server_config(dir: &Path, database_url: &str) -> (String, std::path::PathBuf) {
    let init = Command::new(ALTER)
        .args(["server", "init", "--dir"])
        .arg(dir.join("secrets"))
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let token = std::fs::read_to_string(dir.join("secrets/admin.token")).unwrap();
    let config = dir.join("alter.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndatabase_url = \"{database_url}\"\nlog_format = \"json\"\nmaster_key_file = \"{}\"\nadmin_token_file = \"{}\"\n",
            dir.join("secrets/master.key").display(),
            dir.join("secrets/admin.token").display()
        ),
    )
    .unwrap();
    (token, config)
}

/// A SQLite file and, with `ALTER_TEST_DATABASE_URL`, a fresh PostgreSQL schema.
fn databases() -> Vec<ScratchDatabase> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut databases = vec![ScratchDatabase::sqlite().unwrap()];
    if let Some(pg) = runtime
        .block_on(ScratchDatabase::postgres())
        .expect("ALTER_TEST_DATABASE_URL is set but PostgreSQL is unreachable")
    {
        databases.push(pg);
    }
    databases
}

#[test]
fn alter_server_runs_from_a_config_file() {
    for database in databases() {
        let dir = tempfile::tempdir().unwrap();
        let (token, config) = server_config(dir.path(), database.url());
        // Migrating never listens: it works while the configured port is taken (by a
        // serving node, say).
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let migrate = Command::new(ALTER)
            .args(["server", "migrate", "--config"])
            .arg(&config)
            .env("ALTER_LISTEN", taken.local_addr().unwrap().to_string())
            .output()
            .unwrap();
        assert!(
            migrate.status.success(),
            "{}",
            String::from_utf8_lossy(&migrate.stderr)
        );

        let running = server(&config, &[]);
        let base = running.base_url();
        let ready = reqwest::blocking::get(format!("{base}/readyz")).unwrap();
        assert_eq!(ready.status(), 200);
        let created = stdout_json(&alter(
            &["app", "create", "--name", "prod", "--json"],
            &base,
            &token,
        ));
        assert_eq!(created["name"], "prod");
        assert!(running.terminate().success());
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(database.drop_now())
            .unwrap();
    }
}

#[test]
fn alter_server_refuses_bad_configuration_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alter.toml");
    let run = |text: &str, env: &[(&str, &str)]| {
        std::fs::write(&config, text).unwrap();
        let mut command = Command::new(ALTER);
        command.args(["server", "--config"]).arg(&config);
        for (k, v) in env {
            command.env(k, v);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let url = format!(
        "database_url = \"sqlite://{}\"\n",
        dir.path().join("a.db").display()
    );
    assert!(run(&format!("{url}colour = \"blue\"\n"), &[]).contains("colour"));
    assert!(run(&url, &[]).contains("master_key_file"));
    // The environment's admin token is held to the file's minimum length. (The port is taken,
    // so a server that accepted the token would fail on listening instead.)
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let short_token = run(
        &url,
        &[
            ("ALTER_MASTER_KEY", &format!("{}=", "A".repeat(43))),
            ("ALTER_ADMIN_TOKEN", &"t".repeat(31)),
            ("ALTER_LISTEN", &taken.local_addr().unwrap().to_string()),
        ],
    );
    assert!(
        short_token.contains("ALTER_ADMIN_TOKEN: must be at least 32 characters"),
        "{short_token}"
    );
    let wrong_key = run(
        &url,
        &[
            ("ALTER_MASTER_KEY", "c2hvcnQ="),
            ("ALTER_ADMIN_TOKEN", &"t".repeat(40)),
        ],
    );
    assert!(wrong_key.contains("32 bytes"), "{wrong_key}");
    assert!(
        run(
            "database_url = \"mysql://x\"\n",
            &[("ALTER_MASTER_KEY", "x")]
        )
        .contains("error")
    );
}

#[cfg(unix)]
#[test]
fn alter_server_keeps_its_sqlite_files_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("alter.db");
    let (token, config) = server_config(dir.path(), &format!("sqlite://{}", db.display()));
    // Under a umask that would leave new files readable by everyone.
    let mut command = Command::new("sh");
    command
        .args(["-c", "umask 022 && exec \"$0\" server --config \"$1\""])
        .arg(ALTER)
        .arg(&config);
    let running = serve_logged(command);
    let created = alter(
        &["app", "create", "--name", "prod", "--json"],
        &running.base_url(),
        &token,
    );
    assert!(created.status.success());
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", db.display());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{path}: {mode:o}");
    }
    assert!(running.terminate().success());
}

/// `alter dev` on one test database, with its stderr kept in a file, and the CLI pointed at it.
struct Operator {
    server: Running,
    addr: String,
    token: String,
    api_key: String,
    log: std::path::PathBuf,
}

impl Operator {
    fn start(dir: &Path, database: &ScratchDatabase) -> Operator {
        let log = dir.join("server.log");
        let stderr = std::fs::File::create(&log).unwrap();
        let server = dev_with_stderr(
            &dir.join("data"),
            &["--database-url", database.url()],
            Stdio::from(stderr),
        );
        let field = |name: &str| server.first_line[name].as_str().unwrap().to_owned();
        Operator {
            addr: server.base_url(),
            token: field("admin_token"),
            api_key: field("api_key"),
            server,
            log,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        alter(args, &self.addr, &self.token)
    }

    /// Runs the CLI with `input` piped to its stdin.
    fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = Command::new(ALTER)
            .args(args)
            .env("ALTER_ADDR", &self.addr)
            .env("ALTER_ADMIN_TOKEN", &self.token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A command refused before it reads stdin (a usage error) closes the pipe early.
        let written = child.stdin.take().unwrap().write_all(input.as_bytes());
        if let Err(e) = written {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
        child.wait_with_output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        stdout_json(&self.run(args))
    }

    /// A request to `/sdk/*` signed with the dev app's key, as an app would send it; the
    /// answer's JSON.
    fn signed(&self, method: &str, path: &str, body: &Value) -> Value {
        let (status, text) = self
            .try_signed(&reqwest::blocking::Client::new(), method, path, body)
            .unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// A signed request on `client`; the status and body, or the transport error (a server
    /// that went away).
    fn try_signed(
        &self,
        client: &reqwest::blocking::Client,
        method: &str,
        path: &str,
        body: &Value,
    ) -> reqwest::Result<(reqwest::StatusCode, String)> {
        self.try_signed_with(&self.api_key, client, method, path, body)
    }

    /// [`Self::try_signed`] with another key of the app.
    fn try_signed_with(
        &self,
        api_key: &str,
        client: &reqwest::blocking::Client,
        method: &str,
        path: &str,
        body: &Value,
    ) -> reqwest::Result<(reqwest::StatusCode, String)> {
        Signed::new(api_key, method, path, body).send(client, &self.addr)
    }

    fn create_agent(&self, name: &str) -> String {
        let agent = self.signed(
            "POST",
            "/sdk/agents",
            &serde_json::json!({"name": name, "type": "agent", "scopes": {}, "metadata": {}}),
        );
        agent["id"].as_str().unwrap().to_owned()
    }

    /// A managed bearer secret holding `value` (read from stdin, never from the command line).
    fn create_bearer_secret(&self, name: &str, value: &str) -> serde_json::Value {
        stdout_json(&self.run_with_stdin(
            &[
                "secret",
                "create",
                "--name",
                name,
                "--type",
                "bearer",
                "--value-stdin",
                "--json",
            ],
            value,
        ))
    }

    /// A grant of the secret to the app itself (a `system` principal).
    fn create_system_grant(&self, secret_id: &str, label: &str) -> String {
        let grant = self.signed(
            "POST",
            &format!("/sdk/managed-secrets/{secret_id}/grants"),
            &serde_json::json!({"principal": {"type": "system", "label": label}}),
        );
        grant["grant_id"].as_str().unwrap().to_owned()
    }

    /// Stops the server and returns everything it wrote to stderr.
    fn stop(self) -> String {
        assert!(self.server.terminate().success());
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// Sends SIGKILL: the server gets no chance to flush, finish a transaction or shut down.
    fn kill(&self) {
        let pid = self.server.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Everything the server wrote to stderr so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

/// A request to `/sdk/*` signed as an app signs it, which can be sent to any node (once per
/// nonce: a second sending is a replay).
struct Signed {
    method: String,
    path: String,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Signed {
    /// A `null` body is sent as no body at all (a `GET`).
    fn new(api_key: &str, method: &str, path: &str, body: &Value) -> Signed {
        let body = match body {
            Value::Null => Vec::new(),
            body => serde_json::to_vec(body).unwrap(),
        };
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let key = alter_proto::signing::signing_key(api_key);
        let headers = alter_proto::signing::plain_request_headers(
            api_key, &key, method, path, &body, timestamp, &nonce,
        )
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
        Signed {
            method: method.to_owned(),
            path: path.to_owned(),
            body,
            headers,
        }
    }

    /// Sends it to the server at `addr`: the status and body, or the transport error (a server
    /// that went away).
    fn send(
        &self,
        client: &reqwest::blocking::Client,
        addr: &str,
    ) -> reqwest::Result<(reqwest::StatusCode, String)> {
        let mut request = client
            .request(self.method.parse().unwrap(), format!("{addr}{}", self.path))
            .header("content-type", "application/json");
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = request.body(self.body.clone()).send()?;
        let status = response.status();
        Ok((status, response.text()?))
    }
}

/// Runs `scenario` against `alter dev` on SQLite and, with `ALTER_TEST_DATABASE_URL`, on
/// PostgreSQL; returns nothing but panics on the first failure.
fn on_each_database(scenario: impl Fn(&Operator)) {
    for database in databases() {
        let dir = tempfile::tempdir().unwrap();
        let operator = Operator::start(dir.path(), &database);
        scenario(&operator);
        operator.stop();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(database.drop_now())
            .unwrap();
    }
}

/// The exit code, with stderr in the failure message.
fn exit_code(output: &Output) -> i32 {
    let code = output.status.code().unwrap();
    if code != 0 {
        assert!(
            String::from_utf8_lossy(&output.stderr).starts_with("error: "),
            "errors are one clear line: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    code
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", stderr(output));
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn the_operator_cli_sets_and_shows_the_identity_provider() {
    on_each_database(|op| {
        assert_eq!(exit_code(&op.run(&["idp", "show"])), 4, "no IdP yet");

        let set = op.json(&[
            "idp",
            "set",
            "--issuer",
            "https://idp.example.com",
            "--audience",
            "app-a",
            "--audience",
            "app-b",
            "--jwks-url",
            "http://127.0.0.1:9/jwks.json",
            "--algorithm",
            "RS256",
            "--subject-claim",
            "uid",
            "--groups-claim",
            "groups",
            "--leeway-seconds",
            "30",
            "--json",
        ]);
        assert_eq!(set["issuer"], "https://idp.example.com");
        assert_eq!(set["audiences"], serde_json::json!(["app-a", "app-b"]));
        assert_eq!(set["jwks_url"], "http://127.0.0.1:9/jwks.json");
        assert_eq!(set["jwks_inline"], false);
        assert_eq!(set["algorithms"], serde_json::json!(["RS256"]));
        assert_eq!(set["subject_claim"], "uid");
        assert_eq!(set["groups_claim"], "groups");
        assert_eq!(set["leeway_seconds"], 30);
        let id = set["id"].as_str().unwrap().to_owned();
        assert_eq!(op.json(&["idp", "show", "--json"])["id"], id.as_str());

        // A JWKS file is sent inline; replacing the IdP keeps its id.
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(
            &jwks,
            r#"{"keys":[{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}]}"#,
        )
        .unwrap();
        let inline = op.json(&[
            "idp",
            "set",
            "--issuer",
            "https://idp.example.com",
            "--audience",
            "app-a",
            "--jwks-file",
            jwks.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(inline["id"], id.as_str());
        assert_eq!(inline["jwks_inline"], true);
        assert!(inline["jwks_url"].is_null());

        let table = stdout(&op.run(&["idp", "show"]));
        assert!(table.starts_with("id "), "{table}");
        assert!(
            table.contains(&id) && table.contains("inline") && table.contains("app-a"),
            "{table}"
        );

        // Bad input: the server's message, exit 1, nothing changed.
        std::fs::write(
            &jwks,
            r#"{"keys":[{"kty":"RSA","n":"x","e":"AQAB","d":"private"}]}"#,
        )
        .unwrap();
        let private = op.run(&[
            "idp",
            "set",
            "--issuer",
            "https://other.example.com",
            "--audience",
            "a",
            "--jwks-file",
            jwks.to_str().unwrap(),
        ]);
        assert_eq!(exit_code(&private), 1);
        assert!(
            stderr(&private).contains("private key"),
            "{}",
            stderr(&private)
        );
        let plain_http = op.run(&[
            "idp",
            "set",
            "--issuer",
            "https://other.example.com",
            "--audience",
            "a",
            "--jwks-url",
            "http://idp.example.com/jwks.json",
        ]);
        assert_eq!(exit_code(&plain_http), 1);
        assert!(
            stderr(&plain_http).contains("https"),
            "{}",
            stderr(&plain_http)
        );
        let missing_file = op.run(&[
            "idp",
            "set",
            "--issuer",
            "https://other.example.com",
            "--audience",
            "a",
            "--jwks-file",
            dir.path().join("absent.json").to_str().unwrap(),
        ]);
        assert_eq!(exit_code(&missing_file), 1);
        assert!(stderr(&missing_file).contains("absent.json"));
        assert_eq!(
            op.json(&["idp", "show", "--json"])["issuer"],
            "https://idp.example.com"
        );

        // Usage errors: no JWKS, or both kinds.
        let usage = op.run(&["idp", "set", "--issuer", "i", "--audience", "a"]);
        assert_eq!(usage.status.code(), Some(2));
        let both = op.run(&[
            "idp",
            "set",
            "--issuer",
            "i",
            "--audience",
            "a",
            "--jwks-url",
            "https://x",
            "--jwks-file",
            "f",
        ]);
        assert_eq!(both.status.code(), Some(2));

        // The inbound-event secret: generated, rotated from the version seen (a stale one is
        // a conflict), its previous one ended at once.
        let first = op.json(&["idp", "events-secret", "rotate", "--json"]);
        assert_eq!(first["version"], 1);
        let rotated = op.json(&[
            "idp",
            "events-secret",
            "rotate",
            "--grace-seconds",
            "600",
            "--expected-version",
            "1",
            "--json",
        ]);
        assert_eq!(rotated["version"], 2);
        assert!(rotated["previous_valid_until"].is_string());
        let stale = op.run(&["idp", "events-secret", "rotate", "--expected-version", "1"]);
        assert_eq!(exit_code(&stale), 5, "{}", stderr(&stale));
        let ended = op.json(&["idp", "events-secret", "end-previous", "--json"]);
        assert_eq!(ended["version"], 2);
        assert!(ended.get("previous_valid_until").is_none());
    });
}

#[test]
fn the_operator_cli_sets_and_shows_the_sign_in_client() {
    on_each_database(|op| {
        let idp = op.run(&[
            "idp",
            "set",
            "--issuer",
            "https://idp.example.com",
            "--audience",
            "app-a",
            "--jwks-url",
            "http://127.0.0.1:9/jwks.json",
        ]);
        assert_eq!(exit_code(&idp), 0, "{}", stderr(&idp));
        assert_eq!(
            exit_code(&op.run(&["idp", "sign-in", "show"])),
            4,
            "none yet"
        );

        let set = stdout_json(&op.run_with_stdin(
            &[
                "idp",
                "sign-in",
                "set",
                "--client-id",
                "app-a",
                "--client-secret-stdin",
                "--authorize-url",
                "https://idp.example.com/authorize",
                "--token-url",
                "https://idp.example.com/token",
                "--json",
            ],
            "cli-sign-in-secret\n",
        ));
        assert_eq!(set["client_id"], "app-a");
        assert_eq!(set["has_client_secret"], true);
        assert_eq!(set["not_ready"], Value::Null);
        assert_eq!(
            set["scopes"],
            serde_json::json!(["openid", "email", "profile"])
        );
        assert!(
            set["redirect_uri"]
                .as_str()
                .unwrap()
                .ends_with("/auth/callback")
        );
        assert!(!set.to_string().contains("cli-sign-in-secret"));

        let table = stdout(&op.run(&["idp", "sign-in", "show"]));
        assert!(
            table.contains("app-a") && table.contains("stored"),
            "{table}"
        );
        assert!(table.contains("yes"), "{table}");
        assert!(!table.contains("cli-sign-in-secret"), "{table}");

        // The client must be an audience of the IdP; one endpoint alone is a usage error.
        let stranger = op.run(&["idp", "sign-in", "set", "--client-id", "stranger"]);
        assert_eq!(exit_code(&stranger), 1);
        assert!(
            stderr(&stranger).contains("audiences"),
            "{}",
            stderr(&stranger)
        );
        let half = op.run(&[
            "idp",
            "sign-in",
            "set",
            "--client-id",
            "app-a",
            "--token-url",
            "https://idp.example.com/token",
        ]);
        assert_eq!(half.status.code(), Some(2));
    });
}

#[test]
fn the_operator_cli_manages_secrets_and_never_shows_a_value() {
    const VALUE: &str = "sk_live_first-value-7d1f0c2b9e";
    const ROTATED: &str = "sk_live_second-value-a83e51c4f0";
    const REFUSED: &str = "refused-value-without-colon-5b2d";
    on_each_database(|op| {
        let mut outputs = Vec::new();
        let mut keep = |output: Output| -> Output {
            outputs.push(output.clone());
            output
        };

        let created = keep(op.run_with_stdin(
            &[
                "secret",
                "create",
                "--name",
                "Stripe Live",
                "--type",
                "header",
                "--header",
                "X-Api-Key",
                "--allowed-host",
                "api.stripe.com",
                "--allowed-host",
                "*.stripe.com",
                "--max-grant-ttl-seconds",
                "86400",
                "--principal",
                "system",
                "--principal",
                "agent",
                "--no-delegation",
                "--value-stdin",
                "--json",
            ],
            &format!("{VALUE}\n"),
        ));
        let created = stdout_json(&created);
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(created["name"], "Stripe Live");
        assert_eq!(created["slug"], "stripe-live");
        assert_eq!(created["type"], "header");
        assert_eq!(created["header"], "X-Api-Key");
        assert_eq!(
            created["allowed_hosts"],
            serde_json::json!(["api.stripe.com", "*.stripe.com"])
        );
        assert_eq!(created["max_grant_ttl_seconds"], 86400);
        assert_eq!(
            created["principals"],
            serde_json::json!(["system", "agent"])
        );
        assert_eq!(created["delegation"], false);
        assert_eq!(created["value_version"], 1);
        assert!(created.get("value").is_none());

        let listed = stdout_json(&keep(op.run(&["secret", "list", "--json"])));
        assert_eq!(listed.as_array().unwrap().len(), 1);
        assert_eq!(listed[0]["id"], id.as_str());
        let table = stdout(&keep(op.run(&["secret", "list"])));
        assert!(table.starts_with("ID "), "{table}");
        assert!(
            table.contains("stripe-live") && table.contains("header"),
            "{table}"
        );
        for key in [id.as_str(), "stripe-live"] {
            let shown = stdout_json(&keep(op.run(&["secret", "show", key, "--json"])));
            assert_eq!(shown["id"], id.as_str());
        }
        let shown = stdout(&keep(op.run(&["secret", "show", "stripe-live"])));
        assert!(
            shown.contains("X-Api-Key") && shown.contains("api.stripe.com"),
            "{shown}"
        );

        // Rotation keeps the id and bumps the version; a CRLF ending is dropped too.
        let rotated = keep(op.run_with_stdin(
            &["secret", "rotate", "stripe-live", "--value-stdin", "--json"],
            &format!("{ROTATED}\r\n"),
        ));
        let rotated = stdout_json(&rotated);
        assert_eq!(rotated["id"], id.as_str());
        assert_eq!(rotated["value_version"], 2);
        assert!(rotated["rotated_at"].is_string());

        // Bad input.
        let no_header = keep(op.run_with_stdin(
            &[
                "secret",
                "create",
                "--name",
                "h",
                "--type",
                "header",
                "--value-stdin",
            ],
            "v",
        ));
        assert_eq!(exit_code(&no_header), 1);
        assert!(
            stderr(&no_header).contains("header"),
            "{}",
            stderr(&no_header)
        );
        let refused = keep(op.run_with_stdin(
            &[
                "secret",
                "create",
                "--name",
                "b",
                "--type",
                "basic",
                "--value-stdin",
            ],
            REFUSED,
        ));
        assert_eq!(exit_code(&refused), 1);
        assert!(
            stderr(&refused).contains("user:password"),
            "{}",
            stderr(&refused)
        );
        let empty = keep(op.run_with_stdin(
            &[
                "secret",
                "create",
                "--name",
                "e",
                "--type",
                "bearer",
                "--value-stdin",
            ],
            "\n",
        ));
        assert_eq!(exit_code(&empty), 1);
        assert!(stderr(&empty).contains("empty"));
        let no_stdin_flag = keep(op.run(&["secret", "create", "--name", "e", "--type", "bearer"]));
        assert_eq!(no_stdin_flag.status.code(), Some(2));
        let bad_type = keep(op.run_with_stdin(
            &[
                "secret",
                "create",
                "--name",
                "e",
                "--type",
                "token",
                "--value-stdin",
            ],
            "v",
        ));
        assert_eq!(bad_type.status.code(), Some(2));
        assert_eq!(exit_code(&keep(op.run(&["secret", "show", "absent"]))), 4);
        let missing = uuid::Uuid::new_v4().to_string();
        let rotate_missing =
            keep(op.run_with_stdin(&["secret", "rotate", &missing, "--value-stdin"], ROTATED));
        assert_eq!(exit_code(&rotate_missing), 4);

        // Deletion needs the slug repeated, and revokes the secret's grants.
        let grant = op.create_system_grant(&id, "billing");
        let no_confirm = keep(op.run(&["secret", "delete", "stripe-live"]));
        assert_eq!(no_confirm.status.code(), Some(2));
        let wrong = keep(op.run(&["secret", "delete", &id, "--confirm", "stripe"]));
        assert_eq!(exit_code(&wrong), 1);
        assert!(stderr(&wrong).contains("stripe-live"), "{}", stderr(&wrong));
        assert_eq!(
            stdout_json(&keep(op.run(&["secret", "show", &id, "--json"])))["value_version"],
            2,
            "a refused delete changes nothing"
        );
        let deleted = stdout_json(&keep(op.run(&[
            "secret",
            "delete",
            &id,
            "--confirm",
            "stripe-live",
            "--json",
        ])));
        assert_eq!(deleted["id"], id.as_str());
        assert!(deleted["deleted_at"].is_string());
        assert_eq!(exit_code(&keep(op.run(&["secret", "show", &id]))), 4);
        let gone = keep(op.run(&["secret", "delete", &id, "--confirm", "stripe-live"]));
        assert_eq!(exit_code(&gone), 4);
        let listed = stdout_json(&keep(op.run(&["secret", "list", "--json"])));
        assert!(listed.as_array().unwrap().is_empty());
        let grants = stdout_json(&keep(op.run(&["grant", "list", "--json"])));
        let item = grants["grants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["grant_id"] == grant.as_str())
            .unwrap();
        assert_eq!(item["status"], "revoked");

        // The value never appears in anything the CLI printed, nor in the server's log.
        for output in &outputs {
            for stream in [&output.stdout, &output.stderr] {
                let text = String::from_utf8_lossy(stream);
                for value in [VALUE, ROTATED, REFUSED] {
                    assert!(!text.contains(value), "value leaked: {text}");
                }
            }
        }
        let log = std::fs::read_to_string(&op.log).unwrap();
        assert!(log.contains("alter dev is serving"), "the log is captured");
        for value in [VALUE, ROTATED, REFUSED] {
            assert!(!log.contains(value), "value in the server log");
        }
    });
}

#[test]
fn the_operator_cli_configures_oauth_providers_and_never_shows_a_client_secret() {
    const CLIENT_SECRET: &str = "acme-client-secret-9b3e7d21c4";
    on_each_database(|op| {
        let mut outputs = Vec::new();
        let mut keep = |output: Output| -> Output {
            outputs.push(output.clone());
            output
        };
        let configure = [
            "provider",
            "configure",
            "acme",
            "--client-id",
            "alter-client",
            "--authorize-url",
            "https://id.acme.example/authorize",
            "--token-url",
            "https://id.acme.example/token",
            "--scope",
            "openid",
            "--scope",
            "files.read",
            "--account-claim",
            "email",
        ];
        let first = keep(op.run(&configure));
        assert_eq!(
            exit_code(&first),
            1,
            "the first configuration needs a secret"
        );
        let mut with_secret = configure.to_vec();
        with_secret.push("--client-secret-stdin");
        let configured = keep(op.run_with_stdin(&with_secret, &format!("{CLIENT_SECRET}\n")));
        assert_eq!(exit_code(&configured), 0);
        let redirect = format!("{}/oauth/callback", op.addr);
        assert!(
            stdout(&configured).contains(&redirect),
            "{}",
            stdout(&configured)
        );

        let shown = stdout_json(&keep(op.run(&["provider", "show", "acme", "--json"])));
        assert_eq!(shown["client_id"], "alter-client");
        assert_eq!(shown["version"], 1);
        assert_eq!(shown["endpoints"]["account"]["claim"], "email");
        // Reconfigured without a secret: the stored one is kept.
        let mut renamed = configure.to_vec();
        renamed.extend(["--display-name", "Acme Files"]);
        assert_eq!(exit_code(&keep(op.run(&renamed))), 0);
        let listed = stdout_json(&keep(op.run(&["provider", "list", "--json"])));
        assert_eq!(listed[0]["display_name"], "Acme Files");
        assert_eq!(listed[0]["version"], 2);
        assert!(stdout(&keep(op.run(&["provider", "list"]))).contains("acme"));

        assert_eq!(exit_code(&keep(op.run(&["provider", "delete", "acme"]))), 0);
        assert_eq!(exit_code(&keep(op.run(&["provider", "show", "acme"]))), 4);

        for output in &outputs {
            for stream in [&output.stdout, &output.stderr] {
                let text = String::from_utf8_lossy(stream);
                assert!(
                    !text.contains(CLIENT_SECRET),
                    "client secret leaked: {text}"
                );
            }
        }
        let log = std::fs::read_to_string(&op.log).unwrap();
        assert!(
            !log.contains(CLIENT_SECRET),
            "client secret in the server log"
        );
    });
}

#[test]
fn the_operator_cli_imports_lists_shows_and_deletes_provider_specs() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/compat/fixtures/payments.openapi.yaml");
    let fixture = fixture.to_str().unwrap();
    on_each_database(|op| {
        let configured = op.run_with_stdin(
            &[
                "provider",
                "configure",
                "acme",
                "--client-id",
                "alter-client",
                "--authorize-url",
                "https://id.acme.example/authorize",
                "--token-url",
                "https://id.acme.example/token",
                "--client-secret-stdin",
            ],
            "acme-secret\n",
        );
        assert_eq!(exit_code(&configured), 0, "{}", stderr(&configured));
        let import = [
            "provider",
            "spec",
            "import",
            "acme",
            fixture,
            "--source-url",
            "https://docs.acme.example/openapi.yaml",
        ];
        let imported = op.json(&[&import[..], &["--json"]].concat());
        assert_eq!(imported["changed"], true);
        assert_eq!(imported["version"], 1);
        assert_eq!(imported["operation_count"], 9);
        let again = op.run(&import);
        assert_eq!(exit_code(&again), 0);
        assert!(stdout(&again).contains("unchanged"), "{}", stdout(&again));

        let listed = op.json(&["provider", "spec", "list", "--json"]);
        assert_eq!(listed[0]["provider_id"], "acme");
        assert_eq!(listed[0]["version"], 1);
        let table = stdout(&op.run(&["provider", "spec", "list", "--kind", "oauth"]));
        assert!(table.contains("Acme Payments API"), "{table}");
        let shown = stdout(&op.run(&["provider", "spec", "show", "acme"]));
        assert!(
            shown.contains("https://docs.acme.example/openapi.yaml"),
            "{shown}"
        );
        assert_eq!(
            exit_code(&op.run(&["provider", "spec", "show", "acme", "--kind", "managed"])),
            4
        );
        assert_eq!(
            exit_code(&op.run(&["provider", "spec", "import", "nope", fixture])),
            4,
            "the provider must exist"
        );
        assert_eq!(
            exit_code(&op.run(&["provider", "spec", "delete", "acme"])),
            0
        );
        assert_eq!(exit_code(&op.run(&["provider", "spec", "show", "acme"])), 4);
    });
}

#[test]
fn the_operator_cli_manages_agents() {
    on_each_database(|op| {
        let agent = op.create_agent("bot");

        let list = op.json(&["agent", "list", "--json"]);
        assert_eq!(list["total"], 1);
        assert_eq!(list["has_more"], false);
        assert_eq!(list["items"][0]["id"], agent.as_str());
        assert_eq!(list["items"][0]["name"], "bot");
        assert_eq!(list["items"][0]["status"], "active");
        let table = stdout(&op.run(&["agent", "list"]));
        assert!(table.starts_with("ID "), "{table}");
        assert!(
            table.contains(&agent) && table.contains("active"),
            "{table}"
        );
        let second = op.create_agent("helper");
        let page = op.json(&["agent", "list", "--limit", "1", "--json"]);
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
        assert_eq!(page["total"], 2);
        assert_eq!(page["has_more"], true);
        let paged = stdout(&op.run(&["agent", "list", "--limit", "1"]));
        assert!(paged.contains("next page: --offset 1"), "{paged}");

        let shown = op.json(&["agent", "show", &agent, "--json"]);
        assert_eq!(shown["id"], agent.as_str());
        assert_eq!(shown["type"], "agent");
        let shown = stdout(&op.run(&["agent", "show", &agent]));
        assert!(shown.contains("bot") && shown.contains("active"), "{shown}");

        let paused = op.json(&["agent", "pause", &agent, "--json"]);
        assert_eq!(paused["status"], "inactive");
        assert_eq!(
            op.json(&["agent", "show", &agent, "--json"])["status"],
            "inactive"
        );
        let resumed = op.json(&["agent", "resume", &agent, "--json"]);
        assert_eq!(resumed["status"], "active");

        let deleted = op.json(&["agent", "delete", &agent, "--json"]);
        assert_eq!(deleted["status"], "revoked");
        let live = op.json(&["agent", "list", "--json"]);
        assert_eq!(live["total"], 1);
        assert_eq!(live["items"][0]["id"], second.as_str());
        let all = op.json(&["agent", "list", "--include-revoked", "--json"]);
        assert_eq!(all["total"], 2);

        // A deleted agent cannot be resumed: conflict.
        let resume = op.run(&["agent", "resume", &agent]);
        assert_eq!(exit_code(&resume), 5, "{}", stderr(&resume));
        let missing = uuid::Uuid::new_v4().to_string();
        for command in ["show", "pause", "resume", "delete"] {
            assert_eq!(exit_code(&op.run(&["agent", command, &missing])), 4);
        }
        assert_eq!(exit_code(&op.run(&["agent", "show", "not-an-id"])), 4);
        assert_eq!(op.run(&["agent", "show"]).status.code(), Some(2));
    });
}

#[test]
fn the_operator_cli_lists_revokes_and_delegates_grants() {
    on_each_database(|op| {
        let empty = op.json(&["grant", "list", "--json"]);
        assert_eq!(
            empty,
            serde_json::json!({"grants": [], "total": 0, "limit": 100, "offset": 0, "has_more": false})
        );

        let secret = stdout_json(&op.run_with_stdin(
            &[
                "secret",
                "create",
                "--name",
                "search",
                "--type",
                "bearer",
                "--max-delegation-ttl-seconds",
                "3600",
                "--value-stdin",
                "--json",
            ],
            "token-value",
        ));
        let secret_id = secret["id"].as_str().unwrap();
        let grant = op.create_system_grant(secret_id, "main");
        let other = op.create_system_grant(secret_id, "spare");
        let agent = op.create_agent("bot");

        let list = op.json(&["grant", "list", "--json"]);
        assert_eq!(list["total"], 2);
        let item = &list["grants"].as_array().unwrap()[0];
        assert_eq!(item["grant_kind"], "managed_secret");
        assert_eq!(item["managed_secret_slug"], "search");
        assert_eq!(item["principal_type"], "system");
        let by_label = op.json(&["grant", "list", "--label", "main", "--json"]);
        assert_eq!(by_label["total"], 1);
        assert_eq!(by_label["grants"][0]["grant_id"], grant.as_str());
        let by_provider = op.json(&["grant", "list", "--provider", "search", "--json"]);
        assert_eq!(by_provider["total"], 2);
        let none = op.json(&["grant", "list", "--provider", "absent", "--json"]);
        assert_eq!(none["total"], 0);
        let page = op.json(&["grant", "list", "--limit", "1", "--offset", "1", "--json"]);
        assert_eq!(page["grants"].as_array().unwrap().len(), 1);
        assert_eq!(
            (page["limit"].clone(), page["offset"].clone()),
            (1.into(), 1.into())
        );
        let table = stdout(&op.run(&["grant", "list"]));
        assert!(table.starts_with("ID "), "{table}");
        assert!(
            table.contains(&grant) && table.contains("search") && table.contains("main"),
            "{table}"
        );

        let delegation = op.json(&[
            "grant",
            "delegate",
            &grant,
            "--agent",
            &agent,
            "--ttl-seconds",
            "600",
            "--delegable",
            "--json",
        ]);
        assert_eq!(delegation["parent_grant_id"], grant.as_str());
        assert_eq!(delegation["grant_kind"], "managed_secret");
        assert_eq!(delegation["depth"], 1);
        assert_eq!(delegation["delegable"], true);
        assert_eq!(delegation["status"], "active");
        assert!(delegation["expires_at"].is_string());
        let child = delegation["grant_id"].as_str().unwrap().to_owned();
        let text = stdout(&op.run(&["grant", "delegate", &other, "--agent", &agent]));
        assert!(text.contains(&other) && text.contains("depth"), "{text}");
        // Delegating again to the same agent renews the delegation it has.
        let renewed = op.json(&["grant", "delegate", &grant, "--agent", &agent, "--json"]);
        assert_eq!(renewed["grant_id"], child.as_str());
        let zero_ttl = op.run(&[
            "grant",
            "delegate",
            &grant,
            "--agent",
            &agent,
            "--ttl-seconds",
            "0",
        ]);
        assert_eq!(exit_code(&zero_ttl), 1, "{}", stderr(&zero_ttl));
        assert!(
            stderr(&zero_ttl).contains("ttl_seconds"),
            "{}",
            stderr(&zero_ttl)
        );
        let missing = uuid::Uuid::new_v4().to_string();
        assert_eq!(
            exit_code(&op.run(&["grant", "delegate", &grant, "--agent", &missing])),
            4
        );
        assert_eq!(
            exit_code(&op.run(&["grant", "delegate", &missing, "--agent", &agent])),
            4
        );

        // Revoking the grant revokes its delegation; the sibling stays.
        let revoked = op.json(&[
            "grant",
            "revoke",
            &grant,
            "--reason",
            "rotated out",
            "--json",
        ]);
        assert_eq!(revoked["grants"][0]["grant_id"], grant.as_str());
        assert_eq!(revoked["grants"][0]["status"], "revoked");
        let statuses = op.json(&["grant", "list", "--status", "revoked", "--json"]);
        let ids: Vec<&str> = statuses["grants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["grant_id"].as_str().unwrap())
            .collect();
        assert!(
            ids.contains(&grant.as_str()) && ids.contains(&child.as_str()),
            "{ids:?}"
        );
        let active = op.json(&["grant", "list", "--status", "active", "--json"]);
        assert!(
            active["grants"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["grant_id"] == other.as_str())
        );
        let again = op.run(&["grant", "revoke", &grant, "--reason", "twice"]);
        assert_eq!(exit_code(&again), 1, "{}", stderr(&again));
        assert_eq!(
            exit_code(&op.run(&["grant", "revoke", &missing, "--reason", "x"])),
            4
        );
        assert_eq!(op.run(&["grant", "revoke", &other]).status.code(), Some(2));
        assert_eq!(
            op.run(&["grant", "list", "--status", "paused"])
                .status
                .code(),
            Some(2)
        );
        let bad_limit = op.run(&["grant", "list", "--limit", "0"]);
        assert_eq!(exit_code(&bad_limit), 1, "{}", stderr(&bad_limit));
    });
}

#[test]
fn the_operator_cli_clears_a_grants_scope_mismatch() {
    on_each_database(|op| {
        let secret = op.create_bearer_secret("github", "token-value");
        let grant = op.create_system_grant(secret["id"].as_str().unwrap(), "main");
        let flagged = || {
            let released = op.signed(
                "POST",
                "/sdk/token",
                &serde_json::json!({"grant_id": grant, "reason": null,
                    "request": {"method": "GET", "url": "https://api.github.com/user"}}),
            );
            released["scope_mismatch"] == true
        };
        let (status, text) = op
            .try_signed(
                &reqwest::blocking::Client::new(),
                "POST",
                &format!("/sdk/grants/{grant}/report-scope-mismatch"),
                &serde_json::json!({"missing_scopes": ["repo"]}),
            )
            .unwrap();
        assert_eq!(status, 204, "{text}");
        assert!(flagged());

        let cleared = op.json(&["grant", "clear-scope-mismatch", &grant, "--json"]);
        assert_eq!(cleared["grants"][0]["grant_id"], grant.as_str());
        assert!(!flagged());
        let table = stdout(&op.run(&["grant", "clear-scope-mismatch", &grant]));
        assert!(table.contains(&grant), "{table}");
        let missing = uuid::Uuid::new_v4().to_string();
        let unknown = op.run(&["grant", "clear-scope-mismatch", &missing]);
        assert_eq!(exit_code(&unknown), 4, "{}", stderr(&unknown));
    });
}

#[test]
fn a_server_killed_mid_burst_has_audited_every_credential_it_released() {
    const CLIENTS: usize = 8;
    const RELEASES_BEFORE_KILL: usize = 150;
    for database in databases() {
        let dir = tempfile::tempdir().unwrap();
        let op = Operator::start(dir.path(), &database);
        let value = format!("crash-secret-{}", uuid::Uuid::new_v4().simple());
        let secret = op.create_bearer_secret("crashy", &value);
        let grant = op.create_system_grant(secret["id"].as_str().unwrap(), "main");
        let body = serde_json::json!({
            "grant_id": grant,
            "reason": "burst",
            "request": {"method": "GET", "url": "https://api.example.com/v1/items"},
        });

        // Concurrent releases until SIGKILL; every answered release is remembered.
        let released = std::sync::Mutex::new(Vec::<String>::new());
        std::thread::scope(|scope| {
            for _ in 0..CLIENTS {
                scope.spawn(|| {
                    let client = reqwest::blocking::Client::new();
                    // A transport error means the server is gone.
                    while let Ok((status, text)) =
                        op.try_signed(&client, "POST", "/sdk/token", &body)
                    {
                        assert_eq!(status, 200, "{text}");
                        let answer: Value = serde_json::from_str(&text).unwrap();
                        assert_eq!(answer["access_token"], value.as_str());
                        let id = answer["token_generation"].as_str().unwrap().to_owned();
                        released.lock().unwrap().push(id);
                    }
                });
            }
            while released.lock().unwrap().len() < RELEASES_BEFORE_KILL {
                std::thread::sleep(Duration::from_millis(2));
            }
            op.kill();
        });
        let released = released.into_inner().unwrap();
        let first_log = op.log();
        drop(op);
        assert_no_plaintext(&database, &value);

        // Restarted on the same data: the chain verifies and holds every answered release.
        let op = Operator::start(dir.path(), &database);
        let verify = stdout(&op.run(&["audit", "verify"]));
        assert!(
            verify.starts_with("ok: ") && verify.contains("the chain verifies"),
            "{verify}"
        );
        let exported = stdout(&op.run(&["audit", "export", "--action", "credential.released"]));
        let audited: std::collections::HashSet<String> = exported
            .lines()
            .map(|line| {
                let item: Value = serde_json::from_str(line).unwrap();
                assert_eq!(item["event"]["decision"], "allow");
                item["event"]["id"].as_str().unwrap().to_owned()
            })
            .collect();
        let missing: Vec<&String> = released
            .iter()
            .filter(|id| !audited.contains(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "{} of {} released credentials have no audit record: {missing:?}",
            missing.len(),
            released.len()
        );
        assert!(audited.len() >= released.len());

        // Listing pages through the same events.
        let page = op.json(&[
            "audit",
            "list",
            "--action",
            "credential.released",
            "--limit",
            "2",
            "--json",
        ]);
        assert_eq!(page["items"].as_array().unwrap().len(), 2);
        let cursor = page["next_cursor"].as_str().unwrap();
        let next = op.json(&[
            "audit",
            "list",
            "--action",
            "credential.released",
            "--limit",
            "2",
            "--cursor",
            cursor,
            "--json",
        ]);
        assert!(next["items"][0]["seq"].as_i64() > page["items"][1]["seq"].as_i64());
        let table = stdout(&op.run(&["audit", "list", "--grant", &grant, "--limit", "3"]));
        assert!(
            table.contains("credential.released") && table.contains("next page: --cursor"),
            "{table}"
        );
        let none = op.json(&["audit", "list", "--decision", "deny", "--json"]);
        assert_eq!(none["items"], serde_json::json!([]));

        // Someone with write access to the database alters one release: verify names it and
        // exits 1.
        let victim: Value = serde_json::from_str(exported.lines().nth(3).unwrap()).unwrap();
        let guards: &[&str] = if database.url().starts_with("sqlite") {
            &[
                "DROP TRIGGER audit_events_no_update",
                "DROP TRIGGER audit_events_no_delete",
            ]
        } else {
            &["DROP TRIGGER audit_events_append_only ON audit_events"]
        };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let seq = victim["seq"].to_string();
        runtime.block_on(async {
            for sql in guards {
                database.execute(sql, &[]).await.unwrap();
            }
            let changed = database
                .execute(
                    "UPDATE audit_events SET body = REPLACE(body, '\"burst\"', '\"quiet\"') WHERE seq = CAST($1 AS BIGINT)",
                    &[&seq],
                )
                .await
                .unwrap();
            assert_eq!(changed, 1);
        });
        // The report is on stdout (text or JSON), and the exit code says the chain is broken.
        let broken = op.run(&["audit", "verify"]);
        assert_eq!(exit_code(&broken), 1);
        let report = String::from_utf8_lossy(&broken.stdout);
        assert!(
            report.contains(&format!("BROKEN at event {seq}")),
            "stdout: {report}\nstderr: {}",
            stderr(&broken)
        );
        let broken = op.run(&["audit", "verify", "--json"]);
        assert_eq!(exit_code(&broken), 1);
        let report: Value = serde_json::from_slice(&broken.stdout).unwrap_or_else(|e| {
            panic!(
                "verify --json prints JSON on stdout ({e}): {}",
                String::from_utf8_lossy(&broken.stdout)
            )
        });
        assert_eq!(report["ok"], Value::Bool(false), "{report}");
        assert_eq!(report["first_problem"]["seq"], victim["seq"], "{report}");

        // Nothing the server wrote, before or after the crash, and nothing on disk holds the
        // secret.
        let second_log = op.stop();
        for log in [&first_log, &second_log] {
            assert!(!log.contains(&value), "the secret is in the server's log");
        }
        assert_no_plaintext(&database, &value);
        runtime.block_on(database.drop_now()).unwrap();
    }
}

/// Someone with write access to the database (not the master key): dropping the guards, they
/// cut the log's tail and move the head back, then rewrite events with recomputed plain
/// SHA-256 hashes. A checkpoint kept outside catches the cut; the keyed hashes catch the rest.
#[test]
fn checkpoints_catch_a_cut_log_and_keyed_hashes_catch_a_recomputed_chain() {
    for database in databases() {
        let dir = tempfile::tempdir().unwrap();
        let op = Operator::start(dir.path(), &database);
        let app = op.server.first_line["app_id"].as_str().unwrap().to_owned();
        for name in ["one", "two", "three"] {
            op.create_agent(name);
        }
        let file = |name: &str, line: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("{line}\n")).unwrap();
            path.to_str().unwrap().to_owned()
        };
        let verify = |checkpoints: &str| {
            op.run(&[
                "audit",
                "verify",
                "--app",
                &app,
                "--checkpoint",
                checkpoints,
            ])
        };

        // The server logs every app's checkpoint when it starts (then every hour, in dev):
        // one line holding the same JSON that `alter audit checkpoint` prints.
        let logged = logged_checkpoint(&op, &app);
        let ok = stdout(&verify(&file("logged.jsonl", &logged)));
        assert!(
            ok.contains("the chain verifies and reaches the checkpoint"),
            "{ok}"
        );

        // `alter audit checkpoint >> FILE` now and then; verify takes the file's furthest one.
        let earlier = stdout(&op.run(&["audit", "checkpoint"]));
        op.create_agent("four");
        let line = stdout(&op.run(&["audit", "checkpoint"]));
        let checkpoint: Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(checkpoint["app_id"], app.as_str());
        let seq = checkpoint["seq"].as_i64().unwrap();
        assert!(seq >= 5, "{checkpoint}");
        let checkpoints = file(
            "checkpoints.jsonl",
            &format!("{}\n{}", earlier.trim(), line.trim()),
        );
        let ok = stdout(&verify(&checkpoints));
        assert!(
            ok.contains(&format!(
                "the chain verifies and reaches the checkpoint at event {seq}"
            )),
            "{ok}"
        );

        // A checkpoint edited to point further back, or another app's checkpoint, is refused.
        let mut forged = checkpoint.clone();
        forged["seq"] = Value::from(seq - 2);
        let refused = verify(&file("forged.jsonl", &forged.to_string()));
        assert_eq!(exit_code(&refused), 1);
        let report = String::from_utf8_lossy(&refused.stdout);
        assert!(report.contains("signature does not verify"), "{report}");
        let other = stdout_json(&op.run(&["app", "create", "--name", "other", "--json"]));
        let other = other["id"].as_str().unwrap();
        let foreign = stdout(&op.run(&["audit", "checkpoint", "--app", other]));
        let refused = verify(&file("foreign.jsonl", foreign.trim()));
        assert_eq!(exit_code(&refused), 1);
        let report = String::from_utf8_lossy(&refused.stdout);
        assert!(
            report.contains(&format!(
                "the checkpoint is of app {other}, not of app {app}"
            )),
            "{report}"
        );

        // The attacker drops the guards, deletes the last two events and moves the head back
        // onto the new last event: the chain alone still verifies.
        let guards: &[&str] = if database.url().starts_with("sqlite") {
            &[
                "DROP TRIGGER audit_events_no_update",
                "DROP TRIGGER audit_events_no_delete",
                "DROP TRIGGER audit_heads_no_delete",
                "DROP TRIGGER audit_heads_forward_only",
            ]
        } else {
            &[
                "DROP TRIGGER audit_events_append_only ON audit_events",
                "DROP TRIGGER audit_heads_forward_only ON audit_heads",
            ]
        };
        let cut = (seq - 2).to_string();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            for sql in guards {
                database.execute(sql, &[]).await.unwrap();
            }
            let deleted = database
                .execute(
                    "DELETE FROM audit_events WHERE app_id = $1 AND seq > CAST($2 AS BIGINT)",
                    &[&app, &cut],
                )
                .await
                .unwrap();
            assert_eq!(deleted, 2);
            database
                .execute(
                    "UPDATE audit_heads SET seq = CAST($2 AS BIGINT), hash = (SELECT e.hash \
                     FROM audit_events e WHERE e.app_id = $1 AND e.seq = CAST($2 AS BIGINT)) \
                     WHERE app_id = $1",
                    &[&app, &cut],
                )
                .await
                .unwrap();
        });
        let plain = stdout(&op.run(&["audit", "verify", "--app", &app]));
        assert!(plain.starts_with("ok: "), "{plain}");
        let caught = verify(&checkpoints);
        assert_eq!(exit_code(&caught), 1);
        let report = String::from_utf8_lossy(&caught.stdout);
        assert!(
            report.contains(&format!("BROKEN at event {} of app {app}", seq - 1))
                && report.contains(&format!("events {} to {seq} are missing", seq - 1)),
            "{report}"
        );
        let caught = op.run(&[
            "audit",
            "verify",
            "--app",
            &app,
            "--checkpoint",
            &checkpoints,
            "--json",
        ]);
        assert_eq!(exit_code(&caught), 1);
        let report: Value = serde_json::from_slice(&caught.stdout).unwrap();
        assert_eq!(report["first_problem"]["seq"], seq - 1, "{report}");
        assert_eq!(report["checkpoint_seq"], seq, "{report}");
        // The next `alter audit checkpoint >> FILE` signs the shorter head: verify holds the
        // chain to the furthest checkpoint of the file, not to its last line.
        let after_cut = stdout(&op.run(&["audit", "checkpoint", "--app", &app]));
        let appended = file(
            "appended.jsonl",
            &format!("{}\n{}\n{}", earlier.trim(), line.trim(), after_cut.trim()),
        );
        let caught = verify(&appended);
        assert_eq!(exit_code(&caught), 1);
        let report = String::from_utf8_lossy(&caught.stdout);
        assert!(
            report.contains(&format!("events {} to {seq} are missing", seq - 1)),
            "{report}"
        );

        // An event edited and the chain recomputed from there with plain SHA-256, the rows
        // marked keyed or unkeyed (as before keys): without the key it cannot be made to verify.
        for (from, hash_version) in [(2, 1), (2, 0), (1, 0)] {
            runtime
                .block_on(database.rechain_audit_with_plain_hashes(&app, from, hash_version))
                .unwrap();
            let broken = op.run(&["audit", "verify", "--app", &app, "--json"]);
            assert_eq!(exit_code(&broken), 1);
            let report: Value = serde_json::from_slice(&broken.stdout).unwrap();
            let problem = report["first_problem"]["problem"].as_str().unwrap();
            let expected = if hash_version == 1 {
                "altered"
            } else {
                "unkeyed"
            };
            assert!(problem.contains(expected), "{report}");
            assert_eq!(report["first_problem"]["seq"], from, "{report}");
        }

        // Restarted on it, the server takes the plain events for those of a database from
        // before keyed chains and vouches for them with one keyed `audit.chain_keyed` event:
        // only the checkpoint still shows the log was cut behind it (docs/audit.md).
        op.stop();
        let op = Operator::start(dir.path(), &database);
        let plain = stdout(&op.run(&["audit", "verify", "--app", &app]));
        assert!(plain.starts_with("ok: "), "{plain}");
        let keyed = op.json(&[
            "audit",
            "list",
            "--app",
            &app,
            "--action",
            "audit.chain_keyed",
            "--json",
        ]);
        assert_eq!(keyed["items"].as_array().unwrap().len(), 1, "{keyed}");
        let caught = op.run(&[
            "audit",
            "verify",
            "--app",
            &app,
            "--checkpoint",
            &checkpoints,
        ]);
        assert_eq!(exit_code(&caught), 1);
        op.stop();
        runtime.block_on(database.drop_now()).unwrap();
    }
}

/// The checkpoint of `app` the server logged, waiting for the periodic job's first round.
fn logged_checkpoint(op: &Operator, app: &str) -> String {
    let start = format!("{{\"app_id\":\"{app}\"");
    for _ in 0..200 {
        let log = op.log();
        let line = log
            .lines()
            .find(|line| line.contains("audit checkpoint") && line.contains(&start));
        if let Some(line) = line {
            let json = &line[line.find(&start).unwrap()..=line.rfind('}').unwrap()];
            let checkpoint: Value = serde_json::from_str(json).unwrap();
            assert!(checkpoint["tag"].is_string(), "{line}");
            return json.to_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "no audit checkpoint of app {app} in the server log:\n{}",
        op.log()
    );
}

/// No SQLite file (the database, or a write-ahead log a crash left behind) holds `value`.
fn assert_no_plaintext(database: &ScratchDatabase, value: &str) {
    for file in database.sqlite_files() {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
            "{} holds the secret in plaintext",
            file.display()
        );
    }
}

/// Runs `alter` with the admin token and `input` on stdin.
fn alter_with_stdin(args: &[&str], addr: &str, token: &str, input: &str) -> Output {
    let mut child = Command::new(ALTER)
        .args(args)
        .env("ALTER_ADDR", addr)
        .env("ALTER_ADMIN_TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `alter connect` with the app key of `dev` and `args`, its stderr piped.
fn alter_connect(dev: &Running, args: &[&str]) -> Child {
    Command::new(ALTER)
        .arg("connect")
        .args(args)
        .env("ALTER_BASE_URL", dev.base_url())
        .env("ALTER_API_KEY", dev.first_line["api_key"].as_str().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn alter_connect_prints_the_url_waits_for_the_user_and_prints_the_grant() {
    use alter_testkit::oauth_peer::{OAuthPeer, Pages, PeerOptions};

    let dir = tempfile::tempdir().unwrap();
    let dev = dev(&dir.path().join("data"), &[]);
    let base_url = dev.base_url();
    let admin_token = dev.first_line["admin_token"].as_str().unwrap().to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let peer = runtime.block_on(OAuthPeer::start(PeerOptions::new(format!(
        "{base_url}/oauth/callback"
    ))));
    let configured = alter_with_stdin(
        &[
            "provider",
            "configure",
            "acme",
            "--client-id",
            peer.client_id(),
            "--client-secret-stdin",
            "--issuer",
            peer.issuer(),
            "--authorize-url",
            &peer.url("/auth"),
            "--token-url",
            &peer.url("/token"),
            "--scope",
            "openid",
            "--scope",
            "files.read",
            "--account-claim",
            "sub",
        ],
        &base_url,
        &admin_token,
        peer.client_secret(),
    );
    assert!(configured.status.success(), "{}", stderr(&configured));

    // Nobody comes: the wait ends with a clear error and what to do.
    let abandoned = alter_connect(&dev, &["acme", "--no-browser", "--timeout", "1"])
        .wait_with_output()
        .unwrap();
    assert_eq!(abandoned.status.code(), Some(1));
    let said = stderr(&abandoned);
    assert!(said.ends_with(" raise --timeout)\n"), "{said}");
    assert!(said.contains("Open this URL to authorize: http"), "{said}");
    assert!(said.contains("raise --timeout"), "{said}");

    // The user connects while the command waits; it prints the grant.
    let mut waiting = alter_connect(&dev, &["acme", "--no-browser", "--json"]);
    let url = wait_for_line(waiting.stderr.take().unwrap(), |line| {
        line.strip_prefix("Open this URL to authorize: ")
            .map(|url| Value::from(url.trim()))
    });
    let url = url.as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{base_url}/connect/")), "{url}");
    runtime.block_on(async {
        let browser = peer.browser();
        // The page's cookie binds the authorization to this client: the callback comes from it.
        let ours = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let started = ours
            .post(&url)
            .form(&[("provider", "acme")])
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), 303);
        let authorize = reqwest::Url::parse(
            started.headers()[reqwest::header::LOCATION]
                .to_str()
                .unwrap(),
        )
        .unwrap();
        let authorization = peer
            .authorize(&browser, authorize, Pages::LoginAndConsent)
            .await;
        let landed = ours
            .get(authorization.redirect.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(landed.status(), 200);
    });
    let done = waiting.wait_with_output().unwrap();
    assert!(done.status.success());
    let printed: Value = serde_json::from_slice(&done.stdout).unwrap();
    let grant = &printed[0];
    assert_eq!(grant["provider_id"], "acme");
    assert_eq!(grant["account_identifier"], "alice");
    assert_eq!(grant["operation"], "creation");
    assert_eq!(grant["scopes"], serde_json::json!(["files.read", "openid"]));
    assert!(uuid::Uuid::parse_str(grant["grant_id"].as_str().unwrap()).is_ok());

    // Without a key it says what to set.
    let keyless = Command::new(ALTER)
        .args(["connect", "acme", "--no-browser"])
        .env_remove("ALTER_API_KEY")
        .env("ALTER_BASE_URL", &base_url)
        .output()
        .unwrap();
    assert_eq!(exit_code(&keyless), 1);
    assert!(stderr(&keyless).contains("ALTER_API_KEY"));
}

#[test]
fn the_operator_cli_adds_lists_shows_tests_and_removes_policy_rules() {
    on_each_database(|op| {
        let dir = tempfile::tempdir().unwrap();
        let agent = op.create_agent("bot");
        let added = op.json(&[
            "policy",
            "add",
            "--target",
            "app",
            "--kind",
            "ip_allowlist",
            "--body",
            r#"{"cidrs": ["10.0.0.0/8"]}"#,
            "--description",
            "office",
            "--json",
        ]);
        let id = added["id"].as_str().unwrap().to_owned();
        assert_eq!(added["version"], 1);
        assert_eq!(added["effect"], "deny");
        let body = dir.path().join("body.json");
        std::fs::write(&body, r#"{"cidrs": ["192.0.2.0/24"]}"#).unwrap();
        let on_agent = op.json(&[
            "policy",
            "add",
            "--target",
            &format!("agent:{agent}"),
            "--kind",
            "ip_allowlist",
            "--mode",
            "shadow",
            "--body",
            &format!("@{}", body.display()),
            "--json",
        ]);
        assert_eq!(on_agent["target"]["type"], "agent");
        assert_eq!(on_agent["target"]["id"], agent.as_str());
        assert_eq!(on_agent["mode"], "shadow");

        let list = op.json(&["policy", "list", "--json"]);
        assert_eq!(list.as_array().unwrap().len(), 2);
        let table = stdout(&op.run(&["policy", "list"]));
        assert!(table.starts_with("ID "), "{table}");
        assert!(
            table.contains(&id) && table.contains(&format!("agent:{agent}")),
            "{table}"
        );
        let shown = stdout(&op.run(&["policy", "show", &id]));
        assert!(
            shown.contains("ip_allowlist") && shown.contains("10.0.0.0/8"),
            "{shown}"
        );

        // What-if: no traffic yet, so nothing to replay; the draft may name a target briefly.
        let draft = dir.path().join("draft.json");
        std::fs::write(
            &draft,
            format!(
                r#"[{{"target": "agent:{agent}", "kind": "ip_allowlist", "body": {{"cidrs": ["10.0.0.0/8"]}}}}]"#
            ),
        )
        .unwrap();
        let draft = draft.display().to_string();
        let report = op.json(&[
            "policy", "test", "--draft", &draft, "--since", "7d", "--json",
        ]);
        assert_eq!(report["total"], 0);
        assert_eq!(report["rules"][0]["kind"], "ip_allowlist");
        let table = stdout(&op.run(&["policy", "test", "--draft", &draft]));
        assert!(table.starts_with("RECORDS"), "{table}");

        // Bad input: a clear error, nothing saved.
        let bad = op.run(&[
            "policy",
            "add",
            "--target",
            "app",
            "--kind",
            "ip_allowlist",
            "--body",
            "{not json",
        ]);
        assert_eq!(exit_code(&bad), 1, "{}", stderr(&bad));
        let refused = op.run(&[
            "policy",
            "add",
            "--target",
            "app",
            "--kind",
            "ip_allowlist",
            "--body",
            r#"{"cidrs": ["10.0.0.0/33"]}"#,
        ]);
        assert_eq!(exit_code(&refused), 1, "{}", stderr(&refused));
        let usage = op.run(&[
            "policy", "add", "--target", "user:1", "--kind", "x", "--body", "{}",
        ]);
        assert_eq!(usage.status.code(), Some(2));
        assert_eq!(
            op.json(&["policy", "list", "--json"])
                .as_array()
                .unwrap()
                .len(),
            2
        );

        let removed = op.json(&["policy", "remove", &id, "--json"]);
        assert_eq!(removed["id"], id.as_str());
        assert_eq!(exit_code(&op.run(&["policy", "show", &id])), 4);
        assert_eq!(exit_code(&op.run(&["policy", "remove", &id])), 4);
    });
}

#[test]
fn the_operator_cli_lists_shows_and_decides_approvals() {
    on_each_database(|op| {
        let secret = stdout_json(&op.run_with_stdin(
            &[
                "secret",
                "create",
                "--name",
                "Payments",
                "--type",
                "bearer",
                "--allowed-host",
                "api.example.com",
                "--principal",
                "system",
                "--principal",
                "agent",
                "--value-stdin",
                "--json",
            ],
            "sk_live_cliApproval0123456789",
        ));
        let secret_id = secret["id"].as_str().unwrap().to_owned();
        let agent = op.signed(
            "POST",
            "/sdk/agents",
            &serde_json::json!({
                "name": "careful", "type": "agent", "metadata": {},
                "scopes": {"managed_secret_slugs": [secret["slug"]]},
                "policy": {"requires_approval": true},
            }),
        );
        let agent_id = agent["id"].as_str().unwrap().to_owned();
        let grant = op.create_system_grant(&secret_id, "main");
        let delegated =
            stdout_json(&op.run(&["grant", "delegate", &grant, "--agent", &agent_id, "--json"]));
        let delegated = delegated["grant_id"].as_str().unwrap().to_owned();
        let hold = || {
            let (status, text) = op
                .try_signed_with(
                    agent["api_key"].as_str().unwrap(),
                    &reqwest::blocking::Client::new(),
                    "POST",
                    "/sdk/proxy",
                    &serde_json::json!({
                        "method": "POST", "url": "https://api.example.com/v1/refunds",
                        "grant_id": delegated, "reason": "refund order 7",
                    }),
                )
                .unwrap();
            assert_eq!(status, 202, "{text}");
            serde_json::from_str::<Value>(&text).unwrap()["approval_id"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let first = hold();
        let second = hold();

        let listed = op.json(&["approval", "list", "--status", "pending", "--json"]);
        assert_eq!(listed.as_array().unwrap().len(), 2);
        let table = stdout(&op.run(&["approval", "list"]));
        assert!(table.starts_with("ID "), "{table}");
        assert!(
            table.contains(&first) && table.contains("refund order 7"),
            "{table}"
        );
        assert!(!table.contains("sk_live_cliApproval"), "{table}");
        let shown = stdout(&op.run(&["approval", "show", &first]));
        assert!(
            shown.contains("POST https://api.example.com/v1/refunds") && shown.contains("pending"),
            "{shown}"
        );
        // The agent's hold names no approvers: any operator decides.
        assert!(shown.contains("any operator"), "{shown}");
        assert_eq!(listed[0]["approvers"], serde_json::json!([]));

        let denied = op.json(&[
            "approval",
            "deny",
            &first,
            "--reason",
            "not today",
            "--decided-by",
            "ops",
            "--json",
        ]);
        assert_eq!(denied["status"], "denied");
        assert_eq!(denied["decision_reason"], "not today");
        assert_eq!(denied["decided_by"], "ops");
        // Decided: the other decision is a conflict (exit 5); an unknown id is not found (4).
        assert_eq!(exit_code(&op.run(&["approval", "approve", &first])), 5);
        assert_eq!(
            exit_code(&op.run(&["approval", "show", &uuid::Uuid::new_v4().to_string()])),
            4
        );
        let approved = op.json(&["approval", "approve", &second, "--json"]);
        assert_ne!(approved["status"], "pending");
        assert_ne!(approved["status"], "denied");
        let listed = op.json(&["approval", "list", "--status", "denied", "--json"]);
        assert_eq!(listed.as_array().unwrap().len(), 1);
        assert_eq!(listed[0]["id"], first.as_str());
    });
}

/// `alter server` on SQLite under `dir` with an app and a key of it, as an [`Operator`].
fn sqlite_server(dir: &Path) -> (Operator, std::path::PathBuf) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let url = format!("sqlite://{}", dir.join("data/alter.db").display());
    let (token, config) = server_config(dir, &url);
    let running = server(&config, &[]);
    let addr = running.base_url();
    let api_key = app_with_key(&addr, &token, "backed-up");
    let operator = Operator {
        server: running,
        addr,
        token,
        api_key,
        log: dir.join("unused.log"),
    };
    (operator, config)
}

/// Creates an app named `name` through the server at `addr` and mints a key of it; the key.
fn app_with_key(addr: &str, token: &str, name: &str) -> String {
    let app = stdout_json(&alter(
        &["app", "create", "--name", name, "--json"],
        addr,
        token,
    ));
    let minted = stdout_json(&alter(
        &[
            "key",
            "mint",
            "--app",
            app["id"].as_str().unwrap(),
            "--json",
        ],
        addr,
        token,
    ));
    minted["api_key"].as_str().unwrap().to_owned()
}

/// Checks the audit chain verifies; the ids of the `credential.released` events of the only
/// app.
fn verified_release_ids(op: &Operator) -> std::collections::HashSet<String> {
    let verify = stdout(&op.run(&["audit", "verify"]));
    assert!(verify.starts_with("ok: "), "{verify}");
    stdout(&op.run(&["audit", "export", "--action", "credential.released"]))
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["event"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The number of `credential.released` events of the only app.
fn released_events(op: &Operator) -> usize {
    let exported = stdout(&op.run(&["audit", "export", "--action", "credential.released"]));
    exported.lines().count()
}

#[test]
fn a_backup_taken_under_load_restores_onto_a_fresh_node() {
    const CLIENTS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let (op, config) = sqlite_server(&dir.path().join("a"));
    let value = format!("backed-up-{}", uuid::Uuid::new_v4().simple());
    let secret = op.create_bearer_secret("kept", &value);
    let grant = op.create_system_grant(secret["id"].as_str().unwrap(), "main");
    let body = serde_json::json!({
        "grant_id": grant,
        "reason": "backup",
        "request": {"method": "GET", "url": "https://api.example.com/v1/items"},
    });

    // Releases go on from other threads while the backup runs.
    let file = dir.path().join("alter.backup");
    let released = std::sync::atomic::AtomicUsize::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (before, after, backup) = std::thread::scope(|scope| {
        use std::sync::atomic::Ordering::SeqCst;
        for _ in 0..CLIENTS {
            scope.spawn(|| {
                let client = reqwest::blocking::Client::new();
                while !stop.load(SeqCst) {
                    let (status, text) =
                        op.try_signed(&client, "POST", "/sdk/token", &body).unwrap();
                    assert_eq!(status, 200, "{text}");
                    let answer: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(answer["access_token"], value.as_str());
                    released.fetch_add(1, SeqCst);
                }
            });
        }
        while released.load(SeqCst) < 50 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let before = released.load(SeqCst);
        let backup = Command::new(ALTER)
            .arg("backup")
            .arg(&file)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let after = released.load(SeqCst);
        // A little more load after the copy, so the original moves on past it.
        while released.load(SeqCst) < after + 50 {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, SeqCst);
        (before, after, backup)
    });
    assert_eq!(exit_code(&backup), 0, "{}", stderr(&backup));
    assert!(after > before, "releases went on during the backup");
    let total = released.into_inner();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the backup is private");
    }
    assert!(
        !std::fs::read(&file)
            .unwrap()
            .windows(value.len())
            .any(|w| w == value.as_bytes()),
        "the backup holds the secret sealed only"
    );

    // A backup never overwrites a file.
    let size = std::fs::metadata(&file).unwrap().len();
    let again = Command::new(ALTER)
        .arg("backup")
        .arg(&file)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(exit_code(&again), 5);
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::metadata(&file).unwrap().len(), size);
    assert_eq!(released_events(&op), total);

    // Restored with another master key: refused clearly, and nothing is left to start on.
    let wrong = dir.path().join("wrong");
    let (_, wrong_config) = server_config(
        &wrong,
        &format!("sqlite://{}", wrong.join("data/alter.db").display()),
    );
    let refused = Command::new(ALTER)
        .arg("restore")
        .arg(&file)
        .arg("--config")
        .arg(&wrong_config)
        .output()
        .unwrap();
    assert_eq!(exit_code(&refused), 1);
    assert!(
        stderr(&refused).contains("wrong master key"),
        "{}",
        stderr(&refused)
    );
    let left: Vec<_> = std::fs::read_dir(wrong.join("data"))
        .map(|dir| dir.map(|entry| entry.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing usable is left: {left:?}");

    // Restored on a fresh node with the same master key.
    let fresh = dir.path().join("b");
    let (fresh_token, fresh_config) = server_config(
        &fresh,
        &format!("sqlite://{}", fresh.join("data/alter.db").display()),
    );
    std::fs::remove_file(fresh.join("secrets/master.key")).unwrap();
    std::fs::copy(
        dir.path().join("a/secrets/master.key"),
        fresh.join("secrets/master.key"),
    )
    .unwrap();
    let restore = |extra: &[&str]| {
        Command::new(ALTER)
            .arg("restore")
            .arg(&file)
            .arg("--config")
            .arg(&fresh_config)
            .args(extra)
            .output()
            .unwrap()
    };
    let restored = restore(&[]);
    assert_eq!(exit_code(&restored), 0, "{}", stderr(&restored));
    // A database that holds data is replaced only with --force.
    let occupied = restore(&[]);
    assert_eq!(exit_code(&occupied), 5);
    assert!(
        stderr(&occupied).contains("--force"),
        "{}",
        stderr(&occupied)
    );
    let forced = restore(&["--force"]);
    assert_eq!(exit_code(&forced), 0, "{}", stderr(&forced));
    let api_key = op.api_key.clone();
    drop(op);

    // A server on the restored copy: the chain verifies, it holds at least every release
    // answered before the backup began, and the grant's credential is released.
    let running = server(&fresh_config, &[]);
    let node = Operator {
        addr: running.base_url(),
        server: running,
        token: fresh_token,
        api_key,
        log: fresh.join("unused.log"),
    };
    let verify = stdout(&node.run(&["audit", "verify"]));
    assert!(
        verify.starts_with("ok: ") && verify.contains("the chain verifies"),
        "{verify}"
    );
    let kept = released_events(&node);
    // (A release committed before the copy may be answered just after the backup exits.)
    assert!(
        kept >= before && kept <= after + CLIENTS,
        "the copy is of one instant during the backup: {before} <= {kept} <= {after} + {CLIENTS}"
    );
    let answer = node.signed("POST", "/sdk/token", &body);
    assert_eq!(answer["access_token"], value.as_str());
    assert_eq!(released_events(&node), kept + 1);
    assert!(node.server.terminate().success());

    // PostgreSQL has its own tools.
    let elsewhere = dir.path().join("pg.backup");
    let pg = Command::new(ALTER)
        .arg("backup")
        .arg(&elsewhere)
        .env(
            "ALTER_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/test",
        )
        .output()
        .unwrap();
    assert_eq!(exit_code(&pg), 1);
    assert!(stderr(&pg).contains("pg_dump"), "{}", stderr(&pg));
    assert!(!elsewhere.exists());
}
