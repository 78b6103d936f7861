//! HMAC request signing, byte for byte as the official client signs (protocol part 1 §3).
//!
//! The client and the server share this module: the SDK signs with it and the server verifies
//! with it, so the two cannot drift apart.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Header names of the signed-request protocol (lower-case, as HTTP/2 and axum see them).
pub mod headers {
    /// The plaintext API key.
    pub const API_KEY: &str = "x-api-key";
    /// Unix seconds when the request was signed.
    pub const TIMESTAMP: &str = "x-alter-timestamp";
    /// 32 lower-case hex characters, never reused.
    pub const NONCE: &str = "x-alter-nonce";
    /// Lower-case hex SHA-256 of the body bytes.
    pub const CONTENT_SHA256: &str = "x-alter-content-sha256";
    /// The signature (v1, or v2 when identity headers are present).
    pub const SIGNATURE: &str = "x-alter-signature";
    /// The v2 signature, sent only when identity headers are present.
    pub const SIGNATURE_V2: &str = "x-alter-signature-v2";
    /// Attenuation: comma-separated scopes the request may use.
    pub const SCOPE_CONSTRAINTS: &str = "x-alter-scope-constraints";
    /// Attenuation: base64url JSON rule the request must satisfy.
    pub const REQUEST_RULE: &str = "x-alter-request-rule";
    /// Audit attribution chosen by the caller (or an agent UUID for impersonation).
    pub const CALLER: &str = "x-alter-caller";
    /// `agent` or `service`.
    pub const CALLER_TYPE: &str = "x-alter-caller-type";
    /// Actor UUID the server handed out earlier.
    pub const ACTOR_ID: &str = "x-alter-actor-id";
    /// Compact JSON audit context.
    pub const CONTEXT: &str = "x-alter-context";
    /// Response header: the key used is deprecated.
    pub const KEY_DEPRECATED: &str = "x-alter-key-deprecated";
    /// Request header of agent creation.
    pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
}

/// The message from which the signing key is derived.
pub const SIGNING_KEY_CONTEXT: &[u8] = b"alter-signing-v1";

/// SHA-256 of the empty body, the content hash of every GET and DELETE.
pub const EMPTY_BODY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A 32-byte HMAC key derived from a plaintext API key.
pub type SigningKey = [u8; 32];

/// `HMAC-SHA256(key = api_key, message = "alter-signing-v1")` (§3.1).
pub fn signing_key(api_key: &str) -> SigningKey {
    hmac_sha256(api_key.as_bytes(), SIGNING_KEY_CONTEXT)
}

/// Lower-case hex SHA-256 of a body.
pub fn content_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Everything bound by a signature (§3.2). Identity values that are absent or empty are
/// simply not signed.
#[derive(Debug, Clone, Default)]
pub struct SigningInput<'a> {
    /// Upper-case method.
    pub method: &'a str,
    /// Output of [`canonical_target`].
    pub canonical_target: &'a str,
    /// `X-Alter-Timestamp` as sent.
    pub timestamp: &'a str,
    /// `X-Alter-Nonce` as sent.
    pub nonce: &'a str,
    /// `X-Alter-Content-SHA256` as sent.
    pub content_sha256: &'a str,
    /// `X-Alter-Scope-Constraints`, if any.
    pub scope_constraints: Option<&'a str>,
    /// `X-Alter-Request-Rule`, if any.
    pub request_rule: Option<&'a str>,
    /// `X-Alter-Caller`, if any.
    pub caller: Option<&'a str>,
    /// `X-Alter-Caller-Type`, if any.
    pub caller_type: Option<&'a str>,
    /// `X-Alter-Actor-ID`, if any.
    pub actor_id: Option<&'a str>,
    /// `X-Alter-Context`, if any.
    pub actor_context: Option<&'a str>,
}

impl SigningInput<'_> {
    fn identity_lines(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("caller:", self.caller),
            ("caller-type:", self.caller_type),
            ("actor-id:", self.actor_id),
            ("actor-context:", self.actor_context),
        ]
        .into_iter()
        .filter_map(|(label, value)| value.filter(|v| !v.is_empty()).map(|v| (label, v)))
    }

    /// True when at least one identity value is bound, so the v2 form is mandatory.
    pub fn has_identity(&self) -> bool {
        self.identity_lines().next().is_some()
    }

    /// The string to sign: the v1 lines, then one line per non-empty identity value (§3.4).
    /// With no identity values this is exactly the v1 string.
    pub fn string_to_sign(&self) -> String {
        let mut s = [
            self.method,
            self.canonical_target,
            self.timestamp,
            self.nonce,
            self.content_sha256,
            self.scope_constraints.unwrap_or(""),
        ]
        .join("\n");
        if let Some(rule) = self.request_rule {
            s.push_str("\nrequest-rule:");
            s.push_str(rule);
        }
        for (label, value) in self.identity_lines() {
            s.push('\n');
            s.push_str(label);
            s.push_str(value);
        }
        s
    }

    /// Lower-case hex signature of [`Self::string_to_sign`].
    pub fn sign(&self, key: &SigningKey) -> String {
        hex::encode(hmac_sha256(key, self.string_to_sign().as_bytes()))
    }

    /// Constant-time check of a hex signature.
    pub fn verify(&self, key: &SigningKey, signature_hex: &str) -> bool {
        let Ok(signature) = hex::decode(signature_hex) else {
            return false;
        };
        let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
            return false;
        };
        mac.update(self.string_to_sign().as_bytes());
        mac.verify_slice(&signature).is_ok()
    }
}

