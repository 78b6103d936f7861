//! Outbound webhooks in the Standard Webhooks format (<https://www.standardwebhooks.com/>):
//! per-app endpoints that receive chosen audit events, signed with a secret shown once.
//!
//! The audit log is the outbox. Every event a webhook carries is an audit event, committed
//! before the answer of the call that caused it, with a per-app sequence number taken under the
//! chain head's row lock, which is held until the commit: an app's events therefore become
//! visible in sequence order (a reader that sees number n sees every number below it), so a
//! cursor of "the last sequence number scanned" never skips an event that commits later.
//! Each endpoint keeps such a cursor; the background job ([`Vault::run_webhooks`]) turns the
//! events past it into delivery rows (in the same transaction that moves the cursor) and sends
//! the due ones, retrying with exponential backoff and jitter. A node dying mid-send leaves the
//! row pending, so the event is sent again: delivery is at least once, and `webhook-id` (the
//! audit event's id) lets receivers drop repeats.

use std::collections::HashMap;

use alter_crypto::{Binding, ExposeSecret, SecretString, Zeroizing};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::audit::{Actor, AuditEvent, Target, action};
use crate::error::{Entity, Error, Result};
use crate::ids::{AppId, WebhookId};
use crate::ports::StoreResult;
use crate::time::Timestamp;
use crate::vault::Vault;

/// Prefix of a signing secret: `whsec_` and the base64 of its 32 bytes.
pub const SECRET_PREFIX: &str = "whsec_";
/// The event selector that takes every audit event of the app.
pub const ALL_EVENTS: &str = "*";
/// The named event types an endpoint may select (each an audit action).
pub const EVENT_TYPES: &[&str] = &[
    action::CONNECTION_CREATED,
    action::CONNECTION_RECONNECTED,
    action::CONNECTION_REAUTH_REQUIRED,
    action::GRANT_REVOKED,
    action::DELEGATION_REVOKED,
    action::APPROVAL_REQUESTED,
    action::APPROVAL_APPROVED,
    action::APPROVAL_DENIED,
];
/// Attempts before a delivery is given up (status `failed`; a replay starts it again).
pub const MAX_ATTEMPTS: i64 = 12;
/// The first retry's delay; each further one doubles it, up to [`BACKOFF_CAP_SECONDS`].
pub const BACKOFF_BASE_SECONDS: i64 = 5;
/// The longest delay between two attempts.
pub const BACKOFF_CAP_SECONDS: i64 = 3600;
/// How long the previous secret keeps signing after a rotation, unless the operator says.
pub const DEFAULT_ROTATION_GRACE_SECONDS: i64 = 24 * 3600;
/// The longest grace period a rotation may ask for.
pub const MAX_ROTATION_GRACE_SECONDS: i64 = 7 * 24 * 3600;
/// How long a settled delivery (delivered, or given up) stays in the delivery log; the prune
/// job deletes it after that (a replay of it is then "not found"). Pending ones are kept.
pub const DELIVERY_RETENTION_SECONDS: i64 = 30 * 24 * 3600;
/// Endpoints an app may have.
pub const MAX_ENDPOINTS_PER_APP: usize = 20;
/// Why a delivery whose audit event no longer exists was given up.
pub const EVENT_GONE: &str = "its audit event no longer exists; it cannot be sent";
/// The longest last-error text kept on a delivery.
const MAX_ERROR_LEN: usize = 200;
/// Events scanned per endpoint per batch.
const SCAN_BATCH: i64 = 500;
/// Due deliveries sent per batch.
const SEND_BATCH: i64 = 50;

/// The kind bound into a sealed signing secret.
pub(crate) const SECRET_KIND: &str = "webhook.secret";

/// Audit actions of webhook management.
pub mod webhook_action {
    /// An endpoint was added.
    pub const CREATED: &str = "webhook.created";
    /// An endpoint was removed.
    pub const REMOVED: &str = "webhook.removed";
    /// An endpoint's signing secret was rotated.
    pub const SECRET_ROTATED: &str = "webhook.secret_rotated";
    /// A delivery was reset to be sent again.
    pub const REPLAYED: &str = "webhook.replayed";
}

