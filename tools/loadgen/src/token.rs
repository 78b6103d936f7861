//! `token`: signed `POST /sdk/token` releases — each one resolves a grant, checks its rules,
//! decrypts the secret and durably appends an audit event before answering — beside the
//! server's cheapest signed request (`GET /sdk/scopes`: admission and nonce only), at several
//! client concurrencies.

use std::sync::Arc;
use std::time::Duration;

use alter_sdk::{App, Principal};

use crate::drive::{Call, Target, Work, measure};
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
    let target = Arc::new(Target::new(&bench.base_url, &bench.api_key)?);
    let run_for = Duration::from_secs(args.seconds);
    println!("| request | clients | req/s | p50 ms | p95 ms | p99 ms | max ms | token / cheap |");
    println!("|---|---|---|---|---|---|---|---|");
    for &clients in &args.clients {
        let (cheap_rate, cheap_summary) =
            measure(&target, &Work::Signed(cheap.clone()), clients, run_for).await?;
        let (token_rate, token_summary) =
            measure(&target, &Work::Signed(token.clone()), clients, run_for).await?;
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
