//! OAuth providers on the operator admin API (`/admin/v1/apps/{app}/providers/{provider}`).
//! Alter's own protocol: the official client never calls it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::redact_option;

/// Where a connection's account identifier comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case", deny_unknown_fields)]
pub enum AccountSourceBody {
    /// A field of the userinfo endpoint's JSON.
    Userinfo {
        /// The endpoint.
        url: String,
        /// The field.
        field: String,
    },
    /// An ID-token claim.
    IdToken {
        /// The claim.
        claim: String,
    },
    /// None.
    Unknown,
}

/// A provider's endpoints and behaviour, as the admin API shows them and as an operator
/// describes a custom provider.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointsBody {
    /// The authorization server's issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    /// Token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// Revocation endpoint (RFC 7009).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_url: Option<String>,
    /// PKCE (S256) supported; default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkce: Option<bool>,
    /// What joins scopes; default a space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_separator: Option<String>,
    /// `none`, `rotating` (default) or `non_rotating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
    /// Parameters every authorization request carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_authorize_params: Option<BTreeMap<String, String>>,
    /// Where the account identifier comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountSourceBody>,
    /// The API the tokens are for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<String>,
}

/// `PUT /admin/v1/apps/{app}/providers/{provider}`: configures a provider of the built-in
/// catalogue (no `endpoints`) or a custom one (`endpoints` with at least the authorization and
/// token URLs). Without `client_secret`, a reconfiguration keeps the stored one.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigureProviderRequest {
    /// Display name; defaults to the catalogue's name, or the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The app's client id at the provider.
    pub client_id: String,
    /// The app's client secret at the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Scopes connections ask for by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// A custom provider's endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<EndpointsBody>,
}

impl fmt::Debug for ConfigureProviderRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigureProviderRequest")
            .field("display_name", &self.display_name)
            .field("client_id", &self.client_id)
            .field("client_secret", &redact_option(self.client_secret.as_ref()))
            .field("scopes", &self.scopes)
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

/// A configured provider as shown: never its client secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderInfo {
    /// Id within the app (`provider_id`).
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// `catalog` or `custom`.
    pub source: String,
    /// The app's client id.
    pub client_id: String,
    /// Default scopes.
    pub scopes: Vec<String>,
    /// Endpoints and behaviour.
    pub endpoints: EndpointsBody,
    /// The redirect URI to register at the provider.
    pub redirect_uri: String,
    /// Bumped by every change.
    pub version: i64,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// `GET /admin/v1/apps/{app}/providers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderList {
    /// The app's providers, by id.
    pub items: Vec<ProviderInfo>,
}
