//! Browser sessions for the web UIs: the cookie, the [`Session`] extractor that requires a live
//! session of one UI ([`UiKind`]), and [`Form`], the extractor every state change goes through.
//!
//! A state change is refused (403, nothing changed) unless all of these hold:
//! - the request is same-origin: `Sec-Fetch-Site`, when sent, is `same-origin`, and `Origin`,
//!   when sent, is the public URL's origin (browsers send at least one of them on a POST);
//! - the cookie names a live session of this UI that the UI admits here (the wallet: the
//!   session's app is the path's app);
//! - the form's `csrf` field is the session's CSRF token (constant-time comparison).

use std::collections::BTreeMap;
use std::marker::PhantomData;

use alter_core::browser_sessions::{BrowserSession, BrowserSessionKind, csrf_matches, csrf_token};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::{is_https, message, public_origin, root_path};
use crate::state::AppState;

/// One web UI's sessions: their kind, cookie, and where they are valid.
pub trait UiKind: Send + Sync + 'static {
    /// The stored kind.
    const KIND: BrowserSessionKind;
    /// The cookie's name.
    const COOKIE: &'static str;
    /// The cookie's `Path` for this request, below the public root (e.g. `/wallet/{app}`), so
    /// the cookie goes nowhere else.
    fn cookie_path(parts: &Parts) -> Option<String>;
    /// Where a browser without a session is sent (below the public root).
    fn sign_in_path(parts: &Parts) -> Option<String>;
    /// Whether `session` may act at this request (e.g. the wallet: the path's app is the
    /// session's).
    fn admits(session: &BrowserSession, parts: &Parts) -> bool;
}

/// A live session of UI `K`, admitted at this request. Its `csrf` goes into every form.
pub struct Session<K> {
    /// The session.
    pub session: BrowserSession,
    /// The CSRF token for this session's forms.
    pub csrf: String,
    token: String,
    kind: PhantomData<K>,
}

impl<K> std::fmt::Debug for Session<K> {
    // Neither the cookie's token nor the CSRF token is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("kind", &self.session.kind)
            .field("app_id", &self.session.app_id)
            .field("subject", &self.session.subject)
            .field("expires_at", &self.session.expires_at)
            .finish_non_exhaustive()
    }
}

impl<K> Session<K> {
    /// The cookie's token (to sign out with).
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// The connection's peer, as the server saw it (no proxy header is trusted).
pub type Peer = Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>;

/// The client address of [`Peer`].
pub fn peer_ip(peer: &Peer) -> Option<std::net::IpAddr> {
    peer.as_ref()
        .map(|axum::Extension(axum::extract::ConnectInfo(addr))| addr.ip())
}

/// The value of cookie `name`, if sent exactly once.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = None;
    for line in headers.get_all(header::COOKIE) {
        let Ok(line) = line.to_str() else { continue };
        for pair in line.split(';') {
            let Some((key, value)) = pair.trim().split_once('=') else {
                continue;
            };
            if key == name && found.replace(value.to_owned()).is_some() {
                return None;
            }
        }
    }
    found
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, `Secure` over https, scoped to `path`
/// below the public root; `max_age` 0 deletes it.
pub fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
) -> HeaderValue {
    let secure = if is_https(state) { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={root}{path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        root = root_path(state),
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Why a UI request was refused.
#[derive(Debug)]
pub enum Refusal {
    /// No session (a page view): sign in first.
    SignIn(String),
    /// A state change without a valid session, origin or CSRF token.
    Forbidden,
    /// Storage failed.
    Unavailable,
}

impl Refusal {
    fn page(self, state: &AppState) -> Response {
        match self {
            Refusal::SignIn(location) => Redirect::to(&location).into_response(),
            Refusal::Forbidden => message(
                state,
                StatusCode::FORBIDDEN,
                "Not allowed",
                "This form is out of date or was not sent from this site. Reload the page and try again.",
            )
            .into_response(),
            Refusal::Unavailable => message(
                state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The vault cannot answer right now. Try again in a moment.",
            )
            .into_response(),
        }
    }
}

/// The session of UI `K` this request carries, or why not.
async fn session_of<K: UiKind>(parts: &Parts, state: &AppState) -> Result<Session<K>, Refusal> {
    let sign_in = || match K::sign_in_path(parts) {
        Some(path) if parts.method == Method::GET || parts.method == Method::HEAD => {
            Refusal::SignIn(format!("{}{path}", root_path(state)))
        }
        _ => Refusal::Forbidden,
    };
    let Some(token) = cookie(&parts.headers, K::COOKIE) else {
        return Err(sign_in());
    };
    let session = match state.vault.browser_session(K::KIND, &token).await {
        Ok(Some(session)) => session,
        Ok(None) => return Err(sign_in()),
        Err(e) => {
            tracing::warn!(error = %e, "a browser session could not be read");
            return Err(Refusal::Unavailable);
        }
    };
    if !K::admits(&session, parts) {
        return Err(sign_in());
    }
    Ok(Session {
        session,
        csrf: csrf_token(&token),
        token,
        kind: PhantomData,
    })
}

impl<K: UiKind> FromRequestParts<AppState> for Session<K> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        session_of::<K>(parts, state)
            .await
            .map_err(|r| r.page(state))
    }
}

/// Whether the request comes from a page of this origin. `Sec-Fetch-Site` (which pages
/// cannot forge) must say `same-origin` when sent; without it, `Origin` must be the public
/// origin. Under `Referrer-Policy: no-referrer` browsers send `Origin: null` on form posts, so
/// `null` counts only beside a same-origin `Sec-Fetch-Site`.
pub fn same_origin(headers: &HeaderMap, state: &AppState) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let origin_ok = |o: &str| o == public_origin(state);
    match (header("sec-fetch-site"), header("origin")) {
        (Some("same-origin"), None | Some("null")) => true,
        (Some("same-origin"), Some(origin)) => origin_ok(origin),
        (Some(_), _) => false,
        (None, Some(origin)) => origin_ok(origin),
        // A browser sends one of them on every POST; a request with neither is not a form.
        (None, None) => false,
    }
}

