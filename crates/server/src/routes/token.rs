//! `POST /sdk/token` (retrieve mode) and the client's reports of what it did with a
//! credential.

use alter_core::release::{ApiCallReport, ExtraTarget, Release, ReleaseRequest, TokenKind};
use alter_crypto::ExposeSecret;
use alter_proto::token::{
    AdditionalInjection, ApiCallAudit, ScopeMismatchReport, TokenRequest, TokenResponse,
};
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::auth::{Authed, need};
use crate::error::ApiResult;
use crate::json::Json;
use crate::state::AppState;

pub async fn token(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::Signed>,
    Json(body): Json<TokenRequest>,
) -> ApiResult<axum::Json<TokenResponse>> {
    let release = state
        .vault
        .release(
            &caller,
            ReleaseRequest {
                grant_id: body.grant_id,
                provider_id: body.provider_id,
                reason: body.reason,
                method: body.request.method,
                url: body.request.url,
                user_token: body.user_token,
                app_user_id: body.app_user_id,
                account: body.account,
                label: body.label,
            },
        )
        .await?;
    Ok(axum::Json(response(release)))
}

fn response(release: Release) -> TokenResponse {
    let injection = release.injection;
    let extras = injection.extra_injections;
    TokenResponse {
        access_token: injection.token.expose_secret().to_owned(),
        token_type: match injection.kind {
            TokenKind::Bearer => "Bearer",
            TokenKind::Basic => "Basic",
            TokenKind::AwsSigv4 => "AWS4-HMAC-SHA256",
            TokenKind::ApiKey => "ApiKey",
        }
        .into(),
        expires_in: release.expires_in,
        expires_at: injection.expires_at.map(|t| t.to_rfc3339()),
        scopes: injection.scopes,
        grant_id: release.grant.id.to_string(),
        provider_id: release.provider_id,
        token_generation: Some(release.release_id.to_string()),
        scope_mismatch: release.scope_mismatch,
        injection_header: injection.header,
        injection_format: injection.format,
        additional_credentials: injection.extra_values.map(|values| {
            values
                .into_iter()
                .map(|(k, v)| (k, v.expose_secret().to_owned()))
                .collect()
        }),
        additional_injections: (!extras.is_empty()).then(|| {
            extras
                .into_iter()
                .map(|extra| AdditionalInjection {
                    target: match extra.target {
                        ExtraTarget::Header => "header",
                        ExtraTarget::Query => "query_param",
                    }
                    .into(),
                    key: extra.key,
                    value_source: format!("additional_credentials.{}", extra.field),
                })
                .collect()
        }),
        grant_expires_at: release.grant.expires_at.map(|t| t.to_rfc3339()),
    }
}

pub async fn api_call(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::Telemetry>,
    Json(body): Json<ApiCallAudit>,
) -> ApiResult<StatusCode> {
    state
        .vault
        .report_api_call(
            &caller,
            ApiCallReport {
                grant_id: body.grant_id,
                token_generation: body.token_generation,
                method: body.method,
                url: body.url,
                response_status: body.response_status,
                latency_ms: body.latency_ms,
                reason: body.reason,
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn scope_mismatch(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::Signed>,
    Path(grant): Path<String>,
    Json(body): Json<ScopeMismatchReport>,
) -> ApiResult<StatusCode> {
    let missing: Vec<String> = body
        .missing_scopes
        .unwrap_or_default()
        .into_iter()
        .take(50)
        .map(|s| s.chars().take(256).collect())
        .collect();
    state
        .vault
        .report_scope_mismatch(&caller, &grant, missing)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
