//! Link-based end-user sign-in (protocol part 2 §7.3–7.5): the vault runs an OpenID Connect
//! code flow (PKCE S256, `nonce`) against the app's identity provider with the app's sign-in
//! client, and hands the ID token it receives to the app that started the session, once.
//!
//! A session is one row. The app holds the **session token**; the browser carries a separate
//! random **state** (never the session token, which would then sit in browser history and IdP
//! logs). Only SHA-256 hashes of both are stored, so a session is looked up by hash and a
//! leaked database names no live session. The PKCE verifier and the ID token are sealed to the
//! session. The callback claims a session once (`pending` → `exchanging`, conditional on the
//! state hash, the status and the expiry), so a replayed callback finds nothing. The ID token
//! goes out on the first poll that sees the session completed, and is erased then (`collected`);
//! later polls answer `expired`. The network steps (discovery, code exchange) are the server's;
//! this module decides and stores.

use alter_crypto::{Binding, ExposeSecret, SecretString, Zeroizing};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::audit::{Actor, AuditEvent, Target, action};
use crate::caller::Caller;
use crate::error::{Entity, Error, Result, ensure};
use crate::identity::{AppUser, TokenError};
use crate::ids::{AppId, AuthSessionId, UserId};
use crate::providers::{AccountSource, ProviderEndpoints, RefreshBehaviour};
use crate::time::Timestamp;
use crate::validate;
use crate::vault::Vault;

/// How long a sign-in session waits for the user.
pub const SESSION_LIFETIME_SECONDS: i64 = 600;
/// Scopes asked for unless the operator names others.
pub const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];
/// Prefix of session tokens.
const SESSION_TOKEN_PREFIX: &str = "alter_as_";
/// The kind bound into a sealed sign-in client secret.
pub(crate) const CLIENT_SECRET_KIND: &str = "idp.sign_in.client_secret";
/// The kind bound into a sealed PKCE verifier.
pub(crate) const VERIFIER_KIND: &str = "auth_session.verifier";
/// The kind bound into a sealed ID token.
pub(crate) const USER_TOKEN_KIND: &str = "auth_session.user_token";
/// Largest sign-in client secret.
const MAX_CLIENT_SECRET_BYTES: usize = 4096;

/// The OAuth client the vault signs an app's users in with at its identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInClient {
    /// The app.
    pub app_id: AppId,
    /// The client id at the IdP (one of the IdP's accepted audiences).
    pub client_id: String,
    /// The client secret, sealed to the app and this configuration's version.
    pub sealed_client_secret: Option<Vec<u8>>,
    /// Scopes asked for (`openid` always among them).
    pub scopes: Vec<String>,
    /// The IdP's authorization endpoint (explicit or discovered).
    pub authorize_url: Option<String>,
    /// The IdP's token endpoint (explicit or discovered).
    pub token_url: Option<String>,
    /// Bumped by every change.
    pub version: i64,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// What sign-in still lacks (`details.reason` of `idp_signin_not_configured`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInGap {
    /// No sign-in client is configured.
    MissingClientId,
    /// The client has no secret.
    MissingClientSecret,
    /// The issuer's authorization or token endpoint is unknown (discovery found none).
    IssuerCannotSignIn,
}

impl SignInGap {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            SignInGap::MissingClientId => "missing_client_id",
            SignInGap::MissingClientSecret => "missing_client_secret",
            SignInGap::IssuerCannotSignIn => "issuer_cannot_sign_in",
        }
    }
}

impl SignInClient {
    /// What keeps this client from signing users in, if anything.
    pub fn gap(&self) -> Option<SignInGap> {
        if self.sealed_client_secret.is_none() {
            Some(SignInGap::MissingClientSecret)
        } else if self.authorize_url.is_none() || self.token_url.is_none() {
            Some(SignInGap::IssuerCannotSignIn)
        } else {
            None
        }
    }
}

