//! End-user sign-in (protocol part 2 §7.2–7.5): `POST /sdk/auth/session` starts an OpenID
//! Connect code flow at the app's IdP, the browser comes back to `GET /auth/callback`, and
//! `POST /sdk/auth/poll` hands the ID token to the app; `POST /sdk/auth/verify-token` checks a
//! user token. The operator configures the sign-in client at
//! `/admin/v1/apps/{app}/idp/sign-in`. The decisions are the vault's
//! ([`alter_core::signin`]); the network steps (discovery, code exchange) are here.

use std::time::Duration;

use alter_core::Error;
use alter_core::signin::{
    AuthPoll, CallbackRefusal, ConfigureSignIn, SESSION_LIFETIME_SECONDS, SignInClient,
};
use alter_core::wallet::SignInStep;
use alter_crypto::{ExposeSecret, SecretString};
use alter_proto::signin::{
    AuthPollResult, AuthSession, CreateAuthSessionRequest, PollAuthSessionRequest, SignInInfo,
    SignInRequest, UserInfo, VerifiedSubject, VerifyTokenRequest,
};
use alter_upstream::oauth::{Pkce, authorization_url};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::admin::app_id;
use crate::auth::{Authed, Operator, need};
use crate::error::{ApiError, ApiResult};
use crate::json::Json;
use crate::state::AppState;

/// Longest a poll is held (ms).
const MAX_WAIT_MS: i64 = 30_000;
/// How often a held poll reads the session again: the database is the source of truth, so a
/// callback handled by another node is seen within this.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// `POST /sdk/auth/session`.
pub async fn create_session(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::IdpUsersWrite>,
    Json(CreateAuthSessionRequest {}): Json<CreateAuthSessionRequest>,
) -> ApiResult<(StatusCode, axum::Json<AuthSession>)> {
    let pkce = Pkce::new().map_err(|e| ApiError::internal(&e))?;
    let started = state
        .vault
        .start_auth_session(&caller, pkce.verifier())
        .await?;
    let url = authorization_url(
        &started.endpoints,
        &started.client_id,
        &state.sign_in_redirect_uri(),
        &started.scopes,
        started.state.expose_secret(),
        Some(&pkce),
    )
    .map_err(|e| Error::Invalid(format!("the sign-in client cannot be used: {e}")))?;
    Ok((
        StatusCode::CREATED,
        axum::Json(AuthSession {
            auth_url: url.into(),
            session_token: started.session_token.expose_secret().to_owned(),
            expires_in: SESSION_LIFETIME_SECONDS,
            expires_at: started.expires_at.to_rfc3339(),
        }),
    ))
}

/// `POST /sdk/auth/poll`: held up to `wait_ms` (at most 30 s) while the session is pending,
/// within the app's share of held polls.
pub async fn poll_session(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::IdpUsersRead>,
    Json(body): Json<PollAuthSessionRequest>,
) -> ApiResult<axum::Json<AuthPollResult>> {
    let held = crate::shares::HELD_POLLS.take(caller.app_id);
    let wait = match held {
        Some(_) => Duration::from_millis(body.wait_ms.unwrap_or(0).clamp(0, MAX_WAIT_MS) as u64),
        None => Duration::ZERO,
    };
    let deadline = tokio::time::Instant::now() + wait;
    let outcome = loop {
        let outcome = state
            .vault
            .poll_auth_session(&caller, &body.session_token)
            .await?;
        if !matches!(outcome, AuthPoll::Pending) || tokio::time::Instant::now() >= deadline {
            break outcome;
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - tokio::time::Instant::now())).await;
    };
    let status = |s: &str| AuthPollResult {
        status: s.to_owned(),
        ..AuthPollResult::default()
    };
    Ok(axum::Json(match outcome {
        AuthPoll::Pending => status("pending"),
        AuthPoll::Expired => status("expired"),
        AuthPoll::Error { code, message } => AuthPollResult {
            error_code: Some(code),
            error_message: Some(message),
            ..status("error")
        },
        AuthPoll::Completed { user_token, user } => AuthPollResult {
            user_token: Some(user_token.expose_secret().to_owned()),
            user_info: Some(UserInfo {
                sub: user.subject.clone(),
                email: user.email.clone(),
                name: user.display_name.clone(),
            }),
            ..status("completed")
        },
    }))
}

