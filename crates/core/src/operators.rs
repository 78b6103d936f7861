//! Operator accounts: the people who run the vault from the portal. An account is a username
//! and an Argon2id password hash (OWASP parameters); `alter operator add` creates one. Signing
//! in verifies in constant time, verifies a dummy hash for an unknown username (so timing does
//! not tell which names exist) and goes through a failed-attempt throttle kept in the database
//! (so it holds across nodes).
//!
//! Operators act on every app. Their sign-ins and account changes are recorded as operator
//! events (an append-only log of their own: they belong to no app's chain); what they change in
//! an app is recorded in that app's chain by the same services the admin API uses, with the
//! operator named in the actor (see [`acting_as`]).

use std::sync::{LazyLock, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;

use crate::audit::Decision;
use crate::error::{Entity, Error, Result};
use crate::ids::{EventId, Id, IdKind};
use crate::ports::StoreResult;
use crate::time::Timestamp;
use crate::vault::Vault;

/// Marker of operator ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperatorKind {}
impl IdKind for OperatorKind {
    const NAME: &'static str = "operator";
}
/// An operator account.
pub type OperatorId = Id<OperatorKind>;

/// How the operator who signed in with the admin token is named in events.
pub const ADMIN_TOKEN_OPERATOR: &str = "admin-token";

/// Events name a refused sign-in of a username that has no account this way, never by the
/// text typed (which may be a password typed in the wrong field).
pub const UNKNOWN_OPERATOR: &str = "unknown user";

/// Failed sign-ins in a row (per username as typed, from one client address) after which each
/// further attempt from that address waits [`LOCKOUT_SECONDS`]: someone else's failures do
/// not lock an operator out.
pub const MAX_FAILED_SIGN_INS: i64 = 5;
/// Failed sign-ins in a row of one username from every address together after which each
/// further attempt waits [`LOCKOUT_SECONDS`]: the backstop against guessing from many
/// addresses (about one guess a minute, once reached).
pub const MAX_FAILED_SIGN_INS_PER_NAME: i64 = 100;
/// Failed sign-ins in a row from one client address, whatever the username (or the admin
/// token), after which each further attempt from it waits [`LOCKOUT_SECONDS`]: the backstop
/// against one address trying a few guesses at many names. A success from it clears it.
pub const MAX_FAILED_SIGN_INS_PER_ADDRESS: i64 = 20;
/// How long a throttled username waits before its next attempt.
pub const LOCKOUT_SECONDS: i64 = 60;
/// A refused sign-in of one operator is recorded at most this often; the event counts the
/// refusals since the last one recorded, so a flood cannot grow the log without bound.
pub const FAILURE_EVENT_INTERVAL_SECONDS: i64 = 60;
/// Password checks (Argon2id, 19 MiB and tens of milliseconds each) running at once on a node;
/// a sign-in beyond them is answered "busy" at once, never queued.
pub const CONCURRENT_PASSWORD_CHECKS: usize = 2;
/// How long failed sign-ins are remembered after a username's last attempt.
pub const FAILURES_REMEMBERED_SECONDS: i64 = 24 * 3600;

const USERNAME_MAX: usize = 64;
const PASSWORD_MIN: usize = 12;
const PASSWORD_MAX: usize = 1024;

/// Names of operator events.
pub mod operator_action {
    /// An operator signed in to the portal.
    pub const SIGNED_IN: &str = "operator.signed_in";
    /// A sign-in was refused (wrong password, unknown username, wrong admin token, throttled).
    pub const SIGN_IN_FAILED: &str = "operator.sign_in_failed";
    /// An operator signed out.
    pub const SIGNED_OUT: &str = "operator.signed_out";
    /// An operator account was created.
    pub const ADDED: &str = "operator.added";
    /// An operator account was removed.
    pub const REMOVED: &str = "operator.removed";
    /// An operator's password was changed.
    pub const PASSWORD_CHANGED: &str = "operator.password_changed";
    /// `alter keys rotate` re-wrapped the KEKs and MAC root under another key holder.
    pub const KEY_HOLDER_ROTATED: &str = "keys.holder_rotated";
    /// `alter keys rotate-kek` added a KEK version.
    pub const KEK_ADDED: &str = "keys.kek_added";
    /// `alter keys retire-kek` deleted the older KEK versions.
    pub const KEKS_RETIRED: &str = "keys.keks_retired";
}

/// The operator named by the events of `alter keys …`, which runs against the database, not
/// through a node: whoever holds the database and the key holder.
pub const KEY_COMMAND_OPERATOR: &str = "key-command";

/// Records a change made with `alter keys …` (`action`, one of [`operator_action`]'s `keys.*`)
/// as an operator event; `detail` says what changed and never holds key material.
pub async fn record_key_command(
    store: &dyn OperatorStore,
    at: Timestamp,
    action: &str,
    detail: String,
) -> StoreResult<()> {
    let event = OperatorEvent {
        reason: Some(detail),
        ..OperatorEvent::new(at, action, Decision::Allow, KEY_COMMAND_OPERATOR)
    };
    store.append_operator_event(&event).await
}

/// An operator account (never its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// Id.
    pub id: OperatorId,
    /// Sign-in name: lower-case letters, digits, `.`, `_`, `-`.
    pub username: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last password change (creation, at first): portal sessions older than this are void.
    pub password_changed_at: Timestamp,
}

