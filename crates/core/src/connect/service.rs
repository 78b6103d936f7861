//! Creating and polling Connect sessions, and what the hosted page does: list the providers,
//! start an authorization.

use std::collections::BTreeMap;

use alter_crypto::keys::{mint_token, token_hash};
use alter_crypto::{Binding, ExposeSecret, SecretString};
use serde_json::json;

use crate::audit::{AuditEvent, Target, action};
use crate::caller::Caller;
use crate::credentials::CredentialRef;
use crate::error::{Entity, Error, Result, ensure};
use crate::grants::{GrantLifetime, LifetimeInput, Principal};
use crate::ids::{AgentId, ConnectSessionId, GrantId};
use crate::oauth::{Pkce, authorization_url};
use crate::providers::OAuthProvider;
use crate::scope::Scope;
use crate::time::Timestamp;
use crate::vault::Vault;
use crate::{grants, validate};

use super::{ConnectSession, ConnectSettings, PollAnswer, SessionStatus};

/// How long a session lives: ten minutes.
pub const SESSION_TTL_SECONDS: i64 = 600;
/// Most providers a session may offer.
const MAX_PROVIDERS: usize = 50;
/// The kind bound into a sealed PKCE verifier.
pub(crate) const VERIFIER_KIND: &str = "connect_verifier";

/// What the caller asks for (`create_connect_session`).
#[derive(Debug, Clone, Default)]
pub struct NewConnectSession {
    /// Providers the user may pick; `None`: every configured provider.
    pub allowed_providers: Option<Vec<String>>,
    /// Where the browser goes at the end.
    pub return_url: Option<String>,
    /// The embedding page's origin.
    pub allowed_origin: Option<String>,
    /// The grant's lifetime (`max_ttl_seconds`, `default_ttl_seconds`).
    pub lifetime: LifetimeInput,
    /// Scopes per provider the grant must carry.
    pub required_scopes: BTreeMap<String, Vec<String>>,
    /// The new grant's label.
    pub label: Option<String>,
    /// What the new grant may be used for (`requested_grant.restrictions`).
    pub restrictions: Option<super::RestrictionsInput>,
    /// The grant to repair.
    pub repair_grant_id: Option<String>,
    /// The agent to delegate to (id or name).
    pub agent: Option<String>,
    /// Whether that delegation is delegable.
    pub delegable: Option<bool>,
    /// The user's IdP token: the grant is theirs.
    pub user_token: Option<String>,
    /// Skip the provider list.
    pub direct: bool,
    /// Let the user pick another account.
    pub switch_account: bool,
}

/// A new session, with the two tokens shown once.
#[derive(Debug)]
pub struct CreatedSession {
    /// The session.
    pub session: ConnectSession,
    /// The poll handle.
    pub session_token: SecretString,
    /// The token of the page's URL.
    pub page_token: SecretString,
}

/// What the hosted page shows: who asks, for whom, and where.
#[derive(Debug, Clone)]
pub struct PageView {
    /// The session.
    pub session: ConnectSession,
    /// The app's name.
    pub app_name: String,
    /// The agent the grant is delegated to, by name.
    pub agent_name: Option<String>,
    /// Its providers, configured now, in the session's order.
    pub providers: Vec<OAuthProvider>,
    /// A managed-secret session: the origin of the IdP's sign-in page it sends the user to.
    pub sign_in_origin: Option<String>,
}

/// Where and how an attempt authorizes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Authorize<'a> {
    pub(super) endpoints: &'a crate::providers::ProviderEndpoints,
    pub(super) client_id: &'a str,
    pub(super) scopes: &'a [String],
    pub(super) pkce: bool,
}

/// An authorization started from the page.
#[derive(Debug)]
pub struct StartedAttempt {
    /// Where the browser goes.
    pub url: String,
    /// What the browser keeps (a cookie) and shows the callback.
    pub browser: SecretString,
}

/// The prefix of session tokens (`connect_session` poll handles).
const SESSION_TOKEN_PREFIX: &str = "alter_cs_";
/// The prefix of page tokens.
const PAGE_TOKEN_PREFIX: &str = "alter_cp_";

