//! Request canonicalisation and signature checking (`alter_proto::signing`).
//!
//! Input: NUL-separated fields `target, method, timestamp, nonce, body, scopes, rule, caller,
//! caller_type, actor_id, context, api_key, signature`. Checked beyond "no panic":
//! - canonical_target is idempotent on its own output when the decoded path holds no `%` or
//!   `?` and the query did not canonicalise to nothing (the spec keeps that lone `?`);
//! - segments and query pairs encoded the client's way canonicalise back to their text;
//! - a signature made over an input verifies (in either hex case), and a changed digit, a
//!   shortened signature, one more byte in a bound field or another key does not.
#![no_main]

use alter_proto::signing::{
    SigningInput, canonical_target, content_sha256, encode_path_segment, encode_query,
    percent_decode, signing_key,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.split('\0');
    let mut next = || fields.next().unwrap_or("");
    let target = next();

    let canonical = canonical_target(target);
    let decoded_path = percent_decode(target.split_once('?').map_or(target, |(p, _)| p));
    if !decoded_path.contains(['%', '?']) && !canonical.ends_with('?') {
        assert_eq!(canonical_target(&canonical), canonical, "target {target:?}");
    }

    // The target's text cut into path segments and query pairs, encoded as the client does.
    let segments: Vec<&str> = target.split('/').collect();
    let pairs: Vec<(&str, &str)> = target
        .split('&')
        .map(|f| f.split_once('=').unwrap_or((f, "")))
        .collect();
    let encoded_path = segments
        .iter()
        .map(|s| encode_path_segment(s))
        .collect::<Vec<_>>()
        .join("/");
    assert_eq!(percent_decode(&encoded_path), segments.join("/"));
    let query = encode_query(&pairs);
    let built = format!("{encoded_path}?{query}");
    assert_eq!(
        canonical_target(&built),
        format!("{}?{query}", segments.join("/")),
        "built {built:?}"
    );

    let method = next();
    let timestamp = next();
    let nonce = next();
    let hash = content_sha256(next().as_bytes());
    let optional = |v: &str| Some(v.to_owned()).filter(|v| !v.is_empty());
    let (scopes, rule) = (optional(next()), optional(next()));
    let input = SigningInput {
        method,
        canonical_target: &canonical,
        timestamp,
        nonce,
        content_sha256: &hash,
        scope_constraints: scopes.as_deref(),
        request_rule: rule.as_deref(),
        caller: Some(next()),
        caller_type: Some(next()),
        actor_id: Some(next()),
        actor_context: Some(next()),
    };
    let api_key = next();
    let key = signing_key(api_key);
    let _ = input.verify(&key, next());

    let signature = input.sign(&key);
    assert!(input.verify(&key, &signature));
    assert!(input.verify(&key, &signature.to_uppercase()));
    let mut bytes = signature.clone().into_bytes();
    let at = data.len() % bytes.len();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    assert!(!input.verify(&key, &String::from_utf8_lossy(&bytes)));
    assert!(!input.verify(&key, &signature[..signature.len() - 2]));
    let longer_nonce = format!("{nonce}x");
    let changed = SigningInput {
        nonce: &longer_nonce,
        ..input.clone()
    };
    assert!(!changed.verify(&key, &signature));
    let longer_target = format!("{canonical}x");
    let changed = SigningInput {
        canonical_target: &longer_target,
        ..input.clone()
    };
    assert!(!changed.verify(&key, &signature));
    assert!(!input.verify(&signing_key(&format!("{api_key}x")), &signature));
});
