//! `alter`: runs Alter (`alter dev`, `alter server`) and operates it (`alter app`, `key`, `idp`,
//! `secret`, `agent`, `grant`, `audit`), connects accounts (`alter connect`), and backs up and
//! restores the database (`alter backup`, `alter restore`).

mod backup;
mod connect;
mod keys;
mod operator;
mod run;
mod table;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Alter: a credential and authorization vault for apps and AI agents.
#[derive(Debug, Parser)]
#[command(name = "alter", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a development server on embedded SQLite; prints its credentials as one JSON line.
    Dev {
        /// Address to listen on (`127.0.0.1:0` picks a free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Data directory (database, master key, saved credentials).
        #[arg(long, default_value = "./.alter")]
        data: PathBuf,
        /// Use this database instead of SQLite in the data directory (e.g. postgres://…).
        #[arg(long, env = "ALTER_DATABASE_URL")]
        database_url: Option<String>,
        /// Export one OpenTelemetry span per request over OTLP/HTTP JSON to this traces URL
        /// (e.g. http://127.0.0.1:4318/v1/traces), as `alter server`'s `otlp_endpoint`.
        #[arg(long, env = "ALTER_OTLP_ENDPOINT")]
        otlp_endpoint: Option<String>,
    },
    /// Run a production server from a config file and `ALTER_*` environment.
    Server(run::ServerArgs),
    /// Manage apps (needs ALTER_ADDR and ALTER_ADMIN_TOKEN).
    App(operator::AppArgs),
    /// Manage an app's API keys (needs ALTER_ADDR and ALTER_ADMIN_TOKEN).
    Key(operator::KeyArgs),
    /// Configure an app's identity provider (needs ALTER_ADDR and ALTER_ADMIN_TOKEN).
    Idp(operator::IdpArgs),
    /// Configure an app's OAuth providers (needs ALTER_ADDR and ALTER_ADMIN_TOKEN).
    Provider(operator::ProviderArgs),
    /// Manage an app's managed secrets (needs ALTER_ADDR and ALTER_ADMIN_TOKEN).
    Secret(operator::SecretArgs),
    /// Manage an app's agents (needs ALTER_ADDR and ALTER_ADMIN_TOKEN).
    Agent(operator::AgentArgs),
    /// List and decide held proxy calls (needs ALTER_ADDR and ALTER_ADMIN_TOKEN).
    Approval(operator::ApprovalArgs),
    /// Manage an app's outbound webhooks and their deliveries (needs ALTER_ADDR and
    /// ALTER_ADMIN_TOKEN).
    Webhook(operator::WebhookArgs),
    /// Manage an app's grants and delegations (needs ALTER_ADDR and ALTER_ADMIN_TOKEN).
    Grant(operator::GrantArgs),
    /// Query, export and verify an app's audit log (needs ALTER_ADDR and ALTER_ADMIN_TOKEN).
    Audit(operator::AuditArgs),
    /// Manage an app's policy rules and test drafts (needs ALTER_ADDR and ALTER_ADMIN_TOKEN).
    Policy(operator::PolicyArgs),
    /// Manage operator accounts of the portal (needs ALTER_ADDR and ALTER_ADMIN_TOKEN).
    Operator(operator::OperatorArgs),
    /// Connect an account at an OAuth provider and print the grant (needs ALTER_API_KEY).
    Connect(connect::ConnectArgs),
    /// Copy the live SQLite database into a new file (mode 0600) while the server serves.
    Backup(backup::BackupArgs),
    /// Restore a backup onto a fresh database, checked against the configured master key.
    Restore(backup::RestoreArgs),
    /// Makes a new master key file, or rotates the database's keys to a new key holder
    /// (master key or OpenBao/Vault Transit).
    Keys(keys::KeysArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Dev {
                listen,
                data,
                database_url,
                otlp_endpoint,
            } => {
                run::dev(
                    listen,
                    &data,
                    database_url.as_deref(),
                    otlp_endpoint.as_deref(),
                )
                .await
            }
            Command::Server(args) => run::server(args).await,
            Command::App(args) => operator::app(args).await,
            Command::Key(args) => operator::key(args).await,
            Command::Idp(args) => operator::idp(args).await,
            Command::Provider(args) => operator::provider(args).await,
            Command::Secret(args) => operator::secret(args).await,
            Command::Agent(args) => operator::agent(args).await,
            Command::Approval(args) => operator::approval(args).await,
            Command::Webhook(args) => operator::webhook(args).await,
            Command::Grant(args) => operator::grant(args).await,
            Command::Audit(args) => operator::audit(args).await,
            Command::Policy(args) => operator::policy(args).await,
            Command::Operator(args) => operator::operator(args).await,
            Command::Connect(args) => connect::connect(args).await,
            Command::Backup(args) => backup::backup(args).await,
            Command::Restore(args) => backup::restore(args).await,
            Command::Keys(args) => keys::keys(args).await,
        }
    })
}
