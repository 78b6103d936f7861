//! OAuth providers on the operator admin API (`/admin/v1/apps/{app}/providers/{provider}`).
//! Alter's own protocol: the official client never calls it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::redact_option;

/// Where a connection's account identifier comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum AccountSourceBody {
    /// A `GET` of the userinfo endpoint; the identifier at a JSON Pointer.
    Userinfo {
        /// The endpoint.
        url: String,
        /// JSON Pointer to the identifier.
        pointer: String,
    },
    /// An ID-token claim.
    IdToken {
        /// The claim.
        claim: String,
    },
    /// A GraphQL query; the identifier at a JSON Pointer.
    Graphql {
        /// The endpoint.
        url: String,
        /// The query.
        query: String,
        /// JSON Pointer to the identifier.
        pointer: String,
    },
    /// A member of the token endpoint's answer.
    TokenResponse {
        /// JSON Pointer to the identifier.
        pointer: String,
    },
    /// None.
    Unknown,
}

/// A provider's endpoints and behaviour, as the admin API shows them and as an operator
/// describes a custom provider.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// Refresh endpoint, when it is not the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_url: Option<String>,
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
    /// Headers every API call needs besides the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_headers: Option<BTreeMap<String, String>>,
}

/// `PUT /admin/v1/apps/{app}/providers/{provider}`: configures a provider of the built-in
/// catalogue (no `endpoints`; `params` fill its placeholders, e.g. a Shopify shop) or a custom
/// one (`endpoints` with the authorization and token URLs, or only an `issuer` to discover them
/// from). Without `client_secret`, a reconfiguration keeps the stored one.
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// Values of a catalogue provider's placeholders (`tenant`, `shop`, `subdomain`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<BTreeMap<String, String>>,
    /// The version read: the change is refused (409) if the provider changed since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
}

impl fmt::Debug for ConfigureProviderRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigureProviderRequest")
            .field("display_name", &self.display_name)
            .field("client_id", &self.client_id)
            .field("client_secret", &redact_option(self.client_secret.as_ref()))
            .field("scopes", &self.scopes)
            .field("endpoints", &self.endpoints)
            .field("params", &self.params)
            .field("expected_version", &self.expected_version)
            .finish()
    }
}

/// A configured provider as shown: never its client secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProviderList {
    /// The app's providers, by id.
    pub items: Vec<ProviderInfo>,
}

/// One scope a provider offers, as the official client reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScopeInfo {
    /// What it allows.
    pub description: String,
    /// Every connection asks for it.
    pub required: bool,
    /// Asked for when the caller names no scopes.
    pub is_default: bool,
    /// Scopes that must be asked for with it.
    pub requires: Vec<String>,
}

/// A connectable provider in `GET /sdk/oauth/provider-catalog` (protocol part 1 §7.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CatalogEntry {
    /// Provider id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Name shown to people.
    pub display_name: String,
    /// `active`.
    pub status: String,
    /// It issues refresh tokens.
    pub supports_refresh: bool,
    /// It accepts PKCE.
    pub supports_pkce: bool,
    /// Scopes it offers.
    pub available_scopes: BTreeMap<String, ScopeInfo>,
    /// Scopes asked for by default.
    pub default_scopes: Vec<String>,
    /// Scopes every connection asks for.
    pub required_scopes: Vec<String>,
    /// Category.
    pub category: Option<String>,
    /// One sentence on what connecting gives access to.
    pub description: Option<String>,
    /// Logo.
    pub logo_url: Option<String>,
}

/// `GET /sdk/oauth/provider-catalog`: the app's connectable providers, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProviderCatalog {
    /// By id.
    pub providers: BTreeMap<String, CatalogEntry>,
}

/// A provider of the built-in catalogue, as `GET /admin/v1/catalog/providers` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BuiltinProvider {
    /// Provider id: configure it under this id to use the catalogue's description.
    pub id: String,
    /// Name shown to people.
    pub display_name: String,
    /// Category.
    pub category: String,
    /// One sentence on what connecting gives access to.
    pub description: String,
    /// Values the operator gives when configuring it (`params`), e.g. a shop or tenant.
    pub placeholders: Vec<String>,
    /// Scopes asked for by default.
    pub default_scopes: Vec<String>,
    /// It accepts PKCE.
    pub supports_pkce: bool,
    /// `none`, `rotating` or `non_rotating`.
    pub refresh: String,
}

/// `GET /admin/v1/catalog/providers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BuiltinProviderList {
    /// By id.
    pub items: Vec<BuiltinProvider>,
}
