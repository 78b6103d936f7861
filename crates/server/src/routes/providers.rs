//! `/admin/v1/apps/{app}/providers/*`: the OAuth providers an app is configured for.

use alter_core::Error;
use alter_core::providers::{
    AccountSource, ConfigureProvider, OAuthProvider, ProviderEndpoints, ProviderSource,
    RefreshBehaviour,
};
use alter_crypto::SecretString;
use alter_proto::providers::{
    AccountSourceBody, ConfigureProviderRequest, EndpointsBody, ProviderInfo, ProviderList,
};
use axum::extract::{Path, State};

use super::admin::app_id;
use crate::auth::Operator;
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
    let request = configure_request(provider, body)?;
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

/// The domain request: a custom provider described by its endpoints.
fn configure_request(
    id: String,
    body: ConfigureProviderRequest,
) -> Result<ConfigureProvider, Error> {
    let Some(described) = body.endpoints else {
        return Err(Error::Invalid(format!(
            "{id:?} is not in the built-in catalogue; describe it with endpoints (authorize_url and token_url at least)"
        )));
    };
    Ok(ConfigureProvider {
        display_name: body.display_name.unwrap_or_else(|| id.clone()),
        source: ProviderSource::Custom,
        endpoints: custom_endpoints(described)?,
        client_id: body.client_id,
        client_secret: body.client_secret.map(SecretString::from),
        scopes: body.scopes.unwrap_or_default(),
        id,
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
            Some(AccountSourceBody::Userinfo { url, field }) => {
                AccountSource::Userinfo { url, field }
            }
            Some(AccountSourceBody::IdToken { claim }) => AccountSource::IdToken { claim },
        },
        api_base_url: body.api_base_url,
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
                AccountSource::Userinfo { url, field } => AccountSourceBody::Userinfo {
                    url: url.clone(),
                    field: field.clone(),
                },
                AccountSource::IdToken { claim } => AccountSourceBody::IdToken {
                    claim: claim.clone(),
                },
                AccountSource::Unknown => AccountSourceBody::Unknown,
            }),
            api_base_url: e.api_base_url.clone(),
        },
        redirect_uri: state.oauth_redirect_uri(),
        version: provider.version,
        created_at: provider.created_at.to_rfc3339(),
        updated_at: provider.updated_at.to_rfc3339(),
    }
}
