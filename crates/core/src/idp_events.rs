//! Inbound identity-provider lifecycle events (docs/idp-events.md): the IdP tells the vault at
//! once that a user was deactivated or reactivated, or left or joined a group, instead of the
//! vault learning it from the user's next token.
//!
//! Deliveries are Standard Webhooks: `webhook-id`, `webhook-timestamp` (unix seconds, within
//! five minutes of now) and `webhook-signature` (space-separated `v1,<base64 HMAC-SHA256>` over
//! `{id}.{timestamp}.{body}` with the app's secret; any one may match). The secret is generated
//! by the vault, shown once, sealed at rest and rotatable (the previous one stays valid for a
//! day, or the grace the rotation asks, and can be ended at once). A delivery is applied once
//! per `webhook-id`; a replay is answered as a duplicate.
//!
//! Every change is dated by the event's time, so events delivered out of order, and ID tokens
//! issued before a change, cannot undo it: a token issued at or before a membership change does
//! not replace the stored groups ([`crate::identity::AppUser::membership_floor`]), and a status
//! change older than the stored one is ignored.

use alter_crypto::Binding;
use alter_crypto::{ExposeSecret, SecretString, Zeroizing};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;

use crate::audit::{Actor, AuditEvent, Target, action};
use crate::error::{Entity, Error, Result};
use crate::grants::{Grant, GrantStatus, Principal};
use crate::identity::{AppUser, IdentityProvider, UserStatus};
use crate::ids::{AppId, GrantId, UserId};
use crate::ports::{StoreError, StoreResult};
use crate::time::Timestamp;
use crate::vault::Vault;

/// How far a delivery's `webhook-timestamp` (and an event's `timestamp`) may be from now.
pub const TOLERANCE_SECONDS: i64 = 300;
/// How long a receipt (the dedupe record of an applied `webhook-id`) is kept: twice the
/// tolerance, plus a margin.
///
/// Why a receipt may go then: a replay is the same `webhook-id`, `webhook-timestamp` and body
/// under the same signature, which covers all three, so its timestamp `ts` cannot change.
/// [`verify_delivery`] accepted it at `v` only if `ts <= v + TOLERANCE`, and the receipt was
/// written at `r >= v`; a replay verifies at `n` only if `n <= ts + TOLERANCE`, hence only if
/// `n <= r + 2 * TOLERANCE`. Past that every replay is refused as stale before the receipt is
/// read, so the receipt dedupes nothing. The margin covers clocks of nodes apart (`r` is one
/// node's clock, `n` another's) and a sender's own retries, which are re-signed with a fresh
/// timestamp and so are deduplicated only by the receipt: for two days a retry is still a
/// duplicate; after that it is applied again, dated by its own `timestamp` (restoring events
/// must carry one, so an old one loses to anything newer).
pub const RECEIPT_RETENTION_SECONDS: i64 = 2 * TOLERANCE_SECONDS + RECEIPT_MARGIN_SECONDS;
/// The margin of [`RECEIPT_RETENTION_SECONDS`].
const RECEIPT_MARGIN_SECONDS: i64 = 2 * 24 * 3600;
/// How long a rotated-out secret still verifies deliveries, unless the operator says.
pub const PREVIOUS_SECRET_GRACE_SECONDS: i64 = 24 * 3600;
/// The longest grace a rotation may give the previous secret.
pub const MAX_PREVIOUS_SECRET_GRACE_SECONDS: i64 = 7 * 24 * 3600;
/// Largest body accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Most signatures read from one `webhook-signature` header.
const MAX_SIGNATURES: usize = 8;
/// The kind bound into a sealed event secret.
pub(crate) const SECRET_KIND: &str = "idp_events.secret";
/// Why grants and delegations are revoked on a deactivation.
const DEACTIVATED_REASON: &str = "idp: user deactivated";
/// Why delegations are revoked on a group removal.
const REMOVED_REASON: &str = "idp: removed from group";

/// The app's event secret, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct IdpEventSecret {
    /// The app.
    pub app_id: AppId,
    /// Starts at 1; every rotation adds one (binds the sealed value).
    pub version: i64,
    /// The secret, sealed to the app and `version`.
    pub sealed_secret: Vec<u8>,
    /// The previous secret, sealed to the app and `version - 1`, while it is still accepted.
    pub previous_sealed: Option<Vec<u8>>,
    /// Until when the previous secret verifies deliveries.
    pub previous_until: Option<Timestamp>,
    /// First configured.
    pub created_at: Timestamp,
    /// Last rotated.
    pub rotated_at: Timestamp,
}

