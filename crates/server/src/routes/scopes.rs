//! `GET /sdk/scopes`: the scope catalogue.

use std::collections::BTreeMap;

use alter_core::scope::{ACTIONS, RESOURCES, SCOPE_VERSION, VERBS};
use alter_proto::scopes::{ResourceVerbs, ScopeCatalog};
use axum::Json;

use crate::auth::{Authed, need};

pub async fn list(_: Authed<need::Signed>) -> Json<ScopeCatalog> {
    let verbs = || ResourceVerbs {
        verbs: VERBS.iter().map(|v| (*v).to_owned()).collect(),
    };
    Json(ScopeCatalog {
        scope_version: SCOPE_VERSION,
        resources: RESOURCES
            .iter()
            .map(|r| ((*r).to_owned(), verbs()))
            .collect::<BTreeMap<_, _>>(),
        action_verbs: ACTIONS.iter().map(|a| (*a).to_owned()).collect(),
        deprecated: Vec::new(),
    })
}
