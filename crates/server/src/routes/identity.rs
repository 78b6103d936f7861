//! Identity export (protocol part 2 §7.6–7.7): `POST /sdk/identity/resolve`,
//! `POST /sdk/identity/assert`, and `GET /.well-known/alter-identity-jwks.json`, the public keys
//! assertions are verified with (one set for the whole vault; `iss` is the public URL).

use alter_core::Error;
use alter_core::assertions::{Identity, IdentityQuery};
use alter_core::caller::Caller;
use alter_proto::signin::{IdentityAssertion, IdentityContext, IdentityRequest, Jwk, Jwks, Trace};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::auth::{Authed, need};
use crate::error::ApiResult;
use crate::json::Json;
use crate::state::AppState;

/// Longest user token read.
const MAX_USER_TOKEN_LEN: usize = 8192;

/// `POST /sdk/identity/resolve`.
pub async fn resolve(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::IdpUsersRead>,
    Json(body): Json<IdentityRequest>,
) -> ApiResult<axum::Json<IdentityContext>> {
    if body.audience.is_some() || body.ttl_seconds.is_some() {
        return Err(Error::Invalid(
            "audience and ttl_seconds belong to /sdk/identity/assert".into(),
        )
        .into());
    }
    let include_profile = body.include_profile;
    let identity = state.vault.resolve_identity(&caller, query(body)?).await?;
    Ok(axum::Json(context(&caller, &identity, include_profile)))
}

/// `POST /sdk/identity/assert`.
pub async fn assert(
    State(state): State<AppState>,
    Authed(caller, ..): Authed<need::IdpUsersRead>,
    Json(body): Json<IdentityRequest>,
) -> ApiResult<axum::Json<IdentityAssertion>> {
    let include_profile = body.include_profile;
    let audience = body
        .audience
        .clone()
        .ok_or_else(|| Error::Invalid("audience is required".into()))?;
    let ttl = body.ttl_seconds;
    let assertion = state
        .vault
        .assert_identity(&caller, query(body)?, &audience, ttl, &state.public_url)
        .await?;
    Ok(axum::Json(IdentityAssertion {
        token: assertion.token,
        expires_at: assertion.expires_at.to_rfc3339(),
        identity: context(&caller, &assertion.identity, include_profile),
    }))
}

/// `GET /.well-known/alter-identity-jwks.json` (unsigned; cacheable for five minutes).
pub async fn jwks(State(state): State<AppState>) -> ApiResult<Response> {
    let keys = state.vault.identity_keys().await?;
    let set = Jwks {
        keys: keys
            .into_iter()
            .map(|k| Jwk {
                kty: "EC".into(),
                crv: "P-256".into(),
                x: k.jwk.x,
                y: k.jwk.y,
                kid: k.kid,
                use_: "sig".into(),
                alg: "ES256".into(),
            })
            .collect(),
    };
    let mut response = axum::Json(set).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}

fn query(body: IdentityRequest) -> Result<IdentityQuery, Error> {
    if let Some(token) = &body.user_token
        && (token.is_empty() || token.len() > MAX_USER_TOKEN_LEN)
    {
        return Err(Error::Invalid(format!(
            "user_token must be 1 to {MAX_USER_TOKEN_LEN} characters"
        )));
    }
    if body.app_user_id.as_deref() == Some("") {
        return Err(Error::Invalid("app_user_id must not be empty".into()));
    }
    Ok(IdentityQuery {
        user_token: body.user_token,
        app_user_id: body.app_user_id,
    })
}

fn context(caller: &Caller, identity: &Identity, include_profile: bool) -> IdentityContext {
    let user = identity.user.as_ref();
    let profile = |value: Option<&String>| value.filter(|_| include_profile).cloned();
    let trace = caller.context.as_ref().map(|c| Trace {
        run_id: c.get("run_id").cloned(),
        thread_id: c.get("thread_id").cloned(),
    });
    IdentityContext {
        app_id: identity.app_id.to_string(),
        app_user_id: user.map(|u| u.id.to_string()),
        external_subject_id: user.map(|u| u.subject.clone()),
        idp_id: user.map(|u| u.idp_id.to_string()),
        user_status: user.map(|u| u.status.as_str().to_owned()),
        group_ids: if user.is_some() {
            identity.groups.clone()
        } else {
            Vec::new()
        },
        agent_id: identity.agent_id.map(|a| a.to_string()),
        actor_id: Some(match identity.agent_id {
            Some(agent) => format!("agent:{agent}"),
            None => format!("key:{}", caller.key_prefix),
        }),
        trace,
        email: profile(user.and_then(|u| u.email.as_ref())),
        display_name: profile(user.and_then(|u| u.display_name.as_ref())),
    }
}
