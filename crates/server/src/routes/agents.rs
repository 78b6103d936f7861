//! `/sdk/agents*`: agents and their keys (protocol part 2 §8), answered with the error codes
//! the client's agents mapper reads.

use alter_core::Error;
use alter_core::agents::{Agent, AgentUpdate, NewAgent};
use alter_core::subject::Subject;
use alter_crypto::ExposeSecret;
use alter_proto::agents::{
    AgentCreateResult, AgentInfo, AgentKeyInfo, AgentKeyList, AgentKeyMintResult, AgentList,
    CreateAgentRequest, UpdateAgentRequest,
};
use alter_proto::signing::headers;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::{id, views};
use crate::auth::{Authed, need};
use crate::error::{ApiError, ApiResult};
use crate::json::{Json, Query};
use crate::state::AppState;

pub async fn create(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::AgentsWrite>,
    headers: HeaderMap,
    Json(body): Json<CreateAgentRequest>,
) -> ApiResult<(StatusCode, axum::Json<AgentCreateResult>)> {
    let idempotency_key = match headers.get(headers::IDEMPOTENCY_KEY) {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::invalid("Idempotency-Key must be printable ASCII"))?
                .to_owned(),
        ),
        None => None,
    };
    let created = state
        .vault
        .create_agent(
            &caller,
            NewAgent {
                name: body.name,
                agent_type: body.agent_type,
                allowlist: body.scopes,
                metadata: body.metadata,
                display_name: body.display_name,
                approval: body.policy,
                idempotency_key,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(AgentCreateResult {
            agent: views::agent_info(&created.agent),
            api_key: created
                .key
                .as_ref()
                .map(|k| k.plaintext.expose_secret().to_owned()),
            key_id: created.key_id.to_string(),
        }),
    ))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    include_revoked: Option<bool>,
    #[serde(default = "super::default_page_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
    #[serde(default)]
    name: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::AgentsRead>,
    Query(query): Query<ListQuery>,
) -> ApiResult<axum::Json<AgentList>> {
    if let Some(name) = &query.name {
        let found = state.vault.agent_by_name(&caller, name).await?;
        let items: Vec<AgentInfo> = found.iter().map(views::agent_info).collect();
        return Ok(axum::Json(AgentList {
            total: items.len() as i64,
            limit: query.limit,
            offset: 0,
            has_more: false,
            items,
        }));
    }
    let include_revoked = query.include_revoked.unwrap_or(false);
    let subject = Subject::Caller(&caller);
    page(&state, &subject, include_revoked, query.limit, query.offset).await
}

/// A page of the agents `subject` may list (SDK and operator listings).
pub(super) async fn page(
    state: &AppState,
    subject: &Subject<'_>,
    include_revoked: bool,
    limit: i64,
    offset: i64,
) -> ApiResult<axum::Json<AgentList>> {
    let (agents, total) = state
        .vault
        .list_agents(subject, include_revoked, limit, offset)
        .await?;
    Ok(axum::Json(views::agent_list(&agents, total, limit, offset)))
}

/// The answer of an action on one agent: the agent as it is now.
pub(super) fn answer(agent: Result<Agent, Error>) -> ApiResult<axum::Json<AgentInfo>> {
    Ok(axum::Json(views::agent_info(&agent?)))
}

pub async fn get(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::AgentsRead>,
    Path(agent): Path<String>,
) -> ApiResult<axum::Json<AgentInfo>> {
    answer(
        state
            .vault
            .get_agent(&Subject::Caller(&caller), id(&agent)?)
            .await,
    )
}

pub async fn me(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::SignedAnyAgent>,
) -> ApiResult<axum::Json<AgentInfo>> {
    answer(state.vault.me(&caller).await)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateQuery {
    #[serde(default)]
    grace_seconds: Option<i64>,
    #[serde(default)]
    expected_version: Option<i64>,
}

pub async fn update(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::AgentsWrite>,
    Path(agent): Path<String>,
    Query(query): Query<UpdateQuery>,
    Json(body): Json<UpdateAgentRequest>,
) -> ApiResult<axum::Json<AgentInfo>> {
    let agent = state
        .vault
        .update_agent(
            &Subject::Caller(&caller),
            id(&agent)?,
            AgentUpdate {
                display_name: body.display_name,
                metadata: body.metadata,
                allowlist: body.scopes,
                approval: body.policy,
                status: body.status,
                expected_version: query.expected_version,
                grace_seconds: query.grace_seconds,
            },
        )
        .await;
    answer(agent)
}

pub async fn delete(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::AgentsAdmin>,
    Path(agent): Path<String>,
) -> ApiResult<axum::Json<AgentInfo>> {
    answer(
        state
            .vault
            .delete_agent(&Subject::Caller(&caller), id(&agent)?)
            .await,
    )
}

pub async fn mint_key(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::AgentsAdmin>,
    Path(agent): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<AgentKeyMintResult>)> {
    let key = state
        .vault
        .mint_agent_key(&Subject::Caller(&caller), id(&agent)?)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(AgentKeyMintResult {
            key: views::agent_key(&key.key),
            api_key: Some(key.plaintext.expose_secret().to_owned()),
        }),
    ))
}

pub async fn list_keys(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::AgentsAdmin>,
    Path(agent): Path<String>,
) -> ApiResult<axum::Json<AgentKeyList>> {
    let keys = state.vault.list_agent_keys(&caller, id(&agent)?).await?;
    Ok(axum::Json(AgentKeyList {
        items: keys.iter().map(views::agent_key).collect(),
    }))
}

pub async fn deprecate_key(
    state: State<AppState>,
    authed: Authed<need::AgentsAdmin>,
    path: Path<(String, String)>,
) -> ApiResult<axum::Json<AgentKeyInfo>> {
    set_key_deprecated(state, authed, path, true).await
}

pub async fn undeprecate_key(
    state: State<AppState>,
    authed: Authed<need::AgentsAdmin>,
    path: Path<(String, String)>,
) -> ApiResult<axum::Json<AgentKeyInfo>> {
    set_key_deprecated(state, authed, path, false).await
}

async fn set_key_deprecated(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::AgentsAdmin>,
    Path((agent, key)): Path<(String, String)>,
    deprecated: bool,
) -> ApiResult<axum::Json<AgentKeyInfo>> {
    let key = state
        .vault
        .set_agent_key_deprecated(&caller, id(&agent)?, id(&key)?, deprecated)
        .await?;
    Ok(axum::Json(views::agent_key(&key)))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForceQuery {
    #[serde(default)]
    pub force: Option<bool>,
}

pub async fn revoke_key(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::AgentsAdmin>,
    Path((agent, key)): Path<(String, String)>,
    Query(query): Query<ForceQuery>,
) -> ApiResult<axum::Json<AgentKeyInfo>> {
    let key = state
        .vault
        .revoke_agent_key(
            &Subject::Caller(&caller),
            id(&agent)?,
            id(&key)?,
            query.force.unwrap_or(false),
        )
        .await?;
    Ok(axum::Json(views::agent_key(&key)))
}