/// `POST /sdk/auth/verify-token`: 200 `{sub}` only.
pub async fn verify_token(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::IdpUsersRead>,
    Json(body): Json<VerifyTokenRequest>,
) -> ApiResult<axum::Json<VerifiedSubject>> {
    // The app checks its users' tokens; an agent has no business recording users.
    if caller.is_agent() {
        return Err(Error::AgentsCannotSignIn.into());
    }
    let signed_in = state.vault.sign_in(caller.app_id, &body.token).await?;
    Ok(axum::Json(VerifiedSubject {
        sub: signed_in.user.subject,
    }))
}

/// `GET /auth/callback`: where the IdP sends the browser back. Answers a small page either
/// way; nothing but the session's outcome is stored.
pub async fn callback(
    State(state): State<AppState>,
    peer: crate::ui::session::Peer,
    headers: axum::http::HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // Per client address, before anything is read or claimed: over it, nothing is stored.
    let peer = crate::ui::session::peer_ip(&peer);
    match state
        .vault
        .sign_in_step_admitted(SignInStep::Callback, peer)
        .await
    {
        Ok(None) => {}
        Ok(Some(retry_after)) => {
            let mut response = page(
                StatusCode::TOO_MANY_REQUESTS,
                FAILED,
                "Too many sign-ins came from your network. Wait a minute, then start again.",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
            return response;
        }
        Err(error) => {
            tracing::warn!(%error, "a sign-in callback could not be counted");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                FAILED,
                "Sign-in is not available right now. Start again from the app in a moment.",
            );
        }
    }
    let params = match CallbackParams::parse(query.as_deref().unwrap_or_default()) {
        Some(params) => params,
        None => {
            return page(
                StatusCode::BAD_REQUEST,
                FAILED,
                "The sign-in link is not valid.",
            );
        }
    };
    let claimed = match state
        .vault
        .claim_auth_callback(&params.state, params.iss.as_deref())
        .await
    {
        Ok(claimed) => claimed,
        Err(CallbackRefusal::UnknownState) => {
            return page(
                StatusCode::BAD_REQUEST,
                FAILED,
                "This sign-in link was already used, has expired, or is not valid. Start again from the app.",
            );
        }
        Err(CallbackRefusal::Unavailable) => {
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                FAILED,
                "Sign-in is not available right now. Start again from the app in a moment.",
            );
        }
        Err(CallbackRefusal::WrongIssuer) => {
            return page(
                StatusCode::BAD_REQUEST,
                FAILED,
                "The answer came from another identity provider than this app's. Start again from the app.",
            );
        }
    };
    let session = &claimed.session;
    let code = match (&params.error, &params.code) {
        (None, Some(code)) => code,
        (Some(error), _) => {
            let (code, message) = if error == "access_denied" {
                ("access_denied", "the user did not allow the sign-in")
            } else {
                ("idp_error", "the identity provider refused the sign-in")
            };
            // The IdP's `error` is logged only if it looks like an RFC 6749 code.
            let logged = if error.len() <= 64
                && error.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            {
                error.as_str()
            } else {
                "(unrecognised)"
            };
            tracing::info!(error = logged, "the identity provider refused a sign-in");
            state.vault.fail_auth_session(session, code, message).await;
            return page(
                StatusCode::OK,
                FAILED,
                "The sign-in was cancelled. You can close this window.",
            );
        }
        (None, None) => {
            state
                .vault
                .fail_auth_session(session, "invalid_callback", "the callback carried no code")
                .await;
            return page(
                StatusCode::BAD_REQUEST,
                FAILED,
                "The sign-in link is not valid.",
            );
        }
    };
    let id_token = state
        .vault
        .exchange_sign_in_code(&claimed, code, &state.sign_in_redirect_uri())
        .await;
    let Some(id_token) = id_token else {
        state
            .vault
            .fail_auth_session(
                session,
                "code_exchange_failed",
                "the identity provider did not issue an ID token",
            )
            .await;
        return page(
            StatusCode::BAD_GATEWAY,
            FAILED,
            "The identity provider did not complete the sign-in. Start again from the app.",
        );
    };
    match state.vault.complete_auth_session(&claimed, &id_token).await {
        // Started from the Wallet in this browser: the Wallet takes the token, not a poll.
        Ok(user) if let Some(next) = crate::ui::wallet::wallet_sign_in(&headers, &claimed) => {
            crate::ui::wallet::finish_sign_in(&state, &claimed, &user, &next).await
        }
        Ok(_) => page(
            StatusCode::OK,
            "You are signed in",
            "You can close this window and return to the app.",
        ),
        Err(e) => {
            tracing::warn!(error = %e, "sign-in not completed");
            page(
                StatusCode::BAD_REQUEST,
                FAILED,
                "The sign-in could not be completed. Start again from the app.",
            )
        }
    }
}

