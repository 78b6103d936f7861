//! The provider's redirect back (`/oauth/callback`): claims the attempt by its state (once),
//! checks the issuer (RFC 9207), exchanges the code with the PKCE verifier, and makes or
//! repairs the grant. Every failure ends the session with a stable code and creates nothing.

use alter_crypto::SecretString;
use alter_crypto::keys::token_hash;
use serde_json::json;

use crate::audit::{Actor, AuditEvent, action};
use crate::connections::{Connection, ConnectionStatus, TokenPair, TokenSlot, normalized_scopes};
use crate::credentials::CredentialRef;
use crate::delegations::DelegateOptions;
use crate::error::{Error, Result};
use crate::grants::{CreatedBy, Grant, GrantStatus, Principal, grant_event, lifetime_end};
use crate::identity::SignedInUser;
use crate::ids::{ConnectionId, GrantId};
use crate::oauth::{OAuthError, TokenSet};
use crate::ports::StoreError;
use crate::providers::OAuthProvider;
use crate::subject::Subject;
use crate::time::Timestamp;
use crate::vault::Vault;

use super::service::session_target;
use super::{
    ClaimedAttempt, ConnectOperation, ConnectOutcome, ConnectSession, ConnectedDelegation,
    ConnectedGrant, Declined, SessionStatus,
};

/// What the provider sent back (query parameters of the redirect), and the browser's binding
/// cookie.
#[derive(Clone, Default)]
pub struct CallbackParams {
    /// `state`.
    pub state: Option<String>,
    /// `code`.
    pub code: Option<String>,
    /// `error` (`access_denied` when the user declined).
    pub error: Option<String>,
    /// `iss` (RFC 9207).
    pub iss: Option<String>,
    /// The cookie the browser got when it started the attempt.
    pub browser: Option<String>,
}

impl std::fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackParams")
            .field("error", &self.error)
            .field("iss", &self.iss)
            .finish_non_exhaustive()
    }
}

/// How the callback ended, for the page the browser sees.
#[derive(Debug, Clone)]
pub enum CallbackResult {
    /// The grants were made or repaired.
    Connected {
        /// The session.
        session: Box<ConnectSession>,
        /// What was made.
        grants: Vec<ConnectedGrant>,
    },
    /// The user declined at the provider; the session may offer others.
    Declined {
        /// The session.
        session: Box<ConnectSession>,
        /// Whether it is over (every provider declined).
        over: bool,
    },
    /// The user of a managed-secret session signed in at the IdP: the page continues.
    SignedIn {
        /// The session.
        session: Box<ConnectSession>,
    },
    /// The session ended in an error.
    Failed {
        /// The session, when the state named one.
        session: Option<Box<ConnectSession>>,
        /// Stable code.
        code: String,
        /// For people.
        message: String,
    },
}

/// A failure of the flow: its stable code and message.
struct Failure {
    code: &'static str,
    message: String,
}

