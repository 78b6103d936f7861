//! OAuth providers an app is configured for: where the authorization server's endpoints are,
//! how it behaves (PKCE, scope separator, refresh tokens), and the app's client credentials at
//! it — the client secret sealed like every credential. A provider comes from the built-in
//! catalogue (the server fills in its endpoints) or is a custom one the operator describes.
//! Connections (the token pairs users authorize) build on these (issue 9).

use std::collections::BTreeMap;

use alter_crypto::{Binding, ExposeSecret, SecretString, Zeroizing};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{Actor, AuditEvent, Target, action};
use crate::error::{Entity, Error, Result, ensure};
use crate::ids::AppId;
use crate::ports::StoreError;
use crate::time::Timestamp;
use crate::validate;
use crate::vault::Vault;

/// The kind bound into a sealed client secret.
pub(crate) const CLIENT_SECRET_KIND: &str = "provider.client_secret";
/// Longest provider id (the same shape as a managed secret's slug).
const MAX_ID_LEN: usize = 50;
/// Most scopes a provider may be configured with.
const MAX_SCOPES: usize = 100;
/// Largest client secret.
const MAX_CLIENT_SECRET_BYTES: usize = 4096;

/// Authorization-request parameters the OAuth client sets itself: a provider's extra
/// parameters may not set them.
pub const RESERVED_AUTHORIZE_PARAMS: [&str; 7] = [
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// Where a provider's description came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderSource {
    /// The built-in catalogue.
    Catalog,
    /// The operator described it.
    Custom,
}

impl ProviderSource {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderSource::Catalog => "catalog",
            ProviderSource::Custom => "custom",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<ProviderSource> {
        match text {
            "catalog" => Some(ProviderSource::Catalog),
            "custom" => Some(ProviderSource::Custom),
            _ => None,
        }
    }
}

/// What a provider does with refresh tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshBehaviour {
    /// It issues none: access tokens last until revoked, or the user reconnects.
    None,
    /// Each refresh returns a new refresh token; the old one stops working.
    #[default]
    Rotating,
    /// The refresh token stays the same.
    NonRotating,
}

impl RefreshBehaviour {
    /// The wire and stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshBehaviour::None => "none",
            RefreshBehaviour::Rotating => "rotating",
            RefreshBehaviour::NonRotating => "non_rotating",
        }
    }

    /// Parses the wire form.
    pub fn parse(text: &str) -> Option<RefreshBehaviour> {
        match text {
            "none" => Some(RefreshBehaviour::None),
            "rotating" => Some(RefreshBehaviour::Rotating),
            "non_rotating" => Some(RefreshBehaviour::NonRotating),
            _ => None,
        }
    }
}

/// Where a connection's account identifier comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum AccountSource {
    /// A `GET` of `url` with the access token; the identifier is at the JSON Pointer `pointer`.
    Userinfo {
        /// The endpoint.
        url: String,
        /// JSON Pointer (RFC 6901) to the identifier, e.g. `/email`.
        pointer: String,
    },
    /// A claim of the ID token.
    IdToken {
        /// The claim (`email`, `sub`…).
        claim: String,
    },
    /// A GraphQL `POST` of `query` to `url` with the access token; the identifier is at
    /// `pointer`.
    Graphql {
        /// The endpoint.
        url: String,
        /// The query.
        query: String,
        /// JSON Pointer to the identifier.
        pointer: String,
    },
    /// A member of the token endpoint's answer, at `pointer`.
    TokenResponse {
        /// JSON Pointer to the identifier.
        pointer: String,
    },
    /// None: connections have no account identifier.
    #[default]
    Unknown,
}

/// How to run the OAuth flow with a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderEndpoints {
    /// The authorization server's issuer, when it has one (checked as `iss` on the callback,
    /// RFC 9207).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Authorization endpoint.
    pub authorize_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Endpoint for refreshes, when it is not the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_url: Option<String>,
    /// Revocation endpoint (RFC 7009), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_url: Option<String>,
    /// It accepts PKCE (S256).
    pub pkce: bool,
    /// What joins scopes in the authorization request (a space, unless the provider says
    /// otherwise).
    pub scope_separator: String,
    /// Its refresh tokens.
    pub refresh: RefreshBehaviour,
    /// Parameters every authorization request carries (`access_type=offline`…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_authorize_params: BTreeMap<String, String>,
    /// Where the account identifier comes from.
    #[serde(default)]
    pub account: AccountSource,
    /// The API the tokens are for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<String>,
    /// Headers every API call needs besides the token.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub api_headers: BTreeMap<String, String>,
}

