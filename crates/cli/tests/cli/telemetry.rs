//! Request ids in the JSON logs and the answers, and OpenTelemetry export over OTLP/HTTP to a
//! collector stand-in: a real HTTP server on loopback that keeps every export it receives.

use std::io::Read;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::*;

/// A minimal HTTP/1.1 server that answers every request 200 and keeps its body.
struct Collector {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let kept = kept.clone();
                std::thread::spawn(move || {
                    while let Some(body) = read_request(&mut stream) {
                        kept.lock().unwrap().push(body);
                        let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                        if stream.write_all(answer.as_bytes()).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Collector { url, bodies }
    }

    /// Every span exported so far.
    fn spans(&self) -> Vec<Value> {
        let bodies = self.bodies.lock().unwrap().clone();
        bodies
            .iter()
            .flat_map(|body| {
                let export: Value = serde_json::from_str(body).unwrap();
                export["resourceSpans"][0]["scopeSpans"][0]["spans"]
                    .as_array()
                    .unwrap()
                    .clone()
            })
            .collect()
    }

    /// Waits until a span satisfies `pick`.
    fn span(&self, pick: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(span) = self.spans().into_iter().find(|s| pick(s)) {
                return span;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no such span: {:?}",
                self.spans()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One request's body (POST with a Content-Length, as the exporter sends), or `None` at EOF.
fn read_request(stream: &mut std::net::TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("post /v1/traces "), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .expect("a content length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some(String::from_utf8(body).unwrap())
}

fn attribute<'a>(span: &'a Value, key: &str) -> &'a Value {
    let found = span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key);
    found.map_or(&Value::Null, |a| &a["value"])
}

#[test]
fn requests_carry_ids_into_logs_answers_and_exported_spans() {
    let collector = Collector::start();
    let database = ScratchDatabase::sqlite().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (token, config) = server_config(dir.path(), database.url());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("otlp_endpoint = \"{}\"\n", collector.url));
    std::fs::write(&config, text).unwrap();

    // The server, with every log line kept.
    let mut child = Command::new(ALTER)
        .args(["server", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = Arc::new(Mutex::new(Vec::<String>::new()));
    let (addr_tx, addr_rx) = mpsc::channel();
    {
        let logs = logs.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = serde_json::from_str::<Value>(&line)
                    .ok()
                    .and_then(|v| v["fields"]["addr"].as_str().map(str::to_owned))
                {
                    let _ = addr_tx.send(addr);
                }
                logs.lock().unwrap().push(line);
            }
        });
    }
    let running = Running {
        child,
        first_line: serde_json::json!({
            "base_url": format!("http://{}", addr_rx.recv_timeout(Duration::from_secs(60)).unwrap())
        }),
    };
    let base = running.base_url();
    let client = reqwest::blocking::Client::new();

    // A caller's trace is continued; its request id (a load balancer's) is kept beside ours,
    // never as ours.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let answer = client
        .get(format!("{base}/admin/v1/apps"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .header("x-request-id", "lb-1234.abc")
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    let ours = answer.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        ours.len() == 16 && ours.bytes().all(|b| b.is_ascii_hexdigit()),
        "{ours}"
    );
    let span = collector.span(|s| s["traceId"] == trace);
    assert_eq!(span["parentSpanId"], parent);
    assert_eq!(span["name"], "GET /admin/v1/apps");
    assert_eq!(span["kind"], 2);
    assert_eq!(
        attribute(&span, "alter.request_id")["stringValue"],
        ours.as_str()
    );
    assert_eq!(
        attribute(&span, "alter.client_request_id")["stringValue"],
        "lb-1234.abc"
    );
    assert_eq!(
        attribute(&span, "http.response.status_code")["intValue"],
        "200"
    );

    // Without them: a new trace; an id that is not a plain token is not kept at all.
    let answer = client
        .get(format!("{base}/admin/v1/apps"))
        .bearer_auth("wrong-token")
        .header("x-request-id", "two words\tand a tab")
        .send()
        .unwrap();
    assert_eq!(answer.status(), 401);
    let id = answer.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let span = collector.span(|s| attribute(s, "alter.request_id")["stringValue"] == id.as_str());
    assert_ne!(span["traceId"], trace);
    assert_eq!(span["parentSpanId"], Value::Null);
    assert_eq!(attribute(&span, "alter.client_request_id"), &Value::Null);
    assert_eq!(
        attribute(&span, "http.response.status_code")["intValue"],
        "401"
    );

    // The response log line names the request id; nothing exported or logged holds the token.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !logs.lock().unwrap().iter().any(|l| l.contains(&id)) {
        assert!(
            std::time::Instant::now() < deadline,
            "no log line names {id}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let logged = logs.lock().unwrap().join("\n");
    let line: Value = logged
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["span"]["request_id"] == id.as_str() && v["fields"]["message"] == "response")
        .unwrap_or_else(|| panic!("{logged}"));
    assert_eq!(line["fields"]["status"], 401);
    let exported = collector.bodies.lock().unwrap().join("\n");
    for text in [&logged, &exported] {
        assert!(!text.contains(token.trim()), "the admin token never shows");
    }
    let resource = &serde_json::from_str::<Value>(collector.bodies.lock().unwrap()[0].as_str())
        .unwrap()["resourceSpans"][0]["resource"];
    assert!(
        resource.to_string().contains("\"service.name\""),
        "{resource}"
    );
    drop(running);
}

/// The samples of a Prometheus text exposition, read strictly: every line a `# HELP`, a
/// `# TYPE` or `name[{labels}] value` with a number; keyed by the series as written.
fn prometheus(body: &str) -> std::collections::BTreeMap<String, f64> {
    let mut samples = std::collections::BTreeMap::new();
    for line in body.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "{line:?}"
        );
        assert!(!series.contains('{') || series.ends_with('}'), "{line:?}");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            other => other.parse().unwrap_or_else(|_| panic!("{line:?}")),
        };
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "twice: {line}"
        );
    }
    samples
}

