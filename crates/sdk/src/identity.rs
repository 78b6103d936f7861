//! Identity export (protocol part 2 §7.6–7.7): `resolve_identity` and `assert_identity` on
//! [`App`] and [`Agent`], and [`verify_identity_assertion`], the relying party's offline check
//! of an assertion against the vault's published keys.

use std::time::{SystemTime, UNIX_EPOCH};

use alter_proto::signin::IdentityRequest;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::client::{Agent, App};
use crate::error::{Error, ErrorInfo};
use crate::transport::{Mapper, Transport};

pub use alter_proto::signin::{IdentityAssertion, IdentityContext, Trace};

/// The longest user JWT the client forwards.
const MAX_USER_TOKEN_LENGTH: usize = 8192;
/// The longest audience.
const MAX_AUDIENCE_LENGTH: usize = 512;
/// The bounds of an assertion's lifetime, in seconds.
const ASSERTION_TTL_SECONDS: std::ops::RangeInclusive<i64> = 10..=300;
/// How far in the future an assertion's `iat` may be (clock skew); `exp` has no leeway.
const IAT_LEEWAY_SECONDS: i64 = 5;

/// What `resolve_identity` asks about. Empty: the caller's own identity (headless).
#[derive(Clone, Default, PartialEq)]
pub struct ResolveIdentity {
    /// Include `email` and `display_name`.
    pub include_profile: bool,
    /// The end user's JWT.
    pub user_token: Option<String>,
    /// The end user's id in the app (agents only: allowed while the agent holds a delegation
    /// the user consented to; otherwise [`Error::GrantNotFound`]).
    pub app_user_id: Option<String>,
}

impl std::fmt::Debug for ResolveIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolveIdentity")
            .field("include_profile", &self.include_profile)
            .field(
                "user_token",
                &alter_proto::redact_option(self.user_token.as_ref()),
            )
            .field("app_user_id", &self.app_user_id)
            .finish()
    }
}

/// What `assert_identity` asks for: a signed assertion of the identity
/// [`ResolveIdentity`] would name, for one audience.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssertIdentity {
    /// Who the assertion is for: a URI with a scheme (`https://…`, `urn:…`), at most 512
    /// characters, not the vault itself.
    pub audience: String,
    /// Lifetime, 10–300 s (the server's default is 120).
    pub ttl_seconds: Option<i64>,
    /// Whom it names, as for `resolve_identity` (only active users are asserted).
    pub subject: ResolveIdentity,
}

impl AssertIdentity {
    /// An assertion of the caller's own identity for `audience`.
    pub fn new(audience: impl Into<String>) -> Self {
        AssertIdentity {
            audience: audience.into(),
            ..Default::default()
        }
    }
}

impl App {
    /// Whom a call acts for: the app, and with `user_token` the end user (an app names users
    /// by token only; `app_user_id` is refused locally).
    ///
    /// ```no_run
    /// # async fn run(app: alter_sdk::App, jwt: String) -> Result<(), alter_sdk::Error> {
    /// use alter_sdk::ResolveIdentity;
    /// let who = app
    ///     .resolve_identity(ResolveIdentity { user_token: Some(jwt), ..Default::default() })
    ///     .await?;
    /// println!("{:?} {:?}", who.app_user_id, who.group_ids);
    /// # Ok(()) }
    /// ```
    ///
    /// Errors: [`Error::ReAuthRequired`] (a bad user token), [`Error::AlterValue`].
    pub async fn resolve_identity(&self, ask: ResolveIdentity) -> Result<IdentityContext, Error> {
        app_only(&ask)?;
        resolve_identity(&self.transport, ask).await
    }

    /// A short-lived ES256 assertion of whom a call acts for, for a third party that checks
    /// it with [`verify_identity_assertion`] against the vault's published keys.
    pub async fn assert_identity(&self, ask: AssertIdentity) -> Result<IdentityAssertion, Error> {
        app_only(&ask.subject)?;
        assert_identity(&self.transport, ask).await
    }
}

impl Agent {
    /// Whom a call acts for: the agent, and the end user named by `user_token`, or by
    /// `app_user_id` while the user's delegation to this agent stands (otherwise
    /// [`Error::GrantNotFound`], the same as for an unknown user).
    pub async fn resolve_identity(&self, ask: ResolveIdentity) -> Result<IdentityContext, Error> {
        resolve_identity(&self.transport, ask).await
    }

