//! Provider specs: `GET /sdk/provider-specs…` (protocol part 1 §7.7, `vault.provider_specs`)
//! and the operator's `/admin/v1/apps/{app}/provider-specs…`, which answers with the same
//! shapes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A provider's spec: freshness and provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProviderSpec {
    /// `oauth` or `managed`.
    pub provider_kind: String,
    /// The provider's id (a managed secret's slug).
    pub provider_id: String,
    /// 1, then one more for each import that changed the content.
    pub version: i64,
    /// Where it came from (`import`).
    pub provenance: String,
    /// Where it was published, when known.
    pub source_url: Option<String>,
    /// SHA-256 (hex) of the stored document.
    pub content_hash: String,
    /// How many operations it lists.
    pub operation_count: i64,
    /// Last import (RFC 3339).
    pub fetched_at: String,
    /// Last import that changed the content (RFC 3339).
    pub changed_at: String,
    /// The document's title.
    pub title: Option<String>,
    /// The document's own version.
    pub spec_version: Option<String>,
}

/// `GET /sdk/provider-specs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProviderSpecList {
    /// The specs, by kind and provider id.
    pub items: Vec<ProviderSpec>,
    /// How many.
    pub total: i64,
}

/// The query of `GET /sdk/provider-specs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecListQuery {
    /// Only specs of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// One operation in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SpecOperation {
    /// Its id.
    pub operation_id: String,
    /// Upper-case HTTP method.
    pub method: String,
    /// Path template.
    pub path_template: String,
    /// Summary.
    pub summary: Option<String>,
}

/// The query of `GET /sdk/provider-specs/{kind}/{provider_id}/operations`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationsQuery {
    /// Page size, 1 to 500 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Operations skipped (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// Text to find in the id, path template or summary, ignoring case (1 to 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
}

/// A page of operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SpecOperationsPage {
    /// This page, in document order.
    pub items: Vec<SpecOperation>,
    /// How many match in all.
    pub total: i64,
    /// The page size asked for.
    pub limit: i64,
    /// The offset asked for.
    pub offset: i64,
    /// More match after this page.
    pub has_more: bool,
    /// The spec they belong to.
    pub spec: ProviderSpec,
}

/// The query of `GET /sdk/provider-specs/{kind}/{provider_id}/operation`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationQuery {
    /// The operation's id.
    pub operation_id: String,
}

/// One operation with its schemas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SpecOperationDetail {
    /// Its id.
    pub operation_id: String,
    /// Upper-case HTTP method.
    pub method: String,
    /// Path template.
    pub path_template: String,
    /// Summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Its parameters (OpenAPI parameter objects, references resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_schema: Option<Vec<Value>>,
    /// The JSON request body's schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_schema: Option<Value>,
    /// The first 2xx JSON response's schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<Value>,
    /// The spec it belongs to.
    pub spec: ProviderSpec,
}

/// The query of the operator's import (`PUT /admin/v1/apps/{app}/provider-specs/{kind}/{id}`,
/// the document as the body).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Where the document was published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
}

/// The answer to an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImportedSpec {
    /// The spec as stored.
    #[serde(flatten)]
    pub spec: ProviderSpec,
    /// False when the document was the same as the stored one (the version did not move).
    pub changed: bool,
}