/// What an operator configures. Without a client secret, the stored one is kept while the
/// client id and the token endpoint's origin stay the same.
#[derive(Debug, Default)]
pub struct ConfigureSignIn {
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: Option<SecretString>,
    /// Scopes; `openid email profile` when none.
    pub scopes: Vec<String>,
    /// Authorization endpoint (explicit, or discovered by the caller from the issuer).
    pub authorize_url: Option<String>,
    /// Token endpoint (explicit, or discovered).
    pub token_url: Option<String>,
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthSessionStatus {
    /// Waiting for the user.
    Pending,
    /// The callback arrived and is exchanging the code.
    Exchanging,
    /// Signed in; the ID token waits for the app's poll.
    Completed,
    /// The ID token was handed out and erased.
    Collected,
    /// Sign-in failed (`error_code`, `error_message`).
    Error,
}

impl AuthSessionStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthSessionStatus::Pending => "pending",
            AuthSessionStatus::Exchanging => "exchanging",
            AuthSessionStatus::Completed => "completed",
            AuthSessionStatus::Collected => "collected",
            AuthSessionStatus::Error => "error",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<AuthSessionStatus> {
        Some(match text {
            "pending" => AuthSessionStatus::Pending,
            "exchanging" => AuthSessionStatus::Exchanging,
            "completed" => AuthSessionStatus::Completed,
            "collected" => AuthSessionStatus::Collected,
            "error" => AuthSessionStatus::Error,
            _ => return None,
        })
    }
}

/// One sign-in session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSession {
    /// Id (binds the sealed values).
    pub id: AuthSessionId,
    /// The app that started it.
    pub app_id: AppId,
    /// SHA-256 of the session token.
    pub token_hash: [u8; 32],
    /// SHA-256 of the OIDC `state`.
    pub state_hash: [u8; 32],
    /// The OIDC `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier, sealed.
    pub sealed_verifier: Vec<u8>,
    /// Where it is.
    pub status: AuthSessionStatus,
    /// The ID token, sealed, while completed and not yet collected.
    pub sealed_user_token: Option<Vec<u8>>,
    /// The signed-in user.
    pub user_id: Option<UserId>,
    /// Why it failed.
    pub error_code: Option<String>,
    /// Why it failed, for people.
    pub error_message: Option<String>,
    /// When it stops waiting.
    pub expires_at: Timestamp,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A session just started: what the server needs to send the user to the IdP.
#[derive(Debug)]
pub struct StartedSignIn {
    /// The token the app polls with (shown once).
    pub session_token: SecretString,
    /// The OIDC `state` for the authorization URL.
    pub state: SecretString,
    /// The IdP's endpoints; `nonce` rides in the extra authorization parameters.
    pub endpoints: ProviderEndpoints,
    /// The client id.
    pub client_id: String,
    /// Scopes to ask for.
    pub scopes: Vec<String>,
    /// When the session expires.
    pub expires_at: Timestamp,
}

/// A session its callback claimed: what the code exchange needs.
pub struct ClaimedSignIn {
    /// The session.
    pub session: AuthSession,
    /// The IdP's endpoints.
    pub endpoints: ProviderEndpoints,
    /// The client id.
    pub client_id: String,
    /// The client secret, opened for this exchange.
    pub client_secret: SecretString,
    /// The PKCE verifier, opened.
    pub verifier: SecretString,
}

