//! The routes. `/sdk/*` is the wire protocol of the official client (every route behind the
//! signed-request middleware); `/admin/v1/*` is the operator API (admin token);
//! `/user/v1/apps/{app}/*` is the end-user API (the user's IdP JWT); `/healthz` and `/readyz`
//! are for orchestrators.

mod admin;
mod agents;
mod audit;
mod grants;
mod health;
mod keys;
mod scopes;
mod token;
mod user;
mod views;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, patch, post};

use crate::auth::{buffer_body, signed_request};
use crate::error::ApiError;
use crate::state::AppState;

/// One `/sdk/*` route and the scope it needs (`None`: a valid signature is enough). Tests walk
/// this table to prove each route enforces its scope.
#[derive(Debug, Clone, Copy)]
pub struct SdkRoute {
    /// HTTP method.
    pub method: &'static str,
    /// Path template, with `{id}`-style parameters.
    pub path: &'static str,
    /// Scope needed.
    pub scope: Option<&'static str>,
}

/// Every `/sdk/*` route.
pub const SDK_ROUTES: &[SdkRoute] = &[
    SdkRoute {
        method: "GET",
        path: "/sdk/scopes",
        scope: None,
    },
    SdkRoute {
        method: "POST",
        path: "/sdk/keys/derive",
        scope: Some("keys:derive"),
    },
    SdkRoute {
        method: "POST",
        path: "/sdk/keys/{id}/rotate",
        scope: Some("keys:admin"),
    },
    SdkRoute {
        method: "DELETE",
        path: "/sdk/keys/{id}",
        scope: Some("keys:admin"),
    },
];

/// The whole application, mounted under `base_path`.
pub fn router(state: AppState, base_path: &str) -> Router {
    let sdk = Router::new()
        .route("/sdk/scopes", get(scopes::list))
        .route("/sdk/keys/derive", post(keys::derive))
        .route("/sdk/keys/{id}/rotate", post(keys::rotate))
        .route("/sdk/keys/{id}", delete(keys::revoke))
        .route("/sdk/grants/list", post(grants::list))
        .route(
            "/sdk/managed-secrets/{id}/grants",
            post(grants::create_managed_secret_grant),
        )
        .route("/sdk/grants/{id}/mint", post(grants::mint))
        .route("/sdk/oauth/grants/{id}/revoke", post(grants::revoke))
        .route("/sdk/grants/{id}/delegate", post(grants::delegate))
        .route(
            "/sdk/grants/{id}/delegations/me",
            delete(grants::revoke_own_delegation),
        )
        .route(
            "/sdk/grants/{id}/delegations/{agent}",
            delete(grants::revoke_delegation),
        )
        .route("/sdk/agents", post(agents::create).get(agents::list))
        .route("/sdk/agents/me", get(agents::me))
        .route(
            "/sdk/agents/{id}",
            get(agents::get)
                .patch(agents::update)
                .delete(agents::delete),
        )
        .route(
            "/sdk/agents/{id}/keys",
            post(agents::mint_key).get(agents::list_keys),
        )
        .route(
            "/sdk/agents/{id}/keys/{key}/deprecate",
            patch(agents::deprecate_key),
        )
        .route(
            "/sdk/agents/{id}/keys/{key}/undeprecate",
            patch(agents::undeprecate_key),
        )
        .route("/sdk/agents/{id}/keys/{key}", delete(agents::revoke_key))
        .route("/sdk/token", post(token::token))
        .route("/sdk/oauth/audit/api-call", post(token::api_call))
        .route(
            "/sdk/grants/{id}/report-scope-mismatch",
            post(token::scope_mismatch),
        )
        .route_layer(from_fn_with_state(state.clone(), signed_request))
        .method_not_allowed_fallback(method_not_allowed);
    let user = Router::new()
        .route("/me", get(user::me))
        .route("/grants", get(user::grants))
        .route("/grants/{grant}/delegations", post(user::delegate))
        .route("/delegations", get(user::delegations))
        .route("/delegations/{delegation}", delete(user::revoke_delegation))
        .route("/agents", get(user::agents))
        .method_not_allowed_fallback(method_not_allowed);
    let app = Router::new()
        .merge(sdk)
        .nest(
            "/admin/v1",
            admin::router().method_not_allowed_fallback(method_not_allowed),
        )
        .nest("/user/v1/apps/{app}", user)
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), buffer_body))
        .with_state(state);
    if base_path.is_empty() {
        app
    } else {
        Router::new()
            .nest(base_path, app)
            .fallback(|| async { ApiError::route_not_found() })
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