/// An Argon2id hash in PHC string form.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHashText(pub String);

impl std::fmt::Debug for PasswordHashText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHashText(..)")
    }
}

/// An operator account with its password hash, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOperator {
    /// The account.
    pub operator: Operator,
    /// Its password's hash.
    pub password_hash: PasswordHashText,
}

/// One operator event: a sign-in, a sign-out or an account change. Never holds a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorEvent {
    /// Id (time-ordered).
    pub id: EventId,
    /// When.
    pub at: Timestamp,
    /// What (see [`operator_action`]).
    pub action: String,
    /// Allowed or refused.
    pub decision: Decision,
    /// The operator: a username (as typed, for a refused sign-in) or [`ADMIN_TOKEN_OPERATOR`].
    pub operator: String,
    /// Why it was refused, or who made an account change.
    pub reason: Option<String>,
    /// The client's address, when known.
    pub peer: Option<String>,
}

impl OperatorEvent {
    fn new(at: Timestamp, action: &str, decision: Decision, operator: &str) -> Self {
        OperatorEvent {
            id: EventId::new(),
            at,
            action: action.to_owned(),
            decision,
            operator: operator.to_owned(),
            reason: None,
            peer: None,
        }
    }
}

/// Storage of operator accounts, their sign-in throttle and their events.
#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// Stores a new account with its event; [`StoreError::Conflict`](crate::ports::StoreError)
    /// `"operator_username"` if the username is taken.
    async fn insert_operator(
        &self,
        operator: &StoredOperator,
        event: &OperatorEvent,
    ) -> StoreResult<()>;
    /// The account of that username.
    async fn find_operator(&self, username: &str) -> StoreResult<Option<StoredOperator>>;
    /// The account of that id.
    async fn get_operator(&self, id: OperatorId) -> StoreResult<Option<Operator>>;
    /// Every account, by username.
    async fn list_operators(&self) -> StoreResult<Vec<Operator>>;
    /// Deletes the account of that username with its event; false if there was none.
    async fn delete_operator(&self, username: &str, event: &OperatorEvent) -> StoreResult<bool>;
    /// Replaces the account's password hash (and its change time) with its event; false if
    /// there is no such account.
    async fn set_operator_password(
        &self,
        username: &str,
        hash: &PasswordHashText,
        at: Timestamp,
        event: &OperatorEvent,
    ) -> StoreResult<bool>;
    /// Counts a sign-in attempt for `throttle_key` as failed until [`clear_sign_in_failures`]
    /// says otherwise, atomically across nodes: refused (false, changing nothing) while the
    /// key is locked at `now`; the attempt that reaches `max_failures` locks the key until
    /// `lock_until`.
    ///
    /// [`clear_sign_in_failures`]: OperatorStore::clear_sign_in_failures
    async fn claim_sign_in_attempt(
        &self,
        throttle_key: &str,
        now: Timestamp,
        max_failures: i64,
        lock_until: Timestamp,
    ) -> StoreResult<bool>;
    /// Forgets the failures of `throttle_key` (a sign-in succeeded).
    async fn clear_sign_in_failures(&self, throttle_key: &str) -> StoreResult<()>;
    /// Counts a refused sign-in of `operator`, atomically across nodes, and says whether to
    /// record it now: `Some(n)`, the refusals not yet recorded with this one, when the last
    /// recorded refusal of `operator` is at or before `recorded_before` (or there is none);
    /// `None` otherwise (the refusal waits, counted, for the next one recorded).
    async fn count_sign_in_failure(
        &self,
        operator: &str,
        now: Timestamp,
        recorded_before: Timestamp,
    ) -> StoreResult<Option<i64>>;
    /// Forgets the failures of every key last tried, and unlocked, before `before`; returns
    /// how many keys.
    async fn prune_sign_in_throttle(&self, before: Timestamp) -> StoreResult<u64>;
    /// Appends an event that goes with no other change.
    async fn append_operator_event(&self, event: &OperatorEvent) -> StoreResult<()>;
    /// The newest operator events, newest first.
    async fn list_operator_events(&self, limit: i64) -> StoreResult<Vec<OperatorEvent>>;
    /// How many audit events of each of `actions` every app recorded at or after `since`, per
    /// hour: `(hour, action, count)` where `hour` counts hours since the Unix epoch.
    async fn count_events_by_hour(
        &self,
        since: Timestamp,
        actions: &[&str],
    ) -> StoreResult<Vec<(i64, String, i64)>>;
}