impl Vault {
    /// `create_connect_session`: checks what the caller asks, then stores a pending session
    /// that lives ten minutes.
    pub async fn create_connect_session(
        &self,
        caller: &Caller,
        new: NewConnectSession,
    ) -> Result<CreatedSession> {
        caller.require(&Scope::Action("connect:initiate"))?;
        let app_id = caller.app_id;
        let now = self.now();
        let configured = self.store().list_providers(app_id).await?;
        let providers = match &new.allowed_providers {
            None => configured.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
            Some(list) => {
                let mut wanted: Vec<String> = Vec::new();
                for name in list {
                    let name = name.trim().to_ascii_lowercase();
                    ensure(!name.is_empty(), || {
                        "allowed_providers holds an empty name".into()
                    })?;
                    if !wanted.contains(&name) {
                        wanted.push(name);
                    }
                }
                ensure(!wanted.is_empty(), || {
                    "allowed_providers must name at least one provider (or be null)".into()
                })?;
                ensure(
                    wanted
                        .iter()
                        .all(|name| configured.iter().any(|p| &p.id == name)),
                    || "allowed_providers names a provider this app has not configured".into(),
                )?;
                wanted
            }
        };
        ensure(!providers.is_empty(), || {
            "this app has no OAuth provider configured".into()
        })?;
        ensure(providers.len() <= MAX_PROVIDERS, || {
            format!("a session offers at most {MAX_PROVIDERS} providers")
        })?;
        self.check_required_scopes(caller, &configured, &providers, &new.required_scopes)?;
        if new.direct {
            ensure(providers.len() == 1, || {
                "direct needs exactly one provider".into()
            })?;
        }
        for (field, url) in [
            ("return_url", &new.return_url),
            ("allowed_origin", &new.allowed_origin),
        ] {
            if let Some(url) = url {
                // The vault redirects users there: an agent may not pick where.
                ensure(caller.agent_id().is_none(), || {
                    format!("agents cannot set {field}; the app sets where users return")
                })?;
                check_browser_url(field, url)?;
            }
        }
        let user = match &new.user_token {
            Some(token) => Some(self.sign_in(app_id, token).await?),
            None => None,
        };
        // An agent's session always delegates to the agent itself, by a user's consent: an
        // agent never makes grants the app owns.
        if (new.agent.is_some() || caller.agent_id().is_some()) && user.is_none() {
            return Err(Error::AgentRequiresUserToken);
        }
        let agent_id = match (&new.agent, caller.agent_id()) {
            (Some(name), _) => Some(self.session_agent(caller, name).await?),
            (None, own) => own,
        };
        let repair_grant_id = match &new.repair_grant_id {
            Some(text) => {
                ensure(providers.len() == 1, || {
                    "repair_grant_id needs exactly one provider".into()
                })?;
                ensure(
                    new.label.is_none() && agent_id.is_none() && !new.switch_account,
                    || {
                        "repair_grant_id does not go with requested_grant, agent or switch_account"
                            .into()
                    },
                )?;
                let id = GrantId::parse_lenient(text).ok_or(Error::NotFound(Entity::Grant))?;
                let grant = self.grant(app_id, id).await?;
                let principal_matches = match (&grant.principal, &user) {
                    (Principal::User(owner), Some(user)) => *owner == user.user.id,
                    (Principal::System, None) => true,
                    _ => false,
                };
                let provider_matches = match grant.credential {
                    CredentialRef::Connection(_) => {
                        self.credential_of(&grant).await?.provider_id() == providers[0]
                    }
                    CredentialRef::ManagedSecret(_) | CredentialRef::UserSecret { .. } => false,
                };
                // Another user's grant, or one of another kind, looks like no grant.
                if !(principal_matches && provider_matches && grant.parent_grant_id.is_none()) {
                    return Err(Error::NotFound(Entity::Grant));
                }
                Some(id)
            }
            None => None,
        };
        let lifetime = grants::check_lifetime(new.lifetime, now)?;
        ensure(lifetime.expires_at.is_none(), || {
            "a Connect session's grant_policy takes only max_ttl_seconds and default_ttl_seconds"
                .into()
        })?;
        // Restrictions come with a label (requested_grant), so never with a repair.
        ensure(new.restrictions.is_none() || new.label.is_some(), || {
            "restrictions come inside requested_grant, with its label".into()
        })?;
        let session_id = ConnectSessionId::new();
        let restrictions = match new.restrictions {
            Some(input) => {
                let parsed = super::GrantRestrictions::parse(input)?;
                self.check_restrictions(app_id, session_id, &parsed)?;
                Some(parsed)
            }
            None => None,
        };
        let session = ConnectSession {
            id: session_id,
            app_id,
            settings: ConnectSettings {
                providers,
                return_url: new.return_url,
                allowed_origin: new.allowed_origin,
                lifetime: GrantLifetime { ..lifetime },
                required_scopes: new.required_scopes,
                label: validate::label(new.label.as_deref())?,
                restrictions,
                repair_grant_id,
                agent_id,
                delegable: new.delegable.unwrap_or(false),
                user_id: user.map(|u| u.user.id),
                direct: new.direct,
                switch_account: new.switch_account,
                managed: None,
            },
            status: SessionStatus::Pending,
            declined: Vec::new(),
            outcome: None,
            verified_at: None,
            created_at: now,
            expires_at: now.plus_seconds(SESSION_TTL_SECONDS),
        };
        let session_token = mint_token(SESSION_TOKEN_PREFIX)?;
        let page_token = mint_token(PAGE_TOKEN_PREFIX)?;
        let event = AuditEvent {
            target: Some(session_target(&session)),
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
            "providers": session.settings.providers,
            "user_id": session.settings.user_id,
            "agent_id": session.settings.agent_id,
            "repair_grant_id": session.settings.repair_grant_id,
            "restricted": session.settings.restrictions.is_some(),
        }));
        self.store()
            .insert_connect_session(
                &session,
                &token_hash(session_token.expose_secret()),
                &token_hash(page_token.expose_secret()),
                &event,
            )
            .await?;
        Ok(CreatedSession {
            session,
            session_token,
            page_token,
        })
    }

    /// `poll_connect_session`: where the session is. An unknown token, another app's session
    /// or one past its life answers `Expired`.
    pub async fn poll_connect_session(
        &self,
        caller: &Caller,
        session_token: &str,
    ) -> Result<PollAnswer> {
        caller.require(&Scope::Action("connect:initiate"))?;
        let session = self
            .store()
            .connect_session_by_poll_hash(&token_hash(session_token))
            .await?
            .filter(|s| s.app_id == caller.app_id);
        let Some(session) = session else {
            return Ok(PollAnswer::Expired);
        };
        Ok(match (session.status, session.outcome) {
            (SessionStatus::Completed, Some(super::ConnectOutcome::Completed { grants })) => {
                PollAnswer::Completed(grants)
            }
            (SessionStatus::Failed, Some(super::ConnectOutcome::Failed { code, message })) => {
                PollAnswer::Failed { code, message }
            }
            (SessionStatus::Pending | SessionStatus::Exchanging, _)
                if session.expires_at > self.now() =>
            {
                PollAnswer::Pending(session.declined)
            }
            _ => PollAnswer::Expired,
        })
    }

    /// Forgets Connect sessions that expired over an hour ago (a poll for one answers
    /// `expired` either way).
    pub async fn prune_connect_sessions(&self) -> Result<u64> {
        let before = self.now().plus_seconds(-3600);
        Ok(self.store().prune_connect_sessions(before).await?)
    }

    /// The hosted page of a session: it and its providers, while it is pending.
    pub async fn connect_page(&self, page_token: &str) -> Result<PageView> {
        let session = self.page_session(page_token).await?;
        let configured = self.store().list_providers(session.app_id).await?;
        let providers = session
            .settings
            .providers
            .iter()
            .filter_map(|id| configured.iter().find(|p| &p.id == id).cloned())
            .collect();
        let app_name = self.get_app(session.app_id).await?.name;
        let agent_name = match session.settings.agent_id {
            Some(agent) => {
                let agent = self.agent(session.app_id, agent).await?;
                Some(agent.display_name.unwrap_or(agent.name))
            }
            None => None,
        };
        let sign_in_origin = match &session.settings.managed {
            Some(_) => self
                .store()
                .get_sign_in_client(session.app_id)
                .await?
                .and_then(|c| c.authorize_url)
                .and_then(|u| url::Url::parse(&u).ok())
                .map(|u| u.origin().ascii_serialization()),
            None => None,
        };
        Ok(PageView {
            session,
            app_name,
            agent_name,
            providers,
            sign_in_origin,
        })
    }

    /// Starts the authorization at `provider_id` for the page's session: a fresh state, PKCE
    /// verifier and browser binding replace any attempt in flight. Returns the URL to send the
    /// browser to and the binding the browser must keep (a cookie) for the callback.
    pub async fn start_connect(
        &self,
        page_token: &str,
        provider_id: &str,
        redirect_uri: &str,
    ) -> Result<StartedAttempt> {
        let session = self.page_session(page_token).await?;
        // A managed-secret session's page first signs its user in at the app's IdP.
        if session.settings.managed.is_some() {
            ensure(provider_id == super::SIGN_IN_ATTEMPT, || {
                "this session signs you in first".into()
            })?;
            return self.start_page_sign_in(&session, redirect_uri).await;
        }
        ensure(
            session.settings.providers.iter().any(|p| p == provider_id),
            || "this session does not offer that provider".into(),
        )?;
        let provider = self.get_provider(session.app_id, provider_id).await?;
        let mut scopes = provider.scopes.clone();
        for scope in session
            .settings
            .required_scopes
            .get(provider_id)
            .into_iter()
            .flatten()
        {
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        let mut endpoints = provider.endpoints.clone();
        if session.settings.switch_account {
            endpoints
                .extra_authorize_params
                .insert("prompt".into(), "select_account".into());
        }
        self.begin_attempt(
            &session,
            provider_id,
            Authorize {
                endpoints: &endpoints,
                client_id: &provider.client_id,
                scopes: &scopes,
                pkce: provider.endpoints.pkce,
            },
            redirect_uri,
        )
        .await
    }

    /// Starts an authorization for `session` (replacing any in flight): a fresh state, PKCE
    /// verifier (sealed to the session) and browser binding, stored under `attempt`. Returns
    /// where the browser goes and the binding it keeps.
    pub(super) async fn begin_attempt(
        &self,
        session: &ConnectSession,
        attempt: &str,
        authorize: Authorize<'_>,
        redirect_uri: &str,
    ) -> Result<StartedAttempt> {
        let pkce = Pkce::new().map_err(|_| Error::Crypto(alter_crypto::CryptoError::Internal))?;
        let state = mint_token("")?;
        let browser = mint_token("")?;
        let now = self.now();
        let sealed_verifier = self.seal_verifier(session, now, pkce.verifier())?;
        let url = authorization_url(
            authorize.endpoints,
            authorize.client_id,
            redirect_uri,
            authorize.scopes,
            state.expose_secret(),
            authorize.pkce.then_some(&pkce),
        )
        .map_err(|e| Error::Invalid(e.to_string()))?;
        let started = self
            .store()
            .start_connect_attempt(
                session.id,
                &token_hash(state.expose_secret()),
                &token_hash(browser.expose_secret()),
                attempt,
                &sealed_verifier,
                now,
            )
            .await?;
        if !started {
            return Err(Error::ConnectSessionOver(session.status));
        }
        Ok(StartedAttempt {
            url: url.to_string(),
            browser,
        })
    }

    /// A pending, live session by its page token; anything else is "not found".
    async fn page_session(&self, page_token: &str) -> Result<ConnectSession> {
        let session = self
            .store()
            .connect_session_by_page_hash(&token_hash(page_token))
            .await?
            .ok_or(Error::NotFound(Entity::ConnectSession))?;
        if session.status != SessionStatus::Pending || session.is_expired(self.now()) {
            return Err(Error::ConnectSessionOver(session.status));
        }
        Ok(session)
    }

    /// `required_scopes` may only name offered providers and scopes their configuration asks
    /// for (`scope_not_allowed` otherwise); an agent's session only scopes its allowlist names
    /// for the provider.
    fn check_required_scopes(
        &self,
        caller: &Caller,
        configured: &[OAuthProvider],
        offered: &[String],
        required: &BTreeMap<String, Vec<String>>,
    ) -> Result<()> {
        let now = self.now();
        for (provider, scopes) in required {
            ensure(offered.contains(provider), || {
                "required_scopes names a provider the session does not offer".into()
            })?;
            let allowed = configured
                .iter()
                .find(|p| &p.id == provider)
                .map(|p| p.scopes.as_slice())
                .unwrap_or_default();
            let agent_allows = |scope: &String| match &caller.agent {
                Some(agent) => agent
                    .allowlist(now)
                    .providers
                    .get(provider)
                    .is_some_and(|list| list.is_empty() || list.contains(scope)),
                None => true,
            };
            let refused: Vec<String> = scopes
                .iter()
                .filter(|scope| !allowed.contains(scope) || !agent_allows(scope))
                .cloned()
                .collect();
            if !refused.is_empty() {
                return Err(Error::ScopeNotAllowed {
                    provider_id: provider.clone(),
                    scopes: refused,
                });
            }
        }
        Ok(())
    }

    /// The agent a session delegates to, by id or name; an agent key names only itself.
    pub(super) async fn session_agent(&self, caller: &Caller, name: &str) -> Result<AgentId> {
        let agent = match AgentId::parse_lenient(name) {
            Some(id) => self.agent(caller.app_id, id).await.ok(),
            None => self.agent_by_name(caller, name).await?,
        }
        .filter(|agent| agent.status == crate::agents::AgentStatus::Active)
        .ok_or(Error::NotFound(Entity::Agent))?;
        if let Some(own) = caller.agent_id()
            && own != agent.id
        {
            return Err(Error::AgentCannotDelegateToOtherAgent);
        }
        Ok(agent.id)
    }

    pub(super) fn seal_verifier(
        &self,
        session: &ConnectSession,
        at: Timestamp,
        verifier: &str,
    ) -> Result<Vec<u8>> {
        let (app, record) = (session.app_id.to_string(), session.id.to_string());
        Ok(self.keyring().seal_versioned(
            verifier_binding(&app, &record),
            &at.micros().to_string(),
            verifier.as_bytes(),
        )?)
    }

    pub(super) fn open_verifier(
        &self,
        session: &ConnectSession,
        at: Timestamp,
        sealed: &[u8],
    ) -> Result<String> {
        let (app, record) = (session.app_id.to_string(), session.id.to_string());
        let plain = self.keyring().open_versioned(
            verifier_binding(&app, &record),
            &at.micros().to_string(),
            sealed,
        )?;
        String::from_utf8(plain.to_vec())
            .map_err(|_| Error::Crypto(alter_crypto::CryptoError::CannotOpen))
    }
}

fn verifier_binding<'a>(app: &'a str, record: &'a str) -> Binding<'a> {
    Binding {
        kind: VERIFIER_KIND,
        app_id: app,
        record_id: record,
    }
}

pub(super) fn session_target(session: &ConnectSession) -> Target {
    Target {
        kind: "connect_session".into(),
        id: session.id.to_string(),
    }
}

/// A URL a browser is sent to or an origin: `https`, or `http` on a loopback host; no
/// userinfo, at most 2,048 characters.
pub(super) fn check_browser_url(field: &str, text: &str) -> Result<()> {
    let invalid = || {
        Error::Invalid(format!(
            "{field} must be an https URL (http only on loopback)"
        ))
    };
    if text.len() > 2048 {
        return Err(invalid());
    }
    let url = url::Url::parse(text).map_err(|_| invalid())?;
    let loopback = matches!(
        url.host(),
        Some(url::Host::Domain("localhost"))
            | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
            | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
    );
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !scheme_ok || !url.username().is_empty() || url.password().is_some() || url.host().is_none()
    {
        return Err(invalid());
    }
    Ok(())
}
