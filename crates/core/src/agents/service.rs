//! Creating, reading, changing and deleting agents.

use serde_json::json;

use crate::audit::{Actor, AuditEvent, Target, action};
use crate::caller::Caller;
use crate::error::{Entity, Error, Result, ensure};
use crate::ids::{AgentId, AppId};
use crate::subject::Subject;
use crate::validate;
use crate::vault::Vault;

use super::model::{Agent, AgentCreated, AgentStatus, AgentUpdate, NewAgent};
use super::validation::{
    object, request_fingerprint, validate_allowlist, validate_approval, validate_name,
};

/// Default staging period of a scope narrowing.
const DEFAULT_GRACE_SECONDS: i64 = 24 * 3600;
/// Longest staging period of a scope narrowing.
const MAX_GRACE_SECONDS: i64 = 7 * 24 * 3600;

impl Vault {
    /// `agents.create` (app callers only).
    pub async fn create_agent(&self, caller: &Caller, new: NewAgent) -> Result<AgentCreated> {
        Subject::Caller(caller).manage_agents()?;
        let name = validate_name(&new.name)?;
        let agent_type = match new.agent_type.as_deref() {
            None | Some("agent") => "agent",
            Some("service") => "service",
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "type {other:?}: use agent or service"
                )));
            }
        };
        let allowlist = validate_allowlist(&new.allowlist)?;
        let metadata = object("metadata", new.metadata.as_ref())?;
        let approval = validate_approval(new.approval.as_ref())?;
        let display_name = new
            .display_name
            .as_deref()
            .map(|d| validate::bounded_text("display_name", d, 255).map(str::to_owned))
            .transpose()?;
        let fingerprint = request_fingerprint(&json!({
            "name": name, "type": agent_type, "scopes": allowlist, "metadata": metadata,
            "display_name": display_name, "policy": approval,
        }));
        let idempotency = match new.idempotency_key.as_deref() {
            Some(key) => {
                ensure(!key.is_empty() && key.len() <= 255, || {
                    "Idempotency-Key must be 1-255 characters".into()
                })?;
                if let Some(replay) = self
                    .replay_agent_creation(caller.app_id, key, &fingerprint)
                    .await?
                {
                    return Ok(replay);
                }
                Some(key.to_owned())
            }
            None => None,
        };
        let now = self.now();
        let agent = Agent {
            id: AgentId::new(),
            app_id: caller.app_id,
            name: name.to_owned(),
            display_name,
            agent_type: agent_type.to_owned(),
            status: AgentStatus::Active,
            allowlist,
            allowlist_pending: None,
            allowlist_applies_at: None,
            approval,
            metadata,
            rate_limit_per_minute: None,
            version: 1,
            created_at: now,
            updated_at: now,
            revoked_at: None,
            last_used_at: None,
        };
        let key = self.new_agent_key(&agent, 1)?;
        let event = agent_event(&agent, action::AGENT_CREATED, caller.actor()).with_details(
            json!({ "name": agent.name, "type": agent.agent_type, "key_id": key.key.id }),
        );
        let stored = self
            .store()
            .insert_agent(
                &agent,
                &key.key,
                idempotency.as_deref().map(|k| (k, fingerprint.as_slice())),
                &event,
            )
            .await;
        match stored {
            Ok(()) => Ok(AgentCreated {
                key_id: key.key.id,
                agent,
                key: Some(key),
            }),
            Err(crate::ports::StoreError::Conflict(what)) if what == "agent_name" => {
                Err(Error::AgentNameExists)
            }
            // The same idempotency key raced us: answer as its replay.
            Err(crate::ports::StoreError::Conflict(what)) if what == "idempotency_key" => {
                let key = idempotency.unwrap_or_default();
                self.replay_agent_creation(caller.app_id, &key, &fingerprint)
                    .await?
                    .ok_or(Error::AgentNameExists)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn replay_agent_creation(
        &self,
        app_id: AppId,
        key: &str,
        fingerprint: &[u8; 32],
    ) -> Result<Option<AgentCreated>> {
        let Some((agent_id, key_id, stored)) =
            self.store().find_idempotent_agent(app_id, key).await?
        else {
            return Ok(None);
        };
        if !alter_crypto::ct_eq(&stored, fingerprint) {
            return Err(Error::IdempotencyBodyMismatch);
        }
        let agent = self.agent(app_id, agent_id).await?;
        match agent.status {
            AgentStatus::Revoked => Err(Error::IdempotencyAgentRevoked),
            AgentStatus::Inactive => Err(Error::IdempotencyAgentInactive),
            AgentStatus::Active => Ok(Some(AgentCreated {
                agent,
                key_id,
                key: None,
            })),
        }
    }

    /// A page of the app's agents (deleted ones only with `include_revoked`): `agents.list`
    /// for app callers, the operator's listing, the agents an end user may delegate to.
    pub async fn list_agents(
        &self,
        subject: &Subject<'_>,
        include_revoked: bool,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Agent>, i64)> {
        if let Subject::Caller(_) = subject {
            subject.manage_agents()?;
        }
        let limit = validate::int_in_range("limit", limit, 1, 1000)?;
        let offset = validate::int_in_range("offset", offset, 0, i64::MAX)?;
        let now = self.now();
        let (agents, total) = self
            .store()
            .list_agents(subject.app_id(), include_revoked, limit, offset)
            .await?;
        Ok((agents.into_iter().map(|a| a.settled(now)).collect(), total))
    }

    /// `agents.get_by_name`: the live agent of that name, if any.
    pub async fn agent_by_name(&self, caller: &Caller, name: &str) -> Result<Option<Agent>> {
        Subject::Caller(caller).manage_agents()?;
        let now = self.now();
        Ok(self
            .store()
            .find_agent_by_name(caller.app_id, name)
            .await?
            .map(|a| a.settled(now)))
    }

    /// `agents.get`, and the operator's look at one agent.
    pub async fn get_agent(&self, subject: &Subject<'_>, agent_id: AgentId) -> Result<Agent> {
        subject.manage_agents()?;
        self.agent(subject.app_id(), agent_id).await
    }

    /// An agent of the app.
    pub async fn agent(&self, app_id: AppId, id: AgentId) -> Result<Agent> {
        let now = self.now();
        self.store()
            .get_agent(app_id, id)
            .await?
            .map(|a| a.settled(now))
            .ok_or(Error::NotFound(Entity::Agent))
    }

    /// `Agent.me()`: the calling agent, whatever its status.
    pub async fn me(&self, caller: &Caller) -> Result<Agent> {
        caller
            .agent
            .as_deref()
            .cloned()
            .ok_or(Error::MeRequiresAgentKey)
    }

    /// `agents.update` / `suspend` / `resume`, and the operator's pause and resume.
    pub async fn update_agent(
        &self,
        subject: &Subject<'_>,
        agent_id: AgentId,
        update: AgentUpdate,
    ) -> Result<Agent> {
        let agent = self.get_agent(subject, agent_id).await?;
        self.apply_agent_update(agent, update, subject.actor())
            .await
    }

    async fn apply_agent_update(
        &self,
        agent: Agent,
        update: AgentUpdate,
        actor: Actor,
    ) -> Result<Agent> {
        let now = self.now();
        if update.allowlist.is_some() && update.expected_version.is_none() {
            return Err(Error::Invalid(
                "expected_version is required when scopes change".into(),
            ));
        }
        if update.grace_seconds.is_some() && update.allowlist.is_none() {
            return Err(Error::Invalid(
                "grace_seconds is only allowed with scopes".into(),
            ));
        }
        if let Some(expected) = update.expected_version {
            validate::int_in_range("expected_version", expected, 1, i64::MAX)?;
            if expected != agent.version {
                return Err(Error::AgentConcurrentUpdate);
            }
        }
        if agent.status == AgentStatus::Revoked {
            return Err(Error::Conflict("this agent was deleted".into()));
        }
        let mut next = agent.clone();
        let mut actions = Vec::new();
        if let Some(display_name) = update.display_name {
            next.display_name = display_name
                .map(|d| validate::bounded_text("display_name", &d, 255).map(str::to_owned))
                .transpose()?;
        }
        if let Some(metadata) = &update.metadata {
            next.metadata = object("metadata", Some(metadata))?;
        }
        if let Some(approval) = &update.approval {
            next.approval = validate_approval(Some(approval))?;
        }
        if let Some(scopes) = &update.allowlist {
            let wanted = validate_allowlist(scopes)?;
            let grace = validate::int_in_range(
                "grace_seconds",
                update.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS),
                0,
                MAX_GRACE_SECONDS,
            )?;
            let current = agent.allowlist(now).clone();
            if current.narrowed_by(&wanted) && grace > 0 {
                next.allowlist = current.union(&wanted);
                next.allowlist_pending = Some(wanted);
                next.allowlist_applies_at = Some(now.plus_seconds(grace));
            } else {
                next.allowlist = wanted;
                next.allowlist_pending = None;
                next.allowlist_applies_at = None;
            }
        }
        if let Some(status) = &update.status {
            let status = match status.as_str() {
                "active" => AgentStatus::Active,
                "inactive" => AgentStatus::Inactive,
                other => {
                    return Err(Error::Invalid(format!(
                        "status {other:?}: use active or inactive (delete revokes)"
                    )));
                }
            };
            if status != agent.status {
                actions.push(if status == AgentStatus::Inactive {
                    action::AGENT_SUSPENDED
                } else {
                    action::AGENT_RESUMED
                });
            }
            next.status = status;
        }
        if next == agent {
            return Ok(agent);
        }
        if actions.is_empty()
            || next.allowlist != agent.allowlist
            || next.metadata != agent.metadata
        {
            actions.push(action::AGENT_UPDATED);
        }
        next.version = agent.version + 1;
        next.updated_at = now;
        let events: Vec<AuditEvent> = actions
            .iter()
            .map(|a| {
                agent_event(&next, a, actor.clone()).with_details(
                    json!({ "version": next.version, "scopes_applies_at": next.allowlist_applies_at }),
                )
            })
            .collect();
        if !self
            .store()
            .update_agent(&next, agent.version, &events)
            .await?
        {
            return Err(Error::AgentConcurrentUpdate);
        }
        Ok(next)
    }

    /// `agents.delete`: terminal; every key and every delegation to the agent is revoked in
    /// the same transaction. Deleting a deleted agent changes nothing.
    pub async fn delete_agent(&self, subject: &Subject<'_>, agent_id: AgentId) -> Result<Agent> {
        let agent = self.get_agent(subject, agent_id).await?;
        self.remove_agent(agent, subject.actor()).await
    }

    async fn remove_agent(&self, agent: Agent, actor: Actor) -> Result<Agent> {
        if agent.status == AgentStatus::Revoked {
            return Ok(agent);
        }
        let now = self.now();
        let deleted = Agent {
            status: AgentStatus::Revoked,
            revoked_at: Some(now),
            updated_at: now,
            version: agent.version + 1,
            ..agent.clone()
        };
        let event = agent_event(&deleted, action::AGENT_DELETED, actor.clone());
        let grants = crate::grants::revocation_event(agent.app_id, now, actor, "agent_deleted");
        if !self
            .store()
            .delete_agent(&deleted, agent.version, &event, &grants)
            .await?
        {
            return Err(Error::AgentConcurrentUpdate);
        }
        // Its keys were revoked with it.
        self.verified_keys().clear();
        Ok(deleted)
    }
}

pub(crate) fn agent_event(agent: &Agent, action: &str, actor: Actor) -> AuditEvent {
    AuditEvent::allow(
        agent.app_id,
        agent.updated_at,
        action,
        actor,
        Target {
            kind: "agent".into(),
            id: agent.id.to_string(),
        },
    )
}
