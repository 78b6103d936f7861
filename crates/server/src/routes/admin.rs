//! `/admin/v1/*`: the operator API (Bearer admin token): apps and their keys, the identity
//! provider, managed secrets, agents, and grants and their delegations.

use alter_core::Error;
use alter_core::agents::{AgentStatus, AgentUpdate};
use alter_core::apps::App;
use alter_core::grants::{GrantFilter, GrantView, ListGrants, PrincipalType};
use alter_core::identity::IdpSettings;
use alter_core::ids::AppId;
use alter_core::keys::{MintKey, Overlap};
use alter_core::secrets::{InjectionRule, InjectionTarget, NewSecret, SecretLimits};
use alter_core::subject::Subject;
use alter_crypto::SecretString;
use alter_proto::admin::{
    AppInfo, CreateAppRequest, CreateDelegationRequest, CreateSecretRequest, IdpInfo, IdpRequest,
    ItemList, MintKeyRequest, RevokeRequest, RotateAppKeyRequest, RotateSecretRequest,
    SecretHostsRequest, SecretInfo,
};
use alter_proto::agents::{AgentInfo, AgentList};
use alter_proto::grants::{DelegationResult, GrantList};
use alter_proto::keys::{ApiKeyInfo, MintedKey};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use serde::Deserialize;

use super::grants::parse_state;
use super::keys::{key_info, minted};
use super::{agents, grants, id, views};
use crate::auth::Operator;
use crate::error::{ApiError, ApiResult};
use crate::json::{Json, Query};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps", post(create_app).get(list_apps))
        .route("/apps/{app}", get(get_app))
        .route("/apps/{app}/keys", post(mint_key).get(list_keys))
        .route("/apps/{app}/keys/{key}", delete(revoke_key))
        .route("/apps/{app}/keys/{key}/rotate", post(rotate_key))
        .route("/apps/{app}/idp", put(set_idp).get(get_idp))
        .route(
            "/apps/{app}/idp/events-secret",
            post(super::idp_events::rotate_secret),
        )
        .route(
            "/apps/{app}/idp/events-secret/previous",
            delete(super::idp_events::end_previous_secret),
        )
        .route(
            "/apps/{app}/idp/sign-in",
            put(super::signin::configure).get(super::signin::get),
        )
        .route("/apps/{app}/secrets", post(create_secret).get(list_secrets))
        .route(
            "/apps/{app}/secrets/{secret}",
            get(get_secret).delete(delete_secret),
        )
        .route("/apps/{app}/secrets/{secret}/rotate", post(rotate_secret))
        .route("/apps/{app}/secrets/{secret}/hosts", put(set_secret_hosts))
        .route("/catalog/providers", get(super::providers::builtin))
        .route("/apps/{app}/providers", get(super::providers::list))
        .route(
            "/apps/{app}/providers/{provider}",
            get(super::providers::get)
                .put(super::providers::configure)
                .delete(super::providers::delete),
        )
        .route(
            "/apps/{app}/provider-specs",
            get(super::provider_specs::admin_list),
        )
        .route(
            "/apps/{app}/provider-specs/{kind}/{provider}",
            get(super::provider_specs::admin_get)
                .put(super::provider_specs::import)
                .delete(super::provider_specs::delete),
        )
        .route("/apps/{app}/agents", get(list_agents))
        .route(
            "/apps/{app}/agents/{agent}",
            get(get_agent).delete(delete_agent),
        )
        .route("/apps/{app}/agents/{agent}/pause", post(pause_agent))
        .route("/apps/{app}/agents/{agent}/resume", post(resume_agent))
        .route("/apps/{app}/grants", get(list_grants))
        .route("/apps/{app}/grants/{grant}/revoke", post(revoke_grant))
        .route(
            "/apps/{app}/grants/{grant}/scope-mismatch",
            delete(clear_scope_mismatch),
        )
        .route(
            "/apps/{app}/grants/{grant}/delegations",
            post(delegate_grant),
        )
        .route("/apps/{app}/audit", get(super::audit::list))
        .route(
            "/apps/{app}/audit/checkpoint",
            get(super::audit::checkpoint),
        )
        .route("/apps/{app}/audit/verify", post(super::audit::verify))
        .route("/apps/{app}/traces/{trace_id}", get(super::audit::trace))
}

