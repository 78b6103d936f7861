//! The Wallet (`/wallet/{app}`): an app's end user signs in through the app's identity provider
//! and sees and takes back what they granted. Every page needs a wallet session of this app
//! (a session of another app is no session here: its cookie is not even sent, being scoped to
//! its own app's path, and is refused if presented); every change is a [`Form`] (same-origin,
//! CSRF token) and calls the same core function as its `/user/v1` or admin API twin, acting as
//! the signed-in user, so it is checked and audited alike.
//!
//! Sign-in reuses the app's sign-in client (`signin.rs`: discovery, PKCE, ID-token check at
//! `/auth/callback`); the browser that started it carries a short-lived cookie with the
//! sign-in session's token, so the callback knows the ID token is the Wallet's to take (and a
//! callback in another browser opens no wallet session).

use alter_core::agents::AgentStatus;
use alter_core::approvals::{Approval, ApprovalStatus};
use alter_core::audit::{Decision, EventFilter};
use alter_core::browser_sessions::{BrowserSession, BrowserSessionKind};
use alter_core::delegations::{DelegateOptions, DelegationOf};
use alter_core::grants::{GrantFilter, GrantState, ListGrants, MAX_PAGE, Principal};
use alter_core::identity::SignedInUser;
use alter_core::ids::{AgentId, AppId, ApprovalId, GrantId};
use alter_core::signin::{ClaimedSignIn, SESSION_LIFETIME_SECONDS};
use alter_core::subject::Subject;
use alter_core::time::Timestamp;
use alter_core::wallet::{Extension, SignInAdmission};
use alter_core::{Entity, Error};
use alter_crypto::ExposeSecret;
use alter_upstream::oauth::{Pkce, authorization_url};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Serialize;
use std::collections::BTreeMap;

use super::session::{Form, Peer, Session, UiKind, cookie, peer_ip, same_origin, set_cookie};
use super::{Layout, Page, message, render, root_path};
use crate::routes::views;
use crate::state::AppState;

/// How long a wallet session lasts (absolute).
pub const WALLET_SESSION_SECONDS: i64 = 8 * 3600;
/// The cookie of a wallet session (scoped to `/wallet/{app}`).
const SESSION_COOKIE: &str = "alter_wallet";
/// The cookie of a wallet sign-in under way (scoped to `/auth/callback`): the sign-in
/// session's token, `~`, and where to go afterwards.
const SIGN_IN_COOKIE: &str = "alter_wallet_signin";

/// The Wallet's sessions.
#[derive(Debug)]
pub struct WalletUi;

/// The `{app}` of a wallet path.
fn path_app(parts: &Parts) -> Option<AppId> {
    let path = parts.uri.path();
    let rest = path.split("/wallet/").nth(1)?;
    AppId::parse(rest.split('/').next()?)
}

impl UiKind for WalletUi {
    const KIND: BrowserSessionKind = BrowserSessionKind::Wallet;
    const COOKIE: &'static str = SESSION_COOKIE;

    fn cookie_path(parts: &Parts) -> Option<String> {
        path_app(parts).map(|app| format!("/wallet/{app}"))
    }

    fn sign_in_path(parts: &Parts) -> Option<String> {
        let app = path_app(parts)?;
        let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
        Some(format!(
            "/wallet/{app}/sign-in?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        ))
    }

    fn admits(session: &BrowserSession, parts: &Parts) -> bool {
        session.app_id.is_some() && session.app_id == path_app(parts)
    }
}

/// The signed-in user of a wallet session, or a page that says why not.
struct Me {
    app: AppId,
    user: SignedInUser,
    csrf: String,
}

impl Me {
    fn subject(&self) -> Subject<'_> {
        Subject::User {
            app: self.app,
            user: &self.user,
        }
    }
}

async fn me(state: &AppState, session: &Session<WalletUi>) -> Result<Me, Response> {
    let Some(app) = session.session.app_id else {
        return Err(signed_out(state));
    };
    match state.vault.wallet_user(&session.session, app).await {
        Ok(Some(user)) => Ok(Me {
            app,
            user,
            csrf: session.csrf.clone(),
        }),
        Ok(None) => Err(signed_out(state)),
        Err(e) => Err(failure(state, e)),
    }
}

fn signed_out(state: &AppState) -> Response {
    message(
        state,
        StatusCode::FORBIDDEN,
        "Signed out",
        "This session no longer signs you in. Sign in again.",
    )
    .into_response()
}

/// A domain error as a page: "not found" for anything out of reach, the message for bad input,
/// a generic page for the rest (logged).
pub(crate) fn failure(state: &AppState, error: Error) -> Response {
    let api = crate::error::ApiError::from(error);
    let status = api.status();
    let text = if status.is_server_error() {
        "The vault cannot answer right now. Try again in a moment.".to_owned()
    } else {
        api.body().message.clone()
    };
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        s if s.is_server_error() => "Unavailable",
        _ => "Not done",
    };
    message(state, status, title, &text).into_response()
}

