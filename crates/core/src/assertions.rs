//! Identity export (protocol part 2 §7.6–7.7): who a call acts for ([`Vault::resolve_identity`])
//! and a short-lived ES256 JWS saying so, for a third party that trusts the vault's published
//! keys ([`Vault::assert_identity`]). One signing key serves the whole vault: generated on first
//! use, its private half sealed in the database so every node signs with the same key, its
//! `kid` the RFC 7638 thumbprint.

use alter_crypto::{Binding, PublicJwk, SigningKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::audit::{AuditEvent, Target, action};
use crate::caller::Caller;
use crate::error::{Error, Result, ensure};
use crate::grants::{GrantFilter, GrantStateFilter, Viewer};
use crate::identity::{AppUser, UserStatus};
use crate::ids::{AgentId, AppId, UserId};
use crate::ports::{IdentitySigningKey, ReadFrom, StoreError};
use crate::time::Timestamp;
use crate::vault::Vault;

/// The kind bound into the sealed signing key.
pub(crate) const SIGNING_KEY_KIND: &str = "identity.signing_key";
/// Assertion lifetimes: default and bounds (seconds).
const DEFAULT_TTL_SECONDS: i64 = 120;
const MIN_TTL_SECONDS: i64 = 10;
const MAX_TTL_SECONDS: i64 = 300;
/// Longest audience.
const MAX_AUDIENCE_LEN: usize = 512;
/// JOSE `typ` of an assertion.
pub const ASSERTION_TYPE: &str = "alter-identity+jwt";

/// Whom to resolve.
#[derive(Debug, Default)]
pub struct IdentityQuery {
    /// An end user's IdP token.
    pub user_token: Option<String>,
    /// An app user id (agents only, with that user's consent: a delegation to the agent).
    pub app_user_id: Option<String>,
}

/// Who a call acts for.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The app.
    pub app_id: AppId,
    /// The end user, if one was named.
    pub user: Option<AppUser>,
    /// The user's groups now (from a presented token, else the stored ones if recent).
    pub groups: Vec<String>,
    /// The agent acting, if any.
    pub agent_id: Option<AgentId>,
    /// How the agent authenticated (`agent_key`, or `app_key` acting as the agent).
    pub agent_auth: Option<&'static str>,
}

/// A signed identity assertion.
#[derive(Debug)]
pub struct Assertion {
    /// The compact JWS.
    pub token: String,
    /// Its `exp`.
    pub expires_at: Timestamp,
    /// Whom it names.
    pub identity: Identity,
}

/// One published public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKey {
    /// The key id.
    pub kid: String,
    /// The coordinates.
    pub jwk: PublicJwk,
}

impl Vault {
    /// Resolves whom the caller acts for: the app (or its agent) and, if named, an end user.
    pub async fn resolve_identity(
        &self,
        caller: &Caller,
        query: IdentityQuery,
    ) -> Result<Identity> {
        let agent_id = caller.agent_id();
        let (user, groups) = match (query.user_token, query.app_user_id) {
            (_, Some(_)) if agent_id.is_none() => return Err(Error::AppUserIdRequiresAgent),
            (Some(token), _) => {
                let signed_in = self.sign_in(caller.app_id, &token).await?;
                (Some(signed_in.user), signed_in.groups)
            }
            (None, Some(app_user_id)) => {
                let user = self
                    .consenting_user(caller.app_id, agent_id, &app_user_id)
                    .await?;
                let groups = user
                    .recent_groups(self.now(), self.settings().group_membership_max_age_seconds)
                    .to_vec();
                (Some(user), groups)
            }
            (None, None) => (None, Vec::new()),
        };
        Ok(Identity {
            app_id: caller.app_id,
            user,
            groups,
            agent_id,
            agent_auth: agent_id.map(|_| {
                if caller.impersonating {
                    "app_key"
                } else {
                    "agent_key"
                }
            }),
        })
    }

