//! End-user identity: each app may configure one identity provider (IdP) whose JWTs identify
//! its users. A verified token becomes an app user with a stable `app_user_id` distinct from the
//! IdP subject; the groups claim decides group membership. The newest verified membership wins
//! (by the token's `iat`), so replaying an older token cannot roll groups back, and a stored
//! membership is acted on without a token only while it is recent (`Settings`).

use crate::audit::{Actor, AuditEvent, Target, action};
use crate::error::{Entity, Error, Result, ensure};
use crate::ids::{AppId, IdpId, UserId};
use crate::ports::TokenVerifier;
use crate::time::Timestamp;
use crate::validate;
use crate::vault::Vault;

/// Signature algorithms an IdP's tokens may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl JwtAlgorithm {
    /// Parses `RS256`, `ES256` or `EdDSA`.
    pub fn parse(text: &str) -> Option<JwtAlgorithm> {
        match text {
            "RS256" => Some(JwtAlgorithm::RS256),
            "ES256" => Some(JwtAlgorithm::ES256),
            "EdDSA" => Some(JwtAlgorithm::EdDSA),
            _ => None,
        }
    }

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::EdDSA => "EdDSA",
        }
    }
}

/// Where an IdP's signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JwksSource {
    /// Fetched from this URL (https, or http to loopback), cached, refreshed on an unknown
    /// `kid`.
    Url(String),
    /// A JWKS document given by the operator (inline or from a file).
    Inline(String),
}

/// Which claims carry what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClaimMapping {
    /// The stable user id (default `sub`).
    pub subject: String,
    /// Group ids: an array of strings or one string (none by default).
    pub groups: Option<String>,
    /// E-mail address (default `email`).
    pub email: Option<String>,
    /// Display name (default `name`).
    pub name: Option<String>,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            subject: "sub".into(),
            groups: None,
            email: Some("email".into()),
            name: Some("name".into()),
        }
    }
}

/// An app's identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityProvider {
    /// Id (the `idp_id` group principals name).
    pub id: IdpId,
    /// The app.
    pub app_id: AppId,
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted `aud` values (any one must match).
    pub audiences: Vec<String>,
    /// Signing keys.
    pub jwks: JwksSource,
    /// Accepted algorithms.
    pub algorithms: Vec<JwtAlgorithm>,
    /// Claim names.
    pub claims: ClaimMapping,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_seconds: i64,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// What a verified token says about its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The subject claim.
    pub subject: String,
    /// Group ids from the groups claim (empty without one).
    pub groups: Vec<String>,
    /// E-mail, if mapped and present.
    pub email: Option<String>,
    /// Display name, if mapped and present.
    pub name: Option<String>,
    /// The token's `exp`.
    pub expires_at: Timestamp,
    /// The token's `iat`, if it has one: how recent the group membership it names is.
    pub issued_at: Option<Timestamp>,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Bad signature, issuer, audience, expiry, algorithm, malformed token or claims. The
    /// reason is for logs; clients see one `jwt_validation_error`.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The signing keys could not be fetched (a transient failure, not the user's fault).
    #[error("identity provider keys unavailable: {0}")]
    KeysUnavailable(String),
}

/// Whether an app user may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    /// May act.
    Active,
    /// Locked out by the operator or the IdP.
    Suspended,
}

impl UserStatus {
    /// `active` or `suspended`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Suspended => "suspended",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<UserStatus> {
        match text {
            "active" => Some(UserStatus::Active),
            "suspended" => Some(UserStatus::Suspended),
            _ => None,
        }
    }
}

/// An end user of an app, known through its IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppUser {
    /// The canonical `app_user_id`, distinct from the IdP subject.
    pub id: UserId,
    /// The app.
    pub app_id: AppId,
    /// The IdP that vouches for the user.
    pub idp_id: IdpId,
    /// The IdP subject.
    pub subject: String,
    /// E-mail from the last token.
    pub email: Option<String>,
    /// Name from the last token.
    pub display_name: Option<String>,
    /// Group ids from the newest token seen (by `iat`): what group delegations are checked
    /// against when no token is at hand, while recent enough ([`AppUser::recent_groups`]).
    pub groups: Vec<String>,
    /// When the IdP vouched for `groups`: the `iat` of the token they came from. `None` when
    /// undated (a token without `iat`, or a user recorded before this was kept).
    pub groups_as_of: Option<Timestamp>,
    /// The time of the newest membership change an IdP event made (`crate::idp_events`): a
    /// token issued at or before it cannot replace `groups`, so a replayed older token does
    /// not undo a removal.
    pub membership_floor: Option<Timestamp>,
    /// Active or suspended.
    pub status: UserStatus,
    /// First seen.
    pub created_at: Timestamp,
    /// Last token seen.
    pub last_seen_at: Timestamp,
}