impl Failure {
    fn new(code: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl Vault {
    /// Handles the provider's redirect for the attempt `params.state` names.
    pub async fn finish_connect(
        &self,
        params: CallbackParams,
        redirect_uri: &str,
    ) -> Result<CallbackResult> {
        let unknown = || CallbackResult::Failed {
            session: None,
            code: "invalid_state".into(),
            message: "This sign-in link is not valid, or was used already.".into(),
        };
        let Some(state) = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= 512)
        else {
            return Ok(unknown());
        };
        // The attempt is bound to the browser that started it: a state (or an authorization
        // URL) carried to another browser completes nothing.
        let Some(browser) = params
            .browser
            .as_deref()
            .filter(|b| !b.is_empty() && b.len() <= 512)
        else {
            return Ok(unknown());
        };
        let now = self.now();
        let Some(attempt) = self
            .store()
            .claim_connect_attempt(&token_hash(state), &token_hash(browser), now)
            .await?
        else {
            return Ok(unknown());
        };
        let session = attempt.session.clone();
        if session.is_expired(now) {
            return Ok(CallbackResult::Failed {
                session: Some(Box::new(session)),
                code: "session_expired".into(),
                message: "This Connect session has expired; start again from the app.".into(),
            });
        }
        if attempt.provider_id == super::SIGN_IN_ATTEMPT {
            return self.page_signed_in(attempt, &params, redirect_uri).await;
        }
        if let Some(error) = params.error.as_deref() {
            return self.declined(attempt, error, now).await;
        }
        match self.connect_attempt(&attempt, &params, redirect_uri).await {
            Ok(grants) => {
                let outcome = ConnectOutcome::Completed {
                    grants: grants.clone(),
                };
                self.store()
                    .finish_connect_session(
                        session.id,
                        SessionStatus::Completed,
                        &outcome,
                        self.now(),
                    )
                    .await?;
                Ok(CallbackResult::Connected {
                    session: Box::new(session),
                    grants,
                })
            }
            Err(Ok(failure)) => self.fail(session, failure).await,
            Err(Err(error)) => Err(error),
        }
    }

    /// The IdP's redirect after the page's sign-in: the session continues only if its own
    /// user signed in.
    async fn page_signed_in(
        &self,
        attempt: ClaimedAttempt,
        params: &CallbackParams,
        redirect_uri: &str,
    ) -> Result<CallbackResult> {
        let session = attempt.session.clone();
        if params.error.is_some() {
            return self
                .fail(
                    session,
                    Failure::new("connect_denied", "The sign-in was cancelled."),
                )
                .await;
        }
        let idp = self.store().get_idp(session.app_id).await?;
        if let (Some(idp), Some(iss)) = (&idp, &params.iss)
            && &idp.issuer != iss
        {
            return self
                .fail(
                    session,
                    Failure::new(
                        "connect_flow_error",
                        "The sign-in answer came from another identity provider than the app's.",
                    ),
                )
                .await;
        }
        let Some(code) = params
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 4096)
        else {
            return self
                .fail(
                    session,
                    Failure::new("connect_flow_error", "The sign-in sent no code."),
                )
                .await;
        };
        let verifier =
            self.open_verifier(&session, attempt.started_at, &attempt.sealed_verifier)?;
        match self
            .finish_page_sign_in(&session, code, &verifier, redirect_uri)
            .await
        {
            Ok(true) => Ok(CallbackResult::SignedIn {
                session: Box::new(session),
            }),
            Ok(false) => {
                self.fail(
                    session,
                    Failure::new(
                        "connect_flow_error",
                        "You signed in as someone else than the person this link is for.",
                    ),
                )
                .await
            }
            Err(Error::Invalid(message)) => {
                self.fail(
                    session,
                    Failure {
                        code: "connect_flow_error",
                        message,
                    },
                )
                .await
            }
            Err(other) => Err(other),
        }
    }

    /// Records a refusal at the provider: the session stays open for its other providers,
    /// and fails with `connect_denied` once the user declined at every one.
    async fn declined(
        &self,
        attempt: ClaimedAttempt,
        error: &str,
        now: Timestamp,
    ) -> Result<CallbackResult> {
        let session = attempt.session;
        if error != "access_denied" {
            let failure = Failure::new(
                "connect_flow_error",
                format!("The provider answered with an error ({}).", short(error)),
            );
            return self.fail(session, failure).await;
        }
        let mut declined = session.declined.clone();
        if !declined
            .iter()
            .any(|d| d.provider_id == attempt.provider_id)
        {
            declined.push(Declined {
                provider_id: attempt.provider_id.clone(),
                error_code: "connect_denied".into(),
                declined_at: now,
            });
        }
        let over = session
            .settings
            .providers
            .iter()
            .all(|p| declined.iter().any(|d| &d.provider_id == p));
        self.store()
            .set_connect_declined(session.id, &declined)
            .await?;
        let session = ConnectSession {
            declined,
            ..session
        };
        if over {
            self.fail(
                session.clone(),
                Failure::new("connect_denied", "The user declined the connection."),
            )
            .await?;
        }
        Ok(CallbackResult::Declined {
            session: Box::new(session),
            over,
        })
    }

    /// Ends the session with `failure`, audited.
    async fn fail(&self, session: ConnectSession, failure: Failure) -> Result<CallbackResult> {
        let outcome = ConnectOutcome::Failed {
            code: failure.code.into(),
            message: failure.message.clone(),
        };
        self.store()
            .finish_connect_session(session.id, SessionStatus::Failed, &outcome, self.now())
            .await?;
        let event = AuditEvent {
            target: Some(session_target(&session)),
            ..AuditEvent::deny(
                session.app_id,
                self.now(),
                action::CONNECT_SESSION_FAILED,
                Actor::system(),
                failure.code,
            )
        };
        self.store().append_event(&event).await?;
        Ok(CallbackResult::Failed {
            session: Some(Box::new(session)),
            code: failure.code.into(),
            message: failure.message,
        })
    }

