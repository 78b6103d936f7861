//! What the Wallet does for a signed-in end user beyond the `/user/v1` API: extend a grant's
//! lifetime, see and decide the approvals addressed to them, read their own activity. Each
//! acts as [`Subject::User`] and reaches only what that user holds (or delegated), like its API
//! twin; anything else is "not found".

use async_trait::async_trait;
use serde_json::json;

use crate::approvals::{Approval, ApprovalStatus, HeldRequest};
use crate::audit::{AuditEvent, EventFilter, StoredEvent, Target, action};
use crate::credentials::Credential;
use crate::error::{Entity, Error, Result};
use crate::grants::{Grant, GrantState, Principal};
use crate::identity::SignedInUser;
use crate::ids::{AppId, ApprovalId, GrantId};
use crate::ports::StoreResult;
use crate::subject::Subject;
use crate::time::Timestamp;
use crate::vault::Vault;

/// Most approvals the Wallet lists at once.
const MAX_APPROVALS: i64 = 500;
/// Most events the activity page reads (the newest).
pub const MAX_ACTIVITY: usize = 1000;

/// Storage the Wallet needs beyond the other ports.
#[async_trait]
pub trait WalletStore: Send + Sync {
    /// Moves an active grant's end from `from` to `to` if it is still `from` and the grant
    /// still active, writing `event` in the same transaction; false otherwise.
    async fn extend_grant(
        &self,
        app: AppId,
        id: GrantId,
        from: Timestamp,
        to: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
}

/// How far a grant may be extended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// Up to this end.
    UpTo(Timestamp),
    /// Not at all: the grant never expires, is not the user's own, or is not active.
    No,
}

impl Vault {
    /// The latest end `user` may give `grant` now: never past the grant's own
    /// `max_ttl_seconds` (from its creation), its managed secret's cap, or
    /// [`crate::Settings::max_grant_extension_seconds`] from now. Only the user's own active,
    /// expiring grants can be extended.
    pub async fn grant_extension(&self, user: &SignedInUser, grant: &Grant) -> Result<Extension> {
        let now = self.now();
        let own = grant.principal == Principal::User(user.user.id);
        let Some(end) = grant.expires_at else {
            return Ok(Extension::No);
        };
        if !own || grant.state(now) != GrantState::Active {
            return Ok(Extension::No);
        }
        let mut limit = now.plus_seconds(self.settings().max_grant_extension_seconds);
        if let Some(max) = grant.lifetime.max_ttl_seconds {
            limit = limit.min(grant.created_at.plus_seconds(max));
        }
        let cap = match self.credential_of(grant).await? {
            Credential::ManagedSecret(secret)
            | Credential::UserSecret {
                template: secret, ..
            } => secret.limits.max_grant_ttl_seconds,
            Credential::Connection(_) => None,
        };
        if let Some(cap) = cap {
            limit = limit.min(grant.created_at.plus_seconds(cap));
        }
        Ok(if limit > end {
            Extension::UpTo(limit)
        } else {
            Extension::No
        })
    }

    /// A grant the signed-in user reaches (theirs, their group's, a delegation they made).
    pub async fn user_grant(&self, subject: &Subject<'_>, id: GrantId) -> Result<Grant> {
        match subject {
            Subject::User { .. } => self.grant_in_reach(subject, id).await,
            _ => Err(Error::NotFound(Entity::Grant)),
        }
    }

    /// Extends the user's own grant to end at `until` (later than now and its current end, at
    /// most [`Vault::grant_extension`]'s limit). Audited as `grant.extended`.
    pub async fn extend_grant(
        &self,
        subject: &Subject<'_>,
        grant_id: GrantId,
        until: Timestamp,
    ) -> Result<Grant> {
        let Subject::User { user, .. } = subject else {
            return Err(Error::NotFound(Entity::Grant));
        };
        let grant = self.grant_in_reach(subject, grant_id).await?;
        if grant.principal != Principal::User(user.user.id) {
            return Err(Error::NotFound(Entity::Grant));
        }
        let (Some(end), Extension::UpTo(limit)) =
            (grant.expires_at, self.grant_extension(user, &grant).await?)
        else {
            return Err(Error::InvalidGrantLifetime(
                "this grant cannot be extended".into(),
            ));
        };
        if until <= end {
            return Err(Error::InvalidGrantLifetime(
                "the new end must be later than the current one".into(),
            ));
        }
        if until > limit {
            return Err(Error::InvalidGrantLifetime(format!(
                "the new end may be {} at the latest",
                limit.to_rfc3339()
            )));
        }
        let now = self.now();
        let event = AuditEvent::allow(
            subject.app_id(),
            now,
            action::GRANT_EXTENDED,
            subject.actor(),
            Target {
                kind: "grant".into(),
                id: grant.id.to_string(),
            },
        )
        .with_details(json!({
            "from": end.to_rfc3339(),
            "to": until.to_rfc3339(),
        }));
        if !self
            .store()
            .extend_grant(subject.app_id(), grant.id, end, until, &event)
            .await?
        {
            return Err(Error::Conflict(
                "the grant changed meanwhile; reload and try again".into(),
            ));
        }
        self.grant(subject.app_id(), grant.id).await
    }

