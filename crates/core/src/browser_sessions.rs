//! Browser sessions: a person signed in to one of the web UIs (the Wallet, the operator portal).
//!
//! The browser holds a random token in a cookie; only its SHA-256 is stored, so a leaked
//! database names no live session, and every node finds the session by hash (nodes keep no
//! state). A session has a kind, so a portal session is never a wallet session; a wallet
//! session is bound to one app and one app user. It ends at its absolute expiry or when signed
//! out (the row is revoked, not deleted, until pruned).
//!
//! Each session also has a CSRF token for its forms, derived from the session token (a keyed
//! hash with the token as key, domain-separated from the stored hash): unguessable without the
//! cookie, the same on every node, and nothing more to store.

use alter_crypto::{ExposeSecret, SecretString};
use async_trait::async_trait;

use serde_json::json;

use crate::audit::{Actor, ActorKind, AuditEvent, Target, action};
use crate::error::{Error, Result};
use crate::identity::{AppUser, SignedInUser, UserStatus};
use crate::ids::{AppId, UserId};
use crate::ports::StoreResult;
use crate::signin::ClaimedSignIn;
use crate::time::Timestamp;
use crate::vault::Vault;

/// Prefix of browser session tokens.
const TOKEN_PREFIX: &str = "alter_bs_";
/// Domain separation of the CSRF token from the stored token hash.
const CSRF_DOMAIN: &str = "alter.browser_session.csrf.v1:";
/// Longest token accepted from a cookie (a minted one is 52 characters).
const MAX_TOKEN_LEN: usize = 128;
/// Shortest and longest session lifetime.
const TTL_RANGE: std::ops::RangeInclusive<i64> = 60..=30 * 24 * 3600;

/// Which UI a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserSessionKind {
    /// An end user's Wallet, bound to one app.
    Wallet,
    /// The operator portal.
    Portal,
}

impl BrowserSessionKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            BrowserSessionKind::Wallet => "wallet",
            BrowserSessionKind::Portal => "portal",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<BrowserSessionKind> {
        match text {
            "wallet" => Some(BrowserSessionKind::Wallet),
            "portal" => Some(BrowserSessionKind::Portal),
            _ => None,
        }
    }
}

/// A browser session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    /// SHA-256 of the cookie's token.
    pub token_hash: [u8; 32],
    /// The UI.
    pub kind: BrowserSessionKind,
    /// The app (a wallet session's; a portal session may name none).
    pub app_id: Option<AppId>,
    /// Who: the app user id (wallet), an operator id or `admin` (portal).
    pub subject: String,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When it ends, whatever happens.
    pub expires_at: Timestamp,
    /// When it was signed out.
    pub revoked_at: Option<Timestamp>,
}

impl BrowserSession {
    /// Whether it still signs its browser in at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// A session just opened: the token for the cookie (shown once) and the row.
#[derive(Debug)]
pub struct OpenedBrowserSession {
    /// The cookie's value.
    pub token: SecretString,
    /// The session.
    pub session: BrowserSession,
}

/// Storage of browser sessions.
#[async_trait]
pub trait BrowserSessionStore: Send + Sync {
    /// Records a new session.
    async fn insert_browser_session(&self, session: &BrowserSession) -> StoreResult<()>;
    /// The session whose token hashes to `token_hash`, live or not.
    async fn find_browser_session(
        &self,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<BrowserSession>>;
    /// Marks it signed out; false if it was already.
    async fn revoke_browser_session(
        &self,
        token_hash: &[u8; 32],
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Deletes sessions that expired before `before`.
    async fn prune_browser_sessions(&self, before: Timestamp) -> StoreResult<u64>;
}

/// The CSRF token of the session whose cookie holds `token` (lowercase hex).
pub fn csrf_token(token: &str) -> String {
    hex::encode(alter_crypto::keys::token_hash(&format!(
        "{CSRF_DOMAIN}{token}"
    )))
}

/// Whether `presented` is the CSRF token of the session `token`, compared in constant time.
pub fn csrf_matches(token: &str, presented: &str) -> bool {
    alter_crypto::ct_eq(csrf_token(token).as_bytes(), presented.as_bytes())
}

impl Vault {
    /// Opens a session of `kind` for `subject` (in `app`, for a wallet session), ending
    /// `ttl_seconds` from now (1 minute to 30 days).
    pub async fn open_browser_session(
        &self,
        kind: BrowserSessionKind,
        app_id: Option<AppId>,
        subject: &str,
        ttl_seconds: i64,
    ) -> Result<OpenedBrowserSession> {
        if kind == BrowserSessionKind::Wallet && app_id.is_none() {
            return Err(Error::Invalid("a wallet session belongs to an app".into()));
        }
        crate::validate::bounded_text("subject", subject, 256)?;
        crate::validate::int_in_range(
            "ttl_seconds",
            ttl_seconds,
            *TTL_RANGE.start(),
            *TTL_RANGE.end(),
        )?;
        let token = alter_crypto::keys::mint_token(TOKEN_PREFIX)?;
        let now = self.now();
        let session = BrowserSession {
            token_hash: alter_crypto::keys::token_hash(token.expose_secret()),
            kind,
            app_id,
            subject: subject.to_owned(),
            created_at: now,
            expires_at: now.plus_seconds(ttl_seconds),
            revoked_at: None,
        };
        self.store().insert_browser_session(&session).await?;
        Ok(OpenedBrowserSession { token, session })
    }

    /// The live session of `kind` the cookie value `token` names; `None` for anything else
    /// (unknown, expired, signed out, another kind), all alike.
    pub async fn browser_session(
        &self,
        kind: BrowserSessionKind,
        token: &str,
    ) -> Result<Option<BrowserSession>> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Ok(None);
        }
        let found = self
            .store()
            .find_browser_session(&alter_crypto::keys::token_hash(token))
            .await?;
        Ok(found.filter(|s| s.kind == kind && s.is_live(self.now())))
    }