/// What a wallet page's handler answers: the page, or the page that says why not.
type Answer = Result<Response, Response>;

/// A domain error as its page ([`failure`]), so handlers can use `?`.
trait OrPage<T> {
    fn or_page(self, state: &AppState) -> Result<T, Response>;
}

impl<T> OrPage<T> for Result<T, Error> {
    fn or_page(self, state: &AppState) -> Result<T, Response> {
        self.map_err(|e| failure(state, e))
    }
}

/// The grant (or delegation) a path names; anything else is "not found".
fn grant_id(text: &str) -> Result<GrantId, Error> {
    GrantId::parse_lenient(text).ok_or(Error::NotFound(Entity::Grant))
}

/// The signed-in user of a form posted to a grant's (or delegation's) path, and that grant.
async fn form_on_grant(
    state: &AppState,
    form: &Form<WalletUi>,
    grant: &str,
) -> Result<(Me, GrantId), Response> {
    Ok((
        me(state, &form.session).await?,
        grant_id(grant).or_page(state)?,
    ))
}

/// The approval a path names; anything else is "not found".
fn approval_id(text: &str) -> Result<ApprovalId, Error> {
    ApprovalId::parse_lenient(text).ok_or(Error::NotFound(Entity::Approval))
}

/// What the layout shows of a wallet page (no `Debug`: it holds the CSRF token).
#[derive(Serialize)]
struct Chrome<'a, T: Serialize> {
    site: &'a str,
    home: String,
    nav: Vec<NavItem>,
    who: String,
    sign_out: String,
    csrf: &'a str,
    notice: Option<&'static str>,
    #[serde(flatten)]
    page: T,
}

#[derive(Debug, Serialize)]
struct NavItem {
    label: &'static str,
    href: String,
    current: bool,
}

/// The wallet's pages, for the navigation.
const SECTIONS: [(&str, &str); 3] = [
    ("", "Connections"),
    ("/activity", "Activity"),
    ("/approvals", "Approvals"),
];

fn base(state: &AppState, app: AppId) -> String {
    format!("{}/wallet/{app}", root_path(state))
}

/// Renders a wallet page with the layout's chrome.
fn wallet_page<T: Serialize>(
    state: &AppState,
    me: &Me,
    section: &str,
    template: &str,
    title: &str,
    notice: Option<&'static str>,
    page: T,
) -> Page {
    let home = base(state, me.app);
    let who = me
        .user
        .user
        .display_name
        .clone()
        .or_else(|| me.user.user.email.clone())
        .unwrap_or_else(|| me.user.user.subject.clone());
    render(
        StatusCode::OK,
        template,
        Layout {
            root: root_path(state),
            title,
            page: Chrome {
                site: "Alter Wallet",
                nav: SECTIONS
                    .iter()
                    .map(|(path, label)| NavItem {
                        label,
                        href: format!("{home}{path}"),
                        current: *path == section,
                    })
                    .collect(),
                sign_out: format!("{home}/sign-out"),
                home,
                who,
                csrf: &me.csrf,
                notice,
                page,
            },
        },
    )
}

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/wallet/{app}", get(home))
        .route(
            "/wallet/{app}/sign-in",
            get(sign_in_page).post(start_sign_in),
        )
        .route("/wallet/{app}/sign-out", post(sign_out))
        .route("/wallet/{app}/grants/{grant}", get(grant_page))
        .route("/wallet/{app}/grants/{grant}/revoke", post(revoke_grant))
        .route("/wallet/{app}/grants/{grant}/delegations", post(delegate))
        .route("/wallet/{app}/grants/{grant}/extend", post(extend))
        .route(
            "/wallet/{app}/delegations/{delegation}/revoke",
            post(revoke_delegation),
        )
        .route("/wallet/{app}/activity", get(activity))
        .route("/wallet/{app}/approvals", get(approvals))
        .route(
            "/wallet/{app}/approvals/{approval}",
            get(approval_page).post(decide),
        )
}

// ---- sign-in ---------------------------------------------------------------------------

#[derive(Debug, serde::Deserialize)]
struct Next {
    next: Option<String>,
}