impl AppUser {
    /// The stored groups if a token issued at most `max_age_seconds` before `now` vouched for
    /// them; none otherwise. Without a fresh token, older (or undated) membership grants
    /// nothing: the IdP may have removed the user from a group since.
    pub fn recent_groups(&self, now: Timestamp, max_age_seconds: i64) -> &[String] {
        match self.groups_as_of {
            Some(at) if at.seconds_until(now) <= max_age_seconds => &self.groups,
            _ => &[],
        }
    }
}

/// Whether a token issued at `token` names group membership at least as new as the stored one
/// (vouched for at `stored`). Undated membership is the oldest. On a tie (two undated, or two
/// tokens of the same second: `iat` has a resolution of a second) the token seen now wins, so
/// a change the IdP made within a second is not lost.
/// A token issued at or before `floor` (an IdP event's membership change) never wins.
fn newer_membership(
    token: Option<Timestamp>,
    stored: Option<Timestamp>,
    floor: Option<Timestamp>,
) -> bool {
    if let Some(floor) = floor
        && token.is_none_or(|t| t <= floor)
    {
        return false;
    }
    match (token, stored) {
        (_, None) => true,
        (Some(token), Some(stored)) => token >= stored,
        (None, Some(_)) => false,
    }
}

/// A user who presented a valid token now, with their newest verified group membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedInUser {
    /// The user.
    pub user: AppUser,
    /// Groups of the presented token, or the stored ones if a later token vouched for them.
    pub groups: Vec<String>,
}

/// What an operator configures.
#[derive(Debug, Clone, Default)]
pub struct IdpSettings {
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// JWKS URL (exclusive with `jwks_inline`).
    pub jwks_url: Option<String>,
    /// JWKS document (exclusive with `jwks_url`).
    pub jwks_inline: Option<String>,
    /// Accepted algorithms; all three when empty.
    pub algorithms: Vec<String>,
    /// Subject claim (default `sub`).
    pub subject_claim: Option<String>,
    /// Groups claim (none by default).
    pub groups_claim: Option<String>,
    /// E-mail claim (default `email`).
    pub email_claim: Option<String>,
    /// Name claim (default `name`).
    pub name_claim: Option<String>,
    /// Clock skew tolerance, 0–300 s (default 60).
    pub leeway_seconds: Option<i64>,
}

/// Seconds between writes of a returning user's `last_seen_at` when nothing else changed.
const LAST_SEEN_RESOLUTION_SECONDS: i64 = 300;

