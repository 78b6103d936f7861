//! `vs-openbao`: Alter beside OpenBao, driven by the same closed-loop client (drive.rs) with
//! the same HTTP client (reqwest, HTTP/1.1 keep-alive, loopback), in one run:
//!
//! - Alter's cheapest signed request, `GET /sdk/scopes` (signature, key, nonce);
//! - Alter's release, a signed `POST /sdk/token` of a managed-secret grant (signature, key,
//!   nonce, grant and secret, rules, decryption, and an audit event committed before the answer);
//! - OpenBao's KV v2 read, `GET /v1/secret/data/bench/api` with `X-Vault-Token` (file audit
//!   device on, declared in its config).
//!
//! Both servers run as their own processes: the release-built `alter server` on a fresh SQLite
//! file or a fresh PostgreSQL database, and `bao server` (`openbao.sh`) with integrated raft
//! storage or `storage "postgresql"` in a fresh database. The tool prints Markdown tables and
//! writes an SVG plot of throughput and p99 against clients.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::Engine;
use crate::drive::{Call, Hidden, Target, Work, http_client, measure};
use crate::external::{AlterProcess, BoxError, default_alter_binary, free_port, pg_server};
use crate::stats::{Summary, ms};

/// Options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent clients, one run each.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64, 256])]
    clients: Vec<usize>,
    /// Seconds each (series, clients) pair runs after its one-second warm-up.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Storage engines, in order (SQLite is compared with OpenBao's raft storage).
    #[arg(long, value_delimiter = ',', value_enum, default_values_t = [Engine::Sqlite, Engine::Postgres])]
    engines: Vec<Engine>,
    /// The `alter` binary (default: beside this one).
    #[arg(long)]
    alter_bin: Option<PathBuf>,
    /// The OpenBao script (default: tools/loadgen/openbao.sh of this source tree).
    #[arg(long)]
    openbao_script: Option<PathBuf>,
    /// Where to write the SVG plot (and its data, as `<svg>.tsv`).
    #[arg(long, default_value = "vs-openbao.svg")]
    svg: PathBuf,
    /// Measure nothing: plot the data a run wrote (`<svg>.tsv`) again.
    #[arg(long)]
    replot: Option<PathBuf>,
}

/// One measured row.
#[derive(Debug, Clone)]
pub struct Row {
    pub engine: Engine,
    pub series: Series,
    pub clients: usize,
    pub rate: f64,
    pub summary: Summary,
    /// Server CPU (user + system) per request, in ms, of the server process; for PostgreSQL
    /// engines the database's processes are added in `db_cpu_ms`.
    pub cpu_ms: f64,
    pub db_cpu_ms: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    Noop,
    Release,
    BaoRead,
}

impl Series {
    fn label(self) -> &'static str {
        match self {
            Series::Noop => "Alter no-op (GET /sdk/scopes)",
            Series::Release => "Alter release (POST /sdk/token)",
            Series::BaoRead => "OpenBao KV v2 read",
        }
    }
}

pub fn engine_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "SQLite / raft",
        Engine::Postgres => "PostgreSQL",
    }
}

/// `/proc/loadavg`'s first three fields.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU seconds (user + system) of a process.
pub fn cpu_of(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (get(11) + get(12)) / 100.0
}

/// CPU seconds of every process named `postgres` (the server and its backends; other users
/// of the same PostgreSQL are counted too, so this is an upper bound).
pub fn postgres_cpu() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(cpu_of)
        .sum()
}

/// A running OpenBao node (stopped and its data removed on `finish`).
struct Bao {
    script: PathBuf,
    dir: PathBuf,
    url: String,
    token: String,
    pid: u32,
}

