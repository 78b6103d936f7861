//! Provider specs: the OpenAPI document an operator imports for an OAuth provider or a
//! managed secret of an app, kept with its content hash and a version that moves only when
//! the content does, and the operations it lists (method, path template, summary, parameter
//! and body schemas), which clients page through and search to find the call they are about
//! to make.

pub mod openapi;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::audit::{Actor, AuditEvent, Target, action};
use crate::error::{Entity, Error, Result, ensure};
use crate::ids::AppId;
use crate::ports::StoreError;
use crate::time::Timestamp;
use crate::vault::Vault;

pub use openapi::{MAX_DOCUMENT_BYTES, MAX_OPERATION_ID_CHARS, Operation};

/// Provenance of a spec the operator imported.
pub const PROVENANCE_IMPORT: &str = "import";
/// Largest page of operations.
pub const MAX_PAGE: i64 = 500;
/// Longest operation search.
pub const MAX_SEARCH_CHARS: usize = 200;
/// Longest source URL.
const MAX_SOURCE_URL_CHARS: usize = 2048;

/// Which kind of provider a spec describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SpecKind {
    /// An OAuth provider configured in the app.
    OAuth,
    /// A managed secret of the app (by slug).
    Managed,
}

impl SpecKind {
    /// The wire and stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecKind::OAuth => "oauth",
            SpecKind::Managed => "managed",
        }
    }

    /// Parses the wire form.
    pub fn parse(text: &str) -> Option<SpecKind> {
        match text {
            "oauth" => Some(SpecKind::OAuth),
            "managed" => Some(SpecKind::Managed),
            _ => None,
        }
    }
}

/// A provider's spec: its metadata (the operations are stored beside it).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSpec {
    /// The app.
    pub app_id: AppId,
    /// OAuth provider or managed secret.
    pub kind: SpecKind,
    /// The provider's id (an OAuth provider's id, a managed secret's slug).
    pub provider_id: String,
    /// 1, then one more for each import that changed the content.
    pub version: i64,
    /// Where it came from ([`PROVENANCE_IMPORT`]).
    pub provenance: String,
    /// Where the operator says it was published.
    pub source_url: Option<String>,
    /// SHA-256 (hex) of the stored document.
    pub content_hash: String,
    /// `info.title`.
    pub title: Option<String>,
    /// `info.version`.
    pub spec_version: Option<String>,
    /// How many operations it lists.
    pub operation_count: i64,
    /// Last import.
    pub fetched_at: Timestamp,
    /// Last import that changed the content.
    pub changed_at: Timestamp,
}

/// A spec's operation as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationSummary {
    /// Its id.
    pub operation_id: String,
    /// Upper-case method.
    pub method: String,
    /// Path template.
    pub path_template: String,
    /// Summary.
    pub summary: Option<String>,
}

impl From<&Operation> for OperationSummary {
    fn from(op: &Operation) -> Self {
        OperationSummary {
            operation_id: op.operation_id.clone(),
            method: op.method.clone(),
            path_template: op.path_template.clone(),
            summary: op.summary.clone(),
        }
    }
}

/// What an operator imports.
#[derive(Debug)]
pub struct ImportSpec {
    /// OAuth provider or managed secret.
    pub kind: SpecKind,
    /// The provider (a managed secret by slug or id).
    pub provider_id: String,
    /// The OpenAPI document, JSON or YAML.
    pub document: Vec<u8>,
    /// Where it was published.
    pub source_url: Option<String>,
}

/// A page of operations.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationsPage {
    /// The spec they belong to.
    pub spec: ProviderSpec,
    /// This page, in document order.
    pub items: Vec<OperationSummary>,
    /// How many match in all.
    pub total: i64,
}

/// Which operations to list.
#[derive(Debug, Clone, Default)]
pub struct OperationQuery {
    /// Case-insensitive text to find in the id, path template or summary.
    pub search: Option<String>,
    /// Page size, 1 to [`MAX_PAGE`].
    pub limit: i64,
    /// Operations skipped, ≥ 0.
    pub offset: i64,
}

/// The lower-cased text an operation is searched by.
pub fn search_text(op: &OperationSummary) -> String {
    format!(
        "{}\n{}\n{}",
        op.operation_id,
        op.path_template,
        op.summary.as_deref().unwrap_or("")
    )
    .to_lowercase()
}

