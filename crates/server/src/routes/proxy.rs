//! `POST /sdk/proxy`: the vault makes the call (protocol part 1 §6.1–6.2).

use alter_core::ids::ApprovalId;
use alter_core::proxy::{ProxyOutcome, ProxyRequest, ProxyResult};
use alter_proto::proxy::{ProxyAnswer, ProxyCall};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::Value;

use crate::auth::{Authed, need};
use crate::error::{ApiError, ApiResult};
use crate::json::Json;
use crate::state::AppState;

pub async fn proxy(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::Signed>,
    Json(body): Json<ProxyCall>,
) -> ApiResult<Response> {
    let request = request(body)?;
    // A call may wait on a slow provider for a long time: each app has its share of slots.
    let Some(_share) = crate::shares::PROXIED_CALLS.take(caller.app_id) else {
        return Err(ApiError::server_busy());
    };
    // The request is kept for a held call: it is what the approver approves.
    match state.vault.proxy(&caller, request.clone()).await? {
        ProxyOutcome::Completed(result) => Ok(axum::Json(answer(result, None)).into_response()),
        ProxyOutcome::Held(held) => Ok(super::approvals::hold(&state, &caller, request, *held)
            .await?
            .into_response()),
    }
}

/// The wire call as the domain takes it.
fn request(body: ProxyCall) -> Result<ProxyRequest, ApiError> {
    let mut query_params = Vec::new();
    for (name, value) in body.query_params.into_iter().flatten() {
        let values = match value {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            other => vec![other],
        };
        for value in values {
            let text = match value {
                Value::String(text) => text,
                Value::Bool(flag) => flag.to_string(),
                Value::Number(number) => number.to_string(),
                _ => {
                    return Err(ApiError::invalid(
                        "query_params values must be strings, numbers, booleans or lists of them",
                    ));
                }
            };
            query_params.push((name.clone(), text));
        }
    }
    Ok(ProxyRequest {
        grant_id: body.grant_id,
        provider_id: body.provider_id,
        account: body.account,
        label: body.label,
        app_user_id: body.app_user_id,
        user_token: body.user_token,
        method: body.method,
        url: body.url,
        query_params,
        headers: body.headers.into_iter().flatten().collect(),
        body: body.body,
        reason: body.reason,
    })
}

/// The 200 envelope (also `/sdk/approvals/{id}/result`'s, with the approval's id); several
/// values of one header are joined with `, `.
pub(crate) fn answer(result: ProxyResult, approval: Option<ApprovalId>) -> ProxyAnswer {
    let mut headers = std::collections::BTreeMap::<String, String>::new();
    for (name, value) in result.headers {
        headers
            .entry(name)
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    ProxyAnswer {
        approval_id: approval.map(|a| a.to_string()),
        status_code: result.status,
        headers,
        body_b64: base64::engine::general_purpose::STANDARD.encode(&result.body),
        body_truncated: result.truncated,
        duration_ms: Some(result.duration_ms),
        credential_hint: result.credential_hint,
    }
}
