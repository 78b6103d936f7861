//! Approvals of held proxy calls: the 202 a held `/sdk/proxy` call answers, the caller's
//! `GET /sdk/approvals/{id}` (long-poll with `wait`) and `/result`, and the operator's
//! `/admin/v1/apps/{app}/approvals*` where a person decides.

use alter_core::approvals::{Approval, ApprovalStatus, MAX_WAIT_SECONDS};
use alter_core::caller::Caller;
use alter_core::ids::{AppId, ApprovalId, ApprovalKind};
use alter_core::proxy::{HeldCall, ProxyRequest};
use alter_core::time::Timestamp;
use alter_proto::admin::ItemList;
use alter_proto::approvals::{
    ApprovalInfo, ApprovalStatus as StatusBody, DecideApprovalRequest, GateStatus, HeldRequestView,
    PendingApproval, PendingGate,
};
use alter_proto::proxy::ProxyAnswer;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;

use super::id;
use crate::auth::{Authed, Operator, need};
use crate::error::{ApiError, ApiResult};
use crate::json::{Json, Query};
use crate::state::AppState;

/// The operator's approval routes, under `/admin/v1`.
pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/apps/{app}/approvals", get(list))
        .route("/apps/{app}/approvals/{id}", get(show))
        .route("/apps/{app}/approvals/{id}/approve", post(approve))
        .route("/apps/{app}/approvals/{id}/deny", post(deny))
}

/// Parks a call a rule held and answers the client's 202 `PendingApproval`.
pub(crate) async fn hold(
    state: &AppState,
    caller: &Caller,
    request: ProxyRequest,
    held: HeldCall,
) -> ApiResult<(StatusCode, axum::Json<PendingApproval>)> {
    let approval = state.vault.hold_call(caller, request, held).await?;
    let now = state.vault.now();
    let url = approval_url(state, approval.app_id, approval.id);
    let expires_in = now.seconds_until(approval.expires_at).max(0);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(PendingApproval {
            approval_id: approval.id.to_string(),
            approval_group_id: approval.group_id.to_string(),
            status: ApprovalStatus::Pending.as_str().into(),
            expires_at: approval.expires_at.to_rfc3339(),
            expires_in,
            approval_url: url.clone(),
            gates: vec![PendingGate {
                approval_id: approval.id.to_string(),
                expires_at: approval.expires_at.to_rfc3339(),
                expires_in,
                approval_url: url,
            }],
        }),
    ))
}

