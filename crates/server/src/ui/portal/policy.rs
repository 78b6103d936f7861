//! Policies (rules: list, add, remove, and the what-if replay of a draft) and the approvals
//! queue (approve or deny a held call, with a reason). The form fields become the same
//! domain values as the admin API's bodies, through the same conversions
//! (`routes::policies::new_rule`).

use alter_core::Error;
use alter_core::approvals::ApprovalStatus;
use alter_core::policies::DraftRule;
use alter_proto::policies::{RuleInfo, RuleTargetBody, WhatIfView};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use super::apps::{AppHeader, app_header, app_view};
use super::{
    Done, Form, Op, Place, PortalUi, Session, actor, app_base, app_id, done, failure, portal_page,
};
use crate::routes::policies::{info, instant, new_rule, report_view, rule_id};
use crate::state::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/portal/apps/{app}/policies", get(rules).post(add_rule))
        .route(
            "/portal/apps/{app}/policies/{rule}/remove",
            post(remove_rule),
        )
        .route("/portal/apps/{app}/policies/what-if", post(what_if))
        .route("/portal/apps/{app}/approvals", get(approvals))
        .route(
            "/portal/apps/{app}/approvals/{approval}/decide",
            post(decide),
        )
}

// ---- rules -----------------------------------------------------------------------------

/// The rule a form describes: `kind`, `target_type` (app, provider, agent, grant),
/// `target_id`, `effect` (empty: the kind's default), `mode` (enforce, shadow), `body` (JSON;
/// empty: `{}`), `description`.
fn rule_from_form(form: &Form<PortalUi>) -> Result<alter_core::policies::NewRule, Error> {
    let fields = &form.fields;
    let body = match fields.text("body") {
        None => serde_json::json!({}),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Error::Invalid(format!("the rule's body is not JSON: {e}")))?,
    };
    new_rule(
        RuleTargetBody {
            kind: fields.text("target_type").unwrap_or("app").to_owned(),
            id: fields.text("target_id").map(str::to_owned),
        },
        fields.text("kind").unwrap_or_default().to_owned(),
        fields.text("effect").map(str::to_owned),
        fields.text("mode").map(str::to_owned),
        body,
        fields.text("description").map(str::to_owned),
    )
}

/// A rule as the page lists it: its wire view and its body as JSON text.
#[derive(Serialize)]
struct RuleRow {
    #[serde(flatten)]
    info: RuleInfo,
    body_text: String,
}

#[derive(Serialize)]
struct RulesPage {
    app: AppHeader,
    rules: Vec<RuleRow>,
    what_if: Option<WhatIfView>,
    what_if_since: Option<String>,
}

async fn rules_page(
    state: &AppState,
    op: &Op,
    app: alter_core::ids::AppId,
    header: AppHeader,
    notice: Option<&'static str>,
    what_if: Option<(WhatIfView, String)>,
) -> Response {
    let rules = match state.vault.list_rules(app).await {
        Ok(rules) => rules,
        Err(e) => return failure(state, e),
    };
    let (what_if, what_if_since) = match what_if {
        Some((view, since)) => (Some(view), Some(since)),
        None => (None, None),
    };
    portal_page(
        state,
        op,
        Place::App(app, "/policies"),
        "portal/policies.html",
        "Policies",
        notice,
        RulesPage {
            app: header,
            rules: rules
                .iter()
                .map(|rule| RuleRow {
                    info: info(rule),
                    body_text: rule.body.to_string(),
                })
                .collect(),
            what_if,
            what_if_since,
        },
    )
    .into_response()
}

/// `GET /portal/apps/{app}/policies`.
async fn rules(
    State(state): State<AppState>,
    session: Session<PortalUi>,
    Path(app): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let (op, app, header) = match app_view(&state, &session, &app).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    rules_page(&state, &op, app, header, done.notice(), None).await
}

/// `POST /portal/apps/{app}/policies`: adds a rule.
async fn add_rule(
    State(state): State<AppState>,
    Path(app): Path<String>,
    form: Form<PortalUi>,
) -> Response {
    let op = match actor(&state, &form).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let app = match app_id(&state, &app) {
        Ok(app) => app,
        Err(r) => return r,
    };
    let new = match rule_from_form(&form) {
        Ok(new) => new,
        Err(e) => return failure(&state, e),
    };
    match op.act(state.vault.add_rule(app, new)).await {
        Ok(_) => done(format!("{}/policies", app_base(&state, app)), "rule_added"),
        Err(e) => failure(&state, e),
    }
}

/// `POST /portal/apps/{app}/policies/{rule}/remove`.
async fn remove_rule(
    State(state): State<AppState>,
    Path((app, rule)): Path<(String, String)>,
    form: Form<PortalUi>,
) -> Response {
    let op = match actor(&state, &form).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let app = match app_id(&state, &app) {
        Ok(app) => app,
        Err(r) => return r,
    };
    let rule = match rule_id(&rule) {
        Ok(rule) => rule,
        Err(e) => return failure(&state, e),
    };
    match op.act(state.vault.remove_rule(app, rule)).await {
        Ok(_) => done(
            format!("{}/policies", app_base(&state, app)),
            "rule_removed",
        ),
        Err(e) => failure(&state, e),
    }
}

