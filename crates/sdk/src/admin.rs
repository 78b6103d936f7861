//! A client of the operator admin API (`/admin/v1/*`, Bearer admin token), used by the `alter`
//! CLI and by tests.

use std::time::Duration;

use alter_proto::admin::{
    AppInfo, CreateAppRequest, ItemList, MintKeyRequest, RotateAppKeyRequest,
};
use alter_proto::keys::{ApiKeyInfo, MintedKey};
use alter_proto::signing::encode_path_segment;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorInfo, from_response};
use crate::transport::validate_base_url;

/// The operator's client.
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base_url: String,
    token: String,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// A client of the server at `base_url` with the operator admin token.
    pub fn new(base_url: &str, token: impl Into<String>) -> Result<AdminClient, Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::sdk(format!("cannot build the HTTP client: {e}")))?;
        Ok(AdminClient {
            http,
            base_url: validate_base_url(base_url)?,
            token: token.into(),
        })
    }

    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let mut request = self
            .http
            .request(method, format!("{}/admin/v1{path}", self.base_url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            Error::Network(ErrorInfo {
                message: format!("cannot reach {}: {e}", self.base_url),
                ..Default::default()
            })
        })?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| {
            Error::Network(ErrorInfo {
                message: e.to_string(),
                ..Default::default()
            })
        })?;
        if status >= 400 {
            return Err(from_response(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::Backend(ErrorInfo {
                status,
                message: format!("unexpected response: {e}"),
                ..Default::default()
            })
        })
    }

    /// Creates an app.
    pub async fn create_app(&self, name: &str) -> Result<AppInfo, Error> {
        let body = CreateAppRequest {
            name: name.to_owned(),
        };
        self.call(Method::POST, "/apps", Some(&body)).await
    }

    /// Lists apps.
    pub async fn list_apps(&self) -> Result<Vec<AppInfo>, Error> {
        let list: ItemList<AppInfo> = self.call::<_, ()>(Method::GET, "/apps", None).await?;
        Ok(list.items)
    }

    /// One app.
    pub async fn get_app(&self, app_id: &str) -> Result<AppInfo, Error> {
        let path = format!("/apps/{}", encode_path_segment(app_id));
        self.call::<_, ()>(Method::GET, &path, None).await
    }

    /// Mints an app key; the answer holds the plaintext once.
    pub async fn mint_key(
        &self,
        app_id: &str,
        request: &MintKeyRequest,
    ) -> Result<MintedKey, Error> {
        let path = format!("/apps/{}/keys", encode_path_segment(app_id));
        self.call(Method::POST, &path, Some(request)).await
    }

    /// Lists an app's keys.
    pub async fn list_keys(&self, app_id: &str) -> Result<Vec<ApiKeyInfo>, Error> {
        let path = format!("/apps/{}/keys", encode_path_segment(app_id));
        let list: ItemList<ApiKeyInfo> = self.call::<_, ()>(Method::GET, &path, None).await?;
        Ok(list.items)
    }

    /// Revokes a key and its derived keys.
    pub async fn revoke_key(&self, app_id: &str, key_id: &str) -> Result<ApiKeyInfo, Error> {
        let path = format!(
            "/apps/{}/keys/{}",
            encode_path_segment(app_id),
            encode_path_segment(key_id)
        );
        self.call::<_, ()>(Method::DELETE, &path, None).await
    }

    /// Rotates a key; the old one keeps working for `grace_seconds`.
    pub async fn rotate_key(
        &self,
        app_id: &str,
        key_id: &str,
        grace_seconds: Option<i64>,
    ) -> Result<MintedKey, Error> {
        let path = format!(
            "/apps/{}/keys/{}/rotate",
            encode_path_segment(app_id),
            encode_path_segment(key_id)
        );
        self.call(
            Method::POST,
            &path,
            Some(&RotateAppKeyRequest { grace_seconds }),
        )
        .await
    }
}
