//! Grants: bindings of a credential to a principal (user, group, system, agent), each with its
//! own id, lifetime and lifecycle. Delegations are grants too — children whose principal is an
//! agent — see `delegations`.

mod events;
mod lifetime;
mod model;
mod service;

pub use events::revocation_event;
pub(crate) use events::{grant_event, principal_json};
pub(crate) use lifetime::lifetime_end;
pub(crate) use lifetime::parse_lifetime as check_lifetime;
pub use model::{
    CreatedBy, Grant, GrantFilter, GrantLifetime, GrantPage, GrantState, GrantStateFilter,
    GrantStatus, GrantView, LifetimeInput, ListGrants, MAX_PAGE, MAX_TTL_SECONDS, NewPrincipal,
    Principal, PrincipalType, Viewer,
};
