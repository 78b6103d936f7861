//! `GET /sdk/scopes` (protocol part 1 §7.5).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The scope catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScopeCatalog {
    /// Bumped whenever the catalogue changes.
    pub scope_version: i64,
    /// Resources and the verbs each accepts (`read` < `write` < `admin`).
    pub resources: BTreeMap<String, ResourceVerbs>,
    /// Action scopes that are not part of the verb ladder (`tokens:retrieve`, …).
    pub action_verbs: Vec<String>,
    /// Scopes that still parse but should no longer be granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deprecated: Vec<String>,
}

/// The verbs of one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResourceVerbs {
    /// Verbs in increasing power.
    pub verbs: Vec<String>,
}
