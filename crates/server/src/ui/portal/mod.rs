//! The operator portal (`/portal`): run the vault from a browser. An operator signs in with the
//! admin token (compared like the admin API does: its SHA-256 against the stored hash, in
//! constant time) or an operator account (`alter operator add`; Argon2id, throttled). The
//! portal session is the foundation's `portal` kind, its cookie scoped to `/portal`.
//!
//! Every page works across apps; every change is a [`Form`] (same-origin, CSRF token) that
//! calls the same `Vault` function as its `/admin/v1` twin, inside [`acting_as`] so the app's
//! audit chain names the operator. Pages: [`apps`] (apps, keys, secrets, agents, identity and
//! OAuth providers), [`policy`] (rules, what-if, approvals), [`audit`] (log, chain status,
//! export, dashboard).

mod apps;
mod audit;
pub mod chart;
mod policy;

use std::net::SocketAddr;

use alter_core::Error;
use alter_core::browser_sessions::{BrowserSession, BrowserSessionKind};
use alter_core::ids::{AppId, Id};
use alter_core::operators::{ADMIN_TOKEN_OPERATOR, SignInOutcome, acting_as};
use alter_crypto::ExposeSecret;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Serialize;

use super::session::{Fields, Form, Session, UiKind, same_origin, set_cookie};
use super::{Layout, Page, message, render, root_path};
use crate::state::AppState;

/// How long a portal session lasts (absolute).
pub const PORTAL_SESSION_SECONDS: i64 = 8 * 3600;
/// The portal session's cookie (scoped to `/portal`).
const SESSION_COOKIE: &str = "alter_portal";
/// The stored subject of a session signed in with the admin token starts with this, followed
/// by [`admin_token_fingerprint`]: the session ends when the admin token changes.
const ADMIN_SUBJECT_PREFIX: &str = "admin:";

/// The first 16 hex digits of the admin token's hash (never the token, nor its whole hash).
fn admin_token_fingerprint(state: &AppState) -> String {
    hex::encode(&state.admin_token_hash[..8])
}

/// The portal session cookie: `SameSite=Strict`, as the portal has no cross-site sign-in flow
/// (the Wallet's, which has, is `Lax`).
fn portal_cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let lax = set_cookie(state, SESSION_COOKIE, value, "/portal", max_age);
    let strict = lax
        .to_str()
        .unwrap_or_default()
        .replace("; SameSite=Lax", "; SameSite=Strict");
    HeaderValue::from_str(&strict).unwrap_or(lax)
}

/// The portal's sessions.
#[derive(Debug)]
pub struct PortalUi;

impl UiKind for PortalUi {
    const KIND: BrowserSessionKind = BrowserSessionKind::Portal;
    const COOKIE: &'static str = SESSION_COOKIE;

    fn cookie_path(_: &Parts) -> Option<String> {
        Some("/portal".into())
    }

    fn sign_in_path(_: &Parts) -> Option<String> {
        Some("/portal/sign-in".into())
    }

    fn admits(session: &BrowserSession, _: &Parts) -> bool {
        // Portal sessions are operator-wide: bound to no app.
        session.app_id.is_none()
    }
}

/// The signed-in operator of a portal request.
pub(crate) struct Op {
    /// How events name them: a username, or [`ADMIN_TOKEN_OPERATOR`].
    name: String,
    /// The CSRF token for this session's forms.
    csrf: String,
}

impl Op {
    /// Runs a service call as this operator (named in the audit events it records).
    async fn act<F: Future>(&self, work: F) -> F::Output {
        acting_as(self.name.clone(), work).await
    }
}