impl Vault {
    /// Configures (or replaces) the app's identity provider (operator). Its id survives a
    /// replacement, so group grants naming it stay valid. The issuer (with the subject and
    /// groups claims) is the identity namespace (a subject means one person only under one
    /// issuer and claim), so it changes only while nothing
    /// names a user or group of the current issuer: no user it vouched for, no active group
    /// grant, no approver named in a rule or an agent's approval setting
    /// ([`Error::IdpIssuerInUse`]). Otherwise a new issuer's user whose `sub` equals an old
    /// user's would become that user, with their grants, delegations and approvals.
    pub async fn set_idp(&self, app_id: AppId, settings: IdpSettings) -> Result<IdentityProvider> {
        self.get_app(app_id).await?;
        let now = self.now();
        let existing = self.store().get_idp(app_id).await?;
        // The subject and groups claims are part of the namespace too: a subject read from
        // another claim (one users can edit, say) could equal a stored user's.
        let subject_claim = settings.subject_claim.as_deref().unwrap_or("sub");
        if let Some(current) = &existing
            && (current.issuer != settings.issuer
                || current.claims.subject != subject_claim
                || current.claims.groups.as_deref() != settings.groups_claim.as_deref())
        {
            self.ensure_issuer_unused(current).await?;
        }
        let idp = IdentityProvider {
            id: existing.as_ref().map_or_else(IdpId::new, |e| e.id),
            app_id,
            issuer: validate::bounded_text("issuer", &settings.issuer, 2048)?.to_owned(),
            audiences: validate_audiences(&settings.audiences)?,
            jwks: validate_jwks(self.verifier(), settings.jwks_url, settings.jwks_inline)?,
            algorithms: validate_algorithms(&settings.algorithms)?,
            claims: ClaimMapping {
                subject: claim_name("subject claim", settings.subject_claim)?
                    .unwrap_or_else(|| "sub".into()),
                groups: claim_name("groups claim", settings.groups_claim)?,
                email: claim_name("email claim", settings.email_claim)?.or(Some("email".into())),
                name: claim_name("name claim", settings.name_claim)?.or(Some("name".into())),
            },
            leeway_seconds: validate::int_in_range(
                "leeway_seconds",
                settings.leeway_seconds.unwrap_or(60),
                0,
                300,
            )?,
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            updated_at: now,
        };
        let event = AuditEvent::allow(
            app_id,
            now,
            action::IDP_CONFIGURED,
            Actor::operator(),
            Target {
                kind: "idp".into(),
                id: idp.id.to_string(),
            },
        )
        .with_details(serde_json::json!({
            "issuer": idp.issuer,
            "audiences": idp.audiences,
            "jwks": match &idp.jwks { JwksSource::Url(url) => url.as_str(), JwksSource::Inline(_) => "inline" },
            "algorithms": idp.algorithms,
        }));
        self.store().put_idp(&idp, &event).await?;
        Ok(idp)
    }

    /// Refuses an issuer change while anything names a user or group of `idp`'s issuer.
    async fn ensure_issuer_unused(&self, idp: &IdentityProvider) -> Result<()> {
        if let Some(what) = self.store().idp_references(idp.app_id, idp.id).await? {
            return Err(Error::IdpIssuerInUse(what));
        }
        // Approvers are named by app user id, IdP subject or group id: bare names of this
        // issuer's namespace, whether or not the person has signed in yet.
        let names_approvers = |value: Option<&serde_json::Value>| {
            value
                .and_then(serde_json::Value::as_array)
                .is_some_and(|a| !a.is_empty())
        };
        let rules = self.store().list_rules(idp.app_id).await?;
        if rules
            .iter()
            .any(|r| names_approvers(r.body.get("approvers")))
        {
            return Err(Error::IdpIssuerInUse("approvers"));
        }
        const PAGE: i64 = 500;
        let mut offset = 0;
        loop {
            let (agents, total) = self
                .store()
                .list_agents(idp.app_id, false, PAGE, offset)
                .await?;
            if agents
                .iter()
                .any(|a| a.approval.approvers.as_ref().is_some_and(|n| !n.is_empty()))
            {
                return Err(Error::IdpIssuerInUse("approvers"));
            }
            offset += PAGE;
            if agents.is_empty() || offset >= total {
                return Ok(());
            }
        }
    }

    /// The app's identity provider.
    pub async fn get_idp(&self, app_id: AppId) -> Result<IdentityProvider> {
        self.store()
            .get_idp(app_id)
            .await?
            .ok_or(Error::NotFound(Entity::Idp))
    }

