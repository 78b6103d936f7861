//! `POST /sdk/proxy`: the vault makes the call (protocol part 1 §6.1–6.2).

use alter_core::Error;
use alter_core::proxy::{HeldCall, ProxyOutcome, ProxyRequest, ProxyResult};
use alter_core::release::{Denial, ProxyReason};
use alter_proto::proxy::{ProxyAnswer, ProxyCall};
use axum::extract::State;
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
) -> ApiResult<axum::Json<ProxyAnswer>> {
    let request = request(body)?;
    match state.vault.proxy(&caller, request).await? {
        ProxyOutcome::Completed(result) => Ok(axum::Json(answer(result))),
        ProxyOutcome::Held(held) => Err(held_answer_placeholder(&held)),
    }
}

/// PLACEHOLDER until approvals exist: a held call is refused as a retrieve-mode call under
/// an approval rule is (`hitl_grant_requires_proxy`). The approvals work replaces this with
/// the 202 `PendingApproval` answer.
fn held_answer_placeholder(_held: &HeldCall) -> ApiError {
    Error::ReleaseDenied(Denial::RequiresProxy(ProxyReason::ApprovalRequired)).into()
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

/// The 200 envelope; several values of one header are joined with `, `.
fn answer(result: ProxyResult) -> ProxyAnswer {
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
        approval_id: None,
        status_code: result.status,
        headers,
        body_b64: base64::engine::general_purpose::STANDARD.encode(&result.body),
        body_truncated: result.truncated,
        duration_ms: Some(result.duration_ms),
        credential_hint: result.credential_hint,
    }
}
