//! Faults under load: the database restarting under a serving node (PostgreSQL) and the disk
//! filling up under it (SQLite). Calls fail closed — a 503 `service_unavailable`, nothing
//! released — and recover by themselves; nothing answered is lost and the audit chain verifies.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::own_postgres::{OwnPostgres, is_root};
use super::{Operator, Signed, app_with_key, server, server_config};

/// `alter server` on `database_url` with an app, a key of it and a granted secret holding
/// `value`; the operator and the grant. A call waits at most a second for a connection. `env`
/// adds settings.
pub(super) fn serving(
    dir: &Path,
    database_url: &str,
    value: &str,
    env: &[(&str, &str)],
) -> (Operator, String) {
    let (token, config) = server_config(dir, database_url);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[database]\nacquire_timeout_seconds = 1\n");
    std::fs::write(&config, text).unwrap();
    let running = server(&config, env);
    let addr = running.base_url();
    let api_key = app_with_key(&addr, &token, "faulty");
    let op = Operator {
        server: running,
        addr,
        token,
        api_key,
        log: dir.join("unused.log"),
    };
    let secret = op.create_bearer_secret("faulty", value);
    let grant = op.create_system_grant(secret["id"].as_str().unwrap(), "main");
    (op, grant)
}

/// One answered call: when it was answered, and the release id of a 200.
struct Answer {
    at: Instant,
    released: Option<String>,
}

/// Releases from `clients` threads until `stop`: every answer is a 200 carrying `value` or a
/// 503 `service_unavailable`, never anything else.
fn load(
    op: &Operator,
    grant: &str,
    value: &str,
    clients: usize,
    stop: &AtomicBool,
    answers: &Mutex<Vec<Answer>>,
) {
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                let body = json!({
                    "grant_id": grant,
                    "request": {"method": "GET", "url": "https://api.example.com/v1/items"},
                });
                while !stop.load(Ordering::Relaxed) {
                    let signed = Signed::new(&op.api_key, "POST", "/sdk/token", &body);
                    let (status, text) = signed.send(&http, &op.addr).unwrap();
                    let released = if status == 200 {
                        let answer: Value = serde_json::from_str(&text).unwrap();
                        assert_eq!(answer["access_token"], value);
                        Some(answer["token_generation"].as_str().unwrap().to_owned())
                    } else {
                        assert_eq!(status, 503, "{text}");
                        let error: Value = serde_json::from_str(&text).unwrap();
                        assert_eq!(error["error"], "service_unavailable", "{text}");
                        assert!(!text.contains(value));
                        std::thread::sleep(Duration::from_millis(20));
                        None
                    };
                    answers.lock().unwrap().push(Answer {
                        at: Instant::now(),
                        released,
                    });
                }
            });
        }
    });
}

/// How many answers from the `from`-th on were releases (`released`) or refusals.
fn counted(answers: &Mutex<Vec<Answer>>, from: usize, released: bool) -> usize {
    answers.lock().unwrap()[from..]
        .iter()
        .filter(|a| a.released.is_some() == released)
        .count()
}

pub(super) fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The audit chain verifies and holds every release answered.
fn every_answered_release_audited(op: &Operator, answers: &[Answer]) {
    let audited = super::verified_release_ids(op);
    for id in answers.iter().filter_map(|a| a.released.as_ref()) {
        assert!(
            audited.contains(id),
            "release {id} was answered but not audited"
        );
    }
}

/// PostgreSQL killed (immediate stop) under load and started again: while it is down (longer
/// than a call waits for a connection) every call is a 503 and nothing is released;
/// afterwards calls succeed again without touching the node.
#[test]
fn a_postgres_restart_fails_calls_closed_and_they_recover() {
    let pg = OwnPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let value = format!("restart-secret-{}", uuid::Uuid::new_v4().simple());
    let (op, grant) = serving(dir.path(), &pg.url(), &value, &[]);
    let stop = AtomicBool::new(false);
    let answers = Mutex::new(Vec::new());
    let (down, up) = std::thread::scope(|scope| {
        scope.spawn(|| load(&op, &grant, &value, 4, &stop, &answers));
        wait_for("releases before the restart", || {
            counted(&answers, 0, true) >= 100
        });
        pg.stop_immediate();
        let down = Instant::now();
        std::thread::sleep(Duration::from_secs(3));
        let up = Instant::now();
        pg.start_again();
        let answered = answers.lock().unwrap().len();
        wait_for("releases after the restart", || {
            counted(&answers, answered, true) >= 50
        });
        stop.store(true, Ordering::Relaxed);
        (down, up)
    });
    let answers = answers.into_inner().unwrap();
    let during: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.at > down && a.at < up)
        .collect();
    assert!(!during.is_empty(), "calls were answered while it was down");
    assert!(
        during.iter().all(|a| a.released.is_none()),
        "nothing is released while the database is down"
    );
    every_answered_release_audited(&op, &answers);
    eprintln!(
        "PostgreSQL restart: {} answers, {} releases, {} refused while down",
        answers.len(),
        answers.iter().filter(|a| a.released.is_some()).count(),
        during.len()
    );
}

/// A size-limited file system mounted for the test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        assert!(
            is_root(),
            "the disk-full test mounts a tmpfs and needs root (as CI runs)"
        );
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs failed");
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the file system holding `path` with one file until it is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut filler = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while filler.write_all(&chunk).is_ok() {}
    let _ = filler.flush();
}

/// SQLite's disk fills up under load: calls answer 503 (no 500, nothing released without its
/// record), and once space returns they succeed again; the database is intact.
#[test]
fn a_full_disk_fails_sqlite_calls_closed_and_they_recover() {
    let disk = SmallDisk::mount("24m");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", disk.path().join("alter.db").display());
    let value = format!("full-disk-secret-{}", uuid::Uuid::new_v4().simple());
    let (op, grant) = serving(dir.path(), &url, &value, &[]);
    let filler = disk.path().join("filler");
    let stop = AtomicBool::new(false);
    let answers = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        scope.spawn(|| load(&op, &grant, &value, 2, &stop, &answers));
        wait_for("releases before the disk fills", || {
            counted(&answers, 0, true) >= 50
        });
        fill(&filler);
        wait_for("refusals on the full disk", || {
            counted(&answers, 0, false) >= 20
        });
        std::fs::remove_file(&filler).unwrap();
        let answered = answers.lock().unwrap().len();
        wait_for("releases once space returned", || {
            counted(&answers, answered, true) >= 50
        });
        stop.store(true, Ordering::Relaxed);
    });
    let answers = answers.into_inner().unwrap();
    every_answered_release_audited(&op, &answers);
    drop(op);
    let check = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])",
        ])
        .arg(disk.path().join("alter.db"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok");
    eprintln!(
        "SQLite disk full: {} answers, {} releases, {} refused",
        answers.len(),
        answers.iter().filter(|a| a.released.is_some()).count(),
        answers.iter().filter(|a| a.released.is_none()).count()
    );
}
