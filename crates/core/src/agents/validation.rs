//! Validation of what callers send about agents, parsed once into the model's types.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, ensure};

use super::model::{AgentAllowlist, ApprovalSettings, MANAGED_SECRET_SLUGS};

/// Largest `scopes` object, serialized.
const MAX_SCOPES_BYTES: usize = 12 * 1024;
/// Largest `metadata` or `policy` object, serialized.
const MAX_OBJECT_BYTES: usize = 16 * 1024;

/// Lower-case letters, digits, `-` and `_`, starting with a letter or digit, at most 64.
pub(super) fn validate_name(name: &str) -> Result<&str> {
    let mut bytes = name.bytes();
    let ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.len() <= 64;
    ensure(ok, || {
        format!(
            "name {name:?} must be 1-64 lower-case letters, digits, - or _ (starting with a letter or digit)"
        )
    })?;
    Ok(name)
}

/// `{provider: [scope, …]}` (with `managed_secret_slugs` naming secrets): non-empty keys and
/// lists of non-empty strings, without edge whitespace, at most 12 KiB. The legacy
/// `managed_secrets` key accepts no new names.
pub(super) fn validate_allowlist(scopes: &Value) -> Result<AgentAllowlist> {
    let map = scopes
        .as_object()
        .ok_or_else(|| Error::Invalid("scopes must be an object of provider → scopes".into()))?;
    ensure(scopes.to_string().len() <= MAX_SCOPES_BYTES, || {
        "scopes must serialize to at most 12 KiB".into()
    })?;
    let clean = |s: &str| !s.is_empty() && s.trim() == s;
    let mut allowlist = AgentAllowlist::default();
    for (key, value) in map {
        ensure(clean(key), || {
            format!("scopes key {key:?} must be non-empty without edge whitespace")
        })?;
        if key == "managed_secrets" {
            return Err(Error::LegacyManagedSecretNameRejected);
        }
        let list = value.as_array().filter(|l| !l.is_empty()).ok_or_else(|| {
            Error::Invalid(format!("scopes.{key} must be a non-empty list of strings"))
        })?;
        let list = list
            .iter()
            .map(|v| v.as_str().filter(|s| clean(s)).map(str::to_owned))
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "scopes.{key} must hold non-empty strings without edge whitespace"
                ))
            })?;
        match key.as_str() {
            MANAGED_SECRET_SLUGS => allowlist.managed_secret_slugs = list,
            _ => {
                allowlist.providers.insert(key.clone(), list);
            }
        }
    }
    Ok(allowlist)
}

pub(super) fn object(field: &str, value: Option<&Value>) -> Result<Map<String, Value>> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => {
            ensure(
                value.map(|v| v.to_string().len()).unwrap_or(0) <= MAX_OBJECT_BYTES,
                || format!("{field} must serialize to at most 16 KiB"),
            )?;
            Ok(map.clone())
        }
        Some(_) => Err(Error::Invalid(format!("{field} must be an object"))),
    }
}

/// Approval settings: `requires_approval` (bool), `approvers` (list of non-empty strings),
/// `approval_ttl_seconds` (positive integer), nothing else.
pub(super) fn validate_approval(policy: Option<&Value>) -> Result<ApprovalSettings> {
    let map = object("policy", policy)?;
    let invalid = || {
        Error::Invalid(
            "policy: expected requires_approval (bool), approvers (list of non-empty strings) or approval_ttl_seconds (positive integer)".into(),
        )
    };
    // A null is a malformed setting, not an absent one.
    if map.values().any(Value::is_null) {
        return Err(invalid());
    }
    let settings: ApprovalSettings =
        serde_json::from_value(Value::Object(map)).map_err(|_| invalid())?;
    let approvers_ok = settings.approvers.iter().flatten().all(|a| !a.is_empty());
    let ttl_ok = settings.approval_ttl_seconds.is_none_or(|t| t > 0);
    ensure(approvers_ok && ttl_ok, || invalid().to_string())?;
    Ok(settings)
}

pub(super) fn request_fingerprint(value: &Value) -> [u8; 32] {
    Sha256::digest(value.to_string().as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn allowlist(v: Value) -> AgentAllowlist {
        validate_allowlist(&v).unwrap()
    }

    #[test]
    fn names() {
        for ok in ["research-bot", "a", "bot_2", "0x"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Bot", "-bot", "bot name", "bot.x", &"a".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_shape() {
        assert!(validate_allowlist(&json!({})).is_ok());
        assert!(
            validate_allowlist(
                &json!({"google": ["gmail.readonly"], "managed_secret_slugs": ["stripe"]})
            )
            .is_ok()
        );
        for bad in [
            json!([]),
            json!({"google": []}),
            json!({"google": [""]}),
            json!({" google": ["x"]}),
            json!({"google": "x"}),
            json!({"google": [" x"]}),
        ] {
            assert!(
                matches!(validate_allowlist(&bad), Err(Error::Invalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            validate_allowlist(&json!({"managed_secrets": ["Stripe"]})),
            Err(Error::LegacyManagedSecretNameRejected)
        ));
    }

    #[test]
    fn narrowing_is_detected_and_staged_as_a_union() {
        let current = allowlist(
            json!({"google": ["a", "b"], "slack": ["x"], "managed_secret_slugs": ["stripe"]}),
        );
        assert!(!current.narrowed_by(&allowlist(json!({
            "google": ["a", "b", "c"], "slack": ["x"], "managed_secret_slugs": ["stripe", "gh"]
        }))));
        assert!(current.narrowed_by(&allowlist(
            json!({"google": ["a"], "slack": ["x"], "managed_secret_slugs": ["stripe"]})
        )));
        assert!(current.narrowed_by(&allowlist(
            json!({"google": ["a", "b"], "managed_secret_slugs": ["stripe"]})
        )));
        assert!(current.narrowed_by(&allowlist(json!({"google": ["a", "b"], "slack": ["x"]}))));
        let merged = current.union(&allowlist(
            json!({"google": ["c"], "github": ["repo"], "managed_secret_slugs": ["gh"]}),
        ));
        assert_eq!(
            merged,
            allowlist(json!({
                "google": ["a", "b", "c"], "slack": ["x"], "github": ["repo"],
                "managed_secret_slugs": ["stripe", "gh"]
            }))
        );
        assert!(merged.names_secret("gh") && !merged.names_secret("other"));
    }

    #[test]
    fn allowlists_read_back_as_written() {
        let written = json!({"google": ["a"], "managed_secret_slugs": ["stripe"]});
        assert_eq!(
            serde_json::to_value(allowlist(written.clone())).unwrap(),
            written
        );
        let settings = json!({"requires_approval": false, "approvers": ["ops"]});
        let parsed = validate_approval(Some(&settings)).unwrap();
        assert!(!parsed.requires_approval());
        assert_eq!(serde_json::to_value(parsed).unwrap(), settings);
    }

    #[test]
    fn policies() {
        assert!(
            validate_approval(Some(
                &json!({"requires_approval": true, "approvers": ["ops"]})
            ))
            .is_ok()
        );
        assert!(validate_approval(Some(&json!({"requires_approval": "yes"}))).is_err());
        assert!(validate_approval(Some(&json!({"unknown": 1}))).is_err());
        for null in ["requires_approval", "approvers", "approval_ttl_seconds"] {
            assert!(
                validate_approval(Some(&json!({ null: null }))).is_err(),
                "{null}"
            );
        }
        assert!(validate_approval(Some(&json!([]))).is_err());
    }
}
