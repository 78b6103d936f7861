//! The operator's side of policy rules: adding, changing and removing an app's rules (each
//! checked by the rule engine before it is saved, each write audited in its transaction), and
//! the what-if replay of a draft rule set over the app's past credential decisions.

use serde_json::{Value, json};

use crate::audit::{Actor, AuditEvent, Decision, EventFilter, StoredEvent, Target, action};
use crate::error::{Entity, Error, Result};
use crate::ids::{AppId, RuleId};
use crate::ports::StoreError;
use crate::rules::{
    DecisionFacts, Effect, Outcome, PastDecision, Rule, RuleMode, RuleTarget, WhatIfReport,
};
use crate::time::Timestamp;
use crate::validate;
use crate::vault::Vault;

/// Longest operator note on a rule.
const MAX_DESCRIPTION: usize = 1000;
/// Longest rule kind name.
const MAX_KIND: usize = 64;
/// Most rules a what-if draft may hold.
pub const MAX_DRAFT_RULES: usize = 200;
/// Most past decisions one what-if replays (the newest beyond it are left out).
pub const MAX_WHAT_IF_RECORDS: u64 = 100_000;
/// Audit events read per page while gathering past decisions.
const PAGE: i64 = 1000;
/// The audit actions that record a credential decision a what-if replays.
const DECISION_ACTIONS: [&str; 3] = [
    action::CREDENTIAL_RELEASED,
    action::CREDENTIAL_DENIED,
    APPROVAL_REQUESTED,
];
/// The action of a held call (approvals are being built beside this; until they write it, no
/// event carries it).
const APPROVAL_REQUESTED: &str = "approval.requested";

/// A rule as the operator writes it.
#[derive(Debug, Clone)]
pub struct NewRule {
    /// What it is attached to.
    pub target: RuleTarget,
    /// Its kind.
    pub kind: String,
    /// Deny or hold (`None`: hold for `require_approval`, deny for any other kind).
    pub effect: Option<Effect>,
    /// Enforced or shadow.
    pub mode: RuleMode,
    /// The kind's parameters.
    pub body: Value,
    /// The operator's note.
    pub description: Option<String>,
}

impl NewRule {
    /// The effect given, or the one the kind implies.
    fn effect(&self) -> Effect {
        self.effect.unwrap_or(if self.kind == "require_approval" {
            Effect::Hold
        } else {
            Effect::Deny
        })
    }
}

/// A change to a rule: what is `Some` replaces the stored value. The kind never changes (a
/// rule of another kind is another rule).
#[derive(Debug, Clone, Default)]
pub struct RuleChange {
    /// A new target.
    pub target: Option<RuleTarget>,
    /// A new effect.
    pub effect: Option<Effect>,
    /// A new mode.
    pub mode: Option<RuleMode>,
    /// New parameters.
    pub body: Option<Value>,
    /// A new note (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// The version the operator read; the change is refused if the rule moved since.
    pub expected_version: Option<i64>,
}

/// A draft rule of a what-if (not stored): the id is kept when given, so a draft can stand
/// for a stored rule changed.
#[derive(Debug, Clone)]
pub struct DraftRule {
    /// Its id, if it stands for a stored rule.
    pub id: Option<RuleId>,
    /// The rule.
    pub rule: NewRule,
}

