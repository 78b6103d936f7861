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