fn app_info(app: &App) -> AppInfo {
    AppInfo {
        id: app.id.to_string(),
        name: app.name.clone(),
        created_at: app.created_at.to_rfc3339(),
    }
}

/// An app id from the path; anything else is an unknown app.
pub(super) fn app_id(text: &str) -> Result<AppId, Error> {
    id(text)
}

/// The operator acting on the app the path names.
fn operator(app: &str) -> Result<Subject<'static>, Error> {
    Ok(Subject::Operator { app: app_id(app)? })
}

async fn create_app(
    State(state): State<AppState>,
    _: Operator,
    Json(body): Json<CreateAppRequest>,
) -> ApiResult<(StatusCode, axum::Json<AppInfo>)> {
    let app = state.vault.create_app(&body.name).await?;
    Ok((StatusCode::CREATED, axum::Json(app_info(&app))))
}

async fn list_apps(
    State(state): State<AppState>,
    _: Operator,
) -> ApiResult<axum::Json<ItemList<AppInfo>>> {
    let apps = state.vault.list_apps().await?;
    Ok(axum::Json(ItemList {
        items: apps.iter().map(app_info).collect(),
    }))
}

async fn get_app(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
) -> ApiResult<axum::Json<AppInfo>> {
    let app = state.vault.get_app(app_id(&app)?).await?;
    Ok(axum::Json(app_info(&app)))
}

async fn mint_key(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
    Json(body): Json<MintKeyRequest>,
) -> ApiResult<(StatusCode, axum::Json<MintedKey>)> {
    let new = state
        .vault
        .mint_app_key(
            app_id(&app)?,
            MintKey {
                name: body.name,
                key_type: body.key_type,
                scopes: body.scopes,
                cidr_allowlist: body.cidr_allowlist,
                expires_in: body.expires_in,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(minted(&new))))
}

async fn list_keys(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
) -> ApiResult<axum::Json<ItemList<ApiKeyInfo>>> {
    let keys = state.vault.list_app_keys(app_id(&app)?).await?;
    Ok(axum::Json(ItemList {
        items: keys.iter().map(key_info).collect(),
    }))
}

async fn revoke_key(
    State(state): State<AppState>,
    _: Operator,
    Path((app, key)): Path<(String, String)>,
) -> ApiResult<axum::Json<ApiKeyInfo>> {
    // The operator's revoke has no last-key guard: it always forces.
    let key = state
        .vault
        .revoke_key(&operator(&app)?, id(&key)?, true)
        .await?;
    Ok(axum::Json(key_info(&key)))
}

async fn rotate_key(
    State(state): State<AppState>,
    _: Operator,
    Path((app, key)): Path<(String, String)>,
    Json(body): Json<RotateAppKeyRequest>,
) -> ApiResult<(StatusCode, axum::Json<MintedKey>)> {
    let overlap = Overlap::Seconds(body.grace_seconds);
    let new = state
        .vault
        .rotate_key(&operator(&app)?, id(&key)?, overlap)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(minted(&new))))
}

async fn set_idp(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
    Json(body): Json<IdpRequest>,
) -> ApiResult<axum::Json<IdpInfo>> {
    let idp = state
        .vault
        .set_idp(
            app_id(&app)?,
            IdpSettings {
                issuer: body.issuer,
                audiences: body.audiences,
                jwks_url: body.jwks_url,
                jwks_inline: body.jwks,
                algorithms: body.algorithms,
                subject_claim: body.subject_claim,
                groups_claim: body.groups_claim,
                email_claim: body.email_claim,
                name_claim: body.name_claim,
                leeway_seconds: body.leeway_seconds,
            },
        )
        .await?;
    Ok(axum::Json(views::idp_info(&idp)))
}