impl std::fmt::Debug for IdpEventSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpEventSecret")
            .field("app_id", &self.app_id)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A secret just generated: shown once.
#[derive(Debug)]
pub struct NewIdpEventSecret {
    /// `whsec_` and the base64 of 32 random bytes.
    pub secret: SecretString,
    /// Its version.
    pub version: i64,
    /// Until when the previous secret still verifies deliveries (after a rotation).
    pub previous_valid_until: Option<Timestamp>,
}

/// How an operator rotates the event secret.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecretRotation {
    /// How long the previous secret keeps verifying deliveries (default
    /// [`PREVIOUS_SECRET_GRACE_SECONDS`]; 0 ends it at once).
    pub grace_seconds: Option<i64>,
    /// The version the operator last saw (0: none yet); refused with
    /// [`Error::SecretVersionConflict`] if it is no longer the current one.
    pub expected_version: Option<i64>,
}

/// The event secret's state, without the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdpEventSecretState {
    /// The current version.
    pub version: i64,
    /// Until when the previous secret still verifies deliveries, if it does.
    pub previous_valid_until: Option<Timestamp>,
}

/// One inbound delivery, as received.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// `webhook-id`.
    pub id: &'a str,
    /// `webhook-timestamp`.
    pub timestamp: &'a str,
    /// `webhook-signature`.
    pub signature: &'a str,
    /// The raw body.
    pub body: &'a [u8],
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// Applied now.
    Applied,
    /// Valid, but older than what the vault already knows (or about no one): nothing changed.
    Ignored,
    /// This `webhook-id` was applied before: nothing changed.
    Duplicate,
}

impl Receipt {
    /// `applied`, `ignored` or `duplicate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Receipt::Applied => "applied",
            Receipt::Ignored => "ignored",
            Receipt::Duplicate => "duplicate",
        }
    }
}

/// The body of an event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    #[serde(rename = "type")]
    kind: String,
    /// When it happened at the IdP (RFC 3339); the delivery's timestamp if absent.
    #[serde(default)]
    timestamp: Option<String>,
    data: EventData,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventData {
    subject: String,
    #[serde(default)]
    group: Option<String>,
}

/// What an event says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Deactivated {
        subject: String,
    },
    Reactivated {
        subject: String,
    },
    Membership {
        subject: String,
        group: String,
        member: bool,
    },
}

impl Event {
    fn parse(body: &[u8]) -> Result<(Event, Option<String>)> {
        let body: EventBody =
            serde_json::from_slice(body).map_err(|e| Error::Invalid(format!("event body: {e}")))?;
        let subject = body.data.subject;
        if subject.is_empty() || subject.len() > 1024 {
            return Err(Error::Invalid("data.subject: 1 to 1024 characters".into()));
        }
        let group = |group: Option<String>| match group {
            Some(g) if !g.is_empty() && g.len() <= 1024 => Ok(g),
            _ => Err(Error::Invalid(
                "data.group: 1 to 1024 characters, required for group events".into(),
            )),
        };
        let no_group = |group: &Option<String>| {
            if group.is_some() {
                Err(Error::Invalid("data.group belongs to group events".into()))
            } else {
                Ok(())
            }
        };
        let event = match body.kind.as_str() {
            "user.deactivated" => {
                no_group(&body.data.group)?;
                Event::Deactivated { subject }
            }
            "user.reactivated" => {
                no_group(&body.data.group)?;
                Event::Reactivated { subject }
            }
            "group.member_removed" => Event::Membership {
                subject,
                group: group(body.data.group)?,
                member: false,
            },
            "group.member_added" => Event::Membership {
                subject,
                group: group(body.data.group)?,
                member: true,
            },
            other => {
                return Err(Error::Invalid(format!(
                    "type {other:?}: use user.deactivated, user.reactivated, group.member_removed or group.member_added"
                )));
            }
        };
        Ok((event, body.timestamp))
    }

