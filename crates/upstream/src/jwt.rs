//! [`JwtVerifier`]: end-user JWTs checked against an app's identity provider.

use std::collections::HashSet;

use alter_core::identity::{
    ClaimMapping, IdentityProvider, JwksSource, JwtAlgorithm, TokenError, VerifiedToken,
};
use alter_core::ports::TokenVerifier;
use alter_core::time::Timestamp;
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::Error;
use crate::jwks::{JwksCache, KeySet};

/// The longest token looked at (IdPs that put many groups in a token reach a few KiB).
const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Verifies JWTs with the keys of the IdP's JWKS: inline, or fetched over the hardened client
/// and cached per URL (see [`crate::jwks::CACHE_TTL_SECONDS`] and
/// [`crate::jwks::MIN_REFETCH_INTERVAL_SECONDS`]). Cache ages are measured with the `now` each
/// call is given. Share one verifier per process.
#[derive(Debug)]
pub struct JwtVerifier {
    client: reqwest::Client,
    cache: JwksCache,
}

impl JwtVerifier {
    /// A verifier with an empty key cache.
    pub fn new() -> Result<JwtVerifier, Error> {
        Ok(JwtVerifier {
            client: crate::http::client()?,
            cache: JwksCache::default(),
        })
    }

    /// The key that verifies a token of `alg` with `kid`, refetching a URL's set once when the
    /// cached one lacks it (rotation at the IdP).
    async fn key(
        &self,
        source: &JwksSource,
        alg: JwtAlgorithm,
        kid: Option<&str>,
        now: Timestamp,
    ) -> Result<DecodingKey, TokenError> {
        let not_found = || {
            invalid(if kid.is_some() {
                "unknown kid"
            } else {
                "no usable key"
            })
        };
        match source {
            JwksSource::Inline(document) => KeySet::parse(document.as_bytes())
                .map_err(|reason| TokenError::KeysUnavailable(reason.into()))?
                .select(alg, kid)?
                .ok_or_else(not_found),
            JwksSource::Url(url) => {
                let cached = self.cache.get(&self.client, url, now, false).await?;
                if let Some(key) = cached.select(alg, kid)? {
                    return Ok(key);
                }
                self.cache
                    .get(&self.client, url, now, true)
                    .await?
                    .select(alg, kid)?
                    .ok_or_else(not_found)
            }
        }
    }
}

#[async_trait]
impl TokenVerifier for JwtVerifier {
    async fn verify(
        &self,
        idp: &IdentityProvider,
        token: &str,
        now: Timestamp,
    ) -> Result<VerifiedToken, TokenError> {
        let header = TokenHeader::parse(token)?;
        let alg = allowed_algorithm(&header.alg, &idp.algorithms)?;
        let key = self.key(&idp.jwks, alg, header.kid.as_deref(), now).await?;
        let claims = verify_signature(token, &key, alg)?;
        let (expires_at, issued_at) = check_registered_claims(idp, &claims, now)?;
        read_claims(&idp.claims, &claims, expires_at, issued_at)
    }

    fn check_source(&self, source: &JwksSource) -> Result<(), String> {
        match source {
            JwksSource::Url(url) => crate::http::outbound_url(url).map(drop),
            JwksSource::Inline(document) => KeySet::check_document(document.as_bytes()),
        }
        .map_err(str::to_owned)
    }
}

/// The `jsonwebtoken` name of an algorithm.
pub(crate) fn jose(alg: JwtAlgorithm) -> Algorithm {
    match alg {
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

fn invalid(reason: &str) -> TokenError {
    TokenError::Invalid(reason.into())
}

/// The header members read before a key is chosen.
#[derive(Debug, serde::Deserialize)]
struct TokenHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

impl TokenHeader {
    fn parse(token: &str) -> Result<TokenHeader, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("token too large"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("malformed token"));
        };
        let header: TokenHeader = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or_else(|| invalid("malformed token"))?;
        // `crit` names extensions the verifier must understand (RFC 7515 §4.1.11); we know none.
        if header.crit.is_some() {
            return Err(invalid("unsupported critical header"));
        }
        Ok(header)
    }
}

/// The header's `alg` if the IdP accepts it. `none` and the HMAC family are no
/// [`JwtAlgorithm`], so they never pass.
fn allowed_algorithm(alg: &str, allowed: &[JwtAlgorithm]) -> Result<JwtAlgorithm, TokenError> {
    JwtAlgorithm::parse(alg)
        .filter(|alg| allowed.contains(alg))
        .ok_or_else(|| invalid("algorithm not allowed"))
}

