//! `alter-loadgen`: starts a real Alter server in-process on a fresh database, prepares data,
//! drives it over HTTP with the Rust SDK and prints latency figures. Build it in release mode:
//!
//! ```sh
//! cargo run --release -p alter-loadgen -- grants-list --grants 1000000
//! ALTER_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p alter-loadgen -- grants-list --grants 1000000 --engine postgres
//! cargo run --release -p alter-loadgen -- token --clients 1,16,64
//! cargo run --release -p alter-loadgen -- proxy --clients 1,16
//! ```
//!
//! `vs-openbao`, `rss`, `apps` and `profile` run the release-built `alter server` (built beside
//! this binary: `cargo build --release -p alter-loadgen -p alter-cli`) as its own process.

mod drive;
mod external;
mod grants;
mod harness;
mod proxy;
mod scale;
mod stats;
mod token;
mod vs_openbao;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "alter-loadgen", about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which database the server runs on.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Engine {
    /// A temporary SQLite file.
    Sqlite,
    /// A fresh schema in the PostgreSQL of `ALTER_TEST_DATABASE_URL`.
    Postgres,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Page through an app holding many grants with `list_grants`.
    GrantsList(grants::Args),
    /// Signed credential releases per second beside the cheapest signed request.
    Token(token::Args),
    /// Proxy mode beside a direct call to the same loopback upstream, and beside retrieve mode.
    Proxy(proxy::Args),
    /// Alter's release and no-op beside OpenBao's KV v2 read, same client, both engines.
    VsOpenbao(vs_openbao::Args),
    /// Resident memory of `alter server` at 10k, 100k and 1M grants.
    Rss(scale::RssArgs),
    /// Releases per second with all clients on one app vs spread over many.
    Apps(scale::AppsArgs),
    /// `perf record` of `alter server` while clients release.
    Profile(scale::ProfileArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::GrantsList(args) => grants::run(args).await,
        Command::Token(args) => token::run(args).await,
        Command::Proxy(args) => proxy::run(args).await,
        Command::VsOpenbao(args) => vs_openbao::run(args).await,
        Command::Rss(args) => scale::rss(args).await,
        Command::Apps(args) => scale::apps(args).await,
        Command::Profile(args) => scale::profile(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
