//! `/user/v1/apps/{app}/*`: the end-user API, authenticated by the user's own IdP JWT
//! (`Authorization: Bearer …`). A user sees the grants they hold and the delegations they
//! made, delegates a grant to one of the app's agents, and revokes their delegations. The
//! Wallet stands on it.

use alter_core::agents::AgentStatus;
use alter_core::delegations::DelegationOf;
use alter_core::grants::{GrantFilter, ListGrants};
use alter_core::identity::SignedInUser;
use alter_core::ids::AppId;
use alter_core::subject::Subject;
use alter_core::{Entity, Error};
use alter_proto::admin::{AgentSummary, CreateDelegationRequest, UserInfo};
use alter_proto::grants::{DelegationResult, GrantList};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::Deserialize;

use super::{grants, id, views};
use crate::error::{ApiError, ApiResult};
use crate::json::{Json, Query};
use crate::state::AppState;

/// The bearer token of the request (an end user's JWT).
#[derive(Debug)]
pub struct UserToken(String);

impl<S: Send + Sync> FromRequestParts<S> for UserToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| UserToken(t.trim().to_owned()))
            .ok_or_else(|| Error::InvalidUserToken.into())
    }
}

/// An end user signed in to an app.
struct SignedIn {
    app: AppId,
    user: SignedInUser,
}

impl SignedIn {
    fn subject(&self) -> Subject<'_> {
        Subject::User {
            app: self.app,
            user: &self.user,
        }
    }
}

async fn sign_in(state: &AppState, app: &str, token: &UserToken) -> ApiResult<SignedIn> {
    // An unknown app and a bad token look alike: both are a refused token.
    let app = AppId::parse_lenient(app).ok_or(Error::InvalidUserToken)?;
    let user = state
        .vault
        .sign_in(app, &token.0)
        .await
        .map_err(|e| match e {
            Error::NoIdentityProvider => Error::InvalidUserToken,
            other => other,
        })?;
    Ok(SignedIn { app, user })
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Page {
    #[serde(default = "super::default_page_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

pub async fn me(
    State(state): State<AppState>,
    Path(app): Path<String>,
    token: UserToken,
) -> ApiResult<axum::Json<UserInfo>> {
    let signed_in = sign_in(&state, &app, &token).await?.user;
    Ok(axum::Json(UserInfo {
        app_user_id: signed_in.user.id.to_string(),
        subject: signed_in.user.subject,
        email: signed_in.user.email,
        display_name: signed_in.user.display_name,
        groups: signed_in.groups,
    }))
}

pub async fn grants(
    state: State<AppState>,
    app: Path<String>,
    token: UserToken,
    page: Query<Page>,
) -> ApiResult<axum::Json<GrantList>> {
    listing(state, app, token, page, GrantFilter::default()).await
}

pub async fn delegations(
    state: State<AppState>,
    app: Path<String>,
    token: UserToken,
    page: Query<Page>,
) -> ApiResult<axum::Json<GrantList>> {
    let filter = GrantFilter {
        delegations: Some(true),
        ..GrantFilter::default()
    };
    listing(state, app, token, page, filter).await
}

/// The grants the user holds and the delegations they made, narrowed by `filter`.
async fn listing(
    State(state): State<AppState>,
    Path(app): Path<String>,
    token: UserToken,
    Query(page): Query<Page>,
    filter: GrantFilter,
) -> ApiResult<axum::Json<GrantList>> {
    let signed_in = sign_in(&state, &app, &token).await?;
    let request = ListGrants {
        limit: page.limit,
        offset: page.offset,
        filter,
        user_token: None,
    };
    grants::page(&state, &signed_in.subject(), request).await
}

pub async fn delegate(
    State(state): State<AppState>,
    Path((app, grant)): Path<(String, String)>,
    token: UserToken,
    Json(body): Json<CreateDelegationRequest>,
) -> ApiResult<(StatusCode, axum::Json<DelegationResult>)> {
    let signed_in = sign_in(&state, &app, &token).await?;
    let subject = signed_in.subject();
    grants::delegate_as(&state, &subject, &grant, &body).await
}

pub async fn revoke_delegation(
    State(state): State<AppState>,
    Path((app, delegation)): Path<(String, String)>,
    token: UserToken,
) -> ApiResult<axum::Json<DelegationResult>> {
    let signed_in = sign_in(&state, &app, &token).await?;
    let subject = signed_in.subject();
    let child = state
        .vault
        .revoke_delegation(&subject, Some(id(&delegation)?), DelegationOf::Itself)
        .await?
        .ok_or(Error::NotFound(Entity::Grant))?;
    Ok(axum::Json(views::delegation(&child, state.vault.now())))
}

pub async fn agents(
    State(state): State<AppState>,
    Path(app): Path<String>,
    token: UserToken,
    Query(page): Query<Page>,
) -> ApiResult<axum::Json<Vec<AgentSummary>>> {
    let signed_in = sign_in(&state, &app, &token).await?;
    let subject = signed_in.subject();
    let (agents, _) = state
        .vault
        .list_agents(&subject, false, page.limit, page.offset)
        .await?;
    Ok(axum::Json(
        agents
            .iter()
            .filter(|a| a.status == AgentStatus::Active)
            .map(|a| AgentSummary {
                id: a.id.to_string(),
                name: a.name.clone(),
                display_name: a.display_name.clone(),
            })
            .collect(),
    ))
}