/// Where to go after signing in: a page of this app's wallet (given with or without the
/// public root), or its home. Nothing else: no other app, site or sign-in page.
fn safe_next(state: &AppState, app: AppId, next: Option<&str>) -> String {
    let home = base(state, app);
    let Some(next) = next else { return home };
    let path = next.strip_prefix(root_path(state)).unwrap_or(next);
    let own = format!("/wallet/{app}");
    let inside =
        path == own || path.starts_with(&format!("{own}/")) || path.starts_with(&format!("{own}?"));
    let plain = path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
        && !path.contains("//")
        && !path.contains("/sign-");
    if inside && plain {
        format!("{}{path}", root_path(state))
    } else {
        home
    }
}

/// `GET /wallet/{app}/sign-in`: one button, a form that posts here and is redirected to the
/// app's identity provider.
async fn sign_in_page(
    State(state): State<AppState>,
    Path(app): Path<String>,
    axum::extract::Query(next): axum::extract::Query<Next>,
) -> Response {
    let Some(app) = AppId::parse_lenient(&app) else {
        return not_found(&state);
    };
    let client = match state.vault.get_sign_in(app).await {
        Ok(client) if client.gap().is_none() => client,
        _ => {
            return message(
                &state,
                StatusCode::NOT_FOUND,
                "Wallet not available",
                "This app has no Wallet: its identity provider is not set up for sign-in.",
            )
            .into_response();
        }
    };
    let idp_origin = client
        .authorize_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization());
    #[derive(Serialize)]
    struct SignIn {
        action: String,
        next: String,
    }
    render(
        StatusCode::OK,
        "wallet/signin.html",
        Layout {
            root: root_path(&state),
            title: "Sign in to your Wallet",
            page: SignIn {
                action: format!("{}/sign-in", base(&state, app)),
                next: safe_next(&state, app, next.next.as_deref()),
            },
        },
    )
    .form_targets(idp_origin.into_iter().collect())
    .into_response()
}

fn not_found(state: &AppState) -> Response {
    message(
        state,
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing here.",
    )
    .into_response()
}

/// `POST /wallet/{app}/sign-in`: starts a sign-in at the app's identity provider (OIDC code
/// flow with PKCE, the app's sign-in client) and sends the browser there.
async fn start_sign_in(
    State(state): State<AppState>,
    Path(app): Path<String>,
    peer: Peer,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !same_origin(&headers, &state) {
        return message(
            &state,
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Sign in from the Wallet's page.",
        )
        .into_response();
    }
    let Some(app) = AppId::parse_lenient(&app) else {
        return not_found(&state);
    };
    match state
        .vault
        .wallet_sign_in_allowed(app, peer_ip(&peer))
        .await
    {
        Ok(SignInAdmission::Allowed) => {}
        Ok(SignInAdmission::TooFast {
            retry_after_seconds,
        }) => return too_many_sign_ins(&state, retry_after_seconds),
        Ok(SignInAdmission::TooManyUnderWay) => {
            return message(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                "Too many sign-ins",
                "Too many sign-ins to this Wallet are under way. Try again in a few minutes.",
            )
            .into_response();
        }
        Err(e) => return failure(&state, e),
    }
    let fields = super::session::Fields::parse(&body).unwrap_or_default();
    let next = safe_next(&state, app, fields.get("next"));
    let pkce = match Pkce::new() {
        Ok(pkce) => pkce,
        Err(e) => return failure(&state, Error::Invalid(e.to_string())),
    };
    let started = match state.vault.start_sign_in(app, pkce.verifier()).await {
        Ok(started) => started,
        Err(Error::NotFound(_) | Error::NoIdentityProvider | Error::SignInNotConfigured(_)) => {
            return not_found(&state);
        }
        Err(e) => return failure(&state, e),
    };
    let url = match authorization_url(
        &started.endpoints,
        &started.client_id,
        &state.sign_in_redirect_uri(),
        &started.scopes,
        started.state.expose_secret(),
        Some(&pkce),
    ) {
        Ok(url) => url,
        Err(e) => {
            return failure(
                &state,
                Error::Invalid(format!("sign-in is not available: {e}")),
            );
        }
    };
    let value = format!(
        "{}~{}",
        started.session_token.expose_secret(),
        url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
    );
    let mut response = Redirect::to(url.as_str()).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            &state,
            SIGN_IN_COOKIE,
            &value,
            "/auth/callback",
            SESSION_LIFETIME_SECONDS,
        ),
    );
    response
}

/// `429` for a client address that takes sign-in steps too fast
/// ([`alter_core::wallet::SIGN_INS_PER_MINUTE_PER_ADDRESS`]), with `Retry-After`; nothing was
/// stored.
fn too_many_sign_ins(state: &AppState, retry_after_seconds: u64) -> Response {
    let mut response = message(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many sign-ins",
        "Too many sign-ins came from your network. Wait a minute, then try again.",
    )
    .into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        axum::http::HeaderValue::from(retry_after_seconds.max(1)),
    );
    response
}