    /// A short-lived ES256 assertion of whom a call acts for (with the agent as `act`), for a
    /// third party that checks it with [`verify_identity_assertion`].
    pub async fn assert_identity(&self, ask: AssertIdentity) -> Result<IdentityAssertion, Error> {
        assert_identity(&self.transport, ask).await
    }
}

fn app_only(ask: &ResolveIdentity) -> Result<(), Error> {
    if ask.app_user_id.is_some() {
        return Err(Error::value(
            "app_user_id is only for agents; an app names a user by user_token",
        ));
    }
    Ok(())
}

/// The checked request body of a resolve (and the subject of an assertion).
fn request(ask: ResolveIdentity) -> Result<IdentityRequest, Error> {
    if let Some(token) = &ask.user_token {
        if token.is_empty() {
            return Err(Error::value(
                "user_token must be a non-empty string when provided",
            ));
        }
        if token.chars().count() > MAX_USER_TOKEN_LENGTH {
            return Err(Error::value(format!(
                "user_token must be at most {MAX_USER_TOKEN_LENGTH} characters"
            )));
        }
    }
    if ask.app_user_id.as_deref().is_some_and(str::is_empty) {
        return Err(Error::value(
            "app_user_id must be a non-empty string when provided",
        ));
    }
    Ok(IdentityRequest {
        include_profile: ask.include_profile,
        user_token: ask.user_token,
        app_user_id: ask.app_user_id,
        audience: None,
        ttl_seconds: None,
    })
}

/// `^[A-Za-z][A-Za-z0-9+.-]*:`, the audience's URI scheme.
fn has_scheme(audience: &str) -> bool {
    let Some((scheme, _)) = audience.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
}

async fn call<T: DeserializeOwned>(
    transport: &Transport,
    path: &str,
    body: &IdentityRequest,
) -> Result<T, Error> {
    transport
        .json(Method::POST, path, Some(body), Mapper::Main)
        .await
}

fn checked_context(identity: &IdentityContext) -> Result<(), Error> {
    if identity.app_id.is_empty() {
        return Err(Error::Backend(ErrorInfo {
            message: "Backend response did not match IdentityContext shape".into(),
            ..Default::default()
        }));
    }
    Ok(())
}

async fn resolve_identity(
    transport: &Transport,
    ask: ResolveIdentity,
) -> Result<IdentityContext, Error> {
    let identity: IdentityContext =
        call(transport, "/sdk/identity/resolve", &request(ask)?).await?;
    checked_context(&identity)?;
    Ok(identity)
}

async fn assert_identity(
    transport: &Transport,
    ask: AssertIdentity,
) -> Result<IdentityAssertion, Error> {
    let mut body = request(ask.subject)?;
    let audience = ask.audience;
    if audience.is_empty() {
        return Err(Error::value("audience must be a non-empty string"));
    }
    if audience.chars().count() > MAX_AUDIENCE_LENGTH {
        return Err(Error::value(format!(
            "audience must be at most {MAX_AUDIENCE_LENGTH} characters"
        )));
    }
    if !has_scheme(&audience) {
        return Err(Error::value(
            "audience must be a URI with a scheme (e.g. https://memory.internal or urn:service:memory)",
        ));
    }
    if ask
        .ttl_seconds
        .is_some_and(|t| !ASSERTION_TTL_SECONDS.contains(&t))
    {
        return Err(Error::value(format!(
            "ttl_seconds must be between {} and {}",
            ASSERTION_TTL_SECONDS.start(),
            ASSERTION_TTL_SECONDS.end()
        )));
    }
    body.audience = Some(audience);
    body.ttl_seconds = ask.ttl_seconds;
    let assertion: IdentityAssertion = call(transport, "/sdk/identity/assert", &body).await?;
    if assertion.token.is_empty() || assertion.expires_at.is_empty() {
        return Err(Error::Backend(ErrorInfo {
            message: "Backend response did not match IdentityAssertion shape".into(),
            ..Default::default()
        }));
    }
    checked_context(&assertion.identity)?;
    Ok(assertion)
}