/// A form's fields (each name once).
#[derive(Default)]
pub struct Fields(BTreeMap<String, String>);

impl std::fmt::Debug for Fields {
    // Names only: values may be tokens or whatever the person typed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Fields {
    /// Parses an `application/x-www-form-urlencoded` body; `None` if a name repeats.
    pub fn parse(body: &[u8]) -> Option<Fields> {
        let mut fields = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(body) {
            if fields
                .insert(name.into_owned(), value.into_owned())
                .is_some()
            {
                return None;
            }
        }
        Some(Fields(fields))
    }

    /// A field's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A field's value, trimmed, `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }
}

/// A state change in UI `K`: same-origin, a live admitted session, and its CSRF token in the
/// form's `csrf` field. Anything else is refused with 403 before the handler runs.
#[derive(Debug)]
pub struct Form<K> {
    /// The session.
    pub session: Session<K>,
    /// The form's fields (`csrf` included).
    pub fields: Fields,
}

impl<K: UiKind> FromRequest<AppState> for Form<K> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let refused = |r: Refusal| r.page(state);
        if !same_origin(&parts.headers, state) {
            return Err(refused(Refusal::Forbidden));
        }
        let session = match session_of::<K>(&parts, state).await {
            Ok(session) => session,
            Err(Refusal::Unavailable) => return Err(refused(Refusal::Unavailable)),
            Err(_) => return Err(refused(Refusal::Forbidden)),
        };
        let form_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|_| refused(Refusal::Forbidden))?;
        let fields = Fields::parse(&bytes).filter(|_| form_type);
        let Some(fields) = fields else {
            return Err(refused(Refusal::Forbidden));
        };
        if !fields
            .get("csrf")
            .is_some_and(|presented| csrf_matches(session.token(), presented))
        {
            return Err(refused(Refusal::Forbidden));
        }
        Ok(Form { session, fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_read_once() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; alter_wallet=tok; b=2"),
        );
        assert_eq!(cookie(&headers, "alter_wallet").as_deref(), Some("tok"));
        assert_eq!(cookie(&headers, "missing"), None);
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("alter_wallet=other"),
        );
        assert_eq!(
            cookie(&headers, "alter_wallet"),
            None,
            "a repeated cookie is ambiguous"
        );
    }

    #[test]
    fn debug_output_shows_no_token() {
        struct Any;
        let at = alter_core::time::Timestamp::from_unix_seconds(1_800_000_000);
        let session: Session<Any> = Session {
            session: BrowserSession {
                token_hash: [1; 32],
                kind: BrowserSessionKind::Portal,
                app_id: None,
                subject: "admin".into(),
                created_at: at,
                expires_at: at.plus_seconds(60),
                revoked_at: None,
            },
            csrf: csrf_token("alter_bs_secret"),
            token: "alter_bs_secret".into(),
            kind: PhantomData,
        };
        let shown = format!("{session:?}");
        assert!(!shown.contains("alter_bs_secret") && !shown.contains(&session.csrf));
        let fields = Fields::parse(b"csrf=abc123&reason=private").expect("fields");
        let shown = format!("{fields:?}");
        assert!(shown.contains("csrf") && !shown.contains("abc123") && !shown.contains("private"));
    }

    #[test]
    fn form_fields_are_named_once() {
        let fields = Fields::parse(b"csrf=abc&reason=+because+&empty=").expect("fields");
        assert_eq!(fields.get("csrf"), Some("abc"));
        assert_eq!(fields.text("reason"), Some("because"));
        assert_eq!(fields.text("empty"), None);
        assert!(Fields::parse(b"csrf=a&csrf=b").is_none());
    }
}