/// `PUT /admin/v1/apps/{app}/idp/sign-in`: endpoints given explicitly (both), or discovered
/// from the IdP's issuer (none given; a failed discovery leaves them unknown, and the answer's
/// `not_ready` says so).
pub(super) async fn configure(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
    Json(body): Json<SignInRequest>,
) -> ApiResult<axum::Json<SignInInfo>> {
    let app = app_id(&app)?;
    let (authorize_url, token_url) = match (body.authorize_url, body.token_url) {
        (Some(authorize), Some(token)) => (Some(authorize), Some(token)),
        (None, None) => {
            let idp = state.vault.get_idp(app).await?;
            match state.discovery.discover(&idp.issuer).await {
                Ok(found) => (
                    Some(found.authorization_endpoint),
                    Some(found.token_endpoint),
                ),
                Err(why) => {
                    tracing::warn!(issuer = %idp.issuer, reason = %why, "sign-in discovery failed");
                    (None, None)
                }
            }
        }
        _ => {
            return Err(Error::Invalid(
                "give both authorize_url and token_url, or neither to discover them from the issuer"
                    .into(),
            )
            .into());
        }
    };
    let client = state
        .vault
        .configure_sign_in(
            app,
            ConfigureSignIn {
                client_id: body.client_id,
                client_secret: body.client_secret.map(SecretString::from),
                scopes: body.scopes,
                authorize_url,
                token_url,
            },
        )
        .await?;
    Ok(axum::Json(info(&state, &client)))
}

/// `GET /admin/v1/apps/{app}/idp/sign-in`.
pub(super) async fn get(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
) -> ApiResult<axum::Json<SignInInfo>> {
    let client = state.vault.get_sign_in(app_id(&app)?).await?;
    Ok(axum::Json(info(&state, &client)))
}

fn info(state: &AppState, client: &SignInClient) -> SignInInfo {
    SignInInfo {
        client_id: client.client_id.clone(),
        has_client_secret: client.sealed_client_secret.is_some(),
        scopes: client.scopes.clone(),
        authorize_url: client.authorize_url.clone(),
        token_url: client.token_url.clone(),
        redirect_uri: state.sign_in_redirect_uri(),
        not_ready: client.gap().map(|g| g.as_str().to_owned()),
        version: client.version,
        updated_at: client.updated_at.to_rfc3339(),
    }
}

/// What the IdP sent back: each parameter at most once.
struct CallbackParams {
    state: String,
    code: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

impl CallbackParams {
    fn parse(query: &str) -> Option<CallbackParams> {
        let (mut state, mut code, mut error, mut iss) = (None, None, None, None);
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                "state" => &mut state,
                "code" => &mut code,
                "error" => &mut error,
                "iss" => &mut iss,
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return None;
            }
        }
        Some(CallbackParams {
            state: state?,
            code,
            error,
            iss,
        })
    }
}

const FAILED: &str = "Sign-in failed";

/// A self-contained page: no script, no style, no external asset; never framed or cached, and
/// the callback URL (with its code) never sent on as a referrer.
fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head><body><main><h1>{title}</h1><p>{text}</p></main></body></html>"
    );
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
