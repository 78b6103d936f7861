//! `token`: signed `POST /sdk/token` releases — each one resolves a grant, checks its rules,
//! decrypts the secret and durably appends an audit event before answering — beside the
//! server's cheapest signed request (`GET /sdk/scopes`: admission and nonce only), at several
//! client concurrencies.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alter_proto::signing::{self, SigningKey};
use alter_sdk::{App, Principal};

use crate::stats::Summary;
use crate::{Engine, harness};

/// Options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent clients, one run each.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
    clients: Vec<usize>,
    /// Seconds each (request, clients) pair runs after its warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Database engine.
    #[arg(long, value_enum, default_value_t = Engine::Sqlite)]
    engine: Engine,
}

/// One kind of request, signed afresh for every send.
#[derive(Debug, Clone)]
struct Call {
    label: &'static str,
    method: reqwest::Method,
    path: &'static str,
    body: Vec<u8>,
}

/// What a client pool sends and signs with.
#[derive(Debug)]
struct Target {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    key: SigningKey,
}

impl Target {
    async fn send(&self, call: &Call) -> Result<(), String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let signed = signing::plain_request_headers(
            &self.api_key,
            &self.key,
            call.method.as_str(),
            call.path,
            &call.body,
            now,
            &nonce,
        );
        let mut request = self.http.request(
            call.method.clone(),
            format!("{}{}", self.base_url, call.path),
        );
        for (name, value) in signed {
            request = request.header(name, value);
        }
        if !call.body.is_empty() {
            request = request
                .header("content-type", "application/json")
                .body(call.body.clone());
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        // Read the whole answer: a release is not done until its body has arrived.
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!(
                "{} answered {status}: {} bytes",
                call.label,
                body.len()
            ))
        }
    }
}

/// Requests per second and latencies of `clients` concurrent loops of `call`.
async fn measure(
    target: &Arc<Target>,
    call: &Call,
    clients: usize,
    run_for: Duration,
) -> Result<(f64, Summary), String> {
    // Warm up: open the connections, fill the caches.
    let warm_until = Instant::now() + Duration::from_secs(1);
    let started = warm_until;
    let stop_at = started + run_for;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let target = target.clone();
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let t = Instant::now();
                if t >= stop_at {
                    break;
                }
                target.send(&call).await?;
                if t >= warm_until {
                    samples.push(t.elapsed());
                }
            }
            Ok::<_, String>(samples)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.map_err(|e| e.to_string())??);
    }
    let rate = all.len() as f64 / run_for.as_secs_f64();
    Ok((rate, Summary::of(&mut all)))
}

pub async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let bench = harness::start(args.engine).await?;
    let result = release_and_compare(&bench, &args).await;
    bench.finish().await?;
    result
}

async fn release_and_compare(
    bench: &harness::Bench,
    args: &Args,
) -> Result<(), Box<dyn std::error::Error>> {
    let app = App::builder(bench.api_key.as_str())
        .base_url(&bench.base_url)
        .build_app()?;
    let grant = app
        .create_managed_secret_grant(&bench.secret_id.to_string(), Principal::system(), None)
        .await?;
    let release = serde_json::to_vec(&serde_json::json!({
        "grant_id": grant.grant_id,
        "reason": "benchmark",
        "request": {"method": "GET", "url": "https://api.example.com/v1/items"},
    }))?;
    let cheap = Call {
        label: "GET /sdk/scopes",
        method: reqwest::Method::GET,
        path: "/sdk/scopes",
        body: Vec::new(),
    };
    let token = Call {
        label: "POST /sdk/token",
        method: reqwest::Method::POST,
        path: "/sdk/token",
        body: release,
    };
    let target = Arc::new(Target {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?,
        base_url: bench.base_url.clone(),
        key: signing::signing_key(&bench.api_key),
        api_key: bench.api_key.clone(),
    });
    let run_for = Duration::from_secs(args.seconds);
    println!("| request | clients | req/s | p50 ms | p95 ms | p99 ms | max ms | token / cheap |");
    println!("|---|---|---|---|---|---|---|---|");
    for &clients in &args.clients {
        let (cheap_rate, cheap_summary) = measure(&target, &cheap, clients, run_for).await?;
        let (token_rate, token_summary) = measure(&target, &token, clients, run_for).await?;
        for (call, rate, summary, ratio) in [
            (&cheap, cheap_rate, cheap_summary, String::new()),
            (
                &token,
                token_rate,
                token_summary,
                format!("{:.0}%", 100.0 * token_rate / cheap_rate),
            ),
        ] {
            println!("{} {ratio} |", summary.rate_row(call.label, clients, rate));
        }
    }
    Ok(())
}
