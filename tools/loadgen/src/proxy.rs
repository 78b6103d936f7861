//! `proxy`: what proxy mode costs over calling the upstream directly. A minimal upstream on
//! 127.0.0.1 answers `{"ok":true}`; the same closed-loop client then times a direct `GET` of
//! it, a signed `POST /sdk/proxy` (the vault authenticates, resolves, checks rules, commits the
//! release, injects the credential, calls the upstream and records the outcome) and retrieve
//! mode as the official client runs it (a signed `POST /sdk/token`, the direct `GET`, then the
//! call's report, `POST /sdk/oauth/audit/api-call`, in the background), at each client count.

use std::sync::Arc;
use std::time::Duration;

use alter_sdk::{App, Principal};

use crate::drive::{Call, Target, Work, measure};
use crate::{Engine, harness};

/// Options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent clients, one run each.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16])]
    clients: Vec<usize>,
    /// Seconds each (mode, clients) pair runs after its warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Database engine.
    #[arg(long, value_enum, default_value_t = Engine::Sqlite)]
    engine: Engine,
}

pub async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let bench = harness::start(args.engine).await?;
    let result = compare(&bench, &args).await;
    bench.finish().await?;
    result
}

/// Serves `{"ok":true}` to every request on an ephemeral loopback port (HTTP/1.1 keep-alive,
/// straight on hyper); returns its base URL.
async fn start_upstream() -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = hyper::service::service_fn(|_request| async {
                hyper::Response::builder()
                    .header("content-type", "application/json")
                    .body(String::from("{\"ok\":true}"))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), answer),
            );
        }
    });
    Ok(format!("http://{address}"))
}

async fn compare(bench: &harness::Bench, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let upstream = format!("{}/v1/items", start_upstream().await?);
    let app = App::builder(bench.api_key.as_str())
        .base_url(&bench.base_url)
        .build_app()?;
    let grant = app
        .create_managed_secret_grant(&bench.secret_id.to_string(), Principal::system(), None)
        .await?;
    let proxy = Call {
        label: "POST /sdk/proxy",
        method: reqwest::Method::POST,
        path: "/sdk/proxy",
        body: serde_json::to_vec(&serde_json::json!({
            "grant_id": grant.grant_id,
            "method": "GET",
            "url": upstream,
            "reason": "benchmark",
        }))?,
    };
    let token = Call {
        label: "POST /sdk/token",
        method: reqwest::Method::POST,
        path: "/sdk/token",
        body: serde_json::to_vec(&serde_json::json!({
            "grant_id": grant.grant_id,
            "reason": "benchmark",
            "request": {"method": "GET", "url": upstream},
        }))?,
    };
    let report = Call {
        label: "POST /sdk/oauth/audit/api-call",
        method: reqwest::Method::POST,
        path: "/sdk/oauth/audit/api-call",
        body: serde_json::to_vec(&serde_json::json!({
            "grant_id": grant.grant_id,
            "method": "GET",
            "url": upstream,
            "response_status": 200,
            "latency_ms": 1,
            "reason": "benchmark",
        }))?,
    };
    let modes = [
        ("direct GET of the upstream", Work::Plain(upstream.clone())),
        ("proxy (POST /sdk/proxy)", Work::Signed(proxy)),
        (
            "retrieve (token, GET, report)",
            Work::Retrieve {
                token,
                url: upstream,
                report,
            },
        ),
    ];
    let target = Arc::new(Target::new(&bench.base_url, &bench.api_key)?);
    let run_for = Duration::from_secs(args.seconds);
    println!("| mode | clients | calls/s | p50 ms | p95 ms | p99 ms | max ms | note |");
    println!("|---|---|---|---|---|---|---|---|");
    for &clients in &args.clients {
        let mut measured = Vec::new();
        for (label, work) in &modes {
            let (rate, summary) = measure(&target, work, clients, run_for).await?;
            measured.push((label, rate, summary));
        }
        let (_, _, direct) = measured[0];
        let (_, proxy_rate, proxy) = measured[1];
        let (_, retrieve_rate, _) = measured[2];
        for (i, (label, rate, summary)) in measured.iter().enumerate() {
            let note = match i {
                1 => format!(
                    "p50 overhead over direct {:.2} ms",
                    (proxy.p50.as_secs_f64() - direct.p50.as_secs_f64()) * 1000.0
                ),
                2 => format!(
                    "proxy / retrieve {:.0}%",
                    100.0 * proxy_rate / retrieve_rate
                ),
                _ => String::new(),
            };
            println!("{} {note} |", summary.rate_row(label, clients, *rate));
        }
    }
    Ok(())
}