/// At `/auth/callback`: whether this browser started the claimed sign-in from the Wallet, and
/// where it goes next.
pub fn wallet_sign_in(headers: &HeaderMap, claimed: &ClaimedSignIn) -> Option<String> {
    let value = cookie(headers, SIGN_IN_COOKIE)?;
    let (token, next) = value.split_once('~')?;
    let hash = alter_crypto::keys::token_hash(token);
    let next: String = url::form_urlencoded::parse(format!("n={next}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    alter_crypto::ct_eq(&hash, &claimed.session.token_hash).then_some(next)
}

/// Finishes a Wallet sign-in at `/auth/callback` (the ID token verified): opens the session,
/// sets its cookie (scoped to this app's wallet), forgets the sign-in cookie, and goes on.
pub async fn finish_sign_in(
    state: &AppState,
    claimed: &ClaimedSignIn,
    user: &alter_core::identity::AppUser,
    next: &str,
) -> Response {
    let app = claimed.session.app_id;
    let opened = match state
        .vault
        .open_wallet_session(claimed, user, WALLET_SESSION_SECONDS)
        .await
    {
        Ok(opened) => opened,
        Err(e) => return failure(state, e),
    };
    let next = safe_next(state, app, Some(next));
    let mut response = Redirect::to(&next).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(
            state,
            SESSION_COOKIE,
            opened.token.expose_secret(),
            &format!("/wallet/{app}"),
            WALLET_SESSION_SECONDS,
        ),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(state, SIGN_IN_COOKIE, "", "/auth/callback", 0),
    );
    super::asset_headers(headers);
    response
}

/// `POST /wallet/{app}/sign-out`.
async fn sign_out(State(state): State<AppState>, form: Form<WalletUi>) -> Response {
    let app = form.session.session.app_id;
    if let Err(e) = state
        .vault
        .close_browser_session(BrowserSessionKind::Wallet, form.session.token())
        .await
    {
        return failure(&state, e);
    }
    let Some(app) = app else {
        return signed_out(&state);
    };
    let mut response = message(
        &state,
        StatusCode::OK,
        "Signed out",
        "You are signed out of your Wallet.",
    )
    .into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, "", &format!("/wallet/{app}"), 0),
    );
    response
}

// ---- pages -----------------------------------------------------------------------------

/// After a change, the page it redirects to says what happened (fixed texts, by key: nothing
/// the request carried is shown back).
fn notice_of(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "revoked" => "The grant is revoked. The next call that uses it will fail.",
        "delegated" => "The agent can now act with this grant.",
        "undelegated" => "The agent can no longer act with this grant.",
        "extended" => "The grant now lasts longer.",
        "approved" => "Approved: the call is being made.",
        "denied" => "Denied: the call will not be made.",
        _ => return None,
    })
}

#[derive(Debug, Default, serde::Deserialize)]
struct Done {
    done: Option<String>,
}

/// A grant as the Wallet shows it: the wire view (provider, account, scopes, status, last
/// used, end) plus the agents acting with it.
#[derive(Debug, Serialize)]
struct GrantCard {
    #[serde(flatten)]
    item: serde_json::Value,
    own: bool,
    href: String,
    agents: Vec<AgentUse>,
}

/// One delegation of a grant to an agent.
#[derive(Debug, Serialize)]
struct AgentUse {
    delegation_id: String,
    agent: String,
    status: String,
    expires_at: Option<String>,
    revoke: String,
}

/// The app's agents (deleted ones too, for history): id → the name people see.
async fn agent_names(state: &AppState, me: &Me) -> Result<BTreeMap<String, String>, Error> {
    let (agents, _) = state
        .vault
        .list_agents(&me.subject(), true, MAX_PAGE, 0)
        .await?;
    Ok(agents
        .iter()
        .map(|a| {
            (
                a.id.to_string(),
                a.display_name.clone().unwrap_or_else(|| a.name.clone()),
            )
        })
        .collect())
}

