//! The namespaces shared by [`App`](crate::App) and [`Agent`](crate::Agent): `keys` and
//! `scopes`.

use alter_proto::keys::{ApiKeyInfo, DeriveKeyRequest, MintedKey, RotateKeyRequest};
use alter_proto::scopes::ScopeCatalog;
use alter_proto::signing::encode_path_segment;
use reqwest::Method;

use crate::error::Error;
use crate::transport::{Mapper, Transport};

/// `keys`: derive, rotate and revoke API keys.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    pub(crate) transport: &'a Transport,
}

impl Keys<'_> {
    /// Derives a short-lived key holding a subset of this key's scopes (never `keys:derive`).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), alter_sdk::Error> {
    /// use alter_sdk::{App, DeriveKeyRequest};
    /// let app = App::new("alter_rk_…")?;
    /// let derived = app
    ///     .keys()
    ///     .derive(DeriveKeyRequest {
    ///         scopes: vec!["tokens:retrieve".into()],
    ///         expires_in: 3600,
    ///         cidr_allowlist: None,
    ///         name: None,
    ///         metadata: None,
    ///     })
    ///     .await?;
    /// println!("{}", derived.api_key);
    /// # Ok(()) }
    /// ```
    pub async fn derive(&self, request: DeriveKeyRequest) -> Result<MintedKey, Error> {
        if request.scopes.is_empty() || request.scopes.iter().any(|s| s.is_empty()) {
            return Err(Error::value("scopes must be a non-empty list of scopes"));
        }
        if request.scopes.iter().any(|s| s == "keys:derive") {
            return Err(Error::value("derived keys cannot hold keys:derive"));
        }
        if request.expires_in <= 0 {
            return Err(Error::value(
                "expires_in must be a positive number of seconds",
            ));
        }
        self.transport
            .json(
                Method::POST,
                "/sdk/keys/derive",
                Some(&request),
                Mapper::Main,
            )
            .await
    }

    /// Rotates a key: the successor is returned, the old key keeps working for
    /// `overlap_days` (0–30).
    pub async fn rotate(&self, key_id: &str, overlap_days: i64) -> Result<MintedKey, Error> {
        if key_id.trim().is_empty() {
            return Err(Error::value("key_id must not be empty"));
        }
        if !(0..=30).contains(&overlap_days) {
            return Err(Error::value("overlap_days must be between 0 and 30"));
        }
        let path = format!("/sdk/keys/{}/rotate", encode_path_segment(key_id));
        self.transport
            .json(
                Method::POST,
                &path,
                Some(&RotateKeyRequest { overlap_days }),
                Mapper::Main,
            )
            .await
    }

    /// Revokes a key and every key derived from it. `force` is needed to revoke a managed
    /// agent's last active key.
    pub async fn revoke(&self, key_id: &str, force: bool) -> Result<ApiKeyInfo, Error> {
        if key_id.trim().is_empty() {
            return Err(Error::value("key_id must not be empty"));
        }
        let mut path = format!("/sdk/keys/{}", encode_path_segment(key_id));
        if force {
            path.push_str("?force=true");
        }
        self.transport
            .json::<_, ()>(Method::DELETE, &path, None, Mapper::Main)
            .await
    }
}

/// `scopes`: the scope catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Scopes<'a> {
    pub(crate) transport: &'a Transport,
}

impl Scopes<'_> {
    /// Lists every scope a key may hold.
    pub async fn list(&self) -> Result<ScopeCatalog, Error> {
        self.transport
            .json::<_, ()>(Method::GET, "/sdk/scopes", None, Mapper::Main)
            .await
    }
}
