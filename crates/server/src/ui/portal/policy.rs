//! Policies (rules: list, add, remove, and the what-if replay of a draft) and the approvals
//! queue (approve or deny a held call, with a reason). The form fields become the same
//! domain values as the admin API's bodies, through the same conversions
//! (`routes::policies::new_rule`).

use alter_core::Error;
use alter_core::approvals::ApprovalStatus;
use alter_core::ids::AppId;
use alter_core::policies::DraftRule;
use alter_proto::policies::{RuleInfo, RuleTargetBody, WhatIfView};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Serialize;

use super::super::session::Fields;
use super::{
    AppSection, Done, Form, PortalUi, Session, app_base, app_change, app_form, app_page, failure,
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
fn rule_from_form(fields: &Fields) -> Result<alter_core::policies::NewRule, Error> {
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
    rules: Vec<RuleRow>,
    what_if: Option<WhatIfView>,
    what_if_since: Option<String>,
}

const POLICIES: AppSection = AppSection {
    path: "/policies",
    template: "portal/policies.html",
    title: "Policies",
};

/// The rules page's values, with a what-if report when one was asked for.
async fn rules_page(
    state: &AppState,
    app: AppId,
    what_if: Option<(WhatIfView, String)>,
) -> Result<RulesPage, Error> {
    let rules = state.vault.list_rules(app).await?;
    let (what_if, what_if_since) = match what_if {
        Some((view, since)) => (Some(view), Some(since)),
        None => (None, None),
    };
    Ok(RulesPage {
        rules: rules
            .iter()
            .map(|rule| RuleRow {
                info: info(rule),
                body_text: rule.body.to_string(),
            })
            .collect(),
        what_if,
        what_if_since,
    })
}

/// `GET /portal/apps/{app}/policies`.
async fn rules(
    State(state): State<AppState>,
    session: Session<PortalUi>,
    Path(app): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    app_page(
        &state,
        &session,
        &app,
        &POLICIES,
        done.notice(),
        |state, app| rules_page(state, app, None),
    )
    .await
}

/// `POST /portal/apps/{app}/policies`: adds a rule.
async fn add_rule(
    State(state): State<AppState>,
    Path(app): Path<String>,
    form: Form<PortalUi>,
) -> Response {
    app_change(
        &state,
        &form,
        &app,
        POLICIES.path,
        "rule_added",
        |c| async move {
            c.state
                .vault
                .add_rule(c.app, rule_from_form(c.fields)?)
                .await
        },
    )
    .await
}

/// `POST /portal/apps/{app}/policies/{rule}/remove`.
async fn remove_rule(
    State(state): State<AppState>,
    Path((app, rule)): Path<(String, String)>,
    form: Form<PortalUi>,
) -> Response {
    app_change(
        &state,
        &form,
        &app,
        POLICIES.path,
        "rule_removed",
        |c| async move { c.state.vault.remove_rule(c.app, rule_id(&rule)?).await },
    )
    .await
}

/// `POST /portal/apps/{app}/policies/what-if`: what a draft rule (the add form's fields) would
/// have done to the calls since `since` (an age such as `7d`, or a time). Changes nothing; a
/// form only to keep the draft out of URLs and logs.
async fn what_if(
    State(state): State<AppState>,
    Path(app): Path<String>,
    form: Form<PortalUi>,
) -> Response {
    let scope = match app_form(&state, &form, &app).await {
        Ok(scope) => scope,
        Err(r) => return r,
    };
    let since_text = form.fields.text("since").unwrap_or("7d").to_owned();
    let replayed = async {
        let rule = rule_from_form(&form.fields)?;
        let since = instant("since", Some(&since_text), state.vault.now())?;
        let draft = vec![DraftRule { id: None, rule }];
        let report = state
            .vault
            .what_if(scope.app, draft, since, None, None)
            .await?;
        rules_page(
            &state,
            scope.app,
            Some((report_view(&report), since_text.clone())),
        )
        .await
    };
    match replayed.await {
        Ok(page) => scope.render(&state, &POLICIES, None, page),
        Err(e) => failure(&state, e),
    }
}

// ---- approvals -------------------------------------------------------------------------

#[derive(Debug, Default, serde::Deserialize)]
struct ApprovalsQuery {
    status: Option<String>,
    done: Option<String>,
}

const APPROVALS: AppSection = AppSection {
    path: "/approvals",
    template: "portal/approvals.html",
    title: "Approvals",
};

#[derive(Serialize)]
struct ApprovalRow {
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
struct ApprovalsPage {
    approvals: Vec<ApprovalRow>,
    status: &'static str,
    statuses: Vec<&'static str>,
}

/// `GET /portal/apps/{app}/approvals[?status=]`: pending ones by default.
async fn approvals(
    State(state): State<AppState>,
    session: Session<PortalUi>,
    Path(app): Path<String>,
    Query(query): Query<ApprovalsQuery>,
) -> Response {
    let notice = super::notice(query.done.as_deref());
    app_page(&state, &session, &app, &APPROVALS, notice, |state, app| async move {
        let status = match query.status.as_deref() {
            None => Some(ApprovalStatus::Pending),
            Some("" | "all") => None,
            Some(text) => Some(ApprovalStatus::parse(text).ok_or_else(|| {
                Error::Invalid("status must be pending, approved, executing, executed, failed, denied, expired or all".into())
            })?),
        };
        let approvals = state.vault.list_approvals(app, status, 200).await?;
        let base = app_base(state, app);
        let mut rows = Vec::with_capacity(approvals.len());
        for a in &approvals {
            let request = if a.status == ApprovalStatus::Pending {
                Some(request_text(&state.vault.approval_request(app, a.id).await?))
            } else {
                None
            };
            rows.push(ApprovalRow {
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
            });
        }
        Ok(ApprovalsPage {
            approvals: rows,
            status: status.map_or("all", ApprovalStatus::as_str),
            statuses: ApprovalStatus::ALL.iter().map(|s| s.as_str()).collect(),
        })
    })
    .await
}

/// `POST /portal/apps/{app}/approvals/{approval}/decide`: `decision` (approve or deny) and an
/// optional `reason`; the operator is recorded as the decider.
async fn decide(
    State(state): State<AppState>,
    Path((app, approval)): Path<(String, String)>,
    form: Form<PortalUi>,
) -> Response {
    let decision = form.fields.get("decision");
    let notice = if decision == Some("approve") {
        "approved"
    } else {
        "denied"
    };
    app_change(
        &state,
        &form,
        &app,
        APPROVALS.path,
        notice,
        |c| async move {
            let approval = crate::routes::id(&approval)?;
            let approve = match decision {
                Some("approve") => true,
                Some("deny") => false,
                _ => return Err(Error::Invalid("decision must be approve or deny".into())),
            };
            let reason = c.fields.text("reason").map(str::to_owned);
            c.state
                .vault
                .decide_approval(c.app, approval, approve, reason, Some(c.operator))
                .await
        },
    )
    .await
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