/// What a relying party trusts when it verifies an assertion: configuration, never anything
/// the token says.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustedIssuer<'a> {
    /// The vault's `public_url` (the `iss` it signs with).
    pub issuer: &'a str,
    /// This relying party's audience (the `aud` asked for).
    pub audience: &'a str,
    /// The published key set (`GET /.well-known/alter-identity-jwks.json`), fetched from the
    /// configured issuer; refresh it when the vault rotates keys.
    pub jwks: &'a Value,
    /// The app the assertion must be for.
    pub expected_app_id: &'a str,
    /// The agent that must have acted, if any.
    pub expected_agent_id: Option<&'a str>,
}

/// A verified assertion: whom it names and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    /// The app.
    pub app_id: String,
    /// The end user, or `None` for the app's own (headless) identity.
    pub app_user_id: Option<String>,
    /// The agent that acted (`act`), if any.
    pub agent_id: Option<String>,
    /// The assertion's id (`jti`), for replay tracking.
    pub jti: String,
    /// Its expiry (Unix seconds).
    pub expires_at: i64,
}

/// Why an assertion was refused, as the `reason` of the error (closed set, never material).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reject {
    Malformed,
    Header,
    Key,
    Signature,
    Lifetime,
    Claims,
    Binding,
}

impl Reject {
    fn name(self) -> &'static str {
        match self {
            Reject::Malformed => "malformed",
            Reject::Header => "header",
            Reject::Key => "key",
            Reject::Signature => "signature",
            Reject::Lifetime => "lifetime",
            Reject::Claims => "claims",
            Reject::Binding => "binding",
        }
    }

    fn error(self) -> Error {
        Error::MemoryIsolation(ErrorInfo {
            status: 0,
            code: Some("memory_assertion_invalid".into()),
            message: "assertion verification failed".into(),
            fields: Map::from_iter([("reason".to_owned(), Value::from(self.name()))]),
        })
    }
}

/// Verifies an identity assertion offline, as the official client's
/// `verify_identity_assertion`: an ES256 compact JWS with `typ` `alter-identity+jwt` signed by
/// the one public EC P-256 key of `trusted.jwks` its `kid` names; `iss`, `aud`, `azp` and
/// `alter.app_id` as trusted; `iat < exp ≤ iat + 300`, `iat` at most 5 s ahead, `exp` strictly
/// in the future; `sub` a user (`alter:user:…`) or this app (`alter:app:…`); an `act` agent
/// with `alter.agent_auth`. It proves identity at issuance, not that nothing was revoked since.
///
/// ```no_run
/// # async fn run(token: &str) -> Result<(), Box<dyn std::error::Error>> {
/// use alter_sdk::identity::{TrustedIssuer, verify_identity_assertion};
/// let jwks: serde_json::Value = reqwest::get("https://vault.example.com/.well-known/alter-identity-jwks.json")
///     .await?
///     .json()
///     .await?;
/// let who = verify_identity_assertion(token, &TrustedIssuer {
///     issuer: "https://vault.example.com",
///     audience: "https://memory.internal",
///     jwks: &jwks,
///     expected_app_id: "0193…",
///     expected_agent_id: None,
/// })?;
/// println!("{:?}", who.app_user_id);
/// # Ok(()) }
/// ```
///
/// Errors: [`Error::AlterValue`] for a missing argument or a `jwks` without a `keys` list;
/// [`Error::MemoryIsolation`] (code `memory_assertion_invalid`) for any refused token, with
/// the failing category in the `reason` field (`malformed`, `header`, `key`, `signature`,
/// `lifetime`, `claims`, `binding`).
pub fn verify_identity_assertion(
    token: &str,
    trusted: &TrustedIssuer<'_>,
) -> Result<VerifiedIdentity, Error> {
    for (name, value) in [
        ("token", token),
        ("issuer", trusted.issuer),
        ("audience", trusted.audience),
        ("expected_app_id", trusted.expected_app_id),
    ] {
        if value.is_empty() {
            return Err(Error::value(format!("{name} must be a non-empty string")));
        }
    }
    if trusted.expected_agent_id.is_some_and(str::is_empty) {
        return Err(Error::value(
            "expected_agent_id must be a non-empty string when provided",
        ));
    }
    if !trusted.jwks.get("keys").is_some_and(Value::is_array) {
        return Err(Error::value("jwks must be a JWK Set with a keys list"));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    verify(token, trusted, now).map_err(Reject::error)
}

fn decode_json(segment: &str) -> Result<Map<String, Value>, Reject> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Reject::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Reject::Malformed),
    }
}

