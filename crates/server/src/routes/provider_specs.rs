//! Provider specs: `GET /sdk/provider-specs…` (protocol part 1 §7.7, scope `providers:read`:
//! any key of the app that holds it reads the app's specs, nothing else) and the operator's
//! `/admin/v1/apps/{app}/provider-specs…` (import, list, show, delete).

use alter_core::Error;
use alter_core::provider_specs::{
    ImportSpec, Operation, OperationQuery as DomainQuery, OperationSummary,
    ProviderSpec as DomainSpec, SpecKind,
};
use alter_proto::provider_specs::{
    ImportQuery, ImportedSpec, OperationQuery, OperationsQuery, ProviderSpec, ProviderSpecList,
    SpecListQuery, SpecOperation, SpecOperationDetail, SpecOperationsPage,
};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};

use super::admin::app_id;
use super::default_page_limit;
use crate::auth::{Authed, Operator, need};
use crate::error::ApiResult;
use crate::json::Query;
use crate::state::AppState;

/// `GET /sdk/provider-specs[?kind=]`.
pub async fn list(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::ProvidersRead>,
    Query(query): Query<SpecListQuery>,
) -> ApiResult<axum::Json<ProviderSpecList>> {
    let kind = query.kind.as_deref().map(kind).transpose()?;
    let specs = state.vault.list_provider_specs(caller.app_id, kind).await?;
    Ok(axum::Json(spec_list(&specs)))
}

/// `GET /sdk/provider-specs/{kind}/{provider_id}`.
pub async fn get(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::ProvidersRead>,
    Path((kind_text, provider)): Path<(String, String)>,
) -> ApiResult<axum::Json<ProviderSpec>> {
    let spec = state
        .vault
        .get_provider_spec(caller.app_id, kind(&kind_text)?, &provider)
        .await?;
    Ok(axum::Json(spec_view(&spec)))
}

/// `GET /sdk/provider-specs/{kind}/{provider_id}/operations?limit=&offset=&search=`.
pub async fn operations(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::ProvidersRead>,
    Path((kind_text, provider)): Path<(String, String)>,
    Query(query): Query<OperationsQuery>,
) -> ApiResult<axum::Json<SpecOperationsPage>> {
    let query = DomainQuery {
        search: query.search,
        limit: query.limit.unwrap_or_else(default_page_limit),
        offset: query.offset.unwrap_or(0),
    };
    let page = state
        .vault
        .list_spec_operations(caller.app_id, kind(&kind_text)?, &provider, &query)
        .await?;
    let shown = i64::try_from(page.items.len()).unwrap_or(i64::MAX);
    Ok(axum::Json(SpecOperationsPage {
        items: page.items.iter().map(operation_view).collect(),
        total: page.total,
        limit: query.limit,
        offset: query.offset,
        has_more: query.offset.saturating_add(shown) < page.total,
        spec: spec_view(&page.spec),
    }))
}

/// `GET /sdk/provider-specs/{kind}/{provider_id}/operation?operation_id=`.
pub async fn operation(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::ProvidersRead>,
    Path((kind_text, provider)): Path<(String, String)>,
    Query(query): Query<OperationQuery>,
) -> ApiResult<axum::Json<SpecOperationDetail>> {
    let (spec, operation) = state
        .vault
        .get_spec_operation(
            caller.app_id,
            kind(&kind_text)?,
            &provider,
            &query.operation_id,
        )
        .await?;
    Ok(axum::Json(detail_view(&spec, operation)))
}

