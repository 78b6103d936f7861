//! Grants: bindings of a credential to a principal (user, group, system, agent), each with its
//! own id, lifetime and lifecycle. Delegations are grants too — children whose principal is an
//! agent — see `delegations`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::agents::AgentStatus;
use crate::audit::{Actor, AuditEvent, Target, action};
use crate::caller::Caller;
use crate::credentials::{Credential, CredentialRef, CredentialSummary};
use crate::error::{Entity, Error, Limit, Result, ensure};
use crate::identity::SignedInUser;
use crate::ids::{AgentId, AppId, GrantId, IdpId, SecretId, UserId};
use crate::scope::Verb;
use crate::secrets::ManagedSecret;
use crate::subject::Subject;
use crate::time::Timestamp;
use crate::validate;
use crate::vault::Vault;

/// Largest page of a listing.
pub const MAX_PAGE: i64 = 1000;
/// Longest lifetime a grant may name: 100 years.
pub const MAX_TTL_SECONDS: i64 = 100 * 365 * 24 * 3600;

/// Who a grant belongs to, as a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalType {
    /// An end user.
    User,
    /// An IdP group.
    Group,
    /// The app itself.
    System,
    /// A named agent.
    Agent,
}

impl PrincipalType {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalType::User => "user",
            PrincipalType::Group => "group",
            PrincipalType::System => "system",
            PrincipalType::Agent => "agent",
        }
    }

    /// Parses the wire form.
    pub fn parse(text: &str) -> Option<PrincipalType> {
        match text {
            "user" => Some(PrincipalType::User),
            "group" => Some(PrincipalType::Group),
            "system" => Some(PrincipalType::System),
            "agent" => Some(PrincipalType::Agent),
            _ => None,
        }
    }
}

/// Who a grant belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An end user.
    User(UserId),
    /// Members of an IdP group, decided from the user's token each time.
    Group {
        /// The app's IdP.
        idp_id: IdpId,
        /// The group's id at the IdP.
        external_group_id: String,
    },
    /// The app itself.
    System,
    /// An agent (its own grant, or a delegation to it).
    Agent(AgentId),
}

impl Principal {
    /// The type.
    pub fn kind(&self) -> PrincipalType {
        match self {
            Principal::User(_) => PrincipalType::User,
            Principal::Group { .. } => PrincipalType::Group,
            Principal::System => PrincipalType::System,
            Principal::Agent(_) => PrincipalType::Agent,
        }
    }
}

/// Stored status; expiry is derived from the time (see [`Grant::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantStatus {
    /// Not revoked.
    Active,
    /// Revoked.
    Revoked,
}

impl GrantStatus {
    /// The stored form: `active` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Active => "active",
            GrantStatus::Revoked => "revoked",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<GrantStatus> {
        match text {
            "active" => Some(GrantStatus::Active),
            "revoked" => Some(GrantStatus::Revoked),
            _ => None,
        }
    }
}

/// What a grant is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantState {
    /// Usable.
    Active,
    /// Past its lifetime (even before anything flips it).
    Expired,
    /// Revoked.
    Revoked,
}

impl GrantState {
    /// `active`, `expired` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Active => "active",
            GrantState::Expired => "expired",
            GrantState::Revoked => "revoked",
        }
    }
}

/// Who set up a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreatedBy {
    /// The app, through an app key or the operator.
    Developer,
    /// The end user (delegations they consented to).
    EndUser,
}

impl CreatedBy {
    /// The wire and stored form: `developer` or `end_user`.
    pub fn as_str(self) -> &'static str {
        match self {
            CreatedBy::Developer => "developer",
            CreatedBy::EndUser => "end_user",
        }
    }

    /// Parses the wire and stored form.
    pub fn parse(text: &str) -> Option<CreatedBy> {
        match text {
            "developer" => Some(CreatedBy::Developer),
            "end_user" => Some(CreatedBy::EndUser),
            _ => None,
        }
    }
}

