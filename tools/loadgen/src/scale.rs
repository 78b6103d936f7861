//! Figures for docs/scale.md, all against the release-built `alter server` in its own process:
//!
//! - `rss`: the server's resident memory with 10k, 100k and 1M grants in one app (seeded in
//!   bulk as `grants-list` does), each read from `/proc/<pid>/status` after a fresh start and a
//!   warm pass of listings over the whole range and releases;
//! - `apps`: releases per second with every client on one app (one audit chain head) and with
//!   the clients spread over 100 apps;
//! - `profile`: `perf record` (flat samples, 999 Hz) of the server while clients release, then the top of
//!   `perf report`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alter_core::ports::Clock;
use alter_core::time::SystemClock;
use alter_sdk::{App, ListGrants};

use crate::Engine;
use crate::drive::{Call, Target, Work, http_client, measure, measure_spread};
use crate::external::{
    AlterProcess, BenchApp, BoxError, default_alter_binary, pg_counters, pg_sizes,
};
use crate::stats::ms;
use crate::vs_openbao::{cpu_of, engine_name, load_average, postgres_cpu};

fn release_work(app: &BenchApp) -> Result<Work, BoxError> {
    Ok(Work::Signed(Call {
        label: "POST /sdk/token",
        method: reqwest::Method::POST,
        path: "/sdk/token",
        body: serde_json::to_vec(&serde_json::json!({
            "grant_id": app.grant_id,
            "reason": "benchmark",
            "request": {"method": "GET", "url": "https://api.example.com/v1/items"},
        }))?,
    }))
}

/// Options of `rss`.
#[derive(Debug, clap::Args)]
pub struct RssArgs {
    /// Grant counts, ascending (each step seeds the difference).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000, 100_000, 1_000_000])]
    grants: Vec<usize>,
    /// Database engine.
    #[arg(long, value_enum, default_value_t = Engine::Sqlite)]
    engine: Engine,
    /// The `alter` binary (default: beside this one).
    #[arg(long)]
    alter_bin: Option<PathBuf>,
}

pub async fn rss(args: RssArgs) -> Result<(), BoxError> {
    let binary = args.alter_bin.clone().unwrap_or_else(default_alter_binary);
    let mut alter = AlterProcess::start(&binary, args.engine, "rss").await?;
    let result = rss_steps(&mut alter, &args).await;
    alter.finish()?;
    result
}

async fn rss_steps(alter: &mut AlterProcess, args: &RssArgs) -> Result<(), BoxError> {
    let app = alter.add_app("rss").await?;
    let store = alter.store().await?;
    println!(
        "{} (load average: {})\n",
        engine_name(args.engine),
        load_average()
    );
    println!("| grants | VmRSS MiB after warm pass | VmHWM MiB | RSS right after start MiB |");
    println!("|---|---|---|---|");
    let mut have = 1usize; // the app's own grant
    let mut steps = vec![1usize];
    steps.extend(args.grants.iter().copied());
    for target in steps {
        if target > have {
            let t = Instant::now();
            store
                .seed_system_grants(app.app_id, app.secret_id, target - have, SystemClock.now())
                .await?;
            eprintln!(
                "seeded {} grants in {:.1} s",
                target - have,
                t.elapsed().as_secs_f64()
            );
            have = target;
        }
        alter.restart().await?;
        let (start_rss, _) = alter.memory_kib()?;
        warm(alter, &app, have).await?;
        let (rss, hwm) = alter.memory_kib()?;
        let mib = |k: u64| format!("{:.1}", k as f64 / 1024.0);
        println!(
            "| {have} | {} | {} | {} |",
            mib(rss),
            mib(hwm),
            mib(start_rss)
        );
    }
    store.close().await;
    if matches!(args.engine, Engine::Postgres) {
        println!("\n{}", pg_sizes(&alter.database_url)?);
    }
    Ok(())
}

/// 200 listing pages spread over the whole range, then 3 s of releases at 16 clients.
async fn warm(alter: &AlterProcess, app: &BenchApp, grants: usize) -> Result<(), BoxError> {
    let sdk = App::builder(app.api_key.as_str())
        .base_url(&alter.base_url)
        .build_app()?;
    let total = i64::try_from(grants)?;
    let step = (total / 200).max(1);
    let mut offset = 0;
    while offset < total {
        let page = sdk
            .list_grants(ListGrants::new().limit(100).offset(offset))
            .await?;
        if page.total != total {
            return Err(format!("listing total {} != {total}", page.total).into());
        }
        offset += step;
    }
    let target = Arc::new(Target::new(&alter.base_url, &app.api_key)?);
    measure(&target, &release_work(app)?, 16, Duration::from_secs(3)).await?;
    Ok(())
}

/// Options of `apps`.
#[derive(Debug, clap::Args)]
pub struct AppsArgs {
    /// Apps the clients are spread over, one run each.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 100, 1])]
    apps: Vec<usize>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds per run after the warm-up.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Storage engines, in order.
    #[arg(long, value_delimiter = ',', value_enum, default_values_t = [Engine::Sqlite, Engine::Postgres])]
    engines: Vec<Engine>,
    /// The `alter` binary (default: beside this one).
    #[arg(long)]
    alter_bin: Option<PathBuf>,
}

