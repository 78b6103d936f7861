//! The web UIs for people (the Wallet, the operator portal), server-rendered from templates
//! compiled into the binary ([`minijinja`], HTML auto-escaping on). Every page shares one
//! layout (`templates/base.html`), one stylesheet and one set of headers: a CSP without
//! `unsafe-inline` (no inline script or style anywhere), no framing, no referrer, no caching.
//!
//! - [`render`] / [`Page`]: a template and its context, answered with those headers.
//! - [`session`]: browser sessions in cookies, the [`session::Session`] extractor that requires
//!   one of a kind ([`session::UiKind`]), and [`session::Form`], the one extractor every state
//!   change goes through (same-origin check + CSRF token + the session).
//! - [`wallet`]: the end user's Wallet at `/wallet/{app}`.
//! - [`portal`]: the operator portal at `/portal`.
//! - [`csv`]: formula-safe CSV cells for the downloads.

pub mod csv;
pub mod portal;
pub mod session;
pub mod wallet;

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::{AutoEscape, Environment};
use serde::Serialize;

use crate::state::AppState;

/// Every template, by name, compiled in (a UI adds its own lines here).
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("message.html", include_str!("../../templates/message.html")),
    (
        "wallet/home.html",
        include_str!("../../templates/wallet/home.html"),
    ),
    (
        "wallet/grant.html",
        include_str!("../../templates/wallet/grant.html"),
    ),
    (
        "wallet/activity.html",
        include_str!("../../templates/wallet/activity.html"),
    ),
    (
        "wallet/approvals.html",
        include_str!("../../templates/wallet/approvals.html"),
    ),
    (
        "wallet/approval.html",
        include_str!("../../templates/wallet/approval.html"),
    ),
    (
        "wallet/signin.html",
        include_str!("../../templates/wallet/signin.html"),
    ),
    (
        "portal/app_nav.html",
        include_str!("../../templates/portal/app_nav.html"),
    ),
    (
        "portal/signin.html",
        include_str!("../../templates/portal/signin.html"),
    ),
    (
        "portal/dashboard.html",
        include_str!("../../templates/portal/dashboard.html"),
    ),
    (
        "portal/apps.html",
        include_str!("../../templates/portal/apps.html"),
    ),
    (
        "portal/keys.html",
        include_str!("../../templates/portal/keys.html"),
    ),
    (
        "portal/secrets.html",
        include_str!("../../templates/portal/secrets.html"),
    ),
    (
        "portal/agents.html",
        include_str!("../../templates/portal/agents.html"),
    ),
    (
        "portal/identity.html",
        include_str!("../../templates/portal/identity.html"),
    ),
    (
        "portal/policies.html",
        include_str!("../../templates/portal/policies.html"),
    ),
    (
        "portal/approvals.html",
        include_str!("../../templates/portal/approvals.html"),
    ),
    (
        "portal/audit.html",
        include_str!("../../templates/portal/audit.html"),
    ),
];

/// The template environment; a template that does not parse fails the first render (and
/// `templates_parse` in the tests).
static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // Every template is HTML: escape every value, whatever the name's extension.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_filter("when", when);
    for (name, source) in TEMPLATES {
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "a template does not parse");
        }
    }
    env
});

/// `{{ t | when }}`: an RFC 3339 UTC time (as the vault writes them) for people,
/// `2026-12-07 10:52 UTC`; anything else as it is.
fn when(text: String) -> String {
    let bytes = text.as_bytes();
    let shaped = text.len() >= 17
        && text.ends_with('Z')
        && bytes.get(10) == Some(&b'T')
        && text.is_char_boundary(16);
    if shaped {
        format!("{} {} UTC", &text[..10], &text[11..16])
    } else {
        text
    }
}

/// A rendered HTML page and its headers.
pub struct Page {
    status: StatusCode,
    html: String,
    form_targets: Vec<String>,
}

impl Page {
    /// A page with this status and (trusted, rendered) HTML.
    pub fn html(status: StatusCode, html: String) -> Page {
        Page {
            status,
            html,
            form_targets: Vec::new(),
        }
    }

    /// Other origins this page's forms may end at (after a redirect, e.g. an IdP).
    pub fn form_targets(mut self, origins: Vec<String>) -> Page {
        self.form_targets = origins;
        self
    }
}

impl std::fmt::Debug for Page {
    // Not the HTML: it carries the user's data and the session's CSRF token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page")
            .field("status", &self.status)
            .field("bytes", &self.html.len())
            .finish_non_exhaustive()
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.html).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        page_headers(headers, &self.form_targets);
        response
    }
}

