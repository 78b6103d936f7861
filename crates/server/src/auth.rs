//! Authentication of `/sdk/*` requests and of the operator admin API.
//!
//! [`signed_request`] is the middleware in front of every `/sdk/*` route. The body is buffered
//! first (413 past the limit, 408 past the body deadline); a raw path escaping `/`, `?` or `#`
//! is refused (400); then: key format → required headers → content hash, here; then, in one
//! vault call ([`alter_core::Vault::authenticate`]): key lookup by hash → HMAC v1/v2 over the
//! canonical request → timestamp window → nonce → key lifecycle → CIDR → attenuation. Every failure up to and including the nonce answers the same `invalid_key`.
//! The admitted [`Caller`] travels to the handler, whose [`Authed`] extractor checks the scope
//! the route needs.

use std::marker::PhantomData;
use std::net::SocketAddr;

use alter_core::agents::AgentStatus;
use alter_core::caller::{Caller, NonceTiming, PendingNonce, RequestFacts, decode_context};
use alter_core::error::Error;
use alter_core::request_rule::RequestRule;
use alter_core::scope::{Scope, UnknownScope};
use alter_proto::keyfmt;
use alter_proto::signing::{self, SigningInput, headers};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Middleware in front of every route: reads the whole body (up to the limit, within the body
/// deadline) before anything answers. An answer given before the body was read would leave it
/// on the connection, which the server would then close without saying so — and a client that
/// pools connections would see its next request fail.
pub async fn buffer_body(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let limit = body_limit(&state, &parts);
    let read = axum::body::to_bytes(body, limit);
    let refusal = match tokio::time::timeout(state.body_read_timeout, read).await {
        Ok(Ok(bytes)) => {
            return next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
        }
        Ok(Err(_)) => ApiError::payload_too_large(limit),
        Err(_) => ApiError::body_timeout(),
    };
    let mut response = refusal.into_response();
    // The rest of the body is still on the wire: this connection cannot be reused.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The largest body a request may send: the configured limit, or for an operator's import of
/// a provider spec (`PUT …/provider-specs/…`) the largest document a spec may be, if that is
/// more — real OpenAPI documents are often several MiB. Only a request carrying the admin token
/// gets the larger limit: nobody else can make the server buffer megabytes.
fn body_limit(state: &AppState, parts: &axum::http::request::Parts) -> usize {
    let path = parts.uri.path();
    if parts.method == axum::http::Method::PUT
        && path.contains("/admin/v1/apps/")
        && path.contains("/provider-specs/")
        && Operator::presented_in(&parts.headers, state)
    {
        state
            .max_body_bytes
            .max(alter_core::provider_specs::MAX_DOCUMENT_BYTES)
    } else {
        state.max_body_bytes
    }
}

/// Middleware: authenticates and admits a signed SDK request (its body already buffered by
/// [`buffer_body`]).
pub async fn signed_request(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    if has_ambiguous_escape(parts.uri.path()) {
        return ApiError::ambiguous_path().into_response();
    }
    // Already in memory and within the limit (`buffer_body`): this only takes the bytes out.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::internal(&"the buffered body could not be read").into_response();
    };
    let caller = match admit(&state, &parts, &bytes).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let deprecated = caller.key_deprecated;
    // A request to a route that claims its nonce with its first write may end before one (a
    // refusal, a failure, a full queue, a client gone): its nonce is claimed then, so no
    // replay of it is ever admitted.
    let unsettled = SettleOnDrop {
        vault: state.vault.clone(),
        nonce: caller.pending_nonce.clone(),
    };
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    if unsettled.nonce.is_pending() {
        match state.vault.settle_nonce(&unsettled.nonce).await {
            Ok(()) => {}
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    if deprecated {
        response
            .headers_mut()
            .insert(headers::KEY_DEPRECATED, HeaderValue::from_static("true"));
    }
    response
}

/// Whether a raw path escapes `/`, `?` or `#`. The signature covers the fully decoded path, so
/// `…/ID%3Fforce=true` would sign like `…/ID?force=true` and `a%2Fb` like `a/b`: such paths are
/// refused before any signature is checked. The official client never sends them for its own
/// calls (its ids are UUIDs or server-issued).
fn has_ambiguous_escape(path: &str) -> bool {
    const AMBIGUOUS: [&[u8]; 3] = [b"%2F", b"%3F", b"%23"];
    path.as_bytes().windows(3).any(|w| {
        AMBIGUOUS
            .iter()
            .any(|escape| w.eq_ignore_ascii_case(escape))
    })
}

async fn admit(state: &AppState, parts: &Parts, body: &Bytes) -> Result<Caller, ApiError> {
    let h = &parts.headers;
    let api_key = header_str(h, headers::API_KEY).ok_or(Error::Unauthenticated)?;
    keyfmt::parse(api_key).map_err(|_| Error::Unauthenticated)?;
    // Everything checkable without the database first.
    let required = |name| header_str(h, name).ok_or(Error::Unauthenticated);
    let timestamp = required(headers::TIMESTAMP)?;
    let nonce = required(headers::NONCE)?;
    let content_sha256 = required(headers::CONTENT_SHA256)?;
    let signature = required(headers::SIGNATURE)?;
    if !alter_crypto::ct_eq(
        content_sha256.as_bytes(),
        signing::content_sha256(body).as_bytes(),
    ) {
        return Err(Error::Unauthenticated.into());
    }
    let target = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |pq| pq.as_str());
    let canonical_target = signing::canonical_target(target);
    let optional = |name| header_str(h, name);
    let input = SigningInput {
        method: parts.method.as_str(),
        canonical_target: &canonical_target,
        timestamp,
        nonce,
        content_sha256,
        scope_constraints: optional(headers::SCOPE_CONSTRAINTS),
        request_rule: optional(headers::REQUEST_RULE),
        caller: optional(headers::CALLER),
        caller_type: optional(headers::CALLER_TYPE),
        actor_id: optional(headers::ACTOR_ID),
        actor_context: optional(headers::CONTEXT),
    };
    let v2_matches = optional(headers::SIGNATURE_V2)
        .is_none_or(|v2| alter_crypto::ct_eq(v2.as_bytes(), signature.as_bytes()));
    let caller = state
        .vault
        .authenticate(
            api_key,
            || request_facts(parts, &input),
            |key| v2_matches && input.verify(key, signature),
            nonce_timing(parts),
        )
        .await?;
    Ok(caller)
}

/// Claims a nonce still pending when the request's handling is dropped half-way (the client
/// went away): in a task of its own, since a drop cannot wait.
struct SettleOnDrop {
    vault: alter_core::Vault,
    nonce: PendingNonce,
}

impl Drop for SettleOnDrop {
    fn drop(&mut self) {
        if self.nonce.is_pending() {
            let (vault, nonce) = (self.vault.clone(), self.nonce.clone());
            tokio::spawn(async move {
                if let Err(error) = vault.settle_nonce(&nonce).await {
                    tracing::warn!(%error, "the nonce of an abandoned request could not be claimed");
                }
            });
        }
    }
}

/// When admission records the nonce of a request to the route it matched (under any base
/// path), as the route table says ([`crate::routes::SdkRoute::nonce`]).
fn nonce_timing(parts: &Parts) -> NonceTiming {
    let Some(matched) = parts.extensions.get::<MatchedPath>() else {
        return NonceTiming::AtAdmission;
    };
    crate::routes::SDK_ROUTES
        .iter()
        .find(|route| {
            route.method == parts.method.as_str() && matched.as_str().ends_with(route.path)
        })
        .map_or(NonceTiming::AtAdmission, |route| route.nonce)
}

/// The facts admission reads off a signed request.
fn request_facts(parts: &Parts, input: &SigningInput<'_>) -> Result<RequestFacts, Error> {
    let non_empty = |v: Option<&str>| v.filter(|v| !v.is_empty()).map(str::to_owned);
    Ok(RequestFacts {
        timestamp: input.timestamp.to_owned(),
        nonce: input.nonce.to_owned(),
        peer: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip()),
        scope_constraints: input
            .scope_constraints
            .map(|c| c.split(',').map(|s| s.trim().to_owned()).collect()),
        request_rule: input
            .request_rule
            .map(RequestRule::from_header)
            .transpose()?,
        caller: non_empty(input.caller),
        caller_type: non_empty(input.caller_type),
        context: non_empty(input.actor_context)
            .as_deref()
            .map(decode_context)
            .transpose()?,
        trace_id: header_str(&parts.headers, "traceparent").and_then(trace_id_of),
    })
}

/// The trace id of a W3C `traceparent`, in hex; anything malformed is ignored: the header is
/// unsigned, a label for the audit log only.
fn trace_id_of(traceparent: &str) -> Option<String> {
    alter_upstream::otlp::parse_traceparent(traceparent).map(|(trace, _)| hex::encode(trace))
}

/// A header as text; `None` if absent or not visible ASCII.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What a route asks of its caller, as a type: see [`need`].
pub trait RequiredScope {
    /// Any one of these is enough; empty means a valid signature is enough. A marker naming a
    /// scope outside the catalogue fails, and so does every request to its route.
    fn any_of() -> Result<Vec<Scope>, UnknownScope>;
    /// False for control routes agents may not use (agents cannot manage agents).
    const AGENT_CALLERS: bool = true;
    /// True for the routes a paused agent may still call (`me()`, telemetry).
    const INACTIVE_AGENTS: bool = false;
}

/// An admitted caller holding the scope `S` needs.
#[derive(Debug)]
pub struct Authed<S>(pub Caller, pub PhantomData<S>);

impl<S: RequiredScope, St: Send + Sync> FromRequestParts<St> for Authed<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, ApiError> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal(&"route is missing the signed_request layer"))?;
        if !S::AGENT_CALLERS && caller.is_agent() {
            return Err(Error::AgentCannotMintSubagents.into());
        }
        match caller.agent.as_ref().map(|a| a.status) {
            Some(AgentStatus::Revoked) if !S::INACTIVE_AGENTS => {
                return Err(Error::AgentRevoked.into());
            }
            Some(AgentStatus::Inactive) if !S::INACTIVE_AGENTS => {
                return Err(Error::AgentInactive.into());
            }
            _ => {}
        }
        let needed = S::any_of().map_err(|e| ApiError::internal(&e))?;
        if !needed.is_empty() {
            caller.require_any(&needed)?;
        }
        Ok(Authed(caller, PhantomData))
    }
}