    /// Exchanges the code and makes or repairs the grant. `Err(Ok)`: the flow failed (nothing
    /// was made); `Err(Err)`: the vault failed.
    async fn connect_attempt(
        &self,
        attempt: &ClaimedAttempt,
        params: &CallbackParams,
        redirect_uri: &str,
    ) -> std::result::Result<Vec<ConnectedGrant>, std::result::Result<Failure, Error>> {
        let session = &attempt.session;
        let provider = self
            .store()
            .get_provider(session.app_id, &attempt.provider_id)
            .await
            .map_err(|e| Err(e.into()))?
            .ok_or_else(|| {
                Ok(Failure::new(
                    "provider_configuration_unavailable",
                    "The provider is no longer configured.",
                ))
            })?;
        if let (Some(expected), Some(got)) = (&provider.endpoints.issuer, &params.iss)
            && expected != got
        {
            return Err(Ok(Failure::new(
                "connect_flow_error",
                "The authorization response came from another issuer than the provider's.",
            )));
        }
        let Some(code) = params
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 4096)
        else {
            return Err(Ok(Failure::new(
                "connect_flow_error",
                "The provider sent no authorization code.",
            )));
        };
        // What the grant needs is checked before the code is spent: a failure after the grant
        // is stored would leave a grant nobody is told about.
        self.session_parties_live(session).await?;
        let verifier = self
            .open_verifier(session, attempt.started_at, &attempt.sealed_verifier)
            .map_err(Err)?;
        let client_secret = self.open_client_secret(&provider).map_err(Err)?;
        let client_secret =
            SecretString::from(String::from_utf8_lossy(&client_secret).into_owned());
        let tokens = self
            .oauth()
            .exchange_code(
                &provider.endpoints,
                &provider.client_id,
                &client_secret,
                redirect_uri,
                code,
                provider.endpoints.pkce.then_some(verifier.as_str()),
            )
            .await
            .map_err(|e| Ok(exchange_failure(e)))?;
        let account = match self
            .oauth()
            .account_identifier(&provider.endpoints, &tokens)
            .await
        {
            Ok(account) => account,
            Err(error) => {
                tracing::warn!(provider = %provider.id, %error, "the account lookup failed");
                None
            }
        };
        let scopes = normalized_scopes(
            tokens
                .scope
                .clone()
                .unwrap_or_else(|| provider.scopes.clone()),
        );
        if let Some(required) = session.settings.required_scopes.get(&provider.id) {
            let missing: Vec<&String> = required.iter().filter(|s| !scopes.contains(s)).collect();
            if !missing.is_empty() {
                return Err(Ok(Failure::new(
                    "connect_flow_error",
                    format!(
                        "The provider granted fewer scopes than required (missing: {}).",
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                )));
            }
        }
        let grant = self
            .store_connection(session, &provider, tokens, account, scopes)
            .await
            .map_err(|e| match e {
                Error::Invalid(message) => Ok(Failure {
                    code: "connect_flow_error",
                    message,
                }),
                other => Err(other),
            })?;
        Ok(vec![grant])
    }