fn verify(token: &str, trusted: &TrustedIssuer<'_>, now: i64) -> Result<VerifiedIdentity, Reject> {
    let segments: Vec<&str> = token.split('.').collect();
    let [header_b64, claims_b64, signature_b64] = segments[..] else {
        return Err(Reject::Malformed);
    };
    if header_b64.is_empty() {
        return Err(Reject::Malformed);
    }
    let header = decode_json(header_b64)?;
    let str_of = |map: &Map<String, Value>, name: &str| {
        map.get(name).and_then(Value::as_str).map(str::to_owned)
    };
    if str_of(&header, "alg").as_deref() != Some("ES256")
        || str_of(&header, "typ").as_deref() != Some("alter-identity+jwt")
        || header.get("crit").is_some_and(|c| !c.is_null())
        || header.get("b64") == Some(&Value::Bool(false))
    {
        return Err(Reject::Header);
    }
    let kid = str_of(&header, "kid")
        .filter(|k| !k.is_empty())
        .ok_or(Reject::Header)?;
    let public_key = public_key(trusted.jwks, &kid)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| Reject::Malformed)?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
        .verify(format!("{header_b64}.{claims_b64}").as_bytes(), &signature)
        .map_err(|_| Reject::Signature)?;

    let claims = decode_json(claims_b64)?;
    for required in ["iss", "aud", "sub", "iat", "exp", "jti", "azp", "alter"] {
        if claims.get(required).is_none_or(Value::is_null) {
            return Err(Reject::Claims);
        }
    }
    let (iat, exp) = match (&claims["iat"], &claims["exp"]) {
        (Value::Number(iat), Value::Number(exp)) => (iat.as_i64(), exp.as_i64()),
        _ => (None, None),
    };
    let (Some(iat), Some(exp)) = (iat, exp) else {
        return Err(Reject::Lifetime);
    };
    let not_before = claims.get("nbf").and_then(Value::as_i64);
    if !(iat < exp && exp <= iat.saturating_add(*ASSERTION_TTL_SECONDS.end()))
        || iat > now.saturating_add(IAT_LEEWAY_SECONDS)
        || exp <= now
        || not_before.is_some_and(|nbf| nbf > now)
    {
        return Err(Reject::Lifetime);
    }
    if claims["iss"].as_str() != Some(trusted.issuer) {
        return Err(Reject::Claims);
    }
    let audience_ok = match &claims["aud"] {
        Value::String(aud) => aud == trusted.audience,
        Value::Array(auds) => auds.iter().any(|a| a.as_str() == Some(trusted.audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(Reject::Claims);
    }
    let Value::Object(alter) = &claims["alter"] else {
        return Err(Reject::Claims);
    };
    let app_id = trusted.expected_app_id;
    if alter.get("app_id").and_then(Value::as_str) != Some(app_id)
        || claims["azp"].as_str() != Some(app_id)
    {
        return Err(Reject::Binding);
    }
    let jti = claims["jti"]
        .as_str()
        .filter(|j| !j.is_empty())
        .ok_or(Reject::Claims)?;
    let sub = claims["sub"].as_str().ok_or(Reject::Claims)?;
    let app_user_id = match sub.strip_prefix("alter:user:") {
        Some(user) if !user.is_empty() => Some(user.to_owned()),
        _ if sub == format!("alter:app:{app_id}") => None,
        _ if sub.starts_with("alter:app:") => return Err(Reject::Binding),
        _ => return Err(Reject::Claims),
    };
    let agent_id = match claims.get("act") {
        None | Some(Value::Null) => None,
        Some(Value::Object(actor)) => {
            let agent = actor
                .get("sub")
                .and_then(Value::as_str)
                .and_then(|s| s.strip_prefix("alter:agent:"))
                .filter(|a| !a.is_empty())
                .ok_or(Reject::Claims)?;
            if alter
                .get("agent_auth")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(Reject::Claims);
            }
            Some(agent.to_owned())
        }
        Some(_) => return Err(Reject::Claims),
    };
    if trusted
        .expected_agent_id
        .is_some_and(|expected| agent_id.as_deref() != Some(expected))
    {
        return Err(Reject::Binding);
    }
    Ok(VerifiedIdentity {
        app_id: app_id.to_owned(),
        app_user_id,
        agent_id,
        jti: jti.to_owned(),
        expires_at: exp,
    })
}