/// Who a live portal session signs in: the admin token's holder, or an operator account that
/// still exists and whose password has not changed since the session began.
async fn op_of(state: &AppState, session: &Session<PortalUi>) -> Result<Op, Response> {
    let csrf = session.csrf.clone();
    let stored = &session.session;
    if let Some(fingerprint) = stored.subject.strip_prefix(ADMIN_SUBJECT_PREFIX) {
        let current = admin_token_fingerprint(state);
        return if alter_crypto::ct_eq(fingerprint.as_bytes(), current.as_bytes()) {
            Ok(Op {
                name: ADMIN_TOKEN_OPERATOR.into(),
                csrf,
            })
        } else {
            Err(signed_out(state))
        };
    }
    let Some(id) = Id::parse(&stored.subject) else {
        return Err(signed_out(state));
    };
    match state.vault.get_operator(id).await {
        Ok(operator) if operator.password_changed_at <= stored.created_at => Ok(Op {
            name: operator.username,
            csrf,
        }),
        Ok(_) | Err(Error::NotFound(_)) => Err(signed_out(state)),
        Err(e) => Err(failure(state, e)),
    }
}

/// The operator of a page view.
pub(crate) async fn viewer(state: &AppState, session: &Session<PortalUi>) -> Result<Op, Response> {
    op_of(state, session).await
}

/// The operator of a form.
pub(crate) async fn actor(state: &AppState, form: &Form<PortalUi>) -> Result<Op, Response> {
    op_of(state, &form.session).await
}

fn signed_out(state: &AppState) -> Response {
    let mut response = message(
        state,
        StatusCode::FORBIDDEN,
        "Signed out",
        "This session no longer signs you in to the portal. Sign in again.",
    )
    .into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, portal_cookie(state, "", 0));
    response
}

/// A domain error as a page, as the Wallet shows it (not found, bad input, or generic).
pub(crate) fn failure(state: &AppState, error: Error) -> Response {
    super::wallet::failure(state, error)
}

/// An app id from a path; anything else is an app that does not exist.
pub(crate) fn app_id(state: &AppState, text: &str) -> Result<AppId, Response> {
    AppId::parse_lenient(text)
        .ok_or_else(|| failure(state, Error::NotFound(alter_core::Entity::App)))
}

// ---- layout ----------------------------------------------------------------------------

/// What the layout shows of a portal page.
#[derive(Debug, Serialize)]
struct Chrome<'a, T: Serialize> {
    site: &'static str,
    home: String,
    nav: Vec<NavItem>,
    who: &'a str,
    sign_out: String,
    csrf: &'a str,
    notice: Option<&'static str>,
    /// The app's own section links, on an app's pages.
    app_nav: Vec<NavItem>,
    #[serde(flatten)]
    page: T,
}

#[derive(Debug, Serialize)]
pub(crate) struct NavItem {
    label: &'static str,
    href: String,
    current: bool,
}

/// The portal's sections.
const SECTIONS: [(&str, &str); 2] = [("", "Dashboard"), ("/apps", "Apps")];

/// An app's sections.
const APP_SECTIONS: [(&str, &str); 7] = [
    ("", "Keys"),
    ("/secrets", "Secrets"),
    ("/agents", "Agents"),
    ("/identity", "Identity & providers"),
    ("/policies", "Policies"),
    ("/approvals", "Approvals"),
    ("/audit", "Audit log"),
];

/// `{root}/portal`.
pub(crate) fn base(state: &AppState) -> String {
    format!("{}/portal", root_path(state))
}

/// `{root}/portal/apps/{app}`.
pub(crate) fn app_base(state: &AppState, app: AppId) -> String {
    format!("{}/apps/{app}", base(state))
}