/// The user's grants (roots), each with the delegations the user made of it.
async fn my_grants(state: &AppState, me: &Me) -> Result<Vec<GrantCard>, Error> {
    let subject = me.subject();
    let page = state
        .vault
        .list_grants(
            &subject,
            ListGrants {
                limit: MAX_PAGE,
                offset: 0,
                filter: GrantFilter::default(),
                user_token: None,
            },
        )
        .await?;
    let names = agent_names(state, me).await?;
    let now = state.vault.now();
    let home = base(state, me.app);
    let mut cards = Vec::new();
    for view in page
        .grants
        .iter()
        .filter(|v| v.grant.parent_grant_id.is_none())
    {
        let grant = &view.grant;
        let agents = page
            .grants
            .iter()
            .filter(|d| {
                d.grant.parent_grant_id == Some(grant.id)
                    && d.grant.delegated_by == Some(me.user.user.id)
                    && d.grant.state(now) == GrantState::Active
            })
            .map(|d| {
                let agent = d
                    .grant
                    .agent_id()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                AgentUse {
                    delegation_id: d.grant.id.to_string(),
                    agent: names.get(&agent).cloned().unwrap_or(agent),
                    status: d.grant.state(now).as_str().to_owned(),
                    expires_at: d.grant.expires_at.map(|t| t.to_rfc3339()),
                    revoke: format!("{home}/delegations/{}/revoke", d.grant.id),
                }
            })
            .collect();
        cards.push(GrantCard {
            item: serde_json::to_value(views::grant_item(view, now)).unwrap_or_default(),
            own: grant.principal == Principal::User(me.user.user.id),
            href: format!("{home}/grants/{}", grant.id),
            agents,
        });
    }
    Ok(cards)
}

/// `GET /wallet/{app}`: my connections and secrets, and the agents acting with each.
async fn home(
    State(state): State<AppState>,
    session: Session<WalletUi>,
    axum::extract::Query(done): axum::extract::Query<Done>,
) -> Answer {
    let me = me(&state, &session).await?;
    let grants = my_grants(&state, &me).await.or_page(&state)?;
    #[derive(Serialize)]
    struct Home {
        grants: Vec<GrantCard>,
        base: String,
    }
    Ok(wallet_page(
        &state,
        &me,
        "",
        "wallet/home.html",
        "Your connections",
        notice_of(done.done.as_deref()),
        Home {
            grants,
            base: base(&state, me.app),
        },
    )
    .into_response())
}

/// `GET /wallet/{app}/grants/{grant}`: one grant, its agents, delegate and extend.
async fn grant_page(
    State(state): State<AppState>,
    session: Session<WalletUi>,
    Path((_, grant)): Path<(String, String)>,
    axum::extract::Query(done): axum::extract::Query<Done>,
) -> Answer {
    let me = me(&state, &session).await?;
    let grants = my_grants(&state, &me).await.or_page(&state)?;
    let card = grants
        .into_iter()
        .find(|c| c.item.get("grant_id").and_then(|v| v.as_str()) == Some(grant.as_str()))
        .ok_or(Error::NotFound(Entity::Grant))
        .or_page(&state)?;
    let subject = me.subject();
    let (agents, _) = state
        .vault
        .list_agents(&subject, false, MAX_PAGE, 0)
        .await
        .or_page(&state)?;
    let agents: Vec<(String, String)> = agents
        .iter()
        .filter(|a| a.status == AgentStatus::Active)
        .map(|a| {
            (
                a.id.to_string(),
                a.display_name.clone().unwrap_or_else(|| a.name.clone()),
            )
        })
        .collect();
    // How far it may be extended: a few choices within the limit.
    let held = state
        .vault
        .user_grant(&subject, grant_id(&grant).or_page(&state)?)
        .await
        .or_page(&state)?;
    let extension = state
        .vault
        .grant_extension(&me.user, &held)
        .await
        .or_page(&state)?;
    let extend_choices = match (extension, held.expires_at) {
        (Extension::UpTo(limit), Some(end)) => extension_choices(end, limit),
        _ => Vec::new(),
    };
    let home = base(&state, me.app);
    #[derive(Serialize)]
    struct GrantPage {
        grant: GrantCard,
        agents: Vec<(String, String)>,
        revoke: String,
        delegate: String,
        extend: String,
        extend_choices: Vec<(String, String)>,
        max_ttl_hours: Option<i64>,
    }
    let now = state.vault.now();
    let max_ttl_hours = held
        .expires_at
        .map(|end| (now.seconds_until(end) / 3600).max(1));
    Ok(wallet_page(
        &state,
        &me,
        "",
        "wallet/grant.html",
        "Grant",
        notice_of(done.done.as_deref()),
        GrantPage {
            revoke: format!("{home}/grants/{}/revoke", held.id),
            delegate: format!("{home}/grants/{}/delegations", held.id),
            extend: format!("{home}/grants/{}/extend", held.id),
            grant: card,
            agents,
            extend_choices,
            max_ttl_hours,
        },
    )
    .into_response())
}

/// Ends to offer: a week, a month and three months past the current end, and the limit, each
/// within the limit. `(value, label)`.
fn extension_choices(end: Timestamp, limit: Timestamp) -> Vec<(String, String)> {
    let mut choices = Vec::new();
    for (days, label) in [
        (7, "1 more week"),
        (30, "1 more month"),
        (90, "3 more months"),
    ] {
        let until = end.plus_seconds(days * 24 * 3600);
        if until < limit {
            choices.push((
                until.to_rfc3339(),
                format!("{label} (until {})", day(until)),
            ));
        }
    }
    choices.push((
        limit.to_rfc3339(),
        format!("As long as allowed (until {})", day(limit)),
    ));
    choices
}