    /// Makes the grant, or gives the grant already holding this account (or the one being
    /// repaired) the new tokens; then delegates it when the session names an agent.
    async fn store_connection(
        &self,
        session: &ConnectSession,
        provider: &OAuthProvider,
        tokens: TokenSet,
        account: Option<String>,
        scopes: Vec<String>,
    ) -> Result<ConnectedGrant> {
        let now = self.now();
        let principal = match session.settings.user_id {
            Some(user) => Principal::User(user),
            None => Principal::System,
        };
        let pair = TokenPair {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
        };
        let access_expires_at = tokens.expires_in.map(|s| now.plus_seconds(s.max(0)));
        let existing = match session.settings.repair_grant_id {
            Some(id) => Some(self.grant(session.app_id, id).await?),
            None if session.settings.label.is_none() && account.is_some() => {
                self.store()
                    .find_connection_grant(
                        session.app_id,
                        &principal,
                        &provider.id,
                        account.as_deref().unwrap_or_default(),
                        now,
                    )
                    .await?
            }
            None => None,
        };
        let (grant, operation) = match existing {
            Some(grant) => {
                let CredentialRef::Connection(connection_id) = grant.credential else {
                    return Err(Error::Invalid(
                        "the grant to repair is not an OAuth grant".into(),
                    ));
                };
                let current = self
                    .store()
                    .get_connection(session.app_id, connection_id)
                    .await?
                    .ok_or_else(|| {
                        Error::Invalid("the grant to repair has no connection".into())
                    })?;
                // A known account is only replaced by the same account, confirmed.
                if let Some(had) = &current.account_identifier
                    && account.as_ref() != Some(had)
                {
                    return Err(Error::Invalid(
                        "The account connected is not the account of the grant to repair.".into(),
                    ));
                }
                let slot = TokenSlot {
                    app_id: session.app_id,
                    connection_id,
                    version: current.token_version + 1,
                    at: now,
                };
                let renewed = Connection {
                    sealed_tokens: self.seal_tokens(slot, &pair)?,
                    token_version: slot.version,
                    tokens_at: now,
                    access_expires_at,
                    scopes: scopes.clone(),
                    account_identifier: account.clone().or(current.account_identifier.clone()),
                    // (equal to the stored one whenever that is known, checked above)
                    status: ConnectionStatus::Active,
                    updated_at: now,
                    ..current
                };
                // (Unreachable with restrictions today: they come with a label, and a label
                // never reconnects; should that change, the grant is restricted first.)
                let attached = match &session.settings.restrictions {
                    Some(r) => {
                        self.attach_restrictions(session.app_id, session.id, grant.id, r)
                            .await?
                    }
                    None => Vec::new(),
                };
                let event = connection_event(&renewed, action::CONNECTION_RECONNECTED, grant.id);
                if !self.store().reconnect(&renewed, &event).await? {
                    self.drop_restrictions(session.app_id, session.id, &attached)
                        .await;
                    return Err(Error::Invalid(
                        "The grant to repair was revoked meanwhile; start again.".into(),
                    ));
                }
                (grant, ConnectOperation::Reauth)
            }
            None => {
                let connection_id = ConnectionId::new();
                let slot = TokenSlot {
                    app_id: session.app_id,
                    connection_id,
                    version: 1,
                    at: now,
                };
                let connection = Connection {
                    id: connection_id,
                    app_id: session.app_id,
                    provider_id: provider.id.clone(),
                    account_identifier: account.clone(),
                    scopes: scopes.clone(),
                    sealed_tokens: self.seal_tokens(slot, &pair)?,
                    token_version: 1,
                    tokens_at: now,
                    access_expires_at,
                    status: ConnectionStatus::Active,
                    created_at: now,
                    updated_at: now,
                };
                let lifetime = session.settings.lifetime.clone();
                // The grant's restrictions are stored before the grant: it is never usable
                // without them.
                let grant_id = GrantId::new();
                let attached = match &session.settings.restrictions {
                    Some(r) => {
                        self.attach_restrictions(session.app_id, session.id, grant_id, r)
                            .await?
                    }
                    None => Vec::new(),
                };
                let grant = Grant {
                    id: grant_id,
                    app_id: session.app_id,
                    seq: 0,
                    credential: CredentialRef::Connection(connection_id),
                    principal,
                    label: session.settings.label.clone(),
                    status: GrantStatus::Active,
                    expires_at: lifetime_end(&lifetime, None, now)?,
                    lifetime,
                    parent_grant_id: None,
                    depth: 0,
                    delegable: false,
                    delegated_by: None,
                    created_by: if session.settings.user_id.is_some() {
                        CreatedBy::EndUser
                    } else {
                        CreatedBy::Developer
                    },
                    created_at: now,
                    revoked_at: None,
                    revoke_reason: None,
                    last_used_at: None,
                    scope_mismatch: false,
                };
                let events = [
                    connection_event(&connection, action::CONNECTION_CREATED, grant.id),
                    grant_event(
                        &grant,
                        action::GRANT_CREATED,
                        Actor::system(),
                        &crate::credentials::Credential::Connection(connection.clone()),
                    ),
                ];
                let inserted = self
                    .store()
                    .insert_connection_grant(&connection, &grant, &events)
                    .await;
                if inserted.is_err() {
                    self.drop_restrictions(session.app_id, session.id, &attached)
                        .await;
                }
                match inserted {
                    Ok(()) => {}
                    Err(StoreError::Conflict(what)) if what == "sibling_label" => {
                        return Err(Error::Invalid(format!(
                            "The label {:?} is in use by another grant.",
                            grant.label.clone().unwrap_or_default()
                        )));
                    }
                    Err(other) => return Err(other.into()),
                }
                (grant, ConnectOperation::Creation)
            }
        };
        let delegation = match session.settings.agent_id {
            Some(agent) => Some(self.delegate_on_consent(session, &grant, agent).await?),
            None => None,
        };
        Ok(ConnectedGrant {
            grant_id: grant.id,
            provider_id: provider.id.clone(),
            scopes,
            account_identifier: account,
            operation,
            expires_at: grant.expires_at,
            created_at: grant.created_at,
            delegation,
        })
    }