/// Where a portal page sits: a portal section, or an app's section.
pub(crate) enum Place {
    /// `""` (dashboard) or `/apps`.
    Portal(&'static str),
    /// An app and its section path.
    App(AppId, &'static str),
}

/// Renders a portal page with the layout's chrome.
pub(crate) fn portal_page<T: Serialize>(
    state: &AppState,
    op: &Op,
    place: Place,
    template: &str,
    title: &str,
    notice: Option<&'static str>,
    page: T,
) -> Page {
    let home = base(state);
    let current_section = match place {
        Place::Portal(section) => section,
        Place::App(..) => "/apps",
    };
    let app_nav = match place {
        Place::App(app, section) => {
            let app_home = app_base(state, app);
            APP_SECTIONS
                .iter()
                .map(|(path, label)| NavItem {
                    label,
                    href: format!("{app_home}{path}"),
                    current: *path == section,
                })
                .collect()
        }
        Place::Portal(_) => Vec::new(),
    };
    render(
        StatusCode::OK,
        template,
        Layout {
            root: root_path(state),
            title,
            page: Chrome {
                site: "Alter portal",
                nav: SECTIONS
                    .iter()
                    .map(|(path, label)| NavItem {
                        label,
                        href: format!("{home}{path}"),
                        current: *path == current_section,
                    })
                    .collect(),
                sign_out: format!("{home}/sign-out"),
                home,
                who: &op.name,
                csrf: &op.csrf,
                notice,
                app_nav,
                page,
            },
        },
    )
}

/// A redirect after a change (POST-redirect-GET), with a notice code the page shows.
pub(crate) fn done(location: String, notice: &str) -> Response {
    Redirect::to(&format!("{location}?done={notice}")).into_response()
}

/// The notice for a `?done=` code (only known codes show: the text is ours, not the URL's).
pub(crate) fn notice(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "app_created" => "App created.",
        "idp_saved" => "Identity provider saved.",
        "key_revoked" => "Key revoked.",
        "secret_created" => "Managed secret created.",
        "secret_rotated" => "Secret rotated: calls use the new value now.",
        "secret_hosts_saved" => "Allowed hosts saved: the next call is checked against them.",
        "secret_deleted" => "Managed secret deleted; its grants are revoked.",
        "provider_saved" => "OAuth provider saved.",
        "provider_deleted" => "OAuth provider deleted.",
        "agent_paused" => "Agent paused: its keys are refused until it is resumed.",
        "agent_resumed" => "Agent resumed.",
        "agent_deleted" => "Agent deleted: its keys and delegations are revoked.",
        "agent_key_revoked" => "Agent key revoked.",
        "rule_added" => "Rule added.",
        "rule_removed" => "Rule removed.",
        "approved" => "Approved: the call is made now.",
        "denied" => "Denied.",
        _ => return None,
    })
}

/// `?done=` of a page.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Done {
    done: Option<String>,
}

impl Done {
    pub(crate) fn notice(&self) -> Option<&'static str> {
        notice(self.done.as_deref())
    }
}

// ---- app pages and app forms -----------------------------------------------------------
//
// Every app page is "the operator, the app's header, the page's values, its template"; every
// app form is "the operator (CSRF-checked by [`Form`]), the app, one `Vault` call as the
// operator, back to a page with a notice". These are the one place each shape is written.

/// An app's page header: its id, name and the base of its pages.
#[derive(Debug, Serialize)]
pub(crate) struct AppHeader {
    id: String,
    name: String,
    base: String,
}

/// The signed-in operator and the app a page or form is about.
pub(crate) struct AppScope {
    pub(crate) op: Op,
    pub(crate) app: AppId,
    header: AppHeader,
}

/// One of an app's pages: its section (see [`APP_SECTIONS`]), template and title.
pub(crate) struct AppSection {
    pub(crate) path: &'static str,
    pub(crate) template: &'static str,
    pub(crate) title: &'static str,
}

/// What an app page's template gets: the app's header and the page's own values.
#[derive(Serialize)]
struct AppPage<T: Serialize> {
    app: AppHeader,
    #[serde(flatten)]
    page: T,
}

impl AppScope {
    /// The app's page `section`, with `page`'s values.
    pub(crate) fn render<T: Serialize>(
        self,
        state: &AppState,
        section: &AppSection,
        notice: Option<&'static str>,
        page: T,
    ) -> Response {
        portal_page(
            state,
            &self.op,
            Place::App(self.app, section.path),
            section.template,
            section.title,
            notice,
            AppPage {
                app: self.header,
                page,
            },
        )
        .into_response()
    }
}

