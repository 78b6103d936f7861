//! Connect sessions: the client's two routes (create, poll) and what the user's browser sees —
//! the hosted Connect page and the provider's redirect back (`/oauth/callback`).

use alter_core::connect::{
    CallbackParams, CallbackResult, ConnectedGrant, ManagedPath, NewConnectSession,
    NewManagedConnect, PageView, PollAnswer, RestrictionsInput, ResumeView, SESSION_TTL_SECONDS,
    SIGN_IN_ATTEMPT,
};
use alter_core::grants::LifetimeInput;
use alter_crypto::ExposeSecret;
use alter_proto::connect::{
    ConnectSessionRequest, ConnectSessionResponse, ManagedConnectSessionRequest,
    ManagedConnectSessionResponse, PollRequest,
};
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Authed, need};
use crate::error::{ApiError, ApiResult};
use crate::json::Json;
use crate::pages::{self, Page};
use crate::state::AppState;

pub async fn create_session(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::ConnectInitiate>,
    Json(body): Json<ConnectSessionRequest>,
) -> ApiResult<(StatusCode, axum::Json<ConnectSessionResponse>)> {
    if let Some(metadata) = &body.metadata
        && metadata
            .iter()
            .any(|(k, v)| !matches!(k.as_str(), "ip_address" | "user_agent") || !v.is_string())
    {
        return Err(ApiError::invalid(
            "metadata takes only ip_address and user_agent, as strings",
        ));
    }
    // Accepted only once enforced: a constraint the vault dropped would narrow nothing.
    if body.scope_constraint.is_some() {
        return Err(alter_core::Error::InvalidScopeConstraint(
            "scope_constraint on OAuth delegations is not supported yet".into(),
        )
        .into());
    }
    let policy = body.grant_policy.unwrap_or_default();
    let created = state
        .vault
        .create_connect_session(
            &caller,
            NewConnectSession {
                allowed_providers: body.allowed_providers,
                return_url: body.return_url,
                allowed_origin: body.allowed_origin,
                lifetime: LifetimeInput {
                    expires_at: None,
                    max_ttl_seconds: policy.max_ttl_seconds,
                    default_ttl_seconds: policy.default_ttl_seconds,
                },
                required_scopes: body.required_scopes.unwrap_or_default(),
                restrictions: body
                    .requested_grant
                    .as_ref()
                    .and_then(|g| g.restrictions.clone())
                    .map(|r| RestrictionsInput {
                        allowed_methods: r.allowed_methods,
                        allowed_endpoints: r.allowed_endpoints,
                    }),
                label: body.requested_grant.map(|g| g.label),
                repair_grant_id: body.repair_grant_id,
                agent: body.agent,
                delegable: body.delegable,
                user_token: body.user_token,
                direct: body.direct.unwrap_or(false),
                switch_account: body.switch_account.unwrap_or(false),
            },
        )
        .await?;
    let session = &created.session;
    Ok((
        StatusCode::CREATED,
        axum::Json(ConnectSessionResponse {
            session_token: created.session_token.expose_secret().to_owned(),
            connect_url: format!(
                "{}/connect/{}",
                state.public_url,
                created.page_token.expose_secret()
            ),
            expires_in: SESSION_TTL_SECONDS,
            expires_at: session.expires_at.to_rfc3339(),
            scope_constraint_warnings: Vec::new(),
            single_provider: session.settings.providers.len() == 1,
            direct: session.settings.direct,
        }),
    ))
}

