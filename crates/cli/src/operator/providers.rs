//! `alter provider …`: the OAuth providers an app is configured for. The client secret is only
//! ever read from stdin and never printed.

use std::process::ExitCode;

use alter_sdk::Error;
use alter_sdk::admin::{AccountSourceBody, ConfigureProviderRequest, EndpointsBody, ProviderInfo};
use clap::{Args, Subcommand};

use super::secrets::read_value;
use super::{AppScope, output};
use crate::table::{Table, fields, list, or_dash};

#[derive(Debug, Args)]
pub struct ProviderArgs {
    #[command(flatten)]
    scope: AppScope,
    #[command(subcommand)]
    command: ProviderCommand,
}

#[derive(Debug, Subcommand)]
enum ProviderCommand {
    /// List the built-in catalogue: configure one of these by its id, with no URLs.
    ListCatalog,
    /// Configure (or reconfigure) a provider; prints the redirect URI to register at it.
    Configure(Box<ConfigureArgs>),
    /// List the app's providers.
    List,
    /// Show a provider (never its client secret).
    Show {
        /// Provider id.
        provider: String,
    },
    /// Remove a provider from the app.
    Delete {
        /// Provider id.
        provider: String,
    },
    /// The OpenAPI specs of the app's providers: import, list, show, delete.
    #[command(subcommand)]
    Spec(super::provider_specs::SpecCommand),
}

#[derive(Debug, Args)]
struct ConfigureArgs {
    /// Provider id within the app (lower-case letters, digits, -).
    provider: String,
    /// The app's client id at the provider.
    #[arg(long)]
    client_id: String,
    /// Read the client secret from stdin (required the first time; otherwise the stored one
    /// is kept). One trailing newline is dropped.
    #[arg(long)]
    client_secret_stdin: bool,
    /// A scope connections ask for by default (repeatable).
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Display name.
    #[arg(long)]
    display_name: Option<String>,
    /// A catalogue provider's placeholder value, e.g. `--param shop=acme` (repeatable).
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// A custom provider's issuer: alone, its endpoints are discovered from it (OpenID
    /// Connect discovery); with URLs, it is checked as `iss` on the callback.
    #[arg(long)]
    issuer: Option<String>,
    /// A custom provider's authorization endpoint.
    #[arg(long)]
    authorize_url: Option<String>,
    /// A custom provider's token endpoint.
    #[arg(long)]
    token_url: Option<String>,
    /// Its revocation endpoint (RFC 7009).
    #[arg(long)]
    revoke_url: Option<String>,
    /// It does not accept PKCE.
    #[arg(long)]
    no_pkce: bool,
    /// Its refresh tokens: none, rotating (default) or non_rotating.
    #[arg(long)]
    refresh: Option<String>,
    /// The ID-token claim that names the account (e.g. email).
    #[arg(long)]
    account_claim: Option<String>,
    /// The version `show` printed: refuse the change if someone changed the provider since.
    #[arg(long)]
    expected_version: Option<i64>,
}

impl ConfigureArgs {
    /// The request these flags make, with the client secret read from stdin.
    fn request(self) -> Result<ConfigureProviderRequest, Error> {
        let custom =
            self.authorize_url.is_some() || self.token_url.is_some() || self.issuer.is_some();
        Ok(ConfigureProviderRequest {
            display_name: self.display_name,
            client_id: self.client_id,
            client_secret: self.client_secret_stdin.then(read_value).transpose()?,
            scopes: (!self.scopes.is_empty()).then_some(self.scopes),
            endpoints: custom.then(|| EndpointsBody {
                issuer: self.issuer,
                authorize_url: self.authorize_url,
                token_url: self.token_url,
                revoke_url: self.revoke_url,
                pkce: self.no_pkce.then_some(false),
                refresh: self.refresh,
                account: self
                    .account_claim
                    .map(|claim| AccountSourceBody::IdToken { claim }),
                ..EndpointsBody::default()
            }),
            params: (!self.params.is_empty()).then(|| self.params.into_iter().collect()),
            expected_version: self.expected_version,
        })
    }
}

/// `NAME=VALUE`.
fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err("expected NAME=VALUE".into()),
    }
}

pub async fn provider(args: ProviderArgs) -> ExitCode {
    let json = args.scope.json();
    args.scope
        .run(async |client, app| {
            Ok(match args.command {
                ProviderCommand::ListCatalog => {
                    let builtin = client.builtin_providers().await?;
                    output(json, &builtin, || {
                        let mut table =
                            Table::new(["ID", "NAME", "CATEGORY", "PARAMS", "DEFAULT SCOPES"]);
                        for p in &builtin {
                            table.row([
                                &p.id,
                                &p.display_name,
                                &p.category,
                                &list(&p.placeholders, "-"),
                                &list(&p.default_scopes, "-"),
                            ]);
                        }
                        table.render()
                    })
                }
                ProviderCommand::Configure(configure) => {
                    let id = configure.provider.clone();
                    let shown = client
                        .configure_provider(app, &id, &configure.request()?)
                        .await?;
                    output(json, &shown, || {
                        format!(
                            "{}\nregister this redirect URI at the provider: {}",
                            provider_text(&shown),
                            shown.redirect_uri
                        )
                    })
                }
                ProviderCommand::List => {
                    let providers = client.list_providers(app).await?;
                    output(json, &providers, || {
                        let mut table = Table::new(["ID", "NAME", "SOURCE", "CLIENT ID", "SCOPES"]);
                        for p in &providers {
                            table.row([
                                &p.id,
                                &p.display_name,
                                &p.source,
                                &p.client_id,
                                &list(&p.scopes, "-"),
                            ]);
                        }
                        table.render()
                    })
                }
                ProviderCommand::Show { provider } => {
                    let shown = client.get_provider(app, &provider).await?;
                    output(json, &shown, || provider_text(&shown))
                }
                ProviderCommand::Delete { provider } => {
                    let removed = client.delete_provider(app, &provider).await?;
                    output(json, &removed, || format!("removed {}", removed.id))
                }
                ProviderCommand::Spec(command) => {
                    super::provider_specs::run(client, app, json, command).await?
                }
            })
        })
        .await
}

fn provider_text(p: &ProviderInfo) -> String {
    let e = &p.endpoints;
    fields(&[
        ("id", p.id.clone()),
        ("name", p.display_name.clone()),
        ("source", p.source.clone()),
        ("client id", p.client_id.clone()),
        ("scopes", list(&p.scopes, "-")),
        ("issuer", or_dash(e.issuer.as_ref())),
        ("authorize url", or_dash(e.authorize_url.as_ref())),
        ("token url", or_dash(e.token_url.as_ref())),
        ("revoke url", or_dash(e.revoke_url.as_ref())),
        ("refresh", or_dash(e.refresh.as_ref())),
        ("redirect uri", p.redirect_uri.clone()),
        ("version", p.version.to_string()),
        ("updated", p.updated_at.clone()),
    ])
}
