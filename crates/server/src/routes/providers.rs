//! OAuth providers: `/admin/v1/apps/{app}/providers/*` (the providers an app is configured
//! for), `/admin/v1/catalog/providers` (the built-in catalogue) and `GET
//! /sdk/oauth/provider-catalog` (the app's connectable providers, as the official client reads
//! them).

use std::collections::BTreeMap;

use alter_core::Error;
use alter_core::providers::{
    AccountSource, ConfigureProvider, OAuthProvider, ProviderEndpoints, ProviderSource,
    RefreshBehaviour,
};
use alter_crypto::SecretString;
use alter_proto::providers::{
    AccountSourceBody, BuiltinProvider, BuiltinProviderList, CatalogEntry,
    ConfigureProviderRequest, EndpointsBody, ProviderCatalog, ProviderInfo, ProviderList,
    ScopeInfo,
};
use alter_upstream::catalog::{self, CatalogProvider};
use axum::extract::{Path, State};

use super::admin::app_id;
use crate::auth::{Authed, Operator, need};
use crate::error::ApiResult;
use crate::json::Json;
use crate::state::AppState;

pub(super) async fn list(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
) -> ApiResult<axum::Json<ProviderList>> {
    let providers = state.vault.list_providers(app_id(&app)?).await?;
    Ok(axum::Json(ProviderList {
        items: providers.iter().map(|p| info(&state, p)).collect(),
    }))
}

pub(super) async fn get(
    State(state): State<AppState>,
    _: Operator,
    Path((app, provider)): Path<(String, String)>,
) -> ApiResult<axum::Json<ProviderInfo>> {
    let provider = state.vault.get_provider(app_id(&app)?, &provider).await?;
    Ok(axum::Json(info(&state, &provider)))
}

pub(super) async fn configure(
    State(state): State<AppState>,
    _: Operator,
    Path((app, provider)): Path<(String, String)>,
    Json(body): Json<ConfigureProviderRequest>,
) -> ApiResult<axum::Json<ProviderInfo>> {
    let request = configure_request(&state, provider, body).await?;
    let provider = state
        .vault
        .configure_provider(app_id(&app)?, request)
        .await?;
    Ok(axum::Json(info(&state, &provider)))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    _: Operator,
    Path((app, provider)): Path<(String, String)>,
) -> ApiResult<axum::Json<ProviderInfo>> {
    let removed = state
        .vault
        .delete_provider(app_id(&app)?, &provider)
        .await?;
    Ok(axum::Json(info(&state, &removed)))
}

/// `GET /admin/v1/catalog/providers`: the built-in catalogue.
pub(super) async fn builtin(_: Operator) -> axum::Json<BuiltinProviderList> {
    let items = catalog::catalog()
        .iter()
        .map(|p| BuiltinProvider {
            id: p.id.clone(),
            display_name: p.display_name.clone(),
            category: p.category.clone(),
            description: p.description.clone(),
            placeholders: p.placeholders.keys().cloned().collect(),
            default_scopes: p.default_scopes.clone(),
            supports_pkce: p.supports_pkce,
            refresh: p.refresh.as_str().to_owned(),
        })
        .collect();
    axum::Json(BuiltinProviderList { items })
}

/// `GET /sdk/oauth/provider-catalog`: the providers the app can connect to.
pub async fn connectable(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::ProvidersRead>,
) -> ApiResult<axum::Json<ProviderCatalog>> {
    let providers = state.vault.list_providers(caller.app_id).await?;
    Ok(axum::Json(ProviderCatalog {
        providers: providers
            .iter()
            .map(|p| (p.id.clone(), catalog_entry(p)))
            .collect(),
    }))
}