/// An OAuth provider as an app is configured for it.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthProvider {
    /// The app.
    pub app_id: AppId,
    /// Its id within the app (`google`, `acme`): what `provider_id` names.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Catalogue or custom.
    pub source: ProviderSource,
    /// How to run the flow.
    pub endpoints: ProviderEndpoints,
    /// The app's client id at the provider.
    pub client_id: String,
    /// The app's client secret, sealed to this provider.
    pub sealed_client_secret: Vec<u8>,
    /// Scopes connections ask for unless a session names others.
    pub scopes: Vec<String>,
    /// Bumped by every change.
    pub version: i64,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// What an operator gives to configure a provider. A changed configuration without a client
/// secret keeps the stored one.
#[derive(Debug)]
pub struct ConfigureProvider {
    /// Its id within the app.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Catalogue or custom.
    pub source: ProviderSource,
    /// How to run the flow.
    pub endpoints: ProviderEndpoints,
    /// The client id.
    pub client_id: String,
    /// The client secret (required the first time).
    pub client_secret: Option<SecretString>,
    /// Default scopes.
    pub scopes: Vec<String>,
    /// The version the operator read; the change is refused if the provider changed since.
    pub expected_version: Option<i64>,
}

impl Vault {
    /// Configures (or reconfigures) an OAuth provider of an app (operator).
    pub async fn configure_provider(
        &self,
        app_id: AppId,
        request: ConfigureProvider,
    ) -> Result<OAuthProvider> {
        self.get_app(app_id).await?;
        validate_id(&request.id)?;
        let display_name = validate::display_name("display_name", &request.display_name)?;
        validate::bounded_text("client_id", &request.client_id, 512)?;
        validate_endpoints(&request.endpoints)?;
        let scopes = validate_scopes(&request.scopes)?;
        let existing = self.store().get_provider(app_id, &request.id).await?;
        if let Some(expected) = request.expected_version
            && existing.as_ref().map(|e| e.version) != Some(expected)
        {
            return Err(Error::Conflict(
                "the provider changed since the version you read; read it again".into(),
            ));
        }
        if let (None, Some(existing)) = (&request.client_secret, &existing) {
            ensure_secret_stays_put(existing, &request)?;
        }
        let now = self.now();
        let version = existing.as_ref().map_or(1, |e| e.version + 1);
        // The secret is sealed to the provider's revision, so an earlier configuration's
        // ciphertext copied back fails to open; a kept secret is sealed again.
        let secret = match (&request.client_secret, &existing) {
            (Some(secret), _) => {
                let value = secret.expose_secret();
                ensure(
                    !value.is_empty() && value.len() <= MAX_CLIENT_SECRET_BYTES,
                    || format!("client_secret must be 1 to {MAX_CLIENT_SECRET_BYTES} bytes"),
                )?;
                Zeroizing::new(value.as_bytes().to_vec())
            }
            (None, Some(existing)) => self.open_client_secret(existing)?,
            (None, None) => {
                return Err(Error::Invalid(
                    "client_secret is required when a provider is first configured".into(),
                ));
            }
        };
        let mut provider = OAuthProvider {
            app_id,
            id: request.id,
            display_name: display_name.to_owned(),
            source: request.source,
            endpoints: request.endpoints,
            client_id: request.client_id,
            sealed_client_secret: Vec::new(),
            scopes,
            version,
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            updated_at: now,
        };
        provider.sealed_client_secret = self.seal_client_secret(&provider, &secret)?;
        let event =
            provider_event(&provider, action::PROVIDER_CONFIGURED, now).with_details(json!({
                "source": provider.source.as_str(),
                "client_id": provider.client_id,
                "scopes": provider.scopes,
                "authorize_url": provider.endpoints.authorize_url,
                "token_url": provider.endpoints.token_url,
                "client_secret_changed": request.client_secret.is_some(),
            }));
        let expected = existing.as_ref().map(|e| e.version);
        match self.store().put_provider(&provider, expected, &event).await {
            Ok(true) => Ok(provider),
            Ok(false) | Err(StoreError::Conflict(_)) => Err(Error::Conflict(
                "the provider changed while it was being configured; try again".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The OAuth providers of an app, by id.
    pub async fn list_providers(&self, app_id: AppId) -> Result<Vec<OAuthProvider>> {
        self.get_app(app_id).await?;
        Ok(self.store().list_providers(app_id).await?)
    }

    /// One OAuth provider of an app.
    pub async fn get_provider(&self, app_id: AppId, id: &str) -> Result<OAuthProvider> {
        self.store()
            .get_provider(app_id, id)
            .await?
            .ok_or(Error::NotFound(Entity::Provider))
    }

    /// Removes an OAuth provider from an app (operator); returns what was removed. Refused
    /// while connections made with it are live: a provider configured again under the same id
    /// must never receive their refresh tokens.
    pub async fn delete_provider(&self, app_id: AppId, id: &str) -> Result<OAuthProvider> {
        let provider = self.get_provider(app_id, id).await?;
        let event = provider_event(&provider, action::PROVIDER_DELETED, self.now());
        if self.store().delete_provider(app_id, id, &event).await? {
            return Ok(provider);
        }
        // Still there: its connections kept it.
        self.get_provider(app_id, id).await?;
        Err(Error::Conflict(
            "connections made with this provider are live; revoke them first".into(),
        ))
    }

    /// Opens a provider's client secret, for the one token request that sends it.
    pub(crate) fn open_client_secret(
        &self,
        provider: &OAuthProvider,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let app = provider.app_id.to_string();
        Ok(self.keyring().open_versioned(
            client_secret_binding(&app, &provider.id),
            &revision(provider),
            &provider.sealed_client_secret,
        )?)
    }

    fn seal_client_secret(&self, provider: &OAuthProvider, secret: &[u8]) -> Result<Vec<u8>> {
        let app = provider.app_id.to_string();
        Ok(self.keyring().seal_versioned(
            client_secret_binding(&app, &provider.id),
            &revision(provider),
            secret,
        )?)
    }
}

fn client_secret_binding<'a>(app: &'a str, id: &'a str) -> Binding<'a> {
    Binding {
        kind: CLIENT_SECRET_KIND,
        app_id: app,
        record_id: id,
    }
}

/// What a sealed client secret's AAD binds besides its record: the configuration's version and
/// the instant it was made.
fn revision(provider: &OAuthProvider) -> String {
    format!("{}@{}", provider.version, provider.updated_at.micros())
}

/// A kept client secret goes only where it went before: a change of client id, of catalogue
/// or custom, or of the origin of an endpoint that receives it (token, refresh, revocation)
/// needs the secret given again — a typo or a stolen admin token cannot redirect it.
fn ensure_secret_stays_put(existing: &OAuthProvider, request: &ConfigureProvider) -> Result<()> {
    let origin = |url: Option<&str>| {
        url.and_then(|u| url::Url::parse(u).ok())
            .map(|u| u.origin())
    };
    let (old, new) = (&existing.endpoints, &request.endpoints);
    let same = existing.client_id == request.client_id
        && existing.source == request.source
        && origin(Some(&old.token_url)) == origin(Some(&new.token_url))
        && origin(old.refresh_url.as_deref()) == origin(new.refresh_url.as_deref())
        && origin(old.revoke_url.as_deref()) == origin(new.revoke_url.as_deref());
    ensure(same, || {
        "this change sends the client secret elsewhere (client id, source or token, refresh or revocation endpoint); give the client secret again".into()
    })
}

fn provider_event(provider: &OAuthProvider, action: &str, at: Timestamp) -> AuditEvent {
    AuditEvent::allow(
        provider.app_id,
        at,
        action,
        Actor::operator(),
        Target {
            kind: "provider".into(),
            id: provider.id.clone(),
        },
    )
}

/// True for a provider id: lower-case letters, digits and `-`, starting with a letter or
/// digit, at most 50. Catalogue entries use the same rule, so each can be configured under
/// its own id.
pub fn is_provider_id(id: &str) -> bool {
    let mut bytes = id.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && id.len() <= MAX_ID_LEN
}

/// True for a header a provider's API calls may carry besides the token: a header name, and
/// never `Authorization` — the token is injected by the vault, a fixed header must never
/// stand in for it.
pub fn is_api_header(name: &str) -> bool {
    validate::header_name(name) && !name.eq_ignore_ascii_case("authorization")
}

fn validate_id(id: &str) -> Result<()> {
    ensure(is_provider_id(id), || {
        format!("provider id {id:?} must be 1-50 lower-case letters, digits or -")
    })
}

/// Each endpoint an absolute `https` URL without userinfo or fragment — or `http` on a
/// loopback address, for an authorization server on the same machine.
pub(crate) fn validate_endpoints(endpoints: &ProviderEndpoints) -> Result<()> {
    let urls = [
        ("issuer", endpoints.issuer.as_deref()),
        ("authorize_url", Some(endpoints.authorize_url.as_str())),
        ("token_url", Some(endpoints.token_url.as_str())),
        ("refresh_url", endpoints.refresh_url.as_deref()),
        ("revoke_url", endpoints.revoke_url.as_deref()),
        ("api_base_url", endpoints.api_base_url.as_deref()),
        (
            "account.url",
            match &endpoints.account {
                AccountSource::Userinfo { url, .. } | AccountSource::Graphql { url, .. } => {
                    Some(url.as_str())
                }
                _ => None,
            },
        ),
    ];
    let mut reaches = Vec::new();
    for (field, url) in urls {
        if let Some(url) = url {
            let reach = endpoint_reach(url).ok_or_else(|| {
                Error::Invalid(format!(
                    "{field} must be an https URL (http only on a loopback address), without userinfo or fragment, not on an internal network"
                ))
            })?;
            reaches.push(reach);
        }
    }
    // A remote provider never sends the vault to this machine, and a local one stays local.
    ensure(reaches.windows(2).all(|w| w[0] == w[1]), || {
        "the endpoints must all be on this machine (a local authorization server) or all elsewhere"
            .into()
    })?;
    ensure(
        !endpoints.scope_separator.is_empty() && endpoints.scope_separator.len() <= 4,
        || "scope_separator must be 1 to 4 characters".into(),
    )?;
    for (name, value) in &endpoints.extra_authorize_params {
        validate::bounded_text("extra_authorize_params", name, 100)?;
        validate::bounded_text("extra_authorize_params", value, 500)?;
        ensure(!RESERVED_AUTHORIZE_PARAMS.contains(&name.as_str()), || {
            format!("extra_authorize_params may not set {name:?}")
        })?;
    }
    for (name, value) in &endpoints.api_headers {
        ensure(is_api_header(name), || {
            format!("api_headers: {name:?} is not allowed")
        })?;
        validate::bounded_text("api_headers", value, 500)?;
    }
    match &endpoints.account {
        AccountSource::Userinfo { pointer, .. } | AccountSource::TokenResponse { pointer } => {
            validate::bounded_text("account.pointer", pointer, 200)?;
        }
        AccountSource::Graphql { query, pointer, .. } => {
            validate::bounded_text("account.query", query, 2000)?;
            validate::bounded_text("account.pointer", pointer, 200)?;
        }
        AccountSource::IdToken { claim } => {
            validate::bounded_text("account.claim", claim, 100)?;
        }
        AccountSource::Unknown => {}
    }
    Ok(())
}

/// Where an endpoint points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// This machine: a local authorization server (development, tests).
    Loopback,
    /// Somewhere else.
    Remote,
}

/// Where `text` points, if it is an endpoint the vault may call: `https` — or plain `http` to a
/// loopback address — without userinfo or fragment, and never an address of a private,
/// link-local or otherwise internal network (the vault sends its client secret and users'
/// tokens there).
fn endpoint_reach(text: &str) -> Option<Reach> {
    let url = url::Url::parse(text).ok()?;
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return None;
    }
    let ip = match url.host()? {
        url::Host::Ipv4(ip) => Some(std::net::IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(std::net::IpAddr::V6(ip)),
        url::Host::Domain(domain) => {
            if domain.eq_ignore_ascii_case("localhost") {
                return None;
            }
            None
        }
    };
    let reach = match ip {
        Some(ip) if ip.is_loopback() => Reach::Loopback,
        Some(ip) if internal(ip) => return None,
        _ => Reach::Remote,
    };
    match (url.scheme(), reach) {
        ("https", _) | ("http", Reach::Loopback) => Some(reach),
        _ => None,
    }
}

/// Addresses of networks no provider lives on: private, link-local (cloud metadata),
/// unique-local, unspecified, multicast, broadcast, documentation.
fn internal(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])
        }
        std::net::IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| internal(v4.into()) || v4.is_loopback())
        }
    }
}