    /// Resolves the identity and signs an assertion of it for `audience`, issued by `issuer`
    /// (the vault's public URL). Only active users are asserted.
    pub async fn assert_identity(
        &self,
        caller: &Caller,
        query: IdentityQuery,
        audience: &str,
        ttl_seconds: Option<i64>,
        issuer: &str,
    ) -> Result<Assertion> {
        ensure(
            !audience.is_empty()
                && audience.len() <= MAX_AUDIENCE_LEN
                && has_uri_scheme(audience)
                && !audience.chars().any(char::is_control),
            || "audience must be a URI (with a scheme), at most 512 characters".into(),
        )?;
        if audience.trim_end_matches('/') == issuer.trim_end_matches('/') {
            return Err(Error::InvalidAudience);
        }
        let ttl = ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
        ensure((MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl), || {
            format!("ttl_seconds must be {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS}")
        })?;
        let identity = self.resolve_identity(caller, query).await?;
        if identity
            .user
            .as_ref()
            .is_some_and(|u| u.status != UserStatus::Active)
        {
            return Err(Error::UserSuspended);
        }
        let (kid, key) = self.assertion_key().await?;
        let now = self.now();
        let iat = now.unix_seconds();
        let expires_at = Timestamp::from_unix_seconds(iat + ttl);
        let sub = match &identity.user {
            Some(user) => format!("alter:user:{}", user.id),
            None => format!("alter:app:{}", identity.app_id),
        };
        let mut alter = json!({ "app_id": identity.app_id.to_string() });
        let mut claims = json!({
            "iss": issuer,
            "aud": audience,
            "sub": sub,
            "iat": iat,
            "exp": iat + ttl,
            "jti": uuid::Uuid::new_v4().to_string(),
            "azp": identity.app_id.to_string(),
        });
        if let (Some(agent), Some(how)) = (identity.agent_id, identity.agent_auth) {
            alter["agent_auth"] = json!(how);
            claims["act"] = json!({ "sub": format!("alter:agent:{agent}") });
        }
        claims["alter"] = alter;
        let header = json!({ "alg": "ES256", "typ": ASSERTION_TYPE, "kid": kid });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = key.sign(signing_input.as_bytes())?;
        let mut actor = caller.actor();
        actor.app_user_id = identity.user.as_ref().map(|u| u.id.to_string());
        let event = AuditEvent::allow(
            identity.app_id,
            now,
            action::IDENTITY_ASSERTED,
            actor,
            Target {
                kind: "identity_assertion".into(),
                id: claims["jti"].as_str().unwrap_or_default().to_owned(),
            },
        )
        .with_details(json!({
            "audience": audience,
            "sub": claims["sub"],
            "kid": kid,
            "expires_at": expires_at.to_rfc3339(),
        }));
        self.store().append_event(&event).await?;
        Ok(Assertion {
            token: format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)),
            expires_at,
            identity,
        })
    }

    /// The public keys assertions are signed with (the JWKS), creating the first one if need be.
    pub async fn identity_keys(&self) -> Result<Vec<PublishedKey>> {
        let mut keys = self.store().identity_signing_keys().await?;
        if keys.is_empty() {
            self.assertion_key().await?;
            keys = self.store().identity_signing_keys().await?;
        }
        Ok(keys
            .into_iter()
            .map(|k| PublishedKey {
                kid: k.kid,
                jwk: PublicJwk {
                    x: k.public_x,
                    y: k.public_y,
                },
            })
            .collect())
    }

    /// The key to sign with: the oldest stored one, so every node picks the same, made on
    /// first use (two nodes making one at once both end up with the older).
    async fn assertion_key(&self) -> Result<(String, SigningKey)> {
        let mut keys = self.store().identity_signing_keys().await?;
        if keys.is_empty() {
            let (key, document) = SigningKey::generate()?;
            let public = key.public();
            let kid = public.kid();
            let stored = IdentitySigningKey {
                sealed_private_key: self.keyring().seal(key_binding(&kid), &document)?,
                kid,
                public_x: public.x,
                public_y: public.y,
                created_at: self.now(),
            };
            match self.store().insert_identity_signing_key(&stored).await {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            keys = self.store().identity_signing_keys().await?;
        }
        let first = keys
            .into_iter()
            .next()
            .ok_or_else(|| Error::Storage(StoreError::Other("no signing key".into())))?;
        let document = self
            .keyring()
            .open(key_binding(&first.kid), &first.sealed_private_key)?;
        Ok((first.kid, SigningKey::from_pkcs8(&document)?))
    }

    /// The user `app_user_id` names if the agent holds an active delegation they consented
    /// to; "not found" otherwise (whether or not the user exists).
    async fn consenting_user(
        &self,
        app_id: AppId,
        agent: Option<AgentId>,
        app_user_id: &str,
    ) -> Result<AppUser> {
        let not_found = Error::NotFound(crate::Entity::User);
        let (Some(agent), Some(user_id)) = (agent, UserId::parse_lenient(app_user_id)) else {
            return Err(not_found);
        };
        let viewer = Viewer::Agent {
            agent,
            delegated_by: Some(user_id),
        };
        let filter = GrantFilter {
            state: Some(GrantStateFilter::Active),
            delegations: Some(true),
            ..GrantFilter::default()
        };
        let (_, total) = self
            .store()
            .list_grants(
                app_id,
                &viewer,
                &filter,
                1,
                0,
                self.now(),
                ReadFrom::Primary,
            )
            .await?;
        if total == 0 {
            return Err(not_found);
        }
        self.store()
            .get_user(app_id, user_id)
            .await?
            .ok_or(not_found)
    }
}

fn key_binding(kid: &str) -> Binding<'_> {
    Binding {
        kind: SIGNING_KEY_KIND,
        app_id: "",
        record_id: kid,
    }
}

/// `^[A-Za-z][A-Za-z0-9+.-]*:`
fn has_uri_scheme(text: &str) -> bool {
    let Some((scheme, _)) = text.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_need_a_scheme() {
        assert!(has_uri_scheme("https://api.example.com"));
        assert!(has_uri_scheme("urn:example:api"));
        assert!(!has_uri_scheme("api.example.com"));
        assert!(!has_uri_scheme("1http://x"));
        assert!(!has_uri_scheme(":x"));
    }
}
