//! Delegations: a grant's holder lets one agent act on it. A delegation is a child grant whose
//! principal is the agent; revoking it leaves the parent intact, revoking the parent revokes
//! every child in the same transaction. Delegations come into being by consent — the end user
//! who holds the grant, the operator for grants the app itself owns, or an agent passing on a
//! delegable delegation — and are re-validated on every use.

use serde_json::json;

use crate::agents::{Agent, AgentStatus};
use crate::audit::{Actor, AuditEvent, action};
use crate::error::{Entity, Error, Result};
use crate::grants::{
    CreatedBy, Grant, GrantLifetime, GrantState, GrantStatus, Principal, grant_event,
};
use crate::identity::{SignedInUser, UserStatus};
use crate::ids::{AgentId, AppId, GrantId, UserId};
use crate::ports::StoreError;
use crate::subject::Subject;
use crate::time::Timestamp;
use crate::validate;
use crate::vault::Vault;

/// Longest chain of delegations below a root grant.
pub const MAX_DEPTH: i64 = 8;

/// Tries at storing a delegation while concurrent calls for the same grant and agent keep
/// changing its active delegation.
const STORE_ATTEMPTS: u32 = 3;

/// Why a grant cannot be delegated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotDelegable {
    /// The grant was made directly to an agent: no user consented to share it.
    NoConsentingUser,
    /// The holder's own delegation is not delegable.
    HolderNotDelegable,
    /// The credential does not allow delegation.
    CeilingOff,
    /// The depth ceiling leaves no further hop.
    NoOnwardHop,
}

impl NotDelegable {
    /// The stable name (`detail_reason` on the wire).
    pub fn as_str(self) -> &'static str {
        match self {
            NotDelegable::NoConsentingUser => "no_consenting_user",
            NotDelegable::HolderNotDelegable => "holder_not_delegable",
            NotDelegable::CeilingOff => "ceiling_off",
            NotDelegable::NoOnwardHop => "no_onward_hop",
        }
    }
}

/// Which delegation of a grant to revoke.
#[derive(Debug, Clone, Copy)]
pub enum DelegationOf {
    /// The named agent's (operator path); `None` when the text named no agent, which
    /// revokes nothing.
    Agent(Option<AgentId>),
    /// The calling agent's own (self path).
    Me,
    /// The delegation the id names itself (an end user revoking one they made).
    Itself,
}

/// How a delegation is made, beside the grant and the agent.
#[derive(Debug, Clone, Default)]
pub struct DelegateOptions {
    /// Lifetime, capped by the secret's ceiling and the parent's end.
    pub ttl_seconds: Option<i64>,
    /// Whether the agent may pass it on.
    pub delegable: Option<bool>,
    /// Refused on managed-secret delegations (they carry no scopes).
    pub scope_constraint: Option<Vec<String>>,
}

/// Who consents to a delegation.
enum Consent {
    /// An end user holding the grant.
    User(UserId),
    /// The operator, for a grant the app owns.
    Operator,
    /// An agent holding a delegable delegation.
    OnwardHop,
}

