//! Policy rules: `/admin/v1/apps/{app}/policies/rules[/{rule}]` (an app's rules) and `POST
//! /admin/v1/apps/{app}/policies/what-if` (a draft rule set replayed over past decisions).

use alter_core::ids::{Id, RuleId};
use alter_core::policies::{DraftRule, NewRule, RuleChange};
use alter_core::rules::{Effect, Rule, RuleMode, RuleTarget, WhatIfReport};
use alter_core::time::Timestamp;
use alter_core::{Entity, Error};
use alter_proto::admin::ItemList;
use alter_proto::policies::{
    CreateRuleRequest, RuleInfo, RuleTargetBody, UpdateRuleRequest, WhatIfRequest, WhatIfRuleView,
    WhatIfView,
};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

use super::admin::app_id;
use crate::auth::Operator;
use crate::error::ApiResult;
use crate::json::Json;
use crate::state::AppState;

/// The routes, relative to `/admin/v1`.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{app}/policies/rules", post(create).get(list))
        .route(
            "/apps/{app}/policies/rules/{rule}",
            get(show).patch(update).delete(remove),
        )
        .route("/apps/{app}/policies/what-if", post(what_if))
}

async fn create(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
    Json(body): Json<CreateRuleRequest>,
) -> ApiResult<(StatusCode, axum::Json<RuleInfo>)> {
    let new = new_rule(
        body.target,
        body.kind,
        body.effect,
        body.mode,
        body.body,
        body.description,
    )?;
    let rule = state.vault.add_rule(app_id(&app)?, new).await?;
    Ok((StatusCode::CREATED, axum::Json(info(&rule))))
}

async fn list(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
) -> ApiResult<axum::Json<ItemList<RuleInfo>>> {
    let rules = state.vault.list_rules(app_id(&app)?).await?;
    Ok(axum::Json(ItemList {
        items: rules.iter().map(info).collect(),
    }))
}

async fn show(
    State(state): State<AppState>,
    _: Operator,
    Path((app, rule)): Path<(String, String)>,
) -> ApiResult<axum::Json<RuleInfo>> {
    let rule = state.vault.get_rule(app_id(&app)?, rule_id(&rule)?).await?;
    Ok(axum::Json(info(&rule)))
}

async fn update(
    State(state): State<AppState>,
    _: Operator,
    Path((app, rule)): Path<(String, String)>,
    Json(body): Json<UpdateRuleRequest>,
) -> ApiResult<axum::Json<RuleInfo>> {
    let change = RuleChange {
        target: body.target.map(target).transpose()?,
        effect: body.effect.as_deref().map(effect).transpose()?,
        mode: body.mode.as_deref().map(mode).transpose()?,
        body: body.body,
        description: body.description.map(|d| (!d.is_empty()).then_some(d)),
        expected_version: body.expected_version,
    };
    let rule = state
        .vault
        .update_rule(app_id(&app)?, rule_id(&rule)?, change)
        .await?;
    Ok(axum::Json(info(&rule)))
}

async fn remove(
    State(state): State<AppState>,
    _: Operator,
    Path((app, rule)): Path<(String, String)>,
) -> ApiResult<axum::Json<RuleInfo>> {
    let rule = state
        .vault
        .remove_rule(app_id(&app)?, rule_id(&rule)?)
        .await?;
    Ok(axum::Json(info(&rule)))
}

async fn what_if(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
    Json(body): Json<WhatIfRequest>,
) -> ApiResult<axum::Json<WhatIfView>> {
    let mut draft = Vec::with_capacity(body.rules.len());
    for d in body.rules {
        let id = d
            .id
            .as_deref()
            .map(|id| {
                Id::parse_lenient(id)
                    .ok_or_else(|| Error::Invalid(format!("draft rule id {id:?} is not a rule id")))
            })
            .transpose()?;
        let rule = new_rule(d.target, d.kind, d.effect, d.mode, d.body, d.description)?;
        draft.push(DraftRule { id, rule });
    }
    let now = state.vault.now();
    let report = state
        .vault
        .what_if(
            app_id(&app)?,
            draft,
            instant("since", body.since.as_deref(), now)?,
            instant("until", body.until.as_deref(), now)?,
            body.limit,
        )
        .await?;
    Ok(axum::Json(report_view(&report)))
}

/// A rule id from the path; anything else is an unknown rule.
pub(crate) fn rule_id(text: &str) -> Result<RuleId, Error> {
    Id::parse_lenient(text).ok_or(Error::NotFound(Entity::Rule))
}