/// The dashboard's window: this many hours, the current one last.
pub const DASHBOARD_HOURS: i64 = 24;

/// One hour of the dashboard: credential releases, denials and held calls across every app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HourlyActivity {
    /// The hour's start.
    pub hour_start: Timestamp,
    /// Credentials released (retrieved or used by a proxied call).
    pub releases: i64,
    /// Credential uses refused.
    pub denials: i64,
    /// Proxied calls held for approval.
    pub holds: i64,
}

/// Puts per-hour counts into the [`DASHBOARD_HOURS`] hours ending with `now`'s, oldest first
/// (hours without events count zero; counts outside the window are ignored).
pub fn hourly_activity(now: Timestamp, counts: &[(i64, String, i64)]) -> Vec<HourlyActivity> {
    const HOUR_MICROS: i64 = 3_600_000_000;
    let current = now.micros().div_euclid(HOUR_MICROS);
    let first = current - (DASHBOARD_HOURS - 1);
    let mut hours: Vec<HourlyActivity> = (first..=current)
        .map(|hour| HourlyActivity {
            hour_start: Timestamp::from_micros(hour * HOUR_MICROS),
            releases: 0,
            denials: 0,
            holds: 0,
        })
        .collect();
    for (hour, action, count) in counts {
        let Some(slot) = usize::try_from(hour - first)
            .ok()
            .and_then(|i| hours.get_mut(i))
        else {
            continue;
        };
        match action.as_str() {
            crate::audit::action::CREDENTIAL_RELEASED => slot.releases += count,
            crate::audit::action::CREDENTIAL_DENIED => slot.denials += count,
            crate::audit::action::APPROVAL_REQUESTED => slot.holds += count,
            _ => {}
        }
    }
    hours
}

/// What a sign-in attempt came to. A wrong password and an unknown username are the same
/// [`SignInOutcome::Refused`]. `T` is who signed in: an operator account, or nobody in
/// particular for the admin token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInOutcome<T = Operator> {
    /// The password (or token) is right.
    SignedIn(T),
    /// Wrong username or password.
    Refused,
    /// Too many failures for this username: try again later.
    Throttled,
    /// Every password check is taken (see [`CONCURRENT_PASSWORD_CHECKS`]): nothing was
    /// checked or recorded; try again in a moment.
    Busy,
}

impl<T> SignInOutcome<T> {
    /// The same outcome, with who signed in mapped by `f`.
    pub fn map_signed_in<U>(self, f: impl FnOnce(T) -> U) -> SignInOutcome<U> {
        match self {
            SignInOutcome::SignedIn(who) => SignInOutcome::SignedIn(f(who)),
            SignInOutcome::Refused => SignInOutcome::Refused,
            SignInOutcome::Throttled => SignInOutcome::Throttled,
            SignInOutcome::Busy => SignInOutcome::Busy,
        }
    }
}

/// The node's password checks in flight (see [`CONCURRENT_PASSWORD_CHECKS`]).
static PASSWORD_CHECKS: LazyLock<tokio::sync::Semaphore> =
    LazyLock::new(|| tokio::sync::Semaphore::new(CONCURRENT_PASSWORD_CHECKS));