impl Vault {
    /// Delegates `grant_id` to the agent `to`, by consent of the subject: the operator
    /// delegates grants the app owns (system or group principal); an end user a grant they
    /// hold (their own, or one of a group they are in); an agent (`Agent.delegate`) passes on
    /// a delegable delegation it holds. Delegating again to the same agent updates the
    /// delegation made before.
    pub async fn delegate(
        &self,
        subject: &Subject<'_>,
        grant_id: GrantId,
        to: AgentId,
        options: DelegateOptions,
    ) -> Result<Grant> {
        let app_id = subject.app_id();
        let (grant, consent) = match subject {
            Subject::Caller(caller) => {
                let holder = caller.agent_id().ok_or(Error::AgentKeyRequired)?;
                let held = self.grant_in_reach(subject, grant_id).await?;
                if held.agent_id() != Some(holder) || held.state(self.now()) != GrantState::Active {
                    return Err(Error::NotFound(Entity::Grant));
                }
                if held.parent_grant_id.is_none() {
                    return Err(Error::GrantNotDelegable(NotDelegable::NoConsentingUser));
                }
                if !held.delegable {
                    return Err(Error::GrantNotDelegable(NotDelegable::HolderNotDelegable));
                }
                if options.scope_constraint.is_some() {
                    return Err(Error::InvalidScopeConstraint(
                        "managed-secret delegations carry no scopes, so they take no scope_constraint"
                            .into(),
                    ));
                }
                (held, Consent::OnwardHop)
            }
            Subject::Operator { .. } => {
                let grant = self.grant(app_id, grant_id).await?;
                match grant.principal {
                    Principal::System | Principal::Group { .. }
                        if grant.parent_grant_id.is_none() => {}
                    Principal::Agent(_) if grant.parent_grant_id.is_none() => {
                        return Err(Error::GrantNotDelegable(NotDelegable::NoConsentingUser));
                    }
                    _ => {
                        return Err(Error::Invalid(
                            "the operator delegates grants the app owns (system or group principals); users delegate their own".into(),
                        ));
                    }
                }
                (grant, Consent::Operator)
            }
            Subject::User { user, .. } => {
                let grant = self.grant(app_id, grant_id).await?;
                if grant.parent_grant_id.is_some() || !holds(user, &grant) {
                    return Err(Error::NotFound(Entity::Grant));
                }
                (grant, Consent::User(user.user.id))
            }
        };
        let to = self
            .agent(app_id, to)
            .await
            .ok()
            .filter(|a| a.status == AgentStatus::Active)
            .ok_or(Error::NotFound(Entity::Agent))?;
        self.store_delegation(
            grant,
            &to,
            consent,
            options.ttl_seconds,
            options.delegable,
            subject.actor(),
        )
        .await
    }