pub(crate) fn new_rule(
    target_body: RuleTargetBody,
    kind: String,
    effect_text: Option<String>,
    mode_text: Option<String>,
    body: serde_json::Value,
    description: Option<String>,
) -> Result<NewRule, Error> {
    Ok(NewRule {
        target: target(target_body)?,
        kind,
        effect: effect_text.as_deref().map(effect).transpose()?,
        mode: mode_text
            .as_deref()
            .map(mode)
            .transpose()?
            .unwrap_or_default(),
        body,
        description,
    })
}

/// A target from the wire. An id that cannot name an agent or grant names none of this app's:
/// not found, like any other.
fn target(body: RuleTargetBody) -> Result<RuleTarget, Error> {
    match (body.kind.as_str(), body.id) {
        ("app", None) => Ok(RuleTarget::App),
        ("provider", Some(id)) if !id.is_empty() => Ok(RuleTarget::Provider(id)),
        ("agent", Some(id)) => Id::parse_lenient(&id)
            .map(RuleTarget::Agent)
            .ok_or(Error::NotFound(Entity::Agent)),
        ("grant", Some(id)) => Id::parse_lenient(&id)
            .map(RuleTarget::Grant)
            .ok_or(Error::NotFound(Entity::Grant)),
        ("app", Some(_)) => Err(Error::Invalid("an app target takes no id".into())),
        ("provider" | "agent" | "grant", _) => Err(Error::Invalid(format!(
            "a {} target needs its id",
            body.kind
        ))),
        _ => Err(Error::Invalid(
            "target.type must be app, provider, agent or grant".into(),
        )),
    }
}

fn effect(text: &str) -> Result<Effect, Error> {
    match text {
        "deny" => Ok(Effect::Deny),
        "hold" => Ok(Effect::Hold),
        _ => Err(Error::Invalid("effect must be deny or hold".into())),
    }
}

fn mode(text: &str) -> Result<RuleMode, Error> {
    match text {
        "enforce" => Ok(RuleMode::Enforce),
        "shadow" => Ok(RuleMode::Shadow),
        _ => Err(Error::Invalid("mode must be enforce or shadow".into())),
    }
}

/// An RFC 3339 time, or an age before `now` (`30s`, `15m`, `12h`, `7d`).
pub(crate) fn instant(
    field: &str,
    text: Option<&str>,
    now: Timestamp,
) -> Result<Option<Timestamp>, Error> {
    let Some(text) = text else { return Ok(None) };
    if let Some(at) = Timestamp::parse_rfc3339(text) {
        return Ok(Some(at));
    }
    let unit = match text.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3600,
        Some('d') => 86_400,
        _ => 0,
    };
    let count = text
        .get(..text.len().saturating_sub(1))
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0 && *n <= 36_500 * 86_400);
    match count {
        Some(n) if unit > 0 => Ok(Some(now.plus_seconds(-(n * unit)))),
        _ => Err(Error::Invalid(format!(
            "{field} must be an RFC 3339 time or an age such as 7d, 12h, 30m"
        ))),
    }
}

pub(crate) fn info(rule: &Rule) -> RuleInfo {
    let (kind, id) = match &rule.target {
        RuleTarget::App => ("app", None),
        RuleTarget::Provider(id) => ("provider", Some(id.clone())),
        RuleTarget::Agent(id) => ("agent", Some(id.to_string())),
        RuleTarget::Grant(id) => ("grant", Some(id.to_string())),
    };
    RuleInfo {
        id: rule.id.to_string(),
        app_id: rule.app_id.to_string(),
        version: rule.version,
        target: RuleTargetBody {
            kind: kind.into(),
            id,
        },
        kind: rule.kind.clone(),
        effect: match rule.effect {
            Effect::Deny => "deny",
            Effect::Hold => "hold",
        }
        .into(),
        mode: match rule.mode {
            RuleMode::Enforce => "enforce",
            RuleMode::Shadow => "shadow",
        }
        .into(),
        body: rule.body.clone(),
        description: rule.description.clone(),
        updated_at: rule.created_at.to_rfc3339(),
    }
}

pub(crate) fn report_view(report: &WhatIfReport) -> WhatIfView {
    WhatIfView {
        total: report.total,
        indeterminate: report.indeterminate,
        allow: report.allow,
        hold: report.hold,
        deny: report.deny,
        rules: report
            .rules
            .iter()
            .map(|r| WhatIfRuleView {
                rule_id: r.rule_id.to_string(),
                kind: r.kind.clone(),
                denied: r.denied,
                held: r.held,
                indeterminate: r.indeterminate,
                examples: r.examples.iter().map(ToString::to_string).collect(),
            })
            .collect(),
    }
}