/// The throttle keys of one sign-in: the name from this client address (locked after
/// [`MAX_FAILED_SIGN_INS`]), the name from anywhere (after [`MAX_FAILED_SIGN_INS_PER_NAME`]),
/// and the address whatever the name (after [`MAX_FAILED_SIGN_INS_PER_ADDRESS`]).
struct ThrottleKeys {
    from_peer: String,
    anywhere: String,
    peer: String,
}

impl ThrottleKeys {
    fn new(name: String, peer: Option<&str>) -> Self {
        let peer = peer.unwrap_or("unknown");
        ThrottleKeys {
            from_peer: format!("{name}@{peer}"),
            anywhere: name,
            // Names are `user:…` or the admin token's: none starts with `address:`.
            peer: format!("address:{peer}"),
        }
    }

    /// Each key with the failures that lock it.
    fn limits(&self) -> [(&str, i64); 3] {
        [
            (&self.from_peer, MAX_FAILED_SIGN_INS),
            (&self.anywhere, MAX_FAILED_SIGN_INS_PER_NAME),
            (&self.peer, MAX_FAILED_SIGN_INS_PER_ADDRESS),
        ]
    }
}

tokio::task_local! {
    static ACTING_OPERATOR: String;
}

/// Runs `work` (a portal request's service calls) with `operator` named as the actor of every
/// operator event it records in an app's audit chain.
pub async fn acting_as<F: std::future::Future>(operator: String, work: F) -> F::Output {
    ACTING_OPERATOR.scope(operator, work).await
}

/// The operator named by [`acting_as`], if the current task runs inside it.
pub(crate) fn acting_operator() -> Option<String> {
    ACTING_OPERATOR.try_with(Clone::clone).ok()
}

/// Argon2id with the OWASP parameters (19 MiB, 2 passes, 1 lane).
fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// Hashes `password` with a fresh salt.
pub fn hash_password(password: &str) -> Result<PasswordHashText> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| PasswordHashText(hash.to_string()))
        .map_err(|_| Error::Invalid("the password cannot be hashed".into()))
}

/// Whether `password` matches `hash` (the tag compared in constant time by `argon2`). A hash
/// that does not parse matches nothing.
pub fn verify_password(password: &str, hash: &PasswordHashText) -> bool {
    PasswordHash::new(&hash.0).is_ok_and(|parsed| {
        argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash of a random password, verified against for unknown usernames so that they take as
/// long as known ones.
fn dummy_hash() -> &'static PasswordHashText {
    static DUMMY: OnceLock<PasswordHashText> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random = uuid::Uuid::new_v4().to_string();
        hash_password(&random).unwrap_or_else(|_| PasswordHashText(String::new()))
    })
}

/// A valid username: 1–64 of lower-case letters, digits, `.`, `_`, `-`, starting with a
/// letter or digit.
pub fn validate_username(username: &str) -> Result<&str> {
    let valid = !username.is_empty()
        && username.len() <= USERNAME_MAX
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && username
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if valid {
        Ok(username)
    } else {
        Err(Error::Invalid(format!(
            "username must be 1 to {USERNAME_MAX} lower-case letters, digits, '.', '_' or '-', \
             starting with a letter or digit"
        )))
    }
}

/// A password long enough to resist guessing, and short enough to hash.
pub fn validate_password(password: &str) -> Result<&str> {
    let length = password.chars().count();
    if (PASSWORD_MIN..=PASSWORD_MAX).contains(&length) {
        Ok(password)
    } else {
        Err(Error::Invalid(format!(
            "password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters"
        )))
    }
}

/// Usernames no account may take: they would read like the admin token's holder in events.
fn is_reserved_username(username: &str) -> bool {
    username.starts_with("admin")
}

/// The username for a sign-in, folded: trimmed, lower-cased and cut to the longest username,
/// so variants of one name share a throttle and stored keys stay small.
fn throttle_key(typed: &str) -> String {
    typed
        .trim()
        .to_lowercase()
        .chars()
        .take(USERNAME_MAX)
        .collect()
}

/// Runs Argon2 off the async workers (it takes tens of milliseconds of CPU).
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| Error::Invalid("password hashing was interrupted".into()))
}

