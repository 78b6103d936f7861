//! Webhooks across the death of the sending node: events are produced while the receiver is
//! slow, the node is killed (SIGKILL) in the middle of delivering them, and a new process on the
//! same database delivers the rest. Every event produced arrives at least once, under its own
//! id (so deduplicating by `webhook-id` gives exactly the events produced), validly signed.
//! The `alter webhook` commands manage the endpoint on the way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use alter_testkit::webhooks::{Receiver, signed_by};
use serde_json::Value;

use super::{
    alter, app_with_key, databases, exit_code, server, server_config, stdout, stdout_json,
};

/// Events produced while the receiver is slow.
const EVENTS: usize = 40;

/// Every audit event of `app`, oldest first: (id, action).
fn audit_events(addr: &str, token: &str, app: &str) -> Vec<(String, String)> {
    let client = reqwest::blocking::Client::new();
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{addr}/admin/v1/apps/{app}/audit?limit=500");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = client
            .get(url)
            .bearer_auth(token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        for item in page["items"].as_array().unwrap() {
            out.push((
                item["event"]["id"].as_str().unwrap().to_owned(),
                item["event"]["action"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// Mints a key of `app` on the admin API: one `key.minted` event.
fn mint(addr: &str, token: &str, app: &str) {
    let status = reqwest::blocking::Client::new()
        .post(format!("{addr}/admin/v1/apps/{app}/keys"))
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
}

fn run(dir: &Path, database_url: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = runtime.block_on(Receiver::start());
    let (token, config) = server_config(dir, database_url);
    // The receiver is on loopback, which the SSRF guard refuses unless allowed.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[upstream]\nallowed_networks = [\"127.0.0.0/8\"]\n");
    std::fs::write(&config, text).unwrap();
    let node = server(&config, &[]);
    let addr = node.base_url();
    app_with_key(&addr, &token, "hooks");
    let apps = stdout_json(&alter(&["app", "list", "--json"], &addr, &token));
    let app = apps[0]["id"].as_str().unwrap().to_owned();

    // Added with the CLI: the secret is printed once, never listed.
    let added = stdout_json(&alter(
        &[
            "webhook",
            "add",
            "--url",
            &receiver.url(),
            "--event",
            "*",
            "--json",
        ],
        &addr,
        &token,
    ));
    let secret = added["secret"].as_str().unwrap().to_owned();
    let webhook = added["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let listed = alter(&["webhook", "list"], &addr, &token);
    assert_eq!(exit_code(&listed), 0);
    assert!(stdout(&listed).contains(&webhook));
    assert!(!stdout(&listed).contains("whsec_"));
    let listed = alter(&["webhook", "list", "--json"], &addr, &token);
    assert!(!stdout(&listed).contains("whsec_"));

    // Events while the receiver takes its time over each.
    receiver.set_delay(Duration::from_millis(150));
    for _ in 0..EVENTS {
        mint(&addr, &token, &app);
    }
    // Killed mid-delivery: some events are in, most are not.
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.received().len() < 5 {
        assert!(Instant::now() < deadline, "deliveries started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = node.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    drop(node);
    let before_restart = receiver.received().len();
    assert!(
        before_restart < EVENTS,
        "the node was killed in the middle of delivering ({before_restart} received)"
    );

    // A new process on the same database takes the job over (once the dead node's lease has
    // run out) and delivers the rest.
    receiver.set_delay(Duration::from_millis(10));
    let node = server(&config, &[]);
    let addr = node.base_url();
    let produced = audit_events(&addr, &token, &app);
    let from = produced
        .iter()
        .position(|(_, action)| action == "webhook.created")
        .unwrap();
    let expected: BTreeSet<String> = produced[from..].iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        produced[from..]
            .iter()
            .filter(|(_, a)| a == "key.minted")
            .count(),
        EVENTS
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got: BTreeSet<String> = receiver.received().into_iter().map(|r| r.id).collect();
        if expected.is_subset(&got) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} events arrived",
            expected.intersection(&got).count(),
            expected.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let received = receiver.received();
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for r in &received {
        assert!(signed_by(&secret, r), "a valid signature: {r:?}");
        let body = r.json();
        assert_eq!(body["data"]["id"], r.id.as_str(), "the id is the event's");
        *by_id.entry(r.id.clone()).or_default() += 1;
    }
    let ids: BTreeSet<String> = by_id.keys().cloned().collect();
    assert_eq!(ids, expected, "deduplicated, exactly the events produced");
    let repeats: usize = by_id.values().map(|n| n - 1).sum();
    eprintln!(
        "webhooks across a kill: {} events, {} requests ({repeats} repeats), {before_restart} before the kill",
        expected.len(),
        received.len()
    );

    // The delivery log, and a replay: the same id once more.
    let log = stdout_json(&alter(
        &[
            "webhook",
            "deliveries",
            &webhook,
            "--json",
            "--limit",
            "1000",
        ],
        &addr,
        &token,
    ));
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), expected.len());
    let deadline = Instant::now() + Duration::from_secs(30);
    while stdout_json(&alter(
        &[
            "webhook",
            "deliveries",
            &webhook,
            "--status",
            "pending",
            "--json",
        ],
        &addr,
        &token,
    ))
    .as_array()
    .is_some_and(|a| !a.is_empty())
    {
        assert!(Instant::now() < deadline, "every delivery recorded");
        std::thread::sleep(Duration::from_millis(100));
    }
    let event = log[0]["event_id"].as_str().unwrap().to_owned();
    let count = |id: &str| receiver.received().iter().filter(|r| r.id == id).count();
    let sent = count(&event);
    let replayed = stdout_json(&alter(
        &["webhook", "replay", &webhook, &event, "--json"],
        &addr,
        &token,
    ));
    assert_eq!(replayed["status"], "pending");
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&event) == sent {
        assert!(Instant::now() < deadline, "the replay arrived");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Rotated: the new secret is printed once; removed: gone.
    let rotated = stdout_json(&alter(
        &["webhook", "rotate-secret", &webhook, "--json"],
        &addr,
        &token,
    ));
    assert_ne!(rotated["secret"], secret.as_str());
    assert_eq!(rotated["secret_version"], 2);
    let removed = alter(&["webhook", "remove", &webhook], &addr, &token);
    assert_eq!(exit_code(&removed), 0);
    let gone = alter(&["webhook", "deliveries", &webhook], &addr, &token);
    assert_eq!(gone.status.code(), Some(4));
    drop(node);
}

#[test]
fn every_event_arrives_signed_across_a_kill_of_the_sending_node() {
    for database in databases() {
        let dir = tempfile::tempdir().unwrap();
        run(dir.path(), database.url());
    }
}