impl Vault {
    /// Imports (or re-imports) a provider's OpenAPI document (operator). The provider must
    /// exist in the app. The same content again keeps the version and `changed_at` (only
    /// `fetched_at` and the source URL move); other content replaces the operations and moves
    /// the version on. Returns the spec and whether the content changed.
    pub async fn import_provider_spec(
        &self,
        app_id: AppId,
        import: ImportSpec,
    ) -> Result<(ProviderSpec, bool)> {
        self.get_app(app_id).await?;
        let provider_id = self
            .spec_provider(app_id, import.kind, &import.provider_id)
            .await?;
        let source_url = import.source_url.map(validate_source_url).transpose()?;
        let document = parse_aside(import.document.clone()).await?;
        let content_hash = hex::encode(Sha256::digest(&import.document));
        let existing = self
            .store()
            .get_provider_spec(app_id, import.kind, &provider_id)
            .await?;
        let now = self.now();
        let changed = existing
            .as_ref()
            .is_none_or(|e| e.content_hash != content_hash);
        let spec = ProviderSpec {
            app_id,
            kind: import.kind,
            provider_id,
            version: existing
                .as_ref()
                .map_or(1, |e| e.version + i64::from(changed)),
            provenance: PROVENANCE_IMPORT.into(),
            source_url: source_url.or_else(|| existing.as_ref()?.source_url.clone()),
            content_hash,
            title: document.title,
            spec_version: document.spec_version,
            operation_count: i64::try_from(document.operations.len()).unwrap_or(i64::MAX),
            fetched_at: now,
            changed_at: match &existing {
                Some(e) if !changed => e.changed_at,
                _ => now,
            },
        };
        let event = spec_event(&spec, action::PROVIDER_SPEC_IMPORTED, now).with_details(json!({
            "version": spec.version,
            "content_hash": spec.content_hash,
            "operation_count": spec.operation_count,
            "source_url": spec.source_url,
            "changed": changed,
        }));
        let write = PutSpec {
            spec: &spec,
            document: changed.then_some(import.document.as_slice()),
            operations: changed.then_some(document.operations.as_slice()),
            expected_version: existing.as_ref().map(|e| e.version),
        };
        match self.store().put_provider_spec(&write, &event).await {
            Ok(true) => Ok((spec, changed)),
            Ok(false) | Err(StoreError::Conflict(_)) => Err(Error::Conflict(
                "the spec changed while it was being imported; try again".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The app's provider specs, of one kind or both, by kind and provider id.
    pub async fn list_provider_specs(
        &self,
        app_id: AppId,
        kind: Option<SpecKind>,
    ) -> Result<Vec<ProviderSpec>> {
        self.get_app(app_id).await?;
        Ok(self.store().list_provider_specs(app_id, kind).await?)
    }

    /// One provider's spec.
    pub async fn get_provider_spec(
        &self,
        app_id: AppId,
        kind: SpecKind,
        provider_id: &str,
    ) -> Result<ProviderSpec> {
        self.store()
            .get_provider_spec(app_id, kind, provider_id)
            .await?
            .ok_or(Error::NotFound(Entity::ProviderSpec))
    }

    /// A page of a spec's operations, in document order, optionally only those whose id, path
    /// template or summary contain `query.search` (ignoring case).
    pub async fn list_spec_operations(
        &self,
        app_id: AppId,
        kind: SpecKind,
        provider_id: &str,
        query: &OperationQuery,
    ) -> Result<OperationsPage> {
        ensure((1..=MAX_PAGE).contains(&query.limit), || {
            format!("limit must be between 1 and {MAX_PAGE}")
        })?;
        ensure(query.offset >= 0, || "offset must be >= 0".into())?;
        let search = query
            .search
            .as_deref()
            .map(|s| -> Result<String> {
                ensure(
                    !s.is_empty() && s.chars().count() <= MAX_SEARCH_CHARS,
                    || format!("search must be 1 to {MAX_SEARCH_CHARS} characters"),
                )?;
                Ok(s.to_lowercase())
            })
            .transpose()?;
        let spec = self.get_provider_spec(app_id, kind, provider_id).await?;
        let (items, total) = self
            .store()
            .list_spec_operations(
                app_id,
                kind,
                &spec.provider_id,
                search.as_deref(),
                query.limit,
                query.offset,
            )
            .await?;
        Ok(OperationsPage { spec, items, total })
    }

    /// One operation of a spec, with its schemas.
    pub async fn get_spec_operation(
        &self,
        app_id: AppId,
        kind: SpecKind,
        provider_id: &str,
        operation_id: &str,
    ) -> Result<(ProviderSpec, Operation)> {
        ensure(
            !operation_id.trim().is_empty()
                && operation_id.chars().count() <= MAX_OPERATION_ID_CHARS
                && !operation_id.chars().any(char::is_control),
            || {
                format!(
                    "operation_id must be 1 to {MAX_OPERATION_ID_CHARS} characters without control characters"
                )
            },
        )?;
        let spec = self.get_provider_spec(app_id, kind, provider_id).await?;
        let operation = self
            .store()
            .get_spec_operation(app_id, kind, &spec.provider_id, operation_id)
            .await?
            .ok_or(Error::NotFound(Entity::Operation))?;
        Ok((spec, operation))
    }

    /// Removes a provider's spec and its operations (operator); returns what was removed.
    pub async fn delete_provider_spec(
        &self,
        app_id: AppId,
        kind: SpecKind,
        provider_id: &str,
    ) -> Result<ProviderSpec> {
        let spec = self.get_provider_spec(app_id, kind, provider_id).await?;
        let event = spec_event(&spec, action::PROVIDER_SPEC_DELETED, self.now());
        if self
            .store()
            .delete_provider_spec(app_id, kind, &spec.provider_id, &event)
            .await?
        {
            Ok(spec)
        } else {
            Err(Error::NotFound(Entity::ProviderSpec))
        }
    }

    /// The id a spec of `kind` is kept under, if the provider exists in the app: an OAuth
    /// provider's id, or a managed secret's slug (given by slug or id).
    async fn spec_provider(&self, app_id: AppId, kind: SpecKind, id: &str) -> Result<String> {
        match kind {
            SpecKind::OAuth => Ok(self.get_provider(app_id, id).await?.id),
            SpecKind::Managed => Ok(self.get_secret(app_id, id).await?.slug),
        }
    }
}

/// What [`SpecStore::put_provider_spec`](crate::ports::SpecStore::put_provider_spec) writes.
#[derive(Debug)]
pub struct PutSpec<'a> {
    /// The spec's new metadata.
    pub spec: &'a ProviderSpec,
    /// The new document, when the content changed.
    pub document: Option<&'a [u8]>,
    /// The new operations, when the content changed (they replace the old ones).
    pub operations: Option<&'a [Operation]>,
    /// The version read (`None`: no spec yet).
    pub expected_version: Option<i64>,
}

/// A source URL: an absolute `http(s)` URL without userinfo. It is only shown, never fetched.
fn validate_source_url(text: String) -> Result<String> {
    let url = url::Url::parse(&text).ok();
    ensure(
        text.chars().count() <= MAX_SOURCE_URL_CHARS
            && url.is_some_and(|u| {
                matches!(u.scheme(), "https" | "http")
                    && u.username().is_empty()
                    && u.password().is_none()
            }),
        || {
            format!(
                "source_url must be an http(s) URL without userinfo, at most {MAX_SOURCE_URL_CHARS} characters"
            )
        },
    )?;
    Ok(text)
}

fn spec_event(spec: &ProviderSpec, action: &str, at: Timestamp) -> AuditEvent {
    AuditEvent::allow(
        spec.app_id,
        at,
        action,
        Actor::operator(),
        Target {
            kind: "provider_spec".into(),
            id: format!("{}/{}", spec.kind.as_str(), spec.provider_id),
        },
    )
}

/// Documents parsed at once, per process: parsing is CPU work an operator starts, and several
/// large imports must not take every worker.
static PARSING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Parses `document` on a blocking thread (never on the request workers), one at a time.
async fn parse_aside(document: Vec<u8>) -> Result<openapi::Document> {
    let _turn = PARSING
        .acquire()
        .await
        .map_err(|_| Error::Invalid("the document cannot be read now".into()))?;
    tokio::task::spawn_blocking(move || openapi::parse(&document))
        .await
        .map_err(|_| Error::Invalid("the document could not be read".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in [SpecKind::OAuth, SpecKind::Managed] {
            assert_eq!(SpecKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(SpecKind::parse("OAuth"), None);
    }

    #[test]
    fn source_urls_are_http_without_userinfo() {
        assert!(validate_source_url("https://example.com/openapi.json".into()).is_ok());
        for bad in [
            "ftp://example.com/x",
            "https://u:p@example.com/",
            "not a url",
        ] {
            assert!(validate_source_url(bad.into()).is_err(), "{bad}");
        }
    }

    #[test]
    fn search_text_is_lower_case_and_covers_id_path_and_summary() {
        let text = search_text(&OperationSummary {
            operation_id: "GetCharge".into(),
            method: "GET".into(),
            path_template: "/v1/Charges/{id}".into(),
            summary: Some("Retrieve a Charge".into()),
        });
        assert!(
            text.contains("getcharge")
                && text.contains("/v1/charges")
                && text.contains("retrieve a charge")
        );
    }
}
