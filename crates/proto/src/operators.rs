//! `/admin/v1/operators`: the portal's operator accounts (Alter's own protocol).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::REDACTED;

/// An operator account (never its password or hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OperatorInfo {
    /// Operator UUID.
    pub id: String,
    /// Sign-in name.
    pub username: String,
    /// Creation time.
    pub created_at: String,
    /// Last password change.
    pub password_changed_at: String,
}

/// `POST /admin/v1/operators`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddOperatorRequest {
    /// Sign-in name: lower-case letters, digits, `.`, `_`, `-`.
    pub username: String,
    /// The password (12 to 1024 characters); only its Argon2id hash is kept.
    pub password: String,
}

impl fmt::Debug for AddOperatorRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddOperatorRequest")
            .field("username", &self.username)
            .field("password", &REDACTED)
            .finish()
    }
}

/// `PUT /admin/v1/operators/{username}/password`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetOperatorPasswordRequest {
    /// The new password.
    pub password: String,
}

impl fmt::Debug for SetOperatorPasswordRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetOperatorPasswordRequest")
            .field("password", &REDACTED)
            .finish()
    }
}
