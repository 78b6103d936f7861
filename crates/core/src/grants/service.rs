//! Creating, listing, minting and revoking grants.

use crate::agents::AgentStatus;
use crate::audit::{Actor, AuditEvent, action};
use crate::caller::Caller;
use crate::connections::revocation::connection_revoked_event;
use crate::credentials::{Credential, CredentialRef, CredentialSummary};
use crate::error::{Entity, Error, Limit, Result, ensure};
use crate::identity::SignedInUser;
use crate::ids::{AppId, GrantId, IdpId, SecretId};
use crate::ports::ReadFrom;
use crate::scope::Verb;
use crate::secrets::ManagedSecret;
use crate::subject::Subject;
use crate::validate;
use crate::vault::Vault;

use super::events::{grant_event, revocation_event};
use super::lifetime::{lifetime_end, parse_lifetime};
use super::model::{
    CreatedBy, Grant, GrantFilter, GrantLifetime, GrantPage, GrantState, GrantStatus, GrantView,
    LifetimeInput, ListGrants, MAX_PAGE, NewPrincipal, Principal, Viewer,
};

impl Vault {
    /// `create_managed_secret_grant`: the app binds a managed secret to a user, group or
    /// system principal. Agents (and agent-typed keys) cannot: they would grant themselves
    /// what their allowlist merely names.
    pub async fn create_managed_secret_grant(
        &self,
        caller: &Caller,
        secret: &str,
        principal: NewPrincipal,
        lifetime: LifetimeInput,
        credential_id: Option<&str>,
    ) -> Result<Grant> {
        if caller.is_agent() {
            return Err(Error::AgentsCannotCreateGrants);
        }
        let secret = self.grantable_secret(caller, secret).await?;
        if let Some(credential) = credential_id
            && SecretId::parse_lenient(credential) != Some(secret.id)
        {
            return Err(Error::NotFound(Entity::Grant));
        }
        let (principal, label) = self.resolve_principal(caller, principal).await?;
        self.bind_secret(caller, &secret, principal, label, lifetime)
            .await
    }

    /// The agent self-grant: the agent the request acts as binds a managed secret to itself.
    /// Only where the operator opted the `agent` principal type in for that secret, only for
    /// an active agent whose allowlist names the secret.
    pub async fn create_agent_self_grant(
        &self,
        caller: &Caller,
        secret: &str,
        label: Option<String>,
        lifetime: LifetimeInput,
    ) -> Result<Grant> {
        let agent = caller.agent.as_deref().ok_or(Error::AgentKeyRequired)?;
        if agent.status != AgentStatus::Active {
            return Err(Error::AgentInactive);
        }
        let secret = self.grantable_secret(caller, secret).await?;
        let label = validate::label(label.as_deref())?;
        if !agent.allowlist(self.now()).names_secret(&secret.slug) {
            return Err(Error::LimitViolation(Limit::AgentNotAllowlisted));
        }
        self.bind_secret(caller, &secret, Principal::Agent(agent.id), label, lifetime)
            .await
    }

    /// A live managed secret of the caller's app to bind; anything else looks like a missing
    /// grant.
    async fn grantable_secret(&self, caller: &Caller, secret: &str) -> Result<ManagedSecret> {
        self.get_secret(caller.app_id, secret)
            .await
            .map_err(|_| Error::NotFound(Entity::Grant))
    }

    /// Binds `secret` to `principal` as a new root grant, within the secret's limits.
    async fn bind_secret(
        &self,
        caller: &Caller,
        secret: &ManagedSecret,
        principal: Principal,
        label: Option<String>,
        lifetime: LifetimeInput,
    ) -> Result<Grant> {
        let now = self.now();
        if !secret.limits.allows(principal.kind()) {
            return Err(Error::LimitViolation(Limit::PrincipalNotAllowed(
                principal.kind(),
            )));
        }
        let lifetime = parse_lifetime(lifetime, now)?;
        let expires_at = lifetime_end(&lifetime, secret.limits.max_grant_ttl_seconds, now)?;
        let grant = Grant {
            id: GrantId::new(),
            app_id: caller.app_id,
            seq: 0,
            credential: CredentialRef::ManagedSecret(secret.id),
            principal,
            label,
            status: GrantStatus::Active,
            lifetime,
            expires_at,
            parent_grant_id: None,
            depth: 0,
            delegable: false,
            delegated_by: None,
            created_by: CreatedBy::Developer,
            created_at: now,
            revoked_at: None,
            revoke_reason: None,
            last_used_at: None,
            scope_mismatch: false,
        };
        let credential = Credential::ManagedSecret(secret.clone());
        let event = grant_event(&grant, action::GRANT_CREATED, caller.actor(), &credential);
        self.insert_grant(&grant, None, &event).await
    }

