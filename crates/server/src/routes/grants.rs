//! `/sdk/grants/*`, `/sdk/managed-secrets/{id}/grants`, `/sdk/oauth/grants/{id}/revoke`:
//! listing, creating, minting and revoking grants, and delegations (protocol part 2 §1–§5).

use alter_core::Error;
use alter_core::caller::Caller;
use alter_core::delegations::{DelegateOptions, DelegationOf};
use alter_core::grants::Grant;
use alter_core::grants::{GrantFilter, GrantStateFilter, LifetimeInput, ListGrants, NewPrincipal};
use alter_core::ids::{AgentId, GrantId};
use alter_core::subject::Subject;
use alter_proto::admin::CreateDelegationRequest;
use alter_proto::grants::{
    AgentSelfGrantRequest, CreateGrantRequest, CreateGrantResult, DelegateRequest,
    DelegationResult, GrantInfo, GrantList, GrantPolicyBody, ListGrantsRequest, MintGrantRequest,
    PrincipalBody, RevokeGrantRequest, RevokeGrantResult,
};
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::{id, views};
use crate::auth::{Authed, need};
use crate::error::{ApiError, ApiResult};
use crate::json::Json;
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::Signed>,
    Json(body): Json<ListGrantsRequest>,
) -> ApiResult<axum::Json<GrantList>> {
    let filter = GrantFilter {
        provider: body.provider_id,
        state: body.status.as_deref().map(parse_state).transpose()?,
        account: body.account,
        label: body.label,
        ..GrantFilter::default()
    };
    let request = ListGrants {
        limit: body.limit,
        offset: body.offset,
        filter,
        user_token: body.user_token,
    };
    page(&state, &Subject::Caller(&caller), request).await
}

/// A page of the grants `subject` may see (SDK, operator and end-user listings).
pub(super) async fn page(
    state: &AppState,
    subject: &Subject<'_>,
    request: ListGrants,
) -> ApiResult<axum::Json<GrantList>> {
    let page = state.vault.list_grants(subject, request).await?;
    Ok(axum::Json(views::grant_list(&page, state.vault.now())))
}

/// `active`, `expired` or `revoked`.
pub fn parse_state(text: &str) -> Result<GrantStateFilter, ApiError> {
    match text {
        "active" => Ok(GrantStateFilter::Active),
        "expired" => Ok(GrantStateFilter::Expired),
        "revoked" => Ok(GrantStateFilter::Revoked),
        other => Err(ApiError::invalid(format!(
            "status {other:?}: use active, expired or revoked"
        ))),
    }
}

pub async fn create_managed_secret_grant(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::SecretsWrite>,
    Path(secret): Path<String>,
    Json(body): Json<CreateGrantRequest>,
) -> ApiResult<(StatusCode, axum::Json<CreateGrantResult>)> {
    let principal = match body.principal {
        PrincipalBody::User { user_token, label } => NewPrincipal::User { user_token, label },
        PrincipalBody::Group {
            external_group_id,
            idp_id,
            label,
        } => NewPrincipal::Group {
            external_group_id,
            idp_id,
            label,
        },
        PrincipalBody::System { label } => NewPrincipal::System { label },
        // Never inferred from the calling key (protocol part 2 §2.1).
        PrincipalBody::Agent { .. } => {
            return Err(ApiError::invalid(
                "agent principals are not accepted here; an agent binds a managed secret to itself with POST /sdk/agents/me/managed-secrets/{id}/grants",
            ));
        }
    };
    let grant = state
        .vault
        .create_managed_secret_grant(
            &caller,
            &secret,
            principal,
            policy_input(body.grant_policy),
            body.credential_id.as_deref(),
        )
        .await?;
    Ok(created_grant(&grant))
}

/// The agent self-grant (the Rust SDK's `Agent::create_managed_secret_grant`).
pub async fn create_agent_self_grant(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::SecretsWrite>,
    Path(secret): Path<String>,
    Json(body): Json<AgentSelfGrantRequest>,
) -> ApiResult<(StatusCode, axum::Json<CreateGrantResult>)> {
    let grant = state
        .vault
        .create_agent_self_grant(
            &caller,
            &secret,
            body.label,
            policy_input(body.grant_policy),
        )
        .await?;
    Ok(created_grant(&grant))
}

pub(super) fn policy_input(body: GrantPolicyBody) -> LifetimeInput {
    LifetimeInput {
        expires_at: body.expires_at,
        max_ttl_seconds: body.max_ttl_seconds,
        default_ttl_seconds: body.default_ttl_seconds,
    }
}

fn created_grant(grant: &Grant) -> (StatusCode, axum::Json<CreateGrantResult>) {
    (
        StatusCode::CREATED,
        axum::Json(CreateGrantResult {
            grant_id: grant.id.to_string(),
            principal_type: grant.principal.kind().as_str().to_owned(),
            label: grant.label.clone(),
            created_at: grant.created_at.to_rfc3339(),
            credential_id: grant.credential.secret_id().map(|s| s.to_string()),
        }),
    )
}