impl std::fmt::Debug for Bao {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bao")
            .field("url", &self.url)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Bao {
    fn start(script: &PathBuf, engine: Engine) -> Result<Bao, BoxError> {
        let port = free_port()?;
        let dir =
            std::env::temp_dir().join(format!("alter-bench-bao-{}-{port}", std::process::id()));
        let mut command = Command::new(script);
        command.arg("up");
        match engine {
            Engine::Sqlite => {
                command.arg("raft").arg(&dir).arg(port.to_string());
            }
            Engine::Postgres => {
                let url = format!("{}bench_bao_{}", pg_server()?, std::process::id());
                command
                    .arg("postgres")
                    .arg(&dir)
                    .arg(port.to_string())
                    .arg(url);
            }
        }
        let out = command.output()?;
        if !out.status.success() {
            let _ = Command::new(script).arg("down").arg(&dir).status();
            return Err(format!(
                "openbao.sh up failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let token = String::from_utf8(out.stdout)?.trim().to_owned();
        let pid = std::fs::read_to_string(dir.join("bao.pid"))?
            .trim()
            .parse()?;
        Ok(Bao {
            script: script.clone(),
            url: format!("http://127.0.0.1:{port}/v1/secret/data/bench/api"),
            dir,
            token,
            pid,
        })
    }

    fn finish(self) -> Result<(), BoxError> {
        let status = Command::new(&self.script)
            .arg("down")
            .arg(&self.dir)
            .status()?;
        if !status.success() {
            return Err("openbao.sh down failed".into());
        }
        Ok(())
    }
}

pub async fn run(args: Args) -> Result<(), BoxError> {
    if let Some(data) = &args.replot {
        let rows = read_tsv(&std::fs::read_to_string(data)?)?;
        let mut clients: Vec<usize> = rows.iter().map(|r| r.clients).collect();
        clients.sort_unstable();
        clients.dedup();
        std::fs::write(&args.svg, plot(&rows, &clients))?;
        eprintln!("wrote {}", args.svg.display());
        return Ok(());
    }
    let binary = args.alter_bin.clone().unwrap_or_else(default_alter_binary);
    let script = args
        .openbao_script
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openbao.sh"));
    let mut rows = Vec::new();
    for &engine in &args.engines {
        println!(
            "\n### {} (load average before: {})\n",
            engine_name(engine),
            load_average()
        );
        let alter = AlterProcess::start(&binary, engine, "vs").await?;
        let bao = match Bao::start(&script, engine) {
            Ok(bao) => bao,
            Err(e) => {
                alter.finish()?;
                return Err(e);
            }
        };
        let result = one_engine(&alter, &bao, engine, &args, &mut rows).await;
        let stopped = (alter.finish(), bao.finish());
        result?;
        stopped.0?;
        stopped.1?;
        println!("\nload average after: {}", load_average());
    }
    std::fs::write(&args.svg, plot(&rows, &args.clients))?;
    let mut data = args.svg.clone().into_os_string();
    data.push(".tsv");
    std::fs::write(&data, write_tsv(&rows))?;
    eprintln!("wrote {} and its data", args.svg.display());
    Ok(())
}

/// `engine series clients rate p50_ms p99_ms p999_ms max_ms`, one row per line.
fn write_tsv(rows: &[Row]) -> String {
    let mut out = String::from("engine\tseries\tclients\trate\tp50_ms\tp99_ms\tp999_ms\tmax_ms\n");
    for r in rows {
        let engine = match r.engine {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        };
        let series = match r.series {
            Series::Noop => "noop",
            Series::Release => "release",
            Series::BaoRead => "openbao",
        };
        out.push_str(&format!(
            "{engine}\t{series}\t{}\t{:.1}\t{}\t{}\t{}\t{}\n",
            r.clients,
            r.rate,
            ms(r.summary.p50),
            ms(r.summary.p99),
            ms(r.summary.p999),
            ms(r.summary.max)
        ));
    }
    out
}

fn read_tsv(text: &str) -> Result<Vec<Row>, BoxError> {
    let millis = |v: &str| -> Result<Duration, BoxError> {
        Ok(Duration::from_secs_f64(v.parse::<f64>()? / 1000.0))
    };
    let mut rows = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 8 {
            return Err(format!("bad line: {line}").into());
        }
        rows.push(Row {
            engine: match f[0] {
                "sqlite" => Engine::Sqlite,
                "postgres" => Engine::Postgres,
                other => return Err(format!("engine {other}").into()),
            },
            series: match f[1] {
                "noop" => Series::Noop,
                "release" => Series::Release,
                "openbao" => Series::BaoRead,
                other => return Err(format!("series {other}").into()),
            },
            clients: f[2].parse()?,
            rate: f[3].parse()?,
            summary: Summary {
                count: 0,
                p50: millis(f[4])?,
                p95: Duration::ZERO,
                p99: millis(f[5])?,
                p999: millis(f[6])?,
                max: millis(f[7])?,
            },
            cpu_ms: 0.0,
            db_cpu_ms: None,
        });
    }
    Ok(rows)
}

async fn one_engine(
    alter: &AlterProcess,
    bao: &Bao,
    engine: Engine,
    args: &Args,
    rows: &mut Vec<Row>,
) -> Result<(), BoxError> {
    let app = alter.add_app("bench").await?;
    let release = serde_json::to_vec(&serde_json::json!({
        "grant_id": app.grant_id,
        "reason": "benchmark",
        "request": {"method": "GET", "url": "https://api.example.com/v1/items"},
    }))?;
    let http = http_client()?;
    let target = Arc::new(Target::with_client(http, &alter.base_url, &app.api_key));
    let works = [
        (
            Series::Noop,
            Work::Signed(Call {
                label: "GET /sdk/scopes",
                method: reqwest::Method::GET,
                path: "/sdk/scopes",
                body: Vec::new(),
            }),
        ),
        (
            Series::Release,
            Work::Signed(Call {
                label: "POST /sdk/token",
                method: reqwest::Method::POST,
                path: "/sdk/token",
                body: release,
            }),
        ),
        (
            Series::BaoRead,
            Work::WithHeader {
                label: "OpenBao KV read",
                url: bao.url.clone(),
                name: "X-Vault-Token",
                value: Hidden(bao.token.clone()),
            },
        ),
    ];
    let run_for = Duration::from_secs(args.seconds);
    let alter_pid = alter.pid().ok_or("alter server not running")?;
    println!(
        "| series | clients | req/s | p50 ms | p99 ms | p999 ms | max ms | server CPU ms/req | PG CPU ms/req | vs OpenBao |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &clients in &args.clients {
        let mut here = Vec::new();
        for (series, work) in &works {
            let pid = if *series == Series::BaoRead {
                bao.pid
            } else {
                alter_pid
            };
            let (cpu0, pg0) = (cpu_of(pid), postgres_cpu());
            // The measurement includes a one-second warm-up; CPU is counted over both, so
            // divide by the requests of both (approximated by the rate over the whole span).
            let (rate, summary) = measure(&target, work, clients, run_for).await?;
            let (cpu1, pg1) = (cpu_of(pid), postgres_cpu());
            let total = rate * (args.seconds as f64 + 1.0);
            let per = |s: f64| if total > 0.0 { 1000.0 * s / total } else { 0.0 };
            here.push(Row {
                engine,
                series: *series,
                clients,
                rate,
                summary,
                cpu_ms: per(cpu1 - cpu0),
                db_cpu_ms: matches!(engine, Engine::Postgres).then(|| per(pg1 - pg0)),
            });
        }
        let bao_rate = here
            .iter()
            .find(|r| r.series == Series::BaoRead)
            .map_or(0.0, |r| r.rate);
        for row in &here {
            let versus = if row.series == Series::BaoRead || bao_rate == 0.0 {
                String::new()
            } else {
                format!("{:.0}%", 100.0 * row.rate / bao_rate)
            };
            println!(
                "| {} | {} | {:.0} | {} | {} | {} | {} | {:.3} | {} | {versus} |",
                row.series.label(),
                row.clients,
                row.rate,
                ms(row.summary.p50),
                ms(row.summary.p99),
                ms(row.summary.p999),
                ms(row.summary.max),
                row.cpu_ms,
                row.db_cpu_ms.map_or(String::new(), |v| format!("{v:.3}")),
            );
        }
        rows.extend(here);
    }
    Ok(())
}

/// Two panels side by side: throughput (linear) and p99 (log) against clients (log₂), one
/// line per (series, engine): colour names the series, a dashed line PostgreSQL.
pub fn plot(rows: &[Row], clients: &[usize]) -> String {
    let (w, h, pad_l, pad_r, pad_t, pad_b) = (460.0, 320.0, 62.0, 14.0, 34.0, 44.0);
    let series = [Series::Release, Series::Noop, Series::BaoRead];
    let colour = |s: Series| match s {
        Series::Release => "#d1495b",
        Series::Noop => "#8d99ae",
        Series::BaoRead => "#2e86ab",
    };
    let engines = [Engine::Sqlite, Engine::Postgres];
    let max_clients = clients.iter().copied().max().unwrap_or(1).max(2) as f64;
    let x_of = |c: usize, x0: f64| {
        x0 + pad_l + (c.max(1) as f64).log2() / max_clients.log2() * (w - pad_l - pad_r)
    };
    let mut svg = String::new();
    let total_w = 2.0 * w;
    let total_h = h + 70.0;
    svg.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{total_w}\" height=\"{total_h}\" viewBox=\"0 0 {total_w} {total_h}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    ));
    let max_rate = rows.iter().map(|r| r.rate).fold(1.0, f64::max) * 1.1;
    let p99s: Vec<f64> = rows
        .iter()
        .map(|r| r.summary.p99.as_secs_f64() * 1000.0)
        .collect();
    let min_p99 = p99s.iter().copied().fold(f64::INFINITY, f64::min).max(0.01);
    let max_p99 = p99s.iter().copied().fold(0.0, f64::max).max(min_p99 * 10.0);
    let (lo, hi) = (min_p99.log10().floor(), max_p99.log10().ceil());
    for (panel, title) in [(0, "throughput, requests/s"), (1, "p99 latency, ms (log)")] {
        let x0 = panel as f64 * w;
        let y_of = |v: f64| {
            let frac = if panel == 0 {
                v / max_rate
            } else {
                (v.max(10f64.powf(lo)).log10() - lo) / (hi - lo)
            };
            pad_t + (1.0 - frac) * (h - pad_t - pad_b)
        };
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"20\" font-size=\"13\" font-weight=\"bold\">{title}</text>\n",
            x0 + pad_l
        ));
        // Axes and grid.
        let (left, right, bottom) = (x0 + pad_l, x0 + w - pad_r, h - pad_b);
        svg.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{pad_t}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"black\"/>\n<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"black\"/>\n"
        ));
        for &c in clients {
            let x = x_of(c, x0);
            svg.push_str(&format!(
                "<line x1=\"{x:.1}\" y1=\"{pad_t}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#eee\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{c}</text>\n",
                bottom + 14.0
            ));
        }
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">concurrent clients (log scale)</text>\n",
            (left + right) / 2.0,
            bottom + 30.0
        ));
        let ticks: Vec<f64> = if panel == 0 {
            (0..=5).map(|i| max_rate * f64::from(i) / 5.0).collect()
        } else {
            let mut t = Vec::new();
            let mut e = lo;
            while e <= hi {
                t.push(10f64.powf(e));
                e += 1.0;
            }
            t
        };
        for v in ticks {
            let y = y_of(v);
            let text = if panel == 0 {
                format!("{v:.0}")
            } else if v < 1.0 {
                format!("{v}")
            } else {
                format!("{v:.0}")
            };
            svg.push_str(&format!(
                "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{text}</text>\n",
                left - 4.0,
                y + 4.0
            ));
        }
        for s in series {
            for engine in engines {
                let points: Vec<String> = rows
                    .iter()
                    .filter(|r| {
                        r.series == s
                            && std::mem::discriminant(&r.engine) == std::mem::discriminant(&engine)
                    })
                    .map(|r| {
                        let v = if panel == 0 {
                            r.rate
                        } else {
                            r.summary.p99.as_secs_f64() * 1000.0
                        };
                        format!("{:.1},{:.1}", x_of(r.clients, x0), y_of(v))
                    })
                    .collect();
                if points.is_empty() {
                    continue;
                }
                let dash = if matches!(engine, Engine::Postgres) {
                    " stroke-dasharray=\"6 4\""
                } else {
                    ""
                };
                svg.push_str(&format!(
                    "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash} points=\"{}\"/>\n",
                    colour(s),
                    points.join(" ")
                ));
                for p in &points {
                    let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                    svg.push_str(&format!(
                        "<circle cx=\"{x}\" cy=\"{y}\" r=\"2.5\" fill=\"{}\"/>\n",
                        colour(s)
                    ));
                }
            }
        }
    }
    // Legend: a row per series, a column per engine.
    for (i, s) in series.into_iter().enumerate() {
        for (j, engine) in engines.into_iter().enumerate() {
            let x = pad_l + 420.0 * j as f64;
            let y = h + 12.0 + 18.0 * i as f64;
            let dash = if matches!(engine, Engine::Postgres) {
                " stroke-dasharray=\"6 4\""
            } else {
                ""
            };
            svg.push_str(&format!(
                "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"2\"{dash}/><text x=\"{}\" y=\"{}\">{} — {}</text>\n",
                x + 24.0,
                colour(s),
                x + 28.0,
                y + 4.0,
                s.label(),
                engine_name(engine)
            ));
        }
    }
    svg.push_str("</svg>\n");
    svg
}