    /// Stores a new grant (minted from `minted_from`, if given) and reads it back (numbered);
    /// a taken label is a sibling conflict.
    async fn insert_grant(
        &self,
        grant: &Grant,
        minted_from: Option<GrantId>,
        event: &AuditEvent,
    ) -> Result<Grant> {
        let stored = match minted_from {
            Some(source) => self.store().insert_minted_grant(grant, source, event).await,
            None => self.store().insert_grant(grant, event).await,
        };
        match stored {
            Ok(()) => self.grant(grant.app_id, grant.id).await,
            Err(crate::ports::StoreError::Conflict(what)) if what == "sibling_label" => Err(
                Error::SiblingLabelConflict(grant.label.clone().unwrap_or_default()),
            ),
            Err(e) => Err(e.into()),
        }
    }

    async fn resolve_principal(
        &self,
        caller: &Caller,
        principal: NewPrincipal,
    ) -> Result<(Principal, Option<String>)> {
        let required = |label: String| {
            validate::label(Some(&label))?.ok_or_else(|| Error::Invalid("label is required".into()))
        };
        Ok(match principal {
            NewPrincipal::User { user_token, label } => {
                let label = required(label)?;
                let user = self.sign_in(caller.app_id, &user_token).await?;
                (Principal::User(user.user.id), Some(label))
            }
            NewPrincipal::Group {
                external_group_id,
                idp_id,
                label,
            } => {
                let label = required(label)?;
                let group = validate::bounded_text("external_group_id", &external_group_id, 255)?;
                let idp = self.store().get_idp(caller.app_id).await?;
                let idp = idp
                    .filter(|idp| IdpId::parse_lenient(&idp_id) == Some(idp.id))
                    .ok_or_else(|| {
                        Error::Invalid("idp_id does not name this app's identity provider".into())
                    })?;
                ensure(idp.claims.groups.is_some(), || {
                    "the identity provider has no groups claim configured, so group membership cannot be decided".into()
                })?;
                (
                    Principal::Group {
                        idp_id: idp.id,
                        external_group_id: group.to_owned(),
                    },
                    Some(label),
                )
            }
            NewPrincipal::System { label } => {
                (Principal::System, validate::label(label.as_deref())?)
            }
        })
    }

    /// A page of the grants the subject may see: an SDK caller (`list_grants`) those its
    /// scopes name, as the agent it acts as or narrowed to the user `user_token` identifies;
    /// the operator every grant of the app; an end user the grants they hold and the
    /// delegations they made. `user_token` is the SDK caller's alone.
    pub async fn list_grants(
        &self,
        subject: &Subject<'_>,
        request: ListGrants,
    ) -> Result<GrantPage> {
        let (viewer, filter) = match subject {
            Subject::Operator { .. } => (Viewer::App, request.filter),
            Subject::User { user, .. } => (user_viewer(user), request.filter),
            Subject::Caller(caller) => {
                self.caller_view(caller, request.user_token, request.filter)
                    .await?
            }
        };
        // An app or end user lists what they just created or revoked: the primary. The
        // operator's pages may lag.
        let read = match subject {
            Subject::Operator { .. } => ReadFrom::Replica,
            _ => ReadFrom::Primary,
        };
        self.grant_page(
            subject.app_id(),
            &viewer,
            filter,
            request.limit,
            request.offset,
            read,
        )
        .await
    }