/// The five headers that sign a request made without identity headers or attenuation: for
/// tools and tests that send requests of their own (the SDK's transport signs richer ones).
/// `target` is the path and query relative to the base URL; `timestamp` Unix seconds; `nonce`
/// 32 fresh lower-case hex characters.
pub fn plain_request_headers(
    api_key: &str,
    key: &SigningKey,
    method: &str,
    target: &str,
    body: &[u8],
    timestamp: u64,
    nonce: &str,
) -> [(&'static str, String); 5] {
    let timestamp = timestamp.to_string();
    let content_sha256 = content_sha256(body);
    let signature = SigningInput {
        method,
        canonical_target: &canonical_target(target),
        timestamp: &timestamp,
        nonce,
        content_sha256: &content_sha256,
        ..SigningInput::default()
    }
    .sign(key);
    [
        (headers::API_KEY, api_key.to_owned()),
        (headers::TIMESTAMP, timestamp),
        (headers::NONCE, nonce.to_owned()),
        (headers::CONTENT_SHA256, content_sha256),
        (headers::SIGNATURE, signature),
    ]
}

/// `HMAC-SHA256(key, message)`, raw bytes (keys of every length are accepted).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    #[allow(clippy::expect_used)]
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of every length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Canonical path + query of a request target relative to the base URL (§3.3): the path fully
/// percent-decoded (`%2F` included, `+` kept), the query decoded form-style, sorted by
/// (name, value) and re-encoded form-style.
pub fn canonical_target(target: &str) -> String {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, query),
        None => (target, ""),
    };
    let mut out = percent_decode(path);
    if !query.is_empty() {
        let mut pairs: Vec<(String, String)> = query
            .split('&')
            .filter(|field| !field.is_empty())
            .map(|field| {
                let (name, value) = field.split_once('=').unwrap_or((field, ""));
                (form_decode(name), form_decode(value))
            })
            .collect();
        pairs.sort();
        out.push('?');
        let encoded: Vec<String> = pairs
            .iter()
            .map(|(name, value)| format!("{}={}", form_encode(name), form_encode(value)))
            .collect();
        out.push_str(&encoded.join("&"));
    }
    out
}

