//! JSON Web Key Sets: parsing, picking the key for a token, and the per-URL cache of fetched sets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use alter_core::identity::{JwtAlgorithm, TokenError};
use alter_core::time::Timestamp;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};

use crate::http;

/// How long a fetched key set is used before it is fetched again.
pub const CACHE_TTL_SECONDS: i64 = 300;

/// The shortest interval between two fetches of one URL, whatever asks for them (an unknown
/// `kid`, an expired cache entry, a failed fetch): a flood of tokens with made-up kids must not
/// become a flood of requests to the IdP.
pub const MIN_REFETCH_INTERVAL_SECONDS: i64 = 10;

/// The largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// The keys of one JWKS document.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<Jwk>,
}

impl KeySet {
    /// Parses a JWKS document. Keys this crate cannot read (other key types, odd members) are
    /// skipped rather than failing the whole set, so one exotic key at the IdP breaks nothing.
    pub(crate) fn parse(document: &[u8]) -> Result<KeySet, &'static str> {
        Ok(KeySet {
            keys: Self::members(document)?
                .into_iter()
                .filter_map(|key| serde_json::from_value(key).ok())
                .collect(),
        })
    }

    /// Checks a document an operator gives: at most 256 KiB, public keys only, at least one
    /// key this crate can read.
    pub(crate) fn check_document(document: &[u8]) -> Result<(), &'static str> {
        if document.len() > MAX_JWKS_BYTES {
            return Err("at most 256 KiB");
        }
        let members = Self::members(document)?;
        if members.iter().any(|key| key.get("d").is_some()) {
            return Err("holds a private key; give only public keys");
        }
        let algorithms = [
            JwtAlgorithm::RS256,
            JwtAlgorithm::ES256,
            JwtAlgorithm::EdDSA,
        ];
        let keys = Self::parse(document)?.keys;
        if !keys
            .iter()
            .any(|key| algorithms.iter().any(|alg| usable(key, *alg)))
        {
            return Err("holds no RS256, ES256 or EdDSA public key");
        }
        Ok(())
    }

    fn members(document: &[u8]) -> Result<Vec<serde_json::Value>, &'static str> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document =
            serde_json::from_slice(document).map_err(|_| "not a JWKS document")?;
        Ok(document.keys)
    }

    /// The key that verifies a token of `alg` with `kid`: the usable key with that kid, or
    /// without a kid the only usable key. `Ok(None)` means "not here" (perhaps not yet: the
    /// caller may refetch).
    pub(crate) fn select(
        &self,
        alg: JwtAlgorithm,
        kid: Option<&str>,
    ) -> Result<Option<DecodingKey>, TokenError> {
        let found = match kid {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|key| key.common.key_id.as_deref() == Some(kid))
                    .peekable();
                if named.peek().is_none() {
                    return Ok(None);
                }
                named.find(|key| usable(key, alg)).ok_or_else(|| {
                    TokenError::Invalid("key does not match the token's algorithm".into())
                })?
            }
            None => {
                let mut candidates = self.keys.iter().filter(|key| usable(key, alg));
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => only,
                    (None, _) => return Ok(None),
                    (Some(_), Some(_)) => {
                        return Err(TokenError::Invalid("no kid and several keys".into()));
                    }
                }
            }
        };
        DecodingKey::from_jwk(found)
            .map(Some)
            .map_err(|_| TokenError::KeysUnavailable("malformed key in JWKS".into()))
    }
}

/// Whether `key` may verify a signature of `alg`: meant for signatures (when it says), made for
/// this algorithm (when it says), and of the right type and curve.
fn usable(key: &Jwk, alg: JwtAlgorithm) -> bool {
    let for_signatures = key
        .common
        .public_key_use
        .as_ref()
        .is_none_or(|u| *u == PublicKeyUse::Signature)
        && key
            .common
            .key_operations
            .as_ref()
            .is_none_or(|ops| ops.contains(&KeyOperations::Verify));
    let for_alg = key
        .common
        .key_algorithm
        .is_none_or(|key_alg| key_alg == KeyAlgorithm::from(crate::jwt::jose(alg)));
    let fits = match (&key.algorithm, alg) {
        (AlgorithmParameters::RSA(_), JwtAlgorithm::RS256) => true,
        (AlgorithmParameters::EllipticCurve(ec), JwtAlgorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::OctetKeyPair(okp), JwtAlgorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519
        }
        _ => false,
    };
    for_signatures && for_alg && fits
}

