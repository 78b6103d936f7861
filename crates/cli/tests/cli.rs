//! The `alter` binary, black-box: `alter dev`, `alter server` and the operator commands, run as
//! real processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use alter_store::scratch::ScratchDatabase;
use serde_json::Value;

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
    let mut child = Command::new(ALTER)
        .args(["dev", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .env_remove("ALTER_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
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
    command
        .args(["server", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
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
    let dir = tempfile::tempdir().unwrap();
    let init = Command::new(ALTER)
        .args(["server", "init", "--dir"])
        .arg(dir.path().join("secrets"))
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let token = std::fs::read_to_string(dir.path().join("secrets/admin.token")).unwrap();
    for database in databases() {
        let url = database.url();
        let config = dir.path().join("alter.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\ndatabase_url = \"{url}\"\nlog_format = \"json\"\nmaster_key_file = \"{}\"\nadmin_token_file = \"{}\"\n",
                dir.path().join("secrets/master.key").display(),
                dir.path().join("secrets/admin.token").display()
            ),
        )
        .unwrap();
        let migrate = Command::new(ALTER)
            .args(["server", "migrate", "--config"])
            .arg(&config)
            .env("ALTER_LISTEN", "127.0.0.1:0")
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
