//! The wire protocol of Alter's `/sdk/*` API, shared by the server and the Rust SDK: request and
//! response shapes, the error envelope and its codes, request signing and the API key format.
//! Facts come from `shared/protocol/`, read off the official client `alter-sdk==0.29.0`.

pub mod admin;
pub mod agents;
pub mod approvals;
pub mod connect;
pub mod error;
pub mod grants;
pub mod idp_events;
pub mod keyfmt;
pub mod keys;
pub mod operators;
pub mod policies;
pub mod provider_specs;
pub mod providers;
pub mod proxy;
pub mod scopes;
pub mod signin;
pub mod signing;
pub mod spans;
pub mod token;
pub mod webhooks;

pub use error::{ErrorBody, codes};

/// What a `Debug` impl shows in place of a secret (a credential, an API key, a user's JWT).
pub const REDACTED: &str = "<redacted>";

/// `Some` secrets shown as [`REDACTED`], so `Debug` still tells whether one was given.
pub fn redact_option(value: Option<&String>) -> Option<&'static str> {
    value.map(|_| REDACTED)
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::json;

    const SECRET: &str = "alter_rk_s3cretValueThatMustNotShow";

    /// A value read off its wire form, formatted with `Debug`.
    fn debug_of<T: DeserializeOwned + std::fmt::Debug>(wire: serde_json::Value) -> String {
        let value: T = serde_json::from_value(wire).unwrap();
        format!("{value:?} {value:#?}")
    }

    fn key_info() -> serde_json::Value {
        json!({
            "id": "k", "name": "n", "key_prefix": "alter_rk_ab", "key_type": "runtime",
            "scopes": [], "scope_version": 1, "created_at": "2026-12-01T00:00:00Z",
        })
    }

    fn agent_info() -> serde_json::Value {
        json!({
            "id": "a", "name": "n", "type": "agent", "status": "active", "scopes": {},
            "policy": {}, "metadata": {}, "version": 1, "created_at": "2026-12-01T00:00:00Z",
        })
    }

    fn merged(mut base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
        if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        base
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let shown = [
            debug_of::<crate::token::TokenResponse>(json!({
                "access_token": SECRET, "token_type": "bearer", "expires_in": null,
                "expires_at": null, "scopes": [], "grant_id": "g", "provider_id": "p",
                "token_generation": null, "scope_mismatch": false,
                "injection_header": "Authorization", "injection_format": "Bearer {token}",
                "additional_credentials": {"secret_key": SECRET}, "additional_injections": null,
            })),
            debug_of::<crate::token::TokenRequest>(json!({
                "grant_id": "g", "reason": null, "user_token": SECRET,
                "request": {"method": "GET", "url": "https://api.example.com/"},
            })),
            debug_of::<crate::keys::MintedKey>(merged(key_info(), json!({"api_key": SECRET}))),
            debug_of::<crate::agents::AgentCreateResult>(merged(
                agent_info(),
                json!({"api_key": SECRET, "key_id": "k"}),
            )),
            debug_of::<crate::agents::AgentKeyMintResult>(json!({
                "key_id": "k", "key_prefix": "alter_ak_ab", "name": "n",
                "created_at": "2026-12-01T00:00:00Z", "api_key": SECRET,
            })),
            debug_of::<crate::admin::CreateSecretRequest>(
                json!({"name": "n", "type": "bearer", "value": SECRET}),
            ),
            debug_of::<crate::admin::RotateSecretRequest>(json!({ "value": SECRET })),
            debug_of::<crate::grants::ListGrantsRequest>(json!({ "user_token": SECRET })),
            debug_of::<crate::grants::RevokeGrantRequest>(json!({ "user_token": SECRET })),
            debug_of::<crate::providers::ConfigureProviderRequest>(
                json!({"client_id": "c", "client_secret": SECRET}),
            ),
            debug_of::<crate::connect::ConnectSessionRequest>(json!({ "user_token": SECRET })),
            debug_of::<crate::grants::PrincipalBody>(
                json!({"type": "user", "user_token": SECRET, "label": "l"}),
            ),
        ];
        for text in shown {
            assert!(!text.contains(SECRET), "{text}");
            assert!(text.contains(super::REDACTED), "{text}");
        }
    }
}
