//! `alter secret …`: managed secrets. A value is only ever read from stdin and never printed:
//! a flag would leak it into shell history and `ps`.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use alter_sdk::Error;
use alter_sdk::admin::{CreateSecretRequest, InjectionRuleBody, SecretInfo};
use clap::{Args, Subcommand};

use super::{AppScope, output};
use crate::table::{Table, fields, list, or_dash};

#[derive(Debug, Args)]
pub struct SecretArgs {
    #[command(flatten)]
    scope: AppScope,
    #[command(subcommand)]
    command: SecretCommand,
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Create a managed secret; its value is read from stdin.
    Create(Box<CreateArgs>),
    /// List the live managed secrets.
    List,
    /// Show a managed secret (never its value).
    Show {
        /// Id or slug.
        secret: String,
    },
    /// Replace a secret's value (read from stdin); its id and every grant stay.
    Rotate {
        /// Id or slug.
        secret: String,
        /// Read the new value from stdin (the only way to give it).
        #[arg(long, required = true)]
        value_stdin: bool,
    },
    /// Delete a managed secret; every grant of it is revoked.
    Delete {
        /// Id or slug.
        secret: String,
        /// The secret's slug, repeated to confirm.
        #[arg(long)]
        confirm: String,
    },
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// Display name; the slug derives from it.
    #[arg(long)]
    name: String,
    /// How the value is injected.
    #[arg(long = "type", value_parser = ["bearer", "header", "basic", "query", "aws_sigv4", "multi"])]
    secret_type: String,
    /// Header name (`--type header`).
    #[arg(long)]
    header: Option<String>,
    /// Query parameter name (`--type query`).
    #[arg(long)]
    param: Option<String>,
    /// An injection rule of a `--type multi` secret, `header:NAME=FIELD` or
    /// `query:NAME=FIELD` (repeatable); the value is then a JSON object of FIELD → value.
    #[arg(long = "inject", value_parser = parse_rule)]
    rules: Vec<InjectionRuleBody>,
    /// A host the secret may be sent to (repeatable; any host by default).
    #[arg(long = "allowed-host")]
    allowed_hosts: Vec<String>,
    /// Longest grant lifetime in seconds.
    #[arg(long)]
    max_grant_ttl_seconds: Option<i64>,
    /// A principal type grants may name (repeatable; all but agent by default: list agent
    /// to let agents bind the secret to themselves).
    #[arg(long = "principal", value_parser = ["user", "group", "system", "agent"])]
    principals: Vec<String>,
    /// Forbid delegating grants of this secret to agents.
    #[arg(long)]
    no_delegation: bool,
    /// Longest delegation lifetime in seconds.
    #[arg(long)]
    max_delegation_ttl_seconds: Option<i64>,
    /// Read the value from stdin (the only way to give it); one trailing newline is dropped.
    #[arg(long, required = true)]
    value_stdin: bool,
}

impl CreateArgs {
    /// The request these flags make, with the value read from stdin.
    fn request(self) -> Result<CreateSecretRequest, Error> {
        Ok(CreateSecretRequest {
            name: self.name,
            secret_type: self.secret_type,
            header: self.header,
            param: self.param,
            rules: self.rules,
            allowed_hosts: self.allowed_hosts,
            value: read_value()?,
            max_grant_ttl_seconds: self.max_grant_ttl_seconds,
            principals: self.principals,
            delegation: self.no_delegation.then_some(false),
            max_delegation_ttl_seconds: self.max_delegation_ttl_seconds,
        })
    }
}

pub async fn secret(args: SecretArgs) -> ExitCode {
    let json = args.scope.json();
    args.scope
        .run(async |client, app| match args.command {
            SecretCommand::Create(create) => {
                let secret = client.create_secret(app, &create.request()?).await?;
                Ok(output(json, &secret, || secret_text(&secret)))
            }
            SecretCommand::List => {
                let secrets = client.list_secrets(app).await?;
                Ok(output(json, &secrets, || secrets_table(&secrets)))
            }
            SecretCommand::Show { secret } => {
                let secret = client.get_secret(app, &secret).await?;
                Ok(output(json, &secret, || secret_text(&secret)))
            }
            SecretCommand::Rotate {
                secret,
                value_stdin: _,
            } => {
                let secret = client.rotate_secret(app, &secret, read_value()?).await?;
                Ok(output(json, &secret, || secret_text(&secret)))
            }
            SecretCommand::Delete { secret, confirm } => {
                let secret = client.delete_secret(app, &secret, &confirm).await?;
                Ok(output(json, &secret, || secret_text(&secret)))
            }
        })
        .await
}

/// The value piped on stdin, without one trailing newline (what `echo` and editors add).
pub(crate) fn read_value() -> Result<String, Error> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("reading the value from stdin (end it with Ctrl-D)");
    }
    let mut value = String::new();
    stdin
        .read_to_string(&mut value)
        .map_err(|e| Error::value(format!("cannot read the value from stdin: {e}")))?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err(Error::value("the value on stdin is empty"));
    }
    Ok(value)
}

fn secrets_table(secrets: &[SecretInfo]) -> String {
    let mut table = Table::new(["ID", "SLUG", "NAME", "TYPE", "VERSION", "CREATED"]);
    for secret in secrets {
        table.row([
            secret.id.as_str(),
            secret.slug.as_str(),
            secret.name.as_str(),
            secret.secret_type.as_str(),
            &secret.value_version.to_string(),
            secret.created_at.as_str(),
        ]);
    }
    table.render()
}

fn secret_text(secret: &SecretInfo) -> String {
    fields(&[
        ("id", secret.id.clone()),
        ("name", secret.name.clone()),
        ("slug", secret.slug.clone()),
        ("type", secret.secret_type.clone()),
        ("header", or_dash(secret.header.as_ref())),
        ("param", or_dash(secret.param.as_ref())),
        ("allowed hosts", list(&secret.allowed_hosts, "any")),
        ("max grant ttl", or_dash(secret.max_grant_ttl_seconds)),
        (
            "principals",
            list(&secret.principals, "user, group, system"),
        ),
        ("delegation", secret.delegation.to_string()),
        (
            "max delegation ttl",
            or_dash(secret.max_delegation_ttl_seconds),
        ),
        ("value version", secret.value_version.to_string()),
        ("created", secret.created_at.clone()),
        ("rotated", or_dash(secret.rotated_at.as_ref())),
        ("deleted", or_dash(secret.deleted_at.as_ref())),
    ])
}

/// `header:NAME=FIELD` or `query:NAME=FIELD`.
fn parse_rule(text: &str) -> Result<InjectionRuleBody, String> {
    let (target, rest) = text
        .split_once(':')
        .ok_or("expected header:NAME=FIELD or query:NAME=FIELD")?;
    let (name, field) = rest
        .split_once('=')
        .ok_or("expected header:NAME=FIELD or query:NAME=FIELD")?;
    if target != "header" && target != "query" {
        return Err(format!("target {target:?}: use header or query"));
    }
    Ok(InjectionRuleBody {
        target: target.to_owned(),
        name: name.to_owned(),
        field: field.to_owned(),
    })
}
