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

use alter_core::Error;
use alter_core::browser_sessions::{BrowserSession, BrowserSessionKind};
use alter_core::identity::SignedInUser;
use alter_core::ids::AppId;
use alter_core::signin::{ClaimedSignIn, SESSION_LIFETIME_SECONDS};
use alter_core::subject::Subject;
use alter_crypto::ExposeSecret;
use alter_upstream::oauth::{Pkce, authorization_url};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Serialize;

use super::session::{Form, Session, UiKind, cookie, same_origin, set_cookie};
use super::{Layout, Page, message, render, root_path};
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

/// What the layout shows of a wallet page.
#[derive(Debug, Serialize)]
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
}

// ---- sign-in ---------------------------------------------------------------------------

#[derive(Debug, serde::Deserialize)]
struct Next {
    next: Option<String>,
}

/// Where to go after signing in: a path of this app's wallet, or its home.
fn safe_next(state: &AppState, app: AppId, next: Option<&str>) -> String {
    let home = base(state, app);
    match next {
        Some(next)
            if (next == home
                || next.starts_with(&format!("{home}/"))
                || next.starts_with(&format!("/wallet/{app}")))
                && next
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'\\' && b != b'~')
                && !next.contains("//")
                && !next.contains("/sign-") =>
        {
            if next.starts_with(&home) {
                next.to_owned()
            } else {
                format!("{}{next}", root_path(state))
            }
        }
        _ => home,
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
    let value = format!("{}~{next}", started.session_token.expose_secret());
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

/// At `/auth/callback`: whether this browser started the claimed sign-in from the Wallet, and
/// where it goes next.
pub fn wallet_sign_in(headers: &HeaderMap, claimed: &ClaimedSignIn) -> Option<String> {
    let value = cookie(headers, SIGN_IN_COOKIE)?;
    let (token, next) = value.split_once('~')?;
    let hash = alter_crypto::keys::token_hash(token);
    alter_crypto::ct_eq(&hash, &claimed.session.token_hash).then(|| next.to_owned())
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

/// `GET /wallet/{app}`: my connections and secrets.
async fn home(State(state): State<AppState>, session: Session<WalletUi>) -> Response {
    let me = match me(&state, &session).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    #[derive(Serialize)]
    struct Home {}
    wallet_page(
        &state,
        &me,
        "",
        "wallet/home.html",
        "Your connections",
        None,
        Home {},
    )
    .into_response()
}