/// Checks the signature and returns the claims.
fn verify_signature(
    token: &str,
    key: &DecodingKey,
    alg: JwtAlgorithm,
) -> Result<Map<String, Value>, TokenError> {
    let mut validation = Validation::new(jose(alg));
    // Only the signature here: time, issuer and audience are checked against the injected
    // `now` by `check_registered_claims` (the library would read the system clock).
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|error| {
            invalid(match error.kind() {
                ErrorKind::InvalidSignature => "bad signature",
                ErrorKind::InvalidAlgorithm => "key does not match the token's algorithm",
                ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidEddsaKey
                | ErrorKind::InvalidRsaKey(_)
                | ErrorKind::InvalidKeyFormat => "unusable key",
                _ => "malformed token",
            })
        })
}

/// Checks `iss`, `aud`, `exp`, `nbf` and `iat` (with the IdP's leeway, against `now`) and
/// returns the expiry and the issue time (`iat` is optional, but one from the future would
/// make the token's group membership outrank every later token's).
fn check_registered_claims(
    idp: &IdentityProvider,
    claims: &Map<String, Value>,
    now: Timestamp,
) -> Result<(Timestamp, Option<Timestamp>), TokenError> {
    match claims.get("iss") {
        None => return Err(invalid("missing iss")),
        Some(Value::String(iss)) if *iss == idp.issuer => {}
        Some(_) => return Err(invalid("wrong issuer")),
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        None => return Err(invalid("missing aud")),
        Some(Value::String(aud)) => vec![aud],
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
        Some(_) => vec![],
    };
    if !audiences
        .iter()
        .any(|aud| idp.audiences.iter().any(|accepted| accepted == aud))
    {
        return Err(invalid("wrong audience"));
    }
    let leeway = idp.leeway_seconds.max(0);
    let expires_at = claims
        .get("exp")
        .ok_or_else(|| invalid("missing exp"))
        .and_then(|exp| numeric_date(exp).ok_or_else(|| invalid("malformed exp")))?;
    if expires_at <= now.plus_seconds(-leeway) {
        return Err(invalid("expired"));
    }
    if let Some(nbf) = claims.get("nbf") {
        let not_before = numeric_date(nbf).ok_or_else(|| invalid("malformed nbf"))?;
        if not_before > now.plus_seconds(leeway) {
            return Err(invalid("not yet valid"));
        }
    }
    let issued_at = claims
        .get("iat")
        .map(|iat| numeric_date(iat).ok_or_else(|| invalid("malformed iat")))
        .transpose()?;
    if issued_at.is_some_and(|iat| iat > now.plus_seconds(leeway)) {
        return Err(invalid("issued in the future"));
    }
    Ok((expires_at, issued_at))
}

/// A JWT NumericDate: seconds since the epoch, possibly with a fraction.
fn numeric_date(value: &Value) -> Option<Timestamp> {
    if let Some(seconds) = value.as_i64() {
        return Some(Timestamp::from_unix_seconds(seconds));
    }
    let seconds = value.as_f64().filter(|seconds| seconds.is_finite())?;
    // `as` saturates: absurd dates become the far past or future, which the checks handle.
    Some(Timestamp::from_micros((seconds * 1e6) as i64))
}