/// A grant's lifetime as its creator set it (`grant_policy` on the wire; not a policy: the
/// rule engine is the only thing called that).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GrantLifetime {
    /// Absolute end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Longest lifetime (extensions may not pass it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl_seconds: Option<i64>,
    /// Lifetime given at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl_seconds: Option<i64>,
    /// Free-form tags (minted siblings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// A grant as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// Id.
    pub id: GrantId,
    /// The app.
    pub app_id: AppId,
    /// Position among the app's grants (creation order, from 1).
    pub seq: i64,
    /// The credential.
    pub credential: CredentialRef,
    /// Who it belongs to.
    pub principal: Principal,
    /// Sibling label.
    pub label: Option<String>,
    /// Stored status.
    pub status: GrantStatus,
    /// Lifetime as set.
    pub lifetime: GrantLifetime,
    /// Effective end of the grant (from its lifetime, the credential's limits and parent).
    pub expires_at: Option<Timestamp>,
    /// The grant this one was delegated from.
    pub parent_grant_id: Option<GrantId>,
    /// Hops from the root (0 for roots).
    pub depth: i64,
    /// Whether the holder may delegate it onward.
    pub delegable: bool,
    /// The end user who consented to this delegation.
    pub delegated_by: Option<UserId>,
    /// Who set it up.
    pub created_by: CreatedBy,
    /// Creation time.
    pub created_at: Timestamp,
    /// Revocation time.
    pub revoked_at: Option<Timestamp>,
    /// Why it was revoked.
    pub revoke_reason: Option<String>,
    /// Last use.
    pub last_used_at: Option<Timestamp>,
    /// A provider reported the grant's scopes too narrow.
    pub scope_mismatch: bool,
}

impl Grant {
    /// What the grant is at `now`.
    pub fn state(&self, now: Timestamp) -> GrantState {
        match (self.status, self.expires_at) {
            (GrantStatus::Revoked, _) => GrantState::Revoked,
            (GrantStatus::Active, Some(end)) if end <= now => GrantState::Expired,
            (GrantStatus::Active, _) => GrantState::Active,
        }
    }

    /// The agent a delegation or agent-owned grant is for.
    pub fn agent_id(&self) -> Option<AgentId> {
        match self.principal {
            Principal::Agent(agent) => Some(agent),
            _ => None,
        }
    }
}

/// A grant with what a listing shows of its credential.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantView {
    /// The grant.
    pub grant: Grant,
    /// Its credential (absent only if the credential's row is gone).
    pub credential: Option<CredentialSummary>,
}

/// Who is looking: decides which grants a listing holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// The app: every grant, delegations included.
    App,
    /// An end user: their grants, the grants of their groups, their delegations.
    User {
        /// The user.
        user: UserId,
        /// Their IdP.
        idp: IdpId,
        /// Their groups now.
        groups: Vec<String>,
    },
    /// An agent: what it owns and what was delegated to it (optionally by one user only).
    Agent {
        /// The agent.
        agent: AgentId,
        /// Only delegations this user consented to.
        delegated_by: Option<UserId>,
    },
}

/// Filters of a listing; all narrow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantFilter {
    /// Managed-secret slug (or OAuth provider id).
    pub provider: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub state: Option<GrantStateFilter>,
    /// Account identifier.
    pub account: Option<String>,
    /// Sibling label.
    pub label: Option<String>,
    /// Only these grant ids (instance-scoped keys).
    pub ids: Option<Vec<String>>,
    /// Only delegations (`true`) or only roots (`false`).
    pub delegations: Option<bool>,
    /// Leave out grants bound or delegated to a named agent (for keys confined away from
    /// them).
    pub hide_agent_grants: bool,
}

/// A status filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantStateFilter {
    /// Usable now.
    Active,
    /// Past their lifetime, not revoked.
    Expired,
    /// Revoked.
    Revoked,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantPage {
    /// The grants, in creation order.
    pub grants: Vec<GrantView>,
    /// How many match in all.
    pub total: i64,
    /// Page size asked for.
    pub limit: i64,
    /// Offset asked for.
    pub offset: i64,
}

impl GrantPage {
    /// True when more pages follow.
    pub fn has_more(&self) -> bool {
        self.offset + (self.grants.len() as i64) < self.total
    }
}

/// The principal of a new managed-secret grant, as the caller names it.
#[derive(Debug, Clone)]
pub enum NewPrincipal {
    /// The user a JWT identifies.
    User {
        /// The user's IdP JWT.
        user_token: String,
        /// Label (required).
        label: String,
    },
    /// An IdP group.
    Group {
        /// The group's id at the IdP.
        external_group_id: String,
        /// The app's IdP id.
        idp_id: String,
        /// Label (required).
        label: String,
    },
    /// The app itself.
    System {
        /// Optional label.
        label: Option<String>,
    },
}