/// `POST /sdk/managed-secrets/connect/session`.
pub async fn create_managed_session(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::ConnectInitiate>,
    Json(body): Json<ManagedConnectSessionRequest>,
) -> ApiResult<(StatusCode, axum::Json<ManagedConnectSessionResponse>)> {
    let provider = body
        .provider
        .or(body.template_slug.map(|t| t.to_ascii_lowercase()))
        .ok_or_else(|| ApiError::invalid("provider is required"))?;
    if body.agent.is_some() && body.delegated_agent_id.is_some() {
        return Err(ApiError::invalid(
            "give agent or delegated_agent_id, not both",
        ));
    }
    if body.requested_ttl_seconds.is_some() && body.grant_policy.is_some() {
        return Err(ApiError::invalid(
            "requested_ttl_seconds does not go with grant_policy",
        ));
    }
    let user_token = body
        .user_token
        .ok_or_else(|| ApiError::invalid("user_token is required: the session is the user's"))?;
    let delegable = body.delegable.unwrap_or(false);
    let created = state
        .vault
        .create_managed_connect_session(
            &caller,
            NewManagedConnect {
                provider: provider.clone(),
                agent: body.agent.or(body.delegated_agent_id),
                user_token,
                requested_ttl_seconds: body.requested_ttl_seconds,
                allowed_origin: body.allowed_origin,
                return_url: body.return_url,
                delegable,
                label: body.requested_grant.map(|g| g.label),
                lifetime: body
                    .grant_policy
                    .map(super::grants::policy_input)
                    .unwrap_or_default(),
                direct: body.direct.unwrap_or(false),
                repair_grant_id: body.repair_grant_id,
            },
        )
        .await?;
    let session = &created.created.session;
    Ok((
        StatusCode::CREATED,
        axum::Json(ManagedConnectSessionResponse {
            session_token: created.created.session_token.expose_secret().to_owned(),
            connect_url: format!(
                "{}/connect/{}",
                state.public_url,
                created.created.page_token.expose_secret()
            ),
            expires_in: SESSION_TTL_SECONDS,
            expires_at: session.expires_at.to_rfc3339(),
            delegable_requested: delegable,
            path: created.path.map(|p| {
                match p {
                    ManagedPath::FastPath => "fast_path",
                    ManagedPath::KeyEntry => "key_entry",
                    ManagedPath::Repair => "repair",
                }
                .to_owned()
            }),
            existing_grant_id: created.existing_grant_id.map(|g| g.to_string()),
            direct: session.settings.direct,
            secret_slug: Some(created.secret_slug),
            template_slug: None,
            agent_id: created.agent_id.map(|a| a.to_string()),
        }),
    ))
}

pub async fn poll_session(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::ConnectInitiate>,
    Json(body): Json<PollRequest>,
) -> ApiResult<axum::Json<Value>> {
    let answer = state
        .vault
        .poll_connect_session(&caller, &body.session_token)
        .await?;
    Ok(axum::Json(match answer {
        PollAnswer::Pending(declined) => json!({
            "status": "pending",
            "declined_providers": declined.iter().map(|d| json!({
                "provider_id": d.provider_id,
                "error_code": d.error_code,
                "declined_at": d.declined_at.to_rfc3339(),
            })).collect::<Vec<_>>(),
        }),
        PollAnswer::Completed(grants) => json!({
            "status": "completed",
            "grants": grants.iter().map(connected_grant).collect::<Vec<_>>(),
        }),
        PollAnswer::Failed { code, message } => json!({
            "status": "error",
            "error": { "error_code": code, "error_message": message },
        }),
        PollAnswer::Expired => json!({ "status": "expired" }),
    }))
}

/// A `grants[]` entry of a completed poll.
fn connected_grant(grant: &ConnectedGrant) -> Value {
    let mut entry = json!({
        "grant_id": grant.grant_id.to_string(),
        "provider_id": grant.provider_id,
        "scopes": grant.scopes,
        "account_identifier": grant.account_identifier,
        "operation": grant.operation,
        "grant_policy": {
            "expires_at": grant.expires_at.map(|t| t.to_rfc3339()),
            "created_at": grant.created_at.to_rfc3339(),
        },
    });
    if let Some(delegation) = &grant.delegation {
        entry["delegation"] = json!({
            "agent_id": delegation.agent_id.to_string(),
            "delegable": delegation.delegable,
            "policy_refused": delegation.policy_refused,
        });
    }
    entry
}

/// `GET /connect/{token}`: who asks, for whom, and the providers to pick from. Nothing starts
/// on a GET (a link preview or a prefetch must not): the user presses a button.
pub async fn page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match state.vault.connect_page(&token).await {
        Ok(view) => provider_list(&token, &view).into_response(),
        Err(error) => over_page(&error),
    }
}

#[derive(Debug, Deserialize)]
pub struct StartForm {
    provider: String,
}

/// The cookie that binds an authorization to the browser that started it.
const BROWSER_COOKIE: &str = "alter_connect";