    /// Whether `approval` is addressed to `user`: its grant is one they hold or a delegation
    /// they made, and its hold rules name no approvers or name this user (app user id, IdP
    /// subject or e-mail).
    async fn addressed_to(&self, user: &SignedInUser, approval: &Approval) -> Result<bool> {
        let Some(grant) = self
            .store()
            .get_grant(approval.app_id, approval.grant_id)
            .await?
        else {
            return Ok(false);
        };
        let subject = Subject::User {
            app: approval.app_id,
            user,
        };
        if !subject.reaches_grant(&grant) {
            return Ok(false);
        }
        let approvers = approval.approvers();
        let me = &user.user;
        Ok(approvers.is_empty()
            || approvers.iter().any(|a| {
                *a == me.id.to_string() || *a == me.subject || Some(a) == me.email.as_ref()
            }))
    }

    /// The approvals addressed to the user, newest first (`status` narrows).
    pub async fn user_approvals(
        &self,
        app: AppId,
        user: &SignedInUser,
        status: Option<ApprovalStatus>,
    ) -> Result<Vec<Approval>> {
        let mut mine = Vec::new();
        for approval in self.list_approvals(app, status, MAX_APPROVALS).await? {
            if self.addressed_to(user, &approval).await? {
                mine.push(approval);
            }
        }
        Ok(mine)
    }

    /// One approval addressed to the user and the exact request it would make.
    pub async fn user_approval(
        &self,
        app: AppId,
        user: &SignedInUser,
        id: ApprovalId,
    ) -> Result<(Approval, HeldRequest)> {
        let approval = self.get_approval(app, id).await?;
        if !self.addressed_to(user, &approval).await? {
            return Err(Error::NotFound(Entity::Approval));
        }
        let request = self.approval_request(app, id).await?;
        Ok((approval, request))
    }

    /// The user approves or denies an approval addressed to them (re-checked here, at the
    /// decision), recorded as theirs.
    pub async fn decide_user_approval(
        &self,
        subject: &Subject<'_>,
        id: ApprovalId,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Approval> {
        let Subject::User { app, user } = subject else {
            return Err(Error::NotFound(Entity::Approval));
        };
        let approval = self.get_approval(*app, id).await?;
        if !self.addressed_to(user, &approval).await? {
            return Err(Error::NotFound(Entity::Approval));
        }
        let me = &user.user;
        let decided_by = me.email.clone().unwrap_or_else(|| me.subject.clone());
        self.decide_approval_by(*app, id, approve, reason, Some(decided_by), subject.actor())
            .await
    }

    /// The user's activity: events about them or their credentials (their grants, the
    /// delegations they made), newest first, at most [`MAX_ACTIVITY`]. `filter`'s user is
    /// always this user.
    pub async fn user_activity(
        &self,
        app: AppId,
        user: &SignedInUser,
        filter: EventFilter,
    ) -> Result<Vec<StoredEvent>> {
        let filter = EventFilter {
            app_user_id: Some(user.user.id.to_string()),
            ..filter
        };
        // Pages in chain order; only the newest MAX_ACTIVITY are kept.
        let mut newest: std::collections::VecDeque<StoredEvent> = Default::default();
        let mut after = 0;
        loop {
            let page = self.audit_events(app, filter.clone(), after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let full = page.len() == 1000;
            for event in page {
                if newest.len() == MAX_ACTIVITY {
                    newest.pop_front();
                }
                newest.push_back(event);
            }
            if !full {
                break;
            }
        }
        Ok(newest.into_iter().rev().collect())
    }
}