    /// Signs the session `token` out (of `kind`); false when there was no live one.
    pub async fn close_browser_session(
        &self,
        kind: BrowserSessionKind,
        token: &str,
    ) -> Result<bool> {
        let Some(session) = self.browser_session(kind, token).await? else {
            return Ok(false);
        };
        Ok(self
            .store()
            .revoke_browser_session(&session.token_hash, self.now())
            .await?)
    }

    /// The signed-in end user of a live wallet session in `app_id`: the user must still exist
    /// and be active (a suspended user's session signs nothing in); groups count as far as a
    /// recent token vouched for them. `None` when the session is not this app's.
    pub async fn wallet_user(
        &self,
        session: &BrowserSession,
        app_id: AppId,
    ) -> Result<Option<SignedInUser>> {
        if session.kind != BrowserSessionKind::Wallet || session.app_id != Some(app_id) {
            return Ok(None);
        }
        let Some(user_id) = UserId::parse(&session.subject) else {
            return Ok(None);
        };
        let Some(user) = self.store().get_user(app_id, user_id).await? else {
            return Ok(None);
        };
        if user.status != UserStatus::Active {
            return Ok(None);
        }
        let groups = user
            .recent_groups(self.now(), self.settings().group_membership_max_age_seconds)
            .to_vec();
        Ok(Some(SignedInUser { user, groups }))
    }

    /// Finishes a Wallet sign-in: the claimed sign-in session's ID token (verified by
    /// [`Vault::complete_auth_session`]) is taken here, once, instead of by a poll (`collected`,
    /// erased), and a wallet session for `user` opens.
    pub async fn open_wallet_session(
        &self,
        claimed: &ClaimedSignIn,
        user: &AppUser,
        ttl_seconds: i64,
    ) -> Result<OpenedBrowserSession> {
        let app_id = claimed.session.app_id;
        let now = self.now();
        let event = AuditEvent::allow(
            app_id,
            now,
            action::USER_TOKEN_COLLECTED,
            Actor {
                app_user_id: Some(user.id.to_string()),
                ..Actor::of_kind(ActorKind::User)
            },
            Target {
                kind: "user".into(),
                id: user.id.to_string(),
            },
        )
        .with_details(json!({
            "auth_session_id": claimed.session.id.to_string(),
            "collected_by": "wallet",
        }));
        if !self
            .store()
            .collect_auth_session(claimed.session.id, now, &event)
            .await?
        {
            return Err(Error::Conflict("the sign-in was already used".into()));
        }
        self.open_browser_session(
            BrowserSessionKind::Wallet,
            Some(app_id),
            &user.id.to_string(),
            ttl_seconds,
        )
        .await
    }

    /// Forgets sessions that ended over a day ago.
    pub async fn prune_browser_sessions(&self) -> Result<u64> {
        let before = self.now().plus_seconds(-24 * 3600);
        Ok(self.store().prune_browser_sessions(before).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_token_is_bound_to_its_session_and_not_the_stored_hash() {
        let a = csrf_token("alter_bs_one");
        assert_eq!(a.len(), 64);
        assert!(csrf_matches("alter_bs_one", &a));
        assert!(!csrf_matches("alter_bs_two", &a));
        assert!(!csrf_matches("alter_bs_one", ""));
        assert!(!csrf_matches("alter_bs_one", &a[..63]));
        assert_ne!(
            a,
            hex::encode(alter_crypto::keys::token_hash("alter_bs_one"))
        );
    }

    #[test]
    fn kinds_round_trip() {
        for kind in [BrowserSessionKind::Wallet, BrowserSessionKind::Portal] {
            assert_eq!(BrowserSessionKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(BrowserSessionKind::parse("admin"), None);
    }
}
