//! The routes. `/sdk/*` is the wire protocol of the official client (every route behind the
//! signed-request middleware); `/admin/v1/*` is the operator API (admin token);
//! `/user/v1/apps/{app}/*` is the end-user API (the user's IdP JWT); `/healthz` and `/readyz`
//! are for orchestrators; `/metrics` (admin token) for Prometheus; `/openapi.json` describes
//! all of them but the browser pages.

mod admin;
mod agents;
mod approvals;
pub(crate) mod audit;
mod connect;
mod grants;
mod health;
mod identity;
mod idp_events;
pub(crate) mod keys;
pub mod openapi;
mod operators;
pub(crate) mod policies;
mod provider_specs;
pub(crate) mod providers;
mod proxy;
mod scopes;
mod signin;
mod spans;
mod token;
mod user;
pub(crate) mod views;
mod webhooks;

use alter_core::caller::NonceTiming;
use alter_core::ids::{AgentKind, AppKind, ApprovalKind, GrantKind, Id, KeyKind};
use alter_core::{Entity, Error};
use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodFilter, delete, get, on, post};

use crate::auth::{buffer_body, signed_request};
use crate::error::ApiError;
use crate::serve;
use crate::state::AppState;

/// An id from a path or body, parsed (any UUID spelling the client accepts); anything else
/// names nothing and answers as the missing entity would.
pub(crate) fn id<K: Named>(text: &str) -> Result<Id<K>, Error> {
    Id::parse_lenient(text).ok_or(Error::NotFound(K::ENTITY))
}

/// The entity an id kind names, for [`id`]'s "not found".
pub(crate) trait Named {
    const ENTITY: Entity;
}

macro_rules! named {
    ($($kind:ty => $entity:ident),*) => {
        $(impl Named for $kind {
            const ENTITY: Entity = Entity::$entity;
        })*
    };
}

named!(AppKind => App, KeyKind => Key, AgentKind => Agent, GrantKind => Grant, ApprovalKind => Approval);

/// Page size of a listing that names none.
pub(crate) fn default_page_limit() -> i64 {
    100
}

/// One `/sdk/*` route and the scope it needs (`None`: a valid signature is enough). Tests walk
/// this table to prove each route enforces its scope.
#[derive(Debug, Clone, Copy)]
pub struct SdkRoute {
    /// HTTP method.
    pub method: &'static str,
    /// Path template, with `{id}`-style parameters.
    pub path: &'static str,
    /// Scope needed (by the handler's `Authed` marker or, where the decision is the
    /// service's, by the service).
    pub scope: Option<&'static str>,
    /// Scopes any one of which serves instead of `scope`.
    pub alternatives: &'static [&'static str],
    /// When admission records the request's nonce: at admission, unless the route claims it
    /// with its first write itself (see [`NonceTiming::WithFirstWrite`]).
    pub nonce: NonceTiming,
}

/// Declares the `/sdk/*` routes once: the router is built from the same lines as
/// [`SDK_ROUTES`], so no route can be missing from the table.
macro_rules! sdk_routes {
    ($($method:ident $path:literal => $handler:path, $scope:expr $(, or $alternative:literal)* $(, nonce $nonce:ident)?;)*) => {
        /// Every `/sdk/*` route.
        pub const SDK_ROUTES: &[SdkRoute] = &[
            $(SdkRoute {
                method: stringify!($method),
                path: $path,
                scope: $scope,
                alternatives: &[$($alternative),*],
                nonce: sdk_routes!(@nonce $($nonce)?),
            },)*
        ];

        fn sdk_router() -> Router<AppState> {
            Router::new()
                $(.route($path, on(MethodFilter::$method, $handler)))*
        }
    };
    (@nonce) => { NonceTiming::AtAdmission };
    (@nonce $timing:ident) => { NonceTiming::$timing };
}