pub async fn revoke(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::GrantsWrite>,
    Path(grant): Path<String>,
    Json(body): Json<RevokeGrantRequest>,
) -> ApiResult<axum::Json<RevokeGrantResult>> {
    let grant = state
        .vault
        .revoke_grant(
            &Subject::Caller(&caller),
            id(&grant)?,
            body.reason,
            body.user_token.as_deref(),
        )
        .await?;
    Ok(axum::Json(RevokeGrantResult {
        success: true,
        message: "grant revoked".into(),
        grant_id: grant.id.to_string(),
        revoked_at: grant
            .revoked_at
            .unwrap_or_else(|| state.vault.now())
            .to_rfc3339(),
    }))
}

pub async fn mint(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::GrantsWrite>,
    Path(source): Path<String>,
    Json(body): Json<MintGrantRequest>,
) -> ApiResult<(StatusCode, axum::Json<GrantInfo>)> {
    let policy = mint_policy(body.grant_policy)?;
    let grant = state
        .vault
        .mint_grant(
            &caller,
            id(&source)?,
            &body.label,
            policy,
            body.grant_tags.unwrap_or_default(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(views::grant_info(&grant, state.vault.now())),
    ))
}

/// The `grant_policy` of a mint request: only `expires_at` and `max_ttl_seconds`, each refused
/// with `invalid_grant_policy` (the code the client maps) when it is not what it should be.
fn mint_policy(policy: Option<serde_json::Value>) -> Result<LifetimeInput, Error> {
    let invalid = |m: String| Error::InvalidGrantLifetime(m);
    let Some(policy) = policy else {
        return Ok(LifetimeInput::default());
    };
    let object = policy
        .as_object()
        .ok_or_else(|| invalid("grant_policy must be an object".into()))?;
    if let Some(key) = object
        .keys()
        .find(|k| *k != "expires_at" && *k != "max_ttl_seconds")
    {
        return Err(invalid(format!(
            "grant_policy.{key} is not accepted on a minted grant (only expires_at and max_ttl_seconds)"
        )));
    }
    let field = |name| object.get(name).filter(|v| !v.is_null());
    Ok(LifetimeInput {
        expires_at: field("expires_at")
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid("expires_at must be a string".into()))
            })
            .transpose()?,
        max_ttl_seconds: field("max_ttl_seconds")
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| invalid("max_ttl_seconds must be an integer".into()))
            })
            .transpose()?,
        default_ttl_seconds: None,
    })
}

pub async fn delegate(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::GrantsWrite>,
    Path(grant): Path<String>,
    Json(body): Json<DelegateRequest>,
) -> ApiResult<(StatusCode, axum::Json<DelegationResult>)> {
    let options = DelegateOptions {
        ttl_seconds: body.ttl_seconds,
        delegable: body.delegable,
        scope_constraint: body.scope_constraint,
    };
    let subject = Subject::Caller(&caller);
    delegation(&state, &subject, &grant, &body.to_agent_id, options).await
}

/// The operator's and the end user's delegation of a grant to an agent.
pub(super) async fn delegate_as(
    state: &AppState,
    subject: &Subject<'_>,
    grant: &str,
    body: &CreateDelegationRequest,
) -> ApiResult<(StatusCode, axum::Json<DelegationResult>)> {
    let options = DelegateOptions {
        ttl_seconds: body.ttl_seconds,
        delegable: body.delegable,
        scope_constraint: None,
    };
    delegation(state, subject, grant, &body.agent_id, options).await
}

async fn delegation(
    state: &AppState,
    subject: &Subject<'_>,
    grant: &str,
    agent: &str,
    options: DelegateOptions,
) -> ApiResult<(StatusCode, axum::Json<DelegationResult>)> {
    let child = state
        .vault
        .delegate(subject, id(grant)?, id(agent)?, options)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(views::delegation(&child, state.vault.now())),
    ))
}

pub async fn revoke_delegation(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::GrantsWrite>,
    Path((grant, agent)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let of = DelegationOf::Agent(AgentId::parse_lenient(&agent));
    revoke_delegation_of(&state, &caller, &grant, of).await
}

pub async fn revoke_own_delegation(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::GrantsWrite>,
    Path(grant): Path<String>,
) -> ApiResult<StatusCode> {
    revoke_delegation_of(&state, &caller, &grant, DelegationOf::Me).await
}

/// Revoking a delegation is idempotent: an id that names nothing revokes nothing.
async fn revoke_delegation_of(
    state: &AppState,
    caller: &Caller,
    grant: &str,
    of: DelegationOf,
) -> ApiResult<StatusCode> {
    let grant = GrantId::parse_lenient(grant);
    state
        .vault
        .revoke_delegation(&Subject::Caller(caller), grant, of)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::mint_policy;

    #[test]
    fn mint_policies_accept_only_two_keys() {
        let ok = json!({"max_ttl_seconds": 60});
        assert_eq!(mint_policy(Some(ok)).unwrap().max_ttl_seconds, Some(60));
        for bad in [
            json!({"default_ttl_seconds": 60}),
            json!({"restrictions": {}}),
            json!([1]),
            json!({"max_ttl_seconds": "60"}),
        ] {
            assert!(mint_policy(Some(bad)).is_err());
        }
    }
}