/// `POST /connect/{token}`: starts the authorization at the provider picked, binding it to this
/// browser with a cookie the callback must bring back.
pub async fn pick(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Form(form): Form<StartForm>,
) -> Response {
    let started = match state
        .vault
        .start_connect(&token, &form.provider, &state.oauth_redirect_uri())
        .await
    {
        Ok(started) => started,
        Err(error) => return over_page(&error),
    };
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{BROWSER_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={SESSION_TTL_SECONDS}{secure}",
        started.browser.expose_secret()
    );
    let mut response = Redirect::to(&started.url).into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&cookie) {
        response
            .headers_mut()
            .insert(axum::http::header::SET_COOKIE, value);
    }
    response
}

/// The browser binding cookie of a request, if it carries one.
fn browser_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == BROWSER_COOKIE)
        .map(|(_, value)| value.to_owned())
}

#[derive(Default, Deserialize)]
pub struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

/// `GET /oauth/callback`: the provider's redirect back.
pub async fn callback(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let params = CallbackParams {
        state: query.state,
        code: query.code,
        error: query.error,
        iss: query.iss,
        browser: browser_cookie(&headers),
    };
    let result = match state
        .vault
        .finish_connect(params, &state.oauth_redirect_uri())
        .await
    {
        Ok(result) => result,
        Err(error) => {
            tracing::error!(%error, "a Connect callback failed");
            return pages::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Something went wrong",
                "The vault could not finish the connection. Try again in a moment.",
            );
        }
    };
    match result {
        CallbackResult::Connected { session, grants } => {
            if let Some(url) = &session.settings.return_url {
                let grant = grants.first().map(|g| g.grant_id.to_string());
                return Redirect::to(&with_query(
                    url,
                    &[
                        ("status", "success"),
                        ("grant_id", grant.as_deref().unwrap_or("")),
                    ],
                ))
                .into_response();
            }
            let names: Vec<String> = grants
                .iter()
                .map(|g| match &g.account_identifier {
                    Some(account) => format!("{} ({account})", g.provider_id),
                    None => g.provider_id.clone(),
                })
                .collect();
            pages::message(
                StatusCode::OK,
                "Connected",
                &format!(
                    "Your account at {} is connected. You can close this window.",
                    names.join(", ")
                ),
            )
        }
        CallbackResult::SignedIn { .. } => {
            Redirect::to(&format!("{}/connect/resume", state.public_url)).into_response()
        }
        CallbackResult::Declined { session, over } => {
            if over && let Some(url) = &session.settings.return_url {
                return Redirect::to(&with_query(
                    url,
                    &[("status", "error"), ("error", "connect_denied")],
                ))
                .into_response();
            }
            pages::message(
                StatusCode::OK,
                "Not connected",
                "You declined the connection. Nothing was shared; you can close this window.",
            )
        }
        CallbackResult::Failed {
            session,
            code,
            message,
        } => {
            if let Some(url) = session
                .as_ref()
                .and_then(|s| s.settings.return_url.as_ref())
                && code != "session_expired"
            {
                return Redirect::to(&with_query(url, &[("status", "error"), ("error", &code)]))
                    .into_response();
            }
            pages::message(StatusCode::BAD_REQUEST, "Not connected", &message)
        }
    }
}

/// The provider list of a session: who asks, for whom, what it lets them do.
fn provider_list(token: &str, view: &PageView) -> Page {
    let mut body = format!(
        "<p><strong>{app}</strong> asks you to connect an account. You will sign in at the \
         provider and approve the access asked for there.</p>",
        app = pages::escape(&view.app_name),
    );
    if let Some(agent) = &view.agent_name {
        body.push_str(&format!(
            "<p>The agent <strong>{}</strong> will be able to act with this account on your \
             behalf. You can revoke that at any time.</p>",
            pages::escape(agent)
        ));
    }
    if view.session.settings.managed.is_some() {
        body.push_str(&format!(
            "<p>First, sign in as yourself: this link is for one person.</p>\
             <form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"provider\" value=\"{SIGN_IN_ATTEMPT}\">\
             <button type=\"submit\">Sign in to continue</button></form>",
            action = pages::escape(&format!("./{token}")),
        ));
        return Page::new(StatusCode::OK, "Give access", body)
            .form_targets(view.sign_in_origin.clone().into_iter().collect());
    }
    body.push_str("<ul class=\"providers\">");
    for provider in &view.providers {
        body.push_str(&format!(
            "<li><form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"provider\" value=\"{id}\">\
             <button type=\"submit\">Connect {name}</button></form></li>",
            action = pages::escape(&format!("./{token}")),
            id = pages::escape(&provider.id),
            name = pages::escape(&provider.display_name),
        ));
    }
    body.push_str("</ul>");
    let origins = view
        .providers
        .iter()
        .filter_map(|p| url::Url::parse(&p.endpoints.authorize_url).ok())
        .map(|u| u.origin().ascii_serialization())
        .collect::<Vec<_>>();
    Page::new(StatusCode::OK, "Connect an account", body).form_targets(origins)
}