/// A configured provider as the official client's catalogue shows it: the built-in
/// catalogue's scope descriptions where it comes from there, the configured scopes otherwise.
fn catalog_entry(provider: &OAuthProvider) -> CatalogEntry {
    let builtin = match provider.source {
        ProviderSource::Catalog => catalog::find(&provider.id),
        ProviderSource::Custom => None,
    };
    let default = |scope: &str| provider.scopes.iter().any(|s| s == scope);
    let mut available: BTreeMap<String, ScopeInfo> = builtin
        .map(|b| {
            b.scopes
                .iter()
                .map(|(name, scope)| {
                    let info = ScopeInfo {
                        description: scope.description.clone(),
                        required: scope.required,
                        is_default: default(name),
                        requires: scope.requires.clone(),
                    };
                    (name.clone(), info)
                })
                .collect()
        })
        .unwrap_or_default();
    for scope in &provider.scopes {
        available.entry(scope.clone()).or_insert_with(|| ScopeInfo {
            description: String::new(),
            required: false,
            is_default: true,
            requires: Vec::new(),
        });
    }
    CatalogEntry {
        id: provider.id.clone(),
        name: provider.id.clone(),
        display_name: provider.display_name.clone(),
        status: "active".into(),
        supports_refresh: provider.endpoints.refresh != RefreshBehaviour::None,
        supports_pkce: provider.endpoints.pkce,
        required_scopes: available
            .iter()
            .filter(|(_, s)| s.required)
            .map(|(name, _)| name.clone())
            .collect(),
        available_scopes: available,
        default_scopes: provider.scopes.clone(),
        category: builtin.map(|b| b.category.clone()),
        description: builtin.map(|b| b.description.clone()),
        logo_url: None,
    }
}

/// The domain request: a catalogue provider under its own id (its endpoints filled in with
/// `params`), or a custom one described by its endpoints or discovered from its issuer.
pub(crate) async fn configure_request(
    state: &AppState,
    id: String,
    body: ConfigureProviderRequest,
) -> Result<ConfigureProvider, Error> {
    let (source, endpoints, display_name, default_scopes) = match (
        body.endpoints,
        catalog::find(&id),
    ) {
        (None, Some(builtin)) => (
            ProviderSource::Catalog,
            catalog_endpoints(builtin, &body.params.unwrap_or_default())?,
            builtin.display_name.clone(),
            builtin.default_scopes.clone(),
        ),
        (None, None) => {
            return Err(Error::Invalid(format!(
                "{id:?} is not in the built-in catalogue; describe it with endpoints (authorize_url and token_url, or an issuer to discover them from)"
            )));
        }
        (Some(described), _) => {
            if body.params.is_some() {
                return Err(Error::Invalid(
                    "params fill a catalogue provider's placeholders; a custom provider takes its URLs in endpoints".into(),
                ));
            }
            let endpoints = match (
                &described.authorize_url,
                &described.token_url,
                &described.issuer,
            ) {
                (None, None, Some(issuer)) => discovered(state, issuer.clone(), described).await?,
                _ => custom_endpoints(described)?,
            };
            (ProviderSource::Custom, endpoints, id.clone(), Vec::new())
        }
    };
    Ok(ConfigureProvider {
        display_name: body.display_name.unwrap_or(display_name),
        source,
        endpoints,
        client_id: body.client_id,
        client_secret: body.client_secret.map(SecretString::from),
        scopes: body.scopes.unwrap_or(default_scopes),
        expected_version: body.expected_version,
        id,
    })
}

/// A catalogue provider's endpoints with the operator's placeholder values filled in.
fn catalog_endpoints(
    builtin: &CatalogProvider,
    params: &BTreeMap<String, String>,
) -> Result<ProviderEndpoints, Error> {
    let urls = builtin
        .endpoints(params)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let account_url = urls.account_url.map(String::from).unwrap_or_default();
    Ok(ProviderEndpoints {
        issuer: None,
        authorize_url: urls.authorize_url.into(),
        token_url: urls.token_url.to_string(),
        refresh_url: builtin
            .refresh_url
            .is_some()
            .then(|| urls.refresh_url.to_string()),
        revoke_url: urls.revoke_url.map(String::from),
        pkce: builtin.supports_pkce,
        scope_separator: builtin.scope_separator.as_str().to_owned(),
        refresh: builtin.refresh,
        extra_authorize_params: builtin.extra_authorize_params.clone(),
        // The account URL with the placeholders filled in.
        account: match builtin.account.clone() {
            AccountSource::Userinfo { pointer, .. } => AccountSource::Userinfo {
                url: account_url,
                pointer,
            },
            AccountSource::Graphql { query, pointer, .. } => AccountSource::Graphql {
                url: account_url,
                query,
                pointer,
            },
            other => other,
        },
        api_base_url: Some(urls.api_base_url.into()),
        api_headers: builtin.api_headers.clone(),
    })
}

