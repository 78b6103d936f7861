//! `alter provider spec …`: the OpenAPI documents imported for an app's providers (an OAuth
//! provider, or a managed secret with `--kind managed`), whose operations clients discover
//! through `provider_specs`.

use std::path::{Path, PathBuf};

use alter_sdk::Error;
use alter_sdk::admin::{AdminClient, ImportQuery, ProviderSpec, SpecListQuery};
use clap::{Args, Subcommand, ValueEnum};

use super::output;
use crate::table::{Table, fields, or_dash};

#[derive(Debug, Subcommand)]
pub(super) enum SpecCommand {
    /// Import (or re-import) a provider's OpenAPI 3 document, JSON or YAML; the same document
    /// again keeps the version.
    Import {
        /// Provider id (a managed secret's slug or id with --kind managed).
        provider: String,
        /// The OpenAPI document (`.json`, `.yaml` or `.yml`).
        file: PathBuf,
        #[command(flatten)]
        kind: KindArg,
        /// Where the document is published (shown to clients, never fetched).
        #[arg(long)]
        source_url: Option<String>,
    },
    /// List the app's provider specs.
    List {
        /// Only specs of this kind.
        #[arg(long, value_enum)]
        kind: Option<Kind>,
    },
    /// Show a provider's spec.
    Show {
        /// Provider id.
        provider: String,
        #[command(flatten)]
        kind: KindArg,
    },
    /// Remove a provider's spec.
    Delete {
        /// Provider id.
        provider: String,
        #[command(flatten)]
        kind: KindArg,
    },
}

/// Which kind of provider a spec is for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum Kind {
    /// An OAuth provider of the app.
    Oauth,
    /// A managed secret of the app.
    Managed,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Oauth => "oauth",
            Kind::Managed => "managed",
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct KindArg {
    /// The provider's kind.
    #[arg(long, value_enum, default_value = "oauth")]
    kind: Kind,
}

/// Runs a `provider spec` command against `app`.
pub(super) async fn run(
    client: &AdminClient,
    app: &str,
    json: bool,
    command: SpecCommand,
) -> Result<String, Error> {
    Ok(match command {
        SpecCommand::Import {
            provider,
            file,
            kind,
            source_url,
        } => {
            let document = std::fs::read(&file)
                .map_err(|e| Error::value(format!("cannot read {}: {e}", file.display())))?;
            let content_type = content_type(&file, &document);
            let imported = client
                .import_provider_spec(
                    app,
                    kind.kind.as_str(),
                    &provider,
                    document,
                    content_type,
                    &ImportQuery { source_url },
                )
                .await?;
            output(json, &imported, || {
                let note = if imported.changed {
                    "imported"
                } else {
                    "unchanged (same content)"
                };
                format!("{}\n{note}", spec_text(&imported.spec))
            })
        }
        SpecCommand::List { kind } => {
            let query = SpecListQuery {
                kind: kind.map(|k| k.as_str().to_owned()),
            };
            let specs = client.list_provider_specs(app, &query).await?;
            output(json, &specs, || {
                let mut table = Table::new([
                    "KIND",
                    "PROVIDER",
                    "VERSION",
                    "OPERATIONS",
                    "TITLE",
                    "CHANGED",
                ]);
                for s in &specs {
                    table.row([
                        &s.provider_kind,
                        &s.provider_id,
                        &s.version.to_string(),
                        &s.operation_count.to_string(),
                        &or_dash(s.title.as_ref()),
                        &s.changed_at,
                    ]);
                }
                table.render()
            })
        }
        SpecCommand::Show { provider, kind } => {
            let spec = client
                .get_provider_spec(app, kind.kind.as_str(), &provider)
                .await?;
            output(json, &spec, || spec_text(&spec))
        }
        SpecCommand::Delete { provider, kind } => {
            let removed = client
                .delete_provider_spec(app, kind.kind.as_str(), &provider)
                .await?;
            output(json, &removed, || {
                format!(
                    "removed the spec of {} {}",
                    removed.provider_kind, removed.provider_id
                )
            })
        }
    })
}

/// JSON for `.json` files (or a document that starts with `{`), YAML otherwise.
fn content_type(file: &Path, document: &[u8]) -> &'static str {
    let extension = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let json = match extension.as_deref() {
        Some("json") => true,
        Some("yaml" | "yml") => false,
        _ => document
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{'),
    };
    if json {
        "application/json"
    } else {
        "application/yaml"
    }
}

fn spec_text(s: &ProviderSpec) -> String {
    fields(&[
        ("kind", s.provider_kind.clone()),
        ("provider", s.provider_id.clone()),
        ("title", or_dash(s.title.as_ref())),
        ("spec version", or_dash(s.spec_version.as_ref())),
        ("version", s.version.to_string()),
        ("operations", s.operation_count.to_string()),
        ("content hash", s.content_hash.clone()),
        ("provenance", s.provenance.clone()),
        ("source url", or_dash(s.source_url.as_ref())),
        ("fetched", s.fetched_at.clone()),
        ("changed", s.changed_at.clone()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_type_follows_the_extension_or_the_first_character() {
        assert_eq!(content_type(Path::new("a.JSON"), b"x"), "application/json");
        assert_eq!(content_type(Path::new("a.yml"), b"{}"), "application/yaml");
        assert_eq!(
            content_type(Path::new("spec"), b"  {\"openapi\""),
            "application/json"
        );
        assert_eq!(
            content_type(Path::new("spec"), b"openapi: 3.1.0"),
            "application/yaml"
        );
    }
}