/// The app of an app page, or the page saying it does not exist.
async fn app_header(state: &AppState, app: &str) -> Result<(AppId, AppHeader), Response> {
    let app = app_id(state, app)?;
    match state.vault.get_app(app).await {
        Ok(found) => Ok((
            app,
            AppHeader {
                id: found.id.to_string(),
                name: found.name,
                base: app_base(state, app),
            },
        )),
        Err(e) => Err(failure(state, e)),
    }
}

/// The operator and the app of an app page view.
pub(crate) async fn app_view(
    state: &AppState,
    session: &Session<PortalUi>,
    app: &str,
) -> Result<AppScope, Response> {
    let op = viewer(state, session).await?;
    let (app, header) = app_header(state, app).await?;
    Ok(AppScope { op, app, header })
}

/// The operator and the app of a form whose answer is a page (not a redirect).
pub(crate) async fn app_form(
    state: &AppState,
    form: &Form<PortalUi>,
    app: &str,
) -> Result<AppScope, Response> {
    let op = actor(state, form).await?;
    let (app, header) = app_header(state, app).await?;
    Ok(AppScope { op, app, header })
}

/// `GET` of an app page: `load` the page's values (given the state and the app), then render
/// them.
pub(crate) async fn app_page<'a, T, F, Fut>(
    state: &'a AppState,
    session: &Session<PortalUi>,
    app: &str,
    section: &AppSection,
    notice: Option<&'static str>,
    load: F,
) -> Response
where
    T: Serialize,
    F: FnOnce(&'a AppState, AppId) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let scope = match app_view(state, session, app).await {
        Ok(scope) => scope,
        Err(r) => return r,
    };
    match load(state, scope.app).await {
        Ok(page) => scope.render(state, section, notice, page),
        Err(e) => failure(state, e),
    }
}

/// What an app change is given: the state, the form's fields, the app and the operator's name.
pub(crate) struct Change<'a> {
    pub(crate) state: &'a AppState,
    pub(crate) fields: &'a Fields,
    pub(crate) app: AppId,
    pub(crate) operator: String,
}

/// `POST` of an app change: `change` runs as the operator, then the browser goes back to the
/// app's page `back` with the `notice`.
pub(crate) async fn app_change<'a, T, F, Fut>(
    state: &'a AppState,
    form: &'a Form<PortalUi>,
    app: &str,
    back: &str,
    notice: &str,
    change: F,
) -> Response
where
    F: FnOnce(Change<'a>) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let op = match actor(state, form).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let app = match app_id(state, app) {
        Ok(app) => app,
        Err(r) => return r,
    };
    let work = change(Change {
        state,
        fields: &form.fields,
        app,
        operator: op.name.clone(),
    });
    match op.act(work).await {
        Ok(_) => done(format!("{}{back}", app_base(state, app)), notice),
        Err(e) => failure(state, e),
    }
}

/// Space-, comma- or line-separated words of a field.
pub(crate) fn words(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .split([' ', ',', '\n', '\r'])
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

// ---- routes ----------------------------------------------------------------------------

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/portal/sign-in", get(sign_in_page).post(sign_in))
        .route("/portal/sign-out", post(sign_out))
        .merge(audit::router())
        .merge(apps::router())
        .merge(policy::router())
}

// ---- sign-in ---------------------------------------------------------------------------

fn sign_in_form(state: &AppState, status: StatusCode, problem: Option<&str>) -> Response {
    #[derive(Serialize)]
    struct Context<'a> {
        action: String,
        problem: Option<&'a str>,
    }
    render(
        status,
        "portal/signin.html",
        Layout {
            root: root_path(state),
            title: "Sign in to the portal",
            page: Context {
                action: format!("{}/sign-in", base(state)),
                problem,
            },
        },
    )
    .into_response()
}