/// The CSP of every page: nothing but this origin's stylesheet, script and images; forms post
/// here (or to `form_targets`); never framed.
pub fn content_security_policy(form_targets: &[String]) -> String {
    let mut form_action = String::from("'self'");
    for origin in form_targets {
        form_action.push(' ');
        form_action.push_str(origin);
    }
    format!(
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action {form_action}; base-uri 'none'; frame-ancestors 'none'"
    )
}

/// The headers of every page: CSP, no framing, no referrer, no sniffing, no caching (pages
/// carry user data and CSRF tokens).
pub fn page_headers(headers: &mut HeaderMap, form_targets: &[String]) {
    if let Ok(value) = HeaderValue::from_str(&content_security_policy(form_targets)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    asset_headers(headers);
}

/// The headers of every page and asset.
pub fn asset_headers(headers: &mut HeaderMap) {
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Renders `template` with `context` into a page. A template error is logged and answered as
/// a generic 500 page (never the error's text).
pub fn render(status: StatusCode, template: &str, context: impl Serialize) -> Page {
    match ENVIRONMENT
        .get_template(template)
        .and_then(|t| t.render(context))
    {
        Ok(html) => Page::html(status, html),
        Err(e) => {
            tracing::error!(template, error = %e, "a page could not be rendered");
            Page::html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error</title>\
                 </head><body><main><h1>Something went wrong</h1><p>Try again later.</p></main>\
                 </body></html>"
                    .into(),
            )
        }
    }
}

/// What every page's layout needs: where the server's root is (for links and assets) and the
/// page title; the rest is the page's own context, flattened in.
#[derive(Debug, Serialize)]
pub struct Layout<'a, T: Serialize> {
    /// The path prefix of the public URL (`""` or e.g. `/api`).
    pub root: &'a str,
    /// The page's `<title>` and `<h1>`.
    pub title: &'a str,
    /// The page's own values.
    #[serde(flatten)]
    pub page: T,
}

/// A page with a title and one paragraph (errors, refusals, notices).
pub fn message(state: &AppState, status: StatusCode, title: &str, text: &str) -> Page {
    #[derive(Serialize)]
    struct Message<'a> {
        text: &'a str,
    }
    render(
        status,
        "message.html",
        Layout {
            root: root_path(state),
            title,
            page: Message { text },
        },
    )
}

/// The path of the public URL (`""` when served at the root).
pub fn root_path(state: &AppState) -> &str {
    let url = state.public_url.as_str();
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[after_scheme + i..],
        None => "",
    }
}

/// The origin of the public URL (`scheme://host[:port]`).
pub fn public_origin(state: &AppState) -> &str {
    let root = root_path(state);
    &state.public_url[..state.public_url.len() - root.len()]
}

/// Whether the public URL is https (cookies are then `Secure`).
pub fn is_https(state: &AppState) -> bool {
    state.public_url.starts_with("https://")
}

/// The stylesheet shared by every page (the Connect page's too).
pub const STYLESHEET: &str = include_str!("../../assets/alter.css");
/// The progressive-enhancement script (confirmations, countdowns); every action works without.
pub const SCRIPT: &str = include_str!("../../assets/ui.js");

/// `GET /assets/ui.js`.
pub async fn script() -> Response {
    let mut response = SCRIPT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    asset_headers(headers);
    response
}

/// The UI routes (mounted by [`crate::routes::router`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/assets/ui.js", get(script))
        .merge(wallet::router())
        .merge(portal::router())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        for (name, source) in TEMPLATES {
            let mut env = Environment::new();
            for (other, source) in TEMPLATES {
                if other != name {
                    env.add_template(other, source).expect(other);
                }
            }
            env.add_template(name, source).expect(name);
        }
    }

    #[test]
    fn values_are_escaped() {
        let page = render(
            StatusCode::OK,
            "message.html",
            Layout {
                root: "",
                title: "<script>alert(1)</script>",
                page: serde_json::json!({"text": "\"><img src=x onerror=alert(1)>"}),
            },
        );
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.html.contains("<script>alert"));
        assert!(!page.html.contains("<img src=x"));
        assert!(page.html.contains("&lt;script&gt;"));
    }

    #[test]
    fn times_read_as_minutes_in_utc() {
        assert_eq!(
            when("2026-12-07T10:51:59.875251Z".into()),
            "2026-12-07 10:51 UTC"
        );
        assert_eq!(when("never".into()), "never");
    }

    #[test]
    fn policy_allows_no_inline_code() {
        let csp = content_security_policy(&[]);
        assert!(!csp.contains("unsafe-inline"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("form-action 'self';"));
    }
}