    /// Delegates the new grant to the session's agent by the user's consent; a limit that
    /// refuses it leaves the grant made and says so.
    pub(super) async fn delegate_on_consent(
        &self,
        session: &ConnectSession,
        grant: &Grant,
        agent: crate::ids::AgentId,
    ) -> Result<ConnectedDelegation> {
        let Some(user_id) = session.settings.user_id else {
            return Err(Error::AgentRequiresUserToken);
        };
        let user = self
            .store()
            .get_user(session.app_id, user_id)
            .await?
            .filter(|u| u.status == crate::identity::UserStatus::Active);
        let Some(user) = user else {
            return Ok(ConnectedDelegation {
                agent_id: agent,
                delegable: false,
                policy_refused: true,
            });
        };
        let signed_in = SignedInUser {
            groups: user.groups.clone(),
            user,
        };
        let subject = Subject::User {
            app: session.app_id,
            user: &signed_in,
        };
        let options = DelegateOptions {
            ttl_seconds: None,
            delegable: Some(session.settings.delegable),
            scope_constraint: None,
        };
        let refused = match self.delegate(&subject, grant.id, agent, options).await {
            Ok(_) => false,
            Err(
                Error::LimitViolation(_)
                | Error::GrantNotDelegable(_)
                | Error::DelegationInvalid(_),
            ) => true,
            Err(other) => return Err(other),
        };
        Ok(ConnectedDelegation {
            agent_id: agent,
            delegable: session.settings.delegable && !refused,
            policy_refused: refused,
        })
    }
}

fn connection_event(connection: &Connection, what: &str, grant: GrantId) -> AuditEvent {
    AuditEvent::allow(
        connection.app_id,
        connection.updated_at,
        what,
        Actor::system(),
        crate::audit::Target {
            kind: "connection".into(),
            id: connection.id.to_string(),
        },
    )
    .with_details(json!({
        "provider_id": connection.provider_id,
        "account_identifier": connection.account_identifier,
        "scopes": connection.scopes,
        "token_version": connection.token_version,
        "grant_id": grant,
    }))
}

impl Vault {
    /// Fails the flow (before the code is exchanged) if the session's user or agent is gone
    /// or paused.
    async fn session_parties_live(
        &self,
        session: &ConnectSession,
    ) -> std::result::Result<(), std::result::Result<Failure, Error>> {
        if let Some(user) = session.settings.user_id {
            let found = self
                .store()
                .get_user(session.app_id, user)
                .await
                .map_err(|e| Err(e.into()))?;
            match found {
                None => {
                    return Err(Ok(Failure::new(
                        "connect_flow_error",
                        "The user this connection is for no longer exists.",
                    )));
                }
                // Deactivated (by an IdP event or the operator) while the flow ran.
                Some(user) if user.status != crate::identity::UserStatus::Active => {
                    return Err(Ok(Failure::new(
                        "connect_flow_error",
                        "The user this connection is for is no longer active.",
                    )));
                }
                Some(_) => {}
            }
        }
        if let Some(agent) = session.settings.agent_id {
            let live = match self.agent(session.app_id, agent).await {
                Ok(agent) => agent.status == crate::agents::AgentStatus::Active,
                Err(Error::NotFound(_)) => false,
                Err(other) => return Err(Err(other)),
            };
            if !live {
                return Err(Ok(Failure::new(
                    "connect_flow_error",
                    "The agent this connection is for is paused or deleted.",
                )));
            }
        }
        Ok(())
    }
}

/// The session error a failed code exchange ends in.
fn exchange_failure(error: OAuthError) -> Failure {
    match error {
        OAuthError::InvalidClient(_) => Failure::new(
            "invalid_client",
            "The provider refused the app's client credentials.",
        ),
        OAuthError::Config(_) => Failure::new(
            "provider_configuration_unavailable",
            "The provider's configuration cannot be used.",
        ),
        other => Failure::new(
            "connect_flow_error",
            format!("The authorization code could not be exchanged: {other}"),
        ),
    }
}

/// At most 64 characters of a provider's text, for a message.
fn short(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}