/// The uncompressed point of the one key of `jwks` named `kid`, if it is a public ES256 key.
fn public_key(jwks: &Value, kid: &str) -> Result<Vec<u8>, Reject> {
    let keys = jwks["keys"].as_array().ok_or(Reject::Key)?;
    let mut matching = keys
        .iter()
        .filter_map(Value::as_object)
        .filter(|key| key.get("kid").and_then(Value::as_str) == Some(kid));
    let (Some(key), None) = (matching.next(), matching.next()) else {
        return Err(Reject::Key);
    };
    let member = |name: &str| key.get(name).and_then(Value::as_str);
    let defaulted = |name: &str, default: &str| match key.get(name) {
        None => true,
        Some(value) => value.as_str() == Some(default),
    };
    let key_ops_ok = match key.get("key_ops") {
        None => true,
        Some(Value::Array(ops)) => ops.iter().any(|op| op.as_str() == Some("verify")),
        Some(_) => false,
    };
    if member("kty") != Some("EC")
        || member("crv") != Some("P-256")
        || !defaulted("alg", "ES256")
        || !defaulted("use", "sig")
        || !key_ops_ok
        || key.contains_key("d")
    {
        return Err(Reject::Key);
    }
    let coordinate = |name: &str| {
        member(name)
            .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
            .filter(|c| c.len() == 32)
            .ok_or(Reject::Key)
    };
    let mut point = vec![4u8];
    point.extend(coordinate("x")?);
    point.extend(coordinate("y")?);
    Ok(point)
}

#[cfg(test)]
mod tests {
    use super::*;

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::json;

    const NOW: i64 = 1_900_000_000;

    /// A change to the claims of a test token.
    type Edit<'a> = &'a dyn Fn(&mut Value);

