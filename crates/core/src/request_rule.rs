//! The rule a caller attaches to its own requests (`with_constraints(rule=…)`), parsed once
//! when the request is admitted. It may only narrow what the key can do: a credential-using
//! call it forbids is refused, and a rule that needs to see the call's content can only be
//! enforced where the content is seen (the proxy).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::error::Error;

/// Largest `X-Alter-Request-Rule` header.
pub const MAX_HEADER_LEN: usize = 4096;

/// A request rule, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestRule {
    /// `json_match`: `{"when": {…}, "effect": "deny"}` — conditions on the call and what
    /// happens when they hold.
    JsonMatch {
        /// The conditions (on `method`, …).
        when: Option<Value>,
        /// The rule denies the calls it matches (`effect: deny`); otherwise it only describes
        /// them.
        denies: bool,
    },
    /// Any other kind (`content_match`, …): conditions on the call's content.
    Content {
        /// The kind as sent.
        kind: String,
        /// The rule as sent.
        body: Map<String, Value>,
    },
}

impl RequestRule {
    /// The rule of kind `kind` with body `body` (an object; every kind is accepted: an unknown
    /// one is enforced as a content rule, so it can only refuse).
    pub fn parse(kind: &str, body: Map<String, Value>) -> RequestRule {
        match kind {
            "json_match" => RequestRule::JsonMatch {
                denies: body.get("effect").and_then(Value::as_str) == Some("deny"),
                when: body.get("when").cloned(),
            },
            _ => RequestRule::Content {
                kind: kind.to_owned(),
                body,
            },
        }
    }

    /// The rule an `X-Alter-Request-Rule` header carries: base64url (no padding) of
    /// `{"rule_type": str, "rule_body": {…}}`, nothing else.
    pub fn from_header(header: &str) -> Result<RequestRule, Error> {
        let invalid = |why: &str| Error::InvalidAttenuation(format!("X-Alter-Request-Rule: {why}"));
        if header.len() > MAX_HEADER_LEN {
            return Err(invalid("at most 4096 characters"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(header.trim_end_matches('='))
            .map_err(|_| invalid("not base64url"))?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid("not JSON"))?;
        let object = value.as_object().ok_or_else(|| invalid("not an object"))?;
        if object.len() != 2 {
            return Err(invalid("must hold exactly rule_type and rule_body"));
        }
        match (object.get("rule_type"), object.get("rule_body")) {
            (Some(Value::String(rule_type)), Some(Value::Object(body))) => {
                Ok(RequestRule::parse(rule_type, body.clone()))
            }
            _ => Err(invalid(
                "rule_type must be a string and rule_body an object",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn kinds_are_told_apart() {
        let deny = RequestRule::parse(
            "json_match",
            body(json!({"when": {"method": "POST"}, "effect": "deny"})),
        );
        assert!(matches!(deny, RequestRule::JsonMatch { denies: true, .. }));
        let describe = RequestRule::parse("json_match", body(json!({"effect": "allow"})));
        assert!(matches!(
            describe,
            RequestRule::JsonMatch { denies: false, .. }
        ));
        let content = RequestRule::parse("content_match", body(json!({"field": "x"})));
        assert!(
            matches!(content, RequestRule::Content { ref kind, .. } if kind == "content_match")
        );
    }

    #[test]
    fn headers_decode_strictly() {
        let rule = RequestRule::from_header("eyJydWxlX3R5cGUiOiJqc29uX21hdGNoIiwicnVsZV9ib2R5Ijp7IndoZW4iOnsibWV0aG9kIjoiUE9TVCJ9LCJlZmZlY3QiOiJkZW55In19").unwrap();
        assert!(matches!(rule, RequestRule::JsonMatch { denies: true, .. }));
        for bad in [
            "!!!",
            &URL_SAFE_NO_PAD.encode("[]"),
            &URL_SAFE_NO_PAD.encode(r#"{"rule_type":"x"}"#),
            &URL_SAFE_NO_PAD.encode(r#"{"rule_type":"x","rule_body":{},"extra":1}"#),
            &URL_SAFE_NO_PAD.encode(r#"{"rule_type":1,"rule_body":{}}"#),
            &"a".repeat(4097),
        ] {
            assert!(
                matches!(
                    RequestRule::from_header(bad),
                    Err(Error::InvalidAttenuation(_))
                ),
                "{bad}"
            );
        }
    }
}