fn validate_scopes(scopes: &[String]) -> Result<Vec<String>> {
    ensure(scopes.len() <= MAX_SCOPES, || {
        format!("at most {MAX_SCOPES} scopes")
    })?;
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for scope in scopes {
        ensure(
            !scope.is_empty()
                && scope.len() <= 200
                && scope.bytes().all(|b| b.is_ascii_graphic() && b != b','),
            || format!("scope {scope:?} must be 1-200 visible characters, without commas"),
        )?;
        if !out.contains(scope) {
            out.push(scope.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> ProviderEndpoints {
        ProviderEndpoints {
            issuer: Some("https://accounts.example.com".into()),
            authorize_url: "https://accounts.example.com/authorize".into(),
            token_url: "https://accounts.example.com/token".into(),
            refresh_url: None,
            revoke_url: None,
            pkce: true,
            scope_separator: " ".into(),
            refresh: RefreshBehaviour::Rotating,
            extra_authorize_params: BTreeMap::new(),
            account: AccountSource::IdToken {
                claim: "email".into(),
            },
            api_base_url: None,
            api_headers: BTreeMap::new(),
        }
    }

    #[test]
    fn ids_are_slugs() {
        for ok in ["google", "acme-2", "x"] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Google", "-x", "a b", "a_b", &"a".repeat(51)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints_are_https_or_loopback_http() {
        assert!(validate_endpoints(&endpoints()).is_ok());
        let local = ProviderEndpoints {
            issuer: Some("http://127.0.0.1:4000".into()),
            authorize_url: "http://127.0.0.1:4000/auth".into(),
            token_url: "http://127.0.0.1:4000/token".into(),
            ..endpoints()
        };
        assert!(validate_endpoints(&local).is_ok());
        let reserved = ProviderEndpoints {
            extra_authorize_params: [("redirect_uri".to_string(), "https://x".to_string())].into(),
            ..endpoints()
        };
        assert!(validate_endpoints(&reserved).is_err());
        let header = ProviderEndpoints {
            api_headers: [("Authorization".to_string(), "Bearer x".to_string())].into(),
            ..endpoints()
        };
        assert!(validate_endpoints(&header).is_err());
        for bad in [
            "http://accounts.example.com/authorize",
            "https://user:pw@accounts.example.com/authorize",
            "https://accounts.example.com/authorize#x",
            "accounts.example.com/authorize",
            "ftp://accounts.example.com/",
            "https://10.0.0.7/authorize",
            "https://169.254.169.254/latest",
            "https://[fd00::1]/authorize",
            "https://[::ffff:192.168.1.1]/authorize",
            "https://localhost/authorize",
            // A remote provider pointing one endpoint at this machine.
            "http://127.0.0.1:6379/",
        ] {
            let e = ProviderEndpoints {
                authorize_url: bad.into(),
                ..endpoints()
            };
            assert!(validate_endpoints(&e).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_are_deduplicated_and_bounded() {
        let scopes = ["openid".to_string(), "files.read".into(), "openid".into()];
        assert_eq!(
            validate_scopes(&scopes).unwrap(),
            vec!["openid".to_string(), "files.read".into()]
        );
        assert!(validate_scopes(&["a b".to_string()]).is_err());
        assert!(validate_scopes(&["".to_string()]).is_err());
    }

    #[test]
    fn endpoints_read_back_as_stored() {
        let stored = serde_json::to_value(endpoints()).unwrap();
        let back: ProviderEndpoints = serde_json::from_value(stored).unwrap();
        assert_eq!(back, endpoints());
    }
}