    async fn store_delegation(
        &self,
        parent: Grant,
        to: &Agent,
        consent: Consent,
        ttl_seconds: Option<i64>,
        delegable: Option<bool>,
        actor: Actor,
    ) -> Result<Grant> {
        let now = self.now();
        if parent.state(now) != GrantState::Active {
            return Err(Error::NotFound(Entity::Grant));
        }
        let credential = self.credential_of(&parent).await?;
        let limits = credential.limits();
        if !limits.delegation {
            return Err(Error::GrantNotDelegable(NotDelegable::CeilingOff));
        }
        let depth = parent.depth + 1;
        if depth > MAX_DEPTH || (delegable == Some(true) && depth >= MAX_DEPTH) {
            return Err(Error::GrantNotDelegable(NotDelegable::NoOnwardHop));
        }
        let ttl = ttl_seconds
            .map(|t| validate::int_in_range("ttl_seconds", t, 1, 10 * 365 * 24 * 3600))
            .transpose()?;
        let cap = limits.max_delegation_ttl_seconds;
        let expires_at = [
            ttl.map(|t| now.plus_seconds(t)),
            cap.map(|c| now.plus_seconds(c)),
            parent.expires_at,
        ]
        .into_iter()
        .flatten()
        .min();
        let (delegated_by, created_by) = match consent {
            Consent::User(user) => (Some(user), CreatedBy::EndUser),
            Consent::Operator => (None, CreatedBy::Developer),
            // An onward hop keeps the consent of the user at the root of the chain.
            Consent::OnwardHop => (parent.delegated_by, parent.created_by),
        };
        // The store keeps one active delegation per grant and agent (an expired one counts
        // until revoked), so an existing one is renewed. When a concurrent call stored one
        // first, or revoked the one renewed here, read again.
        let mut attempts = 0;
        let child = loop {
            attempts += 1;
            let existing = self
                .store()
                .active_child(parent.app_id, parent.id, to.id)
                .await?;
            let child = match existing {
                Some(existing) => Grant {
                    expires_at,
                    delegable: delegable.unwrap_or(existing.delegable),
                    ..existing
                },
                None => Grant {
                    id: GrantId::new(),
                    app_id: parent.app_id,
                    seq: 0,
                    credential: parent.credential,
                    principal: Principal::Agent(to.id),
                    label: parent.label.clone(),
                    status: GrantStatus::Active,
                    lifetime: GrantLifetime {
                        expires_at,
                        ..GrantLifetime::default()
                    },
                    expires_at,
                    parent_grant_id: Some(parent.id),
                    depth,
                    delegable: delegable.unwrap_or(false),
                    delegated_by,
                    created_by,
                    created_at: now,
                    revoked_at: None,
                    revoke_reason: None,
                    last_used_at: None,
                    scope_mismatch: false,
                },
            };
            let event = grant_event(
                &child,
                action::DELEGATION_CREATED,
                actor.clone(),
                &credential,
            )
            .with_details(json!({
                "parent_grant_id": parent.id,
                "agent_id": to.id,
                "depth": child.depth,
                "delegable": child.delegable,
                "expires_at": child.expires_at,
                "delegated_by": child.delegated_by,
            }));
            match self.store().put_delegation(&child, &event).await {
                Ok(()) => break child,
                Err(StoreError::Conflict(what))
                    if what == "active_delegation" && attempts < STORE_ATTEMPTS => {}
                Err(StoreError::Conflict(what)) if what == "active_delegation" => {
                    return Err(Error::Conflict(
                        "the delegation changed concurrently; try again".into(),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.grant(child.app_id, child.id).await
    }

    /// Revokes a delegation and everything passed on from it. `App.revoke_delegation(grant_id,
    /// agent_id)` and `Agent.revoke_delegation(grant_id)` name the agent's delegation of a
    /// grant (by the parent's id, or the delegation's own), are idempotent and answer `None`;
    /// an end user names a delegation they made ([`DelegationOf::Itself`]) and gets it back.
    /// `grant_id` is `None` when the text named no grant.
    pub async fn revoke_delegation(
        &self,
        subject: &Subject<'_>,
        grant_id: Option<GrantId>,
        of: DelegationOf,
    ) -> Result<Option<Grant>> {
        let app_id = subject.app_id();
        if let Subject::User { user, .. } = subject {
            let DelegationOf::Itself = of else {
                return Err(Error::NotFound(Entity::Grant));
            };
            let id = grant_id.ok_or(Error::NotFound(Entity::Grant))?;
            let child = self.grant(app_id, id).await?;
            if child.parent_grant_id.is_none() || child.delegated_by != Some(user.user.id) {
                return Err(Error::NotFound(Entity::Grant));
            }
            if child.status == GrantStatus::Active {
                self.revoke_delegation_row(child, subject.actor()).await?;
            }
            return self.grant(app_id, id).await.map(Some);
        }
        let acting = match subject {
            Subject::Caller(caller) => caller.agent_id(),
            _ => None,
        };
        let agent = match of {
            DelegationOf::Agent(_) if acting.is_some() => {
                return Err(Error::UseSelfRevokePath);
            }
            // Delegations to named agents are out of an unbound agent key's reach: it is
            // answered like a delegation that does not exist.
            DelegationOf::Agent(_) if matches!(subject, Subject::Caller(c) if c.is_unbound_agent()) =>
            {
                return Ok(None);
            }
            DelegationOf::Agent(agent) => match agent {
                Some(agent) => agent,
                None => return Ok(None),
            },
            DelegationOf::Me => acting.ok_or(Error::AgentKeyRequired)?,
            DelegationOf::Itself => return Err(Error::NotFound(Entity::Grant)),
        };
        let Some(id) = grant_id else {
            return Ok(None);
        };
        let Some(grant) = self.store().get_grant(app_id, id).await? else {
            return Ok(None);
        };
        if grant.agent_id() == Some(agent) && grant.parent_grant_id.is_some() {
            if grant.status == GrantStatus::Active {
                self.revoke_delegation_row(grant, subject.actor()).await?;
            }
            return Ok(None);
        }
        // By the parent's id: every active delegation of it to the agent, should concurrent
        // calls ever have left more than one.
        let now = self.now();
        self.store()
            .revoke_delegations(
                app_id,
                grant.id,
                agent,
                now,
                DELEGATION_REVOKED_REASON,
                &delegation_revoked_event(app_id, now, subject.actor()),
            )
            .await?;
        Ok(None)
    }

    async fn revoke_delegation_row(&self, child: Grant, actor: Actor) -> Result<()> {
        let now = self.now();
        self.store()
            .revoke_grants(
                child.app_id,
                child.id,
                now,
                DELEGATION_REVOKED_REASON,
                &delegation_revoked_event(child.app_id, now, actor),
            )
            .await?;
        Ok(())
    }

    /// Re-validates a delegation before use: every grant up the chain active, the consenting
    /// user still active and still holding the root (or still in its group, by membership a
    /// token vouched for recently: [`crate::identity::AppUser::recent_groups`]), the agent
    /// active. Fails with the first broken link; returns the chain, from `grant` to its root.
    /// `known` is an agent the caller already read this request (the calling agent); it is not
    /// read again.
    pub async fn check_delegation_chain(
        &self,
        grant: &Grant,
        known: Option<&Agent>,
    ) -> Result<Vec<Grant>> {
        let now = self.now();
        let mut chain = Vec::new();
        let mut link = grant.clone();
        loop {
            if link.state(now) != GrantState::Active {
                return Err(Error::DelegationInvalid(
                    "a grant in the delegation chain is no longer active",
                ));
            }
            if let Principal::Agent(id) = link.principal {
                match known.filter(|a| a.id == id) {
                    Some(agent) => ensure_active_agent(agent)?,
                    None => ensure_active_agent(&self.agent(link.app_id, id).await?)?,
                }
            }
            let Some(parent) = link.parent_grant_id else {
                break;
            };
            let next = self.grant(link.app_id, parent).await?;
            chain.push(std::mem::replace(&mut link, next));
        }
        // `link` is the root now.
        if let Some(user) = grant.delegated_by {
            let user = self
                .store()
                .get_user(grant.app_id, user)
                .await?
                .ok_or(Error::DelegationInvalid("the consenting user is gone"))?;
            if user.status != UserStatus::Active {
                return Err(Error::DelegationInvalid("the consenting user is suspended"));
            }
            let still_holds = match &link.principal {
                Principal::User(owner) => *owner == user.id,
                Principal::Group {
                    idp_id,
                    external_group_id,
                } => {
                    let max_age = self.settings().group_membership_max_age_seconds;
                    *idp_id == user.idp_id
                        && user.recent_groups(now, max_age).contains(external_group_id)
                }
                _ => false,
            };
            if !still_holds {
                return Err(Error::DelegationInvalid(
                    "the consenting user no longer holds the grant",
                ));
            }
        }
        chain.push(link);
        Ok(chain)
    }
}

/// The reason stored on a revoked delegation.
const DELEGATION_REVOKED_REASON: Option<&str> = Some("delegation revoked");

/// The event template of revoked delegations (one event per grant, target filled in).
fn delegation_revoked_event(app_id: AppId, at: Timestamp, actor: Actor) -> AuditEvent {
    AuditEvent {
        action: action::DELEGATION_REVOKED.to_owned(),
        ..crate::grants::revocation_event(app_id, at, actor, "delegation_revoked")
    }
}

fn ensure_active_agent(agent: &Agent) -> Result<()> {
    match agent.status {
        AgentStatus::Active => Ok(()),
        _ => Err(Error::DelegationInvalid("the agent is not active")),
    }
}

/// True if the signed-in user holds `grant` now (theirs, or their group's).
pub(crate) fn holds(user: &SignedInUser, grant: &Grant) -> bool {
    match &grant.principal {
        Principal::User(owner) => *owner == user.user.id,
        Principal::Group {
            idp_id,
            external_group_id,
        } => *idp_id == user.user.idp_id && user.groups.contains(external_group_id),
        _ => false,
    }
}
