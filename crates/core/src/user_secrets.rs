//! End users' own keys for a managed secret: what a user enters on a managed-secret Connect
//! page. The operator's managed secret is the **template** — how the value is injected, where
//! it may be sent, the limits of its grants — and the value is the user's, sealed to its own
//! record and version. A grant on it names both (`CredentialRef::UserSecret`).

use alter_crypto::{Binding, SecretString};

use crate::error::{Error, Result};
use crate::ids::{AppId, SecretId, UserId, UserSecretId};
use crate::time::Timestamp;
use crate::vault::Vault;

/// The kind bound into a sealed user key.
pub(crate) const USER_VALUE_KIND: &str = "user_secret_value";

/// A user's own key, as stored (its value sealed).
#[derive(Debug, Clone, PartialEq)]
pub struct UserSecret {
    /// Id.
    pub id: UserSecretId,
    /// The app.
    pub app_id: AppId,
    /// The operator's managed secret it follows.
    pub secret_id: SecretId,
    /// The user it belongs to.
    pub user_id: UserId,
    /// The value, sealed to this record and `value_version@set_at`.
    pub sealed_value: Vec<u8>,
    /// Bumped each time the user replaces it.
    pub value_version: i64,
    /// When the current value was set.
    pub set_at: Timestamp,
    /// Creation time.
    pub created_at: Timestamp,
}

impl Vault {
    /// Seals `value` for the user key `id` at `version` and `at`.
    pub(crate) fn seal_user_value(
        &self,
        app_id: AppId,
        id: UserSecretId,
        version: i64,
        at: Timestamp,
        value: &SecretString,
    ) -> Result<Vec<u8>> {
        use alter_crypto::ExposeSecret;
        let (app, record) = (app_id.to_string(), id.to_string());
        Ok(self.keyring().seal_versioned(
            binding(&app, &record),
            &revision(version, at),
            value.expose_secret().as_bytes(),
        )?)
    }

    /// Opens a user key's value, for the one request that injects it.
    pub(crate) fn open_user_value(&self, key: &UserSecret) -> Result<SecretString> {
        let (app, record) = (key.app_id.to_string(), key.id.to_string());
        let plain = self.keyring().open_versioned(
            binding(&app, &record),
            &revision(key.value_version, key.set_at),
            &key.sealed_value,
        )?;
        let text = std::str::from_utf8(&plain)
            .map_err(|_| Error::Crypto(alter_crypto::CryptoError::CannotOpen))?;
        Ok(SecretString::from(text.to_owned()))
    }
}

fn binding<'a>(app: &'a str, record: &'a str) -> Binding<'a> {
    Binding {
        kind: USER_VALUE_KIND,
        app_id: app,
        record_id: record,
    }
}

fn revision(version: i64, at: Timestamp) -> String {
    format!("{version}@{}", at.micros())
}
