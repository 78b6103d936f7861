//! A real OAuth 2.0 / OpenID Connect server for end-to-end tests: the npm package `oidc-provider`
//! (pinned in `tests/oauth-peer/package-lock.json`) run by `tests/oauth-peer/server.mjs` on
//! `127.0.0.1:0`. It has one confidential client (`client_secret_basic`, exact redirect URIs,
//! PKCE required), issues a refresh token for every code grant, rotates it or not, serves
//! revocation and introspection, and signs users in through its own login and consent pages with a
//! real password check. It counts the token and revocation requests it receives ([`PeerStats`]).
//!
//! Needs `node` on `PATH` and `npm ci` run in `tests/oauth-peer` (`scripts/test` does it).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::header::LOCATION;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long one start of the peer may take to print its ready line: about 1 s on an idle
/// machine, over 30 s beside a loaded test run. Node (20, OpenSSL 3) has also been seen to
/// hang for good at start-up, blocked on a lock before its first line, so a start that takes
/// longer is killed and tried again, [`READY_ATTEMPTS`] times in all.
const READY_TIMEOUT: Duration = Duration::from_secs(45);
/// Starts tried before giving up.
const READY_ATTEMPTS: u32 = 3;

/// How the peer is configured.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// The client's exact redirect URIs (at least one).
    pub redirect_uris: Vec<String>,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// Whether every refresh returns a new refresh token and retires the old one (whose reuse
    /// then revokes the whole grant).
    pub rotate_refresh: bool,
    /// Lifetime of access tokens, in whole seconds.
    pub access_ttl: Duration,
    /// The password of the user `alice`.
    pub password: String,
}

impl PeerOptions {
    /// The defaults for a client redirecting to `redirect_uri`: client `alter-test` /
    /// `alter-test-secret`, rotation on, 60-second access tokens, `alice` / `alice-password`.
    pub fn new(redirect_uri: impl Into<String>) -> PeerOptions {
        PeerOptions {
            redirect_uris: vec![redirect_uri.into()],
            client_id: "alter-test".to_owned(),
            client_secret: "alter-test-secret".to_owned(),
            rotate_refresh: true,
            access_ttl: Duration::from_secs(60),
            password: "alice-password".to_owned(),
        }
    }
}

/// The pages an authorization shows in [`OAuthPeer::authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pages {
    /// The login form (where a wrong password is tried first), then consent.
    LoginAndConsent,
    /// Consent only: the browser's session has signed the user in already.
    Consent,
}

/// What [`OAuthPeer::authorize`] ended with.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// The redirect to the client, with `code`, `state` and `iss` (or `error`) in its query.
    pub redirect: Url,
    /// The consent page as shown (it lists the scopes asked for).
    pub consent_page: String,
}

impl Authorization {
    /// The query parameter `name` of the redirect.
    pub fn param(&self, name: &str) -> Option<String> {
        self.redirect
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

/// What reached the peer so far, counted as requests arrive, whatever it answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct PeerStats {
    /// Requests to the token endpoint, by grant type.
    pub token_requests: TokenRequests,
    /// Requests to the revocation endpoint.
    pub revocations: u64,
    /// Requests to the introspection endpoint.
    pub introspections: u64,
    /// Calls of the resource endpoint (`/_peer/resource`).
    pub resource_calls: u64,
}

/// Token-endpoint requests by `grant_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TokenRequests {
    /// `authorization_code`.
    pub authorization_code: u64,
    /// `refresh_token`.
    pub refresh_token: u64,
    /// Any other or no grant type.
    pub other: u64,
}

#[derive(Deserialize)]
struct Ready {
    issuer: String,
}

/// The running peer; killed when dropped (and it exits by itself when its stdin closes, so it
/// does not outlive a test process that dies).
#[derive(Debug)]
pub struct OAuthPeer {
    issuer: String,
    options: PeerOptions,
    http: reqwest::Client,
    child: Child,
    _stdin: ChildStdin,
    _stdout: BufReader<ChildStdout>,
}

