//! `/admin/v1/apps/{app}/audit`: query the tamper-evident audit log, sign checkpoints of its
//! head and verify its chain (against a checkpoint, if one is given).

use alter_core::audit::{Checkpoint, Decision, EventFilter, StoredEvent};
use alter_core::ids::AppId;
use alter_core::time::Timestamp;
use alter_proto::admin::{
    AuditCheckpointView, AuditEventView, AuditPage, AuditQuery, ChainProblemView, ChainReportView,
    VerifyAuditRequest,
};
use alter_proto::spans::{SpanView, TraceView};
use axum::extract::{Path, State};

use super::admin::app_id;
use crate::auth::Operator;
use crate::error::{ApiError, ApiResult};
use crate::json::{Json, Query};
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
    Query(query): Query<AuditQuery>,
) -> ApiResult<axum::Json<AuditPage>> {
    let time = |field: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(|t| {
                Timestamp::parse_rfc3339(t).ok_or_else(|| {
                    ApiError::invalid(format!("{field} must be an RFC 3339 date-time"))
                })
            })
            .transpose()
    };
    let filter = EventFilter {
        grant_id: query.grant.clone(),
        agent_id: query.agent.clone(),
        app_user_id: query.user.clone(),
        action: query.action.clone(),
        decision: query
            .decision
            .as_deref()
            .map(|text| {
                Decision::parse(text).ok_or_else(|| {
                    ApiError::invalid(format!("decision {text:?}: use allow or deny"))
                })
            })
            .transpose()?,
        since: time("since", &query.since)?,
        until: time("until", &query.until)?,
        trace_id: query.trace.clone(),
    };
    let after = match query.cursor.as_deref() {
        None => 0,
        Some(c) => c
            .parse::<i64>()
            .map_err(|_| ApiError::invalid("cursor is not one this server handed out"))?,
    };
    let limit = query.limit.unwrap_or(100);
    let events = state
        .vault
        .audit_events(app_id(&app)?, filter, after, limit)
        .await?;
    let next_cursor = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.seq.to_string()))
        .flatten();
    let items = events.into_iter().map(event_view).collect();
    Ok(axum::Json(AuditPage { items, next_cursor }))
}

fn event_view(e: StoredEvent) -> AuditEventView {
    AuditEventView {
        seq: e.seq,
        hash: hex::encode(e.hash),
        event: serde_json::to_value(&e.event).unwrap_or_default(),
    }
}

/// `GET /admin/v1/apps/{app}/traces/{trace_id}`: the audit events of calls that carried the
/// trace, beside the spans the caller reported for it.
pub async fn trace(
    State(state): State<AppState>,
    _: Operator,
    Path((app, trace_id)): Path<(String, String)>,
) -> ApiResult<axum::Json<TraceView>> {
    let trace = state.vault.trace(app_id(&app)?, &trace_id).await?;
    Ok(axum::Json(TraceView {
        trace_id,
        events: trace.events.into_iter().map(event_view).collect(),
        spans: trace
            .spans
            .into_iter()
            .map(|s| SpanView {
                trace_id: s.trace_id,
                span_id: s.span_id,
                parent_span_id: s.parent_span_id,
                name: s.name,
                start_time: s.start_time.to_rfc3339(),
                end_time: s.end_time.map(Timestamp::to_rfc3339),
                attributes: s.attributes,
                key_id: s.key_id.to_string(),
                agent_id: s.agent_id.map(|a| a.to_string()),
            })
            .collect(),
    }))
}

pub async fn checkpoint(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
) -> ApiResult<axum::Json<AuditCheckpointView>> {
    let checkpoint = state.vault.audit_checkpoint(app_id(&app)?).await?;
    Ok(axum::Json(checkpoint_view(&checkpoint)))
}

pub async fn verify(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
    Json(request): Json<VerifyAuditRequest>,
) -> ApiResult<axum::Json<ChainReportView>> {
    let checkpoint = request
        .checkpoint
        .as_ref()
        .map(parse_checkpoint)
        .transpose()?;
    let report = state
        .vault
        .verify_audit_chain(app_id(&app)?, checkpoint.as_ref())
        .await?;
    Ok(axum::Json(ChainReportView {
        ok: report.first_problem.is_none(),
        events: report.events,
        first_problem: report.first_problem.map(|p| ChainProblemView {
            seq: p.seq,
            event_id: p.event_id,
            problem: p.problem,
        }),
        checkpoint_seq: report.checkpoint_seq,
    }))
}

/// The wire form of a checkpoint (also the line the periodic checkpoint job logs).
pub fn checkpoint_view(checkpoint: &Checkpoint) -> AuditCheckpointView {
    AuditCheckpointView {
        app_id: checkpoint.app_id.to_string(),
        seq: checkpoint.seq,
        hash: hex::encode(checkpoint.hash),
        at: checkpoint.at.to_rfc3339(),
        tag: hex::encode(checkpoint.tag),
    }
}

/// A checkpoint as sent; a malformed one is refused before anything is read. Its signature
/// is checked by the vault, which reports a bad one as the verification's problem.
fn parse_checkpoint(view: &AuditCheckpointView) -> ApiResult<Checkpoint> {
    let invalid = |field: &str| ApiError::invalid(format!("checkpoint.{field} is malformed"));
    let bytes32 = |field: &str, text: &str| -> ApiResult<[u8; 32]> {
        hex::decode(text)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| invalid(field))
    };
    Ok(Checkpoint {
        app_id: AppId::parse(&view.app_id).ok_or_else(|| invalid("app_id"))?,
        seq: Some(view.seq)
            .filter(|seq| *seq >= 0)
            .ok_or_else(|| invalid("seq"))?,
        hash: bytes32("hash", &view.hash)?,
        at: Timestamp::parse_rfc3339(&view.at).ok_or_else(|| invalid("at"))?,
        tag: bytes32("tag", &view.tag)?,
    })
}
