//! Several `alter server` processes on one PostgreSQL, with calls spread over them as a
//! round-robin load balancer would: they act as one vault (revocations, nonces, rate limits and
//! approvals hold across nodes), run each background job on one node at a time, and lose no
//! committed write when nodes are killed under load. Without `ALTER_TEST_DATABASE_URL` these
//! tests have nothing to run on and pass at once (`.ci/run` always sets it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use alter_store::scratch::ScratchDatabase;
use serde_json::{Value, json};

use super::{ALTER, Operator, Running, Signed, app_with_key, server_config, stdout, stdout_json};

/// Nodes of one vault on one PostgreSQL schema, each an [`Operator`] sharing the admin token
/// and an app key.
struct Cluster {
    dir: tempfile::TempDir,
    database: Option<ScratchDatabase>,
    config: PathBuf,
    token: String,
    api_key: String,
    nodes: Vec<Operator>,
    /// How many processes were started, naming each one's log.
    started: usize,
}

impl Cluster {
    /// `n` nodes with `extra` appended to their shared configuration; `None` without
    /// `ALTER_TEST_DATABASE_URL`.
    fn start(n: usize, extra: &str) -> Option<Cluster> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let database = runtime
            .block_on(ScratchDatabase::postgres())
            .expect("ALTER_TEST_DATABASE_URL is set but PostgreSQL is unreachable")?;
        let dir = tempfile::tempdir().unwrap();
        let (token, config) = server_config(dir.path(), database.url());
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(extra);
        std::fs::write(&config, text).unwrap();
        let mut cluster = Cluster {
            dir,
            database: Some(database),
            config,
            token,
            api_key: String::new(),
            nodes: Vec::new(),
            started: 0,
        };
        let first = cluster.spawn();
        cluster.api_key = app_with_key(&first.0.base_url(), &cluster.token, "clustered");
        let first = cluster.operator(first);
        cluster.nodes.push(first);
        for _ in 1..n {
            let node = cluster.spawn();
            let node = cluster.operator(node);
            cluster.nodes.push(node);
        }
        Some(cluster)
    }

    /// Starts one more `alter server` process on the cluster's configuration, logging to a
    /// file of its own.
    fn spawn(&mut self) -> (Running, PathBuf) {
        let log = self.dir.path().join(format!("node-{}.log", self.started));
        self.started += 1;
        let mut command = Command::new(ALTER);
        command
            .args(["server", "--config"])
            .arg(&self.config)
            // Each run of a background job is logged at debug level.
            .env("RUST_LOG", "info,alter::jobs=debug")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = command.spawn().unwrap();
        let addr = wait_for_address(&log);
        let running = Running {
            child,
            first_line: json!({ "base_url": format!("http://{addr}") }),
        };
        (running, log)
    }

    fn operator(&self, (server, log): (Running, PathBuf)) -> Operator {
        Operator {
            addr: server.base_url(),
            server,
            token: self.token.clone(),
            api_key: self.api_key.clone(),
            log,
        }
    }

    /// Replaces node `i` (killed, say) with a new process.
    fn restart(&mut self, i: usize) {
        let node = self.spawn();
        self.nodes[i] = self.operator(node);
    }

    fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// A signed call sent to each node in turn, from the one after the last call's (a
    /// round-robin balancer), skipping nodes that do not answer; the status and body.
    fn call(&self, turn: &AtomicUsize, signed: &Signed) -> (reqwest::StatusCode, String) {
        let client = reqwest::blocking::Client::new();
        let addrs = self.addrs();
        for _ in 0..addrs.len() * 20 {
            let at = turn.fetch_add(1, Ordering::Relaxed) % addrs.len();
            if let Ok(answer) = signed.send(&client, &addrs[at]) {
                return answer;
            }
        }
        panic!("no node answered");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        if let Some(database) = self.database.take() {
            let _ = tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(database.drop_now());
        }
    }
}