fn day(t: Timestamp) -> String {
    t.to_rfc3339().chars().take(10).collect()
}

/// Redirects (303) to a wallet page after a change.
fn done(state: &AppState, app: AppId, path: &str, what: &str) -> Response {
    Redirect::to(&format!("{}{path}?done={what}", base(state, app))).into_response()
}

/// `POST /wallet/{app}/grants/{grant}/revoke`: irreversible; the next call fails.
async fn revoke_grant(
    State(state): State<AppState>,
    Path((_, grant)): Path<(String, String)>,
    form: Form<WalletUi>,
) -> Answer {
    let (me, id) = form_on_grant(&state, &form, &grant).await?;
    let reason = Some("revoked by the user in the Wallet".to_owned());
    match state
        .vault
        .revoke_grant(&me.subject(), id, reason, None)
        .await
    {
        // A second click (or a retry) finds it revoked already: the same outcome.
        Ok(_) | Err(Error::GrantRevoked(_)) => Ok(done(&state, me.app, "", "revoked")),
        Err(e) => Err(failure(&state, e)),
    }
}

/// `POST /wallet/{app}/grants/{grant}/delegations`: lets an agent act with the grant, for at
/// most `ttl_hours` (never past the grant's end).
async fn delegate(
    State(state): State<AppState>,
    Path((_, grant)): Path<(String, String)>,
    form: Form<WalletUi>,
) -> Answer {
    let (me, grant_id) = form_on_grant(&state, &form, &grant).await?;
    let agent = form
        .fields
        .text("agent_id")
        .and_then(AgentId::parse_lenient)
        .ok_or(Error::NotFound(Entity::Agent))
        .or_page(&state)?;
    let ttl_seconds = match form.fields.text("ttl_hours") {
        None => None,
        Some(hours) => match hours.parse::<i64>() {
            Ok(hours) if hours > 0 => Some(hours.saturating_mul(3600)),
            _ => {
                return Err(failure(
                    &state,
                    Error::Invalid("the lifetime must be a whole number of hours".into()),
                ));
            }
        },
    };
    let options = DelegateOptions {
        ttl_seconds,
        delegable: None,
        scope_constraint: None,
    };
    state
        .vault
        .delegate(&me.subject(), grant_id, agent, options)
        .await
        .or_page(&state)?;
    Ok(done(
        &state,
        me.app,
        &format!("/grants/{grant_id}"),
        "delegated",
    ))
}

/// `POST /wallet/{app}/delegations/{delegation}/revoke`: one agent loses the grant; the grant
/// and the other agents keep it.
async fn revoke_delegation(
    State(state): State<AppState>,
    Path((_, delegation)): Path<(String, String)>,
    form: Form<WalletUi>,
) -> Answer {
    let (me, id) = form_on_grant(&state, &form, &delegation).await?;
    // The delegation, revoked now or before (a second click): the same outcome.
    let child = state
        .vault
        .revoke_delegation(&me.subject(), Some(id), DelegationOf::Itself)
        .await
        .and_then(|child| child.ok_or(Error::NotFound(Entity::Grant)))
        .or_page(&state)?;
    let path = child
        .parent_grant_id
        .map(|p| format!("/grants/{p}"))
        .unwrap_or_default();
    Ok(done(&state, me.app, &path, "undelegated"))
}

/// `POST /wallet/{app}/grants/{grant}/extend`: a later end (`until`), up to the maximum.
async fn extend(
    State(state): State<AppState>,
    Path((_, grant)): Path<(String, String)>,
    form: Form<WalletUi>,
) -> Answer {
    let (me, id) = form_on_grant(&state, &form, &grant).await?;
    let until = form
        .fields
        .text("until")
        .and_then(Timestamp::parse_rfc3339)
        .ok_or_else(|| Error::InvalidGrantLifetime("choose when the grant should end".into()))
        .or_page(&state)?;
    state
        .vault
        .extend_grant(&me.subject(), id, until)
        .await
        .or_page(&state)?;
    Ok(done(&state, me.app, &format!("/grants/{id}"), "extended"))
}

// ---- activity --------------------------------------------------------------------------

#[derive(Debug, Default, serde::Deserialize)]
struct ActivityQuery {
    agent: Option<String>,
    provider: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
    format: Option<String>,
}

/// One call of the activity feed.
#[derive(Debug, Serialize)]
struct Call {
    at: String,
    agent: String,
    provider: String,
    method: String,
    target: String,
    outcome: String,
    reason: String,
}