/// `GET /portal/sign-in`.
async fn sign_in_page(State(state): State<AppState>) -> Response {
    sign_in_form(&state, StatusCode::OK, None)
}

/// The one refusal of a sign-in, whatever was wrong (token, username or password).
const REFUSED: &str = "Those credentials are not valid.";

/// `POST /portal/sign-in`: with `token` (the admin token) or `username` and `password`. The
/// form must come from this site (no session exists yet to carry a CSRF token).
async fn sign_in(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !same_origin(&parts.headers, &state) {
        return message(
            &state,
            StatusCode::FORBIDDEN,
            "Not allowed",
            "This form was not sent from this site.",
        )
        .into_response();
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| alter_core::wallet::client_address(Some(addr.ip())));
    let Ok(bytes) = Bytes::from_request(Request::from_parts(parts, body), &state).await else {
        return sign_in_form(&state, StatusCode::BAD_REQUEST, Some(REFUSED));
    };
    let Some(fields) = Fields::parse(&bytes) else {
        return sign_in_form(&state, StatusCode::BAD_REQUEST, Some(REFUSED));
    };
    let outcome = if let Some(token) = fields.text("token") {
        let presented = alter_crypto::keys::token_hash(token);
        let check = || alter_crypto::ct_eq(&presented, &state.admin_token_hash);
        state
            .vault
            .admin_token_sign_in(check, peer.as_deref())
            .await
            .map(|outcome| outcome.map_signed_in(|()| admin_subject(&state)))
    } else {
        let username = fields.text("username").unwrap_or_default();
        let password = fields.get("password").unwrap_or_default();
        state
            .vault
            .operator_sign_in(username, password, peer.as_deref())
            .await
            .map(|outcome| outcome.map_signed_in(|operator| operator.id.to_string()))
    };
    let subject = match outcome {
        Ok(SignInOutcome::SignedIn(subject)) => subject,
        Ok(SignInOutcome::Refused) => {
            return sign_in_form(&state, StatusCode::UNAUTHORIZED, Some(REFUSED));
        }
        Ok(SignInOutcome::Throttled) => {
            return sign_in_form(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                Some("Too many failed attempts. Wait a minute and try again."),
            );
        }
        Ok(SignInOutcome::Busy) => {
            return sign_in_form(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                Some("The portal is busy checking other sign-ins. Try again in a moment."),
            );
        }
        Err(e) => return failure(&state, e),
    };
    let opened = match state
        .vault
        .open_browser_session(
            BrowserSessionKind::Portal,
            None,
            &subject,
            PORTAL_SESSION_SECONDS,
        )
        .await
    {
        Ok(opened) => opened,
        Err(e) => return failure(&state, e),
    };
    let mut response = Redirect::to(&base(&state)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        portal_cookie(&state, opened.token.expose_secret(), PORTAL_SESSION_SECONDS),
    );
    response
}

/// The session subject of the admin token's holder (see [`ADMIN_SUBJECT_PREFIX`]).
fn admin_subject(state: &AppState) -> String {
    format!("{ADMIN_SUBJECT_PREFIX}{}", admin_token_fingerprint(state))
}

/// `POST /portal/sign-out`.
async fn sign_out(State(state): State<AppState>, form: Form<PortalUi>) -> Response {
    let name = actor(&state, &form).await.map(|op| op.name).ok();
    if let Err(e) = state
        .vault
        .close_browser_session(BrowserSessionKind::Portal, form.session.token())
        .await
    {
        return failure(&state, e);
    }
    if let Some(name) = name
        && let Err(e) = state.vault.record_operator_sign_out(&name).await
    {
        return failure(&state, e);
    }
    let mut response = message(
        &state,
        StatusCode::OK,
        "Signed out",
        "You are signed out of the portal.",
    )
    .into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, portal_cookie(&state, "", 0));
    response
}