    /// Verifies an end user's JWT against the app's IdP and records the user (created on
    /// first sight with a new `app_user_id`; e-mail, name and groups refreshed).
    pub async fn sign_in(&self, app_id: AppId, token: &str) -> Result<SignedInUser> {
        if token.is_empty() || token.len() > 8192 {
            return Err(Error::InvalidUserToken);
        }
        let idp = self
            .store()
            .get_idp(app_id)
            .await?
            .ok_or(Error::NoIdentityProvider)?;
        let now = self.now();
        let verified = self
            .verifier()
            .verify(&idp, token, now)
            .await
            .map_err(|e| match e {
                TokenError::Invalid(reason) => {
                    tracing::info!(app = %app_id, %reason, "user token refused");
                    Error::InvalidUserToken
                }
                TokenError::KeysUnavailable(reason) => Error::IdentityUnavailable(reason),
            })?;
        let existing = self
            .store()
            .find_user(app_id, idp.id, &verified.subject)
            .await?;
        let user = match existing {
            Some(user) => {
                // An older token than the one the stored groups came from cannot roll them
                // back; the store applies the same rule, so concurrent sign-ins agree.
                let (groups, groups_as_of) = if newer_membership(
                    verified.issued_at,
                    user.groups_as_of,
                    user.membership_floor,
                ) {
                    (verified.groups.clone(), verified.issued_at)
                } else {
                    (user.groups.clone(), user.groups_as_of)
                };
                let changed = user.email != verified.email
                    || user.display_name != verified.name
                    || user.groups != groups
                    || user.groups_as_of != groups_as_of;
                let stale = user.last_seen_at.seconds_until(now) >= LAST_SEEN_RESOLUTION_SECONDS;
                let user = AppUser {
                    email: verified.email.clone(),
                    display_name: verified.name.clone(),
                    groups,
                    groups_as_of,
                    last_seen_at: if changed || stale {
                        now
                    } else {
                        user.last_seen_at
                    },
                    ..user
                };
                if changed || stale {
                    self.store().update_user(&user).await?;
                }
                user
            }
            None => {
                let user = AppUser {
                    id: UserId::new(),
                    app_id,
                    idp_id: idp.id,
                    subject: verified.subject.clone(),
                    email: verified.email.clone(),
                    display_name: verified.name.clone(),
                    groups: verified.groups.clone(),
                    groups_as_of: verified.issued_at,
                    membership_floor: None,
                    status: UserStatus::Active,
                    created_at: now,
                    last_seen_at: now,
                };
                let event = AuditEvent::allow(
                    app_id,
                    now,
                    action::USER_CREATED,
                    Actor::system(),
                    Target {
                        kind: "user".into(),
                        id: user.id.to_string(),
                    },
                )
                .with_details(serde_json::json!({ "idp_id": idp.id }));
                // Two first requests at once: the loser reads the winner's row.
                match self.store().insert_user(&user, &event).await {
                    Ok(()) => user,
                    Err(crate::ports::StoreError::Conflict(_)) => self
                        .store()
                        .find_user(app_id, idp.id, &verified.subject)
                        .await?
                        .ok_or(Error::NotFound(Entity::User))?,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if user.status != UserStatus::Active {
            return Err(Error::UserSuspended);
        }
        Ok(SignedInUser {
            groups: user.groups.clone(),
            user,
        })
    }
}

fn validate_audiences(audiences: &[String]) -> Result<Vec<String>> {
    ensure(!audiences.is_empty() && audiences.len() <= 10, || {
        "audience: give 1 to 10 audiences".into()
    })?;
    audiences
        .iter()
        .map(|a| validate::bounded_text("audience", a, 512).map(str::to_owned))
        .collect()
}

fn validate_jwks(
    verifier: &dyn TokenVerifier,
    url: Option<String>,
    inline: Option<String>,
) -> Result<JwksSource> {
    let source = match (url, inline) {
        (Some(url), None) => {
            JwksSource::Url(validate::bounded_text("jwks_url", &url, 2048)?.to_owned())
        }
        (None, Some(inline)) => JwksSource::Inline(inline),
        _ => {
            return Err(Error::Invalid(
                "give exactly one of jwks_url and jwks (inline)".into(),
            ));
        }
    };
    let field = match source {
        JwksSource::Url(_) => "jwks_url",
        JwksSource::Inline(_) => "jwks",
    };
    verifier
        .check_source(&source)
        .map_err(|why| Error::Invalid(format!("{field}: {why}")))?;
    Ok(source)
}

fn validate_algorithms(names: &[String]) -> Result<Vec<JwtAlgorithm>> {
    if names.is_empty() {
        return Ok(vec![
            JwtAlgorithm::RS256,
            JwtAlgorithm::ES256,
            JwtAlgorithm::EdDSA,
        ]);
    }
    names
        .iter()
        .map(|n| {
            JwtAlgorithm::parse(n).ok_or_else(|| {
                Error::Invalid(format!("algorithm {n:?}: use RS256, ES256 or EdDSA"))
            })
        })
        .collect()
}

fn claim_name(field: &str, name: Option<String>) -> Result<Option<String>> {
    name.map(|n| validate::bounded_text(field, &n, 256).map(str::to_owned))
        .transpose()
}
