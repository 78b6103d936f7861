//! `alter idp …`: the app's identity provider, which verifies end users' JWTs, and
//! `alter idp sign-in …`: the OAuth client the vault signs the app's users in with there (its
//! secret read from stdin only).

use std::path::PathBuf;
use std::process::ExitCode;

use alter_sdk::Error;
use alter_sdk::admin::{
    IdpInfo, IdpRequest, RotateIdpEventSecretRequest, SignInInfo, SignInRequest,
};
use clap::{ArgGroup, Args, Subcommand};

use super::secrets::read_value;
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
    /// End-user sign-in at the identity provider (`create_auth_session`).
    #[command(subcommand)]
    SignIn(SignInCommand),
    /// The secret the IdP signs inbound lifecycle events with (docs/idp-events.md).
    #[command(subcommand)]
    EventsSecret(EventsSecretCommand),
}

#[derive(Debug, Subcommand)]
enum EventsSecretCommand {
    /// Generate the secret, or rotate it (the previous one keeps verifying for a day, or as
    /// long as --grace-seconds says). The secret is shown once: give it to the IdP's webhook
    /// settings.
    Rotate {
        /// Seconds the previous secret keeps verifying deliveries (default 86400; 0 ends it
        /// at once).
        #[arg(long)]
        grace_seconds: Option<i64>,
        /// Rotate only if the secret is still at this version (0 before the first).
        #[arg(long)]
        expected_version: Option<i64>,
    },
    /// End the previous secret now: only the current one verifies deliveries from here on.
    EndPrevious,
}

#[derive(Debug, Subcommand)]
enum SignInCommand {
    /// Set the sign-in client; its endpoints are discovered from the issuer unless both are
    /// given. Register the redirect URI it shows at the identity provider.
    Set(SignInArgs),
    /// Show the sign-in client (never its secret) and what it still lacks.
    Show,
}

#[derive(Debug, Args)]
struct SignInArgs {
    /// The client id (one of the identity provider's audiences).
    #[arg(long)]
    client_id: String,
    /// Read the client secret from stdin (otherwise the stored one is kept).
    #[arg(long)]
    client_secret_stdin: bool,
    /// A scope to ask for (repeatable; `openid email profile` by default).
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// The authorization endpoint (with --token-url; discovered when both are left out).
    #[arg(long, requires = "token_url")]
    authorize_url: Option<String>,
    /// The token endpoint (with --authorize-url).
    #[arg(long, requires = "authorize_url")]
    token_url: Option<String>,
}

impl SignInArgs {
    fn request(self) -> Result<SignInRequest, Error> {
        Ok(SignInRequest {
            client_id: self.client_id,
            client_secret: self.client_secret_stdin.then(read_value).transpose()?,
            scopes: self.scopes,
            authorize_url: self.authorize_url,
            token_url: self.token_url,
        })
    }
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
                IdpCommand::SignIn(command) => {
                    let sign_in = match command {
                        SignInCommand::Set(set) => client.set_sign_in(app, &set.request()?).await?,
                        SignInCommand::Show => client.get_sign_in(app).await?,
                    };
                    return Ok(output(json, &sign_in, || sign_in_text(&sign_in)));
                }
                IdpCommand::EventsSecret(EventsSecretCommand::EndPrevious) => {
                    let state = client.end_previous_idp_event_secret(app).await?;
                    return Ok(output(json, &state, || {
                        fields(&[
                            ("version", state.version.to_string()),
                            (
                                "previous valid until",
                                or_dash(state.previous_valid_until.as_ref()),
                            ),
                        ])
                    }));
                }
                IdpCommand::EventsSecret(EventsSecretCommand::Rotate {
                    grace_seconds,
                    expected_version,
                }) => {
                    let request = RotateIdpEventSecretRequest {
                        grace_seconds,
                        expected_version,
                    };
                    let new = client.rotate_idp_event_secret_with(app, &request).await?;
                    return Ok(output(json, &new, || {
                        fields(&[
                            ("secret", new.secret.clone()),
                            ("version", new.version.to_string()),
                            (
                                "previous valid until",
                                or_dash(new.previous_valid_until.as_ref()),
                            ),
                            ("endpoint", format!("POST /idp/v1/apps/{app}/events")),
                        ])
                    }));
                }
            };
            Ok(output(json, &idp, || idp_text(&idp)))
        })
        .await
}

fn sign_in_text(sign_in: &SignInInfo) -> String {
    fields(&[
        ("client id", sign_in.client_id.clone()),
        (
            "client secret",
            if sign_in.has_client_secret {
                "stored"
            } else {
                "-"
            }
            .to_owned(),
        ),
        ("scopes", list(&sign_in.scopes, "-")),
        ("authorize url", or_dash(sign_in.authorize_url.as_ref())),
        ("token url", or_dash(sign_in.token_url.as_ref())),
        ("redirect uri", sign_in.redirect_uri.clone()),
        (
            "ready",
            match &sign_in.not_ready {
                None => "yes".to_owned(),
                Some(reason) => format!("no ({reason})"),
            },
        ),
        ("version", sign_in.version.to_string()),
        ("updated", sign_in.updated_at.clone()),
    ])
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
