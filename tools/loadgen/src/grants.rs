//! `grants-list`: `list_grants` a page at a time over an app holding many grants.

use std::time::Instant;

use alter_core::ports::Clock;
use alter_core::time::SystemClock;
use alter_sdk::{App, ListGrants};

use crate::stats::Summary;
use crate::{Engine, harness};

/// Options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Grants in the app.
    #[arg(long, default_value_t = 1_000_000)]
    grants: usize,
    /// Page size.
    #[arg(long, default_value_t = 100)]
    page_size: i64,
    /// Pages to read, spread evenly over the whole listing (first and last included).
    #[arg(long, default_value_t = 2_000)]
    pages: i64,
    /// Database engine.
    #[arg(long, value_enum, default_value_t = Engine::Sqlite)]
    engine: Engine,
}

pub async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let bench = harness::start(args.engine).await?;
    let result = list_pages(&bench, &args).await;
    bench.finish().await?;
    result
}

async fn list_pages(bench: &harness::Bench, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    bench
        .store
        .seed_system_grants(
            bench.app_id,
            bench.secret_id,
            args.grants,
            SystemClock.now(),
        )
        .await?;
    eprintln!(
        "seeded {} grants in {:.1} s",
        args.grants,
        started.elapsed().as_secs_f64()
    );
    let app = App::builder(bench.api_key.as_str())
        .base_url(&bench.base_url)
        .build_app()?;
    let total = i64::try_from(args.grants)?;
    let last_page = (total - 1).max(0) / args.page_size;
    let step = (last_page / args.pages.max(1)).max(1);

    // Warm up connections and caches.
    for _ in 0..20 {
        app.list_grants(ListGrants::new().limit(args.page_size))
            .await?;
    }
    let mut whole = Vec::new();
    let mut page = 0;
    while page <= last_page {
        let offset = page * args.page_size;
        let t = Instant::now();
        let result = app
            .list_grants(ListGrants::new().limit(args.page_size).offset(offset))
            .await?;
        whole.push(t.elapsed());
        if result.total != total || result.grants.is_empty() {
            return Err(format!(
                "page at {offset}: total {} and {} grants",
                result.total,
                result.grants.len()
            )
            .into());
        }
        page += step;
    }
    let mut filtered = Vec::new();
    for i in 0..50 {
        let offset = (i * (total / 50)).min(total - 1);
        let t = Instant::now();
        app.list_grants(
            ListGrants::new()
                .status("active")
                .limit(args.page_size)
                .offset(offset),
        )
        .await?;
        filtered.push(t.elapsed());
    }
    println!("| listing | pages | p50 ms | p95 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    println!(
        "{}",
        Summary::of(&mut whole).row(&format!(
            "app, {} per page, offsets 0…{total}",
            args.page_size
        ))
    );
    println!(
        "{}",
        Summary::of(&mut filtered).row("app, status=active filter")
    );
    Ok(())
}