/// `GET /connect/resume`: a managed-secret session's page after its user signed in, found by
/// the browser's cookie: the key to enter, or the access to confirm.
pub async fn resume(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let Some(browser) = browser_cookie(&headers) else {
        return over_page(&alter_core::Error::NotFound(
            alter_core::Entity::ConnectSession,
        ));
    };
    match state.vault.resume_page(&browser).await {
        Ok(view) => resume_form(&view).into_response(),
        Err(error) => over_page(&error),
    }
}

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    value: Option<String>,
}

/// `POST /connect/resume`: the user's key or confirmation. The cookie is `SameSite=Lax`, so
/// another site cannot post here for the user.
pub async fn submit(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Form(form): Form<KeyForm>,
) -> Response {
    let Some(browser) = browser_cookie(&headers) else {
        return over_page(&alter_core::Error::NotFound(
            alter_core::Entity::ConnectSession,
        ));
    };
    let value = form
        .value
        .map(|v| alter_crypto::SecretString::from(v.trim().to_owned()));
    match state.vault.submit_managed(&browser, value).await {
        Ok(outcome) => {
            if let Some(url) = &outcome.session.settings.return_url {
                let grant = outcome.grant_id.to_string();
                return Redirect::to(&with_query(
                    url,
                    &[("status", "success"), ("grant_id", &grant)],
                ))
                .into_response();
            }
            pages::message(
                StatusCode::OK,
                "Done",
                "Your access is saved. You can close this window and return to the app.",
            )
        }
        Err(error) => over_page(&error),
    }
}

/// The form of a signed-in managed-secret session.
fn resume_form(view: &ResumeView) -> Page {
    let secret = pages::escape(&view.secret_name);
    let mut body = format!(
        "<p><strong>{app}</strong> asks for access to your <strong>{secret}</strong> account.</p>",
        app = pages::escape(&view.app_name),
    );
    if let Some(agent) = &view.agent_name {
        body.push_str(&format!(
            "<p>The agent <strong>{}</strong> will be able to use it on your behalf. You can \
             revoke that at any time.</p>",
            pages::escape(agent)
        ));
    }
    let path = view
        .session
        .settings
        .managed
        .as_ref()
        .map(|m| m.path)
        .unwrap_or(ManagedPath::KeyEntry);
    match path {
        ManagedPath::FastPath => body.push_str(
            "<form method=\"post\" action=\"resume\"><p>You already have access; nothing new \
             is stored.</p><button type=\"submit\">Confirm</button></form>",
        ),
        ManagedPath::KeyEntry | ManagedPath::Repair => body.push_str(&format!(
            "<form method=\"post\" action=\"resume\"><p><label for=\"value\">Your {secret} key\
             </label><br><input id=\"value\" name=\"value\" type=\"password\" \
             autocomplete=\"off\" required maxlength=\"8192\"></p>\
             <button type=\"submit\">Save</button></form>"
        )),
    }
    Page::new(StatusCode::OK, "Give access", body)
}

/// The page of a session that is over or unknown.
fn over_page(error: &alter_core::Error) -> Response {
    match error {
        alter_core::Error::Invalid(message) => {
            pages::message(StatusCode::BAD_REQUEST, "Cannot connect", message)
        }
        alter_core::Error::NotFound(_) | alter_core::Error::ConnectSessionOver(_) => {
            pages::message(
                StatusCode::NOT_FOUND,
                "This link is no longer valid",
                "This Connect link has expired or was already used. Start again from the app.",
            )
        }
        other => {
            tracing::error!(error = %other, "the Connect page failed");
            pages::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Something went wrong",
                "Try again in a moment.",
            )
        }
    }
}

/// `url` with `pairs` added to its query.
fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.query_pairs_mut().extend_pairs(pairs);
            parsed.to_string()
        }
        Err(_) => url.to_owned(),
    }
}
