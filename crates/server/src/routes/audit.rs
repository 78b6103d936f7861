//! `/admin/v1/apps/{app}/audit`: query the tamper-evident audit log and verify its chain.

use alter_core::audit::{Decision, EventFilter};
use alter_core::time::Timestamp;
use alter_proto::admin::{
    AuditEventView, AuditPage, AuditQuery, ChainProblemView, ChainReportView,
};
use axum::extract::{Path, State};

use super::admin::app_id;
use crate::auth::Operator;
use crate::error::{ApiError, ApiResult};
use crate::json::Query;
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
    let items = events
        .into_iter()
        .map(|e| AuditEventView {
            seq: e.seq,
            hash: hex::encode(e.hash),
            event: serde_json::to_value(&e.event).unwrap_or_default(),
        })
        .collect();
    Ok(axum::Json(AuditPage { items, next_cursor }))
}

pub async fn verify(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
) -> ApiResult<axum::Json<ChainReportView>> {
    let report = state.vault.verify_audit_chain(app_id(&app)?).await?;
    Ok(axum::Json(ChainReportView {
        ok: report.first_problem.is_none(),
        events: report.events,
        first_problem: report.first_problem.map(|p| ChainProblemView {
            seq: p.seq,
            event_id: p.event_id,
            problem: p.problem,
        }),
    }))
}