/// Fetched key sets by URL. Public material: losing it costs one fetch.
#[derive(Debug, Default)]
pub(crate) struct JwksCache {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

#[derive(Debug, Default)]
struct Slot {
    state: Mutex<SlotState>,
    /// Held while fetching, so concurrent misses on one URL make one request.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct SlotState {
    keys: Option<(Arc<KeySet>, Timestamp)>,
    last_attempt: Option<Timestamp>,
    last_error: Option<String>,
}

impl SlotState {
    fn fresh(&self, now: Timestamp) -> Option<Arc<KeySet>> {
        self.keys
            .as_ref()
            .filter(|(_, fetched_at)| within(*fetched_at, now, CACHE_TTL_SECONDS))
            .map(|(keys, _)| keys.clone())
    }
}

/// Whether `now` is in `[since, since + seconds)`: a clock moved backwards counts as "long ago".
fn within(since: Timestamp, now: Timestamp, seconds: i64) -> bool {
    since <= now && now < since.plus_seconds(seconds)
}

impl JwksCache {
    /// The key set of `url` as of `now`: the cached one while fresh, else fetched. With
    /// `refresh`, fetches even a fresh set (a token names a kid the cached set lacks), unless
    /// the URL was fetched less than [`MIN_REFETCH_INTERVAL_SECONDS`] ago.
    pub(crate) async fn get(
        &self,
        client: &reqwest::Client,
        url: &str,
        now: Timestamp,
        refresh: bool,
    ) -> Result<Arc<KeySet>, TokenError> {
        let slot = self.slot(url);
        if !refresh && let Some(keys) = slot.lock_state().fresh(now) {
            return Ok(keys);
        }
        let _fetching = slot.fetching.lock().await;
        // Decide again under the fetch lock: another task may have fetched while we waited.
        {
            let mut state = slot.lock_state();
            let fresh = state.fresh(now);
            if let Some(keys) = &fresh
                && !refresh
            {
                return Ok(keys.clone());
            }
            if state
                .last_attempt
                .is_some_and(|at| within(at, now, MIN_REFETCH_INTERVAL_SECONDS))
            {
                return fresh.ok_or_else(|| {
                    TokenError::KeysUnavailable(
                        state
                            .last_error
                            .clone()
                            .unwrap_or_else(|| "JWKS fetched moments ago".into()),
                    )
                });
            }
            state.last_attempt = Some(now);
        }
        let fetched = fetch(client, url).await;
        let mut state = slot.lock_state();
        match fetched {
            Ok(keys) => {
                let keys = Arc::new(keys);
                state.keys = Some((keys.clone(), now));
                state.last_error = None;
                Ok(keys)
            }
            Err(reason) => {
                tracing::warn!(url, reason, "fetching JWKS failed");
                state.last_error = Some(reason.clone());
                Err(TokenError::KeysUnavailable(reason))
            }
        }
    }

    fn slot(&self, url: &str) -> Arc<Slot> {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(url.to_owned())
            .or_default()
            .clone()
    }
}

impl Slot {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        // The state is a few plain fields, valid whatever a panicking holder was doing.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<KeySet, String> {
    let url = http::outbound_url(url).map_err(|reason| format!("JWKS URL refused: {reason}"))?;
    let body = http::get_bounded(client, url, MAX_JWKS_BYTES)
        .await
        .map_err(|reason| format!("fetching JWKS: {reason}"))?;
    KeySet::parse(&body).map_err(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Public keys from RFC 7517 appendix A.1 and RFC 8037 appendix A.2.
    const EC_KEY: &str = r#"{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","use":"sig","kid":"ec"}"#;
    const RSA_KEY: &str = r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"rsa"}"#;
    const OKP_KEY: &str =
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

    fn set(keys: &[&str]) -> KeySet {
        KeySet::parse(format!(r#"{{"keys":[{}]}}"#, keys.join(",")).as_bytes()).expect("valid JWKS")
    }

    #[test]
    fn selects_by_kid_and_algorithm() {
        let keys = set(&[EC_KEY, RSA_KEY, OKP_KEY]);
        assert!(matches!(
            keys.select(JwtAlgorithm::ES256, Some("ec")),
            Ok(Some(_))
        ));
        assert!(matches!(
            keys.select(JwtAlgorithm::RS256, Some("rsa")),
            Ok(Some(_))
        ));
        assert!(matches!(
            keys.select(JwtAlgorithm::ES256, Some("other")),
            Ok(None)
        ));
        // A kid naming a key of another type is not a miss to refetch for.
        assert!(matches!(
            keys.select(JwtAlgorithm::ES256, Some("rsa")),
            Err(TokenError::Invalid(_))
        ));
        // Without a kid: the only key that fits.
        assert!(matches!(
            keys.select(JwtAlgorithm::EdDSA, None),
            Ok(Some(_))
        ));
        assert!(matches!(
            keys.select(JwtAlgorithm::ES256, None),
            Ok(Some(_))
        ));
    }

    #[test]
    fn skips_keys_not_for_signatures_or_another_algorithm() {
        let enc = EC_KEY.replace(r#""use":"sig""#, r#""use":"enc""#);
        assert!(matches!(
            set(&[&enc]).select(JwtAlgorithm::ES256, Some("ec")),
            Err(TokenError::Invalid(_))
        ));
        let es384 = EC_KEY.replace(r#""use":"sig""#, r#""alg":"ES384""#);
        assert!(matches!(
            set(&[&es384]).select(JwtAlgorithm::ES256, None),
            Ok(None)
        ));
        let p384 = EC_KEY.replace("P-256", "P-384");
        assert!(matches!(
            set(&[&p384]).select(JwtAlgorithm::ES256, None),
            Ok(None)
        ));
        let second = EC_KEY.replace(r#""kid":"ec""#, r#""kid":"ec2""#);
        assert!(matches!(
            set(&[EC_KEY, &second]).select(JwtAlgorithm::ES256, None),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn unreadable_keys_are_skipped_and_junk_is_refused() {
        let keys = set(&[
            r#"{"kty":"weird"}"#,
            r#"{"kty":"EC","crv":"P-256"}"#,
            EC_KEY,
        ]);
        assert!(matches!(
            keys.select(JwtAlgorithm::ES256, Some("ec")),
            Ok(Some(_))
        ));
        for junk in ["", "[]", r#"{"keys":"no"}"#, "<html>"] {
            assert!(KeySet::parse(junk.as_bytes()).is_err());
        }
    }

    #[test]
    fn freshness_windows() {
        let t = Timestamp::from_unix_seconds(1_000);
        assert!(within(t, t, 10));
        assert!(within(t, t.plus_seconds(9), 10));
        assert!(!within(t, t.plus_seconds(10), 10));
        assert!(!within(t, t.plus_seconds(-1), 10));
    }
}