async fn get_idp(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
) -> ApiResult<axum::Json<IdpInfo>> {
    let idp = state.vault.get_idp(app_id(&app)?).await?;
    Ok(axum::Json(views::idp_info(&idp)))
}

async fn create_secret(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
    Json(body): Json<CreateSecretRequest>,
) -> ApiResult<(StatusCode, axum::Json<SecretInfo>)> {
    let principals = body
        .principals
        .iter()
        .map(|p| {
            PrincipalType::parse(p).ok_or_else(|| {
                ApiError::invalid(format!("principal {p:?}: use user, group, system or agent"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let secret = state
        .vault
        .create_secret(
            app_id(&app)?,
            NewSecret {
                name: body.name,
                secret_type: body.secret_type,
                header: body.header,
                param: body.param,
                rules: body
                    .rules
                    .into_iter()
                    .map(|r| {
                        let target = match r.target.as_str() {
                            "header" => InjectionTarget::Header,
                            "query" => InjectionTarget::Query,
                            other => {
                                return Err(ApiError::invalid(format!(
                                    "rule target {other:?}: use header or query"
                                )));
                            }
                        };
                        Ok(InjectionRule {
                            target,
                            name: r.name,
                            field: r.field,
                        })
                    })
                    .collect::<Result<_, _>>()?,
                allowed_hosts: body.allowed_hosts,
                limits: SecretLimits {
                    max_grant_ttl_seconds: body.max_grant_ttl_seconds,
                    principals,
                    delegation: body.delegation.unwrap_or(true),
                    max_delegation_ttl_seconds: body.max_delegation_ttl_seconds,
                },
                value: SecretString::from(body.value),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(views::secret_info(&secret))))
}

async fn list_secrets(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
) -> ApiResult<axum::Json<ItemList<SecretInfo>>> {
    let secrets = state.vault.list_secrets(app_id(&app)?).await?;
    Ok(axum::Json(ItemList {
        items: secrets.iter().map(views::secret_info).collect(),
    }))
}

async fn get_secret(
    State(state): State<AppState>,
    _: Operator,
    Path((app, secret)): Path<(String, String)>,
) -> ApiResult<axum::Json<SecretInfo>> {
    let secret = state.vault.get_secret(app_id(&app)?, &secret).await?;
    Ok(axum::Json(views::secret_info(&secret)))
}

async fn rotate_secret(
    State(state): State<AppState>,
    _: Operator,
    Path((app, secret)): Path<(String, String)>,
    Json(body): Json<RotateSecretRequest>,
) -> ApiResult<axum::Json<SecretInfo>> {
    let secret = state
        .vault
        .rotate_secret(app_id(&app)?, &secret, SecretString::from(body.value))
        .await?;
    Ok(axum::Json(views::secret_info(&secret)))
}

async fn set_secret_hosts(
    State(state): State<AppState>,
    _: Operator,
    Path((app, secret)): Path<(String, String)>,
    Json(body): Json<SecretHostsRequest>,
) -> ApiResult<axum::Json<SecretInfo>> {
    let secret = state
        .vault
        .set_secret_hosts(app_id(&app)?, &secret, body.allowed_hosts)
        .await?;
    Ok(axum::Json(views::secret_info(&secret)))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Confirm {
    confirm: String,
}

async fn delete_secret(
    State(state): State<AppState>,
    _: Operator,
    Path((app, secret)): Path<(String, String)>,
    Query(query): Query<Confirm>,
) -> ApiResult<axum::Json<SecretInfo>> {
    let secret = state
        .vault
        .delete_secret(app_id(&app)?, &secret, &query.confirm)
        .await?;
    Ok(axum::Json(views::secret_info(&secret)))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AgentPage {
    #[serde(default)]
    include_revoked: Option<bool>,
    #[serde(default = "super::default_page_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

async fn list_agents(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
    Query(page): Query<AgentPage>,
) -> ApiResult<axum::Json<AgentList>> {
    let include_revoked = page.include_revoked.unwrap_or(false);
    let subject = operator(&app)?;
    agents::page(&state, &subject, include_revoked, page.limit, page.offset).await
}

async fn get_agent(
    State(state): State<AppState>,
    _: Operator,
    Path((app, agent)): Path<(String, String)>,
) -> ApiResult<axum::Json<AgentInfo>> {
    let agent = state.vault.get_agent(&operator(&app)?, id(&agent)?).await;
    agents::answer(agent)
}

async fn pause_agent(
    state: State<AppState>,
    operator: Operator,
    path: Path<(String, String)>,
) -> ApiResult<axum::Json<AgentInfo>> {
    set_agent_status(state, operator, path, AgentStatus::Inactive).await
}

async fn resume_agent(
    state: State<AppState>,
    operator: Operator,
    path: Path<(String, String)>,
) -> ApiResult<axum::Json<AgentInfo>> {
    set_agent_status(state, operator, path, AgentStatus::Active).await
}

async fn set_agent_status(
    State(state): State<AppState>,
    _: Operator,
    Path((app, agent)): Path<(String, String)>,
    status: AgentStatus,
) -> ApiResult<axum::Json<AgentInfo>> {
    let update = AgentUpdate {
        status: Some(status.as_str().to_owned()),
        ..AgentUpdate::default()
    };
    let subject = operator(&app)?;
    agents::answer(
        state
            .vault
            .update_agent(&subject, id(&agent)?, update)
            .await,
    )
}

async fn delete_agent(
    State(state): State<AppState>,
    _: Operator,
    Path((app, agent)): Path<(String, String)>,
) -> ApiResult<axum::Json<AgentInfo>> {
    let agent = state
        .vault
        .delete_agent(&operator(&app)?, id(&agent)?)
        .await;
    agents::answer(agent)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantQuery {
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default = "super::default_page_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

async fn list_grants(
    State(state): State<AppState>,
    _: Operator,
    Path(app): Path<String>,
    Query(query): Query<GrantQuery>,
) -> ApiResult<axum::Json<GrantList>> {
    let filter = GrantFilter {
        provider: query.provider,
        state: query.status.as_deref().map(parse_state).transpose()?,
        label: query.label,
        ..GrantFilter::default()
    };
    let request = ListGrants {
        limit: query.limit,
        offset: query.offset,
        filter,
        user_token: None,
    };
    grants::page(&state, &operator(&app)?, request).await
}

async fn revoke_grant(
    State(state): State<AppState>,
    _: Operator,
    Path((app, grant)): Path<(String, String)>,
    Json(body): Json<RevokeRequest>,
) -> ApiResult<axum::Json<GrantList>> {
    let revoked = state
        .vault
        .revoke_grant(&operator(&app)?, id(&grant)?, body.reason, None)
        .await?;
    let view = state.vault.grant_view(revoked).await?;
    Ok(axum::Json(single_grant(&view, &state)))
}

async fn clear_scope_mismatch(
    State(state): State<AppState>,
    _: Operator,
    Path((app, grant)): Path<(String, String)>,
) -> ApiResult<axum::Json<GrantList>> {
    let view = state
        .vault
        .clear_scope_mismatch(app_id(&app)?, &grant)
        .await?;
    Ok(axum::Json(single_grant(&view, &state)))
}

/// The answer of an action on one grant: a list holding that grant.
fn single_grant(view: &GrantView, state: &AppState) -> GrantList {
    GrantList {
        grants: vec![views::grant_item(view, state.vault.now())],
        total: 1,
        limit: 1,
        offset: 0,
        has_more: false,
    }
}

async fn delegate_grant(
    State(state): State<AppState>,
    _: Operator,
    Path((app, grant)): Path<(String, String)>,
    Json(body): Json<CreateDelegationRequest>,
) -> ApiResult<(StatusCode, axum::Json<DelegationResult>)> {
    let subject = operator(&app)?;
    grants::delegate_as(&state, &subject, &grant, &body).await
}