/// The calls made with the user's credentials (releases and refusals), filtered.
async fn calls(state: &AppState, me: &Me, query: &ActivityQuery) -> Result<Vec<Call>, Error> {
    let date = |text: &Option<String>, field: &str| -> Result<Option<Timestamp>, Error> {
        match text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(text) => Timestamp::parse_rfc3339(&format!("{text}T00:00:00Z"))
                .map(Some)
                .ok_or_else(|| Error::Invalid(format!("{field} must be a date (YYYY-MM-DD)"))),
        }
    };
    let decision = match query.outcome.as_deref() {
        None | Some("") => None,
        Some("allowed") => Some(Decision::Allow),
        Some("refused") => Some(Decision::Deny),
        Some(_) => return Err(Error::Invalid("outcome must be allowed or refused".into())),
    };
    let filter = EventFilter {
        since: date(&query.since, "from")?,
        // The whole "until" day is included.
        until: date(&query.until, "to")?.map(|t| t.plus_seconds(24 * 3600)),
        decision,
        ..EventFilter::default()
    };
    let events = state.vault.user_activity(me.app, &me.user, filter).await?;
    let names = agent_names(state, me).await?;
    let wanted = |value: &str, filter: &Option<String>| {
        filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .is_none_or(|f| value.eq_ignore_ascii_case(f))
    };
    let mut out = Vec::new();
    // Only calls come back (`ACTIVITY_ACTIONS`, filtered in the query).
    for stored in events {
        let event = stored.event;
        let detail = |key: &str| {
            event
                .details
                .as_ref()
                .and_then(|d| d.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let provider = detail("provider_id")
            .or_else(|| detail("secret_slug"))
            .unwrap_or_default();
        let agent = event
            .actor
            .agent_id
            .map(|a| {
                let id = a.to_string();
                names.get(&id).cloned().unwrap_or(id)
            })
            .unwrap_or_else(|| "the app".into());
        let (method, target) = match &event.request {
            Some(request) => (request.method.clone(), host_and_path(&request.url)),
            None => (String::new(), String::new()),
        };
        let call = Call {
            at: event.at.to_rfc3339(),
            agent,
            provider,
            method,
            target,
            outcome: match event.decision {
                Decision::Allow => "allowed",
                Decision::Deny => "refused",
            }
            .into(),
            reason: event.reason.clone().unwrap_or_default(),
        };
        if wanted(&call.agent, &query.agent) && wanted(&call.provider, &query.provider) {
            out.push(call);
        }
    }
    Ok(out)
}

/// `scheme://host/path?names` → `host/path`.
fn host_and_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('?').next().unwrap_or_default().to_owned()
}

/// `GET /wallet/{app}/activity[?format=csv]`.
async fn activity(
    State(state): State<AppState>,
    session: Session<WalletUi>,
    axum::extract::Query(query): axum::extract::Query<ActivityQuery>,
) -> Answer {
    let me = me(&state, &session).await?;
    let calls = calls(&state, &me, &query).await.or_page(&state)?;
    if query.format.as_deref() == Some("csv") {
        return Ok(csv(&calls));
    }
    let home = base(&state, me.app);
    #[derive(Serialize)]
    struct Activity<'a> {
        calls: Vec<Call>,
        query: &'a ActivityQuery,
        action: String,
        csv: String,
    }
    let mut csv_query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("agent", &query.agent),
        ("provider", &query.provider),
        ("outcome", &query.outcome),
        ("since", &query.since),
        ("until", &query.until),
    ] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            csv_query.append_pair(name, value);
        }
    }
    csv_query.append_pair("format", "csv");
    Ok(wallet_page(
        &state,
        &me,
        "/activity",
        "wallet/activity.html",
        "Activity",
        None,
        Activity {
            calls,
            query: &query,
            action: format!("{home}/activity"),
            csv: format!("{home}/activity?{}", csv_query.finish()),
        },
    )
    .into_response())
}

impl Serialize for ActivityQuery {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(5))?;
        map.serialize_entry("agent", &self.agent)?;
        map.serialize_entry("provider", &self.provider)?;
        map.serialize_entry("outcome", &self.outcome)?;
        map.serialize_entry("since", &self.since)?;
        map.serialize_entry("until", &self.until)?;
        map.end()
    }
}

/// The calls as CSV (RFC 4180, every cell quoted; a cell a spreadsheet could run as a formula
/// is prefixed `'`).
fn csv(calls: &[Call]) -> Response {
    let mut out = String::from("time,agent,provider,method,host_and_path,outcome,reason\r\n");
    for c in calls {
        let row = [
            &c.at,
            &c.agent,
            &c.provider,
            &c.method,
            &c.target,
            &c.outcome,
            &c.reason,
        ]
        .map(|v| super::csv::cell(v))
        .join(",");
        out.push_str(&row);
        out.push_str("\r\n");
    }
    let mut response = out.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        axum::http::HeaderValue::from_static("attachment; filename=\"activity.csv\""),
    );
    super::asset_headers(headers);
    response
}