/// Scope markers for [`Authed`].
pub mod need {
    use super::RequiredScope;
    use alter_core::scope::{Scope, UnknownScope};

    macro_rules! scopes {
        ($($(#[$doc:meta])* $name:ident => [$($scope:literal),*] $(, $flag:ident = $value:literal)*;)*) => {
            $(
                $(#[$doc])*
                #[derive(Debug)]
                pub struct $name;
                impl RequiredScope for $name {
                    fn any_of() -> Result<Vec<Scope>, UnknownScope> {
                        let scopes: &[&str] = &[$($scope),*];
                        scopes.iter().map(|s| Scope::parse(s)).collect()
                    }
                    $(const $flag: bool = $value;)*
                }
            )*
        };
    }

    scopes! {
        /// A valid signature is enough.
        Signed => [];
        /// A valid signature, even from a paused agent (`Agent.me()`).
        SignedAnyAgent => [], INACTIVE_AGENTS = true;
        /// `keys:derive`.
        KeysDerive => ["keys:derive"];
        /// `keys:admin`.
        KeysAdmin => ["keys:admin"];
        /// `grants:read`.
        GrantsRead => ["grants:read"];
        /// `grants:write`.
        GrantsWrite => ["grants:write"];
        /// `secrets:write`.
        SecretsWrite => ["secrets:write"];
        /// `agents:read`, app callers only.
        AgentsRead => ["agents:read"], AGENT_CALLERS = false;
        /// `agents:write`, app callers only.
        AgentsWrite => ["agents:write"], AGENT_CALLERS = false;
        /// `agents:admin`, app callers only.
        AgentsAdmin => ["agents:admin"], AGENT_CALLERS = false;
        /// `idp_users:read`.
        IdpUsersRead => ["idp_users:read"];
        /// `idp_users:write`.
        IdpUsersWrite => ["idp_users:write"];
        /// `providers:read`.
        ProvidersRead => ["providers:read"];
        /// `connect:initiate`.
        ConnectInitiate => ["connect:initiate"];
        /// `approvals:read` or `proxy:execute` (protocol part 1 §6.3).
        ApprovalsRead => ["approvals:read", "proxy:execute"];
        /// A valid signature, even from a paused agent: telemetry (audit and span reports).
        Telemetry => [], INACTIVE_AGENTS = true;
    }
}

/// The operator, authenticated by `Authorization: Bearer <admin token>`.
#[derive(Debug)]
pub struct Operator;

impl Operator {
    /// True if `headers` carry the admin token (compared in constant time).
    fn presented_in(headers: &axum::http::HeaderMap, state: &AppState) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|token| {
                let presented = alter_crypto::keys::token_hash(token.trim());
                alter_crypto::ct_eq(&presented, &state.admin_token_hash)
            })
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if Operator::presented_in(&parts.headers, state) {
            Ok(Operator)
        } else {
            Err(ApiError::invalid_admin_token())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_markers_parse() {
        assert!(need::Signed::any_of().unwrap().is_empty());
        assert_eq!(
            need::KeysAdmin::any_of().unwrap(),
            vec![Scope::parse("keys:admin").unwrap()]
        );
    }
}