/// `PUT /admin/v1/apps/{app}/provider-specs/{kind}/{provider_id}[?source_url=]`: the body is
/// the OpenAPI document, JSON or YAML.
pub(super) async fn import(
    State(state): State<AppState>,
    _: Operator,
    Path((app, kind_text, provider)): Path<(String, String, String)>,
    Query(query): Query<ImportQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<ImportedSpec>> {
    ensure_document_type(&headers)?;
    let (spec, changed) = state
        .vault
        .import_provider_spec(
            app_id(&app)?,
            ImportSpec {
                kind: kind(&kind_text)?,
                provider_id: provider,
                document: body.to_vec(),
                source_url: query.source_url,
            },
        )
        .await?;
    Ok(axum::Json(ImportedSpec {
        spec: spec_view(&spec),
        changed,
    }))
}

/// `GET /admin/v1/apps/{app}/provider-specs[?kind=]`.
pub(super) async fn admin_list(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
    Query(query): Query<SpecListQuery>,
) -> ApiResult<axum::Json<ProviderSpecList>> {
    let kind = query.kind.as_deref().map(kind).transpose()?;
    let specs = state.vault.list_provider_specs(app_id(&app)?, kind).await?;
    Ok(axum::Json(spec_list(&specs)))
}

/// `GET /admin/v1/apps/{app}/provider-specs/{kind}/{provider_id}`.
pub(super) async fn admin_get(
    State(state): State<AppState>,
    _: Operator,
    Path((app, kind_text, provider)): Path<(String, String, String)>,
) -> ApiResult<axum::Json<ProviderSpec>> {
    let spec = state
        .vault
        .get_provider_spec(app_id(&app)?, kind(&kind_text)?, &provider)
        .await?;
    Ok(axum::Json(spec_view(&spec)))
}

/// `DELETE /admin/v1/apps/{app}/provider-specs/{kind}/{provider_id}`: returns what was removed.
pub(super) async fn delete(
    State(state): State<AppState>,
    _: Operator,
    Path((app, kind_text, provider)): Path<(String, String, String)>,
) -> ApiResult<axum::Json<ProviderSpec>> {
    let spec = state
        .vault
        .delete_provider_spec(app_id(&app)?, kind(&kind_text)?, &provider)
        .await?;
    Ok(axum::Json(spec_view(&spec)))
}

fn kind(text: &str) -> Result<SpecKind, Error> {
    SpecKind::parse(text)
        .ok_or_else(|| Error::Invalid(format!("kind {text:?}: use oauth or managed")))
}

/// An import's body is declared JSON or YAML.
fn ensure_document_type(headers: &HeaderMap) -> Result<(), Error> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let known = essence.ends_with("json")
        || essence.ends_with("yaml")
        || essence == "application/vnd.oai.openapi";
    if known && (essence.starts_with("application/") || essence.starts_with("text/")) {
        Ok(())
    } else {
        Err(Error::Invalid(
            "send the OpenAPI document with Content-Type application/json or application/yaml"
                .into(),
        ))
    }
}

fn spec_list(specs: &[DomainSpec]) -> ProviderSpecList {
    ProviderSpecList {
        items: specs.iter().map(spec_view).collect(),
        total: i64::try_from(specs.len()).unwrap_or(i64::MAX),
    }
}

fn spec_view(spec: &DomainSpec) -> ProviderSpec {
    ProviderSpec {
        provider_kind: spec.kind.as_str().into(),
        provider_id: spec.provider_id.clone(),
        version: spec.version,
        provenance: spec.provenance.clone(),
        source_url: spec.source_url.clone(),
        content_hash: spec.content_hash.clone(),
        operation_count: spec.operation_count,
        fetched_at: spec.fetched_at.to_rfc3339(),
        changed_at: spec.changed_at.to_rfc3339(),
        title: spec.title.clone(),
        spec_version: spec.spec_version.clone(),
    }
}

fn operation_view(op: &OperationSummary) -> SpecOperation {
    SpecOperation {
        operation_id: op.operation_id.clone(),
        method: op.method.clone(),
        path_template: op.path_template.clone(),
        summary: op.summary.clone(),
    }
}

fn detail_view(spec: &DomainSpec, op: Operation) -> SpecOperationDetail {
    SpecOperationDetail {
        operation_id: op.operation_id,
        method: op.method,
        path_template: op.path_template,
        summary: op.summary,
        params_schema: op.params_schema,
        request_schema: op.request_schema,
        response_schema: op.response_schema,
        spec: spec_view(spec),
    }
}