pub async fn apps(args: AppsArgs) -> Result<(), BoxError> {
    let binary = args.alter_bin.clone().unwrap_or_else(default_alter_binary);
    println!(
        "| engine | apps | clients | releases/s | p50 ms | p99 ms | p999 ms | server CPU ms/release | PG CPU ms/release | load average |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &engine in &args.engines {
        let alter = AlterProcess::start(&binary, engine, "apps").await?;
        let result = apps_runs(&alter, engine, &args).await;
        alter.finish()?;
        result?;
    }
    Ok(())
}

async fn apps_runs(alter: &AlterProcess, engine: Engine, args: &AppsArgs) -> Result<(), BoxError> {
    let most = args.apps.iter().copied().max().unwrap_or(1);
    let http = http_client()?;
    let mut pairs = Vec::new();
    for i in 0..most {
        let app = alter.add_app(&format!("bench-{i}")).await?;
        pairs.push((
            Arc::new(Target::with_client(
                http.clone(),
                &alter.base_url,
                &app.api_key,
            )),
            release_work(&app)?,
        ));
    }
    let pid = alter.pid().ok_or("alter server not running")?;
    let postgres = matches!(engine, Engine::Postgres);
    let mut per_release = Vec::new();
    for &n in &args.apps {
        let before = if postgres {
            Some(pg_counters(&alter.database_url)?)
        } else {
            None
        };
        let (cpu0, pg0) = (cpu_of(pid), postgres_cpu());
        let (rate, summary) =
            measure_spread(&pairs[..n], args.clients, Duration::from_secs(args.seconds)).await?;
        let (cpu1, pg1) = (cpu_of(pid), postgres_cpu());
        if let Some(before) = before {
            // Let the backends' statistics reach the cumulative stats (flushed at most once
            // a second while busy).
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after = pg_counters(&alter.database_url)?;
            let releases = after["audit_events"] - before["audit_events"];
            let line: Vec<String> = after
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k} {:.3}",
                        (v - before.get(k).copied().unwrap_or(0.0)) / releases.max(1.0)
                    )
                })
                .collect();
            per_release.push(format!(
                "{n} app(s): {releases} releases; per release: {}",
                line.join(", ")
            ));
        }
        let total = rate * (args.seconds as f64 + 1.0);
        let per = |s: f64| 1000.0 * s / total.max(1.0);
        println!(
            "| {} | {n} | {} | {rate:.0} | {} | {} | {} | {:.3} | {} | {} |",
            engine_name(engine),
            args.clients,
            ms(summary.p50),
            ms(summary.p99),
            ms(summary.p999),
            per(cpu1 - cpu0),
            if matches!(engine, Engine::Postgres) {
                format!("{:.3}", per(pg1 - pg0))
            } else {
                String::new()
            },
            load_average(),
        );
    }
    for line in per_release {
        println!("\nPostgreSQL counters, {line}");
    }
    if postgres {
        println!("\n{}", pg_sizes(&alter.database_url)?);
    }
    Ok(())
}

/// Options of `profile`.
#[derive(Debug, clap::Args)]
pub struct ProfileArgs {
    /// Concurrent clients releasing while `perf` samples.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds sampled.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Database engine.
    #[arg(long, value_enum, default_value_t = Engine::Sqlite)]
    engine: Engine,
    /// Where `perf record` writes.
    #[arg(long, default_value = "perf.data")]
    output: PathBuf,
    /// The `alter` binary (default: beside this one).
    #[arg(long)]
    alter_bin: Option<PathBuf>,
}

pub async fn profile(args: ProfileArgs) -> Result<(), BoxError> {
    let binary = args.alter_bin.clone().unwrap_or_else(default_alter_binary);
    let alter = AlterProcess::start(&binary, args.engine, "perf").await?;
    let result = profile_run(&alter, &args).await;
    alter.finish()?;
    result
}

async fn profile_run(alter: &AlterProcess, args: &ProfileArgs) -> Result<(), BoxError> {
    let app = alter.add_app("perf").await?;
    let target = Arc::new(Target::new(&alter.base_url, &app.api_key)?);
    let work = release_work(&app)?;
    let pid = alter.pid().ok_or("alter server not running")?;
    // Warm up, then sample exactly the measured span.
    measure(&target, &work, args.clients, Duration::from_secs(1)).await?;
    let mut perf = Command::new("perf")
        .args(["record", "-F", "999", "-p", &pid.to_string(), "-o"])
        .arg(&args.output)
        .args(["--", "sleep", &(args.seconds + 1).to_string()])
        .spawn()?;
    let cpu0 = cpu_of(pid);
    let (rate, summary) = measure(
        &target,
        &work,
        args.clients,
        Duration::from_secs(args.seconds),
    )
    .await?;
    let cpu1 = cpu_of(pid);
    let status = perf.wait()?;
    println!(
        "{} releases/s at {} clients under perf (p50 {} ms, p99 {} ms), server CPU {:.3} ms/release, load average {}; perf exited {status}",
        rate.round(),
        args.clients,
        ms(summary.p50),
        ms(summary.p99),
        1000.0 * (cpu1 - cpu0) / (rate * (args.seconds as f64 + 1.0)).max(1.0),
        load_average()
    );
    Ok(())
}