    fn kind(&self) -> &'static str {
        match self {
            Event::Deactivated { .. } => "user.deactivated",
            Event::Reactivated { .. } => "user.reactivated",
            Event::Membership { member: false, .. } => "group.member_removed",
            Event::Membership { member: true, .. } => "group.member_added",
        }
    }

    fn subject(&self) -> &str {
        match self {
            Event::Deactivated { subject }
            | Event::Reactivated { subject }
            | Event::Membership { subject, .. } => subject,
        }
    }
}

/// Storage of event secrets, receipts and the changes events make.
#[async_trait]
pub trait IdpEventStore: Send + Sync {
    /// The app's event secret.
    async fn get_idp_event_secret(&self, app: AppId) -> StoreResult<Option<IdpEventSecret>>;
    /// Stores the app's event secret, with its audit event, if the stored one is still at
    /// `expected_version` (`None`: there is none yet); false, with nothing changed, otherwise.
    async fn put_idp_event_secret(
        &self,
        secret: &IdpEventSecret,
        expected_version: Option<i64>,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Forgets the previous secret, with the audit event, if the current one is still at
    /// `version` and a previous one is kept; false otherwise.
    async fn end_previous_idp_event_secret(
        &self,
        app: AppId,
        version: i64,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Forgets every previous secret whose grace ended at or before `now`; how many.
    async fn clear_expired_previous_idp_event_secrets(&self, now: Timestamp) -> StoreResult<u64>;
    /// Whether a delivery of this `webhook-id` was applied.
    async fn idp_event_received(&self, app: AppId, webhook_id: &str) -> StoreResult<bool>;
    /// Records a delivery as applied, with its audit event; false if it was already.
    async fn record_idp_event(
        &self,
        app: AppId,
        webhook_id: &str,
        event_type: &str,
        at: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Sets the user's status as of `as_of` unless a newer status change is stored (false
    /// then); when suspending, ends the user's wallet sessions. Writes `event` if it applied,
    /// even if the status was that already (a deactivation of a suspended user still revokes
    /// what they hold).
    async fn set_user_status(
        &self,
        app: AppId,
        user: UserId,
        status: UserStatus,
        as_of: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Adds or removes `group` from the user's groups as of `as_of` (raising the membership
    /// floor to it) unless a newer membership change is stored. Writes `event` if it applied.
    async fn change_membership(
        &self,
        app: AppId,
        user: UserId,
        group: &str,
        member: bool,
        as_of: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// The active grants the user owns (as a user principal) and the active delegations they
    /// consented to.
    async fn grants_of_user(&self, app: AppId, user: UserId) -> StoreResult<Vec<Grant>>;
    /// Deletes the receipts written before `before`; how many.
    async fn prune_idp_event_receipts(&self, before: Timestamp) -> StoreResult<u64>;
}

/// The audit event of a change to the app's event secret.
fn secret_event(app: AppId, name: &str, at: Timestamp) -> AuditEvent {
    AuditEvent::allow(
        app,
        at,
        name,
        Actor::operator(),
        Target {
            kind: "idp_event_secret".into(),
            id: app.to_string(),
        },
    )
}

fn secret_binding(app: &str) -> Binding<'_> {
    Binding {
        kind: SECRET_KIND,
        app_id: app,
        record_id: "idp_events",
    }
}

/// `v1,<base64>` signature entries of a `webhook-signature` header.
fn signatures(header: &str) -> impl Iterator<Item = Vec<u8>> + '_ {
    header
        .split(' ')
        .filter(|s| !s.is_empty())
        .take(MAX_SIGNATURES)
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
}

/// Whether `delivery` is signed with `secret` (raw key bytes) and its timestamp is within the
/// tolerance of `now`.
pub fn verify_delivery(secret: &[u8], delivery: &Delivery<'_>, now: Timestamp) -> bool {
    let id_ok = !delivery.id.is_empty()
        && delivery.id.len() <= 256
        && delivery.id.bytes().all(|b| b.is_ascii_graphic());
    let Ok(seconds) = delivery.timestamp.parse::<i64>() else {
        return false;
    };
    if !id_ok
        || delivery.timestamp.len() > 20
        || now
            .unix_seconds()
            .checked_sub(seconds)
            .is_none_or(|d| d.unsigned_abs() > TOLERANCE_SECONDS.unsigned_abs())
    {
        return false;
    }
    let key = alter_crypto::MacKey::from_secret(secret);
    let parts: [&[u8]; 5] = [
        delivery.id.as_bytes(),
        b".",
        delivery.timestamp.as_bytes(),
        b".",
        delivery.body,
    ];
    let mut matched = false;
    for signature in signatures(delivery.signature) {
        // Every entry is checked, whatever matched before: timing says nothing of which.
        matched |= key.verify(&parts, &signature);
    }
    matched
}

/// The raw key of a `whsec_` secret (opened bytes).
fn secret_key(secret: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    crate::webhooks::secret_key(std::str::from_utf8(secret).ok()?)
}

impl Vault {
    /// Generates the app's inbound event secret, or rotates it (operator): shown once; the
    /// previous one keeps verifying deliveries for the grace asked (a day by default, none
    /// with 0). Two rotations from the same version cannot both win: the loser changes
    /// nothing and gets [`Error::SecretVersionConflict`].
    pub async fn rotate_idp_event_secret(
        &self,
        app_id: AppId,
        rotation: SecretRotation,
    ) -> Result<NewIdpEventSecret> {
        let grace = rotation
            .grace_seconds
            .unwrap_or(PREVIOUS_SECRET_GRACE_SECONDS);
        if !(0..=MAX_PREVIOUS_SECRET_GRACE_SECONDS).contains(&grace) {
            return Err(Error::Invalid(format!(
                "grace_seconds: between 0 and {MAX_PREVIOUS_SECRET_GRACE_SECONDS}"
            )));
        }
        self.get_app(app_id).await?;
        let now = self.now();
        let existing = self.store().get_idp_event_secret(app_id).await?;
        let current_version = existing.as_ref().map(|e| e.version);
        if rotation
            .expected_version
            .is_some_and(|v| v != current_version.unwrap_or(0))
        {
            return Err(Error::SecretVersionConflict);
        }
        let bytes = alter_crypto::random_bytes::<32>()?;
        let secret = crate::webhooks::secret_text(&bytes);
        let version = current_version.map_or(1, |v| v + 1);
        let app = app_id.to_string();
        let sealed_secret = self.keyring().seal_versioned(
            secret_binding(&app),
            &version.to_string(),
            secret.expose_secret().as_bytes(),
        )?;
        // The previous secret is the one being replaced; with no grace it is dropped now.
        let previous = existing.as_ref().filter(|_| grace > 0);
        let previous_until = previous.map(|_| now.plus_seconds(grace));
        let stored = IdpEventSecret {
            app_id,
            version,
            sealed_secret,
            previous_sealed: previous.map(|e| e.sealed_secret.clone()),
            previous_until,
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            rotated_at: now,
        };
        let event = secret_event(app_id, action::IDP_EVENT_SECRET_ROTATED, now)
            .with_details(json!({ "version": version, "grace_seconds": grace }));
        if !self
            .store()
            .put_idp_event_secret(&stored, current_version, &event)
            .await?
        {
            return Err(Error::SecretVersionConflict);
        }
        Ok(NewIdpEventSecret {
            secret,
            version,
            previous_valid_until: previous_until,
        })
    }

    /// Ends the previous event secret now (operator): from here on only the current one
    /// verifies deliveries. Audited when there was one to end.
    pub async fn end_previous_idp_event_secret(
        &self,
        app_id: AppId,
    ) -> Result<IdpEventSecretState> {
        self.get_app(app_id).await?;
        let stored = self
            .store()
            .get_idp_event_secret(app_id)
            .await?
            .ok_or_else(|| Error::Invalid("this app has no IdP event secret".into()))?;
        let state = IdpEventSecretState {
            version: stored.version,
            previous_valid_until: None,
        };
        if stored.previous_sealed.is_none() {
            return Ok(state);
        }
        let event = secret_event(app_id, action::IDP_EVENT_SECRET_PREVIOUS_ENDED, self.now())
            .with_details(json!({ "version": stored.version }));
        if !self
            .store()
            .end_previous_idp_event_secret(app_id, stored.version, &event)
            .await?
        {
            // Rotated meanwhile: the previous secret is now another one; say so.
            return Err(Error::SecretVersionConflict);
        }
        Ok(state)
    }

    /// Deletes the receipts older than [`RECEIPT_RETENTION_SECONDS`], whose replays are refused
    /// as stale anyway.
    pub async fn prune_idp_event_receipts(&self) -> Result<u64> {
        let before = self.now().plus_seconds(-RECEIPT_RETENTION_SECONDS);
        Ok(self.store().prune_idp_event_receipts(before).await?)
    }

    /// Whether `delivery` verifies with the app's current secret, or its previous one while
    /// still accepted. An app without a secret (or unknown) verifies nothing.
    async fn delivery_verifies(&self, app_id: AppId, delivery: &Delivery<'_>) -> Result<bool> {
        let Some(stored) = self.store().get_idp_event_secret(app_id).await? else {
            return Ok(false);
        };
        let now = self.now();
        let app = app_id.to_string();
        let mut candidates = vec![(stored.version, &stored.sealed_secret)];
        if let (Some(previous), Some(until)) = (&stored.previous_sealed, stored.previous_until)
            && now < until
        {
            candidates.push((stored.version - 1, previous));
        }
        let mut verified = false;
        for (version, sealed) in candidates {
            let secret = self.keyring().open_versioned(
                secret_binding(&app),
                &version.to_string(),
                sealed,
            )?;
            if let Some(key) = secret_key(&secret) {
                verified |= verify_delivery(&key, delivery, now);
            }
        }
        Ok(verified)
    }

    /// Receives one inbound IdP event for the app named `app` (unauthenticated but for the
    /// signature). An unknown app, an app without a secret, and a bad, missing or stale
    /// signature are all [`Error::IdpEventUnauthorized`].
    pub async fn receive_idp_event(&self, app: &str, delivery: Delivery<'_>) -> Result<Receipt> {
        let Some(app_id) = AppId::parse(app) else {
            return Err(Error::IdpEventUnauthorized);
        };
        if !self.delivery_verifies(app_id, &delivery).await? {
            tracing::info!(app = %app_id, "idp event refused: signature");
            return Err(Error::IdpEventUnauthorized);
        }
        if self.store().idp_event_received(app_id, delivery.id).await? {
            return Ok(Receipt::Duplicate);
        }
        let (event, timestamp) = Event::parse(delivery.body)?;
        let now = self.now();
        // An event that gives back (access, membership) must say when it happened: a sender
        // re-signs every retry with a new `webhook-timestamp`, so a retry of an old grant-back
        // would otherwise look newer than the removal it followed.
        let restores = matches!(
            event,
            Event::Reactivated { .. } | Event::Membership { member: true, .. }
        );
        let at = match timestamp {
            Some(text) => Timestamp::parse_rfc3339(&text)
                .ok_or_else(|| Error::Invalid("timestamp: RFC 3339".into()))?,
            None if restores => {
                return Err(Error::Invalid(
                    "timestamp: required for user.reactivated and group.member_added".into(),
                ));
            }
            // Verified above: an integer within the tolerance.
            None => Timestamp::from_unix_seconds(delivery.timestamp.parse().unwrap_or_default()),
        };
        if at.unix_seconds() > now.unix_seconds() + TOLERANCE_SECONDS {
            return Err(Error::Invalid("timestamp: in the future".into()));
        }
        let idp = self
            .store()
            .get_idp(app_id)
            .await?
            .ok_or(Error::NoIdentityProvider)?;
        let applied = self.apply_idp_event(&idp, &event, at, delivery.id).await?;
        let received = AuditEvent::allow(
            app_id,
            now,
            action::IDP_EVENT_RECEIVED,
            Actor::system(),
            Target {
                kind: "idp_event".into(),
                id: delivery.id.to_owned(),
            },
        )
        .with_details(json!({
            "type": event.kind(),
            "event_time": at.to_rfc3339(),
            "outcome": if applied { "applied" } else { "ignored" },
        }));
        if !self
            .store()
            .record_idp_event(app_id, delivery.id, event.kind(), now, &received)
            .await?
        {
            return Ok(Receipt::Duplicate);
        }
        Ok(if applied {
            Receipt::Applied
        } else {
            Receipt::Ignored
        })
    }

    async fn apply_idp_event(
        &self,
        idp: &IdentityProvider,
        event: &Event,
        at: Timestamp,
        webhook_id: &str,
    ) -> Result<bool> {
        let app_id = idp.app_id;
        let existing = self
            .store()
            .find_user(app_id, idp.id, event.subject())
            .await?;
        let user = match (existing, event) {
            (Some(user), _) => user,
            // Nothing to restore for someone never seen.
            (None, Event::Reactivated { .. }) => return Ok(false),
            // Recorded now, so the state the event sets holds when they first sign in.
            (None, _) => self.record_user_from_event(idp, event.subject()).await?,
        };
        let event_of = |name: &str, details: serde_json::Value| {
            let mut details = details;
            details["webhook_id"] = json!(webhook_id);
            details["event_time"] = json!(at.to_rfc3339());
            AuditEvent::allow(
                app_id,
                self.now(),
                name,
                Actor::system(),
                Target {
                    kind: "user".into(),
                    id: user.id.to_string(),
                },
            )
            .with_details(details)
        };
        match event {
            Event::Deactivated { .. } => {
                let changed = self
                    .store()
                    .set_user_status(
                        app_id,
                        user.id,
                        UserStatus::Suspended,
                        at,
                        &event_of(action::USER_DEACTIVATED, json!({})),
                    )
                    .await?;
                if !changed {
                    return Ok(false);
                }
                for grant in self.store().grants_of_user(app_id, user.id).await? {
                    self.revoke_for_idp_event(grant, DEACTIVATED_REASON).await?;
                }
                Ok(true)
            }
            Event::Reactivated { .. } => self
                .store()
                .set_user_status(
                    app_id,
                    user.id,
                    UserStatus::Active,
                    at,
                    &event_of(action::USER_REACTIVATED, json!({})),
                )
                .await
                .map_err(Into::into),
            Event::Membership { group, member, .. } => {
                let name = if *member {
                    action::USER_GROUP_ADDED
                } else {
                    action::USER_GROUP_REMOVED
                };
                let changed = self
                    .store()
                    .change_membership(
                        app_id,
                        user.id,
                        group,
                        *member,
                        at,
                        &event_of(name, json!({ "group": group, "idp_id": idp.id })),
                    )
                    .await?;
                if changed && !*member {
                    self.revoke_group_delegations(idp, user.id, group).await?;
                }
                Ok(changed)
            }
        }
    }

    /// A user the IdP named in an event before they ever signed in.
    async fn record_user_from_event(
        &self,
        idp: &IdentityProvider,
        subject: &str,
    ) -> Result<AppUser> {
        let now = self.now();
        let user = AppUser {
            id: UserId::new(),
            app_id: idp.app_id,
            idp_id: idp.id,
            subject: subject.to_owned(),
            email: None,
            display_name: None,
            groups: Vec::new(),
            groups_as_of: None,
            membership_floor: None,
            status: UserStatus::Active,
            created_at: now,
            last_seen_at: now,
        };
        let event = AuditEvent::allow(
            idp.app_id,
            now,
            action::USER_CREATED,
            Actor::system(),
            Target {
                kind: "user".into(),
                id: user.id.to_string(),
            },
        )
        .with_details(json!({ "idp_id": idp.id, "source": "idp_event" }));
        match self.store().insert_user(&user, &event).await {
            Ok(()) => Ok(user),
            Err(StoreError::Conflict(_)) => self
                .store()
                .find_user(idp.app_id, idp.id, subject)
                .await?
                .ok_or(Error::NotFound(Entity::User)),
            Err(e) => Err(e.into()),
        }
    }

    /// Revokes the delegations `user` made whose chain starts at a grant of `group`.
    async fn revoke_group_delegations(
        &self,
        idp: &IdentityProvider,
        user: UserId,
        group: &str,
    ) -> Result<()> {
        for grant in self.store().grants_of_user(idp.app_id, user).await? {
            if grant.parent_grant_id.is_none() {
                continue;
            }
            let root = self.root_of(&grant).await?;
            let of_group = matches!(
                root.as_ref().map(|r| &r.principal),
                Some(Principal::Group { idp_id, external_group_id })
                    if *idp_id == idp.id && external_group_id == group
            );
            if of_group {
                self.revoke_for_idp_event(grant, REMOVED_REASON).await?;
            }
        }
        Ok(())
    }

    /// The root grant of a delegation chain.
    async fn root_of(&self, grant: &Grant) -> Result<Option<Grant>> {
        let mut current = grant.clone();
        // Chains are short; the bound guards against a corrupt cycle.
        for _ in 0..64 {
            let Some(parent) = current.parent_grant_id else {
                return Ok(Some(current));
            };
            match self.store().get_grant(grant.app_id, parent).await? {
                Some(next) => current = next,
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Revokes a grant (and everything below it) as an operator revocation would.
    async fn revoke_for_idp_event(&self, grant: Grant, reason: &str) -> Result<()> {
        if grant.status != GrantStatus::Active {
            return Ok(());
        }
        let id: GrantId = grant.id;
        match self
            .revoke_grant_row(grant, Some(reason.to_owned()), Actor::system())
            .await
        {
            // Revoked meanwhile (a parent's cascade): what was asked holds.
            Ok(_) | Err(Error::GrantRevoked(_)) => Ok(()),
            Err(e) => {
                tracing::warn!(grant = %id, error = %e, "idp event: revocation failed");
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(key: &[u8], id: &str, ts: &str, body: &[u8]) -> String {
        let tag = alter_crypto::MacKey::from_secret(key).tag(&[
            id.as_bytes(),
            b".",
            ts.as_bytes(),
            b".",
            body,
        ]);
        format!("v1,{}", STANDARD.encode(tag))
    }

    fn delivery<'a>(
        id: &'a str,
        timestamp: &'a str,
        signature: &'a str,
        body: &'a [u8],
    ) -> Delivery<'a> {
        Delivery {
            id,
            timestamp,
            signature,
            body,
        }
    }

    #[test]
    fn signatures_are_checked_with_the_secret_the_time_and_every_byte() {
        let key = [7u8; 32];
        let now = Timestamp::from_unix_seconds(1_700_000_000);
        let ts = "1700000000";
        let body = br#"{"type":"user.deactivated","data":{"subject":"a"}}"#;
        let good = sign(&key, "msg_1", ts, body);
        assert!(verify_delivery(
            &key,
            &delivery("msg_1", ts, &good, body),
            now
        ));
        // Several signatures: any one may match.
        let several = format!("v1,AAAA {good} v2,zzz");
        assert!(verify_delivery(
            &key,
            &delivery("msg_1", ts, &several, body),
            now
        ));
        assert!(!verify_delivery(
            &[8; 32],
            &delivery("msg_1", ts, &good, body),
            now
        ));
        assert!(!verify_delivery(
            &key,
            &delivery("msg_2", ts, &good, body),
            now
        ));
        assert!(!verify_delivery(
            &key,
            &delivery("msg_1", ts, &good, b"{}"),
            now
        ));
        assert!(!verify_delivery(
            &key,
            &delivery("msg_1", ts, "", body),
            now
        ));
        assert!(!verify_delivery(&key, &delivery("", ts, &good, body), now));
        // Stale or future beyond five minutes.
        for shift in [-301, 301] {
            let at = now.plus_seconds(shift);
            assert!(!verify_delivery(
                &key,
                &delivery("msg_1", ts, &good, body),
                at
            ));
        }
        assert!(verify_delivery(
            &key,
            &delivery("msg_1", ts, &good, body),
            now.plus_seconds(300)
        ));
        // The Standard Webhooks test vector.
        let secret = secret_key(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let at = Timestamp::from_unix_seconds(1_614_265_330);
        let vector = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert!(verify_delivery(
            &secret,
            &delivery("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", vector, body),
            at
        ));
    }

    #[test]
    fn bodies_are_strict() {
        let ok = Event::parse(
            br#"{"type":"group.member_removed","data":{"subject":"a","group":"eng"}}"#,
        );
        assert_eq!(
            ok.unwrap().0,
            Event::Membership {
                subject: "a".into(),
                group: "eng".into(),
                member: false
            }
        );
        for bad in [
            &br#"{"type":"group.member_removed","data":{"subject":"a"}}"#[..],
            br#"{"type":"user.deactivated","data":{"subject":"a","group":"eng"}}"#,
            br#"{"type":"user.deleted","data":{"subject":"a"}}"#,
            br#"{"type":"user.deactivated","data":{"subject":""}}"#,
            br#"{"type":"user.deactivated","data":{"subject":"a"},"extra":1}"#,
            br#"{"type":"user.deactivated","data":{"subject":"a","x":1}}"#,
            b"not json",
        ] {
            assert!(
                Event::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