/// Where the approver decides: the approval's page in the app's Wallet.
fn approval_url(state: &AppState, app: AppId, id: ApprovalId) -> String {
    format!("{}/wallet/{app}/approvals/{id}", state.public_url)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct WaitQuery {
    #[serde(default)]
    wait: Option<String>,
}

/// `GET /sdk/approvals/{id}[?wait=N]`.
pub async fn status(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::ApprovalsRead>,
    Path(approval): Path<String>,
    Query(query): Query<WaitQuery>,
) -> ApiResult<axum::Json<StatusBody>> {
    let approval = id::<ApprovalKind>(&approval)?;
    let wait = match query.wait.as_deref().map(str::trim) {
        None | Some("") => 0,
        // The client floors and clamps negatives to 0 before sending; other clients may not.
        Some(text) => match text.parse::<i64>() {
            Ok(n) => u64::try_from(n).unwrap_or(0),
            Err(_) => return Err(ApiError::invalid("wait must be a whole number of seconds")),
        },
    };
    // A held poll keeps a request slot: within the app's share of held polls, else at once
    // (the protocol lets a server answer at once; the client then polls at its interval).
    let held = (wait > 0)
        .then(|| crate::shares::HELD_POLLS.take(caller.app_id))
        .flatten();
    let wait = if wait > 0 && held.is_none() && wait <= MAX_WAIT_SECONDS {
        0
    } else {
        wait
    };
    let approval = state.vault.approval_status(&caller, approval, wait).await?;
    drop(held);
    Ok(axum::Json(status_body(&approval)))
}

/// `GET /sdk/approvals/{id}/result`.
pub async fn result(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::ApprovalsRead>,
    Path(approval): Path<String>,
) -> ApiResult<axum::Json<ProxyAnswer>> {
    let approval = id::<ApprovalKind>(&approval)?;
    let result = state.vault.approval_result(&caller, approval).await?;
    Ok(axum::Json(super::proxy::answer(result, Some(approval))))
}

fn time(t: Option<Timestamp>) -> Option<String> {
    t.map(Timestamp::to_rfc3339)
}

fn status_body(approval: &Approval) -> StatusBody {
    // The gate's own state: the decision, not what became of the execution.
    let gate = match approval.status {
        ApprovalStatus::Pending | ApprovalStatus::Denied | ApprovalStatus::Expired => {
            approval.status
        }
        _ => ApprovalStatus::Approved,
    };
    StatusBody {
        approval_id: approval.id.to_string(),
        status: approval.status.as_str().into(),
        approval_group_id: approval.group_id.to_string(),
        gates: vec![GateStatus {
            approval_id: approval.id.to_string(),
            status: gate.as_str().into(),
            expires_at: approval.expires_at.to_rfc3339(),
            decided_at: time(approval.decided_at),
        }],
        expires_at: approval.expires_at.to_rfc3339(),
        decided_at: time(approval.decided_at),
        executed_at: time(approval.executed_at),
        decision_reason: approval.decision_reason.clone(),
        execution_error: approval.execution_error.clone(),
        has_result: approval.has_result(),
    }
}

fn info(approval: &Approval) -> ApprovalInfo {
    ApprovalInfo {
        id: approval.id.to_string(),
        group_id: approval.group_id.to_string(),
        status: approval.status.as_str().into(),
        grant_id: approval.grant_id.to_string(),
        key_id: approval.key_id.to_string(),
        agent_id: approval.agent_id.map(|a| a.to_string()),
        method: approval.method.clone(),
        url: approval.url.clone(),
        reason: approval.reason.clone(),
        holds: serde_json::to_value(&approval.holds).unwrap_or_default(),
        approvers: approval.approvers(),
        created_at: approval.created_at.to_rfc3339(),
        expires_at: approval.expires_at.to_rfc3339(),
        decided_at: time(approval.decided_at),
        decided_by: approval.decided_by.clone(),
        decision_reason: approval.decision_reason.clone(),
        executed_at: time(approval.executed_at),
        execution_error: approval.execution_error.clone(),
        has_result: approval.has_result(),
        request: None,
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /admin/v1/apps/{app}/approvals[?status=]`.
async fn list(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<axum::Json<ItemList<ApprovalInfo>>> {
    let app = id(&app)?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(text) => Some(ApprovalStatus::parse(text).ok_or_else(|| {
            ApiError::invalid(
                "status must be one of pending, approved, executing, executed, failed, denied, expired",
            )
        })?),
    };
    let approvals = state
        .vault
        .list_approvals(app, status, query.limit.unwrap_or(100))
        .await?;
    Ok(axum::Json(ItemList {
        items: approvals.iter().map(info).collect(),
    }))
}

/// `GET /admin/v1/apps/{app}/approvals/{id}`.
async fn show(
    State(state): State<AppState>,
    _: Operator,
    Path((app, approval)): Path<(String, String)>,
) -> ApiResult<axum::Json<ApprovalInfo>> {
    let (app, approval) = (id(&app)?, id(&approval)?);
    let held = state.vault.approval_request(app, approval).await?;
    let approval = state.vault.get_approval(app, approval).await?;
    Ok(axum::Json(ApprovalInfo {
        request: Some(HeldRequestView {
            method: held.method,
            url: held.url,
            headers: held.headers,
            body: held.body,
            sha256: held.sha256,
        }),
        ..info(&approval)
    }))
}

/// `POST /admin/v1/apps/{app}/approvals/{id}/approve`: the call is then made, once.
async fn approve(
    state: State<AppState>,
    operator: Operator,
    path: Path<(String, String)>,
    body: Json<DecideApprovalRequest>,
) -> ApiResult<axum::Json<ApprovalInfo>> {
    decide(state, operator, path, body, true).await
}

/// `POST /admin/v1/apps/{app}/approvals/{id}/deny`.
async fn deny(
    state: State<AppState>,
    operator: Operator,
    path: Path<(String, String)>,
    body: Json<DecideApprovalRequest>,
) -> ApiResult<axum::Json<ApprovalInfo>> {
    decide(state, operator, path, body, false).await
}

async fn decide(
    State(state): State<AppState>,
    _: Operator,
    Path((app, approval)): Path<(String, String)>,
    Json(body): Json<DecideApprovalRequest>,
    approve: bool,
) -> ApiResult<axum::Json<ApprovalInfo>> {
    let approval = state
        .vault
        .decide_approval(
            id(&app)?,
            id(&approval)?,
            approve,
            body.reason,
            body.decided_by,
        )
        .await?;
    Ok(axum::Json(info(&approval)))
}
