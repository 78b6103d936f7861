//! Slow or numerous clients cannot starve the server, over real sockets: half-sent requests
//! are dropped at the header deadline, trickled bodies at the body deadline (before any
//! authentication), and a request still sending its body holds none of the request slots (the
//! cap's 503 is tested beside the middleware, in `alter-server`). Raw paths that escape a
//! separator are refused before the signature is checked.

use std::time::Duration;

use alter_sdk::{CreateAgent, ListGrants};
use alter_server::HttpLimits;
use alter_testkit::{Options, TestServer, on_every_engine};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A bound no healthy run comes near: hitting it means the server was starved, or never
/// closed a connection it should have.
const GENEROUS: Duration = Duration::from_secs(60);

async fn start(engine: alter_testkit::Engine, limits: HttpLimits) -> TestServer {
    TestServer::start_with(
        engine,
        Options {
            http: limits,
            ..Options::default()
        },
    )
    .await
}

async fn connect(server: &TestServer) -> TcpStream {
    let addr = server
        .base_url()
        .strip_prefix("http://")
        .expect("an http base URL");
    TcpStream::connect(addr).await.expect("connect")
}

/// Reads until the server closes the connection (or resets it); what arrived before.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&received).into_owned(),
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn half_sent_requests_neither_starve_a_call_nor_stay_open() {
    on_every_engine(|engine| async move {
        let server = start(
            engine,
            HttpLimits {
                header_read_timeout: Duration::from_secs(5),
                max_connections: 256,
                ..HttpLimits::default()
            },
        )
        .await;
        let app = server.new_app("a").await;
        let mut held = Vec::new();
        for _ in 0..200 {
            let mut stream = connect(&server).await;
            stream
                .write_all(b"POST /sdk/token HTTP/1.1\r\nHost: alter\r\nX-Alter-Api")
                .await
                .unwrap();
            held.push(stream);
        }

        let client = server.app(&app.key.api_key);
        tokio::time::timeout(GENEROUS, client.list_grants(ListGrants::new()))
            .await
            .expect("a normal call was starved by half-sent requests")
            .unwrap();

        tokio::time::timeout(GENEROUS, async {
            for stream in &mut held {
                read_until_closed(stream).await;
            }
        })
        .await
        .expect("the server keeps connections whose headers never finish");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_body_slower_than_its_deadline_is_cut_off_before_authentication() {
    on_every_engine(|engine| async move {
        let server = start(
            engine,
            HttpLimits {
                body_read_timeout: Duration::from_secs(1),
                ..HttpLimits::default()
            },
        )
        .await;
        let stream = connect(&server).await;
        let (mut read, mut write) = stream.into_split();
        // Unsigned: the deadline comes before authentication.
        write
            .write_all(
                b"POST /sdk/token HTTP/1.1\r\nHost: alter\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
            )
            .await
            .unwrap();
        let trickle = tokio::spawn(async move {
            for _ in 0..1000 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if write.write_all(b" ").await.is_err() {
                    return;
                }
            }
        });
        let answer = tokio::time::timeout(GENEROUS, async {
            let mut received = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = read.read(&mut buf).await {
                received.extend_from_slice(&buf[..n]);
            }
            String::from_utf8_lossy(&received).into_owned()
        })
        .await
        .expect("a trickled body is read forever");
        trickle.abort();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains(r#""error":"request_timeout""#), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_request_whose_body_never_comes_holds_no_request_slot() {
    on_every_engine(|engine| async move {
        let server = start(
            engine,
            HttpLimits {
                max_concurrent_requests: 1,
                ..HttpLimits::default()
            },
        )
        .await;
        let app = server.new_app("a").await;
        // The server asks for the body (`100 Continue`, sent when it starts reading it), which
        // never comes: the request is still being read, not handled, so it takes no slot.
        let mut stalled = connect(&server).await;
        stalled
            .write_all(
                b"POST /sdk/token HTTP/1.1\r\nHost: alter\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
            )
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(GENEROUS, stalled.read(&mut buf))
            .await
            .expect("the server never started on the stalled request")
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 100"));

        let answered = server
            .raw(&app.key.api_key, "GET", "/sdk/scopes")
            .send()
            .await;
        assert_eq!(answered.status, 200, "{:?}", answered.json);
        drop(stalled);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn raw_paths_escaping_a_separator_are_refused_before_the_signature() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.new_app("a").await;
        let app = server.app(&world.key.api_key);
        let agent = app
            .agents()
            .create(CreateAgent::new("bot", json!({})))
            .await
            .unwrap()
            .agent;
        for path in [
            format!("/sdk/agents/{}%3Fforce=true", agent.id),
            format!("/sdk/agents/{}%3fforce=true", agent.id),
            format!("/sdk/agents/{}%23x", agent.id),
            format!("/sdk/agents/x%2F{}", agent.id),
            format!("/sdk/agents/x%2f{}", agent.id),
        ] {
            // Correctly signed for that raw path.
            let refused = server.raw(&world.key.api_key, "DELETE", &path).send().await;
            assert_eq!(refused.status, 400, "{path}: {:?}", refused.json);
            assert_eq!(refused.code(), Some("invalid_path"), "{path}");
        }
        assert_eq!(
            app.agents().get(&agent.id).await.unwrap().status,
            "active",
            "nothing changed"
        );
        server.stop().await;
    })
    .await;
}
