//! End-user sign-in (protocol part 2 §7.2–7.5): `create_auth_session`, `poll_auth_session`,
//! `authenticate` and `verify_user_token`, on [`App`] only (agents do not start user logins).

use std::fmt;
use std::time::Duration;

use alter_proto::signin::{
    CreateAuthSessionRequest, PollAuthSessionRequest, VerifiedSubject, VerifyTokenRequest,
};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::client::App;
use crate::error::{Error, ErrorInfo};
use crate::transport::{self, Mapper, Transport};

pub use alter_proto::signin::{AuthSession, UserInfo};

/// The longest a single poll asks the server to hold the request (the official client's
/// `_AUTH_POLL_SERVER_WAIT_S`).
const SERVER_WAIT: Duration = Duration::from_secs(25);
/// How far past the server's wait the poll's own HTTP timeout reaches.
const HTTP_BUFFER: Duration = Duration::from_secs(15);
/// Poll answers that are permanent failures; every other non-200 answer is retried.
const PERMANENT_POLL_STATUSES: [u16; 5] = [400, 401, 403, 404, 422];
/// `error_code`s of a failed session that are identity-synchronisation faults, not a refused
/// login, with the status their `BackendError` carries.
const IDENTITY_SYNC_STATUS: [(&str, u16); 3] = [
    ("service_unavailable", 503),
    ("identity_provider_inactive", 409),
    ("identity_group_name_ambiguous", 409),
];

/// A completed sign-in: the user's ID token (a JWT to pass as `user_token`) and who it is.
#[derive(Clone, PartialEq)]
pub struct AuthResult {
    /// The user's IdP JWT.
    pub user_token: String,
    /// The signed-in user (empty when the server sent none).
    pub user_info: UserInfo,
}

impl fmt::Debug for AuthResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthResult")
            .field("user_token", &alter_proto::REDACTED)
            .field("user_info", &self.user_info)
            .finish()
    }
}

/// Options of [`App::authenticate`].
#[derive(Debug, Clone, PartialEq)]
pub struct AuthenticateOptions {
    /// How long to wait for the user (default 300 s).
    pub timeout: Duration,
    /// Open the login URL in the default browser (`open` on macOS, `xdg-open` elsewhere);
    /// when false, or when no browser opens, the URL is printed to stderr. Default true.
    pub open_browser: bool,
}

impl Default for AuthenticateOptions {
    fn default() -> Self {
        AuthenticateOptions {
            timeout: Duration::from_secs(300),
            open_browser: true,
        }
    }
}

/// The default `timeout` of [`App::poll_auth_session`], as the official client's.
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(300);
/// The default `poll_interval` of [`App::poll_auth_session`], as the official client's.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);

impl App {
    /// Starts an end-user sign-in at the app's IdP (key scope `idp_users:write`): hand
    /// `auth_url` to the user over any channel and poll with `session_token`, which may be
    /// stored to resume polling later. Opens no browser.
    ///
    /// ```no_run
    /// # async fn run(app: alter_sdk::App) -> Result<(), alter_sdk::Error> {
    /// use alter_sdk::signin::{DEFAULT_POLL_INTERVAL, DEFAULT_POLL_TIMEOUT};
    /// let session = app.create_auth_session().await?;
    /// println!("Sign in at {}", session.auth_url);
    /// let signed_in = app
    ///     .poll_auth_session(&session.session_token, DEFAULT_POLL_TIMEOUT, DEFAULT_POLL_INTERVAL)
    ///     .await?;
    /// println!("{}", signed_in.user_info.sub);
    /// # Ok(()) }
    /// ```
    ///
    /// Errors: [`Error::ConnectConfig`] (sign-in not configured, `details.reason`),
    /// [`Error::Backend`] (no IdP), [`Error::PolicyViolation`] (an agent identity), or a
    /// malformed answer as [`Error::Backend`].
    pub async fn create_auth_session(&self) -> Result<AuthSession, Error> {
        create_auth_session(&self.transport).await
    }

    /// Waits until the user finishes signing in (key scope `idp_users:read`), with held
    /// requests of up to 25 s each and `poll_interval` between them. Network failures and
    /// 5xx/429 answers are retried until `timeout`; then [`Error::ConnectTimeout`] (field
    /// `reason` = `poll_deadline_elapsed`). A failed login or an expired (or already
    /// collected) session is [`Error::AlterSdk`]; an identity-synchronisation fault is
    /// [`Error::Backend`] with status 503 (transient, `retry_after_seconds`) or 409; a
    /// 400/401/403/404/422 answer its mapped error at once.
    ///
    /// The token is handed out once: a second poll of a completed session answers "expired".
    pub async fn poll_auth_session(
        &self,
        session_token: &str,
        timeout: Duration,
        poll_interval: Duration,
    ) -> Result<AuthResult, Error> {
        poll_auth_session(&self.transport, session_token, timeout, poll_interval).await
    }

