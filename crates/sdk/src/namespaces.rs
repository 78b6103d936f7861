//! The namespaces shared by [`App`](crate::App) and [`Agent`](crate::Agent): `keys`,
//! `scopes` and `provider_specs`.

use alter_proto::keys::{ApiKeyInfo, DeriveKeyRequest, MintedKey, RotateKeyRequest};
use alter_proto::provider_specs::{
    ProviderSpec, ProviderSpecList, SpecOperationDetail, SpecOperationsPage,
};
use alter_proto::scopes::ScopeCatalog;
use alter_proto::signing::{encode_path_segment, encode_query};
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

/// `provider_specs`: the OpenAPI specs the operator imported for the app's providers, to find
/// the operation a call is about to make (scope `providers:read`).
#[derive(Debug, Clone, Copy)]
pub struct ProviderSpecs<'a> {
    pub(crate) transport: &'a Transport,
}

impl ProviderSpecs<'_> {
    /// Every spec of the app, or only those of `kind` (`oauth` or `managed`).
    pub async fn list(&self, kind: Option<&str>) -> Result<Vec<ProviderSpec>, Error> {
        let path = match kind {
            Some(kind) => format!("/sdk/provider-specs?{}", encode_query(&[("kind", kind)])),
            None => "/sdk/provider-specs".to_owned(),
        };
        let list: ProviderSpecList = self
            .transport
            .json::<_, ()>(Method::GET, &path, None, Mapper::Main)
            .await?;
        Ok(list.items)
    }

    /// One provider's spec.
    pub async fn get(&self, kind: &str, provider_id: &str) -> Result<ProviderSpec, Error> {
        let path = spec_path(kind, provider_id)?;
        self.transport
            .json::<_, ()>(Method::GET, &path, None, Mapper::Main)
            .await
    }

    /// A page of a spec's operations, optionally only those whose id, path or summary contain
    /// `search` (ignoring case).
    pub async fn list_operations(
        &self,
        kind: &str,
        provider_id: &str,
        search: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<SpecOperationsPage, Error> {
        let (limit, offset) = (limit.to_string(), offset.to_string());
        let mut params = vec![("limit", limit.as_str()), ("offset", offset.as_str())];
        if let Some(search) = search {
            params.push(("search", search));
        }
        let path = format!(
            "{}/operations?{}",
            spec_path(kind, provider_id)?,
            encode_query(&params)
        );
        self.transport
            .json::<_, ()>(Method::GET, &path, None, Mapper::Main)
            .await
    }

    /// One operation of a spec, with its parameter, request and response schemas.
    pub async fn get_operation(
        &self,
        kind: &str,
        provider_id: &str,
        operation_id: &str,
    ) -> Result<SpecOperationDetail, Error> {
        let path = format!(
            "{}/operation?{}",
            spec_path(kind, provider_id)?,
            encode_query(&[("operation_id", operation_id)])
        );
        self.transport
            .json::<_, ()>(Method::GET, &path, None, Mapper::Main)
            .await
    }
}

/// `/sdk/provider-specs/{kind}/{provider_id}`; an empty provider id names nothing.
fn spec_path(kind: &str, provider_id: &str) -> Result<String, Error> {
    if provider_id.trim().is_empty() {
        return Err(Error::value(
            "provider_specs: provider_id must not be empty",
        ));
    }
    Ok(format!(
        "/sdk/provider-specs/{}/{}",
        encode_path_segment(kind),
        encode_path_segment(provider_id)
    ))
}
