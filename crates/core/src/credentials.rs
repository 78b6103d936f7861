//! Credentials: what a grant points at — a managed secret, or an OAuth connection. Listings,
//! releases and audit events see them through these types, so each kind is one more variant,
//! not another parallel path.

use crate::connections::{Connection, ConnectionStatus};
use crate::error::{Entity, Error, Result};
use crate::grants::{Grant, PrincipalType};
use crate::ids::{ConnectionId, SecretId, UserSecretId};
use crate::release::CredentialFacts;
use crate::secrets::{ManagedSecret, SecretLimits};
use crate::user_secrets::UserSecret;
use crate::vault::Vault;

/// The kind of credential a grant points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A managed secret.
    ManagedSecret,
    /// An OAuth connection.
    OAuth,
}

impl CredentialKind {
    /// The stored and wire form (`grant_kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ManagedSecret => "managed_secret",
            CredentialKind::OAuth => "oauth",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<CredentialKind> {
        match text {
            "managed_secret" => Some(CredentialKind::ManagedSecret),
            "oauth" => Some(CredentialKind::OAuth),
            _ => None,
        }
    }
}

/// The credential a grant points at; every stage of a release dispatches on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialRef {
    /// A managed secret.
    ManagedSecret(SecretId),
    /// An OAuth connection.
    Connection(ConnectionId),
    /// A user's own key for a managed secret (the template).
    UserSecret {
        /// The operator's managed secret it follows.
        secret: SecretId,
        /// The user's key.
        key: UserSecretId,
    },
}

impl CredentialRef {
    /// Its kind (a user's own key is a managed secret on the wire).
    pub fn kind(self) -> CredentialKind {
        match self {
            CredentialRef::ManagedSecret(_) | CredentialRef::UserSecret { .. } => {
                CredentialKind::ManagedSecret
            }
            CredentialRef::Connection(_) => CredentialKind::OAuth,
        }
    }

    /// The managed secret (or the template of a user's key), if it is one.
    pub fn secret_id(self) -> Option<SecretId> {
        match self {
            CredentialRef::ManagedSecret(id) | CredentialRef::UserSecret { secret: id, .. } => {
                Some(id)
            }
            CredentialRef::Connection(_) => None,
        }
    }

    /// The OAuth connection, if it is one.
    pub fn connection_id(self) -> Option<ConnectionId> {
        match self {
            CredentialRef::Connection(id) => Some(id),
            _ => None,
        }
    }

    /// The user's own key, if it is one.
    pub fn user_secret_id(self) -> Option<UserSecretId> {
        match self {
            CredentialRef::UserSecret { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// What the vault allows of OAuth grants: every principal but `agent` owns them (agents hold
/// delegations), and they may be delegated.
static OAUTH_LIMITS: SecretLimits = SecretLimits {
    max_grant_ttl_seconds: None,
    principals: Vec::new(),
    delegation: true,
    max_delegation_ttl_seconds: None,
};

/// The credential a grant points at, loaded with its value still sealed.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A managed secret.
    ManagedSecret(ManagedSecret),
    /// An OAuth connection.
    Connection(Connection),
    /// A user's own key, with the managed secret it follows.
    UserSecret {
        /// The operator's managed secret: how the key is injected, where it may go.
        template: ManagedSecret,
        /// The user's key.
        key: UserSecret,
    },
}

impl Credential {
    /// The managed secret whose rules apply (itself, or a user key's template).
    fn secret(&self) -> Option<&ManagedSecret> {
        match self {
            Credential::ManagedSecret(secret)
            | Credential::UserSecret {
                template: secret, ..
            } => Some(secret),
            Credential::Connection(_) => None,
        }
    }

    /// What callers name it by (`provider_id`).
    pub fn provider_id(&self) -> &str {
        match self {
            Credential::ManagedSecret(secret)
            | Credential::UserSecret {
                template: secret, ..
            } => &secret.slug,
            Credential::Connection(connection) => &connection.provider_id,
        }
    }

    /// Its kind as decision facts name it: `managed_secret`, `oauth` or `user_secret`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Credential::ManagedSecret(_) => "managed_secret",
            Credential::Connection(_) => "oauth",
            Credential::UserSecret { .. } => "user_secret",
        }
    }

    /// True once the credential was deleted (a revoked connection's tokens are destroyed).
    pub(crate) fn is_deleted(&self) -> bool {
        match self {
            Credential::ManagedSecret(secret)
            | Credential::UserSecret {
                template: secret, ..
            } => secret.deleted_at.is_some(),
            Credential::Connection(connection) => connection.status == ConnectionStatus::Revoked,
        }
    }

    /// The limits the operator set on its grants.
    pub fn limits(&self) -> &SecretLimits {
        match self.secret() {
            Some(secret) => &secret.limits,
            None => &OAUTH_LIMITS,
        }
    }

    /// True if grants of this principal type may use the credential.
    pub(crate) fn admits(&self, principal: PrincipalType) -> bool {
        self.limits().allows(principal)
    }

    /// What audit events record of it: which credential, never its value.
    pub(crate) fn audit_details(&self) -> serde_json::Map<String, serde_json::Value> {
        let details = match self {
            Credential::ManagedSecret(secret) => serde_json::json!({
                "secret_id": secret.id,
                "secret_slug": secret.slug,
            }),
            Credential::Connection(connection) => serde_json::json!({
                "connection_id": connection.id,
                "provider_id": connection.provider_id,
            }),
            Credential::UserSecret { template, key } => serde_json::json!({
                "secret_id": template.id,
                "secret_slug": template.slug,
                "user_secret_id": key.id,
            }),
        };
        match details {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }

    /// The version of its value now (a secret's rotation, a connection's tokens).
    pub(crate) fn value_version(&self) -> i64 {
        match self {
            Credential::ManagedSecret(secret) => secret.value_version,
            Credential::Connection(connection) => connection.token_version,
            Credential::UserSecret { key, .. } => key.value_version,
        }
    }

    /// What the rules may see of it.
    pub(crate) fn facts(&self) -> CredentialFacts<'_> {
        match self {
            Credential::ManagedSecret(secret)
            | Credential::UserSecret {
                template: secret, ..
            } => CredentialFacts {
                kind: CredentialKind::ManagedSecret,
                provider_id: &secret.slug,
                allowed_hosts: &secret.allowed_hosts,
                scopes: &[],
            },
            Credential::Connection(connection) => CredentialFacts {
                kind: CredentialKind::OAuth,
                provider_id: &connection.provider_id,
                allowed_hosts: &[],
                scopes: &connection.scopes,
            },
        }
    }
}

/// The secret a grant points at, as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSummary {
    /// Id.
    pub id: SecretId,
    /// Slug.
    pub slug: String,
    /// Display name.
    pub name: String,
}