/// `alter dev` with `ALTER_OTLP_ENDPOINT` set, its credentials and the server's base URL.
fn dev_exporting_to(endpoint: &str) -> (Running, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(ALTER)
        .args(["dev", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .env_remove("ALTER_DATABASE_URL")
        .env("ALTER_OTLP_ENDPOINT", endpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first_line = wait_for_line(stdout, |line| {
        Some(serde_json::from_str(line).expect("first line is JSON"))
    });
    (Running { child, first_line }, data)
}

/// Scrapes `/metrics` until `done` holds for its samples (or fails after 20 s).
fn metrics_until(
    running: &Running,
    done: impl Fn(&std::collections::BTreeMap<String, f64>) -> bool,
) -> std::collections::BTreeMap<String, f64> {
    let client = reqwest::blocking::Client::new();
    let token = running.first_line["admin_token"].as_str().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        // Every scrape is a request too: its span is queued for export.
        let answer = client
            .get(format!("{}/metrics", running.base_url()))
            .bearer_auth(token)
            .send()
            .unwrap();
        assert_eq!(answer.status(), 200);
        let samples = prometheus(&answer.text().unwrap());
        if done(&samples) {
            return samples;
        }
        assert!(std::time::Instant::now() < deadline, "{samples:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn alter_dev_exports_spans_and_metrics_count_what_was_exported_and_dropped() {
    const EXPORTED: &str = "alter_otlp_spans_exported_total";
    const FAILED: &str = "alter_otlp_spans_dropped_total{reason=\"export_failed\"}";
    const FULL: &str = "alter_otlp_spans_dropped_total{reason=\"queue_full\"}";

    // `alter dev` honours ALTER_OTLP_ENDPOINT as `alter server` does.
    let collector = Collector::start();
    let (running, _data) = dev_exporting_to(&collector.url);
    let answer = reqwest::blocking::Client::new()
        .get(format!("{}/admin/v1/apps", running.base_url()))
        .bearer_auth(running.first_line["admin_token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    let span = collector.span(|s| s["name"] == "GET /admin/v1/apps");
    assert_eq!(
        attribute(&span, "http.response.status_code")["intValue"],
        "200"
    );
    let samples = metrics_until(&running, |s| s.get(EXPORTED).is_some_and(|n| *n >= 1.0));
    assert_eq!(samples.get(FAILED), Some(&0.0));
    assert_eq!(samples.get(FULL), Some(&0.0));
    drop(running);

    // A collector that is not there: the spans are dropped, and counted.
    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/traces", gone.local_addr().unwrap());
    drop(gone);
    let (running, _data) = dev_exporting_to(&url);
    let samples = metrics_until(&running, |s| s.get(FAILED).is_some_and(|n| *n >= 1.0));
    assert_eq!(samples.get(EXPORTED), Some(&0.0));
    drop(running);
}