/// Reads the mapped claims.
fn read_claims(
    mapping: &ClaimMapping,
    claims: &Map<String, Value>,
    expires_at: Timestamp,
    issued_at: Option<Timestamp>,
) -> Result<VerifiedToken, TokenError> {
    let subject = match claim(claims, &mapping.subject) {
        Some(Value::String(subject)) if !subject.is_empty() => subject.clone(),
        _ => return Err(invalid("missing subject")),
    };
    let groups = match &mapping.groups {
        Some(name) => groups(claim(claims, name))?,
        None => Vec::new(),
    };
    // Profile claims only decorate the user: a non-string one is ignored, not fatal.
    let text = |name: &Option<String>| {
        name.as_deref()
            .and_then(|name| claim(claims, name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Ok(VerifiedToken {
        subject,
        groups,
        email: text(&mapping.email),
        name: text(&mapping.name),
        expires_at,
        issued_at,
    })
}

/// A claim by name: an exact top-level key first (Auth0's namespaced claims such as
/// `https://example.com/groups` contain dots), then a dotted path into nested objects
/// (Keycloak's `realm_access.roles`).
fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(name) {
        return Some(value);
    }
    let mut path = name.split('.');
    let first = claims.get(path.next()?)?;
    path.try_fold(first, |value, key| value.as_object()?.get(key))
}

/// Group ids from an array of strings or one string; absent or null is none. Empty and repeated
/// ids are dropped.
fn groups(value: Option<&Value>) -> Result<Vec<String>, TokenError> {
    let not_strings = || invalid("groups claim is not a list of strings");
    let mut groups = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(group)) => vec![group.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(not_strings))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(not_strings()),
    };
    let mut seen = HashSet::new();
    groups.retain(|group| !group.is_empty() && seen.insert(group.clone()));
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use alter_core::ids::{AppId, IdpId};
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn idp() -> IdentityProvider {
        IdentityProvider {
            id: IdpId::new(),
            app_id: AppId::new(),
            issuer: "https://idp.example.com/".into(),
            audiences: vec!["alter".into(), "api".into()],
            jwks: JwksSource::Inline(r#"{"keys":[]}"#.into()),
            algorithms: vec![JwtAlgorithm::ES256, JwtAlgorithm::EdDSA],
            claims: ClaimMapping::default(),
            leeway_seconds: 30,
            created_at: Timestamp::from_unix_seconds(0),
            updated_at: Timestamp::from_unix_seconds(0),
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn registered(extra: Value) -> Result<(Timestamp, Option<Timestamp>), TokenError> {
        let mut claims = object(json!({
            "iss": "https://idp.example.com/", "aud": "alter", "exp": NOW + 60,
        }));
        for (name, value) in object(extra) {
            if value.is_null() {
                claims.remove(&name);
            } else {
                claims.insert(name, value);
            }
        }
        check_registered_claims(&idp(), &claims, Timestamp::from_unix_seconds(NOW))
    }

    fn reason(result: Result<impl std::fmt::Debug, TokenError>) -> String {
        match result {
            Err(TokenError::Invalid(reason)) => reason,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn only_the_idps_asymmetric_algorithms() {
        let allowed = [JwtAlgorithm::ES256, JwtAlgorithm::EdDSA];
        assert_eq!(
            allowed_algorithm("ES256", &allowed),
            Ok(JwtAlgorithm::ES256)
        );
        assert_eq!(
            allowed_algorithm("EdDSA", &allowed),
            Ok(JwtAlgorithm::EdDSA)
        );
        for refused in ["RS256", "none", "None", "HS256", "HS512", "es256", ""] {
            assert_eq!(
                reason(allowed_algorithm(refused, &allowed)),
                "algorithm not allowed"
            );
        }
    }

    #[test]
    fn header_is_read_before_any_key() {
        let encode = |header: &str| format!("{}.e30.sig", URL_SAFE_NO_PAD.encode(header));
        let header = TokenHeader::parse(&encode(r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#))
            .expect("valid header");
        assert_eq!(header.alg, "ES256");
        assert_eq!(header.kid.as_deref(), Some("k1"));
        assert_eq!(
            TokenHeader::parse(&encode(r#"{"alg":"ES256"}"#))
                .expect("no kid")
                .kid,
            None
        );
        assert_eq!(
            reason(TokenHeader::parse(&encode(
                r#"{"alg":"ES256","crit":["b64"],"b64":false}"#
            ))),
            "unsupported critical header"
        );
        for malformed in [
            String::new(),
            "a.b".into(),
            "a.b.c.d".into(),
            "!!!.e30.sig".into(),
            encode("not json"),
            encode(r#"{"kid":"no alg"}"#),
            encode(r#"{"alg":"ES256","kid":7}"#),
        ] {
            assert_eq!(reason(TokenHeader::parse(&malformed)), "malformed token");
        }
        let huge = encode(&format!(
            r#"{{"alg":"ES256","x":"{}"}}"#,
            "a".repeat(70_000)
        ));
        assert_eq!(reason(TokenHeader::parse(&huge)), "token too large");
    }

    #[test]
    fn issuer_and_audience() {
        assert_eq!(
            registered(json!({})),
            Ok((Timestamp::from_unix_seconds(NOW + 60), None))
        );
        assert_eq!(reason(registered(json!({"iss": null}))), "missing iss");
        assert_eq!(
            reason(registered(json!({"iss": "https://idp.example.com"}))),
            "wrong issuer"
        );
        assert_eq!(
            reason(registered(json!({"iss": ["https://idp.example.com/"]}))),
            "wrong issuer"
        );
        assert!(registered(json!({"aud": ["other", "api"]})).is_ok());
        assert_eq!(reason(registered(json!({"aud": null}))), "missing aud");
        assert_eq!(
            reason(registered(json!({"aud": "other"}))),
            "wrong audience"
        );
        assert_eq!(reason(registered(json!({"aud": []}))), "wrong audience");
        assert_eq!(reason(registered(json!({"aud": 7}))), "wrong audience");
    }

    #[test]
    fn expiry_and_not_before_use_now_and_the_leeway() {
        // Leeway 30 s: `exp` must be after now - 30, `nbf` at most now + 30.
        assert_eq!(reason(registered(json!({"exp": null}))), "missing exp");
        assert_eq!(reason(registered(json!({"exp": "soon"}))), "malformed exp");
        assert!(registered(json!({"exp": NOW - 29})).is_ok());
        assert_eq!(reason(registered(json!({"exp": NOW - 30}))), "expired");
        assert_eq!(
            registered(json!({"exp": (NOW + 1) as f64 + 0.5})).map(|(exp, _)| exp),
            Ok(Timestamp::from_micros((NOW + 1) * 1_000_000 + 500_000))
        );
        assert!(registered(json!({"nbf": NOW + 30})).is_ok());
        assert_eq!(
            reason(registered(json!({"nbf": NOW + 31}))),
            "not yet valid"
        );
        assert_eq!(reason(registered(json!({"nbf": "now"}))), "malformed nbf");
    }

    #[test]
    fn issue_time_is_read_and_may_not_be_in_the_future() {
        assert_eq!(registered(json!({})).map(|(_, iat)| iat), Ok(None));
        assert_eq!(
            registered(json!({"iat": NOW - 100})).map(|(_, iat)| iat),
            Ok(Some(Timestamp::from_unix_seconds(NOW - 100)))
        );
        assert!(registered(json!({"iat": NOW + 30})).is_ok());
        assert_eq!(
            reason(registered(json!({"iat": NOW + 31}))),
            "issued in the future"
        );
        assert_eq!(reason(registered(json!({"iat": "then"}))), "malformed iat");
    }

    #[test]
    fn claims_by_exact_name_then_dotted_path() {
        let claims = object(json!({
            "sub": "user-1",
            "https://example.com/groups": ["admins"],
            "realm_access": {"roles": ["reader", "writer"]},
            "a.b": "flat wins",
            "a": {"b": "nested loses"},
        }));
        assert_eq!(
            claim(&claims, "https://example.com/groups"),
            Some(&json!(["admins"]))
        );
        assert_eq!(
            claim(&claims, "realm_access.roles"),
            Some(&json!(["reader", "writer"]))
        );
        assert_eq!(claim(&claims, "a.b"), Some(&json!("flat wins")));
        assert_eq!(claim(&claims, "realm_access.missing"), None);
        assert_eq!(claim(&claims, "sub.deeper"), None);
        assert_eq!(claim(&claims, ""), None);
    }

    #[test]
    fn mapped_claims() {
        let exp = Timestamp::from_unix_seconds(NOW);
        let mapping = ClaimMapping {
            subject: "oid".into(),
            groups: Some("realm_access.roles".into()),
            email: Some("email".into()),
            name: Some("profile.name".into()),
        };
        let token = read_claims(
            &mapping,
            &object(json!({
                "oid": "u-42", "sub": "ignored", "email": "a@example.com",
                "profile": {"name": "Ada"}, "realm_access": {"roles": ["r1", "r2", "r1", ""]},
            })),
            exp,
            Some(exp),
        )
        .expect("claims map");
        assert_eq!(
            token,
            VerifiedToken {
                subject: "u-42".into(),
                groups: vec!["r1".into(), "r2".into()],
                email: Some("a@example.com".into()),
                name: Some("Ada".into()),
                expires_at: exp,
                issued_at: Some(exp),
            }
        );

        let defaults = ClaimMapping::default();
        let minimal = read_claims(
            &defaults,
            &object(json!({"sub": "u", "email": 7})),
            exp,
            None,
        )
        .expect("only a subject");
        assert_eq!(
            (minimal.groups, minimal.email, minimal.name),
            (vec![], None, None)
        );
        for subject in [json!({}), json!({"sub": ""}), json!({"sub": 42})] {
            assert_eq!(
                reason(read_claims(&defaults, &object(subject), exp, None)),
                "missing subject"
            );
        }
    }

    #[test]
    fn groups_claim_shapes() {
        assert_eq!(groups(None), Ok(vec![]));
        assert_eq!(groups(Some(&Value::Null)), Ok(vec![]));
        assert_eq!(groups(Some(&json!("admins"))), Ok(vec!["admins".into()]));
        assert_eq!(
            groups(Some(&json!(["a", "b"]))),
            Ok(vec!["a".into(), "b".into()])
        );
        for bad in [json!(["a", 1]), json!(7), json!({"a": true})] {
            assert_eq!(
                reason(groups(Some(&bad))),
                "groups claim is not a list of strings"
            );
        }
    }
}