sdk_routes! {
    GET "/sdk/scopes" => scopes::list, None;
    POST "/sdk/keys/derive" => keys::derive, Some("keys:derive");
    POST "/sdk/keys/{id}/rotate" => keys::rotate, Some("keys:admin");
    DELETE "/sdk/keys/{id}" => keys::revoke, Some("keys:admin");
    POST "/sdk/grants/list" => grants::list, Some("grants:read");
    POST "/sdk/managed-secrets/{id}/grants" => grants::create_managed_secret_grant, Some("secrets:write");
    POST "/sdk/agents/me/managed-secrets/{id}/grants" => grants::create_agent_self_grant, Some("secrets:write");
    POST "/sdk/grants/{id}/mint" => grants::mint, Some("grants:write");
    POST "/sdk/oauth/grants/{id}/revoke" => grants::revoke, Some("grants:write");
    POST "/sdk/grants/{id}/delegate" => grants::delegate, Some("grants:write");
    DELETE "/sdk/grants/{id}/delegations/me" => grants::revoke_own_delegation, Some("grants:write");
    DELETE "/sdk/grants/{id}/delegations/{agent}" => grants::revoke_delegation, Some("grants:write");
    POST "/sdk/agents" => agents::create, Some("agents:write");
    GET "/sdk/agents" => agents::list, Some("agents:read");
    GET "/sdk/agents/me" => agents::me, None;
    GET "/sdk/agents/{id}" => agents::get, Some("agents:read");
    PATCH "/sdk/agents/{id}" => agents::update, Some("agents:write");
    DELETE "/sdk/agents/{id}" => agents::delete, Some("agents:admin");
    POST "/sdk/agents/{id}/keys" => agents::mint_key, Some("agents:admin");
    GET "/sdk/agents/{id}/keys" => agents::list_keys, Some("agents:admin");
    PATCH "/sdk/agents/{id}/keys/{key}/deprecate" => agents::deprecate_key, Some("agents:admin");
    PATCH "/sdk/agents/{id}/keys/{key}/undeprecate" => agents::undeprecate_key, Some("agents:admin");
    DELETE "/sdk/agents/{id}/keys/{key}" => agents::revoke_key, Some("agents:admin");
    GET "/sdk/oauth/provider-catalog" => providers::connectable, Some("providers:read");
    POST "/sdk/oauth/connect/session" => connect::create_session, Some("connect:initiate");
    POST "/sdk/oauth/connect/session/poll" => connect::poll_session, Some("connect:initiate");
    POST "/sdk/managed-secrets/connect/session" => connect::create_managed_session, Some("connect:initiate");
    GET "/sdk/provider-specs" => provider_specs::list, Some("providers:read");
    GET "/sdk/provider-specs/{kind}/{provider_id}" => provider_specs::get, Some("providers:read");
    GET "/sdk/provider-specs/{kind}/{provider_id}/operations" => provider_specs::operations, Some("providers:read");
    GET "/sdk/provider-specs/{kind}/{provider_id}/operation" => provider_specs::operation, Some("providers:read");
    POST "/sdk/token" => token::token, Some("tokens:retrieve"), nonce WithFirstWrite;
    POST "/sdk/proxy" => proxy::proxy, Some("proxy:execute"), nonce WithFirstWrite;
    POST "/sdk/oauth/audit/api-call" => token::api_call, Some("audit:emit");
    POST "/sdk/spans" => spans::emit, Some("spans:emit");
    POST "/sdk/grants/{id}/report-scope-mismatch" => token::scope_mismatch, Some("tokens:retrieve"), or "audit:emit";
    POST "/sdk/auth/session" => signin::create_session, Some("idp_users:write");
    POST "/sdk/auth/poll" => signin::poll_session, Some("idp_users:read");
    POST "/sdk/auth/verify-token" => signin::verify_token, Some("idp_users:read");
    POST "/sdk/identity/resolve" => identity::resolve, Some("idp_users:read");
    POST "/sdk/identity/assert" => identity::assert, Some("idp_users:read");
    GET "/sdk/approvals/{id}" => approvals::status, Some("approvals:read"), or "proxy:execute";
    GET "/sdk/approvals/{id}/result" => approvals::result, Some("approvals:read"), or "proxy:execute";
}

/// The whole application, mounted under `base_path`.
pub fn router(state: AppState, base_path: &str) -> Router {
    let sdk = sdk_router()
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
            admin::router()
                .merge(policies::router())
                .merge(approvals::admin_router())
                .merge(operators::router())
                .merge(webhooks::router())
                .method_not_allowed_fallback(method_not_allowed),
        )
        .nest("/user/v1/apps/{app}", user)
        .route(
            "/connect/resume",
            get(connect::resume).post(connect::submit),
        )
        .route("/connect/{token}", get(connect::page).post(connect::pick))
        .route("/oauth/callback", get(connect::callback))
        .route("/assets/alter.css", get(crate::pages::stylesheet))
        .route("/assets/favicon.svg", get(crate::pages::favicon))
        .merge(crate::ui::router())
        .route("/readyz", get(health::ready))
        .route("/openapi.json", get(openapi::serve(base_path)))
        .route("/metrics", get(crate::metrics::scrape))
        .route("/auth/callback", get(signin::callback))
        .route("/.well-known/alter-identity-jwks.json", get(identity::jwks))
        .route("/idp/v1/apps/{app}/events", post(idp_events::receive))
        // Requests hold a slot only once their body is in (the layer below reads it first),
        // so slow senders cannot fill the slots; liveness answers outside the cap.
        .layer(from_fn_with_state(
            state.in_progress.clone(),
            serve::limit_concurrency,
        ))
        .route("/healthz", get(health::live))
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), buffer_body))
        // Outermost: every request is counted, refusals by the layers above included.
        .layer(from_fn_with_state(state.clone(), crate::metrics::track))
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