// ---- approvals -------------------------------------------------------------------------

/// An approval as a row.
#[derive(Debug, Serialize)]
struct ApprovalRow {
    id: String,
    status: String,
    method: String,
    url: String,
    reason: String,
    created_at: String,
    expires_at: String,
    href: String,
}

fn approval_row(state: &AppState, app: AppId, a: &Approval) -> ApprovalRow {
    ApprovalRow {
        id: a.id.to_string(),
        status: a.status.as_str().to_owned(),
        method: a.method.clone(),
        url: a.url.clone(),
        reason: a.reason.clone(),
        created_at: a.created_at.to_rfc3339(),
        expires_at: a.expires_at.to_rfc3339(),
        href: format!("{}/approvals/{}", base(state, app), a.id),
    }
}

/// `GET /wallet/{app}/approvals`: the calls waiting for me, then the decided ones.
async fn approvals(State(state): State<AppState>, session: Session<WalletUi>) -> Answer {
    let me = me(&state, &session).await?;
    let all = state
        .vault
        .user_approvals(me.app, &me.user, None)
        .await
        .or_page(&state)?;
    let (pending, decided): (Vec<_>, Vec<_>) = all
        .iter()
        .partition(|a| a.status == ApprovalStatus::Pending);
    #[derive(Serialize)]
    struct Approvals {
        pending: Vec<ApprovalRow>,
        decided: Vec<ApprovalRow>,
    }
    Ok(wallet_page(
        &state,
        &me,
        "/approvals",
        "wallet/approvals.html",
        "Approvals",
        None,
        Approvals {
            pending: pending
                .iter()
                .map(|a| approval_row(&state, me.app, a))
                .collect(),
            decided: decided
                .iter()
                .map(|a| approval_row(&state, me.app, a))
                .collect(),
        },
    )
    .into_response())
}

/// `GET /wallet/{app}/approvals/{approval}` (the approval URL): the exact request — method,
/// URL, headers, body (escaped) — and approve / deny.
async fn approval_page(
    State(state): State<AppState>,
    session: Session<WalletUi>,
    Path((_, approval)): Path<(String, String)>,
    axum::extract::Query(done): axum::extract::Query<Done>,
) -> Answer {
    let me = me(&state, &session).await?;
    let id = approval_id(&approval).or_page(&state)?;
    let (approval, request) = state
        .vault
        .user_approval(me.app, &me.user, id)
        .await
        .or_page(&state)?;
    #[derive(Serialize)]
    struct ApprovalPage {
        approval: ApprovalRow,
        pending: bool,
        request_method: String,
        request_url: String,
        request_headers: Vec<(String, String)>,
        request_body: Option<String>,
        decided_by: Option<String>,
        decision_reason: Option<String>,
        action: String,
    }
    let body = request
        .body
        .as_ref()
        .map(|b| serde_json::to_string_pretty(b).unwrap_or_default());
    Ok(wallet_page(
        &state,
        &me,
        "/approvals",
        "wallet/approval.html",
        "Approval",
        notice_of(done.done.as_deref()),
        ApprovalPage {
            pending: approval.status == ApprovalStatus::Pending,
            action: format!("{}/approvals/{}", base(&state, me.app), approval.id),
            approval: approval_row(&state, me.app, &approval),
            request_method: request.method,
            request_url: request.url,
            request_headers: request.headers,
            request_body: body,
            decided_by: approval.decided_by,
            decision_reason: approval.decision_reason,
        },
    )
    .into_response())
}

/// `POST /wallet/{app}/approvals/{approval}`: `decision` = approve | deny, with a `reason`.
async fn decide(
    State(state): State<AppState>,
    Path((_, approval)): Path<(String, String)>,
    form: Form<WalletUi>,
) -> Answer {
    let me = me(&state, &form.session).await?;
    let id = approval_id(&approval).or_page(&state)?;
    let approve = match form.fields.get("decision") {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return Err(failure(
                &state,
                Error::Invalid("decide approve or deny".into()),
            ));
        }
    };
    let reason = form.fields.text("reason").map(str::to_owned);
    state
        .vault
        .decide_user_approval(&me.subject(), id, approve, reason)
        .await
        .or_page(&state)?;
    let what = if approve { "approved" } else { "denied" };
    Ok(done(&state, me.app, &format!("/approvals/{id}"), what))
}