impl Vault {
    /// Creates an operator account (`by` names who did it, for the event).
    pub async fn add_operator(&self, username: &str, password: &str, by: &str) -> Result<Operator> {
        let username = validate_username(username)?.to_owned();
        if is_reserved_username(&username) {
            return Err(Error::Invalid(
                "usernames starting with 'admin' are reserved".into(),
            ));
        }
        let password = validate_password(password)?.to_owned();
        let password_hash = blocking(move || hash_password(&password)).await??;
        let now = self.now();
        let operator = Operator {
            id: OperatorId::new(),
            username,
            created_at: now,
            password_changed_at: now,
        };
        let event = OperatorEvent {
            reason: Some(format!("by {by}")),
            ..OperatorEvent::new(
                now,
                operator_action::ADDED,
                Decision::Allow,
                &operator.username,
            )
        };
        let stored = StoredOperator {
            operator: operator.clone(),
            password_hash,
        };
        match self.store().insert_operator(&stored, &event).await {
            Err(crate::ports::StoreError::Conflict(_)) => Err(Error::Conflict(format!(
                "an operator named {} exists",
                operator.username
            ))),
            other => other.map(|()| operator).map_err(Error::from),
        }
    }

    /// Every operator account, by username.
    pub async fn list_operators(&self) -> Result<Vec<Operator>> {
        Ok(self.store().list_operators().await?)
    }

    /// One operator account, by id (a portal session names its operator by id).
    pub async fn get_operator(&self, id: OperatorId) -> Result<Operator> {
        self.store()
            .get_operator(id)
            .await?
            .ok_or(Error::NotFound(Entity::Operator))
    }

    /// Removes an operator account; its portal sessions stop working with it.
    pub async fn remove_operator(&self, username: &str, by: &str) -> Result<()> {
        let event = OperatorEvent {
            reason: Some(format!("by {by}")),
            ..OperatorEvent::new(
                self.now(),
                operator_action::REMOVED,
                Decision::Allow,
                username,
            )
        };
        if self.store().delete_operator(username, &event).await? {
            Ok(())
        } else {
            Err(Error::NotFound(Entity::Operator))
        }
    }

    /// Sets an operator's password; the portal sessions it signed in before stop working.
    pub async fn set_operator_password(
        &self,
        username: &str,
        password: &str,
        by: &str,
    ) -> Result<()> {
        let password = validate_password(password)?.to_owned();
        let hash = blocking(move || hash_password(&password)).await??;
        let now = self.now();
        let event = OperatorEvent {
            reason: Some(format!("by {by}")),
            ..OperatorEvent::new(
                now,
                operator_action::PASSWORD_CHANGED,
                Decision::Allow,
                username,
            )
        };
        if self
            .store()
            .set_operator_password(username, &hash, now, &event)
            .await?
        {
            Ok(())
        } else {
            Err(Error::NotFound(Entity::Operator))
        }
    }

    /// Checks an operator's username and password, through the failed-attempt throttle, and
    /// records the attempt. An unknown username costs the same Argon2 verification as a known
    /// one and is refused the same way. When every password check is taken, answers
    /// [`SignInOutcome::Busy`] at once, having checked and recorded nothing.
    pub async fn operator_sign_in(
        &self,
        username: &str,
        password: &str,
        peer: Option<&str>,
    ) -> Result<SignInOutcome> {
        let Ok(_permit) = PASSWORD_CHECKS.try_acquire() else {
            return Ok(SignInOutcome::Busy);
        };
        let name = throttle_key(username);
        let stored = match validate_username(&name) {
            Ok(name) => self.store().find_operator(name).await?,
            Err(_) => None,
        };
        let named = stored
            .as_ref()
            .map_or(UNKNOWN_OPERATOR, |s| s.operator.username.as_str())
            .to_owned();
        let keys = ThrottleKeys::new(format!("user:{name}"), peer);
        if !self.claim_sign_in_attempt(&keys).await? {
            self.record_sign_in_failure(&named, "throttled", peer)
                .await?;
            return Ok(SignInOutcome::Throttled);
        }
        let hash = stored
            .as_ref()
            .map_or_else(|| dummy_hash().clone(), |s| s.password_hash.clone());
        let password = password.to_owned();
        let matches = blocking(move || verify_password(&password, &hash)).await?;
        match stored {
            Some(stored) if matches => {
                self.clear_sign_in_failures(&keys).await?;
                let event = OperatorEvent {
                    peer: peer.map(str::to_owned),
                    ..OperatorEvent::new(
                        self.now(),
                        operator_action::SIGNED_IN,
                        Decision::Allow,
                        &named,
                    )
                };
                self.store().append_operator_event(&event).await?;
                Ok(SignInOutcome::SignedIn(stored.operator))
            }
            _ => {
                self.record_sign_in_failure(&named, "invalid_credentials", peer)
                    .await?;
                Ok(SignInOutcome::Refused)
            }
        }
    }