/// An endpoint as stored: its secret sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: WebhookId,
    /// Its app.
    pub app_id: AppId,
    /// Where events are posted.
    pub url: String,
    /// Selected event types, or `["*"]`.
    pub events: Vec<String>,
    /// The operator's note.
    pub description: Option<String>,
    /// The signing secret's 32 bytes, sealed to the endpoint and its
    /// [`secret_revision`] (the version, and the URL from [`Self::url_bound_from`] on).
    pub sealed_secret: Vec<u8>,
    /// Bumped by every rotation.
    pub secret_version: i64,
    /// The secret before the last rotation, while it still signs.
    pub previous: Option<PreviousSecret>,
    /// The last audit sequence number of the app scanned for this endpoint.
    pub cursor_seq: i64,
    /// When it was added.
    pub created_at: Timestamp,
    /// When its secret was last rotated.
    pub rotated_at: Option<Timestamp>,
    /// The first secret version sealed bound to [`Self::url`]; `None` for an endpoint added
    /// before secrets were bound to it, until its next rotation.
    pub url_bound_from: Option<i64>,
}

/// The version string a webhook secret of `version` is sealed with: the version, and the
/// endpoint's URL when `version` was sealed bound to it (`url_bound_from`). Bound so a database
/// writer who points an endpoint at another URL gets a secret that does not open: nothing is
/// signed or sent there. `store/src/keyring.rs` builds the same text in SQL for the re-wrap.
pub fn secret_revision(version: i64, url: &str, url_bound_from: Option<i64>) -> String {
    match url_bound_from {
        Some(from) if version >= from => format!("{version} {url}"),
        _ => version.to_string(),
    }
}

/// The secret a rotation replaced, kept sealed until its grace period ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    /// Sealed to the endpoint and [`Self::version`].
    pub sealed: Vec<u8>,
    /// Its version.
    pub version: i64,
    /// Until when deliveries also carry its signature.
    pub until: Timestamp,
}

impl WebhookEndpoint {
    /// Whether the endpoint takes events of `action`.
    pub fn selects(&self, action: &str) -> bool {
        self.events.iter().any(|e| e == ALL_EVENTS || e == action)
    }
}

/// What an operator gives to add an endpoint.
#[derive(Debug, Clone, Default)]
pub struct NewWebhook {
    /// `https://…` (or `http://` to loopback, or anywhere when the operator allows http).
    pub url: String,
    /// Event types, or `["*"]`.
    pub events: Vec<String>,
    /// A note.
    pub description: Option<String>,
}

/// An endpoint with its new signing secret, shown this once.
pub struct WebhookWithSecret {
    /// The endpoint.
    pub endpoint: WebhookEndpoint,
    /// `whsec_…`.
    pub secret: SecretString,
}

impl std::fmt::Debug for WebhookWithSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookWithSecret")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up after [`MAX_ATTEMPTS`].
    Failed,
}

impl DeliveryStatus {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// The inverse of [`Self::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The endpoint.
    pub endpoint_id: WebhookId,
    /// The audit event's id: the `webhook-id`.
    pub event_id: String,
    /// The app.
    pub app_id: AppId,
    /// The event's place in the app's audit chain.
    pub seq: i64,
    /// The event's action.
    pub event_type: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at: Timestamp,
    /// When the last attempt was made.
    pub last_attempt_at: Option<Timestamp>,
    /// The HTTP status of the last answer.
    pub last_status: Option<i64>,
    /// Why the last attempt failed (never a secret, never the answer's body).
    pub last_error: Option<String>,
    /// When the event was picked up for the endpoint.
    pub created_at: Timestamp,
    /// When the receiver accepted it.
    pub delivered_at: Option<Timestamp>,
}

/// An audit event as the scanner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedEvent {
    /// Its sequence number.
    pub seq: i64,
    /// Its id.
    pub id: String,
    /// Its action.
    pub action: String,
}