    /// How an SDK caller sees grants, and the filter its scopes narrow.
    async fn caller_view(
        &self,
        caller: &Caller,
        user_token: Option<String>,
        filter: GrantFilter,
    ) -> Result<(Viewer, GrantFilter)> {
        let user = match &user_token {
            Some(token) => Some(self.sign_in(caller.app_id, token).await?),
            None => None,
        };
        let viewer = match (caller.agent_id(), user) {
            (Some(agent), user) => Viewer::Agent {
                agent,
                delegated_by: user.map(|u| u.user.id),
            },
            (None, Some(u)) => user_viewer(&u),
            (None, None) => Viewer::App,
        };
        let mut filter = GrantFilter {
            hide_agent_grants: caller.is_unbound_agent(),
            ..filter
        };
        match caller.scopes.instances("grants", Verb::Read) {
            Some(None) => {}
            Some(Some(ids)) => filter.ids = Some(ids),
            None => {
                return Err(Error::InsufficientScope {
                    required: vec![crate::scope::Scope::resource("grants", Verb::Read)],
                    granted: caller.scopes.to_strings(),
                    any_of: false,
                });
            }
        }
        Ok((viewer, filter))
    }

    /// A page of an app's grants as `viewer` sees them.
    async fn grant_page(
        &self,
        app_id: AppId,
        viewer: &Viewer,
        filter: GrantFilter,
        limit: i64,
        offset: i64,
        read: ReadFrom,
    ) -> Result<GrantPage> {
        let limit = validate::int_in_range("limit", limit, 1, MAX_PAGE)?;
        let offset = validate::int_in_range("offset", offset, 0, i64::MAX)?;
        let (grants, total) = self
            .store()
            .list_grants(app_id, viewer, &filter, limit, offset, self.now(), read)
            .await?;
        Ok(GrantPage {
            grants,
            total,
            limit,
            offset,
        })
    }

    /// Revokes a grant the subject may reach, and every delegation under it. With
    /// `user_token` (SDK callers), only a grant of that user. End users revoke only the
    /// delegations they made ([`Vault::revoke_delegation`]), and the grants that are theirs
    /// alone (principal: that user; not a group's) from the Wallet.
    pub async fn revoke_grant(
        &self,
        subject: &Subject<'_>,
        grant_id: GrantId,
        reason: Option<String>,
        user_token: Option<&str>,
    ) -> Result<Grant> {
        let grant = self.grant_in_reach(subject, grant_id).await?;
        if let Subject::User { user, .. } = subject
            && grant.principal != Principal::User(user.user.id)
        {
            return Err(Error::NotFound(Entity::Grant));
        }
        if let Some(token) = user_token {
            let user = self.sign_in(subject.app_id(), token).await?;
            if grant.principal != Principal::User(user.user.id) {
                return Err(Error::NotFound(Entity::Grant));
            }
        }
        self.revoke_grant_row(grant, reason, subject.actor()).await
    }

    /// A grant with a summary of its credential, as listings show it.
    pub async fn grant_view(&self, grant: Grant) -> Result<GrantView> {
        let credential = self.credential_of(&grant).await?;
        Ok(GrantView {
            delegated_agents: Vec::new(),
            credential: Some(CredentialSummary::of(&credential)),
            grant,
        })
    }

    pub(crate) async fn revoke_grant_row(
        &self,
        grant: Grant,
        reason: Option<String>,
        actor: Actor,
    ) -> Result<Grant> {
        if grant.status == GrantStatus::Revoked {
            return Err(Error::GrantRevoked(grant.id));
        }
        let reason = reason
            .map(|r| validate::bounded_text("reason", &r, 1000).map(str::to_owned))
            .transpose()?;
        let now = self.now();
        let template = revocation_event(
            grant.app_id,
            now,
            actor,
            reason.as_deref().unwrap_or("revoked"),
        );
        let revoked = match grant.credential {
            // A root OAuth grant may take its connection with it, and that its tokens upstream.
            CredentialRef::Connection(connection) if grant.parent_grant_id.is_none() => {
                let connection_event =
                    connection_revoked_event(grant.app_id, connection, now, &grant);
                let (revoked, connection_revoked) = self
                    .store()
                    .revoke_connection_grant(
                        grant.app_id,
                        grant.id,
                        connection,
                        now,
                        reason.as_deref(),
                        &template,
                        &connection_event,
                    )
                    .await?;
                if connection_revoked {
                    self.spawn_upstream_revocation(connection);
                }
                revoked
            }
            _ => {
                self.store()
                    .revoke_grants(grant.app_id, grant.id, now, reason.as_deref(), &template)
                    .await?
            }
        };
        if !revoked.contains(&grant.id) {
            return Err(Error::GrantRevoked(grant.id));
        }
        self.grant(grant.app_id, grant.id).await
    }