impl std::fmt::Debug for ClaimedSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedSignIn")
            .field("session", &self.session.id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Why a callback was refused before anything was exchanged (shown on the callback page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackRefusal {
    /// No pending, unexpired session has this state: forged, replayed or expired.
    UnknownState,
    /// The callback names another issuer than the app's IdP (RFC 9207).
    WrongIssuer,
    /// The session could not be read or prepared (storage, keyring, configuration); logged.
    Unavailable,
}

/// What a poll found.
#[derive(Debug)]
pub enum AuthPoll {
    /// Still waiting for the user.
    Pending,
    /// Signed in: the ID token (handed out this once) and the user.
    Completed {
        /// The user's ID token.
        user_token: SecretString,
        /// The user.
        user: Box<AppUser>,
    },
    /// Sign-in failed.
    Error {
        /// Stable code.
        code: String,
        /// For people.
        message: String,
    },
    /// Expired, collected already, or unknown.
    Expired,
}

impl Vault {
    /// Configures the app's sign-in client (operator). The app's IdP must exist and accept the
    /// client id as an audience (ID tokens are verified against the IdP).
    pub async fn configure_sign_in(
        &self,
        app_id: AppId,
        request: ConfigureSignIn,
    ) -> Result<SignInClient> {
        let idp = self.get_idp(app_id).await?;
        let client_id = validate::bounded_text("client_id", &request.client_id, 512)?.to_owned();
        ensure(idp.audiences.contains(&client_id), || {
            "client_id must be one of the identity provider's audiences: its ID tokens name it as their audience".into()
        })?;
        let scopes = validate_scopes(request.scopes)?;
        match (&request.authorize_url, &request.token_url) {
            (Some(authorize), Some(token)) => {
                validate::bounded_text("authorize_url", authorize, 2048)?;
                validate::bounded_text("token_url", token, 2048)?;
                // The same rules as an OAuth provider's endpoints (https, no internal network).
                crate::providers::validate_endpoints(&endpoints(authorize, token))?;
            }
            (None, None) => {}
            _ => {
                return Err(Error::Invalid(
                    "give both authorize_url and token_url, or neither".into(),
                ));
            }
        }
        let existing = self.store().get_sign_in_client(app_id).await?;
        let now = self.now();
        let secret = match (&request.client_secret, &existing) {
            (Some(secret), _) => {
                let value = secret.expose_secret();
                ensure(
                    !value.is_empty() && value.len() <= MAX_CLIENT_SECRET_BYTES,
                    || format!("client_secret must be 1 to {MAX_CLIENT_SECRET_BYTES} bytes"),
                )?;
                Some(Zeroizing::new(value.as_bytes().to_vec()))
            }
            (None, Some(old)) if old.sealed_client_secret.is_some() => {
                let origin = |u: &Option<String>| {
                    u.as_deref()
                        .and_then(|u| url::Url::parse(u).ok())
                        .map(|u| u.origin())
                };
                ensure(
                    old.client_id == client_id
                        && origin(&old.token_url) == origin(&request.token_url),
                    || {
                        "this change sends the client secret elsewhere (client id or token endpoint); give the client secret again".into()
                    },
                )?;
                Some(self.open_sign_in_secret(old)?)
            }
            (None, _) => None,
        };
        let mut client = SignInClient {
            app_id,
            client_id,
            sealed_client_secret: None,
            scopes,
            authorize_url: request.authorize_url,
            token_url: request.token_url,
            version: existing.as_ref().map_or(1, |e| e.version + 1),
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            updated_at: now,
        };
        if let Some(secret) = secret {
            client.sealed_client_secret = Some(self.keyring().seal_versioned(
                secret_binding(&app_id.to_string()),
                &client.version.to_string(),
                &secret,
            )?);
        }
        let event = AuditEvent::allow(
            app_id,
            now,
            action::IDP_SIGN_IN_CONFIGURED,
            Actor::operator(),
            Target {
                kind: "idp".into(),
                id: idp.id.to_string(),
            },
        )
        .with_details(json!({
            "client_id": client.client_id,
            "scopes": client.scopes,
            "authorize_url": client.authorize_url,
            "token_url": client.token_url,
            "client_secret_changed": request.client_secret.is_some(),
        }));
        let expected = existing.as_ref().map(|e| e.version);
        if self
            .store()
            .put_sign_in_client(&client, expected, &event)
            .await?
        {
            Ok(client)
        } else {
            Err(Error::Conflict(
                "the sign-in configuration changed meanwhile; try again".into(),
            ))
        }
    }

    /// The app's sign-in client.
    pub async fn get_sign_in(&self, app_id: AppId) -> Result<SignInClient> {
        self.store()
            .get_sign_in_client(app_id)
            .await?
            .ok_or(Error::NotFound(Entity::Idp))
    }

    /// Starts a sign-in session for an app caller (agents do not sign users in). `verifier` is
    /// the PKCE verifier whose challenge the authorization URL will carry.
    pub async fn start_auth_session(
        &self,
        caller: &Caller,
        verifier: &str,
    ) -> Result<StartedSignIn> {
        if caller.is_agent() {
            return Err(Error::AgentsCannotSignIn);
        }
        self.start_sign_in(caller.app_id, verifier).await
    }

    /// Starts a sign-in session of `app_id`'s users (for an app caller, or the Wallet, which
    /// takes the ID token itself at the callback instead of a poll).
    pub async fn start_sign_in(&self, app_id: AppId, verifier: &str) -> Result<StartedSignIn> {
        self.store()
            .get_idp(app_id)
            .await?
            .ok_or(Error::NoIdentityProvider)?;
        let client = self
            .store()
            .get_sign_in_client(app_id)
            .await?
            .ok_or(Error::SignInNotConfigured(SignInGap::MissingClientId))?;
        let (endpoints, _) = self.ready_endpoints(&client)?;
        let session_token = alter_crypto::keys::mint_token(SESSION_TOKEN_PREFIX)?;
        let state = alter_crypto::keys::mint_token("")?;
        let nonce = URL_SAFE_NO_PAD.encode(alter_crypto::random_bytes::<24>()?);
        let now = self.now();
        let id = AuthSessionId::new();
        let session = AuthSession {
            id,
            app_id,
            token_hash: alter_crypto::keys::token_hash(session_token.expose_secret()),
            state_hash: alter_crypto::keys::token_hash(state.expose_secret()),
            nonce: nonce.clone(),
            sealed_verifier: self.keyring().seal(
                session_binding(VERIFIER_KIND, &app_id.to_string(), &id.to_string()),
                verifier.as_bytes(),
            )?,
            status: AuthSessionStatus::Pending,
            sealed_user_token: None,
            user_id: None,
            error_code: None,
            error_message: None,
            expires_at: now.plus_seconds(SESSION_LIFETIME_SECONDS),
            created_at: now,
            updated_at: now,
        };
        self.store().insert_auth_session(&session).await?;
        let mut endpoints = endpoints;
        endpoints
            .extra_authorize_params
            .insert("nonce".into(), nonce);
        // A sign-in link carried to another browser must not complete silently on that
        // browser's IdP session: the person at it signs in.
        endpoints
            .extra_authorize_params
            .insert("prompt".into(), "login".into());
        Ok(StartedSignIn {
            session_token,
            state,
            endpoints,
            client_id: client.client_id,
            scopes: client.scopes,
            expires_at: session.expires_at,
        })
    }

    /// Claims the session a callback's `state` names, once: it must be pending and unexpired,
    /// and `iss`, when the IdP sent one (RFC 9207), must be the app's issuer — otherwise the
    /// session fails (a mix-up must not be retried with the same state).
    pub async fn claim_auth_callback(
        &self,
        state: &str,
        iss: Option<&str>,
    ) -> Result<ClaimedSignIn, CallbackRefusal> {
        let unavailable = |e: Error| {
            tracing::warn!(error = %e, "sign-in callback could not be handled");
            CallbackRefusal::Unavailable
        };
        if state.is_empty() || state.len() > 256 {
            return Err(CallbackRefusal::UnknownState);
        }
        let session = self
            .store()
            .claim_auth_session(&alter_crypto::keys::token_hash(state), self.now())
            .await
            .map_err(|e| unavailable(e.into()))?
            .ok_or(CallbackRefusal::UnknownState)?;
        let prepared = async {
            let idp = self
                .store()
                .get_idp(session.app_id)
                .await?
                .ok_or(Error::NoIdentityProvider)?;
            let client = self
                .store()
                .get_sign_in_client(session.app_id)
                .await?
                .ok_or(Error::SignInNotConfigured(SignInGap::MissingClientId))?;
            let (endpoints, secret) = self.ready_endpoints(&client)?;
            let verifier = self.keyring().open(
                session_binding(
                    VERIFIER_KIND,
                    &session.app_id.to_string(),
                    &session.id.to_string(),
                ),
                &session.sealed_verifier,
            )?;
            Ok::<_, Error>((idp, client, endpoints, secret, verifier))
        }
        .await;
        let (idp, client, endpoints, secret, verifier) = match prepared {
            Ok(found) => found,
            Err(e) => {
                self.fail_auth_session(&session, "server_error", "sign-in is not available")
                    .await;
                return Err(unavailable(e));
            }
        };
        if let Some(iss) = iss
            && iss.trim_end_matches('/') != idp.issuer.trim_end_matches('/')
        {
            self.fail_auth_session(
                &session,
                "issuer_mismatch",
                "the callback came from another issuer",
            )
            .await;
            return Err(CallbackRefusal::WrongIssuer);
        }
        Ok(ClaimedSignIn {
            session,
            endpoints,
            client_id: client.client_id,
            client_secret: SecretString::from(
                String::from_utf8(secret.to_vec()).map_err(|_| CallbackRefusal::Unavailable)?,
            ),
            verifier: SecretString::from(
                String::from_utf8(verifier.to_vec()).map_err(|_| CallbackRefusal::Unavailable)?,
            ),
        })
    }

    /// Marks a claimed session failed (nothing is stored but the reason).
    pub async fn fail_auth_session(&self, session: &AuthSession, code: &str, message: &str) {
        let failed = AuthSession {
            status: AuthSessionStatus::Error,
            error_code: Some(code.to_owned()),
            error_message: Some(message.to_owned()),
            updated_at: self.now(),
            ..session.clone()
        };
        if let Err(e) = self.store().finish_auth_session(&failed).await {
            tracing::warn!(error = %e, "a failed sign-in could not be recorded");
        }
    }

    /// Finishes a claimed session with the ID token the IdP issued: verified against the app's
    /// IdP (signature, `iss`, `aud`, `exp`) like every user token, its `nonce` the session's and
    /// its audience the sign-in client; the user recorded; the token sealed for the app's next
    /// poll. Any failure fails the session.
    pub async fn complete_auth_session(
        &self,
        claimed: &ClaimedSignIn,
        id_token: &str,
    ) -> Result<AppUser> {
        let session = &claimed.session;
        let outcome = async {
            // Verified (signature, iss, aud, exp) before its nonce is read, and the user
            // recorded only once the token is known to be this session's.
            let idp = self
                .store()
                .get_idp(session.app_id)
                .await?
                .ok_or(Error::NoIdentityProvider)?;
            self.verifier()
                .verify(&idp, id_token, self.now())
                .await
                .map_err(|e| match e {
                    TokenError::Invalid(reason) => {
                        tracing::info!(app = %session.app_id, %reason, "ID token refused");
                        Error::InvalidUserToken
                    }
                    TokenError::KeysUnavailable(reason) => Error::IdentityUnavailable(reason),
                })?;
            let claims = payload(id_token).ok_or(Error::InvalidUserToken)?;
            let nonce_ok = claims
                .get("nonce")
                .and_then(Value::as_str)
                .is_some_and(|n| alter_crypto::ct_eq(n.as_bytes(), session.nonce.as_bytes()));
            let aud_ok = match claims.get("aud") {
                Some(Value::String(aud)) => *aud == claimed.client_id,
                Some(Value::Array(auds)) => auds.iter().any(|a| a == claimed.client_id.as_str()),
                _ => false,
            };
            if !nonce_ok || !aud_ok {
                tracing::warn!(app = %session.app_id, nonce_ok, aud_ok, "ID token refused");
                return Err(Error::InvalidUserToken);
            }
            let signed_in = self.sign_in(session.app_id, id_token).await?;
            let sealed = self.keyring().seal(
                session_binding(
                    USER_TOKEN_KIND,
                    &session.app_id.to_string(),
                    &session.id.to_string(),
                ),
                id_token.as_bytes(),
            )?;
            Ok::<_, Error>((signed_in.user, sealed))
        }
        .await;
        match outcome {
            Ok((user, sealed)) => {
                let completed = AuthSession {
                    status: AuthSessionStatus::Completed,
                    sealed_user_token: Some(sealed),
                    user_id: Some(user.id),
                    updated_at: self.now(),
                    ..session.clone()
                };
                if self.store().finish_auth_session(&completed).await? {
                    let event = AuditEvent::allow(
                        session.app_id,
                        completed.updated_at,
                        action::USER_SIGNED_IN,
                        Actor::system(),
                        Target {
                            kind: "user".into(),
                            id: user.id.to_string(),
                        },
                    )
                    .with_details(json!({ "auth_session_id": session.id.to_string() }));
                    self.store().append_event(&event).await?;
                    Ok(user)
                } else {
                    Err(Error::Conflict(
                        "the sign-in session changed meanwhile".into(),
                    ))
                }
            }
            Err(e) => {
                let (code, message) = match &e {
                    Error::UserSuspended => ("user_suspended", "this user is suspended"),
                    Error::IdentityUnavailable(_) => (
                        "service_unavailable",
                        "the identity provider cannot be reached",
                    ),
                    _ => (
                        "id_token_invalid",
                        "the identity provider's ID token was not accepted",
                    ),
                };
                self.fail_auth_session(session, code, message).await;
                Err(e)
            }
        }
    }

    /// Where the session `session_token` of the calling app is. A completed session hands its
    /// ID token out once and erases it.
    pub async fn poll_auth_session(
        &self,
        caller: &Caller,
        session_token: &str,
    ) -> Result<AuthPoll> {
        // Sign-in is the app's (agents do not start one, and do not collect its token).
        if caller.is_agent() {
            return Err(Error::AgentsCannotSignIn);
        }
        if session_token.is_empty() || session_token.len() > 256 {
            return Ok(AuthPoll::Expired);
        }
        let hash = alter_crypto::keys::token_hash(session_token);
        let Some(session) = self.store().find_auth_session(caller.app_id, &hash).await? else {
            return Ok(AuthPoll::Expired);
        };
        let now = self.now();
        match session.status {
            AuthSessionStatus::Error => Ok(AuthPoll::Error {
                code: session
                    .error_code
                    .unwrap_or_else(|| "sign_in_failed".into()),
                message: session
                    .error_message
                    .unwrap_or_else(|| "sign-in failed".into()),
            }),
            AuthSessionStatus::Collected => Ok(AuthPoll::Expired),
            _ if session.expires_at <= now => Ok(AuthPoll::Expired),
            AuthSessionStatus::Pending | AuthSessionStatus::Exchanging => Ok(AuthPoll::Pending),
            AuthSessionStatus::Completed => {
                let (Some(sealed), Some(user_id)) = (&session.sealed_user_token, session.user_id)
                else {
                    return Ok(AuthPoll::Expired);
                };
                let token = self.keyring().open(
                    session_binding(
                        USER_TOKEN_KIND,
                        &session.app_id.to_string(),
                        &session.id.to_string(),
                    ),
                    sealed,
                )?;
                // Only the poll that moves it to `collected` hands the token out, recorded with
                // the key that polled.
                let event = crate::audit::AuditEvent::allow(
                    session.app_id,
                    now,
                    crate::audit::action::USER_TOKEN_COLLECTED,
                    caller.actor(),
                    crate::audit::Target {
                        kind: "user".into(),
                        id: user_id.to_string(),
                    },
                )
                .with_details(serde_json::json!({ "auth_session_id": session.id }));
                if !self
                    .store()
                    .collect_auth_session(session.id, now, &event)
                    .await?
                {
                    return Ok(AuthPoll::Expired);
                }
                let user = self
                    .store()
                    .get_user(session.app_id, user_id)
                    .await?
                    .ok_or(Error::NotFound(Entity::User))?;
                let token = String::from_utf8(token.to_vec())
                    .map_err(|_| Error::Crypto(alter_crypto::CryptoError::CannotOpen))?;
                Ok(AuthPoll::Completed {
                    user_token: SecretString::from(token),
                    user: Box::new(user),
                })
            }
        }
    }

    /// Exchanges a claimed session's code at the IdP (with its PKCE verifier); the ID token,
    /// or `None` when the IdP refused or issued none (the reason is logged, never the code).
    pub async fn exchange_sign_in_code(
        &self,
        claimed: &ClaimedSignIn,
        code: &str,
        redirect_uri: &str,
    ) -> Option<String> {
        match self
            .oauth()
            .exchange_code(
                &claimed.endpoints,
                &claimed.client_id,
                &claimed.client_secret,
                redirect_uri,
                code,
                Some(claimed.verifier.expose_secret()),
            )
            .await
        {
            Ok(tokens) => tokens.id_token,
            Err(error) => {
                tracing::warn!(%error, "sign-in code exchange failed");
                None
            }
        }
    }

    /// Forgets sessions that expired over an hour ago (a poll for one answers `expired` either
    /// way).
    pub async fn prune_auth_sessions(&self) -> Result<u64> {
        let before = self.now().plus_seconds(-3600);
        Ok(self.store().prune_auth_sessions(before).await?)
    }

    /// The client's endpoints and opened secret, or what is missing.
    pub(crate) fn ready_endpoints(
        &self,
        client: &SignInClient,
    ) -> Result<(ProviderEndpoints, Zeroizing<Vec<u8>>)> {
        if let Some(gap) = client.gap() {
            return Err(Error::SignInNotConfigured(gap));
        }
        let (Some(authorize_url), Some(token_url)) = (&client.authorize_url, &client.token_url)
        else {
            return Err(Error::SignInNotConfigured(SignInGap::IssuerCannotSignIn));
        };
        Ok((
            endpoints(authorize_url, token_url),
            self.open_sign_in_secret(client)?,
        ))
    }

    fn open_sign_in_secret(&self, client: &SignInClient) -> Result<Zeroizing<Vec<u8>>> {
        let sealed = client
            .sealed_client_secret
            .as_ref()
            .ok_or(Error::SignInNotConfigured(SignInGap::MissingClientSecret))?;
        Ok(self.keyring().open_versioned(
            secret_binding(&client.app_id.to_string()),
            &client.version.to_string(),
            sealed,
        )?)
    }
}

/// The IdP's endpoints as the OAuth client takes them: code flow with PKCE, no refresh.
fn endpoints(authorize_url: &str, token_url: &str) -> ProviderEndpoints {
    ProviderEndpoints {
        issuer: None,
        authorize_url: authorize_url.to_owned(),
        token_url: token_url.to_owned(),
        refresh_url: None,
        revoke_url: None,
        pkce: true,
        scope_separator: " ".into(),
        refresh: RefreshBehaviour::None,
        extra_authorize_params: BTreeMap::new(),
        account: AccountSource::Unknown,
        api_base_url: None,
        api_headers: BTreeMap::new(),
    }
}

fn secret_binding(app: &str) -> Binding<'_> {
    Binding {
        kind: CLIENT_SECRET_KIND,
        app_id: app,
        record_id: "sign_in",
    }
}

fn session_binding<'a>(kind: &'a str, app: &'a str, id: &'a str) -> Binding<'a> {
    Binding {
        kind,
        app_id: app,
        record_id: id,
    }
}

fn validate_scopes(scopes: Vec<String>) -> Result<Vec<String>> {
    if scopes.is_empty() {
        return Ok(DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect());
    }
    ensure(scopes.len() <= 50, || "give at most 50 scopes".into())?;
    for scope in &scopes {
        ensure(
            !scope.is_empty()
                && scope.len() <= 200
                && scope
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'),
            || format!("scope {scope:?} is not a valid OAuth scope"),
        )?;
    }
    ensure(scopes.iter().any(|s| s == "openid"), || {
        "scopes must include openid: sign-in needs an ID token".into()
    })?;
    Ok(scopes)
}

/// The claims of a compact JWS, unverified: only for a token whose signature was verified.
pub(crate) fn payload(token: &str) -> Option<serde_json::Map<String, Value>> {
    let part = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}
