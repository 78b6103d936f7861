//! The rule a caller attaches to its own requests (`with_constraints(rule=…)`), parsed once
//! when the request is admitted. It may only narrow what the key can do: a credential-using
//! call it forbids is refused, and a rule that needs to see the call's content can only be
//! enforced where the content is seen (the proxy).

use serde_json::{Map, Value};

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
}