/// The address a server logs (JSON) once it listens, read from its log file.
fn wait_for_address(log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(addr) = text.lines().find_map(|line| {
            let value: Value = serde_json::from_str(line).ok()?;
            value["fields"]["addr"].as_str().map(str::to_owned)
        }) {
            return addr;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "the server did not start: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn code(text: &str) -> String {
    serde_json::from_str::<Value>(text).unwrap_or_default()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn release_body(grant: &str) -> Value {
    json!({
        "grant_id": grant,
        "request": {"method": "GET", "url": "https://api.example.com/v1/items"},
    })
}

/// Three nodes act as one vault: a nonce used on one is refused on the others; a key or a
/// grant revoked through one is refused on the next call through another (even one that
/// verified the key a moment before); a rate limit counts calls on every node together; an
/// approval decided through several nodes at once is made once.
#[test]
fn nodes_on_one_postgres_act_as_one_vault() {
    let Some(cluster) = Cluster::start(3, "[upstream]\nallowed_networks = [\"127.0.0.0/8\"]\n")
    else {
        return;
    };
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    let client = reqwest::blocking::Client::new();
    let value = format!("cluster-secret-{}", uuid::Uuid::new_v4().simple());
    let secret = a.create_bearer_secret("clustered", &value);
    let grant = a.create_system_grant(secret["id"].as_str().unwrap(), "main");
    let turn = AtomicUsize::new(0);
    for _ in 0..30 {
        let signed = Signed::new(
            &cluster.api_key,
            "POST",
            "/sdk/token",
            &release_body(&grant),
        );
        let (status, text) = cluster.call(&turn, &signed);
        assert_eq!(status, 200, "{text}");
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap()["access_token"],
            value.as_str()
        );
    }

    // One nonce, three nodes: one release.
    let once = Signed::new(
        &cluster.api_key,
        "POST",
        "/sdk/token",
        &release_body(&grant),
    );
    assert_eq!(once.send(&client, &a.addr).unwrap().0, 200);
    for node in [b, c, a] {
        let (status, text) = once.send(&client, &node.addr).unwrap();
        assert_eq!(status, 401, "a replay through {}: {text}", node.addr);
    }

    // A key verified by C a moment ago, revoked through B: C refuses it at once.
    let key = stdout_json(&a.run(&["key", "mint", "--name", "short-lived", "--json"]));
    let with_key = |node: &Operator| {
        Signed::new(
            key["api_key"].as_str().unwrap(),
            "POST",
            "/sdk/token",
            &release_body(&grant),
        )
        .send(&client, &node.addr)
        .unwrap()
    };
    assert_eq!(with_key(c).0, 200);
    stdout_json(&b.run(&["key", "revoke", key["id"].as_str().unwrap(), "--json"]));
    for node in [c, a] {
        let (status, text) = with_key(node);
        assert_eq!(
            (status.as_u16(), code(&text).as_str()),
            (401, "key_revoked")
        );
    }

    // A grant revoked through A: refused on B and C on the next call.
    let doomed = a.create_system_grant(secret["id"].as_str().unwrap(), "doomed");
    let on = |node: &Operator, grant: &str| {
        Signed::new(&cluster.api_key, "POST", "/sdk/token", &release_body(grant))
            .send(&client, &node.addr)
            .unwrap()
    };
    assert_eq!(on(b, &doomed).0, 200);
    assert!(
        a.run(&["grant", "revoke", &doomed, "--reason", "gone"])
            .status
            .success()
    );
    for node in [b, c] {
        let (status, text) = on(node, &doomed);
        assert!(status.is_client_error(), "{status} {text}");
        assert!(!text.contains(&value), "{text}");
    }

    approvals_are_made_once(&cluster);

    // A rate limit of 5 per key, taken on whichever node a call reaches.
    let limited = stdout_json(&a.run(&["key", "mint", "--name", "limited", "--json"]));
    a.json(&[
        "policy",
        "add",
        "--target",
        "app",
        "--kind",
        "rate_limit",
        "--body",
        r#"{"per_minute": 1, "burst": 5, "per": "key"}"#,
        "--json",
    ]);
    let mut statuses = Vec::new();
    for _ in 0..15 {
        let signed = Signed::new(
            limited["api_key"].as_str().unwrap(),
            "POST",
            "/sdk/token",
            &release_body(&grant),
        );
        let (status, text) = cluster.call(&turn, &signed);
        assert!(
            status == 200 || code(&text) == "rate_limit_exceeded",
            "{text}"
        );
        statuses.push(status.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );

    for node in &cluster.nodes {
        assert!(!node.log().contains(&value), "the secret is in a log");
    }
}

/// A held call, approved through all three nodes at once: one approval wins, and the call
/// reaches the (real, local) upstream once, whichever node collects its result.
fn approvals_are_made_once(cluster: &Cluster) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime.block_on(alter_testkit::upstream::Upstream::start());
    let a = &cluster.nodes[0];
    let secret = stdout_json(&a.run_with_stdin(
        &[
            "secret",
            "create",
            "--name",
            "Refunds",
            "--type",
            "bearer",
            "--allowed-host",
            "127.0.0.1",
            "--principal",
            "system",
            "--principal",
            "agent",
            "--value-stdin",
            "--json",
        ],
        "sk_live_clusterApproval0123456789",
    ));
    let agent = a.signed(
        "POST",
        "/sdk/agents",
        &json!({
            "name": "careful", "type": "agent", "metadata": {},
            "scopes": {"managed_secret_slugs": [secret["slug"]]},
            "policy": {"requires_approval": true},
        }),
    );
    let grant = a.create_system_grant(secret["id"].as_str().unwrap(), "refunds");
    let delegated = stdout_json(&a.run(&[
        "grant",
        "delegate",
        &grant,
        "--agent",
        agent["id"].as_str().unwrap(),
        "--json",
    ]));
    let agent_key = agent["api_key"].as_str().unwrap();
    let client = reqwest::blocking::Client::new();
    for round in 1..=3 {
        let held = Signed::new(
            agent_key,
            "POST",
            "/sdk/proxy",
            &json!({
                "method": "POST", "url": format!("{}/v1/refunds", upstream.url()),
                "grant_id": delegated["grant_id"], "reason": "refund order 7",
            }),
        );
        let (status, text) = held.send(&client, &cluster.nodes[round % 3].addr).unwrap();
        assert_eq!(status, 202, "{text}");
        let id = serde_json::from_str::<Value>(&text).unwrap()["approval_id"]
            .as_str()
            .unwrap()
            .to_owned();
        // A double click on three nodes: each decision succeeds or finds it decided.
        std::thread::scope(|scope| {
            for node in &cluster.nodes {
                let id = id.clone();
                scope.spawn(move || {
                    let code = super::exit_code(&node.run(&["approval", "approve", &id]));
                    assert!(code == 0 || code == 5, "approve exited {code}");
                });
            }
        });
        // Every node is asked for the result until one has it.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut collected = None;
        while collected.is_none() && Instant::now() < deadline {
            for node in &cluster.nodes {
                let path = format!("/sdk/approvals/{id}/result");
                let (status, text) = Signed::new(agent_key, "GET", &path, &Value::Null)
                    .send(&client, &node.addr)
                    .unwrap();
                if status == 200 {
                    collected = Some(text);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(collected.is_some(), "round {round}: the result came back");
        assert_eq!(upstream.received().len(), round, "round {round}");
    }
    for (action, want) in [("approval.approved", 3), ("approval.executed", 3)] {
        let events = stdout(&a.run(&["audit", "export", "--action", action]));
        assert_eq!(events.lines().count(), want, "{action}");
    }
}

/// Each background job runs on one node at a time: of three nodes, one runs the approval
/// sweep (every 5 s); when it is killed, another takes the job over once its lease runs out
/// (three intervals), and a node stopping cleanly hands it over at the next run.
#[test]
fn background_jobs_run_on_one_node_at_a_time() {
    const WINDOW: Duration = Duration::from_secs(11);
    let Some(mut cluster) = Cluster::start(3, "") else {
        return;
    };
    let runs = |node: &Operator| {
        node.log()
            .lines()
            .filter(|line| {
                let value = serde_json::from_str::<Value>(line).unwrap_or_default();
                value["fields"]["message"] == "running the job"
                    && value["fields"]["job"] == "approval-sweep"
            })
            .count()
    };
    let counts = |cluster: &Cluster| -> Vec<usize> { cluster.nodes.iter().map(runs).collect() };
    // The one node whose count moves over two intervals, once some node runs the job.
    let only_runner = |cluster: &Cluster| -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        while counts(cluster).iter().all(|n| *n == 0) {
            assert!(Instant::now() < deadline, "no node runs the job");
            std::thread::sleep(Duration::from_millis(200));
        }
        let before = counts(cluster);
        std::thread::sleep(WINDOW);
        let after = counts(cluster);
        let moved: Vec<usize> = (0..before.len())
            .filter(|i| after[*i] > before[*i])
            .collect();
        assert_eq!(moved.len(), 1, "{before:?} → {after:?}");
        moved[0]
    };
    let first = only_runner(&cluster);

    // Killed: another node takes over once the lease runs out.
    cluster.nodes[first].kill();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != first).collect();
    let before = counts(&cluster);
    let deadline = Instant::now() + Duration::from_secs(45);
    let taken_over = loop {
        let now = counts(&cluster);
        if let Some(i) = survivors.iter().find(|i| now[**i] > before[**i]) {
            break *i;
        }
        assert!(Instant::now() < deadline, "no node took the job over");
        std::thread::sleep(Duration::from_millis(200));
    };
    cluster.restart(first);
    assert_eq!(
        only_runner(&cluster),
        taken_over,
        "the restarted node waits its turn"
    );

    // Stopped cleanly: its lease is given up and another node runs the job at its next run.
    let node = cluster.nodes.remove(taken_over);
    let before = counts(&cluster);
    let log = node.stop();
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut moved = false;
    while !moved && Instant::now() < deadline {
        moved = counts(&cluster)
            .iter()
            .zip(&before)
            .any(|(now, then)| now > then);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        moved,
        "a lease given up is taken at the next run: {before:?} {:?}\n{}",
        counts(&cluster),
        log.lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
}

/// Ten times (`ALTER_KILL_ROUNDS` for more) a node is killed (SIGKILL) in the middle of
/// releases spread over two nodes and started again: every release answered was audited, the
/// audit chain verifies, and the secret is in no log and nowhere in the database in plaintext.
#[test]
fn nodes_killed_under_load_lose_no_committed_write() {
    let rounds: usize = std::env::var("ALTER_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    const CLIENTS: usize = 4;
    let Some(mut cluster) = Cluster::start(2, "") else {
        return;
    };
    let value = format!("kill-secret-{}", uuid::Uuid::new_v4().simple());
    let secret = cluster.nodes[0].create_bearer_secret("killed", &value);
    let grant = cluster.nodes[0].create_system_grant(secret["id"].as_str().unwrap(), "main");
    let released = Mutex::new(Vec::<String>::new());
    let refused = AtomicUsize::new(0);
    for round in 0..rounds {
        let victim = round % 2;
        let before = released.lock().unwrap().len();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let stop = &stop;
            let (cluster, released, refused) = (&cluster, &released, &refused);
            let grant = &grant;
            let value = &value;
            for client in 0..CLIENTS {
                scope.spawn(move || {
                    let http = reqwest::blocking::Client::new();
                    let addrs = cluster.addrs();
                    let mut at = client;
                    while !stop.load(Ordering::Relaxed) {
                        at += 1;
                        let signed = Signed::new(
                            &cluster.api_key,
                            "POST",
                            "/sdk/token",
                            &release_body(grant),
                        );
                        // A node that went away: the balancer sends the next call elsewhere.
                        let Ok((status, text)) = signed.send(&http, &addrs[at % addrs.len()])
                        else {
                            continue;
                        };
                        if status != 200 {
                            // Only a node going down may refuse, and it says so.
                            assert_eq!(status, 503, "{text}");
                            refused.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        let answer: Value = serde_json::from_str(&text).unwrap();
                        assert_eq!(answer["access_token"], value.as_str());
                        let id = answer["token_generation"].as_str().unwrap().to_owned();
                        released.lock().unwrap().push(id);
                    }
                });
            }
            // Kill at a different point of each round.
            let target = before + 40 + 13 * (round % 10);
            while released.lock().unwrap().len() < target {
                std::thread::sleep(Duration::from_millis(1));
            }
            cluster.nodes[victim].kill();
            // The survivor keeps serving alone for a moment.
            let alone = released.lock().unwrap().len() + 20;
            while released.lock().unwrap().len() < alone {
                std::thread::sleep(Duration::from_millis(1));
            }
            stop.store(true, Ordering::Relaxed);
        });
        cluster.restart(victim);
    }
    let released = released.into_inner().unwrap();
    let audited = super::verified_release_ids(&cluster.nodes[0]);
    let missing = released.iter().filter(|id| !audited.contains(*id)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} answered releases have no audit record",
        released.len()
    );
    eprintln!(
        "{rounds} kills: {} releases answered and audited, {} audited in all, {} refused with 503",
        released.len(),
        audited.len(),
        refused.load(Ordering::Relaxed)
    );
    for i in 0..cluster.started {
        let log =
            std::fs::read_to_string(cluster.dir.path().join(format!("node-{i}.log"))).unwrap();
        assert!(!log.contains(&value), "the secret is in node {i}'s log");
    }
    super::assert_no_plaintext(cluster.database.as_ref().unwrap(), &value);
}