impl Vault {
    /// Adds a rule to an app (operator). The engine checks it and normalises its body first;
    /// a target naming an agent, grant or provider the app does not have is not found.
    pub async fn add_rule(&self, app_id: AppId, new: NewRule) -> Result<Rule> {
        self.get_app(app_id).await?;
        validate::bounded_text("kind", &new.kind, MAX_KIND)?;
        self.check_rule_target(app_id, &new.target).await?;
        let mut rule = Rule {
            id: RuleId::new(),
            app_id,
            version: 1,
            effect: new.effect(),
            target: new.target,
            kind: new.kind,
            mode: new.mode,
            body: new.body,
            description: description(new.description)?,
            created_at: self.now(),
        };
        rule.body = self.rules().validate(&rule).map_err(Error::Invalid)?;
        let event = rule_event(&rule, action::POLICY_RULE_ADDED, Actor::operator());
        match self.store().insert_rule(&rule, &event).await {
            Ok(()) => Ok(rule),
            Err(StoreError::Conflict(_)) => Err(Error::Conflict(
                "a rule with this id exists; try again".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Changes a rule of an app (operator), saving it as a new version.
    pub async fn update_rule(&self, app_id: AppId, id: RuleId, change: RuleChange) -> Result<Rule> {
        let existing = self.get_rule(app_id, id).await?;
        if let Some(expected) = change.expected_version
            && expected != existing.version
        {
            return Err(Error::Conflict(
                "the rule changed since the version you read; read it again".into(),
            ));
        }
        if let Some(target) = &change.target {
            self.check_rule_target(app_id, target).await?;
        }
        let mut rule = Rule {
            version: existing.version + 1,
            target: change.target.unwrap_or_else(|| existing.target.clone()),
            effect: change.effect.unwrap_or(existing.effect),
            mode: change.mode.unwrap_or(existing.mode),
            body: change.body.unwrap_or_else(|| existing.body.clone()),
            description: match change.description {
                Some(d) => description(d)?,
                None => existing.description.clone(),
            },
            created_at: self.now(),
            ..existing.clone()
        };
        rule.body = self.rules().validate(&rule).map_err(Error::Invalid)?;
        let event = rule_event(&rule, action::POLICY_RULE_UPDATED, Actor::operator());
        if self
            .store()
            .update_rule(&rule, existing.version, &event)
            .await?
        {
            Ok(rule)
        } else {
            Err(Error::Conflict(
                "the rule changed while it was being updated; read it again".into(),
            ))
        }
    }

    /// Removes a rule of an app (operator); returns what was removed.
    pub async fn remove_rule(&self, app_id: AppId, id: RuleId) -> Result<Rule> {
        let rule = self.get_rule(app_id, id).await?;
        let mut event = rule_event(&rule, action::POLICY_RULE_REMOVED, Actor::operator());
        event.at = self.now();
        if self.store().delete_rule(app_id, id, &event).await? {
            Ok(rule)
        } else {
            Err(Error::NotFound(Entity::Rule))
        }
    }

    /// One rule of an app, as it stands.
    pub async fn get_rule(&self, app_id: AppId, id: RuleId) -> Result<Rule> {
        self.store()
            .get_rule(app_id, id)
            .await?
            .ok_or(Error::NotFound(Entity::Rule))
    }

    /// The rules of an app, oldest first.
    pub async fn list_rules(&self, app_id: AppId) -> Result<Vec<Rule>> {
        self.get_app(app_id).await?;
        Ok(self.store().list_rules(app_id).await?)
    }

    /// What `draft` would have done to the app's credential decisions in `[since, until)`
    /// (oldest first, at most `limit`, itself capped at [`MAX_WHAT_IF_RECORDS`]). Each draft
    /// rule is checked as if it were saved; nothing is stored.
    pub async fn what_if(
        &self,
        app_id: AppId,
        draft: Vec<DraftRule>,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        limit: Option<u64>,
    ) -> Result<WhatIfReport> {
        self.get_app(app_id).await?;
        if draft.len() > MAX_DRAFT_RULES {
            return Err(Error::Invalid(format!(
                "a draft holds at most {MAX_DRAFT_RULES} rules"
            )));
        }
        if let (Some(since), Some(until)) = (since, until)
            && until <= since
        {
            return Err(Error::Invalid("until must be after since".into()));
        }
        let now = self.now();
        let mut rules = Vec::with_capacity(draft.len());
        for (i, d) in draft.into_iter().enumerate() {
            validate::bounded_text("kind", &d.rule.kind, MAX_KIND)?;
            let mut rule = Rule {
                id: d.id.unwrap_or_else(RuleId::new),
                app_id,
                version: 1,
                effect: d.rule.effect(),
                target: d.rule.target,
                kind: d.rule.kind,
                mode: d.rule.mode,
                body: d.rule.body,
                description: description(d.rule.description)?,
                created_at: now,
            };
            rule.body = self
                .rules()
                .validate(&rule)
                .map_err(|m| Error::Invalid(format!("draft rule {}: {m}", i + 1)))?;
            rules.push(rule);
        }
        let limit = limit
            .unwrap_or(MAX_WHAT_IF_RECORDS)
            .min(MAX_WHAT_IF_RECORDS);
        let past = self.past_decisions(app_id, since, until, limit).await?;
        Ok(self.rules().replay(&rules, &past))
    }

    /// The app's recorded credential decisions in the range, in chain (time) order.
    async fn past_decisions(
        &self,
        app_id: AppId,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        limit: u64,
    ) -> Result<Vec<PastDecision>> {
        let cap = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut events: Vec<StoredEvent> = Vec::new();
        for name in DECISION_ACTIONS {
            let filter = EventFilter {
                action: Some(name.to_owned()),
                since,
                until,
                ..EventFilter::default()
            };
            let mut after = 0;
            let mut taken = 0;
            while taken < cap {
                let page = PAGE.min(i64::try_from(cap - taken).unwrap_or(PAGE));
                let batch = self
                    .store()
                    .list_events(app_id, &filter, after, page)
                    .await?;
                let Some(last) = batch.last() else { break };
                after = last.seq;
                taken += batch.len();
                let full = batch.len() as i64 == page;
                events.extend(batch);
                if !full {
                    break;
                }
            }
        }
        events.sort_by_key(|e| e.seq);
        events.truncate(cap);
        Ok(events.iter().map(|e| past_decision(&e.event)).collect())
    }

    /// A rule's target must be something of this app; anything else is not found.
    async fn check_rule_target(&self, app_id: AppId, target: &RuleTarget) -> Result<()> {
        let found = match target {
            RuleTarget::App => true,
            RuleTarget::Agent(id) => self.store().get_agent(app_id, *id).await?.is_some(),
            RuleTarget::Grant(id) => self.store().get_grant(app_id, *id).await?.is_some(),
            RuleTarget::Provider(id) => {
                self.store().get_provider(app_id, id).await?.is_some()
                    || self.store().get_secret_by_slug(app_id, id).await?.is_some()
            }
        };
        if found {
            return Ok(());
        }
        Err(Error::NotFound(match target {
            RuleTarget::App => Entity::App,
            RuleTarget::Agent(_) => Entity::Agent,
            RuleTarget::Grant(_) => Entity::Grant,
            RuleTarget::Provider(_) => Entity::Provider,
        }))
    }
}

/// The recorded decision of an audit event: what was decided, and the facts it was decided
/// on when the event kept them (`details.decision_facts`; absent or unreadable: none).
pub fn past_decision(event: &AuditEvent) -> PastDecision {
    let details = event.details.as_ref();
    let held = event.action == APPROVAL_REQUESTED
        || details
            .and_then(|d| d.get("outcome"))
            .and_then(Value::as_str)
            == Some("hold");
    let recorded = match event.decision {
        Decision::Deny => Outcome::Deny,
        Decision::Allow if held => Outcome::Hold,
        Decision::Allow => Outcome::Allow,
    };
    let facts = details
        .and_then(|d| d.get("decision_facts"))
        .and_then(|f| serde_json::from_value::<DecisionFacts>(f.clone()).ok());
    PastDecision {
        event_id: event.id,
        recorded,
        facts,
    }
}

fn description(text: Option<String>) -> Result<Option<String>> {
    match text {
        Some(t) => {
            validate::bounded_text("description", &t, MAX_DESCRIPTION)?;
            Ok(Some(t))
        }
        None => Ok(None),
    }
}

/// The audit event of a rule write: which rule, which version, and what it says.
/// The event of a rule's addition, change or removal by `actor`.
pub(crate) fn rule_event(rule: &Rule, name: &str, actor: Actor) -> AuditEvent {
    AuditEvent::allow(
        rule.app_id,
        rule.created_at,
        name,
        actor,
        Target {
            kind: "rule".into(),
            id: rule.id.to_string(),
        },
    )
    .with_details(json!({
        "version": rule.version,
        "kind": rule.kind,
        "target": rule.target,
        "effect": rule.effect,
        "mode": rule.mode,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn event(action: &str, decision: Decision, details: Option<Value>) -> AuditEvent {
        let mut e = AuditEvent::allow(
            AppId::new(),
            Timestamp::from_unix_seconds(1_800_000_000),
            action,
            Actor::system(),
            Target {
                kind: "grant".into(),
                id: "g".into(),
            },
        );
        e.decision = decision;
        e.details = details;
        e
    }

    #[test]
    fn recorded_outcomes_come_from_the_decision_and_holds() {
        let allow = event(action::CREDENTIAL_RELEASED, Decision::Allow, None);
        let deny = event(action::CREDENTIAL_DENIED, Decision::Deny, None);
        let hold = event(
            action::CREDENTIAL_RELEASED,
            Decision::Allow,
            Some(json!({"outcome": "hold"})),
        );
        let requested = event(APPROVAL_REQUESTED, Decision::Allow, None);
        assert_eq!(past_decision(&allow).recorded, Outcome::Allow);
        assert_eq!(past_decision(&deny).recorded, Outcome::Deny);
        assert_eq!(past_decision(&hold).recorded, Outcome::Hold);
        assert_eq!(past_decision(&requested).recorded, Outcome::Hold);
    }

    #[test]
    fn missing_or_unreadable_facts_are_none() {
        let none = event(action::CREDENTIAL_RELEASED, Decision::Allow, None);
        let bad = event(
            action::CREDENTIAL_RELEASED,
            Decision::Allow,
            Some(json!({"decision_facts": {"version": "x"}})),
        );
        assert!(past_decision(&none).facts.is_none());
        assert!(past_decision(&bad).facts.is_none());
    }
}