    /// The whole sign-in for an interactive program: starts a session, opens the login page
    /// (or prints its URL to stderr), and waits for the user.
    ///
    /// Unlike the official client, which keeps the token as the instance's
    /// `user_token_getter`, this SDK has no ambient user token: pass
    /// [`AuthResult::user_token`] where a call takes one (`ListGrants::end_user_token`,
    /// `Principal::user`, `ResolveIdentity::user_token`, …).
    pub async fn authenticate(&self, options: AuthenticateOptions) -> Result<AuthResult, Error> {
        let session = create_auth_session(&self.transport).await?;
        // Only a web page is handed to the opener or the terminal, in its normalised
        // (percent-encoded) form.
        let auth_url = reqwest::Url::parse(&session.auth_url)
            .ok()
            .filter(|url| matches!(url.scheme(), "https" | "http"))
            .ok_or_else(|| backend("Auth session response has no http(s) auth_url"))?;
        if !(options.open_browser && open_browser(auth_url.as_str()).await) {
            eprintln!("Open this URL to authenticate: {auth_url}");
        }
        poll_auth_session(
            &self.transport,
            &session.session_token,
            options.timeout,
            DEFAULT_POLL_INTERVAL,
        )
        .await
    }

    /// The verified subject (`sub`) of a user's JWT, checked by the server against the app's
    /// IdP; `None` whenever it cannot be trusted: an empty token, an invalid one, no IdP, an
    /// unreachable or misbehaving server. Never an error: treat `None` as "reject".
    pub async fn verify_user_token(&self, token: &str) -> Option<String> {
        verify_user_token(&self.transport, token).await
    }
}

async fn create_auth_session(transport: &Transport) -> Result<AuthSession, Error> {
    let answer = transport
        .send(
            Method::POST,
            "/sdk/auth/session",
            Some(&CreateAuthSessionRequest {}),
            Mapper::Main,
        )
        .await?;
    if answer.status != StatusCode::CREATED {
        return Err(Error::sdk(format!(
            "Unexpected auth session response (HTTP {})",
            answer.status.as_u16()
        )));
    }
    let session: AuthSession = transport::decode(&answer)?;
    if session.auth_url.is_empty()
        || session.session_token.is_empty()
        || session.expires_at.is_empty()
    {
        return Err(backend(
            "Auth session response from backend is malformed \
             (missing or invalid session_token/auth_url/expires_in/expires_at)",
        ));
    }
    Ok(session)
}

async fn poll_auth_session(
    transport: &Transport,
    session_token: &str,
    timeout: Duration,
    poll_interval: Duration,
) -> Result<AuthResult, Error> {
    if session_token.trim().is_empty() {
        return Err(Error::value("session_token must be a non-empty string"));
    }
    for (name, value) in [("timeout", timeout), ("poll_interval", poll_interval)] {
        if value.is_zero() {
            return Err(Error::value(format!("{name} must be greater than 0")));
        }
    }
    let deadline = Instant::now()
        .checked_add(timeout)
        .ok_or_else(|| Error::value("timeout is too large"))?;
    loop {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(SERVER_WAIT);
        if let Some(polled) = poll_once(transport, session_token, wait).await?
            && let Some(result) = outcome(polled)?
        {
            return Ok(result);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        tokio::time::sleep(poll_interval.min(remaining)).await;
    }
    Err(Error::ConnectTimeout(ErrorInfo {
        message: format!(
            "Authentication timed out after {}s. The user may not have completed login in the browser.",
            timeout.as_secs_f64()
        ),
        fields: Map::from_iter([
            ("timeout".to_owned(), Value::from(timeout.as_secs_f64())),
            ("reason".to_owned(), Value::from("poll_deadline_elapsed")),
        ]),
        ..Default::default()
    }))
}

/// One poll, held up to `wait` by the server: the answer's members (with a non-empty string
/// `status`), `None` for a transient failure to retry (network, timeout, 5xx, 429, a 2xx other
/// than 200), or a permanent error.
async fn poll_once(
    transport: &Transport,
    session_token: &str,
    wait: Duration,
) -> Result<Option<Map<String, Value>>, Error> {
    let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
    let body = PollAuthSessionRequest {
        session_token: session_token.to_owned(),
        wait_ms: (wait_ms > 0).then_some(wait_ms),
    };
    let timeout = (wait_ms > 0).then(|| wait + HTTP_BUFFER);
    let sent = transport
        .send_timed(
            Method::POST,
            "/sdk/auth/poll",
            Some(&body),
            &[],
            timeout,
            Mapper::Main,
        )
        .await;
    let answer = match sent {
        Ok(answer) if answer.status == StatusCode::OK => answer,
        Err(e) if PERMANENT_POLL_STATUSES.contains(&e.status()) => return Err(e),
        Ok(_) | Err(_) => return Ok(None),
    };
    match serde_json::from_slice::<Value>(&answer.body) {
        Ok(Value::Object(fields))
            if fields
                .get("status")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty()) =>
        {
            Ok(Some(fields))
        }
        _ => Err(backend(
            "Auth session poll response is malformed (missing or invalid 'status')",
        )),
    }
}

