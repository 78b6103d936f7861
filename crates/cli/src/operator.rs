//! Operator commands over the admin API: `alter app …` and `alter key …` here, `alter idp`,
//! `alter provider`, `alter secret`, `alter agent`, `alter approval` and `alter grant` in the submodules. Human tables by default,
//! `--json` for scripts; stable exit codes (1 error, 3 auth, 4 not found, 5 conflict,
//! 6 rate limited; 2 is clap's usage error).

mod agents;
mod approvals;
mod audit;
mod grants;
mod idp;
mod operators;
mod policies;
mod provider_specs;
mod providers;
mod secrets;
mod webhooks;

use std::process::ExitCode;

pub use agents::{AgentArgs, agent};
pub use approvals::{ApprovalArgs, approval};
pub use audit::{AuditArgs, audit};
pub use grants::{GrantArgs, grant};
pub use idp::{IdpArgs, idp};
pub use operators::{OperatorArgs, operator};
pub use policies::{PolicyArgs, policy};
pub use providers::{ProviderArgs, provider};
pub(crate) use secrets::read_value;
pub use secrets::{SecretArgs, secret};
pub use webhooks::{WebhookArgs, webhook};

use alter_sdk::Error;
use alter_sdk::admin::{AdminClient, ApiKeyInfo, AppInfo, MintKeyRequest, MintedKey};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::table::Table;

/// Where the server is and how to authenticate to it.
#[derive(Debug, Args)]
pub struct Connection {
    /// Server base URL.
    #[arg(
        long,
        env = "ALTER_ADDR",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    addr: String,
    /// Operator admin token.
    #[arg(long, env = "ALTER_ADMIN_TOKEN", hide_env_values = true, global = true)]
    admin_token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

/// The connection and the app of an app-scoped command (`key`, `idp`, `secret`, `agent`,
/// `grant`, `audit`).
#[derive(Debug, Args)]
pub struct AppScope {
    #[command(flatten)]
    connection: Connection,
    /// The app (defaults to the only app, when there is exactly one).
    #[arg(long, global = true)]
    app: Option<String>,
}

impl Connection {
    /// Runs `command` with an admin client and prints its outcome; the exit code says how it
    /// went.
    async fn run<P: Into<Printed>>(
        self,
        command: impl AsyncFnOnce(AdminClient) -> Result<P, Error>,
    ) -> ExitCode {
        let result = match client(&self) {
            Ok(client) => command(client).await,
            Err(e) => Err(e),
        };
        finish(result)
    }
}

impl AppScope {
    /// Whether to print JSON instead of a table.
    fn json(&self) -> bool {
        self.connection.json
    }

    /// [`Connection::run`] on the app `--app` names, or the only app there is.
    async fn run<P: Into<Printed>>(
        self,
        command: impl AsyncFnOnce(&AdminClient, &str) -> Result<P, Error>,
    ) -> ExitCode {
        let app = self.app;
        self.connection
            .run(async |client| {
                let app = resolve_app(&client, app).await?;
                command(&client, &app).await
            })
            .await
    }
}

#[derive(Debug, Args)]
pub struct AppArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: AppCommand,
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// Create an app.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// List apps.
    List,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    scope: AppScope,
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Mint a key; its plaintext is shown once.
    Mint(MintArgs),
    /// List keys.
    List,
    /// Revoke a key (and the keys derived from it).
    Revoke {
        /// Key id.
        key_id: String,
    },
    /// Rotate a key: mint its successor; the old one works for the grace period.
    Rotate {
        /// Key id.
        key_id: String,
        /// Seconds the old key keeps working (default 0).
        #[arg(long)]
        grace_seconds: Option<i64>,
    },
}

#[derive(Debug, Args)]
struct MintArgs {
    /// Name.
    #[arg(long)]
    name: Option<String>,
    /// Key type: rk (app runtime, default), ak (agent-typed) or pk (publishable).
    #[arg(long = "type", value_parser = ["rk", "ak", "pk"])]
    key_type: Option<String>,
    /// A scope to grant (repeatable); every scope by default.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// A network the key may be used from (repeatable).
    #[arg(long = "cidr")]
    cidrs: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long)]
    expires_in: Option<i64>,
}

impl MintArgs {
    /// The request these flags make; an empty list is left to the server's default.
    fn request(self) -> MintKeyRequest {
        MintKeyRequest {
            name: self.name,
            key_type: self.key_type,
            scopes: (!self.scopes.is_empty()).then_some(self.scopes),
            cidr_allowlist: (!self.cidrs.is_empty()).then_some(self.cidrs),
            expires_in: self.expires_in,
        }
    }
}

