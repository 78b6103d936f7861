//! `POST /sdk/spans`: the caller's own trace spans (the client's `spans.emit`).

use alter_proto::spans::{EmitSpansRequest, EmitSpansResponse};
use axum::extract::State;

use crate::auth::{Authed, need};
use crate::error::ApiResult;
use crate::json::Json;
use crate::state::AppState;

/// Stores a batch; a paused agent may still report (telemetry). Answers how many were new.
pub async fn emit(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::Telemetry>,
    Json(body): Json<EmitSpansRequest>,
) -> ApiResult<axum::Json<EmitSpansResponse>> {
    let accepted = state.vault.emit_spans(&caller, body.spans).await?;
    Ok(axum::Json(EmitSpansResponse { accepted }))
}