    /// A signing key and its one-key JWKS (`kid` `k1`).
    fn issuer_key() -> (EcdsaKeyPair, Value) {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        }]});
        (pair, jwks)
    }

    fn sign(pair: &EcdsaKeyPair, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "alter-identity+jwt", "kid": "k1"});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    fn claims() -> Value {
        json!({
            "iss": "https://vault", "aud": "https://rp", "sub": "alter:user:u1",
            "iat": NOW - 10, "exp": NOW + 50, "jti": "j1", "azp": "app1",
            "alter": {"app_id": "app1"},
        })
    }

    #[test]
    fn the_claim_rules_of_the_official_verifier() {
        let (pair, jwks) = issuer_key();
        let trusted = TrustedIssuer {
            issuer: "https://vault",
            audience: "https://rp",
            jwks: &jwks,
            expected_app_id: "app1",
            expected_agent_id: None,
        };
        let check = |edit: Edit<'_>| {
            let mut c = claims();
            edit(&mut c);
            verify(&sign(&pair, &c), &trusted, NOW)
        };
        let verified = check(&|_| {}).unwrap();
        assert_eq!(
            (verified.app_user_id.as_deref(), verified.expires_at),
            (Some("u1"), NOW + 50)
        );
        assert!(check(&|c| c["aud"] = json!(["https://x", "https://rp"])).is_ok());
        assert!(check(&|c| c["iat"] = json!(NOW + 5)).is_ok(), "iat leeway");
        let agent = check(&|c| {
            c["act"] = json!({"sub": "alter:agent:a1"});
            c["alter"]["agent_auth"] = json!("agent_key");
        });
        assert_eq!(agent.unwrap().agent_id.as_deref(), Some("a1"));

        let refused: [(Edit<'_>, Reject); 14] = [
            (&|c| c["iat"] = json!(NOW + 6), Reject::Lifetime),
            (&|c| c["exp"] = json!(NOW), Reject::Lifetime),
            (&|c| c["exp"] = json!(NOW - 9 + 300), Reject::Lifetime),
            (&|c| c["iat"] = json!(1.5), Reject::Lifetime),
            (&|c| c["iat"] = json!(i64::MAX), Reject::Lifetime),
            (&|c| c["nbf"] = json!(NOW + 1), Reject::Lifetime),
            (&|c| c["jti"] = Value::Null, Reject::Claims),
            (&|c| c["iss"] = json!("https://other"), Reject::Claims),
            (&|c| c["sub"] = json!("alter:user:"), Reject::Claims),
            (&|c| c["sub"] = json!("alter:app:other"), Reject::Binding),
            (&|c| c["azp"] = json!("other"), Reject::Binding),
            (
                &|c| c["alter"] = json!({"app_id": "other"}),
                Reject::Binding,
            ),
            (
                &|c| c["act"] = json!({"sub": "alter:agent:a1"}),
                Reject::Claims,
            ),
            (&|c| c["act"] = json!("alter:agent:a1"), Reject::Claims),
        ];
        for (index, (edit, reason)) in refused.into_iter().enumerate() {
            assert_eq!(check(edit).unwrap_err(), reason, "case {index}");
        }
        assert_eq!(
            check(&|c| c["sub"] = json!("alter:app:app1"))
                .unwrap()
                .app_user_id,
            None
        );
        let wants_agent = TrustedIssuer {
            expected_agent_id: Some("a2"),
            ..trusted.clone()
        };
        let mut acted = claims();
        acted["act"] = json!({"sub": "alter:agent:a1"});
        acted["alter"]["agent_auth"] = json!("agent_key");
        assert_eq!(
            verify(&sign(&pair, &acted), &wants_agent, NOW).unwrap_err(),
            Reject::Binding
        );

        // Another key's signature, or two keys of the same kid.
        let (other, _) = issuer_key();
        assert_eq!(
            verify(&sign(&other, &claims()), &trusted, NOW).unwrap_err(),
            Reject::Signature
        );
        let mut doubled = jwks.clone();
        let key = doubled["keys"][0].clone();
        doubled["keys"].as_array_mut().unwrap().push(key);
        let ambiguous = TrustedIssuer {
            jwks: &doubled,
            ..trusted.clone()
        };
        assert_eq!(
            verify(&sign(&pair, &claims()), &ambiguous, NOW).unwrap_err(),
            Reject::Key
        );
    }

    #[test]
    fn audiences_need_a_scheme() {
        for good in ["https://a.example", "urn:service:memory", "a+b.c-d:x"] {
            assert!(has_scheme(good), "{good}");
        }
        for bad in ["api.example.com", "1http://x", ":x", "ht tp://x", ""] {
            assert!(!has_scheme(bad), "{bad}");
        }
    }

    #[test]
    fn local_checks() {
        assert!(request(ResolveIdentity::default()).is_ok());
        let empty_token = ResolveIdentity {
            user_token: Some(String::new()),
            ..Default::default()
        };
        assert!(request(empty_token).is_err());
        let long_token = ResolveIdentity {
            user_token: Some("x".repeat(MAX_USER_TOKEN_LENGTH + 1)),
            ..Default::default()
        };
        assert!(request(long_token).is_err());
        let by_id = ResolveIdentity {
            app_user_id: Some("u".into()),
            ..Default::default()
        };
        assert!(app_only(&by_id).is_err());
        let shown = format!(
            "{:?}",
            ResolveIdentity {
                user_token: Some("eyJsecret".into()),
                ..Default::default()
            }
        );
        assert!(!shown.contains("eyJsecret"), "{shown}");
    }

    #[test]
    fn a_body_without_keys_is_a_value_error_and_garbage_is_malformed() {
        let trusted = TrustedIssuer {
            issuer: "https://v",
            audience: "https://a",
            jwks: &Value::Null,
            expected_app_id: "app",
            expected_agent_id: None,
        };
        let error = verify_identity_assertion("a.b.c", &trusted).unwrap_err();
        assert_eq!(error.exception_name(), "AlterValueError");
        let jwks = serde_json::json!({"keys": []});
        let trusted = TrustedIssuer {
            jwks: &jwks,
            ..trusted
        };
        for (token, reason) in [
            ("not-a-jws", "malformed"),
            ("!!.b.c", "malformed"),
            (
                // {"alg":"none"}
                "eyJhbGciOiJub25lIn0.e30.",
                "header",
            ),
            (
                // {"alg":"ES256","typ":"alter-identity+jwt","kid":"k"}, no such key
                "eyJhbGciOiJFUzI1NiIsInR5cCI6ImFsdGVyLWlkZW50aXR5K2p3dCIsImtpZCI6ImsifQ.e30.AA",
                "key",
            ),
        ] {
            let error = verify_identity_assertion(token, &trusted).unwrap_err();
            assert_eq!(error.exception_name(), "MemoryIsolationError");
            assert_eq!(error.code(), Some("memory_assertion_invalid"));
            assert_eq!(error.info().str_field("reason"), Some(reason), "{token}");
        }
    }
}
