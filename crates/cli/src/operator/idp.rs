//! `alter idp …`: the app's identity provider, which verifies end users' JWTs.

use std::path::PathBuf;
use std::process::ExitCode;

use alter_sdk::Error;
use alter_sdk::admin::{IdpInfo, IdpRequest};
use clap::{ArgGroup, Args, Subcommand};

use super::{AppScope, output};
use crate::table::{fields, list, or_dash};

#[derive(Debug, Args)]
pub struct IdpArgs {
    #[command(flatten)]
    scope: AppScope,
    #[command(subcommand)]
    command: IdpCommand,
}

#[derive(Debug, Subcommand)]
enum IdpCommand {
    /// Set (or replace) the identity provider.
    Set(Box<SetArgs>),
    /// Show the identity provider; its id is the `idp_id` group principals name.
    Show,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("jwks").required(true).args(["jwks_url", "jwks_file"])))]
struct SetArgs {
    /// Expected `iss`.
    #[arg(long)]
    issuer: String,
    /// An accepted audience (repeatable).
    #[arg(long = "audience", required = true)]
    audiences: Vec<String>,
    /// URL of the JWKS (https, or http to localhost).
    #[arg(long)]
    jwks_url: Option<String>,
    /// A JWKS document, sent inline.
    #[arg(long)]
    jwks_file: Option<PathBuf>,
    /// An accepted algorithm: RS256, ES256 or EdDSA (repeatable; all by default).
    #[arg(long = "algorithm")]
    algorithms: Vec<String>,
    /// Subject claim (default `sub`).
    #[arg(long)]
    subject_claim: Option<String>,
    /// Groups claim.
    #[arg(long)]
    groups_claim: Option<String>,
    /// E-mail claim (default `email`).
    #[arg(long)]
    email_claim: Option<String>,
    /// Name claim (default `name`).
    #[arg(long)]
    name_claim: Option<String>,
    /// Clock skew tolerance, 0–300 seconds (default 60).
    #[arg(long)]
    leeway_seconds: Option<i64>,
}

impl SetArgs {
    /// The request these flags make; `--jwks-file` is read and sent inline.
    fn request(self) -> Result<IdpRequest, Error> {
        let jwks = self
            .jwks_file
            .map(|file| {
                std::fs::read_to_string(&file)
                    .map_err(|e| Error::value(format!("cannot read {}: {e}", file.display())))
            })
            .transpose()?;
        Ok(IdpRequest {
            issuer: self.issuer,
            audiences: self.audiences,
            jwks_url: self.jwks_url,
            jwks,
            algorithms: self.algorithms,
            subject_claim: self.subject_claim,
            groups_claim: self.groups_claim,
            email_claim: self.email_claim,
            name_claim: self.name_claim,
            leeway_seconds: self.leeway_seconds,
        })
    }
}

pub async fn idp(args: IdpArgs) -> ExitCode {
    let json = args.scope.json();
    args.scope
        .run(async |client, app| {
            let idp = match args.command {
                IdpCommand::Set(set) => client.set_idp(app, &set.request()?).await?,
                IdpCommand::Show => client.get_idp(app).await?,
            };
            Ok(output(json, &idp, || idp_text(&idp)))
        })
        .await
}

fn idp_text(idp: &IdpInfo) -> String {
    let jwks = match (&idp.jwks_url, idp.jwks_inline) {
        (Some(url), _) => url.clone(),
        (None, true) => "inline".to_owned(),
        (None, false) => "-".to_owned(),
    };
    fields(&[
        ("id", idp.id.clone()),
        ("issuer", idp.issuer.clone()),
        ("audiences", list(&idp.audiences, "-")),
        ("jwks", jwks),
        ("algorithms", list(&idp.algorithms, "-")),
        ("subject claim", idp.subject_claim.clone()),
        ("groups claim", or_dash(idp.groups_claim.as_ref())),
        ("email claim", or_dash(idp.email_claim.as_ref())),
        ("name claim", or_dash(idp.name_claim.as_ref())),
        ("leeway seconds", idp.leeway_seconds.to_string()),
        ("created", idp.created_at.clone()),
        ("updated", idp.updated_at.clone()),
    ])
}