/// `POST /portal/apps/{app}/policies/what-if`: what a draft rule (the add form's fields) would
/// have done to the calls since `since` (an age such as `7d`, or a time). Changes nothing; a
/// form only to keep the draft out of URLs and logs.
async fn what_if(
    State(state): State<AppState>,
    Path(app): Path<String>,
    form: Form<PortalUi>,
) -> Response {
    let op = match actor(&state, &form).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let (app, header) = match app_header(&state, &app).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let rule = match rule_from_form(&form) {
        Ok(rule) => rule,
        Err(e) => return failure(&state, e),
    };
    let since_text = form.fields.text("since").unwrap_or("7d").to_owned();
    let since = match instant("since", Some(&since_text), state.vault.now()) {
        Ok(since) => since,
        Err(e) => return failure(&state, e),
    };
    let draft = vec![DraftRule { id: None, rule }];
    match state.vault.what_if(app, draft, since, None, None).await {
        Ok(report) => {
            rules_page(
                &state,
                &op,
                app,
                header,
                None,
                Some((report_view(&report), since_text)),
            )
            .await
        }
        Err(e) => failure(&state, e),
    }
}

// ---- approvals -------------------------------------------------------------------------

#[derive(Debug, Default, serde::Deserialize)]
struct ApprovalsQuery {
    status: Option<String>,
    done: Option<String>,
}

/// `GET /portal/apps/{app}/approvals[?status=]`: pending ones by default.
async fn approvals(
    State(state): State<AppState>,
    session: Session<PortalUi>,
    Path(app): Path<String>,
    Query(query): Query<ApprovalsQuery>,
) -> Response {
    let (op, app, header) = match app_view(&state, &session, &app).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let status = match query.status.as_deref() {
        None => Some(ApprovalStatus::Pending),
        Some("" | "all") => None,
        Some(text) => match ApprovalStatus::parse(text) {
            Some(status) => Some(status),
            None => {
                return failure(
                    &state,
                    Error::Invalid("status must be pending, approved, executing, executed, failed, denied, expired or all".into()),
                );
            }
        },
    };
    let approvals = match state.vault.list_approvals(app, status, 200).await {
        Ok(approvals) => approvals,
        Err(e) => return failure(&state, e),
    };
    #[derive(Serialize)]
    struct Row {
        id: String,
        status: &'static str,
        method: String,
        url: String,
        grant_id: String,
        agent_id: Option<String>,
        reason: String,
        created_at: String,
        expires_at: String,
        decided_by: Option<String>,
        decision_reason: Option<String>,
        action: String,
        /// The exact request, for a pending approval: what the operator approves.
        request: Option<String>,
    }
    #[derive(Serialize)]
    struct Context {
        app: AppHeader,
        approvals: Vec<Row>,
        status: &'static str,
        statuses: Vec<&'static str>,
    }
    let base = app_base(&state, app);
    let mut requests = Vec::with_capacity(approvals.len());
    for approval in &approvals {
        let request = if approval.status == ApprovalStatus::Pending {
            match state.vault.approval_request(app, approval.id).await {
                Ok(held) => Some(request_text(&held)),
                Err(e) => return failure(&state, e),
            }
        } else {
            None
        };
        requests.push(request);
    }
    portal_page(
        &state,
        &op,
        Place::App(app, "/approvals"),
        "portal/approvals.html",
        "Approvals",
        super::notice(query.done.as_deref()),
        Context {
            approvals: approvals
                .iter()
                .zip(requests)
                .map(|(a, request)| Row {
                    id: a.id.to_string(),
                    status: a.status.as_str(),
                    method: a.method.clone(),
                    url: a.url.clone(),
                    grant_id: a.grant_id.to_string(),
                    agent_id: a.agent_id.map(|id| id.to_string()),
                    reason: a.reason.clone(),
                    created_at: a.created_at.to_rfc3339(),
                    expires_at: a.expires_at.to_rfc3339(),
                    decided_by: a.decided_by.clone(),
                    decision_reason: a.decision_reason.clone(),
                    action: format!("{base}/approvals/{}/decide", a.id),
                    request,
                })
                .collect(),
            app: header,
            status: status.map_or("all", ApprovalStatus::as_str),
            statuses: ApprovalStatus::ALL.iter().map(|s| s.as_str()).collect(),
        },
    )
    .into_response()
}

/// `POST /portal/apps/{app}/approvals/{approval}/decide`: `decision` (approve or deny) and an
/// optional `reason`; the operator is recorded as the decider.
async fn decide(
    State(state): State<AppState>,
    Path((app, approval)): Path<(String, String)>,
    form: Form<PortalUi>,
) -> Response {
    let op = match actor(&state, &form).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let app = match app_id(&state, &app) {
        Ok(app) => app,
        Err(r) => return r,
    };
    let approval = match crate::routes::id(&approval) {
        Ok(id) => id,
        Err(e) => return failure(&state, e),
    };
    let approve = match form.fields.get("decision") {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return failure(
                &state,
                Error::Invalid("decision must be approve or deny".into()),
            );
        }
    };
    let reason = form.fields.text("reason").map(str::to_owned);
    match op
        .act(
            state
                .vault
                .decide_approval(app, approval, approve, reason, Some(op.name.clone())),
        )
        .await
    {
        Ok(_) => done(
            format!("{}/approvals", app_base(&state, app)),
            if approve { "approved" } else { "denied" },
        ),
        Err(e) => failure(&state, e),
    }
}

/// A held request as text: the request line, the caller's headers, a blank line, the JSON body
/// (shown escaped by the template), and the digest the decision event records.
fn request_text(held: &alter_core::approvals::HeldRequest) -> String {
    let mut text = format!("{} {}\n", held.method, held.url);
    for (name, value) in &held.headers {
        text.push_str(&format!("{name}: {value}\n"));
    }
    if let Some(body) = &held.body {
        text.push('\n');
        text.push_str(&serde_json::to_string_pretty(body).unwrap_or_default());
        text.push('\n');
    }
    text.push_str(&format!("\n(sha256 {})", held.sha256));
    text
}
