//! Managed-secret Connect sessions (`create_managed_secret_connect_session`): an end user gives
//! an app (or an agent) access through a managed secret — by entering their own key, by
//! replacing it, or by sharing access they already hold with an agent.
//!
//! The page accepts nothing until the person at it has proved they are the session's user: they
//! sign in at the app's identity provider (OIDC code flow with PKCE, through the same attempt
//! machinery as an OAuth Connect: single-use state, browser-bound cookie), and the ID token's
//! subject must be the user the session was made for. Otherwise whoever held the link could
//! plant their own key in the user's grant.

use alter_crypto::keys::{mint_token, token_hash};
use alter_crypto::{ExposeSecret, SecretString};
use serde_json::json;

use crate::audit::{Actor, AuditEvent, Target, action};
use crate::caller::Caller;
use crate::credentials::{Credential, CredentialRef};
use crate::error::{Entity, Error, Result, ensure};
use crate::grants::{
    CreatedBy, Grant, GrantLifetime, GrantStatus, LifetimeInput, Principal, Viewer, check_lifetime,
    grant_event, lifetime_end,
};
use crate::ids::{AgentId, ConnectSessionId, GrantId, UserSecretId};
use crate::ports::{CandidateSource, Narrowing, StoreError};
use crate::scope::Scope;
use crate::secrets::ManagedSecret;
use crate::user_secrets::UserSecret;
use crate::vault::Vault;

use super::service::{Authorize, SESSION_TTL_SECONDS, StartedAttempt, session_target};
use super::{
    ConnectOperation, ConnectOutcome, ConnectSession, ConnectSettings, ConnectedDelegation,
    ConnectedGrant, CreatedSession, ManagedConnect, ManagedPath, SessionStatus,
};

/// The attempt's "provider" when the page signs the user in at the app's identity provider.
pub const SIGN_IN_ATTEMPT: &str = "alter:sign-in";
/// Longest key a user may enter.
const MAX_VALUE_BYTES: usize = 8192;

/// What the caller asks for.
#[derive(Debug, Clone, Default)]
pub struct NewManagedConnect {
    /// The managed secret's slug.
    pub provider: String,
    /// The agent to share with (id or name).
    pub agent: Option<String>,
    /// The user's IdP token: the session is theirs.
    pub user_token: String,
    /// Lifetime of the agent's delegation.
    pub requested_ttl_seconds: Option<i64>,
    /// The embedding page's origin.
    pub allowed_origin: Option<String>,
    /// Where the browser returns.
    pub return_url: Option<String>,
    /// Whether the agent may share onward.
    pub delegable: bool,
    /// The new grant's label.
    pub label: Option<String>,
    /// The new grant's lifetime.
    pub lifetime: LifetimeInput,
    /// Skip optional steps.
    pub direct: bool,
    /// The user's own key to replace.
    pub repair_grant_id: Option<String>,
}

/// A new managed-secret session.
#[derive(Debug)]
pub struct CreatedManaged {
    /// The session and its tokens.
    pub created: CreatedSession,
    /// The path, unless the caller is an agent with its own key (which must not learn what the
    /// user holds).
    pub path: Option<ManagedPath>,
    /// The grant the path uses, under the same rule.
    pub existing_grant_id: Option<GrantId>,
    /// The agent the session shares with.
    pub agent_id: Option<AgentId>,
    /// The secret's slug.
    pub secret_slug: String,
}

/// What the page shows once the user signed in.
#[derive(Debug, Clone)]
pub struct ResumeView {
    /// The session.
    pub session: ConnectSession,
    /// The secret's display name.
    pub secret_name: String,
    /// The app's name.
    pub app_name: String,
    /// The agent shared with, by name.
    pub agent_name: Option<String>,
}

/// How a managed-secret session ended.
#[derive(Debug, Clone)]
pub struct ManagedOutcome {
    /// The session.
    pub session: ConnectSession,
    /// The user's grant.
    pub grant_id: GrantId,
    /// The agent's delegation, when the session shared with one.
    pub delegation: Option<ConnectedDelegation>,
}

