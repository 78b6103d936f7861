//! The dashboard (the last 24 hours of releases, denials and holds across apps, as an SVG chart
//! and a table; recent operator sign-ins and account changes) and each app's audit log: filters,
//! the chain's verification status, and CSV / JSON Lines export.

use alter_core::Error;
use alter_core::audit::{Decision, EventFilter, StoredEvent};
use alter_core::time::Timestamp;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::super::session::same_origin;
use super::super::{csv, message};
use super::chart::{SERIES, activity_svg, hour_label};
use super::{
    AppSection, Done, Place, PortalUi, Session, app_base, app_page, app_view, failure, portal_page,
    viewer,
};
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/portal", get(dashboard))
        .route("/portal/apps/{app}/audit", get(audit_log))
        .route("/portal/apps/{app}/audit/export", get(export))
}

// ---- dashboard -------------------------------------------------------------------------

/// `GET /portal`.
async fn dashboard(
    State(state): State<AppState>,
    session: Session<PortalUi>,
    Query(done): Query<Done>,
) -> Response {
    let op = match viewer(&state, &session).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let (hours, apps, events) = match tokio::try_join!(
        state.vault.dashboard_activity(),
        state.vault.list_apps(),
        state.vault.operator_events(20),
    ) {
        Ok(found) => found,
        Err(e) => return failure(&state, e),
    };
    #[derive(Serialize)]
    struct HourRow {
        label: String,
        releases: i64,
        denials: i64,
        holds: i64,
    }
    #[derive(Serialize)]
    struct EventRow {
        at: String,
        action: String,
        decision: &'static str,
        operator: String,
        reason: Option<String>,
        peer: Option<String>,
    }
    #[derive(Serialize)]
    struct Legend {
        name: &'static str,
        colour: &'static str,
    }
    #[derive(Serialize)]
    struct Context {
        chart: minijinja::Value,
        legend: Vec<Legend>,
        hours: Vec<HourRow>,
        totals: [i64; 3],
        app_count: usize,
        apps_href: String,
        events: Vec<EventRow>,
    }
    let totals = hours.iter().fold([0; 3], |t, h| {
        [t[0] + h.releases, t[1] + h.denials, t[2] + h.holds]
    });
    portal_page(
        &state,
        &op,
        Place::Portal(""),
        "portal/dashboard.html",
        "Dashboard",
        done.notice(),
        Context {
            // Our own markup from numbers: trusted, so not escaped.
            chart: minijinja::Value::from_safe_string(activity_svg(&hours, "activity")),
            legend: SERIES
                .iter()
                .map(|(name, colour)| Legend { name, colour })
                .collect(),
            hours: hours
                .iter()
                .map(|h| HourRow {
                    label: hour_label(h),
                    releases: h.releases,
                    denials: h.denials,
                    holds: h.holds,
                })
                .collect(),
            totals,
            app_count: apps.len(),
            apps_href: format!("{}/apps", super::base(&state)),
            events: events
                .into_iter()
                .map(|e| EventRow {
                    at: e.at.to_rfc3339(),
                    action: e.action,
                    decision: e.decision.as_str(),
                    operator: e.operator,
                    reason: e.reason,
                    peer: e.peer,
                })
                .collect(),
        },
    )
    .into_response()
}

// ---- the audit log ---------------------------------------------------------------------

/// The filters of the log page and of its export (empty fields filter nothing).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
struct LogQuery {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    decision: Option<String>,
    #[serde(default)]
    grant: Option<String>,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    user: Option<String>,
    /// RFC 3339, or a date `YYYY-MM-DD` (UTC midnight).
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    /// A W3C trace id: the records of calls that carried it.
    #[serde(default)]
    trace: Option<String>,
    /// The page cursor (the last sequence number seen).
    #[serde(default)]
    after: Option<i64>,
    /// `csv` or `jsonl` (export only).
    #[serde(default)]
    format: Option<String>,
}

