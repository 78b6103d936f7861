//! Credentials: what a grant points at. Today a managed secret; OAuth connections join as a
//! second kind (issue 9). Listings, releases and audit events see them through these types,
//! so each new kind is one more variant, not another parallel path.

use crate::error::{Entity, Error, Result};
use crate::grants::{Grant, PrincipalType};
use crate::ids::SecretId;
use crate::release::CredentialFacts;
use crate::secrets::{ManagedSecret, SecretLimits};
use crate::vault::Vault;

/// The kind of credential a grant points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A managed secret.
    ManagedSecret,
}

impl CredentialKind {
    /// The stored and wire form (`grant_kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ManagedSecret => "managed_secret",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<CredentialKind> {
        match text {
            "managed_secret" => Some(CredentialKind::ManagedSecret),
            _ => None,
        }
    }
}

/// The credential a grant points at. OAuth connections join managed secrets as a second kind
/// (issue 9); every stage of a release dispatches on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialRef {
    /// A managed secret.
    ManagedSecret(SecretId),
}

impl CredentialRef {
    /// Its kind.
    pub fn kind(self) -> CredentialKind {
        match self {
            CredentialRef::ManagedSecret(_) => CredentialKind::ManagedSecret,
        }
    }

    /// The managed secret, if it is one.
    pub fn secret_id(self) -> Option<SecretId> {
        match self {
            CredentialRef::ManagedSecret(id) => Some(id),
        }
    }
}

/// The credential a grant points at, loaded with its value still sealed.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A managed secret.
    ManagedSecret(ManagedSecret),
}

impl Credential {
    /// What callers name it by (`provider_id`).
    pub fn provider_id(&self) -> &str {
        match self {
            Credential::ManagedSecret(secret) => &secret.slug,
        }
    }

    /// True once the credential was deleted.
    pub(crate) fn is_deleted(&self) -> bool {
        match self {
            Credential::ManagedSecret(secret) => secret.deleted_at.is_some(),
        }
    }

    /// The limits the operator set on its grants.
    pub fn limits(&self) -> &SecretLimits {
        match self {
            Credential::ManagedSecret(secret) => &secret.limits,
        }
    }

    /// True if grants of this principal type may use the credential.
    pub(crate) fn admits(&self, principal: PrincipalType) -> bool {
        self.limits().allows(principal)
    }

    /// What the rules may see of it.
    pub(crate) fn facts(&self) -> CredentialFacts<'_> {
        match self {
            Credential::ManagedSecret(secret) => CredentialFacts {
                provider_id: &secret.slug,
                allowed_hosts: &secret.allowed_hosts,
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

/// What a listing shows of the credential a grant points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSummary {
    /// A managed secret.
    ManagedSecret(SecretSummary),
}

impl CredentialSummary {
    /// The name callers use for the credential (`provider_id`).
    pub fn provider_id(&self) -> &str {
        match self {
            CredentialSummary::ManagedSecret(secret) => &secret.slug,
        }
    }

    /// What a listing shows of `credential`.
    pub fn of(credential: &Credential) -> CredentialSummary {
        match credential {
            Credential::ManagedSecret(secret) => {
                CredentialSummary::ManagedSecret(SecretSummary::of(secret))
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
        }
    }
}