impl Vault {
    /// `create_managed_secret_connect_session`: checks what the caller asks and stores a
    /// pending session for the user, with its path decided.
    pub async fn create_managed_connect_session(
        &self,
        caller: &Caller,
        new: NewManagedConnect,
    ) -> Result<CreatedManaged> {
        caller.require(&Scope::Action("connect:initiate"))?;
        caller.require(&Scope::resource("secrets", crate::scope::Verb::Write))?;
        let app_id = caller.app_id;
        let now = self.now();
        ensure(
            !new.provider.is_empty()
                && new.provider.len() <= 50
                && new
                    .provider
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            || "provider must be a managed secret's slug".into(),
        )?;
        let secret = self
            .store()
            .get_secret_by_slug(app_id, &new.provider)
            .await?
            .filter(|s| s.deleted_at.is_none())
            .ok_or(Error::NotFound(Entity::Secret))?;
        // The page signs the user in: the app's IdP must be able to.
        let client =
            self.store()
                .get_sign_in_client(app_id)
                .await?
                .ok_or(Error::SignInNotConfigured(
                    crate::signin::SignInGap::MissingClientId,
                ))?;
        if let Some(gap) = client.gap() {
            return Err(Error::SignInNotConfigured(gap));
        }
        let user = self.sign_in(app_id, &new.user_token).await?;
        let agent_id = match (&new.agent, caller.agent_id()) {
            (Some(name), _) => Some(self.session_agent(caller, name).await?),
            (None, own) => own,
        };
        for (field, url) in [
            ("return_url", &new.return_url),
            ("allowed_origin", &new.allowed_origin),
        ] {
            if let Some(url) = url {
                ensure(caller.agent_id().is_none(), || {
                    format!("agents cannot set {field}; the app sets where users return")
                })?;
                super::service::check_browser_url(field, url)?;
            }
        }
        if let Some(ttl) = new.requested_ttl_seconds {
            ensure(ttl > 0 && ttl <= 90 * 24 * 3600, || {
                "requested_ttl_seconds must be between 1 and 7776000 (90 days)".into()
            })?;
        }
        let label = crate::validate::label(new.label.as_deref())?;
        let lifetime = check_lifetime(new.lifetime, now)?;
        let (path, existing) = match &new.repair_grant_id {
            Some(text) => {
                ensure(agent_id.is_none() && label.is_none(), || {
                    "repair_grant_id does not go with agent or requested_grant".into()
                })?;
                let id = GrantId::parse_lenient(text).ok_or(Error::NotFound(Entity::Grant))?;
                let grant = self.grant(app_id, id).await?;
                let own_key = matches!(grant.credential, CredentialRef::UserSecret { secret: s, .. } if s == secret.id)
                    && grant.principal == Principal::User(user.user.id)
                    && grant.state(now) == crate::grants::GrantState::Active;
                if !own_key {
                    return Err(Error::NotFound(Entity::Grant));
                }
                (ManagedPath::Repair, Some(id))
            }
            None => {
                let viewer = Viewer::User {
                    user: user.user.id,
                    idp: user.user.idp_id,
                    groups: user.groups.clone(),
                };
                let held = self
                    .store()
                    .release_candidates(
                        app_id,
                        CandidateSource::Secret(secret.id),
                        &viewer,
                        Narrowing {
                            label: label.as_deref(),
                            account: None,
                        },
                        now,
                        50,
                    )
                    .await?;
                match held.iter().rfind(|g| g.parent_grant_id.is_none()) {
                    Some(grant) => (ManagedPath::FastPath, Some(grant.id)),
                    None => (ManagedPath::KeyEntry, None),
                }
            }
        };
        let session = ConnectSession {
            id: ConnectSessionId::new(),
            app_id,
            settings: ConnectSettings {
                providers: Vec::new(),
                return_url: new.return_url,
                allowed_origin: new.allowed_origin,
                lifetime: GrantLifetime { ..lifetime },
                required_scopes: Default::default(),
                label,
                restrictions: None,
                repair_grant_id: None,
                agent_id,
                delegable: new.delegable,
                user_id: Some(user.user.id),
                // A repair is always direct; onward sharing never.
                direct: (new.direct || path == ManagedPath::Repair) && !new.delegable,
                switch_account: false,
                managed: Some(ManagedConnect {
                    secret_id: secret.id,
                    path,
                    existing_grant_id: existing,
                    delegation_ttl_seconds: new.requested_ttl_seconds,
                }),
            },
            status: SessionStatus::Pending,
            declined: Vec::new(),
            outcome: None,
            verified_at: None,
            created_at: now,
            expires_at: now.plus_seconds(SESSION_TTL_SECONDS),
        };
        let session_token = mint_token("alter_cs_")?;
        let page_token = mint_token("alter_cp_")?;
        let event = AuditEvent {
            context: caller.context.clone(),
            trace_id: caller.trace_id.clone(),
            ..AuditEvent::allow(
                app_id,
                now,
                action::CONNECT_SESSION_CREATED,
                caller.actor(),
                session_target(&session),
            )
        }
        .with_details(json!({
            "secret_id": secret.id,
            "user_id": user.user.id,
            "agent_id": agent_id,
            "path": path,
        }));
        self.store()
            .insert_connect_session(
                &session,
                &token_hash(session_token.expose_secret()),
                &token_hash(page_token.expose_secret()),
                &event,
            )
            .await?;
        // An agent's own key must not learn what the user holds.
        let hide = caller.agent_id().is_some() && !caller.impersonating;
        Ok(CreatedManaged {
            path: (!hide).then_some(path),
            existing_grant_id: if hide { None } else { existing },
            agent_id,
            secret_slug: secret.slug.clone(),
            created: CreatedSession {
                session,
                session_token,
                page_token,
            },
        })
    }