impl OAuthPeer {
    /// Starts a peer and waits for its ready line. Panics with what to do when `node` or the
    /// installed package is missing.
    #[allow(clippy::panic)] // A harness fails loudly, saying what to install.
    pub async fn start(options: PeerOptions) -> OAuthPeer {
        assert!(
            !options.redirect_uris.is_empty(),
            "the OAuth peer needs at least one redirect URI"
        );
        let dir = peer_dir();
        assert!(
            dir.join("node_modules/oidc-provider/package.json")
                .is_file(),
            "oidc-provider is not installed: run `npm ci --no-audit --no-fund` in {} \
             (scripts/test does it)",
            dir.display()
        );
        let mut attempt = 0;
        let (child, stdin, stdout, ready) = loop {
            attempt += 1;
            let mut child = Command::new("node")
                .arg("server.mjs")
                .current_dir(&dir)
                .env("PEER_CLIENT_ID", &options.client_id)
                .env("PEER_CLIENT_SECRET", &options.client_secret)
                .env("PEER_REDIRECT_URIS", options.redirect_uris.join(","))
                .env(
                    "PEER_ROTATE_REFRESH",
                    if options.rotate_refresh { "1" } else { "0" },
                )
                .env("PEER_ACCESS_TTL", options.access_ttl.as_secs().to_string())
                .env("PEER_PASSWORD", &options.password)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|error| {
                    panic!("cannot run `node` (Node.js 20 or later must be on PATH): {error}")
                });
            let stdin = child.stdin.take().expect("piped stdin");
            let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
            let mut line = String::new();
            match tokio::time::timeout(READY_TIMEOUT, stdout.read_line(&mut line)).await {
                Ok(read) => {
                    let read = read.expect("reading the OAuth peer's stdout");
                    assert!(
                        read > 0,
                        "the OAuth peer exited before it was ready (its stderr is in the test output)"
                    );
                    let ready: Ready = serde_json::from_str(&line).unwrap_or_else(|error| {
                        panic!("the OAuth peer's ready line {line:?}: {error}")
                    });
                    break (child, stdin, stdout, ready);
                }
                Err(_) if attempt < READY_ATTEMPTS => {
                    eprintln!(
                        "the OAuth peer printed no ready line in {READY_TIMEOUT:?}: restarting it"
                    );
                    let _ = child.kill().await;
                }
                Err(_) => panic!(
                    "the OAuth peer printed no ready line in {READY_TIMEOUT:?}, {READY_ATTEMPTS} times"
                ),
            }
        };
        OAuthPeer {
            issuer: ready.issuer,
            options,
            http: reqwest::Client::new(),
            child,
            _stdin: stdin,
            _stdout: stdout,
        }
    }

    /// The issuer, `http://127.0.0.1:PORT` without a trailing slash; its endpoints are in
    /// `{issuer}/.well-known/openid-configuration`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The URL of `path` (which starts with `/`) at the peer, e.g. `/token`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.options.client_id
    }

    /// The client secret.
    pub fn client_secret(&self) -> &str {
        &self.options.client_secret
    }

    /// The user that can sign in, and their password.
    pub fn user(&self) -> (&str, &str) {
        ("alice", &self.options.password)
    }

    /// The options the peer runs with.
    pub fn options(&self) -> &PeerOptions {
        &self.options
    }

    /// A browser for this peer: a fresh cookie jar (a new user agent, signed in nowhere) that
    /// follows redirects except the one to a redirect URI of the client, which
    /// [`OAuthPeer::authorize`] then reads.
    pub fn browser(&self) -> reqwest::Client {
        let redirect_uris = self.options.redirect_uris.clone();
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                let url = attempt.url().as_str();
                if redirect_uris
                    .iter()
                    .any(|uri| url.starts_with(uri.as_str()))
                {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .expect("a browser client")
    }

    /// Plays the user in `browser` (from [`OAuthPeer::browser`]) for `authorize`, an
    /// authorization URL at this peer: through `pages` (where the login first checks that a
    /// wrong password is refused), consent given. Returns the redirect to the client's
    /// redirect URI, with `code`, `state` and `iss` (or `error`) in its query, and the consent
    /// page.
    #[allow(clippy::panic)] // A harness fails loudly.
    pub async fn authorize(
        &self,
        browser: &reqwest::Client,
        authorize: Url,
        pages: Pages,
    ) -> Authorization {
        let mut consent = browser
            .get(authorize)
            .send()
            .await
            .expect("the authorization request");
        assert_eq!(consent.status(), StatusCode::OK);
        assert!(consent.url().path().starts_with("/interaction/"));

        if pages == Pages::LoginAndConsent {
            let login = consent.url().clone();
            let form = consent.text().await.expect("the login page");
            assert!(form.contains(r#"id="password""#), "{form}");
            let (user, _) = self.user();
            let wrong = browser
                .post(format!("{login}/login"))
                .form(&[("login", user), ("password", "not-the-password")])
                .send()
                .await
                .expect("the login with a wrong password");
            assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
            let page = wrong.text().await.expect("the refused login page");
            assert!(page.contains("Wrong username or password"), "{page}");
            consent = self.sign_in(browser, &login).await;
        }
        let confirm = format!("{}/confirm", consent.url());
        let page = consent.text().await.expect("the consent page");
        assert!(page.contains(r#"id="allow""#), "{page}");
        let response = browser.post(confirm).send().await.expect("the consent");
        Authorization {
            redirect: redirect_of(&response),
            consent_page: page,
        }
    }

    /// Signs `alice` in at the login page `login` in `browser`; the consent page that follows.
    async fn sign_in(&self, browser: &reqwest::Client, login: &Url) -> reqwest::Response {
        let (user, password) = self.user();
        let consent = browser
            .post(format!("{login}/login"))
            .form(&[("login", user), ("password", password)])
            .send()
            .await
            .expect("the login");
        assert_eq!(consent.status(), StatusCode::OK);
        consent
    }

    /// Plays a signed-in-then-refusing user in `browser` for `authorize`: signs in, then
    /// denies consent. Returns the redirect to the client's redirect URI (with
    /// `error=access_denied`).
    #[allow(clippy::panic)] // A harness fails loudly.
    pub async fn deny(&self, browser: &reqwest::Client, authorize: Url) -> Url {
        let page = browser
            .get(authorize)
            .send()
            .await
            .expect("the authorization request");
        assert!(page.url().path().starts_with("/interaction/"));
        let consent = self.sign_in(browser, &page.url().clone()).await;
        let response = browser
            .get(format!("{}/abort", consent.url()))
            .send()
            .await
            .expect("the refusal");
        redirect_of(&response)
    }

    /// The requests counted so far.
    pub async fn stats(&self) -> PeerStats {
        let response = self
            .http
            .get(self.url("/_peer/stats"))
            .send()
            .await
            .expect("the OAuth peer's stats");
        assert_eq!(response.status(), 200, "the OAuth peer's stats");
        response.json().await.expect("the OAuth peer's stats JSON")
    }
}

impl Drop for OAuthPeer {
    fn drop(&mut self) {
        // Best effort: a peer that already exited has nothing to kill.
        let _ = self.child.start_kill();
    }
}

/// The redirect (303) a response of the peer answers with.
#[allow(clippy::panic)] // A harness fails loudly.
fn redirect_of(response: &reqwest::Response) -> Url {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()[LOCATION]
        .to_str()
        .expect("an ASCII Location");
    Url::parse(location).unwrap_or_else(|error| panic!("the redirect {location:?}: {error}"))
}

/// `tests/oauth-peer` of this repository.
fn peer_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // crates/testkit -> the repository root.
    let root = manifest.ancestors().nth(2).unwrap_or(manifest);
    root.join("tests/oauth-peer")
}