fn nonblank(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A time filter: RFC 3339, or a bare date (UTC midnight, what a date input sends).
fn time_filter(field: &str, value: &Option<String>) -> Result<Option<Timestamp>, Error> {
    let Some(text) = nonblank(value) else {
        return Ok(None);
    };
    Timestamp::parse_rfc3339(&text)
        .or_else(|| Timestamp::parse_rfc3339(&format!("{text}T00:00:00Z")))
        .map(Some)
        .ok_or_else(|| Error::Invalid(format!("{field} must be a date or an RFC 3339 time")))
}

impl LogQuery {
    fn filter(&self) -> Result<EventFilter, Error> {
        Ok(EventFilter {
            grant_id: nonblank(&self.grant),
            agent_id: nonblank(&self.agent),
            app_user_id: nonblank(&self.user),
            action: nonblank(&self.action),
            decision: match nonblank(&self.decision) {
                None => None,
                Some(text) => Some(
                    Decision::parse(&text)
                        .ok_or_else(|| Error::Invalid("decision must be allow or deny".into()))?,
                ),
            },
            since: time_filter("since", &self.since)?,
            until: time_filter("until", &self.until)?,
            trace_id: nonblank(&self.trace),
        })
    }

    /// The query string of these filters (no cursor, no format).
    fn filters_query(&self) -> String {
        let pairs = [
            ("action", &self.action),
            ("decision", &self.decision),
            ("grant", &self.grant),
            ("agent", &self.agent),
            ("user", &self.user),
            ("since", &self.since),
            ("until", &self.until),
            ("trace", &self.trace),
        ];
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in pairs {
            if let Some(value) = nonblank(value) {
                out.append_pair(name, &value);
            }
        }
        out.finish()
    }
}

/// One event as the log page shows it.
#[derive(Serialize)]
struct EventRow {
    seq: i64,
    at: String,
    action: String,
    decision: &'static str,
    reason: Option<String>,
    actor: String,
    target: String,
    request: Option<String>,
}

fn actor_text(event: &alter_core::audit::AuditEvent) -> String {
    let actor = &event.actor;
    let kind = serde_json::to_value(&actor.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let who = actor
        .operator
        .clone()
        .or_else(|| actor.key_prefix.clone())
        .or_else(|| actor.app_user_id.clone());
    match who {
        Some(who) => format!("{kind} {who}"),
        None => kind,
    }
}

fn event_row(stored: &StoredEvent) -> EventRow {
    let e = &stored.event;
    EventRow {
        seq: stored.seq,
        at: e.at.to_rfc3339(),
        action: e.action.clone(),
        decision: e.decision.as_str(),
        reason: e.reason.clone(),
        actor: actor_text(e),
        target: e
            .target
            .as_ref()
            .filter(|t| !t.kind.is_empty())
            .map(|t| format!("{} {}", t.kind, t.id))
            .unwrap_or_default(),
        request: e
            .request
            .as_ref()
            .map(|r| format!("{} {}", r.method, r.url)),
    }
}

/// Events per log page.
const PAGE: i64 = 100;

const AUDIT: AppSection = AppSection {
    path: "/audit",
    template: "portal/audit.html",
    title: "Audit log",
};

#[derive(Serialize)]
struct Chain {
    ok: bool,
    events: i64,
    problem: Option<String>,
    /// The checkpoint the chain was verified against: only then can the page say that
    /// nothing was cut from the end.
    checkpoint: Option<i64>,
}

#[derive(Serialize)]
struct LogPage {
    events: Vec<EventRow>,
    filters: LogQuery,
    chain: Option<Chain>,
    next: Option<String>,
    export_csv: String,
    export_jsonl: String,
    action: String,
}

/// `GET /portal/apps/{app}/audit`: the filtered log, a page at a time, and the chain status.
async fn audit_log(
    State(state): State<AppState>,
    session: Session<PortalUi>,
    Path(app): Path<String>,
    Query(query): Query<LogQuery>,
) -> Response {
    app_page(
        &state,
        &session,
        &app,
        &AUDIT,
        None,
        |state, app| async move {
            let filter = query.filter()?;
            let after = query.after.unwrap_or(0);
            let events = state.vault.audit_events(app, filter, after, PAGE).await?;
            // The walk reads the whole chain: the first page shows it, later pages do not repeat it.
            let report = if query.after.is_none() {
                Some(state.vault.verify_audit_chain(app, None).await?)
            } else {
                None
            };
            let base = format!("{}/audit", app_base(state, app));
            let filters = query.filters_query();
            let joiner = if filters.is_empty() { "" } else { "&" };
            let next = (events.len() as i64 == PAGE)
                .then(|| events.last().map(|e| e.seq))
                .flatten()
                .map(|seq| format!("{base}?{filters}{joiner}after={seq}"));
            Ok(LogPage {
                events: events.iter().map(event_row).collect(),
                chain: report.map(|report| Chain {
                    ok: report.first_problem.is_none(),
                    events: report.events,
                    problem: report
                        .first_problem
                        .map(|p| format!("event {}: {}", p.seq, p.problem)),
                    checkpoint: report.checkpoint_seq,
                }),
                next,
                export_csv: format!("{base}/export?{filters}{joiner}format=csv"),
                export_jsonl: format!("{base}/export?{filters}{joiner}format=jsonl"),
                action: base,
                filters: query,
            })
        },
    )
    .await
}

/// The most events one export holds.
const EXPORT_MAX: usize = 100_000;
/// Events read per page while exporting.
const EXPORT_PAGE: i64 = 1000;

/// Exports running at once on a node: each reads up to [`EXPORT_MAX`] events into memory.
static EXPORTS: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(1));

/// `GET /portal/apps/{app}/audit/export?format=csv|jsonl&…filters`: every matching event
/// (up to [`EXPORT_MAX`]), as a download. JSON Lines holds each event whole, with its sequence
/// number and chain hash; CSV holds the columns of the log page.
///
/// It is the portal's most expensive page, so only a portal page may ask for it (a link
/// followed from this site, not another site's image or link), and one runs at a time: another
/// is answered 429 at once.
async fn export(
    State(state): State<AppState>,
    session: Session<PortalUi>,
    Path(app): Path<String>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> Response {
    if !same_origin(&headers, &state) {
        return message(
            &state,
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Exports are downloaded from the audit log page of this site.",
        )
        .into_response();
    }
    let app = match app_view(&state, &session, &app).await {
        Ok(scope) => scope.app,
        Err(r) => return r,
    };
    let Ok(_export) = EXPORTS.try_acquire() else {
        return message(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            "Busy",
            "Another export is running. Try again when it is done.",
        )
        .into_response();
    };
    let csv = match query.format.as_deref() {
        Some("csv") => true,
        Some("jsonl") => false,
        _ => return failure(&state, Error::Invalid("format must be csv or jsonl".into())),
    };
    let filter = match query.filter() {
        Ok(filter) => filter,
        Err(e) => return failure(&state, e),
    };
    let mut out = String::new();
    if csv {
        out.push_str("seq,at,action,decision,reason,actor,target,request,hash\n");
    }
    let (mut after, mut count) = (0, 0);
    loop {
        let page = match state
            .vault
            .audit_events(app, filter.clone(), after, EXPORT_PAGE)
            .await
        {
            Ok(page) => page,
            Err(e) => return failure(&state, e),
        };
        for stored in &page {
            if csv {
                let row = event_row(stored);
                let cells = [
                    row.seq.to_string(),
                    row.at,
                    row.action,
                    row.decision.to_owned(),
                    row.reason.unwrap_or_default(),
                    row.actor,
                    row.target,
                    row.request.unwrap_or_default(),
                    hex::encode(stored.hash),
                ];
                let line: Vec<String> = cells.iter().map(|c| csv::cell(c)).collect();
                out.push_str(&line.join(","));
                out.push('\n');
            } else {
                let line = serde_json::json!({
                    "seq": stored.seq,
                    "hash": hex::encode(stored.hash),
                    "event": stored.event,
                });
                out.push_str(&line.to_string());
                out.push('\n');
            }
        }
        count += page.len();
        match page.last() {
            Some(last) if page.len() as i64 == EXPORT_PAGE && count < EXPORT_MAX => {
                after = last.seq;
            }
            _ => break,
        }
    }
    let (content_type, extension) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/x-ndjson", "jsonl")
    };
    let mut response = (StatusCode::OK, out).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) =
        HeaderValue::from_str(&format!("attachment; filename=\"audit-{app}.{extension}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    super::super::asset_headers(headers);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_filters_take_dates_and_times() {
        assert_eq!(time_filter("since", &None).unwrap(), None);
        assert_eq!(time_filter("since", &Some(" ".into())).unwrap(), None);
        assert_eq!(
            time_filter("since", &Some("1970-01-02".into())).unwrap(),
            Some(Timestamp::from_unix_seconds(86_400))
        );
        assert!(time_filter("since", &Some("yesterday".into())).is_err());
    }
}