/// A grant lifetime as the caller gives it.
#[derive(Debug, Clone, Default)]
pub struct LifetimeInput {
    /// ISO-8601 end, in the future.
    pub expires_at: Option<String>,
    /// Positive.
    pub max_ttl_seconds: Option<i64>,
    /// Positive, at most `max_ttl_seconds`.
    pub default_ttl_seconds: Option<i64>,
}

/// A listing request.
#[derive(Debug, Clone, Default)]
pub struct ListGrants {
    /// 1–1000.
    pub limit: i64,
    /// ≥ 0.
    pub offset: i64,
    /// Filters.
    pub filter: GrantFilter,
    /// Narrow to the user this JWT identifies.
    pub user_token: Option<String>,
}

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
        self.insert_grant(&grant, &event).await
    }

    /// Stores a new grant and reads it back (numbered); a taken label is a sibling conflict.
    async fn insert_grant(&self, grant: &Grant, event: &AuditEvent) -> Result<Grant> {
        match self.store().insert_grant(grant, event).await {
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
        self.grant_page(
            subject.app_id(),
            &viewer,
            filter,
            request.limit,
            request.offset,
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
    ) -> Result<GrantPage> {
        let limit = validate::int_in_range("limit", limit, 1, MAX_PAGE)?;
        let offset = validate::int_in_range("offset", offset, 0, i64::MAX)?;
        let (grants, total) = self
            .store()
            .list_grants(app_id, viewer, &filter, limit, offset, self.now())
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
    /// delegations they made ([`Vault::revoke_delegation`]).
    pub async fn revoke_grant(
        &self,
        subject: &Subject<'_>,
        grant_id: GrantId,
        reason: Option<String>,
        user_token: Option<&str>,
    ) -> Result<Grant> {
        if let Subject::User { .. } = subject {
            return Err(Error::NotFound(Entity::Grant));
        }
        let grant = self.grant_in_reach(subject, grant_id).await?;
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
        let revoked = self
            .store()
            .revoke_grants(grant.app_id, grant.id, now, reason.as_deref(), &template)
            .await?;
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
        let event = grant_event(&grant, action::GRANT_MINTED, caller.actor(), &credential)
            .with_reason(Some(format!("minted from {}", source.id)));
        Ok(GrantView {
            grant: self.insert_grant(&grant, &event).await?,
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

/// The template of the events a revocation writes (one per revoked grant).
pub fn revocation_event(app_id: AppId, at: Timestamp, actor: Actor, reason: &str) -> AuditEvent {
    AuditEvent::allow(
        app_id,
        at,
        action::GRANT_REVOKED,
        actor,
        Target {
            kind: "grant".into(),
            id: String::new(),
        },
    )
    .with_reason(Some(reason.to_owned()))
}

/// A grant's principal as audit events record it (for a delegation, with the user who
/// consented).
pub(crate) fn principal_json(grant: &Grant) -> Value {
    match &grant.principal {
        Principal::User(user) => json!({ "type": "user", "app_user_id": user }),
        Principal::Group {
            idp_id,
            external_group_id,
        } => json!({ "type": "group", "idp_id": idp_id, "external_group_id": external_group_id }),
        Principal::System => json!({ "type": "system" }),
        Principal::Agent(agent) => json!({
            "type": "agent",
            "agent_id": agent,
            "app_user_id": grant.delegated_by,
        }),
    }
}

pub(crate) fn grant_event(
    grant: &Grant,
    action: &str,
    actor: Actor,
    credential: &Credential,
) -> AuditEvent {
    let principal = principal_json(grant);
    let (secret_id, secret_slug) = match credential {
        Credential::ManagedSecret(secret) => (secret.id, &secret.slug),
    };
    AuditEvent::allow(
        grant.app_id,
        grant.created_at,
        action,
        actor,
        Target {
            kind: "grant".into(),
            id: grant.id.to_string(),
        },
    )
    .with_details(json!({
        "principal": principal,
        "label": grant.label,
        "secret_id": secret_id,
        "secret_slug": secret_slug,
        "parent_grant_id": grant.parent_grant_id,
        "expires_at": grant.expires_at,
        "delegated_by": grant.delegated_by,
    }))
}

fn parse_lifetime(input: LifetimeInput, now: Timestamp) -> Result<GrantLifetime> {
    let invalid = |m: &str| Error::InvalidGrantLifetime(m.to_owned());
    let expires_at = input
        .expires_at
        .map(|text| {
            let at = Timestamp::parse_rfc3339(&text).ok_or_else(|| {
                invalid("expires_at must be an ISO-8601 date-time with an offset")
            })?;
            if at <= now {
                return Err(invalid("expires_at must be in the future"));
            }
            Ok(at)
        })
        .transpose()?;
    for (field, value) in [
        ("max_ttl_seconds", input.max_ttl_seconds),
        ("default_ttl_seconds", input.default_ttl_seconds),
    ] {
        if value.is_some_and(|v| !(1..=MAX_TTL_SECONDS).contains(&v)) {
            return Err(invalid(&format!(
                "{field} must be a positive integer of at most {MAX_TTL_SECONDS} (100 years)"
            )));
        }
    }
    if let (Some(max), Some(default)) = (input.max_ttl_seconds, input.default_ttl_seconds)
        && default > max
    {
        return Err(invalid(
            "default_ttl_seconds must not exceed max_ttl_seconds",
        ));
    }
    Ok(GrantLifetime {
        expires_at,
        max_ttl_seconds: input.max_ttl_seconds,
        default_ttl_seconds: input.default_ttl_seconds,
        tags: Vec::new(),
    })
}

/// When a grant with `lifetime` created at `now` ends: the earliest of its `expires_at` and its
/// length (`default_ttl_seconds`, else `max_ttl_seconds`). A lifetime the secret's cap forbids
/// violates its limits; with no lifetime asked, the cap applies.
pub(crate) fn lifetime_end(
    lifetime: &GrantLifetime,
    cap_seconds: Option<i64>,
    now: Timestamp,
) -> Result<Option<Timestamp>> {
    if let Some(cap) = cap_seconds {
        let cap_end = now.plus_seconds(cap);
        let too_long = lifetime.max_ttl_seconds.is_some_and(|v| v > cap)
            || lifetime.default_ttl_seconds.is_some_and(|v| v > cap)
            || lifetime.expires_at.is_some_and(|at| at > cap_end);
        if too_long {
            return Err(Error::LimitViolation(Limit::GrantTooLong {
                max_seconds: cap,
            }));
        }
    }
    let length = lifetime
        .default_ttl_seconds
        .or(lifetime.max_ttl_seconds)
        .or(cap_seconds);
    let ends = [lifetime.expires_at, length.map(|s| now.plus_seconds(s))];
    Ok(ends.into_iter().flatten().min())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_unix_seconds(1_000_000)
    }

    fn policy(max: Option<i64>, default: Option<i64>, expires: Option<i64>) -> LifetimeInput {
        LifetimeInput {
            expires_at: expires.map(|s| now().plus_seconds(s).to_rfc3339()),
            max_ttl_seconds: max,
            default_ttl_seconds: default,
        }
    }

    #[test]
    fn policies_are_validated() {
        assert!(parse_lifetime(policy(Some(10), Some(5), None), now()).is_ok());
        for bad in [
            policy(Some(5), Some(10), None),
            policy(Some(0), None, None),
            policy(None, Some(-1), None),
            policy(None, None, Some(-5)),
            LifetimeInput {
                expires_at: Some("tomorrow".into()),
                ..Default::default()
            },
        ] {
            assert!(matches!(
                parse_lifetime(bad, now()),
                Err(Error::InvalidGrantLifetime(_))
            ));
        }
    }

    #[test]
    fn lifetimes_take_the_earliest_end_and_respect_the_cap() {
        let p = parse_lifetime(policy(Some(100), Some(50), Some(70)), now()).unwrap();
        assert_eq!(
            lifetime_end(&p, None, now()).unwrap(),
            Some(now().plus_seconds(50))
        );
        let p = parse_lifetime(policy(Some(100), None, None), now()).unwrap();
        assert_eq!(
            lifetime_end(&p, None, now()).unwrap(),
            Some(now().plus_seconds(100))
        );
        let p = parse_lifetime(policy(None, None, None), now()).unwrap();
        assert_eq!(lifetime_end(&p, None, now()).unwrap(), None);
        assert_eq!(
            lifetime_end(&p, Some(30), now()).unwrap(),
            Some(now().plus_seconds(30))
        );
        let p = parse_lifetime(policy(Some(100), None, None), now()).unwrap();
        assert!(matches!(
            lifetime_end(&p, Some(30), now()),
            Err(Error::LimitViolation(Limit::GrantTooLong {
                max_seconds: 30
            }))
        ));
    }
}