pub async fn app(args: AppArgs) -> ExitCode {
    let json = args.connection.json;
    args.connection
        .run(async |client| match args.command {
            AppCommand::Create { name } => {
                let app = client.create_app(&name).await?;
                Ok(output(json, &app, || {
                    apps_table(std::slice::from_ref(&app))
                }))
            }
            AppCommand::List => {
                let apps = client.list_apps().await?;
                Ok(output(json, &apps, || apps_table(&apps)))
            }
        })
        .await
}

pub async fn key(args: KeyArgs) -> ExitCode {
    let json = args.scope.json();
    args.scope
        .run(async |client, app| match args.command {
            KeyCommand::Mint(mint) => {
                let minted = client.mint_key(app, &mint.request()).await?;
                Ok(output(json, &minted, || minted_text(&minted)))
            }
            KeyCommand::List => {
                let keys = client.list_keys(app).await?;
                Ok(output(json, &keys, || keys_table(&keys)))
            }
            KeyCommand::Revoke { key_id } => {
                let key = client.revoke_key(app, &key_id).await?;
                Ok(output(json, &key, || {
                    keys_table(std::slice::from_ref(&key))
                }))
            }
            KeyCommand::Rotate {
                key_id,
                grace_seconds,
            } => {
                let minted = client.rotate_key(app, &key_id, grace_seconds).await?;
                Ok(output(json, &minted, || minted_text(&minted)))
            }
        })
        .await
}

fn client(connection: &Connection) -> Result<AdminClient, Error> {
    let token = connection
        .admin_token
        .clone()
        .ok_or_else(|| Error::value("set ALTER_ADMIN_TOKEN (or --admin-token)"))?;
    AdminClient::new(&connection.addr, token)
}

/// `--app`, or the only app there is.
async fn resolve_app(client: &AdminClient, app: Option<String>) -> Result<String, Error> {
    if let Some(app) = app {
        return Ok(app);
    }
    let apps = client.list_apps().await?;
    match apps.as_slice() {
        [only] => Ok(only.id.clone()),
        [] => Err(Error::value(
            "there is no app yet: create one with `alter app create --name NAME`",
        )),
        _ => Err(Error::value(format!(
            "there are {} apps: choose one with --app ID (see `alter app list`)",
            apps.len()
        ))),
    }
}

pub(crate) fn output<T: Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce() -> String,
) -> String {
    if json {
        serde_json::to_string_pretty(value).unwrap_or_default()
    } else {
        human()
    }
}

/// What a command prints on stdout and, when its answer is a failure all the same (a
/// verification that found the audit chain broken), the one line it prints on stderr before
/// exiting 1.
pub(crate) struct Printed {
    text: String,
    failure: Option<String>,
}

impl From<String> for Printed {
    fn from(text: String) -> Self {
        Printed {
            text,
            failure: None,
        }
    }
}

pub(crate) fn finish(result: Result<impl Into<Printed>, Error>) -> ExitCode {
    match result.map(Into::into) {
        Ok(Printed { text, failure }) => {
            // A command that streamed its own output (export) has nothing more to say; a blank
            // line would break JSON Lines.
            if !text.is_empty() {
                println!("{text}");
            }
            match failure {
                None => ExitCode::SUCCESS,
                Some(message) => {
                    eprintln!("error: {message}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("error: {}", e.info().message);
            ExitCode::from(exit_code(&e))
        }
    }
}

fn exit_code(e: &Error) -> u8 {
    match e.status() {
        401 | 403 => 3,
        404 => 4,
        409 => 5,
        429 => 6,
        _ => 1,
    }
}

fn apps_table(apps: &[AppInfo]) -> String {
    let mut table = Table::new(["ID", "NAME", "CREATED"]);
    for app in apps {
        table.row([app.id.as_str(), app.name.as_str(), app.created_at.as_str()]);
    }
    table.render()
}

fn keys_table(keys: &[ApiKeyInfo]) -> String {
    let mut table = Table::new(["ID", "NAME", "TYPE", "PREFIX", "STATUS", "CREATED"]);
    for key in keys {
        let status = if key.revoked_at.is_some() {
            "revoked"
        } else if key.deprecated_at.is_some() {
            "rotated"
        } else {
            "active"
        };
        table.row([
            key.id.as_str(),
            key.name.as_str(),
            key.key_type.as_str(),
            key.key_prefix.as_str(),
            status,
            key.created_at.as_str(),
        ]);
    }
    table.render()
}

fn minted_text(minted: &MintedKey) -> String {
    format!(
        "{}\n\napi_key: {}\n(store it now: it is never shown again)",
        keys_table(std::slice::from_ref(&minted.info)),
        minted.api_key
    )
}
