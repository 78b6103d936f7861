//! The leak watch. Every secret value a test stores through the HTTP API (creating or rotating
//! a managed secret, configuring an OAuth provider's client secret) is remembered; every error
//! body the server sends and everything logged in the test process (server, SDK and their
//! dependencies, at DEBUG) is kept. When a test server
//! stops, none of the remembered values may appear in any of them, nor in the SQLite files.
//!
//! Nextest runs each test in its own process, so this state is one test's; under `cargo test`
//! it spans a binary's tests, which only widens the scan.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, Once};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use serde_json::Value;

/// Values shorter than this are too likely to occur by chance (in a message, an id) to scan
/// for; every value the suite stores is longer.
const MIN_WATCHED_LEN: usize = 8;
/// Bodies are buffered up to this size for the scan.
const MAX_BUFFERED: usize = 64 * 1024 * 1024;

#[derive(Debug, Default)]
struct Seen {
    values: BTreeSet<String>,
    /// (method and path, status, body) of every error answer.
    error_bodies: Vec<(String, u16, Bytes)>,
}

static SEEN: LazyLock<Mutex<Seen>> = LazyLock::new(Mutex::default);
static LOG: LazyLock<Arc<Mutex<Vec<u8>>>> = LazyLock::new(Arc::default);

/// Remembers `value` (a secret stored some other way than the HTTP API).
pub fn watch(value: &str) {
    if value.len() >= MIN_WATCHED_LEN {
        seen().values.insert(value.to_owned());
    }
}

fn seen() -> std::sync::MutexGuard<'static, Seen> {
    SEEN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends everything logged in this process, at DEBUG and above, into the watch's buffer.
pub(crate) fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .try_init();
    });
}

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        // For debugging a test: `ALTER_TEST_LOG=1` shows the servers' logs too.
        if std::env::var_os("ALTER_TEST_LOG").is_some() {
            std::io::stderr().write_all(bytes)?;
        }
        LOG.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Wraps a server's router: learns secret values from the requests that store them, keeps the
/// body of every error answer.
pub(crate) fn tap(router: Router) -> Router {
    router.layer(middleware::from_fn(record))
}

async fn record(request: Request, next: Next) -> Response {
    let route = format!("{} {}", request.method(), request.uri().path());
    let stores_secret = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH
    ) && (request.uri().path().contains("/secrets")
        || request.uri().path().contains("/providers"));
    let request = if stores_secret {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_BUFFERED)
            .await
            .unwrap_or_default();
        if let Ok(json) = serde_json::from_slice::<Value>(&bytes) {
            // A secret's value, or an OAuth provider's client secret.
            for field in ["value", "client_secret"] {
                if let Some(value) = json.get(field) {
                    learn(value);
                }
            }
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        request
    };
    let response = next.run(request).await;
    if !(response.status().is_client_error() || response.status().is_server_error()) {
        return response;
    }
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BUFFERED)
        .await
        .unwrap_or_default();
    seen().error_bodies.push((route, status, bytes.clone()));
    Response::from_parts(parts, Body::from(bytes))
}

/// A stored value, and, when it is a JSON object of fields (multi-field and AWS secrets), each
/// field's value.
fn learn(value: &Value) {
    let Some(text) = value.as_str() else { return };
    watch(text);
    if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(text) {
        for field in fields.values().filter_map(Value::as_str) {
            watch(field);
        }
    }
}

/// How many error answers the watch has kept.
pub fn error_answers_seen() -> usize {
    seen().error_bodies.len()
}

/// Every place a watched value appears: an error body, the captured log, one of `files`.
pub fn findings(files: &[PathBuf]) -> Vec<String> {
    let seen = seen();
    let log = LOG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let contains = |haystack: &[u8], needle: &str| {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    let files: Vec<(&PathBuf, Vec<u8>)> = files
        .iter()
        .filter_map(|file| std::fs::read(file).ok().map(|bytes| (file, bytes)))
        .collect();
    let mut found = Vec::new();
    for value in &seen.values {
        found.extend(outside_files(&seen, &log, value));
        for (file, bytes) in &files {
            if contains(bytes, value) {
                found.push(format!("{} (plaintext)", file.display()));
            }
        }
    }
    found
}

/// Every error body and the captured log, where `value` appears so far — for a value the
/// database keeps on purpose (a webhook's URL), so it cannot be watched.
pub fn findings_outside_the_database(value: &str) -> Vec<String> {
    let log = LOG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    outside_files(&seen(), &log, value)
}

fn outside_files(seen: &Seen, log: &[u8], value: &str) -> Vec<String> {
    let contains = |haystack: &[u8]| haystack.windows(value.len()).any(|w| w == value.as_bytes());
    let mut found: Vec<String> = seen
        .error_bodies
        .iter()
        .filter(|(_, _, body)| contains(body))
        .map(|(route, status, body)| {
            format!(
                "the {status} answer to {route}: {}",
                String::from_utf8_lossy(body)
            )
        })
        .collect();
    if contains(log) {
        found.push("the process's log output".to_owned());
    }
    found
}
