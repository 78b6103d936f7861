//! JSON request bodies with Alter's rejections: a malformed body is a 422 `invalid_request`
//! naming where it is wrong, and never echoes the values it was given (they may be secrets). A
//! struct is read only from an object, never from an array (see [`strict`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

mod strict;

/// A JSON body of type `T`. An empty body reads as `{}`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|_| ApiError::invalid("cannot read the request body"))?;
        parse(&bytes).map(Json)
    }
}

/// Parses a JSON body, describing failures without echoing values.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(strict::Strict(deserializer)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let what = describe(&inner);
        if path == "." || path == "?" || path.is_empty() {
            ApiError::invalid(format!("invalid JSON body: {what}"))
        } else {
            ApiError::invalid(format!("invalid JSON body at `{path}`: {what}"))
        }
    })
}

/// serde's message without the offending value: "invalid type: string \"sk_…\", expected u32"
/// becomes "invalid type, expected u32".
fn describe(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => "malformed JSON".to_owned(),
        Category::Data => {
            let message = error.to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            for prefix in ["invalid type", "invalid value", "invalid length"] {
                if message.starts_with(prefix) {
                    return match message.split_once(", expected ") {
                        Some((_, expected)) => format!("{prefix}, expected {expected}"),
                        None => prefix.to_owned(),
                    };
                }
            }
            message
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        count: u32,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        value: u32,
    }

    fn message(body: &str) -> String {
        parse::<Body>(body.as_bytes())
            .unwrap_err()
            .body()
            .message
            .clone()
    }

    #[test]
    fn errors_name_the_place_not_the_value() {
        let m = message(r#"{"count":"sk_live_secret"}"#);
        assert_eq!(
            m,
            "invalid JSON body at `count`: invalid type, expected u32"
        );
        let m = message(r#"{"count":1,"inner":{"value":"sk_live_secret"}}"#);
        assert!(m.contains("`inner.value`") && !m.contains("sk_live"), "{m}");
        assert!(message(r#"{"count":1,"extra":"x"}"#).contains("unknown field `extra`"));
        assert!(message(r#"{}"#).contains("missing field `count`"));
        assert_eq!(message("{"), "invalid JSON body: malformed JSON");
        for not_an_object in ["[1, null]", " []", "null", "1", "\"x\""] {
            assert!(
                message(not_an_object).contains("expected struct Body"),
                "{not_an_object}"
            );
        }
        // Nor anywhere deeper.
        let m = message(r#"{"count":1,"inner":[7]}"#);
        assert_eq!(
            m,
            "invalid JSON body at `inner`: invalid type, expected struct Inner"
        );
        assert_eq!(
            parse::<Body>(br#"{"count":1,"inner":{"value":7}}"#)
                .unwrap()
                .inner
                .unwrap()
                .value,
            7
        );
        // Nor for an internally tagged enum, which serde reads as `["tag", fields…]` too.
        let tagged = |body: &str| parse::<alter_proto::grants::PrincipalBody>(body.as_bytes());
        assert!(tagged(r#"{"type":"system","label":"nightly"}"#).is_ok());
        for seq in [r#"["system","nightly"]"#, r#"["user","eyJ","alice"]"#] {
            let m = tagged(seq).unwrap_err().body().message.clone();
            assert!(m.contains("invalid type"), "{seq}: {m}");
        }
        assert!(
            parse::<Body>(b"")
                .unwrap_err()
                .body()
                .message
                .contains("missing field")
        );
    }
}

/// Query parameters of type `T`, with Alter's rejection.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|e| ApiError::invalid(format!("invalid query: {}", e.body_text())))
    }
}