    /// Counts an attempt of `keys` as failed until it succeeds; false (the attempt must not be
    /// checked) while either key is locked.
    async fn claim_sign_in_attempt(&self, keys: &ThrottleKeys) -> Result<bool> {
        let now = self.now();
        let lock_until = now.plus_seconds(LOCKOUT_SECONDS);
        // In order, stopping at the first locked key (the attempt is not checked).
        for (key, max_failures) in keys.limits() {
            if !self
                .store()
                .claim_sign_in_attempt(key, now, max_failures, lock_until)
                .await?
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn clear_sign_in_failures(&self, keys: &ThrottleKeys) -> Result<()> {
        for (key, _) in keys.limits() {
            self.store().clear_sign_in_failures(key).await?;
        }
        Ok(())
    }

    /// Records a refused sign-in of `operator`, at most once per
    /// [`FAILURE_EVENT_INTERVAL_SECONDS`] per operator (the event counts the refusals since
    /// the last one recorded).
    async fn record_sign_in_failure(
        &self,
        operator: &str,
        reason: &str,
        peer: Option<&str>,
    ) -> Result<()> {
        let now = self.now();
        let recorded_before = now.plus_seconds(-FAILURE_EVENT_INTERVAL_SECONDS);
        let Some(count) = self
            .store()
            .count_sign_in_failure(operator, now, recorded_before)
            .await?
        else {
            return Ok(());
        };
        let reason = if count > 1 {
            format!("{reason} ({count} refusals since the last recorded)")
        } else {
            reason.to_owned()
        };
        let event = OperatorEvent {
            reason: Some(reason),
            peer: peer.map(str::to_owned),
            ..OperatorEvent::new(
                now,
                operator_action::SIGN_IN_FAILED,
                Decision::Deny,
                operator,
            )
        };
        Ok(self.store().append_operator_event(&event).await?)
    }

    /// Forgets failed sign-ins of usernames nobody tried for [`FAILURES_REMEMBERED_SECONDS`]
    /// (and not locked), so guessed names do not pile up; returns how many.
    pub async fn prune_sign_in_throttle(&self) -> Result<u64> {
        let before = self.now().plus_seconds(-FAILURES_REMEMBERED_SECONDS);
        Ok(self.store().prune_sign_in_throttle(before).await?)
    }

    /// Checks a portal sign-in with the admin token through the same failed-attempt
    /// throttle as operator accounts (keyed by the client address, with a backstop for every
    /// address) and records it: `check` compares the presented token (the server alone holds
    /// its hash) and runs only when the throttle admits the attempt.
    pub async fn admin_token_sign_in(
        &self,
        check: impl FnOnce() -> bool,
        peer: Option<&str>,
    ) -> Result<SignInOutcome<()>> {
        let keys = ThrottleKeys::new(ADMIN_TOKEN_OPERATOR.to_owned(), peer);
        if !self.claim_sign_in_attempt(&keys).await? {
            self.record_sign_in_failure(ADMIN_TOKEN_OPERATOR, "throttled", peer)
                .await?;
            return Ok(SignInOutcome::Throttled);
        }
        if !check() {
            self.record_sign_in_failure(ADMIN_TOKEN_OPERATOR, "invalid_admin_token", peer)
                .await?;
            return Ok(SignInOutcome::Refused);
        }
        self.clear_sign_in_failures(&keys).await?;
        let event = OperatorEvent {
            peer: peer.map(str::to_owned),
            ..OperatorEvent::new(
                self.now(),
                operator_action::SIGNED_IN,
                Decision::Allow,
                ADMIN_TOKEN_OPERATOR,
            )
        };
        self.store().append_operator_event(&event).await?;
        Ok(SignInOutcome::SignedIn(()))
    }

    /// Records a portal sign-out.
    pub async fn record_operator_sign_out(&self, operator: &str) -> Result<()> {
        let event = OperatorEvent::new(
            self.now(),
            operator_action::SIGNED_OUT,
            Decision::Allow,
            operator,
        );
        Ok(self.store().append_operator_event(&event).await?)
    }

    /// Releases, denials and holds of every app over the last [`DASHBOARD_HOURS`] hours, one
    /// entry per hour, oldest first.
    pub async fn dashboard_activity(&self) -> Result<Vec<HourlyActivity>> {
        let now = self.now();
        let since = Timestamp::from_micros(
            (now.micros().div_euclid(3_600_000_000) - (DASHBOARD_HOURS - 1)) * 3_600_000_000,
        );
        let actions = [
            crate::audit::action::CREDENTIAL_RELEASED,
            crate::audit::action::CREDENTIAL_DENIED,
            crate::audit::action::APPROVAL_REQUESTED,
        ];
        let counts = self.store().count_events_by_hour(since, &actions).await?;
        Ok(hourly_activity(now, &counts))
    }

    /// The newest operator events (1 to 1000), newest first.
    pub async fn operator_events(&self, limit: i64) -> Result<Vec<OperatorEvent>> {
        let limit = crate::validate::int_in_range("limit", limit, 1, 1000)?;
        Ok(self.store().list_operator_events(limit).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify_only_their_password() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(
            hash.0.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hash.0
        );
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("", &hash));
        // A fresh salt every time.
        assert_ne!(hash, hash_password("correct horse battery").unwrap());
        assert!(!verify_password(
            "x",
            &PasswordHashText("not a hash".into())
        ));
        assert_eq!(format!("{hash:?}"), "PasswordHashText(..)");
    }

    #[test]
    fn the_dummy_hash_is_a_real_hash_of_the_same_cost() {
        let dummy = dummy_hash();
        assert!(dummy.0.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(!verify_password("correct horse battery", dummy));
    }

    #[test]
    fn usernames_and_passwords_are_checked() {
        assert!(validate_username("ops.alice-1_b").is_ok());
        for bad in ["", "Alice", "-x", "a b", "é", &"a".repeat(65)] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
        assert!(validate_password("twelve chars").is_ok());
        assert!(validate_password("eleven char").is_err());
        assert!(validate_password(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn throttle_keys_fold_variants_of_a_name() {
        assert_eq!(throttle_key("  Alice "), "alice");
        assert_eq!(throttle_key(&"A".repeat(100)).len(), USERNAME_MAX);
    }

    #[test]
    fn names_like_the_admin_token_are_reserved() {
        for reserved in ["admin", "admin-token", "administrator"] {
            assert!(is_reserved_username(reserved), "{reserved}");
        }
        assert!(!is_reserved_username("alice"));
    }

    #[test]
    fn hourly_activity_fills_every_hour_of_the_window() {
        let hour = 3_600_000_000;
        let now = Timestamp::from_micros(1000 * hour + 5);
        let counts = vec![
            (
                1000,
                crate::audit::action::CREDENTIAL_RELEASED.to_owned(),
                3,
            ),
            (1000, crate::audit::action::CREDENTIAL_DENIED.to_owned(), 2),
            (977, crate::audit::action::APPROVAL_REQUESTED.to_owned(), 1),
            (976, crate::audit::action::CREDENTIAL_RELEASED.to_owned(), 9),
            (1000, "key.minted".to_owned(), 7),
        ];
        let hours = hourly_activity(now, &counts);
        assert_eq!(hours.len(), 24);
        assert_eq!(hours[0].hour_start, Timestamp::from_micros(977 * hour));
        assert_eq!(
            (hours[0].releases, hours[0].denials, hours[0].holds),
            (0, 0, 1)
        );
        let last = hours[23];
        assert_eq!((last.releases, last.denials, last.holds), (3, 2, 0));
        let total: i64 = hours.iter().map(|h| h.releases + h.denials + h.holds).sum();
        assert_eq!(
            total, 6,
            "hour 976 is outside the window; other actions do not count"
        );
    }

    #[tokio::test]
    async fn the_acting_operator_names_operator_actors_only_inside_its_scope() {
        assert_eq!(crate::audit::Actor::operator().operator, None);
        let inside = acting_as("alice".into(), async {
            crate::audit::Actor::operator().operator
        })
        .await;
        assert_eq!(inside.as_deref(), Some("alice"));
    }
}