impl SecretSummary {
    /// What a listing shows of `secret`.
    pub fn of(secret: &ManagedSecret) -> SecretSummary {
        SecretSummary {
            id: secret.id,
            slug: secret.slug.clone(),
            name: secret.name.clone(),
        }
    }
}

/// The connection an OAuth grant points at, as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSummary {
    /// Id.
    pub id: ConnectionId,
    /// The app's provider.
    pub provider_id: String,
    /// The account at the provider.
    pub account_identifier: Option<String>,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// When the access token expires.
    pub access_expires_at: Option<crate::time::Timestamp>,
    /// Status.
    pub status: ConnectionStatus,
}

impl ConnectionSummary {
    /// What a listing shows of `connection`.
    pub fn of(connection: &Connection) -> ConnectionSummary {
        ConnectionSummary {
            id: connection.id,
            provider_id: connection.provider_id.clone(),
            account_identifier: connection.account_identifier.clone(),
            scopes: connection.scopes.clone(),
            access_expires_at: connection.access_expires_at,
            status: connection.status,
        }
    }
}

/// What a listing shows of the credential a grant points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSummary {
    /// A managed secret.
    ManagedSecret(SecretSummary),
    /// An OAuth connection.
    Connection(ConnectionSummary),
}

impl CredentialSummary {
    /// The name callers use for the credential (`provider_id`).
    pub fn provider_id(&self) -> &str {
        match self {
            CredentialSummary::ManagedSecret(secret) => &secret.slug,
            CredentialSummary::Connection(connection) => &connection.provider_id,
        }
    }

    /// What a listing shows of `credential`.
    pub fn of(credential: &Credential) -> CredentialSummary {
        match credential {
            Credential::ManagedSecret(secret)
            | Credential::UserSecret {
                template: secret, ..
            } => CredentialSummary::ManagedSecret(SecretSummary::of(secret)),
            Credential::Connection(connection) => {
                CredentialSummary::Connection(ConnectionSummary::of(connection))
            }
        }
    }
}

impl Vault {
    /// The credential `grant` points at, as stored now.
    pub(crate) async fn credential_of(&self, grant: &Grant) -> Result<Credential> {
        let missing = || Error::NotFound(Entity::Grant);
        match grant.credential {
            CredentialRef::ManagedSecret(id) => self
                .store()
                .get_secret(grant.app_id, id)
                .await?
                .map(Credential::ManagedSecret)
                .ok_or_else(missing),
            CredentialRef::Connection(id) => self
                .store()
                .get_connection(grant.app_id, id)
                .await?
                .map(Credential::Connection)
                .ok_or_else(missing),
            CredentialRef::UserSecret { secret, key } => {
                let template = self.store().get_secret(grant.app_id, secret).await?;
                let key = self.store().get_user_secret(grant.app_id, key).await?;
                match (template, key) {
                    (Some(template), Some(key)) => Ok(Credential::UserSecret { template, key }),
                    _ => Err(missing()),
                }
            }
        }
    }
}