/// What a poll answer means: `Ok(None)` to keep polling.
fn outcome(fields: Map<String, Value>) -> Result<Option<AuthResult>, Error> {
    let text = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    match text("status").unwrap_or_default() {
        "pending" => Ok(None),
        "completed" => {
            let Some(user_token) = text("user_token") else {
                return Err(Error::sdk(
                    "Authentication completed but no user token was returned by the IdP",
                ));
            };
            let user_info = fields
                .get("user_info")
                .and_then(|info| serde_json::from_value(info.clone()).ok())
                .unwrap_or_default();
            Ok(Some(AuthResult {
                user_token: user_token.to_owned(),
                user_info,
            }))
        }
        "error" => {
            let message = format!(
                "Authentication failed: {}",
                text("error_message").unwrap_or("unknown error")
            );
            let code = text("error_code").unwrap_or_default();
            let Some((_, status)) = IDENTITY_SYNC_STATUS.iter().find(|(c, _)| *c == code) else {
                return Err(Error::sdk(message));
            };
            let mut details = Map::from_iter([("error_code".to_owned(), Value::from(code))]);
            if let Some(retry_after) = fields.get("retry_after_seconds").and_then(Value::as_u64) {
                details.insert("retry_after_seconds".to_owned(), Value::from(retry_after));
            }
            Err(Error::Backend(ErrorInfo {
                status: *status,
                code: None,
                message,
                fields: details,
            }))
        }
        "expired" => Err(Error::sdk("Authentication session expired")),
        other => Err(Error::sdk(format!(
            "Unexpected auth poll status from server: {other}"
        ))),
    }
}

async fn verify_user_token(transport: &Transport, token: &str) -> Option<String> {
    if token.trim().is_empty() {
        return None;
    }
    let body = VerifyTokenRequest {
        token: token.to_owned(),
    };
    let answer = transport
        .send(
            Method::POST,
            "/sdk/auth/verify-token",
            Some(&body),
            Mapper::Main,
        )
        .await
        .ok()?;
    if answer.status != StatusCode::OK {
        return None;
    }
    let verified: VerifiedSubject = serde_json::from_slice(&answer.body).ok()?;
    (!verified.sub.trim().is_empty()).then_some(verified.sub)
}

/// Opens `url` in the default browser; false when no opener ran successfully.
async fn open_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    tokio::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success())
}

fn backend(message: &str) -> Error {
    Error::Backend(ErrorInfo {
        message: message.to_owned(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: Value) -> Result<Option<AuthResult>, Error> {
        let Value::Object(fields) = body else {
            panic!("an object")
        };
        outcome(fields)
    }

    #[test]
    fn poll_statuses_as_the_official_client_reads_them() {
        assert_eq!(answer(serde_json::json!({"status": "pending"})), Ok(None));
        let done = answer(serde_json::json!({
            "status": "completed", "user_token": "eyJtoken", "user_info": {"sub": "alice"}
        }))
        .unwrap()
        .unwrap();
        assert_eq!(done.user_info.sub, "alice");
        assert!(!format!("{done:?}").contains("eyJtoken"));
        let odd_info = answer(serde_json::json!({
            "status": "completed", "user_token": "t", "user_info": 7
        }));
        assert_eq!(odd_info.unwrap().unwrap().user_info, UserInfo::default());
        let no_token = answer(serde_json::json!({"status": "completed", "user_token": ""}));
        assert_eq!(no_token.unwrap_err().exception_name(), "AlterSDKError");

        let refused = answer(serde_json::json!({
            "status": "error", "error_code": "access_denied", "error_message": "denied"
        }))
        .unwrap_err();
        assert_eq!(refused.exception_name(), "AlterSDKError");
        assert_eq!(refused.info().message, "Authentication failed: denied");
        let unknown = answer(serde_json::json!({"status": "error", "error_message": 3}));
        assert_eq!(
            unknown.unwrap_err().info().message,
            "Authentication failed: unknown error"
        );
        let busy = answer(serde_json::json!({
            "status": "error", "error_code": "service_unavailable", "retry_after_seconds": 7
        }))
        .unwrap_err();
        assert_eq!(
            (busy.exception_name(), busy.status()),
            ("BackendError", 503)
        );
        assert_eq!(busy.info().fields["retry_after_seconds"], 7);
        let broken = answer(serde_json::json!({
            "status": "error", "error_code": "identity_provider_inactive"
        }))
        .unwrap_err();
        assert_eq!(broken.status(), 409);

        for status in ["expired", "weird"] {
            let error = answer(serde_json::json!({ "status": status })).unwrap_err();
            assert_eq!(error.exception_name(), "AlterSDKError", "{status}");
        }
    }
}