/// A custom provider's endpoints read from its issuer's discovery document; what the operator
/// said besides the issuer (refresh behaviour, account source…) still applies.
async fn discovered(
    state: &AppState,
    issuer: String,
    described: EndpointsBody,
) -> Result<ProviderEndpoints, Error> {
    let found = state
        .discovery
        .discover(&issuer)
        .await
        .map_err(|why| Error::Invalid(format!("discovery of {issuer}: {why}")))?;
    let account = match described.account {
        Some(account) => Some(account),
        None => Some(AccountSourceBody::IdToken {
            claim: "sub".into(),
        }),
    };
    custom_endpoints(EndpointsBody {
        issuer: Some(found.issuer),
        authorize_url: Some(found.authorization_endpoint),
        token_url: Some(found.token_endpoint),
        revoke_url: described.revoke_url.or(found.revocation_endpoint),
        // PKCE unless the operator says the provider refuses it: many providers accept S256
        // without announcing it in their discovery document.
        pkce: Some(described.pkce.unwrap_or(true)),
        account,
        ..described
    })
}

/// A custom provider's endpoints, with the defaults for what was left out.
fn custom_endpoints(body: EndpointsBody) -> Result<ProviderEndpoints, Error> {
    let required = |value: Option<String>, field: &str| {
        value.ok_or_else(|| Error::Invalid(format!("endpoints.{field} is required")))
    };
    let refresh = match body.refresh.as_deref() {
        None => RefreshBehaviour::default(),
        Some(text) => RefreshBehaviour::parse(text).ok_or_else(|| {
            Error::Invalid(format!(
                "endpoints.refresh {text:?}: use none, rotating or non_rotating"
            ))
        })?,
    };
    Ok(ProviderEndpoints {
        issuer: body.issuer,
        authorize_url: required(body.authorize_url, "authorize_url")?,
        token_url: required(body.token_url, "token_url")?,
        revoke_url: body.revoke_url,
        pkce: body.pkce.unwrap_or(true),
        scope_separator: body.scope_separator.unwrap_or_else(|| " ".into()),
        refresh,
        extra_authorize_params: body.extra_authorize_params.unwrap_or_default(),
        account: match body.account {
            None | Some(AccountSourceBody::Unknown) => AccountSource::Unknown,
            Some(AccountSourceBody::Userinfo { url, pointer }) => {
                AccountSource::Userinfo { url, pointer }
            }
            Some(AccountSourceBody::IdToken { claim }) => AccountSource::IdToken { claim },
            Some(AccountSourceBody::Graphql {
                url,
                query,
                pointer,
            }) => AccountSource::Graphql {
                url,
                query,
                pointer,
            },
            Some(AccountSourceBody::TokenResponse { pointer }) => {
                AccountSource::TokenResponse { pointer }
            }
        },
        api_base_url: body.api_base_url,
        refresh_url: body.refresh_url,
        api_headers: body.api_headers.unwrap_or_default(),
    })
}

/// A provider as the admin API shows it: never its client secret.
fn info(state: &AppState, provider: &OAuthProvider) -> ProviderInfo {
    let e = &provider.endpoints;
    ProviderInfo {
        id: provider.id.clone(),
        display_name: provider.display_name.clone(),
        source: provider.source.as_str().to_owned(),
        client_id: provider.client_id.clone(),
        scopes: provider.scopes.clone(),
        endpoints: EndpointsBody {
            issuer: e.issuer.clone(),
            authorize_url: Some(e.authorize_url.clone()),
            token_url: Some(e.token_url.clone()),
            revoke_url: e.revoke_url.clone(),
            pkce: Some(e.pkce),
            scope_separator: Some(e.scope_separator.clone()),
            refresh: Some(e.refresh.as_str().into()),
            extra_authorize_params: Some(e.extra_authorize_params.clone()),
            account: Some(match &e.account {
                AccountSource::Userinfo { url, pointer } => AccountSourceBody::Userinfo {
                    url: url.clone(),
                    pointer: pointer.clone(),
                },
                AccountSource::IdToken { claim } => AccountSourceBody::IdToken {
                    claim: claim.clone(),
                },
                AccountSource::Graphql {
                    url,
                    query,
                    pointer,
                } => AccountSourceBody::Graphql {
                    url: url.clone(),
                    query: query.clone(),
                    pointer: pointer.clone(),
                },
                AccountSource::TokenResponse { pointer } => AccountSourceBody::TokenResponse {
                    pointer: pointer.clone(),
                },
                AccountSource::Unknown => AccountSourceBody::Unknown,
            }),
            api_base_url: e.api_base_url.clone(),
            refresh_url: e.refresh_url.clone(),
            api_headers: Some(e.api_headers.clone()),
        },
        redirect_uri: state.oauth_redirect_uri(),
        version: provider.version,
        created_at: provider.created_at.to_rfc3339(),
        updated_at: provider.updated_at.to_rfc3339(),
    }
}