/// Encodes a query in the canonical form the client sends: `name=value` pairs, form-encoded,
/// sorted, joined with `&`.
pub fn encode_query(pairs: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(&str, &str)> = pairs.to_vec();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", form_encode(name), form_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a path segment with no character kept safe except unreserved ones, as the
/// client's `quote(value, safe="")` does.
pub fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for &b in segment.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (malformed ones are kept as they are), then UTF-8 with replacement.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|b| hex_value(*b)),
                bytes.get(i + 2).and_then(|b| hex_value(*b)),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form_decode(s: &str) -> String {
    percent_decode(&s.replace('+', " "))
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b' ' => out.push('+'),
            b if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') => {
                out.push(char::from(b))
            }
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "alter_rk_abcdefghijklmnopqrstuv_iwpykn";
    const TS: &str = "1700000000";
    const NONCE: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn signing_key_vector() {
        assert_eq!(
            hex::encode(signing_key(KEY)),
            "d686d74251939c285fe8fa5ad18c0e2003f1ca17a5346e7838389386c1ac079f"
        );
    }

    #[test]
    fn vector_v1_get_scopes() {
        let input = SigningInput {
            method: "GET",
            canonical_target: "/sdk/scopes",
            timestamp: TS,
            nonce: NONCE,
            content_sha256: &content_sha256(b""),
            ..Default::default()
        };
        assert_eq!(input.content_sha256, EMPTY_BODY_SHA256);
        assert_eq!(
            input.string_to_sign(),
            format!("GET\n/sdk/scopes\n{TS}\n{NONCE}\n{EMPTY_BODY_SHA256}\n")
        );
        assert!(!input.has_identity());
        let sig = input.sign(&signing_key(KEY));
        assert_eq!(
            sig,
            "37d18fb521e3e92bbab3b83ea9a61c0566b6545126ece20da832ede871a9ae2c"
        );
        assert!(input.verify(&signing_key(KEY), &sig));
    }

    #[test]
    fn plain_request_headers_match_the_vector() {
        let headers = plain_request_headers(
            KEY,
            &signing_key(KEY),
            "GET",
            "/sdk/scopes",
            b"",
            1_700_000_000,
            NONCE,
        );
        let value = |name: &str| headers.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        assert_eq!(value(headers::API_KEY), KEY);
        assert_eq!(value(headers::TIMESTAMP), TS);
        assert_eq!(value(headers::NONCE), NONCE);
        assert_eq!(value(headers::CONTENT_SHA256), EMPTY_BODY_SHA256);
        assert_eq!(
            value(headers::SIGNATURE),
            "37d18fb521e3e92bbab3b83ea9a61c0566b6545126ece20da832ede871a9ae2c"
        );
    }

    #[test]
    fn vector_v2_token_with_identity() {
        let body = br#"{"grant_id":"11111111-2222-4333-8444-555555555555","reason":null,"request":{"method":"GET","url":"http://127.0.0.1:42285/p"}}"#;
        let hash = content_sha256(body);
        assert_eq!(
            hash,
            "1348e5690b7fe4d7fa62c5bd1aa4ffaa969491839731e277447b31124e1b50c2"
        );
        let input = SigningInput {
            method: "POST",
            canonical_target: "/sdk/token",
            timestamp: TS,
            nonce: NONCE,
            content_sha256: &hash,
            caller: Some("my-svc"),
            caller_type: Some("service"),
            actor_context: Some(r#"{"run_id":"r1"}"#),
            ..Default::default()
        };
        assert!(input.has_identity());
        assert_eq!(
            input.string_to_sign(),
            format!(
                "POST\n/sdk/token\n{TS}\n{NONCE}\n{hash}\n\ncaller:my-svc\ncaller-type:service\nactor-context:{{\"run_id\":\"r1\"}}"
            )
        );
        assert_eq!(
            input.sign(&signing_key(KEY)),
            "6036fc8b3c23b84fcce44791ea1419f21aff337fb5dfafe4d96e808ca2b26287"
        );
    }

    #[test]
    fn vector_v3_constrained_client() {
        let rule = "eyJydWxlX3R5cGUiOiJqc29uX21hdGNoIiwicnVsZV9ib2R5Ijp7IndoZW4iOnsibWV0aG9kIjoiUE9TVCJ9LCJlZmZlY3QiOiJkZW55In19";
        let target = canonical_target(
            "/sdk/provider-specs/oauth/goo%20gle/operations?limit=5&offset=0&search=a+b",
        );
        assert_eq!(
            target,
            "/sdk/provider-specs/oauth/goo gle/operations?limit=5&offset=0&search=a+b"
        );
        let input = SigningInput {
            method: "GET",
            canonical_target: &target,
            timestamp: TS,
            nonce: NONCE,
            content_sha256: EMPTY_BODY_SHA256,
            scope_constraints: Some("providers:read"),
            request_rule: Some(rule),
            ..Default::default()
        };
        assert_eq!(
            input.sign(&signing_key(KEY)),
            "22f159c0368365c554b75a8ddc7a846c6694568d92b8474a9e48319fd7092aed"
        );
    }

    #[test]
    fn a_tampered_input_fails_verification() {
        let input = SigningInput {
            method: "GET",
            canonical_target: "/sdk/scopes",
            timestamp: TS,
            nonce: NONCE,
            content_sha256: EMPTY_BODY_SHA256,
            ..Default::default()
        };
        let sig = input.sign(&signing_key(KEY));
        let tampered = SigningInput {
            canonical_target: "/sdk/keys",
            ..input.clone()
        };
        assert!(!tampered.verify(&signing_key(KEY), &sig));
        assert!(!input.verify(&signing_key("alter_key_other"), &sig));
        assert!(!input.verify(&signing_key(KEY), "not-hex"));
        assert!(!input.verify(&signing_key(KEY), &sig[..62]));
    }

    #[test]
    fn canonical_path_is_fully_decoded() {
        assert_eq!(
            canonical_target("/sdk/provider-specs/oauth/goo%20gle%2Fx/operation"),
            "/sdk/provider-specs/oauth/goo gle/x/operation"
        );
        assert_eq!(canonical_target("/a+b/%zz/%4"), "/a+b/%zz/%4");
        assert_eq!(canonical_target("/%C3%A9"), "/é");
        assert_eq!(canonical_target("/%FF"), "/\u{fffd}");
        assert_eq!(canonical_target("/x?"), "/x");
    }

    #[test]
    fn canonical_query_examples() {
        let cases = [
            ("a", "a="),
            ("b=2&a=1&a=0", "a=0&a=1&b=2"),
            ("x=a%20b", "x=a+b"),
            ("x=%7E~", "x=~~"),
            ("k=v=w", "k=v%3Dw"),
            ("x=%2F/", "x=%2F%2F"),
            ("&", ""),
            ("a=1&&b=", "a=1&b="),
        ];
        for (query, canonical) in cases {
            assert_eq!(
                canonical_target(&format!("/p?{query}")),
                format!("/p?{canonical}"),
                "{query}"
            );
        }
    }

    #[test]
    fn path_segments_and_queries_encode_like_the_client() {
        assert_eq!(encode_path_segment("a b/c~"), "a%20b%2Fc~");
        assert_eq!(
            encode_query(&[("offset", "0"), ("limit", "5"), ("search", "a b")]),
            "limit=5&offset=0&search=a+b"
        );
    }
}