    /// `mint_grant`: a sibling grant on the same credential and principal, with a new label
    /// and a lifetime that may only tighten.
    pub async fn mint_grant(
        &self,
        caller: &Caller,
        source: GrantId,
        label: &str,
        lifetime: LifetimeInput,
        tags: Vec<String>,
    ) -> Result<GrantView> {
        if caller.is_agent() {
            return Err(Error::AgentsCannotMint);
        }
        let now = self.now();
        let source = self.grant(caller.app_id, source).await?;
        if source.state(now) != GrantState::Active || source.parent_grant_id.is_some() {
            return Err(Error::NotFound(Entity::Grant));
        }
        let label = validate::label(Some(label))?
            .ok_or_else(|| Error::Invalid("label is required".into()))?;
        ensure(tags.len() <= 20, || "at most 20 grant_tags".into())?;
        for tag in &tags {
            validate::bounded_text("grant_tags", tag, 100)?;
        }
        ensure(lifetime.default_ttl_seconds.is_none(), || {
            "a minted grant takes only expires_at and max_ttl_seconds".into()
        })?;
        let lifetime = parse_lifetime(lifetime, now)?;
        let own_end = lifetime_end(&lifetime, None, now)?;
        let expires_at = match (own_end, source.expires_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let grant = Grant {
            id: GrantId::new(),
            seq: 0,
            label: Some(label),
            lifetime: GrantLifetime { tags, ..lifetime },
            expires_at,
            created_at: now,
            last_used_at: None,
            ..source.clone()
        };
        let credential = self.credential_of(&grant).await?;
        // The source is kept in the grant's row (`minted_from`), the one place it is read
        // back from; the event says it for people.
        let event = grant_event(&grant, action::GRANT_MINTED, caller.actor(), &credential)
            .with_reason(Some(format!("minted from {}", source.id)));
        Ok(GrantView {
            delegated_agents: Vec::new(),
            grant: self.insert_grant(&grant, Some(source.id), &event).await?,
            credential: Some(CredentialSummary::of(&credential)),
        })
    }

    /// A grant of the app, by id text; anything else is "not found".
    pub async fn app_grant(&self, app_id: AppId, grant_id: &str) -> Result<Grant> {
        let id = GrantId::parse_lenient(grant_id).ok_or(Error::NotFound(Entity::Grant))?;
        self.grant(app_id, id).await
    }

    /// A grant of the app.
    pub(crate) async fn grant(&self, app_id: AppId, id: GrantId) -> Result<Grant> {
        self.store()
            .get_grant(app_id, id)
            .await?
            .ok_or(Error::NotFound(Entity::Grant))
    }

    /// A grant the caller may act on, by id text (see [`Subject::reaches_grant`]).
    pub async fn reachable_grant(&self, caller: &Caller, grant_id: &str) -> Result<Grant> {
        let id = GrantId::parse_lenient(grant_id).ok_or(Error::NotFound(Entity::Grant))?;
        self.grant_in_reach(&Subject::Caller(caller), id).await
    }

    /// A grant the subject may act on by id ([`Subject::reaches_grant`]); anything else
    /// looks "not found".
    pub(crate) async fn grant_in_reach(&self, subject: &Subject<'_>, id: GrantId) -> Result<Grant> {
        let grant = self.grant(subject.app_id(), id).await?;
        if subject.reaches_grant(&grant) {
            Ok(grant)
        } else {
            Err(Error::NotFound(Entity::Grant))
        }
    }
}

/// How an end user sees grants: theirs, their groups', the delegations they made.
fn user_viewer(user: &SignedInUser) -> Viewer {
    Viewer::User {
        user: user.user.id,
        idp: user.user.idp_id,
        groups: user.groups.clone(),
    }
}
