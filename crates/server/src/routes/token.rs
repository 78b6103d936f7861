//! `POST /sdk/token` (retrieve mode) and the client's reports of what it did with a
//! credential.

use alter_core::release::{ApiCallReport, Release, ReleaseRequest};
use alter_core::secrets::SecretType;
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
    let credential = release.credential;
    let injections = credential.additional_injections;
    TokenResponse {
        access_token: credential.access_token.expose_secret().to_owned(),
        token_type: match release.secret.secret_type {
            SecretType::Bearer => "Bearer",
            SecretType::Basic => "Basic",
            SecretType::AwsSigv4 => "AWS4-HMAC-SHA256",
            _ => "ApiKey",
        }
        .into(),
        expires_in: release.expires_in,
        expires_at: None,
        scopes: Vec::new(),
        grant_id: release.grant.id.to_string(),
        provider_id: release.secret.slug,
        token_generation: Some(release.release_id.to_string()),
        scope_mismatch: release.scope_mismatch,
        injection_header: credential.injection_header,
        injection_format: credential.injection_format,
        additional_credentials: credential.additional_credentials.map(|values| {
            values
                .into_iter()
                .map(|(k, v)| (k, v.expose_secret().to_owned()))
                .collect()
        }),
        additional_injections: (!injections.is_empty()).then(|| {
            injections
                .into_iter()
                .map(|i| AdditionalInjection {
                    target: i.target.into(),
                    key: i.key,
                    value_source: i.value_source,
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
