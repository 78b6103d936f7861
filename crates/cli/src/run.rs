//! `alter dev` and `alter server`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use alter_server::config::{Config, LogFormat};
use alter_server::{Server, ServerSettings, shutdown_signal, telemetry};
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// TOML configuration file; `ALTER_*` variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<ServerCommand>,
}

#[derive(Debug, Subcommand)]
enum ServerCommand {
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create a master key file and an admin token file (mode 0600) in a directory.
    Init {
        /// Directory for `master.key` and `admin.token`.
        #[arg(long)]
        dir: PathBuf,
    },
}

pub async fn dev(
    listen: SocketAddr,
    data: &Path,
    database_url: Option<&str>,
    otlp_endpoint: Option<&str>,
) -> ExitCode {
    telemetry::init(LogFormat::Text);
    let prepared = alter_server::dev::prepare(listen, data, database_url, otlp_endpoint).await;
    let (server, credentials) = match prepared {
        Ok(ready) => ready,
        Err(e) => return fail(&e),
    };
    let line = match serde_json::to_string(&credentials) {
        Ok(line) => line,
        Err(e) => return fail(&e),
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(stdout);
    tracing::info!(base_url = %credentials.base_url, data_dir = %credentials.data_dir, "alter dev is serving");
    eprintln!(
        "\n  Alter dev server on {url}\n  export ALTER_BASE_URL={url} ALTER_ADDR={url}\n  (the api_key and admin_token are on the first line of stdout)\n",
        url = credentials.base_url
    );
    serve(server).await
}

pub async fn server(args: ServerArgs) -> ExitCode {
    if let Some(ServerCommand::Init { dir }) = &args.command {
        return init(dir);
    }
    let config = match Config::load(args.config.as_deref(), |k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    telemetry::init(config.log_format);
    let settings = match ServerSettings::from_config(&config, |k| std::env::var(k).ok()) {
        Ok(settings) => settings,
        Err(e) => return fail(&e),
    };
    if matches!(args.command, Some(ServerCommand::Migrate)) {
        return match Server::migrate(&settings).await {
            Ok(()) => {
                tracing::info!("migrations applied");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        };
    }
    let server = match Server::build(settings).await {
        Ok(server) => server,
        Err(e) => return fail(&e),
    };
    if let Ok(addr) = server.local_addr() {
        tracing::info!(%addr, "alter server is serving");
    }
    serve(server).await
}

async fn serve(server: Server) -> ExitCode {
    match server.run_until_stopped(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn init(dir: &Path) -> ExitCode {
    match alter_server::key_files::init_dir(dir) {
        Ok(()) => {
            println!(
                "wrote {dir}/master.key and {dir}/admin.token (mode 0600)\n\nin alter.toml:\n  master_key_file = \"{dir}/master.key\"\n  admin_token_file = \"{dir}/admin.token\"",
                dir = dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}