    /// Starts the page's sign-in at the app's identity provider for a managed-secret session:
    /// the same single-use state, PKCE and browser binding as a provider attempt.
    pub(super) async fn start_page_sign_in(
        &self,
        session: &ConnectSession,
        redirect_uri: &str,
    ) -> Result<StartedAttempt> {
        let client = self.sign_in_client(session.app_id).await?;
        let (endpoints, _) = self.ready_endpoints(&client)?;
        self.begin_attempt(
            session,
            SIGN_IN_ATTEMPT,
            Authorize {
                endpoints: &endpoints,
                client_id: &client.client_id,
                scopes: &client.scopes,
                pkce: true,
            },
            redirect_uri,
        )
        .await
    }

    /// The app's sign-in client, ready or not.
    async fn sign_in_client(&self, app: crate::ids::AppId) -> Result<crate::signin::SignInClient> {
        self.store()
            .get_sign_in_client(app)
            .await?
            .ok_or(Error::SignInNotConfigured(
                crate::signin::SignInGap::MissingClientId,
            ))
    }

    /// The callback of the page's sign-in: the code exchanged at the IdP, the ID token verified
    /// as any user token of the app is, and its user required to be the session's. `Ok(false)`:
    /// someone else signed in (the session fails).
    pub(super) async fn finish_page_sign_in(
        &self,
        session: &ConnectSession,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<bool> {
        let client = self.sign_in_client(session.app_id).await?;
        let (endpoints, secret) = self.ready_endpoints(&client)?;
        let secret = SecretString::from(String::from_utf8_lossy(&secret).into_owned());
        let tokens = self
            .oauth()
            .exchange_code(
                &endpoints,
                &client.client_id,
                &secret,
                redirect_uri,
                code,
                Some(verifier),
            )
            .await
            .map_err(|e| Error::Invalid(format!("The sign-in could not be completed: {e}")))?;
        let id_token = tokens
            .id_token
            .ok_or_else(|| Error::Invalid("The identity provider sent no ID token.".into()))?;
        let signed_in = self
            .sign_in(session.app_id, &id_token)
            .await
            .map_err(|_| Error::Invalid("The identity provider's answer was not valid.".into()))?;
        if Some(signed_in.user.id) != session.settings.user_id {
            return Ok(false);
        }
        Ok(self
            .store()
            .verify_connect_session(session.id, self.now())
            .await?)
    }

    /// The page of a managed-secret session once its user signed in, found by the browser's
    /// cookie.
    pub async fn resume_page(&self, browser: &str) -> Result<ResumeView> {
        let session = self.verified_session(browser).await?;
        let managed = session
            .settings
            .managed
            .as_ref()
            .ok_or(Error::NotFound(Entity::ConnectSession))?;
        let secret = self
            .store()
            .get_secret(session.app_id, managed.secret_id)
            .await?
            .ok_or(Error::NotFound(Entity::ConnectSession))?;
        let app_name = self.get_app(session.app_id).await?.name;
        let agent_name = match session.settings.agent_id {
            Some(agent) => {
                let agent = self.agent(session.app_id, agent).await?;
                Some(agent.display_name.unwrap_or(agent.name))
            }
            None => None,
        };
        Ok(ResumeView {
            session,
            secret_name: secret.name,
            app_name,
            agent_name,
        })
    }

    /// The user's answer on the page: their key (key entry, repair) or a confirmation (fast
    /// path). Makes or replaces the key and grant, delegates when the session names an agent,
    /// and ends the session.
    pub async fn submit_managed(
        &self,
        browser: &str,
        value: Option<SecretString>,
    ) -> Result<ManagedOutcome> {
        let session = self.verified_session(browser).await?;
        let managed = session
            .settings
            .managed
            .clone()
            .ok_or(Error::NotFound(Entity::ConnectSession))?;
        let user = session
            .settings
            .user_id
            .ok_or(Error::NotFound(Entity::ConnectSession))?;
        let secret = self
            .store()
            .get_secret(session.app_id, managed.secret_id)
            .await?
            .filter(|s| s.deleted_at.is_none())
            .ok_or(Error::NotFound(Entity::Secret))?;
        let now = self.now();
        let grant = match managed.path {
            ManagedPath::FastPath => {
                let id = managed
                    .existing_grant_id
                    .ok_or(Error::NotFound(Entity::Grant))?;
                self.grant(session.app_id, id).await?
            }
            ManagedPath::KeyEntry | ManagedPath::Repair => {
                let value = value.ok_or_else(|| Error::Invalid("Enter your key.".into()))?;
                let length = value.expose_secret().len();
                ensure(
                    length > 0
                        && length <= MAX_VALUE_BYTES
                        && !value.expose_secret().chars().any(char::is_control),
                    || format!("A key is 1 to {MAX_VALUE_BYTES} characters, on one line."),
                )?;
                match (managed.path, managed.existing_grant_id) {
                    (ManagedPath::Repair, Some(id)) => {
                        self.replace_user_key(&session, id, &value).await?
                    }
                    _ => self.store_user_key(&session, &secret, user, &value).await?,
                }
            }
        };
        let delegation = match session.settings.agent_id {
            Some(agent) => Some(self.delegate_on_consent(&session, &grant, agent).await?),
            None => None,
        };
        let outcome = ConnectOutcome::Completed {
            grants: vec![ConnectedGrant {
                grant_id: grant.id,
                provider_id: secret.slug.clone(),
                scopes: Vec::new(),
                account_identifier: None,
                operation: match managed.path {
                    ManagedPath::Repair => ConnectOperation::Reauth,
                    _ => ConnectOperation::Creation,
                },
                expires_at: grant.expires_at,
                created_at: grant.created_at,
                delegation: delegation.clone(),
            }],
        };
        if !self
            .store()
            .finish_connect_session(session.id, SessionStatus::Completed, &outcome, now)
            .await?
        {
            return Err(Error::ConnectSessionOver(session.status));
        }
        Ok(ManagedOutcome {
            session,
            grant_id: grant.id,
            delegation,
        })
    }

    /// A pending, live managed-secret session whose user signed in from this browser.
    async fn verified_session(&self, browser: &str) -> Result<ConnectSession> {
        let session = self
            .store()
            .connect_session_by_browser(&token_hash(browser))
            .await?
            .ok_or(Error::NotFound(Entity::ConnectSession))?;
        if session.status != SessionStatus::Pending
            || session.is_expired(self.now())
            || session.verified_at.is_none()
            || session.settings.managed.is_none()
        {
            return Err(Error::ConnectSessionOver(session.status));
        }
        Ok(session)
    }

    /// A new key of the user and their grant on it.
    async fn store_user_key(
        &self,
        session: &ConnectSession,
        secret: &ManagedSecret,
        user: crate::ids::UserId,
        value: &SecretString,
    ) -> Result<Grant> {
        let now = self.now();
        let id = UserSecretId::new();
        let key = UserSecret {
            id,
            app_id: session.app_id,
            secret_id: secret.id,
            user_id: user,
            sealed_value: self.seal_user_value(session.app_id, id, 1, now, value)?,
            value_version: 1,
            set_at: now,
            created_at: now,
        };
        let lifetime = session.settings.lifetime.clone();
        let grant = Grant {
            id: GrantId::new(),
            app_id: session.app_id,
            seq: 0,
            credential: CredentialRef::UserSecret {
                secret: secret.id,
                key: id,
            },
            principal: Principal::User(user),
            label: session.settings.label.clone(),
            status: GrantStatus::Active,
            expires_at: lifetime_end(&lifetime, secret.limits.max_grant_ttl_seconds, now)?,
            lifetime,
            parent_grant_id: None,
            depth: 0,
            delegable: false,
            delegated_by: None,
            created_by: CreatedBy::EndUser,
            created_at: now,
            revoked_at: None,
            revoke_reason: None,
            last_used_at: None,
            scope_mismatch: false,
        };
        let credential = Credential::UserSecret {
            template: secret.clone(),
            key: key.clone(),
        };
        let events = [grant_event(
            &grant,
            action::GRANT_CREATED,
            Actor::system(),
            &credential,
        )];
        match self
            .store()
            .insert_user_secret_grant(&key, &grant, &events)
            .await
        {
            Ok(()) => self.grant(session.app_id, grant.id).await,
            Err(StoreError::Conflict(what)) if what == "sibling_label" => Err(
                Error::SiblingLabelConflict(grant.label.clone().unwrap_or_default()),
            ),
            Err(other) => Err(other.into()),
        }
    }

    /// The user's key behind `grant_id`, replaced in place.
    async fn replace_user_key(
        &self,
        session: &ConnectSession,
        grant_id: GrantId,
        value: &SecretString,
    ) -> Result<Grant> {
        let grant = self.grant(session.app_id, grant_id).await?;
        let CredentialRef::UserSecret { key, .. } = grant.credential else {
            return Err(Error::NotFound(Entity::Grant));
        };
        let current = self
            .store()
            .get_user_secret(session.app_id, key)
            .await?
            .ok_or(Error::NotFound(Entity::Grant))?;
        if Some(current.user_id) != session.settings.user_id {
            return Err(Error::NotFound(Entity::Grant));
        }
        let now = self.now();
        let version = current.value_version + 1;
        let replaced = UserSecret {
            sealed_value: self.seal_user_value(session.app_id, key, version, now, value)?,
            value_version: version,
            set_at: now,
            ..current
        };
        let event = AuditEvent::allow(
            session.app_id,
            now,
            action::SECRET_ROTATED,
            Actor::system(),
            Target {
                kind: "user_secret".into(),
                id: key.to_string(),
            },
        )
        .with_details(json!({ "grant_id": grant.id, "value_version": version }));
        if !self.store().replace_user_secret(&replaced, &event).await? {
            return Err(Error::Conflict(
                "the key changed meanwhile; start again".into(),
            ));
        }
        Ok(grant)
    }
}
