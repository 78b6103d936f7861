//! `alter connect PROVIDER`: connects an account at a provider for an app (or agent) key, the
//! way an application does with the SDK — a Connect session, its page opened in the browser
//! (or its URL printed), then waiting for the user — and prints the grant it made.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use alter_sdk::{
    Agent, App, ConnectOptions, ConnectResult, ConnectSessionOptions, Error, ErrorInfo,
};
use clap::Args;
use serde_json::{Value, json};

use crate::operator::{finish, output, read_value};
use crate::table::{Table, or_dash};

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The provider to connect (its id, e.g. `google`).
    provider: String,
    /// Server base URL (else ALTER_ADDR, else http://127.0.0.1:8080).
    #[arg(long, env = "ALTER_BASE_URL")]
    base_url: Option<String>,
    /// The app's API key (`alter_rk_…`), or an agent's key to connect for that agent.
    #[arg(long, env = "ALTER_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Read the API key from this file instead.
    #[arg(long, conflicts_with = "api_key")]
    api_key_file: Option<PathBuf>,
    /// Read the end user's IdP token from stdin: the grant is theirs (else it is the app's).
    #[arg(long)]
    user_token_stdin: bool,
    /// Only print the Connect URL; do not open a browser.
    #[arg(long)]
    no_browser: bool,
    /// Seconds to wait for the user.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn connect(args: ConnectArgs) -> ExitCode {
    let json = args.json;
    finish(run(args).await.map(|grants| {
        let shown: Vec<Value> = grants.iter().map(grant_json).collect();
        output(json, &shown, || grants_table(&grants))
    }))
}

async fn run(args: ConnectArgs) -> Result<Vec<ConnectResult>, Error> {
    let api_key = match (&args.api_key, &args.api_key_file) {
        (_, Some(file)) => std::fs::read_to_string(file)
            .map(|key| key.trim().to_owned())
            .map_err(|e| Error::value(format!("cannot read {}: {e}", file.display())))?,
        (Some(key), None) => key.clone(),
        (None, None) => {
            return Err(Error::value(
                "set ALTER_API_KEY (or --api-key-file) to the app's API key",
            ));
        }
    };
    let mut session = ConnectSessionOptions::new();
    if args.user_token_stdin {
        session = session.user_token(read_value()?);
    }
    let options = ConnectOptions {
        timeout: Duration::from_secs(args.timeout),
        open_browser: !args.no_browser,
        session,
        ..ConnectOptions::default()
    };
    let base_url = args
        .base_url
        .or_else(|| std::env::var("ALTER_ADDR").ok())
        .unwrap_or_else(|| alter_sdk::DEFAULT_BASE_URL.to_owned());
    let providers = [args.provider.as_str()];
    if api_key.starts_with("alter_ak_") || api_key.starts_with("alter_key_") {
        let agent: Agent = Agent::builder(api_key).base_url(base_url).build_agent()?;
        agent.connect(&providers, options).await
    } else {
        let app: App = App::builder(api_key).base_url(base_url).build_app()?;
        app.connect(&providers, options).await
    }
    .map_err(with_hint)
}

/// The error, with what to do next when the user did not come back.
fn with_hint(error: Error) -> Error {
    match error {
        Error::ConnectTimeout(info) => Error::ConnectTimeout(ErrorInfo {
            message: format!(
                "{} (run `alter connect` again, or raise --timeout)",
                info.message
            ),
            ..info
        }),
        other => other,
    }
}

fn grant_json(grant: &ConnectResult) -> Value {
    json!({
        "grant_id": grant.grant_id,
        "provider_id": grant.provider_id,
        "account_identifier": grant.account_identifier,
        "scopes": grant.scopes,
        "operation": grant.operation,
        "expires_at": grant.grant_policy.as_ref().and_then(|p| p.expires_at.clone()),
    })
}

fn grants_table(grants: &[ConnectResult]) -> String {
    let mut table = Table::new(["GRANT", "PROVIDER", "ACCOUNT", "SCOPES", "OPERATION"]);
    for grant in grants {
        table.row([
            grant.grant_id.as_str(),
            grant.provider_id.as_str(),
            &or_dash(grant.account_identifier.as_deref()),
            &grant.scopes.join(" "),
            grant.operation.as_str(),
        ]);
    }
    table.render()
}