/// What came of an attempt, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The new status.
    pub status: DeliveryStatus,
    /// Attempts made, this one included.
    pub attempts: i64,
    /// When the next attempt is due.
    pub next_attempt_at: Timestamp,
    /// When this one was made.
    pub at: Timestamp,
    /// The answer's HTTP status.
    pub http_status: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Storage of endpoints and deliveries.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a new endpoint with its audit event.
    async fn insert_webhook(
        &self,
        endpoint: &WebhookEndpoint,
        event: &AuditEvent,
    ) -> StoreResult<()>;
    /// An app's endpoints, oldest first.
    async fn list_webhooks(&self, app: AppId) -> StoreResult<Vec<WebhookEndpoint>>;
    /// Every endpoint of every app (the delivery job).
    async fn all_webhooks(&self) -> StoreResult<Vec<WebhookEndpoint>>;
    /// One endpoint of an app.
    async fn get_webhook(&self, app: AppId, id: WebhookId) -> StoreResult<Option<WebhookEndpoint>>;
    /// Removes an endpoint and its deliveries, with the audit event; false if there is none.
    async fn delete_webhook(
        &self,
        app: AppId,
        id: WebhookId,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Replaces the secret if it is still at `expected_version` (the endpoint holds the new
    /// one and its previous), with the audit event; false otherwise.
    async fn rotate_webhook_secret(
        &self,
        endpoint: &WebhookEndpoint,
        expected_version: i64,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Up to `limit` of an app's audit events after `after_seq`, in order.
    async fn scan_events(
        &self,
        app: AppId,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<ScannedEvent>>;
    /// In one transaction: moves the endpoint's cursor from `from` to `to` and adds
    /// `deliveries` (skipping any already there); false, with nothing changed, if the cursor
    /// was no longer at `from`.
    async fn enqueue_deliveries(
        &self,
        endpoint: WebhookId,
        from: i64,
        to: i64,
        deliveries: &[Delivery],
    ) -> StoreResult<bool>;
    /// Pending deliveries due at `now`, earliest first.
    async fn due_deliveries(&self, now: Timestamp, limit: i64) -> StoreResult<Vec<Delivery>>;
    /// The stored body (JSON) of an app's audit event.
    async fn event_body(&self, app: AppId, seq: i64) -> StoreResult<Option<String>>;
    /// Records an attempt if the delivery is still pending after `expected_attempts`.
    async fn record_attempt(
        &self,
        endpoint: WebhookId,
        event_id: &str,
        expected_attempts: i64,
        record: &AttemptRecord,
    ) -> StoreResult<bool>;
    /// An endpoint's deliveries, newest event first.
    async fn list_deliveries(
        &self,
        app: AppId,
        endpoint: WebhookId,
        status: Option<DeliveryStatus>,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>>;
    /// Resets a delivery to be sent at `now` with no attempts, with the audit event; the
    /// delivery as reset, `None` if there is none.
    async fn replay_delivery(
        &self,
        app: AppId,
        endpoint: WebhookId,
        event_id: &str,
        now: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<Option<Delivery>>;
    /// Deletes the deliveries that settled (delivered, or given up) before `before`; how many.
    async fn prune_deliveries(&self, before: Timestamp) -> StoreResult<u64>;
    /// Forgets every previous secret whose grace ended at or before `now`; how many.
    async fn clear_expired_previous_secrets(&self, now: Timestamp) -> StoreResult<u64>;
}

/// What a receiver answered, or why nothing came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// An HTTP answer with this status.
    Answered(u16),
    /// No answer: a short, secret-free reason (timeout, connection refused, …).
    Failed(String),
}

/// Posts a signed webhook (the `upstream` crate's HTTP client; no redirects, bounded time).
#[async_trait]
pub trait WebhookSender: Send + Sync + std::fmt::Debug {
    /// Posts `body` (JSON) with `headers` to `url`.
    async fn send(&self, url: &str, headers: &[(&'static str, String)], body: &[u8])
    -> SendOutcome;
}

/// What one run of the job did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookRun {
    /// Deliveries created from new events.
    pub queued: u64,
    /// Attempts answered 2xx.
    pub delivered: u64,
    /// Attempts that failed (to be retried, or given up).
    pub failed: u64,
}

/// The Standard Webhooks signature of a message: `v1,` and the base64 of
/// `HMAC-SHA256(key, "{id}.{timestamp}.{body}")`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut message = Vec::with_capacity(id.len() + body.len() + 24);
    message.extend_from_slice(id.as_bytes());
    message.push(b'.');
    message.extend_from_slice(timestamp.to_string().as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    format!(
        "v1,{}",
        BASE64.encode(alter_proto::signing::hmac_sha256(key, &message))
    )
}

/// The delay before attempt `attempts + 1`, `attempts` having failed: doubling from
/// [`BACKOFF_BASE_SECONDS`] up to [`BACKOFF_CAP_SECONDS`], then a random half of it taken off
/// ("equal jitter"), so retries of many deliveries spread out.
pub fn backoff_seconds(attempts: i64, random: u32) -> i64 {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = BACKOFF_BASE_SECONDS
        .saturating_mul(1_i64 << exponent)
        .min(BACKOFF_CAP_SECONDS);
    let half = full / 2;
    full - half + i64::from(random) % (half + 1)
}

/// Whether `url` may receive webhooks: `https`, or `http` to a loopback host (or anywhere
/// when `allow_http`), with a host and no credentials in it.
pub fn check_url(text: &str, allow_http: bool) -> Result<String> {
    let invalid = |why: &str| Error::Invalid(format!("url: {why}"));
    if text.len() > 2048 {
        return Err(invalid("longer than 2048 characters"));
    }
    let url = url::Url::parse(text).map_err(|_| invalid("not an absolute URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not hold credentials (user:password@)"));
    }
    if url.fragment().is_some() {
        return Err(invalid("must not have a fragment"));
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => return Err(invalid("has no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback || allow_http => {}
        "http" => {
            return Err(invalid(
                "must be https (http only to loopback, or where the operator allows it)",
            ));
        }
        _ => return Err(invalid("must be https")),
    }
    Ok(url.to_string())
}

fn check_events(events: &[String]) -> Result<Vec<String>> {
    if events.is_empty() {
        return Err(Error::Invalid(format!(
            "events: name at least one of {} or {ALL_EVENTS}",
            EVENT_TYPES.join(", ")
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for e in events {
        if e != ALL_EVENTS && !EVENT_TYPES.contains(&e.as_str()) {
            return Err(Error::Invalid(format!(
                "events: unknown event type {e:?}; use {} or {ALL_EVENTS}",
                EVENT_TYPES.join(", ")
            )));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    if out.iter().any(|e| e == ALL_EVENTS) {
        out = vec![ALL_EVENTS.to_owned()];
    }
    Ok(out)
}

fn webhook_event(endpoint: &WebhookEndpoint, action: &str, at: Timestamp) -> AuditEvent {
    AuditEvent::allow(
        endpoint.app_id,
        at,
        action,
        Actor::operator(),
        Target {
            kind: "webhook".into(),
            id: endpoint.id.to_string(),
        },
    )
}

/// What an audit event keeps of an endpoint's URL: scheme, host and port only. Receivers such
/// as Slack put a capability in the path (or the query), and the audit log is read and
/// streamed more widely than the endpoint's settings.
pub fn url_origin(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(url) if url.has_host() => url.origin().ascii_serialization(),
        _ => "<invalid url>".to_owned(),
    }
}

/// The secret's text: `whsec_` and the base64 of its bytes (outbound webhooks and inbound IdP
/// events share the Standard Webhooks secret format).
pub(crate) fn secret_text(bytes: &[u8]) -> SecretString {
    SecretString::from(format!("{SECRET_PREFIX}{}", BASE64.encode(bytes)))
}

/// A short, printable, bounded error text.
fn short_error(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_ERROR_LEN)
        .collect()
}

impl Vault {
    /// Adds an endpoint to `app`; its signing secret is in the answer, this once. It receives
    /// the events committed from now on.
    pub async fn create_webhook(&self, app: AppId, new: NewWebhook) -> Result<WebhookWithSecret> {
        let allow_http = self.settings().webhooks_allow_http;
        self.get_app(app).await?;
        let url = check_url(&new.url, allow_http)?;
        let events = check_events(&new.events)?;
        let description = match new.description {
            Some(d) if d.chars().count() > 500 => {
                return Err(Error::Invalid("description: at most 500 characters".into()));
            }
            Some(d) if !d.trim().is_empty() => Some(d),
            _ => None,
        };
        if self.store().list_webhooks(app).await?.len() >= MAX_ENDPOINTS_PER_APP {
            return Err(Error::Invalid(format!(
                "an app may have at most {MAX_ENDPOINTS_PER_APP} webhook endpoints"
            )));
        }
        let now = self.now();
        let id = WebhookId::new();
        let bytes = Zeroizing::new(alter_crypto::random_bytes::<32>()?);
        let cursor_seq = self
            .store()
            .chain_head(app)
            .await?
            .map_or(0, |(seq, _)| seq);
        let sealed_secret = self.seal_webhook_secret(
            app,
            id,
            &secret_revision(1, &url, Some(1)),
            bytes.as_slice(),
        )?;
        let endpoint = WebhookEndpoint {
            id,
            app_id: app,
            url,
            events,
            description,
            sealed_secret,
            secret_version: 1,
            previous: None,
            cursor_seq,
            created_at: now,
            rotated_at: None,
            url_bound_from: Some(1),
        };
        let event = webhook_event(&endpoint, webhook_action::CREATED, now).with_details(json!({
            "url": url_origin(&endpoint.url),
            "events": endpoint.events,
        }));
        self.store().insert_webhook(&endpoint, &event).await?;
        Ok(WebhookWithSecret {
            endpoint,
            secret: secret_text(bytes.as_slice()),
        })
    }

    /// An app's endpoints (never their secrets).
    pub async fn list_webhooks(&self, app: AppId) -> Result<Vec<WebhookEndpoint>> {
        self.get_app(app).await?;
        Ok(self.store().list_webhooks(app).await?)
    }

    /// One endpoint of `app`; another app's looks like none.
    pub async fn get_webhook(&self, app: AppId, id: WebhookId) -> Result<WebhookEndpoint> {
        self.store()
            .get_webhook(app, id)
            .await?
            .ok_or(Error::NotFound(Entity::Webhook))
    }

    /// Removes an endpoint and its delivery log.
    pub async fn remove_webhook(&self, app: AppId, id: WebhookId) -> Result<WebhookEndpoint> {
        let endpoint = self.get_webhook(app, id).await?;
        let event = webhook_event(&endpoint, webhook_action::REMOVED, self.now());
        if !self.store().delete_webhook(app, id, &event).await? {
            return Err(Error::NotFound(Entity::Webhook));
        }
        Ok(endpoint)
    }

    /// Gives an endpoint a new signing secret (in the answer, this once); for
    /// `grace_seconds` (default a day) deliveries carry the old secret's signature too. Two
    /// rotations from the same version cannot both win (the loser gets
    /// [`Error::SecretVersionConflict`]); `expected_version` makes the caller's read the base.
    pub async fn rotate_webhook_secret(
        &self,
        app: AppId,
        id: WebhookId,
        grace_seconds: Option<i64>,
        expected_version: Option<i64>,
    ) -> Result<WebhookWithSecret> {
        let grace = grace_seconds.unwrap_or(DEFAULT_ROTATION_GRACE_SECONDS);
        if !(0..=MAX_ROTATION_GRACE_SECONDS).contains(&grace) {
            return Err(Error::Invalid(format!(
                "grace_seconds: between 0 and {MAX_ROTATION_GRACE_SECONDS}"
            )));
        }
        let current = self.get_webhook(app, id).await?;
        if expected_version.is_some_and(|v| v != current.secret_version) {
            return Err(Error::SecretVersionConflict);
        }
        let now = self.now();
        let bytes = Zeroizing::new(alter_crypto::random_bytes::<32>()?);
        let version = current.secret_version + 1;
        // An endpoint added before secrets were bound to its URL is bound from this one on.
        let url_bound_from = current.url_bound_from.or(Some(version));
        let endpoint = WebhookEndpoint {
            sealed_secret: self.seal_webhook_secret(
                app,
                id,
                &secret_revision(version, &current.url, url_bound_from),
                bytes.as_slice(),
            )?,
            secret_version: version,
            url_bound_from,
            previous: (grace > 0).then(|| PreviousSecret {
                sealed: current.sealed_secret.clone(),
                version: current.secret_version,
                until: now.plus_seconds(grace),
            }),
            rotated_at: Some(now),
            ..current.clone()
        };
        let event = webhook_event(&endpoint, webhook_action::SECRET_ROTATED, now)
            .with_details(json!({ "grace_seconds": grace, "secret_version": version }));
        if !self
            .store()
            .rotate_webhook_secret(&endpoint, current.secret_version, &event)
            .await?
        {
            // Another rotation won (compare-and-swap on the version), or the endpoint went.
            return Err(match self.store().get_webhook(app, id).await? {
                Some(_) => Error::SecretVersionConflict,
                None => Error::NotFound(Entity::Webhook),
            });
        }
        Ok(WebhookWithSecret {
            endpoint,
            secret: secret_text(bytes.as_slice()),
        })
    }

    /// An endpoint's delivery log, newest event first.
    pub async fn webhook_deliveries(
        &self,
        app: AppId,
        id: WebhookId,
        status: Option<DeliveryStatus>,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        self.get_webhook(app, id).await?;
        Ok(self
            .store()
            .list_deliveries(app, id, status, limit.clamp(1, 1000))
            .await?)
    }

    /// Sends a delivery again, from its first attempt, with the same `webhook-id`.
    pub async fn replay_webhook_delivery(
        &self,
        app: AppId,
        id: WebhookId,
        event_id: &str,
    ) -> Result<Delivery> {
        let endpoint = self.get_webhook(app, id).await?;
        let now = self.now();
        let event = webhook_event(&endpoint, webhook_action::REPLAYED, now)
            .with_details(json!({ "event_id": event_id }));
        self.store()
            .replay_delivery(app, id, event_id, now, &event)
            .await?
            .ok_or(Error::NotFound(Entity::WebhookDelivery))
    }

    /// Deletes the deliveries settled more than [`DELIVERY_RETENTION_SECONDS`] ago.
    pub async fn prune_webhook_deliveries(&self) -> Result<u64> {
        let before = self.now().plus_seconds(-DELIVERY_RETENTION_SECONDS);
        Ok(self.store().prune_deliveries(before).await?)
    }

    /// Forgets the previous signing secrets (of webhook endpoints and of inbound IdP events)
    /// whose grace has passed: they no longer sign or verify anything, so they need not stay
    /// sealed in the database.
    pub async fn prune_previous_secrets(&self) -> Result<u64> {
        let now = self.now();
        Ok(self.store().clear_expired_previous_secrets(now).await?
            + self
                .store()
                .clear_expired_previous_idp_event_secrets(now)
                .await?)
    }

    /// One run of the delivery job: every endpoint's new events become deliveries, then the
    /// due deliveries are sent (until `budget` has passed, the rest waiting for the next run).
    pub async fn run_webhooks(
        &self,
        sender: &dyn WebhookSender,
        budget: std::time::Duration,
    ) -> Result<WebhookRun> {
        let started = std::time::Instant::now();
        let mut run = WebhookRun::default();
        let endpoints = self.store().all_webhooks().await?;
        for endpoint in &endpoints {
            run.queued += self.scan_for(endpoint).await?;
        }
        let mut by_id: HashMap<WebhookId, WebhookEndpoint> =
            endpoints.into_iter().map(|e| (e.id, e)).collect();
        while started.elapsed() < budget {
            // At most one delivery per endpoint, all sent at once: a slow receiver delays only
            // its own.
            let due = self.store().due_deliveries(self.now(), SEND_BATCH).await?;
            if due.is_empty() {
                break;
            }
            for delivery in &due {
                if !by_id.contains_key(&delivery.endpoint_id) {
                    // Added since the scan: read it now.
                    if let Some(e) = self
                        .store()
                        .get_webhook(delivery.app_id, delivery.endpoint_id)
                        .await?
                    {
                        by_id.insert(e.id, e);
                    }
                }
            }
            let sends = due.iter().filter_map(|delivery| {
                // An endpoint answers only for its own app's deliveries.
                let endpoint = by_id
                    .get(&delivery.endpoint_id)
                    .filter(|e| e.app_id == delivery.app_id)?;
                Some(async move { (delivery, self.attempt(sender, endpoint, delivery).await) })
            });
            let mut progressed = false;
            for (delivery, outcome) in futures_util::future::join_all(sends).await {
                match outcome {
                    Ok(Some(true)) => run.delivered += 1,
                    Ok(Some(false)) => run.failed += 1,
                    Ok(None) => continue,
                    // One delivery's trouble (its secret not opening on this node, a database
                    // error) is logged and left for the next run; the others go on.
                    Err(e) => {
                        tracing::warn!(
                            endpoint = %delivery.endpoint_id,
                            event = %delivery.event_id,
                            error = %e,
                            "a webhook delivery could not be attempted"
                        );
                        continue;
                    }
                }
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        Ok(run)
    }

    /// Turns an endpoint's new events into deliveries; how many it queued.
    async fn scan_for(&self, endpoint: &WebhookEndpoint) -> Result<u64> {
        let mut cursor = endpoint.cursor_seq;
        let mut queued = 0;
        loop {
            let events = self
                .store()
                .scan_events(endpoint.app_id, cursor, SCAN_BATCH)
                .await?;
            let Some(last) = events.last().map(|e| e.seq) else {
                return Ok(queued);
            };
            let now = self.now();
            let deliveries: Vec<Delivery> = events
                .iter()
                .filter(|e| endpoint.selects(&e.action))
                .map(|e| Delivery {
                    endpoint_id: endpoint.id,
                    event_id: e.id.clone(),
                    app_id: endpoint.app_id,
                    seq: e.seq,
                    event_type: e.action.clone(),
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    next_attempt_at: now,
                    last_attempt_at: None,
                    last_status: None,
                    last_error: None,
                    created_at: now,
                    delivered_at: None,
                })
                .collect();
            if !self
                .store()
                .enqueue_deliveries(endpoint.id, cursor, last, &deliveries)
                .await?
            {
                // Another node moved the cursor: it queued these.
                return Ok(queued);
            }
            queued += deliveries.len() as u64;
            cursor = last;
            if (events.len() as i64) < SCAN_BATCH {
                return Ok(queued);
            }
        }
    }

    /// Sends one delivery and records what came of it: `Some(true)` delivered, `Some(false)`
    /// failed (or given up: its event is gone), `None` another node got there first.
    async fn attempt(
        &self,
        sender: &dyn WebhookSender,
        endpoint: &WebhookEndpoint,
        delivery: &Delivery,
    ) -> Result<Option<bool>> {
        let Some(body) = self
            .store()
            .event_body(endpoint.app_id, delivery.seq)
            .await?
        else {
            // Its audit event is gone (retention, a restore): it can never be sent. Give it up
            // with the reason, or it would stay pending, first in its endpoint's queue, for
            // ever.
            let at = self.now();
            let record = AttemptRecord {
                status: DeliveryStatus::Failed,
                attempts: delivery.attempts,
                next_attempt_at: at,
                at,
                http_status: None,
                error: Some(EVENT_GONE.to_owned()),
            };
            tracing::info!(
                target: "alter::webhooks",
                webhook = %endpoint.id,
                event = %delivery.event_id,
                "webhook delivery given up: its audit event is gone"
            );
            let recorded = self
                .store()
                .record_attempt(endpoint.id, &delivery.event_id, delivery.attempts, &record)
                .await?;
            return Ok(recorded.then_some(false));
        };
        let data: Value = serde_json::from_str(&body)
            .map_err(|_| Error::Storage(crate::ports::StoreError::Corrupt("audit body".into())))?;
        // When the event happened, as the event itself says it (RFC 3339).
        let timestamp = data
            .get("at")
            .and_then(Value::as_str)
            .map_or_else(|| self.now().to_rfc3339(), str::to_owned);
        let payload = json!({
            "type": delivery.event_type,
            "timestamp": timestamp,
            "data": data,
        });
        let payload = serde_json::to_vec(&payload)
            .map_err(|_| Error::Storage(crate::ports::StoreError::Corrupt("audit body".into())))?;
        let now = self.now();
        let sent_at = now.unix_seconds();
        let mut signatures = vec![sign(
            &self.open_webhook_secret(
                endpoint,
                endpoint.secret_version,
                &endpoint.sealed_secret,
            )?,
            &delivery.event_id,
            sent_at,
            &payload,
        )];
        if let Some(previous) = endpoint.previous.as_ref().filter(|p| p.until > now) {
            signatures.push(sign(
                &self.open_webhook_secret(endpoint, previous.version, &previous.sealed)?,
                &delivery.event_id,
                sent_at,
                &payload,
            ));
        }
        let headers = [
            ("webhook-id", delivery.event_id.clone()),
            ("webhook-timestamp", sent_at.to_string()),
            ("webhook-signature", signatures.join(" ")),
            ("content-type", "application/json".to_owned()),
            ("user-agent", "Alter-Webhooks/1".to_owned()),
        ];
        let outcome = sender.send(&endpoint.url, &headers, &payload).await;
        let at = self.now();
        let attempts = delivery.attempts + 1;
        let (ok, http_status, error) = match outcome {
            SendOutcome::Answered(status) if (200..300).contains(&status) => {
                (true, Some(i64::from(status)), None)
            }
            SendOutcome::Answered(status) => (
                false,
                Some(i64::from(status)),
                Some(format!("the receiver answered HTTP {status}")),
            ),
            SendOutcome::Failed(why) => (false, None, Some(short_error(&why))),
        };
        let status = if ok {
            DeliveryStatus::Delivered
        } else if attempts >= MAX_ATTEMPTS {
            DeliveryStatus::Failed
        } else {
            DeliveryStatus::Pending
        };
        let random = u32::from_be_bytes(alter_crypto::random_bytes::<4>()?);
        let record = AttemptRecord {
            status,
            attempts,
            next_attempt_at: at.plus_seconds(backoff_seconds(attempts, random)),
            at,
            http_status,
            error,
        };
        if !ok {
            tracing::info!(
                target: "alter::webhooks",
                webhook = %endpoint.id,
                event = %delivery.event_id,
                attempts,
                status = status.as_str(),
                error = record.error.as_deref().unwrap_or_default(),
                "webhook delivery failed"
            );
        }
        let recorded = self
            .store()
            .record_attempt(endpoint.id, &delivery.event_id, delivery.attempts, &record)
            .await?;
        Ok(recorded.then_some(ok))
    }

    fn seal_webhook_secret(
        &self,
        app: AppId,
        id: WebhookId,
        revision: &str,
        bytes: &[u8],
    ) -> Result<Vec<u8>> {
        let (app, record) = (app.to_string(), id.to_string());
        Ok(self.keyring().seal_versioned(
            Binding {
                kind: SECRET_KIND,
                app_id: &app,
                record_id: &record,
            },
            revision,
            bytes,
        )?)
    }

    /// Opens `endpoint`'s secret of `version` (its current or previous one): only at the URL
    /// it was sealed for, when it was sealed bound to one.
    fn open_webhook_secret(
        &self,
        endpoint: &WebhookEndpoint,
        version: i64,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (app, record) = (endpoint.app_id.to_string(), endpoint.id.to_string());
        Ok(self.keyring().open_versioned(
            Binding {
                kind: SECRET_KIND,
                app_id: &app,
                record_id: &record,
            },
            &secret_revision(version, &endpoint.url, endpoint.url_bound_from),
            sealed,
        )?)
    }
}

/// Reads a `whsec_…` secret back into its bytes (for receivers written in Rust, and tests).
pub fn secret_bytes(secret: &SecretString) -> Option<Zeroizing<Vec<u8>>> {
    secret_key(secret.expose_secret())
}

/// The key bytes of a `whsec_…` secret's text.
pub(crate) fn secret_key(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    BASE64
        .decode(text.strip_prefix(SECRET_PREFIX)?)
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The example of the Standard Webhooks reference libraries.
        let key = BASE64
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap_or_default();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter() {
        assert!((3..=5).contains(&backoff_seconds(1, 0)));
        assert_eq!(backoff_seconds(1, 2), 5);
        assert!((5..=10).contains(&backoff_seconds(2, 7)));
        assert!(backoff_seconds(40, u32::MAX) <= BACKOFF_CAP_SECONDS);
        assert!(backoff_seconds(40, 0) >= BACKOFF_CAP_SECONDS / 2);
    }

    #[test]
    fn urls_must_be_https_but_for_loopback_and_hold_no_credentials() {
        assert!(check_url("https://example.com/hook", false).is_ok());
        assert!(check_url("http://127.0.0.1:9/hook", false).is_ok());
        assert!(check_url("http://localhost/hook", false).is_ok());
        assert!(check_url("http://example.com/hook", false).is_err());
        assert!(check_url("http://example.com/hook", true).is_ok());
        assert!(check_url("https://user:pw@example.com/hook", false).is_err());
        assert!(check_url("ftp://example.com/hook", true).is_err());
        assert!(check_url("not a url", false).is_err());
    }

    #[test]
    fn audited_urls_keep_only_scheme_host_and_port() {
        assert_eq!(
            url_origin("https://hooks.slack.com/services/T0/B0/secret?token=x"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            url_origin("http://127.0.0.1:8080/hook/cap"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(url_origin("https://[::1]:9443/x"), "https://[::1]:9443");
        assert_eq!(url_origin("not a url"), "<invalid url>");
    }

    #[test]
    fn event_selection_is_checked() {
        assert!(check_events(&[]).is_err());
        assert!(check_events(&["grant.created".into()]).is_err());
        assert_eq!(
            check_events(&["grant.revoked".into(), "*".into()]).unwrap_or_default(),
            vec!["*".to_owned()]
        );
    }
}
